//! `Books::close_all` leaves nothing behind: no thread and no socket of the manager's. Alone in
//! its test binary, so that no other test's threads or sockets are counted.
#![cfg(feature = "feed")]
#![expect(clippy::unwrap_used, reason = "tests")]
#![expect(clippy::disallowed_methods, reason = "tests watch the wall clock and sleep")]

use std::time::{Duration, Instant};

use plumb::feed::{FeedBuilder, Market};
use plumb::manager::{Books, Threads, Venue};
use plumb_sim::{Exchange, ExchangeConfig};

/// This process's threads and open sockets.
fn threads_and_sockets() -> (usize, usize) {
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let sockets = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count();
    (threads, sockets)
}

#[test]
fn close_all_leaves_no_thread_or_socket_behind() {
    if !std::path::Path::new("/proc/self/task").exists() {
        eprintln!("no /proc here: nothing to count");
        return;
    }
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    for threads in [Threads::One, Threads::PerExchange] {
        let before = threads_and_sockets();
        let books = Books::builder()
            .feed(FeedBuilder::kraken().url(sim.url()).symbols(["BTC/USD", "ETH/USD", "SOL/USD"]).max_books(1))
            .feed(FeedBuilder::bybit(Market::Spot).url(sim.bybit_url("spot")).symbols(["BTCUSDT"]))
            .feed(FeedBuilder::okx().url(sim.okx_url()).rest_url(sim.okx_rest_url()).symbols(["BTC-USDT"]))
            .threads(threads)
            .on_connected(|_| {})
            .start()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while !books.all_valid() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(books.all_valid());
        assert_eq!(books.connections(Venue::Kraken), (3, 3));
        let during = threads_and_sockets();
        // Each connection has a client socket and the simulated server's end of it.
        assert!(during.1 >= before.1 + 2 * 5, "{before:?} -> {during:?}");
        assert!(during.0 > before.0, "{before:?} -> {during:?}");
        books.close_all();
        // The client's side is gone at once; the server's as soon as it sees the close.
        let until = Instant::now() + Duration::from_secs(5);
        let mut after = threads_and_sockets();
        while after != before && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            after = threads_and_sockets();
        }
        assert_eq!(after, before, "{threads:?}: threads and sockets before, and after close_all");
    }
}
