//! # Spindle
//!
//! The servers of Twisted's tutorials — echo, QOTD, the connection counter
//! and friends — served on the *blocking* model that Twisted's documents
//! contrast with the event loop: threads that block in `read`, a bounded
//! pool of them, and channels between them.
//!
//! ## Brief overview
//!
//! * [`Protocol`]: a connection's behaviour, a sans-IO state machine with
//!   `connection_made`, `data_received` and `connection_lost` callbacks.
//! * [`Transport`]: what a protocol sees of its connection — `write`,
//!   `lose_connection`, `abort_connection`, `peer`, timers, and
//!   [`Transport::handle`].
//! * [`ConnHandle`]: a `Send + Clone` way for other threads to write to a
//!   connection, close it, or run a closure on its owner.
//! * [`Factory`]: builds a protocol per connection and holds what the
//!   connections of one service share.
//! * [`Endpoint`]: where to listen, from Twisted-style strings (`tcp:1234`).
//! * [`Server`]: listening endpoints and their factories, driven by an
//!   engine ([`engine`]) until its [`Stopper`] fires.
//! * [`testing`]: drive a protocol in memory, in every chunking.
//! * [`deferred`]: results that arrive later (`Deferred`, Twisted's
//!   callback/errback chains, run on the connection's owner) and
//!   `defer_to_thread`, on the bounded [`blocking`] pool.
//! * [`spawn`]: child processes whose output reaches a connection's owner
//!   (`spawn_process` + `ProcessProtocol`).
//! * [`framing`]: whole lines, netstrings and length-prefixed strings out
//!   of the byte stream ([`framing::line::LineReceiver`] and friends).
//! * `load` (feature `cli`, on by default): the load generator and the
//!   bench runner behind `spindle load` and `spindle bench`. Without the
//!   feature the library builds without the command line's crates (clap,
//!   plotters, serde, ctrlc, hdrhistogram).
//!
//! ## A server in a few lines
//!
//! ```no_run
//! use std::sync::Arc;
//! use spindle::{Endpoint, FnFactory, Protocol, Server, ServerConfig, Transport};
//!
//! /// Shouts back what it hears.
//! struct Shout;
//!
//! impl Protocol for Shout {
//!     fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
//!         transport.write(&data.to_ascii_uppercase());
//!     }
//! }
//!
//! let mut server = Server::new(ServerConfig::default());
//! let factory = FnFactory::new("ShoutFactory", |_| Box::new(Shout) as Box<dyn Protocol>);
//! server.listen(&Endpoint::parse("tcp:4321")?, Arc::new(factory))?;
//! println!("try: nc localhost 4321");
//! server.run()?; // until Ctrl-C stops it (the CLI wires that up)
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod blocking;
pub mod catalog;
pub mod client;
pub mod deferred;
pub mod duration;
pub mod endpoint;
pub mod engine;
pub mod framing;
pub mod http;
#[cfg(feature = "cli")]
pub mod load;
pub mod log;
pub mod protocol;
pub mod protocols;
pub mod spawn;
pub mod testing;
pub mod tls_failure;
pub mod tls_server;
pub mod transport;

pub use endpoint::{Endpoint, EndpointError, Listener};
pub use engine::{Model, RunningServer, Server, ServerConfig, Stopper};
pub use protocol::{Addr, Factory, FnFactory, Protocol, Reason, Refusal};
pub use transport::{Closing, ConnHandle, ConnInfo, HandleError, TimerId, Transport};
