import Foundation
import XCTest
@testable import ChatKit

final class RFC3339Tests: XCTestCase {
    func testParsesWithAndWithoutFraction() throws {
        XCTAssertEqual(RFC3339.date(from: "2025-01-15T09:30:00Z"), Date(timeIntervalSince1970: 1_736_933_400))
        XCTAssertEqual(RFC3339.date(from: "2025-01-15T09:30:00.5Z"), Date(timeIntervalSince1970: 1_736_933_400.5))
        let micro = try XCTUnwrap(RFC3339.date(from: "2025-01-15T09:32:10.123456Z"))
        XCTAssertEqual(micro.timeIntervalSince1970, 1_736_933_530.123456, accuracy: 0.000_001)
        let nano = try XCTUnwrap(RFC3339.date(from: "2025-01-15T09:32:10.123456789Z"))
        XCTAssertEqual(nano.timeIntervalSince1970, 1_736_933_530.123457, accuracy: 0.000_001)
        // More digits than a Date can hold are accepted and ignored.
        XCTAssertNotNil(RFC3339.date(from: "2025-01-15T09:32:10.1234567891234Z"))
    }

    func testParsesOffsetsAndLowercase() {
        let utc = RFC3339.date(from: "2025-01-15T09:30:00Z")
        XCTAssertEqual(RFC3339.date(from: "2025-01-15T10:30:00+01:00"), utc)
        XCTAssertEqual(RFC3339.date(from: "2025-01-15T04:00:00-05:30"), utc)
        XCTAssertEqual(RFC3339.date(from: "2025-01-15t09:30:00z"), utc)
        XCTAssertEqual(RFC3339.date(from: "2025-01-15 09:30:00Z"), utc)
    }

    func testRejectsWhatIsNotATimestamp() {
        for text in [
            "", "2025-01-15", "2025-01-15T09:30:00", "2025-01-15T09:30Z", "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z", "2025-01-15T24:00:00Z", "2025-01-15T09:30:00.Z",
            "2025-01-15T09:30:00+0100", "2025-01-15T09:30:00Zjunk", "1736933400",
        ] {
            XCTAssertNil(RFC3339.date(from: text), text)
        }
        XCTAssertNotNil(RFC3339.date(from: "2024-02-29T00:00:00Z"), "leap day")
    }

    func testFormatsWithTheFractionItNeeds() {
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 1_736_933_400)), "2025-01-15T09:30:00Z")
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 1_736_933_400.5)), "2025-01-15T09:30:00.500Z")
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 1_736_933_530.123456)), "2025-01-15T09:32:10.123456Z")
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00Z")
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: -1)), "1969-12-31T23:59:59Z")
    }

    func testRoundTripsOverManyDays() throws {
        var seconds: TimeInterval = -2_000_000_000
        while seconds < 4_000_000_000 {
            let date = Date(timeIntervalSince1970: seconds)
            let parsed = try XCTUnwrap(RFC3339.date(from: RFC3339.string(from: date)))
            XCTAssertEqual(parsed.timeIntervalSince1970, seconds, accuracy: 0.000_001)
            seconds += 86_400 * 37 + 3_661.25
        }
    }

    func testCivilDayArithmeticMatchesKnownDates() {
        XCTAssertEqual(RFC3339.daysFromCivil(year: 1970, month: 1, day: 1), 0)
        XCTAssertEqual(RFC3339.daysFromCivil(year: 2000, month: 3, day: 1), 11_017)
        XCTAssertEqual(RFC3339.civilFromDays(20_103).year, 2025)
        XCTAssertEqual(RFC3339.civilFromDays(20_103).month, 1)
        XCTAssertEqual(RFC3339.civilFromDays(20_103).day, 15)
    }
}
