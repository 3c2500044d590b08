//! Latency histograms (microseconds, HdrHistogram), their wire form between worker processes and
//! the coordinator, and the summaries written to the results.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded exactly: 5 minutes in microseconds (later values are clamped).
const HIGH_US: u64 = 300_000_000;

/// A latency histogram in microseconds with `sigfig` significant digits.
pub fn hist(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGH_US, sigfig).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.clamp(1, HIGH_US));
}

/// A histogram as sent between processes: its non-empty buckets.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistDump {
    pub sigfig: u8,
    pub buckets: Vec<(u64, u64)>,
}

impl HistDump {
    pub fn of(h: &Histogram<u64>) -> Self {
        HistDump {
            sigfig: h.sigfig(),
            buckets: h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }

    pub fn merge_into(&self, h: &mut Histogram<u64>) {
        for (v, n) in &self.buckets {
            h.saturating_record_n(*v, *n);
        }
    }

    #[cfg(test)]
    pub fn to_hist(&self) -> Histogram<u64> {
        let mut h = hist(if self.sigfig == 0 { 3 } else { self.sigfig });
        self.merge_into(&mut h);
        h
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Summary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// `p50 3.1 | p90 5.0 | p99 9.8 | p99.9 15.2 | max 22.0 ms (n=…)`
    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {} | p90 {} | p99 {} | p99.9 {} | max {} ms (n={})",
            fmt_ms(self.p50_ms),
            fmt_ms(self.p90_ms),
            fmt_ms(self.p99_ms),
            fmt_ms(self.p999_ms),
            fmt_ms(self.max_ms),
            self.count
        )
    }
}

pub fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Points of the percentile spectrum for plots: (x = -log10(1 - q), latency in ms).
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let top = ((h.len() as f64).log10()).clamp(1.0, 5.0);
    let mut x = 0.0;
    while x <= top + 1e-9 {
        let q = 1.0 - 10f64.powf(-x);
        out.push((x, h.value_at_quantile(q) as f64 / 1000.0));
        x += 0.02;
    }
    out.push((top, h.max() as f64 / 1000.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_round_trip() {
        let mut h = hist(3);
        for v in [5, 10, 1000, 250_000, 1_000_000_000] {
            record(&mut h, v);
        }
        let back = HistDump::of(&h).to_hist();
        assert_eq!(back.len(), 5);
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn summary_is_in_milliseconds() {
        let mut h = hist(3);
        for v in 1..=1000 {
            record(&mut h, v * 1000);
        }
        let s = Summary::of(&h);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
    }
}
