//! The exchange-neutral view of one symbol's book message: what every exchange module produces and
//! what the book consumes.
//!
//! A [`Frame`] is the same shape whatever the exchange: the symbol, snapshot or update, the levels
//! in wire order as exact text, and what the exchange offers as proof (a checksum, a sequence
//! range, or nothing). The exchange modules (`kraken`, `bybit`) fill a shared `Scratch` of spans;
//! the views resolve spans into `&str` slices of the frame on access.

use crate::num::{Decimal, rfc3339_ns};
use crate::reader::Span;

/// Whether a book or instrument message replaces the state or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A full image: replace the book.
    Snapshot,
    /// A delta: apply on top of the book.
    Update,
}

/// The exchange's numbering of a book message, for the exchanges that number them.
///
/// Each exchange fills what it sends: Bybit's `u` is `first == last` with no `prev`; OKX's
/// `seqId`/`prevSeqId` are `last` and `prev`; Binance's `U`/`u`/`pu` are `first`, `last`, `prev`;
/// Coinbase's per-connection `sequence_num` is `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sequence {
    /// The first update id the message covers.
    pub first: u64,
    /// The last update id the message covers (the book's id once it is applied).
    pub last: u64,
    /// The id of the message that must come before this one, when the exchange links them.
    pub prev: Option<u64>,
}

/// The exchange's time stamp of a message, in the form the exchange sent it. Reading it costs
/// something only when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time<'a> {
    /// No time stamp.
    None,
    /// An RFC 3339 UTC time, as Kraken v2 sends it.
    Rfc3339(&'a str),
    /// Milliseconds since the Unix epoch, as Bybit sends them.
    UnixMillis(u64),
}

impl Time<'_> {
    /// Nanoseconds since the Unix epoch, when there is a time and it reads as one.
    #[must_use]
    #[inline]
    pub fn unix_ns(&self) -> Option<u64> {
        match *self {
            Self::None => None,
            Self::Rfc3339(t) => rfc3339_ns(t.as_bytes()),
            Self::UnixMillis(ms) => ms.checked_mul(1_000_000),
        }
    }
}

/// One symbol's book message, whatever the exchange.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    /// The symbol as the wire spells it.
    pub symbol: &'a str,
    /// Snapshot (replace the book) or update (apply on top of it).
    pub kind: Kind,
    /// Bid levels in wire order.
    pub bids: Levels<'a>,
    /// Ask levels in wire order.
    pub asks: Levels<'a>,
    /// The exchange's checksum of the book after this message, when it sends one (as the bit
    /// pattern of a 32-bit CRC: exchanges that send it signed are read into the same bits).
    pub checksum: Option<u32>,
    /// The exchange's numbering of this message, when it numbers them.
    pub sequence: Option<Sequence>,
    /// The exchange's time stamp.
    pub time: Time<'a>,
}

/// An iterator over price levels in wire order.
#[derive(Debug, Clone)]
pub struct Levels<'a> {
    pub(crate) src: Src<'a>,
    pub(crate) levels: &'a [RawLevel],
}

impl<'a> Iterator for Levels<'a> {
    type Item = Level<'a>;

    #[inline]
    fn next(&mut self) -> Option<Level<'a>> {
        let (first, rest) = self.levels.split_first()?;
        self.levels = rest;
        Some(Level {
            price: self.src.text(first.price),
            qty: self.src.text(first.qty),
            price_value: first.price_value,
            qty_value: first.qty_value,
            republish: first.republish,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.levels.len(), Some(self.levels.len()))
    }
}

impl ExactSizeIterator for Levels<'_> {}

impl<'a> Levels<'a> {
    /// Each level's price and quantity as the book takes them: the exact value read while
    /// scanning, and the text only where none was read. No text is sliced or checked for the
    /// values that were read, which is every plain decimal of at most 19 digits.
    #[must_use]
    pub fn numbers(self) -> Numbers<'a> {
        Numbers { src: self.src, levels: self.levels }
    }
}

/// A price or a quantity as sent: its exact value when the reader valued it while scanning (a
/// plain decimal of at most 19 digits), else its text, for the caller to read its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number<'a> {
    /// The exact value.
    Value(Decimal),
    /// The text (an exponent, a sign, more than 19 digits, or not a number at all).
    Text(&'a [u8]),
}

/// An iterator over the levels of [`Levels`] as `(price, quantity)` [`Number`]s, in wire order.
#[derive(Debug, Clone)]
pub struct Numbers<'a> {
    src: Src<'a>,
    levels: &'a [RawLevel],
}

