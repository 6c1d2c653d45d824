//! [`Response`]: what a resource fills in, and how a response head is
//! written — straight into the transport's buffer, so that a response (or a
//! batch of pipelined ones) leaves in one `write`.

use std::fmt;

use super::date;
use crate::transport::Transport;

/// A status code and its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The code, e.g. 200.
    pub code: u16,
    /// The reason phrase, e.g. `OK`.
    pub reason: &'static str,
}

impl Status {
    /// 100 Continue
    pub const CONTINUE: Status = Status::new(100, "Continue");
    /// 200 OK
    pub const OK: Status = Status::new(200, "OK");
    /// 204 No Content
    pub const NO_CONTENT: Status = Status::new(204, "No Content");
    /// 304 Not Modified
    pub const NOT_MODIFIED: Status = Status::new(304, "Not Modified");
    /// 400 Bad Request
    pub const BAD_REQUEST: Status = Status::new(400, "Bad Request");
    /// 404 Not Found
    pub const NOT_FOUND: Status = Status::new(404, "Not Found");
    /// 405 Method Not Allowed
    pub const METHOD_NOT_ALLOWED: Status = Status::new(405, "Method Not Allowed");
    /// 408 Request Timeout
    pub const REQUEST_TIMEOUT: Status = Status::new(408, "Request Timeout");
    /// 413 Content Too Large (RFC 9110; formerly Payload Too Large)
    pub const PAYLOAD_TOO_LARGE: Status = Status::new(413, "Content Too Large");
    /// 417 Expectation Failed
    pub const EXPECTATION_FAILED: Status = Status::new(417, "Expectation Failed");
    /// 431 Request Header Fields Too Large
    pub const HEADERS_TOO_LARGE: Status = Status::new(431, "Request Header Fields Too Large");
    /// 500 Internal Server Error
    pub const INTERNAL_ERROR: Status = Status::new(500, "Internal Server Error");
    /// 505 HTTP Version Not Supported
    pub const VERSION_NOT_SUPPORTED: Status = Status::new(505, "HTTP Version Not Supported");

    /// A status with the given code and reason.
    pub const fn new(code: u16, reason: &'static str) -> Status {
        Status { code, reason }
    }

    /// Whether a response with this status never has a body (RFC 9110:
    /// 1xx, 204, 304) and so no `Content-Length` either.
    pub fn forbids_body(self) -> bool {
        self.code < 200 || self.code == 204 || self.code == 304
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

/// A response under construction. The channel keeps one per connection and
/// clears it between requests, so its body buffer is reused.
#[derive(Debug)]
pub struct Response {
    status: Status,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            status: Status::OK,
            content_type: "text/plain",
            body: Vec::new(),
        }
    }
}

impl Response {
    /// Back to `200 OK`, `text/plain`, no body; keeps the buffer.
    pub(crate) fn reset(&mut self) {
        self.status = Status::OK;
        self.content_type = "text/plain";
        self.body.clear();
    }

    /// Sets the status (default `200 OK`).
    pub fn set_status(&mut self, status: Status) {
        self.status = status;
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Sets `Content-Type` (default `text/plain`) for this response.
    ///
    /// ```
    /// use spindle::http::{Rendered, Request, Resource, Response, Site, SiteConfig};
    /// use spindle::testing::Harness;
    /// use spindle::Factory;
    ///
    /// struct Page;
    /// impl Resource for Page {
    ///     fn allowed_methods(&self) -> &'static str { "GET" }
    ///     fn render_get(&self, _req: &Request<'_>, resp: &mut Response) -> Rendered {
    ///         resp.set_content_type("text/html; charset=utf-8");
    ///         resp.write(b"<p>hello</p>");
    ///         Rendered::Done
    ///     }
    /// }
    ///
    /// let mut h = Harness::new(Site::new(Page, SiteConfig::default()).channel());
    /// h.connect();
    /// h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    /// let text = h.take_text();
    /// // Set per response: both answers say it.
    /// assert_eq!(text.matches("\r\nContent-Type: text/html; charset=utf-8\r\n").count(), 2);
    /// ```
    pub fn set_content_type(&mut self, content_type: &'static str) {
        self.content_type = content_type;
    }

    /// Appends to the body.
    pub fn write(&mut self, data: &[u8]) {
        self.body.extend_from_slice(data);
    }

    /// The body so far.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// How the response ends the exchange, as said in `Connection:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// Nothing: the default of the request's version holds.
    None,
    /// `Connection: keep-alive` (HTTP/1.0 clients that asked for it).
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// Formats `n` in decimal into `buf`, returning the digits.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Writes a whole response: status line, `Server`, `Date`, `Content-Type`,
/// `Content-Length`, optional `Allow` and `Connection`, then the body
/// unless `head_only`.
pub(crate) fn write_response(
    t: &mut Transport,
    response: &Response,
    allow: Option<&str>,
    connection: ConnectionHeader,
    head_only: bool,
) {
    let status = response.status;
    let mut code = [0u8; 20];
    let code = decimal(u64::from(status.code), &mut code);
    let date = date::http_date_now();
    t.write_sequence(&[
        b"HTTP/1.1 ",
        code,
        b" ",
        status.reason.as_bytes(),
        b"\r\nServer: ",
        super::SERVER.as_bytes(),
        b"\r\nDate: ",
        &date,
    ]);
    let no_body = status.forbids_body();
    if !no_body {
        let mut len = [0u8; 20];
        let len = decimal(response.body.len() as u64, &mut len);
        t.write_sequence(&[
            b"\r\nContent-Type: ",
            response.content_type.as_bytes(),
            b"\r\nContent-Length: ",
            len,
        ]);
    }
    if let Some(allow) = allow {
        t.write_sequence(&[b"\r\nAllow: ", allow.as_bytes()]);
    }
    match connection {
        ConnectionHeader::None => {}
        ConnectionHeader::KeepAlive => t.write(b"\r\nConnection: keep-alive"),
        ConnectionHeader::Close => t.write(b"\r\nConnection: close"),
    }
    t.write(b"\r\n\r\n");
    if !head_only && !no_body {
        t.write(&response.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(7, &mut b), b"7");
        assert_eq!(decimal(1234567890, &mut b), b"1234567890");
        assert_eq!(decimal(u64::MAX, &mut b), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn bodiless_statuses() {
        assert!(Status::NO_CONTENT.forbids_body());
        assert!(Status::NOT_MODIFIED.forbids_body());
        assert!(Status::CONTINUE.forbids_body());
        assert!(!Status::OK.forbids_body());
        assert_eq!(
            Status::HEADERS_TOO_LARGE.to_string(),
            "431 Request Header Fields Too Large"
        );
    }
}
