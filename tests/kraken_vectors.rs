//! Every shared Kraken vector, through the same path `plumb replay` takes: parse, apply, verify.
//!
//! Data: `tests/data/kraken/` (origins and licences in its README).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a bad fixture")]

use std::collections::HashMap;
use std::path::Path;

use plumb::book::kraken::Outcome;
use plumb::book::{Depth, Precision};
use plumb::replay::{FrameKind, Replay};
use serde_json::Value;
use serde_json::value::RawValue;

struct Vector {
    id: String,
    depth: u32,
    precision: HashMap<String, Precision>,
    messages: Vec<String>,
    /// `(msg_index, checksum, expect_match, on_wire)`.
    checks: Vec<(usize, u32, bool, bool)>,
    synthetic: bool,
}

fn load(file: &str) -> Vec<Vector> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraken").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|line| {
            let raw: HashMap<&str, &RawValue> = serde_json::from_str(line).unwrap();
            let meta: Value = serde_json::from_str(line).unwrap();
            let messages: Vec<&RawValue> = serde_json::from_str(raw["messages"].get()).unwrap();
            let mut precision = HashMap::new();
            if let Some(p) = meta.get("precision").and_then(Value::as_object) {
                for (sym, v) in p {
                    let get = |k: &str| u8::try_from(v[k].as_u64().unwrap()).unwrap();
                    precision
                        .insert(sym.clone(), Precision { price: get("price_precision"), qty: get("qty_precision") });
                }
            }
            let checks = meta["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        usize::try_from(c["msg_index"].as_u64().unwrap()).unwrap(),
                        u32::try_from(c["checksum"].as_u64().unwrap()).unwrap(),
                        c.get("expect_match").and_then(Value::as_bool).unwrap_or(true),
                        c.get("note").is_none(),
                    )
                })
                .collect();
            Vector {
                id: meta["id"].as_str().unwrap().to_owned(),
                depth: u32::try_from(meta["depth"].as_u64().unwrap()).unwrap(),
                precision,
                messages: messages.iter().map(|m| m.get().to_owned()).collect(),
                checks,
                synthetic: meta.get("synthetic").and_then(Value::as_bool).unwrap_or(false),
            }
        })
        .collect()
}

/// Replays one vector and checks every one of its checksums. Returns how many were checked.
fn check(v: &Vector) -> usize {
    let mut replay = Replay::new(Depth::try_from(v.depth).unwrap(), None);
    for (sym, p) in &v.precision {
        replay.set_precision(sym, *p);
    }
    let mut checked = 0;
    for (i, msg) in v.messages.iter().enumerate() {
        let kind = replay.frame(msg.as_bytes());
        assert!(!matches!(kind, FrameKind::Error(_)), "{}: message {i}: {kind:?}", v.id);
        for &(_, expected, expect_match, on_wire) in v.checks.iter().filter(|c| c.0 == i) {
            assert_eq!(kind, FrameKind::Book, "{}: message {i} carries a check but is not a book", v.id);
            assert_eq!(replay.slots().len(), 1, "{}: one symbol per vector", v.id);
            let book = &replay.slots()[0].book;
            let computed = book.checksum();
            assert_eq!(
                computed == expected,
                expect_match,
                "{}: message {i}: computed {computed}, Kraken {expected}",
                v.id
            );
            if on_wire {
                let want =
                    if expect_match { Outcome::Verified(expected) } else { Outcome::Mismatch { expected, computed } };
                assert_eq!(replay.outcomes(), [want], "{}: message {i}", v.id);
                assert_eq!(book.state().is_valid(), expect_match, "{}: message {i}: {:?}", v.id, book.state());
            }
            checked += 1;
        }
    }
    let c = replay.counts();
    assert_eq!(c.errors, 0, "{}", v.id);
    checked
}

#[test]
fn every_v1_vector_verifies() {
    let vectors = load("kraken_v1_vectors.jsonl");
    assert_eq!(vectors.len(), 16);
    let mut kraken = 0;
    let mut synthetic = 0;
    for v in &vectors {
        let n = check(v);
        if v.synthetic { synthetic += n } else { kraken += n }
    }
    // 5,266 checksums computed by Kraken, plus 2 from the synthetic gocryptotrader vector.
    assert_eq!((kraken, synthetic), (5266, 2));
}

#[test]
fn every_v2_vector_verifies_and_the_negative_one_mismatches() {
    let vectors = load("kraken_v2_vectors.jsonl");
    assert_eq!(vectors.len(), 3);
    let total: usize = vectors.iter().map(check).sum();
    assert_eq!(total, 510 + 511 + 1);
    let negative = vectors.iter().find(|v| v.id.ends_with("negative")).unwrap();
    assert_eq!(negative.checks.iter().filter(|c| !c.2).count(), 1);
}

/// Pitfall 1 of the research: without the instrument precision, the re-serialised v2 session
/// (trailing zeros lost) must fail, which shows the padding is what makes it pass.
#[test]
fn v2_without_precision_fails_on_reserialised_numbers() {
    let vectors = load("kraken_v2_vectors.jsonl");
    let v = vectors.iter().find(|v| v.id == "python-kraken-sdk-orderbook-v2-BTCUSD-depth10").unwrap();
    let mut replay = Replay::new(Depth::D10, None);
    for m in &v.messages {
        replay.frame(m.as_bytes());
    }
    let c = replay.counts();
    assert_eq!(c.checksums_verified, 0);
    assert_eq!(c.checksum_mismatches, 1, "the snapshot mismatches, then the book waits for a snapshot");
    assert_eq!(c.unverified_updates, 509);
}

/// Pitfall 2: truncating a depth-1000 subscription to 10 levels breaks the book-1000 sessions.
#[test]
fn wrong_depth_fails_the_book_1000_sessions() {
    let vectors = load("kraken_v1_vectors.jsonl");
    let v = vectors.iter().find(|v| v.id == "cryptofeed-sample-XMRUSD-book1000").unwrap();
    let mut replay = Replay::new(Depth::D10, None);
    for m in &v.messages {
        // Rewrite the channel name so that the frames claim depth 10.
        replay.frame(m.replace("\"book-1000\"", "\"book-10\"").as_bytes());
    }
    assert!(replay.counts().checksum_mismatches > 0);
}

/// The capture files in `tests/data/kraken/captures/` are the vector sessions, byte for byte, so
/// the README's replay command runs on real Kraken data. Set `PLUMB_BLESS=1` to regenerate them.
#[test]
fn captures_are_the_vector_sessions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraken/captures");
    let wanted = [
        ("kraken_v1_vectors.jsonl", "python-kraken-sdk-orderbook-v1-XBTUSD-book10", "xbtusd-v1-book10.capture"),
        ("kraken_v1_vectors.jsonl", "cryptofeed-sample-ADAXBT-book1000", "adaxbt-v1-book1000.capture"),
        ("kraken_v2_vectors.jsonl", "python-kraken-sdk-orderbook-v2-BTCUSD-depth10", "btcusd-v2-book10.capture"),
    ];
    for (file, id, name) in wanted {
        let vectors = load(file);
        let v = vectors.iter().find(|v| v.id == id).unwrap();
        let mut text = String::new();
        for m in &v.messages {
            text.push_str(m);
            text.push('\n');
        }
        let path = dir.join(name);
        if std::env::var_os("PLUMB_BLESS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{name} differs from vector {id}");
    }
}
