//! The sans-io session: every protocol decision of one connection, and no I/O, for any exchange.
//!
//! A [`Session`] owns the books of one connection to one [`Exchange`]. The caller (the driver, or
//! a test) feeds it what happened: [`Session::handle_connected`], each received frame
//! ([`Session::handle_frame`]), the passing of time ([`Session::handle_timeout`] at
//! [`Session::poll_timeout`]), and [`Session::handle_disconnected`]. The session answers through
//! two queues: [`Session::poll_command`] (text to send, a REST snapshot to fetch, "reconnect", or
//! "roll over to a new connection") and [`Session::poll_event`]
//! (what the application should know). Time is always an argument: the session never reads a
//! clock, so every timing rule is testable without waiting.
//!
//! The rules, the same for every exchange:
//! - On connect: send the exchange's preamble, if it has one (Kraken: the instrument list, for the
//!   precisions its checksums need), then subscribe every book, in requests of at most
//!   [`Exchange::MAX_SYMBOLS_PER_REQUEST`] symbols.
//! - A book is [`Status::Valid`] only when the exchange's rule proved it (a matching checksum, an
//!   unbroken sequence since a snapshot). A mismatch, a sequence gap, a crossed book, a level that
//!   cannot be applied or a precision change makes it [`Status::Resyncing`] and queues a resync of
//!   that symbol alone (unsubscribe, then subscribe with a snapshot; on exchanges that refuse a
//!   second subscribe, the subscribe waits for the unsubscribe's acknowledgement). Other symbols
//!   are untouched. Until the fresh snapshot, updates of that symbol are not applied.
//! - On exchanges that number every message of a connection with one counter (Coinbase's
//!   `sequence_num`, [`Handler::counter`]), the counter is
//!   checked before any book: a message at or below the last is ignored whole; a skip means a
//!   message was lost that may have been any book's, so every book of the connection becomes
//!   invalid at once and each is resynced (or, past 8 books, the connection is made again).
//! - On exchanges whose stream sends no snapshot (Binance, [`Exchange::STREAM_SNAPSHOT`]), a book
//!   is a REST snapshot ([`Command::Fetch`], answered by [`Session::handle_fetched`]) bridged by
//!   the exchange's rule to the events buffered since its subscription; a gap re-bridges that book
//!   alone on the same subscription. Fetches are paced by their own budget
//!   ([`Exchange::fetch_pacing`]). OKX fetches one the same way when its snapshot does not come.
//! - Near the exchange's limit on a connection's age, or when it announces a shutdown, the session
//!   asks for a planned [`Command::Rollover`]: the driver brings a new connection's books up on a
//!   session of their own and hands the readers over while every book is valid.
//! - Resyncs go through a token bucket with jitter ([`Pacing`]): a burst of faults cannot become a
//!   burst of requests.
//! - A snapshot that does not come within [`Config::snapshot_timeout`] is asked for again (paced).
//! - Silence: after [`Config::ping_after`] without a frame, a ping; after [`Config::stale_after`],
//!   every book is published [`Status::Stale`] and the session asks for a reconnect. Exchanges that
//!   want a ping every so often whatever the traffic get one ([`Exchange::ping_every`]).
//! - A subscription the exchange refuses becomes [`Error::SubscriptionRejected`] with the
//!   exchange's message, and that symbol is not asked for again on this connection; where the
//!   exchange refuses a whole request for one bad symbol, the others are asked for again without it.
//! - On disconnect every book is published [`Status::Stale`]; on the next connect, every
//!   subscription is restored and no update is applied to a book before its new snapshot.
//!
//! The code is split by concern: `event` (commands and events), `stats` (every count, once),
//! `slot` (a symbol's book, publisher and phase, and which phase takes which message), `timer`
//! (the named deadlines), and this file, the state machine.

mod event;
mod slot;
mod stats;
mod timer;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plumb_book::publish::{Publisher, Reader, Status, channel};
use plumb_book::{Book, Depth, Invalid, Precision, Rule as _, Seq, SeqCheck, SeqTracker, State, Verdict};
use plumb_wire::{Kind, Parser};

pub use event::{BookUpdate, Command, Disconnect, Event, Fetch, Fetched, ResyncReason};
use slot::{Pending, Phase, Slot};
use stats::Tallies;
pub use stats::{Counts, Stats};
use timer::{Timer, Timers};

use crate::error::{Error, Result, Symbol};
use crate::exchange::{Api, BookMessage, Exchange, Handler, Kraken, Op, Reply};
use crate::pacing::{Bucket, Budget, Jitter, Pacing};

/// The session's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The subscribed depth of every book.
    pub depth: Depth,
    /// Levels per side published to readers.
    pub levels: usize,
    /// Ping the exchange after this long without a frame.
    pub ping_after: Duration,
    /// Mark every book stale and reconnect after this long without a frame. Kraken sends a
    /// heartbeat every second when nothing else is sent, so a few seconds of silence is a fault.
    pub stale_after: Duration,
    /// Ask again for a snapshot (or the preamble's answer, or an unsubscribe's acknowledgement)
    /// that has not come within this time.
    pub snapshot_timeout: Duration,
    /// How resyncs are paced.
    pub pacing: Pacing,
    /// Seed of the jitter's random source.
    pub seed: u64,
    /// Emit an [`Event::Book`] for every applied book message (default). Applications that only
    /// read books through their readers turn it off and save an event per message.
    pub book_events: bool,
    /// Where REST book snapshots are fetched from (`https://www.okx.com`), on exchanges that
    /// fetch them ([`Exchange::FETCHES_SNAPSHOT`]); `None` waits for the stream's snapshot only.
    pub rest_url: Option<String>,
    /// Give up on a snapshot fetch after this long, and try again later.
    pub fetch_timeout: Duration,
    /// The most updates one book buffers while its REST snapshot is awaited; past it the buffer
    /// is emptied and the bridge starts over, rather than grow.
    pub pending_frames: usize,
    /// The most bytes of updates one book buffers while its REST snapshot is awaited.
    pub pending_bytes: usize,
    /// The most books one connection carries (`None`: the exchange's own limit,
    /// [`Exchange::MAX_SYMBOLS_PER_CONNECTION`], if any). A symbol past it is refused with
    /// [`Error::TooManySymbols`]; [`FeedBuilder::split`](crate::FeedBuilder::split) spreads
    /// symbols over connections of this size ([`Exchange::SHARD_SIZE`] when `None`).
    pub max_books: Option<usize>,
    /// The budget REST snapshot fetches draw from (`None`: the session's own, paced by
    /// [`Exchange::fetch_pacing`]). Sessions to one exchange share one, so that together they
    /// stay inside its request weight per IP; [`FeedBuilder::split`](crate::FeedBuilder::split)
    /// gives its connections one.
    pub fetch_budget: Option<Budget>,
}

impl Default for Config {
    /// Kraken's: depth 10, 10 published levels, ping after 1.2 s and stale after 2 s of silence
    /// (Kraken sends a heartbeat every second when nothing else is sent, so two seconds without a
    /// frame is a fault, and a book that old must not read valid), snapshot timeout 10 s; no REST snapshots (fetch timeout 5 s, at most 2048 buffered updates or 4 MiB
    /// per book where they are used). Other exchanges' defaults come from [`Exchange::config`].
    fn default() -> Self {
        Self {
            depth: Depth::D10,
            levels: 10,
            ping_after: Duration::from_millis(1200),
            stale_after: Duration::from_secs(2),
            snapshot_timeout: Duration::from_secs(10),
            pacing: Pacing::default(),
            seed: 0x9e37_79b9_7f4a_7c15,
            book_events: true,
            rest_url: None,
            fetch_timeout: Duration::from_secs(5),
            pending_frames: 2048,
            pending_bytes: 4 << 20,
            max_books: None,
            fetch_budget: None,
        }
    }
}

/// Whether one more book fits a connection that carries `existing` (the connection's limits: the
/// exchange's books and topic characters, and [`Config::max_books`]). Shared by the session and
/// the feed's handle, which refuses a symbol at once rather than after the driver tried.
///
/// # Errors
///
/// [`Error::TooManySymbols`] naming the limit.
pub(crate) fn admit<'a, E: Exchange>(
    exchange: &E,
    config: &Config,
    existing: impl Iterator<Item = &'a str> + Clone,
    symbol: &str,
) -> Result<()> {
    let limit = match (E::MAX_SYMBOLS_PER_CONNECTION, config.max_books) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(limit) = limit
        && existing.clone().count() >= limit
    {
        return Err(Error::TooManySymbols { symbol: symbol.to_owned(), limit, unit: "books" });
    }
    if let Some(limit) = exchange.topic_budget() {
        let depth = config.depth;
        let used: usize = existing.map(|s| exchange.topic_len(s, depth)).sum();
        if used + exchange.topic_len(symbol, depth) > limit {
            return Err(Error::TooManySymbols { symbol: symbol.to_owned(), limit, unit: "characters of topics" });
        }
    }
    Ok(())
}

/// Resubscriptions of one book the exchange may refuse in a row before the session gives up on it
/// for the connection.
const MAX_REFUSALS: u8 = 3;

/// A book found wrong before this many messages were proved since its snapshot (the snapshot
/// included) failed "right after" it.
const FRESH_WITHIN: u32 = 2;

/// Resyncs in a row that fail right after their snapshot before resyncs of that book back off.
const MAX_FRESH_FAILURES: u32 = 3;

/// Messages proved since a snapshot after which a book counts as healthy again.
const HEALTHY_AFTER: u32 = 20;

