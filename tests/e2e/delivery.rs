//! Delivery under failure: real processes of the native stack are killed and restarted in the
//! middle of a stream, and the harness counts lost, duplicated and reordered messages (all must
//! be zero, live and in history). These tests change the shared stack, so they run one at a time
//! (a process-wide lock) and restore every process they stop. One restarts a message server
//! gracefully and checks the consumer group moved only the partitions it had to.

use chat_client::{Connection, Page};
use chat_e2e::harness::{Crowd, Verdict};
use chat_e2e::partitions::{holdings, partition_of};
use chat_e2e::{
    Restart, api, cassandra, connect, connect_elsewhere, connect_to, register, senders, stack,
    stack_with_env, unique, wait_until_gateways_read_cassandra, wait_until_ready,
};
use chat_types::bus::BusRecord;
use chat_types::ws::{ClientFrame, ServerFrame};
use chat_types::{ChannelId, MessageId};
use std::time::Duration;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

const CLIENTS: usize = 12;
const CHANNELS: usize = 6;
const MEMBERS: usize = 4;
const PER_CHANNEL: usize = 60;
const PAUSE: Duration = Duration::from_millis(40);
const SETTLE: Duration = Duration::from_secs(90);
/// Big: pushed to every listed gateway with its member list, at least 4 members per listed
/// gateway (chat_store::push::BROADCAST_PER_GATEWAY), with room for two spares a cluster test
/// may have left listed.
const BIG_CHANNEL_MEMBERS: usize = 20;

#[tokio::test]
async fn killing_a_message_server_mid_stream_loses_duplicates_and_reorders_nothing()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let crowd = Crowd::new(CLIENTS, CHANNELS, MEMBERS).await?;
    let restart = Restart::guard(&["message-server-1"]);
    let sent = crowd
        .stream(PER_CHANNEL, PAUSE, || {
            stack(&["kill", "message-server-1", "-9"])
        })
        .await?;
    let verdict = crowd.finish(sent, SETTLE).await;
    restart.start().await?;
    verdict?.report_and_check("kill -9 message-server-1")
}

/// Edits and reactions take positions like messages: the same accounting, over both.
const CHANGE_EVERY: usize = 3;

#[tokio::test]
async fn edits_and_reactions_survive_a_message_server_kill_exactly() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let crowd = Crowd::new(CLIENTS, CHANNELS, MEMBERS).await?;
    let restart = Restart::guard(&["message-server-2"]);
    let sent = crowd
        .stream_changing(PER_CHANNEL, PAUSE, CHANGE_EVERY, || {
            stack(&["kill", "message-server-2", "-9"])
        })
        .await?;
    let verdict = crowd.finish(sent, SETTLE).await;
    restart.start().await?;
    let verdict = verdict?;
    verdict.report_and_check("changes, kill -9 message-server-2")?;
    assert!(verdict.changes_sent > 0);
    Ok(())
}

/// Channels of 10 of the 12 clients: big enough (4 or more members per gateway) to be pushed to
/// every gateway rather than to the members' gateways looked up one by one
/// (chat_store::push::BROADCAST_PER_GATEWAY), so a gateway kill is run on both routings (the
/// other gateway kills use channels of 4).
const BIG_CHANNEL: usize = 10;

#[tokio::test]
async fn edits_and_reactions_survive_a_gateway_kill_exactly() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let crowd = Crowd::new(CLIENTS, CHANNELS, BIG_CHANNEL).await?;
    let restart = Restart::guard(&["gateway-2"]);
    let sent = crowd
        .stream_changing(PER_CHANNEL, PAUSE, CHANGE_EVERY, || {
            stack(&["kill", "gateway-2", "-9"])
        })
        .await?;
    let verdict = crowd.finish(sent, SETTLE).await;
    restart.start().await?;
    let verdict = verdict?;
    verdict.report_and_check("changes, kill -9 gateway-2")?;
    assert!(verdict.changes_sent > 0 && verdict.reconnects > 0);
    Ok(())
}

#[tokio::test]
async fn killing_a_gateway_makes_its_clients_reconnect_and_resume_exactly() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let verdict = gateway_1_killed_mid_stream().await?;
    verdict.report_and_check("kill -9 gateway-1")?;
    assert!(
        verdict.reconnects > 0,
        "some clients were on gateway-1 and had to reconnect"
    );
    Ok(())
}

/// A crowd streaming while gateway-1 is killed (`-9`) midway; gateway-1 is started again
/// before the verdict is returned.
async fn gateway_1_killed_mid_stream() -> anyhow::Result<Verdict> {
    let crowd = Crowd::new(CLIENTS, CHANNELS, MEMBERS).await?;
    let restart = Restart::guard(&["gateway-1"]);
    let sent = crowd
        .stream(PER_CHANNEL, PAUSE, || stack(&["kill", "gateway-1", "-9"]))
        .await?;
    let verdict = crowd.finish(sent, SETTLE).await;
    restart.start().await?;
    verdict
}

/// A gateway that failed once (killed, restarted) must take every client of the next gateway
/// that dies at once. nginx only forgets a server's failure when a connection to it ends well,
/// and WebSockets last: with `max_fails=1` the restarted gateway got one new connection per
/// `fail_timeout` per nginx worker, and the killed gateway's clients waited ~30 s in "no live
/// upstreams" (seen in CI as a 30 s delivery pause).
#[tokio::test]
async fn clients_of_a_killed_gateway_reconnect_at_once_after_an_earlier_gateway_failure()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    // The earlier failure: gateway-2 is down while clients connect (nginx tries it, is refused
    // and goes on to gateway-1), then comes back.
    let restart = Restart::guard(&["gateway-2"]);
    stack(&["kill", "gateway-2", "-9"]).await?;
    let api = api();
    let probe = register(&api, "lb-probe").await?;
    for _ in 0..8 {
        connect(&probe.access_token).await?;
    }
    restart.start().await?;
    let verdict = gateway_1_killed_mid_stream().await?;
    verdict.report_and_check("kill -9 gateway-1 after gateway-2 failed once")?;
    anyhow::ensure!(verdict.reconnects > 0, "no client was on gateway-1");
    // The clients' own backoff is at most 2 s between attempts; 10 s is far from both that and
    // the ~30 s of a starved gateway.
    anyhow::ensure!(
        verdict.longest_reconnect < Duration::from_secs(10),
        "a client took {:?} to reconnect to the gateway left",
        verdict.longest_reconnect
    );
    Ok(())
}

