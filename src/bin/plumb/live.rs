//! `plumb watch`, `plumb demo` and `plumb record`: the live connector on the command line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plumb::book::kraken::Outcome;
use plumb::book::publish::{Reader, Status};
use plumb::book::{Depth, Quote};
use plumb::feed::exchange::Exchange as Venue;
use plumb::feed::{Binance, Bybit, Coinbase, Event, Events, Feed, FeedBuilder, Kraken, Market, Okx};
use plumb_sim::{Exchange, ExchangeConfig, FaultPlan};

use crate::json::{json_levels, json_str, proof_json, status_name};

#[expect(clippy::disallowed_methods, reason = "the command line stamps what it prints with wall-clock time")]
pub(crate) fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
}

/// One microsecond buckets up to 100 ms.
const LATENCY_BUCKETS: usize = 100_001;

#[derive(Default, Clone)]
struct PerBook {
    messages: u64,
    verified: u64,
    mismatches: u64,
    resyncs: u64,
    window: u64,
    rate: f64,
    /// Receive time of the last verified message.
    last_verified_ns: u64,
}

/// One book a live command shows: its exchange, symbol and reader.
struct Row {
    feed: usize,
    symbol: String,
    reader: Reader,
}

/// What the live commands share: the feeds (one per exchange), their events merged into one
/// stream, counts per book, latencies, and output.
pub(crate) struct Live {
    feeds: Vec<(&'static str, Feed)>,
    /// The feeds' event streams, until `run` starts forwarding them.
    streams: Vec<Option<Events>>,
    events: tokio::sync::mpsc::UnboundedReceiver<(usize, Event)>,
    forward: tokio::sync::mpsc::UnboundedSender<(usize, Event)>,
    rows: Vec<Row>,
    per: HashMap<(usize, String), PerBook>,
    /// Latency counts per microsecond, the last bucket holding everything from `LATENCY_BUCKETS - 1`
    /// µs up: percentiles exact to the microsecond, in fixed memory, without sorting.
    latency_us: Vec<u64>,
    json: bool,
    tty: bool,
    out: std::io::StdoutLock<'static>,
    connected: Vec<bool>,
    disconnects: u64,
    started_ns: u64,
    rendered_ns: u64,
    recent: std::collections::VecDeque<String>,
}

impl Live {
    /// Shows these feeds (exchange name, feed, the symbols to show), each book a row.
    pub(crate) fn new(feeds: Vec<(&'static str, Feed, Vec<String>)>, json: bool) -> Self {
        let (forward, events) = tokio::sync::mpsc::unbounded_channel();
        let mut rows = Vec::new();
        let mut streams = Vec::new();
        let mut kept = Vec::new();
        for (k, (name, mut feed, symbols)) in feeds.into_iter().enumerate() {
            streams.push(feed.events());
            for s in symbols {
                let reader = feed.reader(&s).expect("every symbol has a reader");
                rows.push(Row { feed: k, symbol: s, reader });
            }
            kept.push((name, feed));
        }
        let per = rows.iter().map(|r| ((r.feed, r.symbol.clone()), PerBook::default())).collect();
        Self {
            connected: vec![false; kept.len()],
            feeds: kept,
            streams,
            events,
            forward,
            rows,
            per,
            latency_us: vec![0; LATENCY_BUCKETS],
            json,
            tty: !json && std::io::stdout().is_terminal(),
            out: std::io::stdout().lock(),
            disconnects: 0,
            started_ns: unix_ns(),
            rendered_ns: unix_ns(),
            recent: std::collections::VecDeque::new(),
        }
    }

    /// A notable event: a line of its own when piped, the "recent" list of the terminal view.
    fn note(&mut self, s: &str) {
        if self.tty {
            #[expect(clippy::cast_precision_loss, reason = "seconds for display")]
            let at = unix_ns().saturating_sub(self.started_ns) as f64 / 1e9;
            if self.recent.len() == 6 {
                self.recent.pop_front();
            }
            self.recent.push_back(format!("{at:>6.1}s  {s}"));
        } else {
            self.line(s);
        }
    }

    fn line(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.write_all(b"\n");
    }

    fn event_json(&mut self, feed: usize, kind: &str, symbol: Option<&str>, extra: &str) {
        let mut s = format!("{{\"event\":\"{kind}\",\"exchange\":\"{}\"", self.feeds[feed].0);
        if let Some(sym) = symbol {
            s.push_str(",\"symbol\":");
            json_str(&mut s, sym);
        }
        s.push_str(extra);
        s.push('}');
        self.line(&s);
    }

    /// A book line: the reader's levels, read now, with the event's status when the event was not
    /// valid (the reader may have moved on to a later, valid book since; a line must never say
    /// valid for a message that was not).
    fn book_json(&mut self, i: usize, status: Status) {
        let snap = self.rows[i].reader.snapshot::<10>();
        let h = snap.header;
        if h.status == Status::Empty {
            return;
        }
        let mut extra = String::new();
        if status == Status::Valid {
            extra.push_str(&format!(",\"state\":\"{}\"", status_name(h.status)));
            proof_json(&mut extra, h.checksum, h.proof);
        } else {
            extra.push_str(&format!(",\"state\":\"{}\"", status_name(status)));
            proof_json(&mut extra, 0, plumb::book::Proof::None);
        }
        extra.push_str(",\"bids\":");
        json_levels(&mut extra, snap.bids().iter().copied());
        extra.push_str(",\"asks\":");
        json_levels(&mut extra, snap.asks().iter().copied());
        let (feed, sym) = (self.rows[i].feed, self.rows[i].symbol.clone());
        self.event_json(feed, "book", Some(&sym), &extra);
    }

    /// Handles one event: counts, and prints what `--json` or the plain view wants.
    fn on_event(&mut self, feed: usize, e: &Event) {
        let now = unix_ns();
        match e {
            Event::Book(b) => {
                let Some(i) = self.rows.iter().position(|r| r.feed == feed && *r.symbol == *b.symbol) else { return };
                let p = self.per.entry((feed, self.rows[i].symbol.clone())).or_default();
                p.messages += 1;
                p.window += 1;
                match b.outcome {
                    Outcome::Verified(_) | Outcome::InSequence(_) | Outcome::Whole => {
                        p.verified += 1;
                        p.last_verified_ns = b.received_ns;
                    }
                    Outcome::Mismatch { .. } | Outcome::Gap { .. } => p.mismatches += 1,
                    _ => {}
                }
                if b.exchange_time_ns > 0 && now > b.exchange_time_ns {
                    let us = usize::try_from((now - b.exchange_time_ns) / 1000).unwrap_or(usize::MAX);
                    self.latency_us[us.min(LATENCY_BUCKETS - 1)] += 1;
                }
                if self.json {
                    self.book_json(i, b.status);
                }
            }
            Event::ResyncStarted { symbol, reason } => {
                if let Some(p) = self.per.get_mut(&(feed, symbol.to_string())) {
                    p.resyncs += 1;
                }
                if self.json {
                    self.event_json(feed, "resync", Some(symbol), &format!(",\"reason\":\"{}\"", reason.as_str()));
                } else {
                    self.note(&format!("resync     {} {symbol}: {}", self.feeds[feed].0, reason.as_str()));
                }
            }
            Event::ResyncFinished { symbol, took } => {
                if self.json {
                    self.event_json(feed, "resynced", Some(symbol), &format!(",\"took_ms\":{}", took.as_millis()));
                } else {
                    self.note(&format!("resynced   {} {symbol} in {} ms", self.feeds[feed].0, took.as_millis()));
                }
            }
            Event::Connected => {
                self.connected[feed] = true;
                if self.json {
                    self.event_json(feed, "connected", None, "");
                } else {
                    self.note(&format!("connected  {}", self.feeds[feed].0));
                }
            }
            Event::RolledOver => {
                if self.json {
                    self.event_json(feed, "rolled_over", None, "");
                } else {
                    self.note(&format!("rolled over {} to a new connection", self.feeds[feed].0));
                }
            }
            Event::Disconnected { reason } => {
                self.connected[feed] = false;
                self.disconnects += 1;
                // The transport's own words, when it failed: the reason alone says too little.
                let detail = match reason {
                    plumb::feed::Disconnect::Transport(text) => Some(&**text),
                    _ => None,
                };
                if self.json {
                    let mut extra = format!(",\"reason\":\"{}\"", reason.as_str());
                    if let Some(text) = detail {
                        extra.push_str(",\"message\":");
                        json_str(&mut extra, text);
                    }
                    self.event_json(feed, "disconnected", None, &extra);
                } else {
                    let detail = detail.map(|t| format!(" ({t})")).unwrap_or_default();
                    self.note(&format!("disconnected {}: {}{detail}", self.feeds[feed].0, reason.as_str()));
                }
            }
            Event::ResyncBackoff { symbol, reason, failures, retry_in } => {
                if self.json {
                    let extra = format!(
                        ",\"reason\":\"{}\",\"failures\":{failures},\"retry_in_ms\":{}",
                        reason.as_str(),
                        retry_in.as_millis()
                    );
                    self.event_json(feed, "resync_backoff", Some(symbol), &extra);
                } else {
                    self.note(&format!(
                        "backoff    {} {symbol}: {} right after {failures} snapshots in a row; next try in {} ms",
                        self.feeds[feed].0,
                        reason.as_str(),
                        retry_in.as_millis()
                    ));
                }
            }
            Event::Stale { silent_for } => {
                if self.json {
                    self.event_json(feed, "stale", None, &format!(",\"silent_ms\":{}", silent_for.as_millis()));
                } else {
                    self.note(&format!(
                        "stale      {}: nothing for {} ms; reconnecting",
                        self.feeds[feed].0,
                        silent_for.as_millis()
                    ));
                }
            }
            Event::Error(err) => {
                let msg = err.to_string();
                if self.json {
                    let mut extra = String::from(",\"message\":");
                    json_str(&mut extra, &msg);
                    self.event_json(feed, "error", None, &extra);
                } else {
                    self.note(&format!("error      {}: {msg}", self.feeds[feed].0));
                }
            }
            Event::QuietSymbol { symbol, quiet_for, usual_gap } => {
                if self.json {
                    let extra =
                        format!(",\"quiet_ms\":{},\"usual_gap_ms\":{}", quiet_for.as_millis(), usual_gap.as_millis());
                    self.event_json(feed, "quiet", Some(symbol), &extra);
                } else {
                    self.note(&format!(
                        "quiet      {} {symbol}: nothing for {} ms (usually every {} ms) while the rest flows",
                        self.feeds[feed].0,
                        quiet_for.as_millis(),
                        usual_gap.as_millis()
                    ));
                }
            }
            Event::ErrorsSuppressed { count } => {
                if self.json {
                    self.event_json(feed, "errors_suppressed", None, &format!(",\"count\":{count}"));
                } else {
                    self.note(&format!("error      {}: {count} more like these held back", self.feeds[feed].0));
                }
            }
            Event::Lagged { dropped } if self.json => {
                self.event_json(feed, "lagged", None, &format!(",\"dropped\":{dropped}"));
            }
            _ => {}
        }
    }

    fn percentile(&self, p: f64) -> Option<u64> {
        let total: u64 = self.latency_us.iter().sum();
        if total == 0 {
            return None;
        }
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a rank within the count")]
        let rank = ((total as f64 * p).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        self.latency_us
            .iter()
            .position(|&n| {
                seen += n;
                seen >= rank
            })
            .map(|us| us as u64)
    }

    fn fmt_quote(q: Option<Quote>) -> String {
        q.map_or_else(|| "-".to_owned(), |q| q.price.to_string())
    }

    /// The terminal view (TTY) or a plain status block (not a TTY, every few seconds).
    fn render(&mut self, elapsed: Duration, extra: &str) {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let now = unix_ns();
        #[expect(clippy::cast_precision_loss, reason = "a display rate")]
        let since = (now.saturating_sub(self.rendered_ns) as f64 / 1e9).max(1e-3);
        self.rendered_ns = now;
        for p in self.per.values_mut() {
            #[expect(clippy::cast_precision_loss, reason = "a display rate")]
            let w = p.window as f64;
            p.rate = w / since;
            p.window = 0;
        }
        let c = self.counts();
        let mut s = String::new();
        if self.tty {
            s.push_str("\x1b[H\x1b[2J");
        }
        let names: Vec<String> = self
            .feeds
            .iter()
            .zip(&self.connected)
            .map(|((n, _), up)| format!("{n} {}", if *up { "connected" } else { "DISCONNECTED" }))
            .collect();
        let _ = writeln!(s, "plumb  {}  {:.0}s  {}", names.join(", "), secs, extra);
        let _ = writeln!(
            s,
            "{:<13} {:<6} {:>12} {:>12} {:>9} {:<9} {:>5} {:>6} {:>4}",
            "symbol", "venue", "bid", "ask", "spread", "state", "upd/s", "proved", "rsyn"
        );
        for row in &self.rows {
            let sym = &row.symbol;
            let top = row.reader.top();
            let p = self.per.get(&(row.feed, sym.clone())).cloned().unwrap_or_default();
            let spread = match (top.bid, top.ask) {
                (Some(b), Some(a)) => (a.price.to_decimal() - b.price.to_decimal()).normalize().to_string(),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                s,
                "{:<13} {:<6} {:>12} {:>12} {:>9} {:<9} {:>5.0} {:>6} {:>4}",
                sym,
                self.feeds[row.feed].0,
                Self::fmt_quote(top.bid),
                Self::fmt_quote(top.ask),
                spread,
                status_name(top.header.status),
                p.rate,
                p.verified,
                p.resyncs
            );
        }
        let lat = |p| self.percentile(p).map_or_else(|| "-".to_owned(), |v| format!("{v} µs"));
        let _ = writeln!(
            s,
            "\nframes {}  checksums {}  mismatches {}  in sequence {}  gaps {}  resyncs {}  reconnects {}  \
             connect failures {}  REST fetches {} ({} failed)",
            c.frames,
            c.checksums_verified,
            c.checksum_mismatches,
            c.sequence_verified,
            c.sequence_gaps,
            c.resyncs,
            c.reconnects,
            c.connect_failures,
            c.fetches,
            c.fetch_failures
        );
        let _ = writeln!(s, "latency, exchange stamp to event: p50 {}  p99 {}", lat(0.5), lat(0.99));
        if self.tty && !self.recent.is_empty() {
            s.push_str("\nrecent:\n");
            for r in &self.recent {
                let _ = writeln!(s, "  {r}");
            }
        }
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.flush();
    }

    /// Runs until `until` (or Ctrl-C), printing as it goes.
    async fn run(&mut self, until: Option<tokio::time::Instant>) {
        // Each feed's events go into one stream, tagged with the feed.
        for (k, stream) in self.streams.iter_mut().enumerate() {
            let Some(mut events) = stream.take() else { continue };
            let tx = self.forward.clone();
            tokio::spawn(async move {
                while let Some(e) = events.recv().await {
                    if tx.send((k, e)).is_err() {
                        break;
                    }
                }
            });
        }
        let start = tokio_now();
        let mut next_render = start + Duration::from_millis(if self.tty { 250 } else { 2000 });
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            let deadline = until.map_or(next_render, |u| u.min(next_render));
            tokio::select! {
                e = self.events.recv() => match e {
                    Some((feed, e)) => self.on_event(feed, &e),
                    None => return,
                },
                () = tokio::time::sleep_until(deadline) => {
                    if until.is_some_and(|u| tokio_now() >= u) {
                        return;
                    }
                    if !self.json {
                        self.render(tokio_now() - start, "");
                    }
                    next_render = tokio_now() + Duration::from_millis(if self.tty { 250 } else { 2000 });
                },
                _ = &mut ctrl_c => return,
            }
        }
    }

    /// The counts of every feed, added up.
    fn counts(&self) -> plumb::feed::Counts {
        let mut t = plumb::feed::Counts::default();
        for (_, f) in &self.feeds {
            let c = f.counts();
            t.frames += c.frames;
            t.book_messages += c.book_messages;
            t.checksums_verified += c.checksums_verified;
            t.checksum_mismatches += c.checksum_mismatches;
            t.sequence_verified += c.sequence_verified;
            t.sequence_gaps += c.sequence_gaps;
            t.unverified_updates += c.unverified_updates;
            t.ignored += c.ignored;
            t.errors += c.errors;
            t.resyncs += c.resyncs;
            t.reconnects += c.reconnects;
            t.fetches += c.fetches;
            t.fetch_failures += c.fetch_failures;
            t.connect_failures += c.connect_failures;
        }
        t
    }

    fn summary(&mut self, extra: &str) -> String {
        let c = self.counts();
        let names: Vec<&str> = self.feeds.iter().map(|(n, _)| *n).collect();
        let mut s = format!(
            "{{\"event\":\"summary\",\"exchange\":\"{}\",\"frames\":{},\"book_messages\":{},\"checksums_verified\":{},\
             \"checksum_mismatches\":{},\"sequence_verified\":{},\"sequence_gaps\":{},\"unverified_updates\":{},\
             \"ignored\":{},\"errors\":{},\"resyncs\":{},\"reconnects\":{},\"connect_failures\":{},\"fetches\":{},\
             \"fetch_failures\":{}",
            names.join(","),
            c.frames,
            c.book_messages,
            c.checksums_verified,
            c.checksum_mismatches,
            c.sequence_verified,
            c.sequence_gaps,
            c.unverified_updates,
            c.ignored,
            c.errors,
            c.resyncs,
            c.reconnects,
            c.connect_failures,
            c.fetches,
            c.fetch_failures
        );
        if let (Some(p50), Some(p99)) = (self.percentile(0.5), self.percentile(0.99)) {
            let _ = write!(s, ",\"latency_us\":{{\"p50\":{p50},\"p99\":{p99}}}");
        }
        s.push_str(extra);
        s.push_str(",\"books\":[");
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let h = row.reader.top().header;
            let _ = write!(s, "{{\"exchange\":\"{}\",\"symbol\":", self.feeds[row.feed].0);
            json_str(&mut s, &row.symbol);
            let _ = write!(s, ",\"state\":\"{}\"", status_name(h.status));
            proof_json(&mut s, h.checksum, h.proof);
            s.push('}');
        }
        s.push_str("]}");
        s
    }

