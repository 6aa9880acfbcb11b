//! Bybit v5: the documented messages (`../shared/vectors/protocols/bybit.jsonl`), the errors that
//! malformed frames must produce, and a property test against a slow `serde_json` reference.

use plumb_wire::bybit::{Bybit, Message};
use plumb_wire::testing::{canonical_bybit, check_parse_bybit};
use plumb_wire::{ErrorKind, Parser, Path};
use proptest::prelude::*;
use serde_json::Value;

/// Parses with the default path and with simd-json alone, checks they agree, and returns the
/// canonical form.
fn check(frame: &str) -> String {
    let mut p = Parser::new();
    let got = canonical_bybit(&p.parse_bybit(frame.as_bytes()).unwrap());
    let simd = canonical_bybit(&p.parse_with::<Bybit>(frame.as_bytes(), Some(Path::Simd)).unwrap().0);
    assert_eq!(got, simd, "simd-json path disagrees on {frame}");
    check_parse_bybit(frame.as_bytes());
    got
}

fn err(frame: &str) -> ErrorKind {
    Parser::new().parse_bybit(frame.as_bytes()).unwrap_err().kind
}

#[test]
fn documented_delta_keeps_exact_text() {
    // bybit.jsonl, kind "delta" (docs/v5/websocket/public/orderbook.mdx @072c197).
    let f = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,"data":{"s":"BTCUSDT","b":[["30247.20","30.028"],["30245.40","0.224"],["30242.10","1.593"],["30240.30","1.305"],["30240.00","0"]],"a":[["30248.70","0"],["30249.30","0.892"],["30249.50","1.778"],["30249.60","0"],["30251.90","2.947"],["30252.20","0.659"],["30252.50","4.591"]],"u":177400507,"seq":66544703342},"cts":1687940967464}"#;
    assert_eq!(
        check(f),
        "book BTCUSDT Update depth=50 legacy=false seq=Some(Sequence { first: 177400507, last: 177400507, prev: None }) \
         xseq=Some(66544703342) time=UnixMillis(1687940967466) bids 30.028@30247.20 0.224@30245.40 1.593@30242.10 \
         1.305@30240.30 0@30240.00 asks 0@30248.70 0.892@30249.30 1.778@30249.50 0@30249.60 2.947@30251.90 \
         0.659@30252.20 4.591@30252.50"
    );
}

#[test]
fn snapshot_keys_in_any_order_and_the_full_book_topic() {
    // The documented snapshot with its `...` elisions removed; `ts` before `type` as spot sends.
    let f = r#"{"ts":1672304484978,"topic":"orderbook.50.BTCUSDT","type":"snapshot","data":{"u":18521288,"seq":7961638724,"s":"BTCUSDT","a":[["16611.00","0.029"],["16612.00","0.213"]],"b":[["16493.50","0.006"],["16493.00","0.100"]]},"cts":1672304484976}"#;
    assert!(check(f).starts_with("book BTCUSDT Snapshot depth=50 legacy=false seq=Some(Sequence { first: 18521288"));
    // `data` before `topic`: read once the topic is known.
    let g = r#"{"data":{"s":"ETHUSDT","b":[],"a":[["1.5","2"]],"u":1},"type":"snapshot","topic":"orderbook.1.ETHUSDT","ts":5}"#;
    assert_eq!(
        check(g),
        "book ETHUSDT Snapshot depth=1 legacy=false seq=Some(Sequence { first: 1, last: 1, prev: None }) xseq=None \
         time=UnixMillis(5) bids asks 2@1.5"
    );
}

#[test]
fn legacy_spot_v3_snapshots_have_no_sequence() {
    // bybit.jsonl, kind "snapshot" of bybit-spot-v3-legacy, with its `...` elisions removed.
    let f = r#"{"data":{"s":"BTCUSDT","t":1661743689733,"b":[["19721.9","0.784806"],["19719.37","1.215194"]],"a":[["19721.91","0.192687"]]},"type":"snapshot","topic":"orderbook.40.BTCUSDT","ts":1661743689735}"#;
    assert_eq!(
        check(f),
        "book BTCUSDT Snapshot depth=40 legacy=true seq=None xseq=None time=UnixMillis(1661743689733) \
         bids 0.784806@19721.9 1.215194@19719.37 asks 0.192687@19721.91"
    );
}

#[test]
fn pongs_in_every_documented_shape() {
    for f in [
        r#"{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}"#,
        r#"{"success":true,"ret_msg":"pong","conn_id":"465772b1-7630-4fdc-a492-e003e6f0f260","req_id":"","op":"ping"}"#,
        r#"{"args":["1672916271846"],"op":"pong"}"#,
        r#"{"req_id":"test","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}"#,
        r#"{"op":"pong","args":[1661741630642],"req_id":"100001","conn_id":"706b870c"}"#,
    ] {
        assert_eq!(check(f), "pong", "{f}");
    }
}

