//! Extractors whose rejections are the contract's error bodies, and the client's address.

use crate::SharedState;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use chat_common::auth::{Access, TokenError, bearer_token};
use chat_store::objects::Origin;
use chat_types::UserId;
use chat_types::error_code as code;
use ipnet::IpNet;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// `axum::Json` with contract-shaped rejections (malformed JSON, wrong types, too large, a NUL
/// character in any field the body type has).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        let body: T = serde_json::from_value(v)
            .map_err(|e| ApiError::bad(code::INVALID_FIELD, format!("invalid body: {e}")))?;
        // NUL characters are refused in the fields the API reads (written back as JSON: every
        // field of the type, and only those). Unknown fields are ignored, whatever they hold,
        // as the document allows them.
        let known = serde_json::to_value(&body).map_err(|e| ApiError::Internal(e.into()))?;
        if let Some(field) = nul_in(&known, "") {
            return Err(nul_error(&format!("the field '{}'", field.escape_debug())));
        }
        Ok(ApiJson(body))
    }
}

/// The caller, from a valid `Authorization: Bearer <access token>` of a session that was not
/// revoked.
pub struct AuthUser(pub UserId);

impl FromRequestParts<SharedState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await.map(|a| AuthUser(a.user))
    }
}

/// [`AuthUser`] with all the token says: its session and its end.
pub struct AuthAccess(pub Access);

impl FromRequestParts<SharedState> for AuthAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await.map(AuthAccess)
    }
}

async fn authenticate(parts: &Parts, state: &SharedState) -> Result<Access, ApiError> {
    let token = match bearer_token(&parts.headers) {
        Ok(Some(token)) => token,
        Ok(None) => {
            return Err(ApiError::Unauthorized(
                code::MISSING_TOKEN,
                "send Authorization: Bearer <access_token>".into(),
            ));
        }
        Err(_) => {
            return Err(ApiError::Unauthorized(
                code::INVALID_TOKEN,
                "the Authorization header must be 'Bearer <token>'".into(),
            ));
        }
    };
    let access = match state.keys.verify(token) {
        Ok(a) => a,
        Err(TokenError::Expired) => {
            return Err(ApiError::Unauthorized(
                code::TOKEN_EXPIRED,
                "the access token has expired; refresh it".into(),
            ));
        }
        Err(TokenError::Invalid) => {
            return Err(ApiError::Unauthorized(
                code::INVALID_TOKEN,
                "the access token is invalid".into(),
            ));
        }
    };
    // One Redis round trip per request: a revoked session must stop working at once, not at
    // its tokens' expiry. Without Redis the answer is unknown, and unknown is not yes.
    if let Some(sid) = access.sid
        && state
            .revocations
            .is_revoked(sid)
            .await
            .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?
    {
        return Err(ApiError::Unauthorized(
            code::TOKEN_REVOKED,
            "this session has ended (logged out, or its refresh token was reused); log in again"
                .into(),
        ));
    }
    Ok(access)
}

/// Where a NUL character (U+0000) sits in a JSON value (`description`, `members[2]`), if any:
/// no stored text may hold one (PostgreSQL refuses it), so requests carrying one are refused.
fn nul_in(v: &serde_json::Value, path: &str) -> Option<String> {
    match v {
        serde_json::Value::String(s) => s.contains('\0').then(|| path.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item, &format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_in(item, &here)
            }
        }),
        _ => None,
    }
}

fn nul_error(place: &str) -> ApiError {
    ApiError::bad(
        code::NUL_CHARACTER,
        format!("{place} contains a NUL character (U+0000), which text may not hold"),
    )
}

/// Query parameters as text, with contract-shaped rejections; a NUL character is refused.
pub struct ApiQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(q) = Query::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        if let Some((k, _)) = q.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(nul_error(&format!(
                "the query parameter '{}'",
                k.escape_debug()
            )));
        }
        Ok(ApiQuery(q))
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy (the load balancer),
/// the address it reports in `X-Real-IP` (set by nginx, replacing any the client sent) or else
/// the last entry of `X-Forwarded-For` (the one the proxy appended).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<SharedState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(
            peer(parts),
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// The origin the client reached us through, which presigned URLs name (SigV4 signs the host,
/// so a URL works only through the origin it names): `scheme://` + the `Host` header (nginx
/// passes the client's on). The scheme is `X-Forwarded-Proto` when the peer is a trusted proxy
/// (nginx sets it), else `http`. `None` (the URLs then name `objects.public_base`) when there
/// is no single well-formed `Host`, or a trusted proxy's `X-Forwarded-Proto` is neither `http`
/// nor `https`.
pub struct ClientOrigin(pub Option<Origin>);

