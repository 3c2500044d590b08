//! Logging and metrics, set up once per process by [`init`].

use crate::config::TelemetryConfig;
use metrics_exporter_prometheus::PrometheusBuilder;
pub use metrics_exporter_prometheus::PrometheusHandle;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the tracing subscriber and the Prometheus recorder. Returns the handle that renders
/// `/metrics`. Safe to call more than once (tests start several services in one process): later
/// calls keep the first subscriber and get a recorder-less handle.
pub fn init(service: &str, cfg: &TelemetryConfig) -> PrometheusHandle {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    let registry = tracing_subscriber::registry().with(filter);
    let res = if cfg.json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_target(true))
            .try_init()
    };
    if res.is_ok() {
        tracing::info!(service, "telemetry initialised");
    }
    let builder = PrometheusBuilder::new();
    match builder.install_recorder() {
        Ok(handle) => handle,
        Err(_) => PrometheusBuilder::new().build_recorder().handle(),
    }
}
