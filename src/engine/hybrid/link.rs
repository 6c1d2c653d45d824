//! The hybrid's side of a connection's [`ConnHandle`](crate::ConnHandle):
//! tells the poller which connection has mail, wherever the connection is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::Sender;
use mio::Waker;

use crate::engine::core::Control;
use crate::transport::OwnerLink;

/// Which connection a wake-up is for: its slot and the generation that
/// tells it from an earlier connection in the same slot.
pub(super) type Key = (usize, u64);

/// One connection's link to the poller.
pub(super) struct Link {
    pub key: Key,
    /// The key is in the wake channel and the poller has not taken it
    /// yet: one outstanding wake-up per connection, however many senders.
    pub scheduled: AtomicBool,
    pub control: Arc<Control>,
    pub tx: Sender<Key>,
    pub waker: Arc<Waker>,
}

impl Link {
    fn notify(&self) {
        if self.tx.send(self.key).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

impl OwnerLink for Link {
    fn wake(&self) {
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            self.notify();
        }
    }

    fn kill(&self) {
        if self.control.kill() {
            self.notify();
        }
    }

    fn close_by(&self, deadline: Instant) {
        if self.control.close_by(deadline) {
            self.notify();
        }
    }
}
