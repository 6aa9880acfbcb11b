//! Offline verification of captured sessions: frames in, books and counts out.
//!
//! [`Replay`] is what `plumb replay` runs, and what the vector tests run: it parses each frame,
//! keeps one [`Book`] per symbol, applies book messages in order through the exchange's rule, and
//! counts every verdict (each checksum the exchange sent, each sequence gap). It does no I/O; feed
//! it frames. It reads frames through the same exchange module as the live session
//! ([`Exchange::dispatch`]) and applies them through the same rule ([`Book::apply`]), and its
//! verdicts are counted the same way ([`Tally`]), so a capture replays exactly as it was kept live.

use std::collections::HashMap as StdMap;
use std::hash::{BuildHasherDefault, Hasher};

use plumb_book::kraken::Outcome;
use plumb_book::{Book, Depth, Precision, Tally, Verdict};
use plumb_feed::exchange::{Api, BookMessage, Exchange, Handler, Kraken, Reply};
use plumb_wire::kraken::Api as KrakenApi;
use plumb_wire::{Kind, Parser};

/// The counts `plumb replay --json` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames fed (blank lines are not frames).
    pub frames: u64,
    /// Book frames that parsed and applied (a frame with several symbols counts once).
    pub book_messages: u64,
    /// Checksums that matched.
    pub checksums_verified: u64,
    /// Checksums that did not match.
    pub checksum_mismatches: u64,
    /// Book messages applied in an unbroken sequence since a snapshot (exchanges that number
    /// their messages).
    pub sequence_verified: u64,
    /// Sequence gaps seen (Kraken has no sequence numbers: always 0 there).
    pub sequence_gaps: u64,
    /// Book updates not verified: skipped while the book was invalid or had no snapshot (the one
    /// that revealed a gap included), or applied without a checksum.
    pub unverified_updates: u64,
    /// Non-book frames (heartbeats, acks, status, instrument, other channels), and stale or
    /// duplicate book messages.
    pub ignored: u64,
    /// Frames that could not be parsed or applied.
    pub errors: u64,
}

/// What one frame was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// A book message; the outcome of each symbol's entry is in [`Replay::outcomes`].
    Book,
    /// A frame that is not a book message, or a stale or duplicate one.
    Ignored,
    /// A book message kept for the next snapshot line (exchanges with no snapshot on their
    /// stream, Binance): counted once its fate is known (dropped as older than the snapshot:
    /// ignored; bridged or chained: a book message; still kept when the capture ends: a book
    /// message and an unverified update).
    Buffered,
    /// A frame that could not be parsed or applied.
    Error(String),
}

/// One symbol's book as the replay holds it.
#[derive(Debug)]
pub struct Slot {
    /// The API the symbol's frames came from.
    pub api: Api,
    /// The symbol as the wire spells it.
    pub symbol: String,
    /// The book.
    pub book: Book,
    /// Updates that came while the book waited for a snapshot, kept (as the live session keeps
    /// them) for a REST snapshot later in the capture to be bridged to.
    pending: Vec<(Vec<u8>, Option<plumb_wire::Sequence>)>,
}

/// A map keyed by symbol, hashed with [`SymbolHash`].
type HashMap<K, V> = StdMap<K, V, BuildHasherDefault<SymbolHash>>;

/// A multiply-rotate hash of a few words, for the per-frame symbol lookups: a symbol is a handful
/// of bytes, and `SipHash`'s setup cost more than the rest of the lookup. A capture is the user's
/// own file, not an adversary choosing keys; colliding symbols would only make lookups slower.
#[derive(Debug, Default, Clone, Copy)]
struct SymbolHash(u64);

impl Hasher for SymbolHash {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        // The last bytes folded one by one: a copy of a variable length would call memcpy.
        let rest = chunks.remainder();
        let tail = rest.iter().rev().fold(rest.len() as u64, |t, &b| (t << 8) | u64::from(b));
        self.0 = (self.0.rotate_left(5) ^ tail).wrapping_mul(K);
    }

    #[inline]
    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The books' index by symbol. A symbol of at most 16 bytes (every exchange's in practice) is
