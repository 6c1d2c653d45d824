//! Echo (RFC 862): every byte received is written back.
//!
//! The first server of Twisted's tutorials, and the one the benchmarks
//! measure: it does no work, so what it costs is the engine's cost.
//!
//! ```text
//! $ nc localhost 1234
//! hello
//! hello
//! ```

use crate::protocol::{FnFactory, Protocol};
use crate::transport::Transport;

/// Where `spindle serve echo` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:1234";

/// Writes back whatever arrives.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
        transport.write(data);
    }
}

/// The echo factory (`EchoFactory` in logs).
pub fn factory() -> impl crate::Factory {
    FnFactory::new("EchoFactory", |_| Box::new(Echo) as Box<dyn Protocol>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, assert_same_for_every_chunking};

    #[test]
    fn echoes_every_byte_in_every_chunking() {
        let input: Vec<u8> = (0..=255u8).chain(b"\r\n\0\xff".iter().copied()).collect();
        let out = assert_same_for_every_chunking(|| Echo, &input);
        assert_eq!(out.output, input);
        assert!(!Harness::new(Echo).is_closing());
    }
}
