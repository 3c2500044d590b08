//! Edits, deletes, reactions and replies through nginx: live to every device of every member
//! (two users, one of them on two gateways), in history as the message is now, refused with a
//! clear error when not allowed or malformed, idempotent by `client_event_id`, and sent again
//! exactly (in position order, once) by `resume`. The `kill -9` runs are in `delivery.rs`.

use chat_client::{Connection, Page};
use chat_e2e::{api, connect, connect_elsewhere, register, unique};
use chat_types::events::{Change, ChannelEvent};
use chat_types::rest::Session;
use chat_types::ws::{ClientFrame, ServerFrame};
use chat_types::{ChannelId, Message, MessageId};
use std::collections::BTreeMap;
use std::time::Duration;

fn edit(channel: ChannelId, message: MessageId, cid: &str, body: &str) -> ClientFrame {
    ClientFrame::Edit {
        channel_id: channel,
        message_id: message,
        client_event_id: cid.into(),
        body: body.into(),
    }
}

fn delete(channel: ChannelId, message: MessageId, cid: &str) -> ClientFrame {
    ClientFrame::Delete {
        channel_id: channel,
        message_id: message,
        client_event_id: cid.into(),
    }
}

fn react(channel: ChannelId, message: MessageId, cid: &str, emoji: &str) -> ClientFrame {
    ClientFrame::React {
        channel_id: channel,
        message_id: message,
        client_event_id: cid.into(),
        emoji: emoji.into(),
    }
}

fn unreact(channel: ChannelId, message: MessageId, cid: &str, emoji: &str) -> ClientFrame {
    ClientFrame::Unreact {
        channel_id: channel,
        message_id: message,
        client_event_id: cid.into(),
        emoji: emoji.into(),
    }
}

/// The refusal code of a change.
async fn refused(ws: &mut Connection, frame: &ClientFrame) -> String {
    match ws.change_acked(frame).await {
        Err(chat_client::Error::Refused(code)) => code,
        other => panic!("expected a refusal of {frame:?}, got {other:?}"),
    }
}

/// The next `event` frame on each connection: all the same event.
async fn event_on_all(conns: &mut [&mut Connection]) -> anyhow::Result<ChannelEvent> {
    let first = conns[0].next_event().await?;
    for c in conns.iter_mut().skip(1) {
        assert_eq!(
            c.next_event().await?,
            first,
            "every device gets the same event"
        );
    }
    Ok(first)
}

async fn message_on_all(conns: &mut [&mut Connection]) -> anyhow::Result<Message> {
    let first = conns[0].next_message().await?;
    for c in conns.iter_mut().skip(1) {
        assert_eq!(
            c.next_message().await?,
            first,
            "every device gets the same message"
        );
    }
    Ok(first)
}

async fn history(s: &Session, channel: ChannelId) -> anyhow::Result<Vec<Message>> {
    Ok(api()
        .history(&s.access_token, channel, Page::newest(50))
        .await?)
}

async fn group(owner: &Session, members: &[&Session]) -> anyhow::Result<ChannelId> {
    let api = api();
    let ch = api
        .create_channel(&owner.access_token, &unique("events "), None)
        .await?
        .id;
    for m in members {
        api.join(&m.access_token, ch).await?;
    }
    Ok(ch)
}

