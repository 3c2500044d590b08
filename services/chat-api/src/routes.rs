//! Users, channels, direct conversations and history.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, AuthUser};
use crate::{SharedState, auth};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use chat_store::cql::Page;
use chat_store::pg::Access;
use chat_types::bus::{BusRecord, MembershipChange, MembershipRecord};
use chat_types::error_code as code;
use chat_types::rest::{
    Channel, ChannelKind, ChannelList, ConversationList, CreateChannelRequest, CreateDmRequest,
    HistoryQuery, MemberList, MemberPresence, MessageList, PresenceList, UserList,
};
use chat_types::{ChannelId, ErrorBody, MessageId, UserId, limits};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "chat API", version = "1", description = "REST API of the realtime chat. The WebSocket protocol is in docs/protocol.md."),
    modifiers(&BearerAuth),
    // Schemas of query parameters (referenced by the operations that take them).
    components(schemas(chat_types::openapi::UserQuery, chat_types::openapi::ChannelQuery, chat_types::openapi::HistoryLimit)),
    tags((name = "auth"), (name = "users"), (name = "channels"), (name = "messages"), (name = "notifications"), (name = "attachments"), (name = "docs"))
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
        .routes(routes!(auth::logout_all))
        .routes(routes!(auth::ws_ticket))
        .routes(routes!(auth::me))
        .routes(routes!(search_users))
        .routes(routes!(create_channel, my_channels))
        .routes(routes!(search_channels))
        .routes(routes!(crate::directory::channel_directory))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(members))
        .routes(routes!(presence))
        .routes(routes!(history))
        .routes(routes!(create_dm))
        .routes(routes!(
            crate::notifications::register_device,
            crate::notifications::my_devices
        ))
        .routes(routes!(crate::notifications::unregister_device))
        .routes(routes!(
            crate::notifications::channel_notifications,
            crate::notifications::set_channel_notifications
        ))
        .routes(routes!(
            crate::notifications::my_preferences,
            crate::notifications::set_my_preferences
        ))
        .routes(routes!(crate::attachments::create_attachment))
        .routes(routes!(crate::attachments::attachment_link))
        .routes(routes!(crate::attachments::complete_attachment))
        .routes(routes!(crate::attachments::new_upload_url))
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1)
}

/// The OpenAPI document, built once, with the statuses every operation shares
/// ([`crate::doc`]; added once all routes are in).
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = api_router().split_for_parts().1;
        utoipa::Modify::modify(&crate::doc::CommonResponses, &mut doc);
        doc
    })
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

/// The API's router: every route, JSON answers for unknown paths and wrong methods (with
/// `Allow`), the body limit, and a bound on how long a request may take.
pub fn router(state: SharedState, request_timeout: std::time::Duration) -> Router {
    let (router, _) = api_router().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits::MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            answer_within,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound(code::NOT_FOUND, "no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Middleware: answer 503 `timeout` for a request not done within `limit` (its handler is
/// dropped, which also releases its database connection).
async fn answer_within(
    State(limit): State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

pub(crate) fn parse_channel_id(s: &str) -> ApiResult<ChannelId> {
    s.parse()
        .map_err(|_| ApiError::bad(code::INVALID_ID, format!("'{s}' is not a valid channel id")))
}

fn channel_not_found() -> ApiError {
    ApiError::NotFound(
        code::CHANNEL_NOT_FOUND,
        "there is no channel with this id".into(),
    )
}

fn not_a_member() -> ApiError {
    ApiError::Forbidden(
        code::NOT_A_MEMBER,
        "you are not a member of this channel".into(),
    )
}

/// Check the caller may read/write the channel.
pub(crate) async fn require_member(
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

/// People search: users whose username starts with `query` or whose display name contains it
/// (ignoring case), at most 20. Ranked: the exact username first, then username prefixes, then
/// display names starting with `query`, then display names containing it.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(("query" = chat_types::openapi::UserQuery, Query, description = "username prefix or part of a display name, 1-64 characters once trimmed")),
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody, description = "invalid_query, nul_character"), (status = 401, body = ErrorBody)))]
async fn search_users(
    State(s): State<SharedState>,
    AuthUser(_): AuthUser,
    ApiQuery(q): ApiQuery,
) -> ApiResult<Json<UserList>> {
    let query = q.get("query").map(String::as_str).unwrap_or_default();
    if !limits::valid_user_query(query) {
        return Err(ApiError::bad(
            code::INVALID_QUERY,
            format!("query must be 1 to {} characters", limits::USER_QUERY_MAX),
        ));
    }
    let users =
        chat_store::pg::search_users(&s.db, query.trim(), i64::from(limits::USER_SEARCH_LIMIT))
            .await?;
    Ok(Json(UserList { users }))
}

