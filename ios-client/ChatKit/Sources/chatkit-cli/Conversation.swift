import ChatKit
import Foundation

/// `chatkit-cli open <channel>`: one conversation, live. Realtime events and typed lines feed one
/// loop that owns the `MessageStore`, as the app's session model does.
///
/// Output lines (stable; the end-to-end tests parse them):
///   state <connecting|connected|waiting|disconnected|signed-out>
///   ready user=<id> connection=<gateway>:<n>
///   message seq=<n> id=<id> sender=<id> client_msg_id=<id> [mentions=<id,...> [mentions you]]
///           [attachments=<file>,...] body=<text>
///   acked client_msg_id=<id> id=<id> [attachments=<file>,...]
///   failed client_msg_id=<id> code=<code>
///   resumed channels=<id,...>     resume-refused channels=<id,...>
///   history count=<n>             queued client_msg_id=<id>
///   event seq=<n> id=<id> kind=<kind> message=<id> actor=<id>
///         (an edit also: [mentions=<id,...> [mentions you]] body=<text>)
///   read seq=<n>                  (the user read this far on another device)
///   change-queued client_event_id=<id>   change-acked client_event_id=<id> id=<id>
///   change-failed client_event_id=<id> code=<code>
/// `mentions=` lists the user ids the body mentions (absent when none); `[mentions you]` follows
/// when one of them is the signed-in user. `attachments=` lists the files a message carries, in
/// its order, each `<id>:<name>:<size>[:<width>x<height>]` (the name percent-encoded: no space,
/// `,`, `:`, `=` or `%` is left in it; the dimensions when the server measured an image); absent
/// when none. `body=` is always last and runs to the end of the line (empty for files alone).
/// Lines typed: text to send it; /reply <message-id> <text>, /edit <message-id> <text>,
///   /delete <message-id>, /react <message-id> <emoji>, /unreact <message-id> <emoji>;
///   /read (mark the newest message read: `marked-read seq=<n>`); /status, /dump, /quit.
///   /dump:   entry seq=<n|-> id=<id|-> status=<s> client_msg_id=<id> [mentions=...] [attachments=...]
///            body=<text> ... then
///            timeline entries=<n> duplicates=<n> readies=<n>
struct Conversation {
    let channelID: String
    let endpoint: ServerEndpoint
    let api: APIClient
    let tokens: TokenManager

    private enum Input: Sendable {
        case event(RealtimeEvent)
        case line(String)
        case endOfInput
    }

    func run() async throws {
        // The stored user, not `GET /users/me`: no REST call may refresh the token before the
        // socket has met it (see below).
        guard let me = await tokens.currentUser else { fail("not signed in") }
        var store = MessageStore(currentUserID: me.id)
        let realtime = RealtimeClient(url: endpoint.webSocketURL, tokens: tokens)

        let (inputs, sink) = AsyncStream<Input>.makeStream()
        let events = realtime.events
        let eventPump = Task {
            for await event in events {
                sink.yield(.event(event))
            }
        }
        // Lines come from a plain thread: reading stdin blocks, and nothing else may block the
        // cooperative pool.
        let reader = Thread {
            while let line = readLine(strippingNewline: true) {
                sink.yield(.line(line))
            }
            sink.yield(.endOfInput)
        }
        reader.start()

        // The socket first, then history: a stored session's access token meets the server
        // on the upgrade request first (a refused one is refreshed by the realtime client).
        await realtime.start()
        var seenLive: Set<String> = []
        var duplicates = 0
        var readies = 0
        var loadedHistory = false

        loop: for await input in inputs {
            switch input {
            case .event(let event):
                store.apply(event)
                switch event {
                case .stateChanged(let state):
                    say("state \(Self.name(state))")
                    if state == .signedOut { fail("session expired: sign in again") }
                case .ready(let userID, let connectionID):
                    readies += 1
                    say("ready user=\(userID) connection=\(connectionID)")
                    if !loadedHistory {
                        loadedHistory = true
                        let page = try await api.messages(inChannel: channelID, cursor: .latest, limit: 50)
                        store.mergePage(page, channelID: channelID, cursor: .latest, limit: 50)
                        await realtime.noteSeen(page)
                        say("history count=\(page.count)")
                    }
                case .message(let message) where message.channelID == channelID:
                    if !seenLive.insert(message.id).inserted { duplicates += 1 }
                    say("message seq=\(message.seq.map(String.init) ?? "-") id=\(message.id) sender=\(message.senderID) client_msg_id=\(message.clientMsgID)\(Self.mentionFields(message.mentions, me: me.id))\(Self.attachmentFields(message.attachments)) body=\(message.body)")
                    try await fillGaps(&store, realtime)
                case .acked(let clientMsgID, let message):
                    say("acked client_msg_id=\(clientMsgID) id=\(message.id)\(Self.attachmentFields(message.attachments))")
                case .sendFailed(let failure):
                    say("failed client_msg_id=\(failure.clientMsgID) code=\(failure.code)")
                case .resumed(let channelIDs):
                    say("resumed channels=\(channelIDs.joined(separator: ","))")
                    try await fillGaps(&store, realtime)
                case .resumeRefused(let channelIDs):
                    say("resume-refused channels=\(channelIDs.joined(separator: ","))")
                case .serverError(let code, let message):
                    say("server-error code=\(code) message=\(message)")
                case .event(let event) where event.channelID == channelID:
                    var line = "event seq=\(event.seq) id=\(event.id) kind=\(event.change.kind) message=\(event.messageID) actor=\(event.actorID)"
                    if case let .edited(body, mentions) = event.change {
                        line += "\(Self.mentionFields(mentions, me: me.id)) body=\(body)"
                    }
                    say(line)
                case .read(let readChannelID, let seq) where readChannelID == channelID:
                    say("read seq=\(seq)")
                case .changeAcked(let clientEventID, let eventID):
                    say("change-acked client_event_id=\(clientEventID) id=\(eventID)")
                case .changeFailed(let failure):
                    say("change-failed client_event_id=\(failure.clientEventID) code=\(failure.code)")
                case .message, .event, .read:
                    break
                }
            case .line(let line):
                switch line.trimmingCharacters(in: .whitespaces) {
                case "": continue
                case "/quit": break loop
                case "/read":
                    if let seq = store[channelID].newestPlaced?.seq {
                        await realtime.markRead(channelID: channelID, seq: seq)
                        say("marked-read seq=\(seq)")
                    } else {
                        say("marked-read seq=-")
                    }
                case "/status":
                    let pending = await realtime.pendingSends
                    let state = await realtime.state
                    say("status state=\(Self.name(state)) pending=\(pending.count)")
                case "/dump":
                    let timeline = store[channelID]
                    for entry in timeline.entries {
                        say("entry seq=\(entry.seq.map(String.init) ?? "-") id=\(entry.messageID ?? "-") status=\(Self.name(entry.status)) client_msg_id=\(entry.clientMsgID)\(Self.mentionFields(entry.isDeleted ? [] : entry.mentions, me: me.id))\(Self.attachmentFields(entry.attachments)) body=\(entry.body)")
                    }
                    say("timeline entries=\(timeline.entries.count) duplicates=\(duplicates) readies=\(readies)")
                case let command where command.hasPrefix("/"):
                    await perform(command, store: &store, realtime: realtime)
                default:
                    let pending = PendingSend(clientMsgID: UUID().uuidString.lowercased(), channelID: channelID, body: line)
                    store.addPending(pending, at: Date())
                    await realtime.send(pending.body, to: channelID, clientMsgID: pending.clientMsgID)
                    say("queued client_msg_id=\(pending.clientMsgID)")
                }
            case .endOfInput:
                break loop
            }
        }
        eventPump.cancel()
        await realtime.stop()
        say("bye")
    }

