//! Running totals: [`Stats`] (single-writer atomics any thread can read) and the `metrics` handles,
//! both fed from one place.

use std::sync::atomic::{AtomicU64, Ordering};

use plumb_book::Tally;

use super::event::{REASONS, ResyncReason};

/// Running totals of one feed, readable from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    frames: AtomicU64,
    book_messages: AtomicU64,
    checksums_verified: AtomicU64,
    checksum_mismatches: AtomicU64,
    sequence_verified: AtomicU64,
    sequence_gaps: AtomicU64,
    unverified_updates: AtomicU64,
    ignored: AtomicU64,
    errors: AtomicU64,
    resyncs: AtomicU64,
    reconnects: AtomicU64,
    fetches: AtomicU64,
    fetch_failures: AtomicU64,
    connect_failures: AtomicU64,
    quiet_symbols: AtomicU64,
}

/// A copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames received.
    pub frames: u64,
    /// Book frames (a frame with several symbols counts once).
    pub book_messages: u64,
    /// Checksums that matched.
    pub checksums_verified: u64,
    /// Checksums that did not.
    pub checksum_mismatches: u64,
    /// Book messages applied in an unbroken sequence since a snapshot.
    pub sequence_verified: u64,
    /// Sequence gaps detected.
    pub sequence_gaps: u64,
    /// Book messages not verified (received while resyncing or before a snapshot, or without a
    /// checksum).
    pub unverified_updates: u64,
    /// Frames that are not book messages, and stale or duplicate book messages.
    pub ignored: u64,
    /// Frames that could not be parsed, and levels that could not be applied.
    pub errors: u64,
    /// Resyncs started.
    pub resyncs: u64,
    /// Connections after the first.
    pub reconnects: u64,
    /// Book snapshots fetched over HTTP (asked for).
    pub fetches: u64,
    /// Snapshot fetches that failed or could not be used.
    pub fetch_failures: u64,
    /// Connection attempts that failed (DNS, TCP, TLS, the websocket handshake).
    pub connect_failures: u64,
    /// Symbols reported quiet while their connection flowed ([`Event::QuietSymbol`](crate::Event)).
    pub quiet_symbols: u64,
}

impl std::ops::AddAssign for Counts {
    /// Adds another connection's counts (the connections of one exchange, summed).
    fn add_assign(&mut self, o: Self) {
        self.frames += o.frames;
        self.book_messages += o.book_messages;
        self.checksums_verified += o.checksums_verified;
        self.checksum_mismatches += o.checksum_mismatches;
        self.sequence_verified += o.sequence_verified;
        self.sequence_gaps += o.sequence_gaps;
        self.unverified_updates += o.unverified_updates;
        self.ignored += o.ignored;
        self.errors += o.errors;
        self.resyncs += o.resyncs;
        self.reconnects += o.reconnects;
        self.fetches += o.fetches;
        self.fetch_failures += o.fetch_failures;
        self.connect_failures += o.connect_failures;
        self.quiet_symbols += o.quiet_symbols;
    }
}

impl Stats {
    /// A consistent-enough copy: each counter is exact, the set is not one instant.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            frames: g(&self.frames),
            book_messages: g(&self.book_messages),
            checksums_verified: g(&self.checksums_verified),
            checksum_mismatches: g(&self.checksum_mismatches),
            sequence_verified: g(&self.sequence_verified),
            sequence_gaps: g(&self.sequence_gaps),
            unverified_updates: g(&self.unverified_updates),
            ignored: g(&self.ignored),
            errors: g(&self.errors),
            resyncs: g(&self.resyncs),
            reconnects: g(&self.reconnects),
            fetches: g(&self.fetches),
            fetch_failures: g(&self.fetch_failures),
            connect_failures: g(&self.connect_failures),
            quiet_symbols: g(&self.quiet_symbols),
        }
    }
}

impl Stats {
    /// Counts a failed connection attempt (the driver's).
    #[cfg_attr(not(feature = "tokio"), expect(dead_code, reason = "only the tokio driver connects"))]
    pub(crate) fn connect_failed(&self) {
        bump(&self.connect_failures);
    }
}

/// One writer per counter: a load and a store, no read-modify-write on the hot path.
#[inline]
fn bump(a: &AtomicU64) {
    a.store(a.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

#[inline]
fn set(a: &AtomicU64, v: u64) {
    a.store(v, Ordering::Relaxed);
}

/// Handles on the `metrics` facade, registered once when the session is made, so that the hot
/// path only increments them. Without an installed recorder they are no-ops; an application that
/// wants them installs its recorder before building the feed.
struct Meters {
    frames: metrics::Counter,
    book_messages: metrics::Counter,
    verified: metrics::Counter,
    mismatches: metrics::Counter,
    gaps: metrics::Counter,
    errors: metrics::Counter,
    reconnects: metrics::Counter,
    quiet: metrics::Counter,
    resyncs: [metrics::Counter; REASONS.len()],
    latency: metrics::Histogram,
}

/// The session's counts: the atomics readers see, the `metrics` handles, and the verdict tally
/// shared with the replay ([`Tally`]). Every count is kept here and only here.
pub(crate) struct Tallies {
    pub(crate) stats: std::sync::Arc<Stats>,
    meters: Meters,
    verdicts: Tally,
}

impl std::fmt::Debug for Tallies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tallies").field("stats", &self.stats).field("verdicts", &self.verdicts).finish_non_exhaustive()
    }
}

