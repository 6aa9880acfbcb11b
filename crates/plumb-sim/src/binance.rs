//! The Binance venues: spot on `/ws`, USD-M futures on `/public/ws`, with their REST depth
//! snapshots (`GET /api/v3/depth`, `GET /fapi/v1/depth`) on the same port.
//!
//! It behaves as Binance documents: `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS` with ids,
//! answered `{"result":…,"id":N}`; a malformed stream name refuses the whole request
//! (`{"code":2,"msg":…,"id":N}`); a well-formed one for a symbol that is not listed is accepted
//! and never sends anything (its REST snapshot answers HTTP 400 `{"code":-1121,…}`); no snapshot
//! on the stream, `depthUpdate` events with `U`/`u` (spot: each event starts right after the last;
//! USD-M: ids jump between events and `pu` names the last event's `u`); a websocket ping every 20 s
//! (USD-M every 3 minutes in Binance's docs; here 20 s too, so that tests see it), each to be
//! answered within a minute with its payload; more than 5 client messages a second (USD-M 10),
//! pongs included, close the connection. The REST snapshot is the book as of the last cache
//! refresh, which lags the stream now and then.
//!
//! Faults: a lost event (its ids are skipped), a duplicate, a snapshot older than the events a
//! client has buffered (`Fault::NoSnapshot`: the next REST answer is an old cached one), HTTP 503
//! (`Fault::RestError`, in `server.rs`), and `serverShutdown` (`Fault::Notice`).

use std::sync::Arc;
use std::time::Duration;

use simd_json::prelude::*;

use crate::market::{self, Rng, SimBook, View};
use crate::server::{Fault, Logs, Request, Shared, Venue, unix_ns};

type Target = Option<Option<String>>;

fn hits(target: &Target, symbol: &str) -> bool {
    match target {
        Some(None) => true,
        Some(Some(s)) => s == symbol,
        None => false,
    }
}

/// The levels a REST snapshot and an event are worked out from (the sim's books hold at most
/// 200 a side).
const DEPTH: usize = 1000;

pub(crate) struct BinanceConn {
    shared: Arc<Shared>,
    number: u64,
    rng: Rng,
    usdm: bool,
    books: Vec<SimBook>,
    subscribed: Vec<bool>,
    /// The last update id of each book.
    u: Vec<u64>,
    /// The REST cache of each book: its view and id as of the last refresh.
    cache: Vec<(View, u64)>,
    /// An old state of each book, for the snapshot that is older than the stream.
    old: Vec<(View, u64)>,
    stale_next: bool,
    drop: Target,
    duplicate: Target,
    out: Vec<String>,
}

impl Logs for BinanceConn {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl BinanceConn {
    pub(crate) fn new(shared: Arc<Shared>, number: u64, mut rng: Rng, usdm: bool) -> Self {
        let books: Vec<SimBook> =
            shared.config.binance_instruments.iter().map(|i| SimBook::new(i.clone(), &mut rng)).collect();
        let u: Vec<u64> = books.iter().map(|_| 1_000_000 + rng.below(1_000_000_000)).collect();
        let cache: Vec<(View, u64)> = books.iter().zip(&u).map(|(b, &u)| (b.view(DEPTH), u)).collect();
        let n = books.len();
        Self {
            shared,
            number,
            rng,
            usdm,
            books,
            subscribed: vec![false; n],
            old: cache.clone(),
            cache,
            u,
            stale_next: false,
            drop: None,
            duplicate: None,
            out: Vec::new(),
        }
    }

