//! The sans-io Kraken v2 session: every protocol decision of one connection, and no I/O.
//!
//! A [`Session`] owns the books of one connection. The caller (the driver, or a test) feeds it
//! what happened: [`Session::on_connected`], each received frame ([`Session::on_frame`]), the
//! passing of time ([`Session::handle_timeout`] at [`Session::poll_timeout`]), and
//! [`Session::on_disconnected`]. The session answers through two queues: [`Session::poll_command`]
//! (text to send, or "reconnect") and [`Session::poll_event`] (what the application should know).
//! Time is always an argument: the session never reads a clock, so every timing rule is testable
//! without waiting.
//!
//! The rules:
//! - On connect: subscribe to `instrument` (for the precisions that v2 checksums need), then, once
//!   its snapshot arrives, to every book in one request.
//! - A book is [`Status::Valid`] only right after a matching checksum. A mismatch, a crossed book,
//!   a level that cannot be applied or a precision change makes it [`Status::Resyncing`] and queues
//!   a resubscription of that symbol alone (unsubscribe, then subscribe with a snapshot). Other
//!   symbols are untouched. Until the fresh snapshot, updates of that symbol are not applied.
//! - Resubscriptions go through a token bucket with jitter ([`Pacing`]): a burst of mismatches
//!   cannot become a burst of requests.
//! - A snapshot that does not come within [`Config::snapshot_timeout`] is asked for again (paced).
//! - Silence: after [`Config::ping_after`] without a frame, a ping; after [`Config::stale_after`],
//!   every book is published [`Status::Stale`] and the session asks for a reconnect.
//! - A subscription the exchange refuses becomes [`Error::SubscriptionRejected`] with the
//!   exchange's message, and that symbol is not asked for again on this connection.
//! - On disconnect every book is published [`Status::Stale`]; on the next connect, every
//!   subscription is restored and no update is applied to a book before its new snapshot.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use plumb_book::kraken::Outcome;
use plumb_book::publish::{Publisher, Reader, Status, channel};
use plumb_book::{Book, Depth, Invalid, Precision, State};
use plumb_wire::Parser;
use plumb_wire::kraken::{Api, Kind, Message};

use crate::error::{Error, Result, Symbol};
use crate::pacing::{Bucket, Jitter, Pacing};

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
    /// Ask again for a snapshot (or the instrument list) that has not come within this time.
    pub snapshot_timeout: Duration,
    /// How resubscriptions are paced.
    pub pacing: Pacing,
    /// Seed of the jitter's random source.
    pub seed: u64,
    /// Emit an [`Event::Book`] for every applied book message (default). Applications that only
    /// read books through their readers turn it off and save an event per message.
    pub book_events: bool,
}

impl Default for Config {
    /// Depth 10, 10 published levels, ping after 2 s, stale after 5 s, snapshot timeout 10 s.
    fn default() -> Self {
        Self {
            depth: Depth::D10,
            levels: 10,
            ping_after: Duration::from_secs(2),
            stale_after: Duration::from_secs(5),
            snapshot_timeout: Duration::from_secs(10),
            pacing: Pacing::default(),
            seed: 0x9e37_79b9_7f4a_7c15,
            book_events: true,
        }
    }
}

/// What the session asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send this text frame.
    Send(String),
    /// Drop the connection and connect again (after the driver's backoff).
    Reconnect(Disconnect),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// Nothing arrived for [`Config::stale_after`].
    Silent,
    /// The instrument list did not arrive in time.
    Timeout,
    /// The server closed the connection (close frame or end of stream).
    ServerClosed,
    /// The transport failed.
    Transport(Arc<str>),
    /// The application asked for a reconnect.
    Requested,
    /// The feed is shutting down.
    Shutdown,
}

