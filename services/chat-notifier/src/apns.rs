//! The APNs provider API client, as Apple documents it ("Sending notification requests to
//! APNs", "Establishing a token-based connection to APNs", "Handling notification responses
//! from APNs"): `POST /3/device/<token>` over HTTP/2 and TLS, authenticated by a provider token
//! (an ES256 JWT signed with the team's `.p8` key, renewed well within Apple's 20-60 minutes).
//! HTTP/2, TLS and connection reuse are hyper's and rustls' (inside reqwest); the JWT is
//! `jsonwebtoken`'s. This module only builds requests and reads answers; what an answer means
//! for a delivery is [`crate::sender`]'s.

use chat_store::push_outbox::Delivery;
use chat_types::notifications::PushEnvironment;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApnsConfig {
    /// `false`: decide and record deliveries, send nothing (a stack without APNs credentials).
    pub enabled: bool,
    pub endpoint_production: String,
    pub endpoint_sandbox: String,
    /// PEM file of the only CA trusted for the endpoints (the local stand-in); unset: the
    /// built-in web roots, which include Apple's.
    pub ca_file: Option<String>,
    /// The `.p8` key downloaded from Apple's developer account (PKCS#8 PEM).
    pub key_file: Option<String>,
    /// The key's 10-character id.
    pub key_id: String,
    /// The developer team's 10-character id.
    pub team_id: String,
    /// Age at which the provider token is renewed (Apple: no more often than every 20 and
    /// no less often than every 60 minutes).
    pub token_refresh_secs: u64,
    /// Time limit of one request.
    pub request_timeout_ms: u64,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        ApnsConfig {
            enabled: true,
            endpoint_production: "https://api.push.apple.com".into(),
            endpoint_sandbox: "https://api.sandbox.push.apple.com".into(),
            ca_file: None,
            key_file: None,
            key_id: String::new(),
            team_id: String::new(),
            token_refresh_secs: 50 * 60,
            request_timeout_ms: 10_000,
        }
    }
}

/// What APNs answered to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200: accepted for delivery.
    Accepted,
    /// Any other status, with Apple's `reason` and, for 410, since when the token is invalid
    /// (milliseconds since the epoch).
    Refused {
        status: u16,
        reason: String,
        timestamp_ms: Option<i64>,
    },
    /// No answer: connection refused or dropped, timeout, TLS.
    NoAnswer(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    reason: String,
    timestamp: Option<i64>,
}

pub struct Apns {
    http: reqwest::Client,
    production: String,
    sandbox: String,
    /// `None` when sending is disabled.
    tokens: Option<ProviderTokens>,
    request_timeout: Duration,
}

impl Apns {
    pub fn new(cfg: &ApnsConfig) -> anyhow::Result<Self> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            // APNs speaks only HTTP/2; all requests share one connection per endpoint.
            .http2_prior_knowledge()
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_while_idle(true)
            .pool_idle_timeout(None)
            .timeout(Duration::from_millis(cfg.request_timeout_ms));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("apns.ca_file: cannot read {ca}: {e}"))?;
            b = b
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        let tokens = if cfg.enabled {
            Some(ProviderTokens::new(cfg)?)
        } else {
            None
        };
        Ok(Apns {
            http: b.build()?,
            production: cfg.endpoint_production.trim_end_matches('/').to_owned(),
            sandbox: cfg.endpoint_sandbox.trim_end_matches('/').to_owned(),
            tokens,
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
        })
    }

    /// The longest one request may take.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub fn enabled(&self) -> bool {
        self.tokens.is_some()
    }

    /// Send one delivery. A `403 ExpiredProviderToken` renews the provider token and tries
    /// once more at once (the only retry made here).
    pub async fn send(&self, d: &Delivery) -> Answer {
        let Some(tokens) = &self.tokens else {
            return Answer::NoAnswer("apns.enabled is false".into());
        };
        let mut renewed = false;
        loop {
            let (jwt, generation) = match tokens.current() {
                Ok(t) => t,
                Err(e) => return Answer::NoAnswer(format!("provider token: {e}")),
            };
            let answer = self.post(d, &jwt).await;
            match &answer {
                Answer::Refused {
                    status: 403,
                    reason,
                    ..
                } if reason == "ExpiredProviderToken" && !renewed => {
                    tokens.renew_if(generation);
                    renewed = true;
                }
                _ => return answer,
            }
        }
    }

    async fn post(&self, d: &Delivery, jwt: &str) -> Answer {
        let base = match d.environment() {
            PushEnvironment::Production => &self.production,
            PushEnvironment::Sandbox => &self.sandbox,
        };
        let started = Instant::now();
        let resp = self
            .http
            .post(format!("{base}/3/device/{}", d.token))
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", &d.bundle_id)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", d.expires_at.timestamp().to_string())
            // A newer notification of the channel replaces the older one on the device; a
            // resend of the same delivery carries the same apns-id.
            .header("apns-collapse-id", d.channel_id.to_string())
            .header("apns-id", d.apns_id.to_string())
            .header("content-type", "application/json")
            .body(d.payload.clone())
            .send()
            .await;
        let answer = match resp {
            Err(e) => Answer::NoAnswer(error_chain(&e)),
            Ok(r) if r.status() == reqwest::StatusCode::OK => Answer::Accepted,
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                let parsed = serde_json::from_slice::<ErrorBody>(&body).ok();
                Answer::Refused {
                    status,
                    reason: parsed
                        .as_ref()
                        .map(|b| b.reason.clone())
                        .unwrap_or_default(),
                    timestamp_ms: parsed.and_then(|b| b.timestamp),
                }
            }
        };
        metrics::histogram!("chat_apns_request_seconds").record(started.elapsed().as_secs_f64());
        let (status, reason) = match &answer {
            Answer::Accepted => ("200".to_owned(), String::new()),
            Answer::Refused { status, reason, .. } => (status.to_string(), reason.clone()),
            Answer::NoAnswer(_) => ("none".to_owned(), String::new()),
        };
        metrics::counter!("chat_apns_requests_total", "status" => status, "reason" => reason)
            .increment(1);
        answer
    }
}

