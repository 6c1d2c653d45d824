//! [`SiteConfig`]: every bound of the HTTP server, each a command-line
//! option of `spindle serve http`.

use std::fmt;
use std::time::Duration;

/// Default cap on a request line plus its headers: 16 KiB (nginx's
/// `large_client_header_buffers` allows 8 KiB per line; 16 KiB in all is
/// hyper's and Twisted's order of magnitude).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default cap on the number of header fields in one request; the HTTP
/// client holds a response to it too.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// `--max-headers` may not exceed this: the parser's header slots live on
/// the worker's stack.
pub const MAX_HEADERS_LIMIT: usize = 256;
/// `--max-header-bytes` may not be below this: a request line and a
/// `Host` header must fit.
pub const MIN_HEADER_BYTES: usize = 64;
/// Default cap on a request body (read and discarded): 1 MiB, nginx's
/// `client_max_body_size`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default time from the first byte of a request to the end of its headers
/// (and the longest pause allowed inside a body).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time an idle persistent connection is kept open between
/// requests.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle keep-alive connection looks whether connections are
/// waiting for a worker, under [`KeepAliveCliff::Release`].
pub const IDLE_POLL: Duration = Duration::from_millis(100);

/// Under [`KeepAliveCliff::Release`], a connection keeps its worker at
/// least this long even when others wait: a time slice, so that the cost
/// of a new connection is spread over many requests (NOTES.md measures it).
pub const RELEASE_SLICE: Duration = Duration::from_millis(20);

/// What a worker does with a persistent connection when other connections
/// wait for a worker (the *keep-alive cliff*, see NOTES.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepAliveCliff {
    /// Give the worker up: once the connection has had its
    /// [`RELEASE_SLICE`], a response after which no request is already
    /// buffered says `Connection: close`, and an idle connection is closed
    /// within [`IDLE_POLL`]. Every client gets served.
    #[default]
    Release,
    /// Keep the connection until the client or the keep-alive timeout ends
    /// it: the classic pool, where clients beyond the worker count wait.
    Hold,
}

impl KeepAliveCliff {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KeepAliveCliff::Release => "release",
            KeepAliveCliff::Hold => "hold",
        }
    }
}

/// The HTTP server's limits. See each field and [`SiteConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// Request line plus headers, in bytes; more gets `431`.
    pub max_header_bytes: usize,
    /// Header fields per request (at most [`MAX_HEADERS_LIMIT`]); more gets
    /// `431`.
    pub max_headers: usize,
    /// Request body, in bytes (a chunked body counted as sent, chunk
    /// framing included); more gets `413`.
    pub max_body_bytes: u64,
    /// From a request's first byte to the end of its headers, and the
    /// longest pause inside its body; then `408` and a close. `None`: no
    /// limit (slowloris can then hold a worker for ever).
    pub header_timeout: Option<Duration>,
    /// An idle persistent connection is closed after this long. `None`:
    /// kept until the client closes it.
    pub keepalive_timeout: Option<Duration>,
    /// What to do with persistent connections when others wait.
    pub keepalive_cliff: KeepAliveCliff,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_timeout: Some(DEFAULT_HEADER_TIMEOUT),
            keepalive_timeout: Some(DEFAULT_KEEPALIVE_TIMEOUT),
            keepalive_cliff: KeepAliveCliff::Release,
        }
    }
}

impl SiteConfig {
    /// Checks the bounds that have a hard ceiling or floor; the error names
    /// the option and carries the value given.
    pub fn validate(&self) -> Result<(), SiteConfigError> {
        if self.max_headers == 0 || self.max_headers > MAX_HEADERS_LIMIT {
            return Err(SiteConfigError::MaxHeaders {
                got: self.max_headers,
            });
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(SiteConfigError::MaxHeaderBytes {
                got: self.max_header_bytes,
            });
        }
        Ok(())
    }
}

/// A [`SiteConfig`] bound outside its range: which one, and the value
/// given. `Display` names the command-line option.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SiteConfigError {
    /// `max_headers` (`--max-headers`) is 0 or over [`MAX_HEADERS_LIMIT`].
    MaxHeaders {
        /// The value given.
        got: usize,
    },
    /// `max_header_bytes` (`--max-header-bytes`) is under
    /// [`MIN_HEADER_BYTES`].
    MaxHeaderBytes {
        /// The value given.
        got: usize,
    },
}

impl fmt::Display for SiteConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiteConfigError::MaxHeaders { got } => write!(
                f,
                "--max-headers must be between 1 and {MAX_HEADERS_LIMIT} (got {got})"
            ),
            SiteConfigError::MaxHeaderBytes { got } => write!(
                f,
                "--max-header-bytes must be at least {MIN_HEADER_BYTES} (got {got})"
            ),
        }
    }
}

impl std::error::Error for SiteConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_option_and_the_value() {
        assert_eq!(SiteConfig::default().validate(), Ok(()));
        for (config, error, text) in [
            (
                SiteConfig {
                    max_headers: 0,
                    ..SiteConfig::default()
                },
                SiteConfigError::MaxHeaders { got: 0 },
                "--max-headers must be between 1 and 256 (got 0)",
            ),
            (
                SiteConfig {
                    max_headers: MAX_HEADERS_LIMIT + 1,
                    ..SiteConfig::default()
                },
                SiteConfigError::MaxHeaders { got: 257 },
                "--max-headers must be between 1 and 256 (got 257)",
            ),
            (
                SiteConfig {
                    max_header_bytes: 63,
                    ..SiteConfig::default()
                },
                SiteConfigError::MaxHeaderBytes { got: 63 },
                "--max-header-bytes must be at least 64 (got 63)",
            ),
        ] {
            assert_eq!(config.validate(), Err(error.clone()));
            assert_eq!(error.to_string(), text);
        }
    }
}
