//! What the session asks of its driver ([`Command`]) and tells the application ([`Event`]).

use std::sync::Arc;
use std::time::Duration;

use plumb_book::Invalid;
use plumb_book::kraken::Outcome;
use plumb_book::publish::Status;
use plumb_wire::Kind;

use crate::error::{Error, Symbol};

/// What the session asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send this text frame.
    Send(String),
    /// Drop the connection and connect again (after the driver's backoff).
    Reconnect(Disconnect),
    /// Fetch a book snapshot over HTTP and hand the answer to
    /// [`Session::handle_fetched`](crate::Session::handle_fetched) with the same `id`.
    Fetch(Fetch),
    /// Make a new connection while this one goes on, bring its books up on a session of their
    /// own, and hand every book over to it once all are valid (the exchange closes connections
    /// at a fixed age, or announced that it will close this one): books stay valid across the
    /// change. A driver that cannot do that may treat it as [`Command::Reconnect`].
    Rollover,
}

/// An HTTP GET of a book snapshot the session asks its driver for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// Names the answer: pass it back with the result.
    pub id: u64,
    /// The symbol whose book it is.
    pub symbol: Symbol,
    /// The full URL (`https://www.okx.com/api/v5/market/books?instId=BTC-USDT&sz=400`).
    pub url: String,
    /// Give up (and answer [`Fetched::Failed`]) after this long.
    pub timeout: Duration,
}

/// The answer to a [`Fetch`], as the driver hands it to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched<'a> {
    /// A successful (2xx) answer's body, exactly as received.
    Body(&'a [u8]),
    /// No usable answer: an HTTP error status, a timeout, a transport failure, a body over the
    /// size limit.
    Failed {
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// The server's `Retry-After`, when it sent one (HTTP 429 and 418).
        retry_after: Option<Duration>,
        /// What went wrong, for the error event.
        message: &'a str,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// Nothing arrived for [`Config::stale_after`](crate::Config::stale_after).
    Silent,
    /// The exchange's preamble (Kraken's instrument list) did not arrive in time.
    Timeout,
    /// The server closed the connection (close frame or end of stream).
    ServerClosed,
    /// The transport failed.
    Transport(Arc<str>),
    /// The application asked for a reconnect.
    Requested,
    /// The exchange announced that it will close the connection for maintenance (OKX's
    /// `notice`); the feed reconnects at once rather than wait to be cut off.
    Maintenance,
    /// The connection's counter skipped (Coinbase numbers every message of a connection): a
    /// message was lost, it may have been any book's, and resubscribing every book of the
    /// connection would take longer within the exchange's message rate than a new connection.
    SequenceGap,
    /// The feed is shutting down.
    Shutdown,
}

impl Disconnect {
    /// A short snake-case name, as `plumb watch --json` prints it.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Silent => "silent",
            Self::Timeout => "timeout",
            Self::ServerClosed => "server_closed",
            Self::Transport(_) => "transport_error",
            Self::Requested => "requested",
            Self::Maintenance => "maintenance",
            Self::SequenceGap => "sequence_gap",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Why a book is being resynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResyncReason {
    /// The exchange's checksum differs from the book's.
    ChecksumMismatch {
        /// The exchange's.
        expected: u32,
        /// The book's.
        computed: u32,
    },
    /// Update ids were skipped: messages were lost.
    SequenceGap {
        /// The id that was due.
        expected: u64,
        /// The id that arrived.
        got: u64,
    },
    /// The book crossed (best bid at or above best ask).
    Crossed,
    /// A level could not be applied.
    Rejected(plumb_book::Error),
    /// The instrument's precision changed.
    PrecisionChanged,
    /// A side held more levels than the subscribed depth, on an exchange that deletes them itself.
    TooManyLevels,
    /// The snapshot did not come in time.
    SnapshotTimeout,
    /// The exchange refused a subscription request for its message rate: asked again later,
    /// slower.
    RateLimited,
}

/// Every reason's name, in a fixed order (the metrics' label values).
pub(crate) const REASONS: [&str; 8] = [
    "checksum_mismatch",
    "sequence_gap",
    "crossed",
    "rejected_level",
    "precision_changed",
    "too_many_levels",
    "snapshot_timeout",
    "rate_limited",
];

impl ResyncReason {
    /// A short snake-case name, as `plumb watch --json` prints it.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        REASONS[self.index()]
    }

    pub(crate) fn index(&self) -> usize {
        match self {
            Self::ChecksumMismatch { .. } => 0,
            Self::SequenceGap { .. } => 1,
            Self::Crossed => 2,
            Self::Rejected(_) => 3,
            Self::PrecisionChanged => 4,
            Self::TooManyLevels => 5,
            Self::SnapshotTimeout => 6,
            Self::RateLimited => 7,
        }
    }

    /// The reason a book in this state is resynced. Exhaustive on purpose: a new way for a book
    /// to be invalid must be given a reason here.
    #[must_use]
    pub fn of(invalid: Invalid) -> Self {
        match invalid {
            Invalid::ChecksumMismatch { expected, computed } => Self::ChecksumMismatch { expected, computed },
            Invalid::SequenceGap { expected, got } => Self::SequenceGap { expected, got },
            Invalid::Crossed => Self::Crossed,
            Invalid::Rejected(e) => Self::Rejected(e),
            Invalid::PrecisionChanged => Self::PrecisionChanged,
            Invalid::TooManyLevels => Self::TooManyLevels,
        }
    }
}

/// One applied book message of one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookUpdate {
    /// The symbol.
    pub symbol: Symbol,
    /// Snapshot or update.
    pub kind: Kind,
    /// Bid levels the message carried.
    pub bids: u16,
    /// Ask levels the message carried.
    pub asks: u16,
    /// What the exchange's rule said of it.
    pub outcome: Outcome,
    /// The status published with it.
    pub status: Status,
    /// The book's last applied sequence id, on exchanges that number their messages.
    pub sequence: Option<u64>,
    /// The exchange's timestamp, in Unix nanoseconds (0 when absent).
    pub exchange_time_ns: u64,
    /// When the frame was received, on the driver's clock.
    pub received_ns: u64,
}

