//! The sans-io `Session` with Bybit v5 behind the exchange seam: no sockets, no clock. Frames come
//! from `plumb-sim`'s market (Bybit's frame writer and its exact diff), time is an argument.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::time::{Duration, Instant};

use plumb_book::publish::Status;
use plumb_book::{Proof, Side, Verdict};
use plumb_feed::{Bybit, Command, Config, Disconnect, Error, Event, Exchange, Market, ResyncReason, Session};
use plumb_sim::market::{self, Instrument, Rng, SimBook, View};
use proptest::prelude::*;

#[expect(clippy::disallowed_methods, reason = "one real Instant to offset virtual time from")]
fn epoch() -> Instant {
    Instant::now()
}

const DEPTH: usize = 50;

/// A scripted Bybit: the true books, the frames a depth-50 subscriber gets, and Bybit's answers.
struct Exch {
    rng: Rng,
    books: Vec<SimBook>,
    /// Per symbol: subscribed, and the last `u` sent.
    subscribed: Vec<bool>,
    u: Vec<u64>,
    /// Each book as of the last frame of it that was sent: what a valid client book must equal.
    sent: Vec<View>,
    /// The `u` of the last frame of each book that was sent.
    sent_u: Vec<u64>,
    /// The last delta of each book sent since its last snapshot, for duplicates.
    last: Vec<Option<String>>,
    /// Snapshots go out before the subscribe's acknowledgement.
    early_snapshots: bool,
}

