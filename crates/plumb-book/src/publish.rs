//! Lock-free publication: one writer thread publishes books, any number of reader threads read
//! consistent copies, and the writer never waits.
//!
//! The design is a seqlock over a ring of [`SLOTS`] fixed-size images of the top of the book. Every shared
//! word is an `AtomicU64` (relaxed loads and stores are plain moves on x86 and ARM), so a reader
//! that races the writer reads stale words, never undefined behaviour; the sequence check then
//! throws the copy away. There is no `unsafe` code here.
//!
//! - The writer fills the slot readers are not pointed at, bumping that slot's sequence number to
//!   odd before and to even after, then points readers at it. It never reads anything a reader
//!   writes, so it cannot be slowed or blocked by readers, and it never allocates.
//! - A reader loads the current slot, its (even) sequence number, copies the words, and checks the
//!   sequence number again. A mismatch means the writer came back to this slot mid-copy (it had to
//!   publish [`SLOTS`] times during one read), and the reader copies again.
//!
//! Readers therefore always see one version of the book, never a mix of two. The stress test in
//! `tests/it/publish.rs` recomputes the Kraken checksum of every copy to prove it, and
//! `tests/loom.rs` checks the protocol under every interleaving loom explores.
//!
//! Example: a strategy thread polls the best bid and ask and acts only while the book is valid.
//!
//! ```
//! use plumb_book::publish::channel;
//! use plumb_book::{Book, Depth, Side};
//!
//! let (mut publisher, reader) = channel(10);
//!
//! let strategy = std::thread::spawn(move || {
//!     let mut seen = 0;
//!     let mut spread = None;
//!     while spread.is_none() {
//!         // One atomic load per poll; copy only when something new was published.
//!         if reader.version() == seen {
//!             std::hint::spin_loop();
//!             continue;
//!         }
//!         let top = reader.top();
//!         seen = top.header.version;
//!         if !top.header.status.is_valid() {
//!             continue; // stale, resyncing or invalid: never trade on it
//!         }
//!         if let (Some(bid), Some(ask)) = (top.bid, top.ask) {
//!             spread = Some(ask.price.to_decimal() - bid.price.to_decimal());
//!         }
//!     }
//!     spread.unwrap()
//! });
//!
//! // The writer (normally the feed) applies messages and publishes after each one.
//! let mut book = Book::new(Depth::D10, None);
//! book.set(Side::Bid, "100.5", "2.0")?;
//! book.set(Side::Ask, "101.0", "1.5")?;
//! publisher.publish(&book, 0, 0); // no checksum yet: published as unverified, not acted on
//! let crc = book.checksum();
//! book.verify(Some(crc)); // the exchange's checksum matched
//! publisher.publish(&book, 0, 0);
//!
//! assert_eq!(strategy.join().unwrap().to_string(), "0.5");
//! # Ok::<(), plumb_book::Error>(())
//! ```

use crate::book::{Book, DIGITS, Decimal64, Proof, Quote, Side, State, write_digits};
use crate::fixed::POW10;
use crate::sync::{Arc, AtomicU64, Ordering, fence, spin};

/// Whether a reader may act on what it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// No book yet (before the first snapshot).
    Empty,
    /// Proved by the exchange's rule (the header's [`Header::proof`] says how): the book is exactly
    /// the exchange's.
    Valid,
    /// A snapshot without a checksum (Kraken v1): plausible, not proven.
    Unverified,
    /// Known wrong (checksum mismatch, crossed, rejected level); a fresh snapshot has not been
    /// asked for yet.
    Invalid,
    /// Known wrong, and a fresh snapshot has been asked for.
    Resyncing,
    /// Nothing has arrived from the exchange for too long: the book may be out of date.
    Stale,
}

