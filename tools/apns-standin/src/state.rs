//! The state both listeners share: settings, provider-token checks, scripts, records and
//! counters behind one mutex (every critical section is a few map operations), plus the
//! lock-free counters and the current TLS listener's handle.

use crate::behaviour::Behaviours;
use crate::config::Config;
use crate::pki::Material;
use crate::provider_token::{ProviderTokens, TokenRules};
use crate::recorder::{Recorder, Stats};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// Settings changeable at run time (`GET`/`PUT /settings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub token_max_age_secs: u64,
    /// A provider token issued sooner than this after the newest one gets
    /// `429 TooManyProviderTokenUpdates`; 0: off (the default).
    pub min_token_refresh_secs: u64,
    pub topics: Vec<String>,
    /// Applies to connections accepted after the next `POST /cut` (HTTP/2 settings are sent
    /// when a connection starts).
    pub max_concurrent_streams: u32,
}

/// `PUT /settings`: the fields to change.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub token_max_age_secs: Option<u64>,
    pub min_token_refresh_secs: Option<u64>,
    pub topics: Option<Vec<String>>,
    pub max_concurrent_streams: Option<u32>,
}

impl Settings {
    pub fn token_rules(&self) -> TokenRules {
        TokenRules {
            max_age_secs: self.token_max_age_secs,
            min_refresh_secs: self.min_token_refresh_secs,
        }
    }

    /// Apply `patch`, or say which field is wrong (nothing changes then).
    pub fn apply(&mut self, patch: SettingsPatch) -> Result<(), String> {
        let mut next = self.clone();
        if let Some(v) = patch.token_max_age_secs {
            next.token_max_age_secs = v;
        }
        if let Some(v) = patch.min_token_refresh_secs {
            next.min_token_refresh_secs = v;
        }
        if let Some(v) = patch.topics {
            next.topics = v;
        }
        if let Some(v) = patch.max_concurrent_streams {
            next.max_concurrent_streams = v;
        }
        if next.token_max_age_secs == 0 {
            return Err("token_max_age_secs: must be > 0".into());
        }
        if next.topics.is_empty() || next.topics.iter().any(|t| t.is_empty()) {
            return Err("topics: one or more non-empty bundle ids".into());
        }
        if next.max_concurrent_streams == 0 {
            return Err("max_concurrent_streams: must be > 0".into());
        }
        *self = next;
        Ok(())
    }
}

pub struct Inner {
    pub settings: Settings,
    pub tokens: ProviderTokens,
    pub behaviours: Behaviours,
    pub recorder: Recorder,
}

pub struct Shared {
    inner: Mutex<Inner>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    cuts: AtomicU64,
    listening: AtomicBool,
    /// Cancelled by a cut, so handlers still in a scripted delay end with their connections.
    generation: Mutex<CancellationToken>,
    /// The TLS listener of the current generation.
    handle: Mutex<Option<axum_server::Handle<SocketAddr>>>,
}

impl Shared {
    pub fn new(cfg: &Config, material: &Material) -> anyhow::Result<Self> {
        let clean = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Ok(Self {
            inner: Mutex::new(Inner {
                settings: Settings {
                    token_max_age_secs: cfg.token_max_age_secs,
                    min_token_refresh_secs: 0,
                    topics: clean(&cfg.topics),
                    max_concurrent_streams: cfg.max_concurrent_streams,
                },
                tokens: ProviderTokens::new(
                    &material.provider_public_pem,
                    &cfg.key_id,
                    &cfg.team_id,
                )?,
                behaviours: Behaviours::default(),
                recorder: Recorder::new(cfg.max_recorded_per_token, cfg.max_recorded),
            }),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            generation: Mutex::new(CancellationToken::new()),
            handle: Mutex::new(None),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for a test double: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a request in the handler until the guard drops.
    pub fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The token a handler's delay races against.
    pub fn generation(&self) -> CancellationToken {
        self.generation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A new listener generation is up.
    pub fn listening_on(&self, handle: axum_server::Handle<SocketAddr>) {
        *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        self.listening.store(true, Ordering::SeqCst);
    }

    /// Cut: cancel the generation's handlers, stop its listener (every connection dropped).
    /// Returns the connections that were open.
    pub fn cut(&self) -> usize {
        self.listening.store(false, Ordering::SeqCst);
        self.cuts.fetch_add(1, Ordering::SeqCst);
        let old = std::mem::take(&mut *self.generation.lock().unwrap_or_else(|e| e.into_inner()));
        old.cancel();
        match self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(h) => {
                let open = h.connection_count();
                h.shutdown();
                open
            }
            None => 0,
        }
    }

    /// Stop listening for good (shutdown).
    pub fn stop(&self) {
        self.listening.store(false, Ordering::SeqCst);
        self.generation().cancel();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.shutdown();
        }
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> Stats {
        let mut stats = Stats {
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
            cuts: self.cuts.load(Ordering::SeqCst),
            open_connections: self
                .handle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map_or(0, |h| h.connection_count() as u64),
            ..Stats::default()
        };
        self.lock().recorder.fill(&mut stats);
        stats
    }

    /// Zero the counters; `max_in_flight` restarts from what is in flight now.
    pub fn reset_stats(&self) {
        self.lock().recorder.reset_counters();
        self.max_in_flight.store(self.in_flight(), Ordering::SeqCst);
    }
}

pub struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// Shared state over a fresh state folder; returns the `.p8` PEM to sign tokens with.
    pub fn shared() -> (Arc<Shared>, String, PathBuf) {
        let dir = std::env::temp_dir().join(format!("apns-standin-state-{}", uuid::Uuid::new_v4()));
        let cfg = Config::for_tests(dir.clone());
        let material = crate::pki::load_or_create(&dir, &cfg.hostnames).unwrap();
        let p8 = std::fs::read_to_string(dir.join(crate::pki::PROVIDER_KEY)).unwrap();
        (Arc::new(Shared::new(&cfg, &material).unwrap()), p8, dir)
    }

    #[test]
    fn a_settings_patch_changes_only_what_it_names_and_refuses_bad_values() {
        let (shared, _, dir) = shared();
        let mut s = shared.lock().settings.clone();
        s.apply(SettingsPatch {
            token_max_age_secs: Some(5),
            ..SettingsPatch::default()
        })
        .unwrap();
        assert_eq!(
            (s.token_max_age_secs, s.topics.clone()),
            (5, vec!["com.example.chat".to_string()])
        );
        let before = s.clone();
        assert!(
            s.apply(SettingsPatch {
                topics: Some(vec![]),
                ..SettingsPatch::default()
            })
            .is_err()
        );
        assert!(
            s.apply(SettingsPatch {
                token_max_age_secs: Some(0),
                ..SettingsPatch::default()
            })
            .is_err()
        );
        assert_eq!(s, before, "a refused patch changes nothing");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
