//! The book: two sorted sides of exact fixed-point levels, the checksum, and the validity state.

use crate::error::{Error, Result};
use crate::fixed::{self, Fixed, MAX_SCALE, POW10};
use std::cmp::Ordering;

/// A subscribed book depth: the levels per side a book holds. Each exchange offers its own set
/// (Kraken 10, 25, 100, 500, 1000; Bybit 1, 50, 200, 1000); `TryFrom<u32>` takes Kraken's, and
/// [`Depth::new`] any count up to [`Depth::MAX`] for the exchange layer to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Depth(u16);

impl Depth {
    /// The depths Kraken accepts.
    pub const ALL: [Depth; 5] = [Depth(10), Depth(25), Depth(100), Depth(500), Depth(1000)];
    /// Depth 10, Kraken's default.
    pub const D10: Depth = Depth(10);
    /// The most levels per side any book holds (Binance's deepest REST snapshot is 5000).
    pub const MAX: u16 = 10_000;

    /// Any depth from 1 to [`Depth::MAX`]; which ones an exchange offers is the exchange
    /// layer's to check.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDepth`] for 0 or more than [`Depth::MAX`].
    pub fn new(n: u32) -> Result<Self> {
        match u16::try_from(n) {
            Ok(d) if (1..=Self::MAX).contains(&d) => Ok(Depth(d)),
            _ => Err(Error::InvalidDepth(n)),
        }
    }

    /// The number of levels per side.
    #[must_use]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl TryFrom<u32> for Depth {
    type Error = Error;

    fn try_from(n: u32) -> Result<Self> {
        Self::ALL.into_iter().find(|d| u32::from(d.0) == n).ok_or(Error::InvalidDepth(n))
    }
}

impl std::fmt::Display for Depth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A side of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Buy orders; best is the highest price.
    Bid,
    /// Sell orders; best is the lowest price.
    Ask,
}

impl Side {
    /// The mask that turns a price, by exclusive or, into a key that ascends from the side's worst
    /// price to its best: the price itself for bids, its bitwise complement for asks (`!p`, that
    /// is `-p - 1`, descends as `p` ascends, and cannot overflow).
    #[inline]
    const fn key_flip(self) -> i64 {
        match self {
            Side::Bid => 0,
            Side::Ask => -1,
        }
    }
}

/// The decimal places an instrument quotes prices and quantities in (Kraken v2 `instrument`
/// channel: `price_precision`, `qty_precision`). The v2 checksum pads every number to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Precision {
    /// Decimal places of prices.
    pub price: u8,
    /// Decimal places of quantities.
    pub qty: u8,
}

/// Why a book is not valid.
///
/// Not `#[non_exhaustive]`, on purpose: code that acts on invalid books (the session's resync
/// reasons) matches every variant, so that a new way of being invalid cannot go unhandled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The exchange's checksum did not match the book's. Both values are kept as evidence.
    ChecksumMismatch {
        /// The checksum the exchange sent.
        expected: u32,
        /// The checksum of the local book.
        computed: u32,
    },
    /// The best bid is at or above the best ask.
    Crossed,
    /// A level could not be applied (bad number, overflow); the book may be partly updated.
    Rejected(Error),
    /// The instrument's precision changed; the levels' text forms are stale.
    PrecisionChanged,
    /// An update skipped sequence numbers: messages were lost. Both ids are kept as evidence.
    SequenceGap {
        /// The id that was due.
        expected: u64,
        /// The id that arrived.
        got: u64,
    },
    /// A side holds more levels than the subscribed depth after a message, on an exchange that
    /// deletes levels itself: the book no longer matches the exchange's view (and memory stays
    /// bounded).
    TooManyLevels,
}

/// What a [`State::Valid`] rests on, published beside the status so that a reader can require
/// one kind of proof (a strategy may trade only on checksummed books, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Proof {
    /// Nothing: the book is not valid.
    #[default]
    None,
    /// The exchange's checksum of the book matched this value (Kraken's CRC32).
    Checksum(u32),
    /// Every update since a snapshot arrived in sequence; this is the last applied id.
    Sequence(u64),
    /// The last message was a whole book (a snapshot-only channel), with nothing to check it by.
    Snapshot,
}

/// Whether what the book shows can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No snapshot yet: the book is empty and says nothing about the market.
    AwaitingSnapshot,
    /// A snapshot (or update) without a checksum was applied: plausibly right, not proven.
    Unverified,
    /// Proved by the exchange's rule ([`Book::proof`] says how): the last checksum matched, or
    /// every update since a snapshot arrived in sequence.
    Valid,
    /// Known wrong until the next snapshot. Updates are not applied meanwhile.
    Invalid(Invalid),
}

impl State {
    /// `true` only for [`State::Valid`].
    #[must_use]
    pub fn is_valid(self) -> bool {
        matches!(self, Self::Valid)
    }
}

/// An exact decimal value: `mantissa / 10^scale`. The scale is the number of decimals the
/// checksum text form has (v1: as on the wire; v2: padded to the instrument precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal64 {
    /// The integer mantissa.
    pub mantissa: i64,
    /// Decimal places.
    pub scale: u8,
}

impl Decimal64 {
    /// The value as a `rust_decimal::Decimal` (exact: the scale is at most 18).
    #[must_use]
    pub fn to_decimal(self) -> rust_decimal::Decimal {
        rust_decimal::Decimal::new(self.mantissa, u32::from(self.scale))
    }
}

impl Decimal64 {
    /// The same value at `scale` decimals (`None` when it would lose digits or not fit).
    #[must_use]
    pub fn rescaled(self, scale: u8) -> Option<Self> {
        if scale >= self.scale {
            let f = i64::try_from(*POW10.get(usize::from(scale - self.scale))?).ok()?;
            Some(Self { mantissa: self.mantissa.checked_mul(f)?, scale })
        } else {
            let f = i64::try_from(*POW10.get(usize::from(self.scale - scale))?).ok()?;
            (self.mantissa % f == 0).then(|| Self { mantissa: self.mantissa / f, scale })
        }
    }

    /// `self - other`, exact, at the larger of the two scales (`None` on overflow). The spread
    /// of a book is `ask.price.checked_sub(bid.price)`.
    #[must_use]
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescaled(scale)?, other.rescaled(scale)?);
        Some(Self { mantissa: a.mantissa.checked_sub(b.mantissa)?, scale })
    }

    /// `self + other`, exact, at the larger of the two scales (`None` on overflow).
    #[must_use]
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescaled(scale)?, other.rescaled(scale)?);
        Some(Self { mantissa: a.mantissa.checked_add(b.mantissa)?, scale })
    }
}

impl PartialOrd for Decimal64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal64 {
    /// By value, whatever the scales (`1.50` equals `1.5` in value, and then the larger scale
    /// sorts last, so that the order agrees with `Eq`).
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (i128::from(self.mantissa), i128::from(other.mantissa));
        let scale = self.scale.max(other.scale);
        let up = |m: i128, s: u8| m * 10i128.pow(u32::from(scale - s));
        up(a, self.scale).cmp(&up(b, other.scale)).then(self.scale.cmp(&other.scale))
    }
}

