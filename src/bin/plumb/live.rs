//! `plumb watch`, `plumb demo` and `plumb record`: the live connector on the command line.
//! `watch` and `demo` run every exchange through one [`Books`] manager.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plumb::book::kraken::Outcome;
use plumb::book::publish::{Reader, Status};
use plumb::book::{Decimal64, Depth, Quote};
use plumb::feed::{Backoff, Event, FeedBuilder};
use plumb::manager::{BookEvents, Books, BooksBuilder, Consolidated, Listed, Venue, VenueEvent};
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

/// One book a live command shows: its venue, symbol and reader.
struct Row {
    venue: Venue,
    symbol: String,
    reader: Reader,
}

/// A fault a simulated venue applied, until its books prove healed.
struct Injected {
    venue: Venue,
    name: &'static str,
    symbol: Option<String>,
    at_ns: u64,
}

/// What the live commands share: the manager, its merged events, counts per book, latencies,
/// and output.
pub(crate) struct Live {
    books: Books,
    events: Option<BookEvents>,
    venues: Vec<Venue>,
    rows: Vec<Row>,
    per: HashMap<(Venue, String), PerBook>,
    /// Latency counts per microsecond, the last bucket holding everything from `LATENCY_BUCKETS - 1`
    /// µs up: percentiles exact to the microsecond, in fixed memory, without sorting.
    latency_us: Vec<u64>,
    json: bool,
    tty: bool,
    out: std::io::StdoutLock<'static>,
    disconnects: u64,
    started_ns: u64,
    rendered_ns: u64,
    recent: std::collections::VecDeque<String>,
    /// The instruments the view consolidates across venues (two venues or more).
    consolidated: Vec<Consolidated>,
    /// The demo's simulated venues: their faults are named as injected, and followed until healed.
    sims: Vec<(Venue, Exchange)>,
    seen_faults: Vec<usize>,
    open_faults: Vec<Injected>,
    /// Whether the alternate screen is on (a terminal view that redraws in place).
    alternate: bool,
}

/// How wide the terminal is: `COLUMNS` when the shell exports it, else 80.
fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()).filter(|w| *w >= 40).unwrap_or(80)
}

impl Live {
    /// Shows these books of the manager, each a row.
    pub(crate) fn new(mut books: Books, rows: &[(Venue, String)], json: bool) -> Self {
        let events = books.events();
        let rows: Vec<Row> = rows
            .iter()
            .filter_map(|(v, s)| Some(Row { venue: *v, symbol: s.clone(), reader: books.reader(*v, s)? }))
            .collect();
        let per = rows.iter().map(|r| ((r.venue, r.symbol.clone()), PerBook::default())).collect();
        let venues: Vec<Venue> = books.venues().collect();
        let consolidated = ["BTC", "ETH", "SOL"]
            .iter()
            .filter_map(|i| books.consolidated(i))
            .filter(|c| c.quotes(Duration::ZERO).count() >= 2)
            .collect();
        Self {
            books,
            events,
            venues,
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
            consolidated,
            sims: Vec::new(),
            seen_faults: Vec::new(),
            open_faults: Vec::new(),
            alternate: false,
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
            self.recent.push_back(format!("{at:>5.1}s {s}"));
        } else {
            self.line(s);
        }
    }

    fn line(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.write_all(b"\n");
    }

    fn event_json(&mut self, venue: Venue, kind: &str, symbol: Option<&str>, extra: &str) {
        let mut s = format!("{{\"event\":\"{kind}\",\"exchange\":\"{venue}\"");
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
        let (venue, sym) = (self.rows[i].venue, self.rows[i].symbol.clone());
        self.event_json(venue, "book", Some(&sym), &extra);
    }

