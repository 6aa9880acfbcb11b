//! Pacing without a clock: the resubscription token bucket, reconnect backoff, and the small
//! random source both use for jitter. Every function takes `now` as an argument.

use std::time::{Duration, Instant};

/// A small deterministic random source (xorshift64*), seeded by the caller, so that jitter is
/// reproducible in tests. Not for anything that needs unpredictability.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A duration uniformly in `[0, max]`, at nanosecond resolution.
    pub(crate) fn up_to(&mut self, max: Duration) -> Duration {
        let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if max_ns == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next() % (max_ns.saturating_add(1)).max(1))
    }
}

/// How resubscriptions are paced: at most `burst` back to back, then one per `interval`, each
/// delayed by a random amount up to `jitter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Resubscriptions allowed back to back after a quiet period.
    pub burst: u32,
    /// The sustained rate: one resubscription per interval.
    pub interval: Duration,
    /// Up to this much random delay before each resubscription.
    pub jitter: Duration,
}

impl Default for Pacing {
    /// A burst of 4, then one per second, with up to 250 ms of jitter: a whole connection's worth
    /// of books healing at once stays far below the rate at which exchanges start refusing.
    fn default() -> Self {
        Self { burst: 4, interval: Duration::from_secs(1), jitter: Duration::from_millis(250) }
    }
}

/// A token bucket in its GCRA form: `tat` is the theoretical arrival time of the next request.
/// A request at `now` conforms when `tat - (burst - 1) * interval <= now`. On top of that, each
/// request after the first waits a random jitter after the previous one (`not_before`).
///
/// An exchange's rate refusal slows the bucket down ([`Bucket::slow_down`]): no burst, and the
/// interval doubled per refusal (up to 16 times), until a minute passes without one.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pacing: Pacing,
    tat: Option<Instant>,
    not_before: Option<Instant>,
    /// The interval's multiplier while slowed down (1 when not).
    slowdown: u32,
    /// When the slowdown ends, if no refusal comes before.
    calm_at: Option<Instant>,
}

/// The most a rate refusal stretches the interval.
const MAX_SLOWDOWN: u32 = 16;

/// How long the slowdown lasts after the last rate refusal.
const CALM: Duration = Duration::from_secs(60);

impl Bucket {
    pub(crate) fn new(pacing: Pacing) -> Self {
        Self { pacing, tat: None, not_before: None, slowdown: 1, calm_at: None }
    }

    fn slowed(&self, now: Instant) -> bool {
        self.slowdown > 1 && self.calm_at.is_some_and(|t| now < t)
    }

    fn interval(&self, now: Instant) -> Duration {
        if self.slowed(now) { self.pacing.interval.saturating_mul(self.slowdown) } else { self.pacing.interval }
    }

    fn burst(&self, now: Instant) -> u32 {
        if self.slowed(now) { 1 } else { self.pacing.burst.max(1) }
    }

    /// The exchange refused a request for its rate: no request for a whole (doubled) interval,
    /// and no burst until a minute passes without another refusal.
    pub(crate) fn slow_down(&mut self, now: Instant) {
        self.slowdown = if self.slowed(now) { (self.slowdown * 2).min(MAX_SLOWDOWN) } else { 2 };
        self.calm_at = Some(now + CALM);
        let interval = self.interval(now);
        self.tat = Some(now + interval);
        self.not_before = Some(now + interval);
    }

    /// Whether a rate refusal is still slowing the bucket down at `now`.
    #[cfg(test)]
    pub(crate) fn is_slowed(&self, now: Instant) -> bool {
        self.slowed(now)
    }

    /// When the next request may go (maybe in the past).
    pub(crate) fn ready_at(&self, now: Instant) -> Instant {
        let window = self.interval(now).saturating_mul(self.burst(now) - 1);
        let conform = match self.tat {
            Some(tat) => tat.checked_sub(window).map_or(now, |t| t.max(now)),
            None => now,
        };
        self.not_before.map_or(conform, |t| t.max(conform))
    }

