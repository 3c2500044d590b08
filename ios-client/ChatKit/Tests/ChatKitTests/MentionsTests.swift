import Foundation
import XCTest
@testable import ChatKit

/// `@username` recognised by the server's rule (`chat_types::limits::mentioned_usernames`; the
/// cases are that function's tests).
final class MentionsTests: XCTestCase {
    func testTheServersCases() {
        XCTAssertEqual(Mentions.usernames(in: "hi @Bob and @alice."), ["bob", "alice"])
        XCTAssertEqual(Mentions.usernames(in: "@bob @BOB (@carol) @x"), ["bob", "carol"])
        XCTAssertEqual(Mentions.usernames(in: "mail a@b.com or @@bob"), [])
        XCTAssertEqual(Mentions.usernames(in: "@"), [])
        XCTAssertEqual(Mentions.usernames(in: "é@dave"), ["dave"])
        let many = (0..<30).map { "@user\($0) " }.joined()
        XCTAssertEqual(Mentions.usernames(in: many).count, Limits.mentionsMax)
    }

    func testSpansCoverTheNameAsWrittenWithoutTheFullStop() {
        let body = "thanks @Bob. and @bob again, @no"
        let spans = Mentions.spans(in: body)
        XCTAssertEqual(spans.map(\.username), ["bob", "bob"], "a name written twice is found twice; @no is too short")
        XCTAssertEqual(spans.map { String(body.unicodeScalars[$0.range]) }, ["@Bob", "@bob"])
    }

    func testNamesAfterNonASCIITextAndEmoji() {
        let body = "שלום @dana 👋@eve"
        XCTAssertEqual(Mentions.usernames(in: body), ["dana", "eve"])
    }
}
