//! One connection on the reactor: its non-blocking socket, the driver of
//! its [`Core`] and the state of its close. The loop (`reactor.rs`) calls
//! [`Conn::pump`] when the socket is ready or the inbox has mail, and
//! [`Conn::tick`] when its deadline comes; the core decides what the
//! protocol sees.
//!
//! * **Writes leave after the callback**: each event's output is written
//!   at once, as far as the socket takes it; the rest waits for the socket
//!   to become writable. While output is waiting, the connection gets no
//!   more input, inbox commands or timers — exactly as a thread engine's
//!   owner blocked in `write` — so a peer that never reads costs at most
//!   one turn's output beyond the kernel's buffers, and is dropped after
//!   `--write-timeout` without progress.
//! * **Fairness**: at most [`READS_PER_TURN`] reads and
//!   [`COMMANDS_PER_TURN`] inbox commands per turn; a connection with more
//!   asks for another turn.
//! * **Closing**: a clean close flushes, sends the FIN, then lingers
//!   (reads and discards) until the peer's EOF or `--close-linger`.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::Waker;

use super::ServerConfig;
use super::admission::Ticket;
use super::core::{Control, Core, End};
use super::stream::Stream;
use crate::protocol::{Protocol, Reason};
use crate::transport::OwnerLink;

/// Reads one connection may do in one turn of the loop before the others
/// get theirs.
pub const READS_PER_TURN: usize = 16;
/// Inbox commands one connection may run in one turn of the loop.
pub const COMMANDS_PER_TURN: usize = 64;
/// At most this much input is read and discarded while lingering on close.
const MAX_LINGER_BYTES: usize = 1 << 20;
/// A send buffer grown larger than this is given back once it drains.
const KEEP_OUTPUT_CAPACITY: usize = 64 * 1024;

/// A connected non-blocking socket of either family.
pub(super) enum Sock {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Sock {
    pub(super) fn fd(&self) -> RawFd {
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

    /// The socket's pending error (`SO_ERROR`), taken: a peer's reset.
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Sock::Tcp(s) => s.take_error(),
            Sock::Unix(s) => s.take_error(),
        }
    }

