//! The WebSocket (`/ws`): a [`Connector`] opens a connection and waits for `ready`; a
//! [`Connection`] sends frames and reads them, typed ([`ServerFrame`]) or as text for callers
//! that parse frames their own way.
//!
//! Plain `ws://` only: clients reach the load balancer (or a gateway) on loopback or a private
//! network, and the workspace builds `tokio-tungstenite` without TLS.

use crate::{Error, Result};
use chat_types::UserId;
use chat_types::events::ChannelEvent;
use chat_types::ws::{ClientFrame, ServerFrame};
use chat_types::{ChannelId, EventId, Message, MessageId};
use futures::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How to open connections: where, how the token travels, socket settings and timeouts.
#[derive(Clone, Debug)]
pub struct Connector {
    url: String,
    /// Connect the TCP socket here instead of resolving the URL's host on every connect.
    addr: Option<SocketAddr>,
    token_in_query: bool,
    config: WebSocketConfig,
    tcp_timeout: Duration,
    handshake_timeout: Duration,
    ready_timeout: Duration,
    frame_timeout: Option<Duration>,
}

impl Connector {
    /// Connections to `ws_url` (`ws://host:port/ws`).
    pub fn new(ws_url: &str) -> Connector {
        Connector {
            url: ws_url.to_string(),
            addr: None,
            token_in_query: false,
            config: WebSocketConfig::default(),
            tcp_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(15),
            ready_timeout: Duration::from_secs(10),
            frame_timeout: None,
        }
    }

