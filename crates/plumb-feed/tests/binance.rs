//! The sans-io `Session` with Binance spot and USD-M behind the exchange seam: no sockets, no
//! clock. Events and REST bodies come from `plumb-sim`'s market (Binance's writers), time is an
//! argument. A book is a REST snapshot bridged to the events buffered since its subscription.

#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::time::{Duration, Instant};

use plumb_book::publish::Status;
use plumb_book::{Proof, Side};
use plumb_feed::{Binance, BinanceUsdm, Command, Config, Disconnect, Error, Event, Exchange, Fetched, Session};
use plumb_sim::market::{self, Instrument, Rng, SimBook, View};
use proptest::prelude::*;

#[expect(clippy::disallowed_methods, reason = "one real Instant to offset virtual time from")]
fn epoch() -> Instant {
    Instant::now()
}

/// A scripted Binance: the true books, their update ids, the events a subscriber gets, and the
/// REST snapshots it may fetch (any state since the last one, so that a snapshot can lag).
struct Exch {
    usdm: bool,
    rng: Rng,
    books: Vec<SimBook>,
    /// The last update id of each book.
    u: Vec<u64>,
    /// Each book's states, `(id, view)`, oldest first (the REST endpoint serves one of them).
    history: Vec<Vec<(u64, View)>>,
    /// Fetches asked for and not answered: `(id, book)`.
    fetches: Vec<(u64, usize)>,
    last: Option<String>,
}

impl Exch {
    fn new(n: usize, seed: u64, usdm: bool) -> Self {
        let mut rng = Rng::new(seed);
        let mut list = Instrument::binance_defaults();
        for k in 0..n.saturating_sub(list.len()) {
            let mut i = list[k % 4].clone();
            i.symbol = format!("X{k}USDT");
            list.push(i);
        }
        let books: Vec<SimBook> = list.into_iter().take(n).map(|i| SimBook::new(i, &mut rng)).collect();
        let u = vec![5_000u64; n];
        let history = books.iter().map(|b| vec![(5_000u64, b.view(1000))]).collect();
        Self { usdm, rng, books, u, history, fetches: Vec::new(), last: None }
    }

    fn symbol(&self, i: usize) -> &str {
        &self.books[i].instrument.symbol
    }

    fn index(&self, symbol: &str) -> usize {
        (0..self.books.len()).find(|&i| self.symbol(i) == symbol).unwrap()
    }

    /// Moves book `i` until something changes; the event (sent or lost, its ids used either way).
    fn event(&mut self, i: usize) -> String {
        loop {
            let before = self.books[i].view(1000);
            self.books[i].step(&mut self.rng);
            let after = self.books[i].view(1000);
            let changes = market::diff(&before, &after, &self.books[i]);
            if changes.is_empty() {
                continue;
            }
            let prev = self.u[i];
            let first = prev + 1 + if self.usdm { self.rng.below(4) } else { 0 };
            let last = first + self.rng.below(3);
            self.u[i] = last;
            self.history[i].push((last, after));
            let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
            let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
            let f = market::binance_event(
                &self.books[i].instrument,
                (first, last, self.usdm.then_some(prev)),
                &bids,
                &asks,
                1_700_000_000_000,
            );
            self.last = Some(f.clone());
            return f;
        }
    }

    /// The REST body of book `i`, `lag` states behind its newest.
    fn rest(&self, i: usize, lag: usize) -> String {
        let h = &self.history[i];
        let (id, view) = &h[h.len().saturating_sub(1 + lag)];
        market::binance_depth_body(&self.books[i].instrument, view, *id, self.usdm.then_some(1))
    }

