//! Driving a protocol in memory, the way Twisted's `StringTransport` tests
//! do: feed bytes, read what it wrote, see whether it closed.
//!
//! [`Harness`] plays the engine's part without sockets or threads. It keeps
//! the engine's promises: no data is delivered after the protocol asked to
//! close, inbox commands and timers run between callbacks, and
//! `connection_lost` runs once. [`outputs_for_every_chunking`] feeds one
//! input in every chunk size down to one byte and returns what came out
//! each time, so a test can insist they are all the same.
//!
//! ```
//! use spindle::protocols::echo::Echo;
//! use spindle::testing::{Harness, assert_same_for_every_chunking};
//!
//! let mut h = Harness::new(Echo);
//! h.connect();
//! h.feed(b"hello");
//! assert_eq!(h.take_output(), b"hello");
//!
//! let out = assert_same_for_every_chunking(|| Echo, b"one\r\ntwo\r\n");
//! assert_eq!(out.output, b"one\r\ntwo\r\n");
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::core::{Control, Core, End};
use crate::protocol::{Addr, Protocol, Reason};
use crate::transport::{Closing, ConnInfo, Transport};

/// A protocol connected to an in-memory transport.
///
/// The harness drives the engines' own connection core (`engine/core.rs`),
/// so a protocol meets exactly the engines' rules: once it asked to close,
/// no more data, inbox commands or timers reach it. One difference: a
/// panicking callback (which an engine turns into an abort with
/// `Reason::Panicked`) fails the test with the panic's message, so that
/// assertions inside callbacks and closures still count.
pub struct Harness<P: Protocol> {
    /// The protocol under test; inspect its state freely between calls.
    pub protocol: P,
    core: Core,
    lost: Option<Reason>,
    now: Instant,
    written: Vec<u8>,
    /// Bytes fed while input was paused: what the kernel would hold until
    /// the protocol resumes.
    unread: Vec<u8>,
}

/// The address harness connections claim to come from.
pub fn test_peer() -> Addr {
    Addr::Tcp("127.0.0.1:40000".parse().expect("valid literal address"))
}

/// The address harness connections claim to be connected to.
pub fn test_host() -> Addr {
    Addr::Tcp("127.0.0.1:1234".parse().expect("valid literal address"))
}

impl<P: Protocol> Harness<P> {
    /// A harness around `protocol`, not yet connected. Handles made by the
    /// protocol queue at most 1024 commands.
    pub fn new(protocol: P) -> Self {
        Self::with_inbox_capacity(protocol, 1024)
    }

    /// As [`Harness::new`], with a chosen inbox capacity.
    pub fn with_inbox_capacity(protocol: P, capacity: usize) -> Self {
        let info = ConnInfo {
            peer: test_peer(),
            host: test_host(),
            session: 0,
        };
        let now = Instant::now();
        let transport = Transport::new(info, capacity);
        Harness {
            protocol,
            core: Core::new(transport, Arc::new(Control::default()), None, now),
            lost: None,
            now,
            written: Vec::new(),
            unread: Vec::new(),
        }
    }

    /// Calls `connection_made`.
    pub fn connect(&mut self) {
        let verdict = self.core.made(&mut self.protocol);
        self.after_callback(verdict);
    }

    /// Delivers `data` to the protocol, unless it already asked to close
    /// (an engine stops reading then). While its input is paused the bytes
    /// wait, as in the kernel, and are delivered in order once it resumes.
    /// Returns whether they were taken (delivered or waiting).
    pub fn feed(&mut self, data: &[u8]) -> bool {
        if !self.open() {
            return false;
        }
        if !self.core.wants_input() || !self.unread.is_empty() {
            self.unread.extend_from_slice(data);
            self.deliver_unread();
            return true;
        }
        let verdict = self.core.received(&mut self.protocol, data, self.now);
        self.after_callback(verdict);
        true
    }

    /// Bytes fed while paused and not yet delivered.
    pub fn unread(&self) -> &[u8] {
        &self.unread
    }

    /// Whether the protocol's input is paused.
    pub fn is_paused(&self) -> bool {
        self.core.transport().is_producing_paused()
    }

