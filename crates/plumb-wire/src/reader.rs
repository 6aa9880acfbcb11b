//! Two pull readers behind one trait: the fast byte [`Scanner`] and the simd-json [`TapeReader`].
//!
//! The schema walker in `kraken.rs` is written once against [`Reader`], so both readers must agree on
//! every input they both accept; the differential tests and the fuzz target hold them to that.

use crate::MAX_DEPTH;
use crate::error::{Error, ErrorKind, Result};

/// A byte range of the source text. `u32` keeps level records small; frames are capped at
/// [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN) (Coinbase's at
/// [`coinbase::MAX_FRAME_LEN`](crate::coinbase::MAX_FRAME_LEN)), far below `u32::MAX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Self {
        // Frames are capped at their dialect's MAX_FRAME_LEN (< u32::MAX) before any reader runs.
        #[allow(clippy::cast_possible_truncation, reason = "frame length is capped below u32::MAX")]
        Self { start: start as u32, end: end as u32 }
    }

    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The JSON type of the next value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// A position to come back to with [`Reader::reset`]. Only the one value at the mark may be read
/// after a reset; the enclosing container cannot be continued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    pos: usize,
    aux: usize,
}

/// A pull interface over one JSON document.
pub(crate) trait Reader {
    /// The byte offset to report in errors.
    fn offset(&self) -> usize;
    fn peek(&mut self) -> Result<Kind>;
    fn begin_object(&mut self) -> Result<()>;
    /// The next key of the current object, or `None` at its end.
    fn next_key(&mut self) -> Result<Option<Span>>;
    fn begin_array(&mut self) -> Result<()>;
    /// Whether another element follows in the current array.
    fn next_element(&mut self) -> Result<bool>;
    fn string(&mut self) -> Result<Span>;
    fn number(&mut self) -> Result<Span>;
    fn boolean(&mut self) -> Result<bool>;
    fn null(&mut self) -> Result<()>;
    fn skip(&mut self) -> Result<()>;
    fn mark(&self) -> Mark;
    fn reset(&mut self, mark: Mark);
    /// Checks that nothing but whitespace follows the top-level value.
    fn finish(&mut self) -> Result<()>;
}

impl<R: Reader + ?Sized> Reader for &mut R {
    #[inline(always)]
    fn offset(&self) -> usize {
        (**self).offset()
    }
    #[inline(always)]
    fn peek(&mut self) -> Result<Kind> {
        (**self).peek()
    }
    #[inline(always)]
    fn begin_object(&mut self) -> Result<()> {
        (**self).begin_object()
    }
    #[inline(always)]
    fn next_key(&mut self) -> Result<Option<Span>> {
        (**self).next_key()
    }
    #[inline(always)]
    fn begin_array(&mut self) -> Result<()> {
        (**self).begin_array()
    }
    #[inline(always)]
    fn next_element(&mut self) -> Result<bool> {
        (**self).next_element()
    }
    #[inline(always)]
    fn string(&mut self) -> Result<Span> {
        (**self).string()
    }
    #[inline(always)]
    fn number(&mut self) -> Result<Span> {
        (**self).number()
    }
    #[inline(always)]
    fn boolean(&mut self) -> Result<bool> {
        (**self).boolean()
    }
    #[inline(always)]
    fn null(&mut self) -> Result<()> {
        (**self).null()
    }
    #[inline(always)]
    fn skip(&mut self) -> Result<()> {
        (**self).skip()
    }
    #[inline(always)]
    fn mark(&self) -> Mark {
        (**self).mark()
    }
    #[inline(always)]
    fn reset(&mut self, mark: Mark) {
        (**self).reset(mark);
    }
    #[inline(always)]
    fn finish(&mut self) -> Result<()> {
        (**self).finish()
    }
}

/// What the scanner read last, which decides which separator may come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Open,
    Value,
    Comma,
    Colon,
}

/// The general fast path: a strict, allocation-free JSON reader over borrowed bytes that are
/// valid UTF-8.
///
/// It refuses strings with escapes so that every string it hands out is a plain slice of the
/// input; the caller then retries on the simd-json path.
#[derive(Debug)]
pub(crate) struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    last: Last,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, pos: 0, last: Last::Open }
    }

    #[inline]
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.pos)
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn byte(&self) -> Result<u8> {
        self.b.get(self.pos).copied().ok_or_else(|| self.err(ErrorKind::UnexpectedEnd))
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        match self.b.get(self.pos..self.pos + word.len()) {
            Some(w) if w == word => {
                self.pos += word.len();
                self.last = Last::Value;
                Ok(())
            }
            Some(_) => Err(self.err(ErrorKind::UnexpectedByte)),
            None => Err(Error::new(ErrorKind::UnexpectedEnd, self.b.len())),
        }
    }

    fn skip_depth(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err(ErrorKind::TooDeep));
        }
        match self.peek()? {
            Kind::Object => {
                self.begin_object()?;
                while self.next_key()?.is_some() {
                    self.skip_depth(depth + 1)?;
                }
                Ok(())
            }
            Kind::Array => {
                self.begin_array()?;
                while self.next_element()? {
                    self.skip_depth(depth + 1)?;
                }
                Ok(())
            }
            Kind::String => self.string().map(drop),
            Kind::Number => self.number().map(drop),
            Kind::Bool => self.boolean().map(drop),
            Kind::Null => self.null(),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.b.get(self.pos), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }
}

