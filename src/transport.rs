//! [`Transport`]: what a protocol sees of its connection, and
//! [`ConnHandle`]: how other threads reach it.
//!
//! A transport is a plain in-memory object. Writes are appended to an
//! output buffer that the engine sends when the callback returns, in one
//! `write` call where the socket allows: a protocol that answers a request
//! with three `write`s still puts one segment on the wire. Closing is a
//! request, carried out by the engine after the callback.
//!
//! The first call to [`Transport::handle`] gives the connection an inbox: a
//! bounded channel through which any thread can write to the connection,
//! close it, or run a closure on its owner. Everything that arrives there
//! runs on the owner, one at a time, between the other callbacks — so a
//! protocol never needs a lock for its own state.
//!
//! # Flow control
//!
//! [`Transport::pause_producing`] and [`Transport::resume_producing`] are
//! Twisted's `IPushProducer` for the connection's input: while paused, the
//! engine does not read the socket, so the kernel's buffers fill and TCP
//! pushes back on the peer; timers and inbox commands still run. Another
//! thread does the same through [`ConnHandle::pause_producing`] and
//! [`ConnHandle::resume_producing`] (inbox commands, run in their place
//! among the others). A resume that comes through the inbox calls
//! [`Protocol::producing_resumed`], so that a protocol which held back the
//! rest of a read (the line framer does) can go on with it.

use std::any::{Any, type_name};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use crate::protocol::{Addr, Protocol, Reason};

/// A closure run on a connection's owner with its protocol and transport.
pub(crate) type OwnerFn = Box<dyn FnOnce(&mut dyn Protocol, &mut Transport) + Send>;

/// A timer's closure. `Send`, like everything a [`Transport`] holds, so a
/// connection (its protocol, transport and core) may move between threads
/// between two callbacks.
pub(crate) type TimerFn = Box<dyn FnOnce(&mut dyn Protocol, &mut Transport) + Send>;

/// A message in a connection's inbox.
pub(crate) enum Command {
    /// Bytes to send.
    Write(Vec<u8>),
    /// Bytes to send, shared with other connections' inboxes (one
    /// broadcast line, allocated once for every member).
    WriteShared(Arc<[u8]>),
    /// Flush, then close.
    Lose,
    /// Close now, dropping unsent bytes.
    Abort,
    /// Run a closure on the owner.
    Call(OwnerFn),
    /// Stop reading the socket ([`ConnHandle::pause_producing`]).
    Pause,
    /// Read the socket again ([`ConnHandle::resume_producing`]).
    Resume,
}

/// What the engine lets a [`ConnHandle`] do besides queueing a command.
pub(crate) trait OwnerLink: Send + Sync {
    /// A command was queued: wake the owner if it is not waiting on the
    /// channel itself (the event-loop engine needs this; threads do not).
    fn wake(&self);
    /// Tear the connection down now, even though its inbox is full.
    fn kill(&self);
    /// Abort the connection at `deadline` if it is still open then, even
    /// though its inbox is full or its owner is blocked writing (see
    /// [`ConnHandle::close_within`]).
    fn close_by(&self, deadline: Instant);
}

/// The deadline [`ConnHandle::close_within`] sets, shared by the threads
/// that set it and the owner that keeps it. Reading it when it was never
/// set costs one atomic load, so owners may check it after every callback.
#[derive(Debug, Default)]
pub(crate) struct CloseDeadline {
    set: AtomicBool,
    at: Mutex<Option<Instant>>,
}

impl CloseDeadline {
    /// Sets the deadline, or moves it earlier. Returns whether it changed.
    pub(crate) fn set(&self, deadline: Instant) -> bool {
        let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        if at.is_some_and(|old| old <= deadline) {
            return false;
        }
        *at = Some(deadline);
        self.set.store(true, Ordering::SeqCst);
        true
    }

