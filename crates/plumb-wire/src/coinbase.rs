//! Coinbase Advanced Trade market data (`wss://advanced-trade-ws.coinbase.com`): `level2` books
//! on the channel `l2_data`, `heartbeats`, `subscriptions` acknowledgements, and errors.
//!
//! Every message of a connection carries `sequence_num`, one counter over all channels
//! (heartbeats and acknowledgements included): the session checks it before any book. A book
//! message is `{"channel":"l2_data","client_id":"","timestamp","sequence_num":N,"events":[{"type":
//! "snapshot"|"update","product_id","updates":[{"side":"bid"|"offer","event_time","price_level",
//! "new_quantity"}]}]}`. `new_quantity` is absolute and `"0"` deletes; `offer` is the ask side.
//! The sides come interleaved; each event's [`Frame`] holds its bids and its asks in wire order
//! each. A snapshot is the whole book, one frame of several megabytes for BTC-USD.
//!
//! In the neutral [`Frame`] the connection's `sequence_num` is the sequence's `first` and `last`,
//! with no `prev`: it numbers messages, not one product's books.
//!
//! Example: read an update.
//!
//! ```
//! use plumb_wire::{Parser, Kind, coinbase::Message};
//!
//! let frame = br#"{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z",
//!     "sequence_num":7,"events":[{"type":"update","product_id":"BTC-USD","updates":[
//!     {"side":"offer","event_time":"2023-02-09T20:32:50.714964855Z","price_level":"21921.74","new_quantity":"0"},
//!     {"side":"bid","event_time":"2023-02-09T20:32:50.714964855Z","price_level":"21921.73","new_quantity":"0.5"}]}]}"#;
//! let mut parser = Parser::new();
//! let Message::Book(book) = parser.parse_coinbase(frame)? else { panic!("not a book") };
//! assert_eq!(book.sequence, 7);
//! let f = book.frames().next().unwrap();
//! assert_eq!((f.symbol, f.kind, f.bids.len(), f.asks.len()), ("BTC-USD", Kind::Update, 1, 1));
//! assert_eq!(f.asks.clone().next().unwrap().qty, "0");
//! # Ok::<(), plumb_wire::Error>(())
//! ```

use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Frame, Kind, RawEntry, RawLevel, Scratch, Sequence, Src};
use crate::layout::Cursor;
use crate::num::parse_u64;
use crate::reader::{Kind as Json, Mark, Reader, Span};

/// The largest Coinbase frame the parser reads: a snapshot is the whole book in one frame, tens of
/// megabytes for BTC-USD.
pub const MAX_FRAME_LEN: usize = 64 << 20;

/// The Coinbase Advanced Trade dialect, for [`Dialect`](crate::Dialect)-generic code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Coinbase;

/// One parsed Coinbase message. Every `&'a str` borrows from the frame (or from the parser's
/// unescaped copy of it).
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// `l2_data`: one or more products' book events.
    Book(Book<'a>),
    /// `heartbeats`: one a second on a subscribed connection.
    Heartbeat {
        /// The connection's counter.
        sequence: u64,
        /// Coinbase's own count of heartbeats, when it parses as one.
        counter: Option<u64>,
    },
    /// `subscriptions`: the channels and products the connection now holds (the acknowledgement
    /// of a subscribe or an unsubscribe).
    Subscriptions {
        /// The connection's counter.
        sequence: u64,
        /// The products `level2` lists.
        level2: Products<'a>,
    },
    /// `{"type":"error","message":...,"reason":...}`: a refused request (a subscribe naming a
    /// product that does not exist is refused whole).
    Error {
        /// Coinbase's message (`Failed to subscribe`).
        message: Option<&'a str>,
        /// Why, when Coinbase says (`BTC-XYZ is not a valid product`).
        reason: Option<&'a str>,
    },
    /// A well-formed message of another channel.
    Other {
        /// The channel, when the message has one.
        channel: Option<&'a str>,
        /// The connection's counter, when the message carries one.
        sequence: Option<u64>,
    },
}

