//! Attachments through the API and nginx (issue #16, increment 2), as clients make them:
//! declare a file, PUT its bytes to the presigned URL with exactly the headers the API gave,
//! complete, and another member downloads the same bytes through a presigned link. Images get
//! their width and height (upright: an EXIF quarter turn swaps them). Every refusal has its
//! code: non-members, over-size, wrong type, bad names, malformed bodies, completing before
//! uploading, another channel's attachment, too many uploads not completed.
//!
//! Messages carry completed uploads (`send` with `attachments`): live on every device, in
//! history and the conversation list; an upload goes into one message only (a resend through
//! another gateway claims it once); refusals claim nothing; a deleted message's files are gone.
//!
//! An upload URL used after it expired is the store's 403: `objectstore.rs` covers it.

use chat_client::{Api, Connection, Page, Reply};
use chat_e2e::files::{
    channel_of_two, complete, create, http, jpeg_turned, link, path, png, put, send_files, uploaded,
};
use chat_e2e::{TIMEOUT, api, connect, connect_elsewhere, register, unique};
use chat_types::attachments::{
    Attachment, AttachmentLink, AttachmentState, AttachmentUpload, MessageAttachment,
};
use chat_types::ws::{ClientFrame, ServerFrame};
use chat_types::{ChannelId, Message, MessageId};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

async fn declare(api: &Api, token: &str, channel: ChannelId, body: Value) -> anyhow::Result<Reply> {
    Ok(api
        .call("POST", &path(channel, ""), Some(token), Some(&body))
        .await?)
}

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{:?}", r.body);
}

#[tokio::test]
async fn a_file_uploaded_by_one_member_is_downloaded_by_another() -> anyhow::Result<()> {
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "att").await?;
    let bytes: Vec<u8> = (0..70_000u32).map(|i| b"chat "[i as usize % 5]).collect();
    let upload = create(
        &api,
        &alice.access_token,
        channel,
        "Notes 1 \"é\".txt",
        "text/plain",
        &bytes,
    )
    .await?;
    assert_eq!(upload.expires_in, 900);
    assert_eq!(
        upload
            .upload
            .headers
            .get("content-type")
            .map(String::as_str),
        Some("text/plain")
    );
    assert!(
        upload
            .upload
            .url
            .contains(&format!("/chat-attachments/o/{}?", upload.id)),
        "{}",
        upload.upload.url
    );
    assert_eq!(put(&upload, bytes.clone()).await?, 200);
    let r = complete(&api, &alice.access_token, channel, &upload.id).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let done: Attachment = serde_json::from_value(r.body)?;
    assert_eq!(done.state, AttachmentState::Ready);
    assert_eq!(done.size, bytes.len() as u64);
    assert_eq!((done.width, done.height), (None, None));
    assert_eq!(done.uploader_id, alice.user.id);
    assert_eq!(done.channel_id, channel);
    // Completing again answers the same.
    let again = complete(&api, &alice.access_token, channel, &upload.id).await?;
    assert_eq!(again.status, 200);
    assert_eq!(serde_json::from_value::<Attachment>(again.body)?, done);

    let r = link(&api, &bob.access_token, channel, &upload.id).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let l: AttachmentLink = serde_json::from_value(r.body)?;
    assert_eq!(l.expires_in, 300);
    assert_eq!(l.thumbnail_url, None);
    let got = http().get(&l.url).send().await?;
    assert_eq!(got.status().as_u16(), 200);
    let header = |name: &str| {
        got.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header("content-type").starts_with("text/plain"),
        "{}",
        header("content-type")
    );
    assert_eq!(
        header("content-disposition"),
        "attachment; filename*=UTF-8''Notes%201%20%22%C3%A9%22.txt"
    );
    assert_eq!(got.bytes().await?.to_vec(), bytes);
    Ok(())
}

#[tokio::test]
async fn an_image_gets_its_width_and_height_shown_upright() -> anyhow::Result<()> {
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "att").await?;
    let picture = png(123, 45);
    let a = uploaded(
        &api,
        &alice.access_token,
        channel,
        "wide.png",
        "image/png",
        &picture,
    )
    .await?;
    assert_eq!((a.width, a.height), (Some(123), Some(45)));
    let turned = jpeg_turned(64, 24);
    let a = uploaded(
        &api,
        &alice.access_token,
        channel,
        "IMG_0001.jpg",
        "image/jpeg",
        &turned,
    )
    .await?;
    assert_eq!(
        (a.width, a.height),
        (Some(24), Some(64)),
        "orientation 6 swaps the sides"
    );
    // Images are shown inline.
    let r = link(&api, &bob.access_token, channel, &a.id).await?;
    let l: AttachmentLink = serde_json::from_value(r.body)?;
    let got = http().get(&l.url).send().await?;
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(
        got.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("inline")
    );
    assert_eq!(got.bytes().await?.to_vec(), turned);
    Ok(())
}

