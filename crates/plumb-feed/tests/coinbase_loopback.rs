//! The real driver with Coinbase Advanced Trade behind the exchange seam, against a real
//! websocket server on 127.0.0.1 (the simulated exchange's Coinbase venue), under tokio's paused
//! clock.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::collections::HashSet;
use std::time::Duration;

use plumb_book::publish::Status;
use plumb_feed::{Disconnect, Error, Event, FeedBuilder, ResyncReason};
use plumb_sim::market::Instrument;
use plumb_sim::{Exchange, ExchangeConfig, Fault};

mod support;

use support::{Rig, resyncs};

/// Whether a valid book may rest on a checksum.
const CHECKSUMS: bool = false;

const SYMBOLS: [&str; 3] = ["BTC-USD", "ETH-USD", "DOGE-USD"];

async fn rig(config: ExchangeConfig, symbols: &[&str]) -> Rig {
    let exchange = Exchange::start(config).await.unwrap();
    let (feed, driver) =
        FeedBuilder::coinbase().url(exchange.coinbase_url()).symbols(symbols.iter().copied()).build().unwrap();
    tokio::spawn(driver);
    Rig::new(exchange, feed, CHECKSUMS)
}

/// The venue refuses a ninth client message in a second with `rate limit exceeded`: none came.
fn no_rate_errors(events: &[Event]) {
    assert!(!events.iter().any(|e| matches!(e, Event::Error(Error::Exchange(m)) if m.contains("rate"))), "{events:?}");
}

