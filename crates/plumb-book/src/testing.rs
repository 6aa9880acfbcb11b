//! A naive reference book and the fuzz check built on it. Not part of the stable API: the
//! proptests and the `apply_ops` fuzz target share it, so that both hold the book to one model.

use std::collections::BTreeMap;

use crate::{Book, Depth, Precision, Side};

/// The reference: a `BTreeMap` per side keyed by the exact value (at scale 18), holding the
/// checksum text forms, and a checksum built the slow way.
#[derive(Debug, Default, Clone)]
pub struct Model {
    bids: BTreeMap<u128, (String, String)>,
    asks: BTreeMap<u128, (String, String)>,
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
            m.insert(v, (pad(p, pp), pad(q, qp)));
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
        self.bids.values().rev().cloned().collect()
    }

    /// (price, qty) text of the asks, best first.
    #[must_use]
    pub fn asks_best_first(&self) -> Vec<(String, String)> {
        self.asks.values().cloned().collect()
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

/// The `apply_ops` fuzz check: bytes become a depth, a precision and a sequence of messages of
/// level changes; after every message the book must equal the model.
///
/// Layout: byte 0 picks the depth, byte 1 the precision; then 3 bytes per operation: flags (bit 0
/// side, bit 1 "end of message", bit 2 "this message is a snapshot"), a price index, a quantity.
///
/// # Panics
///
/// When the book and the model disagree.
pub fn check_apply_ops(data: &[u8]) {
    let [d, p, rest @ ..] = data else { return };
    let depth = Depth::ALL[usize::from(*d) % Depth::ALL.len()];
    let prec = (p & 0x80 != 0).then_some(Precision { price: (p >> 4) & 3, qty: p & 7 });
    let mut book = Book::new(depth, prec);
    let mut model = Model::default();
    for op in rest.chunks_exact(3) {
        let (flags, pi, qi) = (op[0], op[1], op[2]);
        if flags & 4 != 0 {
            book.clear();
            model.clear();
        }
        let side = if flags & 1 == 0 { Side::Bid } else { Side::Ask };
        // Few distinct prices, each in several spellings (trailing zeros), so levels collide.
        let price = format!("{}.{:02}{}", 100 + pi / 16, (pi % 4) * 25, "0".repeat(usize::from((pi / 4) % 4)));
        let qty = match qi {
            0 => "0".to_owned(),
            1 => "0.000".to_owned(),
            _ => format!("{}.{:0width$}", qi / 7, u32::from(qi) * 37 % 1000, width = usize::from(qi % 4) + 3),
        };
        book.set(side, &price, &qty).expect("in-range text");
        model.set(side, &price, &qty, prec);
        if flags & 2 != 0 {
            book.truncate();
            model.truncate(depth.get());
            assert_same(&book, &model);
        }
    }
    book.truncate();
    model.truncate(depth.get());
    assert_same(&book, &model);
}
