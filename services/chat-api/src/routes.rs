//! Users, channels, direct conversations and history.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser};
use crate::{SharedState, auth};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use chat_store::pg::Access;
use chat_types::bus::{BusRecord, MembershipChange, MembershipRecord};
use chat_types::rest::{
    Channel, ChannelKind, ChannelList, CreateChannelRequest, CreateDmRequest, MemberList,
    MessageList, UserList,
};
use chat_types::{ChannelId, ErrorBody, MessageId, UserId, limits};
use std::collections::HashMap;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "chat API", version = "1", description = "REST API of the realtime chat. The WebSocket protocol is in docs/protocol.md."),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "users"), (name = "channels"), (name = "messages"), (name = "docs"))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
    }
}

/// Every route, each registered together with its OpenAPI description, so the document and the
/// router cannot disagree. Add routes only through `routes!` here.
pub fn api_router() -> OpenApiRouter<SharedState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(search_users))
        .routes(routes!(create_channel, my_channels))
        .routes(routes!(search_channels))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(members))
        .routes(routes!(history))
        .routes(routes!(create_dm))
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1)
}

/// The OpenAPI document, built once.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(|| api_router().split_for_parts().1)
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "docs", responses((status = 200, description = "the OpenAPI document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi().clone())
}

/// A browsable page of this document.
#[utoipa::path(get, path = "/docs", tag = "docs", responses((status = 200, description = "HTML")))]
async fn docs_page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("docs.html"))
}

pub fn router(state: SharedState) -> Router {
    let (router, _) = api_router().split_for_parts();
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits::MAX_REQUEST_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("not_found", "no such endpoint".into())
}

fn parse_channel_id(s: &str) -> ApiResult<ChannelId> {
    s.parse()
        .map_err(|_| ApiError::bad("invalid_id", format!("'{s}' is not a valid channel id")))
}

fn channel_not_found() -> ApiError {
    ApiError::NotFound(
        "channel_not_found",
        "there is no channel with this id".into(),
    )
}

fn not_a_member() -> ApiError {
    ApiError::Forbidden(
        "not_a_member",
        "you are not a member of this channel".into(),
    )
}

/// Check the caller may read/write the channel.
async fn require_member(
    s: &SharedState,
    channel: ChannelId,
    user: UserId,
) -> ApiResult<ChannelKind> {
    match chat_store::pg::access(&s.db, channel, user).await? {
        Access::Member(kind) => Ok(kind),
        Access::NotMember(_) => Err(not_a_member()),
        Access::NoSuchChannel => Err(channel_not_found()),
    }
}

// ------------------------------------------------------------------------------------ users

/// Users whose username starts with `query` (ignoring case), at most 20.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(("query" = String, Query, description = "username prefix, 1-32 characters")),
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn search_users(
    State(s): State<SharedState>,
    AuthUser(_): AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<UserList>> {
    let prefix = q.get("query").map(|p| p.trim()).unwrap_or_default();
    if prefix.is_empty() || prefix.chars().count() > limits::USERNAME_MAX {
        return Err(ApiError::bad(
            "invalid_query",
            format!("query must be 1 to {} characters", limits::USERNAME_MAX),
        ));
    }
    let users = chat_store::pg::search_users(&s.db, prefix, 20).await?;
    Ok(Json(UserList { users }))
}

// ------------------------------------------------------------------------------------ channels

/// Create a group channel; the creator is its first member.
#[utoipa::path(post, path = "/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannelRequest,
    responses((status = 201, body = Channel), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_channel(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<CreateChannelRequest>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    let name = req.name.trim();
    let n = name.chars().count();
    if n == 0 || n > limits::CHANNEL_NAME_MAX || name.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "invalid_name",
            format!(
                "channel names are 1 to {} characters, without control characters",
                limits::CHANNEL_NAME_MAX
            ),
        ));
    }
    let description = req.description.as_deref().unwrap_or("").trim();
    if description.chars().count() > limits::CHANNEL_DESCRIPTION_MAX {
        return Err(ApiError::bad(
            "invalid_description",
            format!(
                "descriptions are at most {} characters",
                limits::CHANNEL_DESCRIPTION_MAX
            ),
        ));
    }
    let channel =
        chat_store::pg::create_group(&s.db, ChannelId::new_v7(), name, description, me).await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

