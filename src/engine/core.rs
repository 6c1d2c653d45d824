//! The connection core: the per-connection rules of the engine contract
//! (`engine/mod.rs`), written once, without I/O.
//!
//! A [`Core`] holds a connection's [`Transport`] (its output buffer, close
//! request and timers), its inbox once the protocol took a handle, the
//! close state, and the deadlines (timers, idle timeout, the
//! `close_within` deadline). A driver (the blocking owner in
//! `connection.rs`, the reactor, the test harness, the TLS wrappers) does
//! the I/O and feeds the core what happened:
//!
//! | event                         | method                        |
//! |-------------------------------|-------------------------------|
//! | the connection is up          | [`Core::made`]                |
//! | bytes arrived                 | [`Core::received`]            |
//! | an inbox command, or a batch  | [`Core::commands`]            |
//! | time passed                   | [`Core::due`]                 |
//! | the peer's EOF                | [`Core::input_ended`]         |
//! | the driver gave up (I/O)      | [`Core::fail`]                |
//! | the socket is closed          | [`Core::lost`]                |
//!
//! Every callback runs under `catch_unwind`: a panic becomes an abort of
//! this connection with [`Reason::Panicked`]. Every event answers the
//! same way: `Ok(())` — send [`Core::output`] and go on; `Err(End)` with
//! `abort: false` — send the output, then close with a FIN; `Err(End)`
//! with `abort: true` — drop the output (already cleared) and reset. Once
//! an event answered `Err`, the core is ended: later events run no
//! callback and give the same `End` again (promise 3: nothing after a
//! close). [`Core::next_deadline`] says when to call [`Core::due`] if
//! nothing else happens.
//!
//! The protocol is lent to each event rather than owned, so that the test
//! harness can keep it as a public field; every driver keeps it beside
//! its core and hands it to nothing else.
//!
//! `Core` is `Send` (protocols, inbox closures and timer closures all
//! are), so a non-blocking driver may move a connection between threads
//! between two events (the hybrid model, issue 14).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::protocol::{Protocol, Reason};
use crate::transport::{CloseDeadline, Closing, Command, Transport};

/// Timers one [`Core::due`] runs at most; more due ones wait for the next
/// call (the next deadline is then already due). A timer that re-arms
/// itself with no delay cannot keep its driver in one call for ever.
pub const TIMERS_PER_TURN: usize = 64;

/// How a connection ends: why, and whether to flush (FIN) or reset (RST).
/// The one `End` of every driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct End {
    /// What `connection_lost` is told.
    pub reason: Reason,
    /// Drop unsent output and reset, rather than flush and FIN.
    pub abort: bool,
}

impl End {
    /// Send what was written, then FIN.
    pub(crate) fn clean(reason: Reason) -> End {
        End {
            reason,
            abort: false,
        }
    }

    /// Drop what was not sent, then RST.
    pub(crate) fn abort(reason: Reason) -> End {
        End {
            reason,
            abort: true,
        }
    }
}

/// What other threads may do to a connection without its inbox, shared by
/// the core and its driver's [`OwnerLink`](crate::transport::OwnerLink):
/// kill it (an `abort_connection` that found the inbox full) and set the
/// `close_within` deadline. The core checks both after every callback.
#[derive(Debug, Default)]
pub(crate) struct Control {
    killed: AtomicBool,
    close: CloseDeadline,
}

impl Control {
    /// Marks the connection killed; `true` the first time.
    pub(crate) fn kill(&self) -> bool {
        !self.killed.swap(true, Ordering::SeqCst)
    }

    /// Whether the connection was killed.
    pub(crate) fn killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Sets the close deadline, or moves it earlier; `true` if it changed.
    pub(crate) fn close_by(&self, deadline: Instant) -> bool {
        self.close.set(deadline)
    }

    /// The close deadline, if one was set.
    pub(crate) fn close_deadline(&self) -> Option<Instant> {
        self.close.get()
    }

    /// `Err` once the connection was killed or its close deadline passed:
    /// what a driver blocked in a write checks between slices.
    pub(crate) fn check(&self, now: Instant) -> Result<(), End> {
        if self.killed() {
            return Err(End::abort(Reason::Aborted));
        }
        if self.close.passed(now) {
            log::info!("not closed by the deadline it was given; aborting the connection");
            return Err(End::abort(Reason::TimedOut("close deadline")));
        }
        Ok(())
    }
}

/// Text of a panic payload: the one helper for every place that catches a
/// panic (the core, the engines, Deferreds).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

/// One connection's rules. See the [module docs](self).
pub(crate) struct Core {
    transport: Transport,
    inbox: Option<Receiver<Command>>,
    control: Arc<Control>,
    idle_timeout: Option<Duration>,
    last_input: Instant,
    /// Set by the first event that answered `Err`.
    ended: Option<End>,
    lost: bool,
    /// The slow-callback watchdog's limit, if on.
    slow_callback: Option<Duration>,
}

