//! JWT access tokens (HS256). The API issues them; the API and the gateways verify them with the
//! same key from configuration. Refresh tokens are opaque and live in PostgreSQL (see the API).
//!
//! An access token names its session (`sid`, the refresh-token family it was issued with), so a
//! logout or a detected refresh-token reuse can revoke exactly the tokens of that session (see
//! `chat_store::revocations`). Tokens minted before `sid` existed carry none and stay valid until
//! they expire.

use axum::http::{HeaderMap, header};
use chat_types::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iat: i64,
    exp: i64,
    /// Token type; only `access` is accepted where an access token is expected.
    typ: String,
    /// The session (refresh-token family) the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
}

/// What a verified access token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub user: UserId,
    /// The session it was issued in; `None` for tokens older than sessions in tokens.
    pub sid: Option<Uuid>,
    /// When it stops being valid (unix seconds).
    pub expires: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is invalid")]
    Invalid,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl_secs: u64,
}

impl TokenKeys {
    pub fn new(secret: &SecretString, access_ttl_secs: u64) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            access_ttl_secs,
        }
    }

    /// An access token without a session (as minted before sessions were in tokens): it can
    /// only expire, never be revoked. Tests use it to hold such a token.
    pub fn issue_access(&self, user: UserId) -> String {
        self.issue(user, None)
    }

    /// An access token of `user` in session `sid` (the refresh-token family).
    pub fn issue(&self, user: UserId, sid: Option<Uuid>) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.0,
            iat: now,
            exp: now + self.access_ttl_secs as i64,
            typ: "access".into(),
            sid,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    pub fn verify_access(&self, token: &str) -> Result<UserId, TokenError> {
        self.verify(token).map(|a| a.user)
    }

    /// The user, the session and when the token stops being valid: a WebSocket authorised by
    /// it is closed then (4401), so a connection never outlives its credentials. Whether the
    /// session was revoked is the caller's check (it needs Redis).
    pub fn verify(&self, token: &str) -> Result<Access, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != "access" {
            return Err(TokenError::Invalid);
        }
        Ok(Access {
            user: UserId(data.claims.sub),
            sid: data.claims.sid,
            expires: data.claims.exp,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, the one reading of it for the API and
/// the gateways. `Ok(None)`: no `Authorization` header. `Err(TokenError::Invalid)`: a header that
/// is not a bearer credential (another scheme, no token, not ASCII). The scheme is matched
/// ignoring case (RFC 9110 section 11.1) and white space around the token is ignored.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, TokenError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| TokenError::Invalid)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Invalid)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(TokenError::Invalid);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str, ttl: u64) -> TokenKeys {
        TokenKeys::new(&SecretString::from(secret.to_owned()), ttl)
    }

    #[test]
    fn issued_tokens_verify_and_name_the_user() {
        let k = keys("0123456789abcdef0123456789abcdef", 60);
        let u = UserId(Uuid::now_v7());
        assert_eq!(k.verify_access(&k.issue_access(u)), Ok(u));
    }

    #[test]
    fn session_tokens_name_their_session_and_older_tokens_none() {
        let k = keys("0123456789abcdef0123456789abcdef", 60);
        let u = UserId(Uuid::now_v7());
        let sid = Uuid::now_v7();
        let a = k.verify(&k.issue(u, Some(sid))).unwrap();
        assert_eq!((a.user, a.sid), (u, Some(sid)));
        let legacy = k.verify(&k.issue_access(u)).unwrap();
        assert_eq!((legacy.user, legacy.sid), (u, None));
        assert!(!k.issue_access(u).is_empty());
    }

    #[test]
    fn tokens_signed_with_another_key_are_invalid() {
        let a = keys("0123456789abcdef0123456789abcdef", 60);
        let b = keys("fedcba9876543210fedcba9876543210", 60);
        let t = a.issue_access(UserId(Uuid::now_v7()));
        assert_eq!(b.verify_access(&t), Err(TokenError::Invalid));
        assert_eq!(a.verify_access("not.a.jwt"), Err(TokenError::Invalid));
    }

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = authorization {
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_token_reads_the_authorization_header() {
        assert_eq!(bearer_token(&headers(None)), Ok(None));
        assert_eq!(bearer_token(&headers(Some("Bearer abc"))), Ok(Some("abc")));
        assert_eq!(
            bearer_token(&headers(Some("bearer  abc "))),
            Ok(Some("abc"))
        );
        for bad in ["Basic abc", "Bearer", "Bearer   ", "abc", ""] {
            assert_eq!(
                bearer_token(&headers(Some(bad))),
                Err(TokenError::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expired_tokens_are_refused_as_expired() {
        let k = keys("0123456789abcdef0123456789abcdef", 0);
        let t = k.issue_access(UserId(Uuid::now_v7()));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(k.verify_access(&t), Err(TokenError::Expired));
    }
}