impl Tallies {
    pub(crate) fn new(exchange: &'static str) -> Self {
        let c = |name: &'static str| metrics::counter!(name, "exchange" => exchange);
        let meters = Meters {
            frames: c("plumb_frames_total"),
            book_messages: c("plumb_book_messages_total"),
            verified: c("plumb_checksums_verified_total"),
            mismatches: c("plumb_checksum_mismatches_total"),
            gaps: c("plumb_sequence_gaps_total"),
            errors: c("plumb_errors_total"),
            reconnects: c("plumb_reconnects_total"),
            quiet: c("plumb_quiet_symbols_total"),
            resyncs: REASONS.map(|r| metrics::counter!("plumb_resyncs_total", "exchange" => exchange, "reason" => r)),
            latency: metrics::histogram!("plumb_latency_seconds", "exchange" => exchange),
        };
        Self { stats: std::sync::Arc::default(), meters, verdicts: Tally::default() }
    }

    #[inline]
    pub(crate) fn frame(&self) {
        bump(&self.stats.frames);
        self.meters.frames.increment(1);
    }

    #[inline]
    pub(crate) fn book_message(&self) {
        bump(&self.stats.book_messages);
        self.meters.book_messages.increment(1);
    }

    #[inline]
    pub(crate) fn ignored(&self) {
        bump(&self.stats.ignored);
    }

    /// A book message of one symbol that was not applied because its book's phase does not take
    /// it (resyncing, or before its snapshot).
    #[inline]
    pub(crate) fn not_taken(&self) {
        bump(&self.stats.unverified_updates);
    }

    pub(crate) fn error(&self) {
        bump(&self.stats.errors);
        self.meters.errors.increment(1);
    }

    pub(crate) fn reconnect(&self) {
        bump(&self.stats.reconnects);
        self.meters.reconnects.increment(1);
    }

    /// A symbol reported quiet while its connection flows.
    pub(crate) fn quiet(&self) {
        bump(&self.stats.quiet_symbols);
        self.meters.quiet.increment(1);
    }

    pub(crate) fn fetch(&self) {
        bump(&self.stats.fetches);
    }

    pub(crate) fn fetch_failure(&self) {
        bump(&self.stats.fetch_failures);
        self.meters.errors.increment(1);
    }

    pub(crate) fn resync(&self, reason: ResyncReason) {
        bump(&self.stats.resyncs);
        self.meters.resyncs[reason.index()].increment(1);
    }

    /// Goes on from `old`'s totals (a rollover's new session): the same shared counts and the
    /// same verdict tallies.
    pub(crate) fn continue_from(&mut self, old: &Tallies) {
        self.stats = std::sync::Arc::clone(&old.stats);
        self.verdicts = old.verdicts;
    }

    /// A skip of the connection's counter (Coinbase): one gap, whichever books it hits.
    pub(crate) fn connection_gap(&mut self) {
        self.verdicts.sequence_gaps += 1;
        set(&self.stats.sequence_gaps, self.verdicts.sequence_gaps);
        self.meters.gaps.increment(1);
    }

    #[inline]
    pub(crate) fn latency(&self, seconds: f64) {
        self.meters.latency.record(seconds);
    }

    /// Counts one verdict the way the replay does, and mirrors the changed totals.
    #[inline]
    pub(crate) fn verdict(&mut self, verdict: plumb_book::Verdict, kind: plumb_wire::Kind) {
        let before = self.verdicts;
        self.verdicts.count(verdict, kind);
        let (v, s, m) = (&self.verdicts, &self.stats, &self.meters);
        if v.checksums_verified != before.checksums_verified {
            set(&s.checksums_verified, v.checksums_verified);
            m.verified.increment(1);
        }
        if v.checksum_mismatches != before.checksum_mismatches {
            set(&s.checksum_mismatches, v.checksum_mismatches);
            m.mismatches.increment(1);
        }
        if v.sequence_gaps != before.sequence_gaps {
            set(&s.sequence_gaps, v.sequence_gaps);
            m.gaps.increment(1);
        }
        if v.sequence_verified != before.sequence_verified {
            set(&s.sequence_verified, v.sequence_verified);
        }
        if v.unverified_updates != before.unverified_updates {
            bump(&s.unverified_updates);
        }
        if v.stale != before.stale {
            bump(&s.ignored);
        }
    }
}
