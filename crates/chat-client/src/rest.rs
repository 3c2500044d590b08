//! The REST API (`/api/v1/...`) through the load balancer: one method per endpoint, each
//! checking the documented success status and decoding the documented body.

use crate::{Error, Result};
use chat_types::rest::{
    Channel, ChannelList, Conversation, ConversationList, CreateChannelRequest, CreateDmRequest,
    DirectoryPage, DirectorySort, ErrorBody, LoginRequest, MemberList, MemberPresence, MessageList,
    PresenceList, RefreshRequest, RegisterRequest, Session, User, UserList, WsTicket,
};
use chat_types::{ChannelId, Message, MessageId, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// A client of the REST API. Cheap to clone (the HTTP client is shared).
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// Which history page to read (`GET /channels/{id}/messages`). Without a cursor: the newest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub limit: Option<u32>,
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
}

impl Page {
    /// The newest `limit` messages.
    pub fn newest(limit: u32) -> Page {
        Page {
            limit: Some(limit),
            ..Page::default()
        }
    }

    /// The `limit` messages just before `id`.
    pub fn before(id: MessageId, limit: u32) -> Page {
        Page {
            before: Some(id),
            ..Page::newest(limit)
        }
    }

    /// The `limit` messages just after `id`.
    pub fn after(id: MessageId, limit: u32) -> Page {
        Page {
            after: Some(id),
            ..Page::newest(limit)
        }
    }

    fn query(&self) -> String {
        let mut q = Vec::new();
        if let Some(l) = self.limit {
            q.push(format!("limit={l}"));
        }
        if let Some(b) = self.before {
            q.push(format!("before={b}"));
        }
        if let Some(a) = self.after {
            q.push(format!("after={a}"));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }
}

/// A direct conversation and whether this request created it (201) or found it (200).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectChannel {
    pub channel: Channel,
    pub created: bool,
}

/// Status and JSON body of a raw call, for asserting on error paths.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// The body as JSON (`Null` when empty, a string when not JSON).
    pub body: Value,
}

impl Reply {
    pub fn error_code(&self) -> Option<&str> {
        self.body.pointer("/error/code").and_then(Value::as_str)
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.body.clone()).map_err(|source| Error::Decode {
            body: self.body.to_string(),
            source,
        })
    }
}