impl Exch {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut list = Instrument::bybit_defaults();
        // More symbols than the default list, for chunking: clones under new names.
        for k in 0..n.saturating_sub(list.len()) {
            let mut i = list[k % 6].clone();
            i.symbol = format!("X{k}USDT");
            list.push(i);
        }
        let books = list.into_iter().take(n).map(|i| SimBook::new(i, &mut rng)).collect();
        Self {
            rng,
            books,
            subscribed: vec![false; n],
            u: vec![100; n],
            sent: vec![View::default(); n],
            sent_u: vec![0; n],
            last: vec![None; n],
            early_snapshots: false,
        }
    }

    fn symbol(&self, i: usize) -> &str {
        &self.books[i].instrument.symbol
    }

    fn snapshot(&mut self, i: usize) -> String {
        let b = &self.books[i];
        let view = b.view(DEPTH);
        self.sent[i] = view.clone();
        self.sent_u[i] = self.u[i];
        self.last[i] = None;
        market::bybit_frame(&b.instrument, DEPTH, true, &view.bids, &view.asks, (self.u[i], 1), 1_700_000_000_000)
    }

    /// Moves book `i`; returns the delta (`None` if nothing visible changed). `send` says whether
    /// the subscriber gets it (a lost delta still uses its `u`).
    fn delta(&mut self, i: usize, send: bool) -> Option<String> {
        let before = self.books[i].view(DEPTH);
        self.books[i].step(&mut self.rng);
        let after = self.books[i].view(DEPTH);
        let changes = market::diff_exact(&before, &after);
        if changes.is_empty() {
            return None;
        }
        self.u[i] += 1;
        let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
        let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
        let inst = &self.books[i].instrument;
        let frame = market::bybit_frame(inst, DEPTH, false, &bids, &asks, (self.u[i], 2), 1_700_000_000_001);
        if send {
            self.sent[i] = after;
            self.sent_u[i] = self.u[i];
            self.last[i] = Some(frame.clone());
        }
        Some(frame)
    }

    /// A delta that is sure to change something.
    fn some_delta(&mut self, i: usize, send: bool) -> String {
        loop {
            if let Some(f) = self.delta(i, send) {
                return f;
            }
        }
    }

    /// The service restarts: a snapshot with `u` = 1.
    fn restart(&mut self, i: usize) -> String {
        self.u[i] = 1;
        self.snapshot(i)
    }

    /// Answers the session's requests the way Bybit does; returns the frames to deliver.
    fn answer<E: Exchange>(&mut self, session: &mut Session<E>) -> (Vec<String>, Vec<Command>) {
        let mut frames = Vec::new();
        let mut seen = Vec::new();
        while let Some(cmd) = session.poll_command() {
            if let Command::Send(text) = &cmd {
                let req = text.split('"').nth(3).unwrap_or("").to_owned();
                if text.contains(r#""op":"ping""#) {
                    frames.push(format!(
                        r#"{{"success":true,"ret_msg":"pong","conn_id":"c","req_id":"{req}","op":"ping"}}"#
                    ));
                }
                for op in ["subscribe", "unsubscribe"] {
                    if !text.contains(&format!(r#""op":"{op}""#)) {
                        continue;
                    }
                    let ack = format!(r#"{{"success":true,"ret_msg":"","conn_id":"c","req_id":"{req}","op":"{op}"}}"#);
                    if !self.early_snapshots || op == "unsubscribe" {
                        frames.push(ack.clone());
                    }
                    for i in 0..self.books.len() {
                        if text.contains(&format!("\"orderbook.{DEPTH}.{}\"", self.symbol(i))) {
                            self.subscribed[i] = op == "subscribe";
                            if op == "subscribe" {
                                frames.push(self.snapshot(i));
                            }
                        }
                    }
                    if self.early_snapshots && op == "subscribe" {
                        frames.push(ack);
                    }
                }
            }
            seen.push(cmd);
        }
        (frames, seen)
    }
}

fn config() -> Config {
    Bybit::default().config()
}

fn session(n: usize, config: Config) -> (Session<Bybit>, Exch, Vec<plumb_book::publish::Reader>) {
    let exch = Exch::new(n, 17);
    let mut s = Session::with_exchange(Bybit::new(Market::Spot), config);
    let readers = (0..n).map(|i| s.add_symbol(exch.symbol(i)).unwrap()).collect();
    (s, exch, readers)
}

fn deliver(s: &mut Session<Bybit>, frames: &[String], now: Instant) {
    for f in frames {
        s.handle_frame(f.as_bytes(), now, 7);
    }
}

fn events(s: &mut Session<Bybit>) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Connects and answers until quiet.
fn connect(s: &mut Session<Bybit>, x: &mut Exch, now: Instant) {
    s.handle_connected(now);
    settle(s, x, now);
}

fn settle(s: &mut Session<Bybit>, x: &mut Exch, now: Instant) {
    loop {
        let (frames, _) = x.answer(s);
        if frames.is_empty() {
            break;
        }
        deliver(s, &frames, now);
    }
}

/// The session's book equals, level by level, the exchange's top 50 as of the last frame sent.
fn same_as_truth(s: &Session<Bybit>, x: &Exch, i: usize) -> bool {
    let book = s.book(x.symbol(i)).unwrap();
    let inst = &x.books[i].instrument;
    let to_units = |q: plumb_book::Quote| {
        let p = q.price.mantissa * 10i64.pow(u32::from(inst.price_precision - q.price.scale));
        let v = q.qty.mantissa * 10i64.pow(u32::from(inst.qty_precision - q.qty.scale));
        (u64::try_from(p).unwrap(), u64::try_from(v).unwrap())
    };
    let bids: Vec<(u64, u64)> = book.quotes(Side::Bid).map(to_units).collect();
    let asks: Vec<(u64, u64)> = book.quotes(Side::Ask).map(to_units).collect();
    bids == x.sent[i].bids && asks == x.sent[i].asks
}

#[test]
fn no_preamble_and_subscriptions_in_requests_of_ten() {
    let (mut s, mut x, readers) = session(12, config());
    let t = epoch();
    s.handle_connected(t);
    let (frames, cmds) = x.answer(&mut s);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    let Command::Send(first) = &cmds[0] else { panic!() };
    assert!(
        first.starts_with(r#"{"req_id":"2","op":"subscribe","args":["orderbook.50.BTCUSDT","orderbook.50.ETHUSDT""#),
        "{first}"
    );
    assert_eq!(first.matches("orderbook.").count(), 10);
    let Command::Send(second) = &cmds[1] else { panic!() };
    assert_eq!(second.matches("orderbook.").count(), 2);
    deliver(&mut s, &frames, t);
    for (i, r) in readers.iter().enumerate() {
        let top = r.top();
        assert_eq!(top.header.status, Status::Valid, "{}", x.symbol(i));
        assert_eq!(top.header.proof, Proof::Sequence(100));
        assert_eq!(top.header.checksum, 0, "no checksum where Bybit has none");
        assert!(same_as_truth(&s, &x, i));
    }
    // PEPEUSDT: 8 price decimals, exact.
    assert_eq!(readers[5].top().bid.unwrap().price.scale, 8);
}

#[test]
fn a_gap_resyncs_that_symbol_alone_unsubscribing_first() {
    let (mut s, mut x, readers) = session(3, config());
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    let _lost = x.some_delta(1, false);
    let revealing = x.some_delta(1, true);
    s.handle_frame(revealing.as_bytes(), t, 1);
    let ev = events(&mut s);
    let expected = x.u[1] - 1;
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::ResyncStarted { symbol, reason: ResyncReason::SequenceGap { expected: e, got } }
            if &**symbol == "ETHUSDT" && *e == expected && *got == expected + 1)
        ),
        "{ev:?}"
    );
    // Readers see it at once.
    assert_eq!(readers[1].top().header.status, Status::Resyncing);
    assert_eq!(readers[1].top().header.proof, Proof::None);
    // Bybit refuses a second subscribe of a live topic: only the unsubscribe goes out now.
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let Command::Send(unsub) = &cmds[0] else { panic!() };
    assert!(unsub.contains(r#""op":"unsubscribe","args":["orderbook.50.ETHUSDT"]"#), "{unsub}");
    // Others go on; ETH's deltas in flight are not applied.
    for _ in 0..20 {
        for i in [0, 2] {
            if let Some(f) = x.delta(i, true) {
                s.handle_frame(f.as_bytes(), t, 1);
            }
        }
        let f = x.some_delta(1, true);
        s.handle_frame(f.as_bytes(), t, 1);
    }
    assert_eq!(readers[1].top().header.status, Status::Resyncing);
    assert!(same_as_truth(&s, &x, 0) && same_as_truth(&s, &x, 2));
    // The acknowledgement brings the subscribe, and the snapshot heals the book.
    let req = unsub.split('"').nth(3).unwrap();
    s.handle_frame(
        format!(r#"{{"success":true,"ret_msg":"","conn_id":"c","req_id":"{req}","op":"unsubscribe"}}"#).as_bytes(),
        t,
        1,
    );
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    assert!(
        matches!(&cmds[..], [Command::Send(c)] if c.contains(r#""op":"subscribe","args":["orderbook.50.ETHUSDT"]"#)),
        "{cmds:?}"
    );
    let snap = x.snapshot(1);
    s.handle_frame(snap.as_bytes(), t + Duration::from_millis(30), 1);
    assert_eq!(readers[1].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 1));
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::ResyncFinished { symbol, .. } if &**symbol == "ETHUSDT")));
    let c = s.stats().counts();
    assert_eq!((c.sequence_gaps, c.resyncs), (1, 1));
}

