//! The `plumb` command line.

mod json;
mod lines;
mod live;

use std::fmt::Write as _;
use std::io::{BufRead, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use plumb::book::{Depth, Precision, Side, State};
use plumb::feed::exchange::{Api as FeedApi, Exchange as Venue};
use plumb::feed::{Binance, BinanceUsdm, Bybit, Coinbase, Kraken, Market, Okx};
use plumb::replay::{Counts, Replay};
use plumb::wire::kraken::Api;

use crate::json::{state_name, summary_json};

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
    /// Books to watch, each as `EXCHANGE:SYMBOL` (`kraken:BTC/USD bybit:BTCUSDT okx:BTC-USDT
    /// coinbase:BTC-USD binance:BTCUSDT`), or an exchange followed by its symbols (`kraken BTC/USD
    /// ETH/USD`). Exchanges: `kraken` (spot websocket v2), `bybit` (v5 public; `bybit-linear`,
    /// `bybit-inverse`), `okx` (v5 public), `coinbase` (Advanced Trade `level2`), `binance` (spot)
    /// and `binance-usdm` (USD-M futures). Symbols as the exchange spells them.
    #[arg(required = true, value_name = "BOOKS")]
    targets: Vec<String>,
    /// The subscribed depth, `[EXCHANGE=]N` (Kraken: 10, 25, 100, 500 or 1000, default 10; Bybit:
    /// 1, 50, 200 or 1000, default 50; OKX: 400 `books`, 5 `books5` or 1 `bbo-tbt`, default 400;
    /// Coinbase always sends the whole book; Binance: the REST snapshot's limit, spot 1 to 5000,
    /// USD-M 5, 10, 20, 50, 100, 500 or 1000, default 1000). Without `EXCHANGE=`, for every one.
    #[arg(long, value_name = "[EXCHANGE=]N")]
    depth: Vec<String>,
    /// Bybit's market: spot, linear or inverse (default spot).
    #[arg(long, value_enum)]
    market: Option<MarketArg>,
    /// The websocket endpoint, `[EXCHANGE=]URL`, with its path (default: the exchange's public
    /// one); for Binance the base only (scheme, host, port: plumb adds `/ws` or `/public/ws`).
    /// `EXCHANGE=` is needed when several exchanges are watched.
    #[arg(long, value_name = "[EXCHANGE=]URL")]
    url: Vec<String>,
    /// OKX and Binance: where book snapshots are fetched by REST, `[EXCHANGE=]URL` (default
    /// `https://www.okx.com`, `https://api.binance.com`, `https://fapi.binance.com`).
    #[arg(long, value_name = "[EXCHANGE=]URL")]
    rest_url: Vec<String>,
    /// One JSON object per line instead of the live view; every line names its exchange.
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
    /// The simulated exchanges to run, comma-separated (each on its own server, with faults of
    /// its own).
    #[arg(long, value_delimiter = ',', default_value = "kraken,bybit,okx,coinbase,binance")]
    exchanges: Vec<String>,
    /// Kraken symbols, comma-separated (the demo exchange lists BTC/USD, ETH/USD, SHIB/USD,
    /// PEPE/USD, XRP/USD, DOGE/USD, SOL/USD, ADA/USD); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "BTC/USD,ETH/USD,SHIB/USD,PEPE/USD")]
    symbols: Vec<String>,
    /// Bybit spot symbols, comma-separated (the demo exchange lists BTCUSDT, ETHUSDT, SOLUSDT,
    /// XRPUSDT, DOGEUSDT, PEPEUSDT); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "BTCUSDT,ETHUSDT,PEPEUSDT")]
    bybit_symbols: Vec<String>,
    /// OKX instruments, comma-separated (the demo exchange lists BTC-USDT, ETH-USDT,
    /// BTC-USDT-SWAP, SOL-USDT, PEPE-USDT); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "BTC-USDT,BTC-USDT-SWAP,PEPE-USDT")]
    okx_symbols: Vec<String>,
    /// Coinbase products, comma-separated (the demo exchange lists BTC-USD, with a deep book
    /// whose snapshot is megabytes, ETH-USD, SOL-USD, DOGE-USD); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "BTC-USD,ETH-USD,DOGE-USD")]
    coinbase_symbols: Vec<String>,
    /// Binance spot symbols, comma-separated (the demo exchange lists BTCUSDT, ETHUSDT, BNBUSDT,
    /// PEPEUSDT); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "BTCUSDT,ETHUSDT,PEPEUSDT")]
    binance_symbols: Vec<String>,
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
    /// The exchange: `kraken` (spot websocket v2), `bybit` (v5 public), `okx` (v5 public),
    /// `coinbase` (Advanced Trade `level2`), `binance` (spot) or `binance-usdm` (USD-M futures).
    #[arg(value_enum)]
    exchange: LiveExchange,
    /// Symbols as the exchange spells them.
    #[arg(required = true)]
    symbols: Vec<String>,
    /// The capture file to write.
    #[arg(long)]
    out: std::path::PathBuf,
    /// The subscribed depth (the exchange's default when absent).
    #[arg(long)]
    depth: Option<u32>,
    /// Bybit's market: spot, linear or inverse (default spot).
    #[arg(long, value_enum)]
    market: Option<MarketArg>,
    /// The websocket endpoint, with its path (default: the exchange's public one); for Binance
    /// the base only (scheme, host, port: plumb adds `/ws` or `/public/ws`).
    #[arg(long)]
    url: Option<String>,
    /// OKX and Binance: where book snapshots are fetched by REST (default: the exchange's); each
    /// answer is written as a `GET <url>` line.
    #[arg(long, value_name = "URL")]
    rest_url: Option<String>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
}