impl std::fmt::Display for Decimal64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.mantissa < 0 {
            // A difference (a crossed book's spread) can be negative; prices never are.
            f.write_str("-")?;
        }
        fixed::write_text(f, self.mantissa.unsigned_abs(), self.scale)
    }
}

/// One level of the book, as a reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// The price.
    pub price: Decimal64,
    /// The quantity at that price.
    pub qty: Decimal64,
}

/// The levels of each side Kraken's checksum covers.
pub(crate) const CHECKSUM_LEVELS: usize = 10;

/// Room for the checksum digits of one level: up to 19 digits of price and 19 of quantity, and
/// the eight-byte writes of [`write_digits`] past them.
pub(crate) const DIGITS: usize = 46;

/// Where a book's checksum text is gathered, the offset of the next level being kept below
/// `TEXT_MASK + 1` by a mask: the text of both sides is at most `2 * CHECKSUM_LEVELS * 38` = 760
/// bytes, so the mask never changes an offset; it lets the compiler see that every copy fits the
/// buffer, where a checked slice cost four instructions a level.
const TEXT_MASK: usize = 1023;
/// The buffer: room past the largest masked offset for a full slot (`DIGITS`) and for any text
/// length a slot can name (a `u8`), so that no offset or text end can fall outside it.
const TEXT_BUF: usize = TEXT_MASK + 1 + u8::MAX as usize;
const _: () = assert!(u8::MAX as usize >= DIGITS);
/// Where the bids' checksum text is gathered in that buffer, after room for the asks' (at most
/// `CHECKSUM_LEVELS * 38` bytes and the `DIGITS` a slot copy may write past them), so that
/// gathering the asks leaves the bids' text in place.
const BIDS_AT: usize = 512;
const _: () = assert!(CHECKSUM_LEVELS * 38 + DIGITS <= BIDS_AT);
const _: () = assert!(BIDS_AT + CHECKSUM_LEVELS * 38 + DIGITS <= TEXT_MASK + 1);

/// One level as stored: 24 bytes. `price` and `qty` are mantissas at the book's scales (so that
/// comparisons are single integer compares); `pfrac` and `qfrac` are the decimals each value's
/// text has. The checksum text lives apart, in [`Levels::top`], for the best few levels only: a
/// deep book's search and inserts touch a third of the memory a level with its text took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    pub(crate) price: i64,
    pub(crate) qty: i64,
    pub(crate) pfrac: u8,
    pub(crate) qfrac: u8,
}

/// The checksum text of one level: its price digits then its quantity digits (`plen` of them
/// the price's), with the `.` and leading zeros removed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text {
    digits: [u8; DIGITS],
    len: u8,
    plen: u8,
}

impl Text {
    const EMPTY: Self = Self { digits: [0; DIGITS], len: 0, plen: 0 };

    /// Rewrites the text: the price digits when given (else they stay), then the quantity
    /// digits after them.
    #[inline]
    fn write(&mut self, price_text: Option<u64>, qty_text: u64) {
        if let Some(pt) = price_text {
            self.plen = write_digits(&mut self.digits, 0, pt);
        }
        self.len = self.plen + write_digits(&mut self.digits, usize::from(self.plen), qty_text);
    }
}

/// A side's levels, worst to best, in one contiguous run at the end of a vector: `buf[lo..]`.
/// Inserts and removals near the best levels (most of them) move only the few levels above;
/// dropping the worst level (Kraken's truncation, after most inserts into a full book) moves
/// nothing but `lo`. The dead levels before `lo` are dropped in one move when an insert finds
/// the vector full, so that a book given [`room`] for its depth moves its levels once every
/// quarter depth of inserts, never allocating. Unlike a ring buffer, the levels are always one
/// slice: a search probes it directly and an insert is one `memmove`, with no wrap to compute.
#[derive(Default)]
pub(crate) struct Ladder {
    buf: Vec<Level>,
    /// Where the live levels start; at most `buf.len()`.
    lo: usize,
}

/// The capacity a side of a book at `depth` is given: the depth, a quarter more for dead levels
/// before the live ones (see [`Ladder`]), and room for one message past the depth before it is
/// truncated.
fn room(depth: usize) -> usize {
    depth + depth / 4 + 16
}

impl Ladder {
    /// The live levels, worst to best.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Level] {
        self.buf.get(self.lo..).unwrap_or_default()
    }

    #[inline]
    fn as_mut_slice(&mut self) -> &mut [Level] {
        self.buf.get_mut(self.lo..).unwrap_or_default()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.lo
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best level.
    #[inline]
    pub(crate) fn back(&self) -> Option<&Level> {
        self.as_slice().last()
    }

    #[inline]
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Level> {
        self.as_slice().iter()
    }

    #[inline]
    fn iter_mut(&mut self) -> std::slice::IterMut<'_, Level> {
        self.as_mut_slice().iter_mut()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.lo = 0;
    }

    /// Moves the live levels to the start of the vector, dropping the dead ones before them.
    fn recentre(&mut self) {
        if self.lo > 0 {
            self.buf.drain(..self.lo);
            self.lo = 0;
        }
    }

    /// Inserts `l` at live index `i` (at most `len`). In the worse half of the side, with a dead
    /// level before it, the levels below `i` move down into that one instead (a deep change
    /// moves what a ring buffer would move, not the whole side).
    #[inline]
    fn insert(&mut self, i: usize, l: Level) {
        if self.lo > 0 && i < self.len() / 2 {
            let lo = self.lo;
            self.buf.copy_within(lo..lo + i, lo - 1);
            self.lo = lo - 1;
            self.buf[lo - 1 + i] = l;
            return;
        }
        if self.buf.len() == self.buf.capacity() {
            self.recentre();
        }
        self.buf.insert(self.lo + i, l);
    }

    /// Removes the level at live index `i` (below `len`): in the worse half of the side, by
    /// moving the levels below it up one, which leaves a dead level at the front.
    #[inline]
    fn remove(&mut self, i: usize) {
        if i < self.len() / 2 {
            let lo = self.lo;
            self.buf.copy_within(lo..lo + i, lo + 1);
            self.lo = lo + 1;
            return;
        }
        self.buf.remove(self.lo + i);
    }

    #[inline]
    fn push_back(&mut self, l: Level) {
        if self.buf.len() == self.buf.capacity() {
            self.recentre();
        }
        self.buf.push(l);
    }

    /// Drops the `n` worst levels (all of them when `n >= len`).
    #[inline]
    fn drop_worst(&mut self, n: usize) {
        self.lo += n.min(self.len());
        if self.lo == self.buf.len() {
            self.clear();
        }
    }

    fn retain(&mut self, keep: impl FnMut(&Level) -> bool) {
        self.recentre();
        self.buf.retain(keep);
    }

    fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn reserve(&mut self, additional: usize) {
        self.recentre();
        self.buf.reserve(additional);
    }

    fn shrink_to(&mut self, min: usize) {
        self.recentre();
        self.buf.shrink_to(min);
    }
}