#[tokio::test]
async fn people_outside_the_channel_are_refused() -> anyhow::Result<()> {
    let api = api();
    let (alice, _bob, channel) = channel_of_two(&api, "att").await?;
    let carol = register(&api, "att_c").await?;
    let a = uploaded(
        &api,
        &alice.access_token,
        channel,
        "a.txt",
        "text/plain",
        b"hello",
    )
    .await?;
    let body = json!({"name": "x.txt", "content_type": "text/plain", "size": 5});
    assert_error(
        &declare(&api, &carol.access_token, channel, body).await?,
        403,
        "not_a_member",
    );
    assert_error(
        &link(&api, &carol.access_token, channel, &a.id).await?,
        403,
        "not_a_member",
    );
    assert_error(
        &complete(&api, &carol.access_token, channel, &a.id).await?,
        403,
        "not_a_member",
    );
    let r = api
        .call("POST", &path(channel, ""), None, Some(&json!({})))
        .await?;
    assert_error(&r, 401, "missing_token");
    Ok(())
}

#[tokio::test]
async fn bad_declarations_get_their_codes() -> anyhow::Result<()> {
    let api = api();
    let (alice, _bob, channel) = channel_of_two(&api, "att").await?;
    let t = &alice.access_token;
    let d = |body: Value| declare(&api, t, channel, body);
    let too_big = 25 * 1024 * 1024 + 1;
    assert_error(
        &d(json!({"name": "big.zip", "content_type": "application/zip", "size": too_big})).await?,
        413,
        "attachment_too_large",
    );
    assert_error(
        &d(json!({"name": "page.html", "content_type": "text/html", "size": 10})).await?,
        400,
        "unsupported_type",
    );
    assert_error(
        &d(json!({"name": "x.svg", "content_type": "image/svg+xml", "size": 10})).await?,
        400,
        "unsupported_type",
    );
    for name in [
        "",
        "../x.txt",
        "a\nb.txt",
        "\u{202e}gnp.exe",
        &"n".repeat(256),
    ] {
        assert_error(
            &d(json!({"name": name, "content_type": "text/plain", "size": 10})).await?,
            400,
            "invalid_name",
        );
    }
    assert_error(
        &d(json!({"name": "a\u{0}.txt", "content_type": "text/plain", "size": 10})).await?,
        400,
        "nul_character",
    );
    assert_error(
        &d(json!({"name": "a.txt", "content_type": "text/plain", "size": 0})).await?,
        400,
        "invalid_field",
    );
    assert_error(
        &d(json!({"name": "a.txt", "content_type": "text/plain", "size": "ten"})).await?,
        400,
        "invalid_field",
    );
    assert_error(
        &d(json!({"name": "a.txt", "content_type": "text/plain", "size": -1})).await?,
        400,
        "invalid_field",
    );
    assert_error(&d(json!({"name": "a.txt"})).await?, 400, "invalid_field");
    let raw = api
        .http()
        .post(api.url(&path(channel, "")))
        .bearer_auth(t)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await?;
    assert_eq!(raw.status().as_u16(), 400);
    let v: Value = raw.json().await?;
    assert_eq!(v["error"]["code"], "malformed_json", "{v}");
    let r = api
        .call(
            "POST",
            &format!("/api/v1/channels/{channel}/attachments/not-a-uuid/complete"),
            Some(t),
            None,
        )
        .await?;
    assert_error(&r, 400, "invalid_id");
    let r = api
        .call(
            "GET",
            &format!(
                "/api/v1/channels/{}/attachments/{}",
                uuid::Uuid::now_v7(),
                uuid::Uuid::now_v7()
            ),
            Some(t),
            None,
        )
        .await?;
    assert_error(&r, 404, "channel_not_found");
    Ok(())
}

