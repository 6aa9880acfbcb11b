//! Kraken spot websocket messages, v2 (`wss://ws.kraken.com/v2`) and v1 (`wss://ws.kraken.com`).
//!
//! The walker here is written once against the `Reader` trait and runs over either the scanner or the
//! simd-json tape. It fills a `Scratch` of spans; the public types resolve spans into `&str`
//! slices of the frame on access.

use crate::error::{Error, ErrorKind, Result};
use crate::frame::{Frame, RawEntry, RawLevel, RawPair, Scratch, Src};
pub use crate::frame::{Kind, Level, Levels};
use crate::layout::Cursor;
pub use crate::num::Decimal;
use crate::num::{parse_u64, rfc3339_ns};
use crate::reader::{Kind as Json, Mark, Reader, Span};

/// The Kraken dialect (v1 and v2, told apart by shape), for [`Dialect`](crate::Dialect)-generic
/// code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Kraken;

/// Which Kraken websocket API a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `wss://ws.kraken.com` (objects with `event`, arrays for channel data).
    V1,
    /// `wss://ws.kraken.com/v2` (objects with `channel` or `method`).
    V2,
}

/// What the walker read: the message shape plus spans into the source.
/// What the walker read, opaque outside this crate (it names the dialect's message shape).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct RawMessage(pub(crate) Raw);

#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw {
    Book { api: Api, kind: Kind, depth: Option<u16>, channel_id: Option<u64> },
    Instrument { kind: Kind },
    Heartbeat { api: Api },
    Status { api: Api, system: Option<Span> },
    Response(RawResponse),
    Other { api: Api, channel: Option<Span> },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RawResponse {
    api: Api,
    method: Span,
    req_id: Option<u64>,
    success: bool,
    error: Option<Span>,
    channel: Option<Span>,
    symbol: Option<Span>,
    depth: Option<u16>,
    status: Option<Span>,
}

// ---------------------------------------------------------------------------------------------
// Public, borrowed views.

/// One parsed Kraken message. Every `&'a str` borrows from the frame (or, for frames whose
/// strings hold JSON escapes, from the parser's own copy of the frame).
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// A book snapshot or update (v2 `book` channel, v1 `book-N` channel).
    Book(Book<'a>),
    /// Instrument reference data (v2 `instrument` channel): the precisions the v2 checksum needs.
    Instrument(Instrument<'a>),
    /// A heartbeat (v2 `{"channel":"heartbeat"}`, v1 `{"event":"heartbeat"}`).
    Heartbeat(Api),
    /// The exchange's system status (v2 `status` channel, v1 `systemStatus`).
    Status(Status<'a>),
    /// A reply to a request: v2 method responses (subscribe, unsubscribe, pong, errors), v1
    /// `subscriptionStatus` and `pong`.
    Response(Response<'a>),
    /// A well-formed message of a channel or event that plumb does not read (trades, tickers...).
    Other {
        /// The API it came from.
        api: Api,
        /// The channel or event name, when the message has one.
        channel: Option<&'a str>,
    },
}

/// A book message: one entry per symbol (v1 always has exactly one).
#[derive(Debug, Clone, Copy)]
pub struct Book<'a> {
    /// v1 or v2.
    pub api: Api,
    /// Snapshot or update.
    pub kind: Kind,
    /// The subscribed depth that a v1 channel name (`book-25`) states; v2 frames do not carry it.
    pub depth: Option<u16>,
    /// The v1 channel id (deprecated by Kraken, kept for completeness).
    pub channel_id: Option<u64>,
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> Book<'a> {
    /// The per-symbol entries, in wire order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = BookEntry<'a>> + 'a {
        let (src, scratch, kind) = (self.src, self.scratch, self.kind);
        scratch.entries.iter().map(move |e| BookEntry { raw: *e, kind, src, scratch })
    }
}

/// One symbol's part of a book message.
#[derive(Debug, Clone, Copy)]
pub struct BookEntry<'a> {
    raw: RawEntry,
    kind: Kind,
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> BookEntry<'a> {
    /// The symbol as the wire spells it (`BTC/USD` in v2, `XBT/USD` in v1).
    #[must_use]
    pub fn symbol(&self) -> &'a str {
        self.src.text(self.raw.symbol)
    }

    /// The exchange's CRC32 of the top 10 levels after this entry is applied (v1: the `c` field;
    /// absent on v1 snapshots).
    #[must_use]
    pub fn checksum(&self) -> Option<u32> {
        self.raw.checksum
    }

    /// The v2 entry timestamp (RFC 3339 text), when present.
    #[must_use]
    pub fn timestamp(&self) -> Option<&'a str> {
        self.raw.timestamp.map(|s| self.src.text(s))
    }

    /// The v2 entry timestamp in nanoseconds since the Unix epoch, when it is present and is a UTC
    /// RFC 3339 time as Kraken sends it (`2023-10-06T17:35:55.440295Z`). Exact; no allocation.
    #[must_use]
    pub fn timestamp_ns(&self) -> Option<u64> {
        self.timestamp().and_then(|t| rfc3339_ns(t.as_bytes()))
    }

    /// Bid levels in wire order.
    #[must_use]
    pub fn bids(&self) -> Levels<'a> {
        self.levels(self.raw.bids)
    }

    /// Ask levels in wire order.
    #[must_use]
    pub fn asks(&self) -> Levels<'a> {
        self.levels(self.raw.asks)
    }

    fn levels(&self, (a, b): (u32, u32)) -> Levels<'a> {
        Levels { src: self.src, levels: self.scratch.levels.get(a as usize..b as usize).unwrap_or_default() }
    }

    /// The exchange-neutral view of this entry, as the book applies it: Kraken's checksum is the
    /// proof, there is no sequence, and the time is the v2 timestamp text.
    #[must_use]
    #[inline]
    pub fn frame(&self) -> Frame<'a> {
        self.scratch.frame(self.src, &self.raw, self.kind)
    }
}

