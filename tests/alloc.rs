//! The whole path (parse, apply, truncate, verify, through the replay engine) allocates nothing per
//! message once warmed up. A counting global allocator watches this test's thread.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a bad fixture")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use plumb::book::{Depth, Precision};
use plumb::replay::{Counts, FrameKind, Replay};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated and not yet freed on this thread.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

#[expect(clippy::cast_possible_wrap, reason = "a test's allocation sizes fit an i64")]
fn live_add(bytes: usize, sign: i64) {
    LIVE.with(|c| c.set(c.get() + sign * bytes as i64));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// thread-local `Cell`, which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        live_add(layout.size(), 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live_add(layout.size(), -1);
        // SAFETY: `ptr` was allocated by `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        live_add(layout.size(), -1);
        live_add(new_size, 1);
        // SAFETY: as for `dealloc`, and the caller guarantees `new_size` is valid for `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

fn live_bytes() -> i64 {
    LIVE.with(Cell::get)
}

fn capture(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraken/captures").join(name);
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn count(name: &str, depth: Depth, precision: Option<Precision>) -> (u64, u64) {
    let frames = capture(name);
    let mut replay = Replay::new(depth, None);
    if let Some(p) = precision {
        replay.set_precision("BTC/USD", p);
    }
    // Warm up: one pass grows every buffer to the sizes this session needs.
    for f in &frames {
        replay.frame(f.as_bytes());
    }
    let before = allocations();
    let mut books = 0;
    for f in &frames {
        if replay.frame(f.as_bytes()) == FrameKind::Book {
            books += 1;
        }
    }
    (allocations() - before, books)
}

#[test]
fn no_allocation_per_message_on_the_whole_path() {
    let (allocs, books) = count("btcusd-v2-book10.capture", Depth::D10, Some(Precision { price: 1, qty: 8 }));
    assert_eq!(books, 510);
    assert_eq!(allocs, 0, "v2: {allocs} allocations over {books} book messages");
    let (allocs, books) = count("xbtusd-v1-book10.capture", Depth::D10, None);
    assert_eq!(books, 980);
    assert_eq!(allocs, 0, "v1: {allocs} allocations over {books} book messages");
    let (allocs, books) = count("adaxbt-v1-book1000.capture", Depth::try_from(1000).unwrap(), None);
    assert_eq!(books, 348);
    assert_eq!(allocs, 0, "v1 depth 1000: {allocs} allocations over {books} book messages");
}

#[test]
fn publishing_allocates_nothing() {
    let frames = capture("btcusd-v2-book10.capture");
    let mut parser = plumb::wire::Parser::new();
    let mut book = plumb::book::Book::new(Depth::D10, Some(Precision { price: 1, qty: 8 }));
    let (mut publisher, reader) = plumb::book::publish::channel(10);
    let mut run = |parser: &mut plumb::wire::Parser| {
        for f in &frames {
            let Ok(plumb::wire::kraken::Message::Book(m)) = parser.parse(f.as_bytes()) else { panic!("not a book") };
            for e in m.entries() {
                book.apply_kraken(m.kind, &e).unwrap();
            }
            publisher.publish(&book, 0, 0);
            let _ = reader.top();
            let _ = reader.snapshot::<10>();
        }
    };
    run(&mut parser);
    let before = allocations();
    run(&mut parser);
    assert_eq!(allocations() - before, 0);
    assert_eq!(reader.version(), 2 * frames.len() as u64);
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    assert!(allocations() > before);
    drop(v);
}

#[expect(clippy::disallowed_methods, reason = "one Instant for the session, which never reads the clock")]
fn epoch() -> std::time::Instant {
    std::time::Instant::now()
}

/// The connector's core: `Session::handle_frame` (parse, apply, verify, publish, the book event and
/// the metrics handles) and draining its events allocate nothing per message once warmed up.
#[test]
fn the_session_allocates_nothing_per_message() {
    let frames = capture("btcusd-v2-book10.capture");
    let mut session = plumb::feed::Session::new(plumb::feed::Config::default());
    let reader = session.add_symbol("BTC/USD").unwrap();
    let t = epoch();
    let instruments = br#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":"BTC/USD","qty_precision":8,"price_precision":1}]}}"#;
    let run = |session: &mut plumb::feed::Session| {
        session.handle_connected(t);
        session.handle_frame(instruments, t, 0);
        while session.poll_command().is_some() {}
        for f in &frames {
            session.handle_frame(f.as_bytes(), t, 1);
            while let Some(e) = session.poll_event() {
                std::hint::black_box(e);
            }
        }
        session.handle_disconnected(t, plumb::feed::Disconnect::ServerClosed);
        while session.poll_event().is_some() {}
    };
    // Warm up: every buffer and queue grows to what this session needs.
    run(&mut session);
    let verified = session.stats().counts().checksums_verified;
    assert!(verified > 400, "{verified}");
    // Measure the frames alone (connecting sends requests, which are formatted strings).
    session.handle_connected(t);
    session.handle_frame(instruments, t, 0);
    while session.poll_command().is_some() {}
    while session.poll_event().is_some() {}
    let before = allocations();
    for f in &frames {
        session.handle_frame(f.as_bytes(), t, 1);
        while let Some(e) = session.poll_event() {
            std::hint::black_box(e);
        }
    }
    let allocated = allocations() - before;
    assert_eq!(session.stats().counts().checksums_verified, 2 * verified);
    assert!(reader.top().header.status.is_valid());
    assert_eq!(allocated, 0, "{allocated} allocations over {} frames", frames.len());
}

/// A Bybit session as the simulated venue sends it: a depth-50 snapshot of two symbols, then
/// deltas numbered by `u` (from `plumb-sim`'s market, whose levels leave the depth by explicit
/// deletes, as Bybit's do).
fn bybit_frames() -> Vec<String> {
    use plumb_sim::market::{Instrument, Rng, SimBook, bybit_frame, diff_exact};
    let mut rng = Rng::new(9);
    let mut books: Vec<SimBook> =
        Instrument::bybit_defaults().into_iter().take(2).map(|i| SimBook::new(i, &mut rng)).collect();
    let mut frames = Vec::new();
    let mut u = [500u64, 900];
    for (k, b) in books.iter().enumerate() {
        let v = b.view(50);
        frames.push(bybit_frame(&b.instrument, 50, true, &v.bids, &v.asks, (u[k], 1), 1_700_000_000_000));
    }
    for n in 0..600u64 {
        let k = usize::from(n % 3 == 0);
        let before = books[k].view(50);
        books[k].step(&mut rng);
        let after = books[k].view(50);
        let changes = diff_exact(&before, &after);
        if changes.is_empty() {
            continue;
        }
        u[k] += 1;
        let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
        let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
        frames.push(bybit_frame(&books[k].instrument, 50, false, &bids, &asks, (u[k], n), 1_700_000_000_000 + n));
    }
    frames
}

/// The Bybit path allocates nothing per message either: the replay (parse, the sequence rule,
/// apply) and the session (the same, plus publication, events and metrics).
#[test]
fn the_bybit_path_allocates_nothing_per_message() {
    use plumb::feed::Bybit;
    let frames = bybit_frames();
    let (allocated, c) = replay_allocations(Bybit::default(), Depth::new(50).unwrap(), &frames);
    assert_eq!((c.sequence_verified, c.sequence_gaps, c.errors), (2 * frames.len() as u64, 0, 0));
    assert_eq!(allocated, 0, "replay: {allocated} allocations over {} frames", frames.len());

    let (allocated, session, readers) = session_allocations(Bybit::default(), ["BTCUSDT", "ETHUSDT"], &frames);
    let c = session.stats().counts();
    assert_eq!((c.sequence_verified, c.sequence_gaps, c.errors), (2 * frames.len() as u64, 0, 0));
    // Disconnected at the end of each run: stale, and no longer claiming a proof.
    assert!(
        readers.iter().all(|r| r.top().header.proof == plumb::book::Proof::None && !r.top().header.status.is_valid())
    );
    assert!(["BTCUSDT", "ETHUSDT"].iter().all(|s| session.book(s).unwrap().sequence().is_some()));
    assert_eq!(allocated, 0, "session: {allocated} allocations over {} frames", frames.len());
}

/// Allocations while `frames` replay a second time (the first run grows what needs growing; every
/// frame must be a book message), and the replay's counts.
fn replay_allocations<E: plumb::feed::Exchange>(exchange: E, depth: Depth, frames: &[String]) -> (u64, Counts) {
    let mut replay = Replay::with_exchange(exchange, depth);
    for f in frames {
        assert_eq!(replay.frame(f.as_bytes()), FrameKind::Book);
    }
    let before = allocations();
    for f in frames {
        replay.frame(f.as_bytes());
    }
    (allocations() - before, replay.counts())
}

/// Allocations while a session of two symbols takes `frames` on its second connection (the first
/// grows what needs growing), every book valid at the end of each; then disconnected.
fn session_allocations<E: plumb::feed::Exchange>(
    exchange: E,
    symbols: [&str; 2],
    frames: &[String],
) -> (u64, plumb::feed::Session<E>, [plumb::book::publish::Reader; 2]) {
    let config = exchange.config();
    let mut session = plumb::feed::Session::with_exchange(exchange, config);
    let readers = symbols.map(|s| session.add_symbol(s).unwrap());
    let t = epoch();
    let mut allocated = 0;
    for _ in 0..2 {
        session.handle_connected(t);
        while session.poll_command().is_some() {}
        while session.poll_event().is_some() {}
        let before = allocations();
        for f in frames {
            session.handle_frame(f.as_bytes(), t, 1);
            while let Some(e) = session.poll_event() {
                std::hint::black_box(e);
            }
        }
        allocated = allocations() - before;
        assert!(readers.iter().all(|r| r.top().header.status.is_valid()));
        session.handle_disconnected(t, plumb::feed::Disconnect::ServerClosed);
        while session.poll_event().is_some() {}
    }
    (allocated, session, readers)
}

/// An OKX `books` session as the simulated venue sends it: a snapshot of a spot and a swap
/// instrument, then updates linked by `prevSeqId`, each with OKX's legacy checksum when
/// `checksums` (so that the checksum path is counted too).
fn okx_frames(checksums: bool) -> Vec<String> {
    use plumb_sim::market::{Instrument, Rng, SimBook, View, diff_exact, okx_checksum, okx_frame};
    let mut rng = Rng::new(11);
    let mut books: Vec<SimBook> = Instrument::okx_defaults()
        .into_iter()
        .filter(|i| i.symbol == "BTC-USDT" || i.symbol == "BTC-USDT-SWAP")
        .map(|i| SimBook::new(i, &mut rng))
        .collect();
    let crc = |v: &View, i: &Instrument| if checksums { okx_checksum(v, i) } else { 0 };
    let mut frames = Vec::new();
    let mut seq = [5_000u64, 90_000];
    for (k, b) in books.iter().enumerate() {
        let v = b.view(400);
        let c = crc(&v, &b.instrument);
        frames.push(okx_frame(&b.instrument, "books", Some("snapshot"), &v.bids, &v.asks, (Some(-1), seq[k]), c, 1));
    }
    for n in 0..600u64 {
        let k = usize::from(n % 3 == 0);
        let before = books[k].view(400);
        books[k].step(&mut rng);
        let after = books[k].view(400);
        let changes = diff_exact(&before, &after);
        if changes.is_empty() {
            continue;
        }
        let prev = i64::try_from(seq[k]).unwrap();
        seq[k] += 1 + n % 4;
        let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
        let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
        let c = crc(&after, &books[k].instrument);
        let inst = &books[k].instrument;
        frames.push(okx_frame(inst, "books", Some("update"), &bids, &asks, (Some(prev), seq[k]), c, n));
    }
    frames
}

/// The OKX path allocates nothing per message, by links and by legacy checksums alike: the
/// replay and the session.
#[test]
fn the_okx_path_allocates_nothing_per_message() {
    use plumb::feed::Okx;
    for checksums in [false, true] {
        let frames = okx_frames(checksums);
        let n = frames.len() as u64;
        let (allocated, c) = replay_allocations(Okx, Depth::new(400).unwrap(), &frames);
        let by = if checksums { c.checksums_verified } else { c.sequence_verified };
        assert_eq!((by, c.sequence_gaps, c.checksum_mismatches, c.errors), (2 * n, 0, 0, 0));
        assert_eq!(allocated, 0, "replay: {allocated} allocations over {n} frames");

        let (allocated, session, _) = session_allocations(Okx, ["BTC-USDT", "BTC-USDT-SWAP"], &frames);
        let c = session.stats().counts();
        let by = if checksums { c.checksums_verified } else { c.sequence_verified };
        assert_eq!((by, c.sequence_gaps, c.checksum_mismatches, c.errors), (2 * n, 0, 0, 0));
        assert_eq!(allocated, 0, "session: {allocated} allocations over {n} frames");
    }
}

/// Updates buffered for a REST bridge (a subscription acknowledged without a snapshot) are copied
/// into a buffer grown once: no allocation per buffered message after the first connection.
#[test]
fn the_okx_bridge_buffer_allocates_nothing_per_message() {
    use plumb::feed::{Exchange as _, Okx};
    let frames = okx_frames(false);
    let updates: Vec<&String> = frames.iter().filter(|f| f.contains(r#""action":"update""#)).collect();
    let config = plumb::feed::Config { rest_url: Some("http://127.0.0.1:9".into()), ..Okx.config() };
    let mut session = plumb::feed::Session::with_exchange(Okx, config);
    let readers = ["BTC-USDT", "BTC-USDT-SWAP"].map(|s| session.add_symbol(s).unwrap());
    let t = epoch();
    let mut allocated = 0;
    for _ in 0..2 {
        session.handle_connected(t);
        while session.poll_command().is_some() {}
        for s in ["BTC-USDT", "BTC-USDT-SWAP"] {
            let ack =
                format!(r#"{{"id":"1","event":"subscribe","arg":{{"channel":"books","instId":"{s}"}},"connId":"c"}}"#);
            session.handle_frame(ack.as_bytes(), t, 1);
        }
        while session.poll_event().is_some() {}
        let before = allocations();
        for f in &updates {
            session.handle_frame(f.as_bytes(), t, 1);
            while let Some(e) = session.poll_event() {
                std::hint::black_box(e);
            }
        }
        allocated = allocations() - before;
        assert!(readers.iter().all(|r| !r.top().header.status.is_valid()));
        session.handle_disconnected(t, plumb::feed::Disconnect::ServerClosed);
        while session.poll_event().is_some() {}
    }
    let c = session.stats().counts();
    assert!(c.unverified_updates >= 2 * updates.len() as u64, "{c:?}");
    assert_eq!(allocated, 0, "{allocated} allocations over {} buffered frames", updates.len());
}

/// A Coinbase session as the simulated venue sends it: the `subscriptions` acknowledgement (0),
/// the snapshots of two products, then updates of either and a heartbeat now and then, every
/// message numbered by the connection's counter.
fn coinbase_frames() -> Vec<String> {
    use plumb_sim::market::{
        Instrument, Rng, SimBook, coinbase_frame, coinbase_heartbeat, coinbase_subscriptions, diff,
    };
    let mut rng = Rng::new(13);
    let mut books: Vec<SimBook> =
        Instrument::coinbase_defaults().into_iter().take(2).map(|i| SimBook::new(i, &mut rng)).collect();
    let mut frames = vec![coinbase_subscriptions(0, &["BTC-USD", "ETH-USD"], true, 1)];
    for b in &books {
        let v = b.view(usize::MAX);
        let n = frames.len() as u64;
        frames.push(coinbase_frame(&b.instrument, "snapshot", &v.bids, &v.asks, n, 1));
    }
    for step in 0..600u64 {
        let n = frames.len() as u64;
        if step % 50 == 49 {
            frames.push(coinbase_heartbeat(n, step, n));
            continue;
        }
        let k = usize::from(step % 3 == 0);
        let before = books[k].view(usize::MAX);
        books[k].step(&mut rng);
        let after = books[k].view(usize::MAX);
        let changes = diff(&before, &after, &books[k]);
        if changes.is_empty() {
            continue;
        }
        let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
        let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
        frames.push(coinbase_frame(&books[k].instrument, "update", &bids, &asks, n, n));
    }
    frames
}

/// The Coinbase path allocates nothing per message once warmed up, the connection's counter
/// included: the replay (whose counter starts over at a capture's 0) and the session.
#[test]
fn the_coinbase_path_allocates_nothing_per_message() {
    use plumb::feed::{Coinbase, Exchange as _};
    let frames = coinbase_frames();
    let books = frames.iter().filter(|f| f.contains("l2_data")).count() as u64;
    let mut replay = Replay::with_exchange(Coinbase, Depth::new(1000).unwrap());
    for f in &frames {
        assert!(!matches!(replay.frame(f.as_bytes()), FrameKind::Error(_)));
    }
    let before = allocations();
    for f in &frames {
        replay.frame(f.as_bytes());
    }
    let allocated = allocations() - before;
    let c = replay.counts();
    assert_eq!((c.sequence_verified, c.sequence_gaps, c.errors), (2 * books, 0, 0));
    assert_eq!(allocated, 0, "replay: {allocated} allocations over {} frames", frames.len());

    let mut session = plumb::feed::Session::with_exchange(Coinbase, Coinbase.config());
    let readers = ["BTC-USD", "ETH-USD"].map(|s| session.add_symbol(s).unwrap());
    let t = epoch();
    let mut allocated = 0;
    for _ in 0..2 {
        session.handle_connected(t);
        // The acknowledgement of the heartbeats subscribe makes the books' subscribe (a request
        // written once per connection, not per message).
        session.handle_frame(frames[0].as_bytes(), t, 1);
        while session.poll_command().is_some() {}
        while session.poll_event().is_some() {}
        let before = allocations();
        for f in &frames[1..] {
            session.handle_frame(f.as_bytes(), t, 1);
            while let Some(e) = session.poll_event() {
                std::hint::black_box(e);
            }
        }
        allocated = allocations() - before;
        assert!(readers.iter().all(|r| r.top().header.status.is_valid()));
        session.handle_disconnected(t, plumb::feed::Disconnect::ServerClosed);
        while session.poll_event().is_some() {}
    }
    let c = session.stats().counts();
    assert_eq!((c.sequence_verified, c.sequence_gaps, c.errors), (2 * books, 0, 0));
    assert_eq!(allocated, 0, "session: {allocated} allocations over {} frames", frames.len());
}

/// Binance's path allocates nothing per event once warmed up: a snapshot fetched and bridged on
/// each connection (untimed), then events linked by `U`/`u` (spot) or `pu` (USD-M).
#[test]
fn the_binance_path_allocates_nothing_per_event() {
    use plumb::feed::{Binance, BinanceUsdm, Command, Fetched};
    use plumb_sim::market::{Instrument, Rng, SimBook, binance_depth_body, binance_event, diff};
    fn run<E: plumb::feed::Exchange>(exchange: E, usdm: bool) {
        let mut rng = Rng::new(21);
        let inst = Instrument::binance_defaults().into_iter().next().unwrap();
        let mut book = SimBook::new(inst, &mut rng);
        let snapshot = binance_depth_body(&book.instrument, &book.view(1000), 1000, usdm.then_some(1));
        let mut frames = Vec::new();
        let mut u = 1000u64;
        while frames.len() < 500 {
            let before = book.view(1000);
            book.step(&mut rng);
            let after = book.view(1000);
            let changes = diff(&before, &after, &book);
            if changes.is_empty() {
                continue;
            }
            let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
            let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
            let first = u + 1 + if usdm { 2 } else { 0 };
            frames.push(binance_event(&book.instrument, (first, first + 1, usdm.then_some(u)), &bids, &asks, 1));
            u = first + 1;
        }
        let config = plumb::feed::Config { rest_url: Some("http://127.0.0.1:9".into()), ..exchange.config() };
        let mut session = plumb::feed::Session::with_exchange(exchange, config);
        let reader = session.add_symbol("BTCUSDT").unwrap();
        let mut t = epoch();
        let mut allocated = 0;
        for _ in 0..2 {
            // A connection each, a few seconds apart (the fetch budget's pacing).
            t += std::time::Duration::from_secs(5);
            session.handle_connected(t);
            let subscribe = std::iter::from_fn(|| session.poll_command())
                .find_map(|c| if let Command::Send(text) = c { Some(text) } else { None })
                .unwrap();
            let id = subscribe.rsplit(r#""id":"#).next().unwrap().trim_end_matches('}').to_owned();
            session.handle_frame(format!(r#"{{"result":null,"id":{id}}}"#).as_bytes(), t, 1);
            let fetch = std::iter::from_fn(|| session.poll_command())
                .find_map(|c| if let Command::Fetch(f) = c { Some(f.id) } else { None })
                .unwrap();
            session.handle_fetched(fetch, Fetched::Body(snapshot.as_bytes()), t, 1);
            while session.poll_event().is_some() {}
            let before = allocations();
            for f in &frames {
                session.handle_frame(f.as_bytes(), t, 1);
                while let Some(e) = session.poll_event() {
                    std::hint::black_box(e);
                }
            }
            allocated = allocations() - before;
            assert!(reader.top().header.status.is_valid());
            session.handle_disconnected(t, plumb::feed::Disconnect::ServerClosed);
            while session.poll_event().is_some() {}
        }
        let c = session.stats().counts();
        assert_eq!((c.sequence_verified, c.sequence_gaps, c.errors), (2 * frames.len() as u64, 0, 0));
        assert_eq!(allocated, 0, "usdm {usdm}: {allocated} allocations over {} events", frames.len());
    }
    run(Binance, false);
    run(BinanceUsdm, true);
}

/// A snapshot fetch that keeps failing (HTTP 503) while events keep coming: the bridge's buffer
/// is capped and emptied rather than grown, and nothing else accumulates. The memory this thread
/// holds after 1,000 more failed fetches is what it held after the first 100.
#[test]
fn a_fetch_that_keeps_failing_holds_bounded_memory() {
    use plumb::feed::{Binance, Command, Fetched};
    use plumb_sim::market::{Instrument, binance_event};
    let inst = Instrument::binance_defaults().into_iter().next().unwrap();
    let config = plumb::feed::Config {
        rest_url: Some("http://127.0.0.1:9".into()),
        pending_frames: 64,
        ..plumb::feed::Exchange::config(&Binance)
    };
    let mut session = plumb::feed::Session::with_exchange(Binance, config);
    let _reader = session.add_symbol("BTCUSDT").unwrap();
    let mut t = epoch();
    session.handle_connected(t);
    let subscribe = std::iter::from_fn(|| session.poll_command())
        .find_map(|c| if let Command::Send(text) = c { Some(text) } else { None })
        .unwrap();
    let id = subscribe.rsplit(r#""id":"#).next().unwrap().trim_end_matches('}').to_owned();
    session.handle_frame(format!(r#"{{"result":null,"id":{id}}}"#).as_bytes(), t, 1);
    let mut u = 100u64;
    let mut failed = 0u32;
    let mut baseline = None;
    while failed < 1100 {
        // Events keep coming, into the bridge's buffer.
        for _ in 0..5 {
            let e = binance_event(&inst, (u + 1, u + 1, None), &[(6_499_999, 1_000)], &[], 1);
            u += 1;
            session.handle_frame(e.as_bytes(), t, 1);
        }
        let fetches: Vec<u64> = std::iter::from_fn(|| session.poll_command())
            .filter_map(|c| if let Command::Fetch(f) = c { Some(f.id) } else { None })
            .collect();
        for id in fetches {
            let failed_answer =
                Fetched::Failed { status: Some(503), retry_after: None, message: "Service Unavailable" };
            session.handle_fetched(id, failed_answer, t, 1);
            failed += 1;
        }
        while session.poll_event().is_some() {}
        if failed >= 100 && baseline.is_none() {
            baseline = Some(live_bytes());
        }
        // The next try after the longest backoff (30 s); the events keep the connection alive.
        t += std::time::Duration::from_secs(31);
        let e = binance_event(&inst, (u + 1, u + 1, None), &[(6_499_999, 1_000)], &[], 1);
        u += 1;
        session.handle_frame(e.as_bytes(), t, 1);
        session.handle_timeout(t);
        assert!(session.is_connected() && failed < 5000, "the feed stopped fetching");
    }
    let grown = live_bytes() - baseline.unwrap();
    assert!(grown <= 4096, "{grown} bytes more held after 1,000 more failed fetches");
    assert!(session.stats().counts().fetch_failures >= 1100);
}
