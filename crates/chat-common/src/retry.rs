//! The one retry policy: exponential backoff with full jitter (`backon`), bounded in count where
//! giving up is an option. Callers own the loop, so each can race the delay against shutdown.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Delays for up to `times` retries (`None`: never give up), from `min` doubling to `max`, each
/// with jitter so that many callers failing together do not retry together.
pub fn backoff(
    min: Duration,
    max: Duration,
    times: Option<usize>,
) -> impl Iterator<Item = Duration> {
    let b = ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter();
    match times {
        Some(n) => b.with_max_times(n),
        None => b.without_max_times(),
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_backoff_ends_and_stays_within_twice_the_maximum() {
        let delays: Vec<Duration> = backoff(
            Duration::from_millis(10),
            Duration::from_millis(40),
            Some(5),
        )
        .collect();
        assert_eq!(delays.len(), 5);
        // Jitter adds up to one more delay on top of the capped one.
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(80)));
    }

    #[test]
    fn an_unbounded_backoff_keeps_going() {
        assert_eq!(
            backoff(Duration::from_millis(1), Duration::from_millis(2), None)
                .take(100)
                .count(),
            100
        );
    }
}