/// A skip of the connection's counter (Coinbase) resubscribes up to this many books, paced; past
/// it, a new connection (one request for every book) is quicker within the exchange's message
/// rate.
const GAP_RESUBSCRIBE_MAX: usize = 8;

/// The most symbols the session remembers having said it did not ask for.
const MAX_UNEXPECTED: usize = 256;

/// Other symbols count as flowing when a book message came this recently.
const QUIET_FLOWING: Duration = Duration::from_secs(1);

/// How long a symbol with this usual gap may be silent before it counts as quiet.
fn quiet_threshold(mean_gap_ns: u64) -> Duration {
    QUIET_AFTER.max(Duration::from_nanos(mean_gap_ns).saturating_mul(QUIET_FACTOR))
}

/// A symbol is quiet after at least this long without a book message...
const QUIET_AFTER: Duration = Duration::from_secs(10);

/// ... and this many times its usual gap ...
const QUIET_FACTOR: u32 = 20;

/// ... once its usual gap has been seen this many times.
const QUIET_SAMPLES: u32 = 16;

/// How long a connection must have been up, and quiet, to count as healthy.
const HEALTHY_FOR: Duration = Duration::from_secs(10);

/// A planned rollover is asked for this long before the exchange's limit on a connection's age.
const ROLLOVER_MARGIN: Duration = Duration::from_secs(30 * 60);

/// The longest a resync backs off.
const MAX_RESYNC_BACKOFF: Duration = Duration::from_secs(300);

/// A fetch in flight is given up this long after the driver's own timeout should have answered.
const FETCH_GRACE: Duration = Duration::from_secs(1);

/// The longest wait between two fetches of one book's snapshot.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

/// The wait before the next fetch after `failures` in a row: 250 ms, doubling, at most 30 s.
fn fetch_backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(10);
    (Duration::from_millis(250) * (1u32 << shift)).min(MAX_FETCH_WAIT)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Down,
    /// Connected; the preamble was sent at `since`, books wait for its answer.
    Preamble {
        since: Instant,
    },
    Up,
}

/// The protocol state of one connection to exchange `E` and its books. See the module docs.
#[derive(Debug)]
pub struct Session<E: Exchange = Kraken> {
    parser: Parser,
    core: Core<E>,
}

#[derive(Debug)]
struct Core<E: Exchange> {
    exchange: E,
    config: Config,
    slots: Vec<Option<Slot>>,
    index: HashMap<Symbol, usize>,
    precisions: HashMap<Box<str>, Precision>,
    /// Symbols whose book messages came unasked (said once each), and removed ones.
    unexpected: std::collections::HashSet<Box<str>>,
    conn: Conn,
    connections: u64,
    /// When the current connection came up.
    connected_at: Option<Instant>,
    /// When any book message last came on this connection, and when the quiet-symbol check runs
    /// next.
    last_book: Option<Instant>,
    next_quiet_check: Option<Instant>,
    /// The last time something went wrong on it (a resync started, an error).
    last_trouble: Option<Instant>,
    last_rx: Option<Instant>,
    last_ping: Option<Instant>,
    pinged: bool,
    reconnecting: bool,
    /// Set when the connection went silent or down, cleared on the next connect.
    stale: bool,
    /// A planned rollover was asked for on this connection.
    rolling: bool,
    bucket: Bucket,
    rng: Jitter,
    queue: VecDeque<usize>,
    resync_wake: Option<Instant>,
    /// Paces snapshot fetches over every book ([`Exchange::fetch_pacing`]).
    fetch_bucket: Budget,
    /// A book waiting to fetch buffered its first update during this frame.
    fetch_ready: bool,
    /// Limits the error events of bad input (malformed and binary frames, bad levels).
    errors: ErrorGate,
    /// The connection's counter, on exchanges that number every message of a connection
    /// (Coinbase); starts over with each connection.
    counter: SeqTracker,
    /// The named deadlines; `poll_timeout` answers their earliest, recomputed only after something
    /// that moves one. An ordinary frame does not: it only moves `last_rx`, so the silence timers
    /// fire at their old deadline, find the feed alive, and re-arm from the newest frame. The
    /// driver's timer is then reset about once per `ping_after`, not once per frame.
    timers: Timers,
    dirty: bool,
    commands: VecDeque<Command>,
    events: VecDeque<Event>,
    next_req: u64,
    tallies: Tallies,
}

/// Symbols are short ASCII names such as `BTC/USD`, `BTCUSDT` or `BTC-6JAN23-18000-C`; anything
/// else is refused before it reaches a request (which also means requests need no escaping).
pub(crate) fn check_symbol(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'-' | b'_' | b':'));
    if ok { Ok(()) } else { Err(Error::InvalidSymbol(s.to_owned())) }
}

impl Session<Kraken> {
    /// A Kraken v2 session with no books, disconnected.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self::with_exchange(Kraken, config)
    }
}

impl<E: Exchange> Session<E> {
    /// A session for `exchange` with no books, disconnected. [`Exchange::config`] gives settings
    /// that fit the exchange.
    #[must_use]
    pub fn with_exchange(exchange: E, config: Config) -> Self {
        Self { parser: Parser::new(), core: Core::new(exchange, config) }
    }

    /// The exchange.
    #[must_use]
    pub fn exchange(&self) -> &E {
        &self.core.exchange
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// The running totals, shareable with other threads.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.core.tallies.stats)
    }

    /// Adds a symbol and returns a reader of its book. If connected, it is subscribed at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSymbol`], [`Error::ServedAs`], [`Error::DuplicateSymbol`], or
    /// [`Error::TooManySymbols`] past the
    /// exchange's limit per connection.
    pub fn add_symbol(&mut self, symbol: &str) -> Result<Reader> {
        let (publisher, reader) = channel(self.core.config.levels);
        let r = self.core.attach(symbol, publisher);
        self.core.refresh();
        r.map(|()| reader)
    }

    /// Adds a symbol whose book is published through `publisher` (made by
    /// [`plumb_book::publish::channel`] on the application's side).
    ///
    /// # Errors
    ///
    /// As [`Session::add_symbol`].
    pub fn attach(&mut self, symbol: &str, publisher: Publisher) -> Result<()> {
        let r = self.core.attach(symbol, publisher);
        self.core.refresh();
        r
    }

    /// Removes a symbol: unsubscribes it if connected, and publishes an empty book to its readers.
    /// Returns whether it was there.
    pub fn remove_symbol(&mut self, symbol: &str) -> bool {
        let r = self.core.remove_symbol(symbol);
        self.core.refresh();
        r
    }

    /// The symbols, in the order they were added (removed ones left out).
    pub fn symbols(&self) -> impl Iterator<Item = &Symbol> {
        self.core.slots.iter().flatten().map(|s| &s.symbol)
    }

    /// The book of a symbol, as the session holds it.
    #[must_use]
    pub fn book(&self, symbol: &str) -> Option<&Book> {
        self.core.slot(symbol).map(|s| &s.book)
    }

    /// The status a symbol's readers see.
    #[must_use]
    pub fn status(&self, symbol: &str) -> Option<Status> {
        self.core.slot(symbol).map(|s| s.status(self.core.stale))
    }

    /// Where a symbol's book is kept: an index that stays its own until the symbol is removed.
    /// For checks that look at every book after every step (`testing`) without looking names up.
    pub(crate) fn slot_index(&self, symbol: &str) -> Option<usize> {
        self.core.lookup(symbol)
    }

    /// The symbol, status and book kept at a [`Session::slot_index`].
    pub(crate) fn slot_at(&self, i: usize) -> Option<(&str, Status, &Book)> {
        let s = self.core.slots.get(i)?.as_ref()?;
        Some((&s.symbol, s.status(self.core.stale), &s.book))
    }