    /// The deadline, if one was set.
    pub(crate) fn get(&self) -> Option<Instant> {
        if !self.set.load(Ordering::SeqCst) {
            return None;
        }
        *self.at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the deadline was set and `now` is past it.
    pub(crate) fn passed(&self, now: Instant) -> bool {
        self.get().is_some_and(|d| now >= d)
    }
}

/// How the engine answers [`Transport::queued_connections`].
pub(crate) trait EngineHints: Send + Sync {
    /// Accepted connections waiting for a worker.
    fn queued_connections(&self) -> usize;
}

/// Facts about a connection that do not change during its life.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The remote side.
    pub peer: Addr,
    /// Our side (the listening address for server connections).
    pub host: Addr,
    /// Connections accepted on the same listening port before this one,
    /// counted from 0 (Twisted's `sessionno`).
    pub session: u64,
}

/// Whether the protocol asked to close, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Still open.
    No,
    /// `lose_connection`: send what was written, then close.
    Lose,
    /// `abort_connection`: close now, drop what was not sent.
    Abort,
}

/// Identifies a timer made by [`Transport::call_later`], for cancelling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(u64);

/// The inbox's two ends; the receiver is taken by the engine.
struct Inbox {
    tx: Sender<Command>,
    rx: Option<Receiver<Command>>,
}

/// A connection as its protocol sees it. See the [module docs](self).
pub struct Transport {
    out: Vec<u8>,
    closing: Closing,
    info: ConnInfo,
    inbox: Option<Inbox>,
    inbox_capacity: usize,
    link: Option<Arc<dyn OwnerLink>>,
    hints: Option<Arc<dyn EngineHints>>,
    timers: BTreeMap<(Instant, TimerId), TimerFn>,
    timer_deadlines: BTreeMap<TimerId, Instant>,
    next_timer: u64,
    /// What `connection_lost` is told when the close asked for here
    /// happens, if not the usual `Done` / `Aborted`.
    close_reason: Option<Reason>,
    /// How far the test harness has moved this connection's clock ahead.
    clock_skew: Duration,
    /// Input is paused (see the module's "Flow control").
    paused: bool,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.info.peer)
            .field("session", &self.info.session)
            .field("pending_output", &self.out.len())
            .field("closing", &self.closing)
            .field("timers", &self.timers.len())
            .field("paused", &self.paused)
            .finish()
    }
}

impl Transport {
    /// A transport for a connection described by `info`. Handles made from
    /// it queue at most `inbox_capacity` commands.
    pub fn new(info: ConnInfo, inbox_capacity: usize) -> Self {
        Transport {
            out: Vec::new(),
            closing: Closing::No,
            info,
            inbox: None,
            inbox_capacity: inbox_capacity.max(1),
            link: None,
            hints: None,
            timers: BTreeMap::new(),
            timer_deadlines: BTreeMap::new(),
            next_timer: 0,
            close_reason: None,
            clock_skew: Duration::ZERO,
            paused: false,
        }
    }

    pub(crate) fn set_link(&mut self, link: Arc<dyn OwnerLink>) {
        self.link = Some(link);
    }

    pub(crate) fn set_hints(&mut self, hints: Arc<dyn EngineHints>) {
        self.hints = Some(hints);
    }

    /// Queues `data` to be sent. Ignored after `abort_connection`.
    pub fn write(&mut self, data: &[u8]) {
        if self.closing != Closing::Abort {
            self.out.extend_from_slice(data);
        }
    }

    /// Queues several pieces, sent together (Twisted's `writeSequence`).
    pub fn write_sequence(&mut self, parts: &[&[u8]]) {
        if self.closing != Closing::Abort {
            for part in parts {
                self.out.extend_from_slice(part);
            }
        }
    }

    /// Sends what was written, then closes (a FIN). No more data will be
    /// delivered to the protocol.
    pub fn lose_connection(&mut self) {
        if self.closing == Closing::No {
            self.closing = Closing::Lose;
        }
    }

    /// Closes now (an RST) and drops everything not yet sent.
    pub fn abort_connection(&mut self) {
        self.closing = Closing::Abort;
        self.out.clear();
    }

