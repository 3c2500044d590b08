//! REST request bodies: any bytes either parse into each request type or are refused, never a
//! panic; and for every text field the API checks, the OpenAPI document's pattern accepts a
//! string exactly when the API's check does (what the document declares is what is enforced).
#![no_main]
use chat_types::rest::{
    CreateChannelRequest, CreateDmRequest, LoginRequest, RefreshRequest, RegisterRequest,
};
use chat_types::{limits, patterns};
use libfuzzer_sys::fuzz_target;
use regex::Regex;
use std::sync::LazyLock;

struct Patterns {
    channel_name: Regex,
    display_name: Regex,
    description: Regex,
    password: Regex,
    user_query: Regex,
    channel_query: Regex,
    username: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    channel_name: Regex::new(&patterns::channel_name()).unwrap(),
    display_name: Regex::new(&patterns::display_name()).unwrap(),
    description: Regex::new(&patterns::description()).unwrap(),
    password: Regex::new(&patterns::password()).unwrap(),
    user_query: Regex::new(&patterns::user_query()).unwrap(),
    channel_query: Regex::new(&patterns::channel_query()).unwrap(),
    username: Regex::new("^[A-Za-z0-9._-]{3,32}$").unwrap(),
});

fn check_text(s: &str) {
    let p = &*P;
    assert_eq!(
        p.channel_name.is_match(s),
        limits::valid_channel_name(s),
        "name {s:?}"
    );
    assert_eq!(
        p.display_name.is_match(s),
        s.trim().is_empty() || limits::valid_display_name(s),
        "display name {s:?}"
    );
    assert_eq!(
        p.description.is_match(s),
        limits::valid_description(s),
        "description {s:?}"
    );
    let n = s.chars().count();
    assert_eq!(
        p.password.is_match(s) && (limits::PASSWORD_MIN..=limits::PASSWORD_MAX).contains(&n),
        limits::valid_password(s) && !s.contains('\0'),
        "password {s:?}"
    );
    assert_eq!(
        p.user_query.is_match(s),
        limits::valid_user_query(s),
        "user query {s:?}"
    );
    assert_eq!(
        p.channel_query.is_match(s),
        limits::valid_channel_query(s),
        "channel query {s:?}"
    );
    assert_eq!(
        p.username.is_match(s),
        limits::valid_username(s),
        "username {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<RegisterRequest>(data) {
        check_text(&r.username);
        check_text(&r.password);
        if let Some(d) = &r.display_name {
            check_text(d);
        }
    }
    if let Ok(r) = serde_json::from_slice::<CreateChannelRequest>(data) {
        check_text(&r.name);
    }
    let _ = serde_json::from_slice::<LoginRequest>(data);
    let _ = serde_json::from_slice::<RefreshRequest>(data);
    let _ = serde_json::from_slice::<CreateDmRequest>(data);
    // The raw bytes as one text field, too: most inputs are not JSON objects.
    if let Ok(s) = std::str::from_utf8(data) {
        check_text(s);
    }
});