impl Disconnect {
    /// A short snake-case name, as `plumb watch --json` prints it.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Silent => "silent",
            Self::Timeout => "timeout",
            Self::ServerClosed => "server_closed",
            Self::Transport(_) => "transport_error",
            Self::Requested => "requested",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Why a book is being resubscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResyncReason {
    /// The exchange's checksum differs from the book's.
    ChecksumMismatch {
        /// The exchange's.
        expected: u32,
        /// The book's.
        computed: u32,
    },
    /// A message sequence number was skipped (exchanges that number their messages).
    SequenceGap,
    /// The book crossed (best bid at or above best ask).
    Crossed,
    /// A level could not be applied.
    Rejected(plumb_book::Error),
    /// The instrument's precision changed.
    PrecisionChanged,
    /// The snapshot did not come in time.
    SnapshotTimeout,
}

impl ResyncReason {
    /// A short snake-case name, as `plumb watch --json` prints it.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ChecksumMismatch { .. } => "checksum_mismatch",
            Self::SequenceGap => "sequence_gap",
            Self::Crossed => "crossed",
            Self::Rejected(_) => "rejected_level",
            Self::PrecisionChanged => "precision_changed",
            Self::SnapshotTimeout => "snapshot_timeout",
        }
    }

    fn of(invalid: Invalid) -> Self {
        match invalid {
            Invalid::ChecksumMismatch { expected, computed } => Self::ChecksumMismatch { expected, computed },
            Invalid::Crossed => Self::Crossed,
            Invalid::Rejected(e) => Self::Rejected(e),
            _ => Self::PrecisionChanged,
        }
    }
}

/// One applied book message of one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookUpdate {
    /// The symbol.
    pub symbol: Symbol,
    /// Snapshot or update.
    pub kind: Kind,
    /// Bid levels the message carried.
    pub bids: u16,
    /// Ask levels the message carried.
    pub asks: u16,
    /// What the checksum said.
    pub outcome: Outcome,
    /// The status published with it.
    pub status: Status,
    /// The exchange's timestamp, in Unix nanoseconds (0 when absent).
    pub exchange_time_ns: u64,
    /// When the frame was received, on the driver's clock.
    pub received_ns: u64,
}

/// What the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Connected; subscriptions are on their way.
    Connected,
    /// The connection ended; every book is stale until it is back.
    Disconnected {
        /// Why.
        reason: Disconnect,
    },
    /// A book message was applied (or, while resyncing, received and not applied).
    Book(BookUpdate),
    /// A symbol's book is known wrong and is being resubscribed.
    ResyncStarted {
        /// The symbol.
        symbol: Symbol,
        /// Why.
        reason: ResyncReason,
    },
    /// A resubscribed book is valid again.
    ResyncFinished {
        /// The symbol.
        symbol: Symbol,
        /// Since the resync started (on the caller's clock).
        took: Duration,
    },
    /// Nothing arrived for this long: every book is stale, and a reconnect follows.
    Stale {
        /// How long the feed was silent.
        silent_for: Duration,
    },
    /// Something went wrong that the feed handles on its own; see [`Error`].
    Error(Error),
    /// The application's event queue was full and this many events were dropped. Books and
    /// readers are unaffected: only events are lost.
    Lagged {
        /// Events dropped since the last one delivered.
        dropped: u64,
    },
}

/// Running totals of one feed, readable from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    frames: AtomicU64,
    book_messages: AtomicU64,
    checksums_verified: AtomicU64,
    checksum_mismatches: AtomicU64,
    unverified_updates: AtomicU64,
    ignored: AtomicU64,
    errors: AtomicU64,
    resyncs: AtomicU64,
    reconnects: AtomicU64,
}

/// A copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames received.
    pub frames: u64,
    /// Book frames (a frame with several symbols counts once).
    pub book_messages: u64,
    /// Checksums that matched.
    pub checksums_verified: u64,
    /// Checksums that did not.
    pub checksum_mismatches: u64,
    /// Book messages not verified (received while resyncing or before a snapshot, or without a
    /// checksum).
    pub unverified_updates: u64,
    /// Frames that are not book messages.
    pub ignored: u64,
    /// Frames that could not be parsed, and levels that could not be applied.
    pub errors: u64,
    /// Resyncs started.
    pub resyncs: u64,
    /// Connections after the first.
    pub reconnects: u64,
}

