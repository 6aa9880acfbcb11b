//! The real driver with Bybit v5 behind the exchange seam, against a real websocket server on
//! 127.0.0.1 (the simulated exchange's Bybit venue), under tokio's paused clock.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::time::Duration;

use plumb_book::Verdict;
use plumb_book::publish::Status;
use plumb_feed::{Error, Event, FeedBuilder, Market, ResyncReason};
use plumb_sim::market::Instrument;
use plumb_sim::{Exchange, ExchangeConfig, Fault};

mod support;

use support::{Rig, resyncs};

/// Whether a valid book may rest on a checksum.
const CHECKSUMS: bool = false;

const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "PEPEUSDT"];

async fn rig(config: ExchangeConfig, symbols: &[&str]) -> Rig {
    let exchange = Exchange::start(config).await.unwrap();
    let (feed, driver) = FeedBuilder::bybit(Market::Spot)
        .url(exchange.bybit_url("spot"))
        .symbols(symbols.iter().copied())
        .build()
        .unwrap();
    tokio::spawn(driver);
    Rig::new(exchange, feed, CHECKSUMS)
}

#[tokio::test(start_paused = true)]
async fn a_lost_delta_is_a_gap_that_resyncs_only_that_symbol() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::DropUpdate(Some("ETHUSDT".into())));
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::ResyncFinished { .. }))).await;
    let rs = resyncs(&ev);
    assert!(
        matches!(&rs[..], [(s, ResyncReason::SequenceGap { expected, got })] if s == "ETHUSDT" && got > expected),
        "{rs:?}"
    );
    r.all_valid(&SYMBOLS).await;
    // Unsubscribed first, subscribed after the acknowledgement: Bybit never saw a second
    // subscribe of a live topic, so nothing was refused.
    assert_eq!(r.requests("unsubscribe", "ETHUSDT"), 1);
    assert_eq!(r.requests("subscribe", "ETHUSDT"), 2);
    assert_eq!(r.requests("subscribe", "BTCUSDT"), 1);
    assert!(!ev.iter().any(|e| matches!(e, Event::Error(_))), "{ev:?}");
    let c = r.feed.counts();
    assert_eq!((c.sequence_gaps, c.resyncs), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_restart_with_u_1_is_not_a_gap() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Restart(Some("BTCUSDT".into())));
    let ev = r
        .until(Duration::from_secs(10), |ev| {
            ev.iter().any(|e| matches!(e, Event::Book(b) if &*b.symbol == "BTCUSDT" && b.sequence == Some(3)))
        })
        .await;
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Book(b) if &*b.symbol == "BTCUSDT" && b.outcome == Verdict::InSequence(1)))
    );
    assert!(resyncs(&ev).is_empty(), "{ev:?}");
    r.all_valid(&SYMBOLS).await;
    assert_eq!(r.feed.counts().sequence_gaps, 0);
    assert_eq!(r.exchange.applied().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_delta_is_ignored_not_applied_twice() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Duplicate(Some("PEPEUSDT".into())));
    let ev = r
        .until(Duration::from_secs(10), |ev| {
            ev.iter().any(
                |e| matches!(e, Event::Book(b) if matches!(b.outcome, Verdict::Stale { last, got } if last == got)),
            )
        })
        .await;
    assert!(resyncs(&ev).is_empty());
    let ev = r.run_for(Duration::from_secs(2)).await;
    assert!(resyncs(&ev).is_empty());
    r.all_valid(&SYMBOLS).await;
}

#[tokio::test(start_paused = true)]
async fn a_malformed_frame_is_an_error_event_and_touches_no_book() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Malformed);
    let ev = r.until(Duration::from_secs(10), |ev| ev.iter().any(|e| matches!(e, Event::Error(Error::Frame(_))))).await;
    assert!(resyncs(&ev).is_empty());
    let ev = r.run_for(Duration::from_secs(2)).await;
    assert!(resyncs(&ev).is_empty(), "{:?}", resyncs(&ev));
    r.all_valid(&SYMBOLS).await;
}

#[tokio::test(start_paused = true)]
async fn an_abrupt_close_and_a_silence_reconnect_and_heal() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Close);
    r.until(Duration::from_secs(10), |ev| ev.iter().any(|e| matches!(e, Event::Disconnected { .. }))).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Silence(Duration::from_secs(20)));
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Stale { .. }))).await;
    let Some(Event::Stale { silent_for }) = ev.iter().find(|e| matches!(e, Event::Stale { .. })) else { panic!() };
    assert!(*silent_for <= Duration::from_secs(8), "replaced well within 15 s: {silent_for:?}");
    for s in SYMBOLS {
        assert_eq!(r.feed.reader(s).unwrap().top().header.status, Status::Stale);
    }
    r.all_valid(&SYMBOLS).await;
    assert!(r.exchange.connections() >= 3);
}

#[tokio::test(start_paused = true)]
async fn more_than_ten_symbols_are_subscribed_in_requests_of_ten() {
    let mut instruments = Instrument::bybit_defaults();
    for k in 0..6 {
        let mut i = instruments[k].clone();
        i.symbol = format!("ALT{k}USDT");
        instruments.push(i);
    }
    let symbols: Vec<String> = instruments.iter().map(|i| i.symbol.clone()).collect();
    let names: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let config = ExchangeConfig { bybit_instruments: instruments, rate: 400, ..ExchangeConfig::default() };
    let mut r = rig(config, &names).await;
    r.all_valid(&names).await;
    let subs: Vec<usize> =
        r.exchange.requests().iter().filter(|q| q.method == "subscribe").map(|q| q.symbols.len()).collect();
    assert_eq!(subs, [10, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_symbol_is_reported_and_the_others_are_asked_for_again() {
    let config = ExchangeConfig { reject: vec!["ETHUSDT".into()], ..ExchangeConfig::default() };
    let mut r = rig(config, &SYMBOLS).await;
    let first = r.all_valid(&["BTCUSDT", "PEPEUSDT"]).await;
    let refused: Vec<&Event> = first.iter().filter(|e| matches!(e, Event::Error(_))).collect();
    assert!(
        matches!(&refused[..], [Event::Error(Error::SubscriptionRejected { symbol, message })]
            if &**symbol == "ETHUSDT" && message.contains("orderbook.50.ETHUSDT")),
        "{refused:?}"
    );
    let ev = r.run_for(Duration::from_secs(5)).await;
    assert_eq!(r.feed.reader("ETHUSDT").unwrap().top().header.status, Status::Invalid);
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Error(Error::SubscriptionRejected { .. }))),
        "reported once, earlier"
    );
    // The whole first request was refused, naming ETHUSDT; the others went again, ETHUSDT not.
    assert_eq!(r.requests("subscribe", "ETHUSDT"), 1);
    assert_eq!(r.requests("subscribe", "BTCUSDT"), 2);
}
