//! The whole path per message: parse, apply, truncate, verify the checksum.
#![allow(clippy::unwrap_used, reason = "benches fail loudly on a bad fixture")]
#![allow(missing_docs, reason = "criterion generates the entry points")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;

use plumb::book::kraken::Outcome;
use plumb::book::rule::{BinanceSeq, BybitSeq, CoinbaseSeq, OkxSeq};
use plumb::book::{Book, Depth, Verdict};
use plumb::feed::{Bybit, Exchange, Okx, Session};
use plumb::replay::Replay;
use plumb::wire::Parser;
use plumb::wire::kraken::Message;
use plumb::wire::{binance, bybit, coinbase, okx};

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
    // A typical Bybit delta: 50 levels subscribed, 4 changed. Each delta must carry the next `u`,
    // so the bench walks a stream of them and, untimed, resets the book with its snapshot when the
    // stream runs out.
    let (snapshot, deltas) = common::bybit_delta_stream(1024);
    let mut book = Book::for_rule::<BybitSeq>(Depth::new(50).unwrap(), None);
    let mut parser = Parser::new();
    g.throughput(Throughput::Elements(1));
    g.bench_function("bybit_delta_depth50", |b| {
        b.iter_custom(|iters| {
            let restore = |(p, book): &mut (&mut Parser, &mut Book)| {
                let Ok(bybit::Message::Book(m)) = p.parse_bybit(snapshot.as_bytes()) else { unreachable!() };
                assert!(matches!(book.apply::<BybitSeq>(&m.frame()), Ok(Verdict::InSequence(100))));
            };
            let step = |(p, book): &mut (&mut Parser, &mut Book), f: &[u8]| {
                let Ok(bybit::Message::Book(m)) = p.parse_bybit(f) else { unreachable!() };
                matches!(book.apply::<BybitSeq>(&m.frame()), Ok(Verdict::InSequence(_)))
            };
            runs(iters, &deltas, &mut (&mut parser, &mut book), restore, step, |_| true)
        });
    });
    // A typical OKX `books` update: 60 levels a side held, 4 changed, each update linked to the
    // last by `prevSeqId`; once as OKX sends it today (checksum 0, proved by the link), once as
    // recorded before the checksum's retirement (each update's checksum verified too).
    for (name, checksums) in [("okx_update_books", false), ("okx_update_books_checksum", true)] {
        let (snapshot, updates) = common::okx_update_stream(1024, checksums);
        let mut book = Book::for_rule::<OkxSeq>(Depth::new(400).unwrap(), None);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let restore = |(p, book): &mut (&mut Parser, &mut Book)| {
                    let Ok(okx::Message::Book(m)) = p.parse_okx(snapshot.as_bytes()) else { unreachable!() };
                    let v = book.apply::<OkxSeq>(&m.frame());
                    assert!(matches!(v, Ok(Verdict::InSequence(_) | Verdict::Verified(_))));
                };
                let step = |(p, book): &mut (&mut Parser, &mut Book), f: &[u8]| {
                    let Ok(okx::Message::Book(m)) = p.parse_okx(f) else { unreachable!() };
                    match book.apply::<OkxSeq>(&m.frame()) {
                        Ok(Verdict::Verified(_)) => checksums,
                        Ok(Verdict::InSequence(_)) => !checksums,
                        _ => false,
                    }
                };
                runs(iters, &updates, &mut (&mut parser, &mut book), restore, step, |_| true)
            });
        });
    }
    // A typical Coinbase `level2` update (BTC-USD, 60 levels a side held, the best bid and ask
    // changed, interleaved), parsed and applied through `CoinbaseSeq`.
    let (cb_snapshot, cb_updates) = common::coinbase_update_stream(1024);
    let mut book = Book::for_rule::<CoinbaseSeq>(Depth::new(1000).unwrap(), None);
    g.bench_function("coinbase_update_level2", |b| {
        b.iter_custom(|iters| {
            let restore = |(p, book): &mut (&mut Parser, &mut Book)| {
                let Ok(coinbase::Message::Book(m)) = p.parse_coinbase(cb_snapshot.as_bytes()) else { unreachable!() };
                for f in m.frames() {
                    assert!(matches!(book.apply::<CoinbaseSeq>(&f), Ok(Verdict::InSequence(1))));
                }
            };
            let step = |(p, book): &mut (&mut Parser, &mut Book), f: &[u8]| {
                let Ok(coinbase::Message::Book(m)) = p.parse_coinbase(f) else { unreachable!() };
                m.frames().fold(true, |ok, f| ok & matches!(book.apply::<CoinbaseSeq>(&f), Ok(Verdict::InSequence(_))))
            };
            runs(iters, &cb_updates, &mut (&mut parser, &mut book), restore, step, |_| true)
        });
    });
    // Coinbase's whole-book snapshot: 25,000 levels a side (50,000 in all, about 5.5 MB), parsed
    // and loaded into a book (once per subscription, and what a resync costs).
    let big = common::coinbase_snapshot(25_000);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("coinbase_snapshot_50000_levels", |b| {
        b.iter(|| {
            let Ok(coinbase::Message::Book(m)) = parser.parse_coinbase(black_box(big.as_bytes())) else {
                unreachable!()
            };
            let f = m.frames().next().unwrap();
            book.apply::<CoinbaseSeq>(&f).unwrap()
        });
    });
    // A typical Binance spot diff event (BTCUSDT, 60 levels a side held, the best two bids and
    // asks changed), parsed and applied through `BinanceSeq` after its snapshot's bridge.
    let (bn_snapshot, bn_events) = common::binance_update_stream(1024);
    let mut book = Book::for_rule::<BinanceSeq>(Depth::new(1000).unwrap(), None);
    g.bench_function("binance_diff_event", |b| {
        b.iter_custom(|iters| {
            let restore = |(p, book): &mut (&mut Parser, &mut Book)| {
                let f = p.parse_snapshot::<binance::Binance>(bn_snapshot.as_bytes()).unwrap();
                book.apply_fetched::<BinanceSeq>(&f).unwrap();
            };
            let step = |(p, book): &mut (&mut Parser, &mut Book), f: &[u8]| {
                let Ok(binance::Message::Book(m)) = p.parse_binance(f) else { unreachable!() };
                matches!(book.apply::<BinanceSeq>(&m.frame()), Ok(Verdict::InSequence(_)))
            };
            runs(iters, &bn_events, &mut (&mut parser, &mut book), restore, step, |_| true)
        });
    });
    // Binance's bridge: a 5,000-level-a-side REST snapshot (`limit=5000`) parsed and applied,
    // then the first buffered event bridged to it.
    let big = common::binance_snapshot(5000);
    let bridge =
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":123456780,"u":123456790,"b":[["64999.99","1.00000"]],"a":[]}"#;
    let mut book = Book::for_rule::<BinanceSeq>(Depth::new(5000).unwrap(), None);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("binance_bridge_5000_level_snapshot", |b| {
        b.iter(|| {
            let f = parser.parse_snapshot::<binance::Binance>(black_box(big.as_bytes())).unwrap();
            book.apply_fetched::<BinanceSeq>(&f).unwrap();
            let Ok(binance::Message::Book(m)) = parser.parse_binance(bridge.as_bytes()) else { unreachable!() };
            assert!(matches!(book.apply::<BinanceSeq>(&m.frame()), Ok(Verdict::InSequence(_))));
        });
    });
    g.throughput(Throughput::Elements(1));
    // OKX's REST bootstrap: a 400-level `GET /api/v5/market/books` body parsed and applied as
    // the snapshot a bridge starts from (once per bootstrap, not per message).
    let body = common::okx_rest_body_400();
    let mut book = Book::for_rule::<OkxSeq>(Depth::new(400).unwrap(), None);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("okx_rest_snapshot_400_levels", |b| {
        b.iter(|| {
            let f = parser.parse_snapshot::<okx::Okx>(black_box(body.as_bytes())).unwrap();
            book.apply_fetched::<OkxSeq>(&f).unwrap()
        });
    });
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

    // The same for the typical Bybit delta and OKX update, through `Session<Bybit>` and
    // `Session<Okx>`.
    session_stream(&mut g, "on_frame_bybit_delta_depth50", Bybit::default(), "BTCUSDT", &snapshot, &deltas);
    let (snapshot, updates) = common::okx_update_stream(1024, false);
    session_stream(&mut g, "on_frame_okx_update_books", Okx, "BTC-USDT", &snapshot, &updates);
    session_coinbase(&mut g);
    session_binance(&mut g);
    g.finish();
}

