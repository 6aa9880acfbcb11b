//! Zero-copy parsing of exchange websocket book messages, with exact decimal text.
//!
//! `plumb-wire` turns one websocket text frame into a typed message of its exchange
//! ([`kraken::Message`], [`bybit::Message`], [`okx::Message`]) whose prices and
//! quantities are the exact text the exchange sent: trailing zeros kept, no exponent rewriting, no
//! float anywhere. Fields borrow from the frame, and a reused [`Parser`] allocates nothing per book
//! frame. Every failure is a typed [`Error`] with a byte offset; no input makes it panic.
//!
//! Two readers sit behind one schema walker. The fast path is a strict byte scanner written for
//! small exchange frames. Frames whose strings hold JSON escapes go through simd-json instead (its
//! tape for structure and its stage-1 structural indexes for the raw number text, since simd-json
//! itself only hands numbers out as floats or integers). Both readers feed the same walker, and the
//! tests check that they agree. Each exchange has its own module that walks its frames over those
//! readers, and every exchange's book message offers the same neutral [`Frame`] (symbol, snapshot or
//! update, levels in wire order, checksum, sequence, time) for the book to apply. Generic code picks
//! an exchange's parser at compile time through [`Dialect`].
//!
//! Example: read a Kraken v2 book update.
//!
//! ```
//! use plumb_wire::{Parser, kraken::{Kind, Message}};
//!
//! let frame = br#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD",
//!     "bids":[{"price":67120.0,"qty":1.50000000}],"asks":[],"checksum":2439117997}]}"#;
//! let mut parser = Parser::new();
//! let Message::Book(book) = parser.parse(frame)? else { panic!("not a book") };
//! assert_eq!(book.kind, Kind::Update);
//! let entry = book.entries().next().unwrap();
//! assert_eq!(entry.symbol(), "BTC/USD");
//! let bid = entry.bids().next().unwrap();
//! assert_eq!((bid.price, bid.qty), ("67120.0", "1.50000000"));
//! assert_eq!(entry.checksum(), Some(2439117997));
//! # Ok::<(), plumb_wire::Error>(())
//! ```
#![deny(unsafe_code)]

pub mod binance;
pub mod bybit;
pub mod coinbase;
mod error;
pub mod frame;
pub mod kraken;
mod layout;
pub mod num;
pub mod okx;
mod reader;
mod text;

pub use error::{Error, ErrorKind, Result};
pub use frame::{Frame, Kind, Level, Levels, Number, Numbers, Sequence, Time};
pub use num::Decimal;

use frame::{Scratch, Src};

/// The deepest nesting any reader accepts. Kraken frames nest at most five levels.
pub const MAX_DEPTH: usize = 64;

/// The largest frame the parser accepts, in bytes, for every exchange but Coinbase (whose whole-book
/// snapshots need [`coinbase::MAX_FRAME_LEN`]). Larger frames are refused with
/// [`ErrorKind::TooLarge`] before any work is done.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// A reusable parser. Keep one per connection: it holds the buffers that make parsing
/// allocation-free once they have grown to the frame sizes seen.
pub struct Parser {
    scratch: Scratch,
    buffers: simd_json::Buffers,
    copy: Vec<u8>,
    toks: Vec<reader::Tok>,
    /// The largest frame since the buffers were last given back.
    high_water: usize,
}

/// Past a frame of this size, the parser's grown buffers are given back at the next frame that is
/// much smaller (a 14 MB snapshot must not hold its memory for the rest of the run).
const KEEP_BYTES: usize = 1 << 20;

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser").finish_non_exhaustive()
    }
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

/// Which reader produced a message; exposed for tests and benchmarks.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The matcher for Kraken's exact v2 book layout.
    Layout,
    /// The general byte scanner.
    Scanner,
    /// simd-json's tape.
    Simd,
}

impl Parser {
    /// A parser with empty buffers.
    #[must_use]
    pub fn new() -> Self {
        Self {
            scratch: Scratch::default(),
            buffers: simd_json::Buffers::default(),
            copy: Vec::new(),
            toks: Vec::new(),
            high_water: 0,
        }
    }

    /// Parses one Kraken websocket text frame (v1 or v2, told apart by its shape).
    ///
    /// Strings in the result borrow from `frame`, except when the frame's strings hold JSON
    /// escapes: then the parser unescapes a private copy and the strings borrow from that.
    ///
    /// # Errors
    ///
    /// An [`Error`] naming what is wrong and the byte offset where it was found: malformed JSON, a
    /// known field with the wrong type, a missing required field, a value out of range, a message
    /// that is not a Kraken message, or a frame over [`MAX_FRAME_LEN`].
    pub fn parse<'a>(&'a mut self, frame: &'a [u8]) -> Result<kraken::Message<'a>> {
        self.parse_via(frame, None).map(|(m, _)| m)
    }

