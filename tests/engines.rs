//! Every in-process engine (pool, thread, reactor) on real loopback
//! sockets, held to the same contract: concurrency, one callback at a time,
//! handles, timers, bounds, panics, slow peers and graceful stop.
//!
//! Each check is a function of the model; `every_model!` makes one test per
//! model from it. The process model cannot run protocols defined in a test
//! (its children are the `spindle` binary), so it is driven through the
//! binary in `tests/models.rs`.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use spindle::protocols::echo;
use spindle::{
    Addr, ConnHandle, Endpoint, Factory, FnFactory, HandleError, Model, Protocol, Reason, Refusal,
    RunningServer, Server, ServerConfig, Transport,
};
use util::{DEADLINE, connect_addr, read_n, read_to_end, send, wait_until};

util::every_model!(
    many_clients_at_once_each_get_their_own_echo,
    callbacks_of_one_connection_never_overlap,
    handles_write_and_run_closures_on_the_owner,
    a_close_queued_through_the_inbox_closes,
    timers_fire_and_cancelled_ones_do_not,
    graceful_stop_flushes_what_was_written,
    abort_drops_unsent_output,
    a_panic_costs_only_its_connection,
    idle_connections_time_out,
    idle_clients_do_not_hold_up_shutdown,
    inbox_mode_echoes_and_stops_promptly,
    a_half_closed_peer_still_gets_its_echo,
    a_peer_that_never_reads_does_not_hold_up_others,
    a_peer_that_never_reads_is_dropped_after_the_write_timeout,
    a_client_that_never_reads_is_throttled_not_buffered,
    abort_through_a_full_inbox_always_gets_through,
    max_connections_refuses_beyond_the_cap,
    a_factory_refusal_is_told_to_the_peer,
    a_busy_refusal_reaches_a_client_that_already_sent_a_line,
    a_factory_refusal_reaches_a_client_that_already_sent_a_line,
    unix_sockets_serve_too,
);

fn config(model: Model) -> ServerConfig {
    ServerConfig {
        model,
        workers: 16,
        queue: 64,
        stack_size: model.default_stack_size(),
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

/// Reads to EOF or reset; returns the bytes read before either.
fn read_until_closed(s: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                assert_ne!(
                    e.kind(),
                    ErrorKind::WouldBlock,
                    "the server neither wrote nor closed"
                );
                return total;
            }
        }
    }
}

