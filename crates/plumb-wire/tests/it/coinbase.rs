//! Coinbase Advanced Trade: the documented messages (`../shared/vectors/protocols/coinbase.jsonl`),
//! the errors malformed frames must produce, and a property test against a `serde_json` reference.

use plumb_wire::coinbase::{Coinbase, Message};
use plumb_wire::testing::{canonical_coinbase, check_parse_coinbase};
use plumb_wire::{ErrorKind, Kind, Parser, Path, Sequence};
use proptest::prelude::*;
use serde_json::Value;

fn check(frame: &str) -> String {
    let mut p = Parser::new();
    let got = canonical_coinbase(&p.parse_coinbase(frame.as_bytes()).unwrap());
    let simd = canonical_coinbase(&p.parse_with::<Coinbase>(frame.as_bytes(), Some(Path::Simd)).unwrap().0);
    assert_eq!(got, simd, "simd-json path disagrees on {frame}");
    check_parse_coinbase(frame.as_bytes());
    got
}

fn err(frame: &str) -> ErrorKind {
    Parser::new().parse_coinbase(frame.as_bytes()).unwrap_err().kind
}

/// The documented level2 snapshot (`coinbase.jsonl`, kind `level2_snapshot`).
const SNAPSHOT: &str = r#"{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,"events":[{"type":"snapshot","product_id":"BTC-USD","updates":[{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":"0.06317902"},{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.3","new_quantity":"0.02"}]}]}"#;