/// The exchanges a capture can come from.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Exchange {
    /// Kraken spot websocket v2.
    Kraken,
    /// Kraken spot websocket v1 (replay only).
    KrakenV1,
    /// Bybit v5 public order books.
    Bybit,
    /// OKX v5 public order books.
    Okx,
    /// Coinbase Advanced Trade `level2` books.
    Coinbase,
    /// Binance spot diff depth (with `GET` lines of the REST snapshots).
    Binance,
    /// Binance USD-M futures diff depth (with `GET` lines of the REST snapshots).
    BinanceUsdm,
}

/// The exchanges plumb reads live.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LiveExchange {
    /// Kraken spot websocket v2.
    Kraken,
    /// Bybit v5 public order books.
    Bybit,
    /// OKX v5 public order books.
    Okx,
    /// Coinbase Advanced Trade `level2` books (with `heartbeats`).
    Coinbase,
    /// Binance spot diff depth, bridged to REST snapshots.
    Binance,
    /// Binance USD-M futures diff depth, bridged to REST snapshots.
    BinanceUsdm,
}

/// Bybit's v5 public markets.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MarketArg {
    /// `/v5/public/spot`.
    Spot,
    /// `/v5/public/linear`.
    Linear,
    /// `/v5/public/inverse`.
    Inverse,
}

