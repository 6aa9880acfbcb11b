//! The sans-io `Session` with OKX v5 behind the exchange seam: no sockets, no clock. Frames come
//! from `plumb-sim`'s market (OKX's frame writer, its exact diff and its checksum written from
//! OKX's docs), time is an argument.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::time::{Duration, Instant};

use plumb_book::publish::Status;
use plumb_book::{Proof, Side, Verdict};
use plumb_feed::{Command, Config, Disconnect, Error, Event, Exchange, Fetched, Okx, ResyncReason, Session};
use plumb_sim::market::{self, Instrument, Rng, SimBook, View};
use proptest::prelude::*;

#[expect(clippy::disallowed_methods, reason = "one real Instant to offset virtual time from")]
fn epoch() -> Instant {
    Instant::now()
}

/// `books`: a 400-level snapshot, then updates; the sim's books have 60 levels a side, so the
/// subscriber holds all of them.
const DEPTH: usize = 400;

/// The first `seqId` of every book, high enough for a hundred resets below it.
const START: u64 = 1_000_000_000;

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
    /// The next subscribe of each book is acknowledged without a snapshot (OKX's REST era).
    withhold: Vec<bool>,
    /// Every state of each book since its last snapshot, sent or lost: `(seqId, book)`. The REST
    /// endpoint serves one of them.
    history: Vec<Vec<(u64, View)>>,
    /// The REST endpoint's cache lags this many states behind the book.
    rest_lag: usize,
    /// The next snapshot fetch fails with HTTP 503 and a `Retry-After`.
    fail_fetch: bool,
    /// Fetches the session asked for and not yet answered: `(id, book)`.
    fetches: Vec<(u64, usize)>,
    /// The truth of each book is a REST snapshot (which carries no checksum), not a frame.
    by_rest: Vec<bool>,
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
            seq: vec![START; n],
            sent: vec![View::default(); n],
            sent_seq: vec![0; n],
            last: vec![None; n],
            checksums,
            early_snapshots: false,
            reset: vec![false; n],
            low: vec![START; n],
            withhold: vec![false; n],
            history: vec![Vec::new(); n],
            rest_lag: 0,
            fail_fetch: false,
            fetches: Vec::new(),
            by_rest: vec![false; n],
        }
    }

    /// `GET /api/v5/market/books` as OKX answers it: the book as of a recent `seqId` (the cache
    /// may lag), with that id. Becomes the truth when it is newer than the last frame sent.
    fn rest(&mut self, i: usize) -> String {
        let h = &self.history[i];
        let (seq, view) = if h.is_empty() {
            (self.seq[i], self.books[i].view(DEPTH))
        } else {
            h[h.len().saturating_sub(1 + self.rest_lag)].clone()
        };
        let body = market::okx_rest_body(&self.books[i].instrument, &view, seq, 1_700_000_000_000);
        // Ids repeat after a reset: the latest state with an id is the one meant.
        let at = |id: u64| self.history[i].iter().rposition(|(s, _)| *s == id);
        if at(seq) >= at(self.sent_seq[i]) {
            self.sent[i] = view;
            self.sent_seq[i] = seq;
            self.by_rest[i] = true;
        }
        body
    }

    /// Answers the fetches asked for so far.
    fn answer_fetches<E: Exchange>(&mut self, s: &mut Session<E>, now: Instant) {
        for (id, i) in std::mem::take(&mut self.fetches) {
            if std::mem::take(&mut self.fail_fetch) {
                let failed = Fetched::Failed {
                    status: Some(503),
                    retry_after: Some(Duration::from_secs(2)),
                    message: "Service Unavailable",
                };
                s.handle_fetched(id, failed, now, 1);
            } else {
                let body = self.rest(i);
                s.handle_fetched(id, Fetched::Body(body.as_bytes()), now, 1);
            }
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
        self.by_rest[i] = false;
        self.history[i] = vec![(self.seq[i], view.clone())];
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
            // A million below the last range: the ids that follow never climb back into one used
            // before (a run climbs by far less), so no lost update can hide behind a reused id.
            self.low[i] -= 1_000_000 + self.rng.below(3);
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
        self.history[i].push((self.seq[i], after.clone()));
        if send {
            self.by_rest[i] = false;
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
                            if op == "subscribe" && std::mem::take(&mut self.withhold[i]) {
                                frames.push(ack);
                            } else if op == "subscribe" {
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
            if let Command::Fetch(f) = &cmd {
                let i = (0..self.books.len()).find(|&i| f.url.ends_with(&format!("instId={}&sz=400", self.symbol(i))));
                self.fetches.push((f.id, i.unwrap()));
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
    if x.checksums && !x.by_rest[i] {
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
    assert!(x.seq[0] < START, "the reset numbers from a lower seqId");
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
    /// The next subscribe of a book is acknowledged without a snapshot.
    Withhold(usize),
    /// The REST cache's lag, and whether the next fetch fails.
    Rest(usize, bool),
    /// The fetches asked for are answered now.
    Answer,
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
        1 => (0..3usize).prop_map(Op::Withhold),
        1 => (0..8usize, any::<bool>()).prop_map(|(lag, fail)| Op::Rest(lag, fail)),
        2 => Just(Op::Answer),
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
        run(ops, checksums)?;
    }
}

/// One run of the property (a function, so that a case can be replayed on its own).
fn run(ops: Vec<Op>, checksums: bool) -> Result<(), TestCaseError> {
    {
        let (mut s, mut x, readers) = session(3, checksums);
        let mut now = epoch();
        connect(&mut s, &mut x, now);
        // When the last resync that backs off may start: a book wrong right after each of its
        // fresh snapshots waits 2 s, 4 s, ... up to 300 s before its next one.
        let mut backoff_until = now;
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
                    if x.subscribed[i]
                        && let Some(f) = x.last[i].clone()
                    {
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
                    x.fetches.clear();
                    s.handle_connected(now);
                }
                Op::Withhold(i) => x.withhold[i] = true,
                Op::Rest(lag, fail) => {
                    x.rest_lag = lag;
                    x.fail_fetch = fail;
                }
                Op::Answer => x.answer_fetches(&mut s, now),
            }
            let (frames, cmds) = x.answer(&mut s);
            if cmds.iter().any(|c| matches!(c, Command::Reconnect(_))) {
                s.handle_disconnected(now, Disconnect::Silent);
                x.subscribed.fill(false);
                x.fetches.clear();
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
                    prop_assert_eq!(top.header.proof, expected_proof(&x, i));
                }
            }
        }
        // Given time and quiet, every book heals: within 60 s, or 60 s after its backoff ends.
        x.rest_lag = 0;
        x.fail_fetch = false;
        let heal_by = (now + Duration::from_secs(60)).max(backoff_until + Duration::from_secs(60));
        while now < heal_by {
            now += Duration::from_secs(1);
            s.handle_frame(b"pong", now, 1);
            s.handle_timeout(now);
            settle(&mut s, &mut x, now);
            x.answer_fetches(&mut s, now);
            // The market moves: each book's updates go to the book, or to its bridge's buffer.
            for i in 0..3 {
                if x.subscribed[i] {
                    let f = x.some_update(i, true);
                    s.handle_frame(f.as_bytes(), now, 1);
                }
            }
            settle(&mut s, &mut x, now);
        }
        for i in 0..3 {
            prop_assert_eq!(s.status(x.symbol(i)), Some(Status::Valid), "{}", x.symbol(i));
            prop_assert!(same_as_truth(&s, &x, i));
        }
    }
    Ok(())
}

/// Drives the session's timers from `from` for `secs` seconds (a `pong` each second keeps the
/// connection alive), answering subscriptions but not fetches.
fn pass(s: &mut Session<Okx>, x: &mut Exch, from: Instant, secs: u64) -> Instant {
    let mut now = from;
    for _ in 0..secs {
        now += Duration::from_secs(1);
        s.handle_frame(b"pong", now, 1);
        s.handle_timeout(now);
        settle(s, x, now);
    }
    now
}

#[test]
fn an_acknowledged_subscription_without_a_snapshot_is_bootstrapped_by_rest() {
    let (mut s, mut x, readers) = session(2, false);
    x.withhold[1] = true;
    let t = epoch();
    connect(&mut s, &mut x, t);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert_ne!(readers[1].top().header.status, Status::Valid);
    // Updates after the acknowledgement are buffered, not applied.
    for _ in 0..5 {
        let f = x.some_update(1, true);
        s.handle_frame(f.as_bytes(), t, 1);
    }
    assert!(s.book("ETH-USDT").unwrap().is_empty());
    // The snapshot timeout (10 s) passes: a REST fetch, not another subscribe.
    let now = pass(&mut s, &mut x, t, 10);
    assert_eq!(x.fetches.len(), 1, "one fetch");
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::ResyncStarted { symbol, reason: ResyncReason::SnapshotTimeout } if &**symbol == "ETH-USDT")),
        "{ev:?}"
    );
    // More updates while the fetch is in flight; the REST cache lags three states behind.
    for _ in 0..3 {
        let f = x.some_update(1, true);
        s.handle_frame(f.as_bytes(), now, 1);
    }
    x.rest_lag = 3;
    x.answer_fetches(&mut s, now);
    // The snapshot and the buffered updates after it: exactly the exchange's book, proved by the
    // last link.
    assert_eq!(readers[1].top().header.status, Status::Valid);
    assert_eq!(readers[1].top().header.proof, Proof::Sequence(x.seq[1]));
    assert!(same_as_truth(&s, &x, 1));
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::ResyncFinished { symbol, .. } if &**symbol == "ETH-USDT")), "{ev:?}");
    // The links go on from the bridge.
    let f = x.some_update(1, true);
    s.handle_frame(f.as_bytes(), now, 1);
    assert!(same_as_truth(&s, &x, 1));
    assert_eq!(readers[1].top().header.proof, Proof::Sequence(x.seq[1]));
    let c = s.stats().counts();
    assert_eq!((c.fetches, c.fetch_failures, c.sequence_gaps), (1, 0, 0));
}

