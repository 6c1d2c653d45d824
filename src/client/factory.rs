//! [`ClientFactory`]: Twisted's client-side factory callbacks, and
//! [`ConnectError`]: why a connection attempt failed.

use std::fmt;
use std::time::Duration;

use super::Connector;
use crate::protocol::{Addr, Protocol, Reason};

/// Builds the protocol of an outgoing connection and hears how connection
/// attempts go. Every callback runs on the attempt's own thread (the
/// connection's owner once connected), so a factory shared by several
/// connectors must be `Sync`.
///
/// The order, per attempt: `started_connecting`, then either
/// `client_connection_failed`, or `build_protocol`, the protocol's whole
/// life (`connection_made` ... `connection_lost`), and
/// `client_connection_lost`.
pub trait ClientFactory: Send + Sync + 'static {
    /// The name in log lines.
    fn name(&self) -> &str {
        "ClientFactory"
    }

    /// The protocol for a connection that just succeeded, to `peer`.
    fn build_protocol(&self, peer: &Addr) -> Box<dyn Protocol>;

    /// An attempt begins (before name resolution).
    fn started_connecting(&self, connector: &Connector) {
        let _ = connector;
    }

    /// The attempt failed: refused, timed out, no such host, TLS failure,
    /// or cancelled by [`Connector::stop_connecting`].
    fn client_connection_failed(&self, connector: &Connector, reason: &ConnectError) {
        let _ = (connector, reason);
    }

    /// An established connection ended, after its protocol's
    /// `connection_lost`.
    fn client_connection_lost(&self, connector: &Connector, reason: &Reason) {
        let _ = (connector, reason);
    }
}

/// Why a connection attempt failed. The `Display` text is one line for
/// humans; match on the variant, not the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The host name did not resolve.
    Resolve {
        /// The name.
        host: String,
        /// The resolver's words.
        reason: String,
    },
    /// Every address of the host refused or failed.
    Connect {
        /// The last address tried.
        addr: String,
        /// The system's words (e.g. "Connection refused").
        reason: String,
        /// The system's error kind, for predicates.
        kind: std::io::ErrorKind,
    },
    /// A step took longer than the endpoint's timeout.
    TimedOut {
        /// Which step: `resolving`, `connecting`, `the TLS handshake`.
        step: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The TLS handshake failed (a bad certificate, a wrong host name, no
    /// common protocol version) or TLS could not be set up.
    Tls {
        /// The host we expected.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// [`Connector::stop_connecting`] was called during the attempt.
    Cancelled,
    /// Anything else (e.g. no thread could be started).
    Other(String),
}

impl ConnectError {
    /// Whether the peer actively refused (nothing listens there).
    pub fn is_refused(&self) -> bool {
        matches!(self, ConnectError::Connect { kind, .. } if *kind == std::io::ErrorKind::ConnectionRefused)
    }

    /// Whether a timeout expired.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ConnectError::TimedOut { .. })
    }

    /// Whether TLS failed.
    pub fn is_tls(&self) -> bool {
        matches!(self, ConnectError::Tls { .. })
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve { host, reason } => {
                write!(f, "cannot resolve host {host:?}: {reason}")
            }
            ConnectError::Connect { addr, reason, .. } => {
                write!(f, "cannot connect to {addr}: {reason}")
            }
            ConnectError::TimedOut { step, after } => {
                write!(f, "{step} timed out after {after:?}")
            }
            ConnectError::Tls { host, reason } => {
                write!(f, "TLS with {host} failed: {reason}")
            }
            ConnectError::Cancelled => write!(f, "the connection attempt was cancelled"),
            ConnectError::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ConnectError {}
