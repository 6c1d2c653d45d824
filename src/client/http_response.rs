//! [`ResponseParser`]: an HTTP/1.1 response, fed in chunks of any size
//! (sans-IO). The head is parsed by `httparse`; the body is framed by
//! `Content-Length`, `Transfer-Encoding: chunked`, or the end of the
//! connection. Every size is bounded: the head and the body by the
//! caller, the header count by the server's default
//! ([`DEFAULT_MAX_HEADERS`]), a chunk-size line by
//! [`MAX_CHUNK_LINE_BYTES`].

use std::fmt;

use crate::http::chunked::{ChunkedDecoder, ChunkedError, ChunkedLimits, Step};
use crate::http::{DEFAULT_MAX_HEADERS, MAX_CHUNK_LINE_BYTES};

/// Default bound on the status line plus headers, in bytes.
pub const DEFAULT_MAX_HEAD: usize = 64 * 1024;
/// Default bound on a body, in bytes.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header names (as sent) and values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// Not HTTP, or broken framing; the text says where.
    Malformed(String),
    /// A bound was crossed: which, and its value.
    TooLarge(&'static str, usize),
    /// The connection ended before the response did.
    Truncated(String),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(why) => write!(f, "malformed HTTP response: {why}"),
            ResponseError::TooLarge(what, max) => {
                write!(f, "the response's {what} exceeds {max} bytes")
            }
            ResponseError::Truncated(why) => {
                write!(f, "the server closed the connection mid-response ({why})")
            }
        }
    }
}

impl std::error::Error for ResponseError {}

#[derive(Debug)]
enum Body {
    Length(usize),
    Chunked(ChunkedDecoder),
    UntilEof,
}

/// Status, reason and headers.
type Head = (u16, String, Vec<(String, Vec<u8>)>);

#[derive(Debug)]
enum State {
    Head,
    Body(Body),
    Done,
}

/// Parses one response; see the [module docs](self).
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    state: State,
    max_head: usize,
    max_body: usize,
    head: Option<Head>,
    body: Vec<u8>,
}

impl ResponseParser {
    /// A parser with these bounds on the head and the body.
    pub fn new(max_head: usize, max_body: usize) -> Self {
        ResponseParser {
            buf: Vec::new(),
            state: State::Head,
            max_head,
            max_body,
            head: None,
            body: Vec::new(),
        }
    }

    /// Whether any byte of a response arrived.
    pub fn started(&self) -> bool {
        !self.buf.is_empty() || self.head.is_some()
    }

    /// Feeds bytes; returns the response once it is complete (bytes after
    /// it are ignored: we ask for `Connection: close`).
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Response>, ResponseError> {
        if matches!(self.state, State::Done) {
            return Ok(None);
        }
        self.buf.extend_from_slice(data);
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Head => {
                    if !self.parse_head()? {
                        return Ok(None);
                    }
                }
                State::Body(_) => {
                    if !self.parse_body()? {
                        return Ok(None);
                    }
                    if matches!(self.state, State::Done) {
                        return Ok(Some(self.take()));
                    }
                }
            }
        }
    }

    /// The connection ended: the response, if it ends with the connection.
    pub fn finish(&mut self) -> Result<Response, ResponseError> {
        match &self.state {
            State::Body(Body::UntilEof) => {
                self.state = State::Done;
                Ok(self.take())
            }
            State::Head if self.buf.is_empty() => {
                Err(ResponseError::Truncated("no response at all".into()))
            }
            State::Head => Err(ResponseError::Truncated(format!(
                "{} bytes of headers, unfinished",
                self.buf.len()
            ))),
            State::Body(_) => Err(ResponseError::Truncated(format!(
                "after {} bytes of body",
                self.body.len()
            ))),
            State::Done => Err(ResponseError::Truncated("response already taken".into())),
        }
    }

    fn take(&mut self) -> Response {
        let (status, reason, headers) = self.head.take().unwrap_or_default();
        Response {
            status,
            reason,
            headers,
            body: std::mem::take(&mut self.body),
        }
    }

    /// Parses the head if complete; `Ok(false)` to wait for more.
    fn parse_head(&mut self) -> Result<bool, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; DEFAULT_MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let used = match response.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if self.buf.len() > self.max_head {
                    return Err(ResponseError::TooLarge("head", self.max_head));
                }
                return Ok(false);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ResponseError::TooLarge("header count", DEFAULT_MAX_HEADERS));
            }
            Err(e) => return Err(ResponseError::Malformed(e.to_string())),
        };
        if used > self.max_head {
            return Err(ResponseError::TooLarge("head", self.max_head));
        }
        let status = response.code.unwrap_or(0);
        let reason = response.reason.unwrap_or("").to_string();
        let headers: Vec<(String, Vec<u8>)> = response
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect();
        self.buf.drain(..used);
        if (100..200).contains(&status) && status != 101 {
            // An interim response (100 Continue): the real one follows.
            return Ok(true);
        }
        let value = |name: &str| {
            headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        let te = value("transfer-encoding");
        let cl = value("content-length");
        let body = if status == 204 || status == 304 {
            Body::Length(0)
        } else if let Some(last) = te.last() {
            if last.rsplit(',').next().map(str::trim) != Some("chunked") {
                return Err(ResponseError::Malformed(format!(
                    "unsupported transfer-encoding {last:?}"
                )));
            }
            Body::Chunked(ChunkedDecoder::new(ChunkedLimits {
                max_line: MAX_CHUNK_LINE_BYTES,
                max_trailer: self.max_head,
            }))
        } else if let Some(first) = cl.first() {
            if cl.iter().any(|v| v != first) {
                return Err(ResponseError::Malformed(
                    "conflicting Content-Length headers".into(),
                ));
            }
            if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ResponseError::Malformed(format!(
                    "bad Content-Length {first:?}"
                )));
            }
            match first.parse::<usize>() {
                Ok(n) if n <= self.max_body => Body::Length(n),
                _ => return Err(ResponseError::TooLarge("body", self.max_body)),
            }
        } else {
            Body::UntilEof
        };
        self.head = Some((status, reason, headers));
        self.state = State::Body(body);
        Ok(true)
    }

    fn push_body(&mut self, n: usize) -> Result<(), ResponseError> {
        if self.body.len() + n > self.max_body {
            return Err(ResponseError::TooLarge("body", self.max_body));
        }
        self.body.extend(self.buf.drain(..n));
        Ok(())
    }

    /// Advances the body; `Ok(false)` to wait for more bytes.
    fn parse_body(&mut self) -> Result<bool, ResponseError> {
        let State::Body(body) = &mut self.state else {
            return Ok(false);
        };
        match body {
            Body::Length(left) => {
                let n = (*left).min(self.buf.len());
                *left -= n;
                let done = *left == 0;
                self.push_body(n)?;
                if done {
                    self.state = State::Done;
                    return Ok(true);
                }
                Ok(false)
            }
            Body::UntilEof => {
                let n = self.buf.len();
                self.push_body(n)?;
                Ok(false)
            }
            Body::Chunked(decoder) => {
                let mut pos = 0;
                let done = loop {
                    let (used, step) = decoder.decode(&self.buf[pos..]).map_err(chunked_error)?;
                    pos += used;
                    match step {
                        Step::Data(data) => {
                            if self.body.len() + data.len() > self.max_body {
                                return Err(ResponseError::TooLarge("body", self.max_body));
                            }
                            self.body.extend_from_slice(data);
                        }
                        Step::ChunkSize(n) => {
                            let n = usize::try_from(n).unwrap_or(usize::MAX);
                            if self.body.len().saturating_add(n) > self.max_body {
                                return Err(ResponseError::TooLarge("body", self.max_body));
                            }
                        }
                        Step::NeedMore => break false,
                        Step::Done => break true,
                    }
                };
                // Drained once: the decoder needs nothing kept back.
                self.buf.drain(..pos);
                if done {
                    self.state = State::Done;
                }
                Ok(done)
            }
        }
    }
}

