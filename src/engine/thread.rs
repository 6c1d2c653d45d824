//! The thread engine: a new thread for every accepted connection, no pool,
//! no queue. The thread runs the same owner loop as a pool worker
//! (`connection.rs`) and ends with its connection.
//!
//! ```text
//!  acceptor ──spawn──▶ thread (owner loop) ── one per open connection
//!      │ --max-connections reached, or the OS refuses a thread
//!      ▼
//!  refuse: busy message, close, log
//! ```
//!
//! `--max-connections` is the only bound: nothing waits, so there is no
//! queue and no worker count. A thread's stack is reserved address space
//! (`--stack-size`); the pages a connection actually touches are what it
//! costs in memory, which is why the default stack is small
//! ([`DEFAULT_THREAD_STACK_SIZE`](super::DEFAULT_THREAD_STACK_SIZE)).
//!
//! Stopping is as for the pool: stop accepting, shut down every socket's
//! read side (idle owners wake and close at once), give the threads
//! [`ServerConfig::grace`] to finish, then shut down what is left.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::connection::{ConnEnv, serve_accepted};
use super::core::panic_message;
use super::pool::refuse;
use super::registry::Registry;
use super::server::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper, acceptor};
use crate::protocol::{Addr, Factory};

/// Connections being served, and a condition variable that shutdown waits
/// on until the count reaches zero.
#[derive(Default)]
struct OpenCount {
    n: Mutex<usize>,
    changed: Condvar,
}

impl OpenCount {
    fn get(&self) -> usize {
        self.n.lock().map_or(0, |n| *n)
    }

    fn add(&self) {
        if let Ok(mut n) = self.n.lock() {
            *n += 1;
        }
    }

    fn sub(&self) {
        if let Ok(mut n) = self.n.lock() {
            *n = n.saturating_sub(1);
            self.changed.notify_all();
        }
    }

    /// Waits until no connection is open or `deadline` passes; returns how
    /// many are still open.
    fn wait_zero(&self, deadline: Instant) -> usize {
        let Ok(mut n) = self.n.lock() else { return 0 };
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.changed.wait_timeout(n, left) {
                Ok((guard, _)) => n = guard,
                Err(_) => return 0,
            }
        }
        *n
    }
}

/// What every connection thread shares.
struct Shared {
    factories: Vec<(Arc<dyn Factory>, Addr)>,
    env: ConnEnv,
    open: OpenCount,
}

pub(crate) fn run(
    services: &[Service],
    config: Arc<ServerConfig>,
    stopper: &Stopper,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let shared = Arc::new(Shared {
        factories: services
            .iter()
            .map(|s| (s.factory.clone(), s.host.clone()))
            .collect(),
        env: ConnEnv {
            config: config.clone(),
            stopper: stopper.clone(),
            registry: registry.clone(),
            hints: None,
        },
        open: OpenCount::default(),
    });
    let sessions: Vec<AtomicU64> = services.iter().map(|_| AtomicU64::new(0)).collect();
    let listeners: Vec<_> = services.iter().map(|s| &s.listener).collect();
    let result = acceptor::accept_loop(&listeners, stopper, |service, stream, peer| {
        accept_one(&shared, &sessions, service, stream, peer);
    });
    stopper.stop();
    shutdown(&shared, &registry);
    result
}

fn accept_one(
    shared: &Arc<Shared>,
    sessions: &[AtomicU64],
    service: usize,
    stream: Stream,
    peer: Addr,
) {
    let config = &shared.env.config;
    let factory = &*shared.factories[service].0;
    let open = shared.open.get();
    if open >= config.max_connections {
        let why = format!(
            "{open} connections open (--max-connections {})",
            config.max_connections
        );
        refuse(stream, factory, &why);
        return;
    }
    let session = sessions[service].fetch_add(1, Ordering::Relaxed);
    shared.open.add();
    // A failed spawn drops its closure; the stream waits in this slot so
    // that the peer can still be told why.
    let slot = Arc::new(Mutex::new(Some(stream)));
    let job_slot = slot.clone();
    let job_shared = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("spindle-conn-{session}"))
        .stack_size(config.stack_size)
        .spawn(move || {
            let stream = job_slot.lock().ok().and_then(|mut s| s.take());
            if let Some(stream) = stream {
                let (factory, host) = &job_shared.factories[service];
                let served = catch_unwind(AssertUnwindSafe(|| {
                    serve_accepted(stream, peer, session, &**factory, host, &job_shared.env);
                }));
                if let Err(payload) = served {
                    log::error!(
                        "a connection thread caught a panic outside any callback: {}",
                        panic_message(&*payload)
                    );
                }
            }
            job_shared.open.sub();
        });
    if let Err(e) = spawned {
        shared.open.sub();
        let stream = slot.lock().ok().and_then(|mut s| s.take());
        if let Some(stream) = stream {
            refuse(
                stream,
                factory,
                &format!("cannot start a thread for it: {e}"),
            );
        }
    }
}

/// Wakes every open connection, waits up to the grace period for their
/// threads to finish, then tears down whatever is left.
fn shutdown(shared: &Shared, registry: &Registry) {
    let grace = shared.env.config.grace;
    let woken = registry.wake_idle();
    if woken > 0 {
        log::info!("stopping: {woken} connections open, giving them {grace:?} to finish");
    }
    if shared.open.wait_zero(Instant::now() + grace) > 0 {
        let left = registry.shutdown_all();
        log::warn!("grace period over: closing {left} connections still open");
        let stuck = shared
            .open
            .wait_zero(Instant::now() + Duration::from_secs(1));
        if stuck > 0 {
            log::warn!("{stuck} connection threads did not finish; leaving them");
        }
    }
}