impl Status {
    /// A short lowercase name (`valid`, `resyncing`, `stale`...), as `plumb watch --json` prints
    /// it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Valid => "valid",
            Self::Unverified => "unverified",
            Self::Invalid => "invalid",
            Self::Resyncing => "resyncing",
            Self::Stale => "stale",
        }
    }

    /// The status that a book's own validity state implies.
    #[must_use]
    pub fn of(state: State) -> Self {
        match state {
            State::AwaitingSnapshot => Self::Empty,
            State::Valid => Self::Valid,
            State::Unverified => Self::Unverified,
            State::Invalid(_) => Self::Invalid,
        }
    }

    /// `true` only for [`Status::Valid`]: the one status to trade on.
    #[must_use]
    pub fn is_valid(self) -> bool {
        self == Self::Valid
    }

    fn to_bits(self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Valid => 1,
            Self::Unverified => 2,
            Self::Invalid => 3,
            Self::Resyncing => 4,
            Self::Stale => 5,
        }
    }

    fn from_bits(b: u64) -> Self {
        match b & 0xff {
            1 => Self::Valid,
            2 => Self::Unverified,
            3 => Self::Invalid,
            4 => Self::Resyncing,
            5 => Self::Stale,
            _ => Self::Empty,
        }
    }
}

/// What a reader learns besides the levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How many times the writer has published; it only grows.
    pub version: u64,
    /// Whether the book can be trusted.
    pub status: Status,
    /// Kraken's CRC32 of the published book's top 10 levels, for exchanges proved by it; 0 for
    /// the others.
    pub checksum: u32,
    /// What `Valid` rests on (a checksum value or the last sequence id); [`Proof::None`] whenever
    /// the status is not [`Status::Valid`]. A strategy that trades only on checksummed books
    /// checks this.
    pub proof: Proof,
    /// The exchange's timestamp of the last applied message, in nanoseconds since the Unix epoch
    /// (0 when the message had none).
    pub exchange_time_ns: u64,
    /// When the last applied message was received, in nanoseconds on the caller's clock.
    pub received_ns: u64,
    /// Bid levels in the copy.
    pub bids: usize,
    /// Ask levels in the copy.
    pub asks: usize,
}

impl Header {
    /// Whether the book is [`Status::Valid`] and its last message was received no more than
    /// `max_age` before `now_ns` (nanoseconds on the clock `received_ns` was stamped with: the
    /// feed's driver uses Unix time). A book that is valid but old (a quiet symbol, or a feed
    /// whose silence has not yet reached its stale timeout) fails it.
    #[must_use]
    pub fn is_valid_at(&self, now_ns: u64, max_age: std::time::Duration) -> bool {
        let max = u64::try_from(max_age.as_nanos()).unwrap_or(u64::MAX);
        self.status.is_valid() && self.received_ns > 0 && now_ns.saturating_sub(self.received_ns) <= max
    }

    /// [`Header::is_valid_at`] now, by the system's wall clock (the clock the feed's driver stamps
    /// `received_ns` with). One call for a strategy: valid, and fresh enough to trade on.
    #[must_use]
    pub fn is_valid_within(&self, max_age: std::time::Duration) -> bool {
        self.is_valid_at(unix_now_ns(), max_age)
    }
}

/// Nanoseconds since the Unix epoch by the system clock.
#[expect(clippy::disallowed_methods, reason = "a reader's age check needs the wall clock the driver stamps with")]
fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The best bid and ask, and the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Top {
    /// The highest bid.
    pub bid: Option<Quote>,
    /// The lowest ask.
    pub ask: Option<Quote>,
    /// Version, status, checksum and times of the copy.
    pub header: Header,
}

/// Slots in the ring. A reader retries only if it is lapped by this many publishes during one
/// copy. Measured here with a writer publishing back to back (about 70 ns apart) against top-10
/// copies: 2 slots starve readers (6 µs per copy), 4 still retry often (2 µs), 8 do not (0.5 µs,
/// most of it cache-line transfers). At a feed's real pace (a message every microsecond or more)
/// copies do not retry at all. The writer's cost does not depend on it.
pub const SLOTS: usize = 8;

const HEADER_WORDS: usize = 6;
const LEVEL_WORDS: usize = 3;

/// One slot: its own sequence number on its own cache line, then the words.
#[derive(Debug)]
struct Slot {
    seq: crossbeam_utils::CachePadded<AtomicU64>,
    words: Box<[AtomicU64]>,
}

#[derive(Debug)]
struct Shared {
    /// The publish count; readers read slot `current % slots`.
    current: crossbeam_utils::CachePadded<AtomicU64>,
    slots: Box<[Slot]>,
    levels: usize,
    /// Reader threads that may park in [`Reader::wait_newer`] with [`Wait::Park`].
    #[cfg(not(loom))]
    sleepers: Sleepers,
}

