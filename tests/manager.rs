//! The manager against all five simulated venues at once, each on its own loopback server (so
//! that a fault injected into one venue reaches no other), with the real driver and sockets.
#![cfg(feature = "feed")]
#![expect(clippy::unwrap_used, reason = "tests")]
#![expect(clippy::disallowed_methods, reason = "tests watch the wall clock and sleep")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plumb::feed::{Backoff, Event, FeedBuilder, Market};
use plumb::manager::{Books, BooksBuilder, Error, Venue};
use plumb_sim::market::{Instrument, Style};
use plumb_sim::{Background, Exchange, ExchangeConfig, Fault, Request};

/// One simulated server per venue.
struct Sims {
    kraken: Background,
    bybit: Background,
    okx: Background,
    coinbase: Background,
    binance: Background,
}

impl Sims {
    fn start(per_venue: Option<usize>) -> Self {
        Self::start_at(per_venue, 200)
    }

    fn start_at(per_venue: Option<usize>, rate: u32) -> Self {
        let config = |seed| {
            let mut c = ExchangeConfig { seed, rate, ..ExchangeConfig::default() };
            if let Some(n) = per_venue {
                c.instruments = Instrument::synthetic(Style::Kraken, n);
                c.bybit_instruments = Instrument::synthetic(Style::Usdt, n);
                c.okx_instruments = Instrument::synthetic(Style::DashUsdt, n);
                c.coinbase_instruments = Instrument::synthetic(Style::DashUsd, n);
                c.binance_instruments = Instrument::synthetic(Style::Usdt, n);
            }
            c
        };
        Self {
            kraken: Exchange::spawn(config(11)).unwrap(),
            bybit: Exchange::spawn(config(12)).unwrap(),
            okx: Exchange::spawn(config(13)).unwrap(),
            coinbase: Exchange::spawn(config(14)).unwrap(),
            binance: Exchange::spawn(config(15)).unwrap(),
        }
    }

    fn of(&self, venue: Venue) -> &Background {
        match venue {
            Venue::Kraken => &self.kraken,
            Venue::Bybit(_) => &self.bybit,
            Venue::Okx => &self.okx,
            Venue::Coinbase => &self.coinbase,
            _ => &self.binance,
        }
    }

    /// Every venue of the test, with `symbols(venue)` each, reconnecting fast and stale after 2 s.
    fn builder(&self, symbols: impl Fn(Venue) -> Vec<String>, max_books: Option<usize>) -> BooksBuilder {
        fn tune<E: plumb::manager::Listed>(b: FeedBuilder<E>, max_books: Option<usize>) -> FeedBuilder<E> {
            let b = b
                .stale_after(Duration::from_secs(2))
                .ping_after(Duration::from_secs(1))
                .backoff(Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) });
            match max_books {
                Some(n) => b.max_books(n),
                None => b,
            }
        }
        Books::builder()
            .feed(tune(FeedBuilder::kraken().url(self.kraken.url()).symbols(symbols(Venue::Kraken)), max_books))
            .feed(tune(
                FeedBuilder::bybit(Market::Spot)
                    .url(self.bybit.bybit_url("spot"))
                    .symbols(symbols(Venue::Bybit(Market::Spot))),
                max_books,
            ))
            .feed(tune(
                FeedBuilder::okx()
                    .url(self.okx.okx_url())
                    .rest_url(self.okx.okx_rest_url())
                    .symbols(symbols(Venue::Okx)),
                None,
            ))
            .feed(tune(
                FeedBuilder::coinbase().url(self.coinbase.coinbase_url()).symbols(symbols(Venue::Coinbase)),
                max_books,
            ))
            .feed(tune(
                // Depth 100: a REST snapshot of weight 5, so that 100 books bridge at once inside
                // Binance's weight per IP (at depth 1000, weight 50, they take two minutes).
                FeedBuilder::binance()
                    .depth(plumb::book::Depth::new(100).unwrap())
                    .url(format!("{}/ws", self.binance.binance_base()))
                    .rest_url(self.binance.rest_url())
                    .symbols(symbols(Venue::Binance)),
                max_books,
            ))
    }
}