    /// The next close sends an RST (TCP; Unix sockets just close).
    pub(super) fn set_abortive_close(&self) {
        if let Sock::Tcp(s) = self {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}

/// The engine side of a connection's [`ConnHandle`](crate::ConnHandle):
/// tells the loop which connection has mail.
pub(super) struct Link {
    pub slot: usize,
    pub generation: u64,
    /// The token is in the wake channel and the loop has not taken it yet.
    pub scheduled: AtomicBool,
    /// Killed and the `close_within` deadline, shared with the core.
    pub control: Arc<Control>,
    pub tx: Sender<(usize, u64)>,
    pub waker: Arc<Waker>,
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
        if self.control.kill() {
            self.notify();
        }
    }

    /// The loop files the deadline on the connection's next turn.
    fn close_by(&self, deadline: Instant) {
        if self.control.close_by(deadline) {
            self.notify();
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Serving.
    Open,
    /// Closing cleanly: send what is buffered, then the FIN.
    Flushing,
    /// FIN sent; reading and discarding until the peer's EOF or the
    /// deadline, so that unread input does not turn the close into an RST.
    Lingering { until: Instant },
}

/// One connection on the loop.
pub(super) struct Conn {
    pub sock: Sock,
    pub generation: u64,
    pub protocol: Box<dyn Protocol>,
    pub core: Core,
    pub link: Arc<Link>,
    pub context: String,
    /// Output accepted from the core and not yet taken by the socket.
    out: Vec<u8>,
    /// How much of `out` was sent.
    sent: usize,
    /// The socket may have input we have not read (edge-triggered poll).
    pub readable: bool,
    /// The poll saw the peer's FIN or an error: read until EOF even after
    /// short reads; while input is paused, look for a reset.
    pub read_closed: bool,
    /// Since when the socket refuses our output.
    blocked_since: Option<Instant>,
    state: State,
    /// Why the clean close under way started.
    closing_reason: Reason,
    lingered: usize,
    /// The deadline this connection has in the loop's deadline set, if any.
    pub scheduled: Option<Instant>,
    /// Counts the connection open until it is dropped.
    _ticket: Ticket,
}

/// What a turn needs besides the connection.
pub(super) struct Ctx<'a> {
    pub config: &'a ServerConfig,
    pub buf: &'a mut [u8],
    pub now: Instant,
    /// The connection has more to do than its turn allowed.
    pub again: bool,
}

impl Conn {
    /// A connection that has not yet run `connection_made`.
    pub(super) fn new(
        sock: Sock,
        generation: u64,
        protocol: Box<dyn Protocol>,
        core: Core,
        link: Arc<Link>,
        context: String,
        ticket: Ticket,
    ) -> Conn {
        Conn {
            sock,
            generation,
            protocol,
            core,
            link,
            context,
            out: Vec::new(),
            sent: 0,
            readable: false,
            read_closed: false,
            blocked_since: None,
            state: State::Open,
            closing_reason: Reason::Done,
            lingered: 0,
            scheduled: None,
            _ticket: ticket,
        }
    }

    fn has_output(&self) -> bool {
        self.sent < self.out.len()
    }

    /// `connection_made`, then the first turn.
    pub(super) fn start(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        let verdict = self.core.made(&mut *self.protocol);
        self.settle(verdict, ctx.now)?;
        self.pump(ctx)
    }

    /// After every event: take the core's output, send what the socket
    /// takes, and follow the core's verdict (a clean end starts the close).
    fn settle(&mut self, verdict: Result<(), End>, now: Instant) -> Result<(), End> {
        let pending = self.has_output();
        let fresh = self.core.output();
        if !fresh.is_empty() {
            if pending {
                self.out.extend_from_slice(fresh);
                fresh.clear();
            } else {
                // Swap buffers so that both keep their capacity.
                self.out.clear();
                self.sent = 0;
                std::mem::swap(&mut self.out, fresh);
            }
            if let Err(failed) = self.flush(now) {
                return Err(self.core.fail(failed));
            }
        }
        match verdict {
            Ok(()) => Ok(()),
            Err(end) if end.abort => Err(end),
            Err(end) => {
                self.begin_close(end.reason);
                Ok(())
            }
        }
    }

    /// Starts a clean close (the core's verdict, or the server stopping).
    pub(super) fn begin_close(&mut self, reason: Reason) {
        if self.state == State::Open {
            self.core.fail(End::clean(reason.clone()));
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
    pub(super) fn pump(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        let control = self.core.control();
        // Once our FIN is out the connection is closed as far as the
        // deadline goes; the linger has its own bound.
        let checked = if matches!(self.state, State::Lingering { .. }) {
            match control.killed() {
                true => Err(End::abort(Reason::Aborted)),
                false => Ok(()),
            }
        } else {
            control.check(ctx.now)
        };
        if let Err(end) = checked {
            return Err(self.core.fail(end));
        }
        if let Err(failed) = self.flush(ctx.now) {
            return Err(self.core.fail(failed));
        }
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
        self.core.pick_up_inbox();
        if self.core.has_commands() {
            // The turn's commands first, their output written together.
            let verdict = self
                .core
                .commands(&mut *self.protocol, None, COMMANDS_PER_TURN);
            self.settle(verdict, ctx.now)?;
            if self.core.has_commands() && self.state == State::Open {
                ctx.again = true;
            }
        }
        self.reset_while_paused()?;
        let mut reads = 0;
        while self.readable && self.state == State::Open && !self.has_output() {
            if !self.core.wants_input() {
                break;
            }
            if reads == READS_PER_TURN {
                ctx.again = true;
                break;
            }
            reads += 1;
            match self.sock.read(ctx.buf) {
                Ok(0) => {
                    self.readable = false;
                    let verdict = self.core.input_ended(Reason::Done);
                    self.settle(verdict, ctx.now)?;
                    return self.pump(ctx);
                }
                Ok(n) => {
                    // A short read drained the socket: the next input is a
                    // new edge, so skip the read that would say WouldBlock.
                    // Not once the FIN was seen: that edge is already spent.
                    if n < ctx.buf.len() && !self.read_closed {
                        self.readable = false;
                    }
                    let had_inbox = self.core.inbox().is_some();
                    let data = &ctx.buf[..n];
                    let verdict = self.core.received(&mut *self.protocol, data, ctx.now);
                    self.settle(verdict, ctx.now)?;
                    if !had_inbox && self.core.inbox().is_some() {
                        // The protocol just took a handle: commands may be
                        // waiting already.
                        ctx.again = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.core.fail(End::abort(Reason::Lost(e.to_string())))),
            }
        }
        if self.state != State::Open && !self.has_output() {
            return self.pump(ctx);
        }
        // Paused by this turn's input, with the reset already reported.
        self.reset_while_paused()
    }

    /// A paused connection reads nothing, so its peer's reset would not
    /// be found by a read: once the poll reported the read side closed or
    /// in error, the socket's pending error says whether it was a reset
    /// (the connection ends, as Twisted's paused transport still gets
    /// `connectionLost`) or only a FIN, whose EOF is read in its place
    /// after the input before it, once the protocol resumes.
    fn reset_while_paused(&mut self) -> Result<(), End> {
        if !self.read_closed || self.state != State::Open || self.core.wants_input() {
            return Ok(());
        }
        match self.sock.take_error() {
            Ok(None) => Ok(()),
            Ok(Some(e)) | Err(e) => Err(self.core.fail(End::abort(Reason::Lost(e.to_string())))),
        }
    }

    /// A deadline of this connection came: timeouts and timers.
    pub(super) fn tick(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        let now = ctx.now;
        if self.has_output() {
            if let (Some(since), Some(limit)) = (self.blocked_since, ctx.config.write_timeout)
                && now.duration_since(since) >= limit
            {
                log::info!("write timed out; dropping the connection");
                return Err(self.core.fail(End::abort(Reason::TimedOut("write"))));
            }
            return Ok(());
        }
        match self.state {
            State::Lingering { until } if now >= until => {
                Err(End::clean(self.closing_reason.clone()))
            }
            State::Open => {
                let verdict = self.core.due(&mut *self.protocol, now);
                self.settle(verdict, now)?;
                if self.has_output() || self.state != State::Open {
                    return self.pump(ctx);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// When this connection next needs the loop without any event.
    pub(super) fn next_deadline(&self, config: &ServerConfig) -> Option<Instant> {
        let own = self.own_deadline(config);
        if matches!(self.state, State::Lingering { .. }) {
            return own;
        }
        match (own, self.core.control().close_deadline()) {
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
            State::Open => self.core.next_deadline(),
            State::Flushing => None,
            State::Lingering { until } => Some(until),
        }
    }
}

/// A freshly accepted (blocking) stream as a non-blocking socket.
pub(super) fn into_sock(stream: Stream) -> io::Result<Sock> {
    stream.set_nonblocking(true)?;
    stream.set_nodelay();
    Ok(match stream {
        Stream::Tcp(s) => Sock::Tcp(mio::net::TcpStream::from_std(s)),
        Stream::Unix(s) => Sock::Unix(mio::net::UnixStream::from_std(s)),
    })
}