/// Instrument reference data: per pair, the precisions of price and quantity.
#[derive(Debug, Clone, Copy)]
pub struct Instrument<'a> {
    /// Snapshot or update.
    pub kind: Kind,
    src: Src<'a>,
    scratch: &'a Scratch,
}

impl<'a> Instrument<'a> {
    /// The pairs of the message, in wire order.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = Pair<'a>> + 'a {
        let src = self.src;
        self.scratch.pairs.iter().map(move |p| Pair {
            symbol: src.text(p.symbol),
            price_precision: p.price_precision,
            qty_precision: p.qty_precision,
        })
    }
}

/// One pair of an instrument message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair<'a> {
    /// The v2 symbol, e.g. `BTC/USD`.
    pub symbol: &'a str,
    /// Decimal places of prices.
    pub price_precision: u8,
    /// Decimal places of quantities.
    pub qty_precision: u8,
}

/// The exchange's system status.
#[derive(Debug, Clone, Copy)]
pub struct Status<'a> {
    /// v1 or v2.
    pub api: Api,
    /// `online`, `maintenance`, `cancel_only`, `post_only`... as sent.
    pub system: Option<&'a str>,
}

/// A reply to a request.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// v1 or v2.
    pub api: Api,
    /// v2: the `method` (`subscribe`, `unsubscribe`, `pong`...); v1: the `event`
    /// (`subscriptionStatus`, `pong`).
    pub method: &'a str,
    /// The request id echoed back (v2 `req_id`, v1 `reqid`).
    pub req_id: Option<u64>,
    /// Whether the request succeeded (v1: `status` is not `error`).
    pub success: bool,
    /// The exchange's error text (v2 `error`, v1 `errorMessage`).
    pub error: Option<&'a str>,
    /// The channel the reply is about (v2 `result.channel`, v1 `channelName`).
    pub channel: Option<&'a str>,
    /// The symbol the reply is about (v2 `result.symbol` or `symbol`, v1 `pair`).
    pub symbol: Option<&'a str>,
    /// The subscribed book depth, when stated.
    pub depth: Option<u16>,
    /// v1 only: `subscribed`, `unsubscribed` or `error`.
    pub status: Option<&'a str>,
}