/// looked up by its bytes read as two words and its length, so a lookup is a few loads, one
/// multiplication and a compare of words, instead of hashing the bytes one by one and comparing
/// them with `memcmp`; longer symbols are kept by their text.
#[derive(Debug, Default)]
struct SymbolIndex {
    short: HashMap<ShortSymbol, usize>,
    long: HashMap<String, usize>,
}

/// A symbol of at most 16 bytes, exactly: its first and last eight bytes (overlapping when it is
/// shorter than 16; four and four under eight, folded into one word under four) and its length.
/// Given the length, the two words determine every byte, so equal keys mean equal symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShortSymbol {
    first: u64,
    last: u64,
    len: u8,
}

impl ShortSymbol {
    #[inline]
    fn of(symbol: &str) -> Option<Self> {
        let b = symbol.as_bytes();
        let (first, last) = if let (Some(f), Some(l)) = (b.first_chunk::<8>(), b.last_chunk::<8>()) {
            if b.len() > 16 {
                return None;
            }
            (u64::from_le_bytes(*f), u64::from_le_bytes(*l))
        } else if let (Some(f), Some(l)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
            (u64::from(u32::from_le_bytes(*f)), u64::from(u32::from_le_bytes(*l)))
        } else {
            (b.iter().fold(0, |a, &c| (a << 8) | u64::from(c)), 0)
        };
        Some(Self { first, last, len: u8::try_from(b.len()).ok()? })
    }
}

impl std::hash::Hash for ShortSymbol {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.first ^ self.last.rotate_left(29) ^ u64::from(self.len));
    }
}

impl SymbolIndex {
    #[inline]
    fn get(&self, symbol: &str) -> Option<usize> {
        match ShortSymbol::of(symbol) {
            Some(k) => self.short.get(&k).copied(),
            None => self.get_long(symbol),
        }
    }

    /// Kept out of line, so that the usual lookup saves no registers for it.
    #[inline(never)]
    fn get_long(&self, symbol: &str) -> Option<usize> {
        self.long.get(symbol).copied()
    }

    fn insert(&mut self, symbol: &str, i: usize) {
        match ShortSymbol::of(symbol) {
            Some(k) => self.short.insert(k, i),
            None => self.long.insert(symbol.to_owned(), i),
        };
    }
}

/// The most updates a book keeps for a REST bridge (the live session's default).
const MAX_PENDING: usize = 2048;

/// Replays frames of one capture of exchange `E`.
#[derive(Debug)]
pub struct Replay<E: Exchange = Kraken> {
    parser: Parser,
    state: State<E>,
}

#[derive(Debug)]
struct State<E: Exchange> {
    exchange: E,
    default_depth: Depth,
    only: Option<Api>,
    slots: Vec<Slot>,
    index: [SymbolIndex; 2],
    instrument_precision: HashMap<String, Precision>,
    given_precision: HashMap<String, Precision>,
    acked_depth: HashMap<String, Depth>,
    outcomes: Vec<Outcome>,
    tally: Tally,
    counts: Counts,
    /// The last number of the connection's counter, on exchanges that number every message of a
    /// connection (Coinbase).
    counter: Option<u64>,
}

fn api_index(api: Api) -> usize {
    match api {
        Api::Legacy => 0,
        Api::Main => 1,
    }
}

impl Replay<Kraken> {
    /// A Kraken replay of books subscribed at `depth` (v1 frames state their own depth, which
    /// wins). `only` restricts it to one API: frames of the other count as errors.
    #[must_use]
    pub fn new(depth: Depth, only: Option<KrakenApi>) -> Self {
        let mut r = Self::with_exchange(Kraken, depth);
        r.state.only = only.map(Api::from);
        r
    }
}

