//! Push notifications, as the REST API sees them (`docs/protocol.md`, "Push notifications"):
//! the devices a user registers, how much of each channel notifies them, and whether
//! notifications show a preview. The notifier (issue #16) reads these.

use crate::ids::ChannelId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The push service a device is reached through. Only Apple's today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Apns,
}

/// Which APNs server the token belongs to: an app built for development gets sandbox tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PushEnvironment {
    Production,
    Sandbox,
}

/// `POST /api/v1/devices`: register (or re-register) a device of the caller. A token belongs to
/// one user: registering a token another user had moves it to the caller (the phone changed
/// hands or accounts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterDeviceRequest {
    pub platform: Platform,
    /// The device token as the OS gives it, in hexadecimal (APNs: 32 bytes, 64 digits today;
    /// up to 100 bytes accepted, as Apple asks providers not to assume a length).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::device_token))]
    pub token: String,
    pub environment: PushEnvironment,
    /// The app's bundle id: the `apns-topic` its notifications are sent with.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::bundle_id))]
    pub bundle_id: String,
}

/// A registered device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    pub platform: Platform,
    /// Lowercase hexadecimal.
    pub token: String,
    pub environment: PushEnvironment,
    pub bundle_id: String,
    /// When the caller first registered it.
    pub created_at: DateTime<Utc>,
    /// When it was last registered (apps register at every launch).
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/devices`: the caller's devices, most recently registered first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceList {
    pub devices: Vec<Device>,
}

/// How much of a channel notifies a member's devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    /// Every message from someone else (the default).
    #[default]
    All,
    /// Only messages that mention the member.
    Mentions,
    /// Nothing (muted).
    None,
}

/// `PUT /api/v1/channels/{channel_id}/notifications`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetNotificationLevel {
    pub level: NotificationLevel,
}

/// A member's notification level for one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelNotifications {
    pub channel_id: ChannelId,
    pub level: NotificationLevel,
}

/// `GET` / `PUT /api/v1/users/me/notifications`: the caller's notification preferences.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationPreferences {
    /// Notifications say only that there is a new message: no sender, no text (for lock screens
    /// others can see).
    pub hide_previews: bool,
}