pub(crate) fn view<'a>(raw: Raw, src: Src<'a>, scratch: &'a Scratch) -> Message<'a> {
    match raw {
        Raw::Book { api, kind, depth, channel_id } => {
            Message::Book(Book { api, kind, depth, channel_id, src, scratch })
        }
        Raw::Instrument { kind } => Message::Instrument(Instrument { kind, src, scratch }),
        Raw::Heartbeat { api } => Message::Heartbeat(api),
        Raw::Status { api, system } => Message::Status(Status { api, system: system.map(|s| src.text(s)) }),
        Raw::Response(r) => Message::Response(Response {
            api: r.api,
            method: src.text(r.method),
            req_id: r.req_id,
            success: r.success,
            error: r.error.map(|s| src.text(s)),
            channel: r.channel.map(|s| src.text(s)),
            symbol: r.symbol.map(|s| src.text(s)),
            depth: r.depth,
            status: r.status.map(|s| src.text(s)),
        }),
        Raw::Other { api, channel } => Message::Other { api, channel: channel.map(|s| src.text(s)) },
    }
}

// ---------------------------------------------------------------------------------------------
// The walker.

struct Walk<'s, R> {
    r: R,
    s: &'s [u8],
    out: &'s mut Scratch,
}

#[inline]
fn is(s: &[u8], span: Span, lit: &[u8]) -> bool {
    s.get(span.range()) == Some(lit)
}

pub(crate) fn walk<R: Reader>(r: R, s: &[u8], out: &mut Scratch) -> Result<Raw> {
    out.clear();
    let mut w = Walk { r, s, out };
    let raw = match w.r.peek()? {
        Json::Object => w.object()?,
        Json::Array => w.v1_array()?,
        _ => return Err(Error::new(ErrorKind::UnknownMessage, w.r.offset())),
    };
    Ok(raw)
}

/// Fields of a top-level object that decide what it is.
#[derive(Default)]
struct Top {
    channel: Option<Span>,
    kind: Option<Span>,
    method: Option<Span>,
    event: Option<Span>,
    data: Option<Mark>,
    data_done: bool,
    result: Option<Mark>,
    success: Option<bool>,
    error: Option<Span>,
    req_id: Option<u64>,
    symbol: Option<Span>,
    status: Option<Span>,
    pair: Option<Span>,
    channel_name: Option<Span>,
    depth: Option<u16>,
}

