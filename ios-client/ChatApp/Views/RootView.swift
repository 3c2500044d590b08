import SwiftUI
import ChatAppCore

/// Sign-in or the conversations, depending on the app's phase.
struct RootView: View {
    @Environment(AppModel.self) private var model
    @Environment(\.scenePhase) private var scenePhase

    var body: some View {
        Group {
            switch model.phase {
            case .restoring:
                ProgressView("Loading…")
            case .signedOut:
                SignInView()
            case .signedIn(let session):
                ConversationListView(session: session)
                    .id(ObjectIdentifier(session))
            }
        }
        .task {
            await model.restore()
        }
        .onChange(of: scenePhase) { _, phase in
            switch phase {
            case .active:
                model.appBecameActive()
            case .background:
                model.appEnteredBackground()
            default:
                break
            }
        }
    }
}
