//! Coinbase Advanced Trade market data: `level2` books, kept by the connection's counter.
//!
//! Coinbase numbers every message of a connection, on every channel, with one `sequence_num`.
//! The dispatcher hands it to the session first ([`Handler::counter`]): a message numbered at or
//! below the last one is stale or a duplicate and goes no further; a skip is a lost message that
//! may have been any product's, so the session makes every book of the connection invalid at once
//! and resyncs each (or reconnects, when that is cheaper), each valid again at its own next
//! snapshot. A new connection starts a new counter.

use std::fmt::Write as _;
use std::time::Duration;

use plumb_book::Depth;
use plumb_book::rule::CoinbaseSeq;
use plumb_wire::coinbase::{self, Message};

use super::{Api, BookMessage, Exchange, Handler, Op, Reply, product_in, push_list};
use crate::error::{Error, Result};
use crate::pacing::Pacing;

/// Coinbase Advanced Trade's market-data endpoint.
pub const URL: &str = "wss://advanced-trade-ws.coinbase.com";

/// Products named in one subscribe request.
pub const MAX_PRODUCTS_PER_REQUEST: usize = 100;

/// Products on one connection.
pub const MAX_PRODUCTS_PER_CONNECTION: usize = 500;

/// Coinbase Advanced Trade, public market data: `level2` books of spot products (`BTC-USD`),
/// with `heartbeats`.
///
/// - Requests: one channel per message, `{"type":"subscribe","product_ids":[...],"channel":
///   "level2"}`. The first, sent on connecting (Coinbase drops a connection with no subscribe
///   within 5 s), subscribes `heartbeats`, which keeps quiet subscriptions open and gives a
///   message a second; books are subscribed once its `subscriptions` acknowledgement comes.
///   These channels need no authentication; a signed JWT, when one is wanted, is one more field
///   of the same message (the request writer takes it; no signer is built in).
/// - Books: a `snapshot` event (the whole book, one frame of up to tens of megabytes, so the frame
///   limit is raised for Coinbase alone to [`coinbase::MAX_FRAME_LEN`]) then `update` events,
///   levels absolute, `"0"` deletes, `offer` the ask side. No checksum: validity is the counter.
///   The book is the whole book (the depth only sizes the first allocation).
/// - A subscribe naming one bad product is refused whole (`{"type":"error","message":"Failed to
///   subscribe","reason":"BTC-XYZ is not a valid product"}`): the others are asked for again
///   without it, in one request, and the bad one is reported.
/// - Limits: at most 8 client messages a second (a resync is an unsubscribe and a subscribe:
///   resyncs are paced to a burst of 3, then one per 300 ms) and 8 new connections a second.
///   A silent connection (no heartbeat for 5 s) is replaced. At most 500 products per
///   connection (their subscribes are six messages).
/// - `-USDC` products are served as `-USD` on market data: adding one is refused with
///   [`Error::ServedAs`] naming the `-USD` product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Coinbase;

impl Exchange for Coinbase {
    const NAME: &'static str = "coinbase";
    type Dialect = coinbase::Coinbase;
    type Rule = CoinbaseSeq;
    const MAX_SYMBOLS_PER_REQUEST: usize = MAX_PRODUCTS_PER_REQUEST;
    // Coinbase handles a connection's messages in order: the subscribe that follows an
    // unsubscribe finds the product gone and answers with a fresh snapshot.
    const UNSUBSCRIBE_FIRST: bool = false;
    const REFUSES_WHOLE_REQUEST: bool = true;
    /// Whole-book snapshots are megabytes each: a hundred products keep one connection's start
    /// (and a resync of all its books after a counter skip) short.
    const SHARD_SIZE: usize = 100;

    /// Connections are limited to 8 per second per IP (the docs disagree; the lower figure), and
    /// unauthenticated messages to 8 per second per IP, all connections together: one
    /// connection per 400 ms (at most 3 in any second, whose first two messages, the
    /// `heartbeats` and one `level2` of up to 100 products, make 6).
    fn connect_pacing(&self) -> crate::Pacing {
        crate::Pacing { burst: 1, interval: Duration::from_millis(400), jitter: Duration::from_millis(20) }
    }
    // Five requests of 100 and the heartbeats subscribe: a connection's subscribes stay inside
    // Coinbase's 8 client messages a second.
    const MAX_SYMBOLS_PER_CONNECTION: Option<usize> = Some(MAX_PRODUCTS_PER_CONNECTION);

    fn config(&self) -> crate::Config {
        crate::Config {
            depth: Depth::new(1000).unwrap_or(Depth::D10),
            // Coinbase takes no ping message: the heartbeats (one a second) are the keepalive.
            ping_after: Duration::from_secs(2),
            stale_after: Duration::from_secs(5),
            pacing: Pacing { burst: 3, interval: Duration::from_millis(300), jitter: Duration::from_millis(30) },
            ..crate::Config::default()
        }
    }

