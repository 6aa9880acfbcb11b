//! OKX v5 public websocket messages (`/ws/v5/public`): the order-book channels, event replies,
//! notices and the text `pong`.
//!
//! A book message is `{"arg":{"channel","instId"},"action":"snapshot"|"update","data":[{"asks":
//! [[px,sz,"0",orders]…],"bids":[…],"ts":"ms","checksum":N,"prevSeqId":N,"seqId":N}]}` with prices
//! and sizes as strings. `books` (and the login-only `books-l2-tbt`, `books50-l2-tbt`,
//! `books-elp`) send a snapshot then updates linked by `prevSeqId`; `books5` and `bbo-tbt` send a
//! whole book on every push with no `action` and no `prevSeqId`: each push is a [`Kind::Snapshot`].
//!
//! In the neutral [`Frame`], `seqId` is the sequence's `first` and `last`, and `prevSeqId` its
//! `prev` (`None` for the snapshot's -1). Frames recorded before OKX numbered its books carry
//! neither, and their sequence is `None`. OKX retired its checksum in 2026: the field is now always
//! 0, which is read as no checksum at all (`None`); a nonzero checksum (older recordings) is kept
//! as the bit pattern of OKX's signed CRC32.
//!
//! Example: read an update.
//!
//! ```
//! use plumb_wire::{Parser, Kind, okx::Message};
//!
//! let frame = br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{
//!     "asks":[["8476.98","415","0","13"]],"bids":[["8476.97","0","0","0"]],"ts":"1597026383085",
//!     "checksum":0,"prevSeqId":123456,"seqId":123457}]}"#;
//! let mut parser = Parser::new();
//! let Message::Book(book) = parser.parse_okx(frame)? else { panic!("not a book") };
//! let f = book.frame();
//! assert_eq!((f.symbol, f.kind, f.checksum), ("BTC-USDT", Kind::Update, None));
//! let seq = f.sequence.unwrap();
//! assert_eq!((seq.prev, seq.last), (Some(123456), 123457));
//! # Ok::<(), plumb_wire::Error>(())
//! ```

use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Frame, Kind, RawEntry, RawLevel, Scratch, Sequence, Src};
use crate::layout::Cursor;
use crate::num::parse_u64;
use crate::reader::{Kind as Json, Mark, Reader, Span};

/// The OKX v5 dialect, for [`Dialect`](crate::Dialect)-generic code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Okx;

/// An OKX order-book channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `books`: a 400-level snapshot, then updates every 100 ms.
    Books,
    /// `books5`: the whole top 5 on every push.
    Books5,
    /// `bbo-tbt`: the whole top 1 on every push.
    BboTbt,
    /// `books-l2-tbt` (login only): 400 levels, tick by tick.
    BooksL2Tbt,
    /// `books50-l2-tbt` (login only): 50 levels, tick by tick.
    Books50L2Tbt,
    /// `books-elp`: the book of enhanced-liquidity orders only.
    BooksElp,
}

impl Channel {
    /// The channel's name on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Books => "books",
            Self::Books5 => "books5",
            Self::BboTbt => "bbo-tbt",
            Self::BooksL2Tbt => "books-l2-tbt",
            Self::Books50L2Tbt => "books50-l2-tbt",
            Self::BooksElp => "books-elp",
        }
    }

    /// The channel of a name, if it is a book channel.
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"books" => Self::Books,
            b"books5" => Self::Books5,
            b"bbo-tbt" => Self::BboTbt,
            b"books-l2-tbt" => Self::BooksL2Tbt,
            b"books50-l2-tbt" => Self::Books50L2Tbt,
            b"books-elp" => Self::BooksElp,
            _ => return None,
        })
    }

    /// The most levels a side of this channel's book holds.
    #[must_use]
    pub fn depth(self) -> u16 {
        match self {
            Self::Books | Self::BooksL2Tbt | Self::BooksElp => 400,
            Self::Books50L2Tbt => 50,
            Self::Books5 => 5,
            Self::BboTbt => 1,
        }
    }

    /// Whether every push is a whole book (no `action`, no `prevSeqId`).
    #[must_use]
    pub fn is_whole(self) -> bool {
        matches!(self, Self::Books5 | Self::BboTbt)
    }
}