impl Reader for Scanner<'_> {
    fn offset(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn peek(&mut self) -> Result<Kind> {
        self.ws();
        Ok(match self.byte()? {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' => Kind::String,
            b'-' | b'0'..=b'9' => Kind::Number,
            b't' | b'f' => Kind::Bool,
            b'n' => Kind::Null,
            _ => return Err(self.err(ErrorKind::UnexpectedByte)),
        })
    }

    #[inline(always)]
    fn begin_object(&mut self) -> Result<()> {
        self.ws();
        if self.byte()? != b'{' {
            return Err(self.err(ErrorKind::WrongType));
        }
        self.pos += 1;
        self.last = Last::Open;
        Ok(())
    }

    #[inline(always)]
    fn next_key(&mut self) -> Result<Option<Span>> {
        self.ws();
        match self.byte()? {
            b'}' if matches!(self.last, Last::Open | Last::Value) => {
                self.pos += 1;
                self.last = Last::Value;
                return Ok(None);
            }
            b',' if self.last == Last::Value => {
                self.pos += 1;
                self.ws();
            }
            b'"' if self.last == Last::Open => {}
            _ => return Err(self.err(ErrorKind::UnexpectedByte)),
        }
        if self.byte()? != b'"' {
            return Err(self.err(ErrorKind::UnexpectedByte));
        }
        let key = self.string()?;
        self.ws();
        if self.byte()? != b':' {
            return Err(self.err(ErrorKind::UnexpectedByte));
        }
        self.pos += 1;
        self.last = Last::Colon;
        Ok(Some(key))
    }

    #[inline(always)]
    fn begin_array(&mut self) -> Result<()> {
        self.ws();
        if self.byte()? != b'[' {
            return Err(self.err(ErrorKind::WrongType));
        }
        self.pos += 1;
        self.last = Last::Open;
        Ok(())
    }

    #[inline(always)]
    fn next_element(&mut self) -> Result<bool> {
        self.ws();
        match self.byte()? {
            b']' if matches!(self.last, Last::Open | Last::Value) => {
                self.pos += 1;
                self.last = Last::Value;
                Ok(false)
            }
            b',' if self.last == Last::Value => {
                self.pos += 1;
                self.last = Last::Comma;
                Ok(true)
            }
            b',' | b']' => Err(self.err(ErrorKind::UnexpectedByte)),
            _ if self.last == Last::Open => Ok(true),
            _ => Err(self.err(ErrorKind::UnexpectedByte)),
        }
    }

    #[inline(always)]
    fn string(&mut self) -> Result<Span> {
        self.ws();
        if self.byte()? != b'"' {
            return Err(self.err(ErrorKind::WrongType));
        }
        let start = self.pos + 1;
        let mut i = start;
        // The whole frame was validated as UTF-8 before any reader runs; here only the JSON rules
        // remain: no raw control characters, and no escapes on this path.
        loop {
            let Some(&c) = self.b.get(i) else {
                return Err(Error::new(ErrorKind::UnexpectedEnd, self.b.len()));
            };
            match c {
                b'"' => break,
                b'\\' | 0..=0x1f => return Err(Error::new(ErrorKind::InvalidString, i)),
                _ => {}
            }
            i += 1;
        }
        self.pos = i + 1;
        self.last = Last::Value;
        Ok(Span::new(start, i))
    }

    #[inline(always)]
    fn number(&mut self) -> Result<Span> {
        self.ws();
        let start = self.pos;
        match self.byte()? {
            b'-' | b'0'..=b'9' => {}
            _ => return Err(self.err(ErrorKind::WrongType)),
        }
        if self.b[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.b.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err(ErrorKind::InvalidNumber)),
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err(ErrorKind::InvalidNumber));
            }
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(ErrorKind::InvalidNumber));
            }
        }
        self.last = Last::Value;
        Ok(Span::new(start, self.pos))
    }

    #[inline(always)]
    fn boolean(&mut self) -> Result<bool> {
        self.ws();
        match self.byte()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => Err(self.err(ErrorKind::WrongType)),
        }
    }

    #[inline(always)]
    fn null(&mut self) -> Result<()> {
        self.ws();
        if self.byte()? != b'n' {
            return Err(self.err(ErrorKind::WrongType));
        }
        self.literal(b"null")
    }

    fn skip(&mut self) -> Result<()> {
        self.skip_depth(0)
    }

    fn mark(&self) -> Mark {
        // The separator state goes with the position, so that a mark taken anywhere (after a
        // key's colon, or after a value inside an array) is returned to exactly.
        let last = match self.last {
            Last::Open => 0,
            Last::Value => 1,
            Last::Comma => 2,
            Last::Colon => 3,
        };
        Mark { pos: self.pos, aux: last }
    }

    fn reset(&mut self, mark: Mark) {
        self.pos = mark.pos;
        self.last = match mark.aux {
            0 => Last::Open,
            1 => Last::Value,
            2 => Last::Comma,
            _ => Last::Colon,
        };
    }

    fn finish(&mut self) -> Result<()> {
        self.ws();
        if self.pos == self.b.len() { Ok(()) } else { Err(self.err(ErrorKind::TrailingBytes)) }
    }
}

