//! Parsing frames: one typical Kraken update, Bybit delta, Binance event and OKX update, and whole
//! recorded Kraken sessions.
#![allow(clippy::unwrap_used, reason = "benches fail loudly on a bad fixture")]
#![allow(missing_docs, reason = "criterion generates the entry points")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plumb::wire::{Parser, Path, binance, bybit, okx};

mod common;

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let (_, v2) = common::typical_v2_update();
    let v1 = common::typical_v1_update();
    let mut p = Parser::new();
    for (name, frame, path) in [
        ("v2_update", &v2, None),
        ("v2_update_general_scanner", &v2, Some(Path::Scanner)),
        ("v2_update_simd_json", &v2, Some(Path::Simd)),
        ("v1_update", &v1, None),
        ("v1_update_simd_json", &v1, Some(Path::Simd)),
    ] {
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                p.parse_via(black_box(frame.as_bytes()), path)
                    .map(|(m, _)| matches!(m, plumb::wire::kraken::Message::Book(_)))
                    .unwrap_or(false)
            });
        });
    }
    // One typical delta of each sequenced exchange with a layout matcher, by the default path
    // and by the general scanner (what the default path was before the matcher).
    let (_, bybit) = common::bybit_delta_stream(1);
    let (_, binance) = common::binance_update_stream(1);
    let (_, okx) = common::okx_update_stream(1, false);
    for (name, frame, path) in [
        ("bybit_delta", &bybit[0], None),
        ("bybit_delta_general_scanner", &bybit[0], Some(Path::Scanner)),
        ("binance_diff_event", &binance[0], None),
        ("binance_diff_event_general_scanner", &binance[0], Some(Path::Scanner)),
        ("okx_update", &okx[0], None),
        ("okx_update_general_scanner", &okx[0], Some(Path::Scanner)),
    ] {
        g.throughput(Throughput::Bytes(frame.len() as u64));
        let frame = frame.as_bytes();
        g.bench_function(name, |b| match name.split('_').next() {
            Some("bybit") => b.iter(|| p.parse_with::<bybit::Bybit>(black_box(frame), path).is_ok()),
            Some("binance") => b.iter(|| p.parse_with::<binance::Binance>(black_box(frame), path).is_ok()),
            _ => b.iter(|| p.parse_with::<okx::Okx>(black_box(frame), path).is_ok()),
        });
    }
    for (name, file) in [("v2_session", "btcusd-v2-book10.capture"), ("v1_session", "xbtusd-v1-book10.capture")] {
        let frames = common::capture(file);
        g.throughput(Throughput::Bytes(frames.iter().map(|f| f.len() as u64).sum()));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for f in &frames {
                    n += usize::from(p.parse(black_box(f.as_bytes())).is_ok());
                }
                n
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config(2);
    targets = parse
}
criterion_main!(benches);
