//! One symbol's book, its publisher and its phase.

use std::time::Instant;

use plumb_book::Book;
use plumb_book::publish::{Publisher, Status};

use super::event::{BookUpdate, ResyncReason};
use crate::error::Symbol;

/// Where a symbol stands on the current connection. Which messages each phase takes is decided in
/// one place, [`Phase::takes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not subscribed on this connection (yet).
    Idle,
    /// Subscribe sent at `sent` (request `req`); waiting for the snapshot.
    Subscribing { sent: Instant, req: u64 },
    /// Receiving updates.
    Live,
    /// Known wrong; waiting for a pacing token (and, after repeated failures right after
    /// snapshots, for `not_before`).
    Queued { reason: ResyncReason, started: Instant, not_before: Option<Instant> },
    /// Unsubscribe sent at `sent` (request `req`); the subscribe waits for its acknowledgement
    /// (exchanges that refuse a second subscribe of a live topic).
    Unsubscribing { reason: ResyncReason, started: Instant, sent: Instant, req: u64 },
    /// Subscribe sent at `sent` (request `req`) to resync; waiting for the snapshot.
    Resyncing { reason: ResyncReason, started: Instant, sent: Instant, req: u64 },
    /// No snapshot came after the subscription was acknowledged: a REST snapshot is fetched at
    /// `at` (after a backoff, or when the fetch pacing allows); updates are buffered meanwhile.
    FetchWait { reason: ResyncReason, started: Instant, at: Instant },
    /// A REST snapshot fetch (`id`) sent at `sent` is in flight; updates are buffered.
    Fetching { reason: ResyncReason, started: Instant, sent: Instant, id: u64 },
    /// The exchange refused the subscription.
    Rejected,
}

impl Phase {
    /// Whether a book message of this kind is applied in this phase: everything while live, only
    /// a snapshot while one is awaited, nothing otherwise.
    #[inline]
    pub(crate) fn takes(self, kind: plumb_wire::Kind) -> bool {
        match self {
            Self::Live => true,
            Self::Subscribing { .. } | Self::Resyncing { .. } | Self::FetchWait { .. } | Self::Fetching { .. } => {
                kind == plumb_wire::Kind::Snapshot
            }
            Self::Idle | Self::Queued { .. } | Self::Unsubscribing { .. } | Self::Rejected => false,
        }
    }

    /// When a snapshot (or an acknowledgement) awaited in this phase is overdue.
    pub(crate) fn waiting_since(self) -> Option<Instant> {
        match self {
            Self::Subscribing { sent, .. } | Self::Resyncing { sent, .. } | Self::Unsubscribing { sent, .. } => {
                Some(sent)
            }
            _ => None,
        }
    }

    /// Whether the book is bootstrapping by REST (updates are buffered for the bridge).
    pub(crate) fn is_fetching(self) -> bool {
        matches!(self, Self::FetchWait { .. } | Self::Fetching { .. })
    }

    /// The request in flight for this symbol, if any.
    pub(crate) fn request(self) -> Option<u64> {
        match self {
            Self::Subscribing { req, .. } | Self::Resyncing { req, .. } | Self::Unsubscribing { req, .. } => Some(req),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) symbol: Symbol,
    pub(crate) book: Book,
    pub(crate) publisher: Publisher,
    pub(crate) phase: Phase,
    pub(crate) exchange_ns: u64,
    pub(crate) received_ns: u64,
    /// Resubscriptions refused in a row (reset when the book is live again).
    pub(crate) refusals: u8,
    /// The exchange acknowledged the subscription in flight (reset when one is sent).
    pub(crate) acked: bool,
    /// Snapshot fetches that failed in a row (reset when the book is live again).
    pub(crate) fetch_failures: u32,
    /// The book's first start by REST (an exchange with no snapshot on its stream starts every
    /// book that way), refetches included, until a resync is announced: not a resync, and the
    /// snapshot that ends it is not announced as the end of one.
    pub(crate) bootstrap: bool,
    /// Messages proved since the last snapshot (the snapshot included).
    pub(crate) proved_since_snapshot: u32,
    /// Resyncs in a row whose book failed right after its snapshot (reset once a book has been
    /// proved for a while): past a few, resyncs back off.
    pub(crate) fresh_failures: u32,
    /// The symbol's pace: when its last book message came, the usual gap between two (a moving
    /// average, in nanoseconds), how many gaps that average has seen, and whether its silence
    /// was reported.
    pub(crate) pace: Pace,
    /// Updates received while a REST snapshot is awaited, for the bridge.
    pub(crate) pending: Pending,
}

/// How often a symbol's book messages come, to tell a symbol gone quiet on a busy connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pace {
    pub(crate) last: Option<Instant>,
    pub(crate) mean_gap_ns: u64,
    pub(crate) samples: u32,
    pub(crate) reported: bool,
}