#[test]
fn a_restart_with_u_1_overwrites_the_book_and_is_not_a_gap() {
    let (mut s, mut x, readers) = session(2, config());
    let t = epoch();
    connect(&mut s, &mut x, t);
    for _ in 0..5 {
        let f = x.some_delta(0, true);
        s.handle_frame(f.as_bytes(), t, 1);
    }
    x.books[0].step(&mut Rng::new(3));
    let restart = x.restart(0);
    s.handle_frame(restart.as_bytes(), t, 1);
    for _ in 0..5 {
        let f = x.some_delta(0, true);
        s.handle_frame(f.as_bytes(), t, 1);
    }
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert_eq!(readers[0].top().header.proof, Proof::Sequence(6));
    assert!(same_as_truth(&s, &x, 0));
    assert_eq!(s.stats().counts().sequence_gaps, 0);
    assert!(!events(&mut s).iter().any(|e| matches!(e, Event::ResyncStarted { .. })));
    assert!(std::iter::from_fn(|| s.poll_command()).next().is_none());
}

#[test]
fn a_duplicate_or_stale_delta_is_ignored_not_applied_twice() {
    let (mut s, mut x, readers) = session(1, config());
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    let older = x.some_delta(0, true);
    s.handle_frame(older.as_bytes(), t, 1);
    let f = x.some_delta(0, true);
    s.handle_frame(f.as_bytes(), t, 1);
    let ignored = s.stats().counts().ignored;
    let version = readers[0].version();
    // The same delta again, and an older one: neither changes the book nor its status.
    s.handle_frame(f.as_bytes(), t, 1);
    s.handle_frame(older.as_bytes(), t, 1);
    assert_eq!(s.stats().counts().ignored, ignored + 2);
    assert_eq!(readers[0].version(), version);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 0));
    let ev = events(&mut s);
    assert_eq!(
        ev.iter().filter(|e| matches!(e, Event::Book(b) if matches!(b.outcome, Verdict::Stale { .. }))).count(),
        2
    );
    assert!(!ev.iter().any(|e| matches!(e, Event::ResyncStarted { .. })));
}

