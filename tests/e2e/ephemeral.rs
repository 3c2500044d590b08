//! Ephemeral signals through nginx: typing indicators (to the other members' devices, never
//! the sender's; refused for non-members; one per user and channel per interval; never in
//! history or a resume; latency measured) and presence (online while any device is connected,
//! offline with last seen after the last one, no ghost after a gateway's `kill -9`; expiry
//! measured), and attention (the gateways where a user has a connection in the foreground, for
//! push notifications: follows `app_state` frames, lapses after a gateway's `kill -9`). One test
//! kills a gateway, so the tests run one at a time (a process-wide lock) and restore what they
//! stop.

use chat_client::{Connection, Page};
use chat_e2e::{TIMEOUT, api, connect, connect_elsewhere, register, stack, unique};
use chat_types::rest::Session;
use chat_types::ws::{ClientFrame, ServerFrame, error_code};
use chat_types::{ChannelId, UserId, limits};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Every frame the gateway queued for `ws` before the answer to a `ping` sent now.
async fn frames_before_pong(ws: &mut Connection) -> anyhow::Result<Vec<ServerFrame>> {
    ws.send(&ClientFrame::Ping).await?;
    let ((), before) = ws
        .until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await?;
    Ok(before)
}

/// Two new users (named by the prefixes) and the DM the second opened with the first.
async fn dm_pair(
    api: &chat_client::Api,
    first: &str,
    second: &str,
) -> anyhow::Result<(Session, Session, ChannelId)> {
    let a = register(api, first).await?;
    let b = register(api, second).await?;
    let dm = api.open_dm(&b.access_token, a.user.id).await?.channel.id;
    Ok((a, b, dm))
}

fn typings(frames: &[ServerFrame]) -> usize {
    frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Typing { .. }))
        .count()
}

/// A connection of `s` on gateway `gateway` (nginx spreads connections; a few tries reach it).
async fn connect_on(s: &Session, gateway: &str) -> anyhow::Result<Connection> {
    for _ in 0..40 {
        let ws = connect(&s.access_token).await?;
        if ws.gateway() == gateway {
            return Ok(ws);
        }
    }
    anyhow::bail!("no connection landed on {gateway}")
}

/// A group channel of `owner` that `others` joined.
async fn channel_with(owner: &Session, others: &[&Session]) -> anyhow::Result<ChannelId> {
    let api = api();
    let ch = api
        .create_channel(&owner.access_token, &unique("typing-"), None)
        .await?;
    for o in others {
        api.join(&o.access_token, ch.id).await?;
    }
    Ok(ch.id)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::test]
async fn typing_reaches_every_device_of_the_other_members_and_none_of_the_senders()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let alice = register(&api, "typer").await?;
    let bob = register(&api, "watcher").await?;
    let ch = channel_with(&alice, &[&bob]).await?;
    let mut a1 = connect(&alice.access_token).await?;
    let mut a2 = connect_elsewhere(&alice.access_token, a1.gateway()).await?;
    let mut b1 = connect(&bob.access_token).await?;
    let mut b2 = connect_elsewhere(&bob.access_token, b1.gateway()).await?;

    a1.typing(ch).await?;
    for b in [&mut b1, &mut b2] {
        let (channel, who) = b.next_typing().await?;
        assert_eq!((channel, who), (ch, alice.user.id), "bob's {}", b.gateway());
    }
    // Both of bob's devices have it: had the sender's devices been sent it, it would be queued
    // before the answer to a ping by now (the same push reached every gateway).
    for a in [&mut a1, &mut a2] {
        let before = frames_before_pong(a).await?;
        assert_eq!(
            typings(&before),
            0,
            "the sender's {}: {before:?}",
            a.gateway()
        );
    }
    println!(
        "typing: alice on {} reached bob on {} and {}; alice's {} and {} got nothing",
        a1.gateway(),
        b1.gateway(),
        b2.gateway(),
        a1.gateway(),
        a2.gateway()
    );
    Ok(())
}

