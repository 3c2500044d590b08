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
    private let firstMessageID = "e306304c-6327-59de-a612-0d1570b3b35e"
    private let eventID = "83dcc787-93b2-5e62-8a20-3cc3c345e0c8"
    private let editEventID = "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51"

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
        // Its creator owns it.
        XCTAssertEqual(group.createdBy, alice)
        XCTAssertTrue(group.isOwned(by: alice))
        XCTAssertFalse(group.isOwned(by: bob))

        let direct = try roundTrip(Channel.self, "rest_channel_direct")
        XCTAssertEqual(direct.kind, .direct)
        XCTAssertEqual(direct.name, "Bob")
        XCTAssertEqual(direct.description, "")
        XCTAssertEqual(direct.createdAt, Date(timeIntervalSince1970: 1_736_933_462.5))
        // A direct conversation has no owner: `created_by` is absent (and stays so when encoded).
        XCTAssertNil(direct.createdBy)
        XCTAssertFalse(direct.isOwned(by: alice))
    }

    /// `created_by` absent (a direct conversation, or a server before owners) decodes as nil and
    /// encodes absent, not null.
    func testChannelWithoutCreatorEncodesWithoutTheKey() throws {
        var group = try roundTrip(Channel.self, "rest_channel_group")
        group.createdBy = nil
        let object = try JSONSerialization.jsonObject(with: try WireJSON.encode(group))
        let keys = Set(try XCTUnwrap(object as? [String: Any]).keys)
        XCTAssertFalse(keys.contains("created_by"), "\(keys)")
        XCTAssertEqual(try WireJSON.decode(Channel.self, from: try WireJSON.encode(group)), group)
    }

    func testListBodies() throws {
        let channels = try roundTrip(ChannelList.self, "rest_channel_list")
        XCTAssertEqual(channels.channels.map(\.id), [general, dm])
        XCTAssertEqual(channels.channels.map(\.createdBy), [alice, nil])
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

    /// Messages of servers without edits and reactions (no such keys) decode as unchanged ones,
    /// and encode without the keys.
    func testMessagesWithoutChangesHaveNoneOfTheNewFields() throws {
        let message = try roundTrip(Message.self, "rest_message")
        XCTAssertNil(message.editedAt)
        XCTAssertFalse(message.deleted)
        XCTAssertNil(message.replyTo)
        XCTAssertEqual(message.reactions, [])
        XCTAssertEqual(message.mentions, [])
        XCTAssertEqual(message.attachments, [])
        let object = try JSONSerialization.jsonObject(with: try WireJSON.encode(message))
        let keys = Set(try XCTUnwrap(object as? [String: Any]).keys)
        XCTAssertTrue(keys.isDisjoint(with: ["edited_at", "deleted", "reply_to", "reactions", "mentions", "attachments"]), "\(keys)")
    }

    func testMessageListWithEditsReactionsRepliesAndATombstone() throws {
        let list = try roundTrip(MessageList.self, "rest_message_list_with_changes")
        // Positions 43 (and 45-) are events: message seqs skip them.
        XCTAssertEqual(list.messages.map(\.seq), [41, 42, 44])

        let edited = list.messages[0]
        XCTAssertEqual(edited.body, "Hello, world! (edited) @bob")
        // `@bob` is a member: the server resolved the name to his id.
        XCTAssertEqual(edited.mentions, [bob])
        XCTAssertTrue(edited.mentions(userID: bob))
        XCTAssertFalse(edited.mentions(userID: alice))
        XCTAssertEqual(try XCTUnwrap(edited.editedAt).timeIntervalSince1970, 1_736_934_000.25, accuracy: 0.000_001)
        XCTAssertFalse(edited.deleted)
        XCTAssertEqual(edited.reactions, [
            Reaction(emoji: "👍", count: 2, me: true),
            Reaction(emoji: "🎉", count: 1, me: false),
        ])
        XCTAssertNil(edited.replyTo)

        let reply = list.messages[1]
        XCTAssertEqual(reply.replyTo, ReplyPreview(
            id: firstMessageID,
            seq: 41,
            senderID: alice,
            preview: "Hello, world! (edited) @bob",
            deleted: false
        ))
        XCTAssertNil(reply.editedAt)
        XCTAssertEqual(reply.reactions, [])
        XCTAssertEqual(reply.mentions, [], "no mention: the key is absent")

        let tombstone = list.messages[2]
        XCTAssertTrue(tombstone.deleted)
        XCTAssertEqual(tombstone.body, "")
        XCTAssertEqual(tombstone.reactions, [])
        XCTAssertEqual(tombstone.mentions, [])
    }

    /// An empty mention list is left out when encoding, like the server does.
    func testMessageMentionsAreOmittedWhenEmpty() throws {
        var message = try roundTrip(Message.self, "rest_message")
        message.mentions = [bob, alice]
        let object = try JSONSerialization.jsonObject(with: try WireJSON.encode(message))
        XCTAssertEqual(try XCTUnwrap(object as? [String: Any])["mentions"] as? [String], [bob, alice], "in the body's order")
        XCTAssertEqual(try WireJSON.decode(Message.self, from: try WireJSON.encode(message)), message)
        message.mentions = []
        try assertSameJSON(try WireJSON.encode(message), try fixture("rest_message"))
    }

    func testReplyPreviewOfADeletedMessage() throws {
        let json = #"{"id":"m1","seq":7,"sender_id":"u1","preview":"","deleted":true}"#
        let preview = try WireJSON.decode(ReplyPreview.self, from: Data(json.utf8))
        XCTAssertEqual(preview, ReplyPreview(id: "m1", seq: 7, senderID: "u1", preview: "", deleted: true))
        try assertSameJSON(try WireJSON.encode(preview), Data(json.utf8))
        XCTAssertEqual(ReplyPreview.preview(of: String(repeating: "é", count: 200)), String(repeating: "é", count: 140))
        XCTAssertEqual(ReplyPreview.preview(of: "short"), "short")
    }

    // MARK: - Push notifications

    private let deviceToken = "5e0f2a8c0b1d4e7f9a3c6b2d8e1f4a7c0b3d6e9f2a5c8b1d4e7f0a3c6b9d2e5f"

    func testRegisterDeviceRequest() throws {
        let request = try roundTrip(RegisterDeviceRequest.self, "rest_register_device_request")
        XCTAssertEqual(request, RegisterDeviceRequest(platform: .apns, token: deviceToken, environment: .sandbox, bundleID: "com.example.chat"))
        // What the app builds from the OS's token is this body.
        try assertSameJSON(
            try WireJSON.encode(RegisterDeviceRequest(token: deviceToken, environment: .sandbox, bundleID: "com.example.chat")),
            try fixture("rest_register_device_request")
        )
    }

    func testDevice() throws {
        let device = try roundTrip(Device.self, "rest_device")
        XCTAssertEqual(device.platform, .apns)
        XCTAssertEqual(device.token, deviceToken)
        XCTAssertEqual(device.id, deviceToken)
        XCTAssertEqual(device.environment, .sandbox)
        XCTAssertEqual(device.bundleID, "com.example.chat")
        XCTAssertEqual(RFC3339.string(from: device.createdAt), "2025-01-15T09:30:05.500Z")
        XCTAssertEqual(device.updatedAt, RFC3339.date(from: "2025-01-16T08:00:00Z"))
    }

    func testDeviceListIsMostRecentFirst() throws {
        let list = try roundTrip(DeviceList.self, "rest_device_list")
        XCTAssertEqual(list.devices.map(\.environment), [.sandbox, .production])
        XCTAssertEqual(list.devices.map(\.platform), [.apns, .apns])
        XCTAssertEqual(list.devices.first?.token, deviceToken)
    }

    func testADeviceOfAnUnknownPlatformStillDecodes() throws {
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: try fixture("rest_device")) as? [String: Any])
        object["platform"] = "webpush"
        let data = try JSONSerialization.data(withJSONObject: object)
        let device = try WireJSON.decode(Device.self, from: data)
        XCTAssertEqual(device.platform, .other("webpush"))
        try assertSameJSON(try WireJSON.encode(device), data)
    }

    func testNotificationLevels() throws {
        let request = try roundTrip(SetNotificationLevel.self, "rest_set_notification_level")
        XCTAssertEqual(request.level, .mentions)
        let channel = try roundTrip(ChannelNotifications.self, "rest_channel_notifications")
        XCTAssertEqual(channel, ChannelNotifications(channelID: general, level: .muted))
        // The wire's names, in the picker's order.
        XCTAssertEqual(NotificationLevel.allCases.map(\.rawValue), ["all", "mentions", "none"])
        XCTAssertEqual(NotificationLevel.allCases.map(\.title), ["All", "Mentions", "None"])
    }

    func testNotificationPreferences() throws {
        let preferences = try roundTrip(NotificationPreferences.self, "rest_notification_preferences")
        XCTAssertEqual(preferences, NotificationPreferences(hidePreviews: true))
        // `false` is sent, not left out: the server's field is not optional.
        XCTAssertEqual(String(decoding: try WireJSON.encode(NotificationPreferences()), as: UTF8.self), #"{"hide_previews":false}"#)
    }

    // MARK: - Attachments

    private let attachmentID = "0190a2b4-1234-7000-8000-000000000a77"
    private let thirdClientMsgID = "5f0c8a52-8a8e-4a8e-9a43-0d4f6f1f6c13"
    private let imageID = "0190a2b4-0000-7000-8000-00000000f001"
    private let pdfID = "0190a2b4-0000-7000-8000-00000000f002"

    /// The two files of the `*_attachments` fixtures: a photo (measured upright) and a PDF.
    private var messageAttachments: [MessageAttachment] {
        [
            MessageAttachment(id: imageID, name: "IMG_0042.jpg", contentType: "image/jpeg", size: 2_483_921, width: 3024, height: 4032),
            MessageAttachment(id: pdfID, name: "minutes 2025-01-15.pdf", contentType: "application/pdf", size: 88_311),
        ]
    }

    func testCreateAttachment() throws {
        let request = try roundTrip(CreateAttachment.self, "rest_create_attachment")
        XCTAssertEqual(request, CreateAttachment(name: "IMG_0042.jpg", contentType: "image/jpeg", size: 2_483_921))
    }

    func testAttachmentUpload() throws {
        let upload = try roundTrip(AttachmentUpload.self, "rest_attachment_upload")
        XCTAssertEqual(upload.id, attachmentID)
        XCTAssertEqual(upload.upload.method, "PUT")
        XCTAssertEqual(upload.upload.headers, ["content-length": "2483921", "content-type": "image/jpeg"])
        XCTAssertEqual(upload.expiresIn, 900)
    }

    func testAttachments() throws {
        let ready = try roundTrip(Attachment.self, "rest_attachment")
        XCTAssertEqual(ready.id, attachmentID)
        XCTAssertEqual(ready.state, .ready)
        XCTAssertEqual(ready.width, 3024)
        XCTAssertEqual(ready.height, 4032)
        XCTAssertEqual(ready.createdAt, RFC3339.date(from: "2025-01-15T09:31:00Z"))
        let pending = try roundTrip(Attachment.self, "rest_attachment_pending")
        XCTAssertEqual(pending.state, .pending)
        XCTAssertNil(pending.width)
        XCTAssertNil(pending.height)
        XCTAssertEqual(pending.contentType, "application/pdf")
    }

    /// The files a message carries, as history has them: enough to lay them out.
    func testMessageWithAttachments() throws {
        let message = try roundTrip(Message.self, "rest_message_with_attachments")
        XCTAssertEqual(message.body, "", "files alone: the body may be empty")
        XCTAssertEqual(message.clientMsgID, thirdClientMsgID)
        XCTAssertEqual(message.seq, 43)
        XCTAssertEqual(message.attachments, messageAttachments)
        let image = message.attachments[0]
        XCTAssertTrue(image.isImage)
        XCTAssertEqual(try XCTUnwrap(image.aspectRatio), 0.75, accuracy: 0.000_001)
        let pdf = message.attachments[1]
        XCTAssertFalse(pdf.isImage)
        XCTAssertNil(pdf.aspectRatio)

        // Taken away, the key is left out again, like the server does.
        var plain = message
        plain.attachments = []
        let object = try JSONSerialization.jsonObject(with: try WireJSON.encode(plain))
        XCTAssertNil(try XCTUnwrap(object as? [String: Any])["attachments"])
    }

    /// A completed upload (`…/complete`) becomes the attachment its message will carry.
    func testACompletedUploadIsWhatTheMessageCarries() throws {
        let ready = try roundTrip(Attachment.self, "rest_attachment")
        XCTAssertEqual(
            MessageAttachment(ready),
            MessageAttachment(id: attachmentID, name: ready.name, contentType: "image/jpeg", size: ready.size, width: 3024, height: 4032)
        )
    }

    func testAttachmentLinks() throws {
        let withThumbnail = try roundTrip(AttachmentLink.self, "rest_attachment_link")
        XCTAssertEqual(withThumbnail.thumbnail, .ready)
        XCTAssertNotNil(withThumbnail.thumbnailURL)
        XCTAssertEqual(withThumbnail.expiresIn, 300)
        let file = try roundTrip(AttachmentLink.self, "rest_attachment_link_no_thumbnail")
        XCTAssertEqual(file.thumbnail, .unavailable)
        XCTAssertEqual(file.thumbnail.rawValue, "none")
        XCTAssertNil(file.thumbnailURL)
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

    func testSendFrameWithAReply() throws {
        let frame = try roundTrip(ClientFrame.self, "ws_client_send_reply")
        XCTAssertEqual(frame, .reply(channelID: general, clientMsgID: secondClientMsgID, body: "Agreed!", replyTo: firstMessageID))
        // What the realtime client puts on the wire for a queued reply, and for a plain send.
        let reply = PendingSend(clientMsgID: secondClientMsgID, channelID: general, body: "Agreed!", replyTo: firstMessageID)
        try assertSameJSON(try WireJSON.encode(reply.frame), try fixture("ws_client_send_reply"))
        let plain = PendingSend(clientMsgID: firstClientMsgID, channelID: general, body: "Hello, world! 👋")
        try assertSameJSON(try WireJSON.encode(plain.frame), try fixture("ws_client_send"))
    }

    func testSendFrameWithAttachments() throws {
        let frame = try roundTrip(ClientFrame.self, "ws_client_send_attachments")
        XCTAssertEqual(frame, .sendWithAttachments(
            channelID: general,
            clientMsgID: thirdClientMsgID,
            body: "",
            attachments: [imageID, pdfID],
            replyTo: nil
        ))
        // What the realtime client puts on the wire for a queued send of files alone.
        let pending = PendingSend(clientMsgID: thirdClientMsgID, channelID: general, body: "", attachments: messageAttachments)
        try assertSameJSON(try WireJSON.encode(pending.frame), try fixture("ws_client_send_attachments"))

        // With a reply, both keys; a caption is the body.
        let reply = PendingSend(clientMsgID: thirdClientMsgID, channelID: general, body: "Minutes", replyTo: firstMessageID, attachments: messageAttachments)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: try WireJSON.encode(reply.frame)) as? [String: Any])
        XCTAssertEqual(object["reply_to"] as? String, firstMessageID)
        XCTAssertEqual(object["attachments"] as? [String], [imageID, pdfID])
        XCTAssertEqual(object["body"] as? String, "Minutes")
        XCTAssertEqual(try WireJSON.decode(ClientFrame.self, from: try WireJSON.encode(reply.frame)), reply.frame)

        // Without files the frame is exactly a plain send: no empty `attachments` key.
        let none = ClientFrame.sendWithAttachments(
            channelID: general,
            clientMsgID: firstClientMsgID,
            body: "Hello, world! 👋",
            attachments: [],
            replyTo: nil
        )
        try assertSameJSON(try WireJSON.encode(none), try fixture("ws_client_send"))
    }

    func testChangeFrames() throws {
        let edit = try roundTrip(ClientFrame.self, "ws_client_edit")
        XCTAssertEqual(edit, .edit(
            channelID: general,
            messageID: firstMessageID,
            clientEventID: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51",
            body: "Hello, world! (edited)"
        ))
        let delete = try roundTrip(ClientFrame.self, "ws_client_delete")
        XCTAssertEqual(delete, .delete(channelID: general, messageID: firstMessageID, clientEventID: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a52"))
        let react = try roundTrip(ClientFrame.self, "ws_client_react")
        XCTAssertEqual(react, .react(channelID: general, messageID: firstMessageID, clientEventID: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a53", emoji: "👍"))
        let unreact = try roundTrip(ClientFrame.self, "ws_client_unreact")
        XCTAssertEqual(unreact, .unreact(channelID: general, messageID: firstMessageID, clientEventID: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a54", emoji: "👍"))

        // A queued change encodes to exactly these frames.
        let changes: [(ChangeRequest, String, String)] = [
            (.edit(body: "Hello, world! (edited)"), "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51", "ws_client_edit"),
            (.delete, "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a52", "ws_client_delete"),
            (.react(emoji: "👍"), "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a53", "ws_client_react"),
            (.unreact(emoji: "👍"), "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a54", "ws_client_unreact"),
        ]
        for (change, clientEventID, name) in changes {
            let pending = PendingChange(clientEventID: clientEventID, channelID: general, messageID: firstMessageID, change: change)
            try assertSameJSON(try WireJSON.encode(pending.frame), try fixture(name))
        }
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

    func testMessageFrameWithAttachments() throws {
        let frame = try roundTrip(ServerFrame.self, "ws_server_message_attachments")
        guard case .message(let message) = frame else {
            return XCTFail("expected message, got \(frame)")
        }
        XCTAssertEqual(message.attachments, messageAttachments)
        XCTAssertEqual(message.body, "")
        XCTAssertEqual(message.seq, 43)
        XCTAssertEqual(message.senderID, alice)
        // History has the same message.
        XCTAssertEqual(message, try WireJSON.decode(Message.self, from: try fixture("rest_message_with_attachments")))
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
        let forEvent = try roundTrip(ServerFrame.self, "ws_server_error_for_event")
        XCTAssertEqual(forEvent, .error(FrameError(
            code: FrameErrorCode.notAuthor,
            message: "only the author may edit a message",
            clientEventID: editEventID
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

    func testEventAckFrame() throws {
        XCTAssertEqual(
            try roundTrip(ServerFrame.self, "ws_server_event_ack"),
            .eventAck(clientEventID: editEventID, eventID: eventID)
        )
    }

    /// The four kinds of `event` frame: one flat object with a `kind`.
    func testEventFrames() throws {
        struct NotAnEvent: Error {}
        func event(_ frame: ServerFrame, file: StaticString = #filePath, line: UInt = #line) throws -> ChannelEvent {
            guard case .event(let event) = frame else {
                XCTFail("expected event, got \(frame)", file: file, line: line)
                throw NotAnEvent()
            }
            XCTAssertEqual(event.id, eventID, file: file, line: line)
            XCTAssertEqual(event.channelID, general, file: file, line: line)
            XCTAssertEqual(event.actorID, alice, file: file, line: line)
            XCTAssertEqual(event.messageID, firstMessageID, file: file, line: line)
            XCTAssertEqual(event.messageSeq, 41, file: file, line: line)
            XCTAssertEqual(event.clientEventID, editEventID, file: file, line: line)
            XCTAssertEqual(event.createdAt.timeIntervalSince1970, 1_736_934_000.25, accuracy: 0.000_001, file: file, line: line)
            return event
        }
        let edited = try event(roundTrip(ServerFrame.self, "ws_server_event_edited"))
        XCTAssertEqual(edited.seq, 45)
        XCTAssertEqual(edited.change, .edited(body: "Hello, world! (edited) @bob", mentions: [bob]))
        let deleted = try event(roundTrip(ServerFrame.self, "ws_server_event_deleted"))
        XCTAssertEqual(deleted.seq, 46)
        XCTAssertEqual(deleted.change, .deleted)
        let added = try event(roundTrip(ServerFrame.self, "ws_server_event_reaction_added"))
        XCTAssertEqual(added.seq, 47)
        XCTAssertEqual(added.change, .reactionAdded(emoji: "👍", count: 2))
        let removed = try event(roundTrip(ServerFrame.self, "ws_server_event_reaction_removed"))
        XCTAssertEqual(removed.seq, 48)
        XCTAssertEqual(removed.change, .reactionRemoved(emoji: "👍", count: 1))
    }

    /// An edit whose new body mentions no one has no `mentions` key, and decodes with none.
    func testAnEditWithoutMentionsHasNoMentionsKey() throws {
        guard case .event(var event) = try roundTrip(ServerFrame.self, "ws_server_event_edited") else {
            return XCTFail("expected an event")
        }
        event.change = .edited(body: "Hello, world!", mentions: [])
        let data = try WireJSON.encode(ServerFrame.event(event))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let fields = try XCTUnwrap(object["event"] as? [String: Any])
        XCTAssertNil(fields["mentions"])
        XCTAssertEqual(fields["body"] as? String, "Hello, world!")
        XCTAssertEqual(try WireJSON.decode(ServerFrame.self, from: data), .event(event))
    }

    func testAnEventOfAnUnknownKindStillDecodes() throws {
        let json = #"{"type":"event","event":{"id":"e","channel_id":"c","seq":9,"actor_id":"u","message_id":"m","message_seq":3,"client_event_id":"x","created_at":"2025-01-15T09:40:00Z","kind":"pinned","by":"u"}}"#
        let frame = try WireJSON.decode(ServerFrame.self, from: Data(json.utf8))
        guard case .event(let event) = frame else { return XCTFail("\(frame)") }
        XCTAssertEqual(event.change, .unknown(kind: "pinned"))
        XCTAssertEqual(event.seq, 9)
    }

    func testPongFrame() throws {
        XCTAssertEqual(try roundTrip(ServerFrame.self, "ws_server_pong"), .pong)
    }

    func testUnknownServerFrameTypeDoesNotFailDecoding() throws {
        let frame = try WireJSON.decode(ServerFrame.self, from: Data(#"{"type":"sparkle","user_id":"x"}"#.utf8))
        XCTAssertEqual(frame, .unknown(type: "sparkle"))
    }

    // MARK: - Read state

    /// `GET /channels`: each conversation is a channel's fields plus its read state, flat.
    func testConversationListCarriesReadState() throws {
        let list = try roundTrip(ConversationList.self, "rest_conversation_list")
        XCTAssertEqual(list.channels.map(\.id), [general, dm])
        let group = list.channels[0]
        XCTAssertEqual(group.channel.name, "general")
        XCTAssertEqual(group.channel.createdBy, alice)
        XCTAssertEqual(group.headSeq, 2)
        XCTAssertEqual(group.readSeq, 1)
        XCTAssertEqual(group.unreadCount, 1)
        XCTAssertEqual(group.mentionCount, 1)
        let last = try XCTUnwrap(group.lastMessage)
        XCTAssertEqual(last.seq, 2)
        XCTAssertEqual(last.senderID, bob)
        XCTAssertEqual(last.preview, "Hi Alice.\nTwo lines.")
        XCTAssertEqual(last.createdAt.timeIntervalSince1970, 1_736_933_531.5, accuracy: 0.000_001)

        let direct = list.channels[1]
        XCTAssertEqual(direct.channel.kind, .direct)
        XCTAssertNil(direct.channel.createdBy)
        XCTAssertNil(direct.lastMessage, "null before the first message")
        XCTAssertEqual([direct.headSeq, direct.readSeq], [0, 0])
        XCTAssertEqual([direct.unreadCount, direct.mentionCount], [0, 0])

        // The same body still reads as plain channels.
        let channels = try WireJSON.decode(ChannelList.self, from: try fixture("rest_conversation_list"))
        XCTAssertEqual(channels.channels, list.channels.map(\.channel))
    }

    /// A server before read state lists plain channels: they decode as conversations with
    /// nothing unread.
    func testPlainChannelsDecodeAsReadConversations() throws {
        let list = try WireJSON.decode(ConversationList.self, from: try fixture("rest_channel_list"))
        XCTAssertEqual(list.channels.map(\.id), [general, dm])
        XCTAssertEqual(list.channels.map(\.unreadCount), [0, 0])
        XCTAssertEqual(list.channels.map(\.readSeq), [0, 0])
        XCTAssertNil(list.channels[0].lastMessage)
    }

    func testReadFrame() throws {
        XCTAssertEqual(try roundTrip(ServerFrame.self, "ws_server_read"), .read(channelID: general, seq: 2))
    }

    func testMarkReadFrame() throws {
        XCTAssertEqual(try roundTrip(ClientFrame.self, "ws_client_mark_read"), .markRead(channelID: general, seq: 2))
    }

    func testAppStateFrame() throws {
        XCTAssertEqual(try roundTrip(ClientFrame.self, "ws_client_app_state"), .appState(.background))
        // What the realtime client writes when the app goes to the background, and when it is
        // back (the same frame with the other state).
        try assertSameJSON(try WireJSON.encode(ClientFrame.appState(.background)), try fixture("ws_client_app_state"))
        let foreground = try JSONSerialization.jsonObject(with: try WireJSON.encode(ClientFrame.appState(.foreground)))
        XCTAssertEqual(foreground as? [String: String], ["type": "app_state", "state": "foreground"])
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
            "not_author": FrameErrorCode.notAuthor,
            "message_deleted": FrameErrorCode.messageDeleted,
            "invalid_emoji": FrameErrorCode.invalidEmoji,
            "invalid_client_event_id": FrameErrorCode.invalidClientEventID,
            "invalid_attachment": FrameErrorCode.invalidAttachment,
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
        // The REST codes this client acts on are the server's.
        for known in [
            APIErrorCode.notAMember, APIErrorCode.channelNotFound, APIErrorCode.deviceNotFound,
            APIErrorCode.invalidDeviceToken, APIErrorCode.invalidBundleID, APIErrorCode.rateLimited,
            APIErrorCode.unsupportedType, APIErrorCode.attachmentTooLarge, APIErrorCode.tooManyUploads,
            APIErrorCode.uploadIncomplete, APIErrorCode.uploadMismatch, APIErrorCode.unknownAttachment,
        ] {
            XCTAssertEqual(codes[known], known)
        }
    }

    func testAcceptedAttachmentTypesMatchTheServer() throws {
        let types = try JSONDecoder().decode([String].self, from: try fixture("attachment_types"))
        XCTAssertEqual(AttachmentContentType.accepted, types)
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
            "emoji_max_bytes": Limits.emojiMaxBytes,
            "attachments_per_message_max": Limits.attachmentsPerMessageMax,
        ])
    }
}
