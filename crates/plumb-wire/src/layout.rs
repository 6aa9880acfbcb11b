//! The fastest path: book frames in the exact byte layout each exchange sends.
//!
//! Kraken v2: `{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":1.5,"qty":2}],
//! "asks":[],"checksum":123,"timestamp":"..."}]}` with no whitespace, keys in that order.
//! Kraken v1: `[336,{"a":[["5541.30000","2.50700000","1534614248.456738"]],"c":"974942666"},"book-10",
//! "XBT/USD"]`, snapshots with `as`/`bs`, both sides in one map or in two.
//! Bybit v5: `{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":N,"data":{"s":"BTCUSDT","b":[["p","q"]],
//! "a":[],"u":N,"seq":N},"cts":N}`.
//! Binance: `{"e":"depthUpdate","E":N,"T":N,"s":"BTCUSDT","U":N,"u":N,"pu":N,"b":[["p","q"]],"a":[]}`
//! (`T` and `pu` on USD-M only), as a raw stream sends it.
//! OKX: `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["p","q","0","n"]],
//! "bids":[],"ts":"ms","checksum":N,"prevSeqId":N,"seqId":N}]}`, and the whole-book pushes of `books5` and
//! `bbo-tbt` (no `action`, no checksum, no `prevSeqId`).
//! Coinbase: `{"channel":"l2_data","client_id":"","timestamp":"...","sequence_num":N,"events":[{"type":"update",
//! "product_id":"BTC-USD","updates":[{"side":"bid","event_time":"...","price_level":"p","new_quantity":"q"}]}]}`.
//!
//! The matcher compares literal runs of bytes and scans numbers; on the first byte that does not fit it
//! gives up (`None`) and the general scanner reads the frame instead, so a frame is never
//! rejected here, only passed on (a frame the walker would refuse, such as a Bybit data symbol
//! that is not the topic's, is passed on too, for the walker to refuse with its typed error). It
//! fills the same `Scratch` the walkers do, and the differential tests hold the two to the same
//! result.

use crate::frame::{Kind, RawEntry, RawLevel, Scratch, Sequence};
use crate::kraken::{Api, Raw};
use crate::num::Decimal;
use crate::reader::Span;
use crate::{binance, bybit, coinbase, okx};

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

/// `0x01` in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is an ASCII digit, and of no other. Exact per byte: the
/// sums below never carry from one byte into the next.
#[inline(always)]
fn digit_mask(w: u64) -> u64 {
    let low = w & !HIGH;
    let ge_0 = low.wrapping_add(ONES * (0x80 - u64::from(b'0')));
    let gt_9 = low.wrapping_add(ONES * (0x80 - u64::from(b'9') - 1));
    ge_0 & !gt_9 & !w & HIGH
}

/// The high bit of each byte of `w` that cannot be inside a plain string: `"`, `\`, a control
/// character, DEL or a non-ASCII byte. Exact for the lowest such byte (a byte above it may be
/// flagged falsely, which the callers never look at).
#[inline(always)]
fn string_stop_mask(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let del_or_high = (((w & !HIGH).wrapping_add(ONES)) | w) & HIGH;
    quote | backslash | control | del_or_high
}

/// The value of the first `n` (1 to 8) bytes of `w`, all ASCII digits, the first one the most
/// significant: three multiplications instead of eight.
#[inline(always)]
fn digits_value(w: u64, n: u32) -> u64 {
    let mut v = w.wrapping_sub(ONES * u64::from(b'0')) << (8 * (8 - n));
    v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff
}

/// 10^n for n up to 8.
const POW10: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

