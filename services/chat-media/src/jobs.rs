//! The thumbnail loop: take jobs from PostgreSQL ([`chat_store::media`]) while a worker is
//! free, make each thumbnail off the async runtime, store it beside the original
//! (`t/<id>.jpg`), and mark the job done. Woken by `NOTIFY media_jobs` the moment the API
//! completes an image, and by a timer as a fallback (a notification can be lost when the
//! listening connection drops; a lapsed lease of a crashed worker is found the same way).

use crate::thumbnail;
use chat_store::media::{self, JobSignals, ThumbnailJob};
use chat_store::objects::{Objects, THUMBNAIL_TYPE, file_key, thumbnail_key};
use chat_store::pg::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the loop needs.
#[derive(Clone)]
pub struct Thumbnailer {
    pub db: PgPool,
    pub objects: Objects,
    /// Thumbnails made at once (each decode takes a core).
    pub workers: usize,
    /// How long a taken job is this worker's; then (a crash) anyone may take it again.
    pub lease: Duration,
    /// How often jobs are looked for without a notification.
    pub poll: Duration,
}

/// Take and run jobs until `shutdown`. Jobs in hand finish on `tasks` (the service's drain
/// waits for them); one cut short is taken again when its lease lapses.
pub async fn run(t: Thumbnailer, tasks: TaskTracker, shutdown: CancellationToken) {
    let free = Arc::new(Semaphore::new(t.workers.max(1)));
    let mut signals = None;
    loop {
        if signals.is_none() {
            match JobSignals::listen(&t.db).await {
                Ok(s) => signals = Some(s),
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for jobs; looking on a timer"),
            }
        }
        // Wait for a free worker first: only then is there a reason to take anything.
        let permit = tokio::select! {
            p = free.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => return,
        };
        let wanted = free.available_permits() + 1;
        let jobs = match media::take_thumbnail_jobs(&t.db, wanted as i64, t.lease).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take thumbnail jobs");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            drop(permit);
            let signal = async {
                match signals.as_mut() {
                    Some(s) => {
                        if let Err(e) = s.next().await {
                            tracing::warn!(error = %e, "LISTEN connection lost; listening again");
                            signals = None;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = signal => {}
                _ = tokio::time::sleep(t.poll) => {}
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        let mut permit = Some(permit);
        for job in jobs {
            // As many jobs as free workers were taken, so this never waits.
            let held = match permit.take() {
                Some(p) => p,
                None => free
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            };
            let t = t.clone();
            tasks.spawn(async move {
                one(&t, job).await;
                drop(held);
            });
        }
    }
}

/// Make one thumbnail. Store errors leave the job to be taken again when its lease lapses;
/// anything about the bytes themselves ends it without a thumbnail.
async fn one(t: &Thumbnailer, job: ThumbnailJob) {
    let started = Instant::now();
    let id = job.id;
    let made = match make(t, job).await {
        Ok(made) => made,
        Err(e) => {
            metrics::counter!("chat_media_thumbnails_total", "result" => "retry").increment(1);
            tracing::warn!(attachment_id = %id, error = %e, "thumbnail failed; retried after its lease");
            return;
        }
    };
    match media::finish_thumbnail(&t.db, id, made).await {
        Ok(_) => {
            let result = if made { "made" } else { "none" };
            metrics::counter!("chat_media_thumbnails_total", "result" => result).increment(1);
            metrics::histogram!("chat_media_thumbnail_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        Err(e) => {
            tracing::warn!(attachment_id = %id, error = %e, "cannot finish the thumbnail job")
        }
    }
}

/// `Ok(true)`: stored; `Ok(false)`: there will be none; `Err`: try again later.
async fn make(t: &Thumbnailer, job: ThumbnailJob) -> anyhow::Result<bool> {
    let Some(bytes) = t.objects.get_range(&file_key(job.id), 0, None).await? else {
        tracing::warn!(attachment_id = %job.id, "the completed file is not in the store");
        return Ok(false);
    };
    let content_type = job.content_type;
    let decoded = tokio::task::spawn_blocking(move || thumbnail::make(&content_type, &bytes)).await;
    let jpeg = match decoded {
        Ok(Ok(jpeg)) => jpeg,
        Ok(Err(why)) => {
            tracing::info!(attachment_id = %job.id, %why, "no thumbnail");
            return Ok(false);
        }
        // A decoder that panics on these bytes will panic again.
        Err(e) => {
            tracing::warn!(attachment_id = %job.id, error = %e, "the decoder failed; no thumbnail");
            return Ok(false);
        }
    };
    t.objects
        .put(&thumbnail_key(job.id), jpeg, THUMBNAIL_TYPE)
        .await?;
    Ok(true)
}
