//! Finding people and channels through nginx: channel names unique ignoring case, the channel
//! directory (paged by member count or by activity) and people search by display name.
//!
//! The stack is shared with other tests that create and join channels meanwhile, so the
//! assertions are about this test's own channels and users, and about what holds whatever
//! others do (the order of a walk, each of our channels exactly once).

use chat_client::{Api, Error};
use chat_e2e::{PASSWORD, TIMEOUT, api, connect, register, unique};
use chat_types::ChannelId;
use chat_types::rest::{DirectoryEntry, DirectoryPage, DirectorySort, Session};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

fn refused<T: std::fmt::Debug>(r: Result<T, Error>) -> (Option<u16>, Option<String>) {
    let e = r.expect_err("the call should be refused");
    (e.status(), e.code().map(String::from))
}

/// Every page of the directory in `sort`'s order, with `limit` per page.
async fn walk(
    api: &Api,
    s: &Session,
    sort: DirectorySort,
    limit: u32,
) -> anyhow::Result<Vec<DirectoryEntry>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = api
            .channel_directory(&s.access_token, Some(sort), Some(limit), cursor.as_deref())
            .await?;
        assert!(page.channels.len() <= limit as usize);
        all.extend(page.channels);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
    anyhow::bail!("the directory did not end within 10,000 pages")
}

/// The sort key of an entry, as the directory orders it (descending, then by id descending).
fn key(sort: DirectorySort, e: &DirectoryEntry) -> (i64, ChannelId) {
    let k = match sort {
        DirectorySort::Members => i64::from(e.member_count),
        DirectorySort::Activity => e.last_activity_at.map_or(0, |t| t.timestamp_micros()),
    };
    (k, e.id)
}

/// The first page (100) of the activity order once it shows each of `sent` (a channel and the
/// time of a message sent to it) at that time or later, within [`TIMEOUT`]. An ack means Kafka
/// has the message; the message server records the activity after it stores the batch, every
/// 200 ms, and channels on different message servers each on its own schedule.
async fn activity_page_showing(
    api: &Api,
    s: &Session,
    sent: &[(ChannelId, DateTime<Utc>)],
) -> anyhow::Result<DirectoryPage> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let page = api
            .channel_directory(
                &s.access_token,
                Some(DirectorySort::Activity),
                Some(100),
                None,
            )
            .await?;
        let shown = |&(id, at): &(ChannelId, DateTime<Utc>)| {
            page.channels
                .iter()
                .find(|e| e.id == id)
                .and_then(|e| e.last_activity_at)
                .is_some_and(|t| t >= at)
        };
        if sent.iter().all(shown) {
            return Ok(page);
        }
        assert!(
            Instant::now() < deadline,
            "the messages' activity was not recorded within {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_channel_name_taken_in_another_case_is_refused_with_409() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "dup-a").await?;
    let b = register(&api, "dup-b").await?;
    let name = unique("Général ");
    api.create_channel(&a.access_token, &name, None).await?;

    for other in [
        name.to_uppercase(),
        name.to_lowercase(),
        format!("  {name}  "),
        // Full-width letters are the same name (Unicode compatibility forms).
        name.replace('G', "\u{ff27}"),
    ] {
        let r = api.create_channel(&b.access_token, &other, None).await;
        assert_eq!(
            refused(r),
            (Some(409), Some("channel_name_taken".into())),
            "{other:?}"
        );
    }
    // A name that only contains the other is free.
    api.create_channel(&b.access_token, &format!("{name} 2"), None)
        .await?;
    Ok(())
}