#[tokio::test]
async fn a_redis_restart_mid_stream_loses_nothing() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let crowd = Crowd::new(CLIENTS, CHANNELS, MEMBERS).await?;
    let restart = Restart::guard(&["redis"]);
    let sent = crowd
        .stream(PER_CHANNEL, PAUSE, || async {
            stack(&["kill", "redis", "-9"]).await?;
            stack(&["start", "redis"]).await
        })
        .await?;
    restart.start().await?;
    crowd
        .finish(sent, SETTLE)
        .await?
        .report_and_check("redis restart")
}

/// PostgreSQL killed and started again in the middle of a stream: nothing is lost, and the API
/// answers from its first request once PostgreSQL does. The restart drops every connection the
/// services' pools hold; the pools hand out a connection unchecked only if it was used within
/// the last second (checking each one cost a round trip per query), so they must still find the
/// dropped ones, idle through the restart, before a request gets one: handed out unchecked, the
/// API's first requests failed.
#[tokio::test]
async fn a_postgresql_restart_mid_stream_loses_nothing_and_the_api_answers_at_once()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let probe = register(&api, "pg-probe").await?;
    api.create_channel(&probe.access_token, &unique("pg-probe-"), None)
        .await?;
    let crowd = Crowd::new(CLIENTS, CHANNELS, MEMBERS).await?;
    let restart = Restart::guard(&["postgres"]);
    let sent = crowd
        .stream(PER_CHANNEL, PAUSE, || async {
            stack(&["kill", "postgres", "-9"]).await?;
            stack(&["start", "postgres"]).await?;
            // `start` returns once PostgreSQL accepts connections: what a user does next must
            // work, each kind of request a few times (each may get another pooled connection).
            for attempt in 1..=3 {
                let asked = tokio::try_join!(
                    api.me(&probe.access_token),
                    api.channels(&probe.access_token),
                    api.conversations(&probe.access_token),
                );
                if let Err(e) = asked {
                    anyhow::bail!("request {attempt} after PostgreSQL restarted failed: {e:#}");
                }
            }
            Ok(())
        })
        .await?;
    restart.start().await?;
    crowd
        .finish(sent, SETTLE)
        .await?
        .report_and_check("postgres restart")
}

#[tokio::test]
async fn cassandra_down_for_ten_seconds_makes_messages_late_not_lost() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let crowd = Crowd::new(CLIENTS, CHANNELS, MEMBERS).await?;
    let restart = Restart::guard(&["cassandra"]);
    let restarter = std::sync::Mutex::new(None);
    let sent = crowd
        .stream(PER_CHANNEL, PAUSE, || async {
            stack(&["kill", "cassandra"]).await?;
            // The outage itself: ten seconds down, while the stream goes on.
            *restarter.lock().expect("lock") = Some(tokio::spawn(async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                stack(&["start", "cassandra"]).await
            }));
            Ok(())
        })
        .await?;
    let handle = restarter.lock().expect("lock").take();
    if let Some(h) = handle {
        h.await??;
    }
    restart.start().await?;
    // Cassandra is back; wait until the API reports it can read history again (its driver
    // reconnects on its own schedule) before the verdict reads history through it.
    let ready = std::env::var("CHAT_API_OPS_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:9100".into())
        + "/readyz";
    wait_until_ready(&[ready], SETTLE).await?;
    let checked = crowd
        .finish(sent, SETTLE)
        .await?
        .report_and_check("cassandra stopped for 10 s");
    // The tests after this one find the gateways reading Cassandra again too (replies,
    // reactions and resumes read it; their `/readyz` does not say).
    wait_until_gateways_read_cassandra(&["gateway-1", "gateway-2"], SETTLE).await?;
    checked
}

#[tokio::test]
async fn the_same_client_msg_id_sent_three_times_through_two_gateways_is_one_message()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let a = register(&api, "idem-a").await?;
    let b = register(&api, "idem-b").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("idem-"), None)
        .await?;
    api.join(&b.access_token, ch.id).await?;
    let mut ws_b = connect(&b.access_token).await?;
    let mut first = connect(&a.access_token).await?;
    let mut second = connect_elsewhere(&a.access_token, first.gateway()).await?;
    let cmid = uuid::Uuid::new_v4().to_string();
    let mut acks = Vec::new();
    for (which, body) in [(0, "one"), (1, "two"), (0, "three")] {
        let ws = if which == 0 { &mut first } else { &mut second };
        let m = ws.send_acked(ch.id, &cmid, body).await?;
        acks.push(m);
    }
    assert!(
        acks.iter()
            .all(|m| m.id == acks[0].id && m.body == "one" && m.created_at == acks[0].created_at)
    );

    // B sees it once: the next message B gets after it is a fresh one, with the next position.
    let marker = uuid::Uuid::new_v4().to_string();
    first.send_message(ch.id, &marker, "after").await?;
    let mut got = Vec::new();
    while got
        .last()
        .is_none_or(|m: &chat_types::Message| m.client_msg_id != marker)
    {
        if let ServerFrame::Message { message } = ws_b.next_frame().await? {
            got.push(message);
        }
    }
    let bodies: Vec<_> = got.iter().map(|m| m.body.as_str()).collect();
    println!(
        "same client_msg_id x3 via 2 gateways: sent 3, acked 3 (one id), B received {bodies:?}"
    );
    assert_eq!(bodies, ["one", "after"]);
    assert_eq!(got[1].seq, Some(got[0].seq.unwrap() + 1));
    let h = api.history(&a.access_token, ch.id, Page::default()).await?;
    assert_eq!(h.len(), 2, "stored once");
    Ok(())
}

#[tokio::test]
async fn a_client_that_stops_reading_and_then_resumes_gets_everything_once_in_order()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let crowd = Crowd::new(4, 1, 4).await?;
    let sleeper = 3;
    let ch = crowd.channels[0].id;
    // First every client sees a message: a client that lost its connection before seeing any
    // message of a channel would load it over REST, which the harness does not do; `resume`
    // covers the rest.
    crowd.clients[0].send(ch, uuid::Uuid::new_v4().to_string(), "first".into());
    let mut sent = 1;
    crowd.wait_received(1, Duration::from_secs(10)).await?;
    crowd.clients[sleeper].pause_reading(true);
    // ~10.8 MB of 12 KB bodies from three senders (within the send rate): more than the
    // gateway's 4 MiB queue for the sleeper, so its connection is closed with 4408 (slow
    // consumer) and it reconnects and resumes, while the senders go on, on a busy gateway.
    let body = "\u{1F600}".repeat(3000);
    for i in 0..900 {
        let from = i % 3;
        crowd.clients[from].send(ch, uuid::Uuid::new_v4().to_string(), format!("{i} {body}"));
        sent += 1;
        if i % 150 == 149 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    crowd.clients[sleeper].pause_reading(false);
    let closes = crowd.clients[sleeper].log.clone();
    let verdict = crowd.finish(sent, SETTLE).await?;
    println!(
        "slow reader's connection losses: {:?}",
        closes.lock().expect("log").close_reasons
    );
    verdict.report_and_check("client paused reading, then resumed")
}

