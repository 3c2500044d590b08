import ChatKit
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `chatkit-cli`: a terminal chat client on ChatKit's real stack (`APIClient`, `TokenManager`,
/// `RealtimeClient` over `URLSessionTransport`), the code the iPhone app runs. Used by people and
/// by the end-to-end tests (tests/e2e/swift_client.rs), which read its line-oriented output.
@main
struct CLI {
    static let usage = """
    usage: chatkit-cli [--server URL] [--session FILE] <command>

    commands:
      register <username> <password> [display name]   create an account and sign in
      login <username> <password>                      sign in
      logout
      whoami
      conversations                                    list channels and direct conversations, with
                                                       unread and mention counts and the owner
      create-channel <name>                            create a group channel (prints its id)
      join <channel-id>
      send <channel-id> <text>                         send one message and wait for its ack
      send-file <channel-id> <file> [caption]          upload a file (its type from its extension:
                                                       .png, .jpg, .pdf, .txt, ...) and send it, with
                                                       the caption, in one message; wait for the ack
      open <channel-id>                                print live messages; each line typed is sent.
                                                       Commands: /dump (the timeline), /read, /status, /quit

    --server   the load balancer (default http://127.0.0.1:8080, or $CHAT_SERVER)
    --session  where the session is kept (default ~/.config/chatkit-cli/session.json)
    """

    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var server = ProcessInfo.processInfo.environment["CHAT_SERVER"] ?? "http://127.0.0.1:8080"
        var sessionPath = ProcessInfo.processInfo.environment["CHAT_SESSION"]
            ?? NSHomeDirectory() + "/.config/chatkit-cli/session.json"
        while let flag = arguments.first, flag.hasPrefix("--") {
            arguments.removeFirst()
            guard let value = arguments.first else { fail(usage) }
            arguments.removeFirst()
            switch flag {
            case "--server": server = value
            case "--session": sessionPath = value
            default: fail(usage)
            }
        }
        guard let endpoint = ServerEndpoint(string: server) else { fail("not a server URL: \(server)") }
        guard let command = arguments.first else { fail(usage) }
        let context = Context(endpoint: endpoint, sessionPath: sessionPath)
        do {
            try await context.run(command, Array(arguments.dropFirst()))
        } catch {
            fail("\(command): \(describe(error))")
        }
        end(0)
    }
}

/// Prints one line to stdout at once (the tests read it as it comes).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("chatkit-cli: " + message + "\n").utf8))
    end(1)
}

/// Ends the process without exit handlers. On Linux, once a `URLSessionWebSocketTask` has run,
/// neither returning from the async `main` nor `exit()` ended the process: it stayed with one
/// thread spinning in FoundationNetworking's libcurl loop (measured with Debian's Swift 6.0.3).
/// Output is written unbuffered, so nothing is lost.
func end(_ status: Int32) -> Never {
    _exit(status)
}

func describe(_ error: any Error) -> String {
    if let chat = error as? ChatError { return "\(chat)" }
    return String(describing: error)
}

struct Context {
    let endpoint: ServerEndpoint
    let sessionPath: String

    var tokens: TokenManager {
        TokenManager(api: APIClient(server: endpoint), store: FileTokenStore(path: sessionPath))
    }

