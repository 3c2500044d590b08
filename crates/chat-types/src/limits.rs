//! Limits of the public contract (`API.md`), checked by the services and relied on by clients.

/// Usernames: 3 to 32 characters of ASCII letters, digits, `.`, `_`, `-`.
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
/// Passwords: at least 8 characters (Unicode scalar values), not only white space. The upper
/// bound keeps argon2 cheap.
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 1024;
pub const DISPLAY_NAME_MAX: usize = 64;
pub const CHANNEL_NAME_MAX: usize = 80;
pub const CHANNEL_DESCRIPTION_MAX: usize = 1000;
/// Message bodies: 1 to 4000 characters (Unicode scalar values, not bytes).
pub const BODY_MAX_CHARS: usize = 4000;
/// `client_msg_id`: a client-made unique string, usually a UUID.
pub const CLIENT_MSG_ID_MAX: usize = 128;
/// Request bodies over this size are refused with 413.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// History page size.
pub const HISTORY_DEFAULT_LIMIT: u32 = 50;
pub const HISTORY_MAX_LIMIT: u32 = 100;
/// Channel directory page size.
pub const DIRECTORY_DEFAULT_LIMIT: u32 = 20;
pub const DIRECTORY_MAX_LIMIT: u32 = 100;
/// People search: most users in one answer, and the longest query (a display name).
pub const USER_SEARCH_LIMIT: u32 = 20;
pub const USER_QUERY_MAX: usize = DISPLAY_NAME_MAX;
/// Typing indicators: at most one `typing` per user and channel is forwarded per this interval
/// (per gateway); the others are dropped silently. Clients send one at most this often while
/// the user types.
pub const TYPING_INTERVAL_MS: u64 = 2000;
/// How long a `typing` indicator is shown without another one (`expires_in_ms` of the frame):
/// longer than the interval clients resend at, so it stays up while the user keeps typing.
pub const TYPING_EXPIRES_MS: u64 = 5000;

/// `GET /channels`: unread messages are counted up to this many (a client shows "9999+").
pub const UNREAD_COUNT_MAX: u32 = 9_999;
/// `GET /channels`: characters of the last message's body in its preview.
pub const PREVIEW_MAX_CHARS: usize = 140;
/// Distinct `@username` mentions recognised in one message.
pub const MENTIONS_MAX: usize = 20;
/// Bytes of a push device token (hexadecimal: twice as many digits). APNs tokens are 32 bytes;
/// Apple asks providers not to rely on that.
pub const DEVICE_TOKEN_MIN_BYTES: usize = 16;
pub const DEVICE_TOKEN_MAX_BYTES: usize = 100;
/// Characters of an app bundle id (Apple's limit).
pub const BUNDLE_ID_MAX: usize = 155;
/// Devices per user; registering one more forgets the one registered longest ago.
pub const DEVICES_PER_USER_MAX: usize = 20;

/// Attachments: characters of a file name.
pub const ATTACHMENT_NAME_MAX: usize = 255;
/// Attachments: the default largest file in bytes (the API's `api.attachment_max_bytes`).
pub const ATTACHMENT_MAX_BYTES: u64 = 25 * 1024 * 1024;
/// Attachments: uploads a user may have created and not yet completed; one more is refused
/// until one completes, or for an hour after its creation (then it is abandoned and swept).
pub const PENDING_UPLOADS_PER_USER_MAX: i64 = 20;
/// Attachments one message carries.
pub const ATTACHMENTS_PER_MESSAGE_MAX: usize = 4;
/// Seconds an upload URL stays valid.
pub const UPLOAD_URL_SECS: u64 = 15 * 60;
/// Seconds after its creation during which an upload not completed may still be given a new
/// upload URL; after that it is abandoned (`unknown_attachment`) and the sweeper removes it.
/// The sweeper waits longer than this plus [`UPLOAD_URL_SECS`], so no upload can land in the
/// store after its attachment was swept.
pub const UPLOAD_RENEWABLE_SECS: u64 = 60 * 60;
/// Seconds a download link stays valid.
pub const DOWNLOAD_URL_SECS: u64 = 5 * 60;
/// Attachment types accepted. Nothing a browser would run in our origin (no `text/html`, no
/// `image/svg+xml`); nginx serves the files with a sandboxing CSP all the same.
pub const ATTACHMENT_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "application/zip",
    "video/mp4",
    "audio/mpeg",
    "audio/mp4",
];

/// Whether `name` may name an attachment: 1 to 255 characters, none of them
/// [forbidden in names](is_forbidden_in_names) (control characters, bidi overrides that make
/// `"\u{202e}gnp.exe"` read as `exe.png`, invisible format characters), and no `/`.
pub fn valid_attachment_name(name: &str) -> bool {
    (1..=ATTACHMENT_NAME_MAX).contains(&name.chars().count())
        && !name.chars().any(|c| c == '/' || is_forbidden_in_names(c))
}

