//! The whole path per message: parse, apply, truncate, verify the checksum.
#![allow(clippy::unwrap_used, reason = "benches fail loudly on a bad fixture")]
#![allow(missing_docs, reason = "criterion generates the entry points")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plumb::book::Depth;
use plumb::book::kraken::Outcome;
use plumb::replay::Replay;
use plumb::wire::Parser;
use plumb::wire::kraken::Message;

mod common;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("whole_path");
    let (mut book, frame) = common::typical_v2_update();
    let mut parser = Parser::new();
    g.throughput(Throughput::Elements(1));
    g.bench_function("v2_update_depth10", |b| {
        b.iter(|| {
            let Ok(Message::Book(m)) = parser.parse(black_box(frame.as_bytes())) else { unreachable!() };
            let mut verified = true;
            for e in m.entries() {
                verified &= matches!(book.apply_kraken(m.kind, &e), Ok(Outcome::Verified(_)));
            }
            assert!(verified);
        });
    });
    for (name, file, depth) in [
        ("v2_session_depth10", "btcusd-v2-book10.capture", 10),
        ("v1_session_depth10", "xbtusd-v1-book10.capture", 10),
        ("v1_session_depth1000", "adaxbt-v1-book1000.capture", 1000),
    ] {
        let frames = common::capture(file);
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut r = Replay::new(Depth::try_from(depth).unwrap_or(Depth::D10), None);
                r.set_precision("BTC/USD", common::BTC);
                for f in &frames {
                    r.frame(black_box(f.as_bytes()));
                }
                assert_eq!(r.counts().checksum_mismatches, 0);
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config(3);
    targets = bench
}
criterion_main!(benches);
