//! Many exchanges, one handle: [`Books`] holds every book a strategy follows, on every exchange,
//! spread over as many connections as each exchange's limits require.
//!
//! ```text
//! Books ─┬─ Venue::Kraken   ─ shard 0 (Feed: ≤ 100 books) ─┐
//!        │                  ─ shard 1 (Feed)              ├─ one tokio runtime thread (default),
//!        ├─ Venue::Okx      ─ shard 0 (Feed: ≤ 29 books)  │  or one per exchange
//!        └─ ...                                           ─┘
//!   readers: lock-free, one per book, for any thread
//!   events:  every shard's events, tagged with its venue, through one bounded queue
//!   callbacks (optional): a thread of their own reads that queue, so a slow one only loses events
//! ```
//!
//! Each shard is an ordinary [`Feed`] with its own connection and session: a fault on one
//! connection touches only its books. The shards of one exchange share its connection budget
//! ([`Budget`](plumb_feed::Budget), paced by [`Exchange::connect_pacing`]), so that 500 symbols reconnecting
//! after an outage come back inside the exchange's connection limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use plumb_book::Quote;
use plumb_book::publish::{Reader, Status};
use plumb_feed::{
    Binance, BinanceUsdm, Bybit, Coinbase, Counts, Disconnect, Event, Exchange, Feed, FeedBuilder, Kraken, Market, Okx,
    ResyncReason,
};
use tokio::sync::mpsc;

/// An exchange (and market) the manager connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Venue {
    /// Kraken spot (v2).
    Kraken,
    /// Bybit v5, one market.
    Bybit(Market),
    /// OKX v5.
    Okx,
    /// Coinbase Advanced Trade.
    Coinbase,
    /// Binance spot.
    Binance,
    /// Binance USD-M futures.
    BinanceUsdm,
}

impl Venue {
    /// Every venue (Bybit's spot market).
    pub const ALL: [Venue; 6] =
        [Venue::Kraken, Venue::Bybit(Market::Spot), Venue::Okx, Venue::Coinbase, Venue::Binance, Venue::BinanceUsdm];

    /// Its name in logs, metrics and JSON: `kraken`, `bybit` (`bybit-linear`, `bybit-inverse`),
    /// `okx`, `coinbase`, `binance`, `binance-usdm`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Kraken => "kraken",
            Self::Bybit(Market::Spot) => "bybit",
            Self::Bybit(Market::Linear) => "bybit-linear",
            Self::Bybit(Market::Inverse) => "bybit-inverse",
            Self::Okx => "okx",
            Self::Coinbase => "coinbase",
            Self::Binance => "binance",
            Self::BinanceUsdm => "binance-usdm",
        }
    }

    /// The venue of a name given by [`Venue::name`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "kraken" => Self::Kraken,
            "bybit" | "bybit-spot" => Self::Bybit(Market::Spot),
            "bybit-linear" => Self::Bybit(Market::Linear),
            "bybit-inverse" => Self::Bybit(Market::Inverse),
            "okx" => Self::Okx,
            "coinbase" => Self::Coinbase,
            "binance" => Self::Binance,
            "binance-usdm" => Self::BinanceUsdm,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Venue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for plumb_feed::Kraken {}
    impl Sealed for plumb_feed::Bybit {}
    impl Sealed for plumb_feed::Okx {}
    impl Sealed for plumb_feed::Coinbase {}
    impl Sealed for plumb_feed::Binance {}
    impl Sealed for plumb_feed::BinanceUsdm {}
}

/// The venue an exchange type connects to. Sealed: implemented for every exchange of
/// `plumb-feed`.
pub trait Listed: Exchange + sealed::Sealed {
    /// Its venue.
    fn venue(&self) -> Venue;
}

impl Listed for Kraken {
    fn venue(&self) -> Venue {
        Venue::Kraken
    }
}
impl Listed for Bybit {
    fn venue(&self) -> Venue {
        Venue::Bybit(self.market)
    }
}
impl Listed for Okx {
    fn venue(&self) -> Venue {
        Venue::Okx
    }
}
impl Listed for Coinbase {
    fn venue(&self) -> Venue {
        Venue::Coinbase
    }
}
impl Listed for Binance {
    fn venue(&self) -> Venue {
        Venue::Binance
    }
}
impl Listed for BinanceUsdm {
    fn venue(&self) -> Venue {
        Venue::BinanceUsdm
    }
}

