//! Line framing: [`LineReceiver`] splits the byte stream into lines and
//! hands each one to a [`LineHandler`] (Twisted's `LineReceiver`).
//!
//! # Roles
//!
//! * [`LineHandler`]: what *you* write — `line_received` and optional hooks
//!   (`connection_made`, `raw_data_received`, `line_length_exceeded`,
//!   `telnet_interrupt`, `connection_lost`).
//! * [`LineReceiver<H>`]: the [`Protocol`] a factory boxes. It frames the
//!   bytes and calls the handler; its public `handler` field is yours.
//! * [`LineTransport`]: what a hook is handed — the connection's
//!   [`Transport`] (it derefs to it: `write`, `lose_connection`, `peer`,
//!   `handle`, ...) plus [`send_line`](LineTransport::send_line),
//!   [`set_raw_mode`](LineTransport::set_raw_mode) and
//!   [`set_line_mode`](LineTransport::set_line_mode).
//! * [`LineConfig`]: the delimiter (exact bytes, `\r\n` by default, or
//!   [`Delimiter::Lenient`]), the maximum line length
//!   ([`DEFAULT_MAX_LINE_LENGTH`]) and telnet filtering.
//!
//! # Example
//!
//! ```
//! use spindle::framing::line::{LineConfig, LineHandler, LineReceiver, LineTransport};
//! use spindle::testing::Harness;
//! use spindle::{FnFactory, Protocol};
//!
//! /// Answers each line with its length; `quit` says bye and closes.
//! struct Counter;
//!
//! impl LineHandler for Counter {
//!     fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
//!         if line == b"quit" {
//!             lines.send_line(b"bye");
//!             lines.lose_connection(); // a Transport method, through Deref
//!         } else {
//!             lines.send_line(line.len().to_string().as_bytes());
//!         }
//!     }
//! }
//!
//! // In a server: box a LineReceiver around a fresh handler per connection.
//! let _factory = FnFactory::new("CounterFactory", |_| {
//!     Box::new(LineReceiver::with_config(Counter, LineConfig::lenient())) as Box<dyn Protocol>
//! });
//!
//! // In a test: feed bytes, read what came out.
//! let mut h = Harness::new(LineReceiver::new(Counter));
//! h.connect();
//! h.feed(b"hello\r\nab");
//! h.feed(b"c\r\nquit\r\nnever seen\r\n");
//! assert_eq!(h.take_output(), b"5\r\n3\r\nbye\r\n");
//! assert!(h.is_closing());
//! ```
//!
//! # Rules (Twisted's, except where noted)
//!
//! * **Delimiter.** Only the whole delimiter ends a line: with the default
//!   `\r\n`, `a\nb\r\n` is the single line `a\nb`. [`Delimiter::Lenient`]
//!   (for terminals) ends a line at `\r\n`, `\n` or telnet's `\r\0`;
//!   [`send_line`](LineTransport::send_line) then writes `\r\n`.
//! * **Closing stops delivery.** After each line the receiver checks
//!   whether the handler asked to close; if so, nothing more is delivered,
//!   so `quit\r\nmore\r\n` never shows `more`.
//! * **Maximum length** ([`LineConfig::max_length`], default 16384). A line
//!   of exactly `max_length` bytes is accepted. `line_length_exceeded`
//!   is called for a complete line longer than that, or when the bytes held
//!   without a delimiter reach `max_length + delimiter length` (16386 with
//!   `\r\n`, as in Twisted; 2 counts for the lenient delimiter). The default
//!   hook logs and closes. *Unlike Twisted*, a hook that keeps the
//!   connection open gets the rest of that line skipped (up to its
//!   delimiter), and later lines are delivered normally, so what a handler
//!   sees never depends on how TCP cut the stream.
//! * **Raw mode.** [`set_raw_mode`](LineTransport::set_raw_mode) makes
//!   every later byte, starting with those already buffered after the
//!   current line, go to `raw_data_received`.
//!   [`set_line_mode(extra)`](LineTransport::set_line_mode) switches back;
//!   `extra` (bytes the raw handler did not use) is framed as lines before
//!   anything received after it. No byte is lost or delivered twice.
//! * **Telnet** ([`LineConfig::telnet`], on in [`LineConfig::lenient`]):
//!   commands are removed before framing (see [`super::telnet`]), option
//!   negotiations are refused in their place in the stream (`DO x` gets
//!   `WONT x`, `WILL x` gets `DONT x`, as Twisted's telnet does; so a
//!   client's `DO TIMING-MARK` after Ctrl-C is answered and its terminal
//!   shows output again), `IAC DO BINARY` is asked once the peer has sent
//!   a command of its own (so UTF-8 typed in telnet arrives as typed; `nc`
//!   never sees it), and `IAC IP` (Ctrl-C) calls `telnet_interrupt`,
//!   whose default closes the connection politely (a flushed close, not a
//!   reset). Twisted's telnet ignores `IAC IP`; a user pressing Ctrl-C
//!   expects to get out (RFC 854: "interrupt, abort, or terminate").
//!   An `IAC IP` in the middle of a UTF-8 character is not Ctrl-C but a
//!   byte the client mangled, and is put back (the rule is in
//!   [`super::telnet`]).
//!
//! # Reaching the handler from timers and other threads
//!
//! The factory boxes a `LineReceiver<H>`, so that is the type a timer or a
//! [`ConnHandle::call`] closure names. [`LineReceiver::with_handler`] gives
//! such a closure the handler and a [`LineTransport`];
//! [`LineTransport::call_handler_later`] and [`call_handler`] do it for you:
//!
//! ```
//! # use spindle::framing::line::{call_handler, LineHandler, LineReceiver, LineTransport};
//! # use std::time::Duration;
//! struct Reminder;
//! impl LineHandler for Reminder {
//!     fn connection_made(&mut self, lines: &mut LineTransport<'_>) {
//!         lines.call_handler_later(Duration::from_secs(5), |_me: &mut Reminder, lines| {
//!             lines.send_line(b"still there?");
//!         });
//!         let handle = lines.handle();
//!         std::thread::spawn(move || {
//!             let _ = call_handler(&handle, |_me: &mut Reminder, lines| lines.send_line(b"hi"));
//!         });
//!     }
//!     fn line_received(&mut self, _line: &[u8], _lines: &mut LineTransport<'_>) {}
//! }
//! ```

