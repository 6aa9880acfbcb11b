//! The real driver against a real websocket server on 127.0.0.1 (the simulated Kraken v2
//! exchange of `plumb-sim`, with real checksums), under tokio's paused clock: backoff, pacing and
//! the watchdog run in virtual time, so these tests take milliseconds, not minutes.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::collections::HashSet;
use std::time::Duration;

use plumb_book::kraken::Outcome;
use plumb_book::publish::Status;
use plumb_feed::{Disconnect, Error, Event, Events, Feed, FeedBuilder, ResyncReason};
use plumb_sim::{Exchange, ExchangeConfig, Fault};

const SYMBOLS: [&str; 3] = ["BTC/USD", "ETH/USD", "SHIB/USD"];

struct Rig {
    exchange: Exchange,
    feed: Feed,
    events: Events,
    seen: Vec<Event>,
}

async fn rig(config: ExchangeConfig, symbols: &[&str]) -> Rig {
    let exchange = Exchange::start(config).await.unwrap();
    let (mut feed, driver) =
        FeedBuilder::kraken().url(exchange.url()).symbols(symbols.iter().copied()).build().unwrap();
    tokio::spawn(driver);
    let events = feed.events().unwrap();
    Rig { exchange, feed, events, seen: Vec::new() }
}

impl Rig {
    /// Collects events until `done` holds for the new ones, or fails after `limit` of virtual time.
    async fn until(&mut self, limit: Duration, mut done: impl FnMut(&[Event]) -> bool) -> Vec<Event> {
        let mut new = Vec::new();
        let res = tokio::time::timeout(limit, async {
            loop {
                let e = self.events.recv().await.expect("feed stopped");
                check_event(&e);
                new.push(e);
                if done(&new) {
                    return;
                }
            }
        })
        .await;
        self.seen.extend(new.iter().cloned());
        assert!(res.is_ok(), "timed out; events: {:#?}", summarize(&new));
        new
    }

    /// Waits until every symbol's book has been verified since this call.
    async fn all_valid(&mut self, symbols: &[&str]) -> Vec<Event> {
        let want: HashSet<&str> = symbols.iter().copied().collect();
        let events = self
            .until(Duration::from_secs(30), |ev| {
                let got: HashSet<&str> = ev
                    .iter()
                    .filter_map(|e| match e {
                        Event::Book(b) if b.status == Status::Valid => Some(&*b.symbol),
                        _ => None,
                    })
                    .collect();
                want.iter().all(|s| got.contains(s))
            })
            .await;
        for s in symbols {
            let top = self.feed.reader(s).unwrap().top();
            assert_eq!(top.header.status, Status::Valid, "{s}");
            assert!(top.bid.unwrap().price.to_decimal() < top.ask.unwrap().price.to_decimal(), "{s}");
        }
        events
    }

    /// Lets virtual time pass while collecting events.
    async fn run_for(&mut self, d: Duration) -> Vec<Event> {
        let mut new = Vec::new();
        let _ = tokio::time::timeout(d, async {
            while let Some(e) = self.events.recv().await {
                check_event(&e);
                new.push(e);
            }
        })
        .await;
        self.seen.extend(new.iter().cloned());
        new
    }

    fn book_requests(&self, method: &str, symbol: &str) -> usize {
        self.exchange
            .requests()
            .iter()
            .filter(|r| {
                r.method == method && r.channel.as_deref() == Some("book") && r.symbols.iter().any(|s| s == symbol)
            })
            .count()
    }
}

/// The invariant every test checks on every event: a book is published valid only right after a
/// checksum that matched.
fn check_event(e: &Event) {
    if let Event::Book(b) = e
        && b.status == Status::Valid
    {
        assert!(matches!(b.outcome, Outcome::Verified(_)), "valid without a verified checksum: {b:?}");
    }
}

fn summarize(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !matches!(e, Event::Book(b) if b.status == Status::Valid))
        .map(|e| format!("{e:?}"))
        .take(40)
        .collect()
}