impl std::ops::Index<usize> for Ladder {
    type Output = Level;

    #[inline]
    fn index(&self, i: usize) -> &Level {
        &self.as_slice()[i]
    }
}

impl std::ops::IndexMut<usize> for Ladder {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Level {
        &mut self.as_mut_slice()[i]
    }
}

/// A copy holds the live levels only.
impl Clone for Ladder {
    fn clone(&self) -> Self {
        Self { buf: self.as_slice().to_vec(), lo: 0 }
    }
}

impl std::fmt::Debug for Ladder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// One side, sorted so that the best level is at the back (inserts near the top move little, and
/// truncating the worst levels drops them from the front).
#[derive(Debug, Clone)]
pub(crate) struct Levels {
    pub(crate) side: Side,
    pub(crate) v: Ladder,
    /// In a checksummed book, the checksum text of the best `min(len, CHECKSUM_LEVELS)` levels,
    /// best first (slots past the side's length hold nothing meaningful): every change among
    /// them rewrites or shifts these, so that computing the checksum never formats a number.
    /// Unused in other books (their checksum renders each level from its values).
    top: [Text; CHECKSUM_LEVELS],
}

impl Levels {
    fn new(side: Side) -> Self {
        Self { side, v: Ladder::default(), top: [Text::EMPTY; CHECKSUM_LEVELS] }
    }

    /// Writes the text of the best `min(len, CHECKSUM_LEVELS)` levels from their values.
    fn write_top(&mut self, price_scale: u8, qty_scale: u8) {
        for (t, l) in self.top.iter_mut().zip(self.v.iter().rev()) {
            l.write_text(t, price_scale, qty_scale);
        }
    }

    #[inline]
    fn find(&self, price: i64) -> std::result::Result<usize, usize> {
        // Levels are sorted worst to best, which is ascending order of their keys (each price
        // exclusive-ored with `Side::key_flip`).
        let flip = self.side.key_flip();
        let key = price ^ flip;
        find_in(self.v.as_slice(), key, flip)
    }

    /// Best first.
    pub(crate) fn best_first(&self) -> impl Iterator<Item = &Level> {
        self.v.iter().rev()
    }
}

/// [`Levels::find`] within one sorted slice: where the level whose key (its price XOR `flip`) is
/// `key` is (`Ok`) or would go (`Err`); keys ascend from worst to best.
#[inline(always)]
fn find_in(s: &[Level], key: i64, flip: i64) -> std::result::Result<usize, usize> {
    // Most changes touch the best few levels, which sit at the back: look at the best four one
    // by one, then gallop from the best end (ranks 8, 16, 32, ...) and binary-search only the
    // bracket that holds `key`. On a deep book this touches the hot top of the side instead of
    // probing its cold middle: in a recorded session of books at depth 1000, 45% of changes fall
    // at ranks 4 to 63, 0.6% deeper. Each probe is one compare of integers (equal, or which is
    // better), with no three-way `Ordering` to build and test.
    let len = s.len();
    for (k, l) in s.iter().rev().take(4).enumerate() {
        let here = l.price ^ flip;
        if here == key {
            return Ok(len - 1 - k);
        }
        if here < key {
            return Err(len - k);
        }
    }
    // Every level at rank below `checked` (index at or above `len - checked`) is better than
    // `price`.
    let mut checked = len.min(4);
    while checked < len {
        let rank = (2 * checked).min(len) - 1;
        let i = len - 1 - rank;
        let here = s[i].price ^ flip;
        if here == key {
            return Ok(i);
        }
        if here < key {
            // `key` lies strictly between index `i`'s and `len - checked`'s.
            let lo = i + 1;
            return match s[lo..len - checked].binary_search_by(|l| (l.price ^ flip).cmp(&key)) {
                Ok(j) => Ok(lo + j),
                Err(j) => Err(lo + j),
            };
        }
        checked = rank + 1;
    }
    // Better than none: below the worst level.
    Err(0)
}

/// An order book for one instrument: exact levels, depth truncation, checksum and validity.
///
/// The book is single-threaded; share it with readers through the publication layer.
#[derive(Debug, Clone)]
pub struct Book {
    depth: Depth,
    /// Drop the levels beyond the depth after each message (Kraken), or treat more levels than the
    /// depth as an error (exchanges that delete levels themselves).
    truncate: bool,
    /// Whether the book's checksum (Kraken's form) means anything for its exchange; publication
    /// computes it only then.
    checksummed: bool,
    /// The last applied sequence id, on exchanges that number their messages.
    sequence: Option<u64>,
    /// The book came from a REST snapshot and no update has linked to it yet: the rule bridges
    /// the next updates to `sequence` its exchange's way instead of requiring an exact link.
    bridging: bool,
    /// What the current `Valid` rests on.
    proof: Proof,
    precision: Option<Precision>,
    price_scale: u8,
    qty_scale: u8,
    pub(crate) bids: Levels,
    pub(crate) asks: Levels,
    state: State,
    /// The checksum of the current levels, once computed; any change clears it. Verification and
    /// publication both need it, and it costs more than the rest of an update.
    crc: std::cell::Cell<Option<u32>>,
    /// The CRC state after the asks' checksum text alone, once computed; a change among the
    /// best asks clears it. The checksum hashes the asks first, so after a change among the bids
    /// only their text is gathered and hashed, continuing from this.
    asks_crc: std::cell::RefCell<Option<crc32fast::Hasher>>,
    /// Where the bids' checksum text ends in `text` (it starts at `BIDS_AT`), while the buffer
    /// holds the current one; a change among the best bids clears it. After a change among the
    /// asks, the bids' text is hashed again but not gathered again.
    bids_end: std::cell::Cell<Option<usize>>,
    /// A CRC state at its start, made once: making one picks the CPU's kernel, which costs as
    /// much as hashing a side of a depth-10 book.
    fresh_crc: crc32fast::Hasher,
    /// Where the checksum text is gathered: kept with the book, so that computing a checksum
    /// does not clear a stack buffer each time (the bytes are overwritten before they are read).
    text: std::cell::RefCell<[u8; TEXT_BUF]>,
}

impl Book {
    /// An empty book awaiting its snapshot. `precision` is the instrument's, when known (Kraken
    /// v2); without it each level keeps the decimals its text had.
    #[must_use]
    pub fn new(depth: Depth, precision: Option<Precision>) -> Self {
        let p = precision.unwrap_or_default();
        let mut bids = Levels::new(Side::Bid);
        let mut asks = Levels::new(Side::Ask);
        bids.v.reserve(room(depth.get()));
        asks.v.reserve(room(depth.get()));
        Self {
            depth,
            truncate: true,
            checksummed: true,
            sequence: None,
            bridging: false,
            proof: Proof::None,
            precision,
            price_scale: p.price.min(MAX_SCALE),
            qty_scale: p.qty.min(MAX_SCALE),
            bids,
            asks,
            state: State::AwaitingSnapshot,
            crc: std::cell::Cell::new(None),
            asks_crc: std::cell::RefCell::new(None),
            bids_end: std::cell::Cell::new(None),
            fresh_crc: crc32fast::Hasher::new(),
            text: std::cell::RefCell::new([0; TEXT_BUF]),
        }
    }