    /// `/reply`, `/edit`, `/delete`, `/react`, `/unreact`: `<message-id>` then the text or emoji.
    private func perform(_ command: String, store: inout MessageStore, realtime: RealtimeClient) async {
        let parts = command.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
        let change: ChangeRequest
        switch (parts.first ?? "", parts.count) {
        case ("/reply", 3):
            let pending = PendingSend(clientMsgID: UUID().uuidString.lowercased(), channelID: channelID, body: parts[2], replyTo: parts[1])
            store.addPending(pending, at: Date())
            await realtime.send(pending.body, to: channelID, clientMsgID: pending.clientMsgID, replyTo: pending.replyTo)
            say("queued client_msg_id=\(pending.clientMsgID)")
            return
        case ("/edit", 3): change = .edit(body: parts[2])
        case ("/delete", 2): change = .delete
        case ("/react", 3): change = .react(emoji: parts[2])
        case ("/unreact", 3): change = .unreact(emoji: parts[2])
        default:
            say("unknown command: \(command)")
            return
        }
        let pending = await realtime.change(change, of: parts[1], in: channelID)
        say("change-queued client_event_id=\(pending.clientEventID)")
    }

    /// Fetches what is missing between loaded messages over REST, as the app does.
    private func fillGaps(_ store: inout MessageStore, _ realtime: RealtimeClient) async throws {
        for _ in 0..<20 {
            guard let gap = store[channelID].firstGap else { return }
            let cursor = HistoryCursor.after(messageID: gap.afterMessageID)
            let page = try await api.messages(inChannel: channelID, cursor: cursor, limit: Limits.historyMaxLimit)
            store.mergePage(page, channelID: channelID, cursor: cursor, limit: Limits.historyMaxLimit)
            await realtime.noteSeen(page)
            say("filled count=\(page.count) after=\(gap.afterMessageID)")
            if page.isEmpty { return }
        }
    }

    /// ` mentions=<id,...>`, with ` [mentions you]` when `me` is among them; empty without
    /// mentions.
    static func mentionFields(_ mentions: [String], me: String) -> String {
        guard !mentions.isEmpty else { return "" }
        let you = mentions.contains(me) ? " [mentions you]" : ""
        return " mentions=\(mentions.joined(separator: ","))\(you)"
    }

    /// ` attachments=<id>:<name>:<size>[:<width>x<height>],...`; empty without attachments.
    static func attachmentFields(_ attachments: [MessageAttachment]) -> String {
        guard !attachments.isEmpty else { return "" }
        let files = attachments.map { file in
            var item = "\(file.id):\(wireSafe(file.name)):\(file.size)"
            if let width = file.width, let height = file.height {
                item += ":\(width)x\(height)"
            }
            return item
        }
        return " attachments=\(files.joined(separator: ","))"
    }

    /// `text` percent-encoded (UTF-8) so that it holds none of the output's separators (space,
    /// `,`, `:`, `=`, `%`) and no control character: a file name as one field.
    static func wireSafe(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: wireSafeCharacters) ?? text
    }

    private static let wireSafeCharacters = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: ",:=%"))

    static func name(_ state: ConnectionState) -> String {
        switch state {
        case .disconnected: "disconnected"
        case .connecting: "connecting"
        case .connected: "connected"
        case .waitingToReconnect(let attempt, let delay): "waiting attempt=\(attempt) delay=\(delay)"
        case .signedOut: "signed-out"
        }
    }

    static func name(_ status: TimelineEntry.Status) -> String {
        switch status {
        case .pending: "pending"
        case .failed(let code, _): "failed(\(code))"
        case .sent: "sent"
        case .delivered: "delivered"
        }
    }
}
