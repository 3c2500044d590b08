import Foundation

/// RFC 3339 timestamps as the server writes them: `2025-01-15T09:32:10.123456Z`, with any number
/// of fractional digits or none, in UTC or with a numeric offset.
///
/// Hand-written instead of `ISO8601DateFormatter`: that formatter either requires or rejects a
/// fraction depending on its options, keeps only milliseconds, behaves differently on Linux, and
/// is not `Sendable`. This one is a pure function.
public enum RFC3339 {
    /// Parses a timestamp; `nil` when `string` is not RFC 3339.
    public static func date(from string: String) -> Date? {
        var scanner = ByteCursor(bytes: Array(string.utf8))
        guard
            let year = scanner.digits(4), scanner.skip("-"),
            let month = scanner.digits(2), scanner.skip("-"),
            let day = scanner.digits(2), scanner.skip("T", "t", " "),
            let hour = scanner.digits(2), scanner.skip(":"),
            let minute = scanner.digits(2), scanner.skip(":"),
            let second = scanner.digits(2)
        else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }

        var nanoseconds = 0
        if scanner.skip(".") {
            var count = 0
            while let digit = scanner.digit() {
                // Digits past nanoseconds are below what a Date can hold anyway.
                if count < 9 {
                    nanoseconds = nanoseconds * 10 + digit
                }
                count += 1
            }
            guard count > 0 else { return nil }
            for _ in min(count, 9)..<9 {
                nanoseconds *= 10
            }
        }

        let offsetSeconds: Int
        if scanner.skip("Z", "z") {
            offsetSeconds = 0
        } else if let sign = scanner.sign(),
                  let offsetHours = scanner.digits(2), scanner.skip(":"),
                  let offsetMinutes = scanner.digits(2),
                  offsetHours <= 23, offsetMinutes <= 59 {
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        } else {
            return nil
        }
        guard scanner.isAtEnd else { return nil }

        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return Date(timeIntervalSince1970: Double(seconds) + Double(nanoseconds) / 1_000_000_000)
    }

    /// Formats a date in UTC, with as many fractional digits as it needs: none, 3 or 6
    /// (microseconds, the server's precision).
    public static func string(from date: Date) -> String {
        let totalMicroseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let totalSeconds = floorDivide(totalMicroseconds, 1_000_000)
        let microseconds = Int(totalMicroseconds - totalSeconds * 1_000_000)
        let days = floorDivide(totalSeconds, 86_400)
        let secondOfDay = Int(totalSeconds - days * 86_400)
        let (year, month, day) = civilFromDays(Int(days))

        var text = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T"
        text += "\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))"
        if microseconds != 0 {
            text += microseconds % 1000 == 0 ? ".\(pad(microseconds / 1000, 3))" : ".\(pad(microseconds, 6))"
        }
        return text + "Z"
    }

    // MARK: - Calendar arithmetic (proleptic Gregorian, after Howard Hinnant's algorithms)

    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let shiftedMonth = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2:
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            return leap ? 29 : 28
        case 4, 6, 9, 11:
            return 30
        default:
            return 31
        }
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// A cursor over the UTF-8 bytes of a timestamp.
    private struct ByteCursor {
        let bytes: [UInt8]
        var index = 0

        var isAtEnd: Bool { index == bytes.count }

        mutating func digit() -> Int? {
            guard index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 else { return nil }
            defer { index += 1 }
            return Int(bytes[index] - 0x30)
        }

        mutating func digits(_ count: Int) -> Int? {
            let start = index
            var value = 0
            for _ in 0..<count {
                guard let next = digit() else {
                    index = start
                    return nil
                }
                value = value * 10 + next
            }
            return value
        }

        mutating func skip(_ accepted: Unicode.Scalar...) -> Bool {
            guard index < bytes.count, accepted.contains(where: { UInt8($0.value) == bytes[index] }) else {
                return false
            }
            index += 1
            return true
        }

        mutating func sign() -> Int? {
            if skip("+") { return 1 }
            if skip("-") { return -1 }
            return nil
        }
    }
}
