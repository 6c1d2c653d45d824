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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::admission::{Admission, Admitted};
use super::connection::{ConnEnv, serve_accepted};
use super::core::panic_message;
use super::queue_watch::QueueWatch;
use super::registry::Registry;
use super::service::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper, acceptor};
use crate::protocol::Addr;
use crate::transport::EngineHints;

/// An accepted connection waiting for a worker.
struct Job {
    stream: Stream,
    peer: Addr,
    service: usize,
    /// Its session number and its place in the open count.
    admitted: Admitted,
}

/// What the workers need to turn a job into a served connection.
struct Shared {
    admission: Admission,
    env: ConnEnv,
}

struct QueueHints(Receiver<Job>);

impl EngineHints for QueueHints {
    fn queued_connections(&self) -> usize {
        self.0.len()
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
        admission: Admission::new(services, &config)?,
        env: ConnEnv {
            config: config.clone(),
            stopper: stopper.clone(),
            registry: registry.clone(),
            hints: Some(Arc::new(QueueHints(rx.clone()))),
        },
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

    let listeners: Vec<_> = services.iter().map(|s| &s.listener).collect();
    let accept_result = accept_into(&listeners, stopper, &shared, &tx);
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
    tx: &Sender<Job>,
) -> std::io::Result<()> {
    let config = &shared.env.config;
    let admission = &shared.admission;
    let mut watch = QueueWatch::new(config.workers);
    acceptor::accept_loop(listeners, stopper, |service, stream, peer| {
        let Some((stream, admitted)) = admission.admit(service, stream) else {
            return;
        };
        let job = Job {
            stream,
            peer,
            service,
            admitted,
        };
        if let Err(e) = tx.try_send(job) {
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
            let Job {
                stream, admitted, ..
            } = job;
            drop(admitted);
            admission.refuse_busy(service, stream, &why);
        }
        watch.saw(tx.len(), Instant::now());
    })
}

fn worker(rx: &Receiver<Job>, shared: &Shared, done: &Sender<()>) {
    while let Ok(job) = rx.recv() {
        if shared.env.stopper.is_stopped() {
            // Queued but never served: close it unserved (dropping the job
            // counts it out).
            continue;
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| serve_job(job, shared))) {
            log::error!(
                "a worker caught a panic outside any callback: {}",
                panic_message(&*payload)
            );
        }
    }
    let _ = done.send(());
}

fn serve_job(job: Job, shared: &Shared) {
    let Job {
        stream,
        peer,
        service,
        admitted,
    } = job;
    serve_accepted(
        stream,
        peer,
        service,
        admitted.session,
        &shared.admission,
        &shared.env,
    );
    drop(admitted);
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
