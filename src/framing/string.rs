//! Length-framed strings: [`StringReceiver`] cuts the byte stream into the
//! strings a [`Codec`] finds (netstrings, or 1/2/4-byte length prefixes)
//! and hands each to a [`StringHandler`].
//!
//! One receiver serves every string codec, so netstrings and
//! length-prefixed strings keep the same hooks and the same rules:
//!
//! * After each string the receiver checks whether the handler asked to
//!   close; if so nothing more is delivered. (Twisted's `IntNStringReceiver`
//!   keeps delivering the strings already buffered; Spindle stops, as its
//!   line receiver does.)
//! * An announced length over the codec's maximum calls
//!   `length_limit_exceeded` at once, before any of the body arrives; a
//!   frame the codec cannot parse calls `frame_error`. Both default to a
//!   log line and a close. If the handler keeps the connection open,
//!   length-prefixed streams skip the refused body and go on; a netstring
//!   stream cannot be trusted again and later bytes are dropped (Twisted's
//!   `brokenPeer`).
//! * `send_string` returns [`StringTooLong`] instead of writing a frame
//!   whose length the prefix cannot hold.
//!
//! See [`super::netstring`] and [`super::prefixed`] for the codecs and an
//! example.

use std::any::type_name;
use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::protocol::{Protocol, Reason, short_type_name};
use crate::transport::{ConnHandle, HandleError, Transport};

/// Why a frame could not be parsed (netstrings; length prefixes cannot be
/// malformed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame does not start with a decimal length (`abc`, `:`, ` 3:`,
    /// `+3:`, `-1:`). Holds the byte found.
    NoLength(u8),
    /// The length has a leading zero (`05:`, `00:`).
    LeadingZero,
    /// The length is followed by this byte instead of `:` (`3;abc,`).
    NoColon(u8),
    /// The payload is followed by this byte instead of `,` (`3:abcX`).
    NoComma(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NoLength(b) => {
                write!(
                    f,
                    "malformed netstring: expected a length, got {:?}",
                    *b as char
                )
            }
            FrameError::LeadingZero => write!(f, "malformed netstring: length with a leading zero"),
            FrameError::NoColon(b) => write!(
                f,
                "malformed netstring: expected ':' after the length, got {:?}",
                *b as char
            ),
            FrameError::NoComma(b) => write!(
                f,
                "malformed netstring: expected ',' after the payload, got {:?}",
                *b as char
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// A string too long for the codec's length prefix; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringTooLong {
    /// The string's length.
    pub length: usize,
    /// The longest string the prefix can announce.
    pub limit: u64,
}

impl fmt::Display for StringTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {}-byte string does not fit the length prefix (at most {} bytes)",
            self.length, self.limit
        )
    }
}

impl std::error::Error for StringTooLong {}

/// What a [`Codec`] found at the start of the unconsumed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame: the string is `input[start..end]`, the frame ends at
    /// `next`.
    Frame {
        /// Where the string starts.
        start: usize,
        /// Where the string ends.
        end: usize,
        /// Where the next frame starts.
        next: usize,
    },
    /// Not enough bytes yet; nothing is wrong.
    Incomplete,
    /// The frame announces `length` bytes (at least: a netstring may have
    /// more digits coming), over the maximum.
    TooLong {
        /// The length announced (so far).
        length: u64,
        /// To resynchronise: bytes of header to drop and then body bytes
        /// to skip. `None`: the stream cannot be resynchronised.
        skip: Option<(usize, u64)>,
    },
    /// The frame is malformed.
    Malformed(FrameError),
}

/// A string framing: finds frames in input and writes them.
pub trait Codec: Send + 'static {
    /// Looks at the unconsumed input, which starts at a frame boundary.
    /// Must not keep state between calls: the receiver may call it again
    /// with the same bytes and more after them.
    fn decode(&self, input: &[u8]) -> Decoded;

    /// Writes `data` as one frame, or refuses without writing.
    fn encode(&self, data: &[u8], transport: &mut Transport) -> Result<(), StringTooLong>;

    /// The longest string accepted from a peer.
    fn max_length(&self) -> usize;
}

/// A string protocol's behaviour; only `string_received` is required.
pub trait StringHandler: Send + 'static {
    /// The connection is up.
    fn connection_made(&mut self, strings: &mut StringTransport<'_>) {
        let _ = strings;
    }

    /// One whole string.
    fn string_received(&mut self, data: &[u8], strings: &mut StringTransport<'_>);

    /// The peer announced `length` bytes, over the maximum. The default
    /// logs and closes.
    fn length_limit_exceeded(&mut self, length: u64, strings: &mut StringTransport<'_>) {
        log::warn!(
            "string of {length} bytes announced, limit {}: dropping the connection",
            strings.max_length()
        );
        strings.lose_connection();
    }

    /// The peer sent a malformed frame. The default logs and closes.
    fn frame_error(&mut self, error: &FrameError, strings: &mut StringTransport<'_>) {
        log::warn!("{error}: dropping the connection");
        strings.lose_connection();
    }

    /// The connection is gone; called once, last.
    fn connection_lost(&mut self, reason: &Reason) {
        let _ = reason;
    }

    /// The name in log prefixes; defaults to the handler type's name.
    fn log_prefix(&self) -> &'static str {
        short_type_name(type_name::<Self>())
    }
}