/// The error and its causes in one line (reqwest's own message says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The provider token, shared by every request, renewed when older than `refresh` or when
/// APNs calls it expired (once per token, however many requests say so).
struct ProviderTokens {
    key: EncodingKey,
    key_id: String,
    team_id: String,
    refresh: Duration,
    current: Mutex<Option<Current>>,
}

struct Current {
    jwt: Arc<str>,
    issued: Instant,
    generation: u64,
    /// APNs called it expired: the next request gets a new one.
    stale: bool,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
}

impl ProviderTokens {
    fn new(cfg: &ApnsConfig) -> anyhow::Result<Self> {
        let path = cfg.key_file.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "apns.key_file is not set: the .p8 key from Apple (or set CHAT__APNS__ENABLED=false)"
            )
        })?;
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("apns.key_file: cannot read {path}: {e}"))?;
        let key = EncodingKey::from_ec_pem(&pem)
            .map_err(|e| anyhow::anyhow!("apns.key_file {path} is not an EC key in PEM: {e}"))?;
        if cfg.key_id.is_empty() || cfg.team_id.is_empty() {
            anyhow::bail!("apns.key_id and apns.team_id must be set with apns.key_file");
        }
        let t = ProviderTokens {
            key,
            key_id: cfg.key_id.clone(),
            team_id: cfg.team_id.clone(),
            refresh: Duration::from_secs(cfg.token_refresh_secs),
            current: Mutex::new(None),
        };
        t.current()?; // a key that cannot sign fails at start, not at the first message
        Ok(t)
    }

    /// The token to use now and its generation.
    fn current(&self) -> anyhow::Result<(Arc<str>, u64)> {
        let mut cur = self.current.lock().expect("token lock");
        match &*cur {
            Some(c) if !c.stale && c.issued.elapsed() < self.refresh => {
                Ok((c.jwt.clone(), c.generation))
            }
            _ => {
                let generation = cur.as_ref().map_or(0, |c| c.generation + 1);
                let c = self.issue(generation)?;
                let out = (c.jwt.clone(), generation);
                *cur = Some(c);
                Ok(out)
            }
        }
    }

    /// APNs said the token of `generation` expired: make the next [`Self::current`] issue a new
    /// one, unless another request did so already.
    fn renew_if(&self, generation: u64) {
        let mut cur = self.current.lock().expect("token lock");
        if let Some(c) = &mut *cur
            && c.generation == generation
        {
            c.stale = true;
        }
        metrics::counter!("chat_apns_token_renewals_total", "why" => "expired").increment(1);
    }

    fn issue(&self, generation: u64) -> anyhow::Result<Current> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.team_id,
            iat: chrono::Utc::now().timestamp(),
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &self.key)?;
        tracing::info!(generation, "new APNs provider token");
        Ok(Current {
            jwt: jwt.into(),
            issued: Instant::now(),
            generation,
            stale: false,
        })
    }
}
