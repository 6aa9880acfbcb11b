//! One test per pitfall in the Kraken checksum research (`research/kraken-checksum.md`, section 2).

use plumb_book::kraken::Outcome;
use plumb_book::{Book, Depth, Invalid, Precision, Side, State};
use plumb_wire::Parser;
use plumb_wire::kraken::Message;

/// Applies each frame to `book` and returns the outcomes.
fn apply(book: &mut Book, frames: &[&str]) -> Vec<Outcome> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    for f in frames {
        let Message::Book(b) = parser.parse(f.as_bytes()).unwrap() else { panic!("not a book: {f}") };
        for e in b.entries() {
            out.push(book.apply_kraken(b.kind, &e).unwrap());
        }
    }
    out
}

/// Kraken's documented v2 snapshot (MATIC/USD, price precision 4, qty precision 8) and update.
const DOC_V2_SNAPSHOT: &str = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"MATIC/USD","bids":[{"price":0.5666,"qty":4831.75496356},{"price":0.5665,"qty":6658.22734739},{"price":0.5664,"qty":18724.91513344},{"price":0.5663,"qty":11563.92544914},{"price":0.5662,"qty":14006.65365711},{"price":0.5661,"qty":17454.85679807},{"price":0.566,"qty":18097.1547},{"price":0.5659,"qty":33644.89175666},{"price":0.5658,"qty":148.3464},{"price":0.5657,"qty":606.70854372}],"asks":[{"price":0.5668,"qty":4410.79769741},{"price":0.5669,"qty":4655.40412487},{"price":0.567,"qty":49844.89424998},{"price":0.5671,"qty":24306.41678},{"price":0.5672,"qty":29783.25223475},{"price":0.5673,"qty":57234.71239278},{"price":0.5674,"qty":45065.04744},{"price":0.5675,"qty":5912.76380354},{"price":0.5676,"qty":42514.92434778},{"price":0.5677,"qty":36304.0847022}],"checksum":2439117997,"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#;
const DOC_V2_UPDATE: &str = r#"{"channel":"book","type":"update","data":[{"symbol":"MATIC/USD","bids":[{"price":0.5657,"qty":1098.3947558}],"asks":[],"checksum":2114181697,"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#;
const MATIC: Precision = Precision { price: 4, qty: 8 };

#[test]
fn pitfall_1_v2_numbers_are_padded_to_the_instrument_precision() {
    let mut book = Book::new(Depth::D10, Some(MATIC));
    assert_eq!(
        apply(&mut book, &[DOC_V2_SNAPSHOT, DOC_V2_UPDATE]),
        [Outcome::Verified(2439117997), Outcome::Verified(2114181697)]
    );
    // The same numbers hashed as shown (0.566, 18097.1547) give another checksum.
    let mut raw = Book::new(Depth::D10, None);
    assert_eq!(apply(&mut raw, &[DOC_V2_SNAPSHOT]), [Outcome::Mismatch { expected: 2439117997, computed: 3830085102 }]);
}

#[test]
fn pitfall_1_seventeen_significant_digits_and_exponents_stay_exact() {
    // LUNA/EUR: a 9-digit integer part with 8 decimals; f64 would print 301727260.80000001.
    let mut book = Book::new(Depth::D10, None);
    book.set(Side::Ask, "0.000074060000", "301727260.79999999").unwrap();
    let q = book.best(Side::Ask).unwrap();
    assert_eq!(
        (q.price.to_string(), q.qty.to_string()),
        ("0.000074060000".to_owned(), "301727260.79999999".to_owned())
    );
    assert_eq!(book.checksum(), crc32fast::hash(b"7406000030172726079999999"));
    // A v2 quantity that a float library would print as 4.8e-07.
    let mut book = Book::new(Depth::D10, Some(Precision { price: 1, qty: 8 }));
    book.set(Side::Bid, "29430.2", "4.8e-07").unwrap();
    assert_eq!(book.best(Side::Bid).unwrap().qty.to_string(), "0.00000048");
    assert_eq!(book.checksum(), crc32fast::hash(b"29430248"));
}

#[test]
fn pitfall_1_v1_keeps_the_wire_decimals_even_beyond_the_pair_decimals() {
    // ADA/XBT prices come with 9 decimals although the pair has 8: hash them as sent.
    let mut book = Book::new(Depth::D10, None);
    book.set(Side::Ask, "0.000022900", "7200.50427342").unwrap();
    assert_eq!(book.best(Side::Ask).unwrap().price.to_string(), "0.000022900");
    assert_eq!(book.checksum(), crc32fast::hash(b"22900720050427342"));
}