/// One node of simd-json's tape, with the byte span of its text in the source.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tok {
    Object { len: u32, count: u32, at: u32 },
    Array { len: u32, count: u32, at: u32 },
    Str(Span),
    Num(Span),
    Bool(bool, u32),
    Null(u32),
}

impl Tok {
    fn at(self) -> usize {
        match self {
            Self::Object { at, .. } | Self::Array { at, .. } | Self::Bool(_, at) | Self::Null(at) => at as usize,
            Self::Str(s) | Self::Num(s) => s.start as usize,
        }
    }
}

/// Converts a simd-json tape over `buf` into [`Tok`]s with spans into `buf`.
///
/// simd-json has no raw-number API, so number text comes from its stage-1 structural indexes: the
/// k-th value on the tape starts at the k-th structural index that is not a separator or a closer.
pub(crate) fn tokens_from_simd(buf: &mut [u8], buffers: &mut simd_json::Buffers, out: &mut Vec<Tok>) -> Result<()> {
    use simd_json::{Node, StaticNode};
    out.clear();
    let len = buf.len();
    let base = buf.as_ptr() as usize;
    // The tape borrows `buf` mutably (strings are unescaped in place); collect what we need, then
    // drop it before reading `buf` again.
    let mut strings: Vec<(usize, usize)> = Vec::new();
    let mut shape: Vec<Tok> = Vec::new();
    {
        let tape =
            simd_json::to_tape_with_buffers(buf, buffers).map_err(|e| Error::new(ErrorKind::Syntax, e.index()))?;
        for node in &tape.0 {
            let tok = match *node {
                Node::String(s) => {
                    let start = (s.as_ptr() as usize).wrapping_sub(base);
                    if start > len || len - start < s.len() {
                        // simd-json placed the string outside the input: never expected, refuse.
                        return Err(Error::new(ErrorKind::Syntax, 0));
                    }
                    strings.push((start, start + s.len()));
                    Tok::Str(Span::default())
                }
                Node::Object { len, count } => Tok::Object { len: u32_of(len)?, count: u32_of(count)?, at: 0 },
                Node::Array { len, count } => Tok::Array { len: u32_of(len)?, count: u32_of(count)?, at: 0 },
                Node::Static(StaticNode::Bool(b)) => Tok::Bool(b, 0),
                Node::Static(StaticNode::Null) => Tok::Null(0),
                Node::Static(_) => Tok::Num(Span::default()),
            };
            shape.push(tok);
        }
    }
    let idx = buffers.structural_indexes();
    let mut k = 0usize;
    let next_value_start = |k: &mut usize| -> Result<(usize, usize)> {
        while let Some(&i) = idx.get(*k) {
            *k += 1;
            let i = i as usize;
            match buf.get(i) {
                Some(b':' | b',' | b']' | b'}') => {}
                Some(_) => {
                    let end = idx.get(*k).map_or(len, |&j| j as usize);
                    return Ok((i, end));
                }
                None => break,
            }
        }
        Err(Error::new(ErrorKind::Syntax, len))
    };
    let mut strings = strings.into_iter();
    for tok in shape {
        let (at, end) = next_value_start(&mut k)?;
        let at32 = u32_of(at)?;
        out.push(match tok {
            Tok::Object { len, count, .. } => Tok::Object { len, count, at: at32 },
            Tok::Array { len, count, .. } => Tok::Array { len, count, at: at32 },
            Tok::Str(_) => {
                let (s, e) = strings.next().ok_or_else(|| Error::new(ErrorKind::Syntax, at))?;
                if std::str::from_utf8(&buf[s..e]).is_err() {
                    return Err(Error::new(ErrorKind::InvalidString, at));
                }
                Tok::Str(Span::new(s, e))
            }
            Tok::Num(_) => {
                let mut e = end;
                while e > at && matches!(buf[e - 1], b' ' | b'\t' | b'\n' | b'\r') {
                    e -= 1;
                }
                let span = Span::new(at, e);
                // Hold the text to the JSON grammar ourselves: it is what callers will read.
                let mut check = Scanner::new(&buf[..e]);
                check.pos = at;
                if check.number().map(|s| s.end as usize) != Ok(e) {
                    return Err(Error::new(ErrorKind::InvalidNumber, at));
                }
                Tok::Num(span)
            }
            Tok::Bool(b, _) => Tok::Bool(b, at32),
            Tok::Null(_) => Tok::Null(at32),
        });
    }
    Ok(())
}