    fn all_valid(&self) -> bool {
        self.rows.iter().all(|r| r.reader.top().header.status == Status::Valid)
    }
}

#[expect(clippy::disallowed_methods, reason = "the command line's own timers")]
fn tokio_now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Installs the Prometheus exporter (its own thread) before any feed registers its meters.
pub(crate) fn serve_metrics(addr: Option<std::net::SocketAddr>) -> Result<(), String> {
    let Some(addr) = addr else { return Ok(()) };
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&[10e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.1, 0.5, 1.0])
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("metrics on {addr}: {e}"))
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// The feed a live command asks for.
fn builder<E: Venue>(
    exchange: E,
    urls: (Option<String>, Option<String>),
    symbols: &[String],
    depth: Depth,
) -> FeedBuilder<E> {
    let b = FeedBuilder::new(exchange).symbols(symbols.iter().cloned()).depth(depth).seed(unix_ns());
    let b = match urls.0 {
        Some(u) => b.url(u),
        None => b,
    };
    match urls.1 {
        Some(u) => b.rest_url(u),
        None => b,
    }
}

/// What `plumb watch` was asked.
pub(crate) struct WatchArgs {
    pub(crate) url: Option<String>,
    pub(crate) rest_url: Option<String>,
    pub(crate) symbols: Vec<String>,
    pub(crate) json: bool,
    pub(crate) duration: Option<f64>,
}

