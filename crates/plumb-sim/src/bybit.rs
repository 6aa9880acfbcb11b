//! The Bybit v5 venue: `orderbook.{depth}.{symbol}` topics on `/v5/public/{spot,linear,inverse}`.
//!
//! It behaves as Bybit documents: at most 10 topics per subscribe request, a whole request refused
//! when one topic in it is bad (`Invalid symbol :[topic]`) or already subscribed, a snapshot then
//! deltas numbered by `u` (one counter per subscription, `seq` a cross sequence that jumps), the
//! levels that leave the subscribed depth deleted explicitly, level-1 books as snapshots only,
//! JSON ping and pong, and no heartbeat of its own. A subscription's snapshot is sometimes sent
//! before its acknowledgement, as Bybit may.
//!
//! Faults aimed at a symbol: a lost delta (its `u` is skipped), a duplicate (the delta sent twice),
//! a restart (a snapshot with `u` = 1, numbering on from there). A checksum corruption does not
//! apply: Bybit sends none.

use std::collections::HashMap;
use std::sync::Arc;

use simd_json::prelude::*;

use crate::market::{self, Rng, SimBook};
use crate::server::{Fault, Logs, Request, Shared, Venue, unix_ns};

/// Topics per subscribe request that Bybit accepts (spot's limit).
const MAX_ARGS: usize = 10;

/// One subscription: its depth and the next update id.
#[derive(Debug, Clone, Copy)]
struct Sub {
    depth: usize,
    u: u64,
}

pub(crate) struct BybitConn {
    shared: Arc<Shared>,
    number: u64,
    rng: Rng,
    books: Vec<SimBook>,
    subs: HashMap<usize, Sub>,
    seq: u64,
    drop: Option<Option<String>>,
    duplicate: Option<Option<String>>,
    restart: Option<Option<String>>,
    out: Vec<String>,
}

impl Logs for BybitConn {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl BybitConn {
    pub(crate) fn new(shared: Arc<Shared>, number: u64, mut rng: Rng) -> Self {
        let books = shared.config.bybit_instruments.iter().map(|i| SimBook::new(i.clone(), &mut rng)).collect();
        let seq = 7_000_000_000 + rng.below(1_000_000);
        Self {
            shared,
            number,
            rng,
            books,
            subs: HashMap::new(),
            seq,
            drop: None,
            duplicate: None,
            restart: None,
            out: Vec::new(),
        }
    }

    fn find(&self, symbol: &str) -> Option<usize> {
        self.books.iter().position(|b| b.instrument.symbol == symbol)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1 + self.rng.below(50);
        self.seq
    }

    fn snapshot(&mut self, i: usize) -> String {
        let seq = self.next_seq();
        let Some(sub) = self.subs.get(&i).copied() else { return String::new() };
        let book = &self.books[i];
        let view = book.view(sub.depth);
        market::bybit_frame(
            &book.instrument,
            sub.depth,
            true,
            &view.bids,
            &view.asks,
            (sub.u, seq),
            unix_ns() / 1_000_000,
        )
    }

    /// `orderbook.50.BTCUSDT` -> (instrument, depth), or the reason Bybit refuses it.
    fn topic(&self, topic: &str) -> Result<(usize, usize), String> {
        let bad = || format!("Invalid symbol :[{topic}]");
        let rest = topic.strip_prefix("orderbook.").ok_or_else(bad)?;
        let (depth, symbol) = rest.split_once('.').ok_or_else(bad)?;
        let depth: usize = depth.parse().map_err(|_| bad())?;
        if ![1, 50, 200, 1000].contains(&depth) || self.shared.config.reject.iter().any(|r| r == symbol) {
            return Err(bad());
        }
        let i = self.find(symbol).ok_or_else(bad)?;
        Ok((i, depth))
    }

