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
    /// An `error` frame unrelated to a send (a refused `resume`, a malformed frame).
    case serverError(code: String, message: String)
}

/// A send waiting for its ack. Resent with the same `clientMsgID` after every reconnect, which
/// the server deduplicates.
public struct PendingSend: Sendable, Hashable, Identifiable {
    public var clientMsgID: String
    public var channelID: String
    public var body: String

    public var id: String { clientMsgID }

    public init(clientMsgID: String, channelID: String, body: String) {
        self.clientMsgID = clientMsgID
        self.channelID = channelID
        self.body = body
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
    /// A send still unacked after this long is reported as failed (the user can retry it, with
    /// the same `client_msg_id`). `nil` keeps sends queued until acked or refused.
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
