//! The `echo` workload: send `--size` bytes, wait for all of them to come
//! back identical, repeat.

use std::time::Instant;

use super::client::{Client, Sink};
use super::errors::{ErrorKind, Fault};

/// The default message size, in bytes.
pub const DEFAULT_SIZE: usize = 64;

/// One echo connection.
pub struct EchoClient {
    size: usize,
    seq: u64,
    /// Bytes of the outstanding message already echoed.
    matched: usize,
    expected: Vec<u8>,
}

impl EchoClient {
    /// A client sending `size`-byte messages.
    pub fn new(size: usize) -> Self {
        EchoClient {
            size: size.max(1),
            seq: 0,
            matched: 0,
            expected: Vec::new(),
        }
    }
}

/// The message for `seq`: printable, different from one request to the
/// next, so that a stale or misplaced echo is caught.
fn fill(buf: &mut Vec<u8>, size: usize, seq: u64) {
    buf.clear();
    let salt = (seq % 26) as u8;
    buf.extend((0..size).map(|i| b'a' + ((i as u8 % 26 + salt) % 26)));
    if size > 1 {
        buf[size - 1] = b'\n';
    }
}

impl Client for EchoClient {
    fn sends(&self) -> bool {
        true
    }

    fn request(&mut self, out: &mut Vec<u8>, _now: Instant) {
        fill(&mut self.expected, self.size, self.seq);
        self.seq += 1;
        self.matched = 0;
        out.extend_from_slice(&self.expected);
    }

    fn received(&mut self, data: &[u8], _now: Instant, sink: &mut Sink) -> Result<(), Fault> {
        let want = &self.expected[self.matched.min(self.expected.len())..];
        if data.len() > want.len() {
            return Err(Fault::new(
                ErrorKind::Protocol,
                format!(
                    "echo: {} bytes more than were sent",
                    data.len() - want.len()
                ),
            ));
        }
        if let Some(at) = data.iter().zip(want).position(|(a, b)| a != b) {
            return Err(Fault::new(
                ErrorKind::Protocol,
                format!("echo differs at byte {}", self.matched + at),
            ));
        }
        self.matched += data.len();
        if self.matched == self.expected.len() && !self.expected.is_empty() {
            sink.completed += 1;
            self.expected.clear();
            self.matched = 0;
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.expected.clear();
        self.matched = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_in_any_chunking_completes_once() {
        let now = Instant::now();
        for chunk in 1..=10 {
            let mut c = EchoClient::new(10);
            let mut out = Vec::new();
            c.request(&mut out, now);
            assert_eq!(out.len(), 10);
            let mut sink = Sink::default();
            for piece in out.chunks(chunk) {
                c.received(piece, now, &mut sink).unwrap();
            }
            assert_eq!(sink.completed, 1, "chunk {chunk}");
        }
    }

    #[test]
    fn a_wrong_or_extra_byte_is_a_protocol_error() {
        let now = Instant::now();
        let mut c = EchoClient::new(4);
        let mut out = Vec::new();
        c.request(&mut out, now);
        let mut sink = Sink::default();
        let mut bad = out.clone();
        bad[2] ^= 1;
        assert_eq!(
            c.received(&bad, now, &mut sink).unwrap_err().kind,
            ErrorKind::Protocol
        );
        c.reset();
        out.clear();
        c.request(&mut out, now);
        out.push(b'x');
        assert_eq!(
            c.received(&out, now, &mut sink).unwrap_err().kind,
            ErrorKind::Protocol
        );
        // Bytes while nothing is outstanding are extra too.
        assert!(c.received(b"z", now, &mut sink).is_err());
    }

    #[test]
    fn messages_differ_between_requests() {
        let now = Instant::now();
        let mut c = EchoClient::new(8);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        c.request(&mut a, now);
        c.received(&a, now, &mut Sink::default()).unwrap();
        c.request(&mut b, now);
        assert_ne!(a, b);
    }
}
