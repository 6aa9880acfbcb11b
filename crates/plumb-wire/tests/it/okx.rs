//! OKX v5: the documented messages (`../shared/vectors/protocols/okx.jsonl`), the errors that
//! malformed frames must produce, and a property test against a slow `serde_json` reference.

use plumb_wire::okx::{Channel, Message, Okx};
use plumb_wire::testing::{canonical_okx, check_parse_okx};
use plumb_wire::{ErrorKind, Kind, Parser, Path, Sequence};
use proptest::prelude::*;
use serde_json::Value;

/// Parses with the default path and with simd-json alone, checks they agree, and returns the
/// canonical form.
fn check(frame: &str) -> String {
    let mut p = Parser::new();
    let got = canonical_okx(&p.parse_okx(frame.as_bytes()).unwrap());
    if frame != "pong" {
        let simd = canonical_okx(&p.parse_with::<Okx>(frame.as_bytes(), Some(Path::Simd)).unwrap().0);
        assert_eq!(got, simd, "simd-json path disagrees on {frame}");
    }
    check_parse_okx(frame.as_bytes());
    got
}

fn err(frame: &str) -> ErrorKind {
    Parser::new().parse_okx(frame.as_bytes()).unwrap_err().kind
}

/// The documented `books` snapshot (okx.jsonl, kind "snapshot", docs captured 2026-07-07).
const SNAPSHOT: &str = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0","13"],["8477","7","0","2"],["8477.34","85","0","1"],["8477.56","1","0","1"],["8505.84","8","0","1"],["8506.37","85","0","1"],["8506.49","2","0","1"],["8506.96","100","0","2"]],"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"],["8475.54","100","0","1"],["8475.3","1","0","1"],["8447.32","6","0","1"],["8447.02","246","0","1"],["8446.83","24","0","1"],["8446","95","0","3"]],"ts":"1597026383085","checksum":0,"prevSeqId":-1,"seqId":123456}]}"#;

