//! Admission, for every engine: the connection cap, refusals, session
//! numbers, building the protocol, and the one count of open connections.
//!
//! ```text
//!  accepted ──admit──▶ under --max-connections? ──no──▶ refuse (busy message)
//!                         │ yes: session number, Ticket (counted open)
//!                         ▼
//!                  build_protocol (under catch_unwind)
//!                         │ refused by the factory ──▶ refuse (its message)
//!                         ▼
//!                  served; the Ticket is dropped when the connection ends
//! ```
//!
//! A refusal closes the way `lose_connection` does, never with an RST:
//! the message is written, then our FIN, then whatever the peer had sent
//! (a client that wrote its first line before reading, like
//! `printf 'help\n' | nc HOST PORT`) is read and discarded until its EOF,
//! for at most `--close-linger` and [`MAX_REFUSAL_DRAIN`] bytes. Closing
//! with unread input would send an RST, which destroys the refusal message
//! before the client reads it. The draining happens on a thread of its own
//! (the closer), so an accept loop never waits on a refused peer; at most
//! [`MAX_LINGERING_REFUSALS`] refused sockets linger at once, and beyond
//! that a refusal is closed at once.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::ServerConfig;
use super::core::panic_message;
use super::service::Service;
use super::stream::Stream;
use crate::log::ContextGuard;
use crate::protocol::{Addr, Factory, Protocol};

/// Refused sockets that may linger (draining, FIN sent) at once.
pub const MAX_LINGERING_REFUSALS: usize = 256;
/// At most this much input is read and discarded from one refused peer.
pub const MAX_REFUSAL_DRAIN: usize = 64 * 1024;
/// How long writing a refusal message may block (a fresh socket's send
/// buffer is empty, so this is only reached by a broken one).
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// The open connections of one server (served, queued, or a process
/// each), and a condition shutdown waits on until the count is zero.
#[derive(Default)]
struct OpenCount {
    n: Mutex<usize>,
    changed: Condvar,
}

impl OpenCount {
    fn get(&self) -> usize {
        *self.n.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self) {
        *self.n.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    fn sub(&self) {
        let mut n = self.n.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.changed.notify_all();
    }

    fn wait_zero(&self, deadline: Instant) -> usize {
        let mut n = self.n.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            n = match self.changed.wait_timeout(n, left) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
        *n
    }
}

/// One admitted connection in the open count; dropping it (when the
/// connection ends, or is dropped unserved) counts it out.
pub(crate) struct Ticket {
    open: Arc<OpenCount>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.open.sub();
    }
}

/// An admitted connection: its session number on its listener, and its
/// place in the open count.
pub(crate) struct Admitted {
    /// Connections accepted on the same listener before this one.
    pub session: u64,
    /// Counts the connection open until dropped.
    pub ticket: Ticket,
}

/// Admission for one server's services. See the [module docs](self).
pub(crate) struct Admission {
    factories: Vec<(Arc<dyn Factory>, Addr)>,
    sessions: Vec<AtomicU64>,
    open: Arc<OpenCount>,
    max_connections: usize,
    closer: Closer,
}

impl Admission {
    /// Admission for `services` under `config`'s cap; starts the closer.
    pub(crate) fn new(services: &[Service], config: &ServerConfig) -> io::Result<Admission> {
        let factories = services
            .iter()
            .map(|s| (s.factory.clone(), s.host.clone()))
            .collect();
        Admission::for_factories(factories, config)
    }

    /// Admission for factories, each with our address: for a child process
    /// serving one inherited connection.
    pub(crate) fn for_factories(
        factories: Vec<(Arc<dyn Factory>, Addr)>,
        config: &ServerConfig,
    ) -> io::Result<Admission> {
        Ok(Admission {
            sessions: factories.iter().map(|_| AtomicU64::new(0)).collect(),
            factories,
            open: Arc::new(OpenCount::default()),
            max_connections: config.max_connections,
            closer: Closer::start(config.close_linger)?,
        })
    }

    /// The factory of service `service`.
    pub(crate) fn factory(&self, service: usize) -> &dyn Factory {
        &*self.factories[service].0
    }

    /// Our address on service `service`.
    pub(crate) fn host(&self, service: usize) -> &Addr {
        &self.factories[service].1
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.get()
    }

    /// Waits until no connection is open or `deadline` passes; returns how
    /// many are still open.
    pub(crate) fn wait_all_closed(&self, deadline: Instant) -> usize {
        self.open.wait_zero(deadline)
    }

    /// A connection accepted on `service`: admitted (a session number,
    /// counted open) if fewer than `--max-connections` are open, else
    /// refused with the factory's busy message (`None`).
    pub(crate) fn admit(&self, service: usize, stream: Stream) -> Option<(Stream, Admitted)> {
        let open = self.open.get();
        if open >= self.max_connections {
            let why = format!(
                "{open} connections open (--max-connections {})",
                self.max_connections
            );
            self.refuse_busy(service, stream, &why);
            return None;
        }
        let session = self.sessions[service].fetch_add(1, Ordering::Relaxed);
        self.open.add();
        let ticket = Ticket {
            open: self.open.clone(),
        };
        Some((stream, Admitted { session, ticket }))
    }