/// What can go wrong managing books.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A feed's error: an invalid URL, symbol or depth, a duplicate.
    Feed(plumb_feed::Error),
    /// The venue is not in the manager (never added, or closed).
    NotInManager(Venue),
    /// The venue was added twice.
    DuplicateVenue(Venue),
    /// A thread or runtime could not be started.
    Thread(Arc<str>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Feed(e) => e.fmt(f),
            Self::NotInManager(v) => write!(f, "{v} is not in the manager"),
            Self::DuplicateVenue(v) => write!(f, "{v} was added twice"),
            Self::Thread(e) => write!(f, "could not start a thread: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Feed(e) => Some(e),
            _ => None,
        }
    }
}

impl From<plumb_feed::Error> for Error {
    fn from(e: plumb_feed::Error) -> Self {
        Self::Feed(e)
    }
}

/// The manager's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One event of one venue's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueEvent {
    /// The venue.
    pub venue: Venue,
    /// Which of the venue's connections (0 for the first).
    pub shard: usize,
    /// What happened.
    pub event: Event,
}

/// How many threads run the feeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Threads {
    /// One thread (a single-threaded tokio runtime) for every connection of every exchange: the
    /// default. A frame costs a few hundred nanoseconds, so one core keeps up with five venues'
    /// public books.
    #[default]
    One,
    /// One thread per exchange, so that one exchange's burst (a Coinbase snapshot of megabytes)
    /// never delays another's books.
    PerExchange,
}

type Callback<T> = Box<dyn FnMut(&T) + Send>;

/// Callbacks for applications that prefer them to the event stream. They run on a thread of
/// their own, never on a feed's: a slow callback delays only the callbacks after it (and, once
/// the event queue is full, loses events, counted by [`Event::Lagged`]), never a book.
#[derive(Default)]
pub struct Callbacks {
    book: Option<Callback<(Venue, plumb_feed::BookUpdate)>>,
    resync: Option<Callback<(Venue, Arc<str>, ResyncReason)>>,
    connected: Option<Callback<Venue>>,
    disconnected: Option<Callback<(Venue, Disconnect)>>,
    error: Option<Callback<(Venue, plumb_feed::Error)>>,
    any: Option<Callback<VenueEvent>>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("book", &self.book.is_some())
            .field("resync", &self.resync.is_some())
            .field("connected", &self.connected.is_some())
            .field("disconnected", &self.disconnected.is_some())
            .field("error", &self.error.is_some())
            .field("any", &self.any.is_some())
            .finish()
    }
}

impl Callbacks {
    fn is_empty(&self) -> bool {
        self.book.is_none()
            && self.resync.is_none()
            && self.connected.is_none()
            && self.disconnected.is_none()
            && self.error.is_none()
            && self.any.is_none()
    }

    fn call(&mut self, e: &VenueEvent) {
        let venue = e.venue;
        match &e.event {
            Event::Book(b) => {
                if let Some(f) = self.book.as_mut() {
                    f(&(venue, b.clone()));
                }
            }
            Event::ResyncStarted { symbol, reason } => {
                if let Some(f) = self.resync.as_mut() {
                    f(&(venue, Arc::clone(symbol), *reason));
                }
            }
            Event::Connected => {
                if let Some(f) = self.connected.as_mut() {
                    f(&venue);
                }
            }
            Event::Disconnected { reason } => {
                if let Some(f) = self.disconnected.as_mut() {
                    f(&(venue, reason.clone()));
                }
            }
            Event::Error(err) => {
                if let Some(f) = self.error.as_mut() {
                    f(&(venue, err.clone()));
                }
            }
            _ => {}
        }
        if let Some(f) = self.any.as_mut() {
            f(e);
        }
    }
}

/// A venue's feeds before they start: its settings and symbols, type-erased.
trait Plan: Send {
    fn venue(&self) -> Venue;
    /// The symbols given at build time, spread over connections.
    fn shards(&self) -> Result<Vec<Built>>;
    /// One more connection, for symbols that no running connection has room for.
    fn shard(&self, symbols: &[&str]) -> Result<Built>;
}

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;
type Built = (Feed, Driver);

struct Template<E: Listed> {
    builder: FeedBuilder<E>,
}

impl<E: Listed> Plan for Template<E> {
    fn venue(&self) -> Venue {
        self.builder.exchange().venue()
    }

    fn shards(&self) -> Result<Vec<Built>> {
        let mut out = Vec::new();
        for b in self.builder.clone().split()? {
            let (feed, run) = b.build()?;
            out.push((feed, Box::pin(run) as Driver));
        }
        Ok(out)
    }

