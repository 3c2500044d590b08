//! `chat-media` against the real stack (issue #16): thumbnails of images and the sweeper.
//!
//! - A completed image gets a thumbnail, made in the background: the download link says
//!   `thumbnail: pending`, then `ready` with a `thumbnail_url` that another member fetches
//!   through nginx: a JPEG of at most 480 px a side, upright, with the picture's proportions.
//! - Files that are not images, and images that cannot be decoded, end with `thumbnail: none`.
//! - The sweeper removes, objects first, then rows: uploads never completed (once no upload URL
//!   can still be used), completed uploads never sent, and the files of deleted messages; it
//!   leaves alone what a message carries. Time is moved by backdating rows in PostgreSQL (the
//!   sweeper's ages are hours); the native stack sweeps every second.
//! - A send's claim on uploads whose message was never stored (the gateway claimed, then its
//!   produce failed and the client gave up) is released after a day and the upload swept; the
//!   claims of stored messages are never released, however old.

use chat_client::Api;
use chat_e2e::files::{
    channel_of_two, complete, create, http, jpeg_turned, link, path, png, put, send_files, store,
    uploaded,
};
use chat_e2e::{TIMEOUT, api, connect, postgres, unique};
use chat_types::ChannelId;
use chat_types::attachments::{AttachmentLink, ThumbnailState};
use chat_types::ws::ClientFrame;
use image::GenericImageView;
use std::io::Cursor;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The download link once the thumbnail is no longer `pending`, and whether it ever was seen
/// pending. Polls: the thumbnail is made in the background, and clients poll the same way.
async fn settled_link(
    api: &Api,
    token: &str,
    channel: ChannelId,
    id: &Uuid,
) -> anyhow::Result<(AttachmentLink, Duration)> {
    let started = Instant::now();
    loop {
        let r = link(api, token, channel, id).await?;
        anyhow::ensure!(r.status == 200, "link: {:?}", r.body);
        let l: AttachmentLink = serde_json::from_value(r.body)?;
        if l.thumbnail != ThumbnailState::Pending {
            return Ok((l, started.elapsed()));
        }
        assert_eq!(l.thumbnail_url, None, "no URL while pending");
        anyhow::ensure!(
            started.elapsed() < TIMEOUT,
            "thumbnail still pending after {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fetch a presigned URL: status, content type, bytes.
async fn fetch(url: &str) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let r = http().get(url).send().await?;
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type, r.bytes().await?.to_vec()))
}

fn decode(bytes: &[u8]) -> anyhow::Result<image::DynamicImage> {
    let reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    anyhow::ensure!(
        reader.format() == Some(image::ImageFormat::Jpeg),
        "a thumbnail is a JPEG, got {:?}",
        reader.format()
    );
    Ok(reader.decode()?)
}

#[tokio::test]
async fn an_image_gets_a_thumbnail_that_another_member_downloads() -> anyhow::Result<()> {
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "media").await?;
    let (t, b) = (&alice.access_token, &bob.access_token);

    // A wide PNG, and a phone's portrait photo (stored 960×600, shown 600×960 by its EXIF).
    let wide = uploaded(&api, t, channel, "wide.png", "image/png", &png(1200, 500)).await?;
    let portrait_bytes = jpeg_turned(960, 600);
    let portrait = uploaded(
        &api,
        t,
        channel,
        "IMG_0042.jpg",
        "image/jpeg",
        &portrait_bytes,
    )
    .await?;
    assert_eq!((portrait.width, portrait.height), (Some(600), Some(960)));

    for (file, want) in [(&wide, (480, 200)), (&portrait, (300, 480))] {
        let (l, waited) = settled_link(&api, b, channel, &file.id).await?;
        assert_eq!(l.thumbnail, ThumbnailState::Ready, "{l:?}");
        let url = l.thumbnail_url.expect("a ready thumbnail has a URL");
        assert!(
            url.contains(&format!("/chat-attachments/t/{}.jpg?", file.id)),
            "{url}"
        );
        let (status, content_type, bytes) = fetch(&url).await?;
        assert_eq!(status, 200);
        assert_eq!(content_type, "image/jpeg");
        let thumb = decode(&bytes)?;
        assert_eq!(thumb.dimensions(), want, "{}", file.name);
        println!(
            "thumbnail of {} ({} bytes): {}×{}, {} bytes, ready {waited:?} after complete",
            file.name,
            file.size,
            want.0,
            want.1,
            bytes.len()
        );
        // The original is untouched beside it.
        let (status, _, original) = fetch(&l.url).await?;
        assert_eq!(status, 200);
        assert_eq!(original.len() as u64, file.size);
    }
    // The portrait's thumbnail is upright: its top row is the photo's left column, which the
    // gradient made dark in red (x = 0); the bottom row is its right column.
    let (l, _) = settled_link(&api, b, channel, &portrait.id).await?;
    let (_, _, bytes) = fetch(&l.thumbnail_url.expect("ready")).await?;
    let thumb = decode(&bytes)?.into_rgb8();
    let red_top = thumb.get_pixel(150, 2).0[0];
    let red_bottom = thumb.get_pixel(150, 477).0[0];
    assert!(
        red_bottom > red_top + 100,
        "turned the wrong way: red {red_top} at the top, {red_bottom} at the bottom"
    );
    Ok(())
}

