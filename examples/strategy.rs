//! Live: a feed of two books from the simulated Kraken (so that it runs offline; leave out `.url`
//! for Kraken itself) and a strategy thread that reads them without locks, trading only on a
//! book that is valid and fresh.
//!
//! ```sh
//! cargo run --example strategy
//! ```
#![allow(clippy::print_stdout, reason = "an example prints its result")]

use std::time::Duration;

use plumb::feed::FeedBuilder;
use plumb::sim::{Exchange, ExchangeConfig, FaultPlan};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A misbehaving exchange: a fault every two seconds (corrupt checksums, lost updates,
    // silences, closes...). The books heal; the strategy never trades on one that is not valid.
    let plan = FaultPlan::Every { period: Duration::from_secs(2), silence: Duration::from_secs(3) };
    let exchange = Exchange::spawn(ExchangeConfig { plan, ..ExchangeConfig::default() })?;
    let feed = FeedBuilder::kraken().url(exchange.url()).symbols(["BTC/USD", "ETH/USD"]).start()?;
    if !feed.wait_valid(Duration::from_secs(10)) {
        return Err("the books did not become valid".into());
    }
    let readers = ["BTC/USD", "ETH/USD"].map(|s| feed.reader(s).expect("a reader per symbol"));
    let strategy = std::thread::spawn(move || {
        let (mut traded, mut held_back) = (0u64, 0u64);
        for _ in 0..8_000 {
            for r in &readers {
                let top = r.top();
                // Valid and no older than 500 ms: anything else (resyncing, stale, old) waits.
                if top.header.is_valid_within(Duration::from_millis(500))
                    && let (Some(bid), Some(ask)) = (top.bid, top.ask)
                    && ask.price.checked_sub(bid.price).is_some_and(|s| s.mantissa > 0)
                {
                    traded += 1;
                } else {
                    held_back += 1;
                }
            }
            std::thread::park_timeout(Duration::from_millis(1));
        }
        (traded, held_back)
    });
    let (traded, held_back) = strategy.join().map_err(|_| "the strategy thread panicked")?;
    let c = feed.counts();
    println!(
        "quotes used {traded}, held back {held_back}; faults {}, checksums verified {}, resyncs {}, reconnects {}",
        exchange.applied().len(),
        c.checksums_verified,
        c.resyncs,
        c.reconnects
    );
    feed.close();
    Ok(())
}