impl<E: Exchange> Replay<E> {
    /// A replay of `exchange`'s frames, books subscribed at `depth` unless the frames state
    /// theirs (Kraken v1 channel names, Bybit topics).
    #[must_use]
    pub fn with_exchange(exchange: E, depth: Depth) -> Self {
        Self {
            parser: Parser::new(),
            state: State {
                exchange,
                default_depth: depth,
                only: None,
                slots: Vec::new(),
                index: [SymbolIndex::default(), SymbolIndex::default()],
                instrument_precision: HashMap::default(),
                given_precision: HashMap::default(),
                acked_depth: HashMap::default(),
                outcomes: Vec::new(),
                tally: Tally::default(),
                counts: Counts::default(),
                counter: None,
            },
        }
    }

    /// Sets the Kraken v2 precision of a symbol, used unless the capture's `instrument` frames
    /// say otherwise.
    pub fn set_precision(&mut self, symbol: &str, precision: Precision) {
        self.state.given_precision.insert(symbol.to_owned(), precision);
    }

    /// The counts so far.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let mut c = self.state.counts;
        let t = &self.state.tally;
        c.checksums_verified = t.checksums_verified;
        c.checksum_mismatches = t.checksum_mismatches;
        c.sequence_verified = t.sequence_verified;
        c.sequence_gaps = t.sequence_gaps;
        c.unverified_updates = t.unverified_updates;
        if !E::STREAM_SNAPSHOT {
            // Events still waiting for a snapshot line when the capture ends.
            let waiting: u64 = self.state.slots.iter().map(|s| s.pending.len() as u64).sum();
            c.book_messages += waiting;
            c.unverified_updates += waiting;
        }
        c
    }

    /// The books, in order of first appearance.
    #[must_use]
    pub fn slots(&self) -> &[Slot] {
        &self.state.slots
    }

    /// The book of a symbol.
    #[must_use]
    pub fn book(&self, api: impl Into<Api>, symbol: &str) -> Option<&Book> {
        self.state.index[api_index(api.into())].get(symbol).map(|i| &self.state.slots[i].book)
    }

    /// The outcome of each entry of the last book frame, in order.
    #[must_use]
    pub fn outcomes(&self) -> &[Outcome] {
        &self.state.outcomes
    }

    /// Feeds one line of a capture: a frame, or a REST answer the feed fetched (`GET <url>`, a
    /// TAB, the body), either optionally prefixed by a receive timestamp in integer nanoseconds
    /// and a TAB. Blank lines return `None`.
    pub fn line(&mut self, line: &[u8]) -> Option<FrameKind> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // A receive time is digits then a TAB; only those leading bytes are looked at.
        let frame = match line.iter().position(|c| !c.is_ascii_digit()) {
            Some(tab) if tab > 0 && line[tab] == b'\t' => &line[tab + 1..],
            _ => line,
        };
        if frame.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if let Some(rest) = frame.strip_prefix(b"GET ") {
            let tab = rest.iter().position(|&c| c == b'\t').unwrap_or(rest.len());
            let url = String::from_utf8_lossy(&rest[..tab]).into_owned();
            return Some(self.fetched(&url, rest.get(tab + 1..).unwrap_or_default()));
        }
        Some(self.frame(frame))
    }

    /// Feeds a REST book snapshot the feed fetched from `url`. It is bridged to the updates the
    /// book kept while it waited, as the live session does ([`Rule::bridge_start`]); one that
    /// nothing bridges (the live session fetched it again) is ignored.
    ///
    /// [`Rule::bridge_start`]: plumb_book::Rule::bridge_start
    pub fn fetched(&mut self, url: &str, body: &[u8]) -> FrameKind {
        self.state.counts.frames += 1;
        self.state.outcomes.clear();
        let kind = self.bridge(url, body);
        let c = &mut self.state.counts;
        match &kind {
            FrameKind::Book => c.book_messages += 1,
            FrameKind::Ignored => c.ignored += 1,
            FrameKind::Error(_) => c.errors += 1,
            FrameKind::Buffered => {}
        }
        kind
    }

    fn bridge(&mut self, url: &str, body: &[u8]) -> FrameKind {
        use plumb_book::Rule as _;
        let Some(symbol) = E::fetched_symbol(url) else {
            return FrameKind::Error(format!("a REST answer {} captures do not have: {url}", E::NAME));
        };
        let s = &mut self.state;
        let index = &mut s.index[api_index(Api::Main)];
        let i = if let Some(i) = index.get(symbol) {
            i
        } else {
            let book = Book::for_rule::<E::Rule>(s.default_depth, None);
            s.slots.push(Slot { api: Api::Main, symbol: symbol.to_owned(), book, pending: Vec::new() });
            index.insert(symbol, s.slots.len() - 1);
            s.slots.len() - 1
        };
        let frame = match self.parser.parse_snapshot::<E::Dialect>(body) {
            Ok(f) => f,
            Err(e) => return FrameKind::Error(format!("{symbol}: REST snapshot: {e}")),
        };
        let slot = &mut s.slots[i];
        let start = match frame.sequence {
            Some(at) => E::Rule::bridge_start(at.last, slot.pending.iter().map(|(_, q)| *q)),
            None => Some(0),
        };
        let Some(start) = start else {
            // Older than the events kept (the REST snapshot stood behind the stream): the live
            // session fetched it again, so the kept events wait for the next snapshot line. Not a
            // gap in the stream.
            return FrameKind::Ignored;
        };
        match slot.book.apply_fetched::<E::Rule>(&frame) {
            Ok(verdict) => {
                s.tally.count(verdict, Kind::Snapshot);
                s.outcomes.push(verdict);
            }
            Err(e) => return FrameKind::Error(format!("{symbol}: {e}")),
        }
        let pending = std::mem::take(&mut slot.pending);
        if E::STREAM_SNAPSHOT {
            for (bytes, _) in pending.iter().skip(start) {
                let _ = self.apply_frame(bytes);
            }
            return FrameKind::Book;
        }
        // Each kept event counted now that its fate is known.
        self.state.counts.ignored += start as u64;
        for (bytes, _) in pending.iter().skip(start) {
            let kind = self.apply_frame(bytes);
            let c = &mut self.state.counts;
            match kind {
                FrameKind::Book => c.book_messages += 1,
                FrameKind::Ignored => c.ignored += 1,
                FrameKind::Error(_) => c.errors += 1,
                FrameKind::Buffered => {}
            }
        }
        FrameKind::Book
    }

    /// Feeds one frame.
    pub fn frame(&mut self, frame: &[u8]) -> FrameKind {
        self.state.counts.frames += 1;
        let kind = self.apply_frame(frame);
        let s = &mut self.state;
        match &kind {
            FrameKind::Book => s.counts.book_messages += 1,
            FrameKind::Ignored => s.counts.ignored += 1,
            FrameKind::Error(_) => s.counts.errors += 1,
            FrameKind::Buffered => {}
        }
        kind
    }

    /// Parses and applies one frame; the caller counts it.
    fn apply_frame(&mut self, frame: &[u8]) -> FrameKind {
        let s = &mut self.state;
        s.outcomes.clear();
        match self.parser.parse_with::<E::Dialect>(frame, None) {
            Ok((msg, _)) => {
                let mut v = Visit { s: &mut *s, error: None, book: false, applied: false, buffered: false, raw: frame };
                E::dispatch(&msg, &mut v);
                match (v.error, v.book, v.applied, v.buffered) {
                    (Some(e), _, _, _) => FrameKind::Error(e),
                    (None, _, _, true) => FrameKind::Buffered,
                    (None, true, true, _) => FrameKind::Book,
                    _ => FrameKind::Ignored,
                }
            }
            Err(e) => FrameKind::Error(e.to_string()),
        }
    }
}

