//! The reactor engine: one thread, non-blocking sockets and a mio event
//! loop, in the spirit of the tutorials' selector-based server. Every
//! callback of every connection runs on this one thread, so none of them
//! may block — and none of the protocols do: they only touch their
//! [`Transport`].
//!
//! ```text
//!            ┌──────────── poll (timeout: the earliest deadline) ◀──────┐
//!            ▼                                                          │
//!  listener readable → accept → build_protocol → connection_made        │
//!  socket readable   → read → data_received → write (buffered)          │
//!  socket writable   → flush what the socket did not take               │
//!  waker             → ConnHandle commands (inbox) → callbacks          │
//!  deadline due      → timers, idle / write timeouts, end of linger ────┘
//! ```
//!
//! How it keeps the engine contract:
//!
//! * **One callback at a time**: trivially, there is one thread.
//! * **Writes leave after the callback**: each callback's output is written
//!   at once, as far as the socket takes it; the rest waits for the socket
//!   to become writable. While output is waiting, that connection gets no
//!   more input, inbox commands or timers — exactly as a thread engine's
//!   owner blocked in `write` — so a peer that never reads costs at most
//!   one turn's output beyond the kernel's buffers, and is dropped
//!   after `--write-timeout` without progress.
//! * **Batched inbox writes**: the inbox commands of one turn (up to
//!   [`COMMANDS_PER_TURN`]) run before their output is written, in order,
//!   so a burst of broadcast lines costs one `write`, not one each.
//! * **Other threads go through the inbox**: a [`ConnHandle`] queues into
//!   the connection's bounded channel, then its [`OwnerLink`] pushes the
//!   connection's token into the loop's wake channel (once until the loop
//!   picks it up) and wakes the poll with a [`mio::Waker`].
//!   `abort_connection` on a full inbox marks the connection killed and
//!   wakes the loop the same way; `close_within` files its deadline the
//!   same way, and the loop aborts the connection when it comes.
//! * **Fairness**: a connection gets at most [`READS_PER_TURN`] reads and
//!   [`COMMANDS_PER_TURN`] inbox commands per turn of the loop; if it has
//!   more, it goes to the back of the line.
//! * **Bounds**: `--max-connections` (beyond it, refused with the busy
//!   message), idle and write timeouts, the inbox capacity; a panicking
//!   callback aborts only its connection.
//! * **Stopping**: the listeners are dropped from the poll, every open
//!   connection is closed as if its peer had sent EOF (output flushed, FIN,
//!   linger), and what is left after the grace period is aborted.
//!
//! [`ConnHandle`]: crate::ConnHandle

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::core::panic_message;
use super::pool::refuse;
use super::server::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper};
use crate::endpoint::Listener;
use crate::log::{ContextGuard, connection_context};
use crate::protocol::{Addr, Factory, Protocol, Reason};
use crate::transport::{CloseDeadline, Closing, Command, ConnInfo, OwnerLink, Transport};

/// Reads one connection may do in one turn of the loop before the others
/// get theirs.
pub const READS_PER_TURN: usize = 16;
/// Inbox commands one connection may run in one turn of the loop.
pub const COMMANDS_PER_TURN: usize = 64;
/// At most this much input is read and discarded while lingering on close.
const MAX_LINGER_BYTES: usize = 1 << 20;
/// A send buffer grown larger than this is given back once it drains.
const KEEP_OUTPUT_CAPACITY: usize = 64 * 1024;
/// Accept back-off after running out of descriptors: first and longest.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const WAKER: Token = Token(usize::MAX);

