//! Extractors whose rejections are the contract's error bodies.

use crate::SharedState;
use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chat_common::auth::{TokenError, bearer_token};
use chat_types::UserId;
use chat_types::error_code as code;
use serde::de::DeserializeOwned;

/// `axum::Json` with contract-shaped rejections (malformed JSON, wrong types, too large).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// The caller, from a valid `Authorization: Bearer <access token>`.
pub struct AuthUser(pub UserId);

impl FromRequestParts<SharedState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
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
        match state.keys.verify_access(token) {
            Ok(u) => Ok(AuthUser(u)),
            Err(TokenError::Expired) => Err(ApiError::Unauthorized(
                code::TOKEN_EXPIRED,
                "the access token has expired; refresh it".into(),
            )),
            Err(TokenError::Invalid) => Err(ApiError::Unauthorized(
                code::INVALID_TOKEN,
                "the access token is invalid".into(),
            )),
        }
    }
}
