//! The Coinbase Advanced Trade venue on `/coinbase`: `level2` books (channel `l2_data`) and
//! `heartbeats`.
//!
//! It behaves as Coinbase documents: one channel per subscribe message; a `subscriptions`
//! message answers every subscribe and unsubscribe, listing what the connection holds; a subscribe
//! naming a product that does not exist is refused whole (`{"type":"error","message":"Failed to
//! subscribe","reason":"BTC-XYZ is not a valid product"}`); a `snapshot` event (the whole book, in
//! one frame) then `update` events with absolute quantities, `"0"` deleting, `offer` the ask side;
//! `heartbeats` once a second while subscribed. Every message of a connection, on every channel,
//! carries the next `sequence_num` of one counter that starts at 0 on each connection. More than 8
//! client messages in a second are refused (`rate limit exceeded`). The first product's book can
//! be made deep ([`ExchangeConfig::coinbase_depth`](crate::ExchangeConfig::coinbase_depth)), so
//! that its snapshot is megabytes, as BTC-USD's is.
//!
//! Faults: a lost update of a product (its number is skipped, and whatever message comes next
//! shows the gap), a lost message right before a heartbeat (the heartbeat shows it), a duplicate
//! (an update sent twice, with its number). A malformed frame carries no number.

use std::sync::Arc;

use simd_json::prelude::*;
use tokio::time::Instant;

use crate::market::{self, Rng, SimBook};
use crate::server::{Fault, Logs, Request, Shared, Venue, now, unix_ns};

/// Client messages Coinbase accepts per second (unauthenticated).
const MAX_MESSAGES_PER_SECOND: usize = 8;

/// The levels of a book an update is worked out from: the sim's order flow only touches the best
/// few dozen, so the view this deep sees every change even of a deep book.
const DIFF_DEPTH: usize = 400;

type Target = Option<Option<String>>;

pub(crate) struct CoinbaseConn {
    shared: Arc<Shared>,
    number: u64,
    rng: Rng,
    books: Vec<SimBook>,
    subscribed: Vec<bool>,
    heartbeats: bool,
    /// The connection's next `sequence_num`.
    n: u64,
    heartbeat_counter: u64,
    next_heartbeat: Instant,
    /// When the client's recent messages came, for the rate limit.
    recent: Vec<Instant>,
    drop: Target,
    duplicate: Target,
    heartbeat_gap: bool,
    out: Vec<String>,
}

impl Logs for CoinbaseConn {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

fn hits(target: &Target, symbol: &str) -> bool {
    match target {
        Some(None) => true,
        Some(Some(s)) => s == symbol,
        None => false,
    }
}

impl CoinbaseConn {
    pub(crate) fn new(shared: Arc<Shared>, number: u64, mut rng: Rng) -> Self {
        let mut books: Vec<SimBook> =
            shared.config.coinbase_instruments.iter().map(|i| SimBook::new(i.clone(), &mut rng)).collect();
        if let Some(first) = books.first_mut()
            && shared.config.coinbase_depth > 0
        {
            first.deepen(shared.config.coinbase_depth, &mut rng);
        }
        let n = books.len();
        Self {
            shared,
            number,
            rng,
            books,
            subscribed: vec![false; n],
            heartbeats: false,
            n: 0,
            heartbeat_counter: 0,
            next_heartbeat: now(),
            recent: Vec::new(),
            drop: None,
            duplicate: None,
            heartbeat_gap: false,
            out: Vec::new(),
        }
    }

    fn number(&mut self) -> u64 {
        self.n += 1;
        self.n - 1
    }

    fn subscriptions(&mut self) {
        let n = self.number();
        let list: Vec<&str> = (0..self.books.len())
            .filter(|&i| self.subscribed[i])
            .map(|i| self.books[i].instrument.symbol.as_str())
            .collect();
        let msg = market::coinbase_subscriptions(n, &list, self.heartbeats, unix_ns());
        self.out.push(msg);
    }

    fn snapshot(&mut self, i: usize) {
        let n = self.number();
        let view = self.books[i].view(usize::MAX);
        let f = market::coinbase_frame(&self.books[i].instrument, "snapshot", &view.bids, &view.asks, n, unix_ns());
        self.out.push(f);
    }

