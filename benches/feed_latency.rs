//! End-to-end latency on loopback: from the server writing a frame to a reader thread seeing the
//! verified book, against the floor of a bare tokio-tungstenite client receiving the same frames,
//! in the same run.
//!
//! `cargo bench --bench feed_latency` (add `-- N` for N frames; default 5000, one per
//! millisecond). Not criterion: a distribution of single events, reported as percentiles.
//!
//! The server runs on its own thread. Each update frame carries its sequence number in its
//! timestamp (`k` microseconds after the epoch), and the server notes the instant just before it
//! writes frame `k`. The plumb side runs a reader thread waiting on `Reader::wait_newer` (yielding
//! between polls; then again spinning, and parking until the writer wakes it), and takes the
//! latency when it sees a *valid* book whose exchange time is `k`. The floor side is a tokio
//! current-thread client that takes the latency when the frame's text arrives, without parsing.
//! On a 2-core machine the server, the feed thread and a polling reader share two cores: the
//! plumb figure includes that contention, the floor has one thread fewer. Beside the parking
//! reader, a second floor hands each frame from the bare client to a thread parked in
//! `std::thread::park`: the operating system's wake-up, which any parking reader pays.
//!
//! The same book is then measured through the manager (`plumb::Books`) running four more
//! simulated venues (Bybit, OKX, Coinbase, Binance, 200 updates a second each) on the same feed
//! thread: the reader's latency and the book event's (through the manager's merged, tagged
//! stream, against the single feed's own stream) say what the manager adds per message.

#![allow(clippy::unwrap_used, reason = "a bench fails loudly")]
#![allow(missing_docs, reason = "a bench binary")]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "percentile arithmetic on small counts"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use plumb::book::publish::{Status, Wait};
use plumb::feed::FeedBuilder;
use plumb_sim::market::{self, Instrument, Rng, SimBook};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[expect(clippy::disallowed_methods, reason = "a latency bench reads the clock")]
fn now() -> Instant {
    Instant::now()
}

/// The frames of one run: instrument list, snapshot, then updates 1..=n with real checksums.
fn frames(n: usize) -> (String, String, Vec<String>) {
    let inst = Instrument::defaults().remove(0);
    let mut rng = Rng::new(42);
    let mut book = SimBook::new(inst.clone(), &mut rng);
    let view = book.view(10);
    let snapshot = market::snapshot_frame(&view, &inst, market::checksum(&view, &inst), 0, false);
    let mut updates = Vec::with_capacity(n);
    while updates.len() < n {
        let before = book.view(10);
        book.step(&mut rng);
        let after = book.view(10);
        let changes = market::diff(&before, &after, &book);
        if changes.is_empty() {
            continue;
        }
        let k = updates.len() as u64 + 1;
        updates.push(market::update_frame(&changes, &inst, market::checksum(&after, &inst), k * 1000, true));
    }
    (market::instrument_frame(&[inst]), snapshot, updates)
}

struct Server {
    url: String,
    sent: Arc<Vec<AtomicU64>>,
    epoch: Instant,
}

/// A server that answers the instrument and book subscriptions, then sends the updates one per
/// millisecond, noting when each was written (nanoseconds since `epoch`).
fn server(n: usize, go: Arc<AtomicBool>) -> Server {
    let (instruments, snapshot, updates) = frames(n);
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..=n).map(|_| AtomicU64::new(0)).collect());
    let epoch = now();
    let (tx, rx) = std::sync::mpsc::channel();
    let s = Arc::clone(&sent);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("ws://{}/v2", listener.local_addr().unwrap())).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let mut subscribed = false;
                while !subscribed {
                    let Some(Ok(Message::Text(t))) = ws.next().await else { break };
                    if t.contains("\"instrument\"") {
                        ws.send(Message::text(instruments.clone())).await.unwrap();
                    } else if t.contains("\"book\"") {
                        ws.send(Message::text(snapshot.clone())).await.unwrap();
                        subscribed = true;
                    }
                }
                while !go.load(Ordering::Acquire) {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(now() + Duration::from_millis(1))).await;
                }
                let start = now();
                for (k, f) in updates.iter().enumerate() {
                    let at = start + Duration::from_millis(k as u64);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    let msg = Message::text(f.clone());
                    s[k + 1].store(u64::try_from((now() - epoch).as_nanos()).unwrap(), Ordering::Release);
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
                go.store(false, Ordering::Release);
                let _ = ws.close(None).await;
            }
        });
    });
    Server { url: rx.recv().unwrap(), sent, epoch }
}

