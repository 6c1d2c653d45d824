//! [`Deferred`]: a result that arrives later, with Twisted's chain of
//! callbacks and errbacks — and [`defer_to_thread`], which runs blocking
//! work on the shared [`BlockingPool`] and hands back a Deferred.
//!
//! ```text
//!  owner (a connection's callbacks)          any thread (a pool worker)
//!  ─────────────────────────────────          ──────────────────────────
//!  let (d, r) = Deferred::new(t)
//!  d.add_callback(..).add_errback(..)   r ──▶ r.callback(value)
//!                                                  │ ConnHandle::call_timeout
//!  chain runs here, one stage after the  ◀─────────┘ (the connection's inbox)
//!  other, between the connection's other callbacks
//! ```
//!
//! The semantics are Twisted's (TWISTED-FACTS.md, "Deferred chains"):
//!
//! * a success goes to the next callback, whose return value becomes the
//!   new result; a [`Failure`] skips callbacks to the next errback;
//! * a stage that returns `Err` (or panics) puts the chain on the error
//!   path; an errback that returns `Ok` puts it back on the success path;
//! * every stage runs on the connection's owner with its protocol and
//!   transport, serialized with the connection's other callbacks (DESIGN.md
//!   contract 2): no lock is needed for the protocol's state;
//! * stages added after the result arrived run on the owner as soon as the
//!   current callback returns.
//!
//! Firing twice is impossible by construction: the firing side is a
//! separate [`Resolver`] whose `callback`/`errback` consume it. A resolver
//! dropped without firing errbacks the chain (so a lost job is an error,
//! not silence). A failure still unhandled when the last piece of the
//! Deferred is dropped is logged, with the place the Deferred was created.
//! If the connection is gone when the result arrives, the result is
//! dropped quietly (there is nobody left to tell).
//!
//! Results cross threads through the connection's bounded inbox. A full
//! inbox is waited on for up to [`DEFAULT_DELIVERY_TIMEOUT`] (the pool's
//! `delivery_timeout`, `--delivery-timeout`), then the result is dropped
//! with a warning in the log — never silently. (A resolver fired on the
//! owner itself never waits: the owner is the one that would make room.)
//!
//! A callback that returns another Deferred
//! ([`Deferred::add_callback_deferred`]) pauses the chain until that one
//! fires; its result (or failure) then continues the chain, as in Twisted.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::Duration;

use crate::blocking::BlockingPool;
use crate::protocol::Protocol;
use crate::transport::{ConnHandle, HandleError, Transport};

pub use crate::blocking::DEFAULT_DELIVERY_TIMEOUT;

/// Why a Deferred's chain is on the error path: Twisted's `Failure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    message: String,
    panicked: bool,
}

impl Failure {
    /// A failure saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            panicked: false,
        }
    }

    /// The failure for a panic with this payload.
    pub fn from_panic(payload: &(dyn Any + Send)) -> Self {
        let text = crate::engine::core::panic_message(payload);
        Failure {
            message: format!("panicked: {text}"),
            panicked: true,
        }
    }

    /// What went wrong, for humans.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the failure is a panic caught in work or in a stage.
    pub fn is_panic(&self) -> bool {
        self.panicked
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::new(e.to_string())
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::new(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure::new(s)
    }
}

/// A result travelling down the chain, its type erased; the typed API
/// ([`Deferred`]) guarantees each stage gets the type it expects.
type Value = Box<dyn Any + Send>;
type Outcome = Result<Value, Failure>;
type Stage<P> = Box<dyn FnOnce(&mut P, &mut Transport, Outcome) -> Outcome + Send>;

/// The chain and its current result, shared by the typed view, the
/// resolver and the closures in flight to the owner.
struct Chain<P> {
    stages: VecDeque<Stage<P>>,
    /// `None` until fired, and while a stage runs.
    result: Option<Outcome>,
    /// A stage is running on the owner right now.
    running: bool,
}

struct Shared<P> {
    chain: Mutex<Chain<P>>,
    handle: ConnHandle,
    owner: ThreadId,
    created: &'static Location<'static>,
}

