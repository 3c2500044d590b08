//! Attachments, as the REST API sees them (issue #16; `docs/protocol.md`, "Attachments"): a
//! member asks for an upload URL, PUTs the bytes to the object store through it, completes
//! the upload, and members download through short-lived links. A `send` frame names up to
//! four completed uploads (`attachments`); the message then carries them as
//! [`MessageAttachment`]s, live and in history.

use crate::ids::{ChannelId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// `POST /api/v1/channels/{channel_id}/attachments`: what the caller is about to upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateAttachment {
    /// The file's name as people see it: 1 to 255 characters, no control characters, no `/`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::attachment_name))]
    pub name: String,
    /// One of the accepted types (`limits::ATTACHMENT_TYPES`).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::attachment_type))]
    pub content_type: String,
    /// Bytes, 1 to the server's maximum (25 MiB by default).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub size: u64,
}

/// A presigned request: send exactly this method, to this URL, with these headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadRequest {
    /// `PUT`.
    pub method: String,
    pub url: String,
    /// Header names (lowercase) and values the signature covers (`content-type`,
    /// `content-length`); the store refuses (403) a request with other values.
    pub headers: BTreeMap<String, String>,
}

/// An attachment waiting for its bytes, and where to upload them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentUpload {
    pub id: Uuid,
    pub upload: UploadRequest,
    /// Seconds the upload URL stays valid (then ask for another: `…/upload-url`).
    pub expires_in: u64,
}

/// Whether an attachment's bytes have arrived (and were checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttachmentState {
    /// Created; the upload is not completed yet.
    Pending,
    /// Uploaded and completed: it can be downloaded (and, later, sent in a message).
    Ready,
}

/// An attachment of a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    pub id: Uuid,
    pub channel_id: ChannelId,
    pub uploader_id: UserId,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Pixels of an image as it is shown upright (EXIF orientation applied); absent for other
    /// files and for images whose header could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    pub state: AttachmentState,
    pub created_at: DateTime<Utc>,
}

/// An attachment as a message carries it: enough to lay it out (an image's box, a file's chip)
/// before anything is downloaded. The bytes: `GET …/attachments/{id}` for a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageAttachment {
    pub id: Uuid,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Pixels of an image, upright; absent for other files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// Whether an attachment has a thumbnail to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ThumbnailState {
    /// `thumbnail_url` is set.
    Ready,
    /// Being made: ask again shortly.
    Pending,
    /// There will be none (not an image, or one that could not be decoded).
    None,
}

/// `GET /api/v1/channels/{channel_id}/attachments/{attachment_id}`: where to download it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentLink {
    /// A presigned GET of the file (images shown inline, other files as downloads under their
    /// name).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    pub thumbnail: ThumbnailState,
    /// Seconds the URLs stay valid.
    pub expires_in: u64,
}
