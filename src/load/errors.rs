//! Errors by kind, each with a count and the first cause seen, so a report
//! says both how often and why.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use serde::Serialize;

/// What went wrong with a connection or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection was refused (nothing listening, or the server's
    /// queue is full).
    Refused,
    /// The connection was reset (RST) or the pipe broke.
    Reset,
    /// No connection or no response within `--timeout`.
    Timeout,
    /// The server closed the connection while a response was due.
    Closed,
    /// The server sent something that breaks the protocol (a malformed
    /// HTTP response, an echo that differs from what was sent).
    Protocol,
    /// An HTTP response with a status other than 2xx.
    Status,
    /// This machine could not open a connection (out of file descriptors
    /// or local ports).
    Local,
    /// Anything else, with its cause.
    Other,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Refused,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::Protocol,
        ErrorKind::Status,
        ErrorKind::Local,
        ErrorKind::Other,
    ];

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Status => "status",
            ErrorKind::Local => "local",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failure: its kind and a human-readable cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The kind it is counted under.
    pub kind: ErrorKind,
    /// Why, for the report's sample.
    pub cause: String,
}

impl Fault {
    /// A fault of `kind` because of `cause`.
    pub fn new(kind: ErrorKind, cause: impl Into<String>) -> Self {
        Fault {
            kind,
            cause: cause.into(),
        }
    }

    /// Classifies a socket error (`context`: what we were doing).
    pub fn from_io(e: &io::Error, context: &str) -> Self {
        use io::ErrorKind as K;
        let kind = match e.kind() {
            K::ConnectionRefused => ErrorKind::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::Reset,
            K::TimedOut => ErrorKind::Timeout,
            K::AddrNotAvailable | K::OutOfMemory => ErrorKind::Local,
            _ if e.raw_os_error() == Some(libc::EMFILE)
                || e.raw_os_error() == Some(libc::ENFILE) =>
            {
                ErrorKind::Local
            }
            _ => ErrorKind::Other,
        };
        Fault::new(kind, format!("{context}: {e}"))
    }
}

/// Counts of each kind, with a sample cause.
#[derive(Debug, Clone, Default)]
pub struct ErrorTally {
    kinds: BTreeMap<ErrorKind, (u64, String)>,
}

/// One row of the error report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorCount {
    /// The kind.
    pub kind: ErrorKind,
    /// How many times it happened.
    pub count: u64,
    /// The first cause seen.
    pub sample: String,
}

impl ErrorTally {
    /// Counts one fault (keeps the first cause of each kind as the sample).
    pub fn add(&mut self, fault: &Fault) {
        let entry = self
            .kinds
            .entry(fault.kind)
            .or_insert_with(|| (0, fault.cause.clone()));
        entry.0 += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &ErrorTally) {
        for (kind, (count, sample)) in &other.kinds {
            let entry = self
                .kinds
                .entry(*kind)
                .or_insert_with(|| (0, sample.clone()));
            entry.0 += count;
        }
    }

    /// How many of `kind`.
    pub fn count(&self, kind: ErrorKind) -> u64 {
        self.kinds.get(&kind).map_or(0, |e| e.0)
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.kinds.values().map(|e| e.0).sum()
    }

    /// The kinds that happened, in report order.
    pub fn rows(&self) -> Vec<ErrorCount> {
        self.kinds
            .iter()
            .map(|(kind, (count, sample))| ErrorCount {
                kind: *kind,
                count: *count,
                sample: sample.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_keep_the_first_cause() {
        let mut a = ErrorTally::default();
        a.add(&Fault::new(ErrorKind::Reset, "first"));
        a.add(&Fault::new(ErrorKind::Reset, "second"));
        a.add(&Fault::new(ErrorKind::Protocol, "bad"));
        let mut b = ErrorTally::default();
        b.add(&Fault::new(ErrorKind::Reset, "other thread"));
        b.add(&Fault::new(ErrorKind::Refused, "nobody home"));
        a.merge(&b);
        assert_eq!(a.total(), 5);
        assert_eq!(a.count(ErrorKind::Reset), 3);
        let rows = a.rows();
        assert_eq!(rows[0].kind, ErrorKind::Refused);
        assert_eq!(
            rows[1],
            ErrorCount {
                kind: ErrorKind::Reset,
                count: 3,
                sample: "first".into()
            }
        );
    }

    #[test]
    fn socket_errors_are_classified() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(Fault::from_io(&refused, "connect").kind, ErrorKind::Refused);
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(Fault::from_io(&reset, "read").kind, ErrorKind::Reset);
        let pipe = io::Error::from_raw_os_error(libc::EPIPE);
        assert_eq!(Fault::from_io(&pipe, "write").kind, ErrorKind::Reset);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let f = Fault::from_io(&emfile, "connect");
        assert_eq!(f.kind, ErrorKind::Local);
        assert!(f.cause.starts_with("connect: "), "{}", f.cause);
    }
}