#[tokio::test]
async fn a_gateway_being_stopped_tells_its_clients_to_reconnect() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let a = register(&api, "drain").await?;
    // A connection on gateway-2 (nginx spreads connections; a few tries reach it).
    let mut ws = None;
    for _ in 0..20 {
        let c = connect(&a.access_token).await?;
        if c.gateway() == "gateway-2" {
            ws = Some(c);
            break;
        }
    }
    let mut ws = ws.expect("a connection on gateway-2");
    let restart = Restart::guard(&["gateway-2"]);
    stack(&["kill", "gateway-2"]).await?; // SIGTERM: graceful
    let err = loop {
        match ws.next_frame().await {
            Ok(_) => continue,
            Err(e) => break e.to_string(),
        }
    };
    restart.start().await?;
    println!("client saw: {err}");
    assert!(
        err.contains("1001") || err.contains("Away"),
        "expected close 1001 going away, got {err}"
    );
    // Reconnecting through nginx works at once.
    connect(&a.access_token).await?;
    Ok(())
}

/// Positions stay contiguous across a bucket boundary (1,024 positions per Cassandra partition)
/// when the message servers lose their cached heads: after a restart each head is found again
/// from the stored hint and the newest rows, and history's newest page is the true end.
#[tokio::test]
async fn positions_continue_across_a_bucket_after_the_message_servers_restart() -> anyhow::Result<()>
{
    let _serial = SERIAL.lock().await;
    let api = api();
    let a = register(&api, "bucket").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("bucket-"), None)
        .await?;
    let mut ws = connect(&a.access_token).await?;
    let mut from = senders(&api, ch.id, 6).await?;

    let mut seqs = live_positions(&mut from, &mut ws, ch.id, 1030).await?;
    // Graceful stops: the group rebalances at once, and both servers start with empty caches.
    let restart = Restart::guard(&["message-server-1", "message-server-2"]);
    stack(&["kill", "message-server-1"]).await?;
    stack(&["kill", "message-server-2"]).await?;
    restart.start().await?;
    seqs.extend(live_positions(&mut from, &mut ws, ch.id, 10).await?);
    assert_eq!(seqs, (1..=1040).collect::<Vec<i64>>(), "live positions");

    // History, newest page first, then back to the start.
    let mut stored: Vec<i64> = Vec::new();
    let mut query = Page::newest(100);
    loop {
        let page = api.history(&a.access_token, ch.id, query).await?;
        let Some(oldest) = page.first() else { break };
        query = Page::before(oldest.id, 100);
        let mut older: Vec<i64> = page.iter().filter_map(|m| m.seq).collect();
        older.append(&mut stored);
        stored = older;
    }
    assert_eq!(stored, (1..=1040).collect::<Vec<i64>>(), "stored positions");
    println!(
        "1,040 messages across buckets 0 and 1 with both message servers restarted: positions 1..=1040, live and stored"
    );
    Ok(())
}

/// A message's id row (its row in PostgreSQL's unread log) is written before its row in
/// Cassandra's `messages`: a failure in between, with the message server dying before its
/// retry, leaves the id row alone. The replay then finds the id row naming this very record. It
/// must store the message again, not only push it: here the id row alone is written by hand
/// for a record the stopped message servers have not consumed.
#[tokio::test]
async fn a_replayed_message_whose_id_row_alone_was_stored_is_stored_again() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut at = OneMessage::new("halfstored").await?;
    let restart = Restart::guard(&["message-server-1", "message-server-2"]);
    stack(&["kill", "message-server-1"]).await?;
    stack(&["kill", "message-server-2"]).await?;
    let sent = at
        .ws
        .send_acked(at.channel, &unique("half-"), "half stored")
        .await?;
    let offset = offset_of(
        at.channel,
        move |r| matches!(r, BusRecord::Message(m) if m.id == sent.id),
    )
    .await?;
    sqlx::query(
        "INSERT INTO channel_messages (channel_id, seq, id, sender_id, created_at, preview, kafka_offset)
         VALUES ($1, 2, $2, $3, now(), 'half stored', $4)",
    )
    .bind(at.channel.0)
    .bind(sent.id.0)
    .bind(at.user.0)
    .bind(offset)
    .execute(&chat_e2e::postgres().await?)
    .await?;
    restart.start().await?;
    at.replayed_once_at_2(sent.id, "half stored").await?;
    println!("a replayed message with only its id row stored: pushed at 2 and stored again");
    Ok(())
}

/// The same for an event (here an edit): only its id row (`message_ids`, under the event's
/// id) was stored. The replay must apply and store it at its position, not drop it.
#[tokio::test]
async fn a_replayed_event_whose_id_row_alone_was_stored_is_stored_again() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let a = register(&api, "halfedit").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("halfedit-"), None)
        .await?;
    let mut ws = connect(&a.access_token).await?;
    let sent = ws.send_acked(ch.id, &unique("halfedit-"), "before").await?;
    assert_eq!(ws.next_message().await?.seq, Some(1));

    let restart = Restart::guard(&["message-server-1", "message-server-2"]);
    stack(&["kill", "message-server-1"]).await?;
    stack(&["kill", "message-server-2"]).await?;
    let edit = ClientFrame::Edit {
        channel_id: ch.id,
        message_id: sent.id,
        client_event_id: unique("halfedit-"),
        body: "after".into(),
    };
    let event = ws.change_acked(&edit).await?;
    store_cql_id_row(
        ch.id,
        event.0,
        2,
        move |r| matches!(r, BusRecord::Event(e) if e.id == event),
    )
    .await?;
    restart.start().await?;

    let replayed = ws.next_event().await?;
    assert_eq!(
        (replayed.id, replayed.seq),
        (event, 2),
        "the replayed edit is pushed"
    );
    let page = api
        .history(&a.access_token, ch.id, Page::newest(10))
        .await?;
    let stored: Vec<(i64, &str, bool)> = page
        .iter()
        .map(|m| {
            (
                m.seq.unwrap_or_default(),
                m.body.as_str(),
                m.edited_at.is_some(),
            )
        })
        .collect();
    assert_eq!(stored, [(1, "after", true)], "the edit is stored");
    println!("a replayed edit with only its id row stored: pushed at 2, applied and stored again");
    Ok(())
}

