//! `chat-media`: the attachment work that must not run on a request or delivery path.
//!
//! - **Thumbnails** ([`jobs`], [`thumbnail`]): when the API completes an image upload it queues
//!   a job in PostgreSQL and notifies `media_jobs`; a worker here takes it (`FOR UPDATE SKIP
//!   LOCKED`, so any number of `chat-media` processes share the queue), decodes the image with
//!   limits, stores a JPEG of at most 480 px a side at `t/<id>.jpg` beside the original, and
//!   marks it ready; the API's download link then carries a `thumbnail_url`. Decoding a 25 MiB
//!   photo takes a core for a while: that is why it is here and not in the API or the message
//!   servers.
//! - **The sweeper** ([`sweeper`]): uploads never completed, completed but never sent, and those
//!   of deleted messages lose their objects and rows.
//!
//! The queue lives in the `attachments` table ([`chat_store::media`]): completing an upload and
//! queueing its thumbnail is one statement, with no second system to keep in step.

pub mod jobs;
pub mod sweeper;
pub mod thumbnail;

use chat_common::config::{ListenConfig, ObjectsConfig, PostgresConfig, TelemetryConfig};
use chat_common::telemetry::PrometheusHandle;
use chat_types::limits::{UPLOAD_RENEWABLE_SECS, UPLOAD_URL_SECS};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The ops port (`/healthz`, `/readyz`, `/metrics`).
    pub ops: ListenConfig,
    pub media: MediaConfig,
    pub postgres: PostgresConfig,
    pub objects: ObjectsConfig,
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ops: ListenConfig::new("127.0.0.1:9401"),
            media: MediaConfig::default(),
            postgres: PostgresConfig::default(),
            objects: ObjectsConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Name in logs.
    pub id: String,
    /// Thumbnails made at once: each takes a core while it decodes.
    pub workers: usize,
    /// How long a job taken is this process's; after that (a crash) another takes it.
    pub lease_secs: u64,
    /// How often jobs are looked for without a notification (a lost one, a lapsed lease).
    pub poll_ms: u64,
    /// How often the sweeper runs.
    pub sweep_every_ms: u64,
    /// Uploads not completed this long after their creation are removed. Must exceed the hour
    /// during which new upload URLs are given out plus a URL's 15 minutes, so nothing can be
    /// uploaded after its attachment is gone.
    pub pending_after_secs: u64,
    /// Completed uploads that no message carries this long after their creation are removed.
    pub unsent_after_secs: u64,
    /// A send's claim on uploads whose message no message server stored this long after the
    /// claim is released (the produce failed and the client never sent it again). Long, so a
    /// message held up in Kafka (an outage of the message servers or the store) is not taken
    /// for one never sent; the gateways' send claims last as long by default, and a resend
    /// renews the claim.
    pub claimed_unsent_after_secs: u64,
    /// Attachments removed per statement and per DeleteObjects request.
    pub sweep_batch: usize,
    /// Bounded drain on shutdown: the thumbnails in hand.
    pub drain_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            id: "media-1".into(),
            workers: 1,
            lease_secs: 60,
            poll_ms: 5000,
            sweep_every_ms: 60_000,
            pending_after_secs: 2 * 3600,
            unsent_after_secs: 24 * 3600,
            claimed_unsent_after_secs: 24 * 3600,
            sweep_batch: 200,
            drain_secs: 10,
        }
    }
}

