//! The websocket server: one task per connection, each with its own market.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use simd_json::prelude::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::market::{self, Instrument, Rng, SimBook, View};

/// A fault the exchange can inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next update of the symbol (any subscribed symbol when `None`) carries a wrong checksum.
    CorruptChecksum(Option<String>),
    /// The next update of the symbol (any when `None`) is not sent; the market moves anyway.
    DropUpdate(Option<String>),
    /// The connection is dropped without a close frame.
    Close,
    /// Nothing is sent or read for this long (no heartbeats, no answers).
    Silence(Duration),
    /// A truncated book frame is sent.
    Malformed,
    /// The next update of the symbol (any when `None`) is sent twice (Bybit; Kraken's absolute
    /// levels make a duplicate harmless, so its venue does not apply it).
    Duplicate(Option<String>),
    /// The service restarts for the symbol (any when `None`): Bybit sends a snapshot with `u` = 1
    /// and numbers on from there; OKX resets its `seqId` below the `prevSeqId` (not applied by
    /// the Kraken venue).
    Restart(Option<String>),
    /// OKX: the symbol's next message is a keepalive (an empty update with `prevSeqId == seqId`).
    Keepalive(Option<String>),
    /// OKX: the symbol's next update is lost, and the subscribe that follows is acknowledged
    /// without a snapshot.
    NoSnapshot(Option<String>),
    /// OKX: a `notice` that the connection will close for a service upgrade.
    Notice,
    /// The next REST request is answered HTTP 503 with `Retry-After: 1`.
    RestError,
    /// Coinbase: a message is lost right before the next heartbeat (its number skipped), so that
    /// the heartbeat shows the gap.
    HeartbeatGap,
    /// A binary websocket frame holding a book message with a wrong checksum (exchanges send
    /// text; a client must not read it as one).
    BinaryFrame,
}

impl Fault {
    /// A short snake-case name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::CorruptChecksum(_) => "corrupt_checksum",
            Self::DropUpdate(_) => "drop_update",
            Self::Close => "abrupt_close",
            Self::Silence(_) => "silence",
            Self::Malformed => "malformed_frame",
            Self::Duplicate(_) => "duplicate",
            Self::Restart(_) => "restart",
            Self::Keepalive(_) => "keepalive",
            Self::NoSnapshot(_) => "no_snapshot",
            Self::Notice => "notice",
            Self::RestError => "rest_error",
            Self::HeartbeatGap => "heartbeat_gap",
            Self::BinaryFrame => "binary_frame",
        }
    }
}

/// Faults on a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPlan {
    /// None.
    Off,
    /// A random fault every period (the first after one period). Silences last `silence`.
    Every {
        /// Between faults.
        period: Duration,
        /// How long a scheduled silence lasts.
        silence: Duration,
    },
}

/// The exchange's settings.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// The instruments listed and traded on the Kraken venue.
    pub instruments: Vec<Instrument>,
    /// The instruments listed and traded on the Bybit venue.
    pub bybit_instruments: Vec<Instrument>,
    /// The instruments listed and traded on the OKX venue.
    pub okx_instruments: Vec<Instrument>,
    /// Whether the OKX venue writes checksums as OKX did before retiring them (else 0).
    pub okx_checksums: bool,
    /// The products listed and traded on the Coinbase venue.
    pub coinbase_instruments: Vec<Instrument>,
    /// The symbols listed and traded on the Binance venues (spot and USD-M alike).
    pub binance_instruments: Vec<Instrument>,
    /// Levels per side of the first Coinbase product's book (0: as the others, 40 to 200), so
    /// that its snapshot is as big as BTC-USD's (100,000 levels a side is about 20 MB).
    pub coinbase_depth: usize,
    /// Book updates per second on each connection (over all symbols).
    pub rate: u32,
    /// Seed of the order flow (each connection adds its number).
    pub seed: u64,
    /// Symbols whose book subscriptions are refused with Kraken's message.
    pub reject: Vec<String>,
    /// Scheduled faults.
    pub plan: FaultPlan,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            instruments: Instrument::defaults(),
            bybit_instruments: Instrument::bybit_defaults(),
            okx_instruments: Instrument::okx_defaults(),
            okx_checksums: false,
            coinbase_instruments: Instrument::coinbase_defaults(),
            binance_instruments: Instrument::binance_defaults(),
            coinbase_depth: 0,
            rate: 200,
            seed: 1,
            reject: Vec::new(),
            plan: FaultPlan::Off,
        }
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// When it was received, in Unix nanoseconds.
    pub at_ns: u64,
    /// Which connection (1 for the first).
    pub connection: u64,
    /// `subscribe`, `unsubscribe`, `ping`, or what the client sent.
    pub method: String,
    /// The channel, for subscriptions.
    pub channel: Option<String>,
    /// The symbols, for book subscriptions.
    pub symbols: Vec<String>,
    /// The depth asked for, if any.
    pub depth: Option<u64>,
}