    /// Whether the session is connected (from [`Session::handle_connected`] to
    /// [`Session::handle_disconnected`]).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.core.conn != Conn::Down
    }

    /// The next thing to send, or a request to reconnect. Changes after any `handle_*` call, and
    /// after adding or removing a symbol.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.core.commands.pop_front()
    }

    /// The next event for the application. Changes after any `handle_*` call.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next, if ever. Moves after a connect or
    /// disconnect, a timeout, a resync queued or sent, a subscription sent or answered, a ping;
    /// an ordinary book frame does not move it (the silence deadlines re-arm when they fire).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.timers.next()
    }

    /// The connection is up: send the preamble or subscribe every book.
    pub fn handle_connected(&mut self, now: Instant) {
        self.core.connected(now);
        self.core.refresh();
    }

    /// The connection is gone: every book is published stale; nothing more is sent.
    pub fn handle_disconnected(&mut self, now: Instant, reason: Disconnect) {
        self.core.disconnected(now, reason);
        self.core.refresh();
    }

    /// Timers: pings, the stale watchdog, snapshot timeouts and paced resyncs.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.timeout(now);
        self.core.refresh();
    }

    /// Whether the current connection has proved healthy at `now`: up for at least 10 s, every
    /// book it carries valid (refused ones aside), and nothing gone wrong (a resync, a malformed
    /// frame) for 10 s. The driver resets its reconnect backoff only after such a connection,
    /// so that a server that sends a few good frames and then one the feed must refuse is not
    /// reconnected to at full speed forever.
    #[must_use]
    pub fn is_healthy(&self, now: Instant) -> bool {
        let c = &self.core;
        let quiet = |t: Option<Instant>| t.is_none_or(|t| now.saturating_duration_since(t) >= HEALTHY_FOR);
        c.conn == Conn::Up
            && c.connected_at.is_some_and(|t| now.saturating_duration_since(t) >= HEALTHY_FOR)
            && quiet(c.last_trouble)
            && c.slots.iter().flatten().all(|s| s.phase == Phase::Rejected || s.status(c.stale).is_valid())
    }

    /// Asks for a reconnect (the application's "restart").
    pub fn request_reconnect(&mut self) {
        let c = &mut self.core;
        if c.conn != Conn::Down && !c.reconnecting {
            c.reconnecting = true;
            c.commands.push_back(Command::Reconnect(Disconnect::Requested));
        }
        self.core.refresh();
    }

    /// One received text frame, parsed in place. `received_ns` is the receive time on the
    /// driver's clock, passed through to readers and events.
    pub fn handle_frame(&mut self, frame: &[u8], now: Instant, received_ns: u64) {
        let core = &mut self.core;
        core.received(now);
        if core.reconnecting || core.conn == Conn::Down {
            // The session has given this connection up (or has none); a late frame must not
            // make a stale book look live again.
            core.tallies.ignored();
            return;
        }
        match self.parser.parse_with::<E::Dialect>(frame, None) {
            Ok((msg, _)) => {
                let mut ctx =
                    Ctx { core, now, received_ns, book_counted: false, reply_counted: false, raw: frame, only: None };
                E::dispatch(&msg, &mut ctx);
            }
            Err(e) => {
                core.tallies.error();
                core.trouble(now);
                if core.errors.allow(now, &mut core.events) {
                    tracing::warn!(error = %e, "malformed frame");
                    core.events.push_back(Event::Error(Error::Frame(e)));
                }
            }
        }
        if !core.queue.is_empty() {
            core.drive(now);
        }
        if std::mem::take(&mut core.fetch_ready) {
            core.drive_fetches(now);
        }
        if core.dirty {
            core.refresh();
        }
    }
}

impl<E: Exchange> Session<E> {
    /// The answer to a [`Command::Fetch`]: a REST book snapshot, or why there is none.
    ///
    /// A snapshot older than the updates buffered since the subscription is fetched again; else
    /// it is applied through [`Rule::apply_fetched`](plumb_book::Rule::apply_fetched), and the
    /// buffered updates after it are bridged to it by the exchange's rule, in the order they came.
    /// A failure is an [`Error::Fetch`] event, and the fetch is tried again after a backoff (the
    /// server's `Retry-After` when it sent one). Answers to fetches the session no longer waits for
    /// (the stream's snapshot came first, the connection ended, the symbol was removed) are ignored.
    pub fn handle_fetched(&mut self, id: u64, answer: Fetched<'_>, now: Instant, received_ns: u64) {
        let core = &mut self.core;
        let found = core
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| matches!(s.phase, Phase::Fetching { id: f, .. } if f == id)));
        let Some(i) = found.filter(|_| core.conn == Conn::Up && !core.reconnecting) else {
            core.refresh();
            return;
        };
        let body = match answer {
            Fetched::Body(body) => body,
            Fetched::Failed { status, retry_after, message } => {
                if E::is_unknown_symbol(status, message) {
                    core.refused(i, Arc::from(message));
                    core.refresh();
                    return;
                }
                if matches!(status, Some(429 | 418)) {
                    // The exchange's request weight is spent: every book's fetches slow down.
                    core.fetch_bucket.slow_down(now);
                }
                let message = match status {
                    Some(code) => format!("HTTP {code}: {message}"),
                    None => message.to_owned(),
                };
                core.fetch_failed(i, &message, retry_after, now);
                core.refresh();
                return;
            }
        };
        let frame = match self.parser.parse_snapshot::<E::Dialect>(body) {
            Ok(f) => f,
            Err(e) => {
                core.fetch_failed(i, &format!("the snapshot does not parse: {e}"), None, now);
                core.refresh();
                return;
            }
        };
        let Some(slot) = core.slots[i].as_mut() else { return };
        let Phase::Fetching { reason, started, .. } = slot.phase else { return };
        let start = match frame.sequence {
            Some(at) => E::Rule::bridge_start(at.last, slot.pending.sequences()),
            None => Some(0),
        };
        let Some(start) = start else {
            let at = frame.sequence.map_or(0, |s| s.last);
            let message = format!("no buffered update bridges the snapshot (at {at}): too old, or ahead of the stream");
            core.fetch_failed(i, &message, None, now);
            core.refresh();
            return;
        };
        let verdict = match slot.book.apply_fetched::<E::Rule>(&frame) {
            Ok(v) => v,
            Err(error) => {
                let symbol = Arc::clone(&slot.symbol);
                core.events.push_back(Event::Error(Error::Level { symbol, error }));
                Verdict::Skipped
            }
        };
        core.tallies.verdict(verdict, Kind::Snapshot);
        slot.exchange_ns = frame.time.unix_ns().unwrap_or(0);
        slot.received_ns = received_ns;
        if let State::Invalid(why) = slot.book.state() {
            slot.pending.clear();
            core.fetch_failed(
                i,
                &format!("the snapshot is not a valid book ({})", ResyncReason::of(why).as_str()),
                None,
                now,
            );
            core.refresh();
            return;
        }
        slot.phase = Phase::Live;
        slot.refusals = 0;
        slot.fetch_failures = 0;
        // Still the first start until a resync is announced: a snapshot that stood behind the
        // stream is fetched again quietly, and the next one ends no resync either.
        let first = slot.bootstrap;
        let symbol = Arc::clone(&slot.symbol);
        let took = now.saturating_duration_since(started);
        tracing::info!(%symbol, ?took, reason = reason.as_str(), buffered = slot.pending.len(), "book bootstrapped from a REST snapshot");
        let stale = core.stale;
        slot.publish(stale);
        if core.config.book_events {
            let update = slot.book_update(&frame, verdict, stale, received_ns);
            core.events.push_back(Event::Book(update));
        }
        if !first {
            core.events.push_back(Event::ResyncFinished { symbol, took });
        }
        // The buffered updates, in the order they came, through the same path as live ones.
        let pending = std::mem::take(&mut slot.pending);
        for k in start..pending.len() {
            let live = core.slots[i].as_ref().is_some_and(|s| s.phase == Phase::Live);
            let Some((bytes, rx)) = pending.get(k).filter(|_| live) else { break };
            if let Ok((msg, _)) = self.parser.parse_with::<E::Dialect>(bytes, None) {
                let mut ctx = Ctx {
                    core: &mut *core,
                    now,
                    received_ns: rx,
                    book_counted: true,
                    reply_counted: true,
                    raw: bytes,
                    only: Some(i),
                };
                E::dispatch(&msg, &mut ctx);
            }
        }
        let mut pending = pending;
        pending.clear();
        if let Some(slot) = core.slots[i].as_mut() {
            slot.pending = pending;
        }
        if !core.queue.is_empty() {
            core.drive(now);
        }
        core.refresh();
    }
}

impl<E: Exchange> Session<E> {
    /// Whether every book is valid (refused ones aside): a session warming up on a new
    /// connection for a rollover is ready to take the books over.
    #[must_use]
    pub fn all_valid(&self) -> bool {
        let c = &self.core;
        c.slots.iter().flatten().all(|s| s.phase == Phase::Rejected || s.status(c.stale).is_valid())
    }

    /// Takes a symbol's publisher away (a rollover hands it to the new connection's session),
    /// leaving one that no reader holds.
    pub fn take_publisher(&mut self, symbol: &str) -> Option<Publisher> {
        let levels = self.core.config.levels;
        let i = *self.core.index.get(symbol)?;
        let slot = self.core.slots[i].as_mut()?;
        Some(std::mem::replace(&mut slot.publisher, channel(levels).0))
    }

    /// Gives a symbol the publisher its readers hold and publishes the book to it at once (the
    /// end of a rollover). `false` when the session does not hold the symbol.
    pub fn put_publisher(&mut self, symbol: &str, publisher: Publisher) -> bool {
        let stale = self.core.stale;
        let Some(&i) = self.core.index.get(symbol) else { return false };
        let Some(slot) = self.core.slots[i].as_mut() else { return false };
        slot.publisher = publisher;
        slot.publish(stale);
        true
    }

    /// Carries the running totals of `old` on (the end of a rollover): the feed's counts go on
    /// from where the old connection's session left them.
    pub fn continue_counts(&mut self, old: &Session<E>) {
        self.core.tallies.continue_from(&old.core.tallies);
    }
}

impl<E: Exchange> Session<E> {
    /// A websocket ping or pong arrived (the websocket layer answers pings itself). Not a frame
    /// to read, but the connection is alive: an exchange that pings a quiet connection (Binance,
    /// every 20 s) keeps it from going stale, and a connection whose pings stop too does.
    pub fn handle_control_frame(&mut self, now: Instant) {
        let core = &mut self.core;
        if core.conn == Conn::Down || core.reconnecting {
            return;
        }
        core.alive(now);
        if core.dirty {
            core.refresh();
        }
    }
}

impl<E: Exchange> Session<E> {
    /// A binary frame of `len` bytes was received. The exchanges plumb speaks send text: it is
    /// counted as an error and reported, and never read as a message. It still shows the
    /// connection is alive.
    pub fn handle_binary_frame(&mut self, len: usize, now: Instant) {
        let core = &mut self.core;
        core.received(now);
        core.tallies.error();
        core.trouble(now);
        if core.errors.allow(now, &mut core.events) {
            tracing::warn!(len, "binary frame ignored");
            core.events.push_back(Event::Error(Error::BinaryFrame(len)));
        }
        if core.dirty {
            core.refresh();
        }
    }
}