impl<R: Reader> Walk<'_, R> {
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.r.offset())
    }

    fn str_field(&mut self) -> Result<Span> {
        self.r.string()
    }

    fn u64_field(&mut self) -> Result<u64> {
        let at = self.r.offset();
        let span = self.r.number()?;
        parse_u64(&self.s[span.range()]).ok_or_else(|| Error::new(ErrorKind::InvalidValue, at))
    }

    fn u8_field(&mut self) -> Result<u8> {
        let at = self.r.offset();
        let v = self.u64_field()?;
        u8::try_from(v).map_err(|_| Error::new(ErrorKind::InvalidValue, at))
    }

    fn opt_str(&mut self) -> Result<Option<Span>> {
        if self.r.peek()? == Json::Null {
            self.r.null()?;
            return Ok(None);
        }
        self.r.string().map(Some)
    }

    fn object(&mut self) -> Result<Raw> {
        let mut t = Top::default();
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            let s = self.s;
            match s.get(k.range()).unwrap_or_default() {
                b"channel" => t.channel = Some(self.str_field()?),
                b"type" => t.kind = Some(self.str_field()?),
                b"method" => t.method = Some(self.str_field()?),
                b"event" => t.event = Some(self.str_field()?),
                b"data" => {
                    // Kraken sends `channel` and `type` first; read `data` in place then, and come
                    // back to it only when the keys arrive in another order.
                    if t.channel.is_some_and(|c| is(s, c, b"book")) {
                        self.v2_book_data()?;
                        t.data_done = true;
                    } else {
                        t.data = Some(self.r.mark());
                        self.r.skip()?;
                    }
                }
                b"result" => {
                    t.result = Some(self.r.mark());
                    self.r.skip()?;
                }
                b"success" => t.success = Some(self.r.boolean()?),
                b"error" | b"errorMessage" => t.error = self.opt_str()?,
                b"req_id" | b"reqid" => t.req_id = Some(self.u64_field()?),
                b"symbol" => t.symbol = self.opt_str()?,
                b"status" => t.status = Some(self.str_field()?),
                b"pair" => t.pair = Some(self.str_field()?),
                b"channelName" => t.channel_name = Some(self.str_field()?),
                b"subscription" => t.depth = self.v1_subscription()?,
                _ => self.r.skip()?,
            }
        }
        self.r.finish()?;
        let s = self.s;
        if let Some(ch) = t.channel {
            return self.v2_channel(s, ch, &t);
        }
        if let Some(method) = t.method {
            return self.v2_response(method, &t);
        }
        if let Some(ev) = t.event {
            return Ok(self.v1_event(s, ev, &t));
        }
        Err(Error::new(ErrorKind::UnknownMessage, 0))
    }

    fn v2_channel(&mut self, s: &[u8], ch: Span, t: &Top) -> Result<Raw> {
        let kind = match t.kind {
            Some(k) if is(s, k, b"snapshot") => Some(Kind::Snapshot),
            Some(k) if is(s, k, b"update") => Some(Kind::Update),
            _ => None,
        };
        match s.get(ch.range()).unwrap_or_default() {
            b"book" => {
                let kind = kind.ok_or_else(|| Error::new(ErrorKind::InvalidValue, ch.start as usize))?;
                if !t.data_done {
                    let mark = t.data.ok_or_else(|| Error::new(ErrorKind::MissingField, 0))?;
                    self.r.reset(mark);
                    self.v2_book_data()?;
                }
                Ok(Raw::Book { api: crate::kraken::Api::V2, kind, depth: None, channel_id: None })
            }
            b"instrument" => {
                let kind = kind.ok_or_else(|| Error::new(ErrorKind::InvalidValue, ch.start as usize))?;
                let mark = t.data.ok_or_else(|| Error::new(ErrorKind::MissingField, 0))?;
                self.r.reset(mark);
                self.v2_instrument_data()?;
                Ok(Raw::Instrument { kind })
            }
            b"heartbeat" => Ok(Raw::Heartbeat { api: Api::V2 }),
            b"status" => {
                let mut system = None;
                if let Some(mark) = t.data {
                    self.r.reset(mark);
                    system = self.v2_status_data()?;
                }
                Ok(Raw::Status { api: Api::V2, system })
            }
            _ => Ok(Raw::Other { api: Api::V2, channel: Some(ch) }),
        }
    }

    fn v2_response(&mut self, method: Span, t: &Top) -> Result<Raw> {
        let mut r = RawResponse {
            api: Api::V2,
            method,
            req_id: t.req_id,
            // A pong has no `success`; a reply that is not a failure counts as success.
            success: t.success.unwrap_or(t.error.is_none()),
            error: t.error,
            channel: None,
            symbol: t.symbol,
            depth: None,
            status: None,
        };
        if let Some(mark) = t.result {
            self.r.reset(mark);
            if self.r.peek()? == Json::Object {
                self.r.begin_object()?;
                while let Some(k) = self.r.next_key()? {
                    match self.s.get(k.range()).unwrap_or_default() {
                        b"channel" => r.channel = Some(self.str_field()?),
                        b"symbol" => r.symbol = self.opt_str()?,
                        b"depth" => r.depth = Some(self.depth_field()?),
                        _ => self.r.skip()?,
                    }
                }
            }
        }
        Ok(Raw::Response(r))
    }

    fn depth_field(&mut self) -> Result<u16> {
        let at = self.r.offset();
        let v = self.u64_field()?;
        u16::try_from(v).map_err(|_| Error::new(ErrorKind::InvalidValue, at))
    }

    fn v1_subscription(&mut self) -> Result<Option<u16>> {
        let mut depth = None;
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            if is(self.s, k, b"depth") {
                depth = Some(self.depth_field()?);
            } else {
                self.r.skip()?;
            }
        }
        Ok(depth)
    }

    fn v1_event(&self, s: &[u8], ev: Span, t: &Top) -> Raw {
        match s.get(ev.range()).unwrap_or_default() {
            b"heartbeat" => Raw::Heartbeat { api: Api::V1 },
            b"systemStatus" => Raw::Status { api: Api::V1, system: t.status },
            b"subscriptionStatus" | b"pong" => Raw::Response(RawResponse {
                api: Api::V1,
                method: ev,
                req_id: t.req_id,
                success: !t.status.is_some_and(|st| is(s, st, b"error")) && t.error.is_none(),
                error: t.error,
                channel: t.channel_name,
                symbol: t.pair,
                depth: t.depth.or_else(|| t.channel_name.and_then(|c| book_depth(&s[c.range()]))),
                status: t.status,
            }),
            _ => Raw::Other { api: Api::V1, channel: Some(ev) },
        }
    }

    fn v2_book_data(&mut self) -> Result<()> {
        self.r.begin_array()?;
        while self.r.next_element()? {
            let mut e = RawEntry::EMPTY;
            let mut have_symbol = false;
            self.r.begin_object()?;
            while let Some(k) = self.r.next_key()? {
                match self.s.get(k.range()).unwrap_or_default() {
                    b"symbol" => {
                        e.symbol = self.str_field()?;
                        have_symbol = true;
                    }
                    b"bids" => e.bids = self.v2_levels()?,
                    b"asks" => e.asks = self.v2_levels()?,
                    b"checksum" => {
                        let at = self.r.offset();
                        let v = self.u64_field()?;
                        e.checksum = Some(u32::try_from(v).map_err(|_| Error::new(ErrorKind::InvalidValue, at))?);
                    }
                    b"timestamp" => e.timestamp = Some(self.str_field()?),
                    _ => self.r.skip()?,
                }
            }
            if !have_symbol {
                return Err(self.err(ErrorKind::MissingField));
            }
            self.out.entries.push(e);
        }
        Ok(())
    }

    fn v2_levels(&mut self) -> Result<(u32, u32)> {
        let start = self.level_count()?;
        self.r.begin_array()?;
        while self.r.next_element()? {
            let (mut price, mut qty) = (None, None);
            self.r.begin_object()?;
            while let Some(k) = self.r.next_key()? {
                match self.s.get(k.range()).unwrap_or_default() {
                    b"price" => price = Some(self.r.number()?),
                    b"qty" => qty = Some(self.r.number()?),
                    _ => self.r.skip()?,
                }
            }
            match (price, qty) {
                (Some(price), Some(qty)) => self.out.levels.push(RawLevel {
                    price,
                    qty,
                    price_value: Decimal::parse(&self.s[price.range()]),
                    qty_value: Decimal::parse(&self.s[qty.range()]),
                    republish: false,
                }),
                _ => return Err(self.err(ErrorKind::MissingField)),
            }
        }
        Ok((start, self.level_count()?))
    }

    fn level_count(&self) -> Result<u32> {
        u32::try_from(self.out.levels.len()).map_err(|_| self.err(ErrorKind::TooLarge))
    }

    fn v2_instrument_data(&mut self) -> Result<()> {
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            if !is(self.s, k, b"pairs") {
                self.r.skip()?;
                continue;
            }
            self.r.begin_array()?;
            while self.r.next_element()? {
                let (mut symbol, mut pp, mut qp) = (None, None, None);
                self.r.begin_object()?;
                while let Some(k) = self.r.next_key()? {
                    match self.s.get(k.range()).unwrap_or_default() {
                        b"symbol" => symbol = Some(self.str_field()?),
                        b"price_precision" => pp = Some(self.u8_field()?),
                        b"qty_precision" => qp = Some(self.u8_field()?),
                        _ => self.r.skip()?,
                    }
                }
                match (symbol, pp, qp) {
                    (Some(symbol), Some(price_precision), Some(qty_precision)) => {
                        self.out.pairs.push(RawPair { symbol, price_precision, qty_precision });
                    }
                    _ => return Err(self.err(ErrorKind::MissingField)),
                }
            }
        }
        Ok(())
    }

    fn v2_status_data(&mut self) -> Result<Option<Span>> {
        let mut system = None;
        if self.r.peek()? != Json::Array {
            self.r.skip()?;
            return Ok(None);
        }
        self.r.begin_array()?;
        while self.r.next_element()? {
            if self.r.peek()? != Json::Object {
                self.r.skip()?;
                continue;
            }
            self.r.begin_object()?;
            while let Some(k) = self.r.next_key()? {
                if is(self.s, k, b"system") {
                    system = Some(self.str_field()?);
                } else {
                    self.r.skip()?;
                }
            }
        }
        Ok(system)
    }

    /// `[channelID, {book map}, ({book map},)? "channelName", "pair"]`.
    fn v1_array(&mut self) -> Result<Raw> {
        self.r.begin_array()?;
        let mut channel_id = None;
        let mut maps: [Option<Mark>; 2] = [None, None];
        let mut n_maps = 0;
        let mut strings: [Option<Span>; 2] = [None, None];
        let mut n_strings = 0;
        while self.r.next_element()? {
            match self.r.peek()? {
                Json::Number if channel_id.is_none() && n_maps == 0 && n_strings == 0 => {
                    channel_id = Some(self.u64_field()?);
                }
                Json::Object if n_strings == 0 && n_maps < 2 => {
                    maps[n_maps] = Some(self.r.mark());
                    n_maps += 1;
                    self.r.skip()?;
                }
                Json::String if n_strings < 2 => {
                    strings[n_strings] = Some(self.r.string()?);
                    n_strings += 1;
                }
                _ => self.r.skip()?,
            }
        }
        self.r.finish()?;
        let (Some(name), Some(pair)) = (strings[0], strings[1]) else {
            return Err(Error::new(ErrorKind::UnknownMessage, 0));
        };
        let Some(depth) = book_depth(&self.s[name.range()]) else {
            return Ok(Raw::Other { api: Api::V1, channel: Some(name) });
        };
        if n_maps == 0 {
            return Err(Error::new(ErrorKind::MissingField, 0));
        }
        let mut e = RawEntry { symbol: pair, ..RawEntry::EMPTY };
        let mut kind = None;
        for mark in maps.into_iter().flatten() {
            self.r.reset(mark);
            self.v1_map(&mut e, &mut kind)?;
        }
        let kind = kind.ok_or_else(|| Error::new(ErrorKind::MissingField, 0))?;
        self.out.entries.push(e);
        Ok(Raw::Book { api: Api::V1, kind, depth: Some(depth), channel_id })
    }

    fn v1_map(&mut self, e: &mut RawEntry, kind: &mut Option<Kind>) -> Result<()> {
        self.r.begin_object()?;
        while let Some(k) = self.r.next_key()? {
            let at = self.r.offset();
            let (this, is_ask) = match self.s.get(k.range()).unwrap_or_default() {
                b"as" => (Kind::Snapshot, true),
                b"bs" => (Kind::Snapshot, false),
                b"a" => (Kind::Update, true),
                b"b" => (Kind::Update, false),
                b"c" => {
                    let span = self.r.string()?;
                    let v = parse_u64(&self.s[span.range()]).and_then(|v| u32::try_from(v).ok());
                    e.checksum = Some(v.ok_or_else(|| Error::new(ErrorKind::InvalidValue, at))?);
                    continue;
                }
                _ => {
                    self.r.skip()?;
                    continue;
                }
            };
            if kind.is_some_and(|k| k != this) {
                return Err(Error::new(ErrorKind::InvalidValue, at));
            }
            *kind = Some(this);
            let range = self.v1_levels()?;
            if is_ask {
                e.asks = range;
            } else {
                e.bids = range;
            }
        }
        Ok(())
    }

    /// `[[price, volume, timestamp(, "r")?], ...]`; all strings.
    fn v1_levels(&mut self) -> Result<(u32, u32)> {
        let start = self.level_count()?;
        self.r.begin_array()?;
        while self.r.next_element()? {
            self.r.begin_array()?;
            let mut fields: [Span; 4] = [Span::default(); 4];
            let mut n = 0;
            while self.r.next_element()? {
                if n < 4 {
                    fields[n] = self.r.string()?;
                } else {
                    self.r.skip()?;
                }
                n += 1;
            }
            if n < 2 {
                return Err(self.err(ErrorKind::MissingField));
            }
            let republish = n >= 4 && is(self.s, fields[3], b"r");
            let (price, qty) = (fields[0], fields[1]);
            self.out.levels.push(RawLevel {
                price,
                qty,
                price_value: Decimal::parse(&self.s[price.range()]),
                qty_value: Decimal::parse(&self.s[qty.range()]),
                republish,
            });
        }
        Ok((start, self.level_count()?))
    }
}

