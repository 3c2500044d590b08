//! JSON schemas of the constrained text fields and query parameters, built from
//! [`crate::patterns`] and [`crate::limits`], for the API's OpenAPI document: what the document
//! declares is what the API checks.

use crate::{limits, patterns};
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{RefOr, schema::SchemaFormat};

fn string(pattern: String, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

fn nullable(b: ObjectBuilder) -> ObjectBuilder {
    b.schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// Any text without a NUL character.
pub fn text() -> Schema {
    string(
        patterns::text(),
        "any text without a NUL character (U+0000)",
    )
    .into()
}

pub fn password() -> Schema {
    string(
        patterns::password(),
        "8 to 1024 characters, not only white space, no NUL",
    )
    .min_length(Some(limits::PASSWORD_MIN))
    .max_length(Some(limits::PASSWORD_MAX))
    .into()
}

pub fn display_name() -> Schema {
    nullable(string(
        patterns::display_name(),
        "at most 64 characters once white space around it is trimmed (empty or absent: the \
         username), without control characters (Cc), line or paragraph separators, or format \
         characters (Cf: bidi overrides and isolates, zero-width spaces, the byte-order mark) \
         other than the zero-width joiner and non-joiner",
    ))
    .into()
}

pub fn channel_name() -> Schema {
    string(
        patterns::channel_name(),
        "1 to 80 characters once white space around it is trimmed, without control characters, \
         line or paragraph separators, or invisible format characters (as display names)",
    )
    .into()
}

pub fn description() -> Schema {
    nullable(string(
        patterns::description(),
        "at most 1000 characters once white space around it is trimmed, no NUL",
    ))
    .into()
}

pub fn device_token() -> Schema {
    string(
        patterns::device_token(),
        "the device token in hexadecimal: 16 to 100 bytes (APNs: 32)",
    )
    .into()
}

pub fn bundle_id() -> Schema {
    string(
        patterns::bundle_id(),
        "the app's bundle id (reverse DNS, e.g. com.example.chat), at most 155 characters",
    )
    .max_length(Some(limits::BUNDLE_ID_MAX))
    .into()
}

pub fn attachment_name() -> Schema {
    string(
        patterns::attachment_name(),
        "the file's name: 1 to 255 characters, no '/', no control characters, line or \
         paragraph separators, or invisible format characters (as display names)",
    )
    .into()
}

pub fn attachment_type() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(limits::ATTACHMENT_TYPES.iter().copied()))
        .description(Some("the file's media type, one of these exactly"))
        .into()
}

/// A query parameter's schema type: `("query" = UserQuery, Query)`.
macro_rules! query_schema {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $description:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T(string($pattern, $description).into())
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

query_schema!(
    /// `GET /users?query=`.
    UserQuery,
    patterns::user_query(),
    "username prefix or part of a display name (ignoring case): 1 to 64 characters once \
     trimmed, no NUL"
);
query_schema!(
    /// `GET /channels/search?query=`.
    ChannelQuery,
    patterns::channel_query(),
    "part of the name (ignoring case), at most 80 characters once trimmed, no NUL; empty lists \
     the newest"
);

/// `limit` of a history page.
pub struct HistoryLimit;

impl utoipa::PartialSchema for HistoryLimit {
    fn schema() -> RefOr<Schema> {
        RefOr::T(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int32,
                )))
                .minimum(Some(1))
                .maximum(Some(limits::HISTORY_MAX_LIMIT))
                .default(Some(limits::HISTORY_DEFAULT_LIMIT.into()))
                .description(Some("messages per page, 1 to 100, default 50"))
                .into(),
        )
    }
}

impl utoipa::ToSchema for HistoryLimit {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("HistoryLimit")
    }
}
