//! One connection of the hybrid model: a non-blocking socket, the
//! [`Core`] that keeps the per-connection rules, and what only a
//! non-blocking driver needs (output the socket did not take, readiness,
//! the close under way and the linger after our FIN).
//!
//! A `Conn` lives in exactly one place at a time: parked in the poller's
//! slot, or in the hands of one worker for one turn. It moves by value,
//! so no two threads can ever run it at once; no lock guards it.

use std::io;
use std::time::Instant;

use mio::unix::SourceFd;

use super::link::Key;
use super::sock::Sock;
use crate::engine::ServerConfig;
use crate::engine::core::{Core, End};
use crate::engine::reactor::{COMMANDS_PER_TURN, READS_PER_TURN};
use crate::protocol::{Protocol, Reason};

/// At most this much input is read and discarded while lingering on close.
const MAX_LINGER_BYTES: usize = 1 << 20;
/// A send buffer grown larger than this is given back once it drains.
const KEEP_OUTPUT_CAPACITY: usize = 64 * 1024;

/// What one turn needs besides the connection.
pub(super) struct Ctx<'a> {
    pub config: &'a ServerConfig,
    pub buf: &'a mut [u8],
    pub now: Instant,
    /// The server is stopping: end the connection as if the peer had
    /// sent EOF.
    pub stopping: bool,
}

/// After our FIN: input is read and discarded until the peer's EOF, so
/// that unread input does not turn the close into an RST.
struct Linger {
    until: Instant,
    read: usize,
}

/// One connection. See the [module docs](self).
pub(super) struct Conn {
    pub key: Key,
    sock: Sock,
    protocol: Box<dyn Protocol>,
    core: Core,
    /// The log context, `Protocol,session,peer`.
    pub context: String,
    /// Output the callbacks wrote and the socket has not taken.
    out: Vec<u8>,
    sent: usize,
    /// The socket may have input not read yet (edge-triggered poll).
    pub readable: bool,
    /// The poll saw the peer's FIN: read until EOF even after short reads.
    pub read_closed: bool,
    /// The socket may take output (edge-triggered poll).
    pub writable: bool,
    /// Since when the socket refuses our output.
    blocked_since: Option<Instant>,
    /// A clean end under way: send what is buffered, then the FIN.
    closing: Option<End>,
    linger: Option<Linger>,
    made: bool,
}

impl Conn {
    pub(super) fn new(
        key: Key,
        sock: Sock,
        protocol: Box<dyn Protocol>,
        core: Core,
        context: String,
    ) -> Conn {
        Conn {
            key,
            sock,
            protocol,
            core,
            context,
            out: Vec::new(),
            sent: 0,
            // A peer may have written before the socket was registered.
            readable: true,
            read_closed: false,
            writable: true,
            blocked_since: None,
            closing: None,
            linger: None,
            made: false,
        }
    }

    fn has_output(&self) -> bool {
        self.sent < self.out.len()
    }

    /// Whether a turn now would make progress: what the poller asks
    /// before it hands the connection to a worker. Never true when the
    /// turn would find nothing to do, so a connection cannot spin.
    pub(super) fn has_work(&self, config: &ServerConfig, now: Instant, stopping: bool) -> bool {
        if !self.made || self.core.control().killed() {
            return true;
        }
        if self.linger.is_some() {
            return self.readable || self.deadline_passed(config, now);
        }
        if self.has_output() {
            return self.writable || self.deadline_passed(config, now);
        }
        if self.closing.is_some() || stopping {
            return true;
        }
        self.readable || self.core.has_commands() || self.deadline_passed(config, now)
    }

    fn deadline_passed(&self, config: &ServerConfig, now: Instant) -> bool {
        self.next_deadline(config).is_some_and(|d| d <= now)
    }

    /// When this connection needs a turn if no event comes: a timer, the
    /// idle timeout or the close deadline (the core's), the write timeout
    /// while output waits, the end of the linger.
    pub(super) fn next_deadline(&self, config: &ServerConfig) -> Option<Instant> {
        if let Some(linger) = &self.linger {
            return Some(linger.until);
        }
        let close = self.core.control().close_deadline();
        let own = if self.has_output() {
            match (self.blocked_since, config.write_timeout) {
                (Some(since), Some(limit)) => Some(since + limit),
                _ => None,
            }
        } else if self.closing.is_some() {
            None
        } else {
            self.core.next_deadline()
        };
        [own, close].into_iter().flatten().min()
    }

    /// One turn on a worker: `connection_made` the first time, then all
    /// the progress the turn allows. `Ok(true)`: more is waiting than the
    /// turn allowed (go to the back of the line); `Err`: finish the
    /// connection as the `End` says.
    pub(super) fn turn(&mut self, ctx: &mut Ctx) -> Result<bool, End> {
        if !self.made {
            self.made = true;
            let made = self.core.made(&mut *self.protocol);
            self.absorb(made, ctx.now)?;
        }
        if ctx.stopping && self.closing.is_none() && self.linger.is_none() {
            let ended = self.core.input_ended(Reason::Shutdown);
            self.absorb(ended, ctx.now)?;
        }
        self.pump(ctx)
    }

    fn pump(&mut self, ctx: &mut Ctx) -> Result<bool, End> {
        if self.linger.is_some() {
            self.linger_read(ctx)?;
            return Ok(false);
        }
        // A kill, or a close deadline passed: even while output waits.
        if let Err(end) = self.core.control().check(ctx.now) {
            return Err(self.core.fail(end));
        }
        if self.has_output()
            && let (Some(since), Some(limit)) = (self.blocked_since, ctx.config.write_timeout)
            && ctx.now.duration_since(since) >= limit
        {
            log::info!("write timed out; dropping the connection");
            return Err(self.core.fail(End::abort(Reason::TimedOut("write"))));
        }
        self.flush(ctx.now)?;
        if self.has_output() {
            return Ok(false);
        }
        let again = if self.closing.is_none() {
            self.serve(ctx)?
        } else {
            false
        };
        if self.closing.is_some() && !self.has_output() {
            self.fin(ctx)?;
            return Ok(false);
        }
        Ok(again)
    }