    /// Answers the session's requests: acknowledgements now, fetches kept for later.
    fn answer<E: Exchange>(&mut self, s: &mut Session<E>) -> (Vec<String>, Vec<Command>) {
        let mut frames = Vec::new();
        let mut seen = Vec::new();
        while let Some(cmd) = s.poll_command() {
            match &cmd {
                Command::Send(text) => {
                    let id = text.rsplit(r#""id":"#).next().unwrap().trim_end_matches('}').to_owned();
                    if text.contains("LIST_SUBSCRIPTIONS") {
                        frames.push(format!(r#"{{"result":[],"id":{id}}}"#));
                    } else {
                        frames.push(format!(r#"{{"result":null,"id":{id}}}"#));
                    }
                }
                Command::Fetch(f) => {
                    let i = self.index(&f.symbol);
                    self.fetches.push((f.id, i));
                }
                Command::Reconnect(_) | Command::Rollover => {}
            }
            seen.push(cmd);
        }
        (frames, seen)
    }

    /// Answers every fetch asked for, `lag` states behind.
    fn serve_fetches<E: Exchange>(&mut self, s: &mut Session<E>, lag: usize, now: Instant) {
        for (id, i) in std::mem::take(&mut self.fetches) {
            let body = self.rest(i, lag);
            s.handle_fetched(id, Fetched::Body(body.as_bytes()), now, 1);
        }
    }
}

fn session<E: Exchange>(
    exchange: E,
    x: &Exch,
    n: usize,
    config: Config,
) -> (Session<E>, Vec<plumb_book::publish::Reader>) {
    let mut s = Session::with_exchange(exchange, config);
    let readers = (0..n).map(|i| s.add_symbol(x.symbol(i)).unwrap()).collect();
    (s, readers)
}

fn rest_config<E: Exchange>(e: &E) -> Config {
    Config { rest_url: Some("http://127.0.0.1:9".into()), ..e.config() }
}

fn deliver<E: Exchange>(s: &mut Session<E>, frames: &[String], now: Instant) {
    for f in frames {
        s.handle_frame(f.as_bytes(), now, 1);
    }
}

/// Lets time pass in steps of 50 ms until `until` or until `want` fetches are asked for,
/// delivering the exchange's answers; returns the time reached.
fn pump<E: Exchange>(s: &mut Session<E>, x: &mut Exch, mut now: Instant, until: Instant, want: usize) -> Instant {
    loop {
        let (frames, _) = x.answer(s);
        deliver(s, &frames, now);
        if x.fetches.len() >= want || now >= until {
            return now;
        }
        now += Duration::from_millis(50);
        s.handle_timeout(now);
    }
}

/// Connects, acknowledges, buffers a few events of each book, then answers the fetches; returns
/// the time reached.
fn connect<E: Exchange>(s: &mut Session<E>, x: &mut Exch, now: Instant) -> Instant {
    s.handle_connected(now);
    let n = x.books.len();
    let now = pump(s, x, now, now + Duration::from_secs(5), n);
    for i in 0..n {
        for _ in 0..3 {
            let f = x.event(i);
            s.handle_frame(f.as_bytes(), now, 1);
        }
    }
    x.serve_fetches(s, 1, now);
    now
}

/// The session's book equals, level by level, the exchange's book.
fn same_as_truth<E: Exchange>(s: &Session<E>, x: &Exch, i: usize) -> bool {
    same_as(s, x, i, &x.books[i].view(1000))
}

/// The session's book equals, level by level, `view`.
fn same_as<E: Exchange>(s: &Session<E>, x: &Exch, i: usize, view: &View) -> bool {
    let book = s.book(x.symbol(i)).unwrap();
    let inst = &x.books[i].instrument;
    let to_units = |q: plumb_book::Quote| {
        let p = q.price.mantissa * 10i64.pow(u32::from(inst.price_precision - q.price.scale));
        let v = q.qty.mantissa * 10i64.pow(u32::from(inst.qty_precision - q.qty.scale));
        (u64::try_from(p).unwrap(), u64::try_from(v).unwrap())
    };
    book.quotes(Side::Bid).map(to_units).collect::<Vec<_>>() == view.bids
        && book.quotes(Side::Ask).map(to_units).collect::<Vec<_>>() == view.asks
}

fn sends(cmds: &[Command]) -> usize {
    cmds.iter().filter(|c| matches!(c, Command::Send(_))).count()
}

#[test]
fn a_book_is_a_rest_snapshot_bridged_to_the_events_buffered_since_the_subscription() {
    let mut x = Exch::new(2, 3, false);
    let (mut s, readers) = session(Binance, &x, 2, rest_config(&Binance));
    let t = epoch();
    s.handle_connected(t);
    let (frames, cmds) = x.answer(&mut s);
    assert_eq!(sends(&cmds), 1);
    // No snapshot comes on the stream: the fetch goes as soon as the subscription is acknowledged,
    // before any event.
    deliver(&mut s, &frames, t);
    let (_, cmds) = x.answer(&mut s);
    let fetches: Vec<&str> =
        cmds.iter().filter_map(|c| if let Command::Fetch(f) = c { Some(f.url.as_str()) } else { None }).collect();
    // The first at once, the next after its jitter (at most 50 ms).
    assert_eq!(fetches, ["http://127.0.0.1:9/api/v3/depth?symbol=BTCUSDT&limit=1000"]);
    let t = pump(&mut s, &mut x, t, t + Duration::from_millis(100), 2);
    assert_eq!(x.fetches.len(), 2);
    // Events come meanwhile: buffered, not applied.
    for _ in 0..4 {
        for i in 0..2 {
            let f = x.event(i);
            s.handle_frame(f.as_bytes(), t, 1);
        }
    }
    assert!(readers.iter().all(|r| r.top().header.status != Status::Valid));
    // BTCUSDT's snapshot straddles the buffer (two states behind); ETHUSDT's is its newest, so
    // the next event is exactly contiguous (`U == lastUpdateId + 1`).
    let (id0, i0) = x.fetches[0];
    let body = x.rest(i0, 2);
    s.handle_fetched(id0, Fetched::Body(body.as_bytes()), t, 1);
    let (id1, i1) = x.fetches[1];
    let body = x.rest(i1, 0);
    s.handle_fetched(id1, Fetched::Body(body.as_bytes()), t, 1);
    x.fetches.clear();
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 0));
    // ETHUSDT's snapshot has nothing after it yet: not valid until an event reaches back to it.
    assert_eq!(readers[1].top().header.status, Status::Unverified);
    let f = x.event(1);
    s.handle_frame(f.as_bytes(), t, 1);
    assert_eq!(readers[1].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 1));
    assert!(matches!(readers[1].top().header.proof, Proof::Sequence(u) if u == x.u[1]));
    let ev: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        !ev.iter().any(|e| matches!(e, Event::ResyncStarted { .. } | Event::ResyncFinished { .. })),
        "first fetches are not resyncs: {ev:?}"
    );
}

#[test]
fn a_snapshot_older_than_the_buffer_is_fetched_again() {
    let mut x = Exch::new(1, 4, false);
    let (mut s, readers) = session(Binance, &x, 1, rest_config(&Binance));
    let t = epoch();
    // The market moved before the subscription: those events never reach the client.
    for _ in 0..10 {
        let _ = x.event(0);
    }
    s.handle_connected(t);
    let (frames, _) = x.answer(&mut s);
    deliver(&mut s, &frames, t);
    let _ = x.answer(&mut s);
    for _ in 0..3 {
        let f = x.event(0);
        s.handle_frame(f.as_bytes(), t, 1);
    }
    // A snapshot from before the subscription: older than the first buffered event.
    x.serve_fetches(&mut s, 8, t);
    assert_ne!(readers[0].top().header.status, Status::Valid);
    let ev: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        ev.iter().any(|e| matches!(e, Event::Error(Error::Fetch { message, .. }) if message.contains("bridges"))),
        "{ev:?}"
    );
    // Asked again after a backoff, and bridged.
    let mut now = t;
    while x.fetches.is_empty() && now < t + Duration::from_secs(5) {
        now += Duration::from_millis(50);
        s.handle_timeout(now);
        let _ = x.answer(&mut s);
    }
    assert!(!x.fetches.is_empty());
    x.serve_fetches(&mut s, 1, now);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert!(same_as_truth(&s, &x, 0));
}