/// `book-25` -> 25.
fn book_depth(name: &[u8]) -> Option<u16> {
    let digits = name.strip_prefix(b"book-")?;
    u16::try_from(parse_u64(digits)?).ok()
}

/// Reads a v2 book frame laid out exactly as Kraken sends it (`{"channel":"book","type":"update",
/// "data":[{"symbol":"BTC/USD","bids":[{"price":1.5,"qty":2}],"asks":[],"checksum":123,
/// "timestamp":"..."}]}`, no whitespace, keys in that order), or returns `None` for the walker.
#[inline]
pub(crate) fn layout_v2(b: &[u8], out: &mut Scratch) -> Option<Raw> {
    let mut c = Cursor::new(b);
    // The head in literals of at most 32 bytes (comparing a longer array is a call to `bcmp`):
    // the channel, then the rest for an update (most frames), else for a snapshot.
    c.lit(b"{\"channel\":\"book\",\"type\":\"")?;
    let kind = if c.lit(b"update\",\"data\":[").is_some() {
        Kind::Update
    } else {
        c.lit(b"snapshot\",\"data\":[")?;
        Kind::Snapshot
    };
    out.levels.clear();
    out.entries.clear();
    out.pairs.clear();
    loop {
        c.lit(b"{\"symbol\":\"")?;
        let symbol = c.string()?;
        c.lit(b",\"bids\":[")?;
        let bids = v2_levels(&mut c, out)?;
        c.lit(b",\"asks\":[")?;
        let asks = v2_levels(&mut c, out)?;
        let checksum = if c.lit(b",\"checksum\":").is_some() { Some(u32::try_from(c.uint()?).ok()?) } else { None };
        let timestamp = if c.lit(b",\"timestamp\":\"").is_some() { Some(c.last_string()?) } else { None };
        c.lit(b"}")?;
        out.entries.push(RawEntry { symbol, bids, asks, checksum, timestamp, ..RawEntry::EMPTY });
        if !c.more()? {
            break;
        }
    }
    c.lit(b"]}")?;
    c.at_end().then_some(Raw::Book { api: Api::V2, kind, depth: None, channel_id: None })
}

