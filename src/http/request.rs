//! A parsed request head ([`Request`]) and what its headers say about the
//! connection: how long the body is, whether to keep the connection, and
//! whether the client waits for `100 Continue`.

use super::response::Status;

/// The request methods a [`Resource`](super::Resource) can render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: `GET` without the body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `PATCH`
    Patch,
    /// Any other token; always `405`.
    Other,
}

impl Method {
    /// The method named `token` (case-sensitive, as RFC 9110 says).
    pub fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// The HTTP versions spoken (anything else gets `505`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: closes after each response unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    Http11,
}

/// A request as a resource sees it: the head, borrowed from the
/// connection's buffer. The body, if any, has been read and discarded.
#[derive(Debug)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The method as sent (for [`Method::Other`]).
    pub method_token: &'a str,
    /// The request target, e.g. `/index.html?x=1`.
    pub target: &'a str,
    /// The version.
    pub version: Version,
    /// The header fields, in order.
    pub headers: &'a [httparse::Header<'a>],
}

impl Request<'_> {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No body.
    None,
    /// `Content-Length: n`, n > 0.
    Exactly(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the head says about everything around the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    pub body: BodyLength,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// A request the server refuses, with the status it deserves and a reason
/// for the log and the response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub status: Status,
    pub why: String,
}