/// Upgrading from message servers that kept message ids in Cassandra only (`message_ids`)
/// and logged a message for unread counts after storing it: one of them stored a message (its
/// id row and its row) and died before logging and committing it. The new version, started
/// after it, finds the id in Cassandra (the record was produced before its first start) and
/// pushes the message at its position, stores it once, and logs it. Looking only at the log it
/// would give the replay a second position (history 1, 2, 3 with the message twice).
#[tokio::test]
async fn a_message_an_older_message_server_stored_without_logging_is_replayed_once()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut at = OneMessage::new("upgraded").await?;
    let db = chat_e2e::postgres().await?;
    let restart = Restart::guard(&["message-server-1", "message-server-2"]);
    stack(&["kill", "message-server-1"]).await?;
    stack(&["kill", "message-server-2"]).await?;
    // As at an upgrade: the first message server of this version starts now.
    sqlx::query("UPDATE message_index SET logged_since = now()")
        .execute(&db)
        .await?;
    let cmid = unique("upgraded-");
    let sent = at
        .ws
        .send_acked(at.channel, &cmid, "stored unlogged")
        .await?;
    store_cql_id_row(
        at.channel,
        sent.id.0,
        2,
        move |r| matches!(r, BusRecord::Message(m) if m.id == sent.id),
    )
    .await?;
    cassandra()
        .await?
        .query_unpaged(
            "INSERT INTO messages (channel_id, bucket, seq, id, sender_id, body, client_msg_id, created_at)
             VALUES (?, 0, 2, ?, ?, 'stored unlogged', ?, ?)",
            (
                at.channel.0,
                sent.id.0,
                at.user.0,
                cmid.as_str(),
                sent.created_at,
            ),
        )
        .await?;
    restart.start().await?;
    let checked = at.replayed_once_at_2(sent.id, "stored unlogged").await;
    sqlx::query("UPDATE message_index SET logged_since = '-infinity'")
        .execute(&db)
        .await?;
    checked?;
    let logged: Option<i64> =
        sqlx::query_scalar("SELECT kafka_offset FROM channel_messages WHERE id = $1")
            .bind(sent.id.0)
            .fetch_optional(&db)
            .await?
            .flatten();
    anyhow::ensure!(
        logged.is_some(),
        "the replayed message was not logged with its record's offset: {logged:?}"
    );
    println!("a message an older version stored without logging it: replayed at 2, once, logged");
    Ok(())
}

/// A deleted message keeps its id: a resend of it that reaches Kafka again (its send claim in
/// Redis gone: a Redis restart, or a resend after the claim's 24 hours) is recognised and
/// dropped, not stored and pushed as a new message.
#[tokio::test]
async fn a_resend_of_a_deleted_message_is_not_stored_again() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut at = OneMessage::new("deletedresend").await?;
    let cmid = unique("deletedresend-");
    let sent = at.ws.send_acked(at.channel, &cmid, "regretted").await?;
    assert_eq!(at.ws.next_message().await?.seq, Some(2));
    at.ws
        .change_acked(&ClientFrame::Delete {
            channel_id: at.channel,
            message_id: sent.id,
            client_event_id: unique("deletedresend-"),
        })
        .await?;
    // The delete reached the log once the conversation list previews the message before it
    // (a resend handled earlier would still find the message's row whatever a delete does).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = at.api.conversations(&at.token).await?;
        let last = list
            .iter()
            .find(|c| c.channel.id == at.channel)
            .and_then(|c| c.last_message.as_ref())
            .map(|m| m.seq);
        if last == Some(1) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the deleted message is still the last one: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut redis = chat_e2e::redis().await?;
    let _: i64 = redis::cmd("DEL")
        .arg(format!("claim:{}", sent.id.0.simple()))
        .query_async(&mut redis)
        .await?;
    let again = at.ws.send_acked(at.channel, &cmid, "regretted").await?;
    assert_eq!(again.id, sent.id, "the resend names the same message");
    // The delete took position 3: the next message gets 4, and nothing came between.
    let next = live_positions(&mut at.from, &mut at.ws, at.channel, 1).await?;
    assert_eq!(next, [4], "the next message follows the delete");
    let page = at
        .api
        .history(&at.token, at.channel, Page::newest(10))
        .await?;
    let seqs: Vec<i64> = page.iter().filter_map(|m| m.seq).collect();
    let copies = page.iter().filter(|m| m.id == sent.id).count();
    assert_eq!(
        (seqs.as_slice(), copies),
        (&[1, 2, 4][..], 1),
        "the deleted message once, at 2"
    );
    println!("a resend of a deleted message, its claim gone: not stored again");
    Ok(())
}

/// A failure after a batch's message rows were written, before the call succeeded (a write
/// timeout, Cassandra restarting), and the message server dies while retrying: its replay must
/// find the message stored and only push it, at its position, not give it a second one. The
/// fail point `cql-rows-written` fails every store of a batch just after its rows were written.
#[tokio::test]
async fn a_message_stored_before_a_failure_keeps_its_one_position() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut at = OneMessage::new("rowsfirst").await?;
    let restart = failing_at("cql-rows-written").await?;
    let sent = at
        .ws
        .send_acked(at.channel, &unique("rowsfirst-"), "stored, then failed")
        .await?;
    died_retrying().await?;
    restart.start().await?;
    at.replayed_once_at_2(sent.id, "stored, then failed")
        .await?;
    println!("a message stored before a failure: replayed at 2, stored once");
    Ok(())
}

/// What the message servers and the notifier handled is committed within seconds, each time,
/// not once per process: a member that crashes, or loses its partitions when Kafka restarts,
/// hands its partitions on from its last commit, and everything handled since is replayed
/// (recognised, but read, looked up and pushed again, with the partition's new records behind
/// it). With commits stuck after a member's first one, a Kafka restart in a benchmark replayed
/// minutes of records and held deliveries for 16 s. Two messages, one after the other: each
/// must be committed by both groups.
#[tokio::test]
async fn what_each_group_handled_is_committed_within_seconds() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut at = OneMessage::new("committed").await?;
    for round in 1..=2 {
        assert_eq!(
            live_positions(&mut at.from, &mut at.ws, at.channel, 1).await?,
            [round + 1]
        );
        let offset = offset_of(at.channel, |r| matches!(r, BusRecord::Message(_))).await?;
        let partition = partition_of(at.channel, 16);
        for group in ["chat-message-servers", "chat-notifier"] {
            let started = std::time::Instant::now();
            let committed = committed_reaches(group, partition, offset + 1).await?;
            anyhow::ensure!(
                committed > offset,
                "{group}: message {round} (offset {offset} of partition {partition}) handled, \
                 but the group's commit is still at {committed} after {:?}",
                started.elapsed()
            );
            println!(
                "{group}: message {round} committed within {:?}",
                started.elapsed()
            );
        }
    }
    Ok(())
}