/// Whether files of `content_type` may be attached (exactly one of [`ATTACHMENT_TYPES`]; no
/// parameters such as `; charset=`: the upload URL binds the type byte for byte).
pub fn valid_attachment_type(content_type: &str) -> bool {
    ATTACHMENT_TYPES.contains(&content_type)
}

/// Whether `name` is a valid username (length and alphabet; uniqueness is the store's job).
pub fn valid_username(name: &str) -> bool {
    (USERNAME_MIN..=USERNAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `c` may not appear in a name people read (display names, channel names): control
/// characters (Cc), the line and paragraph separators, and format characters (Cf) such as the
/// bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069) that make `"\u{202e}gnp.exe"`
/// read as `exe.png`, zero-width spaces and the byte-order mark. The zero-width joiner and
/// non-joiner (U+200D, U+200C) stay allowed: emoji sequences and several scripts need them.
pub fn is_forbidden_in_names(c: char) -> bool {
    if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
        return true;
    }
    if matches!(c, '\u{200c}' | '\u{200d}') {
        return false;
    }
    // General category Cf (Unicode 15.1).
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// Whether `name` is a valid display name: 1 to 64 characters (after trimming white space), none
/// of them [forbidden in names](is_forbidden_in_names).
pub fn valid_display_name(name: &str) -> bool {
    let name = name.trim();
    (1..=DISPLAY_NAME_MAX).contains(&name.chars().count())
        && !name.chars().any(is_forbidden_in_names)
}

/// Whether `name` is a valid channel name: 1 to 80 characters (after trimming white space),
/// none of them [forbidden in names](is_forbidden_in_names).
pub fn valid_channel_name(name: &str) -> bool {
    let name = name.trim();
    (1..=CHANNEL_NAME_MAX).contains(&name.chars().count())
        && !name.chars().any(is_forbidden_in_names)
}

/// Whether `description` is a valid channel description: at most 1000 characters after
/// trimming white space. (NUL characters are refused in every field, before this.)
pub fn valid_description(description: &str) -> bool {
    description.trim().chars().count() <= CHANNEL_DESCRIPTION_MAX && !description.contains('\0')
}

/// Whether `query` is a valid `GET /users?query=`: 1 to 64 characters after trimming, no NUL.
pub fn valid_user_query(query: &str) -> bool {
    (1..=USER_QUERY_MAX).contains(&query.trim().chars().count()) && !query.contains('\0')
}

/// Whether `query` is a valid `GET /channels/search?query=`: at most 80 characters after
/// trimming (no channel name is longer), no NUL.
pub fn valid_channel_query(query: &str) -> bool {
    query.trim().chars().count() <= CHANNEL_NAME_MAX && !query.contains('\0')
}

/// Whether `password` is acceptable for a new account: 8 to 1024 characters, not only white space.
pub fn valid_password(password: &str) -> bool {
    (PASSWORD_MIN..=PASSWORD_MAX).contains(&password.chars().count()) && !password.trim().is_empty()
}

/// Whether `id` is a valid `client_msg_id`: 1 to 128 characters.
pub fn valid_client_msg_id(id: &str) -> bool {
    (1..=CLIENT_MSG_ID_MAX).contains(&id.chars().count())
}

/// Bytes of a reaction's `emoji` (one emoji, however many code points: flags, skin tones and
/// ZWJ sequences run to ~35 bytes; custom `:short_name:`s fit too).
pub const EMOJI_MAX_BYTES: usize = 64;

/// Whether `emoji` may be a reaction: 1 to 64 bytes, no white space, no control characters.
pub fn valid_emoji(emoji: &str) -> bool {
    (1..=EMOJI_MAX_BYTES).contains(&emoji.len())
        && !emoji.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `body` is a valid message body: 1 to 4000 characters, not only white space.
/// A device token: hexadecimal, a whole number of bytes within the limits.
pub fn valid_device_token(token: &str) -> bool {
    let n = token.len();
    n.is_multiple_of(2)
        && (DEVICE_TOKEN_MIN_BYTES * 2..=DEVICE_TOKEN_MAX_BYTES * 2).contains(&n)
        && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A bundle id: reverse-DNS labels of ASCII letters, digits and hyphens, at least two.
pub fn valid_bundle_id(id: &str) -> bool {
    id.len() <= BUNDLE_ID_MAX
        && id.split('.').count() >= 2
        && id
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

pub fn valid_body(body: &str) -> bool {
    let n = body.chars().count();
    (1..=BODY_MAX_CHARS).contains(&n) && !body.trim().is_empty()
}

/// The body of a message that carries attachments: empty (the files say it all) or a valid
/// body. An empty `send` without attachments is still `invalid_body`.
pub fn valid_caption(body: &str) -> bool {
    body.is_empty() || valid_body(body)
}

/// The usernames a body mentions, lowercased, each once, in order, at most [`MENTIONS_MAX`]:
/// `@` at the start or after a character that cannot be in a username, followed by a valid
/// username (the longest run of username characters). `a@b.c` is not a mention; `(@bob)` is.
/// Whether such a user exists and is a member is the message server's question.
pub fn mentioned_usernames(body: &str) -> Vec<String> {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let bytes = body.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() && out.len() < MENTIONS_MAX {
        if bytes[i] == b'@' && (i == 0 || !is_name(bytes[i - 1]) && bytes[i - 1] != b'@') {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && is_name(bytes[end]) {
                end += 1;
            }
            // A sentence's full stop is not part of the name: "thanks @bob."
            let mut name = &body[start..end];
            name = name.trim_end_matches('.');
            if valid_username(name) {
                let lower = name.to_ascii_lowercase();
                if !out.contains(&lower) {
                    out.push(lower);
                }
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_contract() {
        assert!(valid_username("bob"));
        assert!(valid_username("a.b_c-D9"));
        assert!(!valid_username("ab"));
        assert!(!valid_username(&"x".repeat(33)));
        assert!(!valid_username("bob smith"));
        assert!(!valid_username("bøb"));
    }

    #[test]
    fn names_refuse_controls_bidi_and_invisible_format_characters() {
        assert!(valid_display_name("Carol 🌸 Ünïcode"));
        assert!(valid_display_name("Family 👨\u{200d}👩\u{200d}👧"));
        assert!(valid_display_name("می\u{200c}خواهم"));
        assert!(valid_display_name(&"é".repeat(DISPLAY_NAME_MAX)));
        assert!(!valid_display_name(&"é".repeat(DISPLAY_NAME_MAX + 1)));
        assert!(!valid_display_name("   "));
        for bad in [
            "\u{202e}gnp.exe admin",
            "a\u{2066}b",
            "zero\u{200b}width",
            "\u{feff}bom",
            "soft\u{ad}hyphen",
            "tag\u{e0041}",
            "nul\u{0}",
            "bell\u{7}",
            "tab\there",
            "line\u{2028}separator",
            "c1\u{85}control",
        ] {
            assert!(!valid_display_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn passwords_of_only_white_space_are_refused() {
        assert!(valid_password("correct horse"));
        assert!(valid_password("  spaced  "));
        assert!(!valid_password("        "));
        assert!(!valid_password("\t\n \u{3000}    "));
        assert!(!valid_password("short"));
        assert!(!valid_password(&"p".repeat(PASSWORD_MAX + 1)));
    }

    #[test]
    fn body_length_counts_characters_not_bytes() {
        assert!(valid_body(&"é".repeat(4000)));
        assert!(!valid_body(&"é".repeat(4001)));
        assert!(valid_body("🦀"));
        assert!(!valid_body(""));
        assert!(!valid_body("   \n"));
    }

    #[test]
    fn device_tokens_and_bundle_ids() {
        assert!(valid_device_token(&"aB".repeat(32)));
        assert!(!valid_device_token(&"a".repeat(63)), "half a byte");
        assert!(!valid_device_token(&"g".repeat(64)));
        assert!(!valid_device_token(&"a".repeat(30)));
        assert!(!valid_device_token(&"a".repeat(202)));
        assert!(valid_bundle_id("com.example.Chat-App"));
        assert!(!valid_bundle_id("chat"));
        assert!(!valid_bundle_id("com..chat"));
        assert!(!valid_bundle_id("com.chat\0"));
        assert!(!valid_bundle_id(&format!("com.{}", "a".repeat(160))));
    }

    #[test]
    fn attachment_names_refuse_slashes_controls_and_bidi_tricks() {
        assert!(valid_attachment_name("IMG_0042.jpg"));
        assert!(valid_attachment_name("Résumé (final) 🦀.pdf"));
        assert!(valid_attachment_name(&"é".repeat(ATTACHMENT_NAME_MAX)));
        assert!(!valid_attachment_name(&"é".repeat(ATTACHMENT_NAME_MAX + 1)));
        assert!(!valid_attachment_name(""));
        for bad in [
            "../etc/passwd",
            "a/b.txt",
            "nul\u{0}.txt",
            "line\nbreak.txt",
            "\u{202e}gnp.exe",
            "zero\u{200b}width.png",
            "c1\u{85}.txt",
        ] {
            assert!(!valid_attachment_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_listed_attachment_types_are_accepted() {
        for ok in ATTACHMENT_TYPES {
            assert!(valid_attachment_type(ok), "{ok}");
        }
        for bad in [
            "text/html",
            "image/svg+xml",
            "IMAGE/PNG",
            "image/png; charset=binary",
            "",
            "application/octet-stream",
        ] {
            assert!(!valid_attachment_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn mentions_are_recognised_where_people_write_them() {
        assert_eq!(mentioned_usernames("hi @Bob and @alice."), ["bob", "alice"]);
        assert_eq!(
            mentioned_usernames("@bob @BOB (@carol) @x"),
            ["bob", "carol"]
        );
        assert!(mentioned_usernames("mail a@b.com or @@bob").is_empty());
        assert!(mentioned_usernames("@").is_empty());
        assert_eq!(mentioned_usernames("é@dave"), ["dave"]);
        let many: String = (0..30).map(|i| format!("@user{i} ")).collect();
        assert_eq!(mentioned_usernames(&many).len(), MENTIONS_MAX);
    }
}
