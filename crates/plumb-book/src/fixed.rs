//! Exact decimal text to integer mantissa, and back. No floats.

use crate::error::{Error, Result};

/// The most decimal places a price or quantity may have.
pub const MAX_SCALE: u8 = 18;

/// `10^n` for `n` in `0..=18`.
pub(crate) const POW10: [u64; 19] = {
    let mut t = [1u64; 19];
    let mut i = 1;
    while i < 19 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// A decimal number as read: `mantissa / 10^frac`, where `frac` is the number of fraction digits
/// the text had (after applying any exponent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub(crate) mantissa: u64,
    pub(crate) frac: u8,
}

/// Reads a non-negative decimal: `digits[.digits][(e|E)[+-]digits]`, as JSON numbers and Kraken's
/// quoted decimals spell them. Trailing zeros count as digits (`"1.50"` has `frac` 2).
#[inline]
pub(crate) fn parse(text: &[u8]) -> Result<Fixed> {
    from_number(plumb_wire::Decimal::parse(text).map_or(plumb_wire::Number::Text(text), plumb_wire::Number::Value))
}

/// A price or quantity as the wire reader gives it: the value it read exactly while scanning (the
/// common case: a plain decimal of at most 19 digits), else its text, read the careful way.
#[inline]
pub(crate) fn from_number(n: plumb_wire::Number<'_>) -> Result<Fixed> {
    match n {
        plumb_wire::Number::Value(v) if v.scale <= MAX_SCALE => Ok(Fixed { mantissa: v.mantissa, frac: v.scale }),
        plumb_wire::Number::Value(_) => Err(Error::TooPrecise),
        plumb_wire::Number::Text(text) => parse_slow(text),
    }
}

/// The general reader: exponents, long digit strings, and every error.
fn parse_slow(text: &[u8]) -> Result<Fixed> {
    let mut m: u64 = 0;
    let mut frac: i32 = 0;
    let mut i = 0;
    let mut int_digits = 0;
    while let Some(&c) = text.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        m = m.checked_mul(10).and_then(|m| m.checked_add(u64::from(d))).ok_or(Error::Overflow)?;
        i += 1;
        int_digits += 1;
    }
    if int_digits == 0 {
        return Err(Error::InvalidNumber);
    }
    if text.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&c) = text.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            m = m.checked_mul(10).and_then(|m| m.checked_add(u64::from(d))).ok_or(Error::Overflow)?;
            i += 1;
        }
        if i == start {
            return Err(Error::InvalidNumber);
        }
        frac = i32::try_from(i - start).map_err(|_| Error::TooPrecise)?;
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        let neg = match text.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i32 = 0;
        while let Some(&c) = text.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            e = e.saturating_mul(10).saturating_add(i32::from(d));
            i += 1;
        }
        if i == start {
            return Err(Error::InvalidNumber);
        }
        frac = if neg { frac.saturating_add(e) } else { frac.saturating_sub(e) };
    }
    if i != text.len() {
        return Err(Error::InvalidNumber);
    }
    if frac < 0 {
        // A positive exponent: fold it into the mantissa (`1.5e3` is 1500).
        let p = usize::try_from(-frac).map_err(|_| Error::Overflow)?;
        let f = POW10.get(p).ok_or(Error::Overflow)?;
        m = if m == 0 { 0 } else { m.checked_mul(*f).ok_or(Error::Overflow)? };
        frac = 0;
    }
    let frac = u8::try_from(frac).map_err(|_| Error::TooPrecise)?;
    if frac > MAX_SCALE {
        return Err(Error::TooPrecise);
    }
    Ok(Fixed { mantissa: m, frac })
}

/// `m * 10^(to - from)` as an `i64`, for `from <= to <= MAX_SCALE`.
pub(crate) fn rescale(m: u64, from: u8, to: u8) -> Result<i64> {
    // The usual case (a value at the book's scale) without the multiplication and its checks.
    if from == to {
        return i64::try_from(m).map_err(|_| Error::Overflow);
    }
    let f = POW10[usize::from(to - from)];
    let v = m.checked_mul(f).ok_or(Error::Overflow)?;
    i64::try_from(v).map_err(|_| Error::Overflow)
}

/// Writes `m / 10^frac` as decimal text with exactly `frac` fraction digits.
pub(crate) fn write_text(out: &mut impl std::fmt::Write, m: u64, frac: u8) -> std::fmt::Result {
    let p = POW10[usize::from(frac)];
    let (int, fr) = (m / p, m % p);
    if frac == 0 { write!(out, "{int}") } else { write!(out, "{int}.{fr:0width$}", width = usize::from(frac)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(u64, u8)> {
        parse(s.as_bytes()).map(|f| (f.mantissa, f.frac))
    }

    #[test]
    fn keeps_trailing_zeros() {
        assert_eq!(p("0.00100000"), Ok((100_000, 8)));
        assert_eq!(p("5541.30000"), Ok((554_130_000, 5)));
        assert_eq!(p("4.0"), Ok((40, 1)));
        assert_eq!(p("0"), Ok((0, 0)));
    }

    #[test]
    fn seventeen_significant_digits_are_exact() {
        assert_eq!(p("301727260.79999999"), Ok((30_172_726_079_999_999, 8)));
    }

    #[test]
    fn exponents_are_exact() {
        assert_eq!(p("4.8e-07"), Ok((48, 8)));
        assert_eq!(p("1E-5"), Ok((1, 5)));
        assert_eq!(p("1.5e3"), Ok((1500, 0)));
        assert_eq!(p("1.25e+1"), Ok((125, 1)));
    }

    #[test]
    fn rejects_what_is_not_a_plain_decimal() {
        for bad in ["", "-1", "+1", ".5", "1.", "1e", "1e+", "0x10", "1,5", " 1", "1 ", "NaN", "1.2.3"] {
            assert_eq!(p(bad), Err(Error::InvalidNumber), "{bad:?}");
        }
        assert_eq!(p("99999999999999999999"), Err(Error::Overflow));
        assert_eq!(p("1e-19"), Err(Error::TooPrecise));
        assert_eq!(p("1e30"), Err(Error::Overflow));
        assert_eq!(p("1e99999999999"), Err(Error::Overflow));
    }

    #[test]
    fn text_round_trips() {
        let mut s = String::new();
        write_text(&mut s, 100_000, 8).unwrap();
        assert_eq!(s, "0.00100000");
        s.clear();
        write_text(&mut s, 554_130_000, 5).unwrap();
        assert_eq!(s, "5541.30000");
        s.clear();
        write_text(&mut s, 7, 0).unwrap();
        assert_eq!(s, "7");
    }
}
