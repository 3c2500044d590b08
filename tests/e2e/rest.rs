//! The REST API through nginx: every endpoint's success path and its error paths.

use chat_e2e::{Api, Ws, unique};
use chat_types::rest::{Channel, ChannelKind, ChannelList, MemberList, Session, User, UserList};
use chat_types::ws::ServerFrame;
use serde_json::json;

const PW: &str = "correct horse battery";

#[tokio::test]
async fn register_login_me_and_their_error_paths() -> anyhow::Result<()> {
    let api = Api::default();
    let name = unique("Carol.");
    let r = api
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"username": name, "password": PW, "display_name": "Carol 🌸 Ünïcode"})),
        )
        .await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let s: Session = r.json()?;
    assert_eq!(s.user.display_name, "Carol 🌸 Ünïcode");
    assert!(s.expires_in > 0);

    // Unique ignoring case.
    let r = api
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"username": name.to_lowercase(), "password": PW})),
        )
        .await?;
    assert_eq!((r.status, r.error_code()), (409, Some("username_taken")));

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
            .call("POST", "/api/v1/auth/register", None, Some(body.clone()))
            .await?;
        assert_eq!((r.status, r.error_code()), (400, Some(code)), "{body}");
    }

    // Malformed JSON, wrong content type, oversized body.
    let raw = |body: &'static str, ctype: &'static str| {
        api.http
            .post(format!("{}/api/v1/auth/register", api.base))
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let r = raw("{not json", "application/json").await?;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await?["error"]["code"],
        "malformed_json"
    );
    let r = raw("{}", "text/plain").await?;
    assert_eq!(r.status(), 415);
    let big = format!(
        r#"{{"username":"x","password":"{}"}}"#,
        "p".repeat(1_100_000)
    );
    let r = api
        .http
        .post(format!("{}/api/v1/auth/register", api.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await?;
    assert_eq!(r.status(), 413);
    assert!(r.json::<serde_json::Value>().await?["error"]["code"].is_string());

    // Login: the same 401 for a wrong password and an unknown user.
    let ok = api.login(&name.to_uppercase(), PW).await?;
    assert_eq!(ok.status, 200, "login ignores case");
    let wrong = api.login(&name, "wrong password").await?;
    let unknown = api.login(&unique("nobody"), PW).await?;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);

    // me: valid, missing, forged tokens.
    let me: User = api
        .call("GET", "/api/v1/users/me", Some(&s.access_token), None)
        .await?
        .json()?;
    assert_eq!(me, s.user);
    let r = api.call("GET", "/api/v1/users/me", None, None).await?;
    assert_eq!((r.status, r.error_code()), (401, Some("missing_token")));
    let forged = forge(&s.access_token);
    let r = api
        .call("GET", "/api/v1/users/me", Some(&forged), None)
        .await?;
    assert_eq!((r.status, r.error_code()), (401, Some("invalid_token")));
    let r = api
        .call("GET", "/api/v1/users/me", Some("garbage"), None)
        .await?;
    assert_eq!((r.status, r.error_code()), (401, Some("invalid_token")));
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
    let api = Api::default();
    let s = api.register("rot").await?;
    let r1 = api
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": s.refresh_token})),
        )
        .await?;
    assert_eq!(r1.status, 200);
    let s1: Session = r1.json()?;
    assert_ne!(s1.refresh_token, s.refresh_token);
    let me = api
        .call("GET", "/api/v1/users/me", Some(&s1.access_token), None)
        .await?;
    assert_eq!(me.status, 200);

    // Replaying the first token: refused, and the newer token dies with it.
    let replay = api
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": s.refresh_token})),
        )
        .await?;
    assert_eq!(
        (replay.status, replay.error_code()),
        (401, Some("refresh_token_reused"))
    );
    let after = api
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": s1.refresh_token})),
        )
        .await?;
    assert_eq!(after.status, 401);

    // Logout ends a session; unknown tokens are refused.
    let t = api.register("out").await?;
    let r = api
        .call(
            "POST",
            "/api/v1/auth/logout",
            None,
            Some(json!({"refresh_token": t.refresh_token})),
        )
        .await?;
    assert_eq!(r.status, 204);
    let r = api
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": t.refresh_token})),
        )
        .await?;
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some("invalid_refresh_token"))
    );
    let r = api
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "nope"})),
        )
        .await?;
    assert_eq!(r.status, 401);
    Ok(())
}