/// A fault as it was applied, with the symbol it hit (if one) and when (Unix nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The fault.
    pub fault: Fault,
    /// The symbol whose update was corrupted or dropped.
    pub symbol: Option<String>,
    /// When, in Unix nanoseconds.
    pub unix_ns: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) requests: Vec<Request>,
    pub(crate) applied: Vec<Applied>,
    pub(crate) pongs: u64,
    pub(crate) rate_violations: u64,
    connections: u64,
    /// When each websocket connection was accepted (Unix nanoseconds), in order.
    accepted: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ExchangeConfig,
    faults_on: std::sync::atomic::AtomicBool,
    log: Mutex<Log>,
    faults: broadcast::Sender<Fault>,
    /// Each connection of a venue with a REST API (`okx`, `binance`, `binance-usdm`), by venue
    /// and connection number: a REST request for a symbol is answered from the market of the
    /// connection that subscribed it last (as one exchange serves one market whatever the
    /// connection), else from the newest connection's.
    rest: Mutex<HashMap<&'static str, Vec<RestConn>>>,
    /// Which connection subscribed each symbol last, by venue.
    rest_owner: Mutex<HashMap<(&'static str, String), u64>>,
    /// REST requests still to be refused with HTTP 503.
    rest_errors: std::sync::atomic::AtomicU32,
}

/// A connection that answers REST requests: its number and its channel.
type RestConn = (u64, tokio::sync::mpsc::UnboundedSender<RestCall>);

/// A REST request handed to the connection whose market answers it.
#[derive(Debug)]
pub(crate) struct RestCall {
    path: String,
    reply: tokio::sync::oneshot::Sender<(u16, String)>,
}

impl Shared {
    /// A connection of `venue` subscribed `symbol`: REST requests for it are answered from its
    /// market from now on.
    pub(crate) fn claim_rest(&self, venue: &'static str, symbol: &str, connection: u64) {
        self.rest_owner.lock().unwrap_or_else(PoisonError::into_inner).insert((venue, symbol.to_owned()), connection);
    }

    fn register_rest(&self, venue: &'static str, connection: u64, tx: tokio::sync::mpsc::UnboundedSender<RestCall>) {
        let mut rest = self.rest.lock().unwrap_or_else(PoisonError::into_inner);
        let list = rest.entry(venue).or_default();
        list.retain(|(_, t)| !t.is_closed());
        list.push((connection, tx));
    }

    /// Hands a REST call to the connection that answers for `symbol` on `venue`.
    fn route_rest(&self, venue: &'static str, symbol: &str, call: RestCall) -> bool {
        let owner =
            self.rest_owner.lock().unwrap_or_else(PoisonError::into_inner).get(&(venue, symbol.to_owned())).copied();
        let rest = self.rest.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(list) = rest.get(venue) else { return false };
        let open: Vec<&(u64, _)> = list.as_slice().iter().rev().filter(|(_, t)| !t.is_closed()).collect();
        let target = owner.and_then(|n| open.iter().find(|(c, _)| *c == n)).or_else(|| open.first());
        target.is_some_and(|(_, t)| t.send(call).is_ok())
    }

    pub(crate) fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn inject(&self, fault: Fault) {
        if fault == Fault::RestError {
            self.rest_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.log().applied.push(Applied { fault, symbol: None, unix_ns: unix_ns() });
        } else {
            let _ = self.faults.send(fault);
        }
    }
}

/// A simulated exchange on a thread of its own (for programs and tests without a tokio runtime).
/// Dropping it shuts the exchange down.
#[derive(Debug)]
pub struct Background {
    url: String,
    base: String,
    shared: Arc<Shared>,
    faults: Option<std::sync::mpsc::Sender<Fault>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// The Kraken v2 websocket URL to give a client.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The Bybit v5 websocket URL of a market (`spot`, `linear` or `inverse`).
    #[must_use]
    pub fn bybit_url(&self, market: &str) -> String {
        format!("{}/v5/public/{market}", self.base)
    }

