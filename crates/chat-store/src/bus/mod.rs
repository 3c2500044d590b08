//! Kafka: the `messages` topic. Records are JSON [`BusRecord`](chat_types::bus::BusRecord)s keyed
//! by channel id, so a channel's records share a partition and keep their order.
//!
//! # Layout
//! - [`producer`]: [`Producer`], the durable (idempotent, `acks=all`) producer of the topic.
//! - [`consumer`]: [`GroupConsumer`], a member of a consumer group that stores offsets only when
//!   told the records are handled.
//! - [`admin`]: the topic's creation.

pub mod admin;
pub mod consumer;
pub mod producer;

pub use admin::create_topic;
pub use consumer::{Batch, Consumed, GroupConsumer};
pub use producer::{Delivery, Producer};
pub use rdkafka::error::KafkaError;
