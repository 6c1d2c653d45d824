//! Netstring echo: every netstring received is sent back as a netstring.
//!
//! The demo of [`crate::framing::netstring`]. A malformed frame or one
//! over the maximum (99999 bytes unless `--max-string-length` says
//! otherwise) is logged and drops that connection only.
//!
//! ```text
//! $ printf '5:hello,0:,' | nc -N localhost 1237
//! 5:hello,0:,
//! ```

use crate::framing::netstring::{Netstring, NetstringReceiver};
use crate::framing::string::{StringHandler, StringReceiver, StringTransport};
use crate::protocol::{FnFactory, Protocol};

/// Where `spindle serve netstring-echo` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:1237";

/// Sends each string back.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetstringEcho;

impl StringHandler for NetstringEcho {
    fn string_received(&mut self, data: &[u8], strings: &mut StringTransport<'_>) {
        // A netstring of any length can be written: this cannot fail.
        if let Err(e) = strings.send_string(data) {
            log::error!("{e}");
        }
    }
}

/// A netstring echo connection accepting strings of at most `max_length`.
pub fn protocol(max_length: usize) -> NetstringReceiver<NetstringEcho> {
    StringReceiver::new(Netstring::with_max_length(max_length), NetstringEcho)
}

/// The factory (`NetstringEchoFactory` in logs).
pub fn factory(max_length: usize) -> impl crate::Factory {
    FnFactory::new("NetstringEchoFactory", move |_| {
        Box::new(protocol(max_length)) as Box<dyn Protocol>
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::netstring::DEFAULT_MAX_NETSTRING_LENGTH;
    use crate::testing::assert_same_for_every_chunking;
    use crate::transport::Closing;

    #[test]
    fn echoes_netstrings_and_drops_a_malformed_peer() {
        let make = || protocol(DEFAULT_MAX_NETSTRING_LENGTH);
        let out = assert_same_for_every_chunking(make, b"5:hello,0:,3:\xff\0\n,");
        assert_eq!(out.output, b"5:hello,0:,3:\xff\0\n,");
        let out = assert_same_for_every_chunking(make, b"3:abc,junk");
        assert_eq!(out.output, b"3:abc,");
        assert_eq!(out.closing, Closing::Lose);
        assert_eq!(make().log_prefix(), "NetstringEcho");
    }
}
