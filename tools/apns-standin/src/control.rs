//! The control API (plain HTTP, JSON) through which tests script answers and read what the
//! stand-in received. Routes:
//!
//! | route | does |
//! |---|---|
//! | `GET /healthz` | 200 while the TLS listener is up, else 503 |
//! | `GET`/`PUT /settings` | read / change [`Settings`] (partial: only the fields given) |
//! | `PUT /tokens/{token}/behaviour` | script a token ([`TokenBehaviour`]) → 204 |
//! | `DELETE /tokens/{token}` | forget its script and records → 204 |
//! | `GET /tokens/{token}/requests` | its records in arrival order ([`Recorded`]) |
//! | `GET`/`PUT`/`DELETE /behaviour` | the window for all tokens ([`GlobalBehaviour`]) |
//! | `GET`/`DELETE /stats` | counters ([`Stats`]) / zero them |
//! | `POST /cut` | drop every TLS connection, listen again; answers once listening ([`CutReport`]) |
//!
//! Errors are `{"error": "…"}` with 400 (bad JSON or values) or 503.

use crate::apns::token_key;
use crate::behaviour::{GlobalBehaviour, TokenBehaviour};
use crate::recorder::{Recorded, Stats};
use crate::state::{Settings, SettingsPatch, Shared};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long `POST /cut` waits for the listener to come back.
const CUT_TIMEOUT: Duration = Duration::from_secs(15);

/// `POST /cut`'s answer.
#[derive(Clone, Debug, Serialize)]
pub struct CutReport {
    /// TLS connections that were open.
    pub connections_dropped: u64,
    /// Requests that were in the handler (most of them in a scripted delay).
    pub requests_in_flight: u64,
    /// Cuts so far, this one included.
    pub cuts: u64,
}

/// A cut asked of the TLS listener's supervisor; it answers once listening again.
pub type CutRequest = oneshot::Sender<Result<CutReport, String>>;

#[derive(Clone)]
struct Ctl {
    shared: Arc<Shared>,
    cuts: mpsc::Sender<CutRequest>,
}

pub fn router(shared: Arc<Shared>, cuts: mpsc::Sender<CutRequest>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/tokens/{token}/behaviour", put(put_token_behaviour))
        .route("/tokens/{token}", axum::routing::delete(delete_token))
        .route("/tokens/{token}/requests", get(get_requests))
        .route(
            "/behaviour",
            get(get_global).put(put_global).delete(delete_global),
        )
        .route("/stats", get(get_stats).delete(delete_stats))
        .route("/cut", post(cut))
        .with_state(Ctl { shared, cuts })
}

struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, msg.into())
}

/// JSON bodies without insisting on a content type (handy with curl).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("body: {e}")))
}