impl Stats {
    /// A consistent-enough copy: each counter is exact, the set is not one instant.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            frames: g(&self.frames),
            book_messages: g(&self.book_messages),
            checksums_verified: g(&self.checksums_verified),
            checksum_mismatches: g(&self.checksum_mismatches),
            unverified_updates: g(&self.unverified_updates),
            ignored: g(&self.ignored),
            errors: g(&self.errors),
            resyncs: g(&self.resyncs),
            reconnects: g(&self.reconnects),
        }
    }
}

/// One writer per counter: a load and a store, no read-modify-write on the hot path.
#[inline]
fn bump(a: &AtomicU64) {
    a.store(a.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A count kept both for `Feed::counts` and for the `metrics` facade.
#[inline]
fn tally(a: &AtomicU64, m: &metrics::Counter) {
    bump(a);
    m.increment(1);
}

/// Handles on the `metrics` facade, registered once when the session is made, so that the hot
/// path only increments them. Without an installed recorder they are no-ops; an application that
/// wants them installs its recorder before building the feed.
struct Meters {
    frames: metrics::Counter,
    book_messages: metrics::Counter,
    verified: metrics::Counter,
    mismatches: metrics::Counter,
    errors: metrics::Counter,
    reconnects: metrics::Counter,
    resyncs: [metrics::Counter; 6],
    latency: metrics::Histogram,
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meters")
    }
}

/// Resubscriptions of one book the exchange may refuse in a row before the session gives up on it
/// for the connection.
const MAX_REFUSALS: u8 = 3;

const REASONS: [&str; 6] =
    ["checksum_mismatch", "sequence_gap", "crossed", "rejected_level", "precision_changed", "snapshot_timeout"];

impl Meters {
    fn new() -> Self {
        let c = |name: &'static str| metrics::counter!(name, "exchange" => "kraken");
        Self {
            frames: c("plumb_frames_total"),
            book_messages: c("plumb_book_messages_total"),
            verified: c("plumb_checksums_verified_total"),
            mismatches: c("plumb_checksum_mismatches_total"),
            errors: c("plumb_errors_total"),
            reconnects: c("plumb_reconnects_total"),
            resyncs: REASONS.map(|r| metrics::counter!("plumb_resyncs_total", "exchange" => "kraken", "reason" => r)),
            latency: metrics::histogram!("plumb_latency_seconds", "exchange" => "kraken"),
        }
    }

    fn resync(&self, reason: ResyncReason) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason.as_str()) {
            self.resyncs[i].increment(1);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not subscribed on this connection (yet).
    Idle,
    /// Subscribe sent at `sent`; waiting for the snapshot.
    Subscribing { sent: Instant },
    /// Receiving updates.
    Live,
    /// Known wrong; waiting for a pacing token.
    Queued { reason: ResyncReason, started: Instant },
    /// Unsubscribe and subscribe sent at `sent`; waiting for the snapshot.
    Resyncing { reason: ResyncReason, started: Instant, sent: Instant },
    /// The exchange refused the subscription.
    Rejected,
}

#[derive(Debug)]
struct Slot {
    symbol: Symbol,
    book: Book,
    publisher: Publisher,
    phase: Phase,
    exchange_ns: u64,
    received_ns: u64,
    /// Resubscriptions refused in a row (reset when the book is live again).
    refusals: u8,
}

impl Slot {
    /// What readers see. `stale`: the connection is silent or gone.
    fn status(&self, stale: bool) -> Status {
        if stale {
            return if self.book.is_empty() { Status::Empty } else { Status::Stale };
        }
        match self.phase {
            Phase::Queued { .. } | Phase::Resyncing { .. } => Status::Resyncing,
            Phase::Rejected => Status::Invalid,
            Phase::Idle | Phase::Subscribing { .. } if !self.book.is_empty() => Status::Resyncing,
            _ => Status::of(self.book.state()),
        }
    }

    fn publish(&mut self, stale: bool) {
        let status = self.status(stale);
        self.publisher.publish_with(&self.book, status, self.exchange_ns, self.received_ns);
    }

    fn publish_as(&mut self, status: Status) {
        self.publisher.publish_with(&self.book, status, self.exchange_ns, self.received_ns);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Down,
    /// Connected; the instrument list was asked for at `since`.
    Instruments {
        since: Instant,
    },
    Up,
}

/// The protocol state of one Kraken v2 connection and its books. See the module docs.
#[derive(Debug)]
pub struct Session {
    parser: Parser,
    core: Core,
}

#[derive(Debug)]
struct Core {
    config: Config,
    slots: Vec<Option<Slot>>,
    index: HashMap<Symbol, usize>,
    precisions: HashMap<Box<str>, Precision>,
    conn: Conn,
    connections: u64,
    last_rx: Option<Instant>,
    pinged: bool,
    reconnecting: bool,
    /// Set when the connection went silent or down, cleared on the next connect.
    stale: bool,
    bucket: Bucket,
    rng: Jitter,
    queue: VecDeque<usize>,
    resync_wake: Option<Instant>,
    /// The answer of `poll_timeout`, recomputed after anything that moves a deadline. An ordinary
    /// frame does not: it only moves `last_rx`, so the watchdog fires at the old deadline, finds
    /// the feed alive, and re-arms from the newest frame. The driver's timer is then reset about
    /// once per `ping_after`, not once per frame.
    deadline: Option<Instant>,
    dirty: bool,
    commands: VecDeque<Command>,
    events: VecDeque<Event>,
    next_req: u64,
    stats: Arc<Stats>,
    meters: Meters,
}

/// Kraken symbols are short ASCII names such as `BTC/USD` or `1INCH/EUR`; anything else is refused
/// before it reaches a request (which also means requests need no escaping).
pub(crate) fn check_symbol(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'-' | b'_' | b':'));
    if ok { Ok(()) } else { Err(Error::InvalidSymbol(s.to_owned())) }
}

