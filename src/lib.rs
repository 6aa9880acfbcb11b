#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

#[doc(inline)]
pub use plumb_book as book;
#[doc(inline)]
pub use plumb_feed as feed;
/// The simulated exchanges on 127.0.0.1 that `plumb demo` and the tests run against (feature
/// `sim`, on with the command line): for trying the library offline.
#[cfg(feature = "sim")]
#[doc(inline)]
pub use plumb_sim as sim;
#[doc(inline)]
pub use plumb_wire as wire;

pub mod replay;

#[cfg(feature = "feed")]
pub mod manager;
#[cfg(feature = "feed")]
#[doc(inline)]
pub use manager::{Books, BooksBuilder, Venue};