/// The group's committed offset of `partition` once it reaches `at`, or after 10 s whatever it
/// is then (-1: none). The members commit at most once a second; 10 s only bounds a failure.
async fn committed_reaches(group: &str, partition: i32, at: i64) -> anyhow::Result<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let group = group.to_string();
    tokio::task::spawn_blocking(move || {
        let brokers = chat_e2e::kafka_brokers();
        // Not subscribed, so never a member: it only reads the group's offsets.
        let reader: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut asked = rdkafka::TopicPartitionList::new();
        asked.add_partition(chat_types::bus::TOPIC, partition);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let offsets = reader.committed_offsets(asked.clone(), Duration::from_secs(5))?;
            let committed = match offsets
                .find_partition(chat_types::bus::TOPIC, partition)
                .map(|e| e.offset())
            {
                Some(rdkafka::Offset::Offset(o)) => o,
                _ => -1,
            };
            if committed >= at || std::time::Instant::now() >= deadline {
                return Ok(committed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await?
}

/// A new user's channel with one message (position 1) received live, for the replay tests.
struct OneMessage {
    api: chat_client::Api,
    user: chat_types::UserId,
    token: String,
    channel: ChannelId,
    ws: Connection,
    from: Vec<Connection>,
}

impl OneMessage {
    async fn new(name: &str) -> anyhow::Result<OneMessage> {
        let api = api();
        let a = register(&api, name).await?;
        let ch = api
            .create_channel(&a.access_token, &unique(name), None)
            .await?;
        let mut ws = connect(&a.access_token).await?;
        let mut from = senders(&api, ch.id, 1).await?;
        assert_eq!(live_positions(&mut from, &mut ws, ch.id, 1).await?, [1]);
        Ok(OneMessage {
            api,
            user: a.user.id,
            token: a.access_token,
            channel: ch.id,
            ws,
            from,
        })
    }

    /// After the message servers started again: the replay of `sent` is pushed at position 2,
    /// the next message gets 3, and history has the three once each.
    async fn replayed_once_at_2(&mut self, sent: MessageId, body: &str) -> anyhow::Result<()> {
        let replayed = self.ws.next_message().await?;
        assert_eq!(
            (replayed.id, replayed.seq),
            (sent, Some(2)),
            "the replay is pushed at its position"
        );
        let next = live_positions(&mut self.from, &mut self.ws, self.channel, 1).await?;
        assert_eq!(next, [3], "the next message follows it");
        let page = self
            .api
            .history(&self.token, self.channel, Page::newest(10))
            .await?;
        let stored: Vec<(i64, &str)> = page
            .iter()
            .map(|m| (m.seq.unwrap_or_default(), m.body.as_str()))
            .collect();
        assert_eq!(stored.len(), 3, "each message in history once: {stored:?}");
        assert_eq!(stored[1], (2, body), "{stored:?}");
        Ok(())
    }
}

/// The same for the state a change leaves: a failure after a delete's tombstone was written,
/// and the message server dies while retrying. The replay must still push (and have stored)
/// the delete event, not find the message deleted already and take the delete for moot, which
/// would leave every connected client showing the message.
#[tokio::test]
async fn a_delete_whose_state_was_written_before_a_failure_is_still_pushed() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let a = register(&api, "statelast").await?;
    let ch = api
        .create_channel(&a.access_token, &unique("statelast-"), None)
        .await?;
    let mut ws = connect(&a.access_token).await?;
    let sent = ws.send_acked(ch.id, &unique("statelast-"), "to go").await?;
    assert_eq!(ws.next_message().await?.seq, Some(1));

    let restart = failing_at("cql-state-written").await?;
    let delete = ClientFrame::Delete {
        channel_id: ch.id,
        message_id: sent.id,
        client_event_id: unique("statelast-"),
    };
    let event = ws.change_acked(&delete).await?;
    died_retrying().await?;
    restart.start().await?;

    let replayed = ws.next_event().await?;
    assert_eq!(
        (replayed.id, replayed.seq, replayed.change),
        (event, 2, chat_types::events::Change::Deleted),
        "the replayed delete is pushed"
    );
    let page = api
        .history(&a.access_token, ch.id, Page::newest(10))
        .await?;
    let stored: Vec<(i64, bool)> = page
        .iter()
        .map(|m| (m.seq.unwrap_or_default(), m.deleted))
        .collect();
    assert_eq!(stored, [(1, true)], "the delete is stored");
    println!("a delete whose tombstone was written before a failure: pushed at 2 after the replay");
    Ok(())
}

/// Stop both message servers and start the first alone with the fail point `point` set to
/// fail (so it owns every partition). The guard starts both, without it, again.
async fn failing_at(point: &str) -> anyhow::Result<Restart> {
    let restart = Restart::guard(&["message-server-1", "message-server-2"]);
    stack(&["kill", "message-server-1"]).await?;
    stack(&["kill", "message-server-2"]).await?;
    let faults = format!("{point}=return");
    stack_with_env(&["start", "message-server-1"], &[("FAILPOINTS", &faults)]).await?;
    Ok(restart)
}

/// Wait until the first message server has failed to store a batch, then kill it (`kill -9`),
/// whether or not it failed in time (it must not keep its fail point for the tests after).
async fn died_retrying() -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let retries = chat_e2e::metric(MS1_OPS, "chat_store_retries_total").await;
        if retries.as_ref().is_ok_and(|n| *n >= 1.0) || tokio::time::Instant::now() > deadline {
            break retries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stack(&["kill", "message-server-1"]).await?;
    anyhow::ensure!(
        failed? >= 1.0,
        "the message server never failed to store the batch"
    );
    Ok(())
}

/// Write the Cassandra id row (`message_ids`) of the last record of `channel`'s partition, the
/// one `is` picks, at position `seq`: an event's id row (alone, as a failure after a batch's
/// first step leaves it), or a message's as message servers before the log was the index
/// wrote them.
async fn store_cql_id_row(
    channel: ChannelId,
    id: uuid::Uuid,
    seq: i64,
    is: impl Fn(&BusRecord) -> bool + Send + 'static,
) -> anyhow::Result<()> {
    let offset = offset_of(channel, is).await?;
    cassandra()
        .await?
        .query_unpaged(
            "INSERT INTO message_ids (id, channel_id, seq, kafka_offset) VALUES (?, ?, ?, ?)",
            (id, channel.0, seq, offset),
        )
        .await?;
    Ok(())
}

/// The offset of a record in the `messages` topic: the last record of its channel's
/// partition (nothing else is sent to the channel), checked to be the one `is` picks.
async fn offset_of(
    channel: ChannelId,
    is: impl Fn(&BusRecord) -> bool + Send + 'static,
) -> anyhow::Result<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message as _;
    tokio::task::spawn_blocking(move || {
        let brokers = chat_e2e::kafka_brokers();
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", unique("halfstored-"))
            .set("enable.auto.commit", "false")
            .create()?;
        let (topic, partition) = (chat_types::bus::TOPIC, partition_of(channel, 16));
        let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        let mut at = rdkafka::TopicPartitionList::new();
        at.add_partition_offset(topic, partition, rdkafka::Offset::Offset(high - 1))?;
        consumer.assign(&at)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let Some(record) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let record = record?;
            let decoded = record
                .payload()
                .and_then(|p| serde_json::from_slice::<BusRecord>(p).ok());
            anyhow::ensure!(
                decoded.as_ref().is_some_and(&is),
                "the last record of partition {partition} is not the one sent: {decoded:?}"
            );
            return Ok(record.offset());
        }
        anyhow::bail!("no record at offset {} of partition {partition}", high - 1)
    })
    .await?
}

