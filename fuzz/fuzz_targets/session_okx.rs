//! Random OKX frames, timer firings, reconnects and instrument changes: the session never panics,
//! and a book published valid is proved by an unbroken chain of links or by its true checksum.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plumb_feed::testing::check_session_okx(data, std::time::Instant::now()));
