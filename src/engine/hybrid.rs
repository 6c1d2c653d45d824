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
//! * **A connection is never on two workers at once**: a connection (the
//!   reactor's non-blocking [`Conn`], `reactor_conn.rs`, around its
//!   [`Core`]) moves by value — parked in its slot, in the hand-off
//!   channel, or in one worker's hands — so there is nothing to share and
//!   nothing to lock. What happens while it is out (readiness, an inbox
//!   wake-up, a deadline, the stop) is noted in its slot and acted on when
//!   it comes back.
//! * **Callbacks in order, one at a time**: one worker runs one turn of
//!   the connection, exactly the reactor's turn (`Conn::pump`,
//!   `Conn::tick`): inbox commands (up to
//!   [`COMMANDS_PER_TURN`](super::reactor_conn::COMMANDS_PER_TURN)), then
//!   socket input (up to
//!   [`READS_PER_TURN`](super::reactor_conn::READS_PER_TURN) reads); the
//!   next turn starts only after this one came back.
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

use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::acceptor::Accepting;
use super::admission::Admission;
use super::core::{Control, Core, End, panic_message};
use super::reactor_conn::{Conn, Ctx, Link, into_sock};
use super::service::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper};
use crate::endpoint::Listener;
use crate::log::{ContextGuard, connection_context};
use crate::protocol::{Addr, Reason};
use crate::transport::{ConnInfo, Transport};

const WAKER: Token = Token(usize::MAX);
/// After the grace period, how long connections still on a worker (in a
/// callback that does not return) are waited for before the engine
/// gives up on them.
const STRAGGLER_WAIT: Duration = Duration::from_secs(1);

/// Which connection: its slot, and the generation that tells it from an
/// earlier connection in the same slot.
type Key = (usize, u64);

/// What a worker is to do with a connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// `connection_made`, then the first turn.
    Start,
    /// A deadline came (timers, timeouts, the linger's end), then a turn.
    Due,
    /// Readiness, inbox commands, the stop, or more than the last turn
    /// allowed.
    Run,
}

/// What a worker hands back to the poller.
enum Back {
    /// The turn is over and the connection goes on; `true`: it had more
    /// to do than its turn allowed.
    Park(Box<Conn>, bool),
    /// The connection ended on the worker: its socket is closed and
    /// `connection_lost` ran.
    Closed(Key),
}

/// What happened to a connection while it was on a worker.
#[derive(Default, Clone, Copy)]
struct Missed {
    readable: bool,
    read_closed: bool,
    /// A socket event or an inbox wake-up.
    run: bool,
    due: bool,
    stop: bool,
}

/// Where a slot's connection is.
enum Place {
    Free,
    /// In the slot, waiting for an event or a deadline.
    Parked(Box<Conn>),
    /// On a worker, or in the channel to or from one.
    Out(Missed),
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
    let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<(Box<Conn>, Turn)>();
    let (back_tx, back_rx) = crossbeam_channel::unbounded::<Back>();
    let env = Arc::new(WorkerEnv {
        config: config.clone(),
        registry: poll.registry().try_clone()?,
        back: back_tx,
        waker: waker.clone(),
    });
    start_workers(&config, &jobs_rx, &env)?;
    drop(jobs_rx);
    let (wake_tx, wake_rx) = crossbeam_channel::unbounded();
    let admission = Admission::new(services, &config)?;
    let mut poller = Poller {
        poll,
        waker,
        services,
        config,
        stopper: stopper.clone(),
        admission,
        slots: Vec::new(),
        free: Vec::new(),
        next_generation: 0,
        wake_tx,
        wake_rx,
        deadlines: BTreeSet::new(),
        jobs: jobs_tx,
        back: back_rx,
        accepting: Accepting::new(services.len()),
    };
    // Dropping the poller closes the hand-off channel: the workers end.
    poller.run()
}

fn start_workers(
    config: &ServerConfig,
    jobs: &Receiver<(Box<Conn>, Turn)>,
    env: &Arc<WorkerEnv>,
) -> io::Result<()> {
    let mut started = 0;
    for i in 0..config.workers.max(1) {
        let jobs = jobs.clone();
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
                return Ok(());
            }
            Err(e) => {
                return Err(io::Error::other(format!(
                    "cannot start any worker thread: {e}"
                )));
            }
        }
    }
    Ok(())
}