impl From<MarketArg> for Market {
    fn from(m: MarketArg) -> Self {
        match m {
            MarketArg::Spot => Market::Spot,
            MarketArg::Linear => Market::Linear,
            MarketArg::Inverse => Market::Inverse,
        }
    }
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The exchange and API (`kraken`, `kraken-v1`, `bybit`, `okx`, `coinbase`, `binance`,
    /// `binance-usdm`); detected from the frames when absent.
    #[arg(long, value_enum)]
    exchange: Option<Exchange>,
    /// The subscribed depth (Kraken: 10, 25, 100, 500 or 1000). Kraken v1 frames, Bybit topics
    /// and OKX channels state their own.
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
            if let Err(e) = live::serve_metrics(a.metrics_addr) {
                return usage_error(&e);
            }
            match watch_venues(&a) {
                Ok(venues) => live::watch(&live::WatchArgs { venues, json: a.json, duration: a.duration }),
                Err(e) => usage_error(&e),
            }
        }
        Command::Record(a) => match (a.exchange, a.market) {
            (LiveExchange::Kraken, None) => match live_depth(&Kraken, a.depth, 10) {
                Some(d) => live::record(Kraken, d, (a.url, a.rest_url), &a.symbols, &a.out, a.duration),
                None => ExitCode::from(2),
            },
            (LiveExchange::Bybit, m) => {
                let bybit = Bybit::new(m.map_or(Market::Spot, Market::from));
                match live_depth(&bybit, a.depth, 50) {
                    Some(d) => live::record(bybit, d, (a.url, a.rest_url), &a.symbols, &a.out, a.duration),
                    None => ExitCode::from(2),
                }
            }
            (LiveExchange::Okx, None) => match live_depth(&Okx, a.depth, 400) {
                Some(d) => live::record(Okx, d, (a.url, a.rest_url), &a.symbols, &a.out, a.duration),
                None => ExitCode::from(2),
            },
            (LiveExchange::Coinbase, None) => match live_depth(&Coinbase, a.depth, 1000) {
                Some(d) => live::record(Coinbase, d, (a.url, a.rest_url), &a.symbols, &a.out, a.duration),
                None => ExitCode::from(2),
            },
            (LiveExchange::Binance, None) => match live_depth(&Binance, a.depth, 1000) {
                Some(d) => {
                    let url = a.url.map(|u| format!("{}/ws", u.trim_end_matches('/')));
                    live::record(Binance, d, (url, a.rest_url), &a.symbols, &a.out, a.duration)
                }
                None => ExitCode::from(2),
            },
            (LiveExchange::BinanceUsdm, None) => match live_depth(&BinanceUsdm, a.depth, 1000) {
                Some(d) => {
                    let url = a.url.map(|u| format!("{}/public/ws", u.trim_end_matches('/')));
                    live::record(BinanceUsdm, d, (url, a.rest_url), &a.symbols, &a.out, a.duration)
                }
                None => ExitCode::from(2),
            },
            (_, Some(_)) => usage_error("--market is Bybit's"),
        },
        Command::Demo(a) => {
            if let Err(e) = live::serve_metrics(a.metrics_addr) {
                return usage_error(&e);
            }
            // `--okx-symbols=` (empty) means none, not one empty name.
            let list = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
            let mut venues = Vec::new();
            for name in a.exchanges.iter().filter(|n| !n.is_empty()) {
                let symbols = match name.as_str() {
                    "kraken" => list(a.symbols.clone()),
                    "bybit" => list(a.bybit_symbols.clone()),
                    "okx" => list(a.okx_symbols.clone()),
                    "coinbase" => list(a.coinbase_symbols.clone()),
                    "binance" => list(a.binance_symbols.clone()),
                    other => {
                        return usage_error(&format!(
                            "the demo runs kraken, bybit, okx, coinbase and binance; not {other}"
                        ));
                    }
                };
                let venue = plumb::Venue::from_name(name).unwrap_or(plumb::Venue::Kraken);
                if !venues.iter().any(|(v, _)| *v == venue) {
                    venues.push((venue, symbols));
                }
            }
            live::demo(&live::DemoArgs { duration: a.duration, venues, rate: a.rate, faults: a.faults, json: a.json })
        }
    }
}

/// The venue a name on the command line means (`bybit` in `--market`'s market).
fn venue_named(name: &str, market: Option<MarketArg>) -> Option<plumb::Venue> {
    match plumb::Venue::from_name(name)? {
        plumb::Venue::Bybit(Market::Spot) if name == "bybit" => {
            Some(plumb::Venue::Bybit(market.map_or(Market::Spot, Market::from)))
        }
        v => Some(v),
    }
}