impl Cursor<'_> {
    /// The literal `s` at the cursor. Its length is a constant, so the comparison compiles to a
    /// few word compares instead of a call to `memcmp`.
    #[inline(always)]
    fn lit<const N: usize>(&mut self, s: &[u8; N]) -> Option<()> {
        let here: &[u8; N] = self.b.get(self.i..self.i + N)?.try_into().ok()?;
        if here == s {
            self.i += s.len();
            Some(())
        } else {
            None
        }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A string body up to its closing quote: printable ASCII, no escapes (anything else is left to
    /// the general scanner, which validates UTF-8).
    #[inline(always)]
    fn ascii_string(&mut self) -> Option<Span> {
        let start = self.i;
        // Eight bytes at a time while eight remain, then one at a time.
        while let Some(w) = self.word() {
            let stop = string_stop_mask(w);
            if stop != 0 {
                self.i += (stop.trailing_zeros() / 8) as usize;
                break;
            }
            self.i += 8;
        }
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f | 0x7f.. => return None,
                _ => self.i += 1,
            }
        }
        let span = Span::new(start, self.i);
        self.i += 1;
        Some(span)
    }

    /// The eight bytes at the cursor, as a little-endian word (the first byte lowest).
    #[inline(always)]
    fn word(&self) -> Option<u64> {
        let b: [u8; 8] = self.b.get(self.i..self.i + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// A run of ASCII digits, folded into `m` (wrapping: callers refuse runs too long to fit),
    /// eight at a time while eight bytes remain; returns the run's length.
    #[inline(always)]
    fn digit_run(&mut self, m: &mut u64) -> usize {
        let start = self.i;
        while let Some(w) = self.word() {
            let n = (!digit_mask(w) & HIGH).trailing_zeros() / 8;
            if n > 0 {
                *m = m.wrapping_mul(POW10[n as usize]).wrapping_add(digits_value(w, n));
                self.i += n as usize;
            }
            if n < 8 {
                return self.i - start;
            }
        }
        while let Some(d @ b'0'..=b'9') = self.peek() {
            *m = m.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.i += 1;
        }
        self.i - start
    }

    /// A run of ASCII digits; returns its length (its value is read by the caller's own rules).
    #[inline(always)]
    fn digits(&mut self) -> usize {
        self.digit_run(&mut 0)
    }

    /// A JSON number (the full grammar: sign, fraction, exponent).
    #[inline(always)]
    fn number(&mut self) -> Option<Span> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(Span::new(start, self.i))
    }

    /// A decimal number `digits[.digits]` whose value is read in the same pass. Anything else
    /// (sign, exponent, more than 19 digits) falls back to [`Cursor::number`] with no value.
    #[inline(always)]
    fn decimal(&mut self) -> Option<(Span, Option<Decimal>)> {
        let start = self.i;
        let mut m: u64 = 0;
        let n = self.digit_run(&mut m);
        // JSON forbids leading zeros ("01"); leave such text to the full grammar check.
        if n == 0 || (n > 1 && self.b[start] == b'0') {
            self.i = start;
            return self.number().map(|s| (s, None));
        }
        let mut scale = 0usize;
        if self.peek() == Some(b'.') {
            self.i += 1;
            scale = self.digit_run(&mut m);
            if scale == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) || n + scale > 19 {
            self.i = start;
            return self.number().map(|s| (s, None));
        }
        let value = u8::try_from(scale).ok().map(|scale| Decimal { mantissa: m, scale });
        Some((Span::new(start, self.i), value))
    }

    /// A v1 price or volume: a string, and its exact value when it is a plain decimal (anything
    /// else keeps its text and no value, as in the general reader). The value is read in the
    /// same pass as the text when the text is `digits[.digits]`, as [`Decimal::parse`] reads it.
    #[inline(always)]
    fn quoted_decimal(&mut self) -> Option<(Span, Option<Decimal>)> {
        self.lit(b"\"")?;
        let start = self.i;
        let mut m: u64 = 0;
        let n = self.digit_run(&mut m);
        let dot = n > 0 && self.peek() == Some(b'.');
        let mut scale = 0;
        if dot {
            self.i += 1;
            scale = self.digit_run(&mut m);
        }
        // `5.` is not a plain decimal: [`Decimal::parse`] gives it no value, and neither does this.
        if n > 0 && (!dot || scale > 0) && n + scale <= 19 && self.peek() == Some(b'"') {
            let span = Span::new(start, self.i);
            self.i += 1;
            return Some((span, u8::try_from(scale).ok().map(|scale| Decimal { mantissa: m, scale })));
        }
        self.i = start;
        let span = self.ascii_string()?;
        Some((span, Decimal::parse(&self.b[span.range()])))
    }

    /// A JSON integer of at most 19 digits, valued in the same pass. Anything else (a sign, a
    /// fraction, an exponent, a leading zero, more digits) is left to the general scanner.
    #[inline(always)]
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let mut m: u64 = 0;
        let n = self.digit_run(&mut m);
        ((1..=19).contains(&n) && (n == 1 || self.b[start] != b'0') && !matches!(self.peek(), Some(b'.' | b'e' | b'E')))
            .then_some(m)
    }

    /// A JSON integer that fits an `i64`, read as [`Cursor::uint`] reads its digits.
    #[inline(always)]
    fn int(&mut self) -> Option<i64> {
        let neg = self.lit(b"-").is_some();
        let v = i64::try_from(self.uint()?).ok()?;
        Some(if neg { -v } else { v })
    }

    /// After an element: a comma means another follows.
    #[inline(always)]
    fn more(&mut self) -> Option<bool> {
        let comma = self.peek()? == b',';
        self.i += usize::from(comma);
        Some(comma)
    }

    /// `[["price","qty",...],...]` (Bybit, Binance, OKX), or with `V1` Kraken v1's
    /// `[["price","volume","timestamp"(,"r")?],...]`.
    #[inline(always)]
    fn string_levels<const V1: bool>(&mut self, out: &mut Scratch) -> Option<(u32, u32)> {
        let start = u32::try_from(out.levels.len()).ok()?;
        self.lit(b"[")?;
        if self.peek()? != b']' {
            loop {
                self.lit(b"[")?;
                let (price, price_value) = self.quoted_decimal()?;
                self.lit(b",")?;
                let (qty, qty_value) = self.quoted_decimal()?;
                let mut republish = false;
                if V1 {
                    self.lit(b",\"")?;
                    self.ascii_string()?;
                    republish = self.lit(b",\"r\"").is_some();
                } else {
                    // Further string fields (OKX's `"0"` and order count) are skipped, as the
                    // walkers skip them.
                    while self.lit(b",\"").is_some() {
                        self.ascii_string()?;
                    }
                }
                self.lit(b"]")?;
                out.levels.push(RawLevel { price, qty, price_value, qty_value, republish });
                if !self.more()? {
                    break;
                }
            }
        }
        self.lit(b"]")?;
        Some((start, u32::try_from(out.levels.len()).ok()?))
    }

    /// One v1 book map: `as`/`bs` (snapshot) or `a`/`b` (update) and an optional `c`, in any
    /// order. Repeated keys are left to the general reader.
    fn v1_map(&mut self, e: &mut RawEntry, kind: &mut Option<Kind>, seen: &mut u8, out: &mut Scratch) -> Option<()> {
        self.lit(b"{")?;
        loop {
            self.lit(b"\"")?;
            let (bit, this, ask) = if self.lit(b"as\":").is_some() {
                (1, Some(Kind::Snapshot), true)
            } else if self.lit(b"bs\":").is_some() {
                (2, Some(Kind::Snapshot), false)
            } else if self.lit(b"a\":").is_some() {
                (1, Some(Kind::Update), true)
            } else if self.lit(b"b\":").is_some() {
                (2, Some(Kind::Update), false)
            } else {
                self.lit(b"c\":\"")?;
                (4, None, false)
            };
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
                    let range = self.string_levels::<true>(out)?;
                    if ask {
                        e.asks = range;
                    } else {
                        e.bids = range;
                    }
                }
                None => {
                    // A string of digits, valued as it is scanned.
                    e.checksum = Some(u32::try_from(self.uint()?).ok()?);
                    self.lit(b"\"")?;
                }
            }
            if !self.more()? {
                break;
            }
        }
        self.lit(b"}")
    }

    #[inline(always)]
    fn levels(&mut self, out: &mut Scratch) -> Option<(u32, u32)> {
        let start = u32::try_from(out.levels.len()).ok()?;
        if self.peek()? != b']' {
            loop {
                self.lit(b"{\"price\":")?;
                let (price, price_value) = self.decimal()?;
                self.lit(b",\"qty\":")?;
                let (qty, qty_value) = self.decimal()?;
                self.lit(b"}")?;
                out.levels.push(RawLevel { price, qty, price_value, qty_value, republish: false });
                if !self.more()? {
                    break;
                }
            }
        }
        self.lit(b"]")?;
        Some((start, u32::try_from(out.levels.len()).ok()?))
    }
}

