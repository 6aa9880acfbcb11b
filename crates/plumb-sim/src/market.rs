//! The simulated market, with no I/O: instruments, full-depth books moved by a random order flow,
//! and the Kraken v2 frames a subscriber of a given depth would receive, with real checksums.
//!
//! The checksum here is written independently of `plumb-book`'s (decimal strings built and
//! trimmed the slow way, as Kraken's documentation describes), so that the simulator checks the
//! client rather than agreeing with it by construction.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A small deterministic random source (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// One instrument of the simulated exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// Kraken v2 symbol, such as `BTC/USD`.
    pub symbol: String,
    /// Price decimals.
    pub price_precision: u8,
    /// Quantity decimals.
    pub qty_precision: u8,
    /// The starting mid price, in price units (mantissa at `price_precision`).
    pub mid: u64,
    /// A typical level quantity, in quantity units (mantissa at `qty_precision`).
    pub lot: u64,
}

impl Instrument {
    fn new(symbol: &str, price_precision: u8, qty_precision: u8, mid: u64, lot: u64) -> Self {
        Self { symbol: symbol.to_owned(), price_precision, qty_precision, mid, lot }
    }

    /// The default instruments: two majors, mid-priced pairs, and low-priced pairs with 9 price
    /// decimals and quantities in the hundreds of millions.
    #[must_use]
    pub fn defaults() -> Vec<Instrument> {
        vec![
            Self::new("BTC/USD", 1, 8, 650_000, 25_000_000),
            Self::new("ETH/USD", 2, 8, 320_000, 150_000_000),
            Self::new("SHIB/USD", 9, 2, 12_345, 2_500_000_000_000),
            Self::new("PEPE/USD", 9, 8, 8_765, 40_000_000_000_000_000),
            Self::new("XRP/USD", 5, 8, 52_000, 90_000_000_000),
            Self::new("DOGE/USD", 7, 8, 1_250_000, 300_000_000_000),
            Self::new("SOL/USD", 2, 8, 14_500, 2_000_000_000),
            Self::new("ADA/USD", 6, 8, 450_000, 500_000_000_000),
        ]
    }
}

impl Instrument {
    /// `n` made-up instruments spelled as `style` spells them (`"S001/USD"`, `"S001USDT"`,
    /// `"S001-USDT"`, `"S001-USD"` for Kraken, Bybit and Binance, OKX, Coinbase), for tests of
    /// many books: each with 2 price decimals and 4 quantity decimals, around a price of its own.
    #[must_use]
    pub fn synthetic(style: Style, n: usize) -> Vec<Instrument> {
        (0..n)
            .map(|i| {
                let name = match style {
                    Style::Kraken => format!("S{i:03}/USD"),
                    Style::Usdt => format!("S{i:03}USDT"),
                    Style::DashUsdt => format!("S{i:03}-USDT"),
                    Style::DashUsd => format!("S{i:03}-USD"),
                };
                Self::new(&name, 2, 4, 10_000 + 37 * u64::try_from(i).unwrap_or(0), 20_000)
            })
            .collect()
    }
}

/// How an exchange spells a symbol, for [`Instrument::synthetic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `BASE/USD` (Kraken).
    Kraken,
    /// `BASEUSDT` (Bybit, Binance).
    Usdt,
    /// `BASE-USDT` (OKX).
    DashUsdt,
    /// `BASE-USD` (Coinbase).
    DashUsd,
}

impl Instrument {
    /// The default Bybit spot instruments: majors with 2 price decimals, and low-priced pairs
    /// with up to 8.
    #[must_use]
    pub fn bybit_defaults() -> Vec<Instrument> {
        vec![
            Self::new("BTCUSDT", 2, 6, 6_500_000, 250_000),
            Self::new("ETHUSDT", 2, 5, 320_000, 1_500_000),
            Self::new("SOLUSDT", 2, 3, 14_500, 20_000),
            Self::new("XRPUSDT", 4, 2, 5_200, 90_000),
            Self::new("DOGEUSDT", 5, 1, 12_500, 300_000),
            Self::new("PEPEUSDT", 8, 0, 1_234, 40_000_000),
        ]
    }
}

