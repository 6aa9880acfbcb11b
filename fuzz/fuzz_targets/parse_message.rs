//! Any bytes: no panic; borrowed strings point into the input; the readers agree.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plumb_wire::testing::check_parse(data));
