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
