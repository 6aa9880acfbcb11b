//! Checks shared by the fuzz target `session_ops` and the stable test suite.

use std::time::{Duration, Instant};

use plumb_book::publish::Status;

use crate::{Config, Disconnect, Session};

/// Runs a session over `data`, split at `0xff` bytes into steps: `T<n>` lets `n * 50` ms pass and
/// fires the timers, `C` drops and restores the connection, `A`/`R` add and remove a third
/// symbol, anything else is a received frame. After every step: nothing panicked, the queues stay
/// small, every reader shows the session's status, and a book published valid is verified, not
/// crossed, and its memoised checksum is its true one.
///
/// # Panics
///
/// When one of those fails.
pub fn check_session(data: &[u8], epoch: Instant) {
    let mut s = Session::new(Config::default());
    let mut symbols: Vec<&str> = vec!["BTC/USD", "ETH/USD"];
    let mut readers = Vec::new();
    for sym in &symbols {
        readers.push(s.add_symbol(sym).expect("valid symbols"));
    }
    let mut now = epoch;
    s.handle_connected(now);
    for step in data.split(|&b| b == 0xff) {
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
                symbols.push("SOL/USD");
                readers.push(s.add_symbol("SOL/USD").expect("not there yet"));
            }
            [b'R'] if symbols.len() == 3 => {
                assert!(s.remove_symbol("SOL/USD"));
                symbols.pop();
                readers.pop();
            }
            frame => s.handle_frame(frame, now, 1),
        }
        let commands = std::iter::from_fn(|| s.poll_command()).count();
        let events = std::iter::from_fn(|| s.poll_event()).count();
        assert!(commands <= 16 && events <= 4096, "{commands} commands, {events} events from one step");
        for (sym, r) in symbols.iter().zip(&readers) {
            let status = r.top().header.status;
            assert_eq!(Some(status), s.status(sym), "{sym}");
            if status == Status::Valid {
                let book = s.book(sym).expect("a book per symbol");
                assert!(book.state().is_valid() && !book.is_crossed(), "{sym}");
                assert_eq!(book.checksum(), book.compute_checksum(), "{sym}");
            }
        }
    }
}