/// `plumb watch`, monomorphised for the exchange picked on the command line.
pub(crate) fn watch<E: Venue>(exchange: E, depth: Depth, a: WatchArgs) -> ExitCode {
    let feed = match builder(exchange, (a.url, a.rest_url), &a.symbols, depth).start() {
        Ok(f) => f,
        Err(e) => return crate::usage_error(&e.to_string()),
    };
    let Ok(rt) = runtime() else { return ExitCode::from(1) };
    let json = a.json;
    let mut live = Live::new(vec![(E::NAME, feed, a.symbols)], json);
    rt.block_on(async {
        let until = a.duration.map(|d| tokio_now() + Duration::from_secs_f64(d.max(0.0)));
        live.run(until).await;
    });
    let summary = live.summary("");
    if json {
        live.line(&summary);
    } else {
        live.render(Duration::from_nanos(unix_ns().saturating_sub(live.started_ns)), "(final)");
    }
    if live.all_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Options of `plumb demo`.
pub(crate) struct DemoArgs {
    pub(crate) duration: f64,
    pub(crate) symbols: Vec<String>,
    pub(crate) bybit_symbols: Vec<String>,
    pub(crate) okx_symbols: Vec<String>,
    pub(crate) coinbase_symbols: Vec<String>,
    pub(crate) binance_symbols: Vec<String>,
    pub(crate) rate: u32,
    pub(crate) faults: Faults,
    pub(crate) json: bool,
}

/// How often the demo exchange misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Faults {
    /// Never.
    Off,
    /// A fault every 4 seconds.
    Some,
    /// A fault every 1.5 seconds.
    Many,
}