use std::any::type_name;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use memchr::{memchr, memchr2};

use super::telnet::TelnetFilter;
use crate::protocol::{Protocol, Reason, short_type_name};
use crate::transport::{ConnHandle, HandleError, TimerId, Transport};

/// Twisted's `LineReceiver.MAX_LENGTH`: the longest line accepted, in
/// bytes, delimiter excluded.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16384;

/// The default delimiter, and what lenient mode sends.
pub const CRLF: &[u8] = b"\r\n";

/// What ends a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delimiter {
    /// Exactly these bytes (never empty), e.g. `\r\n` or `\n`.
    Exact(Vec<u8>),
    /// `\r\n`, `\n` or telnet's `\r\0`, whichever comes first; lines are
    /// sent with `\r\n`. For protocols people type at.
    Lenient,
}

impl Delimiter {
    /// The bytes [`LineTransport::send_line`] appends.
    pub fn outgoing(&self) -> &[u8] {
        match self {
            Delimiter::Exact(d) => d,
            Delimiter::Lenient => CRLF,
        }
    }

    /// The longest byte sequence that ends a line.
    fn longest(&self) -> usize {
        match self {
            // An empty `Exact` never matches; count it as 1 so the length
            // limit still applies.
            Delimiter::Exact(d) => d.len().max(1),
            Delimiter::Lenient => 2,
        }
    }