impl Session {
    /// A session with no books, disconnected.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self { parser: Parser::new(), core: Core::new(config) }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &Config {
        self.core.config()
    }

    /// The running totals, shareable with other threads.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        self.core.stats()
    }

    /// Adds a symbol and returns a reader of its book. If connected, it is subscribed at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSymbol`] or [`Error::DuplicateSymbol`].
    pub fn add_symbol(&mut self, symbol: &str) -> Result<Reader> {
        let r = self.core.add_symbol(symbol);
        self.core.refresh();
        r
    }

    /// Adds a symbol whose book is published through `publisher` (made by
    /// [`plumb_book::publish::channel`] on the application's side).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSymbol`] or [`Error::DuplicateSymbol`].
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
        self.core.symbols()
    }

    /// The book of a symbol, as the session holds it.
    #[must_use]
    pub fn book(&self, symbol: &str) -> Option<&Book> {
        self.core.book(symbol)
    }

    /// The status a symbol's readers see.
    #[must_use]
    pub fn status(&self, symbol: &str) -> Option<Status> {
        self.core.status(symbol)
    }

    /// Whether the session is connected (from [`Session::on_connected`] to
    /// [`Session::on_disconnected`]).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    /// The next thing to send, or a request to reconnect.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.core.poll_command()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    /// When [`Session::handle_timeout`] must be called next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// The connection is up: ask for the instrument list (books follow once it arrives).
    pub fn on_connected(&mut self, now: Instant) {
        self.core.on_connected(now);
        self.core.refresh();
    }

    /// The connection is gone: every book is published stale; nothing more is sent.
    pub fn on_disconnected(&mut self, now: Instant, reason: Disconnect) {
        self.core.on_disconnected(now, reason);
        self.core.refresh();
    }

    /// Timers: ping, the stale watchdog, snapshot timeouts and paced resubscriptions.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.core.refresh();
    }

    /// Asks for a reconnect (the application's "restart").
    pub fn request_reconnect(&mut self) {
        self.core.request_reconnect();
        self.core.refresh();
    }

    /// One received text frame, parsed in place. `received_ns` is the receive time on the
    /// driver's clock, passed through to readers and events.
    pub fn on_frame(&mut self, frame: &[u8], now: Instant, received_ns: u64) {
        let parsed = self.parser.parse(frame);
        self.core.on_frame(parsed, now, received_ns);
        if self.core.dirty {
            self.core.refresh();
        }
    }
}

