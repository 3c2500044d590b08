//! The stand-in as the notifier meets it: over TLS and HTTP/2 on port 0, with a reqwest client
//! built like the production APNs client (rustls, HTTP/2 only, trusting only `ca.pem`) and a
//! provider token signed with the generated `AuthKey_STANDIN.p8`.

use apns_standin::{App, Config};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Running {
    dir: PathBuf,
    apns: String,
    control: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(dir: &Path, hostnames: &[&str]) -> Running {
        let mut cfg = Config::for_tests(dir.to_path_buf());
        cfg.hostnames = hostnames.iter().map(|h| h.to_string()).collect();
        let app = App::build(cfg).await.expect("build");
        let apns = format!("https://{}", app.tls_addr());
        let control = format!("http://{}", app.control_addr());
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        let running = Running {
            dir: dir.to_path_buf(),
            apns,
            control,
            stop,
            task,
        };
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let r = http
                .get(format!("{}/healthz", running.control))
                .send()
                .await;
            if matches!(&r, Ok(r) if r.status() == 200) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "not healthy: {r:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        running
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("stops in time")
            .expect("no panic")
            .expect("no error");
    }

    /// A client like the notifier's: HTTP/2 only, trusting only the stand-in's CA.
    fn apns_client(&self) -> reqwest::Client {
        let ca = std::fs::read(self.dir.join("ca.pem")).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .http2_prior_knowledge()
            .timeout(TIMEOUT)
            .build()
            .unwrap()
    }

    /// A provider token from the generated `.p8`, as the notifier makes it.
    fn jwt(&self) -> String {
        let p8 = std::fs::read(self.dir.join("AuthKey_STANDIN.p8")).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("STANDIN001".into());
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        jsonwebtoken::encode(
            &header,
            &json!({ "iss": "TEAMSTANDIN", "iat": iat }),
            &EncodingKey::from_ec_pem(&p8).unwrap(),
        )
        .unwrap()
    }

    async fn push(
        &self,
        client: &reqwest::Client,
        token: &str,
        jwt: &str,
        apns_id: &str,
    ) -> (u16, Option<String>, String, reqwest::Version) {
        let r = client
            .post(format!("{}/3/device/{token}", self.apns))
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", "com.example.chat")
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", "0")
            .header("apns-id", apns_id)
            .header("content-type", "application/json")
            .body(r#"{"aps":{"alert":{"title":"t","body":"b"},"badge":3}}"#)
            .send()
            .await
            .expect("answer");
        let version = r.version();
        let status = r.status().as_u16();
        let id = r
            .headers()
            .get("apns-id")
            .map(|v| v.to_str().unwrap().to_string());
        (status, id, r.text().await.unwrap(), version)
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.control));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.timeout(TIMEOUT).send().await.expect("control answer");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let text = r.text().await.unwrap();
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("apns-standin-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}

#[tokio::test]
async fn the_production_client_shape_gets_apns_answers_over_http2() {
    let dir = temp_dir();
    let s = Running::start(&dir, &["127.0.0.1", "localhost"]).await;
    let client = s.apns_client();
    let jwt = s.jwt();

    // Success: 200, empty body, our apns-id echoed, over HTTP/2.
    let ok_token = token();
    let id = uuid::Uuid::new_v4().to_string();
    let (status, echoed, body, version) = s.push(&client, &ok_token, &jwt, &id).await;
    assert_eq!(
        (status, echoed.as_deref(), body.as_str()),
        (200, Some(id.as_str()), "")
    );
    assert_eq!(version, reqwest::Version::HTTP_2);

    // A forged token: same claims, another key.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("STANDIN001".into());
    let forged = jsonwebtoken::encode(
        &header,
        &json!({"iss": "TEAMSTANDIN", "iat": SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()}),
        &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let id2 = uuid::Uuid::new_v4().to_string();
    let (status, echoed, body, _) = s.push(&client, &ok_token, &forged, &id2).await;
    assert_eq!(status, 403);
    assert_eq!(echoed.as_deref(), Some(id2.as_str()));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"reason": "InvalidProviderToken"})
    );

    // Scripted: 410 with its timestamp, then BadDeviceToken for ever.
    let gone = token();
    s.control(
        reqwest::Method::PUT,
        &format!("/tokens/{gone}/behaviour"),
        Some(json!({
            "respond": [{"status": 410, "reason": "Unregistered", "timestamp_ms": 1764690000000u64}],
            "then": {"status": 400, "reason": "BadDeviceToken"}
        })),
    )
    .await;
    let (status, _, body, _) = s
        .push(&client, &gone, &jwt, &uuid::Uuid::new_v4().to_string())
        .await;
    assert_eq!(status, 410);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"reason": "Unregistered", "timestamp": 1764690000000u64})
    );
    for _ in 0..2 {
        let (status, _, body, _) = s
            .push(&client, &gone, &jwt, &uuid::Uuid::new_v4().to_string())
            .await;
        assert_eq!(
            (status, body.as_str()),
            (400, r#"{"reason":"BadDeviceToken"}"#)
        );
    }

    // Every request is recorded under its token, errors included, in arrival order.
    let recorded = s
        .control(
            reqwest::Method::GET,
            &format!("/tokens/{ok_token}/requests"),
            None,
        )
        .await;
    let recorded = recorded.as_array().unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0]["status"], 200);
    assert_eq!(recorded[0]["apns_id"], id);
    assert_eq!(recorded[0]["headers"]["apns-topic"], "com.example.chat");
    assert_eq!(
        recorded[0]["headers"]["authorization"],
        format!("bearer {jwt}")
    );
    assert_eq!(recorded[0]["body"]["aps"]["badge"], 3);
    assert_eq!(recorded[0]["state"], "answered");
    assert_eq!(
        (
            recorded[1]["status"].as_u64(),
            recorded[1]["reason"].as_str()
        ),
        (Some(403), Some("InvalidProviderToken"))
    );
    assert!(recorded[0]["received_at_us"].as_u64() <= recorded[1]["received_at_us"].as_u64());
    let stats = s.control(reqwest::Method::GET, "/stats", None).await;
    assert_eq!(stats["total_requests"], 5);
    assert_eq!(stats["by_status"]["410"], 1);
    s.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_cut_drops_requests_in_flight_and_the_client_reconnects() {
    let dir = temp_dir();
    let s = Running::start(&dir, &["127.0.0.1"]).await;
    let client = s.apns_client();
    let jwt = s.jwt();
    let slow = token();
    s.control(
        reqwest::Method::PUT,
        &format!("/tokens/{slow}/behaviour"),
        Some(json!({"delay_ms": 5000})),
    )
    .await;
    let pending = {
        let (client, jwt, apns, slow) = (client.clone(), jwt.clone(), s.apns.clone(), slow.clone());
        tokio::spawn(async move {
            client
                .post(format!("{apns}/3/device/{slow}"))
                .header("authorization", format!("bearer {jwt}"))
                .header("apns-topic", "com.example.chat")
                .body("{}")
                .send()
                .await
        })
    };
    // Wait until it is in the stand-in's hands, then cut.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while s.control(reqwest::Method::GET, "/stats", None).await["in_flight"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow request never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = s.control(reqwest::Method::POST, "/cut", None).await;
    assert_eq!(report["connections_dropped"], 1, "{report}");
    assert_eq!(report["requests_in_flight"], 1, "{report}");
    let cut_answer = tokio::time::timeout(TIMEOUT, pending)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cut_answer.is_err(),
        "the request in flight has no answer: {cut_answer:?}"
    );
    let recorded = s
        .control(
            reqwest::Method::GET,
            &format!("/tokens/{slow}/requests"),
            None,
        )
        .await;
    assert_eq!(recorded[0]["state"], "dropped");

    // Listening again on the same port: the same client reconnects.
    let id = uuid::Uuid::new_v4().to_string();
    let (status, echoed, _, _) = s.push(&client, &token(), &jwt, &id).await;
    assert_eq!((status, echoed), (200, Some(id)));
    s.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_restart_with_other_hostnames_keeps_the_ca_and_the_provider_key() {
    let dir = temp_dir();
    let first = Running::start(&dir, &["localhost"]).await;
    let jwt = first.jwt();
    let ca_before = std::fs::read(dir.join("ca.pem")).unwrap();
    first.stop().await;

    let second = Running::start(&dir, &["127.0.0.1", "apns-standin"]).await;
    assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca_before);
    // The old CA is trusted, the old token still valid, the new leaf names 127.0.0.1.
    let id = uuid::Uuid::new_v4().to_string();
    let (status, _, body, _) = second
        .push(&second.apns_client(), &token(), &jwt, &id)
        .await;
    assert_eq!((status, body.as_str()), (200, ""));
    second.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
