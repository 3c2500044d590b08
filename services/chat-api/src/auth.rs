//! Accounts and sessions. Passwords are argon2id hashes, computed on the API's hashing threads
//! ([`crate::hashing`]); logins and registrations are throttled ([`crate::throttle`]). Refresh
//! tokens are opaque random strings stored as SHA-256 hashes; each refresh
//! rotates the token, and a reused token revokes its whole family.
//!
//! A family is a session: it begins at a login (or registration), and every access token issued
//! in it names it (`sid`). Logout ends the session of the refresh token given; presenting a
//! refresh token that was already rotated away ends its session too (someone holds a copy).
//! Ending a session revokes its access tokens at once, over REST and on every gateway, whose
//! sockets of that session close with 4401 ([`chat_store::revocations`]). Other sessions of the
//! user (other devices) are not touched, unless the user logs out everywhere.

use crate::SharedState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthAccess, AuthUser, ClientIp};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use chat_store::pg::{CreateUserError, RotateOutcome};
use chat_store::revocations::Revoked;
use chat_store::ws_tickets::TicketGrant;
use chat_types::ErrorBody;
use chat_types::UserId;
use chat_types::error_code as code;
use chat_types::limits;
use chat_types::rest::{LoginRequest, RefreshRequest, RegisterRequest, Session, User, WsTicket};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Create an account and a session.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = Session), (status = 400, body = ErrorBody, description = "invalid_username, invalid_password, invalid_display_name, malformed_json, invalid_field, nul_character"),
        (status = 409, body = ErrorBody, description = "username_taken"), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "rate_limited: too many registrations from this address; see Retry-After")))]
pub async fn register(
    State(s): State<SharedState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    if !limits::valid_username(&req.username) {
        return Err(ApiError::bad(
            code::INVALID_USERNAME,
            format!(
                "usernames are {} to {} characters of letters, digits, '.', '_' and '-'",
                limits::USERNAME_MIN,
                limits::USERNAME_MAX
            ),
        ));
    }
    check_password(&req.password)?;
    let display_name = match req.display_name.as_deref().map(str::trim) {
        None | Some("") => req.username.clone(),
        Some(d) if !limits::valid_display_name(d) => {
            return Err(ApiError::bad(
                code::INVALID_DISPLAY_NAME,
                format!(
                    "display names are at most {} characters, without control characters or \
                     invisible format characters (bidi overrides, zero-width spaces)",
                    limits::DISPLAY_NAME_MAX
                ),
            ));
        }
        Some(d) => d.to_owned(),
    };
    // Only well-formed registrations count against the address: a typo costs nothing.
    s.throttle.register(ip)?;
    let hash = s.hasher.hash(req.password).await.map_err(hash_error)?;
    let user = User {
        id: UserId::new_v7(),
        username: req.username,
        display_name,
    };
    chat_store::pg::create_user(&s.db, &user, &hash)
        .await
        .map_err(|e| match e {
            CreateUserError::UsernameTaken => {
                ApiError::Conflict(code::USERNAME_TAKEN, "this username is taken".into())
            }
            CreateUserError::Db(e) => e.into(),
        })?;
    let session = new_session(&s, user, Uuid::now_v7()).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Log in; a wrong password and an unknown user get the same 401.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 400, body = ErrorBody, description = "malformed_json, invalid_field, nul_character"), (status = 401, body = ErrorBody, description = "invalid_credentials"),
        (status = 429, body = ErrorBody, description = "rate_limited: too many attempts from this address or for this account; see Retry-After")))]
pub async fn login(
    State(s): State<SharedState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<Session>> {
    s.throttle.login(ip, &req.username)?;
    let found = if req.username.len() <= limits::USERNAME_MAX {
        chat_store::pg::user_with_hash(&s.db, &req.username).await?
    } else {
        None
    };
    // Unknown users cost the same argon2 verification as known ones, so timing says nothing.
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let ok = s
        .hasher
        .verify(req.password, hash)
        .await
        .map_err(hash_error)?;
    match (user, ok) {
        (Some(user), true) => Ok(Json(new_session(&s, user, Uuid::now_v7()).await?)),
        _ => Err(ApiError::Unauthorized(
            code::INVALID_CREDENTIALS,
            "wrong username or password".into(),
        )),
    }
}

/// Exchange a refresh token for a new session; the token is rotated. A reused token revokes its family.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = ErrorBody, description = "invalid_refresh_token, refresh_token_reused (the session is revoked: its access tokens and sockets too)"),
        (status = 503, body = ErrorBody, description = "unavailable")))]
