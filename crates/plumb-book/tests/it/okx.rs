//! OKX's rule: the documented checksum vectors, and random sessions against a reference that keeps
//! a `BTreeMap` book, follows OKX's link rule as the docs state it, and builds the checksum text
//! the slow way.

use plumb_book::rule::{OkxSeq, Verdict};
use plumb_book::testing::{Model, book_side};
use plumb_book::{Book, Depth, Invalid, Proof, Side, State};
use plumb_wire::Parser;
use plumb_wire::okx::Message;
use proptest::prelude::*;

fn depth400() -> Depth {
    Depth::new(400).unwrap()
}

fn levels_json(levels: &[(String, String)]) -> String {
    let v: Vec<String> = levels.iter().map(|(p, q)| format!(r#"["{p}","{q}","0","1"]"#)).collect();
    format!("[{}]", v.join(","))
}

fn frame(
    action: &str,
    bids: &[(String, String)],
    asks: &[(String, String)],
    crc: i32,
    link: Option<(i64, u64)>,
) -> String {
    let link = link.map_or(String::new(), |(prev, seq)| format!(r#","prevSeqId":{prev},"seqId":{seq}"#));
    format!(
        r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"{action}","data":[{{"asks":{},"bids":{},"ts":"1","checksum":{crc}{link}}}]}}"#,
        levels_json(asks),
        levels_json(bids)
    )
}

fn apply(book: &mut Book, parser: &mut Parser, text: &str) -> Verdict {
    let Ok(Message::Book(b)) = parser.parse_okx(text.as_bytes()) else { panic!("{text}") };
    book.apply::<OkxSeq>(&b.frame()).unwrap()
}

fn lv(p: &str, q: &str) -> (String, String) {
    (p.to_owned(), q.to_owned())
}

/// OKX's checksum, the slow way: interleave the top 25 of each side as `price:size` strings.
fn reference_crc(model: &Model) -> i32 {
    let (b, a) = (model.bids_best_first(), model.asks_best_first());
    let mut parts = Vec::new();
    for k in 0..25 {
        for side in [&b, &a] {
            if let Some((p, q)) = side.get(k) {
                parts.push(format!("{p}:{q}"));
            }
        }
    }
    crc32fast::hash(parts.join(":").as_bytes()).cast_signed()
}

#[test]
fn documented_checksum_vectors() {
    // okx.jsonl, "checksum_example_book_more_than_25_levels_case" and "..._less_than_25_...":
    // "3366.1:7:3366.8:9:3366:6:3368:8" -> -1881014294, "3366.1:7:3366.8:9:3368:8:3372:8" -> 831078360.
    let mut p = Parser::new();
    for (bids, asks, crc) in [
        (vec![lv("3366.1", "7"), lv("3366", "6")], vec![lv("3366.8", "9"), lv("3368", "8")], -1_881_014_294),
        (vec![lv("3366.1", "7")], vec![lv("3366.8", "9"), lv("3368", "8"), lv("3372", "8")], 831_078_360),
    ] {
        let mut book = Book::for_rule::<OkxSeq>(depth400(), None);
        let v = apply(&mut book, &mut p, &frame("snapshot", &bids, &asks, crc, Some((-1, 10))));
        assert_eq!(v, Verdict::Verified(crc.cast_unsigned()));
        assert_eq!(book.proof(), Proof::Checksum(crc.cast_unsigned()));
        assert_eq!(book.okx_checksum().cast_signed(), crc);
    }
    // Trailing zeros are part of the text: the same values spelled otherwise give another CRC.
    let mut book = Book::for_rule::<OkxSeq>(depth400(), None);
    let v = apply(
        &mut book,
        &mut p,
        &frame("snapshot", &[lv("3366.10", "7")], &[lv("3366.8", "9.0")], -1_881_014_294, None),
    );
    assert!(matches!(v, Verdict::Mismatch { .. }), "{v:?}");
    assert!(matches!(book.state(), State::Invalid(Invalid::ChecksumMismatch { .. })));
}

#[test]
fn the_documented_link_example() {
    // protocols.md §5: snap(-1 -> 10), upd(10 -> 15), upd(15 -> 15, empty), upd(15 -> 3, reset), upd(3 -> 5).
    let mut p = Parser::new();
    let mut book = Book::for_rule::<OkxSeq>(depth400(), None);
    let (b, a) = (vec![lv("100", "1")], vec![lv("101", "1")]);
    assert_eq!(apply(&mut book, &mut p, &frame("snapshot", &b, &a, 0, Some((-1, 10)))), Verdict::InSequence(10));
    assert_eq!(
        apply(&mut book, &mut p, &frame("update", &[lv("99", "2")], &[], 0, Some((10, 15)))),
        Verdict::InSequence(15)
    );
    assert_eq!(
        apply(&mut book, &mut p, &frame("update", &[], &[], 0, Some((15, 15)))),
        Verdict::Stale { last: 15, got: 15 }
    );
    assert_eq!(
        apply(&mut book, &mut p, &frame("update", &[lv("98", "1")], &[], 0, Some((15, 3)))),
        Verdict::InSequence(3)
    );
    assert_eq!(
        apply(&mut book, &mut p, &frame("update", &[], &[lv("101", "0")], 0, Some((3, 5)))),
        Verdict::InSequence(5)
    );
    assert_eq!((book.state(), book.proof(), book.sequence()), (State::Valid, Proof::Sequence(5), Some(5)));
    assert_eq!(book.len(Side::Bid), 3);
    // A lost message: the next prevSeqId is not 5. Invalid at once, and nothing applies after.
    assert_eq!(
        apply(&mut book, &mut p, &frame("update", &[], &[], 0, Some((7, 8)))),
        Verdict::Gap { expected: 5, got: 7 }
    );
    assert_eq!(book.state(), State::Invalid(Invalid::SequenceGap { expected: 5, got: 7 }));
    assert_eq!(book.proof(), Proof::None);
    assert_eq!(apply(&mut book, &mut p, &frame("update", &[], &[], 0, Some((8, 9)))), Verdict::Skipped);
    // Unnumbered frames (recorded before seqId): the checksum alone; with none, unverified.
    let mut old = Book::for_rule::<OkxSeq>(depth400(), None);
    assert_eq!(apply(&mut old, &mut p, &frame("snapshot", &b, &a, 0, None)), Verdict::Whole);
    assert_eq!(old.proof(), Proof::Snapshot);
    assert_eq!(apply(&mut old, &mut p, &frame("update", &[lv("99", "1")], &[], 0, None)), Verdict::Unchecked);
    assert_eq!(old.state(), State::Unverified);
}

/// One step of a random OKX session, as the exchange lives it.
#[derive(Debug, Clone)]
enum Step {
    /// A fresh snapshot (a resubscribe).
    Snapshot(Vec<(bool, u32, u32)>),
    /// An update: its levels, how far `seqId` moves (0: a maintenance reset to a low id), and
    /// whether it reaches the client.
    Update(Vec<(bool, u32, u32)>, u8, bool),
    /// A keepalive: no levels, `prevSeqId == seqId == last`.
    Keepalive,
    /// The last frame sent, sent again.
    Duplicate,
}

fn step() -> impl Strategy<Value = Step> {
    let level = (any::<bool>(), 0u32..40, 0u32..4);
    let levels = prop::collection::vec(level, 0..8);
    prop_oneof![
        1 => levels.clone().prop_map(Step::Snapshot),
        12 => (levels, 0u8..4, prop::bool::weighted(0.9)).prop_map(|(l, k, sent)| Step::Update(l, k, sent)),
        1 => Just(Step::Keepalive),
        1 => Just(Step::Duplicate),
    ]
}

/// Bids below 120, asks from 120: the exchange's book never crosses.
fn text(bid: bool, p: u32, q: u32) -> (String, String) {
    let price = if bid { 100 + p / 2 } else { 120 + p / 2 };
    let price = if p.is_multiple_of(2) { format!("{price}") } else { format!("{price}.5") };
    (price, if q == 0 { "0".to_owned() } else { format!("{q}.{q}") })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 8 } else { 256 }, ..ProptestConfig::default() })]

    /// After every frame the book is valid exactly when the reference says so, and a valid book
    /// equals the exchange's book level by level, with the `seqId` (or the checksum) it rests on.
    #[test]
    fn valid_means_the_exchanges_book(steps in prop::collection::vec(step(), 1..60), crc_mode in 0u8..3) {
        let mut parser = Parser::new();
        let mut book = Book::for_rule::<OkxSeq>(Depth::new(5).unwrap(), None);
        // The exchange's true book (kept to 5 levels as the client does) and its numbering.
        let mut exch = Model::default();
        let mut seq: u64 = 1000;
        let mut last_sent: Option<String> = None;
        // The reference client.
        let (mut valid, mut last): (bool, Option<u64>) = (false, None);
        let mut client = Model::default();
        for s in steps {
            let (text_frame, snapshot, prev, id, empty) = match s {
                Step::Snapshot(ls) => {
                    exch.clear();
                    let (mut b, mut a) = (Vec::new(), Vec::new());
                    for (bid, p, q) in ls {
                        let (pt, qt) = text(bid, p, q.max(1));
                        exch.set(if bid { Side::Bid } else { Side::Ask }, &pt, &qt, None);
                        if bid { b.push((pt, qt)) } else { a.push((pt, qt)) }
                    }
                    exch.truncate(5);
                    seq += 7;
                    let crc = if crc_mode == 1 { reference_crc(&exch) } else { 0 };
                    (frame("snapshot", &b, &a, crc, Some((-1, seq))), true, None, seq, false)
                }
                Step::Update(ls, k, sent) => {
                    let prev = seq;
                    seq = if k == 0 { seq % 97 + 1 } else { seq + u64::from(k) };
                    let (mut b, mut a) = (Vec::new(), Vec::new());
                    for (bid, p, q) in ls {
                        let (pt, qt) = text(bid, p, q);
                        exch.set(if bid { Side::Bid } else { Side::Ask }, &pt, &qt, None);
                        if bid { b.push((pt, qt)) } else { a.push((pt, qt)) }
                    }
                    exch.truncate(5);
                    let crc = match crc_mode { 1 => reference_crc(&exch), 2 => reference_crc(&exch) ^ 1, _ => 0 };
                    // A wrong checksum only on some frames, so that books also get valid.
                    let crc = if crc_mode == 2 && !seq.is_multiple_of(5) { 0 } else { crc };
                    let empty = b.is_empty() && a.is_empty();
                    let f = frame("update", &b, &a, crc, Some((i64::try_from(prev).unwrap(), seq)));
                    if !sent { continue; }
                    (f, false, Some(prev), seq, empty)
                }
                Step::Keepalive => (frame("update", &[], &[], 0, Some((i64::try_from(seq).unwrap(), seq))), false, Some(seq), seq, true),
                Step::Duplicate => {
                    let Some(f) = last_sent.clone() else { continue };
                    let v: serde_json::Value = serde_json::from_str(&f).unwrap();
                    let d = &v["data"][0];
                    let snapshot = v["action"] == "snapshot";
                    let prev = d["prevSeqId"].as_i64().and_then(|p| u64::try_from(p).ok());
                    let id = d["seqId"].as_u64().unwrap();
                    let empty = d["bids"].as_array().unwrap().is_empty() && d["asks"].as_array().unwrap().is_empty();
                    if snapshot {
                        // Resending an old snapshot would also reset the exchange: skip it.
                        continue;
                    }
                    (f, false, prev, id, empty)
                }
            };
            // The reference client, from the docs' rule.
            let v: serde_json::Value = serde_json::from_str(&text_frame).unwrap();
            let d = &v["data"][0];
            let crc = d["checksum"].as_i64().unwrap();
            let apply_levels = |m: &mut Model| {
                for (key, side) in [("asks", Side::Ask), ("bids", Side::Bid)] {
                    for l in d[key].as_array().unwrap() {
                        m.set(side, l[0].as_str().unwrap(), l[1].as_str().unwrap(), None);
                    }
                }
                m.truncate(5);
            };
            let mut expect_proof = None;
            if snapshot {
                client.clear();
                apply_levels(&mut client);
                last = Some(id);
                valid = !client.is_crossed() && (crc == 0 || i64::from(reference_crc(&client)) == crc);
                expect_proof = Some(if crc == 0 { Proof::Sequence(id) } else { Proof::Checksum(u32::try_from(crc & 0xffff_ffff).unwrap()) });
            } else if valid {
                if prev != last {
                    valid = false;
                } else if !(empty && Some(id) == last) {
                    apply_levels(&mut client);
                    last = Some(id);
                    valid = !client.is_crossed() && (crc == 0 || i64::from(reference_crc(&client)) == crc);
                    expect_proof = Some(if crc == 0 { Proof::Sequence(id) } else { Proof::Checksum(u32::try_from(crc & 0xffff_ffff).unwrap()) });
                }
            }
            let Ok(Message::Book(b)) = parser.parse_okx(text_frame.as_bytes()) else { panic!("{text_frame}") };
            let verdict = book.apply::<OkxSeq>(&b.frame()).unwrap();
            prop_assert_eq!(book.state().is_valid(), valid, "{:?} after {}", verdict, text_frame);
            if valid {
                prop_assert_eq!(book.sequence(), last);
                if let Some(p) = expect_proof {
                    prop_assert_eq!(book.proof(), p);
                }
                let mine = (book_side(&book, Side::Bid), book_side(&book, Side::Ask));
                prop_assert_eq!(mine, (client.bids_best_first(), client.asks_best_first()));
                prop_assert_eq!(book.okx_checksum().cast_signed(), reference_crc(&client));
            }
            last_sent = Some(text_frame);
        }
    }
}

