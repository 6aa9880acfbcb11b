//! The publication layer: what readers see, and that they never see a torn book.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use plumb_book::kraken::Outcome;
use plumb_book::publish::{Status, channel};
use plumb_book::{Book, Depth, Precision, Side};
use plumb_wire::Parser;
use plumb_wire::kraken::Message;

fn session() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/kraken/captures/btcusd-v2-book10.capture");
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

const BTC: Precision = Precision { price: 1, qty: 8 };

fn apply(parser: &mut Parser, book: &mut Book, frame: &str) -> bool {
    let Ok(Message::Book(m)) = parser.parse(frame.as_bytes()) else { return false };
    m.entries().all(|e| matches!(book.apply_kraken(m.kind, &e), Ok(Outcome::Verified(_))))
}

#[test]
fn readers_see_what_was_published() {
    let (mut publisher, reader) = channel(10);
    assert_eq!(reader.version(), 0);
    assert_eq!(reader.top().header.status, Status::Empty);
    let mut parser = Parser::new();
    let mut book = Book::new(Depth::D10, Some(BTC));
    let frames = session();
    for (i, f) in frames.iter().take(50).enumerate() {
        assert!(apply(&mut parser, &mut book, f));
        publisher.publish(&book, 1_000 + i as u64, 2_000 + i as u64);
        let top = reader.top();
        assert_eq!(top.header.version, i as u64 + 1);
        assert_eq!(reader.version(), i as u64 + 1);
        assert_eq!(top.header.status, Status::Valid);
        assert_eq!(top.header.checksum, book.checksum());
        assert_eq!((top.header.exchange_time_ns, top.header.received_ns), (1_000 + i as u64, 2_000 + i as u64));
        assert_eq!(top.bid, book.best(Side::Bid));
        assert_eq!(top.ask, book.best(Side::Ask));
        let snap = reader.snapshot::<10>();
        assert_eq!(snap.bids(), book.quotes(Side::Bid).collect::<Vec<_>>());
        assert_eq!(snap.asks(), book.quotes(Side::Ask).collect::<Vec<_>>());
        assert_eq!(snap.checksum(), book.checksum());
        assert_eq!(snap.bids()[0].price.to_decimal(), book.best(Side::Bid).unwrap().price.to_decimal());
    }
    // Fewer levels than published, into caller-owned buffers.
    let mut bids = [snap_zero(); 3];
    let mut asks = [snap_zero(); 1];
    let h = reader.copy_into(&mut bids, &mut asks);
    assert_eq!((h.bids, h.asks), (3, 1));
    assert_eq!(bids.to_vec(), book.quotes(Side::Bid).take(3).collect::<Vec<_>>());
    // The caller decides the status (a watchdog marking the book stale).
    publisher.publish_with(&book, Status::Stale, 0, 0);
    assert_eq!(reader.top().header.status, Status::Stale);
    assert!(!reader.top().header.status.is_valid());
}

fn snap_zero() -> plumb_book::Quote {
    let z = plumb_book::Decimal64 { mantissa: 0, scale: 0 };
    plumb_book::Quote { price: z, qty: z }
}

#[test]
fn an_invalid_book_is_published_as_invalid() {
    let (mut publisher, reader) = channel(10);
    let mut parser = Parser::new();
    let mut book = Book::new(Depth::D10, Some(BTC));
    let frames = session();
    assert!(apply(&mut parser, &mut book, &frames[0]));
    // The same update with a wrong checksum.
    let (head, tail) = frames[1].split_once("\"checksum\":").unwrap();
    let bad = format!("{head}\"checksum\":7{}", tail.trim_start_matches(|c: char| c.is_ascii_digit()));
    assert!(!apply(&mut parser, &mut book, &bad));
    assert!(!book.state().is_valid());
    publisher.publish(&book, 0, 0);
    assert_eq!(reader.top().header.status, Status::Invalid);
}

