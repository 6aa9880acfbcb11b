//! The sans-io `Session` with Coinbase Advanced Trade behind the exchange seam: no sockets, no
//! clock. Frames come from `plumb-sim`'s market (Coinbase's frame writer and its exact diff), time
//! is an argument. Coinbase numbers every message of a connection with one counter, so a lost
//! message is seen by whatever message comes next, and every book of the connection is then wrong.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::time::{Duration, Instant};

use plumb_book::publish::Status;
use plumb_book::{Proof, Side};
use plumb_feed::{Coinbase, Command, Config, Disconnect, Error, Event, Exchange, ResyncReason, Session};
use plumb_sim::market::{self, Instrument, Rng, SimBook, View};
use proptest::prelude::*;

#[expect(clippy::disallowed_methods, reason = "one real Instant to offset virtual time from")]
fn epoch() -> Instant {
    Instant::now()
}

const T0: u64 = 1_700_000_000_000_000_000;

/// A scripted Coinbase connection: the true books, the counter, and Coinbase's answers.
struct Exch {
    rng: Rng,
    books: Vec<SimBook>,
    subscribed: Vec<bool>,
    heartbeats: bool,
    /// The connection's next `sequence_num`.
    n: u64,
    /// Each book as of the last frame of it that was sent: what a valid client book must equal.
    sent: Vec<View>,
    /// The last message sent, for duplicates.
    last: Option<String>,
    /// Products refused as not valid.
    bad: Vec<String>,
    /// Refusals name no product.
    anonymous: bool,
}

