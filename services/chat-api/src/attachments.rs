//! Attachments (issue #16): a member declares a file and gets a presigned upload URL, PUTs the
//! bytes to the object store through nginx, completes the upload (checked here: the object is
//! there, of the declared size and type; an image's width and height read from its header),
//! and members get short-lived download links. The API never carries the bytes of an upload.
//! Object keys are `o/<attachment id>`, never the user's file name. URLs name the origin the
//! request came through ([`ClientOrigin`]), since their signature covers the host.

use crate::SharedState;
use crate::dimensions::{self, Dimensions};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser, ClientOrigin};
use crate::routes::{parse_channel_id, require_member};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chat_store::attachments::NewAttachment;
use chat_store::objects::{
    ObjectsError, Origin, Presigned, THUMBNAIL_TYPE, file_key, thumbnail_key,
};
use chat_types::attachments::{
    Attachment, AttachmentLink, AttachmentState, AttachmentUpload, CreateAttachment,
    ThumbnailState, UploadRequest,
};
use chat_types::error_code as code;
use chat_types::{ChannelId, ErrorBody, UserId, limits};
use std::time::Duration;
use uuid::Uuid;

fn store_failed(e: ObjectsError) -> ApiError {
    match e {
        ObjectsError::Store { .. } => ApiError::Unavailable(e.to_string()),
        ObjectsError::Config(_) => ApiError::Internal(e.into()),
    }
}

fn parse_attachment_id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::bad(
            code::INVALID_ID,
            format!("'{}' is not a valid attachment id", s.escape_debug()),
        )
    })
}

fn unknown_attachment() -> ApiError {
    ApiError::NotFound(
        code::UNKNOWN_ATTACHMENT,
        "this channel has no attachment with this id".into(),
    )
}

fn upload_incomplete() -> ApiError {
    ApiError::Conflict(
        code::UPLOAD_INCOMPLETE,
        "the file has not been uploaded yet: PUT it to the upload URL, then complete".into(),
    )
}

/// The declared name, type and size are acceptable (at creation, and again for a new URL).
fn check_declared(s: &SharedState, name: &str, content_type: &str, size: u64) -> ApiResult<()> {
    if !limits::valid_attachment_name(name) {
        return Err(ApiError::bad(
            code::INVALID_NAME,
            "a file name is 1 to 255 characters, without '/', control characters or invisible \
             format characters",
        ));
    }
    if !limits::valid_attachment_type(content_type) {
        return Err(ApiError::bad(
            code::UNSUPPORTED_TYPE,
            format!(
                "files of this type cannot be attached; accepted: {}",
                limits::ATTACHMENT_TYPES.join(", ")
            ),
        ));
    }
    if size == 0 {
        return Err(ApiError::bad(
            code::INVALID_FIELD,
            "size: an attachment has at least 1 byte",
        ));
    }
    if size > s.attachment_max_bytes {
        return Err(ApiError::PayloadTooLarge(
            code::ATTACHMENT_TOO_LARGE,
            format!(
                "attachments are limited to {} bytes",
                s.attachment_max_bytes
            ),
        ));
    }
    Ok(())
}

async fn upload_for(
    s: &SharedState,
    origin: Option<&Origin>,
    a: &Attachment,
) -> ApiResult<AttachmentUpload> {
    let Presigned {
        method,
        url,
        headers,
    } = s
        .objects
        .presign_put_for(
            origin,
            &file_key(a.id),
            &a.content_type,
            a.size,
            Duration::from_secs(limits::UPLOAD_URL_SECS),
        )
        .await
        .map_err(store_failed)?;
    Ok(AttachmentUpload {
        id: a.id,
        upload: UploadRequest {
            method,
            url,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        },
        expires_in: limits::UPLOAD_URL_SECS,
    })
}

/// The attachment `id` of `channel`, for its uploader only (others: unknown, as the upload is
/// theirs to finish).
async fn own_attachment(
    s: &SharedState,
    channel: ChannelId,
    id: Uuid,
    me: UserId,
) -> ApiResult<Attachment> {
    match chat_store::attachments::get(&s.db, channel, id).await? {
        Some(a) if a.uploader_id == me => Ok(a),
        _ => Err(unknown_attachment()),
    }
}

