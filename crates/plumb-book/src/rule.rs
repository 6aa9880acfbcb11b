//! The validity rules: the one place that can make a book valid.
//!
//! Every exchange proves its books in its own way: Kraken sends a CRC32 of the top levels after
//! each message; Bybit numbers its deltas with an update id `u` that must step by one since the
//! last snapshot; OKX links each message to the one before (`prevSeqId`), Binance bridges id
//! ranges to a REST snapshot, Coinbase counts every message of a connection. A [`Rule`] applies one
//! symbol's [`Frame`] to a [`Book`] and returns one [`Verdict`], whatever the exchange, so that the
//! session and the replay handle "checksum mismatch" and "sequence gap" the same way.
//!
//! Rules are sealed: only the rules here can set [`State::Valid`]. Each keeps
//! what it needs between messages in the book itself (the last applied id, [`Book::sequence`]), so
//! that a rule is a type with no state of its own, picked at compile time.
//!
//! How the rules to come fit: OKX's links compare `prev` with the last `seqId` and accept any
//! `last` (a reset after maintenance may go down); Binance's bridge is a session phase that
//! buffers frames until a REST snapshot, then feeds them through a rule comparing `first`/`prev`
//! with the last `last`; Coinbase's counter is per connection, so the session checks it before any
//! book and invalidates every book of the connection on a gap, while the per-book rule only records
//! the id. None of them needs more than the last id per book.
//!
//! Example: Bybit's rule finds a lost delta.
//!
//! ```
//! use plumb_book::rule::{BybitSeq, Verdict};
//! use plumb_book::{Book, Depth, Invalid, State};
//! use plumb_wire::{Parser, bybit::Message};
//!
//! let mut parser = Parser::new();
//! let mut book = Book::for_rule::<BybitSeq>(Depth::new(50)?, None);
//! let mut feed = |book: &mut Book, text: &str| {
//!     let Ok(Message::Book(b)) = parser.parse_bybit(text.as_bytes()) else { panic!() };
//!     book.apply::<BybitSeq>(&b.frame())
//! };
//! let snap = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT",
//!     "b":[["100.0","1"]],"a":[["101.0","2"]],"u":7,"seq":1}}"#;
//! assert_eq!(feed(&mut book, snap)?, Verdict::InSequence(7));
//! let lost = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":2,"data":{"s":"BTCUSDT",
//!     "b":[],"a":[["101.0","0"]],"u":9,"seq":3}}"#;
//! assert_eq!(feed(&mut book, lost)?, Verdict::Gap { expected: 8, got: 9 });
//! assert_eq!(book.state(), State::Invalid(Invalid::SequenceGap { expected: 8, got: 9 }));
//! # Ok::<(), plumb_book::Error>(())
//! ```

use plumb_wire::{Frame, Kind, Levels, Sequence};

use crate::book::{Book, Invalid, Proof, Side, State};
use crate::error::{Error, Result};
use crate::fixed;

/// What applying one symbol's book message did, whatever the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Applied, and the exchange's checksum matched the book's.
    Verified(u32),
    /// Applied, and every update since the snapshot arrived in sequence; the id of this one.
    InSequence(u64),
    /// Applied a whole book (a snapshot-only channel with no id): exact, with nothing to check.
    Whole,
    /// Applied, and the checksums differ: the book is now [`Invalid::ChecksumMismatch`].
    Mismatch {
        /// The checksum the exchange sent.
        expected: u32,
        /// The checksum of the local book.
        computed: u32,
    },
    /// Not applied: ids were skipped, so messages were lost. The book is now
    /// [`Invalid::SequenceGap`].
    Gap {
        /// The id that was due.
        expected: u64,
        /// The id that arrived.
        got: u64,
    },
    /// Not applied: the update starts past the book's REST snapshot, which no update had reached
    /// back to yet. Either the snapshot stood behind the stream (Binance's cache lags) or updates
    /// were lost in between; the two look alike here, and the remedy for both is Binance's: fetch
    /// the snapshot again, the update kept for it. Counted apart from [`Verdict::Gap`], which is
    /// a break in a book already linked to the stream. The book is now
    /// [`Invalid::SequenceGap`].
    Behind {
        /// The snapshot's id.
        snapshot: u64,
        /// The first id of the update that arrived.
        first: u64,
    },
    /// Not applied: a duplicate or an out-of-date message (its id is at or below the last one).
    /// The book is unchanged and stays as valid as it was.
    Stale {
        /// The last applied id.
        last: u64,
        /// The id that arrived.
        got: u64,
    },
    /// Applied, but the message carried nothing to check (Kraken v1 snapshots): the book is
    /// [`State::Unverified`].
    Unchecked,
    /// Not applied: the book is invalid (or has had no snapshot) and waits for a snapshot.
    Skipped,
}

