//! The fastest path's reader: a cursor over a frame in the exact byte layout an exchange sends.
//!
//! Each exchange module that has a layout matcher (`kraken::layout_v2`/`layout_v1`,
//! `bybit::layout`, `okx::layout`, `coinbase::layout`, `binance::layout`, each its `Dialect::layout`)
//! reads its frames with this [`Cursor`]: literal runs of bytes compared as words, digits and
//! plain-string bytes found eight at a time (SWAR masks), up to eight digits valued with three
//! multiplications, each price and quantity's exact value read in the same pass. On the first byte
//! that does not fit, a matcher gives up (`None`) and the general scanner reads the frame instead,
//! so a frame is never rejected by a matcher, only passed on (a frame the walker would refuse, such
//! as a Bybit data symbol that is not the topic's, is passed on too, for the walker to refuse with
//! its typed error). The frame is checked as UTF-8 before a matcher runs, so the matchers check
//! strings only for what JSON forbids in them unescaped (a backslash starts an escape, which the
//! general scanner handles; a control character is refused by it). The
//! matchers fill the same `Scratch` the walkers do, and the differential tests
//! (`testing::check_parse_*`) hold the two to the same result.

use crate::frame::{Kind, RawLevel, Scratch};
use crate::num::Decimal;
use crate::reader::Span;

/// A position in one frame.
pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    /// The offset of the next byte: a `u32` (frames are far shorter), so that `i + N` for a
    /// small `N` cannot overflow and each bounds check is one compare.
    i: u32,
}

/// `0x01` in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is not an ASCII digit. Exact for the lowest such byte and
/// every byte below it; a byte left clear is always a digit. (Past `'0'`, a digit is 0 to 9, and
/// 0x76 more stays below 0x80; any other byte reaches 0x80 or has the bit already. Only a byte of
/// 0x8A or more past `'0'`, itself flagged, carries into the byte above it, which can then be
/// flagged falsely: a `9` there reads as a non-digit.)
#[inline(always)]
fn non_digit_mask(w: u64) -> u64 {
    let x = w ^ (ONES * u64::from(b'0'));
    (x.wrapping_add(ONES * 0x76) | x) & HIGH
}