async fn healthz(State(c): State<Ctl>) -> StatusCode {
    if c.shared.is_listening() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn get_settings(State(c): State<Ctl>) -> Json<Settings> {
    Json(c.shared.lock().settings.clone())
}

async fn put_settings(State(c): State<Ctl>, body: Bytes) -> Result<Json<Settings>, ControlError> {
    let patch: SettingsPatch = parse(&body)?;
    let mut inner = c.shared.lock();
    inner.settings.apply(patch).map_err(bad)?;
    Ok(Json(inner.settings.clone()))
}

async fn put_token_behaviour(
    State(c): State<Ctl>,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ControlError> {
    let b: TokenBehaviour = parse(&body)?;
    if let Some(why) = b.invalid() {
        return Err(bad(why));
    }
    c.shared
        .lock()
        .behaviours
        .set_token(&token_key(&token), b)
        .map_err(bad)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_token(State(c): State<Ctl>, Path(token): Path<String>) -> StatusCode {
    let key = token_key(&token);
    let mut inner = c.shared.lock();
    inner.behaviours.forget_token(&key);
    inner.recorder.forget(&key);
    StatusCode::NO_CONTENT
}

async fn get_requests(State(c): State<Ctl>, Path(token): Path<String>) -> Json<Vec<Recorded>> {
    Json(c.shared.lock().recorder.requests(&token_key(&token)))
}

async fn get_global(State(c): State<Ctl>) -> Json<Option<GlobalBehaviour>> {
    Json(c.shared.lock().behaviours.global().cloned())
}

async fn put_global(State(c): State<Ctl>, body: Bytes) -> Result<StatusCode, ControlError> {
    let b: GlobalBehaviour = parse(&body)?;
    if let Some(why) = b.invalid() {
        return Err(bad(why));
    }
    c.shared.lock().behaviours.set_global(b);
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_global(State(c): State<Ctl>) -> StatusCode {
    c.shared.lock().behaviours.set_global(GlobalBehaviour {
        next_requests: 0,
        respond: None,
        delay_ms: 0,
    });
    StatusCode::NO_CONTENT
}

async fn get_stats(State(c): State<Ctl>) -> Json<Stats> {
    Json(c.shared.stats())
}

async fn delete_stats(State(c): State<Ctl>) -> StatusCode {
    c.shared.reset_stats();
    StatusCode::NO_CONTENT
}

async fn cut(State(c): State<Ctl>) -> Result<Json<CutReport>, ControlError> {
    let unavailable = |msg: &str| ControlError(StatusCode::SERVICE_UNAVAILABLE, msg.into());
    let (tx, rx) = oneshot::channel();
    c.cuts
        .send(tx)
        .await
        .map_err(|_| unavailable("shutting down"))?;
    match tokio::time::timeout(CUT_TIMEOUT, rx).await {
        Ok(Ok(Ok(report))) => Ok(Json(report)),
        Ok(Ok(Err(e))) => Err(unavailable(&e)),
        Ok(Err(_)) => Err(unavailable("shutting down")),
        Err(_) => Err(unavailable("not listening again within 15 s")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    async fn call(r: &Router, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        let resp = r.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    #[tokio::test]
    async fn scripts_settings_and_records_through_the_control_api() {
        let (shared, _, dir) = crate::state::tests::shared();
        let (tx, rx) = mpsc::channel(1);
        let r = router(shared.clone(), tx);

        assert_eq!(
            call(&r, Method::GET, "/healthz", None).await.0,
            503,
            "not listening yet"
        );
        let script =
            json!({"respond": [{"status": 410, "reason": "Unregistered"}], "delay_ms": 10});
        assert_eq!(
            call(&r, Method::PUT, "/tokens/AB/behaviour", Some(script))
                .await
                .0,
            204
        );
        assert_eq!(shared.lock().behaviours.next("ab").answer.status(), 410);

        let (status, err) = call(
            &r,
            Method::PUT,
            "/tokens/ab/behaviour",
            Some(json!({"respond": [{"status": 700, "reason": "x"}]})),
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            err["error"].as_str().unwrap().contains("status 700"),
            "{err}"
        );
        assert_eq!(
            call(&r, Method::PUT, "/behaviour", Some(json!({"nope": 1})))
                .await
                .0,
            400
        );

        let (status, settings) = call(
            &r,
            Method::PUT,
            "/settings",
            Some(json!({"token_max_age_secs": 30})),
        )
        .await;
        assert_eq!(
            (status, settings["token_max_age_secs"].as_u64()),
            (200, Some(30))
        );
        assert_eq!(settings["topics"], json!(["com.example.chat"]));

        let global =
            json!({"next_requests": 2, "respond": {"status": 503, "reason": "ServiceUnavailable"}});
        assert_eq!(
            call(&r, Method::PUT, "/behaviour", Some(global.clone()))
                .await
                .0,
            204
        );
        assert_eq!(
            call(&r, Method::GET, "/behaviour", None).await.1,
            json!({"next_requests": 2, "respond": {"status": 503, "reason": "ServiceUnavailable"}, "delay_ms": 0})
        );
        assert_eq!(call(&r, Method::DELETE, "/behaviour", None).await.0, 204);
        assert_eq!(
            call(&r, Method::GET, "/behaviour", None).await.1,
            Value::Null
        );

        assert_eq!(
            call(&r, Method::GET, "/tokens/ab/requests", None).await,
            (200, json!([]))
        );
        assert_eq!(call(&r, Method::DELETE, "/tokens/ab", None).await.0, 204);
        assert_eq!(
            shared.lock().behaviours.next("ab").answer,
            crate::answer::Answer::OK
        );
        let (status, stats) = call(&r, Method::GET, "/stats", None).await;
        assert_eq!((status, stats["total_requests"].as_u64()), (200, Some(0)));

        drop(rx);
        assert_eq!(
            call(&r, Method::POST, "/cut", None).await.0,
            503,
            "no listener to cut"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