/// A connection as a [`StringHandler`] sees it: the [`Transport`]
/// (through `Deref`) plus [`send_string`](StringTransport::send_string).
pub struct StringTransport<'a> {
    transport: &'a mut Transport,
    codec: &'a dyn Codec,
}

impl StringTransport<'_> {
    /// Writes `data` as one frame; refuses a string the prefix cannot
    /// announce (netstrings never refuse).
    pub fn send_string(&mut self, data: &[u8]) -> Result<(), StringTooLong> {
        self.codec.encode(data, self.transport)
    }

    /// The longest string accepted from the peer.
    pub fn max_length(&self) -> usize {
        self.codec.max_length()
    }

    /// The underlying transport (also reachable through `Deref`).
    pub fn transport(&mut self) -> &mut Transport {
        self.transport
    }
}

impl Deref for StringTransport<'_> {
    type Target = Transport;

    fn deref(&self) -> &Transport {
        self.transport
    }
}

impl DerefMut for StringTransport<'_> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.transport
    }
}

/// Runs `f` with the handler of the `StringReceiver<C, H>` that `handle`
/// reaches, on its owner ([`ConnHandle::call`]).
pub fn call_handler<C, H, F>(handle: &ConnHandle, f: F) -> Result<(), HandleError>
where
    C: Codec,
    H: StringHandler,
    F: FnOnce(&mut H, &mut StringTransport<'_>) + Send + 'static,
{
    handle.call(move |p: &mut StringReceiver<C, H>, t: &mut Transport| p.with_handler(t, f))
}

/// Where the receiver is in the stream, besides its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary, or inside a frame being buffered.
    Framing,
    /// Skipping this many body bytes of a refused frame.
    Skipping(u64),
    /// The stream cannot be trusted: every byte is dropped.
    Broken,
}

/// Frames a connection's bytes into strings for a [`StringHandler`], as
/// its [`Codec`] says. This is the [`Protocol`] a factory boxes.
pub struct StringReceiver<C, H> {
    /// The protocol's own state and hooks.
    pub handler: H,
    codec: C,
    state: State,
    /// Unconsumed bytes: the start of a frame.
    buf: Vec<u8>,
}

impl<C: Codec, H: StringHandler> StringReceiver<C, H> {
    /// Frames strings for `handler` with `codec`.
    pub fn new(codec: C, handler: H) -> Self {
        StringReceiver {
            handler,
            codec,
            state: State::Framing,
            buf: Vec::new(),
        }
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// Bytes received but not yet delivered (part of a frame).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Runs `f` with the handler and a [`StringTransport`], for timers and
    /// [`ConnHandle::call`] closures that name `StringReceiver<C, H>`.
    pub fn with_handler<R>(
        &mut self,
        transport: &mut Transport,
        f: impl FnOnce(&mut H, &mut StringTransport<'_>) -> R,
    ) -> R {
        let mut strings = StringTransport {
            transport,
            codec: &self.codec,
        };
        f(&mut self.handler, &mut strings)
    }

    /// Delivers every whole frame in `input`; returns how many bytes were
    /// used (the rest is the start of a frame).
    fn run(&mut self, input: &[u8], transport: &mut Transport) -> usize {
        let mut at = 0;
        loop {
            if transport.is_disconnecting() {
                return input.len();
            }
            match self.state {
                State::Broken => return input.len(),
                State::Skipping(left) => {
                    let here = (input.len() - at) as u64;
                    if here < left {
                        self.state = State::Skipping(left - here);
                        return input.len();
                    }
                    // `left <= here`, which is a usize.
                    at += left as usize;
                    self.state = State::Framing;
                }
                State::Framing => {}
            }
            let mut strings = StringTransport {
                transport: &mut *transport,
                codec: &self.codec,
            };
            match self.codec.decode(&input[at..]) {
                Decoded::Frame { start, end, next } => {
                    let data = &input[at + start..at + end];
                    at += next;
                    self.handler.string_received(data, &mut strings);
                }
                Decoded::Incomplete => return at,
                Decoded::TooLong { length, skip } => {
                    self.state = match skip {
                        Some((header, body)) => {
                            at += header;
                            State::Skipping(body)
                        }
                        None => State::Broken,
                    };
                    self.handler.length_limit_exceeded(length, &mut strings);
                }
                Decoded::Malformed(error) => {
                    self.state = State::Broken;
                    self.handler.frame_error(&error, &mut strings);
                }
            }
        }
    }
}

impl<C: Codec, H: StringHandler> Protocol for StringReceiver<C, H> {
    fn connection_made(&mut self, transport: &mut Transport) {
        self.with_handler(transport, |h, strings| h.connection_made(strings));
    }

    fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
        if self.buf.is_empty() {
            // Frame straight from `data`; copy only an incomplete frame.
            let used = self.run(data, transport);
            self.buf.extend_from_slice(&data[used..]);
        } else {
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let used = self.run(&buf, transport);
            self.buf = buf;
            self.buf.drain(..used);
        }
        if self.state == State::Broken || transport.is_disconnecting() {
            self.buf.clear();
        }
    }

    fn connection_lost(&mut self, reason: &Reason) {
        self.handler.connection_lost(reason);
    }

    fn log_prefix(&self) -> &'static str {
        self.handler.log_prefix()
    }
}