    fn error(&mut self, message: &str, reason: &str) {
        self.out.push(format!(r#"{{"type":"error","message":"{message}","reason":"{reason}"}}"#));
    }

    /// Whether this client message is over the rate limit.
    fn over_rate(&mut self) -> bool {
        let t = now();
        self.recent.retain(|&r| t.duration_since(r) < std::time::Duration::from_secs(1));
        self.recent.push(t);
        self.recent.len() > MAX_MESSAGES_PER_SECOND
    }
}

impl Venue for CoinbaseConn {
    fn request(&mut self, text: &[u8]) {
        let mut buf = text.to_vec();
        let over = self.over_rate();
        let Ok(v) = simd_json::to_borrowed_value(&mut buf) else {
            self.error("Failed to parse", "request is not JSON");
            return;
        };
        let kind = v.get("type").and_then(|m| m.as_str()).unwrap_or("").to_owned();
        let channel = v.get("channel").and_then(|m| m.as_str()).unwrap_or("").to_owned();
        let products: Vec<String> = v
            .get("product_ids")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str()).map(str::to_owned).collect())
            .unwrap_or_default();
        self.shared.log().requests.push(Request {
            at_ns: crate::server::unix_ns(),
            connection: self.number,
            method: kind.clone(),
            channel: Some(channel.clone()),
            symbols: products.clone(),
            depth: None,
        });
        if over {
            self.error("rate limit exceeded", "more than 8 messages in a second");
            return;
        }
        if kind != "subscribe" && kind != "unsubscribe" {
            self.error("Failed to subscribe", &format!("unknown type {kind}"));
            return;
        }
        let on = kind == "subscribe";
        match channel.as_str() {
            "heartbeats" => {
                self.heartbeats = on;
                self.next_heartbeat = now() + std::time::Duration::from_secs(1);
                self.subscriptions();
            }
            "level2" => {
                let found: Vec<Option<usize>> = products
                    .iter()
                    .map(|p| {
                        let refused = self.shared.config.reject.contains(p);
                        self.books.iter().position(|b| b.instrument.symbol == *p).filter(|_| !refused)
                    })
                    .collect();
                if let Some(k) = found.iter().position(Option::is_none) {
                    // One bad product refuses the whole request.
                    let reason = format!("{} is not a valid product", products[k]);
                    self.error("Failed to subscribe", &reason);
                    return;
                }
                let found: Vec<usize> = found.into_iter().flatten().collect();
                for &i in &found {
                    self.subscribed[i] = on;
                }
                self.subscriptions();
                if on {
                    for i in found {
                        self.snapshot(i);
                    }
                }
            }
            other => self.error("Failed to subscribe", &format!("{other} is not a channel")),
        }
    }

    fn tick(&mut self) {
        if self.heartbeats && now() >= self.next_heartbeat {
            self.next_heartbeat += std::time::Duration::from_secs(1);
            if std::mem::take(&mut self.heartbeat_gap) {
                // A message lost right before the heartbeat: the heartbeat shows the gap.
                let _ = self.number();
                self.applied(Fault::HeartbeatGap, None);
            }
            let n = self.number();
            self.heartbeat_counter += 1;
            self.out.push(market::coinbase_heartbeat(n, self.heartbeat_counter, unix_ns()));
        }
        let i = usize::try_from(self.rng.below(self.books.len() as u64)).unwrap_or(0);
        let before = self.books[i].view(DIFF_DEPTH);
        for _ in 0..=self.rng.below(3) {
            self.books[i].step(&mut self.rng);
        }
        if !self.subscribed[i] {
            return;
        }
        let after = self.books[i].view(DIFF_DEPTH);
        let changes = market::diff(&before, &after, &self.books[i]);
        if changes.is_empty() {
            return;
        }
        let symbol = self.books[i].instrument.symbol.clone();
        let n = self.number();
        if hits(&self.drop, &symbol) {
            self.drop = None;
            self.applied(Fault::DropUpdate(Some(symbol.clone())), Some(symbol));
            return;
        }
        let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
        let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
        let f = market::coinbase_frame(&self.books[i].instrument, "update", &bids, &asks, n, unix_ns());
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
        r#"{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid","price_level":"6"#
    }

    fn arm(&mut self, fault: Fault) {
        match fault {
            Fault::DropUpdate(s) => self.drop = Some(s),
            Fault::Duplicate(s) => self.duplicate = Some(s),
            Fault::HeartbeatGap => self.heartbeat_gap = true,
            _ => {}
        }
    }

    fn out(&mut self) -> &mut Vec<String> {
        &mut self.out
    }
}