/// Send `n` messages from `from` (round robin, pipelined) and return the positions of their
/// live copies as `ws` receives them.
async fn live_positions(
    from: &mut [Connection],
    ws: &mut Connection,
    channel: chat_types::ChannelId,
    n: usize,
) -> anyhow::Result<Vec<i64>> {
    let run = uuid::Uuid::new_v4();
    let senders = from.len();
    for i in 0..n {
        from[i % senders]
            .send_message(channel, &format!("{run}-{i}"), &format!("message {i}"))
            .await?;
    }
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        if let ServerFrame::Message { message } = ws.next_frame().await?
            && message.client_msg_id.starts_with(&run.to_string())
        {
            seqs.push(message.seq.unwrap_or_default());
        }
    }
    Ok(seqs)
}

/// The message servers' ops ports (deploy/native/topology.conf).
const MS1_OPS: u16 = 9201;
const MS2_OPS: u16 = 9202;

/// Wait until both message servers hold partitions, all `partitions` between them, unchanged
/// for two broker heartbeats (1.5 s apart): no rebalance is under way.
async fn group_settled(partitions: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut last = None;
    let mut stable_since = tokio::time::Instant::now();
    loop {
        let now = (holdings(MS1_OPS).await?, holdings(MS2_OPS).await?);
        let (one, two) = (now.0.held().len(), now.1.held().len());
        let whole = one > 0 && two > 0 && one + two == partitions;
        if !whole || last.as_ref() != Some(&now) {
            stable_since = tokio::time::Instant::now();
        } else if stable_since.elapsed() >= Duration::from_secs(3) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the group did not settle: message-server-1 holds {one}, message-server-2 {two} of {partitions}"
        );
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A message server restarted (stopped gracefully, then started) under traffic. The consumer
/// group speaks KIP-848: its partitions go to the other server and some come back, and the
/// other server gives up only the partitions that move (the classic protocol revoked every
/// partition of every member at each of the two rebalances, pausing every channel). Nothing is
/// lost, duplicated or reordered; the longest delivery pause of channels on partitions that
/// stayed put and of those that moved is printed.
#[tokio::test]
async fn a_message_server_restarting_moves_only_the_partitions_it_must() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const PARTITIONS: usize = 16; // CHAT__KAFKA__PARTITIONS of the native stack
    const ROUNDS: usize = 400; // 16 s of traffic, the restart in the middle
    group_settled(PARTITIONS).await?;
    let before = holdings(MS2_OPS).await?;
    let crowd = Crowd::new(CLIENTS, PARTITIONS, MEMBERS).await?;
    let guard = Restart::guard(&["message-server-1"]);
    let restart = std::sync::Mutex::new(None);
    let sent = crowd
        .stream(ROUNDS, PAUSE, || async {
            // The restart runs beside the stream, so traffic flows through both rebalances.
            *restart.lock().expect("lock") = Some(tokio::spawn(async {
                stack(&["kill", "message-server-1"]).await?; // SIGTERM: graceful
                let deadline = tokio::time::Instant::now() + SETTLE;
                while holdings(MS2_OPS).await?.held().len() < PARTITIONS {
                    anyhow::ensure!(
                        tokio::time::Instant::now() < deadline,
                        "message-server-2 never took over every partition"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                stack(&["start", "message-server-1"]).await
            }));
            Ok(())
        })
        .await?;
    let handle = restart.lock().expect("lock").take();
    handle.expect("the restart started").await??;
    guard.start().await?;
    group_settled(PARTITIONS).await?;
    let after = holdings(MS2_OPS).await?;
    let channels: Vec<_> = crowd.channels.iter().map(|c| c.id).collect();
    let verdict = crowd.finish(sent, SETTLE).await?;
    verdict.report_and_check("graceful restart of message-server-1")?;

    // Partitions message-server-2 held before and after and was never given again: it held
    // them throughout.
    let held_after = after.held();
    let kept: Vec<i32> = before
        .held()
        .into_iter()
        .filter(|p| held_after.contains(p) && before.assigned.get(p) == after.assigned.get(p))
        .collect();
    let pause = |stayed: bool| {
        channels
            .iter()
            .filter(|c| kept.contains(&partition_of(**c, PARTITIONS as i32)) == stayed)
            .filter_map(|c| verdict.longest_after_ack.get(c))
            .max()
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "graceful restart of message-server-1: message-server-2 kept {} partitions throughout and holds {} after; longest delivery pause: channels on kept partitions {:.0} ms, on partitions that moved {:.0} ms",
        kept.len(),
        held_after.len(),
        pause(true),
        pause(false)
    );
    // message-server-2 held every partition while message-server-1 was down; when it came
    // back, exactly the partitions it was given were revoked from message-server-2, once each.
    let revoked = after.revocations() - before.revocations();
    assert_eq!(
        revoked as usize,
        PARTITIONS - held_after.len(),
        "message-server-2 gave up partitions that stayed with it (an eager, stop-the-world rebalance)"
    );
    Ok(())
}

/// The guard the tests above rely on: a test that fails between a kill and its own restart
/// leaves the service started again (and ready) for the tests after it.
#[tokio::test]
async fn a_test_failing_after_a_kill_leaves_the_service_started_again() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let failing: anyhow::Result<()> = async {
        let _restart = Restart::guard(&["message-server-2"]);
        stack(&["kill", "message-server-2", "-9"]).await?;
        Err(anyhow::anyhow!("a step after the kill failed"))
    }
    .await;
    assert!(failing.is_err());
    let ready = reqwest::get(format!("http://127.0.0.1:{MS2_OPS}/readyz")).await?;
    assert_eq!(ready.status(), 200, "message-server-2 is running and ready");
    Ok(())
}

/// `deploy/stack.sh start` starts every server it is given, in order (it used to start the first
/// and ignore the rest without a word, which left a benchmark's A/B on one gateway).
#[tokio::test]
async fn the_stack_script_starts_every_server_it_is_named() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let restart = Restart::guard(&["message-server-1", "message-server-2"]);
    stack(&["kill", "message-server-1"]).await?;
    stack(&["kill", "message-server-2"]).await?;
    stack(&["start", "message-server-1", "message-server-2"]).await?;
    for port in [MS1_OPS, MS2_OPS] {
        let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await?;
        assert_eq!(
            ready.status(),
            200,
            "the server with ops port {port} is running and ready"
        );
    }
    restart.start().await?;
    Ok(())
}