#[test]
fn failed_and_too_old_rest_snapshots_are_fetched_again_backing_off() {
    let (mut s, mut x, readers) = session(1, false);
    x.withhold[0] = true;
    let t = epoch();
    connect(&mut s, &mut x, t);
    // The first two updates after the acknowledgement never reach the buffer (sent before the
    // subscription took effect, say); the buffer starts after them.
    for k in 0..6 {
        let f = x.some_update(0, k >= 2);
        if k >= 2 {
            s.handle_frame(f.as_bytes(), t, 1);
        }
    }
    let mut now = pass(&mut s, &mut x, t, 10);
    assert_eq!(x.fetches.len(), 1);
    // HTTP 503 with Retry-After: 2 s: an error event, and no fetch before 2 s.
    x.fail_fetch = true;
    x.answer_fetches(&mut s, now);
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Error(Error::Fetch { message, .. }) if message.contains("503"))),
        "{ev:?}"
    );
    assert_eq!(readers[0].top().header.status, Status::Resyncing);
    let (_, cmds) = x.answer(&mut s);
    assert!(cmds.is_empty(), "{cmds:?}");
    now = pass(&mut s, &mut x, now, 1);
    assert!(x.fetches.is_empty(), "not before the server's Retry-After");
    now = pass(&mut s, &mut x, now, 1);
    assert_eq!(x.fetches.len(), 1, "fetched again after 2 s");
    // A snapshot older than the first buffered update cannot be bridged: fetched again.
    x.rest_lag = 6;
    x.answer_fetches(&mut s, now);
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Error(Error::Fetch { message, .. }) if message.contains("too old"))),
        "{ev:?}"
    );
    assert_eq!(readers[0].top().header.status, Status::Resyncing);
    now = pass(&mut s, &mut x, now, 3);
    assert_eq!(x.fetches.len(), 1);
    x.rest_lag = 0;
    x.answer_fetches(&mut s, now);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 0));
    let c = s.stats().counts();
    assert_eq!((c.fetches, c.fetch_failures), (3, 2));
}

