//! The one Redis connection a process shares between its Redis-backed types ([`crate::presence`],
//! [`crate::claims`], [`crate::epochs`], [`crate::revocations`], [`crate::ws_tickets`], [`crate::read_feed`]): a multiplexed connection that reconnects by itself.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

pub use redis::RedisError;

/// A cheap-to-clone handle on the shared connection.
#[derive(Clone)]
pub struct Redis(pub(crate) ConnectionManager);

impl Redis {
    pub async fn connect(cfg: &chat_common::config::RedisConfig) -> Result<Self, RedisError> {
        let client = redis::Client::open(cfg.url.as_str())?;
        // Short limits: every caller has a fallback (the heartbeat retries, a send is refused
        // with `unavailable` and resent), so waiting long on a dead Redis only adds latency.
        let mgr_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(2)
            .set_max_delay(500);
        Ok(Redis(
            ConnectionManager::new_with_config(client, mgr_cfg).await?,
        ))
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut c = self.0.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.0.clone()
    }
}

/// A subscription to one pub/sub channel on a connection of its own (a subscribed connection
/// can do nothing else), made within `timeout`. The stream ends when the connection does; the
/// caller subscribes again (and makes up for what it may have missed meanwhile).
pub(crate) async fn subscribe(
    url: &str,
    channel: &str,
    timeout: Duration,
) -> Result<redis::aio::PubSubStream, RedisError> {
    let connect = async {
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, RedisError>(pubsub.into_on_message())
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(r) => r,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("subscribing to {channel} timed out"),
        ))),
    }
}
