//! Binance spot and USD-M futures diff depth: books bridged from REST snapshots to the stream's
//! events by their update ids.
//!
//! Binance sends no snapshot on its stream. A book is subscribed (`<symbol>@depth@100ms`), its
//! events are buffered from then on, a REST depth snapshot is fetched as soon as the subscription
//! is acknowledged, and the rule bridges the buffer to the snapshot's `lastUpdateId`
//! ([`BinanceSeq`]). A gap makes that book alone invalid, and it is
//! bridged again from a new snapshot on the same subscription (nothing is sent to the stream).
//! Snapshot fetches are paced by their request weight under a budget per minute shared by every
//! book of the feed, and slowed down further by a 429 or 418.

use std::fmt::Write as _;
use std::time::Duration;

use plumb_book::Depth;
use plumb_book::rule::BinanceSeq;
use plumb_wire::binance::{self, Message};

use super::{Api, BookMessage, Exchange, Handler, Op, Reply};
use crate::error::{Error, Result};
use crate::pacing::Pacing;

/// Binance spot's market-data websocket (raw streams, subscribed by request).
pub const SPOT_URL: &str = "wss://stream.binance.com:9443/ws";
/// Binance spot's REST host.
pub const SPOT_REST_URL: &str = "https://api.binance.com";
/// Binance USD-M futures' public route (where depth streams live since the 2026 URL split).
pub const USDM_URL: &str = "wss://fstream.binance.com/public/ws";
/// Binance USD-M futures' REST host.
pub const USDM_REST_URL: &str = "https://fapi.binance.com";

/// Streams named in one `SUBSCRIBE` (Binance documents no limit; four of these fill a connection).
pub const MAX_STREAMS_PER_REQUEST: usize = 256;
/// Streams per connection (Binance's limit).
pub const MAX_STREAMS_PER_CONNECTION: usize = 1024;

/// Binance spot (`stream.binance.com`): `<symbol>@depth@100ms` diff events with `U`/`u`, bridged
/// to `GET /api/v3/depth` snapshots.
///
/// Limits kept: at most 5 client messages a second per connection (subscribes go in requests of
/// 256 streams, at most four per connection of 1024; the keepalive request goes after 10 s of
/// quiet only); snapshot fetches weigh 5, 25, 50 or 250 by their `limit` (the depth: 1-100,
/// 101-500, 501-1000, 1001-5000) under a budget of 2,400 a minute, 40% of Binance's 6,000 per IP,
/// a quarter of it at once at most (so never more than 3,000 in any minute). The server pings every 20 s; the websocket answers with the
/// same payload. A connection silent for 20 s (no event, no ping, no answer to the
/// `LIST_SUBSCRIPTIONS` sent after 10 s of quiet) is replaced; `serverShutdown` reconnects at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Binance;

/// Binance USD-M futures (`fstream.binance.com/public`): `<symbol>@depth@100ms` diff events with
/// `U`/`u`/`pu`, bridged to `GET /fapi/v1/depth` snapshots.
///
/// As [`Binance`], with USD-M's own numbers: depths 5, 10, 20, 50, 100, 500 or 1000, weighing 2,
/// 2, 2, 2, 5, 10 or 20 under a budget of 1,200 a minute (half of USD-M's 2,400), 10 client
/// messages a second, server pings every 3 minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BinanceUsdm;

/// The request weight of a spot snapshot of `limit` levels.
#[must_use]
pub fn spot_weight(limit: usize) -> u32 {
    match limit {
        0..=100 => 5,
        101..=500 => 25,
        501..=1000 => 50,
        _ => 250,
    }
}

/// The request weight of a USD-M snapshot of `limit` levels.
#[must_use]
pub fn usdm_weight(limit: usize) -> u32 {
    match limit {
        0..=50 => 2,
        51..=100 => 5,
        101..=500 => 10,
        _ => 20,
    }
}

/// Fetches of `weight` paced under `per_minute` weight a minute, a quarter of it at once at most.
fn weight_pacing(weight: u32, per_minute: u32) -> Pacing {
    let weight = weight.max(1);
    Pacing {
        burst: (per_minute / 4 / weight).max(1),
        interval: Duration::from_secs(60) * weight / per_minute.max(1),
        jitter: Duration::from_millis(50),
    }
}

