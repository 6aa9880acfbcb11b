//! The crate's one `unsafe` block: a frame whose bytes are all ASCII viewed as `&str` without a
//! second, slower validation pass.
//!
//! Every field of a parsed message is a slice of one `&str` of the frame, so the frame must be
//! valid UTF-8. Exchange frames are ASCII in practice; checking that takes one branch-free pass
//! that the compiler turns into vector ORs, where `std::str::from_utf8` walks the frame a word at a
//! time with a branch per word (measured: see CHANGELOG). A frame with any byte at or above 0x80
//! still goes through `std::str::from_utf8`.
#![allow(unsafe_code)]

/// `bytes` as text when every byte is ASCII, else `None`.
#[inline]
pub(crate) fn ascii(bytes: &[u8]) -> Option<&str> {
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
    if high {
        None
    } else {
        // SAFETY: the OR of every byte of `bytes` has no high bit set, so every byte is ASCII, and
        // any sequence of ASCII bytes is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }
}

#[cfg(test)]
mod tests {
    use super::ascii;

    #[test]
    fn ascii_is_text_and_anything_else_is_left_to_from_utf8() {
        let mut frame: Vec<u8> = (0u8..0x80).cycle().take(300).collect();
        for len in 0..frame.len() {
            assert_eq!(ascii(&frame[..len]), std::str::from_utf8(&frame[..len]).ok(), "{len}");
        }
        // One high byte anywhere (in a chunk or in the tail) is refused, valid UTF-8 or not.
        for at in 0..frame.len() {
            let keep = frame[at];
            frame[at] = 0x80 | keep;
            assert_eq!(ascii(&frame), None, "{at}");
            frame[at] = keep;
        }
        assert_eq!(ascii("é".as_bytes()), None);
    }
}
