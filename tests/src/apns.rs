//! A client of the APNs stand-in's control API (`tools/apns-standin`, started by the stack):
//! script how the stand-in answers a device token (or every token), read back every request
//! the notifier made, its counters, and cut its connections.
//!
//! Tests keep out of each other's way by using their own random device tokens: scripts and
//! records are per token. The types mirror the stand-in's JSON (`tools/apns-standin/src/
//! control.rs` lists the routes); the stand-in is not a dependency of this crate, so its TLS
//! stack stays out of the tests' build.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One answer of the stand-in: `"ok"` (200), or a status with Apple's reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Ok(OkTag),
    Error {
        /// 400..=599.
        status: u16,
        reason: String,
        /// Only for 410: the body's `timestamp` (ms since the epoch; default: the answer's time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp_ms: Option<i64>,
    },
}

/// The string `"ok"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OkTag {
    #[serde(rename = "ok")]
    Ok,
}

impl Answer {
    pub const OK: Answer = Answer::Ok(OkTag::Ok);

    pub fn error(status: u16, reason: &str) -> Answer {
        Answer::Error {
            status,
            reason: reason.to_string(),
            timestamp_ms: None,
        }
    }

    /// `410 Unregistered`, APNs having learnt at `timestamp_ms` that the token is gone.
    pub fn unregistered(timestamp_ms: i64) -> Answer {
        Answer::Error {
            status: 410,
            reason: "Unregistered".into(),
            timestamp_ms: Some(timestamp_ms),
        }
    }

    /// From the JSON the control API takes: `"ok"` or `{"status":…,"reason":…}`.
    /// Panics on anything else (a mistake in the test itself).
    pub fn from_json(v: serde_json::Value) -> Answer {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| {
            panic!("{v} is not an answer (\"ok\" or {{status, reason[, timestamp_ms]}}): {e}")
        })
    }
}

/// How the stand-in answers one device token (`PUT /tokens/{token}/behaviour`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behaviour {
    /// The next answers, in order.
    pub respond: Vec<Answer>,
    /// Added before answering each request for the token.
    pub delay_ms: u64,
    /// Every answer after `respond` is used up.
    pub then: Answer,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            respond: Vec::new(),
            delay_ms: 0,
            then: Answer::OK,
        }
    }
}

impl Behaviour {
    /// These answers in order (JSON as the control API takes them), then success.
    pub fn answers(respond: Vec<serde_json::Value>) -> Behaviour {
        Behaviour {
            respond: respond.into_iter().map(Answer::from_json).collect(),
            ..Behaviour::default()
        }
    }

    /// Success, each after `ms` milliseconds (a slow device).
    pub fn delayed(ms: u64) -> Behaviour {
        Behaviour {
            delay_ms: ms,
            ..Behaviour::default()
        }
    }

    /// What comes after the list, for ever.
    pub fn then(mut self, answer: Answer) -> Behaviour {
        self.then = answer;
        self
    }

    pub fn with_delay(mut self, ms: u64) -> Behaviour {
        self.delay_ms = ms;
        self
    }
}

/// The next `next_requests` requests of every token (`PUT /behaviour`): `respond` answers them
/// (absent: each token's own script) after `delay_ms` more.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalBehaviour {
    pub next_requests: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond: Option<Answer>,
    #[serde(default)]
    pub delay_ms: u64,
}

/// Where a recorded request stands: `pending` while a scripted delay runs, `answered`, or
/// `dropped` (its stream or connection ended first, e.g. by a cut).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    Answered,
    Dropped,
}

/// One request the stand-in received, with the answer it gave.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recorded {
    /// Arrival, wall clock, µs since the Unix epoch.
    pub received_at_us: i64,
    pub method: String,
    pub path: String,
    /// Lower-case names (`authorization` included); repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The payload as JSON; `None` when empty, too large or not JSON.
    pub body: Option<serde_json::Value>,
    pub status: u16,
    /// `None` for 200.
    pub reason: Option<String>,
    /// The `apns-id` of the answer (the request's, or one the stand-in made).
    pub apns_id: String,
    /// The scripted delay before the answer.
    pub delay_ms: u64,
    pub state: RequestState,
}

/// Counters over all tokens (`GET /stats`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stats {
    /// Requests by status (keys are the statuses as text: `"200"`).
    pub by_status: BTreeMap<String, u64>,
    pub total_requests: u64,
    pub in_flight: u64,
    pub max_in_flight: u64,
    pub recorded: u64,
    pub evicted: u64,
    pub open_connections: u64,
    pub cuts: u64,
}

impl Stats {
    pub fn count(&self, status: u16) -> u64 {
        self.by_status
            .get(&status.to_string())
            .copied()
            .unwrap_or(0)
    }
}

/// Run-time settings (`GET`/`PUT /settings`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_max_age_secs: Option<u64>,
    /// 0: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_token_refresh_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// Applies to connections made after the next cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
}