impl Exch {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut list = Instrument::coinbase_defaults();
        for k in 0..n.saturating_sub(list.len()) {
            let mut i = list[k % 4].clone();
            i.symbol = format!("X{k}-USD");
            list.push(i);
        }
        let books = list.into_iter().take(n).map(|i| SimBook::new(i, &mut rng)).collect();
        Self {
            rng,
            books,
            subscribed: vec![false; n],
            heartbeats: false,
            n: 0,
            sent: vec![View::default(); n],
            last: None,
            bad: Vec::new(),
            anonymous: false,
        }
    }

    fn symbol(&self, i: usize) -> &str {
        &self.books[i].instrument.symbol
    }

    /// Numbers a message: it is sent (`Some`) or lost on the way (`None`), and uses its number
    /// either way.
    fn number(&mut self) -> u64 {
        self.n += 1;
        self.n - 1
    }

    fn snapshot(&mut self, i: usize) -> String {
        let n = self.number();
        let view = self.books[i].view(usize::MAX);
        self.sent[i] = view.clone();
        let f = market::coinbase_frame(&self.books[i].instrument, "snapshot", &view.bids, &view.asks, n, T0);
        self.last = Some(f.clone());
        f
    }

    /// Moves book `i` until something changes; the update, or `None` when it was lost (it still
    /// took its number).
    fn update(&mut self, i: usize, send: bool) -> Option<String> {
        loop {
            let before = self.books[i].view(usize::MAX);
            self.books[i].step(&mut self.rng);
            let after = self.books[i].view(usize::MAX);
            let changes = market::diff_exact(&before, &after);
            if changes.is_empty() {
                continue;
            }
            let n = self.number();
            if !send {
                return None;
            }
            let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
            let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
            self.sent[i] = after;
            let f = market::coinbase_frame(&self.books[i].instrument, "update", &bids, &asks, n, T0 + n);
            self.last = Some(f.clone());
            return Some(f);
        }
    }

    fn heartbeat(&mut self) -> String {
        let n = self.number();
        market::coinbase_heartbeat(n, n, T0 + n)
    }

    fn subscriptions(&mut self) -> String {
        let n = self.number();
        let list: Vec<&str> = (0..self.books.len())
            .filter(|&i| self.subscribed[i])
            .map(|i| self.books[i].instrument.symbol.as_str())
            .collect();
        market::coinbase_subscriptions(n, &list, self.heartbeats, T0)
    }

    /// Answers the session's requests as Coinbase does, in order; returns the frames to deliver.
    fn answer(&mut self, session: &mut Session<Coinbase>) -> (Vec<String>, Vec<Command>) {
        let mut frames = Vec::new();
        let mut seen = Vec::new();
        while let Some(cmd) = session.poll_command() {
            if let Command::Send(text) = &cmd {
                let field =
                    |key: &str| text.split(&format!(r#""{key}":"#)).nth(1).map(|r| r.trim_start_matches(['"', '[']));
                let kind = field("type").and_then(|r| r.split('"').next()).unwrap();
                let products: Vec<String> = field("product_ids")
                    .and_then(|r| r.split(']').next())
                    .map(|list| list.split(',').map(|p| p.trim_matches('"').to_owned()).collect())
                    .unwrap_or_default();
                match field("channel").and_then(|r| r.split('"').next()).unwrap() {
                    "heartbeats" => {
                        self.heartbeats = kind == "subscribe";
                        frames.push(self.subscriptions());
                    }
                    "level2" => {
                        if let Some(bad) = products.iter().find(|p| self.bad.contains(p)) {
                            // Refused whole, naming the bad product (or not).
                            if self.anonymous {
                                frames.push(r#"{"type":"error","message":"Failed to subscribe"}"#.to_owned());
                            } else {
                                frames.push(format!(
                                    r#"{{"type":"error","message":"Failed to subscribe","reason":"{bad} is not a valid product"}}"#
                                ));
                            }
                        } else {
                            let found: Vec<usize> = products
                                .iter()
                                .filter_map(|p| (0..self.books.len()).find(|&i| self.symbol(i) == p))
                                .collect();
                            for &i in &found {
                                self.subscribed[i] = kind == "subscribe";
                            }
                            frames.push(self.subscriptions());
                            if kind == "subscribe" {
                                for i in found {
                                    frames.push(self.snapshot(i));
                                }
                            }
                        }
                    }
                    other => panic!("channel {other}"),
                }
            }
            seen.push(cmd);
        }
        (frames, seen)
    }
}

fn config() -> Config {
    Coinbase.config()
}

fn session(n: usize) -> (Session<Coinbase>, Exch, Vec<plumb_book::publish::Reader>) {
    let exch = Exch::new(n, 23);
    let mut s = Session::with_exchange(Coinbase, config());
    let readers = (0..n).map(|i| s.add_symbol(exch.symbol(i)).unwrap()).collect();
    (s, exch, readers)
}

fn deliver(s: &mut Session<Coinbase>, frames: &[String], now: Instant) {
    for f in frames {
        s.handle_frame(f.as_bytes(), now, 7);
    }
}

fn events(s: &mut Session<Coinbase>) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn settle(s: &mut Session<Coinbase>, x: &mut Exch, now: Instant) {
    loop {
        let (frames, _) = x.answer(s);
        if frames.is_empty() {
            break;
        }
        deliver(s, &frames, now);
    }
}

fn connect(s: &mut Session<Coinbase>, x: &mut Exch, now: Instant) {
    x.n = 0;
    x.subscribed.iter_mut().for_each(|b| *b = false);
    x.heartbeats = false;
    x.last = None;
    s.handle_connected(now);
    settle(s, x, now);
}

/// The session's book equals, level by level, the whole book as of the last frame of it sent.
fn same_as_truth(s: &Session<Coinbase>, x: &Exch, i: usize) -> bool {
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

fn sends(cmds: &[Command]) -> Vec<&str> {
    cmds.iter().filter_map(|c| if let Command::Send(t) = c { Some(t.as_str()) } else { None }).collect()
}

#[test]
fn heartbeats_first_then_every_book_in_one_level2_request() {
    let (mut s, mut x, readers) = session(3);
    let t = epoch();
    s.handle_connected(t);
    let (frames, cmds) = x.answer(&mut s);
    // Only the heartbeats subscribe goes out at once (well within Coinbase's 5 s).
    assert_eq!(sends(&cmds), [r#"{"type":"subscribe","channel":"heartbeats"}"#]);
    deliver(&mut s, &frames, t);
    let (frames, cmds) = x.answer(&mut s);
    assert_eq!(
        sends(&cmds),
        [r#"{"type":"subscribe","product_ids":["BTC-USD","ETH-USD","SOL-USD"],"channel":"level2"}"#]
    );
    deliver(&mut s, &frames, t);
    for (i, r) in readers.iter().enumerate() {
        let h = r.top().header;
        assert_eq!(h.status, Status::Valid, "{i}");
        assert!(matches!(h.proof, Proof::Sequence(_)));
        assert!(same_as_truth(&s, &x, i));
    }
    // Updates on any product, heartbeats between: all in sequence.
    for k in 0..300 {
        let i = k % 3;
        let f = if k % 7 == 0 { x.heartbeat() } else { x.update(i, true).unwrap() };
        s.handle_frame(f.as_bytes(), t, 1);
    }
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.top().header.status, Status::Valid);
        assert!(same_as_truth(&s, &x, i), "{i}");
    }
    let c = s.stats().counts();
    assert_eq!((c.sequence_gaps, c.resyncs, c.errors), (0, 0, 0));
    // The sequence a book shows is the counter of the last message applied to it.
    let Proof::Sequence(n) = readers[2].top().header.proof else { panic!() };
    assert_eq!(n, x.n - 1, "SOL-USD's update was the last message");
    // `-USDC` products are served as `-USD`: refused with the name to use; at most 500 products.
    let mut s = Session::with_exchange(Coinbase, config());
    assert!(matches!(s.add_symbol("BTC-USDC"), Err(Error::ServedAs { served_as, .. }) if served_as == "BTC-USD"));
    for k in 0..500 {
        s.add_symbol(&format!("X{k}-USD")).unwrap();
    }
    assert!(matches!(s.add_symbol("BTC-USD"), Err(Error::TooManySymbols { limit: 500, .. })));
    // Requests of at most 100 products.
    let (mut s, _, _) = session(150);
    s.handle_connected(t);
    s.handle_frame(market::coinbase_subscriptions(0, &[], true, T0).as_bytes(), t, 1);
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    let sent = sends(&cmds);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[1].matches("-USD").count(), 100);
    assert_eq!(sent[2].matches("-USD").count(), 50);
}

/// A gap nobody can pin on one product: every book of the connection becomes invalid at once and
/// is resynced, each valid again at its own snapshot; first revealed by an update of another
/// product, then by a heartbeat.
#[test]
fn a_gap_invalidates_every_book_of_the_connection_and_each_heals_at_its_snapshot() {
    for revealed_by_heartbeat in [false, true] {
        let (mut s, mut x, readers) = session(3);
        let t = epoch();
        connect(&mut s, &mut x, t);
        for i in 0..3 {
            let f = x.update(i, true).unwrap();
            s.handle_frame(f.as_bytes(), t, 1);
        }
        let _ = events(&mut s);
        // BTC-USD's update is lost; the next message, of ETH-USD or a heartbeat, shows it.
        assert!(x.update(0, false).is_none());
        let expected = x.n;
        let f = if revealed_by_heartbeat { x.heartbeat() } else { x.update(1, true).unwrap() };
        s.handle_frame(f.as_bytes(), t, 1);
        for (i, r) in readers.iter().enumerate() {
            assert_ne!(r.top().header.status, Status::Valid, "book {i} after the gap");
            assert_eq!(r.top().header.status, Status::Resyncing, "book {i}");
        }
        let ev = events(&mut s);
        let started: Vec<&str> = ev
            .iter()
            .filter_map(|e| match e {
                Event::ResyncStarted { symbol, reason: ResyncReason::SequenceGap { expected: e, got } } => {
                    assert_eq!((*e, *got), (expected - 1, expected));
                    Some(&**symbol)
                }
                _ => None,
            })
            .collect();
        assert_eq!(started, ["BTC-USD", "ETH-USD", "SOL-USD"], "{ev:?}");
        assert_eq!(s.stats().counts().sequence_gaps, 1);
        // Updates of the others keep coming before their snapshots: not applied.
        let stray = x.update(2, true).unwrap();
        s.handle_frame(stray.as_bytes(), t, 1);
        assert_eq!(readers[2].top().header.status, Status::Resyncing);
        // Unsubscribe and subscribe for each, paced within Coinbase's 8 messages a second,
        // answered in order.
        let mut sent: Vec<(Instant, String)> = Vec::new();
        let mut now = t;
        while now < t + Duration::from_secs(3) {
            s.handle_timeout(now);
            let (frames, cmds) = x.answer(&mut s);
            sent.extend(sends(&cmds).into_iter().map(|c| (now, c.to_owned())));
            deliver(&mut s, &frames, now);
            now += Duration::from_millis(10);
        }
        assert_eq!(sent.len(), 6, "{sent:?}");
        assert!(sent[0].1.contains("unsubscribe") && sent[1].1.contains(r#""type":"subscribe""#));
        for (k, (at, _)) in sent.iter().enumerate() {
            let in_a_second = sent[k..].iter().take_while(|(b, _)| *b < *at + Duration::from_secs(1)).count();
            assert!(in_a_second <= 8, "{sent:?}");
        }
        for (i, r) in readers.iter().enumerate() {
            assert_eq!(r.top().header.status, Status::Valid, "book {i} healed");
            assert!(same_as_truth(&s, &x, i), "{i}");
        }
        let finished = events(&mut s).iter().filter(|e| matches!(e, Event::ResyncFinished { .. })).count();
        assert_eq!(finished, 3);
        // And in sequence from there.
        let f = x.update(0, true).unwrap();
        s.handle_frame(f.as_bytes(), t, 1);
        assert!(same_as_truth(&s, &x, 0));
        assert_eq!(readers[0].top().header.status, Status::Valid);
    }
}

/// Past eight books, a new connection (one request for all, a new counter) is quicker than
/// resubscribing each at Coinbase's eight messages a second.
#[test]
fn a_gap_on_a_connection_of_many_books_reconnects() {
    let (mut s, mut x, readers) = session(12);
    let t = epoch();
    connect(&mut s, &mut x, t);
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    let _ = x.update(5, false);
    let hb = x.heartbeat();
    s.handle_frame(hb.as_bytes(), t, 1);
    assert!(readers.iter().all(|r| r.top().header.status == Status::Invalid));
    let cmds: Vec<Command> = std::iter::from_fn(|| s.poll_command()).collect();
    assert_eq!(cmds, [Command::Reconnect(Disconnect::SequenceGap)]);
    // A frame after the session gave the connection up changes nothing.
    let f = x.update(3, true).unwrap();
    s.handle_frame(f.as_bytes(), t, 1);
    assert_eq!(readers[3].top().header.status, Status::Invalid);
    s.handle_disconnected(t, Disconnect::SequenceGap);
    connect(&mut s, &mut x, t + Duration::from_millis(300));
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(r.top().header.status, Status::Valid, "{i}");
        assert!(same_as_truth(&s, &x, i));
    }
}

/// A snapshot that comes before the `subscriptions` acknowledgement of its request is taken.
#[test]
fn a_snapshot_before_its_acknowledgement_is_taken() {
    let (mut s, mut x, readers) = session(2);
    let t = epoch();
    s.handle_connected(t);
    let (frames, _) = x.answer(&mut s);
    deliver(&mut s, &frames, t);
    let (mut frames, _) = x.answer(&mut s);
    // [subscriptions, snapshot, snapshot] as answered; send the acknowledgement last, renumbered
    // so that the counter still steps by one.
    let ack = frames.remove(0);
    let renumber = |f: &str, n: u64| {
        let (head, rest) = f.split_once(r#""sequence_num":"#).unwrap();
        format!(r#"{head}"sequence_num":{n}{}"#, rest.trim_start_matches(|c: char| c.is_ascii_digit()))
    };
    let reordered = [renumber(&frames[0], 1), renumber(&frames[1], 2), renumber(&ack, 3)];
    deliver(&mut s, &reordered[..2], t);
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    deliver(&mut s, &reordered[2..], t);
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    assert!(same_as_truth(&s, &x, 0) && same_as_truth(&s, &x, 1));
    assert_eq!(s.stats().counts().sequence_gaps, 0);
}

#[test]
fn duplicates_and_older_messages_are_ignored_and_a_new_connection_starts_a_new_counter() {
    let (mut s, mut x, readers) = session(2);
    let t = epoch();
    connect(&mut s, &mut x, t);
    let f = x.update(0, true).unwrap();
    s.handle_frame(f.as_bytes(), t, 1);
    let old = x.update(0, true).unwrap();
    s.handle_frame(old.as_bytes(), t, 1);
    let newest = x.update(0, true).unwrap();
    s.handle_frame(newest.as_bytes(), t, 1);
    let before = s.stats().counts();
    // The same message twice, and an older one: ignored whole, the book unchanged and valid.
    s.handle_frame(newest.as_bytes(), t, 1);
    s.handle_frame(old.as_bytes(), t, 1);
    assert!(same_as_truth(&s, &x, 0));
    assert_eq!(readers[0].top().header.status, Status::Valid);
    let after = s.stats().counts();
    assert_eq!(after.ignored, before.ignored + 2);
    assert_eq!((after.sequence_gaps, after.resyncs), (0, 0));
    // A new connection numbers from 0 again: not stale.
    s.handle_disconnected(t, Disconnect::ServerClosed);
    assert_eq!(readers[0].top().header.status, Status::Stale);
    connect(&mut s, &mut x, t);
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    assert_eq!(s.stats().counts().sequence_gaps, 0);
}

/// A malformed frame with no readable `sequence_num` takes no number: the message after it is
/// in sequence. A malformed book message that did take a number shows up as a gap at the next.
#[test]
fn a_malformed_frame_takes_no_number_and_touches_no_book() {
    let (mut s, mut x, readers) = session(2);
    let t = epoch();
    connect(&mut s, &mut x, t);
    s.handle_frame(br#"{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50Z","sequence_num":"#, t, 1);
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::Error(Error::Frame(_)))), "{ev:?}");
    let f = x.update(1, true).unwrap();
    s.handle_frame(f.as_bytes(), t, 1);
    assert!(readers.iter().all(|r| r.top().header.status == Status::Valid));
    assert!(same_as_truth(&s, &x, 1));
    let c = s.stats().counts();
    assert_eq!((c.errors, c.sequence_gaps), (1, 0));
    // Truncated after its number: the number was used, and the next message finds the gap.
    let n = x.number();
    let cut = format!(
        r#"{{"channel":"l2_data","client_id":"","sequence_num":{n},"events":[{{"type":"update","product_id":"BTC-USD","updates":[{{"side":"bid""#
    );
    s.handle_frame(cut.as_bytes(), t, 1);
    let hb = x.heartbeat();
    s.handle_frame(hb.as_bytes(), t, 1);
    assert!(readers.iter().all(|r| r.top().header.status == Status::Resyncing));
}

#[test]
fn a_subscribe_refused_for_one_bad_product_is_sent_again_without_it() {
    let (mut s, mut x, readers) = session(3);
    x.bad.push("ETH-USD".to_owned());
    let t = epoch();
    s.handle_connected(t);
    settle(&mut s, &mut x, t);
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Error(Error::SubscriptionRejected { symbol, message })
            if &**symbol == "ETH-USD" && message.contains("not a valid product"))),
        "{ev:?}"
    );
    assert_eq!(readers[1].top().header.status, Status::Invalid);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert_eq!(readers[2].top().header.status, Status::Valid);
    assert!(x.subscribed[0] && !x.subscribed[1] && x.subscribed[2]);
}

/// An error that names neither its request nor a product: the oldest request not yet answered
/// was refused (Coinbase answers in order); its products are asked for again in halves, halved
/// again while refused, so that the bad one is refused alone in a few requests and the others
/// heal.
#[test]
fn a_refusal_naming_no_product_is_narrowed_down_by_halves() {
    let (mut s, mut x, readers) = session(4);
    x.bad.push("SOL-USD".to_owned());
    x.anonymous = true;
    let t = epoch();
    s.handle_connected(t);
    let mut level2 = 0;
    loop {
        let (frames, cmds) = x.answer(&mut s);
        level2 += sends(&cmds).iter().filter(|c| c.contains("level2")).count();
        if frames.is_empty() {
            break;
        }
        deliver(&mut s, &frames, t);
    }
    let ev = events(&mut s);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Error(Error::SubscriptionRejected { symbol, .. }) if &**symbol == "SOL-USD")),
        "{ev:?}"
    );
    // [all four] -> [BTC, ETH] + [SOL, DOGE] -> [SOL] + [DOGE]: five requests, not one per product.
    assert_eq!(level2, 5);
    for (i, r) in readers.iter().enumerate() {
        let want = if i == 2 { Status::Invalid } else { Status::Valid };
        assert_eq!(r.top().header.status, want, "{}", x.symbol(i));
    }
}

