//! The concurrency models that drive protocols.
//!
//! # The engine contract
//!
//! Every engine, whatever its threads, keeps these promises to every
//! protocol (DESIGN.md). Each is written once, in the connection core
//! (`core.rs`), which every driver feeds: the blocking owner of the pool,
//! thread and process engines and of client connections
//! (`connection.rs`), the reactor (`reactor_conn.rs`), the test
//! [`Harness`](crate::testing::Harness) and the TLS wrapper
//! (`tls_server.rs`). Where a promise needs the driver too, it says which.
//!
//! 1. **One callback at a time per connection.** `connection_made`, each
//!    `data_received`, inbox closures, timers and `connection_lost` of one
//!    connection never overlap, and run in the order their causes arrived.
//!    `connection_lost` runs exactly once, last. *Kept by*: the core's
//!    events (`Core::made`, `received`, `commands`, `due`, `lost`), each
//!    run by one driver thread at a time.
//! 2. **Writes leave after the callback.** What a callback wrote is sent
//!    when it returns, in one `write` call where the socket takes it all;
//!    `lose_connection` sends it and then closes with a FIN;
//!    `abort_connection` drops it and closes with an RST. Inbox commands
//!    already queued run back to back (a bounded number) and their output
//!    leaves together, in order: a burst of broadcast lines is one `write`.
//!    *Kept by*: the core's verdicts (`Ok` / clean `End` / abort `End`) and
//!    `Core::commands` (the batch, stopping at a close); the write itself
//!    and the FIN + linger are the driver's (`Owner::settle`,
//!    `Conn::settle`).
//! 3. **Nothing is delivered after a close request.** Once a protocol asked
//!    to close, it receives no more data, inbox commands or timers.
//!    *Kept by*: the core: once an event answered with an `End`, later
//!    events run nothing.
//! 4. **Other threads go through the inbox.** A [`ConnHandle`] queues into
//!    a bounded channel; the owner never waits on it, and a full one is
//!    reported to the sender at once by every method but
//!    [`ConnHandle::call_timeout`], with which a sender (a Deferred's
//!    result, a child's output) chooses to wait, for at most its timeout,
//!    rather than lose a result to a momentary burst: the wait is the
//!    sender's, bounded, and only ever on another thread than the owner.
//!    `abort_connection` always gets through, as does `close_within`,
//!    whose deadline the engine keeps even while the owner is blocked
//!    writing to a peer that does not read. *Kept by*: the core's
//!    `Control` (kill flag and close deadline, checked after every
//!    callback and in `Core::due`); the driver's link wakes the owner
//!    (`ThreadLink`, the reactor's `Link`) and the blocking owner checks
//!    the deadline between write slices.
//! 5. **Bounds are enforced, with a log line.** Connections beyond the
//!    engine's capacity are refused (with the factory's busy message, if
//!    any, then a FIN after the peer's input is drained, never an RST);
//!    idle and write timeouts close; a panicking callback aborts only its
//!    own connection. `connection_lost` is told which engine limit closed
//!    it (`Reason::TimedOut("idle" | "write" | "close deadline")`); a
//!    protocol closing for a limit of its own says so with
//!    `Transport::lose_connection_because`. *Kept by*: `admission.rs` (cap, refusal, sessions, the open
//!    count), the core (idle timeout, close deadline, panics), the driver
//!    (write timeout: blocking `write` or the reactor's `blocked_since`).
//! 6. **Stopping is graceful.** On [`Stopper::stop`] the engine stops
//!    accepting, wakes every connection (idle ones close at once), lets them
//!    flush within [`ServerConfig::grace`], then closes what is left and
//!    calls `stop_factory`. *Kept by*: each engine (`pool.rs`, `thread.rs`,
//!    `process.rs`, `reactor.rs`), which then feeds the core
//!    `Reason::Shutdown`.
//! 7. **Input can be paused.** While a connection's input is paused
//!    ([`Transport::pause_producing`], or [`ConnHandle::pause_producing`]
//!    from another thread, Twisted's `pauseProducing`), the engine reads
//!    nothing from its socket: the kernel's buffers fill and TCP pushes
//!    back on the peer, and the engine holds at most a few reads of it
//!    in memory. Timers, inbox commands and close requests still run, with
//!    no busy loop. [`ConnHandle::resume_producing`] (or the protocol
//!    itself) resumes it, and the bytes are delivered in order, nothing
//!    lost. A paused connection still ends when its peer resets it
//!    (Twisted's paused transport still gets `connectionLost`): the
//!    engine watches the socket for errors without reading it. A FIN is
//!    input like any other: its EOF comes after the resume, in its place.
//!    The core keeps the state; each driver asks it (`Core::wants_input`)
//!    before reading. *Kept by*: the core (the state), the blocking owner
//!    (`connection.rs`: the reader thread, or the direct-mode owner, polls
//!    the socket for a hang-up while it may not read) and the reactor's
//!    and the hybrid's connection (`reactor_conn.rs`: a paused
//!    connection's error event is checked with `SO_ERROR`).
//!
//! # The engines
//!
//! * [`Model::Pool`] (`pool.rs`): a bounded pool of worker threads, one
//!   connection per worker from accept to close, a bounded queue of
//!   accepted connections in front. The default.
//! * [`Model::Thread`] (`thread.rs`): a new thread per connection, the
//!   same owner loop as a pool worker; `--max-connections` is its only
//!   bound.
//! * [`Model::Process`] (`process.rs`): a new `spindle` process per
//!   connection, inetd-style, the socket as its stdin and stdout.
//! * [`Model::Reactor`] (`reactor.rs`): one thread, non-blocking sockets
//!   and a mio event loop; every callback of every connection runs on it.
//! * [`Model::Hybrid`] (`hybrid/`): a poller holds every waiting
//!   connection; `--workers` threads run the ones with work, one turn at
//!   a time, through the connection core (Apache httpd's event MPM).
//!
//! [`ConnHandle`]: crate::ConnHandle
//! [`ConnHandle::call_timeout`]: crate::ConnHandle::call_timeout
//! [`ConnHandle::pause_producing`]: crate::ConnHandle::pause_producing
//! [`ConnHandle::resume_producing`]: crate::ConnHandle::resume_producing
//! [`Transport::pause_producing`]: crate::Transport::pause_producing

