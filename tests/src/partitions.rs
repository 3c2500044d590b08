//! Which Kafka partition a channel's records go to, and which partitions a message server holds
//! (read from its ops port's Prometheus metrics): for tests of the consumer group's rebalances.
//! The stack's message servers listen for ops on 127.0.0.1:9201 and :9202
//! (deploy/native/topology.conf).

use chat_types::ChannelId;
use std::collections::BTreeMap;

/// Kafka's murmur2 (Java `Utils.murmur2`), which the producer's `murmur2_random` partitioner
/// applies to the record key (the channel id as text).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `messages` that `channel`'s records are produced to.
pub fn partition_of(channel: ChannelId, partitions: i32) -> i32 {
    (murmur2(channel.to_string().as_bytes()) & 0x7fff_ffff) % partitions
}

/// One consumer's view of its partitions, from its metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Holdings {
    /// Per partition: how often it was assigned to and revoked from this consumer.
    pub assigned: BTreeMap<i32, u64>,
    pub revoked: BTreeMap<i32, u64>,
}

impl Holdings {
    /// The partitions held now: assigned more often than revoked.
    pub fn held(&self) -> Vec<i32> {
        self.assigned
            .iter()
            .filter(|(p, n)| **n > self.revoked.get(p).copied().unwrap_or(0))
            .map(|(p, _)| *p)
            .collect()
    }

    pub fn revocations(&self) -> u64 {
        self.revoked.values().sum()
    }
}

/// The holdings of the consumer whose ops endpoint is `127.0.0.1:<port>`.
pub async fn holdings(port: u16) -> anyhow::Result<Holdings> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse(&text))
}

/// The `chat_kafka_partition_{assigned,revoked}_total{partition="N"} V` lines of a scrape.
fn parse(text: &str) -> Holdings {
    let mut h = Holdings::default();
    for line in text.lines() {
        let (map, rest) = if let Some(r) = line.strip_prefix("chat_kafka_partition_assigned_total{")
        {
            (&mut h.assigned, r)
        } else if let Some(r) = line.strip_prefix("chat_kafka_partition_revoked_total{") {
            (&mut h.revoked, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let partition = labels
            .split(',')
            .find_map(|l| l.strip_prefix("partition=\""))
            .and_then(|p| p.trim_end_matches('"').parse().ok());
        if let (Some(p), Ok(v)) = (partition, value.trim().parse::<f64>()) {
            map.insert(p, v as u64);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own test vectors (`UtilsTest.testMurmur2`).
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn metrics_are_read_per_partition() {
        let text = "# TYPE chat_kafka_partition_assigned_total counter\n\
            chat_kafka_partition_assigned_total{partition=\"3\"} 2\n\
            chat_kafka_partition_assigned_total{partition=\"11\"} 1\n\
            chat_kafka_partition_revoked_total{partition=\"3\"} 1\n\
            chat_kafka_partition_revoked_total{partition=\"11\"} 1\n\
            chat_kafka_partitions_held 1\n";
        let h = parse(text);
        assert_eq!(h.held(), vec![3]);
        assert_eq!(h.revocations(), 2);
    }
}
