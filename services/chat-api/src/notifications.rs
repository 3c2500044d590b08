//! What push notifications need from users (issue #16): their devices (registered after sign-in,
//! unregistered at sign-out), each member's notification level per channel, and whether previews
//! are hidden. The notifier reads them from PostgreSQL (`chat_store::devices`).

use crate::SharedState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthAccess, AuthUser};
use crate::routes::{parse_channel_id, require_member};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chat_types::error_code as code;
use chat_types::notifications::{
    ChannelNotifications, Device, DeviceList, NotificationPreferences, RegisterDeviceRequest,
    SetNotificationLevel,
};
use chat_types::{ChannelId, ErrorBody, limits};

/// Register a device of the caller for push notifications: 201 when it is new to the caller
/// (also a token moved from another user: a token belongs to who registered it last), 200 when
/// it is registered again (apps do at every launch). A user keeps at most 20 devices: one more
/// forgets the one registered longest ago. The device belongs to the caller's session: when the
/// session ends (logout, logout everywhere, a reused refresh token) the device is forgotten.
#[utoipa::path(post, path = "/devices", tag = "notifications", security(("bearer" = [])),
    request_body = RegisterDeviceRequest,
    responses((status = 201, body = Device, description = "registered"), (status = 200, body = Device, description = "registered again"),
        (status = 400, body = ErrorBody, description = "invalid_device_token, invalid_bundle_id, invalid_field"),
        (status = 401, body = ErrorBody)))]
pub async fn register_device(
    State(s): State<SharedState>,
    AuthAccess(access): AuthAccess,
    ApiJson(req): ApiJson<RegisterDeviceRequest>,
) -> ApiResult<(StatusCode, Json<Device>)> {
    check_token(&req.token)?;
    if !limits::valid_bundle_id(&req.bundle_id) {
        return Err(ApiError::bad(
            code::INVALID_BUNDLE_ID,
            "the bundle id is reverse DNS (e.g. com.example.chat): letters, digits and hyphens \
             in dot-separated labels, at most 155 characters",
        ));
    }
    if !s.bundle_ids.is_empty() && !s.bundle_ids.contains(&req.bundle_id) {
        return Err(ApiError::bad(
            code::INVALID_BUNDLE_ID,
            format!(
                "this server sends notifications to these apps only: {}",
                s.bundle_ids.join(", ")
            ),
        ));
    }
    let (device, created) =
        chat_store::devices::register(&s.db, access.user, access.sid, &req).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(device)))
}

/// The caller's devices, most recently registered first.
#[utoipa::path(get, path = "/devices", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = DeviceList), (status = 401, body = ErrorBody)))]
pub async fn my_devices(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
) -> ApiResult<Json<DeviceList>> {
    Ok(Json(DeviceList {
        devices: chat_store::devices::devices_of(&s.db, me).await?,
    }))
}

/// Stop notifying a device of the caller (at sign-out).
#[utoipa::path(delete, path = "/devices/{token}", tag = "notifications", security(("bearer" = [])),
    params(("token" = String, Path, pattern = r"^(?:[0-9A-Fa-f]{2}){16,100}$", description = "the device token (hexadecimal)")),
    responses((status = 204, description = "unregistered"),
        (status = 400, body = ErrorBody, description = "invalid_device_token"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "device_not_found: not a device of the caller")))]
pub async fn unregister_device(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(token): Path<String>,
) -> ApiResult<StatusCode> {
    check_token(&token)?;
    if chat_store::devices::unregister(&s.db, me, &token).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(
            code::DEVICE_NOT_FOUND,
            "you have no device with this token".into(),
        ))
    }
}

fn check_token(token: &str) -> ApiResult<()> {
    if limits::valid_device_token(token) {
        Ok(())
    } else {
        Err(ApiError::bad(
            code::INVALID_DEVICE_TOKEN,
            "a device token is hexadecimal, 16 to 100 bytes (APNs: 64 digits)",
        ))
    }
}