#[tokio::test]
async fn completing_before_uploading_is_upload_incomplete_and_a_new_url_recovers()
-> anyhow::Result<()> {
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "att").await?;
    let t = &alice.access_token;
    let bytes = png(10, 10);
    let upload = create(&api, t, channel, "later.png", "image/png", &bytes).await?;
    assert_error(
        &complete(&api, t, channel, &upload.id).await?,
        409,
        "upload_incomplete",
    );
    assert_error(
        &link(&api, &bob.access_token, channel, &upload.id).await?,
        409,
        "upload_incomplete",
    );
    // Only the uploader may ask for another URL.
    let other = api
        .call(
            "POST",
            &path(channel, &format!("/{}/upload-url", upload.id)),
            Some(&bob.access_token),
            None,
        )
        .await?;
    assert_error(&other, 404, "unknown_attachment");
    let r = api
        .call(
            "POST",
            &path(channel, &format!("/{}/upload-url", upload.id)),
            Some(t),
            None,
        )
        .await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let fresh: AttachmentUpload = serde_json::from_value(r.body)?;
    assert_eq!(fresh.id, upload.id);
    assert_eq!(put(&fresh, bytes).await?, 200);
    let r = complete(&api, t, channel, &upload.id).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A completed one gets no new URL: its bytes are checked and stay.
    let r = api
        .call(
            "POST",
            &path(channel, &format!("/{}/upload-url", upload.id)),
            Some(t),
            None,
        )
        .await?;
    assert_error(&r, 404, "unknown_attachment");
    Ok(())
}

#[tokio::test]
async fn another_channels_attachment_is_unknown_here() -> anyhow::Result<()> {
    let api = api();
    let (alice, _bob, channel) = channel_of_two(&api, "att").await?;
    let elsewhere = api
        .create_channel(&alice.access_token, &unique("other-"), None)
        .await?
        .id;
    let a = uploaded(
        &api,
        &alice.access_token,
        channel,
        "a.txt",
        "text/plain",
        b"abc",
    )
    .await?;
    assert_error(
        &link(&api, &alice.access_token, elsewhere, &a.id).await?,
        404,
        "unknown_attachment",
    );
    assert_error(
        &complete(&api, &alice.access_token, elsewhere, &a.id).await?,
        404,
        "unknown_attachment",
    );
    assert_error(
        &link(&api, &alice.access_token, channel, &uuid::Uuid::now_v7()).await?,
        404,
        "unknown_attachment",
    );
    Ok(())
}

#[tokio::test]
async fn a_user_with_too_many_uploads_not_completed_is_refused_more() -> anyhow::Result<()> {
    let api = api();
    let (alice, _bob, channel) = channel_of_two(&api, "att").await?;
    let t = &alice.access_token;
    let body = json!({"name": "p.txt", "content_type": "text/plain", "size": 3});
    for i in 0..20 {
        let r = declare(&api, t, channel, body.clone()).await?;
        assert_eq!(r.status, 201, "upload {i}: {:?}", r.body);
    }
    let last = declare(&api, t, channel, body.clone()).await?;
    assert_error(&last, 409, "too_many_uploads");
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Messages that carry attachments (increment 3): `send` names completed uploads; the message
// carries them live, in history and in the conversation list; each upload goes into one
// message only; a deleted message's files can no longer be fetched.
// ------------------------------------------------------------------------------------------

/// How a message carries a completed upload.
fn carried(a: &Attachment) -> MessageAttachment {
    MessageAttachment {
        id: a.id,
        name: a.name.clone(),
        content_type: a.content_type.clone(),
        size: a.size,
        width: a.width,
        height: a.height,
    }
}

/// The next `message` frame, which must be `id` (nothing else, no second copy, before it).
async fn next_is(ws: &mut Connection, id: MessageId) -> anyhow::Result<Message> {
    let m = ws.next_message().await?;
    assert_eq!(m.id, id, "the next message is the expected one");
    Ok(m)
}

#[tokio::test]
async fn a_message_carries_its_files_to_every_device_and_into_history() -> anyhow::Result<()> {
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "att").await?;
    let (t, b) = (&alice.access_token, &bob.access_token);
    let photo = uploaded(&api, t, channel, "IMG_0042.png", "image/png", &png(40, 30)).await?;
    let notes = uploaded(&api, t, channel, "notes.txt", "text/plain", b"agenda").await?;
    let mut phone = connect(t).await?;
    let mut laptop = connect(t).await?;
    let mut bobs = connect(b).await?;

    // No text: the files say it all; they come in the order the sender listed them.
    let ack = send_files(&mut phone, channel, &unique("c"), "", &[photo.id, notes.id])
        .await?
        .expect("the send is acked");
    let expected = vec![carried(&photo), carried(&notes)];
    assert_eq!(ack.attachments, expected);
    assert_eq!(expected[0].width, Some(40), "the photo's box is known");
    assert_eq!(ack.body, "");
    for ws in [&mut laptop, &mut bobs] {
        let m = next_is(ws, ack.id).await?;
        assert_eq!(m.attachments, expected, "live, on every device");
        assert_eq!(m.body, "");
    }
    // With a caption too.
    let more = uploaded(&api, t, channel, "more.txt", "text/plain", b"more").await?;
    let captioned = send_files(&mut phone, channel, &unique("c"), "see this", &[more.id])
        .await?
        .expect("acked");
    assert_eq!(next_is(&mut bobs, captioned.id).await?.body, "see this");
    // History is read once the message is placed (bob saw it).

    let history = api.history(b, channel, Page::newest(10)).await?;
    let stored: Vec<_> = history.iter().filter(|m| m.id == ack.id).collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].attachments, expected, "history carries them");
    assert_eq!(
        history.last().map(|m| m.attachments.clone()),
        Some(vec![carried(&more)])
    );
    // A message without files still has none.
    let plain = phone.send_acked(channel, &unique("c"), "plain").await?;
    assert!(plain.attachments.is_empty());
    // The conversation list never shows an empty preview for a file sent without text.
    let only_files = send_files(&mut phone, channel, &unique("c"), "", &[]).await?;
    assert_eq!(
        only_files,
        Err("invalid_body".into()),
        "no text and no files"
    );
    let photo2 = uploaded(&api, t, channel, "IMG_0043.png", "image/png", &png(8, 8)).await?;
    let last = send_files(&mut phone, channel, &unique("c"), "", &[photo2.id])
        .await?
        .expect("acked");
    next_is(&mut bobs, plain.id).await?;
    let seq = next_is(&mut bobs, last.id).await?.seq.expect("placed");
    // The list is written beside the push: read it until it has the newest message.
    let deadline = Instant::now() + TIMEOUT;
    let this = loop {
        let list = api.conversations(b).await?;
        let c = list
            .into_iter()
            .find(|c| c.channel.id == channel)
            .expect("bob's conversation");
        if c.head_seq >= seq {
            break c;
        }
        anyhow::ensure!(Instant::now() < deadline, "the list never reached {seq}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        this.last_message.as_ref().map(|l| l.preview.as_str()),
        Some("📎 IMG_0043.png")
    );
    // Bob downloads what the message names.
    let r = link(&api, b, channel, &photo.id).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    Ok(())
}