/// One parsed OKX message. Every `&'a str` borrows from the frame (or from the parser's
/// unescaped copy of it).
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// A book push of one instrument.
    Book(Book<'a>),
    /// The text frame `pong`, OKX's answer to `ping`.
    Pong,
    /// An event answering a request: `subscribe`, `unsubscribe` or `error`.
    Reply(Reply<'a>),
    /// `{"event":"notice"}`: the connection will be closed soon for a service upgrade.
    Notice {
        /// OKX's code.
        code: Option<&'a str>,
        /// OKX's message.
        message: Option<&'a str>,
    },
    /// A well-formed message of a channel or event that plumb does not read.
    Other {
        /// The channel or event, when the message has one.
        name: Option<&'a str>,
    },
}

/// A book message.
#[derive(Debug, Clone, Copy)]
pub struct Book<'a> {
    /// The channel it came on.
    pub channel: Channel,
    kind: Kind,
    raw: RawEntry,
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> Book<'a> {
    /// The exchange-neutral view, as the book applies it.
    #[must_use]
    #[inline]
    pub fn frame(&self) -> Frame<'a> {
        self.scratch.frame(self.src, &self.raw, self.kind)
    }
}

/// An event answering a request.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// `subscribe`, `unsubscribe` or `error` (or another event name).
    pub event: &'a str,
    /// The request's `id`, echoed back.
    pub id: Option<&'a str>,
    /// The channel of the `arg`, when there is one.
    pub channel: Option<&'a str>,
    /// The instrument of the `arg`, when there is one.
    pub inst_id: Option<&'a str>,
    /// OKX's error code (`"60012"`), for errors.
    pub code: Option<&'a str>,
    /// OKX's message, for errors.
    pub message: Option<&'a str>,
}

/// What the walker read, opaque outside this crate (it names the dialect's message shape).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct RawMessage(pub(crate) Raw);

#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw {
    Book {
        channel: Channel,
        kind: Kind,
    },
    Pong,
    Reply {
        event: Span,
        id: Option<Span>,
        channel: Option<Span>,
        inst_id: Option<Span>,
        code: Option<Span>,
        msg: Option<Span>,
    },
    Notice {
        code: Option<Span>,
        msg: Option<Span>,
    },
    Other {
        name: Option<Span>,
    },
}

pub(crate) fn view<'a>(raw: Raw, src: Src<'a>, scratch: &'a Scratch) -> Message<'a> {
    let text = |s: Option<Span>| s.map(|s| src.text(s));
    match raw {
        Raw::Book { channel, kind } => {
            let raw = scratch.entries.first().copied().unwrap_or(RawEntry::EMPTY);
            Message::Book(Book { channel, kind, raw, src, scratch })
        }
        Raw::Pong => Message::Pong,
        Raw::Reply { event, id, channel, inst_id, code, msg } => Message::Reply(Reply {
            event: src.text(event),
            id: text(id),
            channel: text(channel),
            inst_id: text(inst_id),
            code: text(code),
            message: text(msg),
        }),
        Raw::Notice { code, msg } => Message::Notice { code: text(code), message: text(msg) },
        Raw::Other { name } => Message::Other { name: text(name) },
    }
}

#[derive(Default)]
struct Top {
    channel: Option<Span>,
    inst_id: Option<Span>,
    action: Option<Span>,
    event: Option<Span>,
    id: Option<Span>,
    code: Option<Span>,
    msg: Option<Span>,
    data: Option<Mark>,
    data_done: bool,
}

struct Walk<'s, R> {
    r: R,
    s: &'s [u8],
    out: &'s mut Scratch,
}

pub(crate) fn walk<R: Reader>(r: R, s: &[u8], out: &mut Scratch) -> Result<Raw> {
    out.clear();
    // OKX answers the text `ping` with the text `pong`, not JSON.
    if s.trim_ascii() == b"pong" {
        return Ok(Raw::Pong);
    }
    let mut w = Walk { r, s, out };
    if w.r.peek()? != Json::Object {
        return Err(Error::new(ErrorKind::UnknownMessage, w.r.offset()));
    }
    w.object()
}

