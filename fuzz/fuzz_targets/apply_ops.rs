//! Random operation sequences: the book agrees with the naive reference model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plumb_book::testing::check_apply_ops(data));