pub async fn refresh(
    State(s): State<SharedState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<Session>> {
    let hash = token_hash(&req.refresh_token);
    match chat_store::pg::rotate_refresh_token(&s.db, &hash).await? {
        RotateOutcome::Rotated { user, family_id } => {
            let user = chat_store::pg::user(&s.db, user).await?.ok_or_else(|| {
                ApiError::Unauthorized(
                    code::INVALID_REFRESH_TOKEN,
                    "the account no longer exists".into(),
                )
            })?;
            Ok(Json(new_session(&s, user, family_id).await?))
        }
        RotateOutcome::Reused { user, family_id } => {
            // Both holders of the family (the owner and whoever copied the token) lose it,
            // their access tokens and their sockets too.
            revoke_session(&s, user, family_id).await?;
            Err(ApiError::Unauthorized(
                code::REFRESH_TOKEN_REUSED,
                "this refresh token was already used; the session is revoked, log in again".into(),
            ))
        }
        RotateOutcome::Invalid => Err(ApiError::Unauthorized(
            code::INVALID_REFRESH_TOKEN,
            "the refresh token is unknown, expired or revoked".into(),
        )),
    }
}

/// End the session of a refresh token: its refresh tokens, its access tokens (401
/// `token_revoked` from then on) and its WebSockets (closed with 4401 within a second). The
/// user's other sessions (other devices) stay.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody, description = "unavailable: the session could not be revoked now; retry")))]
pub async fn logout(
    State(s): State<SharedState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    // Logging out an unknown or already revoked token is not an error: the outcome is the same.
    // A known one revokes its session again, so a retry after a failed revocation completes it.
    if let Some((user, family_id)) =
        chat_store::pg::revoke_refresh_family(&s.db, &token_hash(&req.refresh_token)).await?
    {
        revoke_session(&s, user, family_id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the caller (logout everywhere: a lost device, a leaked password): all
/// refresh tokens, their access tokens (401 `token_revoked`) and sockets (4401), the caller's
/// own included. Access tokens minted before sessions were in tokens cannot be revoked; they
/// expire within `auth.access_ttl_secs`.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204),
        (status = 401, body = ErrorBody, description = "missing_token, invalid_token, token_expired, token_revoked"),
        (status = 503, body = ErrorBody, description = "unavailable: the sessions could not be revoked now; retry")))]
pub async fn logout_all(
    State(s): State<SharedState>,
    AuthAccess(access): AuthAccess,
) -> ApiResult<StatusCode> {
    let mut families = chat_store::pg::revoke_user_families(&s.db, access.user).await?;
    // The caller's own session, even if PostgreSQL had it revoked already (a retry).
    if let Some(sid) = access.sid
        && !families.contains(&sid)
    {
        families.push(sid);
    }
    let revoked: Vec<Revoked> = families
        .iter()
        .map(|&sid| Revoked {
            user: access.user,
            sid,
        })
        .collect();
    s.revocations
        .revoke_all(
            &revoked,
            std::time::Duration::from_secs(s.keys.access_ttl_secs),
        )
        .await
        .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
    forget_devices(&s, &families).await?;
    tracing::info!(user_id = %access.user, sessions = revoked.len(), "every session revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A single-use ticket for `GET /ws?ticket=...`, valid for a few seconds: browsers open their
/// WebSocket with it instead of putting the access token in the URL. The socket it opens is
/// the caller's, in the caller's session, authorised until the caller's access token expires.
#[utoipa::path(post, path = "/ws-tickets", tag = "auth", security(("bearer" = [])),
    responses((status = 201, body = WsTicket),
        (status = 401, body = ErrorBody, description = "missing_token, invalid_token, token_expired, token_revoked"),
        (status = 503, body = ErrorBody, description = "unavailable")))]
pub async fn ws_ticket(
    State(s): State<SharedState>,
    AuthAccess(access): AuthAccess,
) -> ApiResult<(StatusCode, Json<WsTicket>)> {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let grant = TicketGrant {
        user: access.user,
        sid: access.sid,
        expires: access.expires,
    };
    s.tickets
        .put(&ticket, &grant, WS_TICKET_TTL)
        .await
        .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
    Ok((
        StatusCode::CREATED,
        Json(WsTicket {
            ticket,
            expires_in: WS_TICKET_TTL.as_secs(),
        }),
    ))
}

/// How long a WebSocket ticket can be used: enough to open a socket right after asking.
pub const WS_TICKET_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Revoke a session's access tokens (for as long as one of them can be unexpired) and close its
/// sockets on every gateway. Called after PostgreSQL revoked its refresh tokens.
async fn revoke_session(s: &SharedState, user: UserId, family_id: Uuid) -> ApiResult<()> {
    let revoked = Revoked {
        user,
        sid: family_id,
    };
    s.revocations
        .revoke(
            revoked,
            std::time::Duration::from_secs(s.keys.access_ttl_secs),
        )
        .await
        .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
    forget_devices(s, &[family_id]).await?;
    tracing::info!(user_id = %user, session = %family_id, "session revoked");
    Ok(())
}

/// A session that ended notifies no device of its. After the revocation: a retried logout
/// finds the session again and completes this.
async fn forget_devices(s: &SharedState, sessions: &[Uuid]) -> ApiResult<()> {
    let n = chat_store::devices::forget_sessions(&s.db, sessions).await?;
    if n > 0 {
        tracing::info!(devices = n, "devices of ended sessions forgotten");
    }
    Ok(())
}

/// The caller.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
pub async fn me(State(s): State<SharedState>, AuthUser(me): AuthUser) -> ApiResult<Json<User>> {
    chat_store::pg::user(&s.db, me)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::Unauthorized(code::INVALID_TOKEN, "the account no longer exists".into())
        })
}

fn check_password(p: &str) -> ApiResult<()> {
    if !limits::valid_password(p) {
        return Err(ApiError::bad(
            code::INVALID_PASSWORD,
            format!(
                "passwords are {} to {} characters, not only white space",
                limits::PASSWORD_MIN,
                limits::PASSWORD_MAX
            ),
        ));
    }
    Ok(())
}

fn hash_error(e: crate::hashing::HashError) -> ApiError {
    ApiError::Internal(e.into())
}

async fn new_session(s: &SharedState, user: User, family_id: Uuid) -> ApiResult<Session> {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let refresh_token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(s.refresh_ttl_secs as i64);
    chat_store::pg::insert_refresh_token(
        &s.db,
        &token_hash(&refresh_token),
        family_id,
        user.id,
        expires_at,
    )
    .await?;
    Ok(Session {
        access_token: s.keys.issue(user.id, Some(family_id)),
        refresh_token,
        expires_in: s.keys.access_ttl_secs,
        user,
    })
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