impl Core {
    /// A core around `transport`, whose link shares `control`. The idle
    /// timeout counts from `now`.
    pub(crate) fn new(
        transport: Transport,
        control: Arc<Control>,
        idle_timeout: Option<Duration>,
        now: Instant,
    ) -> Core {
        Core {
            transport,
            inbox: None,
            control,
            idle_timeout,
            last_input: now,
            ended: None,
            lost: false,
            slow_callback: None,
        }
    }

    /// Turns the slow-callback watchdog on (`Some(limit)`) or off: a
    /// callback that runs longer than `limit` is logged with what it was
    /// and how long it took. The driver decides: the engines whose
    /// callbacks share a thread (reactor, hybrid) turn it on.
    pub(crate) fn watch_slow_callbacks(&mut self, limit: Option<Duration>) {
        self.slow_callback = limit;
    }

    /// The transport, to read its facts.
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The transport, for drivers (and tests) that reach it outside a
    /// callback.
    pub(crate) fn transport_mut(&mut self) -> &mut Transport {
        &mut self.transport
    }

    /// Bytes to send now (after `Ok` or a clean `End`). The driver sends
    /// them and clears the buffer, or swaps it for one of its own, so no
    /// allocation is made per write.
    pub(crate) fn output(&mut self) -> &mut Vec<u8> {
        self.transport.output_mut()
    }

    /// What other threads set for this connection.
    pub(crate) fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// The inbox, once the protocol took a handle: the driver waits on it
    /// (or is woken for it) and feeds its commands to [`Core::commands`].
    pub(crate) fn inbox(&self) -> Option<&Receiver<Command>> {
        self.inbox.as_ref()
    }

    /// How the connection ended, once an event said so.
    pub(crate) fn ended(&self) -> Option<&End> {
        self.ended.as_ref()
    }

    /// Whether input should still be read and fed: false once ended, and
    /// while the protocol paused it ([`Transport::pause_producing`], or a
    /// `Pause` command; promise 7). A driver asks after every event and
    /// reads nothing while it is false, but goes on with timers and inbox
    /// commands, one of which may resume it.
    pub(crate) fn wants_input(&self) -> bool {
        self.ended.is_none() && !self.transport.is_producing_paused()
    }

    /// `connection_made`.
    pub(crate) fn made(&mut self, p: &mut dyn Protocol) -> Result<(), End> {
        self.event(p, "connection_made", |p, t| p.connection_made(t))
    }

    /// Bytes arrived at `now`: `data_received`, unless the connection is
    /// ending (then nothing is delivered).
    pub(crate) fn received(
        &mut self,
        p: &mut dyn Protocol,
        data: &[u8],
        now: Instant,
    ) -> Result<(), End> {
        self.still_open()?;
        self.last_input = now;
        self.event(p, "data_received", |p, t| p.data_received(data, t))
    }

    /// Runs `first` (a command the driver already received), then the
    /// commands queued behind it, up to `max` in all, stopping at a close
    /// or a kill. Their output accumulates, in order, for one write.
    pub(crate) fn commands(
        &mut self,
        p: &mut dyn Protocol,
        first: Option<Command>,
        max: usize,
    ) -> Result<(), End> {
        self.commands_within(p, first, max, usize::MAX)
    }

    /// As [`Core::commands`], also stopping once the output to send holds
    /// `max_bytes`: a driver that writes after the batch bounds the batch
    /// by what it will write, not by how many commands made it.
    pub(crate) fn commands_within(
        &mut self,
        p: &mut dyn Protocol,
        first: Option<Command>,
        max: usize,
        max_bytes: usize,
    ) -> Result<(), End> {
        self.still_open()?;
        self.pick_up_inbox();
        let mut next = first;
        let mut ran = 0;
        loop {
            if next.is_none() && ran < max {
                next = self.inbox.as_ref().and_then(|rx| rx.try_recv().ok());
            }
            let Some(command) = next.take() else { break };
            if let Some(f) = self.transport.apply(command) {
                self.callback(p, "an inbox command", f)?;
            }
            ran += 1;
            if self.transport.is_disconnecting()
                || self.control.killed()
                || self.transport.pending_output().len() >= max_bytes
            {
                break;
            }
        }
        self.settle()
    }

    /// Commands are waiting in the inbox.
    pub(crate) fn has_commands(&self) -> bool {
        self.inbox.as_ref().is_some_and(|rx| !rx.is_empty())
    }

    /// Time is `now`: the close deadline, the timers due (up to
    /// [`TIMERS_PER_TURN`]), then the idle timeout.
    pub(crate) fn due(&mut self, p: &mut dyn Protocol, now: Instant) -> Result<(), End> {
        self.still_open()?;
        if let Err(end) = self.control.check(now) {
            return self.end(end);
        }
        for _ in 0..TIMERS_PER_TURN {
            let Some(timer) = self.transport.pop_due_timer(now) else {
                break;
            };
            self.callback(p, "a timer", timer)?;
            if self.transport.is_disconnecting() {
                break;
            }
        }
        self.settle()?;
        if let Some(idle) = self.idle_timeout
            && now.duration_since(self.last_input) >= idle
        {
            log::info!("no input for {idle:?}; closing the idle connection");
            return self.end(End::clean(Reason::TimedOut("idle")));
        }
        Ok(())
    }

