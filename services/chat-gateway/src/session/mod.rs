//! One WebSocket connection: authentication at the upgrade, then a reader (client frames) and a
//! writer (everything sent to the client, in order) that end together.
//!
//! # Layout
//! - [`reader`]: client frames: `send` through [`crate::admission`], `resume`, `ping`.
//! - [`resume`]: turning a `resume` frame into positions to catch up from.
//! - [`writer`]: the socket's sending half, driven by the [`sequencer`].
//! - [`sequencer`]: the ordering logic (replays dropped, gaps filled, hold until resumed), pure.

mod reader;
mod resume;
pub mod sequencer;
mod writer;

use crate::Shared;
use crate::hub::{ConnHandle, ConnState, Outbound};
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chat_common::auth::{Access, TokenError, bearer_token};
use chat_types::error_code;
use chat_types::ws::ServerFrame;
use chat_types::{ErrorBody, UserId};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Open a socket for a client authorised by, in this order: an `Authorization: Bearer` header,
/// a single-use `?ticket=` (from `POST /api/v1/ws-tickets`), or `?token=` (API.md). A revoked
/// session is refused like an expired token, with its own code.
pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    // `?resume=1`: the client's first frame will be a `resume`; hold live messages until it is
    // served, however long that takes on a busy gateway (without it: at most `resume_hold_ms`).
    let resume_announced = match query.get("resume").map(String::as_str) {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(ErrorBody::new(
                    error_code::INVALID_QUERY,
                    "resume must be 1 or 0 (true or false)",
                )),
            )
                .into_response();
        }
    };
    let access = match authorise(&shared, &headers, &query).await {
        Ok(a) => a,
        Err(refusal) => return refusal,
    };
    let (user, expires) = (access.user, access.expires);
    if shared.hub.connections_of(&user) >= shared.cfg.max_connections_per_user {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(ErrorBody::new(
                error_code::TOO_MANY_CONNECTIONS,
                "this user has too many open connections on this gateway",
            )),
        )
            .into_response();
    }
    if shared.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(ErrorBody::new(
                error_code::UNAVAILABLE,
                "this gateway is shutting down",
            )),
        )
            .into_response();
    }
    let cfg = &shared.cfg;
    ws.read_buffer_size(cfg.read_buffer_bytes)
        .write_buffer_size(cfg.write_buffer_bytes)
        .max_write_buffer_size(cfg.write_buffer_bytes.max(cfg.max_frame_bytes) * 4)
        .max_message_size(cfg.max_frame_bytes)
        .max_frame_size(cfg.max_frame_bytes)
        .on_upgrade(move |socket| run(shared, user, access.sid, expires, resume_announced, socket))
}

/// Who the upgrade is for, or the refusal to answer with.
async fn authorise(
    shared: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Access, Response> {
    let header = match bearer_token(headers) {
        Ok(t) => t,
        Err(_) => {
            return Err(unauthorized(
                error_code::INVALID_TOKEN,
                "the access token is invalid",
            ));
        }
    };
    let access = match (header, query.get("ticket")) {
        (None, Some(ticket)) => {
            // Taken (GETDEL) whatever happens next: a ticket opens at most one socket.
            let grant = shared
                .tickets
                .take(ticket)
                .await
                .map_err(|e| redis_unavailable(&e))?;
            let Some(grant) = grant else {
                return Err(unauthorized(
                    error_code::INVALID_TICKET,
                    "the ticket is unknown, expired or already used; ask for a new one",
                ));
            };
            if grant.expires <= chrono::Utc::now().timestamp() {
                return Err(unauthorized(
                    error_code::TOKEN_EXPIRED,
                    "the access token the ticket was made with has expired",
                ));
            }
            Access {
                user: grant.user,
                sid: grant.sid,
                expires: grant.expires,
            }
        }
        (header, _) => {
            let Some(token) = header.or_else(|| query.get("token").map(String::as_str)) else {
                return Err(unauthorized(
                    error_code::MISSING_TOKEN,
                    "an access token is required (Authorization header, ?ticket= or ?token=)",
                ));
            };
            match shared.keys.verify(token) {
                Ok(a) => a,
                Err(TokenError::Expired) => {
                    return Err(unauthorized(
                        error_code::TOKEN_EXPIRED,
                        "the access token has expired",
                    ));
                }
                Err(TokenError::Invalid) => {
                    return Err(unauthorized(
                        error_code::INVALID_TOKEN,
                        "the access token is invalid",
                    ));
                }
            }
        }
    };
    if let Some(sid) = access.sid
        && shared
            .revocations
            .is_revoked(sid)
            .await
            .map_err(|e| redis_unavailable(&e))?
    {
        return Err(unauthorized(
            error_code::TOKEN_REVOKED,
            "this session has ended (logged out, or its refresh token was reused); log in again",
        ));
    }
    Ok(access)
}

fn redis_unavailable(e: &chat_store::redis_conn::RedisError) -> Response {
    tracing::warn!(error = %e, "redis unavailable at an upgrade");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(ErrorBody::new(
            error_code::UNAVAILABLE,
            "credentials cannot be checked now; retry",
        )),
    )
        .into_response()
}

fn unauthorized(code: &str, message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(ErrorBody::new(code, message)),
    )
        .into_response()
}