/// Declare a file to attach in a channel (members only) and get where to upload it: a
/// presigned PUT, valid 15 minutes, that the object store accepts only with exactly the given
/// headers (the declared size and type). Then PUT the bytes and call `…/complete`. A user has
/// at most 20 uploads not completed (within the last hour).
#[utoipa::path(post, path = "/channels/{channel_id}/attachments", tag = "attachments", security(("bearer" = [])),
    params(("channel_id" = ChannelId, Path, description = "channel id (UUID)")),
    request_body = CreateAttachment,
    responses((status = 201, body = AttachmentUpload, description = "created, pending its upload"),
        (status = 400, body = ErrorBody, description = "invalid_name, unsupported_type, invalid_field, invalid_id"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_a_member"), (status = 404, body = ErrorBody, description = "channel_not_found"),
        (status = 409, body = ErrorBody, description = "too_many_uploads: complete (or abandon) some first"),
        (status = 413, body = ErrorBody, description = "attachment_too_large (the declared size), payload_too_large (the request)")))]
pub async fn create_attachment(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ClientOrigin(origin): ClientOrigin,
    Path(channel_id): Path<String>,
    ApiJson(req): ApiJson<CreateAttachment>,
) -> ApiResult<(StatusCode, Json<AttachmentUpload>)> {
    let channel = parse_channel_id(&channel_id)?;
    check_declared(&s, &req.name, &req.content_type, req.size)?;
    require_member(&s, channel, me).await?;
    let new = NewAttachment {
        id: Uuid::now_v7(),
        channel,
        uploader: me,
        name: &req.name,
        content_type: &req.content_type,
        size: req.size,
    };
    let Some(a) =
        chat_store::attachments::create_pending(&s.db, &new, limits::PENDING_UPLOADS_PER_USER_MAX)
            .await?
    else {
        return Err(ApiError::Conflict(
            code::TOO_MANY_UPLOADS,
            format!(
                "you have {} uploads not completed; complete them first",
                limits::PENDING_UPLOADS_PER_USER_MAX
            ),
        ));
    };
    Ok((
        StatusCode::CREATED,
        Json(upload_for(&s, origin.as_ref(), &a).await?),
    ))
}

/// A new upload URL for an attachment of the caller not completed yet (the first expired):
/// the same checks as at creation.
#[utoipa::path(post, path = "/channels/{channel_id}/attachments/{attachment_id}/upload-url", tag = "attachments", security(("bearer" = [])),
    params(("channel_id" = ChannelId, Path, description = "channel id (UUID)"),
        ("attachment_id" = Uuid, Path, description = "attachment id (UUID)")),
    responses((status = 200, body = AttachmentUpload),
        (status = 400, body = ErrorBody, description = "invalid_id, invalid_name, unsupported_type"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_a_member"),
        (status = 404, body = ErrorBody, description = "channel_not_found, unknown_attachment (none of the caller's pending ones in this channel, or abandoned: not completed within an hour)"),
        (status = 413, body = ErrorBody, description = "attachment_too_large")))]
pub async fn new_upload_url(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ClientOrigin(origin): ClientOrigin,
    Path((channel_id, attachment_id)): Path<(String, String)>,
) -> ApiResult<Json<AttachmentUpload>> {
    let channel = parse_channel_id(&channel_id)?;
    let id = parse_attachment_id(&attachment_id)?;
    require_member(&s, channel, me).await?;
    let a = own_attachment(&s, channel, id, me).await?;
    // A completed file is never replaced: its checks (and soon its messages) stand.
    if a.state != AttachmentState::Pending {
        return Err(unknown_attachment());
    }
    // Abandoned: chat-media's sweeper deletes it once no URL given out can still be used.
    let renewable = chrono::Duration::seconds(limits::UPLOAD_RENEWABLE_SECS as i64);
    if chrono::Utc::now() - a.created_at > renewable {
        return Err(ApiError::NotFound(
            code::UNKNOWN_ATTACHMENT,
            "this upload was abandoned (not completed within an hour of its creation): \
             declare the file again"
                .into(),
        ));
    }
    check_declared(&s, &a.name, &a.content_type, a.size)?;
    Ok(Json(upload_for(&s, origin.as_ref(), &a).await?))
}