    fn shard(&self, symbols: &[&str]) -> Result<Built> {
        let mut shards = self.builder.clone().set_symbols(symbols.iter().copied()).split()?;
        let b = shards.pop().ok_or(Error::Feed(plumb_feed::Error::Closed))?;
        let (feed, run) = b.build()?;
        Ok((feed, Box::pin(run)))
    }
}

/// Builds [`Books`]: any mix of exchanges and symbols.
///
/// ```no_run
/// use plumb::{Books, Venue};
///
/// let books = Books::builder()
///     .kraken(["BTC/USD", "ETH/USD"])
///     .okx(["BTC-USDT"])
///     .binance(["BTCUSDT"])
///     .start()?;
/// let btc = books.reader(Venue::Kraken, "BTC/USD").expect("added above");
/// # Ok::<(), plumb::manager::Error>(())
/// ```
#[derive(Default)]
pub struct BooksBuilder {
    plans: Vec<Box<dyn Plan>>,
    threads: Threads,
    event_capacity: Option<usize>,
    callbacks: Callbacks,
    instruments: Vec<(String, Vec<(Venue, String)>)>,
}

impl std::fmt::Debug for BooksBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BooksBuilder")
            .field("venues", &self.plans.iter().map(|p| p.venue()).collect::<Vec<_>>())
            .field("threads", &self.threads)
            .field("callbacks", &self.callbacks)
            .finish_non_exhaustive()
    }
}

impl BooksBuilder {
    /// An exchange with every setting of its feed (URL, depth, timeouts, tap, books per
    /// connection), the symbols included. Its symbols are spread over connections by
    /// [`FeedBuilder::split`]; a raw-frame tap set on it sees every connection's frames.
    #[must_use]
    pub fn feed<E: Listed>(mut self, feed: FeedBuilder<E>) -> Self {
        // Budgets fixed now, so that connections added later share them with the first ones.
        self.plans.push(Box::new(Template { builder: feed.share_budgets() }));
        self
    }

    /// Kraken spot books on the public endpoint.
    #[must_use]
    pub fn kraken<S: Into<String>>(self, symbols: impl IntoIterator<Item = S>) -> Self {
        self.feed(FeedBuilder::kraken().symbols(symbols))
    }

    /// Bybit spot books on the public endpoint.
    #[must_use]
    pub fn bybit<S: Into<String>>(self, symbols: impl IntoIterator<Item = S>) -> Self {
        self.feed(FeedBuilder::bybit(Market::Spot).symbols(symbols))
    }

    /// OKX books on the public endpoint.
    #[must_use]
    pub fn okx<S: Into<String>>(self, symbols: impl IntoIterator<Item = S>) -> Self {
        self.feed(FeedBuilder::okx().symbols(symbols))
    }

    /// Coinbase Advanced Trade books on the public endpoint.
    #[must_use]
    pub fn coinbase<S: Into<String>>(self, symbols: impl IntoIterator<Item = S>) -> Self {
        self.feed(FeedBuilder::coinbase().symbols(symbols))
    }

    /// Binance spot books on the public endpoint.
    #[must_use]
    pub fn binance<S: Into<String>>(self, symbols: impl IntoIterator<Item = S>) -> Self {
        self.feed(FeedBuilder::binance().symbols(symbols))
    }

    /// How many threads run the connections (default [`Threads::One`]).
    #[must_use]
    pub fn threads(mut self, threads: Threads) -> Self {
        self.threads = threads;
        self
    }