/// At most [`ERRORS_PER_SECOND`] error events of bad input per second; the ones held back are
/// counted, and the count goes out ([`Event::ErrorsSuppressed`]) before the next one that passes.
/// A server sending garbage cannot flood the application (or the log) with identical lines.
#[derive(Debug, Default)]
struct ErrorGate {
    window: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

/// Error events of bad input let through per second.
const ERRORS_PER_SECOND: u32 = 10;

impl ErrorGate {
    /// Whether an error event at `now` goes out; when it does after some were held back, their
    /// count goes out first.
    fn allow(&mut self, now: Instant, events: &mut VecDeque<Event>) -> bool {
        if self.window.is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1)) {
            self.window = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= ERRORS_PER_SECOND {
            self.suppressed += 1;
            return false;
        }
        self.in_window += 1;
        if self.suppressed > 0 {
            tracing::warn!(count = self.suppressed, "error events held back");
            events.push_back(Event::ErrorsSuppressed { count: std::mem::take(&mut self.suppressed) });
        }
        true
    }
}

/// One frame's handling: the core, and what the frame came with.
struct Ctx<'c, E: Exchange> {
    core: &'c mut Core<E>,
    now: Instant,
    received_ns: u64,
    /// A frame with several symbols counts once as a book message.
    book_counted: bool,
    /// A frame with several replies (Coinbase's `subscriptions` lists every product) counts once
    /// as ignored.
    reply_counted: bool,
    /// The frame's bytes, kept for the bridge when a book is waiting for a REST snapshot.
    raw: &'c [u8],
    /// Replaying a book's buffered updates: only that book's messages count.
    only: Option<usize>,
}

impl<E: Exchange> Handler for Ctx<'_, E> {
    #[inline]
    fn book(&mut self, msg: BookMessage<'_>) {
        let core = &mut *self.core;
        if msg.api != Api::Main {
            core.tallies.ignored();
            return;
        }
        let frame = msg.frame;
        let Some(i) = core.lookup(frame.symbol) else {
            core.unexpected_symbol(frame.symbol);
            return;
        };
        if !self.book_counted {
            self.book_counted = true;
            core.tallies.book_message();
        }
        if self.only.is_some_and(|o| o != i) {
            return;
        }
        let Some(slot) = core.slots[i].as_mut() else { return };
        if !slot.phase.takes(frame.kind) {
            core.tallies.not_taken();
            // Without a snapshot on the stream (Binance) every event from the subscription on is
            // kept for the bridge, acknowledged or not.
            let buffers = slot.phase.is_fetching()
                || ((slot.acked || !E::STREAM_SNAPSHOT)
                    && matches!(slot.phase, Phase::Subscribing { .. } | Phase::Resyncing { .. }));
            if E::FETCHES_SNAPSHOT && buffers && core.config.rest_url.is_some() {
                let (max_frames, max_bytes) = (core.config.pending_frames, core.config.pending_bytes);
                if slot.pending.is_empty() && matches!(slot.phase, Phase::FetchWait { .. }) {
                    // The first update anchors the bridge: a fetch waiting for one can go.
                    core.fetch_ready = true;
                }
                if !slot.pending.push(self.raw, frame.sequence, self.received_ns, max_frames, max_bytes) {
                    // Full: start the bridge over from here rather than grow. A snapshot fetched
                    // meanwhile must then reach these newer updates, or it is fetched again.
                    let symbol = Arc::clone(&slot.symbol);
                    tracing::warn!(%symbol, frames = slot.pending.len(), "bridge buffer full; starting it over");
                    slot.pending.clear();
                    let _ = slot.pending.push(self.raw, frame.sequence, self.received_ns, max_frames, max_bytes);
                    let message = Arc::from("the buffer of updates awaiting the snapshot overflowed; starting over");
                    core.events.push_back(Event::Error(Error::Fetch { symbol, message }));
                }
            }
            return;
        }
        if frame.kind == Kind::Snapshot
            && let Some(p) = core.precisions.get(frame.symbol)
        {
            // A snapshot replaces everything; start it from the current precision.
            slot.book.set_precision(*p);
        }
        let verdict = match slot.book.apply::<E::Rule>(&frame) {
            Ok(v) => v,
            Err(error) => {
                core.tallies.error();
                if core.errors.allow(self.now, &mut core.events) {
                    let symbol = Arc::clone(&slot.symbol);
                    core.events.push_back(Event::Error(Error::Level { symbol, error }));
                }
                Verdict::Skipped
            }
        };
        core.tallies.verdict(verdict, frame.kind);
        if frame.kind == Kind::Snapshot {
            slot.proved_since_snapshot = 0;
        }
        if matches!(verdict, Verdict::Verified(_) | Verdict::InSequence(_) | Verdict::Whole) {
            slot.proved_since_snapshot = slot.proved_since_snapshot.saturating_add(1);
            if slot.proved_since_snapshot == HEALTHY_AFTER {
                slot.fresh_failures = 0;
            }
        }
        let stale_msg = matches!(verdict, Verdict::Stale { .. });
        if !stale_msg {
            slot.pace.tick(self.now);
            core.last_book = Some(self.now);
            if core.next_quiet_check.is_none() && slot.pace.samples >= QUIET_SAMPLES {
                // The first symbol with a known pace: the quiet check has something to watch.
                core.next_quiet_check = Some(self.now + quiet_threshold(slot.pace.mean_gap_ns));
                core.dirty = true;
            }
            slot.exchange_ns = frame.time.unix_ns().unwrap_or(0);
            slot.received_ns = self.received_ns;
            if slot.exchange_ns > 0 && self.received_ns > slot.exchange_ns {
                #[expect(clippy::cast_precision_loss, reason = "a latency in seconds for a histogram")]
                core.tallies.latency((self.received_ns - slot.exchange_ns) as f64 / 1e9);
            }
        }
        let now = self.now;
        match (slot.book.state(), slot.phase) {
            // A REST snapshot found behind the stream: fetched again, quietly, with the event kept
            // for it (not a gap, so no resync is counted and no backoff taken).
            (State::Invalid(why), _) if let Verdict::Behind { snapshot: at, first } = verdict => {
                let (max_frames, max_bytes) = (core.config.pending_frames, core.config.pending_bytes);
                slot.pending.clear();
                let _ = slot.pending.push(self.raw, frame.sequence, self.received_ns, max_frames, max_bytes);
                slot.phase = Phase::FetchWait { reason: ResyncReason::of(why), started: now, at: now };
                let message = format!(
                    "the snapshot (at {at}) stood behind the stream (its first event starts at {first}); fetching again"
                );
                core.fetch_failed(i, &message, None, now);
                core.fetch_ready = true;
            }
            (State::Invalid(why), phase) => {
                let started = match phase {
                    Phase::Resyncing { started, .. }
                    | Phase::FetchWait { started, .. }
                    | Phase::Fetching { started, .. } => started,
                    _ => now,
                };
                // Wrong at the snapshot or right after it: the same failure may come back with
                // every fresh snapshot (a pair whose checksum plumb cannot reproduce); resyncs
                // then back off rather than loop.
                let fresh = slot.proved_since_snapshot < FRESH_WITHIN;
                core.start_resync_after_failure(i, ResyncReason::of(why), started, fresh, now);
                if !E::STREAM_SNAPSHOT
                    && let Some(slot) = core.slots[i].as_mut()
                    && slot.phase.is_fetching()
                {
                    // The bridge starts again from a snapshot; the event that showed the gap is
                    // the first the new snapshot may have to reach.
                    let (max_frames, max_bytes) = (core.config.pending_frames, core.config.pending_bytes);
                    let _ = slot.pending.push(self.raw, frame.sequence, self.received_ns, max_frames, max_bytes);
                }
            }
            (
                State::Valid | State::Unverified,
                Phase::Resyncing { started, .. } | Phase::FetchWait { started, .. } | Phase::Fetching { started, .. },
            ) => {
                slot.phase = Phase::Live;
                slot.refusals = 0;
                slot.fetch_failures = 0;
                slot.pending.clear();
                core.dirty = true;
                let symbol = Arc::clone(&slot.symbol);
                let took = now.saturating_duration_since(started);
                tracing::info!(%symbol, ?took, "resync finished");
                core.events.push_back(Event::ResyncFinished { symbol, took });
            }
            (State::Valid | State::Unverified, Phase::Subscribing { .. }) => {
                slot.phase = Phase::Live;
                slot.pending.clear();
                core.dirty = true;
            }
            _ => {}
        }
        let stale = core.stale;
        let Some(slot) = core.slots[i].as_mut() else { return };
        if !stale_msg {
            slot.publish(stale);
        }
        if !core.config.book_events {
            return;
        }
        core.events.push_back(Event::Book(slot.book_update(&frame, verdict, stale, self.received_ns)));
    }

    fn precision(&mut self, symbol: &str, p: Precision) {
        let core = &mut *self.core;
        if core.precisions.get(symbol) != Some(&p) {
            core.precisions.insert(symbol.into(), p);
        }
        let Some(&i) = core.index.get(symbol) else { return };
        let Some(slot) = core.slots[i].as_mut() else { return };
        let before = slot.book.state();
        slot.book.set_precision(p);
        if let State::Invalid(Invalid::PrecisionChanged) = slot.book.state() {
            if slot.phase == Phase::Live {
                core.start_resync(i, ResyncReason::PrecisionChanged, self.now);
            } else if before != slot.book.state() {
                // Not live (between connections, or waiting for its snapshot): no resync to
                // start, but its readers must see at once that the book they hold is not right.
                let stale = core.stale;
                slot.publish(stale);
            }
        }
    }

    fn ready(&mut self) {
        let core = &mut *self.core;
        if matches!(core.conn, Conn::Preamble { .. }) {
            core.conn = Conn::Up;
            core.subscribe_idle(self.now);
        }
    }

    fn reply(&mut self, r: Reply<'_>) {
        let core = &mut *self.core;
        if !std::mem::replace(&mut self.reply_counted, true) {
            core.tallies.ignored();
        }
        if r.api != Api::Main {
            return;
        }
        core.reply(&r, self.now);
    }

    fn other(&mut self, _api: Api) {
        self.core.tallies.ignored();
    }

    fn counter(&mut self, n: u64) -> bool {
        // Buffered updates replayed for a REST bridge were counted when they came.
        self.only.is_some() || self.core.counter(n, self.now)
    }

    fn notice(&mut self, message: &str) {
        let c = &mut *self.core;
        c.tallies.ignored();
        if c.exchange.max_connection_age().is_some() {
            // A planned change of connection: made before this one is dropped.
            c.roll_over(message);
            return;
        }
        if c.conn != Conn::Down && !c.reconnecting {
            tracing::info!(%message, "the exchange announced a disconnect; reconnecting now");
            c.reconnecting = true;
            c.commands.push_back(Command::Reconnect(Disconnect::Maintenance));
        }
    }
}

