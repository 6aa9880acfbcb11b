//! Any bytes through the Coinbase parser: no panic, borrowed strings inside the input, every
//! pre-read value its text, and the scanner and simd-json reading the same message.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plumb_wire::testing::check_parse_coinbase(data));