/// A snapshot fetched before any event was buffered, that the first event does not reach back
/// to: it stood behind the stream (Binance's "lastUpdateId below the first event's U"), so it is
/// fetched again, quietly: no gap, no resync, the event kept for the new bridge, and the book
/// never valid meanwhile. Spot and USD-M.
#[test]
fn a_snapshot_behind_the_stream_with_nothing_buffered_is_fetched_again_not_a_gap() {
    for usdm in [false, true] {
        let mut x = Exch::new(1, 9, usdm);
        let config = if usdm { rest_config(&BinanceUsdm) } else { rest_config(&Binance) };
        let t = epoch();
        macro_rules! check {
            ($ex:expr) => {{
                let (mut s, readers) = session($ex, &x, 1, config.clone());
                s.handle_connected(t);
                let now = pump(&mut s, &mut x, t, t + Duration::from_secs(5), 1);
                assert_eq!(x.fetches.len(), 1, "usdm {usdm}: fetched on the ack");
                // The market moves on before the snapshot comes: these events reach no one (the
                // subscription only now starts delivering).
                for _ in 0..6 {
                    let _ = x.event(0);
                }
                // The snapshot comes from before those, with nothing buffered: taken, unverified.
                x.serve_fetches(&mut s, 6, now);
                assert_ne!(readers[0].top().header.status, Status::Valid);
                let f = x.event(0);
                s.handle_frame(f.as_bytes(), now, 1);
                assert_ne!(readers[0].top().header.status, Status::Valid, "usdm {usdm}");
                let ev: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
                assert!(!ev.iter().any(|e| matches!(e, Event::ResyncStarted { .. })), "usdm {usdm}: {ev:?}");
                assert!(
                    ev.iter().any(|e| matches!(e, Event::Error(Error::Fetch { message, .. }) if message.contains("behind the stream"))),
                    "usdm {usdm}: {ev:?}"
                );
                assert_eq!(s.stats().counts().sequence_gaps, 0, "usdm {usdm}: not a gap");
                // Asked again after a backoff; a snapshot the kept event reaches back to bridges.
                let mut now = now;
                while x.fetches.is_empty() && now < t + Duration::from_secs(10) {
                    now += Duration::from_millis(50);
                    s.handle_timeout(now);
                    let _ = x.answer(&mut s);
                }
                assert_eq!(x.fetches.len(), 1, "usdm {usdm}: fetched again");
                x.serve_fetches(&mut s, 1, now);
                assert_eq!(readers[0].top().header.status, Status::Valid, "usdm {usdm}");
                assert!(same_as_truth(&s, &x, 0));
                assert_eq!(s.stats().counts().resyncs, 0);
                // Still the book's first start: no resync ended that never began.
                let ev: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
                assert!(!ev.iter().any(|e| matches!(e, Event::ResyncFinished { .. })), "usdm {usdm}: {ev:?}");
            }};
        }
        if usdm {
            check!(BinanceUsdm);
        } else {
            check!(Binance);
        }
    }
}

