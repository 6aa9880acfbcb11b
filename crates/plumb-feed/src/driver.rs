//! The tokio driver: the only code that touches tokio-tungstenite, sockets and clocks.
//!
//! It makes no protocol decisions. One loop `select!`s over the socket, the session's next
//! deadline and the application's control messages; it feeds the session what happened, sends
//! what the session asks for, and forwards the session's events. Around it: connect (`TCP_NODELAY`,
//! rustls with an explicit crypto provider, a 16 KiB read buffer, bounded frame size) and
//! reconnect with exponential backoff and jitter.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use plumb_book::Depth;
use plumb_book::publish::{Reader, channel};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result, Symbol};
use crate::exchange::{Bybit, Exchange, Kraken, Market, Okx};
use crate::pacing::{Backoff, Budget, Jitter, Pacing};
use crate::session::{Command, Config, Counts, Disconnect, Event, Session, Stats, check_symbol};

/// A raw-frame tap: called with every received frame and its receive time (Unix nanoseconds)
/// before the session processes it, and with every REST snapshot the feed fetched, as one capture
/// line `GET <url>\t<body>` (the body exactly as received). It runs on the feed's thread: keep it
/// short. Shared (an `Arc`), so that the connections of one exchange can hand their frames to one
/// tap.
pub type Tap = Arc<dyn Fn(&[u8], u64) + Send + Sync>;

/// The one place that reads clocks: the session's monotonic `now` (tokio's clock, so that tests
/// with paused time control it) and the wall-clock receive time handed to readers.
#[expect(clippy::disallowed_methods, reason = "the driver is the only code that reads clocks")]
fn clock() -> (Instant, u64) {
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0));
    (tokio::time::Instant::now().into_std(), wall)
}

/// Builds a [`Feed`] for exchange `E`. Every setting has a default (the exchange's own, from
/// [`Exchange::config`]); only the symbols are required. A clone is the same settings (and the
/// same tap and connection budget), for another connection.
#[derive(Clone)]
pub struct FeedBuilder<E: Exchange = Kraken> {
    exchange: E,
    url: String,
    symbols: Vec<String>,
    config: Config,
    backoff: Backoff,
    max_frame: usize,
    event_capacity: usize,
    connect_timeout: Duration,
    tap: Option<Tap>,
    budget: Budget,
}

impl<E: Exchange> std::fmt::Debug for FeedBuilder<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedBuilder")
            .field("exchange", &self.exchange)
            .field("url", &self.url)
            .field("symbols", &self.symbols)
            .field("config", &self.config)
            .field("backoff", &self.backoff)
            .field("max_frame", &self.max_frame)
            .field("event_capacity", &self.event_capacity)
            .field("connect_timeout", &self.connect_timeout)
            .field("tap", &self.tap.is_some())
            .field("connect_pacing", &self.budget.pacing())
            .finish()
    }
}

impl FeedBuilder<Kraken> {
    /// A Kraken spot v2 feed on the public endpoint.
    #[must_use]
    pub fn kraken() -> Self {
        Self::new(Kraken)
    }
}

impl FeedBuilder<Bybit> {
    /// A Bybit v5 feed on the public endpoint of `market` (depth 50 unless set).
    #[must_use]
    pub fn bybit(market: Market) -> Self {
        Self::new(Bybit::new(market))
    }
}

impl FeedBuilder<Okx> {
    /// An OKX v5 feed on the public endpoint (`books`, depth 400, unless the depth picks `books5`
    /// with 5 or `bbo-tbt` with 1).
    #[must_use]
    pub fn okx() -> Self {
        Self::new(Okx)
    }
}

impl FeedBuilder<crate::Binance> {
    /// A Binance spot feed (`<symbol>@depth@100ms`, books bridged from `GET /api/v3/depth`).
    #[must_use]
    pub fn binance() -> Self {
        Self::new(crate::Binance)
    }
}

impl FeedBuilder<crate::BinanceUsdm> {
    /// A Binance USD-M futures feed (`<symbol>@depth@100ms` on the public route, books bridged
    /// from `GET /fapi/v1/depth`).
    #[must_use]
    pub fn binance_usdm() -> Self {
        Self::new(crate::BinanceUsdm)
    }
}

impl FeedBuilder<crate::Coinbase> {
    /// A Coinbase Advanced Trade feed (`level2` with `heartbeats`) on the public market-data
    /// endpoint, with a frame limit that takes a whole-book snapshot.
    #[must_use]
    pub fn coinbase() -> Self {
        Self::new(crate::Coinbase)
    }
}

