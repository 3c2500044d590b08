import SwiftUI
import UIKit
import UserNotifications
import ChatAppCore
import ChatKit

/// The server address, and the account when signed in.
struct SettingsView: View {
    @Environment(AppModel.self) private var model
    @Environment(\.dismiss) private var dismiss
    @State private var serverText = ""
    @State private var confirmsSignOut = false
    @State private var isSaving = false

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    TextField(ServerEndpoint.localDefault.description, text: $serverText)
                        .keyboardType(.URL)
                        .textContentType(.URL)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                    if !serverText.isEmpty && endpoint == nil {
                        Text("Enter an http:// or https:// address, like http://192.168.1.20:8080.")
                            .font(.footnote)
                            .foregroundStyle(.red)
                    }
                    Button("Use \(ServerEndpoint.localDefault.description)") {
                        serverText = ServerEndpoint.localDefault.description
                    }
                } header: {
                    Text("Server")
                } footer: {
                    Text("The address of the chat stack's load balancer. `docker compose up` serves it on port 8080 of your computer: http://localhost:8080 from the simulator, your computer's network address from a device.")
                }

                if let session = model.session {
                    NotificationsSection(settings: session.notificationSettings, push: model.push)
                    Section("Account") {
                        LabeledContent("Signed in as", value: "\(session.user.displayName) (@\(session.user.username))")
                        Button("Sign Out", role: .destructive) {
                            confirmsSignOut = true
                        }
                    }
                }
            }
            .navigationTitle("Settings")
            .navigationBarTitleDisplayMode(.inline)
            .toolbar {
                ToolbarItem(placement: .cancellationAction) {
                    Button("Cancel") { dismiss() }
                }
                ToolbarItem(placement: .confirmationAction) {
                    Button("Save") {
                        Task { await save() }
                    }
                    .disabled(endpoint == nil || isSaving)
                }
            }
            .onAppear {
                serverText = model.settings.endpoint.description
            }
            .confirmationDialog("Sign out of this server?", isPresented: $confirmsSignOut, titleVisibility: .visible) {
                Button("Sign Out", role: .destructive) {
                    Task {
                        await model.signOut()
                        dismiss()
                    }
                }
            }
        }
    }

    private var endpoint: ServerEndpoint? {
        ServerEndpoint(string: serverText)
    }

    private func save() async {
        guard let endpoint else { return }
        isSaving = true
        defer { isSaving = false }
        await model.changeServer(to: endpoint)
        dismiss()
    }
}

/// Settings' notifications: "Hide previews" (kept by the server, for every device of the
/// account), whether iOS lets the app notify, and this device's registration.
private struct NotificationsSection: View {
    let settings: NotificationSettings
    let push: PushRegistration
    @Environment(\.openURL) private var openURL
    @State private var authorization: UNAuthorizationStatus?

    var body: some View {
        Section {
            Toggle("Hide Previews", isOn: hidePreviews)
                .disabled(settings.hidePreviews == nil)
            if authorization == .denied {
                Button("Allow Notifications in iOS Settings") {
                    if let url = URL(string: UIApplication.openNotificationSettingsURLString) {
                        openURL(url)
                    }
                }
            }
            LabeledContent("This device", value: push.status.summary)
                .font(.footnote)
            if let message = settings.errorMessage {
                Text(message)
                    .font(.footnote)
                    .foregroundStyle(.red)
            }
        } header: {
            Text("Notifications")
        } footer: {
            Text("With previews hidden, notifications on all your devices leave out what was written. Each conversation's menu sets how much of it notifies you: all messages, mentions of you, or none.")
        }
        .task {
            authorization = await PushPermission.authorizationStatus()
            await settings.loadPreferences()
        }
    }

    private var hidePreviews: Binding<Bool> {
        Binding(
            get: { settings.hidePreviews ?? false },
            set: { hide in
                Task { await settings.setHidePreviews(hide) }
            }
        )
    }
}