/// How many applied faults were followed by proof that the books they could have hurt are right
/// again (a verified checksum, or a message in sequence since a fresh snapshot, received after
/// the fault).
fn recovered(live: &Live, applied: &[plumb_sim::Applied]) -> usize {
    applied
        .iter()
        .filter(|a| {
            live.per
                .iter()
                .filter(|((_, sym), _)| a.symbol.as_ref().is_none_or(|s| s == sym))
                .all(|(_, p)| p.last_verified_ns > a.unix_ns)
        })
        .count()
}

/// The demo's feed of one exchange: reconnecting fast, stale after 2 s of silence.
fn demo_feed<E: Venue>(
    exchange: E,
    url: String,
    rest: Option<String>,
    symbols: &[String],
) -> plumb::feed::Result<Feed> {
    let b = FeedBuilder::new(exchange);
    let b = match rest {
        Some(r) => b.rest_url(r),
        None => b.no_rest(),
    };
    b.url(url)
        .symbols(symbols.iter().cloned())
        .stale_after(Duration::from_secs(2))
        .ping_after(Duration::from_secs(1))
        .backoff(plumb::feed::Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) })
        .seed(unix_ns())
        .start()
}

/// Levels a side of the demo's Coinbase BTC-USD book: a snapshot of about 4 MB, on every
/// (re)subscription.
const DEMO_COINBASE_DEPTH: usize = 20_000;

