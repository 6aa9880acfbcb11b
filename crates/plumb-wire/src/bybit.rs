//! Bybit v5 public websocket messages (`/v5/public/spot`, `/linear`, `/inverse`), and the legacy
//! spot v3 book frame for recognition.
//!
//! Book topics are `orderbook.{depth}.{symbol}`. A book message is
//! `{"topic","type":"snapshot"|"delta","ts","data":{"s","b":[[price,size]…],"a":[…],"u","seq"},"cts"}`
//! with prices and sizes as strings; keys come in different orders per category, so nothing here
//! relies on key order. `u` is the update id that proves a book (see `plumb-book`'s Bybit rule);
//! `seq` is a cross sequence that is not contiguous and is kept only for information.
//!
//! Replies (`{"success","ret_msg","conn_id","req_id","op"}`), the option-style `COMMAND_RESP` with
//! `failTopics`, and pongs in each documented shape are read too. The legacy spot v3 frame
//! (`orderbook.40.{symbol}`, `data.t`, no `u`) is a [`Book`] with no sequence: each one is a
//! snapshot that replaces the book.
//!
//! Example: read a delta.
//!
//! ```
//! use plumb_wire::{Parser, Kind, bybit::Message};
//!
//! let frame = br#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,
//!     "data":{"s":"BTCUSDT","b":[["30247.20","30.028"]],"a":[["30248.70","0"]],
//!     "u":177400507,"seq":66544703342},"cts":1687940967464}"#;
//! let mut parser = Parser::new();
//! let Message::Book(book) = parser.parse_bybit(frame)? else { panic!("not a book") };
//! assert_eq!(book.depth, 50);
//! let f = book.frame();
//! assert_eq!((f.symbol, f.kind), ("BTCUSDT", Kind::Update));
//! assert_eq!(f.sequence.map(|s| s.last), Some(177400507));
//! let ask = f.asks.clone().next().unwrap();
//! assert_eq!((ask.price, ask.qty), ("30248.70", "0"));
//! # Ok::<(), plumb_wire::Error>(())
//! ```

use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Frame, Kind, RawEntry, RawLevel, Scratch, Sequence, Src};
use crate::layout::Cursor;
use crate::num::parse_u64;
use crate::reader::{Kind as Json, Mark, Reader, Span};

/// The Bybit v5 dialect, for [`Dialect`](crate::Dialect)-generic code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bybit;

/// One parsed Bybit message. Every `&'a str` borrows from the frame (or from the parser's
/// unescaped copy of it).
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// An `orderbook.{depth}.{symbol}` snapshot or delta.
    Book(Book<'a>),
    /// A pong, in any of its documented shapes.
    Pong,
    /// A reply to a subscribe or unsubscribe request.
    Reply(Reply<'a>),
    /// A well-formed message of a topic or operation that plumb does not read.
    Other {
        /// The topic or `op`, when the message has one.
        topic: Option<&'a str>,
    },
}

/// A book message.
#[derive(Debug, Clone, Copy)]
pub struct Book<'a> {
    /// The depth the topic names (`orderbook.50.BTCUSDT` -> 50).
    pub depth: u16,
    /// The cross sequence `seq`: monotonic, not contiguous; never used for gaps.
    pub cross_seq: Option<u64>,
    /// A legacy spot v3 frame (no `u`): every one replaces the book.
    pub legacy: bool,
    kind: Kind,
    raw: RawEntry,
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> Book<'a> {
    /// The exchange-neutral view, as the book applies it: `u` as the sequence (`first == last`),
    /// no checksum, `ts` as the time.
    #[must_use]
    #[inline]
    pub fn frame(&self) -> Frame<'a> {
        self.scratch.frame(self.src, &self.raw, self.kind)
    }
}

/// A reply to a request.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// `subscribe`, `unsubscribe`, or another operation; `None` for `COMMAND_RESP` replies,
    /// which are subscribe replies.
    pub op: Option<&'a str>,
    /// Whether the request succeeded as a whole.
    pub success: bool,
    /// Bybit's message (`ret_msg`), often naming the refused topic.
    pub message: Option<&'a str>,
    /// The request id echoed back (a string on Bybit).
    pub req_id: Option<&'a str>,
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> Reply<'a> {
    /// The topics an option-style `COMMAND_RESP` lists as failed.
    pub fn fail_topics(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let src = self.src;
        self.scratch.topics.iter().map(move |t| src.text(*t))
    }
}

/// What the walker read, opaque outside this crate (it names the dialect's message shape).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct RawMessage(pub(crate) Raw);

#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw {
    Book { depth: u16, cross_seq: Option<u64>, legacy: bool, kind: Kind },
    Pong,
    Reply { op: Option<Span>, success: bool, message: Option<Span>, req_id: Option<Span> },
    Other { topic: Option<Span> },
}