    /// An empty book for exchanges whose books are kept by `R` (for example
    /// [`rule::BybitSeq`](crate::rule::BybitSeq)): truncated or kept as sent, checksummed or not,
    /// as the rule says.
    #[must_use]
    pub fn for_rule<R: crate::rule::Rule>(depth: Depth, precision: Option<Precision>) -> Self {
        let mut b = Self::new(depth, precision);
        b.truncate = R::TRUNCATE;
        b.checksummed = R::CHECKSUMMED;
        if !b.truncate {
            // No level is dropped from the worst end, so no dead levels need room.
            for levels in [&mut b.bids, &mut b.asks] {
                levels.v.shrink_to(depth.get() + 16);
            }
        }
        b
    }

    /// The subscribed depth.
    #[must_use]
    pub fn depth(&self) -> Depth {
        self.depth
    }

    /// The last applied sequence id (exchanges that number their messages), since the last
    /// snapshot.
    #[must_use]
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    pub(crate) fn set_sequence(&mut self, id: Option<u64>) {
        self.sequence = id;
    }

    /// Whether the book stands on a REST snapshot that no update has linked to yet (see
    /// [`Rule::apply_fetched`](crate::Rule::apply_fetched)).
    #[must_use]
    pub fn is_bridging(&self) -> bool {
        self.bridging
    }

    pub(crate) fn set_bridging(&mut self, on: bool) {
        self.bridging = on;
    }

    /// What the book's validity rests on: [`Proof::None`] unless the state is [`State::Valid`].
    #[must_use]
    pub fn proof(&self) -> Proof {
        if self.state.is_valid() { self.proof } else { Proof::None }
    }

    /// Whether Kraken's checksum form applies to this book (its exchange checks books that way).
    #[must_use]
    pub fn is_checksummed(&self) -> bool {
        self.checksummed
    }

    /// Whether the book drops levels beyond its depth after each message.
    pub(crate) fn truncates(&self) -> bool {
        self.truncate
    }

    /// The instrument precision in force, if any.
    #[must_use]
    pub fn precision(&self) -> Option<Precision> {
        self.precision
    }

    /// Changes the instrument precision. If it differs from the one in force on a book that holds
    /// levels, the book becomes invalid until the next snapshot (its text forms are stale).
    pub fn set_precision(&mut self, precision: Precision) {
        if self.precision == Some(precision) {
            return;
        }
        self.precision = Some(precision);
        if self.state != State::AwaitingSnapshot {
            self.state = State::Invalid(Invalid::PrecisionChanged);
        }
    }

    /// Whether what the book shows can be trusted.
    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// Sets the validity state. Private on purpose: a book reaches [`State::Valid`] only through
    /// a rule of [`crate::rule`] (a matching checksum, an unbroken sequence), never by a caller's
    /// say-so.
    pub(crate) fn set_state(&mut self, state: State) {
        self.state = state;
    }

    /// Marks a book that holds levels invalid for `why` (a book awaiting its snapshot, or
    /// already invalid, keeps its state). Anyone may take validity away; only a rule gives it.
    /// Coinbase's session uses it when the connection's counter skips: the lost message may have
    /// been any product's, so every book of the connection is wrong until its next snapshot.
    pub fn invalidate(&mut self, why: Invalid) {
        if matches!(self.state, State::Valid | State::Unverified) {
            self.state = State::Invalid(why);
        }
    }

    /// Sets the state to valid with its proof, unless the book is crossed.
    pub(crate) fn set_valid(&mut self, proof: Proof) {
        if self.is_crossed() {
            self.state = State::Invalid(Invalid::Crossed);
        } else {
            self.state = State::Valid;
            self.proof = proof;
        }
    }

    /// Removes every level and returns to [`State::AwaitingSnapshot`].
    pub fn clear(&mut self) {
        self.forget_crc(None);
        self.bids.v.clear();
        self.asks.v.clear();
        // Memory a huge book grew is given back once it is cleared for the next snapshot.
        let need = room(self.depth.get());
        for levels in [&mut self.bids, &mut self.asks] {
            if levels.v.capacity() > 4 * need.max(64) {
                levels.v.shrink_to(need);
            }
        }
        self.state = State::AwaitingSnapshot;
        self.sequence = None;
        self.bridging = false;
        self.proof = Proof::None;
        let p = self.precision.unwrap_or_default();
        self.price_scale = p.price.min(MAX_SCALE);
        self.qty_scale = p.qty.min(MAX_SCALE);
    }

    /// Number of levels on a side.
    #[must_use]
    pub fn len(&self, side: Side) -> usize {
        self.levels(side).v.len()
    }