/// How a reader waits for the next version ([`Reader::wait_newer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Wait {
    /// Poll the version flat out: the lowest latency, and a core kept busy. Give the reader a
    /// core of its own.
    Spin,
    /// Poll, yielding the core to the scheduler between polls: cheap on a shared core, and the
    /// latency of a scheduler round when others run.
    Yield,
    /// Sleep until the writer wakes the thread: no core used while nothing happens, and a
    /// wake-up's latency (a futex wake from the writer) on each new version. Once any reader has
    /// parked, the writer pays a fence and a scan of the sleepers per publication; before, nothing.
    Park,
}

/// The most reader threads that park on one book; more fall back to [`Wait::Yield`].
#[cfg(not(loom))]
const MAX_SLEEPERS: usize = 16;

/// The reader threads that park, each registered once, lock-free on the writer's side.
#[cfg(not(loom))]
#[derive(Debug)]
struct Sleepers {
    /// How many entries of `list` are claimed.
    claimed: std::sync::atomic::AtomicUsize,
    list: Box<[Sleeper]>,
}

#[cfg(not(loom))]
#[derive(Debug, Default)]
struct Sleeper {
    thread: std::sync::OnceLock<std::thread::Thread>,
    asleep: std::sync::atomic::AtomicBool,
}

#[cfg(not(loom))]
impl Sleepers {
    fn new() -> Self {
        Self {
            claimed: std::sync::atomic::AtomicUsize::new(0),
            list: (0..MAX_SLEEPERS).map(|_| Sleeper::default()).collect(),
        }
    }

    /// The calling thread's entry, and whether it was claimed just now (on the thread's first
    /// call); `None` when all are taken.
    fn mine(&self) -> Option<(&Sleeper, bool)> {
        let me = std::thread::current();
        let claimed = self.claimed.load(Ordering::Acquire).min(self.list.len());
        if let Some(s) = self.list[..claimed].iter().find(|s| s.thread.get().is_some_and(|t| t.id() == me.id())) {
            return Some((s, false));
        }
        if claimed == self.list.len() {
            // Full: no claim, so that threads beyond the list do not bump the count on each poll.
            return None;
        }
        let k = self.claimed.fetch_add(1, Ordering::AcqRel);
        let s = self.list.get(k)?;
        let _ = s.thread.set(me);
        Some((s, true))
    }

    /// Wakes every parked reader (the writer, after each publication).
    #[inline]
    fn wake(&self) {
        let claimed = self.claimed.load(Ordering::Relaxed);
        if claimed == 0 {
            return;
        }
        // Pairs with the reader's fence between `asleep = true` and its version check: either
        // the reader sees the new version, or this sees it asleep.
        std::sync::atomic::fence(Ordering::SeqCst);
        for s in &self.list[..claimed.min(self.list.len())] {
            if s.asleep.load(Ordering::Relaxed)
                && s.asleep.swap(false, Ordering::AcqRel)
                && let Some(t) = s.thread.get()
            {
                t.unpark();
            }
        }
    }
}

impl Shared {
    #[inline]
    fn slot(&self, version: u64) -> &Slot {
        // The slot count is small and never zero, so the remainder fits a usize.
        let n = self.slots.len() as u64;
        &self.slots[usize::try_from(version % n).unwrap_or(0)]
    }
}

/// Creates a publication channel for books published with up to `levels` levels per side. Clone
/// the [`Reader`] for as many threads as need it.
///
/// The writer's cost per publish grows with `levels` (three words per level and side); readers
/// may copy any number of levels up to it.
#[must_use]
pub fn channel(levels: usize) -> (Publisher, Reader) {
    channel_with_slots(levels, SLOTS)
}

/// [`channel`] with another number of slots (at least 2); the loom test models lapping with 2.
#[doc(hidden)]
#[must_use]
pub fn channel_with_slots(levels: usize, slots: usize) -> (Publisher, Reader) {
    let words = HEADER_WORDS + 2 * levels * LEVEL_WORDS;
    let slot = |_| Slot {
        seq: crossbeam_utils::CachePadded::new(AtomicU64::new(0)),
        words: (0..words).map(|_| AtomicU64::new(0)).collect(),
    };
    let shared = Arc::new(Shared {
        current: crossbeam_utils::CachePadded::new(AtomicU64::new(0)),
        slots: (0..slots.max(2)).map(slot).collect(),
        levels,
        #[cfg(not(loom))]
        sleepers: Sleepers::new(),
    });
    (Publisher { shared: Arc::clone(&shared), version: 0 }, Reader { shared })
}

