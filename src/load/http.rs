//! The `http` workload: `GET` over keep-alive connections (or one request
//! per connection), each response parsed with httparse and framed by
//! `Content-Length`, chunked encoding or the close; anything else is a
//! protocol error, a non-2xx status an error of its own kind.

use std::time::Instant;

use super::client::{Client, Sink};
use super::errors::{ErrorKind, Fault};
use crate::http::chunked::{ChunkedDecoder, ChunkedLimits, Step};

/// Headers read per response, at most.
pub const MAX_RESPONSE_HEADERS: usize = 64;

/// Bytes a response (head and body) may take; a longer one is a protocol
/// error, so a broken server cannot make the generator grow without bound.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// One HTTP connection.
pub struct HttpClient {
    request: Vec<u8>,
    keepalive: bool,
    /// A request was sent and its response is not complete.
    outstanding: bool,
    /// The last response said `Connection: close` (or was HTTP/1.0).
    server_closes: bool,
    buf: Vec<u8>,
    sends: bool,
}

/// How a response's body ends.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// A parsed response head.
struct Head {
    len: usize,
    status: u16,
    reason: String,
    framing: Framing,
    closes: bool,
}

impl HttpClient {
    /// A client asking `GET path` of `host` (the `Host` header).
    pub fn new(host: &str, path: &str, keepalive: bool, sends: bool) -> Self {
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: spindle-load\r\n");
        if !keepalive {
            request.push_str("Connection: close\r\n");
        }
        request.push_str("\r\n");
        HttpClient {
            request: request.into_bytes(),
            keepalive,
            outstanding: false,
            server_closes: false,
            buf: Vec::new(),
            sends,
        }
    }

