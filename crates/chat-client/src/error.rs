//! The one error type of the client: a refusal by the server keeps its HTTP status and the
//! error body's `code`, so callers (and tests) can switch on them.

use tokio_tungstenite::tungstenite;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request with the contract's error body.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A status the call does not expect, without an error body (a proxy's own page).
    #[error("unexpected status {status}: {body}")]
    Status { status: u16, body: String },
    /// A success whose body is not the documented type.
    #[error("unexpected body ({source}): {body}")]
    Decode {
        body: String,
        source: serde_json::Error,
    },
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// A bad URL, header or method given by the caller.
    #[error("invalid request: {0}")]
    Request(String),
    #[error("websocket: {0}")]
    WebSocket(Box<tungstenite::Error>),
    /// An `error` frame refused a request over the WebSocket (its `code`).
    #[error("refused: {0}")]
    Refused(String),
    /// The server closed the WebSocket (`code` as sent, see `chat_types::ws::close`).
    #[error("closed by the server: {}", describe_close(*.code, .reason))]
    Closed { code: Option<u16>, reason: String },
    /// The WebSocket ended without a close frame.
    #[error("connection ended without a close frame")]
    Ended,
    /// The server did not follow the protocol (no `ready` first, say).
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// No frame the caller waited for came in time; these came instead.
    #[error("timed out waiting for a frame; got {0}")]
    NoMatch(String),
}

fn describe_close(code: Option<u16>, reason: &str) -> String {
    match code {
        Some(c) if reason.is_empty() => format!("code {c}"),
        Some(c) => format!("code {c} ({reason})"),
        None => "no code".into(),
    }
}

impl From<tungstenite::Error> for Error {
    fn from(e: tungstenite::Error) -> Self {
        Error::WebSocket(Box::new(e))
    }
}

impl Error {
    /// The HTTP status of a refusal (REST, or a WebSocket upgrade refused before it happened).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Status { status, .. } => Some(*status),
            Error::Http(e) => e.status().map(|s| s.as_u16()),
            Error::WebSocket(e) => match e.as_ref() {
                tungstenite::Error::Http(res) => Some(res.status().as_u16()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The error body's `code` of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The close code, when the server closed the WebSocket.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Error::Closed { code, .. } => *code,
            _ => None,
        }
    }
}