impl Instrument {
    /// The default Binance symbols (spot and USD-M alike): majors with 2 price decimals and a
    /// low-priced pair with 8.
    #[must_use]
    pub fn binance_defaults() -> Vec<Instrument> {
        vec![
            Self::new("BTCUSDT", 2, 5, 6_500_000, 250_000),
            Self::new("ETHUSDT", 2, 4, 320_000, 150_000),
            Self::new("BNBUSDT", 2, 3, 60_000, 20_000),
            Self::new("PEPEUSDT", 8, 0, 1_234, 40_000_000),
        ]
    }
}

impl Instrument {
    /// The default Coinbase products: BTC-USD and ETH-USD with cent prices and 8-decimal sizes,
    /// and a low-priced one.
    #[must_use]
    pub fn coinbase_defaults() -> Vec<Instrument> {
        vec![
            Self::new("BTC-USD", 2, 8, 6_500_000, 2_500_000),
            Self::new("ETH-USD", 2, 8, 320_000, 150_000_000),
            Self::new("SOL-USD", 2, 8, 14_500, 2_000_000_000),
            Self::new("DOGE-USD", 5, 1, 12_500, 300_000),
        ]
    }
}

impl Instrument {
    /// The default OKX instruments, of several types on one connection: spot, a perpetual swap,
    /// and a low-priced spot pair.
    #[must_use]
    pub fn okx_defaults() -> Vec<Instrument> {
        vec![
            Self::new("BTC-USDT", 1, 8, 650_000, 2_500_000),
            Self::new("ETH-USDT", 2, 6, 320_000, 1_500_000),
            Self::new("BTC-USDT-SWAP", 1, 2, 650_100, 2_000),
            Self::new("SOL-USDT", 2, 4, 14_500, 200_000),
            Self::new("PEPE-USDT", 9, 0, 8_765, 40_000_000),
        ]
    }
}

/// One side's levels: price units to quantity units.
type Side = BTreeMap<u64, u64>;

/// A full-depth book of one instrument.
#[derive(Debug, Clone)]
pub struct SimBook {
    /// The instrument.
    pub instrument: Instrument,
    bids: Side,
    asks: Side,
    /// The most levels a side keeps.
    cap: usize,
}

/// One level change as a subscriber sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// True for bids.
    pub bid: bool,
    /// Price units.
    pub price: u64,
    /// Quantity units; 0 deletes the level.
    pub qty: u64,
}

/// The top `depth` levels of each side, best first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Bids, best (highest) first.
    pub bids: Vec<(u64, u64)>,
    /// Asks, best (lowest) first.
    pub asks: Vec<(u64, u64)>,
}

impl SimBook {
    /// A book of 60 levels a side around the instrument's mid price.
    #[must_use]
    pub fn new(instrument: Instrument, rng: &mut Rng) -> Self {
        let mut b = Self { instrument, bids: Side::new(), asks: Side::new(), cap: 200 };
        let mid = b.instrument.mid;
        for k in 1..=60u64 {
            let q = b.qty(rng);
            b.bids.insert(mid.saturating_sub(k), q);
            let q = b.qty(rng);
            b.asks.insert(mid + k, q);
        }
        b
    }

    fn qty(&self, rng: &mut Rng) -> u64 {
        let lot = self.instrument.lot.max(1);
        lot / 4 + rng.below(lot * 2) + 1
    }

    /// The top `depth` levels per side.
    #[must_use]
    pub fn view(&self, depth: usize) -> View {
        View {
            bids: self.bids.iter().rev().take(depth).map(|(&p, &q)| (p, q)).collect(),
            asks: self.asks.iter().take(depth).map(|(&p, &q)| (p, q)).collect(),
        }
    }

