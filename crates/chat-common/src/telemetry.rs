//! Logging and metrics, set up once per process by [`init`].

use crate::config::TelemetryConfig;
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
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
    match builder().install_recorder() {
        Ok(handle) => handle,
        Err(_) => builder().build_recorder().handle(),
    }
}

/// Upper bounds (seconds) of the buckets every latency histogram (`*_seconds`) is exported
/// with: from half a millisecond, where a hop on an idle stack lies, to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Latency histograms go out as Prometheus histograms, not the exporter's default summaries: a
/// summary's quantiles cover a rolling window that no benchmark step or alert lines up with,
/// while buckets can be differenced between two scrapes (`chat-bench` derives each step's
/// per-hop p99 so) and summed across instances.
fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .expect("LATENCY_BUCKETS is not empty")
}

#[cfg(test)]
mod tests {
    #[test]
    fn latency_histograms_are_rendered_with_buckets() {
        let recorder = super::builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("chat_test_seconds").record(0.004);
        });
        let page = handle.render();
        assert!(
            page.contains("# TYPE chat_test_seconds histogram"),
            "{page}"
        );
        assert!(
            page.contains("chat_test_seconds_bucket{le=\"0.005\"} 1"),
            "{page}"
        );
        assert!(
            page.contains("chat_test_seconds_bucket{le=\"0.003\"} 0"),
            "{page}"
        );
    }
}
