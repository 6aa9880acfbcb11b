//! Random Coinbase frames, timer firings, reconnects and product changes: the session never
//! panics, and a book published valid carries the connection's number it rests on.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plumb_feed::testing::check_session_coinbase(data, std::time::Instant::now()));