impl<E: Exchange> Core<E> {
    fn new(exchange: E, config: Config) -> Self {
        let rng = Jitter::new(config.seed);
        let fetch_bucket =
            config.fetch_budget.clone().unwrap_or_else(|| Budget::new(exchange.fetch_pacing(config.depth)));
        Self {
            tallies: Tallies::new(E::NAME),
            exchange,
            bucket: Bucket::new(config.pacing),
            config,
            slots: Vec::new(),
            index: HashMap::new(),
            precisions: HashMap::new(),
            unexpected: std::collections::HashSet::new(),
            conn: Conn::Down,
            connections: 0,
            connected_at: None,
            last_trouble: None,
            last_book: None,
            next_quiet_check: None,
            last_rx: None,
            last_ping: None,
            pinged: false,
            reconnecting: false,
            stale: false,
            rolling: false,
            rng,
            queue: VecDeque::new(),
            resync_wake: None,
            fetch_bucket,
            fetch_ready: false,
            errors: ErrorGate::default(),
            counter: SeqTracker::new(),
            timers: Timers::default(),
            dirty: false,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            next_req: 1,
        }
    }

    fn slot(&self, symbol: &str) -> Option<&Slot> {
        self.lookup(symbol).and_then(|i| self.slots[i].as_ref())
    }

    fn attach(&mut self, symbol: &str, publisher: Publisher) -> Result<()> {
        check_symbol(symbol)?;
        self.exchange.check_symbol(symbol)?;
        if let Some((s, _)) = self.index.get_key_value(symbol) {
            return Err(Error::DuplicateSymbol(Arc::clone(s)));
        }
        admit(&self.exchange, &self.config, self.slots.iter().flatten().map(|s| &*s.symbol), symbol)?;
        let symbol: Symbol = Arc::from(symbol);
        let precision = self.precisions.get(&*symbol).copied();
        let slot = Slot {
            symbol: Arc::clone(&symbol),
            book: Book::for_rule::<E::Rule>(self.config.depth, precision),
            publisher,
            phase: Phase::Idle,
            exchange_ns: 0,
            received_ns: 0,
            refusals: 0,
            acked: false,
            fetch_failures: 0,
            bootstrap: false,
            proved_since_snapshot: 0,
            fresh_failures: 0,
            pace: slot::Pace::default(),
            pending: Pending::default(),
        };
        let i = if let Some(free) = self.slots.iter().position(Option::is_none) {
            self.slots[free] = Some(slot);
            free
        } else {
            self.slots.push(Some(slot));
            self.slots.len() - 1
        };
        self.index.insert(symbol, i);
        if let Some(s) = self.slots[i].as_mut() {
            s.publish(self.stale);
        }
        if self.conn == Conn::Up
            && let Some(now) = self.last_rx
        {
            self.subscribe(&[i], now);
        }
        Ok(())
    }

    fn remove_symbol(&mut self, symbol: &str) -> bool {
        let Some(i) = self.index.remove(symbol) else { return false };
        if self.unexpected.len() < MAX_UNEXPECTED {
            // Its messages still in flight are expected: nothing to say about them.
            self.unexpected.insert(symbol.into());
        }
        self.queue.retain(|&q| q != i);
        let Some(mut slot) = self.slots[i].take() else { return false };
        if self.conn == Conn::Up && !matches!(slot.phase, Phase::Idle | Phase::Rejected) {
            let req = self.req();
            let mut text = String::new();
            self.exchange.unsubscribe(&mut text, &[&slot.symbol], self.config.depth, req);
            self.commands.push_back(Command::Send(text));
        }
        slot.book.clear();
        slot.publish_as(Status::Empty);
        self.dirty = true;
        true
    }

    /// Recomputes the named deadlines.
    fn refresh(&mut self) {
        self.dirty = false;
        self.timers.clear();
        if self.conn == Conn::Down || self.reconnecting {
            return;
        }
        let c = &self.config;
        if let Some(rx) = self.last_rx {
            self.timers.set(Timer::Stale, Some(rx + c.stale_after));
            if !self.pinged {
                self.timers.set(Timer::Silence, Some(rx + c.ping_after));
            }
        }
        if let (Some(every), Some(last)) = (self.exchange.ping_every(), self.last_ping) {
            self.timers.set(Timer::Keepalive, Some(last + every));
        }
        if let Conn::Preamble { since } = self.conn {
            self.timers.set(Timer::Preamble, Some(since + c.snapshot_timeout));
        }
        self.timers.set(Timer::Resync, self.resync_wake);
        let snapshot = self.slots.iter().flatten().filter_map(|s| s.phase.waiting_since()).min();
        self.timers.set(Timer::Snapshot, snapshot.map(|t| t + c.snapshot_timeout));
        let fetch = self
            .slots
            .iter()
            .flatten()
            .filter_map(|s| match s.phase {
                // A fetch waits for a first buffered update (see `drive_fetches`).
                Phase::FetchWait { at, .. } if !s.pending.is_empty() || !E::STREAM_SNAPSHOT => Some(at),
                Phase::Fetching { sent, .. } => Some(sent + c.fetch_timeout + FETCH_GRACE),
                _ => None,
            })
            .min();
        self.timers.set(Timer::Fetch, fetch);
        if self.conn == Conn::Up {
            self.timers.set(Timer::Quiet, self.next_quiet_check);
        }
        if let (Some(age), Some(at), false) = (self.exchange.max_connection_age(), self.connected_at, self.rolling) {
            self.timers.set(Timer::Rollover, Some(at + age.saturating_sub(ROLLOVER_MARGIN)));
        }
    }

    fn connected(&mut self, now: Instant) {
        self.connections += 1;
        self.connected_at = Some(now);
        self.last_trouble = None;
        self.last_book = None;
        self.next_quiet_check = None;
        for slot in self.slots.iter_mut().flatten() {
            slot.pace = slot::Pace::default();
        }
        if self.connections > 1 {
            self.tallies.reconnect();
        }
        self.last_rx = Some(now);
        self.last_ping = Some(now);
        self.counter.reset();
        self.pinged = false;
        self.reconnecting = false;
        self.stale = false;
        self.rolling = false;
        self.queue.clear();
        self.resync_wake = None;
        for slot in self.slots.iter_mut().flatten() {
            slot.phase = Phase::Idle;
            slot.acked = false;
            slot.bootstrap = false;
            slot.fetch_failures = 0;
            slot.pending.clear();
            slot.publish(false);
        }
        self.events.push_back(Event::Connected);
        let req = self.req();
        if let Some(text) = self.exchange.preamble(req) {
            self.conn = Conn::Preamble { since: now };
            self.commands.push_back(Command::Send(text));
            tracing::debug!(connection = self.connections, "connected; sending the preamble");
        } else {
            self.conn = Conn::Up;
            tracing::debug!(connection = self.connections, "connected; subscribing");
            self.subscribe_idle(now);
        }
    }

    fn disconnected(&mut self, _now: Instant, reason: Disconnect) {
        if self.conn == Conn::Down {
            return;
        }
        self.conn = Conn::Down;
        self.reconnecting = false;
        self.stale = true;
        self.commands.clear();
        self.queue.clear();
        self.resync_wake = None;
        for slot in self.slots.iter_mut().flatten() {
            slot.phase = Phase::Idle;
            slot.acked = false;
            slot.pending.clear();
            slot.publish(true);
        }
        tracing::info!(reason = reason.as_str(), "disconnected");
        self.events.push_back(Event::Disconnected { reason });
    }

