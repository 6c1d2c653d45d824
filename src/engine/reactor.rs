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
//! This file is the loop: the poll, the connections' slots, their
//! deadlines, the waker, accepting (through `acceptor.rs`, as every engine)
//! and stopping. A connection's socket and close are `reactor_conn.rs`;
//! what its protocol sees is decided by its connection core
//! (`core.rs`), as on every engine.
//!
//! How it keeps the engine contract:
//!
//! * **One callback at a time**: trivially, there is one thread.
//! * **Writes leave after the callback**, **batched inbox writes**,
//!   **fairness**: `reactor_conn.rs`.
//! * **Other threads go through the inbox**: a [`ConnHandle`] queues into
//!   the connection's bounded channel, then its link pushes the
//!   connection's token into the loop's wake channel (once until the loop
//!   picks it up) and wakes the poll with a [`mio::Waker`].
//!   `abort_connection` on a full inbox marks the connection killed and
//!   wakes the loop the same way; `close_within` files its deadline the
//!   same way, and the loop aborts the connection when it comes.
//! * **Bounds**: `--max-connections` (beyond it, refused with the busy
//!   message), idle and write timeouts, the inbox capacity; a panicking
//!   callback aborts only its connection.
//! * **Stopping**: the listeners are dropped from the poll, every open
//!   connection is closed as if its peer had sent EOF (output flushed, FIN,
//!   linger), and what is left after the grace period is aborted.
//!
//! [`ConnHandle`]: crate::ConnHandle

use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::acceptor::Accepting;
use super::admission::Admission;
use super::core::{Control, Core, End};
use super::reactor_conn::{Conn, Ctx, Link, into_sock};
use super::service::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper};
use crate::endpoint::Listener;
use crate::log::{ContextGuard, connection_context};
use crate::protocol::{Addr, Reason};
use crate::transport::{ConnInfo, Transport};

const WAKER: Token = Token(usize::MAX);

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
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    next_generation: u64,
    admission: Admission,
    wake_tx: Sender<(usize, u64)>,
    wake_rx: Receiver<(usize, u64)>,
    /// Each connection's next deadline, at most one entry per connection:
    /// an entry is removed when its connection ends or gets an earlier one.
    deadlines: BTreeSet<(Instant, usize, u64)>,
    again: Vec<(usize, u64)>,
    /// This turn's work, kept to reuse its allocation.
    kicks: Vec<(usize, u64, Kick)>,
    buf: Vec<u8>,
    accepting: Accepting,
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
    let admission = Admission::new(services, &config)?;
    let mut reactor = Reactor {
        poll,
        waker,
        services,
        buf: vec![0u8; config.read_buffer.max(512)],
        config,
        stopper: stopper.clone(),
        conns: Vec::new(),
        free: Vec::new(),
        next_generation: 0,
        admission,
        wake_tx,
        wake_rx,
        deadlines: BTreeSet::new(),
        again: Vec::new(),
        kicks: Vec::new(),
        accepting: Accepting::new(services.len()),
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
                if self.admission.open() == 0 {
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
                    self.accepting.ready(token.0);
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
        for other in [stop_deadline, self.accepting.paused_until()]
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
            sock,
            mut protocol,
            mut core,
            ..
        } = conn;
        let fd = sock.fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        if end.abort {
            sock.set_abortive_close();
        }
        drop(sock);
        self.free.push(slot);
        core.lost(&mut *protocol, &end.reason);
    }

    /// Accepts what the listeners have, through the accept logic every
    /// engine shares (`acceptor.rs`: EMFILE back-off included).
    fn accept_all(&mut self) {
        let services = self.services;
        let listeners: Vec<&Listener> = services.iter().map(|s| &s.listener).collect();
        let mut accepting = std::mem::replace(&mut self.accepting, Accepting::new(0));
        accepting.accept_ready(
            &listeners,
            || true,
            |i, stream, peer| self.admit(i, stream, peer),
        );
        self.accepting = accepting;
    }

    /// A freshly accepted connection: refuse it, or give it a slot and run
    /// `connection_made`.
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
            link,
            context,
            admitted.ticket,
        );
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
        let result = conn.start(&mut ctx);
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
        if self.admission.open() > 0 {
            log::info!(
                "stopping: {} connections open, giving them {grace:?} to finish",
                self.admission.open()
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
        if self.admission.open() > 0 {
            log::warn!(
                "grace period over: closing {} connections still open",
                self.admission.open()
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
