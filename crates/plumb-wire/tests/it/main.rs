//! Integration tests of `plumb-wire`.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod binance;
mod bybit;
mod coinbase;
mod examples;
mod okx;
mod reference;

/// A frame with a few bytes replaced, removed or inserted, as the parsers' "mutated frames never
/// panic" properties edit them: `(position, byte, 0 replace | 1 remove | 2 insert)`.
fn mutate(frame: String, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = frame.into_bytes();
    for &(at, byte, how) in edits {
        if b.is_empty() {
            break;
        }
        let at = at % b.len();
        match how {
            0 => b[at] = byte,
            1 => {
                b.remove(at);
            }
            _ => b.insert(at, byte),
        }
    }
    b
}
