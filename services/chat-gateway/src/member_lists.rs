//! Big channels' member lists, kept from the delivery batches that carried them, so that later
//! batches can name a list by its digest instead of carrying it again
//! (`chat_types::internal::ListRef`). A 5,000-member channel's list is ~190 KB of JSON to
//! every gateway with every batch otherwise. Keyed by channel, one list each: a membership change
//! gives a new digest, and the message server sends the new list with it. Bounded by entries
//! and by ids held; an evicted or replaced list only costs a resend (the batch is refused with
//! 409 and comes back with the list).

use chat_types::internal::{ListDigest, ListRef};
use chat_types::{ChannelId, UserId};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// Channels whose lists are kept at most.
const MAX_LISTS: usize = 65_536;
/// Ids kept across all lists at most (16 bytes each: 16 MiB).
const MAX_IDS: usize = 1 << 20;

pub struct MemberLists {
    inner: Mutex<Inner>,
    max_ids: usize,
}

struct Inner {
    lists: LruCache<ChannelId, (ListDigest, Arc<Vec<UserId>>)>,
    ids: usize,
}

impl Default for MemberLists {
    fn default() -> Self {
        Self::with_limits(MAX_LISTS, MAX_IDS)
    }
}

impl MemberLists {
    fn with_limits(max_lists: usize, max_ids: usize) -> Self {
        MemberLists {
            inner: Mutex::new(Inner {
                lists: LruCache::new(NonZeroUsize::new(max_lists).expect("a positive bound")),
                ids: 0,
            }),
            max_ids,
        }
    }

    /// Keep `ids` as the list `list` names (replacing the channel's earlier one).
    pub fn keep(&self, list: ListRef, ids: Arc<Vec<UserId>>) {
        let mut inner = self.inner.lock().expect("member lists lock");
        if ids.len() > self.max_ids {
            return;
        }
        inner.ids += ids.len();
        if let Some((_, (_, old))) = inner.lists.push(list.channel_id, (list.digest, ids)) {
            inner.ids -= old.len();
        }
        while inner.ids > self.max_ids {
            match inner.lists.pop_lru() {
                Some((_, (_, old))) => inner.ids -= old.len(),
                None => break,
            }
        }
    }

    /// The list `list` names, if kept.
    pub fn get(&self, list: &ListRef) -> Option<Arc<Vec<UserId>>> {
        let mut inner = self.inner.lock().expect("member lists lock");
        match inner.lists.get(&list.channel_id) {
            Some((digest, ids)) if *digest == list.digest => Some(ids.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_of(channel: ChannelId, ids: &[UserId]) -> (ListRef, Arc<Vec<UserId>>) {
        let list = ListRef {
            channel_id: channel,
            digest: ListDigest::of(ids),
        };
        (list, Arc::new(ids.to_vec()))
    }

    #[test]
    fn a_kept_list_is_found_by_its_digest_only() {
        let lists = MemberLists::default();
        let c = ChannelId::new_v7();
        let (a, b) = (UserId::new_v7(), UserId::new_v7());
        let (before, ids) = list_of(c, &[a, b]);
        lists.keep(before, ids);
        assert_eq!(lists.get(&before).as_deref(), Some(&vec![a, b]));

        // A member left: the new list replaces the old, which is no longer found.
        let (after, ids) = list_of(c, &[a]);
        assert!(lists.get(&after).is_none(), "not kept yet");
        lists.keep(after, ids);
        assert_eq!(lists.get(&after).as_deref(), Some(&vec![a]));
        assert!(lists.get(&before).is_none(), "the old list is gone");
    }

    #[test]
    fn the_least_recently_used_lists_go_first_once_too_many_ids_are_kept() {
        let lists = MemberLists::with_limits(10, 5);
        let users: Vec<UserId> = (0..6).map(|_| UserId::new_v7()).collect();
        let (one, ids) = list_of(ChannelId::new_v7(), &users[..2]);
        lists.keep(one, ids);
        let (two, ids) = list_of(ChannelId::new_v7(), &users[2..4]);
        lists.keep(two, ids);
        assert!(lists.get(&one).is_some(), "now the most recently used");
        let (three, ids) = list_of(ChannelId::new_v7(), &users[4..6]);
        lists.keep(three, ids);
        assert!(lists.get(&one).is_some());
        assert!(lists.get(&two).is_none(), "evicted: 6 ids would exceed 5");
        assert!(lists.get(&three).is_some());

        let (huge, ids) = list_of(ChannelId::new_v7(), &users);
        lists.keep(huge, ids);
        assert!(
            lists.get(&huge).is_none(),
            "a list over the bound is not kept"
        );
        assert!(lists.get(&one).is_some(), "and evicts nothing");
    }
}