/// What the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Connected; subscriptions are on their way.
    Connected,
    /// A planned rollover is done: every book was brought up on a new connection and handed over
    /// while valid, and the old connection is closed (no book was stale meanwhile).
    RolledOver,
    /// The connection ended; every book is stale until it is back.
    Disconnected {
        /// Why.
        reason: Disconnect,
    },
    /// A book message was applied (or, while resyncing, received and not applied).
    Book(BookUpdate),
    /// A symbol's book is known wrong and is being resynced.
    ResyncStarted {
        /// The symbol.
        symbol: Symbol,
        /// Why.
        reason: ResyncReason,
    },
    /// A book was wrong again right after its fresh snapshot, several times in a row: its next
    /// resync waits (doubling up to five minutes) instead of looping; it stays not valid
    /// meanwhile, and every other symbol goes on. The evidence is in the log.
    ResyncBackoff {
        /// The symbol.
        symbol: Symbol,
        /// Why it was wrong this time.
        reason: ResyncReason,
        /// Resyncs in a row that failed right after their snapshot.
        failures: u32,
        /// When the next resync goes out.
        retry_in: Duration,
    },
    /// A resynced book is valid again.
    ResyncFinished {
        /// The symbol.
        symbol: Symbol,
        /// Since the resync started (on the caller's clock).
        took: Duration,
    },
    /// A symbol's book messages stopped for far longer than usual while the other symbols of
    /// its connection kept flowing (said once, until they come back). Its book is still what the
    /// last message proved; a strategy may want to look (`Header::is_valid_within`).
    QuietSymbol {
        /// The symbol.
        symbol: Symbol,
        /// Since its last book message.
        quiet_for: Duration,
        /// Its usual gap between two book messages.
        usual_gap: Duration,
    },
    /// Nothing arrived for this long: every book is stale, and a reconnect follows.
    Stale {
        /// How long the feed was silent.
        silent_for: Duration,
    },
    /// Something went wrong that the feed handles on its own; see [`Error`].
    Error(Error),
    /// Error events of bad input (malformed or binary frames, bad levels) held back since the
    /// last one that went out: at most ten go out per second. Every one is counted in
    /// [`Counts::errors`](crate::Counts::errors) all the same.
    ErrorsSuppressed {
        /// How many were held back.
        count: u64,
    },
    /// The application's event queue was full and this many events were dropped. Books and
    /// readers are unaffected: only events are lost.
    Lagged {
        /// Events dropped since the last one delivered.
        dropped: u64,
    },
}