/// A new channel and its `members` new users (the first created it), named `<prefix>…`.
async fn channel_of(
    members: usize,
    prefix: &str,
) -> anyhow::Result<(chat_types::ChannelId, Vec<chat_types::rest::Session>)> {
    let api = api();
    let owner = register(&api, prefix).await?;
    let ch = api
        .create_channel(&owner.access_token, &unique(prefix), None)
        .await?;
    let mut sessions = vec![owner];
    for _ in 1..members {
        let s = register(&api, prefix).await?;
        api.join(&s.access_token, ch.id).await?;
        sessions.push(s);
    }
    Ok((ch.id, sessions))
}

/// `n` messages from the first connection, one at a time, each seen live by every connection
/// before the next is sent: one batch, so one routing, each.
async fn each_seen_by_all(
    conns: &mut [Connection],
    channel: chat_types::ChannelId,
    n: usize,
) -> anyhow::Result<()> {
    let run = uuid::Uuid::new_v4();
    for i in 0..n {
        let sent = conns[0]
            .send_acked(channel, &format!("{run}-{i}"), &format!("message {i}"))
            .await?;
        for (who, ws) in conns.iter_mut().enumerate() {
            let got = ws.next_message().await?;
            anyhow::ensure!(
                got.id == sent.id,
                "member {who} on {} got {:?} where message {i} was due",
                ws.gateway(),
                got.body
            );
        }
    }
    Ok(())
}

/// How many `ZRANGEBYSCORE`s Redis has answered since it started (`INFO commandstats`): a
/// presence lookup of one user is one.
async fn presence_lookups(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_zrangebyscore:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// A big channel's message goes to every gateway with the member list, and each gateway picks
/// its own connections: every member on either gateway gets each message once, in order, and
/// Redis is not asked where each member is (it was: one `ZRANGEBYSCORE` per member per message,
/// 5,000 per message in a 5,000-member channel).
#[tokio::test]
async fn a_big_channels_messages_reach_both_gateways_without_a_lookup_per_member()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const MEMBERS: usize = BIG_CHANNEL_MEMBERS;
    const MESSAGES: usize = 10;
    let (ch, sessions) = channel_of(MEMBERS, "big-").await?;
    let mut conns = on_both_gateways(&sessions).await?;
    let mut redis = chat_e2e::redis().await?;
    let before = presence_lookups(&mut redis).await?;
    each_seen_by_all(&mut conns, ch, MESSAGES).await?;
    let lookups = presence_lookups(&mut redis).await? - before;
    println!(
        "{MESSAGES} messages to {MEMBERS} members on two gateways: all delivered once, in order; \
         {lookups} ZRANGEBYSCOREs (one per member would be {})",
        MEMBERS * MESSAGES
    );
    // One listing read per message, plus the gateways' once-a-second sweeps.
    anyhow::ensure!(
        lookups < (MEMBERS * MESSAGES / 4) as u64,
        "{lookups} presence lookups for {MESSAGES} messages: members were looked up one by one"
    );
    Ok(())
}

/// Pushes the message servers failed to make, over both (`chat_pushes_total{result="error"}`).
async fn failed_pushes() -> anyhow::Result<f64> {
    let name = "chat_pushes_total{result=\"error\"}";
    Ok(chat_e2e::metric(MS1_OPS, name).await? + chat_e2e::metric(MS2_OPS, name).await?)
}

/// A gateway stopped gracefully withdraws from the gateways that big channels are pushed to:
/// their messages go on reaching everyone, and no push is tried against the stopped gateway
/// (each would fail and be retried for 1.5 s, until its listing lapsed up to 30 s later).
#[tokio::test]
async fn a_gracefully_stopped_gateway_is_not_pushed_to() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const MEMBERS: usize = 12;
    let (ch, sessions) = channel_of(MEMBERS, "withdraw-").await?;
    // A connection on gateway-2 lists it among the gateways pushed to. Its own message seen
    // live means the joins before it (same partition) were pushed too: no push of this channel
    // is left in flight when gateway-2 stops.
    let (mut on_2, _) = connect_to(&sessions[1].access_token, "gateway-2").await?;
    let probe = on_2
        .send_acked(ch, &uuid::Uuid::new_v4().to_string(), "before the stop")
        .await?;
    anyhow::ensure!(on_2.next_message().await?.id == probe.id);
    let restart = Restart::guard(&["gateway-2"]);
    stack(&["kill", "gateway-2"]).await?; // SIGTERM: drains, deregisters, withdraws
    drop(on_2);
    let mut conns = Vec::with_capacity(MEMBERS);
    for s in &sessions {
        conns.push(connect(&s.access_token).await?);
    }
    let before = failed_pushes().await?;
    each_seen_by_all(&mut conns, ch, 5).await?;
    let failed = failed_pushes().await? - before;
    restart.start().await?;
    println!("5 messages to {MEMBERS} members after gateway-2 stopped: {failed} failed pushes");
    anyhow::ensure!(
        failed == 0.0,
        "{failed} pushes were tried against the stopped gateway"
    );
    Ok(())
}

/// Member-list resends the message servers made, over both
/// (`chat_member_list_resends_total`): batches a gateway refused for a list it did not hold.
async fn list_resends() -> anyhow::Result<f64> {
    let name = "chat_member_list_resends_total";
    Ok(chat_e2e::metric(MS1_OPS, name).await? + chat_e2e::metric(MS2_OPS, name).await?)
}