/// `{"price":N,"qty":N}` levels up to and including the list's `]`.
#[inline(always)]
fn v2_levels(c: &mut Cursor<'_>, out: &mut Scratch) -> Option<(u32, u32)> {
    let start = u32::try_from(out.levels.len()).ok()?;
    if c.peek()? != b']' {
        loop {
            c.lit(b"{\"price\":")?;
            let (price, price_value) = c.decimal()?;
            c.lit(b",\"qty\":")?;
            let (qty, qty_value) = c.decimal()?;
            c.lit(b"}")?;
            out.levels.push(RawLevel { price, qty, price_value, qty_value, republish: false });
            if !c.more()? {
                break;
            }
        }
    }
    c.lit(b"]")?;
    Some((start, u32::try_from(out.levels.len()).ok()?))
}

/// Reads a v1 book frame laid out exactly as Kraken sends it (`[336,{"a":[["5541.30000",
/// "2.50700000","1534614248.456738"]],"c":"974942666"},"book-10","XBT/USD"]`, snapshots with
/// `as`/`bs`, both sides in one map or in two), or returns `None` for the walker.
#[inline]
pub(crate) fn layout_v1(b: &[u8], out: &mut Scratch) -> Option<Raw> {
    let mut c = Cursor::new(b);
    c.lit(b"[")?;
    let channel_id = Some(c.uint()?);
    c.lit(b",")?;
    out.clear();
    let mut e = RawEntry::EMPTY;
    let (mut kind, mut seen) = (None, 0u8);
    v1_map(&mut c, &mut e, &mut kind, &mut seen, out)?;
    c.lit(b",")?;
    if c.peek()? == b'{' {
        v1_map(&mut c, &mut e, &mut kind, &mut seen, out)?;
        c.lit(b",")?;
    }
    // The channel name, with the quotes around it and the one opening the symbol: each of the
    // depths v1 offers as one literal (a few word compares, where reading the digits took a
    // mask and three multiplications), any other number read as one.
    let depth = if c.lit(b"\"book-1000\",\"").is_some() {
        1000
    } else if c.lit(b"\"book-10\",\"").is_some() {
        10
    } else if c.lit(b"\"book-25\",\"").is_some() {
        25
    } else if c.lit(b"\"book-100\",\"").is_some() {
        100
    } else if c.lit(b"\"book-500\",\"").is_some() {
        500
    } else {
        c.lit(b"\"book-")?;
        let depth = u16::try_from(c.uint()?).ok()?;
        c.lit(b"\",\"")?;
        depth
    };
    e.symbol = c.string()?;
    c.lit(b"]")?;
    if !c.at_end() {
        return None;
    }
    out.entries.push(e);
    Some(Raw::Book { api: Api::V1, kind: kind?, depth: Some(depth), channel_id })
}

