//! Redis: WebSocket tickets. A browser cannot set headers on a WebSocket, and an access token in
//! the URL ends up in logs and histories; instead it asks the API for a ticket (a random string,
//! valid for seconds) and opens `/ws?ticket=...`. `ws-ticket:{ticket}` holds what the ticket
//! stands for, with an expiry; a gateway takes it with `GETDEL`, so a ticket opens one socket,
//! on whichever gateway comes first, and never a second.

use crate::redis_conn::{Redis, RedisError};
use chat_types::UserId;
use redis::AsyncCommands;
use std::time::Duration;
use uuid::Uuid;

fn ticket_key(ticket: &str) -> String {
    format!("ws-ticket:{ticket}")
}

/// What a ticket grants: the socket of `user` in session `sid`, authorised until `expires`
/// (unix seconds), the end of the access token the ticket was asked for with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketGrant {
    pub user: UserId,
    pub sid: Option<Uuid>,
    pub expires: i64,
}

impl TicketGrant {
    fn encode(&self) -> String {
        let sid = self.sid.map_or_else(|| "-".to_owned(), |s| s.to_string());
        format!("{} {} {}", self.user, sid, self.expires)
    }

    fn decode(value: &str) -> Option<TicketGrant> {
        let mut parts = value.split(' ');
        let user = UserId(parts.next()?.parse().ok()?);
        let sid = match parts.next()? {
            "-" => None,
            s => Some(s.parse().ok()?),
        };
        let expires = parts.next()?.parse().ok()?;
        parts
            .next()
            .is_none()
            .then_some(TicketGrant { user, sid, expires })
    }
}

#[derive(Clone)]
pub struct WsTickets {
    redis: Redis,
}

impl WsTickets {
    pub fn new(redis: Redis) -> Self {
        WsTickets { redis }
    }

    /// Store `ticket` (made by the caller from enough randomness) for `ttl`.
    pub async fn put(
        &self,
        ticket: &str,
        grant: &TicketGrant,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        let mut c = self.redis.conn();
        c.set_ex(ticket_key(ticket), grant.encode(), ttl.as_secs().max(1))
            .await
    }

    /// Use `ticket`: what it grants, once. `None`: unknown, expired or already used.
    pub async fn take(&self, ticket: &str) -> Result<Option<TicketGrant>, RedisError> {
        let mut c = self.redis.conn();
        let value: Option<String> = c.get_del(ticket_key(ticket)).await?;
        Ok(value.as_deref().and_then(TicketGrant::decode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_round_trip_with_and_without_a_session() {
        for sid in [None, Some(Uuid::now_v7())] {
            let g = TicketGrant {
                user: UserId(Uuid::now_v7()),
                sid,
                expires: 1_700_000_000,
            };
            assert_eq!(TicketGrant::decode(&g.encode()), Some(g));
        }
        assert_eq!(TicketGrant::decode("nope"), None);
        assert_eq!(TicketGrant::decode(""), None);
    }
}