// ------------------------------------------------------------------------------------ channels

/// Create a group channel; the creator is its first member. Group channel names are unique
/// ignoring case and Unicode compatibility forms (409 `channel_name_taken`).
#[utoipa::path(post, path = "/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannelRequest,
    responses((status = 201, body = Channel), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "channel_name_taken")))]
async fn create_channel(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<CreateChannelRequest>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    let name = req.name.trim();
    if !limits::valid_channel_name(name) {
        return Err(ApiError::bad(
            code::INVALID_NAME,
            format!(
                "channel names are 1 to {} characters, without control or invisible format \
                 characters (bidi overrides, zero-width spaces)",
                limits::CHANNEL_NAME_MAX
            ),
        ));
    }
    let description = req.description.as_deref().unwrap_or("").trim();
    if !limits::valid_description(description) {
        return Err(ApiError::bad(
            code::INVALID_DESCRIPTION,
            format!(
                "descriptions are at most {} characters",
                limits::CHANNEL_DESCRIPTION_MAX
            ),
        ));
    }
    let channel = chat_store::pg::create_group(&s.db, ChannelId::new_v7(), name, description, me)
        .await
        .map_err(|e| match e {
            chat_store::pg::CreateChannelError::NameTaken => ApiError::Conflict(
                code::CHANNEL_NAME_TAKEN,
                format!("a channel named '{name}' exists already (names ignore case)"),
            ),
            chat_store::pg::CreateChannelError::Db(e) => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(channel)))
}

/// The caller's groups and direct conversations, most recent activity first, each with its
/// last message and the caller's read position, unread and mention counts.
#[utoipa::path(get, path = "/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = ConversationList), (status = 401, body = ErrorBody)))]
async fn my_channels(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
) -> ApiResult<Json<ConversationList>> {
    Ok(Json(ConversationList {
        channels: chat_store::read_state::conversations_of(&s.db, me).await?,
    }))
}