    /// The first line end in `input[scan..]`, for a line starting at
    /// `line_start` (≤ `scan`): `(end of the line, start of the next)`.
    ///
    /// Line ends are found by their *last* byte, looking back for the rest,
    /// so bytes before `scan` are never searched again and a delimiter cut
    /// across reads is still seen. For a fixed-length delimiter, the first
    /// match to end is the first to start, as with a forward search.
    fn find(&self, input: &[u8], line_start: usize, scan: usize) -> Option<(usize, usize)> {
        let mut from = scan;
        match self {
            Delimiter::Exact(d) => {
                let (&last, head) = d.split_last()?;
                while let Some(i) = memchr(last, &input[from..]) {
                    let end = from + i + 1;
                    if end >= line_start + d.len() && &input[end - d.len()..end - 1] == head {
                        return Some((end - d.len(), end));
                    }
                    from = end;
                }
                None
            }
            Delimiter::Lenient => {
                while let Some(i) = memchr2(b'\n', 0, &input[from..]) {
                    let pos = from + i;
                    let after_cr = pos > line_start && input[pos - 1] == b'\r';
                    if input[pos] == b'\n' {
                        return Some((if after_cr { pos - 1 } else { pos }, pos + 1));
                    }
                    if after_cr {
                        return Some((pos - 1, pos + 1));
                    }
                    from = pos + 1;
                }
                None
            }
        }
    }
}

/// How a [`LineReceiver`] frames lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// What ends a line (default: exactly `\r\n`).
    pub delimiter: Delimiter,
    /// The longest line accepted, delimiter excluded (default
    /// [`DEFAULT_MAX_LINE_LENGTH`]).
    pub max_length: usize,
    /// Remove telnet commands before framing, refuse option negotiations
    /// and report Ctrl-C (default off; on in [`LineConfig::lenient`]).
    pub telnet: bool,
}

impl Default for LineConfig {
    fn default() -> Self {
        LineConfig {
            delimiter: Delimiter::Exact(CRLF.to_vec()),
            max_length: DEFAULT_MAX_LINE_LENGTH,
            telnet: false,
        }
    }
}

impl LineConfig {
    /// For terminals: lenient line ends and telnet filtering.
    pub fn lenient() -> Self {
        LineConfig {
            delimiter: Delimiter::Lenient,
            telnet: true,
            ..LineConfig::default()
        }
    }

    /// This config with lines ending exactly at `delimiter`.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty: no stream could be split on it. This is a
    /// programming error, never caused by a peer.
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        self.delimiter = Delimiter::Exact(delimiter.to_vec());
        self
    }

    /// This config with another maximum line length.
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    /// This config with telnet filtering on or off.
    pub fn with_telnet(mut self, telnet: bool) -> Self {
        self.telnet = telnet;
        self
    }
}

/// A line protocol's behaviour: the hooks [`LineReceiver`] calls, one at a
/// time, like [`Protocol`]'s callbacks. Only `line_received` is required.
pub trait LineHandler: Send + 'static {
    /// The connection is up.
    fn connection_made(&mut self, lines: &mut LineTransport<'_>) {
        let _ = lines;
    }

    /// One complete line, without its delimiter.
    fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>);

    /// Bytes received in raw mode, cut at arbitrary places. The default
    /// logs and drops them: a handler that calls `set_raw_mode` overrides
    /// this.
    fn raw_data_received(&mut self, data: &[u8], lines: &mut LineTransport<'_>) {
        let _ = lines;
        log::warn!(
            "{} raw bytes dropped: this protocol has no raw mode handler",
            data.len()
        );
    }

    /// A line exceeded [`LineConfig::max_length`]. `data` is the start of
    /// it: the whole line if it was complete, else what was buffered (at
    /// least `max_length + 1` bytes). The default logs and closes; if the
    /// connection stays open, the rest of the line is skipped.
    fn line_length_exceeded(&mut self, data: &[u8], lines: &mut LineTransport<'_>) {
        log::warn!(
            "line too long ({} bytes or more, limit {}): dropping the connection",
            data.len(),
            lines.max_length()
        );
        lines.lose_connection();
    }

    /// The telnet client sent `IAC IP` (the user pressed Ctrl-C). Only
    /// with [`LineConfig::telnet`]. The default closes the connection after
    /// flushing what was written.
    fn telnet_interrupt(&mut self, lines: &mut LineTransport<'_>) {
        log::info!("telnet interrupt (Ctrl-C): closing the connection");
        lines.lose_connection();
    }

    /// The connection is gone; called once, last.
    fn connection_lost(&mut self, reason: &Reason) {
        let _ = reason;
    }

    /// The name in log prefixes. Defaults to the handler type's name, so
    /// a `LineReceiver<Chat>` logs as `Chat`.
    fn log_prefix(&self) -> &'static str {
        short_type_name(type_name::<Self>())
    }
}