#[tokio::test]
async fn edits_reactions_replies_and_deletes_reach_every_device_and_history() -> anyhow::Result<()>
{
    let api = api();
    let alice = register(&api, "ev-alice").await?;
    let bob = register(&api, "ev-bob").await?;
    let ch = group(&alice, &[&bob]).await?;
    let mut a1 = connect(&alice.access_token).await?;
    let mut a2 = connect_elsewhere(&alice.access_token, a1.gateway()).await?;
    let mut b = connect(&bob.access_token).await?;

    b.send_acked(ch, "m1", "the original").await?;
    let m1 = message_on_all(&mut [&mut a1, &mut a2, &mut b]).await?;

    // A reply carries a preview of what it answers, live and in history.
    a1.send_reply(ch, "r1", "answering", m1.id).await?;
    let reply = message_on_all(&mut [&mut a1, &mut a2, &mut b]).await?;
    let preview = reply.reply_to.as_deref().expect("a reply preview");
    assert_eq!(
        (
            preview.id,
            preview.seq,
            preview.sender_id,
            preview.preview.as_str()
        ),
        (m1.id, m1.seq.unwrap(), bob.user.id, "the original")
    );

    // The author edits: every device of every member sees it, at the next position.
    let id = b
        .change_acked(&edit(ch, m1.id, "e1", "the correction"))
        .await?;
    let e = event_on_all(&mut [&mut a1, &mut a2, &mut b]).await?;
    assert_eq!((e.id, e.message_id, e.actor_id), (id, m1.id, bob.user.id));
    assert_eq!(
        e.change,
        Change::Edited {
            body: "the correction".into(),
            mentions: Vec::new(),
        }
    );
    assert_eq!(
        e.seq,
        reply.seq.unwrap() + 1,
        "events take the channel's next position"
    );

    // Reactions: counts after each change; a repeat is acked and changes nothing.
    a1.change_acked(&react(ch, m1.id, "r-a", "👍")).await?;
    let e = event_on_all(&mut [&mut a1, &mut a2, &mut b]).await?;
    assert_eq!(
        e.change,
        Change::ReactionAdded {
            emoji: "👍".into(),
            count: 1
        }
    );
    b.change_acked(&react(ch, m1.id, "r-b", "👍")).await?;
    let e = event_on_all(&mut [&mut a1, &mut a2, &mut b]).await?;
    assert_eq!(
        e.change,
        Change::ReactionAdded {
            emoji: "👍".into(),
            count: 2
        }
    );
    a2.change_acked(&react(ch, m1.id, "r-a-again", "👍"))
        .await?;
    b.change_acked(&react(ch, m1.id, "party", "🎉")).await?;
    let e = event_on_all(&mut [&mut a1, &mut a2, &mut b]).await?;
    assert_eq!(
        e.change,
        Change::ReactionAdded {
            emoji: "🎉".into(),
            count: 1
        },
        "alice's second 👍 made no event"
    );
    a2.change_acked(&unreact(ch, m1.id, "u-a", "👍")).await?;
    let e = event_on_all(&mut [&mut a1, &mut a2, &mut b]).await?;
    assert_eq!(
        e.change,
        Change::ReactionRemoved {
            emoji: "👍".into(),
            count: 1
        }
    );

    // History shows the message as it is now, reactions counted for the caller.
    let for_alice = history(&alice, ch).await?;
    let h1 = for_alice
        .iter()
        .find(|m| m.id == m1.id)
        .expect("m1 in history");
    assert_eq!(h1.body, "the correction");
    assert!(h1.edited_at.is_some());
    let counts: Vec<(&str, u32, bool)> = h1
        .reactions
        .iter()
        .map(|r| (r.emoji.as_str(), r.count, r.me))
        .collect();
    assert_eq!(counts, [("👍", 1, false), ("🎉", 1, false)]);
    let for_bob = history(&bob, ch).await?;
    let h1b = for_bob.iter().find(|m| m.id == m1.id).unwrap();
    assert!(h1b.reactions.iter().all(|r| r.me), "bob reacted with both");
    let hr = for_alice.iter().find(|m| m.id == reply.id).unwrap();
    assert_eq!(hr.reply_to.as_ref().unwrap().preview, "the correction");

    // Delete: a tombstone, live and in history; the reply's preview says so.
    b.change_acked(&delete(ch, m1.id, "d1")).await?;
    let e = event_on_all(&mut [&mut a1, &mut a2, &mut b]).await?;
    assert_eq!(e.change, Change::Deleted);
    let after = history(&alice, ch).await?;
    let gone = after.iter().find(|m| m.id == m1.id).unwrap();
    assert!(gone.deleted && gone.body.is_empty() && gone.reactions.is_empty());
    let hr = after.iter().find(|m| m.id == reply.id).unwrap();
    assert!(hr.reply_to.as_ref().unwrap().deleted);
    // History pages still hold `limit` messages: events take positions, not page slots.
    let page = api
        .history(&alice.access_token, ch, Page::newest(2))
        .await?;
    assert_eq!(
        page.iter().map(|m| m.id).collect::<Vec<_>>(),
        [m1.id, reply.id]
    );
    Ok(())
}

