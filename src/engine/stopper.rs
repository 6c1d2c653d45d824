//! [`Stopper`]: the one-way "shut down now" signal a server listens for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

struct Inner {
    stopped: AtomicBool,
    // Dropped on stop, which disconnects every receiver: a `select!` arm
    // on `receiver()` fires for all waiters at once.
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
    wakers: Mutex<Vec<Arc<mio::Waker>>>,
}

/// Tells a running server to stop. `Clone + Send`: hand it to a signal
/// handler or a test. Stopping twice is harmless.
#[derive(Clone)]
pub struct Stopper {
    inner: Arc<Inner>,
}

impl Default for Stopper {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stopper(stopped: {})", self.is_stopped())
    }
}

impl Stopper {
    /// A signal not yet given.
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Stopper {
            inner: Arc::new(Inner {
                stopped: AtomicBool::new(false),
                tx: Mutex::new(Some(tx)),
                rx,
                wakers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Gives the signal: every waiter wakes.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        if let Ok(mut tx) = self.inner.tx.lock() {
            tx.take();
        }
        if let Ok(wakers) = self.inner.wakers.lock() {
            for w in wakers.iter() {
                let _ = w.wake();
            }
        }
    }

    /// Whether the signal was given.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// A receiver that disconnects when the signal is given, for `select!`.
    pub fn receiver(&self) -> Receiver<()> {
        self.inner.rx.clone()
    }

    /// Registers an event-loop waker to wake on stop.
    pub(crate) fn add_waker(&self, waker: Arc<mio::Waker>) {
        if let Ok(mut wakers) = self.inner.wakers.lock() {
            wakers.push(waker.clone());
        }
        if self.is_stopped() {
            let _ = waker.wake();
        }
    }
}