/// The caller's groups and direct conversations.
#[utoipa::path(get, path = "/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = ChannelList), (status = 401, body = ErrorBody)))]
async fn my_channels(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
) -> ApiResult<Json<ChannelList>> {
    Ok(Json(ChannelList {
        channels: chat_store::pg::channels_of(&s.db, me).await?,
    }))
}

/// Group channels anyone may join whose name contains `query` (ignoring case), at most 50.
#[utoipa::path(get, path = "/channels/search", tag = "channels", security(("bearer" = [])),
    params(("query" = Option<String>, Query, description = "part of the name; empty lists the newest")),
    responses((status = 200, body = ChannelList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn search_channels(
    State(s): State<SharedState>,
    AuthUser(_): AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<ChannelList>> {
    let query = q.get("query").map(|p| p.trim()).unwrap_or_default();
    if query.chars().count() > limits::CHANNEL_NAME_MAX {
        return Err(ApiError::bad(
            "invalid_query",
            "the query is longer than any channel name",
        ));
    }
    Ok(Json(ChannelList {
        channels: chat_store::pg::search_groups(&s.db, query, 50).await?,
    }))
}

/// Tell the message servers, through the channel's own partition, that membership changed;
/// answer only once Kafka has it, so every message sent after this answer is fanned out with
/// the change applied.
async fn announce(
    s: &SharedState,
    channel: ChannelId,
    user: UserId,
    change: MembershipChange,
) -> ApiResult<()> {
    let record = BusRecord::Membership(MembershipRecord {
        channel_id: channel,
        user_id: user,
        change,
    });
    s.producer
        .send(&record)
        .await
        .map(|_| ())
        .map_err(|e| ApiError::Unavailable(format!("kafka: {e}")))
}

/// After a leave is stored and announced, and before it is answered: move the user's membership
/// epoch, so no gateway accepts a send on a membership it confirmed before the leave.
async fn end_cached_memberships(s: &SharedState, user: UserId) -> ApiResult<()> {
    s.epochs
        .bump(user)
        .await
        .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))
}

/// Join a group channel (joining twice is not an error). Takes effect for realtime delivery at once.
#[utoipa::path(post, path = "/channels/{channel_id}/join", tag = "channels", security(("bearer" = [])), params(("channel_id" = String, Path, description = "channel id (UUID)")),
    responses((status = 200, body = Channel), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_joinable (direct)"), (status = 404, body = ErrorBody)))]
async fn join(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<String>,
) -> ApiResult<Json<Channel>> {
    let channel = parse_channel_id(&channel_id)?;
    match chat_store::pg::access(&s.db, channel, me).await? {
        Access::NoSuchChannel => return Err(channel_not_found()),
        Access::NotMember(ChannelKind::Direct) => {
            return Err(ApiError::Forbidden(
                "not_joinable",
                "direct conversations cannot be joined".into(),
            ));
        }
        Access::Member(_) => {}
        Access::NotMember(ChannelKind::Group) => {
            if chat_store::pg::join(&s.db, channel, me).await? {
                announce(&s, channel, me, MembershipChange::Joined).await?;
            }
        }
    }
    chat_store::pg::channel_for(&s.db, channel, me)
        .await?
        .map(Json)
        .ok_or_else(channel_not_found)
}

/// Leave a group channel. Takes effect for realtime delivery at once.
#[utoipa::path(post, path = "/channels/{channel_id}/leave", tag = "channels", security(("bearer" = [])), params(("channel_id" = String, Path, description = "channel id (UUID)")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_leavable (direct)"), (status = 404, body = ErrorBody)))]
async fn leave(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<String>,
) -> ApiResult<StatusCode> {
    let channel = parse_channel_id(&channel_id)?;
    match chat_store::pg::access(&s.db, channel, me).await? {
        Access::NoSuchChannel => Err(channel_not_found()),
        Access::Member(ChannelKind::Direct) | Access::NotMember(ChannelKind::Direct) => Err(
            ApiError::Forbidden("not_leavable", "direct conversations cannot be left".into()),
        ),
        Access::NotMember(ChannelKind::Group) => {
            // Maybe a retry of a leave whose epoch move failed: move it (again).
            end_cached_memberships(&s, me).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Access::Member(ChannelKind::Group) => {
            if chat_store::pg::leave(&s.db, channel, me).await? {
                announce(&s, channel, me, MembershipChange::Left).await?;
            }
            end_cached_memberships(&s, me).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// Members of a channel (members only).
#[utoipa::path(get, path = "/channels/{channel_id}/members", tag = "channels", security(("bearer" = [])), params(("channel_id" = String, Path, description = "channel id (UUID)")),
    responses((status = 200, body = MemberList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn members(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<String>,
) -> ApiResult<Json<MemberList>> {
    let channel = parse_channel_id(&channel_id)?;
    require_member(&s, channel, me).await?;
    Ok(Json(MemberList {
        members: chat_store::pg::members(&s.db, channel).await?,
    }))
}

/// Get or create the direct conversation with a user; the same pair always gets the same channel.
#[utoipa::path(post, path = "/dms", tag = "channels", security(("bearer" = [])), request_body = CreateDmRequest,
    responses((status = 200, body = Channel, description = "existing"), (status = 201, body = Channel, description = "created"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "user_not_found")))]
async fn create_dm(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<CreateDmRequest>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    if req.user_id == me {
        return Err(ApiError::bad(
            "invalid_user",
            "a direct conversation needs another user",
        ));
    }
    if chat_store::pg::user(&s.db, req.user_id).await?.is_none() {
        return Err(ApiError::NotFound(
            "user_not_found",
            "there is no user with this id".into(),
        ));
    }
    let (channel, created) =
        chat_store::pg::get_or_create_dm(&s.db, ChannelId::new_v7(), me, req.user_id).await?;
    if created {
        // Both members are new to the channel; message servers that cached it empty learn it.
        for u in [me, req.user_id] {
            announce(&s, channel, u, MembershipChange::Joined).await?;
        }
    }
    let view = chat_store::pg::channel_for(&s.db, channel, me)
        .await?
        .ok_or_else(channel_not_found)?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(view),
    ))
}

// ------------------------------------------------------------------------------------ history

/// A page of history in channel order, oldest first (members only).
#[utoipa::path(get, path = "/channels/{channel_id}/messages", tag = "messages", security(("bearer" = [])),
    params(("channel_id" = String, Path, description = "channel id (UUID)"),
        ("before" = Option<String>, Query, description = "message id: the page just before it"),
        ("after" = Option<String>, Query, description = "message id: the page just after it"),
        ("limit" = Option<u32>, Query, description = "1-100, default 50")),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn history(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<MessageList>> {
    let channel = parse_channel_id(&channel_id)?;
    let limit = match q.get("limit") {
        None => limits::HISTORY_DEFAULT_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=limits::HISTORY_MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad(
                    "invalid_limit",
                    format!("limit must be 1 to {}", limits::HISTORY_MAX_LIMIT),
                )
            })?,
    } as i64;
    let cursor = |name: &str| -> ApiResult<Option<MessageId>> {
        q.get(name)
            .map(|v| {
                v.parse::<MessageId>().map_err(|_| {
                    ApiError::bad("invalid_cursor", format!("{name} must be a message id"))
                })
            })
            .transpose()
    };
    let (before, after) = (cursor("before")?, cursor("after")?);
    require_member(&s, channel, me).await?;
    let store = &s.store;
    let position = |id: MessageId| async move {
        match store.placement(id).await? {
            Some(p) if p.channel_id == channel => Ok(p.seq),
            _ => Err(ApiError::NotFound(
                "message_not_found",
                "the cursor is not a message of this channel".into(),
            )),
        }
    };
    let messages = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "invalid_cursor",
                "give before or after, not both",
            ));
        }
        (Some(b), None) => s.store.before(channel, position(b).await?, limit).await?,
        (None, Some(a)) => s.store.after(channel, position(a).await?, limit).await?,
        (None, None) => s.store.latest(channel, limit).await?,
    };
    Ok(Json(MessageList { messages }))
}