impl Core {
    #[must_use]
    pub(crate) fn new(config: Config) -> Self {
        let rng = Jitter::new(config.seed);
        Self {
            bucket: Bucket::new(config.pacing),
            config,
            slots: Vec::new(),
            index: HashMap::new(),
            precisions: HashMap::new(),
            conn: Conn::Down,
            connections: 0,
            last_rx: None,
            pinged: false,
            reconnecting: false,
            stale: false,
            rng,
            queue: VecDeque::new(),
            resync_wake: None,
            deadline: None,
            dirty: false,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            next_req: 1,
            stats: Arc::new(Stats::default()),
            meters: Meters::new(),
        }
    }

    #[must_use]
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    #[must_use]
    pub(crate) fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    pub(crate) fn add_symbol(&mut self, symbol: &str) -> Result<Reader> {
        let (publisher, reader) = channel(self.config.levels);
        self.attach(symbol, publisher)?;
        Ok(reader)
    }

    pub(crate) fn attach(&mut self, symbol: &str, publisher: Publisher) -> Result<()> {
        check_symbol(symbol)?;
        if let Some((s, _)) = self.index.get_key_value(symbol) {
            return Err(Error::DuplicateSymbol(Arc::clone(s)));
        }
        let symbol: Symbol = Arc::from(symbol);
        let precision = self.precisions.get(&*symbol).copied();
        let slot = Slot {
            symbol: Arc::clone(&symbol),
            book: Book::new(self.config.depth, precision),
            publisher,
            phase: Phase::Idle,
            exchange_ns: 0,
            received_ns: 0,
            refusals: 0,
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
        if self.conn == Conn::Up {
            self.subscribe(&[i], self.last_rx);
        }
        Ok(())
    }

    pub(crate) fn remove_symbol(&mut self, symbol: &str) -> bool {
        let Some(i) = self.index.remove(symbol) else { return false };
        self.queue.retain(|&q| q != i);
        let Some(mut slot) = self.slots[i].take() else { return false };
        if self.conn == Conn::Up && !matches!(slot.phase, Phase::Idle | Phase::Rejected) {
            let req = self.req();
            self.commands.push_back(Command::Send(book_request(
                "unsubscribe",
                &[&slot.symbol],
                self.config.depth,
                req,
            )));
        }
        slot.book.clear();
        slot.publish_as(Status::Empty);
        true
    }

    pub(crate) fn symbols(&self) -> impl Iterator<Item = &Symbol> {
        self.slots.iter().flatten().map(|s| &s.symbol)
    }

    #[must_use]
    pub(crate) fn book(&self, symbol: &str) -> Option<&Book> {
        self.index.get(symbol).and_then(|&i| self.slots[i].as_ref()).map(|s| &s.book)
    }

    #[must_use]
    pub(crate) fn status(&self, symbol: &str) -> Option<Status> {
        self.index.get(symbol).and_then(|&i| self.slots[i].as_ref()).map(|s| s.status(self.stale))
    }

    #[must_use]
    pub(crate) fn is_connected(&self) -> bool {
        self.conn != Conn::Down
    }

    pub(crate) fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub(crate) fn refresh(&mut self) {
        self.deadline = self.compute_deadline();
        self.dirty = false;
    }

    fn compute_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.conn == Conn::Down || self.reconnecting {
            return None;
        }
        if let Some(rx) = self.last_rx {
            at(rx + self.config.stale_after);
            if !self.pinged {
                at(rx + self.config.ping_after);
            }
        }
        if let Conn::Instruments { since } = self.conn {
            at(since + self.config.snapshot_timeout);
        }
        if let Some(t) = self.resync_wake {
            at(t);
        }
        for slot in self.slots.iter().flatten() {
            if let Phase::Subscribing { sent } | Phase::Resyncing { sent, .. } = slot.phase {
                at(sent + self.config.snapshot_timeout);
            }
        }
        next
    }