#[test]
fn a_lost_update_in_the_buffer_is_a_gap_after_the_bridge() {
    let (mut s, mut x, readers) = session(1, false);
    x.withhold[0] = true;
    let t = epoch();
    connect(&mut s, &mut x, t);
    let mut now = pass(&mut s, &mut x, t, 10);
    // No fetch before a first update anchors the bridge to the stream.
    assert!(x.fetches.is_empty());
    let f = x.some_update(0, true);
    s.handle_frame(f.as_bytes(), now, 1);
    assert_eq!(x.answer(&mut s).1.len(), 1, "the fetch goes with the first buffered update");
    now += Duration::from_millis(10);
    // The REST cache stands where the book is now; then an update is lost, the next one is sent.
    x.answer_fetches(&mut s, now);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    let _lost = x.some_update(0, false);
    let f = x.some_update(0, true);
    s.handle_frame(f.as_bytes(), now, 1);
    assert_eq!(readers[0].top().header.status, Status::Resyncing);
    assert_eq!(s.stats().counts().sequence_gaps, 1);
}

#[test]
fn a_full_buffer_starts_the_bridge_over_and_never_grows() {
    let config = Config { pending_frames: 4, ..Okx.config() };
    let mut x = Exch::new(1, 5, false);
    let mut s = Session::with_exchange(Okx, config);
    let reader = s.add_symbol(x.symbol(0)).unwrap();
    x.withhold[0] = true;
    let t = epoch();
    connect(&mut s, &mut x, t);
    let now = pass(&mut s, &mut x, t, 10);
    for _ in 0..6 {
        let f = x.some_update(0, true);
        s.handle_frame(f.as_bytes(), now, 1);
    }
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Error(Error::Fetch { message, .. }) if message.contains("overflowed"))),
        "{ev:?}"
    );
    // The snapshot from before the overflow is older than what the buffer kept: fetched again,
    // then bridged.
    x.rest_lag = 6;
    x.answer_fetches(&mut s, now);
    assert_eq!(reader.top().header.status, Status::Resyncing);
    let now = pass(&mut s, &mut x, now, 2);
    x.rest_lag = 1;
    x.answer_fetches(&mut s, now);
    assert_eq!(reader.top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 0));
}