/// The products a `subscriptions` message lists for `level2`.
#[derive(Debug, Clone, Copy)]
pub struct Products<'a> {
    range: (u32, u32),
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> Products<'a> {
    /// The products, as listed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let (src, scratch) = (self.src, self.scratch);
        let spans = scratch.topics.get(self.range.0 as usize..self.range.1 as usize).unwrap_or_default();
        spans.iter().map(move |s| src.text(*s))
    }
}

impl Message<'_> {
    /// The connection's `sequence_num` of this message, when it has one (errors have none).
    #[must_use]
    pub fn sequence(&self) -> Option<u64> {
        match self {
            Self::Book(b) => Some(b.sequence),
            Self::Heartbeat { sequence, .. } | Self::Subscriptions { sequence, .. } => Some(*sequence),
            Self::Error { .. } => None,
            Self::Other { sequence, .. } => *sequence,
        }
    }
}

/// A `l2_data` message: the connection's counter, and one frame per event.
#[derive(Debug, Clone, Copy)]
pub struct Book<'a> {
    /// The connection's `sequence_num`.
    pub sequence: u64,
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> Book<'a> {
    /// Each event's neutral frame, in wire order (one product each).
    pub fn frames(&self) -> impl ExactSizeIterator<Item = Frame<'a>> + 'a {
        let (src, scratch) = (self.src, self.scratch);
        scratch.entries.iter().zip(&scratch.kinds).map(move |(e, k)| scratch.frame(src, e, *k))
    }
}

/// What the walker read, opaque outside this crate.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct RawMessage(pub(crate) Raw);

#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw {
    Book { sequence: u64 },
    Heartbeat { sequence: u64, counter: Option<u64> },
    Subscriptions { sequence: u64, list: Option<(u32, u32)> },
    Error { message: Option<Span>, reason: Option<Span> },
    Other { channel: Option<Span>, sequence: Option<u64> },
}

pub(crate) fn view<'a>(raw: Raw, src: Src<'a>, scratch: &'a Scratch) -> Message<'a> {
    match raw {
        Raw::Book { sequence } => Message::Book(Book { sequence, src, scratch }),
        Raw::Heartbeat { sequence, counter } => Message::Heartbeat { sequence, counter },
        Raw::Subscriptions { sequence, list } => {
            Message::Subscriptions { sequence, level2: Products { range: list.unwrap_or((0, 0)), src, scratch } }
        }
        Raw::Error { message, reason } => {
            Message::Error { message: message.map(|s| src.text(s)), reason: reason.map(|s| src.text(s)) }
        }
        Raw::Other { channel, sequence } => Message::Other { channel: channel.map(|s| src.text(s)), sequence },
    }
}

/// The most events one message may carry (each is a product's frame).
const MAX_EVENTS: usize = 4096;

#[derive(Default)]
struct Top {
    channel: Option<Span>,
    kind: Option<Span>,
    message: Option<Span>,
    reason: Option<Span>,
    timestamp: Option<Span>,
    sequence: Option<u64>,
    events: Option<Mark>,
    /// The book's events were read where they stand (the channel came first).
    read: bool,
}

struct Walk<'s, R> {
    r: R,
    s: &'s [u8],
    out: &'s mut Scratch,
}

pub(crate) fn walk<R: Reader>(r: R, s: &[u8], out: &mut Scratch) -> Result<Raw> {
    out.clear();
    let mut w = Walk { r, s, out };
    if w.r.peek()? != Json::Object {
        return Err(Error::new(ErrorKind::UnknownMessage, w.r.offset()));
    }
    w.object()
}

#[inline]
fn is(s: &[u8], span: Span, lit: &[u8]) -> bool {
    s.get(span.range()) == Some(lit)
}

