//! Random Bybit frames, timer firings, reconnects and symbol changes: the session never panics,
//! and a book published valid is proved by an unbroken sequence.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plumb_feed::testing::check_session_bybit(data, std::time::Instant::now()));
