//! The hybrid engine: what production thread servers do (Apache httpd's
//! event MPM, Tomcat's NIO connector, the half-sync/half-async pattern).
//! One poller thread holds every connection that waits — for input, for
//! room in its socket, or for its next deadline — and `--workers` threads
//! run only the connections that have work.
//!
//! ```text
//!  poller (mio, edge-triggered)                        workers 1..N
//!  ┌─────────────────────────────────────┐  hand-off  ┌──────────────────┐
//!  │ listener readable → admit, register ├──────────▶ │ take the Conn    │
//!  │ socket readable/writable ┐          │  channel   │ core: made, data,│
//!  │ inbox wake-up (waker)    ├ has work?├──────────▶ │ commands, timers │
//!  │ deadline due             ┘          │            │ write what the   │
//!  │ parked: Conn in its slot ◀──────────┼─── back ── │ socket takes     │
//!  └─────────────────────────────────────┘  (waker)   └──────────────────┘
//! ```
//!
//! How it keeps the engine contract:
//!
//! * **A connection is never on two workers at once**: a [`Conn`] moves by
//!   value — parked in its slot, in the hand-off channel, or in one
//!   worker's hands — so there is nothing to share and nothing to lock.
//!   Readiness that arrives while it is out is noted in the slot and
//!   looked at when it comes back.
//! * **Callbacks in order, one at a time**: one worker runs one turn of
//!   the connection through the [`Core`](crate::engine::core::Core): due
//!   deadlines, the inbox commands queued (up to
//!   [`COMMANDS_PER_TURN`](super::reactor::COMMANDS_PER_TURN)), then the
//!   socket's input (up to [`READS_PER_TURN`](super::reactor::READS_PER_TURN)
//!   reads); the next turn starts only after this one came back.
//! * **Output the socket does not take waits on the poller**: the worker
//!   writes what the socket takes and hands the connection back; it is
//!   handed out again when the socket is writable (or its write timeout
//!   comes). While output waits, the connection takes no input, commands
//!   or timers, as in the reactor.
//! * **Idle connections cost no thread**: a parked connection is a slot,
//!   its socket's registration and its buffers.
//! * **A blocking callback holds only its own worker**: the others go on
//!   serving every other connection.
//! * **Bounds**: `--workers` threads, `--max-connections` connections
//!   (beyond it, refused with the factory's busy message and a log line);
//!   the hand-off channel holds at most one entry per open connection.
//! * **Stopping**: listeners leave the poll, every connection is ended as
//!   if its peer had sent EOF (flush, FIN, linger), what is left after
//!   the grace period is aborted.

mod conn;
mod link;
mod sock;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use self::conn::{Conn, Ctx};
use self::link::{Key, Link};
use self::sock::Sock;
use super::core::{Control, Core, End, panic_message};
use super::pool::refuse;
use super::service::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper};
use crate::endpoint::Listener;
use crate::log::{ContextGuard, connection_context};
use crate::protocol::{Addr, Factory, Reason};
use crate::transport::{ConnInfo, Transport};

const WAKER: Token = Token(usize::MAX);
/// Accept back-off after running out of descriptors: first and longest.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// After the grace period, how long connections still on a worker (in a
/// callback that does not return) are waited for before the engine
/// gives up on them.
const STRAGGLER_WAIT: Duration = Duration::from_secs(1);

/// What a worker hands back to the poller.
enum Back {
    /// The turn is over and the connection goes on; `true`: it had more
    /// to do than its turn allowed.
    Park(Box<Conn>, bool),
    /// The connection ended on the worker (its socket is closed and
    /// `connection_lost` ran).
    Closed(Key),
}

/// Where a slot's connection is.
enum Place {
    Free,
    /// In the slot, waiting for an event or a deadline.
    Parked(Box<Conn>),
    /// On a worker, or on its way to or from one; the readiness seen
    /// meanwhile is kept for when it comes back.
    Out {
        readable: bool,
        writable: bool,
    },
}