#[test]
fn pitfall_2_truncate_after_the_message_to_the_subscribed_depth() {
    // Depth 25: levels 11..25 still count for the book, and the 26th falls away without a delete.
    let mut book = Book::new(Depth::try_from(25).unwrap(), None);
    for i in 0..26 {
        book.set(Side::Bid, &format!("{}.0", 200 - i), "1.0").unwrap();
    }
    book.truncate();
    assert_eq!(book.len(Side::Bid), 25);
    // Deleting the best 10 brings levels 11..20 into the checksum: they must still be there.
    for i in 0..10 {
        book.set(Side::Bid, &format!("{}.0", 200 - i), "0").unwrap();
    }
    assert_eq!(book.best(Side::Bid).unwrap().price.to_string(), "190.0");
    // Truncation happens after the whole message: an insert beyond the depth followed by a delete
    // in the same message keeps the inserted level.
    let mut book = Book::new(Depth::D10, None);
    for i in 0..10 {
        book.set(Side::Ask, &format!("{}.0", 100 + i), "1.0").unwrap();
    }
    book.set(Side::Ask, "110.0", "2.0").unwrap();
    book.set(Side::Ask, "100.0", "0").unwrap();
    book.truncate();
    assert_eq!(book.quotes(Side::Ask).last().unwrap().price.to_string(), "110.0");
}

#[test]
fn pitfall_3_both_sides_in_two_maps_with_the_checksum_in_the_last() {
    let snapshot = r#"[0,{"as":[["0.05005","0.00000500","1582905487.684110"],["0.05010","0.00000500","1582905486.187983"],["0.05015","0.00000500","1582905484.480241"],["0.05020","0.00000500","1582905486.645658"],["0.05025","0.00000500","1582905486.859009"],["0.05030","0.00000500","1582905488.601486"],["0.05035","0.00000500","1582905488.357312"],["0.05040","0.00000500","1582905488.785484"],["0.05045","0.00000500","1582905485.302661"],["0.05050","0.00000500","1582905486.157467"]],"bs":[["0.05000","0.00000500","1582905487.439814"],["0.04995","0.00000500","1582905485.119396"],["0.04990","0.00000500","1582905486.432052"],["0.04980","0.00000500","1582905480.609351"],["0.04975","0.00000500","1582905476.793880"],["0.04970","0.00000500","1582905486.767461"],["0.04965","0.00000500","1582905481.767528"],["0.04960","0.00000500","1582905487.378907"],["0.04955","0.00000500","1582905483.626664"],["0.04950","0.00000500","1582905488.509872"]]},"book-10","XBT/USD"]"#;
    // The best ask and bid change in one message of two maps; `c` sits in the second map.
    let update = r#"[0,{"a":[["0.05005","0.00000600","1582905487.1"]]},{"b":[["0.05000","0.00000700","1582905487.2"]],"c":"CRC"},"book-10","XBT/USD"]"#;
    let mut reference = Book::new(Depth::D10, None);
    apply(&mut reference, &[snapshot]);
    assert_eq!(reference.checksum(), 974947235);
    reference.set(Side::Ask, "0.05005", "0.00000600").unwrap();
    reference.set(Side::Bid, "0.05000", "0.00000700").unwrap();
    let crc = reference.checksum();
    let update = update.replace("CRC", &crc.to_string());
    let mut book = Book::new(Depth::D10, None);
    assert_eq!(apply(&mut book, &[snapshot, &update]), [Outcome::Unchecked, Outcome::Verified(crc)]);
}

#[test]
fn pitfall_4_wire_order_inside_a_message_and_republished_levels() {
    let mut book = Book::new(Depth::D10, None);
    let snap = r#"[0,{"as":[["10.0","1.0","1.0"]],"bs":[["9.0","1.0","1.0"]]},"book-10","X/Y"]"#;
    // The same price twice: the last entry wins, whatever the timestamps say.
    let upd = r#"[0,{"a":[["10.5","2.0","1700000002.0"],["10.5","3.0","1600000000.0"],["10.0","0.0","1.1"],["10.0","4.0","1.0","r"]],"c":"CRC"},"book-10","X/Y"]"#;
    let mut want = Book::new(Depth::D10, None);
    want.set(Side::Ask, "10.5", "3.0").unwrap();
    want.set(Side::Ask, "10.0", "4.0").unwrap();
    want.set(Side::Bid, "9.0", "1.0").unwrap();
    let upd = upd.replace("CRC", &want.checksum().to_string());
    let out = apply(&mut book, &[snap, &upd]);
    assert_eq!(out[1], Outcome::Verified(want.checksum()));
}