impl<'a> Iterator for Numbers<'a> {
    type Item = (Number<'a>, Number<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (first, rest) = self.levels.split_first()?;
        self.levels = rest;
        let number = |value: Option<Decimal>, span: Span| match value {
            Some(v) => Number::Value(v),
            None => Number::Text(self.src.bytes(span)),
        };
        Some((number(first.price_value, first.price), number(first.qty_value, first.qty)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.levels.len(), Some(self.levels.len()))
    }
}

impl ExactSizeIterator for Numbers<'_> {}

/// One price level as sent: exact decimal text, never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level<'a> {
    /// The price text (a JSON number's text, or a JSON string's content).
    pub price: &'a str,
    /// The quantity text; zero means "delete this price".
    pub qty: &'a str,
    /// The exact value of `price`, read while scanning, when the text is a plain decimal of at most
    /// 19 digits (no sign, no exponent); otherwise `None`, and the text is the only form.
    pub price_value: Option<Decimal>,
    /// The exact value of `qty`, as for `price_value`.
    pub qty_value: Option<Decimal>,
    /// Kraken v1 only: the level carried the `"r"` (republish) flag.
    pub republish: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RawLevel {
    pub(crate) price: Span,
    pub(crate) qty: Span,
    pub(crate) price_value: Option<Decimal>,
    pub(crate) qty_value: Option<Decimal>,
    pub(crate) republish: bool,
}

impl RawLevel {
    /// A level whose values are read from its text.
    #[inline]
    pub(crate) fn read(s: &[u8], price: Span, qty: Span, republish: bool) -> Self {
        Self {
            price,
            qty,
            price_value: Decimal::parse(s.get(price.range()).unwrap_or_default()),
            qty_value: Decimal::parse(s.get(qty.range()).unwrap_or_default()),
            republish,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEntry {
    pub(crate) symbol: Span,
    pub(crate) bids: (u32, u32),
    pub(crate) asks: (u32, u32),
    pub(crate) checksum: Option<u32>,
    pub(crate) timestamp: Option<Span>,
    pub(crate) time_ms: Option<u64>,
    pub(crate) sequence: Option<Sequence>,
}

impl RawEntry {
    pub(crate) const EMPTY: RawEntry = RawEntry {
        symbol: Span { start: 0, end: 0 },
        bids: (0, 0),
        asks: (0, 0),
        checksum: None,
        timestamp: None,
        time_ms: None,
        sequence: None,
    };
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RawPair {
    pub(crate) symbol: Span,
    pub(crate) price_precision: u8,
    pub(crate) qty_precision: u8,
}

/// Reusable storage for what a walker found, so that parsing a book frame allocates nothing once
/// the vectors have grown to the frame sizes seen. Shared by every exchange module.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) levels: Vec<RawLevel>,
    pub(crate) entries: Vec<RawEntry>,
    pub(crate) pairs: Vec<RawPair>,
    pub(crate) topics: Vec<Span>,
    /// Per entry, for exchanges whose entries of one message differ in kind (Coinbase events).
    pub(crate) kinds: Vec<Kind>,
    /// One side's levels held back while the other side's are read into `levels`, for
    /// exchanges that interleave the sides (Coinbase); appended after them, then emptied.
    pub(crate) held: Vec<RawLevel>,
}

impl Scratch {
    pub(crate) fn clear(&mut self) {
        self.levels.clear();
        self.entries.clear();
        self.pairs.clear();
        self.topics.clear();
        self.kinds.clear();
        self.held.clear();
    }

    /// The neutral view of one entry. Always inlined: built in its caller's frame, the view is
    /// written where the caller keeps it, not returned through memory by a call.
    #[inline(always)]
    pub(crate) fn frame<'a>(&'a self, src: Src<'a>, e: &RawEntry, kind: Kind) -> Frame<'a> {
        let levels =
            |(a, b): (u32, u32)| Levels { src, levels: self.levels.get(a as usize..b as usize).unwrap_or_default() };
        Frame {
            symbol: src.text(e.symbol),
            kind,
            bids: levels(e.bids),
            asks: levels(e.asks),
            checksum: e.checksum,
            sequence: e.sequence,
            time: match (e.timestamp, e.time_ms) {
                (Some(t), _) => Time::Rfc3339(src.text(t)),
                (None, Some(ms)) => Time::UnixMillis(ms),
                (None, None) => Time::None,
            },
        }
    }
}

/// The text spans point into: the frame itself, checked once (the fast paths) to be all ASCII
/// (most frames: any slice of it is text) or else valid UTF-8 (each slice checked to fall on
/// character boundaries), or the parser's unescaped copy of it (the simd-json path), whose spans
/// were validated one by one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Src<'a> {
    Ascii(crate::text::Ascii<'a>),
    Str(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> Src<'a> {
    #[inline]
    pub(crate) fn text(self, span: Span) -> &'a str {
        // Spans start and end at ASCII delimiters of validated text, so both lookups succeed; the
        // empty fallback exists only so that no input can make this panic.
        match self {
            Self::Ascii(a) => a.slice(span.range()),
            Self::Str(s) => s.get(span.range()).unwrap_or(""),
            Self::Bytes(b) => b.get(span.range()).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or(""),
        }
    }

    /// The bytes of a span, unchecked as text (the empty fallback, as in [`Src::text`]).
    #[inline]
    pub(crate) fn bytes(self, span: Span) -> &'a [u8] {
        let b = match self {
            Self::Ascii(a) => a.bytes(),
            Self::Str(s) => s.as_bytes(),
            Self::Bytes(b) => b,
        };
        b.get(span.range()).unwrap_or_default()
    }
}
