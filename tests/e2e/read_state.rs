//! Read state through nginx: read marks only move forward, reach the user's other devices
//! live (also on another gateway), are durable, and `GET /channels` counts unread messages and
//! mentions exactly, lists conversations by activity and previews the last message.
//!
//! Marks are stored by the gateway once a second (coalesced), so assertions about the stored
//! state wait for it with a deadline: [`stored_read_seq`].

use chat_client::Connection;
use chat_e2e::{TIMEOUT, api, connect, connect_elsewhere, register, unique};
use chat_types::ChannelId;
use chat_types::rest::{Conversation, Session};
use chat_types::ws::ServerFrame;
use std::time::Duration;
use tokio::time::Instant;

async fn conversation(s: &Session, channel: ChannelId) -> anyhow::Result<Conversation> {
    api()
        .conversations(&s.access_token)
        .await?
        .into_iter()
        .find(|c| c.channel.id == channel)
        .ok_or_else(|| anyhow::anyhow!("channel {channel} is not in the list"))
}

/// The conversation once its stored read position is `seq` (marks are stored every second).
async fn stored_read_seq(
    s: &Session,
    channel: ChannelId,
    seq: i64,
) -> anyhow::Result<Conversation> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let c = conversation(s, channel).await?;
        if c.read_seq == seq {
            return Ok(c);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "read_seq is {} after {TIMEOUT:?}, expected {seq}",
            c.read_seq
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The conversation once its newest message is at `seq` (the message server logs a message
/// beside pushing it).
async fn head_at(s: &Session, channel: ChannelId, seq: i64) -> anyhow::Result<Conversation> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let c = conversation(s, channel).await?;
        if c.head_seq >= seq {
            return Ok(c);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "head_seq is {} after {TIMEOUT:?}",
            c.head_seq
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next `read` frame.
async fn next_read(ws: &mut Connection) -> anyhow::Result<(ChannelId, i64)> {
    let (r, _) = ws
        .until(|f| match f {
            ServerFrame::Read { channel_id, seq } => Some((*channel_id, *seq)),
            _ => None,
        })
        .await?;
    Ok(r)
}

#[tokio::test]
async fn unread_and_mention_counts_follow_marks_from_two_devices() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "rs-alice").await?;
    let bob = register(&api, "rs-bob").await?;
    let ch = api
        .create_channel(&alice.access_token, &unique("reads "), None)
        .await?
        .id;
    api.join(&bob.access_token, ch).await?;
    let mut a1 = connect(&alice.access_token).await?;
    let mut a2 = connect_elsewhere(&alice.access_token, a1.gateway()).await?;
    let mut b = connect(&bob.access_token).await?;

    let fresh = conversation(&alice, ch).await?;
    assert_eq!((fresh.unread_count, fresh.head_seq), (0, 0));
    assert!(fresh.last_message.is_none());

    let bodies = [
        "first".to_owned(),
        format!("hey @{} look", alice.user.username.to_uppercase()),
        "third".to_owned(),
    ];
    for (i, body) in bodies.iter().enumerate() {
        b.send_acked(ch, &format!("m{i}"), body).await?;
    }
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(
            a1.next_message()
                .await?
                .seq
                .expect("live messages have a seq"),
        );
    }
    let c = head_at(&alice, ch, seqs[2]).await?;
    assert_eq!((c.unread_count, c.mention_count, c.read_seq), (3, 1, 0));
    let last = c.last_message.expect("a last message");
    assert_eq!(
        (last.preview.as_str(), last.seq, last.sender_id),
        ("third", seqs[2], bob.user.id)
    );
    // Bob's own messages are not unread for him.
    assert_eq!(conversation(&bob, ch).await?.unread_count, 0);

    // Device 1 reads up to the mention: device 2 (another gateway) hears of it at once.
    a1.mark_read(ch, seqs[1]).await?;
    assert_eq!(next_read(&mut a2).await?, (ch, seqs[1]));
    // Device 2, behind, marks an older position: the higher mark stays.
    a2.mark_read(ch, seqs[0]).await?;
    let c = stored_read_seq(&alice, ch, seqs[1]).await?;
    assert_eq!((c.unread_count, c.mention_count), (1, 0));
    // The marking device is not told about its own mark.
    a1.mark_read(ch, seqs[2]).await?;
    assert_eq!(next_read(&mut a2).await?, (ch, seqs[2]));
    let c = stored_read_seq(&alice, ch, seqs[2]).await?;
    assert_eq!(c.unread_count, 0);
    // Neither is the device that marked told about its own mark, nor about device 2's older
    // one (device 2 marked before it heard of device 1's: stale, dropped by the gateways).
    assert!(
        a1.next_within(Duration::from_millis(300)).await?.is_none(),
        "the device that marked gets no frame for it"
    );
    a2.mark_read(ch, seqs[0]).await?;
    // Alice's own message does not make her channel unread.
    a1.send_acked(ch, "own", "mine").await?;
    let own = a1.next_message().await?.seq.unwrap();
    let c = head_at(&alice, ch, own).await?;
    assert_eq!((c.unread_count, c.read_seq), (0, seqs[2]));
    assert_eq!(conversation(&bob, ch).await?.unread_count, 1);
    Ok(())
}