    /// As [`Transport::lose_connection`], and `connection_lost` will be
    /// told `reason` rather than "closed cleanly": for a close that a
    /// limit or a failure forced (Twisted's #4880).
    pub fn lose_connection_because(&mut self, reason: Reason) {
        if self.closing == Closing::No {
            self.closing = Closing::Lose;
            self.close_reason = Some(reason);
        }
    }

    /// As [`Transport::abort_connection`], and `connection_lost` will be
    /// told `reason` rather than "aborted".
    pub fn abort_connection_because(&mut self, reason: Reason) {
        self.abort_connection();
        self.close_reason = Some(reason);
    }

    /// The reason given with the close request, taken once (the core's).
    pub(crate) fn take_close_reason(&mut self) -> Option<Reason> {
        self.close_reason.take()
    }

    /// Stops reading the connection's input until
    /// [`Transport::resume_producing`] (Twisted's `pauseProducing`). The
    /// engine reads nothing more once this callback returns, so the peer's
    /// writes block when the kernel's buffers are full; timers and inbox
    /// commands still run. A framer checks [`Transport::is_producing_paused`]
    /// between messages and keeps the rest of the current read for later.
    pub fn pause_producing(&mut self) {
        self.paused = true;
    }

    /// Reads the connection's input again (Twisted's `resumeProducing`).
    pub fn resume_producing(&mut self) {
        self.paused = false;
    }

    /// Whether input is paused.
    pub fn is_producing_paused(&self) -> bool {
        self.paused
    }

    /// Whether the protocol asked to close. A framer checks this between
    /// messages so that nothing after a `quit` is processed.
    pub fn is_disconnecting(&self) -> bool {
        self.closing != Closing::No
    }

    /// How the protocol asked to close, if it did.
    pub fn closing(&self) -> Closing {
        self.closing
    }

    /// The remote address.
    pub fn peer(&self) -> &Addr {
        &self.info.peer
    }

    /// Our address: the listening address for server connections.
    pub fn host(&self) -> &Addr {
        &self.info.host
    }

    /// This connection's session number on its listening port.
    pub fn session(&self) -> u64 {
        self.info.session
    }

    /// All the fixed facts about the connection.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// Connections accepted but waiting for a worker, as the engine sees
    /// it now (0 on engines that never make connections wait). A protocol
    /// holding an idle keep-alive connection may give its worker up when
    /// this is non-zero.
    pub fn queued_connections(&self) -> usize {
        self.hints.as_ref().map_or(0, |h| h.queued_connections())
    }

    /// A `Send + Clone` handle through which other threads reach this
    /// connection. The first call gives the connection its inbox (on the
    /// thread engines, a reader thread starts feeding the owner).
    pub fn handle(&mut self) -> ConnHandle {
        let capacity = self.inbox_capacity;
        let inbox = self.inbox.get_or_insert_with(|| {
            let (tx, rx) = crossbeam_channel::bounded(capacity);
            Inbox { tx, rx: Some(rx) }
        });
        ConnHandle {
            tx: inbox.tx.clone(),
            link: self.link.clone(),
            peer: Arc::new(self.info.peer.clone()),
        }
    }

    /// How many commands handles made from this transport may queue (the
    /// server's `--outbound-queue`).
    pub fn inbox_capacity(&self) -> usize {
        self.inbox_capacity
    }

    /// Whether [`Transport::handle`] was ever called.
    pub fn has_inbox(&self) -> bool {
        self.inbox.is_some()
    }

    /// The inbox's receiving end, once, for the engine that drives it.
    pub(crate) fn take_inbox(&mut self) -> Option<Receiver<Command>> {
        self.inbox.as_mut().and_then(|i| i.rx.take())
    }

