//! The exchange seam: what differs per exchange, as small, mostly data-like modules.
//!
//! The session's state machine, pacing, watchdog, publication, events, stats and metrics are
//! written once, generic over an [`Exchange`]. An exchange module says only what is its own: its
//! wire [`Dialect`] and validity [`Rule`], the text of its requests, its keepalive and limits, and
//! how its parsed messages map onto the session's neutral inputs ([`Exchange::dispatch`] calls a
//! [`Handler`]). Everything is chosen at compile time: a session for Bybit is a different type from
//! a session for Kraken, with no `dyn` and no allocation per message.
//!
//! See ARCHITECTURE.md, "Adding an exchange", for the files to write and the tests every exchange
//! must have.

use std::time::Duration;

use plumb_book::{Depth, Precision, Rule};
use plumb_wire::{Dialect, Frame};

use crate::pacing::Pacing;

pub mod binance;
pub mod bybit;
pub mod coinbase;
pub mod kraken;
pub mod okx;

pub use binance::{Binance, BinanceUsdm};
pub use bybit::{Bybit, Market};
pub use coinbase::Coinbase;
pub use kraken::Kraken;
pub use okx::Okx;

/// How the session talks to one exchange. Sealed: implementations live in this crate.
pub trait Exchange: sealed::Sealed + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// A short lowercase name (`kraken`, `bybit`), for logs, metrics and JSON.
    const NAME: &'static str;
    /// The wire dialect the session parses frames with.
    type Dialect: Dialect;
    /// The rule that applies and proves this exchange's books.
    type Rule: Rule;
    /// The most symbols one subscribe or unsubscribe request may name.
    const MAX_SYMBOLS_PER_REQUEST: usize;
    /// Whether a resync must wait for the unsubscribe's acknowledgement before subscribing again
    /// (exchanges that refuse a second subscribe of a live topic).
    const UNSUBSCRIBE_FIRST: bool;
    /// Whether the exchange refuses a whole request when one of its symbols is bad (the others
    /// are then asked for again without it).
    const REFUSES_WHOLE_REQUEST: bool;
    /// Whether a subscribe of a live book is answered with a fresh snapshot (OKX), so that a
    /// resync is one subscribe and no unsubscribe.
    const RESUBSCRIBE_REFRESHES: bool = false;
    /// The most books one connection may carry, if the exchange limits it (OKX: fewer than 30
    /// depth channels).
    const MAX_SYMBOLS_PER_CONNECTION: Option<usize> = None;
    /// How many books one connection carries when symbols are spread over several connections
    /// ([`FeedBuilder::split`](crate::FeedBuilder::split), the facade's manager) and the
    /// application did not say ([`Config::max_books`](crate::Config::max_books)); never more than
    /// [`Exchange::MAX_SYMBOLS_PER_CONNECTION`].
    const SHARD_SIZE: usize;

    /// Whether a book whose subscription the exchange acknowledged, but whose snapshot did not
    /// come within [`Config::snapshot_timeout`](crate::Config::snapshot_timeout), is bootstrapped
    /// from a REST snapshot ([`Exchange::snapshot_path`] under
    /// [`Config::rest_url`](crate::Config::rest_url)) bridged to the buffered updates by the
    /// exchange's rule (OKX).
    const FETCHES_SNAPSHOT: bool = false;

    /// Whether the stream sends a book's snapshot itself (every exchange but Binance). When not,
    /// a book is always a REST snapshot bridged to the events buffered from its subscription:
    /// the fetch goes out as soon as the subscription is acknowledged (not after a snapshot
    /// timeout) without waiting for a first event, and a resync is a new fetch and bridge on the
    /// same subscription, with no request to the stream.
    const STREAM_SNAPSHOT: bool = true;

    /// The age at which the exchange closes a connection (Binance: 24 h), if it does: the session
    /// asks for a planned rollover ([`Command::Rollover`](crate::Command::Rollover)) a while before
    /// it, and also when the exchange announces that it will close the connection.
    fn max_connection_age(&self) -> Option<Duration> {
        None
    }

    /// Whether a failed snapshot fetch says that the symbol does not exist (Binance's HTTP 400
    /// with code -1121): the symbol is then refused, as a refused subscription is, rather than
    /// fetched again forever.
    fn is_unknown_symbol(status: Option<u16>, message: &str) -> bool {
        let _ = (status, message);
        false
    }

    /// Whether an error message of the exchange refuses a request for its message rate (Kraken's
    /// `Exceeded msg rate`, "too many requests", "too frequent"): the session then slows its
    /// pacing down and asks again later, rather than retry at the same rate or give the symbol
    /// up.
    fn is_rate_limit(message: &str) -> bool {
        let m = message.to_ascii_lowercase();
        (m.contains("rate") && (m.contains("exceed") || m.contains("limit")))
            || m.contains("too many requests")
            || m.contains("too frequent")
    }

    /// The settings that fit this exchange's heartbeats and limits.
    fn config(&self) -> crate::Config;

    /// How fast new connections to the exchange may be opened from one IP, every connection to it
    /// together ([`Budget`](crate::Budget)): inside the exchange's documented limit
    /// with room to spare.
    fn connect_pacing(&self) -> crate::Pacing;

    /// The exchange's public websocket endpoint.
    fn url(&self) -> String;

    /// Whether the exchange offers this depth.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDepth`](crate::Error::InvalidDepth) naming the depths it offers.
    fn check_depth(&self, depth: Depth) -> crate::Result<()>;

    /// Whether the exchange serves this symbol's book under its own name (checked when a symbol is
    /// added, after the characters every exchange accepts).
    ///
    /// # Errors
    ///
    /// [`Error::ServedAs`](crate::Error::ServedAs) naming the symbol to subscribe instead.
    fn check_symbol(&self, symbol: &str) -> crate::Result<()> {
        let _ = symbol;
        Ok(())
    }

    /// The most characters the topics of one connection may add up to, if the exchange limits it.
    fn topic_budget(&self) -> Option<usize> {
        None
    }

    /// The length a symbol's subscription adds to the connection's topics.
    fn topic_len(&self, symbol: &str, depth: Depth) -> usize {
        let _ = depth;
        symbol.len()
    }

    /// A ping sent every this often whatever the traffic (Bybit asks for one every 20 s).
    fn ping_every(&self) -> Option<Duration> {
        None
    }

    /// What to send first on a new connection, before any book (Kraken: the instrument list,
    /// whose precisions its checksums need). When `Some`, books are subscribed once the
    /// exchange's answer makes the dispatcher call [`Handler::ready`].
    fn preamble(&self, req: u64) -> Option<String> {
        let _ = req;
        None
    }

    /// Writes the path and query of a symbol's REST book snapshot into `out` (appended to
    /// [`Config::rest_url`](crate::Config::rest_url)), for exchanges that fetch snapshots.
    fn snapshot_path(&self, out: &mut String, symbol: &str, depth: Depth) {
        let _ = (out, symbol, depth);
    }

    /// The symbol a REST snapshot URL asks for (how a capture's `GET` lines are read back).
    fn fetched_symbol(url: &str) -> Option<&str> {
        let _ = url;
        None
    }

    /// How snapshot fetches of books at `depth` are paced, over every book of the session (Binance
    /// weighs a fetch by the depth it asks for).
    fn fetch_pacing(&self, depth: Depth) -> Pacing {
        let _ = depth;
        Pacing { burst: 5, interval: Duration::from_millis(200), jitter: Duration::from_millis(20) }
    }

    /// Writes a subscribe request for these symbols' books into `out`.
    fn subscribe(&self, out: &mut String, symbols: &[&str], depth: Depth, req: u64);

    /// Writes an unsubscribe request for these symbols' books into `out`.
    fn unsubscribe(&self, out: &mut String, symbols: &[&str], depth: Depth, req: u64);

    /// Writes a ping into `out`.
    fn ping(&self, out: &mut String, req: u64);

    /// Tells the handler what one parsed message means.
    fn dispatch<H: Handler>(msg: &<Self::Dialect as Dialect>::Message<'_>, h: &mut H);
}

