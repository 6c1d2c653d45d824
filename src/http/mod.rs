//! HTTP/1.1 on the protocol contract, in the spirit of `twisted.web`.
//!
//! * [`Resource`]: what answers requests, with one render function per
//!   method (`render_get`, `render_post`, ...). A method a resource does not
//!   render is answered `405 Method Not Allowed` with an `Allow` header.
//! * [`Site`]: the factory. It holds the root resource and the limits
//!   ([`SiteConfig`]) and builds one [`HttpChannel`] per connection.
//! * [`HttpChannel`]: the protocol. It owns parsing (httparse), bodies
//!   (read and discarded, `Content-Length` or chunked), persistent
//!   connections, pipelining, `Expect: 100-continue`, timeouts and every
//!   error status.
//!
//! ```
//! use spindle::http::{Rendered, Request, Resource, Response, SiteConfig, Site};
//! use spindle::testing::Harness;
//! use spindle::Factory;
//!
//! struct Hello;
//! impl Resource for Hello {
//!     fn allowed_methods(&self) -> &'static str { "GET, HEAD" }
//!     fn render_get(&self, _req: &Request<'_>, resp: &mut Response) -> Rendered {
//!         resp.write(b"hello\n");
//!         Rendered::Done
//!     }
//! }
//!
//! let site = Site::new(Hello, SiteConfig::default());
//! let mut h = Harness::new(site.channel());
//! h.connect();
//! h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
//! let text = h.take_text();
//! assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(text.ends_with("\r\n\r\nhello\n"));
//! ```

mod body;
mod channel;
pub(crate) mod chunked;
mod config;
mod date;
mod request;
mod resource;
mod response;
mod site;

pub use channel::HttpChannel;
pub use chunked::MAX_CHUNK_LINE_BYTES;
pub use config::{
    DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, IDLE_POLL, KeepAliveCliff, MAX_HEADERS_LIMIT,
    MIN_HEADER_BYTES, RELEASE_SLICE, SiteConfig, SiteConfigError,
};
pub use request::{Method, Request, Version};
pub use resource::{Rendered, Resource};
pub use response::{Response, Status};
pub use site::Site;

/// What `Server:` says on every response.
pub const SERVER: &str = concat!("spindle/", env!("CARGO_PKG_VERSION"));
