//! Command-line flags, each with an `APNS_STANDIN_*` environment fallback.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, Parser)]
#[command(
    name = "apns-standin",
    version,
    about = "A local stand-in for Apple's APNs provider API, with a control API for tests."
)]
pub struct Config {
    /// State folder: the test CA, the server's leaf certificate and the provider key
    /// (`AuthKey_STANDIN.p8`). Created on first start and reused, so a restart keeps trust.
    #[arg(long, env = "APNS_STANDIN_DIR")]
    pub dir: PathBuf,

    /// The APNs endpoint (HTTP/2 over TLS, ALPN `h2` only).
    #[arg(long, env = "APNS_STANDIN_LISTEN", default_value = "127.0.0.1:18443")]
    pub listen: SocketAddr,

    /// The control API (plain HTTP, JSON).
    #[arg(long, env = "APNS_STANDIN_CONTROL", default_value = "127.0.0.1:18444")]
    pub control: SocketAddr,

    /// Names and addresses the leaf certificate is valid for (comma list). A change re-issues
    /// the leaf from the same CA.
    #[arg(
        long,
        env = "APNS_STANDIN_HOSTNAMES",
        value_delimiter = ',',
        default_value = "127.0.0.1,localhost,apns-standin"
    )]
    pub hostnames: Vec<String>,

    /// Allowed `apns-topic` values (bundle ids, comma list).
    #[arg(
        long,
        env = "APNS_STANDIN_TOPICS",
        value_delimiter = ',',
        default_value = "com.example.chat"
    )]
    pub topics: Vec<String>,

    /// The provider key's id: the `kid` every provider token must carry.
    #[arg(long, env = "APNS_STANDIN_KEY_ID", default_value = "STANDIN001")]
    pub key_id: String,

    /// The team id: the `iss` every provider token must carry.
    #[arg(long, env = "APNS_STANDIN_TEAM_ID", default_value = "TEAMSTANDIN")]
    pub team_id: String,

    /// A provider token whose `iat` is older than this gets `403 ExpiredProviderToken`
    /// (Apple: one hour). Changeable through `PUT /settings`.
    #[arg(long, env = "APNS_STANDIN_TOKEN_MAX_AGE_SECS", default_value_t = 3600)]
    pub token_max_age_secs: u64,

    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of the APNs endpoint.
    #[arg(
        long,
        env = "APNS_STANDIN_MAX_CONCURRENT_STREAMS",
        default_value_t = 1000
    )]
    pub max_concurrent_streams: u32,

    /// Recorded requests kept per device token (the oldest are dropped first).
    #[arg(
        long,
        env = "APNS_STANDIN_MAX_RECORDED_PER_TOKEN",
        default_value_t = 10_000
    )]
    pub max_recorded_per_token: usize,

    /// Recorded requests kept in total, over all tokens (the oldest are dropped first).
    #[arg(long, env = "APNS_STANDIN_MAX_RECORDED", default_value_t = 200_000)]
    pub max_recorded: usize,
}

impl Config {
    /// The defaults, with `dir` as the state folder and both listeners on `127.0.0.1:0` (tests).
    pub fn for_tests(dir: PathBuf) -> Self {
        let mut cfg = Config::parse_from(
            ["apns-standin", "--dir"]
                .into_iter()
                .map(String::from)
                .chain([dir.display().to_string()]),
        );
        cfg.listen = "127.0.0.1:0".parse().expect("address");
        cfg.control = "127.0.0.1:0".parse().expect("address");
        cfg
    }

    /// Refuse settings that cannot work, naming the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.hostnames.iter().any(|h| !h.trim().is_empty()),
            "--hostnames: at least one name"
        );
        anyhow::ensure!(
            self.topics.iter().any(|t| !t.trim().is_empty()),
            "--topics: at least one bundle id"
        );
        anyhow::ensure!(!self.key_id.is_empty(), "--key-id: empty");
        anyhow::ensure!(!self.team_id.is_empty(), "--team-id: empty");
        anyhow::ensure!(
            self.token_max_age_secs > 0,
            "--token-max-age-secs: must be > 0"
        );
        anyhow::ensure!(
            self.max_concurrent_streams > 0,
            "--max-concurrent-streams: must be > 0"
        );
        anyhow::ensure!(
            self.max_recorded_per_token > 0 && self.max_recorded > 0,
            "--max-recorded-per-token / --max-recorded: must be > 0"
        );
        Ok(())
    }
}