#[test]
fn a_malformed_frame_is_an_error_and_touches_no_book() {
    let (mut s, mut x, readers) = session(2, config());
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    s.handle_frame(br#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["6"#, t, 1);
    // A book whose data names another symbol than its topic is refused too.
    s.handle_frame(
        br#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"ETHUSDT","b":[],"a":[],"u":5}}"#,
        t,
        1,
    );
    let ev = events(&mut s);
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::Error(Error::Frame(_)))).count(), 2, "{ev:?}");
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    assert!(same_as_truth(&s, &x, 0) && same_as_truth(&s, &x, 1));
    // And the next delta still applies in sequence.
    let f = x.some_delta(0, true);
    s.handle_frame(f.as_bytes(), t, 1);
    assert!(same_as_truth(&s, &x, 0));
    assert_eq!(readers[0].top().header.status, Status::Valid);
}

#[test]
fn a_snapshot_before_its_acknowledgement_is_accepted() {
    let (mut s, mut x, readers) = session(3, config());
    x.early_snapshots = true;
    let t = epoch();
    connect(&mut s, &mut x, t);
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.top().header.status, Status::Valid);
        assert!(same_as_truth(&s, &x, i));
    }
}

#[test]
fn a_request_refused_for_one_bad_topic_is_sent_again_without_it() {
    let (mut s, x, readers) = session(3, config());
    let t = epoch();
    s.handle_connected(t);
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    assert_eq!(cmds.len(), 1);
    // Bybit refuses the whole request, naming ETHUSDT's topic.
    s.handle_frame(br#"{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.ETHUSDT]","conn_id":"c","req_id":"2","op":"subscribe"}"#, t, 1);
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Error(Error::SubscriptionRejected { symbol, message })
            if &**symbol == "ETHUSDT" && message.contains("Invalid symbol"))),
        "{ev:?}"
    );
    assert_eq!(readers[1].top().header.status, Status::Invalid);
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    let sent: Vec<&String> =
        cmds.iter().filter_map(|c| if let Command::Send(t) = c { Some(t) } else { None }).collect();
    assert_eq!(sent.len(), 1, "the other symbols again, in one request: {sent:?}");
    assert!(sent.iter().all(|t| !t.contains("ETHUSDT")));
    assert!(sent[0].contains(x.symbol(0)) && sent[0].contains(x.symbol(2)));
    // A refusal that names no topic, for a request of several symbols: asked for again in halves.
    let (mut s, x2, _) = session(3, config());
    s.handle_connected(t);
    let _ = std::iter::from_fn(|| s.poll_command()).count();
    s.handle_frame(
        br#"{"success":false,"ret_msg":"error:something","conn_id":"c","req_id":"2","op":"subscribe"}"#,
        t,
        1,
    );
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    // In two halves (halved again if refused again), not one request per symbol at once.
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    let sent: Vec<&String> =
        cmds.iter().filter_map(|c| if let Command::Send(t) = c { Some(t) } else { None }).collect();
    for k in 0..3 {
        assert_eq!(sent.iter().filter(|t| t.contains(x2.symbol(k))).count(), 1, "{sent:?}");
    }
}