impl MediaConfig {
    fn check(&self) -> anyhow::Result<()> {
        let renewable = UPLOAD_RENEWABLE_SECS + UPLOAD_URL_SECS;
        anyhow::ensure!(
            self.pending_after_secs > renewable,
            "media.pending_after_secs must exceed {renewable} (new upload URLs are given out for \
             {UPLOAD_RENEWABLE_SECS} s after an upload's creation, each valid {UPLOAD_URL_SECS} s)"
        );
        anyhow::ensure!(
            self.unsent_after_secs >= self.pending_after_secs,
            "media.unsent_after_secs must be at least media.pending_after_secs"
        );
        anyhow::ensure!(
            self.claimed_unsent_after_secs >= 3600,
            "media.claimed_unsent_after_secs must be at least 3600 (a message may wait in Kafka \
             while the message servers or the store are down)"
        );
        anyhow::ensure!(
            (1..=500).contains(&self.sweep_batch),
            "media.sweep_batch must be 1 to 500 (two object keys each, 1,000 per request)"
        );
        anyhow::ensure!(self.workers >= 1, "media.workers must be at least 1");
        anyhow::ensure!(
            self.lease_secs >= 10,
            "media.lease_secs must be at least 10 (a large image takes seconds)"
        );
        Ok(())
    }
}

pub struct Application {
    cfg: MediaConfig,
    metrics: PrometheusHandle,
    thumbnailer: jobs::Thumbnailer,
    sweeper: sweeper::Sweeper,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    ops_listener: tokio::net::TcpListener,
}

impl Application {
    /// Check the configuration, connect to PostgreSQL, set up the object store's client and
    /// bind the ops listener.
    pub async fn build(
        cfg: Config,
        metrics: PrometheusHandle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let m = cfg.media;
        m.check()?;
        let db = chat_store::pg::connect(&cfg.postgres, chat_store::pg::Planning::Auto).await?;
        let objects = chat_store::objects::Objects::new(&cfg.objects)?;
        let thumbnailer = jobs::Thumbnailer {
            db: db.clone(),
            objects: objects.clone(),
            workers: m.workers,
            lease: Duration::from_secs(m.lease_secs),
            poll: Duration::from_millis(m.poll_ms),
        };
        let sweeper = sweeper::Sweeper {
            db,
            objects,
            every: Duration::from_millis(m.sweep_every_ms),
            pending_after: Duration::from_secs(m.pending_after_secs),
            unsent_after: Duration::from_secs(m.unsent_after_secs),
            claimed_unsent_after: Duration::from_secs(m.claimed_unsent_after_secs),
            batch: m.sweep_batch,
        };
        let ops_listener = tokio::net::TcpListener::bind(&cfg.ops.listen).await?;
        tracing::info!(id = %m.id, workers = m.workers, "making thumbnails and sweeping");
        Ok(Application {
            cfg: m,
            metrics,
            thumbnailer,
            sweeper,
            tasks: TaskTracker::new(),
            shutdown,
            ops_listener,
        })
    }

    /// Work until `shutdown`, then drain within `media.drain_secs`.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown;
        let ready = chat_common::ops::ready_check(
            (
                self.thumbnailer.db.clone(),
                self.thumbnailer.objects.clone(),
            ),
            |(db, objects)| async move {
                chat_store::pg::ping(&db).await?;
                objects.ping().await.map_err(|e| e.to_string())?;
                Ok(())
            },
        );
        let ops = chat_common::ops::router(self.metrics.clone(), ready);
        self.tasks.spawn(chat_common::ops::serve(
            "ops",
            self.ops_listener,
            ops,
            shutdown.clone(),
        ));
        self.tasks.spawn(jobs::run(
            self.thumbnailer,
            self.tasks.clone(),
            shutdown.clone(),
        ));
        self.tasks
            .spawn(sweeper::run(self.sweeper, shutdown.clone()));
        shutdown.cancelled().await;
        chat_common::shutdown::drain(&self.tasks, Duration::from_secs(self.cfg.drain_secs)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_their_own_checks() {
        MediaConfig::default().check().unwrap();
    }

    #[test]
    fn a_sweeper_that_could_remove_an_upload_still_in_progress_is_refused() {
        let cfg = MediaConfig {
            pending_after_secs: UPLOAD_RENEWABLE_SECS,
            ..MediaConfig::default()
        };
        assert!(cfg.check().is_err());
    }
}
