//! Memory per 1,000 books: the resident memory a process gains when 1,000 Kraken books of a
//! given depth are filled from full snapshots, each with its publication ring (10 levels a side,
//! as a feed publishes by default). Not criterion: one figure per depth, from `/proc/self/statm`
//! (Linux), so it includes the allocator's own overhead, as a process would see it.
//!
//! `cargo bench --bench memory`.

#![allow(clippy::unwrap_used, reason = "a bench fails loudly")]
#![allow(missing_docs, reason = "a bench binary")]

use plumb::book::Depth;
use plumb::book::publish::channel;
use plumb::replay::Replay;
use plumb_sim::market::{self, Instrument, Rng, SimBook, Style};

/// Resident bytes of this process, if the system says.
fn resident() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    const BOOKS: usize = 1000;
    let instruments = Instrument::synthetic(Style::Kraken, BOOKS);
    for depth in [10usize, 1000] {
        // The frames first, so that only the books are measured.
        let mut rng = Rng::new(7);
        let mut frames = vec![market::instrument_frame(&instruments)];
        for inst in &instruments {
            let mut book = SimBook::new(inst.clone(), &mut rng);
            book.deepen(depth, &mut rng);
            let view = book.view(depth);
            let top = market::View { bids: view.bids[..10].to_vec(), asks: view.asks[..10].to_vec() };
            frames.push(market::snapshot_frame(&view, inst, market::checksum(&top, inst), 1, false));
        }
        let Some(before) = resident() else {
            println!("no /proc/self/statm here: nothing to measure");
            return;
        };
        let mut replay = Replay::new(Depth::new(u32::try_from(depth).unwrap()).unwrap(), None);
        for f in &frames {
            replay.line(f.as_bytes());
        }
        let books_only = resident().unwrap();
        let rings: Vec<_> = (0..BOOKS).map(|_| channel(10)).collect();
        let after = resident().unwrap();
        let c = replay.counts();
        assert_eq!((c.checksums_verified, c.checksum_mismatches), (BOOKS as u64, 0), "every snapshot verified");
        let levels: usize = replay
            .slots()
            .iter()
            .map(|s| s.book.len(plumb::book::Side::Bid) + s.book.len(plumb::book::Side::Ask))
            .sum();
        #[expect(clippy::cast_precision_loss, reason = "megabytes for display")]
        let mb = after.saturating_sub(before) as f64 / 1e6;
        #[expect(clippy::cast_precision_loss, reason = "megabytes for display")]
        let (books_mb, rings_mb) =
            (books_only.saturating_sub(before) as f64 / 1e6, after.saturating_sub(books_only) as f64 / 1e6);
        println!(
            "{BOOKS} books at depth {depth:>4} ({levels} levels held): {mb:>7.1} MB resident \
             (books {books_mb:.1} MB, publication rings {rings_mb:.1} MB)"
        );
        drop((replay, rings, frames));
    }
}
