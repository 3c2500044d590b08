//! Push notification settings through nginx (issue #16): devices registered, listed, moved to
//! the user who registered a token last, bounded per user and unregistered; notification levels
//! per channel (members only) and the hide-previews preference; bad input refused with a clear
//! error. The notifier that reads them is not built yet.

use chat_client::{Api, Reply};
use chat_e2e::{api, register, unique};
use serde_json::{Value, json};

fn token(n: u32) -> String {
    format!(
        "{:064x}",
        0xa11c_e000_u64 + u64::from(n) + u64::from(rand_tag()) * 1000
    )
}

/// Tokens unique to this run (the devices table outlives test runs).
fn rand_tag() -> u32 {
    use std::sync::OnceLock;
    static TAG: OnceLock<u32> = OnceLock::new();
    *TAG.get_or_init(|| {
        let u = unique("");
        u.bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % 1_000_000
    })
}

fn device(token: &str, environment: &str) -> Value {
    json!({"platform": "apns", "token": token, "environment": environment, "bundle_id": "com.example.chat"})
}

async fn post_device(api: &Api, bearer: &str, body: &Value) -> anyhow::Result<Reply> {
    Ok(api
        .call("POST", "/api/v1/devices", Some(bearer), Some(body))
        .await?)
}

async fn tokens_of(api: &Api, bearer: &str) -> anyhow::Result<Vec<String>> {
    let r = api
        .call("GET", "/api/v1/devices", Some(bearer), None)
        .await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    Ok(r.body["devices"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| d["token"].as_str().unwrap_or_default().to_owned())
        .collect())
}

#[tokio::test]
async fn devices_are_registered_moved_bounded_and_unregistered() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "dv-alice").await?;
    let bob = register(&api, "dv-bob").await?;
    let (a, b) = (alice.access_token.as_str(), bob.access_token.as_str());

    // New: 201, the token stored lowercase; again: 200, first registration kept.
    let t = token(1).to_uppercase();
    let first = post_device(&api, a, &device(&t, "sandbox")).await?;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["token"], t.to_lowercase());
    assert_eq!(first.body["environment"], "sandbox");
    let again = post_device(&api, a, &device(&t.to_lowercase(), "production")).await?;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["created_at"], first.body["created_at"]);
    assert_eq!(again.body["environment"], "production");
    assert_eq!(tokens_of(&api, a).await?, vec![t.to_lowercase()]);

    // Bob registers the same token (the phone changed accounts): it is his now, not Alice's.
    let moved = post_device(&api, b, &device(&t, "production")).await?;
    assert_eq!(moved.status, 201, "new to Bob: {:?}", moved.body);
    assert!(tokens_of(&api, a).await?.is_empty());
    assert_eq!(tokens_of(&api, b).await?, vec![t.to_lowercase()]);

    // Alice cannot unregister Bob's device; Bob can, once.
    let path = format!("/api/v1/devices/{t}");
    let r = api.call("DELETE", &path, Some(a), None).await?;
    assert_eq!((r.status, r.error_code()), (404, Some("device_not_found")));
    let r = api.call("DELETE", &path, Some(b), None).await?;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = api.call("DELETE", &path, Some(b), None).await?;
    assert_eq!((r.status, r.error_code()), (404, Some("device_not_found")));

    // At most 20 per user: the 21st forgets the one registered longest ago.
    for n in 0..21 {
        let r = post_device(&api, a, &device(&token(100 + n), "sandbox")).await?;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let kept = tokens_of(&api, a).await?;
    assert_eq!(kept.len(), 20);
    assert_eq!(kept[0], token(120), "most recent first");
    assert!(!kept.contains(&token(100)), "the oldest was forgotten");
    Ok(())
}

#[tokio::test]
async fn bad_device_registrations_get_clear_errors() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "dv-bad").await?;
    let a = alice.access_token.as_str();
    let ok = token(7);
    let cases: Vec<(Value, &str)> = vec![
        (device("xyz", "sandbox"), "invalid_device_token"),
        (device(&ok[..63], "sandbox"), "invalid_device_token"),
        (device(&"ab".repeat(101), "sandbox"), "invalid_device_token"),
        (
            device(&format!("{}\u{0}", &ok[..62]), "sandbox"),
            "nul_character",
        ),
        (device(&ok, "staging"), "invalid_field"),
        (
            json!({"platform": "fcm", "token": ok, "environment": "sandbox", "bundle_id": "com.example.chat"}),
            "invalid_field",
        ),
        (
            json!({"platform": "apns", "token": ok, "environment": "sandbox", "bundle_id": "chat"}),
            "invalid_bundle_id",
        ),
        // Well formed, but not an app this server's notifier serves (the stack's
        // api.bundle_ids is com.example.chat, the app's).
        (
            json!({"platform": "apns", "token": ok, "environment": "sandbox", "bundle_id": "com.example.other"}),
            "invalid_bundle_id",
        ),
        (
            json!({"platform": "apns", "token": ok, "environment": "sandbox"}),
            "invalid_field",
        ),
        (
            json!({"platform": "apns", "token": 12, "environment": "sandbox", "bundle_id": "com.example.chat"}),
            "invalid_field",
        ),
    ];
    for (body, code) in cases {
        let r = post_device(&api, a, &body).await?;
        assert_eq!((r.status, r.error_code()), (400, Some(code)), "{body}");
    }
    let r = api
        .call("DELETE", "/api/v1/devices/not-hex", Some(a), None)
        .await?;
    assert_eq!(
        (r.status, r.error_code()),
        (400, Some("invalid_device_token"))
    );
    let r = api
        .call(
            "POST",
            "/api/v1/devices",
            None,
            Some(&device(&ok, "sandbox")),
        )
        .await?;
    assert_eq!((r.status, r.error_code()), (401, Some("missing_token")));
    assert!(
        tokens_of(&api, a).await?.is_empty(),
        "nothing stored half-way"
    );
    Ok(())
}

