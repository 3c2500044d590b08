import Foundation

/// Where the realtime connection stands, for the connection banner.
public enum ConnectionState: Sendable, Hashable {
    /// Not started, or stopped.
    case disconnected
    /// Opening the socket, or waiting for the server's `ready`.
    case connecting
    /// `ready` received: sends go out, live messages come in.
    case connected
    /// The connection was lost; the next attempt starts after `delay`.
    case waitingToReconnect(attempt: Int, delay: Duration)
    /// The session expired (the refresh token was refused): only signing in again helps.
    case signedOut
}

/// A send the server refused or that could not be delivered in time.
public struct SendFailure: Sendable, Hashable {
    public var clientMsgID: String
    /// The channel of the send, when this client still knew it.
    public var channelID: String?
    /// An `error` frame code (`FrameErrorCode`), or `RealtimeClient.timeoutCode`, or
    /// `RealtimeClient.sessionExpiredCode`.
    public var code: String
    public var message: String

    public init(clientMsgID: String, channelID: String?, code: String, message: String) {
        self.clientMsgID = clientMsgID
        self.channelID = channelID
        self.code = code
        self.message = message
    }
}

/// A change (edit, delete, reaction) the server refused or that was not acked in time.
public struct ChangeFailure: Sendable, Hashable {
    public var clientEventID: String
    /// The change, when this client still knew it.
    public var change: PendingChange?
    /// An `error` frame code (`FrameErrorCode`), or `RealtimeClient.timeoutCode`, or
    /// `RealtimeClient.sessionExpiredCode`.
    public var code: String
    public var message: String

    public init(clientEventID: String, change: PendingChange?, code: String, message: String) {
        self.clientEventID = clientEventID
        self.change = change
        self.code = code
        self.message = message
    }
}

/// What `RealtimeClient.events` delivers.
public enum RealtimeEvent: Sendable, Hashable {
    case stateChanged(ConnectionState)
    /// The server accepted the connection. `resume` and every unacked send have been queued.
    case ready(userID: String, connectionID: String)
    /// A message of a channel the user belongs to: live, or missed and replayed after `resume`.
    case message(Message)
    /// A send of this client was durably accepted. Also emitted when the message frame of an
    /// own send arrives before (or instead of) its ack.
    case acked(clientMsgID: String, message: Message)
    case sendFailed(SendFailure)
    /// The server has replayed everything missed in these channels.
    case resumed(channelIDs: [String])
    /// The server refused to resume these channels (the user left them on another device, or
    /// the position is not a stored message). Their resume positions are forgotten; reload
    /// them from history (or drop them from the list). Comes right before `resumed`.
    case resumeRefused(channelIDs: [String])
    /// An `error` frame unrelated to a send or a change (a refused `resume`, a malformed frame).
    case serverError(code: String, message: String)
    /// A message of a channel the user belongs to changed (edited, deleted, reacted to): live,
    /// or missed and replayed after `resume`. Apply it with `MessageStore.apply(_:)`.
    case event(ChannelEvent)
    /// A change of this client was durably accepted. Its `event` follows, unless the change
    /// became moot (the message was deleted meanwhile, the reaction was already there).
    /// Also emitted when the event of an own change arrives before (or instead of) its ack.
    case changeAcked(clientEventID: String, eventID: String)
    case changeFailed(ChangeFailure)
    /// The user read `channelID` up to `seq` on another device or connection: the mark only
    /// moves forward, so unread counts at or below it are gone.
    case read(channelID: String, seq: Int64)
}

/// A send waiting for its ack. Resent with the same `clientMsgID` after every reconnect, which
/// the server deduplicates.
public struct PendingSend: Sendable, Hashable, Identifiable {
    public var clientMsgID: String
    public var channelID: String
    public var body: String
    /// The id of the earlier message of the channel this one answers.
    public var replyTo: String?
    /// The completed uploads it carries, as the message will show them (the frame names their
    /// ids), so the pending row shows the files at once and a retry sends the same ones.
    public var attachments: [MessageAttachment]