    fn reply(&mut self, op: &str, req: &str, ok: bool, msg: &str) {
        self.out.push(format!(
            r#"{{"success":{ok},"ret_msg":"{msg}","conn_id":"sim-{}","req_id":"{req}","op":"{op}"}}"#,
            self.number
        ));
    }
}

impl Venue for BybitConn {
    fn request(&mut self, text: &[u8]) {
        let mut buf = text.to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut buf) else {
            self.out.push(r#"{"success":false,"ret_msg":"error:request not json","op":""}"#.to_owned());
            return;
        };
        let op = v.get("op").and_then(|m| m.as_str()).unwrap_or("").to_owned();
        let req = v.get("req_id").and_then(|r| r.as_str()).unwrap_or("").to_owned();
        let args: Vec<String> = v
            .get("args")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str()).map(str::to_owned).collect())
            .unwrap_or_default();
        let parsed: Vec<Result<(usize, usize), String>> = args.iter().map(|t| self.topic(t)).collect();
        self.shared.log().requests.push(Request {
            at_ns: crate::server::unix_ns(),
            connection: self.number,
            method: op.clone(),
            channel: (!args.is_empty()).then(|| "orderbook".to_owned()),
            symbols: args.iter().map(|t| t.rsplit('.').next().unwrap_or("").to_owned()).collect(),
            depth: parsed.iter().find_map(|p| p.as_ref().ok()).and_then(|&(_, d)| u64::try_from(d).ok()),
        });
        match op.as_str() {
            "ping" => self.reply("ping", &req, true, "pong"),
            "subscribe" => {
                if args.len() > MAX_ARGS {
                    self.reply("subscribe", &req, false, "args size >10");
                    return;
                }
                // Bybit refuses the whole request for one bad or already subscribed topic.
                for (t, p) in args.iter().zip(&parsed) {
                    let why = match p {
                        Err(e) => Some(e.clone()),
                        Ok((i, _)) if self.subs.contains_key(i) => Some(format!("error:already subscribed,topic:{t}")),
                        Ok(_) => None,
                    };
                    if let Some(why) = why {
                        self.reply("subscribe", &req, false, &why);
                        return;
                    }
                }
                let early = self.rng.percent(30);
                if !early {
                    self.reply("subscribe", &req, true, "");
                }
                for p in parsed.into_iter().flatten() {
                    let (i, depth) = p;
                    let u = 1_000 + self.rng.below(1_000_000);
                    self.subs.insert(i, Sub { depth, u });
                    let snap = self.snapshot(i);
                    self.out.push(snap);
                }
                if early {
                    self.reply("subscribe", &req, true, "");
                }
            }
            "unsubscribe" => {
                for (t, p) in args.iter().zip(&parsed) {
                    if !matches!(p, Ok((i, _)) if self.subs.contains_key(i)) {
                        self.reply("unsubscribe", &req, false, &format!("error:not subscribed,topic:{t}"));
                        return;
                    }
                }
                for (i, _) in parsed.into_iter().flatten() {
                    self.subs.remove(&i);
                }
                self.reply("unsubscribe", &req, true, "");
            }
            _ => self.reply(&op, &req, false, "error:unknown op"),
        }
    }

    fn tick(&mut self) {
        let i = usize::try_from(self.rng.below(self.books.len() as u64)).unwrap_or(0);
        let sub = self.subs.get(&i).copied();
        let before = sub.map(|s| self.books[i].view(s.depth)).unwrap_or_default();
        for _ in 0..=self.rng.below(3) {
            self.books[i].step(&mut self.rng);
        }
        let Some(sub) = sub else { return };
        let after = self.books[i].view(sub.depth);
        let changes = market::diff_exact(&before, &after);
        if changes.is_empty() {
            return;
        }
        let symbol = self.books[i].instrument.symbol.clone();
        let hits = |target: &Option<Option<String>>| match target {
            Some(None) => true,
            Some(Some(s)) => *s == symbol,
            None => false,
        };
        if hits(&self.restart) {
            self.restart = None;
            self.subs.insert(i, Sub { depth: sub.depth, u: 1 });
            let snap = self.snapshot(i);
            self.out.push(snap);
            self.applied(Fault::Restart(Some(symbol.clone())), Some(symbol));
            return;
        }
        let u = sub.u + 1;
        self.subs.insert(i, Sub { depth: sub.depth, u });
        if hits(&self.drop) {
            self.drop = None;
            self.applied(Fault::DropUpdate(Some(symbol.clone())), Some(symbol));
            return;
        }
        let seq = self.next_seq();
        let book = &self.books[i];
        let frame = if sub.depth == 1 {
            // Level 1 is snapshots only.
            market::bybit_frame(&book.instrument, 1, true, &after.bids, &after.asks, (u, seq), unix_ns() / 1_000_000)
        } else {
            let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
            let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
            market::bybit_frame(&book.instrument, sub.depth, false, &bids, &asks, (u, seq), unix_ns() / 1_000_000)
        };
        if hits(&self.duplicate) {
            self.duplicate = None;
            self.out.push(frame.clone());
            self.applied(Fault::Duplicate(Some(symbol.clone())), Some(symbol));
        }
        self.out.push(frame);
    }

    fn heartbeat(&self) -> Option<&'static str> {
        None
    }

    fn malformed(&self) -> &'static str {
        r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["6"#
    }

    fn arm(&mut self, fault: Fault) {
        match fault {
            Fault::DropUpdate(s) => self.drop = Some(s),
            Fault::Duplicate(s) => self.duplicate = Some(s),
            Fault::Restart(s) => self.restart = Some(s),
            _ => {}
        }
    }

    fn out(&mut self) -> &mut Vec<String> {
        &mut self.out
    }
}
