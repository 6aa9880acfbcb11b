//! Offline verification of captured sessions: frames in, books and counts out.
//!
//! [`Replay`] is what `plumb replay` runs, and what the vector tests run: it parses each frame,
//! keeps one [`Book`] per symbol, applies book messages in order, and verifies every checksum the
//! exchange sent. It does no I/O; feed it frames.

use std::collections::HashMap;

use plumb_book::kraken::Outcome;
use plumb_book::{Book, Depth, Precision};
use plumb_wire::Parser;
use plumb_wire::kraken::{Api, Kind, Message};

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
    /// Sequence gaps seen (Kraken has no sequence numbers: always 0 there).
    pub sequence_gaps: u64,
    /// Book updates not verified: skipped while the book was invalid or had no snapshot, or
    /// applied without a checksum.
    pub unverified_updates: u64,
    /// Non-book frames (heartbeats, acks, status, instrument, other channels).
    pub ignored: u64,
    /// Frames that could not be parsed or applied.
    pub errors: u64,
}

/// What one frame was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// A book message; the outcome of each symbol's entry is in [`Replay::outcomes`].
    Book,
    /// A frame that is not a book message.
    Ignored,
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
}

/// Replays frames of one capture.
#[derive(Debug)]
pub struct Replay {
    parser: Parser,
    default_depth: Depth,
    only: Option<Api>,
    slots: Vec<Slot>,
    index: [HashMap<String, usize>; 2],
    instrument_precision: HashMap<String, Precision>,
    given_precision: HashMap<String, Precision>,
    acked_depth: HashMap<String, Depth>,
    outcomes: Vec<Outcome>,
    counts: Counts,
}

fn api_index(api: Api) -> usize {
    match api {
        Api::V1 => 0,
        Api::V2 => 1,
    }
}

impl Replay {
    /// A replay of books subscribed at `depth` (v1 frames state their own depth, which wins).
    /// `only` restricts it to one API: frames of the other count as errors.
    #[must_use]
    pub fn new(depth: Depth, only: Option<Api>) -> Self {
        Self {
            parser: Parser::new(),
            default_depth: depth,
            only,
            slots: Vec::new(),
            index: [HashMap::new(), HashMap::new()],
            instrument_precision: HashMap::new(),
            given_precision: HashMap::new(),
            acked_depth: HashMap::new(),
            outcomes: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Sets the v2 precision of a symbol, used unless the capture's `instrument` frames say
    /// otherwise.
    pub fn set_precision(&mut self, symbol: &str, precision: Precision) {
        self.given_precision.insert(symbol.to_owned(), precision);
    }

    /// The counts so far.
    #[must_use]
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The books, in order of first appearance.
    #[must_use]
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The book of a symbol.
    #[must_use]
    pub fn book(&self, api: Api, symbol: &str) -> Option<&Book> {
        self.index[api_index(api)].get(symbol).map(|&i| &self.slots[i].book)
    }

    /// The outcome of each entry of the last book frame, in order.
    #[must_use]
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// Feeds one line of a capture: a frame, optionally prefixed by a receive timestamp in integer
    /// nanoseconds and a TAB. Blank lines return `None`.
    pub fn line(&mut self, line: &[u8]) -> Option<FrameKind> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let frame = match line.iter().position(|&c| c == b'\t') {
            Some(tab) if tab > 0 && line[..tab].iter().all(u8::is_ascii_digit) => &line[tab + 1..],
            _ => line,
        };
        if frame.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(self.frame(frame))
    }

    /// Feeds one frame.
    pub fn frame(&mut self, frame: &[u8]) -> FrameKind {
        self.counts.frames += 1;
        self.outcomes.clear();
        let kind = self.frame_inner(frame);
        match &kind {
            FrameKind::Book => self.counts.book_messages += 1,
            FrameKind::Ignored => self.counts.ignored += 1,
            FrameKind::Error(_) => self.counts.errors += 1,
        }
        kind
    }

    fn frame_inner(&mut self, frame: &[u8]) -> FrameKind {
        let msg = match self.parser.parse(frame) {
            Ok(m) => m,
            Err(e) => return FrameKind::Error(e.to_string()),
        };
        let api = match msg {
            Message::Book(b) => b.api,
            Message::Heartbeat(api) | Message::Other { api, .. } => api,
            Message::Status(s) => s.api,
            Message::Response(r) => r.api,
            Message::Instrument(_) => Api::V2,
        };
        if self.only.is_some_and(|only| only != api) {
            return FrameKind::Error(format!("a Kraken {api:?} frame in a capture replayed as another API"));
        }
        match msg {
            Message::Book(book) => {
                let depth = match book.depth.map(|d| Depth::try_from(u32::from(d))).transpose() {
                    Ok(d) => d,
                    Err(e) => return FrameKind::Error(e.to_string()),
                };
                let mut failed = None;
                for entry in book.entries() {
                    let symbol = entry.symbol();
                    let depth = depth.or_else(|| self.acked_depth.get(symbol).copied()).unwrap_or(self.default_depth);
                    let precision = match api {
                        Api::V1 => None,
                        Api::V2 => {
                            self.instrument_precision.get(symbol).or_else(|| self.given_precision.get(symbol)).copied()
                        }
                    };
                    let index = &mut self.index[api_index(api)];
                    let i = if let Some(&i) = index.get(symbol) {
                        i
                    } else {
                        self.slots.push(Slot { api, symbol: symbol.to_owned(), book: Book::new(depth, precision) });
                        index.insert(symbol.to_owned(), self.slots.len() - 1);
                        self.slots.len() - 1
                    };
                    let b = &mut self.slots[i].book;
                    if book.kind == Kind::Snapshot && (b.depth() != depth || b.precision() != precision) {
                        *b = Book::new(depth, precision);
                    }
                    match b.apply_kraken(book.kind, &entry) {
                        Ok(outcome) => {
                            match outcome {
                                Outcome::Verified(_) => self.counts.checksums_verified += 1,
                                Outcome::Mismatch { .. } => self.counts.checksum_mismatches += 1,
                                Outcome::Skipped => self.counts.unverified_updates += 1,
                                Outcome::Unchecked if book.kind == Kind::Update => self.counts.unverified_updates += 1,
                                Outcome::Unchecked => {}
                            }
                            self.outcomes.push(outcome);
                        }
                        Err(e) => failed = Some(format!("{symbol}: {e}")),
                    }
                }
                match failed {
                    Some(e) => FrameKind::Error(e),
                    None => FrameKind::Book,
                }
            }
            Message::Instrument(inst) => {
                for pair in inst.pairs() {
                    let p = Precision { price: pair.price_precision, qty: pair.qty_precision };
                    self.instrument_precision.insert(pair.symbol.to_owned(), p);
                    if let Some(&i) = self.index[api_index(Api::V2)].get(pair.symbol) {
                        self.slots[i].book.set_precision(p);
                    }
                }
                FrameKind::Ignored
            }
            Message::Response(r) => {
                if let (Some(sym), Some(d), true) = (r.symbol, r.depth, r.success)
                    && let Ok(d) = Depth::try_from(u32::from(d))
                    && self.acked_depth.get(sym) != Some(&d)
                {
                    self.acked_depth.insert(sym.to_owned(), d);
                }
                FrameKind::Ignored
            }
            Message::Heartbeat(_) | Message::Status(_) | Message::Other { .. } => FrameKind::Ignored,
        }
    }
}