/// `plumb demo`: the simulated Kraken, Bybit, OKX and Coinbase venues on one loopback server, a
/// feed for each.
pub(crate) fn demo(args: &DemoArgs) -> ExitCode {
    let Ok(rt) = runtime() else { return ExitCode::from(1) };
    let plan = match args.faults {
        Faults::Off => FaultPlan::Off,
        Faults::Some => FaultPlan::Every { period: Duration::from_secs(4), silence: Duration::from_secs(3) },
        Faults::Many => FaultPlan::Every { period: Duration::from_millis(1500), silence: Duration::from_secs(3) },
    };
    let config = ExchangeConfig {
        rate: args.rate.max(1),
        plan,
        seed: unix_ns(),
        coinbase_depth: DEMO_COINBASE_DEPTH,
        ..ExchangeConfig::default()
    };
    let venues = [
        (&args.symbols, &config.instruments),
        (&args.bybit_symbols, &config.bybit_instruments),
        (&args.okx_symbols, &config.okx_instruments),
        (&args.coinbase_symbols, &config.coinbase_instruments),
        (&args.binance_symbols, &config.binance_instruments),
    ];
    for (names, listed) in venues {
        let known: Vec<String> = listed.iter().map(|i| i.symbol.clone()).collect();
        if let Some(bad) = names.iter().find(|s| !known.contains(s)) {
            return crate::usage_error(&format!("the demo exchange lists {}; not {bad}", known.join(", ")));
        }
    }
    if args.symbols.is_empty()
        && args.bybit_symbols.is_empty()
        && args.okx_symbols.is_empty()
        && args.coinbase_symbols.is_empty()
        && args.binance_symbols.is_empty()
    {
        return crate::usage_error("no symbols to show");
    }
    rt.block_on(async {
        let exchange = match Exchange::start(config).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("plumb: could not start the demo exchange: {e}");
                return ExitCode::from(1);
            }
        };
        let mut feeds = Vec::new();
        if !args.symbols.is_empty() {
            match demo_feed(Kraken, exchange.url(), None, &args.symbols) {
                Ok(f) => feeds.push((Kraken::NAME, f, args.symbols.clone())),
                Err(e) => return crate::usage_error(&e.to_string()),
            }
        }
        if !args.bybit_symbols.is_empty() {
            match demo_feed(Bybit::new(Market::Spot), exchange.bybit_url("spot"), None, &args.bybit_symbols) {
                Ok(f) => feeds.push((Bybit::NAME, f, args.bybit_symbols.clone())),
                Err(e) => return crate::usage_error(&e.to_string()),
            }
        }
        if !args.okx_symbols.is_empty() {
            match demo_feed(Okx, exchange.okx_url(), Some(exchange.okx_rest_url()), &args.okx_symbols) {
                Ok(f) => feeds.push((Okx::NAME, f, args.okx_symbols.clone())),
                Err(e) => return crate::usage_error(&e.to_string()),
            }
        }
        if !args.coinbase_symbols.is_empty() {
            match demo_feed(Coinbase, exchange.coinbase_url(), None, &args.coinbase_symbols) {
                Ok(f) => feeds.push((Coinbase::NAME, f, args.coinbase_symbols.clone())),
                Err(e) => return crate::usage_error(&e.to_string()),
            }
        }
        if !args.binance_symbols.is_empty() {
            let url = format!("{}/ws", exchange.binance_base());
            match demo_feed(Binance, url, Some(exchange.rest_url()), &args.binance_symbols) {
                Ok(f) => feeds.push((Binance::NAME, f, args.binance_symbols.clone())),
                Err(e) => return crate::usage_error(&e.to_string()),
            }
        }
        let mut live = Live::new(feeds, args.json);
        if !live.json && !live.tty {
            live.line(&format!("demo exchanges on {}; faults {}", exchange.addr(), faults_name(args.faults)));
        }
        let until = tokio_now() + Duration::from_secs_f64(args.duration.max(0.0));
        live.run(Some(until)).await;
        // No new faults; give the last ones time to heal before judging.
        exchange.stop_faults();
        let grace = tokio_now() + Duration::from_secs(10);
        while tokio_now() < grace {
            let applied = exchange.applied();
            if live.all_valid() && recovered(&live, &applied) == applied.len() {
                break;
            }
            live.run(Some(tokio_now() + Duration::from_millis(200))).await;
        }
        let applied = exchange.applied();
        let ok_faults = recovered(&live, &applied);
        let mut by_kind: HashMap<&str, usize> = HashMap::new();
        for a in &applied {
            *by_kind.entry(a.fault.name()).or_default() += 1;
        }
        let mut kinds: Vec<_> = by_kind.into_iter().collect();
        kinds.sort_unstable();
        let mut extra =
            format!(",\"faults_injected\":{},\"faults_recovered\":{ok_faults},\"faults\":{{", applied.len());
        for (i, (k, n)) in kinds.iter().enumerate() {
            let _ = write!(extra, "{}\"{k}\":{n}", if i > 0 { "," } else { "" });
        }
        extra.push('}');
        let ok = live.all_valid() && ok_faults == applied.len();
        if args.json {
            let s = live.summary(&extra);
            live.line(&s);
        } else {
            live.render(
                Duration::from_nanos(unix_ns().saturating_sub(live.started_ns)),
                &format!("faults injected {} recovered {ok_faults}", applied.len()),
            );
            let verdict = if ok {
                "every book ended valid and every injected fault was recovered"
            } else {
                "NOT every book ended valid, or a fault was not recovered"
            };
            live.line(&format!("\n{verdict}"));
        }
        drop(exchange);
        if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
    })
}

