//! Exact order books: fixed-point levels, depth truncation, the validity rules (Kraken CRC32,
//! Bybit update ids) and lock-free publication.
//!
//! A [`Book`] holds one instrument's bids and asks as integer mantissas with a scale, never
//! floats, so its checksum text is exactly the exchange's. A checksummed book keeps the checksum
//! text of each side's best ten levels, rewritten only when they change, so [`Book::checksum`]
//! copies 20 small arrays and hashes them once, with no allocation and no formatting. Every book
//! knows whether it can be trusted ([`State`]): a mismatch or a crossed book makes it invalid,
//! with the evidence, until the next snapshot.
//!
//! Example: apply Kraken's documented v1 book and check its checksum.
//!
//! ```
//! use plumb_book::{Book, Depth, Side};
//!
//! let mut book = Book::new(Depth::try_from(10)?, None);
//! let asks = ["0.05005", "0.05010", "0.05015", "0.05020", "0.05025",
//!             "0.05030", "0.05035", "0.05040", "0.05045", "0.05050"];
//! let bids = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
//!             "0.04970", "0.04965", "0.04960", "0.04955", "0.04950"];
//! for (a, b) in asks.iter().zip(bids) {
//!     book.set(Side::Ask, a, "0.00000500")?;
//!     book.set(Side::Bid, b, "0.00000500")?;
//! }
//! book.truncate();
//! assert_eq!(book.checksum(), 974947235);
//! assert_eq!(book.best(Side::Bid).unwrap().price.to_string(), "0.05000");
//! # Ok::<(), plumb_book::Error>(())
//! ```
#![forbid(unsafe_code)]

mod book;
mod error;
mod fixed;
pub mod kraken;
pub mod publish;
pub mod rule;
mod seq;
mod sync;
#[doc(hidden)]
pub mod testing;

pub use book::{Book, Decimal64, Depth, Invalid, Precision, Proof, Quote, Side, State};
pub use error::{Error, Result};
pub use fixed::MAX_SCALE;
pub use rule::{Rule, Tally, Verdict};
pub use seq::{Seq, SeqCheck, SeqTracker};