#[test]
fn documented_snapshot_and_update() {
    let got = check(SNAPSHOT);
    assert!(
        got.starts_with(
            "book BTC-USDT Books Snapshot seq=Some(Sequence { first: 123456, last: 123456, prev: None }) crc=None \
             time=UnixMillis(1597026383085) bids 256@8476.97 101@8475.55"
        ),
        "{got}"
    );
    assert!(got.ends_with("asks 415@8476.98 7@8477 85@8477.34 1@8477.56 8@8505.84 85@8506.37 2@8506.49 100@8506.96"));
    let update = SNAPSHOT
        .replace(r#""action":"snapshot""#, r#""action":"update""#)
        .replace(r#""prevSeqId":-1,"seqId":123456"#, r#""prevSeqId":123456,"seqId":123457"#);
    let mut p = Parser::new();
    let Message::Book(b) = p.parse_okx(update.as_bytes()).unwrap() else { panic!() };
    let f = b.frame();
    assert_eq!((f.kind, f.checksum), (Kind::Update, None));
    assert_eq!(f.sequence, Some(Sequence { first: 123_457, last: 123_457, prev: Some(123_456) }));
    check(&update);
}

#[test]
fn whole_book_channels_are_snapshots() {
    // okx.jsonl, kinds "bbo_tbt_push" and "books5_push".
    let bbo = r#"{"arg":{"channel":"bbo-tbt","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154","0","2"]],"bids":[["111.05","57745","0","2"]],"ts":"1670324386802","seqId":363996337}]}"#;
    assert_eq!(
        check(bbo),
        "book BCH-USDT-SWAP BboTbt Snapshot seq=Some(Sequence { first: 363996337, last: 363996337, prev: None }) \
         crc=None time=UnixMillis(1670324386802) bids 57745@111.05 asks 55154@111.06"
    );
    let books5 = r#"{"arg":{"channel":"books5","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154","0","2"],["111.07","53276","0","2"],["111.08","72435","0","2"],["111.09","70312","0","2"],["111.1","67272","0","2"]],"bids":[["111.05","57745","0","2"],["111.04","57109","0","2"],["111.03","69563","0","2"],["111.02","71248","0","2"],["111.01","65090","0","2"]],"instId":"BCH-USDT-SWAP","ts":"1670324386802","seqId":363996337}]}"#;
    let mut p = Parser::new();
    let Message::Book(b) = p.parse_okx(books5.as_bytes()).unwrap() else { panic!() };
    assert_eq!((b.channel, b.frame().kind, b.frame().bids.len()), (Channel::Books5, Kind::Snapshot, 5));
    check(books5);
    // The instrument inside the data must be the arg's.
    assert_eq!(
        err(&books5.replace(r#""instId":"BCH-USDT-SWAP","ts""#, r#""instId":"BTC-USDT","ts""#)),
        ErrorKind::InvalidValue
    );
}

#[test]
fn legacy_checksums_are_the_bits_of_a_signed_crc() {
    // okx.jsonl, kind "snapshot_pre_deprecation": checksum -855196043.
    let pre = SNAPSHOT.replace(r#""checksum":0"#, r#""checksum":-855196043"#);
    let mut p = Parser::new();
    let Message::Book(b) = p.parse_okx(pre.as_bytes()).unwrap() else { panic!() };
    assert_eq!(b.frame().checksum, Some((-855_196_043i32).cast_unsigned()));
    check(&pre);
    // Out of the signed 32-bit range: not a CRC.
    assert_eq!(err(&SNAPSHOT.replace(r#""checksum":0"#, r#""checksum":2147483648"#)), ErrorKind::InvalidValue);
    // A frame from before OKX numbered its books: no sequence at all.
    let old = SNAPSHOT.replace(r#","prevSeqId":-1,"seqId":123456"#, "");
    let Message::Book(b) = p.parse_okx(old.as_bytes()).unwrap() else { panic!() };
    assert_eq!(b.frame().sequence, None);
}

#[test]
fn replies_notices_and_pong() {
    // okx.jsonl, kinds "subscribe_ack", "subscribe_error", "unsubscribe_ack".
    assert_eq!(
        check(r#"{"id":"1512","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#),
        r#"reply subscribe id=Some("1512") ch=Some("books") inst=Some("BTC-USDT") code=None msg=None"#
    );
    let e = r#"{"id":"1512","event":"error","code":"60012","msg":"Invalid request: {\"op\": \"subscribe\", \"argss\":[{ \"channel\" : \"books\", \"instId\" : \"BTC-USD-191227\"}]}","connId":"a4d3ae55"}"#;
    let got = check(e);
    assert!(
        got.starts_with(
            r#"reply error id=Some("1512") ch=None inst=None code=Some("60012") msg=Some("Invalid request: {"#
        ),
        "{got}"
    );
    assert_eq!(
        check(r#"{"event":"unsubscribe","arg":{"channel":"tickers","instId":"BTC-USDT"},"connId":"d0b44253"}"#),
        r#"reply unsubscribe id=None ch=Some("tickers") inst=Some("BTC-USDT") code=None msg=None"#
    );
    assert_eq!(
        check(
            r#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade.","connId":"a4d3ae55"}"#
        ),
        r#"notice Some("64008") Some("The connection will soon be closed for a service upgrade.")"#
    );
    assert_eq!(check("pong"), "pong");
    assert_eq!(
        check(r#"{"event":"channel-conn-count","channel":"books","connCount":"2","connId":"a"}"#),
        r#"other Some("channel-conn-count")"#
    );
    assert_eq!(
        check(r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"last":"1"}]}"#),
        r#"other Some("tickers")"#
    );
}

#[test]
fn typed_errors() {
    // An update needs its action; whole-book channels do not.
    assert_eq!(err(&SNAPSHOT.replace(r#""action":"snapshot","#, "")), ErrorKind::MissingField);
    assert_eq!(err(&SNAPSHOT.replace(r#""action":"snapshot""#, r#""action":"partial""#)), ErrorKind::InvalidValue);
    // An update with a seqId but no prevSeqId cannot be linked.
    let upd = SNAPSHOT.replace(r#""action":"snapshot""#, r#""action":"update""#).replace(r#""prevSeqId":-1,"#, "");
    assert_eq!(err(&upd), ErrorKind::MissingField);
    // A prevSeqId with no seqId either.
    assert_eq!(err(&SNAPSHOT.replace(r#","seqId":123456"#, "")), ErrorKind::MissingField);
    // Negative ids other than -1, wrong types, two books in one message, no book at all.
    assert_eq!(err(&SNAPSHOT.replace(r#""prevSeqId":-1"#, r#""prevSeqId":-2"#)), ErrorKind::InvalidValue);
    assert_eq!(err(&SNAPSHOT.replace(r#""seqId":123456"#, r#""seqId":-5"#)), ErrorKind::InvalidValue);
    assert_eq!(err(&SNAPSHOT.replace(r#""seqId":123456"#, r#""seqId":"123456""#)), ErrorKind::WrongType);
    assert_eq!(err(&SNAPSHOT.replace(r#""ts":"1597026383085""#, r#""ts":"soon""#)), ErrorKind::InvalidValue);
    assert_eq!(err(&SNAPSHOT.replace("}]}", r#"},{"asks":[],"bids":[]}]}"#)), ErrorKind::InvalidValue);
    assert_eq!(
        err(r#"{"arg":{"channel":"books","instId":"A"},"action":"snapshot","data":[]}"#),
        ErrorKind::MissingField
    );
    assert_eq!(
        err(r#"{"arg":{"channel":"books"},"action":"snapshot","data":[{"asks":[],"bids":[]}]}"#),
        ErrorKind::MissingField
    );
    assert_eq!(
        err(r#"{"arg":{"channel":"books","instId":"A"},"action":"snapshot","data":[{"asks":[["1"]],"bids":[]}]}"#),
        ErrorKind::MissingField
    );
    assert_eq!(
        err(r#"{"arg":{"channel":"books","instId":"A"},"action":"snapshot","data":[{"asks":[[1,2]],"bids":[]}]}"#),
        ErrorKind::WrongType
    );
    assert_eq!(err(r#"[1,2]"#), ErrorKind::UnknownMessage);
    assert_eq!(err(r#"{"connId":"x"}"#), ErrorKind::UnknownMessage);
}

#[test]
fn data_before_arg_is_read_once_the_arg_is_known() {
    let f = r#"{"data":[{"bids":[["1.5","2","0","1"]],"asks":[],"ts":"7","seqId":9,"prevSeqId":8}],"action":"update","arg":{"instId":"ETH-USDT","channel":"books"}}"#;
    assert_eq!(
        check(f),
        "book ETH-USDT Books Update seq=Some(Sequence { first: 9, last: 9, prev: Some(8) }) crc=None time=UnixMillis(7) bids 2@1.5 asks"
    );
}

// ---------------------------------------------------------------------------------------------
// The parser against a slow reference: `serde_json` values, rendered the way `canonical_okx`
// renders plumb's messages.

fn reference(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let o = v.as_object()?;
    let arg = o.get("arg")?.as_object()?;
    let channel = match arg.get("channel")?.as_str()? {
        "books" => "Books",
        "books5" => "Books5",
        "bbo-tbt" => "BboTbt",
        "books-l2-tbt" => "BooksL2Tbt",
        "books50-l2-tbt" => "Books50L2Tbt",
        "books-elp" => "BooksElp",
        _ => return None,
    };
    let inst = arg.get("instId")?.as_str()?;
    let kind = match o.get("action").map(|a| a.as_str()) {
        Some(Some("snapshot")) => "Snapshot",
        Some(Some("update")) => "Update",
        None if matches!(channel, "Books5" | "BboTbt") => "Snapshot",
        _ => return None,
    };
    let data = o.get("data")?.as_array()?;
    if data.len() != 1 {
        return None;
    }
    let d = data[0].as_object()?;
    let int = |v: &Value| -> Option<i64> { v.as_i64() };
    let seq = match d.get("seqId") {
        Some(s) => Some(u64::try_from(int(s)?).ok()?),
        None => None,
    };
    let prev = match d.get("prevSeqId") {
        Some(p) => match int(p)? {
            -1 => Some(None),
            p => Some(Some(u64::try_from(p).ok()?)),
        },
        None => None,
    };
    let sequence = match (seq, prev) {
        (Some(last), prev) => {
            let prev = if kind == "Snapshot" { None } else { prev.flatten() };
            if kind == "Update" && prev.is_none() {
                return None;
            }
            Some(Sequence { first: last, last, prev })
        }
        (None, Some(_)) => return None,
        (None, None) => None,
    };
    let crc = match d.get("checksum") {
        Some(c) => {
            let c = i32::try_from(int(c)?).ok()?;
            (c != 0).then_some(c.cast_unsigned())
        }
        None => None,
    };
    let time = match d.get("ts") {
        Some(Value::String(s)) => format!("UnixMillis({})", s.parse::<u64>().ok()?),
        Some(n) => format!("UnixMillis({})", n.as_u64()?),
        None => "None".to_owned(),
    };
    let mut out = format!("book {inst} {channel} {kind} seq={sequence:?} crc={crc:?} time={time} bids");
    for (name, key) in [("", "bids"), (" asks", "asks")] {
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
    proptest::collection::vec((decimal(), decimal(), 0u32..50), 0..6).prop_map(|ls| {
        let inner: Vec<String> = ls.iter().map(|(p, q, n)| format!(r#"["{p}","{q}","0","{n}"]"#)).collect();
        format!("[{}]", inner.join(","))
    })
}

prop_compose! {
    fn book()(inst in "[A-Z]{2,5}-USDT(-SWAP)?", channel in prop::sample::select(vec!["books", "books5", "bbo-tbt"]),
              action in prop::sample::select(vec![Some("snapshot"), Some("update"), None]),
              seq in proptest::option::of(0i64..i64::MAX), prev in proptest::option::of(-1i64..1_000_000),
              crc in proptest::option::of(any::<i32>()),
              ts in any::<u32>(), b in levels(), a in levels(), extra in any::<bool>(),
              data_order in 0u8..8, top_order in 0u8..3,
              ws in "[ \n\t]{0,2}") -> String {
        let mut data = vec![format!(r#""bids":{b}"#), format!(r#""asks":{a}"#), format!(r#""ts":"{ts}""#)];
        if let Some(s) = seq { data.push(format!(r#""seqId":{s}"#)); }
        if let Some(p) = prev { data.push(format!(r#""prevSeqId":{p}"#)); }
        if let Some(c) = crc { data.push(format!(r#""checksum":{c}"#)); }
        if extra { data.push(r#""x":{"y":[1,{"z":null}]}"#.to_owned()); }
        let n = data.len();
        data.rotate_left(usize::from(data_order) % n);
        let data = format!("[{{{}}}]", data.join(&format!(",{ws}")));
        let mut top = vec![format!(r#""arg":{{"channel":"{channel}","instId":"{inst}"}}"#), format!(r#""data":{data}"#)];
        if let Some(a) = action { top.push(format!(r#""action":"{a}""#)); }
        let n = top.len();
        top.rotate_left(usize::from(top_order) % n);
        format!("{ws}{{{}}}", top.join(","))
    }
}

/// An id: mostly one that fits OKX's `i64`, sometimes a 19-digit one that does not.
fn id() -> impl Strategy<Value = i128> {
    prop_oneof![4 => 0i128..i128::from(i64::MAX), 1 => i128::from(i64::MAX)..10_000_000_000_000_000_000]
}

prop_compose! {
    /// A push in the exact layout OKX sends: with an `action`, or without one (a whole book, as
    /// `books5` and `bbo-tbt` send; `books5` repeats the `instId` in the data).
    fn layout_book()(inst in "[A-Z]{2,5}-USDT(-SWAP)?",
                     channel in prop::sample::select(vec!["books", "books-l2-tbt", "books50-l2-tbt", "books-elp", "books5", "bbo-tbt"]),
                     action in prop::sample::select(vec![Some("snapshot"), Some("update"), None]),
                     seq in id(), prev in prop_oneof![Just(-1i128), id()], inner_inst in any::<bool>(),
                     crc in prop_oneof![Just(0), any::<i32>()], ts in 0u64..10_000_000_000_000_000_000, b in levels(), a in levels()) -> String {
        match action {
            Some(action) => format!(
                r#"{{"arg":{{"channel":"{channel}","instId":"{inst}"}},"action":"{action}","data":[{{"asks":{a},"bids":{b},"ts":"{ts}","checksum":{crc},"prevSeqId":{prev},"seqId":{seq}}}]}}"#
            ),
            None => {
                let inner = if inner_inst { format!(r#","instId":"{inst}""#) } else { String::new() };
                format!(
                    r#"{{"arg":{{"channel":"{channel}","instId":"{inst}"}},"data":[{{"asks":{a},"bids":{b}{inner},"ts":"{ts}","seqId":{seq}}}]}}"#
                )
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 8 } else { 512 }, ..ProptestConfig::default() })]

    #[test]
    fn layout_matcher_agrees_with_serde_json(frame in layout_book()) {
        let mut p = Parser::new();
        let got = p.parse_with::<plumb_wire::okx::Okx>(frame.as_bytes(), None).ok();
        prop_assert_eq!(got.as_ref().map(|(m, _)| canonical_okx(m)), reference(&frame), "{}", frame);
        // Every push takes the matcher but those the walker refuses: an update that links to
        // nothing, a push with no action on a channel of updates, an id above `i64::MAX`.
        let big = |key: &str| frame.split(key).nth(1).and_then(|r| r.split([',', '}']).next()?.parse::<i64>().err()).is_some();
        let whole = frame.contains(r#""channel":"books5""#) || frame.contains(r#""channel":"bbo-tbt""#);
        let refused = (frame.contains(r#""action":"update""#) && frame.contains(r#""prevSeqId":-1,"#))
            || (!frame.contains(r#""action""#) && !whole)
            || big(r#""seqId":"#)
            || big(r#""prevSeqId":"#);
        prop_assert_eq!(got.map(|(_, path)| path), (!refused).then_some(plumb_wire::Path::Layout), "{}", frame);
        check_parse_okx(frame.as_bytes());
    }

    #[test]
    fn parser_agrees_with_serde_json(frame in book()) {
        let mine = Parser::new().parse_okx(frame.as_bytes()).ok().map(|m| canonical_okx(&m));
        prop_assert_eq!(mine, reference(&frame), "{}", frame);
        check_parse_okx(frame.as_bytes());
    }

    #[test]
    fn mutated_frames_never_panic(frame in book(), edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)) {
        check_parse_okx(&crate::mutate(frame, &edits));
    }
}

/// The REST snapshot (`GET /api/v5/market/books`) the session bridges the stream to: its levels
/// and `seqId`, no symbol, no link; error codes and books without an id are typed errors.
#[test]
fn rest_snapshots() {
    let body = br#"{"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"]],"bids":[["41006.3","0.30178218","0","2"],["41006.2","0","0","0"]],"ts":"1629966436396","seqId":123457}]}"#;
    let mut p = Parser::new();
    let f = p.parse_snapshot::<Okx>(body).expect("rest snapshot");
    assert_eq!((f.symbol, f.kind, f.checksum), ("", plumb_wire::Kind::Snapshot, None));
    assert_eq!(f.sequence, Some(plumb_wire::Sequence { first: 123_457, last: 123_457, prev: None }));
    let bids: Vec<(&str, &str)> = f.bids.map(|l| (l.price, l.qty)).collect();
    assert_eq!(bids, [("41006.3", "0.30178218"), ("41006.2", "0")]);
    assert_eq!(f.asks.map(|l| l.price).collect::<Vec<_>>(), ["41006.8"]);
    assert_eq!(f.time.unix_ns(), Some(1_629_966_436_396_000_000));
    // Escaped strings take the simd-json path and read the same.
    let escaped =
        br#"{"code":"0","msg":"\u0020","data":[{"asks":[],"bids":[["1\u002e5","2","0","1"]],"ts":"1","seqId":9}]}"#;
    let f = p.parse_snapshot::<Okx>(escaped).expect("escaped");
    assert_eq!((f.bids.map(|l| l.price).collect::<Vec<_>>(), f.sequence.map(|s| s.last)), (vec!["1.5"], Some(9)));

    let refused = br#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#;
    assert_eq!(p.parse_snapshot::<Okx>(refused).unwrap_err().kind, ErrorKind::Refused);
    let no_seq = br#"{"code":"0","msg":"","data":[{"asks":[],"bids":[],"ts":"1"}]}"#;
    assert_eq!(p.parse_snapshot::<Okx>(no_seq).unwrap_err().kind, ErrorKind::MissingField);
    assert_eq!(p.parse_snapshot::<Okx>(br#"{"code":"0","msg":""}"#).unwrap_err().kind, ErrorKind::MissingField);
    assert_eq!(p.parse_snapshot::<Okx>(br#"{"code":"0","data":[{"#).unwrap_err().kind, ErrorKind::UnexpectedEnd);
    assert_eq!(p.parse_snapshot::<Okx>(b"[]").unwrap_err().kind, ErrorKind::UnknownMessage);
    // Exchanges without a REST snapshot refuse one.
    assert_eq!(p.parse_snapshot::<plumb_wire::kraken::Kraken>(body).unwrap_err().kind, ErrorKind::UnknownMessage);
}

/// Memory a huge frame grew is given back once frames are small again (a 14 MB snapshot once
/// kept 85 MB for the rest of a run).
#[test]
fn a_huge_frame_does_not_keep_its_memory() {
    let levels: Vec<String> = (0..40_000).map(|k| format!(r#"["{}.5","1.25","0","1"]"#, 100_000 + k)).collect();
    let big = format!(
        r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"snapshot","data":[{{"asks":[{}],"bids":[],"ts":"1","checksum":0,"prevSeqId":-1,"seqId":5}}]}}"#,
        levels.join(",")
    );
    assert!(big.len() > 1 << 20);
    let mut p = Parser::new();
    let Message::Book(b) = p.parse_okx(big.as_bytes()).unwrap() else { panic!() };
    assert_eq!(b.frame().asks.len(), 40_000);
    let grown = p.retained_bytes();
    assert!(grown > 1 << 20, "{grown}");
    // A typical update next: the buffers are given back, and it parses as usual.
    let Message::Book(b) = p.parse_okx(SNAPSHOT.as_bytes()).unwrap() else { panic!() };
    assert_eq!(b.frame().bids.len(), 8);
    assert!(p.retained_bytes() < 64 * 1024, "{}", p.retained_bytes());
}