    /// Turns away a connection the engine has no room for (`why`, for the
    /// log), telling the peer the factory's busy message if it has one.
    pub(crate) fn refuse_busy(&self, service: usize, stream: Stream, why: &str) {
        let factory = self.factory(service);
        let _ctx = ContextGuard::enter(factory.name());
        match stream.peer_addr() {
            Ok(peer) => log::warn!("refusing {peer}: {why}"),
            Err(_) => log::warn!("refusing a connection: {why}"),
        }
        self.closer.close(stream, factory.busy_message());
    }

    /// The protocol for an admitted connection from `peer`, built by the
    /// service's factory under `catch_unwind`. A refusal by the factory
    /// is logged and told to the peer (if it has words), a panic logged;
    /// either way the stream is closed and `None` returned.
    pub(crate) fn build(
        &self,
        service: usize,
        stream: Stream,
        peer: &Addr,
    ) -> Option<(Stream, Box<dyn Protocol>)> {
        let factory = self.factory(service);
        let _ctx = ContextGuard::enter(factory.name());
        match catch_unwind(AssertUnwindSafe(|| factory.build_protocol(peer))) {
            Ok(Ok(p)) => Some((stream, p)),
            Ok(Err(refusal)) => {
                log::info!("{} refused {}: {}", factory.name(), peer, refusal.reason);
                self.closer.close(stream, refusal.message.as_deref());
                None
            }
            Err(payload) => {
                log::error!("build_protocol panicked: {}", panic_message(&*payload));
                None
            }
        }
    }
}

/// Closes refused sockets gracefully, off the accepting thread.
struct Closer {
    /// Taken on drop, which tells the closer thread to finish.
    tx: Option<Sender<Stream>>,
    waker: Arc<Waker>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.tx = None;
        let _ = self.waker.wake();
    }
}

impl Closer {
    fn start(linger: Duration) -> io::Result<Closer> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), CLOSER_WAKE)?);
        let (tx, rx) = crossbeam_channel::bounded(MAX_LINGERING_REFUSALS);
        thread::Builder::new()
            .name("spindle-closer".into())
            .stack_size(64 * 1024)
            .spawn(move || linger_loop(poll, &rx, linger))?;
        Ok(Closer {
            tx: Some(tx),
            waker,
        })
    }

    /// Says `message` (if any), sends our FIN, and hands the socket to the
    /// closer thread to drain; if too many linger already, closes now.
    fn close(&self, stream: Stream, message: Option<&[u8]>) {
        let mut stream = stream;
        if let Some(message) = message {
            let _ = stream.set_write_timeout(Some(REFUSAL_WRITE_TIMEOUT));
            let _ = stream.write_all(message);
        }
        if stream.shutdown(Shutdown::Write).is_err() {
            return; // the peer is gone already
        }
        let Some(tx) = &self.tx else { return };
        match tx.try_send(stream) {
            Ok(()) => {
                let _ = self.waker.wake();
            }
            Err(TrySendError::Full(stream)) => {
                // Drain what already arrived, then close.
                let _ = stream.set_nonblocking(true);
                drain(&mut { stream }, &mut 0);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

const CLOSER_WAKE: Token = Token(usize::MAX);

/// Reads and discards what is there; `true` once the peer's EOF (or an
/// error, or the byte bound) says the socket may be closed.
fn drain(stream: &mut Stream, total: &mut usize) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                *total += n;
                if *total >= MAX_REFUSAL_DRAIN {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// The closer thread: each refused socket (FIN already sent) is drained
/// until the peer's EOF or `linger` has passed, then closed. Ends when the
/// admission is dropped and nothing lingers.
fn linger_loop(mut poll: Poll, rx: &Receiver<Stream>, linger: Duration) {
    struct Lingering {
        stream: Stream,
        until: Instant,
        drained: usize,
    }
    let mut lingering: HashMap<usize, Lingering> = HashMap::new();
    let mut next_token = 0usize;
    let mut events = Events::with_capacity(64);
    let mut open = true;
    while open || !lingering.is_empty() {
        let timeout = lingering
            .values()
            .map(|l| l.until)
            .min()
            .map(|t| t.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            log::error!("the closer cannot poll ({e}); closing refused sockets at once");
            return;
        }
        let mut ready: Vec<usize> = events
            .iter()
            .filter(|e| e.token() != CLOSER_WAKE)
            .map(|e| e.token().0)
            .collect();
        loop {
            match rx.try_recv() {
                Ok(stream) => {
                    let token = next_token;
                    next_token = next_token.wrapping_add(1) % (usize::MAX - 1);
                    if stream.set_nonblocking(true).is_err()
                        || poll
                            .registry()
                            .register(
                                &mut SourceFd(&stream.as_raw_fd()),
                                Token(token),
                                Interest::READABLE,
                            )
                            .is_err()
                    {
                        continue;
                    }
                    lingering.insert(
                        token,
                        Lingering {
                            stream,
                            until: Instant::now() + linger,
                            drained: 0,
                        },
                    );
                    ready.push(token);
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let now = Instant::now();
        for token in ready {
            if let Some(l) = lingering.get_mut(&token)
                && drain(&mut l.stream, &mut l.drained)
                && let Some(l) = lingering.remove(&token)
            {
                let _ = poll
                    .registry()
                    .deregister(&mut SourceFd(&l.stream.as_raw_fd()));
            }
        }
        lingering.retain(|_, l| {
            let keep = l.until > now;
            if !keep {
                let _ = poll
                    .registry()
                    .deregister(&mut SourceFd(&l.stream.as_raw_fd()));
            }
            keep
        });
    }
}