impl Verdict {
    /// A short snake-case name, for logs and JSON.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Verified(_) => "verified",
            Self::InSequence(_) => "in_sequence",
            Self::Whole => "whole",
            Self::Mismatch { .. } => "mismatch",
            Self::Gap { .. } => "gap",
            Self::Behind { .. } => "behind",
            Self::Stale { .. } => "stale",
            Self::Unchecked => "unchecked",
            Self::Skipped => "skipped",
        }
    }
}

/// Counts of verdicts, kept the same way by the live session and the offline replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Checksums that matched.
    pub checksums_verified: u64,
    /// Checksums that did not.
    pub checksum_mismatches: u64,
    /// Messages applied in an unbroken sequence (or whole books).
    pub sequence_verified: u64,
    /// Sequence gaps detected in books linked to the stream (a first update that misses a REST
    /// snapshot, [`Verdict::Behind`], is not counted here but among the unverified updates).
    pub sequence_gaps: u64,
    /// Stale or duplicate messages, ignored.
    pub stale: u64,
    /// Updates not verified: skipped while the book was invalid or had no snapshot (the one
    /// that revealed a gap, or a snapshot behind the stream, included), or applied with nothing
    /// to check them by.
    pub unverified_updates: u64,
}

impl Tally {
    /// Counts one verdict of a message of this kind.
    #[inline]
    pub fn count(&mut self, verdict: Verdict, kind: Kind) {
        match verdict {
            Verdict::Verified(_) => self.checksums_verified += 1,
            Verdict::Mismatch { .. } => self.checksum_mismatches += 1,
            Verdict::InSequence(_) | Verdict::Whole => self.sequence_verified += 1,
            Verdict::Gap { .. } => {
                self.sequence_gaps += 1;
                self.unverified_updates += 1;
            }
            Verdict::Stale { .. } => self.stale += 1,
            Verdict::Skipped | Verdict::Behind { .. } => self.unverified_updates += 1,
            Verdict::Unchecked if kind == Kind::Update => self.unverified_updates += 1,
            Verdict::Unchecked => {}
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::KrakenCrc {}
    impl Sealed for super::BybitSeq {}
    impl Sealed for super::OkxSeq {}
    impl Sealed for super::CoinbaseSeq {}
    impl Sealed for super::BinanceSeq {}
}

/// How an exchange's books are kept and proved. Sealed: the rules here are the only code that can
/// make a book valid.
pub trait Rule: sealed::Sealed + Copy + Default + std::fmt::Debug + Send + Sync + 'static {
    /// A short name for logs.
    const NAME: &'static str;
    /// Drop levels beyond the subscribed depth after each message (the exchange sends no delete
    /// for them), or hold the exchange to the depth (it deletes them itself).
    const TRUNCATE: bool;
    /// Whether the book's Kraken-form checksum is the proof, and so worth computing.
    const CHECKSUMMED: bool;

    /// Applies one symbol's message to its book and says what it proved.
    ///
    /// # Errors
    ///
    /// A level whose text is not a plain decimal or does not fit ([`Error::InvalidNumber`],
    /// [`Error::TooPrecise`], [`Error::Overflow`]). The book is then [`Invalid::Rejected`] until the
    /// next snapshot, since it may be half updated.
    fn apply(book: &mut Book, frame: &Frame<'_>) -> Result<Verdict>;

    /// Applies a snapshot fetched by REST, which stands at the id in its `sequence` rather than
    /// linking to the stream: until an update links to it, the rule bridges updates to that id
    /// its exchange's way ([`Book::is_bridging`]). Exchanges without a REST bootstrap treat it as
    /// any snapshot.
    ///
    /// # Errors
    ///
    /// As [`Rule::apply`].
    fn apply_fetched(book: &mut Book, frame: &Frame<'_>) -> Result<Verdict> {
        let verdict = Self::apply(book, frame)?;
        book.set_bridging(book.state().is_valid() && book.sequence().is_some());
        Ok(verdict)
    }

    /// Where the updates buffered since a subscription (their sequences, in arrival order) take
    /// over from a REST snapshot standing at `at`: `Some(k)` keeps updates `k..` (the ones before
    /// are in the snapshot already) and the first kept must bridge to it; `None` when no update
    /// bridges it (the snapshot is older than the buffer, or ahead of all of it, or a sequence
    /// reset makes the ids incomparable), and it is fetched again.
    fn bridge_start(
        at: u64,
        buffered: impl DoubleEndedIterator<Item = Option<Sequence>> + ExactSizeIterator + Clone,
    ) -> Option<usize> {
        let _ = (at, buffered);
        Some(0)
    }

    /// The checksum the exchange would send for `book` as it stands, computed the exchange's
    /// way; `None` for an exchange without one. A [`Proof::Checksum`] this rule settles equals it.
    #[must_use]
    fn checksum(book: &Book) -> Option<u32> {
        let _ = book;
        None
    }
}

/// Kraken (v1 and v2): a snapshot replaces the book, updates apply in wire order, the book is
/// truncated to the subscribed depth after the whole message, then the exchange's CRC32 of the top
/// 10 levels is compared. A crossed book is invalid even when its checksum matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KrakenCrc;

impl Rule for KrakenCrc {
    fn checksum(book: &Book) -> Option<u32> {
        Some(book.compute_checksum())
    }

    const NAME: &'static str = "kraken_crc32";
    const TRUNCATE: bool = true;
    const CHECKSUMMED: bool = true;

    #[inline]
    fn apply(book: &mut Book, frame: &Frame<'_>) -> Result<Verdict> {
        match frame.kind {
            Kind::Snapshot => book.clear(),
            Kind::Update => {
                if matches!(book.state(), State::AwaitingSnapshot | State::Invalid(_)) {
                    return Ok(Verdict::Skipped);
                }
            }
        }
        book.apply_levels(frame)?;
        book.truncate();
        Ok(book.verify(frame.checksum))
    }
}

/// Bybit v5: validity by the update id `u`. A snapshot resets the book (whatever its `u`); a delta
/// with `u == last + 1` is applied; `u > last + 1` is a gap (invalid until the next snapshot);
/// `u <= last` is a stale or duplicate delta, ignored; `u == 1` is a service restart, and the delta
/// overwrites the book like a snapshot. Levels are absolute sizes, `"0"` deletes, and deleting an
/// unknown price does nothing. Bybit deletes the levels that leave the subscribed depth itself, so
/// a book that holds more levels than the depth after a message is invalid. A snapshot without `u`
/// (the legacy spot v3 frame) is a whole book.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BybitSeq;

impl Rule for BybitSeq {
    const NAME: &'static str = "bybit_u";
    const TRUNCATE: bool = false;
    const CHECKSUMMED: bool = false;

    #[inline]
    fn apply(book: &mut Book, frame: &Frame<'_>) -> Result<Verdict> {
        let u = frame.sequence.map(|s| s.last);
        if frame.kind == Kind::Snapshot || u == Some(1) {
            book.clear();
            book.apply_levels(frame)?;
            return Ok(book.settle(u));
        }
        if matches!(book.state(), State::AwaitingSnapshot | State::Invalid(_)) {
            return Ok(Verdict::Skipped);
        }
        let (Some(u), Some(last)) = (u, book.sequence()) else {
            // A delta that cannot be linked to the book (no id, or a book from an unnumbered
            // snapshot): it proves nothing, and the book cannot stay valid after it.
            let (expected, got) = (book.sequence().map_or(0, |l| l + 1), u.unwrap_or(0));
            book.set_state(State::Invalid(Invalid::SequenceGap { expected, got }));
            return Ok(Verdict::Gap { expected, got });
        };
        if u <= last {
            return Ok(Verdict::Stale { last, got: u });
        }
        let expected = last + 1;
        if u != expected {
            book.set_state(State::Invalid(Invalid::SequenceGap { expected, got: u }));
            return Ok(Verdict::Gap { expected, got: u });
        }
        book.apply_levels(frame)?;
        Ok(book.settle(Some(u)))
    }
}

/// OKX v5: validity by links. A snapshot (or a whole-book push of `books5`/`bbo-tbt`) resets the
/// book; an update is applied when its `prevSeqId` equals the last `seqId`, whatever its own
/// `seqId` (a lower one is a legal reset after maintenance); an update with no levels whose
/// `prevSeqId` and `seqId` both equal the last `seqId` is a keepalive, ignored; any other
/// `prevSeqId` is a gap (`expected` the last `seqId`, `got` the `prevSeqId` that arrived).
///
/// OKX retired its checksum (the field is 0, read as none). A nonzero checksum, in recordings from
/// before, is compared with OKX's rule ([`Book::okx_checksum`]) and is the stronger proof: the
/// verdict is then [`Verdict::Verified`] or [`Verdict::Mismatch`]. Frames from before OKX numbered
/// its books have no sequence: the checksum alone proves them, and an update with neither leaves
/// the book [`State::Unverified`]. The book keeps at most the channel's depth (400 for `books`):
/// the levels beyond are dropped, which never touches the top 25 the checksum covers.
///
/// A REST snapshot ([`Rule::apply_fetched`], `GET /api/v5/market/books`) stands at its `seqId`
/// `S` and links to nothing. The updates buffered meanwhile that it holds already are dropped by
/// the session ([`Rule::bridge_start`]); the first one applied after it must link to it
/// (`prevSeqId == S`, which also takes a reset) or span it (`prevSeqId < S < seqId`), else it is
/// a gap. From then on the links rule as above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OkxSeq;

impl Rule for OkxSeq {
    fn checksum(book: &Book) -> Option<u32> {
        Some(book.okx_checksum())
    }

    /// OKX: after the latest buffered update whose `seqId` is the snapshot's, when there is one
    /// (exact, whatever resets came before). Otherwise, with no reset in the buffer, at the first
    /// update past the snapshot (`seqId > S`), which must span it (`prevSeqId <= S`): OKX's
    /// "discard `seqId <= S`, the first kept satisfies `prevSeqId <= S < seqId`". A snapshot ahead
    /// of every buffered update is not taken: nothing on the stream has reached it yet, so nothing
    /// shows it is not ahead of a reset the buffer has not seen either.
    fn bridge_start(
        at: u64,
        buffered: impl DoubleEndedIterator<Item = Option<Sequence>> + ExactSizeIterator + Clone,
    ) -> Option<usize> {
        let n = buffered.len();
        if let Some(k) = buffered.clone().rev().position(|s| s.is_some_and(|s| s.last == at)) {
            return Some(n - k);
        }
        let mut seqs = buffered.map(|s| s.unwrap_or(Sequence { first: 0, last: 0, prev: None }));
        if seqs.clone().any(|s| s.prev.is_some_and(|p| s.last < p)) {
            return None;
        }
        let k = seqs.clone().position(|s| s.last > at)?;
        seqs.nth(k).and_then(|s| s.prev).filter(|&p| p <= at).map(|_| k)
    }

    const NAME: &'static str = "okx_seq";
    const TRUNCATE: bool = true;
    const CHECKSUMMED: bool = false;

    #[inline]
    fn apply(book: &mut Book, frame: &Frame<'_>) -> Result<Verdict> {
        let seq = frame.sequence;
        if frame.kind == Kind::Snapshot {
            book.clear();
            book.apply_levels(frame)?;
            book.truncate();
            return Ok(book.settle_okx(frame.checksum, seq.map(|s| s.last), true));
        }
        if matches!(book.state(), State::AwaitingSnapshot | State::Invalid(_)) {
            return Ok(Verdict::Skipped);
        }
        if book.is_bridging()
            && let (Some(s), Some(at)) = (seq, book.sequence())
        {
            // OKX's REST bootstrap: the session hands over the buffered updates from
            // `Rule::bridge_start` on; the first must link to the snapshot (`prevSeqId == S`, which
            // also takes a reset) or span it (`prevSeqId < S < seqId`).
            let prev = s.prev.unwrap_or(u64::MAX);
            if prev == at && s.last == at && frame.bids.len() == 0 && frame.asks.len() == 0 {
                // A keepalive, as on a linked book: nothing to apply, and still bridging.
                return Ok(Verdict::Stale { last: at, got: s.last });
            }
            if !(prev == at || (prev < at && at < s.last)) {
                book.set_state(State::Invalid(Invalid::SequenceGap { expected: at, got: prev }));
                return Ok(Verdict::Gap { expected: at, got: prev });
            }
            book.set_bridging(false);
            book.apply_levels(frame)?;
            book.truncate();
            return Ok(book.settle_okx(frame.checksum, Some(s.last), false));
        }
        match (seq, book.sequence()) {
            (Some(s), Some(last)) => {
                let prev = s.prev.unwrap_or(u64::MAX);
                if prev != last {
                    book.set_state(State::Invalid(Invalid::SequenceGap { expected: last, got: prev }));
                    return Ok(Verdict::Gap { expected: last, got: prev });
                }
                if s.last == last && frame.bids.len() == 0 && frame.asks.len() == 0 {
                    return Ok(Verdict::Stale { last, got: s.last });
                }
            }
            // Unnumbered (recorded before OKX numbered its books): the checksum alone decides.
            (None, None) => {}
            // A numbered update on an unnumbered book, or the reverse: nothing links them.
            (Some(s), None) => {
                let got = s.prev.unwrap_or(u64::MAX);
                book.set_state(State::Invalid(Invalid::SequenceGap { expected: 0, got }));
                return Ok(Verdict::Gap { expected: 0, got });
            }
            (None, Some(last)) => {
                book.set_state(State::Invalid(Invalid::SequenceGap { expected: last, got: 0 }));
                return Ok(Verdict::Gap { expected: last, got: 0 });
            }
        }
        book.apply_levels(frame)?;
        book.truncate();
        Ok(book.settle_okx(frame.checksum, seq.map(|s| s.last), false))
    }
}

/// Binance diff depth, spot and USD-M futures: a REST snapshot standing at `lastUpdateId` (`L`),
/// bridged to the stream's events by their update ids. Binance sends no snapshot on the stream;
/// every book starts from one fetched by the session ([`Rule::apply_fetched`]).
///
/// Spot events carry `U` (first id) and `u` (last id). After the snapshot, events with
/// `u <= L` are in it already (stale); the first applied must satisfy `U <= L + 1 <= u` (an
/// exactly contiguous `U == L + 1` included); then each must start no later than the last `u`
/// plus one (`U <= last + 1`, normally equal; an event overlapping the last is applied, its
/// quantities being absolute), and `u <= last` is stale. USD-M events also carry `pu`, the last
/// `u` of the event before: after the snapshot, events with `u < L` are stale and the first
/// applied must satisfy `U <= L <= u` (it may end exactly at `L`) or link to it (`pu == L`: the
/// snapshot stood at the previous event's `u`, as in a quiet market); then each must have
/// `pu == last` (futures ids are not contiguous between events), and `u <= last` is stale
/// (a duplicate, not a gap). Anything else is a gap: that book alone is invalid and is bridged
/// again. Levels are absolute, `"0"` deletes, and deleting a price the book does not hold is
/// normal (levels beyond the snapshot's are unknown until they change). The book is cut to the
/// depth asked for after each event, so that what it holds beyond the snapshot's range stays
/// bounded; the levels published are the best few of a snapshot of hundreds or thousands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BinanceSeq;

impl Rule for BinanceSeq {
    const NAME: &'static str = "binance_u";
    const TRUNCATE: bool = true;
    const CHECKSUMMED: bool = false;

    #[inline]
    fn apply(book: &mut Book, frame: &Frame<'_>) -> Result<Verdict> {
        let seq = frame.sequence;
        if frame.kind == Kind::Snapshot {
            book.clear();
            book.apply_levels(frame)?;
            book.truncate();
            return Ok(book.settle(seq.map(|s| s.last)));
        }
        if matches!(book.state(), State::AwaitingSnapshot | State::Invalid(_)) {
            return Ok(Verdict::Skipped);
        }
        let (Some(s), Some(last)) = (seq, book.sequence()) else {
            let (expected, got) = (book.sequence().map_or(0, |l| l + 1), seq.map_or(0, |s| s.first));
            book.set_state(State::Invalid(Invalid::SequenceGap { expected, got }));
            return Ok(Verdict::Gap { expected, got });
        };
        let usdm = s.prev.is_some();
        let bridging = book.is_bridging();
        // Stale: in the snapshot already, or applied before (USD-M's bridging event may end
        // exactly at the snapshot's id).
        if s.last < last || (s.last == last && !(usdm && bridging)) {
            return Ok(Verdict::Stale { last, got: s.last });
        }
        let (links, expected, got) = match (usdm, bridging) {
            (false, _) => (s.first <= last + 1, last + 1, s.first),
            // USD-M's bridge: the event holds the snapshot's id, or links to it exactly (the
            // snapshot stood at an event's `u`, as a quiet market's does).
            (true, true) => (s.first <= last || s.prev == Some(last), last, s.first),
            (true, false) => (s.prev == Some(last), last, s.prev.unwrap_or(0)),
        };
        if !links {
            book.set_state(State::Invalid(Invalid::SequenceGap { expected, got }));
            // Before any update has reached the snapshot, one that misses it is the case of
            // Binance's procedure "if the snapshot's lastUpdateId is below the first event's U,
            // get a new snapshot": not a break in a linked book.
            return Ok(if bridging {
                Verdict::Behind { snapshot: last, first: s.first }
            } else {
                Verdict::Gap { expected, got }
            });
        }
        book.set_bridging(false);
        book.apply_levels(frame)?;
        book.truncate();
        Ok(book.settle(Some(s.last)))
    }

    /// Binance's snapshot reads [`State::Unverified`] until an event bridges it: a REST snapshot
    /// may stand behind the stream (Binance's cache lags), and only an event that reaches back to
    /// it shows it does not. The session replays the buffered events at once, so a book with
    /// events buffered is valid right away; in a quiet market it waits, not valid, for the next.
    fn apply_fetched(book: &mut Book, frame: &Frame<'_>) -> Result<Verdict> {
        Self::apply(book, frame)?;
        if book.state().is_valid() {
            book.set_state(State::Unverified);
            book.set_bridging(true);
        }
        Ok(Verdict::Unchecked)
    }

    /// Binance: drop the buffered events the snapshot holds already (spot `u <= L`, USD-M
    /// `u < L`); the first left must reach back to it (spot `U <= L + 1`, USD-M `U <= L` or
    /// `pu == L`), else
    /// the snapshot is older than the buffer and is fetched again. A snapshot ahead of every
    /// buffered event is taken: Binance's ids never go back, so the next event bridges it or
    /// shows a gap (in a quiet market the book waits for it, unverified).
    fn bridge_start(
        at: u64,
        buffered: impl DoubleEndedIterator<Item = Option<Sequence>> + ExactSizeIterator + Clone,
    ) -> Option<usize> {
        let n = buffered.len();
        let mut seqs = buffered.map(|s| s.unwrap_or(Sequence { first: 0, last: 0, prev: None }));
        let usdm = seqs.clone().any(|s| s.prev.is_some());
        let Some(k) = seqs.clone().position(|s| if usdm { s.last >= at } else { s.last > at }) else {
            return Some(n);
        };
        let s = seqs.nth(k).unwrap_or(Sequence { first: 0, last: 0, prev: None });
        // USD-M: the event holds the snapshot's id, or links to it exactly (`pu`), as `apply`
        // takes it.
        let reaches = if usdm { s.first <= at || s.prev == Some(at) } else { s.first <= at.saturating_add(1) };
        reaches.then_some(k)
    }
}

/// Coinbase Advanced Trade `level2`: validity by the connection's counter. Coinbase numbers
/// every message of a connection, on every channel, with one `sequence_num`; a message lost on the
/// connection may have been any product's, so the check that the counter steps by one is the
/// session's, before any book (and a skip there invalidates every book of the connection at
/// once, [`Book::invalidate`]). What is left per book: a snapshot replaces it, whatever its
/// number; an update of a book that is live is applied and proves the book up to its message's
/// number ([`Proof::Sequence`]); an update numbered below the book's last one is stale, ignored
/// (one message may hold several events of a product, so the same number applies again). Levels
/// are absolute, `"0"` deletes, deleting an unknown price does nothing. The book is the whole
/// book, never cut to a depth; a side past [`COINBASE_MAX_LEVELS`] is
/// [`Invalid::TooManyLevels`] (memory stays bounded whatever the server sends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CoinbaseSeq;

/// The most levels a side of a Coinbase book may hold (BTC-USD has tens of thousands).
pub const COINBASE_MAX_LEVELS: usize = 1 << 20;

impl Rule for CoinbaseSeq {
    const NAME: &'static str = "coinbase_seq";
    const TRUNCATE: bool = false;
    const CHECKSUMMED: bool = false;

    #[inline]
    fn apply(book: &mut Book, frame: &Frame<'_>) -> Result<Verdict> {
        let n = frame.sequence.map(|s| s.last);
        if frame.kind == Kind::Snapshot {
            book.clear();
            book.apply_levels(frame)?;
            return Ok(book.settle_counter(n));
        }
        if matches!(book.state(), State::AwaitingSnapshot | State::Invalid(_)) {
            return Ok(Verdict::Skipped);
        }
        let (Some(n), Some(last)) = (n, book.sequence()) else {
            // An unnumbered update (or a book from an unnumbered snapshot): nothing ties it to
            // the connection's counter.
            let (expected, got) = (book.sequence().map_or(0, |l| l + 1), n.unwrap_or(0));
            book.set_state(State::Invalid(Invalid::SequenceGap { expected, got }));
            return Ok(Verdict::Gap { expected, got });
        };
        if n < last {
            return Ok(Verdict::Stale { last, got: n });
        }
        book.apply_levels(frame)?;
        Ok(book.settle_counter(Some(n)))
    }
}

impl Book {
    /// After a Coinbase message numbered `n`: valid up to it, unless a side grew past
    /// [`COINBASE_MAX_LEVELS`] or the book is crossed; a snapshot without a number is a whole
    /// book.
    fn settle_counter(&mut self, n: Option<u64>) -> Verdict {
        self.set_sequence(n);
        if self.bids.v.len() > COINBASE_MAX_LEVELS || self.asks.v.len() > COINBASE_MAX_LEVELS {
            self.set_state(State::Invalid(Invalid::TooManyLevels));
        } else {
            self.set_valid(n.map_or(Proof::Snapshot, Proof::Sequence));
        }
        n.map_or(Verdict::Whole, Verdict::InSequence)
    }
}

impl Book {
    /// After an OKX message: the checksum decides when there is one, else the link (`Some(id)`),
    /// else a whole book is exact and an unnumbered update proves nothing.
    fn settle_okx(&mut self, checksum: Option<u32>, id: Option<u64>, whole: bool) -> Verdict {
        self.set_sequence(id);
        if let Some(expected) = checksum {
            let computed = self.okx_checksum();
            if computed == expected {
                self.set_valid(Proof::Checksum(computed));
                return Verdict::Verified(computed);
            }
            self.set_state(State::Invalid(Invalid::ChecksumMismatch { expected, computed }));
            return Verdict::Mismatch { expected, computed };
        }
        match id {
            Some(id) => {
                self.set_valid(Proof::Sequence(id));
                Verdict::InSequence(id)
            }
            None if whole => {
                self.set_valid(Proof::Snapshot);
                Verdict::Whole
            }
            None => {
                self.set_state(if self.is_crossed() { State::Invalid(Invalid::Crossed) } else { State::Unverified });
                Verdict::Unchecked
            }
        }
    }

    /// OKX's (legacy) checksum: the best 25 bids and 25 asks interleaved, `bid1:ask1:bid2:ask2…`,
    /// continuing with the longer side, each level `price:size` in its wire text, joined with
    /// `:`, then CRC32; OKX sends it as a signed 32-bit integer, and this is its bit pattern. No
    /// allocation: the text is built on the stack from each level's mantissa and wire decimals.
    #[must_use]
    pub fn okx_checksum(&self) -> u32 {
        // A level's text is at most two 20-digit mantissas with a point each, and two colons.
        const LEVEL: usize = 2 * 22 + 2;
        let mut buf = [0u8; 50 * LEVEL];
        let mut n = 0;
        let mut bids = self.levels_of(Side::Bid).best_first().take(25);
        let mut asks = self.levels_of(Side::Ask).best_first().take(25);
        loop {
            let (b, a) = (bids.next(), asks.next());
            if b.is_none() && a.is_none() {
                break;
            }
            for l in [b, a].into_iter().flatten() {
                let q = self.quote(l);
                if n > 0 {
                    buf[n] = b':';
                    n += 1;
                }
                n += write_decimal(&mut buf[n..], q.price.mantissa.unsigned_abs(), q.price.scale);
                buf[n] = b':';
                n += 1;
                n += write_decimal(&mut buf[n..], q.qty.mantissa.unsigned_abs(), q.qty.scale);
            }
        }
        crc32fast::hash(&buf[..n])
    }
}

/// Writes `m / 10^scale` as plain decimal text with exactly `scale` decimals (`847698, 2` ->
/// `8476.98`; `5, 3` -> `0.005`; `8477, 0` -> `8477`) and returns its length. `out` holds at
/// least 22 bytes.
fn write_decimal(out: &mut [u8], m: u64, scale: u8) -> usize {
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut v = m;
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // `digits` is least significant first; pad with zeros so that there is an integer digit.
    let scale = usize::from(scale);
    while len <= scale {
        digits[len] = b'0';
        len += 1;
    }
    let mut n = 0;
    for k in (0..len).rev() {
        if k + 1 == scale {
            out[n] = b'.';
            n += 1;
        }
        out[n] = digits[k];
        n += 1;
    }
    n
}

/// The most levels a side of a snapshot that names a price twice may have for it to be read
/// level by level (see `fill_side`).
const SEQUENTIAL_SNAPSHOT: usize = 4096;

impl Book {
    /// Applies one symbol's message through the rule of its exchange. See [`Rule::apply`].
    ///
    /// # Errors
    ///
    /// As [`Rule::apply`].
    #[inline]
    pub fn apply<R: Rule>(&mut self, frame: &Frame<'_>) -> Result<Verdict> {
        R::apply(self, frame)
    }

    /// Applies a snapshot fetched by REST through the rule of its exchange. See
    /// [`Rule::apply_fetched`].
    ///
    /// # Errors
    ///
    /// As [`Rule::apply`].
    pub fn apply_fetched<R: Rule>(&mut self, frame: &Frame<'_>) -> Result<Verdict> {
        R::apply_fetched(self, frame)
    }

    /// Applies the frame's levels, asks then bids, each side in wire order. On a bad level the book
    /// is [`Invalid::Rejected`], since it may be half updated.
    #[inline]
    fn apply_levels(&mut self, frame: &Frame<'_>) -> Result<()> {
        let r = if frame.kind == Kind::Snapshot && self.is_empty() {
            // A whole book into an empty one: appended, then sorted once, so that a snapshot in
            // any order costs O(n log n) (inserting shuffled levels one by one is quadratic).
            self.fill_side(Side::Ask, frame.asks.clone()).and_then(|()| self.fill_side(Side::Bid, frame.bids.clone()))
        } else {
            self.apply_side(Side::Ask, frame.asks.clone()).and_then(|()| self.apply_side(Side::Bid, frame.bids.clone()))
        };
        if let Err(e) = r {
            self.set_state(State::Invalid(Invalid::Rejected(e)));
        }
        r
    }

    /// [`Book::fill`] for a frame's levels: runs of levels spelled at the book's scales are
    /// pushed by [`Book::push_spelled`], the others one by one.
    fn fill_side(&mut self, side: Side, levels: Levels<'_>) -> Result<(), Error> {
        let mut numbers = levels.clone().numbers();
        let mut push_all = || -> Result<(), Error> {
            loop {
                self.push_spelled(side, &mut numbers);
                // It stopped at a level it does not take, or at the length to compact at.
                if !self.should_compact(side) {
                    let Some((p, q)) = numbers.next() else { return Ok(()) };
                    self.push_fixed(side, fixed::from_number(p)?, fixed::from_number(q)?)?;
                }
                if self.should_compact(side) {
                    self.compact(side)?;
                }
            }
        };
        let filled = push_all();
        self.fill_end(side, filled, levels.numbers().map(|(p, q)| Ok((fixed::from_number(p)?, fixed::from_number(q)?))))
    }

    /// Fills an empty side from a snapshot's levels: appended, cut down now and then on books
    /// that truncate, sorted once. A snapshot naming a price twice is read level by level, the
    /// later one winning, as the exchange's rule reads it, when it is small enough for that to
    /// be cheap; refused when it is not (no real snapshot does this; a hostile one must not cost
    /// O(n^2)).
    pub(crate) fn fill<I>(&mut self, side: Side, levels: I) -> Result<(), Error>
    where
        I: Iterator<Item = Result<(fixed::Fixed, fixed::Fixed), Error>> + ExactSizeIterator + Clone,
    {
        let filled = levels.clone().try_for_each(|l| {
            let (p, q) = l?;
            self.push_fixed(side, p, q)?;
            if self.should_compact(side) { self.compact(side) } else { Ok(()) }
        });
        self.fill_end(side, filled, levels)
    }

    /// The end of a fill, after its levels were pushed (`filled`): the side sorted, or read again
    /// from `levels` one by one when it names a price twice and is small enough.
    fn fill_end<I>(&mut self, side: Side, filled: Result<(), Error>, levels: I) -> Result<(), Error>
    where
        I: Iterator<Item = Result<(fixed::Fixed, fixed::Fixed), Error>> + ExactSizeIterator,
    {
        let n = levels.len();
        match filled.and_then(|()| self.compact(side)) {
            Err(Error::DuplicatePrice) if n <= SEQUENTIAL_SNAPSHOT => {
                self.clear_side(side);
                levels.into_iter().try_for_each(|l| {
                    let (p, q) = l?;
                    self.set_fixed(side, p, q)
                })
            }
            r => r,
        }
    }

    /// Fills an empty side from a snapshot given as text, the way a snapshot frame is read.
    /// For the fuzz check and tests.
    ///
    /// # Errors
    ///
    /// As [`Book::set`], and [`Error::DuplicatePrice`] for a huge side naming a price twice.
    #[doc(hidden)]
    pub fn fill_text(&mut self, side: Side, levels: &[(&str, &str)]) -> Result<(), Error> {
        self.fill(side, levels.iter().map(|(p, q)| Ok((fixed::parse(p.as_bytes())?, fixed::parse(q.as_bytes())?))))
    }

    #[inline]
    fn apply_side(&mut self, side: Side, levels: Levels<'_>) -> Result<(), Error> {
        for (p, q) in levels.numbers() {
            // The wire reader usually read each value exactly while scanning; the text is read
            // only when it did not (exponents, very long digit strings).
            let p = fixed::from_number(p)?;
            let q = fixed::from_number(q)?;
            self.set_fixed(side, p, q)?;
        }
        Ok(())
    }

    /// After a message applied in sequence (`Some(id)`) or a whole book (`None`): valid with that
    /// proof, unless the book holds more than its depth or is crossed.
    #[inline]
    fn settle(&mut self, id: Option<u64>) -> Verdict {
        self.set_sequence(id);
        if !self.truncates() && self.is_overfull() {
            self.set_state(State::Invalid(Invalid::TooManyLevels));
        } else {
            self.set_valid(id.map_or(Proof::Snapshot, Proof::Sequence));
        }
        id.map_or(Verdict::Whole, Verdict::InSequence)
    }
}