/// The writing end. There is exactly one: it is not `Clone`.
#[derive(Debug)]
pub struct Publisher {
    shared: Arc<Shared>,
    version: u64,
}

/// A reading end: cheap to clone, `Send` and `Sync`.
#[derive(Debug, Clone)]
pub struct Reader {
    shared: Arc<Shared>,
}

/// Packs a level's text-form decimals and the book's scales into one word.
fn pack_scales(pfrac: u8, qfrac: u8, pscale: u8, qscale: u8) -> u64 {
    u64::from(pfrac) | u64::from(qfrac) << 8 | u64::from(pscale) << 16 | u64::from(qscale) << 24
}

impl Publisher {
    /// How many levels per side each publish carries.
    #[must_use]
    pub fn levels(&self) -> usize {
        self.shared.levels
    }

    /// Publishes the book's top levels with its own status.
    #[inline]
    pub fn publish(&mut self, book: &Book, exchange_time_ns: u64, received_ns: u64) {
        self.publish_with(book, Status::of(book.state()), exchange_time_ns, received_ns);
    }

    /// Publishes the book's top levels with a status the caller decides (for example
    /// [`Status::Stale`] from a watchdog, or [`Status::Resyncing`] after asking for a snapshot).
    /// Wait-free: a fixed number of stores, no allocation, no lock, nothing that waits for a reader.
    pub fn publish_with(&mut self, book: &Book, status: Status, exchange_time_ns: u64, received_ns: u64) {
        let next = self.version + 1;
        let slot = self.shared.slot(next);
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd sequence number before every data store below (Boehm's seqlock writer).
        fence(Ordering::Release);
        let w = &slot.words;
        let cap = self.shared.levels;
        let (pscale, qscale) = book.scales();
        let mut counts = [0u64; 2];
        for (k, side) in [Side::Bid, Side::Ask].into_iter().enumerate() {
            let base = HEADER_WORDS + k * cap * LEVEL_WORDS;
            for (i, l) in book.levels_of(side).best_first().take(cap).enumerate() {
                let at = base + i * LEVEL_WORDS;
                w[at].store(l.price.cast_unsigned(), Ordering::Relaxed);
                w[at + 1].store(l.qty.cast_unsigned(), Ordering::Relaxed);
                w[at + 2].store(pack_scales(l.pfrac, l.qfrac, pscale, qscale), Ordering::Relaxed);
                counts[k] += 1;
            }
        }
        w[0].store(next, Ordering::Relaxed);
        w[1].store(status.to_bits() | counts[0] << 8 | counts[1] << 32, Ordering::Relaxed);
        let crc = if book.is_checksummed() { book.checksum() } else { 0 };
        let (proof_kind, proof_value) = match if status.is_valid() { book.proof() } else { Proof::None } {
            Proof::None => (0, 0),
            Proof::Checksum(c) => (1, u64::from(c)),
            Proof::Sequence(id) => (2, id),
            Proof::Snapshot => (3, 0),
        };
        w[2].store(u64::from(crc) | proof_kind << 32, Ordering::Relaxed);
        w[3].store(exchange_time_ns, Ordering::Relaxed);
        w[4].store(received_ns, Ordering::Relaxed);
        w[5].store(proof_value, Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
        self.shared.current.store(next, Ordering::Release);
        self.version = next;
        #[cfg(not(loom))]
        self.shared.sleepers.wake();
    }
}

fn quote(price: u64, qty: u64, scales: u64) -> Quote {
    // The byte fields are at most 18 by construction (`MAX_SCALE`); `& 0x1f` and `.min(18)` keep
    // any torn value of a failed attempt in range, so that no copy, even a discarded one, can
    // index out of bounds.
    let [pfrac, qfrac, pscale, qscale] =
        [0, 8, 16, 24].map(|s| u8::try_from((scales >> s) & 0x1f).unwrap_or(0).min(18));
    let down = |m: u64, scale: u8, frac: u8| {
        if scale > frac { m / POW10[usize::from(scale - frac)] } else { m }
    };
    Quote {
        price: Decimal64 { mantissa: down(price, pscale, pfrac).cast_signed(), scale: pfrac.min(pscale) },
        qty: Decimal64 { mantissa: down(qty, qscale, qfrac).cast_signed(), scale: qfrac.min(qscale) },
    }
}

impl Reader {
    /// How many levels per side the writer publishes.
    #[must_use]
    pub fn levels(&self) -> usize {
        self.shared.levels
    }

    /// How many times the writer has published. One atomic load: poll this, and copy only when it
    /// changes.
    #[must_use]
    #[inline]
    pub fn version(&self) -> u64 {
        self.shared.current.load(Ordering::Acquire)
    }

    /// Waits, the way `how` says, until a version other than `seen` is published or `timeout`
    /// has passed, and returns the version then current (equal to `seen` on a timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use plumb_book::publish::{Wait, channel};
    /// use plumb_book::{Book, Depth};
    ///
    /// let (mut publisher, reader) = channel(10);
    /// let waiter = std::thread::spawn(move || reader.wait_newer(0, Wait::Park, Duration::from_secs(10)));
    /// publisher.publish(&Book::new(Depth::D10, None), 0, 0);
    /// assert_eq!(waiter.join().unwrap(), 1);
    /// ```
    #[must_use]
    pub fn wait_newer(&self, seen: u64, how: Wait, timeout: std::time::Duration) -> u64 {
        #[expect(clippy::disallowed_methods, reason = "a wait with a timeout reads the clock")]
        let start = std::time::Instant::now();
        let mut polls = 0u32;
        loop {
            let v = self.version();
            if v != seen {
                return v;
            }
            polls = polls.wrapping_add(1);
            // The clock is read every 64 polls (and after each sleep), not on each.
            if (polls.is_multiple_of(64) || how == Wait::Park) && start.elapsed() >= timeout {
                return v;
            }
            match how {
                Wait::Spin => std::hint::spin_loop(),
                Wait::Yield => std::thread::yield_now(),
                Wait::Park => self.park(seen, start, timeout),
            }
        }
    }

    #[cfg(not(loom))]
    fn park(&self, seen: u64, start: std::time::Instant, timeout: std::time::Duration) {
        let Some((me, fresh)) = self.shared.sleepers.mine() else {
            std::thread::yield_now();
            return;
        };
        me.asleep.store(true, Ordering::Relaxed);
        // Pairs with the writer's fence in `Sleepers::wake`.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.version() == seen {
            // A writer that read `claimed` before this thread registered may not wake it: the
            // first sleep is capped at a millisecond. From then on every publication wakes it.
            let left = timeout.saturating_sub(start.elapsed());
            std::thread::park_timeout(if fresh { left.min(std::time::Duration::from_millis(1)) } else { left });
        }
        me.asleep.store(false, Ordering::Relaxed);
    }

    #[cfg(loom)]
    fn park(&self, _seen: u64, _start: std::time::Instant, _timeout: std::time::Duration) {
        spin();
    }

    /// Runs `copy` over the current slot until it gets a copy no publish overlapped.
    #[inline]
    fn read<T>(&self, mut copy: impl FnMut(&[AtomicU64]) -> T) -> T {
        loop {
            let current = self.shared.current.load(Ordering::Acquire);
            let slot = self.shared.slot(current);
            let s1 = slot.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let out = copy(&slot.words);
                // Orders the data loads above before the second sequence load (Boehm's reader).
                fence(Ordering::Acquire);
                if slot.seq.load(Ordering::Relaxed) == s1 {
                    return out;
                }
            }
            spin();
        }
    }