    fn url(&self) -> String {
        URL.to_owned()
    }

    /// Coinbase serves `-USDC` products as `-USD` on its market-data channels (one book for both).
    fn check_symbol(&self, symbol: &str) -> Result<()> {
        match symbol.strip_suffix("-USDC") {
            Some(base) => Err(Error::ServedAs {
                exchange: Self::NAME,
                symbol: symbol.to_owned(),
                served_as: format!("{base}-USD"),
            }),
            None => Ok(()),
        }
    }

    /// Any depth: Coinbase always sends the whole book (the depth sizes the book's first
    /// allocation only).
    fn check_depth(&self, _depth: Depth) -> Result<()> {
        Ok(())
    }

    fn preamble(&self, _req: u64) -> Option<String> {
        let mut out = String::new();
        request(&mut out, "subscribe", "heartbeats", &[], None);
        Some(out)
    }

    fn subscribe(&self, out: &mut String, symbols: &[&str], _depth: Depth, _req: u64) {
        request(out, "subscribe", "level2", symbols, None);
    }

    fn unsubscribe(&self, out: &mut String, symbols: &[&str], _depth: Depth, _req: u64) {
        request(out, "unsubscribe", "level2", symbols, None);
    }

    /// Nothing: Coinbase has no ping message (its heartbeats show the connection is alive).
    fn ping(&self, _out: &mut String, _req: u64) {}

    #[inline]
    fn dispatch<H: Handler>(msg: &Message<'_>, h: &mut H) {
        if let Some(n) = msg.sequence()
            && !h.counter(n)
        {
            return;
        }
        match msg {
            Message::Book(book) => {
                for frame in book.frames() {
                    h.book(BookMessage { api: Api::Main, depth: None, frame });
                }
            }
            Message::Subscriptions { level2, .. } => {
                // The answer to the heartbeats subscribe (the preamble), or to a book request: it
                // lists every product the connection now holds.
                h.ready();
                if level2.iter().len() == 0 {
                    h.other(Api::Main);
                }
                for symbol in level2.iter() {
                    h.reply(Reply {
                        api: Api::Main,
                        op: Op::Subscribe,
                        success: true,
                        symbol: Some(symbol),
                        req_id: None,
                        message: None,
                        depth: None,
                    });
                }
            }
            Message::Error { message, reason } => {
                let symbol = reason.and_then(product_in).or_else(|| message.and_then(product_in));
                let text = reason.or(*message);
                h.reply(Reply {
                    api: Api::Main,
                    op: Op::Subscribe,
                    success: false,
                    symbol,
                    req_id: None,
                    message: text,
                    depth: None,
                });
            }
            Message::Heartbeat { .. } | Message::Other { .. } => h.other(Api::Main),
        }
    }
}

/// `{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}` (no `product_ids` for a
/// channel of the connection such as `heartbeats`), with `"jwt"` when one is given.
fn request(out: &mut String, kind: &str, channel: &str, products: &[&str], jwt: Option<&str>) {
    let _ = write!(out, r#"{{"type":"{kind}""#);
    if !products.is_empty() {
        out.push_str(r#","product_ids":["#);
        push_list(out, products.iter().copied(), "", "");
        out.push(']');
    }
    let _ = write!(out, r#","channel":"{channel}""#);
    if let Some(jwt) = jwt {
        let _ = write!(out, r#","jwt":"{jwt}""#);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_coinbase_json_one_channel_each() {
        let mut s = String::new();
        Coinbase.subscribe(&mut s, &["ETH-USD", "BTC-USD"], Depth::D10, 1);
        assert_eq!(s, r#"{"type":"subscribe","product_ids":["ETH-USD","BTC-USD"],"channel":"level2"}"#);
        s.clear();
        Coinbase.unsubscribe(&mut s, &["BTC-USD"], Depth::D10, 2);
        assert_eq!(s, r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}"#);
        assert_eq!(Coinbase.preamble(0).as_deref(), Some(r#"{"type":"subscribe","channel":"heartbeats"}"#));
        s.clear();
        request(&mut s, "subscribe", "level2", &["BTC-USD"], Some("a.b.c"));
        assert_eq!(s, r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2","jwt":"a.b.c"}"#);
        s.clear();
        Coinbase.ping(&mut s, 3);
        assert!(s.is_empty());
    }

    #[test]
    fn errors_name_their_product() {
        assert_eq!(product_in("BTC-XYZ is not a valid product"), Some("BTC-XYZ"));
        assert_eq!(product_in("Failed to subscribe"), None);
        assert_eq!(product_in("product_id ETH-USDC not found"), Some("ETH-USDC"));
        assert_eq!(product_in("a - b"), None);
    }
}
