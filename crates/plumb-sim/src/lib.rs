//! Simulated exchanges on 127.0.0.1, for `plumb demo` and for tests: one server, one market per
//! connection, and a venue per exchange picked by the request path (`/v2`: Kraken v2;
//! `/v5/public/{spot,linear,inverse}`: Bybit v5, see the `bybit` module's notes; `/ws/v5/public`:
//! OKX v5, see the `okx` module's notes; `/coinbase`: Coinbase Advanced Trade, see the `coinbase`
//! module's notes; `/ws` and `/public/ws`: Binance spot and USD-M futures, with their REST depth
//! snapshots on the same port, see the `binance` module's notes).
//!
//! [`Exchange::start`] binds a websocket server on a loopback port. Each Kraken connection gets its own
//! market (several instruments, low-priced ones with 9 price decimals and very large quantities
//! among them) moved by a random order flow, and speaks Kraken's v2 protocol as documented:
//! `instrument` and `book` subscriptions with per-symbol acknowledgements, snapshots and updates
//! with real CRC32 checksums, `unsubscribe`, application `ping`/`pong`, and a heartbeat every
//! second of otherwise quiet time.
//!
//! Faults are injected on request ([`Exchange::inject`]) or on a schedule ([`FaultPlan`]): a
//! corrupted checksum, a dropped update, an abrupt close, a silent period, a malformed frame, and
//! on Bybit a duplicated delta and a service restart (`u` = 1); on OKX a sequence reset, a
//! keepalive, a snapshot that never comes and a service-upgrade notice; on Coinbase a lost message
//! that a heartbeat shows, and a book deep enough for a snapshot of megabytes. Every
//! request the server received is logged ([`Exchange::requests`]) so that tests can check what the
//! client asked for and how often.
#![forbid(unsafe_code)]

mod binance;
mod bybit;
mod coinbase;
pub mod market;
mod okx;
mod server;

pub use server::{Applied, Background, Exchange, ExchangeConfig, Fault, FaultPlan, Request};
