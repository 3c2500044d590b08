//! PostgreSQL: what push notifications need to know about users. Their registered devices (a
//! token belongs to the user who registered it last), each member's notification level per
//! channel and whether previews are hidden. Schema: `migrations/postgres/0007_push_notifications.sql`.

use crate::pg::{PgError, PgPool};
use chat_types::limits::DEVICES_PER_USER_MAX;
use chat_types::notifications::{
    Device, NotificationLevel, Platform, PushEnvironment, RegisterDeviceRequest,
};
use chat_types::{ChannelId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct DeviceRow {
    token: String,
    environment: String,
    bundle_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<DeviceRow> for Device {
    fn from(r: DeviceRow) -> Self {
        Device {
            platform: Platform::Apns,
            token: r.token,
            environment: if r.environment == "sandbox" {
                PushEnvironment::Sandbox
            } else {
                PushEnvironment::Production
            },
            bundle_id: r.bundle_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn environment(e: PushEnvironment) -> &'static str {
    match e {
        PushEnvironment::Production => "production",
        PushEnvironment::Sandbox => "sandbox",
    }
}

fn level(l: NotificationLevel) -> &'static str {
    match l {
        NotificationLevel::All => "all",
        NotificationLevel::Mentions => "mentions",
        NotificationLevel::None => "none",
    }
}

fn level_of(s: &str) -> NotificationLevel {
    match s {
        "mentions" => NotificationLevel::Mentions,
        "none" => NotificationLevel::None,
        _ => NotificationLevel::All,
    }
}

/// Register `req.token` for `user` in `session` (validated: hexadecimal, stored lowercase), taking it from
/// whoever had it; then forget the user's devices beyond the limit, registered longest ago. One
/// transaction. Returns the device and whether it is new to this user.
pub async fn register(
    db: &PgPool,
    user: UserId,
    session: Option<Uuid>,
    req: &RegisterDeviceRequest,
) -> Result<(Device, bool), PgError> {
    let mut tx = db.begin().await?;
    // New to this user (inserted, or moved from another user): its `created_at` is this
    // transaction's `now()`, like `updated_at`.
    let (row, created) = {
        type Row = (String, String, String, DateTime<Utc>, DateTime<Utc>, bool);
        let r: Row = sqlx::query_as(
            "INSERT INTO devices AS d (token, platform, user_id, environment, bundle_id, session_id)
             VALUES (lower($1), 'apns', $2, $3, $4, $5)
             ON CONFLICT (token) DO UPDATE SET
                 user_id = EXCLUDED.user_id, environment = EXCLUDED.environment,
                 bundle_id = EXCLUDED.bundle_id, session_id = EXCLUDED.session_id,
                 updated_at = now(),
                 created_at = CASE WHEN d.user_id = EXCLUDED.user_id THEN d.created_at ELSE now() END
             RETURNING token, environment, bundle_id, created_at, updated_at,
                       created_at = updated_at",
        )
        .bind(&req.token)
        .bind(user.0)
        .bind(environment(req.environment))
        .bind(&req.bundle_id)
        .bind(session)
        .fetch_one(&mut *tx)
        .await?;
        (
            DeviceRow {
                token: r.0,
                environment: r.1,
                bundle_id: r.2,
                created_at: r.3,
                updated_at: r.4,
            },
            r.5,
        )
    };
    sqlx::query(
        "DELETE FROM devices WHERE token IN (
             SELECT token FROM devices WHERE user_id = $1
             ORDER BY updated_at DESC, token OFFSET $2)",
    )
    .bind(user.0)
    .bind(DEVICES_PER_USER_MAX as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((row.into(), created))
}

/// Forget the devices registered in these sessions (they ended). Returns how many.
pub async fn forget_sessions(db: &PgPool, sessions: &[Uuid]) -> Result<u64, PgError> {
    let r = sqlx::query("DELETE FROM devices WHERE session_id = ANY($1)")
        .bind(sessions)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// The user's devices, most recently registered first.
pub async fn devices_of(db: &PgPool, user: UserId) -> Result<Vec<Device>, PgError> {
    let rows: Vec<DeviceRow> = sqlx::query_as(
        "SELECT token, environment, bundle_id, created_at, updated_at FROM devices
         WHERE user_id = $1 ORDER BY updated_at DESC, token",
    )
    .bind(user.0)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Device::from).collect())
}

/// Forget the user's device `token` (any case). False if the user has no such device.
pub async fn unregister(db: &PgPool, user: UserId, token: &str) -> Result<bool, PgError> {
    let r = sqlx::query("DELETE FROM devices WHERE token = lower($1) AND user_id = $2")
        .bind(token)
        .bind(user.0)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// The member's notification level in `channel` (`None`: not a member).
pub async fn notification_level(
    db: &PgPool,
    channel: ChannelId,
    user: UserId,
) -> Result<Option<NotificationLevel>, PgError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT notify_level FROM memberships WHERE channel_id = $1 AND user_id = $2",
    )
    .bind(channel.0)
    .bind(user.0)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(l,)| level_of(&l)))
}

/// Set the member's notification level in `channel`. False: not a member.
pub async fn set_notification_level(
    db: &PgPool,
    channel: ChannelId,
    user: UserId,
    to: NotificationLevel,
) -> Result<bool, PgError> {
    let r = sqlx::query(
        "UPDATE memberships SET notify_level = $3 WHERE channel_id = $1 AND user_id = $2",
    )
    .bind(channel.0)
    .bind(user.0)
    .bind(level(to))
    .execute(db)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Whether the user's notifications hide their previews (`None`: no such user).
pub async fn hide_previews(db: &PgPool, user: UserId) -> Result<Option<bool>, PgError> {
    let row: Option<(bool,)> = sqlx::query_as("SELECT hide_previews FROM users WHERE id = $1")
        .bind(user.0)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|(h,)| h))
}

/// Set whether the user's notifications hide their previews. False: no such user.
pub async fn set_hide_previews(db: &PgPool, user: UserId, hide: bool) -> Result<bool, PgError> {
    let r = sqlx::query("UPDATE users SET hide_previews = $2 WHERE id = $1")
        .bind(user.0)
        .bind(hide)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}
