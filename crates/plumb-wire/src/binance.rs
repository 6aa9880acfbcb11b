//! Binance spot and USD-M futures diff-depth streams, and their REST depth snapshots.
//!
//! An event is `{"e":"depthUpdate","E","s","U","u","b":[[price,qty]…],"a":[…]}` (USD-M adds `T`
//! and `pu`), raw on `/ws` or wrapped as `{"stream","data"}` on combined streams. There is no
//! snapshot on the stream: a book starts from `GET /api/v3/depth` (USD-M `/fapi/v1/depth`),
//! `{"lastUpdateId","bids","asks"}`, read by [`Parser::parse_snapshot`](crate::Parser::parse_snapshot)
//! into a snapshot frame standing at `lastUpdateId`. In the neutral [`Frame`] an event's `U` and
//! `u` are the sequence's `first` and `last`, and USD-M's `pu` its `prev`.
//!
//! Replies to `SUBSCRIBE`/`UNSUBSCRIBE` (`{"result":null,"id":N}`), errors (`{"code","msg"}`,
//! with the request's `id` when Binance gives it), `serverShutdown` and other streams' events are
//! read too.
//!
//! Example: read a spot event.
//!
//! ```
//! use plumb_wire::{Parser, Kind, binance::Message};
//!
//! let frame = br#"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,
//!     "b":[["0.0024","10"]],"a":[["0.0026","100"]]}"#;
//! let mut parser = Parser::new();
//! let Message::Book(book) = parser.parse_binance(frame)? else { panic!("not a book") };
//! let f = book.frame();
//! assert_eq!((f.symbol, f.kind), ("BNBBTC", Kind::Update));
//! let s = f.sequence.unwrap();
//! assert_eq!((s.first, s.last, s.prev), (157, 160, None));
//! # Ok::<(), plumb_wire::Error>(())
//! ```

use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Frame, Kind, RawEntry, RawLevel, Scratch, Sequence, Src};
use crate::layout::Cursor;
use crate::num::parse_u64;
use crate::reader::{Kind as Json, Mark, Reader, Span};

/// The Binance dialect (spot and USD-M), for [`Dialect`](crate::Dialect)-generic code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Binance;

/// One parsed Binance message. Every `&'a str` borrows from the frame (or from the parser's
/// unescaped copy of it).
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// A `depthUpdate` event.
    Book(Book<'a>),
    /// `{"result":…,"id":N}`: a request succeeded (`result` null for a subscribe).
    Reply {
        /// The request id.
        id: Option<u64>,
    },
    /// `{"code","msg"}`: a request was refused.
    Error {
        /// Binance's code.
        code: Option<&'a str>,
        /// Binance's message.
        message: Option<&'a str>,
        /// The request id, when Binance gives it.
        id: Option<u64>,
    },
    /// `serverShutdown`: the server will close the connection soon.
    Shutdown,
    /// A well-formed event of another stream (trades, tickers), or another message.
    Other {
        /// The event type (`e`) or the stream name, when there is one.
        kind: Option<&'a str>,
    },
}

/// A `depthUpdate` event.
#[derive(Debug, Clone, Copy)]
pub struct Book<'a> {
    /// The combined stream's name (`btcusdt@depth@100ms`), when the event came wrapped.
    pub stream: Option<&'a str>,
    raw: RawEntry,
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> Book<'a> {
    /// The exchange-neutral view: an update, `U`/`u`/`pu` as the sequence, `E` as the time.
    #[must_use]
    #[inline]
    pub fn frame(&self) -> Frame<'a> {
        self.scratch.frame(self.src, &self.raw, Kind::Update)
    }
}

/// What the walker read, opaque outside this crate.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct RawMessage(pub(crate) Raw);

#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw {
    Book { stream: Option<Span> },
    Reply { id: Option<u64> },
    Error { code: Option<Span>, message: Option<Span>, id: Option<u64> },
    Shutdown,
    Other { kind: Option<Span> },
}

pub(crate) fn view<'a>(raw: Raw, src: Src<'a>, scratch: &'a Scratch) -> Message<'a> {
    match raw {
        Raw::Book { stream } => {
            let raw = scratch.entries.first().copied().unwrap_or(RawEntry::EMPTY);
            Message::Book(Book { stream: stream.map(|s| src.text(s)), raw, src, scratch })
        }
        Raw::Reply { id } => Message::Reply { id },
        Raw::Error { code, message, id } => {
            Message::Error { code: code.map(|s| src.text(s)), message: message.map(|s| src.text(s)), id }
        }
        Raw::Shutdown => Message::Shutdown,
        Raw::Other { kind } => Message::Other { kind: kind.map(|s| src.text(s)) },
    }
}