    /// Like [`Parser::parse`], but forces one reader (`Some`) or picks as usual (`None`), and
    /// reports which one produced the message. For differential tests and benchmarks.
    #[doc(hidden)]
    #[allow(clippy::missing_errors_doc, reason = "hidden test hook; errors as in parse")]
    pub fn parse_via<'a>(&'a mut self, frame: &'a [u8], path: Option<Path>) -> Result<(kraken::Message<'a>, Path)> {
        self.parse_with::<kraken::Kraken>(frame, path)
    }

    /// Parses one Bybit v5 public websocket text frame (or a legacy spot v3 book frame).
    ///
    /// # Errors
    ///
    /// As for [`Parser::parse`]: malformed JSON, wrong types, missing fields, a book whose data
    /// names another symbol than its topic, a delta without an update id, or an oversized frame.
    pub fn parse_bybit<'a>(&'a mut self, frame: &'a [u8]) -> Result<bybit::Message<'a>> {
        self.parse_with::<bybit::Bybit>(frame, None).map(|(m, _)| m)
    }

    /// Parses one OKX v5 public websocket text frame (or OKX's text `pong`).
    ///
    /// # Errors
    ///
    /// As for [`Parser::parse`]: malformed JSON, wrong types, missing fields, a book whose data
    /// names another instrument than its arg, an update whose `seqId` has no `prevSeqId`, a
    /// checksum outside the signed 32-bit range, or an oversized frame.
    pub fn parse_okx<'a>(&'a mut self, frame: &'a [u8]) -> Result<okx::Message<'a>> {
        self.parse_with::<okx::Okx>(frame, None).map(|(m, _)| m)
    }

    /// Parses the body of an exchange's REST book snapshot (OKX `GET /api/v5/market/books`) into
    /// a [`Kind::Snapshot`] frame. Its `symbol` is empty (the request named it) and its `sequence`
    /// is the id the book stands at, which the session bridges the buffered updates to.
    ///
    /// # Errors
    ///
    /// As for the websocket parsers, plus [`ErrorKind::Refused`] for an answer that carries the
    /// exchange's error code, [`ErrorKind::MissingField`] for a book without the id a bridge needs,
    /// and [`ErrorKind::UnknownMessage`] for an exchange without a REST snapshot.
    pub fn parse_snapshot<'a, D: Dialect>(&'a mut self, body: &'a [u8]) -> Result<Frame<'a>> {
        if body.len() > D::MAX_FRAME_LEN {
            return Err(Error::new(ErrorKind::TooLarge, D::MAX_FRAME_LEN));
        }
        self.watermark(body.len());
        let text = std::str::from_utf8(body).map_err(|e| Error::new(ErrorKind::InvalidString, e.valid_up_to()))?;
        match D::walk_snapshot(reader::Scanner::new(body), body, &mut self.scratch) {
            Ok(()) => return Ok(self.snapshot_view(Src::Str(text))),
            Err(e) if !body.contains(&b'\\') => return Err(e),
            Err(_) => {}
        }
        self.copy.clear();
        self.copy.extend_from_slice(body);
        reader::tokens_from_simd(&mut self.copy, &mut self.buffers, &mut self.toks)?;
        D::walk_snapshot(reader::TapeReader::new(&self.toks), &self.copy, &mut self.scratch)?;
        Ok(self.snapshot_view(Src::Bytes(&self.copy)))
    }

    /// Gives the buffers back when a frame much smaller than the largest since the last time
    /// comes, after one larger than [`KEEP_BYTES`]; otherwise only notes the size (one compare
    /// per frame).
    #[inline]
    fn watermark(&mut self, len: usize) {
        if len > self.high_water {
            self.high_water = len;
        } else if self.high_water > KEEP_BYTES && len < KEEP_BYTES / 16 {
            self.give_back();
            self.high_water = len;
        }
    }

    #[cold]
    fn give_back(&mut self) {
        self.copy = Vec::new();
        self.toks = Vec::new();
        self.buffers = simd_json::Buffers::default();
        self.scratch = Scratch::default();
    }

    /// The bytes the parser's own buffers hold now (simd-json's aside). For tests.
    #[doc(hidden)]
    #[must_use]
    pub fn retained_bytes(&self) -> usize {
        let s = &self.scratch;
        self.copy.capacity()
            + self.toks.capacity() * std::mem::size_of::<reader::Tok>()
            + s.levels.capacity() * std::mem::size_of::<frame::RawLevel>()
            + s.entries.capacity() * std::mem::size_of::<frame::RawEntry>()
            + s.held.capacity() * std::mem::size_of::<frame::RawLevel>()
    }

    fn snapshot_view<'a>(&'a self, src: Src<'a>) -> Frame<'a> {
        let e = self.scratch.entries.first().copied().unwrap_or(frame::RawEntry::EMPTY);
        self.scratch.frame(src, &e, Kind::Snapshot)
    }

    /// Parses one Coinbase Advanced Trade market-data frame (`l2_data`, `heartbeats`,
    /// `subscriptions`, errors).
    ///
    /// # Errors
    ///
    /// As for [`Parser::parse`]: malformed JSON, wrong types, missing fields (a book or heartbeat
    /// without `sequence_num`, an event without its type or product, a level without its side,
    /// price or quantity), a side other than `bid`/`offer`, or an oversized frame.
    pub fn parse_coinbase<'a>(&'a mut self, frame: &'a [u8]) -> Result<coinbase::Message<'a>> {
        self.parse_with::<coinbase::Coinbase>(frame, None).map(|(m, _)| m)
    }

    /// Parses one Binance spot or USD-M futures frame (`depthUpdate` events raw or wrapped by a
    /// combined stream, replies, errors, `serverShutdown`).
    ///
    /// # Errors
    ///
    /// As for [`Parser::parse`]: malformed JSON, wrong types, an event without `s`, `U` or `u`,
    /// `U` above `u`, a level that is not two strings, or an oversized frame.
    pub fn parse_binance<'a>(&'a mut self, frame: &'a [u8]) -> Result<binance::Message<'a>> {
        self.parse_with::<binance::Binance>(frame, None).map(|(m, _)| m)
    }

    /// Parses one frame of the exchange `D`, with a forced reader or the usual choice.
    #[doc(hidden)]
    #[allow(clippy::missing_errors_doc, reason = "hidden test hook; errors as in parse")]
    pub fn parse_with<'a, D: Dialect>(
        &'a mut self,
        frame: &'a [u8],
        path: Option<Path>,
    ) -> Result<(D::Message<'a>, Path)> {
        if frame.len() > D::MAX_FRAME_LEN {
            return Err(Error::new(ErrorKind::TooLarge, D::MAX_FRAME_LEN));
        }
        self.watermark(frame.len());
        // Websocket text frames are UTF-8 already; checking once here (one vectorised pass when the
        // frame is all ASCII, `from_utf8` otherwise) lets every field be a plain slice of one `&str`.
        let text = match text::ascii(frame) {
            Some(t) => Src::Ascii(t),
            None => {
                Src::Str(std::str::from_utf8(frame).map_err(|e| Error::new(ErrorKind::InvalidString, e.valid_up_to()))?)
            }
        };
        if matches!(path, None | Some(Path::Layout))
            && let Some(raw) = D::layout(frame, &mut self.scratch)
        {
            return Ok((D::view(raw, text, &self.scratch), Path::Layout));
        }
        if path == Some(Path::Layout) {
            return Err(Error::new(ErrorKind::UnknownMessage, 0));
        }
        if path != Some(Path::Simd) {
            match D::walk(reader::Scanner::new(frame), frame, &mut self.scratch) {
                Ok(raw) => return Ok((D::view(raw, text, &self.scratch), Path::Scanner)),
                // The scanner refuses escaped strings; only a frame with a backslash somewhere
                // can deserve a second look.
                Err(e) if path.is_some() || !frame.contains(&b'\\') => return Err(e),
                Err(_) => {}
            }
        }
        self.copy.clear();
        self.copy.extend_from_slice(frame);
        reader::tokens_from_simd(&mut self.copy, &mut self.buffers, &mut self.toks)?;
        let raw = D::walk(reader::TapeReader::new(&self.toks), &self.copy, &mut self.scratch)?;
        Ok((D::view(raw, Src::Bytes(&self.copy), &self.scratch), Path::Simd))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::kraken::Kraken {}
    impl Sealed for crate::bybit::Bybit {}
    impl Sealed for crate::okx::Okx {}
    impl Sealed for crate::coinbase::Coinbase {}
    impl Sealed for crate::binance::Binance {}
}

