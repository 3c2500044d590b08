//! The APNs endpoint: every request (any method, any path) goes through the checks, then the
//! scripts, is recorded, waits for its scripted delay and gets its answer with an `apns-id`.

use crate::answer::Answer;
use crate::checks::{self, Incoming, MAX_PAYLOAD_BYTES, Payload, Rules};
use crate::recorder::{RecordId, Recorded, RequestState};
use crate::state::{Inner, Shared};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(notify).with_state(shared)
}

/// Device tokens are matched without regard to case (APNs tokens are hex).
pub fn token_key(token: &str) -> String {
    token.to_ascii_lowercase()
}

async fn notify(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let _in_flight = shared.enter();
    let received_at_us = crate::now().as_micros() as u64;
    let generation = shared.generation();
    let (parts, body) = req.into_parts();
    let Some(payload) = read_payload(body).await else {
        // The client reset the stream while sending: nothing to answer or record.
        return StatusCode::BAD_REQUEST.into_response();
    };
    let apns_id = checks::answer_apns_id(&parts.headers);
    let now = crate::now();
    let path = parts.uri.path();

    let (answer, delay, record) = {
        let mut inner = shared.lock();
        let Inner {
            settings,
            tokens,
            behaviours,
            recorder,
        } = &mut *inner;
        let rules = Rules {
            topics: &settings.topics,
            tokens: settings.token_rules(),
        };
        let incoming = Incoming {
            version: parts.version,
            method: &parts.method,
            path,
            headers: &parts.headers,
            payload: &payload,
        };
        let (answer, delay) = match checks::check(&incoming, &rules, tokens, now.as_secs()) {
            Err(reject) => (reject.answer(), Duration::ZERO),
            Ok(()) => {
                // Passing the checks means the path names a token.
                let d = behaviours.next(&token_key(checks::device_token(path).unwrap_or("")));
                (d.answer, d.delay)
            }
        };
        let record = match checks::device_token(path) {
            Some(token) => Some(recorder.record(
                &token_key(token),
                Recorded {
                    received_at_us,
                    method: parts.method.to_string(),
                    path: path.to_string(),
                    headers: header_map(&parts.headers),
                    body: match &payload {
                        Payload::Read(b) => serde_json::from_slice(b).unwrap_or_default(),
                        Payload::TooLarge => serde_json::Value::Null,
                    },
                    status: answer.status(),
                    reason: answer.reason().map(str::to_string),
                    apns_id: apns_id.clone(),
                    delay_ms: delay.as_millis() as u64,
                    state: if delay.is_zero() {
                        RequestState::Answered
                    } else {
                        RequestState::Pending
                    },
                },
            )),
            None => {
                recorder.count(answer.status());
                None
            }
        };
        (answer, delay, record)
    };

    if !delay.is_zero() {
        let mut pending = Pending {
            shared: &shared,
            record,
            state: RequestState::Dropped,
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => pending.state = RequestState::Answered,
            // Cut: the connection is gone; `pending` marks the record dropped.
            _ = generation.cancelled() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    respond(&answer, &apns_id, crate::now().as_millis() as u64)
}

/// Marks a delayed request's record when the handler ends, however it ends (a dropped
/// future included: the client reset the stream or the connection went away).
struct Pending<'a> {
    shared: &'a Shared,
    record: Option<RecordId>,
    state: RequestState,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.record {
            self.shared.lock().recorder.set_state(id, self.state);
        }
    }
}