#[test]
fn pitfall_5_short_books_unknown_deletes_snapshots_and_zero() {
    // An empty book hashes the empty string: CRC32("") = 0, a checksum some clients ignore as falsy.
    let mut book = Book::new(Depth::D10, None);
    let empty = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"X/Y","bids":[],"asks":[],"checksum":0}]}"#;
    assert_eq!(apply(&mut book, &[empty]), [Outcome::Verified(0)]);
    // A delete of an unknown price does nothing; one-sided books hash what they have.
    let upd = format!(
        r#"{{"channel":"book","type":"update","data":[{{"symbol":"X/Y","bids":[{{"price":5.0,"qty":0}},{{"price":4.0,"qty":1.5}}],"asks":[],"checksum":{}}}]}}"#,
        crc32fast::hash(b"4015")
    );
    assert_eq!(apply(&mut book, &[&upd]), [Outcome::Verified(crc32fast::hash(b"4015"))]);
    // The v1 snapshot has no checksum: the book is unverified, not valid.
    let mut v1 = Book::new(Depth::D10, None);
    apply(&mut v1, &[r#"[0,{"as":[],"bs":[["1.0","1.0","1.0"]]},"book-10","X/Y"]"#]);
    assert_eq!(v1.state(), State::Unverified);
    // An update before any snapshot is not applied.
    let mut fresh = Book::new(Depth::D10, None);
    assert_eq!(apply(&mut fresh, &[&upd]), [Outcome::Skipped]);
    assert!(fresh.is_empty());
}

#[test]
fn pitfall_6_checksums_above_2_pow_31_are_unsigned() {
    let mut book = Book::new(Depth::D10, Some(MATIC));
    let out = apply(&mut book, &[DOC_V2_SNAPSHOT]);
    assert!(2439117997 > i32::MAX as u32);
    assert_eq!(out, [Outcome::Verified(2439117997)]);
}

#[test]
fn a_mismatch_keeps_its_evidence_and_holds_until_the_next_snapshot() {
    let mut book = Book::new(Depth::D10, Some(MATIC));
    let bad = DOC_V2_UPDATE.replace("2114181697", "12345");
    let out = apply(&mut book, &[DOC_V2_SNAPSHOT, &bad, DOC_V2_UPDATE]);
    assert_eq!(
        out,
        [Outcome::Verified(2439117997), Outcome::Mismatch { expected: 12345, computed: 2114181697 }, Outcome::Skipped]
    );
    assert_eq!(book.state(), State::Invalid(Invalid::ChecksumMismatch { expected: 12345, computed: 2114181697 }));
    assert_eq!(apply(&mut book, &[DOC_V2_SNAPSHOT]), [Outcome::Verified(2439117997)]);
    assert_eq!(book.state(), State::Valid);
}

#[test]
fn a_crossed_book_is_invalid_even_when_its_checksum_matches() {
    let mut book = Book::new(Depth::D10, None);
    let crc = crc32fast::hash(b"1011010110");
    let f = format!(
        r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"X/Y","bids":[{{"price":10.1,"qty":1.0}}],"asks":[{{"price":10.1,"qty":1.0}}],"checksum":{crc}}}]}}"#
    );
    assert_eq!(apply(&mut book, &[&f]), [Outcome::Verified(crc)]);
    assert_eq!(book.state(), State::Invalid(Invalid::Crossed));
}

