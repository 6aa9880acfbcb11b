//! The whole path (parse, apply, truncate, verify, through the replay engine) allocates nothing per
//! message once warmed up. A counting global allocator watches this test's thread.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a bad fixture")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use plumb::book::{Depth, Precision};
use plumb::replay::{FrameKind, Replay};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// thread-local `Cell`, which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `dealloc`, and the caller guarantees `new_size` is valid for `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

fn capture(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraken/captures").join(name);
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn count(name: &str, depth: Depth, precision: Option<Precision>) -> (u64, u64) {
    let frames = capture(name);
    let mut replay = Replay::new(depth, None);
    if let Some(p) = precision {
        replay.set_precision("BTC/USD", p);
    }
    // Warm up: one pass grows every buffer to the sizes this session needs.
    for f in &frames {
        replay.frame(f.as_bytes());
    }
    let before = allocations();
    let mut books = 0;
    for f in &frames {
        if replay.frame(f.as_bytes()) == FrameKind::Book {
            books += 1;
        }
    }
    (allocations() - before, books)
}

#[test]
fn no_allocation_per_message_on_the_whole_path() {
    let (allocs, books) = count("btcusd-v2-book10.capture", Depth::D10, Some(Precision { price: 1, qty: 8 }));
    assert_eq!(books, 510);
    assert_eq!(allocs, 0, "v2: {allocs} allocations over {books} book messages");
    let (allocs, books) = count("xbtusd-v1-book10.capture", Depth::D10, None);
    assert_eq!(books, 980);
    assert_eq!(allocs, 0, "v1: {allocs} allocations over {books} book messages");
    let (allocs, books) = count("adaxbt-v1-book1000.capture", Depth::try_from(1000).unwrap(), None);
    assert_eq!(books, 348);
    assert_eq!(allocs, 0, "v1 depth 1000: {allocs} allocations over {books} book messages");
}

#[test]
fn publishing_allocates_nothing() {
    let frames = capture("btcusd-v2-book10.capture");
    let mut parser = plumb::wire::Parser::new();
    let mut book = plumb::book::Book::new(Depth::D10, Some(Precision { price: 1, qty: 8 }));
    let (mut publisher, reader) = plumb::book::publish::channel(10);
    let mut run = |parser: &mut plumb::wire::Parser| {
        for f in &frames {
            let Ok(plumb::wire::kraken::Message::Book(m)) = parser.parse(f.as_bytes()) else { panic!("not a book") };
            for e in m.entries() {
                book.apply_kraken(m.kind, &e).unwrap();
            }
            publisher.publish(&book, 0, 0);
            let _ = reader.top();
            let _ = reader.snapshot::<10>();
        }
    };
    run(&mut parser);
    let before = allocations();
    run(&mut parser);
    assert_eq!(allocations() - before, 0);
    assert_eq!(reader.version(), 2 * frames.len() as u64);
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    assert!(allocations() > before);
    drop(v);
}

#[expect(clippy::disallowed_methods, reason = "one Instant for the session, which never reads the clock")]
fn epoch() -> std::time::Instant {
    std::time::Instant::now()
}

/// The connector's core: `Session::handle_frame` (parse, apply, verify, publish, the book event and
/// the metrics handles) and draining its events allocate nothing per message once warmed up.
#[test]
fn the_session_allocates_nothing_per_message() {
    let frames = capture("btcusd-v2-book10.capture");
    let mut session = plumb::feed::Session::new(plumb::feed::Config::default());
    let reader = session.add_symbol("BTC/USD").unwrap();
    let t = epoch();
    let instruments = br#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":"BTC/USD","qty_precision":8,"price_precision":1}]}}"#;
    let run = |session: &mut plumb::feed::Session| {
        session.handle_connected(t);
        session.handle_frame(instruments, t, 0);
        while session.poll_command().is_some() {}
        for f in &frames {
            session.handle_frame(f.as_bytes(), t, 1);
            while let Some(e) = session.poll_event() {
                std::hint::black_box(e);
            }
        }
        session.handle_disconnected(t, plumb::feed::Disconnect::ServerClosed);
        while session.poll_event().is_some() {}
    };
    // Warm up: every buffer and queue grows to what this session needs.
    run(&mut session);
    let verified = session.stats().counts().checksums_verified;
    assert!(verified > 400, "{verified}");
    // Measure the frames alone (connecting sends requests, which are formatted strings).
    session.handle_connected(t);
    session.handle_frame(instruments, t, 0);
    while session.poll_command().is_some() {}
    while session.poll_event().is_some() {}
    let before = allocations();
    for f in &frames {
        session.handle_frame(f.as_bytes(), t, 1);
        while let Some(e) = session.poll_event() {
            std::hint::black_box(e);
        }
    }
    let allocated = allocations() - before;
    assert_eq!(session.stats().counts().checksums_verified, 2 * verified);
    assert!(reader.top().header.status.is_valid());
    assert_eq!(allocated, 0, "{allocated} allocations over {} frames", frames.len());
}
