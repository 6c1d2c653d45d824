//! The pool's queue is not silent: a connection that waits for a worker
//! (every worker holds a connection, idle or not) is logged the first
//! time one waits, then at most every [`QUEUE_LOG_INTERVAL`] while any
//! wait, so that the 257th chat member who hears nothing has a log line
//! that says why and which option to change.

use std::time::{Duration, Instant};

/// How often the count of waiting connections is logged while some wait.
pub const QUEUE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Watches the pool's queue length as the acceptor fills it.
pub(crate) struct QueueWatch {
    workers: usize,
    /// When the last line was logged, while connections have been waiting.
    logged: Option<Instant>,
}

impl QueueWatch {
    /// A watch for a pool of `workers`.
    pub(crate) fn new(workers: usize) -> QueueWatch {
        QueueWatch {
            workers,
            logged: None,
        }
    }

    /// The acceptor saw `waiting` connections queued at `now`.
    pub(crate) fn saw(&mut self, waiting: usize, now: Instant) {
        if waiting == 0 {
            self.logged = None;
            return;
        }
        if self
            .logged
            .is_some_and(|at| now.duration_since(at) < QUEUE_LOG_INTERVAL)
        {
            return;
        }
        self.logged = Some(now);
        log::warn!(
            "{waiting} connections waiting for a worker (--workers {}); \
             for many idle clients, --model hybrid or reactor serves them without a thread each",
            self.workers
        );
    }
}