    /// Handles one event: counts, and prints what `--json` or the plain view wants.
    #[expect(clippy::too_many_lines, reason = "one arm per event, each short")]
    fn on_event(&mut self, ve: &VenueEvent) {
        let now = unix_ns();
        let venue = ve.venue;
        match &ve.event {
            Event::Book(b) => {
                let Some(i) = self.rows.iter().position(|r| r.venue == venue && *r.symbol == *b.symbol) else { return };
                let p = self.per.entry((venue, self.rows[i].symbol.clone())).or_default();
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
                if let Some(p) = self.per.get_mut(&(venue, symbol.to_string())) {
                    p.resyncs += 1;
                }
                if self.json {
                    self.event_json(venue, "resync", Some(symbol), &format!(",\"reason\":\"{}\"", reason.as_str()));
                } else {
                    self.note(&format!("resync     {venue} {symbol}: {}", reason.as_str()));
                }
            }
            Event::ResyncFinished { symbol, took } => {
                if self.json {
                    self.event_json(venue, "resynced", Some(symbol), &format!(",\"took_ms\":{}", took.as_millis()));
                } else {
                    self.note(&format!("resynced   {venue} {symbol} in {} ms", took.as_millis()));
                }
            }
            Event::Connected => {
                if self.json {
                    self.event_json(venue, "connected", None, &format!(",\"connection\":{}", ve.shard));
                } else {
                    self.note(&format!("connected  {venue}"));
                }
            }
            Event::RolledOver => {
                if self.json {
                    self.event_json(venue, "rolled_over", None, "");
                } else {
                    self.note(&format!("rolled over {venue} to a new connection"));
                }
            }
            Event::Disconnected { reason } => {
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
                    self.event_json(venue, "disconnected", None, &extra);
                } else {
                    let detail = detail.map(|t| format!(" ({t})")).unwrap_or_default();
                    self.note(&format!("disconnected {venue}: {}{detail}", reason.as_str()));
                }
            }
            Event::ResyncBackoff { symbol, reason, failures, retry_in } => {
                if self.json {
                    let extra = format!(
                        ",\"reason\":\"{}\",\"failures\":{failures},\"retry_in_ms\":{}",
                        reason.as_str(),
                        retry_in.as_millis()
                    );
                    self.event_json(venue, "resync_backoff", Some(symbol), &extra);
                } else {
                    self.note(&format!(
                        "backoff    {venue} {symbol}: {} right after {failures} snapshots; next in {} ms",
                        reason.as_str(),
                        retry_in.as_millis()
                    ));
                }
            }
            Event::Stale { silent_for } => {
                if self.json {
                    self.event_json(venue, "stale", None, &format!(",\"silent_ms\":{}", silent_for.as_millis()));
                } else {
                    self.note(&format!("stale      {venue}: nothing for {} ms; reconnecting", silent_for.as_millis()));
                }
            }
            Event::Error(err) => {
                let msg = err.to_string();
                if self.json {
                    let mut extra = String::from(",\"message\":");
                    json_str(&mut extra, &msg);
                    self.event_json(venue, "error", None, &extra);
                } else {
                    self.note(&format!("error      {venue}: {msg}"));
                }
            }
            Event::QuietSymbol { symbol, quiet_for, usual_gap } => {
                if self.json {
                    let extra =
                        format!(",\"quiet_ms\":{},\"usual_gap_ms\":{}", quiet_for.as_millis(), usual_gap.as_millis());
                    self.event_json(venue, "quiet", Some(symbol), &extra);
                } else {
                    self.note(&format!(
                        "quiet      {venue} {symbol}: nothing for {} ms (usually {} ms)",
                        quiet_for.as_millis(),
                        usual_gap.as_millis()
                    ));
                }
            }
            Event::ErrorsSuppressed { count } => {
                if self.json {
                    self.event_json(venue, "errors_suppressed", None, &format!(",\"count\":{count}"));
                } else {
                    self.note(&format!("error      {venue}: {count} more like these held back"));
                }
            }
            Event::Lagged { dropped } if self.json => {
                self.event_json(venue, "lagged", None, &format!(",\"dropped\":{dropped}"));
            }
            _ => {}
        }
    }

    /// The demo's venues: a fault each applied is said as injected, and then how it healed.
    fn watch_faults(&mut self) {
        let mut new = Vec::new();
        for (k, (venue, sim)) in self.sims.iter().enumerate() {
            let applied = sim.applied();
            for a in applied.iter().skip(self.seen_faults[k]) {
                new.push(Injected { venue: *venue, name: a.fault.name(), symbol: a.symbol.clone(), at_ns: a.unix_ns });
            }
            self.seen_faults[k] = applied.len();
        }
        for f in new {
            let what = f.symbol.as_deref().map(|s| format!(" on {s}")).unwrap_or_default();
            if self.json {
                let mut extra = format!(",\"fault\":\"{}\"", f.name);
                if let Some(s) = &f.symbol {
                    extra.push_str(",\"symbol\":");
                    json_str(&mut extra, s);
                }
                self.event_json(f.venue, "injected", None, &extra);
            } else {
                self.note(&format!("injected   {}: {}{what}", f.venue, f.name.replace('_', " ")));
            }
            self.open_faults.push(f);
        }
        let mut healed = Vec::new();
        self.open_faults.retain(|f| {
            let done = self
                .per
                .iter()
                .filter(|((v, s), _)| *v == f.venue && f.symbol.as_ref().is_none_or(|x| x == s))
                .all(|(_, p)| p.last_verified_ns > f.at_ns);
            if done {
                let last = self
                    .per
                    .iter()
                    .filter(|((v, s), _)| *v == f.venue && f.symbol.as_ref().is_none_or(|x| x == s))
                    .map(|(_, p)| p.last_verified_ns)
                    .max()
                    .unwrap_or(f.at_ns);
                healed.push((f.venue, f.name, (last.saturating_sub(f.at_ns)) / 1_000_000));
            }
            !done
        });
        for (venue, name, ms) in healed {
            if self.json {
                self.event_json(venue, "healed", None, &format!(",\"fault\":\"{name}\",\"after_ms\":{ms}"));
            } else {
                self.note(&format!("healed     {venue}: {} (proved again after {ms} ms)", name.replace('_', " ")));
            }
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

    /// The terminal view (TTY: redrawn in place on the alternate screen) or a plain status block
    /// (not a TTY, every few seconds).
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
        let view = self.view(secs, extra, terminal_width());
        let mut s = String::new();
        if self.tty && self.alternate {
            // Home, each line cleared to its end, the rest of the screen cleared: no flicker, and
            // no frame left in the scrollback.
            s.push_str("\x1b[H");
            for l in view.lines() {
                s.push_str(l);
                s.push_str("\x1b[K\n");
            }
            s.push_str("\x1b[J");
        } else {
            s = view;
        }
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.flush();
    }

    /// The view as text, at most `width` columns: columns are dropped, least useful first, to fit.
    fn view(&self, secs: f64, extra: &str, width: usize) -> String {
        let c = self.counts();
        let mut s = String::new();
        let venues: Vec<String> = self
            .venues
            .iter()
            .map(|v| {
                let (open, all) = self.books.connections(*v);
                if open == all { format!("{v}") } else { format!("{v} {open}/{all} UP") }
            })
            .collect();
        let _ = writeln!(s, "{}", fit(&format!("plumb {secs:.0}s  {}  {extra}", venues.join(" ")), width));
        // Each row's cells; prices, and the spread, with the row's own decimals.
        let cells: Vec<[String; 9]> = self
            .rows
            .iter()
            .map(|row| {
                let top = row.reader.top();
                let p = self.per.get(&(row.venue, row.symbol.clone())).cloned().unwrap_or_default();
                let scale = [top.bid, top.ask].iter().flatten().map(|q| q.price.scale).max().unwrap_or(0);
                let price = |q: Option<Quote>| q.map_or_else(|| "-".to_owned(), |q| fixed(q.price, scale));
                let spread = match (top.bid, top.ask) {
                    (Some(b), Some(a)) => {
                        a.price.checked_sub(b.price).map_or_else(|| "-".to_owned(), |d| fixed(d, scale))
                    }
                    _ => "-".to_owned(),
                };
                [
                    row.venue.to_string(),
                    row.symbol.clone(),
                    price(top.bid),
                    price(top.ask),
                    spread,
                    status_name(top.header.status).to_owned(),
                    format!("{:.0}", p.rate),
                    p.verified.to_string(),
                    p.resyncs.to_string(),
                ]
            })
            .collect();
        let heads = ["venue", "symbol", "bid", "ask", "spread", "state", "upd/s", "proved", "resyncs"];
        let left = [true, true, false, false, false, true, false, false, false];
        let mut widths: Vec<usize> =
            (0..9).map(|k| cells.iter().map(|r| r[k].len()).chain([heads[k].len()]).max().unwrap_or(0)).collect();
        // Columns dropped first when the terminal is narrow: proved, upd/s, resyncs, spread, venue.
        let mut shown = [true; 9];
        for k in [7, 6, 8, 4, 0] {
            let total: usize = (0..9).filter(|&j| shown[j]).map(|j| widths[j] + 1).sum();
            if total <= width {
                break;
            }
            shown[k] = false;
        }
        let total: usize = (0..9).filter(|&j| shown[j]).map(|j| widths[j] + 1).sum();
        if total > width {
            // Still too wide: symbols are cut.
            widths[1] = widths[1].saturating_sub(total - width).max(6);
        }
        let line = |cols: [&str; 9]| {
            let mut l = String::new();
            for k in (0..9).filter(|&k| shown[k]) {
                let cell: String = cols[k].chars().take(widths[k]).collect();
                if left[k] {
                    let _ = write!(l, "{cell:<w$} ", w = widths[k]);
                } else {
                    let _ = write!(l, "{cell:>w$} ", w = widths[k]);
                }
            }
            l.trim_end().to_owned()
        };
        let _ = writeln!(s, "{}", line(heads));
        for r in &cells {
            let cols: [&str; 9] = std::array::from_fn(|k| r[k].as_str());
            let _ = writeln!(s, "{}", line(cols));
        }
        if !self.consolidated.is_empty() {
            s.push('\n');
            for c in &self.consolidated {
                let best = c.best(Duration::from_secs(1));
                let side = |q: Option<(Venue, Quote, Duration)>| {
                    q.map_or_else(|| "-".to_owned(), |(v, q, age)| format!("{} {v} {}ms", q.price, age.as_millis()))
                };
                let l = format!(
                    "best {:<4} bid {}  ask {}  ({}/{} venues fresh)",
                    c.instrument(),
                    side(best.bid),
                    side(best.ask),
                    best.usable,
                    best.venues
                );
                let _ = writeln!(s, "{}", fit(&l, width));
            }
        }
        let lat = |p| self.percentile(p).map_or_else(|| "-".to_owned(), |v| format!("{v}us"));
        s.push('\n');
        let totals = format!(
            "frames {}  proved: crc {} seq {}  mismatches {}  gaps {}  resyncs {}  reconnects {}  REST {} ({} failed)  \
             latency p50 {} p99 {}",
            c.frames,
            c.checksums_verified,
            c.sequence_verified,
            c.checksum_mismatches,
            c.sequence_gaps,
            c.resyncs,
            c.reconnects,
            c.fetches,
            c.fetch_failures,
            lat(0.5),
            lat(0.99)
        );
        for l in wrap(&totals, width) {
            let _ = writeln!(s, "{l}");
        }
        let legend = "valid: proved by checksum or unbroken sequence. resyncing: awaiting a fresh snapshot. \
                      stale: connection silent or gone. proved: messages proved. best: valid books under 1 s old.";
        for l in wrap(legend, width) {
            let _ = writeln!(s, "{l}");
        }
        if self.tty && !self.recent.is_empty() {
            s.push('\n');
            for r in &self.recent {
                let _ = writeln!(s, "{}", fit(r, width));
            }
        }
        s
    }

    /// Runs until `until` (or Ctrl-C), printing as it goes.
    async fn run(&mut self, until: Option<tokio::time::Instant>) {
        let start = tokio_now();
        let period = Duration::from_millis(if self.tty { 250 } else { 2000 });
        let mut next_render = start + period;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        if self.tty && !self.alternate {
            let _ = self.out.write_all(b"\x1b[?1049h\x1b[H\x1b[2J");
            self.alternate = true;
        }
        loop {
            let deadline = until.map_or(next_render, |u| u.min(next_render));
            tokio::select! {
                e = async {
                    match self.events.as_mut() {
                        Some(ev) => ev.recv().await,
                        None => std::future::pending().await,
                    }
                } => match e {
                    Some(e) => self.on_event(&e),
                    None => return,
                },
                () = tokio::time::sleep_until(deadline) => {
                    if !self.sims.is_empty() {
                        self.watch_faults();
                    }
                    if until.is_some_and(|u| tokio_now() >= u) {
                        return;
                    }
                    if !self.json {
                        self.render(tokio_now() - start, "");
                    }
                    next_render = tokio_now() + period;
                },
                _ = &mut ctrl_c => return,
            }
        }
    }

    /// Leaves the alternate screen, so that what is printed next stays in the terminal.
    fn leave_screen(&mut self) {
        if self.alternate {
            let _ = self.out.write_all(b"\x1b[?1049l");
            let _ = self.out.flush();
            self.alternate = false;
        }
    }

    /// The counts of every venue, added up.
    fn counts(&self) -> plumb::feed::Counts {
        let mut t = plumb::feed::Counts::default();
        for v in &self.venues {
            t += self.books.counts(*v);
        }
        t
    }

    fn summary(&mut self, extra: &str) -> String {
        let c = self.counts();
        let names: Vec<&str> = self.venues.iter().map(|v| v.name()).collect();
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
            let _ = write!(s, "{{\"exchange\":\"{}\",\"symbol\":", row.venue);
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

/// A decimal at `scale` decimals (more if it has more), so that a row's numbers line up.
fn fixed(d: Decimal64, scale: u8) -> String {
    d.rescaled(scale.max(d.scale)).unwrap_or(d).to_string()
}

/// A line cut to `width` characters.
fn fit(s: &str, width: usize) -> String {
    s.chars().take(width).collect()
}

/// Text wrapped at spaces into lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
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

fn builder<E: plumb::feed::Exchange>(
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

/// One venue of a live command: its symbols, and where and how deep (each `None`: the
/// exchange's own).
pub(crate) struct VenueArgs {
    pub(crate) venue: Venue,
    pub(crate) symbols: Vec<String>,
    pub(crate) url: Option<String>,
    pub(crate) rest_url: Option<String>,
    pub(crate) depth: Option<u32>,
}

/// How a live command tunes its feeds beyond each exchange's defaults.
#[derive(Clone, Copy)]
enum Tuning {
    /// As the exchange's defaults say.
    Exchange,
    /// The demo's: stale after 2 s of silence, reconnecting fast.
    Demo,
}

/// Adds one venue to the manager, with its settings checked (its depth, `--url`'s form).
fn add_venue(b: BooksBuilder, a: &VenueArgs, tuning: Tuning) -> Result<BooksBuilder, String> {
    fn with<E: Listed>(
        b: BooksBuilder,
        e: &E,
        a: &VenueArgs,
        url: Option<String>,
        tuning: Tuning,
    ) -> Result<BooksBuilder, String> {
        let mut f = FeedBuilder::new(e.clone()).symbols(a.symbols.iter().cloned()).seed(unix_ns());
        if let Some(d) = a.depth {
            let d = Depth::new(d).map_err(|e| e.to_string())?;
            e.check_depth(d).map_err(|e| e.to_string())?;
            f = f.depth(d);
        }
        if let Some(u) = url {
            f = f.url(u);
        }
        if let Some(u) = &a.rest_url {
            f = f.rest_url(u.clone());
        }
        if let Tuning::Demo = tuning {
            f = f
                .stale_after(Duration::from_secs(2))
                .ping_after(Duration::from_secs(1))
                .backoff(Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) });
            if a.rest_url.is_none() {
                f = f.no_rest();
            }
        }
        Ok(b.feed(f))
    }
    // Binance's `--url` is the base (scheme, host, port): the stream's path is plumb's to add.
    let base = |path: &str| a.url.as_ref().map(|u| format!("{}{path}", u.trim_end_matches('/')));
    match a.venue {
        Venue::Kraken => with(b, &plumb::feed::Kraken, a, a.url.clone(), tuning),
        Venue::Bybit(m) => with(b, &plumb::feed::Bybit::new(m), a, a.url.clone(), tuning),
        Venue::Okx => with(b, &plumb::feed::Okx, a, a.url.clone(), tuning),
        Venue::Coinbase => with(b, &plumb::feed::Coinbase, a, a.url.clone(), tuning),
        Venue::Binance => with(b, &plumb::feed::Binance, a, base("/ws"), tuning),
        Venue::BinanceUsdm => with(b, &plumb::feed::BinanceUsdm, a, base("/public/ws"), tuning),
    }
}

/// What `plumb watch` was asked.
pub(crate) struct WatchArgs {
    pub(crate) venues: Vec<VenueArgs>,
    pub(crate) json: bool,
    pub(crate) duration: Option<f64>,
}

/// `plumb watch`: any mix of exchanges through one manager, one row (or JSON line) per book.
pub(crate) fn watch(a: &WatchArgs) -> ExitCode {
    let mut b = Books::builder();
    for v in &a.venues {
        b = match add_venue(b, v, Tuning::Exchange) {
            Ok(b) => b,
            Err(e) => return crate::usage_error(&e),
        };
    }
    let books = match b.start() {
        Ok(books) => books,
        Err(e) => return crate::usage_error(&e.to_string()),
    };
    let rows: Vec<(Venue, String)> =
        a.venues.iter().flat_map(|v| v.symbols.iter().map(|s| (v.venue, s.clone()))).collect();
    let Ok(rt) = runtime() else { return ExitCode::from(1) };
    let json = a.json;
    let mut live = Live::new(books, &rows, json);
    rt.block_on(async {
        let until = a.duration.map(|d| tokio_now() + Duration::from_secs_f64(d.max(0.0)));
        live.run(until).await;
    });
    live.leave_screen();
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
    pub(crate) venues: Vec<(Venue, Vec<String>)>,
    pub(crate) rate: u32,
    pub(crate) faults: Faults,
    pub(crate) json: bool,
}

/// How often the demo exchange misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Faults {
    /// Never.
    Off,
    /// A fault every 4 seconds on each venue.
    Some,
    /// A fault every 1.5 seconds on each venue.
    Many,
}

