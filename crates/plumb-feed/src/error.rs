//! The one error type of `plumb-feed`.

use std::sync::Arc;

/// A symbol as the exchange spells it, shared cheaply between the session, its events and the
/// embedding application.
pub type Symbol = Arc<str>;

/// What went wrong. Most of these reach the application as [`Event::Error`](crate::Event::Error)
/// rather than as a failed call: the feed keeps going and heals what it can.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A frame that could not be parsed. The books are untouched; if the frame was a book update,
    /// the next checksum or sequence id of that symbol catches the loss and the book resyncs.
    #[error("malformed frame: {0}")]
    Frame(plumb_wire::Error),
    /// A binary websocket frame: the exchanges plumb speaks send text, so it is not read (a
    /// binary frame is never taken for a book message).
    #[error("a binary frame of {0} bytes was ignored (the exchange sends text)")]
    BinaryFrame(usize),
    /// Book messages for a symbol the feed does not hold (said once per symbol); they are
    /// counted as ignored.
    #[error("book messages for {0}, which this feed did not subscribe, are ignored")]
    UnexpectedSymbol(Symbol),
    /// A level of a symbol's book message could not be applied; the book resyncs.
    #[error("{symbol}: level not applied: {error}")]
    Level {
        /// The symbol.
        symbol: Symbol,
        /// Why.
        error: plumb_book::Error,
    },
    /// The exchange refused a subscription. The symbol is not retried on this connection.
    #[error("subscription to {symbol} refused by the exchange: {message}")]
    SubscriptionRejected {
        /// The symbol.
        symbol: Symbol,
        /// The exchange's own message.
        message: Arc<str>,
    },
    /// A book snapshot fetched over HTTP could not be used (an HTTP error, a timeout, a body that
    /// does not parse, a snapshot older than the buffered updates, a buffer that overflowed). The
    /// book stays resyncing and the fetch is tried again, backing off.
    #[error("{symbol}: snapshot fetch failed: {message}")]
    Fetch {
        /// The symbol.
        symbol: Symbol,
        /// What went wrong.
        message: Arc<str>,
    },
    /// The exchange answered a request with an error that names no symbol of ours.
    #[error("the exchange says: {0}")]
    Exchange(Arc<str>),
    /// Connecting failed (DNS, TCP, TLS or the websocket handshake).
    #[error("connect failed: {0}")]
    Connect(Arc<str>),
    /// A frame (or message) larger than the feed's limit
    /// ([`FeedBuilder::max_frame_size`](crate::FeedBuilder::max_frame_size); by default the
    /// exchange's: 16 MiB, Coinbase 64 MiB) arrived: it is not read, and the connection is
    /// dropped and made again.
    #[error("a frame over the {limit}-byte limit was refused ({detail}); reconnecting")]
    FrameTooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The websocket library's account (the size, when it knows it).
        detail: Arc<str>,
    },
    /// The websocket failed while connected.
    #[error("websocket error: {0}")]
    Transport(Arc<str>),
    /// A symbol that is already in the feed.
    #[error("symbol {0} is already in the feed")]
    DuplicateSymbol(Symbol),
    /// A symbol that is empty or has characters the exchange never uses.
    #[error("symbol {0:?} is not a valid symbol")]
    InvalidSymbol(String),
    /// The exchange serves this symbol's book under another name on its market-data channels
    /// (Coinbase serves `BTC-USDC` as `BTC-USD`): its messages would never name it, so it would
    /// wait for a snapshot forever. Subscribe the name it is served as.
    #[error("{exchange} serves the book of {symbol} as {served_as} on its market data: subscribe {served_as}")]
    ServedAs {
        /// The exchange.
        exchange: &'static str,
        /// The symbol asked for.
        symbol: String,
        /// The name its book is served as.
        served_as: String,
    },
    /// A depth the exchange does not offer.
    #[error("{exchange} offers depths {offered}, not {depth}")]
    InvalidDepth {
        /// The exchange.
        exchange: &'static str,
        /// The depth asked for.
        depth: usize,
        /// The depths it offers.
        offered: &'static str,
    },
    /// Adding the symbol would pass the exchange's limit on the subscriptions of one connection.
    #[error("{symbol}: the exchange allows at most {limit} {unit} per connection")]
    TooManySymbols {
        /// The symbol that did not fit.
        symbol: String,
        /// The limit.
        limit: usize,
        /// What the limit counts (`books`, or `characters of topics`).
        unit: &'static str,
    },
    /// The endpoint is not a `ws://` or `wss://` URL.
    #[error("invalid endpoint URL {0:?}")]
    InvalidUrl(String),
    /// The feed has shut down.
    #[error("the feed is closed")]
    Closed,
}

/// The result type of `plumb-feed`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