/// Complete an upload (its uploader only): the object must be there with the declared size
/// and type (otherwise it is deleted: upload again with a new URL). Images get their width and
/// height (upright) from their header. Completing again answers the same.
#[utoipa::path(post, path = "/channels/{channel_id}/attachments/{attachment_id}/complete", tag = "attachments", security(("bearer" = [])),
    params(("channel_id" = ChannelId, Path, description = "channel id (UUID)"),
        ("attachment_id" = Uuid, Path, description = "attachment id (UUID)")),
    responses((status = 200, body = Attachment, description = "ready"),
        (status = 400, body = ErrorBody, description = "invalid_id"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_a_member"),
        (status = 404, body = ErrorBody, description = "channel_not_found, unknown_attachment"),
        (status = 409, body = ErrorBody, description = "upload_incomplete (not uploaded yet), upload_mismatch (another size or type arrived; deleted)")))]
pub async fn complete_attachment(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    Path((channel_id, attachment_id)): Path<(String, String)>,
) -> ApiResult<Json<Attachment>> {
    let channel = parse_channel_id(&channel_id)?;
    let id = parse_attachment_id(&attachment_id)?;
    require_member(&s, channel, me).await?;
    let a = own_attachment(&s, channel, id, me).await?;
    if a.state == AttachmentState::Ready {
        return Ok(Json(a));
    }
    let key = file_key(id);
    let head = s
        .objects
        .head(&key)
        .await
        .map_err(store_failed)?
        .ok_or_else(upload_incomplete)?;
    let same_type = head
        .content_type
        .as_deref()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(&a.content_type));
    if head.size != a.size || !same_type {
        // Cannot come through our presigned URL (it binds both); a second line of defence.
        tracing::warn!(attachment_id = %id, declared = a.size, stored = head.size,
            stored_type = ?head.content_type, "upload differs from its declaration; deleted");
        s.objects.delete(&key).await.map_err(store_failed)?;
        return Err(ApiError::Conflict(
            code::UPLOAD_MISMATCH,
            "the uploaded file's size or type differs from the declared ones; it was deleted: \
             upload again with a new URL"
                .into(),
        ));
    }
    let dims = image_dimensions(&s, &key, &a).await?;
    chat_store::attachments::mark_ready(&s.db, channel, id, dims)
        .await?
        .map(Json)
        .ok_or_else(unknown_attachment)
}

/// Width and height of an image attachment: from its first 256 KiB, or the whole file when
/// its header goes on beyond them. Decoding runs off the async runtime.
async fn image_dimensions(
    s: &SharedState,
    key: &str,
    a: &Attachment,
) -> ApiResult<Option<(u32, u32)>> {
    if !a.content_type.starts_with("image/") {
        return Ok(None);
    }
    let read = |end: Option<u64>| async move {
        s.objects
            .get_range(key, 0, end)
            .await
            .map_err(store_failed)?
            .ok_or_else(upload_incomplete)
    };
    let decode = |bytes: Vec<u8>, complete: bool| {
        let content_type = a.content_type.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                dimensions::dimensions(&content_type, &bytes, complete)
            })
            .await
            .map_err(|e| ApiError::Internal(e.into()))
        }
    };
    // Within the object (size >= 1): some stores answer 416 to a range past the end.
    let prefix = read(Some(dimensions::HEADER_BYTES.min(a.size) - 1)).await?;
    let complete = prefix.len() as u64 >= a.size;
    let found = match decode(prefix, complete).await? {
        Dimensions::NeedMore => decode(read(None).await?, true).await?,
        d => d,
    };
    Ok(match found {
        Dimensions::Known(w, h) => Some((w, h)),
        Dimensions::Unknown | Dimensions::NeedMore => None,
    })
}

/// Where to download an attachment (members only): a presigned GET valid 5 minutes. Images are
/// shown inline; other files are saved under their name. An image's thumbnail (a JPEG of at
/// most 480 px a side, made by `chat-media` shortly after the upload is completed) comes with
/// its own link once it is made (`thumbnail: ready`); `pending` until then, `none` for files
/// that are not images or could not be decoded.
#[utoipa::path(get, path = "/channels/{channel_id}/attachments/{attachment_id}", tag = "attachments", security(("bearer" = [])),
    params(("channel_id" = ChannelId, Path, description = "channel id (UUID)"),
        ("attachment_id" = Uuid, Path, description = "attachment id (UUID)")),
    responses((status = 200, body = AttachmentLink),
        (status = 400, body = ErrorBody, description = "invalid_id"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not_a_member"),
        (status = 404, body = ErrorBody, description = "channel_not_found, unknown_attachment"),
        (status = 409, body = ErrorBody, description = "upload_incomplete: not completed yet")))]