/// Reads a v2 book frame laid out exactly as Kraken sends it, or returns `None`.
#[inline]
pub(crate) fn v2_book(b: &[u8], out: &mut Scratch) -> Option<Raw> {
    let mut c = Cursor { b, i: 0 };
    c.lit(b"{\"channel\":\"book\",\"type\":\"")?;
    let kind = if c.lit(b"update\"").is_some() {
        Kind::Update
    } else {
        c.lit(b"snapshot\"")?;
        Kind::Snapshot
    };
    c.lit(b",\"data\":[")?;
    out.levels.clear();
    out.entries.clear();
    out.pairs.clear();
    loop {
        c.lit(b"{\"symbol\":\"")?;
        let symbol = c.ascii_string()?;
        c.lit(b",\"bids\":[")?;
        let bids = c.levels(out)?;
        c.lit(b",\"asks\":[")?;
        let asks = c.levels(out)?;
        let checksum = if c.lit(b",\"checksum\":").is_some() { Some(u32::try_from(c.uint()?).ok()?) } else { None };
        let timestamp = if c.lit(b",\"timestamp\":\"").is_some() { Some(c.ascii_string()?) } else { None };
        c.lit(b"}")?;
        out.entries.push(RawEntry { symbol, bids, asks, checksum, timestamp, ..RawEntry::EMPTY });
        if !c.more()? {
            break;
        }
    }
    c.lit(b"]}")?;
    (c.i == b.len()).then_some(Raw::Book { api: Api::V2, kind, depth: None, channel_id: None })
}

