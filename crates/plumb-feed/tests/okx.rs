//! The sans-io `Session` with OKX v5 behind the exchange seam: no sockets, no clock. Frames come
//! from `plumb-sim`'s market (OKX's frame writer, its exact diff and its checksum written from
//! OKX's docs), time is an argument.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::time::{Duration, Instant};

use plumb_book::publish::Status;
use plumb_book::{Proof, Side, Verdict};
use plumb_feed::{Command, Disconnect, Error, Event, Exchange, Okx, ResyncReason, Session};
use plumb_sim::market::{self, Instrument, Rng, SimBook, View};
use proptest::prelude::*;

#[expect(clippy::disallowed_methods, reason = "one real Instant to offset virtual time from")]
fn epoch() -> Instant {
    Instant::now()
}

/// `books`: a 400-level snapshot, then updates; the sim's books have 60 levels a side, so the
/// subscriber holds all of them.
const DEPTH: usize = 400;

/// A scripted OKX: the true books, the `books` frames a subscriber gets, and OKX's answers.
struct Exch {
    rng: Rng,
    books: Vec<SimBook>,
    subscribed: Vec<bool>,
    /// Per instrument: the last `seqId` used (sent or lost).
    seq: Vec<u64>,
    /// Each book as of the last frame of it that was sent: what a valid client book must equal.
    sent: Vec<View>,
    /// The `seqId` of the last frame of each book that was sent.
    sent_seq: Vec<u64>,
    /// The last update of each book sent since its snapshot, for duplicates.
    last: Vec<Option<String>>,
    /// Snapshots go out before the subscribe's acknowledgement.
    early_snapshots: bool,
    /// Legacy sessions: every snapshot and update carries OKX's checksum of the book after it.
    checksums: bool,
    /// The next update of each book starts numbering again from a low `seqId` (maintenance).
    reset: Vec<bool>,
    /// Per instrument: the lowest `seqId` used so far. A reset goes below it, to an id never used
    /// before: a lost update whose reset reused the very id the client last applied would link
    /// to it and could not be seen by anyone (OKX's rule has nothing else to go on; README).
    low: Vec<u64>,
}

impl Exch {
    fn new(n: usize, seed: u64, checksums: bool) -> Self {
        let mut rng = Rng::new(seed);
        let books: Vec<SimBook> =
            Instrument::okx_defaults().into_iter().take(n).map(|i| SimBook::new(i, &mut rng)).collect();
        Self {
            rng,
            books,
            subscribed: vec![false; n],
            seq: vec![1_000; n],
            sent: vec![View::default(); n],
            sent_seq: vec![0; n],
            last: vec![None; n],
            checksums,
            early_snapshots: false,
            reset: vec![false; n],
            low: vec![1_000; n],
        }
    }

    fn symbol(&self, i: usize) -> &str {
        &self.books[i].instrument.symbol
    }

    fn checksum(&self, i: usize, view: &View) -> i32 {
        if self.checksums { market::okx_checksum(view, &self.books[i].instrument) } else { 0 }
    }

    fn snapshot(&mut self, i: usize) -> String {
        let view = self.books[i].view(DEPTH);
        // OKX numbers a fresh snapshot ahead of everything sent before it.
        self.seq[i] += 7;
        let crc = self.checksum(i, &view);
        self.sent_seq[i] = self.seq[i];
        self.last[i] = None;
        let b = &self.books[i];
        let f = market::okx_frame(
            &b.instrument,
            "books",
            Some("snapshot"),
            &view.bids,
            &view.asks,
            (Some(-1), self.seq[i]),
            crc,
            1_700_000_000_000,
        );
        self.sent[i] = view;
        f
    }

    /// Moves book `i`; returns the update (`None` if nothing visible changed). `send` says
    /// whether the subscriber gets it (a lost update still uses its `seqId`); `corrupt` sends a
    /// checksum that is not the book's.
    fn update(&mut self, i: usize, send: bool, corrupt: bool) -> Option<String> {
        let before = self.books[i].view(DEPTH);
        self.books[i].step(&mut self.rng);
        let after = self.books[i].view(DEPTH);
        let changes = market::diff_exact(&before, &after);
        if changes.is_empty() {
            return None;
        }
        let prev = self.seq[i];
        self.seq[i] = if std::mem::take(&mut self.reset[i]) {
            self.low[i] -= 1 + self.rng.below(3);
            self.low[i]
        } else {
            prev + 1 + self.rng.below(3)
        };
        let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
        let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
        let mut crc = self.checksum(i, &after);
        if corrupt {
            crc ^= 0x55;
        }
        let prev = i64::try_from(prev).unwrap();
        let inst = &self.books[i].instrument;
        let f = market::okx_frame(inst, "books", Some("update"), &bids, &asks, (Some(prev), self.seq[i]), crc, 1);
        if send {
            self.sent[i] = after;
            self.sent_seq[i] = self.seq[i];
            self.last[i] = Some(f.clone());
        }
        Some(f)
    }

