//! Hardening of the REST side through nginx (issue 12): bad bytes are 4xx, nginx's own errors
//! are JSON, the web page carries security headers, tokens stay out of the access log, logins and
//! registrations are throttled, joins and leaves are announced again when retried.
//!
//! Plain `reqwest` against the running native stack (`CHAT_BASE_URL`, default
//! http://127.0.0.1:8080). Per-IP limits do not apply to 127.0.0.1 (the tests and benchmarks of
//! this machine): the throttling tests connect from other loopback addresses (127.x.y.z).

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

fn base() -> String {
    std::env::var("CHAT_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

fn url(path: &str) -> String {
    format!("{}{path}", base())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A client whose connections come from a loopback address of its own (127.x.y.z, never
/// 127.0.0.1), so per-IP limits see a fresh client each run.
fn client_from_fresh_ip() -> (Client, IpAddr) {
    let b = uuid::Uuid::new_v4().into_bytes();
    let ip = IpAddr::V4(Ipv4Addr::new(127, b[0] | 1, b[1], b[2] | 2));
    let c = Client::builder()
        .local_address(ip)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    (c, ip)
}

async fn body(r: Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, v)
}

fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

/// Register a fresh user from 127.0.0.1; returns (username, access token, user id).
async fn register(c: &Client) -> (String, String, String) {
    let name = unique("h.");
    let r = c
        .post(url("/api/v1/auth/register"))
        .json(&json!({"username": name, "password": PW}))
        .send()
        .await
        .expect("register");
    let (status, _, v) = body(r).await;
    assert_eq!(status, 201, "register: {v}");
    (
        name,
        v["access_token"].as_str().unwrap().to_owned(),
        v["user"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn nul_characters_are_refused_as_bad_input_not_500() {
    let c = client();
    let (name, token, _) = register(&c).await;
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "login username",
            c.post(url("/api/v1/auth/login"))
                .json(&json!({"username": "ab\u{0000}cd", "password": PW})),
        ),
        (
            "login password",
            c.post(url("/api/v1/auth/login"))
                .json(&json!({"username": name, "password": "ab\u{0000}cdefgh"})),
        ),
        (
            "register display name",
            c.post(url("/api/v1/auth/register")).json(
                &json!({"username": unique("h."), "password": PW, "display_name": "a\u{0000}b"}),
            ),
        ),
        (
            "user search",
            c.get(url("/api/v1/users?query=a%00")).bearer_auth(&token),
        ),
        (
            "channel search",
            c.get(url("/api/v1/channels/search?query=a%00"))
                .bearer_auth(&token),
        ),
        (
            "channel description",
            c.post(url("/api/v1/channels"))
                .bearer_auth(&token)
                .json(&json!({"name": unique("c-"), "description": "a\u{0000}b"})),
        ),
        (
            "refresh token",
            c.post(url("/api/v1/auth/refresh"))
                .json(&json!({"refresh_token": "a\u{0000}b"})),
        ),
    ];
    for (what, req) in cases {
        let (status, _, v) = body(req.send().await.unwrap()).await;
        assert_eq!(status, 400, "{what}: {v}");
        assert_eq!(code(&v), Some("nul_character"), "{what}: {v}");
    }
    // Fields the API does not read are ignored, whatever they hold (the OpenAPI document
    // allows additional properties).
    let r = c
        .post(url("/api/v1/channels"))
        .bearer_auth(&token)
        .json(&json!({"name": unique("c-"), "extra\u{0000}": "a\u{0000}b", "more": ["\u{0000}"]}))
        .send()
        .await
        .unwrap();
    let (status, _, v) = body(r).await;
    assert_eq!(status, 201, "unknown fields with NUL characters: {v}");
}

#[tokio::test]
async fn bodies_between_1_and_2_mib_always_get_a_json_413() {
    let c = client();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for size in [1_100_000, 1_500_000, 1_900_000].repeat(8) {
        let big = format!(r#"{{"username":"x","password":"{}"}}"#, "p".repeat(size));
        let r = c
            .post(url("/api/v1/auth/register"))
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap();
        let (status, _, v) = body(r).await;
        *statuses.entry(status.as_u16()).or_default() += 1;
        if status == 413 {
            assert_eq!(code(&v), Some("payload_too_large"), "{v}");
        }
    }
    println!("statuses of 24 oversized bodies: {statuses:?}");
    assert_eq!(statuses.keys().collect::<Vec<_>>(), vec![&413]);
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let c = client();
    for (method, path, allowed) in [
        (reqwest::Method::DELETE, "/api/v1/auth/login", "POST"),
        (reqwest::Method::PUT, "/api/v1/channels", "GET"),
        (reqwest::Method::PATCH, "/api/v1/users/me", "GET"),
    ] {
        let r = c.request(method.clone(), url(path)).send().await.unwrap();
        let (status, headers, v) = body(r).await;
        assert_eq!(status, 405, "{method} {path}: {v}");
        assert_eq!(code(&v), Some("method_not_allowed"), "{method} {path}: {v}");
        let allow = headers
            .get("allow")
            .and_then(|a| a.to_str().ok())
            .unwrap_or_default();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
    }
}

#[tokio::test]
async fn nginx_answers_its_own_errors_with_json_bodies() {
    let c = client();
    let long = format!("/api/v1/users?query={}", "x".repeat(20_000));
    let checks: Vec<(u16, reqwest::RequestBuilder)> = vec![
        (414, c.get(url(&long))),
        (405, c.post(url("/favicon.svg")).body("x")),
        (
            404,
            c.get(url(&format!("/assets/{}.js", unique("missing-")))),
        ),
        (
            400,
            c.get(url("/api/v1/users/me"))
                .header("x-big", "y".repeat(40_000)),
        ),
    ];
    for (want, req) in checks {
        let r = req.send().await.unwrap();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (status, headers, v) = body(r).await;
        assert_eq!(status.as_u16(), want, "{v}");
        assert!(ctype.starts_with("application/json"), "{want}: {ctype}");
        assert!(code(&v).is_some(), "{want}: {v}");
        if want == 405 {
            assert!(headers.contains_key("allow"), "405 without Allow");
        }
    }
}

#[tokio::test]
async fn the_web_page_carries_security_headers() {
    let c = client();
    for path in ["/", "/some/client/route"] {
        let r = c.get(url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = get("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: CSP {csp:?}");
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "{path}: CSP {csp:?}"
        );
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{path}");
    }
}

fn access_log_path() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("CHAT_NGINX_ACCESS_LOG") {
        return p.into();
    }
    let stack = std::env::var("CHAT_STACK_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/chat-stack",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    std::path::Path::new(&stack).join("run/logs/nginx-access.log")
}

#[tokio::test]
async fn access_tokens_never_reach_the_access_log() {
    let path = access_log_path();
    let before = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set CHAT_NGINX_ACCESS_LOG)", path.display()))
        .len();
    let marker = unique("secrettoken");
    let c = client();
    // A plain GET (no upgrade) is refused by the gateway, and logged like any request.
    let r = c
        .get(url(&format!("/ws?token={marker}")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read(&path).unwrap();
        let new = String::from_utf8_lossy(&log[before as usize..]).into_owned();
        assert!(
            !new.contains(&marker),
            "the token is in the access log:\n{new}"
        );
        if new.contains("\"GET /ws HTTP/1.1\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no /ws line in the access log:\n{new}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn login(c: &Client, username: &str, password: &str) -> (StatusCode, Option<u64>, Value) {
    let r = c
        .post(url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let (status, headers, v) = body(r).await;
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry_after, v)
}

fn assert_throttled(status: StatusCode, retry_after: Option<u64>, v: &Value) {
    assert_eq!(status, 429, "{v}");
    assert_eq!(code(v), Some("rate_limited"), "{v}");
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After {retry_after:?}"
    );
}

#[tokio::test]
async fn wrong_passwords_for_one_account_are_throttled() {
    let c = client();
    let (name, _, _) = register(&c).await;
    let (other, _, _) = register(&c).await;
    let mut attempts = 0;
    let (status, retry_after, v) = loop {
        attempts += 1;
        let (status, retry_after, v) = login(&c, &name, "wrong password").await;
        if status != 401 || attempts == 50 {
            break (status, retry_after, v);
        }
    };
    println!("throttled after {attempts} wrong passwords");
    assert_throttled(status, retry_after, &v);
    // The account stays throttled, even for its right password; other accounts are not.
    let (status, retry_after, v) = login(&c, &name, PW).await;
    assert_throttled(status, retry_after, &v);
    let (status, _, v) = login(&c, &other, PW).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn logins_from_one_address_are_throttled() {
    let (c, ip) = client_from_fresh_ip();
    let mut attempts = 0;
    let (status, retry_after, v) = loop {
        attempts += 1;
        // A new unknown username each time: only the per-address limit can stop this.
        let (status, retry_after, v) = login(&c, &unique("nobody."), PW).await;
        if status != 401 || attempts == 200 {
            break (status, retry_after, v);
        }
    };
    println!("{ip}: throttled after {attempts} logins");
    assert_throttled(status, retry_after, &v);
    // Another address is not affected.
    let (c2, _) = client_from_fresh_ip();
    let (status, _, v) = login(&c2, &unique("nobody."), PW).await;
    assert_eq!(status, 401, "{v}");
}

#[tokio::test]
async fn registrations_from_one_address_are_throttled() {
    let (c, ip) = client_from_fresh_ip();
    let mut attempts = 0;
    let (status, retry_after, v) = loop {
        attempts += 1;
        let r = c
            .post(url("/api/v1/auth/register"))
            .json(&json!({"username": unique("h."), "password": PW}))
            .send()
            .await
            .unwrap();
        let (status, headers, v) = body(r).await;
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        if status != 201 || attempts == 100 {
            break (status, retry_after, v);
        }
    };
    println!("{ip}: throttled after {attempts} registrations");
    assert_throttled(status, retry_after, &v);
}

#[tokio::test]
async fn display_names_refuse_format_controls_and_passwords_refuse_only_spaces() {
    let c = client();
    for (display_name, password, want) in [
        ("\u{202e}gnp.exe admin", PW, Some("invalid_display_name")),
        ("zero\u{200b}width", PW, Some("invalid_display_name")),
        ("bom\u{feff}", PW, Some("invalid_display_name")),
        ("line\u{2028}sep", PW, Some("invalid_display_name")),
        ("tab\there", PW, Some("invalid_display_name")),
        (
            "Family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
            PW,
            None,
        ),
        ("Zoë 🌸 (ゾエ)", PW, None),
        ("Spaces", "        ", Some("invalid_password")),
        ("Spaces", " \t \u{3000}  \n  ", Some("invalid_password")),
    ] {
        let r = c
            .post(url("/api/v1/auth/register"))
            .json(&json!({"username": unique("h."), "password": password, "display_name": display_name}))
            .send()
            .await
            .unwrap();
        let (status, _, v) = body(r).await;
        match want {
            Some(w) => {
                assert_eq!(status, 400, "{display_name:?}: {v}");
                assert_eq!(code(&v), Some(w), "{display_name:?}: {v}");
            }
            None => {
                assert_eq!(status, 201, "{display_name:?}: {v}");
                assert_eq!(v["user"]["display_name"], display_name);
            }
        }
    }
}

/// A consumer of the whole `messages` topic from its current end.
fn tail_topic() -> BaseConsumer {
    let brokers = chat_e2e::kafka_brokers();
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("hardening-api-"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("kafka consumer");
    let topic = chat_types::bus::TOPIC;
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut tpl = TopicPartitionList::new();
    for p in meta.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .expect("watermarks");
        tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

#[tokio::test]
async fn repeated_joins_and_leaves_announce_the_membership_again() {
    use chat_types::bus::{BusRecord, MembershipChange};
    let consumer = tail_topic();
    let c = client();
    let (_, owner, _) = register(&c).await;
    let (_, member, member_id) = register(&c).await;
    let r = c
        .post(url("/api/v1/channels"))
        .bearer_auth(&owner)
        .json(&json!({"name": unique("retry-")}))
        .send()
        .await
        .unwrap();
    let (status, _, ch) = body(r).await;
    assert_eq!(status, 201, "{ch}");
    let channel = ch["id"].as_str().unwrap().to_owned();
    // A retried join or leave (its first announcement may have failed after the commit) finds
    // the change already made, and must announce it again.
    for action in ["join", "join", "leave", "leave"] {
        let r = c
            .post(url(&format!("/api/v1/channels/{channel}/{action}")))
            .bearer_auth(&member)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{action}: {}", r.status());
    }
    let want = [
        MembershipChange::Joined,
        MembershipChange::Joined,
        MembershipChange::Left,
        MembershipChange::Left,
    ];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.len() < want.len() && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("kafka");
        let Some(payload) = m.payload() else { continue };
        if let Ok(BusRecord::Membership(ms)) = serde_json::from_slice::<BusRecord>(payload)
            && ms.channel_id.to_string() == channel
            && ms.user_id.to_string() == member_id
        {
            seen.push(ms.change);
        }
    }
    assert_eq!(seen, want);
}
