//! OKX v5 public order books on `/ws/v5/public`: `books` proved by `prevSeqId` links, `books5` and
//! `bbo-tbt` whole on every push.

use std::fmt::Write as _;
use std::time::Duration;

use plumb_book::Depth;
use plumb_book::rule::OkxSeq;
use plumb_wire::num::parse_u64;
use plumb_wire::okx::{self, Channel, Message};

use super::{Api, BookMessage, Exchange, Handler, Op, Reply, push_list};
use crate::error::{Error, Result};
use crate::pacing::Pacing;

/// OKX's public endpoint.
pub const URL: &str = "wss://ws.okx.com:8443/ws/v5/public";

/// OKX's public REST host, for book snapshots (`GET /api/v5/market/books`).
pub const REST_URL: &str = "https://www.okx.com";

/// OKX's limit on depth channels per connection is "fewer than 30".
pub const MAX_CHANNELS: usize = 29;

/// OKX v5 public websocket, order books of any instrument type (spot `BTC-USDT`, swaps
/// `BTC-USDT-SWAP`, futures, options) on one connection.
///
/// The channel follows the depth: 400 is `books` (a snapshot, then updates linked by
/// `prevSeqId`), 5 is `books5` and 1 is `bbo-tbt` (a whole book on every push). OKX answers a
/// subscribe of a live channel with a fresh snapshot, so a resync is one subscribe. OKX allows 480
/// subscribe and unsubscribe requests per hour per connection: resyncs are paced to at most a
/// burst of 10, then one per 10 s (370 an hour at worst). Keepalive: the text `ping` after 5 s of
/// silence (OKX closes a connection after 30 s without traffic); a connection silent for 10 s is
/// replaced. A `notice` of a service upgrade reconnects at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Okx;

/// The depths OKX's public book channels offer, and their channels.
pub const DEPTHS: [(u16, Channel); 3] = [(1, Channel::BboTbt), (5, Channel::Books5), (400, Channel::Books)];

/// The channel that serves a depth.
#[must_use]
pub fn channel(depth: Depth) -> Channel {
    DEPTHS.iter().find(|(d, _)| usize::from(*d) == depth.get()).map_or(Channel::Books, |&(_, c)| c)
}

impl Exchange for Okx {
    const NAME: &'static str = "okx";
    type Dialect = okx::Okx;
    type Rule = OkxSeq;
    const MAX_SYMBOLS_PER_REQUEST: usize = MAX_CHANNELS;
    const UNSUBSCRIBE_FIRST: bool = false;
    const REFUSES_WHOLE_REQUEST: bool = false;
    const SHARD_SIZE: usize = MAX_CHANNELS;

    /// At most 3 connections per second per IP: one per 400 ms, no burst.
    fn connect_pacing(&self) -> crate::Pacing {
        crate::Pacing { burst: 1, interval: Duration::from_millis(400), jitter: Duration::from_millis(50) }
    }
    const RESUBSCRIBE_REFRESHES: bool = true;
    const MAX_SYMBOLS_PER_CONNECTION: Option<usize> = Some(MAX_CHANNELS);
    const FETCHES_SNAPSHOT: bool = true;

    fn config(&self) -> crate::Config {
        crate::Config {
            depth: Depth::new(400).unwrap_or(Depth::D10),
            ping_after: Duration::from_secs(5),
            stale_after: Duration::from_secs(10),
            pacing: Pacing { burst: 10, interval: Duration::from_secs(10), jitter: Duration::from_millis(250) },
            rest_url: Some(REST_URL.to_owned()),
            ..crate::Config::default()
        }
    }

    fn url(&self) -> String {
        URL.to_owned()
    }

    fn check_depth(&self, depth: Depth) -> Result<()> {
        if DEPTHS.iter().any(|&(d, _)| usize::from(d) == depth.get()) {
            Ok(())
        } else {
            Err(Error::InvalidDepth {
                exchange: Self::NAME,
                depth: depth.get(),
                offered: "1 (bbo-tbt), 5 (books5), 400 (books)",
            })
        }
    }

    fn subscribe(&self, out: &mut String, symbols: &[&str], depth: Depth, req: u64) {
        request(out, "subscribe", symbols, depth, req);
    }

    fn unsubscribe(&self, out: &mut String, symbols: &[&str], depth: Depth, req: u64) {
        request(out, "unsubscribe", symbols, depth, req);
    }

