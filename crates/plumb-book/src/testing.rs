//! A naive reference book and the fuzz check built on it. Not part of the stable API: the
//! proptests and the `apply_ops` fuzz target share it, so that both hold the book to one model.

use std::collections::BTreeMap;

use crate::{Book, Depth, Precision, Side};

/// The reference: a `BTreeMap` per side keyed by the exact value (at scale 18), holding the
/// checksum text forms, and a checksum built the slow way.
#[derive(Debug, Default, Clone)]
pub struct Model {
    bids: BTreeMap<u128, Lvl>,
    asks: BTreeMap<u128, Lvl>,
}

/// One level of the model: its price and quantity as (mantissa, scale), the exact text forms
/// (a plain decimal text is its mantissa's digits with `scale` decimals), and its checksum
/// digits (both mantissas' digits), worked out once when the level is set, so that comparing
/// after every message costs integer compares and one hash of cached bytes.
#[derive(Debug, Clone, Copy)]
struct Lvl {
    price: (i128, u8),
    qty: (i128, u8),
    /// Both mantissas' digits when each fits 20 digits (`len` is then at most 40), which every
    /// level a book can hold does; `len == u8::MAX` otherwise, and they are written when needed.
    digits: [u8; 40],
    len: u8,
}

impl Lvl {
    /// A level of these padded values, whose checksum digits are each value's unpadded digits
    /// followed by as many zeros as padding added (a zero has no digits, padded or not).
    fn new(price: (i128, u8), qty: (i128, u8), pd: (&[u8], u8), qd: (&[u8], u8)) -> Self {
        let mut l = Self { price, qty, digits: [b'0'; 40], len: 0 };
        let mut at = 0;
        for (d, zeros) in [pd, qd] {
            let zeros = if d.is_empty() { 0 } else { usize::from(zeros) };
            if d.len() + zeros > 20 {
                l.len = u8::MAX;
                return l;
            }
            l.digits[at..][..d.len()].copy_from_slice(d);
            at += d.len() + zeros;
        }
        l.len = u8::try_from(at).unwrap_or(u8::MAX);
        l
    }

    /// Writes the level's checksum digits to the start of `out` (at least 80 bytes long) and
    /// returns how many.
    fn write(&self, out: &mut [u8]) -> usize {
        if self.len == u8::MAX {
            let mut buf = [0; 40];
            let p = digits(self.price.0, &mut buf);
            let np = p.len();
            out[..np].copy_from_slice(p);
            let q = digits(self.qty.0, &mut buf);
            out[np..][..q.len()].copy_from_slice(q);
            np + q.len()
        } else {
            let n = usize::from(self.len);
            out[..n].copy_from_slice(&self.digits[..n]);
            n
        }
    }
}

/// A plain decimal text as (mantissa, scale), or `None` if it is not one or does not fit.
fn split(text: &str) -> Option<(i128, u8)> {
    let (i, f) = text.split_once('.').unwrap_or((text, ""));
    let mut m: i128 = 0;
    for c in i.bytes().chain(f.bytes()) {
        m = m.checked_mul(10)?.checked_add(i128::from(c.checked_sub(b'0').filter(|d| *d < 10)?))?;
    }
    Some((m, u8::try_from(f.len()).ok()?))
}

/// `(m, s)` written with at least `dp` decimals, as padding the text with trailing zeros does.
fn padded((m, s): (i128, u8), dp: u8) -> (i128, u8) {
    if dp <= s { (m, s) } else { (m * 10i128.pow(u32::from(dp - s)), dp) }
}

/// The text of `(m, s)`: its digits with `s` decimals.
fn text((m, s): (i128, u8)) -> String {
    let digits = format!("{m:0>width$}", width = usize::from(s) + 1);
    let (i, f) = digits.split_at(digits.len() - usize::from(s));
    if f.is_empty() { i.to_owned() } else { format!("{i}.{f}") }
}

/// The checksum digits of a text (without the dot and leading zeros): its mantissa's decimal
/// digits, written into `buf` without allocating.
fn digits(mut m: i128, buf: &mut [u8; 40]) -> &[u8] {
    // Read once per text and per level set (the comparison hashes kept digits), so plain
    // division is fast enough.
    let mut at = buf.len();
    while m > 0 {
        at -= 1;
        buf[at] = b'0' + u8::try_from(m % 10).unwrap_or(0);
        m /= 10;
    }
    &buf[at..]
}

