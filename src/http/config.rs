//! [`SiteConfig`]: every bound of the HTTP server, each a command-line
//! option of `spindle serve http`.

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
    /// Checks the bounds that have a hard ceiling; the error names the
    /// option.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_headers == 0 || self.max_headers > MAX_HEADERS_LIMIT {
            return Err(format!(
                "--max-headers must be between 1 and {MAX_HEADERS_LIMIT} (got {})",
                self.max_headers
            ));
        }
        if self.max_header_bytes < 64 {
            return Err(format!(
                "--max-header-bytes must be at least 64 (got {})",
                self.max_header_bytes
            ));
        }
        Ok(())
    }
}