#[test]
fn bad_levels_are_rejected_and_invalidate_the_book() {
    let mut parser = Parser::new();
    let mut book = Book::new(Depth::D10, None);
    apply(&mut book, &[r#"[0,{"as":[],"bs":[["1.0","1.0","1.0"]]},"book-10","X/Y"]"#]);
    for bad in ["-1.0", "1e400", "99999999999999999999", "abc", "1.0000000000000000001"] {
        let f = format!(r#"[0,{{"a":[["{bad}","1.0","1.0"]],"c":"0"}},"book-10","X/Y"]"#);
        let Message::Book(b) = parser.parse(f.as_bytes()).unwrap() else { panic!() };
        let e = b.entries().next().unwrap();
        let mut copy = book.clone();
        assert!(copy.apply_kraken(b.kind, &e).is_err(), "{bad}");
        assert!(matches!(copy.state(), State::Invalid(Invalid::Rejected(_))), "{bad}");
    }
    // A value that fits alone but not once the book is rescaled to more decimals: an error, not a
    // wrapped number.
    let mut book = Book::new(Depth::D10, None);
    book.set(Side::Bid, "9000000000000000000", "1").unwrap();
    assert_eq!(book.set(Side::Bid, "0.5", "1"), Err(plumb_book::Error::Overflow));
    assert_eq!(book.best(Side::Bid).unwrap().price.to_string(), "9000000000000000000");
}

#[test]
fn only_kraken_depths_are_accepted() {
    for d in [10u32, 25, 100, 500, 1000] {
        assert_eq!(Depth::try_from(d).unwrap().get(), d as usize);
    }
    for d in [0u32, 1, 9, 11, 50, 1001, u32::MAX] {
        assert_eq!(Depth::try_from(d), Err(plumb_book::Error::InvalidDepth(d)));
    }
}

/// A hostile snapshot: 100,000 levels a side in random order (one once took 32 s of CPU on the
/// feed thread, inserting each into a sorted array). Read in O(n log n) and cut to the depth
/// while reading, it gives exactly the book the same levels give in order; a snapshot naming a
/// price twice is read level by level (the later one wins) when small, and refused when huge.
#[test]
fn a_huge_snapshot_in_random_order_is_the_same_book_as_in_order() {
    let n = 100_000u64;
    let mut order: Vec<u64> = (0..n).collect();
    // A fixed shuffle (xorshift), reproducible.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, usize::try_from(x % (i as u64 + 1)).unwrap());
    }
    let side = |ids: &[u64], bid: bool| {
        let levels: Vec<String> = ids
            .iter()
            .map(|&k| {
                let price = if bid { 500_000 - k } else { 500_001 + k };
                format!(r#"{{"price":{}.{:04},"qty":{}.{:08}}}"#, price / 10_000, price % 10_000, 1 + k % 97, k % 1000)
            })
            .collect();
        levels.join(",")
    };
    let frame = |ids: &[u64]| {
        format!(
            r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"MATIC/USD","bids":[{}],"asks":[{}],"checksum":0,"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}"#,
            side(ids, true),
            side(ids, false)
        )
    };
    let sorted: Vec<u64> = (0..n).collect();
    let mut shuffled = Book::new(Depth::D10, Some(MATIC));
    let mut in_order = Book::new(Depth::D10, Some(MATIC));
    apply(&mut shuffled, &[&frame(&order)]);
    apply(&mut in_order, &[&frame(&sorted)]);
    assert_eq!(shuffled.len(Side::Bid), 10);
    assert_eq!(shuffled.quotes(Side::Bid).collect::<Vec<_>>(), in_order.quotes(Side::Bid).collect::<Vec<_>>());
    assert_eq!(shuffled.quotes(Side::Ask).collect::<Vec<_>>(), in_order.quotes(Side::Ask).collect::<Vec<_>>());
    assert_eq!(shuffled.compute_checksum(), in_order.compute_checksum());
    assert_eq!(shuffled.best(Side::Bid).unwrap().price.to_string(), "50.0000");

    // A price named twice: the later one wins, as level by level.
    let twice = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"MATIC/USD","bids":[{"price":0.5,"qty":1},{"price":0.4,"qty":2},{"price":0.5,"qty":3},{"price":0.3,"qty":4},{"price":0.4,"qty":0}],"asks":[{"price":0.6,"qty":1}],"checksum":0,"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#;
    let mut b = Book::new(Depth::D10, Some(MATIC));
    apply(&mut b, &[twice]);
    let quotes = |b: &Book, side| b.quotes(side).map(|q| format!("{}@{}", q.qty, q.price)).collect::<Vec<_>>();
    assert_eq!(quotes(&b, Side::Bid), ["3.00000000@0.5000", "4.00000000@0.3000"]);
    // Best first, as snapshots come, with a price named twice in a row on each side: not taken
    // for a side already in order.
    let adjacent = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"MATIC/USD","bids":[{"price":0.5,"qty":1},{"price":0.5,"qty":3},{"price":0.4,"qty":2}],"asks":[{"price":0.6,"qty":1},{"price":0.7,"qty":5},{"price":0.7,"qty":6}],"checksum":0,"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#;
    let mut b = Book::new(Depth::D10, Some(MATIC));
    apply(&mut b, &[adjacent]);
    assert_eq!(quotes(&b, Side::Bid), ["3.00000000@0.5000", "2.00000000@0.4000"]);
    assert_eq!(quotes(&b, Side::Ask), ["1.00000000@0.6000", "6.00000000@0.7000"]);
    // Huge and naming a price twice: refused, not read level by level.
    let mut ids: Vec<u64> = order.clone();
    ids.push(0); // the best level, which no cut drops
    let mut b = Book::new(Depth::D10, Some(MATIC));
    let (text, mut parser) = (frame(&ids), Parser::new());
    let Message::Book(m) = parser.parse(text.as_bytes()).unwrap() else { panic!() };
    let e = m.entries().next().unwrap();
    assert!(b.apply_kraken(m.kind, &e).is_err());
    assert!(matches!(b.state(), State::Invalid(Invalid::Rejected(plumb_book::Error::DuplicatePrice))));
}
