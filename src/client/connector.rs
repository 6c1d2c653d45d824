//! [`Connector`]: one client's connection attempts, and [`connect`].
//!
//! Each attempt runs on its own thread, which owns the connection once it
//! is up (see `driver.rs`): the factory's callbacks and every callback of
//! the protocol run there, one at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::ClientConfig;
use super::dial;
use super::driver;
use super::endpoint::ClientEndpoint;
use super::factory::{ClientFactory, ConnectError};
use crate::transport::ConnHandle;

/// Connects `factory` to `endpoint` on a new thread and returns at once.
/// Failures reach the factory's `client_connection_failed`.
pub fn connect(
    endpoint: &ClientEndpoint,
    factory: Arc<dyn ClientFactory>,
    config: ClientConfig,
) -> Connector {
    let connector = Connector::new(endpoint.clone(), factory, config);
    connector.connect();
    connector
}

/// One client's way to a server: start an attempt, cancel it, close the
/// connection, wait for it to end. Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: ClientEndpoint,
    factory: Arc<dyn ClientFactory>,
    config: ClientConfig,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Attempt threads still running (connecting, connected, or in the
    /// factory's final callback).
    active: usize,
    /// An attempt is between `started_connecting` and its outcome.
    connecting: Option<Arc<AtomicBool>>,
    /// The live connection, if any.
    handle: Option<ConnHandle>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connector({})", self.inner.endpoint)
    }
}

impl std::fmt::Display for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Connector to {}>", self.inner.endpoint)
    }
}

impl Connector {
    /// A connector that has not tried yet; call [`Connector::connect`].
    pub fn new(
        endpoint: ClientEndpoint,
        factory: Arc<dyn ClientFactory>,
        config: ClientConfig,
    ) -> Self {
        Connector {
            inner: Arc::new(Inner {
                endpoint,
                factory,
                config,
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; go on.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where this connector connects.
    pub fn endpoint(&self) -> &ClientEndpoint {
        &self.inner.endpoint
    }

    /// Starts an attempt on a new thread. Ignored (with a log line) while
    /// another attempt is connecting or connected, as Twisted refuses it.
    pub fn connect(&self) {
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut state = self.state();
            if state.connecting.is_some() || state.handle.is_some() {
                log::warn!("{self}: already connecting or connected; connect() ignored");
                return;
            }
            state.connecting = Some(cancel.clone());
            state.active += 1;
        }
        let me = self.clone();
        let spawned = thread::Builder::new()
            .name("spindle-client".into())
            .stack_size(self.inner.config.stack_size)
            .spawn(move || me.attempt(&cancel));
        if let Err(e) = spawned {
            {
                let mut state = self.state();
                state.connecting = None;
                state.active -= 1;
            }
            self.inner.changed.notify_all();
            let reason = ConnectError::Other(format!("cannot start a client thread: {e}"));
            self.inner.factory.client_connection_failed(self, &reason);
        }
    }

    /// Cancels an attempt in progress: it ends with
    /// [`ConnectError::Cancelled`] as soon as its current step returns
    /// (within the endpoint's timeout). No effect on a live connection.
    pub fn stop_connecting(&self) {
        if let Some(flag) = &self.state().connecting {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Cancels an attempt in progress and closes the live connection
    /// (flushing what was written).
    pub fn disconnect(&self) {
        self.stop_connecting();
        if let Some(h) = self.state().handle.clone()
            && h.lose_connection().is_err()
        {
            h.abort_connection();
        }
    }

    /// A handle on the live connection, if there is one.
    pub fn handle(&self) -> Option<ConnHandle> {
        self.state().handle.clone()
    }

    /// Waits until no attempt is running (failed or connection closed, and
    /// the factory told). `false` if `timeout` passed first.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        while state.active > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match self.inner.changed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// One attempt, on its own thread.
    fn attempt(&self, cancel: &AtomicBool) {
        let factory = self.inner.factory.clone();
        factory.started_connecting(self);
        let opened = dial::open(&self.inner.endpoint, self.inner.config.tls.as_ref(), cancel);
        match opened {
            Err(reason) => {
                self.state().connecting = None;
                log::debug!("{self}: connection failed: {reason}");
                factory.client_connection_failed(self, &reason);
            }
            Ok(opened) => {
                let on_handle = |h: ConnHandle| {
                    let mut state = self.state();
                    state.connecting = None;
                    state.handle = Some(h);
                };
                let reason = driver::run(opened, &*factory, &self.inner.config, on_handle);
                {
                    let mut state = self.state();
                    state.handle = None;
                    state.connecting = None;
                }
                factory.client_connection_lost(self, &reason);
            }
        }
        self.state().active -= 1;
        self.inner.changed.notify_all();
    }
}