#[tokio::test]
async fn an_upload_goes_into_one_message_only_and_a_resend_claims_it_once() -> anyhow::Result<()> {
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "att").await?;
    let (t, b) = (&alice.access_token, &bob.access_token);
    let file = uploaded(
        &api,
        t,
        channel,
        "report.pdf",
        "application/pdf",
        b"%PDF-1.4 x",
    )
    .await?;
    let mut first = connect(t).await?;
    let mut bobs = connect(b).await?;
    let cmid = unique("c");
    let ack = send_files(&mut first, channel, &cmid, "the report", &[file.id])
        .await?
        .expect("acked");
    assert_eq!(
        next_is(&mut bobs, ack.id).await?.attachments,
        vec![carried(&file)]
    );

    // The client did not hear the ack and resends through the other gateway: the same
    // message, acked again, delivered once.
    let mut second = connect_elsewhere(t, first.gateway()).await?;
    let again = send_files(&mut second, channel, &cmid, "the report", &[file.id])
        .await?
        .expect("a resend is acked");
    assert_eq!((again.id, &again.attachments), (ack.id, &ack.attachments));
    assert_eq!(again.created_at, ack.created_at);

    // Another message may not carry the same upload.
    let other = send_files(&mut first, channel, &unique("c"), "again", &[file.id]).await?;
    assert_eq!(other, Err("invalid_attachment".into()));

    // A `client_msg_id` reused with another file: the answer is the first message, and the
    // other file stays free for the message it is really meant for.
    let spare = uploaded(&api, t, channel, "spare.txt", "text/plain", b"spare").await?;
    let reused = send_files(&mut first, channel, &cmid, "the report", &[spare.id])
        .await?
        .expect("a resend of the first message");
    assert_eq!(reused.id, ack.id);
    assert_eq!(reused.attachments, vec![carried(&file)]);
    let meant = send_files(&mut first, channel, &unique("c"), "", &[spare.id])
        .await?
        .expect("the spare file is still free");
    assert_eq!(meant.attachments, vec![carried(&spare)]);

    // Bob got the report once, then the spare: nothing else in between.
    assert_eq!(
        next_is(&mut bobs, meant.id).await?.attachments,
        vec![carried(&spare)]
    );
    let history = api.history(b, channel, Page::newest(10)).await?;
    let ids: Vec<MessageId> = history.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![ack.id, meant.id], "each message stored once");
    Ok(())
}

