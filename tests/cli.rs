//! `plumb replay` as a user runs it: the real binary, on captures made from every vector session.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a bad fixture")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use serde_json::value::RawValue;

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plumb-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `plumb replay --json ARGS` and returns the exit code and the last stdout line as JSON.
fn replay(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_plumb")).arg("replay").arg("--json").args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last =
        stdout.lines().last().unwrap_or_else(|| panic!("no output; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), serde_json::from_str(last).unwrap())
}

fn exit_code(args: &[&str]) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_plumb")).args(args).output().unwrap().status.code().unwrap()
}

struct Session {
    id: String,
    depth: u64,
    precision: Vec<String>,
    frames: Vec<String>,
    on_wire_matches: u64,
    on_wire_mismatches: u64,
}

fn sessions() -> Vec<Session> {
    let mut out = Vec::new();
    for file in ["kraken_v1_vectors.jsonl", "kraken_v2_vectors.jsonl"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraken").join(file);
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let raw: HashMap<&str, &RawValue> = serde_json::from_str(line).unwrap();
            let meta: Value = serde_json::from_str(line).unwrap();
            let frames: Vec<&RawValue> = serde_json::from_str(raw["messages"].get()).unwrap();
            let checks = meta["checks"].as_array().unwrap();
            let on_wire = checks.iter().filter(|c| c.get("note").is_none());
            let (ok, bad): (Vec<_>, Vec<_>) = on_wire.partition(|c| c.get("expect_match") != Some(&Value::Bool(false)));
            let precision = meta
                .get("precision")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter().map(|(s, p)| format!("{s}={},{}", p["price_precision"], p["qty_precision"])).collect()
                })
                .unwrap_or_default();
            out.push(Session {
                id: meta["id"].as_str().unwrap().to_owned(),
                depth: meta["depth"].as_u64().unwrap(),
                precision,
                frames: frames.iter().map(|f| f.get().to_owned()).collect(),
                on_wire_matches: ok.len() as u64,
                on_wire_mismatches: bad.len() as u64,
            });
        }
    }
    out
}

#[test]
fn every_vector_session_replays_as_its_checksums_say() {
    let dir = tmpdir("sessions");
    let all = sessions();
    assert_eq!(all.len(), 19);
    for s in &all {
        let path = dir.join(format!("{}.capture", s.id));
        // Alternate the two line formats: bare frames, and receive timestamp + TAB.
        let text: String = s
            .frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i % 2 == 0 {
                    format!("{f}\n")
                } else {
                    format!("{}\t{f}\n\n", 1_700_000_000_000_000_000u64 + i as u64)
                }
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        let depth = s.depth.to_string();
        let mut args = vec!["--depth", &depth];
        for p in &s.precision {
            args.extend(["--precision", p]);
        }
        let p = path.to_str().unwrap();
        args.push(p);
        let (code, v) = replay(&args);
        assert_eq!(v["frames"], s.frames.len() as u64, "{}", s.id);
        assert_eq!(v["checksums_verified"], s.on_wire_matches, "{}", s.id);
        assert_eq!(v["checksum_mismatches"], s.on_wire_mismatches, "{}", s.id);
        assert_eq!(v["errors"], 0, "{}", s.id);
        assert_eq!(v["sequence_gaps"], 0, "{}", s.id);
        let books = v["books"].as_array().unwrap();
        assert_eq!(books.len(), 1, "{}", s.id);
        assert_eq!(books[0]["exchange"], "kraken");
        if s.on_wire_mismatches == 0 {
            assert_eq!(code, 0, "{}", s.id);
            assert_ne!(books[0]["state"], "invalid", "{}", s.id);
        } else {
            // The negative vector: its last update mismatches, and the book ends invalid.
            assert_eq!(code, 1, "{}", s.id);
            assert_eq!(books[0]["state"], "invalid", "{}", s.id);
        }
    }
}