/// A lost event: that book alone is invalid, and it is bridged again from a new snapshot on the
/// same subscription (nothing is sent to the stream); the event that showed the gap is kept for
/// the new bridge. Spot by `U`, USD-M by `pu`; a duplicate is ignored.
#[test]
fn a_lost_event_rebridges_that_book_alone_and_a_duplicate_is_ignored() {
    for usdm in [false, true] {
        let mut x = Exch::new(2, 5, usdm);
        let config = if usdm { rest_config(&BinanceUsdm) } else { rest_config(&Binance) };
        let t = epoch();
        macro_rules! run {
            ($e:expr) => {{
                let (mut s, readers) = session($e, &x, 2, config.clone());
                let t = connect(&mut s, &mut x, t);
                assert!(readers.iter().all(|r| r.top().header.status == Status::Valid), "usdm {usdm}");
                // A duplicate: ignored, nothing resyncs.
                let f = x.event(0);
                s.handle_frame(f.as_bytes(), t, 1);
                s.handle_frame(f.as_bytes(), t, 1);
                assert_eq!(readers[0].top().header.status, Status::Valid);
                assert_eq!(s.stats().counts().resyncs, 0);
                // A lost event of BTCUSDT, shown by its next one.
                let _lost = x.event(0);
                let f = x.event(0);
                s.handle_frame(f.as_bytes(), t, 1);
                assert_eq!(readers[0].top().header.status, Status::Resyncing);
                assert_eq!(readers[1].top().header.status, Status::Valid);
                let (_, cmds) = x.answer(&mut s);
                assert_eq!(sends(&cmds), 0, "no request to the stream");
                // The fetch goes once the budget's jitter allows (at most 50 ms).
                let t = pump(&mut s, &mut x, t, t + Duration::from_secs(1), 1);
                assert_eq!(x.fetches.len(), 1);
                let f = x.event(0);
                s.handle_frame(f.as_bytes(), t, 1);
                x.serve_fetches(&mut s, 1, t);
                assert_eq!(readers[0].top().header.status, Status::Valid, "usdm {usdm}");
                assert!(same_as_truth(&s, &x, 0) && same_as_truth(&s, &x, 1));
                let c = s.stats().counts();
                assert_eq!((c.sequence_gaps, c.resyncs), (1, 1));
            }};
        }
        if usdm {
            run!(BinanceUsdm);
        } else {
            run!(Binance);
        }
    }
}

