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
pub use consumer::{Batch, Consumed, FetchPolicy, GroupConsumer};
pub use producer::{Delivery, Producer};
pub use rdkafka::error::KafkaError;

use chat_common::config::KafkaConfig;
use rdkafka::ClientConfig;

/// What every client of ours sets: the brokers, and time-outs that let it leave a broker cut
/// off the network. Such a broker answers nothing and refuses nothing, and librdkafka keeps a
/// partition on the broker that led it until a request there fails: with the default 60 s
/// request time-out a producer waited out its whole message time-out (15 s; the client then
/// resent) and a consumer fetched nothing from the partition until the cut healed, although
/// the controllers move a fenced broker's leaderships after its session (9 s). After 5 s
/// without an answer the connection is dropped (`socket.max.fails` 1), metadata refreshed and
/// the partition follows its new leader as soon as there is one; the producer's idempotence
/// keeps its retries exactly-once. Connecting gives up after 3 s for the same reason.
pub(crate) fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("socket.timeout.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "3000");
    c
}