/// The value of a plain decimal text at scale 18, or `None` if it is not one.
#[must_use]
pub fn value(text: &str) -> Option<u128> {
    let (i, f) = text.split_once('.').unwrap_or((text, ""));
    if i.is_empty() || f.len() > 18 || !i.bytes().chain(f.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: u128 = i.parse().ok()?;
    for k in 0..18 {
        v = v.checked_mul(10)?.checked_add(u128::from(f.as_bytes().get(k).map_or(0, |c| c - b'0')))?;
    }
    Some(v)
}

impl Model {
    /// Sets or deletes a level from text, as the book should.
    pub fn set(&mut self, side: Side, p: &str, q: &str, prec: Option<Precision>) {
        // Text the book refuses (not plain, or more decimals than it keeps) is not a level.
        let (Some(v), Some(_), Some(price), Some(qty)) = (value(p), value(q), split(p), split(q)) else { return };
        let (mut pb, mut qb) = ([0; 40], [0; 40]);
        self.set_value(side, v, (price, digits(price.0, &mut pb)), (qty, digits(qty.0, &mut qb)), prec);
    }

    /// Sets or deletes a level already read: the price's value at scale 18, the price and the
    /// quantity as (mantissa, scale).
    fn set_value(
        &mut self,
        side: Side,
        v: u128,
        (price, pd): ((i128, u8), &[u8]),
        (qty, qd): ((i128, u8), &[u8]),
        prec: Option<Precision>,
    ) {
        let m = if side == Side::Bid { &mut self.bids } else { &mut self.asks };
        if qty.0 == 0 {
            m.remove(&v);
        } else {
            let (pp, qp) = prec.map_or((0, 0), |x| (x.price, x.qty));
            let (p, q) = (padded(price, pp), padded(qty, qp));
            m.insert(v, Lvl::new(p, q, (pd, p.1 - price.1), (qd, q.1 - qty.1)));
        }
    }

    /// Keeps the best `depth` levels of each side.
    pub fn truncate(&mut self, depth: usize) {
        while self.bids.len() > depth {
            self.bids.pop_first();
        }
        while self.asks.len() > depth {
            self.asks.pop_last();
        }
    }

    /// Empties both sides.
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// (price, qty) text of the bids, best first.
    #[must_use]
    pub fn bids_best_first(&self) -> Vec<(String, String)> {
        self.bids.values().rev().map(|l| (text(l.price), text(l.qty))).collect()
    }

    /// (price, qty) text of the asks, best first.
    #[must_use]
    pub fn asks_best_first(&self) -> Vec<(String, String)> {
        self.asks.values().map(|l| (text(l.price), text(l.qty))).collect()
    }

    /// Whether the best bid is at or above the best ask.
    #[must_use]
    pub fn is_crossed(&self) -> bool {
        matches!((self.bids.keys().next_back(), self.asks.keys().next()), (Some(b), Some(a)) if b >= a)
    }

    /// Kraken's checksum, the slow way: format, strip, concatenate, hash.
    #[must_use]
    pub fn checksum(&self) -> u32 {
        let strip = |s: &str| s.replace('.', "").trim_start_matches('0').to_owned();
        let mut s = String::new();
        for (p, q) in self.asks_best_first().iter().take(10).chain(self.bids_best_first().iter().take(10)) {
            s += &strip(p);
            s += &strip(q);
        }
        crc32fast::hash(s.as_bytes())
    }
}

/// The (price, qty) text of a book side, best first.
#[must_use]
pub fn book_side(book: &Book, side: Side) -> Vec<(String, String)> {
    book.quotes(side).map(|q| (q.price.to_string(), q.qty.to_string())).collect()
}

/// Asserts that a book and the model hold the same levels, checksum and crossed flag.
///
/// # Panics
///
/// When they differ.
pub fn assert_same(book: &Book, model: &Model) {
    assert_eq!(book_side(book, Side::Bid), model.bids_best_first(), "bids");
    assert_eq!(book_side(book, Side::Ask), model.asks_best_first(), "asks");
    assert_eq!(book.checksum(), model.checksum(), "checksum");
    assert_eq!(book.is_crossed(), model.is_crossed(), "crossed");
}

/// Asserts what [`assert_same`] asserts, without allocating: the fuzz check runs it after every
/// message.
///
/// # Panics
///
/// When they differ.
pub fn check_same(book: &Book, model: &Model) {
    fn side<'m>(book: &Book, side: Side, n: usize, theirs: impl Iterator<Item = &'m Lvl>) {
        assert_eq!(book.len(side), n, "{side:?} levels");
        for (q, l) in book.quotes(side).zip(theirs) {
            // The text form of a value is its mantissa's digits with `scale` decimals: equal
            // mantissas and scales are equal texts.
            let mine = ((i128::from(q.price.mantissa), q.price.scale), (i128::from(q.qty.mantissa), q.qty.scale));
            assert!(mine == (l.price, l.qty), "{side:?}: {}@{} against {:?}@{:?}", q.qty, q.price, l.qty, l.price);
        }
    }
    side(book, Side::Bid, model.bids.len(), model.bids.values().rev());
    side(book, Side::Ask, model.asks.len(), model.asks.values());
    // The top twenty levels' digits, gathered on the stack and hashed at once (hashing a few
    // bytes at a time takes the CRC's slow path).
    let mut text = [0u8; 20 * 80];
    let mut n = 0;
    for l in model.asks.values().take(10).chain(model.bids.values().rev().take(10)) {
        n += l.write(&mut text[n..]);
    }
    assert_eq!(book.checksum(), crc32fast::hash(&text[..n]), "checksum");
    assert_eq!(book.is_crossed(), model.is_crossed(), "crossed");
}

