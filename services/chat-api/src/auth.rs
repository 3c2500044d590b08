//! Accounts and sessions. Passwords are argon2id hashes, computed on the API's hashing threads
//! ([`crate::hashing`]); logins and registrations are throttled ([`crate::throttle`]). Refresh
//! tokens are opaque random strings stored as SHA-256 hashes; each refresh
//! rotates the token, and a reused token revokes its whole family.

use crate::SharedState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser, ClientIp};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use chat_store::pg::{CreateUserError, RotateOutcome};
use chat_types::ErrorBody;
use chat_types::UserId;
use chat_types::error_code as code;
use chat_types::limits;
use chat_types::rest::{LoginRequest, RefreshRequest, RegisterRequest, Session, User};
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
    responses((status = 200, body = Session), (status = 401, body = ErrorBody, description = "invalid_refresh_token, refresh_token_reused")))]
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
        RotateOutcome::Reused => Err(ApiError::Unauthorized(
            code::REFRESH_TOKEN_REUSED,
            "this refresh token was already used; the session is revoked, log in again".into(),
        )),
        RotateOutcome::Invalid => Err(ApiError::Unauthorized(
            code::INVALID_REFRESH_TOKEN,
            "the refresh token is unknown, expired or revoked".into(),
        )),
    }
}

/// End the session of a refresh token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn logout(
    State(s): State<SharedState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    // Logging out an unknown or already revoked token is not an error: the outcome is the same.
    chat_store::pg::revoke_refresh_family(&s.db, &token_hash(&req.refresh_token)).await?;
    Ok(StatusCode::NO_CONTENT)
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
        access_token: s.keys.issue_access(user.id),
        refresh_token,
        expires_in: s.keys.access_ttl_secs,
        user,
    })
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