#[tokio::test]
async fn files_that_are_not_yours_to_send_are_refused_and_nothing_is_claimed() -> anyhow::Result<()>
{
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "att").await?;
    let (t, b) = (&alice.access_token, &bob.access_token);
    let mine = uploaded(&api, t, channel, "mine.txt", "text/plain", b"mine").await?;
    let bobs_file = uploaded(&api, b, channel, "bob.txt", "text/plain", b"bob").await?;
    let not_uploaded = create(&api, t, channel, "later.txt", "text/plain", b"later").await?;
    let elsewhere = api.create_channel(t, &unique("other-"), None).await?.id;
    let other_channel = uploaded(&api, t, elsewhere, "o.txt", "text/plain", b"o").await?;
    let mut ws = connect(t).await?;
    let refused = |code: &str| Err::<Message, String>(code.into());
    // Each bad one alone, then beside a good one: all or nothing.
    for bad in [
        bobs_file.id,
        not_uploaded.id,
        other_channel.id,
        uuid::Uuid::now_v7(),
    ] {
        assert_eq!(
            send_files(&mut ws, channel, &unique("c"), "x", &[bad]).await?,
            refused("invalid_attachment")
        );
        assert_eq!(
            send_files(&mut ws, channel, &unique("c"), "x", &[mine.id, bad]).await?,
            refused("invalid_attachment")
        );
    }
    let five: Vec<uuid::Uuid> = (0..5).map(|_| uuid::Uuid::now_v7()).collect();
    assert_eq!(
        send_files(&mut ws, channel, &unique("c"), "x", &five).await?,
        refused("invalid_attachment")
    );
    assert_eq!(
        send_files(&mut ws, channel, &unique("c"), "x", &[mine.id, mine.id]).await?,
        refused("invalid_attachment")
    );
    assert_eq!(
        send_files(&mut ws, channel, &unique("c"), "   ", &[mine.id]).await?,
        refused("invalid_body")
    );
    // The frame's own type errors are malformed frames, answered without a client_msg_id.
    ws.send_text(format!(
        r#"{{"type":"send","channel_id":"{channel}","client_msg_id":"c","body":"x","attachments":["not-a-uuid"]}}"#
    ))
    .await?;
    let (code, _) = ws
        .until(|f| match f {
            ServerFrame::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(code, "malformed_frame");
    // Someone outside the channel hears that first.
    let carol = register(&api, "att_c").await?;
    let mut cws = connect(&carol.access_token).await?;
    let outsider = send_files(&mut cws, channel, &unique("c"), "hi", &[mine.id]).await?;
    assert_eq!(outsider, refused("not_a_member"));

    // None of the refusals claimed the good file.
    let ok = send_files(&mut ws, channel, &unique("c"), "at last", &[mine.id])
        .await?
        .expect("acked");
    assert_eq!(ok.attachments, vec![carried(&mine)]);
    Ok(())
}

#[tokio::test]
async fn a_deleted_message_takes_its_files_with_it() -> anyhow::Result<()> {
    let api = api();
    let (alice, bob, channel) = channel_of_two(&api, "att").await?;
    let (t, b) = (&alice.access_token, &bob.access_token);
    let file = uploaded(&api, t, channel, "oops.txt", "text/plain", b"oops").await?;
    let mut ws = connect(t).await?;
    let mut bobs = connect(b).await?;
    let sent = send_files(&mut ws, channel, &unique("c"), "", &[file.id])
        .await?
        .expect("acked");
    next_is(&mut bobs, sent.id).await?;
    assert_eq!(link(&api, b, channel, &file.id).await?.status, 200);
    ws.change_acked(&ClientFrame::Delete {
        channel_id: channel,
        message_id: sent.id,
        client_event_id: unique("e"),
    })
    .await?;
    let deleted = bobs.next_event().await?;
    assert_eq!(deleted.message_id, sent.id);
    // Whoever sees the delete can no longer fetch the file.
    assert_error(
        &link(&api, b, channel, &file.id).await?,
        404,
        "unknown_attachment",
    );
    let history = api.history(b, channel, Page::newest(10)).await?;
    assert!(history[0].deleted);
    assert!(
        history[0].attachments.is_empty(),
        "a tombstone carries no files"
    );
    Ok(())
}
