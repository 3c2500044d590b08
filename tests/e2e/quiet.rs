//! Every acked message reaches every connected member within 2 s, whatever follows it: here
//! nothing follows it (the channel goes quiet), so no later message can reveal a missed push
//! and trigger a gap fill. Changes the shared stack (empties Redis), so it runs on its own.

use chat_client::Connection;
use chat_e2e::{api, connect, register, unique};
use chat_types::ws::ServerFrame;
use chat_types::{ChannelId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USERS: usize = 8;
const CHANNELS: usize = 8;
const MEMBERS: usize = 4;
const ROUNDS: usize = 3;
/// The requirement: every connected member has an acked message within this long.
const WITHIN: Duration = Duration::from_secs(2);

/// Empty Redis, as a restart of a Redis without persistence does (presence, claims, epochs
/// and the gateways' markers all gone), in one command.
async fn flush_redis() -> anyhow::Result<()> {
    let url = std::env::var("CHAT_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:16379".into());
    let mut s = tokio::net::TcpStream::connect(url).await?;
    s.write_all(b"FLUSHALL\r\n").await?;
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply).await?;
    anyhow::ensure!(&reply == b"+OK\r\n", "FLUSHALL answered {reply:?}");
    Ok(())
}

/// What each receiving connection got: (channel, body) -> when.
type Seen = Arc<Mutex<HashMap<(UserId, ChannelId, String), Instant>>>;

fn watch(mut ws: Connection, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Some(f)) = ws.next_within(Duration::from_secs(60)).await {
            if let ServerFrame::Message { message } = f {
                seen.lock().expect("lock").insert(
                    (ws.user_id(), message.channel_id, message.body),
                    Instant::now(),
                );
            }
        }
    })
}

#[tokio::test]
async fn a_message_acked_right_after_redis_lost_its_data_reaches_every_member_of_a_quiet_channel()
-> anyhow::Result<()> {
    let api = api();
    let mut users = Vec::new();
    for _ in 0..USERS {
        users.push(register(&api, "quiet-").await?);
    }
    // Channel c: members c, c+1, c+2, c+3 (mod USERS); member c sends.
    let mut channels = Vec::new();
    for c in 0..CHANNELS {
        let owner = &users[c];
        let ch = api
            .create_channel(&owner.access_token, &unique("quiet-"), None)
            .await?;
        for m in 1..MEMBERS {
            api.join(&users[(c + m) % USERS].access_token, ch.id)
                .await?;
        }
        channels.push(ch.id);
    }
    let seen: Seen = Arc::default();
    let mut watchers = Vec::new();
    for u in &users {
        let mut ws = connect(&u.access_token).await?;
        // The first frame ends the hold on live messages.
        ws.send(&chat_types::ws::ClientFrame::Ping).await?;
        ws.until(|f| matches!(f, ServerFrame::Pong).then_some(()))
            .await?;
        watchers.push(watch(ws, seen.clone()));
    }
    let mut senders = Vec::new();
    for owner in users.iter().take(CHANNELS) {
        senders.push(connect(&owner.access_token).await?);
    }

    let mut worst = Duration::ZERO;
    let mut missing = 0usize;
    // Round 0 is warm-up (each connection learns each channel's position); rounds 1.. follow
    // a wipe of Redis.
    for round in 0..=ROUNDS {
        if round > 0 {
            flush_redis().await?;
        }
        let mut acked = Vec::new();
        for (c, ws) in senders.iter_mut().enumerate() {
            let body = format!("round {round} channel {c}");
            let cmid = unique("q");
            ws.send_message(channels[c], &cmid, &body).await?;
            ws.until(|f| match f {
                ServerFrame::Ack { client_msg_id, .. } if *client_msg_id == cmid => Some(()),
                ServerFrame::Error { client_msg_id, .. }
                    if client_msg_id.as_deref() == Some(&cmid) =>
                {
                    panic!("send refused: {f:?}")
                }
                _ => None,
            })
            .await?;
            acked.push((c, body, Instant::now()));
        }
        // Silence. Then: every member of every channel has its message.
        tokio::time::sleep(WITHIN + Duration::from_millis(200)).await;
        let seen = seen.lock().expect("lock");
        for (c, body, at) in &acked {
            for m in 0..MEMBERS {
                let user = users[(c + m) % USERS].user.id;
                match seen.get(&(user, channels[*c], body.clone())) {
                    Some(when) => worst = worst.max(when.saturating_duration_since(*at)),
                    None => missing += 1,
                }
            }
        }
    }
    for w in watchers {
        w.abort();
    }
    println!(
        "quiet channels after Redis lost its data: {ROUNDS} rounds x {CHANNELS} channels x {MEMBERS} members, {missing} live deliveries missing, slowest {worst:?} after the ack"
    );
    assert_eq!(missing, 0, "every acked message reaches every member live");
    assert!(worst <= WITHIN, "slowest delivery {worst:?}");
    Ok(())
}
