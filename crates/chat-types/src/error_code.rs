//! Every error code of the public contract, REST (`{"error": {"code", ...}}`) and WebSocket
//! (`error` frames), in one vocabulary: a code means the same thing wherever it appears.
//!
//! [`REST`] and [`WS`] list the codes each side sends; the wire fixtures
//! (`fixtures/wire/rest_error_codes.json`, `ws_error_codes.json`) are written from them.

// --- shared by REST and the WebSocket -------------------------------------------------------

/// Not a member of the channel (REST 403; `error` frame for `send` / `resume`).
pub const NOT_A_MEMBER: &str = "not_a_member";
/// A dependency (store, broker) is unavailable: retry (REST 503; `error` frame: resend with the
/// same `client_msg_id`).
pub const UNAVAILABLE: &str = "unavailable";
/// A message body is invalid (WebSocket: empty, only white space or too long); REST: a request
/// body that could not be read.
pub const INVALID_BODY: &str = "invalid_body";
/// Too many requests: wait for `Retry-After` seconds (REST 429); on the WebSocket, resend the
/// refused `send` (same `client_msg_id`) after the frame's `retry_after_ms`.
pub const RATE_LIMITED: &str = "rate_limited";

// --- WebSocket `error` frames ----------------------------------------------------------------

pub const MALFORMED_FRAME: &str = "malformed_frame";
pub const UNKNOWN_CHANNEL: &str = "unknown_channel";
pub const INVALID_CLIENT_MSG_ID: &str = "invalid_client_msg_id";
pub const UNKNOWN_MESSAGE: &str = "unknown_message";
/// A `mark_read` whose `seq` is not a position (below 1).
pub const INVALID_SEQ: &str = "invalid_seq";
/// An edit by someone other than the message's author, or a delete by someone other than the
/// author or the channel's owner.
pub const NOT_AUTHOR: &str = "not_author";
/// An edit of, or a reaction to, a message that was deleted.
pub const MESSAGE_DELETED: &str = "message_deleted";
/// A reaction's `emoji` is empty, longer than 64 bytes, or holds white space or control
/// characters.
pub const INVALID_EMOJI: &str = "invalid_emoji";
/// A `client_event_id` that is empty or over 128 characters.
pub const INVALID_CLIENT_EVENT_ID: &str = "invalid_client_event_id";
/// A WebSocket upgrade refused (HTTP 429): the user holds too many connections on the gateway.
pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";

// --- authentication (REST, and the WebSocket upgrade's 401) ---------------------------------

pub const MISSING_TOKEN: &str = "missing_token";
pub const INVALID_TOKEN: &str = "invalid_token";
pub const TOKEN_EXPIRED: &str = "token_expired";
/// The access token's session ended (logout, or its refresh token was reused): log in again,
/// or refresh if the client still holds a valid refresh token of another session (401).
pub const TOKEN_REVOKED: &str = "token_revoked";
/// A WebSocket ticket (`/ws?ticket=`) that is unknown, expired or already used (401): ask for
/// a new one.
pub const INVALID_TICKET: &str = "invalid_ticket";
pub const INVALID_CREDENTIALS: &str = "invalid_credentials";
pub const INVALID_REFRESH_TOKEN: &str = "invalid_refresh_token";
pub const REFRESH_TOKEN_REUSED: &str = "refresh_token_reused";

// --- REST request shape -----------------------------------------------------------------------

pub const MALFORMED_JSON: &str = "malformed_json";
pub const INVALID_FIELD: &str = "invalid_field";
pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
/// A text field or query parameter contains U+0000, which no stored text may hold.
pub const NUL_CHARACTER: &str = "nul_character";
pub const INVALID_QUERY: &str = "invalid_query";
pub const INVALID_ID: &str = "invalid_id";
pub const INVALID_LIMIT: &str = "invalid_limit";
pub const INVALID_CURSOR: &str = "invalid_cursor";
/// An unknown `sort` of the channel directory.
pub const INVALID_SORT: &str = "invalid_sort";
pub const NOT_FOUND: &str = "not_found";
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
/// The request took longer than the API allows (REST 503); retry.
pub const TIMEOUT: &str = "timeout";
pub const INTERNAL: &str = "internal";

// --- sent by the load balancer (nginx) itself -------------------------------------------------

/// The request could not be read: malformed, or its headers too large (400).
pub const BAD_REQUEST: &str = "bad_request";
/// The request URI is too long (414).
pub const URI_TOO_LONG: &str = "uri_too_long";
/// The client did not send its request in time (408).
pub const REQUEST_TIMEOUT: &str = "request_timeout";

// --- REST resources ---------------------------------------------------------------------------