    fn some_update(&mut self, i: usize, send: bool) -> String {
        loop {
            if let Some(f) = self.update(i, send, false) {
                return f;
            }
        }
    }

    /// An update with no levels whose `prevSeqId` and `seqId` both repeat the last one.
    fn keepalive(&self, i: usize) -> String {
        let s = i64::try_from(self.seq[i]).unwrap();
        let crc = self.checksum(i, &self.sent[i]);
        market::okx_frame(&self.books[i].instrument, "books", Some("update"), &[], &[], (Some(s), self.seq[i]), crc, 1)
    }

    /// Answers the session's requests the way OKX does: each arg acknowledged, then a snapshot
    /// (a subscribe of a live channel is answered with a fresh one too); `ping` with `pong`.
    fn answer<E: Exchange>(&mut self, session: &mut Session<E>) -> (Vec<String>, Vec<Command>) {
        let mut frames = Vec::new();
        let mut seen = Vec::new();
        while let Some(cmd) = session.poll_command() {
            if let Command::Send(text) = &cmd {
                if text == "ping" {
                    frames.push("pong".to_owned());
                }
                let id = text.split('"').nth(3).unwrap_or("").to_owned();
                for op in ["subscribe", "unsubscribe"] {
                    if !text.contains(&format!(r#""op":"{op}""#)) {
                        continue;
                    }
                    for i in 0..self.books.len() {
                        if text.contains(&format!(r#""instId":"{}""#, self.symbol(i))) {
                            let ack = format!(
                                r#"{{"id":"{id}","event":"{op}","arg":{{"channel":"books","instId":"{}"}},"connId":"c"}}"#,
                                self.symbol(i)
                            );
                            self.subscribed[i] = op == "subscribe";
                            if op == "subscribe" {
                                let snap = self.snapshot(i);
                                if self.early_snapshots {
                                    frames.extend([snap, ack]);
                                } else {
                                    frames.extend([ack, snap]);
                                }
                            } else {
                                frames.push(ack);
                            }
                        }
                    }
                }
            }
            seen.push(cmd);
        }
        (frames, seen)
    }
}

fn session(n: usize, checksums: bool) -> (Session<Okx>, Exch, Vec<plumb_book::publish::Reader>) {
    let exch = Exch::new(n, 23, checksums);
    let mut s = Session::with_exchange(Okx, Okx.config());
    let readers = (0..n).map(|i| s.add_symbol(exch.symbol(i)).unwrap()).collect();
    (s, exch, readers)
}

fn deliver(s: &mut Session<Okx>, frames: &[String], now: Instant) {
    for f in frames {
        s.handle_frame(f.as_bytes(), now, 7);
    }
}

fn events(s: &mut Session<Okx>) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn settle(s: &mut Session<Okx>, x: &mut Exch, now: Instant) {
    loop {
        let (frames, _) = x.answer(s);
        if frames.is_empty() {
            break;
        }
        deliver(s, &frames, now);
    }
}

fn connect(s: &mut Session<Okx>, x: &mut Exch, now: Instant) {
    s.handle_connected(now);
    settle(s, x, now);
}

/// The session's book equals, level by level, the exchange's book as of the last frame sent.
fn same_as_truth(s: &Session<Okx>, x: &Exch, i: usize) -> bool {
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

/// What a valid book's header must name as its proof.
fn expected_proof(x: &Exch, i: usize) -> Proof {
    if x.checksums {
        Proof::Checksum(x.checksum(i, &x.sent[i]).cast_unsigned())
    } else {
        Proof::Sequence(x.sent_seq[i])
    }
}

#[test]
fn one_subscribe_for_every_instrument_each_proved_by_its_snapshot() {
    let (mut s, mut x, readers) = session(5, false);
    let t = epoch();
    s.handle_connected(t);
    let (frames, cmds) = x.answer(&mut s);
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let Command::Send(sub) = &cmds[0] else { panic!() };
    assert!(sub.contains(r#""op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}"#), "{sub}");
    assert!(sub.contains(r#"{"channel":"books","instId":"BTC-USDT-SWAP"}"#), "{sub}");
    deliver(&mut s, &frames, t);
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.top().header.status, Status::Valid, "{}", x.symbol(i));
        assert_eq!(r.top().header.proof, expected_proof(&x, i));
        assert!(same_as_truth(&s, &x, i), "{}", x.symbol(i));
    }
    // PEPE-USDT: 9 price decimals, exact.
    assert_eq!(readers[4].top().bid.unwrap().price.scale, 9);
}

#[test]
fn a_broken_link_invalidates_that_instrument_at_once_and_one_subscribe_heals_it() {
    let (mut s, mut x, readers) = session(3, false);
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    let last = x.seq[1];
    let _lost = x.some_update(1, false);
    let lost_seq = x.seq[1];
    let revealing = x.some_update(1, true);
    s.handle_frame(revealing.as_bytes(), t, 1);
    let ev = events(&mut s);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ResyncStarted { symbol, reason: ResyncReason::SequenceGap { expected, got } }
            if &**symbol == "ETH-USDT" && *expected == last && *got == lost_seq)),
        "{ev:?}"
    );
    assert_eq!(readers[1].top().header.status, Status::Resyncing);
    assert_eq!(readers[1].top().header.proof, Proof::None);
    // OKX answers a subscribe of a live channel with a fresh snapshot: one request, no unsubscribe.
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    assert!(
        matches!(&cmds[..], [Command::Send(c)] if c.contains(r#""op":"subscribe","args":[{"channel":"books","instId":"ETH-USDT"}]"#)),
        "{cmds:?}"
    );
    // Updates in flight are not applied; the other instruments go on.
    for _ in 0..20 {
        for i in 0..3 {
            let f = x.some_update(i, true);
            s.handle_frame(f.as_bytes(), t, 1);
        }
    }
    assert_eq!(readers[1].top().header.status, Status::Resyncing);
    assert!(same_as_truth(&s, &x, 0) && same_as_truth(&s, &x, 2));
    let snap = x.snapshot(1);
    s.handle_frame(snap.as_bytes(), t, 1);
    assert_eq!(readers[1].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 1));
    let c = s.stats().counts();
    assert_eq!((c.sequence_gaps, c.resyncs), (1, 1));
}

#[test]
fn a_keepalive_and_a_reset_to_a_lower_seq_id_are_not_gaps() {
    let (mut s, mut x, readers) = session(1, false);
    let t = epoch();
    connect(&mut s, &mut x, t);
    let f = x.some_update(0, true);
    s.handle_frame(f.as_bytes(), t, 1);
    let version = readers[0].version();
    let ka = x.keepalive(0);
    s.handle_frame(ka.as_bytes(), t, 1);
    assert_eq!(readers[0].version(), version, "a keepalive changes nothing");
    x.reset[0] = true;
    let f = x.some_update(0, true);
    assert!(x.seq[0] < 1_000, "the reset numbers from a lower seqId");
    s.handle_frame(f.as_bytes(), t, 1);
    let f = x.some_update(0, true);
    s.handle_frame(f.as_bytes(), t, 1);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert_eq!(readers[0].top().header.proof, Proof::Sequence(x.seq[0]));
    assert!(same_as_truth(&s, &x, 0));
    assert_eq!(s.stats().counts().sequence_gaps, 0);
    assert!(!events(&mut s).iter().any(|e| matches!(e, Event::ResyncStarted { .. })));
}

#[test]
fn legacy_checksums_prove_each_update_and_a_wrong_one_resyncs() {
    let (mut s, mut x, readers) = session(2, true);
    let t = epoch();
    connect(&mut s, &mut x, t);
    for _ in 0..10 {
        let f = x.some_update(0, true);
        s.handle_frame(f.as_bytes(), t, 1);
        assert_eq!(readers[0].top().header.proof, expected_proof(&x, 0));
    }
    let bad = loop {
        if let Some(f) = x.update(1, true, true) {
            break f;
        }
    };
    s.handle_frame(bad.as_bytes(), t, 1);
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::Book(b) if matches!(b.outcome, Verdict::Mismatch { .. }))), "{ev:?}");
    assert!(
        ev.iter().any(|e| matches!(e, Event::ResyncStarted { symbol, reason: ResyncReason::ChecksumMismatch { .. } }
            if &**symbol == "ETH-USDT")),
        "{ev:?}"
    );
    assert_eq!(readers[1].top().header.status, Status::Resyncing);
    settle(&mut s, &mut x, t);
    assert_eq!(readers[1].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 1));
}

