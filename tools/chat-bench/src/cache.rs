//! Users and channel layouts kept across runs in `$HOME/.cache/chat-bench/<host>/pool-<name>.json`.
//!
//! Registering costs the API an argon2 hash (30-60 ms of CPU per user), so users are registered
//! once and reused; their access tokens are renewed with `POST /api/v1/auth/refresh` (cheap) when
//! they would expire during the run. A refresh token that was already rotated (another run used
//! it) falls back to a login, and a user the server no longer knows is registered anew. Layouts
//! (which channels exist with which members) are reused while every member is still the same
//! user. A file lock serialises concurrent runs on the same pool.

use anyhow::Context;
use chat_client::Api;
use chat_types::rest::Session;
use chat_types::{ChannelId, UserId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedUser {
    pub username: String,
    pub password: String,
    pub user_id: UserId,
    pub access_token: String,
    /// Unix seconds when the access token expires.
    pub access_expires: u64,
    pub refresh_token: String,
}

impl CachedUser {
    fn from_session(s: Session, password: &str) -> Self {
        CachedUser {
            username: s.user.username,
            password: password.to_string(),
            user_id: s.user.id,
            access_token: s.access_token,
            access_expires: now_secs() + s.expires_in,
            refresh_token: s.refresh_token,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayoutChannel {
    pub id: ChannelId,
    /// (index into the pool, that user's id when the layout was made)
    pub members: Vec<(usize, UserId)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Layout {
    pub channels: Vec<LayoutChannel>,
    /// Messages known to be stored in each channel (history scenario).
    #[serde(default)]
    pub seeded: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct PoolFile {
    base_url: String,
    users: Vec<CachedUser>,
    #[serde(default)]
    layouts: BTreeMap<String, Layout>,
}

pub struct Pool {
    path: PathBuf,
    lock_path: PathBuf,
    name: String,
    base_url: String,
}

const PASSWORD: &str = "chat-bench password 1";

/// A session, or `None` when the server refused the credentials (401: a refresh token already
/// rotated by another run, a user the server no longer knows).
fn refused_is_none(r: chat_client::Result<Session>) -> anyhow::Result<Option<Session>> {
    match r {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.status() == Some(401) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Pool {
    pub fn open(cache_dir: &Path, base_url: &str, name: &str) -> anyhow::Result<Pool> {
        let host: String = base_url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let dir = cache_dir.join(host);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Pool {
            path: dir.join(format!("pool-{name}.json")),
            lock_path: dir.join(format!("pool-{name}.lock")),
            name: name.to_string(),
            base_url: base_url.to_string(),
        })
    }

    async fn lock(&self) -> anyhow::Result<std::fs::File> {
        let path = self.lock_path.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<std::fs::File> {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            f.lock()?;
            Ok(f)
        })
        .await?
    }

    fn load(&self) -> PoolFile {
        let file: PoolFile = std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if file.base_url != self.base_url {
            return PoolFile {
                base_url: self.base_url.clone(),
                ..Default::default()
            };
        }
        file
    }

    fn save(&self, file: &PoolFile) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(file)?)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }

    /// The first `n` users of the pool, each with an access token valid for at least
    /// `valid_for`, registering those that are missing.
    pub async fn users(
        &self,
        api: &Api,
        n: usize,
        valid_for: Duration,
        concurrency: usize,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<Vec<CachedUser>> {
        let _lock = self.lock().await?;
        let mut file = self.load();
        let deadline = now_secs() + valid_for.as_secs();

        // 1. Renew tokens that would expire (refresh; login if the refresh token was rotated).
        let stale: Vec<usize> = (0..n.min(file.users.len()))
            .filter(|i| file.users[*i].access_expires < deadline)
            .collect();
        let mut lost: Vec<usize> = Vec::new();
        if !stale.is_empty() {
            bar.set_length(stale.len() as u64);
            bar.set_position(0);
            bar.set_message(format!("refreshing tokens of pool {}", self.name));
            let results: Vec<(usize, anyhow::Result<Option<Session>>)> =
                futures::stream::iter(stale.into_iter().map(|i| {
                    let u = file.users[i].clone();
                    async move {
                        let r = async {
                            if let Some(s) = refused_is_none(api.refresh(&u.refresh_token).await)? {
                                return Ok(Some(s));
                            }
                            refused_is_none(api.login(&u.username, &u.password).await)
                        }
                        .await;
                        (i, r)
                    }
                }))
                .buffer_unordered(concurrency.max(1) * 4)
                .inspect(|_| bar.inc(1))
                .collect()
                .await;
            for (i, r) in results {
                match r? {
                    Some(s) => file.users[i] = CachedUser::from_session(s, PASSWORD),
                    None => lost.push(i),
                }
            }
            self.save(&file)?;
        }

        // 2. Register users the server does not know (any more) and the missing ones.
        let mut todo: Vec<Option<usize>> = lost.into_iter().map(Some).collect();
        todo.extend((file.users.len()..n).map(|_| None));
        if !todo.is_empty() {
            bar.set_length(todo.len() as u64);
            bar.set_position(0);
            bar.set_message(format!(
                "registering {} users of pool {} (argon2: ~50 ms of API CPU each; cached for later runs)",
                todo.len(),
                self.name
            ));
            let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
            for chunk in todo.chunks(200) {
                let made: Vec<(Option<usize>, chat_client::Result<Session>)> =
                    futures::stream::iter(chunk.iter().enumerate().map(|(k, slot)| {
                        let name = format!(
                            "bench-{}-{tag}-{}-{k}",
                            &self.name[..self.name.len().min(6)],
                            file.users.len()
                        );
                        async move { (*slot, api.register(&name, PASSWORD, None).await) }
                    }))
                    .buffer_unordered(concurrency.max(1))
                    .inspect(|_| bar.inc(1))
                    .collect()
                    .await;
                for (slot, s) in made {
                    let u = CachedUser::from_session(s?, PASSWORD);
                    match slot {
                        Some(i) => file.users[i] = u,
                        None => file.users.push(u),
                    }
                }
                self.save(&file)?;
            }
        }
        Ok(file.users[..n].to_vec())
    }

    /// A saved layout, if every member is still the user it was made with.
    pub fn layout(&self, name: &str, users: &[CachedUser]) -> Option<Layout> {
        let file = self.load();
        let layout = file.layouts.get(name)?.clone();
        let valid = layout.channels.iter().all(|c| {
            c.members
                .iter()
                .all(|(i, id)| users.get(*i).is_some_and(|u| u.user_id == *id))
        });
        valid.then_some(layout)
    }

    pub async fn save_layout(&self, name: &str, layout: &Layout) -> anyhow::Result<()> {
        let _lock = self.lock().await?;
        let mut file = self.load();
        file.layouts.insert(name.to_string(), layout.clone());
        self.save(&file)
    }
}