/// A connected non-blocking socket of either family.
enum Sock {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Sock {
    fn fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(how),
            Sock::Unix(s) => s.shutdown(how),
        }
    }

    /// The next close sends an RST (TCP; Unix sockets just close).
    fn set_abortive_close(&self) {
        if let Sock::Tcp(s) = self {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}

/// The engine side of a connection's [`ConnHandle`](crate::ConnHandle):
/// tells the loop which connection has mail.
struct Link {
    slot: usize,
    generation: u64,
    /// The token is in the wake channel and the loop has not taken it yet.
    scheduled: AtomicBool,
    killed: AtomicBool,
    /// Set by `ConnHandle::close_within`.
    close: CloseDeadline,
    tx: Sender<(usize, u64)>,
    waker: Arc<Waker>,
}

impl Link {
    fn notify(&self) {
        if self.tx.send((self.slot, self.generation)).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

impl OwnerLink for Link {
    fn wake(&self) {
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            self.notify();
        }
    }

    fn kill(&self) {
        if !self.killed.swap(true, Ordering::SeqCst) {
            self.notify();
        }
    }

    /// The loop files the deadline on the connection's next turn.
    fn close_by(&self, deadline: Instant) {
        if self.close.set(deadline) {
            self.notify();
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Serving.
    Open,
    /// Closing cleanly: send what is buffered, then the FIN.
    Flushing,
    /// FIN sent; reading and discarding until the peer's EOF or the
    /// deadline, so that unread input does not turn the close into an RST.
    Lingering { until: Instant },
}

/// How a connection ends.
struct End {
    reason: Reason,
    abort: bool,
}

impl End {
    fn clean(reason: Reason) -> End {
        End {
            reason,
            abort: false,
        }
    }
    fn abort(reason: Reason) -> End {
        End {
            reason,
            abort: true,
        }
    }
}

/// One connection on the loop.
struct Conn {
    sock: Sock,
    generation: u64,
    protocol: Box<dyn Protocol>,
    transport: Transport,
    inbox: Option<Receiver<Command>>,
    link: Arc<Link>,
    context: String,
    /// Output accepted from callbacks and not yet taken by the socket.
    out: Vec<u8>,
    /// How much of `out` was sent.
    sent: usize,
    /// The socket may have input we have not read (edge-triggered poll).
    readable: bool,
    /// The poll saw the peer's FIN: read until EOF even after short reads.
    read_closed: bool,
    /// Since when the socket refuses our output.
    blocked_since: Option<Instant>,
    last_input: Instant,
    state: State,
    /// Why the clean close under way started.
    closing_reason: Reason,
    lingered: usize,
    /// The deadline this connection has in the loop's deadline set, if any.
    scheduled: Option<Instant>,
}

/// What a turn needs besides the connection.
struct Ctx<'a> {
    config: &'a ServerConfig,
    buf: &'a mut [u8],
    now: Instant,
    /// The connection has more to do than its turn allowed.
    again: bool,
}

impl Conn {
    fn has_output(&self) -> bool {
        self.sent < self.out.len()
    }

    /// Runs one callback; a panic aborts the connection.
    fn callback(&mut self, f: impl FnOnce(&mut dyn Protocol, &mut Transport)) -> Result<(), End> {
        let protocol = &mut *self.protocol;
        let transport = &mut self.transport;
        match catch_unwind(AssertUnwindSafe(|| f(protocol, transport))) {
            Ok(()) => Ok(()),
            Err(payload) => {
                let msg = panic_message(&*payload);
                log::error!("a callback panicked ({msg}); aborting this connection");
                self.transport.abort_connection();
                Err(End::abort(Reason::Panicked(msg)))
            }
        }
    }

    /// After every callback: take its output, send what the socket takes,
    /// and see whether the protocol asked to close.
    fn settle(&mut self, ctx: &Ctx) -> Result<(), End> {
        if self.link.killed.load(Ordering::SeqCst) {
            return Err(End::abort(Reason::Aborted));
        }
        if !self.transport.pending_output().is_empty() {
            if self.has_output() {
                let fresh = self.transport.output_mut();
                self.out.extend_from_slice(fresh);
                fresh.clear();
            } else {
                // Swap buffers so that both keep their capacity.
                self.out.clear();
                self.sent = 0;
                std::mem::swap(&mut self.out, self.transport.output_mut());
            }
            self.flush(ctx.now)?;
        }
        match self.transport.closing() {
            Closing::No => Ok(()),
            Closing::Lose => {
                self.begin_close(Reason::Done);
                Ok(())
            }
            Closing::Abort => Err(End::abort(Reason::Aborted)),
        }
    }

    fn begin_close(&mut self, reason: Reason) {
        if self.state == State::Open {
            self.state = State::Flushing;
            self.closing_reason = reason;
        }
    }

    /// Writes buffered output until it is all sent or the socket is full.
    fn flush(&mut self, now: Instant) -> Result<(), End> {
        while self.has_output() {
            match self.sock.write(&self.out[self.sent..]) {
                Ok(0) => {
                    return Err(End::abort(Reason::Lost(
                        "the socket accepts no more data".into(),
                    )));
                }
                Ok(n) => {
                    self.sent += n;
                    self.blocked_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked_since.get_or_insert(now);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::abort(Reason::Lost(e.to_string()))),
            }
        }
        self.blocked_since = None;
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > KEEP_OUTPUT_CAPACITY {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Makes all the progress this turn allows.
    fn pump(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        if self.link.killed.load(Ordering::SeqCst) {
            return Err(End::abort(Reason::Aborted));
        }
        // Once our FIN is out the connection is closed as far as the
        // deadline goes; the linger has its own bound.
        if !matches!(self.state, State::Lingering { .. }) && self.link.close.passed(ctx.now) {
            log::info!("not closed by the deadline it was given; aborting the connection");
            return Err(End::abort(Reason::TimedOut("close deadline")));
        }
        self.flush(ctx.now)?;
        if self.has_output() {
            return Ok(());
        }
        match self.state {
            State::Open => self.serve(ctx),
            State::Flushing => {
                // Our FIN; the peer may already have gone (then: closed).
                if self.sock.shutdown(Shutdown::Write).is_err() {
                    return Err(End::clean(self.closing_reason.clone()));
                }
                self.state = State::Lingering {
                    until: ctx.now + ctx.config.close_linger,
                };
                self.readable = true;
                self.linger(ctx)
            }
            State::Lingering { .. } => self.linger(ctx),
        }
    }

    /// Reads and discards input after our FIN until EOF.
    fn linger(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        while self.readable {
            match self.sock.read(ctx.buf) {
                Ok(0) => return Err(End::clean(self.closing_reason.clone())),
                Ok(n) => {
                    self.lingered += n;
                    if self.lingered >= MAX_LINGER_BYTES {
                        return Err(End::clean(self.closing_reason.clone()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(End::clean(self.closing_reason.clone())),
            }
        }
        Ok(())
    }

    /// An open connection: inbox commands, then socket input, each until
    /// there is none, the turn's budget is spent, output backs up or the
    /// protocol asks to close.
    fn serve(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        if self.inbox.is_none() && self.transport.has_inbox() {
            self.inbox = self.transport.take_inbox();
        }
        if let Some(inbox) = self.inbox.clone() {
            // The turn's commands first, their output written together.
            let mut ran = 0;
            while ran < COMMANDS_PER_TURN
                && !self.has_output()
                && self.state == State::Open
                && !self.transport.is_disconnecting()
                && !self.link.killed.load(Ordering::SeqCst)
            {
                let Ok(command) = inbox.try_recv() else { break };
                if let Some(f) = self.transport.apply(command) {
                    self.callback(f)?;
                }
                ran += 1;
            }
            if ran > 0 {
                self.settle(ctx)?;
            }
            if !inbox.is_empty() && self.state == State::Open {
                ctx.again = true;
            }
        }
        let mut reads = 0;
        while self.readable && self.state == State::Open && !self.has_output() {
            if reads == READS_PER_TURN {
                ctx.again = true;
                break;
            }
            reads += 1;
            match self.sock.read(ctx.buf) {
                Ok(0) => {
                    self.readable = false;
                    self.begin_close(Reason::Done);
                    return self.pump(ctx);
                }
                Ok(n) => {
                    // A short read drained the socket: the next input is a
                    // new edge, so skip the read that would say WouldBlock.
                    // Not once the FIN was seen: that edge is already spent.
                    if n < ctx.buf.len() && !self.read_closed {
                        self.readable = false;
                    }
                    self.last_input = ctx.now;
                    let data = &ctx.buf[..n];
                    self.callback(|p, t| p.data_received(data, t))?;
                    self.settle(ctx)?;
                    if self.inbox.is_none() && self.transport.has_inbox() {
                        // The protocol just took a handle: commands may be
                        // waiting already.
                        ctx.again = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::abort(Reason::Lost(e.to_string()))),
            }
        }
        if self.state != State::Open && !self.has_output() {
            return self.pump(ctx);
        }
        Ok(())
    }

    /// A deadline of this connection came: timeouts and timers.
    fn tick(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        let now = ctx.now;
        if self.has_output() {
            if let (Some(since), Some(limit)) = (self.blocked_since, ctx.config.write_timeout)
                && now.duration_since(since) >= limit
            {
                log::info!("write timed out; dropping the connection");
                return Err(End::abort(Reason::TimedOut("write")));
            }
            return Ok(());
        }
        match self.state {
            State::Lingering { until } if now >= until => {
                Err(End::clean(self.closing_reason.clone()))
            }
            State::Open => {
                while let Some(timer) = self.transport.pop_due_timer(now) {
                    self.callback(timer)?;
                    self.settle(ctx)?;
                    if self.has_output() || self.state != State::Open {
                        return self.pump(ctx);
                    }
                }
                if let Some(idle) = ctx.config.idle_timeout
                    && now.duration_since(self.last_input) >= idle
                {
                    log::info!("no input for {idle:?}; closing the idle connection");
                    self.begin_close(Reason::TimedOut("idle"));
                    return self.pump(ctx);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// When this connection next needs the loop without any event.
    fn next_deadline(&self, config: &ServerConfig) -> Option<Instant> {
        let own = self.own_deadline(config);
        if matches!(self.state, State::Lingering { .. }) {
            return own;
        }
        match (own, self.link.close.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// [`Conn::next_deadline`] but for a `close_within` deadline.
    fn own_deadline(&self, config: &ServerConfig) -> Option<Instant> {
        if self.has_output() {
            return match (self.blocked_since, config.write_timeout) {
                (Some(since), Some(limit)) => Some(since + limit),
                _ => None,
            };
        }
        match self.state {
            State::Open => {
                let idle = config.idle_timeout.map(|d| self.last_input + d);
                match (idle, self.transport.next_timer_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Flushing => None,
            State::Lingering { until } => Some(until),
        }
    }
}

/// Why the loop should look at a connection.
#[derive(Clone, Copy)]
enum Kick {
    /// A socket event (readiness flags already recorded).
    Event,
    /// Its inbox has commands.
    Wake,
    /// One of its deadlines is due.
    Due,
    /// It had more to do than its last turn allowed.
    Again,
}

struct Reactor<'a> {
    poll: Poll,
    waker: Arc<Waker>,
    services: &'a [Service],
    config: Arc<ServerConfig>,
    stopper: Stopper,
    sessions: Vec<u64>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    next_generation: u64,
    open: usize,
    wake_tx: Sender<(usize, u64)>,
    wake_rx: Receiver<(usize, u64)>,
    /// Each connection's next deadline, at most one entry per connection:
    /// an entry is removed when its connection ends or gets an earlier one.
    deadlines: BTreeSet<(Instant, usize, u64)>,
    again: Vec<(usize, u64)>,
    /// This turn's work, kept to reuse its allocation.
    kicks: Vec<(usize, u64, Kick)>,
    buf: Vec<u8>,
    /// Listeners whose backlog may not be empty.
    pending_accept: Vec<bool>,
    accept_paused_until: Option<Instant>,
    backoff: Duration,
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
    let (wake_tx, wake_rx) = crossbeam_channel::unbounded();
    let mut reactor = Reactor {
        poll,
        waker,
        services,
        buf: vec![0u8; config.read_buffer.max(512)],
        config,
        stopper: stopper.clone(),
        sessions: vec![0; services.len()],
        conns: Vec::new(),
        free: Vec::new(),
        next_generation: 0,
        open: 0,
        wake_tx,
        wake_rx,
        deadlines: BTreeSet::new(),
        again: Vec::new(),
        kicks: Vec::new(),
        pending_accept: vec![true; services.len()],
        accept_paused_until: None,
        backoff: FIRST_BACKOFF,
    };
    reactor.run()
}

impl Reactor<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut stop_deadline: Option<Instant> = None;
        loop {
            if stop_deadline.is_none() && self.stopper.is_stopped() {
                stop_deadline = Some(self.begin_stop());
            }
            if let Some(deadline) = stop_deadline {
                if self.open == 0 {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    self.abort_all();
                    return Ok(());
                }
            }
            let timeout = self.poll_timeout(stop_deadline);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.abort_all();
                    return Err(e);
                }
            }
            let mut kicks = std::mem::take(&mut self.kicks);
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                if token.0 < self.services.len() {
                    self.pending_accept[token.0] = true;
                    continue;
                }
                let slot = token.0 - self.services.len();
                if let Some(Some(conn)) = self.conns.get_mut(slot) {
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        conn.readable = true;
                    }
                    if event.is_read_closed() || event.is_error() {
                        conn.read_closed = true;
                    }
                    kicks.push((slot, conn.generation, Kick::Event));
                }
            }
            // Wake-ups from other threads: drain all, they are few (one
            // outstanding per connection).
            while let Ok((slot, generation)) = self.wake_rx.try_recv() {
                kicks.push((slot, generation, Kick::Wake));
            }
            for (slot, generation) in std::mem::take(&mut self.again) {
                kicks.push((slot, generation, Kick::Again));
            }
            if stop_deadline.is_none() {
                self.accept_all();
            }
            for (slot, generation, kick) in kicks.drain(..) {
                self.kick(slot, generation, kick);
            }
            self.kicks = kicks;
            let now = Instant::now();
            while let Some(&(when, slot, generation)) = self.deadlines.first()
                && when <= now
            {
                self.deadlines.pop_first();
                let current = matches!(self.conns.get(slot), Some(Some(c))
                    if c.generation == generation && c.scheduled == Some(when));
                if current {
                    if let Some(Some(c)) = self.conns.get_mut(slot) {
                        c.scheduled = None;
                    }
                    self.kick(slot, generation, Kick::Due);
                }
            }
        }
    }

    fn poll_timeout(&self, stop_deadline: Option<Instant>) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut next = self.deadlines.first().map(|(when, _, _)| *when);
        for other in [stop_deadline, self.accept_paused_until]
            .into_iter()
            .flatten()
        {
            next = Some(next.map_or(other, |n| n.min(other)));
        }
        // Round up, so that the loop does not spin just short of a deadline.
        next.map(|when| when.saturating_duration_since(Instant::now()) + Duration::from_micros(500))
    }

    /// Gives one connection its turn.
    fn kick(&mut self, slot: usize, generation: u64, kick: Kick) {
        let Some(entry) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(mut conn) = entry.take().filter(|c| c.generation == generation) else {
            return;
        };
        let _context = ContextGuard::enter(conn.context.as_str());
        if matches!(kick, Kick::Wake) {
            conn.link.scheduled.store(false, Ordering::SeqCst);
        }
        let mut ctx = Ctx {
            config: &self.config,
            buf: &mut self.buf,
            now: Instant::now(),
            again: false,
        };
        let result = match kick {
            Kick::Due => conn.tick(&mut ctx).and_then(|()| conn.pump(&mut ctx)),
            Kick::Event | Kick::Wake | Kick::Again => conn.pump(&mut ctx),
        };
        let again = ctx.again;
        match result {
            Ok(()) => {
                if again {
                    self.again.push((slot, generation));
                }
                self.schedule(&mut conn, slot);
                self.conns[slot] = Some(conn);
            }
            Err(end) => self.finish(conn, slot, end),
        }
    }

    /// Files the connection's next deadline if it has none or an earlier
    /// one is due. A later one (an idle timeout pushed back by input) is
    /// left alone: when the filed one comes up, the turn finds nothing to
    /// do and files the real one. So input does not touch the set.
    fn schedule(&mut self, conn: &mut Conn, slot: usize) {
        if let Some(want) = conn.next_deadline(&self.config)
            && conn.scheduled.is_none_or(|s| want < s)
        {
            if let Some(old) = conn.scheduled {
                self.deadlines.remove(&(old, slot, conn.generation));
            }
            conn.scheduled = Some(want);
            self.deadlines.insert((want, slot, conn.generation));
        }
    }

    /// Closes the socket as `end` says, then tells the protocol.
    fn finish(&mut self, conn: Conn, slot: usize, end: End) {
        if let Some(when) = conn.scheduled {
            self.deadlines.remove(&(when, slot, conn.generation));
        }
        let Conn {
            sock, mut protocol, ..
        } = conn;
        let fd = sock.fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        if end.abort {
            sock.set_abortive_close();
        }
        drop(sock);
        self.free.push(slot);
        self.open -= 1;
        log::debug!("connection lost: {}", end.reason);
        let reason = end.reason;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| protocol.connection_lost(&reason))) {
            log::error!("connection_lost panicked ({})", panic_message(&*payload));
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

    /// A freshly accepted connection: refuse it, or give it a slot and run
    /// `connection_made`.
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
        let sock = match into_sock(stream) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cannot make the connection from {peer} non-blocking: {e}");
                return;
            }
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
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
        let link = Arc::new(Link {
            slot,
            generation,
            scheduled: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            close: CloseDeadline::default(),
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
        let now = Instant::now();
        let conn = Conn {
            sock,
            generation,
            protocol,
            transport,
            inbox: None,
            link,
            context,
            out: Vec::new(),
            sent: 0,
            readable: false,
            read_closed: false,
            blocked_since: None,
            last_input: now,
            state: State::Open,
            closing_reason: Reason::Done,
            lingered: 0,
            scheduled: None,
        };
        self.open += 1;
        self.conns[slot] = Some(conn);
        self.start(slot, generation);
    }

    /// Runs `connection_made`, then the connection's first turn.
    fn start(&mut self, slot: usize, generation: u64) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let _context = ContextGuard::enter(conn.context.as_str());
        let mut ctx = Ctx {
            config: &self.config,
            buf: &mut self.buf,
            now: Instant::now(),
            again: false,
        };
        let result = conn
            .callback(|p, t| p.connection_made(t))
            .and_then(|()| conn.settle(&ctx))
            .and_then(|()| conn.pump(&mut ctx));
        let again = ctx.again;
        match result {
            Ok(()) => {
                if again {
                    self.again.push((slot, generation));
                }
                self.schedule(&mut conn, slot);
                self.conns[slot] = Some(conn);
            }
            Err(end) => self.finish(conn, slot, end),
        }
    }

    /// Stops accepting and starts closing every connection; returns the
    /// end of the grace period.
    fn begin_stop(&mut self) -> Instant {
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
        let live: Vec<(usize, u64)> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c.generation)))
            .collect();
        for (slot, generation) in live {
            if let Some(Some(conn)) = self.conns.get_mut(slot) {
                conn.begin_close(Reason::Shutdown);
            }
            self.kick(slot, generation, Kick::Again);
        }
        Instant::now() + grace
    }

    /// The grace period is over: abort what is left.
    fn abort_all(&mut self) {
        if self.open > 0 {
            log::warn!(
                "grace period over: closing {} connections still open",
                self.open
            );
        }
        for slot in 0..self.conns.len() {
            if let Some(conn) = self.conns[slot].take() {
                let _context = ContextGuard::enter(conn.context.clone());
                self.finish(conn, slot, End::abort(Reason::Shutdown));
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

fn into_sock(stream: Stream) -> io::Result<Sock> {
    stream.set_nonblocking(true)?;
    stream.set_nodelay();
    Ok(match stream {
        Stream::Tcp(s) => Sock::Tcp(mio::net::TcpStream::from_std(s)),
        Stream::Unix(s) => Sock::Unix(mio::net::UnixStream::from_std(s)),
    })
}