#[test]
fn a_malformed_frame_is_an_error_and_touches_no_book() {
    let (mut s, mut x, readers) = session(2, false);
    let t = epoch();
    connect(&mut s, &mut x, t);
    events(&mut s);
    s.handle_frame(br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["6"#, t, 1);
    s.handle_frame(
        br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[[8476.98,"1","0","1"]],"bids":[],"ts":"1","checksum":0,"prevSeqId":1,"seqId":2}]}"#,
        t,
        1,
    );
    let ev = events(&mut s);
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::Error(Error::Frame(_)))).count(), 2, "{ev:?}");
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    assert!(same_as_truth(&s, &x, 0) && same_as_truth(&s, &x, 1));
    // And the next update still links to the last one.
    let f = x.some_update(0, true);
    s.handle_frame(f.as_bytes(), t, 1);
    assert!(same_as_truth(&s, &x, 0));
    assert_eq!(readers[0].top().header.proof, Proof::Sequence(x.seq[0]));
}

#[test]
fn a_snapshot_before_its_acknowledgement_is_accepted() {
    let (mut s, mut x, readers) = session(3, false);
    x.early_snapshots = true;
    let t = epoch();
    connect(&mut s, &mut x, t);
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.top().header.status, Status::Valid);
        assert!(same_as_truth(&s, &x, i));
    }
}