impl Pace {
    /// A book message at `now`: a moving average of the gap (weight 1/8), no float.
    #[inline]
    pub(crate) fn tick(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = u64::try_from(now.saturating_duration_since(last).as_nanos()).unwrap_or(u64::MAX);
            self.mean_gap_ns = if self.samples == 0 {
                gap
            } else {
                let m = self.mean_gap_ns;
                if gap >= m { m.saturating_add((gap - m) / 8) } else { m - (m - gap) / 8 }
            };
            self.samples = self.samples.saturating_add(1);
        }
        self.last = Some(now);
        self.reported = false;
    }
}

/// The updates buffered for a REST bridge: the frames' bytes back to back, and where each one
/// is. Bounded by the session's caps; grown once to them on first use and reused after, so that
/// buffering allocates nothing per message.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    bytes: Vec<u8>,
    frames: Vec<PendingFrame>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingFrame {
    start: usize,
    end: usize,
    pub(crate) sequence: Option<plumb_wire::Sequence>,
    pub(crate) received_ns: u64,
}

impl Pending {
    /// Appends a frame. `false` (and nothing kept) when it would pass `max_frames` or
    /// `max_bytes`: the caller restarts the bridge rather than grow.
    pub(crate) fn push(
        &mut self,
        frame: &[u8],
        sequence: Option<plumb_wire::Sequence>,
        received_ns: u64,
        max_frames: usize,
        max_bytes: usize,
    ) -> bool {
        if self.frames.len() >= max_frames || self.bytes.len() + frame.len() > max_bytes {
            return false;
        }
        if self.frames.capacity() == 0 {
            self.frames.reserve_exact(max_frames);
            self.bytes.reserve_exact(max_bytes);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.frames.push(PendingFrame { start, end: self.bytes.len(), sequence, received_ns });
        true
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The buffered frames' sequences, in arrival order.
    pub(crate) fn sequences(
        &self,
    ) -> impl DoubleEndedIterator<Item = Option<plumb_wire::Sequence>> + ExactSizeIterator + Clone + '_ {
        self.frames.iter().map(|f| f.sequence)
    }

    /// The `k`th frame's bytes and receive time.
    pub(crate) fn get(&self, k: usize) -> Option<(&[u8], u64)> {
        let f = self.frames.get(k)?;
        Some((self.bytes.get(f.start..f.end)?, f.received_ns))
    }
}

impl Slot {
    /// What readers see. `stale`: the connection is silent or gone.
    pub(crate) fn status(&self, stale: bool) -> Status {
        if stale {
            return if self.book.is_empty() { Status::Empty } else { Status::Stale };
        }
        match self.phase {
            Phase::Queued { .. }
            | Phase::Unsubscribing { .. }
            | Phase::Resyncing { .. }
            | Phase::FetchWait { .. }
            | Phase::Fetching { .. } => Status::Resyncing,
            Phase::Rejected => Status::Invalid,
            Phase::Idle | Phase::Subscribing { .. } if !self.book.is_empty() => Status::Resyncing,
            _ => Status::of(self.book.state()),
        }
    }

    pub(crate) fn publish(&mut self, stale: bool) {
        let status = self.status(stale);
        self.publisher.publish_with(&self.book, status, self.exchange_ns, self.received_ns);
    }

    /// The event of a book message just applied (or not) to this book.
    #[inline]
    pub(crate) fn book_update(
        &self,
        frame: &plumb_wire::Frame<'_>,
        outcome: plumb_book::Verdict,
        stale: bool,
        received_ns: u64,
    ) -> BookUpdate {
        BookUpdate {
            symbol: std::sync::Arc::clone(&self.symbol),
            kind: frame.kind,
            bids: u16::try_from(frame.bids.len()).unwrap_or(u16::MAX),
            asks: u16::try_from(frame.asks.len()).unwrap_or(u16::MAX),
            outcome,
            status: self.status(stale),
            sequence: self.book.sequence(),
            exchange_time_ns: self.exchange_ns,
            received_ns,
        }
    }

    pub(crate) fn publish_as(&mut self, status: Status) {
        self.publisher.publish_with(&self.book, status, self.exchange_ns, self.received_ns);
    }
}