#[tracing::instrument(name = "connection", skip_all, fields(user_id = %user, conn_id))]
async fn run(
    shared: Arc<Shared>,
    user: UserId,
    sid: Option<Uuid>,
    expires: i64,
    resume_announced: bool,
    socket: WebSocket,
) {
    let _in_flight = shared.tasks.token();
    let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
    tracing::Span::current().record("conn_id", id);
    let (tx, rx) = mpsc::channel(shared.cfg.queue_capacity);
    let handle = ConnHandle {
        id,
        sid,
        tx,
        state: Arc::new(ConnState::new(
            shared.shutdown.child_token(),
            shared.cfg.queue_bytes,
        )),
    };
    // `ready` is queued first, before the connection is registered: a push that comes while
    // the registration is written (a peer's presence, a message) must not overtake it.
    let connection_id = format!("{}:{}", shared.cfg.id, id);
    handle
        .send(Outbound::Frame(
            serde_json::to_string(&ServerFrame::Ready {
                user_id: user,
                connection_id,
            })
            .expect("frames serialise"),
        ))
        .await;
    // Registered before `ready` is sent: from here on, every message pushed for this user
    // reaches this connection, and everything before it is in history (message servers
    // store, then push).
    // A new connection is in the foreground: if the user's others here are all in the
    // background, they are looking again.
    let was_attentive = shared.hub.is_attentive(&user);
    if shared.hub.add(user, handle.clone()) {
        match shared
            .presence
            .connect(&shared.cfg.internal_url, user)
            .await
        {
            Ok(true) => crate::ephemeral::announce_later(&shared, vec![(user, None)]),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "presence registration failed; the heartbeat will retry");
            }
        }
    } else if !was_attentive
        && let Err(e) = shared
            .presence
            .set_attentive(&shared.cfg.internal_url, user, true)
            .await
    {
        tracing::warn!(error = %e, "attention not recorded; the heartbeat will mend it");
    }
    // Revoked after the upgrade's check and announced before we registered: close at once.
    if sid.is_some_and(|sid| shared.recent_revocations.contains(sid)) {
        handle.state.revoke();
    }

    let (sink, stream) = socket.split();
    let state = handle.state.clone();
    // The reader is a task of its own. Joined into this one (`join!`), every wake-up of the
    // writer, i.e. every frame to the client, polled the reader as well: its half of the
    // socket, its cancellation and its two timers: about a tenth of gateway-1's samples in a
    // fan-out profile, ~4 % of its CPU per delivery at 20 msg/s (docs/benchmarks.md, tuning
    // log 17).
    let reader = tokio::spawn(
        {
            let (shared, handle) = (shared.clone(), handle.clone());
            async move {
                // However the reader ends (a panic too), the connection ends with it.
                let _end = handle.state.kill.clone().drop_guard();
                reader::run(&shared, user, expires, stream, &handle).await;
            }
        }
        .in_current_span(),
    );
    {
        // However the writer ends (this task dropped too), the reader stops with it.
        let _end = state.kill.clone().drop_guard();
        writer::run(&shared, sink, rx, &state, resume_announced).await;
    }
    let _ = reader.await;

    if shared.hub.remove(user, id) {
        match shared
            .presence
            .disconnect(&shared.cfg.internal_url, user)
            .await
        {
            Ok(Some(at)) => crate::ephemeral::announce_later(&shared, vec![(user, Some(at))]),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "presence removal failed; the entry will lapse"),
        }
    } else if handle.in_foreground() && !shared.hub.is_attentive(&user) {
        // The user's last connection here in the foreground closed; others, in the background,
        // remain.
        if let Err(e) = shared
            .presence
            .set_attentive(&shared.cfg.internal_url, user, false)
            .await
        {
            tracing::debug!(error = %e, "attention removal failed; the heartbeat will mend it");
        }
    }
}

/// An `error` frame. The `client_msg_id` is echoed only when it is one a send could have
/// used: an oversized one would make every refusal as big as the client's garbage.
pub(crate) fn error_frame(
    code: &str,
    message: impl Into<String>,
    client_msg_id: Option<String>,
) -> Outbound {
    refusal_frame(code, message, client_msg_id, None)
}

pub(crate) fn refusal_frame(
    code: &str,
    message: impl Into<String>,
    client_msg_id: Option<String>,
    retry_after: Option<std::time::Duration>,
) -> Outbound {
    let client_msg_id =
        client_msg_id.filter(|c| c.chars().count() <= chat_types::limits::CLIENT_MSG_ID_MAX);
    Outbound::Frame(
        serde_json::to_string(&ServerFrame::Error {
            code: code.into(),
            message: message.into(),
            client_msg_id,
            retry_after_ms: retry_after.map(|d| d.as_millis().try_into().unwrap_or(u64::MAX)),
            client_event_id: None,
        })
        .expect("frames serialise"),
    )
}

/// An `error` frame refusing an `edit` / `delete` / `react` / `unreact`, naming its
/// `client_event_id` (when it is not too long to be one).
pub(crate) fn event_refusal(
    code: &str,
    message: impl Into<String>,
    client_event_id: String,
    retry_after: Option<std::time::Duration>,
) -> Outbound {
    let client_event_id = Some(client_event_id)
        .filter(|c| c.chars().count() <= chat_types::limits::CLIENT_MSG_ID_MAX);
    Outbound::Frame(
        serde_json::to_string(&ServerFrame::Error {
            code: code.into(),
            message: message.into(),
            client_msg_id: None,
            retry_after_ms: retry_after.map(|d| d.as_millis().try_into().unwrap_or(u64::MAX)),
            client_event_id,
        })
        .expect("frames serialise"),
    )
}