/// Line or raw mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Line,
    Raw,
}

/// What hooks may change about framing.
#[derive(Debug)]
struct Control {
    mode: Mode,
    /// Bytes handed back by `set_line_mode`, to frame before the rest.
    extra: Option<Vec<u8>>,
}

/// A connection as a [`LineHandler`] sees it: the [`Transport`] (through
/// `Deref`) plus line operations. See the [module docs](self).
pub struct LineTransport<'a> {
    transport: &'a mut Transport,
    config: &'a LineConfig,
    control: &'a mut Control,
}

impl LineTransport<'_> {
    /// Writes `line` and the delimiter, together.
    pub fn send_line(&mut self, line: &[u8]) {
        self.transport
            .write_sequence(&[line, self.config.delimiter.outgoing()]);
    }

    /// From now on, bytes go to `raw_data_received` — starting with those
    /// already received after the current line.
    pub fn set_raw_mode(&mut self) {
        self.control.mode = Mode::Raw;
    }

    /// Back to lines. `extra` (may be empty) is framed first: pass the
    /// bytes of the last raw chunk that belong to the lines that follow.
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        self.control.mode = Mode::Line;
        if !extra.is_empty() {
            self.control
                .extra
                .get_or_insert_with(Vec::new)
                .extend_from_slice(extra);
        }
    }

    /// Whether raw mode is on.
    pub fn is_raw_mode(&self) -> bool {
        self.control.mode == Mode::Raw
    }

    /// The framing settings.
    pub fn config(&self) -> &LineConfig {
        self.config
    }

    /// The longest line accepted.
    pub fn max_length(&self) -> usize {
        self.config.max_length
    }

    /// The underlying transport (also reachable through `Deref`).
    pub fn transport(&mut self) -> &mut Transport {
        self.transport
    }

    /// Runs `f` with the handler after `delay` (a timer on
    /// [`Transport::call_later`] for a `LineReceiver<H>`).
    pub fn call_handler_later<H, F>(&mut self, delay: Duration, f: F) -> TimerId
    where
        H: LineHandler,
        F: FnOnce(&mut H, &mut LineTransport<'_>) + Send + 'static,
    {
        self.transport
            .call_later(delay, move |p: &mut LineReceiver<H>, t: &mut Transport| {
                p.with_handler(t, f)
            })
    }
}

impl Deref for LineTransport<'_> {
    type Target = Transport;

    fn deref(&self) -> &Transport {
        self.transport
    }
}

impl DerefMut for LineTransport<'_> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.transport
    }
}

