//! The client side: connecting out, as Twisted's `clientFromString`,
//! `ClientFactory` and `ReconnectingClientFactory` do, on threads.
//!
//! * [`ClientEndpoint`]: where to connect (`tcp:H:P`, `tls:H:P`, `unix:/p`).
//! * [`ClientFactory`]: builds the protocol and hears `started_connecting`,
//!   `client_connection_failed` and `client_connection_lost`.
//! * [`connect`] / [`Connector`]: an attempt runs on its own thread, which
//!   owns the connection once it is up; the protocol runs under the same
//!   contract as on the server side (one callback at a time, writes sent
//!   after each callback, other threads through a [`ConnHandle`]).
//! * [`ClientConfig`]: every bound and timeout of a client connection.
//! * [`fetch_page`]: an HTTP/1.1 GET of a URL's body (Twisted's `getPage`).
//!
//! [`ConnHandle`]: crate::ConnHandle

use std::sync::Arc;
use std::time::Duration;

mod connector;
mod dial;
mod driver;
pub mod endpoint;
pub mod factory;
pub mod http_response;
pub mod imap;
pub mod page;
pub mod reconnect;
pub mod tls;
pub mod url;

pub use connector::{Connector, connect};
pub use endpoint::ClientEndpoint;
pub use factory::{ClientFactory, ConnectError};
pub use page::{PageError, PageOptions, fetch_page, get_page};
pub use reconnect::ReconnectingClientFactory;

// A client connection is served by the same owner as a server connection,
// with the same defaults: one definition each, in engine/mod.rs.
pub use crate::engine::{
    DEFAULT_OUTBOUND_QUEUE, DEFAULT_READ_BUFFER, DEFAULT_STACK_SIZE, DEFAULT_WRITE_TIMEOUT,
};

/// Every bound and timeout of a client connection. The connect timeout
/// belongs to the endpoint (`:timeout=S`).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Trusted authorities for `tls:` endpoints; `None`: the system's
    /// (see [`tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Close the connection when nothing arrived for this long (`None`:
    /// never).
    pub idle_timeout: Option<Duration>,
    /// Drop the connection when the server does not read for this long
    /// while we write (`None`: wait for ever).
    pub write_timeout: Option<Duration>,
    /// Commands a connection's inbox holds.
    pub outbound_queue: usize,
    /// Size of the read buffer, in bytes.
    pub read_buffer: usize,
    /// Stack size of the connection's thread, in bytes.
    pub stack_size: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            tls: None,
            idle_timeout: None,
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            read_buffer: DEFAULT_READ_BUFFER,
            stack_size: DEFAULT_STACK_SIZE,
        }
    }
}
