//! The REST API through nginx: every endpoint's success path and its error paths. Calls the
//! types cannot express (mistyped fields, malformed JSON) go through `Api::call` or raw HTTP.

use chat_client::{Api, DirectChannel, Error, Page};
use chat_e2e::{PASSWORD as PW, api, connect, register, senders, unique};
use chat_types::rest::{ChannelKind, Session};
use chat_types::ws::ServerFrame;
use serde_json::json;

/// The status and error code of a refused call.
fn refused<T: std::fmt::Debug>(r: Result<T, Error>) -> (Option<u16>, Option<String>) {
    let e = r.expect_err("the call should be refused");
    (e.status(), e.code().map(String::from))
}

/// `(Some(status), Some(code))`, to compare with [`refused`].
fn want(status: u16, code: &str) -> (Option<u16>, Option<String>) {
    (Some(status), Some(code.to_string()))
}

#[tokio::test]
async fn register_login_me_and_their_error_paths() -> anyhow::Result<()> {
    let api = api();
    let name = unique("Carol.");
    let s = api.register(&name, PW, Some("Carol 🌸 Ünïcode")).await?;
    assert_eq!(s.user.display_name, "Carol 🌸 Ünïcode");
    assert!(s.expires_in > 0);

    // Unique ignoring case.
    let r = api.register(&name.to_lowercase(), PW, None).await;
    assert_eq!(refused(r), want(409, "username_taken"));

    for (body, code) in [
        (
            json!({"username": "ab", "password": PW}),
            "invalid_username",
        ),
        (
            json!({"username": "has space", "password": PW}),
            "invalid_username",
        ),
        (
            json!({"username": "x".repeat(33), "password": PW}),
            "invalid_username",
        ),
        (
            json!({"username": unique("u"), "password": "short"}),
            "invalid_password",
        ),
        (json!({"username": unique("u")}), "invalid_field"),
        (json!({"username": 5, "password": PW}), "invalid_field"),
        (
            json!({"username": unique("u"), "password": PW, "display_name": "a\u{0007}b"}),
            "invalid_display_name",
        ),
    ] {
        let r = api
            .call("POST", "/api/v1/auth/register", None, Some(&body))
            .await?;
        assert_eq!((r.status, r.error_code()), (400, Some(code)), "{body}");
    }

    // Malformed JSON, wrong content type, oversized body.
    let raw = |body: String, ctype: &'static str| {
        api.http()
            .post(api.url("/api/v1/auth/register"))
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let r = raw("{not json".into(), "application/json").await?;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await?["error"]["code"],
        "malformed_json"
    );
    let r = raw("{}".into(), "text/plain").await?;
    assert_eq!(r.status(), 415);
    let big = format!(
        r#"{{"username":"x","password":"{}"}}"#,
        "p".repeat(1_100_000)
    );
    let r = raw(big, "application/json").await?;
    assert_eq!(r.status(), 413);
    assert!(r.json::<serde_json::Value>().await?["error"]["code"].is_string());

    // Login: the same 401 for a wrong password and an unknown user.
    api.login(&name.to_uppercase(), PW)
        .await
        .expect("login ignores case");
    let wrong = api.login(&name, "wrong password").await.unwrap_err();
    let unknown = api.login(&unique("nobody"), PW).await.unwrap_err();
    assert_eq!((wrong.status(), unknown.status()), (Some(401), Some(401)));
    assert_eq!(
        wrong.to_string(),
        unknown.to_string(),
        "same code and message"
    );

    // me: valid, missing, forged tokens.
    assert_eq!(api.me(&s.access_token).await?, s.user);
    let r = api.call("GET", "/api/v1/users/me", None, None).await?;
    assert_eq!((r.status, r.error_code()), (401, Some("missing_token")));
    let forged = forge(&s.access_token);
    assert_eq!(refused(api.me(&forged).await), want(401, "invalid_token"));
    assert_eq!(refused(api.me("garbage").await), want(401, "invalid_token"));
    Ok(())
}

