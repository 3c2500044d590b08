//! The text rules of [`crate::limits`] as regular expressions, for the OpenAPI document (JSON
//! Schema `pattern`), so a client or a schema-driven tester knows exactly what the API accepts.
//! Each pattern accepts a string exactly when the API's check does; the tests here (and the fuzz
//! target `rest_body`) hold them to that.
//!
//! The dialect is the common part of ECMA-262 (JSON Schema), Python's `re` and Rust's `regex`:
//! character classes, `\uXXXX` escapes for the Basic Multilingual Plane, literal characters
//! above it, bounded repetition, no look-around.

use crate::limits;

/// White space as `str::trim` removes it (Unicode `White_Space`), as ranges.
pub const WHITE_SPACE: &[(u32, u32)] = &[
    (0x09, 0x0D),
    (0x20, 0x20),
    (0x85, 0x85),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
];

/// The characters [forbidden in names](limits::is_forbidden_in_names), as ranges.
pub const FORBIDDEN_IN_NAMES: &[(u32, u32)] = &[
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0xAD, 0xAD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200B),
    (0x200E, 0x200F),
    (0x2028, 0x2029),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

const NUL: &[(u32, u32)] = &[(0, 0)];

/// One character of a class: `\uXXXX` in the Basic Multilingual Plane, the character itself
/// above it (ECMA-262 without the `u` flag has no escape for those).
fn char_in_class(c: u32) -> String {
    if c <= 0xFFFF {
        format!("\\u{c:04X}")
    } else {
        char::from_u32(c).expect("a scalar value").to_string()
    }
}

/// `[^...]`: any character outside all of `sets`.
fn none_of(sets: &[&[(u32, u32)]]) -> String {
    let mut class = String::from("[^");
    for &(lo, hi) in sets.iter().flat_map(|s| s.iter()) {
        class.push_str(&char_in_class(lo));
        if hi != lo {
            class.push('-');
            class.push_str(&char_in_class(hi));
        }
    }
    class.push(']');
    class
}

/// `[...]`: any white space character.
fn white_space() -> String {
    none_of(&[WHITE_SPACE]).replacen("[^", "[", 1)
}

/// White space around a core of 1 to `max` characters from `inner`, whose first and last are
/// not white space (the core is what remains after trimming).
fn trimmed(inner_sets: &[&[(u32, u32)]], max: usize, optional: bool) -> String {
    let w = white_space();
    let inner = none_of(inner_sets);
    let mut edge_sets = inner_sets.to_vec();
    edge_sets.push(WHITE_SPACE);
    let edge = none_of(&edge_sets);
    let core = format!("{edge}(?:{inner}{{0,{}}}{edge})?", max - 2);
    let core = if optional {
        format!("(?:{core})?")
    } else {
        core
    };
    format!("^{w}*{core}{w}*$")
}

/// Any text without a NUL character (stored text cannot hold one).
pub fn text() -> String {
    format!("^{}*$", none_of(&[NUL]))
}

/// An attachment's file name: 1 to 255 characters, none forbidden in names, no `/`.
pub fn attachment_name() -> String {
    format!(
        "^{}{{1,{}}}$",
        none_of(&[FORBIDDEN_IN_NAMES, &[(0x2F, 0x2F)]]),
        limits::ATTACHMENT_NAME_MAX
    )
}

/// A channel name: 1 to 80 characters once trimmed, none forbidden in names.
pub fn channel_name() -> String {
    trimmed(&[FORBIDDEN_IN_NAMES], limits::CHANNEL_NAME_MAX, false)
}

/// A display name at registration: empty once trimmed (the username is used), or 1 to 64
/// characters none forbidden in names.
pub fn display_name() -> String {
    trimmed(&[FORBIDDEN_IN_NAMES], limits::DISPLAY_NAME_MAX, true)
}

/// A channel description: at most 1000 characters once trimmed, no NUL.
pub fn description() -> String {
    let w = white_space();
    format!(
        "^{w}*{}{{0,{}}}{w}*$",
        none_of(&[NUL]),
        limits::CHANNEL_DESCRIPTION_MAX
    )
}

/// A new password: not only white space, no NUL (the length is `minLength`/`maxLength`).
pub fn password() -> String {
    let any = none_of(&[NUL]);
    format!("^{any}*{}{any}*$", none_of(&[NUL, WHITE_SPACE]))
}

/// `GET /users?query=`: a username prefix or part of a display name, 1 to 64 characters once
/// trimmed, no NUL.
pub fn user_query() -> String {
    trimmed(&[NUL], limits::USER_QUERY_MAX, false)
}

