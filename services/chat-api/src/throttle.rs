//! Login and registration throttling: token buckets (`governor`) per client address and per
//! account, answered with 429 `rate_limited` and `Retry-After`.
//!
//! - Per address: logins and registrations. The address is the client's as the load balancer
//!   saw it ([`ClientIp`](crate::extract::ClientIp)); addresses in `rate_limits.exempt` (by
//!   default this machine's own 127.0.0.1 and ::1, where the tests and benchmarks run, as
//!   fail2ban's `ignoreip` does) are not limited per address.
//! - Per account: every login attempt for a username, whatever the address, so guessing one
//!   account's password from many addresses is as slow as from one.
//!
//! Buckets of keys not seen for a while are dropped by [`Throttle::forget_idle`], called
//! periodically, so the maps stay bounded by the recent traffic.

use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// A token bucket: `burst` requests at once, then one more every `every_ms`. `burst = 0`
/// switches the limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub burst: u32,
    pub every_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Comma-separated addresses or networks (`127.0.0.1`, `10.1.0.0/16`) that per-address
    /// limits skip.
    pub exempt: String,
    pub login_per_ip: QuotaConfig,
    pub login_per_account: QuotaConfig,
    pub register_per_ip: QuotaConfig,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            exempt: "127.0.0.1,::1".into(),
            // 30 at once, then 30 a minute: a household or an office behind one address.
            login_per_ip: QuotaConfig {
                burst: 30,
                every_ms: 2_000,
            },
            // 10 at once, then 3 a minute: nobody mistypes their password more often.
            login_per_account: QuotaConfig {
                burst: 10,
                every_ms: 20_000,
            },
            // 10 at once, then one a minute.
            register_per_ip: QuotaConfig {
                burst: 10,
                every_ms: 60_000,
            },
        }
    }
}

/// Parse a comma-separated list of addresses and networks.
pub fn parse_networks(field: &str, list: &str) -> anyhow::Result<Vec<IpNet>> {
    chat_common::config::split_list(list)
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| anyhow::anyhow!("{field}: '{s}' is not an address or a network"))
        })
        .collect()
}

struct Limit<K: std::hash::Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: std::hash::Hash + Eq + Clone> Limit<K> {
    fn new(field: &str, q: QuotaConfig) -> anyhow::Result<Self> {
        let Some(burst) = NonZeroU32::new(q.burst) else {
            return Ok(Limit { limiter: None });
        };
        let quota = Quota::with_period(Duration::from_millis(q.every_ms))
            .ok_or_else(|| anyhow::anyhow!("{field}.every_ms must be above 0"))?
            .allow_burst(burst);
        Ok(Limit {
            limiter: Some(RateLimiter::keyed(quota)),
        })
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        l.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    fn forget_idle(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

pub struct Throttle {
    exempt: Vec<IpNet>,
    login_ip: Limit<IpAddr>,
    login_account: Limit<String>,
    register_ip: Limit<IpAddr>,
}

impl Throttle {
    pub fn new(cfg: &RateLimitConfig) -> anyhow::Result<Self> {
        Ok(Throttle {
            exempt: parse_networks("api.rate_limits.exempt", &cfg.exempt)?,
            login_ip: Limit::new("api.rate_limits.login_per_ip", cfg.login_per_ip)?,
            login_account: Limit::new("api.rate_limits.login_per_account", cfg.login_per_account)?,
            register_ip: Limit::new("api.rate_limits.register_per_ip", cfg.register_per_ip)?,
        })
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.exempt.iter().any(|n| n.contains(&ip))
    }

    /// A login attempt from `ip` for `username`: refused while either bucket is empty.
    pub fn login(&self, ip: IpAddr, username: &str) -> Result<(), ApiError> {
        if !self.exempt(ip) {
            self.login_ip.check(&ip)?;
        }
        // Only names that can exist get a bucket: others cannot be guessed into, and would let
        // a client grow the map with arbitrary keys (the per-address limit covers them).
        if chat_types::limits::valid_username(username) {
            self.login_account.check(&username.to_ascii_lowercase())?;
        }
        Ok(())
    }

    /// A registration from `ip`.
    pub fn register(&self, ip: IpAddr) -> Result<(), ApiError> {
        if self.exempt(ip) {
            return Ok(());
        }
        self.register_ip.check(&ip)
    }

    /// Drop the buckets that are full again (their keys were not seen for a while).
    pub fn forget_idle(&self) {
        self.login_ip.forget_idle();
        self.login_account.forget_idle();
        self.register_ip.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(exempt: &str, q: QuotaConfig) -> Throttle {
        Throttle::new(&RateLimitConfig {
            exempt: exempt.into(),
            login_per_ip: q,
            login_per_account: QuotaConfig {
                burst: 3,
                every_ms: 60_000,
            },
            register_per_ip: q,
        })
        .unwrap()
    }

    fn retry_after(r: Result<(), ApiError>) -> u64 {
        match r {
            Err(ApiError::RateLimited { retry_after_secs }) => retry_after_secs,
            other => panic!("not rate limited: {other:?}"),
        }
    }

    #[test]
    fn an_address_gets_its_burst_then_waits() {
        let t = throttle(
            "127.0.0.1",
            QuotaConfig {
                burst: 2,
                every_ms: 30_000,
            },
        );
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        assert!(t.register(a).is_ok());
        assert!(t.register(a).is_ok());
        let wait = retry_after(t.register(a));
        assert!((29..=30).contains(&wait), "{wait}");
        assert!(
            t.register(b).is_ok(),
            "other addresses have their own bucket"
        );
    }

    #[test]
    fn exempt_addresses_are_not_limited_per_address() {
        let t = throttle(
            "127.0.0.1, 10.0.0.0/8",
            QuotaConfig {
                burst: 1,
                every_ms: 60_000,
            },
        );
        for ip in ["127.0.0.1", "10.2.3.4"] {
            for _ in 0..5 {
                assert!(t.register(ip.parse().unwrap()).is_ok(), "{ip}");
            }
        }
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(t.register(other).is_ok());
        assert!(t.register(other).is_err());
    }

    #[test]
    fn one_account_is_limited_across_addresses_and_cases() {
        let t = throttle(
            "",
            QuotaConfig {
                burst: 100,
                every_ms: 1,
            },
        );
        for (i, name) in ["alice", "Alice", "ALICE"].iter().enumerate() {
            let ip = IpAddr::from([198, 51, 100, i as u8]);
            assert!(t.login(ip, name).is_ok());
        }
        assert!(t.login("198.51.100.9".parse().unwrap(), "alice").is_err());
        assert!(t.login("198.51.100.9".parse().unwrap(), "bob").is_ok());
        // Names that cannot exist are only limited per address.
        for _ in 0..10 {
            assert!(
                t.login("198.51.100.9".parse().unwrap(), "no such name!")
                    .is_ok()
            );
        }
    }

    #[test]
    fn a_burst_of_zero_switches_a_limit_off() {
        let t = throttle(
            "",
            QuotaConfig {
                burst: 0,
                every_ms: 0,
            },
        );
        for _ in 0..100 {
            assert!(t.register("203.0.113.1".parse().unwrap()).is_ok());
        }
    }

    #[test]
    fn bad_networks_name_their_field() {
        let e = parse_networks("api.trusted_proxies", "10.0.0.0/8, nope").unwrap_err();
        assert!(e.to_string().contains("api.trusted_proxies"), "{e}");
        assert_eq!(parse_networks("x", " ").unwrap(), vec![]);
    }
}