fn faults_name(f: Faults) -> &'static str {
    match f {
        Faults::Off => "off",
        Faults::Some => "some",
        Faults::Many => "many",
    }
}

/// `plumb record`: raw frames with receive timestamps, in the capture format `plumb replay` reads.
pub(crate) fn record<E: Venue>(
    exchange: E,
    depth: Depth,
    urls: (Option<String>, Option<String>),
    symbols: &[String],
    out: &std::path::Path,
    duration: Option<f64>,
) -> ExitCode {
    let file = match std::fs::File::create(out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("plumb: {}: {e}", out.display());
            return ExitCode::from(2);
        }
    };
    // The tap only hands each frame over; a writer thread does the file I/O, off the feed thread.
    let (tx, rx) = std::sync::mpsc::channel::<(u64, Vec<u8>)>();
    let writer = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut w = std::io::BufWriter::new(file);
        let mut n = 0;
        for (ns, mut frame) in rx {
            write!(w, "{ns}\t")?;
            // One line per frame: a raw line break can only be JSON whitespace (inside a string
            // it would be escaped), so a space in its place reads the same.
            for b in frame.iter_mut().filter(|b| matches!(b, b'\n' | b'\r')) {
                *b = b' ';
            }
            w.write_all(&frame)?;
            w.write_all(b"\n")?;
            n += 1;
        }
        w.flush()?;
        Ok(n)
    });
    // Nothing reads events while recording: book events are not even made.
    let builder = builder(exchange, urls, symbols, depth).book_events(false).tap(move |frame, ns| {
        let _ = tx.send((ns, frame.to_vec()));
    });
    let mut feed = match builder.start() {
        Ok(f) => f,
        Err(e) => return crate::usage_error(&e.to_string()),
    };
    let mut events = feed.events();
    let Ok(rt) = runtime() else { return ExitCode::from(1) };
    rt.block_on(async {
        let deadline = duration.map(|d| tokio_now() + Duration::from_secs_f64(d.max(0.0)));
        let until = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until);
        // What happens to the connection is said as it happens (a recording with no network
        // must not sit silent).
        loop {
            tokio::select! {
                () = &mut until => break,
                _ = tokio::signal::ctrl_c() => break,
                e = async {
                    match events.as_mut() {
                        Some(ev) => ev.recv().await,
                        None => std::future::pending().await,
                    }
                } => match e {
                    Some(Event::Connected) => eprintln!("plumb: connected"),
                    Some(Event::RolledOver) => eprintln!("plumb: rolled over to a new connection (its first frames are not recorded)"),
                    Some(Event::Disconnected { reason }) => eprintln!("plumb: disconnected ({})", reason.as_str()),
                    Some(Event::Error(err)) => eprintln!("plumb: {err}"),
                    Some(_) => {}
                    None => events = None,
                },
            }
        }
    });
    feed.close();
    match writer.join() {
        Ok(Ok(0)) => {
            eprintln!("plumb: recorded nothing to {}", out.display());
            ExitCode::from(1)
        }
        Ok(Ok(n)) => {
            eprintln!("plumb: recorded {n} frames to {}", out.display());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("plumb: {}: {e}", out.display());
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}
