//! Bybit v5 public order books: `orderbook.{depth}.{symbol}`, proved by the update id `u`.

use std::fmt::Write as _;
use std::time::Duration;

use plumb_book::Depth;
use plumb_book::rule::BybitSeq;
use plumb_wire::bybit::{self, Message};
use plumb_wire::num::parse_u64;

use super::{Api, BookMessage, Exchange, Handler, Op, Reply, push_list};
use crate::error::{Error, Result};

/// Which Bybit v5 public endpoint: the category of the instruments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Market {
    /// Spot (`/v5/public/spot`).
    #[default]
    Spot,
    /// USDT and USDC perpetuals and futures (`/v5/public/linear`).
    Linear,
    /// Inverse contracts (`/v5/public/inverse`).
    Inverse,
}

impl Market {
    /// The endpoint's path.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::Spot => "/v5/public/spot",
            Self::Linear => "/v5/public/linear",
            Self::Inverse => "/v5/public/inverse",
        }
    }

    /// The public mainnet endpoint.
    #[must_use]
    pub fn url(self) -> String {
        format!("wss://stream.bybit.com{}", self.path())
    }
}

/// Bybit v5 public websocket (spot, linear, inverse).
///
/// Books are subscribed in requests of at most 10 topics (spot's limit, used for every market),
/// and the topics of one connection stay under Bybit's 21,000-character limit. Bybit refuses a
/// second subscribe of a live topic, so a resync unsubscribes and waits for the acknowledgement
/// before it subscribes again (the snapshot follows the subscribe). Keepalive: a JSON ping every
/// 20 s as Bybit asks, and one after 3 s of silence; a connection silent for 8 s is replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bybit {
    /// The endpoint's category.
    pub market: Market,
}

impl Bybit {
    /// Bybit on one market.
    #[must_use]
    pub fn new(market: Market) -> Self {
        Self { market }
    }
}

/// The depths Bybit offers for spot, linear and inverse books (level 500 was removed in 2025).
pub const DEPTHS: [u16; 4] = [1, 50, 200, 1000];

/// Bybit's limit on the characters of all topics of one public connection.
pub const TOPIC_BUDGET: usize = 21_000;

impl Exchange for Bybit {
    const NAME: &'static str = "bybit";
    type Dialect = bybit::Bybit;
    type Rule = BybitSeq;
    const MAX_SYMBOLS_PER_REQUEST: usize = 10;
    const UNSUBSCRIBE_FIRST: bool = true;
    const REFUSES_WHOLE_REQUEST: bool = true;
    /// Ten requests of ten topics (the topics' characters are checked against Bybit's 21,000 as
    /// well).
    const SHARD_SIZE: usize = 100;

    /// At most 500 connections per 5 minutes per domain: 10 at once, then one per 750 ms (at
    /// most 410 in any 5 minutes).
    fn connect_pacing(&self) -> crate::Pacing {
        crate::Pacing { burst: 10, interval: Duration::from_millis(750), jitter: Duration::from_millis(100) }
    }

    fn config(&self) -> crate::Config {
        crate::Config {
            depth: Depth::new(50).unwrap_or(Depth::D10),
            ping_after: Duration::from_secs(3),
            stale_after: Duration::from_secs(8),
            ..crate::Config::default()
        }
    }

    fn url(&self) -> String {
        self.market.url()
    }

    fn check_depth(&self, depth: Depth) -> Result<()> {
        if DEPTHS.iter().any(|&d| usize::from(d) == depth.get()) {
            Ok(())
        } else {
            Err(Error::InvalidDepth { exchange: Self::NAME, depth: depth.get(), offered: "1, 50, 200, 1000" })
        }
    }

    fn topic_budget(&self) -> Option<usize> {
        Some(TOPIC_BUDGET)
    }

    fn topic_len(&self, symbol: &str, depth: Depth) -> usize {
        // `"orderbook.50.BTCUSDT",`
        "orderbook..".len() + depth.get().ilog10() as usize + 1 + symbol.len() + 3
    }