    /// `true` when both sides are empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bids.v.is_empty() && self.asks.v.is_empty()
    }

    pub(crate) fn levels_of(&self, side: Side) -> &Levels {
        self.levels(side)
    }

    /// The scales (decimal places) of the stored price and quantity mantissas.
    pub(crate) fn scales(&self) -> (u8, u8) {
        (self.price_scale, self.qty_scale)
    }

    fn levels(&self, side: Side) -> &Levels {
        match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        }
    }

    /// [`Book::levels`], mutably (a caller that still needs other fields of the book while it
    /// holds the side borrows the side's field itself).
    fn levels_mut(&mut self, side: Side) -> &mut Levels {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }

    pub(crate) fn quote(&self, l: &Level) -> Quote {
        let p = l.price.unsigned_abs() / POW10[usize::from(self.price_scale - l.pfrac)];
        let q = l.qty.unsigned_abs() / POW10[usize::from(self.qty_scale - l.qfrac)];
        // Both fit: they are the stored i64 mantissas divided by a power of ten.
        Quote {
            price: Decimal64 { mantissa: i64::try_from(p).unwrap_or(i64::MAX), scale: l.pfrac },
            qty: Decimal64 { mantissa: i64::try_from(q).unwrap_or(i64::MAX), scale: l.qfrac },
        }
    }

    /// The levels of a side, best first.
    pub fn quotes(&self, side: Side) -> impl Iterator<Item = Quote> + '_ {
        self.levels(side).best_first().map(|l| self.quote(l))
    }

    /// The best level of a side.
    #[must_use]
    pub fn best(&self, side: Side) -> Option<Quote> {
        self.levels(side).v.back().map(|l| self.quote(l))
    }

    /// Whether the best bid is at or above the best ask.
    #[must_use]
    pub fn is_crossed(&self) -> bool {
        match (self.bids.v.back(), self.asks.v.back()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }

    /// Sets the quantity at a price from exact decimal text; a zero quantity deletes the level,
    /// and deleting a price that is not there does nothing. The side is not truncated: call
    /// [`Book::truncate`] once the whole message is applied.
    ///
    /// `min_frac` pads the checksum text of price and quantity to at least that many decimals
    /// (the instrument precision, for Kraken v2); text with more decimals keeps them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidNumber`], [`Error::TooPrecise`] or [`Error::Overflow`] for text that is not
    /// a plain non-negative decimal or does not fit; the book is unchanged then.
    #[inline]
    pub fn set(&mut self, side: Side, price: &str, qty: &str) -> Result<()> {
        let p = fixed::parse(price.as_bytes())?;
        let q = fixed::parse(qty.as_bytes())?;
        self.set_fixed(side, p, q)
    }

    /// A level's price and quantity at the book's scales, and the decimals of each one's text
    /// (its own, padded to the instrument's precision): the scales are raised first when the
    /// text has more decimals than they. Always inlined: left to the compiler, `set_fixed`
    /// called it, and a replay ran 1.3 to 2.0% more instructions.
    #[inline(always)]
    fn at_scales(&mut self, p: Fixed, q: Fixed) -> Result<(i64, i64, u8, u8)> {
        let min = self.precision.unwrap_or_default();
        let pfrac = p.frac.max(min.price).min(MAX_SCALE);
        let qfrac = q.frac.max(min.qty).min(MAX_SCALE);
        if pfrac > self.price_scale || qfrac > self.qty_scale {
            self.rescale(pfrac.max(self.price_scale), qfrac.max(self.qty_scale))?;
        }
        let price = fixed::rescale(p.mantissa, p.frac, self.price_scale)?;
        let qty = fixed::rescale(q.mantissa, q.frac, self.qty_scale)?;
        Ok((price, qty, pfrac, qfrac))
    }

    pub(crate) fn set_fixed(&mut self, side: Side, p: Fixed, q: Fixed) -> Result<()> {
        let (price, qty, pfrac, qfrac) = self.at_scales(p, q)?;
        // The side's field itself, not `levels_mut`: the checksum memo and the scales are used
        // while the side is held.
        let levels = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        // The checksum covers the best `CHECKSUM_LEVELS` of each side: a change below them (most
        // of a deep book's) leaves the cached one standing.
        let len = levels.v.len();
        let found = levels.find(price);
        let in_top = match found {
            // Changed or removed: one of the best N of `len`.
            Ok(i) => i + CHECKSUM_LEVELS >= len,
            // Inserted at `i`: one of the best N of `len + 1`.
            Err(i) => qty != 0 && i + CHECKSUM_LEVELS > len,
        };
        if in_top {
            forget_crc(&self.crc, &mut self.asks_crc, &self.bids_end, Some(side));
        }
        match found {
            Ok(i) if qty == 0 => {
                levels.v.remove(i);
                let rank = len - 1 - i;
                if self.checksummed && rank < CHECKSUM_LEVELS {
                    levels.top.copy_within(rank + 1.., rank);
                    // The level below the best ten that the removal lifts into them.
                    if let Some(k) = levels.v.len().checked_sub(CHECKSUM_LEVELS) {
                        levels.v[k].write_text(&mut levels.top[CHECKSUM_LEVELS - 1], self.price_scale, self.qty_scale);
                    }
                }
            }
            Err(_) if qty == 0 => {}
            Ok(i) => {
                // Both text forms must fit, whether or not they are written.
                let (pt, qt) = (text_mantissa(p, pfrac)?, text_mantissa(q, qfrac)?);
                let rank = len - 1 - i;
                let l = &mut levels.v[i];
                // The price digits stay unless the price came spelled with another number of
                // decimals.
                let same_price_text = l.pfrac == pfrac;
                l.qty = qty;
                l.qfrac = qfrac;
                l.pfrac = pfrac;
                if self.checksummed && rank < CHECKSUM_LEVELS {
                    levels.top[rank].write((!same_price_text).then_some(pt), qt);
                }
            }
            Err(i) => {
                let (pt, qt) = (text_mantissa(p, pfrac)?, text_mantissa(q, qfrac)?);
                levels.v.insert(i, Level { price, qty, pfrac, qfrac });
                // Inserted at `i` of `len + 1` levels.
                let rank = len - i;
                if self.checksummed && rank < CHECKSUM_LEVELS {
                    levels.top.copy_within(rank..CHECKSUM_LEVELS - 1, rank + 1);
                    levels.top[rank].write(Some(pt), qt);
                }
            }
        }
        Ok(())
    }

    /// Appends a level of a snapshot, unsorted; [`Book::compact`] sorts the side afterwards
    /// (and drops zero quantities, which delete nothing in a fresh book). Scales are handled as
    /// in [`Book::set`].
    ///
    /// This is the checked path, one level at a time; a frame's levels spelled at the book's
    /// scales (nearly all of a snapshot) take [`Book::push_spelled`] instead.
    pub(crate) fn push_fixed(&mut self, side: Side, p: Fixed, q: Fixed) -> Result<()> {
        let (price, qty, pfrac, qfrac) = self.at_scales(p, q)?;
        // The text forms must fit, as for a change; their digits are written by `compact` for
        // the best levels only (a deep snapshot's others may never reach the checksum).
        text_mantissa(p, pfrac)?;
        text_mantissa(q, qfrac)?;
        self.forget_crc(Some(side));
        let levels = self.levels_mut(side);
        levels.v.push_back(Level { price, qty, pfrac, qfrac });
        Ok(())
    }

    /// Pushes the levels at the front of `numbers` that are read exactly and spelled at the
    /// book's scales (every level of a real snapshot once its first has set them), as
    /// [`Book::push_fixed`] pushes them, with the checks it makes a level done once for the run.
    /// Stops before the first level that is not such a level, and after the level that makes
    /// [`Book::should_compact`] true; the caller pushes the former and compacts for the latter.
    pub(crate) fn push_spelled(&mut self, side: Side, numbers: &mut plumb_wire::Numbers<'_>) {
        let min = self.precision.unwrap_or_default();
        let (ps, qs) = (self.price_scale, self.qty_scale);
        // A snapshot fills a cleared book, whose scales are its precision (capped at
        // `MAX_SCALE`): this holds unless the precision is past the cap, and then every level
        // takes the checked path.
        if ps < min.price || qs < min.qty {
            return;
        }
        let limit = self.compact_at();
        self.forget_crc(Some(side));
        let levels = self.levels_mut(side);
        while levels.v.len() < limit {
            let mut ahead = numbers.clone();
            let Some((plumb_wire::Number::Value(p), plumb_wire::Number::Value(q))) = ahead.next() else { return };
            if p.scale != ps || q.scale != qs {
                return;
            }
            let (Ok(price), Ok(qty)) = (i64::try_from(p.mantissa), i64::try_from(q.mantissa)) else { return };
            levels.v.push_back(Level { price, qty, pfrac: ps, qfrac: qs });
            *numbers = ahead;
        }
    }

    /// Sorts a side pushed by [`Book::push_fixed`] (worst to best), in place and in O(n log n)
    /// whatever the wire order; a price named twice is an error (even when one of the two is a
    /// zero: a snapshot that contradicts itself is not a book). On a book cut to its depth, only
    /// the best `depth` levels are kept, so that a huge snapshot never holds more than a few
    /// times the depth while it is read. Memory grown past need is given back.
    pub(crate) fn compact(&mut self, side: Side) -> Result<()> {
        let keep = self.truncate.then(|| self.depth.get());
        // The side's field itself: the scales are used while the side is held.
        let levels = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        // Worst to best is ascending order of the keys (see `Side::key_flip`). Every exchange
        // sends a snapshot best first, so a side pushed from one descends strictly, which one
        // pass sees and a reversal sorts (with no price named twice); any other order is sorted.
        let flip = side.key_flip();
        let v = levels.v.as_mut_slice();
        if v.windows(2).all(|w| (w[0].price ^ flip) > (w[1].price ^ flip)) {
            v.reverse();
        } else {
            v.sort_unstable_by_key(|l| l.price ^ flip);
            if v.windows(2).any(|w| w[0].price == w[1].price) {
                return Err(Error::DuplicatePrice);
            }
        }
        if v.iter().any(|l| l.qty == 0) {
            levels.v.retain(|l| l.qty != 0);
        }
        if let Some(d) = keep {
            levels.v.drop_worst(levels.v.len().saturating_sub(d));
        }
        if self.checksummed {
            levels.write_top(self.price_scale, self.qty_scale);
        }
        let need = room(levels.v.len().max(self.depth.get()));
        if levels.v.capacity() > 4 * need {
            levels.v.shrink_to(need);
        }
        self.forget_crc(Some(side));
        Ok(())
    }

    /// Empties one side.
    pub(crate) fn clear_side(&mut self, side: Side) {
        self.forget_crc(Some(side));
        match side {
            Side::Bid => self.bids.v.clear(),
            Side::Ask => self.asks.v.clear(),
        }
    }

    /// Whether a side being read from a snapshot should be cut down now (a book cut to its
    /// depth that has read more than twice that).
    #[inline]
    pub(crate) fn should_compact(&self, side: Side) -> bool {
        self.levels(side).v.len() >= self.compact_at()
    }

    /// The length at which a side being read from a snapshot is cut down: twice the depth and
    /// some, on a book cut to its depth; never on one that is not.
    #[inline]
    fn compact_at(&self) -> usize {
        if self.truncate { 2 * self.depth.get() + 64 } else { usize::MAX }
    }

    /// Raises the book's scales (rare: a level arrived with more decimals than any before).
    fn rescale(&mut self, price_scale: u8, qty_scale: u8) -> Result<()> {
        let pf = POW10[usize::from(price_scale - self.price_scale)];
        let qf = POW10[usize::from(qty_scale - self.qty_scale)];
        let mut ok = true;
        for l in self.bids.v.iter().chain(self.asks.v.iter()) {
            ok &= l.price.checked_mul(pf.cast_signed()).is_some() && l.qty.checked_mul(qf.cast_signed()).is_some();
        }
        if !ok {
            return Err(Error::Overflow);
        }
        for l in self.bids.v.iter_mut().chain(self.asks.v.iter_mut()) {
            l.price *= pf.cast_signed();
            l.qty *= qf.cast_signed();
        }
        self.price_scale = price_scale;
        self.qty_scale = qty_scale;
        Ok(())
    }

    /// Whether a side holds more levels than the depth.
    pub(crate) fn is_overfull(&self) -> bool {
        let d = self.depth.get();
        self.bids.v.len() > d || self.asks.v.len() > d
    }

    /// Drops the worst levels of each side beyond the subscribed depth. Kraken sends no delete
    /// for levels that fall out of scope, so this runs after every message.
    #[inline]
    pub fn truncate(&mut self) {
        let d = self.depth.get();
        for levels in [&mut self.bids, &mut self.asks] {
            while levels.v.len() > d {
                // The worst level goes; the checksum's levels change only when it was one of them.
                if levels.v.len() <= CHECKSUM_LEVELS {
                    forget_crc(&self.crc, &mut self.asks_crc, &self.bids_end, Some(levels.side));
                }
                levels.v.drop_worst(1);
            }
        }
    }

    /// Kraken's CRC32 of the top 10 levels: asks best first, then bids best first, each level its
    /// price then quantity text with the `.` and leading zeros removed. No allocation.
    #[must_use]
    #[inline]
    pub fn checksum(&self) -> u32 {
        if let Some(crc) = self.crc.get() {
            return crc;
        }
        let crc = if self.checksummed {
            // Only here and in `compute_checksum` is the buffer borrowed, and neither calls the
            // other while holding it (a `Book` is not `Sync`), so the borrow cannot fail.
            let mut buf = self.text.borrow_mut();
            // Borrowed only here (it is cleared through `&mut self`).
            let mut asks = self.asks_crc.borrow_mut();
            let mut crc = asks
                .get_or_insert_with(|| {
                    let n = self.gather(&self.asks, &mut buf, 0);
                    let mut c = self.fresh_crc.clone();
                    c.update(&buf[..n]);
                    c
                })
                .clone();
            let n = match self.bids_end.get() {
                Some(n) => n,
                None => {
                    let n = self.gather(&self.bids, &mut buf, BIDS_AT);
                    self.bids_end.set(Some(n));
                    n
                }
            };
            crc.update(buf.get(BIDS_AT..n).unwrap_or_default());
            crc.finalize()
        } else {
            self.compute_checksum()
        };
        self.crc.set(Some(crc));
        crc
    }

    /// [`forget_crc`] for the whole book.
    #[inline]
    fn forget_crc(&mut self, side: Option<Side>) {
        forget_crc(&self.crc, &mut self.asks_crc, &self.bids_end, side);
    }

    /// Copies the checksum text of the best `min(len, CHECKSUM_LEVELS)` levels of a side into
    /// `buf` from offset `at` (rendering them from their values in a book that keeps no text);
    /// returns where the text ends. Bytes after the text may be overwritten.
    #[inline(always)]
    fn gather(&self, side: &Levels, buf: &mut [u8; TEXT_BUF], at: usize) -> usize {
        if !self.checksummed {
            return self.render(side, buf, at);
        }
        let count = side.v.len().min(CHECKSUM_LEVELS);
        let mut n = at;
        // Every slot is copied, those past the side's length too (their bytes land after the
        // text and count for nothing), so that the loop has a constant bound, unrolls, and has no
        // branch a level but for the rare text longer than 32 digits. Fixed-size copies compile
        // to vector moves, where a copy of `len` bytes would call memcpy. The mask changes nothing
        // (see `TEXT_MASK`) but drops the bounds checks.
        for (k, t) in side.top.iter().enumerate() {
            let i = n & TEXT_MASK;
            let len = if k < count { usize::from(t.len) } else { 0 };
            buf[i..i + 32].copy_from_slice(&t.digits[..32]);
            if len > 32 {
                buf[i + 32..i + DIGITS].copy_from_slice(&t.digits[32..]);
            }
            n = i + len;
        }
        n
    }

    /// [`Book::gather`] for a book that keeps no text: a sequenced exchange's, whose hot path
    /// never asks for the checksum. Each level is rendered from its values.
    #[inline(never)]
    fn render(&self, side: &Levels, buf: &mut [u8; TEXT_BUF], at: usize) -> usize {
        let mut n = at;
        for l in side.best_first().take(CHECKSUM_LEVELS) {
            let t = l.text(self.price_scale, self.qty_scale);
            let i = n & TEXT_MASK;
            buf[i..i + DIGITS].copy_from_slice(&t.digits);
            n = i + usize::from(t.len);
        }
        n
    }

    /// [`Book::checksum`] without the memo: always computes. For benchmarks.
    #[doc(hidden)]
    #[must_use]
    pub fn compute_checksum(&self) -> u32 {
        // See `checksum` on the borrow.
        let mut buf = self.text.borrow_mut();
        let n = self.gather(&self.asks, &mut buf, 0);
        let n = self.gather(&self.bids, &mut buf, n);
        // The bids' text kept for `checksum` may have been overwritten.
        self.bids_end.set(None);
        let mut crc = self.fresh_crc.clone();
        crc.update(&buf[..n]);
        crc.finalize()
    }
}