/// OKX's REST bootstrap (protocols.md §5 "Planned"): a REST snapshot at `seqId` S; the first
/// update applied after it links to S or spans it (`prevSeqId < S < seqId`), then links rule.
#[test]
fn rest_snapshot_bridges_by_seq_id() {
    let mut p = Parser::new();
    let rest = |seq: u64| {
        format!(
            r#"{{"code":"0","msg":"","data":[{{"asks":[["101","1","0","1"]],"bids":[["100","1","0","1"]],"ts":"1","seqId":{seq}}}]}}"#
        )
    };
    let fetched = |book: &mut Book, p: &mut Parser, seq: u64| {
        let body = rest(seq);
        let f = p.parse_snapshot::<plumb_wire::okx::Okx>(body.as_bytes()).unwrap();
        book.apply_fetched::<OkxSeq>(&f).unwrap()
    };
    let mut book = Book::for_rule::<OkxSeq>(depth400(), None);
    assert_eq!(fetched(&mut book, &mut p, 20), Verdict::InSequence(20));
    assert!(book.is_bridging());
    assert_eq!((book.state(), book.proof()), (State::Valid, Proof::Sequence(20)));
    assert_eq!(book_side(&book, Side::Bid), [("100".to_owned(), "1".to_owned())]);
    // Spans the snapshot (18 < 20 < 23): applied, and the links rule from 23 on.
    let v = apply(&mut book, &mut p, &frame("update", &[lv("99", "2")], &[], 0, Some((18, 23))));
    assert_eq!(v, Verdict::InSequence(23));
    assert!(!book.is_bridging());
    let v = apply(&mut book, &mut p, &frame("update", &[], &[], 0, Some((22, 24))));
    assert_eq!(v, Verdict::Gap { expected: 23, got: 22 });

    // Starts after the snapshot (updates were lost in between), or ends at or before it (the
    // session drops those; one reaching the rule is not a bridge): gaps.
    for link in [(21, 25), (15, 19), (15, 20)] {
        let mut book = Book::for_rule::<OkxSeq>(depth400(), None);
        fetched(&mut book, &mut p, 20);
        let v = apply(&mut book, &mut p, &frame("update", &[lv("99", "2")], &[], 0, Some(link)));
        assert_eq!(v, Verdict::Gap { expected: 20, got: link.0.cast_unsigned() }, "{link:?}");
        assert_eq!(book.state(), State::Invalid(Invalid::SequenceGap { expected: 20, got: link.0.cast_unsigned() }));
    }

    // A reset right after the snapshot links to it exactly and is applied.
    let mut book = Book::for_rule::<OkxSeq>(depth400(), None);
    fetched(&mut book, &mut p, 20);
    assert_eq!(
        apply(&mut book, &mut p, &frame("update", &[], &[lv("102", "1")], 0, Some((20, 3)))),
        Verdict::InSequence(3)
    );
    assert_eq!(
        apply(&mut book, &mut p, &frame("update", &[], &[], 0, Some((3, 3)))),
        Verdict::Stale { last: 3, got: 3 }
    );

    // A websocket snapshot after a REST one replaces it, and exact links rule again.
    let mut book = Book::for_rule::<OkxSeq>(depth400(), None);
    fetched(&mut book, &mut p, 20);
    let (b, a) = (vec![lv("100", "1")], vec![lv("101", "1")]);
    apply(&mut book, &mut p, &frame("snapshot", &b, &a, 0, Some((-1, 30))));
    assert!(!book.is_bridging());
    assert_eq!(
        apply(&mut book, &mut p, &frame("update", &[], &[], 0, Some((29, 31)))),
        Verdict::Gap { expected: 30, got: 29 }
    );
}

