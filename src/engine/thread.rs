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
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::admission::Admission;
use super::connection::{ConnEnv, serve_accepted};
use super::core::panic_message;
use super::registry::Registry;
use super::service::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper, acceptor};
use crate::protocol::Addr;

/// What every connection thread shares.
struct Shared {
    admission: Admission,
    env: ConnEnv,
}

pub(crate) fn run(
    services: &[Service],
    config: Arc<ServerConfig>,
    stopper: &Stopper,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let shared = Arc::new(Shared {
        admission: Admission::new(services, &config)?,
        env: ConnEnv {
            config: config.clone(),
            stopper: stopper.clone(),
            registry: registry.clone(),
            hints: None,
        },
    });
    let listeners: Vec<_> = services.iter().map(|s| &s.listener).collect();
    let result = acceptor::accept_loop(&listeners, stopper, |service, stream, peer| {
        accept_one(&shared, service, stream, peer);
    });
    stopper.stop();
    shutdown(&shared, &registry);
    result
}

fn accept_one(shared: &Arc<Shared>, service: usize, stream: Stream, peer: Addr) {
    let config = &shared.env.config;
    let Some((stream, admitted)) = shared.admission.admit(service, stream) else {
        return;
    };
    let session = admitted.session;
    // A failed spawn drops its closure (and with it the admission ticket);
    // the stream waits in this slot so that the peer can still be told why.
    let slot = Arc::new(Mutex::new(Some(stream)));
    let job_slot = slot.clone();
    let job_shared = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("spindle-conn-{session}"))
        .stack_size(config.stack_size)
        .spawn(move || {
            let stream = job_slot.lock().ok().and_then(|mut s| s.take());
            if let Some(stream) = stream {
                let served = catch_unwind(AssertUnwindSafe(|| {
                    let (admission, env) = (&job_shared.admission, &job_shared.env);
                    serve_accepted(stream, peer, service, session, admission, env);
                }));
                if let Err(payload) = served {
                    log::error!(
                        "a connection thread caught a panic outside any callback: {}",
                        panic_message(&*payload)
                    );
                }
            }
            drop(admitted);
        });
    if let Err(e) = spawned {
        let stream = slot.lock().ok().and_then(|mut s| s.take());
        if let Some(stream) = stream {
            let why = format!("cannot start a thread for it: {e}");
            shared.admission.refuse_busy(service, stream, &why);
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
    let admission = &shared.admission;
    if admission.wait_all_closed(Instant::now() + grace) > 0 {
        let left = registry.shutdown_all();
        log::warn!("grace period over: closing {left} connections still open");
        let stuck = admission.wait_all_closed(Instant::now() + Duration::from_secs(1));
        if stuck > 0 {
            log::warn!("{stuck} connection threads did not finish; leaving them");
        }
    }
}
