//! Limits of the public contract (`API.md`), checked by the services and relied on by clients.

/// Usernames: 3 to 32 characters of ASCII letters, digits, `.`, `_`, `-`.
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
/// Passwords: at least 8 characters (Unicode scalar values). The upper bound keeps argon2 cheap.
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

/// Whether `name` is a valid username (length and alphabet; uniqueness is the store's job).
pub fn valid_username(name: &str) -> bool {
    (USERNAME_MIN..=USERNAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `body` is a valid message body: 1 to 4000 characters, not only white space.
pub fn valid_body(body: &str) -> bool {
    let n = body.chars().count();
    (1..=BODY_MAX_CHARS).contains(&n) && !body.trim().is_empty()
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
    fn body_length_counts_characters_not_bytes() {
        assert!(valid_body(&"é".repeat(4000)));
        assert!(!valid_body(&"é".repeat(4001)));
        assert!(valid_body("🦀"));
        assert!(!valid_body(""));
        assert!(!valid_body("   \n"));
    }
}