/// An exchange's wire dialect: its message type and its walker, chosen at compile time.
///
/// Implemented by the marker types [`kraken::Kraken`], [`bybit::Bybit`] and [`okx::Okx`]; sealed, since a new
/// exchange needs a walker inside this crate. Generic code (the session, the replay) names an
/// exchange's dialect once and is monomorphised for it: no `dyn`, no allocation per message.
#[allow(private_interfaces, private_bounds, reason = "the walker's types are crate-private; the trait is sealed")]
pub trait Dialect: sealed::Sealed + Copy + Default + std::fmt::Debug + Send + Sync + 'static {
    /// The exchange's parsed message.
    type Message<'a>: Copy + std::fmt::Debug;
    /// The largest frame of this exchange the parser reads ([`MAX_FRAME_LEN`] unless the exchange
    /// sends bigger ones).
    const MAX_FRAME_LEN: usize = MAX_FRAME_LEN;
    #[doc(hidden)]
    type Raw: Copy;
    #[doc(hidden)]
    fn layout(frame: &[u8], scratch: &mut Scratch) -> Option<Self::Raw>;
    #[doc(hidden)]
    fn walk<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<Self::Raw>;
    #[doc(hidden)]
    fn view<'a>(raw: Self::Raw, src: Src<'a>, scratch: &'a Scratch) -> Self::Message<'a>;
    /// Reads a REST book snapshot's body into the scratch's first entry (see
    /// [`Parser::parse_snapshot`]); exchanges without one refuse it.
    #[doc(hidden)]
    fn walk_snapshot<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<()> {
        let _ = (r, s, scratch);
        Err(Error::new(ErrorKind::UnknownMessage, 0))
    }
}

