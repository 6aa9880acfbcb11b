//! Binance spot and USD-M: the documented messages (`../shared/vectors/protocols/binance.jsonl`,
//! comments stripped as the file gives them), combined streams, the REST snapshot, the errors
//! malformed frames must produce, and a property test against a `serde_json` reference.

use plumb_wire::binance::{Binance, Message};
use plumb_wire::testing::{canonical_binance, check_parse_binance};
use plumb_wire::{ErrorKind, Kind, Parser, Path};
use proptest::prelude::*;
use serde_json::Value;

fn check(frame: &str) -> String {
    let mut p = Parser::new();
    let got = canonical_binance(&p.parse_binance(frame.as_bytes()).unwrap());
    let simd = canonical_binance(&p.parse_with::<Binance>(frame.as_bytes(), Some(Path::Simd)).unwrap().0);
    assert_eq!(got, simd, "simd-json path disagrees on {frame}");
    check_parse_binance(frame.as_bytes());
    got
}

fn err(frame: &str) -> ErrorKind {
    Parser::new().parse_binance(frame.as_bytes()).unwrap_err().kind
}

/// The documented messages of one exchange and kind, as JSON text.
fn doc(exchange: &str, kind: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors/protocols/binance.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["exchange"] == exchange && v["kind"] == kind)
        .map(|v| {
            let m = if v["message"].is_null() { &v["message_comments_stripped"] } else { &v["message"] };
            serde_json::to_string(m).unwrap()
        })
        .collect()
}

