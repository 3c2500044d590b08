//! The object store behind nginx (issue #16, attachments increment 1): uploads and downloads
//! with presigned URLs through nginx's `/chat-attachments/`, exactly as clients will make them,
//! and the store's refusals (403) of another length, a tampered signature and an expired URL.
//!
//! Until the API hands out upload URLs, the test plays the API's part: it presigns with
//! `chat_store::objects` and the stack's keys (`$CHAT_STACK_DIR/run/secrets/s3_*`), for the
//! public origin (`CHAT_BASE_URL`). The store's own endpoint (`CHAT_OBJECTS_ENDPOINT`, default
//! the native stack's `http://127.0.0.1:19000`) is used only to make sure of the bucket and
//! to look at what arrived.

use chat_e2e::{TIMEOUT, base_url};
use chat_store::objects::{Objects, Presigned};
use std::time::Duration;

/// The bucket as the API sees it (`chat_e2e::files::store`). `chat-admin migrate` created the
/// bucket; `ensure_bucket` here only checks that (and that it is idempotent).
async fn objects() -> anyhow::Result<Objects> {
    let objects = chat_e2e::files::store()?;
    objects.ensure_bucket().await?;
    Ok(objects)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("http client")
}

/// A key of the shape the API makes (`o/<attachment id>`; nginx lets no other through).
fn new_key() -> String {
    format!("o/{}", uuid::Uuid::new_v4())
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn header<'a>(p: &'a Presigned, name: &str) -> &'a str {
    p.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the presigned request names no {name}: {p:?}"))
}

/// PUT `bytes` to a presigned URL as a client would: the signed headers, the length that of
/// the body (reqwest sets it).
async fn upload(
    p: &Presigned,
    content_type: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<(u16, String)> {
    assert_eq!(p.method, "PUT");
    let r = http()
        .put(&p.url)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

async fn download(url: &str) -> anyhow::Result<reqwest::Response> {
    Ok(http().get(url).send().await?)
}

/// `Code: Message` of the store's XML error body (the rest repeats the signature's inputs).
fn s3_error(body: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        body.split_once(&open)
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(value, _)| value.to_owned())
            .unwrap_or_default()
    };
    format!("{}: {}", tag("Code"), tag("Message"))
}

/// A refusal by the store itself (not by nginx): 403 with this S3 error code.
fn assert_refused(what: &str, status: u16, body: &str, code: &str) {
    let error = s3_error(body);
    println!("{what}: {status} {error}");
    assert_eq!(status, 403, "{what}: {body}");
    assert!(error.starts_with(code), "{what}: {error}, want {code}");
}

/// The signature's last hex digit changed.
fn tampered(url: &str) -> String {
    let (head, sig) = url.split_once("X-Amz-Signature=").expect("a signature");
    let mut sig = sig.to_owned();
    let last = sig.pop().expect("a signature");
    sig.push(if last == '0' { '1' } else { '0' });
    format!("{head}X-Amz-Signature={sig}")
}

#[tokio::test]
async fn an_upload_through_nginx_with_a_presigned_url_reads_back_the_same() -> anyhow::Result<()> {
    let objects = objects().await?;
    let key = new_key();
    let bytes = body(100_000);
    let put = objects
        .presign_put(
            &key,
            "image/png",
            bytes.len() as u64,
            Duration::from_secs(300),
        )
        .await?;
    assert!(
        put.url
            .starts_with(&format!("{}/chat-attachments/{key}?", base_url())),
        "{}",
        put.url
    );
    assert_eq!(header(&put, "content-length"), bytes.len().to_string());
    let (status, text) = upload(&put, header(&put, "content-type"), bytes.clone()).await?;
    assert_eq!(status, 200, "upload: {text}");

    let head = objects.head(&key).await?.expect("the object is stored");
    assert_eq!(head.size, bytes.len() as u64);
    assert_eq!(head.content_type.as_deref(), Some("image/png"));

    let get = objects.presign_get(&key, Duration::from_secs(300)).await?;
    let r = download(&get.url).await?;
    assert_eq!(r.status().as_u16(), 200);
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    // nginx's guard: whatever was uploaded never runs as a page of this origin.
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("sandbox"), "content-security-policy: {csp:?}");
    assert_eq!(r.bytes().await?.as_ref(), bytes.as_slice());

    // A second upload of a 25 MiB file fits nginx's limit for this route (the API's is 1 MiB).
    let big_key = new_key();
    let big = body(25 * 1024 * 1024);
    let put = objects
        .presign_put(
            &big_key,
            "video/mp4",
            big.len() as u64,
            Duration::from_secs(300),
        )
        .await?;
    let (status, text) = upload(&put, "video/mp4", big).await?;
    assert_eq!(status, 200, "25 MiB upload: {text}");
    assert_eq!(
        objects.head(&big_key).await?.map(|h| h.size),
        Some(25 * 1024 * 1024)
    );

    for k in [&key, &big_key] {
        objects.delete(k).await?;
        assert_eq!(objects.head(k).await?, None, "{k} deleted");
    }
    // Deleting again is fine (S3 semantics); the bucket is still there.
    objects.delete(&key).await?;
    assert!(
        !objects.ensure_bucket().await?,
        "the bucket already existed"
    );
    Ok(())
}