#[tokio::test]
async fn files_that_are_not_images_or_cannot_be_decoded_get_no_thumbnail() -> anyhow::Result<()> {
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "media").await?;
    let (t, b) = (&alice.access_token, &bob.access_token);

    let text = uploaded(&api, t, channel, "notes.txt", "text/plain", b"just words").await?;
    let l: AttachmentLink = serde_json::from_value(link(&api, b, channel, &text.id).await?.body)?;
    assert_eq!(l.thumbnail, ThumbnailState::None, "never queued: {l:?}");
    assert_eq!(l.thumbnail_url, None);

    // A PNG cut in half: its header (width and height) reads, its pixels do not.
    let whole = png(300, 200);
    let cut = whole[..whole.len() / 2].to_vec();
    let broken = uploaded(&api, t, channel, "broken.png", "image/png", &cut).await?;
    assert_eq!((broken.width, broken.height), (Some(300), Some(200)));
    let (l, _) = settled_link(&api, b, channel, &broken.id).await?;
    assert_eq!(l.thumbnail, ThumbnailState::None, "{l:?}");
    assert_eq!(l.thumbnail_url, None);
    // The file itself is still there to download.
    assert_eq!(fetch(&l.url).await?.2, cut);
    Ok(())
}

/// Move an attachment's creation `hours` into the past.
async fn backdate(db: &chat_store::pg::PgPool, id: Uuid, hours: f64) -> anyhow::Result<()> {
    backdate_times(db, id, hours, &["created_at"]).await
}

/// Move the given times of an attachment `hours` into the past.
async fn backdate_times(
    db: &chat_store::pg::PgPool,
    id: Uuid,
    hours: f64,
    columns: &[&str],
) -> anyhow::Result<()> {
    let set: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = now() - make_interval(secs => $2)"))
        .collect();
    let done = sqlx::query(&format!(
        "UPDATE attachments SET {} WHERE id = $1",
        set.join(", ")
    ))
    .bind(id)
    .bind(hours * 3600.0)
    .execute(db)
    .await?;
    anyhow::ensure!(done.rows_affected() == 1, "no attachment {id}");
    Ok(())
}

async fn row_exists(db: &chat_store::pg::PgPool, id: Uuid) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM attachments WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await?
            == 1,
    )
}

