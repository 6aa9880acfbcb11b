//! The replay of an exchange with no snapshot on its stream (Binance): events kept for the next
//! `GET` line and bridged to it as the live session does, each counted once its fate is known.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use plumb::book::{Depth, State};
use plumb::feed::Binance;
use plumb::replay::{FrameKind, Replay};

fn event(first: u64, last: u64, bid: &str) -> String {
    format!(r#"{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":{first},"u":{last},"b":[["{bid}","1.0"]],"a":[]}}"#)
}

fn get(id: u64) -> String {
    format!(
        r#"GET http://127.0.0.1/api/v3/depth?symbol=BTCUSDT&limit=1000	{{"lastUpdateId":{id},"bids":[["100.00","2.0"]],"asks":[["101.00","3.0"]]}}"#
    )
}

#[test]
fn kept_events_count_once_their_fate_is_known() {
    let mut r = Replay::with_exchange(Binance, Depth::new(1000).unwrap());
    // Two events before the snapshot line: kept, counted nowhere yet.
    assert_eq!(r.line(event(10, 12, "99.10").as_bytes()), Some(FrameKind::Buffered));
    assert_eq!(r.line(event(13, 14, "99.20").as_bytes()), Some(FrameKind::Buffered));
    let c = r.counts();
    assert_eq!((c.frames, c.book_messages, c.unverified_updates, c.ignored), (2, 2, 2, 0), "still kept: {c:?}");
    // The snapshot at 12: the first event is in it (ignored), the second bridges it.
    assert_eq!(r.line(get(12).as_bytes()), Some(FrameKind::Book));
    let c = r.counts();
    assert_eq!(
        (c.frames, c.book_messages, c.ignored, c.sequence_verified, c.unverified_updates),
        (3, 2, 1, 1, 0),
        "{c:?}"
    );
    assert_eq!(r.book(plumb::feed::exchange::Api::Main, "BTCUSDT").unwrap().state(), State::Valid);
    // A gap: the event that shows it and the next wait for the next snapshot line.
    assert_eq!(r.line(event(20, 21, "99.30").as_bytes()), Some(FrameKind::Buffered));
    assert_eq!(r.line(event(22, 22, "99.40").as_bytes()), Some(FrameKind::Buffered));
    assert_eq!(r.counts().sequence_gaps, 1);
    assert!(matches!(r.book(plumb::feed::exchange::Api::Main, "BTCUSDT").unwrap().state(), State::Invalid(_)));
    // A snapshot line older than the kept events stood behind the stream: the feed fetched again
    // (as the live session does), it is ignored, not a gap, and they keep waiting.
    assert_eq!(r.line(get(15).as_bytes()), Some(FrameKind::Ignored));
    assert_eq!(r.counts().sequence_gaps, 1);
    // A newer one bridges them.
    assert_eq!(r.line(get(20).as_bytes()), Some(FrameKind::Book));
    let c = r.counts();
    assert_eq!(r.book(plumb::feed::exchange::Api::Main, "BTCUSDT").unwrap().state(), State::Valid);
    assert_eq!(r.book(plumb::feed::exchange::Api::Main, "BTCUSDT").unwrap().sequence(), Some(22));
    assert_eq!(
        (c.frames, c.book_messages, c.ignored, c.sequence_verified, c.unverified_updates),
        (7, 5, 2, 3, 0),
        "{c:?}"
    );
    // A malformed frame uses no id: the next event is still in sequence.
    assert!(matches!(r.line(br#"{"e":"depthUpdate","s":"BTCUSDT","U":23"#), Some(FrameKind::Error(_))));
    assert_eq!(r.line(event(23, 24, "99.50").as_bytes()), Some(FrameKind::Book));
    assert_eq!(r.counts().sequence_gaps, 1);
}

/// A snapshot line read before any event (the REST answer came first), older than the stream:
/// the first event does not reach back to it. The live session fetches again quietly (Binance's
/// procedure), so the replay counts no gap; the next snapshot line bridges the kept events.
#[test]
fn a_snapshot_line_behind_the_stream_is_not_a_gap() {
    let mut r = Replay::with_exchange(Binance, Depth::new(1000).unwrap());
    assert_eq!(r.line(get(30).as_bytes()), Some(FrameKind::Book));
    let book = |r: &Replay<Binance>| r.book(plumb::feed::exchange::Api::Main, "BTCUSDT").unwrap().state();
    assert_eq!(book(&r), State::Unverified);
    // The stream starts at 34: 31 to 33 went out before the subscription took effect.
    assert_eq!(r.line(event(34, 35, "99.10").as_bytes()), Some(FrameKind::Buffered));
    assert_eq!(r.line(event(36, 36, "99.20").as_bytes()), Some(FrameKind::Buffered));
    assert_eq!(r.counts().sequence_gaps, 0, "{:?}", r.counts());
    assert!(matches!(book(&r), State::Invalid(_)), "a snapshot behind the stream is not a valid book");
    // The fetch again, at 35: the first kept event is in it, the second bridges it.
    assert_eq!(r.line(get(35).as_bytes()), Some(FrameKind::Book));
    assert_eq!(book(&r), State::Valid);
    let c = r.counts();
    assert_eq!((c.sequence_gaps, c.sequence_verified, c.ignored, c.unverified_updates), (0, 1, 1, 0), "{c:?}");
    // Once an event has bridged the book, a break in the stream is a gap again.
    assert_eq!(r.line(event(38, 38, "99.30").as_bytes()), Some(FrameKind::Buffered));
    assert_eq!(r.counts().sequence_gaps, 1);
}