    /// Delivers what waited while paused once input is wanted again (as an
    /// engine reads again after a resume).
    fn deliver_unread(&mut self) {
        if self.unread.is_empty() || !self.open() || !self.core.wants_input() {
            return;
        }
        let data = std::mem::take(&mut self.unread);
        let verdict = self.core.received(&mut self.protocol, &data, self.now);
        self.after_callback(verdict);
    }

    /// Feeds `data` in pieces of `chunk` bytes (the last may be shorter),
    /// stopping if the protocol closes.
    pub fn feed_chunked(&mut self, data: &[u8], chunk: usize) {
        for piece in data.chunks(chunk.max(1)) {
            if !self.feed(piece) {
                break;
            }
        }
    }

    /// Calls `connection_lost(reason)` once; later calls do nothing.
    pub fn disconnect(&mut self, reason: Reason) {
        if self.lost.is_none() {
            self.core.lost(&mut self.protocol, &reason);
            self.lost = Some(reason);
        }
    }

    /// Moves the harness clock forward and runs the timers now due, in
    /// order, unless the protocol asked to close.
    pub fn advance(&mut self, by: Duration) {
        // The transport's clock moves too, so that timers armed after an
        // advance count from the moved clock, and the harness clock never
        // lags the real one: `advance(d)` fires a timer of `d`.
        self.core.transport_mut().skew_clock(by);
        self.now = self.now.max(self.core.transport().now());
        while self.open() && self.core.timer_due(self.now) {
            let verdict = self.core.due(&mut self.protocol, self.now);
            self.after_callback(verdict);
        }
        self.deliver_unread();
    }

    /// Runs every inbox command already queued, unless the protocol asked
    /// to close (then none, and a batch stops at the close). Returns how
    /// many ran.
    pub fn run_inbox(&mut self) -> usize {
        self.core.pick_up_inbox();
        let mut ran = 0;
        while self.open() {
            let Some(command) = self.core.inbox().and_then(|rx| rx.try_recv().ok()) else {
                break;
            };
            let verdict = self.core.commands(&mut self.protocol, Some(command), 1);
            self.after_callback(verdict);
            self.deliver_unread();
            ran += 1;
        }
        ran
    }

    /// Waits up to `timeout` for one inbox command (for work finishing on
    /// other threads) and runs it. Returns whether one ran.
    pub fn run_inbox_once(&mut self, timeout: Duration) -> bool {
        self.core.pick_up_inbox();
        if !self.open() {
            return false;
        }
        let Some(command) = self
            .core
            .inbox()
            .and_then(|rx| rx.recv_timeout(timeout).ok())
        else {
            return false;
        };
        let verdict = self.core.commands(&mut self.protocol, Some(command), 1);
        self.after_callback(verdict);
        self.deliver_unread();
        true
    }

    /// Neither closed by the protocol nor disconnected.
    fn open(&self) -> bool {
        self.lost.is_none() && self.core.ended().is_none()
    }

    fn after_callback(&mut self, verdict: Result<(), End>) {
        if let Err(End {
            reason: Reason::Panicked(msg),
            ..
        }) = &verdict
        {
            panic!("a callback of the protocol under test panicked: {msg}");
        }
        self.core.pick_up_inbox();
        let out = self.core.output();
        self.written.extend_from_slice(out);
        out.clear();
    }