    fn timeout(&mut self, now: Instant) {
        if self.conn == Conn::Down || self.reconnecting {
            return;
        }
        if let Some(rx) = self.last_rx {
            let silent = now.saturating_duration_since(rx);
            if silent >= self.config.stale_after {
                self.go_stale(silent);
                return;
            }
            if silent >= self.config.ping_after && !self.pinged {
                self.pinged = true;
                self.ping(now);
            }
        }
        if let (Some(every), Some(last)) = (self.exchange.ping_every(), self.last_ping)
            && now >= last + every
        {
            self.ping(now);
        }
        if let Conn::Preamble { since } = self.conn
            && now >= since + self.config.snapshot_timeout
        {
            tracing::warn!("no answer to the preamble in time; reconnecting");
            self.reconnecting = true;
            self.commands.push_back(Command::Reconnect(Disconnect::Timeout));
            return;
        }
        if self.timers.due(Timer::Snapshot, now) {
            for i in 0..self.slots.len() {
                let Some(slot) = self.slots[i].as_ref() else { continue };
                let Some(sent) = slot.phase.waiting_since() else { continue };
                let started = match slot.phase {
                    Phase::Resyncing { started, .. } | Phase::Unsubscribing { started, .. } => started,
                    _ => sent,
                };
                if now >= sent + self.config.snapshot_timeout {
                    if slot.acked && self.can_fetch() {
                        self.start_fetch(i, started, now);
                    } else {
                        self.start_resync(i, ResyncReason::SnapshotTimeout, started);
                    }
                }
            }
        }
        if self.timers.due(Timer::Rollover, now) {
            self.roll_over("the connection nears the exchange's limit on its age");
        }
        if self.timers.due(Timer::Quiet, now) {
            self.next_quiet_check = self.check_quiet(now);
            self.dirty = true;
        }
        if self.timers.due(Timer::Fetch, now) {
            for i in 0..self.slots.len() {
                let Some(slot) = self.slots[i].as_ref() else { continue };
                if let Phase::Fetching { sent, .. } = slot.phase
                    && now >= sent + self.config.fetch_timeout + FETCH_GRACE
                {
                    self.fetch_failed(i, "no answer in time", None, now);
                }
            }
        }
        self.drive(now);
        self.drive_fetches(now);
    }