/// The body of `GET /api/v5/market/books`: `{"code":"0","msg":"","data":[{"asks","bids","ts",
/// "seqId"}]}`. A nonzero `code` is [`ErrorKind::Refused`]; a book without `seqId` cannot be
/// bridged to the stream and is [`ErrorKind::MissingField`].
pub(crate) fn walk_rest<R: Reader>(r: R, s: &[u8], out: &mut Scratch) -> Result<()> {
    out.clear();
    let mut w = Walk { r, s, out };
    if w.r.peek()? != Json::Object {
        return Err(w.err(ErrorKind::UnknownMessage));
    }
    let mut code = None;
    let mut data = false;
    w.r.begin_object()?;
    while let Some(k) = w.r.next_key()? {
        match s.get(k.range()).unwrap_or_default() {
            b"code" => code = w.opt_scalar()?,
            // An error's `data` is empty: nothing to read once the code refuses.
            b"data" if code.is_some_and(|c| !is(s, c, b"0")) => w.r.skip()?,
            b"data" => {
                w.book_data()?;
                data = true;
            }
            _ => w.r.skip()?,
        }
    }
    w.r.finish()?;
    if let Some(c) = code
        && !is(s, c, b"0")
    {
        return Err(Error::new(ErrorKind::Refused, c.start as usize));
    }
    let e = w.out.entries.first_mut().filter(|_| data).ok_or_else(|| Error::new(ErrorKind::MissingField, 0))?;
    let Some(seq) = e.sequence.as_mut() else {
        return Err(Error::new(ErrorKind::MissingField, 0));
    };
    // The snapshot links to nothing; the session bridges the stream to its id.
    seq.prev = None;
    e.checksum = None;
    e.symbol = Span::default();
    Ok(())
}

#[inline]
fn is(s: &[u8], span: Span, lit: &[u8]) -> bool {
    s.get(span.range()) == Some(lit)
}

/// A JSON integer's text as an `i64` (`-1`, `123457`), or `None` when it is not one that fits.
fn parse_i64(b: &[u8]) -> Option<i64> {
    match b.split_first() {
        Some((b'-', digits)) => parse_u64(digits).and_then(|v| i64::try_from(v).ok()).map(i64::wrapping_neg),
        _ => parse_u64(b).and_then(|v| i64::try_from(v).ok()),
    }
}

