//! The silent connections of the `idle` workload: they send nothing and
//! take whatever the server says (a greeting, a busy message) without
//! complaint; only how the connection ends is counted.

use std::time::Instant;

use super::client::{Client, Sink};
use super::errors::Fault;

/// A connection that only holds its place.
#[derive(Debug, Default)]
pub struct SilentClient;

impl Client for SilentClient {
    fn sends(&self) -> bool {
        false
    }

    fn request(&mut self, _out: &mut Vec<u8>, _now: Instant) {}

    fn received(&mut self, _data: &[u8], _now: Instant, _sink: &mut Sink) -> Result<(), Fault> {
        Ok(())
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_anything_and_sends_nothing() {
        let mut c = SilentClient;
        let mut out = Vec::new();
        c.request(&mut out, Instant::now());
        assert!(out.is_empty() && !c.sends());
        let mut sink = Sink::default();
        c.received(
            b"HTTP/1.1 503 Busy\r\n\r\nwelcome!",
            Instant::now(),
            &mut sink,
        )
        .unwrap();
        assert_eq!(sink.completed, 0);
    }
}
