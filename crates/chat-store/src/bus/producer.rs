//! The producer of the `messages` topic, for the durable path.

use chat_common::config::KafkaConfig;
use chat_types::bus::BusRecord;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

/// A producer and the topic it writes to. Idempotent with `acks=all`, so a delivery report means
/// every in-sync replica has the record and a retry inside librdkafka never duplicates or
/// reorders it. Cheap to clone (one librdkafka client underneath).
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    topic: String,
}

/// Resolves when Kafka has the record (`Ok`) or the send failed.
pub struct Delivery(DeliveryFuture);

impl Delivery {
    /// `(partition, offset)` once the record is durable.
    pub async fn durable(self) -> Result<(i32, i64), KafkaError> {
        match self.0.await {
            Ok(Ok(d)) => Ok(d),
            Ok(Err((e, _))) => Err(e),
            Err(_) => Err(KafkaError::Canceled),
        }
    }
}

impl Producer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let inner = super::client_config(cfg)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", cfg.linger_ms.to_string())
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "15000")
            .set("partitioner", "murmur2_random")
            .create()?;
        Ok(Producer {
            inner,
            topic: cfg.topic.clone(),
        })
    }

    /// Enqueue a record without waiting. Enqueue order is partition order: call this in the order
    /// records must keep, then await the [`Delivery`] wherever convenient.
    pub fn enqueue(&self, record: &BusRecord) -> Result<Delivery, KafkaError> {
        let payload = serde_json::to_vec(record).expect("records serialise");
        let key = record.channel_id().to_string();
        self.inner
            .send_result(FutureRecord::to(&self.topic).key(&key).payload(&payload))
            .map(Delivery)
            .map_err(|(e, _)| e)
    }

    /// Produce a record and wait until Kafka has it. Returns `(partition, offset)`.
    pub async fn send(&self, record: &BusRecord) -> Result<(i32, i64), KafkaError> {
        self.enqueue(record)?.durable().await
    }
}
