import SwiftUI
import ChatKit

/// A thin bar under the navigation bar while the realtime connection is not up.
struct ConnectionBanner: View {
    let state: ConnectionState
    let retry: () -> Void

    var body: some View {
        if let text {
            HStack(spacing: 8) {
                if isWorking {
                    ProgressView()
                        .controlSize(.small)
                } else {
                    Image(systemName: "wifi.exclamationmark")
                }
                Text(text)
                Spacer(minLength: 0)
                if canRetry {
                    Button("Retry now", action: retry)
                        .buttonStyle(.borderless)
                }
            }
            .font(.footnote)
            .padding(.horizontal)
            .padding(.vertical, 6)
            .frame(maxWidth: .infinity)
            .background(.yellow.opacity(0.25))
            .accessibilityElement(children: .combine)
            .transition(.move(edge: .top).combined(with: .opacity))
        }
    }

    private var text: String? {
        switch state {
        case .connected:
            nil
        case .connecting:
            "Connecting…"
        case .waitingToReconnect(let attempt, _):
            attempt > 2 ? "Offline. Messages will be sent when the connection is back." : "Connection lost. Reconnecting…"
        case .disconnected:
            "Not connected."
        case .signedOut:
            "Signed out."
        }
    }

    private var isWorking: Bool {
        state == .connecting
    }

    private var canRetry: Bool {
        switch state {
        case .waitingToReconnect, .disconnected: true
        default: false
        }
    }
}
