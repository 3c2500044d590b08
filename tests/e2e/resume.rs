//! `resume` that reaches the gateway late: after the gateway stopped holding live messages back
//! (no announcement, past the 1 s limit), and with the `?resume=1` announcement (held however
//! long it takes). In both cases the client ends with every message once; before these fixes a
//! late resume skipped everything between its position and the first live message written.

use chat_client::Connection;
use chat_e2e::{api, connect, connector, register, unique};
use chat_types::ws::ServerFrame;
use chat_types::{ChannelId, Message};
use std::time::Duration;

/// Longer than the gateway's hold for an unannounced resume (`resume_hold_ms`, 1 s).
const PAST_THE_HOLD: Duration = Duration::from_millis(1600);

fn cmid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Message bodies, and whether `resumed` came, until `resumed` (or nothing for `quiet`).
async fn read_until_resumed(ws: &mut Connection, quiet: Duration) -> anyhow::Result<Vec<String>> {
    let mut seen = Vec::new();
    while let Some(f) = ws.next_within(quiet).await? {
        match f {
            ServerFrame::Message { message } => seen.push(message.body),
            ServerFrame::Resumed { .. } => {
                seen.push("resumed".into());
                return Ok(seen);
            }
            _ => {}
        }
    }
    Ok(seen)
}

/// A sender, a reader who saw the first message and then lost its connection while three more
/// were sent; returns (sender's socket, reader's token, channel, first message).
async fn reader_who_missed_three() -> anyhow::Result<(Connection, String, ChannelId, Message)> {
    let api = api();
    let a = register(&api, "resumer-a").await?;
    let b = register(&api, "resumer-b").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("late-resume-"), None)
        .await?
        .id;
    api.join(&b.access_token, ch).await?;
    let mut ws_a = connect(&a.access_token).await?;
    let mut ws_b = connect(&b.access_token).await?;
    ws_b.send(&chat_types::ws::ClientFrame::Ping).await?;
    ws_a.send_acked(ch, &cmid(), "m1").await?;
    let first = ws_b.next_message().await?;
    assert_eq!(first.body, "m1");
    ws_b.close(Duration::from_secs(2)).await;
    for body in ["m2", "m3", "m4"] {
        ws_a.send_acked(ch, &cmid(), body).await?;
    }
    // An ack means Kafka has it: wait until the message server has stored and pushed m4 (the
    // sender's own connection gets it too), so none of them reaches B's next connection live.
    while ws_a.next_message().await?.body != "m4" {}
    Ok((ws_a, b.access_token, ch, first))
}

fn resume(ch: ChannelId, after: &Message) -> chat_types::ws::ClientFrame {
    chat_types::ws::ClientFrame::Resume {
        channels: [(ch, after.id)].into_iter().collect(),
    }
}

#[tokio::test]
async fn a_resume_that_comes_after_live_messages_still_gets_what_was_missed() -> anyhow::Result<()>
{
    let (mut ws_a, token_b, ch, first) = reader_who_missed_three().await?;
    // Reconnect without announcing the resume and say nothing past the hold: live messages
    // start flowing, and m5 arrives before the client has said where it was.
    let mut ws_b = connect(&token_b).await?;
    tokio::time::sleep(PAST_THE_HOLD).await;
    ws_a.send_acked(ch, &cmid(), "m5").await?;
    assert_eq!(ws_b.next_message().await?.body, "m5");
    ws_b.send(&resume(ch, &first)).await?;
    let seen = read_until_resumed(&mut ws_b, Duration::from_secs(5)).await?;
    println!("late resume after m5 live: {seen:?}");
    assert_eq!(
        seen,
        ["m2", "m3", "m4", "resumed"],
        "the messages between the resume position and the first live one arrive, once"
    );
    ws_a.send_acked(ch, &cmid(), "m6").await?;
    assert_eq!(ws_b.next_message().await?.body, "m6", "then live goes on");
    Ok(())
}

#[tokio::test]
async fn an_announced_resume_is_waited_for_however_long_it_takes() -> anyhow::Result<()> {
    let (mut ws_a, token_b, ch, first) = reader_who_missed_three().await?;
    let mut ws_b = connector().connect_resuming(&token_b, None).await?;
    ws_a.send_acked(ch, &cmid(), "m5").await?;
    // Well past the unannounced hold: nothing may overtake the resume still to come.
    let early = ws_b.next_within(PAST_THE_HOLD).await?;
    assert!(
        !matches!(early, Some(ServerFrame::Message { .. })),
        "a live message overtook the announced resume: {early:?}"
    );
    ws_b.send(&resume(ch, &first)).await?;
    let seen = read_until_resumed(&mut ws_b, Duration::from_secs(5)).await?;
    println!("announced resume after {PAST_THE_HOLD:?}: {seen:?}");
    // m5 may come from history (before `resumed`) or live right after it: in order either way.
    let mut all = seen.clone();
    if !all.contains(&"m5".to_string()) {
        all.push(ws_b.next_message().await?.body);
    }
    all.retain(|s| s != "resumed");
    assert_eq!(all, ["m2", "m3", "m4", "m5"]);
    Ok(())
}

#[tokio::test]
async fn a_bad_resume_announcement_is_refused_at_the_upgrade() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "resumer-bad").await?;
    // An upgrade request as a WebSocket client makes it, read as plain HTTP to see the body.
    let resp = api
        .http()
        .get(format!("{}/ws?resume=maybe", chat_e2e::base_url()))
        .bearer_auth(&a.access_token)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "invalid_query", "{body}");
    Ok(())
}