/// `@username` mentions are listed on the message (the channel's members only, in the order the
/// body names them), live and in history; an edit lists its new body's mentions and moves the
/// mention count with them; the group's creator is named on the channel as its owner.
#[tokio::test]
async fn mentions_are_listed_live_and_in_history_and_follow_edits() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "mn-alice").await?;
    let bob = register(&api, "mn-bob").await?;
    let carol = register(&api, "mn-carol").await?;
    let ch = group(&alice, &[&bob]).await?;
    let mut a = connect(&alice.access_token).await?;
    let mut b = connect(&bob.access_token).await?;

    // Carol exists but is not a member; nobody is called "mn-nobody-…".
    let body = format!(
        "@{} and @{}, ask @{}-nobody (cc @{})",
        carol.user.username,
        alice.user.username.to_uppercase(),
        alice.user.username,
        bob.user.username
    );
    b.send_acked(ch, "m1", &body).await?;
    let m1 = message_on_all(&mut [&mut a, &mut b]).await?;
    assert_eq!(
        m1.mentions,
        vec![alice.user.id, bob.user.id],
        "members only, in the body's order"
    );
    let listed = |h: &[Message], id| h.iter().find(|m| m.id == id).map(|m| m.mentions.clone());
    assert_eq!(
        listed(&history(&alice, ch).await?, m1.id),
        Some(vec![alice.user.id, bob.user.id])
    );
    let mine = |s: &Session| {
        let (api, token) = (api.clone(), s.access_token.clone());
        async move {
            let list = api.conversations(&token).await?;
            let c = list
                .into_iter()
                .find(|c| c.channel.id == ch)
                .expect("a member lists the channel");
            anyhow::Ok((c.mention_count, c.channel.created_by))
        }
    };
    assert_eq!(mine(&alice).await?, (1, Some(alice.user.id)));

    // The edit drops Alice and names Carol, still not a member: nobody is mentioned now.
    b.change_acked(&edit(
        ch,
        m1.id,
        "e1",
        &format!("sorry @{}", carol.user.username),
    ))
    .await?;
    let e = event_on_all(&mut [&mut a, &mut b]).await?;
    assert!(
        matches!(&e.change, Change::Edited { mentions, .. } if mentions.is_empty()),
        "{e:?}"
    );
    assert_eq!(listed(&history(&bob, ch).await?, m1.id), Some(vec![]));
    assert_eq!(mine(&alice).await?.0, 0, "the edit took the mention back");

    // Carol joins: a mention after the join (same partition, later) lists her.
    api.join(&carol.access_token, ch).await?;
    b.change_acked(&edit(
        ch,
        m1.id,
        "e2",
        &format!("welcome @{}", carol.user.username),
    ))
    .await?;
    let e = event_on_all(&mut [&mut a, &mut b]).await?;
    assert!(
        matches!(&e.change, Change::Edited { mentions, .. } if mentions == &[carol.user.id]),
        "{e:?}"
    );
    assert_eq!(
        listed(&history(&carol, ch).await?, m1.id),
        Some(vec![carol.user.id])
    );
    assert_eq!(
        mine(&carol).await?.1,
        Some(alice.user.id),
        "the owner, as anyone sees it"
    );

    // A direct conversation has no owner.
    let dm = api.open_dm(&alice.access_token, bob.user.id).await?;
    assert_eq!(dm.channel.created_by, None);
    let listed_dm = api
        .conversations(&alice.access_token)
        .await?
        .into_iter()
        .find(|c| c.channel.id == dm.channel.id)
        .expect("the direct conversation is listed");
    assert_eq!(listed_dm.channel.created_by, None);
    Ok(())
}