    fn ping_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(20))
    }

    fn subscribe(&self, out: &mut String, symbols: &[&str], depth: Depth, req: u64) {
        request(out, "subscribe", symbols, depth, req);
    }

    fn unsubscribe(&self, out: &mut String, symbols: &[&str], depth: Depth, req: u64) {
        request(out, "unsubscribe", symbols, depth, req);
    }

    fn ping(&self, out: &mut String, req: u64) {
        let _ = write!(out, r#"{{"req_id":"{req}","op":"ping"}}"#);
    }

    #[inline]
    fn dispatch<H: Handler>(msg: &Message<'_>, h: &mut H) {
        match msg {
            Message::Book(book) => h.book(BookMessage { api: Api::Main, depth: Some(book.depth), frame: book.frame() }),
            Message::Reply(r) => {
                let op = match r.op {
                    Some("subscribe") | None => Op::Subscribe,
                    Some("unsubscribe") => Op::Unsubscribe,
                    Some(_) => Op::Other,
                };
                let req_id = r.req_id.and_then(|id| parse_u64(id.as_bytes()));
                let failed = r.fail_topics();
                if failed.len() == 0 {
                    h.reply(Reply {
                        api: Api::Main,
                        op,
                        success: r.success,
                        symbol: r.message.and_then(topic_symbol),
                        req_id,
                        message: r.message,
                        depth: None,
                    });
                }
                for topic in failed {
                    h.reply(Reply {
                        api: Api::Main,
                        op,
                        success: false,
                        symbol: topic_symbol(topic),
                        req_id,
                        message: Some(topic),
                        depth: None,
                    });
                }
            }
            Message::Pong | Message::Other { .. } => h.other(Api::Main),
        }
    }
}

/// `{"req_id":"7","op":"subscribe","args":["orderbook.50.BTCUSDT",...]}`.
fn request(out: &mut String, op: &str, symbols: &[&str], depth: Depth, req: u64) {
    let prefix = format!("orderbook.{}.", depth.get());
    let _ = write!(out, r#"{{"req_id":"{req}","op":"{op}","args":["#);
    push_list(out, symbols.iter().copied(), &prefix, "");
    out.push_str("]}");
}

/// The symbol of the first `orderbook.N.SYMBOL` topic named in a text (Bybit names the refused
/// topic in `ret_msg`, for example `Invalid symbol :[orderbook.50.BTCUSDX]`).
fn topic_symbol(text: &str) -> Option<&str> {
    let at = text.find("orderbook.")?;
    let rest = &text[at + "orderbook.".len()..];
    let dot = rest.find('.')?;
    let sym = &rest[dot + 1..];
    let end = sym.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).unwrap_or(sym.len());
    (end > 0).then(|| &sym[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_topics_name_their_symbol() {
        assert_eq!(topic_symbol("Invalid symbol :[orderbook.50.BTCUSDX]"), Some("BTCUSDX"));
        assert_eq!(topic_symbol("error:already subscribed,topic:orderbook.1.ETHUSDT"), Some("ETHUSDT"));
        assert_eq!(topic_symbol("orderbook.100.BTC-6JAN23-18000-C"), Some("BTC-6JAN23-18000-C"));
        assert_eq!(topic_symbol("handler not found"), None);
        assert_eq!(topic_symbol("orderbook.50."), None);
    }

    #[test]
    fn requests_are_bybit_json() {
        let mut s = String::new();
        Bybit::default().subscribe(&mut s, &["BTCUSDT", "ETHUSDT"], Depth::new(50).unwrap(), 7);
        assert_eq!(s, r#"{"req_id":"7","op":"subscribe","args":["orderbook.50.BTCUSDT","orderbook.50.ETHUSDT"]}"#);
        let len = Bybit::default().topic_len("BTCUSDT", Depth::new(50).unwrap());
        assert_eq!(len, r#""orderbook.50.BTCUSDT","#.len());
    }
}