/// What one object (the message, or a combined stream's `data`) held.
#[derive(Default)]
struct Obj {
    event: Option<Span>,
    stream: Option<Span>,
    data: Option<Mark>,
    result: bool,
    id: Option<u64>,
    code: Option<Span>,
    msg: Option<Span>,
    book: bool,
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
    let top = w.object(true)?;
    let s = w.s;
    if let Some(mark) = top.data {
        // A combined stream: `{"stream","data":{…}}`.
        w.r.reset(mark);
        if w.r.peek()? != Json::Object {
            return Ok(Raw::Other { kind: top.stream });
        }
        let inner = w.object(false)?;
        return w.classify(&inner, top.stream);
    }
    if top.stream.is_some_and(|st| is(s, st, b"!serverShutdown")) {
        return Ok(Raw::Shutdown);
    }
    w.classify(&top, None)
}

/// The body of `GET /api/v3/depth` or `/fapi/v1/depth`: `{"lastUpdateId","bids","asks"}` (USD-M
/// adds `E` and `T`). An error body (`{"code","msg"}`) is [`ErrorKind::Refused`]; a book without
/// `lastUpdateId` cannot be bridged and is [`ErrorKind::MissingField`].
pub(crate) fn walk_rest<R: Reader>(r: R, s: &[u8], out: &mut Scratch) -> Result<()> {
    out.clear();
    let mut w = Walk { r, s, out };
    if w.r.peek()? != Json::Object {
        return Err(w.err(ErrorKind::UnknownMessage));
    }
    let mut e = RawEntry::EMPTY;
    let (mut id, mut code) = (None, None);
    w.r.begin_object()?;
    while let Some(k) = w.r.next_key()? {
        match s.get(k.range()).unwrap_or_default() {
            b"lastUpdateId" => id = Some(w.u64_field()?),
            b"bids" => e.bids = w.levels()?,
            b"asks" => e.asks = w.levels()?,
            b"E" => e.time_ms = Some(w.u64_field()?),
            b"code" => code = Some(w.scalar()?),
            _ => w.r.skip()?,
        }
    }
    w.r.finish()?;
    if let Some(c) = code {
        return Err(Error::new(ErrorKind::Refused, c.start as usize));
    }
    let id = id.ok_or_else(|| Error::new(ErrorKind::MissingField, 0))?;
    e.sequence = Some(Sequence { first: id, last: id, prev: None });
    w.out.entries.push(e);
    Ok(())
}

#[inline]
fn is(s: &[u8], span: Span, lit: &[u8]) -> bool {
    s.get(span.range()) == Some(lit)
}