struct Slot {
    generation: u64,
    place: Place,
    link: Option<Arc<Link>>,
    /// The deadline this slot has in the poller's set, if any.
    scheduled: Option<Instant>,
}

/// What every worker shares.
struct WorkerEnv {
    config: Arc<ServerConfig>,
    stopper: Stopper,
    registry: mio::Registry,
    back: Sender<Back>,
    waker: Arc<Waker>,
}

pub(crate) fn run(
    services: &[Service],
    config: Arc<ServerConfig>,
    stopper: &Stopper,
) -> io::Result<()> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    stopper.add_waker(waker.clone());
    for (i, s) in services.iter().enumerate() {
        super::acceptor::register_listener(poll.registry(), &s.listener, Token(i))?;
    }
    let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Box<Conn>>();
    let (back_tx, back_rx) = crossbeam_channel::unbounded::<Back>();
    let env = Arc::new(WorkerEnv {
        config: config.clone(),
        stopper: stopper.clone(),
        registry: poll.registry().try_clone()?,
        back: back_tx,
        waker: waker.clone(),
    });
    let mut started = 0;
    for i in 0..config.workers.max(1) {
        let jobs = jobs_rx.clone();
        let env = env.clone();
        let spawned = thread::Builder::new()
            .name(format!("spindle-hybrid-{i}"))
            .stack_size(config.stack_size)
            .spawn(move || worker(&jobs, &env));
        match spawned {
            Ok(_) => started += 1,
            Err(e) if started > 0 => {
                log::warn!(
                    "could start only {started} of {} workers: {e}",
                    config.workers
                );
                break;
            }
            Err(e) => {
                return Err(io::Error::other(format!(
                    "cannot start any worker thread: {e}"
                )));
            }
        }
    }
    drop(jobs_rx);
    let (wake_tx, wake_rx) = crossbeam_channel::unbounded();
    let mut poller = Poller {
        poll,
        waker,
        services,
        config,
        stopper: stopper.clone(),
        sessions: vec![0; services.len()],
        slots: Vec::new(),
        free: Vec::new(),
        next_generation: 0,
        open: 0,
        wake_tx,
        wake_rx,
        deadlines: BTreeSet::new(),
        jobs: jobs_tx,
        back: back_rx,
        pending_accept: vec![true; services.len()],
        accept_paused_until: None,
        backoff: FIRST_BACKOFF,
        stopping: false,
    };
    // Dropping the poller closes the hand-off channel: the workers end.
    poller.run()
}

/// A worker: runs the turns it is handed until the channel closes.
fn worker(jobs: &Receiver<Box<Conn>>, env: &WorkerEnv) {
    let mut buf = vec![0u8; env.config.read_buffer.max(512)];
    while let Ok(conn) = jobs.recv() {
        let key = conn.key;
        let back = match catch_unwind(AssertUnwindSafe(|| turn(conn, env, &mut buf))) {
            Ok(back) => back,
            Err(payload) => {
                log::error!(
                    "a worker caught a panic outside any callback: {}",
                    panic_message(&*payload)
                );
                Back::Closed(key)
            }
        };
        if env.back.send(back).is_ok() {
            let _ = env.waker.wake();
        }
    }
}

/// One turn of one connection, on a worker.
fn turn(mut conn: Box<Conn>, env: &WorkerEnv, buf: &mut [u8]) -> Back {
    let _context = ContextGuard::enter(conn.context.as_str());
    let mut ctx = Ctx {
        config: &env.config,
        buf,
        now: Instant::now(),
        stopping: env.stopper.is_stopped(),
    };
    match conn.turn(&mut ctx) {
        Ok(again) => Back::Park(conn, again),
        Err(end) => {
            let key = conn.key;
            conn.finish(end, &env.registry);
            Back::Closed(key)
        }
    }
}

