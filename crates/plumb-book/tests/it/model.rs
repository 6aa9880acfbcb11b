//! The book against a naive reference: a `BTreeMap` per side keyed by exact value, and a checksum
//! built the slow way (format the text, strip `.` and leading zeros, hash one `String`).

use plumb_book::rule::BybitSeq;
use plumb_book::testing::{Model, assert_same, book_side, check_apply_ops, value};
use plumb_book::{Book, Depth, Precision, Side};
use proptest::prelude::*;

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
    // A checksummed book keeps each level's checksum text as it goes; a book of a sequenced
    // exchange does not, and renders it from the values when asked. Both must match the model.
    let mut books = [Book::new(depth, prec), Book::for_rule::<BybitSeq>(depth, prec)];
    assert!(books[0].is_checksummed() && !books[1].is_checksummed());
    let mut model = Model::default();
    for (snapshot, ops) in msgs {
        if *snapshot {
            books.iter_mut().for_each(Book::clear);
            model = Model::default();
        }
        for (bid, p, q) in ops {
            let side = if *bid { Side::Bid } else { Side::Ask };
            for book in &mut books {
                book.set(side, p, q).unwrap();
            }
            model.set(side, p, q, prec);
        }
        model.truncate(depth.get());
        for book in &mut books {
            book.truncate();
            assert_same(book, &model);
        }
    }
    Ok(())
}

/// One side of a snapshot frame: `(sort key, price text, quantity text)`. Prices are mostly
/// distinct and spelled with two decimals, now and then with more (which rescales the book in the
/// middle of the side), or drawn from few values (a price named twice); quantities mostly have
/// eight decimals, now and then fewer, a zero, or a value no book holds (19 digits past `i64`,
/// or 21 digits).
fn snapshot_side(base: u64) -> impl Strategy<Value = Vec<(u64, String, String)>> {
    let qty = prop_oneof![
        180 => (1u64..1_000_000_000_000).prop_map(|m| format!("{}.{:08}", m / 100_000_000, m % 100_000_000)),
        8 => (1u64..1_000_000, 0u32..4).prop_map(|(m, dp)| {
            let s = format!("{m:0>width$}", width = dp as usize + 1);
            let (i, f) = s.split_at(s.len() - dp as usize);
            if dp == 0 { i.to_owned() } else { format!("{i}.{f}") }
        }),
        8 => Just("0".to_owned()),
        1 => Just("99999999999.99999999".to_owned()),
        1 => Just("123456789012.345678901".to_owned()),
    ];
    (prop_oneof![Just(1_000_000u64), Just(300u64)], 0usize..160).prop_flat_map(move |(range, n)| {
        let extra = prop_oneof![30 => Just(0usize), 1 => 1usize..4];
        prop::collection::vec((0..range, extra, qty.clone()), n).prop_map(move |levels| {
            levels
                .into_iter()
                .map(|(v, extra, q)| {
                    let key = base + v;
                    (key, format!("{}.{:02}{}", key / 100, key % 100, "0".repeat(extra)), q)
                })
                .collect()
        })
    })
}