#[test]
fn documented_snapshot_and_heartbeat() {
    // The vector file's own copy is the one parsed here.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors/protocols/coinbase.jsonl");
    let lines = std::fs::read_to_string(path).unwrap();
    let doc = |kind: &str| -> String {
        let l = lines.lines().find(|l| l.contains(&format!(r#""kind": "{kind}""#))).unwrap();
        serde_json::to_string(&serde_json::from_str::<Value>(l).unwrap()["message"]).unwrap()
    };
    let snapshot = doc("level2_snapshot");
    let mut p = Parser::new();
    let Message::Book(b) = p.parse_coinbase(snapshot.as_bytes()).unwrap() else { panic!() };
    assert_eq!(b.sequence, 0);
    let f = b.frames().next().unwrap();
    assert_eq!((f.symbol, f.kind), ("BTC-USD", Kind::Snapshot));
    assert_eq!(f.sequence, Some(Sequence { first: 0, last: 0, prev: None }));
    let bids: Vec<(&str, &str)> = f.bids.map(|l| (l.price, l.qty)).collect();
    assert_eq!(bids, [("21921.73", "0.06317902"), ("21921.3", "0.02")]);
    assert_eq!(f.asks.len(), 0);
    assert_eq!(f.time.unix_ns(), Some(1_675_974_770_714_964_855));
    check(&snapshot);
    assert_eq!(check(SNAPSHOT), check(&snapshot));

    let hb = doc("heartbeats_message");
    assert!(matches!(
        Parser::new().parse_coinbase(hb.as_bytes()).unwrap(),
        Message::Heartbeat { sequence: 0, counter: Some(3049) }
    ));
    check(&hb);
}

#[test]
fn interleaved_sides_several_products_and_the_other_messages() {
    let f = r#"{"sequence_num":12,"events":[{"updates":[{"side":"offer","price_level":"2","new_quantity":"1"},{"side":"bid","price_level":"1","new_quantity":"3"},{"side":"offer","price_level":"2.5","new_quantity":"0"}],"type":"update","product_id":"ETH-USD"},{"type":"snapshot","product_id":"BTC-USD","updates":[]}],"channel":"l2_data","timestamp":"2023-02-09T20:32:50Z"}"#;
    let mut p = Parser::new();
    let Message::Book(b) = p.parse_coinbase(f.as_bytes()).unwrap() else { panic!() };
    let frames: Vec<_> = b.frames().collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(
        (frames[0].symbol, frames[0].kind, frames[1].symbol, frames[1].kind),
        ("ETH-USD", Kind::Update, "BTC-USD", Kind::Snapshot)
    );
    let asks: Vec<(&str, &str)> = frames[0].asks.clone().map(|l| (l.price, l.qty)).collect();
    assert_eq!(asks, [("2", "1"), ("2.5", "0")]);
    assert_eq!(frames[0].bids.clone().map(|l| l.price).collect::<Vec<_>>(), ["1"]);
    assert_eq!(frames[1].sequence.map(|s| s.last), Some(12));
    check(f);

    let subs = r#"{"channel":"subscriptions","client_id":"","timestamp":"2023-02-09T20:32:50Z","sequence_num":1,"events":[{"subscriptions":{"level2":["BTC-USD","ETH-USD"],"heartbeats":["heartbeats"]}}]}"#;
    let mut q = Parser::new();
    let m = q.parse_coinbase(subs.as_bytes()).unwrap();
    let Message::Subscriptions { sequence: 1, level2 } = m else { panic!("{m:?}") };
    assert_eq!(level2.iter().collect::<Vec<_>>(), ["BTC-USD", "ETH-USD"]);
    check(subs);
    let e = r#"{"type":"error","message":"failure to subscribe"}"#;
    assert!(matches!(
        Parser::new().parse_coinbase(e.as_bytes()).unwrap(),
        Message::Error { message: Some("failure to subscribe"), reason: None }
    ));
    let bad = r#"{"type":"error","message":"Failed to subscribe","reason":"BTC-XYZ is not a valid product"}"#;
    assert!(matches!(
        Parser::new().parse_coinbase(bad.as_bytes()).unwrap(),
        Message::Error { message: Some("Failed to subscribe"), reason: Some("BTC-XYZ is not a valid product") }
    ));
    check(bad);
    let other = r#"{"channel":"ticker","sequence_num":9,"events":[]}"#;
    assert!(matches!(
        Parser::new().parse_coinbase(other.as_bytes()).unwrap(),
        Message::Other { channel: Some("ticker"), sequence: Some(9) }
    ));
    check(e);
    check(other);
}

#[test]
fn typed_errors() {
    // No counter: a book that cannot be placed in the connection's order.
    assert_eq!(err(r#"{"channel":"l2_data","events":[]}"#), ErrorKind::MissingField);
    // "ask" is a wrong fixture seen in the wild: Coinbase says "offer".
    assert_eq!(
        err(
            r#"{"channel":"l2_data","sequence_num":1,"events":[{"type":"update","product_id":"X","updates":[{"side":"ask","price_level":"1","new_quantity":"1"}]}]}"#
        ),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        err(
            r#"{"channel":"l2_data","sequence_num":1,"events":[{"type":"update","product_id":"X","updates":[{"side":"bid","new_quantity":"1"}]}]}"#
        ),
        ErrorKind::MissingField
    );
    assert_eq!(
        err(r#"{"channel":"l2_data","sequence_num":1,"events":[{"type":"patch","product_id":"X","updates":[]}]}"#),
        ErrorKind::InvalidValue
    );
    assert_eq!(err(r#"{"channel":"l2_data","sequence_num":1,"events":{}}"#), ErrorKind::WrongType);
    assert_eq!(err(r#"{"channel":"l2_data","sequence_num":-1,"events":[]}"#), ErrorKind::InvalidValue);
    assert_eq!(err(r#"{"channel":"l2_data","sequence_num":1,"events":[{"type""#), ErrorKind::UnexpectedEnd);
    assert_eq!(err(r#"{"client_id":""}"#), ErrorKind::UnknownMessage);
    assert_eq!(err("[1]"), ErrorKind::UnknownMessage);
}

/// The slow reference: `serde_json` over the documented shape.
fn reference(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let seq = v.get("sequence_num").and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok()))?;
    let mut s = format!("book seq={seq}");
    for e in v["events"].as_array()? {
        let kind = match e["type"].as_str()? {
            "snapshot" => "Snapshot",
            "update" => "Update",
            _ => return None,
        };
        let t = v.get("timestamp").and_then(Value::as_str);
        let time = t.map_or("None".to_owned(), |t| format!("Rfc3339({t:?})"));
        let seqs = format!("Some(Sequence {{ first: {seq}, last: {seq}, prev: None }})");
        s += &format!(" | {} {kind} seq={seqs} time={time} bids", e["product_id"].as_str()?);
        let ups = e["updates"].as_array()?;
        for want in ["bid", "offer"] {
            if want == "offer" {
                s += " asks";
            }
            for u in ups {
                let side = u["side"].as_str()?;
                if side != "bid" && side != "offer" {
                    return None;
                }
                if side == want {
                    s += &format!(" {}@{}", u["new_quantity"].as_str()?, u["price_level"].as_str()?);
                }
            }
        }
    }
    Some(s)
}

fn decimal() -> impl Strategy<Value = String> {
    (0u64..100_000, 0u32..100_000_000, 0usize..9)
        .prop_map(|(i, f, d)| if d == 0 { i.to_string() } else { format!("{i}.{}", &format!("{f:08}")[..d.min(8)]) })
}

prop_compose! {
    fn event()(product in "[A-Z]{2,4}-USD", snapshot in any::<bool>(),
               ups in proptest::collection::vec((any::<bool>(), decimal(), decimal(), any::<bool>()), 0..8),
               order in 0u8..3) -> String {
        let ups: Vec<String> = ups.iter().map(|(bid, p, q, t)| {
            let side = if *bid { "bid" } else { "offer" };
            let time = if *t { r#","event_time":"2023-02-09T20:32:50.714964855Z""# } else { "" };
            format!(r#"{{"side":"{side}"{time},"price_level":"{p}","new_quantity":"{q}"}}"#)
        }).collect();
        let mut fields = [
            format!(r#""type":"{}""#, if snapshot { "snapshot" } else { "update" }),
            format!(r#""product_id":"{product}""#),
            format!(r#""updates":[{}]"#, ups.join(",")),
        ];
        fields.rotate_left(usize::from(order));
        format!("{{{}}}", fields.join(","))
    }
}

prop_compose! {
    fn book()(events in proptest::collection::vec(event(), 0..4), seq in 0u64..u64::MAX, as_string in any::<bool>(),
              order in 0u8..4, ws in "[ \n\t]{0,2}") -> String {
        let seq = if as_string { format!(r#""{seq}""#) } else { seq.to_string() };
        let mut top = [
            r#""channel":"l2_data""#.to_owned(),
            r#""client_id":"""#.to_owned(),
            r#""timestamp":"2023-02-09T20:32:50.714964855Z""#.to_owned(),
            format!(r#""sequence_num":{seq}"#),
            format!(r#""events":[{}]"#, events.join(&format!(",{ws}"))),
        ];
        top.rotate_left(usize::from(order));
        format!("{ws}{{{}}}", top.join(","))
    }
}

prop_compose! {
    /// An `l2_data` message in the exact layout Coinbase sends.
    fn layout_book()(events in proptest::collection::vec(
                         (("[A-Z]{2,4}-USD", any::<bool>()),
                          proptest::collection::vec((any::<bool>(), decimal(), decimal()), 0..8)), 0..4),
                     seq in 0u64..10_000_000_000_000_000_000) -> String {
        let events: Vec<String> = events.iter().map(|((product, snapshot), ups)| {
            let ups: Vec<String> = ups.iter().map(|(bid, p, q)| format!(
                r#"{{"side":"{}","event_time":"2023-02-09T20:32:50.714964855Z","price_level":"{p}","new_quantity":"{q}"}}"#,
                if *bid { "bid" } else { "offer" }
            )).collect();
            let kind = if *snapshot { "snapshot" } else { "update" };
            format!(r#"{{"type":"{kind}","product_id":"{product}","updates":[{}]}}"#, ups.join(","))
        }).collect();
        format!(
            r#"{{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":{seq},"events":[{}]}}"#,
            events.join(",")
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 8 } else { 512 }, ..ProptestConfig::default() })]

    #[test]
    fn layout_matcher_agrees_with_serde_json(frame in layout_book()) {
        let mut p = Parser::new();
        let (m, path) = p.parse_with::<plumb_wire::coinbase::Coinbase>(frame.as_bytes(), None).unwrap();
        prop_assert_eq!(path, plumb_wire::Path::Layout, "{}", frame);
        prop_assert_eq!(Some(canonical_coinbase(&m)), reference(&frame), "{}", frame);
        check_parse_coinbase(frame.as_bytes());
    }

    #[test]
    fn parser_agrees_with_serde_json(frame in book()) {
        let mine = Parser::new().parse_coinbase(frame.as_bytes()).ok().map(|m| canonical_coinbase(&m));
        prop_assert_eq!(mine, reference(&frame), "{}", frame);
        check_parse_coinbase(frame.as_bytes());
    }

    #[test]
    fn mutated_frames_never_panic(frame in book(), edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)) {
        check_parse_coinbase(&crate::mutate(frame, &edits));
    }
}
