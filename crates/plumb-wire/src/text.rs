//! The crate's one `unsafe` block: a frame whose bytes are all ASCII, and any slice of it, viewed
//! as `&str` without a second, slower validation pass.
//!
//! Every field of a parsed message is a slice of one `&str` of the frame, so the frame must be
//! valid UTF-8. Exchange frames are ASCII in practice; checking that takes one branch-free pass
//! that the compiler turns into vector ORs, where `std::str::from_utf8` walks the frame a word at a
//! time with a branch per word (measured: see CHANGELOG). A frame with any byte at or above 0x80
//! still goes through `std::str::from_utf8`.
#![allow(unsafe_code)]

/// Bytes that are all ASCII, so that any slice of them is text: a frame checked once by
/// [`ascii`], whose fields are then sliced as `&str` with only the bounds checked (a `&str`
/// slice would also check that each end falls on a character boundary, which in ASCII every
/// offset does).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ascii<'a>(&'a [u8]);

impl<'a> Ascii<'a> {
    /// The bytes.
    #[inline]
    pub(crate) fn bytes(self) -> &'a [u8] {
        self.0
    }

    /// The text of `range`, or `""` for a range outside the bytes.
    #[inline]
    pub(crate) fn slice(self, range: std::ops::Range<usize>) -> &'a str {
        match self.0.get(range) {
            // SAFETY: `Ascii` is made only by `ascii`, from bytes that are all ASCII; a slice of
            // them is all ASCII too, and any sequence of ASCII bytes is valid UTF-8.
            Some(b) => unsafe { std::str::from_utf8_unchecked(b) },
            None => "",
        }
    }
}

/// `bytes` as text when every byte is ASCII, else `None`.
#[inline]
pub(crate) fn ascii(bytes: &[u8]) -> Option<Ascii<'_>> {
    // Eight bytes a word, ORed (a reduction the compiler turns into vector ORs), then the last
    // eight bytes, which may overlap the words (ORing a byte twice changes nothing): no
    // byte-at-a-time tail.
    let high = match bytes.last_chunk::<8>() {
        Some(last) => {
            let words = bytes.as_chunks::<8>().0;
            words.iter().fold(u64::from_le_bytes(*last), |a, w| a | u64::from_le_bytes(*w)) & 0x8080_8080_8080_8080 != 0
        }
        None => bytes.iter().fold(0u8, |a, &b| a | b) >= 0x80,
    };
    // The OR of every byte of `bytes` has no high bit set: every byte is ASCII.
    (!high).then_some(Ascii(bytes))
}

#[cfg(test)]
mod tests {
    use super::ascii;

    /// What `ascii` gives, as text (`None` when it refuses the bytes).
    fn text(b: &[u8]) -> Option<&str> {
        ascii(b).map(|a| a.slice(0..b.len()))
    }

    #[test]
    fn ascii_is_text_and_anything_else_is_left_to_from_utf8() {
        let mut frame: Vec<u8> = (0u8..0x80).cycle().take(300).collect();
        for len in 0..frame.len() {
            assert_eq!(text(&frame[..len]), std::str::from_utf8(&frame[..len]).ok(), "{len}");
            // Every slice of an ASCII frame is its text; a range outside it is empty.
            let a = ascii(&frame[..len]).unwrap();
            for start in (0..=len).step_by(7) {
                for end in (start..=len).step_by(5) {
                    assert_eq!(a.slice(start..end).as_bytes(), &frame[start..end]);
                }
            }
            assert_eq!(a.slice(0..len + 1), "");
        }
        // One high byte anywhere (in a chunk or in the tail) is refused, valid UTF-8 or not.
        for at in 0..frame.len() {
            let keep = frame[at];
            frame[at] = 0x80 | keep;
            assert!(ascii(&frame).is_none(), "{at}");
            frame[at] = keep;
        }
        assert!(ascii("é".as_bytes()).is_none());
    }
}