#[allow(private_interfaces, private_bounds, reason = "the walker's types are crate-private; the trait is sealed")]
impl Dialect for kraken::Kraken {
    type Message<'a> = kraken::Message<'a>;
    type Raw = kraken::RawMessage;
    #[inline]
    fn layout(frame: &[u8], scratch: &mut Scratch) -> Option<kraken::RawMessage> {
        match frame.first() {
            Some(b'{') => kraken::layout_v2(frame, scratch),
            Some(b'[') => kraken::layout_v1(frame, scratch),
            _ => None,
        }
        .map(kraken::RawMessage)
    }
    fn walk<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<kraken::RawMessage> {
        kraken::walk(r, s, scratch).map(kraken::RawMessage)
    }
    #[inline]
    fn view<'a>(raw: kraken::RawMessage, src: Src<'a>, scratch: &'a Scratch) -> kraken::Message<'a> {
        kraken::view(raw.0, src, scratch)
    }
}

#[allow(private_interfaces, private_bounds, reason = "the walker's types are crate-private; the trait is sealed")]
impl Dialect for bybit::Bybit {
    type Message<'a> = bybit::Message<'a>;
    type Raw = bybit::RawMessage;
    #[inline]
    fn layout(frame: &[u8], scratch: &mut Scratch) -> Option<bybit::RawMessage> {
        bybit::layout(frame, scratch).map(bybit::RawMessage)
    }
    fn walk<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<bybit::RawMessage> {
        bybit::walk(r, s, scratch).map(bybit::RawMessage)
    }
    #[inline]
    fn view<'a>(raw: bybit::RawMessage, src: Src<'a>, scratch: &'a Scratch) -> bybit::Message<'a> {
        bybit::view(raw.0, src, scratch)
    }
}

#[allow(private_interfaces, private_bounds, reason = "the walker's types are crate-private; the trait is sealed")]
impl Dialect for okx::Okx {
    type Message<'a> = okx::Message<'a>;
    type Raw = okx::RawMessage;
    #[inline]
    fn layout(frame: &[u8], scratch: &mut Scratch) -> Option<okx::RawMessage> {
        okx::layout(frame, scratch).map(okx::RawMessage)
    }
    fn walk<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<okx::RawMessage> {
        okx::walk(r, s, scratch).map(okx::RawMessage)
    }
    #[inline]
    fn view<'a>(raw: okx::RawMessage, src: Src<'a>, scratch: &'a Scratch) -> okx::Message<'a> {
        okx::view(raw.0, src, scratch)
    }
    fn walk_snapshot<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<()> {
        okx::walk_rest(r, s, scratch)
    }
}

#[allow(private_interfaces, private_bounds, reason = "the walker's types are crate-private; the trait is sealed")]
impl Dialect for coinbase::Coinbase {
    type Message<'a> = coinbase::Message<'a>;
    const MAX_FRAME_LEN: usize = coinbase::MAX_FRAME_LEN;
    type Raw = coinbase::RawMessage;
    #[inline]
    fn layout(frame: &[u8], scratch: &mut Scratch) -> Option<coinbase::RawMessage> {
        coinbase::layout(frame, scratch).map(coinbase::RawMessage)
    }
    fn walk<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<coinbase::RawMessage> {
        coinbase::walk(r, s, scratch).map(coinbase::RawMessage)
    }
    #[inline]
    fn view<'a>(raw: coinbase::RawMessage, src: Src<'a>, scratch: &'a Scratch) -> coinbase::Message<'a> {
        coinbase::view(raw.0, src, scratch)
    }
}

#[allow(private_interfaces, private_bounds, reason = "the walker's types are crate-private; the trait is sealed")]
impl Dialect for binance::Binance {
    type Message<'a> = binance::Message<'a>;
    type Raw = binance::RawMessage;
    #[inline]
    fn layout(frame: &[u8], scratch: &mut Scratch) -> Option<binance::RawMessage> {
        binance::layout(frame, scratch).map(binance::RawMessage)
    }
    fn walk<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<binance::RawMessage> {
        binance::walk(r, s, scratch).map(binance::RawMessage)
    }
    #[inline]
    fn view<'a>(raw: binance::RawMessage, src: Src<'a>, scratch: &'a Scratch) -> binance::Message<'a> {
        binance::view(raw.0, src, scratch)
    }
    fn walk_snapshot<R: reader::Reader>(r: R, s: &[u8], scratch: &mut Scratch) -> Result<()> {
        binance::walk_rest(r, s, scratch)
    }
}

/// Helpers for tests and fuzz targets: not part of the stable API.
#[doc(hidden)]
pub mod testing {
    use std::fmt::Write as _;

    use crate::kraken::{Api, Kind, Message};