/// Which API of an exchange a message came from, for exchanges with more than one (Kraken v1 and
/// v2). The live session reads only [`Api::Main`] books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// The API the live session speaks.
    Main,
    /// An older API that captures may hold (Kraken v1).
    Legacy,
}

/// One book message, as the dispatcher hands it to the session or the replay.
#[derive(Debug, Clone)]
pub struct BookMessage<'a> {
    /// Which API it came from.
    pub api: Api,
    /// The depth the message states, when it states one (Kraken v1 channel names, Bybit topics).
    pub depth: Option<u16>,
    /// The neutral frame.
    pub frame: Frame<'a>,
}

/// What a reply is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A subscribe request.
    Subscribe,
    /// An unsubscribe request.
    Unsubscribe,
    /// Anything else.
    Other,
}

/// A reply to one of the session's requests, about one symbol or about a whole request.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// Which API it came from.
    pub api: Api,
    /// What the request was.
    pub op: Op,
    /// Whether it succeeded.
    pub success: bool,
    /// The symbol the reply names, when it names one (read from the exchange's message where the
    /// exchange gives no field for it).
    pub symbol: Option<&'a str>,
    /// The request id echoed back.
    pub req_id: Option<u64>,
    /// The exchange's own message.
    pub message: Option<&'a str>,
    /// The depth the reply states, when it states one.
    pub depth: Option<u16>,
}

