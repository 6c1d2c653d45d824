//! Deferred results, defer_to_thread, timers and child processes on the
//! pool engine, over real loopback sockets.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread::{self, ThreadId};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use spindle::blocking::BlockingPool;
use spindle::deferred::{Failure, defer_to_thread};
use spindle::spawn::{ProcessEnd, ProcessProtocol, spawn_process};
use spindle::{
    Endpoint, FnFactory, Protocol, Reason, RunningServer, Server, ServerConfig, Transport,
};
use util::{DEADLINE, connect_addr, wait_until};

fn start(build: impl Fn() -> Box<dyn Protocol> + Send + Sync + 'static) -> RunningServer {
    let mut server = Server::new(ServerConfig {
        workers: 4,
        close_linger: Duration::from_millis(100),
        ..ServerConfig::default()
    });
    let factory = FnFactory::new("TestFactory", move |_: &spindle::Addr| build());
    server
        .listen(&Endpoint::loopback_any_port(), Arc::new(factory))
        .expect("binds");
    server.spawn().expect("starts")
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("reads a line");
    line
}

/// Defers work on each line and reports which threads ran what.
struct ThreadReport {
    pool: Arc<BlockingPool>,
}

impl Protocol for ThreadReport {
    fn data_received(&mut self, _: &[u8], t: &mut Transport) {
        let owner = thread::current().id();
        defer_to_thread::<ThreadReport, ThreadId, _>(&self.pool, t, || Ok(thread::current().id()))
            .add_callback(move |_, t, worker| {
                let here = thread::current().id();
                t.write(
                    format!(
                        "worker_is_owner={} callback_on_owner={}\n",
                        worker == owner,
                        here == owner
                    )
                    .as_bytes(),
                );
                Ok(())
            });
        defer_to_thread::<ThreadReport, (), _>(&self.pool, t, || -> Result<(), Failure> {
            panic!("deliberate")
        })
        .add_errback(move |_, t, failure| {
            let here = thread::current().id();
            t.write(format!("errback_on_owner={} {failure}\n", here == owner).as_bytes());
            Ok(())
        });
    }
}