/// The body, or `None` if the stream failed. Stops reading past [`MAX_PAYLOAD_BYTES`].
async fn read_payload(body: Body) -> Option<Payload> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if buf.len() + chunk.len() > MAX_PAYLOAD_BYTES {
            return Some(Payload::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Some(Payload::Read(buf.into()))
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

fn respond(answer: &Answer, apns_id: &str, now_ms: u64) -> Response {
    let status = StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, answer.body(now_ms)).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(apns_id) {
        headers.insert("apns-id", v);
    }
    if matches!(answer, Answer::Ok(_)) {
        headers.remove(header::CONTENT_TYPE);
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_token::tests::token as jwt;
    use axum::http::{Method, Version};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    const ID: &str = "0b7e6c1e-4f6b-4d59-9c7a-3f1f5b0e9a11";

    fn request(method: Method, path: &str, auth: Option<&str>) -> Request {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .version(Version::HTTP_2)
            .header("apns-topic", "com.example.chat")
            .header("apns-id", ID);
        if let Some(a) = auth {
            b = b.header("authorization", format!("bearer {a}"));
        }
        b.body(Body::from(r#"{"aps":{"badge":1}}"#)).unwrap()
    }

    async fn send(shared: &Arc<Shared>, req: Request) -> (u16, Option<String>, String) {
        let resp = router(shared.clone()).oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let id = resp
            .headers()
            .get("apns-id")
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, id, String::from_utf8(body.to_vec()).unwrap())
    }

    fn good_jwt(p8: &str) -> String {
        jwt(p8, "STANDIN001", "TEAMSTANDIN", crate::now().as_secs())
    }

    #[tokio::test]
    async fn a_good_request_gets_200_with_its_apns_id_and_is_recorded() {
        let (shared, p8, dir) = crate::state::tests::shared();
        let (status, id, body) = send(
            &shared,
            request(Method::POST, "/3/device/AABB", Some(&good_jwt(&p8))),
        )
        .await;
        assert_eq!((status, id.as_deref(), body.as_str()), (200, Some(ID), ""));
        let recorded = shared.lock().recorder.requests("aabb");
        assert_eq!(recorded.len(), 1, "filed under the lower-case token");
        assert_eq!(recorded[0].body, json!({"aps": {"badge": 1}}));
        assert_eq!(recorded[0].state, RequestState::Answered);
        assert_eq!(recorded[0].reason, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn refused_requests_are_answered_with_an_apns_id_and_recorded_under_their_token() {
        let (shared, p8, dir) = crate::state::tests::shared();
        let (status, id, body) = send(&shared, request(Method::POST, "/3/device/aa", None)).await;
        assert_eq!((status, id.as_deref()), (403, Some(ID)));
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"reason": "MissingProviderToken"})
        );
        let (status, _, body) = send(&shared, request(Method::GET, "/3/device/aa", None)).await;
        assert_eq!(
            (status, body.as_str()),
            (405, r#"{"reason":"MethodNotAllowed"}"#)
        );
        let (status, id, body) = send(
            &shared,
            request(Method::POST, "/4/other", Some(&good_jwt(&p8))),
        )
        .await;
        assert_eq!((status, body.as_str()), (404, r#"{"reason":"BadPath"}"#));
        assert!(id.is_some());
        let statuses: Vec<u16> = shared
            .lock()
            .recorder
            .requests("aa")
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, [403, 405]);
        let stats = shared.stats();
        assert_eq!((stats.total_requests, stats.by_status[&404]), (3, 1));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_delayed_answer_is_recorded_pending_at_once_and_answered_after_its_delay() {
        let (shared, p8, dir) = crate::state::tests::shared();
        shared
            .lock()
            .behaviours
            .set_token(
                "cc",
                serde_json::from_value(json!({"respond": [{"status": 429, "reason": "TooManyRequests"}], "delay_ms": 200}))
                    .unwrap(),
            )
            .unwrap();
        let req = request(Method::POST, "/3/device/cc", Some(&good_jwt(&p8)));
        let task = tokio::spawn({
            let shared = shared.clone();
            async move { send(&shared, req).await }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while shared.lock().recorder.requests("cc").is_empty() {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            shared.lock().recorder.requests("cc")[0].state,
            RequestState::Pending
        );
        assert_eq!(shared.stats().in_flight, 1);
        let (status, _, body) = task.await.unwrap();
        assert_eq!(
            (status, body.as_str()),
            (429, r#"{"reason":"TooManyRequests"}"#)
        );
        let rec = &shared.lock().recorder.requests("cc")[0];
        assert_eq!(
            (rec.state, rec.delay_ms, rec.status),
            (RequestState::Answered, 200, 429)
        );
        assert_eq!(shared.stats().max_in_flight, 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