impl Api {
    /// A client of `base_url` (`http://host:port`, the load balancer) with a 15 s timeout.
    pub fn new(base_url: &str) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Api::with_client(base_url, http))
    }

    /// A client using a configured `reqwest::Client` (timeouts, pool size).
    pub fn with_client(base_url: &str, http: reqwest::Client) -> Api {
        Api {
            http,
            base: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The HTTP client, for requests outside the contract (content types, oversized bodies).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Any request; `token` adds a bearer header, `body` a JSON body. Never fails on a status.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let method = method
            .parse::<reqwest::Method>()
            .map_err(|e| Error::Request(e.to_string()))?;
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
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

    // ------------------------------------------------------------------------------ auth

    /// `POST /auth/register`: 201 and a session.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<Session> {
        let body = RegisterRequest {
            username: username.into(),
            password: password.into(),
            display_name: display_name.map(Into::into),
        };
        self.post("/api/v1/auth/register", None, &body, 201).await
    }

    /// `POST /auth/login`: a wrong password and an unknown user are the same 401.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session> {
        let body = LoginRequest {
            username: username.into(),
            password: password.into(),
        };
        self.post("/api/v1/auth/login", None, &body, 200).await
    }

    /// `POST /auth/refresh`: a new session; the refresh token is rotated.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        let body = RefreshRequest {
            refresh_token: refresh_token.into(),
        };
        self.post("/api/v1/auth/refresh", None, &body, 200).await
    }

    /// `POST /auth/logout`: 204.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let body = RefreshRequest {
            refresh_token: refresh_token.into(),
        };
        let req = self.http.post(self.url("/api/v1/auth/logout")).json(&body);
        self.expect_empty(req, 204).await
    }

    /// `POST /auth/logout-all`: 204; every session of the caller ends.
    pub async fn logout_all(&self, token: &str) -> Result<()> {
        let req = self
            .http
            .post(self.url("/api/v1/auth/logout-all"))
            .bearer_auth(token);
        self.expect_empty(req, 204).await
    }

    /// `POST /ws-tickets`: a single-use ticket for `/ws?ticket=` (see
    /// [`crate::Connector::connect_with_ticket`]).
    pub async fn ws_ticket(&self, token: &str) -> Result<WsTicket> {
        let req = self
            .http
            .post(self.url("/api/v1/ws-tickets"))
            .bearer_auth(token);
        Ok(self.expect(req, &[201]).await?.0)
    }

    // ------------------------------------------------------------------------------ users

    /// `GET /users/me`.
    pub async fn me(&self, token: &str) -> Result<User> {
        self.get(token, "/api/v1/users/me").await
    }

    /// `GET /users?query=<text>`: users whose username starts with `text` or whose display
    /// name contains it, ignoring case; the exact username first, at most 20.
    pub async fn search_users(&self, token: &str, text: &str) -> Result<Vec<User>> {
        let req = self
            .http
            .get(self.url("/api/v1/users"))
            .query(&[("query", text)])
            .bearer_auth(token);
        Ok(self.expect::<UserList>(req, &[200]).await?.0.users)
    }

    // ------------------------------------------------------------------------------ channels

    /// `POST /channels`: 201; the creator is a member.
    pub async fn create_channel(
        &self,
        token: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Channel> {
        let body = CreateChannelRequest {
            name: name.into(),
            description: description.map(Into::into),
        };
        self.post("/api/v1/channels", Some(token), &body, 201).await
    }

    /// `GET /channels`: the caller's groups and direct conversations.
    pub async fn channels(&self, token: &str) -> Result<Vec<Channel>> {
        let list: ChannelList = self.get(token, "/api/v1/channels").await?;
        Ok(list.channels)
    }

    /// `GET /channels` with read state: the caller's conversations, most recent activity
    /// first, with the last message, read position, unread and mention counts.
    pub async fn conversations(&self, token: &str) -> Result<Vec<Conversation>> {
        let list: ConversationList = self.get(token, "/api/v1/channels").await?;
        Ok(list.channels)
    }

    /// `GET /channels/search?query=<text>`: group channels anyone may join.
    pub async fn search_channels(&self, token: &str, text: &str) -> Result<Vec<Channel>> {
        let req = self
            .http
            .get(self.url("/api/v1/channels/search"))
            .query(&[("query", text)])
            .bearer_auth(token);
        Ok(self.expect::<ChannelList>(req, &[200]).await?.0.channels)
    }

    /// `GET /channels/directory`: one page of group channels in `sort`'s order (the server's
    /// default, by members, when `None`); pass the page's `next_cursor` for the next one.
    pub async fn channel_directory(
        &self,
        token: &str,
        sort: Option<DirectorySort>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<DirectoryPage> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = sort {
            query.push(("sort", s.as_str().to_string()));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        let req = self
            .http
            .get(self.url("/api/v1/channels/directory"))
            .query(&query)
            .bearer_auth(token);
        Ok(self.expect::<DirectoryPage>(req, &[200]).await?.0)
    }

    /// `POST /channels/{id}/join`: joining twice is not an error.
    pub async fn join(&self, token: &str, channel: ChannelId) -> Result<Channel> {
        let req = self
            .http
            .post(self.url(&format!("/api/v1/channels/{channel}/join")))
            .bearer_auth(token);
        Ok(self.expect(req, &[200]).await?.0)
    }

    /// `POST /channels/{id}/leave`: 204, also when not a member.
    pub async fn leave(&self, token: &str, channel: ChannelId) -> Result<()> {
        let req = self
            .http
            .post(self.url(&format!("/api/v1/channels/{channel}/leave")))
            .bearer_auth(token);
        self.expect_empty(req, 204).await
    }

    /// `GET /channels/{id}/members`: members only.
    pub async fn members(&self, token: &str, channel: ChannelId) -> Result<Vec<User>> {
        let list: MemberList = self
            .get(token, &format!("/api/v1/channels/{channel}/members"))
            .await?;
        Ok(list.members)
    }

    /// `GET /channels/{id}/presence`: each member online or not, and last seen (members only).
    pub async fn presence(&self, token: &str, channel: ChannelId) -> Result<Vec<MemberPresence>> {
        let list: PresenceList = self
            .get(token, &format!("/api/v1/channels/{channel}/presence"))
            .await?;
        Ok(list.members)
    }

    /// `POST /dms`: the direct conversation with `user`; the same pair always gets the same one.
    pub async fn open_dm(&self, token: &str, user: UserId) -> Result<DirectChannel> {
        let req = self
            .http
            .post(self.url("/api/v1/dms"))
            .bearer_auth(token)
            .json(&CreateDmRequest { user_id: user });
        let (channel, status) = self.expect(req, &[200, 201]).await?;
        Ok(DirectChannel {
            channel,
            created: status == 201,
        })
    }

    /// `GET /channels/{id}/messages`: one page, oldest first.
    pub async fn history(
        &self,
        token: &str,
        channel: ChannelId,
        page: Page,
    ) -> Result<Vec<Message>> {
        let path = format!("/api/v1/channels/{channel}/messages{}", page.query());
        let list: MessageList = self.get(token, &path).await?;
        Ok(list.messages)
    }

    /// `GET /openapi.json`: the OpenAPI document.
    pub async fn openapi(&self) -> Result<Value> {
        let req = self.http.get(self.url("/api/v1/openapi.json"));
        Ok(self.expect(req, &[200]).await?.0)
    }

    // ------------------------------------------------------------------------------ plumbing

    async fn get<T: DeserializeOwned>(&self, token: &str, path: &str) -> Result<T> {
        let req = self.http.get(self.url(path)).bearer_auth(token);
        Ok(self.expect(req, &[200]).await?.0)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
        status: u16,
    ) -> Result<T> {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Ok(self.expect(req, &[status]).await?.0)
    }

    /// Send; on one of the `ok` statuses decode the body, otherwise turn it into an error.
    async fn expect<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        ok: &[u16],
    ) -> Result<(T, u16)> {
        let res = req.send().await?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        if !ok.contains(&status) {
            return Err(refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(|t| (t, status))
            .map_err(|source| Error::Decode {
                body: String::from_utf8_lossy(&bytes).into_owned(),
                source,
            })
    }

    async fn expect_empty(&self, req: reqwest::RequestBuilder, ok: u16) -> Result<()> {
        let res = req.send().await?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        if status != ok {
            return Err(refusal(status, &bytes));
        }
        Ok(())
    }
}

/// The error of an unexpected status: the contract's error body when there is one.
pub(crate) fn refusal(status: u16, bytes: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => Error::Api {
            status,
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => Error::Status {
            status,
            body: String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_their_cursor_and_limit() {
        let id = MessageId(uuid::Uuid::nil());
        assert_eq!(Page::default().query(), "");
        assert_eq!(Page::newest(5).query(), "?limit=5");
        assert_eq!(
            Page::before(id, 100).query(),
            format!("?limit=100&before={id}")
        );
        assert_eq!(Page::after(id, 30).query(), format!("?limit=30&after={id}"));
    }

    #[test]
    fn a_refusal_keeps_status_and_code() {
        let e = refusal(
            409,
            br#"{"error":{"code":"username_taken","message":"taken"}}"#,
        );
        assert_eq!((e.status(), e.code()), (Some(409), Some("username_taken")));
        let e = refusal(502, b"<html>bad gateway</html>");
        assert_eq!((e.status(), e.code()), (Some(502), None));
    }
}
