//! The plumb connector: live exchange books (Kraken v2, Bybit v5) that heal themselves, one symbol
//! at a time.
//!
//! Two layers, as in quinn:
//! - [`Session`] (always built): the sans-io protocol core. It owns one connection's books and
//!   decides everything (what to subscribe, when a book is wrong and must be resubscribed, how fast,
//!   when the feed is stale), but never touches a socket or a clock.
//! - [`Feed`] (feature `tokio`, on by default): a thin driver that runs a session over
//!   tokio-tungstenite on its own thread, reconnects with backoff, and hands the application a
//!   lock-free [`Reader`](plumb_book::publish::Reader) per symbol and a bounded stream of
//!   [`Event`]s.
#![forbid(unsafe_code)]

mod error;
pub mod exchange;
mod pacing;
pub mod session;
#[doc(hidden)]
pub mod testing;

#[cfg(feature = "tokio")]
mod driver;
#[cfg(feature = "tokio")]
mod http;

#[cfg(feature = "tokio")]
pub use driver::{Events, Feed, FeedBuilder, Tap};

pub use error::{Error, Result, Symbol};
pub use exchange::{Binance, BinanceUsdm, Bybit, Coinbase, Exchange, Kraken, Market, Okx};
pub use pacing::{Backoff, Budget, Pacing};

/// Kraken's public v2 websocket endpoint.
pub const KRAKEN_V2_URL: &str = "wss://ws.kraken.com/v2";
pub use session::{
    BookUpdate, Command, Config, Counts, Disconnect, Event, Fetch, Fetched, ResyncReason, Session, Stats,
};

/// A fixed instant for tests that need one (the clock is disallowed outside the driver).
#[cfg(test)]
#[expect(clippy::disallowed_methods, reason = "tests need one real Instant to offset from")]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