    fn header(w: &[AtomicU64]) -> Header {
        let meta = w[1].load(Ordering::Relaxed);
        let crc = w[2].load(Ordering::Relaxed);
        let value = w[5].load(Ordering::Relaxed);
        let proof = match crc >> 32 {
            1 => Proof::Checksum(u32::try_from(value & 0xffff_ffff).unwrap_or(0)),
            2 => Proof::Sequence(value),
            3 => Proof::Snapshot,
            _ => Proof::None,
        };
        Header {
            version: w[0].load(Ordering::Relaxed),
            status: Status::from_bits(meta),
            checksum: u32::try_from(crc & 0xffff_ffff).unwrap_or(0),
            proof,
            exchange_time_ns: w[3].load(Ordering::Relaxed),
            received_ns: w[4].load(Ordering::Relaxed),
            bids: usize::try_from((meta >> 8) & 0xff_ffff).unwrap_or(0),
            asks: usize::try_from(meta >> 32).unwrap_or(0),
        }
    }

    /// The best bid and ask with their quantities, and the header. No allocation.
    #[must_use]
    #[inline]
    pub fn top(&self) -> Top {
        let cap = self.shared.levels;
        self.read(|w| {
            let h = Self::header(w);
            let level = |k: usize, n: usize| {
                let at = HEADER_WORDS + k * cap * LEVEL_WORDS;
                (n > 0 && cap > 0).then(|| {
                    quote(
                        w[at].load(Ordering::Relaxed),
                        w[at + 1].load(Ordering::Relaxed),
                        w[at + 2].load(Ordering::Relaxed),
                    )
                })
            };
            Top { bid: level(0, h.bids), ask: level(1, h.asks), header: h }
        })
    }

