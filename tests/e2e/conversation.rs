//! The first conversation, through nginx only: two users on two different gateways.

use chat_client::Page;
use chat_e2e::{api, connect, connect_elsewhere, register, unique};
use chat_types::ws::ServerFrame;

#[tokio::test]
async fn a_message_reaches_a_member_on_another_gateway_and_history() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "alice").await?;
    let b = register(&api, "bob").await?;
    let channel = api
        .create_channel(&a.access_token, &unique("general-"), None)
        .await?;
    api.join(&b.access_token, channel.id).await?;

    let mut ws_a = connect(&a.access_token).await?;
    // B must be on the other gateway: this fails if fan-out reached only the sender's gateway.
    let mut ws_b = connect_elsewhere(&b.access_token, ws_a.gateway()).await?;
    assert_ne!(ws_a.gateway(), ws_b.gateway());
    println!(
        "alice on {}, bob on {}",
        ws_a.connection_id(),
        ws_b.connection_id()
    );

    let cmid = uuid::Uuid::new_v4().to_string();
    let acked = ws_a.send_acked(channel.id, &cmid, "hello, bob 👋").await?;
    assert_eq!(acked.body, "hello, bob 👋");
    assert_eq!(acked.sender_id, a.user.id);

    let got = ws_b.next_message().await?;
    assert_eq!(got.id, acked.id);
    assert_eq!(got.body, "hello, bob 👋");
    assert_eq!(got.created_at, acked.created_at);
    assert_eq!(got.seq, Some(1));

    // The sender's own connection gets the message frame too (its place in the channel).
    let own = ws_a.next_message().await?;
    assert_eq!(own.id, acked.id);

    for token in [&a.access_token, &b.access_token] {
        let h = api.history(token, channel.id, Page::default()).await?;
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].id, acked.id);
        assert_eq!(h[0].body, "hello, bob 👋");
    }
    Ok(())
}

