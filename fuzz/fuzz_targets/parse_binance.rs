//! Any bytes through the Binance parser (and as a REST depth body): no panic, borrowed strings
//! inside the input, exact pre-read values, the scanner and simd-json reading the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plumb_wire::testing::check_parse_binance(data));
