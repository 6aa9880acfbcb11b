//! Integration tests of `plumb-book`.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod binance;
mod model;
mod okx;
mod pitfalls;
mod publish;
