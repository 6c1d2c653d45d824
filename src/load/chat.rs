//! The `chat` workload: every connection joins the room, `--senders` of
//! them send lines, and every connection counts the lines delivered to it.
//!
//! Each sent line carries a marker, `~spl:CONN:SEQ:NANOS~`, with the send
//! time in nanoseconds since the run's epoch; a receiver takes delivery
//! latency from it. Lines without a marker (the greeting, join and leave
//! notices) are ignored, so the workload does not depend on their wording.
//! A sender's request completes when its own line comes back to it.

use std::time::{Duration, Instant};

use super::client::{Client, Sink};
use super::errors::{ErrorKind, Fault};

/// The longest line accepted from the server; a longer one is a protocol
/// error.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

const MARK: &[u8] = b"~spl:";

/// One chat connection.
pub struct ChatClient {
    conn: usize,
    epoch: Instant,
    sender: bool,
    size: usize,
    seq: u64,
    /// The sequence number of our outstanding line.
    waiting_for: Option<u64>,
    line: Vec<u8>,
}

impl ChatClient {
    /// Connection number `conn` (unique in the run); `sender`: it sends
    /// lines of about `size` bytes; times are relative to `epoch`.
    pub fn new(conn: usize, epoch: Instant, sender: bool, size: usize) -> Self {
        ChatClient {
            conn,
            epoch,
            sender,
            size,
            seq: 0,
            waiting_for: None,
            line: Vec::new(),
        }
    }

    fn line_received(&mut self, line: &[u8], sink: &mut Sink) {
        let Some(at) = memchr::memmem::find(line, MARK) else {
            return;
        };
        let rest = &line[at + MARK.len()..];
        let Some(end) = memchr::memchr(b'~', rest) else {
            return;
        };
        let Some((conn, seq, nanos)) = parse_marker(&rest[..end]) else {
            return;
        };
        sink.delivered_sent_at
            .push(self.epoch + Duration::from_nanos(nanos));
        if conn == self.conn && self.waiting_for == Some(seq) {
            self.waiting_for = None;
            sink.completed += 1;
        }
    }
}

/// `CONN:SEQ:NANOS` as numbers.
fn parse_marker(text: &[u8]) -> Option<(usize, u64, u64)> {
    let text = std::str::from_utf8(text).ok()?;
    let mut parts = text.split(':');
    let conn = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let nanos = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((conn, seq, nanos))
}

impl Client for ChatClient {
    fn sends(&self) -> bool {
        self.sender
    }

    fn request(&mut self, out: &mut Vec<u8>, now: Instant) {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let start = out.len();
        out.extend_from_slice(
            format!("load {}{}:{}:{}~", "~spl:", self.conn, self.seq, nanos).as_bytes(),
        );
        // Pad to --size (the line end included) with printable filler.
        while out.len() - start + 2 < self.size {
            out.push(b'.');
        }
        out.extend_from_slice(b"\r\n");
        self.waiting_for = Some(self.seq);
        self.seq += 1;
    }

    fn received(&mut self, data: &[u8], _now: Instant, sink: &mut Sink) -> Result<(), Fault> {
        let mut rest = data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            if self.line.is_empty() {
                self.line_received(&rest[..nl], sink);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..nl]);
                self.line_received(&line, sink);
                line.clear();
                self.line = line;
            }
            rest = &rest[nl + 1..];
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_LINE_BYTES {
            return Err(Fault::new(
                ErrorKind::Protocol,
                format!("chat line longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.line.clear();
        self.waiting_for = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_line_completes_others_are_deliveries_and_notices_are_ignored() {
        let epoch = Instant::now();
        let mut me = ChatClient::new(3, epoch, true, 40);
        let mut other = ChatClient::new(4, epoch, true, 10);
        let now = epoch + Duration::from_millis(5);
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        me.request(&mut mine, now);
        other.request(&mut theirs, now);
        assert_eq!(mine.len(), 40);
        assert!(mine.ends_with(b"\r\n"));
        let mut stream =
            b"Welcome! 3 here, /help for help\r\n* 127.0.0.1:5 joined (3 here)\r\n".to_vec();
        stream.extend_from_slice(b"<127.0.0.1:9> ");
        stream.extend_from_slice(&theirs);
        stream.extend_from_slice(b"<127.0.0.1:8> ");
        stream.extend_from_slice(&mine);
        for chunk in 1..=stream.len() {
            let mut c = ChatClient::new(3, epoch, true, 40);
            c.request(&mut Vec::new(), now);
            let mut sink = Sink::default();
            for piece in stream.chunks(chunk) {
                c.received(piece, now, &mut sink).unwrap();
            }
            assert_eq!(sink.completed, 1, "chunk {chunk}");
            assert_eq!(sink.delivered_sent_at, vec![now, now], "chunk {chunk}");
        }
    }

    #[test]
    fn markers_that_do_not_parse_are_ignored_and_long_lines_refused() {
        let epoch = Instant::now();
        let mut c = ChatClient::new(0, epoch, false, 10);
        let mut sink = Sink::default();
        c.received(
            b"~spl:1:2~\r\n~spl:x:1:2~\n~spl:1:2:3:4~\n~spl:1:2:3\n",
            epoch,
            &mut sink,
        )
        .unwrap();
        assert!(sink.delivered_sent_at.is_empty() && sink.completed == 0);
        let long = vec![b'a'; MAX_LINE_BYTES + 1];
        assert_eq!(
            c.received(&long, epoch, &mut sink).unwrap_err().kind,
            ErrorKind::Protocol
        );
    }
}
