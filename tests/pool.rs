//! What only the pool engine does, on real loopback sockets: the worker
//! bound, the waiting queue and its refusal, a reset peer amid big writes,
//! and one factory on two ports. The contract every engine keeps (timeouts,
//! handles, timers, panics, graceful stop, max connections...) is tested for
//! the pool with the other engines in tests/engines.rs.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    util::start_server(config, factory)
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
