//! A local stand-in for Apple's APNs provider API, so the notifier's production HTTP/2 client
//! can be tested end to end without Apple: HTTP/2 over TLS (ALPN `h2` only) with a test CA it
//! generates, provider tokens (ES256 JWTs) verified against the `.p8` key it generates, the
//! checks and answers APNs documents, and a control API to script answers per device token
//! and read back every request. Spec: `docs/design/push-and-attachments.md`, §2.
//!
//! # Layout
//! - [`config`]: flags (`--dir`, `--listen`, `--control`, …) with environment fallbacks.
//! - [`pki`]: the state folder: CA, leaf certificate, `AuthKey_STANDIN.p8`, written atomically.
//! - [`checks`]: APNs' checks in their fixed order (pure); [`provider_token`]: the JWT part.
//! - [`answer`]: one answer (`"ok"` or status + reason), as scripted and as sent.
//! - [`behaviour`]: scripts per token and for all tokens (pure).
//! - [`recorder`]: bounded records per token and the counters.
//! - [`state`]: what the two listeners share; run-time settings.
//! - [`apns`]: the APNs endpoint's handler; [`control`]: the control API.
//! - [`server`]: the TLS listener and its supervisor (generations for `POST /cut`).
//!
//! [`App::build`] binds both ports and prepares the state folder; [`App::run_until_stopped`]
//! serves until the token is cancelled. Tests run it on port 0.

pub mod answer;
pub mod apns;
pub mod behaviour;
pub mod checks;
pub mod config;
pub mod control;
pub mod pki;
pub mod provider_token;
pub mod recorder;
pub mod server;
pub mod state;

pub use config::Config;

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the listeners get to finish after the stop signal.
const DRAIN: Duration = Duration::from_secs(5);

pub struct App {
    shared: Arc<state::Shared>,
    tls: axum_server::tls_rustls::RustlsConfig,
    tls_listener: std::net::TcpListener,
    control_listener: tokio::net::TcpListener,
    tls_addr: SocketAddr,
    control_addr: SocketAddr,
}

impl App {
    /// Validate the flags, load or create the state folder, bind both ports.
    pub async fn build(cfg: Config) -> anyhow::Result<App> {
        cfg.validate()?;
        let hostnames: Vec<String> = cfg
            .hostnames
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        let dir = cfg.dir.clone();
        let material = tokio::task::spawn_blocking(move || pki::load_or_create(&dir, &hostnames))
            .await
            .context("preparing the state folder")??;
        let shared = Arc::new(state::Shared::new(&cfg, &material)?);
        let tls = server::tls_config(&material)?;
        let tls_listener = std::net::TcpListener::bind(cfg.listen)
            .with_context(|| format!("--listen {}: cannot bind", cfg.listen))?;
        let control_listener = tokio::net::TcpListener::bind(cfg.control)
            .await
            .with_context(|| format!("--control {}: cannot bind", cfg.control))?;
        tracing::info!(dir = %cfg.dir.display(), key_id = %cfg.key_id, team_id = %cfg.team_id,
            topics = %cfg.topics.join(","), "state folder ready");
        Ok(App {
            shared,
            tls,
            tls_addr: tls_listener.local_addr()?,
            control_addr: control_listener.local_addr()?,
            tls_listener,
            control_listener,
        })
    }

    /// The APNs endpoint's address (`https://`).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
    }

    /// The control API's address (`http://`).
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// Serve both listeners until `stop` is cancelled (or one of them fails).
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let stop = stop.child_token();
        let (cut_tx, cut_rx) = tokio::sync::mpsc::channel(16);
        let tasks = TaskTracker::new();

        let tls = server::TlsListener {
            listener: self.tls_listener,
            tls: self.tls,
            router: apns::router(self.shared.clone()),
            shared: self.shared.clone(),
        };
        let s = stop.clone();
        let tls_task = tasks.spawn(async move {
            let r = server::supervise(tls, cut_rx, s.clone()).await;
            s.cancel();
            r
        });

        let control = control::router(self.shared.clone(), cut_tx);
        tracing::info!(addr = %self.control_addr, "control API listening");
        let s = stop.clone();
        let control_task = tasks.spawn(async move {
            let r = axum::serve(self.control_listener, control)
                .with_graceful_shutdown(s.clone().cancelled_owned())
                .await;
            s.cancel();
            r
        });

        stop.cancelled().await;
        chat_common::shutdown::drain(&tasks, DRAIN).await;
        if tls_task.is_finished() {
            tls_task.await.context("the APNs listener panicked")??;
        }
        if control_task.is_finished() {
            control_task
                .await
                .context("the control API panicked")?
                .context("the control API failed")?;
        }
        Ok(())
    }
}

/// Wall-clock time since the Unix epoch.
pub(crate) fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