fn report(name: &str, mut v: Vec<u64>, n: usize) {
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "{name:<28} frames {:>5}/{n}  p50 {:>7.1} µs  p90 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>7.1} µs  max {:>8.1} µs",
        v.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        p(0.999),
        *v.last().unwrap() as f64 / 1000.0
    );
}

/// The sequence number a frame carries in its timestamp (see the module docs).
fn sequence(b: &[u8]) -> Option<usize> {
    let key = b"\"timestamp\":\"1970-01-01T00:00:00.";
    let at = b.windows(key.len()).rposition(|w| w == key)?;
    let digits = b.get(at + key.len()..at + key.len() + 6)?;
    Some(digits.iter().fold(0u64, |a, d| a * 10 + u64::from(d.wrapping_sub(b'0'))) as usize)
}

/// The mismatches the run's feed counted so far.
type Counter = Box<dyn Fn() -> u64>;
/// Closes the run's feed (or manager).
type Stop = Box<dyn FnOnce()>;
/// The thread taking the book events, and what it measured.
type Drain = std::thread::JoinHandle<Vec<u64>>;

/// What one plumb run measured: the reader's latency, the tap's, and the book event's.
struct Measured {
    reader: Vec<u64>,
    tapped: Vec<u64>,
    events: Vec<u64>,
}

