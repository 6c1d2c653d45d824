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

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::protocol::{Addr, Protocol, Reason};
use crate::transport::{Closing, Command, ConnInfo, Transport};

/// A protocol connected to an in-memory transport.
pub struct Harness<P: Protocol> {
    /// The protocol under test; inspect its state freely between calls.
    pub protocol: P,
    transport: Transport,
    inbox: Option<Receiver<Command>>,
    lost: Option<Reason>,
    now: Instant,
    written: Vec<u8>,
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
        Harness {
            protocol,
            transport: Transport::new(info, capacity),
            inbox: None,
            lost: None,
            now: Instant::now(),
            written: Vec::new(),
        }
    }

    /// Calls `connection_made`.
    pub fn connect(&mut self) {
        self.protocol.connection_made(&mut self.transport);
        self.after_callback();
    }

    /// Delivers `data` to the protocol, unless it already asked to close
    /// (an engine stops reading then). Returns whether it was delivered.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        if self.lost.is_some() || self.transport.is_disconnecting() {
            return false;
        }
        self.protocol.data_received(data, &mut self.transport);
        self.after_callback();
        true
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
            self.protocol.connection_lost(&reason);
            self.lost = Some(reason);
        }
    }

    /// Moves the harness clock forward and runs the timers now due, in
    /// order.
    pub fn advance(&mut self, by: Duration) {
        // The transport's clock moves too, so that timers armed after an
        // advance count from the moved clock, not from the real one.
        self.transport.skew_clock(by);
        self.now = self.now.max(self.transport.now());
        while self.lost.is_none() {
            let Some(f) = self.transport.pop_due_timer(self.now) else {
                break;
            };
            f(&mut self.protocol, &mut self.transport);
            self.after_callback();
        }
    }

    /// Runs every inbox command already queued. Returns how many ran.
    pub fn run_inbox(&mut self) -> usize {
        let mut ran = 0;
        while let Some(rx) = &self.inbox {
            match rx.try_recv() {
                Ok(command) => {
                    self.run_command(command);
                    ran += 1;
                }
                Err(_) => break,
            }
        }
        ran
    }

    /// Waits up to `timeout` for one inbox command (for work finishing on
    /// other threads) and runs it. Returns whether one ran.
    pub fn run_inbox_once(&mut self, timeout: Duration) -> bool {
        let Some(rx) = &self.inbox else {
            return false;
        };
        match rx.recv_timeout(timeout) {
            Ok(command) => {
                self.run_command(command);
                true
            }
            Err(_) => false,
        }
    }

    fn run_command(&mut self, command: Command) {
        if self.lost.is_some() {
            return;
        }
        if let Some(f) = self.transport.apply(command) {
            f(&mut self.protocol, &mut self.transport);
        }
        self.after_callback();
    }

    fn after_callback(&mut self) {
        if self.inbox.is_none() {
            self.inbox = self.transport.take_inbox();
        }
        let out = self.transport.take_output();
        self.written.extend_from_slice(&out);
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
        self.transport.closing()
    }

    /// Whether the protocol asked to close.
    pub fn is_closing(&self) -> bool {
        self.transport.is_disconnecting()
    }

    /// The reason given to `connection_lost`, once it ran.
    pub fn lost_reason(&self) -> Option<&Reason> {
        self.lost.as_ref()
    }

    /// The transport, for protocols that need to be poked directly.
    pub fn transport(&mut self) -> &mut Transport {
        &mut self.transport
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
