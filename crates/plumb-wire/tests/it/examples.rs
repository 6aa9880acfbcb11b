//! Kraken's documented messages, and the errors that malformed frames must produce.

use plumb_wire::kraken::{Api, Kind, Message};
use plumb_wire::testing::{canonical, check_parse};
use plumb_wire::{ErrorKind, Parser, Path};

/// Parses with the default path and with each reader on its own, checks they agree, and returns
/// the canonical form.
fn check(frame: &str) -> String {
    let mut p = Parser::new();
    let got = canonical(&p.parse(frame.as_bytes()).unwrap());
    let simd = canonical(&p.parse_via(frame.as_bytes(), Some(Path::Simd)).unwrap().0);
    assert_eq!(got, simd, "simd-json path disagrees on {frame}");
    check_parse(frame.as_bytes());
    got
}

fn err(frame: &[u8]) -> (ErrorKind, u32) {
    let e = Parser::new().parse(frame).unwrap_err();
    (e.kind, e.offset)
}

#[test]
fn v2_book_snapshot_and_update_keep_exact_text() {
    let snap = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"MATIC/USD","bids":[{"price":0.5666,"qty":4831.75496356},{"price":0.566,"qty":18097.1547}],"asks":[{"price":0.5668,"qty":4410.79769741}],"checksum":2439117997,"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#;
    assert_eq!(
        check(snap),
        "book v2 snapshot depth=None | MATIC/USD crc=Some(2439117997) ts=Some(\"2023-10-06T17:35:55.440295Z\") \
         bids 4831.75496356@0.5666 18097.1547@0.566 asks 4410.79769741@0.5668"
    );
    let upd = r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":67120.0,"qty":1.50000000},{"price":1e-5,"qty":301727260.79999999}],"asks":[],"checksum":4294967295}]}"#;
    assert_eq!(
        check(upd),
        "book v2 update depth=None | BTC/USD crc=Some(4294967295) ts=None bids 1.50000000@67120.0 \
         301727260.79999999@1e-5 asks"
    );
}

#[test]
fn v2_book_with_several_symbols_and_keys_in_any_order() {
    let f = r#" { "data" : [ {"asks":[{"qty":1.0,"price":2.50}],"symbol":"A/B","bids":[]},
        {"symbol":"C/D","checksum":0,"bids":[{"price":3,"qty":0}],"asks":[]} ], "type":"update", "channel":"book" } "#;
    assert_eq!(
        check(f),
        "book v2 update depth=None | A/B crc=None ts=None bids asks 1.0@2.50 | C/D crc=Some(0) ts=None bids 0@3 asks"
    );
}

