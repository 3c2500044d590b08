//! What every operation of the OpenAPI document can answer besides its own responses, added
//! in one place so no operation (present or future) leaves one undocumented:
//! - 400 for any operation with parameters or a body (malformed values, NUL characters);
//! - 401 for any operation that needs a bearer token;
//! - 413 and 415 for any operation with a JSON body (too large, not `application/json`);
//! - 503 for every operation (a dependency unavailable, or the request timed out);
//! - `Retry-After` on every 429.
//!
//! An operation's own description of a status (its codes) is kept; only missing ones are added.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{Ref, Type};
use utoipa::openapi::{Content, OpenApi, RefOr, Response};

pub struct CommonResponses;

fn error(description: &str) -> Response {
    let mut r = Response::new(description);
    r.content.insert(
        "application/json".into(),
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    );
    r
}

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let path_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                let body = op.request_body.is_some();
                let params = path_params || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.into())
                        .or_insert_with(|| RefOr::T(error(description)));
                };
                if body || params {
                    add(
                        "400",
                        "a malformed parameter or body (malformed_json, invalid_field, \
                         nul_character, ...)",
                    );
                }
                if secured {
                    add(
                        "401",
                        "missing_token, invalid_token, token_expired: log in or refresh",
                    );
                }
                if body {
                    add(
                        "413",
                        "payload_too_large: request bodies are limited to 1 MiB",
                    );
                    add(
                        "415",
                        "unsupported_media_type: send the body as application/json",
                    );
                }
                add(
                    "503",
                    "unavailable (a dependency is down) or timeout (the request took too long): \
                     try again",
                );
                if let Some(RefOr::T(r)) = op.responses.responses.get_mut("429") {
                    r.headers.entry("Retry-After".into()).or_insert_with(|| {
                        HeaderBuilder::new()
                            .schema(
                                utoipa::openapi::ObjectBuilder::new()
                                    .schema_type(Type::Integer)
                                    .minimum(Some(1)),
                            )
                            .description(Some("seconds to wait before trying again"))
                            .build()
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_documents_the_statuses_it_shares() {
        let doc = serde_json::to_value(crate::routes::openapi()).unwrap();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let has = |status: &str| op["responses"].get(status).is_some();
                let what = format!("{method} {path}");
                assert!(has("503"), "{what}");
                if op.get("requestBody").is_some() {
                    for s in ["400", "413", "415"] {
                        assert!(has(s), "{what}: {s}");
                    }
                }
                if op.get("security").is_some() {
                    assert!(has("401"), "{what}");
                }
                if let Some(r) = op["responses"].get("429") {
                    assert!(r["headers"].get("Retry-After").is_some(), "{what}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 15, "{seen} operations");
        // The constrained fields carry their patterns; the self-DM is a documented 403.
        let name = &doc["components"]["schemas"]["CreateChannelRequest"]["properties"]["name"];
        assert_eq!(name["pattern"], chat_types::patterns::channel_name());
        assert!(doc["paths"]["/api/v1/dms"]["post"]["responses"]["403"].is_object());
    }
}