/// The plumb path: feed thread (driver + session), reader thread waiting on the publication, and
/// a thread taking the book events. With `manager`, the feed runs inside a `Books` with four
/// more simulated venues on the same feed thread. Also measures the feed's raw-frame tap (frame
/// in hand on the feed thread, before parsing), which splits the total into transport and
/// everything after it.
fn plumb_path(n: usize, manager: bool, wait: Wait) -> Measured {
    let go = Arc::new(AtomicBool::new(false));
    let srv = server(n, Arc::clone(&go));
    let tapped = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let (t, sent, epoch) = (Arc::clone(&tapped), Arc::clone(&srv.sent), srv.epoch);
    let builder = FeedBuilder::kraken().url(srv.url.clone()).symbols(["BTC/USD"]).tap(move |frame, _| {
        let seen = u64::try_from((now() - epoch).as_nanos()).unwrap();
        if let Some(k) = sequence(frame).filter(|&k| k >= 1 && k <= n) {
            t.lock().unwrap().push(seen.saturating_sub(sent[k].load(Ordering::Acquire)));
        }
    });
    // The event latency: a thread of its own takes every book event of BTC/USD.
    let (sent, epoch) = (Arc::clone(&srv.sent), srv.epoch);
    let on_book = move |exchange_time_ns: u64, lat: &mut Vec<u64>| {
        let seen = u64::try_from((now() - epoch).as_nanos()).unwrap();
        let k = (exchange_time_ns / 1000) as usize;
        if k >= 1 && k <= n {
            lat.push(seen.saturating_sub(sent[k].load(Ordering::Acquire)));
        }
    };
    let mut sims = Vec::new();
    let (reader, counts, stop, drain): (_, Counter, Stop, Drain) = if manager {
        for seed in 1..=4 {
            sims.push(plumb_sim::Exchange::spawn(plumb_sim::ExchangeConfig { seed, ..Default::default() }).unwrap());
        }
        let mut books = plumb::Books::builder()
            .feed(builder)
            .feed(
                FeedBuilder::bybit(plumb::feed::Market::Spot)
                    .url(sims[0].bybit_url("spot"))
                    .symbols(["BTCUSDT", "ETHUSDT"]),
            )
            .feed(
                FeedBuilder::okx()
                    .url(sims[1].okx_url())
                    .rest_url(sims[1].okx_rest_url())
                    .symbols(["BTC-USDT", "ETH-USDT"]),
            )
            .feed(FeedBuilder::coinbase().url(sims[2].coinbase_url()).symbols(["BTC-USD", "ETH-USD"]))
            .feed(
                FeedBuilder::binance()
                    .url(format!("{}/ws", sims[3].binance_base()))
                    .rest_url(sims[3].rest_url())
                    .symbols(["BTCUSDT", "ETHUSDT"]),
            )
            .start()
            .unwrap();
        let mut events = books.events().unwrap();
        let drain = std::thread::spawn(move || {
            let mut lat = Vec::with_capacity(n);
            while let Some(e) = events.blocking_recv() {
                if let (plumb::Venue::Kraken, plumb::feed::Event::Book(b)) = (e.venue, &e.event) {
                    on_book(b.exchange_time_ns, &mut lat);
                }
            }
            lat
        });
        let reader = books.reader(plumb::Venue::Kraken, "BTC/USD").unwrap();
        while !books.all_valid() {
            std::thread::yield_now();
        }
        let books = Arc::new(std::sync::Mutex::new(Some(books)));
        let b2 = Arc::clone(&books);
        let counts = Box::new(move || {
            b2.lock().unwrap().as_ref().map_or(0, |b| b.counts(plumb::Venue::Kraken).checksum_mismatches)
        });
        let stop = Box::new(move || {
            if let Some(b) = books.lock().unwrap().take() {
                b.close_all();
            }
        });
        (reader, counts, stop, drain)
    } else {
        let mut feed = builder.start().unwrap();
        let mut events = feed.events().unwrap();
        let drain = std::thread::spawn(move || {
            let mut lat = Vec::with_capacity(n);
            while let Some(e) = events.blocking_recv() {
                if let plumb::feed::Event::Book(b) = &e {
                    on_book(b.exchange_time_ns, &mut lat);
                }
            }
            lat
        });
        let reader = feed.reader("BTC/USD").unwrap();
        let feed = Arc::new(std::sync::Mutex::new(Some(feed)));
        let f2 = Arc::clone(&feed);
        let counts = Box::new(move || f2.lock().unwrap().as_ref().map_or(0, |f| f.counts().checksum_mismatches));
        let stop = Box::new(move || {
            if let Some(f) = feed.lock().unwrap().take() {
                f.close();
            }
        });
        (reader, counts, stop, drain)
    };
    while reader.top().header.status != Status::Valid {
        std::hint::spin_loop();
    }
    go.store(true, Ordering::Release);
    let mut lat = Vec::with_capacity(n);
    let mut last = 0;
    let mut version = reader.version();
    let deadline = now() + Duration::from_millis(n as u64 + 3000);
    while last < n as u64 && now() < deadline {
        let v = reader.wait_newer(version, wait, Duration::from_millis(100));
        if v == version {
            continue;
        }
        version = v;
        let h = reader.top().header;
        let k = h.exchange_time_ns / 1000;
        if h.status == Status::Valid && k > last && (k as usize) <= n {
            let seen = u64::try_from((now() - srv.epoch).as_nanos()).unwrap();
            lat.push(seen.saturating_sub(srv.sent[k as usize].load(Ordering::Acquire)));
            last = k;
        }
    }
    assert_eq!(counts(), 0);
    stop();
    let events = drain.join().unwrap();
    drop(sims);
    let tapped = std::mem::take(&mut *tapped.lock().unwrap());
    Measured { reader: lat, tapped, events }
}

/// The floor: a bare tokio-tungstenite client (same 16 KiB read buffer and `TCP_NODELAY`), taking
/// the time as soon as a frame's text is in hand.
fn floor_path(n: usize) -> Vec<u64> {
    let go = Arc::new(AtomicBool::new(false));
    let srv = server(n, Arc::clone(&go));
    floor_client(n, &go, srv, |_| {})
}