/// `GET /channels/search?query=`: at most 80 characters once trimmed, no NUL.
pub fn channel_query() -> String {
    let w = white_space();
    format!(
        "^{w}*{}{{0,{}}}{w}*$",
        none_of(&[NUL]),
        limits::CHANNEL_NAME_MAX
    )
}

/// A device token: hexadecimal, a whole number of bytes ([`limits::valid_device_token`]).
pub fn device_token() -> String {
    format!(
        "^(?:[0-9A-Fa-f]{{2}}){{{},{}}}$",
        limits::DEVICE_TOKEN_MIN_BYTES,
        limits::DEVICE_TOKEN_MAX_BYTES
    )
}

/// A bundle id ([`limits::valid_bundle_id`]; the length is `maxLength`).
pub fn bundle_id() -> String {
    "^[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+$".into()
}

/// Whether `c` is in one of `ranges`.
pub fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    ranges
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&(c as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    #[test]
    fn the_tables_are_the_checks() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(in_ranges(WHITE_SPACE, c), c.is_whitespace(), "{c:?}");
            assert_eq!(
                in_ranges(FORBIDDEN_IN_NAMES, c),
                limits::is_forbidden_in_names(c),
                "{c:?}"
            );
        }
    }

    fn samples() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            " ",
            "a",
            " a ",
            "ab",
            "general",
            "  general  ",
            "\tgen\n",
            "a\u{0}b",
            "\u{0}",
            "a b",
            "\u{202e}gnp.exe",
            "zero\u{200b}w",
            "Family 👨\u{200d}👩",
            "tag\u{e0041}",
            "\u{3000}x\u{3000}",
            "\u{1c}x",
            "x\u{85}",
            "🦀",
            "       ",
            "passw0rd",
            "        ",
            "\u{feff}x",
            "a\tb",
            "é",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [
            7, 8, 31, 32, 33, 63, 64, 65, 79, 80, 81, 999, 1000, 1001, 1024, 1025,
        ] {
            v.push("x".repeat(n));
            v.push(format!("  {}  ", "é".repeat(n)));
            v.push(format!("a{}b", " ".repeat(n.saturating_sub(2))));
        }
        v
    }

    fn agree(pattern: &str, accepts: impl Fn(&str) -> bool) {
        let re = Regex::new(pattern).unwrap();
        for s in samples() {
            assert_eq!(re.is_match(&s), accepts(&s), "{pattern} on {s:?}");
        }
    }

    #[test]
    fn each_pattern_accepts_what_the_api_accepts() {
        agree(&channel_name(), limits::valid_channel_name);
        agree(&display_name(), |s| {
            s.trim().is_empty() || limits::valid_display_name(s)
        });
        agree(&description(), limits::valid_description);
        agree(&user_query(), limits::valid_user_query);
        agree(&channel_query(), limits::valid_channel_query);
        agree(&text(), |s| !s.contains('\0'));
        agree(&attachment_name(), limits::valid_attachment_name);
        let tokens = [
            "ab".repeat(16),
            "AB".repeat(100),
            "ab".repeat(101),
            "a".repeat(63),
            "0g".repeat(32),
        ];
        let ids = [
            "com.example.chat",
            "chat",
            "a.b",
            "com..x",
            "com.ex ample",
            ".a.b",
        ];
        let re = Regex::new(&device_token()).unwrap();
        for t in tokens
            .iter()
            .map(String::as_str)
            .chain(samples().iter().map(String::as_str))
        {
            assert_eq!(re.is_match(t), limits::valid_device_token(t), "{t:?}");
        }
        let re = Regex::new(&bundle_id()).unwrap();
        for id in ids
            .iter()
            .copied()
            .chain(samples().iter().map(String::as_str))
        {
            let by_schema = re.is_match(id) && id.chars().count() <= limits::BUNDLE_ID_MAX;
            assert_eq!(by_schema, limits::valid_bundle_id(id), "{id:?}");
        }
        // Length is minLength/maxLength in the document.
        let pw = Regex::new(&password()).unwrap();
        for s in samples() {
            let n = s.chars().count();
            let by_schema =
                pw.is_match(&s) && (limits::PASSWORD_MIN..=limits::PASSWORD_MAX).contains(&n);
            assert_eq!(
                by_schema,
                limits::valid_password(&s) && !s.contains('\0'),
                "{s:?}"
            );
        }
    }
}
