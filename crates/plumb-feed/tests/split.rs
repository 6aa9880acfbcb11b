//! `FeedBuilder::split`: symbols spread over connections within each exchange's limits, and a
//! connection that refuses a symbol past its size at once.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use plumb_feed::{Error, FeedBuilder, Market};

fn sizes<E: plumb_feed::Exchange>(shards: &[FeedBuilder<E>]) -> Vec<usize> {
    shards.iter().map(|s| s.symbol_list().len()).collect()
}

#[test]
fn split_spreads_symbols_within_each_exchanges_limits() {
    // OKX: fewer than 30 depth channels a connection.
    let okx: Vec<String> = (0..65).map(|i| format!("S{i}-USDT")).collect();
    let shards = FeedBuilder::okx().symbols(okx.clone()).split().unwrap();
    assert_eq!(sizes(&shards), [29, 29, 7]);
    // Every symbol once, in order.
    let all: Vec<String> = shards.iter().flat_map(|s| s.symbol_list().to_vec()).collect();
    assert_eq!(all, okx);
    // The application's size, below the exchange's.
    let kraken: Vec<String> = (0..10).map(|i| format!("S{i}/USD")).collect();
    assert_eq!(sizes(&FeedBuilder::kraken().symbols(kraken).max_books(4).split().unwrap()), [4, 4, 2]);
    // Never above the exchange's own limit, whatever the application asks.
    assert_eq!(sizes(&FeedBuilder::okx().symbols(okx.clone()).max_books(100).split().unwrap()), [29, 29, 7]);
    // Bybit: 21,000 characters of topics a connection, whatever the count (`"orderbook.50.` + a
    // 32-character symbol + `",`: 48 a topic, so at most 437 a connection).
    let long: Vec<String> = (0..1000).map(|i| format!("{:A>32}", i)).collect();
    let shards = FeedBuilder::bybit(Market::Spot).symbols(long).max_books(1000).split().unwrap();
    assert_eq!(sizes(&shards), [437, 437, 126]);
    for s in &shards {
        let chars: usize = s.symbol_list().iter().map(|x| "\"orderbook.50.\",".len() + x.len()).sum();
        assert!(chars <= 21_000, "{chars}");
    }
    // A duplicate or an invalid symbol is refused.
    let dup = FeedBuilder::kraken().symbols(["BTC/USD", "ETH/USD", "BTC/USD"]).split();
    assert!(matches!(dup, Err(Error::DuplicateSymbol(_))), "{dup:?}");
    assert!(FeedBuilder::kraken().symbols(["BTC USD"]).split().is_err());
}

#[test]
fn a_connection_refuses_a_symbol_past_its_size_at_once() {
    let shards = FeedBuilder::kraken().symbols(["A/USD", "B/USD", "C/USD"]).max_books(2).split().unwrap();
    assert_eq!(sizes(&shards), [2, 1]);
    let (mut feed, _driver) = shards[1].clone().build().unwrap();
    feed.add_symbol("D/USD").unwrap();
    let full = feed.add_symbol("E/USD");
    assert!(matches!(full, Err(Error::TooManySymbols { limit: 2, .. })), "{full:?}");
    assert!(feed.reader("E/USD").is_none());
}
