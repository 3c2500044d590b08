import SwiftUI
import ChatAppCore
import ChatKit

/// Sign in, or create an account.
struct SignInView: View {
    private enum Mode: String, CaseIterable, Identifiable {
        case signIn = "Sign In"
        case register = "Create Account"

        var id: Self { self }
    }

    @Environment(AppModel.self) private var model
    @State private var mode = Mode.signIn
    @State private var username = ""
    @State private var password = ""
    @State private var displayName = ""
    @State private var isWorking = false
    @State private var errorMessage: String?
    @State private var showsSettings = false

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    Picker("Mode", selection: $mode) {
                        ForEach(Mode.allCases) { mode in
                            Text(mode.rawValue).tag(mode)
                        }
                    }
                    .pickerStyle(.segmented)
                    .listRowBackground(Color.clear)
                }

                Section {
                    TextField("Username", text: $username)
                        .textContentType(.username)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                    SecureField("Password", text: $password)
                        .textContentType(mode == .register ? .newPassword : .password)
                    if mode == .register {
                        TextField("Display name (optional)", text: $displayName)
                            .textContentType(.name)
                    }
                } footer: {
                    if mode == .register {
                        Text("Usernames have 3 to 32 letters, digits, dots, underscores or dashes. Passwords have at least 8 characters.")
                    }
                }

                if let notice = model.notice {
                    Section {
                        Label(notice, systemImage: "info.circle")
                    }
                }

                if let errorMessage {
                    Section {
                        Text(errorMessage)
                            .foregroundStyle(.red)
                    }
                }

                Section {
                    Button {
                        Task { await submit() }
                    } label: {
                        HStack {
                            Spacer()
                            if isWorking {
                                ProgressView()
                            } else {
                                Text(mode.rawValue).bold()
                            }
                            Spacer()
                        }
                    }
                    .disabled(!canSubmit || isWorking)
                }

                Section {
                    LabeledContent("Server", value: model.settings.endpoint.description)
                        .font(.footnote)
                }
            }
            .navigationTitle("Chat")
            .toolbar {
                ToolbarItem(placement: .topBarTrailing) {
                    Button {
                        showsSettings = true
                    } label: {
                        Image(systemName: "gearshape")
                    }
                    .accessibilityLabel("Settings")
                }
            }
            .sheet(isPresented: $showsSettings) {
                SettingsView()
            }
            .onChange(of: mode) {
                errorMessage = nil
            }
        }
    }

    private var trimmedDisplayName: String {
        displayName.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private var canSubmit: Bool {
        switch mode {
        case .signIn:
            !username.isEmpty && !password.isEmpty
        case .register:
            Limits.isValidUsername(username)
                && Limits.isValidPassword(password)
                && trimmedDisplayName.count <= Limits.displayNameMax
        }
    }

    private func submit() async {
        isWorking = true
        defer { isWorking = false }
        errorMessage = nil
        do {
            switch mode {
            case .signIn:
                try await model.signIn(username: username, password: password)
            case .register:
                try await model.register(
                    username: username,
                    password: password,
                    displayName: trimmedDisplayName.isEmpty ? nil : trimmedDisplayName
                )
            }
        } catch {
            errorMessage = describe(error)
        }
    }

    private func describe(_ error: any Error) -> String {
        guard let chatError = error as? ChatError, case .server(let serverError) = chatError else {
            return error.localizedDescription
        }
        switch (mode, serverError.status) {
        case (.signIn, 401):
            return "Wrong username or password."
        case (.register, 409):
            return "That username is taken. Try another one."
        default:
            return serverError.message
        }
    }
}