#[tokio::test]
async fn users_are_found_by_prefix() -> anyhow::Result<()> {
    let api = Api::default();
    let s = api.register("zed").await?;
    let prefix = &s.user.username[..8];
    let found: UserList = api
        .call(
            "GET",
            &format!("/api/v1/users?query={}", prefix.to_uppercase()),
            Some(&s.access_token),
            None,
        )
        .await?
        .json()?;
    assert!(found.users.iter().any(|u| u.id == s.user.id));
    let r = api
        .call("GET", "/api/v1/users?query=", Some(&s.access_token), None)
        .await?;
    assert_eq!((r.status, r.error_code()), (400, Some("invalid_query")));
    let r = api
        .call(
            "GET",
            "/api/v1/users?query=%25",
            Some(&s.access_token),
            None,
        )
        .await?;
    assert_eq!(r.status, 200, "LIKE wildcards are literal");
    Ok(())
}

#[tokio::test]
async fn channels_can_be_created_found_joined_listed_and_left() -> anyhow::Result<()> {
    let api = Api::default();
    let a = api.register("chan-a").await?;
    let b = api.register("chan-b").await?;
    let name = unique("Rust Lovers ");
    let r = api
        .call(
            "POST",
            "/api/v1/channels",
            Some(&a.access_token),
            Some(json!({"name": name, "description": "all things 🦀"})),
        )
        .await?;
    assert_eq!(r.status, 201);
    let ch: Channel = r.json()?;
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
                Some(body.clone()),
            )
            .await?;
        assert_eq!(r.status, 400, "{body}");
    }
    let r = api
        .call("POST", "/api/v1/channels", None, Some(json!({"name": "x"})))
        .await?;
    assert_eq!(r.status, 401);

    // Search by a part of the name, ignoring case.
    let part = name[5..12].to_uppercase();
    let found: ChannelList = api
        .call(
            "GET",
            &format!("/api/v1/channels/search?query={}", urlencode(&part)),
            Some(&b.access_token),
            None,
        )
        .await?
        .json()?;
    assert!(
        found.channels.iter().any(|c| c.id == ch.id),
        "search for {part}"
    );

    // Non-members: no members list, no history.
    let r = api
        .call(
            "GET",
            &format!("/api/v1/channels/{}/members", ch.id),
            Some(&b.access_token),
            None,
        )
        .await?;
    assert_eq!((r.status, r.error_code()), (403, Some("not_a_member")));
    let r = api
        .call(
            "GET",
            &format!("/api/v1/channels/{}/messages", ch.id),
            Some(&b.access_token),
            None,
        )
        .await?;
    assert_eq!((r.status, r.error_code()), (403, Some("not_a_member")));

    // Join twice is fine.
    assert_eq!(api.join(&b.access_token, ch.id).await?.id, ch.id);
    assert_eq!(api.join(&b.access_token, ch.id).await?.id, ch.id);
    let members: MemberList = api
        .call(
            "GET",
            &format!("/api/v1/channels/{}/members", ch.id),
            Some(&b.access_token),
            None,
        )
        .await?
        .json()?;
    let mut ids: Vec<_> = members.members.iter().map(|u| u.id).collect();
    ids.sort();
    let mut want = vec![a.user.id, b.user.id];
    want.sort();
    assert_eq!(ids, want);
    let mine: ChannelList = api
        .call("GET", "/api/v1/channels", Some(&b.access_token), None)
        .await?
        .json()?;
    assert!(mine.channels.iter().any(|c| c.id == ch.id));

    // Unknown and malformed ids.
    let unknown = uuid::Uuid::now_v7();
    let r = api
        .call(
            "POST",
            &format!("/api/v1/channels/{unknown}/join"),
            Some(&b.access_token),
            None,
        )
        .await?;
    assert_eq!((r.status, r.error_code()), (404, Some("channel_not_found")));
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
    let r = api
        .call(
            "POST",
            &format!("/api/v1/channels/{}/leave", ch.id),
            Some(&b.access_token),
            None,
        )
        .await?;
    assert_eq!(r.status, 204);
    let r = api
        .call(
            "POST",
            &format!("/api/v1/channels/{}/leave", ch.id),
            Some(&b.access_token),
            None,
        )
        .await?;
    assert_eq!(r.status, 204);
    let mine: ChannelList = api
        .call("GET", "/api/v1/channels", Some(&b.access_token), None)
        .await?
        .json()?;
    assert!(!mine.channels.iter().any(|c| c.id == ch.id));
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn ask_dm(api: &Api, me: &Session, other: &Session) -> anyhow::Result<chat_e2e::Reply> {
    api.call(
        "POST",
        "/api/v1/dms",
        Some(&me.access_token),
        Some(json!({"user_id": other.user.id})),
    )
    .await
}

