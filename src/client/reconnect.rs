//! [`ReconnectingClientFactory`]: Twisted's exponential back-off, to the
//! constant.
//!
//! After a failed attempt or a lost connection the next attempt waits
//! `delay`, drawn from a normal distribution around the current delay with
//! a standard deviation of `delay × jitter`; the delay then grows by
//! `factor` (e), capped at `max_delay` (an hour). So the waits are about
//! 1 s, e s, e² s, … each ±12 %. `max_retries` consecutive failures give
//! up; a successful connection resets the delay; `stop_trying` stops.
//!
//! Time and randomness are injected ([`Clock`], [`Normal`]) so tests run
//! the whole schedule without waiting.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Connector;
use super::factory::{ClientFactory, ConnectError};
use crate::protocol::{Addr, Protocol, Reason};

/// Twisted's `initialDelay`, in seconds.
pub const INITIAL_DELAY: f64 = 1.0;
/// Twisted's `maxDelay`, in seconds.
pub const MAX_DELAY: f64 = 3600.0;
/// Twisted's `factor`: e (`2.7182818284590451` in its source, the same
/// `f64`).
pub const FACTOR: f64 = std::f64::consts::E;
/// Twisted's `jitter` (the molar Planck constant times c, as its source
/// notes), exactly as in Twisted 26.10.0.
pub const JITTER: f64 = 0.119_626_565_582;

/// Runs closures later. The real one uses a thread per pending call; tests
/// use a fake that runs them when told.
pub trait Clock: Send + Sync {
    /// Runs `f` after `delay`, unless the returned call is cancelled.
    fn call_later(&self, delay: Duration, f: Box<dyn FnOnce() + Send>) -> Box<dyn DelayedCall>;
}

/// A pending call made by a [`Clock`].
pub trait DelayedCall: Send {
    /// Stops it from running, if it has not run yet.
    fn cancel(&self);
}

/// A source of normally distributed numbers (Python's
/// `random.normalvariate`).
pub trait Normal: Send {
    /// A sample with this mean and standard deviation.
    fn sample(&mut self, mean: f64, std_dev: f64) -> f64;
}

/// The real clock: each pending call is a small thread waiting on a
/// channel with a timeout; cancelling closes the channel.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadClock;

struct ThreadCall(crossbeam_channel::Sender<()>);

impl DelayedCall for ThreadCall {
    fn cancel(&self) {
        let _ = self.0.try_send(());
    }
}

impl Clock for ThreadClock {
    fn call_later(&self, delay: Duration, f: Box<dyn FnOnce() + Send>) -> Box<dyn DelayedCall> {
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        let spawned = thread::Builder::new()
            .name("spindle-call-later".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = rx.recv_timeout(delay) {
                    f();
                }
            });
        if let Err(e) = spawned {
            log::error!("cannot start a timer thread ({e}); the call is dropped");
        }
        Box::new(ThreadCall(tx))
    }
}

/// A small, fast generator (SplitMix64) with the Box–Muller transform:
/// jitter needs spread, not cryptographic quality.
#[derive(Debug, Clone)]
pub struct SplitMixNormal {
    state: u64,
}

impl SplitMixNormal {
    /// Seeded from `seed`: the same seed gives the same samples.
    pub fn new(seed: u64) -> Self {
        SplitMixNormal { state: seed }
    }

    /// Seeded from the time and the process id.
    pub fn from_time() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

impl Normal for SplitMixNormal {
    fn sample(&mut self, mean: f64, std_dev: f64) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        mean + std_dev * z
    }
}

/// The back-off schedule and its state, without any I/O.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The first wait, in seconds.
    pub initial_delay: f64,
    /// The longest wait before jitter, in seconds.
    pub max_delay: f64,
    /// How much each wait grows.
    pub factor: f64,
    /// The standard deviation of the noise, as a fraction of the wait (0:
    /// none).
    pub jitter: f64,
    /// Give up after this many consecutive retries (`None`: never).
    pub max_retries: Option<u32>,
    /// The next wait before jitter, in seconds.
    pub delay: f64,
    /// Retries since the last success.
    pub retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_delay: INITIAL_DELAY,
            max_delay: MAX_DELAY,
            factor: FACTOR,
            jitter: JITTER,
            max_retries: None,
            delay: INITIAL_DELAY,
            retries: 0,
        }
    }
}

impl Backoff {
    /// One retry, as Twisted's `retry()`: counts it, and returns how long
    /// to wait, or `None` if `max_retries` is exceeded.
    pub fn next(&mut self, normal: &mut dyn Normal) -> Option<Duration> {
        self.retries = self.retries.saturating_add(1);
        if let Some(max) = self.max_retries
            && self.retries > max
        {
            return None;
        }
        if self.jitter != 0.0 {
            self.delay = normal.sample(self.delay, self.delay * self.jitter);
        }
        // Twisted would hand a negative draw to callLater (run at once);
        // say so explicitly. Non-finite values cannot come from finite
        // inputs, but a bad injected source must not panic Duration.
        let wait = if self.delay.is_finite() {
            Duration::from_secs_f64(self.delay.clamp(0.0, 1e9))
        } else {
            Duration::from_secs_f64(self.max_delay.clamp(0.0, 1e9))
        };
        self.delay = (self.delay * self.factor).min(self.max_delay);
        Some(wait)
    }