/// The session's cost per Binance event. Each run of the stream is a connection of its own
/// (untimed, a few seconds apart for the fetch budget): the acknowledgement makes the fetch, its
/// answer the bridge; then the events are timed.
fn session_binance(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use plumb::feed::{Binance, Command, Fetched};
    let (snapshot, frames) = common::binance_update_stream(1024);
    let config = plumb::feed::Config { rest_url: Some("http://127.0.0.1:9".into()), ..Binance.config() };
    let session = Session::with_exchange(Binance, config);
    let mut t = now();
    session_bench(g, "on_frame_binance_diff_event", session, "BTCUSDT", &frames, move |session| {
        t += Duration::from_secs(5);
        session.handle_disconnected(t, plumb::feed::Disconnect::Requested);
        session.handle_connected(t);
        let subscribe = std::iter::from_fn(|| session.poll_command())
            .find_map(|c| if let Command::Send(text) = c { Some(text) } else { None })
            .unwrap();
        let id = subscribe.rsplit(r#""id":"#).next().unwrap().trim_end_matches('}').to_owned();
        session.handle_frame(format!(r#"{{"result":null,"id":{id}}}"#).as_bytes(), t, 0);
        let fetch = std::iter::from_fn(|| session.poll_command())
            .find_map(|c| if let Command::Fetch(f) = c { Some(f.id) } else { None })
            .unwrap();
        session.handle_fetched(fetch, Fetched::Body(snapshot.as_bytes()), t, 0);
    });
}

/// The session's cost per Coinbase update, the connection's counter included. Each run of the
/// stream is a connection of its own (untimed): the counter starts over, the heartbeats
/// acknowledgement (0) makes the books' subscribe, the snapshot (1) makes the book valid.
fn session_coinbase(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use plumb::feed::Coinbase;
    let (snapshot, frames) = common::coinbase_update_stream(1024);
    let ack = plumb_sim::market::coinbase_subscriptions(0, &[], true, 1);
    let session = Session::with_exchange(Coinbase, Coinbase.config());
    let t = now();
    session_bench(g, "on_frame_coinbase_update_level2", session, "BTC-USD", &frames, |session| {
        session.handle_disconnected(t, plumb::feed::Disconnect::Requested);
        session.handle_connected(t);
        session.handle_frame(ack.as_bytes(), t, 0);
        session.handle_frame(snapshot.as_bytes(), t, 0);
        while session.poll_command().is_some() {}
    });
}

/// The session's cost per frame over a stream of sequenced messages: each must carry the next id,
/// so the bench walks the stream and, untimed, restores the book with its snapshot when the stream
/// runs out.
fn session_stream<E: Exchange>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    exchange: E,
    symbol: &str,
    snapshot: &str,
    frames: &[String],
) {
    let config = exchange.config();
    let mut session = Session::with_exchange(exchange, config);
    let t = now();
    session.handle_connected(t);
    while session.poll_command().is_some() {}
    session_bench(g, name, session, symbol, frames, |session| session.handle_frame(snapshot.as_bytes(), t, 0));
}

/// The session's cost per frame of `frames`, each run of them started (untimed) by `restore`,
/// which must leave `symbol`'s book valid; every run must end with it valid and no gap or error.
fn session_bench<E: Exchange>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut session: Session<E>,
    symbol: &str,
    frames: &[String],
    mut restore: impl FnMut(&mut Session<E>),
) {
    let reader = session.add_symbol(symbol).unwrap();
    let t = now();
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let restore = |s: &mut Session<E>| {
                restore(s);
                while s.poll_event().is_some() {}
            };
            let step = |s: &mut Session<E>, f: &[u8]| {
                s.handle_frame(f, t, 1);
                while let Some(e) = s.poll_event() {
                    black_box(e);
                }
                true
            };
            runs(iters, frames, &mut session, restore, step, |_| reader.top().header.status.is_valid())
        });
    });
    let c = session.stats().counts();
    // (Zero messages when a filter skipped the bench; each timed run asserts its book valid.)
    assert_eq!((c.sequence_gaps, c.errors), (0, 0));
}

/// `iters` frames of a sequenced stream, timed: the stream can be walked only once from its
/// snapshot, so it is walked in runs, each started untimed by `restore`. Every frame's `step`
/// must say it was proved, and `check` must hold after every run.
fn runs<S>(
    iters: u64,
    frames: &[String],
    state: &mut S,
    mut restore: impl FnMut(&mut S),
    mut step: impl FnMut(&mut S, &[u8]) -> bool,
    check: impl Fn(&S) -> bool,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        restore(state);
        let n = usize::try_from(left.min(frames.len() as u64)).unwrap();
        let start = now();
        let mut proved = true;
        for f in &frames[..n] {
            proved &= step(state, black_box(f.as_bytes()));
        }
        total += start.elapsed();
        assert!(proved && check(state));
        left -= n as u64;
    }
    total
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