use std::fmt;
use std::time::Duration;

mod acceptor;
mod admission;
pub(crate) mod connection;
pub(crate) mod core;
mod hybrid;
mod pool;
mod process;
mod queue_watch;
mod reactor;
mod reactor_conn;
pub(crate) mod registry;
mod server;
mod service;
mod stopper;
mod stream;
mod thread;

pub use process::{ChildCommand, serve_inherited};
pub use server::{RunningServer, Server};
pub use stopper::Stopper;
pub use stream::Stream;

/// Which concurrency model serves the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    /// A bounded pool of threads, one connection per worker.
    #[default]
    Pool,
    /// A new thread per connection, no pool.
    Thread,
    /// A new process per connection, inetd-style.
    Process,
    /// One thread running a non-blocking event loop.
    Reactor,
    /// A poller holding idle connections and a bounded pool of workers
    /// running the ones with work.
    Hybrid,
}

impl Model {
    /// Every model, in the order the notes compare them.
    pub const ALL: &'static [Model] = &[
        Model::Pool,
        Model::Thread,
        Model::Process,
        Model::Reactor,
        Model::Hybrid,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Model::Pool => "pool",
            Model::Thread => "thread",
            Model::Process => "process",
            Model::Reactor => "reactor",
            Model::Hybrid => "hybrid",
        }
    }

    /// The model called `name` on the command line.
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The default cap on this model's open connections: a process per
    /// connection costs about 0.5 MiB of memory of its own and three
    /// threads (NOTES.md, section 2), so it gets a lower cap than the
    /// models whose connections cost KiB.
    pub fn default_max_connections(self) -> usize {
        match self {
            Model::Process => DEFAULT_PROCESS_MAX_CONNECTIONS,
            _ => DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// The default stack size of this model's connection threads.
    pub fn default_stack_size(self) -> usize {
        match self {
            Model::Thread => DEFAULT_THREAD_STACK_SIZE,
            _ => DEFAULT_STACK_SIZE,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Default number of pool workers: Apache httpd's `MaxRequestWorkers`.
pub const DEFAULT_WORKERS: usize = 256;
/// Default number of accepted connections that may wait for a worker.
pub const DEFAULT_QUEUE: usize = 256;
/// Default cap on open connections (served and queued).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default cap on open connections under the process model: one process
/// each (about 0.5 GiB of memory and 3,000 threads at the cap).
pub const DEFAULT_PROCESS_MAX_CONNECTIONS: usize = 1_000;
/// Default time one blocked write may take before the connection is dropped.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time connections get to finish when the server stops.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Default capacity of a connection's inbox, in commands (lines, for chat).
pub const DEFAULT_OUTBOUND_QUEUE: usize = 1024;
/// Default stack size of worker threads.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Default stack size of the thread engine's connection threads: small,
/// because one exists per open connection. 10,000 of them reserve 1.3 GB of
/// address space but touch only the pages they use.
pub const DEFAULT_THREAD_STACK_SIZE: usize = 128 * 1024;
/// Default size of each connection's read buffer.
pub const DEFAULT_READ_BUFFER: usize = 16 * 1024;
/// Default limit of the slow-callback watchdog: asyncio's debug-mode
/// `slow_callback_duration`.
pub const DEFAULT_SLOW_CALLBACK: Duration = Duration::from_millis(100);
/// Default time spent reading and discarding input after our FIN.
pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Every bound and timeout of a server. Each is a command-line option of
/// `spindle serve`; see [`ServerConfig::default`] for the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The concurrency model.
    pub model: Model,
    /// Pool workers: connections served at once.
    pub workers: usize,
    /// Accepted connections that may wait for a worker; more are refused.
    pub queue: usize,
    /// Open connections (served and waiting) beyond which new ones are
    /// refused.
    pub max_connections: usize,
    /// Close a connection that sent nothing for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Drop a connection whose peer does not read for this long while we
    /// write (`None`: wait for ever).
    pub write_timeout: Option<Duration>,
    /// How long connections get to finish when the server stops.
    pub grace: Duration,
    /// Commands (writes, closures) a connection's inbox holds; a sender
    /// finding it full is told so.
    pub outbound_queue: usize,
    /// Stack size of each worker thread, in bytes.
    pub stack_size: usize,
    /// Size of each connection's read buffer, in bytes.
    pub read_buffer: usize,
    /// After our FIN, how long unread input is drained so that the close
    /// does not become an RST.
    pub close_linger: Duration,
    /// The slow-callback watchdog (reactor and hybrid): a callback that
    /// runs longer than this is logged (`None`: off).
    pub slow_callback: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            model: Model::Pool,
            workers: DEFAULT_WORKERS,
            queue: DEFAULT_QUEUE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: None,
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            grace: DEFAULT_GRACE,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            stack_size: DEFAULT_STACK_SIZE,
            read_buffer: DEFAULT_READ_BUFFER,
            close_linger: DEFAULT_CLOSE_LINGER,
            slow_callback: Some(DEFAULT_SLOW_CALLBACK),
        }
    }
}