#[tokio::test]
async fn sending_to_a_channel_the_sender_is_not_in_is_refused_with_an_error_frame()
-> anyhow::Result<()> {
    let api = api();
    let owner = register(&api, "owner").await?;
    let stranger = register(&api, "stranger").await?;
    let channel = api
        .create_channel(&owner.access_token, &unique("private-"), None)
        .await?;

    let mut ws = connect(&stranger.access_token).await?;
    ws.send_message(channel.id, "c-1", "let me in").await?;
    let (code, _) = ws
        .until(|f| match f {
            ServerFrame::Error {
                code,
                client_msg_id,
                ..
            } if client_msg_id.as_deref() == Some("c-1") => Some(code.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(code, "not_a_member");

    // The connection stays usable.
    ws.send_text(r#"{"type":"ping"}"#).await?;
    ws.until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await?;

    // Nothing was stored.
    let h = api
        .history(&owner.access_token, channel.id, Page::default())
        .await?;
    assert!(h.is_empty());
    Ok(())
}

#[tokio::test]
async fn every_device_of_a_user_gets_every_message_including_its_own() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "multi-a").await?;
    let b = register(&api, "multi-b").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("multi-"), None)
        .await?;
    api.join(&b.access_token, ch.id).await?;
    let mut phone = connect(&a.access_token).await?;
    let mut laptop = connect_elsewhere(&a.access_token, phone.gateway()).await?;
    let mut tablet = connect(&a.access_token).await?;
    let mut ws_b = connect(&b.access_token).await?;

    phone
        .send_message(ch.id, "from-phone", "sent on the phone")
        .await?;
    ws_b.send_message(ch.id, "from-b", "sent by b").await?;
    for (name, ws) in [
        ("phone", &mut phone),
        ("laptop", &mut laptop),
        ("tablet", &mut tablet),
    ] {
        let mut bodies = Vec::new();
        while bodies.len() < 2 {
            if let ServerFrame::Message { message } = ws.next_frame().await? {
                bodies.push(message.body);
            }
        }
        bodies.sort();
        assert_eq!(bodies, ["sent by b", "sent on the phone"], "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn the_gateway_delivery_endpoint_is_internal_and_needs_the_credential() -> anyhow::Result<()>
{
    let api = api();
    // Not routed by nginx.
    let r = api
        .http()
        .post(api.url(chat_types::internal::DELIVER_PATH))
        .json(&serde_json::json!({"events": []}))
        .send()
        .await?;
    // nginx answers itself (no route: 404, or its static handler's 405); a gateway would have
    // answered 401 or 204.
    assert!(
        matches!(r.status().as_u16(), 404 | 405),
        "the load balancer must not expose the delivery endpoint: {}",
        r.status()
    );
    // On the gateway's internal port, a caller without the credential is refused.
    let gateway_ops =
        std::env::var("CHAT_GATEWAY_OPS_URL").unwrap_or_else(|_| "http://127.0.0.1:9101".into());
    for token in [None, Some("wrong-token-wrong-token")] {
        let mut req = api
            .http()
            .post(format!(
                "{gateway_ops}{}",
                chat_types::internal::DELIVER_PATH
            ))
            .json(&serde_json::json!({"events": []}));
        if let Some(t) = token {
            req = req.header(chat_types::internal::INTERNAL_TOKEN_HEADER, t);
        }
        assert_eq!(req.send().await?.status(), 401);
    }
    Ok(())
}

#[tokio::test]
async fn malformed_and_invalid_frames_get_error_frames_and_the_connection_stays_usable()
-> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "frames").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("frames-"), None)
        .await?;
    let mut ws = connect(&a.access_token).await?;
    let cases = [
        ("not json".to_string(), "malformed_frame", None),
        (
            r#"{"type":"teleport"}"#.to_string(),
            "malformed_frame",
            None,
        ),
        (
            r#"{"type":"send","channel_id":"nope","client_msg_id":"m1","body":"x"}"#.to_string(),
            "malformed_frame",
            Some("m1"),
        ),
        (
            format!(
                r#"{{"type":"send","channel_id":"{}","client_msg_id":"m2","body":""}}"#,
                ch.id
            ),
            "invalid_body",
            Some("m2"),
        ),
        (
            format!(
                r#"{{"type":"send","channel_id":"{}","client_msg_id":"m3","body":"{}"}}"#,
                ch.id,
                "é".repeat(4001)
            ),
            "invalid_body",
            Some("m3"),
        ),
        (
            format!(
                r#"{{"type":"send","channel_id":"{}","client_msg_id":"","body":"x"}}"#,
                ch.id
            ),
            "invalid_client_msg_id",
            Some(""),
        ),
        (
            format!(
                r#"{{"type":"send","channel_id":"{}","client_msg_id":"m4","body":"x"}}"#,
                uuid::Uuid::now_v7()
            ),
            "unknown_channel",
            Some("m4"),
        ),
    ];
    for (text, want, cmid) in cases {
        ws.send_text(&text).await?;
        let (got, _) = ws
            .until(|f| match f {
                ServerFrame::Error {
                    code,
                    client_msg_id,
                    ..
                } => Some((code.clone(), client_msg_id.clone())),
                _ => None,
            })
            .await?;
        assert_eq!(
            (got.0.as_str(), got.1.as_deref()),
            (want, cmid),
            "{}",
            &text[..text.len().min(80)]
        );
    }
    // 4000 characters of emoji is a valid body; the stack still works on this connection.
    ws.send_message(ch.id, "ok", &"🦀".repeat(4000)).await?;
    let m = ws.next_message().await?;
    assert_eq!(m.body.chars().count(), 4000);
    Ok(())
}

#[tokio::test]
async fn a_websocket_with_a_missing_or_forged_token_is_refused_before_the_upgrade()
-> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::Error;
    let api = api();
    let a = register(&api, "wsauth").await?;
    let mut parts: Vec<&str> = a.access_token.split('.').collect();
    parts[2] = "Zm9yZ2VkLXNpZ25hdHVyZQ";
    let forged = parts.join(".");
    let base = chat_e2e::base_url().replacen("http", "ws", 1);
    for url in [
        format!("{base}/ws"),
        format!("{base}/ws?token={forged}"),
        format!("{base}/ws?token=garbage"),
    ] {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401, "{url}"),
            other => panic!(
                "{url}: expected HTTP 401, got {:?}",
                other.map(|_| "an open socket")
            ),
        }
    }
    // The query-string form works with a valid token (browsers cannot set headers).
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{base}/ws?token={}", a.access_token)).await?;
    let first = futures::StreamExt::next(&mut ws).await.expect("a frame")?;
    assert!(first.to_text()?.contains("\"type\":\"ready\""));
    Ok(())
}