#[test]
fn acknowledgements_of_each_category() {
    assert_eq!(
        check(
            r#"{"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b","req_id":"10001","op":"subscribe"}"#
        ),
        r#"reply Some("subscribe") ok=true msg=Some("subscribe") req=Some("10001") fail"#
    );
    assert_eq!(
        check(r#"{"success":true,"ret_msg":"","conn_id":"3cd84cb1","req_id":"","op":"subscribe"}"#),
        r#"reply Some("subscribe") ok=true msg=Some("") req=Some("") fail"#
    );
    assert_eq!(
        check(
            r#"{"success":true,"conn_id":"aa01","data":{"failTopics":[],"successTopics":["orderbook.100.BTC-6JAN23-18000-C"]},"type":"COMMAND_RESP"}"#
        ),
        "reply None ok=true msg=None req=None fail"
    );
    assert_eq!(
        check(
            r#"{"success":true,"conn_id":"aa01","data":{"failTopics":["orderbook.100.NOPE"],"successTopics":[]},"type":"COMMAND_RESP"}"#
        ),
        "reply None ok=false msg=None req=None fail orderbook.100.NOPE"
    );
    assert_eq!(
        check(
            r#"{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.BTCUSDX]","conn_id":"c","req_id":"7","op":"subscribe"}"#
        ),
        r#"reply Some("subscribe") ok=false msg=Some("Invalid symbol :[orderbook.50.BTCUSDX]") req=Some("7") fail"#
    );
    assert_eq!(
        check(r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[]}"#),
        r#"other Some("publicTrade.BTCUSDT")"#
    );
}

#[test]
fn typed_errors() {
    // A delta must carry `u`: without it nothing could prove the book.
    assert_eq!(
        err(r#"{"topic":"orderbook.50.X","type":"delta","data":{"s":"X","b":[],"a":[]}}"#),
        ErrorKind::MissingField
    );
    // The data names another symbol than the topic.
    assert_eq!(
        err(r#"{"topic":"orderbook.50.X","type":"delta","data":{"s":"Y","b":[],"a":[],"u":2}}"#),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        err(r#"{"topic":"orderbook.50.X","type":"partial","data":{"s":"X","b":[],"a":[],"u":2}}"#),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        err(r#"{"topic":"orderbook.x.X","type":"delta","data":{"s":"X","b":[],"a":[],"u":2}}"#),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        err(r#"{"topic":"orderbook.50.X","type":"delta","data":{"s":"X","b":[[1,"2"]],"a":[],"u":2}}"#),
        ErrorKind::WrongType
    );
    assert_eq!(
        err(r#"{"topic":"orderbook.50.X","type":"delta","data":{"s":"X","b":[["1"]],"a":[],"u":2}}"#),
        ErrorKind::MissingField
    );
    assert_eq!(
        err(r#"{"topic":"orderbook.50.X","type":"delta","data":{"s":"X","b":[],"a":[],"u":-2}}"#),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        err(r#"{"topic":"orderbook.50.X","type":"delta","data":{"s":"X","b":[],"a":[],"u":99999999999999999999999}}"#),
        ErrorKind::InvalidValue
    );
    assert_eq!(err(r#"{"topic":"orderbook.50.X","type":"delta","data":[]}"#), ErrorKind::WrongType);
    assert_eq!(err(r#"[1,2]"#), ErrorKind::UnknownMessage);
    assert_eq!(err(r#"{"hello":1}"#), ErrorKind::UnknownMessage);
    assert_eq!(
        err(r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["6"#),
        ErrorKind::UnexpectedEnd
    );
}

#[test]
fn a_reused_parser_reads_each_frame_alone() {
    let mut p = Parser::new();
    let big = r#"{"topic":"orderbook.50.A","type":"snapshot","data":{"s":"A","b":[["1","1"],["0.5","1"]],"a":[["2","1"]],"u":3}}"#;
    let small = r#"{"topic":"orderbook.50.B","type":"delta","data":{"s":"B","b":[],"a":[["3","0"]],"u":4}}"#;
    let _ = p.parse_bybit(big.as_bytes()).unwrap();
    let Message::Book(b) = p.parse_bybit(small.as_bytes()).unwrap() else { panic!() };
    let f = b.frame();
    assert_eq!((f.symbol, f.bids.len(), f.asks.len()), ("B", 0, 1));
}

// ---------------------------------------------------------------------------------------------
// The parser against a slow reference: `serde_json` values, rendered the way `canonical_bybit`
// renders plumb's messages.

fn reference(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let o = v.as_object()?;
    let topic = o.get("topic")?.as_str()?;
    let rest = topic.strip_prefix("orderbook.")?;
    let (depth, sym) = rest.split_once('.')?;
    let depth: u16 = depth.parse().ok().filter(|&d| d > 0)?;
    let kind = match o.get("type")?.as_str()? {
        "snapshot" => "Snapshot",
        "delta" => "Update",
        _ => return None,
    };
    let d = o.get("data")?.as_object()?;
    let s = d.get("s")?.as_str()?;
    if s != sym {
        return None;
    }
    let num = |v: &Value| -> Option<u64> { v.as_number()?.to_string().parse().ok() };
    let u = d.get("u").and_then(num);
    if d.contains_key("u") && u.is_none() {
        return None;
    }
    if u.is_none() && kind == "Update" {
        return None;
    }
    let xseq = match d.get("seq") {
        Some(x) => Some(num(x)?),
        None => None,
    };
    let time = match (d.get("t"), o.get("ts")) {
        (Some(t), _) => format!("UnixMillis({})", num(t)?),
        (None, Some(ts)) => format!("UnixMillis({})", num(ts)?),
        (None, None) => "None".to_owned(),
    };
    let mut out = format!(
        "book {s} {kind} depth={depth} legacy={} seq={:?} xseq={xseq:?} time={time} bids",
        u.is_none(),
        u.map(|u| plumb_wire::Sequence { first: u, last: u, prev: None })
    );
    for (name, key) in [("", "b"), (" asks", "a")] {
        out.push_str(name);
        let empty = Vec::new();
        let side = match d.get(key) {
            Some(v) => v.as_array()?,
            None => &empty,
        };
        for l in side {
            let l = l.as_array()?;
            let (p, q) = (l.first()?.as_str()?, l.get(1)?.as_str()?);
            out.push_str(&format!(" {q}@{p}"));
        }
    }
    Some(out)
}

fn decimal() -> impl Strategy<Value = String> {
    ("[0-9]{1,8}", proptest::option::of("[0-9]{0,8}")).prop_map(|(i, f)| match f {
        Some(f) if !f.is_empty() => format!("{i}.{f}"),
        _ => i,
    })
}

fn levels() -> impl Strategy<Value = String> {
    proptest::collection::vec((decimal(), decimal()), 0..6).prop_map(|ls| {
        let inner: Vec<String> = ls.iter().map(|(p, q)| format!(r#"["{p}","{q}"]"#)).collect();
        format!("[{}]", inner.join(","))
    })
}

prop_compose! {
    fn book()(sym in "[A-Z]{2,8}(USDT)?", depth in prop::sample::select(vec![1u16, 50, 200, 1000]),
              snapshot in any::<bool>(), u in proptest::option::of(0u64..u64::MAX), seq in proptest::option::of(any::<u64>()),
              ts in any::<u32>(), b in levels(), a in levels(), extra in any::<bool>(),
              data_order in 0u8..6, top_order in 0u8..5,
              ws in "[ \n\t]{0,2}") -> String {
        let kind = if snapshot { "snapshot" } else { "delta" };
        let mut data = vec![format!(r#""s":"{sym}""#), format!(r#""b":{b}"#), format!(r#""a":{a}"#)];
        if let Some(u) = u { data.push(format!(r#""u":{u}"#)); }
        if let Some(s) = seq { data.push(format!(r#""seq":{s}"#)); }
        if extra { data.push(r#""x":{"y":[1,{"z":null}]}"#.to_owned()); }
        let n = data.len();
        data.rotate_left(usize::from(data_order) % n);
        let data = format!("{{{}}}", data.join(&format!(",{ws}")));
        let mut top = [
            format!(r#""topic":"orderbook.{depth}.{sym}""#),
            format!(r#""type":"{kind}""#),
            format!(r#""ts":{ts}"#),
            format!(r#""data":{data}"#),
            r#""cts":12"#.to_owned(),
        ];
        top.rotate_left(usize::from(top_order));
        format!("{ws}{{{}}}", top.join(","))
    }
}

prop_compose! {
    /// A v5 book frame in the exact layout Bybit sends.
    fn v5_book()(sym in "[A-Z]{2,8}(USDT)?", depth in prop::sample::select(vec![1u16, 50, 200, 1000]),
                 snapshot in any::<bool>(), u in 0u64..=9_999_999_999_999_999_999, seq in any::<u64>(),
                 ts in any::<u64>(), b in levels(), a in levels()) -> String {
        let kind = if snapshot { "snapshot" } else { "delta" };
        format!(
            r#"{{"topic":"orderbook.{depth}.{sym}","type":"{kind}","ts":{ts},"data":{{"s":"{sym}","b":{b},"a":{a},"u":{u},"seq":{seq}}},"cts":{ts}}}"#
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 8 } else { 512 }, ..ProptestConfig::default() })]

    #[test]
    fn layout_matcher_agrees_with_serde_json(frame in v5_book()) {
        let mut p = Parser::new();
        let (m, path) = p.parse_with::<plumb_wire::bybit::Bybit>(frame.as_bytes(), None).unwrap();
        // Up to 19 digits, `seq` and `ts` are read in one pass; a 20-digit one is the walker's.
        let long = frame.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() > 19);
        prop_assert_eq!(path == plumb_wire::Path::Layout, !long, "{}", frame);
        prop_assert_eq!(Some(canonical_bybit(&m)), reference(&frame), "{}", frame);
        check_parse_bybit(frame.as_bytes());
    }

    #[test]
    fn parser_agrees_with_serde_json(frame in book()) {
        let mine = Parser::new().parse_bybit(frame.as_bytes()).ok().map(|m| canonical_bybit(&m));
        prop_assert_eq!(mine, reference(&frame), "{}", frame);
        check_parse_bybit(frame.as_bytes());
    }

    #[test]
    fn mutated_frames_never_panic(frame in book(), edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)) {
        check_parse_bybit(&crate::mutate(frame, &edits));
    }
}