fn resyncs(events: &[Event]) -> Vec<(String, ResyncReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ResyncStarted { symbol, reason } => Some((symbol.to_string(), *reason)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn corrupted_checksum_resyncs_only_that_symbol() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::CorruptChecksum(Some("ETH/USD".into())));
    let ev = r
        .until(Duration::from_secs(30), |ev| {
            ev.iter().any(|e| matches!(e, Event::ResyncFinished { symbol, .. } if &**symbol == "ETH/USD"))
        })
        .await;
    let rs = resyncs(&ev);
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert_eq!(rs[0].0, "ETH/USD");
    assert!(matches!(rs[0].1, ResyncReason::ChecksumMismatch { .. }));
    // The other books were never touched: no resync, and still valid.
    for s in ["BTC/USD", "SHIB/USD"] {
        assert_eq!(r.feed.reader(s).unwrap().top().header.status, Status::Valid, "{s}");
    }
    r.all_valid(&SYMBOLS).await;
    // Kraken (and the simulated one) refuses a subscribe that overtakes the unsubscribe before
    // it (`Already subscribed`, no snapshot): the resubscription waited for the acknowledgement,
    // so nothing was refused.
    assert!(!ev.iter().any(|e| matches!(e, Event::Error(_))), "{ev:?}");
    assert_eq!(r.book_requests("unsubscribe", "ETH/USD"), 1);
    assert_eq!(r.book_requests("subscribe", "ETH/USD"), 2, "the first subscription and one resubscription");
    for s in ["BTC/USD", "SHIB/USD"] {
        assert_eq!(r.book_requests("unsubscribe", s), 0, "{s}");
        assert_eq!(r.book_requests("subscribe", s), 1, "{s}");
    }
    assert_eq!(r.exchange.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropped_update_is_caught_by_the_next_checksum_and_heals() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::DropUpdate(Some("BTC/USD".into())));
    let ev = r
        .until(Duration::from_secs(30), |ev| {
            ev.iter().any(|e| matches!(e, Event::ResyncFinished { symbol, .. } if &**symbol == "BTC/USD"))
        })
        .await;
    assert_eq!(r.exchange.applied().len(), 1, "the update was dropped");
    // The first BTC message after the drop is the one that caught it.
    let first = ev.iter().find_map(|e| match e {
        Event::Book(b) if &*b.symbol == "BTC/USD" => Some(b.outcome),
        _ => None,
    });
    assert!(matches!(first, Some(Outcome::Mismatch { .. })), "{first:?}");
    let rs = resyncs(&ev);
    assert_eq!(rs.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["BTC/USD"]);
    r.all_valid(&SYMBOLS).await;
}

#[tokio::test(start_paused = true)]
async fn abrupt_close_reconnects_and_every_book_is_valid_again() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Close);
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Connected))).await;
    let reason = ev.iter().find_map(|e| match e {
        Event::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    });
    assert!(matches!(reason, Some(Disconnect::ServerClosed | Disconnect::Transport(_))), "{reason:?}");
    r.all_valid(&SYMBOLS).await;
    assert_eq!(r.exchange.connections(), 2);
    // Every subscription was restored on the new connection.
    let second: Vec<_> = r.exchange.requests().into_iter().filter(|q| q.connection == 2).collect();
    for s in SYMBOLS {
        assert!(second.iter().any(|q| q.method == "subscribe" && q.symbols.iter().any(|x| x == s)), "{s}");
    }
    assert!(r.feed.is_open());
}

