//! What one connection knows of one channel: which positions (`seq`) arrived, and so how many
//! were duplicated, reordered or never came. Pure: no socket needed to test it.

use crate::proto::ChanCheck;
use std::collections::BTreeSet;

/// What one connection knows of one channel: which positions it got, in which order.
pub struct ChanState {
    pub idx: u32,
    pub id: String,
    base: Option<i64>,
    /// Bit k: position base + k arrived.
    bits: Vec<u64>,
    max: i64,
    below: BTreeSet<i64>,
    pub distinct_run: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

pub enum Seen {
    New,
    Late,
    Duplicate,
}

impl ChanState {
    pub fn new(idx: u32, id: String) -> ChanState {
        ChanState {
            idx,
            id,
            base: None,
            bits: Vec::new(),
            max: 0,
            below: BTreeSet::new(),
            distinct_run: 0,
            duplicated: 0,
            reordered: 0,
        }
    }

    pub fn observe(&mut self, seq: i64) -> Seen {
        let Some(base) = self.base else {
            self.base = Some(seq);
            self.bits = vec![1];
            self.max = seq;
            return Seen::New;
        };
        if seq < base {
            return if self.below.insert(seq) {
                self.reordered += 1;
                Seen::Late
            } else {
                self.duplicated += 1;
                Seen::Duplicate
            };
        }
        let off = (seq - base) as usize;
        let (word, bit) = (off / 64, off % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            self.duplicated += 1;
            return Seen::Duplicate;
        }
        self.bits[word] |= 1 << bit;
        if seq < self.max {
            self.reordered += 1;
            Seen::Late
        } else {
            self.max = seq;
            Seen::New
        }
    }

    pub fn holes(&self) -> u64 {
        let Some(base) = self.base else { return 0 };
        let span = (self.max - base + 1) as u64;
        let have: u64 = self.bits.iter().map(|w| w.count_ones() as u64).sum();
        span.saturating_sub(have)
    }

    pub fn check(&self, conn: u32) -> ChanCheck {
        ChanCheck {
            conn,
            channel: self.idx,
            base: self.base.unwrap_or(0),
            distinct_run: self.distinct_run,
            holes: self.holes(),
            duplicated: self.duplicated,
            reordered: self.reordered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_in_order_are_clean() {
        let mut c = ChanState::new(0, String::new());
        for s in 10..200 {
            assert!(matches!(c.observe(s), Seen::New));
        }
        assert_eq!((c.holes(), c.duplicated, c.reordered), (0, 0, 0));
    }

    #[test]
    fn duplicates_holes_and_reordering_are_counted() {
        let mut c = ChanState::new(0, String::new());
        for s in [5, 6, 8, 7, 7, 9, 12, 4, 4] {
            c.observe(s);
        }
        assert_eq!(c.duplicated, 2, "7 and 4 twice");
        assert_eq!(c.reordered, 2, "7 after 8, 4 after everything");
        assert_eq!(c.holes(), 2, "10 and 11 never came");
    }
}