impl<R: Reader> Walk<'_, R> {
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.r.offset())
    }

    /// A non-negative integer, as a JSON number or a string of digits.
    fn count(&mut self) -> Result<u64> {
        let at = self.r.offset();
        let span = match self.r.peek()? {
            Json::String => self.r.string()?,
            Json::Number => self.r.number()?,
            _ => return Err(self.err(ErrorKind::WrongType)),
        };
        parse_u64(&self.s[span.range()]).ok_or_else(|| Error::new(ErrorKind::InvalidValue, at))
    }

    /// A string's span, or nothing for a value of another type (skipped).
    fn text_or_skip(&mut self) -> Result<Option<Span>> {
        if self.r.peek()? == Json::String {
            return self.r.string().map(Some);
        }
        self.r.skip()?;
        Ok(None)
    }

    fn object(&mut self) -> Result<Raw> {
        let mut t = Top::default();
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            match self.s.get(k.range()).unwrap_or_default() {
                b"channel" => t.channel = Some(self.r.string()?),
                b"type" => t.kind = Some(self.r.string()?),
                b"message" => t.message = self.text_or_skip()?,
                b"reason" => t.reason = self.text_or_skip()?,
                b"timestamp" => t.timestamp = Some(self.r.string()?),
                b"sequence_num" => t.sequence = Some(self.count()?),
                b"events" => {
                    if self.r.peek()? != Json::Array {
                        return Err(self.err(ErrorKind::WrongType));
                    }
                    t.events = Some(self.r.mark());
                    if t.channel.is_some_and(|c| is(self.s, c, b"l2_data")) {
                        // The usual order (`channel` first): the book read in this one pass,
                        // with no skip over megabytes of snapshot first. A repeated key: the
                        // last one wins.
                        self.out.clear();
                        self.book_events(t.timestamp, t.sequence.unwrap_or(0))?;
                        t.read = true;
                    } else {
                        t.read = false;
                        self.r.skip()?;
                    }
                }
                _ => self.r.skip()?,
            }
        }
        self.r.finish()?;
        let s = self.s;
        if t.channel.is_none()
            && let Some(k) = t.kind
        {
            if is(s, k, b"error") {
                return Ok(Raw::Error { message: t.message, reason: t.reason });
            }
            return Ok(Raw::Other { channel: Some(k), sequence: t.sequence });
        }
        let Some(channel) = t.channel else {
            return Err(Error::new(ErrorKind::UnknownMessage, 0));
        };
        let need_seq = || t.sequence.ok_or_else(|| Error::new(ErrorKind::MissingField, channel.start as usize));
        if is(s, channel, b"l2_data") {
            let sequence = need_seq()?;
            let mark = t.events.ok_or_else(|| Error::new(ErrorKind::MissingField, 0))?;
            if t.read {
                // Read before the keys after `events`: their values now.
                for e in &mut self.out.entries {
                    e.timestamp = t.timestamp;
                    e.sequence = Some(Sequence { first: sequence, last: sequence, prev: None });
                }
            } else {
                self.r.reset(mark);
                self.book_events(t.timestamp, sequence)?;
            }
            return Ok(Raw::Book { sequence });
        }
        if is(s, channel, b"heartbeats") {
            let sequence = need_seq()?;
            let counter = match t.events {
                Some(mark) => {
                    self.r.reset(mark);
                    self.heartbeat_counter()?
                }
                None => None,
            };
            return Ok(Raw::Heartbeat { sequence, counter });
        }
        if is(s, channel, b"subscriptions") {
            let sequence = need_seq()?;
            let list = match t.events {
                Some(mark) => {
                    self.r.reset(mark);
                    self.subscriptions()?
                }
                None => None,
            };
            return Ok(Raw::Subscriptions { sequence, list });
        }
        Ok(Raw::Other { channel: Some(channel), sequence: t.sequence })
    }

    /// `[{"type","product_id","updates":[...]}, ...]`: one entry per event.
    fn book_events(&mut self, timestamp: Option<Span>, sequence: u64) -> Result<()> {
        self.r.begin_array()?;
        while self.r.next_element()? {
            if self.out.entries.len() >= MAX_EVENTS {
                return Err(self.err(ErrorKind::TooLarge));
            }
            if self.r.peek()? != Json::Object {
                return Err(self.err(ErrorKind::WrongType));
            }
            let at = self.r.offset();
            let (mut kind, mut product, mut updates) = (None, None, None);
            self.r.begin_object()?;
            while let Some(k) = self.r.next_key()? {
                match self.s.get(k.range()).unwrap_or_default() {
                    b"type" => kind = Some(self.r.string()?),
                    b"product_id" => product = Some(self.r.string()?),
                    b"updates" => {
                        if self.r.peek()? != Json::Array {
                            return Err(self.err(ErrorKind::WrongType));
                        }
                        // A repeated key: the last one wins, as for the other keys.
                        if let Some(((start, _), _)) = updates {
                            self.out.levels.truncate(start as usize);
                        }
                        updates = Some(self.sides()?);
                    }
                    _ => self.r.skip()?,
                }
            }
            let s = self.s;
            let kind = match kind {
                Some(k) if is(s, k, b"snapshot") => Kind::Snapshot,
                Some(k) if is(s, k, b"update") => Kind::Update,
                Some(k) => return Err(Error::new(ErrorKind::InvalidValue, k.start as usize)),
                None => return Err(Error::new(ErrorKind::MissingField, at)),
            };
            let product = product.ok_or_else(|| Error::new(ErrorKind::MissingField, at))?;
            let (bids, asks) = updates.ok_or_else(|| Error::new(ErrorKind::MissingField, at))?;
            let mut e = RawEntry::EMPTY;
            e.symbol = product;
            e.bids = bids;
            e.asks = asks;
            e.timestamp = timestamp;
            e.sequence = Some(Sequence { first: sequence, last: sequence, prev: None });
            self.out.entries.push(e);
            self.out.kinds.push(kind);
        }
        Ok(())
    }

    /// An `updates` array in one pass: the sides come interleaved, so bids go into the scratch
    /// as they come and offers (the ask side) are held back and appended after them, each side
    /// in wire order and one run of the scratch.
    fn sides(&mut self) -> Result<((u32, u32), (u32, u32))> {
        let start = self.level_count()?;
        self.out.held.clear();
        self.r.begin_array()?;
        while self.r.next_element()? {
            if self.r.peek()? != Json::Object {
                return Err(self.err(ErrorKind::WrongType));
            }
            let at = self.r.offset();
            let (mut side, mut price, mut qty) = (None, None, None);
            self.r.begin_object()?;
            while let Some(k) = self.r.next_key()? {
                match self.s.get(k.range()).unwrap_or_default() {
                    b"side" => side = Some(self.r.string()?),
                    b"price_level" => price = Some(self.r.string()?),
                    b"new_quantity" => qty = Some(self.r.string()?),
                    _ => self.r.skip()?,
                }
            }
            let s = self.s;
            let is_bid = match side {
                Some(x) if is(s, x, b"bid") => true,
                Some(x) if is(s, x, b"offer") => false,
                Some(x) => return Err(Error::new(ErrorKind::InvalidValue, x.start as usize)),
                None => return Err(Error::new(ErrorKind::MissingField, at)),
            };
            let (Some(price), Some(qty)) = (price, qty) else {
                return Err(Error::new(ErrorKind::MissingField, at));
            };
            let level = RawLevel::read(s, price, qty, false);
            if is_bid { self.out.levels.push(level) } else { self.out.held.push(level) }
        }
        let mid = self.level_count()?;
        self.out.levels.append(&mut self.out.held);
        Ok(((start, mid), (mid, self.level_count()?)))
    }

    /// `[{"current_time","heartbeat_counter"}]`: the counter, when there is one that reads.
    fn heartbeat_counter(&mut self) -> Result<Option<u64>> {
        let mut counter = None;
        self.r.begin_array()?;
        while self.r.next_element()? {
            if self.r.peek()? != Json::Object {
                self.r.skip()?;
                continue;
            }
            self.r.begin_object()?;
            while let Some(k) = self.r.next_key()? {
                if self.s.get(k.range()) == Some(b"heartbeat_counter") {
                    counter = self.count().ok();
                    if counter.is_none() {
                        // A counter that does not read is not a reason to refuse a heartbeat.
                        continue;
                    }
                } else {
                    self.r.skip()?;
                }
            }
        }
        Ok(counter)
    }

    /// `[{"subscriptions":{"level2":["BTC-USD",...],...}}]`: the `level2` products.
    fn subscriptions(&mut self) -> Result<Option<(u32, u32)>> {
        let mut list = None;
        self.r.begin_array()?;
        while self.r.next_element()? {
            if self.r.peek()? != Json::Object {
                self.r.skip()?;
                continue;
            }
            self.r.begin_object()?;
            while let Some(k) = self.r.next_key()? {
                if self.s.get(k.range()) != Some(b"subscriptions") || self.r.peek()? != Json::Object {
                    self.r.skip()?;
                    continue;
                }
                self.r.begin_object()?;
                while let Some(ch) = self.r.next_key()? {
                    let s = self.s;
                    if (is(s, ch, b"level2") || is(s, ch, b"l2_data")) && self.r.peek()? == Json::Array {
                        let start = u32::try_from(self.out.topics.len()).map_err(|_| self.err(ErrorKind::TooLarge))?;
                        self.r.begin_array()?;
                        while self.r.next_element()? {
                            let p = self.r.string()?;
                            self.out.topics.push(p);
                        }
                        let end = u32::try_from(self.out.topics.len()).map_err(|_| self.err(ErrorKind::TooLarge))?;
                        list = Some((start, end));
                    } else {
                        self.r.skip()?;
                    }
                }
            }
        }
        Ok(list)
    }

    fn level_count(&self) -> Result<u32> {
        u32::try_from(self.out.levels.len()).map_err(|_| self.err(ErrorKind::TooLarge))
    }
}

