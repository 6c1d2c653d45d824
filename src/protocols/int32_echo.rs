//! Int32 echo: every string with a 4-byte big-endian length prefix is sent
//! back the same way.
//!
//! The demo of [`crate::framing::prefixed`]. An announced length over the
//! maximum (99999 bytes unless `--max-string-length` says otherwise) is
//! logged and drops that connection only, before its body is read.
//!
//! ```text
//! $ printf '\0\0\0\x05hello' | nc -N localhost 1238 | od -c
//! 0000000  \0  \0  \0 005   h   e   l   l   o
//! ```

use crate::framing::prefixed::{Int32, Int32StringReceiver};
use crate::framing::string::{StringHandler, StringReceiver, StringTransport};
use crate::protocol::{FnFactory, Protocol};

/// Where `spindle serve int32-echo` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:1238";

/// Sends each string back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Int32Echo;

impl StringHandler for Int32Echo {
    fn string_received(&mut self, data: &[u8], strings: &mut StringTransport<'_>) {
        // What arrived under a 4-byte prefix fits one going out.
        if let Err(e) = strings.send_string(data) {
            log::error!("{e}");
        }
    }
}

/// An int32 echo connection accepting strings of at most `max_length`.
pub fn protocol(max_length: usize) -> Int32StringReceiver<Int32Echo> {
    StringReceiver::new(Int32::with_max_length(max_length), Int32Echo)
}

/// The factory (`Int32EchoFactory` in logs).
pub fn factory(max_length: usize) -> impl crate::Factory {
    FnFactory::new("Int32EchoFactory", move |_| {
        Box::new(protocol(max_length)) as Box<dyn Protocol>
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::prefixed::DEFAULT_MAX_PREFIXED_LENGTH;
    use crate::testing::assert_same_for_every_chunking;
    use crate::transport::Closing;

    #[test]
    fn echoes_strings_and_drops_a_peer_over_the_limit() {
        let make = || protocol(DEFAULT_MAX_PREFIXED_LENGTH);
        let input = b"\0\0\0\x05hello\0\0\0\0\0\0\0\x02\r\n";
        let out = assert_same_for_every_chunking(make, input);
        assert_eq!(out.output, input);
        let out = assert_same_for_every_chunking(make, b"\0\0\0\x01a\0\x01\x86\xa0");
        assert_eq!(out.output, b"\0\0\0\x01a");
        assert_eq!(out.closing, Closing::Lose);
        assert_eq!(make().log_prefix(), "Int32Echo");
    }
}
