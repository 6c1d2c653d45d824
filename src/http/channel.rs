//! [`HttpChannel`]: one HTTP/1.x connection — Twisted's `HTTPChannel`.
//!
//! It parses request heads with httparse, reads and discards bodies,
//! answers pipelined requests in order (every response a callback produces
//! leaves in the transport's single write), keeps or closes the connection
//! as the version and `Connection:` say, and enforces the site's limits and
//! timeouts.
//!
//! Timeouts use one transport timer at a time. The channel keeps its
//! *deadline* in a field and moves it on every request without touching the
//! timer; when the timer fires and the deadline has moved later, it is
//! simply armed again. That keeps timer bookkeeping off the hot path.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::body::{BodyReader, Progress};
use super::config::{IDLE_POLL, KeepAliveCliff, MAX_HEADERS_LIMIT, RELEASE_SLICE, SiteConfig};
use super::request::{
    BodyLength, Framing, Method, Refused, Request, Version, framing, parse_error,
};
use super::resource::{Rendered, Resource, render};
use super::response::{ConnectionHeader, Response, Status, write_response};
use crate::protocol::{Protocol, Reason};
use crate::transport::{TimerId, Transport};

/// Where the channel is in the request/response cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading and discarding the body of the held request.
    Body(BodyReader),
    /// A close was requested; nothing more is read.
    Closed,
}

/// What the current deadline waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// A request head: from the connection's start or a request's first
    /// byte (`--header-timeout`).
    Request,
    /// More body bytes (`--header-timeout` of silence).
    Body,
    /// The next request on a persistent connection (`--keepalive-timeout`).
    Idle,
}

/// A deadline that is never reached in practice.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// One connection of a [`Site`](super::Site), as Twisted's `HTTPChannel`:
/// parses requests, answers pipelined ones in order, keeps or closes the
/// connection and enforces the site's limits and timeouts.
pub struct HttpChannel {
    resource: Arc<dyn Resource>,
    config: Arc<SiteConfig>,
    /// Bytes received and not yet consumed (a partial head, a partial
    /// chunk-size line). Reused, so steady traffic allocates nothing here.
    inbuf: Vec<u8>,
    state: State,
    /// The head of the request whose body is being read, answered when the
    /// body ends.
    held: Vec<u8>,
    held_framing: Option<Framing>,
    response: Response,
    deadline: Option<(Instant, Wait)>,
    timer: Option<(TimerId, Instant)>,
    /// When the connection last became idle between requests.
    idle_since: Instant,
    /// When the connection started (its worker took it).
    connected_at: Instant,
    /// Connections of this site given up for waiting ones and not yet
    /// gone (shared by the site's channels).
    releasing: Arc<AtomicUsize>,
    /// Whether this one is among them.
    released: bool,
    served: u64,
}

impl std::fmt::Debug for HttpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpChannel")
            .field("state", &self.state)
            .field("buffered", &self.inbuf.len())
            .field("served", &self.served)
            .finish()
    }
}

/// One request head parsed, or why not.
enum HeadStep {
    /// The head is not complete yet.
    Partial,
    /// A head of `used` bytes was handled; its body, if any, is next.
    Done {
        used: usize,
        body: Option<BodyReader>,
    },
}

impl HttpChannel {
    /// A channel answering with `resource` under `config`'s limits.
    pub fn new(resource: Arc<dyn Resource>, config: Arc<SiteConfig>) -> Self {
        HttpChannel {
            resource,
            config,
            inbuf: Vec::new(),
            state: State::Head,
            held: Vec::new(),
            held_framing: None,
            response: Response::default(),
            deadline: None,
            timer: None,
            idle_since: Instant::now(),
            connected_at: Instant::now(),
            releasing: Arc::new(AtomicUsize::new(0)),
            released: false,
            served: 0,
        }
    }

    /// Shares the count of released connections with the site's other
    /// channels.
    pub(crate) fn with_release_count(mut self, releasing: Arc<AtomicUsize>) -> Self {
        self.releasing = releasing;
        self
    }

