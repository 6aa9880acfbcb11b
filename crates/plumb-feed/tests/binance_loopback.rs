//! The real driver with Binance spot and USD-M behind the exchange seam, against a real websocket
//! and HTTP server on 127.0.0.1 (the simulated exchange's Binance venues: streams, websocket pings
//! that need their pong, a message-rate limit, and REST depth snapshots that lag), under tokio's
//! paused clock.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::time::Duration;

use plumb_book::publish::Status;
use plumb_feed::{Binance, BinanceUsdm, Error, Event, FeedBuilder, ResyncReason};
use plumb_sim::{Exchange, ExchangeConfig, Fault};

mod support;

use support::{Rig, resyncs};

/// Whether a valid book may rest on a checksum.
const CHECKSUMS: bool = false;

const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "PEPEUSDT"];

async fn rig(config: ExchangeConfig, symbols: &[&str], usdm: bool) -> Rig {
    let exchange = Exchange::start(config).await.unwrap();
    let feed = if usdm {
        let (feed, driver) = FeedBuilder::new(BinanceUsdm)
            .url(format!("{}/public/ws", exchange.binance_base()))
            .rest_url(exchange.rest_url())
            .symbols(symbols.iter().copied())
            .build()
            .unwrap();
        tokio::spawn(driver);
        feed
    } else {
        let (feed, driver) = FeedBuilder::new(Binance)
            .url(format!("{}/ws", exchange.binance_base()))
            .rest_url(exchange.rest_url())
            .symbols(symbols.iter().copied())
            .build()
            .unwrap();
        tokio::spawn(driver);
        feed
    };
    Rig::new(exchange, feed, CHECKSUMS)
}

/// A lost event: that book alone is bridged again from a new snapshot, with no request to the
/// stream (one SUBSCRIBE in all), spot by `U` and USD-M by `pu`; a duplicate is ignored.
#[tokio::test(start_paused = true)]
async fn a_lost_event_rebridges_that_book_alone_and_a_duplicate_is_ignored() {
    for usdm in [false, true] {
        let mut r = rig(ExchangeConfig::default(), &SYMBOLS, usdm).await;
        r.all_valid(&SYMBOLS).await;
        r.exchange.inject(Fault::Duplicate(Some("PEPEUSDT".into())));
        r.exchange.inject(Fault::DropUpdate(Some("ETHUSDT".into())));
        let ev =
            r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::ResyncFinished { .. }))).await;
        let rs = resyncs(&ev);
        assert!(matches!(&rs[..], [(s, ResyncReason::SequenceGap { .. })] if s == "ETHUSDT"), "usdm {usdm}: {rs:?}");
        r.all_valid(&SYMBOLS).await;
        assert_eq!(r.requests("subscribe", "ETHUSDT"), 1, "no request to the stream for a resync");
        let c = r.feed.counts();
        assert_eq!((c.sequence_gaps, c.resyncs), (1, 1), "usdm {usdm}");
        assert!(c.fetches >= 4, "{c:?}");
    }
}

/// A snapshot older than the buffered events is fetched again; a 503 with `Retry-After` backs
/// off; both heal.
#[tokio::test(start_paused = true)]
async fn an_old_snapshot_and_rest_errors_are_fetched_again() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS, false).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::NoSnapshot(None));
    r.exchange.inject(Fault::RestError);
    r.exchange.inject(Fault::DropUpdate(Some("BTCUSDT".into())));
    let ev = r.until(Duration::from_secs(60), |ev| ev.iter().any(|e| matches!(e, Event::ResyncFinished { .. }))).await;
    let errors: Vec<&Event> = ev.iter().filter(|e| matches!(e, Event::Error(Error::Fetch { .. }))).collect();
    assert!(!errors.is_empty(), "{ev:?}");
    r.all_valid(&SYMBOLS).await;
    let applied: Vec<&str> = r.exchange.applied().iter().map(|a| a.fault.name()).collect();
    assert!(applied.contains(&"rest_error"), "{applied:?}");
}

/// Websocket pings every 20 s are answered with their payload, within the message limit; a quiet
/// connection stays up; `serverShutdown` reconnects at once; a symbol Binance does not list is
/// refused by its REST answer and not fetched again.
#[tokio::test(start_paused = true)]
async fn pings_are_answered_shutdown_reconnects_and_unknown_symbols_are_refused() {
    let config = ExchangeConfig { reject: vec!["PEPEUSDT".into()], rate: 20, ..ExchangeConfig::default() };
    let mut r = rig(config, &SYMBOLS, false).await;
    let ev = r.all_valid(&["BTCUSDT", "ETHUSDT"]).await;
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Error(Error::SubscriptionRejected { symbol, .. }) if &**symbol == "PEPEUSDT")),
        "{ev:?}"
    );
    let _ = r.run_for(Duration::from_secs(70)).await;
    let (pongs, violations) = r.exchange.pongs_and_rate_violations();
    assert!(pongs >= 3, "{pongs} pongs in 70 s");
    assert_eq!(violations, 0);
    assert_eq!(r.exchange.connections(), 1);
    assert_eq!(r.feed.reader("PEPEUSDT").unwrap().top().header.status, Status::Invalid);
    // `serverShutdown`: a planned rollover. A new connection comes up, its books are bridged on
    // a session of their own, and they are handed over while valid: no reader ever sees a book
    // that is not valid, and the old connection is closed.
    r.exchange.inject(Fault::Notice);
    let ev = r.until(Duration::from_secs(60), |ev| ev.iter().any(|e| matches!(e, Event::RolledOver))).await;
    assert!(!ev.iter().any(|e| matches!(e, Event::Disconnected { .. } | Event::Stale { .. })), "{ev:?}");
    for s in ["BTCUSDT", "ETHUSDT"] {
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Book(b) if &*b.symbol == s && b.status != Status::Valid)),
            "{s} read not valid during the rollover"
        );
    }
    assert_eq!(r.exchange.connections(), 2);
    let before = r.feed.counts();
    let ev = r.run_for(Duration::from_secs(5)).await;
    assert!(ev.iter().any(|e| matches!(e, Event::Book(b) if &*b.symbol == "BTCUSDT" && b.status == Status::Valid)));
    assert!(r.feed.counts().frames > before.frames, "the counts go on from the new connection");
    r.all_valid(&["BTCUSDT", "ETHUSDT"]).await;
}

#[tokio::test(start_paused = true)]
async fn an_abrupt_close_a_silence_and_a_malformed_frame_heal() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS, true).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Malformed);
    let ev = r.until(Duration::from_secs(10), |ev| ev.iter().any(|e| matches!(e, Event::Error(Error::Frame(_))))).await;
    assert!(resyncs(&ev).is_empty(), "a malformed frame uses no update id: {ev:?}");
    r.exchange.inject(Fault::Close);
    r.until(Duration::from_secs(10), |ev| ev.iter().any(|e| matches!(e, Event::Disconnected { .. }))).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Silence(Duration::from_secs(60)));
    let ev = r.until(Duration::from_secs(60), |ev| ev.iter().any(|e| matches!(e, Event::Stale { .. }))).await;
    let Some(Event::Stale { silent_for }) = ev.iter().find(|e| matches!(e, Event::Stale { .. })) else { panic!() };
    assert!(*silent_for <= Duration::from_secs(21), "{silent_for:?}");
    r.all_valid(&SYMBOLS).await;
}