    /// A live symbol whose book messages stopped for far longer than its usual gap (at least
    /// [`QUIET_AFTER`], and [`QUIET_FACTOR`] times its usual gap) while other symbols of the
    /// same connection kept flowing is reported once (an event and a metric) until its messages
    /// come back. Kraken sends no heartbeat per symbol, so a quiet symbol on a live connection
    /// is not stale by itself; one that stops while the rest flows may be stuck on the
    /// exchange's side.
    /// Returns when to look next (the earliest moment another symbol could be quiet), if any
    /// symbol has a known pace.
    fn check_quiet(&mut self, now: Instant) -> Option<Instant> {
        let last_book = self.last_book?;
        if now.saturating_duration_since(last_book) > QUIET_FLOWING {
            // The whole connection is quiet: nothing to compare against (the stale watchdog
            // watches the connection).
            return Some(now + QUIET_AFTER);
        }
        let mut next: Option<Instant> = None;
        for slot in self.slots.iter_mut().flatten() {
            let pace = slot.pace;
            let (Some(last), false, Phase::Live) = (pace.last, pace.reported, slot.phase) else { continue };
            if pace.samples < QUIET_SAMPLES {
                continue;
            }
            let due = last + quiet_threshold(pace.mean_gap_ns);
            if due > now {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            slot.pace.reported = true;
            let symbol = Arc::clone(&slot.symbol);
            let (quiet_for, usual) = (now.saturating_duration_since(last), Duration::from_nanos(pace.mean_gap_ns));
            tracing::warn!(%symbol, ?quiet_for, ?usual, "a symbol went quiet while its connection flows");
            self.tallies.quiet();
            self.events.push_back(Event::QuietSymbol { symbol, quiet_for, usual_gap: usual });
        }
        // A reported symbol whose messages come back is watched again from its next message on.
        next.or(Some(now + QUIET_AFTER))
    }

    /// Asks the driver for a planned rollover, once per connection.
    fn roll_over(&mut self, why: &str) {
        if self.conn == Conn::Down || self.reconnecting || self.rolling {
            return;
        }
        tracing::info!(%why, "planned rollover to a new connection");
        self.rolling = true;
        self.commands.push_back(Command::Rollover);
        self.dirty = true;
    }

    /// Message `n` of the connection's counter (Coinbase): the next one goes on; one at or
    /// below the last is stale or a duplicate, ignored whole; a skip is a lost message that may
    /// have been any book's ([`Core::connection_gap`]), and the message itself goes on (a
    /// snapshot in it heals its book at once).
    fn counter(&mut self, n: u64, now: Instant) -> bool {
        match self.counter.observe(Seq(n)) {
            SeqCheck::InOrder => true,
            SeqCheck::Stale { last } => {
                self.tallies.verdict(Verdict::Stale { last: last.0, got: n }, Kind::Update);
                false
            }
            SeqCheck::Gap { expected, got } => {
                self.connection_gap(expected.0, got.0, now);
                true
            }
        }
    }

    /// The connection's counter skipped from `expected` to `got`: nobody can say whose message
    /// was lost, so every book of the connection is invalid at once, its readers see it
    /// resyncing, and each is resynced (resubscribed through the pacing; or, past
    /// [`GAP_RESUBSCRIBE_MAX`] books, all at once on a new connection, which starts a new
    /// counter). Each is valid again at its own next snapshot. Books waiting for a snapshot are
    /// asked again too: the lost message may have been theirs.
    fn connection_gap(&mut self, expected: u64, got: u64, now: Instant) {
        self.tallies.connection_gap();
        self.trouble(now);
        let why = Invalid::SequenceGap { expected, got };
        let hit: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i].as_ref().is_some_and(|s| {
                    matches!(s.phase, Phase::Live | Phase::Subscribing { .. } | Phase::Resyncing { .. })
                })
            })
            .collect();
        tracing::warn!(
            expected,
            got,
            books = hit.len(),
            "the connection's counter skipped; every book of the connection resyncs"
        );
        if hit.len() > GAP_RESUBSCRIBE_MAX && !self.reconnecting {
            let stale = self.stale;
            // Invalid at once; the new connection's snapshots heal them (its `Disconnected`
            // event says why it was made).
            for &i in &hit {
                let Some(slot) = self.slots[i].as_mut() else { continue };
                slot.book.invalidate(why);
                slot.publish(stale);
            }
            self.reconnecting = true;
            self.commands.push_back(Command::Reconnect(Disconnect::SequenceGap));
            self.dirty = true;
            return;
        }
        for i in hit {
            let Some(slot) = self.slots[i].as_mut() else { continue };
            slot.book.invalidate(why);
            self.start_resync(i, ResyncReason::of(why), now);
        }
    }

    fn can_fetch(&self) -> bool {
        E::FETCHES_SNAPSHOT && self.config.rest_url.is_some()
    }

    /// The subscription was acknowledged but no snapshot came: fetch one by REST, and keep
    /// buffering updates for the bridge.
    fn start_fetch(&mut self, i: usize, started: Instant, now: Instant) {
        let stale = self.stale;
        let Some(slot) = self.slots[i].as_mut() else { return };
        let reason = match slot.phase {
            Phase::Resyncing { reason, .. } | Phase::Queued { reason, .. } => reason,
            // Without a snapshot on the stream, fetching is how every book starts, not a resync.
            Phase::Subscribing { .. } if !E::STREAM_SNAPSHOT => {
                slot.bootstrap = true;
                ResyncReason::SnapshotTimeout
            }
            _ => {
                let reason = ResyncReason::SnapshotTimeout;
                self.tallies.resync(reason);
                slot.bootstrap = false;
                self.events.push_back(Event::ResyncStarted { symbol: Arc::clone(&slot.symbol), reason });
                reason
            }
        };
        tracing::info!(symbol = %slot.symbol, buffered = slot.pending.len(), "subscribed without a snapshot; fetching one");
        slot.phase = Phase::FetchWait { reason, started, at: now };
        slot.publish(stale);
        self.dirty = true;
    }

    /// A fetch failed or its snapshot could not be used: an error event, and another try after a
    /// backoff (or the server's `Retry-After`, whichever is longer).
    fn fetch_failed(&mut self, i: usize, message: &str, retry_after: Option<Duration>, now: Instant) {
        self.tallies.fetch_failure();
        let Some(slot) = self.slots[i].as_mut() else { return };
        let (Phase::Fetching { reason, started, .. } | Phase::FetchWait { reason, started, .. }) = slot.phase else {
            return;
        };
        slot.fetch_failures = slot.fetch_failures.saturating_add(1);
        let backoff = fetch_backoff(slot.fetch_failures);
        let delay = retry_after.map_or(backoff, |r| r.max(backoff)).min(MAX_FETCH_WAIT);
        let symbol = Arc::clone(&slot.symbol);
        tracing::warn!(%symbol, %message, failures = slot.fetch_failures, ?delay, "snapshot fetch failed");
        slot.phase = Phase::FetchWait { reason, started, at: now + delay };
        self.events.push_back(Event::Error(Error::Fetch { symbol, message: Arc::from(message) }));
        self.dirty = true;
    }

    /// Sends the fetches that are due, as the fetch pacing allows.
    fn drive_fetches(&mut self, now: Instant) {
        if self.conn != Conn::Up || !self.can_fetch() {
            return;
        }
        let Some(base) = self.config.rest_url.clone() else { return };
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots[i].as_ref() else { continue };
            let Phase::FetchWait { reason, started, at } = slot.phase else { continue };
            // As OKX's procedure asks, a fetch waits for a first update on the stream: only a
            // snapshot that reaches it is known not to be older than the stream. (A snapshot
            // with nothing buffered could stand behind the stream and read as valid.)
            if at > now || (E::STREAM_SNAPSHOT && slot.pending.is_empty()) {
                continue;
            }
            if !self.fetch_bucket.try_take(now) {
                let ready = self.fetch_bucket.ready_at(now);
                if let Some(slot) = self.slots[i].as_mut() {
                    slot.phase = Phase::FetchWait { reason, started, at: ready };
                }
                self.dirty = true;
                continue;
            }
            let symbol = Arc::clone(&slot.symbol);
            let mut url = base.trim_end_matches('/').to_owned();
            self.exchange.snapshot_path(&mut url, &symbol, self.config.depth);
            let id = self.req();
            self.tallies.fetch();
            tracing::debug!(%symbol, %url, id, "fetching a snapshot");
            self.commands.push_back(Command::Fetch(Fetch { id, symbol, url, timeout: self.config.fetch_timeout }));
            if let Some(slot) = self.slots[i].as_mut() {
                slot.phase = Phase::Fetching { reason, started, sent: now, id };
            }
            self.dirty = true;
        }
    }

    fn ping(&mut self, now: Instant) {
        self.last_ping = Some(now);
        let req = self.req();
        let mut text = String::new();
        self.exchange.ping(&mut text, req);
        if !text.is_empty() {
            self.commands.push_back(Command::Send(text));
        }
    }

    fn go_stale(&mut self, silent_for: Duration) {
        tracing::warn!(?silent_for, "feed silent; books stale, reconnecting");
        self.reconnecting = true;
        self.stale = true;
        for slot in self.slots.iter_mut().flatten() {
            slot.publish(true);
        }
        self.events.push_back(Event::Stale { silent_for });
        self.commands.push_back(Command::Reconnect(Disconnect::Silent));
    }

    /// The slot of a symbol. A feed usually has a handful of symbols: comparing them directly is
    /// cheaper than hashing the name, so the map is used only for larger feeds.
    #[inline]
    fn lookup(&self, symbol: &str) -> Option<usize> {
        if self.slots.len() <= 8 {
            self.slots.iter().position(|s| s.as_ref().is_some_and(|s| *s.symbol == *symbol))
        } else {
            self.index.get(symbol).copied()
        }
    }

    /// The slots whose request in flight is `req`.
    fn slots_of(&self, req: u64) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].as_ref().is_some_and(|s| s.phase.request() == Some(req)))
            .collect()
    }

    fn reply(&mut self, r: &Reply<'_>, now: Instant) {
        let named = r.symbol.and_then(|s| self.index.get(s).copied());
        let message: Arc<str> = Arc::from(r.message.unwrap_or("request failed without a message"));
        if !r.success && E::is_rate_limit(&message) {
            self.rate_limited(r, named, message, now);
            return;
        }
        match (r.op, r.success) {
            (Op::Unsubscribe, ok) => {
                if !ok {
                    // "Not subscribed": the book was already gone; the subscribe that follows is
                    // what matters.
                    tracing::debug!(%message, "unsubscribe refused");
                }
                // Only a resync that waits for this acknowledgement moves on (exchanges that
                // unsubscribe first); elsewhere the subscribe went out with the unsubscribe.
                let unsubscribing =
                    |i: &usize| self.slots[*i].as_ref().is_some_and(|s| matches!(s.phase, Phase::Unsubscribing { .. }));
                let target = match (named, r.req_id) {
                    (Some(i), _) => Some(i).filter(unsubscribing),
                    (None, Some(req)) => self.slots_of(req).into_iter().find(unsubscribing),
                    (None, None) => (0..self.slots.len()).find(unsubscribing),
                };
                if let Some(i) = target {
                    self.resubscribe(i, now);
                }
            }
            (Op::Subscribe, true) => {
                // Acknowledged: from now on a missing snapshot is the exchange's silence, not a lost
                // request, and (where the exchange offers one) a REST snapshot can stand in for it.
                // Where the stream has no snapshot at all (Binance), the fetch goes now.
                let acked: Vec<usize> = match (named, r.req_id) {
                    (Some(i), _) => vec![i],
                    (None, Some(req)) => self.slots_of(req),
                    (None, None) => Vec::new(),
                };
                for i in acked {
                    let Some(slot) = self.slots[i].as_mut() else { continue };
                    let started = match slot.phase {
                        Phase::Subscribing { sent, .. } => sent,
                        Phase::Resyncing { started, .. } => started,
                        _ => continue,
                    };
                    slot.acked = true;
                    if !E::STREAM_SNAPSHOT && self.can_fetch() {
                        self.start_fetch(i, started, now);
                    }
                }
                if !E::STREAM_SNAPSHOT {
                    self.drive_fetches(now);
                }
            }
            (Op::Other, true) => {}
            (Op::Subscribe, false) => {
                // Exchanges that echo no request id (Coinbase): the request is the one the named
                // symbol's book was last asked in, or, naming none, the oldest one unanswered.
                let req = r
                    .req_id
                    .or_else(|| named.and_then(|i| self.slots[i].as_ref()).and_then(|s| s.phase.request()))
                    .or_else(
                        || if E::REFUSES_WHOLE_REQUEST && named.is_none() { self.oldest_unanswered() } else { None },
                    );
                let same_request: Vec<usize> = req.map(|req| self.slots_of(req)).unwrap_or_default();
                let refused = match named {
                    Some(i) => Some(i),
                    None if same_request.len() == 1 => Some(same_request[0]),
                    None => None,
                };
                match refused {
                    Some(i) => self.refused(i, message),
                    None if same_request.is_empty() => {
                        tracing::warn!(%message, "exchange error");
                        self.events.push_back(Event::Error(Error::Exchange(message)));
                    }
                    None => {
                        // A whole request refused without naming the culprit: asked for again in
                        // two halves, each halved again if refused, until the bad one is refused
                        // alone (a few requests, not one per symbol at once: exchanges limit the
                        // messages a connection may send).
                        tracing::warn!(%message, symbols = same_request.len(), "request refused; splitting it");
                        let (first, resyncs): (Vec<usize>, Vec<usize>) = same_request.into_iter().partition(|&i| {
                            self.slots[i].as_ref().is_some_and(|s| matches!(s.phase, Phase::Subscribing { .. }))
                        });
                        let (a, b) = first.split_at(first.len() / 2);
                        self.subscribe(a, now);
                        self.subscribe(b, now);
                        for i in resyncs {
                            self.resend(i, now);
                        }
                        return;
                    }
                }
                if E::REFUSES_WHOLE_REQUEST {
                    // The others again without the bad one: first subscriptions in one request
                    // (as few messages as before), resyncs each as they were.
                    let others: Vec<usize> = same_request.into_iter().filter(|&i| Some(i) != refused).collect();
                    let first: Vec<usize> = others
                        .iter()
                        .copied()
                        .filter(|&i| {
                            self.slots[i].as_ref().is_some_and(|s| matches!(s.phase, Phase::Subscribing { .. }))
                        })
                        .collect();
                    self.subscribe(&first, now);
                    for i in others.into_iter().filter(|i| !first.contains(i)) {
                        self.resend(i, now);
                    }
                }
            }
            (Op::Other, false) => {
                tracing::warn!(%message, "exchange error");
                self.events.push_back(Event::Error(Error::Exchange(message)));
            }
        }
    }

    /// The oldest subscribe request not yet acknowledged, for an error that names neither its
    /// request nor a symbol: on an exchange that answers a connection's requests in order
    /// (Coinbase), it is the one refused.
    fn oldest_unanswered(&self) -> Option<u64> {
        self.slots
            .iter()
            .flatten()
            .filter(|s| !s.acked && matches!(s.phase, Phase::Subscribing { .. } | Phase::Resyncing { .. }))
            .filter_map(|s| s.phase.request())
            .min()
    }

    /// The exchange refused a request for its message rate: the pacing slows down, and the
    /// books the request was about are asked for again through it (an unsubscribe that was
    /// refused did not happen: the resync starts over with it).
    fn rate_limited(&mut self, r: &Reply<'_>, named: Option<usize>, message: Arc<str>, now: Instant) {
        self.bucket.slow_down(now);
        tracing::warn!(%message, "the exchange refused a request for its rate; slowing down");
        self.events.push_back(Event::Error(Error::Exchange(message)));
        let targets: Vec<usize> = match (named, r.req_id) {
            (Some(i), _) => vec![i],
            (None, Some(req)) => self.slots_of(req),
            (None, None) => Vec::new(),
        };
        for i in targets {
            let Some(slot) = self.slots[i].as_ref() else { continue };
            let (reason, started) = match slot.phase {
                Phase::Subscribing { sent, .. } => (ResyncReason::RateLimited, sent),
                Phase::Resyncing { reason, started, .. } | Phase::Unsubscribing { reason, started, .. } => {
                    (reason, started)
                }
                _ => continue,
            };
            self.start_resync(i, reason, started);
        }
        self.drive(now);
    }

    /// A subscription of this slot was refused.
    fn refused(&mut self, i: usize, message: Arc<str>) {
        let stale = self.stale;
        let Some(slot) = self.slots[i].as_mut() else { return };
        let symbol = Arc::clone(&slot.symbol);
        tracing::warn!(%symbol, %message, "subscription refused");
        self.events.push_back(Event::Error(Error::SubscriptionRejected { symbol, message }));
        // A resubscription refused (say, because the exchange had not yet processed the
        // unsubscribe before it) is tried again through the bucket, a few times; a first
        // subscription refused is final for this connection.
        if let Phase::Resyncing { reason, started, .. } = slot.phase
            && slot.refusals < MAX_REFUSALS
        {
            slot.refusals += 1;
            self.start_resync(i, reason, started);
        } else {
            slot.phase = Phase::Rejected;
            slot.publish(stale);
            self.dirty = true;
        }
    }

    /// Sends the subscribe of a slot again, alone, keeping its phase's purpose.
    fn resend(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_ref() else { return };
        match slot.phase {
            Phase::Subscribing { .. } => self.subscribe(&[i], now),
            Phase::Resyncing { .. } => self.resubscribe(i, now),
            _ => {}
        }
    }

    /// Sends a resync's subscribe (after the unsubscribe, or after its acknowledgement).
    fn resubscribe(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_ref() else { return };
        let (Phase::Unsubscribing { reason, started, .. } | Phase::Resyncing { reason, started, .. }) = slot.phase
        else {
            return;
        };
        let symbol = Arc::clone(&slot.symbol);
        let req = self.req();
        let mut text = String::new();
        self.exchange.subscribe(&mut text, &[&symbol], self.config.depth, req);
        self.commands.push_back(Command::Send(text));
        if let Some(slot) = self.slots[i].as_mut() {
            slot.phase = Phase::Resyncing { reason, started, sent: now, req };
            slot.acked = false;
            slot.pending.clear();
        }
        self.dirty = true;
    }

    fn start_resync(&mut self, i: usize, reason: ResyncReason, started: Instant) {
        self.trouble(started);
        let stale = self.stale;
        let Some(slot) = self.slots[i].as_mut() else { return };
        if matches!(slot.phase, Phase::Queued { .. }) {
            return;
        }
        if !matches!(slot.phase, Phase::Resyncing { .. } | Phase::Unsubscribing { .. }) && !slot.phase.is_fetching() {
            self.tallies.resync(reason);
            tracing::info!(symbol = %slot.symbol, reason = reason.as_str(), "resync started");
            // Announced: the snapshot that heals it ends this resync.
            slot.bootstrap = false;
            self.events.push_back(Event::ResyncStarted { symbol: Arc::clone(&slot.symbol), reason });
        }
        if !E::STREAM_SNAPSHOT && slot.acked && E::FETCHES_SNAPSHOT && self.config.rest_url.is_some() {
            // No snapshot on the stream (Binance): a resync is a new bridge on the same
            // subscription, a fetch paced by the fetch budget; nothing is sent to the stream.
            slot.phase = Phase::FetchWait { reason, started, at: started.max(self.last_rx.unwrap_or(started)) };
            slot.pending.clear();
            slot.publish(stale);
            self.fetch_ready = true;
            self.dirty = true;
            return;
        }
        slot.phase = Phase::Queued { reason, started, not_before: None };
        slot.publish(stale);
        self.queue.push_back(i);
        self.dirty = true;
    }

    /// Starts a resync after the book was found wrong; `fresh` when that was at its snapshot or
    /// right after it. After [`MAX_FRESH_FAILURES`] such resyncs in a row, each waits twice as
    /// long as the one before (2 s up to [`MAX_RESYNC_BACKOFF`]), with an event and, once per
    /// step, the evidence in the log; every other symbol goes on.
    fn start_resync_after_failure(
        &mut self,
        i: usize,
        reason: ResyncReason,
        started: Instant,
        fresh: bool,
        now: Instant,
    ) {
        self.start_resync(i, reason, started);
        let Some(slot) = self.slots[i].as_mut() else { return };
        if !fresh {
            return;
        }
        slot.fresh_failures = slot.fresh_failures.saturating_add(1);
        let Some(extra) = slot.fresh_failures.checked_sub(MAX_FRESH_FAILURES) else { return };
        let delay = (Duration::from_secs(2) * (1u32 << extra.min(16))).min(MAX_RESYNC_BACKOFF);
        match slot.phase {
            Phase::Queued { reason, started, .. } => {
                slot.phase = Phase::Queued { reason, started, not_before: Some(now + delay) };
            }
            Phase::FetchWait { reason, started, .. } => {
                slot.phase = Phase::FetchWait { reason, started, at: now + delay };
            }
            _ => {}
        }
        let symbol = Arc::clone(&slot.symbol);
        let failures = slot.fresh_failures;
        let top = |side| {
            slot.book.quotes(side).take(3).map(|q| format!("{}:{}", q.price, q.qty)).collect::<Vec<_>>().join(" ")
        };
        let (bids, asks) = (top(plumb_book::Side::Bid), top(plumb_book::Side::Ask));
        let (expected, computed) = match reason {
            ResyncReason::ChecksumMismatch { expected, computed } => (Some(expected), Some(computed)),
            _ => (None, None),
        };
        tracing::warn!(
            %symbol, failures, ?delay, reason = reason.as_str(), ?expected, ?computed, %bids, %asks,
            "book wrong again right after a fresh snapshot; backing off"
        );
        self.events.push_back(Event::ResyncBackoff { symbol, reason, failures, retry_in: delay });
        self.dirty = true;
    }

    /// A book message for a symbol the session does not hold: ignored, and said once per symbol
    /// (not for one just removed, whose messages in flight are expected).
    #[cold]
    fn unexpected_symbol(&mut self, symbol: &str) {
        self.tallies.ignored();
        if self.unexpected.len() >= MAX_UNEXPECTED || self.unexpected.contains(symbol) {
            return;
        }
        self.unexpected.insert(symbol.into());
        tracing::warn!(%symbol, "book messages for a symbol this feed did not subscribe; ignored");
        self.events.push_back(Event::Error(Error::UnexpectedSymbol(Arc::from(symbol))));
    }

    /// A frame (of any kind) arrived: the connection is alive.
    #[inline]
    fn received(&mut self, now: Instant) {
        self.alive(now);
        self.tallies.frame();
    }

    /// Something arrived on the connection (a frame, or a websocket ping or pong).
    #[inline]
    fn alive(&mut self, now: Instant) {
        self.last_rx = Some(now);
        if self.pinged {
            // The silence deadline comes back, earlier than the stale one in force.
            self.pinged = false;
            self.dirty = true;
        }
    }

    fn trouble(&mut self, at: Instant) {
        self.last_trouble = Some(self.last_trouble.map_or(at, |t| t.max(at)));
    }

    /// Sends the queued resyncs the bucket allows now.
    fn drive(&mut self, now: Instant) {
        self.dirty = true;
        self.resync_wake = None;
        if self.conn != Conn::Up {
            return;
        }
        // Resyncs backing off stay queued, in order, until their time.
        let mut waiting: Vec<usize> = Vec::new();
        let mut wake: Option<Instant> = None;
        while let Some(&i) = self.queue.front() {
            if let Some(Phase::Queued { not_before: Some(t), .. }) = self.slots[i].as_ref().map(|s| s.phase)
                && t > now
            {
                self.queue.pop_front();
                waiting.push(i);
                wake = Some(wake.map_or(t, |w| w.min(t)));
                continue;
            }
            if !self.bucket.try_take(now, &mut self.rng) {
                let ready = self.bucket.ready_at(now);
                wake = Some(wake.map_or(ready, |w| w.min(ready)));
                break;
            }
            self.queue.pop_front();
            let Some(slot) = self.slots[i].as_ref() else { continue };
            let Phase::Queued { reason, started, .. } = slot.phase else { continue };
            if E::RESUBSCRIBE_REFRESHES {
                // The exchange answers a subscribe of a live book with a fresh snapshot: one
                // request, and nothing to unsubscribe.
                if let Some(slot) = self.slots[i].as_mut() {
                    slot.phase = Phase::Resyncing { reason, started, sent: now, req: 0 };
                }
                self.resubscribe(i, now);
                continue;
            }
            let symbol = Arc::clone(&slot.symbol);
            let depth = self.config.depth;
            let unsub = self.req();
            let mut text = String::new();
            self.exchange.unsubscribe(&mut text, &[&symbol], depth, unsub);
            self.commands.push_back(Command::Send(text));
            if let Some(slot) = self.slots[i].as_mut() {
                slot.phase = Phase::Unsubscribing { reason, started, sent: now, req: unsub };
            }
            if !E::UNSUBSCRIBE_FIRST {
                self.resubscribe(i, now);
            }
        }
        for i in waiting.into_iter().rev() {
            self.queue.push_front(i);
        }
        self.resync_wake = wake;
    }

    fn subscribe_idle(&mut self, now: Instant) {
        let idle: Vec<usize> =
            (0..self.slots.len()).filter(|&i| self.slots[i].as_ref().is_some_and(|s| s.phase == Phase::Idle)).collect();
        self.subscribe(&idle, now);
    }

    /// Subscribes these slots, in requests of at most the exchange's number of symbols.
    fn subscribe(&mut self, slots: &[usize], now: Instant) {
        self.dirty = true;
        for chunk in slots.chunks(E::MAX_SYMBOLS_PER_REQUEST.max(1)) {
            let symbols: Vec<Symbol> =
                chunk.iter().filter_map(|&i| self.slots[i].as_ref()).map(|s| Arc::clone(&s.symbol)).collect();
            if symbols.is_empty() {
                continue;
            }
            let names: Vec<&str> = symbols.iter().map(|s| &**s).collect();
            let req = self.req();
            let mut text = String::new();
            self.exchange.subscribe(&mut text, &names, self.config.depth, req);
            self.commands.push_back(Command::Send(text));
            for &i in chunk {
                if let Some(slot) = self.slots[i].as_mut() {
                    slot.phase = Phase::Subscribing { sent: now, req };
                    slot.acked = false;
                    slot.pending.clear();
                }
            }
        }
    }

    fn req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req - 1
    }
}
