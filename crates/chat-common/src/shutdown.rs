//! The one shutdown mechanism: a [`CancellationToken`] cancelled on SIGINT or SIGTERM. Every
//! long-running task is spawned on the service's [`TaskTracker`] and races its awaits against
//! the token; [`drain`] then waits for them, bounded in time, the same way in every service.

use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A token that is cancelled when the process receives SIGINT or SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutdown signal received");
        t.cancel();
    });
    token
}

/// After the token is cancelled: close the tracker and wait for its tasks, at most `bound`.
/// Returns `false` (and logs) if some were still running when the bound ran out.
pub async fn drain(tasks: &TaskTracker, bound: Duration) -> bool {
    tasks.close();
    let done = tokio::time::timeout(bound, tasks.wait()).await.is_ok();
    if done {
        tracing::info!("drained");
    } else {
        tracing::warn!(still_running = tasks.len(), ?bound, "drain timed out");
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_tasks_but_not_past_its_bound() {
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let s = stop.clone();
        tasks.spawn(async move { s.cancelled().await });
        tasks.spawn(std::future::pending::<()>());
        stop.cancel();
        assert!(!drain(&tasks, Duration::from_millis(50)).await);

        let quick = TaskTracker::new();
        quick.spawn(async {});
        assert!(drain(&quick, Duration::from_secs(1)).await);
    }
}