#[tokio::test]
async fn only_the_author_edits_and_the_author_or_the_owner_deletes() -> anyhow::Result<()> {
    let api = api();
    let owner = register(&api, "ev-owner").await?;
    let bob = register(&api, "ev-author").await?;
    let carol = register(&api, "ev-other").await?;
    let ch = group(&owner, &[&bob, &carol]).await?;
    let mut o = connect(&owner.access_token).await?;
    let mut b = connect(&bob.access_token).await?;
    let mut c = connect(&carol.access_token).await?;
    b.send_acked(ch, "m", "bob's words").await?;
    let m = b.next_message().await?;
    b.send_acked(ch, "m2", "more of bob's words").await?;
    let m2 = b.next_message().await?;

    assert_eq!(
        refused(&mut c, &edit(ch, m.id, "c-e", "mine now")).await,
        "not_author"
    );
    assert_eq!(
        refused(&mut c, &delete(ch, m.id, "c-d")).await,
        "not_author"
    );
    assert_eq!(
        refused(&mut o, &edit(ch, m.id, "o-e", "owner")).await,
        "not_author"
    );
    // Anyone may react; the owner may delete.
    c.change_acked(&react(ch, m.id, "c-r", "👀")).await?;
    o.change_acked(&delete(ch, m.id, "o-d")).await?;
    assert_eq!(
        b.next_event().await?.change,
        Change::ReactionAdded {
            emoji: "👀".into(),
            count: 1
        }
    );
    assert_eq!(b.next_event().await?.change, Change::Deleted);
    // A deleted message can no longer be edited, reacted to or answered.
    assert_eq!(
        refused(&mut b, &edit(ch, m.id, "b-e", "too late")).await,
        "message_deleted"
    );
    assert_eq!(
        refused(&mut c, &react(ch, m.id, "c-r2", "👍")).await,
        "message_deleted"
    );
    b.send_reply(ch, "late-reply", "to nothing", m.id).await?;
    match b.next_frame().await? {
        ServerFrame::Error {
            code,
            client_msg_id,
            ..
        } => assert_eq!(
            (code.as_str(), client_msg_id.as_deref()),
            ("message_deleted", Some("late-reply"))
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The author deletes their own.
    b.change_acked(&delete(ch, m2.id, "b-d")).await?;
    let (e, _) = c
        .until(|f| match f {
            ServerFrame::Event { event } if event.message_id == m2.id => Some(event.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(e.change, Change::Deleted);
    Ok(())
}

#[tokio::test]
async fn bad_changes_get_clear_errors_and_the_connection_stays_usable() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "ev-bad").await?;
    let mallory = register(&api, "ev-mallory").await?;
    let ch = group(&alice, &[]).await?;
    let other = group(&alice, &[]).await?;
    let mut a = connect(&alice.access_token).await?;
    a.send_acked(ch, "m", "hello").await?;
    let m = a.next_message().await?;
    a.send_acked(other, "elsewhere", "in the other channel")
        .await?;
    let elsewhere = a.next_message().await?;

    let unknown = MessageId(uuid::Uuid::now_v7());
    assert_eq!(
        refused(&mut a, &edit(ch, unknown, "x1", "b")).await,
        "unknown_message"
    );
    assert_eq!(
        refused(&mut a, &react(ch, elsewhere.id, "x2", "👍")).await,
        "unknown_message",
        "a message of another channel"
    );
    assert_eq!(
        refused(&mut a, &react(ch, m.id, "x3", &"😀".repeat(256))).await,
        "invalid_emoji",
        "a 1 KiB emoji"
    );
    assert_eq!(
        refused(&mut a, &react(ch, m.id, "x4", "")).await,
        "invalid_emoji"
    );
    assert_eq!(
        refused(&mut a, &edit(ch, m.id, "x5", "  ")).await,
        "invalid_body"
    );
    assert_eq!(
        refused(&mut a, &edit(ch, m.id, "x6", &"a".repeat(4001))).await,
        "invalid_body"
    );
    a.send(&delete(ch, m.id, "")).await?;
    match a.next_frame().await? {
        ServerFrame::Error { code, .. } => assert_eq!(code, "invalid_client_event_id"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut mal = connect(&mallory.access_token).await?;
    assert_eq!(
        refused(&mut mal, &react(ch, m.id, "y1", "👍")).await,
        "not_a_member"
    );
    let nowhere = ChannelId(uuid::Uuid::now_v7());
    assert_eq!(
        refused(&mut mal, &react(nowhere, m.id, "y2", "👍")).await,
        "unknown_channel"
    );
    a.send_text(
        r#"{"type":"react","channel_id":"x","message_id":5,"client_event_id":"z","emoji":"👍"}"#,
    )
    .await?;
    match a.next_frame().await? {
        ServerFrame::Error { code, .. } => assert_eq!(code, "malformed_frame"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    a.send_reply(ch, "bad-reply", "to nothing", elsewhere.id)
        .await?;
    match a.next_frame().await? {
        ServerFrame::Error { code, .. } => assert_eq!(code, "unknown_message"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Still usable, and nothing of the above changed the message.
    a.send_acked(ch, "after", "still here").await?;
    let h = history(&alice, ch).await?;
    assert_eq!(h[0].body, "hello");
    assert!(h[0].edited_at.is_none() && h[0].reactions.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_change_resent_through_another_gateway_is_applied_once() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "ev-resend").await?;
    let bob = register(&api, "ev-resend-b").await?;
    let ch = group(&alice, &[&bob]).await?;
    let mut a1 = connect(&alice.access_token).await?;
    let mut a2 = connect_elsewhere(&alice.access_token, a1.gateway()).await?;
    let mut b = connect(&bob.access_token).await?;
    b.send_acked(ch, "m", "react to me").await?;
    let m = b.next_message().await?;
    let frame = react(ch, m.id, "same-id", "🔥");
    let first = a1.change_acked(&frame).await?;
    let second = a2.change_acked(&frame).await?;
    assert_eq!(first, second, "the same client_event_id is the same event");
    // Even with another emoji, a reused client_event_id is the first change.
    let third = a2.change_acked(&react(ch, m.id, "same-id", "🧊")).await?;
    assert_eq!(third, first);
    let e = b.next_event().await?;
    assert_eq!(
        e.change,
        Change::ReactionAdded {
            emoji: "🔥".into(),
            count: 1
        }
    );
    assert!(
        b.next_within(Duration::from_millis(500)).await?.is_none(),
        "one event, not three"
    );
    Ok(())
}

#[tokio::test]
async fn resume_sends_the_missed_changes_in_order_once() -> anyhow::Result<()> {
    let api = api();
    let alice = register(&api, "ev-resume").await?;
    let bob = register(&api, "ev-resume-b").await?;
    let ch = group(&alice, &[&bob]).await?;
    let mut a = connect(&alice.access_token).await?;
    let mut b = connect(&bob.access_token).await?;
    b.send_acked(ch, "m", "first").await?;
    let m = a.next_message().await?;
    a.close(Duration::from_secs(1)).await;

    // While alice is away: an edit, a message, a reaction.
    b.change_acked(&edit(ch, m.id, "e", "first, edited"))
        .await?;
    b.send_acked(ch, "m2", "second").await?;
    b.change_acked(&react(ch, m.id, "r", "✅")).await?;
    let e1 = b.next_event().await?;
    let m2 = b.next_message().await?;
    let e2 = b.next_event().await?;

    let resume = |last: MessageId| ClientFrame::Resume {
        channels: BTreeMap::from([(ch, last)]),
    };
    let mut a = chat_e2e::connector()
        .connect_resuming(&alice.access_token, None)
        .await?;
    a.send(&resume(m.id)).await?;
    let mut got = Vec::new();
    loop {
        match a.next_frame().await? {
            ServerFrame::Resumed { .. } => break,
            ServerFrame::Message { message } => got.push(message.seq.unwrap()),
            ServerFrame::Event { event } => got.push(event.seq),
            _ => {}
        }
    }
    assert_eq!(
        got,
        [e1.seq, m2.seq.unwrap(), e2.seq],
        "the missed positions, in order"
    );
    // The caught-up message shows its current body.
    a.close(Duration::from_secs(1)).await;

    // Resuming from an event's id continues after it.
    let mut a = chat_e2e::connector()
        .connect_resuming(&alice.access_token, None)
        .await?;
    a.send(&resume(MessageId(e1.id.0))).await?;
    let mut got = Vec::new();
    loop {
        match a.next_frame().await? {
            ServerFrame::Resumed { .. } => break,
            ServerFrame::Message { message } => got.push(message.seq.unwrap()),
            ServerFrame::Event { event } => got.push(event.seq),
            _ => {}
        }
    }
    assert_eq!(got, [m2.seq.unwrap(), e2.seq]);
    Ok(())
}
