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

/// Every plain sample of a page, keyed `name` or `name{labels}`, and every histogram bucket,
/// keyed `name_bucket{labels,le="bound"}`; summary quantiles are left out (their `_sum` and
/// `_count` stay).
fn plain_samples(scrape: &Scrape) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in &scrape.samples {
        let key = |name: &str, extra: Option<String>| {
            let labels = s.labels.to_string();
            let all: Vec<String> = [Some(labels).filter(|l| !l.is_empty()), extra]
                .into_iter()
                .flatten()
                .collect();
            if all.is_empty() {
                name.to_string()
            } else {
                format!("{name}{{{}}}", all.join(","))
            }
        };
        match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                out.insert(key(&s.metric, None), *v);
            }
            Value::Histogram(buckets) => {
                let name = format!("{}_bucket", s.metric);
                for b in buckets {
                    out.insert(key(&name, Some(format!("le=\"{}\"", b.less_than))), b.count);
                }
            }
            Value::Summary(_) => {}
        }
    }
    out
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
                name.ends_with("_total")
                    || name.ends_with("_sum")
                    || name.ends_with("_count")
                    || name.ends_with("_bucket")
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
                let derived = format!("derived_mean_{}", hop(name, labels)?);
                (count > 0.0).then(|| (derived, 1000.0 * sum / count))
            })
            .collect();
        d.extend(means);
        d.extend(hop_percentiles(&d));
        if !d.is_empty() {
            out.insert(svc.clone(), d);
        }
    }
    out
}

/// The hop a latency histogram times, as named in the derived keys (`derived_mean_…`,
/// `derived_p50_…`, `derived_p99_…`; milliseconds): the gateways' send phases, how long records
/// waited for their batch, the batches and their phases.
fn hop(name: &str, labels: &str) -> Option<String> {
    Some(match name {
        "chat_batch_phase_seconds" => format!("phase_ms{labels}"),
        "chat_send_phase_seconds" => format!("send_ms{labels}"),
        "chat_record_wait_seconds" => "record_wait_ms".to_string(),
        "chat_batch_seconds" => "batch_ms".to_string(),
        _ => return None,
    })
}

/// The p50 and p99 of each hop over the interval, from the growth of its histogram's buckets
/// (linear within a bucket, as Prometheus' `histogram_quantile` does; a quantile past the last
/// finite bound reads as that bound).
fn hop_percentiles(d: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    // (name, other labels) -> (upper bound, cumulative count), in the order of the bounds.
    let mut hists: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (k, count) in d {
        let Some((name, labels)) = k.split_once("_bucket{") else {
            continue;
        };
        let Some((rest, bound)) = labels.trim_end_matches('}').rsplit_once("le=\"") else {
            continue;
        };
        let Ok(bound) = bound.trim_end_matches('"').parse::<f64>() else {
            continue;
        };
        let rest = rest.trim_end_matches(',');
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!("{{{rest}}}")
        };
        hists
            .entry((name.to_string(), rest))
            .or_default()
            .push((bound, *count));
    }
    let mut out = Vec::new();
    for ((name, labels), mut buckets) in hists {
        let Some(hop) = hop(&name, &labels) else {
            continue;
        };
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (q, tag) in [(0.5, "p50"), (0.99, "p99")] {
            if let Some(v) = quantile(&buckets, q) {
                out.push((format!("derived_{tag}_{hop}"), 1000.0 * v));
            }
        }
    }
    out
}

/// The `q` quantile of cumulative bucket counts `(upper bound, count)` sorted by bound.
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= target {
            if bound.is_infinite() {
                return Some(lower);
            }
            let share = if count > below {
                (target - below) / (count - below)
            } else {
                1.0
            };
            return Some(lower + (bound - lower) * share);
        }
        (lower, below) = (bound, count);
    }
    Some(lower)
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
    fn each_steps_hop_percentiles_come_from_the_growth_of_the_buckets() {
        // Before: 100 fast pushes. During the step: 98 more under 5 ms and 2 between 50 and
        // 100 ms, so the step's p99 lies in the 50-100 ms bucket, whatever came before.
        let page = |fast: u32, slow: u32| {
            let total = fast + slow;
            let text = format!(
                "# TYPE chat_batch_phase_seconds histogram
chat_batch_phase_seconds_bucket{{phase=\"push\",le=\"0.005\"}} {fast}
chat_batch_phase_seconds_bucket{{phase=\"push\",le=\"0.05\"}} {fast}
chat_batch_phase_seconds_bucket{{phase=\"push\",le=\"0.1\"}} {total}
chat_batch_phase_seconds_bucket{{phase=\"push\",le=\"+Inf\"}} {total}
chat_batch_phase_seconds_sum{{phase=\"push\"}} 1
chat_batch_phase_seconds_count{{phase=\"push\"}} {total}
"
            );
            BTreeMap::from([("ms".to_string(), plain_samples(&parse(&text).unwrap()))])
        };
        let d = counter_deltas(&page(100, 0), &page(198, 2));
        let ms = &d["ms"];
        let p99 = ms["derived_p99_phase_ms{phase=\"push\"}"];
        assert!((p99 - 75.0).abs() < 1e-6, "{p99}");
        let p50 = ms["derived_p50_phase_ms{phase=\"push\"}"];
        assert!((p50 - 5.0 * 50.0 / 98.0).abs() < 1e-6, "{p50}");
    }

    #[test]
    fn a_quantile_past_the_last_finite_bound_reads_as_that_bound() {
        let b = [(0.01, 1.0), (0.1, 2.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(&b, 0.99), Some(0.1));
        assert_eq!(quantile(&[(0.01, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
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