impl<R: Reader> Walk<'_, R> {
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.r.offset())
    }

    fn i64_field(&mut self) -> Result<i64> {
        let at = self.r.offset();
        let span = self.r.number()?;
        parse_i64(&self.s[span.range()]).ok_or_else(|| Error::new(ErrorKind::InvalidValue, at))
    }

    /// A string or a number, as its text, or null.
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
                b"arg" => self.arg(&mut t)?,
                b"action" => t.action = Some(self.r.string()?),
                b"event" => t.event = Some(self.r.string()?),
                b"id" => t.id = self.opt_scalar()?,
                b"code" => t.code = self.opt_scalar()?,
                b"msg" => t.msg = self.opt_scalar()?,
                b"data" => {
                    // Read in place when the arg came first and names a book channel (OKX sends
                    // it first); otherwise come back once the whole object is read.
                    let book = t.channel.and_then(|c| Channel::from_name(s.get(c.range()).unwrap_or_default()));
                    if let (Some(_), Some(_)) = (book, t.inst_id) {
                        self.book_data()?;
                        t.data_done = true;
                    } else {
                        t.data = Some(self.r.mark());
                        self.r.skip()?;
                    }
                }
                _ => self.r.skip()?,
            }
        }
        self.r.finish()?;
        let s = self.s;
        if let Some(event) = t.event {
            if is(s, event, b"notice") {
                return Ok(Raw::Notice { code: t.code, msg: t.msg });
            }
            if is(s, event, b"subscribe") || is(s, event, b"unsubscribe") || is(s, event, b"error") {
                return Ok(Raw::Reply {
                    event,
                    id: t.id,
                    channel: t.channel,
                    inst_id: t.inst_id,
                    code: t.code,
                    msg: t.msg,
                });
            }
            return Ok(Raw::Other { name: Some(event) });
        }
        let Some(channel_span) = t.channel else {
            return Err(Error::new(ErrorKind::UnknownMessage, 0));
        };
        let Some(channel) = Channel::from_name(s.get(channel_span.range()).unwrap_or_default()) else {
            return Ok(Raw::Other { name: Some(channel_span) });
        };
        let inst_id = t.inst_id.ok_or_else(|| Error::new(ErrorKind::MissingField, channel_span.start as usize))?;
        let kind = match t.action {
            Some(a) if is(s, a, b"snapshot") => Kind::Snapshot,
            Some(a) if is(s, a, b"update") => Kind::Update,
            Some(a) => return Err(Error::new(ErrorKind::InvalidValue, a.start as usize)),
            None if channel.is_whole() => Kind::Snapshot,
            None => return Err(Error::new(ErrorKind::MissingField, 0)),
        };
        if !t.data_done {
            let mark = t.data.ok_or_else(|| Error::new(ErrorKind::MissingField, 0))?;
            self.r.reset(mark);
            self.book_data()?;
        }
        let Some(e) = self.out.entries.first_mut() else {
            return Err(Error::new(ErrorKind::MissingField, 0));
        };
        // An `instId` inside the data (books5 repeats it) must be the arg's: a book must never be
        // fed another instrument's levels.
        if e.symbol.end > e.symbol.start && s.get(e.symbol.range()) != s.get(inst_id.range()) {
            return Err(Error::new(ErrorKind::InvalidValue, e.symbol.start as usize));
        }
        e.symbol = inst_id;
        match (kind, e.sequence.as_mut()) {
            // A snapshot links to nothing (its `prevSeqId` is -1).
            (Kind::Snapshot, Some(seq)) => seq.prev = None,
            // An update with a `seqId` but no `prevSeqId` could not be linked.
            (Kind::Update, Some(Sequence { prev: None, .. })) => return Err(Error::new(ErrorKind::MissingField, 0)),
            _ => {}
        }
        Ok(Raw::Book { channel, kind })
    }

    /// `{"channel","instId"}`.
    fn arg(&mut self, t: &mut Top) -> Result<()> {
        if self.r.peek()? != Json::Object {
            return Err(self.err(ErrorKind::WrongType));
        }
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            match self.s.get(k.range()).unwrap_or_default() {
                b"channel" => t.channel = Some(self.r.string()?),
                b"instId" => t.inst_id = Some(self.r.string()?),
                _ => self.r.skip()?,
            }
        }
        Ok(())
    }

    /// `[{"asks","bids","ts","checksum","prevSeqId","seqId"}]`: exactly one element.
    fn book_data(&mut self) -> Result<()> {
        if self.r.peek()? != Json::Array {
            return Err(self.err(ErrorKind::WrongType));
        }
        self.r.begin_array()?;
        if !self.r.next_element()? {
            return Err(self.err(ErrorKind::MissingField));
        }
        if self.r.peek()? != Json::Object {
            return Err(self.err(ErrorKind::WrongType));
        }
        let mut e = RawEntry::EMPTY;
        let (mut seq_id, mut prev) = (None, None);
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            match self.s.get(k.range()).unwrap_or_default() {
                b"bids" => e.bids = self.levels()?,
                b"asks" => e.asks = self.levels()?,
                b"instId" => e.symbol = self.r.string()?,
                b"ts" => {
                    let at = self.r.offset();
                    let span = match self.r.peek()? {
                        Json::String => self.r.string()?,
                        _ => self.r.number()?,
                    };
                    e.time_ms =
                        Some(parse_u64(&self.s[span.range()]).ok_or_else(|| Error::new(ErrorKind::InvalidValue, at))?);
                }
                b"checksum" => {
                    let at = self.r.offset();
                    let v = self.i64_field()?;
                    // A signed 32-bit CRC; anything outside i32 is not one.
                    let v = i32::try_from(v).map_err(|_| Error::new(ErrorKind::InvalidValue, at))?;
                    e.checksum = (v != 0).then_some(v.cast_unsigned());
                }
                b"seqId" => {
                    let at = self.r.offset();
                    let v = self.i64_field()?;
                    seq_id = Some(u64::try_from(v).map_err(|_| Error::new(ErrorKind::InvalidValue, at))?);
                }
                b"prevSeqId" => {
                    let at = self.r.offset();
                    prev = match self.i64_field()? {
                        -1 => Some(None),
                        v => Some(Some(u64::try_from(v).map_err(|_| Error::new(ErrorKind::InvalidValue, at))?)),
                    };
                }
                _ => self.r.skip()?,
            }
        }
        if self.r.next_element()? {
            // OKX sends one book per message; several would each need their own proof.
            return Err(self.err(ErrorKind::InvalidValue));
        }
        e.sequence = match (seq_id, prev) {
            (Some(last), prev) => Some(Sequence { first: last, last, prev: prev.flatten() }),
            (None, Some(_)) => return Err(self.err(ErrorKind::MissingField)),
            (None, None) => None,
        };
        self.out.entries.push(e);
        Ok(())
    }

    /// `[[price, size, "0", orders], ...]`, price and size strings; further elements skipped.
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

