//! Wire types: everything that crosses a process boundary, in one dependency-light crate.
//!
//! Services, the end-to-end tests, the load generator and the client fixtures all use these
//! definitions, so a field renamed here is renamed everywhere at once.
//!
//! # Layout
//! - [`ids`]: `UserId`, `ChannelId`, `MessageId` (UUIDs, JSON strings).
//! - [`rest`]: request and response bodies of the public REST API (`/api/v1/...`).
//! - [`ws`]: WebSocket frames, `type`-tagged, and the close codes.
//! - [`events`]: channel events (edits, deletes, reactions), positioned like messages.
//! - [`attachments`]: files uploaded to a channel through presigned URLs (REST).
//! - [`notifications`]: push notification devices, levels and preferences (REST).
//! - [`error_code`]: every error code, REST and WebSocket, in one vocabulary.
//! - [`bus`]: records of the Kafka topic `messages`.
//! - [`internal`]: the body message servers push to a gateway's delivery endpoint.
//! - [`limits`]: the limits of the public contract.
//! - [`patterns`]: the same limits as regular expressions (the OpenAPI document's `pattern`s).
//! - `openapi` (feature `openapi`): JSON schemas of the constrained fields and query parameters.

pub mod attachments;
pub mod bus;
pub mod error_code;
pub mod events;
pub mod ids;
pub mod internal;
pub mod limits;
pub mod notifications;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod patterns;
pub mod rest;
pub mod ws;

pub use ids::{ChannelId, EventId, MessageId, UserId};
pub use rest::{Channel, ChannelKind, ErrorBody, Message, Session, User};