fn u32_of(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::new(ErrorKind::TooLarge, 0))
}

/// The general path: a [`Reader`] over a token list made by [`tokens_from_simd`].
#[derive(Debug)]
pub(crate) struct TapeReader<'t> {
    toks: &'t [Tok],
    idx: usize,
    remaining: [u32; MAX_DEPTH + 2],
    depth: usize,
}

impl<'t> TapeReader<'t> {
    pub(crate) fn new(toks: &'t [Tok]) -> Self {
        Self { toks, idx: 0, remaining: [0; MAX_DEPTH + 2], depth: 0 }
    }

    fn tok(&self) -> Result<Tok> {
        self.toks.get(self.idx).copied().ok_or_else(|| Error::new(ErrorKind::UnexpectedEnd, self.offset()))
    }

    fn wrong(&self) -> Error {
        Error::new(ErrorKind::WrongType, self.offset())
    }

    fn push(&mut self, n: u32) -> Result<()> {
        if self.depth > MAX_DEPTH {
            return Err(Error::new(ErrorKind::TooDeep, self.offset()));
        }
        self.depth += 1;
        self.remaining[self.depth] = n;
        self.idx += 1;
        Ok(())
    }

    fn next_in_container(&mut self) -> bool {
        if self.remaining[self.depth] == 0 {
            self.depth -= 1;
            false
        } else {
            self.remaining[self.depth] -= 1;
            true
        }
    }
}

impl Reader for TapeReader<'_> {
    fn offset(&self) -> usize {
        self.toks.get(self.idx).map_or_else(|| self.toks.last().map_or(0, |t| t.at()), |t| t.at())
    }

    fn peek(&mut self) -> Result<Kind> {
        Ok(match self.tok()? {
            Tok::Object { .. } => Kind::Object,
            Tok::Array { .. } => Kind::Array,
            Tok::Str(_) => Kind::String,
            Tok::Num(_) => Kind::Number,
            Tok::Bool(..) => Kind::Bool,
            Tok::Null(_) => Kind::Null,
        })
    }

    fn begin_object(&mut self) -> Result<()> {
        match self.tok()? {
            Tok::Object { len, .. } => self.push(len),
            _ => Err(self.wrong()),
        }
    }

    fn next_key(&mut self) -> Result<Option<Span>> {
        if !self.next_in_container() {
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn begin_array(&mut self) -> Result<()> {
        match self.tok()? {
            Tok::Array { len, .. } => self.push(len),
            _ => Err(self.wrong()),
        }
    }

    fn next_element(&mut self) -> Result<bool> {
        Ok(self.next_in_container())
    }

    fn string(&mut self) -> Result<Span> {
        match self.tok()? {
            Tok::Str(s) => {
                self.idx += 1;
                Ok(s)
            }
            _ => Err(self.wrong()),
        }
    }

    fn number(&mut self) -> Result<Span> {
        match self.tok()? {
            Tok::Num(s) => {
                self.idx += 1;
                Ok(s)
            }
            _ => Err(self.wrong()),
        }
    }

    fn boolean(&mut self) -> Result<bool> {
        match self.tok()? {
            Tok::Bool(b, _) => {
                self.idx += 1;
                Ok(b)
            }
            _ => Err(self.wrong()),
        }
    }

    fn null(&mut self) -> Result<()> {
        match self.tok()? {
            Tok::Null(_) => {
                self.idx += 1;
                Ok(())
            }
            _ => Err(self.wrong()),
        }
    }

    fn skip(&mut self) -> Result<()> {
        match self.tok()? {
            Tok::Object { count, .. } | Tok::Array { count, .. } => self.idx += 1 + count as usize,
            _ => self.idx += 1,
        }
        Ok(())
    }

    fn mark(&self) -> Mark {
        Mark { pos: self.idx, aux: self.depth }
    }

    fn reset(&mut self, mark: Mark) {
        self.idx = mark.pos;
        self.depth = mark.aux;
    }

    fn finish(&mut self) -> Result<()> {
        if self.idx == self.toks.len() { Ok(()) } else { Err(Error::new(ErrorKind::TrailingBytes, self.offset())) }
    }
}
