//! The tutorial's connection-counting echo: on connect it says how many
//! connections are open (itself included), then echoes.
//!
//! ```text
//! $ nc localhost 1235
//! welcome! there are currently 1 open connections.
//! ```
//!
//! The count lives in the factory and is shared by every connection, which
//! is why this protocol cannot keep its meaning on the process-per-connection
//! model. As in Twisted, the count falls in `connection_lost`, which runs
//! after the client already saw EOF: a client connecting right after another
//! left may still see the old count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::protocol::{Addr, Factory, Protocol, Reason, Refusal};
use crate::transport::Transport;

/// Where `spindle serve welcome` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:1235";

/// Greets with the open-connection count, then echoes.
#[derive(Debug)]
pub struct Welcome {
    open: Arc<AtomicUsize>,
    counted: bool,
}

impl Protocol for Welcome {
    fn connection_made(&mut self, transport: &mut Transport) {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.counted = true;
        let greeting = format!("welcome! there are currently {now} open connections.\n");
        transport.write(greeting.as_bytes());
    }

    fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
        transport.write(data);
    }

    fn connection_lost(&mut self, _reason: &Reason) {
        if std::mem::take(&mut self.counted) {
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Holds the shared count (`WelcomeFactory` in logs).
#[derive(Debug, Default)]
pub struct WelcomeFactory {
    open: Arc<AtomicUsize>,
}

impl WelcomeFactory {
    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Factory for WelcomeFactory {
    fn name(&self) -> &str {
        "WelcomeFactory"
    }

    /// The open-connection count is shared by every connection.
    fn shares_state(&self) -> bool {
        true
    }

    fn build_protocol(&self, _peer: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        Ok(Box::new(Welcome {
            open: self.open.clone(),
            counted: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, assert_same_for_every_chunking, test_peer};

    fn welcome(open: &Arc<AtomicUsize>) -> Welcome {
        Welcome {
            open: open.clone(),
            counted: false,
        }
    }

    #[test]
    fn counts_itself_rises_and_falls() {
        let f = WelcomeFactory::default();
        let mut a = Harness::new(welcome(&f.open));
        a.connect();
        assert_eq!(
            a.take_text(),
            "welcome! there are currently 1 open connections.\n"
        );
        let mut b = Harness::new(welcome(&f.open));
        b.connect();
        assert_eq!(
            b.take_text(),
            "welcome! there are currently 2 open connections.\n"
        );
        a.disconnect(Reason::Done);
        a.disconnect(Reason::Done);
        assert_eq!(f.open_connections(), 1);
        let mut c = Harness::new(welcome(&f.open));
        c.connect();
        assert_eq!(
            c.take_text(),
            "welcome! there are currently 2 open connections.\n"
        );
        assert!(f.build_protocol(&test_peer()).is_ok());
    }

    #[test]
    fn echoes_after_the_greeting_in_every_chunking() {
        let open = Arc::new(AtomicUsize::new(0));
        let out = assert_same_for_every_chunking(
            || welcome(&Arc::new(AtomicUsize::new(0))),
            b"abc\ndef\n",
        );
        assert_eq!(
            String::from_utf8(out.output).unwrap(),
            "welcome! there are currently 1 open connections.\nabc\ndef\n"
        );
        assert_eq!(open.load(Ordering::SeqCst), 0);
    }
}