/// A worker: runs the turns it is handed until the channel closes.
fn worker(jobs: &Receiver<(Box<Conn>, Turn)>, env: &WorkerEnv) {
    let mut buf = vec![0u8; env.config.read_buffer.max(512)];
    while let Ok((conn, turn)) = jobs.recv() {
        let key = (conn.link.slot, conn.generation);
        let back = match catch_unwind(AssertUnwindSafe(|| run_turn(conn, turn, env, &mut buf))) {
            Ok(back) => back,
            Err(payload) => {
                // The connection is lost with the panic; its slot is not.
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

/// One turn of one connection, on a worker: the reactor's turn.
fn run_turn(mut conn: Box<Conn>, turn: Turn, env: &WorkerEnv, buf: &mut [u8]) -> Back {
    let _context = ContextGuard::enter(conn.context.as_str());
    let mut ctx = Ctx {
        config: &env.config,
        buf,
        now: Instant::now(),
        again: false,
    };
    let result = match turn {
        Turn::Start => conn.start(&mut ctx),
        Turn::Due => conn.tick(&mut ctx).and_then(|()| conn.pump(&mut ctx)),
        Turn::Run => conn.pump(&mut ctx),
    };
    let again = ctx.again;
    match result {
        Ok(()) => Back::Park(conn, again),
        Err(end) => {
            let key = (conn.link.slot, conn.generation);
            finish(*conn, end, &env.registry);
            Back::Closed(key)
        }
    }
}

/// Closes the socket as `end` says, then `connection_lost`.
fn finish(conn: Conn, end: End, registry: &mio::Registry) {
    let Conn {
        sock,
        mut protocol,
        mut core,
        ..
    } = conn;
    let fd = sock.fd();
    let _ = registry.deregister(&mut SourceFd(&fd));
    if end.abort {
        sock.set_abortive_close();
    }
    drop(sock);
    core.lost(&mut *protocol, &end.reason);
}

struct Poller<'a> {
    poll: Poll,
    waker: Arc<Waker>,
    services: &'a [Service],
    config: Arc<ServerConfig>,
    stopper: Stopper,
    admission: Admission,
    slots: Vec<Slot>,
    free: Vec<usize>,
    next_generation: u64,
    wake_tx: Sender<Key>,
    wake_rx: Receiver<Key>,
    /// Each parked connection's next deadline, at most one per slot.
    deadlines: BTreeSet<(Instant, usize, u64)>,
    jobs: Sender<(Box<Conn>, Turn)>,
    back: Receiver<Back>,
    accepting: Accepting,
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
                if self.admission.open() == 0 {
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
                        self.admission.open()
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
                    self.accepting.ready(token.0);
                    continue;
                }
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let read_closed = event.is_read_closed() || event.is_error();
                self.ready(token.0 - self.services.len(), readable, read_closed);
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
                    self.kick(slot, Turn::Due);
                }
            }
        }
    }

    fn poll_timeout(&self, more: [Option<Instant>; 2]) -> Option<Duration> {
        let first = self.deadlines.first().map(|(when, _, _)| *when);
        let next = [first, self.accepting.paused_until()]
            .into_iter()
            .chain(more)
            .flatten()
            .min();
        // Round up, so that the loop does not spin just short of a deadline.
        next.map(|when| when.saturating_duration_since(Instant::now()) + Duration::from_micros(500))
    }

    /// A socket event for `slot`.
    fn ready(&mut self, slot: usize, readable: bool, read_closed: bool) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        match &mut s.place {
            Place::Free => {}
            Place::Parked(conn) => {
                conn.readable |= readable;
                conn.read_closed |= read_closed;
                self.kick(slot, Turn::Run);
            }
            Place::Out(missed) => {
                missed.readable |= readable;
                missed.read_closed |= read_closed;
                missed.run = true;
            }
        }
    }

    /// A wake-up from another thread (inbox, kill, close deadline).
    fn woken(&mut self, (slot, generation): Key) {
        let Some(s) = self
            .slots
            .get_mut(slot)
            .filter(|s| s.generation == generation)
        else {
            return;
        };
        if let Some(link) = &s.link {
            link.scheduled.store(false, Ordering::SeqCst);
        }
        self.kick(slot, Turn::Run);
    }

    /// Hands a parked connection to a worker for `turn`; one that is out
    /// gets the turn when it comes back.
    fn kick(&mut self, slot: usize, turn: Turn) {
        let s = &mut self.slots[slot];
        match &mut s.place {
            Place::Free => {}
            Place::Out(missed) => match turn {
                Turn::Due => missed.due = true,
                _ => missed.run = true,
            },
            Place::Parked(_) => {
                let Place::Parked(conn) =
                    std::mem::replace(&mut s.place, Place::Out(Missed::default()))
                else {
                    return;
                };
                if let Some(when) = s.scheduled.take() {
                    self.deadlines.remove(&(when, slot, s.generation));
                }
                self.hand_out(conn, turn);
            }
        }
    }

    /// A worker is done with a turn.
    fn returned(&mut self, back: Back) {
        match back {
            Back::Park(mut conn, again) => {
                let slot = conn.link.slot;
                let Some(s) = self
                    .slots
                    .get_mut(slot)
                    .filter(|s| s.generation == conn.generation)
                else {
                    return;
                };
                let missed = match s.place {
                    Place::Out(missed) => missed,
                    _ => Missed::default(),
                };
                conn.readable |= missed.readable;
                conn.read_closed |= missed.read_closed;
                if missed.stop {
                    conn.begin_close(Reason::Shutdown);
                }
                s.place = Place::Parked(conn);
                if missed.due {
                    self.kick(slot, Turn::Due);
                } else if again || missed.run || missed.stop {
                    self.kick(slot, Turn::Run);
                } else {
                    self.schedule(slot);
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
                }
            }
        }
    }

    /// Files a parked connection's next deadline in place of the old one.
    fn schedule(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        let Place::Parked(conn) = &s.place else {
            return;
        };
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

    fn hand_out(&mut self, conn: Box<Conn>, turn: Turn) {
        if let Err(crossbeam_channel::SendError((conn, _))) = self.jobs.send((conn, turn)) {
            // The workers are gone: nothing can serve it.
            let key = (conn.link.slot, conn.generation);
            let _context = ContextGuard::enter(conn.context.as_str());
            log::error!("no worker left to serve the connection; closing it");
            let end = End::abort(Reason::Lost("no worker".into()));
            finish(*conn, end, self.poll.registry());
            self.returned(Back::Closed(key));
        }
    }

    fn accept_all(&mut self) {
        let listeners: Vec<&Listener> = self.services.iter().map(|s| &s.listener).collect();
        let mut accepted = Vec::new();
        self.accepting.accept_ready(
            &listeners,
            || true,
            |i, stream, peer| accepted.push((i, stream, peer)),
        );
        for (i, stream, peer) in accepted {
            self.admit(i, stream, peer);
        }
    }

    /// A freshly accepted connection: refuse it, or give it a slot and
    /// hand it to a worker for `connection_made`.
    fn admit(&mut self, service: usize, stream: Stream, peer: Addr) {
        let Some((stream, admitted)) = self.admission.admit(service, stream) else {
            return;
        };
        let Some((stream, protocol)) = self.admission.build(service, stream, &peer) else {
            return;
        };
        let sock = match into_sock(stream) {
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
        let session = admitted.session;
        let control = Arc::new(Control::default());
        let link = Arc::new(Link {
            slot,
            generation,
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
        let mut core = Core::new(transport, control, self.config.idle_timeout, Instant::now());
        core.watch_slow_callbacks(self.config.slow_callback);
        let conn = Conn::new(
            sock,
            generation,
            protocol,
            core,
            link.clone(),
            context,
            admitted.ticket,
        );
        self.slots[slot] = Slot {
            generation,
            place: Place::Out(Missed::default()),
            link: Some(link),
            scheduled: None,
        };
        self.hand_out(Box::new(conn), Turn::Start);
    }

    /// Stops accepting and ends every connection as if its peer had sent
    /// EOF; returns the end of the grace period.
    fn begin_stop(&mut self) -> Instant {
        for s in self.services {
            let fd = match &s.listener {
                Listener::Tcp(l) => l.as_raw_fd(),
                Listener::Unix(l, _) => l.as_raw_fd(),
            };
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        let grace = self.config.grace;
        if self.admission.open() > 0 {
            log::info!(
                "stopping: {} connections open, giving them {grace:?} to finish",
                self.admission.open()
            );
        }
        for slot in 0..self.slots.len() {
            match &mut self.slots[slot].place {
                Place::Free => {}
                Place::Out(missed) => missed.stop = true,
                Place::Parked(conn) => {
                    conn.begin_close(Reason::Shutdown);
                    self.kick(slot, Turn::Run);
                }
            }
        }
        Instant::now() + grace
    }

    /// The grace period is over: abort what is parked; kill what is out
    /// (it aborts when its callback returns).
    fn abort_all(&mut self) {
        if self.admission.open() > 0 {
            log::warn!(
                "grace period over: closing {} connections still open",
                self.admission.open()
            );
        }
        for slot in 0..self.slots.len() {
            let s = &mut self.slots[slot];
            if let Some(link) = &s.link {
                link.control.kill();
            }
            if matches!(s.place, Place::Parked(_)) {
                let Place::Parked(conn) =
                    std::mem::replace(&mut s.place, Place::Out(Missed::default()))
                else {
                    continue;
                };
                let key = (slot, s.generation);
                {
                    let _context = ContextGuard::enter(conn.context.as_str());
                    finish(*conn, End::abort(Reason::Shutdown), self.poll.registry());
                }
                self.returned(Back::Closed(key));
            }
        }
    }
}
