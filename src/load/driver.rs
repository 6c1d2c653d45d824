//! The event loop of one load thread: it owns its share of the
//! connections (non-blocking sockets registered with one mio `Poll`),
//! opens them on the ramp, sends each request when the workload's loop
//! says so, feeds replies to the workload's [`Client`], enforces timeouts
//! and records everything into its own [`Stats`] — no locks on the hot
//! path; the threads' stats are merged at the end.
//!
//! Each connection has one deadline at a time, depending on its state
//! (open it, give up connecting, give up waiting, send the next open-loop
//! request, reconnect). Deadlines sit in a min-heap with the connection's
//! generation number; a state change bumps the generation, which voids the
//! old entry instead of searching the heap for it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::client::{Client, Sink};
use super::config::{LoadConfig, RECONNECT_DELAY};
use super::errors::{ErrorKind, Fault};
use super::schedule::{Schedule, connect_time};
use super::stats::Stats;
use super::timerfd::TimerFd;

/// Bytes read from a socket per `read` call.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Events taken from the poll at once.
const EVENTS_CAPACITY: usize = 1024;

/// The longest the loop sleeps, so progress counters stay fresh.
const MAX_POLL_WAIT: Duration = Duration::from_millis(100);

/// The timer's token: past every connection's index.
const TIMER: Token = Token(usize::MAX);

/// Live counters the progress line reads, shared by every thread.
#[derive(Default)]
pub struct Progress {
    /// Successful requests so far (measured part only).
    pub requests: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Connections established so far.
    pub connects: AtomicU64,
}

/// The times every thread shares.
#[derive(Clone, Copy)]
pub struct Clock {
    /// When the run (and the connection ramp) starts.
    pub start: Instant,
    /// When counting starts (after the warmup).
    pub measure_from: Instant,
    /// When the run ends.
    pub end: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not opened yet (waiting for its place on the ramp) or reopening.
    Pending,
    Connecting,
    /// Connected, no request outstanding.
    Ready,
    /// A request is outstanding.
    Waiting,
    /// Given up (idle connections are not replaced).
    Done,
}

struct Conn {
    slot: usize,
    stream: Option<TcpStream>,
    state: State,
    generation: u64,
    client: Box<dyn Client>,
    out: Vec<u8>,
    out_at: usize,
    /// Open loop: the number of this connection's next scheduled request.
    nth: u64,
    intended: Instant,
    sent: Instant,
    connect_started: Instant,
    served: u64,
}

/// One thread's loop.
pub struct Driver {
    config: Arc<LoadConfig>,
    clock: Clock,
    schedule: Option<Schedule>,
    poll: Poll,
    timer: TimerFd,
    /// When the timerfd is armed for, to re-arm only when that changes.
    armed: Option<Instant>,
    conns: Vec<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    stats: Stats,
    sink: Sink,
    buf: Vec<u8>,
    progress: Arc<Progress>,
    published: (u64, u64, u64),
}

impl Driver {
    /// A loop for the connections `slots` (numbers unique in the run), each
    /// with its client.
    pub fn new(
        config: Arc<LoadConfig>,
        clock: Clock,
        clients: Vec<(usize, Box<dyn Client>)>,
        progress: Arc<Progress>,
    ) -> io::Result<Driver> {
        let schedule = config
            .open_loop()
            .map(|(rate, conns)| Schedule::new(clock.measure_from.min(clock.start), rate, conns));
        let conns = clients
            .into_iter()
            .map(|(slot, client)| Conn {
                slot,
                stream: None,
                state: State::Pending,
                generation: 0,
                client,
                out: Vec::new(),
                out_at: 0,
                nth: 0,
                intended: clock.start,
                sent: clock.start,
                connect_started: clock.start,
                served: 0,
            })
            .collect();
        let poll = Poll::new()?;
        let timer = TimerFd::new()?;
        timer.register(poll.registry(), TIMER)?;
        Ok(Driver {
            config,
            clock,
            schedule,
            poll,
            timer,
            armed: None,
            conns,
            timers: BinaryHeap::new(),
            stats: Stats::default(),
            sink: Sink::default(),
            buf: vec![0; READ_BUFFER_BYTES],
            progress,
            published: (0, 0, 0),
        })
    }