/// One frame's visit: what the dispatcher reported.
struct Visit<'s, E: Exchange> {
    s: &'s mut State<E>,
    error: Option<String>,
    /// A book message was seen.
    book: bool,
    /// At least one entry was not a stale or duplicate message.
    applied: bool,
    /// The message was kept for a snapshot line still to come (no snapshot on the stream).
    buffered: bool,
    /// The frame's bytes, kept for a REST bridge when its book waits for a snapshot.
    raw: &'s [u8],
}

impl<E: Exchange> Visit<'_, E> {
    fn check_api(&mut self, api: Api) -> bool {
        if self.s.only.is_some_and(|only| only != api) {
            let name = if api == Api::Legacy { "V1" } else { "V2" };
            self.error = Some(format!("a {} {name} frame in a capture replayed as another API", E::NAME));
            return false;
        }
        true
    }
}

impl<E: Exchange> Handler for Visit<'_, E> {
    /// The connection's counter (Coinbase), as the live session checks it: the next number goes
    /// on; a lower one is a stale or duplicate message, ignored whole, except 0, which is the
    /// first message of a new connection (the recorder reconnected); a skip is a lost message
    /// that may have been any book's, so every book becomes invalid until its own next snapshot.
    fn counter(&mut self, n: u64) -> bool {
        let s = &mut *self.s;
        match s.counter {
            Some(last) if n <= last && n != 0 => false,
            Some(last) if n > last.saturating_add(1) => {
                s.counter = Some(n);
                s.tally.sequence_gaps += 1;
                let why = plumb_book::Invalid::SequenceGap { expected: last + 1, got: n };
                for slot in &mut s.slots {
                    slot.book.invalidate(why);
                }
                true
            }
            _ => {
                s.counter = Some(n);
                true
            }
        }
    }

    fn book(&mut self, msg: BookMessage<'_>) {
        if !self.check_api(msg.api) {
            return;
        }
        self.book = true;
        let s = &mut *self.s;
        let frame = msg.frame;
        let symbol = frame.symbol;
        let stated = match msg.depth.map(|d| Depth::new(u32::from(d))).transpose() {
            Ok(d) => d,
            Err(e) => {
                self.error = Some(e.to_string());
                return;
            }
        };
        if let Some(d) = stated
            && let Err(e) = s.exchange.check_depth(d)
        {
            self.error = Some(e.to_string());
            return;
        }
        // What a new book is made with; a snapshot also checks them, an update does not.
        let depth_of = |s: &State<E>| stated.or_else(|| s.acked_depth.get(symbol).copied()).unwrap_or(s.default_depth);
        let precision_of = |s: &State<E>| match msg.api {
            Api::Legacy => None,
            Api::Main => s.instrument_precision.get(symbol).or_else(|| s.given_precision.get(symbol)).copied(),
        };
        let i = if let Some(i) = s.index[api_index(msg.api)].get(symbol) {
            i
        } else {
            let book = Book::for_rule::<E::Rule>(depth_of(s), precision_of(s));
            s.slots.push(Slot { api: msg.api, symbol: symbol.to_owned(), book, pending: Vec::new() });
            s.index[api_index(msg.api)].insert(symbol, s.slots.len() - 1);
            s.slots.len() - 1
        };
        if frame.kind == Kind::Snapshot {
            let (depth, precision) = (depth_of(s), precision_of(s));
            let slot = &mut s.slots[i];
            if slot.book.depth() != depth || slot.book.precision() != precision {
                slot.book = Book::for_rule::<E::Rule>(depth, precision);
            }
            slot.pending.clear();
        }
        let slot = &mut s.slots[i];
        let b = &mut slot.book;
        match b.apply::<E::Rule>(&frame) {
            Ok(verdict)
                if !E::STREAM_SNAPSHOT
                    && matches!(verdict, Verdict::Skipped | Verdict::Gap { .. } | Verdict::Behind { .. }) =>
            {
                // No snapshot on the stream (Binance): the event waits for the next snapshot
                // line, the one that showed a gap or a snapshot behind the stream included, and is
                // counted when its fate is known. A full buffer starts over rather than grow (its
                // events dropped). A snapshot behind the stream is no gap: the feed fetched again,
                // as Binance's procedure says.
                if matches!(verdict, Verdict::Gap { .. }) {
                    s.tally.sequence_gaps += 1;
                }
                if slot.pending.len() >= MAX_PENDING {
                    s.counts.ignored += slot.pending.len() as u64;
                    slot.pending.clear();
                }
                slot.pending.push((self.raw.to_vec(), frame.sequence));
                self.buffered = true;
                s.outcomes.push(verdict);
            }
            Ok(verdict) => {
                if E::FETCHES_SNAPSHOT && verdict == Verdict::Skipped && slot.pending.len() < MAX_PENDING {
                    slot.pending.push((self.raw.to_vec(), frame.sequence));
                }
                s.tally.count(verdict, frame.kind);
                if !matches!(verdict, Verdict::Stale { .. }) {
                    self.applied = true;
                }
                s.outcomes.push(verdict);
            }
            Err(e) => self.error = Some(format!("{symbol}: {e}")),
        }
    }

    fn precision(&mut self, symbol: &str, p: Precision) {
        let s = &mut *self.s;
        s.instrument_precision.insert(symbol.to_owned(), p);
        if let Some(i) = s.index[api_index(Api::Main)].get(symbol) {
            s.slots[i].book.set_precision(p);
        }
    }

    fn ready(&mut self) {}

    fn reply(&mut self, r: Reply<'_>) {
        if !self.check_api(r.api) {
            return;
        }
        let s = &mut *self.s;
        if let (Some(sym), Some(d), true) = (r.symbol, r.depth, r.success)
            && let Ok(d) = Depth::new(u32::from(d))
            && s.exchange.check_depth(d).is_ok()
            && s.acked_depth.get(sym) != Some(&d)
        {
            s.acked_depth.insert(sym.to_owned(), d);
        }
    }

    fn other(&mut self, api: Api) {
        self.check_api(api);
    }
}