impl<E: Exchange> FeedBuilder<E> {
    /// A feed for `exchange` on its public endpoint, with the exchange's default settings.
    #[must_use]
    pub fn new(exchange: E) -> Self {
        Self {
            budget: Budget::new(exchange.connect_pacing()),
            config: exchange.config(),
            url: exchange.url(),
            exchange,
            symbols: Vec::new(),
            backoff: Backoff::default(),
            max_frame: <E::Dialect as plumb_wire::Dialect>::MAX_FRAME_LEN,
            event_capacity: 4096,
            connect_timeout: Duration::from_secs(10),
            tap: None,
        }
    }

    /// Another endpoint (`ws://` or `wss://`), such as a simulated exchange.
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Where REST book snapshots are fetched from (`http://` or `https://`, no path), on exchanges
    /// that bootstrap a book by REST when the stream sends no snapshot (OKX: `https://www.okx.com`
    /// unless set).
    #[must_use]
    pub fn rest_url(mut self, url: impl Into<String>) -> Self {
        self.config.rest_url = Some(url.into());
        self
    }

    /// Never fetch REST snapshots: wait for the stream's (and resubscribe when it does not come).
    #[must_use]
    pub fn no_rest(mut self) -> Self {
        self.config.rest_url = None;
        self
    }

    /// Give up on a REST snapshot fetch after this long (default 5 s); it is tried again later.
    #[must_use]
    pub fn fetch_timeout(mut self, d: Duration) -> Self {
        self.config.fetch_timeout = d;
        self
    }

    /// Adds symbols (as the exchange spells them: `BTC/USD` on Kraken, `BTCUSDT` on Bybit).
    #[must_use]
    pub fn symbols<S: Into<String>>(mut self, symbols: impl IntoIterator<Item = S>) -> Self {
        self.symbols.extend(symbols.into_iter().map(Into::into));
        self
    }

    /// The subscribed depth (the exchange's default unless set; it must be one the exchange
    /// offers, which `start` and `build` check).
    #[must_use]
    pub fn depth(mut self, depth: Depth) -> Self {
        self.config.depth = depth;
        self
    }

    /// Levels per side published to readers (default 10).
    #[must_use]
    pub fn levels(mut self, levels: usize) -> Self {
        self.config.levels = levels;
        self
    }

    /// Silence after which every book is stale and the feed reconnects (the exchange's default:
    /// Kraken 5 s, Bybit 8 s).
    #[must_use]
    pub fn stale_after(mut self, d: Duration) -> Self {
        self.config.stale_after = d;
        self
    }

    /// Silence after which the feed pings (default 2 s).
    #[must_use]
    pub fn ping_after(mut self, d: Duration) -> Self {
        self.config.ping_after = d;
        self
    }

    /// How long to wait for a snapshot before asking again (default 10 s).
    #[must_use]
    pub fn snapshot_timeout(mut self, d: Duration) -> Self {
        self.config.snapshot_timeout = d;
        self
    }

