//! Attachments as clients make them (`docs/protocol.md`, "REST: attachments"): declare a file,
//! PUT its bytes to the presigned URL with exactly the headers the API gave, complete. Shared by
//! the attachment tests and the Swift client's (which uploads through ChatKit and checks what
//! the Rust side sees).

use crate::TIMEOUT;
use anyhow::ensure;
use chat_client::{Api, Reply};
use chat_types::ChannelId;
use chat_types::attachments::{Attachment, AttachmentUpload};
use serde_json::json;
use std::io::Cursor;

/// A plain HTTP client for presigned URLs (no API token goes to the object store).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("http client")
}

/// `/api/v1/channels/{channel}/attachments` followed by `rest`.
pub fn path(channel: ChannelId, rest: &str) -> String {
    format!("/api/v1/channels/{channel}/attachments{rest}")
}

/// A `w`×`h` PNG with a gradient (every image a test makes differs in its bytes).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 200]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

/// A JPEG whose EXIF says "turn a quarter clockwise to show" (orientation 6), as phones save
/// portrait photos: stored `w`×`h`, shown `h`×`w`.
pub fn jpeg_turned(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 30]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("jpeg");
    let jpeg = out.into_inner();
    let mut app1 = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec(); // big-endian TIFF, IFD0 at 8
    app1.extend_from_slice(&1u16.to_be_bytes()); // one entry:
    app1.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation,
    app1.extend_from_slice(&3u16.to_be_bytes()); // SHORT,
    app1.extend_from_slice(&1u32.to_be_bytes()); // one value:
    app1.extend_from_slice(&6u16.to_be_bytes()); // 6
    app1.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // padding, no next IFD
    let mut out = jpeg[..2].to_vec(); // SOI, then APP1
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(app1.len() + 2).expect("small").to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The object store as the services reach it (`CHAT_OBJECTS_ENDPOINT`, default the native
/// stack's `http://127.0.0.1:19000`), with the stack's keys, presigning for the public origin
/// (`CHAT_BASE_URL`): for looking at what arrived, or is gone, behind the API's back.
pub fn store() -> anyhow::Result<chat_store::objects::Objects> {
    let secrets = format!("{}/run/secrets", crate::stack_dir());
    let cfg = chat_common::config::ObjectsConfig {
        endpoint: std::env::var("CHAT_OBJECTS_ENDPOINT")
            .unwrap_or_else(|_| "http://127.0.0.1:19000".into()),
        public_base: crate::base_url(),
        access_key_file: Some(format!("{secrets}/s3_access_key")),
        secret_key_file: Some(format!("{secrets}/s3_secret_key")),
        ..chat_common::config::ObjectsConfig::default()
    };
    Ok(chat_store::objects::Objects::new(&cfg)?)
}

/// Declare `bytes` as `name` of `content_type`: the upload to make (201 expected).
pub async fn create(
    api: &Api,
    token: &str,
    channel: ChannelId,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> anyhow::Result<AttachmentUpload> {
    let body = json!({"name": name, "content_type": content_type, "size": bytes.len()});
    let r = api
        .call("POST", &path(channel, ""), Some(token), Some(&body))
        .await?;
    ensure!(r.status == 201, "create: {:?}", r.body);
    Ok(serde_json::from_value(r.body)?)
}

/// PUT `bytes` as a client does: the given method, URL and headers (reqwest sets the length,
/// which must be the signed one). The store's status.
pub async fn put(upload: &AttachmentUpload, bytes: Vec<u8>) -> anyhow::Result<u16> {
    ensure!(upload.upload.method == "PUT", "{:?}", upload.upload);
    ensure!(
        upload.upload.headers.get("content-length") == Some(&bytes.len().to_string()),
        "the signed length is the file's: {:?}",
        upload.upload.headers
    );
    let mut req = http().put(&upload.upload.url).body(bytes);
    for (k, v) in &upload.upload.headers {
        if k != "content-length" {
            req = req.header(k, v);
        }
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    if status != 200 {
        println!("upload: {status} {}", r.text().await?);
    }
    Ok(status)
}

/// `POST …/{id}/complete`, as it answered.
pub async fn complete(
    api: &Api,
    token: &str,
    channel: ChannelId,
    id: &uuid::Uuid,
) -> anyhow::Result<Reply> {
    Ok(api
        .call(
            "POST",
            &path(channel, &format!("/{id}/complete")),
            Some(token),
            None,
        )
        .await?)
}

/// Declare, upload and complete: the completed attachment.
pub async fn uploaded(
    api: &Api,
    token: &str,
    channel: ChannelId,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> anyhow::Result<Attachment> {
    let upload = create(api, token, channel, name, content_type, bytes).await?;
    let status = put(&upload, bytes.to_vec()).await?;
    ensure!(status == 200, "upload: {status}");
    let r = complete(api, token, channel, &upload.id).await?;
    ensure!(r.status == 200, "complete: {:?}", r.body);
    Ok(serde_json::from_value(r.body)?)
}

/// Alice's new group channel (named after `prefix`), which Bob joined.
pub async fn channel_of_two(
    api: &Api,
    prefix: &str,
) -> anyhow::Result<(
    chat_types::rest::Session,
    chat_types::rest::Session,
    ChannelId,
)> {
    let alice = crate::register(api, &format!("{prefix}_a")).await?;
    let bob = crate::register(api, &format!("{prefix}_b")).await?;
    let channel = api
        .create_channel(&alice.access_token, &crate::unique(prefix), None)
        .await?
        .id;
    api.join(&bob.access_token, channel).await?;
    Ok((alice, bob, channel))
}

/// `GET …/attachments/{id}`, as it answered.
pub async fn link(
    api: &Api,
    token: &str,
    channel: ChannelId,
    id: &uuid::Uuid,
) -> anyhow::Result<Reply> {
    Ok(api
        .call("GET", &path(channel, &format!("/{id}")), Some(token), None)
        .await?)
}

/// Send `body` with `files` and wait for the answer: the acked message, or the refusal's code.
pub async fn send_files(
    ws: &mut chat_client::Connection,
    channel: ChannelId,
    cmid: &str,
    body: &str,
    files: &[uuid::Uuid],
) -> anyhow::Result<Result<chat_types::Message, String>> {
    use chat_types::ws::ServerFrame;
    ws.send_with_attachments(channel, cmid, body, files).await?;
    Ok(ws
        .until_keeping(|f| match f {
            ServerFrame::Ack {
                client_msg_id,
                message,
            } if client_msg_id == cmid => Some(Ok(message.clone())),
            ServerFrame::Error {
                client_msg_id: Some(c),
                code,
                ..
            } if c == cmid => Some(Err(code.clone())),
            _ => None,
        })
        .await?)
}