#[cfg(test)]
mod tests {
    use super::SymbolIndex;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// The index finds exactly what a map keyed by the text finds, for symbols of every
        /// length on both sides of each word boundary (short alphabet: near collisions).
        #[test]
        fn symbol_index_is_a_map_by_text(
            kept in proptest::collection::vec("[AB/]{0,20}", 0..40),
            asked in proptest::collection::vec("[AB/]{0,20}", 0..40),
        ) {
            let (mut index, mut model) = (SymbolIndex::default(), HashMap::new());
            for (i, s) in kept.iter().enumerate() {
                index.insert(s, i);
                model.insert(s.clone(), i);
            }
            for s in kept.iter().chain(&asked) {
                prop_assert_eq!(index.get(s), model.get(s).copied(), "{:?}", s);
            }
        }
    }

    #[test]
    fn symbols_that_share_their_first_and_last_words_are_told_apart() {
        let mut index = SymbolIndex::default();
        let symbols = [
            "ABCDEFGH",
            "ABCDEFGHABCDEFGH",
            "ABCDEFGHXABCDEFGH",
            "ABCDEFGHYABCDEFGH",
            "ABCDABCD",
            "ABCDBCD",
            "ABCD",
            "ABC",
            "AB",
            "A",
            "",
        ];
        for (i, s) in symbols.iter().enumerate() {
            index.insert(s, i);
        }
        for (i, s) in symbols.iter().enumerate() {
            assert_eq!(index.get(s), Some(i), "{s}");
        }
        assert_eq!(index.get("ABCDEFGHABCDEFG"), None);
        assert_eq!(index.get("BCD"), None);
    }
}