    /// Renders every field of a message into one string, so that two parses (two readers, or
    /// plumb and a reference parser) can be compared as a whole.
    #[must_use]
    pub fn canonical(m: &Message<'_>) -> String {
        let mut s = String::new();
        let api = |a: Api| if a == Api::V1 { "v1" } else { "v2" };
        let kind = |k: Kind| if k == Kind::Snapshot { "snapshot" } else { "update" };
        let _ = match m {
            Message::Book(b) => {
                let _ = write!(s, "book {} {} depth={:?}", api(b.api), kind(b.kind), b.depth);
                for e in b.entries() {
                    let _ = write!(s, " | {} crc={:?} ts={:?} bids", e.symbol(), e.checksum(), e.timestamp());
                    for l in e.bids() {
                        let _ = write!(s, " {}@{}{}", l.qty, l.price, if l.republish { "r" } else { "" });
                    }
                    s.push_str(" asks");
                    for l in e.asks() {
                        let _ = write!(s, " {}@{}{}", l.qty, l.price, if l.republish { "r" } else { "" });
                    }
                }
                Ok(())
            }
            Message::Instrument(i) => {
                let _ = write!(s, "instrument {}", kind(i.kind));
                for p in i.pairs() {
                    let _ = write!(s, " {}:{}:{}", p.symbol, p.price_precision, p.qty_precision);
                }
                Ok(())
            }
            Message::Heartbeat(a) => write!(s, "heartbeat {}", api(*a)),
            Message::Status(st) => write!(s, "status {} {:?}", api(st.api), st.system),
            Message::Response(r) => write!(
                s,
                "response {} {} req={:?} ok={} err={:?} ch={:?} sym={:?} depth={:?} status={:?}",
                api(r.api),
                r.method,
                r.req_id,
                r.success,
                r.error,
                r.channel,
                r.symbol,
                r.depth,
                r.status
            ),
            Message::Other { api: a, channel } => write!(s, "other {} {channel:?}", api(*a)),
        };
        s
    }