impl<P> Shared<P> {
    fn lock(&self) -> MutexGuard<'_, Chain<P>> {
        // Stages run outside the lock, so a poisoned lock only means a
        // panic between two plain field updates: the data is still sound.
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<P> Drop for Shared<P> {
    fn drop(&mut self) {
        let chain = self.chain.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(Err(failure)) = &chain.result {
            log::error!(
                "Unhandled error in Deferred created at {}: {failure}",
                self.created
            );
        }
    }
}

/// Sends `f` to the owner: at once from the owner itself (it cannot wait
/// for room it would have to make), waiting up to `timeout` from elsewhere.
fn send_to_owner<P: Protocol>(
    shared: &Shared<P>,
    timeout: Duration,
    what: &str,
    f: impl FnOnce(&mut P, &mut Transport) + Send + 'static,
) {
    let sent = if thread::current().id() == shared.owner {
        shared.handle.call::<P, _>(f)
    } else {
        shared.handle.call_timeout::<P, _>(timeout, f)
    };
    match sent {
        Ok(()) => {}
        Err(HandleError::Closed) => {
            log::debug!("{what} for a connection already gone: dropped")
        }
        Err(HandleError::Full) => log::warn!(
            "{what} dropped: the inbox of {} stayed full for {timeout:?} (Deferred created at {})",
            shared.handle.peer(),
            shared.created
        ),
    }
}

/// Runs the chain on the owner, with `incoming` as the fired result.
fn run_chain<P: Protocol>(
    shared: &Shared<P>,
    p: &mut P,
    t: &mut Transport,
    incoming: Option<Outcome>,
) {
    let mut chain = shared.lock();
    if let Some(result) = incoming {
        chain.result = Some(result);
    }
    if chain.running {
        // A stage is on the stack below us; it will run what was added.
        return;
    }
    chain.running = true;
    while !chain.stages.is_empty() {
        let Some(current) = chain.result.take() else {
            break; // not fired yet
        };
        let Some(stage) = chain.stages.pop_front() else {
            chain.result = Some(current);
            break;
        };
        drop(chain);
        // A stage that panics is a stage that raised: the chain goes on,
        // on the error path (Twisted turns exceptions into Failures).
        let next = catch_unwind(AssertUnwindSafe(|| stage(p, t, current)))
            .unwrap_or_else(|payload| Err(Failure::from_panic(&*payload)));
        chain = shared.lock();
        // A stage that handed back an inner Deferred pauses the chain: no
        // result until the inner one resumes it.
        let paused = matches!(&next, Ok(v) if v.is::<Paused>());
        chain.result = if paused { None } else { Some(next) };
    }
    chain.running = false;
}

/// What a stage returns to pause its chain (see
/// [`Deferred::add_callback_deferred`]).
struct Paused;

/// A result that arrives later, on a connection's owner; see the
/// [module docs](self). `P` is the connection's protocol type exactly as
/// its factory boxed it; `T` is the type of the current result.
///
/// Each `add_*` consumes the Deferred and returns it typed for the new
/// result, so chains read as in Twisted:
///
/// ```
/// use spindle::deferred::{Deferred, Failure};
/// use spindle::{Protocol, Transport};
///
/// struct Answer;
/// impl Protocol for Answer {
///     fn data_received(&mut self, _: &[u8], t: &mut Transport) {
///         let (d, resolver) = Deferred::<Answer, u32>::new(t);
///         d.add_callback(|_p, _t, n| if n > 9 { Err(Failure::new("too big")) } else { Ok(n * 2) })
///             .add_errback(|_p, _t, _failure| Ok(0)) // recover
///             .add_callback(|_p, t, n| {
///                 t.write(format!("{n}\n").as_bytes());
///                 Ok(())
///             });
///         std::thread::spawn(move || resolver.callback(21));
///     }
/// }
/// ```
pub struct Deferred<P: Protocol, T> {
    shared: Arc<Shared<P>>,
    _result: PhantomData<fn() -> T>,
}

impl<P: Protocol, T> fmt::Debug for Deferred<P, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deferred")
            .field("created", &self.shared.created)
            .field("peer", self.shared.handle.peer())
            .finish()
    }
}