impl FromRequestParts<SharedState> for ClientOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientOrigin(client_origin(
            peer(parts),
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

fn client_origin(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<Origin> {
    // Exactly one of each: two `Host`s (or schemes) leave it unclear which one the client used.
    let single = |name: &str| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => Some(v.to_str().ok()),
            (None, _) => None,
            (Some(_), Some(_)) => Some(None),
        }
    };
    let scheme = if trusted_peer(peer, trusted) {
        match single("x-forwarded-proto") {
            None => "http",
            Some(v) => v?.trim(),
        }
    } else {
        "http"
    };
    Origin::from_host(scheme, single("host")??)
}

/// The peer's address (absent when the server was not given it).
fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Whether the peer is one of the trusted proxies, whose forwarding headers are believed.
fn trusted_peer(peer: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|p| trusted.iter().any(|n| n.contains(&p)))
}

fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let unspecified = IpAddr::from([0, 0, 0, 0]);
    let Some(peer) = peer else {
        return unspecified;
    };
    if !trusted_peer(Some(peer), trusted) {
        return peer;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-real-ip")
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| {
            header("x-forwarded-for")
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_characters_are_found_wherever_they_are() {
        assert_eq!(nul_in(&json!({"a": "x", "b": [1, "y"]}), ""), None);
        assert_eq!(
            nul_in(&json!({"name": "ok", "description": "a\u{0}b"}), ""),
            Some("description".into())
        );
        assert_eq!(
            nul_in(&json!({"x": {"list": ["ok", "\u{0}"]}}), ""),
            Some("x.list[1]".into())
        );
        assert_eq!(nul_in(&json!({"k\u{0}": 1}), ""), Some("k\u{0}".into()));
    }

    #[test]
    fn the_origin_is_the_host_with_the_scheme_from_trusted_proxies_only() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let proxy = Some("127.0.0.1".parse::<IpAddr>().unwrap());
        let stranger = Some("192.0.2.44".parse::<IpAddr>().unwrap());
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, v.parse().unwrap());
            }
            h
        };
        let origin = |peer, h: &HeaderMap| client_origin(peer, h, &trusted).map(|o| o.to_string());
        let https = headers(&[("host", "chat.example.com"), ("x-forwarded-proto", "https")]);
        assert_eq!(
            origin(proxy, &https).as_deref(),
            Some("https://chat.example.com")
        );
        // Anyone else's scheme is not believed; the host is theirs to name.
        assert_eq!(
            origin(stranger, &https).as_deref(),
            Some("http://chat.example.com")
        );
        assert_eq!(
            origin(None, &https).as_deref(),
            Some("http://chat.example.com")
        );
        // A trusted proxy that names no scheme: http.
        let local = headers(&[("host", "localhost:8080")]);
        assert_eq!(
            origin(proxy, &local).as_deref(),
            Some("http://localhost:8080")
        );
        let v6 = headers(&[("host", "[::1]:9090"), ("x-forwarded-proto", "HTTP")]);
        assert_eq!(origin(proxy, &v6).as_deref(), Some("http://[::1]:9090"));
        // A scheme from a proxy that is neither http nor https, or two of them: no origin.
        for proto in ["ftp", "https, http", ""] {
            let h = headers(&[("host", "chat.example.com"), ("x-forwarded-proto", proto)]);
            assert_eq!(origin(proxy, &h), None, "{proto:?}");
            assert_eq!(
                origin(stranger, &h).as_deref(),
                Some("http://chat.example.com"),
                "{proto:?} from a stranger is ignored"
            );
        }
        let two_protos = headers(&[
            ("host", "chat.example.com"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "http"),
        ]);
        assert_eq!(origin(proxy, &two_protos), None);
        // No Host, two of them, or one that is not a host and port: no origin.
        assert_eq!(
            origin(proxy, &headers(&[("x-forwarded-proto", "https")])),
            None
        );
        assert_eq!(
            origin(
                proxy,
                &headers(&[("host", "a.example"), ("host", "b.example")])
            ),
            None
        );
        for host in [
            "evil.example/chat-attachments",
            "user@localhost:8080",
            "local host",
            "localhost:8080:1",
            "",
        ] {
            assert_eq!(origin(proxy, &headers(&[("host", host)])), None, "{host:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            "host",
            axum::http::HeaderValue::from_bytes(b"caf\xc3\xa9.example").unwrap(),
        );
        assert_eq!(origin(proxy, &h), None, "not ASCII");
    }

    #[test]
    fn the_client_address_is_believed_only_from_trusted_proxies() {
        let trusted = vec!["127.0.0.1/32".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", "203.0.113.9".parse().unwrap());
        h.insert("x-forwarded-for", "1.2.3.4, 198.51.100.1".parse().unwrap());
        let proxy_ip: IpAddr = "127.0.0.1".parse().unwrap();
        let proxy = Some(proxy_ip);
        let stranger: IpAddr = "192.0.2.44".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(Some(stranger), &h, &trusted), stranger);
        h.remove("x-real-ip");
        // The proxy's own entry is the last one; what the client sent before it is not believed.
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), proxy_ip);
    }
}
