//! The `plumb` command line.

mod live;

use std::fmt::Write as _;
use std::io::{BufRead, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use plumb::book::{Depth, Precision, Quote, Side, State};
use plumb::replay::{Counts, Replay};
use plumb::wire::kraken::Api;

#[derive(Parser)]
#[command(name = "plumb", version, about = "Exact, verified exchange order books")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify captured sessions offline: apply every book frame and check every checksum.
    Replay(ReplayArgs),
    /// Keep live books: connect, subscribe, verify every checksum, heal, and show them.
    Watch(WatchArgs),
    /// Run a simulated exchange on 127.0.0.1 that injects faults, and watch plumb heal them.
    Demo(DemoArgs),
    /// Record raw frames with receive timestamps, in the capture format `plumb replay` reads.
    Record(RecordArgs),
}

#[derive(clap::Args)]
struct WatchArgs {
    /// The exchange (only `kraken`, spot websocket v2, is live so far).
    #[arg(value_enum)]
    exchange: Exchange,
    /// Symbols as the exchange spells them, such as BTC/USD.
    #[arg(required = true)]
    symbols: Vec<String>,
    /// The subscribed depth (10, 25, 100, 500 or 1000).
    #[arg(long, default_value_t = 10)]
    depth: u32,
    /// The websocket endpoint (default: the exchange's public one).
    #[arg(long)]
    url: Option<String>,
    /// One JSON object per line instead of the live view.
    #[arg(long)]
    json: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Serve Prometheus metrics on this address (such as 127.0.0.1:9000), at any path.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Symbols, comma-separated (the demo exchange lists BTC/USD, ETH/USD, SHIB/USD, PEPE/USD,
    /// XRP/USD, DOGE/USD, SOL/USD, ADA/USD).
    #[arg(long, value_delimiter = ',', default_value = "BTC/USD,ETH/USD,SHIB/USD,PEPE/USD")]
    symbols: Vec<String>,
    /// Book updates per second sent by the exchange.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How often the exchange misbehaves.
    #[arg(long, value_enum, default_value = "some")]
    faults: live::Faults,
    /// One JSON object per line, ending with a summary object.
    #[arg(long)]
    json: bool,
    /// Serve Prometheus metrics on this address (such as 127.0.0.1:9000), at any path.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(clap::Args)]
struct RecordArgs {
    /// The exchange (only `kraken`, spot websocket v2, so far).
    #[arg(value_enum)]
    exchange: Exchange,
    /// Symbols as the exchange spells them.
    #[arg(required = true)]
    symbols: Vec<String>,
    /// The capture file to write.
    #[arg(long)]
    out: std::path::PathBuf,
    /// The subscribed depth.
    #[arg(long, default_value_t = 10)]
    depth: u32,
    /// The websocket endpoint (default: the exchange's public one).
    #[arg(long)]
    url: Option<String>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Exchange {
    /// Kraken spot websocket v2.
    Kraken,
    /// Kraken spot websocket v1.
    KrakenV1,
    Bybit,
    Okx,
    Coinbase,
    Binance,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The exchange and API; detected from the frames when absent.
    #[arg(long, value_enum)]
    exchange: Option<Exchange>,
    /// The subscribed depth (10, 25, 100, 500 or 1000). v1 frames state their own.
    #[arg(long, default_value_t = 10)]
    depth: u32,
    /// Kraken v2 precision of a symbol, used when the capture has no instrument frames for it.
    #[arg(long, value_name = "SYMBOL=PRICE_DP,QTY_DP", value_parser = parse_precision)]
    precision: Vec<(String, Precision)>,
    /// Print one JSON summary object as the last line.
    #[arg(long)]
    json: bool,
    /// Capture files: one websocket text frame per line, optionally `<nanoseconds>\t` first.
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
}

fn parse_precision(s: &str) -> Result<(String, Precision), String> {
    let bad = || format!("expected SYMBOL=PRICE_DP,QTY_DP, got {s:?}");
    let (sym, dp) = s.rsplit_once('=').ok_or_else(bad)?;
    let (p, q) = dp.split_once(',').ok_or_else(bad)?;
    let p: u8 = p.trim().parse().map_err(|_| bad())?;
    let q: u8 = q.trim().parse().map_err(|_| bad())?;
    if sym.is_empty() || p > plumb::book::MAX_SCALE || q > plumb::book::MAX_SCALE {
        return Err(bad());
    }
    Ok((sym.to_owned(), Precision { price: p, qty: q }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => replay(&args),
        Command::Watch(a) => {
            let Some(depth) = live_depth(a.exchange, a.depth) else { return ExitCode::from(2) };
            if let Err(e) = live::serve_metrics(a.metrics_addr) {
                return usage_error(&e);
            }
            live::watch(a.url, a.symbols, depth, a.json, a.duration)
        }
        Command::Record(a) => {
            let Some(depth) = live_depth(a.exchange, a.depth) else { return ExitCode::from(2) };
            live::record(a.url, &a.symbols, depth, &a.out, a.duration)
        }
        Command::Demo(a) => {
            if let Err(e) = live::serve_metrics(a.metrics_addr) {
                return usage_error(&e);
            }
            live::demo(&live::DemoArgs {
                duration: a.duration,
                symbols: a.symbols,
                rate: a.rate,
                faults: a.faults,
                json: a.json,
            })
        }
    }
}

/// The depth of a live command, for the exchanges that are live (Kraken v2 so far).
fn live_depth(exchange: Exchange, depth: u32) -> Option<Depth> {
    if exchange != Exchange::Kraken {
        usage_error("only `kraken` (spot websocket v2) is live so far; the other exchanges are on the roadmap");
        return None;
    }
    match Depth::try_from(depth) {
        Ok(d) => Some(d),
        Err(e) => {
            usage_error(&e.to_string());
            None
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("plumb: {msg}");
    ExitCode::from(2)
}

fn replay(args: &ReplayArgs) -> ExitCode {
    let only = match args.exchange {
        None => None,
        Some(Exchange::Kraken) => Some(Api::V2),
        Some(Exchange::KrakenV1) => Some(Api::V1),
        Some(Exchange::Bybit | Exchange::Okx | Exchange::Coinbase | Exchange::Binance) => {
            return usage_error("only kraken and kraken-v1 captures can be replayed in this version");
        }
    };
    let depth = match Depth::try_from(args.depth) {
        Ok(d) => d,
        Err(e) => return usage_error(&e.to_string()),
    };
    let mut r = Replay::new(depth, only);
    for (sym, p) in &args.precision {
        r.set_precision(sym, *p);
    }
    let mut line = Vec::with_capacity(1 << 16);
    for path in &args.files {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return usage_error(&format!("{}: {e}", path.display())),
        };
        let mut reader = std::io::BufReader::new(file);
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    let l = line.strip_suffix(b"\n").unwrap_or(&line);
                    r.line(l);
                }
                Err(e) => return usage_error(&format!("{}: {e}", path.display())),
            }
        }
    }
    let c = r.counts();
    let out = if args.json { summary_json(&r, &c) } else { summary_text(&r, &c) };
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (a pipe to `head`) is not worth a panic.
    let _ = stdout.write_all(out.as_bytes());
    if c.checksum_mismatches == 0 && c.errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Valid => "valid",
        State::Invalid(_) => "invalid",
        State::Unverified => "unverified",
        State::AwaitingSnapshot => "awaiting_snapshot",
    }
}

/// A JSON string literal of `s`.
pub(crate) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Levels as `[["PRICE","QTY"],...]`, in the checksum's text form.
pub(crate) fn json_levels(out: &mut String, levels: impl IntoIterator<Item = Quote>) {
    out.push('[');
    for (i, q) in levels.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "[\"{}\",\"{}\"]", q.price, q.qty);
    }
    out.push(']');
}