impl<P: Protocol, T: Send + 'static> Deferred<P, T> {
    /// A Deferred for this connection (created on its owner), and the
    /// resolver that fires it from any thread.
    #[track_caller]
    pub fn new(transport: &mut Transport) -> (Deferred<P, T>, Resolver<P, T>) {
        Self::with_handle(
            transport.handle(),
            thread::current().id(),
            Location::caller(),
        )
    }

    fn with_handle(
        handle: ConnHandle,
        owner: ThreadId,
        created: &'static Location<'static>,
    ) -> (Deferred<P, T>, Resolver<P, T>) {
        let shared = Arc::new(Shared {
            chain: Mutex::new(Chain {
                stages: VecDeque::new(),
                result: None,
                running: false,
            }),
            handle,
            owner,
            created,
        });
        let deferred = Deferred {
            shared: shared.clone(),
            _result: PhantomData,
        };
        let resolver = Resolver {
            shared: Some(shared),
            timeout: DEFAULT_DELIVERY_TIMEOUT,
            unfired: "the result was never produced (its resolver was dropped)".into(),
            _result: PhantomData,
        };
        (deferred, resolver)
    }

    fn push<U>(self, stage: Stage<P>) -> Deferred<P, U> {
        let schedule = {
            let mut chain = self.shared.lock();
            chain.stages.push_back(stage);
            chain.result.is_some() && !chain.running
        };
        if schedule {
            // Already fired: run the new stage on the owner, after the
            // callback that is running now.
            let shared = self.shared.clone();
            send_to_owner(
                &self.shared,
                DEFAULT_DELIVERY_TIMEOUT,
                "a late callback",
                move |p, t| run_chain(&shared, p, t, None),
            );
        }
        Deferred {
            shared: self.shared,
            _result: PhantomData,
        }
    }

    /// Adds one stage: `callback` if the result so far is a success,
    /// `errback` if it is a failure (Twisted's `addCallbacks`).
    pub fn add_callbacks<U, C, E>(self, callback: C, errback: E) -> Deferred<P, U>
    where
        U: Send + 'static,
        C: FnOnce(&mut P, &mut Transport, T) -> Result<U, Failure> + Send + 'static,
        E: FnOnce(&mut P, &mut Transport, Failure) -> Result<U, Failure> + Send + 'static,
    {
        self.push(Box::new(move |p, t, outcome| {
            let next = match outcome {
                Ok(value) => match value.downcast::<T>() {
                    Ok(value) => callback(p, t, *value),
                    Err(_) => Err(Failure::new(
                        "internal error: a Deferred result of an unexpected type",
                    )),
                },
                Err(failure) => errback(p, t, failure),
            };
            next.map(|u| Box::new(u) as Value)
        }))
    }

    /// Adds a callback that returns another Deferred: the chain pauses
    /// until that one fires, and its result (or failure) continues this
    /// chain (Twisted's chaining). A failure passes the callback by.
    pub fn add_callback_deferred<U, C>(self, callback: C) -> Deferred<P, U>
    where
        U: Send + 'static,
        C: FnOnce(&mut P, &mut Transport, T) -> Result<Deferred<P, U>, Failure> + Send + 'static,
    {
        // Weak: the stage lives in this chain, and must not keep it alive.
        let outer = Arc::downgrade(&self.shared);
        self.push(Box::new(move |p, t, outcome| {
            let value = outcome?.downcast::<T>().map_err(|_| {
                Failure::new("internal error: a Deferred result of an unexpected type")
            })?;
            let inner = callback(p, t, *value)?;
            let outer = outer
                .upgrade()
                .ok_or_else(|| Failure::new("internal error: a paused chain is gone"))?;
            inner.add_both(move |p, t, result| {
                run_chain(&outer, p, t, Some(result.map(|u| Box::new(u) as Value)));
                Ok(())
            });
            Ok(Box::new(Paused) as Value)
        }))
    }

    /// Adds a callback; a failure passes it by, unchanged.
    pub fn add_callback<U, C>(self, callback: C) -> Deferred<P, U>
    where
        U: Send + 'static,
        C: FnOnce(&mut P, &mut Transport, T) -> Result<U, Failure> + Send + 'static,
    {
        self.add_callbacks(callback, |_, _, failure| Err(failure))
    }

    /// Adds an errback; a success passes it by, unchanged. Returning `Ok`
    /// recovers: the next callback gets that value.
    pub fn add_errback<E>(self, errback: E) -> Deferred<P, T>
    where
        E: FnOnce(&mut P, &mut Transport, Failure) -> Result<T, Failure> + Send + 'static,
    {
        self.add_callbacks(|_, _, value| Ok(value), errback)
    }

    /// Adds one function for both outcomes (Twisted's `addBoth`).
    pub fn add_both<U, F>(self, f: F) -> Deferred<P, U>
    where
        U: Send + 'static,
        F: FnOnce(&mut P, &mut Transport, Result<T, Failure>) -> Result<U, Failure>
            + Send
            + 'static,
    {
        let f = Arc::new(Mutex::new(Some(f)));
        let g = f.clone();
        let take =
            |cell: &Arc<Mutex<Option<F>>>| cell.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.add_callbacks(
            move |p, t, value| match take(&f) {
                Some(f) => f(p, t, Ok(value)),
                None => Err(Failure::new("internal error: add_both stage ran twice")),
            },
            move |p, t, failure| match take(&g) {
                Some(g) => g(p, t, Err(failure)),
                None => Err(Failure::new("internal error: add_both stage ran twice")),
            },
        )
    }
}

