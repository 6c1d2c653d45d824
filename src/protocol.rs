//! The protocol contract: [`Protocol`], [`Factory`], [`Addr`] and [`Reason`].
//!
//! A protocol is a sans-IO state machine. An engine calls its callbacks in
//! this order, never two at once for the same connection:
//!
//! 1. [`Protocol::connection_made`] once,
//! 2. [`Protocol::data_received`] any number of times, with the bytes cut at
//!    arbitrary places (TCP keeps no message boundaries),
//! 3. closures and timers scheduled through the [`Transport`], interleaved
//!    with the data in arrival order,
//! 4. [`Protocol::connection_lost`] exactly once, last.
//!
//! Everything the protocol wants to say to the world goes through the
//! [`Transport`] it is handed in each callback. It never owns a socket, so
//! the same protocol runs on every engine and in unit tests.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::transport::Transport;

/// One side of a connection: a TCP address or a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 socket address.
    Tcp(SocketAddr),
    /// A Unix domain socket; the path is empty for unnamed (client) sockets.
    Unix(PathBuf),
}

impl Addr {
    /// The host part as it appears in log prefixes: the IP address for TCP,
    /// `unix` for Unix sockets.
    pub fn host_string(&self) -> String {
        match self {
            Addr::Tcp(a) => a.ip().to_string(),
            Addr::Unix(_) => "unix".to_string(),
        }
    }

    /// The port for TCP addresses.
    pub fn port(&self) -> Option<u16> {
        match self {
            Addr::Tcp(a) => Some(a.port()),
            Addr::Unix(_) => None,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(p) if p.as_os_str().is_empty() => write!(f, "unix:(unnamed)"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why a connection ended, as handed to [`Protocol::connection_lost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Closed cleanly: the peer sent EOF, or we called `lose_connection`.
    Done,
    /// We called `abort_connection`: unsent data was dropped.
    Aborted,
    /// The connection broke (reset, broken pipe, ...); the text says how.
    Lost(String),
    /// A configured timeout expired; the text names which one.
    TimedOut(&'static str),
    /// The server is shutting down.
    Shutdown,
    /// A callback of this connection panicked; the text is the panic message.
    Panicked(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Done => write!(f, "Connection was closed cleanly."),
            Reason::Aborted => write!(f, "Connection was aborted."),
            Reason::Lost(why) => write!(f, "Connection was lost: {why}."),
            Reason::TimedOut(which) => write!(f, "Connection timed out ({which})."),
            Reason::Shutdown => write!(f, "Server is shutting down."),
            Reason::Panicked(msg) => write!(f, "A callback panicked: {msg}"),
        }
    }
}

/// A connection's behaviour: callbacks an engine calls, one at a time.
///
/// Implement `data_received` at least. Every callback gets the connection's
/// [`Transport`]; writes made there are sent when the callback returns.
pub trait Protocol: Any + Send {
    /// The connection is up. Greetings are written here.
    fn connection_made(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// Bytes arrived. They may hold part of a message, or several.
    fn data_received(&mut self, data: &[u8], transport: &mut Transport);

    /// Input was paused and a [`ConnHandle::resume_producing`] resumed it:
    /// bytes the protocol held back while paused (the rest of a read) may
    /// be processed now. Not called when the protocol resumes itself.
    ///
    /// [`ConnHandle::resume_producing`]: crate::ConnHandle::resume_producing
    fn producing_resumed(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// The connection is gone; called exactly once, after every other
    /// callback. Release shared state (counters, room membership) here.
    fn connection_lost(&mut self, reason: &Reason) {
        let _ = reason;
    }

    /// The name used in log prefixes (`Echo,0,127.0.0.1`). Defaults to the
    /// type's name without its module path.
    fn log_prefix(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
}

/// `a::b::Echo<c::D>` → `Echo`: what Twisted shows as the class name.
pub fn short_type_name(full: &'static str) -> &'static str {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// A factory's answer to "may this peer connect?" when the answer is no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why, for the log.
    pub reason: String,
    /// One line for the peer before the close, if the protocol has a way to
    /// say it (line protocols do; binary ones should leave this `None`).
    pub message: Option<Vec<u8>>,
}

impl Refusal {
    /// A refusal with a log reason and nothing said to the peer.
    pub fn silent(reason: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
            message: None,
        }
    }
}

/// Builds one [`Protocol`] per accepted connection, and holds what the
/// connections of one service share (a counter, a chat room).
///
/// One factory may listen on several ports; `start_factory` runs before the
/// first port opens and `stop_factory` after the last one closes, once each.
pub trait Factory: Send + Sync + 'static {
    /// The name in log lines: `EchoFactory starting on 0.0.0.0:1234`.
    fn name(&self) -> &str;

    /// A new protocol for the connection from `peer`, or a refusal: the
    /// connection is then closed at once (after the refusal's message).
    fn build_protocol(&self, peer: &Addr) -> Result<Box<dyn Protocol>, Refusal>;

    /// Runs once, before the first listening port accepts.
    fn start_factory(&self) {}

    /// Runs once, after the last listening port has closed and its
    /// connections are gone.
    fn stop_factory(&self) {}

    /// What a peer refused by the *engine* (all workers busy and the queue
    /// full, or `--max-connections` reached) is told before the close, if
    /// the protocol has a way to say it. Default: nothing (a silent close).
    fn busy_message(&self) -> Option<&[u8]> {
        None
    }

    /// Whether this factory holds state that its connections share (a
    /// count, a room, a rotation). Engines that cannot share memory between
    /// connections (the process model) say so in the log when they serve
    /// it: each connection then sees a fresh factory. Default: `false`.
    fn shares_state(&self) -> bool {
        false
    }
}

/// A factory that builds protocols from a closure: the shortcut for
/// protocols whose connections share nothing (Twisted's
/// `Factory.forProtocol`).
pub struct FnFactory<F> {
    name: String,
    build: F,
    busy: Option<Vec<u8>>,
}

impl<F> FnFactory<F>
where
    F: Fn(&Addr) -> Box<dyn Protocol> + Send + Sync + 'static,
{
    /// A factory named `name` whose protocols `build` makes.
    pub fn new(name: impl Into<String>, build: F) -> Self {
        FnFactory {
            name: name.into(),
            build,
            busy: None,
        }
    }

    /// Sets the line told to peers the engine turns away.
    pub fn with_busy_message(mut self, message: impl Into<Vec<u8>>) -> Self {
        self.busy = Some(message.into());
        self
    }
}

impl<F> Factory for FnFactory<F>
where
    F: Fn(&Addr) -> Box<dyn Protocol> + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn build_protocol(&self, peer: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        Ok((self.build)(peer))
    }

    fn busy_message(&self) -> Option<&[u8]> {
        self.busy.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_paths_and_generics() {
        assert_eq!(short_type_name("spindle::protocols::echo::Echo"), "Echo");
        assert_eq!(short_type_name("a::Line<b::Chat>"), "Line");
        assert_eq!(short_type_name("Plain"), "Plain");
    }

    #[test]
    fn addr_display_and_host() {
        let a = Addr::Tcp("127.0.0.1:5000".parse().unwrap());
        assert_eq!(a.to_string(), "127.0.0.1:5000");
        assert_eq!(a.host_string(), "127.0.0.1");
        let u = Addr::Unix(PathBuf::from("/tmp/s.sock"));
        assert_eq!(u.to_string(), "unix:/tmp/s.sock");
        assert_eq!(u.host_string(), "unix");
    }
}
