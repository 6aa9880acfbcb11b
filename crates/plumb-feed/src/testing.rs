//! Checks shared by the fuzz targets `session_ops`, `session_bybit`, `session_okx` and
//! `session_coinbase`, `session_binance` and the stable test suite.

use std::time::{Duration, Instant};

use plumb_book::publish::Status;
use plumb_book::rule::Rule;
use plumb_book::{Proof, State};

use crate::exchange::Exchange;
use crate::{Binance, Bybit, Coinbase, Command, Config, Disconnect, Fetched, Kraken, Okx, Session};

/// Runs a Kraken session over `data`; see [`check_session_of`].
///
/// # Panics
///
/// When an invariant fails.
pub fn check_session(data: &[u8], epoch: Instant) {
    check_session_of(Kraken, Config::default(), &["BTC/USD", "ETH/USD", "SOL/USD"], data, epoch);
}

/// Runs a Bybit session over `data`; see [`check_session_of`].
///
/// # Panics
///
/// When an invariant fails.
pub fn check_session_bybit(data: &[u8], epoch: Instant) {
    let bybit = Bybit::default();
    let config = bybit.config();
    check_session_of(bybit, config, &["BTCUSDT", "ETHUSDT", "SOLUSDT"], data, epoch);
}

/// Runs an OKX session over `data` (instruments of two types on one connection); see
/// [`check_session_of`].
///
/// # Panics
///
/// When an invariant fails.
pub fn check_session_okx(data: &[u8], epoch: Instant) {
    check_session_of(Okx, Okx.config(), &["BTC-USDT", "BTC-USDT-SWAP", "PEPE-USDT"], data, epoch);
}

/// Runs a Coinbase session over `data` (three products on one connection, numbered by one
/// counter); see [`check_session_of`].
///
/// # Panics
///
/// When an invariant fails.
pub fn check_session_coinbase(data: &[u8], epoch: Instant) {
    check_session_of(Coinbase, Coinbase.config(), &["BTC-USD", "ETH-USD", "DOGE-USD"], data, epoch);
}

/// Runs a Binance spot session over `data` (books bridged from the snapshots the `F` steps
/// answer with); see [`check_session_of`].
///
/// # Panics
///
/// When an invariant fails.
pub fn check_session_binance(data: &[u8], epoch: Instant) {
    let config = Config { rest_url: Some("http://127.0.0.1:9".to_owned()), ..Binance.config() };
    check_session_of(Binance, config, &["BTCUSDT", "ETHUSDT", "PEPEUSDT"], data, epoch);
}