    func run(_ command: String, _ args: [String]) async throws {
        switch (command, args.count) {
        case ("register", 2...):
            let user = try await tokens.register(
                username: args[0], password: args[1],
                displayName: args.count > 2 ? args[2...].joined(separator: " ") : nil
            )
            say("signed in user=\(user.id) username=\(user.username)")
        case ("login", 2):
            let user = try await tokens.signIn(username: args[0], password: args[1])
            say("signed in user=\(user.id) username=\(user.username)")
        case ("logout", 0):
            await tokens.signOut()
            say("signed out")
        case ("whoami", 0):
            let (api, _) = try await signedIn()
            let me = try await api.me()
            say("user=\(me.id) username=\(me.username) name=\(me.displayName)")
        case ("conversations", 0):
            let (api, _) = try await signedIn()
            // `name=` is last and runs to the end of the line.
            for conversation in try await api.conversations() {
                let channel = conversation.channel
                let owner = channel.createdBy.map { " owner=\($0)" } ?? ""
                say("channel id=\(channel.id) kind=\(channel.kind.rawValue) unread=\(conversation.unreadCount) mentions=\(conversation.mentionCount)\(owner) name=\(channel.name)")
            }
        case ("create-channel", 1):
            let (api, _) = try await signedIn()
            let channel = try await api.createChannel(name: args[0])
            say("channel id=\(channel.id) kind=\(channel.kind.rawValue) name=\(channel.name)")
        case ("join", 1):
            let (api, _) = try await signedIn()
            let channel = try await api.joinChannel(id: args[0])
            say("joined id=\(channel.id) name=\(channel.name)")
        case ("send", 2):
            let (_, tokens) = try await signedIn()
            try await sendOnce(channelID: args[0], body: args[1], tokens: tokens)
        case ("send-file", 2...):
            try await sendFile(channelID: args[0], path: args[1], caption: args[2...].joined(separator: " "))
        case ("open", 1):
            let (api, tokens) = try await signedIn()
            try await Conversation(channelID: args[0], endpoint: endpoint, api: api, tokens: tokens).run()
        default:
            fail(CLI.usage)
        }
    }

    /// The authenticated API client and token manager of the stored session.
    func signedIn() async throws -> (APIClient, TokenManager) {
        let tokens = self.tokens
        guard try await tokens.restore() != nil else {
            fail("not signed in (register or login first; session file \(sessionPath))")
        }
        return (APIClient(server: endpoint).authenticated(by: tokens), tokens)
    }

    /// `send-file`: uploads the file through `APIClient.uploadAttachment(fileAt:)` (declare, PUT
    /// to the presigned URL, complete), prints
    /// `uploaded id=<id> name=<name> content_type=<type> size=<n> [width=<w> height=<h>]`
    /// (the name percent-encoded, `Conversation.wireSafe`), then sends it with `caption` (may be
    /// empty) over the realtime client and waits for the ack, as `send` does.
    func sendFile(channelID: String, path: String, caption: String) async throws {
        guard Limits.isValidMessage(body: caption, attachmentCount: 1) else {
            fail("a caption is empty or 1 to \(Limits.bodyMaxChars) characters, not only white space")
        }
        let (api, tokens) = try await signedIn()
        let file = URL(fileURLWithPath: path)
        let attachment = MessageAttachment(try await api.uploadAttachment(fileAt: file, toChannel: channelID))
        var line = "uploaded id=\(attachment.id) name=\(Conversation.wireSafe(attachment.name)) content_type=\(attachment.contentType) size=\(attachment.size)"
        if let width = attachment.width, let height = attachment.height {
            line += " width=\(width) height=\(height)"
        }
        say(line)
        try await sendOnce(channelID: channelID, body: caption, attachments: [attachment], tokens: tokens)
    }

    /// Prints `acked client_msg_id=<id> id=<id> [attachments=...]` (the files as the ack carries
    /// them, `Conversation.attachmentFields`).
    func sendOnce(channelID: String, body: String, attachments: [MessageAttachment] = [], tokens: TokenManager) async throws {
        let realtime = RealtimeClient(url: endpoint.webSocketURL, tokens: tokens)
        let events = realtime.events
        await realtime.start()
        let pending = await realtime.send(body, to: channelID, attachments: attachments)
        for await event in events {
            switch event {
            case .acked(let clientMsgID, let message) where clientMsgID == pending.clientMsgID:
                say("acked client_msg_id=\(clientMsgID) id=\(message.id)\(Conversation.attachmentFields(message.attachments))")
                await realtime.stop()
                return
            case .sendFailed(let failure) where failure.clientMsgID == pending.clientMsgID:
                await realtime.stop()
                fail("send refused: \(failure.code): \(failure.message)")
            case .stateChanged(.signedOut):
                fail("session expired: sign in again")
            default:
                continue
            }
        }
    }
}
