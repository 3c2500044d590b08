//! The services' ops ports (loopback, never proxied): their Prometheus `/metrics` pages, read
//! with `prometheus-parse`.

use prometheus_parse::{Scrape, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The services' ops ports.
pub const OPS_PORTS: &[(&str, u16)] = &[
    ("api", 9100),
    ("gateway-1", 9101),
    ("gateway-2", 9102),
    ("message-server-1", 9201),
    ("message-server-2", 9202),
];

/// The page of one ops port, parsed (`None` if it cannot be read).
async fn scrape(http: &reqwest::Client, port: u16) -> Option<Scrape> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    parse(&text)
}

fn parse(text: &str) -> Option<Scrape> {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).ok()
}

/// Every plain sample of a page, keyed `name` or `name{labels}`; summary quantiles and
/// histogram buckets are left out (their `_sum` and `_count` stay).
fn plain_samples(scrape: &Scrape) -> BTreeMap<String, f64> {
    scrape
        .samples
        .iter()
        .filter_map(|s| {
            let v = match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                Value::Histogram(_) | Value::Summary(_) => return None,
            };
            let key = if s.labels.is_empty() {
                s.metric.clone()
            } else {
                format!("{}{{{}}}", s.metric, s.labels)
            };
            Some((key, v))
        })
        .collect()
}

/// Every plain sample of an ops port's page (empty if it cannot be read).
pub async fn samples(http: &reqwest::Client, port: u16) -> BTreeMap<String, f64> {
    scrape(http, port)
        .await
        .map(|s| plain_samples(&s))
        .unwrap_or_default()
}

/// The first sample named `name` on an ops port's page (a gauge such as `chat_connections`).
pub async fn metric(http: &reqwest::Client, port: u16, name: &str) -> Option<f64> {
    first(&scrape(http, port).await?, name)
}

fn first(scrape: &Scrape, name: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// The samples of every service's ops page.
pub async fn scrape_all(http: &reqwest::Client) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for (name, port) in OPS_PORTS {
        out.insert(name.to_string(), samples(http, *port).await);
    }
    out
}

/// How much each service's counters (and histogram sums and counts) grew from `a` to `b`,
/// plus the message servers' mean batch size and time.
pub fn counter_deltas(
    a: &BTreeMap<String, BTreeMap<String, f64>>,
    b: &BTreeMap<String, BTreeMap<String, f64>>,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for (svc, after) in b {
        let before = a.get(svc);
        let mut d: BTreeMap<String, f64> = after
            .iter()
            .filter(|(k, _)| {
                let name = k.split_once('{').map_or(k.as_str(), |(n, _)| n);
                name.ends_with("_total") || name.ends_with("_sum") || name.ends_with("_count")
            })
            .map(|(k, v)| {
                (
                    k.clone(),
                    v - before.and_then(|m| m.get(k)).copied().unwrap_or(0.0),
                )
            })
            .filter(|(_, v)| *v != 0.0)
            .collect();
        let batches = d.get("chat_batch_seconds_count").copied().unwrap_or(0.0);
        if batches > 0.0 {
            let secs = d.get("chat_batch_seconds_sum").copied().unwrap_or(0.0);
            let records = d.get("chat_records_total").copied().unwrap_or(0.0);
            d.insert("derived_mean_batch_ms".into(), 1000.0 * secs / batches);
            d.insert("derived_mean_batch_records".into(), records / batches);
        }
        // Means of the batches' phases and of how long records waited for their batch.
        let means: Vec<(String, f64)> = d
            .iter()
            .filter_map(|(k, sum)| {
                let (name, labels) = k.split_once("_sum")?;
                let count = d.get(&format!("{name}_count{labels}")).copied()?;
                let derived = match name {
                    "chat_batch_phase_seconds" => format!("derived_mean_phase_ms{labels}"),
                    "chat_send_phase_seconds" => format!("derived_mean_send_ms{labels}"),
                    "chat_record_wait_seconds" => "derived_mean_record_wait_ms".to_string(),
                    _ => return None,
                };
                (count > 0.0).then(|| (derived, 1000.0 * sum / count))
            })
            .collect();
        d.extend(means);
        if !d.is_empty() {
            out.insert(svc.clone(), d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# TYPE chat_connections_total counter
chat_connections_total 9
# TYPE chat_connections gauge
chat_connections 12
# TYPE chat_pushes_total counter
chat_pushes_total{result=\"ok\"} 3
# TYPE chat_batch_seconds summary
chat_batch_seconds{quantile=\"0.5\"} 0.01
chat_batch_seconds_sum 0.5
chat_batch_seconds_count 20
";

    #[test]
    fn phase_and_wait_means_are_derived_per_label() {
        let page = |sum: f64, count: f64, wait: f64| {
            let text = format!(
                "# TYPE chat_batch_phase_seconds summary
chat_batch_phase_seconds_sum{{phase=\"store\"}} {sum}
chat_batch_phase_seconds_count{{phase=\"store\"}} {count}
# TYPE chat_record_wait_seconds summary
chat_record_wait_seconds_sum {wait}
chat_record_wait_seconds_count {count}
"
            );
            BTreeMap::from([("ms".to_string(), plain_samples(&parse(&text).unwrap()))])
        };
        let d = counter_deltas(&page(1.0, 10.0, 0.5), &page(1.5, 20.0, 0.7));
        let ms = &d["ms"];
        assert!((ms["derived_mean_phase_ms{phase=\"store\"}"] - 50.0).abs() < 1e-9);
        assert!((ms["derived_mean_record_wait_ms"] - 20.0).abs() < 1e-9);
    }

    #[test]
    fn metrics_are_found_by_exact_name() {
        let s = parse(PAGE).unwrap();
        assert_eq!(first(&s, "chat_connections"), Some(12.0));
        assert_eq!(first(&s, "chat_connections_total"), Some(9.0));
        assert_eq!(first(&s, "nope"), None);
    }

    #[test]
    fn plain_samples_keep_labels_sums_and_counts_but_not_quantiles() {
        let s = plain_samples(&parse(PAGE).unwrap());
        let keys: Vec<&str> = s.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "chat_batch_seconds_count",
                "chat_batch_seconds_sum",
                "chat_connections",
                "chat_connections_total",
                "chat_pushes_total{result=\"ok\"}",
            ]
        );
    }
}