    /// Connections to the `/ws` of the load balancer at `base_url` (`http://host:port`).
    pub fn for_base(base_url: &str) -> Connector {
        let base = base_url.trim_end_matches('/');
        Connector::new(&(base.replacen("http", "ws", 1) + "/ws"))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connect every TCP socket to `addr` (the URL still names the host in the request).
    pub fn connect_to(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Send the token as `?token=` (as browsers must) instead of the `Authorization` header.
    pub fn token_in_query(mut self, yes: bool) -> Self {
        self.token_in_query = yes;
        self
    }

    /// The WebSocket settings (buffer sizes, frame limits).
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Bound every read of [`Connection::next_frame`] and [`Connection::until`] (default: none).
    pub fn frame_timeout(mut self, wait: Duration) -> Self {
        self.frame_timeout = Some(wait);
        self
    }

    /// Open a connection with `token` and wait for its `ready` frame.
    pub async fn connect(&self, token: &str) -> Result<Connection> {
        self.connect_from(token, None).await
    }

    /// [`Connector::connect`] from a given local address (spreads source ports over addresses).
    pub async fn connect_from(&self, token: &str, source: Option<IpAddr>) -> Result<Connection> {
        let credential = if self.token_in_query {
            Credential::QueryToken(token)
        } else {
            Credential::Header(token)
        };
        self.open(credential, source, false).await
    }

    /// A connection whose first frame will be a `resume` (`?resume=1`): the gateway holds live
    /// messages until that `resume` is served, with no time limit, so none can overtake it.
    pub async fn connect_resuming(
        &self,
        token: &str,
        source: Option<IpAddr>,
    ) -> Result<Connection> {
        let credential = if self.token_in_query {
            Credential::QueryToken(token)
        } else {
            Credential::Header(token)
        };
        self.open(credential, source, true).await
    }

    /// Open a connection with a single-use ticket (`?ticket=`, from
    /// [`crate::Api::ws_ticket`]), as browsers do, and wait for its `ready` frame.
    pub async fn connect_with_ticket(&self, ticket: &str) -> Result<Connection> {
        self.open(Credential::Ticket(ticket), None, false).await
    }

    async fn open(
        &self,
        credential: Credential<'_>,
        source: Option<IpAddr>,
        resume: bool,
    ) -> Result<Connection> {
        let addr = match self.addr {
            Some(a) => a,
            None => self.resolve().await?,
        };
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(io)?;
        if let Some(ip) = source {
            sock.bind(SocketAddr::new(ip, 0)).map_err(io)?;
        }
        let stream = tokio::time::timeout(self.tcp_timeout, sock.connect(addr))
            .await
            .map_err(|_| Error::Timeout("tcp connect"))?
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut query = match credential {
            Credential::Header(_) => Vec::new(),
            Credential::QueryToken(token) => vec![format!("token={token}")],
            Credential::Ticket(ticket) => vec![format!("ticket={ticket}")],
        };
        if resume {
            query.push("resume=1".to_string());
        }
        let url = if query.is_empty() {
            self.url.clone()
        } else {
            format!("{}?{}", self.url, query.join("&"))
        };
        let mut req = url.into_client_request()?;
        if let Credential::Header(token) = credential {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Error::Request("token is not a valid header value".into()))?;
            req.headers_mut().insert("authorization", value);
        }
        let (stream, _) = tokio::time::timeout(
            self.handshake_timeout,
            tokio_tungstenite::client_async_with_config(
                req,
                MaybeTlsStream::Plain(stream),
                Some(self.config),
            ),
        )
        .await
        .map_err(|_| Error::Timeout("websocket handshake"))?
        .map_err(upgrade_refused)?;
        let mut conn = Connection {
            stream,
            user_id: UserId(Default::default()),
            connection_id: String::new(),
            frame_timeout: self.frame_timeout,
            backlog: Default::default(),
        };
        match conn.next_within(self.ready_timeout).await? {
            Some(ServerFrame::Ready {
                user_id,
                connection_id,
            }) => {
                conn.user_id = user_id;
                conn.connection_id = connection_id;
                Ok(conn)
            }
            Some(other) => Err(Error::Protocol(format!("expected ready, got {other:?}"))),
            None => Err(Error::Timeout("ready frame")),
        }
    }

    async fn resolve(&self) -> Result<SocketAddr> {
        let req = self.url.as_str().into_client_request()?;
        let uri = req.uri();
        let host = uri.host().unwrap_or("localhost").trim_matches(['[', ']']);
        let port = uri.port_u16().unwrap_or(80);
        tokio::net::lookup_host((host, port))
            .await
            .map_err(io)?
            .next()
            .ok_or_else(|| Error::Request(format!("cannot resolve {}", self.url)))
    }
}

/// How a connection proves who it is.
#[derive(Clone, Copy)]
enum Credential<'a> {
    /// `Authorization: Bearer <token>`.
    Header(&'a str),
    /// `?token=<token>`.
    QueryToken(&'a str),
    /// `?ticket=<ticket>`.
    Ticket(&'a str),
}

/// An upgrade refused with the contract's error body becomes [`Error::Api`], so callers see its
/// status and `code` as they do for REST.
fn upgrade_refused(e: tokio_tungstenite::tungstenite::Error) -> Error {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(res) => {
            let body = res.body().as_deref().unwrap_or_default();
            crate::rest::refusal(res.status().as_u16(), body)
        }
        e => e.into(),
    }
}

fn io(e: std::io::Error) -> Error {
    Error::from(tokio_tungstenite::tungstenite::Error::Io(e))
}

/// One open connection, after its `ready` frame.
pub struct Connection {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    user_id: UserId,
    connection_id: String,
    frame_timeout: Option<Duration>,
    /// Frames read while waiting for an acknowledgement, not yet handed out (see
    /// [`Connection::until_keeping`]): read again before the socket.
    backlog: std::collections::VecDeque<Utf8Bytes>,
}

impl Connection {
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    /// `<gateway>:<n>`, from `ready`.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    /// The gateway instance this connection landed on.
    pub fn gateway(&self) -> &str {
        self.connection_id.split(':').next().unwrap_or_default()
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        let text = serde_json::to_string(frame).expect("client frames serialise");
        self.send_text(text).await
    }

    /// Any text frame, also one that is not a valid [`ClientFrame`].
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<()> {
        self.stream.send(WsMessage::Text(text.into())).await?;
        Ok(())
    }

    /// A `send` frame.
    pub async fn send_message(
        &mut self,
        channel: ChannelId,
        client_msg_id: &str,
        body: &str,
    ) -> Result<()> {
        self.send(&ClientFrame::Send {
            channel_id: channel,
            client_msg_id: client_msg_id.into(),
            body: body.into(),
            reply_to: None,
            attachments: Vec::new(),
        })
        .await
    }

    /// A `send` frame carrying completed uploads (`body` may be empty).
    pub async fn send_with_attachments(
        &mut self,
        channel: ChannelId,
        client_msg_id: &str,
        body: &str,
        attachments: &[uuid::Uuid],
    ) -> Result<()> {
        self.send(&ClientFrame::Send {
            channel_id: channel,
            client_msg_id: client_msg_id.into(),
            body: body.into(),
            reply_to: None,
            attachments: attachments.to_vec(),
        })
        .await
    }

    /// A `send` frame answering `reply_to`.
    pub async fn send_reply(
        &mut self,
        channel: ChannelId,
        client_msg_id: &str,
        body: &str,
        reply_to: MessageId,
    ) -> Result<()> {
        self.send(&ClientFrame::Send {
            channel_id: channel,
            client_msg_id: client_msg_id.into(),
            body: body.into(),
            reply_to: Some(reply_to),
            attachments: Vec::new(),
        })
        .await
    }

    /// An `edit`, `delete`, `react` or `unreact` frame, then its `event_ack` (frames before it
    /// are passed over): the event's id. A refusal naming this `client_event_id` is an
    /// [`Error::Refused`].
    pub async fn change_acked(&mut self, frame: &ClientFrame) -> Result<EventId> {
        let cid = match frame {
            ClientFrame::Edit {
                client_event_id, ..
            }
            | ClientFrame::Delete {
                client_event_id, ..
            }
            | ClientFrame::React {
                client_event_id, ..
            }
            | ClientFrame::Unreact {
                client_event_id, ..
            } => client_event_id.clone(),
            _ => panic!("change_acked takes edit, delete, react or unreact"),
        };
        self.send(frame).await?;
        let r = self
            .until_keeping(|f| match f {
                ServerFrame::EventAck {
                    client_event_id,
                    event_id,
                } if *client_event_id == cid => Some(Ok(*event_id)),
                ServerFrame::Error {
                    code,
                    client_event_id: Some(c),
                    ..
                } if *c == cid => Some(Err(code.clone())),
                _ => None,
            })
            .await?;
        r.map_err(Error::Refused)
    }

    /// The next `event` frame (other frames are passed over).
    pub async fn next_event(&mut self) -> Result<ChannelEvent> {
        let (e, _) = self
            .until(|f| match f {
                ServerFrame::Event { event } => Some(event.clone()),
                _ => None,
            })
            .await?;
        Ok(e)
    }

    /// A `typing` frame: the user is typing in `channel`. Nothing comes back unless it is
    /// refused (an `error` frame: not a member, unknown channel); the gateway forwards at most
    /// one per user and channel per [`chat_types::limits::TYPING_INTERVAL_MS`].
    pub async fn typing(&mut self, channel: ChannelId) -> Result<()> {
        self.send(&ClientFrame::Typing {
            channel_id: channel,
        })
        .await
    }

    /// The next `typing` frame (other frames are passed over): who is typing where.
    pub async fn next_typing(&mut self) -> Result<(ChannelId, UserId)> {
        let (t, _) = self
            .until(|f| match f {
                ServerFrame::Typing {
                    channel_id,
                    user_id,
                    ..
                } => Some((*channel_id, *user_id)),
                _ => None,
            })
            .await?;
        Ok(t)
    }

    /// The next `presence` frame about `user` (other frames are passed over): whether they
    /// are online, and when they were last seen if not.
    pub async fn next_presence_of(
        &mut self,
        user: UserId,
    ) -> Result<(bool, Option<chrono::DateTime<chrono::Utc>>)> {
        let (p, _) = self
            .until(|f| match f {
                ServerFrame::Presence {
                    user_id,
                    online,
                    last_seen_at,
                } if *user_id == user => Some((*online, *last_seen_at)),
                _ => None,
            })
            .await?;
        Ok(p)
    }

    /// Send a message and wait for its `ack` (frames before it are passed over): the message as
    /// acked (no `seq` yet: an ack means Kafka has it, not yet the store).
    pub async fn send_acked(
        &mut self,
        channel: ChannelId,
        client_msg_id: &str,
        body: &str,
    ) -> Result<Message> {
        self.send_message(channel, client_msg_id, body).await?;
        self.until_keeping(|f| match f {
            ServerFrame::Ack {
                client_msg_id: c,
                message,
            } if c == client_msg_id => Some(message.clone()),
            _ => None,
        })
        .await
    }

    /// A `mark_read` frame: this user has read `channel` up to `seq`.
    pub async fn mark_read(&mut self, channel: ChannelId, seq: i64) -> Result<()> {
        self.send(&ClientFrame::MarkRead {
            channel_id: channel,
            seq,
        })
        .await
    }

    /// The next `message` frame (other frames are passed over).
    pub async fn next_message(&mut self) -> Result<Message> {
        let (m, _) = self
            .until(|f| match f {
                ServerFrame::Message { message } => Some(message.clone()),
                _ => None,
            })
            .await?;
        Ok(m)
    }

    /// The next text frame as it came. Control frames are answered by the library and skipped;
    /// a close is an [`Error::Closed`]. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn next_text(&mut self) -> Result<Utf8Bytes> {
        if let Some(t) = self.backlog.pop_front() {
            return Ok(t);
        }
        loop {
            match self.stream.next().await {
                None => return Err(Error::Ended),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(WsMessage::Text(t))) => return Ok(t),
                Some(Ok(WsMessage::Close(c))) => {
                    return Err(Error::Closed {
                        code: c.as_ref().map(|f| u16::from(f.code)),
                        reason: c.map(|f| f.reason.to_string()).unwrap_or_default(),
                    });
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next frame, within the connector's frame timeout if it set one.
    pub async fn next_frame(&mut self) -> Result<ServerFrame> {
        match self.frame_timeout {
            Some(wait) => self
                .next_within(wait)
                .await?
                .ok_or(Error::Timeout("waiting for a frame")),
            None => parse(&self.next_text().await?),
        }
    }

    /// The next frame, or `None` if nothing arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<ServerFrame>> {
        match tokio::time::timeout(wait, self.next_text()).await {
            Err(_) => Ok(None),
            Ok(text) => parse(&text?).map(Some),
        }
    }

    /// Read frames until `pick` accepts one; the frames it passed over are returned too. The
    /// whole wait is bounded by the frame timeout when the connector set one.
    pub async fn until<T>(
        &mut self,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> Result<(T, Vec<ServerFrame>)> {
        let deadline = self.frame_timeout.map(|w| tokio::time::Instant::now() + w);
        let mut skipped = Vec::new();
        loop {
            let text = match deadline {
                None => self.next_text().await?,
                Some(d) => match tokio::time::timeout_at(d, self.next_text()).await {
                    Ok(text) => text?,
                    Err(_) => return Err(Error::NoMatch(format!("{skipped:?}"))),
                },
            };
            let f = parse(&text)?;
            if let Some(t) = pick(&f) {
                return Ok((t, skipped));
            }
            skipped.push(f);
        }
    }

    /// Like [`Connection::until`], but the frames passed over stay to be read next, in order:
    /// what waiting for an `ack` uses, since nothing orders an `ack` before or after the
    /// `message` frame of the same send (or the `event_ack` and the `event` of a change).
    pub async fn until_keeping<T>(
        &mut self,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> Result<T> {
        let deadline = self.frame_timeout.map(|w| tokio::time::Instant::now() + w);
        let mut skipped: Vec<Utf8Bytes> = Vec::new();
        let found = loop {
            let text = match deadline {
                None => self.next_text().await,
                Some(d) => match tokio::time::timeout_at(d, self.next_text()).await {
                    Ok(text) => text,
                    Err(_) => Err(Error::NoMatch(format!("{skipped:?}"))),
                },
            };
            let text = match text {
                Ok(t) => t,
                Err(e) => break Err(e),
            };
            match parse(&text) {
                Ok(f) => match pick(&f) {
                    Some(t) => break Ok(t),
                    None => skipped.push(text),
                },
                Err(e) => break Err(e),
            }
        };
        for t in skipped.into_iter().rev() {
            self.backlog.push_front(t);
        }
        found
    }

    /// Close politely, waiting at most `wait` for the server's answer.
    pub async fn close(mut self, wait: Duration) {
        let _ = tokio::time::timeout(wait, self.stream.close(None)).await;
    }
}

fn parse(text: &str) -> Result<ServerFrame> {
    serde_json::from_str(text).map_err(|source| Error::Decode {
        body: text.to_string(),
        source,
    })
}