/// Forgets a book's checksum, the CRC state after its asks when the change was among them, and
/// the gathered text of its bids when the change was among those, after a change among the best
/// levels of `side` (of either side when `None`). Takes the fields, so that code holding one side
/// of the book borrowed can call it.
#[inline]
fn forget_crc(
    crc: &std::cell::Cell<Option<u32>>,
    asks_crc: &mut std::cell::RefCell<Option<crc32fast::Hasher>>,
    bids_end: &std::cell::Cell<Option<usize>>,
    side: Option<Side>,
) {
    crc.set(None);
    if side != Some(Side::Bid) {
        *asks_crc.get_mut() = None;
    }
    if side != Some(Side::Ask) {
        bids_end.set(None);
    }
}

impl Level {
    /// The level's checksum text rendered from its values at the book's scales: each mantissa at
    /// the decimals its text had (`pfrac`, `qfrac`, never above the book's scales), as
    /// [`Text::write`] writes it.
    fn text(&self, price_scale: u8, qty_scale: u8) -> Text {
        let mut t = Text::EMPTY;
        self.write_text(&mut t, price_scale, qty_scale);
        t
    }

    /// [`Level::text`], written over `t` in place (no empty text made and copied). A value
    /// whose text has the book's decimals, the usual case, is its own text's mantissa: no
    /// division then.
    #[inline]
    fn write_text(&self, t: &mut Text, price_scale: u8, qty_scale: u8) {
        let text = |v: i64, scale: u8, frac: u8| {
            let v = v.unsigned_abs();
            if scale <= frac { v } else { v / POW10.get(usize::from(scale - frac)).copied().unwrap_or(1) }
        };
        t.write(Some(text(self.price, price_scale, self.pfrac)), text(self.qty, qty_scale, self.qfrac));
    }
}