/// Reads a v1 book frame laid out exactly as Kraken sends it, or returns `None`.
#[inline]
pub(crate) fn v1_book(b: &[u8], out: &mut Scratch) -> Option<Raw> {
    let mut c = Cursor { b, i: 0 };
    c.lit(b"[")?;
    let channel_id = Some(c.uint()?);
    c.lit(b",")?;
    out.levels.clear();
    out.entries.clear();
    out.pairs.clear();
    let mut e = RawEntry::EMPTY;
    let (mut kind, mut seen) = (None, 0u8);
    c.v1_map(&mut e, &mut kind, &mut seen, out)?;
    c.lit(b",")?;
    if c.peek()? == b'{' {
        c.v1_map(&mut e, &mut kind, &mut seen, out)?;
        c.lit(b",")?;
    }
    c.lit(b"\"book-")?;
    let depth = u16::try_from(c.uint()?).ok()?;
    c.lit(b"\",\"")?;
    e.symbol = c.ascii_string()?;
    c.lit(b"]")?;
    if c.i != b.len() {
        return None;
    }
    out.entries.push(e);
    Some(Raw::Book { api: Api::V1, kind: kind?, depth: Some(depth), channel_id })
}

/// Reads a Bybit v5 book frame laid out as Bybit sends it, or returns `None`.
#[inline]
pub(crate) fn bybit_book(b: &[u8], out: &mut Scratch) -> Option<bybit::Raw> {
    let mut c = Cursor { b, i: 0 };
    c.lit(b"{\"topic\":\"orderbook.")?;
    let d = c.i;
    c.digits();
    let depth = u16::try_from(crate::num::parse_u64(&b[d..c.i])?).ok().filter(|&d| d > 0)?;
    c.lit(b".")?;
    let topic_symbol = c.ascii_string()?;
    c.lit(b",\"type\":\"")?;
    let kind = if c.lit(b"delta\"").is_some() {
        Kind::Update
    } else {
        c.lit(b"snapshot\"")?;
        Kind::Snapshot
    };
    c.lit(b",\"ts\":")?;
    let ts = c.uint()?;
    c.lit(b",\"data\":{\"s\":\"")?;
    let symbol = c.ascii_string()?;
    // Another symbol's levels are the walker's to refuse.
    if b.get(symbol.range())? != b.get(topic_symbol.range())? {
        return None;
    }
    out.clear();
    c.lit(b",\"b\":")?;
    let bids = c.string_levels::<false>(out)?;
    c.lit(b",\"a\":")?;
    let asks = c.string_levels::<false>(out)?;
    c.lit(b",\"u\":")?;
    let u = c.uint()?;
    c.lit(b",\"seq\":")?;
    let cross_seq = c.uint()?;
    c.lit(b"},\"cts\":")?;
    c.uint()?;
    c.lit(b"}")?;
    if c.i != b.len() {
        return None;
    }
    let sequence = Some(Sequence { first: u, last: u, prev: None });
    out.entries.push(RawEntry { symbol, bids, asks, time_ms: Some(ts), sequence, ..RawEntry::EMPTY });
    Some(bybit::Raw::Book { depth, cross_seq: Some(cross_seq), legacy: false, kind })
}

