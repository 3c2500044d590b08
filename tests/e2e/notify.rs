//! Push notifications end to end (issue #16): messages sent through nginx and the gateways,
//! the notifier reading the topic as its own consumer group, and the local APNs stand-in
//! (`tools/apns-standin`, started by the stack) recording what arrived, over HTTP/2 and TLS,
//! with the provider token the notifier signed. Every test uses its own random device tokens,
//! so the tests share the stand-in and run in parallel; those that change it for everyone are in
//! `notify_faults.rs`.
//!
//! "Not notified" is checked after a later notification of the same channel arrived: the
//! notifier decides a channel's messages in order, so by then an earlier message's decision is
//! made (and a wrong one would have been sent at the same time).

use chat_client::{Api, Connection};
use chat_e2e::apns::{Behaviour, Recorded, StandIn};
use chat_e2e::{api, connect, register, unique};
use chat_types::ChannelId;
use chat_types::rest::{Message, Session};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a notification may take in these tests (the goal is p99 < 1 s).
const WAIT: Duration = Duration::from_secs(15);

fn device_token() -> String {
    // 32 random bytes, as APNs tokens are today.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

async fn add_device(api: &Api, who: &Session, token: &str) -> anyhow::Result<()> {
    let r = api
        .call(
            "POST",
            "/api/v1/devices",
            Some(&who.access_token),
            Some(
                &json!({"platform": "apns", "token": token, "environment": "sandbox",
                         "bundle_id": "com.example.chat"}),
            ),
        )
        .await?;
    anyhow::ensure!(
        r.status == 201 || r.status == 200,
        "register device: {:?}",
        r.body
    );
    Ok(())
}

async fn group_of(api: &Api, owner: &Session, members: &[&Session]) -> anyhow::Result<ChannelId> {
    let ch = api
        .create_channel(&owner.access_token, &unique("push-"), None)
        .await?;
    for m in members {
        api.join(&m.access_token, ch.id).await?;
    }
    Ok(ch.id)
}

/// Wait until the stand-in holds at least `n` requests for `token`.
async fn requests_for(standin: &StandIn, token: &str, n: usize) -> anyhow::Result<Vec<Recorded>> {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let got = standin.requests(token).await?;
        if got.len() >= n {
            return Ok(got);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "{} of {n} notifications for {token} within {WAIT:?}: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The requests for `token` about `message`.
fn about<'a>(requests: &'a [Recorded], message: &Message) -> Vec<&'a Recorded> {
    let id = message.id.to_string();
    requests
        .iter()
        .filter(|r| r.body.as_ref().and_then(|b| b["message_id"].as_str()) == Some(id.as_str()))
        .collect()
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

async fn send(ws: &mut Connection, ch: ChannelId, body: &str) -> anyhow::Result<Message> {
    Ok(ws.send_acked(ch, &unique("c"), body).await?)
}

#[tokio::test]
async fn an_offline_member_is_notified_as_apple_documents_with_the_unread_badge()
-> anyhow::Result<()> {
    let api = api();
    let standin = StandIn::from_env();
    let alice = register(&api, "pa").await?;
    let bob = register(&api, "pb").await?;
    let (ta, tb) = (device_token(), device_token());
    add_device(&api, &alice, &ta).await?;
    add_device(&api, &bob, &tb).await?;
    let ch = group_of(&api, &alice, &[&bob]).await?;

    // Bob has no connection: notified. Alice sent it: not.
    let mut a = connect(&alice.access_token).await?;
    let sent_at = now_us();
    let m1 = send(&mut a, ch, "the new mockups are up").await?;
    let got = requests_for(&standin, &tb, 1).await?;
    let r = about(&got, &m1);
    assert_eq!(r.len(), 1, "one request for the message: {got:?}");
    let r = r[0];
    println!(
        "send to notification request: {:.1} ms",
        (r.received_at_us - sent_at) as f64 / 1000.0
    );
    assert_eq!(r.status, 200, "{r:?}");
    let h = |k: &str| r.headers.get(k).map(String::as_str).unwrap_or_default();
    assert_eq!(h("apns-topic"), "com.example.chat");
    assert_eq!(h("apns-push-type"), "alert");
    assert_eq!(h("apns-priority"), "10");
    assert_eq!(
        h("apns-collapse-id"),
        ch.to_string(),
        "one notification per channel"
    );
    assert!(
        h("authorization").starts_with("bearer "),
        "a provider token"
    );
    assert!(uuid::Uuid::parse_str(h("apns-id")).is_ok());
    let expiration: i64 = h("apns-expiration").parse()?;
    assert!(expiration > m1.created_at.timestamp(), "{expiration}");
    let body = r.body.clone().expect("a JSON body");
    assert_eq!(body["channel_id"], ch.to_string());
    assert_eq!(body["aps"]["alert"]["body"], "the new mockups are up");
    let title = body["aps"]["alert"]["title"].as_str().unwrap_or_default();
    assert!(title.starts_with(&alice.user.display_name), "{title}");
    assert_eq!(body["aps"]["thread-id"], ch.to_string());
    assert_eq!(body["aps"]["badge"], 1, "bob has one unread message");

    // A second one: the badge counts both.
    let m2 = send(&mut a, ch, "and the copy").await?;
    let got = requests_for(&standin, &tb, 2).await?;
    let r2 = about(&got, &m2);
    assert_eq!(r2.len(), 1, "{got:?}");
    assert_eq!(r2[0].body.as_ref().expect("body")["aps"]["badge"], 2);
    assert_ne!(r2[0].apns_id, r.apns_id);

    // Bob reads both (on a connection he then closes): the next badge starts again from one.
    let conversation = |api: Api, token: String| async move {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            let list = api.conversations(&token).await?;
            let c = list.into_iter().find(|c| c.channel.id == ch);
            if let Some(c) = c.filter(|c| c.head_seq >= 2) {
                return anyhow::Ok(c);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < until,
                "both messages never stored"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let head = conversation(api.clone(), bob.access_token.clone())
        .await?
        .head_seq;
    let mut b = connect(&bob.access_token).await?;
    b.mark_read(ch, head).await?;
    let until = tokio::time::Instant::now() + WAIT;
    while conversation(api.clone(), bob.access_token.clone())
        .await?
        .unread_count
        > 0
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "the read mark never landed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    b.close(Duration::from_secs(2)).await;
    wait_offline(&bob).await?;
    let m3 = send(&mut a, ch, "third").await?;
    let got = requests_for(&standin, &tb, 3).await?;
    assert_eq!(
        about(&got, &m3)[0].body.as_ref().expect("body")["aps"]["badge"],
        1
    );

    assert!(
        standin.requests(&ta).await?.is_empty(),
        "the sender is never notified of their own messages"
    );
    Ok(())
}

#[tokio::test]
async fn levels_attention_and_hidden_previews_decide_who_is_notified() -> anyhow::Result<()> {
    use chat_types::ws::AppState;
    let api = api();
    let standin = StandIn::from_env();
    let alice = register(&api, "lv-a").await?;
    let looking = register(&api, "lv-look").await?;
    let mentions = register(&api, "lv-men").await?;
    let none = register(&api, "lv-none").await?;
    let hidden = register(&api, "lv-hide").await?;
    let tokens: Vec<String> = (0..4).map(|_| device_token()).collect();
    for (who, t) in [&looking, &mentions, &none, &hidden].iter().zip(&tokens) {
        add_device(&api, who, t).await?;
    }
    let ch = group_of(&api, &alice, &[&looking, &mentions, &none, &hidden]).await?;
    let level = |who: &Session, level: &str| {
        let api = api.clone();
        let token = who.access_token.clone();
        let level = level.to_owned();
        async move {
            let r = api
                .call(
                    "PUT",
                    &format!("/api/v1/channels/{ch}/notifications"),
                    Some(&token),
                    Some(&json!({ "level": level })),
                )
                .await?;
            anyhow::ensure!(r.status == 200, "{:?}", r.body);
            anyhow::Ok(())
        }
    };
    level(&mentions, "mentions").await?;
    level(&none, "none").await?;
    let r = api
        .call(
            "PUT",
            "/api/v1/users/me/notifications",
            Some(&hidden.access_token),
            Some(&json!({"hide_previews": true})),
        )
        .await?;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // `looking` has the app open: not notified.
    let mut l = connect(&looking.access_token).await?;
    let mut a = connect(&alice.access_token).await?;
    let m1 = send(&mut a, ch, "plain news, secret details").await?;
    let got = requests_for(&standin, &tokens[3], 1).await?;
    let hidden_alert = &about(&got, &m1)[0].body.as_ref().expect("body")["aps"]["alert"];
    assert_eq!(
        hidden_alert,
        &json!({"title": "New message"}),
        "no sender, no text"
    );
    assert!(
        standin.requests(&tokens[0]).await?.is_empty(),
        "looking at the app"
    );
    assert!(
        standin.requests(&tokens[1]).await?.is_empty(),
        "level mentions, not mentioned"
    );
    assert!(standin.requests(&tokens[2]).await?.is_empty(), "level none");

    // The app goes to the background: notified again. A mention reaches `mentions`.
    l.send(&chat_types::ws::ClientFrame::AppState {
        state: AppState::Background,
    })
    .await?;
    wait_not_attentive(&looking).await?;
    let name = &mentions.user.username;
    let m2 = send(&mut a, ch, &format!("@{name} can you look?")).await?;
    let got = requests_for(&standin, &tokens[0], 1).await?;
    assert_eq!(about(&got, &m2).len(), 1, "in the background: notified");
    let got = requests_for(&standin, &tokens[1], 1).await?;
    assert_eq!(about(&got, &m2).len(), 1, "mentioned: notified");
    requests_for(&standin, &tokens[3], 2).await?;
    assert!(
        standin.requests(&tokens[2]).await?.is_empty(),
        "level none, even mentioned"
    );
    Ok(())
}

/// After a close, the gateway removes the user's attention entry; wait until the notifier
/// would see it.
async fn wait_offline(who: &Session) -> anyhow::Result<()> {
    wait_not_attentive(who).await
}

/// After an `app_state` frame the gateway updates Redis; wait until the notifier would see it.
async fn wait_not_attentive(who: &Session) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let mut r = chat_e2e::redis().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let n: i64 =
            redis::AsyncCommands::zcount(&mut r, format!("attentive:{}", who.user.id), now, "+inf")
                .await?;
        if n == 0 {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < until, "still attentive");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn device_tokens(api: &Api, who: &Session) -> anyhow::Result<Vec<String>> {
    let r = api
        .call("GET", "/api/v1/devices", Some(&who.access_token), None)
        .await?;
    Ok(r.body["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["token"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn dead_tokens_are_forgotten_and_a_newer_registration_is_kept() -> anyhow::Result<()> {
    let api = api();
    let standin = StandIn::from_env();
    let alice = register(&api, "dt-a").await?;
    let bob = register(&api, "dt-b").await?;
    let (gone, bad, again) = (device_token(), device_token(), device_token());
    for t in [&gone, &bad, &again] {
        add_device(&api, &bob, t).await?;
    }
    // APNs learnt the first token was dead after it was registered: forget it.
    standin
        .set_token_behaviour(
            &gone,
            &Behaviour::answers(vec![json!({"status": 410, "reason": "Unregistered",
                "timestamp_ms": now_us() / 1000 + 1_000})]),
        )
        .await?;
    standin
        .set_token_behaviour(
            &bad,
            &Behaviour::answers(vec![json!({"status": 400, "reason": "BadDeviceToken"})]),
        )
        .await?;
    // The third was registered after APNs' timestamp (an hour back: the app was reinstalled
    // and registered again since): kept.
    standin
        .set_token_behaviour(
            &again,
            &Behaviour::answers(vec![json!({"status": 410, "reason": "Unregistered",
                "timestamp_ms": now_us() / 1000 - 3_600_000})]),
        )
        .await?;
    let ch = group_of(&api, &alice, &[&bob]).await?;
    let mut a = connect(&alice.access_token).await?;
    send(&mut a, ch, "anyone there?").await?;
    for t in [&gone, &bad, &again] {
        let got = requests_for(&standin, t, 1).await?;
        assert_ne!(got[0].status, 200, "{got:?}");
    }
    // The answers are handled right after they arrive.
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let left = device_tokens(&api, &bob).await?;
        if !left.contains(&gone) && !left.contains(&bad) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "dead tokens kept: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        device_tokens(&api, &bob).await?.contains(&again),
        "registered after the 410's timestamp: kept"
    );

    // Forgotten tokens are never used again; the kept one is.
    let m = send(&mut a, ch, "second try").await?;
    let got = requests_for(&standin, &again, 2).await?;
    assert_eq!(about(&got, &m).len(), 1);
    assert_eq!(
        standin.requests(&gone).await?.len(),
        1,
        "no request after a 410"
    );
    assert_eq!(
        standin.requests(&bad).await?.len(),
        1,
        "no request after BadDeviceToken"
    );
    Ok(())
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_and_the_notification_arrives_once() -> anyhow::Result<()>
{
    let api = api();
    let standin = StandIn::from_env();
    let alice = register(&api, "th-a").await?;
    let bob = register(&api, "th-b").await?;
    let t = device_token();
    add_device(&api, &bob, &t).await?;
    standin
        .set_token_behaviour(
            &t,
            &Behaviour::answers(vec![
                json!({"status": 429, "reason": "TooManyRequests"}),
                json!({"status": 503, "reason": "ServiceUnavailable"}),
            ]),
        )
        .await?;
    let ch = group_of(&api, &alice, &[&bob]).await?;
    let mut a = connect(&alice.access_token).await?;
    let m = send(&mut a, ch, "persistent").await?;
    let got = requests_for(&standin, &t, 3).await?;
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 503, 200], "{got:?}");
    assert!(
        got.iter().all(|r| r.apns_id == got[0].apns_id),
        "one apns-id for every attempt"
    );
    assert!(
        got[1].received_at_us - got[0].received_at_us >= 1_000_000,
        "a 429 is retried after a delay: {got:?}"
    );
    assert_eq!(about(&got, &m).len(), 3);
    // Once accepted, never again: a later message of the channel arrives after it, alone.
    let m2 = send(&mut a, ch, "next").await?;
    let got = requests_for(&standin, &t, 4).await?;
    assert_eq!(about(&got, &m).len(), 3, "{got:?}");
    assert_eq!(about(&got, &m2).len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_slow_device_delays_no_other_device() -> anyhow::Result<()> {
    let api = api();
    let standin = StandIn::from_env();
    let alice = register(&api, "sl-a").await?;
    let slow_user = register(&api, "sl-slow").await?;
    let slow = device_token();
    add_device(&api, &slow_user, &slow).await?;
    standin
        .set_token_behaviour(&slow, &Behaviour::delayed(4_000))
        .await?;
    let mut others = Vec::new();
    for _ in 0..8 {
        let u = register(&api, "sl-o").await?;
        let t = device_token();
        add_device(&api, &u, &t).await?;
        others.push((u, t));
    }
    let members: Vec<&Session> = std::iter::once(&slow_user)
        .chain(others.iter().map(|(u, _)| u))
        .collect();
    let ch = group_of(&api, &alice, &members).await?;
    let mut a = connect(&alice.access_token).await?;
    let mut lat = Vec::new();
    for i in 0..5 {
        let at = now_us();
        let m = send(&mut a, ch, &format!("m{i}")).await?;
        for (_, t) in &others {
            let got = requests_for(&standin, t, i + 1).await?;
            let r = about(&got, &m);
            assert_eq!(r.len(), 1, "{got:?}");
            lat.push((r[0].received_at_us - at) as f64 / 1000.0);
        }
    }
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "others while one device answers after 4 s: send to request p50 {:.1} ms, p99 {:.1} ms ({} requests)",
        p(0.5),
        p(0.99),
        lat.len()
    );
    assert!(
        p(0.99) < 2_000.0,
        "others waited for the slow device: {lat:?}"
    );
    // The slow device gets every notification too, in the end.
    let got = requests_for(&standin, &slow, 5).await?;
    assert_eq!(got.len(), 5);
    Ok(())
}
