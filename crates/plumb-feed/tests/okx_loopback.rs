//! The real driver with OKX v5 behind the exchange seam, against a real websocket server on
//! 127.0.0.1 (the simulated exchange's OKX venue), under tokio's paused clock.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::time::Duration;

use plumb_book::publish::Status;
use plumb_book::{Depth, Proof, Verdict};
use plumb_feed::{Disconnect, Error, Event, FeedBuilder, ResyncReason};
use plumb_sim::market::Instrument;
use plumb_sim::{Exchange, ExchangeConfig, Fault};

mod support;

use support::{Rig, resyncs};

/// Whether a valid book may rest on a checksum.
const CHECKSUMS: bool = true;

const SYMBOLS: [&str; 3] = ["BTC-USDT", "BTC-USDT-SWAP", "PEPE-USDT"];

async fn rig_at(config: ExchangeConfig, symbols: &[&str], depth: u32) -> Rig {
    rig_with(config, symbols, depth, true).await
}

async fn rig_with(config: ExchangeConfig, symbols: &[&str], depth: u32, rest: bool) -> Rig {
    let exchange = Exchange::start(config).await.unwrap();
    let builder = FeedBuilder::okx().url(exchange.okx_url());
    let builder = if rest { builder.rest_url(exchange.okx_rest_url()) } else { builder.no_rest() };
    let (feed, driver) = builder.depth(Depth::new(depth).unwrap()).symbols(symbols.iter().copied()).build().unwrap();
    tokio::spawn(driver);
    Rig::new(exchange, feed, CHECKSUMS)
}

async fn rig(config: ExchangeConfig, symbols: &[&str]) -> Rig {
    rig_at(config, symbols, 400).await
}