    /// The OKX v5 public websocket URL.
    #[must_use]
    pub fn okx_url(&self) -> String {
        format!("{}/ws/v5/public", self.base)
    }

    /// The OKX REST base URL (`GET /api/v5/market/books` on the same port).
    #[must_use]
    pub fn okx_rest_url(&self) -> String {
        self.base.replacen("ws://", "http://", 1)
    }

    /// The Coinbase Advanced Trade websocket URL.
    #[must_use]
    pub fn coinbase_url(&self) -> String {
        format!("{}/coinbase", self.base)
    }

    /// The Binance base URL (scheme, host, port): spot streams on `/ws`, USD-M futures on
    /// `/public/ws`, and both REST APIs on the same port over `http://`.
    #[must_use]
    pub fn binance_base(&self) -> String {
        self.base.clone()
    }

    /// The REST base URL of the venues with one (OKX, Binance): `http://` on the same port.
    #[must_use]
    pub fn rest_url(&self) -> String {
        self.base.replacen("ws://", "http://", 1)
    }

    /// Injects a fault into every open connection.
    pub fn inject(&self, fault: Fault) {
        if let Some(f) = &self.faults {
            let _ = f.send(fault);
        }
    }

    /// Every fault applied so far (injected or scheduled), with the symbol it hit and when.
    #[must_use]
    pub fn applied(&self) -> Vec<Applied> {
        self.shared.log().applied.clone()
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log().requests.clone()
    }

