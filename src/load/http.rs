//! The `http` workload: `GET` over keep-alive connections (or one request
//! per connection), each response parsed with httparse and framed by
//! `Content-Length`, chunked encoding or the close; anything else is a
//! protocol error, a non-2xx status an error of its own kind.

use std::time::Instant;

use super::client::{Client, Sink};
use super::errors::{ErrorKind, Fault};
use crate::client::http_response::DEFAULT_MAX_HEAD;
use crate::http::chunked::{ChunkedDecoder, ChunkedLimits, Step};
use crate::http::{DEFAULT_MAX_HEADERS, MAX_CHUNK_LINE_BYTES};

/// Header fields read per response, at most: the server's default and the
/// client's (`spindle get`), so that the three agree on what is too many.
pub const MAX_RESPONSE_HEADERS: usize = DEFAULT_MAX_HEADERS;

/// Bytes a response's head (status line and headers) may take, the
/// client's bound: a longer one is a protocol error.
pub const MAX_RESPONSE_HEAD_BYTES: usize = DEFAULT_MAX_HEAD;

/// Bytes a response (head and body) may take; a longer one is a protocol
/// error, so a broken server cannot keep one request going for ever.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// One HTTP connection.
///
/// A response is consumed as it arrives: the head is parsed once, when it
/// is complete, and the body's bytes are counted off (`Content-Length`) or
/// fed once to a chunked decoder that keeps its state between reads, so a
/// response costs time in proportion to its bytes however it is split.
/// Only an incomplete head is kept between reads; in the usual case (a
/// whole response in one read) nothing is copied at all.
pub struct HttpClient {
    request: Vec<u8>,
    keepalive: bool,
    /// A request was sent and its response is not complete.
    outstanding: bool,
    /// The last response said `Connection: close` (or was HTTP/1.0).
    server_closes: bool,
    /// An incomplete head (or, rarely, bytes after a response).
    buf: Vec<u8>,
    /// The response whose head has been read and whose body has not.
    body: Option<Body>,
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
    /// The reason phrase, kept only for a status that is an error.
    reason: String,
    framing: Framing,
    closes: bool,
}

/// The body being read of the response whose head was `head`.
struct Body {
    head: Head,
    /// Bytes of this response (head and body) consumed so far.
    seen: usize,
    state: BodyState,
}

