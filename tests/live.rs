//! `plumb demo`, `plumb watch` and `plumb record` as a user runs them: the real binary, against
//! the simulated exchange on 127.0.0.1 (its own, for the demo; one in this process otherwise).

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::process::{Command, Stdio};
use std::time::Duration;

use plumb_sim::{Exchange, ExchangeConfig, Fault};
use serde_json::Value;

fn plumb(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plumb")).args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    (out.status.code().unwrap(), lines, stderr)
}

/// Kraken's checksum of a printed book, computed from its exact strings: the point removed,
/// leading zeros stripped, asks then bids, ten each.
fn checksum_of(line: &Value) -> u32 {
    let mut text = String::new();
    for side in ["asks", "bids"] {
        for level in line[side].as_array().unwrap().iter().take(10) {
            for v in level.as_array().unwrap() {
                let s = v.as_str().unwrap().replace('.', "");
                text.push_str(s.trim_start_matches('0'));
            }
        }
    }
    crc32fast::hash(text.as_bytes())
}

/// Every `valid` Kraken book line is a true book: its printed levels hash to its checksum, which
/// the exchange sent. Returns how many were checked.
fn check_valid_lines(lines: &[Value]) -> usize {
    let mut n = 0;
    for l in lines.iter().filter(|l| l["event"] == "book" && l["exchange"] == "kraken") {
        let state = l["state"].as_str().unwrap();
        assert!(["valid", "resyncing", "stale", "invalid", "unverified"].contains(&state), "{l}");
        if state == "valid" {
            assert_eq!(u64::from(checksum_of(l)), l["checksum"].as_u64().unwrap(), "{l}");
            n += 1;
        }
    }
    n
}

/// Every `valid` book line of a sequenced exchange (Bybit, OKX) names the id it is proved by, has
/// no checksum, and is a sane book (each side strictly ordered, not crossed). Returns how many
/// were checked; that they are exactly the exchange's book is `plumb-feed`'s session and loopback
/// tests' to show.
fn check_valid_sequenced_lines(lines: &[Value], exchange: &str) -> usize {
    let mut n = 0;
    let value = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
    for l in lines.iter().filter(|l| l["event"] == "book" && l["exchange"] == exchange) {
        if l["state"] != "valid" {
            continue;
        }
        assert!(l["sequence"].as_u64().is_some(), "{l}");
        assert!(l["checksum"].is_null(), "{l}");
        let prices = |side: &str| -> Vec<f64> { l[side].as_array().unwrap().iter().map(|lv| value(&lv[0])).collect() };
        let (bids, asks) = (prices("bids"), prices("asks"));
        assert!(bids.windows(2).all(|w| w[0] > w[1]) && asks.windows(2).all(|w| w[0] < w[1]), "{l}");
        assert!(bids[0] < asks[0], "{l}");
        n += 1;
    }
    n
}

#[test]
fn demo_heals_every_fault_and_says_so() {
    let (code, lines, stderr) = plumb(&["demo", "--duration", "7", "--faults", "many", "--rate", "300", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    let injected = summary["faults_injected"].as_u64().unwrap();
    assert!(injected >= 2, "{summary}");
    assert_eq!(summary["faults_recovered"].as_u64().unwrap(), injected);
    // The faults are random: even a run of silences leaves well over 100 verified messages.
    assert!(summary["checksums_verified"].as_u64().unwrap() > 100, "{summary}");
    let books = summary["books"].as_array().unwrap();
    assert_eq!(books.iter().filter(|b| b["exchange"] == "kraken").count(), 4);
    assert_eq!(books.iter().filter(|b| b["exchange"] == "bybit").count(), 3);
    assert_eq!(books.iter().filter(|b| b["exchange"] == "okx").count(), 3);
    assert_eq!(books.iter().filter(|b| b["exchange"] == "coinbase").count(), 3);
    assert_eq!(books.iter().filter(|b| b["exchange"] == "binance").count(), 3);
    assert!(books.iter().all(|b| b["state"] == "valid"), "{summary}");
    assert!(check_valid_lines(&lines) > 100);
    assert!(summary["sequence_verified"].as_u64().unwrap() > 100, "{summary}");
    assert!(check_valid_sequenced_lines(&lines, "bybit") > 100);
    assert!(check_valid_sequenced_lines(&lines, "okx") > 100);
    assert!(check_valid_sequenced_lines(&lines, "coinbase") > 100);
}

#[test]
fn watch_json_reports_a_resync_and_prints_only_true_valid_books() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["watch", "kraken", "BTC/USD", "ETH/USD", "--url", sim.url(), "--json", "--duration", "3.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..8 {
        pause();
    }
    sim.inject(Fault::CorruptChecksum(Some("ETH/USD".into())));
    let out = child.wait_with_output().unwrap();
    let (code, stderr) = (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap());
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["event"], "connected");
    let resyncs: Vec<&Value> = lines.iter().filter(|l| l["event"] == "resync").collect();
    assert_eq!(resyncs.len(), 1, "{resyncs:?}");
    assert_eq!(resyncs[0]["symbol"], "ETH/USD");
    assert_eq!(resyncs[0]["reason"], "checksum_mismatch");
    let resynced = lines.iter().position(|l| l["event"] == "resynced" && l["symbol"] == "ETH/USD");
    assert!(resynced.is_some(), "ETH/USD ended its resync");
    assert!(check_valid_lines(&lines) > 100);
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["checksum_mismatches"], 1);
    assert_eq!(summary["resyncs"], 1);
}