/// The firing side of a [`Deferred`]: `Send`, fires once (each method
/// consumes it). Dropping it unfired errbacks the chain.
///
/// Firing twice does not compile:
///
/// ```compile_fail
/// # use spindle::deferred::Deferred;
/// # use spindle::{ConnInfo, Protocol, Transport};
/// # struct P;
/// # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
/// # let a = spindle::testing::test_peer();
/// # let mut t = Transport::new(ConnInfo { peer: a.clone(), host: a, session: 0 }, 8);
/// let (_d, resolver) = Deferred::<P, u8>::new(&mut t);
/// resolver.callback(1);
/// resolver.callback(2); // error: use of moved value
/// ```
pub struct Resolver<P: Protocol, T> {
    shared: Option<Arc<Shared<P>>>,
    timeout: Duration,
    unfired: String,
    _result: PhantomData<fn(T)>,
}

impl<P: Protocol, T> fmt::Debug for Resolver<P, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("fired", &self.shared.is_none())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<P: Protocol, T: Send + 'static> Resolver<P, T> {
    /// Waits up to `timeout` for room in a full inbox when firing from
    /// another thread (default [`DEFAULT_DELIVERY_TIMEOUT`]).
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The failure the chain gets if this resolver is dropped unfired.
    pub fn failing_if_dropped(mut self, message: impl Into<String>) -> Self {
        self.unfired = message.into();
        self
    }

    /// Fires the chain with a success.
    pub fn callback(self, value: T) {
        self.resolve(Ok(value));
    }

    /// Fires the chain with a failure.
    pub fn errback(self, failure: Failure) {
        self.resolve(Err(failure));
    }

    /// Fires the chain with `result`.
    pub fn resolve(mut self, result: Result<T, Failure>) {
        if let Some(shared) = self.shared.take() {
            fire(shared, result.map(|v| Box::new(v) as Value), self.timeout);
        }
    }
}

fn fire<P: Protocol>(shared: Arc<Shared<P>>, outcome: Outcome, timeout: Duration) {
    let target = shared.clone();
    send_to_owner(&shared, timeout, "a Deferred result", move |p, t| {
        run_chain(&target, p, t, Some(outcome))
    });
}

impl<P: Protocol, T> Drop for Resolver<P, T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let failure = Failure::new(std::mem::take(&mut self.unfired));
            fire(shared, Err(failure), self.timeout);
        }
    }
}

