//! Turning a `resume` into positions: only channels the user is a member of, only ids stored in
//! that channel. Problems are reported per channel; the rest is served.

use super::error_frame;
use crate::Shared;
use crate::hub::{ConnHandle, Outbound};
use chat_types::ws::{close, error_code};
use chat_types::{ChannelId, MessageId, UserId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The `Resume` item for the writer (or `GoLive` after closing the connection, if the stores
/// could not answer).
pub(super) async fn lookup(
    shared: &Arc<Shared>,
    user: UserId,
    channels: BTreeMap<ChannelId, MessageId>,
    handle: &ConnHandle,
) -> Outbound {
    let ids: Vec<ChannelId> = channels.keys().copied().collect();
    let message_ids: Vec<MessageId> = channels.values().copied().collect();
    // A store that just came back (a restarted Cassandra) can fail the first requests on stale
    // connections: retry briefly. If it still fails, close with 1013 so the client resumes
    // again: going live without the catch-up would skip messages.
    let mut delays =
        chat_common::retry::backoff(Duration::from_millis(200), Duration::from_secs(1), Some(3));
    let (members, placements) = loop {
        let (members, placements) = tokio::join!(
            chat_store::pg::member_channels(&shared.db, user, &ids),
            shared.store.placements(&message_ids),
        );
        match (members, placements) {
            (Ok(m), Ok(p)) => {
                break (
                    m.into_iter().collect::<HashSet<_>>(),
                    p.into_iter().collect::<HashMap<_, _>>(),
                );
            }
            (m, p) => match delays.next() {
                Some(delay) => {
                    tracing::warn!(pg = ?m.err(), cql = ?p.err(), ?delay, "resume lookup failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    tracing::error!(pg = ?m.err(), cql = ?p.err(), "resume lookup failed; closing so the client resumes again");
                    handle.state.close(close::TRY_AGAIN_LATER);
                    return Outbound::GoLive;
                }
            },
        }
    };
    let mut positions = Vec::with_capacity(channels.len());
    for (channel, last_seen) in channels {
        if !members.contains(&channel) {
            handle
                .send(error_frame(
                    error_code::NOT_A_MEMBER,
                    format!("not a member of channel {channel}; it was not resumed"),
                    None,
                ))
                .await;
            continue;
        }
        match placements.get(&last_seen) {
            Some(p) if p.channel_id == channel => positions.push((channel, p.seq)),
            _ => {
                handle
                    .send(error_frame(
                        error_code::UNKNOWN_MESSAGE,
                        format!("message {last_seen} is not a stored message of channel {channel}; it was not resumed"),
                        None,
                    ))
                    .await;
            }
        }
    }
    Outbound::Resume {
        channels: positions,
    }
}