    pub(crate) fn on_connected(&mut self, now: Instant) {
        self.connections += 1;
        if self.connections > 1 {
            tally(&self.stats.reconnects, &self.meters.reconnects);
        }
        self.conn = Conn::Instruments { since: now };
        self.last_rx = Some(now);
        self.pinged = false;
        self.reconnecting = false;
        self.stale = false;
        self.queue.clear();
        self.resync_wake = None;
        for slot in self.slots.iter_mut().flatten() {
            slot.phase = Phase::Idle;
            slot.publish(self.stale);
        }
        let req = self.req();
        self.commands.push_back(Command::Send(format!(
            r#"{{"method":"subscribe","params":{{"channel":"instrument","snapshot":true}},"req_id":{req}}}"#
        )));
        self.events.push_back(Event::Connected);
        tracing::debug!(connection = self.connections, "connected; asking for instruments");
    }

    pub(crate) fn on_disconnected(&mut self, _now: Instant, reason: Disconnect) {
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
            slot.publish(true);
        }
        tracing::info!(reason = reason.as_str(), "disconnected");
        self.events.push_back(Event::Disconnected { reason });
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
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
                let req = self.req();
                self.commands.push_back(Command::Send(format!(r#"{{"method":"ping","req_id":{req}}}"#)));
            }
        }
        if let Conn::Instruments { since } = self.conn
            && now >= since + self.config.snapshot_timeout
        {
            tracing::warn!("no instrument list in time; reconnecting");
            self.reconnecting = true;
            self.commands.push_back(Command::Reconnect(Disconnect::Timeout));
            return;
        }
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots[i].as_ref() else { continue };
            let (sent, started) = match slot.phase {
                Phase::Subscribing { sent } => (sent, sent),
                Phase::Resyncing { sent, started, .. } => (sent, started),
                _ => continue,
            };
            if now >= sent + self.config.snapshot_timeout {
                self.start_resync(i, ResyncReason::SnapshotTimeout, started);
            }
        }
        self.drive(now);
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

    pub(crate) fn request_reconnect(&mut self) {
        if self.conn != Conn::Down && !self.reconnecting {
            self.reconnecting = true;
            self.commands.push_back(Command::Reconnect(Disconnect::Requested));
        }
    }