/// The torn-read test: the writer replays a real recorded session in a loop, publishing after
/// every message, while reader threads copy the top 10 and recompute Kraken's checksum of every
/// copy. A copy mixing two versions would not match the checksum published with it.
#[test]
fn no_reader_ever_sees_a_torn_book() {
    let reads_per_reader: u64 = if cfg!(miri) { 200 } else { 1_000_000 };
    let readers = 2;
    let (mut publisher, reader) = channel(10);
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, published) = (Arc::clone(&stop), Arc::clone(&published));
        std::thread::spawn(move || {
            let frames = session();
            let mut parser = Parser::new();
            let mut book = Book::new(Depth::D10, Some(BTC));
            while !stop.load(Ordering::Relaxed) {
                for f in &frames {
                    assert!(apply(&mut parser, &mut book, f), "the session verifies");
                    publisher.publish(&book, 0, 0);
                    published.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let handles: Vec<_> = (0..readers)
        .map(|_| {
            let reader = reader.clone();
            std::thread::spawn(move || {
                let (mut last, mut distinct) = (0, 0u64);
                for _ in 0..reads_per_reader {
                    let snap = reader.snapshot::<10>();
                    let h = snap.header;
                    if h.version == 0 {
                        continue;
                    }
                    assert_eq!(snap.checksum(), h.checksum, "torn read at version {}", h.version);
                    assert_eq!(h.status, Status::Valid);
                    assert!(h.version >= last, "versions go backwards: {} after {last}", h.version);
                    assert!(h.bids > 0 && h.asks > 0);
                    distinct += u64::from(h.version != last);
                    last = h.version;
                }
                distinct
            })
        })
        .collect();
    let distinct: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // The readers really raced the writer: they saw many versions, not one.
    assert!(published.load(Ordering::Relaxed) > 1_000);
    for d in distinct {
        assert!(d > 100, "a reader saw only {d} versions");
    }
}

/// Validity with an age bound, in one call: valid and received recently enough, or not at all.
#[test]
fn valid_but_old_is_not_valid_within_a_bound() {
    use std::time::Duration;
    let (mut publisher, reader) = channel(10);
    let mut parser = Parser::new();
    let mut book = Book::new(Depth::D10, Some(BTC));
    assert!(apply(&mut parser, &mut book, &session()[0]));
    let received = 1_700_000_000_000_000_000;
    publisher.publish(&book, 0, received);
    let h = reader.top().header;
    assert!(h.status.is_valid());
    assert!(h.is_valid_at(received + 400_000_000, Duration::from_millis(500)));
    assert!(h.is_valid_at(received + 500_000_000, Duration::from_millis(500)));
    assert!(!h.is_valid_at(received + 500_000_001, Duration::from_millis(500)), "valid but 500 ms + 1 ns old");
    // A receive time in the future (another clock) is not old.
    assert!(h.is_valid_at(received - 1, Duration::ZERO));
    // Not valid: never, whatever the age.
    publisher.publish_with(&book, Status::Stale, 0, received);
    assert!(!reader.top().header.is_valid_at(received, Duration::from_secs(60)));
    // Never received: never valid.
    publisher.publish_with(&book, Status::Valid, 0, 0);
    assert!(!reader.top().header.is_valid_within(Duration::from_secs(3600)));
    // By the wall clock: a book received just now is valid within a second; one from 2020 is not.
    let now = wall_now_ns();
    publisher.publish_with(&book, Status::Valid, 0, now);
    assert!(reader.top().header.is_valid_within(Duration::from_secs(1)));
    publisher.publish_with(&book, Status::Valid, 0, 1_600_000_000_000_000_000);
    assert!(!reader.top().header.is_valid_within(Duration::from_secs(1)));
}

/// What a strategy computes from a top of book: the spread, exact; statuses print as words.
#[test]
fn spreads_are_exact_and_statuses_print() {
    use plumb_book::Decimal64;
    let bid = Decimal64 { mantissa: 650_091, scale: 1 }; // 65009.1
    let ask = Decimal64 { mantissa: 6_501_000, scale: 2 }; // 65010.00
    let spread = ask.checked_sub(bid).unwrap();
    assert_eq!((spread.mantissa, spread.scale), (90, 2));
    assert_eq!(spread.to_string(), "0.90");
    assert_eq!(spread.to_decimal(), rust_decimal::Decimal::new(9, 1));
    assert_eq!(bid.checked_sub(ask).unwrap().to_string(), "-0.90");
    assert_eq!(bid.checked_add(ask).unwrap().to_string(), "130019.10");
    assert!(bid < ask && Decimal64 { mantissa: 15, scale: 1 } < Decimal64 { mantissa: 150, scale: 2 });
    assert_eq!(Decimal64 { mantissa: 1_500, scale: 3 }.rescaled(1), Some(Decimal64 { mantissa: 15, scale: 1 }));
    assert_eq!(Decimal64 { mantissa: 1_501, scale: 3 }.rescaled(1), None, "would lose a digit");
    assert_eq!(Decimal64 { mantissa: i64::MAX, scale: 0 }.checked_add(Decimal64 { mantissa: 1, scale: 0 }), None);
    assert_eq!(Status::Resyncing.to_string(), "resyncing");
    assert_eq!(format!("{}", Status::Valid), "valid");
}

#[expect(clippy::disallowed_methods, reason = "the test checks the wall-clock form of the age bound")]
fn wall_now_ns() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()).unwrap()
}

/// Every way of waiting sees each new version: the writer publishes the next one only once the
/// reader has seen the last, so a reader that is not woken (a parked one the writer forgot) stalls
/// the exchange, and the generous deadline below fails the test instead of hanging it.
#[test]
#[expect(clippy::disallowed_methods, reason = "a liveness deadline reads the clock")]
fn readers_wait_for_new_versions_by_spinning_yielding_or_parking() {
    use plumb_book::publish::Wait;
    use std::time::{Duration, Instant};
    for how in [Wait::Spin, Wait::Yield, Wait::Park] {
        let (mut publisher, reader) = channel(10);
        assert_eq!(reader.wait_newer(0, how, Duration::from_millis(5)), 0, "{how:?}");
        let book = Book::new(Depth::D10, None);
        let acked = Arc::new(AtomicU64::new(0));
        let ack = Arc::clone(&acked);
        let waiter = std::thread::spawn(move || {
            let mut seen = 0;
            while seen < 50 {
                seen = reader.wait_newer(seen, how, Duration::from_secs(120));
                ack.store(seen, Ordering::Release);
            }
        });
        for k in 1..=50 {
            publisher.publish(&book, 0, 0);
            let deadline = Instant::now() + Duration::from_secs(20);
            while acked.load(Ordering::Acquire) < k {
                assert!(Instant::now() < deadline, "{how:?}: version {k} not seen");
                std::thread::yield_now();
            }
        }
        waiter.join().unwrap();
    }
}
