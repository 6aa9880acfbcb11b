//! Binance's rule: the bridge from a REST snapshot to the buffered events, spot (`U`/`u`) and
//! USD-M (`pu`), as the docs state it, and random sessions against a reference book.

use plumb_book::rule::{BinanceSeq, Rule, Verdict};
use plumb_book::{Book, Depth, Invalid, Proof, Side, State};
use plumb_wire::Parser;
use plumb_wire::Sequence;
use plumb_wire::binance::{Binance, Message};
use proptest::prelude::*;

fn event(first: u64, last: u64, pu: Option<u64>, bids: &[(u64, u64)], asks: &[(u64, u64)]) -> String {
    let side = |l: &[(u64, u64)]| l.iter().map(|(p, q)| format!(r#"["{p}.5","{q}"]"#)).collect::<Vec<_>>().join(",");
    let pu = pu.map_or(String::new(), |p| format!(r#","pu":{p}"#));
    format!(
        r#"{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":{first},"u":{last}{pu},"b":[{}],"a":[{}]}}"#,
        side(bids),
        side(asks)
    )
}

fn snapshot(id: u64, bids: &[(u64, u64)], asks: &[(u64, u64)]) -> String {
    let side = |l: &[(u64, u64)]| l.iter().map(|(p, q)| format!(r#"["{p}.5","{q}"]"#)).collect::<Vec<_>>().join(",");
    format!(r#"{{"lastUpdateId":{id},"bids":[{}],"asks":[{}]}}"#, side(bids), side(asks))
}

fn apply(book: &mut Book, p: &mut Parser, text: &str) -> Verdict {
    let Ok(Message::Book(b)) = p.parse_binance(text.as_bytes()) else { panic!("{text}") };
    book.apply::<BinanceSeq>(&b.frame()).unwrap()
}

fn fetched(book: &mut Book, p: &mut Parser, text: &str) -> Verdict {
    let f = p.parse_snapshot::<Binance>(text.as_bytes()).unwrap();
    book.apply_fetched::<BinanceSeq>(&f).unwrap()
}

fn book() -> Book {
    Book::for_rule::<BinanceSeq>(Depth::new(1000).unwrap(), None)
}

fn seqs(events: &[(u64, u64, Option<u64>)]) -> Vec<Option<Sequence>> {
    events.iter().map(|&(first, last, prev)| Some(Sequence { first, last, prev })).collect()
}

#[test]
fn spot_bridge_takes_a_straddling_or_exactly_contiguous_first_event() {
    let buffered = seqs(&[(90, 99, None), (100, 104, None), (105, 110, None)]);
    // Drop u <= L; the first left must satisfy U <= L + 1 <= u.
    assert_eq!(BinanceSeq::bridge_start(101, buffered.iter().copied()), Some(1)); // straddles
    assert_eq!(BinanceSeq::bridge_start(99, buffered.iter().copied()), Some(1)); // U == L + 1 exactly
    assert_eq!(BinanceSeq::bridge_start(104, buffered.iter().copied()), Some(2)); // U == L + 1 exactly
    assert_eq!(BinanceSeq::bridge_start(80, buffered.iter().copied()), None); // older than the buffer
    assert_eq!(BinanceSeq::bridge_start(120, buffered.iter().copied()), Some(3)); // ahead: wait for the next
    assert_eq!(BinanceSeq::bridge_start(5, std::iter::empty()), Some(0));

    let mut p = Parser::new();
    let mut b = book();
    // Unverified until an event reaches back to it: the snapshot might stand behind the stream.
    assert_eq!(fetched(&mut b, &mut p, &snapshot(99, &[(10, 1)], &[(12, 1)])), Verdict::Unchecked);
    assert!(b.is_bridging() && b.state() == State::Unverified);
    assert_eq!(apply(&mut b, &mut p, &event(95, 99, None, &[(10, 7)], &[])), Verdict::Stale { last: 99, got: 99 });
    assert_eq!(apply(&mut b, &mut p, &event(100, 104, None, &[(11, 2)], &[])), Verdict::InSequence(104));
    assert!(!b.is_bridging() && b.state() == State::Valid);
    assert_eq!(b.best(Side::Bid).unwrap().price.to_string(), "11.5");
    // After the bridge: U == last + 1, or overlapping; a skip is a gap.
    assert_eq!(apply(&mut b, &mut p, &event(105, 106, None, &[], &[(12, 0)])), Verdict::InSequence(106));
    assert_eq!(apply(&mut b, &mut p, &event(103, 107, None, &[], &[(13, 4)])), Verdict::InSequence(107));
    assert_eq!(apply(&mut b, &mut p, &event(109, 110, None, &[], &[])), Verdict::Gap { expected: 108, got: 109 });
    assert_eq!(b.state(), State::Invalid(Invalid::SequenceGap { expected: 108, got: 109 }));
    assert_eq!(apply(&mut b, &mut p, &event(111, 112, None, &[], &[])), Verdict::Skipped);
    // A first event that does not reach the snapshot shows the snapshot stood behind the stream
    // (or events were lost): not a break in a linked book, but the book is not valid.
    let mut b = book();
    fetched(&mut b, &mut p, &snapshot(50, &[(10, 1)], &[(12, 1)]));
    assert_eq!(apply(&mut b, &mut p, &event(52, 60, None, &[], &[])), Verdict::Behind { snapshot: 50, first: 52 });
    assert_eq!(b.state(), State::Invalid(Invalid::SequenceGap { expected: 51, got: 52 }));
    assert_eq!(apply(&mut b, &mut p, &event(61, 62, None, &[], &[])), Verdict::Skipped);
}

#[test]
fn usdm_bridge_and_pu_chain() {
    let buffered = seqs(&[(90, 99, Some(80)), (100, 104, Some(99)), (110, 120, Some(104))]);
    // Drop u < L; the first left must satisfy U <= L <= u (it may end exactly at L).
    assert_eq!(BinanceSeq::bridge_start(99, buffered.iter().copied()), Some(0));
    assert_eq!(BinanceSeq::bridge_start(102, buffered.iter().copied()), Some(1));
    assert_eq!(BinanceSeq::bridge_start(105, buffered.iter().copied()), None); // between events: no event holds 105
    assert_eq!(BinanceSeq::bridge_start(85, buffered.iter().copied()), None); // older than the buffer
    let mut p = Parser::new();
    let mut b = book();
    fetched(&mut b, &mut p, &snapshot(99, &[(10, 1)], &[(12, 1)]));
    assert_eq!(apply(&mut b, &mut p, &event(90, 99, Some(80), &[(10, 3)], &[])), Verdict::InSequence(99));
    assert_eq!(b.best(Side::Bid).unwrap().qty.to_string(), "3");
    assert_eq!(apply(&mut b, &mut p, &event(100, 104, Some(99), &[], &[])), Verdict::InSequence(104));
    // Futures ids are not contiguous: pu decides.
    assert_eq!(apply(&mut b, &mut p, &event(110, 120, Some(104), &[], &[])), Verdict::InSequence(120));
    // A duplicate is stale, not a gap; a wrong pu is a gap.
    assert_eq!(apply(&mut b, &mut p, &event(110, 120, Some(104), &[], &[])), Verdict::Stale { last: 120, got: 120 });
    assert_eq!(apply(&mut b, &mut p, &event(130, 140, Some(125), &[], &[])), Verdict::Gap { expected: 120, got: 125 });
    assert!(matches!(b.state(), State::Invalid(_)));
    assert_eq!(b.proof(), Proof::None);
    // A first event that neither holds the snapshot's id nor links to it: the snapshot stood
    // behind the stream (or events were lost), and is fetched again.
    let mut b = book();
    fetched(&mut b, &mut p, &snapshot(99, &[(10, 1)], &[(12, 1)]));
    assert_eq!(
        apply(&mut b, &mut p, &event(101, 104, Some(100), &[], &[])),
        Verdict::Behind { snapshot: 99, first: 101 }
    );
    assert!(matches!(b.state(), State::Invalid(_)));
}

/// One message of a random Binance session.
#[derive(Debug, Clone)]
enum Op {
    /// An event that changes these levels (price offset, quantity; 0 deletes), sent or lost.
    Event { levels: Vec<(bool, u8, u8)>, span: u8, lost: bool },
    /// A REST snapshot of the exchange's book now.
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (proptest::collection::vec((any::<bool>(), 0u8..40, 0u8..5), 0..6), 0u8..4, proptest::bool::weighted(0.08))
            .prop_map(|(levels, span, lost)| Op::Event { levels, span, lost }),
        1 => Just(Op::Snapshot),
    ]
}

proptest! {
    /// Random spot and USD-M sessions with lost events and snapshots fetched at any time: a book
    /// the rule calls valid equals the exchange's book (a `BTreeMap` applying every event, lost
    /// ones included), and a lost event never goes unnoticed past the next event.
    #[test]
    fn valid_means_the_exchanges_book(ops in proptest::collection::vec(op(), 1..80), usdm: bool) {
        use std::collections::BTreeMap;
        let mut truth: [BTreeMap<u64, u64>; 2] = [BTreeMap::new(), BTreeMap::new()];
        let mut p = Parser::new();
        let mut b = book();
        let mut id = 1000u64;
        let mut last_sent_u: Option<u64> = None;
        let mut lost_since_snapshot = false;
        for op in ops {
            match op {
                Op::Snapshot => {
                    let side = |m: &BTreeMap<u64, u64>| m.iter().map(|(&p, &q)| (p, q)).collect::<Vec<_>>();
                    fetched(&mut b, &mut p, &snapshot(id, &side(&truth[0]), &side(&truth[1])));
                    lost_since_snapshot = false;
                }
                Op::Event { levels, span, lost } => {
                    let first = id + 1;
                    id += 1 + u64::from(span) * if usdm { 3 } else { 1 };
                    let mut bids = Vec::new();
                    let mut asks = Vec::new();
                    for (bid, off, q) in levels {
                        // Bids below 100, asks above: never crossed.
                        let price = if bid { 60 + u64::from(off) } else { 101 + u64::from(off) };
                        let side = &mut truth[usize::from(!bid)];
                        if q == 0 { side.remove(&price); } else { side.insert(price, u64::from(q)); }
                        if bid { bids.push((price, u64::from(q))) } else { asks.push((price, u64::from(q))) }
                    }
                    let pu = if usdm { Some(last_sent_u.unwrap_or(first - 1)) } else { None };
                    let text = event(first, id, pu, &bids, &asks);
                    if lost {
                        lost_since_snapshot = true;
                        // The next event's pu still names the lost one's u.
                        last_sent_u = Some(id);
                        continue;
                    }
                    last_sent_u = Some(id);
                    let was_valid = b.state().is_valid() || (b.state() == State::Unverified && b.is_bridging());
                    let was_bridging = b.is_bridging();
                    let v = apply(&mut b, &mut p, &text);
                    // The snapshots here are the exchange's book now, never behind the stream: a
                    // first event that misses one follows a lost event, and leaves the book invalid.
                    if matches!(v, Verdict::Behind { .. }) {
                        prop_assert!(was_bridging && lost_since_snapshot && !b.state().is_valid(), "{:?}", v);
                    }
                    if lost_since_snapshot && b.state().is_valid() {
                        prop_assert!(false, "valid after a lost event: {:?}", v);
                    }
                    if was_valid && !lost_since_snapshot {
                        prop_assert!(matches!(v, Verdict::InSequence(_)), "nothing was lost: {:?}", v);
                    }
                }
            }
            if b.state().is_valid() {
                let held = |side: Side| b.quotes(side).map(|q| (q.price.to_string(), q.qty.to_string())).collect::<Vec<_>>();
                let want = |m: &BTreeMap<u64, u64>, rev: bool| {
                    let mut v: Vec<(String, String)> = m.iter().map(|(p, q)| (format!("{p}.5"), q.to_string())).collect();
                    if rev { v.reverse(); }
                    v
                };
                prop_assert_eq!(held(Side::Bid), want(&truth[0], true));
                prop_assert_eq!(held(Side::Ask), want(&truth[1], false));
            }
        }
    }
}