/// 200 books resyncing at once: the fetches go out under the weight budget (a quarter of it at
/// once, then one per 1.25 s for depth 1000), never more than 3,000 of weight in any minute (the
/// rate of 2,400 a minute and the burst): half of Binance's 6,000.
#[test]
fn fetches_of_200_books_are_paced_by_weight() {
    let mut x = Exch::new(200, 6, false);
    let (mut s, _readers) = session(Binance, &x, 200, rest_config(&Binance));
    let t = epoch();
    s.handle_connected(t);
    let (frames, _) = x.answer(&mut s);
    deliver(&mut s, &frames, t);
    let mut at: Vec<Instant> = Vec::new();
    let mut now = t;
    while now < t + Duration::from_secs(300) {
        // The connection's keepalive is answered: it stays up through a quiet market.
        let (frames, _) = x.answer(&mut s);
        deliver(&mut s, &frames, now);
        at.extend(std::iter::repeat_n(now, x.fetches.len()));
        for (id, i) in std::mem::take(&mut x.fetches) {
            let body = x.rest(i, 0);
            s.handle_fetched(id, Fetched::Body(body.as_bytes()), now, 1);
        }
        now += Duration::from_millis(100);
        s.handle_timeout(now);
    }
    assert_eq!(at.len(), 200, "every book fetched once");
    for (k, a) in at.iter().enumerate() {
        let in_a_minute = at[k..].iter().take_while(|b| **b < *a + Duration::from_secs(60)).count();
        assert!(in_a_minute * 50 <= 2400 + 600, "{in_a_minute} fetches of weight 50 in a minute");
    }
    assert!(at.iter().filter(|a| **a == t).count() <= 12);
}

#[test]
fn rest_refusals_429_and_unknown_symbols() {
    let mut x = Exch::new(2, 7, false);
    let (mut s, readers) = session(Binance, &x, 2, rest_config(&Binance));
    let t = epoch();
    s.handle_connected(t);
    let t = pump(&mut s, &mut x, t, t + Duration::from_secs(1), 2);
    let fetches = std::mem::take(&mut x.fetches);
    // ETHUSDT does not exist (HTTP 400, -1121): refused, as a refused subscription, and not asked for again.
    s.handle_fetched(
        fetches[1].0,
        Fetched::Failed {
            status: Some(400),
            retry_after: None,
            message: r#"Bad Request: {"code":-1121,"msg":"Invalid symbol."}"#,
        },
        t,
        1,
    );
    // BTCUSDT: 429 with Retry-After 30: the next fetch waits that long.
    s.handle_fetched(
        fetches[0].0,
        Fetched::Failed { status: Some(429), retry_after: Some(Duration::from_secs(30)), message: "Too Many Requests" },
        t,
        1,
    );
    let ev: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Error(Error::SubscriptionRejected { symbol, .. }) if &**symbol == "ETHUSDT")),
        "{ev:?}"
    );
    assert_eq!(readers[1].top().header.status, Status::Invalid);
    let mut now = t;
    let mut first_refetch = None;
    while now < t + Duration::from_secs(60) {
        now += Duration::from_millis(500);
        s.handle_timeout(now);
        let (frames, _) = x.answer(&mut s);
        deliver(&mut s, &frames, now);
        if !x.fetches.is_empty() && first_refetch.is_none() {
            first_refetch = Some(now);
            assert!(x.fetches.iter().all(|(_, i)| *i == 0), "the refused symbol is not fetched again");
            x.serve_fetches(&mut s, 0, now);
        }
    }
    let waited = first_refetch.unwrap().duration_since(t);
    assert!(waited >= Duration::from_secs(30), "{waited:?}");
    let f = x.event(0);
    s.handle_frame(f.as_bytes(), now, 1);
    assert_eq!(readers[0].top().header.status, Status::Valid);
}