#[test]
fn deferred_callbacks_run_on_the_owner_and_a_panic_is_an_errback() {
    let pool = Arc::new(BlockingPool::new(2, 8).unwrap());
    let p = pool.clone();
    let server = start(move || Box::new(ThreadReport { pool: p.clone() }));
    let mut s = connect_addr(server.tcp_addr());
    s.write_all(b"go\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut lines = [read_line(&mut r), read_line(&mut r)];
    lines.sort();
    assert_eq!(
        lines,
        [
            "errback_on_owner=true panicked: deliberate\n",
            "worker_is_owner=false callback_on_owner=true\n"
        ]
    );
    // Again, after the panic: the pool kept its size and still works.
    s.write_all(b"again\n").unwrap();
    let mut lines = [read_line(&mut r), read_line(&mut r)];
    lines.sort();
    assert_eq!(lines[1], "worker_is_owner=false callback_on_owner=true\n");
    assert_eq!(pool.alive(), 2);
}

/// Defers work that waits for the test's go-ahead; reports its loss.
struct Waiter {
    pool: Arc<BlockingPool>,
    release: Receiver<()>,
    lost: Sender<()>,
    delivered: Sender<()>,
}

impl Protocol for Waiter {
    fn data_received(&mut self, _: &[u8], t: &mut Transport) {
        let release = self.release.clone();
        let delivered = self.delivered.clone();
        defer_to_thread::<Waiter, (), _>(&self.pool, t, move || {
            let _ = release.recv_timeout(DEADLINE);
            Ok(())
        })
        .add_both(move |_, _, _| {
            let _ = delivered.send(());
            Ok(())
        });
    }

    fn connection_lost(&mut self, _: &Reason) {
        let _ = self.lost.send(());
    }
}

#[test]
fn a_result_for_a_connection_already_gone_is_dropped_and_the_server_goes_on() {
    let pool = Arc::new(BlockingPool::new(1, 8).unwrap());
    let (release_tx, release_rx) = crossbeam_channel::unbounded();
    let (lost_tx, lost_rx) = crossbeam_channel::unbounded();
    let (delivered_tx, delivered_rx) = crossbeam_channel::unbounded();
    let p = pool.clone();
    let server = start(move || {
        Box::new(Waiter {
            pool: p.clone(),
            release: release_rx.clone(),
            lost: lost_tx.clone(),
            delivered: delivered_tx.clone(),
        })
    });
    let mut s = connect_addr(server.tcp_addr());
    s.write_all(b"x").unwrap();
    drop(s);
    lost_rx.recv_timeout(DEADLINE).expect("the connection ends");
    release_tx.send(()).unwrap();
    // The pool's one thread finished that job (delivering into nothing)
    // before it runs the next one.
    let (tx, rx) = crossbeam_channel::bounded(1);
    pool.try_run(move || tx.send(()).unwrap()).unwrap();
    rx.recv_timeout(DEADLINE).unwrap();
    assert!(
        delivered_rx.try_recv().is_err(),
        "no callback ran for the closed connection"
    );
    // A new connection is served as usual.
    let mut s = connect_addr(server.tcp_addr());
    s.write_all(b"y").unwrap();
    release_tx.send(()).unwrap();
    delivered_rx
        .recv_timeout(DEADLINE)
        .expect("the live connection gets its result");
    drop(s);
    lost_rx.recv_timeout(DEADLINE).unwrap();
}

/// Schedules timers out of order, cancels one, and closes at the last.
struct Timers {
    inbox_mode: bool,
}

impl Protocol for Timers {
    fn connection_made(&mut self, t: &mut Transport) {
        if self.inbox_mode {
            t.handle();
        }
        let owner = thread::current().id();
        let check = move |t: &mut Transport, tag: &str| {
            let tag = if thread::current().id() == owner {
                tag.to_string()
            } else {
                format!("{tag}(elsewhere)")
            };
            t.write(tag.as_bytes());
        };
        t.call_later(Duration::from_millis(40), move |_: &mut Timers, t| {
            check(t, "b")
        });
        t.call_later(Duration::from_millis(10), move |_: &mut Timers, t| {
            check(t, "a")
        });
        let x = t.call_later(Duration::from_millis(20), |_: &mut Timers, t| t.write(b"x"));
        t.call_later(Duration::from_millis(60), move |_: &mut Timers, t| {
            check(t, "c\n");
            t.lose_connection();
        });
        assert!(t.cancel_timer(x));
    }

    fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
}

#[test]
fn timers_fire_in_order_on_the_owner_and_cancel_in_both_owner_modes() {
    for inbox_mode in [false, true] {
        let server = start(move || Box::new(Timers { inbox_mode }));
        let s = connect_addr(server.tcp_addr());
        let mut r = BufReader::new(s);
        assert_eq!(read_line(&mut r), "abc\n", "inbox mode: {inbox_mode}");
    }
}

/// Runs `sleep 30` on connect and tells the client its pid.
struct Sleeper {
    pool: Arc<BlockingPool>,
    ended: Sender<ProcessEnd>,
}

struct Silent(Sender<ProcessEnd>);

impl ProcessProtocol<Sleeper> for Silent {
    fn process_ended(&mut self, end: &ProcessEnd, _: &mut Sleeper, _: &mut Transport) {
        let _ = self.0.send(end.clone());
    }
}

impl Protocol for Sleeper {
    fn connection_made(&mut self, t: &mut Transport) {
        let pp = Silent(self.ended.clone());
        match spawn_process(&self.pool, t, &["sleep", "30"], Duration::from_secs(60), pp) {
            Ok(child) => t.write(format!("{}\n", child.pid()).as_bytes()),
            Err(e) => t.write(format!("error {e}\n").as_bytes()),
        }
    }

    fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
}

#[test]
fn closing_the_connection_kills_and_reaps_its_child() {
    let pool = Arc::new(BlockingPool::new(2, 8).unwrap());
    let (ended_tx, ended_rx) = crossbeam_channel::unbounded();
    let p = pool.clone();
    let server = start(move || {
        Box::new(Sleeper {
            pool: p.clone(),
            ended: ended_tx.clone(),
        })
    });
    let s = connect_addr(server.tcp_addr());
    let mut r = BufReader::new(s);
    let pid: u32 = read_line(&mut r).trim().parse().expect("a pid");
    let proc_dir = format!("/proc/{pid}");
    let state = std::fs::read_to_string(format!("{proc_dir}/stat")).expect("the child runs");
    assert!(state.contains("(sleep)"), "{state}");
    drop(r);
    // Gone from /proc: killed *and* reaped (a zombie would still be listed).
    assert!(
        wait_until(DEADLINE, || !std::path::Path::new(&proc_dir).exists()),
        "process {pid} is still there: {:?}",
        std::fs::read_to_string(format!("{proc_dir}/stat"))
    );
    assert!(
        ended_rx.try_recv().is_err(),
        "nothing delivered to a closed connection"
    );
}