/// The neutral inputs a dispatcher produces from one parsed message. Implemented by the session
/// and by `plumb::replay`.
pub trait Handler {
    /// A book message of one symbol.
    fn book(&mut self, msg: BookMessage<'_>);
    /// An instrument's precision (Kraken's instrument channel).
    fn precision(&mut self, symbol: &str, precision: Precision);
    /// The preamble's answer is complete: books may be subscribed.
    fn ready(&mut self);
    /// A reply to a request (not a book message: count it with the others).
    fn reply(&mut self, reply: Reply<'_>);
    /// The number the exchange gives this message on its connection, on exchanges that number
    /// every message of a connection with one counter (Coinbase's `sequence_num`), before the
    /// message's other calls. `false` when the message is stale or a duplicate (numbered at or
    /// below the last one): the dispatcher then makes no other call for it. A skip is the
    /// handler's to act on: the lost message may have been any book's.
    fn counter(&mut self, n: u64) -> bool {
        let _ = n;
        true
    }
    /// A message that is not a book message (heartbeat, pong, status, another channel), from the
    /// given API.
    fn other(&mut self, api: Api);
    /// The exchange announced that it will soon close the connection (OKX's `notice` before a
    /// service upgrade). Not a book message.
    fn notice(&mut self, message: &str) {
        let _ = message;
        self.other(Api::Main);
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Kraken {}
    impl Sealed for super::Bybit {}
    impl Sealed for super::Okx {}
    impl Sealed for super::Coinbase {}
    impl Sealed for super::Binance {}
    impl Sealed for super::BinanceUsdm {}
}

/// The value of `key` in a URL's query (`instId` in `...?instId=BTC-USDT&sz=400`).
pub(crate) fn query_param<'u>(url: &'u str, key: &str) -> Option<&'u str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// The first word of `text` shaped like a product or instrument name (`BTC-XYZ` in
/// `"BTC-XYZ is not a valid product"`): letters and digits joined by dashes, with at least one
/// dash.
pub(crate) fn product_in(text: &str) -> Option<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).find(|w| {
        w.contains('-') && !w.starts_with('-') && !w.ends_with('-') && w.bytes().any(|b| b.is_ascii_uppercase())
    })
}

/// Appends `"a","b"` (symbols are checked by `check_symbol`, so they need no escaping).
pub(crate) fn push_list<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>, prefix: &str, suffix: &str) {
    for (k, s) in items.into_iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(prefix);
        out.push_str(s);
        out.push_str(suffix);
        out.push('"');
    }
}