/// Reads a Binance raw-stream `depthUpdate` event (spot, or USD-M with `T` and `pu`) laid out as
/// Binance sends it, or returns `None`.
#[inline]
pub(crate) fn binance_book(b: &[u8], out: &mut Scratch) -> Option<binance::Raw> {
    let mut c = Cursor { b, i: 0 };
    c.lit(b"{\"e\":\"depthUpdate\",\"E\":")?;
    let time = c.uint()?;
    if c.lit(b",\"T\":").is_some() {
        c.uint()?;
    }
    c.lit(b",\"s\":\"")?;
    let symbol = c.ascii_string()?;
    c.lit(b",\"U\":")?;
    let first = c.uint()?;
    c.lit(b",\"u\":")?;
    let last = c.uint()?;
    // USD-M's `-1` (no previous event) and `U` above `u` are the walker's to read or refuse.
    let prev = if c.lit(b",\"pu\":").is_some() { Some(c.uint()?) } else { None };
    if first > last {
        return None;
    }
    out.clear();
    c.lit(b",\"b\":")?;
    let bids = c.string_levels::<false>(out)?;
    c.lit(b",\"a\":")?;
    let asks = c.string_levels::<false>(out)?;
    c.lit(b"}")?;
    if c.i != b.len() {
        return None;
    }
    let sequence = Some(Sequence { first, last, prev });
    out.entries.push(RawEntry { symbol, bids, asks, time_ms: Some(time), sequence, ..RawEntry::EMPTY });
    Some(binance::Raw::Book { stream: None })
}

