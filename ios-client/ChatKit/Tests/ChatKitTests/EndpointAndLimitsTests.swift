import Foundation
import XCTest
@testable import ChatKit

final class ServerEndpointTests: XCTestCase {
    func testDefaultIsTheComposeStack() {
        XCTAssertEqual(ServerEndpoint.localDefault.baseURL.absoluteString, "http://localhost:8080")
        XCTAssertEqual(ServerEndpoint.localDefault.webSocketURL.absoluteString, "ws://localhost:8080/ws")
    }

    func testAcceptsWhatPeopleType() throws {
        let bare = try XCTUnwrap(ServerEndpoint(string: "  192.168.1.20:8080/ "))
        XCTAssertEqual(bare.baseURL.absoluteString, "http://192.168.1.20:8080")
        let secure = try XCTUnwrap(ServerEndpoint(string: "HTTPS://chat.example.com/prefix/"))
        XCTAssertEqual(secure.baseURL.absoluteString, "https://chat.example.com/prefix")
        XCTAssertEqual(secure.webSocketURL.absoluteString, "wss://chat.example.com/prefix/ws")
        XCTAssertEqual(
            try secure.apiURL(path: "channels").absoluteString,
            "https://chat.example.com/prefix/api/v1/channels"
        )
    }

    func testRejectsWhatCannotBeAServer() {
        for text in ["", "ftp://host", "http://", "http://host?x=1", "http://host#top", "http://u:p@host", "ws://host"] {
            XCTAssertNil(ServerEndpoint(string: text), text)
        }
    }

    func testQueryValuesArePercentEncodedIncludingPlus() throws {
        let url = try ServerEndpoint.localDefault.apiURL(
            path: "channels/search",
            query: [URLQueryItem(name: "query", value: "c++ rust")]
        )
        XCTAssertEqual(url.absoluteString, "http://localhost:8080/api/v1/channels/search?query=c%2B%2B%20rust")
    }

    func testPathSegmentsEscapeSlashes() {
        XCTAssertEqual(ServerEndpoint.pathSegment("a/b c"), "a%2Fb%20c")
        XCTAssertEqual(ServerEndpoint.pathSegment("0190a2b4-0000-7000-8000-000000000001"), "0190a2b4-0000-7000-8000-000000000001")
    }

    func testCodableAsAString() throws {
        let data = try JSONEncoder().encode(ServerEndpoint.localDefault)
        XCTAssertEqual(try JSONDecoder().decode(String.self, from: data), "http://localhost:8080")
        XCTAssertEqual(try JSONDecoder().decode(ServerEndpoint.self, from: data), .localDefault)
    }
}

final class LimitsTests: XCTestCase {
    func testUsernamesFollowTheContract() {
        XCTAssertTrue(Limits.isValidUsername("bob"))
        XCTAssertTrue(Limits.isValidUsername("a.b_c-D9"))
        XCTAssertFalse(Limits.isValidUsername("ab"))
        XCTAssertFalse(Limits.isValidUsername(String(repeating: "x", count: 33)))
        XCTAssertFalse(Limits.isValidUsername("bob smith"))
        XCTAssertFalse(Limits.isValidUsername("bøb"))
    }

    func testBodyLengthCountsCharactersNotBytes() {
        XCTAssertTrue(Limits.isValidBody(String(repeating: "é", count: 4000)))
        XCTAssertFalse(Limits.isValidBody(String(repeating: "é", count: 4001)))
        XCTAssertTrue(Limits.isValidBody("🦀"))
        XCTAssertFalse(Limits.isValidBody(""))
        XCTAssertFalse(Limits.isValidBody("   \n"))
    }

    func testAMessageOfFilesMayHaveNoText() {
        XCTAssertTrue(Limits.isValidCaption(""))
        XCTAssertTrue(Limits.isValidCaption("Minutes"))
        XCTAssertFalse(Limits.isValidCaption("  "), "white space alone is not a caption")
        XCTAssertFalse(Limits.isValidCaption(String(repeating: "x", count: 4001)))

        XCTAssertFalse(Limits.isValidMessage(body: "", attachmentCount: 0))
        XCTAssertTrue(Limits.isValidMessage(body: "hi", attachmentCount: 0))
        XCTAssertTrue(Limits.isValidMessage(body: "", attachmentCount: 1))
        XCTAssertTrue(Limits.isValidMessage(body: "", attachmentCount: 4))
        XCTAssertFalse(Limits.isValidMessage(body: "", attachmentCount: 5))
        XCTAssertFalse(Limits.isValidMessage(body: " ", attachmentCount: 1))
    }

    func testEmojiAreOneToSixtyFourBytesWithoutSpaceOrControls() {
        XCTAssertTrue(Limits.isValidEmoji("👍"))
        XCTAssertTrue(Limits.isValidEmoji("👩🏽‍💻"))
        XCTAssertTrue(Limits.isValidEmoji(":party_parrot:"))
        XCTAssertTrue(Limits.isValidEmoji(String(repeating: "x", count: 64)))
        XCTAssertFalse(Limits.isValidEmoji(String(repeating: "x", count: 65)))
        XCTAssertFalse(Limits.isValidEmoji(String(repeating: "👍", count: 17)), "68 bytes")
        XCTAssertFalse(Limits.isValidEmoji(""))
        XCTAssertFalse(Limits.isValidEmoji("👍 "))
        XCTAssertFalse(Limits.isValidEmoji("a\u{7}"))
    }

    func testPasswordsNeedEightCharacters() {
        XCTAssertFalse(Limits.isValidPassword("1234567"))
        XCTAssertTrue(Limits.isValidPassword("12345678"))
    }
}