#[tokio::test]
async fn typing_in_a_channel_one_is_not_a_member_of_is_refused() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let alice = register(&api, "owner").await?;
    let bob = register(&api, "member").await?;
    let mallory = register(&api, "outsider").await?;
    let ch = channel_with(&alice, &[&bob]).await?;
    let mut b = connect(&bob.access_token).await?;
    let mut m = connect(&mallory.access_token).await?;

    m.typing(ch).await?;
    let (code, _) = m
        .until(|f| match f {
            ServerFrame::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(code, error_code::NOT_A_MEMBER);
    m.typing(ChannelId(uuid::Uuid::now_v7())).await?;
    let (code, _) = m
        .until(|f| match f {
            ServerFrame::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(code, error_code::UNKNOWN_CHANNEL);
    // A frame without its channel is malformed, like any other.
    m.send_text(r#"{"type":"typing"}"#).await?;
    let (code, _) = m
        .until(|f| match f {
            ServerFrame::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(code, error_code::MALFORMED_FRAME);

    // The member saw none of it.
    let before = frames_before_pong(&mut b).await?;
    assert_eq!(typings(&before), 0, "{before:?}");
    // Joining makes it allowed at once.
    api.join(&mallory.access_token, ch).await?;
    m.typing(ch).await?;
    assert_eq!(b.next_typing().await?, (ch, mallory.user.id));
    Ok(())
}

#[tokio::test]
async fn typing_faster_than_the_interval_is_forwarded_once_per_interval() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let alice = register(&api, "eager").await?;
    let bob = register(&api, "calm").await?;
    let ch = channel_with(&alice, &[&bob]).await?;
    let other = channel_with(&alice, &[&bob]).await?;
    let mut a = connect(&alice.access_token).await?;
    let mut b = connect(&bob.access_token).await?;

    let started = Instant::now();
    for _ in 0..10 {
        a.typing(ch).await?;
    }
    // Another channel has its own allowance.
    a.typing(other).await?;
    let mut first = Vec::new();
    for _ in 0..2 {
        first.push(b.next_typing().await?.0);
    }
    first.sort();
    let mut want = vec![ch, other];
    want.sort();
    assert_eq!(first, want, "one typing per channel");
    // Within the interval nothing more comes: the nine others were dropped.
    let before = frames_before_pong(&mut b).await?;
    assert_eq!(typings(&before), 0, "dropped, not queued: {before:?}");

    // After the interval, keep typing: the next one to get through arrives no sooner.
    let interval = Duration::from_millis(limits::TYPING_INTERVAL_MS);
    let deadline = Instant::now() + TIMEOUT;
    let second_at = loop {
        a.typing(ch).await?;
        if let Some(ServerFrame::Typing { channel_id, .. }) =
            b.next_within(Duration::from_millis(100)).await?
        {
            assert_eq!(channel_id, ch);
            break started.elapsed();
        }
        anyhow::ensure!(Instant::now() < deadline, "no second typing got through");
    };
    println!(
        "rate limit: 10 typings at once -> 1 forwarded; the next one at {:?} (interval {interval:?})",
        second_at
    );
    assert!(
        second_at >= interval - Duration::from_millis(50),
        "a second typing got through after {second_at:?}, before the interval"
    );
    Ok(())
}

#[tokio::test]
async fn typing_never_appears_in_history_or_a_resume() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let alice = register(&api, "quiet").await?;
    let bob = register(&api, "reader").await?;
    let carol = register(&api, "witness").await?;
    let ch = channel_with(&alice, &[&bob, &carol]).await?;
    let mut a = connect(&alice.access_token).await?;
    let mut b = connect(&bob.access_token).await?;
    let mut c = connect(&carol.access_token).await?;
    a.send_acked(ch, &unique("m1-"), "first").await?;
    let m1 = b.next_message().await?;
    b.close(Duration::from_secs(2)).await;

    // Typing while bob is away, then a message. Carol, connected, sees both: the typing was
    // pushed (to whoever was connected then) before bob comes back.
    a.typing(ch).await?;
    assert_eq!(c.next_typing().await?, (ch, alice.user.id));
    a.send_acked(ch, &unique("m2-"), "second").await?;
    while c.next_message().await?.body != "second" {}

    let mut b = chat_e2e::connector()
        .connect_resuming(&bob.access_token, None)
        .await?;
    b.send(&ClientFrame::Resume {
        channels: [(ch, m1.id)].into(),
    })
    .await?;
    let (channels, before) = b
        .until(|f| match f {
            ServerFrame::Resumed { channels } => Some(channels.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(channels, vec![ch]);
    let bodies: Vec<&str> = before
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message { message } => Some(message.body.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, ["second"], "the resume sends the message only");
    assert_eq!(typings(&before), 0, "{before:?}");

    let history = api.history(&bob.access_token, ch, Page::newest(50)).await?;
    let bodies: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["first", "second"],
        "history holds the messages only"
    );
    Ok(())
}

/// 200 typings from one gateway to a member on the other, one at a time, each timed from the
/// send to its arrival. Spread over channels: each (user, channel) may pass once per interval.
#[tokio::test]
async fn typing_latency_across_gateways() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const CHANNELS: usize = 50;
    const ROUNDS: usize = 4;
    let api = api();
    let alice = register(&api, "fast").await?;
    let bob = register(&api, "far").await?;
    let mut channels = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        channels.push(channel_with(&alice, &[&bob]).await?);
    }
    let mut a = connect(&alice.access_token).await?;
    let mut b = connect_elsewhere(&bob.access_token, a.gateway()).await?;

    // A channel's next typing is sent only once the interval has passed since bob *received*
    // its previous one. The gateway checks the allowance before it forwards, so that is after
    // the check on the gateway's clock, whatever the network did to either typing. (Spacing
    // rounds from when they were sent is not enough: a round that runs faster than the one
    // before, say once the member lists are cached, reaches a channel's allowance early, the
    // gateway drops that typing, and bob never sees it.) The gateway's limiter reads its own
    // clock (governor's quanta, a TSC calibrated against CLOCK_MONOTONIC); CLOCK_SKEW covers
    // how far that may run from ours over one interval.
    const CLOCK_SKEW: Duration = Duration::from_millis(5);
    let interval = Duration::from_millis(limits::TYPING_INTERVAL_MS) + CLOCK_SKEW;
    let mut received: Vec<Option<Instant>> = vec![None; CHANNELS];
    let mut latencies = Vec::with_capacity(CHANNELS * ROUNDS);
    for _ in 0..ROUNDS {
        for (ch, last) in channels.iter().zip(received.iter_mut()) {
            if let Some(last) = *last {
                tokio::time::sleep_until(last + interval).await;
            }
            let sent = Instant::now();
            a.typing(*ch).await?;
            let (channel, who) = b.next_typing().await?;
            let now = Instant::now();
            latencies.push(now - sent);
            *last = Some(now);
            assert_eq!((channel, who), (*ch, alice.user.id));
        }
    }
    latencies.sort();
    let (p50, p99, max) = (
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
    );
    println!(
        "typing latency ({} typings, {} -> {}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        a.gateway(),
        b.gateway(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(p99 < Duration::from_millis(300), "p99 {p99:?} over 300 ms");
    Ok(())
}

/// What GET /channels/{id}/presence says of `user`.
async fn presence_of(
    viewer: &Session,
    channel: ChannelId,
    user: UserId,
) -> anyhow::Result<chat_types::rest::MemberPresence> {
    let list = api().presence(&viewer.access_token, channel).await?;
    list.into_iter()
        .find(|m| m.user_id == user)
        .ok_or_else(|| anyhow::anyhow!("{user} is not in the presence list"))
}

#[tokio::test]
async fn a_user_is_online_while_any_device_is_connected_and_offline_with_last_seen_after_the_last()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let (alice, bob, dm) = dm_pair(&api, "roamer", "friend").await?;
    let mut b = connect(&bob.access_token).await?;

    let before_any = presence_of(&bob, dm, alice.user.id).await?;
    assert!(!before_any.online);
    assert_eq!(before_any.last_seen_at, None, "never seen yet");

    let a1 = connect(&alice.access_token).await?;
    assert_eq!(b.next_presence_of(alice.user.id).await?, (true, None));
    let now = presence_of(&bob, dm, alice.user.id).await?;
    assert!(now.online);
    assert_eq!(now.last_seen_at, None);
    let a2 = connect_elsewhere(&alice.access_token, a1.gateway()).await?;
    println!("alice on {} and {}", a1.gateway(), a2.gateway());

    a1.close(Duration::from_secs(2)).await;
    // The first device's close is not the user going offline. (Seen from the second device's
    // side a moment later, so that the two closes have distinct times.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(presence_of(&bob, dm, alice.user.id).await?.online);

    let closing = chrono::Utc::now();
    a2.close(Duration::from_secs(2)).await;
    let (online, last_seen) = b.next_presence_of(alice.user.id).await?;
    assert!(!online, "the last device closed: offline");
    let last_seen = last_seen.expect("an offline frame carries the last seen time");
    let lag = last_seen - closing;
    println!("offline announced; last seen {lag} after the last close began");
    assert!(
        lag >= chrono::TimeDelta::milliseconds(-5) && lag < chrono::TimeDelta::seconds(2),
        "last seen is the last device's close, not the first's: {lag}"
    );
    let after = presence_of(&bob, dm, alice.user.id).await?;
    assert!(!after.online);
    assert_eq!(after.last_seen_at, Some(last_seen));

    // Back online: announced again; the member list says so too.
    let _a3 = connect(&alice.access_token).await?;
    assert_eq!(b.next_presence_of(alice.user.id).await?, (true, None));
    assert!(presence_of(&bob, dm, alice.user.id).await?.online);
    Ok(())
}

#[tokio::test]
async fn presence_of_a_channel_is_for_members_only() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let alice = register(&api, "host").await?;
    let mallory = register(&api, "nosy").await?;
    let ch = channel_with(&alice, &[]).await?;
    let e = api
        .presence(&mallory.access_token, ch)
        .await
        .expect_err("not a member");
    assert_eq!((e.status(), e.code()), (Some(403), Some("not_a_member")));
    let e = api
        .presence(&alice.access_token, ChannelId(uuid::Uuid::now_v7()))
        .await
        .expect_err("no such channel");
    assert_eq!(e.status(), Some(404));
    let r = api
        .call(
            "GET",
            "/api/v1/channels/not-a-uuid/presence",
            Some(&alice.access_token),
            None,
        )
        .await?;
    assert_eq!(r.status, 400, "{:?}", r.error_code());
    Ok(())
}

/// The gateways where `user` has a connection in the foreground now (`attentive:{user}` in
/// Redis, what the notifier reads).
async fn attentive_gateways(user: UserId) -> anyhow::Result<i64> {
    let mut r = chat_e2e::redis().await?;
    let now = chrono::Utc::now().timestamp_millis();
    Ok(redis::AsyncCommands::zcount(&mut r, format!("attentive:{user}"), now, "+inf").await?)
}

async fn app_state(ws: &mut Connection, state: chat_types::ws::AppState) -> anyhow::Result<()> {
    ws.send(&ClientFrame::AppState { state }).await?;
    // A connection's frames are handled in order, and `app_state` is recorded before the next
    // one is read: after the `pong`, Redis has it.
    frames_before_pong(ws).await?;
    Ok(())
}

#[tokio::test]
async fn attention_follows_app_state_on_every_gateway() -> anyhow::Result<()> {
    use chat_types::ws::AppState::{Background, Foreground};
    let _serial = SERIAL.lock().await;
    let api = api();
    let alice = register(&api, "attn").await?;
    let u = alice.user.id;
    assert_eq!(attentive_gateways(u).await?, 0, "offline: not looking");
    let mut a1 = connect_on(&alice, "gateway-1").await?;
    let mut a2 = connect_on(&alice, "gateway-2").await?;
    assert_eq!(
        attentive_gateways(u).await?,
        2,
        "connections start in the foreground"
    );

    app_state(&mut a1, Background).await?;
    assert_eq!(attentive_gateways(u).await?, 1);
    app_state(&mut a1, Background).await?;
    assert_eq!(
        attentive_gateways(u).await?,
        1,
        "a repeated state changes nothing"
    );
    app_state(&mut a2, Background).await?;
    assert_eq!(
        attentive_gateways(u).await?,
        0,
        "every app in the background"
    );
    app_state(&mut a2, Foreground).await?;
    assert_eq!(attentive_gateways(u).await?, 1);

    // A second connection on gateway-1 in the foreground, then closed: gateway-1's only
    // remaining connection is in the background, so it no longer counts.
    let a3 = connect_on(&alice, "gateway-1").await?;
    assert_eq!(attentive_gateways(u).await?, 2);
    a3.close(Duration::from_secs(2)).await;
    attentive_becomes(u, 1, "gateway-1 still counts after the close").await?;
    drop(a1);
    a2.close(Duration::from_secs(2)).await;
    attentive_becomes(u, 0, "still attentive after every close").await
}

/// Wait (at most [`TIMEOUT`]) until `user` is attentive on `n` gateways: a close is handled
/// after the client's side of it, and nothing tells the client when.
async fn attentive_becomes(user: UserId, n: i64, failure: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    while attentive_gateways(user).await? != n {
        anyhow::ensure!(Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_user_whose_gateway_is_killed_goes_offline_once_the_registration_lapses()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let alice = register(&api, "doomed").await?;
    let bob = register(&api, "survivor").await?;
    // Connections first, the conversation after: the attempts that landed on the other
    // gateway (and were dropped) came and went while the two had nothing to tell each other.
    let a = connect_on(&alice, "gateway-1").await?;
    let mut b = connect_on(&bob, "gateway-2").await?;
    let dm = api
        .open_dm(&bob.access_token, alice.user.id)
        .await?
        .channel
        .id;
    assert!(presence_of(&bob, dm, alice.user.id).await?.online);
    assert_eq!(attentive_gateways(alice.user.id).await?, 1);

    // The kill takes a while to land (the stack script runs first), and the gateway may renew
    // its registrations meanwhile: the last renewal lies between the start of the kill less
    // one renewal interval and the moment the kill returned (the process is gone by then).
    let kill_began = chrono::Utc::now();
    let restart = chat_e2e::Restart::guard(&["gateway-1"]);
    let outcome = async {
        stack(&["kill", "gateway-1", "-9"]).await?;
        let killed_at = chrono::Utc::now();
        let killed = Instant::now();
        drop(a);
        // Online still, until the registration lapses (at most 30 s after its last renewal);
        // then offline for good.
        let deadline = killed + Duration::from_secs(45);
        let offline_at = loop {
            let p = presence_of(&bob, dm, alice.user.id).await?;
            if !p.online {
                break killed.elapsed();
            }
            anyhow::ensure!(Instant::now() < deadline, "alice still online 45 s after the kill: a ghost");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let (last_seen, _) = b
            .until(|f| match f {
                ServerFrame::Presence {
                    user_id,
                    online: false,
                    last_seen_at,
                } if *user_id == alice.user.id => Some(*last_seen_at),
                _ => None,
            })
            .await
            .map_err(|e| anyhow::anyhow!("no offline frame for bob: {e}"))?;
        let frame_at = killed.elapsed();
        let last_seen = last_seen.ok_or_else(|| anyhow::anyhow!("no last seen time"))?;
        let before_kill = killed_at - last_seen;
        println!(
            "presence expiry after kill -9: offline over REST after {:.1} s, offline frame after {:.1} s; last seen {:.1} s before the kill returned ({:.2} s to kill)",
            offline_at.as_secs_f64(),
            frame_at.as_secs_f64(),
            before_kill.as_seconds_f64(),
            (killed_at - kill_began).as_seconds_f64()
        );
        // Checks fail with an error, not a panic, so gateway-1 is started again for the
        // tests after this one.
        anyhow::ensure!(
            last_seen <= killed_at && last_seen >= kill_began - chrono::TimeDelta::seconds(12),
            "last seen {last_seen} is not the registration's last renewal, at most 10 s before the kill ({kill_began} .. {killed_at})"
        );
        anyhow::ensure!(
            offline_at <= Duration::from_secs(32),
            "offline only {offline_at:?} after the kill"
        );
        anyhow::ensure!(
            attentive_gateways(alice.user.id).await? == 0,
            "a dead gateway's user is not looking either"
        );
        Ok(())
    }
    .await;
    restart.start().await?;
    outcome
}

/// A user whose app connects and disconnects again and again (a flaky network) ends offline
/// for a DM peer, and the peer's connection got nothing before its `ready`: the gateway
/// announces one batch at a time, each user as Redis has them then. When each change was its
/// own task, an "online" could reach the peer after the "offline" that followed it, leaving a
/// ghost (and a push racing a connection's registration came before its `ready`).
#[tokio::test]
async fn quick_reconnects_end_offline_for_the_peer() -> anyhow::Result<()> {
    const CYCLES: usize = 15;
    let _serial = SERIAL.lock().await;
    let api = api();
    let (alice, bob, dm) = dm_pair(&api, "flaky", "watcher").await?;
    let mut b = connect_on(&bob, "gateway-2").await?;
    // Straight to gateway-1 (deploy/native/topology.conf), not through nginx: attempts that
    // landed on gateway-2 would be announced by another gateway, in no order with these.
    let gateway_1 = chat_e2e::connector().connect_to("127.0.0.1:8101".parse()?);
    for _ in 0..CYCLES {
        let a = gateway_1.connect(&alice.access_token).await?;
        a.close(Duration::from_secs(2)).await;
    }
    // Offline over REST first: every close has been handled; then the frames, until the quiet
    // after the last one.
    let deadline = Instant::now() + TIMEOUT;
    while presence_of(&bob, dm, alice.user.id).await?.online {
        anyhow::ensure!(
            Instant::now() < deadline,
            "alice still online after her last close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen = Vec::new();
    while let Some(f) = b.next_within(Duration::from_millis(1500)).await? {
        if let ServerFrame::Presence {
            user_id, online, ..
        } = f
            && user_id == alice.user.id
        {
            seen.push(online);
        }
    }
    println!(
        "{CYCLES} connect/close cycles: {} presence frames for the peer",
        seen.len()
    );
    anyhow::ensure!(
        seen.last() == Some(&false),
        "the peer's last word is not offline: {seen:?}"
    );
    Ok(())
}