/// A message lost right before a heartbeat: the heartbeat shows it, all three books become invalid
/// at once, and each heals at its own snapshot. Then the same with an update of one product lost.
#[tokio::test(start_paused = true)]
async fn a_gap_seen_on_a_heartbeat_or_an_update_invalidates_three_books_and_heals_all_three() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    for fault in [Fault::HeartbeatGap, Fault::DropUpdate(Some("ETH-USD".into()))] {
        r.exchange.inject(fault.clone());
        let ev = r
            .until(Duration::from_secs(30), |ev| {
                ev.iter().filter(|e| matches!(e, Event::ResyncFinished { .. })).count() == 3
            })
            .await;
        let rs = resyncs(&ev);
        let names: HashSet<&str> = rs.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, SYMBOLS.into_iter().collect(), "{fault:?}: {rs:?}");
        assert!(rs.iter().all(|(_, why)| matches!(why, ResyncReason::SequenceGap { expected, got } if got > expected)));
        // All three invalid at the same event: the first resync event of each comes before any
        // book is valid again.
        let started: Vec<usize> =
            ev.iter().enumerate().filter(|(_, e)| matches!(e, Event::ResyncStarted { .. })).map(|(k, _)| k).collect();
        let first_valid = ev[started[0]..]
            .iter()
            .position(|e| matches!(e, Event::Book(b) if b.status == Status::Valid))
            .map(|k| k + started[0])
            .unwrap();
        assert!(started.len() == 3 && started[2] < first_valid, "{fault:?}: {started:?} {first_valid}");
        no_rate_errors(&ev);
        r.all_valid(&SYMBOLS).await;
    }
    let c = r.feed.counts();
    assert_eq!((c.sequence_gaps, c.resyncs), (2, 6));
    assert_eq!(r.exchange.connections(), 1, "resubscribed, not reconnected");
    assert_eq!(r.requests("unsubscribe", "BTC-USD"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_is_ignored_and_a_malformed_frame_takes_no_number() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Duplicate(Some("DOGE-USD".into())));
    r.exchange.inject(Fault::Malformed);
    let ev = r.until(Duration::from_secs(10), |ev| ev.iter().any(|e| matches!(e, Event::Error(Error::Frame(_))))).await;
    assert!(resyncs(&ev).is_empty(), "{ev:?}");
    let ev = r.run_for(Duration::from_secs(3)).await;
    assert!(resyncs(&ev).is_empty(), "{:?}", resyncs(&ev));
    r.all_valid(&SYMBOLS).await;
    let c = r.feed.counts();
    assert_eq!((c.sequence_gaps, c.resyncs, c.errors), (0, 0, 1));
    assert_eq!(r.exchange.applied().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_abrupt_close_and_a_silence_reconnect_and_heal() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Close);
    r.until(Duration::from_secs(10), |ev| ev.iter().any(|e| matches!(e, Event::Disconnected { .. }))).await;
    r.all_valid(&SYMBOLS).await;
    // The new connection numbers from 0 again: a new counter, not a gap.
    assert_eq!(r.feed.counts().sequence_gaps, 0);
    r.exchange.inject(Fault::Silence(Duration::from_secs(20)));
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Stale { .. }))).await;
    let Some(Event::Stale { silent_for }) = ev.iter().find(|e| matches!(e, Event::Stale { .. })) else { panic!() };
    assert!(*silent_for <= Duration::from_secs(6), "replaced well within 15 s: {silent_for:?}");
    for s in SYMBOLS {
        assert_eq!(r.feed.reader(s).unwrap().top().header.status, Status::Stale);
    }
    r.all_valid(&SYMBOLS).await;
    assert!(r.exchange.connections() >= 3);
    // Every connection subscribed heartbeats first.
    let log = r.exchange.requests();
    for c in 1..=r.exchange.connections() {
        let first = log.iter().find(|q| q.connection == c);
        assert!(first.is_none_or(|q| q.channel.as_deref() == Some("heartbeats")), "{c}: {first:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_product_is_reported_and_the_others_are_asked_for_again_in_one_request() {
    let config = ExchangeConfig { reject: vec!["ETH-USD".into()], ..ExchangeConfig::default() };
    let mut r = rig(config, &SYMBOLS).await;
    let first = r.all_valid(&["BTC-USD", "DOGE-USD"]).await;
    let refused: Vec<&Event> = first.iter().filter(|e| matches!(e, Event::Error(_))).collect();
    assert!(
        matches!(&refused[..], [Event::Error(Error::SubscriptionRejected { symbol, message })]
            if &**symbol == "ETH-USD" && message.contains("not a valid product")),
        "{refused:?}"
    );
    let _ = r.run_for(Duration::from_secs(3)).await;
    assert_eq!(r.feed.reader("ETH-USD").unwrap().top().header.status, Status::Invalid);
    let subs: Vec<Vec<String>> = r
        .exchange
        .requests()
        .into_iter()
        .filter(|q| q.method == "subscribe" && q.channel.as_deref() == Some("level2"))
        .map(|q| q.symbols)
        .collect();
    assert_eq!(subs, [vec!["BTC-USD", "ETH-USD", "DOGE-USD"], vec!["BTC-USD", "DOGE-USD"]]);
}

#[tokio::test(start_paused = true)]
async fn more_than_100_products_are_subscribed_in_requests_of_100() {
    let mut instruments = Instrument::coinbase_defaults();
    for k in 0..101 {
        let mut i = instruments[k % 4].clone();
        i.symbol = format!("ALT{k}-USD");
        instruments.push(i);
    }
    let symbols: Vec<String> = instruments.iter().map(|i| i.symbol.clone()).collect();
    let names: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let config = ExchangeConfig { coinbase_instruments: instruments, rate: 400, ..ExchangeConfig::default() };
    let mut r = rig(config, &names).await;
    let ev = r.all_valid(&names).await;
    no_rate_errors(&ev);
    let subs: Vec<(String, usize)> = r
        .exchange
        .requests()
        .iter()
        .filter(|q| q.method == "subscribe")
        .map(|q| (q.channel.clone().unwrap_or_default(), q.symbols.len()))
        .collect();
    assert_eq!(subs, [("heartbeats".to_owned(), 0), ("level2".to_owned(), 100), ("level2".to_owned(), 5)]);
}

/// A 20 MB snapshot (100,000 levels a side) over loopback: read whole, the book valid with every
/// level; with a frame limit below it, an error event that says so, never a silent stall.
#[tokio::test(start_paused = true)]
async fn a_20_mb_snapshot_is_read_whole_and_one_over_the_limit_says_so() {
    let config = ExchangeConfig { coinbase_depth: 100_000, rate: 50, ..ExchangeConfig::default() };
    let exchange = Exchange::start(config).await.unwrap();
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b = std::sync::Arc::clone(&bytes);
    let (mut feed, driver) = FeedBuilder::coinbase()
        .url(exchange.coinbase_url())
        .symbols(["BTC-USD"])
        .tap(move |frame: &[u8], _| {
            b.fetch_max(frame.len(), std::sync::atomic::Ordering::Relaxed);
        })
        .build()
        .unwrap();
    tokio::spawn(driver);
    let reader = feed.reader("BTC-USD").unwrap();
    let mut events = feed.events().unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while reader.top().header.status != Status::Valid {
            let _ = events.recv().await;
        }
    })
    .await
    .unwrap();
    let largest = bytes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(largest > 20_000_000, "the snapshot frame was {largest} bytes");
    let c = feed.counts();
    assert_eq!((c.errors, c.resyncs), (0, 0));
    // A feed whose limit is 1 MiB: the snapshot is refused, loudly, and retried with backoff.
    let (mut small, driver) = FeedBuilder::coinbase()
        .url(exchange.coinbase_url())
        .symbols(["BTC-USD"])
        .max_frame_size(1 << 20)
        .build()
        .unwrap();
    tokio::spawn(driver);
    let mut events = small.events().unwrap();
    let said = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await.unwrap() {
                Event::Error(Error::FrameTooLarge { limit, detail }) => return (limit, detail),
                Event::Book(b) => panic!("no book from a refused snapshot: {b:?}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(said.0, 1 << 20);
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Disconnected { reason } = events.recv().await.unwrap() {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(ev, Disconnect::Transport(_)), "{ev:?}");
    assert_ne!(small.reader("BTC-USD").unwrap().top().header.status, Status::Valid);
}