    /// Takes a token if one is available at `now`; the next request then waits a fresh jitter.
    pub(crate) fn try_take(&mut self, now: Instant, rng: &mut Jitter) -> bool {
        if self.ready_at(now) > now {
            return false;
        }
        let base = self.tat.map_or(now, |t| t.max(now));
        self.tat = Some(base + self.interval(now));
        self.not_before = Some(now + rng.up_to(self.pacing.jitter));
        true
    }
}

/// A token bucket shared by its clones: what several connections to one exchange draw from
/// together, since exchanges count per IP. The connection attempts of every connection to one
/// exchange ([`FeedBuilder::connect_budget`](crate::FeedBuilder::connect_budget)), so that 500
/// symbols reconnecting after an outage come back inside the exchange's connection limit, and
/// their REST snapshot fetches ([`Config::fetch_budget`](crate::Config::fetch_budget)), inside its
/// request weight.
///
/// The slots follow [`Pacing`]: a burst, then one per interval, each with up to `jitter` of random
/// delay; an exchange's rate refusal slows it down ([`Budget::slow_down`]). A lock is taken once
/// per connection attempt or fetch, never per message.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: std::sync::Arc<std::sync::Mutex<(Bucket, Jitter)>>,
}

impl Budget {
    /// A budget of connection attempts paced by `pacing`.
    #[must_use]
    pub fn new(pacing: Pacing) -> Self {
        Self { inner: std::sync::Arc::new(std::sync::Mutex::new((Bucket::new(pacing), Jitter::new(0x00c0_ffee)))) }
    }

    /// Reserves the next connection slot at or after `now`; the caller connects at the returned
    /// instant. Every call takes its own slot, so attempts that wait together go one after the
    /// other.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (bucket, rng) = &mut *guard;
        let at = bucket.ready_at(now).max(now);
        let taken = bucket.try_take(at, rng);
        debug_assert!(taken, "a bucket is ready at its own ready time");
        at
    }

    /// Takes a slot if one is free at `now`.
    pub fn try_take(&self, now: Instant) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (bucket, rng) = &mut *guard;
        bucket.try_take(now, rng)
    }

    /// When the next slot is free (maybe in the past).
    #[must_use]
    pub fn ready_at(&self, now: Instant) -> Instant {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0.ready_at(now)
    }

    /// The exchange refused a request for its rate: no slot for a whole (doubled) interval, and no
    /// burst until a minute passes without another refusal.
    pub fn slow_down(&self, now: Instant) {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0.slow_down(now);
    }

    /// The pacing the budget follows.
    #[must_use]
    pub fn pacing(&self) -> Pacing {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0.pacing
    }
}