/// Runs a session of exchange `E` over `data`, split at `0xff` bytes into steps: `T<n>` lets
/// `n * 50` ms pass and fires the timers, `C` drops and restores the connection, `A`/`R` add and
/// remove the third symbol, `F<body>` answers every snapshot fetch asked for with that body and
/// `E` fails them (HTTP 503), anything else is a received frame. After every step: nothing
/// panicked, the queues stay small, every reader shows the session's status, and a book published
/// valid is proved by its exchange's rule (a checksum that is its true one, or a sequence id) and
/// not crossed.
///
/// # Panics
///
/// When one of those fails.
pub fn check_session_of<E: Exchange>(exchange: E, config: Config, names: &[&str; 3], data: &[u8], epoch: Instant) {
    let mut s = Session::with_exchange(exchange, config);
    let mut symbols: Vec<&str> = names[..2].to_vec();
    // Each symbol's reader and where the session keeps its book (looked up once: the check
    // reads every book after every step).
    let mut readers = Vec::new();
    for sym in &symbols {
        let reader = s.add_symbol(sym).expect("valid symbols");
        readers.push((reader, s.slot_index(sym).expect("just added")));
    }
    let mut now = epoch;
    let mut fetches = Vec::new();
    s.handle_connected(now);
    for step in steps(data) {
        match step {
            [b'T', n, ..] => {
                now += Duration::from_millis(u64::from(*n) * 50);
                s.handle_timeout(now);
            }
            [b'C'] => {
                s.handle_disconnected(now, Disconnect::ServerClosed);
                s.handle_connected(now);
            }
            [b'A'] if symbols.len() == 2 => {
                symbols.push(names[2]);
                let reader = s.add_symbol(names[2]).expect("not there yet");
                readers.push((reader, s.slot_index(names[2]).expect("just added")));
            }
            [b'R'] if symbols.len() == 3 => {
                assert!(s.remove_symbol(names[2]));
                symbols.pop();
                readers.pop();
            }
            [b'F', body @ ..] => {
                for id in fetches.drain(..) {
                    s.handle_fetched(id, Fetched::Body(body), now, 1);
                }
            }
            [b'E'] => {
                for id in fetches.drain(..) {
                    let failed =
                        Fetched::Failed { status: Some(503), retry_after: Some(Duration::from_secs(1)), message: "" };
                    s.handle_fetched(id, failed, now, 1);
                }
            }
            frame => s.handle_frame(frame, now, 1),
        }
        let commands = std::iter::from_fn(|| s.poll_command())
            .inspect(|c| {
                if let Command::Fetch(f) = c {
                    fetches.push(f.id);
                }
            })
            .count();
        let events = std::iter::from_fn(|| s.poll_event()).count();
        assert!(commands <= 16 && events <= 4096, "{commands} commands, {events} events from one step");
        for (sym, (r, i)) in symbols.iter().zip(&readers) {
            let h = r.top().header;
            let (name, status, book) = s.slot_at(*i).expect("a book per symbol");
            assert!(name == *sym && h.status == status, "{sym} ({name}): {:?} published, {status:?} kept", h.status);
            if h.status == Status::Valid {
                assert!(book.state() == State::Valid && !book.is_crossed(), "{sym}");
                match h.proof {
                    Proof::Checksum(c) => {
                        if book.is_checksummed() {
                            // The cached value is the true one too.
                            assert_eq!(book.checksum(), book.compute_checksum(), "{sym}");
                        }
                        assert_eq!(Some(c), <E::Rule as Rule>::checksum(book), "{sym}");
                    }
                    Proof::Sequence(id) => assert_eq!(book.sequence(), Some(id), "{sym}"),
                    Proof::Snapshot => assert_eq!(book.sequence(), None, "{sym}"),
                    Proof::None => panic!("{sym}: valid without a proof"),
                }
            } else {
                assert_eq!(h.proof, Proof::None, "{sym}");
            }
        }
    }
}

/// `data` split at `0xff` bytes, as `data.split(|&b| b == 0xff)` splits it, but looking for the
/// separator eight bytes at a time: under the fuzzer's coverage counters a byte loop over the
/// input cost more than the session it feeds.
fn steps(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let Some(at) = find_ff(data) else {
            done = true;
            return Some(data);
        };
        let step = &data[..at];
        data = &data[at + 1..];
        Some(step)
    })
}

/// The index of the first `0xff` byte in `data`.
fn find_ff(data: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = data.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        // A 0xff byte is a zero byte of the complement; this test finds whether there is one.
        let w = !u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if w.wrapping_sub(LO) & !w & HI != 0 {
            return chunk.iter().position(|&b| b == 0xff).map(|k| base + k);
        }
        base += 8;
    }
    chunks.remainder().iter().position(|&b| b == 0xff).map(|k| base + k)
}

#[cfg(test)]
mod tests {
    #[test]
    fn steps_split_as_slice_split_does() {
        let cases: [&[u8]; 8] = [
            b"",
            b"\xff",
            b"abc",
            b"abc\xff",
            b"\xffabc",
            b"abcdefgh\xff\xffijklmnopqrstuvw\xffx",
            b"0123456789abcdef0123456789abcdef\xfe\x7f\x80\x00",
            b"\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xff\xfe",
        ];
        for data in cases {
            let ours: Vec<&[u8]> = super::steps(data).collect();
            let std: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
            assert_eq!(ours, std, "{data:?}");
        }
        // Every position of the separator in a longer input.
        for at in 0..40 {
            let mut data = vec![0x7f_u8; 40];
            data[at] = 0xff;
            let ours: Vec<&[u8]> = super::steps(&data).collect();
            let std: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
            assert_eq!(ours, std, "at {at}");
        }
    }
}
