import Foundation
import XCTest
@testable import ChatKit

/// Decodes every client-facing file of `fixtures/wire/` (written by the server's types) and
/// encodes it back, so a wire change on either side fails here.
///
/// Fixtures are named only through `fixture("...")` and `roundTrip(T.self, "...")`:
/// scripts/check-swift.sh reads those calls to check that each named file exists and that every
/// client-facing fixture is decoded somewhere.
final class WireFixtureTests: XCTestCase {
    private let alice = "0190a2b4-0000-7000-8000-00000000a11c"
    private let bob = "0190a2b4-0000-7000-8000-000000000b0b"
    private let general = "0190a2b4-0000-7000-8000-000000000001"
    private let dm = "0190a2b4-0000-7000-8000-000000000002"
    private let firstClientMsgID = "5f0c8a52-8a8e-4a8e-9a43-0d4f6f1f6c11"
    private let secondClientMsgID = "5f0c8a52-8a8e-4a8e-9a43-0d4f6f1f6c12"

    /// Decodes the fixture as `T`, checks that encoding gives the same JSON back, returns it.
    private func roundTrip<T: Codable>(
        _ type: T.Type,
        _ name: String,
        file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> T {
        let data = try fixture(name)
        let value = try WireJSON.decode(T.self, from: data)
        try assertSameJSON(try WireJSON.encode(value), data, file: file, line: line)
        return value
    }

    // MARK: - REST bodies

    func testUser() throws {
        let user = try WireJSON.decode(User.self, from: try fixture("rest_user"))
        XCTAssertEqual(user, User(id: alice, username: "alice", displayName: "Alice Liddell"))
        _ = try roundTrip(User.self, "rest_user")
    }

    func testSession() throws {
        let session = try roundTrip(Session.self, "rest_session")
        XCTAssertEqual(session.user.id, alice)
        XCTAssertEqual(session.accessToken, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl")
        XCTAssertEqual(session.refreshToken, "rt_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAA")
        XCTAssertEqual(session.expiresIn, 900)
    }

    func testRegisterRequestWithAndWithoutDisplayName() throws {
        let full = try roundTrip(RegisterRequest.self, "rest_register_request")
        XCTAssertEqual(full, RegisterRequest(username: "alice", password: "correct horse battery staple", displayName: "Alice Liddell"))
        let minimal = try roundTrip(RegisterRequest.self, "rest_register_request_minimal")
        XCTAssertNil(minimal.displayName)
        // The absent display name is left out, not sent as null.
        try assertSameJSON(
            try WireJSON.encode(RegisterRequest(username: "bob", password: "hunter2hunter2")),
            try fixture("rest_register_request_minimal")
        )
    }

    func testLoginAndRefreshRequests() throws {
        let login = try roundTrip(LoginRequest.self, "rest_login_request")
        XCTAssertEqual(login.username, "alice")
        let refresh = try roundTrip(RefreshRequest.self, "rest_refresh_request")
        XCTAssertEqual(refresh.refreshToken, "rt_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAA")
    }

    func testCreateChannelRequests() throws {
        let full = try roundTrip(CreateChannelRequest.self, "rest_create_channel_request")
        XCTAssertEqual(full.description, "Company-wide announcements and chatter")
        let minimal = try roundTrip(CreateChannelRequest.self, "rest_create_channel_request_minimal")
        XCTAssertEqual(minimal, CreateChannelRequest(name: "random"))
    }

    func testCreateDMRequest() throws {
        let request = try roundTrip(CreateDMRequest.self, "rest_create_dm_request")
        XCTAssertEqual(request.userID, bob)
    }

    func testChannelsOfBothKinds() throws {
        let group = try roundTrip(Channel.self, "rest_channel_group")
        XCTAssertEqual(group.kind, .group)
        XCTAssertEqual(group.name, "general")
        // Whole seconds, no fraction.
        XCTAssertEqual(group.createdAt, Date(timeIntervalSince1970: 1_736_933_400))

        let direct = try roundTrip(Channel.self, "rest_channel_direct")
        XCTAssertEqual(direct.kind, .direct)
        XCTAssertEqual(direct.name, "Bob")
        XCTAssertEqual(direct.description, "")
        XCTAssertEqual(direct.createdAt, Date(timeIntervalSince1970: 1_736_933_462.5))
    }

    func testListBodies() throws {
        let channels = try roundTrip(ChannelList.self, "rest_channel_list")
        XCTAssertEqual(channels.channels.map(\.id), [general, dm])
        let users = try roundTrip(UserList.self, "rest_user_list")
        XCTAssertEqual(users.users.map(\.username), ["alice", "bob"])
        let members = try roundTrip(MemberList.self, "rest_member_list")
        XCTAssertEqual(members.members.map(\.id), [alice, bob])
    }

    func testPresenceList() throws {
        let list = try roundTrip(PresenceList.self, "rest_presence_list")
        XCTAssertEqual(list.members.map(\.userID), [alice, bob])
        XCTAssertEqual(list.members.map(\.online), [true, false])
        XCTAssertNil(list.members[0].lastSeenAt, "online: null")
        let seen = try XCTUnwrap(list.members[1].lastSeenAt)
        XCTAssertEqual(seen.timeIntervalSince1970, 1_736_935_661.25, accuracy: 0.000_001)
    }

    func testDirectoryPages() throws {
        let page = try roundTrip(DirectoryPage.self, "rest_directory_page")
        XCTAssertEqual(page.channels.map(\.id), [general, "0190a2b4-0000-7000-8000-000000000003"])
        XCTAssertEqual(page.channels.map(\.memberCount), [42, 1])
        XCTAssertEqual(page.channels.map(\.isMember), [true, false])
        let activity = try XCTUnwrap(page.channels[0].lastActivityAt)
        XCTAssertEqual(activity.timeIntervalSince1970, 1_736_935_323.456789, accuracy: 0.000_001)
        XCTAssertNil(page.channels[1].lastActivityAt, "no message yet: null")
        XCTAssertNotNil(page.nextCursor)
        let last = try roundTrip(DirectoryPage.self, "rest_directory_page_last")
        XCTAssertEqual(last, DirectoryPage(channels: [], nextCursor: nil))
    }

    func testMessageWithMicrosecondTimestamp() throws {
        let message = try roundTrip(Message.self, "rest_message")
        XCTAssertEqual(message.id, "e306304c-6327-59de-a612-0d1570b3b35e")
        XCTAssertEqual(message.channelID, general)
        XCTAssertEqual(message.senderID, alice)
        XCTAssertEqual(message.clientMsgID, firstClientMsgID)
        XCTAssertEqual(message.body, "Hello, world! 👋 «quotes» and \"escapes\"")
        XCTAssertEqual(message.seq, 41)
        XCTAssertEqual(message.createdAt.timeIntervalSince1970, 1_736_933_530.123456, accuracy: 0.000_001)
    }

    func testMessageListIsInChannelOrder() throws {
        let list = try roundTrip(MessageList.self, "rest_message_list")
        XCTAssertEqual(list.messages.map(\.seq), [41, 42])
        XCTAssertEqual(list.messages[1].body, "Hi Alice.\nTwo lines.")
    }

    func testErrorBody() throws {
        let body = try roundTrip(ErrorBody.self, "rest_error")
        XCTAssertEqual(body.error.code, "username_taken")
        XCTAssertEqual(body.error.message, "that username is already taken")
    }

    /// Browsers open their socket with a single-use ticket (`POST /ws-tickets`); this client
    /// sets the Authorization header instead and has no type for it. The shape is still
    /// checked here, so a change to it shows up on this side too.
    func testWebSocketTicketShape() throws {
        let object = try JSONSerialization.jsonObject(with: try fixture("rest_ws_ticket"))
        let fields = try XCTUnwrap(object as? [String: Any])
        XCTAssertEqual(Set(fields.keys), ["ticket", "expires_in"])
        XCTAssertNotNil(fields["ticket"] as? String)
        XCTAssertEqual(fields["expires_in"] as? Int, 30)
    }

    // MARK: - Client frames

    func testSendFrame() throws {
        let frame = try roundTrip(ClientFrame.self, "ws_client_send")
        XCTAssertEqual(frame, .send(channelID: general, clientMsgID: firstClientMsgID, body: "Hello, world! 👋"))
    }

    func testResumeFrame() throws {
        let frame = try roundTrip(ClientFrame.self, "ws_client_resume")
        guard case .resume(let channels) = frame else {
            return XCTFail("expected resume, got \(frame)")
        }
        XCTAssertEqual(Set(channels.keys), [general, dm])
        XCTAssertEqual(channels[general], "d43e0ba6-9293-5c89-963f-7a17cc77f9c6")
    }

    func testPingFrame() throws {
        XCTAssertEqual(try roundTrip(ClientFrame.self, "ws_client_ping"), .ping)
    }

    func testTypingFrame() throws {
        XCTAssertEqual(try roundTrip(ClientFrame.self, "ws_client_typing"), .typing(channelID: general))
    }

    // MARK: - Server frames

    func testReadyFrame() throws {
        let frame = try roundTrip(ServerFrame.self, "ws_server_ready")
        XCTAssertEqual(frame, .ready(userID: alice, connectionID: "gw-1:0190a2b4-0000-7000-8000-00000000c0c0"))
    }

    func testAckFrameCarriesAMessageWithoutSeq() throws {
        let frame = try roundTrip(ServerFrame.self, "ws_server_ack")
        guard case let .ack(clientMsgID, message) = frame else {
            return XCTFail("expected ack, got \(frame)")
        }
        XCTAssertEqual(clientMsgID, firstClientMsgID)
        XCTAssertEqual(message.clientMsgID, firstClientMsgID)
        XCTAssertNil(message.seq)
    }

    func testMessageFrameCarriesSeq() throws {
        let frame = try roundTrip(ServerFrame.self, "ws_server_message")
        guard case .message(let message) = frame else {
            return XCTFail("expected message, got \(frame)")
        }
        XCTAssertEqual(message.seq, 42)
        XCTAssertEqual(message.senderID, bob)
        XCTAssertEqual(message.createdAt.timeIntervalSince1970, 1_736_933_531.5, accuracy: 0.000_001)
    }

    func testResumedFrame() throws {
        let frame = try roundTrip(ServerFrame.self, "ws_server_resumed")
        XCTAssertEqual(frame, .resumed(channelIDs: [general, dm]))
    }

    func testErrorFrames() throws {
        let general = try roundTrip(ServerFrame.self, "ws_server_error")
        XCTAssertEqual(general, .error(FrameError(
            code: FrameErrorCode.malformedFrame,
            message: "expected a JSON text frame with a `type` field"
        )))
        let forSend = try roundTrip(ServerFrame.self, "ws_server_error_for_send")
        XCTAssertEqual(forSend, .error(FrameError(
            code: FrameErrorCode.notAMember,
            message: "you are not a member of this channel",
            clientMsgID: secondClientMsgID
        )))
        let limited = try roundTrip(ServerFrame.self, "ws_server_error_rate_limited")
        XCTAssertEqual(limited, .error(FrameError(
            code: FrameErrorCode.rateLimited,
            message: "too many messages; resend this one after retry_after_ms",
            clientMsgID: secondClientMsgID,
            retryAfterMs: 250
        )))
    }

    func testTypingAndPresenceFrames() throws {
        XCTAssertEqual(
            try roundTrip(ServerFrame.self, "ws_server_typing"),
            .typing(channelID: general, userID: bob, expiresInMs: Limits.typingExpiresMs)
        )
        XCTAssertEqual(
            try roundTrip(ServerFrame.self, "ws_server_presence_online"),
            .presence(userID: bob, online: true, lastSeenAt: nil)
        )
        let offline = try roundTrip(ServerFrame.self, "ws_server_presence_offline")
        guard case let .presence(userID, online, lastSeenAt) = offline else {
            return XCTFail("expected presence, got \(offline)")
        }
        XCTAssertEqual(userID, bob)
        XCTAssertFalse(online)
        XCTAssertEqual(try XCTUnwrap(lastSeenAt).timeIntervalSince1970, 1_736_935_661.25, accuracy: 0.000_001)
    }

    func testPongFrame() throws {
        XCTAssertEqual(try roundTrip(ServerFrame.self, "ws_server_pong"), .pong)
    }

    func testUnknownServerFrameTypeDoesNotFailDecoding() throws {
        let frame = try WireJSON.decode(ServerFrame.self, from: Data(#"{"type":"sparkle","user_id":"x"}"#.utf8))
        XCTAssertEqual(frame, .unknown(type: "sparkle"))
    }

    // Read state (issue #15 item 1) is served but not yet shown by ChatKit: until it is, the
    // conversation list must still decode as channels, and `read` frames must be ignored.
    func testConversationListStillDecodesAsChannels() throws {
        let list = try WireJSON.decode(ChannelList.self, from: try fixture("rest_conversation_list"))
        XCTAssertEqual(list.channels.map(\.id), [general, dm])
    }

    func testReadFrameIsIgnoredUntilReadStateIsShown() throws {
        let frame = try WireJSON.decode(ServerFrame.self, from: try fixture("ws_server_read"))
        XCTAssertEqual(frame, .unknown(type: "read"))
    }

    func testMarkReadFrameShape() throws {
        let object = try JSONSerialization.jsonObject(with: try fixture("ws_client_mark_read"))
        let dict = try XCTUnwrap(object as? [String: Any])
        XCTAssertEqual(dict["type"] as? String, "mark_read")
        XCTAssertEqual(dict["channel_id"] as? String, general)
        XCTAssertEqual(dict["seq"] as? Int, 2)
    }

    // MARK: - Constants

    func testCloseCodesMatchTheServer() throws {
        let codes = try JSONDecoder().decode([String: Int].self, from: try fixture("ws_close_codes"))
        XCTAssertEqual(codes, [
            "going_away": CloseCode.goingAway,
            "unauthorized": CloseCode.unauthorized,
            "slow_consumer": CloseCode.slowConsumer,
            "idle_timeout": CloseCode.idleTimeout,
            "protocol_error": CloseCode.protocolError,
            "message_too_big": CloseCode.messageTooBig,
        ])
    }

    func testErrorCodesMatchTheServer() throws {
        let codes = try JSONDecoder().decode([String: String].self, from: try fixture("ws_error_codes"))
        XCTAssertEqual(codes, [
            "malformed_frame": FrameErrorCode.malformedFrame,
            "not_a_member": FrameErrorCode.notAMember,
            "unknown_channel": FrameErrorCode.unknownChannel,
            "invalid_body": FrameErrorCode.invalidBody,
            "invalid_client_msg_id": FrameErrorCode.invalidClientMsgID,
            "unknown_message": FrameErrorCode.unknownMessage,
            "unavailable": FrameErrorCode.unavailable,
            "rate_limited": FrameErrorCode.rateLimited,
            "invalid_seq": FrameErrorCode.invalidSeq,
        ])
    }

    func testRestErrorCodesAreOneVocabularyWithTheFrames() throws {
        let codes = try JSONDecoder().decode([String: String].self, from: try fixture("rest_error_codes"))
        XCTAssertFalse(codes.isEmpty)
        for (key, value) in codes {
            XCTAssertEqual(key, value)
        }
        // The codes both sides send mean the same thing.
        for shared in [FrameErrorCode.notAMember, FrameErrorCode.unavailable, FrameErrorCode.rateLimited] {
            XCTAssertEqual(codes[shared], shared)
        }
    }

    func testLimitsMatchTheServer() throws {
        let limits = try JSONDecoder().decode([String: Int].self, from: try fixture("limits"))
        XCTAssertEqual(limits, [
            "username_min": Limits.usernameMin,
            "username_max": Limits.usernameMax,
            "password_min": Limits.passwordMin,
            "password_max": Limits.passwordMax,
            "display_name_max": Limits.displayNameMax,
            "channel_name_max": Limits.channelNameMax,
            "channel_description_max": Limits.channelDescriptionMax,
            "body_max_chars": Limits.bodyMaxChars,
            "client_msg_id_max": Limits.clientMsgIDMax,
            "max_request_bytes": Limits.maxRequestBytes,
            "history_default_limit": Limits.historyDefaultLimit,
            "history_max_limit": Limits.historyMaxLimit,
            "directory_default_limit": Limits.directoryDefaultLimit,
            "directory_max_limit": Limits.directoryMaxLimit,
            "user_search_limit": Limits.userSearchLimit,
            "user_query_max": Limits.userQueryMax,
            "typing_interval_ms": Limits.typingIntervalMs,
            "typing_expires_ms": Limits.typingExpiresMs,
        ])
    }
}