    /// Copies the best `bids.len()` bids and `asks.len()` asks (at most [`Reader::levels`] each)
    /// into the caller's buffers, best first, and returns the header; `header.bids` and
    /// `header.asks` say how many levels were filled. No allocation.
    pub fn copy_into(&self, bids: &mut [Quote], asks: &mut [Quote]) -> Header {
        let cap = self.shared.levels;
        self.read(|w| {
            let mut h = Self::header(w);
            for (k, out) in [&mut *bids, &mut *asks].into_iter().enumerate() {
                let n = if k == 0 { &mut h.bids } else { &mut h.asks };
                *n = (*n).min(out.len()).min(cap);
                let base = HEADER_WORDS + k * cap * LEVEL_WORDS;
                for (i, q) in out.iter_mut().take(*n).enumerate() {
                    let at = base + i * LEVEL_WORDS;
                    *q = quote(
                        w[at].load(Ordering::Relaxed),
                        w[at + 1].load(Ordering::Relaxed),
                        w[at + 2].load(Ordering::Relaxed),
                    );
                }
            }
            h
        })
    }

    /// A fixed-capacity copy of the top `N` levels per side (at most [`Reader::levels`]).
    #[must_use]
    pub fn snapshot<const N: usize>(&self) -> Snapshot<N> {
        let zero = Quote { price: Decimal64 { mantissa: 0, scale: 0 }, qty: Decimal64 { mantissa: 0, scale: 0 } };
        let mut s = Snapshot { bids: [zero; N], asks: [zero; N], header: Header::EMPTY };
        s.header = self.copy_into(&mut s.bids, &mut s.asks);
        s
    }
}

impl Header {
    const EMPTY: Header = Header {
        version: 0,
        status: Status::Empty,
        checksum: 0,
        proof: Proof::None,
        exchange_time_ns: 0,
        received_ns: 0,
        bids: 0,
        asks: 0,
    };
}

/// A consistent copy of the top `N` levels per side, held by value.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<const N: usize> {
    bids: [Quote; N],
    asks: [Quote; N],
    /// Version, status, checksum, times and level counts of the copy.
    pub header: Header,
}

impl<const N: usize> Snapshot<N> {
    /// The bids, best first.
    #[must_use]
    pub fn bids(&self) -> &[Quote] {
        &self.bids[..self.header.bids]
    }

    /// The asks, best first.
    #[must_use]
    pub fn asks(&self) -> &[Quote] {
        &self.asks[..self.header.asks]
    }

    /// Kraken's checksum of these levels, computed from the copy (for checking a copy end to end).
    #[must_use]
    pub fn checksum(&self) -> u32 {
        let mut buf = [0u8; 20 * DIGITS];
        let mut n = 0;
        for q in self.asks().iter().take(10).chain(self.bids().iter().take(10)) {
            let mut digits = [0u8; DIGITS];
            let mut len = 0;
            for v in [q.price.mantissa, q.qty.mantissa] {
                len += write_digits(&mut digits, usize::from(len), v.unsigned_abs());
            }
            buf[n..n + usize::from(len)].copy_from_slice(&digits[..usize::from(len)]);
            n += usize::from(len);
        }
        crc32fast::hash(&buf[..n])
    }
}