struct Poller<'a> {
    poll: Poll,
    waker: Arc<Waker>,
    services: &'a [Service],
    config: Arc<ServerConfig>,
    stopper: Stopper,
    sessions: Vec<u64>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    next_generation: u64,
    open: usize,
    wake_tx: Sender<Key>,
    wake_rx: Receiver<Key>,
    /// Each parked connection's next deadline, at most one per slot.
    deadlines: BTreeSet<(Instant, usize, u64)>,
    jobs: Sender<Box<Conn>>,
    back: Receiver<Back>,
    /// Listeners whose backlog may not be empty.
    pending_accept: Vec<bool>,
    accept_paused_until: Option<Instant>,
    backoff: Duration,
    stopping: bool,
}

impl Poller<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut stop_deadline: Option<Instant> = None;
        let mut give_up: Option<Instant> = None;
        loop {
            if stop_deadline.is_none() && self.stopper.is_stopped() {
                stop_deadline = Some(self.begin_stop());
            }
            if let Some(deadline) = stop_deadline {
                if self.open == 0 {
                    return Ok(());
                }
                let now = Instant::now();
                if give_up.is_none() && now >= deadline {
                    self.abort_all();
                    give_up = Some(now + STRAGGLER_WAIT);
                    continue;
                }
                if give_up.is_some_and(|g| now >= g) {
                    log::warn!(
                        "{} connections still in a callback; leaving them",
                        self.open
                    );
                    return Ok(());
                }
            }
            let timeout = self.poll_timeout([stop_deadline, give_up]);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.abort_all();
                    return Err(e);
                }
            }
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                if token.0 < self.services.len() {
                    self.pending_accept[token.0] = true;
                    continue;
                }
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let read_closed = event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_write_closed() || event.is_error();
                self.ready(
                    token.0 - self.services.len(),
                    readable,
                    read_closed,
                    writable,
                );
            }
            while let Ok(back) = self.back.try_recv() {
                self.returned(back);
            }
            // Wake-ups from other threads: one outstanding per connection.
            while let Ok(key) = self.wake_rx.try_recv() {
                self.woken(key);
            }
            if stop_deadline.is_none() {
                self.accept_all();
            }
            let now = Instant::now();
            while let Some(&(when, slot, generation)) = self.deadlines.first()
                && when <= now
            {
                self.deadlines.pop_first();
                if let Some(s) = self.slots.get_mut(slot)
                    && s.generation == generation
                {
                    s.scheduled = None;
                    self.consider(slot);
                }
            }
        }
    }

    fn poll_timeout(&self, more: [Option<Instant>; 2]) -> Option<Duration> {
        let first = self.deadlines.first().map(|(when, _, _)| *when);
        let next = [first, self.accept_paused_until]
            .into_iter()
            .chain(more)
            .flatten()
            .min();
        // Round up, so that the loop does not spin just short of a deadline.
        next.map(|when| when.saturating_duration_since(Instant::now()) + Duration::from_micros(500))
    }

    /// A socket event for `slot`.
    fn ready(&mut self, slot: usize, readable: bool, read_closed: bool, writable: bool) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        match &mut s.place {
            Place::Free => {}
            Place::Parked(conn) => {
                conn.readable |= readable;
                conn.read_closed |= read_closed;
                conn.writable |= writable;
                self.consider(slot);
            }
            Place::Out {
                readable: r,
                writable: w,
            } => {
                *r |= readable;
                *w |= writable;
                // The FIN's edge is spent: the worker must read to EOF.
                if read_closed {
                    *r = true;
                }
            }
        }
    }

    /// A wake-up from another thread (inbox, kill, close deadline).
    fn woken(&mut self, (slot, generation): Key) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if s.generation != generation {
            return;
        }
        if let Some(link) = &s.link {
            link.scheduled.store(false, Ordering::SeqCst);
        }
        // Out: the worker's turn, or the check when it comes back, sees
        // what was queued before this wake-up.
        if matches!(s.place, Place::Parked(_)) {
            self.consider(slot);
        }
    }

    /// A worker is done with a turn.
    fn returned(&mut self, back: Back) {
        match back {
            Back::Park(mut conn, again) => {
                let (slot, generation) = conn.key;
                let Some(s) = self
                    .slots
                    .get_mut(slot)
                    .filter(|s| s.generation == generation)
                else {
                    return;
                };
                if let Place::Out { readable, writable } = s.place {
                    conn.readable |= readable;
                    conn.writable |= writable;
                }
                if again {
                    s.place = Place::Out {
                        readable: false,
                        writable: false,
                    };
                    self.hand_out(conn);
                } else {
                    s.place = Place::Parked(conn);
                    self.consider(slot);
                }
            }
            Back::Closed((slot, generation)) => {
                if let Some(s) = self
                    .slots
                    .get_mut(slot)
                    .filter(|s| s.generation == generation)
                {
                    s.place = Place::Free;
                    s.link = None;
                    if let Some(when) = s.scheduled.take() {
                        self.deadlines.remove(&(when, slot, generation));
                    }
                    self.free.push(slot);
                    self.open -= 1;
                }
            }
        }
    }

    /// A parked connection: hand it to a worker if it has work, else file
    /// its next deadline.
    fn consider(&mut self, slot: usize) {
        let now = Instant::now();
        let s = &mut self.slots[slot];
        let Place::Parked(conn) = &s.place else {
            return;
        };
        if conn.has_work(&self.config, now, self.stopping) {
            let Place::Parked(conn) = std::mem::replace(
                &mut s.place,
                Place::Out {
                    readable: false,
                    writable: false,
                },
            ) else {
                return;
            };
            if let Some(when) = s.scheduled.take() {
                self.deadlines.remove(&(when, slot, s.generation));
            }
            self.hand_out(conn);
            return;
        }
        let want = conn.next_deadline(&self.config);
        if want != s.scheduled {
            if let Some(old) = s.scheduled {
                self.deadlines.remove(&(old, slot, s.generation));
            }
            if let Some(when) = want {
                self.deadlines.insert((when, slot, s.generation));
            }
            s.scheduled = want;
        }
    }

    fn hand_out(&mut self, conn: Box<Conn>) {
        if let Err(crossbeam_channel::SendError(conn)) = self.jobs.send(conn) {
            // No worker is left (they could not be started): nothing can
            // serve it.
            let key = conn.key;
            let _context = ContextGuard::enter(conn.context.as_str());
            log::error!("no worker left to serve the connection; closing it");
            conn.finish(
                End::abort(Reason::Lost("no worker".into())),
                self.poll.registry(),
            );
            self.returned(Back::Closed(key));
        }
    }

    fn accept_all(&mut self) {
        if let Some(until) = self.accept_paused_until {
            if Instant::now() < until {
                return;
            }
            self.accept_paused_until = None;
        }
        for i in 0..self.services.len() {
            while self.pending_accept[i] {
                match accept(&self.services[i].listener) {
                    Ok((stream, peer)) => {
                        self.backoff = FIRST_BACKOFF;
                        self.admit(i, stream, peer);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.pending_accept[i] = false
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        log::debug!("a connection went away before accept: {e}");
                    }
                    Err(e) => {
                        log::warn!("accept failed: {e}; pausing accepts for {:?}", self.backoff);
                        self.accept_paused_until = Some(Instant::now() + self.backoff);
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        return;
                    }
                }
            }
        }
    }

    /// A freshly accepted connection: refuse it, or give it a slot and
    /// hand it to a worker for `connection_made`.
    fn admit(&mut self, service: usize, stream: Stream, peer: Addr) {
        let factory: &dyn Factory = &*self.services[service].factory;
        if self.open >= self.config.max_connections {
            let why = format!(
                "{} connections open (--max-connections {})",
                self.open, self.config.max_connections
            );
            refuse(stream, factory, &why);
            return;
        }
        let built = {
            let _ctx = ContextGuard::enter(factory.name());
            catch_unwind(AssertUnwindSafe(|| factory.build_protocol(&peer)))
        };
        let protocol = match built {
            Ok(Ok(p)) => p,
            Ok(Err(refusal)) => {
                let _ctx = ContextGuard::enter(factory.name());
                log::info!("{} refused {}: {}", factory.name(), peer, refusal.reason);
                if let Some(message) = refusal.message {
                    let _ = stream.set_nonblocking(true);
                    let mut stream = stream;
                    // A fresh socket's send buffer is empty; best effort.
                    let _ = stream.write(&message);
                }
                return;
            }
            Err(payload) => {
                let _ctx = ContextGuard::enter(factory.name());
                log::error!("build_protocol panicked: {}", panic_message(&*payload));
                return;
            }
        };
        let sock = match Sock::from_stream(stream) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cannot make the connection from {peer} non-blocking: {e}");
                return;
            }
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot {
                generation: 0,
                place: Place::Free,
                link: None,
                scheduled: None,
            });
            self.slots.len() - 1
        });
        let generation = self.next_generation;
        self.next_generation += 1;
        let token = Token(self.services.len() + slot);
        let fd = sock.fd();
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("cannot watch the connection from {peer}: {e}");
            self.free.push(slot);
            return;
        }
        let session = self.sessions[service];
        self.sessions[service] += 1;
        let key = (slot, generation);
        let control = Arc::new(Control::default());
        let link = Arc::new(Link {
            key,
            scheduled: AtomicBool::new(false),
            control: control.clone(),
            tx: self.wake_tx.clone(),
            waker: self.waker.clone(),
        });
        let context = connection_context(protocol.log_prefix(), session, &peer.host_string());
        let info = ConnInfo {
            peer,
            host: self.services[service].host.clone(),
            session,
        };
        let mut transport = Transport::new(info, self.config.outbound_queue);
        transport.set_link(link.clone());
        let core = Core::new(transport, control, self.config.idle_timeout, Instant::now());
        let conn = Conn::new(key, sock, protocol, core, context);
        self.open += 1;
        self.slots[slot] = Slot {
            generation,
            place: Place::Out {
                readable: false,
                writable: false,
            },
            link: Some(link),
            scheduled: None,
        };
        self.hand_out(Box::new(conn));
    }

    /// Stops accepting and ends every connection as if its peer had sent
    /// EOF; returns the end of the grace period.
    fn begin_stop(&mut self) -> Instant {
        self.stopping = true;
        for s in self.services {
            let fd = match &s.listener {
                Listener::Tcp(l) => l.as_raw_fd(),
                Listener::Unix(l, _) => l.as_raw_fd(),
            };
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        let grace = self.config.grace;
        if self.open > 0 {
            log::info!(
                "stopping: {} connections open, giving them {grace:?} to finish",
                self.open
            );
        }
        // Parked ones now have work (the stop); those out see it in their
        // turn, or when they come back.
        for slot in 0..self.slots.len() {
            self.consider(slot);
        }
        Instant::now() + grace
    }

    /// The grace period is over: abort what is parked, kill what is out
    /// (it aborts at its next callback's end).
    fn abort_all(&mut self) {
        if self.open > 0 {
            log::warn!(
                "grace period over: closing {} connections still open",
                self.open
            );
        }
        for slot in 0..self.slots.len() {
            let s = &mut self.slots[slot];
            match std::mem::replace(&mut s.place, Place::Free) {
                Place::Parked(conn) => {
                    let key = conn.key;
                    s.place = Place::Out {
                        readable: false,
                        writable: false,
                    };
                    {
                        let _context = ContextGuard::enter(conn.context.as_str());
                        conn.finish(End::abort(Reason::Shutdown), self.poll.registry());
                    }
                    self.returned(Back::Closed(key));
                }
                other => {
                    if let Some(link) = &s.link {
                        link.control.kill();
                    }
                    s.place = other;
                }
            }
        }
    }
}

fn accept(listener: &Listener) -> io::Result<(Stream, Addr)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept()?;
            Ok((Stream::Tcp(s), Addr::Tcp(peer)))
        }
        Listener::Unix(l, _) => {
            let (s, peer) = l.accept()?;
            let path = peer.as_pathname().map(Into::into).unwrap_or_default();
            Ok((Stream::Unix(s), Addr::Unix(path)))
        }
    }
}