    pub(crate) fn on_frame(&mut self, parsed: plumb_wire::Result<Message<'_>>, now: Instant, received_ns: u64) {
        self.last_rx = Some(now);
        if self.pinged {
            // The ping deadline comes back, earlier than the stale one in force.
            self.pinged = false;
            self.dirty = true;
        }
        tally(&self.stats.frames, &self.meters.frames);
        if self.reconnecting || self.conn == Conn::Down {
            // The session has given this connection up (or has none); a late frame must not
            // make a stale book look live again.
            bump(&self.stats.ignored);
            return;
        }
        let msg = match parsed {
            Ok(m) => m,
            Err(e) => {
                tally(&self.stats.errors, &self.meters.errors);
                tracing::warn!(error = %e, "malformed frame");
                self.events.push_back(Event::Error(Error::Frame(e)));
                return;
            }
        };
        match msg {
            Message::Book(book) if book.api == Api::V2 => {
                tally(&self.stats.book_messages, &self.meters.book_messages);
                for entry in book.entries() {
                    let Some(i) = self.lookup(entry.symbol()) else { continue };
                    let Some(slot) = self.slots[i].as_mut() else { continue };
                    let accept = match slot.phase {
                        Phase::Live => true,
                        Phase::Subscribing { .. } | Phase::Resyncing { .. } => book.kind == Kind::Snapshot,
                        Phase::Idle | Phase::Queued { .. } | Phase::Rejected => false,
                    };
                    if !accept {
                        bump(&self.stats.unverified_updates);
                        continue;
                    }
                    if book.kind == Kind::Snapshot
                        && let Some(p) = self.precisions.get(entry.symbol())
                    {
                        // A snapshot replaces everything; start it from the current precision.
                        slot.book.set_precision(*p);
                    }
                    let applied = slot.book.apply_kraken(book.kind, &entry);
                    slot.exchange_ns = entry.timestamp_ns().unwrap_or(0);
                    slot.received_ns = received_ns;
                    let outcome = match applied {
                        Ok(o) => o,
                        Err(error) => {
                            tally(&self.stats.errors, &self.meters.errors);
                            let symbol = Arc::clone(&slot.symbol);
                            self.events.push_back(Event::Error(Error::Level { symbol, error }));
                            Outcome::Skipped
                        }
                    };
                    if slot.exchange_ns > 0 && received_ns > slot.exchange_ns {
                        #[expect(clippy::cast_precision_loss, reason = "a latency in seconds for a histogram")]
                        self.meters.latency.record((received_ns - slot.exchange_ns) as f64 / 1e9);
                    }
                    match outcome {
                        Outcome::Verified(_) => {
                            tally(&self.stats.checksums_verified, &self.meters.verified);
                        }
                        Outcome::Mismatch { .. } => {
                            tally(&self.stats.checksum_mismatches, &self.meters.mismatches);
                        }
                        Outcome::Unchecked | Outcome::Skipped => bump(&self.stats.unverified_updates),
                    }
                    let state = slot.book.state();
                    match (state, slot.phase) {
                        (State::Invalid(why), phase) => {
                            let started = match phase {
                                Phase::Resyncing { started, .. } => started,
                                _ => now,
                            };
                            self.start_resync(i, ResyncReason::of(why), started);
                        }
                        (State::Valid | State::Unverified, Phase::Resyncing { started, .. }) => {
                            slot.phase = Phase::Live;
                            slot.refusals = 0;
                            let symbol = Arc::clone(&slot.symbol);
                            let took = now.saturating_duration_since(started);
                            tracing::info!(%symbol, ?took, "resync finished");
                            self.events.push_back(Event::ResyncFinished { symbol, took });
                        }
                        (State::Valid | State::Unverified, Phase::Subscribing { .. }) => slot.phase = Phase::Live,
                        _ => {}
                    }
                    let Some(slot) = self.slots[i].as_mut() else { continue };
                    slot.publish(self.stale);
                    if !self.config.book_events {
                        continue;
                    }
                    let bids = u16::try_from(entry.bids().len()).unwrap_or(u16::MAX);
                    let asks = u16::try_from(entry.asks().len()).unwrap_or(u16::MAX);
                    self.events.push_back(Event::Book(BookUpdate {
                        symbol: Arc::clone(&slot.symbol),
                        kind: book.kind,
                        bids,
                        asks,
                        outcome,
                        status: slot.status(self.stale),
                        exchange_time_ns: slot.exchange_ns,
                        received_ns,
                    }));
                }
            }
            Message::Instrument(inst) => {
                bump(&self.stats.ignored);
                for pair in inst.pairs() {
                    let p = Precision { price: pair.price_precision, qty: pair.qty_precision };
                    if self.precisions.get(pair.symbol) != Some(&p) {
                        self.precisions.insert(pair.symbol.into(), p);
                    }
                    let Some(&i) = self.index.get(pair.symbol) else { continue };
                    let Some(slot) = self.slots[i].as_mut() else { continue };
                    slot.book.set_precision(p);
                    if let State::Invalid(Invalid::PrecisionChanged) = slot.book.state()
                        && slot.phase == Phase::Live
                    {
                        self.start_resync(i, ResyncReason::PrecisionChanged, now);
                    }
                }
                if matches!(self.conn, Conn::Instruments { .. }) && inst.kind == Kind::Snapshot {
                    self.conn = Conn::Up;
                    let idle: Vec<usize> = (0..self.slots.len())
                        .filter(|&i| self.slots[i].as_ref().is_some_and(|s| s.phase == Phase::Idle))
                        .collect();
                    self.subscribe(&idle, Some(now));
                }
            }
            Message::Response(r) => {
                bump(&self.stats.ignored);
                if !r.success {
                    let message: Arc<str> = Arc::from(r.error.unwrap_or("request failed without a message"));
                    let ours = r.symbol.and_then(|s| self.index.get(s).copied());
                    match (r.method, ours) {
                        ("subscribe", Some(i)) => {
                            let Some(slot) = self.slots[i].as_mut() else { return };
                            let symbol = Arc::clone(&slot.symbol);
                            tracing::warn!(%symbol, %message, "subscription refused");
                            self.events.push_back(Event::Error(Error::SubscriptionRejected { symbol, message }));
                            // A resubscription refused (say, because the exchange had not yet
                            // processed the unsubscribe before it) is tried again through the
                            // bucket, a few times; a first subscription refused is final for
                            // this connection.
                            if let Phase::Resyncing { reason, started, .. } = slot.phase
                                && slot.refusals < MAX_REFUSALS
                            {
                                slot.refusals += 1;
                                self.start_resync(i, reason, started);
                            } else {
                                slot.phase = Phase::Rejected;
                                slot.publish(self.stale);
                            }
                        }
                        // A resync's unsubscribe of a book the exchange had already dropped: the
                        // subscribe that follows is what matters.
                        ("unsubscribe", _) => tracing::debug!(%message, "unsubscribe refused"),
                        _ => {
                            tracing::warn!(%message, "exchange error");
                            self.events.push_back(Event::Error(Error::Exchange(message)));
                        }
                    }
                }
            }
            _ => bump(&self.stats.ignored),
        }
        if !self.queue.is_empty() {
            self.drive(now);
        }
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

    fn start_resync(&mut self, i: usize, reason: ResyncReason, started: Instant) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        if matches!(slot.phase, Phase::Queued { .. }) {
            return;
        }
        if !matches!(slot.phase, Phase::Resyncing { .. }) {
            bump(&self.stats.resyncs);
            self.meters.resync(reason);
            tracing::info!(symbol = %slot.symbol, reason = reason.as_str(), "resync started");
            self.events.push_back(Event::ResyncStarted { symbol: Arc::clone(&slot.symbol), reason });
        }
        slot.phase = Phase::Queued { reason, started };
        slot.publish(self.stale);
        self.queue.push_back(i);
        self.dirty = true;
    }