/// A snapshot frame read into a book (`Book::apply`, which fills each side from the frame's
/// levels) holds what its levels set one by one into the reference hold, cut to the depth; a
/// level no book holds makes the frame an error.
fn snapshot_reads_as_its_levels(
    depth: Depth,
    prec: Option<Precision>,
    mut bids: Vec<(u64, String, String)>,
    mut asks: Vec<(u64, String, String)>,
    best_first: bool,
    late_precision: bool,
) -> Result<(), TestCaseError> {
    if best_first {
        // As every exchange sends a snapshot (the order the side's one-pass check sees).
        bids.sort_by_key(|l| std::cmp::Reverse(l.0));
        asks.sort_by_key(|l| l.0);
    }
    let json = |levels: &[(u64, String, String)]| {
        levels.iter().map(|(_, p, q)| format!(r#"{{"price":{p},"qty":{q}}}"#)).collect::<Vec<_>>().join(",")
    };
    let frame = format!(
        r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"X/USD","bids":[{}],"asks":[{}],"checksum":0,"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}"#,
        json(&bids),
        json(&asks)
    );
    let mut parser = plumb_wire::Parser::new();
    let Ok(plumb_wire::kraken::Message::Book(m)) = parser.parse(frame.as_bytes()) else {
        return Err(TestCaseError::fail("not a book frame"));
    };
    let entry = m.entries().next().unwrap();
    // A precision learned after the book was made (an `instrument` update) leaves its scales
    // below it until a level rescales it.
    let mut book = Book::new(depth, if late_precision { None } else { prec });
    if let Some(p) = prec.filter(|_| late_precision) {
        book.set_precision(p);
    }
    let read = book.apply_kraken(m.kind, &entry);
    let unholdable = bids.iter().chain(&asks).any(|(_, _, q)| q.len() >= 20);
    prop_assert_eq!(read.is_err(), unholdable, "{:?}", read);
    if unholdable {
        return Ok(());
    }
    let mut model = Model::default();
    for (side, levels) in [(Side::Bid, &bids), (Side::Ask, &asks)] {
        for (_, p, q) in levels {
            model.set(side, p, q, prec);
        }
    }
    model.truncate(depth.get());
    assert_same(&book, &model);
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
    fn a_snapshot_frame_reads_as_its_levels_set_one_by_one(
        bids in snapshot_side(1_000_000),
        asks in snapshot_side(3_000_000),
        d in 0usize..5,
        prec in prop::option::of((0u8..4, 0u8..10)),
        best_first in prop::bool::weighted(0.8),
        late_precision in any::<bool>(),
    ) {
        let prec = prec.map(|(price, qty)| Precision { price, qty });
        snapshot_reads_as_its_levels(Depth::ALL[d], prec, bids, asks, best_first, late_precision)?;
    }

    #[test]
    fn apply_ops_check_holds(data in prop::collection::vec(any::<u8>(), 0..600)) {
        check_apply_ops(&data);
    }

    #[test]
    fn decimal_conversion_is_exact(p in price(), q in qty()) {
        let mut book = Book::new(Depth::D10, None);
        book.set(Side::Bid, &p, "1").unwrap();
        let got = book.best(Side::Bid).unwrap().price.to_decimal();
        prop_assert_eq!(got, p.parse::<rust_decimal::Decimal>().unwrap());
        prop_assert_eq!(got.to_string(), p.clone());
        if value(&q) != Some(0) {
            book.set(Side::Ask, "1", &q).unwrap();
            let got = book.best(Side::Ask).unwrap().qty.to_decimal();
            prop_assert_eq!(got.to_string(), q);
        }
    }
}

#[test]
fn levels_rising_into_the_checksum_after_a_deep_snapshot() {
    // A snapshot's levels below the best ten keep no checksum text until a removal lifts one
    // into them; each removal here lifts one, on both sides, with decimals that vary per level.
    let mut book = Book::new(Depth::new(100).unwrap(), None);
    let mut model = Model::default();
    let level = |i: usize, ask: bool| {
        let price = if ask { format!("{}.{}", 200 + i, i % 10) } else { format!("{}.{:02}", 199 - i, i % 100) };
        (price, format!("{}.{}5", i + 1, "0".repeat(i % 8)))
    };
    for (side, ask) in [(Side::Ask, true), (Side::Bid, false)] {
        let levels: Vec<(String, String)> = (0..40).map(|i| level(i, ask)).collect();
        let refs: Vec<(&str, &str)> = levels.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
        book.fill_text(side, &refs).unwrap();
        for (p, q) in &levels {
            model.set(side, p, q, None);
        }
    }
    assert_same(&book, &model);
    for i in 0..35 {
        for (side, ask) in [(Side::Ask, true), (Side::Bid, false)] {
            let (p, _) = level(i, ask);
            book.set(side, &p, "0").unwrap();
            model.set(side, &p, "0", None);
            assert_same(&book, &model);
        }
    }
}

#[test]
fn truncating_a_book_shallower_than_the_checksum_changes_its_checksum() {
    // At depth 5 (OKX's `books5`), truncation cuts into the best ten: the memoised checksum, and
    // the asks' part of it, must go with the cut levels.
    for depth in [1, 5, 9] {
        let mut book = Book::new(Depth::new(depth).unwrap(), None);
        let mut model = Model::default();
        for i in 0..12 {
            for (side, price) in [(Side::Ask, 300 + i), (Side::Bid, 200 - i)] {
                book.set(side, &format!("{price}.5"), &format!("{}.25", i + 1)).unwrap();
                model.set(side, &format!("{price}.5"), &format!("{}.25", i + 1), None);
            }
            // The memo is filled before each cut.
            let _ = book.checksum();
            book.truncate();
            model.truncate(depth as usize);
            assert_same(&book, &model);
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
    assert_ne!(book_side(&book, Side::Bid), model.bids_best_first());
    book.truncate();
    assert_eq!(book_side(&book, Side::Bid), model.bids_best_first());
    assert_eq!(book.checksum(), model.checksum());
}

#[test]
fn the_allocation_free_comparison_can_fail_too() {
    use plumb_book::testing::check_same;
    let mut model = Model::default();
    let mut book = Book::new(Depth::D10, None);
    for i in 0..12 {
        let p = format!("{}.5", 100 + i);
        model.set(Side::Ask, &p, "2.25", None);
        book.set(Side::Ask, &p, "2.25").unwrap();
    }
    model.truncate(10);
    book.truncate();
    check_same(&book, &model);
    // One quantity spelled differently (the checksum text form differs) is caught.
    let mut other = book.clone();
    other.set(Side::Ask, "100.5", "2.250").unwrap();
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_same(&other, &model))).is_err());
    // So is a level too many.
    let mut other = book.clone();
    other.set(Side::Ask, "99.5", "1").unwrap();
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_same(&other, &model))).is_err());
}
