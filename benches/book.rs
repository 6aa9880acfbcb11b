//! Book maintenance: applying levels, and the Kraken checksum, at depth 10 and 1000.
#![allow(clippy::unwrap_used, reason = "benches fail loudly on a bad fixture")]
#![allow(missing_docs, reason = "criterion generates the entry points")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plumb::book::{Book, Depth, Side};
use plumb::wire::Parser;
use plumb::wire::kraken::{Api, Message};

mod common;

/// The levels of a frame as (side, price, qty) text.
fn levels(frame: &str) -> Vec<(Side, String, String)> {
    let mut p = Parser::new();
    let Ok(Message::Book(b)) = p.parse(frame.as_bytes()) else { panic!("not a book") };
    let mut out = Vec::new();
    for e in b.entries() {
        out.extend(e.bids().map(|l| (Side::Bid, l.price.to_owned(), l.qty.to_owned())));
        out.extend(e.asks().map(|l| (Side::Ask, l.price.to_owned(), l.qty.to_owned())));
    }
    out
}

fn apply(book: &mut Book, levels: &[(Side, String, String)]) {
    for (side, p, q) in levels {
        let _ = book.set(*side, p, q);
    }
    book.truncate();
}

fn bench(c: &mut Criterion) {
    let (book10, frame) = common::typical_v2_update();
    let ops10 = levels(&frame);
    // Depth 1000: the final ADA/XBT book, and an update that changes its top two levels per side.
    let book1000 = common::final_book("adaxbt-v1-book1000.capture", Depth::try_from(1000).unwrap(), Api::V1, "ADA/XBT");
    let ops1000: Vec<_> = [Side::Bid, Side::Ask]
        .into_iter()
        .flat_map(|s| {
            book1000.quotes(s).take(2).map(move |q| (s, q.price.to_string(), q.qty.to_string())).collect::<Vec<_>>()
        })
        .collect();

    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    let mut b10 = book10.clone();
    g.bench_function("v2_update_depth10", |b| b.iter(|| apply(black_box(&mut b10), black_box(&ops10))));
    let mut b1000 = book1000.clone();
    g.bench_function("update_depth1000", |b| b.iter(|| apply(black_box(&mut b1000), black_box(&ops1000))));
    g.finish();

    let mut g = c.benchmark_group("checksum");
    g.throughput(Throughput::Elements(1));
    // `compute_checksum` skips the memo that `checksum` keeps between changes.
    g.bench_function("depth10", |b| b.iter(|| black_box(&book10).compute_checksum()));
    g.bench_function("depth1000", |b| b.iter(|| black_box(&book1000).compute_checksum()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config(2);
    targets = bench
}
criterion_main!(benches);
