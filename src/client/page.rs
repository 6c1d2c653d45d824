//! `get_page`: fetch a URL's body over HTTP/1.1 (Twisted's `getPage`).
//!
//! One GET per connection (`Connection: close`), `http://` or `https://`,
//! redirects followed up to a bound, every step timed: connecting (the
//! endpoint timeout), silence from the server (the idle timeout), and the
//! whole request. A status outside 2xx is an error carrying the status.
//!
//! [`fetch_page`] blocks the calling thread until the body or an error.
//! Inside a protocol, [`get_page`] returns a [`Deferred`] instead, fired on
//! the connection's owner, as Twisted's `getPage` does.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http_response::{
    DEFAULT_MAX_BODY, DEFAULT_MAX_HEAD, Response, ResponseError, ResponseParser,
};
use super::url::{Url, UrlError};
use super::{ClientConfig, ClientFactory, ConnectError, connect};
use crate::deferred::{Deferred, Failure};
use crate::protocol::{Addr, Protocol, Reason};
use crate::transport::Transport;

/// Default number of redirects followed.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;
/// Default time one request may take, connection included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time the server may stay silent mid-response.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default connect (and TLS handshake) timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds and timeouts of a page fetch.
#[derive(Debug, Clone)]
pub struct PageOptions {
    /// Redirects followed before giving up.
    pub max_redirects: u32,
    /// Time for connecting and the TLS handshake.
    pub connect_timeout: Duration,
    /// Time for one whole request (each redirect gets its own).
    pub request_timeout: Duration,
    /// Time the server may send nothing mid-response.
    pub idle_timeout: Duration,
    /// Bound on the status line and headers.
    pub max_head: usize,
    /// Bound on the body.
    pub max_body: usize,
    /// The client settings (TLS roots).
    pub client: ClientConfig,
}

impl Default for PageOptions {
    fn default() -> Self {
        PageOptions {
            max_redirects: DEFAULT_MAX_REDIRECTS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_head: DEFAULT_MAX_HEAD,
            max_body: DEFAULT_MAX_BODY,
            client: ClientConfig::default(),
        }
    }
}

/// Why a page could not be fetched. One line of text each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// The URL (or a redirect's Location) is not one we can fetch.
    Url(UrlError),
    /// Connecting failed (refused, DNS, TLS, timeout).
    Connect(ConnectError),
    /// The response was malformed, too large, or cut short.
    Response(ResponseError),
    /// The server answered with a status outside 2xx.
    Status {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The URL that answered so.
        url: String,
        /// The body, which often says why.
        body: Vec<u8>,
    },
    /// More redirects than allowed.
    TooManyRedirects(u32),
    /// A redirect without a Location header.
    NoLocation(u16),
    /// The whole request took too long, or the server went silent.
    TimedOut(Duration),
    /// The connection broke before a response came.
    Lost(String),
}

impl PageError {
    /// The HTTP status, for [`PageError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            PageError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::Url(e) => e.fmt(f),
            PageError::Connect(e) => e.fmt(f),
            PageError::Response(e) => e.fmt(f),
            PageError::Status {
                status,
                reason,
                url,
                ..
            } => write!(f, "HTTP {status} {reason} from {url}"),
            PageError::TooManyRedirects(n) => write!(f, "more than {n} redirects"),
            PageError::NoLocation(status) => {
                write!(f, "a {status} redirect without a Location header")
            }
            PageError::TimedOut(after) => write!(f, "the request timed out after {after:?}"),
            PageError::Lost(why) => write!(f, "the connection was lost: {why}"),
        }
    }
}

impl std::error::Error for PageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PageError::Url(e) => Some(e),
            PageError::Connect(e) => Some(e),
            PageError::Response(e) => Some(e),
            _ => None,
        }
    }
}

/// Where a fetch's one outcome goes; taken once.
type Sink = Arc<Mutex<Option<Box<dyn FnOnce(Result<Response, PageError>) + Send>>>>;

fn deliver(sink: &Sink, outcome: Result<Response, PageError>) {
    let f = sink.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(f) = f {
        f(outcome);
    }
}

/// The HTTP/1.1 client protocol: one GET, one response.
pub struct HttpClient {
    request: Vec<u8>,
    parser: ResponseParser,
    sink: Sink,
    idle_timeout: Duration,
}

impl HttpClient {
    fn new(url: &Url, options: &PageOptions, sink: Sink) -> Self {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: spindle/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
            url.target,
            url.authority(),
            env!("CARGO_PKG_VERSION")
        );
        HttpClient {
            request: request.into_bytes(),
            parser: ResponseParser::new(options.max_head, options.max_body),
            sink,
            idle_timeout: options.idle_timeout,
        }
    }
}