impl Refused {
    pub fn new(status: Status, why: impl Into<String>) -> Refused {
        Refused {
            status,
            why: why.into(),
        }
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A `Content-Length` value: digits, or a list of identical digit strings
/// (RFC 9110 §8.6 lets a recipient accept `5, 5`).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut found = None;
    for part in value.split(|&b| b == b',') {
        let digits = part.trim_ascii();
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        match found {
            Some(m) if m != n => return None,
            _ => found = Some(n),
        }
    }
    found
}

/// Reads the framing out of a parsed head, or refuses the request.
pub(crate) fn framing(req: &Request<'_>, max_body: u64) -> Result<Framing, Refused> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    let mut hosts = 0;
    for h in req.headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value)
                .ok_or_else(|| Refused::new(Status::BAD_REQUEST, "invalid Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(Refused::new(
                    Status::BAD_REQUEST,
                    "conflicting Content-Length headers",
                ));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only the last coding frames the message; it must be chunked.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close |= has_token(h.value, "close");
            keep_alive |= has_token(h.value, "keep-alive");
        } else if name.eq_ignore_ascii_case("expect") {
            if h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(Refused::new(
                    Status::EXPECTATION_FAILED,
                    format!(
                        "unsupported expectation {:?}",
                        String::from_utf8_lossy(h.value)
                    ),
                ));
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if req.version == Version::Http11 && hosts != 1 {
        let why = if hosts == 0 {
            "HTTP/1.1 request without Host"
        } else {
            "several Host headers"
        };
        return Err(Refused::new(Status::BAD_REQUEST, why));
    }
    let body = match (transfer_encoding, length) {
        (true, Some(_)) => {
            return Err(Refused::new(
                Status::BAD_REQUEST,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        (true, None) if !chunked => {
            return Err(Refused::new(
                Status::BAD_REQUEST,
                "Transfer-Encoding whose last coding is not chunked",
            ));
        }
        (true, None) => BodyLength::Chunked,
        (false, Some(n)) if n > max_body => {
            return Err(Refused::new(
                Status::PAYLOAD_TOO_LARGE,
                format!("body of {n} bytes over the limit of {max_body} (--max-body-bytes)"),
            ));
        }
        (false, Some(0) | None) => BodyLength::None,
        (false, Some(n)) => BodyLength::Exactly(n),
    };
    let keep_alive = match req.version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive && !close,
    };
    Ok(Framing {
        body,
        keep_alive,
        // A client that asked and sends no body waits for nothing.
        expect_continue: expect_continue
            && req.version == Version::Http11
            && body != BodyLength::None,
    })
}

/// Maps a parse error to its status: a version we do not speak is `505`,
/// anything else `400`.
pub(crate) fn parse_error(err: httparse::Error, buf: &[u8]) -> Refused {
    match err {
        httparse::Error::TooManyHeaders => Refused::new(
            Status::HEADERS_TOO_LARGE,
            "too many header fields (--max-headers)",
        ),
        httparse::Error::Version => {
            let line_end = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
            if memchr::memmem::find(&buf[..line_end], b" HTTP/").is_some() {
                Refused::new(Status::VERSION_NOT_SUPPORTED, "unsupported HTTP version")
            } else {
                Refused::new(Status::BAD_REQUEST, "malformed request line")
            }
        }
        other => Refused::new(Status::BAD_REQUEST, format!("malformed request: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(
        version: Version,
        headers: &[(&'static str, &'static [u8])],
    ) -> Vec<httparse::Header<'static>> {
        let _ = version;
        headers
            .iter()
            .map(|(name, value)| httparse::Header { name, value })
            .collect()
    }

    fn frame(
        version: Version,
        headers: &[(&'static str, &'static [u8])],
    ) -> Result<Framing, Refused> {
        let hs = head(version, headers);
        let req = Request {
            method: Method::Post,
            method_token: "POST",
            target: "/",
            version,
            headers: &hs,
        };
        framing(&req, 100)
    }

    #[test]
    fn lengths() {
        let f = frame(Version::Http11, &[("Host", b"x"), ("Content-Length", b"5")]).unwrap();
        assert_eq!(f.body, BodyLength::Exactly(5));
        let f = frame(
            Version::Http11,
            &[("Host", b"x"), ("content-length", b" 5, 5 ")],
        )
        .unwrap();
        assert_eq!(f.body, BodyLength::Exactly(5));
        let f = frame(Version::Http11, &[("Host", b"x"), ("Content-Length", b"0")]).unwrap();
        assert_eq!(f.body, BodyLength::None);
        let f = frame(
            Version::Http11,
            &[("Host", b"x"), ("Content-Length", b"100")],
        )
        .unwrap();
        assert_eq!(f.body, BodyLength::Exactly(100));
        for bad in [
            &b"5, 6"[..],
            b"-1",
            b"+5",
            b"0x10",
            b"",
            b"99999999999999999999",
        ] {
            let e = frame(Version::Http11, &[("Host", b"x"), ("Content-Length", bad)]).unwrap_err();
            assert_eq!(e.status, Status::BAD_REQUEST, "{bad:?}");
        }
        let e = frame(
            Version::Http11,
            &[
                ("Host", b"x"),
                ("Content-Length", b"5"),
                ("Content-Length", b"6"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.status, Status::BAD_REQUEST);
        let e = frame(
            Version::Http11,
            &[("Host", b"x"), ("Content-Length", b"101")],
        )
        .unwrap_err();
        assert_eq!(e.status, Status::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn transfer_encodings() {
        let f = frame(
            Version::Http11,
            &[("Host", b"x"), ("Transfer-Encoding", b"gzip, Chunked")],
        )
        .unwrap();
        assert_eq!(f.body, BodyLength::Chunked);
        let e = frame(
            Version::Http11,
            &[("Host", b"x"), ("Transfer-Encoding", b"chunked, gzip")],
        )
        .unwrap_err();
        assert_eq!(e.status, Status::BAD_REQUEST);
        let e = frame(
            Version::Http11,
            &[
                ("Host", b"x"),
                ("Transfer-Encoding", b"chunked"),
                ("Content-Length", b"3"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.status, Status::BAD_REQUEST);
    }

    #[test]
    fn persistence_by_version() {
        assert!(
            frame(Version::Http11, &[("Host", b"x")])
                .unwrap()
                .keep_alive
        );
        assert!(
            !frame(Version::Http11, &[("Host", b"x"), ("Connection", b"Close")])
                .unwrap()
                .keep_alive
        );
        assert!(!frame(Version::Http10, &[]).unwrap().keep_alive);
        assert!(
            frame(Version::Http10, &[("Connection", b"Keep-Alive")])
                .unwrap()
                .keep_alive
        );
        assert!(
            !frame(Version::Http10, &[("Connection", b"keep-alive, close")])
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn host_and_expect() {
        assert_eq!(
            frame(Version::Http11, &[]).unwrap_err().status,
            Status::BAD_REQUEST
        );
        assert_eq!(
            frame(Version::Http11, &[("Host", b"a"), ("Host", b"b")])
                .unwrap_err()
                .status,
            Status::BAD_REQUEST
        );
        let f = frame(
            Version::Http11,
            &[
                ("Host", b"x"),
                ("Expect", b"100-Continue"),
                ("Content-Length", b"3"),
            ],
        )
        .unwrap();
        assert!(f.expect_continue);
        let f = frame(
            Version::Http11,
            &[("Host", b"x"), ("Expect", b"100-continue")],
        )
        .unwrap();
        assert!(!f.expect_continue, "no body, nothing to wait for");
        let e = frame(Version::Http11, &[("Host", b"x"), ("Expect", b"tea")]).unwrap_err();
        assert_eq!(e.status, Status::EXPECTATION_FAILED);
    }

    #[test]
    fn version_errors() {
        assert_eq!(
            parse_error(httparse::Error::Version, b"GET / HTTP/2.0\r\n").status,
            Status::VERSION_NOT_SUPPORTED
        );
        assert_eq!(
            parse_error(httparse::Error::Version, b"GET / FTP/1.0\r\n").status,
            Status::BAD_REQUEST
        );
        assert_eq!(
            parse_error(httparse::Error::TooManyHeaders, b"").status,
            Status::HEADERS_TOO_LARGE
        );
        assert_eq!(
            parse_error(httparse::Error::Token, b"").status,
            Status::BAD_REQUEST
        );
    }
}