/// Wait until the sweeper has forgotten every one of `ids`.
async fn swept(db: &chat_store::pg::PgPool, ids: &[Uuid]) -> anyhow::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    for id in ids {
        while row_exists(db, *id).await? {
            anyhow::ensure!(Instant::now() < deadline, "{id} was not swept");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_sweeper_removes_abandoned_uploads_and_deleted_messages_files() -> anyhow::Result<()> {
    let api = api();
    let db = postgres().await?;
    let objects = store()?;
    let (alice, _bob, channel) = channel_of_two(&api, "media").await?;
    let t = &alice.access_token;
    let mut ws = connect(t).await?;

    // Uploaded, never completed.
    let bytes = b"half way".to_vec();
    let never_completed = create(&api, t, channel, "draft.txt", "text/plain", &bytes).await?;
    assert_eq!(put(&never_completed, bytes).await?, 200);
    // Completed, never sent.
    let never_sent = uploaded(&api, t, channel, "unsent.png", "image/png", &png(64, 64)).await?;
    // Sent, then its message deleted (an image: its thumbnail goes too).
    let deleted = uploaded(&api, t, channel, "gone.png", "image/png", &png(64, 64)).await?;
    // Sent, and kept.
    let kept = uploaded(&api, t, channel, "kept.txt", "text/plain", b"keep me").await?;
    let (l, _) = settled_link(&api, t, channel, &deleted.id).await?;
    assert_eq!(l.thumbnail, ThumbnailState::Ready);
    let gone_msg = send_files(&mut ws, channel, &unique("m"), "", &[deleted.id])
        .await?
        .expect("acked");
    send_files(&mut ws, channel, &unique("m"), "", &[kept.id])
        .await?
        .expect("acked");
    // A change names a stored message: one that came back with its position, not one known
    // only from its ack (docs/protocol.md). Deleting at the ack raced the store.
    let stored = ws.next_message().await?;
    assert_eq!((stored.id, stored.seq.is_some()), (gone_msg.id, true));
    ws.change_acked(&ClientFrame::Delete {
        channel_id: channel,
        message_id: gone_msg.id,
        client_event_id: unique("e"),
    })
    .await?;

    // An hour and a half: no new upload URL any more, but one given out may still be in use,
    // so nothing is removed yet.
    backdate(&db, never_completed.id, 1.5).await?;
    let r = api
        .call(
            "POST",
            &path(channel, &format!("/{}/upload-url", never_completed.id)),
            Some(t),
            None,
        )
        .await?;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "unknown_attachment");

    // Past every URL's life, and a day unsent. The kept one is made as old first, so every
    // sweep that finds the others finds it too.
    backdate(&db, kept.id, 25.0).await?;
    backdate(&db, never_completed.id, 3.0).await?;
    backdate(&db, never_sent.id, 25.0).await?;
    let gone = [never_completed.id, never_sent.id, deleted.id];
    swept(&db, &gone).await?;
    for id in gone {
        for key in [
            chat_store::objects::file_key(id),
            chat_store::objects::thumbnail_key(id),
        ] {
            assert_eq!(objects.head(&key).await?, None, "{key} is still stored");
        }
    }
    // Completing or sending what was swept: it is unknown.
    let r = complete(&api, t, channel, &never_completed.id).await?;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let late = send_files(&mut ws, channel, &unique("late"), "", &[never_sent.id]).await?;
    let code = late.expect_err("refused");
    assert_eq!(code, "invalid_attachment");

    // What a message carries stays, however old.
    assert!(row_exists(&db, kept.id).await?);
    assert!(
        objects
            .head(&chat_store::objects::file_key(kept.id))
            .await?
            .is_some()
    );
    let r = link(&api, t, channel, &kept.id).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    Ok(())
}

#[tokio::test]
async fn a_claim_whose_message_was_never_stored_is_released_and_its_upload_swept()
-> anyhow::Result<()> {
    let api = api();
    let db = postgres().await?;
    let objects = store()?;
    let (alice, _bob, channel) = channel_of_two(&api, "claims").await?;
    let t = &alice.access_token;
    let mut ws = connect(t).await?;

    // Claimed as a gateway claims a send's files before producing it, by a send that never
    // reached Kafka (no message with this id exists anywhere).
    let lost = uploaded(&api, t, channel, "lost.txt", "text/plain", b"never sent").await?;
    let never_produced = chat_types::MessageId(Uuid::now_v7());
    let claimed =
        chat_store::attachments::claim(&db, channel, alice.user.id, never_produced, &[lost.id])
            .await?;
    anyhow::ensure!(claimed.is_some(), "the upload could not be claimed");
    // Claimed: no other send may carry it meanwhile.
    let other = send_files(&mut ws, channel, &unique("m"), "", &[lost.id]).await?;
    assert_eq!(other.expect_err("refused"), "invalid_attachment");

    // Sent and stored (its message came back with a position): claimed for good.
    let kept = uploaded(&api, t, channel, "kept.txt", "text/plain", b"sent").await?;
    let sent = send_files(&mut ws, channel, &unique("m"), "", &[kept.id])
        .await?
        .expect("acked");
    let stored = ws.next_message().await?;
    assert_eq!((stored.id, stored.seq.is_some()), (sent.id, true));

    // A day and more later: the kept one is made as old first, so the sweep that releases the
    // other finds it too.
    for id in [kept.id, lost.id] {
        backdate_times(&db, id, 25.0, &["claimed_at", "created_at"]).await?;
    }
    swept(&db, &[lost.id]).await?;
    assert_eq!(
        objects
            .head(&chat_store::objects::file_key(lost.id))
            .await?,
        None,
        "the released upload's file is still stored"
    );

    assert!(row_exists(&db, kept.id).await?);
    let r = link(&api, t, channel, &kept.id).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let l: AttachmentLink = serde_json::from_value(r.body)?;
    assert_eq!(fetch(&l.url).await?.2, b"sent".to_vec());
    Ok(())
}
