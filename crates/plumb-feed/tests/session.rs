//! The sans-io `Session` alone: no sockets, no clock. Frames come from `plumb-sim`'s market
//! (whose checksum is written independently of `plumb-book`'s), time is an argument.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use plumb_book::Side;
use plumb_book::publish::Status;
use plumb_feed::{Command, Config, Disconnect, Error, Event, Pacing, ResyncReason, Session};
use plumb_sim::market::{self, Instrument, Rng, SimBook, View};
use proptest::prelude::*;

#[expect(clippy::disallowed_methods, reason = "one real Instant to offset virtual time from")]
fn epoch() -> Instant {
    Instant::now()
}

/// A scripted exchange: the true books, and the frames a depth-10 subscriber gets.
struct Exch {
    rng: Rng,
    books: Vec<SimBook>,
    subscribed: Vec<bool>,
    /// Each book as of the last frame of it that was sent: what a valid client book must equal.
    sent: Vec<View>,
    /// Books whose every checksum is wrong, snapshots included (a pair whose checksum a client
    /// cannot reproduce).
    bad: Vec<bool>,
}

impl Exch {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let books = Instrument::defaults().into_iter().take(n).map(|i| SimBook::new(i, &mut rng)).collect();
        Self { rng, books, subscribed: vec![false; n], sent: vec![View::default(); n], bad: vec![false; n] }
    }

    fn symbol(&self, i: usize) -> &str {
        &self.books[i].instrument.symbol
    }

    fn instruments(&self) -> String {
        let list: Vec<Instrument> = self.books.iter().map(|b| b.instrument.clone()).collect();
        market::instrument_frame(&list)
    }

    fn snapshot(&mut self, i: usize) -> String {
        let b = &self.books[i];
        let view = b.view(10);
        self.sent[i] = view.clone();
        let trim = self.rng.percent(50);
        let crc = market::checksum(&view, &b.instrument) ^ u32::from(self.bad[i]);
        market::snapshot_frame(&view, &b.instrument, crc, 1, trim)
    }

    /// Moves book `i` and returns the update frame (`None` if nothing visible changed); the
    /// caller says whether it is sent.
    fn update(&mut self, i: usize, corrupt: bool, send: bool) -> Option<String> {
        let before = self.books[i].view(10);
        self.books[i].step(&mut self.rng);
        let after = self.books[i].view(10);
        let b = &self.books[i];
        let changes = market::diff(&before, &after, b);
        if changes.is_empty() {
            return None;
        }
        let crc = market::checksum(&after, &b.instrument) ^ u32::from(corrupt || self.bad[i]);
        if send {
            self.sent[i] = after;
        }
        let trim = self.rng.percent(50);
        Some(market::update_frame(&changes, &b.instrument, crc, 2, trim))
    }

    /// Answers the session's requests the way Kraken does; returns the frames to deliver.
    fn answer(&mut self, session: &mut Session) -> (Vec<String>, Vec<Command>) {
        let mut frames = Vec::new();
        let mut seen = Vec::new();
        while let Some(cmd) = session.poll_command() {
            if let Command::Send(text) = &cmd {
                if text.contains(r#""channel":"instrument""#) {
                    frames.push(self.instruments());
                } else if text.contains(r#""channel":"book""#) {
                    let subscribe = text.starts_with(r#"{"method":"subscribe""#);
                    let method = if subscribe { "subscribe" } else { "unsubscribe" };
                    let req = text.rsplit(r#""req_id":"#).next().unwrap_or("0").trim_end_matches('}');
                    for i in 0..self.books.len() {
                        let sym = self.symbol(i).to_owned();
                        if !text.contains(&format!("\"{sym}\"")) {
                            continue;
                        }
                        // As Kraken: a subscribe of a live book is refused without a snapshot, an
                        // unsubscribe of one that is not subscribed is `Subscription Not Found`.
                        let error = match (subscribe, self.subscribed[i]) {
                            (true, true) => Some("Already subscribed"),
                            (false, false) => Some("Subscription Not Found"),
                            _ => None,
                        };
                        if let Some(e) = error {
                            frames.push(format!(
                                r#"{{"error":"{e}","method":"{method}","req_id":{req},"success":false,"symbol":"{sym}"}}"#
                            ));
                            continue;
                        }
                        self.subscribed[i] = subscribe;
                        frames.push(format!(
                            r#"{{"method":"{method}","result":{{"channel":"book","depth":10,"symbol":"{sym}"}},"req_id":{req},"success":true}}"#
                        ));
                        if subscribe {
                            frames.push(self.snapshot(i));
                        }
                    }
                }
            }
            seen.push(cmd);
        }
        (frames, seen)
    }
}

fn session(n: usize, config: Config) -> (Session, Exch, Vec<plumb_book::publish::Reader>) {
    let exch = Exch::new(n, 11);
    let mut s = Session::new(config);
    let readers = (0..n).map(|i| s.add_symbol(exch.symbol(i)).unwrap()).collect();
    (s, exch, readers)
}

fn deliver(s: &mut Session, frames: &[String], now: Instant) {
    for f in frames {
        s.handle_frame(f.as_bytes(), now, 7);
    }
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Connects and answers until quiet.
fn connect(s: &mut Session, x: &mut Exch, now: Instant) {
    s.handle_connected(now);
    settle(s, x, now);
}

/// Answers and delivers until the session asks for nothing more; returns every command seen.
fn settle(s: &mut Session, x: &mut Exch, now: Instant) -> Vec<Command> {
    let mut seen = Vec::new();
    loop {
        let (frames, cmds) = x.answer(s);
        seen.extend(cmds);
        if frames.is_empty() {
            return seen;
        }
        deliver(s, &frames, now);
    }
}

/// The session's book of a symbol equals, level by level, the exchange's top 10 as of the last
/// frame of it that was sent.
fn same_as_truth(s: &Session, x: &Exch, i: usize) -> bool {
    let book = s.book(x.symbol(i)).unwrap();
    let inst = &x.books[i].instrument;
    let truth: &View = &x.sent[i];
    let to_units = |q: plumb_book::Quote| {
        let p = q.price.mantissa * 10i64.pow(u32::from(inst.price_precision - q.price.scale));
        let v = q.qty.mantissa * 10i64.pow(u32::from(inst.qty_precision - q.qty.scale));
        (u64::try_from(p).unwrap(), u64::try_from(v).unwrap())
    };
    let bids: Vec<(u64, u64)> = book.quotes(Side::Bid).take(10).map(to_units).collect();
    let asks: Vec<(u64, u64)> = book.quotes(Side::Ask).take(10).map(to_units).collect();
    bids == truth.bids && asks == truth.asks
}

#[test]
fn subscribes_to_instruments_first_then_every_book_in_one_request() {
    let (mut s, mut x, readers) = session(3, Config::default());
    let t = epoch();
    s.handle_connected(t);
    let (frames, cmds) = x.answer(&mut s);
    assert_eq!(cmds.len(), 1);
    assert!(matches!(&cmds[0], Command::Send(c) if c.contains(r#""channel":"instrument""#)), "{cmds:?}");
    deliver(&mut s, &frames, t);
    let (frames, cmds) = x.answer(&mut s);
    assert_eq!(
        cmds,
        [Command::Send(
            r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","ETH/USD","SHIB/USD"],"depth":10,"snapshot":true},"req_id":2}"#
                .into()
        )]
    );
    assert!(readers.iter().all(|r| r.top().header.status == Status::Empty));
    deliver(&mut s, &frames, t);
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.top().header.status, Status::Valid);
        assert!(same_as_truth(&s, &x, i));
    }
    // SHIB/USD: 9 price decimals, exact.
    assert_eq!(readers[2].top().bid.unwrap().price.scale, 9);
}

#[test]
fn a_mismatch_resyncs_that_symbol_alone_and_applies_nothing_until_the_snapshot() {
    let (mut s, mut x, readers) = session(3, Config::default());
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    let bad = loop {
        if let Some(f) = x.update(1, true, true) {
            break f;
        }
    };
    s.handle_frame(bad.as_bytes(), t, 1);
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::ResyncStarted { symbol, reason: ResyncReason::ChecksumMismatch { .. } } if &**symbol == "ETH/USD")),
        "{ev:?}"
    );
    assert_eq!(readers[1].top().header.status, Status::Resyncing);
    // Kraken refuses a subscribe of a book it still holds (`Already subscribed`, no snapshot):
    // the unsubscribe goes first, and the subscribe only once it is acknowledged.
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    assert!(
        matches!(&cmds[..], [Command::Send(c)] if c.starts_with(r#"{"method":"unsubscribe","params":{"channel":"book","symbol":["ETH/USD"]"#)),
        "{cmds:?}"
    );
    s.handle_frame(
        br#"{"method":"unsubscribe","result":{"channel":"book","depth":10,"symbol":"ETH/USD"},"req_id":3,"success":true}"#,
        t,
        1,
    );
    x.subscribed[1] = false;
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    assert!(
        matches!(&cmds[..], [Command::Send(c)] if c.starts_with(r#"{"method":"subscribe","params":{"channel":"book","symbol":["ETH/USD"]"#)),
        "{cmds:?}"
    );
    // Updates still in flight for ETH are not applied; others go on.
    let version = readers[1].version();
    for _ in 0..20 {
        for i in 0..3 {
            if let Some(f) = x.update(i, false, true) {
                s.handle_frame(f.as_bytes(), t, 1);
            }
        }
    }
    assert_eq!(readers[1].top().header.status, Status::Resyncing);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert_eq!(readers[2].top().header.status, Status::Valid);
    assert!(readers[1].version() >= version);
    let snap = x.snapshot(1);
    s.handle_frame(snap.as_bytes(), t + Duration::from_millis(40), 1);
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::ResyncFinished { symbol, took } if &**symbol == "ETH/USD" && *took == Duration::from_millis(40))));
    assert_eq!(readers[1].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 1));
    assert_eq!(s.stats().counts().resyncs, 1);
}

