//! Kafka: the `messages` topic. Records are JSON [`BusRecord`]s keyed by channel id, so a
//! channel's records share a partition and keep their order.

use chat_common::config::KafkaConfig;
use chat_types::bus::BusRecord;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::time::Duration;

pub use rdkafka;

/// A producer for the durable path: idempotent, `acks=all`, so a delivery report means every
/// in-sync replica has the record and a retry inside librdkafka never duplicates or reorders it.
pub fn producer(cfg: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Small lingering batches records of busy channels without hurting latency.
        .set("linger.ms", "1")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "15000")
        .set("partitioner", "murmur2_random")
        .create()
}

/// Enqueue a record. The returned future resolves when Kafka has it (or the send failed).
/// Enqueue order is partition order: call this in the order records must keep.
pub fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    record: &BusRecord,
) -> Result<DeliveryFuture, KafkaError> {
    let payload = serde_json::to_vec(record).expect("records serialise");
    let key = record.channel_id().to_string();
    producer
        .send_result(FutureRecord::to(topic).key(&key).payload(&payload))
        .map_err(|(e, _)| e)
}

/// Produce a record and wait until Kafka has it. Returns `(partition, offset)`.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    record: &BusRecord,
) -> Result<(i32, i64), KafkaError> {
    let fut = enqueue(producer, topic, record)?;
    match fut.await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// Create the topic if it does not exist (idempotent).
pub async fn create_topic(cfg: &KafkaConfig, replication: i32) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()?;
    let topic = NewTopic::new(
        &cfg.topic,
        cfg.partitions,
        TopicReplication::Fixed(replication),
    )
    .set("min.insync.replicas", "1");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics([&topic], &opts).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}
