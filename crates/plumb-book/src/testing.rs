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

/// One level of the model: its text forms, and what follows from them, worked out once when the
/// level is set (so that comparing after every message costs integer compares): each text as a
/// mantissa and a scale, and the checksum's digits (the texts without the dot and leading
/// zeros).
#[derive(Debug, Clone)]
struct Lvl {
    text: (String, String),
    price: (i128, u8),
    qty: (i128, u8),
    digits: Vec<u8>,
}

impl Lvl {
    fn new(p: String, q: String) -> Self {
        let split = |t: &str| {
            let (i, f) = t.split_once('.').unwrap_or((t, ""));
            let m: i128 = format!("{i}{f}").parse().unwrap_or(-1);
            (m, u8::try_from(f.len()).unwrap_or(u8::MAX))
        };
        let strip = |t: &str| t.replace('.', "").trim_start_matches('0').as_bytes().to_vec();
        let mut digits = strip(&p);
        digits.extend(strip(&q));
        Self { price: split(&p), qty: split(&q), digits, text: (p, q) }
    }
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

/// Pads the fraction of `text` to at least `dp` digits.
#[must_use]
pub fn pad(text: &str, dp: u8) -> String {
    let (i, f) = text.split_once('.').unwrap_or((text, ""));
    let width = f.len().max(usize::from(dp));
    if width == 0 { i.to_owned() } else { format!("{i}.{f:0<width$}") }
}

impl Model {
    /// Sets or deletes a level from text, as the book should.
    pub fn set(&mut self, side: Side, p: &str, q: &str, prec: Option<Precision>) {
        let m = if side == Side::Bid { &mut self.bids } else { &mut self.asks };
        let (Some(v), Some(qv)) = (value(p), value(q)) else { return };
        if qv == 0 {
            m.remove(&v);
        } else {
            let (pp, qp) = prec.map_or((0, 0), |x| (x.price, x.qty));
            m.insert(v, Lvl::new(pad(p, pp), pad(q, qp)));
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
        self.bids.values().rev().map(|l| l.text.clone()).collect()
    }

    /// (price, qty) text of the asks, best first.
    #[must_use]
    pub fn asks_best_first(&self) -> Vec<(String, String)> {
        self.asks.values().map(|l| l.text.clone()).collect()
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
            assert!(mine == (l.price, l.qty), "{side:?}: {}@{} against {}@{}", q.qty, q.price, l.text.1, l.text.0);
        }
    }
    side(book, Side::Bid, model.bids.len(), model.bids.values().rev());
    side(book, Side::Ask, model.asks.len(), model.asks.values());
    let mut h = crc32fast::Hasher::new();
    for l in model.asks.values().take(10).chain(model.bids.values().rev().take(10)) {
        h.update(&l.digits);
    }
    assert_eq!(book.checksum(), h.finalize(), "checksum");
    assert_eq!(book.is_crossed(), model.is_crossed(), "crossed");
}

/// The price and quantity texts the `apply_ops` check uses, made once: a few distinct prices,
/// each in several spellings (trailing zeros), so that levels collide; quantities of several
/// widths, and two spellings of zero.
fn texts() -> &'static (Vec<String>, Vec<String>) {
    static TEXTS: std::sync::OnceLock<(Vec<String>, Vec<String>)> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| {
        let prices = (0..=255u8)
            .map(|pi| format!("{}.{:02}{}", 100 + pi / 16, (pi % 4) * 25, "0".repeat(usize::from((pi / 4) % 4))))
            .collect();
        let qtys = (0..=255u8)
            .map(|qi| match qi {
                0 => "0".to_owned(),
                1 => "0.000".to_owned(),
                _ => format!("{}.{:0width$}", qi / 7, u32::from(qi) * 37 % 1000, width = usize::from(qi % 4) + 3),
            })
            .collect();
        (prices, qtys)
    })
}

/// The `apply_ops` fuzz check: bytes become a depth, a precision and a sequence of messages of
/// level changes; after every message the book must equal the model.
///
/// Layout: byte 0 picks the depth (shallow depths most often, so that truncation is the common
/// case), byte 1 the precision; then 3 bytes per operation: flags (bit 0 side, bit 1 "end of
/// message", bits 2-4 all set on a message's first operation: the message is a snapshot, read
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
    while start < ops.len() {
        let end = ops[start..].iter().position(|op| op[0] & 2 != 0).map_or(ops.len(), |k| start + k + 1);
        let message = &ops[start..end];
        let level = |op: &[u8]| {
            let side = if op[0] & 1 == 0 { Side::Bid } else { Side::Ask };
            (side, prices[usize::from(op[1])].as_str(), qtys[usize::from(op[2])].as_str())
        };
        if message[0][0] & 0x1c == 0x1c {
            book.clear();
            model.clear();
            for side in [Side::Ask, Side::Bid] {
                let levels: Vec<(&str, &str)> =
                    message.iter().map(|op| level(op)).filter(|l| l.0 == side).map(|(_, p, q)| (p, q)).collect();
                book.fill_text(side, &levels).expect("in-range text, small sides");
                for (p, q) in levels {
                    model.set(side, p, q, prec);
                }
            }
        } else {
            for op in message {
                let (side, price, qty) = level(op);
                book.set(side, price, qty).expect("in-range text");
                model.set(side, price, qty, prec);
            }
        }
        book.truncate();
        model.truncate(depth.get());
        check_same(&book, &model);
        start = end;
    }
}
