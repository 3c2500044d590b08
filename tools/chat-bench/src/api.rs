//! The public REST API through nginx, as a client uses it.

use anyhow::{Context, bail};
use chat_types::rest::{Channel, MessageList, RefreshRequest, RegisterRequest, Session};
use chat_types::{ChannelId, Message, MessageId};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// Outcome of a call that may legitimately be refused (401 on a rotated refresh token).
pub enum Refreshed {
    Ok(Session),
    Refused,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Api> {
        Ok(Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .build()?,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn register(&self, username: &str, password: &str) -> anyhow::Result<Session> {
        let res = self
            .http
            .post(self.url("/api/v1/auth/register"))
            .json(&RegisterRequest {
                username: username.into(),
                password: password.into(),
                display_name: None,
            })
            .send()
            .await?;
        let status = res.status();
        if status.as_u16() != 201 {
            bail!("register {username}: {status} {}", res.text().await?);
        }
        Ok(res.json().await?)
    }

    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<Refreshed> {
        let res = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await?;
        match res.status().as_u16() {
            200 => Ok(Refreshed::Ok(res.json().await?)),
            401 => Ok(Refreshed::Refused),
            s => bail!("login: {s} {}", res.text().await?),
        }
    }

    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<Refreshed> {
        let res = self
            .http
            .post(self.url("/api/v1/auth/refresh"))
            .json(&RefreshRequest {
                refresh_token: refresh_token.into(),
            })
            .send()
            .await?;
        match res.status().as_u16() {
            200 => Ok(Refreshed::Ok(res.json().await?)),
            401 => Ok(Refreshed::Refused),
            s => bail!("refresh: {s} {}", res.text().await?),
        }
    }

    pub async fn create_channel(&self, token: &str, name: &str) -> anyhow::Result<Channel> {
        let res = self
            .http
            .post(self.url("/api/v1/channels"))
            .bearer_auth(token)
            .json(&serde_json::json!({"name": name, "description": "chat-bench"}))
            .send()
            .await?;
        let status = res.status();
        if status.as_u16() != 201 {
            bail!("create channel: {status} {}", res.text().await?);
        }
        Ok(res.json().await?)
    }

    pub async fn join(&self, token: &str, channel: ChannelId) -> anyhow::Result<()> {
        let res = self
            .http
            .post(self.url(&format!("/api/v1/channels/{channel}/join")))
            .bearer_auth(token)
            .send()
            .await?;
        let status = res.status();
        if status.as_u16() != 200 {
            bail!("join {channel}: {status} {}", res.text().await?);
        }
        Ok(())
    }

    /// One history page; returns the messages and the request's latency.
    pub async fn history(
        &self,
        token: &str,
        channel: ChannelId,
        limit: u32,
        before: Option<MessageId>,
        after: Option<MessageId>,
    ) -> anyhow::Result<(Vec<Message>, Duration)> {
        let mut url = format!("/api/v1/channels/{channel}/messages?limit={limit}");
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        let started = Instant::now();
        let res = self
            .http
            .get(self.url(&url))
            .bearer_auth(token)
            .send()
            .await?;
        let status = res.status();
        let bytes = res.bytes().await?;
        let took = started.elapsed();
        if status.as_u16() != 200 {
            bail!(
                "history {channel}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let list: MessageList = serde_json::from_slice(&bytes).context("history body")?;
        Ok((list.messages, took))
    }

    /// Every sample of an ops port's /metrics page (name with labels -> value), without
    /// summary quantiles and histogram buckets.
    pub async fn ops_samples(&self, ops_port: u16) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        let Ok(res) = self
            .http
            .get(format!("http://127.0.0.1:{ops_port}/metrics"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
        else {
            return out;
        };
        let text = res.text().await.unwrap_or_default();
        for line in text.lines() {
            if line.starts_with('#') || line.contains("quantile=") || line.contains("le=") {
                continue;
            }
            if let Some((name, value)) = line.rsplit_once(' ')
                && let Ok(v) = value.parse::<f64>()
            {
                out.insert(name.to_string(), v);
            }
        }
        out
    }

    /// The gateways' connection gauge from an ops port (`chat_connections`).
    pub async fn ops_metric(&self, ops_port: u16, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("http://127.0.0.1:{ops_port}/metrics"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        crate::procs::metric(&text, name)
    }
}
