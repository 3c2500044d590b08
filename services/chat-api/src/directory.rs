//! The channel directory: every group channel, paged, by member count or by last activity.
//!
//! Pages are cut by keyset (the last channel's sort key and id), never by offset, so a page
//! costs the same at any depth and a channel created or joined meanwhile shifts no other
//! channel into or out of a later page. The cursor is opaque to clients: base64url of
//! `<sort letter>1.<key>.<channel id>`, checked whole on the way back in.

use crate::SharedState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, AuthUser};
use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_store::directory::DirectoryPosition;
use chat_types::error_code as code;
use chat_types::rest::{DirectoryPage, DirectorySort};
use chat_types::{ChannelId, ErrorBody, limits};
use chrono::DateTime;

/// Group channels anyone may join, without a query: most members first (`sort=members`, the
/// default) or most recent message first (`sort=activity`; channels without messages last,
/// newest first). Ties are broken by channel id, so paging with `next_cursor` lists every
/// channel exactly once in a stable order.
#[utoipa::path(get, path = "/channels/directory", tag = "channels", security(("bearer" = [])),
    params(
        ("sort" = inline(Option<DirectorySort>), Query, description = "`members` (default) or `activity`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "page size, 1-100, default 20"),
        ("cursor" = Option<String>, Query, max_length = 200, description = "`next_cursor` of the previous page, with the same `sort`")),
    responses((status = 200, body = DirectoryPage),
        (status = 400, body = ErrorBody, description = "invalid_sort, invalid_limit, invalid_cursor"),
        (status = 401, body = ErrorBody)))]
pub async fn channel_directory(
    State(s): State<SharedState>,
    AuthUser(me): AuthUser,
    ApiQuery(q): ApiQuery,
) -> ApiResult<Json<DirectoryPage>> {
    let sort = match q.get("sort").map(String::as_str) {
        None | Some("") => DirectorySort::default(),
        Some(name) => DirectorySort::parse(name).ok_or_else(|| {
            ApiError::bad(code::INVALID_SORT, "sort must be 'members' or 'activity'")
        })?,
    };
    let limit = match q.get("limit") {
        None => limits::DIRECTORY_DEFAULT_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=limits::DIRECTORY_MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad(
                    code::INVALID_LIMIT,
                    format!("limit must be 1 to {}", limits::DIRECTORY_MAX_LIMIT),
                )
            })?,
    };
    let after = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let position = decode_cursor(c).ok_or_else(|| {
                ApiError::bad(
                    code::INVALID_CURSOR,
                    "cursor must be a next_cursor this endpoint returned",
                )
            })?;
            if position.sort() != sort {
                return Err(ApiError::bad(
                    code::INVALID_CURSOR,
                    format!(
                        "this cursor continues sort={}; pass the same sort",
                        position.sort().as_str()
                    ),
                ));
            }
            Some(position)
        }
    };
    // One more than asked: whether it exists says whether there is a next page.
    let mut channels =
        chat_store::directory::page(&s.db, me, sort, after, i64::from(limit) + 1).await?;
    let next_cursor = if channels.len() > limit as usize {
        channels.truncate(limit as usize);
        channels
            .last()
            .map(|last| encode_cursor(&DirectoryPosition::of(sort, last)))
    } else {
        None
    };
    Ok(Json(DirectoryPage {
        channels,
        next_cursor,
    }))
}