    /// Sends the queued resubscriptions the bucket allows now.
    fn drive(&mut self, now: Instant) {
        self.dirty = true;
        self.resync_wake = None;
        if self.conn != Conn::Up {
            return;
        }
        while let Some(&i) = self.queue.front() {
            if !self.bucket.try_take(now, &mut self.rng) {
                self.resync_wake = Some(self.bucket.ready_at(now));
                return;
            }
            self.queue.pop_front();
            let Some(slot) = self.slots[i].as_ref() else { continue };
            let Phase::Queued { reason, started } = slot.phase else { continue };
            let symbol = Arc::clone(&slot.symbol);
            let (unsub, sub) = (self.req(), self.req());
            let depth = self.config.depth;
            self.commands.push_back(Command::Send(book_request("unsubscribe", &[&symbol], depth, unsub)));
            self.commands.push_back(Command::Send(book_request("subscribe", &[&symbol], depth, sub)));
            if let Some(slot) = self.slots[i].as_mut() {
                slot.phase = Phase::Resyncing { reason, started, sent: now };
            }
        }
    }

    fn subscribe(&mut self, slots: &[usize], now: Option<Instant>) {
        self.dirty = true;
        let Some(now) = now else { return };
        let symbols: Vec<Symbol> =
            slots.iter().filter_map(|&i| self.slots[i].as_ref()).map(|s| Arc::clone(&s.symbol)).collect();
        if symbols.is_empty() {
            return;
        }
        let names: Vec<&str> = symbols.iter().map(|s| &**s).collect();
        let req = self.req();
        self.commands.push_back(Command::Send(book_request("subscribe", &names, self.config.depth, req)));
        for &i in slots {
            if let Some(slot) = self.slots[i].as_mut() {
                slot.phase = Phase::Subscribing { sent: now };
            }
        }
    }

    fn req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req - 1
    }
}

/// A v2 book request. Symbols are checked by `check_symbol`, so they need no escaping.
fn book_request(method: &str, symbols: &[&str], depth: Depth, req: u64) -> String {
    let mut s = format!(r#"{{"method":"{method}","params":{{"channel":"book","symbol":["#);
    for (k, sym) in symbols.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(s, "\"{sym}\"");
    }
    let _ = write!(s, r#"],"depth":{}"#, depth.get());
    if method == "subscribe" {
        s.push_str(r#","snapshot":true"#);
    }
    let _ = write!(s, r#"}},"req_id":{req}}}"#);
    s
}