#[tokio::test(start_paused = true)]
async fn silence_makes_books_stale_then_the_feed_reconnects() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Silence(Duration::from_secs(60)));
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Stale { .. }))).await;
    let Some(Event::Stale { silent_for }) = ev.last() else { panic!("{ev:?}") };
    // Kraken's heartbeat is 1 s: stale at 2 s of silence, not later (a book that old must not
    // read valid).
    assert!(*silent_for >= Duration::from_secs(2) && *silent_for < Duration::from_secs(3), "{silent_for:?}");
    for s in SYMBOLS {
        assert_eq!(r.feed.reader(s).unwrap().top().header.status, Status::Stale, "{s}");
    }
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Connected))).await;
    assert!(ev.iter().any(|e| matches!(e, Event::Disconnected { reason: Disconnect::Silent })));
    r.all_valid(&SYMBOLS).await;
    assert_eq!(r.exchange.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn malformed_frame_is_an_error_event_and_touches_no_book() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    r.exchange.inject(Fault::Malformed);
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Error(Error::Frame(_))))).await;
    assert_eq!(resyncs(&ev), []);
    let after = r.run_for(Duration::from_secs(5)).await;
    assert_eq!(resyncs(&after), []);
    for s in SYMBOLS {
        assert!(
            after.iter().any(|e| matches!(e, Event::Book(b) if &*b.symbol == s && b.status == Status::Valid)),
            "{s}"
        );
    }
    assert_eq!(r.feed.counts().errors, 1);
    // One frame, one event (an issue once saw two identical ones for one frame).
    let frame_errors = ev.iter().chain(&after).filter(|e| matches!(e, Event::Error(Error::Frame(_)))).count();
    assert_eq!(frame_errors, 1);
    assert_eq!(r.exchange.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_subscription_is_reported_once_without_a_retry_storm() {
    let config = ExchangeConfig { reject: vec!["DOGE/USD".into()], ..ExchangeConfig::default() };
    let mut r = rig(config, &["BTC/USD", "DOGE/USD"]).await;
    let ev = r
        .until(Duration::from_secs(30), |ev| {
            ev.iter().any(|e| matches!(e, Event::Error(Error::SubscriptionRejected { .. })))
        })
        .await;
    let Some(Event::Error(Error::SubscriptionRejected { symbol, message })) = ev.last() else { panic!() };
    assert_eq!(&**symbol, "DOGE/USD");
    assert!(message.contains("Currency pair not supported"), "{message}");
    let later = r.run_for(Duration::from_secs(120)).await;
    assert_eq!(r.book_requests("subscribe", "DOGE/USD"), 1, "refused subscriptions are not retried on the connection");
    assert!(!later.iter().any(|e| matches!(e, Event::Error(_))));
    assert_eq!(r.feed.reader("DOGE/USD").unwrap().top().header.status, Status::Invalid);
    assert_eq!(r.feed.reader("BTC/USD").unwrap().top().header.status, Status::Valid);
}

#[tokio::test(start_paused = true)]
async fn symbols_can_be_added_and_removed_while_running() {
    let mut r = rig(ExchangeConfig::default(), &["BTC/USD"]).await;
    r.all_valid(&["BTC/USD"]).await;
    let reader = r.feed.add_symbol("PEPE/USD").unwrap();
    r.all_valid(&["PEPE/USD"]).await;
    // A low-priced pair: 9 price decimals, exact.
    let top = reader.top();
    assert_eq!(top.bid.unwrap().price.scale, 9);
    assert!(r.feed.last_update_ns("PEPE/USD").is_some());
    assert!(r.feed.remove_symbol("BTC/USD"));
    let _ = r.run_for(Duration::from_secs(2)).await;
    assert_eq!(r.book_requests("unsubscribe", "BTC/USD"), 1);
    assert!(r.feed.reader("BTC/USD").is_none());
    assert!(matches!(r.feed.add_symbol("PEPE/USD"), Err(Error::DuplicateSymbol(_))));
    assert!(matches!(r.feed.add_symbol("no spaces"), Err(Error::InvalidSymbol(_))));
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_readers_and_heals() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    let reader = r.feed.reader("BTC/USD").unwrap();
    r.feed.reconnect();
    let ev = r.until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Connected))).await;
    assert!(ev.iter().any(|e| matches!(e, Event::Disconnected { reason: Disconnect::Requested })));
    r.all_valid(&SYMBOLS).await;
    assert_eq!(reader.top().header.status, Status::Valid);
    let frames = r.feed.counts().frames;
    assert!(frames > 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_loses_events_not_books() {
    let exchange = Exchange::start(ExchangeConfig::default()).await.unwrap();
    let (mut feed, driver) =
        FeedBuilder::kraken().url(exchange.url()).symbols(SYMBOLS).event_capacity(8).build().unwrap();
    tokio::spawn(driver);
    let mut events = feed.events().unwrap();
    // Nobody reads events for a while; the books go on.
    tokio::time::sleep_until(tokio::time::Instant::from_std(start()) + Duration::from_secs(5)).await;
    for s in SYMBOLS {
        assert_eq!(feed.reader(s).unwrap().top().header.status, Status::Valid, "{s}");
    }
    // The 8 oldest events wait in the queue; once there is room, the count of those dropped
    // comes next, in order.
    for _ in 0..8 {
        assert!(!matches!(events.try_recv(), Some(Event::Lagged { .. }) | None));
    }
    let next = tokio::time::timeout(Duration::from_secs(1), events.recv()).await.unwrap();
    let Some(Event::Lagged { dropped }) = next else { panic!("{next:?}") };
    assert!(dropped > 100, "{dropped}");
}

#[expect(clippy::disallowed_methods, reason = "the test needs the (paused) clock's current reading")]
fn start() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A hostile server: it answers the handshake, then sends one frame larger than the feed accepts.
/// The feed must drop the connection (not buffer without bound), say why, and try again.
#[tokio::test(start_paused = true)]
async fn an_oversized_frame_drops_the_connection_and_the_feed_retries() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v2", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let a = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                let _ = ws.next().await;
                let _ = ws.send(Message::text("x".repeat(300_000))).await;
                while ws.next().await.is_some() {}
            });
        }
    });
    let (mut feed, driver) =
        FeedBuilder::kraken().url(url).symbols(["BTC/USD"]).max_frame_size(64 * 1024).build().unwrap();
    tokio::spawn(driver);
    let mut events = feed.events().unwrap();
    let mut disconnects = Vec::new();
    while disconnects.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await.unwrap().unwrap() {
            Event::Disconnected { reason } => disconnects.push(reason),
            Event::Book(_) => panic!("no book can come from this server"),
            _ => {}
        }
    }
    assert!(
        disconnects
            .iter()
            .all(|r| matches!(r, Disconnect::Transport(m) if m.contains("too long") || m.contains("size"))),
        "{disconnects:?}"
    );
    assert!(accepted.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    assert_eq!(feed.reader("BTC/USD").unwrap().top().header.status, Status::Empty);
}