    fn ping(&self, out: &mut String, _req: u64) {
        out.push_str("ping");
    }

    /// `/api/v5/market/books?instId=BTC-USDT&sz=400` (`sz` the subscribed depth, at most 400).
    fn snapshot_path(&self, out: &mut String, symbol: &str, depth: Depth) {
        let _ = write!(out, "/api/v5/market/books?instId={symbol}&sz={}", depth.get().min(400));
    }

    fn fetched_symbol(url: &str) -> Option<&str> {
        super::query_param(url, "instId")
    }

    /// OKX allows 40 REST book requests per 2 s per IP: at most 10 at once, then one per 100 ms
    /// (half the limit, leaving room for the application's own requests).
    fn fetch_pacing(&self, _depth: Depth) -> Pacing {
        Pacing { burst: 10, interval: Duration::from_millis(100), jitter: Duration::from_millis(10) }
    }

    #[inline]
    fn dispatch<H: Handler>(msg: &Message<'_>, h: &mut H) {
        match msg {
            Message::Book(book) => {
                h.book(BookMessage { api: Api::Main, depth: Some(book.channel.depth()), frame: book.frame() });
            }
            Message::Reply(r) => {
                let req_id = r.id.and_then(|id| parse_u64(id.as_bytes()));
                let (op, success) = match r.event {
                    "subscribe" => (Op::Subscribe, true),
                    "unsubscribe" => (Op::Unsubscribe, true),
                    // OKX's errors do not say which request they answer but by its id; the
                    // session's requests are all subscribes or unsubscribes of books.
                    _ => (if req_id.is_some() { Op::Subscribe } else { Op::Other }, false),
                };
                let symbol = r.inst_id.or_else(|| r.message.and_then(inst_in_message));
                h.reply(Reply { api: Api::Main, op, success, symbol, req_id, message: r.message, depth: None });
            }
            Message::Notice { message, .. } => h.notice(message.unwrap_or("service upgrade")),
            Message::Pong | Message::Other { .. } => h.other(Api::Main),
        }
    }
}

/// `{"id":"7","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},...]}`.
fn request(out: &mut String, op: &str, symbols: &[&str], depth: Depth, req: u64) {
    let ch = channel(depth).as_str();
    let _ = write!(out, r#"{{"id":"{req}","op":"{op}","args":["#);
    for (k, s) in symbols.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"channel":"{ch}","instId":"#);
        push_list(out, [*s], "", "");
        out.push('}');
    }
    out.push_str("]}");
}

/// The instrument an OKX error message names: `instId:BTC-USDX` (or `instId : "BTC-USDX"`, as in
/// the echoed request of a 60012 error).
fn inst_in_message(text: &str) -> Option<&str> {
    let at = text.find("instId")?;
    let rest = text[at + "instId".len()..].trim_start_matches(['"', '\\', ':', ' ']);
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_instrument() {
        assert_eq!(inst_in_message("Wrong URL or channel:books,instId:BTC-USDX doesn't exist"), Some("BTC-USDX"));
        assert_eq!(
            inst_in_message(
                r#"Invalid request: {"op": "subscribe", "argss":[{ "channel" : "books", "instId" : "BTC-USD-191227"}]}"#
            ),
            Some("BTC-USD-191227")
        );
        assert_eq!(inst_in_message("Illegal request"), None);
        assert_eq!(inst_in_message("instId:"), None);
    }

    #[test]
    fn requests_are_okx_json() {
        let mut s = String::new();
        Okx.subscribe(&mut s, &["BTC-USDT", "ETH-USDT-SWAP"], Depth::new(400).unwrap(), 7);
        assert_eq!(
            s,
            r#"{"id":"7","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"books","instId":"ETH-USDT-SWAP"}]}"#
        );
        s.clear();
        Okx.unsubscribe(&mut s, &["BTC-USDT"], Depth::new(5).unwrap(), 8);
        assert_eq!(s, r#"{"id":"8","op":"unsubscribe","args":[{"channel":"books5","instId":"BTC-USDT"}]}"#);
        assert!(Okx.check_depth(Depth::new(50).unwrap()).is_err());
        assert_eq!(channel(Depth::new(1).unwrap()), Channel::BboTbt);
    }
}
