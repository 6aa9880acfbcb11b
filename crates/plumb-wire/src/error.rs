//! The one error type of `plumb-wire`.

/// What went wrong while parsing a frame.
///
/// Parser errors are small `Copy` values so that the hot path never allocates to report one.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A byte that the JSON grammar does not allow here.
    UnexpectedByte,
    /// A number that is not valid JSON number syntax.
    InvalidNumber,
    /// A string that holds invalid UTF-8 or an unescaped control character.
    InvalidString,
    /// Nesting deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    TooDeep,
    /// Bytes after the end of the top-level value.
    TrailingBytes,
    /// simd-json rejected the document (its own syntax check, on the fallback path).
    Syntax,
    /// A field has the wrong JSON type (for example a string where a number belongs).
    WrongType,
    /// A field that the message kind requires is absent.
    MissingField,
    /// A field's value is outside its domain (a checksum above `u32::MAX`, an unknown book type).
    InvalidValue,
    /// The frame is valid JSON but not a message this parser knows how to read.
    UnknownMessage,
    /// The frame is larger than [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN) or holds more entries than
    /// the parser accepts.
    TooLarge,
    /// A REST answer carries the exchange's error code instead of data (OKX `"code":"51001"`).
    Refused,
}

impl ErrorKind {
    /// A short, stable name for logs and counters.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnexpectedEnd => "unexpected end of input",
            Self::UnexpectedByte => "unexpected byte",
            Self::InvalidNumber => "invalid number",
            Self::InvalidString => "invalid string",
            Self::TooDeep => "nesting too deep",
            Self::TrailingBytes => "trailing bytes after the value",
            Self::Syntax => "invalid JSON",
            Self::WrongType => "field has the wrong type",
            Self::MissingField => "required field missing",
            Self::InvalidValue => "field value out of range",
            Self::UnknownMessage => "unknown message",
            Self::TooLarge => "frame too large",
            Self::Refused => "the exchange answered with an error code",
        }
    }
}

/// A parse error: what went wrong and at which byte offset of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{} at byte {offset}", kind.as_str())]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The byte offset in the frame where it was found.
    pub offset: u32,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, offset: usize) -> Self {
        Self { kind, offset: u32::try_from(offset).unwrap_or(u32::MAX) }
    }
}

/// The result type of `plumb-wire`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