/// Reads an OKX book push laid out as OKX sends it, or returns `None`: with an `action` (`books`
/// and the tick-by-tick channels), `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update",
/// "data":[{"asks":[["p","q","0","n"]],"bids":[],"ts":"ms","checksum":N,"prevSeqId":N,"seqId":N}]}`;
/// without one (`books5`, `bbo-tbt`: each push a whole book), `{"arg":{...},"data":[{"asks":[],
/// "bids":[],"instId":"BTC-USDT","ts":"ms","seqId":N}]}`, the data's `instId` only on `books5`.
#[inline]
pub(crate) fn okx_book(b: &[u8], out: &mut Scratch) -> Option<okx::Raw> {
    let mut c = Cursor { b, i: 0 };
    c.lit(b"{\"arg\":{\"channel\":\"")?;
    let name = c.ascii_string()?;
    let channel = okx::Channel::from_name(b.get(name.range())?)?;
    c.lit(b",\"instId\":\"")?;
    let symbol = c.ascii_string()?;
    c.lit(b"}")?;
    let action = c.lit(b",\"action\":\"").is_some();
    let kind = if !action {
        // A push with no action is a whole book; only the whole-book channels send one.
        channel.is_whole().then_some(Kind::Snapshot)?
    } else if c.lit(b"update\"").is_some() {
        Kind::Update
    } else {
        c.lit(b"snapshot\"")?;
        Kind::Snapshot
    };
    out.clear();
    c.lit(b",\"data\":[{\"asks\":")?;
    let asks = c.string_levels::<false>(out)?;
    c.lit(b",\"bids\":")?;
    let bids = c.string_levels::<false>(out)?;
    if !action && c.lit(b",\"instId\":\"").is_some() {
        // Another instrument's levels are the walker's to refuse.
        let inner = c.ascii_string()?;
        if b.get(inner.range())? != b.get(symbol.range())? {
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
    if c.i != b.len() {
        return None;
    }
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
    Some(okx::Raw::Book { channel, kind })
}

/// Reads a Coinbase `l2_data` message laid out as Coinbase sends it, or returns `None`:
/// `{"channel":"l2_data","client_id":"","timestamp":"...","sequence_num":N,"events":[{"type":"update",
/// "product_id":"BTC-USD","updates":[{"side":"bid","event_time":"...","price_level":"p","new_quantity":"q"}]}]}`.
/// The sides come interleaved: offers are held back and appended after the event's bids, as the
/// walker does.
#[inline]
pub(crate) fn coinbase_book(b: &[u8], out: &mut Scratch) -> Option<coinbase::Raw> {
    let mut c = Cursor { b, i: 0 };
    c.lit(b"{\"channel\":\"l2_data\",\"client_id\":\"")?;
    c.ascii_string()?;
    c.lit(b",\"timestamp\":\"")?;
    let timestamp = Some(c.ascii_string()?);
    c.lit(b",\"sequence_num\":")?;
    let n = c.uint()?;
    let sequence = Some(Sequence { first: n, last: n, prev: None });
    c.lit(b",\"events\":[")?;
    out.clear();
    if c.peek()? != b']' {
        loop {
            // As many events as the walker takes; more are its to refuse.
            if out.entries.len() >= coinbase::MAX_EVENTS {
                return None;
            }
            c.lit(b"{\"type\":\"")?;
            let kind = if c.lit(b"update\"").is_some() {
                Kind::Update
            } else {
                c.lit(b"snapshot\"")?;
                Kind::Snapshot
            };
            c.lit(b",\"product_id\":\"")?;
            let symbol = c.ascii_string()?;
            c.lit(b",\"updates\":[")?;
            let start = u32::try_from(out.levels.len()).ok()?;
            out.held.clear();
            if c.peek()? != b']' {
                loop {
                    c.lit(b"{\"side\":\"")?;
                    let bid = if c.lit(b"bid\"").is_some() {
                        true
                    } else {
                        c.lit(b"offer\"")?;
                        false
                    };
                    c.lit(b",\"event_time\":\"")?;
                    c.ascii_string()?;
                    c.lit(b",\"price_level\":")?;
                    let (price, price_value) = c.quoted_decimal()?;
                    c.lit(b",\"new_quantity\":")?;
                    let (qty, qty_value) = c.quoted_decimal()?;
                    c.lit(b"}")?;
                    let level = RawLevel { price, qty, price_value, qty_value, republish: false };
                    if bid {
                        out.levels.push(level);
                    } else {
                        out.held.push(level);
                    }
                    if !c.more()? {
                        break;
                    }
                }
            }
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
            if !c.more()? {
                break;
            }
        }
    }
    c.lit(b"]}")?;
    (c.i == b.len()).then_some(coinbase::Raw::Book { sequence: n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes drawn mostly from the ones the masks tell apart.
    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            b'0'..=b'9',
            Just(b'"'),
            Just(b'\\'),
            Just(b'.'),
            Just(b'/'),
            Just(b':'),
            Just(0x7f),
            Just(0x1f),
            Just(0x20),
            Just(0x80),
            Just(0xb0),
            Just(0xb9),
            any::<u8>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn masks_agree_with_a_byte_at_a_time(bytes in proptest::array::uniform8(byte())) {
            let w = u64::from_le_bytes(bytes);
            let digits = digit_mask(w);
            for (k, &b) in bytes.iter().enumerate() {
                prop_assert_eq!(digits >> (8 * k + 7) & 1 == 1, b.is_ascii_digit(), "byte {} of {:?}", k, bytes);
            }
            // The first stop byte, exactly.
            let stop = |b: u8| matches!(b, b'"' | b'\\' | 0..=0x1f | 0x7f..);
            let first = bytes.iter().position(|&b| stop(b));
            let m = string_stop_mask(w);
            let got = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
            prop_assert_eq!(got, first, "{:?}", bytes);
            // The value of the leading digits.
            let n = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            if n > 0 {
                let expected = bytes[..n].iter().fold(0u64, |v, &b| v * 10 + u64::from(b - b'0'));
                prop_assert_eq!(digits_value(w, u32::try_from(n).unwrap_or(8)), expected, "{:?}", bytes);
            }
        }
    }
}