#[test]
fn a_silent_connection_is_stale_within_5_s_and_replaced_with_no_ping_sent() {
    let (mut s, mut x, readers) = session(1);
    let t = epoch();
    connect(&mut s, &mut x, t);
    // Heartbeats every second keep it alive.
    let mut now = t;
    for _ in 0..20 {
        now += Duration::from_secs(1);
        let hb = x.heartbeat();
        s.handle_frame(hb.as_bytes(), now, 1);
        s.handle_timeout(now);
        assert!(s.poll_command().is_none());
    }
    assert_eq!(readers[0].top().header.status, Status::Valid);
    // Then nothing: no ping (Coinbase has none), stale and a reconnect at 5 s.
    let silent_from = now;
    while now < silent_from + Duration::from_secs(5) {
        assert_eq!(readers[0].top().header.status, Status::Valid);
        now += Duration::from_millis(250);
        s.handle_timeout(now);
        if now < silent_from + Duration::from_secs(5) {
            assert!(s.poll_command().is_none(), "nothing to send while silent");
        }
    }
    assert_eq!(readers[0].top().header.status, Status::Stale);
    assert_eq!(s.poll_command(), Some(Command::Reconnect(Disconnect::Silent)));
}

#[derive(Debug, Clone)]
enum Op {
    Update(usize),
    Lose(usize),
    Heartbeat,
    Duplicate,
    Time(u16),
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..3usize).prop_map(Op::Update),
        1 => (0..3usize).prop_map(Op::Lose),
        2 => Just(Op::Heartbeat),
        1 => Just(Op::Duplicate),
        2 => (0..1500u16).prop_map(Op::Time),
        1 => Just(Op::Reconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Over random updates, lost messages, duplicates, heartbeats, time and reconnects: a book its
    /// readers see `Valid` equals the exchange's book, level by level, and a lost message leaves
    /// no book of the connection valid until its own next snapshot.
    #[test]
    fn valid_means_exactly_the_exchanges_book(ops in proptest::collection::vec(op(), 1..120), seed in 0u64..1000) {
        let mut x = Exch::new(3, seed);
        let mut s = Session::with_exchange(Coinbase, config());
        let readers: Vec<_> = (0..3).map(|i| s.add_symbol(x.symbol(i)).unwrap()).collect();
        let mut now = epoch();
        connect(&mut s, &mut x, now);
        // Books that must not read valid: a message was lost since their last snapshot, and a
        // later message has shown it (until then nobody can know).
        let mut tainted = [false; 3];
        let mut lost = false;
        for op in ops {
            match op {
                Op::Update(i) => {
                    if x.subscribed[i]
                        && let Some(f) = x.update(i, true)
                    {
                        if std::mem::take(&mut lost) {
                            tainted = [true; 3];
                        }
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Lose(i) => {
                    let _ = x.update(i, false);
                    lost = true;
                }
                Op::Heartbeat => {
                    if std::mem::take(&mut lost) {
                        tainted = [true; 3];
                    }
                    let hb = x.heartbeat();
                    s.handle_frame(hb.as_bytes(), now, 1);
                }
                Op::Duplicate => {
                    if let Some(f) = x.last.clone() {
                        s.handle_frame(f.as_bytes(), now, 1);
                    }
                }
                Op::Time(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    s.handle_timeout(now);
                }
                Op::Reconnect => {
                    s.handle_disconnected(now, Disconnect::ServerClosed);
                    connect(&mut s, &mut x, now);
                    (tainted, lost) = ([false; 3], false);
                }
            }
            // The exchange answers whatever the session asked (resyncs, resubscribes).
            let (frames, cmds) = x.answer(&mut s);
            if cmds.iter().any(|c| matches!(c, Command::Reconnect(_))) {
                s.handle_disconnected(now, Disconnect::Silent);
                connect(&mut s, &mut x, now);
                (tainted, lost) = ([false; 3], false);
            } else {
                for f in &frames {
                    if std::mem::take(&mut lost) {
                        tainted = [true; 3];
                    }
                    s.handle_frame(f.as_bytes(), now, 1);
                    for (i, t) in tainted.iter_mut().enumerate() {
                        if f.contains(r#""type":"snapshot""#) && f.contains(&format!(r#""product_id":"{}""#, x.books[i].instrument.symbol)) {
                            *t = false;
                        }
                    }
                }
            }
            for (i, r) in readers.iter().enumerate() {
                let h = r.top().header;
                if h.status == Status::Valid {
                    prop_assert!(!tainted[i], "book {} valid after a lost message", i);
                    prop_assert!(same_as_truth(&s, &x, i), "book {} valid but not the exchange's", i);
                }
            }
        }
    }
}
