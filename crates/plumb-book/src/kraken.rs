//! Applying Kraken book messages (v1 and v2) to a [`Book`], with checksum verification: the
//! [`KrakenCrc`] rule, and the checksum comparison it ends with.

use plumb_wire::kraken::{BookEntry, Kind};

use crate::book::{Book, Invalid, Proof, State};
use crate::error::Result;
use crate::rule::KrakenCrc;
pub use crate::rule::Verdict as Outcome;

impl Book {
    /// Applies one symbol's entry of a Kraken book message in wire order, truncates to the
    /// subscribed depth, then verifies the checksum when the entry has one: the [`KrakenCrc`] rule.
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
    ///
    /// [`Error::InvalidNumber`]: crate::Error::InvalidNumber
    /// [`Error::TooPrecise`]: crate::Error::TooPrecise
    /// [`Error::Overflow`]: crate::Error::Overflow
    pub fn apply_kraken(&mut self, kind: Kind, entry: &BookEntry<'_>) -> Result<Outcome> {
        let mut frame = entry.frame();
        frame.kind = kind;
        self.apply::<KrakenCrc>(&frame)
    }

    /// Compares the book with the exchange's checksum (if any) and sets the state to match.
    pub fn verify(&mut self, expected: Option<u32>) -> Outcome {
        match expected {
            Some(expected) => {
                let computed = self.checksum();
                if computed == expected {
                    self.set_valid(Proof::Checksum(computed));
                    Outcome::Verified(computed)
                } else {
                    self.set_state(State::Invalid(Invalid::ChecksumMismatch { expected, computed }));
                    Outcome::Mismatch { expected, computed }
                }
            }
            None => {
                self.set_state(if self.is_crossed() { State::Invalid(Invalid::Crossed) } else { State::Unverified });
                Outcome::Unchecked
            }
        }
    }
}