/// The same claims with a signature that is not ours.
fn forge(token: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[2] = "c2lnbmVkLWJ5LXNvbWVib2R5LWVsc2U";
    parts.join(".")
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() -> anyhow::Result<()> {
    let api = api();
    let s = register(&api, "rot").await?;
    let s1 = api.refresh(&s.refresh_token).await?;
    assert_ne!(s1.refresh_token, s.refresh_token);
    api.me(&s1.access_token).await?;

    // Replaying the first token: refused, and the newer token dies with it.
    let replay = api.refresh(&s.refresh_token).await;
    assert_eq!(refused(replay), want(401, "refresh_token_reused"));
    let after = api.refresh(&s1.refresh_token).await;
    assert_eq!(refused(after).0, Some(401));

    // Logout ends a session; unknown tokens are refused.
    let t = register(&api, "out").await?;
    api.logout(&t.refresh_token).await?;
    let r = api.refresh(&t.refresh_token).await;
    assert_eq!(refused(r), want(401, "invalid_refresh_token"));
    assert_eq!(refused(api.refresh("nope").await).0, Some(401));
    Ok(())
}

#[tokio::test]
async fn users_are_found_by_prefix() -> anyhow::Result<()> {
    let api = api();
    let s = register(&api, "zed").await?;
    let prefix = &s.user.username[..8];
    let found = api
        .search_users(&s.access_token, &prefix.to_uppercase())
        .await?;
    assert!(found.iter().any(|u| u.id == s.user.id));
    let r = api.search_users(&s.access_token, "").await;
    assert_eq!(refused(r), want(400, "invalid_query"));
    api.search_users(&s.access_token, "%")
        .await
        .expect("LIKE wildcards are literal");
    Ok(())
}

#[tokio::test]
async fn channels_can_be_created_found_joined_listed_and_left() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "chan-a").await?;
    let b = register(&api, "chan-b").await?;
    let name = unique("Rust Lovers ");
    let ch = api
        .create_channel(&a.access_token, &name, Some("all things 🦀"))
        .await?;
    assert_eq!(
        (ch.kind, ch.description.as_str()),
        (ChannelKind::Group, "all things 🦀")
    );

    for body in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(81)}),
        json!({"name": 7}),
    ] {
        let r = api
            .call(
                "POST",
                "/api/v1/channels",
                Some(&a.access_token),
                Some(&body),
            )
            .await?;
        assert_eq!(r.status, 400, "{body}");
    }
    let r = api
        .call(
            "POST",
            "/api/v1/channels",
            None,
            Some(&json!({"name": "x"})),
        )
        .await?;
    assert_eq!(r.status, 401);

    // Search by a part of the name, ignoring case.
    let part = name[5..12].to_uppercase();
    let found = api.search_channels(&b.access_token, &part).await?;
    assert!(found.iter().any(|c| c.id == ch.id), "search for {part}");

    // Non-members: no members list, no history.
    let r = api.members(&b.access_token, ch.id).await;
    assert_eq!(refused(r), want(403, "not_a_member"));
    let r = api.history(&b.access_token, ch.id, Page::default()).await;
    assert_eq!(refused(r), want(403, "not_a_member"));

    // Join twice is fine.
    assert_eq!(api.join(&b.access_token, ch.id).await?.id, ch.id);
    assert_eq!(api.join(&b.access_token, ch.id).await?.id, ch.id);
    let members = api.members(&b.access_token, ch.id).await?;
    let mut ids: Vec<_> = members.iter().map(|u| u.id).collect();
    ids.sort();
    let mut want_ids = vec![a.user.id, b.user.id];
    want_ids.sort();
    assert_eq!(ids, want_ids);
    let mine = api.channels(&b.access_token).await?;
    assert!(mine.iter().any(|c| c.id == ch.id));

    // Unknown and malformed ids.
    let unknown = chat_types::ChannelId(uuid::Uuid::now_v7());
    let r = api.join(&b.access_token, unknown).await;
    assert_eq!(refused(r), want(404, "channel_not_found"));
    let r = api
        .call(
            "POST",
            "/api/v1/channels/not-a-uuid/join",
            Some(&b.access_token),
            None,
        )
        .await?;
    assert_eq!((r.status, r.error_code()), (400, Some("invalid_id")));

    // Leave: gone from my list; leaving again is harmless.
    api.leave(&b.access_token, ch.id).await?;
    api.leave(&b.access_token, ch.id).await?;
    let mine = api.channels(&b.access_token).await?;
    assert!(!mine.iter().any(|c| c.id == ch.id));
    Ok(())
}