#[test]
fn server_shutdown_reconnects_and_a_quiet_connection_is_kept_by_pings() {
    let mut x = Exch::new(1, 8, false);
    let (mut s, readers) = session(Binance, &x, 1, rest_config(&Binance));
    let t = connect(&mut s, &mut x, epoch());
    let f = x.event(0);
    s.handle_frame(f.as_bytes(), t, 1);
    assert_eq!(readers[0].top().header.status, Status::Valid);
    // A quiet market: websocket pings every 20 s keep the connection; after 10 s of quiet the
    // session asks `LIST_SUBSCRIPTIONS` and its answer keeps it too.
    let mut now = t;
    for _ in 0..12 {
        now += Duration::from_secs(5);
        s.handle_timeout(now);
        let (frames, _) = x.answer(&mut s);
        deliver(&mut s, &frames, now);
        if (now - t).as_secs() % 20 == 0 {
            s.handle_control_frame(now);
        }
    }
    assert_eq!(readers[0].top().header.status, Status::Valid);
    assert!(s.is_connected());
    // `serverShutdown`: a planned rollover (a new connection brought up before this one is
    // dropped), asked for once; and again near Binance's 24-hour limit on a new connection.
    s.handle_frame(br#"{"e":"serverShutdown","E":1770123456789}"#, now, 1);
    assert_eq!(s.poll_command(), Some(Command::Rollover));
    s.handle_frame(br#"{"e":"serverShutdown","E":1770123456789}"#, now, 1);
    assert_eq!(s.poll_command(), None);
    assert_eq!(readers[0].top().header.status, Status::Valid, "nothing changes here meanwhile");
    let (mut s, _readers) = session(Binance, &x, 1, rest_config(&Binance));
    s.handle_connected(t);
    let _ = x.answer(&mut s);
    // (Binance's pings keep the connection alive all that time.)
    let at = t + Duration::from_secs(23 * 3600);
    s.handle_control_frame(at);
    s.handle_timeout(at);
    assert!(std::iter::from_fn(|| s.poll_command()).all(|c| c != Command::Rollover));
    let at = t + Duration::from_secs(23 * 3600 + 1800);
    s.handle_control_frame(at);
    s.handle_timeout(at);
    assert!(std::iter::from_fn(|| s.poll_command()).any(|c| c == Command::Rollover), "30 min before 24 h");
}

#[derive(Debug, Clone)]
enum Op {
    Event(usize),
    Lose(usize),
    Duplicate,
    Serve(u8),
    Fail,
    Time(u16),
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..2usize).prop_map(Op::Event),
        1 => (0..2usize).prop_map(Op::Lose),
        1 => Just(Op::Duplicate),
        3 => (0u8..4).prop_map(Op::Serve),
        1 => Just(Op::Fail),
        2 => (0..3000u16).prop_map(Op::Time),
        1 => Just(Op::Reconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Over random events, losses, duplicates, lagging or failed snapshots, time and reconnects,
    /// spot and USD-M: a book its readers see `Valid` equals the exchange's book level by level.
    #[test]
    fn valid_means_exactly_the_exchanges_book(ops in proptest::collection::vec(op(), 1..100), seed in 0u64..1000, usdm: bool) {
        let mut x = Exch::new(2, seed, usdm);
        macro_rules! run {
            ($e:expr) => {{
                let (mut s, readers) = session($e, &x, 2, rest_config(&$e));
                let mut now = epoch();
                s.handle_connected(now);
                // Each book as of the last event delivered: what a valid book must hold (a lost
                // event cannot be known before the next one comes).
                let mut delivered: Vec<View> = (0..2).map(|i| x.books[i].view(1000)).collect();
                for op in ops {
                    let (frames, _) = x.answer(&mut s);
                    deliver(&mut s, &frames, now);
                    match op {
                        Op::Event(i) => {
                            let f = x.event(i);
                            delivered[i] = x.books[i].view(1000);
                            s.handle_frame(f.as_bytes(), now, 1);
                        }
                        Op::Lose(i) => {
                            let _ = x.event(i);
                            // Only delivered messages are repeated.
                            x.last = None;
                        }
                        Op::Duplicate => {
                            if let Some(f) = x.last.clone() {
                                s.handle_frame(f.as_bytes(), now, 1);
                            }
                        }
                        Op::Serve(lag) => x.serve_fetches(&mut s, usize::from(lag), now),
                        Op::Fail => {
                            for (id, _) in std::mem::take(&mut x.fetches) {
                                let failed = Fetched::Failed { status: Some(503), retry_after: None, message: "Service Unavailable" };
                                s.handle_fetched(id, failed, now, 1);
                            }
                        }
                        Op::Time(ms) => {
                            now += Duration::from_millis(u64::from(ms));
                            s.handle_timeout(now);
                        }
                        Op::Reconnect => {
                            s.handle_disconnected(now, Disconnect::ServerClosed);
                            x.fetches.clear();
                            s.handle_connected(now);
                        }
                    }
                    for (i, r) in readers.iter().enumerate() {
                        if r.top().header.status == Status::Valid {
                            prop_assert!(same_as(&s, &x, i, &delivered[i]), "book {} valid but not the exchange's", i);
                        }
                    }
                }
            }};
        }
        if usdm { run!(BinanceUsdm) } else { run!(Binance) }
    }
}
