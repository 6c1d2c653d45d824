//! The pool engine: `workers` threads, each owning one connection at a time
//! from accept to close, and a bounded queue of accepted connections in
//! front of them.
//!
//! ```text
//!  acceptor ──try_send──▶ [ queue: Q connections ] ──recv──▶ worker 1..N
//!      │ full, or max-connections reached                 (owner loop:
//!      ▼                                                    connection.rs)
//!  refuse: busy message, close, log
//! ```
//!
//! A worker never dies: each connection runs under `catch_unwind`, so a
//! panic costs that connection and nothing else. On stop, the acceptor
//! quits, queued connections are closed unserved, every open socket's read
//! side is shut down (idle owners wake and close at once), and workers get
//! [`ServerConfig::grace`] to finish.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::connection::{ConnEnv, serve_accepted};
use super::core::panic_message;
use super::registry::Registry;
use super::server::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper, acceptor};
use crate::log::ContextGuard;
use crate::protocol::{Addr, Factory};
use crate::transport::EngineHints;

/// An accepted connection waiting for a worker.
struct Job {
    stream: Stream,
    peer: Addr,
    service: usize,
    session: u64,
}

/// What the workers need to turn a job into a served connection.
struct Shared {
    factories: Vec<(Arc<dyn Factory>, Addr)>,
    env: ConnEnv,
    open: AtomicUsize,
}

struct QueueHints(Receiver<Job>);

impl EngineHints for QueueHints {
    fn queued_connections(&self) -> usize {
        self.0.len()
    }
}

/// Tells a refused peer why (if the protocol has words for it) and closes.
pub(crate) fn refuse(stream: Stream, factory: &dyn Factory, why: &str) {
    let _ctx = ContextGuard::enter(factory.name());
    if let Ok(peer) = stream.peer_addr() {
        log::warn!("refusing {peer}: {why}");
    } else {
        log::warn!("refusing a connection: {why}");
    }
    if let Some(message) = factory.busy_message() {
        // A fresh socket's send buffer is empty: this never blocks long.
        let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
        let mut stream = stream;
        let _ = stream.write_all(message);
    }
}

pub(crate) fn run(
    services: &[Service],
    config: Arc<ServerConfig>,
    stopper: &Stopper,
) -> std::io::Result<()> {
    // crossbeam's bounded(0) is a rendezvous: with no queue, a connection
    // is handed over only to a worker already waiting.
    let (tx, rx) = crossbeam_channel::bounded::<Job>(config.queue);
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
            hints: Some(Arc::new(QueueHints(rx.clone()))),
        },
        open: AtomicUsize::new(0),
    });
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
    let mut started = 0;
    for i in 0..config.workers.max(1) {
        let rx = rx.clone();
        let shared = shared.clone();
        let done = done_tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("spindle-worker-{i}"))
            .stack_size(config.stack_size)
            .spawn(move || worker(&rx, &shared, &done));
        match spawned {
            Ok(_) => started += 1,
            Err(e) if started > 0 => {
                log::warn!(
                    "could start only {started} of {} workers: {e}",
                    config.workers
                );
                break;
            }
            Err(e) => {
                stopper.stop();
                return Err(std::io::Error::other(format!(
                    "cannot start any worker thread: {e}"
                )));
            }
        }
    }
    drop(done_tx);
    drop(rx);

    let sessions: Vec<AtomicU64> = services.iter().map(|_| AtomicU64::new(0)).collect();
    let listeners: Vec<_> = services.iter().map(|s| &s.listener).collect();
    let accept_result = accept_into(&listeners, stopper, &shared, &sessions, &tx);
    // Accepting is over: workers drain the queue (closing, unserved) and exit.
    stopper.stop();
    drop(tx);
    shutdown(&shared, &registry, &done_rx, started);
    accept_result
}

fn accept_into(
    listeners: &[&crate::endpoint::Listener],
    stopper: &Stopper,
    shared: &Shared,
    sessions: &[AtomicU64],
    tx: &Sender<Job>,
) -> std::io::Result<()> {
    let config = &shared.env.config;
    acceptor::accept_loop(listeners, stopper, |service, stream, peer| {
        let factory = &*shared.factories[service].0;
        let open = shared.open.load(Ordering::SeqCst);
        if open >= config.max_connections {
            let why = format!(
                "{open} connections open (--max-connections {})",
                config.max_connections
            );
            refuse(stream, factory, &why);
            return;
        }
        let session = sessions[service].fetch_add(1, Ordering::Relaxed);
        shared.open.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            stream,
            peer,
            service,
            session,
        };
        if let Err(e) = tx.try_send(job) {
            shared.open.fetch_sub(1, Ordering::SeqCst);
            let (job, why) = match e {
                TrySendError::Full(job) => (
                    job,
                    format!(
                        "all {} workers busy and {} connections queued (--workers, --queue)",
                        config.workers, config.queue
                    ),
                ),
                TrySendError::Disconnected(job) => (job, "the server is stopping".to_string()),
            };
            refuse(job.stream, factory, &why);
        }
    })
}

fn worker(rx: &Receiver<Job>, shared: &Shared, done: &Sender<()>) {
    while let Ok(job) = rx.recv() {
        if shared.env.stopper.is_stopped() {
            // Queued but never served: close it unserved.
            shared.open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| serve_job(job, shared))) {
            log::error!(
                "a worker caught a panic outside any callback: {}",
                panic_message(&*payload)
            );
        }
        shared.open.fetch_sub(1, Ordering::SeqCst);
    }
    let _ = done.send(());
}

fn serve_job(job: Job, shared: &Shared) {
    let (factory, host) = &shared.factories[job.service];
    serve_accepted(
        job.stream,
        job.peer,
        job.session,
        &**factory,
        host,
        &shared.env,
    );
}

/// Wakes every idle connection, waits up to the grace period for workers to
/// finish, then tears down whatever is left.
fn shutdown(shared: &Shared, registry: &Registry, done: &Receiver<()>, workers: usize) {
    let grace = shared.env.config.grace;
    let woken = registry.wake_idle();
    if woken > 0 {
        log::info!("stopping: {woken} connections open, giving them {grace:?} to finish");
    }
    let deadline = Instant::now() + grace;
    let mut finished = 0;
    while finished < workers && done.recv_deadline(deadline).is_ok() {
        finished += 1;
    }
    if finished < workers {
        let left = registry.shutdown_all();
        log::warn!("grace period over: closing {left} connections still open");
        let deadline = Instant::now() + Duration::from_secs(1);
        while finished < workers && done.recv_deadline(deadline).is_ok() {
            finished += 1;
        }
        if finished < workers {
            log::warn!(
                "{} workers did not finish; leaving them",
                workers - finished
            );
        }
    }
}