impl<R: Reader> Walk<'_, R> {
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.r.offset())
    }

    fn u64_field(&mut self) -> Result<u64> {
        let at = self.r.offset();
        let span = self.r.number()?;
        parse_u64(&self.s[span.range()]).ok_or_else(|| Error::new(ErrorKind::InvalidValue, at))
    }

    /// A number or a string, as its text.
    fn scalar(&mut self) -> Result<Span> {
        match self.r.peek()? {
            Json::Number => self.r.number(),
            Json::String => self.r.string(),
            _ => Err(self.err(ErrorKind::WrongType)),
        }
    }

    /// An id: a non-negative integer (plumb's requests use those); anything else reads as none.
    fn id(&mut self) -> Result<Option<u64>> {
        match self.r.peek()? {
            Json::Number => {
                let span = self.r.number()?;
                Ok(parse_u64(&self.s[span.range()]))
            }
            _ => self.r.skip().map(|()| None),
        }
    }

    /// One object: a message, or a combined stream's `data`. The book fields are read into a
    /// scratch entry as they come, in any key order; `top` reads the wrapper's keys too.
    fn object(&mut self, top: bool) -> Result<Obj> {
        let mut o = Obj::default();
        let mut e = RawEntry::EMPTY;
        let (mut first, mut last, mut prev, mut symbol) = (None, None, None, false);
        let (mut bids_at, mut asks_at) = (None, None);
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            match self.s.get(k.range()).unwrap_or_default() {
                b"e" => o.event = Some(self.r.string()?),
                b"s" => {
                    e.symbol = self.r.string()?;
                    symbol = true;
                }
                b"U" => first = Some(self.u64_field()?),
                b"u" => last = Some(self.u64_field()?),
                b"pu" => {
                    // USD-M; -1 (no previous event) reads as none.
                    prev = match self.r.peek()? {
                        Json::Number => {
                            let span = self.r.number()?;
                            parse_u64(&self.s[span.range()])
                        }
                        _ => return Err(self.err(ErrorKind::WrongType)),
                    };
                }
                b"E" => e.time_ms = Some(self.u64_field()?),
                // Other events use these keys for other things (`aggTrade`'s `a` is an id): the
                // levels are read in place once the event type is known to be a book's, else
                // marked and come back to.
                b"b" | b"a" => {
                    let bid = self.s.get(k.range()) == Some(b"b");
                    o.book = true;
                    if o.event.is_some_and(|ev| is(self.s, ev, b"depthUpdate")) {
                        let levels = self.levels()?;
                        if bid { e.bids = levels } else { e.asks = levels }
                    } else {
                        let m = self.r.mark();
                        self.r.skip()?;
                        if bid { bids_at = Some(m) } else { asks_at = Some(m) }
                    }
                }
                b"stream" if top => o.stream = Some(self.r.string()?),
                b"data" if top => {
                    o.data = Some(self.r.mark());
                    self.r.skip()?;
                }
                b"result" => {
                    o.result = true;
                    self.r.skip()?;
                }
                b"id" => o.id = self.id()?,
                b"code" => o.code = Some(self.scalar()?),
                b"msg" => {
                    o.msg = match self.r.peek()? {
                        Json::String => Some(self.r.string()?),
                        _ => {
                            self.r.skip()?;
                            None
                        }
                    }
                }
                _ => self.r.skip()?,
            }
        }
        if top {
            self.r.finish()?;
        }
        if o.event.is_some_and(|ev| is(self.s, ev, b"depthUpdate")) {
            let (Some(first), Some(last), true) = (first, last, symbol) else {
                return Err(Error::new(ErrorKind::MissingField, 0));
            };
            if first > last {
                return Err(Error::new(ErrorKind::InvalidValue, 0));
            }
            for (at, bid) in [(bids_at, true), (asks_at, false)] {
                if let Some(m) = at {
                    self.r.reset(m);
                    let levels = self.levels()?;
                    if bid { e.bids = levels } else { e.asks = levels }
                }
            }
            e.sequence = Some(Sequence { first, last, prev });
            self.out.entries.clear();
            self.out.entries.push(e);
        }
        Ok(o)
    }

    fn classify(&mut self, o: &Obj, stream: Option<Span>) -> Result<Raw> {
        let s = self.s;
        if let Some(ev) = o.event {
            if is(s, ev, b"depthUpdate") {
                return Ok(Raw::Book { stream });
            }
            if is(s, ev, b"serverShutdown") {
                return Ok(Raw::Shutdown);
            }
            return Ok(Raw::Other { kind: Some(ev) });
        }
        if o.code.is_some() {
            return Ok(Raw::Error { code: o.code, message: o.msg, id: o.id });
        }
        if o.result {
            return Ok(Raw::Reply { id: o.id });
        }
        if o.book {
            // Levels with no event type: not a message plumb can place.
            return Err(Error::new(ErrorKind::MissingField, 0));
        }
        Ok(Raw::Other { kind: stream })
    }

    /// `[[price, qty], ...]`, both strings; further elements of a level are skipped.
    fn levels(&mut self) -> Result<(u32, u32)> {
        let start = self.level_count()?;
        self.r.begin_array()?;
        while self.r.next_element()? {
            self.r.begin_array()?;
            let mut fields = [Span::default(); 2];
            let mut n = 0;
            while self.r.next_element()? {
                if n < 2 {
                    fields[n] = self.r.string()?;
                } else {
                    self.r.skip()?;
                }
                n += 1;
            }
            if n < 2 {
                return Err(self.err(ErrorKind::MissingField));
            }
            self.out.levels.push(RawLevel::read(self.s, fields[0], fields[1], false));
        }
        Ok((start, self.level_count()?))
    }

    fn level_count(&self) -> Result<u32> {
        u32::try_from(self.out.levels.len()).map_err(|_| self.err(ErrorKind::TooLarge))
    }
}

/// Reads a raw-stream `depthUpdate` event laid out as Binance sends it (`{"e":"depthUpdate","E":N,
/// "T":N,"s":"BTCUSDT","U":N,"u":N,"pu":N,"b":[["p","q"]],"a":[]}`, `T` and `pu` on USD-M only),
/// or returns `None` for the walker.
#[inline]
pub(crate) fn layout(b: &[u8], out: &mut Scratch) -> Option<Raw> {
    let mut c = Cursor::new(b);
    c.lit(b"{\"e\":\"depthUpdate\",\"E\":")?;
    let time = c.uint()?;
    if c.lit(b",\"T\":").is_some() {
        c.uint()?;
    }
    c.lit(b",\"s\":\"")?;
    let symbol = c.string()?;
    c.lit(b",\"U\":")?;
    let first = c.uint()?;
    c.lit(b",\"u\":")?;
    let last = c.uint()?;
    // USD-M's `-1` (no previous event) and `U` above `u` are the walker's to read or refuse.
    let prev = if c.lit(b",\"pu\":").is_some() { Some(c.uint()?) } else { None };
    if first > last {
        return None;
    }
    let (bids, asks) = c.b_a_levels(out)?;
    c.lit(b"}")?;
    if !c.at_end() {
        return None;
    }
    let sequence = Some(Sequence { first, last, prev });
    out.entries.push(RawEntry { symbol, bids, asks, time_ms: Some(time), sequence, ..RawEntry::EMPTY });
    Some(Raw::Book { stream: None })
}
