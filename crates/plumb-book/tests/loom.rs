//! The publication protocol under loom: every interleaving loom explores, within a preemption
//! bound, gives readers one whole version, never a mix.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p plumb-book --test loom --release`.
#![cfg(loom)]
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use plumb_book::publish::channel_with_slots;
use plumb_book::{Book, Depth, Side};

/// A one-level book whose every published word says which version it is. Tests keep their
/// books in a `Vec`: a `Book` is a few kilobytes (each side's best ten levels' checksum text),
/// and loom's coroutine stacks are small.
fn book(v: u32) -> Book {
    let mut b = Book::new(Depth::D10, None);
    b.set(Side::Bid, &format!("{v}.0"), &format!("{v}.5")).unwrap();
    b.set(Side::Ask, &format!("{}.0", v + 100), &format!("{v}.25")).unwrap();
    b
}

#[test]
fn readers_never_see_a_mix_of_two_versions() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let books: Vec<Book> = (1..=2).map(book).collect();
        let (mut publisher, reader) = channel_with_slots(1, 2);
        let check = move |r: &plumb_book::publish::Reader| {
            let top = r.top();
            let v = top.header.version;
            if v == 0 {
                assert!(top.bid.is_none());
                return;
            }
            let bid = top.bid.unwrap();
            let ask = top.ask.unwrap();
            let expect = i64::try_from(v).unwrap();
            assert_eq!(bid.price.mantissa, expect * 10, "bid price of version {v}");
            assert_eq!(bid.qty.mantissa, expect * 10 + 5, "bid qty of version {v}");
            assert_eq!(ask.price.mantissa, (expect + 100) * 10, "ask of version {v}");
            assert_eq!(ask.qty.mantissa, expect * 100 + 25, "ask qty of version {v}");
        };
        // Two publishes (one into each slot) while the reader reads twice.
        let t = loom::thread::spawn(move || {
            for b in &books {
                publisher.publish(b, 0, 0);
            }
        });
        check(&reader);
        check(&reader);
        t.join().unwrap();
    });
}

/// Lapping: three publishes over two slots, so the third rewrites the slot of the first while a
/// reader may be copying it. Header-only slots keep the model small; the header words encode the
/// version, so a copy mixing two versions shows.
#[test]
fn a_lapped_reader_retries_instead_of_mixing_versions() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let books: Vec<Book> = (1..=3).map(book).collect();
        let (mut publisher, reader) = channel_with_slots(0, 2);
        let t = loom::thread::spawn(move || {
            for (v, b) in (1u64..).zip(&books) {
                publisher.publish(b, v * 7, v * 11);
            }
        });
        let h = reader.top().header;
        assert_eq!((h.exchange_time_ns, h.received_ns), (h.version * 7, h.version * 11));
        t.join().unwrap();
    });
}