/// One v1 book map: `as`/`bs` (snapshot) or `a`/`b` (update) and an optional `c`, in any order.
/// Repeated keys are left to the general reader.
fn v1_map(
    c: &mut Cursor<'_>,
    e: &mut RawEntry,
    kind: &mut Option<Kind>,
    seen: &mut u8,
    out: &mut Scratch,
) -> Option<()> {
    c.lit(b"{")?;
    loop {
        // The key, its quotes and colon, and the byte after them, read as one word: `"a":[`
        // (the `[` left for the levels), `"as":`, `"c":"` and so on.
        let (bit, this, ask, len) = match c.quad_after(b'"')? {
            q if q == *b"a\":[" => (1, Some(Kind::Update), true, 4),
            q if q == *b"b\":[" => (2, Some(Kind::Update), false, 4),
            q if q == *b"as\":" => (1, Some(Kind::Snapshot), true, 5),
            q if q == *b"bs\":" => (2, Some(Kind::Snapshot), false, 5),
            q if q == *b"c\":\"" => (4, None, false, 5),
            _ => return None,
        };
        c.skip_known(len);
        if *seen & bit != 0 {
            return None;
        }
        *seen |= bit;
        match this {
            Some(k) => {
                if kind.is_some_and(|x| x != k) {
                    return None;
                }
                *kind = Some(k);
                let range = c.string_levels::<true>(out)?;
                if ask {
                    e.asks = range;
                } else {
                    e.bids = range;
                }
            }
            None => {
                // A string of digits, valued as it is scanned.
                e.checksum = Some(u32::try_from(c.uint()?).ok()?);
                c.lit(b"\"")?;
            }
        }
        if !c.more()? {
            break;
        }
    }
    c.lit(b"}")
}
