//! Random Binance events, REST snapshot answers and failures, timer firings, reconnects and symbol
//! changes: the session never panics, and a book published valid carries the update id it rests on.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plumb_feed::testing::check_session_binance(data, std::time::Instant::now()));