#[tokio::test]
async fn a_presigned_put_refuses_another_length_or_type() -> anyhow::Result<()> {
    let objects = objects().await?;
    let key = new_key();
    let put = objects
        .presign_put(&key, "image/jpeg", 100, Duration::from_secs(300))
        .await?;

    let (status, text) = upload(&put, "image/jpeg", body(50)).await?;
    assert_refused(
        "50 bytes instead of 100",
        status,
        &text,
        "SignatureDoesNotMatch",
    );
    let (status, text) = upload(&put, "image/jpeg", body(101)).await?;
    assert_refused(
        "101 bytes instead of 100",
        status,
        &text,
        "SignatureDoesNotMatch",
    );
    let (status, text) = upload(&put, "image/png", body(100)).await?;
    assert_refused(
        "image/png instead of image/jpeg",
        status,
        &text,
        "SignatureDoesNotMatch",
    );
    assert_eq!(objects.head(&key).await?, None, "nothing was stored");

    // The same URL still works as signed.
    let (status, text) = upload(&put, "image/jpeg", body(100)).await?;
    assert_eq!(status, 200, "{text}");
    objects.delete(&key).await?;
    Ok(())
}

#[tokio::test]
async fn a_tampered_signature_is_refused() -> anyhow::Result<()> {
    let objects = objects().await?;
    let key = new_key();
    let put = objects
        .presign_put(&key, "text/plain", 10, Duration::from_secs(300))
        .await?;
    let forged = Presigned {
        url: tampered(&put.url),
        ..put.clone()
    };
    let (status, text) = upload(&forged, "text/plain", body(10)).await?;
    assert_refused(
        "PUT with a tampered signature",
        status,
        &text,
        "SignatureDoesNotMatch",
    );
    assert_eq!(objects.head(&key).await?, None, "nothing was stored");

    let (status, text) = upload(&put, "text/plain", body(10)).await?;
    assert_eq!(status, 200, "{text}");
    let get = objects.presign_get(&key, Duration::from_secs(300)).await?;
    let r = download(&tampered(&get.url)).await?;
    let status = r.status().as_u16();
    assert_refused(
        "GET with a tampered signature",
        status,
        &r.text().await?,
        "SignatureDoesNotMatch",
    );
    assert_eq!(download(&get.url).await?.status().as_u16(), 200);
    objects.delete(&key).await?;
    Ok(())
}

#[tokio::test]
async fn an_expired_url_is_refused() -> anyhow::Result<()> {
    let objects = objects().await?;
    let key = new_key();
    let short_put = objects
        .presign_put(&key, "text/plain", 10, Duration::from_secs(1))
        .await?;
    let put = objects
        .presign_put(&key, "text/plain", 10, Duration::from_secs(300))
        .await?;
    let (status, text) = upload(&put, "text/plain", body(10)).await?;
    assert_eq!(status, 200, "{text}");
    let short_get = objects.presign_get(&key, Duration::from_secs(1)).await?;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, text) = upload(&short_put, "text/plain", body(10)).await?;
    assert_refused(
        "PUT after expiry",
        status,
        &text,
        "AccessDenied: Request has expired",
    );
    let r = download(&short_get.url).await?;
    let status = r.status().as_u16();
    assert_refused(
        "GET after expiry",
        status,
        &r.text().await?,
        "AccessDenied: Request has expired",
    );
    objects.delete(&key).await?;
    Ok(())
}

#[tokio::test]
async fn nginx_lets_only_signed_requests_for_our_keys_through() -> anyhow::Result<()> {
    let objects = objects().await?;
    let key = new_key();
    let put = objects
        .presign_put(&key, "text/plain", 10, Duration::from_secs(300))
        .await?;
    let (status, text) = upload(&put, "text/plain", body(10)).await?;
    assert_eq!(status, 200, "{text}");
    let base = format!("{}/chat-attachments", base_url());
    let http = http();

    // No signature at all: refused by nginx before the store.
    let r = http.get(format!("{base}/{key}")).send().await?;
    assert_eq!(r.status().as_u16(), 403);
    // Listing the bucket, or a key of another shape: no such route.
    for path in ["", "?list-type=2", "notes.txt", "o/../o/x"] {
        let r = http.get(format!("{base}/{path}")).send().await?;
        assert_eq!(r.status().as_u16(), 404, "GET /chat-attachments/{path}");
    }
    // Other methods, even with a valid signature for the key: no.
    let get = objects.presign_get(&key, Duration::from_secs(300)).await?;
    let r = http.delete(&get.url).send().await?;
    assert_eq!(r.status().as_u16(), 403, "DELETE through nginx");
    assert!(objects.head(&key).await?.is_some(), "still there");
    objects.delete(&key).await?;
    Ok(())
}

