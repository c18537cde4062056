//! What a backend says when it cannot answer, in a form the gateway can decide on: what went wrong, whether
//! asking again could help, and the error underneath. Each room and limit then fails open or closed by its
//! `on_store_error` setting; a place a client was already told it has is never lost either way.

use std::error::Error;
use std::fmt;

/// What kind of failure: what an operator looks at first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store cannot be reached or refused the connection.
    Unavailable,
    /// The store did not answer in time; the operation may or may not have been applied.
    Timeout,
    /// Another writer changed the state first (an optimistic check failed).
    Conflict,
    /// The store answered with something this version cannot read.
    Corrupt,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Conflict => "conflict",
            Self::Corrupt => "corrupt",
        }
    }

    /// Whether the same call, made again, can succeed: a lost connection or a lost race can clear, a reply
    /// this version cannot read will not.
    fn retryable(self) -> bool {
        !matches!(self, Self::Corrupt)
    }
}

/// A backend could not answer.
#[derive(Debug)]
pub struct StoreError {
    kind: ErrorKind,
    retryable: bool,
    /// What was being done, for the log: `"room visit"`, `"limit check"`.
    context: String,
    source: Option<Box<dyn Error + Send + Sync>>,
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Self { kind, retryable: kind.retryable(), context: context.into(), source: None }
    }

    pub fn unavailable(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, context)
    }

    pub fn timeout(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, context)
    }

    /// The error underneath (the driver's, the socket's).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Says that asking again will not help, whatever the kind suggests.
    #[must_use]
    pub fn permanent(mut self) -> Self {
        self.retryable = false;
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store {}: {}", self.kind.as_str(), self.context)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_retry_and_source_are_kept_and_shown() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = StoreError::unavailable("room visit").with_source(io);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "store unavailable: room visit: refused");
        assert!(e.source().is_some());
        assert!(!StoreError::new(ErrorKind::Corrupt, "x").is_retryable());
        assert!(!StoreError::timeout("x").permanent().is_retryable());
    }
}
