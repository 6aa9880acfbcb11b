//! The exchange-neutral number readers: exact decimals, unsigned integers, RFC 3339 times.
//!
//! Every exchange module and the book read numbers through these, so that one reading of a decimal
//! text holds everywhere.

/// An exact decimal value read from wire text: `mantissa / 10^scale`, where `scale` is the number
/// of fraction digits the text had (trailing zeros included: `"1.50"` is 150 at scale 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    /// The digits as an integer.
    pub mantissa: u64,
    /// The number of fraction digits.
    pub scale: u8,
}

impl Decimal {
    /// The exact value of a plain decimal text, `digits[.digits]` with at most 19 digits in all
    /// (which cannot overflow: 10^19 - 1 < 2^64), or `None` for anything else (signs, exponents,
    /// longer text). One pass, no overflow checks in the loop.
    #[inline]
    #[must_use]
    pub fn parse(text: &[u8]) -> Option<Decimal> {
        let mut m: u64 = 0;
        let mut digits = 0usize;
        let mut dot = None;
        for (i, &c) in text.iter().enumerate() {
            let d = c.wrapping_sub(b'0');
            if d <= 9 {
                m = m.wrapping_mul(10).wrapping_add(u64::from(d));
                digits += 1;
            } else if c == b'.' && dot.is_none() && i > 0 && i + 1 < text.len() {
                dot = Some(i);
            } else {
                return None;
            }
        }
        if digits == 0 || digits > 19 {
            return None;
        }
        let scale = dot.map_or(0, |d| text.len() - d - 1);
        Some(Decimal { mantissa: m, scale: u8::try_from(scale).ok()? })
    }
}

/// A plain unsigned decimal integer (no sign, fraction or exponent), or `None` (also on
/// overflow).
#[inline]
#[must_use]
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    if b.len() <= 19 {
        // 19 digits cannot overflow: no checks in the loop, so the value stays in a register.
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v.wrapping_mul(10).wrapping_add(u64::from(d));
        }
        return Some(v);
    }
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` to nanoseconds since the Unix epoch (1970 to 2554), or `None`.
///
/// It runs on every book message, so it reads the fixed positions directly: two-digit fields as
/// one subtraction each, the days before the month from a table, no loops but the fraction's.
#[must_use]
pub fn rfc3339_ns(b: &[u8]) -> Option<u64> {
    /// Days before each month in a common year.
    const BEFORE: [u64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let digit = |i: usize| -> Option<u64> {
        let d = b.get(i)?.wrapping_sub(b'0');
        if d > 9 { None } else { Some(u64::from(d)) }
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, min, sec) = (two(11)?, two(14)?, two(17)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if year < 1970 || day == 0 || day > days_in_month || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days before the year since 1970, then before the month, then the day.
    let y = year - 1;
    let days_before_year = 365 * (year - 1970) + (y / 4 - 1969 / 4) - (y / 100 - 1969 / 100) + (y / 400 - 1969 / 400);
    let month_index = usize::try_from(month - 1).ok()?;
    let days_before_month = BEFORE[month_index] + u64::from(leap && month > 2);
    let days = days_before_year + days_before_month + day - 1;
    let mut nanos = 0u64;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut scale = 1_000_000_000u64;
        while let Some(d) = digit(i) {
            if scale > 1 {
                scale /= 10;
                nanos += d * scale;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if !matches!(b.get(i..), Some(b"Z" | b"z")) {
        return None;
    }
    let secs = ((days * 24 + hour) * 60 + min) * 60 + sec;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ns;

    /// Unix nanoseconds to RFC 3339 with nanoseconds, by Howard Hinnant's civil-from-days: a
    /// different algorithm from the parser's, as the reference for the round trip below.
    fn format(ns: u64) -> String {
        let secs = ns / 1_000_000_000;
        let days = i64::try_from(secs / 86_400).unwrap();
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:09}Z", ns % 1_000_000_000)
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_round_trips(ns in 0u64..17_000_000_000_000_000_000, digits in 1usize..=9) {
            let full = format(ns);
            proptest::prop_assert_eq!(rfc3339_ns(full.as_bytes()), Some(ns), "{}", full);
            // Fewer fraction digits: the value truncated to them.
            let short = format!("{}Z", &full[..20 + digits]);
            let unit = 10u64.pow(u32::try_from(9 - digits).unwrap());
            proptest::prop_assert_eq!(rfc3339_ns(short.as_bytes()), Some(ns / unit * unit), "{}", short);
        }
    }

    #[test]
    fn rfc3339_to_unix_nanoseconds() {
        // Expected values computed independently with Python's datetime.
        for (text, ns) in [
            ("2023-10-06T17:35:55.440295Z", 1_696_613_755_440_295_000),
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T23:59:59.999999999Z", 951_868_799_999_999_999),
            ("2024-12-31T00:00:00.5Z", 1_735_603_200_500_000_000),
            ("2100-03-01T12:00:00Z", 4_107_585_600_000_000_000),
        ] {
            assert_eq!(rfc3339_ns(text.as_bytes()), Some(ns), "{text}");
        }
        for bad in [
            "",
            "2023-10-06 17:35:55Z",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-10-06T24:00:00Z",
            "2023-10-06T17:35:55+02:00",
            "2023-10-06T17:35:55.Z",
            "1969-12-31T23:59:59Z",
            "2023-10-06T17:35:55",
        ] {
            assert_eq!(rfc3339_ns(bad.as_bytes()), None, "{bad}");
        }
    }
}