    /// Capacity of the merged event queue (default 4096 per venue).
    #[must_use]
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = Some(n.max(1));
        self
    }

    /// Called with every applied book message (turns the manager's event stream into callbacks:
    /// see [`Callbacks`]).
    #[must_use]
    pub fn on_book_update(mut self, f: impl FnMut(Venue, &plumb_feed::BookUpdate) + Send + 'static) -> Self {
        let mut f = f;
        self.callbacks.book = Some(Box::new(move |(v, b)| f(*v, b)));
        self
    }

    /// Called when a book starts resyncing.
    #[must_use]
    pub fn on_resync(mut self, f: impl FnMut(Venue, &str, ResyncReason) + Send + 'static) -> Self {
        let mut f = f;
        self.callbacks.resync = Some(Box::new(move |(v, s, r)| f(*v, s, *r)));
        self
    }

    /// Called when a connection of a venue is up.
    #[must_use]
    pub fn on_connected(mut self, f: impl FnMut(Venue) + Send + 'static) -> Self {
        let mut f = f;
        self.callbacks.connected = Some(Box::new(move |v| f(*v)));
        self
    }

    /// Called when a connection of a venue ends.
    #[must_use]
    pub fn on_disconnected(mut self, f: impl FnMut(Venue, &Disconnect) + Send + 'static) -> Self {
        let mut f = f;
        self.callbacks.disconnected = Some(Box::new(move |(v, d)| f(*v, d)));
        self
    }

    /// Called with each error a feed handled on its own.
    #[must_use]
    pub fn on_error(mut self, f: impl FnMut(Venue, &plumb_feed::Error) + Send + 'static) -> Self {
        let mut f = f;
        self.callbacks.error = Some(Box::new(move |(v, e)| f(*v, e)));
        self
    }

    /// Called with every event, after the specific callbacks.
    #[must_use]
    pub fn on_event(mut self, f: impl FnMut(&VenueEvent) + Send + 'static) -> Self {
        self.callbacks.any = Some(Box::new(f));
        self
    }

    /// Names one instrument across venues for [`Books::consolidated`] (`"BTC"` as Kraken
    /// `BTC/USD`, Bybit `BTCUSDT`, ...). Without it, [`builtin_instruments`] applies.
    #[must_use]
    pub fn instrument<S: Into<String>>(mut self, name: &str, legs: impl IntoIterator<Item = (Venue, S)>) -> Self {
        let legs = legs.into_iter().map(|(v, s)| (v, s.into())).collect();
        self.instruments.retain(|(n, _)| n != name);
        self.instruments.push((name.to_owned(), legs));
        self
    }

    /// Connects every venue and returns the handle at once (books come up in the background).
    ///
    /// # Errors
    ///
    /// An invalid URL, symbol or depth, a venue added twice, or a thread that could not start.
    pub fn start(self) -> Result<Books> {
        let mut seen = Vec::new();
        for p in &self.plans {
            if seen.contains(&p.venue()) {
                return Err(Error::DuplicateVenue(p.venue()));
            }
            seen.push(p.venue());
        }
        let capacity = self.event_capacity.unwrap_or(4096 * self.plans.len().max(1));
        let (tx, rx) = mpsc::channel(capacity);
        let mut runners: Vec<Runner> = Vec::new();
        let mut venues = Vec::new();
        for plan in self.plans {
            let runner = match self.threads {
                Threads::One if !runners.is_empty() => 0,
                _ => {
                    runners.push(Runner::start(plan.venue())?);
                    runners.len() - 1
                }
            };
            let mut state = VenueState { venue: plan.venue(), plan, shards: Vec::new(), runner };
            for (feed, run) in state.plan.shards()? {
                let shard = Shard::spawn(&runners[runner], state.venue, state.shards.len(), feed, run, &tx);
                state.shards.push(shard);
            }
            venues.push(state);
        }
        let mut instruments = if self.instruments.is_empty() { builtin_instruments() } else { Vec::new() };
        instruments.extend(self.instruments);
        let (events, callbacks) = if self.callbacks.is_empty() {
            (Some(BookEvents { rx }), None)
        } else {
            let mut cb = self.callbacks;
            let mut rx = rx;
            let thread = std::thread::Builder::new()
                .name("plumb-callbacks".to_owned())
                .spawn(move || {
                    while let Some(e) = rx.blocking_recv() {
                        cb.call(&e);
                    }
                })
                .map_err(|e| Error::Thread(Arc::from(e.to_string())))?;
            (None, Some(thread))
        };
        Ok(Books { venues, runners, tx: Some(tx), events, callbacks, instruments })
    }
}

/// A thread running a single-threaded tokio runtime until told to stop.
struct Runner {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Runner {
    fn start(venue: Venue) -> Result<Self> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("plumb-{venue}"))
            .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => {
                    let _ = handle_tx.send(Ok(rt.handle().clone()));
                    let _ = rt.block_on(stopped);
                    // Dropping the runtime ends every task left (their sockets close).
                }
                Err(e) => {
                    let _ = handle_tx.send(Err(e.to_string()));
                }
            })
            .map_err(|e| Error::Thread(Arc::from(e.to_string())))?;
        let handle = handle_rx
            .recv()
            .map_err(|e| Error::Thread(Arc::from(e.to_string())))?
            .map_err(|e| Error::Thread(Arc::from(e)))?;
        Ok(Self { handle, stop: Some(stop), thread: Some(thread) })
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection of a venue: its feed, and a signal that its driver has ended.
struct Shard {
    feed: Feed,
    done: std::sync::mpsc::Receiver<()>,
}