    /// Runs `f` on this connection's owner after `delay`, unless cancelled.
    ///
    /// `P` is the concrete protocol type the factory built; if it does not
    /// match, the timer is logged as misdirected and dropped.
    pub fn call_later<P, F>(&mut self, delay: Duration, f: F) -> TimerId
    where
        P: Protocol,
        F: FnOnce(&mut P, &mut Transport) + Send + 'static,
    {
        let id = TimerId(self.next_timer);
        self.next_timer += 1;
        let deadline = self.now() + delay;
        let boxed: TimerFn = Box::new(move |p: &mut dyn Protocol, t: &mut Transport| {
            match (p as &mut dyn Any).downcast_mut::<P>() {
                Some(p) => f(p, t),
                None => log::error!("timer for a {} fired on another protocol", type_name::<P>()),
            }
        });
        self.timers.insert((deadline, id), boxed);
        self.timer_deadlines.insert(id, deadline);
        id
    }

    /// The connection's clock, the one [`Transport::call_later`] counts
    /// from: `Instant::now()` under an engine, moved ahead by
    /// [`Harness::advance`](crate::testing::Harness::advance) in tests. A
    /// protocol that keeps deadlines of its own should read time here.
    pub fn now(&self) -> Instant {
        Instant::now() + self.clock_skew
    }

    /// Moves the connection's clock ahead (the test harness's `advance`).
    pub(crate) fn skew_clock(&mut self, by: Duration) {
        self.clock_skew += by;
    }

    /// Cancels a timer; `false` if it already ran or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        match self.timer_deadlines.remove(&id) {
            Some(deadline) => self.timers.remove(&(deadline, id)).is_some(),
            None => false,
        }
    }

    /// When the earliest pending timer is due.
    pub fn next_timer_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns the earliest timer due at `now`, if any. Timers
    /// due at the same instant come out in the order they were made.
    pub(crate) fn pop_due_timer(&mut self, now: Instant) -> Option<TimerFn> {
        let key = *self.timers.keys().next()?;
        if key.0 > now {
            return None;
        }
        self.timer_deadlines.remove(&key.1);
        self.timers.remove(&key)
    }

    /// Bytes written but not yet sent.
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// Takes the bytes written so far, leaving the buffer empty.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The output buffer itself, for engines that send part of it.
    pub(crate) fn output_mut(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Carries out one inbox command that is not a closure. Returns the
    /// closure for the engine to run with the protocol.
    pub(crate) fn apply(&mut self, command: Command) -> Option<OwnerFn> {
        match command {
            Command::Write(data) => self.write(&data),
            Command::WriteShared(data) => self.write(&data),
            Command::Lose => self.lose_connection(),
            Command::Abort => self.abort_connection(),
            Command::Call(f) => return Some(f),
            Command::Pause => self.pause_producing(),
            Command::Resume if self.paused => {
                self.resume_producing();
                return Some(Box::new(|p, t| p.producing_resumed(t)));
            }
            Command::Resume => {}
        }
        None
    }
}

/// Why a [`ConnHandle`] could not queue a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandleError {
    /// The connection's inbox is full: its owner is behind (a slow
    /// consumer). Nothing was queued.
    Full,
    /// The connection is gone.
    Closed,
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::Full => write!(f, "the connection's outbound queue is full"),
            HandleError::Closed => write!(f, "the connection is closed"),
        }
    }
}

impl std::error::Error for HandleError {}

/// Reaches a connection from any thread: write to it, close it, or run a
/// closure on its owner. Cheap to clone. Every method but
/// [`ConnHandle::call_timeout`] returns at once: a full inbox is reported,
/// never waited on. `call_timeout` is the one a sender uses when it would
/// rather wait, bounded, than lose a result (engine contract, promise 4).
#[derive(Clone)]
pub struct ConnHandle {
    tx: Sender<Command>,
    link: Option<Arc<dyn OwnerLink>>,
    peer: Arc<Addr>,
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("peer", &self.peer)
            .field("queued", &self.tx.len())
            .finish()
    }
}

