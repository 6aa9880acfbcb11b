//! The session's deadlines, by name: one table, the earliest is what `poll_timeout` answers.

use std::time::Instant;

/// A named deadline of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Ping after this much silence (re-checked against the last frame when it fires).
    Silence,
    /// The connection is stale after this much silence (likewise).
    Stale,
    /// The periodic ping some exchanges ask for whatever the traffic.
    Keepalive,
    /// The preamble's answer (Kraken's instrument list) is overdue.
    Preamble,
    /// The pacing bucket has a token for the next queued resync.
    Resync,
    /// The earliest awaited snapshot or acknowledgement of any symbol is overdue.
    Snapshot,
    /// A snapshot fetch is due (after its backoff or pacing), or one in flight is overdue.
    Fetch,
    /// The quiet-symbol check (once a second while connected).
    Quiet,
    /// The connection nears the exchange's limit on its age: a planned rollover is due.
    Rollover,
}

const COUNT: usize = 9;

/// The deadlines, each set or not.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timers([Option<Instant>; COUNT]);

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.0[timer as usize] = at;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer as usize]
    }

    /// Whether the timer is set and due at `now`.
    pub(crate) fn due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    pub(crate) fn clear(&mut self) {
        self.0 = [None; COUNT];
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}