#[test]
fn the_json_books_are_the_checksum_text_best_first() {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraken/captures/btcusd-v2-book10.capture");
    let (code, v) = replay(&["--precision", "BTC/USD=1,8", capture.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(v["checksums_verified"], 510);
    let book = &v["books"][0];
    assert_eq!((book["symbol"].as_str(), book["state"].as_str()), (Some("BTC/USD"), Some("valid")));
    let level = |side: &str, i: usize| -> (String, String) {
        let l = &book[side][i];
        (l[0].as_str().unwrap().to_owned(), l[1].as_str().unwrap().to_owned())
    };
    let bids: Vec<_> = (0..book["bids"].as_array().unwrap().len()).map(|i| level("bids", i)).collect();
    let asks: Vec<_> = (0..book["asks"].as_array().unwrap().len()).map(|i| level("asks", i)).collect();
    assert_eq!((bids.len(), asks.len()), (10, 10));
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    assert!(bids.windows(2).all(|w| dec(&w[0].0) > dec(&w[1].0)), "bids best first");
    assert!(asks.windows(2).all(|w| dec(&w[0].0) < dec(&w[1].0)), "asks best first");
    // Padded to the instrument precision: one price decimal, eight quantity decimals.
    for (p, q) in bids.iter().chain(&asks) {
        assert_eq!(p.split_once('.').unwrap().1.len(), 1, "{p}");
        assert_eq!(q.split_once('.').unwrap().1.len(), 8, "{q}");
    }
    // The reported checksum is the CRC32 of exactly these strings.
    let strip = |s: &str| s.replace('.', "").trim_start_matches('0').to_owned();
    let text: String = asks.iter().chain(&bids).map(|(p, q)| strip(p) + &strip(q)).collect();
    assert_eq!(book["checksum"], u64::from(crc32fast::hash(text.as_bytes())));
}

#[test]
fn instrument_frames_in_the_capture_give_the_precision() {
    let dir = tmpdir("instrument");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraken/captures/btcusd-v2-book10.capture");
    let inst = r#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":"BTC/USD","price_precision":1,"qty_precision":8}]}}"#;
    let path = dir.join("with-instrument.capture");
    std::fs::write(&path, format!("{inst}\n{}", std::fs::read_to_string(capture).unwrap())).unwrap();
    // A wrong --precision is overridden by the capture's own instrument frame.
    let (code, v) = replay(&["--exchange", "kraken", "--precision", "BTC/USD=2,6", path.to_str().unwrap()]);
    assert_eq!((code, &v["checksums_verified"], &v["ignored"]), (0, &Value::from(510), &Value::from(1)));
}

#[test]
fn frames_of_the_wrong_api_and_garbage_are_errors() {
    let dir = tmpdir("errors");
    let path = dir.join("mixed.capture");
    let v1 = r#"[0,{"as":[["1.0","1.0","1.0"]],"bs":[]},"book-10","XBT/USD"]"#;
    std::fs::write(&path, format!("{v1}\nnot json\n{{\"channel\":\"heartbeat\"}}\n")).unwrap();
    let (code, v) = replay(&["--exchange", "kraken", path.to_str().unwrap()]);
    assert_eq!(
        (code, &v["errors"], &v["ignored"], &v["book_messages"]),
        (1, &Value::from(2), &Value::from(1), &Value::from(0))
    );
    let (code, v) = replay(&[path.to_str().unwrap()]);
    assert_eq!((code, &v["errors"], &v["book_messages"]), (1, &Value::from(1), &Value::from(1)));
    assert_eq!(v["books"][0]["state"], "unverified");
}

#[test]
fn bad_arguments_exit_with_2() {
    assert_eq!(exit_code(&["replay", "--depth", "7", "x"]), 2);
    assert_eq!(exit_code(&["replay", "--exchange", "bybit", "x"]), 2);
    assert_eq!(exit_code(&["replay", "--precision", "BTC/USD=1", "x"]), 2);
    assert_eq!(exit_code(&["replay", "/nonexistent/capture"]), 2);
    assert_eq!(exit_code(&["replay"]), 2);
    assert_eq!(exit_code(&["frobnicate"]), 2);
}
