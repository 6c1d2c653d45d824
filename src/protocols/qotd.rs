//! Quote of the Day (RFC 865): on connect, one quote, then close.
//!
//! The server ignores anything the client sends. RFC 865 asks that a quote
//! be under 512 characters; quotes from `--quotes FILE` (one per line)
//! are checked when loaded, and a file with an overlong or no quote is
//! refused with the line number.
//!
//! ```text
//! $ nc localhost 8007
//! An apple a day keeps the doctor away.
//! ```

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::protocol::{Addr, Factory, Protocol, Refusal};
use crate::transport::Transport;

/// Where `spindle serve qotd` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:8007";

/// RFC 865: a quote should be shorter than this, line end included.
pub const MAX_QUOTE_BYTES: usize = 512;

/// The quotes served when no file is given.
pub const BUILTIN_QUOTES: &[&str] = &[
    "An apple a day keeps the doctor away.",
    "Twisted is an event-driven networking engine; Spindle is its threaded mirror.",
    "Premature optimization is the root of all evil. -- Donald Knuth",
    "Measure twice, cut once.",
    "The network is reliable. -- the first fallacy of distributed computing",
];

/// Writes one quote and closes.
#[derive(Debug, Clone)]
pub struct Qotd {
    quote: Arc<str>,
}

impl Qotd {
    /// A protocol that will say `quote`.
    pub fn new(quote: impl Into<Arc<str>>) -> Self {
        Qotd {
            quote: quote.into(),
        }
    }
}

impl Protocol for Qotd {
    fn connection_made(&mut self, transport: &mut Transport) {
        transport.write_sequence(&[self.quote.as_bytes(), b"\r\n"]);
        transport.lose_connection();
    }

    fn data_received(&mut self, _data: &[u8], _transport: &mut Transport) {}
}

/// Hands out quotes in turn (`QOTDFactory` in logs).
#[derive(Debug)]
pub struct QotdFactory {
    quotes: Vec<Arc<str>>,
    next: AtomicUsize,
}

/// A quotes file that cannot be served.
#[derive(Debug)]
pub struct QuotesError(pub String);

impl std::fmt::Display for QuotesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuotesError {}

impl QotdFactory {
    /// Serves `quotes` in turn; each must be non-empty, one line, and fit
    /// RFC 865's 512 bytes with its CRLF.
    pub fn new(quotes: Vec<String>) -> Result<Self, QuotesError> {
        if quotes.is_empty() {
            return Err(QuotesError("no quotes to serve".into()));
        }
        for (i, q) in quotes.iter().enumerate() {
            if q.len() + 2 > MAX_QUOTE_BYTES {
                return Err(QuotesError(format!(
                    "quote {} is {} bytes; RFC 865 allows {} with the line end",
                    i + 1,
                    q.len(),
                    MAX_QUOTE_BYTES - 2
                )));
            }
            if q.contains(['\r', '\n']) {
                return Err(QuotesError(format!("quote {} spans lines", i + 1)));
            }
        }
        Ok(QotdFactory {
            quotes: quotes.into_iter().map(Arc::from).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// The built-in quotes.
    pub fn builtin() -> Self {
        Self::new(BUILTIN_QUOTES.iter().map(|q| q.to_string()).collect())
            .expect("built-in quotes are valid")
    }

    /// Quotes from a file, one per non-empty line.
    pub fn from_file(path: &Path) -> Result<Self, QuotesError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| QuotesError(format!("cannot read quotes from {}: {e}", path.display())))?;
        let quotes: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        Self::new(quotes).map_err(|e| QuotesError(format!("{}: {e}", path.display())))
    }
}

impl Factory for QotdFactory {
    fn name(&self) -> &str {
        "QOTDFactory"
    }

    /// The rotation through the quotes is shared by every connection.
    fn shares_state(&self) -> bool {
        true
    }

    fn build_protocol(&self, _peer: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.quotes.len();
        Ok(Box::new(Qotd::new(self.quotes[i].clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, test_peer};
    use crate::transport::Closing;

    #[test]
    fn writes_one_quote_then_closes_and_ignores_input() {
        let mut h = Harness::new(Qotd::new("hi"));
        h.connect();
        assert_eq!(h.take_output(), b"hi\r\n");
        assert_eq!(h.closing(), Closing::Lose);
        assert!(!h.feed(b"ignored"));
    }

    #[test]
    fn quotes_rotate() {
        let f = QotdFactory::new(vec!["a".into(), "b".into()]).unwrap();
        let said: Vec<String> = (0..3)
            .map(|_| {
                let mut t = crate::Transport::new(
                    crate::transport::ConnInfo {
                        peer: test_peer(),
                        host: test_peer(),
                        session: 0,
                    },
                    1,
                );
                f.build_protocol(&test_peer())
                    .unwrap()
                    .connection_made(&mut t);
                String::from_utf8(t.take_output()).unwrap()
            })
            .collect();
        assert_eq!(said, ["a\r\n", "b\r\n", "a\r\n"]);
    }

    #[test]
    fn bad_quote_sets_are_refused() {
        assert!(QotdFactory::new(vec![]).is_err());
        assert!(QotdFactory::new(vec!["x".repeat(510)]).is_ok());
        let e = QotdFactory::new(vec!["ok".into(), "x".repeat(511)]).unwrap_err();
        assert!(e.to_string().contains("quote 2 is 511 bytes"), "{e}");
        assert!(QotdFactory::new(vec!["a\nb".into()]).is_err());
    }
}
