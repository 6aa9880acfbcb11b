//! Capture lines read a big block at a time: each line is a slice of the block, found with
//! `memchr`, never copied out (the reader it replaced copied every line through `read_until`).

use std::io::Read;

/// One line of the input.
pub(crate) enum Line<'a> {
    /// The line, without its `\n`.
    Text(&'a [u8]),
    /// A line of `max` bytes or more, skipped without being held whole.
    TooLong,
}

/// Splits a reader into lines, holding at most one block of input (a line longer than the block
/// grows it, up to `max` bytes).
pub(crate) struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    /// The unread part is `buf[start..end]`; `buf[start..scanned]` holds no `\n`.
    start: usize,
    scanned: usize,
    end: usize,
    eof: bool,
    max: usize,
    newline: Newline,
}

/// The newline search, bound once: on x86-64 with AVX2, `memchr`'s AVX2 searcher itself, which
/// skips the dispatch that `memchr::memchr` goes through on every call (a capture line is a
/// few hundred bytes, so the per-call cost counts).
#[derive(Clone, Copy)]
struct Newline {
    #[cfg(target_arch = "x86_64")]
    avx2: Option<memchr::arch::x86_64::avx2::memchr::One>,
}

impl Newline {
    fn new() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            avx2: memchr::arch::x86_64::avx2::memchr::One::new(b'\n'),
        }
    }

    #[inline]
    fn find(self, hay: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(one) = self.avx2 {
            return one.find(hay);
        }
        memchr::memchr(b'\n', hay)
    }
}

/// The block read at a time.
const BLOCK: usize = 1 << 20;

impl<R: Read> Lines<R> {
    pub(crate) fn new(src: R, max: usize) -> Self {
        Self {
            src,
            buf: vec![0; BLOCK.min(max.max(1))],
            start: 0,
            scanned: 0,
            end: 0,
            eof: false,
            max: max.max(1),
            newline: Newline::new(),
        }
    }

    /// The next line, `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        loop {
            if let Some(k) = self.newline.find(&self.buf[self.scanned..self.end]) {
                let (a, b) = (self.start, self.scanned + k);
                self.start = b + 1;
                self.scanned = self.start;
                if b - a >= self.max {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Text(&self.buf[a..b])));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (a, b) = (self.start, self.end);
                self.start = b;
                if b - a >= self.max {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Text(&self.buf[a..b])));
            }
            if self.end - self.start >= self.max {
                self.skip_rest()?;
                return Ok(Some(Line::TooLong));
            }
            self.fill()?;
        }
    }

    /// Makes room after the unread part, then reads into it.
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(self.max + 1).max(self.end + 1);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the unread part and everything up to the next `\n` (or the end).
    fn skip_rest(&mut self) -> std::io::Result<()> {
        loop {
            self.start = 0;
            self.scanned = 0;
            self.end = 0;
            self.fill()?;
            if let Some(k) = self.newline.find(&self.buf[..self.end]) {
                self.start = k + 1;
                self.scanned = self.start;
                return Ok(());
            }
            if self.eof {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line as text (`None` for a skipped one), read through a reader that hands out at
    /// most `chunk` bytes per call.
    fn split(input: &[u8], max: usize, chunk: usize) -> Vec<Option<Vec<u8>>> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(self.1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut lines = Lines::new(Trickle(input, chunk), max);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            out.push(match l {
                Line::Text(t) => Some(t.to_vec()),
                Line::TooLong => None,
            });
        }
        out
    }

    /// What splitting on `\n` gives, lines of `max` bytes or more skipped.
    fn model(input: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        parts.into_iter().map(|p| (p.len() < max).then(|| p.to_vec())).collect()
    }

    #[test]
    fn lines_split_as_split_does_whatever_the_reads() {
        let inputs: [&[u8]; 7] = [
            b"",
            b"\n",
            b"a\nbb\n\nccc",
            b"one line without an end",
            b"short\na line far longer than the limit\nok\n",
            b"a line far longer than the limit at the end",
            b"\n\nxyz\n0123456789\n012345678\n",
        ];
        for input in inputs {
            for max in [1, 2, 5, 10, 1000] {
                for chunk in [1, 2, 3, 7, 64, 1 << 20] {
                    assert_eq!(split(input, max, chunk), model(input, max), "{input:?} max {max} chunk {chunk}");
                }
            }
        }
    }
}