/// Reconnect delays: exponential from `base` up to `max`, each drawn uniformly from the upper
/// half of the current step ("equal jitter"), so that many clients cut off at once do not come
/// back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's upper bound.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// From 250 ms up to 30 s.
    fn default() -> Self {
        Self { base: Duration::from_millis(250), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (0 for the first retry).
    #[cfg_attr(not(feature = "tokio"), expect(dead_code, reason = "only the tokio driver reconnects"))]
    pub(crate) fn delay(&self, attempt: u32, rng: &mut Jitter) -> Duration {
        let step = self.base.saturating_mul(1u32 << attempt.min(20)).min(self.max);
        let half = step / 2;
        half + rng.up_to(step - half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_one_per_interval() {
        let pacing = Pacing { burst: 3, interval: Duration::from_secs(1), jitter: Duration::ZERO };
        let mut b = Bucket::new(pacing);
        let mut rng = Jitter::new(7);
        let t0 = crate::test_epoch();
        let taken = (0..10).filter(|_| b.try_take(t0, &mut rng)).count();
        assert_eq!(taken, 3);
        assert_eq!(b.ready_at(t0), t0 + Duration::from_secs(1));
        assert!(!b.try_take(t0 + Duration::from_millis(999), &mut rng));
        assert!(b.try_take(t0 + Duration::from_secs(1), &mut rng));
        assert!(!b.try_take(t0 + Duration::from_secs(1), &mut rng));
        // Over a long run the rate is one per interval, whatever the request pattern.
        let mut sent = 0;
        for ms in (1000..61_000).step_by(10) {
            if b.try_take(t0 + Duration::from_millis(ms), &mut rng) {
                sent += 1;
            }
        }
        assert!((59..=61).contains(&sent), "{sent}");
    }

    #[test]
    fn a_rate_refusal_slows_the_bucket_down_for_a_while() {
        let pacing = Pacing { burst: 4, interval: Duration::from_secs(1), jitter: Duration::ZERO };
        let mut b = Bucket::new(pacing);
        let mut rng = Jitter::new(7);
        let t0 = crate::test_epoch();
        assert!(b.try_take(t0, &mut rng));
        b.slow_down(t0);
        assert!(b.is_slowed(t0));
        // Nothing for two seconds, then one per two seconds, no burst.
        assert!(!b.try_take(t0 + Duration::from_millis(1999), &mut rng));
        assert!(b.try_take(t0 + Duration::from_secs(2), &mut rng));
        assert!(!b.try_take(t0 + Duration::from_millis(3999), &mut rng));
        assert!(b.try_take(t0 + Duration::from_secs(4), &mut rng));
        // Another refusal while slowed: four seconds.
        b.slow_down(t0 + Duration::from_secs(4));
        assert_eq!(b.ready_at(t0 + Duration::from_secs(4)), t0 + Duration::from_secs(8));
        // A minute without refusals: back to the burst and the usual interval.
        let calm = t0 + Duration::from_secs(70);
        assert!(!b.is_slowed(calm));
        assert_eq!((0..10).filter(|_| b.try_take(calm, &mut rng)).count(), 4);
    }

    #[test]
    fn jitter_delays_within_bounds() {
        let pacing = Pacing { burst: 100, interval: Duration::from_millis(1), jitter: Duration::from_millis(50) };
        let mut b = Bucket::new(pacing);
        let mut rng = Jitter::new(1);
        let t0 = crate::test_epoch();
        assert!(b.try_take(t0, &mut rng));
        let mut delays = Vec::new();
        let mut t = t0;
        for _ in 0..50 {
            let at = b.ready_at(t);
            assert!(at >= t && at <= t + Duration::from_millis(50), "{:?}", at - t);
            delays.push(at - t);
            t = at;
            assert!(b.try_take(t, &mut rng));
        }
        delays.sort();
        assert!(delays[0] < delays[49], "jitter must vary");
    }

    #[test]
    fn a_connect_budget_hands_out_slots_in_order_and_inside_its_rate() {
        let budget = Budget::new(Pacing { burst: 2, interval: Duration::from_millis(500), jitter: Duration::ZERO });
        let other = budget.clone();
        let t0 = crate::test_epoch();
        // Twenty attempts at the same instant, from two clones: two at once, then one per 500 ms.
        let mut slots: Vec<Instant> =
            (0..20).map(|i| if i % 2 == 0 { budget.reserve(t0) } else { other.reserve(t0) }).collect();
        assert_eq!(slots[0], t0);
        assert_eq!(slots[1], t0);
        slots.sort();
        for w in slots.windows(2).skip(1) {
            assert!(w[1] - w[0] >= Duration::from_millis(500), "{:?}", w[1] - w[0]);
        }
        // In any one second there are at most burst + 2 slots.
        for s in &slots {
            let n = slots.iter().filter(|t| **t >= *s && **t < *s + Duration::from_secs(1)).count();
            assert!(n <= 4, "{n}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5) };
        let mut rng = Jitter::new(3);
        for attempt in 0..40 {
            let d = b.delay(attempt, &mut rng);
            let step = (Duration::from_millis(100) * (1u32 << attempt.min(20))).min(Duration::from_secs(5));
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
    }
}