/// The floor of any reader that parks: the bare client hands each frame's sequence number to a
/// thread parked in `std::thread::park` (the primitive `Wait::Park` sleeps on) and unparks it; that
/// thread takes the time when it wakes to a number it has not seen. What this adds to the bare
/// client is the operating system's wake-up, which no parking reader can avoid.
fn floor_park_path(n: usize) -> Vec<u64> {
    let go = Arc::new(AtomicBool::new(false));
    let srv = server(n, Arc::clone(&go));
    let latest = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (latest, done, sent, epoch) = (Arc::clone(&latest), Arc::clone(&done), Arc::clone(&srv.sent), srv.epoch);
        std::thread::spawn(move || {
            let (mut lat, mut seen) = (Vec::with_capacity(n), 0);
            while !done.load(Ordering::Acquire) {
                std::thread::park_timeout(Duration::from_millis(100));
                let k = latest.load(Ordering::Acquire);
                if k != seen {
                    let at = u64::try_from((now() - epoch).as_nanos()).unwrap();
                    lat.push(at.saturating_sub(sent[k].load(Ordering::Acquire)));
                    seen = k;
                }
            }
            lat
        })
    };
    let thread = waiter.thread().clone();
    let _ = floor_client(n, &go, srv, |k| {
        latest.store(k, Ordering::Release);
        thread.unpark();
    });
    done.store(true, Ordering::Release);
    thread.unpark();
    waiter.join().unwrap()
}

/// The bare client against `srv` (which waits for `go`), calling `on_frame` with each update's
/// sequence number after taking its time.
fn floor_client(n: usize, go: &AtomicBool, srv: Server, mut on_frame: impl FnMut(usize)) -> Vec<u64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let url = srv.url.clone();
        let host = url.trim_start_matches("ws://").trim_end_matches("/v2").to_owned();
        let tcp = tokio::net::TcpStream::connect(host).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await.unwrap();
        ws.send(Message::text(r#"{"method":"subscribe","params":{"channel":"instrument"}}"#)).await.unwrap();
        ws.send(Message::text(r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"]}}"#))
            .await
            .unwrap();
        let _instruments = ws.next().await;
        let _snapshot = ws.next().await;
        go.store(true, Ordering::Release);
        let mut lat = Vec::with_capacity(n);
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let seen = u64::try_from((now() - srv.epoch).as_nanos()).unwrap();
            let Some(k) = sequence(t.as_bytes()) else { continue };
            if k >= 1 && k <= n {
                lat.push(seen.saturating_sub(srv.sent[k].load(Ordering::Acquire)));
                on_frame(k);
            }
            if k == n {
                break;
            }
        }
        lat
    })
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number sets the frame count.
    let n = std::env::args().skip(1).find_map(|a| a.parse::<usize>().ok()).unwrap_or(5000);
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    println!("loopback latency, server write -> seen; {n} frames at 1 kHz (BTC/USD, depth 10)");
    let floor = floor_path(n);
    report("bare tokio-tungstenite", floor, n);
    let one = plumb_path(n, false, Wait::Yield);
    report("plumb: frame at the tap", one.tapped, n);
    report("plumb: reader sees valid", one.reader, n);
    report("plumb: book event", one.events, n);
    // The reader's other ways to wait, on fresh runs (the floor is measured again beside them).
    for (name, wait) in [("spin", Wait::Spin), ("park", Wait::Park)] {
        let floor = floor_path(n);
        report("bare tokio-tungstenite", floor, n);
        if wait == Wait::Park {
            report("bare client + parked thread", floor_park_path(n), n);
        }
        report(&format!("plumb: reader sees valid, {name}"), plumb_path(n, false, wait).reader, n);
    }
    let many = plumb_path(n, true, Wait::Yield);
    report("manager, 5 venues: frame at the tap", many.tapped, n);
    report("manager, 5 venues: reader sees valid", many.reader, n);
    report("manager, 5 venues: book event", many.events, n);
}