impl ConnHandle {
    fn send(&self, command: Command) -> Result<(), HandleError> {
        match self.tx.try_send(command) {
            Ok(()) => {
                if let Some(link) = &self.link {
                    link.wake();
                }
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(HandleError::Full),
            Err(TrySendError::Disconnected(_)) => Err(HandleError::Closed),
        }
    }

    /// Queues bytes to send.
    pub fn write(&self, data: impl Into<Vec<u8>>) -> Result<(), HandleError> {
        self.send(Command::Write(data.into()))
    }

    /// Queues bytes to send that other connections are sent too (a
    /// broadcast): one allocation for every inbox they are queued in,
    /// instead of a copy each.
    pub fn write_shared(&self, data: Arc<[u8]>) -> Result<(), HandleError> {
        self.send(Command::WriteShared(data))
    }

    /// Asks the owner to flush and close.
    pub fn lose_connection(&self) -> Result<(), HandleError> {
        self.send(Command::Lose)
    }

    /// Closes the connection now, dropping what is queued. This always
    /// takes effect: if the inbox is full, the engine tears the socket
    /// down directly.
    pub fn abort_connection(&self) {
        if self.send(Command::Abort) == Err(HandleError::Full)
            && let Some(link) = &self.link
        {
            link.kill();
        }
    }

    /// Asks the owner to stop reading this connection's input (see
    /// [`Transport::pause_producing`]). It takes effect when the owner
    /// reaches it, after the commands queued before it.
    pub fn pause_producing(&self) -> Result<(), HandleError> {
        self.send(Command::Pause)
    }

    /// Asks the owner to read this connection's input again (see
    /// [`Transport::resume_producing`]); the protocol's
    /// [`Protocol::producing_resumed`] runs if it was paused.
    pub fn resume_producing(&self) -> Result<(), HandleError> {
        self.send(Command::Resume)
    }

    /// Makes sure the connection ends within `grace`. Nothing changes
    /// before then: the owner goes on running what is queued (so a
    /// `lose_connection` already in the inbox still sends everything
    /// before it), but if the connection is still open when `grace` is up
    /// (its peer does not read, so the owner is stuck writing), the engine
    /// aborts it. This does not go through the inbox: it works when the
    /// inbox is full and reaches an owner blocked in a write, so a dropped
    /// slow consumer stops holding a worker long before `--write-timeout`.
    /// A later call can only make the deadline earlier.
    pub fn close_within(&self, grace: Duration) {
        if let Some(link) = &self.link {
            link.close_by(Instant::now() + grace);
            // An owner idle on its inbox learns of the deadline from this
            // no-op; one with a full inbox is busy and looks anyway.
            let _ = self.send(Command::Call(Box::new(|_, _| {})));
        }
    }

    /// Runs `f` on the connection's owner, between its other callbacks.
    ///
    /// `P` is the concrete type the factory built for this connection; a
    /// mismatch is logged and the closure dropped.
    pub fn call<P, F>(&self, f: F) -> Result<(), HandleError>
    where
        P: Protocol,
        F: FnOnce(&mut P, &mut Transport) + Send + 'static,
    {
        self.send(call_command::<P, F>(f))
    }

    /// As [`ConnHandle::call`], but a full inbox is waited on for up to
    /// `timeout` instead of failing at once: for results that must not be
    /// lost to a momentary burst (a deferred result, a child's output).
    /// Still [`HandleError::Full`] if the owner stays behind that long.
    /// Never call it from the connection's own owner with a long timeout:
    /// the owner is the one that would make room.
    pub fn call_timeout<P, F>(&self, timeout: Duration, f: F) -> Result<(), HandleError>
    where
        P: Protocol,
        F: FnOnce(&mut P, &mut Transport) + Send + 'static,
    {
        match self.tx.send_timeout(call_command::<P, F>(f), timeout) {
            Ok(()) => {
                if let Some(link) = &self.link {
                    link.wake();
                }
                Ok(())
            }
            Err(SendTimeoutError::Timeout(_)) => Err(HandleError::Full),
            Err(SendTimeoutError::Disconnected(_)) => Err(HandleError::Closed),
        }
    }

    /// Commands queued and not yet run.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// The inbox's capacity.
    pub fn capacity(&self) -> usize {
        self.tx.capacity().unwrap_or(usize::MAX)
    }

    /// The connection's remote address.
    pub fn peer(&self) -> &Addr {
        &self.peer
    }
}

/// Wraps a closure for protocol type `P` as an inbox command; a protocol
/// of another type is logged and the closure dropped.
fn call_command<P, F>(f: F) -> Command
where
    P: Protocol,
    F: FnOnce(&mut P, &mut Transport) + Send + 'static,
{
    Command::Call(Box::new(
        move |p: &mut dyn Protocol, t: &mut Transport| match (p as &mut dyn Any).downcast_mut::<P>()
        {
            Some(p) => f(p, t),
            None => log::error!(
                "closure for a {} sent to a connection running another protocol",
                type_name::<P>()
            ),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ConnInfo {
        let a = Addr::Tcp("127.0.0.1:1".parse().unwrap());
        ConnInfo {
            peer: a.clone(),
            host: a,
            session: 0,
        }
    }

    #[test]
    fn abort_drops_output_and_later_writes() {
        let mut t = Transport::new(info(), 4);
        t.write(b"a");
        t.abort_connection();
        t.write(b"b");
        assert!(t.pending_output().is_empty());
        assert_eq!(t.closing(), Closing::Abort);
    }

    #[test]
    fn lose_keeps_output() {
        let mut t = Transport::new(info(), 4);
        t.write_sequence(&[b"a", b"b"]);
        t.lose_connection();
        t.write(b"c");
        assert_eq!(t.pending_output(), b"abc");
        assert!(t.is_disconnecting());
    }

    #[test]
    fn full_inbox_is_reported_not_waited_on() {
        let mut t = Transport::new(info(), 2);
        let h = t.handle();
        assert_eq!(h.write("1"), Ok(()));
        assert_eq!(h.write("2"), Ok(()));
        assert_eq!(h.write("3"), Err(HandleError::Full));
        drop(t);
        assert_eq!(h.write("4"), Err(HandleError::Closed));
    }

    #[test]
    fn call_timeout_waits_for_room_then_reports_full_or_closed() {
        struct P;
        impl Protocol for P {
            fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
        }
        let mut t = Transport::new(info(), 1);
        let h = t.handle();
        let rx = t.take_inbox().unwrap();
        assert_eq!(
            h.call_timeout(Duration::from_millis(10), |_: &mut P, _| {}),
            Ok(())
        );
        assert_eq!(
            h.call_timeout(Duration::from_millis(10), |_: &mut P, _| {}),
            Err(HandleError::Full)
        );
        // Room made while the sender waits: the command gets in.
        let sender = {
            let h = h.clone();
            std::thread::spawn(move || {
                h.call_timeout(Duration::from_secs(10), |_: &mut P, t| t.write(b"late"))
            })
        };
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(first, Command::Call(_)));
        assert_eq!(sender.join().unwrap(), Ok(()));
        let mut p = P;
        if let Some(f) = t.apply(rx.recv_timeout(Duration::from_secs(10)).unwrap()) {
            f(&mut p, &mut t);
        }
        assert_eq!(t.take_output(), b"late");
        drop(rx);
        drop(t);
        assert_eq!(
            h.call_timeout(Duration::from_millis(10), |_: &mut P, _| {}),
            Err(HandleError::Closed)
        );
    }

    #[test]
    fn timers_pop_in_deadline_then_creation_order_and_cancel() {
        struct P;
        impl Protocol for P {
            fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
        }
        let mut t = Transport::new(info(), 2);
        let a = t.call_later(Duration::from_millis(5), |_: &mut P, t| t.write(b"a"));
        let _b = t.call_later(Duration::ZERO, |_: &mut P, t| t.write(b"b"));
        let c = t.call_later(Duration::from_secs(60), |_: &mut P, t| t.write(b"c"));
        assert!(t.cancel_timer(c));
        assert!(!t.cancel_timer(c));
        let later = Instant::now() + Duration::from_secs(1);
        let mut p = P;
        while let Some(f) = t.pop_due_timer(later) {
            f(&mut p, &mut t);
        }
        assert_eq!(t.take_output(), b"ba");
        assert!(!t.cancel_timer(a));
        assert_eq!(t.next_timer_deadline(), None);
    }
}