    /// When each websocket connection was accepted (Unix nanoseconds), in order: what an
    /// exchange's connection-rate limit counts.
    #[must_use]
    pub fn connection_times(&self) -> Vec<u64> {
        self.shared.log().accepted.clone()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Closing the fault channel ends the exchange's thread.
        self.faults = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running simulated exchange. Dropping it stops accepting connections and ends them.
#[derive(Debug)]
pub struct Exchange {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[expect(clippy::disallowed_methods, reason = "the simulated exchange keeps its own pace")]
pub(crate) fn now() -> Instant {
    Instant::now()
}

#[expect(clippy::disallowed_methods, reason = "the simulated exchange stamps its messages with wall-clock time")]
pub(crate) fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
}

impl Exchange {
    /// Binds 127.0.0.1 on a free port and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound.
    pub async fn start(config: ExchangeConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (faults, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            config,
            faults_on: std::sync::atomic::AtomicBool::new(true),
            log: Mutex::new(Log::default()),
            faults,
            rest: Mutex::new(HashMap::new()),
            rest_owner: Mutex::new(HashMap::new()),
            rest_errors: std::sync::atomic::AtomicU32::new(0),
        });
        let mut tasks = Vec::new();
        let s = Arc::clone(&shared);
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let c = Arc::clone(&conns);
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                if is_rest(&stream).await {
                    tokio::spawn(rest(stream, Arc::clone(&s)));
                    continue;
                }
                let n = {
                    let mut log = s.log();
                    log.connections += 1;
                    log.accepted.push(unix_ns());
                    log.connections
                };
                let rx = s.faults.subscribe();
                let handle = tokio::spawn(connection(stream, Arc::clone(&s), rx, n));
                c.lock().unwrap_or_else(PoisonError::into_inner).push(handle);
            }
        }));
        if let FaultPlan::Every { period, silence } = shared.config.plan {
            let s = Arc::clone(&shared);
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(s.config.seed ^ 0xfa17);
                let mut next = now() + period;
                loop {
                    sleep_until(next).await;
                    next += period;
                    if !s.faults_on.load(std::sync::atomic::Ordering::Relaxed) {
                        continue;
                    }
                    let fault = match rng.below(10) {
                        0 => Fault::CorruptChecksum(None),
                        1 => Fault::DropUpdate(None),
                        2 => Fault::Close,
                        3 => Fault::Silence(silence),
                        4 => Fault::Duplicate(None),
                        5 => Fault::Restart(None),
                        6 if rng.percent(50) => Fault::Keepalive(None),
                        6 => Fault::HeartbeatGap,
                        7 => Fault::NoSnapshot(None),
                        8 if rng.percent(50) => Fault::RestError,
                        8 => Fault::Notice,
                        _ => Fault::Malformed,
                    };
                    s.inject(fault);
                }
            }));
        }
        // Ends every connection task when the exchange is dropped.
        tasks.push(tokio::spawn(async move {
            let _guard = AbortOnDrop(conns);
            std::future::pending::<()>().await;
        }));
        Ok(Self { addr, shared, tasks })
    }

    /// Starts an exchange on a new thread with its own single-threaded runtime.
    ///
    /// # Errors
    ///
    /// When the runtime, the thread or the port cannot be had.
    pub fn spawn(config: ExchangeConfig) -> std::io::Result<Background> {
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (faults, fault_rx) = std::sync::mpsc::channel::<Fault>();
        let thread = std::thread::Builder::new().name("plumb-sim".to_owned()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = url_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let exchange = match Exchange::start(config).await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = url_tx.send(Err(e));
                        return;
                    }
                };
                let shared = Arc::clone(&exchange.shared);
                // Faults come from other threads through a std channel; a blocking task relays them.
                // (Its thread is started before the caller hears the exchange is up, so that the
                // caller finds every thread of the exchange already there.)
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let relay = tokio::task::spawn_blocking(move || {
                    for f in fault_rx {
                        if tx.send(f).is_err() {
                            break;
                        }
                    }
                });
                let _ = url_tx.send(Ok((exchange.url(), format!("ws://{}", exchange.addr()), shared)));
                while let Some(f) = rx.recv().await {
                    exchange.inject(f);
                }
                let _ = relay.await;
            });
        })?;
        let (url, base, shared) = url_rx.recv().map_err(|_| std::io::Error::other("the exchange thread ended"))??;
        Ok(Background { url, base, shared, faults: Some(faults), thread: Some(thread) })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Kraken v2 websocket URL to give a client.
    #[must_use]
    pub fn url(&self) -> String {
        format!("ws://{}/v2", self.addr)
    }

    /// The Bybit v5 websocket URL of a market (`spot`, `linear` or `inverse`; any path under
    /// `/v5/public/` is the Bybit venue).
    #[must_use]
    pub fn bybit_url(&self, market: &str) -> String {
        format!("ws://{}/v5/public/{market}", self.addr)
    }

    /// The OKX v5 public websocket URL.
    #[must_use]
    pub fn okx_url(&self) -> String {
        format!("ws://{}/ws/v5/public", self.addr)
    }

    /// The OKX REST base URL (`GET /api/v5/market/books` on the same port).
    #[must_use]
    pub fn okx_rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Coinbase Advanced Trade websocket URL.
    #[must_use]
    pub fn coinbase_url(&self) -> String {
        format!("ws://{}/coinbase", self.addr)
    }

    /// The Binance base URL (scheme, host, port): spot streams on `/ws`, USD-M futures on
    /// `/public/ws`, and both REST APIs (`/api/v3/depth`, `/fapi/v1/depth`) on the same port over
    /// `http://`.
    #[must_use]
    pub fn binance_base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The REST base URL of the venues with one (OKX, Binance): `http://` on the same port.
    #[must_use]
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Websocket pongs received that answered the server's pings, and client messages refused
    /// for passing a message rate (the connection was then closed), over every venue that pings
    /// or limits its clients' messages (`Venue::ws_ping_every`, `max_messages_per_second`:
    /// Binance's today).
    #[must_use]
    pub fn pongs_and_rate_violations(&self) -> (u64, u64) {
        let log = self.shared.log();
        (log.pongs, log.rate_violations)
    }

    /// Injects a fault into every open connection (a REST error into the REST API).
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Stops scheduled faults (injected ones still go through).
    pub fn stop_faults(&self) {
        self.shared.faults_on.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log().requests.clone()
    }

    /// Every fault applied so far.
    #[must_use]
    pub fn applied(&self) -> Vec<Applied> {
        self.shared.log().applied.clone()
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn connections(&self) -> u64 {
        self.shared.log().connections
    }

    /// When each websocket connection was accepted (Unix nanoseconds), in order.
    #[must_use]
    pub fn connection_times(&self) -> Vec<u64> {
        self.shared.log().accepted.clone()
    }

    /// The instruments listed on the Kraken venue.
    #[must_use]
    pub fn instruments(&self) -> &[Instrument] {
        &self.shared.config.instruments
    }

    /// The instruments listed on the Bybit venue.
    #[must_use]
    pub fn bybit_instruments(&self) -> &[Instrument] {
        &self.shared.config.bybit_instruments
    }

    /// The instruments listed on the OKX venue.
    #[must_use]
    pub fn okx_instruments(&self) -> &[Instrument] {
        &self.shared.config.okx_instruments
    }

    /// The products listed on the Coinbase venue.
    #[must_use]
    pub fn coinbase_instruments(&self) -> &[Instrument] {
        &self.shared.config.coinbase_instruments
    }
}