/// Runs `f` with the handler of the `LineReceiver<H>` that `handle`
/// reaches, on its owner, from any thread ([`ConnHandle::call`]).
pub fn call_handler<H, F>(handle: &ConnHandle, f: F) -> Result<(), HandleError>
where
    H: LineHandler,
    F: FnOnce(&mut H, &mut LineTransport<'_>) + Send + 'static,
{
    handle.call(move |p: &mut LineReceiver<H>, t: &mut Transport| p.with_handler(t, f))
}

/// Why framing of one input stopped.
enum Stop {
    /// Everything before `line_start` is used; the rest is a partial line,
    /// searched up to `scan`.
    Exhausted { line_start: usize, scan: usize },
    /// A hook called `set_line_mode(extra)`: frame the extra bytes, then
    /// `input[rest..]`.
    Extra { rest: usize },
    /// The handler asked to close: drop the rest.
    Closed,
}

/// The framing state that is not the handler.
#[derive(Debug)]
struct Framer {
    config: LineConfig,
    control: Control,
    /// Skipping the rest of an overlong line.
    skipping: bool,
}

impl Framer {
    /// Frames `input` from `line_start`, calling the handler, until the
    /// input is used up or a hook changes what must happen next.
    fn run<H: LineHandler>(
        &mut self,
        input: &[u8],
        mut line_start: usize,
        mut scan: usize,
        handler: &mut H,
        transport: &mut Transport,
    ) -> Stop {
        let longest = self.config.delimiter.longest();
        loop {
            if transport.is_disconnecting() {
                return Stop::Closed;
            }
            if self.control.extra.is_some() {
                return Stop::Extra { rest: line_start };
            }
            if transport.is_producing_paused() {
                // The rest of this read waits in the buffer for
                // `producing_resumed`: nothing more is delivered while
                // paused, and the engine reads nothing more meanwhile.
                return Stop::Exhausted {
                    line_start,
                    scan: scan.max(line_start),
                };
            }
            let mut lines = LineTransport {
                transport: &mut *transport,
                config: &self.config,
                control: &mut self.control,
            };
            if lines.control.mode == Mode::Raw {
                self.skipping = false;
                if line_start == input.len() {
                    return Stop::Exhausted {
                        line_start,
                        scan: line_start,
                    };
                }
                let data = &input[line_start..];
                line_start = input.len();
                handler.raw_data_received(data, &mut lines);
                continue;
            }
            match self
                .config
                .delimiter
                .find(input, line_start, scan.max(line_start))
            {
                Some((end, next)) => {
                    let line = &input[line_start..end];
                    line_start = next;
                    scan = next;
                    if self.skipping {
                        self.skipping = false;
                    } else if line.len() > self.config.max_length {
                        handler.line_length_exceeded(line, &mut lines);
                    } else {
                        handler.line_received(line, &mut lines);
                    }
                }
                None => {
                    scan = input.len();
                    let pending = input.len() - line_start;
                    // Keep the bytes that could begin a delimiter, so one
                    // cut across reads is still recognised.
                    let keep = pending.min(longest - 1);
                    if self.skipping {
                        line_start = input.len() - keep;
                    } else if pending >= self.config.max_length + longest {
                        let data = &input[line_start..];
                        line_start = input.len() - keep;
                        self.skipping = true;
                        handler.line_length_exceeded(data, &mut lines);
                        if lines.control.mode == Mode::Raw {
                            line_start = input.len();
                        }
                        continue;
                    }
                    return Stop::Exhausted { line_start, scan };
                }
            }
        }
    }
}

/// Frames a connection's bytes into lines for a [`LineHandler`]. This is
/// the [`Protocol`] a factory boxes; see the [module docs](self).
pub struct LineReceiver<H> {
    /// The protocol's own state and hooks.
    pub handler: H,
    framer: Framer,
    /// A partial line (or, after a hook's `set_line_mode`, bytes to frame).
    buf: Vec<u8>,
    /// How much of `buf` was already searched for a line end.
    scan: usize,
    telnet: Option<TelnetFilter>,
    /// Reused output of the telnet filter.
    filtered: Vec<u8>,
    /// The telnet filter's answer to a negotiation, sent in its place.
    replies: Vec<u8>,
}

impl<H: LineHandler> LineReceiver<H> {
    /// Frames lines for `handler` with the default config (`\r\n`, 16384
    /// bytes, no telnet filtering), as Twisted's `LineReceiver`.
    pub fn new(handler: H) -> Self {
        LineReceiver::with_config(handler, LineConfig::default())
    }

    /// Frames lines for `handler` as `config` says.
    pub fn with_config(handler: H, config: LineConfig) -> Self {
        LineReceiver {
            handler,
            telnet: config.telnet.then(TelnetFilter::new),
            framer: Framer {
                config,
                control: Control {
                    mode: Mode::Line,
                    extra: None,
                },
                skipping: false,
            },
            buf: Vec::new(),
            scan: 0,
            filtered: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// The framing settings.
    pub fn config(&self) -> &LineConfig {
        &self.framer.config
    }

    /// Whether raw mode is on.
    pub fn is_raw_mode(&self) -> bool {
        self.framer.control.mode == Mode::Raw
    }

    /// Bytes received but not yet delivered (a partial line).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the line buffer and returns what it held (Twisted's
    /// `clearLineBuffer`).
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        self.scan = 0;
        std::mem::take(&mut self.buf)
    }

    /// Runs `f` with the handler and a [`LineTransport`], then carries out
    /// what it asked for (a switch to raw mode delivers the buffered bytes;
    /// `set_line_mode(extra)` frames `extra`). Use it from timers and
    /// [`ConnHandle::call`] closures that name `LineReceiver<H>`.
    pub fn with_handler<R>(
        &mut self,
        transport: &mut Transport,
        f: impl FnOnce(&mut H, &mut LineTransport<'_>) -> R,
    ) -> R {
        let was_paused = transport.is_producing_paused();
        let result = {
            let mut lines = LineTransport {
                transport: &mut *transport,
                config: &self.framer.config,
                control: &mut self.framer.control,
            };
            f(&mut self.handler, &mut lines)
        };
        if transport.is_disconnecting() {
            self.buf.clear();
            self.framer.control.extra = None;
        } else if self.framer.control.extra.is_some()
            || (self.framer.control.mode == Mode::Raw && !self.buf.is_empty())
            || (was_paused && !transport.is_producing_paused() && !self.buf.is_empty())
        {
            self.run_buffer(transport);
        }
        result
    }

    /// Frames bytes that passed the telnet filter (if any).
    fn feed(&mut self, data: &[u8], transport: &mut Transport) {
        if !self.buf.is_empty() {
            self.buf.extend_from_slice(data);
            self.run_buffer(transport);
            return;
        }
        // Nothing buffered: frame straight from `data`, and copy only the
        // partial line left at the end.
        match self.framer.run(data, 0, 0, &mut self.handler, transport) {
            Stop::Exhausted { line_start, scan } => {
                self.buf.extend_from_slice(&data[line_start..]);
                self.scan = scan - line_start;
            }
            Stop::Extra { rest } => {
                self.buf.extend_from_slice(&data[rest..]);
                self.run_buffer(transport);
            }
            Stop::Closed => {}
        }
    }

    /// Frames what is in `buf` (after any extra bytes a hook handed back).
    fn run_buffer(&mut self, transport: &mut Transport) {
        loop {
            if let Some(mut extra) = self.framer.control.extra.take() {
                extra.extend_from_slice(&self.buf);
                self.buf = extra;
                self.scan = 0;
            }
            let mut buf = std::mem::take(&mut self.buf);
            match self
                .framer
                .run(&buf, 0, self.scan, &mut self.handler, transport)
            {
                Stop::Exhausted { line_start, scan } => {
                    buf.drain(..line_start);
                    self.buf = buf;
                    self.scan = scan - line_start;
                    return;
                }
                Stop::Extra { rest } => {
                    buf.drain(..rest);
                    self.buf = buf;
                    self.scan = 0;
                }
                Stop::Closed => {
                    self.scan = 0;
                    self.framer.control.extra = None;
                    return;
                }
            }
        }
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, transport: &mut Transport) {
        self.with_handler(transport, |h, lines| h.connection_made(lines));
    }

    fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
        let Some(telnet) = self.telnet.as_mut() else {
            self.feed(data, transport);
            return;
        };
        if telnet.is_idle() && memchr(super::telnet::IAC, data).is_none() {
            telnet.note_data(data);
            self.feed(data, transport);
            return;
        }
        let mut rest = data;
        while !rest.is_empty() && !transport.is_disconnecting() {
            let Some(telnet) = self.telnet.as_mut() else {
                return;
            };
            let mut clean = std::mem::take(&mut self.filtered);
            clean.clear();
            self.replies.clear();
            let filtered = telnet.filter_answering(rest, &mut clean, &mut self.replies);
            rest = &rest[filtered.consumed..];
            self.feed(&clean, transport);
            self.filtered = clean;
            // The answer goes after whatever the data before it produced
            // (RFC 860's "appropriate place" for a timing mark).
            if !self.replies.is_empty() && !transport.is_disconnecting() {
                transport.write(&self.replies);
            }
            if filtered.interrupt && !transport.is_disconnecting() {
                self.with_handler(transport, |h, lines| h.telnet_interrupt(lines));
            }
        }
    }

    /// Frames the lines held back while paused (as Twisted's
    /// `LineReceiver.resumeProducing` does), up to the next pause.
    fn producing_resumed(&mut self, transport: &mut Transport) {
        if !self.buf.is_empty() && !transport.is_disconnecting() {
            self.run_buffer(transport);
        }
    }

    fn connection_lost(&mut self, reason: &Reason) {
        self.handler.connection_lost(reason);
    }

    fn log_prefix(&self) -> &'static str {
        self.handler.log_prefix()
    }
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
