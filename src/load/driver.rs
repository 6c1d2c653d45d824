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
//! generation number; an earlier deadline bumps the generation, which voids
//! the old entry instead of searching the heap for it. A later deadline
//! (the response timeout, moved on by every request in closed loop) only
//! updates the connection's `deadline`: its entry already in the heap fires
//! first and queues the new one then. So a closed-loop run queues one entry
//! per connection per `--timeout`, not one per request: the heap stays
//! small and the timerfd is not re-armed for deadlines long void.
//!
//! Every request due in the measured window ends in exactly one of three
//! counts: completed, failed, or unsent (see [`Stats`]). Open loop follows
//! wrt2's rule: a slot that passes while its connection is busy, down or
//! reconnecting is not skipped; the connection sends it as soon as it can,
//! and its latency runs from the slot's intended time. Slots still unsent
//! when the run ends are counted as unsent, by why. After the end, the loop
//! drains: it sends nothing more, but waits (up to `--timeout`) for the
//! answers of requests already sent, so none is left without an outcome.

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
use super::stats::{Stats, StepStats};
use super::timeline::Timeline;
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
    /// Responses so far, warmup included: the progress line's rate is the
    /// change in this over the time between two of its draws.
    pub answered: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Connections established so far.
    pub connects: AtomicU64,
}

/// Not set: the run was not cut short.
pub const NOT_STOPPED: u64 = u64::MAX;

/// When to stop early (Ctrl-C), shared by every thread: nanoseconds from
/// the run's start, or [`NOT_STOPPED`]. One instant for all threads, so
/// that they all measure the same window.
pub type StopAt = Arc<AtomicU64>;

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
    /// The connection's deadline (none: nothing is due).
    deadline: Option<Instant>,
    /// When its live entry in the heap (of this generation) fires.
    queued: Option<Instant>,
    client: Box<dyn Client>,
    out: Vec<u8>,
    out_at: usize,
    /// Open loop: the number of this connection's next scheduled request.
    nth: u64,
    /// Open loop: its first request number in the measured window.
    first_measured: u64,
    /// Open loop: its first request number past the measured window.
    first_after_end: u64,
    /// The outstanding request is one of the measured window's, and has no
    /// outcome yet.
    counted: bool,
    /// The rate-plan step of the outstanding request.
    step: usize,
    intended: Instant,
    sent: Instant,
    connect_started: Instant,
    served: u64,
}

/// One thread's loop.
pub struct Driver {
    config: Arc<LoadConfig>,
    clock: Clock,
    schedule: Option<Arc<Schedule>>,
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
    published: (u64, u64, u64, u64),
    /// Responses, warmup included (for the progress line).
    answered: u64,
    stop_at: StopAt,
    interrupted: bool,
    /// The connections' states were taken at the end (before the drain).
    ended: bool,
}