    /// Everything written since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.written)
    }

    /// Everything written since the last `take_output`, as text.
    pub fn take_text(&mut self) -> String {
        String::from_utf8_lossy(&self.take_output()).into_owned()
    }

    /// How the protocol asked to close, if it did.
    pub fn closing(&self) -> Closing {
        self.core.transport().closing()
    }

    /// Whether the protocol asked to close.
    pub fn is_closing(&self) -> bool {
        self.core.transport().is_disconnecting()
    }

    /// The reason given to `connection_lost`, once it ran.
    pub fn lost_reason(&self) -> Option<&Reason> {
        self.lost.as_ref()
    }

    /// The transport, for protocols that need to be poked directly.
    pub fn transport(&mut self) -> &mut Transport {
        self.core.transport_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;

    struct Quiet;

    impl Protocol for Quiet {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    }

    #[test]
    fn advance_fires_a_timer_of_exactly_that_delay() {
        let mut h = Harness::new(Quiet);
        h.connect();
        h.transport().call_later(
            Duration::from_millis(30),
            |_: &mut Quiet, t: &mut Transport| t.write(b"due"),
        );
        h.advance(Duration::from_millis(30));
        assert_eq!(h.take_output(), b"due");
    }

    /// The engines stop a connection's timers and inbox once it asked to
    /// close; the harness used to keep running them.
    #[test]
    fn nothing_runs_after_lose_connection() {
        let mut h = Harness::new(Quiet);
        h.connect();
        let handle = h.transport().handle();
        h.transport().call_later(
            Duration::from_millis(10),
            |_: &mut Quiet, t: &mut Transport| t.write(b"timer"),
        );
        handle.write("before").unwrap();
        handle.lose_connection().unwrap();
        handle.write("after").unwrap();
        handle
            .call(|_: &mut Quiet, t: &mut Transport| t.write(b"closure"))
            .unwrap();
        assert_eq!(h.run_inbox(), 2, "the write and the close; the rest never");
        assert_eq!(h.take_output(), b"before");
        assert!(h.is_closing());
        h.advance(Duration::from_millis(20));
        assert_eq!(h.run_inbox(), 0);
        assert!(!h.run_inbox_once(Duration::ZERO));
        assert!(!h.feed(b"more"));
        assert_eq!(h.take_output(), b"", "no timer, no closure, no data");
    }

    #[test]
    #[should_panic(expected = "a callback of the protocol under test panicked: boom")]
    fn a_panicking_callback_fails_the_test() {
        struct Boom;
        impl Protocol for Boom {
            fn data_received(&mut self, _: &[u8], _: &mut Transport) {
                panic!("boom");
            }
        }
        let mut h = Harness::new(Boom);
        h.connect();
        h.feed(b"x");
    }

    #[test]
    fn lost_reason_is_the_reason_given_once() {
        let mut h = Harness::new(Quiet);
        h.connect();
        assert_eq!(h.lost_reason(), None);
        h.disconnect(Reason::TimedOut("idle"));
        h.disconnect(Reason::Done);
        assert_eq!(h.lost_reason(), Some(&Reason::TimedOut("idle")));
    }

    #[test]
    fn a_handle_taken_outside_a_callback_is_served() {
        let mut h = Harness::new(Quiet);
        let handle = h.transport().handle();
        handle.write("from afar").unwrap();
        assert_eq!(h.run_inbox(), 1);
        assert_eq!(h.take_output(), b"from afar");
    }
}

/// What a protocol did with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Every byte it wrote.
    pub output: Vec<u8>,
    /// How it asked to close, if it did.
    pub closing: Closing,
}

/// Connects a fresh protocol, feeds it `input` in chunks of `chunk` bytes
/// and reports what it wrote and whether it closed.
pub fn outcome_for_chunking<P: Protocol>(
    make: impl Fn() -> P,
    input: &[u8],
    chunk: usize,
) -> Outcome {
    let mut h = Harness::new(make());
    h.connect();
    h.feed_chunked(input, chunk);
    h.run_inbox();
    Outcome {
        output: h.take_output(),
        closing: h.closing(),
    }
}

/// The outcome of feeding `input` in every chunk size from 1 byte to the
/// whole input at once, paired with the chunk size.
pub fn outputs_for_every_chunking<P: Protocol>(
    make: impl Fn() -> P,
    input: &[u8],
) -> Vec<(usize, Outcome)> {
    (1..=input.len().max(1))
        .map(|chunk| (chunk, outcome_for_chunking(&make, input, chunk)))
        .collect()
}

/// Feeds `input` in every chunking and panics, naming the chunk size, if
/// any outcome differs from the one-shot feed. Returns that outcome.
pub fn assert_same_for_every_chunking<P: Protocol>(make: impl Fn() -> P, input: &[u8]) -> Outcome {
    let whole = outcome_for_chunking(&make, input, input.len().max(1));
    for (chunk, outcome) in outputs_for_every_chunking(&make, input) {
        assert_eq!(
            outcome,
            whole,
            "feeding {:?} in {chunk}-byte chunks changed the outcome",
            String::from_utf8_lossy(input)
        );
    }
    whole
}