impl Shard {
    fn spawn(
        runner: &Runner,
        venue: Venue,
        index: usize,
        mut feed: Feed,
        run: Driver,
        tx: &mpsc::Sender<VenueEvent>,
    ) -> Self {
        let (done_tx, done) = std::sync::mpsc::sync_channel::<()>(1);
        runner.handle.spawn(async move {
            run.await;
            // The sender drops here (or with the task, if the runtime ends first).
            drop(done_tx);
        });
        if let Some(mut events) = feed.events() {
            let tx = tx.clone();
            runner.handle.spawn(async move {
                let mut lagged = 0u64;
                while let Some(event) = events.recv().await {
                    forward(&tx, &mut lagged, VenueEvent { venue, shard: index, event });
                }
            });
        }
        Self { feed, done }
    }

    /// Closes the connection and waits (up to a few seconds) for its driver to end.
    fn close(self) {
        close_all_of(vec![self]);
    }
}

/// Closes every connection at once, then waits for their drivers to end: five seconds in all,
/// not per connection.
#[expect(clippy::disallowed_methods, reason = "a bound on how long the application's close waits, not protocol time")]
fn close_all_of(shards: Vec<Shard>) {
    let mut waiting = Vec::with_capacity(shards.len());
    for Shard { feed, done } in shards {
        feed.close();
        waiting.push(done);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for done in waiting {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = done.recv_timeout(left);
    }
}

/// Puts one event into the merged queue without ever waiting: a full queue drops it and counts
/// it, and the count goes out first once there is room.
fn forward(tx: &mpsc::Sender<VenueEvent>, lagged: &mut u64, event: VenueEvent) {
    use mpsc::error::TrySendError;
    if *lagged > 0 {
        let note = VenueEvent { venue: event.venue, shard: event.shard, event: Event::Lagged { dropped: *lagged } };
        match tx.try_send(note) {
            Ok(()) => *lagged = 0,
            Err(TrySendError::Full(_)) => {
                *lagged += 1;
                return;
            }
            Err(TrySendError::Closed(_)) => return,
        }
    }
    if let Err(TrySendError::Full(_)) = tx.try_send(event) {
        *lagged += 1;
    }
}

struct VenueState {
    venue: Venue,
    plan: Box<dyn Plan>,
    shards: Vec<Shard>,
    runner: usize,
}

/// The merged event stream of every venue, in order per connection.
#[derive(Debug)]
pub struct BookEvents {
    rx: mpsc::Receiver<VenueEvent>,
}

impl BookEvents {
    /// The next event, or `None` once every venue is closed.
    pub async fn recv(&mut self) -> Option<VenueEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<VenueEvent> {
        self.rx.try_recv().ok()
    }

    /// The next event, blocking the thread (not inside an async task).
    pub fn blocking_recv(&mut self) -> Option<VenueEvent> {
        self.rx.blocking_recv()
    }
}

/// Every book a strategy follows, on every exchange: lock-free readers, one merged event stream
/// (or callbacks), and control per exchange. Dropping it closes everything, as
/// [`Books::close_all`] does.
pub struct Books {
    venues: Vec<VenueState>,
    runners: Vec<Runner>,
    tx: Option<mpsc::Sender<VenueEvent>>,
    events: Option<BookEvents>,
    callbacks: Option<std::thread::JoinHandle<()>>,
    instruments: Vec<(String, Vec<(Venue, String)>)>,
}

impl std::fmt::Debug for Books {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for v in &self.venues {
            m.entry(&v.venue.name(), &v.shards.len());
        }
        m.finish()
    }
}

impl Books {
    /// A builder.
    #[must_use]
    pub fn builder() -> BooksBuilder {
        BooksBuilder::default()
    }

    fn venue(&self, venue: Venue) -> Result<&VenueState> {
        self.venues.iter().find(|v| v.venue == venue).ok_or(Error::NotInManager(venue))
    }