#[test]
fn resubscriptions_are_paced_by_the_token_bucket() {
    let pacing = Pacing { burst: 3, interval: Duration::from_secs(1), jitter: Duration::ZERO };
    let (mut s, mut x, _) = session(8, Config { pacing, ..Config::default() });
    let t = epoch();
    connect(&mut s, &mut x, t);
    // Every book mismatches at once.
    for i in 0..8 {
        let bad = loop {
            if let Some(f) = x.update(i, true, true) {
                break f;
            }
        };
        s.handle_frame(bad.as_bytes(), t, 1);
    }
    let count_resubscribes = |cmds: &[Command]| {
        cmds.iter().filter(|c| matches!(c, Command::Send(t) if t.starts_with(r#"{"method":"subscribe""#))).count()
    };
    let cmds = settle(&mut s, &mut x, t);
    assert_eq!(count_resubscribes(&cmds), 3, "the burst");
    let mut sent = 3;
    let mut now = t;
    while sent < 8 {
        let next = s.poll_timeout().unwrap();
        assert!(next > now);
        now = next;
        s.handle_timeout(now);
        sent += count_resubscribes(&settle(&mut s, &mut x, now));
    }
    // Five more at one per second.
    assert_eq!(now - t, Duration::from_secs(5));
    for i in 0..8 {
        assert_eq!(s.status(x.symbol(i)), Some(Status::Valid));
    }
}

#[test]
fn silence_brings_a_ping_then_stale_books_and_a_reconnect() {
    let (mut s, mut x, readers) = session(2, Config::default());
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    // Kraken sends a heartbeat every second: a ping after 1.2 s of silence, stale at 2 s.
    assert_eq!(s.poll_timeout(), Some(t + Duration::from_millis(1200)));
    s.handle_timeout(t + Duration::from_millis(1200));
    assert!(matches!(s.poll_command(), Some(Command::Send(p)) if p.starts_with(r#"{"method":"ping""#)));
    assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(2)));
    s.handle_timeout(t + Duration::from_millis(1999));
    assert_eq!(s.poll_command(), None);
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    s.handle_timeout(t + Duration::from_secs(2));
    assert_eq!(s.poll_command(), Some(Command::Reconnect(Disconnect::Silent)));
    assert!(matches!(events(&mut s)[..], [Event::Stale { silent_for }] if silent_for == Duration::from_secs(2)));
    assert!(readers.iter().all(|r| r.top().header.status == Status::Stale));
    s.handle_disconnected(t + Duration::from_secs(5), Disconnect::Silent);
    x.subscribed.fill(false);
    assert_eq!(s.poll_timeout(), None);
    // Back: stale until each book has its new snapshot, never fed updates in between.
    s.handle_connected(t + Duration::from_secs(6));
    assert!(readers.iter().all(|r| r.top().header.status == Status::Resyncing));
    let (frames, _) = x.answer(&mut s);
    deliver(&mut s, &frames, t + Duration::from_secs(6));
    let (frames, _) = x.answer(&mut s);
    deliver(&mut s, &frames, t + Duration::from_secs(6));
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    assert_eq!(s.stats().counts().reconnects, 1);
}

#[test]
fn a_missing_snapshot_is_asked_for_again() {
    let (mut s, mut x, readers) = session(1, Config::default());
    let t = epoch();
    s.handle_connected(t);
    let (frames, _) = x.answer(&mut s);
    deliver(&mut s, &frames, t);
    let subscribe = s.poll_command();
    assert!(subscribe.is_some());
    // The snapshot never comes; heartbeats do.
    for k in 1..=10 {
        s.handle_frame(br#"{"channel":"heartbeat"}"#, t + Duration::from_secs(k), 0);
        s.handle_timeout(t + Duration::from_secs(k));
    }
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::ResyncStarted { reason: ResyncReason::SnapshotTimeout, .. })),
        "{ev:?}"
    );
    // The unsubscribe is answered `Subscription Not Found` (the subscribe never took): already
    // gone, so the subscribe follows at once.
    let cmds = settle(&mut s, &mut x, t + Duration::from_secs(10));
    assert!(
        matches!(&cmds[..], [Command::Send(u), Command::Send(s)] if u.starts_with(r#"{"method":"unsubscribe""#) && s.starts_with(r#"{"method":"subscribe""#)),
        "{cmds:?}"
    );
    assert_eq!(readers[0].top().header.status, Status::Valid);
}

#[test]
fn a_refused_subscription_is_an_event_and_is_not_retried_on_the_connection() {
    let (mut s, mut x, readers) = session(2, Config::default());
    let t = epoch();
    s.handle_connected(t);
    let (frames, _) = x.answer(&mut s);
    deliver(&mut s, &frames, t);
    let _ = s.poll_command();
    s.handle_frame(
        br#"{"error":"Currency pair not supported ETH/USD","method":"subscribe","req_id":2,"success":false,"symbol":"ETH/USD","time_in":"2023-09-26T16:49:20.962586Z","time_out":"2023-09-26T16:49:20.962626Z"}"#,
        t,
        0,
    );
    let ev = events(&mut s);
    assert!(
        matches!(&ev[..], [Event::Connected, Event::Error(Error::SubscriptionRejected { symbol, message })]
        if &**symbol == "ETH/USD" && &**message == "Currency pair not supported ETH/USD"),
        "{ev:?}"
    );
    assert_eq!(readers[1].top().header.status, Status::Invalid);
    for k in 1..=120 {
        s.handle_frame(br#"{"channel":"heartbeat"}"#, t + Duration::from_secs(k), 0);
        s.handle_timeout(t + Duration::from_secs(k));
    }
    let cmds: Vec<_> = std::iter::from_fn(|| s.poll_command()).collect();
    assert!(!cmds.iter().any(|c| matches!(c, Command::Send(m) if m.contains("ETH/USD"))), "{cmds:?}");
}

#[test]
fn precision_change_resyncs() {
    let (mut s, mut x, readers) = session(1, Config::default());
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    x.books[0].instrument.price_precision += 1;
    let frame = x.instruments().replace(r#""type":"snapshot""#, r#""type":"update""#);
    s.handle_frame(frame.as_bytes(), t, 0);
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::ResyncStarted { reason: ResyncReason::PrecisionChanged, .. })),
        "{ev:?}"
    );
    assert_eq!(readers[0].top().header.status, Status::Resyncing);
}

#[derive(Debug, Clone)]
enum Op {
    Update(usize),
    Corrupt(usize),
    Drop(usize),
    Garbage(Vec<u8>),
    Wait(u64),
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize).prop_map(Op::Update),
        1 => (0..3usize).prop_map(Op::Corrupt),
        1 => (0..3usize).prop_map(Op::Drop),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
        1 => (0..8000u64).prop_map(Op::Wait),
        1 => Just(Op::Reconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the exchange and the clock do, a book the session calls valid is exactly the
    /// exchange's book, and every corrupted or lost update ends in a resync, never in a wrong
    /// valid book.
    #[test]
    fn valid_means_exactly_the_exchanges_book(ops in proptest::collection::vec(op(), 1..150)) {
        let (mut s, mut x, readers) = session(3, Config::default());
        let mut now = epoch();
        connect(&mut s, &mut x, now);
        // When the last resync that backs off may start: a book wrong right after each of its
        // fresh snapshots waits 2 s, 4 s, ... up to 300 s before its next one.
        let mut backoff_until = now;
        for op in ops {
            match op {
                Op::Update(i) | Op::Corrupt(i) | Op::Drop(i) => {
                    let send = x.subscribed[i] && !matches!(op, Op::Drop(_));
                    let frame = x.update(i, matches!(op, Op::Corrupt(_)), send);
                    if send && let Some(f) = frame {
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Garbage(g) => s.handle_frame(&g, now, 1),
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    s.handle_frame(br#"{"channel":"heartbeat"}"#, now, 1);
                    if s.poll_timeout().is_some_and(|d| d <= now) {
                        s.handle_timeout(now);
                    }
                }
                Op::Reconnect => {
                    s.handle_disconnected(now, Disconnect::ServerClosed);
                    x.subscribed.fill(false);
                    s.handle_connected(now);
                }
            }
            let cmds = settle(&mut s, &mut x, now);
            if cmds.iter().any(|c| matches!(c, Command::Reconnect(_))) {
                s.handle_disconnected(now, Disconnect::Silent);
                x.subscribed.fill(false);
                s.handle_connected(now);
                settle(&mut s, &mut x, now);
            }
            for e in events(&mut s) {
                if let Event::ResyncBackoff { retry_in, .. } = e {
                    prop_assert!(retry_in <= Duration::from_secs(300), "a backoff past the cap: {:?}", retry_in);
                    backoff_until = backoff_until.max(now + retry_in);
                }
            }
            for (i, r) in readers.iter().enumerate() {
                let status = r.top().header.status;
                prop_assert_eq!(Some(status), s.status(x.symbol(i)));
                if status == Status::Valid {
                    prop_assert!(same_as_truth(&s, &x, i), "{} valid but wrong", x.symbol(i));
                }
            }
        }
        // Given time and quiet, every book heals: within 20 s, or 20 s after its backoff ends.
        let heal_by = (now + Duration::from_secs(20)).max(backoff_until + Duration::from_secs(20));
        while now < heal_by {
            now += Duration::from_secs(1);
            s.handle_frame(br#"{"channel":"heartbeat"}"#, now, 1);
            s.handle_timeout(now);
            settle(&mut s, &mut x, now);
        }
        let statuses: HashMap<String, Option<Status>> =
            (0..3).map(|i| (x.symbol(i).to_owned(), s.status(x.symbol(i)))).collect();
        for i in 0..3 {
            prop_assert_eq!(s.status(x.symbol(i)), Some(Status::Valid), "{:?}", statuses);
            prop_assert!(same_as_truth(&s, &x, i));
        }
    }
}

#[test]
fn a_refused_resubscription_is_tried_again_paced_then_given_up() {
    let pacing = Pacing { burst: 1, interval: Duration::from_secs(1), jitter: Duration::ZERO };
    let (mut s, mut x, readers) = session(1, Config { pacing, ..Config::default() });
    let t = epoch();
    connect(&mut s, &mut x, t);
    let bad = loop {
        if let Some(f) = x.update(0, true, true) {
            break f;
        }
    };
    s.handle_frame(bad.as_bytes(), t, 1);
    let refuse =
        br#"{"error":"Already subscribed","method":"subscribe","req_id":9,"success":false,"symbol":"BTC/USD"}"#;
    let mut now = t;
    let mut resubscribes = 0;
    let unsubscribed =
        br#"{"method":"unsubscribe","result":{"channel":"book","depth":10,"symbol":"BTC/USD"},"success":true}"#;
    for _ in 0..6 {
        let mut cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
        if cmds.iter().any(|c| matches!(c, Command::Send(m) if m.starts_with(r#"{"method":"unsubscribe""#))) {
            // The subscribe waits for this.
            s.handle_frame(unsubscribed, now, 1);
            cmds.extend(std::iter::from_fn(|| s.poll_command()));
        }
        resubscribes +=
            cmds.iter().filter(|c| matches!(c, Command::Send(m) if m.starts_with(r#"{"method":"subscribe""#))).count();
        s.handle_frame(refuse, now, 1);
        now += Duration::from_secs(1);
        s.handle_frame(br#"{"channel":"heartbeat"}"#, now, 1);
        s.handle_timeout(now);
    }
    // The first resubscription and three paced retries, then the symbol is given up on this
    // connection, with one error event per refusal and one resync started.
    assert_eq!(resubscribes, 4);
    let ev = events(&mut s);
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::ResyncStarted { .. })).count(), 1);
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::Error(Error::SubscriptionRejected { .. }))).count(), 6);
    assert_eq!(readers[0].top().header.status, Status::Invalid);
}

/// A pair whose checksum never matches, not even right after a fresh snapshot: plumb never turns
/// checksums off and never loops hot. Three resyncs at the usual pace, then each waits twice as
/// long (an event says so), its readers never see it valid, and the other symbols go on.
#[test]
fn a_checksum_wrong_after_every_snapshot_backs_off_instead_of_looping() {
    let (mut s, mut x, readers) = session(2, Config::default());
    x.bad[0] = true;
    let t = epoch();
    connect(&mut s, &mut x, t);
    let mut now = t;
    let mut subscribes = Vec::new();
    let mut backoffs = Vec::new();
    for _ in 0..600 {
        now += Duration::from_secs(1);
        s.handle_frame(br#"{"channel":"heartbeat"}"#, now, 1);
        if let Some(f) = x.update(1, false, true) {
            s.handle_frame(f.as_bytes(), now, 1);
        }
        s.handle_timeout(now);
        let cmds = settle(&mut s, &mut x, now);
        let n = cmds
            .iter()
            .filter(
                |c| matches!(c, Command::Send(m) if m.starts_with(r#"{"method":"subscribe""#) && m.contains("BTC/USD")),
            )
            .count();
        subscribes.extend(std::iter::repeat_n(now - t, n));
        for e in events(&mut s) {
            if let Event::ResyncBackoff { symbol, reason, failures, retry_in } = e {
                assert_eq!(&*symbol, "BTC/USD");
                assert!(matches!(reason, ResyncReason::ChecksumMismatch { .. }));
                backoffs.push((failures, retry_in));
            }
        }
        assert_ne!(readers[0].top().header.status, Status::Valid);
        assert_eq!(readers[1].top().header.status, Status::Valid);
    }
    // Ten minutes: the first three resyncs at the usual pace, then 2, 4, 8 ... s apart (capped
    // at five minutes): a dozen subscribes, not six hundred.
    assert!(subscribes.len() <= 12, "{subscribes:?}");
    assert!(subscribes.len() >= 8, "{subscribes:?}");
    assert_eq!(backoffs[0], (3, Duration::from_secs(2)));
    assert_eq!(backoffs[1], (4, Duration::from_secs(4)));
    assert!(backoffs.windows(2).all(|w| w[1].1 >= w[0].1 && w[1].1 <= Duration::from_secs(300)));
    for w in subscribes.windows(2).skip(3) {
        assert!(w[1] - w[0] >= Duration::from_secs(2), "{subscribes:?}");
    }
    // Fixed (the exchange's checksums are right again): the next resync heals it, and once it
    // has been proved for a while the count starts over.
    x.bad[0] = false;
    for _ in 0..400 {
        now += Duration::from_secs(1);
        s.handle_frame(br#"{"channel":"heartbeat"}"#, now, 1);
        s.handle_timeout(now);
        settle(&mut s, &mut x, now);
        if readers[0].top().header.status == Status::Valid {
            break;
        }
    }
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 0));
}

/// `Exceeded msg rate`: the refused subscription is not given up, and it is asked for again
/// slower than the usual pacing, not at the same rate.
#[test]
fn a_rate_refusal_slows_the_pacing_and_asks_again_later() {
    let (mut s, mut x, readers) = session(2, Config::default());
    let t = epoch();
    s.handle_connected(t);
    let (frames, _) = x.answer(&mut s);
    deliver(&mut s, &frames, t);
    // The book subscription: BTC/USD is taken, ETH/USD refused for the rate.
    let _ = s.poll_command();
    x.subscribed[0] = true;
    let snap = x.snapshot(0);
    s.handle_frame(snap.as_bytes(), t, 1);
    s.handle_frame(
        br#"{"error":"Exceeded msg rate","method":"subscribe","req_id":2,"success":false,"symbol":"ETH/USD"}"#,
        t,
        1,
    );
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::Error(Error::Exchange(m)) if &**m == "Exceeded msg rate")), "{ev:?}");
    assert!(!ev.iter().any(|e| matches!(e, Event::Error(Error::SubscriptionRejected { .. }))), "{ev:?}");
    assert_eq!(readers[1].top().header.status, Status::Resyncing, "being asked for again, not given up");
    // Not asked again at once, nor at the usual one per second: after two seconds.
    let mut now = t;
    let mut first = None;
    while first.is_none() && now < t + Duration::from_secs(10) {
        now += Duration::from_millis(100);
        s.handle_frame(br#"{"channel":"heartbeat"}"#, now, 1);
        s.handle_timeout(now);
        let cmds = settle(&mut s, &mut x, now);
        if cmds.iter().any(
            |c| matches!(c, Command::Send(m) if m.starts_with(r#"{"method":"subscribe""#) && m.contains("ETH/USD")),
        ) {
            first = Some(now - t);
        }
    }
    let first = first.expect("asked again");
    assert!(first >= Duration::from_secs(2), "{first:?}");
    assert_eq!(readers[1].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 1));
}

/// Book messages for a symbol the session does not hold are counted as ignored (not as book
/// messages) and said once; a symbol just removed is not remarked on.
#[test]
fn messages_for_a_symbol_never_subscribed_are_ignored_and_said_once() {
    let (mut s, mut x, _readers) = session(3, Config::default());
    let t = epoch();
    connect(&mut s, &mut x, t);
    assert!(s.remove_symbol("SHIB/USD"));
    events(&mut s);
    let before = s.stats().counts();
    let stray = x.update(2, false, true);
    let stray = stray.or_else(|| x.update(2, false, true)).unwrap();
    let other = stray.replace("SHIB/USD", "XRP/USD");
    for f in [&stray, &other, &other, &stray] {
        s.handle_frame(f.as_bytes(), t, 1);
    }
    let after = s.stats().counts();
    assert_eq!(after.book_messages, before.book_messages);
    assert_eq!(after.ignored, before.ignored + 4);
    let ev = events(&mut s);
    let said: Vec<&Event> = ev.iter().filter(|e| matches!(e, Event::Error(Error::UnexpectedSymbol(_)))).collect();
    assert!(matches!(&said[..], [Event::Error(Error::UnexpectedSymbol(sym))] if &**sym == "XRP/USD"), "{ev:?}");
}

/// A server sending garbage cannot flood the application: ten error events a second, then a
/// count of those held back; every one is still counted.
#[test]
fn error_events_of_bad_input_are_rate_limited_with_a_count() {
    let (mut s, mut x, readers) = session(1, Config::default());
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    let errors_before = s.stats().counts().errors;
    for _ in 0..100 {
        s.handle_frame(b"\x00\x01 not json", t, 1);
    }
    let ev = events(&mut s);
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::Error(Error::Frame(_)))).count(), 10, "{ev:?}");
    s.handle_frame(b"[[[", t + Duration::from_millis(1000), 1);
    let ev = events(&mut s);
    assert!(matches!(&ev[..], [Event::ErrorsSuppressed { count: 90 }, Event::Error(Error::Frame(_))]), "{ev:?}");
    assert_eq!(s.stats().counts().errors, errors_before + 101);
    assert_eq!(readers[0].top().header.status, Status::Valid);
}

/// A symbol whose updates stop while the others of its connection keep flowing is reported once
/// (an event and a count); a connection quiet as a whole is not a quiet symbol, and a symbol that
/// speaks again is watched again.
#[test]
fn a_symbol_gone_quiet_on_a_busy_connection_is_reported_once() {
    let (mut s, mut x, readers) = session(2, Config::default());
    let t = epoch();
    connect(&mut s, &mut x, t);
    let mut now = t;
    let step = |s: &mut Session, x: &mut Exch, now: Instant, which: &[usize]| {
        for &i in which {
            if let Some(f) = x.update(i, false, true).or_else(|| x.update(i, false, true)) {
                s.handle_frame(f.as_bytes(), now, 1);
            }
        }
        s.handle_frame(br#"{"channel":"heartbeat"}"#, now, 1);
        if s.poll_timeout().is_some_and(|d| d <= now) {
            s.handle_timeout(now);
        }
    };
    // Both symbols every 100 ms for 5 s: their pace is known.
    for _ in 0..50 {
        now += Duration::from_millis(100);
        step(&mut s, &mut x, now, &[0, 1]);
    }
    events(&mut s);
    // Then only ETH/USD for 25 s: BTC/USD is quiet after 10 s (at least, and 20 times its gap).
    let mut quiet = Vec::new();
    for _ in 0..250 {
        now += Duration::from_millis(100);
        step(&mut s, &mut x, now, &[1]);
        for e in events(&mut s) {
            if let Event::QuietSymbol { symbol, quiet_for, usual_gap } = e {
                quiet.push((symbol, quiet_for, usual_gap, now - t));
            }
        }
    }
    assert_eq!(quiet.len(), 1, "{quiet:?}");
    let (symbol, quiet_for, usual_gap, _) = &quiet[0];
    assert_eq!(&**symbol, "BTC/USD");
    assert!(*quiet_for >= Duration::from_secs(10) && *quiet_for < Duration::from_secs(12), "{quiet_for:?}");
    assert!(*usual_gap >= Duration::from_millis(90) && *usual_gap <= Duration::from_millis(200), "{usual_gap:?}");
    assert_eq!(s.stats().counts().quiet_symbols, 1);
    // Its book is still what the last message proved.
    assert_eq!(readers[0].top().header.status, Status::Valid);
    // A connection quiet as a whole (heartbeats only) reports nothing.
    for _ in 0..300 {
        now += Duration::from_millis(100);
        step(&mut s, &mut x, now, &[]);
    }
    assert!(!events(&mut s).iter().any(|e| matches!(e, Event::QuietSymbol { .. })));
}