pub const INVALID_USERNAME: &str = "invalid_username";
pub const INVALID_PASSWORD: &str = "invalid_password";
pub const INVALID_DISPLAY_NAME: &str = "invalid_display_name";
pub const USERNAME_TAKEN: &str = "username_taken";
pub const INVALID_NAME: &str = "invalid_name";
/// A group channel already has this name, ignoring case and Unicode compatibility forms (409).
pub const CHANNEL_NAME_TAKEN: &str = "channel_name_taken";
pub const INVALID_DESCRIPTION: &str = "invalid_description";
pub const CHANNEL_NOT_FOUND: &str = "channel_not_found";
pub const NOT_JOINABLE: &str = "not_joinable";
pub const NOT_LEAVABLE: &str = "not_leavable";
pub const INVALID_USER: &str = "invalid_user";
pub const USER_NOT_FOUND: &str = "user_not_found";
pub const MESSAGE_NOT_FOUND: &str = "message_not_found";
/// Push notifications (`POST/DELETE /devices`).
pub const INVALID_DEVICE_TOKEN: &str = "invalid_device_token";
pub const INVALID_BUNDLE_ID: &str = "invalid_bundle_id";
pub const DEVICE_NOT_FOUND: &str = "device_not_found";
/// Attachments (`/channels/{id}/attachments`; an attachment's bad name is `invalid_name`).
/// The declared size is over the server's maximum (413; a size of 0 is `invalid_field`).
pub const ATTACHMENT_TOO_LARGE: &str = "attachment_too_large";
/// The declared type is not one of the accepted ones (400).
pub const UNSUPPORTED_TYPE: &str = "unsupported_type";
/// The caller has too many uploads created and not completed (409): complete some first.
pub const TOO_MANY_UPLOADS: &str = "too_many_uploads";
/// `complete` before the bytes were uploaded (409): upload, then complete again.
pub const UPLOAD_INCOMPLETE: &str = "upload_incomplete";
/// The uploaded object's size or type differs from the declared ones (409); the object was
/// deleted: upload again through a new URL.
pub const UPLOAD_MISMATCH: &str = "upload_mismatch";
/// No attachment with this id in this channel (404).
pub const UNKNOWN_ATTACHMENT: &str = "unknown_attachment";
/// A `send`'s `attachments` (error frame): more than `limits::ATTACHMENTS_PER_MESSAGE_MAX`, an
/// id twice, or one that is not the sender's completed upload to this channel not yet carried
/// by another message (unknown, another channel's or user's, not completed, already sent).
pub const INVALID_ATTACHMENT: &str = "invalid_attachment";

/// Codes of `error` frames (`docs/protocol.md`).
pub const WS: &[&str] = &[
    MALFORMED_FRAME,
    NOT_A_MEMBER,
    UNKNOWN_CHANNEL,
    INVALID_BODY,
    INVALID_CLIENT_MSG_ID,
    UNKNOWN_MESSAGE,
    UNAVAILABLE,
    RATE_LIMITED,
    INVALID_SEQ,
    NOT_AUTHOR,
    MESSAGE_DELETED,
    INVALID_EMOJI,
    INVALID_CLIENT_EVENT_ID,
    INVALID_ATTACHMENT,
];

/// Codes of REST error bodies (the API, nginx's own errors in `deploy/nginx/routes.conf`, and
/// the gateway's 401 before an upgrade).
pub const REST: &[&str] = &[
    MISSING_TOKEN,
    INVALID_TOKEN,
    TOKEN_EXPIRED,
    TOKEN_REVOKED,
    INVALID_TICKET,
    INVALID_CREDENTIALS,
    INVALID_REFRESH_TOKEN,
    REFRESH_TOKEN_REUSED,
    MALFORMED_JSON,
    INVALID_FIELD,
    INVALID_BODY,
    UNSUPPORTED_MEDIA_TYPE,
    PAYLOAD_TOO_LARGE,
    NUL_CHARACTER,
    INVALID_QUERY,
    INVALID_ID,
    INVALID_LIMIT,
    INVALID_CURSOR,
    INVALID_SORT,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    RATE_LIMITED,
    TIMEOUT,
    UNAVAILABLE,
    INTERNAL,
    BAD_REQUEST,
    URI_TOO_LONG,
    REQUEST_TIMEOUT,
    TOO_MANY_CONNECTIONS,
    INVALID_USERNAME,
    INVALID_PASSWORD,
    INVALID_DISPLAY_NAME,
    USERNAME_TAKEN,
    INVALID_NAME,
    CHANNEL_NAME_TAKEN,
    INVALID_DESCRIPTION,
    CHANNEL_NOT_FOUND,
    NOT_A_MEMBER,
    NOT_JOINABLE,
    NOT_LEAVABLE,
    INVALID_USER,
    USER_NOT_FOUND,
    MESSAGE_NOT_FOUND,
    INVALID_DEVICE_TOKEN,
    INVALID_BUNDLE_ID,
    DEVICE_NOT_FOUND,
    ATTACHMENT_TOO_LARGE,
    UNSUPPORTED_TYPE,
    TOO_MANY_UPLOADS,
    UPLOAD_INCOMPLETE,
    UPLOAD_MISMATCH,
    UNKNOWN_ATTACHMENT,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_snake_case_and_listed_once() {
        for list in [REST, WS] {
            let unique: BTreeSet<_> = list.iter().collect();
            assert_eq!(unique.len(), list.len(), "a code is listed twice");
            for code in list {
                assert!(
                    !code.is_empty()
                        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        && !code.starts_with('_')
                        && !code.ends_with('_'),
                    "{code} is not snake_case"
                );
            }
        }
    }
}