/// How much of a channel notifies the caller: `all` (the default), `mentions` or `none`.
#[utoipa::path(get, path = "/channels/{channel_id}/notifications", tag = "notifications", security(("bearer" = [])),
    params(("channel_id" = ChannelId, Path, description = "channel id (UUID)")),
    responses((status = 200, body = ChannelNotifications), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_a_member"), (status = 404, body = ErrorBody, description = "channel_not_found")))]
pub async fn channel_notifications(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<String>,
) -> ApiResult<Json<ChannelNotifications>> {
    let channel = parse_channel_id(&channel_id)?;
    require_member(&s, channel, me).await?;
    // A leave between the two reads: the member's last level, as if read just before.
    let level = chat_store::devices::notification_level(&s.db, channel, me)
        .await?
        .unwrap_or_default();
    Ok(Json(ChannelNotifications {
        channel_id: channel,
        level,
    }))
}

/// Set how much of a channel notifies the caller (members only; kept while a member).
#[utoipa::path(put, path = "/channels/{channel_id}/notifications", tag = "notifications", security(("bearer" = [])),
    params(("channel_id" = ChannelId, Path, description = "channel id (UUID)")),
    request_body = SetNotificationLevel,
    responses((status = 200, body = ChannelNotifications), (status = 400, body = ErrorBody, description = "invalid_field (the level), invalid_id"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_a_member"), (status = 404, body = ErrorBody, description = "channel_not_found")))]
pub async fn set_channel_notifications(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<String>,
    ApiJson(req): ApiJson<SetNotificationLevel>,
) -> ApiResult<Json<ChannelNotifications>> {
    let channel = parse_channel_id(&channel_id)?;
    if !chat_store::devices::set_notification_level(&s.db, channel, me, req.level).await? {
        // Not a member (or no such channel): say which.
        require_member(&s, channel, me).await?;
    }
    Ok(Json(ChannelNotifications {
        channel_id: channel,
        level: req.level,
    }))
}

/// The caller's notification preferences.
#[utoipa::path(get, path = "/users/me/notifications", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = NotificationPreferences), (status = 401, body = ErrorBody)))]
pub async fn my_preferences(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
) -> ApiResult<Json<NotificationPreferences>> {
    let hide_previews = chat_store::devices::hide_previews(&s.db, me)
        .await?
        .ok_or_else(gone)?;
    Ok(Json(NotificationPreferences { hide_previews }))
}

/// Set the caller's notification preferences (`hide_previews`: notifications say only that there
/// is a new message, without sender or text).
#[utoipa::path(put, path = "/users/me/notifications", tag = "notifications", security(("bearer" = [])),
    request_body = NotificationPreferences,
    responses((status = 200, body = NotificationPreferences), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn set_my_preferences(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<NotificationPreferences>,
) -> ApiResult<Json<NotificationPreferences>> {
    if !chat_store::devices::set_hide_previews(&s.db, me, req.hide_previews).await? {
        return Err(gone());
    }
    Ok(Json(req))
}

fn gone() -> ApiError {
    ApiError::Unauthorized(code::INVALID_TOKEN, "the account no longer exists".into())
}

/// `api.bundle_ids`: comma-separated, each a well-formed bundle id.
pub fn parse_bundle_ids(list: &str) -> anyhow::Result<Vec<String>> {
    list.split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            anyhow::ensure!(
                limits::valid_bundle_id(id),
                "api.bundle_ids: {id:?} is not a bundle id (reverse DNS, e.g. com.example.chat)"
            );
            Ok(id.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_bundle_ids;

    #[test]
    fn bundle_id_lists() {
        assert!(parse_bundle_ids("").unwrap().is_empty());
        assert_eq!(
            parse_bundle_ids(" com.example.chat, com.example.chat-beta ,").unwrap(),
            ["com.example.chat", "com.example.chat-beta"]
        );
        assert!(parse_bundle_ids("com.example.chat,chat").is_err());
    }
}