#[tokio::test(start_paused = true)]
async fn a_lost_update_is_a_gap_that_resyncs_only_that_instrument_with_one_subscribe() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::DropUpdate(Some("BTC-USDT-SWAP".into())));
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::ResyncFinished { .. }))).await;
    let rs = resyncs(&ev);
    assert!(
        matches!(&rs[..], [(s, ResyncReason::SequenceGap { expected, got })] if s == "BTC-USDT-SWAP" && got > expected),
        "{rs:?}"
    );
    // The reader saw the gap at once: the revealing update's event already says resyncing.
    assert!(ev.iter().any(
        |e| matches!(e, Event::Book(b) if &*b.symbol == "BTC-USDT-SWAP" && matches!(b.outcome, Verdict::Gap { .. }) && b.status != Status::Valid)
    ));
    r.all_valid(&SYMBOLS).await;
    // OKX answers a subscribe of a live channel with a fresh snapshot: no unsubscribe needed.
    assert_eq!(r.requests("unsubscribe", "BTC-USDT-SWAP"), 0);
    assert_eq!(r.requests("subscribe", "BTC-USDT-SWAP"), 2);
    assert_eq!(r.requests("subscribe", "BTC-USDT"), 1);
    assert!(!ev.iter().any(|e| matches!(e, Event::Error(_))), "{ev:?}");
    let c = r.feed.counts();
    assert_eq!((c.sequence_gaps, c.resyncs), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_reset_after_maintenance_and_a_keepalive_are_not_gaps() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Restart(Some("BTC-USDT".into())));
    r.exchange.inject(Fault::Keepalive(Some("PEPE-USDT".into())));
    let ev = r
        .until(Duration::from_secs(10), |ev| {
            ev.iter().any(|e| matches!(e, Event::Book(b) if &*b.symbol == "PEPE-USDT" && matches!(b.outcome, Verdict::Stale { last, got } if last == got)))
        })
        .await;
    let ev2 = r.run_for(Duration::from_secs(3)).await;
    assert_eq!(r.exchange.applied().len(), 2, "{:?}", r.exchange.applied());
    assert!(resyncs(&ev).is_empty() && resyncs(&ev2).is_empty(), "{:?}", resyncs(&ev2));
    // The reset took BTC-USDT's id down (below 1000), and the book stayed valid through it.
    let seq = r.feed.reader("BTC-USDT").unwrap();
    let Proof::Sequence(id) = seq.top().header.proof else { panic!("{:?}", seq.top().header.proof) };
    assert!(id < 10_000, "{id}");
    r.all_valid(&SYMBOLS).await;
    assert_eq!(r.feed.counts().sequence_gaps, 0);
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_that_never_comes_is_fetched_by_rest_and_bridged() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    // The next REST request fails (503, Retry-After 1 s); the one after it is answered.
    r.exchange.inject(Fault::RestError);
    r.exchange.inject(Fault::NoSnapshot(Some("BTC-USDT".into())));
    let ev = r.until(Duration::from_secs(60), |ev| ev.iter().any(|e| matches!(e, Event::ResyncFinished { .. }))).await;
    // One resync: the gap started it; the acknowledged subscribe without a snapshot went to REST.
    assert!(
        matches!(&resyncs(&ev)[..], [(s, ResyncReason::SequenceGap { .. })] if s == "BTC-USDT"),
        "{:?}",
        resyncs(&ev)
    );
    assert!(
        ev.iter().any(|e| matches!(e, Event::Error(Error::Fetch { symbol, message }) if &**symbol == "BTC-USDT" && message.contains("503"))),
        "{ev:?}"
    );
    let Some(Event::ResyncFinished { took, .. }) = ev.iter().find(|e| matches!(e, Event::ResyncFinished { .. })) else {
        panic!()
    };
    assert!(*took >= plumb_feed::Exchange::config(&plumb_feed::Okx).snapshot_timeout, "{took:?}");
    // Valid from the REST snapshot and the stream's links after it, and it stays so.
    r.all_valid(&SYMBOLS).await;
    r.run_for(Duration::from_secs(3)).await;
    assert_eq!(r.feed.reader("BTC-USDT").unwrap().top().header.status, Status::Valid);
    assert_eq!(r.requests("subscribe", "BTC-USDT"), 2);
    assert!(r.requests("rest", "BTC-USDT") >= 2, "{:?}", r.exchange.requests());
    let c = r.feed.counts();
    assert!(c.fetches >= 2 && c.fetch_failures >= 1, "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn without_rest_a_snapshot_that_never_comes_is_asked_for_again() {
    let mut r = rig_with(ExchangeConfig::default(), &SYMBOLS, 400, false).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::NoSnapshot(Some("BTC-USDT".into())));
    let ev = r.until(Duration::from_secs(60), |ev| ev.iter().any(|e| matches!(e, Event::ResyncFinished { .. }))).await;
    assert!(
        matches!(&resyncs(&ev)[..], [(s, ResyncReason::SequenceGap { .. })] if s == "BTC-USDT"),
        "{:?}",
        resyncs(&ev)
    );
    r.all_valid(&SYMBOLS).await;
    assert_eq!(r.requests("subscribe", "BTC-USDT"), 3);
    assert_eq!(r.requests("rest", "BTC-USDT"), 0);
}

#[tokio::test(start_paused = true)]
async fn legacy_checksums_are_verified_and_a_corrupt_one_resyncs() {
    let config = ExchangeConfig { okx_checksums: true, ..ExchangeConfig::default() };
    let mut r = rig(config, &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    assert!(r.feed.counts().checksums_verified > 0);
    for s in SYMBOLS {
        assert!(matches!(r.feed.reader(s).unwrap().top().header.proof, Proof::Checksum(_)));
    }
    r.exchange.inject(Fault::CorruptChecksum(Some("PEPE-USDT".into())));
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::ResyncFinished { .. }))).await;
    assert!(
        matches!(&resyncs(&ev)[..], [(s, ResyncReason::ChecksumMismatch { .. })] if s == "PEPE-USDT"),
        "{:?}",
        resyncs(&ev)
    );
    r.all_valid(&SYMBOLS).await;
    assert_eq!(r.feed.counts().checksum_mismatches, 1);
}