const VENUES: [Venue; 5] = [Venue::Kraken, Venue::Bybit(Market::Spot), Venue::Okx, Venue::Coinbase, Venue::Binance];

fn majors(venue: Venue) -> Vec<String> {
    let v: &[&str] = match venue {
        Venue::Kraken => &["BTC/USD", "ETH/USD"],
        Venue::Bybit(_) | Venue::Binance | Venue::BinanceUsdm => &["BTCUSDT", "ETHUSDT"],
        Venue::Okx => &["BTC-USDT", "ETH-USDT"],
        Venue::Coinbase => &["BTC-USD", "ETH-USD"],
    };
    v.iter().map(ToString::to_string).collect()
}

fn wait(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ok()
}

/// Each venue's valid books and connections, for failure messages.
fn report(books: &Books) -> String {
    VENUES
        .iter()
        .map(|&v| {
            let valid = books
                .symbols(v)
                .filter(|s| books.reader(v, s).is_some_and(|r| r.top().header.status.is_valid()))
                .count();
            let statuses: std::collections::BTreeMap<&str, usize> =
                books.symbols(v).fold(Default::default(), |mut m, s| {
                    *m.entry(books.reader(v, s).map_or("none", |r| r.top().header.status.as_str())).or_default() += 1;
                    m
                });
            format!(
                "{v}: {valid}/{} valid {statuses:?}, connections {:?}, {:?}\n",
                books.symbols(v).count(),
                books.connections(v),
                books.counts(v)
            )
        })
        .collect()
}

fn venue_valid(books: &Books, venue: Venue) -> bool {
    books.symbols(venue).all(|s| books.reader(venue, s).is_some_and(|r| r.top().header.status.is_valid()))
}

#[test]
fn five_venues_at_once_and_a_fault_on_one_never_touches_another() {
    let sims = Sims::start(None);
    let books = sims.builder(majors, None).start().unwrap();
    assert!(wait(Duration::from_secs(30), || books.all_valid()), "{books:?} never all valid");
    for v in VENUES {
        assert!(books.is_open(v), "{v}");
        assert_eq!(books.symbols(v).count(), 2, "{v}");
    }
    // The consolidated view: five venues of BTC, every one usable, the best bid below the best ask
    // of... any venue is not guaranteed (venues differ), but each best is some usable venue's own.
    let btc = books.consolidated("BTC").unwrap();
    let best = btc.best(Duration::from_secs(1));
    assert_eq!((best.venues, best.usable), (5, 5), "{best:?}");
    assert!(best.bid.is_some() && best.ask.is_some());

    // Faults on Kraken alone: its connection drops, then a checksum is corrupted.
    let before: HashMap<Venue, (plumb::feed::Counts, usize)> =
        VENUES.iter().map(|&v| (v, (books.counts(v), sims.of(v).requests().len()))).collect();
    let versions = |books: &Books| -> Vec<(Venue, u64)> {
        VENUES
            .iter()
            .filter(|v| **v != Venue::Kraken)
            .map(|&v| (v, books.reader(v, &majors(v)[0]).unwrap().version()))
            .collect()
    };
    sims.kraken.inject(Fault::Close);
    // Meanwhile, every other venue's books stay valid and keep moving (checked each 250 ms).
    let mut last = versions(&books);
    let start = Instant::now();
    let mut kraken_was_down = false;
    while start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(250));
        kraken_was_down |= !venue_valid(&books, Venue::Kraken);
        for v in VENUES.iter().filter(|v| **v != Venue::Kraken) {
            assert!(venue_valid(&books, *v), "{v} stopped being valid during Kraken's fault");
        }
        let now = versions(&books);
        for ((v, a), (_, b)) in last.iter().zip(&now) {
            assert!(b > a, "{v}'s book stalled during Kraken's fault ({a} -> {b})");
        }
        last = now;
    }
    sims.kraken.inject(Fault::CorruptChecksum(None));
    assert!(wait(Duration::from_secs(20), || books.all_valid() && books.counts(Venue::Kraken).resyncs > 0));
    let kraken = books.counts(Venue::Kraken);
    assert!(kraken.reconnects >= 1 && kraken.checksum_mismatches >= 1, "{kraken:?}");
    assert!(kraken_was_down || kraken.reconnects >= 1);
    for v in VENUES.iter().filter(|v| **v != Venue::Kraken) {
        let (c, requests) = &before[v];
        let now = books.counts(*v);
        assert_eq!((now.reconnects, now.resyncs), (c.reconnects, c.resyncs), "{v} was touched");
        let subscribes: Vec<Request> = sims
            .of(*v)
            .requests()
            .into_iter()
            .skip(*requests)
            .filter(|r| r.method.to_lowercase().contains("subscribe"))
            .collect();
        assert!(subscribes.is_empty(), "{v} resubscribed: {subscribes:?}");
    }
    books.close_all();
}