struct AbortOnDrop(Arc<Mutex<Vec<JoinHandle<()>>>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            h.abort();
        }
    }
}

/// What differs per simulated exchange: its requests, its book messages, its quiet-time message,
/// its malformed frame, and the faults aimed at one symbol. The connection loop, the silences and
/// closes, and the log are shared.
pub(crate) trait Venue {
    /// Handles one request frame.
    fn request(&mut self, text: &[u8]);
    /// Moves the market one step and sends what a subscriber must see.
    fn tick(&mut self);
    /// What to send after a second of quiet, if anything.
    fn heartbeat(&self) -> Option<&'static str>;
    /// A truncated book frame.
    fn malformed(&self) -> &'static str;
    /// Arms a fault aimed at a symbol's next message; the venue logs it when it applies it.
    fn arm(&mut self, fault: Fault);
    /// The frames to send.
    fn out(&mut self) -> &mut Vec<String>;
    /// A book message with a wrong checksum, for [`Fault::BinaryFrame`].
    fn binary_bait(&mut self) -> Option<String> {
        None
    }
    /// Answers a REST request (`path` with its query): status and body.
    fn rest(&mut self, path: &str) -> (u16, String) {
        let _ = path;
        (404, String::from("Not Found"))
    }
    /// Websocket pings the venue sends this often (Binance), each of which must be answered with
    /// a pong carrying its payload within `ping_deadline`, or the connection is closed.
    fn ws_ping_every(&self) -> Option<Duration> {
        None
    }
    /// How long a ping may wait for its pong.
    fn ping_deadline(&self) -> Duration {
        Duration::from_secs(60)
    }
    /// The most client messages (pongs included) a second before the venue closes the connection.
    fn max_messages_per_second(&self) -> Option<usize> {
        None
    }
}

pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    pub(crate) number: u64,
    pub(crate) rng: Rng,
    pub(crate) books: Vec<SimBook>,
    /// Instrument index to subscribed depth.
    pub(crate) subs: HashMap<usize, usize>,
    corrupt: Option<Option<String>>,
    drop: Option<Option<String>>,
    /// Unsubscribes received and not yet processed, with their acknowledgements.
    unsubscribing: Vec<(usize, String)>,
    pub(crate) out: Vec<String>,
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connection(stream: TcpStream, shared: Arc<Shared>, faults: broadcast::Receiver<Fault>, number: u64) {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().write_buffer_size(0);
    let mut path = String::new();
    #[allow(clippy::result_large_err, reason = "tungstenite's callback signature, not ours")]
    let record_path = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                       resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, record_path, Some(config)).await else {
        return;
    };
    let rng = Rng::new(shared.config.seed.wrapping_add(number));
    if path.starts_with("/v5/public/") {
        let venue = crate::bybit::BybitConn::new(shared, number, rng);
        serve(ws, venue, faults).await;
    } else if path.starts_with("/coinbase") {
        let venue = crate::coinbase::CoinbaseConn::new(shared, number, rng);
        serve(ws, venue, faults).await;
    } else if path.starts_with("/ws/v5/public") {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        shared.register_rest("okx", number, tx);
        let venue = crate::okx::OkxConn::new(shared, number, rng);
        serve_with(ws, venue, faults, Some(rx)).await;
    } else if path.starts_with("/ws") || path.starts_with("/public/ws") {
        // Binance: spot on `/ws`, USD-M futures on its public route.
        let usdm = path.starts_with("/public");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let name = if usdm { "binance-usdm" } else { "binance" };
        shared.register_rest(name, number, tx);
        let venue = crate::binance::BinanceConn::new(shared, number, rng, usdm);
        serve_with(ws, venue, faults, Some(rx)).await;
    } else {
        let mut rng = rng;
        let books = shared.config.instruments.iter().map(|i| SimBook::new(i.clone(), &mut rng)).collect();
        let venue = Conn {
            shared,
            number,
            rng,
            books,
            subs: HashMap::new(),
            corrupt: None,
            drop: None,
            unsubscribing: Vec::new(),
            out: Vec::new(),
        };
        serve(ws, venue, faults).await;
    }
}

