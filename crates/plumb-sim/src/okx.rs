//! The OKX v5 venue on `/ws/v5/public`: `books` (a 400-level snapshot, then updates linked by
//! `prevSeqId`), `books5` and `bbo-tbt` (the whole top 5 or top 1 on every change).
//!
//! It behaves as OKX documents: each arg of a request acknowledged or refused on its own
//! (`{"event":"error","code":"60018",...}` naming the channel and instrument), a subscribe of a
//! live channel answered with a fresh snapshot, the text `ping` answered with `pong`, and no
//! heartbeat of its own. `seqId` moves by one or more per update and `prevSeqId` links each update
//! to the one before. The checksum is 0, as since OKX retired it, unless the exchange is configured
//! with legacy checksums ([`ExchangeConfig::okx_checksums`](crate::ExchangeConfig::okx_checksums)),
//! then written as OKX used to (`market::okx_checksum`).
//!
//! Faults aimed at a symbol: a lost update, a corrupted checksum (with legacy checksums), a
//! keepalive (an empty update with `prevSeqId == seqId`, while the market stands still), a sequence
//! reset after maintenance (`seqId` drops below `prevSeqId`), a snapshot that never comes (an
//! update is lost, and the subscribe that follows is acknowledged without a snapshot), and a
//! `notice` of a service upgrade. A duplicate does not apply: OKX's links make it a gap.

use std::collections::HashMap;
use std::sync::Arc;

use simd_json::prelude::*;

use crate::market::{self, Rng, SimBook, View};
use crate::server::{Fault, Logs, Request, Shared, Venue, unix_ns};

/// One subscription: its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Books,
    Books5,
    BboTbt,
}

impl Channel {
    fn of(name: &str) -> Option<Self> {
        match name {
            "books" => Some(Self::Books),
            "books5" => Some(Self::Books5),
            "bbo-tbt" => Some(Self::BboTbt),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Books => "books",
            Self::Books5 => "books5",
            Self::BboTbt => "bbo-tbt",
        }
    }

    fn depth(self) -> usize {
        match self {
            Self::Books => 400,
            Self::Books5 => 5,
            Self::BboTbt => 1,
        }
    }
}

type Target = Option<Option<String>>;

pub(crate) struct OkxConn {
    shared: Arc<Shared>,
    number: u64,
    rng: Rng,
    books: Vec<SimBook>,
    /// The last `seqId` of each instrument.
    seq: Vec<u64>,
    subs: HashMap<usize, Channel>,
    drop: Target,
    corrupt: Target,
    keepalive: Target,
    reset: Target,
    no_snapshot: Target,
    /// Instruments whose next subscribe gets no snapshot.
    withhold: Vec<usize>,
    /// What `GET /api/v5/market/books` serves per instrument: the book and its `seqId` as of the
    /// last cache refresh, which lags the stream now and then (OKX: "returns the latest data once
    /// the server-side cache has been updated").
    cache: Vec<Option<(View, u64)>>,
    out: Vec<String>,
}

impl Logs for OkxConn {
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

impl OkxConn {
    pub(crate) fn new(shared: Arc<Shared>, number: u64, mut rng: Rng) -> Self {
        let books: Vec<SimBook> =
            shared.config.okx_instruments.iter().map(|i| SimBook::new(i.clone(), &mut rng)).collect();
        let seq = books.iter().map(|_| 10_000_000 + rng.below(1_000_000_000)).collect();
        let n = books.len();
        Self {
            shared,
            number,
            rng,
            books,
            seq,
            subs: HashMap::new(),
            drop: None,
            corrupt: None,
            keepalive: None,
            reset: None,
            no_snapshot: None,
            withhold: Vec::new(),
            cache: vec![None; n],
            out: Vec::new(),
        }
    }

    /// The REST cache of instrument `i` catches up with its book, half the time.
    fn refresh_cache(&mut self, i: usize) {
        if self.rng.percent(50) {
            self.cache[i] = Some((self.books[i].view(Channel::Books.depth()), self.seq[i]));
        }
    }

    fn checksum(&self, view: &View, i: usize) -> i32 {
        if self.shared.config.okx_checksums { market::okx_checksum(view, &self.books[i].instrument) } else { 0 }
    }

