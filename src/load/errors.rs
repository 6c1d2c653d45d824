//! Errors by kind, each with a count and the first cause seen, so a report
//! says both how often and why.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

/// What went wrong with a connection or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// The run was interrupted (Ctrl-C) while the request awaited its
    /// response.
    Interrupted,
    /// Anything else, with its cause.
    Other,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Refused,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::Protocol,
        ErrorKind::Status,
        ErrorKind::Local,
        ErrorKind::Interrupted,
        ErrorKind::Other,
    ];

    /// The kind a report names `name`.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }

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
            ErrorKind::Interrupted => "interrupted",
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
    /// The OS error's name (`ECONNREFUSED`), when an OS error caused it.
    pub errno: Option<&'static str>,
}

impl Fault {
    /// A fault of `kind` because of `cause`.
    pub fn new(kind: ErrorKind, cause: impl Into<String>) -> Self {
        Fault {
            kind,
            cause: cause.into(),
            errno: None,
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
        let errno = e.raw_os_error().and_then(errno_name);
        let cause = match errno {
            Some(name) => format!("{context}: {name}: {e}"),
            None => format!("{context}: {e}"),
        };
        Fault { kind, cause, errno }
    }
}

/// The symbolic name of an OS error number, for the errors a load
/// generator meets (sockets, files, memory); `None` for the rest, whose
/// text still says what happened.
pub fn errno_name(code: i32) -> Option<&'static str> {
    let name = match code {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EPIPE => "EPIPE",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENETDOWN => "ENETDOWN",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EAGAIN => "EAGAIN",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EALREADY => "EALREADY",
        libc::ENOTCONN => "ENOTCONN",
        libc::EINTR => "EINTR",
        libc::EINVAL => "EINVAL",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EBADF => "EBADF",
        libc::EPROTO => "EPROTO",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::ESHUTDOWN => "ESHUTDOWN",
        _ => return None,
    };
    Some(name)
}

/// Counts of each kind, with a sample cause and counts by OS error.
#[derive(Debug, Clone, Default)]
pub struct ErrorTally {
    kinds: BTreeMap<ErrorKind, KindTally>,
}

#[derive(Debug, Clone, Default)]
struct KindTally {
    count: u64,
    sample: String,
    by_errno: BTreeMap<String, u64>,
}

/// How many errors of one kind one OS error caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrnoCount {
    /// The OS error's name (`ECONNRESET`).
    pub errno: String,
    /// How many times.
    pub count: u64,
}

/// One row of the error report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The kind.
    pub kind: ErrorKind,
    /// How many times it happened.
    pub count: u64,
    /// The first cause seen.
    pub sample: String,
    /// The errors of this kind an OS error caused, by its name (empty when
    /// none did, as for a timeout or a protocol error).
    pub by_errno: Vec<ErrnoCount>,
}

impl ErrorTally {
    /// Counts one fault (keeps the first cause of each kind as the sample).
    pub fn add(&mut self, fault: &Fault) {
        let entry = self.kinds.entry(fault.kind).or_insert_with(|| KindTally {
            sample: fault.cause.clone(),
            ..KindTally::default()
        });
        entry.count += 1;
        if let Some(name) = fault.errno {
            match entry.by_errno.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    entry.by_errno.insert(name.to_string(), 1);
                }
            }
        }
    }

    /// Adds `count` errors of `kind` at once, as another report counted
    /// them (`spindle load merge`).
    pub fn add_counted(&mut self, row: &ErrorCount) {
        let entry = self.kinds.entry(row.kind).or_insert_with(|| KindTally {
            sample: row.sample.clone(),
            ..KindTally::default()
        });
        entry.count += row.count;
        for c in &row.by_errno {
            *entry.by_errno.entry(c.errno.clone()).or_default() += c.count;
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &ErrorTally) {
        for (kind, theirs) in &other.kinds {
            let entry = self.kinds.entry(*kind).or_insert_with(|| KindTally {
                sample: theirs.sample.clone(),
                ..KindTally::default()
            });
            entry.count += theirs.count;
            for (name, n) in &theirs.by_errno {
                *entry.by_errno.entry(name.clone()).or_default() += n;
            }
        }
    }

    /// How many of `kind`.
    pub fn count(&self, kind: ErrorKind) -> u64 {
        self.kinds.get(&kind).map_or(0, |e| e.count)
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.kinds.values().map(|e| e.count).sum()
    }

    /// The kinds that happened, in report order.
    pub fn rows(&self) -> Vec<ErrorCount> {
        self.kinds
            .iter()
            .map(|(kind, t)| ErrorCount {
                kind: *kind,
                count: t.count,
                sample: t.sample.clone(),
                by_errno: t
                    .by_errno
                    .iter()
                    .map(|(errno, &count)| ErrnoCount {
                        errno: errno.clone(),
                        count,
                    })
                    .collect(),
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
                sample: "first".into(),
                by_errno: Vec::new(),
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
        assert!(f.cause.starts_with("connect: EMFILE: "), "{}", f.cause);
        assert_eq!(f.errno, Some("EMFILE"));
        let mut t = ErrorTally::default();
        t.add(&Fault::from_io(&reset, "read"));
        t.add(&Fault::from_io(&pipe, "write"));
        t.add(&Fault::from_io(&reset, "read"));
        let rows = t.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].by_errno,
            vec![
                ErrnoCount {
                    errno: "ECONNRESET".into(),
                    count: 2
                },
                ErrnoCount {
                    errno: "EPIPE".into(),
                    count: 1
                }
            ]
        );
        assert!(rows[0].sample.contains("ECONNRESET"), "{}", rows[0].sample);
    }
}