    /// Whether the protocol has timers armed.
    pub(crate) fn has_timers(&self) -> bool {
        self.transport.next_timer_deadline().is_some()
    }

    /// Whether a timer is due at `now`. Drivers check after input too: a
    /// peer that keeps sending (a slowloris) must not keep timers from
    /// running.
    pub(crate) fn timer_due(&self, now: Instant) -> bool {
        self.transport
            .next_timer_deadline()
            .is_some_and(|d| d <= now)
    }

    /// The input ended (the peer's EOF, or ours from a shutdown): close
    /// cleanly, telling the protocol `reason`.
    pub(crate) fn input_ended(&mut self, reason: Reason) -> Result<(), End> {
        self.still_open()?;
        self.end(End::clean(reason))
    }

    /// The driver ends the connection for a reason of its own (a failed
    /// read, a write timeout, a stop); a later event gives the same `End`.
    pub(crate) fn fail(&mut self, end: End) -> End {
        match &self.ended {
            Some(first) if first.abort || !end.abort => first.clone(),
            _ => {
                if end.abort {
                    self.transport.abort_connection();
                }
                self.ended = Some(end.clone());
                end
            }
        }
    }

    /// When [`Core::due`] must run if nothing else happens: the earliest
    /// timer, the idle timeout or the close deadline. `None` once ended.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.ended.is_some() {
            return None;
        }
        let idle = self.idle_timeout.map(|d| self.last_input + d);
        [
            idle,
            self.transport.next_timer_deadline(),
            self.control.close_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The socket is closed: `connection_lost(reason)`, exactly once, last.
    pub(crate) fn lost(&mut self, p: &mut dyn Protocol, reason: &Reason) {
        if self.lost {
            return;
        }
        self.lost = true;
        if self.ended.is_none() {
            self.ended = Some(End::clean(reason.clone()));
        }
        log::debug!("connection lost: {reason}");
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| p.connection_lost(reason))) {
            log::error!("connection_lost panicked ({})", panic_message(&*payload));
        }
    }

    /// Runs one callback, then applies the rules.
    fn event(
        &mut self,
        p: &mut dyn Protocol,
        what: &'static str,
        f: impl FnOnce(&mut dyn Protocol, &mut Transport),
    ) -> Result<(), End> {
        self.still_open()?;
        self.callback(p, what, f)?;
        self.settle()
    }

    /// Runs `f` (`what`, for the watchdog's log line) under
    /// `catch_unwind`; a panic aborts this connection.
    fn callback(
        &mut self,
        p: &mut dyn Protocol,
        what: &'static str,
        f: impl FnOnce(&mut dyn Protocol, &mut Transport),
    ) -> Result<(), End> {
        let started = self.slow_callback.map(|_| Instant::now());
        let transport = &mut self.transport;
        let ran = catch_unwind(AssertUnwindSafe(|| f(p, transport)));
        if let (Some(limit), Some(started)) = (self.slow_callback, started) {
            let took = started.elapsed();
            if took > limit {
                let info = self.transport.info();
                log::warn!(
                    "slow callback: {what} of {} session {} from {} ran {took:.1?} (--slow-callback {limit:?})",
                    p.log_prefix(),
                    info.session,
                    info.peer,
                );
            }
        }
        match ran {
            Ok(()) => Ok(()),
            Err(payload) => {
                let msg = panic_message(&*payload);
                log::error!("a callback panicked ({msg}); aborting this connection");
                self.end(End::abort(Reason::Panicked(msg)))
            }
        }
    }

    /// After every callback: a kill or a passed close deadline wins; the
    /// inbox is picked up once a handle exists; a close request ends.
    fn settle(&mut self) -> Result<(), End> {
        if self.control.killed() {
            return self.end(End::abort(Reason::Aborted));
        }
        if self.control.close_deadline().is_some()
            && let Err(end) = self.control.check(Instant::now())
        {
            return self.end(end);
        }
        self.pick_up_inbox();
        match self.transport.closing() {
            Closing::No => Ok(()),
            Closing::Lose => {
                let reason = self.transport.take_close_reason();
                self.end(End::clean(reason.unwrap_or(Reason::Done)))
            }
            Closing::Abort => {
                let reason = self.transport.take_close_reason();
                self.end(End::abort(reason.unwrap_or(Reason::Aborted)))
            }
        }
    }

    /// Takes the inbox once a handle exists (the core does after every
    /// callback; a driver whose handle was made outside one calls this).
    pub(crate) fn pick_up_inbox(&mut self) {
        if self.inbox.is_none() && self.transport.has_inbox() {
            self.inbox = self.transport.take_inbox();
        }
    }

    fn still_open(&self) -> Result<(), End> {
        match &self.ended {
            Some(end) => Err(end.clone()),
            None => Ok(()),
        }
    }

    fn end(&mut self, end: End) -> Result<(), End> {
        Err(self.fail(end))
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