async fn next_message(ws: &mut chat_client::Connection) -> anyhow::Result<chat_types::Message> {
    let m = ws.next_message().await?;
    Ok(m)
}

async fn dm(api: &Api, me: &Session, other: &Session) -> chat_client::Result<DirectChannel> {
    api.open_dm(&me.access_token, other.user.id).await
}

#[tokio::test]
async fn concurrent_direct_conversation_requests_yield_one_channel() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "dm-a").await?;
    let b = register(&api, "dm-b").await?;
    let (ra, rb) = tokio::join!(dm(&api, &a, &b), dm(&api, &b, &a));
    let (ra, rb) = (ra?, rb?);
    let (ca, cb) = (&ra.channel, &rb.channel);
    assert_eq!(ca.id, cb.id, "the same pair always gets the same channel");
    assert_ne!(ra.created, rb.created, "exactly one request created it");
    assert_eq!(ca.kind, ChannelKind::Direct);
    assert_eq!(ca.name, b.user.display_name, "named after the other user");
    assert_eq!(cb.name, a.user.display_name);

    let again = dm(&api, &a, &b).await?;
    assert_eq!((again.created, again.channel.id), (false, ca.id));

    // A conversation with oneself: a well-formed request the caller may not make (403, as the
    // OpenAPI document says; a 400 would call a schema-valid request malformed).
    let r = api.open_dm(&a.access_token, a.user.id).await;
    assert_eq!(refused(r), want(403, "invalid_user"));
    let nobody = chat_types::UserId(uuid::Uuid::now_v7());
    let r = api.open_dm(&a.access_token, nobody).await;
    assert_eq!(refused(r), want(404, "user_not_found"));
    let c = register(&api, "dm-c").await?;
    let r = api.join(&c.access_token, ca.id).await;
    assert_eq!(
        refused(r).0,
        Some(403),
        "direct conversations cannot be joined"
    );

    // Both can talk in it right away.
    let mut ws_b = connect(&b.access_token).await?;
    let mut ws_a = connect(&a.access_token).await?;
    ws_a.send_message(ca.id, "dm-1", "psst").await?;
    let m = next_message(&mut ws_b).await?;
    assert_eq!((m.channel_id, m.body.as_str()), (ca.id, "psst"));
    Ok(())
}