pub(crate) fn view<'a>(raw: Raw, src: Src<'a>, scratch: &'a Scratch) -> Message<'a> {
    match raw {
        Raw::Book { depth, cross_seq, legacy, kind } => {
            let raw = scratch.entries.first().copied().unwrap_or(RawEntry::EMPTY);
            Message::Book(Book { depth, cross_seq, legacy, kind, raw, src, scratch })
        }
        Raw::Pong => Message::Pong,
        Raw::Reply { op, success, message, req_id } => Message::Reply(Reply {
            op: op.map(|s| src.text(s)),
            success,
            message: message.map(|s| src.text(s)),
            req_id: req_id.map(|s| src.text(s)),
            src,
            scratch,
        }),
        Raw::Other { topic } => Message::Other { topic: topic.map(|s| src.text(s)) },
    }
}

/// `orderbook.50.BTCUSDT` -> (50, the symbol's span), or `None` for another topic.
fn book_topic(s: &[u8], topic: Span) -> Option<(Option<u16>, Span)> {
    let t = s.get(topic.range())?;
    let rest = t.strip_prefix(b"orderbook.")?;
    let dot = rest.iter().position(|&c| c == b'.');
    let depth = dot.and_then(|d| parse_u64(&rest[..d])).and_then(|d| u16::try_from(d).ok()).filter(|&d| d > 0);
    let start = topic.start as usize + b"orderbook.".len() + dot.map_or(0, |d| d + 1);
    Some((depth, Span::new(start, topic.end as usize)))
}

#[derive(Default)]
struct Top {
    topic: Option<Span>,
    kind: Option<Span>,
    op: Option<Span>,
    ts: Option<u64>,
    data: Option<Mark>,
    data_done: bool,
    success: Option<bool>,
    ret_msg: Option<Span>,
    req_id: Option<Span>,
    command_resp: bool,
}

struct Walk<'s, R> {
    r: R,
    s: &'s [u8],
    out: &'s mut Scratch,
    cross_seq: Option<u64>,
}

pub(crate) fn walk<R: Reader>(r: R, s: &[u8], out: &mut Scratch) -> Result<Raw> {
    out.clear();
    let mut w = Walk { r, s, out, cross_seq: None };
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

    fn u64_field(&mut self) -> Result<u64> {
        let at = self.r.offset();
        let span = self.r.number()?;
        parse_u64(&self.s[span.range()]).ok_or_else(|| Error::new(ErrorKind::InvalidValue, at))
    }

    /// A string or a number, as its text (`req_id` is a string, but be lenient), or null.
    fn opt_scalar(&mut self) -> Result<Option<Span>> {
        match self.r.peek()? {
            Json::Null => self.r.null().map(|()| None),
            Json::Number => self.r.number().map(Some),
            _ => self.r.string().map(Some),
        }
    }

    fn object(&mut self) -> Result<Raw> {
        let mut t = Top::default();
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            let s = self.s;
            match s.get(k.range()).unwrap_or_default() {
                b"topic" => t.topic = Some(self.r.string()?),
                b"type" => {
                    let span = self.r.string()?;
                    t.command_resp = is(s, span, b"COMMAND_RESP");
                    t.kind = Some(span);
                }
                b"op" => t.op = Some(self.r.string()?),
                b"ts" => t.ts = Some(self.u64_field()?),
                b"data" => {
                    // The book data is read in place when the topic came first (v5 does that);
                    // otherwise it is come back to once the whole object is read.
                    if t.topic.is_some_and(|tp| book_topic(s, tp).is_some()) && self.r.peek()? == Json::Object {
                        self.book_data()?;
                        t.data_done = true;
                    } else {
                        t.data = Some(self.r.mark());
                        self.r.skip()?;
                    }
                }
                b"success" => t.success = Some(self.r.boolean()?),
                b"ret_msg" => t.ret_msg = self.opt_scalar()?,
                b"req_id" => t.req_id = self.opt_scalar()?,
                _ => self.r.skip()?,
            }
        }
        self.r.finish()?;
        let s = self.s;
        if let Some(topic) = t.topic {
            let Some((depth, symbol)) = book_topic(s, topic) else {
                return Ok(Raw::Other { topic: Some(topic) });
            };
            let depth = depth.ok_or_else(|| Error::new(ErrorKind::InvalidValue, topic.start as usize))?;
            let kind = match t.kind {
                Some(k) if is(s, k, b"snapshot") => Kind::Snapshot,
                Some(k) if is(s, k, b"delta") => Kind::Update,
                Some(k) => return Err(Error::new(ErrorKind::InvalidValue, k.start as usize)),
                None => return Err(Error::new(ErrorKind::MissingField, 0)),
            };
            if !t.data_done {
                let mark = t.data.ok_or_else(|| Error::new(ErrorKind::MissingField, 0))?;
                self.r.reset(mark);
                if self.r.peek()? != Json::Object {
                    return Err(self.err(ErrorKind::WrongType));
                }
                self.book_data()?;
            }
            let Some(e) = self.out.entries.first_mut() else {
                return Err(Error::new(ErrorKind::MissingField, 0));
            };
            // The symbol of the data must be the topic's: a book must never be fed another's
            // levels.
            if s.get(e.symbol.range()) != s.get(symbol.range()) {
                return Err(Error::new(ErrorKind::InvalidValue, e.symbol.start as usize));
            }
            if e.time_ms.is_none() {
                e.time_ms = t.ts;
            }
            let legacy = e.sequence.is_none();
            // Only snapshots may come without an update id (the legacy v3 frames); a delta
            // without one could not be proved.
            if legacy && kind == Kind::Update {
                return Err(Error::new(ErrorKind::MissingField, 0));
            }
            let cross_seq = self.cross_seq;
            return Ok(Raw::Book { depth, cross_seq, legacy, kind });
        }
        if let Some(op) = t.op {
            let op_text = s.get(op.range()).unwrap_or_default();
            // Pongs: spot and linear answer `op:"ping"` with `ret_msg:"pong"`; option and the
            // legacy API send `op:"pong"`.
            if op_text == b"pong" || (op_text == b"ping" && t.ret_msg.is_some_and(|m| is(s, m, b"pong"))) {
                return Ok(Raw::Pong);
            }
            if let Some(success) = t.success {
                return Ok(Raw::Reply { op: Some(op), success, message: t.ret_msg, req_id: t.req_id });
            }
            return Ok(Raw::Other { topic: Some(op) });
        }
        if t.command_resp {
            if let Some(mark) = t.data {
                self.r.reset(mark);
                self.fail_topics()?;
            }
            let success = t.success.unwrap_or(true) && self.out.topics.is_empty();
            return Ok(Raw::Reply { op: None, success, message: t.ret_msg, req_id: t.req_id });
        }
        if let Some(success) = t.success {
            return Ok(Raw::Reply { op: None, success, message: t.ret_msg, req_id: t.req_id });
        }
        Err(Error::new(ErrorKind::UnknownMessage, 0))
    }

    /// `{"s","b","a","u","seq"}` (v5) or `{"s","t","b","a"}` (legacy v3).
    fn book_data(&mut self) -> Result<()> {
        let mut e = RawEntry::EMPTY;
        let mut have_symbol = false;
        self.cross_seq = None;
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            match self.s.get(k.range()).unwrap_or_default() {
                b"s" => {
                    e.symbol = self.r.string()?;
                    have_symbol = true;
                }
                b"b" => e.bids = self.levels()?,
                b"a" => e.asks = self.levels()?,
                b"u" => {
                    let u = self.u64_field()?;
                    e.sequence = Some(Sequence { first: u, last: u, prev: None });
                }
                b"seq" => self.cross_seq = Some(self.u64_field()?),
                b"t" => e.time_ms = Some(self.u64_field()?),
                _ => self.r.skip()?,
            }
        }
        if !have_symbol {
            return Err(self.err(ErrorKind::MissingField));
        }
        self.out.entries.push(e);
        Ok(())
    }

    /// `[[price, size], ...]`, both strings; further elements of a level are skipped.
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

    /// `{"failTopics":[...],"successTopics":[...]}`.
    fn fail_topics(&mut self) -> Result<()> {
        if self.r.peek()? != Json::Object {
            return self.r.skip();
        }
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            if !is(self.s, k, b"failTopics") || self.r.peek()? != Json::Array {
                self.r.skip()?;
                continue;
            }
            self.r.begin_array()?;
            while self.r.next_element()? {
                let t = self.r.string()?;
                self.out.topics.push(t);
            }
        }
        Ok(())
    }
}