/// One text the `apply_ops` check uses, with what the model needs of it read once (by the
/// model's own reading, [`value`] and `split`), so that each operation costs the model a map
/// update and no parse.
struct Text {
    text: String,
    value: u128,
    exact: (i128, u8),
    digits: Vec<u8>,
}

/// The price and quantity texts the `apply_ops` check uses, made once: a few distinct prices,
/// each in several spellings (trailing zeros), so that levels collide; quantities of several
/// widths, and two spellings of zero.
fn texts() -> &'static (Vec<Text>, Vec<Text>) {
    static TEXTS: std::sync::OnceLock<(Vec<Text>, Vec<Text>)> = std::sync::OnceLock::new();
    let read = |text: String| {
        let exact = split(&text).expect("a plain decimal");
        Text {
            value: value(&text).expect("a plain decimal"),
            exact,
            digits: digits(exact.0, &mut [0; 40]).to_vec(),
            text,
        }
    };
    TEXTS.get_or_init(|| {
        let prices = (0..=255u8)
            .map(|pi| format!("{}.{:02}{}", 100 + pi / 16, (pi % 4) * 25, "0".repeat(usize::from((pi / 4) % 4))))
            .map(read)
            .collect();
        let qtys = (0..=255u8)
            .map(|qi| match qi {
                0 => "0".to_owned(),
                1 => "0.000".to_owned(),
                _ => format!("{}.{:0width$}", qi / 7, u32::from(qi) * 37 % 1000, width = usize::from(qi % 4) + 3),
            })
            .map(read)
            .collect();
        (prices, qtys)
    })
}

/// The `apply_ops` fuzz check: bytes become a depth, a precision and a sequence of messages of
/// level changes; after every message the book must equal the model.
///
/// Layout: byte 0 picks the depth (shallow depths most often, so that truncation is the common
/// case), byte 1 the precision; then 3 bytes per operation: flags (bit 0 side; bits 1 and 5 both
/// set: "end of message", so that a message holds four operations on average, as real ones hold
/// several; bits 2-4 all set on a message's first operation: the message is a snapshot, read
/// as a snapshot frame is, into an emptied book), a price index, a quantity.
///
/// # Panics
///
/// When the book and the model disagree.
pub fn check_apply_ops(data: &[u8]) {
    const DEPTHS: [Depth; 8] = [
        Depth::ALL[0],
        Depth::ALL[0],
        Depth::ALL[0],
        Depth::ALL[1],
        Depth::ALL[1],
        Depth::ALL[2],
        Depth::ALL[3],
        Depth::ALL[4],
    ];
    let [d, p, rest @ ..] = data else { return };
    let depth = DEPTHS[usize::from(*d) % DEPTHS.len()];
    let prec = (p & 0x80 != 0).then_some(Precision { price: (p >> 4) & 3, qty: p & 7 });
    let (prices, qtys) = texts();
    let mut book = Book::new(depth, prec);
    let mut model = Model::default();
    let mut start = 0;
    let ops: Vec<&[u8]> = rest.chunks_exact(3).collect();
    let (mut levels, mut strs) = (Vec::with_capacity(ops.len()), Vec::with_capacity(ops.len()));
    while start < ops.len() {
        let end = ops[start..].iter().position(|op| op[0] & 0x22 == 0x22).map_or(ops.len(), |k| start + k + 1);
        let message = &ops[start..end];
        let level = |op: &[u8]| {
            let side = if op[0] & 1 == 0 { Side::Bid } else { Side::Ask };
            (side, &prices[usize::from(op[1])], &qtys[usize::from(op[2])])
        };
        if message[0][0] & 0x1c == 0x1c {
            book.clear();
            model.clear();
            for side in [Side::Ask, Side::Bid] {
                levels.clear();
                levels.extend(message.iter().map(|op| level(op)).filter(|l| l.0 == side).map(|(_, p, q)| (p, q)));
                strs.clear();
                strs.extend(levels.iter().map(|(p, q)| (p.text.as_str(), q.text.as_str())));
                book.fill_text(side, &strs).expect("in-range text, small sides");
                for (p, q) in &levels {
                    model.set_value(side, p.value, (p.exact, &p.digits), (q.exact, &q.digits), prec);
                }
            }
        } else {
            for op in message {
                let (side, p, q) = level(op);
                book.set(side, &p.text, &q.text).expect("in-range text");
                model.set_value(side, p.value, (p.exact, &p.digits), (q.exact, &q.digits), prec);
            }
        }
        book.truncate();
        model.truncate(depth.get());
        check_same(&book, &model);
        start = end;
    }
}