impl Protocol for HttpClient {
    fn connection_made(&mut self, transport: &mut Transport) {
        transport.write(&self.request);
    }

    fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
        match self.parser.feed(data) {
            Ok(None) => {}
            Ok(Some(response)) => {
                deliver(&self.sink, Ok(response));
                transport.lose_connection();
            }
            Err(e) => {
                deliver(&self.sink, Err(PageError::Response(e)));
                transport.abort_connection();
            }
        }
    }

    fn connection_lost(&mut self, reason: &Reason) {
        let outcome = match reason {
            Reason::Done => self.parser.finish().map_err(PageError::Response),
            Reason::TimedOut("idle") => Err(PageError::TimedOut(self.idle_timeout)),
            other => Err(PageError::Lost(other.to_string())),
        };
        deliver(&self.sink, outcome);
    }
}

struct PageFactory {
    url: Url,
    options: PageOptions,
    sink: Sink,
}

impl ClientFactory for PageFactory {
    fn name(&self) -> &str {
        "HTTPClientFactory"
    }
    fn build_protocol(&self, _peer: &Addr) -> Box<dyn Protocol> {
        Box::new(HttpClient::new(&self.url, &self.options, self.sink.clone()))
    }
    fn client_connection_failed(&self, _: &super::Connector, reason: &ConnectError) {
        deliver(&self.sink, Err(PageError::Connect(reason.clone())));
    }
}

/// One request, no redirects: the response whatever its status.
pub fn fetch_response(url: &Url, options: &PageOptions) -> Result<Response, PageError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let sink: Sink = Arc::new(Mutex::new(Some(Box::new(move |outcome| {
        let _ = tx.send(outcome);
    }))));
    let mut client = options.client.clone();
    client.idle_timeout = Some(options.idle_timeout);
    let factory = PageFactory {
        url: url.clone(),
        options: options.clone(),
        sink,
    };
    let endpoint = url.endpoint(options.connect_timeout);
    let connector = connect(&endpoint, Arc::new(factory), client);
    match rx.recv_timeout(options.request_timeout) {
        Ok(outcome) => outcome,
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            connector.stop_connecting();
            if let Some(h) = connector.handle() {
                h.abort_connection();
            }
            Err(PageError::TimedOut(options.request_timeout))
        }
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            Err(PageError::Lost("the client ended without an answer".into()))
        }
    }
}

/// Fetches `url`, following redirects, and returns the body of the final
/// 2xx response. Blocks the calling thread; see the [module docs](self).
pub fn fetch_page(url: &str, options: &PageOptions) -> Result<Vec<u8>, PageError> {
    let mut url = Url::parse(url).map_err(PageError::Url)?;
    let mut redirects = 0;
    loop {
        let response = fetch_response(&url, options)?;
        match response.status {
            200..=299 => return Ok(response.body),
            301 | 302 | 303 | 307 | 308 => {
                if redirects >= options.max_redirects {
                    return Err(PageError::TooManyRedirects(options.max_redirects));
                }
                redirects += 1;
                let location = response
                    .header("location")
                    .ok_or(PageError::NoLocation(response.status))?;
                let next = url.join(location.trim()).map_err(PageError::Url)?;
                log::debug!("{} redirects to {next}", response.status);
                url = next;
            }
            status => {
                return Err(PageError::Status {
                    status,
                    reason: response.reason,
                    url: url.to_string(),
                    body: response.body,
                });
            }
        }
    }
}

/// Twisted's `getPage`: fetches `url` (as [`fetch_page`]) off the owner
/// and returns a [`Deferred`] of the body, fired on this connection's
/// owner. Errors arrive as a [`Failure`] whose message is the
/// [`PageError`]'s one line (`HTTP 404 Not Found from ...` for a status).
///
/// The fetch runs on a thread of its own (plus its connection's), so the
/// owner never blocks; every step is bounded by `options`' timeouts.
#[track_caller]
pub fn get_page<P: Protocol>(
    transport: &mut Transport,
    url: &str,
    options: PageOptions,
) -> Deferred<P, Vec<u8>> {
    let (deferred, resolver) = Deferred::<P, Vec<u8>>::new(transport);
    let resolver = resolver.failing_if_dropped("get_page could not start a thread");
    let url = url.to_string();
    let spawned = std::thread::Builder::new()
        .name("spindle-get-page".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            let result = fetch_page(&url, &options).map_err(|e| Failure::new(e.to_string()));
            resolver.resolve(result);
        });
    if let Err(e) = spawned {
        // The closure, and the resolver in it, is dropped: the chain fails.
        log::error!("cannot start a get_page thread: {e}");
    }
    deferred
}