    /// Runs until the end of the run and returns what it measured.
    pub fn run(mut self) -> io::Result<Stats> {
        let connect_rate = self.config.connect_rate;
        for i in 0..self.conns.len() {
            let at = connect_time(self.clock.start, self.conns[i].slot, connect_rate);
            self.set_deadline(i, at);
        }
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let now = Instant::now();
            if now >= self.clock.end {
                break;
            }
            let wait = (self.clock.end - now).min(MAX_POLL_WAIT);
            // The poll's own timeout is in whole milliseconds; the timerfd
            // wakes us on time for the next deadline.
            if let Some(&Reverse((at, _, _))) = self.timers.peek()
                && self.armed != Some(at)
            {
                self.timer.arm(at.saturating_duration_since(now))?;
                self.armed = Some(at);
            }
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // Nothing that arrives after the end is looked at: the run is over.
            let ended = Instant::now() >= self.clock.end;
            for event in events.iter().take_while(|_| !ended) {
                if event.token() == TIMER {
                    self.timer.drain();
                    self.armed = None;
                    continue;
                }
                let i = event.token().0;
                if i < self.conns.len() {
                    self.ready(
                        i,
                        event.is_writable() || event.is_error() || event.is_write_closed(),
                    );
                }
            }
            self.fire_timers();
            self.publish();
        }
        self.finish();
        Ok(self.stats)
    }

    fn publish(&mut self) {
        let now = (
            self.stats.requests,
            self.stats.errors.total(),
            self.stats.connects,
        );
        let p = &self.progress;
        p.requests
            .fetch_add(now.0 - self.published.0, Ordering::Relaxed);
        p.errors
            .fetch_add(now.1 - self.published.1, Ordering::Relaxed);
        p.connects
            .fetch_add(now.2 - self.published.2, Ordering::Relaxed);
        self.published = now;
    }

    fn finish(&mut self) {
        self.publish();
        for c in &mut self.conns {
            if matches!(c.state, State::Ready | State::Waiting) {
                self.stats.open_at_end += 1;
            }
            if c.client.sends() {
                self.stats.per_connection.push(c.served);
            }
            if let Some(mut s) = c.stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
        }
    }

    fn set_deadline(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        c.generation += 1;
        self.timers.push(Reverse((at, i, c.generation)));
    }

    /// Voids the connection's deadline.
    fn clear_deadline(&mut self, i: usize) {
        self.conns[i].generation += 1;
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, i, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.conns[i].generation != generation {
                continue;
            }
            match self.conns[i].state {
                State::Pending => self.open(i, now),
                State::Connecting => {
                    let t = self.config.timeout;
                    self.fail(
                        i,
                        Fault::new(
                            ErrorKind::Timeout,
                            format!("connect: no answer within {t:?}"),
                        ),
                    );
                }
                State::Waiting => {
                    let t = self.config.timeout;
                    self.fail(
                        i,
                        Fault::new(ErrorKind::Timeout, format!("no response within {t:?}")),
                    );
                }
                State::Ready => self.send(i, now),
                State::Done => {}
            }
        }
    }

    fn open(&mut self, i: usize, now: Instant) {
        let mut stream = match TcpStream::connect(self.config.target) {
            Ok(s) => s,
            Err(e) => return self.fail(i, Fault::from_io(&e, "connect")),
        };
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.fail(i, Fault::from_io(&e, "register"));
        }
        let c = &mut self.conns[i];
        c.stream = Some(stream);
        c.state = State::Connecting;
        c.connect_started = now;
        c.out.clear();
        c.out_at = 0;
        c.client.reset();
        let timeout = self.config.timeout;
        self.set_deadline(i, now + timeout);
    }

    /// Closes the socket and counts the fault; the slot reconnects after a
    /// pause, or, for idle runs, is done.
    fn fail(&mut self, i: usize, fault: Fault) {
        self.stats.errors.add(&fault);
        self.drop_stream(i);
        if self.config.reconnects() {
            self.conns[i].state = State::Pending;
            self.set_deadline(i, Instant::now() + RECONNECT_DELAY);
        } else {
            self.conns[i].state = State::Done;
            self.clear_deadline(i);
        }
    }

    fn drop_stream(&mut self, i: usize) {
        if let Some(mut s) = self.conns[i].stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
    }

    /// A readiness event for connection `i`.
    fn ready(&mut self, i: usize, writable: bool) {
        if self.conns[i].state == State::Connecting {
            match self.connect_result(i) {
                Ok(false) => return, // spurious wake-up: still connecting
                Ok(true) => self.connected(i),
                Err(f) => return self.fail(i, f),
            }
        }
        if writable && matches!(self.conns[i].state, State::Ready | State::Waiting) {
            self.flush(i);
        }
        if matches!(self.conns[i].state, State::Ready | State::Waiting) {
            self.read(i);
        }
    }

    fn connect_result(&mut self, i: usize) -> Result<bool, Fault> {
        let Some(s) = self.conns[i].stream.as_ref() else {
            return Ok(false);
        };
        match s.take_error() {
            Ok(Some(e)) | Err(e) => return Err(Fault::from_io(&e, "connect")),
            Ok(None) => {}
        }
        match s.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(Fault::from_io(&e, "connect")),
        }
    }

    fn connected(&mut self, i: usize) {
        let now = Instant::now();
        let c = &mut self.conns[i];
        if let Some(s) = c.stream.as_ref() {
            // Requests are small and latency-bound: no Nagle delay.
            let _ = s.set_nodelay(true);
        }
        self.stats.connect.record(nanos(now - c.connect_started));
        self.stats.connects += 1;
        c.state = State::Ready;
        self.clear_deadline(i);
        if self.conns[i].client.sends() {
            self.next_request(i, now);
        }
    }

    /// Sends now (closed loop, or open loop when late) or sets the deadline
    /// of the next scheduled request.
    fn next_request(&mut self, i: usize, now: Instant) {
        if now >= self.clock.end {
            return;
        }
        match self.schedule {
            None => self.send(i, now),
            Some(schedule) => {
                let c = &mut self.conns[i];
                // A connection (re)opened late does not burst to catch up:
                // it skips the slots it could not have used.
                c.nth = c
                    .nth
                    .max(schedule.first_at_or_after(c.slot, c.connect_started));
                let at = schedule.intended(c.slot, c.nth);
                if at <= now {
                    self.send(i, now);
                } else {
                    self.set_deadline(i, at);
                }
            }
        }
    }

    fn send(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        c.intended = match self.schedule {
            Some(s) => {
                let at = s.intended(c.slot, c.nth);
                c.nth += 1;
                at
            }
            None => now,
        };
        c.sent = now;
        c.client.request(&mut c.out, now);
        c.state = State::Waiting;
        let timeout = self.config.timeout;
        self.set_deadline(i, now + timeout);
        self.flush(i);
    }

    fn flush(&mut self, i: usize) {
        let measuring = Instant::now() >= self.clock.measure_from;
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        while c.out_at < c.out.len() {
            match stream.write(&c.out[c.out_at..]) {
                Ok(0) => break,
                Ok(n) => {
                    c.out_at += n;
                    if measuring {
                        self.stats.bytes_sent += n as u64;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, Fault::from_io(&e, "write")),
            }
        }
        c.out.clear();
        c.out_at = 0;
    }

    fn read(&mut self, i: usize) {
        loop {
            let Some(stream) = self.conns[i].stream.as_mut() else {
                return;
            };
            match stream.read(&mut self.buf) {
                Ok(0) => return self.eof(i),
                Ok(n) => {
                    let now = Instant::now();
                    if now >= self.clock.measure_from {
                        self.stats.bytes_received += n as u64;
                    }
                    let mut sink = std::mem::take(&mut self.sink);
                    sink.clear();
                    let result = self.conns[i]
                        .client
                        .received(&self.buf[..n], now, &mut sink);
                    let go_on = match result {
                        Ok(()) => self.absorb(i, &sink, now),
                        Err(f) => {
                            self.fail(i, f);
                            false
                        }
                    };
                    self.sink = sink;
                    // A short read drained the socket: the next arrival
                    // raises a new edge, so skip the read that would only
                    // say WouldBlock (a syscall per response saved).
                    if !go_on || n < self.buf.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, Fault::from_io(&e, "read")),
            }
        }
    }

    /// The server closed its side.
    fn eof(&mut self, i: usize) {
        let now = Instant::now();
        if self.conns[i].state == State::Waiting {
            let mut sink = std::mem::take(&mut self.sink);
            sink.clear();
            let result = self.conns[i].client.closed(&mut sink);
            match result {
                Ok(()) if sink.completed > 0 => {
                    self.absorb(i, &sink, now);
                }
                Ok(()) => self.fail(
                    i,
                    Fault::new(
                        ErrorKind::Closed,
                        "the server closed the connection before responding",
                    ),
                ),
                Err(f) => self.fail(i, f),
            }
            self.sink = sink;
            // absorb() reopened the connection if the response completed.
            if self.conns[i].state == State::Waiting {
                self.fail(
                    i,
                    Fault::new(ErrorKind::Closed, "the server closed the connection"),
                );
            }
        } else if self.conns[i].state == State::Ready {
            self.fail(
                i,
                Fault::new(ErrorKind::Closed, "the server closed an idle connection"),
            );
        }
    }

    /// Takes in what a read produced. Returns whether to keep reading this
    /// connection's socket.
    fn absorb(&mut self, i: usize, sink: &Sink, now: Instant) -> bool {
        let measure_from = self.clock.measure_from;
        for &sent_at in &sink.delivered_sent_at {
            if sent_at >= measure_from {
                self.stats
                    .delivery
                    .record(nanos(now.saturating_duration_since(sent_at)));
                self.stats.delivered += 1;
            }
        }
        for f in &sink.soft_faults {
            self.stats.errors.add(f);
        }
        if sink.completed == 0 || self.conns[i].state != State::Waiting {
            return true;
        }
        let c = &mut self.conns[i];
        if sink.soft_faults.is_empty() && c.intended >= measure_from && now <= self.clock.end {
            self.stats.requests += 1;
            c.served += 1;
            self.stats.latency.record(nanos(now - c.intended));
            if self.schedule.is_some() {
                self.stats.uncorrected.record(nanos(now - c.sent));
            }
        }
        c.state = State::Ready;
        self.clear_deadline(i);
        if self.conns[i].client.one_request_per_connection() {
            self.drop_stream(i);
            self.conns[i].state = State::Pending;
            self.open(i, now);
            return false;
        }
        self.next_request(i, now);
        true
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