#[test]
fn v2_other_messages() {
    assert_eq!(check(r#"{"channel":"heartbeat"}"#), "heartbeat v2");
    assert_eq!(
        check(
            r#"{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":1,"system":"online","version":"2.0.0"}]}"#
        ),
        "status v2 Some(\"online\")"
    );
    assert_eq!(
        check(
            r#"{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"ALGO/USD"},"success":true,"time_in":"x","time_out":"y"}"#
        ),
        "response v2 subscribe req=None ok=true err=None ch=Some(\"book\") sym=Some(\"ALGO/USD\") depth=Some(10) status=None"
    );
    assert_eq!(
        check(
            r#"{"error":"Currency pair not supported","method":"subscribe","req_id":7,"success":false,"symbol":"XX/YY"}"#
        ),
        "response v2 subscribe req=Some(7) ok=false err=Some(\"Currency pair not supported\") ch=None sym=Some(\"XX/YY\") depth=None status=None"
    );
    assert_eq!(
        check(r#"{"method":"pong","req_id":101,"time_in":"a","time_out":"b"}"#),
        "response v2 pong req=Some(101) ok=true err=None ch=None sym=None depth=None status=None"
    );
    assert_eq!(
        check(
            r#"{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC","precision":10}],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","qty_precision":8,"price_precision":1,"price_increment":0.1,"qty_increment":1e-08}]}}"#
        ),
        "instrument snapshot BTC/USD:1:8"
    );
    assert_eq!(
        check(r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.5}]}"#),
        "other v2 Some(\"ticker\")"
    );
}

#[test]
fn v1_books_in_every_shape() {
    assert_eq!(
        check(
            r#"[0,{"as":[["5541.30000","2.50700000","1534614248.123678"]],"bs":[["5541.20000","1.52900000","1534614248.765567"]]},"book-100","XBT/USD"]"#
        ),
        "book v1 snapshot depth=Some(100) | XBT/USD crc=None ts=None bids 1.52900000@5541.20000 asks 2.50700000@5541.30000"
    );
    assert_eq!(
        check(
            r#"[1234,{"a":[["5541.30000","2.50700000","1534614248.456738"],["5542.50000","0.40100000","1534614248.456738"]],"c":"974942666"},"book-10","XBT/USD"]"#
        ),
        "book v1 update depth=Some(10) | XBT/USD crc=Some(974942666) ts=None bids asks 2.50700000@5541.30000 0.40100000@5542.50000"
    );
    // Both sides: two maps, the checksum in the last one, a republished level.
    assert_eq!(
        check(
            r#"[1234,{"a":[["5541.30000","0.00000000","1534614248.456738"],["5541.90000","0.1","1534614200.1","r"]]},{"b":[["5541.20000","0.5","1534614248.1"]],"c":"3310070434"},"book-10","XBT/USD"]"#
        ),
        "book v1 update depth=Some(10) | XBT/USD crc=Some(3310070434) ts=None bids 0.5@5541.20000 asks 0.00000000@5541.30000 0.1@5541.90000r"
    );
    assert_eq!(check(r#"[42,{"a":["1","2","3"]},"ticker","XBT/USD"]"#), "other v1 Some(\"ticker\")");
}

#[test]
fn v1_events() {
    assert_eq!(check(r#"{"event":"heartbeat"}"#), "heartbeat v1");
    assert_eq!(
        check(r#"{"connectionID":8628615390848610000,"event":"systemStatus","status":"online","version":"1.0.0"}"#),
        "status v1 Some(\"online\")"
    );
    assert_eq!(
        check(
            r#"{"channelID":10001,"channelName":"book-10","event":"subscriptionStatus","pair":"XBT/EUR","status":"subscribed","subscription":{"depth":10,"name":"book"}}"#
        ),
        "response v1 subscriptionStatus req=None ok=true err=None ch=Some(\"book-10\") sym=Some(\"XBT/EUR\") depth=Some(10) status=Some(\"subscribed\")"
    );
    assert_eq!(
        check(
            r#"{"errorMessage":"Currency pair not in ISO 4217-A3 format foo","event":"subscriptionStatus","pair":"foo","status":"error","subscription":{"name":"book"}}"#
        ),
        "response v1 subscriptionStatus req=None ok=false err=Some(\"Currency pair not in ISO 4217-A3 format foo\") ch=None sym=Some(\"foo\") depth=None status=Some(\"error\")"
    );
    assert_eq!(
        check(r#"{"event":"pong","reqid":42}"#),
        "response v1 pong req=Some(42) ok=true err=None ch=None sym=None depth=None status=None"
    );
}

#[test]
fn escaped_strings_take_the_simd_json_path_and_are_unescaped() {
    let f = r#"{"channel":"book","type":"update","data":[{"symbol":"BTC\/USD \u20ac","bids":[{"price":1.10,"qty":2}],"asks":[],"checksum":5}]}"#;
    let mut p = Parser::new();
    let (m, path) = p.parse_via(f.as_bytes(), None).unwrap();
    assert_eq!(path, Path::Simd);
    let Message::Book(b) = m else { panic!() };
    assert_eq!((b.api, b.kind), (Api::V2, Kind::Update));
    let e = b.entries().next().unwrap();
    assert_eq!(e.symbol(), "BTC/USD €");
    assert_eq!(e.bids().next().unwrap().price, "1.10");
}

#[test]
fn typed_errors_say_what_and_where() {
    assert_eq!(err(b""), (ErrorKind::UnexpectedEnd, 0));
    assert_eq!(err(b"   "), (ErrorKind::UnexpectedEnd, 3));
    assert_eq!(
        err(br#"{"channel":"book","type":"update","data":[{"symbol":"X","bids":[{"price":1.,"qty":1}]}]}"#).0,
        ErrorKind::InvalidNumber
    );
    assert_eq!(err(br#"{"channel":"book""#), (ErrorKind::UnexpectedEnd, 17));
    assert_eq!(err(br#"{"channel":"book",}"#), (ErrorKind::UnexpectedByte, 18));
    assert_eq!(err(br#"{"channel":"book"} x"#), (ErrorKind::TrailingBytes, 19));
    assert_eq!(
        err(br#"{"channel":"book","type":"update","data":[{"symbol":"X","bids":[{"price":"1","qty":1}]}]}"#).0,
        ErrorKind::WrongType
    );
    assert_eq!(err(br#"{"channel":"book","type":"update","data":[{"bids":[]}]}"#).0, ErrorKind::MissingField);
    assert_eq!(
        err(br#"{"channel":"book","type":"update","data":[{"symbol":"X","checksum":4294967296}]}"#).0,
        ErrorKind::InvalidValue
    );
    assert_eq!(err(br#"{"channel":"book","type":"delta","data":[]}"#).0, ErrorKind::InvalidValue);
    assert_eq!(err(br#"[1,"book-10","X"]"#).0, ErrorKind::MissingField);
    assert_eq!(err(br#"[1,{"a":[["1","2"]],"c":"-5"},"book-10","X"]"#).0, ErrorKind::InvalidValue);
    assert_eq!(err(br#"[1,{"as":[],"b":[]},"book-10","X"]"#).0, ErrorKind::InvalidValue);
    assert_eq!(err(br#"{"x":1}"#).0, ErrorKind::UnknownMessage);
    assert_eq!(err(b"\"just a string\"").0, ErrorKind::UnknownMessage);
    assert_eq!(err(b"{\"event\":\"a\xff\"}").0, ErrorKind::InvalidString);
    assert_eq!(err(b"{\"event\":\"a\x01\"}").0, ErrorKind::InvalidString);
    let deep = "[".repeat(100_000);
    assert_eq!(err(deep.as_bytes()).0, ErrorKind::TooDeep);
    let deep = format!("{{\"event\":\"heartbeat\",\"x\":{}", "[".repeat(100_000));
    assert_eq!(err(deep.as_bytes()).0, ErrorKind::TooDeep);
}

#[test]
fn a_reused_parser_reads_a_large_frame_then_a_small_one() {
    // Allocation counts are checked by the facade's `tests/alloc.rs`; here, that the reused
    // scratch storage never leaks levels from one frame into the next.
    let big = format!(
        r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"X","bids":[{}],"asks":[],"checksum":1}}]}}"#,
        vec![r#"{"price":1.5,"qty":2.25}"#; 1000].join(",")
    );
    let small = r#"{"channel":"book","type":"update","data":[{"symbol":"Y","bids":[],"asks":[{"price":3,"qty":4}]}]}"#;
    let mut p = Parser::new();
    for _ in 0..3 {
        let Message::Book(b) = p.parse(big.as_bytes()).unwrap() else { panic!() };
        assert_eq!(b.entries().next().unwrap().bids().len(), 1000);
        let Message::Book(b) = p.parse(small.as_bytes()).unwrap() else { panic!() };
        let e = b.entries().next().unwrap();
        assert_eq!((e.symbol(), e.bids().len(), e.asks().len()), ("Y", 0, 1));
    }
}

#[test]
fn numbers_are_the_values_read_while_scanning_or_else_the_text() {
    use plumb_wire::{Decimal, Number};
    let f = r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":67120.0,"qty":1.50000000},{"price":1e-5,"qty":12345678901234567890.5}],"asks":[{"price":0.5,"qty":0}],"checksum":5}]}"#;
    for path in [None, Some(Path::Scanner), Some(Path::Simd)] {
        let mut p = Parser::new();
        let Message::Book(b) = p.parse_via(f.as_bytes(), path).unwrap().0 else { panic!() };
        let e = b.entries().next().unwrap();
        let value = |mantissa, scale| Number::Value(Decimal { mantissa, scale });
        let bids: Vec<_> = e.bids().numbers().collect();
        assert_eq!(
            bids,
            [
                (value(671_200, 1), value(150_000_000, 8)),
                (Number::Text(b"1e-5"), Number::Text(b"12345678901234567890.5"))
            ],
            "{path:?}"
        );
        // The same answer as the levels' own values and text.
        for (l, (p, q)) in e.bids().zip(e.bids().numbers()).chain(e.asks().zip(e.asks().numbers())) {
            assert_eq!(p, l.price_value.map_or(Number::Text(l.price.as_bytes()), Number::Value));
            assert_eq!(q, l.qty_value.map_or(Number::Text(l.qty.as_bytes()), Number::Value));
        }
        assert_eq!(e.asks().numbers().len(), 1);
    }
}
