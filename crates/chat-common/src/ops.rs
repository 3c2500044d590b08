//! The internal HTTP surface every service has on its ops port: `/healthz` (the process is up),
//! `/readyz` (its stores answer) and `/metrics` (Prometheus). Never routed through nginx.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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

/// Serve `app` on `listener` until `stop` is cancelled (then finish the requests in hand); a
/// failure is logged under `what`. Spawned on a service's task tracker, so the drain waits.
pub async fn serve(
    what: &'static str,
    listener: tokio::net::TcpListener,
    app: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, server = what, "server failed");
    }
}
