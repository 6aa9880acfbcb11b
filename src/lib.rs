//! plumb: exchange order books held exactly, verified continuously, and read without locks.
//!
//! This facade re-exports the crates: [`wire`] parses frames, [`book`] holds and verifies books.
//! [`replay`] verifies a captured session offline.
#![forbid(unsafe_code)]

pub use plumb_book as book;
pub use plumb_wire as wire;

pub mod replay;