#[tokio::test]
async fn notification_levels_are_per_member_and_channel_and_previews_can_be_hidden()
-> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "nl-alice").await?;
    let bob = register(&api, "nl-bob").await?;
    let (a, b) = (alice.access_token.as_str(), bob.access_token.as_str());
    let ch = api.create_channel(a, &unique("levels "), None).await?.id;
    let path = format!("/api/v1/channels/{ch}/notifications");

    let r = api.call("GET", &path, Some(a), None).await?;
    assert_eq!(
        (r.status, &r.body["level"]),
        (200, &json!("all")),
        "the default"
    );
    for level in ["mentions", "none", "all", "none"] {
        let r = api
            .call("PUT", &path, Some(a), Some(&json!({"level": level})))
            .await?;
        assert_eq!((r.status, &r.body["level"]), (200, &json!(level)));
        assert_eq!(r.body["channel_id"], json!(ch));
    }
    let r = api.call("GET", &path, Some(a), None).await?;
    assert_eq!(r.body["level"], "none");

    // Bob is not a member: no level to read or set; once he joins, his is his own.
    for (method, body) in [("GET", None), ("PUT", Some(json!({"level": "none"})))] {
        let r = api.call(method, &path, Some(b), body.as_ref()).await?;
        assert_eq!((r.status, r.error_code()), (403, Some("not_a_member")));
    }
    api.join(b, ch).await?;
    let r = api.call("GET", &path, Some(b), None).await?;
    assert_eq!(r.body["level"], "all");

    let unknown = format!("/api/v1/channels/{}/notifications", uuid::Uuid::new_v4());
    let r = api
        .call("PUT", &unknown, Some(a), Some(&json!({"level": "all"})))
        .await?;
    assert_eq!((r.status, r.error_code()), (404, Some("channel_not_found")));
    let r = api
        .call("PUT", &path, Some(a), Some(&json!({"level": "loud"})))
        .await?;
    assert_eq!((r.status, r.error_code()), (400, Some("invalid_field")));
    let r = api
        .call("GET", "/api/v1/channels/nope/notifications", Some(a), None)
        .await?;
    assert_eq!((r.status, r.error_code()), (400, Some("invalid_id")));

    // Previews: shown by default; hidden on request.
    let me = "/api/v1/users/me/notifications";
    let r = api.call("GET", me, Some(a), None).await?;
    assert_eq!((r.status, &r.body), (200, &json!({"hide_previews": false})));
    let r = api
        .call("PUT", me, Some(a), Some(&json!({"hide_previews": true})))
        .await?;
    assert_eq!((r.status, &r.body), (200, &json!({"hide_previews": true})));
    assert_eq!(
        api.call("GET", me, Some(a), None).await?.body["hide_previews"],
        true
    );
    assert_eq!(
        api.call("GET", me, Some(b), None).await?.body["hide_previews"],
        false
    );
    let r = api
        .call("PUT", me, Some(a), Some(&json!({"hide_previews": "yes"})))
        .await?;
    assert_eq!((r.status, r.error_code()), (400, Some("invalid_field")));
    Ok(())
}

/// A signed-out phone is never notified: ending a session (logout, logout everywhere) forgets the
/// devices registered in it, and only those.
#[tokio::test]
async fn ending_a_session_forgets_its_devices() -> anyhow::Result<()> {
    let api = api();
    let phone = register(&api, "dv-sess").await?;
    let tablet = api.login(&phone.user.username, chat_e2e::PASSWORD).await?;
    let (t1, t2) = (token(300), token(301));
    post_device(&api, &phone.access_token, &device(&t1, "sandbox")).await?;
    post_device(&api, &tablet.access_token, &device(&t2, "sandbox")).await?;
    assert_eq!(tokens_of(&api, &tablet.access_token).await?.len(), 2);

    api.logout(&phone.refresh_token).await?;
    assert_eq!(
        tokens_of(&api, &tablet.access_token).await?,
        vec![t2.clone()]
    );

    api.logout_all(&tablet.access_token).await?;
    let again = api.login(&phone.user.username, chat_e2e::PASSWORD).await?;
    assert!(tokens_of(&api, &again.access_token).await?.is_empty());
    Ok(())
}
