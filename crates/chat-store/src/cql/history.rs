//! History pages: messages only, as they are now (edited, deleted, reacted to, with a preview
//! of what they answer). Events share the channel's positions, so `limit` messages are not a
//! known range of positions: each page reads with `LIMIT` from the end of the range it needs,
//! one bucket after another (almost always one or two).

use super::{BUCKET_SIZE, CqlError, MessageStore, bucket_of, message_rows};
use chat_types::rest::{Reaction, ReplyPreview};
use chat_types::{ChannelId, Message, UserId, limits};
use std::collections::HashMap;

/// Which messages a page holds, by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The newest ones.
    Latest,
    /// The ones just before this position.
    Before(i64),
    /// The ones just after this position.
    After(i64),
    /// The ones between two positions (exclusive), from just after the first.
    Between(i64, i64),
}

impl MessageStore {
    /// A page of at most `limit` messages, oldest first, with reactions counted for `caller`.
    pub async fn history(
        &self,
        channel: ChannelId,
        page: Page,
        limit: usize,
        caller: UserId,
    ) -> Result<Vec<Message>, CqlError> {
        let mut messages = match page {
            Page::Latest => {
                let head = self.head(channel).await?;
                self.newest_between(channel, 0, head + 1, limit).await?
            }
            Page::Before(before) => self.newest_between(channel, 0, before, limit).await?,
            Page::After(after) => {
                let head = self.head(channel).await?;
                self.oldest_between(channel, after, head + 1, limit).await?
            }
            Page::Between(after, before) => {
                self.oldest_between(channel, after, before, limit).await?
            }
        };
        let (replies, reactions) = tokio::join!(
            self.reply_previews(channel, &messages),
            self.reactions_for(channel, &messages, caller),
        );
        apply_previews(&mut messages, &replies?);
        let mut reactions = reactions?;
        for m in &mut messages {
            if let Some(r) = m.seq.and_then(|s| reactions.remove(&s))
                && !m.deleted
            {
                m.reactions = r;
            }
        }
        Ok(messages)
    }

    /// Fill in the previews of the messages these answer (one read per bucket of targets).
    pub async fn with_reply_previews(
        &self,
        channel: ChannelId,
        messages: &mut [Message],
    ) -> Result<(), CqlError> {
        let previews = self.reply_previews(channel, messages).await?;
        apply_previews(messages, &previews);
        Ok(())
    }

    async fn reply_previews(
        &self,
        channel: ChannelId,
        messages: &[Message],
    ) -> Result<HashMap<i64, ReplyPreview>, CqlError> {
        let mut seqs: Vec<i64> = messages
            .iter()
            .filter_map(|m| m.reply_to.as_ref().map(|r| r.seq))
            .collect();
        if seqs.is_empty() {
            return Ok(HashMap::new());
        }
        seqs.sort_unstable();
        seqs.dedup();
        let targets = self.messages_at(channel, &seqs).await?;
        Ok(targets
            .into_iter()
            .map(|t| (t.seq.unwrap_or(0), preview_of(&t)))
            .collect())
    }

    /// Per message position: its reactions, one entry per emoji in the order they were first
    /// used, with whether `caller` is among them.
    async fn reactions_for(
        &self,
        channel: ChannelId,
        messages: &[Message],
        caller: UserId,
    ) -> Result<HashMap<i64, Vec<Reaction>>, CqlError> {
        let (Some(from), Some(to)) = (
            messages.first().and_then(|m| m.seq),
            messages.last().and_then(|m| m.seq),
        ) else {
            return Ok(HashMap::new());
        };
        let rows = self.reactions_in(channel, from, to).await?;
        // (seq, emoji) -> (first reacted, count, me)
        let mut agg: HashMap<(i64, String), (i64, u32, bool)> = HashMap::new();
        for r in rows {
            let at = r.at.map_or(i64::MAX, |t| t.timestamp_millis());
            let e = agg.entry((r.seq, r.emoji)).or_insert((at, 0, false));
            e.0 = e.0.min(at);
            e.1 += 1;
            e.2 |= r.user == caller;
        }
        let mut sorted: Vec<_> = agg.into_iter().collect();
        sorted.sort_by(|a, b| (a.0.0, a.1.0, &a.0.1).cmp(&(b.0.0, b.1.0, &b.0.1)));
        let mut out: HashMap<i64, Vec<Reaction>> = HashMap::new();
        for ((seq, emoji), (_, count, me)) in sorted {
            out.entry(seq)
                .or_default()
                .push(Reaction { emoji, count, me });
        }
        Ok(out)
    }

    /// The newest `limit` messages between positions `after` and `before` (both exclusive),
    /// oldest first: buckets read newest first, each with `LIMIT` what is still missing.
    async fn newest_between(
        &self,
        channel: ChannelId,
        after: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<Message>, CqlError> {
        let mut out = self.walk(channel, after, before, limit, true).await?;
        out.reverse();
        Ok(out)
    }

    /// The oldest `limit` messages between positions `after` and `before` (both exclusive).
    async fn oldest_between(
        &self,
        channel: ChannelId,
        after: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<Message>, CqlError> {
        self.walk(channel, after, before, limit, false).await
    }

    /// Up to `limit` messages strictly between `after` and `before`, from the `newest` end (in
    /// that order) or the oldest: one bucket after another until the page is full.
    async fn walk(
        &self,
        channel: ChannelId,
        after: i64,
        before: i64,
        limit: usize,
        newest: bool,
    ) -> Result<Vec<Message>, CqlError> {
        let mut out: Vec<Message> = Vec::with_capacity(limit);
        if before - after < 2 {
            return Ok(out);
        }
        let (first, last) = (bucket_of(after.max(0) + 1), bucket_of(before - 1));
        let statement = if newest {
            &self.select_older
        } else {
            &self.select_newer
        };
        for i in 0..=(last - first) {
            if out.len() >= limit {
                break;
            }
            let bucket = if newest { last - i } else { first + i };
            let missing = (limit - out.len()) as i32;
            let r = self
                .session
                .execute_unpaged(statement, (channel.0, bucket, after, before, missing))
                .await?;
            out.extend(message_rows(r)?);
        }
        Ok(out)
    }
}

fn preview_of(target: &Message) -> ReplyPreview {
    ReplyPreview {
        id: target.id,
        seq: target.seq.unwrap_or(0),
        sender_id: target.sender_id,
        preview: target
            .body
            .chars()
            .take(limits::PREVIEW_MAX_CHARS)
            .collect(),
        deleted: target.deleted,
    }
}

fn apply_previews(messages: &mut [Message], previews: &HashMap<i64, ReplyPreview>) {
    for m in messages {
        if let Some(r) = &mut m.reply_to
            && let Some(p) = previews.get(&r.seq)
        {
            **r = p.clone();
        }
    }
}

// A page never spans more buckets than this walk allows for; the constant documents it.
const _: () = assert!(BUCKET_SIZE > limits::HISTORY_MAX_LIMIT as i64);