    /// Whether the connection must stop taking input and commands this
    /// turn: output is waiting, or it is closing.
    fn held(&self) -> bool {
        self.has_output() || self.closing.is_some() || !self.core.wants_input()
    }

    /// An open connection: due deadlines, inbox commands, then socket
    /// input, until there is none, the turn's budget is spent, output
    /// backs up or the protocol asks to close.
    fn serve(&mut self, ctx: &mut Ctx) -> Result<bool, End> {
        let now = ctx.now;
        if self.core.next_deadline().is_some_and(|d| d <= now) {
            let due = self.core.due(&mut *self.protocol, now);
            self.absorb(due, now)?;
        }
        let mut again = false;
        if !self.held() && self.core.has_commands() {
            let ran = self
                .core
                .commands(&mut *self.protocol, None, COMMANDS_PER_TURN);
            self.absorb(ran, now)?;
            again |= self.core.has_commands();
        }
        let mut reads = 0;
        while self.readable && !self.held() {
            if reads == READS_PER_TURN {
                again = true;
                break;
            }
            reads += 1;
            match self.sock.read(ctx.buf) {
                Ok(0) => {
                    self.readable = false;
                    let reason = if ctx.stopping {
                        Reason::Shutdown
                    } else {
                        Reason::Done
                    };
                    let ended = self.core.input_ended(reason);
                    self.absorb(ended, now)?;
                }
                Ok(n) => {
                    // A short read drained the socket: the next input is a
                    // new edge. Not once the FIN was seen: that edge is spent.
                    if n < ctx.buf.len() && !self.read_closed {
                        self.readable = false;
                    }
                    let got = self.core.received(&mut *self.protocol, &ctx.buf[..n], now);
                    self.absorb(got, now)?;
                    // A peer that keeps sending must not keep timers from
                    // running (a slowloris).
                    if !self.held() && self.core.timer_due(now) {
                        let due = self.core.due(&mut *self.protocol, now);
                        self.absorb(due, now)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.core.fail(End::abort(Reason::Lost(e.to_string())))),
            }
        }
        // The protocol may just have taken a handle: commands may be
        // waiting already.
        Ok(again || (!self.held() && self.core.has_commands()))
    }

    /// Takes what an event answered: its output is queued and sent as far
    /// as the socket takes it; a clean end starts the close; an abort
    /// ends the turn.
    fn absorb(&mut self, result: Result<(), End>, now: Instant) -> Result<(), End> {
        if let Err(end) = result {
            if end.abort {
                return Err(end);
            }
            self.closing.get_or_insert(end);
        }
        self.take_output();
        self.flush(now)
    }

    fn take_output(&mut self) {
        let waiting = self.has_output();
        let fresh = self.core.output();
        if fresh.is_empty() {
            return;
        }
        if waiting {
            self.out.extend_from_slice(fresh);
            fresh.clear();
        } else {
            // Swap buffers so that both keep their capacity.
            self.out.clear();
            self.sent = 0;
            std::mem::swap(&mut self.out, fresh);
        }
    }

    /// Writes buffered output until it is all sent or the socket is full
    /// (then the poller waits for writability; no worker waits).
    fn flush(&mut self, now: Instant) -> Result<(), End> {
        while self.has_output() {
            match self.sock.write(&self.out[self.sent..]) {
                Ok(0) => {
                    let lost = Reason::Lost("the socket accepts no more data".into());
                    return Err(self.core.fail(End::abort(lost)));
                }
                Ok(n) => {
                    self.sent += n;
                    self.blocked_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    self.blocked_since.get_or_insert(now);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.core.fail(End::abort(Reason::Lost(e.to_string())))),
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

    /// Everything is sent: our FIN, then the linger.
    fn fin(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        let end = self.closing_end();
        // The peer may already have gone: then it is closed.
        if self.sock.shutdown_write().is_err() {
            return Err(end);
        }
        self.linger = Some(Linger {
            until: ctx.now + ctx.config.close_linger,
            read: 0,
        });
        self.readable = true;
        self.linger_read(ctx)
    }

    fn closing_end(&self) -> End {
        self.closing
            .clone()
            .unwrap_or_else(|| End::clean(Reason::Done))
    }

    /// Reads and discards input after our FIN until EOF, the byte bound or
    /// the linger's end; `Err` when the socket may be closed.
    fn linger_read(&mut self, ctx: &mut Ctx) -> Result<(), End> {
        let end = self.closing_end();
        let Some(linger) = &mut self.linger else {
            return Err(end);
        };
        if ctx.now >= linger.until {
            return Err(end);
        }
        while self.readable {
            match self.sock.read(ctx.buf) {
                Ok(0) => return Err(end),
                Ok(n) => {
                    linger.read += n;
                    if linger.read >= MAX_LINGER_BYTES {
                        return Err(end);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(end),
            }
        }
        Ok(())
    }

    /// Closes the socket as `end` says (FIN already sent, or an RST), then
    /// `connection_lost`, exactly once.
    pub(super) fn finish(self, end: End, registry: &mio::Registry) {
        let Conn {
            sock,
            mut protocol,
            mut core,
            ..
        } = self;
        let fd = sock.fd();
        let _ = registry.deregister(&mut SourceFd(&fd));
        if end.abort {
            sock.set_abortive_close();
        }
        drop(sock);
        let end = core.fail(end);
        core.lost(&mut *protocol, &end.reason);
    }
}