    /// Under [`KeepAliveCliff::Release`], whether to give this connection
    /// up for one waiting for a worker. Each queued connection needs one
    /// worker: connections already released and still closing count
    /// against the queue, so that a release does not set off another (the
    /// reconnecting client queues while our worker is still closing).
    fn release_for_waiting(&mut self, t: &Transport) -> bool {
        if self.released || self.config.keepalive_cliff != KeepAliveCliff::Release {
            return false;
        }
        let queued = t.queued_connections();
        if queued == 0 || t.now().saturating_duration_since(self.connected_at) < RELEASE_SLICE {
            return false;
        }
        let claimed = self
            .releasing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                (r < queued).then_some(r + 1)
            })
            .is_ok();
        if claimed {
            self.released = true;
            log::debug!("{queued} connections wait for a worker: giving this one up");
        }
        claimed
    }

    /// Consumes what it can of `buf`; returns how many bytes.
    fn process(&mut self, buf: &[u8], t: &mut Transport) -> usize {
        let mut pos = 0;
        loop {
            match self.state {
                State::Closed => return pos,
                State::Head => {
                    let rest = &buf[pos..];
                    if rest.is_empty() {
                        return pos;
                    }
                    match self.head(rest, t) {
                        Ok(HeadStep::Partial) => return pos,
                        Ok(HeadStep::Done { used, body }) => {
                            pos += used;
                            if let Some(reader) = body {
                                self.state = State::Body(reader);
                            }
                        }
                        Err(refused) => {
                            self.fail(t, &refused);
                            return pos;
                        }
                    }
                }
                State::Body(mut reader) => {
                    let advanced = reader.advance(&buf[pos..], self.config.max_body_bytes);
                    match advanced {
                        Ok((used, Progress::NeedMore)) => {
                            self.state = State::Body(reader);
                            return pos + used;
                        }
                        Ok((used, Progress::Done)) => {
                            pos += used;
                            self.state = State::Head;
                            self.answer_held(t, pos < buf.len());
                        }
                        Err(refused) => {
                            self.fail(t, &refused);
                            return pos;
                        }
                    }
                }
            }
        }
    }

    /// Parses one head from the front of `rest` and answers it at once if
    /// it has no body; otherwise holds it until the body is read.
    fn head(&mut self, rest: &[u8], t: &mut Transport) -> Result<HeadStep, Refused> {
        let max_bytes = self.config.max_header_bytes;
        let mut slots =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
        let slots = &mut slots[..self.config.max_headers.clamp(1, MAX_HEADERS_LIMIT)];
        let mut parsed = httparse::Request::new(&mut []);
        let used = match parsed.parse_with_uninit_headers(rest, slots) {
            Ok(httparse::Status::Partial) if rest.len() > max_bytes => {
                return Err(head_too_large(max_bytes));
            }
            Ok(httparse::Status::Partial) => return Ok(HeadStep::Partial),
            Ok(httparse::Status::Complete(used)) if used > max_bytes => {
                return Err(head_too_large(max_bytes));
            }
            Ok(httparse::Status::Complete(used)) => used,
            Err(e) => return Err(parse_error(e, rest)),
        };
        let request = to_request(&parsed);
        let framing = framing(&request, self.config.max_body_bytes)?;
        let body = match framing.body {
            BodyLength::None => {
                self.answer(&request, framing, t, used < rest.len());
                return Ok(HeadStep::Done { used, body: None });
            }
            BodyLength::Exactly(n) => BodyReader::Length(n),
            BodyLength::Chunked => BodyReader::chunked(self.config.max_header_bytes),
        };
        if framing.expect_continue {
            t.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.held.clear();
        self.held.extend_from_slice(&rest[..used]);
        self.held_framing = Some(framing);
        Ok(HeadStep::Done {
            used,
            body: Some(body),
        })
    }

    /// Answers the held request, whose body has just been read.
    fn answer_held(&mut self, t: &mut Transport, more_buffered: bool) {
        let held = std::mem::take(&mut self.held);
        let mut slots =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
        let slots = &mut slots[..self.config.max_headers.clamp(1, MAX_HEADERS_LIMIT)];
        let mut parsed = httparse::Request::new(&mut []);
        match (
            parsed.parse_with_uninit_headers(&held, slots),
            self.held_framing.take(),
        ) {
            (Ok(httparse::Status::Complete(_)), Some(framing)) => {
                let request = to_request(&parsed);
                self.answer(&request, framing, t, more_buffered);
            }
            // The head parsed once already; this cannot happen, but if it
            // did the client still gets an answer.
            _ => self.fail(
                t,
                &Refused::new(Status::INTERNAL_ERROR, "lost the request head"),
            ),
        }
        self.held = held;
    }

    /// Renders and writes the response to one request.
    fn answer(
        &mut self,
        request: &Request<'_>,
        framing: Framing,
        t: &mut Transport,
        more_buffered: bool,
    ) {
        self.response.reset();
        let allow = match render(&*self.resource, request, &mut self.response) {
            Rendered::Done => None,
            Rendered::NotAllowed => {
                self.response.reset();
                self.response.set_status(Status::METHOD_NOT_ALLOWED);
                self.response.write(b"405 Method Not Allowed\n");
                Some(self.resource.allowed_methods())
            }
        };
        let mut keep = framing.keep_alive;
        if keep && !more_buffered && self.release_for_waiting(t) {
            keep = false;
        }
        let connection = match (keep, request.version) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
            (true, Version::Http11) => ConnectionHeader::None,
        };
        write_response(
            t,
            &self.response,
            allow,
            connection,
            request.method == Method::Head,
        );
        self.served += 1;
        log::debug!(
            "\"{} {} HTTP/1.{}\" {} {}",
            request.method_token,
            request.target,
            u8::from(request.version == Version::Http11),
            self.response.status().code,
            self.response.body().len()
        );
        if !keep {
            self.close(t);
        }
    }

    /// Answers a refused request with its status and closes: after an
    /// error the connection's framing can no longer be trusted.
    fn fail(&mut self, t: &mut Transport, refused: &Refused) {
        log::info!(
            "{}: {}; closing the connection",
            refused.status,
            refused.why
        );
        self.response.reset();
        self.response.set_status(refused.status);
        self.response
            .write(format!("{}: {}\n", refused.status, refused.why).as_bytes());
        write_response(t, &self.response, None, ConnectionHeader::Close, false);
        self.served += 1;
        self.close(t);
    }

    fn close(&mut self, t: &mut Transport) {
        t.lose_connection();
        self.state = State::Closed;
        self.inbuf.clear();
    }

    /// After a callback: move the deadline to what the channel now waits for.
    fn update_deadline(&mut self, t: &mut Transport, answered: bool) {
        let now = t.now();
        let next = match self.state {
            State::Closed => return,
            State::Body(_) => self.config.header_timeout.map(|d| (now + d, Wait::Body)),
            State::Head if self.inbuf.is_empty() => {
                if !answered {
                    return;
                }
                self.idle_since = now;
                let release = self.config.keepalive_cliff == KeepAliveCliff::Release;
                // With no keep-alive timeout, an idle connection under
                // `release` still needs its timer, to look at the queue.
                let timeout = match self.config.keepalive_timeout {
                    Some(d) => Some(d),
                    None if release => Some(NEVER),
                    None => None,
                };
                timeout
                    .and_then(|d| now.checked_add(d))
                    .map(|at| (at, Wait::Idle))
            }
            State::Head => {
                let waiting_for_head = matches!(self.deadline, Some((_, Wait::Request)));
                if waiting_for_head && !answered {
                    return;
                }
                self.config.header_timeout.map(|d| (now + d, Wait::Request))
            }
        };
        self.set_deadline(next, now, t);
    }

    /// Records the deadline and makes sure a timer fires no later than it
    /// (or than the next idle poll).
    fn set_deadline(&mut self, deadline: Option<(Instant, Wait)>, now: Instant, t: &mut Transport) {
        self.deadline = deadline;
        let Some((at, wait)) = deadline else {
            return;
        };
        let wake = if wait == Wait::Idle && self.config.keepalive_cliff == KeepAliveCliff::Release {
            at.min(now + IDLE_POLL)
        } else {
            at
        };
        if matches!(self.timer, Some((_, armed)) if armed <= wake) {
            return;
        }
        if let Some((id, _)) = self.timer.take() {
            t.cancel_timer(id);
        }
        let delay = wake.saturating_duration_since(t.now());
        let id = t.call_later(delay, |c: &mut HttpChannel, t: &mut Transport| {
            c.on_timer(t)
        });
        self.timer = Some((id, wake));
    }

    /// The timer fired: act on the deadline if it passed, else arm again.
    fn on_timer(&mut self, t: &mut Transport) {
        self.timer = None;
        let Some((at, wait)) = self.deadline else {
            return;
        };
        if self.state == State::Closed {
            return;
        }
        let now = t.now();
        // Only a connection idle for a poll period is given up here: one
        // that just got its response may have its next request in flight,
        // and closing under it would fail that request.
        if wait == Wait::Idle
            && self.config.keepalive_cliff == KeepAliveCliff::Release
            && now.saturating_duration_since(self.idle_since) >= IDLE_POLL
            && self.release_for_waiting(t)
        {
            self.close(t);
            return;
        }
        if at <= now {
            self.expire(wait, t);
        } else {
            self.set_deadline(Some((at, wait)), now, t);
        }
    }

    fn expire(&mut self, wait: Wait, t: &mut Transport) {
        let timeout = |d: Option<Duration>| d.unwrap_or_default();
        match wait {
            Wait::Idle => {
                log::debug!(
                    "no request for {:?} (--keepalive-timeout); closing",
                    timeout(self.config.keepalive_timeout)
                );
                self.close(t);
            }
            Wait::Request if self.inbuf.is_empty() => {
                log::info!(
                    "no request within {:?} (--header-timeout); closing",
                    timeout(self.config.header_timeout)
                );
                self.close(t);
            }
            Wait::Request => {
                let why = format!(
                    "request head not complete within {:?} (--header-timeout)",
                    timeout(self.config.header_timeout)
                );
                self.fail(t, &Refused::new(Status::REQUEST_TIMEOUT, why));
            }
            Wait::Body => {
                let why = format!(
                    "request body stalled for {:?} (--header-timeout)",
                    timeout(self.config.header_timeout)
                );
                self.fail(t, &Refused::new(Status::REQUEST_TIMEOUT, why));
            }
        }
    }
}

