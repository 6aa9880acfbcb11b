//! Shared fixtures for the benches: real sessions from `tests/data/kraken/captures`.
#![allow(dead_code, reason = "each bench uses part of this")]
#![allow(clippy::unwrap_used, reason = "benches fail loudly on a bad fixture")]

use plumb::book::{Book, Depth, Precision, Side};
use plumb::replay::Replay;
use plumb::wire::kraken::Api;

/// Short warm-up and measurement, so that the whole suite runs in a few minutes on 2 cores.
pub(crate) fn config(measure_secs: u64) -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(measure_secs))
}

pub(crate) const BTC: Precision = Precision { price: 1, qty: 8 };

pub(crate) fn capture(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraken/captures").join(name);
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

/// Replays a capture and returns the final book of its one symbol.
pub(crate) fn final_book(name: &str, depth: Depth, api: Api, symbol: &str) -> Book {
    let mut r = Replay::new(depth, None);
    r.set_precision("BTC/USD", BTC);
    for f in capture(name) {
        r.frame(f.as_bytes());
    }
    let book = r.book(api, symbol).unwrap().clone();
    assert!(book.state().is_valid());
    book
}

/// A typical live Kraken v2 update (two bids and two asks changing quantity, with a timestamp;
/// about 290 bytes) against the final BTC/USD book of the recorded session, with the checksum
/// that book has after it. Applying it again leaves the book unchanged, so it verifies every time.
pub(crate) fn typical_v2_update() -> (Book, String) {
    let mut book = final_book("btcusd-v2-book10.capture", Depth::D10, Api::V2, "BTC/USD");
    let levels = |side| book.quotes(side).take(2).map(|q| (q.price.to_string(), q.qty.mantissa)).collect::<Vec<_>>();
    let (bids, asks) = (levels(Side::Bid), levels(Side::Ask));
    let fmt = |v: &[(String, i64)]| {
        v.iter()
            .map(|(p, q)| {
                format!(r#"{{"price":{p},"qty":{}.{:08}}}"#, (q + 1234) / 100_000_000, (q + 1234) % 100_000_000)
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut frame = format!(
        r#"{{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","bids":[{}],"asks":[{}],"checksum":CRC,"timestamp":"2023-07-30T15:30:00.123456Z"}}]}}"#,
        fmt(&bids),
        fmt(&asks)
    );
    let mut after = book.clone();
    let mut parser = plumb::wire::Parser::new();
    let probe = frame.replace("CRC", "0");
    let plumb::wire::kraken::Message::Book(b) = parser.parse(probe.as_bytes()).unwrap() else { panic!() };
    for e in b.entries() {
        after.apply_kraken(b.kind, &e).unwrap();
    }
    frame = frame.replace("CRC", &after.checksum().to_string());
    // Bring the book to the state the update produces, so that every run verifies.
    let plumb::wire::kraken::Message::Book(b) = parser.parse(frame.as_bytes()).unwrap() else { panic!() };
    for e in b.entries() {
        book.apply_kraken(b.kind, &e).unwrap();
    }
    assert!(book.state().is_valid());
    (book, frame)
}

/// A typical v1 update from the recorded XBT/USD session: the first with a checksum and two levels.
pub(crate) fn typical_v1_update() -> String {
    capture("xbtusd-v1-book10.capture")
        .into_iter()
        .find(|f| f.contains("\"c\"") && f.matches("\",\"").count() >= 4 && f.len() > 150)
        .unwrap()
}

/// A typical Bybit v5 stream at depth 50: the snapshot of `BTCUSDT` from the simulated market, then
/// `n` deltas numbered `u = 101, 102, ...`, each changing the quantity of two bids and two asks
/// (the top two levels of each side, alternately up and back down), about 250 bytes each.
pub(crate) fn bybit_delta_stream(n: usize) -> (String, Vec<String>) {
    use plumb_sim::market::{Instrument, Rng, SimBook, bybit_frame};
    let mut rng = Rng::new(7);
    let inst = Instrument::bybit_defaults().into_iter().next().unwrap();
    let book = SimBook::new(inst, &mut rng);
    let v = book.view(50);
    assert_eq!((v.bids.len(), v.asks.len()), (50, 50));
    let ts = 1_700_000_000_000;
    let snapshot = bybit_frame(&book.instrument, 50, true, &v.bids, &v.asks, (100, 1), ts);
    let deltas = (0..n as u64)
        .map(|k| {
            let bump = k % 2;
            let bids = [(v.bids[0].0, v.bids[0].1 + bump), (v.bids[1].0, v.bids[1].1 + bump)];
            let asks = [(v.asks[0].0, v.asks[0].1 + bump), (v.asks[1].0, v.asks[1].1 + bump)];
            bybit_frame(&book.instrument, 50, false, &bids, &asks, (101 + k, 2 + k), ts + k)
        })
        .collect();
    (snapshot, deltas)
}

/// A typical OKX `books` stream: the snapshot of `BTC-USDT` from the simulated market (all its
/// 60 levels a side, as a 400-level subscriber gets them), then `n` updates linked by `prevSeqId`
/// (`seqId` stepping by 1 to 3), each changing the quantity of two bids and two asks (the top two
/// of each side, alternately up and back down), about 250 bytes each. With `checksums`, every frame
/// carries OKX's legacy checksum of the book after it (recorded sessions from before its
/// retirement); without, the 0 OKX sends today.
pub(crate) fn okx_update_stream(n: usize, checksums: bool) -> (String, Vec<String>) {
    use plumb_sim::market::{Instrument, Rng, SimBook, View, okx_checksum, okx_frame};
    let mut rng = Rng::new(7);
    let inst = Instrument::okx_defaults().into_iter().next().unwrap();
    let book = SimBook::new(inst, &mut rng);
    let v = book.view(400);
    type Levels = Vec<(u64, u64)>;
    let bumped = |bump: u64| -> (Levels, Levels) {
        let side = |s: &[(u64, u64)]| vec![(s[0].0, s[0].1 + bump), (s[1].0, s[1].1 + bump)];
        (side(&v.bids), side(&v.asks))
    };
    let crc = |bump: u64| {
        if !checksums {
            return 0;
        }
        let (b, a) = bumped(bump);
        let mut w: View = v.clone();
        w.bids[..2].copy_from_slice(&b);
        w.asks[..2].copy_from_slice(&a);
        okx_checksum(&w, &book.instrument)
    };
    let crcs = [crc(0), crc(1)];
    let ts = 1_700_000_000_000;
    let snapshot =
        okx_frame(&book.instrument, "books", Some("snapshot"), &v.bids, &v.asks, (Some(-1), 1000), crcs[0], ts);
    let mut seq = 1000u64;
    let updates = (0..n as u64)
        .map(|k| {
            let (bids, asks) = bumped(k % 2);
            let prev = i64::try_from(seq).unwrap();
            seq += 1 + k % 3;
            let link = (Some(prev), seq);
            let c = crcs[usize::from(k % 2 == 1)];
            okx_frame(&book.instrument, "books", Some("update"), &bids, &asks, link, c, ts + k)
        })
        .collect();
    (snapshot, updates)
}

/// An OKX REST snapshot body of 400 levels a side (BTC-USDT's precisions), as
/// `plumb_sim::market::okx_rest_body` writes it.
pub(crate) fn okx_rest_body_400() -> String {
    use plumb_sim::market::{Instrument, View, okx_rest_body};
    let inst = Instrument::okx_defaults().into_iter().next().unwrap();
    let mid = 6_500_000u64;
    let view = View {
        bids: (0..400).map(|k| (mid - 1 - k * 3, 1_000 + k * 7)).collect(),
        asks: (0..400).map(|k| (mid + 1 + k * 3, 2_000 + k * 5)).collect(),
    };
    okx_rest_body(&inst, &view, 123_456_789, 1_700_000_000_000)
}

/// A typical Coinbase `level2` stream of BTC-USD from the simulated market: the snapshot (all
/// its 60 levels a side, numbered 1 on its connection), then `n` updates numbered 2, 3, ..., each
/// changing the quantity of one bid and one ask (the best of each, alternately up and back
/// down), interleaved as Coinbase sends them, about 400 bytes each.
pub(crate) fn coinbase_update_stream(n: usize) -> (String, Vec<String>) {
    use plumb_sim::market::{Instrument, Rng, SimBook, coinbase_frame};
    let mut rng = Rng::new(9);
    let inst = Instrument::coinbase_defaults().into_iter().next().unwrap();
    let book = SimBook::new(inst, &mut rng);
    let v = book.view(usize::MAX);
    let ts = 1_700_000_000_000_000_000;
    let snapshot = coinbase_frame(&book.instrument, "snapshot", &v.bids, &v.asks, 1, ts);
    let updates = (0..n as u64)
        .map(|k| {
            let bump = k % 2;
            let bids = [(v.bids[0].0, v.bids[0].1 + bump)];
            let asks = [(v.asks[0].0, v.asks[0].1 + bump)];
            coinbase_frame(&book.instrument, "update", &bids, &asks, k + 2, ts + k)
        })
        .collect();
    (snapshot, updates)
}

/// A Coinbase snapshot of `per_side` levels a side (BTC-USD's precisions), as the whole book comes
/// in one frame.
pub(crate) fn coinbase_snapshot(per_side: u64) -> String {
    use plumb_sim::market::{Instrument, coinbase_frame};
    let inst = Instrument::coinbase_defaults().into_iter().next().unwrap();
    let mid = 6_500_000_000u64;
    let bids: Vec<(u64, u64)> = (0..per_side).map(|k| (mid - 1 - k, 1_000 + k * 7)).collect();
    let asks: Vec<(u64, u64)> = (0..per_side).map(|k| (mid + 1 + k, 2_000 + k * 5)).collect();
    coinbase_frame(&inst, "snapshot", &bids, &asks, 1, 1_700_000_000_000_000_000)
}

/// A typical Binance spot stream of BTCUSDT: the REST snapshot of the simulated market (its 60
/// levels a side) at `lastUpdateId` 1000, then `n` events numbered on from it (`U = last u + 1`,
/// two ids each), each changing the best two bids and asks (alternately up and back down).
pub(crate) fn binance_update_stream(n: usize) -> (String, Vec<String>) {
    use plumb_sim::market::{Instrument, Rng, SimBook, binance_depth_body, binance_event};
    let mut rng = Rng::new(5);
    let inst = Instrument::binance_defaults().into_iter().next().unwrap();
    let book = SimBook::new(inst, &mut rng);
    let v = book.view(1000);
    let snapshot = binance_depth_body(&book.instrument, &v, 1000, None);
    let mut u = 1000u64;
    let events = (0..n as u64)
        .map(|k| {
            let bump = k % 2;
            let bids = [(v.bids[0].0, v.bids[0].1 + bump), (v.bids[1].0, v.bids[1].1 + bump)];
            let asks = [(v.asks[0].0, v.asks[0].1 + bump), (v.asks[1].0, v.asks[1].1 + bump)];
            let e = binance_event(&book.instrument, (u + 1, u + 2, None), &bids, &asks, 1_700_000_000_000 + k);
            u += 2;
            e
        })
        .collect();
    (snapshot, events)
}

/// A Binance REST snapshot of `per_side` levels a side (BTCUSDT's precisions).
pub(crate) fn binance_snapshot(per_side: u64) -> String {
    use plumb_sim::market::{Instrument, View, binance_depth_body};
    let inst = Instrument::binance_defaults().into_iter().next().unwrap();
    let mid = 6_500_000u64;
    let view = View {
        bids: (0..per_side).map(|k| (mid - 1 - k, 1_000 + k * 7)).collect(),
        asks: (0..per_side).map(|k| (mid + 1 + k, 2_000 + k * 5)).collect(),
    };
    binance_depth_body(&inst, &view, 123_456_789, None)
}