    /// Parses the head at the front of the buffer: `Ok(None)` if it is not
    /// all there yet.
    fn head(&self) -> Result<Option<Head>, Fault> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => {
                return Err(Fault::new(
                    ErrorKind::Protocol,
                    format!("malformed HTTP response: {e}"),
                ));
            }
        };
        let status = response.code.unwrap_or(0);
        let reason = response.reason.unwrap_or("").to_string();
        let mut closes = response.version == Some(0);
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for h in response.headers.iter() {
            let value = String::from_utf8_lossy(h.value);
            let value = value.trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                let n: usize = value.parse().map_err(|_| {
                    Fault::new(ErrorKind::Protocol, format!("bad Content-Length {value:?}"))
                })?;
                if length.is_some_and(|l| l != n) {
                    return Err(Fault::new(
                        ErrorKind::Protocol,
                        "conflicting Content-Length headers",
                    ));
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().ends_with("chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    closes = true;
                } else if v.contains("keep-alive") {
                    closes = false;
                }
            }
        }
        let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        Ok(Some(Head {
            len,
            status,
            reason,
            framing,
            closes,
        }))
    }

    /// Takes complete responses off the front of the buffer.
    fn take_responses(&mut self, sink: &mut Sink) -> Result<(), Fault> {
        loop {
            if self.buf.is_empty() {
                return Ok(());
            }
            if !self.outstanding {
                return Err(self.unsolicited());
            }
            let Some(head) = self.head()? else {
                return self.check_size();
            };
            let body_end = match head.framing {
                Framing::Length(n) => Some(head.len + n).filter(|&end| end <= self.buf.len()),
                Framing::Chunked => chunked_end(&self.buf, head.len)?,
                Framing::UntilClose => None,
            };
            let Some(end) = body_end else {
                return self.check_size();
            };
            self.buf.drain(..end);
            if (100..200).contains(&head.status) {
                continue; // 100 Continue and friends: the real response follows.
            }
            self.finish(&head, sink);
        }
    }

    fn finish(&mut self, head: &Head, sink: &mut Sink) {
        self.outstanding = false;
        self.server_closes = head.closes;
        sink.completed += 1;
        if !(200..300).contains(&head.status) {
            sink.soft_faults.push(Fault::new(
                ErrorKind::Status,
                format!("HTTP {} {}", head.status, head.reason),
            ));
        }
    }

    /// Bytes with no request outstanding. A whole response there is a
    /// server turning the connection away (a 503 when busy, a 408 on an
    /// idle connection, which HTTP/1.1 allows before closing): counted as
    /// a status error. Anything else breaks the protocol.
    fn unsolicited(&self) -> Fault {
        match self.head() {
            Ok(Some(head)) => Fault::new(
                ErrorKind::Status,
                format!(
                    "HTTP {} {} with no request outstanding",
                    head.status, head.reason
                ),
            ),
            _ => {
                let start = &self.buf[..self.buf.len().min(40)];
                Fault::new(
                    ErrorKind::Protocol,
                    format!(
                        "response bytes with no request outstanding: {:?}",
                        String::from_utf8_lossy(start)
                    ),
                )
            }
        }
    }

    fn check_size(&self) -> Result<(), Fault> {
        if self.buf.len() > MAX_RESPONSE_BYTES {
            return Err(Fault::new(
                ErrorKind::Protocol,
                format!("response larger than {MAX_RESPONSE_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// Where a chunked body that starts at `at` ends, if it is all there.
/// The buffer is decoded afresh each time; [`MAX_RESPONSE_BYTES`] bounds
/// it, and so its lines.
fn chunked_end(buf: &[u8], mut at: usize) -> Result<Option<usize>, Fault> {
    let mut decoder = ChunkedDecoder::new(ChunkedLimits {
        max_line: MAX_RESPONSE_BYTES,
        max_trailer: MAX_RESPONSE_BYTES,
    });
    loop {
        let (used, step) = decoder
            .decode(&buf[at..])
            .map_err(|e| Fault::new(ErrorKind::Protocol, format!("bad chunked response: {e}")))?;
        at += used;
        match step {
            Step::Data(_) | Step::ChunkSize(_) => {}
            Step::NeedMore => return Ok(None),
            Step::Done => return Ok(Some(at)),
        }
    }
}

impl Client for HttpClient {
    fn sends(&self) -> bool {
        self.sends
    }

    fn request(&mut self, out: &mut Vec<u8>, _now: Instant) {
        self.outstanding = true;
        out.extend_from_slice(&self.request);
    }

    fn received(&mut self, data: &[u8], _now: Instant, sink: &mut Sink) -> Result<(), Fault> {
        self.buf.extend_from_slice(data);
        self.take_responses(sink)
    }

    fn closed(&mut self, sink: &mut Sink) -> Result<(), Fault> {
        if !self.outstanding {
            return Ok(());
        }
        match self.head()? {
            Some(head) if matches!(head.framing, Framing::UntilClose) => {
                self.buf.clear();
                let head = Head {
                    closes: true,
                    ..head
                };
                self.finish(&head, sink);
                Ok(())
            }
            _ => Err(Fault::new(
                ErrorKind::Closed,
                "the server closed the connection before the response was complete",
            )),
        }
    }

    fn one_request_per_connection(&self) -> bool {
        !self.keepalive || self.server_closes
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.outstanding = false;
        self.server_closes = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(c: &mut HttpClient, bytes: &[u8], chunk: usize) -> Result<Sink, Fault> {
        let now = Instant::now();
        let mut sink = Sink::default();
        for piece in bytes.chunks(chunk) {
            c.received(piece, now, &mut sink)?;
        }
        Ok(sink)
    }

    fn sent(c: &mut HttpClient) -> Vec<u8> {
        let mut out = Vec::new();
        c.request(&mut out, Instant::now());
        out
    }

    #[test]
    fn request_text() {
        let mut c = HttpClient::new("127.0.0.1:8080", "/", true, true);
        let r = String::from_utf8(sent(&mut c)).unwrap();
        assert!(
            r.starts_with("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\n") && !r.contains("Connection"));
        let mut c = HttpClient::new("h", "/x", false, true);
        assert!(
            String::from_utf8(sent(&mut c))
                .unwrap()
                .contains("Connection: close\r\n")
        );
        assert!(c.one_request_per_connection());
    }

    #[test]
    fn framings_in_every_chunking() {
        let cases: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nI am request #1\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\nT: v\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
        ];
        for (i, case) in cases.iter().enumerate() {
            for chunk in 1..=case.len() {
                let mut c = HttpClient::new("h", "/", true, true);
                sent(&mut c);
                let sink = feed_all(&mut c, case, chunk).unwrap();
                assert_eq!(sink.completed, 1, "case {i} chunk {chunk}");
                assert!(sink.soft_faults.is_empty());
                assert_eq!(c.one_request_per_connection(), i == 3, "case {i}");
            }
        }
    }

    #[test]
    fn close_delimited_body_completes_on_close() {
        let mut c = HttpClient::new("h", "/", true, true);
        sent(&mut c);
        let mut sink = feed_all(&mut c, b"HTTP/1.0 200 OK\r\n\r\nbody until close", 3).unwrap();
        assert_eq!(sink.completed, 0);
        c.closed(&mut sink).unwrap();
        assert_eq!(sink.completed, 1);
        // A length-framed body cut short is an error of kind Closed.
        let mut c = HttpClient::new("h", "/", true, true);
        sent(&mut c);
        let mut sink = feed_all(
            &mut c,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            1,
        )
        .unwrap();
        assert_eq!(c.closed(&mut sink).unwrap_err().kind, ErrorKind::Closed);
    }

    #[test]
    fn bad_status_is_counted_but_completes() {
        let mut c = HttpClient::new("h", "/", true, true);
        sent(&mut c);
        let sink = feed_all(&mut c, b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", 7).unwrap();
        assert_eq!(sink.completed, 1);
        assert_eq!(sink.soft_faults[0].kind, ErrorKind::Status);
        assert_eq!(sink.soft_faults[0].cause, "HTTP 503 Busy");
    }

    #[test]
    fn malformed_responses_are_protocol_errors() {
        let bad: [&[u8]; 5] = [
            b"HTTP/9 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        ];
        for case in bad {
            let mut c = HttpClient::new("h", "/", true, true);
            sent(&mut c);
            let e = feed_all(&mut c, case, case.len()).unwrap_err();
            assert_eq!(
                e.kind,
                ErrorKind::Protocol,
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
        // Bytes with no request outstanding.
        let mut c = HttpClient::new("h", "/", true, true);
        assert_eq!(
            feed_all(&mut c, b"HTTP/1.1 200 OK\r\n", 100)
                .unwrap_err()
                .kind,
            ErrorKind::Protocol
        );
        // A whole response (a busy 503) is a status error.
        let mut c = HttpClient::new("h", "/", true, true);
        let e = feed_all(
            &mut c,
            b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
            100,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Status);
        assert!(e.cause.contains("503 Busy"), "{}", e.cause);
    }
}
