//! Offline: replay a captured Kraken v1 session and print what was proved.
//!
//! ```sh
//! cargo run --example replay                      # the committed XBT/USD depth-10 session
//! cargo run --example replay -- path/to/capture   # any v1 capture, one frame per line
//! ```
#![allow(clippy::print_stdout, reason = "an example prints its result")]

use std::io::BufRead as _;

use plumb::book::Depth;
use plumb::replay::Replay;
use plumb::wire::kraken::Api;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kraken/captures/xbtusd-v1-book10.capture").into()
    });
    let mut replay = Replay::new(Depth::D10, Some(Api::V1));
    for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
        replay.line(line?.as_bytes());
    }
    let c = replay.counts();
    println!(
        "{path}: {} frames, {} checksums verified, {} mismatches, {} errors",
        c.frames, c.checksums_verified, c.checksum_mismatches, c.errors
    );
    for slot in replay.slots() {
        let (bid, ask) = (slot.book.best(plumb::book::Side::Bid), slot.book.best(plumb::book::Side::Ask));
        if let (Some(bid), Some(ask)) = (bid, ask) {
            println!(
                "{}: {:?}, {} / {} (spread {})",
                slot.symbol,
                slot.book.state(),
                bid.price,
                ask.price,
                ask.price.checked_sub(bid.price).ok_or("overflow")?
            );
        }
    }
    Ok(())
}