    /// Back to the initial delay and no retries (Twisted's `resetDelay`).
    pub fn reset(&mut self) {
        self.delay = self.initial_delay;
        self.retries = 0;
    }
}

struct State {
    backoff: Backoff,
    continue_trying: bool,
    pending: Option<Box<dyn DelayedCall>>,
    connector: Option<Connector>,
}

/// Wraps a [`ClientFactory`] and reconnects with Twisted's back-off. The
/// wrapped factory's callbacks still run.
pub struct ReconnectingClientFactory<F> {
    inner: F,
    clock: Arc<dyn Clock>,
    normal: Mutex<Box<dyn Normal>>,
    state: Mutex<State>,
    /// Reset the delay when a connection succeeds (Twisted leaves this to
    /// the protocol's author, and its docs tell every author to do it).
    pub reset_on_connect: bool,
}

impl<F: ClientFactory> ReconnectingClientFactory<F> {
    /// Twisted's constants, the real clock, a time-seeded generator.
    pub fn new(inner: F) -> Self {
        Self::with_parts(
            inner,
            Backoff::default(),
            Arc::new(ThreadClock),
            Box::new(SplitMixNormal::from_time()),
        )
    }

    /// A chosen schedule, clock and random source (tests inject fakes).
    pub fn with_parts(
        inner: F,
        backoff: Backoff,
        clock: Arc<dyn Clock>,
        normal: Box<dyn Normal>,
    ) -> Self {
        ReconnectingClientFactory {
            inner,
            clock,
            normal: Mutex::new(normal),
            state: Mutex::new(State {
                backoff,
                continue_trying: true,
                pending: None,
                connector: None,
            }),
            reset_on_connect: true,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wrapped factory.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The schedule as it stands (delay, retries).
    pub fn backoff(&self) -> Backoff {
        self.state().backoff.clone()
    }

    /// Whether it will still retry.
    pub fn is_trying(&self) -> bool {
        self.state().continue_trying
    }

    /// Schedules `connector.connect()` after the next back-off wait, or
    /// gives up (logged) if stopped or out of retries.
    pub fn retry(&self, connector: &Connector) {
        let mut state = self.state();
        if !state.continue_trying {
            log::info!("Abandoning {connector} on explicit request");
            return;
        }
        state.connector = Some(connector.clone());
        let wait = {
            let mut normal = self.normal.lock().unwrap_or_else(|p| p.into_inner());
            state.backoff.next(&mut **normal)
        };
        let Some(wait) = wait else {
            log::info!(
                "Abandoning {connector} after {} retries.",
                state.backoff.retries
            );
            return;
        };
        log::info!("{connector} will retry in {} seconds", wait.as_secs());
        let again = connector.clone();
        let call = self
            .clock
            .call_later(wait, Box::new(move || again.connect()));
        if let Some(old) = state.pending.replace(call) {
            old.cancel();
        }
    }

    /// Stops retrying: cancels the pending attempt and one in progress.
    pub fn stop_trying(&self) {
        let connector = {
            let mut state = self.state();
            state.continue_trying = false;
            if let Some(call) = state.pending.take() {
                call.cancel();
            }
            state.connector.clone()
        };
        if let Some(c) = connector {
            c.stop_connecting();
        }
    }

    /// Back to the initial delay, no retries counted, trying again
    /// (Twisted's `resetDelay`). With [`reset_on_connect`](Self::reset_on_connect)
    /// off, a protocol calls this once its connection has proved good (say,
    /// after a login), so that a server which accepts and then drops
    /// connections still meets a growing delay.
    pub fn reset_delay(&self) {
        let mut state = self.state();
        state.backoff.reset();
        state.continue_trying = true;
    }
}

impl<F: ClientFactory> ClientFactory for ReconnectingClientFactory<F> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn build_protocol(&self, peer: &Addr) -> Box<dyn Protocol> {
        if self.reset_on_connect {
            let mut state = self.state();
            state.backoff.reset();
        }
        self.inner.build_protocol(peer)
    }

    fn started_connecting(&self, connector: &Connector) {
        self.inner.started_connecting(connector);
    }

    fn client_connection_failed(&self, connector: &Connector, reason: &ConnectError) {
        self.inner.client_connection_failed(connector, reason);
        if self.state().continue_trying {
            self.retry(connector);
        }
    }

    fn client_connection_lost(&self, connector: &Connector, reason: &Reason) {
        self.inner.client_connection_lost(connector, reason);
        if self.state().continue_trying {
            self.retry(connector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns scripted samples and records what it was asked.
    type Asked = Arc<Mutex<Vec<(f64, f64)>>>;

    struct Scripted {
        answers: Vec<f64>,
        asked: Asked,
    }

    impl Normal for Scripted {
        fn sample(&mut self, mean: f64, std_dev: f64) -> f64 {
            self.asked.lock().unwrap().push((mean, std_dev));
            if self.answers.is_empty() {
                mean
            } else {
                self.answers.remove(0)
            }
        }
    }

    fn scripted(answers: Vec<f64>) -> (Scripted, Asked) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        (
            Scripted {
                answers,
                asked: asked.clone(),
            },
            asked,
        )
    }

    /// A factory whose connections never happen in these tests.
    struct NoConnections;

    impl ClientFactory for NoConnections {
        fn build_protocol(&self, _peer: &Addr) -> Box<dyn Protocol> {
            unreachable!("the tests here make no connection")
        }
    }

    #[test]
    fn reset_delay_restores_the_initial_delay_and_trying() {
        let (normal, _) = scripted(vec![]);
        let grown = Backoff {
            delay: 20.0,
            retries: 3,
            ..Backoff::default()
        };
        let f = ReconnectingClientFactory::with_parts(
            NoConnections,
            grown,
            Arc::new(ThreadClock),
            Box::new(normal),
        );
        f.stop_trying();
        assert!(!f.is_trying());
        f.reset_delay();
        assert!(f.is_trying());
        let b = f.backoff();
        assert_eq!((b.delay, b.retries), (INITIAL_DELAY, 0));
    }

    #[test]
    fn twisted_constants() {
        let b = Backoff::default();
        assert_eq!(b.initial_delay, 1.0);
        assert_eq!(b.max_delay, 3600.0);
        assert_eq!(b.factor, std::f64::consts::E);
        assert_eq!(b.jitter, 0.119626565582);
        assert_eq!(b.max_retries, None);
    }

    #[test]
    fn without_noise_the_waits_are_powers_of_e_capped_at_an_hour() {
        let (mut normal, asked) = scripted(vec![]);
        let mut b = Backoff::default();
        let waits: Vec<f64> = (0..12)
            .map(|_| b.next(&mut normal).unwrap().as_secs_f64())
            .collect();
        for (i, w) in waits.iter().enumerate().take(9) {
            let want = std::f64::consts::E.powi(i as i32);
            assert!((w - want).abs() < 1e-6, "wait {i}: {w} vs {want}");
        }
        // e^8 = 2981 < 3600 < e^9: from the tenth wait on, the cap holds.
        assert_eq!(waits[9], 3600.0);
        assert_eq!(waits[11], 3600.0);
        // Every draw was centred on the delay with delay × jitter spread.
        let asked = asked.lock().unwrap();
        assert_eq!(asked[0], (1.0, JITTER));
        assert!((asked[1].0 - std::f64::consts::E).abs() < 1e-12);
        assert!((asked[1].1 - std::f64::consts::E * JITTER).abs() < 1e-12);
        assert_eq!(b.retries, 12);
    }

    #[test]
    fn the_noisy_delay_is_what_grows() {
        // Twisted multiplies the jittered delay, not the clean one.
        let (mut normal, asked) = scripted(vec![1.1, 3.0]);
        let mut b = Backoff::default();
        assert_eq!(b.next(&mut normal), Some(Duration::from_secs_f64(1.1)));
        assert!((b.delay - 1.1 * FACTOR).abs() < 1e-12);
        assert_eq!(b.next(&mut normal), Some(Duration::from_secs_f64(3.0)));
        assert!((asked.lock().unwrap()[1].0 - 1.1 * FACTOR).abs() < 1e-12);
        // A negative draw means "at once", not a panic.
        let (mut normal, _) = scripted(vec![-5.0, f64::NAN]);
        assert_eq!(b.next(&mut normal), Some(Duration::ZERO));
        assert_eq!(b.next(&mut normal), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn max_retries_then_give_up_and_reset_restores() {
        let (mut normal, _) = scripted(vec![]);
        let mut b = Backoff {
            max_retries: Some(2),
            jitter: 0.0,
            ..Backoff::default()
        };
        assert!(b.next(&mut normal).is_some());
        assert!(b.next(&mut normal).is_some());
        assert_eq!(b.next(&mut normal), None);
        b.reset();
        assert_eq!((b.delay, b.retries), (1.0, 0));
        assert_eq!(b.next(&mut normal), Some(Duration::from_secs(1)));
    }

    #[test]
    fn the_thread_clock_runs_due_calls_and_not_cancelled_ones() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let tx2 = tx.clone();
        let cancelled = ThreadClock.call_later(
            Duration::from_secs(3600),
            Box::new(move || tx2.send(1).unwrap()),
        );
        cancelled.cancel();
        let _due = ThreadClock.call_later(Duration::ZERO, Box::new(move || tx.send(2).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(2));
        // The cancelled call's sender is gone once its thread has exited.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn the_real_generator_has_the_asked_for_mean_and_spread() {
        let mut g = SplitMixNormal::new(42);
        let n = 20_000;
        let samples: Vec<f64> = (0..n).map(|_| g.sample(10.0, 2.0)).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 10.0).abs() < 0.1, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.1, "sd {}", var.sqrt());
        let mut again = SplitMixNormal::new(42);
        assert_eq!(again.sample(10.0, 2.0), samples[0]);
    }
}