fn many_clients_at_once_each_get_their_own_echo(model: Model) {
    let server = start(config(model), echo::factory());
    let addr = server.tcp_addr();
    let threads: Vec<_> = (0..48)
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

/// Counts its callbacks and notices if two ever overlap.
#[derive(Default)]
struct Overlaps {
    busy: AtomicBool,
    overlaps: AtomicUsize,
    calls: AtomicUsize,
    rejected: AtomicUsize,
}

/// Echoes, while another thread sends it closures through a handle.
struct Guarded {
    stats: Arc<Overlaps>,
}

/// Closures the other thread sends.
const CLOSURES: usize = 300;

impl Guarded {
    fn enter(&self) {
        if self.stats.busy.swap(true, Ordering::SeqCst) {
            self.stats.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        for _ in 0..2000 {
            std::hint::spin_loop();
        }
        self.stats.calls.fetch_add(1, Ordering::SeqCst);
        self.stats.busy.store(false, Ordering::SeqCst);
    }
}

impl Protocol for Guarded {
    fn connection_made(&mut self, t: &mut Transport) {
        self.enter();
        let handle = t.handle();
        let stats = self.stats.clone();
        thread::spawn(move || {
            let mut sent = 0;
            let deadline = Instant::now() + DEADLINE;
            while sent < CLOSURES && Instant::now() < deadline {
                match handle.call(|p: &mut Guarded, _: &mut Transport| p.enter()) {
                    Ok(()) => sent += 1,
                    Err(HandleError::Full) => {
                        stats.rejected.fetch_add(1, Ordering::SeqCst);
                        thread::yield_now();
                    }
                    // Closed (HandleError may grow: it is non_exhaustive).
                    Err(_) => return,
                }
            }
        });
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.enter();
        t.write(data);
    }
}

fn callbacks_of_one_connection_never_overlap(model: Model) {
    let stats = Arc::new(Overlaps::default());
    let shared = stats.clone();
    let server = start(
        config(model),
        FnFactory::new("Guarded", move |_| {
            Box::new(Guarded {
                stats: shared.clone(),
            }) as Box<dyn Protocol>
        }),
    );
    let mut c = connect_addr(server.tcp_addr());
    for i in 0..200 {
        echo_round_trip(&mut c, format!("m{i};").as_bytes());
    }
    // connection_made + 200 data callbacks + every closure.
    let expected = 1 + 200 + CLOSURES;
    assert!(
        wait_until(DEADLINE, || stats.calls.load(Ordering::SeqCst) >= expected),
        "only {} of {expected} callbacks ran",
        stats.calls.load(Ordering::SeqCst)
    );
    assert_eq!(
        stats.overlaps.load(Ordering::SeqCst),
        0,
        "two callbacks overlapped"
    );
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

fn handles_write_and_run_closures_on_the_owner(model: Model) {
    let server = start(
        config(model),
        FnFactory::new("Ticker", |_| Box::new(Ticker) as Box<dyn Protocol>),
    );
    let mut c = connect_addr(server.tcp_addr());
    let got = String::from_utf8(read_to_end(&mut c)).unwrap();
    assert_eq!(got, "tick 0\ntick 1\ntick 2\nclosing\n");
}

/// On input, queues a write and a close through its own handle: the owner
/// finds both in its inbox in one turn, the close last.
struct QueuesItsOwnClose {
    handle: Option<ConnHandle>,
}

impl Protocol for QueuesItsOwnClose {
    fn connection_made(&mut self, t: &mut Transport) {
        self.handle = Some(t.handle());
    }
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {
        if let Some(handle) = &self.handle {
            handle.write("queued\n").unwrap();
            handle
                .call(|_: &mut QueuesItsOwnClose, t: &mut Transport| t.lose_connection())
                .unwrap();
        }
    }
}

fn a_close_queued_through_the_inbox_closes(model: Model) {
    let server = start(
        config(model),
        FnFactory::new("QueuesItsOwnClose", |_| {
            Box::new(QueuesItsOwnClose { handle: None }) as Box<dyn Protocol>
        }),
    );
    let mut c = connect_addr(server.tcp_addr());
    send(&mut c, b"go");
    assert_eq!(read_to_end(&mut c), b"queued\n");
}

/// Writes from a timer 50 ms after connecting; a cancelled timer never runs.
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

fn timers_fire_and_cancelled_ones_do_not(model: Model) {
    let server = start(
        config(model),
        FnFactory::new("Delayed", |_| Box::new(Delayed) as Box<dyn Protocol>),
    );
    let mut c = connect_addr(server.tcp_addr());
    assert_eq!(read_to_end(&mut c), b"later\n");
}

/// Writes `size` bytes of 'z' when it receives anything, then closes
/// (`abort`: drops them); counts its `connection_lost`.
struct Flood {
    size: usize,
    abort: bool,
    lost: Arc<AtomicUsize>,
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
    fn connection_lost(&mut self, _: &Reason) {
        self.lost.fetch_add(1, Ordering::SeqCst);
    }
}

fn flood(size: usize, abort: bool) -> (impl Factory, Arc<AtomicUsize>) {
    let lost = Arc::new(AtomicUsize::new(0));
    let counter = lost.clone();
    let factory = FnFactory::new("Flood", move |_| {
        Box::new(Flood {
            size,
            abort,
            lost: counter.clone(),
        }) as Box<dyn Protocol>
    });
    (factory, lost)
}

fn graceful_stop_flushes_what_was_written(model: Model) {
    const SIZE: usize = 8 << 20;
    let (factory, _) = flood(SIZE, false);
    let server = start(config(model), factory);
    let mut c = connect_addr(server.tcp_addr());
    send(&mut c, b"go");
    // Read a little so we know the output is on its way, then stop.
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

fn abort_drops_unsent_output(model: Model) {
    let (factory, _) = flood(1 << 20, true);
    let server = start(config(model), factory);
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

fn a_panic_costs_only_its_connection(model: Model) {
    let mut cfg = config(model);
    cfg.workers = 2;
    let server = start(
        cfg,
        FnFactory::new("Fragile", |_| Box::new(Fragile) as Box<dyn Protocol>),
    );
    let addr = server.tcp_addr();
    let mut survivor = connect_addr(addr);
    echo_round_trip(&mut survivor, b"before");
    for _ in 0..6 {
        let mut a = connect_addr(addr);
        send(&mut a, b"boom");
        let mut buf = Vec::new();
        let _ = a.read_to_end(&mut buf);
        assert!(buf.is_empty());
    }
    echo_round_trip(&mut survivor, b"after");
    drop(survivor);
    let mut x = connect_addr(addr);
    let mut y = connect_addr(addr);
    echo_round_trip(&mut x, b"x");
    echo_round_trip(&mut y, b"y");
}

fn idle_connections_time_out(model: Model) {
    let mut cfg = config(model);
    cfg.idle_timeout = Some(Duration::from_millis(200));
    let server = start(cfg, echo::factory());
    let mut c = connect_addr(server.tcp_addr());
    echo_round_trip(&mut c, b"hi");
    let mut other = connect_addr(server.tcp_addr());
    let started = Instant::now();
    assert_eq!(read_to_end(&mut c), b"");
    assert!(started.elapsed() < DEADLINE);
    // The other connection was idle as long: it is closed too.
    assert_eq!(read_to_end(&mut other), b"");
}

fn idle_clients_do_not_hold_up_shutdown(model: Model) {
    let mut cfg = config(model);
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

/// Echoes once it holds a handle (inbox mode on the thread engines).
struct InboxEcho;

impl Protocol for InboxEcho {
    fn connection_made(&mut self, t: &mut Transport) {
        let _ = t.handle();
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

fn inbox_mode_echoes_and_stops_promptly(model: Model) {
    let mut cfg = config(model);
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

fn a_half_closed_peer_still_gets_its_echo(model: Model) {
    let server = start(config(model), echo::factory());
    let mut c = connect_addr(server.tcp_addr());
    send(&mut c, b"last words");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"last words");
}

fn a_peer_that_never_reads_does_not_hold_up_others(model: Model) {
    let mut cfg = config(model);
    cfg.write_timeout = Some(Duration::from_secs(60));
    cfg.grace = Duration::from_millis(500);
    let (factory, _) = flood(64 << 20, false);
    let server = start(cfg, factory);
    let stuck = connect_addr(server.tcp_addr());
    (&stuck).write_all(b"go").unwrap();
    // While 64 MiB wait for a peer that never reads, others are served.
    for _ in 0..3 {
        let mut other = connect_addr(server.tcp_addr());
        send(&mut other, b"go");
        assert_eq!(read_until_closed(&mut other), 64 << 20);
    }
    drop(stuck);
}

fn a_peer_that_never_reads_is_dropped_after_the_write_timeout(model: Model) {
    let mut cfg = config(model);
    cfg.write_timeout = Some(Duration::from_millis(200));
    let (factory, lost) = flood(64 << 20, false);
    let server = start(cfg, factory);
    let mut stuck = connect_addr(server.tcp_addr());
    send(&mut stuck, b"go");
    assert!(
        wait_until(DEADLINE, || lost.load(Ordering::SeqCst) == 1),
        "the connection was not dropped"
    );
    assert!(
        read_until_closed(&mut stuck) < 64 << 20,
        "all of it was sent to a peer that never read"
    );
    drop(server);
}

fn a_client_that_never_reads_is_throttled_not_buffered(model: Model) {
    let server = start(config(model), echo::factory());
    let c = connect_addr(server.tcp_addr());
    c.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // Echo writes back what it reads; once our receive buffer and its send
    // buffer are full, it must stop reading, so our writes stall.
    const LIMIT: usize = 256 << 20;
    let chunk = vec![b'e'; 1 << 16];
    let mut written = 0;
    while written < LIMIT {
        match (&c).write(&chunk) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(
        written < LIMIT,
        "the server kept reading {written} bytes it could not send"
    );
}

/// Hands its handle out, then floods a peer that never reads.
struct Stuck {
    handles: Sender<ConnHandle>,
    lost: Arc<AtomicUsize>,
}

impl Protocol for Stuck {
    fn connection_made(&mut self, t: &mut Transport) {
        let _ = self.handles.send(t.handle());
    }
    fn data_received(&mut self, _: &[u8], t: &mut Transport) {
        t.write(&vec![b'z'; 64 << 20]);
    }
    fn connection_lost(&mut self, _: &Reason) {
        self.lost.fetch_add(1, Ordering::SeqCst);
    }
}

fn abort_through_a_full_inbox_always_gets_through(model: Model) {
    let mut cfg = config(model);
    cfg.outbound_queue = 8;
    cfg.write_timeout = Some(Duration::from_secs(60));
    let (tx, rx) = crossbeam_channel::unbounded();
    let lost = Arc::new(AtomicUsize::new(0));
    let counter = lost.clone();
    let tx = Mutex::new(tx);
    let factory = FnFactory::new("Stuck", move |_| {
        Box::new(Stuck {
            handles: tx.lock().unwrap().clone(),
            lost: counter.clone(),
        }) as Box<dyn Protocol>
    });
    let server = start(cfg, factory);
    let mut c = connect_addr(server.tcp_addr());
    let handle = rx
        .recv_timeout(DEADLINE)
        .expect("the protocol hands out its handle");
    send(&mut c, b"go");
    // The owner is stuck writing to us; its inbox fills up.
    let mut full = false;
    for _ in 0..1000 {
        if handle.write("more") == Err(HandleError::Full) {
            full = true;
            break;
        }
    }
    assert!(full, "an inbox of 8 took 1000 writes");
    handle.abort_connection();
    assert!(
        wait_until(DEADLINE, || lost.load(Ordering::SeqCst) == 1),
        "abort on a full inbox did not end the connection"
    );
    assert!(read_until_closed(&mut c) < 64 << 20);
}

fn max_connections_refuses_beyond_the_cap(model: Model) {
    let mut cfg = config(model);
    cfg.max_connections = 1;
    let factory = FnFactory::new("BusyEcho", |_| Box::new(echo::Echo) as Box<dyn Protocol>)
        .with_busy_message(b"busy, try later\r\n".to_vec());
    let server = start(cfg, factory);
    let addr = server.tcp_addr();
    let mut first = connect_addr(addr);
    echo_round_trip(&mut first, b"1");
    let mut second = connect_addr(addr);
    assert_eq!(read_to_end(&mut second), b"busy, try later\r\n");
    drop(first);
    assert!(wait_until(DEADLINE, || {
        let mut third = connect_addr(addr);
        let _ = third.write_all(b"3");
        let mut b = [0u8; 1];
        matches!(third.read(&mut b), Ok(1))
    }));
}

/// A refused client that wrote before reading (`printf 'help\n' | nc`)
/// still reads the refusal, then a clean EOF: the refusal closes like
/// `lose_connection` (drain, FIN), never with an RST that would destroy
/// the message before it is read.
fn a_busy_refusal_reaches_a_client_that_already_sent_a_line(model: Model) {
    let mut cfg = config(model);
    cfg.max_connections = 1;
    let factory = FnFactory::new("BusyEcho", |_| Box::new(echo::Echo) as Box<dyn Protocol>)
        .with_busy_message(b"busy, try later\r\n".to_vec());
    let server = start(cfg, factory);
    let addr = server.tcp_addr();
    let mut first = connect_addr(addr);
    echo_round_trip(&mut first, b"1");
    for _ in 0..5 {
        let mut refused = connect_addr(addr);
        send(&mut refused, b"help\n");
        assert_eq!(read_to_end(&mut refused), b"busy, try later\r\n");
    }
}

fn a_factory_refusal_reaches_a_client_that_already_sent_a_line(model: Model) {
    let server = start(config(model), Closed);
    for _ in 0..5 {
        let mut c = connect_addr(server.tcp_addr());
        send(&mut c, b"help\n");
        assert_eq!(read_to_end(&mut c), b"sorry, closed\r\n");
    }
}

/// Refuses everyone, with words.
struct Closed;

impl Factory for Closed {
    fn name(&self) -> &str {
        "Closed"
    }
    fn build_protocol(&self, _: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        Err(Refusal {
            reason: "closed for the day".into(),
            message: Some(b"sorry, closed\r\n".to_vec()),
        })
    }
}

fn a_factory_refusal_is_told_to_the_peer(model: Model) {
    let server = start(config(model), Closed);
    let mut c = connect_addr(server.tcp_addr());
    assert_eq!(read_to_end(&mut c), b"sorry, closed\r\n");
}

fn unix_sockets_serve_too(model: Model) {
    let dir = std::env::temp_dir().join(format!("spindle-engines-{}-{model}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let mut server = Server::new(config(model));
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