fn encode_cursor(p: &DirectoryPosition) -> String {
    let text = match p {
        DirectoryPosition::Members { member_count, id } => format!("m1.{member_count}.{id}"),
        DirectoryPosition::Activity { at, id } => format!("a1.{}.{id}", at.timestamp_micros()),
    };
    URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(cursor: &str) -> Option<DirectoryPosition> {
    if cursor.len() > 200 {
        return None;
    }
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let mut parts = text.splitn(3, '.');
    let (kind, key, id) = (parts.next()?, parts.next()?, parts.next()?);
    let id: ChannelId = id.parse().ok()?;
    match kind {
        "m1" => Some(DirectoryPosition::Members {
            member_count: key.parse().ok().filter(|n: &i32| *n >= 0)?,
            id,
        }),
        "a1" => Some(DirectoryPosition::Activity {
            at: DateTime::from_timestamp_micros(key.parse().ok()?)?,
            id,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn cursors_come_back_as_the_position_they_were_made_from() {
        let id = ChannelId(Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_0001));
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        for p in [
            DirectoryPosition::Members {
                member_count: 0,
                id,
            },
            DirectoryPosition::Members {
                member_count: 12_345,
                id,
            },
            DirectoryPosition::Activity { at, id },
            DirectoryPosition::Activity {
                at: DateTime::UNIX_EPOCH,
                id,
            },
        ] {
            let c = encode_cursor(&p);
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(decode_cursor(&c), Some(p));
        }
    }

    #[test]
    fn garbage_cursors_are_refused() {
        let id = Uuid::from_u128(1);
        for text in [
            String::new(),
            "m1.3".into(),
            format!("m1.-1.{id}"),
            format!("m1.x.{id}"),
            "m1.3.not-a-uuid".into(),
            format!("z1.3.{id}"),
            format!("a1.99999999999999999999.{id}"),
        ] {
            assert_eq!(
                decode_cursor(&URL_SAFE_NO_PAD.encode(&text)),
                None,
                "{text}"
            );
        }
        for raw in ["%%%", "bm9wZQ==", "garbage!", &"A".repeat(300)] {
            assert_eq!(decode_cursor(raw), None, "{raw}");
        }
    }
}

#[cfg(test)]
mod openapi_tests {
    use serde_json::{Value, json};

    /// The OpenAPI document declares the directory's contract: the sort enum, the page-size
    /// bounds, the cursor's length, the error statuses, and the entry's fields.
    #[test]
    fn the_openapi_document_declares_the_directory_contract() {
        let doc = serde_json::to_value(crate::routes::openapi()).unwrap();
        let op = &doc["paths"]["/api/v1/channels/directory"]["get"];
        let param = |name: &str| -> Value {
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("parameter {name}: {op}"))
                .clone()
        };
        let limit = param("limit");
        assert_eq!(
            (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
            (&json!(1), &json!(100)),
            "{limit}"
        );
        assert_eq!(param("cursor")["schema"]["maxLength"], json!(200));
        // Inline: a `$ref` to a schema the document does not list would leave clients guessing.
        let sort = param("sort");
        assert_eq!(
            sort["schema"]["enum"],
            json!(["members", "activity"]),
            "{sort}"
        );
        let schemas = &doc["components"]["schemas"];
        for status in ["200", "400", "401"] {
            assert!(op["responses"][status].is_object(), "{status}: {op}");
        }
        let entry = &schemas["DirectoryEntry"];
        let mut required: Vec<&str> = entry["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        required.sort();
        assert_eq!(
            required,
            [
                "description",
                "id",
                "is_member",
                "last_activity_at",
                "member_count",
                "name"
            ],
            "{entry}"
        );
        assert_eq!(
            entry["properties"]["id"]["$ref"],
            "#/components/schemas/ChannelId"
        );
        assert_eq!(schemas["ChannelId"]["format"], "uuid");
        assert_eq!(
            schemas["DirectoryPage"]["properties"]["next_cursor"]["type"],
            json!(["string", "null"])
        );
        let created = &doc["paths"]["/api/v1/channels"]["post"]["responses"];
        assert!(created["409"].is_object(), "{created}");
        let users = &doc["paths"]["/api/v1/users"]["get"]["parameters"][0]["schema"];
        // 1 to 64 characters once trimmed: the pattern the API's own check agrees with
        // (chat-types' patterns tests).
        let users = match users["$ref"].as_str() {
            Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
            None => users,
        };
        assert_eq!(users["pattern"], json!(chat_types::patterns::user_query()));
    }
}