#[test]
fn keepalive_pings_every_20_s_and_after_3_s_of_silence_and_a_dead_feed_goes_stale_within_8_s() {
    let (mut s, mut x, readers) = session(1, config());
    let t = epoch();
    connect(&mut s, &mut x, t);
    // Traffic every 100 ms: no silence ping, but one every 20 s all the same.
    let mut pings = 0;
    let mut now = t;
    while now < t + Duration::from_secs(41) {
        now += Duration::from_millis(100);
        let f = x.some_delta(0, true);
        s.handle_frame(f.as_bytes(), now, 1);
        if s.poll_timeout().is_some_and(|d| d <= now) {
            s.handle_timeout(now);
        }
        pings += std::iter::from_fn(|| s.poll_command())
            .filter(|c| matches!(c, Command::Send(p) if p.contains(r#""op":"ping""#)))
            .count();
    }
    assert_eq!(pings, 2);
    // Silence: a ping after 3 s, stale and a reconnect at 8 s. The timers armed before the last
    // frames fire first, find the feed alive and re-arm.
    let quiet = now;
    let mut seen = Vec::new();
    while !seen.iter().any(|(_, c)| matches!(c, Command::Reconnect(_))) {
        now = s.poll_timeout().unwrap();
        assert!(now <= quiet + Duration::from_secs(8));
        s.handle_timeout(now);
        seen.extend(std::iter::from_fn(|| s.poll_command()).map(|c| (now, c)));
    }
    assert!(
        matches!(&seen[..], [(p, Command::Send(ping)), (r, Command::Reconnect(Disconnect::Silent))]
        if *p == quiet + Duration::from_secs(3) && ping.contains(r#""op":"ping""#) && *r == quiet + Duration::from_secs(8)),
        "{seen:?}"
    );
    assert_eq!(readers[0].top().header.status, Status::Stale);
}

#[test]
fn too_many_topics_for_one_connection_are_refused_before_any_request() {
    let mut s = Session::with_exchange(Bybit::default(), config());
    let mut n = 0;
    let err = loop {
        match s.add_symbol(&format!("SYM{n:06}USDT")) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::TooManySymbols { limit: 21_000, .. }), "{err}");
    // Each topic adds `"orderbook.50.SYMxxxxxxUSDT",` (29 characters).
    assert_eq!(n, 21_000 / 29);
}

#[derive(Debug, Clone)]
enum Op {
    Delta(usize),
    Drop(usize),
    Duplicate(usize),
    Restart(usize),
    Garbage(Vec<u8>),
    Wait(u64),
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..3usize).prop_map(Op::Delta),
        1 => (0..3usize).prop_map(Op::Drop),
        1 => (0..3usize).prop_map(Op::Duplicate),
        1 => (0..3usize).prop_map(Op::Restart),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
        1 => (0..10_000u64).prop_map(Op::Wait),
        1 => Just(Op::Reconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever Bybit and the clock do, a book the session calls valid is exactly the exchange's
    /// book, and every lost delta ends in a resync, never in a wrong valid book.
    #[test]
    fn valid_means_exactly_the_exchanges_book(ops in proptest::collection::vec(op(), 1..150)) {
        let (mut s, mut x, readers) = session(3, config());
        let mut now = epoch();
        connect(&mut s, &mut x, now);
        // When the last resync that backs off may start: a book wrong right after each of its
        // fresh snapshots waits 2 s, 4 s, ... up to 300 s before its next one.
        let mut backoff_until = now;
        for op in ops {
            match op {
                Op::Delta(i) | Op::Drop(i) => {
                    let send = x.subscribed[i] && !matches!(op, Op::Drop(_));
                    let frame = x.delta(i, send);
                    if send && let Some(f) = frame {
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Duplicate(i) => {
                    if x.subscribed[i] && let Some(f) = x.last[i].clone() {
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Restart(i) => {
                    if x.subscribed[i] {
                        let f = x.restart(i);
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Garbage(g) => s.handle_frame(&g, now, 1),
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    s.handle_frame(br#"{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}"#, now, 1);
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
            let (frames, cmds) = x.answer(&mut s);
            if cmds.iter().any(|c| matches!(c, Command::Reconnect(_))) {
                s.handle_disconnected(now, Disconnect::Silent);
                x.subscribed.fill(false);
                s.handle_connected(now);
                let (frames, _) = x.answer(&mut s);
                deliver(&mut s, &frames, now);
            }
            deliver(&mut s, &frames, now);
            for e in events(&mut s) {
                if let Event::ResyncBackoff { retry_in, .. } = e {
                    prop_assert!(retry_in <= Duration::from_secs(300), "a backoff past the cap: {:?}", retry_in);
                    backoff_until = backoff_until.max(now + retry_in);
                }
            }
            for (i, r) in readers.iter().enumerate() {
                let top = r.top();
                prop_assert_eq!(Some(top.header.status), s.status(x.symbol(i)));
                if top.header.status == Status::Valid {
                    prop_assert!(same_as_truth(&s, &x, i), "{} valid but wrong", x.symbol(i));
                    prop_assert_eq!(top.header.proof, Proof::Sequence(x.sent_u[i]));
                }
            }
        }
        // Given time and quiet, every book heals: within 30 s, or 30 s after its backoff ends.
        let heal_by = (now + Duration::from_secs(30)).max(backoff_until + Duration::from_secs(30));
        while now < heal_by {
            now += Duration::from_secs(1);
            s.handle_frame(br#"{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}"#, now, 1);
            s.handle_timeout(now);
            settle(&mut s, &mut x, now);
        }
        for i in 0..3 {
            prop_assert_eq!(s.status(x.symbol(i)), Some(Status::Valid), "{}", x.symbol(i));
            prop_assert!(same_as_truth(&s, &x, i));
        }
    }
}