#[tokio::test(start_paused = true)]
async fn whole_book_channels_replace_the_book_on_every_push() {
    for depth in [5, 1] {
        let mut r = rig_at(ExchangeConfig::default(), &SYMBOLS, depth).await;
        r.all_valid(&SYMBOLS).await;
        r.run_for(Duration::from_secs(2)).await;
        let channel = if depth == 5 { "books5" } else { "bbo-tbt" };
        assert!(
            r.exchange
                .requests()
                .iter()
                .filter(|q| q.method == "subscribe")
                .all(|q| q.channel.as_deref() == Some(channel))
        );
        for s in SYMBOLS {
            let top = r.feed.reader(s).unwrap().top();
            let depth = usize::try_from(depth).unwrap();
            assert_eq!((top.header.bids, top.header.asks), (depth, depth), "{s}");
        }
        assert_eq!(r.feed.counts().sequence_gaps, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_frames_closes_silences_and_a_notice_heal() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Malformed);
    let ev = r.until(Duration::from_secs(10), |ev| ev.iter().any(|e| matches!(e, Event::Error(Error::Frame(_))))).await;
    assert!(resyncs(&ev).is_empty());
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Close);
    r.until(Duration::from_secs(10), |ev| ev.iter().any(|e| matches!(e, Event::Disconnected { .. }))).await;
    r.all_valid(&SYMBOLS).await;
    // A short silence: the text `ping` after 5 s, answered once the server speaks again, and no
    // reconnect.
    r.exchange.inject(Fault::Silence(Duration::from_secs(7)));
    let ev = r.run_for(Duration::from_secs(9)).await;
    assert!(!ev.iter().any(|e| matches!(e, Event::Stale { .. } | Event::Disconnected { .. })), "{ev:?}");
    assert!(r.exchange.requests().iter().any(|q| q.method == "ping"));
    r.exchange.inject(Fault::Silence(Duration::from_secs(20)));
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Stale { .. }))).await;
    let Some(Event::Stale { silent_for }) = ev.iter().find(|e| matches!(e, Event::Stale { .. })) else { panic!() };
    assert!(*silent_for <= Duration::from_secs(10), "replaced well within 15 s: {silent_for:?}");
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Notice);
    r.until(Duration::from_secs(10), |ev| {
        ev.iter().any(|e| matches!(e, Event::Disconnected { reason: Disconnect::Maintenance }))
    })
    .await;
    r.all_valid(&SYMBOLS).await;
    assert!(r.exchange.connections() >= 4);
}

#[tokio::test(start_paused = true)]
async fn a_bad_instrument_is_refused_alone_and_the_limit_is_29_books() {
    let config = ExchangeConfig { reject: vec!["BTC-USDT-SWAP".into()], ..ExchangeConfig::default() };
    let mut r = rig(config, &SYMBOLS).await;
    let first = r.all_valid(&["BTC-USDT", "PEPE-USDT"]).await;
    let refused: Vec<&Event> = first.iter().filter(|e| matches!(e, Event::Error(_))).collect();
    assert!(
        matches!(&refused[..], [Event::Error(Error::SubscriptionRejected { symbol, message })]
            if &**symbol == "BTC-USDT-SWAP" && message.contains("doesn't exist")),
        "{refused:?}"
    );
    r.run_for(Duration::from_secs(3)).await;
    assert_eq!(r.feed.reader("BTC-USDT-SWAP").unwrap().top().header.status, Status::Invalid);
    assert_eq!(r.requests("subscribe", "BTC-USDT"), 1);
    // 29 books per connection at most.
    let mut instruments = Instrument::okx_defaults();
    for k in 0..30 {
        let mut i = instruments[k % 5].clone();
        i.symbol = format!("ALT{k}-USDT");
        instruments.push(i);
    }
    let names: Vec<String> = instruments.iter().map(|i| i.symbol.clone()).collect();
    let too_many = FeedBuilder::okx().symbols(names.iter().map(String::as_str)).build();
    assert!(matches!(too_many, Err(Error::TooManySymbols { limit: 29, .. })), "{:?}", too_many.err());
}