/// Reads a v5 book frame laid out as Bybit sends it (`{"topic":"orderbook.50.BTCUSDT","type":"delta",
/// "ts":N,"data":{"s":"BTCUSDT","b":[["p","q"]],"a":[],"u":N,"seq":N},"cts":N}`), or returns `None`
/// for the walker.
#[inline]
pub(crate) fn layout(b: &[u8], out: &mut Scratch) -> Option<Raw> {
    let mut c = Cursor::new(b);
    c.lit(b"{\"topic\":\"orderbook.")?;
    // The depth is followed by a dot, which `uint` would take for a fraction.
    let depth = c.digit_text()?;
    let depth = u16::try_from(parse_u64(b.get(depth.range())?)?).ok().filter(|&d| d > 0)?;
    c.lit(b".")?;
    let topic_symbol = c.string()?;
    c.lit(b",\"type\":\"")?;
    let kind = c.kind(b"delta\"")?;
    c.lit(b",\"ts\":")?;
    let ts = c.uint()?;
    c.lit(b",\"data\":{\"s\":\"")?;
    let symbol = c.string()?;
    // Another symbol's levels are the walker's to refuse.
    if !c.same(symbol, topic_symbol)? {
        return None;
    }
    let (bids, asks) = c.b_a_levels(out)?;
    c.lit(b",\"u\":")?;
    let u = c.uint()?;
    c.lit(b",\"seq\":")?;
    let cross_seq = c.uint()?;
    c.lit(b"},\"cts\":")?;
    c.uint()?;
    c.lit(b"}")?;
    if !c.at_end() {
        return None;
    }
    let sequence = Some(Sequence { first: u, last: u, prev: None });
    out.entries.push(RawEntry { symbol, bids, asks, time_ms: Some(ts), sequence, ..RawEntry::EMPTY });
    Some(Raw::Book { depth, cross_seq: Some(cross_seq), legacy: false, kind })
}