/// `(n, window)`: at most n connection attempts in any window.
fn connection_limit(venue: Venue) -> (usize, Duration) {
    match venue {
        Venue::Kraken => (150, Duration::from_secs(600)),
        Venue::Bybit(_) => (500, Duration::from_secs(300)),
        Venue::Okx => (3, Duration::from_secs(1)),
        Venue::Coinbase => (8, Duration::from_secs(1)),
        _ => (300, Duration::from_secs(300)),
    }
}

/// The most times in `times` (sorted, nanoseconds) that fall inside one window.
fn busiest(times: &[u64], window: Duration) -> usize {
    let w = u64::try_from(window.as_nanos()).unwrap();
    (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + w).count()).max().unwrap_or(0)
}

#[test]
fn five_hundred_symbols_shard_and_recover_from_a_forced_disconnect_inside_every_limit() {
    const PER_VENUE: usize = 100;
    let sims = Sims::start(Some(PER_VENUE));
    let names = |v: Venue| -> Vec<String> {
        let style = match v {
            Venue::Kraken => Style::Kraken,
            Venue::Okx => Style::DashUsdt,
            Venue::Coinbase => Style::DashUsd,
            _ => Style::Usdt,
        };
        Instrument::synthetic(style, PER_VENUE).into_iter().map(|i| i.symbol).collect()
    };
    // 25 books a connection (OKX: its own 29).
    let books = sims.builder(names, Some(25)).start().unwrap();
    // 100 books in connections of 25 (OKX: 29, 29, 29, 13).
    for v in VENUES {
        assert_eq!(books.connections(v).1, 4, "{v}");
        assert_eq!(books.symbols(v).count(), PER_VENUE, "{v}");
    }
    let t0 = Instant::now();
    let mut up: HashMap<Venue, Duration> = HashMap::new();
    assert!(
        wait(Duration::from_secs(60), || {
            for v in VENUES {
                if !up.contains_key(&v) && venue_valid(&books, v) {
                    up.insert(v, t0.elapsed());
                }
            }
            books.all_valid()
        }),
        "500 books never all valid: {}",
        report(&books)
    );
    eprintln!("{up:?}");
    eprintln!("500 books valid in {:?}", t0.elapsed());
    let first: Vec<usize> = VENUES.iter().map(|v| sims.of(*v).connection_times().len()).collect();
    assert_eq!(first, vec![4; 5]);

    // Every connection of every venue cut at once.
    let t0 = Instant::now();
    for v in VENUES {
        sims.of(v).inject(Fault::Close);
    }
    let mut up: HashMap<Venue, Duration> = HashMap::new();
    assert!(
        wait(Duration::from_secs(60), || {
            for v in VENUES {
                if !up.contains_key(&v) && books.counts(v).reconnects >= 4 && venue_valid(&books, v) {
                    up.insert(v, t0.elapsed());
                }
            }
            up.len() == VENUES.len()
        }),
        "500 books did not recover: {}",
        report(&books)
    );
    eprintln!("recovered in {:?}: {up:?}", t0.elapsed());
    for v in VENUES {
        let sim = sims.of(v);
        let times = sim.connection_times();
        assert_eq!(times.len(), 8, "{v}: {} connections", times.len());
        let (n, window) = connection_limit(v);
        assert!(busiest(&times, window) <= n, "{v}: {} connections in {window:?}", busiest(&times, window));
        // Requests per connection: the books it carries, in requests of the exchange's size.
        let requests = sim.requests();
        let mut by_conn: HashMap<u64, Vec<&Request>> = HashMap::new();
        // (Connection 0 is the REST API's.)
        for r in requests.iter().filter(|r| r.connection != 0) {
            by_conn.entry(r.connection).or_default().push(r);
        }
        for (conn, rs) in &by_conn {
            let subscribed: usize =
                rs.iter().filter(|r| r.method.eq_ignore_ascii_case("subscribe")).map(|r| r.symbols.len()).sum();
            assert!(subscribed <= 29, "{v} connection {conn}: {subscribed} books");
            let most = match v {
                Venue::Bybit(_) => 10,
                Venue::Okx => 29,
                _ => 256,
            };
            assert!(rs.iter().all(|r| r.symbols.len() <= most), "{v} connection {conn}: a request over {most}");
            let at: Vec<u64> = rs.iter().map(|r| r.at_ns).collect();
            if v == Venue::Binance {
                assert!(busiest(&at, Duration::from_secs(1)) <= 5, "{v} connection {conn}: over 5 messages a second");
            }
        }
        if v == Venue::Binance {
            // REST weight across the venue's connections: 5 a snapshot at depth 100, at most 3,000
            // in any minute (half of Binance's 6,000 per IP).
            let rest: Vec<u64> = requests.iter().filter(|r| r.method == "rest").map(|r| r.at_ns).collect();
            assert!(rest.len() >= PER_VENUE, "{} fetches", rest.len());
            assert!(busiest(&rest, Duration::from_secs(60)) * 5 <= 3000, "binance: REST weight over 3,000 a minute");
        }
        if v == Venue::Coinbase {
            let mut at: Vec<u64> = requests.iter().map(|r| r.at_ns).collect();
            at.sort_unstable();
            assert!(busiest(&at, Duration::from_secs(1)) <= 8, "coinbase: over 8 messages a second from one IP");
        }
    }
    books.close_all();
}