enum BodyState {
    /// Body bytes still to come.
    Length(usize),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// Parses the head at the front of `buf`: `Ok(None)` if it is not all
/// there yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Fault> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_RESPONSE_HEAD_BYTES {
                return Err(Fault::new(
                    ErrorKind::Protocol,
                    format!(
                        "response head longer than {MAX_RESPONSE_HEAD_BYTES} bytes \
                         (MAX_RESPONSE_HEAD_BYTES)"
                    ),
                ));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Fault::new(
                ErrorKind::Protocol,
                format!(
                    "response with more than {MAX_RESPONSE_HEADERS} header fields \
                     (MAX_RESPONSE_HEADERS)"
                ),
            ));
        }
        Err(e) => {
            return Err(Fault::new(
                ErrorKind::Protocol,
                format!("malformed HTTP response: {e}"),
            ));
        }
    };
    let status = response.code.unwrap_or(0);
    let reason = if (200..300).contains(&status) {
        String::new()
    } else {
        response.reason.unwrap_or("").to_string()
    };
    let mut closes = response.version == Some(0);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| {
                    Fault::new(
                        ErrorKind::Protocol,
                        format!("bad Content-Length {:?}", String::from_utf8_lossy(value)),
                    )
                })?;
            if length.is_some_and(|l| l != n) {
                return Err(Fault::new(
                    ErrorKind::Protocol,
                    "conflicting Content-Length headers",
                ));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.len() >= 7 && value[value.len() - 7..].eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_ignore_case(value, b"close") {
                closes = true;
            } else if contains_ignore_case(value, b"keep-alive") {
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

/// Whether `needle` (lower case) occurs in `haystack`, ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
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
            body: None,
            sends,
        }
    }

    /// Consumes complete heads and as much body as `buf` holds; returns
    /// how many bytes it used. What is left is an incomplete head.
    fn consume(&mut self, buf: &[u8], sink: &mut Sink) -> Result<usize, Fault> {
        let mut at = 0;
        loop {
            if self.body.is_none() {
                if at == buf.len() {
                    return Ok(at);
                }
                if !self.outstanding {
                    return Err(unsolicited(&buf[at..]));
                }
                let Some(head) = parse_head(&buf[at..])? else {
                    return Ok(at);
                };
                at += head.len;
                let state = match head.framing {
                    Framing::Length(n) => BodyState::Length(n),
                    Framing::Chunked => BodyState::Chunked(ChunkedDecoder::new(ChunkedLimits {
                        max_line: MAX_CHUNK_LINE_BYTES,
                        max_trailer: MAX_RESPONSE_HEAD_BYTES,
                    })),
                    Framing::UntilClose => BodyState::UntilClose,
                };
                self.body = Some(Body {
                    seen: head.len,
                    head,
                    state,
                });
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            let start = at;
            let done = match &mut body.state {
                BodyState::Length(left) => {
                    let take = (*left).min(buf.len() - at);
                    *left -= take;
                    at += take;
                    *left == 0
                }
                BodyState::Chunked(decoder) => loop {
                    let (used, step) = decoder.decode(&buf[at..]).map_err(|e| {
                        Fault::new(ErrorKind::Protocol, format!("bad chunked response: {e}"))
                    })?;
                    at += used;
                    match step {
                        Step::Data(_) | Step::ChunkSize(_) => {}
                        Step::NeedMore => break false,
                        Step::Done => break true,
                    }
                },
                BodyState::UntilClose => {
                    at = buf.len();
                    false
                }
            };
            body.seen += at - start;
            if body.seen > MAX_RESPONSE_BYTES {
                return Err(Fault::new(
                    ErrorKind::Protocol,
                    format!("response larger than {MAX_RESPONSE_BYTES} bytes (MAX_RESPONSE_BYTES)"),
                ));
            }
            if !done {
                return Ok(at);
            }
            let Some(Body { head, .. }) = self.body.take() else {
                continue;
            };
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
}

/// Bytes with no request outstanding. A whole response there is a server
/// turning the connection away (a 503 when busy, a 408 on an idle
/// connection, which HTTP/1.1 allows before closing): counted as a status
/// error. Anything else breaks the protocol.
fn unsolicited(buf: &[u8]) -> Fault {
    match parse_head(buf) {
        Ok(Some(head)) => Fault::new(
            ErrorKind::Status,
            format!(
                "HTTP {} {} with no request outstanding",
                head.status, head.reason
            ),
        ),
        _ => {
            let start = &buf[..buf.len().min(40)];
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

impl Client for HttpClient {
    fn sends(&self) -> bool {
        self.sends
    }

    fn request(&mut self, out: &mut Vec<u8>, _now: Instant) {
        self.outstanding = true;
        out.extend_from_slice(&self.request);
    }

    fn received(&mut self, data: &[u8], _now: Instant, sink: &mut Sink) -> Result<(), Fault> {
        if self.buf.is_empty() {
            // The usual case: parse straight from the read buffer.
            let used = self.consume(data, sink)?;
            self.buf.extend_from_slice(&data[used..]);
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(data);
        let used = self.consume(&buf, sink);
        if let Ok(used) = used {
            buf.drain(..used);
        }
        self.buf = buf;
        used.map(|_| ())
    }

    fn closed(&mut self, sink: &mut Sink) -> Result<(), Fault> {
        if !self.outstanding {
            return Ok(());
        }
        match self.body.take() {
            Some(Body {
                head,
                state: BodyState::UntilClose,
                ..
            }) => {
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
        self.body = None;
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

    #[test]
    fn a_large_chunked_body_in_small_pieces_completes_once() {
        // 4 MiB in 4 KiB chunks, fed 1,000 bytes at a time, then a second
        // response in the same stream: each byte is decoded once (the old
        // parser decoded the whole buffer again on every read).
        let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..1024 {
            bytes.extend_from_slice(b"1000\r\n");
            bytes.extend_from_slice(&[b'x'; 4096]);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        let mut c = HttpClient::new("h", "/", true, true);
        sent(&mut c);
        let mut sink = feed_all(&mut c, &bytes, 1000).unwrap();
        assert_eq!(sink.completed, 1);
        assert!(c.buf.is_empty() && c.body.is_none());
        sent(&mut c);
        c.received(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            Instant::now(),
            &mut sink,
        )
        .unwrap();
        assert_eq!(sink.completed, 2);
    }

    #[test]
    fn header_count_and_sizes_are_bounded() {
        let with = |n: usize| {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_vec();
            for i in 1..n {
                r.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            r.extend_from_slice(b"\r\n");
            r
        };
        let mut c = HttpClient::new("h", "/", true, true);
        sent(&mut c);
        let sink = feed_all(&mut c, &with(MAX_RESPONSE_HEADERS), 13).unwrap();
        assert_eq!(sink.completed, 1);
        let mut c = HttpClient::new("h", "/", true, true);
        sent(&mut c);
        let e = feed_all(&mut c, &with(MAX_RESPONSE_HEADERS + 1), 13).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.cause.contains("MAX_RESPONSE_HEADERS"), "{}", e.cause);
        // A head that never ends.
        let mut c = HttpClient::new("h", "/", true, true);
        sent(&mut c);
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(MAX_RESPONSE_HEAD_BYTES + 10, b'a');
        let e = feed_all(&mut c, &long, 4096).unwrap_err();
        assert!(e.cause.contains("MAX_RESPONSE_HEAD_BYTES"), "{}", e.cause);
        // A body longer than MAX_RESPONSE_BYTES, refused as it passes the bound.
        let mut c = HttpClient::new("h", "/", true, true);
        sent(&mut c);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_RESPONSE_BYTES
        );
        let mut sink = feed_all(&mut c, head.as_bytes(), 7).unwrap();
        let piece = vec![0u8; 1 << 20];
        let mut refused = None;
        for _ in 0..20 {
            if let Err(e) = c.received(&piece, Instant::now(), &mut sink) {
                refused = Some(e);
                break;
            }
        }
        let e = refused.expect("the bound was never enforced");
        assert!(e.cause.contains("MAX_RESPONSE_BYTES"), "{}", e.cause);
        assert_eq!(sink.completed, 0);
    }

    #[test]
    fn responses_split_anywhere_count_once_each() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Keep-Alive\r\n\r\nhello";
        for chunk in 1..=one.len() {
            let mut c = HttpClient::new("h", "/", true, true);
            let mut sink = Sink::default();
            for _ in 0..3 {
                sent(&mut c);
                for piece in one.chunks(chunk) {
                    c.received(piece, Instant::now(), &mut sink).unwrap();
                }
            }
            assert_eq!(sink.completed, 3, "chunk {chunk}");
            assert!(!c.one_request_per_connection());
            // A second response with no request outstanding, in the same read.
            let mut two = one.to_vec();
            two.extend_from_slice(one);
            sent(&mut c);
            let e = c.received(&two, Instant::now(), &mut sink).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Status, "chunk {chunk}");
        }
    }
}