pub async fn attachment_link(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ClientOrigin(origin): ClientOrigin,
    Path((channel_id, attachment_id)): Path<(String, String)>,
) -> ApiResult<Json<AttachmentLink>> {
    let channel = parse_channel_id(&channel_id)?;
    let id = parse_attachment_id(&attachment_id)?;
    require_member(&s, channel, me).await?;
    let (a, thumbnail) = chat_store::attachments::get_with_thumbnail(&s.db, channel, id)
        .await?
        .ok_or_else(unknown_attachment)?;
    if a.state != AttachmentState::Ready {
        return Err(upload_incomplete());
    }
    let get = s
        .objects
        .presign_download_for(
            origin.as_ref(),
            &file_key(id),
            Duration::from_secs(limits::DOWNLOAD_URL_SECS),
            &a.content_type,
            &disposition(&a.content_type, &a.name),
        )
        .await
        .map_err(store_failed)?;
    let thumbnail_url = match thumbnail {
        ThumbnailState::Ready => Some(
            s.objects
                .presign_download_for(
                    origin.as_ref(),
                    &thumbnail_key(id),
                    Duration::from_secs(limits::DOWNLOAD_URL_SECS),
                    THUMBNAIL_TYPE,
                    "inline",
                )
                .await
                .map_err(store_failed)?
                .url,
        ),
        ThumbnailState::Pending | ThumbnailState::None => None,
    };
    Ok(Json(AttachmentLink {
        url: get.url,
        thumbnail_url,
        thumbnail,
        expires_in: limits::DOWNLOAD_URL_SECS,
    }))
}

/// `Content-Disposition` of a download: images inline, everything else as a file under its
/// name (RFC 6266 / RFC 8187 `filename*`, so any name survives, quotes and non-ASCII included).
fn disposition(content_type: &str, name: &str) -> String {
    if content_type.starts_with("image/") {
        return "inline".into();
    }
    let mut encoded = String::with_capacity(name.len());
    for b in name.bytes() {
        // RFC 8187 attr-char.
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_name_the_file_safely() {
        assert_eq!(disposition("image/png", "a.png"), "inline");
        assert_eq!(
            disposition("application/pdf", "Résumé \"final\"; v2.pdf"),
            "attachment; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%3B%20v2.pdf"
        );
        assert_eq!(
            disposition("text/plain", "notes_1.txt"),
            "attachment; filename*=UTF-8''notes_1.txt"
        );
    }

    #[test]
    fn the_document_describes_every_attachment_route() {
        let doc = crate::routes::openapi();
        let base = "/api/v1/channels/{channel_id}/attachments";
        for (path, method) in [
            (base.to_owned(), "post"),
            (format!("{base}/{{attachment_id}}"), "get"),
            (format!("{base}/{{attachment_id}}/complete"), "post"),
            (format!("{base}/{{attachment_id}}/upload-url"), "post"),
        ] {
            let item = doc
                .paths
                .paths
                .get(&path)
                .unwrap_or_else(|| panic!("{path}"));
            let op = match method {
                "get" => item.get.as_ref(),
                _ => item.post.as_ref(),
            };
            assert!(op.is_some(), "{method} {path}");
        }
        let schemas = &doc.components.as_ref().unwrap().schemas;
        for name in [
            "CreateAttachment",
            "AttachmentUpload",
            "Attachment",
            "AttachmentLink",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
    }

    #[test]
    fn object_keys_are_the_shape_nginx_serves() {
        let id = Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_0001);
        assert_eq!(file_key(id), "o/0190a2b4-0000-7000-8000-000000000001");
        assert_eq!(
            chat_store::objects::thumbnail_key(id),
            "t/0190a2b4-0000-7000-8000-000000000001.jpg"
        );
    }
}