/// A connection for each of `sessions`, alternately on gateway-1 and gateway-2.
async fn on_both_gateways(
    sessions: &[chat_types::rest::Session],
) -> anyhow::Result<Vec<Connection>> {
    let mut conns = Vec::with_capacity(sessions.len());
    for (i, s) in sessions.iter().enumerate() {
        let gateway = if i % 2 == 0 { "gateway-1" } else { "gateway-2" };
        conns.push(connect_to(&s.access_token, gateway).await?.0);
    }
    Ok(conns)
}

/// A channel of [`BIG_CHANNEL_MEMBERS`], its members alternately on both gateways, after two
/// messages each seen by all: both gateways hold its member list.
async fn listed_big_channel(
    prefix: &str,
) -> anyhow::Result<(
    chat_types::ChannelId,
    Vec<chat_types::rest::Session>,
    Vec<Connection>,
)> {
    let (ch, sessions) = channel_of(BIG_CHANNEL_MEMBERS, prefix).await?;
    let mut conns = on_both_gateways(&sessions).await?;
    each_seen_by_all(&mut conns, ch, 2).await?;
    Ok((ch, sessions, conns))
}

/// A big channel's batches name its member list once a gateway holds it, and leave it out. A
/// gateway killed and started again holds none: it refuses the batch that names one, and gets
/// it again with the list, so its members miss nothing.
#[tokio::test]
async fn a_restarted_gateway_gets_a_big_channels_member_list_again() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const MEMBERS: usize = BIG_CHANNEL_MEMBERS;
    let (ch, sessions, conns) = listed_big_channel("relist-").await?;
    let restart = Restart::guard(&["gateway-2"]);
    stack(&["kill", "gateway-2", "-9"]).await?;
    drop(conns);
    restart.start().await?;
    let mut conns = on_both_gateways(&sessions).await?;
    let before = list_resends().await?;
    each_seen_by_all(&mut conns, ch, 3).await?;
    let resends = list_resends().await? - before;
    println!(
        "3 messages to {MEMBERS} members after gateway-2 restarted: all delivered; \
         {resends} batches sent again with their list"
    );
    anyhow::ensure!(
        resends >= 1.0,
        "no batch was refused for its list: the restarted gateway was never sent a named list"
    );
    Ok(())
}

/// A member who leaves a big channel gets none of the messages sent while away, though the
/// gateways hold the list that still named them: a new list comes with the next message.
#[tokio::test]
async fn a_member_who_leaves_a_big_channel_misses_what_is_sent_while_away() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const MEMBERS: usize = BIG_CHANNEL_MEMBERS;
    let (ch, sessions, mut conns) = listed_big_channel("away-").await?;
    // The last member (on gateway-2) leaves; the others get a message while it is away.
    let api = api();
    let away = &sessions[MEMBERS - 1];
    api.leave(&away.access_token, ch).await?;
    each_seen_by_all(&mut conns[..MEMBERS - 1], ch, 1).await?;
    // Back: its next message is the one after its return (one order per channel: a message
    // of the time away would have come first).
    api.join(&away.access_token, ch).await?;
    let back = conns[0]
        .send_acked(ch, &uuid::Uuid::new_v4().to_string(), "welcome back")
        .await?;
    let got = conns[MEMBERS - 1].next_message().await?;
    anyhow::ensure!(
        got.id == back.id,
        "the member who left got {:?}, sent while it was away",
        got.body
    );
    Ok(())
}

/// Records and batches the message servers handled, and how many batches waited for more
/// records, over both (counters since each started).
async fn batching() -> anyhow::Result<[f64; 3]> {
    let mut sums = [0.0; 3];
    for ops in [MS1_OPS, MS2_OPS] {
        sums[0] += chat_e2e::metric(ops, "chat_records_total").await?;
        sums[1] += chat_e2e::metric(ops, "chat_batch_phase_seconds_count{phase=\"store\"}").await?;
        sums[2] += chat_e2e::metric(ops, "chat_batches_lingered_total").await?;
    }
    Ok(sums)
}

/// A message server under load waits a few milliseconds for more records before it handles a
/// batch (each batch costs its statements and pushes whatever its size: fewer, fuller batches
/// free CPU, docs/benchmarks.md tuning log 25); at a light rate no batch waits, so a message
/// sent alone is not held. Either way each message arrives once, in order.
#[tokio::test]
async fn message_servers_wait_for_fuller_batches_only_when_busy() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    // Light: four messages a second.
    let light = Crowd::new(4, 1, 4).await?;
    let before = batching().await?;
    let sent = light
        .stream(12, Duration::from_millis(250), || async { Ok(()) })
        .await?;
    light
        .finish(sent, SETTLE)
        .await?
        .report_and_check("light")?;
    let after = batching().await?;
    anyhow::ensure!(
        after[2] == before[2],
        "{} batches waited for more records at four messages a second",
        after[2] - before[2]
    );
    // Busy: twelve channels, a message to each every ~2 ms for ~0.5 s (thousands a second,
    // 100 per sender: within the send burst).
    const ROUNDS: usize = 200;
    let busy = Crowd::new(24, 12, 4).await?;
    let before = batching().await?;
    let sent = busy
        .stream(ROUNDS, Duration::from_millis(2), || async { Ok(()) })
        .await?;
    busy.finish(sent, SETTLE).await?.report_and_check("busy")?;
    let after = batching().await?;
    let [records, batches, lingered] = [0, 1, 2].map(|i| after[i] - before[i]);
    println!(
        "busy: {records} records in {batches} batches ({:.1} per batch), {lingered} waited",
        records / batches.max(1.0)
    );
    anyhow::ensure!(
        lingered > 0.0,
        "no batch waited for more records at {sent} messages in {ROUNDS} rounds ~2 ms apart"
    );
    Ok(())
}

/// A message server killed in the middle of a stream busy enough for its batches to wait for
/// more records (as in the test above): what it had taken but not handled was never committed,
/// so its partitions' next owner handles it; nothing is lost, duplicated or reordered.
#[tokio::test]
async fn killing_a_busy_message_server_loses_duplicates_and_reorders_nothing() -> anyhow::Result<()>
{
    let _serial = SERIAL.lock().await;
    let crowd = Crowd::new(24, 12, 4).await?;
    let restart = Restart::guard(&["message-server-1"]);
    let sent = crowd
        .stream(100, Duration::from_millis(2), || {
            stack(&["kill", "message-server-1", "-9"])
        })
        .await?;
    let verdict = crowd.finish(sent, SETTLE).await;
    restart.start().await?;
    verdict?.report_and_check("kill -9 message-server-1 while busy")
}