/// Reads an `l2_data` message laid out as Coinbase sends it (`{"channel":"l2_data","client_id":"",
/// "timestamp":"...","sequence_num":N,"events":[{"type":"update","product_id":"BTC-USD","updates":
/// [{"side":"bid","event_time":"...","price_level":"p","new_quantity":"q"}]}]}`), or returns `None`
/// for the walker. Offers are held back and appended after each event's bids, as the walker does.
#[inline]
pub(crate) fn layout(b: &[u8], out: &mut Scratch) -> Option<Raw> {
    let mut c = Cursor::new(b);
    // Two literals: comparing an array longer than 32 bytes is a call to `bcmp`.
    c.lit(b"{\"channel\":\"l2_data\",")?;
    c.lit(b"\"client_id\":\"")?;
    c.string()?;
    c.lit(b",\"timestamp\":\"")?;
    let timestamp = Some(c.string()?);
    c.lit(b",\"sequence_num\":")?;
    let n = c.uint()?;
    let sequence = Some(Sequence { first: n, last: n, prev: None });
    c.lit(b",\"events\":[")?;
    out.clear();
    c.list(|c| {
        // As many events as the walker takes; more are its to refuse.
        if out.entries.len() >= MAX_EVENTS {
            return None;
        }
        c.lit(b"{\"type\":\"")?;
        let kind = c.kind(b"update\"")?;
        c.lit(b",\"product_id\":\"")?;
        let symbol = c.string()?;
        c.lit(b",\"updates\":[")?;
        let start = u32::try_from(out.levels.len()).ok()?;
        out.held.clear();
        c.list(|c| {
            c.lit(b"{\"side\":\"")?;
            let bid = c.lit(b"bid\"").is_some();
            if !bid {
                c.lit(b"offer\"")?;
            }
            c.lit(b",\"event_time\":\"")?;
            c.string()?;
            c.lit(b",\"price_level\":\"")?;
            let (price, price_value) = c.decimal_body()?;
            c.lit(b",\"new_quantity\":\"")?;
            let (qty, qty_value) = c.decimal_body()?;
            c.lit(b"}")?;
            let level = RawLevel { price, qty, price_value, qty_value, republish: false };
            if bid {
                out.levels.push(level);
            } else {
                out.held.push(level);
            }
            Some(())
        })?;
        c.lit(b"]}")?;
        let mid = u32::try_from(out.levels.len()).ok()?;
        out.levels.append(&mut out.held);
        let end = u32::try_from(out.levels.len()).ok()?;
        out.entries.push(RawEntry {
            symbol,
            bids: (start, mid),
            asks: (mid, end),
            timestamp,
            sequence,
            ..RawEntry::EMPTY
        });
        out.kinds.push(kind);
        Some(())
    })?;
    c.lit(b"]}")?;
    c.at_end().then_some(Raw::Book { sequence: n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Parser;

    #[test]
    fn sequence_of_every_kind() {
        let mut p = Parser::new();
        let hb = br#"{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:26.122969572Z","sequence_num":5,"events":[{"current_time":"x","heartbeat_counter":"3049"}]}"#;
        let m = p.parse_coinbase(hb).unwrap();
        assert!(matches!(m, Message::Heartbeat { sequence: 5, counter: Some(3049) }));
        assert_eq!(m.sequence(), Some(5));
    }
}
