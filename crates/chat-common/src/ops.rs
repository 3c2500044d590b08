//! The internal HTTP surface every service has on its ops port: `/healthz` (the process is up),
//! `/readyz` (its stores answer) and `/metrics` (Prometheus). Never routed through nginx.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::{ListenerExt, TapIo};
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// A readiness check: resolves to `Err(reason)` when a dependency does not answer.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A [`ReadyCheck`] from an async function of (a clone of) `state`.
pub fn ready_check<S, F, Fut>(state: S, check: F) -> ReadyCheck
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(check(state.clone())))
}

#[derive(Clone)]
struct OpsState {
    metrics: PrometheusHandle,
    ready: ReadyCheck,
}

/// Routes for the ops port; services merge their own internal routes into it.
pub fn router(metrics: PrometheusHandle, ready: ReadyCheck) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { metrics, ready })
}

async fn readyz(State(s): State<OpsState>) -> (StatusCode, String) {
    match (s.ready)().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn render_metrics(State(s): State<OpsState>) -> String {
    s.metrics.render()
}

/// Every accepted connection sends what is written at once (`TCP_NODELAY`). With Nagle's
/// algorithm a small write made while an earlier one is unacknowledged waits for the peer's
/// ACK, which Linux delays up to 40 ms: a WebSocket frame written right after another one
/// (a message right after the ack of its send, a second push) arrived up to 40 ms late.
pub fn accepting(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(no_delay as fn(&mut TcpStream))
}

fn no_delay(tcp: &mut TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

/// Serve `app` on `listener` until `stop` is cancelled (then finish the requests in hand); a
/// failure is logged under `what`. Spawned on a service's task tracker, so the drain waits.
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    app: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    if let Err(e) = axum::serve(accepting(listener), app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, server = what, "server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_send_without_waiting_for_acks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plain = TcpStream::connect(addr).await.unwrap();
        // A socket as accepted by default waits for ACKs (Nagle): what this guards against.
        assert!(!plain.nodelay().unwrap());
        let mut accepting = accepting(listener);
        let (accepted, _) = accepting.accept().await;
        assert!(accepted.nodelay().unwrap());
    }
}
