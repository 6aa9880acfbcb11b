//! One symbol's book, its publisher and its phase.

use std::time::Instant;

use plumb_book::Book;
use plumb_book::publish::{Publisher, Status};

use super::event::ResyncReason;
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
    /// Known wrong; waiting for a pacing token.
    Queued { reason: ResyncReason, started: Instant },
    /// Unsubscribe sent at `sent` (request `req`); the subscribe waits for its acknowledgement
    /// (exchanges that refuse a second subscribe of a live topic).
    Unsubscribing { reason: ResyncReason, started: Instant, sent: Instant, req: u64 },
    /// Subscribe sent at `sent` (request `req`) to resync; waiting for the snapshot.
    Resyncing { reason: ResyncReason, started: Instant, sent: Instant, req: u64 },
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
            Self::Subscribing { .. } | Self::Resyncing { .. } => kind == plumb_wire::Kind::Snapshot,
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
}

impl Slot {
    /// What readers see. `stale`: the connection is silent or gone.
    pub(crate) fn status(&self, stale: bool) -> Status {
        if stale {
            return if self.book.is_empty() { Status::Empty } else { Status::Stale };
        }
        match self.phase {
            Phase::Queued { .. } | Phase::Unsubscribing { .. } | Phase::Resyncing { .. } => Status::Resyncing,
            Phase::Rejected => Status::Invalid,
            Phase::Idle | Phase::Subscribing { .. } if !self.book.is_empty() => Status::Resyncing,
            _ => Status::of(self.book.state()),
        }
    }

    pub(crate) fn publish(&mut self, stale: bool) {
        let status = self.status(stale);
        self.publisher.publish_with(&self.book, status, self.exchange_ns, self.received_ns);
    }

    pub(crate) fn publish_as(&mut self, status: Status) {
        self.publisher.publish_with(&self.book, status, self.exchange_ns, self.received_ns);
    }
}