fn config(depth: u16, rest: &str) -> crate::Config {
    crate::Config {
        depth: Depth::new(u32::from(depth)).unwrap_or(Depth::D10),
        ping_after: Duration::from_secs(10),
        stale_after: Duration::from_secs(20),
        pacing: Pacing { burst: 2, interval: Duration::from_secs(1), jitter: Duration::from_millis(100) },
        rest_url: Some(rest.to_owned()),
        ..crate::Config::default()
    }
}

/// `{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms",...],"id":7}`.
fn request(out: &mut String, method: &str, symbols: &[&str], req: u64) {
    let _ = write!(out, r#"{{"method":"{method}","params":["#);
    for (k, s) in symbols.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push('"');
        for c in s.chars() {
            out.push(c.to_ascii_lowercase());
        }
        out.push_str(r#"@depth@100ms""#);
    }
    let _ = write!(out, r#"],"id":{req}}}"#);
}

/// What a parsed Binance message means to the session (both markets read the same).
#[inline]
fn dispatch<H: Handler>(msg: &Message<'_>, h: &mut H) {
    match msg {
        Message::Book(book) => h.book(BookMessage { api: Api::Main, depth: None, frame: book.frame() }),
        // A `SUBSCRIBE` acknowledged (or another request answered: the session finds no book
        // asked for by it).
        Message::Reply { id } => h.reply(Reply {
            api: Api::Main,
            op: Op::Subscribe,
            success: true,
            symbol: None,
            req_id: *id,
            message: None,
            depth: None,
        }),
        Message::Error { message, id, .. } => h.reply(Reply {
            api: Api::Main,
            op: if id.is_some() { Op::Subscribe } else { Op::Other },
            success: false,
            symbol: None,
            req_id: *id,
            message: *message,
            depth: None,
        }),
        Message::Shutdown => h.notice("serverShutdown"),
        Message::Other { .. } => h.other(Api::Main),
    }
}

/// What spot and USD-M share of the [`Exchange`] implementation, written once.
macro_rules! shared {
    () => {
        type Dialect = binance::Binance;
        type Rule = BinanceSeq;
        const MAX_SYMBOLS_PER_REQUEST: usize = MAX_STREAMS_PER_REQUEST;
        const UNSUBSCRIBE_FIRST: bool = false;
        const REFUSES_WHOLE_REQUEST: bool = true;
        /// One subscribe request of 256 streams per connection (5 messages a second each).
        const SHARD_SIZE: usize = MAX_STREAMS_PER_REQUEST;

        /// 300 connection attempts per 5 minutes per IP: 10 at once, then one per 1.2 s (at most
        /// 260 in any 5 minutes).
        fn connect_pacing(&self) -> crate::Pacing {
            crate::Pacing { burst: 10, interval: Duration::from_millis(1200), jitter: Duration::from_millis(100) }
        }
        const MAX_SYMBOLS_PER_CONNECTION: Option<usize> = Some(MAX_STREAMS_PER_CONNECTION);
        const FETCHES_SNAPSHOT: bool = true;
        const STREAM_SNAPSHOT: bool = false;

        fn is_unknown_symbol(status: Option<u16>, message: &str) -> bool {
            status == Some(400) && message.contains("-1121")
        }

        /// Binance closes a connection at 24 h.
        fn max_connection_age(&self) -> Option<Duration> {
            Some(Duration::from_secs(24 * 3600))
        }

        fn fetched_symbol(url: &str) -> Option<&str> {
            super::query_param(url, "symbol")
        }

        fn subscribe(&self, out: &mut String, symbols: &[&str], _depth: Depth, req: u64) {
            request(out, "SUBSCRIBE", symbols, req);
        }

        fn unsubscribe(&self, out: &mut String, symbols: &[&str], _depth: Depth, req: u64) {
            request(out, "UNSUBSCRIBE", symbols, req);
        }

        /// `LIST_SUBSCRIPTIONS`, whose answer shows the connection is alive in a quiet market.
        fn ping(&self, out: &mut String, req: u64) {
            let _ = write!(out, r#"{{"method":"LIST_SUBSCRIPTIONS","id":{req}}}"#);
        }

        #[inline]
        fn dispatch<H: Handler>(msg: &Message<'_>, h: &mut H) {
            dispatch(msg, h);
        }
    };
}

impl Exchange for Binance {
    const NAME: &'static str = "binance";
    shared!();

    /// Depth 1000 (a snapshot of weight 50), ping after 10 s and stale after 20 s of silence.
    fn config(&self) -> crate::Config {
        config(1000, SPOT_REST_URL)
    }

    fn url(&self) -> String {
        SPOT_URL.to_owned()
    }

    fn check_depth(&self, depth: Depth) -> Result<()> {
        if depth.get() <= 5000 {
            Ok(())
        } else {
            Err(Error::InvalidDepth { exchange: Self::NAME, depth: depth.get(), offered: "1 to 5000" })
        }
    }

    /// `/api/v3/depth?symbol=BTCUSDT&limit=1000`.
    fn snapshot_path(&self, out: &mut String, symbol: &str, depth: Depth) {
        let _ = write!(out, "/api/v3/depth?symbol={symbol}&limit={}", depth.get().min(5000));
    }

    fn fetch_pacing(&self, depth: Depth) -> Pacing {
        weight_pacing(spot_weight(depth.get()), 2400)
    }
}

/// The depths USD-M's REST snapshot offers.
const USDM_DEPTHS: [usize; 7] = [5, 10, 20, 50, 100, 500, 1000];

impl Exchange for BinanceUsdm {
    const NAME: &'static str = "binance-usdm";
    shared!();

    /// Depth 1000 (a snapshot of weight 20), ping after 10 s and stale after 20 s of silence.
    fn config(&self) -> crate::Config {
        config(1000, USDM_REST_URL)
    }

    fn url(&self) -> String {
        USDM_URL.to_owned()
    }

    fn check_depth(&self, depth: Depth) -> Result<()> {
        if USDM_DEPTHS.contains(&depth.get()) {
            Ok(())
        } else {
            Err(Error::InvalidDepth {
                exchange: Self::NAME,
                depth: depth.get(),
                offered: "5, 10, 20, 50, 100, 500, 1000",
            })
        }
    }

    /// `/fapi/v1/depth?symbol=BTCUSDT&limit=1000`.
    fn snapshot_path(&self, out: &mut String, symbol: &str, depth: Depth) {
        let _ = write!(out, "/fapi/v1/depth?symbol={symbol}&limit={}", depth.get().min(1000));
    }

    fn fetch_pacing(&self, depth: Depth) -> Pacing {
        weight_pacing(usdm_weight(depth.get()), 1200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_lowercase_depth_streams() {
        let mut s = String::new();
        Binance.subscribe(&mut s, &["BTCUSDT", "ETHUSDT"], Depth::D10, 7);
        assert_eq!(s, r#"{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms","ethusdt@depth@100ms"],"id":7}"#);
        s.clear();
        BinanceUsdm.unsubscribe(&mut s, &["BTCUSDT"], Depth::D10, 8);
        assert_eq!(s, r#"{"method":"UNSUBSCRIBE","params":["btcusdt@depth@100ms"],"id":8}"#);
        s.clear();
        Binance.snapshot_path(&mut s, "BTCUSDT", Depth::new(1000).unwrap());
        assert_eq!(s, "/api/v3/depth?symbol=BTCUSDT&limit=1000");
        assert_eq!(Binance::fetched_symbol("http://h/api/v3/depth?symbol=BTCUSDT&limit=1000"), Some("BTCUSDT"));
        assert!(BinanceUsdm.check_depth(Depth::new(400).unwrap()).is_err());
        assert!(Binance.check_depth(Depth::new(5000).unwrap()).is_ok());
    }

    #[test]
    fn fetches_are_paced_by_weight() {
        // Spot depth 1000 weighs 50: 12 at once, then one per 1.25 s (2,400 a minute).
        let p = Binance.fetch_pacing(Depth::new(1000).unwrap());
        assert_eq!((p.burst, p.interval), (12, Duration::from_millis(1250)));
        // Depth 5000 weighs 250: 2 at once, then one per 6.25 s.
        let p = Binance.fetch_pacing(Depth::new(5000).unwrap());
        assert_eq!((p.burst, p.interval), (2, Duration::from_millis(6250)));
        // USD-M depth 1000 weighs 20 of 1,200 a minute: 15 at once, one per second.
        let p = BinanceUsdm.fetch_pacing(Depth::new(1000).unwrap());
        assert_eq!((p.burst, p.interval), (15, Duration::from_secs(1)));
        assert!(Binance::is_unknown_symbol(Some(400), r#"Bad Request: {"code":-1121,"msg":"Invalid symbol."}"#));
        assert!(!BinanceUsdm::is_unknown_symbol(Some(503), "Service Unavailable"));
    }
}