#[test]
fn a_slow_callback_never_delays_a_book() {
    let sims = Sims::start_at(None, 1000);
    let calls = Arc::new(AtomicU64::new(0));
    let lagged = Arc::new(AtomicU64::new(0));
    let (c, l) = (Arc::clone(&calls), Arc::clone(&lagged));
    let books = Books::builder()
        .feed(FeedBuilder::kraken().url(sims.kraken.url()).symbols(majors(Venue::Kraken)))
        .event_capacity(64)
        .on_book_update(move |_, _| {
            c.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        })
        .on_event(move |e| {
            if let Event::Lagged { dropped } = e.event {
                l.fetch_add(dropped, Ordering::Relaxed);
            }
        })
        .start()
        .unwrap();
    assert!(wait(Duration::from_secs(20), || books.all_valid()));
    let reader = books.reader(Venue::Kraken, "BTC/USD").unwrap();
    let other = books.reader(Venue::Kraken, "ETH/USD").unwrap();
    let m0 = books.counts(Venue::Kraken).book_messages;
    let (v0, o0, t0) = (reader.version(), other.version(), Instant::now());
    let mut oldest = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(2) {
        let h = reader.top().header;
        assert!(h.status.is_valid());
        let now_ns =
            u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
                .unwrap();
        oldest = oldest.max(Duration::from_nanos(now_ns.saturating_sub(h.received_ns)));
        std::thread::sleep(Duration::from_millis(5));
    }
    let published = reader.version() - v0 + other.version() - o0;
    let messages = books.counts(Venue::Kraken).book_messages - m0;
    let called = calls.load(Ordering::Relaxed);
    // Every book message the feed took in reached the readers at once (a few may have been read
    // between the two counts), while the callback managed 20 a second.
    assert!(messages > 100, "{messages} book messages in 2 s");
    assert!(published + 4 >= messages, "{published} publications of {messages} messages");
    assert!(called <= 41 && called * 2 < published, "{called} callbacks, {published} publications");
    // The book was never older than a few of its messages' spacing (the sim sends ~100 a second).
    assert!(oldest < Duration::from_millis(250), "the book went {oldest:?} without a publication");
    assert!(wait(Duration::from_secs(5), || lagged.load(Ordering::Relaxed) > 0), "no Lagged event");
    books.close_all();
}

