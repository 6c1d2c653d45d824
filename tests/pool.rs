//! The pool engine on real loopback sockets: bounds, refusals, timeouts,
//! handles, panics and graceful shutdown.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use spindle::protocols::echo;
use spindle::{
    Addr, Endpoint, Factory, FnFactory, Protocol, Refusal, RunningServer, Server, ServerConfig,
    Transport,
};
use util::{DEADLINE, connect_addr, read_n, read_to_end, send, wait_until};

fn config(workers: usize, queue: usize) -> ServerConfig {
    ServerConfig {
        workers,
        queue,
        grace: Duration::from_secs(5),
        close_linger: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

fn start(config: ServerConfig, factory: impl Factory) -> RunningServer {
    let mut server = Server::new(config);
    server
        .listen(&Endpoint::loopback_any_port(), Arc::new(factory))
        .expect("binds");
    server.spawn().expect("starts")
}

fn echo_round_trip(s: &mut TcpStream, msg: &[u8]) {
    send(s, msg);
    assert_eq!(read_n(s, msg.len()), msg);
}

/// Whether nothing arrives on `s` for `quiet`: for asserting that a client
/// waits. The wait is the assertion's own bound, not a synchronisation.
fn stays_silent(s: &mut TcpStream, quiet: Duration) -> bool {
    s.set_read_timeout(Some(quiet)).unwrap();
    let mut b = [0u8; 1];
    let silent = matches!(s.read(&mut b), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    silent
}

#[test]
fn the_client_beyond_the_workers_waits_then_is_served() {
    let server = start(config(2, 4), echo::factory());
    let addr = server.tcp_addr();
    let mut a = connect_addr(addr);
    let mut b = connect_addr(addr);
    echo_round_trip(&mut a, b"a");
    echo_round_trip(&mut b, b"b");
    let mut c = connect_addr(addr);
    send(&mut c, b"c");
    assert!(
        stays_silent(&mut c, Duration::from_millis(300)),
        "a third client was served by two workers"
    );
    drop(a);
    assert_eq!(
        read_n(&mut c, 1),
        b"c",
        "the waiting client is served once a worker frees up"
    );
    echo_round_trip(&mut b, b"still here");
}

#[test]
fn a_full_queue_refuses_with_the_factory_busy_message() {
    let factory = FnFactory::new("BusyEcho", |_| Box::new(echo::Echo) as Box<dyn Protocol>)
        .with_busy_message(b"busy, try later\r\n".to_vec());
    let server = start(config(1, 1), factory);
    let addr = server.tcp_addr();
    let mut served = connect_addr(addr);
    echo_round_trip(&mut served, b"x");
    let queued = connect_addr(addr);
    // The queued client is accepted (into the queue) before the next one.
    let mut refused = connect_addr(addr);
    let got = read_to_end(&mut refused);
    assert_eq!(got, b"busy, try later\r\n");
    drop(served);
    let mut queued = queued;
    echo_round_trip(&mut queued, b"y");
}

#[test]
fn max_connections_refuses_beyond_the_cap() {
    let mut cfg = config(4, 4);
    cfg.max_connections = 1;
    let server = start(cfg, echo::factory());
    let addr = server.tcp_addr();
    let mut first = connect_addr(addr);
    echo_round_trip(&mut first, b"1");
    let mut second = connect_addr(addr);
    assert_eq!(
        read_to_end(&mut second),
        b"",
        "refused silently: echo has no words for it"
    );
    drop(first);
    assert!(wait_until(DEADLINE, || {
        let mut third = connect_addr(addr);
        let _ = third.write_all(b"3");
        let mut b = [0u8; 1];
        matches!(third.read(&mut b), Ok(1))
    }));
}

/// Writes `size` bytes of 'z' when it receives anything; `abort` drops them.
struct Flood {
    size: usize,
    abort: bool,
}

impl Protocol for Flood {
    fn data_received(&mut self, _: &[u8], t: &mut Transport) {
        t.write(&vec![b'z'; self.size]);
        if self.abort {
            t.abort_connection();
        } else {
            t.lose_connection();
        }
    }
}

#[test]
fn graceful_stop_flushes_what_was_written() {
    const SIZE: usize = 8 << 20;
    let server = start(
        config(2, 2),
        FnFactory::new("Flood", |_| {
            Box::new(Flood {
                size: SIZE,
                abort: false,
            }) as Box<dyn Protocol>
        }),
    );
    let mut c = connect_addr(server.tcp_addr());
    send(&mut c, b"go");
    // Read a little so we know the owner is mid-write, then stop the server.
    let first = read_n(&mut c, 1024);
    assert!(first.iter().all(|&b| b == b'z'));
    let stopper = thread::spawn(move || server.stop());
    let rest = read_to_end(&mut c);
    assert_eq!(
        first.len() + rest.len(),
        SIZE,
        "every written byte arrives before the close"
    );
    stopper.join().unwrap().unwrap();
}

#[test]
fn abort_drops_unsent_output() {
    let server = start(
        config(2, 2),
        FnFactory::new("Flood", |_| {
            Box::new(Flood {
                size: 1 << 20,
                abort: true,
            }) as Box<dyn Protocol>
        }),
    );
    let mut c = connect_addr(server.tcp_addr());
    send(&mut c, b"go");
    let mut buf = Vec::new();
    match c.read_to_end(&mut buf) {
        Ok(_) => assert!(
            buf.is_empty(),
            "aborted output was sent: {} bytes",
            buf.len()
        ),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
}

/// Panics on `boom`, echoes otherwise.
struct Fragile;

impl Protocol for Fragile {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if data.starts_with(b"boom") {
            panic!("boom requested");
        }
        t.write(data);
    }
}

#[test]
fn panics_cost_only_their_connection_and_no_worker() {
    let server = start(
        config(2, 8),
        FnFactory::new("Fragile", |_| Box::new(Fragile) as Box<dyn Protocol>),
    );
    let addr = server.tcp_addr();
    let mut survivor = connect_addr(addr);
    echo_round_trip(&mut survivor, b"before");
    // Panic far more connections than there are workers, two at a time.
    for _ in 0..6 {
        let mut a = connect_addr(addr);
        send(&mut a, b"boom");
        let mut buf = Vec::new();
        let _ = a.read_to_end(&mut buf);
        assert!(buf.is_empty());
    }
    echo_round_trip(&mut survivor, b"after");
    drop(survivor);
    // Both workers still serve.
    let mut x = connect_addr(addr);
    let mut y = connect_addr(addr);
    echo_round_trip(&mut x, b"x");
    echo_round_trip(&mut y, b"y");
}

#[test]
fn idle_connections_time_out() {
    let mut cfg = config(2, 2);
    cfg.idle_timeout = Some(Duration::from_millis(200));
    let server = start(cfg, echo::factory());
    let mut c = connect_addr(server.tcp_addr());
    echo_round_trip(&mut c, b"hi");
    let started = Instant::now();
    assert_eq!(read_to_end(&mut c), b"");
    assert!(started.elapsed() < DEADLINE);
}

/// Takes a handle and writes through it from another thread.
struct Ticker;

impl Protocol for Ticker {
    fn connection_made(&mut self, t: &mut Transport) {
        let handle = t.handle();
        thread::spawn(move || {
            for i in 0..3 {
                handle.write(format!("tick {i}\n")).unwrap();
            }
            handle
                .call(|_: &mut Ticker, t: &mut Transport| {
                    t.write(b"closing\n");
                    t.lose_connection();
                })
                .unwrap();
        });
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

#[test]
fn handles_write_and_run_closures_on_the_owner() {
    let server = start(
        config(2, 2),
        FnFactory::new("Ticker", |_| Box::new(Ticker) as Box<dyn Protocol>),
    );
    let mut c = connect_addr(server.tcp_addr());
    let got = String::from_utf8(read_to_end(&mut c)).unwrap();
    assert_eq!(got, "tick 0\ntick 1\ntick 2\nclosing\n");
}

/// Echoes in inbox mode: input comes through the reader thread.
struct InboxEcho;

impl Protocol for InboxEcho {
    fn connection_made(&mut self, t: &mut Transport) {
        let _ = t.handle();
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

#[test]
fn inbox_mode_echoes_and_stops_promptly() {
    let mut cfg = config(4, 4);
    cfg.grace = Duration::from_secs(30);
    let server = start(
        cfg,
        FnFactory::new("InboxEcho", |_| Box::new(InboxEcho) as Box<dyn Protocol>),
    );
    let mut c = connect_addr(server.tcp_addr());
    for i in 0..50 {
        echo_round_trip(&mut c, format!("message {i}\n").as_bytes());
    }
    let started = Instant::now();
    server.stop().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle inbox connection held up the stop"
    );
    assert_eq!(read_to_end(&mut c), b"");
}

/// Writes `t` from a timer 50 ms after connecting.
struct Delayed;

impl Protocol for Delayed {
    fn connection_made(&mut self, t: &mut Transport) {
        t.call_later(
            Duration::from_millis(50),
            |_: &mut Delayed, t: &mut Transport| {
                t.write(b"later\n");
                t.lose_connection();
            },
        );
        let cancelled = t.call_later(
            Duration::from_millis(10),
            |_: &mut Delayed, t: &mut Transport| {
                t.write(b"cancelled timer ran\n");
            },
        );
        t.cancel_timer(cancelled);
    }
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
}

#[test]
fn timers_fire_on_the_owner_in_direct_mode() {
    let server = start(
        config(2, 2),
        FnFactory::new("Delayed", |_| Box::new(Delayed) as Box<dyn Protocol>),
    );
    let mut c = connect_addr(server.tcp_addr());
    assert_eq!(read_to_end(&mut c), b"later\n");
}

#[test]
fn idle_clients_do_not_hold_up_shutdown() {
    let mut cfg = config(8, 8);
    cfg.grace = Duration::from_secs(30);
    let server = start(cfg, echo::factory());
    let mut clients: Vec<TcpStream> = (0..5).map(|_| connect_addr(server.tcp_addr())).collect();
    for c in &mut clients {
        echo_round_trip(c, b"hello");
    }
    let started = Instant::now();
    server.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    for c in &mut clients {
        assert_eq!(read_to_end(c), b"");
    }
}

#[test]
fn a_half_closed_peer_still_gets_its_echo() {
    let server = start(config(2, 2), echo::factory());
    let mut c = connect_addr(server.tcp_addr());
    send(&mut c, b"last words");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"last words");
}

#[test]
fn a_peer_reset_disturbs_no_one_else() {
    let server = start(
        config(2, 8),
        FnFactory::new("Flood", |_| {
            Box::new(Flood {
                size: 16 << 20,
                abort: false,
            }) as Box<dyn Protocol>
        }),
    );
    for _ in 0..3 {
        let c = connect_addr(server.tcp_addr());
        (&c).write_all(b"go").unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c); // RST while the server is writing 16 MiB
    }
    let mut ok = connect_addr(server.tcp_addr());
    send(&mut ok, b"go");
    assert_eq!(read_to_end(&mut ok).len(), 16 << 20);
}

/// Counts start/stop calls and refuses peers once told to.
#[derive(Default)]
struct Counting {
    starts: AtomicUsize,
    stops: AtomicUsize,
}

impl Factory for Counting {
    fn name(&self) -> &str {
        "Counting"
    }
    fn build_protocol(&self, _: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        Err(Refusal {
            reason: "closed for the day".into(),
            message: Some(b"sorry, closed\r\n".to_vec()),
        })
    }
    fn start_factory(&self) {
        self.starts.fetch_add(1, Ordering::SeqCst);
    }
    fn stop_factory(&self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn one_factory_on_two_ports_starts_and_stops_once_and_may_refuse() {
    let factory = Arc::new(Counting::default());
    let mut server = Server::new(config(2, 2));
    server
        .listen(&Endpoint::loopback_any_port(), factory.clone())
        .unwrap();
    let second = server
        .listen(&Endpoint::loopback_any_port(), factory.clone())
        .unwrap();
    let running = server.spawn().unwrap();
    assert!(wait_until(DEADLINE, || factory
        .starts
        .load(Ordering::SeqCst)
        == 1));
    let Addr::Tcp(second) = second else {
        panic!("tcp")
    };
    let mut c = connect_addr(second);
    assert_eq!(read_to_end(&mut c), b"sorry, closed\r\n");
    running.stop().unwrap();
    assert_eq!(factory.starts.load(Ordering::SeqCst), 1);
    assert_eq!(factory.stops.load(Ordering::SeqCst), 1);
}

#[test]
fn unix_sockets_serve_too() {
    let dir = std::env::temp_dir().join(format!("spindle-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let mut server = Server::new(config(2, 2));
    let ep = Endpoint::parse(&format!("unix:{}", path.display())).unwrap();
    server.listen(&ep, Arc::new(echo::factory())).unwrap();
    let running = server.spawn().unwrap();
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(b"over unix").unwrap();
    let mut buf = [0u8; 9];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"over unix");
    drop(c);
    running.stop().unwrap();
    assert!(!path.exists(), "the socket file is removed on stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn many_clients_at_once_each_get_their_own_echo() {
    let server = start(config(16, 64), echo::factory());
    let addr = server.tcp_addr();
    let threads: Vec<_> = (0..32)
        .map(|i| {
            thread::spawn(move || {
                let mut c = connect_addr(addr);
                for j in 0..20 {
                    echo_round_trip(&mut c, format!("{i}:{j};").as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_peer_that_never_reads_is_dropped_after_the_write_timeout() {
    let mut cfg = config(1, 4);
    cfg.write_timeout = Some(Duration::from_millis(200));
    let server = start(
        cfg,
        FnFactory::new("Flood", |_| {
            Box::new(Flood {
                size: 64 << 20,
                abort: false,
            }) as Box<dyn Protocol>
        }),
    );
    let stuck = connect_addr(server.tcp_addr());
    (&stuck).write_all(b"go").unwrap();
    // The only worker is writing to a peer that never reads; once the write
    // timeout drops that peer, the next client is served.
    let mut next = connect_addr(server.tcp_addr());
    send(&mut next, b"go");
    let got = read_to_end(&mut next);
    assert_eq!(got.len(), 64 << 20);
    drop(stuck);
}