/// `plumb watch`'s books, grouped by exchange in the order given, with each exchange's options.
fn watch_venues(a: &WatchArgs) -> Result<Vec<live::VenueArgs>, String> {
    let mut venues: Vec<live::VenueArgs> = Vec::new();
    let mut current = None;
    let push = |venues: &mut Vec<live::VenueArgs>, venue, symbol: &str| {
        if symbol.is_empty() {
            return;
        }
        match venues.iter_mut().find(|v| v.venue == venue) {
            Some(v) => v.symbols.push(symbol.to_owned()),
            None => venues.push(live::VenueArgs {
                venue,
                symbols: vec![symbol.to_owned()],
                url: None,
                rest_url: None,
                depth: None,
            }),
        }
    };
    for t in &a.targets {
        if let Some((pre, sym)) = t.split_once(':')
            && let Some(v) = venue_named(pre, a.market)
        {
            push(&mut venues, v, sym);
        } else if let Some(v) = venue_named(t, a.market) {
            current = Some(v);
            if !venues.iter().any(|x| x.venue == v) {
                venues.push(live::VenueArgs { venue: v, symbols: Vec::new(), url: None, rest_url: None, depth: None });
            }
        } else if let Some(v) = current {
            push(&mut venues, v, t);
        } else {
            return Err(format!(
                "{t}: which exchange? Name it as EXCHANGE:SYMBOL (kraken:BTC/USD), or put the exchange first; exchanges: \
                 kraken, bybit, bybit-linear, bybit-inverse, okx, coinbase, binance, binance-usdm"
            ));
        }
    }
    if let Some(v) = venues.iter().find(|v| v.symbols.is_empty()) {
        return Err(format!("no symbols for {}", v.venue));
    }
    if a.market.is_some() && !venues.iter().any(|v| matches!(v.venue, plumb::Venue::Bybit(_))) {
        return Err("--market is Bybit's".to_owned());
    }
    // `[EXCHANGE=]VALUE` options: for one exchange, or for the only one.
    let several = venues.len() > 1;
    let mut each =
        |values: &[String], what: &str, set: &mut dyn FnMut(&mut live::VenueArgs, &str) -> Result<(), String>| {
            for value in values {
                let (target, v) = match value.split_once('=') {
                    Some((pre, rest)) if venue_named(pre, a.market).is_some() => (venue_named(pre, a.market), rest),
                    _ => (None, value.as_str()),
                };
                match target {
                    Some(t) => {
                        let Some(x) = venues.iter_mut().find(|x| {
                            x.venue == t || (matches!((x.venue, t), (plumb::Venue::Bybit(_), plumb::Venue::Bybit(_))))
                        }) else {
                            return Err(format!("--{what} {value}: {t} is not watched"));
                        };
                        set(x, v)?;
                    }
                    None if several && what != "depth" => {
                        return Err(format!(
                            "--{what} {value}: several exchanges are watched; say which, as EXCHANGE={value}"
                        ));
                    }
                    None => {
                        for x in &mut venues {
                            set(x, v)?;
                        }
                    }
                }
            }
            Ok(())
        };
    each(&a.url, "url", &mut |x, v| {
        x.url = Some(v.to_owned());
        Ok(())
    })?;
    each(&a.rest_url, "rest-url", &mut |x, v| {
        x.rest_url = Some(v.to_owned());
        Ok(())
    })?;
    each(&a.depth, "depth", &mut |x, v| {
        x.depth = Some(v.parse().map_err(|_| format!("--depth {v}: not a number"))?);
        Ok(())
    })?;
    Ok(venues)
}