#[test]
fn documented_events_replies_and_shutdowns() {
    let spot = &doc("binance-spot", "diff_depth_event")[0];
    let mut p = Parser::new();
    let Message::Book(b) = p.parse_binance(spot.as_bytes()).unwrap() else { panic!("{spot}") };
    let f = b.frame();
    assert_eq!((f.symbol, f.kind, b.stream), ("BNBBTC", Kind::Update, None));
    let s = f.sequence.unwrap();
    assert_eq!((s.first, s.last, s.prev), (157, 160, None));
    assert_eq!(f.bids.clone().map(|l| (l.price, l.qty)).collect::<Vec<_>>(), [("0.0024", "10")]);
    assert_eq!(f.asks.clone().map(|l| (l.price, l.qty)).collect::<Vec<_>>(), [("0.0026", "100")]);
    assert_eq!(f.time.unix_ns(), Some(1_672_515_782_136_000_000));
    check(spot);
    for exchange in ["binance-usdm", "binance-coinm"] {
        let usdm = &doc(exchange, "diff_depth_event")[0];
        let Message::Book(b) = p.parse_binance(usdm.as_bytes()).unwrap() else { panic!("{usdm}") };
        let s = b.frame().sequence.unwrap();
        assert!(s.prev.is_some_and(|pu| pu < s.first), "{exchange}: {s:?}");
        check(usdm);
    }
    for kind in ["subscribe_response", "unsubscribe_response"] {
        let r = &doc("binance-spot", kind);
        let r = r.first().cloned().unwrap_or_else(|| r#"{"result":null,"id":1}"#.to_owned());
        assert!(matches!(p.parse_binance(r.as_bytes()).unwrap(), Message::Reply { id: Some(_) }), "{r}");
        check(&r);
    }
    for kind in ["server_shutdown_raw", "server_shutdown_combined"] {
        let m = &doc("binance-spot", kind)[0];
        assert!(matches!(p.parse_binance(m.as_bytes()).unwrap(), Message::Shutdown), "{m}");
        check(m);
    }
    // The REST snapshot, as the documented body.
    let rest = &doc("binance-spot", "rest_depth_response")[0];
    let f = p.parse_snapshot::<Binance>(rest.as_bytes()).unwrap();
    assert_eq!((f.kind, f.sequence.map(|s| (s.last, s.prev))), (Kind::Snapshot, Some((1_027_024, None))));
    assert_eq!(f.bids.map(|l| (l.price, l.qty)).collect::<Vec<_>>(), [("4.00000000", "431.00000000")]);
}

#[test]
fn combined_streams_errors_and_other_events() {
    let wrapped = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":5,"s":"BTCUSDT","U":10,"u":12,"b":[],"a":[["30000.10","0"]]}}"#;
    let mut p = Parser::new();
    let Message::Book(b) = p.parse_binance(wrapped.as_bytes()).unwrap() else { panic!() };
    assert_eq!((b.stream, b.frame().symbol), (Some("btcusdt@depth@100ms"), "BTCUSDT"));
    check(wrapped);
    // The data before the stream name reads the same.
    let data_first = r#"{"data":{"a":[["30000.10","0"]],"b":[],"u":12,"U":10,"s":"BTCUSDT","E":5,"e":"depthUpdate"},"stream":"btcusdt@depth@100ms"}"#;
    assert_eq!(check(data_first), check(wrapped));
    let error = r#"{"code":2,"msg":"Invalid request: unknown variant `SUBSCRIB`","id":7}"#;
    assert!(matches!(
        p.parse_binance(error.as_bytes()).unwrap(),
        Message::Error { code: Some("2"), message: Some(m), id: Some(7) } if m.starts_with("Invalid request")
    ));
    check(error);
    let trade = r#"{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"p":"1","q":"2"}"#;
    assert!(matches!(p.parse_binance(trade.as_bytes()).unwrap(), Message::Other { kind: Some("aggTrade") }));
    let usdm = r#"{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":100,"u":120,"pu":99,"b":[["1.5","2"]],"a":[]}"#;
    let Message::Book(b) = p.parse_binance(usdm.as_bytes()).unwrap() else { panic!() };
    assert_eq!(b.frame().sequence.unwrap().prev, Some(99));
    // REST errors are refusals; a body without `lastUpdateId` cannot be bridged.
    let refused = r#"{"code":-1121,"msg":"Invalid symbol."}"#;
    assert_eq!(p.parse_snapshot::<Binance>(refused.as_bytes()).unwrap_err().kind, ErrorKind::Refused);
    let no_id = r#"{"bids":[["1","1"]],"asks":[]}"#;
    assert_eq!(p.parse_snapshot::<Binance>(no_id.as_bytes()).unwrap_err().kind, ErrorKind::MissingField);
}

#[test]
fn malformed_events_are_typed_errors() {
    assert_eq!(err(r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","u":5,"b":[],"a":[]}"#), ErrorKind::MissingField);
    assert_eq!(err(r#"{"e":"depthUpdate","E":1,"U":5,"u":5,"b":[],"a":[]}"#), ErrorKind::MissingField);
    assert_eq!(err(r#"{"e":"depthUpdate","E":1,"s":"X","U":9,"u":5,"b":[],"a":[]}"#), ErrorKind::InvalidValue);
    assert_eq!(err(r#"{"e":"depthUpdate","E":1,"s":"X","U":"9","u":9,"b":[],"a":[]}"#), ErrorKind::WrongType);
    assert_eq!(err(r#"{"e":"depthUpdate","s":"X","U":1,"u":1,"b":[["1"]],"a":[]}"#), ErrorKind::MissingField);
    assert_eq!(err(r#"{"e":"depthUpdate","s":"X","U":1,"u":1,"b":[[1,2]],"a":[]}"#), ErrorKind::WrongType);
    assert_eq!(
        err(r#"{"e":"depthUpdate","s":"X","U":1,"u":99999999999999999999999,"b":[],"a":[]}"#),
        ErrorKind::InvalidValue
    );
    assert_eq!(err(r#"{"e":"depthUpdate","s":"X","U":1,"u":2,"b":[],"a":[]"#), ErrorKind::UnexpectedEnd);
    assert_eq!(err(r#"[1,2]"#), ErrorKind::UnknownMessage);
}

/// Levels as text.
type Side = Vec<(String, String)>;

/// A reference reading of an event with `serde_json`: symbol, ids and levels as text.
fn reference(frame: &str) -> (String, u64, u64, Option<u64>, Side, Side) {
    let v: Value = serde_json::from_str(frame).unwrap();
    let v = if v.get("data").is_some() { v["data"].clone() } else { v };
    let side = |k: &str| -> Side {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|l| (l[0].as_str().unwrap().to_owned(), l[1].as_str().unwrap().to_owned()))
            .collect()
    };
    (
        v["s"].as_str().unwrap().to_owned(),
        v["U"].as_u64().unwrap(),
        v["u"].as_u64().unwrap(),
        v.get("pu").and_then(Value::as_u64),
        side("b"),
        side("a"),
    )
}

fn decimal() -> impl Strategy<Value = String> {
    (0u64..10_000_000, 0u32..9).prop_map(|(m, dp)| {
        let s = format!("{m:0>width$}", width = dp as usize + 1);
        if dp == 0 { s } else { format!("{}.{}", &s[..s.len() - dp as usize], &s[s.len() - dp as usize..]) }
    })
}

proptest! {
    /// Generated events (raw or wrapped, spot or USD-M, keys in any order) read as `serde_json`
    /// reads them, and mutated ones never panic.
    #[test]
    fn events_read_as_serde_json_reads_them(
        bids in proptest::collection::vec((decimal(), decimal()), 0..20),
        asks in proptest::collection::vec((decimal(), decimal()), 0..20),
        first in 0u64..1u64 << 60, span in 0u64..1000, pu in proptest::option::of(0u64..1u64 << 60),
        wrapped: bool, reverse: bool, usdm_time: bool,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
    ) {
        let side = |l: &[(String, String)]| l.iter().map(|(p, q)| format!(r#"["{p}","{q}"]"#)).collect::<Vec<_>>().join(",");
        let mut keys = vec![
            r#""e":"depthUpdate""#.to_owned(),
            r#""E":1700000000000"#.to_owned(),
            r#""s":"BTCUSDT""#.to_owned(),
            format!(r#""U":{first}"#),
            format!(r#""u":{}"#, first + span),
            format!(r#""b":[{}]"#, side(&bids)),
            format!(r#""a":[{}]"#, side(&asks)),
        ];
        // Where USD-M puts them: `T` after `E`, `pu` after `u`.
        if let Some(pu) = pu {
            keys.insert(5, format!(r#""pu":{pu}"#));
        }
        if usdm_time {
            keys.insert(2, r#""T":1699999999999"#.to_owned());
        }
        if reverse {
            keys.reverse();
        }
        let event = format!("{{{}}}", keys.join(","));
        let frame = if wrapped { format!(r#"{{"stream":"btcusdt@depth","data":{event}}}"#) } else { event };
        let (symbol, u0, u1, pu_ref, b, a) = reference(&frame);
        let mut p = Parser::new();
        let (m, path) = p.parse_with::<Binance>(frame.as_bytes(), None).unwrap();
        let Message::Book(book) = m else { panic!("{frame}") };
        // Raw events in Binance's own key order take the layout matcher.
        prop_assert_eq!(path == Path::Layout, !wrapped && !reverse, "{}", frame);
        let f = book.frame();
        let s = f.sequence.unwrap();
        prop_assert_eq!((f.symbol, s.first, s.last, s.prev), (symbol.as_str(), u0, u1, pu_ref));
        let got = |l: plumb_wire::Levels<'_>| l.map(|x| (x.price.to_owned(), x.qty.to_owned())).collect::<Vec<_>>();
        prop_assert_eq!(got(f.bids), b);
        prop_assert_eq!(got(f.asks), a);
        check_parse_binance(frame.as_bytes());
        check_parse_binance(&super::mutate(frame, &edits));
    }
}
