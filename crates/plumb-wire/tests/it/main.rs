//! Integration tests of `plumb-wire`.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod bybit;
mod coinbase;
mod examples;
mod okx;
mod reference;
