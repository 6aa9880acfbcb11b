//! Kraken spot websocket v2: instrument precisions first, then books, proved by CRC32.

use std::fmt::Write as _;
use std::time::Duration;

use plumb_book::rule::KrakenCrc;
use plumb_book::{Depth, Precision};
use plumb_wire::kraken::{self, Message};

use super::{Api, BookMessage, Exchange, Handler, Op, Reply, push_list};
use crate::error::{Error, Result};

/// Kraken spot, websocket v2 (`wss://ws.kraken.com/v2`).
///
/// On connect the session subscribes to `instrument` (the v2 checksum needs each pair's
/// precisions), then to every book in one request once the instrument snapshot arrives. Kraken
/// sends a heartbeat every second of quiet, so a few seconds of silence is a fault. Captures may
/// also hold v1 frames; the replay reads them, the live session does not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Kraken;

impl Exchange for Kraken {
    const NAME: &'static str = "kraken";
    type Dialect = kraken::Kraken;
    type Rule = KrakenCrc;
    const MAX_SYMBOLS_PER_REQUEST: usize = 256;
    /// Kraken answers a subscribe of a book it still holds with `Already subscribed` and no
    /// snapshot (it may not have processed an unsubscribe sent just before): a resync subscribes
    /// only once the unsubscribe is acknowledged (`Subscription Not Found` counts: already gone).
    const UNSUBSCRIBE_FIRST: bool = true;
    const REFUSES_WHOLE_REQUEST: bool = false;
    /// Kraken documents no limit; a hundred books keep one connection's snapshots and resyncs
    /// small.
    const SHARD_SIZE: usize = 100;

    fn config(&self) -> crate::Config {
        crate::Config::default()
    }

    /// About 150 connection attempts per 10 minutes per IP: 8 at once, then one per 4.5 s (at
    /// most 141 in any 10 minutes).
    fn connect_pacing(&self) -> crate::Pacing {
        crate::Pacing { burst: 8, interval: Duration::from_millis(4500), jitter: Duration::from_millis(250) }
    }

    fn url(&self) -> String {
        crate::KRAKEN_V2_URL.to_owned()
    }

    fn check_depth(&self, depth: Depth) -> Result<()> {
        if Depth::ALL.contains(&depth) {
            Ok(())
        } else {
            Err(Error::InvalidDepth { exchange: Self::NAME, depth: depth.get(), offered: "10, 25, 100, 500, 1000" })
        }
    }

    fn preamble(&self, req: u64) -> Option<String> {
        Some(format!(r#"{{"method":"subscribe","params":{{"channel":"instrument","snapshot":true}},"req_id":{req}}}"#))
    }

    fn subscribe(&self, out: &mut String, symbols: &[&str], depth: Depth, req: u64) {
        book_request(out, "subscribe", symbols, depth, req);
    }

    fn unsubscribe(&self, out: &mut String, symbols: &[&str], depth: Depth, req: u64) {
        book_request(out, "unsubscribe", symbols, depth, req);
    }

    fn ping(&self, out: &mut String, req: u64) {
        let _ = write!(out, r#"{{"method":"ping","req_id":{req}}}"#);
    }

    #[inline]
    fn dispatch<H: Handler>(msg: &Message<'_>, h: &mut H) {
        let api = Api::from;
        match msg {
            Message::Book(book) => {
                for entry in book.entries() {
                    h.book(BookMessage { api: api(book.api), depth: book.depth, frame: entry.frame() });
                }
            }
            Message::Instrument(inst) => {
                for pair in inst.pairs() {
                    h.precision(pair.symbol, Precision { price: pair.price_precision, qty: pair.qty_precision });
                }
                h.other(Api::Main);
                if inst.kind == kraken::Kind::Snapshot {
                    h.ready();
                }
            }
            Message::Response(r) => {
                let op = match r.method {
                    "subscribe" | "subscriptionStatus" if r.status != Some("unsubscribed") => Op::Subscribe,
                    "unsubscribe" | "subscriptionStatus" => Op::Unsubscribe,
                    _ => Op::Other,
                };
                h.reply(Reply {
                    api: api(r.api),
                    op,
                    success: r.success,
                    symbol: r.symbol,
                    req_id: r.req_id,
                    message: r.error,
                    depth: r.depth,
                });
            }
            Message::Heartbeat(a) | Message::Other { api: a, .. } => h.other(api(*a)),
            Message::Status(s) => h.other(api(s.api)),
        }
    }
}

impl From<kraken::Api> for Api {
    fn from(a: kraken::Api) -> Self {
        match a {
            kraken::Api::V2 => Api::Main,
            kraken::Api::V1 => Api::Legacy,
        }
    }
}

/// A v2 book request. Symbols are checked by `check_symbol`, so they need no escaping.
fn book_request(out: &mut String, method: &str, symbols: &[&str], depth: Depth, req: u64) {
    let _ = write!(out, r#"{{"method":"{method}","params":{{"channel":"book","symbol":["#);
    push_list(out, symbols.iter().copied(), "", "");
    let _ = write!(out, r#"],"depth":{}"#, depth.get());
    if method == "subscribe" {
        out.push_str(r#","snapshot":true"#);
    }
    let _ = write!(out, r#"}},"req_id":{req}}}"#);
}