/// The high bit of each byte of `w` that cannot be inside a plain string: `"`, `\` or a control
/// character. Exact for the lowest such byte (a byte above it may be flagged falsely, which the
/// callers never look at). Any other byte may be in a string: the frame is checked as UTF-8
/// before a matcher runs.
#[inline(always)]
fn string_stop_mask(w: u64) -> u64 {
    // Below 0x21 once bit 1 is flipped: a control character (it stays below 0x20) or the quote
    // (0x22 becomes 0x20); a space becomes 0x22, `!` 0x23, `#` 0x21, so nothing else.
    let v = w ^ (ONES * 0x02);
    let quote_or_control = v.wrapping_sub(ONES * 0x21) & !v & HIGH;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b & HIGH;
    quote_or_control | backslash
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

/// How many ASCII digits `w` starts with (0 to 8).
#[inline(always)]
fn leading_digits(w: u64) -> u32 {
    non_digit_mask(w).trailing_zeros() / 8
}

/// The first eight of nine bytes as a little-endian word (the ninth is the byte after a run of
/// eight digits, which the callers look at too).
#[inline(always)]
fn word_of(b: &[u8; 9]) -> u64 {
    let [b0, b1, b2, b3, b4, b5, b6, b7, _] = *b;
    u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
}

/// 10^n for n up to 8.
const POW10: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

impl<'a> Cursor<'a> {
    /// A cursor at the start of `b`.
    #[inline(always)]
    pub(crate) fn new(b: &'a [u8]) -> Self {
        // A frame too long for the index gets an empty cursor, which no matcher accepts (none
        // can: every dialect caps its frames far below this).
        let b = if u32::try_from(b.len()).is_ok() { b } else { &[] };
        Self { b, i: 0 }
    }

    /// The offset of the next byte.
    #[inline(always)]
    fn at(&self) -> usize {
        self.i as usize
    }

    /// Moves to offset `i`, which is at most the frame's length (so it fits the index).
    #[inline(always)]
    fn set(&mut self, i: usize) {
        debug_assert!(i <= self.b.len());
        #[allow(clippy::cast_possible_truncation, reason = "at most the frame's length, which `new` keeps within u32")]
        {
            self.i = i as u32;
        }
    }

    /// Moves `n` bytes on (never past the frame's end).
    #[inline(always)]
    fn skip(&mut self, n: usize) {
        self.set(self.at() + n);
    }

    /// Whether the whole frame has been read.
    #[inline(always)]
    pub(crate) fn at_end(&self) -> bool {
        self.at() == self.b.len()
    }

    /// Whether two spans of the frame hold the same text.
    #[inline(always)]
    pub(crate) fn same(&self, a: Span, b: Span) -> Option<bool> {
        Some(self.b.get(a.range())? == self.b.get(b.range())?)
    }

    /// A message kind and its closing quote: `update` (under the exchange's name for it, quote
    /// included) or `snapshot"`.
    #[inline(always)]
    pub(crate) fn kind<const N: usize>(&mut self, update: &[u8; N]) -> Option<Kind> {
        if self.lit(update).is_some() {
            return Some(Kind::Update);
        }
        self.lit(b"snapshot\"").map(|()| Kind::Snapshot)
    }

    /// The elements of a list after its `[`, each read by `item`, up to its `]` (not read); an
    /// empty list reads none.
    #[inline(always)]
    pub(crate) fn list(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.peek()? != b']' {
            loop {
                item(self)?;
                if !self.more()? {
                    break;
                }
            }
        }
        Some(())
    }

    /// The literal `s` at the cursor. Its length is a constant, so the comparison compiles to a
    /// few word compares instead of a call to `memcmp`: up to 32 bytes, which the build holds
    /// every literal to (comparing a longer array is a call to `bcmp`; a caller splits a longer
    /// literal in two).
    #[inline(always)]
    pub(crate) fn lit<const N: usize>(&mut self, s: &[u8; N]) -> Option<()> {
        const { assert!(N <= 32, "a literal longer than 32 bytes is compared by a call to bcmp") };
        let here: &[u8; N] = self.b.get(self.at()..self.at() + N)?.try_into().ok()?;
        if here == s {
            self.skip(s.len());
            Some(())
        } else {
            None
        }
    }

    /// The four bytes after the byte `first` at the cursor (which must be `first`), for a caller
    /// choosing among literals by them; the cursor does not move (see [`Cursor::skip_known`]).
    #[inline(always)]
    pub(crate) fn quad_after(&self, first: u8) -> Option<[u8; 4]> {
        let at = self.at();
        let &[f, a, b, c, d] = self.b.get(at..at + 5)? else { return None };
        (f == first).then_some([a, b, c, d])
    }

    /// Moves past `n` bytes a caller has just read (at most five, after [`Cursor::quad_after`]).
    #[inline(always)]
    pub(crate) fn skip_known(&mut self, n: usize) {
        debug_assert!(n <= 5 && self.at() + n <= self.b.len());
        self.skip(n);
    }

    #[inline(always)]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.at()).copied()
    }

    /// A string body up to its closing quote (moved past): no escapes and no control characters,
    /// which are left to the general scanner. Any other byte is let through: the frame was checked
    /// as UTF-8 before any matcher ran, and JSON allows any character in a string.
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Option<Span> {
        self.string_with::<false>()
    }

    /// [`Cursor::string`] for a string that ends in the frame's last eight bytes (Kraken v2's time
    /// stamp): the bytes left after the last whole word are read as one word too, from the
    /// frame's end, instead of one at a time. Kept apart because the larger code costs the loops
    /// that read strings far from the end more than it saves them (callgrind, v1 depth 1000: +1.8%).
    #[inline(always)]
    pub(crate) fn last_string(&mut self) -> Option<Span> {
        self.string_with::<true>()
    }

    #[inline(always)]
    fn string_with<const LAST: bool>(&mut self) -> Option<Span> {
        let start = self.at();
        // Eight bytes at a time while eight remain.
        while let Some(w) = self.word() {
            let stop = string_stop_mask(w);
            if stop != 0 {
                // The lowest flagged byte is the first that stops the string.
                self.skip((stop.trailing_zeros() / 8) as usize);
                return self.close_string(start);
            }
            self.skip(8);
        }
        let left = self.b.len() - self.at();
        if LAST
            && let Some(last) = self.b.last_chunk::<8>()
            && left > 0
        {
            // The frame's last eight bytes, shifted down so that the first byte left is lowest.
            // The zeros shifted in read as control characters, so the lowest flagged byte is at
            // most the frame's end, where `close_string` finds no quote.
            let stop = string_stop_mask(u64::from_le_bytes(*last) >> (8 * (8 - left)));
            self.skip((stop.trailing_zeros() / 8) as usize);
            return self.close_string(start);
        }
        loop {
            match *self.b.get(self.at())? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.skip(1),
            }
        }
        self.close_string(start)
    }

    /// The end of a string begun at `start`, at the cursor: its span, when the byte there is the
    /// closing quote (moved past).
    #[inline(always)]
    fn close_string(&mut self, start: usize) -> Option<Span> {
        (self.peek()? == b'"').then(|| {
            let span = Span::new(start, self.at());
            self.skip(1);
            span
        })
    }

    /// A string body whose text the caller does not keep (Kraken v1's level time stamps), up to
    /// and including its closing quote, as [`Cursor::string`] reads it.
    #[inline(always)]
    pub(crate) fn skip_string(&mut self) -> Option<()> {
        self.string().map(drop)
    }

    /// A Kraken v1 level time stamp, up to and including its closing quote: the usual
    /// `dddddddddd.dddddd"` (seconds and microseconds) checked with two word masks and two bytes,
    /// anything else by [`Cursor::skip_string`].
    #[inline(always)]
    pub(crate) fn skip_time(&mut self) -> Option<()> {
        if let Some((w1, rest)) = self.b.get(self.at()..).and_then(<[u8]>::split_first_chunk::<8>)
            && let Some((w2, rest)) = rest.split_first_chunk::<8>()
            && let Some(&[c, q]) = rest.first_chunk::<2>()
        {
            let (w1, w2) = (u64::from_le_bytes(*w1), u64::from_le_bytes(*w2));
            // Every byte of the first word a digit; the second's third byte the dot, the others
            // digits; then a digit and the quote.
            const DOT: u64 = 0x80 << 16;
            // (A byte the mask leaves clear is a digit, whatever carried into it.)
            if non_digit_mask(w1) == 0
                && non_digit_mask(w2) == DOT
                && (w2 >> 16) & 0xff == u64::from(b'.')
                && c.is_ascii_digit()
                && q == b'"'
            {
                self.skip(18);
                return Some(());
            }
        }
        self.skip_string()
    }

    /// The eight bytes at the cursor, as a little-endian word (the first byte lowest).
    #[inline(always)]
    fn word(&self) -> Option<u64> {
        self.word_at(0)
    }

    /// The eight bytes `off` bytes past the cursor, as [`Cursor::word`] reads them.
    #[inline(always)]
    fn word_at(&self, off: usize) -> Option<u64> {
        let at = self.at() + off;
        let b: [u8; 8] = self.b.get(at..at + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// A run of ASCII digits, folded into `m` (wrapping: callers refuse runs too long to fit),
    /// eight at a time while eight bytes remain; returns the run's length.
    #[inline(always)]
    fn digit_run(&mut self, m: &mut u64) -> usize {
        let start = self.at();
        while let Some(w) = self.word() {
            let n = leading_digits(w);
            if n > 0 {
                *m = m.wrapping_mul(POW10[n as usize]).wrapping_add(digits_value(w, n));
                self.skip(n as usize);
            }
            if n < 8 {
                return self.at() - start;
            }
        }
        while let Some(d @ b'0'..=b'9') = self.peek() {
            *m = m.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.skip(1);
        }
        self.at() - start
    }

    /// A run of ASCII digits; returns its length (its value is read by the caller's own rules).
    #[inline(always)]
    pub(crate) fn digits(&mut self) -> usize {
        self.digit_run(&mut 0)
    }

    /// A run of ASCII digits (at least one) as text, for a number the caller reads its own way.
    #[inline(always)]
    pub(crate) fn digit_text(&mut self) -> Option<Span> {
        let start = self.at();
        (self.digits() > 0).then(|| Span::new(start, self.at()))
    }

    /// A JSON number (the full grammar: sign, fraction, exponent).
    #[inline(always)]
    fn number(&mut self) -> Option<Span> {
        let start = self.at();
        if self.peek() == Some(b'-') {
            self.skip(1);
        }
        match self.peek()? {
            b'0' => self.skip(1),
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.skip(1);
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.skip(1);
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.skip(1);
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(Span::new(start, self.at()))
    }

    /// A decimal number `digits[.digits]` whose value is read in the same pass. Anything else
    /// (sign, exponent, more than 19 digits) falls back to [`Cursor::number`] with no value.
    #[inline(always)]
    pub(crate) fn decimal(&mut self) -> Option<(Span, Option<Decimal>)> {
        match self.short_decimal() {
            Some(d) => Some(d),
            None => self.any_decimal(),
        }
    }

    /// [`Cursor::decimal`] in the usual shape, branch-light: 1 to 7 digits (no leading zero), a
    /// dot, 1 to 8 digits and a byte that neither continues nor exponentiates the number, read
    /// from two words. `None`, with the cursor unmoved, for anything else.
    #[inline(always)]
    fn short_decimal(&mut self) -> Option<(Span, Option<Decimal>)> {
        let start = self.at();
        let w = self.word()?;
        let n = leading_digits(w);
        if !(1..8).contains(&n) || (n > 1 && w & 0xff == u64::from(b'0')) {
            return None;
        }
        let frac = start + n as usize + 1;
        if self.b.get(frac - 1) != Some(&b'.') {
            return None;
        }
        let f: &[u8; 9] = self.b.get(frac..frac + 9)?.try_into().ok()?;
        let w2 = word_of(f);
        let k = leading_digits(w2);
        let after = f[k.min(8) as usize];
        // Below eight digits, the byte after them is the mask's first non-digit, so only the
        // ninth byte can be one more digit.
        if k == 0 || (k == 8 && after.is_ascii_digit()) || after | 0x20 == b'e' {
            return None;
        }
        let scale = u8::try_from(k).ok()?;
        let end = frac + k as usize;
        self.set(end);
        let m = digits_value(w, n) * POW10[k as usize] + digits_value(w2, k);
        Some((Span::new(start, end), Some(Decimal { mantissa: m, scale })))
    }

    /// [`Cursor::decimal`] in any shape.
    #[inline(always)]
    fn any_decimal(&mut self) -> Option<(Span, Option<Decimal>)> {
        let start = self.at();
        let mut m: u64 = 0;
        let n = self.digit_run(&mut m);
        // JSON forbids leading zeros ("01"); leave such text to the full grammar check.
        if n == 0 || (n > 1 && self.b[start] == b'0') {
            self.set(start);
            return self.number().map(|s| (s, None));
        }
        let mut scale = 0usize;
        if self.peek() == Some(b'.') {
            self.skip(1);
            scale = self.digit_run(&mut m);
            if scale == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) || n + scale > 19 {
            self.set(start);
            return self.number().map(|s| (s, None));
        }
        let value = u8::try_from(scale).ok().map(|scale| Decimal { mantissa: m, scale });
        Some((Span::new(start, self.at()), value))
    }

    /// A price or quantity sent as a string, after its opening quote (which the caller reads as
    /// the end of a longer literal), up to and including its closing quote: its text, and its
    /// exact value when it is a plain decimal (anything else keeps its text and no value, as in
    /// the general reader). The value is read in the same pass as the text when the text is
    /// `digits[.digits]`, as [`Decimal::parse`] reads it.
    #[inline(always)]
    pub(crate) fn decimal_body(&mut self) -> Option<(Span, Option<Decimal>)> {
        let start = self.at();
        // The usual shape first, branch-light: 1 to 7 digits, a dot, 1 to 8 digits, the quote,
        // read from two words.
        if let Some(w) = self.word() {
            let n = leading_digits(w);
            if (1..8).contains(&n) && self.b.get(start + n as usize) == Some(&b'.') {
                let frac = start + n as usize + 1;
                if let Some(f) = self.b.get(frac..frac + 9).and_then(|f| <&[u8; 9]>::try_from(f).ok()) {
                    let w2 = word_of(f);
                    let k = leading_digits(w2);
                    if k > 0 && f[k as usize] == b'"' {
                        let m = digits_value(w, n) * POW10[k as usize] + digits_value(w2, k);
                        return Some(self.quoted_end(start, frac + k as usize, m, k));
                    }
                    // Nine to sixteen decimals (small prices quoted in another coin): a third word,
                    // within the 19 digits a value holds.
                    if k == 8
                        && let Some(g) = self.b.get(frac + 8..frac + 17).and_then(|g| <&[u8; 9]>::try_from(g).ok())
                    {
                        let w3 = word_of(g);
                        let k3 = leading_digits(w3);
                        if k3 > 0 && n + 8 + k3 <= 19 && g[k3 as usize] == b'"' {
                            let m = (digits_value(w, n) * POW10[8] + digits_value(w2, 8)) * POW10[k3 as usize]
                                + digits_value(w3, k3);
                            return Some(self.quoted_end(start, frac + 8 + k3 as usize, m, 8 + k3));
                        }
                    }
                }
            }
        }
        let mut m: u64 = 0;
        let n = self.digit_run(&mut m);
        let dot = n > 0 && self.peek() == Some(b'.');
        let mut scale = 0;
        if dot {
            self.skip(1);
            scale = self.digit_run(&mut m);
        }
        // `5.` is not a plain decimal: [`Decimal::parse`] gives it no value, and neither does this.
        if n > 0 && (!dot || scale > 0) && n + scale <= 19 && self.peek() == Some(b'"') {
            let span = Span::new(start, self.at());
            self.skip(1);
            return Some((span, u8::try_from(scale).ok().map(|scale| Decimal { mantissa: m, scale })));
        }
        self.set(start);
        let span = self.string()?;
        Some((span, Decimal::parse(&self.b[span.range()])))
    }

    /// The end of a quoted decimal read on a fast path, its text `start..end`: moves past the
    /// closing quote and gives the text's span and value.
    #[inline(always)]
    fn quoted_end(&mut self, start: usize, end: usize, mantissa: u64, scale: u32) -> (Span, Option<Decimal>) {
        self.set(end + 1);
        (Span::new(start, end), u8::try_from(scale).ok().map(|scale| Decimal { mantissa, scale }))
    }

    /// A JSON integer of at most 19 digits, valued in the same pass. Anything else (a sign, a
    /// fraction, an exponent, a leading zero, more digits) is left to the general scanner.
    #[inline(always)]
    pub(crate) fn uint(&mut self) -> Option<u64> {
        // Up to fifteen digits (every id, sequence, checksum and millisecond time stamp the
        // exchanges send) from two words, with no loop; the byte that ends the run is in them.
        if let Some(w) = self.word() {
            let n = leading_digits(w);
            if n == 0 || (n > 1 && w & 0xff == u64::from(b'0')) {
                return None;
            }
            if n < 8 {
                return self.uint_end(n, digits_value(w, n), w.to_le_bytes()[n as usize]);
            }
            if let Some(w2) = self.word_at(8) {
                let k = leading_digits(w2);
                if k < 8 {
                    let high = digits_value(w, 8);
                    let v = if k == 0 { high } else { high * POW10[k as usize] + digits_value(w2, k) };
                    return self.uint_end(8 + k, v, w2.to_le_bytes()[k as usize]);
                }
            }
        }
        let start = self.at();
        let mut m: u64 = 0;
        let n = self.digit_run(&mut m);
        ((1..=19).contains(&n) && (n == 1 || self.b[start] != b'0') && !matches!(self.peek(), Some(b'.' | b'e' | b'E')))
            .then_some(m)
    }

    /// The end of a run of `len` digits valued `v` read by [`Cursor::uint`], `after` the byte
    /// that ended it: moves past the run, unless that byte makes the number a fraction or an
    /// exponent.
    #[inline(always)]
    fn uint_end(&mut self, len: u32, v: u64, after: u8) -> Option<u64> {
        if matches!(after, b'.' | b'e' | b'E') {
            return None;
        }
        self.skip(len as usize);
        Some(v)
    }

    /// A JSON integer that fits an `i64`, read as [`Cursor::uint`] reads its digits.
    #[inline(always)]
    pub(crate) fn int(&mut self) -> Option<i64> {
        let neg = self.lit(b"-").is_some();
        let v = i64::try_from(self.uint()?).ok()?;
        Some(if neg { -v } else { v })
    }

    /// After an element: a comma means another follows.
    #[inline(always)]
    pub(crate) fn more(&mut self) -> Option<bool> {
        let comma = self.peek()? == b',';
        self.skip(usize::from(comma));
        Some(comma)
    }

    /// `,"b":[levels],"a":[levels]`: bids then asks under one-letter keys, each read by
    /// [`Cursor::string_levels`] into the scratch, which is cleared first.
    #[inline(always)]
    pub(crate) fn b_a_levels(&mut self, out: &mut Scratch) -> Option<((u32, u32), (u32, u32))> {
        out.clear();
        self.lit(b",\"b\":")?;
        let bids = self.string_levels::<false>(out)?;
        self.lit(b",\"a\":")?;
        let asks = self.string_levels::<false>(out)?;
        Some((bids, asks))
    }

    /// `[["price","qty",...],...]` (Bybit, Binance, OKX), or with `V1` Kraken v1's
    /// `[["price","volume","timestamp"(,"r")?],...]`.
    #[inline(always)]
    pub(crate) fn string_levels<const V1: bool>(&mut self, out: &mut Scratch) -> Option<(u32, u32)> {
        let start = u32::try_from(out.levels.len()).ok()?;
        // A local cursor, written back at the end: its position can live in a register through
        // the loop instead of being stored at every step (a matcher that gives up leaves its
        // cursor anywhere anyway).
        let mut local = Cursor { b: self.b, i: self.i };
        let c = &mut local;
        c.lit(b"[")?;
        c.list(|c| {
            // Each literal takes in the quote that opens the next string.
            c.lit(b"[\"")?;
            let (price, price_value) = c.decimal_body()?;
            c.lit(b",\"")?;
            let (qty, qty_value) = c.decimal_body()?;
            let mut republish = false;
            if V1 {
                c.lit(b",\"")?;
                c.skip_time()?;
                republish = c.lit(b",\"r\"").is_some();
            } else {
                // Further string fields (OKX's `"0"` and order count) are skipped, as the
                // walkers skip them.
                while c.lit(b",\"").is_some() {
                    c.string()?;
                }
            }
            c.lit(b"]")?;
            out.levels.push(RawLevel { price, qty, price_value, qty_value, republish });
            Some(())
        })?;
        c.lit(b"]")?;
        self.i = local.i;
        Some((start, u32::try_from(out.levels.len()).ok()?))
    }
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

    /// `skip_time` ends where `skip_string` ends, or fails where it fails.
    fn check_skip_time(b: &[u8]) {
        let (mut fast, mut slow) = (Cursor::new(b), Cursor::new(b));
        let (f, s) = (fast.skip_time(), slow.skip_string());
        assert_eq!(f, s, "{:?}", String::from_utf8_lossy(b));
        if f.is_some() {
            assert_eq!(fast.at(), slow.at(), "{:?}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn skip_time_agrees_with_skip_string_around_the_usual_stamp() {
        let stamp = b"1618678161.488162\"]";
        check_skip_time(stamp);
        // Every byte of the usual shape replaced by each byte the masks tell apart.
        for at in 0..stamp.len() {
            for b in [b'0', b'9', b'.', b'"', b'\\', b'/', b':', 0x1f, 0x7f, 0x80, b'a'] {
                let mut s = stamp.to_vec();
                s[at] = b;
                check_skip_time(&s);
                check_skip_time(&s[..at]);
            }
        }
        assert!(Cursor::new(b"1618678161.488162\"").skip_time().is_some());
        assert!(Cursor::new(b"1618678161.488162").skip_time().is_none());
    }

    /// The shapes Kraken v2 sends take the short path (which reads whole words, so it wants as
    /// much frame after a number as a real frame has), so its proptest is not vacuous.
    #[test]
    fn the_usual_decimals_take_the_short_path() {
        let d = |mantissa, scale| Some(Decimal { mantissa, scale });
        let short = |b: &[u8]| Cursor::new(b).short_decimal().map(|(_, v)| v);
        assert_eq!(short(b"29430.3,\"qty\":1"), Some(d(294_303, 1)));
        assert_eq!(short(b"8.25182177}],\"asks\""), Some(d(825_182_177, 8)));
        assert_eq!(short(b"0.5},{\"price\""), Some(d(5, 1)));
        assert_eq!(short(b"0.5e3},{\"price\""), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn skip_time_agrees_with_skip_string(bytes in proptest::collection::vec(byte(), 0..24)) {
            check_skip_time(&bytes);
        }

        /// The short path reads a number as the general one does, or leaves it to it.
        #[test]
        fn short_decimal_agrees_with_any_decimal(
            int in "-?[0-9]{0,9}",
            frac in proptest::option::of("[0-9]{0,10}"),
            exp in proptest::option::of("[eE][+-]?[0-9]{0,2}"),
            tail in proptest::collection::vec(byte(), 0..12),
        ) {
            let mut b = int.into_bytes();
            if let Some(f) = frac {
                b.push(b'.');
                b.extend_from_slice(f.as_bytes());
            }
            if let Some(e) = exp {
                b.extend_from_slice(e.as_bytes());
            }
            b.extend_from_slice(&tail);
            let (mut short, mut any) = (Cursor::new(&b), Cursor::new(&b));
            match short.short_decimal() {
                Some(got) => {
                    prop_assert_eq!(Some(got), any.any_decimal(), "{:?}", String::from_utf8_lossy(&b));
                    prop_assert_eq!(short.at(), any.at());
                }
                None => prop_assert_eq!(short.at(), 0),
            }
        }

        /// A quoted decimal of any length read by the fast paths gives the text and the value
        /// that `Decimal::parse` gives, whatever follows it.
        #[test]
        fn decimal_body_agrees_with_decimal_parse(
            int in "[0-9]{1,9}",
            frac in proptest::option::of("[0-9]{0,18}"),
            tail in proptest::collection::vec(byte(), 0..12),
        ) {
            let text = match &frac { Some(f) => format!("{int}.{f}"), None => int.clone() };
            let mut b = format!("\"{text}\"").into_bytes();
            b.extend_from_slice(&tail);
            let mut c = Cursor::new(&b);
            c.lit(b"\"").unwrap();
            let (span, value) = c.decimal_body().unwrap();
            prop_assert_eq!(&b[span.range()], text.as_bytes());
            prop_assert_eq!(value, Decimal::parse(text.as_bytes()), "{}", text);
            prop_assert_eq!(c.at(), text.len() + 2);
        }

        /// `uint` reads what a byte-at-a-time reading of a JSON integer of at most 19 digits
        /// reads, and moves to the byte after it; anything else it refuses.
        #[test]
        fn uint_agrees_with_a_byte_at_a_time(
            digits in "[0-9]{0,22}",
            tail in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'e'), Just(b'E'), byte()], 0..12),
        ) {
            let mut b = digits.clone().into_bytes();
            b.extend_from_slice(&tail);
            let mut c = Cursor::new(&b);
            let got = c.uint().map(|v| (v, c.at()));
            let n = b.iter().take_while(|d| d.is_ascii_digit()).count();
            let plain = (1..=19).contains(&n)
                && (n == 1 || b[0] != b'0')
                && !matches!(b.get(n), Some(b'.' | b'e' | b'E'));
            let want = plain.then(|| (b[..n].iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')), n));
            prop_assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&b));
        }

        #[test]
        fn string_agrees_with_a_byte_at_a_time(before in 0usize..10, bytes in proptest::collection::vec(byte(), 0..24), last: bool) {
            // The string starts `before` bytes into the frame, after bytes that would stop it (a
            // last word read from the frame's end must not look at them).
            let frame = [vec![b'"'; before], bytes.clone()].concat();
            let mut c = Cursor::new(&frame);
            c.set(before);
            let got = if last { c.last_string() } else { c.string() }.map(|span| (span.range(), c.at()));
            // The body ends at the first quote, backslash or control character, and only a quote
            // ends it well.
            let end = bytes.iter().position(|&b| matches!(b, b'"' | b'\\' | 0..=0x1f)).map(|e| before + e);
            let want = end.filter(|&e| frame[e] == b'"').map(|e| (before..e, e + 1));
            prop_assert_eq!(got, want, "{:?}", frame);
        }

        #[test]
        fn masks_agree_with_a_byte_at_a_time(bytes in proptest::array::uniform8(byte())) {
            let w = u64::from_le_bytes(bytes);
            // Exact up to the first non-digit; past it, a clear byte is still a digit.
            let non_digits = non_digit_mask(w);
            let first_non_digit = bytes.iter().position(|b| !b.is_ascii_digit()).unwrap_or(8);
            for (k, &b) in bytes.iter().enumerate() {
                let flagged = non_digits >> (8 * k + 7) & 1 == 1;
                if k <= first_non_digit {
                    prop_assert_eq!(flagged, !b.is_ascii_digit(), "byte {} of {:?}", k, bytes);
                } else if !flagged {
                    prop_assert!(b.is_ascii_digit(), "byte {} of {:?}", k, bytes);
                }
            }
            // The first stop byte, exactly.
            let stop = |b: u8| matches!(b, b'"' | b'\\' | 0..=0x1f);
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
