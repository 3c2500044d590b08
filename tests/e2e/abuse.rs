//! Abuse through nginx: a client that floods sends is slowed with `rate_limited` and loses
//! nothing; a ping flood is paced, not amplified; a user cannot hoard connections; oversized
//! frames and garbage ids get answers that do not invite a resend loop; what a send leaves in
//! Redis is small, and Redis never evicts what the guarantees rest on.

use chat_client::Page;
use chat_e2e::{api, connect, register, unique};
use chat_types::ws::{ClientFrame, ServerFrame};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The gateways' defaults (`GatewayConfig`): 20 sends/s per user with a burst of 200, 100
/// frames/s per connection with a burst of 400, 32 connections per user per gateway.
const SEND_BURST: usize = 200;
const FRAME_BURST: usize = 400;
const FRAMES_PER_SEC: usize = 100;
const GATEWAYS: usize = 2;
const CONNECTIONS_PER_GATEWAY: usize = 32;

#[tokio::test]
async fn a_flooding_sender_is_rate_limited_resends_lose_nothing_and_others_are_not_slowed()
-> anyhow::Result<()> {
    let api = api();
    let flooder = register(&api, "flood-").await?;
    let normal = register(&api, "calm-").await?;
    let ch = api
        .create_channel(&flooder.access_token, &unique("flood-"), None)
        .await?;
    api.join(&normal.access_token, ch.id).await?;
    let mut f = connect(&flooder.access_token).await?;
    let mut n = connect(&normal.access_token).await?;

    let total = SEND_BURST + 100;
    let mut pending: Vec<String> = Vec::new();
    for i in 0..total {
        let cmid = format!("flood-{i}");
        f.send_message(ch.id, &cmid, &format!("flood {i}")).await?;
        pending.push(cmid);
    }
    // The calm user's sends are untouched by the flood.
    for i in 0..5 {
        n.send_message(ch.id, &format!("calm-{i}"), "hello").await?;
    }
    let mut calm_acks = 0;
    while calm_acks < 5 {
        match n.next_frame().await? {
            ServerFrame::Ack { .. } => calm_acks += 1,
            ServerFrame::Error { code, .. } => anyhow::bail!("calm user refused: {code}"),
            _ => {}
        }
    }

    // Read the flooder's answers; resend every refused one after its retry time.
    let mut acked: HashSet<String> = HashSet::new();
    let mut limited = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < total {
        anyhow::ensure!(Instant::now() < deadline, "only {} acked", acked.len());
        match f.next_frame().await? {
            ServerFrame::Ack { client_msg_id, .. } => {
                acked.insert(client_msg_id);
            }
            ServerFrame::Error {
                code,
                client_msg_id: Some(cmid),
                retry_after_ms,
                ..
            } => {
                anyhow::ensure!(code == "rate_limited", "unexpected refusal {code}");
                let wait = retry_after_ms.expect("a rate_limited error says when to resend");
                anyhow::ensure!(wait > 0 && wait <= 1000, "retry_after_ms {wait}");
                limited += 1;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let i: usize = cmid.trim_start_matches("flood-").parse()?;
                f.send_message(ch.id, &cmid, &format!("flood {i}")).await?;
            }
            _ => {}
        }
    }
    assert!(limited > 0, "a burst past {SEND_BURST} is rate limited");
    // History: every message once, nothing lost to the limiter. An ack means Kafka has the
    // message, not yet the store: read until the last acked one is stored (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    let bodies = loop {
        let bodies = all_bodies(&api, &normal.access_token, ch.id).await?;
        let stored = bodies.iter().filter(|b| b.starts_with("flood ")).count();
        if stored >= total || Instant::now() >= deadline {
            break bodies;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let flood: Vec<&String> = bodies.iter().filter(|b| b.starts_with("flood ")).collect();
    let distinct: HashSet<&&String> = flood.iter().collect();
    println!(
        "flood: {total} sends, {limited} rate_limited and resent, {} stored, {} distinct; the calm user's 5 sends acked without refusal",
        flood.len(),
        distinct.len()
    );
    assert_eq!(flood.len(), total);
    assert_eq!(distinct.len(), total);
    Ok(())
}

/// Every message body of a channel, oldest first.
async fn all_bodies(
    api: &chat_client::Api,
    token: &str,
    channel: chat_types::ChannelId,
) -> anyhow::Result<Vec<String>> {
    let mut bodies = Vec::new();
    let mut page = Page::newest(100);
    loop {
        let messages = api.history(token, channel, page).await?;
        let Some(first) = messages.first() else {
            break;
        };
        page = Page::before(first.id, 100);
        let mut older: Vec<String> = messages.iter().map(|m| m.body.clone()).collect();
        older.append(&mut bodies);
        bodies = older;
    }
    Ok(bodies)
}

#[tokio::test]
async fn a_ping_flood_is_paced_not_amplified_and_every_ping_is_answered() -> anyhow::Result<()> {
    let api = api();
    let u = register(&api, "pings-").await?;
    let mut ws = connect(&u.access_token).await?;
    let pings = FRAME_BURST + 3 * FRAMES_PER_SEC;
    let started = Instant::now();
    let ping = serde_json::to_string(&ClientFrame::Ping)?;
    let writer = async {
        for _ in 0..pings {
            ws.send_text(ping.as_str()).await?;
        }
        anyhow::Ok(())
    };
    // Frames beyond the bucket wait in the socket: the writer finishes only as the gateway
    // reads them, no faster than the bucket refills.
    tokio::time::timeout(Duration::from_secs(30), writer).await??;
    let mut pongs = 0;
    while pongs < pings {
        if let ServerFrame::Pong = ws.next_frame().await? {
            pongs += 1;
        }
    }
    let took = started.elapsed();
    println!("{pings} pings answered by {pongs} pongs in {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "{pings} pings went through in {took:?}: not paced"
    );
    Ok(())
}

#[tokio::test]
async fn one_user_cannot_hoard_connections() -> anyhow::Result<()> {
    let api = api();
    let u = register(&api, "hoard-").await?;
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..(GATEWAYS * CONNECTIONS_PER_GATEWAY + 8) {
        match chat_e2e::connector().connect(&u.access_token).await {
            Ok(ws) => open.push(ws),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    println!("{} connections accepted, then: {refused:?}", open.len());
    let refused = refused.expect("some connection is refused");
    assert_eq!(refused.status(), Some(429), "refused with 429: {refused}");
    assert!(open.len() >= CONNECTIONS_PER_GATEWAY);
    assert!(open.len() <= GATEWAYS * CONNECTIONS_PER_GATEWAY);
    Ok(())
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_a_huge_client_msg_id_is_not_echoed()
-> anyhow::Result<()> {
    let api = api();
    let u = register(&api, "big-").await?;
    let ch = api
        .create_channel(&u.access_token, &unique("big-"), None)
        .await?;

    let mut ws = connect(&u.access_token).await?;
    let huge_id = "x".repeat(60_000);
    ws.send_message(ch.id, &huge_id, "hi").await?;
    match ws.next_frame().await? {
        ServerFrame::Error {
            code,
            client_msg_id,
            message,
            ..
        } => {
            assert_eq!(code, "invalid_client_msg_id");
            assert_eq!(client_msg_id, None, "a 60 KB id is not echoed back");
            assert!(message.len() < 200);
        }
        other => anyhow::bail!("expected an error, got {other:?}"),
    }

    ws.send_text(format!(
        r#"{{"type":"send","channel_id":"{}","client_msg_id":"c","body":"{}"}}"#,
        ch.id,
        "y".repeat(70_000)
    ))
    .await?;
    let err = loop {
        match ws.next_frame().await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    println!("oversized frame: {err}");
    assert_eq!(
        err.close_code(),
        Some(1009),
        "closed with 1009 (message too big), got {err}"
    );
    Ok(())
}

#[tokio::test]
async fn a_send_leaves_a_small_claim_in_redis_whatever_its_size_and_redis_never_evicts()
-> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "claim-").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("claim-"), None)
        .await?;
    let mut ws = connect(&a.access_token).await?;
    // The longest body (4,000 characters, 16 KB of UTF-8): the whole message used to be
    // parked in Redis for 24 h with each send.
    let body = "\u{1F600}".repeat(4000);
    let cmid = uuid::Uuid::new_v4().to_string();
    let acked = ws.send_acked(ch.id, &cmid, &body).await?;
    let mut r = chat_e2e::redis().await?;
    let key = format!("claim:{}", acked.id.0.simple());
    let usage: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut r)
        .await?;
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut r).await?;
    println!("claim of a 16 KB send: {usage:?} bytes in Redis, ttl {ttl} s");
    let usage = usage.ok_or_else(|| anyhow::anyhow!("no claim {key} in Redis"))?;
    assert!(usage < 256, "a claim takes {usage} bytes");
    assert!(ttl > 0, "a claim expires");

    // A resend of the same message is acked with the first one, the time included.
    let again = ws.send_acked(ch.id, &cmid, &body).await?;
    assert_eq!(again, acked);

    let policy: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory*")
        .query_async(&mut r)
        .await?;
    println!("redis: {policy:?}");
    let get = |name: &str| {
        policy
            .chunks(2)
            .find(|kv| kv[0] == name)
            .map(|kv| kv[1].clone())
            .unwrap_or_default()
    };
    assert_eq!(get("maxmemory-policy"), "noeviction");
    assert!(
        get("maxmemory").parse::<u64>()? > 0,
        "Redis has a memory bound"
    );
    Ok(())
}

/// The gateways' internal delivery endpoint (ops port, never behind nginx) answers a caller
/// without the internal credential before reading the body: a stranger cannot make a gateway
/// buffer the 64 MiB a batch may be.
#[tokio::test]
async fn the_delivery_endpoint_refuses_a_stranger_before_reading_the_body() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect("127.0.0.1:9101").await?;
    let announced = 60 * 1024 * 1024;
    s.write_all(
        format!(
            "POST /internal/v1/deliver HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nx-internal-token: not-the-token\r\ncontent-length: {announced}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    s.write_all(&[b' '; 1024]).await?;
    // The rest of the 60 MB never comes: only a server that answers before reading it replies.
    let mut reply = vec![0u8; 512];
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut reply))
        .await
        .map_err(|_| anyhow::anyhow!("no answer while the body was outstanding"))??;
    let head = String::from_utf8_lossy(&reply[..n]);
    println!(
        "stranger with a 60 MB body announced: {:?} after {:?}",
        head.lines().next(),
        started.elapsed()
    );
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    Ok(())
}