#[tokio::test]
async fn joins_and_leaves_take_effect_for_realtime_delivery_at_once() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "jl-a").await?;
    let b = register(&api, "jl-b").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("jl-"), None)
        .await?;
    let mut ws_a = connect(&a.access_token).await?;
    let mut ws_b = connect(&b.access_token).await?;

    // Joined: the very next message reaches B.
    api.join(&b.access_token, ch.id).await?;
    ws_a.send_message(ch.id, "m1", "after join").await?;
    assert_eq!(next_message(&mut ws_b).await?.body, "after join");

    // Left: a message sent after the leave answer never reaches B. B re-joins and gets the next
    // one; had the first been delivered, it would have come before it (one order per channel).
    api.leave(&b.access_token, ch.id).await?;
    ws_a.send_message(ch.id, "m2", "while away").await?;
    next_message(&mut ws_a).await?; // m1 own copy
    let m2 = next_message(&mut ws_a).await?;
    assert_eq!(m2.body, "while away");
    api.join(&b.access_token, ch.id).await?;
    ws_a.send_message(ch.id, "m3", "welcome back").await?;
    let got = next_message(&mut ws_b).await?;
    assert_eq!(
        got.body, "welcome back",
        "B must not see the message sent while it was away"
    );

    // B cannot send once the leave is answered, even right after a send of its own was
    // accepted (the gateway caches memberships; a leave must end that at once).
    ws_b.send_message(ch.id, "b0", "still here").await?;
    ws_b.until(|f| match f {
        ServerFrame::Ack { client_msg_id, .. } if client_msg_id == "b0" => Some(()),
        _ => None,
    })
    .await?;
    api.leave(&b.access_token, ch.id).await?;
    ws_b.send_message(ch.id, "b1", "hi?").await?;
    let (code, _) = ws_b
        .until(|f| match f {
            ServerFrame::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(code, "not_a_member");
    Ok(())
}

#[tokio::test]
async fn history_pages_cross_partition_buckets_in_channel_order() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "hist").await?;
    let outsider = register(&api, "hist-x").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("hist-"), None)
        .await?;
    let other = api
        .create_channel(&a.access_token, &unique("hist-o-"), None)
        .await?;
    let mut ws = connect(&a.access_token).await?;
    // 1100 messages: positions 1..=1100 span buckets 0 and 1 (1024 per bucket), sent by six
    // members (within the send rate).
    const N: usize = 1100;
    let mut senders = senders(&api, ch.id, 6).await?;
    for i in 1..=N {
        senders[i % 6]
            .send_message(ch.id, &format!("h-{i}"), &format!("message {i}"))
            .await?;
    }
    let mut last_seq = 0;
    while last_seq < N as i64 {
        if let ServerFrame::Message { message } = ws.next_frame().await? {
            assert_eq!(message.seq, Some(last_seq + 1), "live order");
            last_seq += 1;
        }
    }

    let latest = api.history(&a.access_token, ch.id, Page::default()).await?;
    assert_eq!(latest.len(), 50);
    assert_eq!(latest.last().unwrap().seq, Some(N as i64));
    assert_eq!(latest.first().unwrap().seq, Some(N as i64 - 49));

    // Walk back to the start across the bucket boundary, 100 at a time.
    let mut all = latest.clone();
    loop {
        let first = all.first().unwrap().id;
        let page = api
            .history(&a.access_token, ch.id, Page::before(first, 100))
            .await?;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 100);
        all.splice(0..0, page);
    }
    assert_eq!(all.len(), N);
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m.seq, Some(i as i64 + 1));
    }
    // Every message once (six senders: their messages interleave in any order).
    let bodies: std::collections::HashSet<&str> = all.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies.len(), N);
    assert!((1..=N).all(|i| bodies.contains(format!("message {i}").as_str())));
    // Forward from position 1000 crosses into bucket 1.
    let page = api
        .history(&a.access_token, ch.id, Page::after(all[999].id, 30))
        .await?;
    assert_eq!(
        page.iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>(),
        (1001..=1030).collect::<Vec<_>>()
    );

    // Both cursors: the messages between them, from just after `after`, at most `limit`.
    let between = |after: usize, before: usize, limit: u32| {
        let path = format!(
            "/api/v1/channels/{}/messages?after={}&before={}&limit={limit}",
            ch.id, all[after].id, all[before].id
        );
        let api = &api;
        let token = a.access_token.clone();
        async move {
            let r = api.call("GET", &path, Some(&token), None).await?;
            assert_eq!(r.status, 200, "{path}");
            let list: chat_types::rest::MessageList = serde_json::from_value(r.body)?;
            anyhow::Ok(
                list.messages
                    .iter()
                    .map(|m| m.seq.unwrap())
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(between(9, 20, 50).await?, (11..=20).collect::<Vec<_>>());
    assert_eq!(between(9, 20, 4).await?, (11..=14).collect::<Vec<_>>());
    assert_eq!(between(9, 10, 50).await?, Vec::<i64>::new());
    assert_eq!(between(20, 9, 50).await?, Vec::<i64>::new());

    // Queries the typed pages cannot make: raw.
    for (query, status, code) in [
        ("?limit=0".to_string(), 400, "invalid_limit"),
        ("?limit=101".to_string(), 400, "invalid_limit"),
        ("?limit=abc".to_string(), 400, "invalid_limit"),
        ("?before=nope".to_string(), 400, "invalid_cursor"),
        (
            format!("?before={}", uuid::Uuid::new_v4()),
            404,
            "message_not_found",
        ),
    ] {
        let r = api
            .call(
                "GET",
                &format!("/api/v1/channels/{}/messages{query}", ch.id),
                Some(&a.access_token),
                None,
            )
            .await?;
        assert_eq!((r.status, r.error_code()), (status, Some(code)), "{query}");
    }
    // A cursor from another channel is not a message of this one.
    ws.send_message(other.id, "o-1", "elsewhere").await?;
    let (om, _) = ws
        .until(|f| match f {
            ServerFrame::Message { message } if message.channel_id == other.id => {
                Some(message.clone())
            }
            _ => None,
        })
        .await?;
    let before_other = Page {
        before: Some(om.id),
        ..Page::default()
    };
    let r = api.history(&a.access_token, ch.id, before_other).await;
    assert_eq!(refused(r).0, Some(404));
    let r = api
        .history(&outsider.access_token, ch.id, Page::default())
        .await;
    assert_eq!(refused(r).0, Some(403));
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_the_router_serves_each() -> anyhow::Result<()> {
    let api = api();
    let doc = api.openapi().await?;
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    // The contract of API.md, plus the document and its page, WebSocket tickets, logout
    // everywhere, and what docs/protocol.md adds.
    let mut contract: Vec<(String, String)> = [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/users/me"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/channels"),
        ("GET", "/api/v1/channels"),
        ("GET", "/api/v1/channels/search"),
        // docs/protocol.md: finding channels.
        ("GET", "/api/v1/channels/directory"),
        ("POST", "/api/v1/channels/{channel_id}/join"),
        ("POST", "/api/v1/channels/{channel_id}/leave"),
        ("GET", "/api/v1/channels/{channel_id}/members"),
        // docs/protocol.md: typing and presence.
        ("GET", "/api/v1/channels/{channel_id}/presence"),
        ("POST", "/api/v1/dms"),
        ("GET", "/api/v1/channels/{channel_id}/messages"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/docs"),
        ("POST", "/api/v1/ws-tickets"),
        ("POST", "/api/v1/auth/logout-all"),
        // docs/protocol.md: push notification settings.
        ("POST", "/api/v1/devices"),
        ("GET", "/api/v1/devices"),
        ("DELETE", "/api/v1/devices/{token}"),
        ("GET", "/api/v1/channels/{channel_id}/notifications"),
        ("PUT", "/api/v1/channels/{channel_id}/notifications"),
        ("GET", "/api/v1/users/me/notifications"),
        ("PUT", "/api/v1/users/me/notifications"),
        ("POST", "/api/v1/channels/{channel_id}/attachments"),
        (
            "GET",
            "/api/v1/channels/{channel_id}/attachments/{attachment_id}",
        ),
        (
            "POST",
            "/api/v1/channels/{channel_id}/attachments/{attachment_id}/complete",
        ),
        (
            "POST",
            "/api/v1/channels/{channel_id}/attachments/{attachment_id}/upload-url",
        ),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    contract.sort();
    assert_eq!(documented, contract);

    // Each documented operation is served: it answers with something other than the router's
    // "no such endpoint" (404 not_found) or 405.
    let any_id = uuid::Uuid::now_v7().to_string();
    let any_token = "ab".repeat(32);
    for (method, path) in &documented {
        let path = path
            .replace("{channel_id}", &any_id)
            .replace("{token}", &any_token)
            .replace("{attachment_id}", &any_id);
        let r = api.call(method, &path, None, None).await?;
        assert!(
            r.status != 405 && r.error_code() != Some("not_found"),
            "{method} {path} is documented but not served: {} {}",
            r.status,
            r.body
        );
    }
    let unknown = api.call("GET", "/api/v1/no-such-thing", None, None).await?;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (404, Some("not_found"))
    );
    let page = api.http().get(api.url("/api/v1/docs")).send().await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("openapi.json"));
    Ok(())
}