    fn reply(&mut self, result: &str, id: &str) {
        self.out.push(format!(r#"{{"result":{result},"id":{id}}}"#));
    }

    fn error(&mut self, code: i64, msg: &str, id: &str) {
        self.out.push(format!(r#"{{"code":{code},"msg":"{msg}","id":{id}}}"#));
    }

    /// `btcusdt@depth`, `btcusdt@depth@100ms` -> the symbol, or `None` for another name.
    fn stream(name: &str) -> Option<String> {
        let (sym, rest) = name.split_once('@')?;
        let ok = matches!(rest, "depth" | "depth@100ms" | "depth@250ms" | "depth@500ms" | "depth@1000ms")
            && !sym.is_empty()
            && sym.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        ok.then(|| sym.to_ascii_uppercase())
    }
}

impl Venue for BinanceConn {
    fn request(&mut self, text: &[u8]) {
        let mut buf = text.to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut buf) else {
            self.error(3, "Invalid JSON", "null");
            return;
        };
        let method = v.get("method").and_then(|m| m.as_str()).unwrap_or("").to_owned();
        let id = v.get("id").map_or_else(|| "null".to_owned(), ToString::to_string);
        let params: Vec<String> = v
            .get("params")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str()).map(str::to_owned).collect())
            .unwrap_or_default();
        let symbols: Vec<Option<String>> = params.iter().map(|p| Self::stream(p)).collect();
        self.shared.log().requests.push(Request {
            at_ns: crate::server::unix_ns(),
            connection: self.number,
            method: method.to_ascii_lowercase(),
            channel: Some("depth".to_owned()),
            symbols: symbols.iter().flatten().cloned().collect(),
            depth: None,
        });
        match method.as_str() {
            "SUBSCRIBE" | "UNSUBSCRIBE" => {
                if symbols.iter().any(Option::is_none) {
                    // One bad name refuses the whole request.
                    self.error(2, "Invalid request: invalid stream name", &id);
                    return;
                }
                for sym in symbols.into_iter().flatten() {
                    if let Some(i) = self.books.iter().position(|b| b.instrument.symbol == sym) {
                        self.subscribed[i] = method == "SUBSCRIBE";
                        if self.subscribed[i] {
                            let venue = if self.usdm { "binance-usdm" } else { "binance" };
                            self.shared.claim_rest(venue, &sym, self.number);
                        }
                    }
                }
                self.reply("null", &id);
            }
            "LIST_SUBSCRIPTIONS" => {
                let list: Vec<String> = (0..self.books.len())
                    .filter(|&i| self.subscribed[i])
                    .map(|i| format!(r#""{}@depth@100ms""#, self.books[i].instrument.symbol.to_ascii_lowercase()))
                    .collect();
                self.reply(&format!("[{}]", list.join(",")), &id);
            }
            _ => self.error(2, "Invalid request: unknown method", &id),
        }
    }

    fn tick(&mut self) {
        let i = usize::try_from(self.rng.below(self.books.len() as u64)).unwrap_or(0);
        let before = self.books[i].view(DEPTH);
        for _ in 0..=self.rng.below(3) {
            self.books[i].step(&mut self.rng);
        }
        let after = self.books[i].view(DEPTH);
        let changes = market::diff(&before, &after, &self.books[i]);
        if changes.is_empty() {
            return;
        }
        let prev = self.u[i];
        // Spot: ids run on from the last; USD-M: they jump between events.
        let first = prev + 1 + if self.usdm { self.rng.below(5) } else { 0 };
        let last = first + self.rng.below(4);
        self.u[i] = last;
        // The REST cache catches up half the time; an old state is kept now and then.
        if self.rng.percent(50) {
            self.cache[i] = (after.clone(), last);
        }
        if self.rng.percent(5) {
            self.old[i] = (after.clone(), last);
        }
        if !self.subscribed[i] {
            return;
        }
        let symbol = self.books[i].instrument.symbol.clone();
        if hits(&self.drop, &symbol) {
            self.drop = None;
            self.applied(Fault::DropUpdate(Some(symbol.clone())), Some(symbol));
            return;
        }
        let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
        let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
        let pu = self.usdm.then_some(prev);
        let f =
            market::binance_event(&self.books[i].instrument, (first, last, pu), &bids, &asks, unix_ns() / 1_000_000);
        if hits(&self.duplicate, &symbol) {
            self.duplicate = None;
            self.out.push(f.clone());
            self.applied(Fault::Duplicate(Some(symbol.clone())), Some(symbol));
        }
        self.out.push(f);
    }

    fn heartbeat(&self) -> Option<&'static str> {
        None
    }

    fn malformed(&self) -> &'static str {
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":9,"b":[["6"#
    }

    fn arm(&mut self, fault: Fault) {
        match fault {
            Fault::DropUpdate(s) => self.drop = Some(s),
            Fault::Duplicate(s) => self.duplicate = Some(s),
            Fault::NoSnapshot(_) => self.stale_next = true,
            Fault::Notice => {
                self.out.push(format!(r#"{{"e":"serverShutdown","E":{}}}"#, unix_ns() / 1_000_000));
                self.applied(Fault::Notice, None);
            }
            _ => {}
        }
    }

    fn out(&mut self) -> &mut Vec<String> {
        &mut self.out
    }

    /// `GET /api/v3/depth?symbol=…&limit=…` (or `/fapi/v1/depth`): the symbol's cached book,
    /// at most `limit` levels a side, with its `lastUpdateId`; HTTP 400 `-1121` for a symbol
    /// that is not listed.
    fn rest(&mut self, path: &str) -> (u16, String) {
        let param = |key: &str| path.split(['?', '&']).find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
        let limit = param("limit").and_then(|v| v.parse::<usize>().ok()).unwrap_or(100).clamp(1, 5000);
        let found = param("symbol")
            .filter(|s| !self.shared.config.reject.iter().any(|r| r == s))
            .and_then(|s| self.books.iter().position(|b| b.instrument.symbol == s));
        let Some(i) = found else {
            return (400, r#"{"code":-1121,"msg":"Invalid symbol."}"#.to_owned());
        };
        let (view, id) = if std::mem::take(&mut self.stale_next) {
            let symbol = self.books[i].instrument.symbol.clone();
            self.applied(Fault::NoSnapshot(Some(symbol.clone())), Some(symbol));
            self.old[i].clone()
        } else {
            self.cache[i].clone()
        };
        let view = View {
            bids: view.bids.into_iter().take(limit).collect(),
            asks: view.asks.into_iter().take(limit).collect(),
        };
        let usdm_ms = self.usdm.then(|| unix_ns() / 1_000_000);
        (200, market::binance_depth_body(&self.books[i].instrument, &view, id, usdm_ms))
    }

    fn ws_ping_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(20))
    }

    fn max_messages_per_second(&self) -> Option<usize> {
        Some(if self.usdm { 10 } else { 5 })
    }
}