    fn snapshot(&mut self, i: usize, ch: Channel) -> String {
        let book = &self.books[i];
        let view = book.view(ch.depth());
        let now = unix_ns() / 1_000_000;
        if ch == Channel::Books {
            let crc = self.checksum(&view, i);
            market::okx_frame(
                &book.instrument,
                "books",
                Some("snapshot"),
                &view.bids,
                &view.asks,
                (Some(-1), self.seq[i]),
                crc,
                now,
            )
        } else {
            market::okx_frame(&book.instrument, ch.name(), None, &view.bids, &view.asks, (None, self.seq[i]), 0, now)
        }
    }

    fn event(&mut self, id: &str, event: &str, ch: &str, inst: &str) {
        self.out.push(format!(
            r#"{{"id":"{id}","event":"{event}","arg":{{"channel":"{ch}","instId":"{inst}"}},"connId":"sim{}"}}"#,
            self.number
        ));
    }

    fn error(&mut self, id: &str, code: &str, msg: &str) {
        self.out.push(format!(
            r#"{{"id":"{id}","event":"error","code":"{code}","msg":"{msg}","connId":"sim{}"}}"#,
            self.number
        ));
    }
}

impl Venue for OkxConn {
    fn request(&mut self, text: &[u8]) {
        if text == b"ping" {
            self.shared.log().requests.push(Request {
                at_ns: crate::server::unix_ns(),
                connection: self.number,
                method: "ping".to_owned(),
                channel: None,
                symbols: Vec::new(),
                depth: None,
            });
            self.out.push("pong".to_owned());
            return;
        }
        let mut buf = text.to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut buf) else {
            self.error("", "60012", "Invalid request: not JSON");
            return;
        };
        let op = v.get("op").and_then(|m| m.as_str()).unwrap_or("").to_owned();
        let id = v.get("id").and_then(|r| r.as_str()).unwrap_or("").to_owned();
        let args: Vec<(String, String)> = v
            .get("args")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .map(|x| {
                        let f = |k: &str| x.get(k).and_then(|s| s.as_str()).unwrap_or("").to_owned();
                        (f("channel"), f("instId"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.shared.log().requests.push(Request {
            at_ns: crate::server::unix_ns(),
            connection: self.number,
            method: op.clone(),
            channel: args.first().map(|(c, _)| c.clone()),
            symbols: args.iter().map(|(_, s)| s.clone()).collect(),
            depth: args.first().and_then(|(c, _)| Channel::of(c)).and_then(|c| u64::try_from(c.depth()).ok()),
        });
        if op != "subscribe" && op != "unsubscribe" {
            self.error(&id, "60012", &format!("Invalid request: unknown op {op}"));
            return;
        }
        // Each arg is answered on its own: a bad one is refused, the others go on.
        for (ch_name, inst) in args {
            let found = self.books.iter().position(|b| b.instrument.symbol == inst);
            let refused = self.shared.config.reject.contains(&inst);
            let (Some(ch), Some(i), false) = (Channel::of(&ch_name), found, refused) else {
                self.error(&id, "60018", &format!("Wrong URL or channel:{ch_name},instId:{inst} doesn't exist."));
                continue;
            };
            if op == "unsubscribe" {
                if self.subs.remove(&i).is_some() {
                    self.event(&id, "unsubscribe", &ch_name, &inst);
                } else {
                    self.error(&id, "60016", &format!("Not subscribed: channel:{ch_name},instId:{inst}"));
                }
                continue;
            }
            self.subs.insert(i, ch);
            self.shared.claim_rest("okx", &inst, self.number);
            self.event(&id, "subscribe", &ch_name, &inst);
            let withheld = self.withhold.iter().position(|&w| w == i);
            if let Some(k) = withheld {
                // The snapshot that never comes.
                self.withhold.swap_remove(k);
                continue;
            }
            let snap = self.snapshot(i, ch);
            self.out.push(snap);
        }
    }

    fn tick(&mut self) {
        let i = usize::try_from(self.rng.below(self.books.len() as u64)).unwrap_or(0);
        let sub = self.subs.get(&i).copied();
        let symbol = self.books[i].instrument.symbol.clone();
        if sub == Some(Channel::Books) && hits(&self.keepalive, &symbol) {
            // No change for a while: an empty update whose prevSeqId and seqId are the last one.
            self.keepalive = None;
            let s = i64::try_from(self.seq[i]).unwrap_or(i64::MAX);
            let f = market::okx_frame(
                &self.books[i].instrument,
                "books",
                Some("update"),
                &[],
                &[],
                (Some(s), self.seq[i]),
                0,
                unix_ns() / 1_000_000,
            );
            self.out.push(f);
            self.applied(Fault::Keepalive(Some(symbol.clone())), Some(symbol));
            return;
        }
        let depth = sub.map_or(0, Channel::depth);
        let before = self.books[i].view(depth);
        for _ in 0..=self.rng.below(3) {
            self.books[i].step(&mut self.rng);
        }
        let Some(ch) = sub else { return };
        let after = self.books[i].view(depth);
        if after == before {
            return;
        }
        let prev = self.seq[i];
        let reset = ch == Channel::Books && hits(&self.reset, &symbol);
        self.seq[i] = if reset { 1 + self.rng.below(1000) } else { prev + 1 + self.rng.below(3) };
        let now = unix_ns() / 1_000_000;
        if ch != Channel::Books {
            let f = market::okx_frame(
                &self.books[i].instrument,
                ch.name(),
                None,
                &after.bids,
                &after.asks,
                (None, self.seq[i]),
                0,
                now,
            );
            self.out.push(f);
            return;
        }
        self.refresh_cache(i);
        if reset {
            self.reset = None;
            self.applied(Fault::Restart(Some(symbol.clone())), Some(symbol.clone()));
        }
        if hits(&self.drop, &symbol) {
            self.drop = None;
            self.applied(Fault::DropUpdate(Some(symbol.clone())), Some(symbol));
            return;
        }
        if hits(&self.no_snapshot, &symbol) {
            self.no_snapshot = None;
            self.withhold.push(i);
            self.applied(Fault::NoSnapshot(Some(symbol.clone())), Some(symbol));
            return;
        }
        let changes = market::diff_exact(&before, &after);
        let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
        let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
        let mut crc = self.checksum(&after, i);
        if crc != 0 && hits(&self.corrupt, &symbol) {
            self.corrupt = None;
            crc ^= 0x5a5a;
            self.applied(Fault::CorruptChecksum(Some(symbol.clone())), Some(symbol));
        }
        let link = (Some(i64::try_from(prev).unwrap_or(i64::MAX)), self.seq[i]);
        let f = market::okx_frame(&self.books[i].instrument, "books", Some("update"), &bids, &asks, link, crc, now);
        self.out.push(f);
    }

    fn heartbeat(&self) -> Option<&'static str> {
        None
    }

    fn malformed(&self) -> &'static str {
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["6"#
    }

    fn arm(&mut self, fault: Fault) {
        match fault {
            Fault::DropUpdate(s) => self.drop = Some(s),
            Fault::CorruptChecksum(s) if self.shared.config.okx_checksums => self.corrupt = Some(s),
            Fault::Keepalive(s) => self.keepalive = Some(s),
            Fault::Restart(s) => self.reset = Some(s),
            Fault::NoSnapshot(s) => self.no_snapshot = Some(s),
            Fault::Notice => {
                self.out.push(format!(
                    r#"{{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"sim{}"}}"#,
                    self.number
                ));
                self.applied(Fault::Notice, None);
            }
            _ => {}
        }
    }

    fn out(&mut self) -> &mut Vec<String> {
        &mut self.out
    }

    /// `GET /api/v5/market/books?instId=…&sz=…`: the instrument's cached book (or its book, before
    /// the cache first fills) with its `seqId`; OKX's error body for an unknown instrument.
    fn rest(&mut self, path: &str) -> (u16, String) {
        let param = |key: &str| path.split(['?', '&']).find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
        let sz = param("sz").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1).clamp(1, 400);
        let Some(i) = param("instId").and_then(|inst| self.books.iter().position(|b| b.instrument.symbol == inst))
        else {
            return (200, r#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#.to_owned());
        };
        let (view, seq) = self.cache[i].clone().unwrap_or_else(|| (self.books[i].view(400), self.seq[i]));
        let view =
            View { bids: view.bids.into_iter().take(sz).collect(), asks: view.asks.into_iter().take(sz).collect() };
        (200, market::okx_rest_body(&self.books[i].instrument, &view, seq, unix_ns() / 1_000_000))
    }
}