/// `POST /cut`'s report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CutReport {
    pub connections_dropped: u64,
    pub requests_in_flight: u64,
    pub cuts: u64,
}

/// The stand-in's control API.
#[derive(Clone)]
pub struct StandIn {
    base: String,
    http: reqwest::Client,
}

impl StandIn {
    /// `CHAT_APNS_CONTROL`, default the native stack's `http://127.0.0.1:18444`.
    pub fn from_env() -> StandIn {
        let base =
            std::env::var("CHAT_APNS_CONTROL").unwrap_or_else(|_| "http://127.0.0.1:18444".into());
        StandIn::new(&base)
    }

    pub fn new(base: &str) -> StandIn {
        let http = reqwest::Client::builder()
            .timeout(crate::TIMEOUT)
            .build()
            .expect("http client");
        StandIn {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    pub async fn set_token_behaviour(&self, token: &str, b: &Behaviour) -> anyhow::Result<()> {
        let url = format!("{}/tokens/{token}/behaviour", self.base);
        self.check(self.http.put(url).json(b)).await?;
        Ok(())
    }

    /// Forget a token's script and records.
    pub async fn reset_token(&self, token: &str) -> anyhow::Result<()> {
        let url = format!("{}/tokens/{token}", self.base);
        self.check(self.http.delete(url)).await?;
        Ok(())
    }

    /// Start a window for every token (`next_requests` 0 ends the current one).
    pub async fn set_global_behaviour(&self, b: &GlobalBehaviour) -> anyhow::Result<()> {
        let url = format!("{}/behaviour", self.base);
        self.check(self.http.put(url).json(b)).await?;
        Ok(())
    }

    /// Every request for `token`, in arrival order.
    pub async fn requests(&self, token: &str) -> anyhow::Result<Vec<Recorded>> {
        let url = format!("{}/tokens/{token}/requests", self.base);
        Ok(self.check(self.http.get(url)).await?.json().await?)
    }

    pub async fn stats(&self) -> anyhow::Result<Stats> {
        let url = format!("{}/stats", self.base);
        Ok(self.check(self.http.get(url)).await?.json().await?)
    }

    /// Zero the counters (records stay).
    pub async fn reset_stats(&self) -> anyhow::Result<()> {
        let url = format!("{}/stats", self.base);
        self.check(self.http.delete(url)).await?;
        Ok(())
    }

    /// Change the fields given; returns every setting as it is now.
    pub async fn update_settings(&self, patch: &Settings) -> anyhow::Result<Settings> {
        let url = format!("{}/settings", self.base);
        Ok(self
            .check(self.http.put(url).json(patch))
            .await?
            .json()
            .await?)
    }

    /// Provider tokens older than `secs` get `403 ExpiredProviderToken` (Apple: 3600).
    pub async fn set_token_max_age(&self, secs: u64) -> anyhow::Result<()> {
        self.update_settings(&Settings {
            token_max_age_secs: Some(secs),
            ..Settings::default()
        })
        .await?;
        Ok(())
    }

    /// Drop every connection and request in flight; returns once the stand-in listens again.
    pub async fn cut(&self) -> anyhow::Result<CutReport> {
        let url = format!("{}/cut", self.base);
        Ok(self.check(self.http.post(url)).await?.json().await?)
    }

    async fn check(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!("APNs stand-in at {} (CHAT_APNS_CONTROL): {e}", self.base)
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let url = resp.url().clone();
        let body = resp.text().await.unwrap_or_default();
        anyhow::bail!("APNs stand-in: {url} answered {status}: {body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn behaviours_serialise_as_the_stand_in_reads_them() {
        let b = Behaviour::answers(vec![
            json!({"status": 429, "reason": "TooManyRequests"}),
            json!("ok"),
        ])
        .then(Answer::error(400, "BadDeviceToken"))
        .with_delay(30);
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"respond": [{"status": 429, "reason": "TooManyRequests"}, "ok"],
                   "delay_ms": 30, "then": {"status": 400, "reason": "BadDeviceToken"}})
        );
        assert_eq!(
            serde_json::to_value(Behaviour::delayed(5)).unwrap(),
            json!({"respond": [], "delay_ms": 5, "then": "ok"})
        );
        assert_eq!(
            serde_json::to_value(GlobalBehaviour {
                next_requests: 2,
                ..Default::default()
            })
            .unwrap(),
            json!({"next_requests": 2, "delay_ms": 0})
        );
        let r: Recorded = serde_json::from_value(json!({
            "received_at_us": 1, "method": "POST", "path": "/3/device/ab", "headers": {"apns-topic": "t"},
            "body": null, "status": 410, "reason": "Unregistered", "apns_id": "x", "delay_ms": 0,
            "state": "dropped"}))
        .unwrap();
        assert_eq!((r.body, r.state), (None, RequestState::Dropped));
    }
}
