//! Sequence-gap tracking for feeds that number their messages (Bybit `u`, OKX `seqId`, Binance
//! `U`/`u`). Kraken has no sequence numbers; its checksum plays that role.

/// An exchange sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(pub u64);

/// What one observed sequence number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// The first number seen, or exactly the one expected.
    InOrder,
    /// At or below the last one seen: a duplicate or a replay; drop the message.
    Stale {
        /// The last number accepted.
        last: Seq,
    },
    /// Numbers were skipped: the book missed messages and must resync.
    Gap {
        /// The number that was due.
        expected: Seq,
        /// The number that arrived.
        got: Seq,
    },
}

/// Tracks one stream's sequence numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqTracker {
    last: Option<Seq>,
}

impl SeqTracker {
    /// A tracker that accepts any first number.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the last number (after a resync).
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Checks a number that should follow the last one by exactly one.
    pub fn observe(&mut self, seq: Seq) -> SeqCheck {
        match self.last {
            Some(last) if seq <= last => SeqCheck::Stale { last },
            Some(last) if seq.0 != last.0.wrapping_add(1) => {
                self.last = Some(seq);
                SeqCheck::Gap { expected: Seq(last.0.wrapping_add(1)), got: seq }
            }
            _ => {
                self.last = Some(seq);
                SeqCheck::InOrder
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_order_duplicates_and_gaps() {
        let mut t = SeqTracker::new();
        assert_eq!(t.observe(Seq(7)), SeqCheck::InOrder);
        assert_eq!(t.observe(Seq(8)), SeqCheck::InOrder);
        assert_eq!(t.observe(Seq(8)), SeqCheck::Stale { last: Seq(8) });
        assert_eq!(t.observe(Seq(3)), SeqCheck::Stale { last: Seq(8) });
        assert_eq!(t.observe(Seq(11)), SeqCheck::Gap { expected: Seq(9), got: Seq(11) });
        assert_eq!(t.observe(Seq(12)), SeqCheck::InOrder);
        t.reset();
        assert_eq!(t.observe(Seq(1)), SeqCheck::InOrder);
    }
}