/// A hostile server that sends a good frame (a heartbeat) and then one the feed must refuse, on
/// every connection: the feed backs off further each time (the backoff starts over only after a
/// connection that proved healthy), instead of reconnecting at full speed forever.
#[tokio::test(start_paused = true)]
async fn a_server_that_always_ends_with_a_refused_frame_meets_a_growing_backoff() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v2", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let a = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                let _ = ws.next().await;
                let _ = ws.send(Message::text(r#"{"channel":"heartbeat"}"#)).await;
                let _ = ws.send(Message::text("x".repeat(300_000))).await;
                while ws.next().await.is_some() {}
            });
        }
    });
    let (_feed, driver) =
        FeedBuilder::kraken().url(url).symbols(["BTC/USD"]).max_frame_size(64 * 1024).build().unwrap();
    tokio::spawn(driver);
    tokio::time::sleep_until(tokio::time::Instant::from_std(start()) + Duration::from_secs(20)).await;
    // 250 ms, 500 ms, 1 s, 2 s, 4 s, 8 s (each drawn from its upper half): seven or eight
    // connections in 20 s, not one every 250 ms.
    let n = accepted.load(std::sync::atomic::Ordering::Relaxed);
    assert!((4..=9).contains(&n), "{n} connections in 20 s");
}

/// A server that accepts TCP and never answers the websocket handshake: the connect times out,
/// the feed backs off and tries again, and it never claims to be open.
#[tokio::test(start_paused = true)]
async fn a_mute_server_times_out_the_handshake_with_backoff() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v2", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            held.push(tcp);
        }
    });
    let (mut feed, driver) = FeedBuilder::kraken()
        .url(url)
        .symbols(["BTC/USD"])
        .connect_timeout(Duration::from_secs(2))
        .backoff(plumb_feed::Backoff { base: Duration::from_secs(1), max: Duration::from_secs(8) })
        .build()
        .unwrap();
    tokio::spawn(driver);
    let mut events = feed.events().unwrap();
    let t0 = tokio::time::Instant::from_std(start());
    let mut at = Vec::new();
    while at.len() < 5 {
        let e = tokio::time::timeout(Duration::from_secs(60), events.recv()).await.unwrap().unwrap();
        assert!(matches!(e, Event::Error(Error::Connect(_))), "{e:?}");
        at.push(tokio::time::Instant::from_std(start()) - t0);
        assert!(!feed.is_open());
    }
    // Each failure takes the 2 s timeout; the gaps between attempts grow (backoff with jitter).
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(2500) && gaps[0] <= Duration::from_secs(4), "{gaps:?}");
    assert!(gaps[3] >= Duration::from_secs(6), "{gaps:?}");
}

