//! A client of the public contract for end-to-end tests: REST through nginx and WebSockets
//! through nginx, exactly as the web and iOS clients use them. Nothing here talks to a service
//! or store directly.
//!
//! Every wait has a timeout; every name is unique per run, so tests can share one stack.

pub mod harness;

use anyhow::{Context, anyhow, bail};
use chat_types::rest::{Channel, LoginRequest, MessageList, RegisterRequest, Session};
use chat_types::ws::{ClientFrame, ServerFrame};
use chat_types::{ChannelId, UserId};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The load balancer: `CHAT_BASE_URL`, default the native stack's nginx.
pub fn base_url() -> String {
    std::env::var("CHAT_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// A name nobody else in this run uses.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("http client"),
            base: base_url(),
        }
    }
}

/// A status and JSON body, for asserting on error paths.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn error_code(&self) -> Option<&str> {
        self.body.pointer("/error/code").and_then(Value::as_str)
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_value(self.body.clone())
            .with_context(|| format!("unexpected body {}", self.body))
    }
}

impl Api {
    /// Any request; `token` adds a bearer header, `body` a JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let mut req = self
            .http
            .request(method.parse()?, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply { status, body })
    }

    pub async fn register(&self, prefix: &str) -> anyhow::Result<Session> {
        let req = RegisterRequest {
            username: unique(prefix),
            password: "correct horse battery".into(),
            display_name: None,
        };
        let r = self
            .call(
                "POST",
                "/api/v1/auth/register",
                None,
                Some(serde_json::to_value(&req)?),
            )
            .await?;
        if r.status != 201 {
            bail!("register: {} {}", r.status, r.body);
        }
        r.json()
    }

    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<Reply> {
        let req = LoginRequest {
            username: username.into(),
            password: password.into(),
        };
        self.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(serde_json::to_value(&req)?),
        )
        .await
    }

    pub async fn create_channel(&self, token: &str, name: &str) -> anyhow::Result<Channel> {
        let r = self
            .call(
                "POST",
                "/api/v1/channels",
                Some(token),
                Some(serde_json::json!({"name": name})),
            )
            .await?;
        if r.status != 201 {
            bail!("create channel: {} {}", r.status, r.body);
        }
        r.json()
    }

    pub async fn join(&self, token: &str, channel: ChannelId) -> anyhow::Result<Channel> {
        let r = self
            .call(
                "POST",
                &format!("/api/v1/channels/{channel}/join"),
                Some(token),
                None,
            )
            .await?;
        if r.status != 200 {
            bail!("join: {} {}", r.status, r.body);
        }
        r.json()
    }

    pub async fn history(
        &self,
        token: &str,
        channel: ChannelId,
        query: &str,
    ) -> anyhow::Result<MessageList> {
        let r = self
            .call(
                "GET",
                &format!("/api/v1/channels/{channel}/messages{query}"),
                Some(token),
                None,
            )
            .await?;
        if r.status != 200 {
            bail!("history: {} {}", r.status, r.body);
        }
        r.json()
    }
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One WebSocket connection through nginx, after its `ready` frame.
pub struct Ws {
    stream: Stream,
    pub user_id: UserId,
    pub connection_id: String,
}

impl Ws {
    pub async fn connect(token: &str) -> anyhow::Result<Ws> {
        let url = base_url().replacen("http", "ws", 1) + "/ws";
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (stream, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(req))
            .await
            .context("websocket connect timed out")??;
        let mut ws = Ws {
            stream,
            user_id: UserId(uuid::Uuid::nil()),
            connection_id: String::new(),
        };
        match ws.next().await? {
            ServerFrame::Ready {
                user_id,
                connection_id,
            } => {
                ws.user_id = user_id;
                ws.connection_id = connection_id;
                Ok(ws)
            }
            other => bail!("expected ready, got {other:?}"),
        }
    }

    /// The gateway instance this connection landed on (`connection_id` is `<gateway>:<n>`).
    pub fn gateway(&self) -> &str {
        self.connection_id.split(':').next().unwrap_or_default()
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> anyhow::Result<()> {
        self.send_raw(&serde_json::to_string(frame)?).await
    }

    pub async fn send_raw(&mut self, text: &str) -> anyhow::Result<()> {
        self.stream.send(WsMessage::text(text)).await?;
        Ok(())
    }

    pub async fn send_message(
        &mut self,
        channel: ChannelId,
        client_msg_id: &str,
        body: &str,
    ) -> anyhow::Result<()> {
        self.send(&ClientFrame::Send {
            channel_id: channel,
            client_msg_id: client_msg_id.into(),
            body: body.into(),
        })
        .await
    }

    /// The next data frame from the server, within [`TIMEOUT`].
    pub async fn next(&mut self) -> anyhow::Result<ServerFrame> {
        self.next_within(TIMEOUT)
            .await?
            .ok_or_else(|| anyhow!("no frame within {TIMEOUT:?}"))
    }

    /// The next data frame, or `None` if nothing arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> anyhow::Result<Option<ServerFrame>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => bail!("connection closed"),
                Ok(Some(m)) => m?,
            };
            match msg {
                WsMessage::Text(t) => {
                    return Ok(Some(
                        serde_json::from_str(t.as_str())
                            .with_context(|| format!("bad frame {t}"))?,
                    ));
                }
                WsMessage::Close(c) => bail!("closed by server: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Read frames until `pick` accepts one; frames it passes over are returned too.
    pub async fn until<T>(
        &mut self,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> anyhow::Result<(T, Vec<ServerFrame>)> {
        let mut skipped = Vec::new();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self
                .next_within(left)
                .await?
                .ok_or_else(|| anyhow!("timed out; got {skipped:?}"))?;
            if let Some(t) = pick(&f) {
                return Ok((t, skipped));
            }
            skipped.push(f);
        }
    }
}

/// Connect until the connection lands on a gateway other than `not` (nginx spreads new
/// connections over the gateways; a few tries always reach the other one).
pub async fn connect_elsewhere(token: &str, not: &str) -> anyhow::Result<Ws> {
    for _ in 0..20 {
        let ws = Ws::connect(token).await?;
        if ws.gateway() != not {
            return Ok(ws);
        }
    }
    bail!("every connection landed on {not}: is only one gateway behind nginx?")
}