/// The mantissa of a value's text form at `frac` decimals (`frac >= f.frac`).
#[inline]
fn text_mantissa(f: Fixed, frac: u8) -> Result<u64> {
    if frac == f.frac {
        return Ok(f.mantissa);
    }
    f.mantissa.checked_mul(POW10[usize::from(frac - f.frac)]).ok_or(Error::Overflow)
}

/// The eight decimal digits of `x` (below 10^8, leading zeros included) as ASCII, the most
/// significant in the lowest byte: the number is split in halves, quarters and digits within one
/// register (each lane's quotient by a multiply and shift that is exact for the lane's range), so
/// that a mantissa takes a few multiplications instead of one division per two digits.
#[inline]
fn eight_digits(x: u64) -> u64 {
    // Two 4-digit halves in 32-bit lanes, the high half first (lowest).
    let v = (x / 10_000) | ((x % 10_000) << 32);
    // Each half into two 2-digit pairs in 16-bit lanes: n / 100 == (n * 5243) >> 19 for n < 10^4.
    let hundreds = ((v * 5243) >> 19) & 0x0000_007f_0000_007f;
    let v = hundreds | ((v - hundreds * 100) << 16);
    // Each pair into two digits in bytes: n / 10 == (n * 103) >> 10 for n < 100.
    let tens = ((v * 103) >> 10) & 0x000f_000f_000f_000f;
    let v = tens | ((v - tens * 10) << 8);
    v + 0x3030_3030_3030_3030
}