#[tokio::test]
async fn conversations_are_listed_by_activity_and_newcomers_start_read() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "rs-order").await?;
    let bob = register(&api, "rs-order-b").await?;
    let older = api
        .create_channel(&alice.access_token, &unique("older "), None)
        .await?
        .id;
    let newer = api
        .create_channel(&alice.access_token, &unique("newer "), None)
        .await?
        .id;
    let ids = |list: &[Conversation]| list.iter().map(|c| c.channel.id).collect::<Vec<_>>();
    let list = api.conversations(&alice.access_token).await?;
    assert_eq!(
        ids(&list)[..2],
        [newer, older],
        "no messages: latest joined first"
    );

    let mut a = connect(&alice.access_token).await?;
    a.send_acked(older, "o1", "older moves up").await?;
    let seq = a.next_message().await?.seq.unwrap();
    head_at(&alice, older, seq).await?;
    let list = api.conversations(&alice.access_token).await?;
    assert_eq!(ids(&list)[..2], [older, newer]);

    // Bob joins after the message: it is history, not news.
    api.join(&bob.access_token, older).await?;
    let c = conversation(&bob, older).await?;
    assert_eq!((c.unread_count, c.read_seq, c.head_seq), (0, seq, seq));
    Ok(())
}

#[tokio::test]
async fn bad_marks_get_clear_errors() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "rs-bad").await?;
    let mallory = register(&api, "rs-mallory").await?;
    let ch = api
        .create_channel(&alice.access_token, &unique("bad "), None)
        .await?
        .id;
    let mut m = connect(&mallory.access_token).await?;
    let code = |f: ServerFrame| match f {
        ServerFrame::Error { code, .. } => code,
        other => panic!("expected an error frame, got {other:?}"),
    };
    m.mark_read(ch, 5).await?;
    assert_eq!(code(m.next_frame().await?), "not_a_member");
    m.mark_read(ChannelId(uuid::Uuid::now_v7()), 5).await?;
    assert_eq!(code(m.next_frame().await?), "unknown_channel");
    let mut a = connect(&alice.access_token).await?;
    a.mark_read(ch, 0).await?;
    assert_eq!(code(a.next_frame().await?), "invalid_seq");
    a.send_text(r#"{"type":"mark_read","channel_id":"x","seq":"high"}"#)
        .await?;
    assert_eq!(code(a.next_frame().await?), "malformed_frame");
    // The connection is still usable.
    a.send_acked(ch, "after", "still here").await?;
    Ok(())
}

/// 1,000 messages from five senders while three devices of one reader mark read at random
/// positions they were shown: the stored mark is the highest of all, and the unread count is
/// exactly the others' messages after it.
#[tokio::test]
async fn unread_counts_are_exact_after_a_thousand_messages_and_random_marks() -> anyhow::Result<()>
{
    const SENDERS: usize = 5;
    const EACH: usize = 200;
    let api = api();
    let reader = register(&api, "rs-reader").await?;
    let ch = api
        .create_channel(&reader.access_token, &unique("busy "), None)
        .await?
        .id;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let s = register(&api, &format!("rs-s{i}-")).await?;
        api.join(&s.access_token, ch).await?;
        senders.push(s);
    }
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(connect(&reader.access_token).await?);
    }
    let sending = senders.iter().enumerate().map(|(i, s)| {
        let token = s.access_token.clone();
        async move {
            let mut ws = connect(&token).await?;
            for k in 0..EACH {
                ws.send_acked(ch, &format!("s{i}-{k}"), &format!("message {k} from {i}"))
                    .await?;
            }
            anyhow::Ok(())
        }
    });
    // Each device reads every message and marks some of them (its own random choice).
    let reading = devices.iter_mut().enumerate().map(|(d, ws)| async move {
        let mut highest = 0;
        // A different pseudo-random choice per device and run (xorshift).
        let mut x = uuid::Uuid::new_v4().as_u128() as u64 | 1;
        // Each device stops showing messages somewhere in the last 150 (the reader left):
        // what is after the highest mark stays unread.
        let shown_until = (SENDERS * EACH - 150) as i64 + (x % 100) as i64;
        for _ in 0..SENDERS * EACH {
            let seq = ws.next_message().await?.seq.unwrap();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if seq <= shown_until && (x ^ d as u64).is_multiple_of(20) {
                ws.mark_read(ch, seq).await?;
                highest = highest.max(seq);
            }
        }
        anyhow::Ok(highest)
    });
    let (sent, highest) = tokio::join!(
        futures::future::try_join_all(sending),
        futures::future::try_join_all(reading)
    );
    sent?;
    let mark = highest?.into_iter().max().unwrap();
    anyhow::ensure!(mark > 0, "no device marked anything");
    stored_read_seq(&reader, ch, mark).await?;
    // Every device was shown every message, but the message servers log a message for the
    // conversation list beside pushing it, not before: wait until the last one is logged.
    let c = head_at(&reader, ch, (SENDERS * EACH) as i64).await?;
    let head = c.head_seq;
    // Positions are the messages' own here (no edits or reactions in this channel): every
    // position after the mark is one unread message from another member.
    assert_eq!(head, (SENDERS * EACH) as i64);
    assert_eq!(c.read_seq, mark);
    assert_eq!(
        c.unread_count as i64,
        head - mark,
        "unread after mark {mark} of {head}"
    );
    println!(
        "read state: 1,000 messages, 3 devices, mark {mark}: unread {} (exact)",
        c.unread_count
    );
    Ok(())
}