    /// Pacing of resubscriptions (default: a burst of 4, then 1 per second, 250 ms jitter).
    #[must_use]
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.config.pacing = pacing;
        self
    }

    /// Reconnect backoff (default 250 ms doubling up to 30 s, with jitter).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Largest accepted frame or message (default: the exchange's, 16 MiB, or 64 MiB on Coinbase,
    /// whose snapshot is the whole book in one frame). A larger one is an
    /// [`Error::FrameTooLarge`] event, and the connection is dropped and made again. The parser
    /// reads at most the exchange's size whatever this says.
    #[must_use]
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Capacity of the event queue (default 4096). See [`Events`] for what happens when it is full.
    #[must_use]
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }

    /// Time allowed for TCP, TLS and the websocket handshake (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Seed of the jitter's random source (default fixed; set one per process in production so
    /// that many processes do not jitter alike).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Whether to emit an [`Event::Book`] per applied book message (default on). Readers see
    /// every book either way.
    #[must_use]
    pub fn book_events(mut self, on: bool) -> Self {
        self.config.book_events = on;
        self
    }

    /// A callback with every raw frame before it is processed (recording, debugging).
    #[must_use]
    pub fn tap(mut self, tap: impl Fn(&[u8], u64) + Send + Sync + 'static) -> Self {
        self.tap = Some(Arc::new(tap));
        self
    }

    /// The most books one connection carries (default: the exchange's own limit for one feed;
    /// [`Exchange::SHARD_SIZE`] for [`FeedBuilder::split`]). A symbol past it is refused with
    /// [`Error::TooManySymbols`].
    #[must_use]
    pub fn max_books(mut self, n: usize) -> Self {
        self.config.max_books = Some(n.max(1));
        self
    }

    /// The budget of connection attempts this feed draws from (default: its own, paced by
    /// [`Exchange::connect_pacing`]). Feeds to one exchange from one IP share one, so that they
    /// reconnect together inside the exchange's limit; [`FeedBuilder::split`]'s feeds do.
    #[must_use]
    pub fn connect_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Fixes the REST fetch budget now, paced for the depth set so far (unless one was given in
    /// the config), so that every clone of this builder, and every connection split from any of
    /// them, draws from the same one. The connection budget is shared by clones already.
    #[must_use]
    pub fn share_budgets(mut self) -> Self {
        if self.config.fetch_budget.is_none() {
            self.config.fetch_budget = Some(Budget::new(self.exchange.fetch_pacing(self.config.depth)));
        }
        self
    }

    /// The symbols added so far.
    #[must_use]
    pub fn symbol_list(&self) -> &[String] {
        &self.symbols
    }

    /// The same settings with these symbols instead of those added so far.
    #[must_use]
    pub fn set_symbols<S: Into<String>>(mut self, symbols: impl IntoIterator<Item = S>) -> Self {
        self.symbols = symbols.into_iter().map(Into::into).collect();
        self
    }

    /// The exchange the feed connects to.
    #[must_use]
    pub fn exchange(&self) -> &E {
        &self.exchange
    }

    /// Spreads the symbols over as many connections as the exchange's limits require: one
    /// builder per connection, each with at most [`Config::max_books`] books (or
    /// [`Exchange::SHARD_SIZE`]) and within the exchange's per-connection limits (OKX's 29
    /// channels, Bybit's 21,000 characters of topics), all sharing this builder's connection
    /// budget and tap. Each later [`Feed::add_symbol`] is held to the same size.
    ///
    /// # Errors
    ///
    /// An invalid symbol or a duplicate.
    pub fn split(mut self) -> Result<Vec<Self>> {
        let size =
            self.config.max_books.unwrap_or(E::SHARD_SIZE).min(E::MAX_SYMBOLS_PER_CONNECTION.unwrap_or(usize::MAX));
        self.config.max_books = Some(size.max(1));
        let mut this = self.share_budgets();
        let symbols = std::mem::take(&mut this.symbols);
        let mut seen = std::collections::HashSet::new();
        let mut shards: Vec<Self> = Vec::new();
        for s in symbols {
            check_symbol(&s)?;
            this.exchange.check_symbol(&s)?;
            if !seen.insert(s.clone()) {
                return Err(Error::DuplicateSymbol(Symbol::from(s.as_str())));
            }
            let fits = shards.last().is_some_and(|last| {
                crate::session::admit(&this.exchange, &this.config, last.symbols.iter().map(String::as_str), &s).is_ok()
            });
            if !fits {
                let mut shard = this.clone();
                shard.symbols = Vec::new();
                shards.push(shard);
            }
            if let Some(last) = shards.last_mut() {
                last.symbols.push(s);
            }
        }
        Ok(shards)
    }

    /// Starts the feed on its own thread (a single-threaded tokio runtime), so that book
    /// maintenance never competes with the application's tasks.
    ///
    /// # Errors
    ///
    /// An invalid URL, symbol or depth, or the thread could not be started.
    pub fn start(self) -> Result<Feed> {
        let (mut feed, run) = self.build()?;
        let thread = std::thread::Builder::new()
            .name("plumb-feed".to_owned())
            .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(run),
                Err(e) => tracing::error!(error = %e, "could not start the feed's runtime"),
            })
            .map_err(|e| Error::Connect(Arc::from(e.to_string())))?;
        feed.thread = Some(thread);
        Ok(feed)
    }

    /// The feed's handle and its driver, for applications that run the driver on their own
    /// tokio runtime (`tokio::spawn(driver)`). Nothing happens until the future is polled.
    ///
    /// # Errors
    ///
    /// An invalid URL, symbol or depth.
    pub fn build(self) -> Result<(Feed, impl Future<Output = ()> + Send + 'static)> {
        let request = self.url.as_str().into_client_request().map_err(|_| Error::InvalidUrl(self.url.clone()))?;
        let uri = request.uri();
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(Error::InvalidUrl(self.url)),
        };
        let host = uri.host().ok_or_else(|| Error::InvalidUrl(self.url.clone()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let rustls = tls_config()?;
        let connector = if tls { Connector::Rustls(Arc::clone(&rustls)) } else { Connector::Plain };
        if let Some(rest) = &self.config.rest_url
            && !(rest.starts_with("http://") || rest.starts_with("https://"))
        {
            return Err(Error::InvalidUrl(rest.clone()));
        }

        self.exchange.check_depth(self.config.depth)?;
        let mut session = Session::with_exchange(self.exchange.clone(), self.config.clone());
        let mut readers = HashMap::new();
        for s in &self.symbols {
            let reader = session.add_symbol(s)?;
            readers.insert(Symbol::from(s.as_str()), reader);
        }
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::channel(self.event_capacity);
        let shared = Arc::new(Shared { open: AtomicBool::new(false), stats: session.stats() });
        let (exchange, config) = (self.exchange.clone(), self.config.clone());
        let admit: Admit = Arc::new(move |existing: &[&str], symbol: &str| {
            exchange.check_symbol(symbol)?;
            crate::session::admit(&exchange, &config, existing.iter().copied(), symbol)
        });
        let driver = Driver {
            target: Arc::new(Target {
                url: self.url,
                host,
                port,
                connector,
                ws: WebSocketConfig::default()
                    .read_buffer_size(16 * 1024)
                    .write_buffer_size(0)
                    .max_frame_size(Some(self.max_frame))
                    .max_message_size(Some(self.max_frame)),
                connect_timeout: self.connect_timeout,
                tls: rustls,
                max_body: self.max_frame,
            }),
            backoff: self.backoff,
            rng: Jitter::new(self.config.seed ^ 0x00b0_ff5e_ed00),
            tap: self.tap,
            budget: self.budget,
            control: control_rx,
            sink: Sink { tx: event_tx, lagged: 0 },
            shared: Arc::clone(&shared),
        };
        let feed = Feed {
            control: control_tx,
            readers,
            events: Some(Events { rx: event_rx }),
            shared,
            levels: self.config.levels,
            admit,
            thread: None,
        };
        // Everything the driver and its session log is inside this span (and a `connection` span
        // per connection), silent unless the application installs a subscriber.
        let span = tracing::info_span!("plumb_feed", exchange = E::NAME, url = %driver.target.url);
        Ok((feed, tracing::Instrument::instrument(driver.run(session), span)))
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // An explicit provider: nothing process-global is installed on the application's behalf.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Connect(Arc::from(e.to_string())))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct Shared {
    open: AtomicBool,
    stats: Arc<Stats>,
}

/// Whether one more symbol fits the feed's connection (the exchange's and the feed's limits).
type Admit = Arc<dyn Fn(&[&str], &str) -> Result<()> + Send + Sync>;

enum Control {
    Add(Symbol, plumb_book::publish::Publisher),
    Remove(Symbol),
    Reconnect,
    Close,
}

/// A running feed: a reader per symbol, the event stream, and control.
///
/// Dropping it (or [`Feed::close`]) shuts the connection down gracefully.
pub struct Feed {
    control: mpsc::UnboundedSender<Control>,
    readers: HashMap<Symbol, Reader>,
    events: Option<Events>,
    shared: Arc<Shared>,
    levels: usize,
    admit: Admit,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("symbols", &self.readers.len())
            .field("open", &self.is_open())
            .field("levels", &self.levels)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// The reader of a symbol's book: lock-free, cheap to clone, for any thread.
    #[must_use]
    pub fn reader(&self, symbol: &str) -> Option<Reader> {
        self.readers.get(symbol).cloned()
    }

    /// The symbols in the feed.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.readers.keys().map(|s| &**s)
    }

    /// The event stream. It can be taken once; later calls return `None`.
    pub fn events(&mut self) -> Option<Events> {
        self.events.take()
    }

    /// Adds a symbol while running; it is subscribed at once if connected.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSymbol`], [`Error::DuplicateSymbol`], [`Error::ServedAs`],
    /// [`Error::TooManySymbols`] (the connection is full: see [`FeedBuilder::split`]), or
    /// [`Error::Closed`].
    pub fn add_symbol(&mut self, symbol: &str) -> Result<Reader> {
        check_symbol(symbol)?;
        if let Some((s, _)) = self.readers.get_key_value(symbol) {
            return Err(Error::DuplicateSymbol(Arc::clone(s)));
        }
        let existing: Vec<&str> = self.readers.keys().map(|s| &**s).collect();
        (self.admit)(&existing, symbol)?;
        let (publisher, reader) = channel(self.levels);
        let symbol = Symbol::from(symbol);
        self.control.send(Control::Add(Arc::clone(&symbol), publisher)).map_err(|_| Error::Closed)?;
        self.readers.insert(symbol, reader.clone());
        Ok(reader)
    }

    /// Removes a symbol: it is unsubscribed and its readers see an empty book. Returns whether it
    /// was in the feed.
    pub fn remove_symbol(&mut self, symbol: &str) -> bool {
        let Some((s, _)) = self.readers.remove_entry(symbol) else { return false };
        let _ = self.control.send(Control::Remove(s));
        true
    }

    /// Whether the websocket is connected right now.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Whether every book of the feed reads [`Status::Valid`](plumb_book::publish::Status) right
    /// now.
    #[must_use]
    pub fn all_valid(&self) -> bool {
        self.readers.values().all(|r| r.top().header.status.is_valid())
    }

    /// Blocks the calling thread until every book of the feed is valid, or `timeout` passes;
    /// returns whether they all are. For a program's start (wait for the books, then trade); it
    /// looks once a millisecond. Async code checks [`Feed::all_valid`] in its own loop instead.
    #[must_use]
    #[expect(clippy::disallowed_methods, reason = "a blocking wait for the application's thread, not the feed's")]
    pub fn wait_valid(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self.all_valid() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// When the symbol's book last changed, in Unix nanoseconds (receive time), if ever.
    #[must_use]
    pub fn last_update_ns(&self, symbol: &str) -> Option<u64> {
        let t = self.readers.get(symbol)?.top().header.received_ns;
        (t != 0).then_some(t)
    }

    /// Running totals.
    #[must_use]
    pub fn counts(&self) -> Counts {
        self.shared.stats.counts()
    }

    /// Drops the connection and connects again, keeping every book and reader ("restart").
    pub fn reconnect(&self) {
        let _ = self.control.send(Control::Reconnect);
    }

    /// Closes the connection gracefully and stops the feed. Readers keep the last books, marked
    /// stale.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.control.send(Control::Close);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The feed's events, in order, through a bounded queue.
///
/// Book maintenance never waits for the consumer: when the queue is full, new events are
/// dropped (never the books' updates, which go to the readers regardless) and counted, and an
/// [`Event::Lagged`] with the count is delivered, in order, as soon as there is room. A consumer
/// that falls behind loses events, not correctness: the readers always show the latest book and
/// its status.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event, or `None` once the feed has stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// The next event, blocking the thread (not for use inside an async task).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }
}

struct Sink {
    tx: mpsc::Sender<Event>,
    lagged: u64,
}

impl Sink {
    fn push(&mut self, event: Event) {
        use mpsc::error::TrySendError;
        if self.lagged > 0 {
            match self.tx.try_send(Event::Lagged { dropped: self.lagged }) {
                Ok(()) => self.lagged = 0,
                Err(TrySendError::Full(_)) => {
                    self.lagged += 1;
                    return;
                }
                Err(TrySendError::Closed(_)) => return,
            }
        }
        if let Err(TrySendError::Full(_)) = self.tx.try_send(event) {
            self.lagged += 1;
        }
    }

    fn drain<E: Exchange>(&mut self, session: &mut Session<E>) {
        while let Some(e) = session.poll_event() {
            self.push(e);
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Target {
    url: String,
    host: String,
    port: u16,
    connector: Connector,
    ws: WebSocketConfig,
    connect_timeout: Duration,
    /// For REST snapshots over `https://`.
    tls: Arc<rustls::ClientConfig>,
    /// The largest REST body accepted.
    max_body: usize,
}

/// A REST snapshot fetch's answer: its id, its URL and the body or why there is none.
type Fetched = (u64, String, Result<hyper::body::Bytes, crate::http::Failure>);

struct Driver {
    target: Arc<Target>,
    backoff: Backoff,
    rng: Jitter,
    tap: Option<Tap>,
    budget: Budget,
    control: mpsc::UnboundedReceiver<Control>,
    sink: Sink,
    shared: Arc<Shared>,
}

enum Flow {
    Continue,
    Reconnect,
    Close,
}

fn apply<E: Exchange>(session: &mut Session<E>, control: Option<Control>) -> Flow {
    match control {
        Some(Control::Add(symbol, publisher)) => {
            if let Err(e) = session.attach(&symbol, publisher) {
                tracing::warn!(error = %e, "add symbol");
            }
            Flow::Continue
        }
        Some(Control::Remove(symbol)) => {
            session.remove_symbol(&symbol);
            Flow::Continue
        }
        Some(Control::Reconnect) => Flow::Reconnect,
        Some(Control::Close) | None => Flow::Close,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

impl Target {
    async fn connect(&self) -> Result<Ws, Arc<str>> {
        let err = |e: &dyn std::fmt::Display| Arc::<str>::from(e.to_string());
        let attempt = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| err(&e))?;
            tcp.set_nodelay(true).map_err(|e| err(&e))?;
            let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
                self.url.as_str(),
                tcp,
                Some(self.ws),
                Some(self.connector.clone()),
            )
            .await
            .map_err(|e| err(&e))?;
            Ok(ws)
        };
        tokio::time::timeout(self.connect_timeout, attempt).await.map_err(|e| err(&e))?
    }
}

/// A task aborted when dropped.
struct Abort<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> Drop for Abort<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// A rollover's new connection and its session, once every book is valid on it.
type WarmedUp<E> = Option<(Ws, Session<E>)>;

/// How long a rollover's new connection may take to bring every book up.
const ROLLOVER_WAIT: Duration = Duration::from_secs(60);

/// A planned rollover's new connection: connects, subscribes every book on a session of its own
/// (whose publishers no reader holds yet), and runs it until every book is valid; `None` if that
/// does not happen within [`ROLLOVER_WAIT`]. Its events and frames are not reported (the old
/// connection goes on meanwhile); the caller hands the books over.
async fn warm_up<E: Exchange>(
    target: Arc<Target>,
    budget: Budget,
    mut session: Session<E>,
    symbols: Vec<String>,
) -> Option<(Ws, Session<E>)> {
    for s in &symbols {
        let _ = session.add_symbol(s);
    }
    let (now, _) = clock();
    sleep_until(Some(budget.reserve(now))).await;
    let mut ws = target.connect().await.ok()?;
    let (now, _) = clock();
    let until = now + ROLLOVER_WAIT;
    session.handle_connected(now);
    let mut fetches: tokio::task::JoinSet<Fetched> = tokio::task::JoinSet::new();
    loop {
        while let Some(cmd) = session.poll_command() {
            match cmd {
                Command::Send(text) => ws.send(Message::text(text)).await.ok()?,
                Command::Fetch(fetch) => {
                    let (tls, max_body) = (Arc::clone(&target.tls), target.max_body);
                    fetches.spawn(async move {
                        let r = crate::http::get(&fetch.url, fetch.timeout, max_body, &tls).await;
                        (fetch.id, fetch.url, r)
                    });
                }
                Command::Reconnect(_) | Command::Rollover => return None,
            }
        }
        while session.poll_event().is_some() {}
        if session.all_valid() {
            return Some((ws, session));
        }
        tokio::select! {
            msg = ws.next() => {
                let (now, received_ns) = clock();
                match &msg {
                    Some(Ok(Message::Text(t))) => session.handle_frame(t.as_bytes(), now, received_ns),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => session.handle_control_frame(now),
                    Some(Ok(Message::Binary(b))) => session.handle_binary_frame(b.len(), now),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return None,
                }
            }
            Some(done) = fetches.join_next(), if !fetches.is_empty() => {
                let (now, received_ns) = clock();
                let Ok((id, _, answer)) = done else { continue };
                match &answer {
                    Ok(body) => session.handle_fetched(id, crate::Fetched::Body(body), now, received_ns),
                    Err(f) => {
                        let failed = crate::Fetched::Failed { status: f.status, retry_after: f.retry_after, message: &f.message };
                        session.handle_fetched(id, failed, now, received_ns);
                    }
                }
            }
            () = sleep_until(session.poll_timeout()) => {
                let (now, _) = clock();
                session.handle_timeout(now);
            }
            () = sleep_until(Some(until)) => return None,
        }
    }
}

impl Driver {
    async fn run<E: Exchange>(mut self, mut session: Session<E>) {
        let mut attempt = 0u32;
        let mut pending_delay = None;
        loop {
            // A slot of the exchange's connection budget (shared with the other connections to
            // it), then the attempt; symbols added or removed meanwhile change neither.
            let (now, _) = clock();
            let slot = self.budget.reserve(now);
            if slot > now && !self.hold(&mut session, slot, false).await {
                return;
            }
            let target = Arc::clone(&self.target);
            let connect = target.connect();
            tokio::pin!(connect);
            let connected = loop {
                tokio::select! {
                    r = &mut connect => break r,
                    c = self.control.recv() => match apply(&mut session, c) {
                        Flow::Close => return,
                        Flow::Continue | Flow::Reconnect => {}
                    },
                }
            };
            match connected {
                Ok(mut ws) => {
                    let (now, _) = clock();
                    self.shared.open.store(true, Ordering::Release);
                    session.handle_connected(now);
                    let span = tracing::info_span!("connection", number = session.stats().counts().reconnects + 1);
                    let reason = tracing::Instrument::instrument(self.pump(&mut ws, &mut session), span).await;
                    self.shared.open.store(false, Ordering::Release);
                    let (now, _) = clock();
                    // The backoff starts over only after a connection that proved healthy (its
                    // books valid, nothing wrong for a while), not after any frame at all.
                    if session.is_healthy(now) {
                        attempt = 0;
                    }
                    let shutdown = reason == Disconnect::Shutdown;
                    session.handle_disconnected(now, reason);
                    self.sink.drain(&mut session);
                    if shutdown {
                        let _ = ws.close(None).await;
                        return;
                    }
                }
                Err(e) => {
                    // Which host, what went wrong, and when the next try is.
                    let delay = self.backoff.delay(attempt, &mut self.rng);
                    let (host, port) = (&self.target.host, self.target.port);
                    tracing::warn!(url = %self.target.url, error = %e, ?delay, "connect failed");
                    let text = format!("{host}:{port}: {e}; retrying in {:.1} s", delay.as_secs_f64());
                    self.sink.push(Event::Error(Error::Connect(Arc::from(text))));
                    self.shared.stats.connect_failed();
                    pending_delay = Some(delay);
                }
            }
            let delay = pending_delay.take().unwrap_or_else(|| self.backoff.delay(attempt, &mut self.rng));
            attempt = attempt.saturating_add(1);
            let (now, _) = clock();
            if !self.hold(&mut session, now + delay, true).await {
                return;
            }
        }
    }

    /// Waits until `until` while applying the application's controls; a reconnect request ends
    /// the wait early when `reconnect_ends` (a backoff), not otherwise (a connection slot).
    /// Returns `false` when the feed is to close.
    async fn hold<E: Exchange>(&mut self, session: &mut Session<E>, until: Instant, reconnect_ends: bool) -> bool {
        loop {
            tokio::select! {
                () = sleep_until(Some(until)) => return true,
                c = self.control.recv() => match apply(session, c) {
                    Flow::Close => return false,
                    Flow::Reconnect if reconnect_ends => return true,
                    Flow::Reconnect | Flow::Continue => {}
                },
            }
        }
    }

    /// Runs one connection until it ends; returns why.
    async fn pump<E: Exchange>(&mut self, ws: &mut Ws, session: &mut Session<E>) -> Disconnect {
        // One timer for the connection, reset only when the session's deadline moves (about once
        // per ping interval, not once per frame; see `Session::poll_timeout`).
        let mut armed = session.poll_timeout();
        let timer = sleep_until(armed);
        tokio::pin!(timer);
        // REST snapshot fetches in flight, ended with the connection (their answers would be
        // ignored by then).
        let mut fetches: tokio::task::JoinSet<Fetched> = tokio::task::JoinSet::new();
        // A planned rollover's new connection, warming up its own session until every book is
        // valid on it.
        // (Aborted with the connection: a new connection being warmed up for an old one that has
        // ended is dropped with it.)
        let mut rollover: Abort<WarmedUp<E>> = Abort(None);
        loop {
            let mut fed = false;
            while let Some(cmd) = session.poll_command() {
                match cmd {
                    Command::Send(text) => {
                        if let Err(e) = ws.feed(Message::text(text)).await {
                            return Disconnect::Transport(Arc::from(e.to_string()));
                        }
                        fed = true;
                    }
                    Command::Reconnect(reason) => return reason,
                    Command::Rollover => {
                        if rollover.0.is_none() {
                            let warm = Session::with_exchange(session.exchange().clone(), session.config().clone());
                            let symbols: Vec<String> = session.symbols().map(ToString::to_string).collect();
                            rollover.0 = Some(tokio::spawn(warm_up(
                                Arc::clone(&self.target),
                                self.budget.clone(),
                                warm,
                                symbols,
                            )));
                        }
                    }
                    Command::Fetch(fetch) => {
                        let (tls, max_body) = (Arc::clone(&self.target.tls), self.target.max_body);
                        fetches.spawn(async move {
                            let r = crate::http::get(&fetch.url, fetch.timeout, max_body, &tls).await;
                            (fetch.id, fetch.url, r)
                        });
                    }
                }
            }
            if fed && let Err(e) = ws.flush().await {
                return Disconnect::Transport(Arc::from(e.to_string()));
            }
            self.sink.drain(session);
            let deadline = session.poll_timeout();
            if deadline != armed {
                armed = deadline;
                timer.set(sleep_until(deadline));
            }
            tokio::select! {
                biased;
                msg = ws.next() => {
                    let (now, received_ns) = clock();
                    let frame: &[u8] = match &msg {
                        Some(Ok(Message::Text(t))) => t.as_bytes(),
                        Some(Ok(Message::Binary(b))) => {
                            session.handle_binary_frame(b.len(), now);
                            continue;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                            // tungstenite queues the pong (with the ping's payload) itself, and
                            // sends it with the next write or read.
                            session.handle_control_frame(now);
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None => return Disconnect::ServerClosed,
                        Some(Err(e)) => {
                            if let tokio_tungstenite::tungstenite::Error::Capacity(c) = &e {
                                // Said as what it is, not only as a lost connection.
                                tracing::warn!(error = %c, limit = self.target.max_body, "frame over the size limit");
                                let error = Error::FrameTooLarge { limit: self.target.max_body, detail: Arc::from(c.to_string()) };
                                self.sink.push(Event::Error(error));
                            }
                            return Disconnect::Transport(Arc::from(e.to_string()));
                        }
                        Some(Ok(_)) => continue,
                    };
                    if let Some(tap) = &self.tap {
                        tap(frame, received_ns);
                    }
                    // Parsed in place: the payload is borrowed from tungstenite's read buffer.
                    session.handle_frame(frame, now, received_ns);
                }
                Some(done) = fetches.join_next(), if !fetches.is_empty() => {
                    let (now, received_ns) = clock();
                    let Ok((id, url, answer)) = done else { continue };
                    match &answer {
                        Ok(body) => {
                            if let Some(tap) = &self.tap {
                                let mut line = Vec::with_capacity(url.len() + body.len() + 5);
                                line.extend_from_slice(b"GET ");
                                line.extend_from_slice(url.as_bytes());
                                line.push(b'\t');
                                line.extend_from_slice(body);
                                tap(&line, received_ns);
                            }
                            session.handle_fetched(id, crate::Fetched::Body(body), now, received_ns);
                        }
                        Err(f) => {
                            let failed = crate::Fetched::Failed { status: f.status, retry_after: f.retry_after, message: &f.message };
                            session.handle_fetched(id, failed, now, received_ns);
                        }
                    }
                }
                done = async {
                    match rollover.0.as_mut() {
                        Some(handle) => handle.await,
                        None => std::future::pending().await,
                    }
                } => {
                    rollover.0 = None;
                    match done {
                        Ok(Some((new_ws, mut new_session))) => {
                            // Every book is valid on the new connection: hand each reader's
                            // publisher over, and go on there. The old connection is closed.
                            let symbols: Vec<String> = session.symbols().map(ToString::to_string).collect();
                            for symbol in &symbols {
                                let Some(publisher) = session.take_publisher(symbol) else { continue };
                                if !new_session.put_publisher(symbol, publisher) {
                                    // Added while the new connection warmed up: subscribed there now.
                                    if let Some(p) = session.take_publisher(symbol) {
                                        let _ = new_session.attach(symbol, p);
                                    }
                                }
                            }
                            let gone: Vec<String> = new_session.symbols().map(ToString::to_string).filter(|s| !symbols.contains(s)).collect();
                            for symbol in gone {
                                new_session.remove_symbol(&symbol);
                            }
                            new_session.continue_counts(session);
                            while new_session.poll_event().is_some() {}
                            tracing::info!("rolled over to a new connection; every book stayed valid");
                            let old = std::mem::replace(ws, new_ws);
                            *session = new_session;
                            // The old session's fetches in flight: their ids are its own and
                            // must never reach the new one.
                            fetches.abort_all();
                            tokio::spawn(async move {
                                let mut old = old;
                                let _ = old.close(None).await;
                            });
                            self.sink.push(Event::RolledOver);
                            armed = session.poll_timeout();
                            timer.set(sleep_until(armed));
                        }
                        _ => {
                            // The new connection did not come up in time: reconnect as usual.
                            tracing::warn!("the planned rollover failed; reconnecting");
                            return Disconnect::Maintenance;
                        }
                    }
                }
                () = &mut timer => {
                    let (now, _) = clock();
                    session.handle_timeout(now);
                    // Re-arm even if the deadline did not move, since this timer has completed.
                    armed = session.poll_timeout();
                    timer.set(sleep_until(armed));
                }
                c = self.control.recv() => match apply(session, c) {
                    Flow::Close => return Disconnect::Shutdown,
                    Flow::Reconnect => return Disconnect::Requested,
                    Flow::Continue => {}
                },
            }
        }
    }
}
