//! Revoked sessions end their sockets here at once: the gateway follows the revocation channel
//! in Redis ([`chat_store::revocations`]) and closes the named session's local connections with
//! 4401. While it is not subscribed (Redis restarting, the connection lost) it may miss an
//! announcement, so after every (re)subscription it asks Redis which of its sockets' sessions
//! are revoked and closes those too.
//!
//! An upgrade checks Redis before the socket is registered; a revocation announced in between
//! would find no socket to close. So announcements are also remembered for a minute
//! ([`RecentRevocations`]), and a socket checks that list once it is registered: either the
//! announcement came first (the socket finds it there) or the socket did (the announcement
//! finds the socket).

use crate::Shared;
use chat_store::revocations::RevocationFeed;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long an announced revocation is remembered locally: far longer than an upgrade takes
/// from its Redis check to its registration.
const REMEMBER: Duration = Duration::from_secs(60);

/// Sessions revoked in the last minute, as announced.
#[derive(Default)]
pub struct RecentRevocations(Mutex<HashMap<Uuid, Instant>>);

impl RecentRevocations {
    fn note(&self, sid: Uuid) {
        let now = Instant::now();
        let mut m = self.0.lock().expect("revocations lock");
        m.retain(|_, at| now.duration_since(*at) < REMEMBER);
        m.insert(sid, now);
    }

    pub fn contains(&self, sid: Uuid) -> bool {
        let m = self.0.lock().expect("revocations lock");
        m.get(&sid).is_some_and(|at| at.elapsed() < REMEMBER)
    }
}

/// Wait between attempts to subscribe again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);

pub async fn follow(shared: Arc<Shared>, redis_url: String) {
    loop {
        let subscribed = tokio::select! {
            r = RevocationFeed::subscribe(&redis_url, Duration::from_secs(2)) => r,
            () = shared.shutdown.cancelled() => return,
        };
        match subscribed {
            // Subscribed first, then the sweep: a revocation is either announced to us from
            // here on or already in Redis when we look. A failed sweep starts over.
            Ok(mut feed) if sweep(&shared).await => loop {
                let next = tokio::select! {
                    r = feed.next() => r,
                    () = shared.shutdown.cancelled() => return,
                };
                let Some(r) = next else {
                    tracing::warn!("session revocation feed ended; subscribing again");
                    break;
                };
                shared.recent_revocations.note(r.sid);
                let closed = shared.hub.revoke_session(r.user, r.sid);
                if closed > 0 {
                    metrics::counter!("chat_revoked_connections_total").increment(closed as u64);
                    tracing::info!(user_id = %r.user, session = %r.sid, closed, "session revoked: connections closed");
                }
            },
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow session revocations; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}

/// Close the connections of every local session that Redis says is revoked; `false` if Redis
/// could not say.
async fn sweep(shared: &Shared) -> bool {
    let sessions = shared.hub.sessions();
    let sids: Vec<_> = sessions.iter().map(|(_, s)| *s).collect();
    match shared.revocations.revoked_among(&sids).await {
        Ok(revoked) => {
            for ((user, sid), _) in sessions.iter().zip(revoked).filter(|(_, r)| *r) {
                shared.hub.revoke_session(*user, *sid);
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot check local sessions for revocation");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_revocations_are_remembered() {
        let recent = RecentRevocations::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        recent.note(a);
        assert!(recent.contains(a));
        assert!(!recent.contains(b));
    }
}
