//! Applying Kraken book messages (v1 and v2) to a [`Book`], with checksum verification.

use plumb_wire::kraken::{BookEntry, Kind, Levels};

use crate::book::{Book, Invalid, Side, State};
use crate::error::{Error, Result};
use crate::fixed;

/// What applying one symbol's entry of a book message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, and the exchange's checksum matched the book's.
    Verified(u32),
    /// Applied, and the checksums differ: the book is now [`Invalid::ChecksumMismatch`].
    Mismatch {
        /// The checksum the exchange sent.
        expected: u32,
        /// The checksum of the local book.
        computed: u32,
    },
    /// Applied, but the message carried no checksum (v1 snapshots): [`State::Unverified`].
    Unchecked,
    /// Not applied: the book is invalid (or has had no snapshot) and waits for a snapshot.
    Skipped,
}

impl Book {
    /// Applies one symbol's entry of a Kraken book message in wire order, truncates to the
    /// subscribed depth, then verifies the checksum when the entry has one.
    ///
    /// A snapshot replaces the book. An update to an invalid book, or to one with no snapshot yet,
    /// is not applied ([`Outcome::Skipped`]). A crossed book (best bid at or above best ask)
    /// becomes [`Invalid::Crossed`] even when its checksum matches.
    ///
    /// # Errors
    ///
    /// A level whose text is not a plain decimal or does not fit ([`Error::InvalidNumber`],
    /// [`Error::TooPrecise`], [`Error::Overflow`]). The book is then [`Invalid::Rejected`] until the
    /// next snapshot, since it may be half updated.
    pub fn apply_kraken(&mut self, kind: Kind, entry: &BookEntry<'_>) -> Result<Outcome> {
        match kind {
            Kind::Snapshot => self.clear(),
            Kind::Update => {
                if matches!(self.state(), State::AwaitingSnapshot | State::Invalid(_)) {
                    return Ok(Outcome::Skipped);
                }
            }
        }
        if let Err(e) = self.apply_side(Side::Ask, entry.asks()).and_then(|()| self.apply_side(Side::Bid, entry.bids()))
        {
            self.set_state(State::Invalid(Invalid::Rejected(e)));
            return Err(e);
        }
        self.truncate();
        Ok(self.verify(entry.checksum()))
    }

    fn apply_side(&mut self, side: Side, levels: Levels<'_>) -> Result<(), Error> {
        for l in levels {
            // The wire reader usually read each value exactly while scanning; the text is read
            // only when it did not (exponents, very long digit strings).
            let p = fixed::from_wire(l.price_value, l.price.as_bytes())?;
            let q = fixed::from_wire(l.qty_value, l.qty.as_bytes())?;
            self.set_fixed(side, p, q)?;
        }
        Ok(())
    }

    /// Compares the book with the exchange's checksum (if any) and sets the state to match.
    pub fn verify(&mut self, expected: Option<u32>) -> Outcome {
        let (state, outcome) = match expected {
            Some(expected) => {
                let computed = self.checksum();
                if computed == expected {
                    (State::Valid, Outcome::Verified(computed))
                } else {
                    let why = Invalid::ChecksumMismatch { expected, computed };
                    (State::Invalid(why), Outcome::Mismatch { expected, computed })
                }
            }
            None => (State::Unverified, Outcome::Unchecked),
        };
        let state = if self.is_crossed() && !matches!(state, State::Invalid(_)) {
            State::Invalid(Invalid::Crossed)
        } else {
            state
        };
        self.set_state(state);
        outcome
    }
}