#[test]
fn a_dead_feed_pings_after_5_s_and_is_stale_and_replaced_by_10_s() {
    let (mut s, mut x, readers) = session(1, false);
    let t = epoch();
    connect(&mut s, &mut x, t);
    let mut seen = Vec::new();
    let mut now;
    while !seen.iter().any(|(_, c)| matches!(c, Command::Reconnect(_))) {
        now = s.poll_timeout().unwrap();
        assert!(now <= t + Duration::from_secs(10));
        s.handle_timeout(now);
        seen.extend(std::iter::from_fn(|| s.poll_command()).map(|c| (now, c)));
    }
    assert!(
        matches!(&seen[..], [(p, Command::Send(ping)), (r, Command::Reconnect(Disconnect::Silent))]
        if *p == t + Duration::from_secs(5) && ping == "ping" && *r == t + Duration::from_secs(10)),
        "{seen:?}"
    );
    assert_eq!(readers[0].top().header.status, Status::Stale);
}

#[derive(Debug, Clone)]
enum Op {
    Update(usize),
    Drop(usize),
    Duplicate(usize),
    Keepalive(usize),
    Reset(usize),
    Corrupt(usize),
    Garbage(Vec<u8>),
    Wait(u64),
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..3usize).prop_map(Op::Update),
        1 => (0..3usize).prop_map(Op::Drop),
        1 => (0..3usize).prop_map(Op::Duplicate),
        2 => (0..3usize).prop_map(Op::Keepalive),
        1 => (0..3usize).prop_map(Op::Reset),
        1 => (0..3usize).prop_map(Op::Corrupt),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
        1 => (0..12_000u64).prop_map(Op::Wait),
        1 => Just(Op::Reconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever OKX and the clock do, a book the session calls valid is exactly the exchange's
    /// book, proved by the last link (or, in legacy sessions, the last checksum) the exchange
    /// sent; every lost or repeated update ends in a resync, never in a wrong valid book.
    #[test]
    fn valid_means_exactly_the_exchanges_book(
        ops in proptest::collection::vec(op(), 1..150),
        checksums in any::<bool>(),
    ) {
        let (mut s, mut x, readers) = session(3, checksums);
        let mut now = epoch();
        connect(&mut s, &mut x, now);
        for op in ops {
            match op {
                Op::Update(i) | Op::Drop(i) | Op::Corrupt(i) => {
                    let send = x.subscribed[i] && !matches!(op, Op::Drop(_));
                    // Without checksums, a corrupt checksum is 0 ^ 0x55: a nonzero checksum
                    // where OKX sends none, which must not pass either.
                    let frame = x.update(i, send, matches!(op, Op::Corrupt(_)));
                    if send && let Some(f) = frame {
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Duplicate(i) => {
                    if x.subscribed[i] && let Some(f) = x.last[i].clone() {
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Keepalive(i) => {
                    if x.subscribed[i] {
                        let f = x.keepalive(i);
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Reset(i) => x.reset[i] = true,
                Op::Garbage(g) => s.handle_frame(&g, now, 1),
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    s.handle_frame(b"pong", now, 1);
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
            let _ = events(&mut s);
            for (i, r) in readers.iter().enumerate() {
                let top = r.top();
                prop_assert_eq!(Some(top.header.status), s.status(x.symbol(i)));
                if top.header.status == Status::Valid {
                    prop_assert!(same_as_truth(&s, &x, i), "{} valid but wrong", x.symbol(i));
                    prop_assert_eq!(top.header.proof, expected_proof(&x, i));
                }
            }
        }
        // Given time and quiet, every book heals.
        for _ in 0..40 {
            now += Duration::from_secs(1);
            s.handle_frame(b"pong", now, 1);
            s.handle_timeout(now);
            settle(&mut s, &mut x, now);
        }
        for i in 0..3 {
            prop_assert_eq!(s.status(x.symbol(i)), Some(Status::Valid), "{}", x.symbol(i));
            prop_assert!(same_as_truth(&s, &x, i));
        }
    }
}