/// The depth of a live command: the one asked for if the exchange offers it, else its default.
fn live_depth<E: Venue>(exchange: &E, depth: Option<u32>, default: u32) -> Option<Depth> {
    let d = match Depth::new(depth.unwrap_or(default)) {
        Ok(d) => d,
        Err(e) => {
            usage_error(&e.to_string());
            return None;
        }
    };
    match exchange.check_depth(d) {
        Ok(()) => Some(d),
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

/// Which exchange a capture holds, from its first book frame (Bybit's have a `topic`, OKX's an
/// `arg` with a `channel`; neither parses as a Kraken book); failing that, from the first frame
/// one parser accepts.
fn detect(files: &[std::path::PathBuf]) -> Exchange {
    let Some(path) = files.first() else { return Exchange::Kraken };
    let Ok(file) = std::fs::File::open(path) else { return Exchange::Kraken };
    let mut parser = plumb::wire::Parser::new();
    let mut fallback = None;
    for line in std::io::BufReader::new(file).split(b'\n').take(64).map_while(Result::ok) {
        let frame = match line.iter().position(|&c| c == b'\t') {
            Some(tab) => &line[tab + 1..],
            None => &line[..],
        };
        if frame.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parser.parse(frame) {
            Ok(plumb::wire::kraken::Message::Book(_)) => return Exchange::Kraken,
            Ok(_) => {
                fallback.get_or_insert(Exchange::Kraken);
            }
            Err(_) => {}
        }
        match parser.parse_bybit(frame) {
            Ok(plumb::wire::bybit::Message::Book(_)) => return Exchange::Bybit,
            Ok(_) => {
                fallback.get_or_insert(Exchange::Bybit);
            }
            Err(_) => {}
        }
        match parser.parse_okx(frame) {
            Ok(plumb::wire::okx::Message::Book(_)) => return Exchange::Okx,
            Ok(_) => {
                fallback.get_or_insert(Exchange::Okx);
            }
            Err(_) => {}
        }
        if let Ok(plumb::wire::binance::Message::Book(b)) = parser.parse_binance(frame) {
            let usdm = b.frame().sequence.is_some_and(|s| s.prev.is_some());
            return if usdm { Exchange::BinanceUsdm } else { Exchange::Binance };
        }
        if frame.starts_with(b"GET ") {
            let url = String::from_utf8_lossy(frame);
            if url.contains("/api/v3/depth") {
                fallback.get_or_insert(Exchange::Binance);
            } else if url.contains("/fapi/v1/depth") {
                fallback.get_or_insert(Exchange::BinanceUsdm);
            }
        }
        match parser.parse_coinbase(frame) {
            Ok(plumb::wire::coinbase::Message::Book(_)) => return Exchange::Coinbase,
            Ok(
                plumb::wire::coinbase::Message::Heartbeat { .. } | plumb::wire::coinbase::Message::Subscriptions { .. },
            ) => {
                fallback.get_or_insert(Exchange::Coinbase);
            }
            _ => {}
        }
    }
    fallback.unwrap_or(Exchange::Kraken)
}

fn replay(args: &ReplayArgs) -> ExitCode {
    let exchange = args.exchange.unwrap_or_else(|| detect(&args.files));
    let only = match (args.exchange, exchange) {
        (None, _) => None,
        (Some(_), Exchange::Kraken) => Some(Api::V2),
        (Some(_), Exchange::KrakenV1) => Some(Api::V1),
        _ => None,
    };
    let depth = match Depth::try_from(args.depth) {
        Ok(d) => d,
        Err(e) => return usage_error(&e.to_string()),
    };
    match exchange {
        Exchange::Kraken | Exchange::KrakenV1 => {
            let mut r = Replay::new(depth, only);
            for (sym, p) in &args.precision {
                r.set_precision(sym, *p);
            }
            run_replay(r, args)
        }
        Exchange::Bybit => run_replay(Replay::with_exchange(Bybit::default(), depth), args),
        Exchange::Okx => run_replay(Replay::with_exchange(Okx, depth), args),
        Exchange::Coinbase => run_replay(Replay::with_exchange(Coinbase, depth), args),
        // A Binance book holds what its REST snapshot gave (up to 5,000 levels a side), whatever
        // --depth says: the levels beyond it are unknown until they change.
        Exchange::Binance => run_replay(Replay::with_exchange(Binance, Depth::new(5000).unwrap_or(depth)), args),
        Exchange::BinanceUsdm => {
            run_replay(Replay::with_exchange(BinanceUsdm, Depth::new(5000).unwrap_or(depth)), args)
        }
    }
}

/// The longest capture line read: the largest frame the parser takes of exchange `E` (64 MiB on
/// Coinbase, 16 MiB elsewhere), and room for a receive time and a `GET <url>` prefix. A longer
/// line is skipped (an error), never held whole.
fn max_line<E: Venue>() -> usize {
    <E::Dialect as plumb::wire::Dialect>::MAX_FRAME_LEN + 64 * 1024
}

/// How many error reasons the replay reports, with their line numbers.
const FIRST_ERRORS: usize = 5;

fn run_replay<E: Venue>(mut r: Replay<E>, args: &ReplayArgs) -> ExitCode {
    let max_line = max_line::<E>();
    let mut first_errors: Vec<String> = Vec::new();
    let mut too_long = 0u64;
    for path in &args.files {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return usage_error(&format!("{}: {e}", path.display())),
        };
        let mut lines = lines::Lines::new(file, max_line);
        let mut number = 0u64;
        loop {
            number += 1;
            match lines.next_line() {
                Ok(None) => break,
                Ok(Some(lines::Line::TooLong)) => {
                    too_long += 1;
                    if first_errors.len() < FIRST_ERRORS {
                        first_errors
                            .push(format!("{} line {number}: longer than {max_line} bytes, skipped", path.display()));
                    }
                }
                Ok(Some(lines::Line::Text(l))) => {
                    if let Some(plumb::replay::FrameKind::Error(why)) = r.line(l)
                        && first_errors.len() < FIRST_ERRORS
                    {
                        first_errors.push(format!("{} line {number}: {why}", path.display()));
                    }
                }
                Err(e) => return usage_error(&format!("{}: {e}", path.display())),
            }
        }
    }
    let mut c = r.counts();
    c.errors += too_long;
    let mut out = if args.json { summary_json(&r, &c) } else { summary_text(&r, &c) };
    if args.json {
        // The first reasons, inside the summary object.
        out.truncate(out.trim_end().len());
        if out.ends_with('}') {
            out.pop();
            out.push_str(",\"first_errors\":[");
            for (k, e) in first_errors.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                json::json_str(&mut out, e);
            }
            out.push_str("]}\n");
        }
    } else if !first_errors.is_empty() {
        out.push_str("first errors:\n");
        for e in &first_errors {
            let _ = writeln!(out, "  {e}");
        }
        if c.book_messages == 0 {
            let _ = writeln!(
                out,
                "no line read as a {} book message: is this a capture (one frame per line, optionally after its \
                 receive time and a TAB) of this exchange? --exchange picks the exchange",
                E::NAME
            );
        }
    }
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (a pipe to `head`) is not worth a panic.
    let _ = stdout.write_all(out.as_bytes());
    if c.frames == 0 {
        eprintln!("plumb: no frames in the input: nothing was verified");
        return ExitCode::from(1);
    }
    if c.checksum_mismatches == 0 && c.errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Why a book is invalid, as a sentence with the remedy where there is one.
fn explain<E: Venue>(why: plumb::book::Invalid, api: FeedApi, precision: bool) -> String {
    use plumb::book::Invalid;
    match why {
        Invalid::ChecksumMismatch { expected, computed } if E::NAME == "kraken" && api == FeedApi::Main && !precision => format!(
            "the exchange's checksum {expected} is not the book's {computed}. Kraken v2 checksums pad every number to the \
             instrument's precision, which this capture does not give: replay with --precision SYMBOL=PRICE_DP,QTY_DP, or \
             record the instrument channel too (plumb record does)"
        ),
        Invalid::ChecksumMismatch { expected, computed } => {
            format!("the exchange's checksum {expected} is not the book's {computed}: a message was lost or altered")
        }
        Invalid::SequenceGap { expected, got } => {
            format!("message {expected} was due and {got} came: messages were lost (or repeated) in the capture")
        }
        Invalid::Crossed => "the best bid is at or above the best ask".to_owned(),
        Invalid::Rejected(e) => format!("a level could not be applied: {e}"),
        Invalid::PrecisionChanged => "the instrument's precision changed; a fresh snapshot is needed".to_owned(),
        Invalid::TooManyLevels => {
            "a side holds more levels than the subscribed depth: replay with the depth the capture was recorded at (--depth)"
                .to_owned()
        }
    }
}

fn summary_text<E: Venue>(r: &Replay<E>, c: &Counts) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "frames {}  book messages {}  checksums verified {}  mismatches {}  in sequence {}  gaps {}  unverified updates {}  ignored {}  errors {}",
        c.frames,
        c.book_messages,
        c.checksums_verified,
        c.checksum_mismatches,
        c.sequence_verified,
        c.sequence_gaps,
        c.unverified_updates,
        c.ignored,
        c.errors
    );
    for slot in r.slots() {
        let b = &slot.book;
        let api = match (slot.api, E::NAME) {
            (FeedApi::Legacy, "kraken") => "v1",
            (FeedApi::Main, "kraken") => "v2",
            (FeedApi::Main, _) => "v5",
            (FeedApi::Legacy, _) => "v3",
        };
        let best = |side| b.best(side).map_or_else(|| "-".to_owned(), |q| format!("{} x {}", q.price, q.qty));
        let _ = writeln!(
            out,
            "{:<12} {api} depth {:<4} {:<10} {}  bid {}  ask {}",
            slot.symbol,
            b.depth(),
            state_name::<E>(b.state()),
            match (b.sequence(), b.proof()) {
                (Some(s), _) => format!("seq {s:>10}"),
                (None, plumb::book::Proof::Checksum(c)) => format!("crc {c:>10}"),
                (None, _) if b.is_checksummed() => format!("crc {:>10}", b.checksum()),
                (None, _) => "seq          -".to_owned(),
            },
            best(Side::Bid),
            best(Side::Ask)
        );
        if let State::Invalid(why) = b.state() {
            let _ = writeln!(out, "{:<12}    why: {}", "", explain::<E>(why, slot.api, b.precision().is_some()));
        }
    }
    out
}