    /// One random order-flow event: a quantity change near the top, a new level inside the
    /// spread or behind it, or a level removed (often the best, so the book moves).
    pub fn step(&mut self, rng: &mut Rng) {
        let bid = rng.percent(50);
        let best_bid = self.bids.keys().next_back().copied().unwrap_or(self.instrument.mid.saturating_sub(1));
        let best_ask = self.asks.keys().next().copied().unwrap_or(self.instrument.mid + 1);
        let roll = rng.below(100);
        let q = self.qty(rng);
        let side = if bid { &mut self.bids } else { &mut self.asks };
        if roll < 45 {
            // Change the quantity of one of the best 12 levels.
            let k = usize::try_from(rng.below(12)).unwrap_or(0);
            let price = if bid { side.keys().rev().nth(k).copied() } else { side.keys().nth(k).copied() };
            if let Some(p) = price {
                side.insert(p, q);
            }
        } else if roll < 70 {
            // A new level: inside the spread when there is room, else just behind the best.
            let price = if best_ask > best_bid + 1 && rng.percent(50) {
                if bid { best_bid + 1 } else { best_ask - 1 }
            } else {
                let off = rng.below(15) + 1;
                if bid { best_bid.saturating_sub(off) } else { best_ask + off }
            };
            if price > 0 {
                side.insert(price, q);
            }
        } else {
            // Remove a level near the top (the best one a third of the time).
            let k = if rng.percent(33) { 0 } else { usize::try_from(rng.below(10)).unwrap_or(0) };
            let price = if bid { side.keys().rev().nth(k).copied() } else { side.keys().nth(k).copied() };
            if let Some(p) = price
                && side.len() > 20
            {
                side.remove(&p);
            }
        }
        // Keep the book from thinning out or growing without bound.
        while self.bids.len() < 40 {
            let p = self.bids.keys().next().copied().unwrap_or(self.instrument.mid).saturating_sub(1);
            let q = self.qty(rng);
            if p == 0 {
                break;
            }
            self.bids.insert(p, q);
        }
        while self.asks.len() < 40 {
            let p = self.asks.keys().next_back().copied().unwrap_or(self.instrument.mid) + 1;
            let q = self.qty(rng);
            self.asks.insert(p, q);
        }
        while self.bids.len() > self.cap {
            self.bids.pop_first();
        }
        while self.asks.len() > self.cap {
            self.asks.pop_last();
        }
    }

    /// Grows each side to `levels` levels (a deep book, as Coinbase's BTC-USD: its snapshot is
    /// tens of megabytes), the new ones behind the present ones. The order flow then never drops
    /// levels from the far end: every change stays within the best few dozen levels.
    pub fn deepen(&mut self, levels: usize, rng: &mut Rng) {
        self.cap = usize::MAX;
        while self.bids.len() < levels {
            let Some(p) = self.bids.keys().next().copied().and_then(|p| p.checked_sub(1)).filter(|&p| p > 0) else {
                break;
            };
            let q = self.qty(rng);
            self.bids.insert(p, q);
        }
        while self.asks.len() < levels {
            let p = self.asks.keys().next_back().copied().unwrap_or(self.instrument.mid) + 1;
            let q = self.qty(rng);
            self.asks.insert(p, q);
        }
    }

    /// Levels per side at most (the whole book of each side).
    #[must_use]
    pub fn len(&self) -> usize {
        self.bids.len().max(self.asks.len())
    }

    /// Whether both sides are empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }
}

/// What a depth-`depth` subscriber must be sent to go from `before` to `after` (both views at
/// that depth): changed and new levels, and deletions of levels that left the book (not those
/// merely pushed below the depth, which the subscriber truncates away itself, as Kraken expects).
#[must_use]
pub fn diff(before: &View, after: &View, book: &SimBook) -> Vec<Change> {
    let mut out = Vec::new();
    for (bid, old, new, full) in
        [(true, &before.bids, &after.bids, &book.bids), (false, &before.asks, &after.asks, &book.asks)]
    {
        for &(p, _) in old {
            if !new.iter().any(|&(np, _)| np == p) && !full.contains_key(&p) {
                out.push(Change { bid, price: p, qty: 0 });
            }
        }
        for &(p, q) in new {
            if !old.contains(&(p, q)) {
                out.push(Change { bid, price: p, qty: q });
            }
        }
    }
    out
}