impl Driver {
    /// A loop for the connections `slots` (numbers unique in the run), each
    /// with its client.
    pub fn new(
        config: Arc<LoadConfig>,
        clock: Clock,
        clients: Vec<(usize, Box<dyn Client>)>,
        progress: Arc<Progress>,
        stop_at: StopAt,
    ) -> io::Result<Driver> {
        let schedule = match config.open_loop() {
            Some((_, conns)) if !config.steps.is_empty() => Some(Schedule::steps(
                clock.start,
                clock.measure_from,
                config.step_duration,
                &config.steps,
                conns,
            )),
            Some((rate, conns)) => Some(Schedule::new(clock.start, rate, conns)),
            None => None,
        }
        .map(Arc::new);
        let conns = clients
            .into_iter()
            .map(|(slot, client)| Conn {
                step: 0,
                first_measured: schedule
                    .as_ref()
                    .map_or(0, |s| s.first_at_or_after(slot, clock.measure_from)),
                first_after_end: schedule
                    .as_ref()
                    .map_or(0, |s| s.first_at_or_after(slot, clock.end)),
                counted: false,
                slot,
                stream: None,
                state: State::Pending,
                generation: 0,
                deadline: None,
                queued: None,
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
        let stats = Stats {
            timeline: Timeline::new(
                clock.measure_from,
                config.interval,
                Timeline::intervals_in(config.duration, config.interval),
            ),
            steps: vec![StepStats::default(); config.steps.len()],
            ..Stats::default()
        };
        Ok(Driver {
            config,
            clock,
            schedule,
            poll,
            timer,
            armed: None,
            conns,
            timers: BinaryHeap::new(),
            stats,
            sink: Sink::default(),
            buf: vec![0; READ_BUFFER_BYTES],
            progress,
            published: (0, 0, 0, 0),
            answered: 0,
            stop_at,
            interrupted: false,
            ended: false,
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
        let drain_until = self.clock.end + self.config.timeout;
        loop {
            self.check_stop();
            let now = Instant::now();
            if now >= self.clock.end && !self.ended {
                self.take_end_states();
            }
            if now >= self.clock.end
                && (self.interrupted || now >= drain_until || !self.answers_due())
            {
                break;
            }
            let limit = if now < self.clock.end {
                self.clock.end
            } else {
                drain_until
            };
            let wait = (limit - now).min(MAX_POLL_WAIT);
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
            // After the end only the answers still due are looked at.
            let ended = Instant::now() >= self.clock.end;
            for event in events.iter() {
                if event.token() == TIMER {
                    self.timer.drain();
                    self.armed = None;
                    continue;
                }
                let i = event.token().0;
                if i < self.conns.len() && (!ended || self.conns[i].state == State::Waiting) {
                    self.ready(
                        i,
                        event.is_writable() || event.is_error() || event.is_write_closed(),
                        event.is_read_closed() || event.is_error(),
                    );
                }
            }
            self.fire_timers();
            self.publish();
        }
        self.finish();
        Ok(self.stats)
    }

    /// Whether a measured request still awaits its answer.
    fn answers_due(&self) -> bool {
        self.conns
            .iter()
            .any(|c| c.state == State::Waiting && c.counted)
    }

    /// Takes in a Ctrl-C: the run ends now, for every thread at the same
    /// instant, and the measured window with it.
    fn check_stop(&mut self) {
        if self.interrupted {
            return;
        }
        let at = self.stop_at.load(Ordering::Relaxed);
        if at == NOT_STOPPED {
            return;
        }
        self.interrupted = true;
        // Normally the instant is still ahead (it is set a little in the
        // future); a thread that was not scheduled in time ends now
        // instead, so that nothing it already sent falls outside its window.
        let end = (self.clock.start + Duration::from_nanos(at))
            .max(Instant::now())
            .min(self.clock.end);
        self.clock.end = end;
        self.stats.ended_at = Some(end);
        if let Some(s) = self.schedule.clone() {
            for c in &mut self.conns {
                c.first_after_end = s.first_at_or_after(c.slot, end).max(c.first_measured);
            }
        }
    }

    fn publish(&mut self) {
        let now = (
            self.stats.requests,
            self.stats.errors.total(),
            self.stats.connects,
            self.answered,
        );
        let p = &self.progress;
        p.requests
            .fetch_add(now.0 - self.published.0, Ordering::Relaxed);
        p.errors
            .fetch_add(now.1 - self.published.1, Ordering::Relaxed);
        p.connects
            .fetch_add(now.2 - self.published.2, Ordering::Relaxed);
        p.answered
            .fetch_add(now.3 - self.published.3, Ordering::Relaxed);
        self.published = now;
    }

    fn finish(&mut self) {
        let now = Instant::now();
        self.stats.interrupted = self.interrupted;
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Waiting && self.conns[i].counted {
                // Interrupted, or its timer had not fired when the drain
                // ran out: never left without an outcome.
                let fault = if self.interrupted {
                    Fault::new(
                        ErrorKind::Interrupted,
                        "the run was interrupted before the response came",
                    )
                } else {
                    let t = self.config.timeout;
                    Fault::new(ErrorKind::Timeout, format!("no response within {t:?}"))
                };
                self.count_fault(i, &fault, now);
            }
        }
        self.publish();
        if !self.ended {
            self.take_end_states();
        }
        for c in &mut self.conns {
            if c.client.sends() {
                self.stats.per_connection.push(c.served);
            }
            if let Some(mut s) = c.stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
        }
    }

    /// What the connections are doing as the run ends (the drain after it
    /// changes nothing here): open, connecting, behind their schedule.
    fn take_end_states(&mut self) {
        self.ended = true;
        let schedule = self.schedule.clone();
        let step_len = self.config.step_duration;
        let measure_from = self.clock.measure_from;
        for c in &mut self.conns {
            if let Some(s) = &schedule
                && c.client.sends()
            {
                let n = self.stats.steps.len();
                for (i, step) in self.stats.steps.iter_mut().enumerate() {
                    let lo = s
                        .first_at_or_after(c.slot, measure_from + step_len * i as u32)
                        .max(c.first_measured);
                    let hi = if i + 1 == n {
                        c.first_after_end
                    } else {
                        s.first_at_or_after(c.slot, measure_from + step_len * (i as u32 + 1))
                            .min(c.first_after_end)
                    };
                    step.scheduled += hi.saturating_sub(lo);
                    step.unsent += hi.saturating_sub(c.nth.max(lo));
                }
            }
            if schedule.is_some() && c.client.sends() {
                self.stats.scheduled += c.first_after_end.saturating_sub(c.first_measured);
                let unsent = c
                    .first_after_end
                    .saturating_sub(c.nth.max(c.first_measured));
                match c.state {
                    State::Ready | State::Waiting => self.stats.unsent_run_ended += unsent,
                    _ => self.stats.unsent_connection_down += unsent,
                }
            }
            match c.state {
                State::Ready | State::Waiting => self.stats.open_at_end += 1,
                State::Connecting => self.stats.connecting_at_end += 1,
                _ => {}
            }
        }
    }

    fn set_deadline(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        c.deadline = Some(at);
        if c.queued.is_some_and(|q| q <= at) {
            return; // That entry fires first and queues this deadline.
        }
        c.generation += 1;
        c.queued = Some(at);
        self.timers.push(Reverse((at, i, c.generation)));
    }

    /// Voids the connection's deadline.
    fn clear_deadline(&mut self, i: usize) {
        self.conns[i].deadline = None;
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, i, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let c = &mut self.conns[i];
            if c.generation != generation {
                continue;
            }
            c.queued = None;
            match c.deadline {
                None => continue,
                Some(d) if d > now => {
                    // The deadline moved on since this entry was queued.
                    c.queued = Some(d);
                    self.timers.push(Reverse((d, i, generation)));
                    continue;
                }
                Some(_) => c.deadline = None,
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
                State::Ready if now < self.clock.end => self.send(i, now),
                State::Ready | State::Done => {}
            }
        }
    }

    fn open(&mut self, i: usize, now: Instant) {
        if now >= self.clock.end {
            // The drain opens nothing.
            self.conns[i].state = State::Pending;
            return self.clear_deadline(i);
        }
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

    /// Counts a fault: in the errors, and as the outcome of the
    /// connection's measured request if one is outstanding.
    fn count_fault(&mut self, i: usize, fault: &Fault, now: Instant) {
        self.stats.errors.add(fault);
        self.stats.timeline.error(now, fault.kind);
        if let Some(step) = self.step_at(now) {
            step.errors.add(fault);
        }
        let c = &mut self.conns[i];
        if c.state == State::Waiting && c.counted {
            c.counted = false;
            self.stats.failed += 1;
            self.stats.timeline.failed(now);
            if let Some(step) = self.stats.steps.get_mut(c.step) {
                step.failed += 1;
            }
        }
    }

    /// The rate-plan step under way at `now` (none in the warmup or
    /// without a plan; the last one in the drain).
    fn step_at(&mut self, now: Instant) -> Option<&mut StepStats> {
        let since = now.checked_duration_since(self.clock.measure_from)?;
        let len = self.config.step_duration.as_nanos().max(1);
        let i = (since.as_nanos() / len) as usize;
        let last = self.stats.steps.len().checked_sub(1)?;
        self.stats.steps.get_mut(i.min(last))
    }

    /// Closes the socket and counts the fault; the slot reconnects after a
    /// pause, or, for idle runs, is done.
    fn fail(&mut self, i: usize, fault: Fault) {
        self.count_fault(i, &fault, Instant::now());
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
    fn ready(&mut self, i: usize, writable: bool, read_closed: bool) {
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
            self.read(i, read_closed);
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
        match self.schedule.clone() {
            None => self.send(i, now),
            Some(schedule) => {
                let c = &mut self.conns[i];
                // wrk2's rule: a measured slot that passed while this
                // connection was busy, down or reconnecting is sent now and
                // charged from its intended time. Only the warmup's slots
                // are skipped (they are not counted, so a burst to catch
                // up on them would only disturb the measured window).
                let skip_to = now.min(self.clock.measure_from);
                c.nth = c.nth.max(schedule.first_at_or_after(c.slot, skip_to));
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
        let measure_from = self.clock.measure_from;
        let c = &mut self.conns[i];
        (c.intended, c.counted) = match self.schedule.as_deref() {
            Some(s) => {
                let at = s.intended(c.slot, c.nth);
                c.step = s.step_of(c.slot, c.nth);
                let counted = c.nth >= c.first_measured && c.nth < c.first_after_end;
                c.nth += 1;
                (at, counted)
            }
            None => {
                let counted = now >= measure_from;
                if counted {
                    self.stats.scheduled += 1;
                }
                (now, counted)
            }
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

    /// Reads until the socket is drained. `read_closed`: the peer's FIN
    /// came with this event, so read on to the end-of-file even after a
    /// short read (no further edge would announce it).
    fn read(&mut self, i: usize, read_closed: bool) {
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
                    // say WouldBlock (a syscall per response saved). Not
                    // when the FIN is already in: its edge has passed.
                    if !go_on || (n < self.buf.len() && !read_closed) {
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
            self.stats.timeline.error(now, f.kind);
            if let Some(step) = self.step_at(now) {
                step.errors.add(f);
            }
        }
        if sink.completed == 0 || self.conns[i].state != State::Waiting {
            return true;
        }
        self.answered += 1;
        let c = &mut self.conns[i];
        if c.counted {
            c.counted = false;
            if sink.soft_faults.is_empty() {
                self.stats.requests += 1;
                c.served += 1;
                let latency = nanos(now - c.intended);
                let uncorrected = nanos(now - c.sent);
                self.stats.latency.record(latency);
                self.stats.timeline.completed(now, latency);
                if self.schedule.is_some() {
                    self.stats.uncorrected.record(uncorrected);
                }
                if let Some(step) = self.stats.steps.get_mut(c.step) {
                    step.completed += 1;
                    step.latency.record(latency);
                    step.uncorrected.record(uncorrected);
                }
            } else {
                self.stats.failed += 1;
                self.stats.timeline.failed(now);
                if let Some(step) = self.stats.steps.get_mut(c.step) {
                    step.failed += 1;
                }
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