/// Writes the decimal digits of `v` at `out[at..]`, without leading zeros (zero writes nothing),
/// and returns how many. Bytes after the digits, up to `at + 8`, may be overwritten. Two
/// mantissas that fit an `i64` (19 digits each) always fit, so the bounds checks below never fail
/// for a level.
#[inline]
#[allow(clippy::cast_possible_truncation, reason = "n <= 20")]
pub(crate) fn write_digits(out: &mut [u8; DIGITS], at: usize, v: u64) -> u8 {
    const E8: u64 = 100_000_000;
    if v == 0 {
        return 0;
    }
    // The leading chunk (1 to 8 digits), then whole chunks of eight: one for a value below
    // 10^16 (every price and quantity of a real book), two above.
    let (top, rest, chunks) = if v < E8 {
        (v, [0; 2], 0)
    } else if v < E8 * E8 {
        (v / E8, [v % E8, 0], 1)
    } else {
        (v / (E8 * E8), [v / E8 % E8, v % E8], 2)
    };
    // The leading chunk's text has zeros where its value has fewer than eight digits; they are
    // its lowest bytes, counted from the trailing zero bits of the text less '0's, and shifted
    // off (its other bytes are overwritten by the chunks after it, or lie past the number).
    let text = eight_digits(top);
    let zeros = ((text ^ 0x3030_3030_3030_3030).trailing_zeros() / 8) as usize;
    let lead = 8 - zeros;
    let Some(dst) = out.get_mut(at..at + 8) else { return 0 };
    dst.copy_from_slice(&(text >> (8 * zeros)).to_le_bytes());
    for (k, chunk) in rest.into_iter().take(chunks).enumerate() {
        let from = at + lead + 8 * k;
        let Some(dst) = out.get_mut(from..from + 8) else { return 0 };
        dst.copy_from_slice(&eight_digits(chunk).to_le_bytes());
    }
    (lead + 8 * chunks) as u8
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::{Book, DIGITS, Depth, Ladder, Level, Precision, Side, room, write_digits};

    fn level(price: i64) -> Level {
        Level { price, qty: price.wrapping_mul(3), pfrac: 0, qfrac: 0 }
    }

    /// One change to a ladder, for the model check: insert at, remove at, drop the worst `n`,
    /// push, keep the even prices, clear (positions taken modulo the length).
    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize, i64),
        Remove(usize),
        DropWorst(usize),
        Push(i64),
        RetainEven,
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<usize>(), any::<i64>()).prop_map(|(i, p)| Op::Insert(i, p)),
            3 => any::<usize>().prop_map(Op::Remove),
            4 => (0usize..4).prop_map(Op::DropWorst),
            2 => any::<i64>().prop_map(Op::Push),
            1 => Just(Op::RetainEven),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// A ladder holds what a `VecDeque` given the same changes holds, in the same order,
        /// through every move of its live levels to the front.
        #[test]
        fn a_ladder_is_a_deque(cap in 1usize..40, ops in proptest::collection::vec(op(), 0..400)) {
            let mut ladder = Ladder::default();
            ladder.reserve(cap);
            let mut model: VecDeque<Level> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Insert(i, p) => {
                        let i = i % (model.len() + 1);
                        ladder.insert(i, level(p));
                        model.insert(i, level(p));
                    }
                    Op::Remove(i) if !model.is_empty() => {
                        let i = i % model.len();
                        ladder.remove(i);
                        model.remove(i);
                    }
                    Op::Remove(_) => {}
                    Op::DropWorst(n) => {
                        ladder.drop_worst(n);
                        model.drain(..n.min(model.len()));
                    }
                    Op::Push(p) => {
                        ladder.push_back(level(p));
                        model.push_back(level(p));
                    }
                    Op::RetainEven => {
                        ladder.retain(|l| l.price % 2 == 0);
                        model.retain(|l| l.price % 2 == 0);
                    }
                    Op::Clear => {
                        ladder.clear();
                        model.clear();
                    }
                }
                let prices = |it: &mut dyn Iterator<Item = &Level>| it.map(|l| (l.price, l.qty)).collect::<Vec<_>>();
                prop_assert_eq!(prices(&mut ladder.iter()), prices(&mut model.iter()));
                prop_assert_eq!(ladder.len(), model.len());
                prop_assert_eq!(ladder.back().map(|l| l.price), model.back().map(|l| l.price));
                prop_assert_eq!(prices(&mut ladder.clone().iter()), prices(&mut model.iter()));
                if let Some(last) = model.len().checked_sub(1) {
                    prop_assert_eq!(ladder[last].price, model[last].price);
                }
            }
        }
    }

    /// A book held at its depth, each insert pushing its worst level out (Kraken's steady
    /// state), never grows its vectors: the dead levels are moved out instead.
    #[test]
    fn a_full_book_inserting_and_truncating_never_allocates() {
        for depth in [Depth::D10, Depth::new(1000).unwrap()] {
            let d = i64::try_from(depth.get()).unwrap();
            let mut book = Book::new(depth, None);
            let bids: Vec<(String, String)> = (0..d).map(|k| (format!("{}", 1_000_000 - k), "1".to_owned())).collect();
            let bids: Vec<(&str, &str)> = bids.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
            book.fill_text(Side::Bid, &bids).unwrap();
            let cap = book.bids.v.capacity();
            assert!(cap >= room(depth.get()));
            for k in 0..10 * d {
                // A new best bid each time.
                book.set(Side::Bid, &format!("{}", 1_000_001 + k), "2").unwrap();
                book.truncate();
                assert_eq!(book.len(Side::Bid), depth.get());
                assert_eq!(book.bids.v.capacity(), cap);
            }
            let best: Vec<String> = book.quotes(Side::Bid).take(2).map(|q| q.price.to_string()).collect();
            assert_eq!(best, [format!("{}", 1_000_000 + 10 * d), format!("{}", 999_999 + 10 * d)]);
        }
    }

    /// A snapshot read after the instrument's precision rose pads its text to the new precision,
    /// as one read into a book made with it does, even where each value is spelled at the
    /// book's old scales.
    #[test]
    fn a_snapshot_after_a_precision_change_reads_as_in_a_book_made_with_it() {
        let (old, new) = (Precision { price: 1, qty: 2 }, Precision { price: 3, qty: 4 });
        let bids = [("1.5", "2.25"), ("1.4", "0.50")];
        let asks = [("1.6", "3.00"), ("1.7", "0.01")];
        let mut changed = Book::new(Depth::D10, Some(old));
        changed.set_precision(new);
        let mut made = Book::new(Depth::D10, Some(new));
        for book in [&mut changed, &mut made] {
            book.fill_text(Side::Bid, &bids).unwrap();
            book.fill_text(Side::Ask, &asks).unwrap();
        }
        assert_eq!(changed.compute_checksum(), made.compute_checksum());
        assert_eq!(changed.checksum(), made.checksum());
    }

    /// The bids' text kept between checksums survives `compute_checksum`, which gathers both
    /// sides back to back over the place it is kept, only by being gathered again: with long
    /// numbers, a change among the asks after that still gives the checksum computed in full.
    #[test]
    fn kept_bids_text_is_not_trusted_after_compute_checksum() {
        let mut book = Book::new(Depth::D10, None);
        for k in 0..10u64 {
            // 19 digits of price and 18 of quantity a level: 370 bytes of text a side.
            let (bid, ask) = (1_000_000_000_000_000_000 - k, 2_000_000_000_000_000_000 + k);
            book.set(Side::Bid, &format!("{bid}"), "123456789012345678").unwrap();
            book.set(Side::Ask, &format!("{ask}"), "123456789012345678").unwrap();
        }
        assert_eq!(book.checksum(), book.compute_checksum());
        book.set(Side::Ask, "2000000000000000000", "5").unwrap();
        assert_eq!(book.checksum(), book.compute_checksum());
        book.set(Side::Ask, "2000000000000000001", "7").unwrap();
        assert_eq!(book.checksum(), book.compute_checksum());
    }

    /// Checks `write_digits` against `format!` at two offsets, with the bytes around the digits
    /// (before them, and after `at + 8`) left alone.
    fn check(v: u64) {
        for at in [0, 19] {
            let mut out = [b'#'; DIGITS];
            let n = usize::from(write_digits(&mut out, at, v));
            let text = if v == 0 { String::new() } else { v.to_string() };
            assert_eq!(&out[at..at + n], text.as_bytes(), "{v} at {at}");
            assert!(out[..at].iter().all(|&b| b == b'#'), "{v} at {at}: wrote before");
            assert!(out[(at + n).max(at + 8)..].iter().all(|&b| b == b'#'), "{v} at {at}: wrote after");
        }
    }

    #[test]
    fn digits_are_the_decimal_text() {
        let mut v = 1u64;
        for _ in 0..20 {
            for d in [v - 1, v, v + 1, v.saturating_mul(3) / 2, v.saturating_mul(10).saturating_sub(1)] {
                check(d);
            }
            v = v.saturating_mul(10);
        }
        check(u64::MAX);
        check(i64::MAX.unsigned_abs());
        // A spread of values with every digit in every position.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(x >> (x % 64));
        }
    }
}