/// `wss://` goes through rustls with the feed's own crypto provider: against a server that does not
/// speak TLS, the handshake fails as a connect error (the classic failure, a panic for want of a
/// process-wide `CryptoProvider`, cannot happen), and the feed keeps retrying.
#[tokio::test(start_paused = true)]
async fn wss_uses_rustls_and_a_failed_handshake_is_a_connect_error() {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://localhost:{}/v2", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot TLS").await;
        }
    });
    let (mut feed, driver) = FeedBuilder::kraken().url(url).symbols(["BTC/USD"]).build().unwrap();
    tokio::spawn(driver);
    let mut events = feed.events().unwrap();
    for _ in 0..2 {
        let e = tokio::time::timeout(Duration::from_secs(60), events.recv()).await.unwrap().unwrap();
        let Event::Error(Error::Connect(m)) = &e else { panic!("{e:?}") };
        assert!(m.to_lowercase().contains("tls") || m.contains("corrupt") || m.contains("InvalidContentType"), "{m}");
    }
    assert!(!feed.is_open());
}

/// `FeedBuilder::start`: the feed on its own thread and runtime (real time here). `close` shuts it
/// down gracefully; the readers keep the last books, marked stale.
#[tokio::test]
async fn start_runs_its_own_thread_and_close_leaves_stale_books() {
    let exchange = Exchange::start(ExchangeConfig::default()).await.unwrap();
    let mut feed = FeedBuilder::kraken().url(exchange.url()).symbols(["BTC/USD", "PEPE/USD"]).start().unwrap();
    let mut events = feed.events().unwrap();
    let mut valid = HashSet::new();
    while valid.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(20), events.recv()).await.unwrap().unwrap();
        check_event(&e);
        if let Event::Book(b) = e
            && b.status == Status::Valid
        {
            valid.insert(b.symbol.to_string());
        }
    }
    assert!(feed.is_open());
    assert!(feed.counts().checksums_verified >= 2);
    let reader = feed.reader("PEPE/USD").unwrap();
    feed.close();
    let top = reader.top();
    assert_eq!(top.header.status, Status::Stale);
    assert!(top.bid.is_some(), "the last book stays readable");
    // The event stream ends with the disconnect.
    let mut last = None;
    while let Some(e) = events.recv().await {
        last = Some(e);
    }
    assert!(matches!(last, Some(Event::Disconnected { reason: Disconnect::Shutdown })), "{last:?}");
}

/// Depth 100: the exchange sends the diff a depth-100 subscriber needs, the checksum still covers
/// the top 10, and a corrupted one heals the same way.
#[tokio::test(start_paused = true)]
async fn deeper_subscriptions_verify_and_heal() {
    let exchange = Exchange::start(ExchangeConfig::default()).await.unwrap();
    let (mut feed, driver) = FeedBuilder::kraken()
        .url(exchange.url())
        .symbols(SYMBOLS)
        .depth(plumb_book::Depth::try_from(100).unwrap())
        .levels(25)
        .build()
        .unwrap();
    tokio::spawn(driver);
    let events = feed.events().unwrap();
    let mut r = Rig { exchange, feed, events, seen: Vec::new() };
    r.all_valid(&SYMBOLS).await;
    let subscribe = r.exchange.requests().into_iter().find(|q| q.channel.as_deref() == Some("book")).unwrap();
    assert_eq!(subscribe.depth, Some(100));
    let snap = r.feed.reader("BTC/USD").unwrap().snapshot::<25>();
    assert!(snap.bids().len() > 10 && snap.asks().len() > 10, "more than the checksum's 10 levels are kept");
    r.exchange.inject(Fault::CorruptChecksum(Some("SHIB/USD".into())));
    r.until(Duration::from_secs(30), |ev| {
        ev.iter().any(|e| matches!(e, Event::ResyncFinished { symbol, .. } if &**symbol == "SHIB/USD"))
    })
    .await;
    r.all_valid(&SYMBOLS).await;
    assert_eq!(resyncs(&r.seen).len(), 1);
}