/// Something every venue's connection can log.
pub(crate) trait Logs {
    fn shared(&self) -> &Shared;
    fn applied(&self, fault: Fault, symbol: Option<String>) {
        self.shared().log().applied.push(Applied { fault, symbol, unix_ns: unix_ns() });
    }
}

impl Logs for Conn {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

async fn serve<V: Venue + Logs>(ws: Ws, c: V, faults: broadcast::Receiver<Fault>) {
    serve_with(ws, c, faults, None).await;
}

/// Whether a new connection is a plain HTTP request for the REST API rather than a websocket.
async fn is_rest(stream: &TcpStream) -> bool {
    let mut head = [0u8; 9];
    for _ in 0..20 {
        match stream.peek(&mut head).await {
            Ok(n) if n >= head.len() => return &head == b"GET /api/" || &head == b"GET /fapi",
            Ok(0) | Err(_) => return false,
            Ok(_) => sleep_until(now() + Duration::from_millis(5)).await,
        }
    }
    false
}

/// Serves REST requests on one connection: `GET /api/v5/market/books` answered by the newest OKX
/// connection's market (its cache may lag the stream, as OKX's does), 503 while a `RestError`
/// fault lasts, 404 for anything else.
async fn rest(stream: TcpStream, shared: Arc<Shared>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let shared = Arc::clone(&shared);
        async move {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
            let inst = path
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("instId=").or_else(|| kv.strip_prefix("symbol=")))
                .unwrap_or("")
                .to_owned();
            shared.log().requests.push(Request {
                at_ns: crate::server::unix_ns(),
                connection: 0,
                method: "rest".to_owned(),
                channel: Some(path.split('?').next().unwrap_or("").to_owned()),
                symbols: vec![inst.clone()],
                depth: None,
            });
            let refuse = shared
                .rest_errors
                .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |n| {
                    n.checked_sub(1)
                })
                .is_ok();
            let (status, body) = if refuse {
                (503, String::from("Service Unavailable"))
            } else if let Some(venue) =
                [("/api/v5/market/books?", "okx"), ("/api/v3/depth?", "binance"), ("/fapi/v1/depth?", "binance-usdm")]
                    .into_iter()
                    .find_map(|(prefix, venue)| path.starts_with(prefix).then_some(venue))
            {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let sent = shared.route_rest(venue, &inst, RestCall { path, reply: tx });
                match rx.await {
                    Ok(answer) if sent => answer,
                    _ => (503, String::from("no market")),
                }
            } else {
                (404, String::from("Not Found"))
            };
            let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::NOT_FOUND);
            if status == 503 {
                response.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
}