#[test]
fn without_an_acknowledgement_or_a_rest_url_a_missing_snapshot_is_subscribed_again() {
    for rest in [true, false] {
        let mut config = Okx.config();
        if !rest {
            config.rest_url = None;
        }
        let mut x = Exch::new(1, 5, false);
        let mut s = Session::with_exchange(Okx, config);
        let reader = s.add_symbol(x.symbol(0)).unwrap();
        let t = epoch();
        s.handle_connected(t);
        // With a REST URL, the subscribe goes unanswered; without one, it is acknowledged.
        let (frames, _) = x.answer(&mut s);
        if !rest {
            s.handle_frame(frames[0].as_bytes(), t, 1);
        }
        let mut now = t;
        let mut cmds = Vec::new();
        for _ in 0..11 {
            now += Duration::from_secs(1);
            s.handle_frame(b"pong", now, 1);
            s.handle_timeout(now);
            cmds.extend(std::iter::from_fn(|| s.poll_command()));
        }
        assert!(!cmds.iter().any(|c| matches!(c, Command::Fetch(_))), "{cmds:?}");
        assert!(cmds.iter().any(|c| matches!(c, Command::Send(t) if t.contains(r#""op":"subscribe""#))), "{cmds:?}");
        assert_ne!(reader.top().header.status, Status::Valid);
    }
}