    public var id: String { clientMsgID }

    public init(
        clientMsgID: String,
        channelID: String,
        body: String,
        replyTo: String? = nil,
        attachments: [MessageAttachment] = []
    ) {
        self.clientMsgID = clientMsgID
        self.channelID = channelID
        self.body = body
        self.replyTo = replyTo
        self.attachments = attachments
    }

    /// The frame that sends it: a `send`, with `reply_to` when it answers a message and
    /// `attachments` when it carries files.
    public var frame: ClientFrame {
        if !attachments.isEmpty {
            .sendWithAttachments(
                channelID: channelID,
                clientMsgID: clientMsgID,
                body: body,
                attachments: attachments.map(\.id),
                replyTo: replyTo
            )
        } else if let replyTo {
            .reply(channelID: channelID, clientMsgID: clientMsgID, body: body, replyTo: replyTo)
        } else {
            .send(channelID: channelID, clientMsgID: clientMsgID, body: body)
        }
    }
}

/// A change (edit, delete, reaction) waiting for its `event_ack`. Resent with the same
/// `clientEventID` after every reconnect: the server derives the event id from it, so a change
/// is never applied twice.
public struct PendingChange: Sendable, Hashable, Identifiable {
    public var clientEventID: String
    public var channelID: String
    public var messageID: String
    public var change: ChangeRequest

    public var id: String { clientEventID }

    public init(clientEventID: String, channelID: String, messageID: String, change: ChangeRequest) {
        self.clientEventID = clientEventID
        self.channelID = channelID
        self.messageID = messageID
        self.change = change
    }

    /// The `edit`, `delete`, `react` or `unreact` frame that asks for it.
    public var frame: ClientFrame {
        .change(change, channelID: channelID, messageID: messageID, clientEventID: clientEventID)
    }
}

/// Exponential backoff with jitter: attempt `n` waits between half and all of
/// `min(maximum, initial * multiplier^n)`, so that clients dropped together do not all come back
/// in the same instant, while the wait still grows.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double

    public init(initial: Duration = .milliseconds(500), maximum: Duration = .seconds(30), multiplier: Double = 2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
    }

    /// The wait before attempt `attempt` (0-based). `unit` is a random number in `0...1`.
    public func delay(attempt: Int, unit: Double) -> Duration {
        let exponent = Double(min(max(attempt, 0), 62))
        let ceiling = min(Self.seconds(maximum), Self.seconds(initial) * pow(multiplier, exponent))
        let jitter = min(max(unit, 0), 1)
        return .milliseconds(Int64((ceiling / 2 + ceiling / 2 * jitter) * 1000))
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Tuning of `RealtimeClient`.
public struct RealtimeConfiguration: Sendable {
    /// How the access token travels on the upgrade request.
    public enum TokenPlacement: Sendable, Hashable {
        /// `Authorization: Bearer <token>`.
        case header
        /// `?token=<token>`, for stacks that cannot set headers on a WebSocket.
        case query
    }

    public var backoff: Backoff
    /// A ping goes out this often; a connection that has not sent anything since the previous
    /// ping is closed and replaced. `nil` turns heartbeats off (tests).
    public var pingInterval: Duration?
    /// A send (or a change) still unacked after this long is reported as failed (the user can
    /// retry it, with the same `client_msg_id`). `nil` keeps them queued until acked or refused.
    public var sendTimeout: Duration?
    public var tokenPlacement: TokenPlacement

    public init(
        backoff: Backoff = Backoff(),
        pingInterval: Duration? = .seconds(20),
        sendTimeout: Duration? = .seconds(60),
        tokenPlacement: TokenPlacement = .header
    ) {
        self.backoff = backoff
        self.pingInterval = pingInterval
        self.sendTimeout = sendTimeout
        self.tokenPlacement = tokenPlacement
    }
}