/// Where the buffered updates take over from a REST snapshot at S (`Rule::bridge_start`).
#[test]
fn bridge_start_matches_ids_and_refuses_what_it_cannot_tell() {
    use plumb_book::Rule;
    use plumb_wire::Sequence;
    let seq = |prev: u64, last: u64| Some(Sequence { first: last, last, prev: Some(prev) });
    let start = |at: u64, b: &[Option<Sequence>]| OkxSeq::bridge_start(at, b.iter().copied());
    let buffer = [seq(10, 12), seq(12, 15), seq(15, 18)];
    // An exact id: after it.
    assert_eq!(start(15, &buffer), Some(2));
    assert_eq!(start(18, &buffer), Some(3));
    // An id between two updates (OKX's books channel skips ids): the one spanning it.
    assert_eq!(start(13, &buffer), Some(1));
    assert_eq!(start(11, &buffer), Some(0));
    // Older than the buffer, or ahead of all of it: fetched again.
    assert_eq!(start(9, &buffer), None);
    assert_eq!(start(19, &buffer), None);
    // A reset in the buffer: only an exact id will do.
    let reset = [seq(10, 12), seq(12, 3), seq(3, 5)];
    assert_eq!(start(3, &reset), Some(2));
    assert_eq!(start(11, &reset), None);
    assert_eq!(start(4, &reset), None);
    assert_eq!(start(7, &[]), None);
}
