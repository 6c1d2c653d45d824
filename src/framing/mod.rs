//! Framing helpers: whole messages out of a byte stream, however TCP cut
//! it (Twisted's `twisted.protocols.basic`).
//!
//! * [`line`](mod@line): [`LineReceiver`](line::LineReceiver) splits lines (exact
//!   delimiter or lenient `\r\n`/`\n`/`\r\0`), with raw mode, a maximum
//!   length and optional telnet filtering.
//! * [`telnet`]: removes telnet commands from a stream, across reads.
//! * [`string`]: [`StringReceiver`](string::StringReceiver) delivers
//!   length-framed strings to a [`StringHandler`](string::StringHandler),
//!   with the framing given by a codec:
//!   * [`netstring`]: `LEN:DATA,` (Twisted's `NetstringReceiver`),
//!   * [`prefixed`]: 1-, 2- or 4-byte big-endian length prefixes
//!     (Twisted's `Int8/16/32StringReceiver`).
//!
//! Each framer is a sans-IO state machine wrapped around a handler trait
//! with one required hook (`line_received`, ...) and default hooks for the
//! limits; sending mirrors receiving (`send_line`, ...).

pub mod line;
pub mod netstring;
pub mod prefixed;
pub mod string;
pub mod telnet;