fn summary_json(r: &Replay, c: &Counts) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"frames\":{},\"book_messages\":{},\"checksums_verified\":{},\"checksum_mismatches\":{},\
         \"sequence_gaps\":{},\"unverified_updates\":{},\"ignored\":{},\"errors\":{},\"books\":[",
        c.frames,
        c.book_messages,
        c.checksums_verified,
        c.checksum_mismatches,
        c.sequence_gaps,
        c.unverified_updates,
        c.ignored,
        c.errors
    );
    for (i, slot) in r.slots().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"exchange\":\"kraken\",\"symbol\":");
        json_str(&mut out, &slot.symbol);
        let _ = write!(
            out,
            ",\"state\":\"{}\",\"checksum\":{},\"bids\":",
            state_name(slot.book.state()),
            slot.book.checksum()
        );
        json_levels(&mut out, slot.book.quotes(Side::Bid).take(10));
        out.push_str(",\"asks\":");
        json_levels(&mut out, slot.book.quotes(Side::Ask).take(10));
        out.push('}');
    }
    out.push_str("]}\n");
    out
}

fn summary_text(r: &Replay, c: &Counts) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "frames {}  book messages {}  checksums verified {}  mismatches {}  unverified updates {}  ignored {}  errors {}",
        c.frames,
        c.book_messages,
        c.checksums_verified,
        c.checksum_mismatches,
        c.unverified_updates,
        c.ignored,
        c.errors
    );
    for slot in r.slots() {
        let b = &slot.book;
        let api = match slot.api {
            Api::V1 => "v1",
            Api::V2 => "v2",
        };
        let best = |side| b.best(side).map_or_else(|| "-".to_owned(), |q| format!("{} x {}", q.price, q.qty));
        let _ = writeln!(
            out,
            "{:<12} {api} depth {:<4} {:<10} crc {:>10}  bid {}  ask {}",
            slot.symbol,
            b.depth(),
            state_name(b.state()),
            b.checksum(),
            best(Side::Bid),
            best(Side::Ask)
        );
        if let State::Invalid(why) = b.state() {
            let _ = writeln!(out, "{:<12}    why: {why:?}", "");
        }
    }
    out
}
