//! The inbox path of every in-process engine (pool, thread, reactor) on
//! real loopback sockets: queued writes batched into one write keep their
//! order up to a close, and `ConnHandle::close_within` ends a connection
//! on time even while its peer never reads (long before the write timeout)
//! or while its owner idles.
//!
//! The process model runs the same owner loop as pool and thread (one
//! connection per child); the chat end-to-end tests drive it through the
//! binary.

mod util;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use spindle::{
    ConnHandle, Factory, FnFactory, HandleError, Model, Protocol, Reason, RunningServer,
    ServerConfig, Transport,
};
use util::{DEADLINE, connect_addr, send};

util::every_model!(
    queued_writes_then_a_close_arrive_whole_and_in_order,
    close_within_ends_a_peer_that_never_reads_before_the_write_timeout,
    close_within_wakes_an_idle_owner,
);

/// Far beyond any wait in these tests: a connection that ends before it
/// was not ended by the write timeout.
const LONG_WRITE_TIMEOUT: Duration = Duration::from_secs(600);

fn config(model: Model, outbound_queue: usize) -> ServerConfig {
    ServerConfig {
        model,
        workers: 8,
        queue: 16,
        stack_size: model.default_stack_size(),
        grace: Duration::from_secs(5),
        close_linger: Duration::from_millis(200),
        write_timeout: Some(LONG_WRITE_TIMEOUT),
        outbound_queue,
        ..ServerConfig::default()
    }
}

fn start(config: ServerConfig, factory: impl Factory) -> RunningServer {
    util::start_server(config, factory)
}

/// Takes a handle on `connection_made` and gives it to the test; reports
/// why it ended. On data it writes `flood` bytes (0: nothing).
struct Handed {
    handles: Sender<ConnHandle>,
    lost: Sender<Reason>,
    flood: usize,
}

impl Protocol for Handed {
    fn connection_made(&mut self, t: &mut Transport) {
        let _ = self.handles.send(t.handle());
    }
    fn data_received(&mut self, _: &[u8], t: &mut Transport) {
        if self.flood > 0 {
            t.write(&vec![b'z'; self.flood]);
        }
    }
    fn connection_lost(&mut self, reason: &Reason) {
        let _ = self.lost.send(reason.clone());
    }
}

/// A server of [`Handed`] connections, and where their handles and ends go.
fn handed_server(
    model: Model,
    outbound_queue: usize,
    flood: usize,
) -> (RunningServer, Receiver<ConnHandle>, Receiver<Reason>) {
    let (handles_tx, handles) = crossbeam_channel::unbounded();
    let (lost_tx, lost) = crossbeam_channel::unbounded();
    let senders = Mutex::new((handles_tx, lost_tx));
    let factory = FnFactory::new("Handed", move |_| {
        let (handles, lost) = senders.lock().unwrap().clone();
        Box::new(Handed {
            handles,
            lost,
            flood,
        }) as Box<dyn Protocol>
    });
    (start(config(model, outbound_queue), factory), handles, lost)
}

/// Reads until EOF or reset (bounded by `DEADLINE` per read); returns
/// what came before.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                assert!(
                    !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                    "the server neither wrote nor closed within {DEADLINE:?}"
                );
                return got;
            }
        }
    }
}

fn queued_writes_then_a_close_arrive_whole_and_in_order(model: Model) {
    const WRITES: usize = 3000;
    let (server, handles, lost) = handed_server(model, WRITES + 2, 0);
    let mut c = connect_addr(server.tcp_addr());
    let handle = handles.recv_timeout(DEADLINE).expect("a handle");
    // Hold the owner busy on a closure while everything queues up behind
    // it, so that it finds a long run of commands waiting: many batches,
    // some ending in the middle of the run.
    let (gate_tx, gate) = crossbeam_channel::bounded::<()>(1);
    handle
        .call(move |_: &mut Handed, _: &mut Transport| {
            let _ = gate.recv_timeout(DEADLINE);
        })
        .unwrap();
    let mut expected = Vec::new();
    for i in 0..WRITES {
        // Sizes from a few bytes to ~20 KiB, so that some batches are more
        // than the socket takes in one write.
        let line = format!("{i:05} {}\n", "x".repeat((i * 7919) % 20_000));
        expected.extend_from_slice(line.as_bytes());
        assert_eq!(handle.write(line), Ok(()), "write {i}");
    }
    assert_eq!(handle.lose_connection(), Ok(()));
    // Nothing queued after the close may be delivered.
    assert_eq!(handle.write("after the close\n"), Ok(()));
    gate_tx.send(()).unwrap();
    let got = read_until_closed(&mut c);
    assert_eq!(got.len(), expected.len(), "bytes received");
    assert!(got == expected, "the bytes arrived out of order");
    assert_eq!(lost.recv_timeout(DEADLINE), Ok(Reason::Done));
}

fn close_within_ends_a_peer_that_never_reads_before_the_write_timeout(model: Model) {
    let (server, handles, lost) = handed_server(model, 8, 64 << 20);
    let mut c = connect_addr(server.tcp_addr());
    let handle = handles.recv_timeout(DEADLINE).expect("a handle");
    send(&mut c, b"go");
    // The owner is stuck writing 64 MiB to us: its inbox fills up.
    let filled = util::wait_until(DEADLINE, || handle.write("more") == Err(HandleError::Full));
    assert!(filled, "the inbox never filled");
    let asked = Instant::now();
    handle.close_within(Duration::from_millis(200));
    let reason = lost
        .recv_timeout(DEADLINE)
        .expect("the connection ended within the deadline's reach");
    let took = asked.elapsed();
    assert_eq!(reason, Reason::TimedOut("close deadline"));
    assert!(
        took >= Duration::from_millis(200),
        "aborted before its deadline ({took:?})"
    );
    // Our side sees the end too, without having read a byte before it.
    let got = read_until_closed(&mut c);
    assert!(got.len() < 64 << 20, "all 64 MiB arrived: nothing was cut");
}

fn close_within_wakes_an_idle_owner(model: Model) {
    let (server, handles, lost) = handed_server(model, 8, 0);
    let mut c = connect_addr(server.tcp_addr());
    let handle = handles.recv_timeout(DEADLINE).expect("a handle");
    // A round trip through the inbox: the owner is now waiting, idle.
    assert_eq!(handle.write("hi\n"), Ok(()));
    let mut hi = [0u8; 3];
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.read_exact(&mut hi).unwrap();
    assert_eq!(&hi, b"hi\n");
    handle.close_within(Duration::from_millis(100));
    assert_eq!(
        lost.recv_timeout(DEADLINE),
        Ok(Reason::TimedOut("close deadline"))
    );
    assert!(read_until_closed(&mut c).is_empty());
}
