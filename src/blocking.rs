//! [`BlockingPool`]: a fixed set of threads for work that blocks — hashing
//! a file, reading a child process — so that no connection's owner ever
//! does it (DESIGN.md contract 4). Twisted's reactor thread pool, bounded
//! at both ends:
//!
//! ```text
//!  owners ──try_send──▶ [ queue: Q jobs ] ──recv──▶ thread 1..N
//!     │ full
//!     ▼
//!  refused: the caller answers "server busy"
//! ```
//!
//! * `threads` (default [`DEFAULT_BLOCKING_THREADS`], Twisted's reactor pool
//!   maximum) jobs run at once;
//! * `queue` (default [`DEFAULT_BLOCKING_QUEUE`]) more may wait; beyond
//!   that [`BlockingPool::try_run`] hands the refusal back at once, never
//!   blocks the caller (Twisted's queue is unbounded; Spindle's is not);
//! * each job runs under `catch_unwind`: a panicking job costs only itself
//!   and the pool keeps its size;
//! * a job runs with the log context of the connection that submitted it.
//!
//! Dropping the pool lets queued jobs finish, then its threads exit.

use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::log::ContextGuard;

/// Default number of pool threads: Twisted's reactor pool maximum.
pub const DEFAULT_BLOCKING_THREADS: usize = 10;
/// How long a job's result waits for room in a full inbox before it is
/// dropped (and the drop logged): the pool's default `delivery_timeout`.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of jobs that may wait for a pool thread.
pub const DEFAULT_BLOCKING_QUEUE: usize = 100;
/// Stack size of pool threads: jobs keep their buffers on the heap.
pub const BLOCKING_STACK_SIZE: usize = 256 * 1024;

type Job = Box<dyn FnOnce() + Send>;

/// The pool's answer when every thread is busy and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolBusy {
    /// The pool's thread count.
    pub threads: usize,
    /// The pool's queue capacity.
    pub queue: usize,
}

impl fmt::Display for PoolBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server busy: all {} blocking threads busy and {} jobs queued (--blocking-threads, --blocking-queue)",
            self.threads, self.queue
        )
    }
}

impl std::error::Error for PoolBusy {}

/// A bounded pool of threads for blocking work. See the
/// [module docs](self).
pub struct BlockingPool {
    tx: Sender<Job>,
    threads: usize,
    queue: usize,
    alive: Arc<AtomicUsize>,
    delivery_timeout: Duration,
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPool")
            .field("threads", &self.threads)
            .field("queue", &self.queue)
            .field("queued", &self.tx.len())
            .field("alive", &self.alive())
            .finish()
    }
}

/// Counts a pool thread as alive until it returns (or unwinds).
struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl BlockingPool {
    /// Starts `threads` threads (at least 1) with room for `queue` waiting
    /// jobs (0: a job is taken only by a thread already idle). Fails only
    /// if not a single thread could be started.
    pub fn new(threads: usize, queue: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        // crossbeam's bounded(0) is a rendezvous: no queue at all.
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue);
        let alive = Arc::new(AtomicUsize::new(0));
        let mut started = 0;
        for i in 0..threads {
            let rx = rx.clone();
            alive.fetch_add(1, Ordering::SeqCst);
            let guard = AliveGuard(alive.clone());
            let spawned = thread::Builder::new()
                .name(format!("spindle-blocking-{i}"))
                .stack_size(BLOCKING_STACK_SIZE)
                .spawn(move || work(&rx, guard));
            match spawned {
                Ok(_) => started += 1,
                // The closure (and its guard) was dropped: `alive` is right.
                Err(e) if started > 0 => {
                    log::warn!("could start only {started} of {threads} blocking threads: {e}");
                    break;
                }
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "cannot start any blocking thread: {e}"
                    )));
                }
            }
        }
        Ok(BlockingPool {
            tx,
            threads: started,
            queue,
            alive,
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
        })
    }

    /// How long results of this pool's jobs wait for room in a full
    /// connection inbox before they are dropped (and logged).
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// See [`BlockingPool::with_delivery_timeout`].
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// Queues `job`, or refuses at once if every thread is busy and the
    /// queue is full. A refused job is dropped unrun.
    pub fn try_run(&self, job: impl FnOnce() + Send + 'static) -> Result<(), PoolBusy> {
        let context = crate::log::context();
        let job: Job = Box::new(move || {
            let _context = ContextGuard::enter(context);
            job();
        });
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(PoolBusy {
                threads: self.threads,
                queue: self.queue,
            }),
        }
    }

    /// Threads the pool was started with.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Threads alive now: equal to [`BlockingPool::threads`] while the
    /// pool exists, panics or not.
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}

/// One pool thread: runs jobs until the pool is dropped.
fn work(rx: &Receiver<Job>, _alive: AliveGuard) {
    while let Ok(job) = rx.recv() {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
            log::error!(
                "a blocking job panicked: {}",
                crate::engine::core::panic_message(&*payload)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn runs_jobs_and_survives_a_panic_in_every_thread() {
        let pool = BlockingPool::new(3, 16).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        // Each panicking job holds its thread until all three run, so every
        // thread panics once.
        let barrier = Arc::new(std::sync::Barrier::new(3));
        for _ in 0..3 {
            let barrier = barrier.clone();
            pool.try_run(move || {
                barrier.wait();
                panic!("boom");
            })
            .unwrap();
        }
        for i in 0..6 {
            let tx = tx.clone();
            pool.try_run(move || tx.send((i, thread::current().id())).unwrap())
                .unwrap();
        }
        let mut got: Vec<_> = (0..6).map(|_| rx.recv_timeout(WAIT).unwrap().0).collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(pool.alive(), 3);
        assert_eq!(pool.threads(), 3);
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let pool = BlockingPool::new(1, 1).unwrap();
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
        pool.try_run(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(WAIT);
        })
        .unwrap();
        started_rx.recv_timeout(WAIT).unwrap();
        pool.try_run(|| {}).unwrap(); // queued
        let before = Instant::now();
        let busy = pool.try_run(|| {}).unwrap_err();
        assert!(before.elapsed() < Duration::from_secs(1));
        assert_eq!(
            busy,
            PoolBusy {
                threads: 1,
                queue: 1
            }
        );
        assert!(busy.to_string().starts_with("server busy"));
        assert_eq!(pool.queued(), 1);
        release_tx.send(()).unwrap();
    }

    #[test]
    fn dropping_the_pool_lets_its_threads_exit() {
        let pool = BlockingPool::new(2, 0).unwrap();
        let alive = pool.alive.clone();
        drop(pool);
        let deadline = Instant::now() + WAIT;
        while alive.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::park_timeout(Duration::from_millis(1)); // poll the condition
        }
        assert_eq!(alive.load(Ordering::SeqCst), 0);
    }
}
