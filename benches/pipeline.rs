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

    // The connector's cost per frame: what `plumb_feed::Session::handle_frame` adds to the whole path
    // (symbol lookup, publication to readers, the event), with no socket.
    let mut g = c.benchmark_group("session");
    let mut session = plumb::feed::Session::new(plumb::feed::Config::default());
    let reader = session.add_symbol("BTC/USD").unwrap();
    let t = now();
    session.handle_connected(t);
    let instruments = r#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":"BTC/USD","qty_precision":8,"price_precision":1}]}}"#;
    session.handle_frame(instruments.as_bytes(), t, 0);
    for f in common::capture("btcusd-v2-book10.capture") {
        session.handle_frame(f.as_bytes(), t, 0);
    }
    let (_, frame) = common::typical_v2_update();
    session.handle_frame(frame.as_bytes(), t, 0);
    while session.poll_event().is_some() {}
    assert!(reader.top().header.status.is_valid());
    g.throughput(Throughput::Elements(1));
    g.bench_function("on_frame_v2_update_depth10", |b| {
        b.iter(|| {
            session.handle_frame(black_box(frame.as_bytes()), t, 1);
            while let Some(e) = session.poll_event() {
                black_box(e);
            }
        });
    });
    assert!(reader.top().header.status.is_valid());
    assert_eq!(session.stats().counts().checksum_mismatches, 0);
    g.finish();
}

#[expect(clippy::disallowed_methods, reason = "one Instant for the session, which never reads the clock")]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

criterion_group! {
    name = benches;
    config = common::config(3);
    targets = bench
}
criterion_main!(benches);
