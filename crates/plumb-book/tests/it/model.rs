//! The book against a naive reference: a `BTreeMap` per side keyed by exact value, and a checksum
//! built the slow way (format the text, strip `.` and leading zeros, hash one `String`).

use std::collections::BTreeMap;

use plumb_book::{Book, Depth, Precision, Side};
use proptest::prelude::*;

/// Reference side: exact value (as `u128` at scale 18) -> (price text, qty text).
#[derive(Default, Clone)]
struct Model {
    bids: BTreeMap<u128, (String, String)>,
    asks: BTreeMap<u128, (String, String)>,
}

/// The value of a plain decimal text at scale 18.
fn value(text: &str) -> u128 {
    let (i, f) = text.split_once('.').unwrap_or((text, ""));
    let mut v: u128 = i.parse().unwrap();
    for k in 0..18 {
        v = v * 10 + u128::from(f.as_bytes().get(k).map_or(0, |c| c - b'0'));
    }
    v
}

/// Pads the fraction of `text` to at least `dp` digits.
fn pad(text: &str, dp: u8) -> String {
    let (i, f) = text.split_once('.').unwrap_or((text, ""));
    let width = f.len().max(usize::from(dp));
    if width == 0 { i.to_owned() } else { format!("{i}.{f:0<width$}") }
}

impl Model {
    fn set(&mut self, side: Side, p: &str, q: &str, prec: Option<Precision>) {
        let m = if side == Side::Bid { &mut self.bids } else { &mut self.asks };
        let v = value(p);
        if value(q) == 0 {
            m.remove(&v);
        } else {
            let (pp, qp) = prec.map_or((0, 0), |x| (x.price, x.qty));
            m.insert(v, (pad(p, pp), pad(q, qp)));
        }
    }

    fn truncate(&mut self, depth: usize) {
        while self.bids.len() > depth {
            let k = *self.bids.keys().next().unwrap();
            self.bids.remove(&k);
        }
        while self.asks.len() > depth {
            let k = *self.asks.keys().next_back().unwrap();
            self.asks.remove(&k);
        }
    }

    fn bids_best_first(&self) -> Vec<(String, String)> {
        self.bids.values().rev().cloned().collect()
    }

    fn asks_best_first(&self) -> Vec<(String, String)> {
        self.asks.values().cloned().collect()
    }

    fn checksum(&self) -> u32 {
        let strip = |s: &str| s.replace('.', "").trim_start_matches('0').to_owned();
        let mut s = String::new();
        for (p, q) in self.asks_best_first().iter().take(10).chain(self.bids_best_first().iter().take(10)) {
            s += &strip(p);
            s += &strip(q);
        }
        crc32fast::hash(s.as_bytes())
    }
}

/// A price text: few distinct values (so levels collide, update and delete), written with a
/// varying number of decimals (so equal values arrive in different spellings).
fn price() -> impl Strategy<Value = String> {
    (1u32..60, 0usize..4).prop_map(|(v, extra)| {
        let s = format!("{}.{:02}", 100 + v / 4, (v % 4) * 25);
        format!("{s}{}", "0".repeat(extra))
    })
}

fn qty() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("0".to_owned()),
        1 => Just("0.00000000".to_owned()),
        4 => (1u64..10_000_000, 0usize..9).prop_map(|(m, dp)| {
            let s = format!("{m:0>width$}", width = dp + 1);
            let (i, f) = s.split_at(s.len() - dp);
            if dp == 0 { i.to_owned() } else { format!("{i}.{f}") }
        }),
    ]
}

type Msg = (bool, Vec<(bool, String, String)>);

fn messages() -> impl Strategy<Value = Vec<Msg>> {
    let op = (any::<bool>(), price(), qty());
    prop::collection::vec((prop::bool::weighted(0.05), prop::collection::vec(op, 0..30)), 1..40)
}

fn run(depth: Depth, prec: Option<Precision>, msgs: &[Msg]) -> Result<(), TestCaseError> {
    let mut book = Book::new(depth, prec);
    let mut model = Model::default();
    for (snapshot, ops) in msgs {
        if *snapshot {
            book.clear();
            model = Model::default();
        }
        for (bid, p, q) in ops {
            let side = if *bid { Side::Bid } else { Side::Ask };
            book.set(side, p, q).unwrap();
            model.set(side, p, q, prec);
        }
        book.truncate();
        model.truncate(depth.get());
        let text = |side| book.quotes(side).map(|q| (q.price.to_string(), q.qty.to_string())).collect::<Vec<_>>();
        prop_assert_eq!(text(Side::Bid), model.bids_best_first());
        prop_assert_eq!(text(Side::Ask), model.asks_best_first());
        prop_assert_eq!(book.checksum(), model.checksum());
        let crossed = matches!((model.bids.keys().next_back(), model.asks.keys().next()), (Some(b), Some(a)) if b >= a);
        prop_assert_eq!(book.is_crossed(), crossed);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 160 }, ..ProptestConfig::default() })]

    #[test]
    fn book_matches_btreemap_model_at_every_depth(msgs in messages(), d in 0usize..5, prec in prop::option::of((0u8..4, 0u8..10))) {
        let prec = prec.map(|(price, qty)| Precision { price, qty });
        run(Depth::ALL[d], prec, &msgs)?;
    }

    #[test]
    fn decimal_conversion_is_exact(p in price(), q in qty()) {
        let mut book = Book::new(Depth::D10, None);
        book.set(Side::Bid, &p, "1").unwrap();
        let got = book.best(Side::Bid).unwrap().price.to_decimal();
        prop_assert_eq!(got, p.parse::<rust_decimal::Decimal>().unwrap());
        prop_assert_eq!(got.to_string(), p.clone());
        if value(&q) != 0 {
            book.set(Side::Ask, "1", &q).unwrap();
            let got = book.best(Side::Ask).unwrap().qty.to_decimal();
            prop_assert_eq!(got.to_string(), q);
        }
    }
}

#[test]
fn the_model_can_fail() {
    // The comparison is not vacuous: a book that skips truncation disagrees with the model (the
    // 11th and 12th levels stay), although its top-10 checksum cannot tell.
    let mut model = Model::default();
    let mut book = Book::new(Depth::D10, None);
    for i in 0..12 {
        let p = format!("{}.0", 100 + i);
        model.set(Side::Bid, &p, "1.0", None);
        book.set(Side::Bid, &p, "1.0").unwrap();
    }
    model.truncate(10);
    let text = |b: &Book| b.quotes(Side::Bid).map(|q| (q.price.to_string(), q.qty.to_string())).collect::<Vec<_>>();
    assert_ne!(text(&book), model.bids_best_first());
    book.truncate();
    assert_eq!(text(&book), model.bids_best_first());
    assert_eq!(book.checksum(), model.checksum());
}