#[test]
fn record_then_replay_verifies_every_checksum() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("plumb-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sim.capture");
    let (code, _, stderr) = plumb(&[
        "record",
        "kraken",
        "BTC/USD",
        "SHIB/USD",
        "PEPE/USD",
        "--url",
        sim.url(),
        "--out",
        file.to_str().unwrap(),
        "--duration",
        "2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let capture = std::fs::read_to_string(&file).unwrap();
    assert!(capture.lines().all(|l| l.split_once('\t').is_some_and(|(ns, _)| ns.parse::<u64>().is_ok())));
    let (code, lines, stderr) = plumb(&["replay", "--json", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let s = lines.last().unwrap();
    assert_eq!(s["checksum_mismatches"], 0, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert!(s["checksums_verified"].as_u64().unwrap() > 100, "{s}");
    assert_eq!(s["books"].as_array().unwrap().len(), 3);
    assert!(s["books"].as_array().unwrap().iter().all(|b| b["state"] == "valid"), "{s}");
}

#[test]
fn watch_bybit_reports_a_sequence_gap_and_heals() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let url = sim.bybit_url("spot");
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["watch", "bybit", "BTCUSDT", "ETHUSDT", "--url", &url, "--json", "--duration", "3.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..8 {
        pause();
    }
    sim.inject(Fault::DropUpdate(Some("ETHUSDT".into())));
    let out = child.wait_with_output().unwrap();
    let (code, stderr) = (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap());
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(code, 0, "{stderr}");
    let resyncs: Vec<&Value> = lines.iter().filter(|l| l["event"] == "resync").collect();
    assert_eq!(resyncs.len(), 1, "{resyncs:?}");
    assert_eq!(resyncs[0]["symbol"], "ETHUSDT");
    assert_eq!(resyncs[0]["reason"], "sequence_gap");
    assert!(lines.iter().any(|l| l["event"] == "resynced" && l["symbol"] == "ETHUSDT"));
    assert!(check_valid_sequenced_lines(&lines, "bybit") > 100);
    let summary = lines.last().unwrap();
    assert_eq!(summary["sequence_gaps"], 1, "{summary}");
    assert_eq!(summary["resyncs"], 1, "{summary}");
    // The simulated exchange says which faults it applied.
    let applied = sim.applied();
    assert!(
        matches!(&applied[..], [a] if a.fault.name() == "drop_update" && a.symbol.as_deref() == Some("ETHUSDT")),
        "{applied:?}"
    );
}

#[test]
fn record_then_replay_bybit_proves_every_book_by_sequence() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("plumb-live-bybit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bybit.capture");
    let url = sim.bybit_url("spot");
    let (code, _, stderr) = plumb(&[
        "record",
        "bybit",
        "BTCUSDT",
        "PEPEUSDT",
        "--url",
        &url,
        "--out",
        file.to_str().unwrap(),
        "--duration",
        "2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    // Detected from the frames, and named.
    for args in [vec!["replay", "--json"], vec!["replay", "--exchange", "bybit", "--json"]] {
        let mut args = args;
        args.push(file.to_str().unwrap());
        let (code, lines, stderr) = plumb(&args);
        assert_eq!(code, 0, "{stderr}");
        let s = lines.last().unwrap();
        assert_eq!(s["exchange"], "bybit", "{s}");
        assert_eq!((s["errors"].as_u64(), s["sequence_gaps"].as_u64()), (Some(0), Some(0)), "{s}");
        // Two seconds hold about 106 messages on an idle machine and 100 were seen under CI's
        // load: the count only shows that many were proved, each one of them.
        assert!(s["sequence_verified"].as_u64().unwrap() > 50, "{s}");
        assert_eq!(s["sequence_verified"], s["book_messages"], "{s}");
        let books = s["books"].as_array().unwrap();
        assert_eq!(books.len(), 2);
        assert!(
            books.iter().all(|b| b["state"] == "valid" && b["checksum"].is_null() && b["sequence"].is_u64()),
            "{s}"
        );
    }
}

#[test]
fn watch_okx_reports_a_broken_link_on_one_instrument_and_heals_it() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["watch", "okx", "BTC-USDT", "BTC-USDT-SWAP", "--url", &sim.okx_url(), "--json", "--duration", "3.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..8 {
        pause();
    }
    sim.inject(Fault::DropUpdate(Some("BTC-USDT-SWAP".into())));
    let out = child.wait_with_output().unwrap();
    let (code, stderr) = (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap());
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(code, 0, "{stderr}");
    let resyncs: Vec<&Value> = lines.iter().filter(|l| l["event"] == "resync").collect();
    assert_eq!(resyncs.len(), 1, "{resyncs:?}");
    assert_eq!(resyncs[0]["symbol"], "BTC-USDT-SWAP");
    assert_eq!(resyncs[0]["reason"], "sequence_gap");
    // From the gap until the fresh snapshot, that instrument's lines never say valid.
    let gap = lines.iter().position(|l| l["event"] == "resync").unwrap();
    let healed = lines.iter().position(|l| l["event"] == "resynced" && l["symbol"] == "BTC-USDT-SWAP").unwrap();
    assert!(
        lines[gap..healed]
            .iter()
            .all(|l| l["symbol"] != "BTC-USDT-SWAP" || l["event"] != "book" || l["state"] != "valid"),
        "a book read valid between its gap and its snapshot: {:#?}",
        &lines[gap..=healed]
    );
    assert!(check_valid_sequenced_lines(&lines, "okx") > 100);
    let summary = lines.last().unwrap();
    assert_eq!(summary["sequence_gaps"], 1, "{summary}");
    assert_eq!(summary["resyncs"], 1, "{summary}");
    // The simulated exchange says which faults it applied.
    let applied = sim.applied();
    assert!(
        matches!(&applied[..], [a] if a.fault.name() == "drop_update" && a.symbol.as_deref() == Some("BTC-USDT-SWAP")),
        "{applied:?}"
    );
}

#[test]
fn record_then_replay_okx_proves_books_by_links_and_by_legacy_checksums() {
    for checksums in [false, true] {
        let sim = Exchange::spawn(ExchangeConfig { okx_checksums: checksums, ..ExchangeConfig::default() }).unwrap();
        let dir = std::env::temp_dir().join(format!("plumb-live-okx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("okx-{checksums}.capture"));
        let (code, _, stderr) = plumb(&[
            "record",
            "okx",
            "BTC-USDT",
            "PEPE-USDT",
            "--url",
            &sim.okx_url(),
            "--out",
            file.to_str().unwrap(),
            "--duration",
            "2",
        ]);
        assert_eq!(code, 0, "{stderr}");
        for args in [vec!["replay", "--json"], vec!["replay", "--exchange", "okx", "--json"]] {
            let mut args = args;
            args.push(file.to_str().unwrap());
            let (code, lines, stderr) = plumb(&args);
            assert_eq!(code, 0, "{stderr}");
            let s = lines.last().unwrap();
            assert_eq!(s["exchange"], "okx", "{s}");
            assert_eq!((s["errors"].as_u64(), s["sequence_gaps"].as_u64()), (Some(0), Some(0)), "{s}");
            assert_eq!(s["checksum_mismatches"], 0, "{s}");
            let books = s["books"].as_array().unwrap();
            assert_eq!(books.len(), 2);
            assert!(books.iter().all(|b| b["state"] == "valid" && b["sequence"].is_u64()), "{s}");
            if checksums {
                assert!(s["checksums_verified"].as_u64().unwrap() > 100, "{s}");
                assert!(books.iter().all(|b| b["checksum"].is_u64()), "{s}");
            } else {
                assert_eq!(s["checksums_verified"], 0, "{s}");
                assert!(s["sequence_verified"].as_u64().unwrap() > 100, "{s}");
                assert!(books.iter().all(|b| b["checksum"].is_null()), "{s}");
            }
        }
    }
}

/// A message lost right before a heartbeat: every product of the connection resyncs, and none
/// reads valid from the gap until its own fresh snapshot.
#[test]
fn watch_coinbase_reports_a_gap_on_the_connection_and_heals_every_product() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let products = ["BTC-USD", "ETH-USD", "DOGE-USD"];
    let mut args = vec!["watch", "coinbase"];
    args.extend(products);
    let url = sim.coinbase_url();
    args.extend(["--url", &url, "--json", "--duration", "4"]);
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..8 {
        pause();
    }
    sim.inject(Fault::HeartbeatGap);
    let out = child.wait_with_output().unwrap();
    let (code, stderr) = (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap());
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(code, 0, "{stderr}");
    let resyncs: Vec<&Value> = lines.iter().filter(|l| l["event"] == "resync").collect();
    assert_eq!(resyncs.len(), 3, "{resyncs:?}");
    assert!(resyncs.iter().all(|r| r["reason"] == "sequence_gap"), "{resyncs:?}");
    for p in products {
        let gap = lines.iter().position(|l| l["event"] == "resync" && l["symbol"] == p).unwrap();
        let healed = lines.iter().position(|l| l["event"] == "resynced" && l["symbol"] == p).unwrap();
        let first_gap = lines.iter().position(|l| l["event"] == "resync").unwrap();
        assert!(gap - first_gap <= 2, "all three at once");
        assert!(
            lines[gap..healed].iter().all(|l| l["symbol"] != p || l["event"] != "book" || l["state"] != "valid"),
            "{p} read valid between the gap and its snapshot"
        );
    }
    assert!(check_valid_sequenced_lines(&lines, "coinbase") > 100);
    let summary = lines.last().unwrap();
    assert_eq!((summary["sequence_gaps"].as_u64(), summary["resyncs"].as_u64()), (Some(1), Some(3)), "{summary}");
    let applied = sim.applied();
    assert!(matches!(&applied[..], [a] if a.fault.name() == "heartbeat_gap"), "{applied:?}");
}

/// A recording with a lost message in it replays as it was kept live: one gap, every book healed
/// by its next snapshot, heartbeats and acknowledgements counted as ignored.
#[test]
fn record_then_replay_coinbase_finds_the_gap_and_the_healing() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("plumb-live-coinbase-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("coinbase.capture");
    let url = sim.coinbase_url();
    let path = file.to_str().unwrap().to_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["record", "coinbase", "BTC-USD", "SOL-USD", "--url", &url, "--out", &path, "--duration", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..6 {
        pause();
    }
    sim.inject(Fault::DropUpdate(Some("SOL-USD".into())));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for args in [vec!["replay", "--json"], vec!["replay", "--exchange", "coinbase", "--json"]] {
        let mut args = args;
        args.push(&path);
        let (code, lines, stderr) = plumb(&args);
        assert_eq!(code, 0, "{stderr}");
        let s = lines.last().unwrap();
        assert_eq!(s["exchange"], "coinbase", "{s}");
        assert_eq!((s["errors"].as_u64(), s["sequence_gaps"].as_u64()), (Some(0), Some(1)), "{s}");
        assert!(s["sequence_verified"].as_u64().unwrap() > 50, "{s}");
        assert!(s["ignored"].as_u64().unwrap() >= 4, "heartbeats and acknowledgements: {s}");
        let books = s["books"].as_array().unwrap();
        assert_eq!(books.len(), 2);
        assert!(books.iter().all(|b| b["state"] == "valid" && b["sequence"].is_u64()), "{s}");
    }
}

/// A lost event on one symbol: that book alone resyncs by a new REST snapshot (fetched from the
/// simulated venue's HTTP endpoint), with no valid line between its gap and its bridge; then the
/// same session recorded, `GET` lines and all, replays with the gap and the healing.
#[test]
fn watch_and_record_binance_bridge_rest_snapshots_and_heal_a_lost_event() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let base = sim.binance_base();
    let rest = sim.rest_url();
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args([
            "watch",
            "binance",
            "BTCUSDT",
            "ETHUSDT",
            "--url",
            &base,
            "--rest-url",
            &rest,
            "--json",
            "--duration",
            "3.5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..8 {
        pause();
    }
    sim.inject(Fault::DropUpdate(Some("ETHUSDT".into())));
    let out = child.wait_with_output().unwrap();
    let (code, stderr) = (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap());
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(code, 0, "{stderr}");
    let resyncs: Vec<&Value> = lines.iter().filter(|l| l["event"] == "resync").collect();
    assert_eq!(resyncs.len(), 1, "{resyncs:?}");
    assert_eq!((resyncs[0]["symbol"].as_str(), resyncs[0]["reason"].as_str()), (Some("ETHUSDT"), Some("sequence_gap")));
    let gap = lines.iter().position(|l| l["event"] == "resync").unwrap();
    let healed: Vec<usize> =
        (0..lines.len()).filter(|&k| lines[k]["event"] == "resynced" && lines[k]["symbol"] == "ETHUSDT").collect();
    assert_eq!(healed.len(), 1, "one resync, one healing: {healed:?}");
    let healed = healed[0];
    assert!(healed > gap, "healed at line {healed} before the gap at line {gap}");
    assert!(
        lines[gap..healed].iter().all(|l| l["symbol"] != "ETHUSDT" || l["event"] != "book" || l["state"] != "valid")
    );
    assert!(check_valid_sequenced_lines(&lines, "binance") > 50);
    let summary = lines.last().unwrap();
    assert!(summary["fetches"].as_u64().unwrap() >= 3, "{summary}");

    let dir = std::env::temp_dir().join(format!("plumb-live-binance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("binance.capture");
    let path = file.to_str().unwrap().to_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args([
            "record",
            "binance",
            "BTCUSDT",
            "PEPEUSDT",
            "--url",
            &base,
            "--rest-url",
            &rest,
            "--out",
            &path,
            "--duration",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..6 {
        pause();
    }
    sim.inject(Fault::DropUpdate(Some("PEPEUSDT".into())));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let capture = std::fs::read_to_string(&file).unwrap();
    assert!(capture.lines().filter(|l| l.contains("\tGET ")).count() >= 3);
    for args in [vec!["replay", "--json"], vec!["replay", "--exchange", "binance", "--json"]] {
        let mut args = args;
        args.push(&path);
        let (code, lines, stderr) = plumb(&args);
        assert_eq!(code, 0, "{stderr}");
        let s = lines.last().unwrap();
        assert_eq!(s["exchange"], "binance", "{s}");
        assert_eq!((s["errors"].as_u64(), s["sequence_gaps"].as_u64()), (Some(0), Some(1)), "{s}");
        assert!(s["sequence_verified"].as_u64().unwrap() > 20, "{s}");
        let books = s["books"].as_array().unwrap();
        assert_eq!(books.len(), 2);
        assert!(books.iter().all(|b| b["state"] == "valid" && b["sequence"].is_u64()), "{s}");
    }
}

#[test]
fn live_commands_refuse_what_they_cannot_do() {
    let (code, _, _) = plumb(&["watch", "bitfinex", "tBTCUSD", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["watch", "coinbase", "BTC-USD", "--market", "spot", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["watch", "okx", "BTC-USDT", "--depth", "50", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["watch", "okx", "BTC-USDT", "--market", "spot", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["demo", "--okx-symbols", "BTCUSDT", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["watch", "bybit", "BTCUSDT", "--depth", "500", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["watch", "kraken", "BTC/USD", "--market", "linear", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["watch", "kraken", "BTC/USD", "--depth", "7", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["demo", "--symbols", "NOPE/USD", "--duration", "1"]);
    assert_eq!(code, 2);
}

#[expect(clippy::disallowed_methods, reason = "the test paces itself against a child process")]
fn pause() {
    std::thread::sleep(Duration::from_millis(200));
}

/// An HTTP GET of the Prometheus endpoint, retried until the child serves it.
fn scrape(addr: &str) -> String {
    use std::io::{Read as _, Write as _};
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            if body.contains("plumb_checksums_verified_total") {
                return body;
            }
        }
        pause();
    }
    panic!("no metrics on {addr}");
}

#[test]
fn demo_serves_prometheus_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["demo", "--duration", "4", "--faults", "off", "--json", "--metrics-addr", &addr])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a second scrape with verified checksums, so that the counter is seen moving.
    let first = scrape(&addr);
    let count = |body: &str| -> u64 {
        body.lines()
            .find(|l| l.starts_with(r#"plumb_checksums_verified_total{exchange="kraken"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    pause();
    pause();
    let second = scrape(&addr);
    assert!(count(&second) > count(&first), "{second}");
    assert!(second.contains("plumb_latency_seconds_bucket"), "{second}");
    assert!(second.contains(r#"plumb_resyncs_total{exchange="kraken",reason="checksum_mismatch"}"#), "{second}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn record_okx_writes_the_rest_snapshots_it_fetched_and_replay_bridges_them() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("plumb-live-okx-rest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("okx-rest.capture");
    let rest = sim.okx_rest_url();
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["record", "okx", "BTC-USDT", "PEPE-USDT", "--url", &sim.okx_url(), "--rest-url", &rest])
        .args(["--out", file.to_str().unwrap(), "--duration", "13"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..8 {
        pause();
    }
    // A lost update, and the resubscribe after it acknowledged without a snapshot: after the
    // snapshot timeout (10 s) the feed fetches one by REST.
    sim.inject(Fault::NoSnapshot(Some("BTC-USDT".into())));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let capture = std::fs::read_to_string(&file).unwrap();
    let get = format!("\tGET {rest}/api/v5/market/books?instId=BTC-USDT&sz=400\t{{\"code\":\"0\"");
    assert!(capture.lines().any(|l| l.contains(&get)), "no REST line in the capture");
    let (code, lines, stderr) = plumb(&["replay", "--exchange", "okx", "--json", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let s = lines.last().unwrap();
    assert_eq!((s["errors"].as_u64(), s["sequence_gaps"].as_u64()), (Some(0), Some(1)), "{s}");
    let books = s["books"].as_array().unwrap();
    assert!(books.iter().all(|b| b["state"] == "valid" && b["sequence"].is_u64()), "{s}");
}

#[test]
fn watch_json_says_why_a_connection_dropped() {
    let sim = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["watch", "kraken", "BTC/USD", "--url", sim.url(), "--json", "--duration", "2.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..5 {
        pause();
    }
    sim.inject(Fault::Close);
    let out = child.wait_with_output().unwrap();
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let dropped: Vec<&Value> = lines.iter().filter(|l| l["event"] == "disconnected").collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    // The transport's own words, not just a reason code.
    assert_eq!(dropped[0]["reason"], "transport_error", "{}", dropped[0]);
    assert!(dropped[0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", dropped[0]);
}

/// With nothing to connect to: `record` says so as it happens (naming the host and when it will
/// try again) and, having recorded nothing, exits non-zero; `watch` counts the failed attempts.
#[test]
fn a_feed_with_no_server_says_so_and_counts_it() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{port}/v2");
    let file = std::env::temp_dir().join(format!("plumb-nothing-{}.capture", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["record", "kraken", "BTC/USD", "--url", &url, "--out", file.to_str().unwrap(), "--duration", "1.5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("retrying in"), "{stderr}");
    assert!(stderr.contains("recorded nothing"), "{stderr}");
    let (code, lines, _) = plumb(&["watch", "kraken", "BTC/USD", "--url", &url, "--json", "--duration", "1.5"]);
    assert_eq!(code, 1, "no book ended valid");
    let s = lines.last().unwrap();
    assert!(s["connect_failures"].as_u64().unwrap() >= 1, "{s}");
}

/// `plumb replay` on what is not a capture says so in sentences: the first reasons with their
/// line numbers, a hint, an empty input that verified nothing exits non-zero, and a line longer
/// than any frame is skipped without being held.
#[test]
fn replay_explains_what_it_could_not_read() {
    let dir = std::env::temp_dir().join(format!("plumb-replay-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.capture");
    std::fs::write(&empty, b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_plumb")).args(["replay", empty.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was verified"));

    let garbage = dir.join("garbage.capture");
    let mut bytes: Vec<u8> = std::iter::repeat_n(b'x', 17 << 20).collect();
    bytes.push(b'\n');
    bytes.extend((0..20_000u32).map(|k| u8::try_from(k.wrapping_mul(2_654_435_761) >> 24).unwrap()));
    std::fs::write(&garbage, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_plumb")).args(["replay", garbage.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("first errors:") && text.contains("line 1:"), "{text}");
    assert!(text.contains("longer than"), "{text}");
    assert!(text.contains("is this a capture"), "{text}");
    let (_, lines, _) = plumb(&["replay", "--json", garbage.to_str().unwrap()]);
    let s = lines.last().unwrap();
    assert!(!s["first_errors"].as_array().unwrap().is_empty(), "{s}");
}

/// `plumb watch` over several exchanges at once: `EXCHANGE:SYMBOL` books, `EXCHANGE=` options,
/// one JSON line format for all with each line tagged with its exchange; a fault on one exchange
/// resyncs that exchange's book alone.
#[test]
fn watch_several_exchanges_at_once_tags_every_line() {
    let kraken = Exchange::spawn(ExchangeConfig::default()).unwrap();
    let others = Exchange::spawn(ExchangeConfig { seed: 5, ..ExchangeConfig::default() }).unwrap();
    let args = [
        "watch".to_owned(),
        "kraken:BTC/USD".to_owned(),
        "bybit:BTCUSDT".to_owned(),
        "okx:BTC-USDT".to_owned(),
        "binance:ETHUSDT".to_owned(),
        format!("--url=kraken={}", kraken.url()),
        format!("--url=bybit={}", others.bybit_url("spot")),
        format!("--url=okx={}", others.okx_url()),
        format!("--rest-url=okx={}", others.okx_rest_url()),
        format!("--url=binance={}", others.binance_base()),
        format!("--rest-url=binance={}", others.rest_url()),
        "--json".to_owned(),
        "--duration".to_owned(),
        "4".to_owned(),
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..8 {
        pause();
    }
    kraken.inject(Fault::CorruptChecksum(Some("BTC/USD".into())));
    let out = child.wait_with_output().unwrap();
    let (code, stderr) = (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap());
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(code, 0, "{stderr}");
    assert!(lines.iter().all(|l| l["exchange"].is_string()), "a line without its exchange");
    for (exchange, symbol) in [("kraken", "BTC/USD"), ("bybit", "BTCUSDT"), ("okx", "BTC-USDT"), ("binance", "ETHUSDT")]
    {
        let valid = lines
            .iter()
            .filter(|l| {
                l["event"] == "book" && l["exchange"] == exchange && l["symbol"] == symbol && l["state"] == "valid"
            })
            .count();
        assert!(valid > 10, "{exchange} {symbol}: {valid} valid lines");
    }
    assert!(check_valid_lines(&lines) > 10);
    assert!(check_valid_sequenced_lines(&lines, "okx") > 10);
    let resyncs: Vec<&Value> = lines.iter().filter(|l| l["event"] == "resync").collect();
    assert!(!resyncs.is_empty() && resyncs.iter().all(|r| r["exchange"] == "kraken"), "{resyncs:?}");
    let summary = lines.last().unwrap();
    let books = summary["books"].as_array().unwrap();
    assert_eq!(books.len(), 4);
    assert!(books.iter().all(|b| b["state"] == "valid" && b["exchange"].is_string()), "{summary}");

    // Options that cannot be placed are refused.
    let (code, _, _) =
        plumb(&["watch", "kraken:BTC/USD", "okx:BTC-USDT", "--url", "ws://127.0.0.1:9", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["watch", "BTC/USD", "--duration", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = plumb(&["watch", "kraken:BTC/USD", "--url", "okx=ws://127.0.0.1:9", "--duration", "1"]);
    assert_eq!(code, 2);
}

/// The demo's plain view (not a terminal) fits the width it is given: columns are dropped, not
/// wrapped, and the legend is there.
#[test]
fn demo_view_fits_the_terminal_width() {
    for width in [80usize, 60] {
        let out = Command::new(env!("CARGO_BIN_EXE_plumb"))
            .args(["demo", "--duration", "2.5", "--faults", "off"])
            .env("COLUMNS", width.to_string())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let venues = ["kraken ", "bybit ", "okx ", "coinbase ", "binance ", "venue ", "best ", "valid:"];
        let table: Vec<&str> = text.lines().filter(|l| venues.iter().any(|v| l.starts_with(v))).collect();
        assert!(table.len() >= 16 + 2, "{text}");
        for l in &table {
            assert!(l.chars().count() <= width, "{width}: {l:?}");
        }
        assert!(text.contains("resyncing:") && text.contains("stale:"), "{text}");
        assert!(text.contains("every book of every venue ended valid"), "{text}");
    }
}