/// The simulated Kraken behaves as Kraken's users report: a second subscribe of a live book is
/// refused with `Already subscribed` and no snapshot; an unsubscribe is processed in the
/// exchange's own time, so a subscribe sent right behind it is refused the same way; an
/// unsubscribe of a book that is not subscribed is `Subscription Not Found`.
#[tokio::test]
async fn the_simulated_kraken_refuses_a_second_subscribe_and_unsubscribes_in_its_own_time() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let exchange = Exchange::start(ExchangeConfig::default()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(exchange.url()).await.unwrap();
    let book = |method: &str, sym: &str, req: u32| {
        Message::text(format!(
            r#"{{"method":"{method}","params":{{"channel":"book","symbol":["{sym}"],"depth":10,"snapshot":true}},"req_id":{req}}}"#
        ))
    };
    async fn read_for(
        ws: &mut (impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
        ms: u64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(ms), async {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    out.push(t.to_string());
                }
            }
        })
        .await;
        out
    }
    let snapshots = |frames: &[String]| {
        frames.iter().filter(|f| f.contains(r#""type":"snapshot""#) && f.contains("BTC/USD")).count()
    };
    ws.send(book("subscribe", "BTC/USD", 1)).await.unwrap();
    let got = read_for(&mut ws, 300).await;
    assert_eq!(snapshots(&got), 1);
    ws.send(book("subscribe", "BTC/USD", 2)).await.unwrap();
    let got = read_for(&mut ws, 300).await;
    assert!(
        got.iter().any(|f| f.contains(r#""error":"Already subscribed""#) && f.contains(r#""req_id":2"#)),
        "{got:?}"
    );
    assert_eq!(snapshots(&got), 0, "no snapshot for a refused subscribe");
    // Back to back: the subscribe arrives before the unsubscribe is processed.
    ws.feed(book("unsubscribe", "BTC/USD", 3)).await.unwrap();
    ws.feed(book("subscribe", "BTC/USD", 4)).await.unwrap();
    ws.flush().await.unwrap();
    let got = read_for(&mut ws, 300).await;
    assert!(
        got.iter().any(|f| f.contains(r#""error":"Already subscribed""#) && f.contains(r#""req_id":4"#)),
        "{got:?}"
    );
    assert!(got.iter().any(|f| f.contains(r#""method":"unsubscribe""#) && f.contains(r#""success":true"#)), "{got:?}");
    assert_eq!(snapshots(&got), 0);
    ws.send(book("unsubscribe", "ETH/USD", 5)).await.unwrap();
    let got = read_for(&mut ws, 300).await;
    assert!(
        got.iter().any(|f| f.contains(r#""error":"Subscription Not Found""#) && f.contains(r#""req_id":5"#)),
        "{got:?}"
    );
}

/// A binary frame holding a book message with a wrong checksum: Kraken sends text, so it is an
/// error event and nothing more (it once caused resyncs).
#[tokio::test(start_paused = true)]
async fn a_binary_frame_is_an_error_not_a_book_message() {
    let mut r = rig(ExchangeConfig::default(), &SYMBOLS).await;
    r.all_valid(&SYMBOLS).await;
    let mismatches = r.feed.counts().checksum_mismatches;
    r.exchange.inject(Fault::BinaryFrame);
    let ev = r
        .until(Duration::from_secs(30), |ev| ev.iter().any(|e| matches!(e, Event::Error(Error::BinaryFrame(_)))))
        .await;
    let after = r.run_for(Duration::from_secs(2)).await;
    assert_eq!(resyncs(&ev), []);
    assert_eq!(resyncs(&after), []);
    assert_eq!(r.feed.counts().checksum_mismatches, mismatches);
    r.all_valid(&SYMBOLS).await;
    assert_eq!(r.exchange.connections(), 1);
}