async fn serve_with<V: Venue + Logs>(
    mut ws: Ws,
    mut c: V,
    mut faults: broadcast::Receiver<Fault>,
    mut rest: Option<tokio::sync::mpsc::UnboundedReceiver<RestCall>>,
) {
    let rate = c.shared().config.rate.max(1);
    let mut tick = interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_sent = now();
    let ping_every = c.ws_ping_every();
    let mut next_ping = ping_every.map(|d| now() + d);
    let mut awaiting: Option<(Vec<u8>, Instant)> = None;
    let mut recent: Vec<Instant> = Vec::new();
    let mut pings = 0u64;
    loop {
        if let Some((_, sent)) = &awaiting
            && now().duration_since(*sent) > c.ping_deadline()
        {
            return; // no pong in time: the venue drops the connection
        }
        tokio::select! {
            msg = ws.next() => {
                if let (Some(Ok(_)), Some(max)) = (&msg, c.max_messages_per_second()) {
                    let t = now();
                    recent.retain(|&r| t.duration_since(r) < Duration::from_secs(1));
                    recent.push(t);
                    if recent.len() > max {
                        c.shared().log().rate_violations += 1;
                        return;
                    }
                }
                match msg {
                    Some(Ok(Message::Text(t))) => c.request(t.as_bytes()),
                    Some(Ok(Message::Pong(p))) => {
                        if awaiting.as_ref().is_some_and(|(want, _)| want.as_slice() == &p[..]) {
                            awaiting = None;
                            c.shared().log().pongs += 1;
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    Some(Ok(_)) => {}
                }
            }
            () = async {
                match next_ping {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                pings += 1;
                let payload = format!("sim-ping-{pings}").into_bytes();
                if ws.send(Message::Ping(payload.clone().into())).await.is_err() {
                    return;
                }
                if awaiting.is_none() {
                    awaiting = Some((payload, now()));
                }
                next_ping = ping_every.map(|d| now() + d);
                continue;
            }
            _ = tick.tick() => c.tick(),
            Some(call) = async {
                match rest.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let _ = call.reply.send(c.rest(&call.path));
                continue;
            }
            () = sleep_until(last_sent + Duration::from_secs(1)) => {
                match c.heartbeat() {
                    Some(h) => c.out().push(h.to_owned()),
                    None => last_sent = now(),
                }
            }
            f = faults.recv() => match f {
                Ok(Fault::Close) => {
                    c.applied(Fault::Close, None);
                    return; // dropping the stream: no close frame
                }
                Ok(Fault::Silence(d)) => {
                    c.applied(Fault::Silence(d), None);
                    tokio::time::sleep_until(now() + d).await;
                    last_sent = now();
                }
                Ok(Fault::BinaryFrame) => {
                    c.applied(Fault::BinaryFrame, None);
                    if let Some(f) = c.binary_bait()
                        && ws.send(Message::binary(f.into_bytes())).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Fault::Malformed) => {
                    c.applied(Fault::Malformed, None);
                    let m = c.malformed().to_owned();
                    c.out().push(m);
                }
                Ok(f) => c.arm(f),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
        if !c.out().is_empty() {
            if send_all(&mut ws, c.out()).await.is_err() {
                return;
            }
            last_sent = now();
        }
    }
}

async fn send_all(ws: &mut Ws, out: &mut Vec<String>) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    for text in out.drain(..) {
        ws.feed(Message::text(text)).await?;
    }
    ws.flush().await
}

impl Venue for Conn {
    fn request(&mut self, text: &[u8]) {
        self.kraken_request(text);
    }

    /// A snapshot of a subscribed book with a wrong checksum.
    fn binary_bait(&mut self) -> Option<String> {
        let (&i, &d) = self.subs.iter().next()?;
        let book = &self.books[i];
        let view = book.view(d);
        let crc = market::checksum(&view, &book.instrument) ^ 0x5a5a;
        Some(market::snapshot_frame(&view, &book.instrument, crc, unix_ns(), false))
    }

    fn tick(&mut self) {
        self.kraken_tick();
    }

    fn heartbeat(&self) -> Option<&'static str> {
        Some(r#"{"channel":"heartbeat"}"#)
    }

    fn malformed(&self) -> &'static str {
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":6"#
    }

    fn arm(&mut self, fault: Fault) {
        match fault {
            Fault::CorruptChecksum(s) => self.corrupt = Some(s),
            Fault::DropUpdate(s) => self.drop = Some(s),
            // A duplicate of an absolute-level update changes nothing on Kraken, and Kraken has
            // no sequence to restart: neither applies here.
            _ => {}
        }
    }

    fn out(&mut self) -> &mut Vec<String> {
        &mut self.out
    }
}

impl Conn {
    fn find(&self, symbol: &str) -> Option<usize> {
        self.books.iter().position(|b| b.instrument.symbol == symbol)
    }

    fn kraken_request(&mut self, text: &[u8]) {
        let mut buf = text.to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut buf) else {
            self.out.push(r#"{"error":"Malformed request","success":false}"#.to_owned());
            return;
        };
        let method = v.get("method").and_then(|m| m.as_str()).unwrap_or("").to_owned();
        let req_id = v.get("req_id").and_then(ValueAsScalar::as_u64);
        let req = req_id.map(|r| format!(r#","req_id":{r}"#)).unwrap_or_default();
        let params = v.get("params");
        let channel = params.and_then(|p| p.get("channel")).and_then(|c| c.as_str()).map(str::to_owned);
        let symbols: Vec<String> = params
            .and_then(|p| p.get("symbol"))
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str()).map(str::to_owned).collect())
            .unwrap_or_default();
        let asked_depth = params.and_then(|p| p.get("depth")).and_then(ValueAsScalar::as_u64);
        let depth = asked_depth.unwrap_or(10);
        self.shared.log().requests.push(Request {
            at_ns: crate::server::unix_ns(),
            connection: self.number,
            method: method.clone(),
            channel: channel.clone(),
            symbols: symbols.clone(),
            depth: asked_depth,
        });
        let t = market::rfc3339(unix_ns());
        let times = format!(r#","time_in":"{t}","time_out":"{t}""#);
        match (method.as_str(), channel.as_deref()) {
            ("ping", _) => self.out.push(format!(r#"{{"method":"pong"{req}{times}}}"#)),
            ("subscribe", Some("instrument")) => {
                self.out.push(format!(
                    r#"{{"method":"subscribe","result":{{"channel":"instrument","snapshot":true}},"success":true{req}{times}}}"#
                ));
                self.out.push(market::instrument_frame(&self.shared.config.instruments));
            }
            ("subscribe" | "unsubscribe", Some("book")) => {
                let subscribe = method == "subscribe";
                for sym in symbols {
                    let found = self.find(&sym).filter(|_| !self.shared.config.reject.contains(&sym));
                    let error = match found {
                        None => Some(format!("Currency pair not supported {sym}")),
                        Some(_) if ![10, 25, 100, 500, 1000].contains(&depth) => Some("Invalid depth".to_owned()),
                        Some(i) if subscribe && self.subs.contains_key(&i) => Some("Already subscribed".to_owned()),
                        Some(i) if !subscribe && !self.subs.contains_key(&i) => {
                            Some("Subscription Not Found".to_owned())
                        }
                        Some(_) => None,
                    };
                    if let Some(e) = error {
                        self.out.push(format!(
                            r#"{{"error":"{e}","method":"{method}","success":false,"symbol":"{sym}"{req}{times}}}"#
                        ));
                        continue;
                    }
                    let Some(i) = found else { continue };
                    let snap = if subscribe { r#","snapshot":true"# } else { "" };
                    let ack = format!(
                        r#"{{"method":"{method}","result":{{"channel":"book","depth":{depth}{snap},"symbol":"{sym}"}},"success":true{req}{times}}}"#
                    );
                    if !subscribe {
                        // Kraken processes an unsubscribe in its own time: until the next tick the
                        // book is still subscribed, and a subscribe right behind it is refused
                        // with `Already subscribed` (and no snapshot).
                        self.unsubscribing.push((i, ack));
                        continue;
                    }
                    self.out.push(ack);
                    let d = usize::try_from(depth).unwrap_or(10);
                    self.subs.insert(i, d);
                    let book = &self.books[i];
                    let view = book.view(d);
                    let crc = market::checksum(&view, &book.instrument);
                    let trim = self.rng.percent(50);
                    self.out.push(market::snapshot_frame(&view, &book.instrument, crc, unix_ns(), trim));
                }
            }
            _ => self
                .out
                .push(format!(r#"{{"error":"Unsupported request","method":"{method}","success":false{req}{times}}}"#)),
        }
    }

    fn kraken_tick(&mut self) {
        for (i, ack) in std::mem::take(&mut self.unsubscribing) {
            self.subs.remove(&i);
            self.out.push(ack);
        }
        let i = usize::try_from(self.rng.below(self.books.len() as u64)).unwrap_or(0);
        let depth = self.subs.get(&i).copied();
        let before = depth.map(|d| self.books[i].view(d)).unwrap_or_default();
        // One to three order-flow events per message, as Kraken batches them.
        for _ in 0..=self.rng.below(3) {
            self.books[i].step(&mut self.rng);
        }
        let Some(d) = depth else { return };
        let book = &self.books[i];
        let after: View = book.view(d);
        let changes = market::diff(&before, &after, book);
        if changes.is_empty() {
            return;
        }
        let symbol = book.instrument.symbol.clone();
        let hits = |target: &Option<Option<String>>| match target {
            Some(None) => true,
            Some(Some(s)) => *s == symbol,
            None => false,
        };
        if hits(&self.drop) {
            self.drop = None;
            self.applied(Fault::DropUpdate(Some(symbol.clone())), Some(symbol));
            return;
        }
        let mut crc = market::checksum(&after, &book.instrument);
        if hits(&self.corrupt) {
            self.corrupt = None;
            crc ^= 0x5a5a_5a5a;
            self.applied(Fault::CorruptChecksum(Some(symbol.clone())), Some(symbol));
        }
        let trim = self.rng.percent(50);
        let book = &self.books[i];
        self.out.push(market::update_frame(&changes, &book.instrument, crc, unix_ns(), trim));
    }
}