/// What a subscriber of an exchange that deletes the levels leaving its depth (Bybit) must be
/// sent to go from `before` to `after`: changed and new levels, and a deletion for every level
/// that is no longer in the view, whether it left the book or was pushed below the depth.
#[must_use]
pub fn diff_exact(before: &View, after: &View) -> Vec<Change> {
    let mut out = Vec::new();
    for (bid, old, new) in [(true, &before.bids, &after.bids), (false, &before.asks, &after.asks)] {
        for &(p, _) in old {
            if !new.iter().any(|&(np, _)| np == p) {
                out.push(Change { bid, price: p, qty: 0 });
            }
        }
        for &(p, q) in new {
            if !old.contains(&(p, q)) {
                out.push(Change { bid, price: p, qty: q });
            }
        }
    }
    out
}

/// A Bybit v5 book message: `{"topic","type","ts","data":{"s","b","a","u","seq"},"cts"}`, with
/// levels as `["price","size"]` strings at the instrument's decimals.
#[must_use]
pub fn bybit_frame(
    inst: &Instrument,
    depth: usize,
    snapshot: bool,
    bids: &[(u64, u64)],
    asks: &[(u64, u64)],
    ids: (u64, u64),
    unix_ms: u64,
) -> String {
    let mut s = String::with_capacity(200 + 32 * (bids.len() + asks.len()));
    let kind = if snapshot { "snapshot" } else { "delta" };
    let _ = write!(
        s,
        r#"{{"topic":"orderbook.{depth}.{sym}","type":"{kind}","ts":{unix_ms},"data":{{"s":"{sym}","b":["#,
        sym = inst.symbol
    );
    for (side, levels) in [(0, bids), (1, asks)] {
        if side == 1 {
            s.push_str(r#"],"a":["#);
        }
        for (k, &(p, q)) in levels.iter().enumerate() {
            if k > 0 {
                s.push(',');
            }
            let _ = write!(s, r#"["{}","{}"]"#, fixed(p, inst.price_precision), fixed(q, inst.qty_precision));
        }
    }
    let _ = write!(s, r#"],"u":{},"seq":{}}},"cts":{}}}"#, ids.0, ids.1, unix_ms.saturating_sub(2));
    s
}

/// A fixed-point value as a decimal string with exactly `dp` decimals.
#[must_use]
pub fn fixed(m: u64, dp: u8) -> String {
    if dp == 0 {
        return m.to_string();
    }
    let s = format!("{m:0>width$}", width = usize::from(dp) + 1);
    let (int, frac) = s.split_at(s.len() - usize::from(dp));
    format!("{int}.{frac}")
}

/// As [`fixed`], with trailing fractional zeros (and a bare point) removed, as JSON encoders of
/// floats print numbers: the form that makes v2 clients pad to the instrument's precision.
#[must_use]
pub fn trimmed(m: u64, dp: u8) -> String {
    let s = fixed(m, dp);
    if dp == 0 {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Kraken's book checksum over a view: for the 10 best asks then the 10 best bids, price and
/// quantity printed at the instrument precision, the point removed, leading zeros stripped, all
/// concatenated; CRC32 of that.
#[must_use]
pub fn checksum(view: &View, inst: &Instrument) -> u32 {
    let mut text = String::new();
    let mut put = |m: u64, dp: u8| {
        let s = fixed(m, dp).replace('.', "");
        text.push_str(s.trim_start_matches('0'));
    };
    for &(p, q) in view.asks.iter().take(10) {
        put(p, inst.price_precision);
        put(q, inst.qty_precision);
    }
    for &(p, q) in view.bids.iter().take(10) {
        put(p, inst.price_precision);
        put(q, inst.qty_precision);
    }
    crc32fast::hash(text.as_bytes())
}

/// RFC 3339 UTC with microseconds, as Kraken prints timestamps, from Unix nanoseconds.
#[must_use]
pub fn rfc3339(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn levels_json(out: &mut String, levels: &[(u64, u64)], inst: &Instrument, trim: bool) {
    out.push('[');
    for (k, &(p, q)) in levels.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        let (ps, qs) = if trim {
            (trimmed(p, inst.price_precision), trimmed(q, inst.qty_precision))
        } else {
            (fixed(p, inst.price_precision), fixed(q, inst.qty_precision))
        };
        let _ = write!(out, r#"{{"price":{ps},"qty":{qs}}}"#);
    }
    out.push(']');
}

/// A v2 book snapshot frame of a view.
#[must_use]
pub fn snapshot_frame(view: &View, inst: &Instrument, checksum: u32, unix_ns: u64, trim: bool) -> String {
    let mut s = String::with_capacity(256 + 48 * (view.bids.len() + view.asks.len()));
    let _ = write!(s, r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"{}","bids":"#, inst.symbol);
    levels_json(&mut s, &view.bids, inst, trim);
    s.push_str(r#","asks":"#);
    levels_json(&mut s, &view.asks, inst, trim);
    let _ = write!(s, r#","checksum":{checksum},"timestamp":"{}"}}]}}"#, rfc3339(unix_ns));
    s
}

/// A v2 book update frame.
#[must_use]
pub fn update_frame(changes: &[Change], inst: &Instrument, checksum: u32, unix_ns: u64, trim: bool) -> String {
    let bids: Vec<(u64, u64)> = changes.iter().filter(|c| c.bid).map(|c| (c.price, c.qty)).collect();
    let asks: Vec<(u64, u64)> = changes.iter().filter(|c| !c.bid).map(|c| (c.price, c.qty)).collect();
    let mut s = String::with_capacity(256 + 48 * changes.len());
    let _ = write!(s, r#"{{"channel":"book","type":"update","data":[{{"symbol":"{}","bids":"#, inst.symbol);
    levels_json(&mut s, &bids, inst, trim);
    s.push_str(r#","asks":"#);
    levels_json(&mut s, &asks, inst, trim);
    let _ = write!(s, r#","checksum":{checksum},"timestamp":"{}"}}]}}"#, rfc3339(unix_ns));
    s
}

/// The v2 instrument snapshot frame listing `instruments`.
#[must_use]
pub fn instrument_frame(instruments: &[Instrument]) -> String {
    let mut s = String::from(r#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":["#);
    for (k, i) in instruments.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let (base, quote) = i.symbol.split_once('/').unwrap_or((&i.symbol, ""));
        let _ = write!(
            s,
            r#"{{"symbol":"{}","base":"{base}","quote":"{quote}","status":"online","qty_precision":{},"price_precision":{},"price_increment":{},"qty_increment":{},"marginable":false}}"#,
            i.symbol,
            i.qty_precision,
            i.price_precision,
            trimmed(1, i.price_precision),
            trimmed(1, i.qty_precision),
        );
    }
    s.push_str("]}}");
    s
}

/// An OKX book push: `{"arg":{"channel","instId"},"action"?,"data":[{"asks","bids","ts",
/// "checksum","prevSeqId","seqId"}]}`. Prices and sizes are written without trailing zeros, as
/// OKX writes them (`"8477"`). `action` is absent for `books5` and `bbo-tbt`, which also carry
/// no `prevSeqId` and no checksum.
#[must_use]
#[allow(clippy::too_many_arguments, reason = "every field of the frame")]
pub fn okx_frame(
    inst: &Instrument,
    channel: &str,
    action: Option<&str>,
    bids: &[(u64, u64)],
    asks: &[(u64, u64)],
    link: (Option<i64>, u64),
    checksum: i32,
    unix_ms: u64,
) -> String {
    let mut s = String::with_capacity(200 + 40 * (bids.len() + asks.len()));
    let _ = write!(s, r#"{{"arg":{{"channel":"{channel}","instId":"{}"}},"#, inst.symbol);
    if let Some(a) = action {
        let _ = write!(s, r#""action":"{a}","#);
    }
    s.push_str(r#""data":[{"#);
    okx_sides(&mut s, inst, asks, bids);
    let _ = write!(s, r#","ts":"{unix_ms}""#);
    if action.is_some() {
        let _ = write!(s, r#","checksum":{checksum}"#);
    }
    if let Some(prev) = link.0 {
        let _ = write!(s, r#","prevSeqId":{prev}"#);
    }
    let _ = write!(s, r#","seqId":{}}}]}}"#, link.1);
    s
}

/// `"asks":[[px,sz,"0",orders],...],"bids":[...]` as OKX writes levels, on the stream and in REST
/// answers alike (the order count is made up from the level).
fn okx_sides(s: &mut String, inst: &Instrument, asks: &[(u64, u64)], bids: &[(u64, u64)]) {
    for (name, levels) in [("asks", asks), ("bids", bids)] {
        if name == "bids" {
            s.push(',');
        }
        let _ = write!(s, r#""{name}":["#);
        for (k, &(p, q)) in levels.iter().enumerate() {
            if k > 0 {
                s.push(',');
            }
            let orders = 1 + (p + q) % 7;
            let _ = write!(
                s,
                r#"["{}","{}","0","{orders}"]"#,
                trimmed(p, inst.price_precision),
                trimmed(q, inst.qty_precision)
            );
        }
        s.push(']');
    }
}

/// The body of OKX's `GET /api/v5/market/books` for a book standing at `seq_id`:
/// `{"code":"0","msg":"","data":[{"asks":[...],"bids":[...],"ts":"ms","seqId":N}]}`, levels as
/// [`okx_frame`] writes them.
#[must_use]
pub fn okx_rest_body(inst: &Instrument, view: &View, seq_id: u64, unix_ms: u64) -> String {
    let mut s = String::with_capacity(100 + 40 * (view.bids.len() + view.asks.len()));
    s.push_str(r#"{"code":"0","msg":"","data":[{"#);
    okx_sides(&mut s, inst, &view.asks, &view.bids);
    let _ = write!(s, r#","ts":"{unix_ms}","seqId":{seq_id}}}]}}"#);
    s
}

/// OKX's legacy checksum of a book, written from OKX's documentation independently of
/// `plumb-book`'s: the top 25 bids and asks as `price:size` strings (as [`okx_frame`] writes
/// them), interleaved bid then ask, the longer side going on alone, joined with `:`, CRC32 read as
/// a signed integer.
#[must_use]
pub fn okx_checksum(view: &View, inst: &Instrument) -> i32 {
    let text =
        |&(p, q): &(u64, u64)| format!("{}:{}", trimmed(p, inst.price_precision), trimmed(q, inst.qty_precision));
    let mut parts = Vec::new();
    for k in 0..25 {
        if let Some(b) = view.bids.get(k) {
            parts.push(text(b));
        }
        if let Some(a) = view.asks.get(k) {
            parts.push(text(a));
        }
    }
    crc32fast::hash(parts.join(":").as_bytes()).cast_signed()
}

/// A Coinbase Advanced Trade `l2_data` message of one product's event (`snapshot` or `update`):
/// `{"channel":"l2_data","client_id":"","timestamp","sequence_num","events":[{"type",
/// "product_id","updates":[{"side":"bid"|"offer","event_time","price_level","new_quantity"}]}]}`,
/// levels as trimmed decimal strings, bids then offers for a snapshot and the sides mixed for an
/// update (as Coinbase sends them).
#[must_use]
pub fn coinbase_frame(
    inst: &Instrument,
    kind: &str,
    bids: &[(u64, u64)],
    asks: &[(u64, u64)],
    sequence: u64,
    unix_ns: u64,
) -> String {
    let now = rfc3339(unix_ns);
    let mut s = String::with_capacity(256 + 110 * (bids.len() + asks.len()));
    let _ = write!(
        s,
        r#"{{"channel":"l2_data","client_id":"","timestamp":"{now}","sequence_num":{sequence},"events":[{{"type":"{kind}","product_id":"{}","updates":["#,
        inst.symbol
    );
    let event_time = if kind == "snapshot" { "1970-01-01T00:00:00Z" } else { now.as_str() };
    let mut first = true;
    let mut level = |s: &mut String, side: &str, p: u64, q: u64| {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(
            s,
            r#"{{"side":"{side}","event_time":"{event_time}","price_level":"{}","new_quantity":"{}"}}"#,
            trimmed(p, inst.price_precision),
            trimmed(q, inst.qty_precision)
        );
    };
    if kind == "snapshot" {
        for &(p, q) in bids {
            level(&mut s, "bid", p, q);
        }
        for &(p, q) in asks {
            level(&mut s, "offer", p, q);
        }
    } else {
        let n = bids.len().max(asks.len());
        for k in 0..n {
            if let Some(&(p, q)) = asks.get(k) {
                level(&mut s, "offer", p, q);
            }
            if let Some(&(p, q)) = bids.get(k) {
                level(&mut s, "bid", p, q);
            }
        }
    }
    s.push_str("]}]}");
    s
}

/// A Coinbase `heartbeats` message.
#[must_use]
pub fn coinbase_heartbeat(sequence: u64, counter: u64, unix_ns: u64) -> String {
    let now = rfc3339(unix_ns);
    format!(
        r#"{{"channel":"heartbeats","client_id":"","timestamp":"{now}","sequence_num":{sequence},"events":[{{"current_time":"{now}","heartbeat_counter":"{counter}"}}]}}"#
    )
}

/// A Coinbase `subscriptions` message: every product the connection holds on `level2`, and
/// `heartbeats` when subscribed.
#[must_use]
pub fn coinbase_subscriptions(sequence: u64, level2: &[&str], heartbeats: bool, unix_ns: u64) -> String {
    let now = rfc3339(unix_ns);
    let mut s = format!(
        r#"{{"channel":"subscriptions","client_id":"","timestamp":"{now}","sequence_num":{sequence},"events":[{{"subscriptions":{{"#
    );
    let mut parts = Vec::new();
    if !level2.is_empty() {
        let list: Vec<String> = level2.iter().map(|p| format!("\"{p}\"")).collect();
        parts.push(format!(r#""level2":[{}]"#, list.join(",")));
    }
    if heartbeats {
        parts.push(r#""heartbeats":["heartbeats"]"#.to_owned());
    }
    s.push_str(&parts.join(","));
    s.push_str("}}]}");
    s
}

/// A Binance `depthUpdate` event: `{"e":"depthUpdate","E","s","U","u","b","a"}` (`T` and `pu`
/// added on USD-M when `pu` is given), levels as `["price","qty"]` strings at the instrument's
/// decimals.
#[must_use]
pub fn binance_event(
    inst: &Instrument,
    ids: (u64, u64, Option<u64>),
    bids: &[(u64, u64)],
    asks: &[(u64, u64)],
    unix_ms: u64,
) -> String {
    let mut s = String::with_capacity(160 + 40 * (bids.len() + asks.len()));
    let _ = write!(s, r#"{{"e":"depthUpdate","E":{unix_ms},"#);
    if ids.2.is_some() {
        let _ = write!(s, r#""T":{unix_ms},"#);
    }
    let _ = write!(s, r#""s":"{}","U":{},"u":{},"#, inst.symbol, ids.0, ids.1);
    if let Some(pu) = ids.2 {
        let _ = write!(s, r#""pu":{pu},"#);
    }
    s.push_str(r#""b":"#);
    binance_levels(&mut s, inst, bids);
    s.push_str(r#","a":"#);
    binance_levels(&mut s, inst, asks);
    s.push('}');
    s
}

/// A Binance REST depth body: `{"lastUpdateId","bids","asks"}` (USD-M adds `E` and `T`).
#[must_use]
pub fn binance_depth_body(inst: &Instrument, view: &View, last_update_id: u64, usdm_ms: Option<u64>) -> String {
    let mut s = format!(r#"{{"lastUpdateId":{last_update_id},"#);
    if let Some(ms) = usdm_ms {
        let _ = write!(s, r#""E":{ms},"T":{ms},"#);
    }
    s.push_str(r#""bids":"#);
    binance_levels(&mut s, inst, &view.bids);
    s.push_str(r#","asks":"#);
    binance_levels(&mut s, inst, &view.asks);
    s.push('}');
    s
}

fn binance_levels(s: &mut String, inst: &Instrument, levels: &[(u64, u64)]) {
    s.push('[');
    for (k, &(p, q)) in levels.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(s, r#"["{}","{}"]"#, fixed(p, inst.price_precision), fixed(q, inst.qty_precision));
    }
    s.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_696_613_755_440_295_000), "2023-10-06T17:35:55.440295Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn decimal_text() {
        assert_eq!(fixed(12_345, 9), "0.000012345");
        assert_eq!(fixed(650_000, 1), "65000.0");
        assert_eq!(trimmed(650_000, 1), "65000");
        assert_eq!(trimmed(150_000_000, 8), "1.5");
        assert_eq!(fixed(7, 0), "7");
    }

    #[test]
    fn checksum_of_kraken_doc_example() {
        // Kraken's v2 book documentation: the MATIC/USD snapshot, checksum 2439117997 (also in
        // ../shared/vectors/protocols/kraken.jsonl).
        let inst = Instrument::new("MATIC/USD", 4, 8, 0, 0);
        let view = View {
            bids: vec![
                (5666, 483175496356),
                (5665, 665822734739),
                (5664, 1872491513344),
                (5663, 1156392544914),
                (5662, 1400665365711),
                (5661, 1745485679807),
                (5660, 1809715470000),
                (5659, 3364489175666),
                (5658, 14834640000),
                (5657, 60670854372),
            ],
            asks: vec![
                (5668, 441079769741),
                (5669, 465540412487),
                (5670, 4984489424998),
                (5671, 2430641678000),
                (5672, 2978325223475),
                (5673, 5723471239278),
                (5674, 4506504744000),
                (5675, 591276380354),
                (5676, 4251492434778),
                (5677, 3630408470220),
            ],
        };
        assert_eq!(checksum(&view, &inst), 2_439_117_997);
    }

    #[test]
    fn diffs_take_a_subscriber_from_view_to_view() {
        let mut rng = Rng::new(5);
        let mut book = SimBook::new(Instrument::defaults()[0].clone(), &mut rng);
        for depth in [10usize, 25] {
            let mut client: BTreeMap<(bool, u64), u64> = BTreeMap::new();
            let v = book.view(depth);
            for &(p, q) in &v.bids {
                client.insert((true, p), q);
            }
            for &(p, q) in &v.asks {
                client.insert((false, p), q);
            }
            for _ in 0..2000 {
                let before = book.view(depth);
                book.step(&mut rng);
                let after = book.view(depth);
                for c in diff(&before, &after, &book) {
                    if c.qty == 0 {
                        client.remove(&(c.bid, c.price));
                    } else {
                        client.insert((c.bid, c.price), c.qty);
                    }
                }
                // Truncate as a client does, then compare with the exchange's view.
                let bids: Vec<(u64, u64)> =
                    client.iter().filter(|(k, _)| k.0).rev().take(depth).map(|(k, &q)| (k.1, q)).collect();
                let asks: Vec<(u64, u64)> =
                    client.iter().filter(|(k, _)| !k.0).take(depth).map(|(k, &q)| (k.1, q)).collect();
                client.retain(
                    |k, _| {
                        if k.0 { bids.iter().any(|b| b.0 == k.1) } else { asks.iter().any(|a| a.0 == k.1) }
                    },
                );
                assert_eq!(View { bids, asks }, after);
            }
        }
    }

    #[test]
    fn okx_checksum_matches_okxs_documented_vectors() {
        // OKX's docs: "3366.1:7:3366.8:9:3366:6:3368:8" -> -1881014294 and
        // "3366.1:7:3366.8:9:3368:8:3372:8" -> 831078360.
        let inst = Instrument::new("BTC-USDT", 1, 0, 33_660, 1);
        let v = View { bids: vec![(33_661, 7), (33_660, 6)], asks: vec![(33_668, 9), (33_680, 8)] };
        assert_eq!(okx_checksum(&v, &inst), -1_881_014_294);
        let v = View { bids: vec![(33_661, 7)], asks: vec![(33_668, 9), (33_680, 8), (33_720, 8)] };
        assert_eq!(okx_checksum(&v, &inst), 831_078_360);
    }
}