async fn next_message(ws: &mut Ws) -> anyhow::Result<chat_types::Message> {
    let (m, _) = ws
        .until(|f| match f {
            ServerFrame::Message { message } => Some(message.clone()),
            _ => None,
        })
        .await?;
    Ok(m)
}

#[tokio::test]
async fn concurrent_direct_conversation_requests_yield_one_channel() -> anyhow::Result<()> {
    let api = Api::default();
    let a = api.register("dm-a").await?;
    let b = api.register("dm-b").await?;
    let (ra, rb) = tokio::join!(ask_dm(&api, &a, &b), ask_dm(&api, &b, &a));
    let (ra, rb) = (ra?, rb?);
    let (ca, cb): (Channel, Channel) = (ra.json()?, rb.json()?);
    assert_eq!(ca.id, cb.id, "the same pair always gets the same channel");
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(statuses, [200, 201], "exactly one request created it");
    assert_eq!(ca.kind, ChannelKind::Direct);
    assert_eq!(ca.name, b.user.display_name, "named after the other user");
    assert_eq!(cb.name, a.user.display_name);

    let again = ask_dm(&api, &a, &b).await?;
    assert_eq!((again.status, again.json::<Channel>()?.id), (200, ca.id));

    let r = api
        .call(
            "POST",
            "/api/v1/dms",
            Some(&a.access_token),
            Some(json!({"user_id": a.user.id})),
        )
        .await?;
    assert_eq!(r.status, 400);
    let r = api
        .call(
            "POST",
            "/api/v1/dms",
            Some(&a.access_token),
            Some(json!({"user_id": uuid::Uuid::now_v7()})),
        )
        .await?;
    assert_eq!((r.status, r.error_code()), (404, Some("user_not_found")));
    let r = api
        .call(
            "POST",
            &format!("/api/v1/channels/{}/join", ca.id),
            Some(&api.register("dm-c").await?.access_token),
            None,
        )
        .await?;
    assert_eq!(r.status, 403, "direct conversations cannot be joined");

    // Both can talk in it right away.
    let mut ws_b = Ws::connect(&b.access_token).await?;
    let mut ws_a = Ws::connect(&a.access_token).await?;
    ws_a.send_message(ca.id, "dm-1", "psst").await?;
    let (m, _) = ws_b
        .until(|f| match f {
            ServerFrame::Message { message } => Some(message.clone()),
            _ => None,
        })
        .await?;
    assert_eq!((m.channel_id, m.body.as_str()), (ca.id, "psst"));
    Ok(())
}