fn head_too_large(max: usize) -> Refused {
    Refused::new(
        Status::HEADERS_TOO_LARGE,
        format!("request line and headers over {max} bytes (--max-header-bytes)"),
    )
}

/// The resource's view of a complete httparse head.
fn to_request<'a>(parsed: &'a httparse::Request<'_, 'a>) -> Request<'a> {
    let method_token = parsed.method.unwrap_or_default();
    Request {
        method: Method::from_token(method_token),
        method_token,
        target: parsed.path.unwrap_or_default(),
        version: if parsed.version == Some(0) {
            Version::Http10
        } else {
            Version::Http11
        },
        headers: parsed.headers,
    }
}

impl Protocol for HttpChannel {
    fn connection_made(&mut self, transport: &mut Transport) {
        let now = transport.now();
        self.connected_at = now;
        let deadline = self.config.header_timeout.map(|d| (now + d, Wait::Request));
        self.set_deadline(deadline, now, transport);
    }

    fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
        if self.state == State::Closed {
            return;
        }
        let before = self.served;
        if self.inbuf.is_empty() {
            // The common case: whole requests in one read, parsed in place.
            let used = self.process(data, transport);
            if self.state != State::Closed && used < data.len() {
                self.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            self.inbuf.extend_from_slice(data);
            let mut buf = std::mem::take(&mut self.inbuf);
            let used = self.process(&buf, transport);
            if self.state == State::Closed {
                buf.clear();
            } else {
                buf.drain(..used);
            }
            self.inbuf = buf;
        }
        self.update_deadline(transport, self.served != before);
    }

    fn connection_lost(&mut self, reason: &Reason) {
        if std::mem::take(&mut self.released) {
            self.releasing.fetch_sub(1, Ordering::SeqCst);
        }
        log::debug!("{} responses; {reason}", self.served);
    }

    fn log_prefix(&self) -> &'static str {
        "HTTPChannel"
    }
}