/// Runs `work` on `pool` and returns a Deferred for its result, fired on
/// this connection's owner (Twisted's `deferToThread`).
///
/// A panic in `work` becomes a [`Failure`] (see [`Failure::is_panic`]) and
/// the pool keeps its size. When every pool thread is busy and the pool's
/// queue is full, the chain gets the failure `server busy` at once (on the
/// owner, after the current callback). If the connection is gone when the
/// result arrives, the result is dropped quietly.
#[track_caller]
pub fn defer_to_thread<P, T, W>(
    pool: &BlockingPool,
    transport: &mut Transport,
    work: W,
) -> Deferred<P, T>
where
    P: Protocol,
    T: Send + 'static,
    W: FnOnce() -> Result<T, Failure> + Send + 'static,
{
    let (deferred, resolver) = Deferred::<P, T>::with_handle(
        transport.handle(),
        thread::current().id(),
        Location::caller(),
    );
    // If the pool refuses the job, the job (and the resolver in it) is
    // dropped unrun: that failure is the refusal.
    let resolver = resolver
        .with_delivery_timeout(pool.delivery_timeout())
        .failing_if_dropped("server busy");
    let job = move || {
        let result = catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
            let failure = Failure::from_panic(&*payload);
            log::error!("work deferred to a thread {failure}");
            Err(failure)
        });
        resolver.resolve(result);
    };
    if let Err(busy) = pool.try_run(job) {
        log::warn!("cannot defer work to a thread: {busy}");
    }
    deferred
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;
    use std::sync::atomic::{AtomicBool, Ordering};

    const WAIT: Duration = Duration::from_secs(10);

    /// Records what its chains did.
    #[derive(Default)]
    struct Rec {
        log: Vec<String>,
    }

    impl Protocol for Rec {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    }

    fn connected() -> Harness<Rec> {
        let mut h = Harness::new(Rec::default());
        h.transport().handle();
        h.connect(); // the harness takes the inbox after a callback
        h
    }

    #[test]
    fn callback_errback_recovery_callback() {
        let mut h = connected();
        let (d, r) = Deferred::<Rec, i32>::new(h.transport());
        d.add_callback(|p, _, n| {
            p.log.push(format!("cb1 {n}"));
            Err::<i32, _>(Failure::new("bad"))
        })
        .add_callback(|p, _, n| {
            p.log.push("skipped".into());
            Ok(n)
        })
        .add_errback(|p, _, f| {
            p.log.push(format!("eb {f}"));
            Ok(7)
        })
        .add_errback(|p, _, _| {
            p.log.push("skipped too".into());
            Ok(0)
        })
        .add_callback(|p, t, n| {
            p.log.push(format!("cb2 {n}"));
            t.write(b"done");
            Ok(n.to_string())
        })
        .add_both(|p, _, r| {
            p.log.push(format!("both {r:?}"));
            Ok(())
        });
        thread::spawn(move || r.callback(1)).join().unwrap();
        assert!(
            h.protocol.log.is_empty(),
            "nothing runs before the owner does"
        );
        assert!(h.run_inbox_once(WAIT));
        assert_eq!(
            h.protocol.log,
            ["cb1 1", "eb bad", "cb2 7", "both Ok(\"7\")"]
        );
        assert_eq!(h.take_output(), b"done");
    }

    #[test]
    fn an_errback_that_fails_stays_on_the_error_path_and_a_panic_is_a_failure() {
        let mut h = connected();
        let (d, r) = Deferred::<Rec, i32>::new(h.transport());
        d.add_callback(|_, _, _| -> Result<i32, Failure> { panic!("in a stage") })
            .add_errback(|p, _, f| {
                p.log.push(format!("eb1 {f} panic={}", f.is_panic()));
                Err(Failure::new("still bad"))
            })
            .add_callbacks(
                |p, _, _| {
                    p.log.push("cb skipped".into());
                    Ok(())
                },
                |p, _, f| {
                    p.log.push(format!("eb2 {f}"));
                    Ok(())
                },
            );
        r.callback(0);
        assert!(h.run_inbox_once(WAIT));
        assert_eq!(
            h.protocol.log,
            ["eb1 panicked: in a stage panic=true", "eb2 still bad"]
        );
    }

    #[test]
    fn callbacks_added_after_the_result_run_on_the_owner_next() {
        let mut h = connected();
        let (d, r) = Deferred::<Rec, &'static str>::new(h.transport());
        r.callback("early");
        assert!(h.run_inbox_once(WAIT));
        assert!(h.protocol.log.is_empty());
        let d = d.add_callback(|p, _, s| {
            p.log.push(format!("late {s}"));
            Ok(s.len())
        });
        assert_eq!(h.run_inbox(), 1);
        d.add_callback(|p, _, n| {
            p.log.push(format!("later {n}"));
            Ok(())
        });
        assert_eq!(h.run_inbox(), 1);
        assert_eq!(h.protocol.log, ["late early", "later 5"]);
    }

    #[test]
    fn a_callback_returning_a_deferred_pauses_the_chain_until_it_fires() {
        let mut h = connected();
        let (outer, r) = Deferred::<Rec, i32>::new(h.transport());
        let (inner, inner_r) = Deferred::<Rec, String>::new(h.transport());
        let (inner2, inner2_r) = Deferred::<Rec, String>::new(h.transport());
        outer
            .add_callback_deferred(move |p, _, n| {
                p.log.push(format!("outer {n}"));
                Ok(inner)
            })
            .add_callback(|p, _, s| {
                p.log.push(format!("after {s}"));
                Ok(s.len())
            })
            .add_callback_deferred(move |_, _, _| Ok(inner2))
            .add_callbacks(
                |p, _, s| {
                    p.log.push(format!("not {s}"));
                    Ok(())
                },
                |p, _, f| {
                    p.log.push(format!("errback {f}"));
                    Ok(())
                },
            );
        r.callback(1);
        assert!(h.run_inbox_once(WAIT));
        assert_eq!(h.protocol.log, ["outer 1"], "paused");
        thread::spawn(move || inner_r.callback("inner".into()))
            .join()
            .unwrap();
        assert!(h.run_inbox_once(WAIT));
        assert_eq!(h.protocol.log, ["outer 1", "after inner"]);
        inner2_r.errback(Failure::new("inner failed"));
        assert!(h.run_inbox_once(WAIT));
        assert_eq!(
            h.protocol.log,
            ["outer 1", "after inner", "errback inner failed"]
        );
    }

    #[test]
    fn a_dropped_resolver_errbacks() {
        let mut h = connected();
        let (d, r) = Deferred::<Rec, ()>::new(h.transport());
        d.add_errback(|p, _, f| {
            p.log.push(f.to_string());
            Ok(())
        });
        drop(r.failing_if_dropped("nobody answered"));
        assert!(h.run_inbox_once(WAIT));
        assert_eq!(h.protocol.log, ["nobody answered"]);
    }

    #[test]
    fn work_on_the_pool_fires_on_the_owner_and_a_panic_is_an_errback() {
        let pool = BlockingPool::new(2, 4).unwrap();
        let mut h = connected();
        let owner = thread::current().id();
        defer_to_thread::<Rec, _, _>(&pool, h.transport(), move || Ok(thread::current().id()))
            .add_callback(move |p, _, worker| {
                p.log.push(format!("worker elsewhere: {}", worker != owner));
                p.log.push(format!(
                    "callback on owner: {}",
                    thread::current().id() == owner
                ));
                Ok(())
            });
        assert!(h.run_inbox_once(WAIT));
        defer_to_thread::<Rec, (), _>(&pool, h.transport(), || panic!("work exploded"))
            .add_errback(|p, _, f| {
                p.log.push(format!("{f} {}", f.is_panic()));
                Ok(())
            });
        assert!(h.run_inbox_once(WAIT));
        assert_eq!(
            h.protocol.log,
            [
                "worker elsewhere: true",
                "callback on owner: true",
                "panicked: work exploded true"
            ]
        );
        assert_eq!(pool.alive(), 2);
    }

    #[test]
    fn a_busy_pool_errbacks_with_server_busy() {
        let pool = BlockingPool::new(1, 1).unwrap();
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
        let mut h = connected();
        defer_to_thread::<Rec, (), _>(&pool, h.transport(), move || {
            started_tx.send(()).map_err(|_| Failure::new("test gone"))?;
            let _ = release_rx.recv_timeout(WAIT);
            Ok(())
        });
        started_rx.recv_timeout(WAIT).unwrap();
        defer_to_thread::<Rec, (), _>(&pool, h.transport(), || Ok(())); // queued
        defer_to_thread::<Rec, (), _>(&pool, h.transport(), || Ok(())).add_errback(|p, _, f| {
            p.log.push(f.to_string());
            Ok(())
        });
        assert_eq!(h.run_inbox(), 1);
        assert_eq!(h.protocol.log, ["server busy"]);
        release_tx.send(()).unwrap();
        assert!(h.run_inbox_once(WAIT));
        assert!(h.run_inbox_once(WAIT));
        assert_eq!(h.protocol.log, ["server busy"], "the other two succeeded");
    }

    #[test]
    fn a_result_for_a_closed_connection_is_dropped_quietly() {
        let pool = BlockingPool::new(1, 4).unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        let mut h = connected();
        let flag = ran.clone();
        defer_to_thread::<Rec, (), _>(&pool, h.transport(), move || {
            let _ = release_rx.recv_timeout(WAIT);
            Ok(())
        })
        .add_callback(move |_, _, ()| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        drop(h); // the connection goes away
        release_tx.send(()).unwrap();
        // The pool's one thread delivered (or dropped) the result before it
        // takes the next job.
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        pool.try_run(move || done_tx.send(()).unwrap()).unwrap();
        done_rx.recv_timeout(WAIT).unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(pool.alive(), 1);
    }

    /// Log records, captured for the tests that check what is logged.
    static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            CAPTURED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{} {}", record.level(), record.args()));
        }
        fn flush(&self) {}
    }

    fn captured() -> Vec<String> {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let _ = log::set_logger(&Capture);
            log::set_max_level(log::LevelFilter::Debug);
        });
        CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    #[test]
    fn an_unhandled_failure_is_logged_on_drop_with_its_creation_site() {
        captured();
        let mut h = connected();
        let ((d, r), line) = (Deferred::<Rec, ()>::new(h.transport()), line!());
        let d = d.add_callback(|_, _, ()| Ok(()));
        r.errback(Failure::new("nobody handles unique-4711"));
        assert!(h.run_inbox_once(WAIT));
        let mentions = || {
            captured()
                .into_iter()
                .filter(|l| l.contains("unique-4711"))
                .collect::<Vec<_>>()
        };
        assert!(mentions().is_empty(), "not logged while the Deferred lives");
        drop(d);
        let expected = format!(
            "ERROR Unhandled error in Deferred created at {}:{line}:",
            file!()
        );
        let found = mentions();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(&expected), "{found:?} vs {expected}");

        // A handled failure is not reported.
        let (d, r) = Deferred::<Rec, ()>::new(h.transport());
        let d = d.add_errback(|_, _, _| Ok(()));
        r.errback(Failure::new("handled unique-4712"));
        assert!(h.run_inbox_once(WAIT));
        drop(d);
        assert!(!captured().iter().any(|l| l.contains("unique-4712")));
    }

    #[test]
    fn a_full_inbox_is_waited_on_then_the_result_is_dropped() {
        captured();
        let mut h = Harness::with_inbox_capacity(Rec::default(), 1);
        let handle = h.transport().handle();
        h.connect();
        handle.write("filler").unwrap();
        let (d, r) = Deferred::<Rec, ()>::new(h.transport());
        d.add_callback(|p, _, ()| {
            p.log.push("ran".into());
            Ok(())
        });
        let r = r.with_delivery_timeout(Duration::from_millis(20));
        thread::spawn(move || r.callback(())).join().unwrap();
        assert_eq!(h.run_inbox(), 1); // only the filler: the result was dropped
        assert!(h.protocol.log.is_empty());
        assert!(
            captured().iter().any(|l| l.starts_with(
                "WARN a Deferred result dropped: the inbox of 127.0.0.1:40000 stayed full"
            )),
            "{:?}",
            captured()
        );
    }
}