#[tokio::test]
async fn joins_and_leaves_take_effect_for_realtime_delivery_at_once() -> anyhow::Result<()> {
    let api = Api::default();
    let a = api.register("jl-a").await?;
    let b = api.register("jl-b").await?;
    let ch = api.create_channel(&a.access_token, &unique("jl-")).await?;
    let mut ws_a = Ws::connect(&a.access_token).await?;
    let mut ws_b = Ws::connect(&b.access_token).await?;

    // Joined: the very next message reaches B.
    api.join(&b.access_token, ch.id).await?;
    ws_a.send_message(ch.id, "m1", "after join").await?;
    assert_eq!(next_message(&mut ws_b).await?.body, "after join");

    // Left: a message sent after the leave answer never reaches B. B re-joins and gets the next
    // one; had the first been delivered, it would have come before it (one order per channel).
    let r = api
        .call(
            "POST",
            &format!("/api/v1/channels/{}/leave", ch.id),
            Some(&b.access_token),
            None,
        )
        .await?;
    assert_eq!(r.status, 204);
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
    api.call(
        "POST",
        &format!("/api/v1/channels/{}/leave", ch.id),
        Some(&b.access_token),
        None,
    )
    .await?;
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
    let api = Api::default();
    let a = api.register("hist").await?;
    let outsider = api.register("hist-x").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("hist-"))
        .await?;
    let other = api
        .create_channel(&a.access_token, &unique("hist-o-"))
        .await?;
    let mut ws = Ws::connect(&a.access_token).await?;
    // 1100 messages: positions 1..=1100 span buckets 0 and 1 (1024 per bucket).
    const N: usize = 1100;
    for i in 1..=N {
        ws.send_message(ch.id, &format!("h-{i}"), &format!("message {i}"))
            .await?;
    }
    let mut last_seq = 0;
    while last_seq < N as i64 {
        if let ServerFrame::Message { message } = ws.next().await? {
            assert_eq!(message.seq, Some(last_seq + 1), "live order");
            last_seq += 1;
        }
    }

    let latest = api.history(&a.access_token, ch.id, "").await?.messages;
    assert_eq!(latest.len(), 50);
    assert_eq!(latest.last().unwrap().body, format!("message {N}"));
    assert_eq!(latest.first().unwrap().seq, Some(N as i64 - 49));

    // Walk back to the start across the bucket boundary, 100 at a time.
    let mut all = latest.clone();
    loop {
        let first = all.first().unwrap().id;
        let page = api
            .history(
                &a.access_token,
                ch.id,
                &format!("?before={first}&limit=100"),
            )
            .await?
            .messages;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 100);
        all.splice(0..0, page);
    }
    assert_eq!(all.len(), N);
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m.seq, Some(i as i64 + 1));
        assert_eq!(m.body, format!("message {}", i + 1));
    }
    // Forward from position 1000 crosses into bucket 1.
    let page = api
        .history(
            &a.access_token,
            ch.id,
            &format!("?after={}&limit=30", all[999].id),
        )
        .await?
        .messages;
    assert_eq!(
        page.iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>(),
        (1001..=1030).collect::<Vec<_>>()
    );

    for (query, status, code) in [
        ("?limit=0".to_string(), 400, "invalid_limit"),
        ("?limit=101".to_string(), 400, "invalid_limit"),
        ("?limit=abc".to_string(), 400, "invalid_limit"),
        ("?before=nope".to_string(), 400, "invalid_cursor"),
        (
            format!("?before={}&after={}", all[1].id, all[2].id),
            400,
            "invalid_cursor",
        ),
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
    let r = api
        .call(
            "GET",
            &format!("/api/v1/channels/{}/messages?before={}", ch.id, om.id),
            Some(&a.access_token),
            None,
        )
        .await?;
    assert_eq!(r.status, 404);
    let r = api
        .call(
            "GET",
            &format!("/api/v1/channels/{}/messages", ch.id),
            Some(&outsider.access_token),
            None,
        )
        .await?;
    assert_eq!(r.status, 403);
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_the_router_serves_each() -> anyhow::Result<()> {
    let api = Api::default();
    let doc = api.call("GET", "/api/v1/openapi.json", None, None).await?;
    assert_eq!(doc.status, 200);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc.body["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    // The contract of API.md, plus the document and its page.
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
        ("POST", "/api/v1/channels/{channel_id}/join"),
        ("POST", "/api/v1/channels/{channel_id}/leave"),
        ("GET", "/api/v1/channels/{channel_id}/members"),
        ("POST", "/api/v1/dms"),
        ("GET", "/api/v1/channels/{channel_id}/messages"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/docs"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    contract.sort();
    assert_eq!(documented, contract);

    // Each documented operation is served: it answers with something other than the router's
    // "no such endpoint" (404 not_found) or 405.
    let any_id = uuid::Uuid::now_v7().to_string();
    for (method, path) in &documented {
        let r = api
            .call(method, &path.replace("{channel_id}", &any_id), None, None)
            .await?;
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
    let page = api
        .http
        .get(format!("{}/api/v1/docs", api.base))
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("openapi.json"));
    Ok(())
}