/// Levels a side of the demo's Coinbase BTC-USD book: a snapshot of about 4 MB, on every
/// (re)subscription.
const DEMO_COINBASE_DEPTH: usize = 20_000;

/// The instruments a simulated venue lists.
fn listed(config: &ExchangeConfig, venue: Venue) -> &[plumb_sim::market::Instrument] {
    match venue {
        Venue::Kraken => &config.instruments,
        Venue::Bybit(_) => &config.bybit_instruments,
        Venue::Okx => &config.okx_instruments,
        Venue::Coinbase => &config.coinbase_instruments,
        Venue::Binance | Venue::BinanceUsdm => &config.binance_instruments,
    }
}

/// `plumb demo`: a simulated venue of each exchange on 127.0.0.1, each injecting its own faults,
/// and one manager over them all.
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
    for (venue, names) in &args.venues {
        let known: Vec<String> = listed(&config, *venue).iter().map(|i| i.symbol.clone()).collect();
        if let Some(bad) = names.iter().find(|s| !known.contains(s)) {
            return crate::usage_error(&format!("the demo's {venue} lists {}; not {bad}", known.join(", ")));
        }
    }
    let venues: Vec<&(Venue, Vec<String>)> = args.venues.iter().filter(|(_, s)| !s.is_empty()).collect();
    if venues.is_empty() {
        return crate::usage_error("no symbols to show");
    }
    let (code, live) = rt.block_on(async {
        // One server per venue, each with faults of its own: a fault on one venue reaches no other.
        let mut sims = Vec::new();
        let mut b = Books::builder();
        for (k, (venue, symbols)) in venues.iter().enumerate() {
            let seed = config.seed.wrapping_add(k as u64 * 7919);
            let sim = match Exchange::start(ExchangeConfig { seed, ..config.clone() }).await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("plumb: could not start the demo's {venue}: {e}");
                    return (ExitCode::from(1), None);
                }
            };
            let (url, rest) = match venue {
                Venue::Kraken => (sim.url(), None),
                Venue::Bybit(_) => (sim.bybit_url("spot"), None),
                Venue::Okx => (sim.okx_url(), Some(sim.okx_rest_url())),
                Venue::Coinbase => (sim.coinbase_url(), None),
                Venue::Binance | Venue::BinanceUsdm => (sim.binance_base(), Some(sim.rest_url())),
            };
            let a = VenueArgs { venue: *venue, symbols: symbols.clone(), url: Some(url), rest_url: rest, depth: None };
            b = match add_venue(b, &a, Tuning::Demo) {
                Ok(b) => b,
                Err(e) => return (crate::usage_error(&e), None),
            };
            sims.push((*venue, sim));
        }
        let books = match b.start() {
            Ok(books) => books,
            Err(e) => return (crate::usage_error(&e.to_string()), None),
        };
        let rows: Vec<(Venue, String)> = venues.iter().flat_map(|(v, s)| s.iter().map(|s| (*v, s.clone()))).collect();
        let mut live = Live::new(books, &rows, args.json);
        live.seen_faults = vec![0; sims.len()];
        live.sims = sims;
        if !live.json && !live.tty {
            let names: Vec<String> = live.sims.iter().map(|(v, x)| format!("{v} {}", x.addr())).collect();
            live.line(&format!("demo venues: {}; faults {}", names.join(", "), faults_name(args.faults)));
        }
        let until = tokio_now() + Duration::from_secs_f64(args.duration.max(0.0));
        live.run(Some(until)).await;
        // No new faults; give the last ones time to heal before judging.
        for (_, sim) in &live.sims {
            sim.stop_faults();
        }
        let grace = tokio_now() + Duration::from_secs(10);
        while tokio_now() < grace {
            live.watch_faults();
            if live.all_valid() && live.open_faults.is_empty() {
                break;
            }
            live.run(Some(tokio_now() + Duration::from_millis(200))).await;
        }
        live.watch_faults();
        let injected: usize = live.seen_faults.iter().sum();
        let ok_faults = injected - live.open_faults.len();
        let mut by_kind: HashMap<&str, usize> = HashMap::new();
        for (_, sim) in &live.sims {
            for a in sim.applied() {
                *by_kind.entry(a.fault.name()).or_default() += 1;
            }
        }
        let mut kinds: Vec<_> = by_kind.into_iter().collect();
        kinds.sort_unstable();
        let mut extra = format!(",\"faults_injected\":{injected},\"faults_recovered\":{ok_faults},\"faults\":{{");
        for (i, (k, n)) in kinds.iter().enumerate() {
            let _ = write!(extra, "{}\"{k}\":{n}", if i > 0 { "," } else { "" });
        }
        extra.push('}');
        let ok = live.all_valid() && ok_faults == injected;
        live.leave_screen();
        if args.json {
            let s = live.summary(&extra);
            live.line(&s);
        } else {
            live.render(
                Duration::from_nanos(unix_ns().saturating_sub(live.started_ns)),
                &format!("faults injected {injected} healed {ok_faults}"),
            );
            let verdict = if ok {
                "every book of every venue ended valid, and every injected fault healed"
            } else {
                "NOT every book ended valid, or an injected fault did not heal"
            };
            live.line(&format!("\n{verdict}"));
        }
        (if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }, Some(live))
    });
    // Closed outside the runtime the simulated venues run on, which is no longer needed.
    drop(live);
    code
}

fn faults_name(f: Faults) -> &'static str {
    match f {
        Faults::Off => "off",
        Faults::Some => "some",
        Faults::Many => "many",
    }
}

/// `plumb record`: raw frames with receive timestamps, in the capture format `plumb replay` reads.
pub(crate) fn record<E: plumb::feed::Exchange>(
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
