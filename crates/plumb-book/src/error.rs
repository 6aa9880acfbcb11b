//! The one error type of `plumb-book`.

/// What went wrong while changing a book.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A depth that the exchange does not offer.
    #[error("depth {0} is not one of 10, 25, 100, 500, 1000")]
    InvalidDepth(u32),
    /// A price or quantity that is not a plain non-negative decimal number.
    #[error("not a non-negative decimal number")]
    InvalidNumber,
    /// A price or quantity with more than 18 decimal places.
    #[error("more than 18 decimal places")]
    TooPrecise,
    /// A value, or the book rescaled to a new precision, does not fit the 64-bit mantissa.
    #[error("value too large for a 64-bit mantissa at this precision")]
    Overflow,
    /// An update arrived for a book that has not had a snapshot.
    #[error("update before any snapshot")]
    NoSnapshot,
    /// A snapshot names one price twice on one side: it is not a book.
    #[error("a snapshot names a price twice")]
    DuplicatePrice,
}

/// The result type of `plumb-book`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