/// The API presigns for the origin the client used (its `Host` through nginx): a page opened at
/// `localhost` gets `localhost` URLs, which work there; the same URL used through another
/// origin (`127.0.0.1`, the same nginx) is the store's 403, since the signature covers the host.
#[tokio::test]
async fn urls_name_the_origin_the_client_used() -> anyhow::Result<()> {
    let base = base_url();
    let addr: std::net::SocketAddr = base
        .strip_prefix("http://")
        .and_then(|a| a.trim_end_matches('/').parse().ok())
        .ok_or_else(|| anyhow::anyhow!("CHAT_BASE_URL {base} is not http://<ip>:<port>"))?;
    let local_host = format!("localhost:{}", addr.port());
    let local = format!("http://{local_host}");
    // `localhost` is this same nginx, whatever the resolver would say.
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .resolve("localhost", addr)
        .build()?;

    let api = chat_e2e::api();
    let alice = chat_e2e::register(&api, "origin").await?;
    let token = alice.access_token.as_str();
    let channel = api
        .create_channel(token, &chat_e2e::unique("origin-"), None)
        .await?
        .id;
    let path = format!("/api/v1/channels/{channel}/attachments");
    let bytes = body(1_000);

    // Declared through nginx's address, as a page opened at `localhost` would.
    let r = http
        .post(format!("{base}{path}"))
        .header("host", &local_host)
        .bearer_auth(token)
        .json(&serde_json::json!({
            "name": "notes.txt", "content_type": "text/plain", "size": bytes.len()
        }))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    let upload: chat_types::attachments::AttachmentUpload = r.json().await?;
    let id = upload.id;
    assert!(
        upload
            .upload
            .url
            .starts_with(&format!("{local}/chat-attachments/o/{id}?")),
        "{}",
        upload.upload.url
    );
    let put = |url: String| {
        let mut req = http.put(url).body(bytes.clone());
        for (k, v) in &upload.upload.headers {
            if k != "content-length" {
                req = req.header(k, v);
            }
        }
        req.send()
    };
    let complete_path = format!("{path}/{id}/complete");
    let complete = || api.call("POST", &complete_path, Some(token), None);

    // The same URL through the other origin (`Host: 127.0.0.1:<port>`): the store refuses it.
    let elsewhere = upload.upload.url.replacen(&local, &base, 1);
    assert!(elsewhere.starts_with(&format!("{base}/chat-attachments/")));
    let r = put(elsewhere).await?;
    let status = r.status().as_u16();
    assert_refused(
        "PUT through another origin",
        status,
        &r.text().await?,
        "SignatureDoesNotMatch",
    );
    let r = complete().await?;
    assert_eq!(r.status, 409, "nothing was stored: {:?}", r.body);

    // Through the origin it names: stored, and completed.
    let r = put(upload.upload.url.clone()).await?;
    let status = r.status().as_u16();
    assert_eq!(status, 200, "upload: {}", r.text().await?);
    let r = complete().await?;
    assert_eq!(r.status, 200, "complete: {:?}", r.body);

    // A download link asked for at `localhost` names it, and gives the bytes there.
    let r = http
        .get(format!("{base}{path}/{id}"))
        .header("host", &local_host)
        .bearer_auth(token)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let link: chat_types::attachments::AttachmentLink = r.json().await?;
    assert!(
        link.url
            .starts_with(&format!("{local}/chat-attachments/o/{id}?")),
        "{}",
        link.url
    );
    let r = http.get(&link.url).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await?.as_ref(), bytes.as_slice());
    let r = http.get(link.url.replacen(&local, &base, 1)).send().await?;
    let status = r.status().as_u16();
    assert_refused(
        "GET through another origin",
        status,
        &r.text().await?,
        "SignatureDoesNotMatch",
    );

    // Asked for at nginx's address, the link names that address.
    let r = api
        .call("GET", &format!("{path}/{id}"), Some(token), None)
        .await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let url = r.body["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with(&format!("{base}/chat-attachments/o/{id}?")),
        "{url}"
    );
    Ok(())
}