#[test]
fn symbols_come_and_go_at_runtime_and_each_venue_is_controlled_alone() {
    let sims = Sims::start(None);
    let mut books = sims.builder(majors, Some(2)).start().unwrap();
    assert!(wait(Duration::from_secs(30), || books.all_valid()));
    // Kraken's connection is full (2 books): a third symbol opens a second connection.
    assert_eq!(books.connections(Venue::Kraken).1, 1);
    let sol = books.add(Venue::Kraken, "SOL/USD").unwrap();
    assert_eq!(books.connections(Venue::Kraken).1, 2);
    assert!(wait(Duration::from_secs(10), || sol.top().header.status.is_valid()));
    assert!(books.last_update(Venue::Kraken, "SOL/USD").is_some());
    assert!(matches!(books.add(Venue::Kraken, "SOL/USD"), Err(Error::Feed(plumb::feed::Error::DuplicateSymbol(_)))));
    assert!(matches!(books.add(Venue::BinanceUsdm, "BTCUSDT"), Err(Error::NotInManager(Venue::BinanceUsdm))));
    // Removed: the connection it alone used is closed.
    assert!(books.remove(Venue::Kraken, "SOL/USD"));
    assert!(!books.remove(Venue::Kraken, "SOL/USD"));
    assert_eq!(books.connections(Venue::Kraken).1, 1);
    assert!(wait(Duration::from_secs(5), || !sol.top().header.status.is_valid()));

    // A restart of one venue reconnects it alone.
    let okx_before = books.counts(Venue::Okx).reconnects;
    let bybit_before = books.counts(Venue::Bybit(Market::Spot)).reconnects;
    books.restart(Venue::Okx).unwrap();
    assert!(wait(Duration::from_secs(20), || books.counts(Venue::Okx).reconnects > okx_before && books.all_valid()));
    assert_eq!(books.counts(Venue::Bybit(Market::Spot)).reconnects, bybit_before);

    // Closing one venue: its readers say stale, the others go on.
    let coinbase = books.reader(Venue::Coinbase, "BTC-USD").unwrap();
    books.close(Venue::Coinbase).unwrap();
    assert!(!books.venues().any(|v| v == Venue::Coinbase));
    assert!(!coinbase.top().header.status.is_valid());
    assert!(matches!(books.close(Venue::Coinbase), Err(Error::NotInManager(_))));
    assert!(wait(Duration::from_secs(5), || books.all_valid()));
    let btc = books.consolidated("BTC").unwrap();
    assert_eq!(btc.best(Duration::from_secs(1)).venues, 4);

    // A venue that goes silent drops out of the consolidated best price as soon as it is too old.
    sims.bybit.inject(Fault::Silence(Duration::from_secs(3)));
    let seen_out = Arc::new(Mutex::new(false));
    assert!(wait(Duration::from_secs(3), || {
        let best = btc.best(Duration::from_millis(300));
        let out = btc.quotes(Duration::from_millis(300)).any(|q| q.venue == Venue::Bybit(Market::Spot) && !q.usable);
        if out {
            assert!(best.bid.is_none_or(|(v, _, _)| v != Venue::Bybit(Market::Spot)));
            assert!(best.ask.is_none_or(|(v, _, _)| v != Venue::Bybit(Market::Spot)));
            *seen_out.lock().unwrap() = true;
        }
        out
    }));
    assert!(*seen_out.lock().unwrap());
    books.close_all();
}
