//! Replays the fuzz seeds and every minimised crash through the fuzz checks, on stable.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in [root.join("fuzz/seeds").join(target), root.join("tests/data/fuzz").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.expect("readable corpus dir").path();
            if path.is_file() && path.extension().is_none_or(|e| e != "md") {
                check(&std::fs::read(&path).expect("readable corpus file"));
                n += 1;
            }
        }
    }
    n
}

#[test]
fn parse_message_corpus() {
    assert!(replay("parse_message", plumb::wire::testing::check_parse) >= 50);
}

#[test]
fn apply_ops_corpus() {
    assert!(replay("apply_ops", plumb::book::testing::check_apply_ops) >= 20);
}

#[expect(clippy::disallowed_methods, reason = "the session check needs one real Instant to offset from")]
fn session_check(data: &[u8]) {
    plumb::feed::testing::check_session(data, std::time::Instant::now());
}

#[test]
fn session_ops_corpus() {
    assert!(replay("session_ops", session_check) >= 6);
}

#[test]
fn parse_bybit_corpus() {
    assert!(replay("parse_bybit", plumb::wire::testing::check_parse_bybit) >= 20);
}

#[expect(clippy::disallowed_methods, reason = "the session check needs one real Instant to offset from")]
fn session_bybit_check(data: &[u8]) {
    plumb::feed::testing::check_session_bybit(data, std::time::Instant::now());
}

#[test]
fn session_bybit_corpus() {
    assert!(replay("session_bybit", session_bybit_check) >= 8);
}

#[test]
fn parse_coinbase_corpus() {
    assert!(replay("parse_coinbase", plumb::wire::testing::check_parse_coinbase) >= 10);
}

#[test]
fn parse_okx_corpus() {
    assert!(replay("parse_okx", plumb::wire::testing::check_parse_okx) >= 20);
}

#[expect(clippy::disallowed_methods, reason = "the session check needs one real Instant to offset from")]
fn session_okx_check(data: &[u8]) {
    plumb::feed::testing::check_session_okx(data, std::time::Instant::now());
}

#[test]
fn session_okx_corpus() {
    assert!(replay("session_okx", session_okx_check) >= 8);
}

#[expect(clippy::disallowed_methods, reason = "the session check needs one real Instant to offset from")]
fn session_coinbase_check(data: &[u8]) {
    plumb::feed::testing::check_session_coinbase(data, std::time::Instant::now());
}

#[test]
fn session_coinbase_corpus() {
    assert!(replay("session_coinbase", session_coinbase_check) >= 6);
}

#[test]
fn parse_binance_corpus() {
    assert!(replay("parse_binance", plumb::wire::testing::check_parse_binance) >= 10);
}

#[expect(clippy::disallowed_methods, reason = "the session check needs one real Instant to offset from")]
fn session_binance_check(data: &[u8]) {
    plumb::feed::testing::check_session_binance(data, std::time::Instant::now());
}

#[test]
fn session_binance_corpus() {
    assert!(replay("session_binance", session_binance_check) >= 5);
}
