//! The one error type of the API. Every error leaves as `{"error": {"code", "message"}}`;
//! causes of 5xx are logged here and never sent to the client.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chat_store::pg::PgError;
use chat_types::ErrorBody;
use chat_types::error_code as code;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{1}")]
    Unauthorized(&'static str, String),
    #[error("{1}")]
    Forbidden(&'static str, String),
    #[error("{1}")]
    NotFound(&'static str, String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{1}")]
    PayloadTooLarge(&'static str, String),
    #[error("{1}")]
    UnsupportedMediaType(&'static str, String),
    #[error("this path does not answer this method")]
    MethodNotAllowed,
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the request took too long")]
    Timeout,
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad(code: &'static str, msg: impl Into<String>) -> Self {
        ApiError::BadRequest(code, msg.into())
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(..) => StatusCode::FORBIDDEN,
            ApiError::NotFound(..) => StatusCode::NOT_FOUND,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(..) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = match &self {
            ApiError::BadRequest(c, m)
            | ApiError::Unauthorized(c, m)
            | ApiError::Forbidden(c, m)
            | ApiError::NotFound(c, m)
            | ApiError::Conflict(c, m)
            | ApiError::PayloadTooLarge(c, m)
            | ApiError::UnsupportedMediaType(c, m) => ErrorBody::new(*c, m.clone()),
            // axum adds `Allow` to the response.
            ApiError::MethodNotAllowed => ErrorBody::new(
                code::METHOD_NOT_ALLOWED,
                "this path does not answer this method; see the Allow header",
            ),
            ApiError::RateLimited { retry_after_secs } => {
                let body = ErrorBody::new(
                    code::RATE_LIMITED,
                    format!("too many requests; retry in {retry_after_secs} s"),
                );
                return (
                    status,
                    [(
                        axum::http::header::RETRY_AFTER,
                        retry_after_secs.to_string(),
                    )],
                    Json(body),
                )
                    .into_response();
            }
            ApiError::Timeout => {
                tracing::warn!("request timed out");
                ErrorBody::new(
                    code::TIMEOUT,
                    "the request took too long and was abandoned; try again",
                )
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(cause, "request failed: dependency unavailable");
                ErrorBody::new(
                    code::UNAVAILABLE,
                    "the service is temporarily unavailable; try again",
                )
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                ErrorBody::new(code::INTERNAL, "an internal error occurred")
            }
        };
        (status, Json(body)).into_response()
    }
}

impl From<PgError> for ApiError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::PoolTimedOut | PgError::Io(_) => ApiError::Unavailable(e.to_string()),
            e => ApiError::Internal(e.into()),
        }
    }
}

impl From<chat_store::cql::CqlError> for ApiError {
    fn from(e: chat_store::cql::CqlError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::bad(code::INVALID_FIELD, e.body_text()),
            JsonRejection::JsonSyntaxError(e) => ApiError::bad(code::MALFORMED_JSON, e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                code::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with Content-Type: application/json".into(),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge(
                    code::PAYLOAD_TOO_LARGE,
                    format!(
                        "request bodies are limited to {} bytes",
                        chat_types::limits::MAX_REQUEST_BYTES
                    ),
                )
            }
            other => ApiError::bad(code::INVALID_BODY, other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad(code::INVALID_QUERY, r.body_text())
    }
}
