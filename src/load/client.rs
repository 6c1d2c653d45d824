//! What a workload does on one connection: a sans-IO state machine that
//! writes requests and reads responses, driven by the event loop
//! (`driver.rs`), which owns the socket, the clock and the statistics.

use std::time::Instant;

use super::errors::Fault;

/// What one call to [`Client::received`] found.
#[derive(Debug, Default)]
pub struct Sink {
    /// Requests of this connection whose response is now complete.
    pub completed: u32,
    /// Completed responses that were nonetheless errors (an HTTP 503).
    pub soft_faults: Vec<Fault>,
    /// Chat: the send times of marked lines delivered to this connection.
    pub delivered_sent_at: Vec<Instant>,
}

impl Sink {
    /// Empties it for the next call, keeping its allocations.
    pub fn clear(&mut self) {
        self.completed = 0;
        self.soft_faults.clear();
        self.delivered_sent_at.clear();
    }
}

/// One connection's workload.
pub trait Client: Send {
    /// Whether this connection sends requests (idle connections and chat
    /// listeners do not).
    fn sends(&self) -> bool;

    /// Appends the next request to `out`. Called only when no request of
    /// this connection is outstanding.
    fn request(&mut self, out: &mut Vec<u8>, now: Instant);

    /// Bytes from the server. Fills `sink`; an `Err` closes the connection.
    fn received(&mut self, data: &[u8], now: Instant, sink: &mut Sink) -> Result<(), Fault>;

    /// The server closed its side. Returns what completed with the close
    /// (an HTTP body delimited by the close), or a fault if a response was
    /// cut short. The default: nothing completes.
    fn closed(&mut self, _sink: &mut Sink) -> Result<(), Fault> {
        Ok(())
    }

    /// Whether the connection is closed after each response (HTTP without
    /// keep-alive), to be reopened for the next request.
    fn one_request_per_connection(&self) -> bool {
        false
    }

    /// Forgets any partial response: the connection was replaced.
    fn reset(&mut self);
}