/// The client's words for a chunked body the decoder refused.
fn chunked_error(e: ChunkedError) -> ResponseError {
    match e {
        ChunkedError::BadSizeLine { .. }
        | ChunkedError::SizeOverflow
        | ChunkedError::NoCrlfAfterData { .. }
        | ChunkedError::BadTrailer => ResponseError::Malformed(e.to_string()),
        ChunkedError::SizeLineTooLong { max } => ResponseError::TooLarge("chunk line", max),
        ChunkedError::TrailersTooLarge { max } => ResponseError::TooLarge("trailers", max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in every chunk size and insists on one outcome.
    fn parse_every_way(input: &[u8], eof: bool) -> Result<Response, ResponseError> {
        let mut outcomes = Vec::new();
        for size in 1..=input.len().max(1) {
            let mut p = ResponseParser::new(1024, 1024);
            let mut got = None;
            for chunk in input.chunks(size) {
                match p.feed(chunk) {
                    Ok(Some(r)) => {
                        got = Some(Ok(r));
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        got = Some(Err(e));
                        break;
                    }
                }
            }
            let outcome = match got {
                Some(o) => o,
                None if eof => p.finish(),
                None => Err(ResponseError::Truncated("test: incomplete".into())),
            };
            outcomes.push(outcome);
        }
        for o in &outcomes[1..] {
            assert_eq!(o, &outcomes[0]);
        }
        outcomes.remove(0)
    }

    #[test]
    fn content_length_body() {
        let r = parse_every_way(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA",
            false,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_slice()),
            (200, "OK", &b"hello"[..])
        );
        assert_eq!(r.header("x-a").as_deref(), Some("b"));
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n";
        assert_eq!(parse_every_way(input, false).unwrap().body, b"hello!");
    }

    #[test]
    fn until_eof_and_interim_responses() {
        let r = parse_every_way(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\ngone",
            true,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"gone"[..]));
        assert_eq!(
            parse_every_way(b"HTTP/1.1 204 No Content\r\n\r\n", false)
                .unwrap()
                .body,
            b""
        );
    }

    #[test]
    fn errors() {
        let cases: [(&[u8], bool, &str); 9] = [
            (b"SSH-2.0-OpenSSH\r\n\r\n", false, "malformed"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                false,
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                "conflicting",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n",
                false,
                "body exceeds 1024",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                "unsupported transfer-encoding",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
                "bad chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
                false,
                "does not end with CRLF",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                true,
                "mid-response (after 3 bytes of body)",
            ),
            (b"HTTP/1.1 200 O", true, "mid-response (14 bytes of headers"),
        ];
        for (input, eof, needle) in cases {
            let e = parse_every_way(input, eof).unwrap_err().to_string();
            assert!(
                e.contains(needle),
                "{:?}: {e}",
                String::from_utf8_lossy(input)
            );
        }
        let mut p = ResponseParser::new(16, 16);
        let e = p
            .feed(b"HTTP/1.1 200 OK\r\nA: very long header\r\n")
            .unwrap_err();
        assert_eq!(e, ResponseError::TooLarge("head", 16));
    }
}