#[tokio::test]
async fn two_users_creating_the_same_name_at_once_make_exactly_one_channel() -> anyhow::Result<()> {
    let api = api();
    let name = unique("race ");
    let mut users = Vec::new();
    for _ in 0..8 {
        users.push(register(&api, "race").await?);
    }
    let attempts = users.iter().enumerate().map(|(i, u)| {
        let api = api.clone();
        // Half of them in another case: the same name.
        let n = if i % 2 == 0 {
            name.clone()
        } else {
            name.to_uppercase()
        };
        async move { api.create_channel(&u.access_token, &n, None).await }
    });
    let results = futures::future::join_all(attempts).await;
    let won: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    let lost: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| (e.status(), e.code().map(String::from)))
        .collect();
    println!("{} created, {} refused", won.len(), lost.len());
    assert_eq!(won.len(), 1, "exactly one creation wins: {results:?}");
    assert!(
        lost.iter()
            .all(|l| *l == (Some(409), Some("channel_name_taken".into()))),
        "{lost:?}"
    );
    let found = api
        .search_channels(&users[0].access_token, &name.to_lowercase())
        .await?;
    assert_eq!(
        found
            .iter()
            .filter(|c| c.name.to_lowercase() == name.to_lowercase())
            .count(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn directory_pages_list_each_channel_once_most_members_first() -> anyhow::Result<()> {
    let api = api();
    let owner = register(&api, "dir-own").await?;
    let mut joiners = Vec::new();
    for _ in 0..3 {
        joiners.push(register(&api, "dir-join").await?);
    }
    // Five channels with 1..=4 members (two with 1: a tie broken by id).
    let mut mine: HashMap<ChannelId, u32> = HashMap::new();
    for members in [1u32, 4, 2, 1, 3] {
        let ch = api
            .create_channel(&owner.access_token, &unique("dir-"), Some("directory test"))
            .await?;
        for j in joiners.iter().take(members as usize - 1) {
            api.join(&j.access_token, ch.id).await?;
        }
        mine.insert(ch.id, members);
    }

    let viewer = &joiners[0];
    for limit in [100, 7] {
        let all = walk(&api, viewer, DirectorySort::Members, limit).await?;
        println!("limit {limit}: {} channels listed", all.len());
        // The order of the whole walk: descending (member count, id), each step strictly.
        for w in all.windows(2) {
            assert!(
                key(DirectorySort::Members, &w[0]) > key(DirectorySort::Members, &w[1]),
                "out of order: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
        // Ours: each exactly once, with its member count and the viewer's membership.
        let ours: Vec<&DirectoryEntry> = all.iter().filter(|e| mine.contains_key(&e.id)).collect();
        assert_eq!(ours.len(), mine.len(), "each of our channels exactly once");
        for e in &ours {
            let members = mine[&e.id];
            assert_eq!(e.member_count, members, "{e:?}");
            assert_eq!(e.is_member, members >= 2, "{e:?}");
            assert_eq!(e.description, "directory test");
            assert!(e.last_activity_at.is_none());
        }
        let counts: Vec<u32> = ours.iter().map(|e| e.member_count).collect();
        assert_eq!(counts, vec![4, 3, 2, 1, 1], "more members first");
        if limit == 7 {
            break; // a short walk of a few hundred requests is enough once
        }
    }
    // Direct conversations are not in the directory.
    let dm = api.open_dm(&owner.access_token, viewer.user.id).await?;
    let first = api
        .channel_directory(&viewer.access_token, None, Some(100), None)
        .await?;
    assert!(first.channels.iter().all(|e| e.id != dm.channel.id));
    Ok(())
}

#[tokio::test]
async fn the_channel_that_just_received_a_message_leads_the_activity_order() -> anyhow::Result<()> {
    let api = api();
    let a = register(&api, "act").await?;
    let quiet = api
        .create_channel(&a.access_token, &unique("act-quiet-"), None)
        .await?;
    let busy = api
        .create_channel(&a.access_token, &unique("act-busy-"), None)
        .await?;
    let older = api
        .create_channel(&a.access_token, &unique("act-older-"), None)
        .await?;

    let mut ws = connect(&a.access_token).await?;
    let cmid = uuid::Uuid::new_v4().to_string();
    let first = ws
        .send_acked(older.id, &uuid::Uuid::new_v4().to_string(), "first")
        .await?;
    let acked = ws.send_acked(busy.id, &cmid, "news").await?;

    // Wait for both channels' activity: `older` getting its activity during the walk below
    // would move it from the walk's unvisited tail to its visited head (a keyset walk skips a
    // row whose key grows behind it).
    let page = activity_page_showing(
        &api,
        &a,
        &[(busy.id, acked.created_at), (older.id, first.created_at)],
    )
    .await?;
    let place = |id: ChannelId| page.channels.iter().position(|e| e.id == id);
    let busy_at = place(busy.id).expect("busy is listed");
    // Other tests may send meanwhile; only a channel with a later message may come before it.
    for e in &page.channels[..busy_at] {
        assert!(e.last_activity_at.is_some_and(|t| t >= acked.created_at));
    }
    // The quiet channel has no message: after every channel that has one.
    let walked = walk(&api, &a, DirectorySort::Activity, 100).await?;
    let quiet_at = walked
        .iter()
        .position(|e| e.id == quiet.id)
        .expect("quiet is listed");
    assert!(
        walked[quiet_at..]
            .iter()
            .all(|e| e.last_activity_at.is_none())
    );
    assert!(walked.iter().any(|e| e.id == older.id));
    for w in walked.windows(2) {
        assert!(key(DirectorySort::Activity, &w[0]) > key(DirectorySort::Activity, &w[1]));
    }
    ws.close(Duration::from_secs(1)).await;
    Ok(())
}

/// The message servers record every active channel's activity five times a second. Kept in
/// the channel's own row, each write was a new version of that row with an entry in every
/// index of `channels` (docs/benchmarks.md, issue 14); the activity has a narrow table of its
/// own, so a channel that receives messages keeps its row version.
#[tokio::test]
async fn recording_a_channels_activity_leaves_the_channels_row_alone() -> anyhow::Result<()> {
    let api = api();
    let db = chat_e2e::postgres().await?;
    let a = register(&api, "actrow").await?;
    let channel = api
        .create_channel(&a.access_token, &unique("act-row-"), None)
        .await?;
    let version = || {
        sqlx::query_scalar::<_, String>("SELECT xmin::text FROM channels WHERE id = $1")
            .bind(channel.id.0)
            .fetch_one(&db)
    };
    let before = version().await?;

    let mut ws = connect(&a.access_token).await?;
    let acked = ws
        .send_acked(channel.id, &uuid::Uuid::new_v4().to_string(), "hello")
        .await?;
    activity_page_showing(&api, &a, &[(channel.id, acked.created_at)]).await?;
    assert_eq!(
        version().await?,
        before,
        "recording the activity rewrote the channel's row"
    );
    ws.close(Duration::from_secs(1)).await;
    Ok(())
}

#[tokio::test]
async fn people_are_found_by_display_name_as_well_as_username() -> anyhow::Result<()> {
    let api = api();
    let tag = unique("");
    let tag = &tag[..8];
    let username = unique("zed");
    let display = format!("Zoë Quasar {tag}");
    let zed = api.register(&username, PASSWORD, Some(&display)).await?;
    // Another user whose username starts with the same letters ranks by the exact match.
    let seeker = register(&api, "seek").await?;

    // Part of the display name, in another case.
    let found = api
        .search_users(&seeker.access_token, &format!("QUASAR {tag}"))
        .await?;
    assert_eq!(
        found.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![zed.user.id]
    );
    assert_eq!(found[0].display_name, display);
    // The start of the display name, non-ASCII included.
    let found = api
        .search_users(&seeker.access_token, &format!("zoë quasar {tag}"))
        .await?;
    assert!(found.iter().any(|u| u.id == zed.user.id));
    // The username prefix still works, and the exact username comes first.
    let found = api.search_users(&seeker.access_token, &username).await?;
    assert_eq!(found.first().map(|u| u.id), Some(zed.user.id));
    // A username that starts with the query ranks before a display name that contains it.
    let other = api
        .register(&format!("q{tag}x"), PASSWORD, Some("Plain"))
        .await?;
    let namer = api
        .register(&unique("n"), PASSWORD, Some(&format!("has q{tag} inside")))
        .await?;
    let found = api
        .search_users(&seeker.access_token, &format!("q{tag}"))
        .await?;
    let ids: Vec<_> = found.iter().map(|u| u.id).collect();
    assert_eq!(ids, vec![other.user.id, namer.user.id]);
    Ok(())
}

#[tokio::test]
async fn bad_directory_and_search_input_gets_400_with_a_clear_code() -> anyhow::Result<()> {
    let api = api();
    let s = register(&api, "dir-bad").await?;
    let t = Some(s.access_token.as_str());
    let page = api
        .channel_directory(&s.access_token, Some(DirectorySort::Members), Some(1), None)
        .await?;
    let members_cursor = page.next_cursor.expect("more than one channel exists");
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=10000", "invalid_limit"),
        ("limit=-1", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
        ("sort=popular", "invalid_sort"),
        ("sort=MEMBERS", "invalid_sort"),
        ("cursor=garbage", "invalid_cursor"),
        ("cursor=bTEuMy5ub3QtYS11dWlk", "invalid_cursor"),
        (
            &format!("sort=activity&cursor={members_cursor}"),
            "invalid_cursor",
        ),
    ] {
        let r = api
            .call(
                "GET",
                &format!("/api/v1/channels/directory?{query}"),
                t,
                None,
            )
            .await?;
        assert_eq!((r.status, r.error_code()), (400, Some(code)), "{query}");
    }
    let r = api
        .call("GET", "/api/v1/channels/directory", None, None)
        .await?;
    assert_eq!((r.status, r.error_code()), (401, Some("missing_token")));
    for query in [
        "",
        "query=",
        "query=%20%20",
        &format!("query={}", "x".repeat(65)),
    ] {
        let r = api
            .call("GET", &format!("/api/v1/users?{query}"), t, None)
            .await?;
        assert_eq!(
            (r.status, r.error_code()),
            (400, Some("invalid_query")),
            "{query}"
        );
    }
    // A display name is up to 64 characters: a query that long is fine.
    let r = api
        .call(
            "GET",
            &format!("/api/v1/users?query={}", "é".repeat(64)),
            t,
            None,
        )
        .await?;
    assert_eq!(r.status, 200);
    Ok(())
}