/// Reads a book push laid out as OKX sends it, or returns `None` for the walker: with an `action`
/// (`books` and the tick-by-tick channels), `{"arg":{"channel":"books","instId":"BTC-USDT"},
/// "action":"update","data":[{"asks":[["p","q","0","n"]],"bids":[],"ts":"ms","checksum":N,
/// "prevSeqId":N,"seqId":N}]}`; without one (`books5`, `bbo-tbt`: each push a whole book),
/// `{"arg":{...},"data":[{"asks":[],"bids":[],"instId":"BTC-USDT","ts":"ms","seqId":N}]}`, the
/// data's `instId` only on `books5`.
#[inline]
pub(crate) fn layout(b: &[u8], out: &mut Scratch) -> Option<Raw> {
    let mut c = Cursor::new(b);
    c.lit(b"{\"arg\":{\"channel\":\"")?;
    let name = c.string()?;
    let channel = Channel::from_name(b.get(name.range())?)?;
    c.lit(b",\"instId\":\"")?;
    let symbol = c.string()?;
    c.lit(b"}")?;
    let action = c.lit(b",\"action\":\"").is_some();
    let kind = if action {
        c.kind(b"update\"")?
    } else {
        // A push with no action is a whole book; only the whole-book channels send one.
        channel.is_whole().then_some(Kind::Snapshot)?
    };
    out.clear();
    c.lit(b",\"data\":[{\"asks\":")?;
    let asks = c.string_levels::<false>(out)?;
    c.lit(b",\"bids\":")?;
    let bids = c.string_levels::<false>(out)?;
    if !action && c.lit(b",\"instId\":\"").is_some() {
        // Another instrument's levels are the walker's to refuse.
        let inner = c.string()?;
        if !c.same(inner, symbol)? {
            return None;
        }
    }
    c.lit(b",\"ts\":\"")?;
    let time = c.uint()?;
    c.lit(b"\"")?;
    let (checksum, prev) = if action {
        c.lit(b",\"checksum\":")?;
        // A signed 32-bit CRC; 0 since OKX retired it, which is no checksum at all.
        let checksum = i32::try_from(c.int()?).ok()?;
        // OKX's ids are `i64`s: -1 (the snapshot's `prevSeqId`) links to nothing, an update must
        // link, and any other negative id, or one above `i64::MAX`, is the walker's to refuse.
        c.lit(b",\"prevSeqId\":")?;
        let prev = match c.int()? {
            -1 if kind == Kind::Snapshot => None,
            p => Some(u64::try_from(p).ok()?),
        };
        (checksum, prev)
    } else {
        (0, None)
    };
    c.lit(b",\"seqId\":")?;
    let last = u64::try_from(c.int()?).ok()?;
    c.lit(b"}]}")?;
    if !c.at_end() {
        return None;
    }
    // A snapshot links to nothing, whatever its `prevSeqId`.
    let prev = if kind == Kind::Snapshot { None } else { prev };
    out.entries.push(RawEntry {
        symbol,
        bids,
        asks,
        checksum: (checksum != 0).then_some(checksum.cast_unsigned()),
        time_ms: Some(time),
        sequence: Some(Sequence { first: last, last, prev }),
        ..RawEntry::EMPTY
    });
    Some(Raw::Book { channel, kind })
}
