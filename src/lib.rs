#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use plumb_book as book;
pub use plumb_feed as feed;
pub use plumb_wire as wire;

pub mod replay;
