//! ReconnectingClientFactory driving real connection attempts on loopback,
//! with a fake clock: the back-off waits are recorded, never slept.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spindle::client::reconnect::{Backoff, Clock, DelayedCall, Normal};
use spindle::client::{
    ClientConfig, ClientEndpoint, ClientFactory, ConnectError, Connector, ReconnectingClientFactory,
};
use spindle::{Addr, Endpoint, Protocol, Reason, Server, ServerConfig, Transport};

const WAIT: Duration = Duration::from_secs(10);

type Call = (Duration, Box<dyn FnOnce() + Send>, Arc<AtomicBool>);

/// Keeps calls until the test fires them.
#[derive(Default)]
struct FakeClock {
    calls: Mutex<Vec<Call>>,
    scheduled: AtomicUsize,
}

struct FakeCall(Arc<AtomicBool>);

impl DelayedCall for FakeCall {
    fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn call_later(&self, delay: Duration, f: Box<dyn FnOnce() + Send>) -> Box<dyn DelayedCall> {
        let cancelled = Arc::new(AtomicBool::new(false));
        self.calls
            .lock()
            .unwrap()
            .push((delay, f, cancelled.clone()));
        self.scheduled.fetch_add(1, Ordering::SeqCst);
        Box::new(FakeCall(cancelled))
    }
}

impl FakeClock {
    /// Waits (bounded) until `n` calls were ever scheduled.
    fn wait_scheduled(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.scheduled.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "call {n} was never scheduled");
            std::thread::yield_now();
        }
    }

    /// Runs the oldest pending call; returns its delay, or None if it was
    /// cancelled.
    fn fire(&self) -> Option<Duration> {
        let (delay, f, cancelled) = self.calls.lock().unwrap().remove(0);
        if cancelled.load(Ordering::SeqCst) {
            return None;
        }
        f();
        Some(delay)
    }

    fn pending(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

/// No noise: the mean itself.
struct Mean;
impl Normal for Mean {
    fn sample(&mut self, mean: f64, _: f64) -> f64 {
        mean
    }
}

/// Counts attempts and failures; its protocol says hello and hangs up.
#[derive(Default)]
struct Counting {
    started: AtomicUsize,
    failed: AtomicUsize,
    made: Arc<AtomicUsize>,
    lost: AtomicUsize,
}

struct HangUp(Arc<AtomicUsize>);
impl Protocol for HangUp {
    fn connection_made(&mut self, t: &mut Transport) {
        self.0.fetch_add(1, Ordering::SeqCst);
        t.lose_connection();
    }
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
}

impl ClientFactory for Counting {
    fn build_protocol(&self, _: &Addr) -> Box<dyn Protocol> {
        Box::new(HangUp(self.made.clone()))
    }
    fn started_connecting(&self, _: &Connector) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn client_connection_failed(&self, _: &Connector, reason: &ConnectError) {
        assert!(reason.is_refused(), "{reason}");
        self.failed.fetch_add(1, Ordering::SeqCst);
    }
    fn client_connection_lost(&self, _: &Connector, _: &Reason) {
        self.lost.fetch_add(1, Ordering::SeqCst);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn factory(
    clock: Arc<FakeClock>,
    max_retries: Option<u32>,
) -> Arc<ReconnectingClientFactory<Counting>> {
    let backoff = Backoff {
        max_retries,
        ..Backoff::default()
    };
    Arc::new(ReconnectingClientFactory::with_parts(
        Counting::default(),
        backoff,
        clock,
        Box::new(Mean),
    ))
}

#[test]
fn refused_attempts_back_off_by_e_until_stopped() {
    let clock = Arc::new(FakeClock::default());
    let f = factory(clock.clone(), None);
    let ep = ClientEndpoint::parse(&format!("tcp:127.0.0.1:{}", free_port())).unwrap();
    let connector = spindle::client::connect(&ep, f.clone(), ClientConfig::default());
    let mut waits = Vec::new();
    for n in 1..=4 {
        clock.wait_scheduled(n);
        assert!(connector.wait(WAIT));
        waits.push(clock.fire().expect("not cancelled").as_secs_f64());
    }
    clock.wait_scheduled(5);
    assert!(connector.wait(WAIT));
    let want = [
        1.0,
        std::f64::consts::E,
        std::f64::consts::E.powi(2),
        std::f64::consts::E.powi(3),
    ];
    for (w, x) in waits.iter().zip(want) {
        assert!((w - x).abs() < 1e-6, "{waits:?}");
    }
    assert_eq!(f.inner().started.load(Ordering::SeqCst), 5);
    assert_eq!(f.inner().failed.load(Ordering::SeqCst), 5);
    // stop_trying cancels the pending call: firing it does nothing.
    f.stop_trying();
    assert!(!f.is_trying());
    assert_eq!(clock.pending(), 1);
    assert_eq!(clock.fire(), None);
    assert!(connector.wait(WAIT));
    assert_eq!(f.inner().started.load(Ordering::SeqCst), 5);
}

#[test]
fn max_retries_abandons() {
    let clock = Arc::new(FakeClock::default());
    let f = factory(clock.clone(), Some(2));
    let ep = ClientEndpoint::parse(&format!("tcp:127.0.0.1:{}", free_port())).unwrap();
    let connector = spindle::client::connect(&ep, f.clone(), ClientConfig::default());
    for n in 1..=2 {
        clock.wait_scheduled(n);
        assert!(connector.wait(WAIT));
        clock.fire();
    }
    // The third failure exceeds max_retries: nothing more is scheduled.
    let deadline = Instant::now() + WAIT;
    while f.inner().failed.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    assert!(connector.wait(WAIT));
    assert_eq!(clock.pending(), 0);
    assert_eq!(f.backoff().retries, 3);
}

#[test]
fn a_lost_connection_reconnects_after_the_reset_delay() {
    let mut server = Server::new(ServerConfig::default());
    server
        .listen(
            &Endpoint::loopback_any_port(),
            Arc::new(spindle::protocols::echo::factory()),
        )
        .unwrap();
    let server = server.spawn().unwrap();
    let clock = Arc::new(FakeClock::default());
    let f = factory(clock.clone(), None);
    let ep = ClientEndpoint::parse(&format!("tcp:127.0.0.1:{}", server.tcp_addr().port())).unwrap();
    let connector = spindle::client::connect(&ep, f.clone(), ClientConfig::default());
    for n in 1..=3 {
        clock.wait_scheduled(n);
        assert!(connector.wait(WAIT));
        // Every connection succeeded, so every wait is the initial one.
        assert_eq!(clock.fire(), Some(Duration::from_secs(1)));
    }
    clock.wait_scheduled(4);
    assert!(connector.wait(WAIT));
    assert_eq!(f.inner().made.load(Ordering::SeqCst), 4);
    assert_eq!(f.inner().lost.load(Ordering::SeqCst), 4);
    f.stop_trying();
    assert_eq!(clock.fire(), None);
    server.stop().unwrap();
}