/// Group channels anyone may join whose name contains `query` (ignoring case), at most 50.
#[utoipa::path(get, path = "/channels/search", tag = "channels", security(("bearer" = [])),
    params(("query" = Option<chat_types::openapi::ChannelQuery>, Query, description = "part of the name; empty or absent lists the newest")),
    responses((status = 200, body = ChannelList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn search_channels(
    State(s): State<SharedState>,
    AuthUser(_): AuthUser,
    ApiQuery(q): ApiQuery,
) -> ApiResult<Json<ChannelList>> {
    let query = q.get("query").map(String::as_str).unwrap_or_default();
    if !limits::valid_channel_query(query) {
        return Err(ApiError::bad(
            code::INVALID_QUERY,
            "the query is longer than any channel name",
        ));
    }
    Ok(Json(ChannelList {
        channels: chat_store::pg::search_groups(&s.db, query.trim(), 50).await?,
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

/// Announce `user`'s membership of `channel` as PostgreSQL has it now, and again while
/// PostgreSQL has changed meanwhile. Used on every join and leave, including the retried ones
/// that find the change already made (their first announcement may have failed after the commit:
/// message servers apply a repeated change idempotently). A concurrent join and leave of the
/// same user can announce in the opposite order of their commits; the re-check makes the last
/// announcement on the partition the committed state, and the message servers keep the last.
async fn announce_membership(s: &SharedState, channel: ChannelId, user: UserId) -> ApiResult<()> {
    let state = |access: Access| match access {
        Access::Member(_) => MembershipChange::Joined,
        Access::NotMember(_) | Access::NoSuchChannel => MembershipChange::Left,
    };
    let mut change = state(chat_store::pg::access(&s.db, channel, user).await?);
    for _ in 0..3 {
        announce(s, channel, user, change).await?;
        let now = state(chat_store::pg::access(&s.db, channel, user).await?);
        if now == change {
            return Ok(());
        }
        change = now;
    }
    Ok(())
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
#[utoipa::path(post, path = "/channels/{channel_id}/join", tag = "channels", security(("bearer" = [])), params(("channel_id" = ChannelId, Path, description = "channel id (UUID)")),
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
                code::NOT_JOINABLE,
                "direct conversations cannot be joined".into(),
            ));
        }
        // Already a member: maybe the retry of a join whose announcement failed.
        Access::Member(_) => announce_membership(&s, channel, me).await?,
        Access::NotMember(ChannelKind::Group) => {
            chat_store::pg::join(&s.db, channel, me).await?;
            announce_membership(&s, channel, me).await?;
        }
    }
    chat_store::pg::channel_for(&s.db, channel, me)
        .await?
        .map(Json)
        .ok_or_else(channel_not_found)
}

/// Leave a group channel. Takes effect for realtime delivery at once.
#[utoipa::path(post, path = "/channels/{channel_id}/leave", tag = "channels", security(("bearer" = [])), params(("channel_id" = ChannelId, Path, description = "channel id (UUID)")),
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
        Access::Member(ChannelKind::Direct) | Access::NotMember(ChannelKind::Direct) => {
            Err(ApiError::Forbidden(
                code::NOT_LEAVABLE,
                "direct conversations cannot be left".into(),
            ))
        }
        Access::NotMember(ChannelKind::Group) => {
            // Maybe the retry of a leave whose announcement or epoch move failed: do them again.
            announce_membership(&s, channel, me).await?;
            end_cached_memberships(&s, me).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Access::Member(ChannelKind::Group) => {
            chat_store::pg::leave(&s.db, channel, me).await?;
            announce_membership(&s, channel, me).await?;
            end_cached_memberships(&s, me).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// Members of a channel (members only).
#[utoipa::path(get, path = "/channels/{channel_id}/members", tag = "channels", security(("bearer" = [])), params(("channel_id" = ChannelId, Path, description = "channel id (UUID)")),
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

/// Whether each member of a channel is online (a device of theirs connected) and when each was
/// last seen (members only). Derived from the gateways' live registrations: a user whose gateway
/// died is offline once its registration lapses (within 30 s).
#[utoipa::path(get, path = "/channels/{channel_id}/presence", tag = "channels", security(("bearer" = [])), params(("channel_id" = ChannelId, Path, description = "channel id (UUID)")),
    responses((status = 200, body = PresenceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_a_member"), (status = 404, body = ErrorBody, description = "channel_not_found")))]
async fn presence(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<String>,
) -> ApiResult<Json<PresenceList>> {
    let channel = parse_channel_id(&channel_id)?;
    require_member(&s, channel, me).await?;
    let mut members = chat_store::pg::member_ids(&s.db, channel).await?;
    members.sort_unstable();
    let states = s
        .presence
        .states(&members)
        .await
        .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
    Ok(Json(PresenceList {
        members: members
            .into_iter()
            .zip(states)
            .map(|(user_id, p)| MemberPresence {
                user_id,
                online: p.online,
                last_seen_at: p
                    .last_seen_ms
                    .filter(|_| !p.online)
                    .and_then(chrono::DateTime::from_timestamp_millis),
            })
            .collect(),
    }))
}

/// Get or create the direct conversation with a user; the same pair always gets the same channel.
#[utoipa::path(post, path = "/dms", tag = "channels", security(("bearer" = [])), request_body = CreateDmRequest,
    responses((status = 200, body = Channel, description = "existing"), (status = 201, body = Channel, description = "created"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "invalid_user: the user id is the caller's own (no conversation with oneself)"),
        (status = 404, body = ErrorBody, description = "user_not_found")))]
async fn create_dm(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<CreateDmRequest>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    if req.user_id == me {
        // 403, not 400: the request is well-formed (any user id is), the caller may just not
        // open a conversation with themselves.
        return Err(ApiError::Forbidden(
            code::INVALID_USER,
            "a direct conversation needs another user".into(),
        ));
    }
    if chat_store::pg::user(&s.db, req.user_id).await?.is_none() {
        return Err(ApiError::NotFound(
            code::USER_NOT_FOUND,
            "there is no user with this id".into(),
        ));
    }
    let (channel, created) =
        chat_store::pg::get_or_create_dm(&s.db, ChannelId::new_v7(), me, req.user_id).await?;
    // Both members are new to a created channel; message servers that cached it empty learn
    // it. An existing one is announced again: this may be the retry of a request whose
    // announcement failed after the commit (members of a direct channel never change).
    for u in [me, req.user_id] {
        announce(&s, channel, u, MembershipChange::Joined).await?;
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

/// A page of history in channel order, oldest first (members only): the newest messages, the
/// ones just before `before`, just after `after`, or between `after` and `before`.
#[utoipa::path(get, path = "/channels/{channel_id}/messages", tag = "messages", security(("bearer" = [])),
    params(("channel_id" = ChannelId, Path, description = "channel id (UUID)"),
        ("before" = Option<MessageId>, Query, description = "message id: the page just before it"),
        ("after" = Option<MessageId>, Query, description = "message id: the page just after it; with before, the messages between the two (from just after this one)"),
        ("limit" = Option<chat_types::openapi::HistoryLimit>, Query, description = "1-100, default 50")),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody, description = "invalid_id, invalid_limit, invalid_cursor, nul_character"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_a_member"),
        (status = 404, body = ErrorBody, description = "channel_not_found, message_not_found (the cursor is not a message of this channel)")))]
async fn history(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<String>,
    ApiQuery(q): ApiQuery,
) -> ApiResult<Json<MessageList>> {
    let channel = parse_channel_id(&channel_id)?;
    let arg = |name: &str| q.get(name).map(String::as_str);
    let HistoryQuery {
        before,
        after,
        limit,
    } = HistoryQuery::parse(arg("before"), arg("after"), arg("limit"))
        .map_err(|(c, message)| ApiError::bad(c, message))?;
    let limit = i64::from(limit);
    require_member(&s, channel, me).await?;
    let store = &s.store;
    let position = |id: MessageId| async move {
        match store.placement(id).await? {
            Some(p) if p.channel_id == channel => Ok(p.seq),
            _ => Err(ApiError::NotFound(
                code::MESSAGE_NOT_FOUND,
                "the cursor is not a message of this channel".into(),
            )),
        }
    };
    let page = match (before, after) {
        // Both: the messages between them, from just after `after`, at most `limit`. (Any pair
        // of message ids is a valid request, so both cursors get a meaning rather than a 400.)
        (Some(b), Some(a)) => Page::Between(position(a).await?, position(b).await?),
        (Some(b), None) => Page::Before(position(b).await?),
        (None, Some(a)) => Page::After(position(a).await?),
        (None, None) => Page::Latest,
    };
    let messages = s.store.history(channel, page, limit as usize, me).await?;
    Ok(Json(MessageList { messages }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::time::Duration;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_request_over_its_time_gets_a_json_503() {
        let app: Router = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route("/fast", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(100),
                answer_within,
            ));
        let slow = app
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(slow.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "timeout");
        let fast = app
            .oneshot(Request::get("/fast").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
    }
}