    /// Every `&str` a message hands out, for checking where it points.
    #[must_use]
    pub fn strings<'a>(m: &Message<'a>) -> Vec<&'a str> {
        let mut v = Vec::new();
        match m {
            Message::Book(b) => {
                for e in b.entries() {
                    v.push(e.symbol());
                    v.extend(e.timestamp());
                    for l in e.bids().chain(e.asks()) {
                        v.push(l.price);
                        v.push(l.qty);
                    }
                }
            }
            Message::Instrument(i) => v.extend(i.pairs().map(|p| p.symbol)),
            Message::Status(st) => v.extend(st.system),
            Message::Response(r) => {
                v.push(r.method);
                v.extend([r.error, r.channel, r.symbol, r.status].into_iter().flatten());
            }
            Message::Other { channel, .. } => v.extend(*channel),
            Message::Heartbeat(_) => {}
        }
        v
    }

    /// The fuzz check: never panic; on the scanner path every string lies inside `data`; and
    /// where both readers accept a frame they read the same message.
    pub fn check_parse(data: &[u8]) {
        let mut p = crate::Parser::new();
        let auto = match p.parse_via(data, None) {
            Ok((m, path)) => {
                if path != crate::Path::Simd {
                    let range = data.as_ptr_range();
                    for s in strings(&m) {
                        let r = s.as_bytes().as_ptr_range();
                        assert!(range.start <= r.start && r.end <= range.end, "string {s:?} outside the input");
                    }
                }
                Some(canonical(&m))
            }
            Err(_) => None,
        };
        if let Ok(crate::kraken::Message::Book(b)) = p.parse(data) {
            for e in b.entries() {
                for l in e.bids().chain(e.asks()) {
                    check_value(l.price, l.price_value);
                    check_value(l.qty, l.qty_value);
                }
            }
        }
        let mut q = crate::Parser::new();
        let scanner = q.parse_via(data, Some(crate::Path::Scanner)).ok().map(|(m, _)| canonical(&m));
        let simd = q.parse_via(data, Some(crate::Path::Simd)).ok().map(|(m, _)| canonical(&m));
        let layout = q.parse_via(data, Some(crate::Path::Layout)).ok().map(|(m, _)| canonical(&m));
        readers_agree(auto.as_ref(), layout.as_ref(), scanner.as_ref(), simd.as_ref());
    }

    /// Renders every field of a Bybit message into one string.
    #[must_use]
    pub fn canonical_bybit(m: &crate::bybit::Message<'_>) -> String {
        use crate::bybit::Message as M;
        let mut s = String::new();
        match m {
            M::Book(b) => {
                let f = b.frame();
                let _ = write!(
                    s,
                    "book {} {:?} depth={} legacy={} seq={:?} xseq={:?} time={:?} bids",
                    f.symbol, f.kind, b.depth, b.legacy, f.sequence, b.cross_seq, f.time
                );
                for l in f.bids.clone() {
                    let _ = write!(s, " {}@{}", l.qty, l.price);
                }
                s.push_str(" asks");
                for l in f.asks.clone() {
                    let _ = write!(s, " {}@{}", l.qty, l.price);
                }
            }
            M::Pong => s.push_str("pong"),
            M::Reply(r) => {
                let _ = write!(s, "reply {:?} ok={} msg={:?} req={:?} fail", r.op, r.success, r.message, r.req_id);
                for t in r.fail_topics() {
                    let _ = write!(s, " {t}");
                }
            }
            M::Other { topic } => {
                let _ = write!(s, "other {topic:?}");
            }
        }
        s
    }

    /// Every `&str` a Bybit message hands out.
    #[must_use]
    pub fn strings_bybit<'a>(m: &crate::bybit::Message<'a>) -> Vec<&'a str> {
        use crate::bybit::Message as M;
        let mut v = Vec::new();
        match m {
            M::Book(b) => {
                let f = b.frame();
                v.push(f.symbol);
                for l in f.bids.chain(f.asks) {
                    v.push(l.price);
                    v.push(l.qty);
                }
            }
            M::Reply(r) => {
                v.extend([r.op, r.message, r.req_id].into_iter().flatten());
                v.extend(r.fail_topics());
            }
            M::Other { topic } => v.extend(*topic),
            M::Pong => {}
        }
        v
    }

    /// The Bybit fuzz check: never panic; on the scanner path every string lies inside `data`;
    /// every pre-read value is its text; the scanner, simd-json and the layout matcher read the
    /// same message.
    pub fn check_parse_bybit(data: &[u8]) {
        use crate::bybit::Bybit;
        let mut p = crate::Parser::new();
        let auto = match p.parse_with::<Bybit>(data, None) {
            Ok((m, path)) => {
                if path != crate::Path::Simd {
                    let range = data.as_ptr_range();
                    for s in strings_bybit(&m) {
                        let r = s.as_bytes().as_ptr_range();
                        assert!(range.start <= r.start && r.end <= range.end, "string {s:?} outside the input");
                    }
                }
                if let crate::bybit::Message::Book(b) = m {
                    let f = b.frame();
                    for l in f.bids.chain(f.asks) {
                        check_value(l.price, l.price_value);
                        check_value(l.qty, l.qty_value);
                    }
                }
                Some(canonical_bybit(&m))
            }
            Err(_) => None,
        };
        let mut q = crate::Parser::new();
        let scanner = q.parse_with::<Bybit>(data, Some(crate::Path::Scanner)).ok().map(|(m, _)| canonical_bybit(&m));
        let simd = q.parse_with::<Bybit>(data, Some(crate::Path::Simd)).ok().map(|(m, _)| canonical_bybit(&m));
        let layout = q.parse_with::<Bybit>(data, Some(crate::Path::Layout)).ok().map(|(m, _)| canonical_bybit(&m));
        readers_agree(auto.as_ref(), layout.as_ref(), scanner.as_ref(), simd.as_ref());
    }

    /// Renders every field of an OKX message into one string.
    #[must_use]
    pub fn canonical_okx(m: &crate::okx::Message<'_>) -> String {
        use crate::okx::Message as M;
        let mut s = String::new();
        match m {
            M::Book(b) => {
                let f = b.frame();
                let _ = write!(
                    s,
                    "book {} {:?} {:?} seq={:?} crc={:?} time={:?} bids",
                    f.symbol, b.channel, f.kind, f.sequence, f.checksum, f.time
                );
                for l in f.bids.clone() {
                    let _ = write!(s, " {}@{}", l.qty, l.price);
                }
                s.push_str(" asks");
                for l in f.asks.clone() {
                    let _ = write!(s, " {}@{}", l.qty, l.price);
                }
            }
            M::Pong => s.push_str("pong"),
            M::Reply(r) => {
                let _ = write!(
                    s,
                    "reply {} id={:?} ch={:?} inst={:?} code={:?} msg={:?}",
                    r.event, r.id, r.channel, r.inst_id, r.code, r.message
                );
            }
            M::Notice { code, message } => {
                let _ = write!(s, "notice {code:?} {message:?}");
            }
            M::Other { name } => {
                let _ = write!(s, "other {name:?}");
            }
        }
        s
    }

    /// Every `&str` an OKX message hands out.
    #[must_use]
    pub fn strings_okx<'a>(m: &crate::okx::Message<'a>) -> Vec<&'a str> {
        use crate::okx::Message as M;
        let mut v = Vec::new();
        match m {
            M::Book(b) => {
                let f = b.frame();
                v.push(f.symbol);
                for l in f.bids.chain(f.asks) {
                    v.push(l.price);
                    v.push(l.qty);
                }
            }
            M::Reply(r) => {
                v.push(r.event);
                v.extend([r.id, r.channel, r.inst_id, r.code, r.message].into_iter().flatten());
            }
            M::Notice { code, message } => v.extend([*code, *message].into_iter().flatten()),
            M::Other { name } => v.extend(*name),
            M::Pong => {}
        }
        v
    }

    /// The OKX fuzz check: never panic; on the scanner path every string lies inside `data`;
    /// every pre-read value is its text; the scanner, simd-json and the layout matcher read the
    /// same message.
    pub fn check_parse_okx(data: &[u8]) {
        use crate::okx::Okx;
        let mut p = crate::Parser::new();
        let auto = match p.parse_with::<Okx>(data, None) {
            Ok((m, path)) => {
                if path != crate::Path::Simd {
                    let range = data.as_ptr_range();
                    for s in strings_okx(&m) {
                        let r = s.as_bytes().as_ptr_range();
                        assert!(range.start <= r.start && r.end <= range.end, "string {s:?} outside the input");
                    }
                }
                if let crate::okx::Message::Book(b) = m {
                    let f = b.frame();
                    for l in f.bids.chain(f.asks) {
                        check_value(l.price, l.price_value);
                        check_value(l.qty, l.qty_value);
                    }
                }
                Some(canonical_okx(&m))
            }
            Err(_) => None,
        };
        let mut q = crate::Parser::new();
        let scanner = q.parse_with::<Okx>(data, Some(crate::Path::Scanner)).ok().map(|(m, _)| canonical_okx(&m));
        let simd = q.parse_with::<Okx>(data, Some(crate::Path::Simd)).ok().map(|(m, _)| canonical_okx(&m));
        let layout = q.parse_with::<Okx>(data, Some(crate::Path::Layout)).ok().map(|(m, _)| canonical_okx(&m));
        readers_agree(auto.as_ref(), layout.as_ref(), scanner.as_ref(), simd.as_ref());
        // The same bytes as a REST snapshot body: no panic, a snapshot with an id, exact values.
        if let Ok(f) = p.parse_snapshot::<Okx>(data) {
            assert!(f.kind == crate::Kind::Snapshot && f.sequence.is_some_and(|s| s.prev.is_none()));
            for l in f.bids.chain(f.asks) {
                check_value(l.price, l.price_value);
                check_value(l.qty, l.qty_value);
            }
        }
    }

    /// Renders every field of a Binance message into one string.
    #[must_use]
    pub fn canonical_binance(m: &crate::binance::Message<'_>) -> String {
        use crate::binance::Message as M;
        let mut s = String::new();
        match m {
            M::Book(b) => {
                let f = b.frame();
                let _ = write!(s, "book {:?} {} seq={:?} time={:?} bids", b.stream, f.symbol, f.sequence, f.time);
                for l in f.bids {
                    let _ = write!(s, " {}@{}", l.qty, l.price);
                }
                s.push_str(" asks");
                for l in f.asks {
                    let _ = write!(s, " {}@{}", l.qty, l.price);
                }
            }
            M::Reply { id } => {
                let _ = write!(s, "reply {id:?}");
            }
            M::Error { code, message, id } => {
                let _ = write!(s, "error {code:?} {message:?} {id:?}");
            }
            M::Shutdown => s.push_str("shutdown"),
            M::Other { kind } => {
                let _ = write!(s, "other {kind:?}");
            }
        }
        s
    }

    /// The strings of a Binance message, to check that they borrow from the input.
    pub fn strings_binance<'a>(m: &crate::binance::Message<'a>) -> Vec<&'a str> {
        use crate::binance::Message as M;
        let mut v = Vec::new();
        match m {
            M::Book(b) => {
                let f = b.frame();
                v.push(f.symbol);
                v.extend(b.stream);
                for l in f.bids.chain(f.asks) {
                    v.push(l.price);
                    v.push(l.qty);
                }
            }
            M::Error { code, message, .. } => v.extend(code.iter().chain(message).copied()),
            M::Other { kind } => v.extend(*kind),
            M::Reply { .. } | M::Shutdown => {}
        }
        v
    }

    /// The fuzz check of the Binance parser: no panic, strings inside the input (on the fast
    /// path), every pre-read value its text, the scanner, simd-json and the layout matcher reading
    /// the same, and the same bytes as a REST snapshot body never panicking and reading exact
    /// values.
    ///
    /// # Panics
    ///
    /// When one of those fails.
    pub fn check_parse_binance(data: &[u8]) {
        use crate::binance::Binance;
        let mut p = crate::Parser::new();
        let auto = match p.parse_with::<Binance>(data, None) {
            Ok((m, path)) => {
                if path != crate::Path::Simd {
                    let range = data.as_ptr_range();
                    for s in strings_binance(&m) {
                        let r = s.as_bytes().as_ptr_range();
                        assert!(range.start <= r.start && r.end <= range.end, "string {s:?} outside the input");
                    }
                }
                if let crate::binance::Message::Book(b) = m {
                    let f = b.frame();
                    assert!(f.sequence.is_some_and(|q| q.first <= q.last));
                    for l in f.bids.chain(f.asks) {
                        check_value(l.price, l.price_value);
                        check_value(l.qty, l.qty_value);
                    }
                }
                Some(canonical_binance(&m))
            }
            Err(_) => None,
        };
        let mut q = crate::Parser::new();
        let scanner =
            q.parse_with::<Binance>(data, Some(crate::Path::Scanner)).ok().map(|(m, _)| canonical_binance(&m));
        let simd = q.parse_with::<Binance>(data, Some(crate::Path::Simd)).ok().map(|(m, _)| canonical_binance(&m));
        let layout = q.parse_with::<Binance>(data, Some(crate::Path::Layout)).ok().map(|(m, _)| canonical_binance(&m));
        readers_agree(auto.as_ref(), layout.as_ref(), scanner.as_ref(), simd.as_ref());
        if let Ok(f) = p.parse_snapshot::<Binance>(data) {
            assert!(f.kind == crate::Kind::Snapshot && f.sequence.is_some_and(|s| s.prev.is_none()));
            for l in f.bids.chain(f.asks) {
                check_value(l.price, l.price_value);
                check_value(l.qty, l.qty_value);
            }
        }
    }

    /// Every reader's reading of one frame, each rendered (`None` where it refused the frame):
    /// what the layout matcher accepts the general readers read the same way, the scanner and
    /// simd-json agree where both accept, and so does the default path.
    fn readers_agree(auto: Option<&String>, layout: Option<&String>, scanner: Option<&String>, simd: Option<&String>) {
        let general = scanner.or(simd);
        if let Some(l) = layout {
            assert_eq!(Some(l), general, "the layout matcher disagrees");
        }
        if let (Some(a), Some(b)) = (scanner, simd) {
            assert_eq!(a, b, "the scanner and simd-json disagree");
        }
        if let (Some(a), Some(s)) = (auto, general) {
            assert_eq!(a, s, "the default path disagrees");
        }
    }

    /// A level's pre-read value must be exactly its text, read the slow way.
    fn check_value(text: &str, value: Option<crate::Decimal>) {
        let Some(v) = value else { return };
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        assert!(!int.is_empty() && int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()), "{text:?}");
        assert_eq!(usize::from(v.scale), frac.len(), "{text:?}");
        let digits: String = int.chars().chain(frac.chars()).collect();
        assert_eq!(digits.parse::<u64>().ok(), Some(v.mantissa), "{text:?}");
    }

    /// Every field of a Coinbase message in one string, so that two parses can be compared.
    pub fn canonical_coinbase(m: &crate::coinbase::Message<'_>) -> String {
        use crate::coinbase::Message as M;
        let mut s = String::new();
        match m {
            M::Book(b) => {
                let _ = write!(s, "book seq={}", b.sequence);
                for f in b.frames() {
                    let _ = write!(s, " | {} {:?} seq={:?} time={:?} bids", f.symbol, f.kind, f.sequence, f.time);
                    for l in f.bids.clone() {
                        let _ = write!(s, " {}@{}", l.qty, l.price);
                    }
                    s.push_str(" asks");
                    for l in f.asks.clone() {
                        let _ = write!(s, " {}@{}", l.qty, l.price);
                    }
                }
            }
            M::Heartbeat { sequence, counter } => {
                let _ = write!(s, "heartbeat {sequence} {counter:?}");
            }
            M::Subscriptions { sequence, level2 } => {
                let _ = write!(s, "subscriptions {sequence} {:?}", level2.iter().collect::<Vec<_>>());
            }
            M::Error { message, reason } => {
                let _ = write!(s, "error {message:?} {reason:?}");
            }
            M::Other { channel, sequence } => {
                let _ = write!(s, "other {channel:?} {sequence:?}");
            }
        }
        s
    }

    /// The strings of a Coinbase message, to check that they borrow from the input.
    pub fn strings_coinbase<'a>(m: &crate::coinbase::Message<'a>) -> Vec<&'a str> {
        use crate::coinbase::Message as M;
        let mut v = Vec::new();
        match m {
            M::Book(b) => {
                for f in b.frames() {
                    v.push(f.symbol);
                    for l in f.bids.chain(f.asks) {
                        v.push(l.price);
                        v.push(l.qty);
                    }
                }
            }
            M::Subscriptions { level2, .. } => v.extend(level2.iter()),
            M::Error { message, reason } => v.extend(message.iter().chain(reason).copied()),
            M::Other { channel, .. } => v.extend(*channel),
            M::Heartbeat { .. } => {}
        }
        v
    }

    /// The fuzz check of the Coinbase parser: no panic, strings inside the input (on the fast
    /// path), every pre-read value its text, the scanner and simd-json reading the same, and the
    /// layout matcher reading what the scanner reads.
    ///
    /// # Panics
    ///
    /// When one of those fails.
    pub fn check_parse_coinbase(data: &[u8]) {
        use crate::coinbase::Coinbase;
        let mut p = crate::Parser::new();
        let auto = match p.parse_with::<Coinbase>(data, None) {
            Ok((m, path)) => {
                if path != crate::Path::Simd {
                    let range = data.as_ptr_range();
                    for s in strings_coinbase(&m) {
                        let r = s.as_bytes().as_ptr_range();
                        assert!(range.start <= r.start && r.end <= range.end, "string {s:?} outside the input");
                    }
                }
                if let crate::coinbase::Message::Book(b) = m {
                    for f in b.frames() {
                        for l in f.bids.chain(f.asks) {
                            check_value(l.price, l.price_value);
                            check_value(l.qty, l.qty_value);
                        }
                    }
                }
                Some(canonical_coinbase(&m))
            }
            Err(_) => None,
        };
        let mut q = crate::Parser::new();
        let scanner =
            q.parse_with::<Coinbase>(data, Some(crate::Path::Scanner)).ok().map(|(m, _)| canonical_coinbase(&m));
        let simd = q.parse_with::<Coinbase>(data, Some(crate::Path::Simd)).ok().map(|(m, _)| canonical_coinbase(&m));
        let layout =
            q.parse_with::<Coinbase>(data, Some(crate::Path::Layout)).ok().map(|(m, _)| canonical_coinbase(&m));
        readers_agree(auto.as_ref(), layout.as_ref(), scanner.as_ref(), simd.as_ref());
    }
}