    /// The venues in the manager.
    pub fn venues(&self) -> impl Iterator<Item = Venue> + '_ {
        self.venues.iter().map(|v| v.venue)
    }

    /// The symbols of a venue (empty if it is not in the manager).
    pub fn symbols(&self, venue: Venue) -> impl Iterator<Item = &str> + '_ {
        self.venues
            .iter()
            .filter(move |v| v.venue == venue)
            .flat_map(|v| v.shards.iter().flat_map(|s| s.feed.symbols()))
    }

    /// The reader of one book: lock-free, cheap to clone, for any thread.
    #[must_use]
    pub fn reader(&self, venue: Venue, symbol: &str) -> Option<Reader> {
        self.venue(venue).ok()?.shards.iter().find_map(|s| s.feed.reader(symbol))
    }

    /// The merged event stream (each event tagged with its venue). It can be taken once, and
    /// only when no callback was set (callbacks consume it).
    pub fn events(&mut self) -> Option<BookEvents> {
        self.events.take()
    }

    /// Adds a symbol to a venue while running: to the first of its connections with room, or to
    /// a new connection (paced by the venue's connection budget).
    ///
    /// # Errors
    ///
    /// [`Error::NotInManager`], or the feed's: an invalid symbol, a duplicate.
    pub fn add(&mut self, venue: Venue, symbol: &str) -> Result<Reader> {
        let tx = self.tx.clone().ok_or(Error::Feed(plumb_feed::Error::Closed))?;
        let state = self.venues.iter_mut().find(|v| v.venue == venue).ok_or(Error::NotInManager(venue))?;
        if let Some(s) = state.shards.iter().find_map(|s| s.feed.symbols().find(|s| *s == symbol)) {
            return Err(Error::Feed(plumb_feed::Error::DuplicateSymbol(Arc::from(s))));
        }
        for shard in &mut state.shards {
            match shard.feed.add_symbol(symbol) {
                Ok(r) => return Ok(r),
                Err(plumb_feed::Error::TooManySymbols { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (feed, run) = state.plan.shard(&[symbol])?;
        let reader = feed.reader(symbol).ok_or(Error::Feed(plumb_feed::Error::Closed))?;
        let index = state.shards.len();
        let shard = Shard::spawn(&self.runners[state.runner], venue, index, feed, run, &tx);
        state.shards.push(shard);
        Ok(reader)
    }

    /// Removes a symbol: it is unsubscribed, and a connection left with no book is closed.
    /// Returns whether it was there.
    pub fn remove(&mut self, venue: Venue, symbol: &str) -> bool {
        let Some(state) = self.venues.iter_mut().find(|v| v.venue == venue) else { return false };
        let Some(i) = state.shards.iter_mut().position(|s| s.feed.remove_symbol(symbol)) else { return false };
        if state.shards[i].feed.symbols().next().is_none() {
            // Shard numbers stay as they were: an emptied connection is closed, not renumbered
            // away, unless it is the last.
            if i + 1 == state.shards.len() {
                let shard = state.shards.remove(i);
                shard.close();
            }
        }
        true
    }

    /// Whether every connection of the venue is open right now (`false` if it is not in the
    /// manager).
    #[must_use]
    pub fn is_open(&self, venue: Venue) -> bool {
        self.venue(venue).is_ok_and(|v| v.shards.iter().all(|s| s.feed.is_open() || s.feed.symbols().next().is_none()))
    }

    /// The venue's connections and how many are open right now.
    #[must_use]
    pub fn connections(&self, venue: Venue) -> (usize, usize) {
        self.venue(venue).map_or((0, 0), |v| (v.shards.iter().filter(|s| s.feed.is_open()).count(), v.shards.len()))
    }

    /// When the book last changed, in Unix nanoseconds (receive time), if ever.
    #[must_use]
    pub fn last_update(&self, venue: Venue, symbol: &str) -> Option<u64> {
        let t = self.reader(venue, symbol)?.top().header.received_ns;
        (t != 0).then_some(t)
    }

    /// Whether every book of every venue reads valid right now.
    #[must_use]
    pub fn all_valid(&self) -> bool {
        self.venues.iter().all(|v| v.shards.iter().all(|s| s.feed.all_valid()))
    }

    /// Running totals of a venue, summed over its connections.
    #[must_use]
    pub fn counts(&self, venue: Venue) -> Counts {
        let mut total = Counts::default();
        if let Ok(v) = self.venue(venue) {
            for s in &v.shards {
                total += s.feed.counts();
            }
        }
        total
    }

    /// Drops every connection of the venue and connects again (through its connection budget),
    /// keeping every book and reader.
    ///
    /// # Errors
    ///
    /// [`Error::NotInManager`].
    pub fn restart(&self, venue: Venue) -> Result<()> {
        for s in &self.venue(venue)?.shards {
            s.feed.reconnect();
        }
        Ok(())
    }

    /// Closes every connection of the venue (waiting for each to end) and removes it. Its
    /// readers keep the last books, marked stale.
    ///
    /// # Errors
    ///
    /// [`Error::NotInManager`].
    pub fn close(&mut self, venue: Venue) -> Result<()> {
        let i = self.venues.iter().position(|v| v.venue == venue).ok_or(Error::NotInManager(venue))?;
        let state = self.venues.remove(i);
        close_all_of(state.shards);
        Ok(())
    }

    /// Closes every connection of every venue, stops the manager's threads and the callbacks'
    /// thread, and waits for them: nothing is left running.
    pub fn close_all(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        close_all_of(std::mem::take(&mut self.venues).into_iter().flat_map(|v| v.shards).collect());
        for r in &mut self.runners {
            r.stop();
        }
        self.runners.clear();
        // The last sender: the callbacks' thread sees the end of the stream.
        self.tx = None;
        if let Some(t) = self.callbacks.take() {
            let _ = t.join();
        }
    }

    /// One instrument across venues (by the builder's [`BooksBuilder::instrument`] names, or the
    /// [`builtin_instruments`]): its venues' readers, for the best bid and ask across them.
    /// `None` when no venue of the manager has it.
    #[must_use]
    pub fn consolidated(&self, instrument: &str) -> Option<Consolidated> {
        let (_, legs) = self.instruments.iter().find(|(n, _)| n == instrument)?;
        let legs: Vec<Leg> = legs
            .iter()
            .filter_map(|(venue, symbol)| {
                let reader = self.reader(*venue, symbol)?;
                Some(Leg { venue: *venue, symbol: Arc::from(symbol.as_str()), reader })
            })
            .collect();
        (!legs.is_empty()).then(|| Consolidated { instrument: Arc::from(instrument), legs })
    }
}

impl Drop for Books {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The small built-in table of instruments across venues: `BTC`, `ETH` and `SOL` on Kraken
/// (`BTC/USD`), Bybit and Binance (`BTCUSDT`, spot and USD-M), OKX (`BTC-USDT`) and Coinbase
/// (`BTC-USD`). USD and USDT quotes are put side by side as the same instrument: a strategy that
/// minds the difference names its own ([`BooksBuilder::instrument`]).
#[must_use]
pub fn builtin_instruments() -> Vec<(String, Vec<(Venue, String)>)> {
    ["BTC", "ETH", "SOL"]
        .iter()
        .map(|b| {
            let legs = vec![
                (Venue::Kraken, format!("{b}/USD")),
                (Venue::Bybit(Market::Spot), format!("{b}USDT")),
                (Venue::Okx, format!("{b}-USDT")),
                (Venue::Coinbase, format!("{b}-USD")),
                (Venue::Binance, format!("{b}USDT")),
                (Venue::BinanceUsdm, format!("{b}USDT")),
            ];
            ((*b).to_owned(), legs)
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Leg {
    venue: Venue,
    symbol: Arc<str>,
    reader: Reader,
}

/// One instrument's books across venues. Reading it is lock-free and allocates nothing.
#[derive(Debug, Clone)]
pub struct Consolidated {
    instrument: Arc<str>,
    legs: Vec<Leg>,
}

/// One venue's top of book for a consolidated instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VenueQuote<'a> {
    /// The venue.
    pub venue: Venue,
    /// Its symbol for the instrument.
    pub symbol: &'a str,
    /// Its best bid.
    pub bid: Option<Quote>,
    /// Its best ask.
    pub ask: Option<Quote>,
    /// Its book's status.
    pub status: Status,
    /// Since its last message was received (`None`: never).
    pub age: Option<Duration>,
    /// Whether it counts toward the best price: valid, and younger than the age asked for.
    pub usable: bool,
}

/// The best bid and ask of one instrument across venues, each with where it is and how old.
/// Only quotes from books that are valid and fresh enough take part: a stale or resyncing venue
/// never sets the best price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Best {
    /// The highest bid, its venue and age.
    pub bid: Option<(Venue, Quote, Duration)>,
    /// The lowest ask, its venue and age.
    pub ask: Option<(Venue, Quote, Duration)>,
    /// Venues that took part (valid and fresh).
    pub usable: usize,
    /// Venues of the instrument.
    pub venues: usize,
}

impl Consolidated {
    /// The instrument's name.
    #[must_use]
    pub fn instrument(&self) -> &str {
        &self.instrument
    }

    /// Each venue's top of book right now (by the system clock), usable if valid and no older
    /// than `max_age`.
    pub fn quotes(&self, max_age: Duration) -> impl Iterator<Item = VenueQuote<'_>> + '_ {
        let now = unix_now_ns();
        self.legs.iter().map(move |leg| {
            let top = leg.reader.top();
            let h = top.header;
            let age = (h.received_ns != 0).then(|| Duration::from_nanos(now.saturating_sub(h.received_ns)));
            VenueQuote {
                venue: leg.venue,
                symbol: &leg.symbol,
                bid: top.bid,
                ask: top.ask,
                status: h.status,
                age,
                usable: h.is_valid_at(now, max_age),
            }
        })
    }

    /// The best bid and ask across the venues whose books are valid and no older than
    /// `max_age`.
    #[must_use]
    pub fn best(&self, max_age: Duration) -> Best {
        best_of(self.quotes(max_age))
    }
}

/// The best bid and ask among the usable quotes (the first venue wins a tie).
fn best_of<'a>(quotes: impl Iterator<Item = VenueQuote<'a>>) -> Best {
    let mut best = Best::default();
    for q in quotes {
        best.venues += 1;
        if !q.usable {
            continue;
        }
        best.usable += 1;
        let age = q.age.unwrap_or_default();
        if let Some(bid) = q.bid
            && best.bid.is_none_or(|(_, b, _)| bid.price > b.price)
        {
            best.bid = Some((q.venue, bid, age));
        }
        if let Some(ask) = q.ask
            && best.ask.is_none_or(|(_, a, _)| ask.price < a.price)
        {
            best.ask = Some((q.venue, ask, age));
        }
    }
    best
}

/// Nanoseconds since the Unix epoch (the clock the feeds stamp `received_ns` with).
#[expect(clippy::disallowed_methods, reason = "a quote's age is measured on the clock the feeds stamp with")]
fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use plumb_book::Decimal64;
    use proptest::prelude::*;

    use super::*;

    fn quote(m: i64, scale: u8) -> Quote {
        Quote { price: Decimal64 { mantissa: m, scale }, qty: Decimal64 { mantissa: 1, scale: 0 } }
    }

    proptest! {
        /// The best bid is the highest bid of a usable quote, the best ask the lowest ask, whatever
        /// the scales; unusable quotes never take part (checked against a plain scan in rationals).
        #[test]
        fn best_is_the_extreme_of_usable_quotes(
            legs in proptest::collection::vec((any::<bool>(), proptest::option::of((1i64..1_000_000, 0u8..6)), proptest::option::of((1i64..1_000_000, 0u8..6))), 0..7)
        ) {
            let quotes: Vec<VenueQuote<'_>> = legs.iter().enumerate().map(|(i, (usable, bid, ask))| VenueQuote {
                venue: Venue::ALL[i % Venue::ALL.len()],
                symbol: "X",
                bid: bid.map(|(m, s)| quote(m, s)),
                ask: ask.map(|(m, s)| quote(m, s)),
                status: if *usable { Status::Valid } else { Status::Stale },
                age: Some(Duration::from_millis(i as u64)),
                usable: *usable,
            }).collect();
            let best = best_of(quotes.iter().copied());
            prop_assert_eq!(best.venues, legs.len());
            prop_assert_eq!(best.usable, legs.iter().filter(|l| l.0).count());
            // The reference: each price as an exact fraction m / 10^s, compared by cross-multiplying.
            let value = |q: &Quote| (i128::from(q.price.mantissa), 10i128.pow(u32::from(q.price.scale)));
            let less = |a: (i128, i128), b: (i128, i128)| a.0 * b.1 < b.0 * a.1;
            let mut want_bid: Option<(i128, i128)> = None;
            let mut want_ask: Option<(i128, i128)> = None;
            for q in quotes.iter().filter(|q| q.usable) {
                if let Some(b) = &q.bid && want_bid.is_none_or(|w| less(w, value(b))) {
                    want_bid = Some(value(b));
                }
                if let Some(a) = &q.ask && want_ask.is_none_or(|w| less(value(a), w)) {
                    want_ask = Some(value(a));
                }
            }
            let got_bid = best.bid.map(|(_, q, _)| value(&q));
            let got_ask = best.ask.map(|(_, q, _)| value(&q));
            let same = |a: Option<(i128, i128)>, b: Option<(i128, i128)>| match (a, b) {
                (Some(x), Some(y)) => x.0 * y.1 == y.0 * x.1,
                (None, None) => true,
                _ => false,
            };
            prop_assert!(same(got_bid, want_bid), "bid {:?} want {:?}", got_bid, want_bid);
            prop_assert!(same(got_ask, want_ask), "ask {:?} want {:?}", got_ask, want_ask);
            // And the venue named is one whose usable quote has that price.
            if let Some((v, q, _)) = best.bid {
                prop_assert!(quotes.iter().any(|x| x.usable && x.venue == v && x.bid == Some(q)));
            }
        }
    }

    #[test]
    fn venue_names_round_trip() {
        for v in Venue::ALL.into_iter().chain([Venue::Bybit(Market::Linear), Venue::Bybit(Market::Inverse)]) {
            assert_eq!(Venue::from_name(v.name()), Some(v));
        }
        assert_eq!(Venue::from_name("kraken-futures"), None);
    }
}
