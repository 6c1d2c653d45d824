//! Promise 7 of the engine contract on every in-process engine (pool,
//! thread, reactor, hybrid), on real loopback sockets: while a connection's input
//! is paused the engine reads nothing, so the peer's writes block once the
//! kernel's buffers are full; a resume through the connection's handle
//! delivers every byte, in order.
//!
//! The process model runs the same owner loop as pool and thread (one
//! connection per child); the chat paste test drives it through the
//! binary (tests/chat_paste.rs).

mod util;

use std::io::{ErrorKind, Write};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use spindle::{ConnHandle, FnFactory, Model, Protocol, ServerConfig, Transport};
use util::{DEADLINE, connect_addr, wait_until};

util::every_model!(
    a_paused_peer_blocks_and_a_resume_delivers_everything_in_order,
    a_paused_connection_whose_peer_resets_is_lost_inbox_mode,
    a_paused_connection_whose_peer_resets_is_lost_direct_mode,
    a_paused_connection_keeps_a_fin_for_its_place,
);

/// The first line that makes the protocol pause its own input.
const PAUSE: &[u8] = b"PAUSE\n";

/// The read buffer of the server under test: what may be held in memory
/// for a paused connection is a few of these.
const READ_BUFFER: usize = 16 * 1024;

/// Most the client writes while the server is paused before the test
/// gives up on seeing its writes block.
const MOST_UNREAD: usize = 256 * 1024 * 1024;

/// Records every byte it receives; pauses its input once it has seen
/// [`PAUSE`]; gives the test its handle on `connection_made`.
struct Gate {
    got: Arc<Mutex<Vec<u8>>>,
    handles: Sender<ConnHandle>,
    paused_once: bool,
}

impl Protocol for Gate {
    fn connection_made(&mut self, t: &mut Transport) {
        let _ = self.handles.send(t.handle());
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let mut got = self.got.lock().unwrap();
        got.extend_from_slice(data);
        if !self.paused_once && got.starts_with(PAUSE) {
            self.paused_once = true;
            t.pause_producing();
        }
    }
}

/// Byte `i` of the test's stream after the pause line.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

fn a_paused_peer_blocks_and_a_resume_delivers_everything_in_order(model: Model) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let (handles_tx, handles) = crossbeam_channel::unbounded();
    let factory = {
        let got = got.clone();
        FnFactory::new("Gate", move |_| {
            Box::new(Gate {
                got: got.clone(),
                handles: handles_tx.clone(),
                paused_once: false,
            }) as Box<dyn Protocol>
        })
    };
    let config = ServerConfig {
        model,
        workers: 4,
        read_buffer: READ_BUFFER,
        stack_size: model.default_stack_size(),
        ..ServerConfig::default()
    };
    let server = util::start_server(config, factory);
    let mut client = connect_addr(server.tcp_addr());
    let handle = handles.recv_timeout(DEADLINE).expect("connected");
    client.write_all(PAUSE).unwrap();
    assert!(wait_until(DEADLINE, || got.lock().unwrap().len() >= PAUSE.len()));

    // Paused: the client's writes go into the kernel's buffers until they
    // are full, then block.
    client.set_nonblocking(true).unwrap();
    let chunk: Vec<u8> = (0..64 * 1024).map(pattern).collect();
    let mut sent = 0;
    let blocked = loop {
        assert!(sent < MOST_UNREAD, "{sent} bytes written and never blocked");
        // Start where the last write stopped, so the stream is continuous.
        match client.write(&chunk[sent % 251..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
            Err(e) => panic!("write failed: {e}"),
        }
    };
    assert!(blocked);
    let held = got.lock().unwrap().len() - PAUSE.len();
    assert!(
        held <= 4 * READ_BUFFER,
        "{model}: {held} of {sent} bytes were taken while paused"
    );

    // Resumed: everything arrives, in order.
    handle.resume_producing().unwrap();
    client.set_nonblocking(false).unwrap();
    assert!(
        wait_until(DEADLINE, || got.lock().unwrap().len() == PAUSE.len() + sent),
        "{model}: {} of {sent} bytes arrived after the resume",
        got.lock().unwrap().len() - PAUSE.len()
    );
    let got = got.lock().unwrap();
    let wrong = got[PAUSE.len()..]
        .iter()
        .enumerate()
        .position(|(i, b)| *b != pattern(i));
    assert_eq!(wrong, None, "{model}: a byte out of order");
    drop(client);
    server.stop().unwrap();
}

/// Pauses its input on [`PAUSE`]; reports how it ended. With `handle`, it
/// takes its [`ConnHandle`] (inbox mode on the thread engines) and gives
/// it to the test; without, it never does (direct mode).
struct Pauser {
    handle: Option<Sender<ConnHandle>>,
    got: usize,
    lost: Sender<(usize, spindle::Reason)>,
}

impl Protocol for Pauser {
    fn connection_made(&mut self, t: &mut Transport) {
        if let Some(h) = &self.handle {
            let _ = h.send(t.handle());
        }
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if self.got < PAUSE.len() && self.got + data.len() >= PAUSE.len() {
            t.pause_producing();
        }
        self.got += data.len();
    }

    fn connection_lost(&mut self, reason: &spindle::Reason) {
        let _ = self.lost.send((self.got, reason.clone()));
    }
}

/// A server of [`Pauser`]s; its handles (if `handles`) and their ends.
fn pauser_server(
    model: Model,
    handles: bool,
) -> (
    spindle::RunningServer,
    crossbeam_channel::Receiver<ConnHandle>,
    crossbeam_channel::Receiver<(usize, spindle::Reason)>,
) {
    let (handles_tx, handles_rx) = crossbeam_channel::unbounded();
    let (lost_tx, lost) = crossbeam_channel::unbounded();
    let factory = FnFactory::new("Pauser", move |_| {
        Box::new(Pauser {
            handle: handles.then(|| handles_tx.clone()),
            got: 0,
            lost: lost_tx.clone(),
        }) as Box<dyn Protocol>
    });
    let config = ServerConfig {
        model,
        workers: 4,
        read_buffer: READ_BUFFER,
        stack_size: model.default_stack_size(),
        ..ServerConfig::default()
    };
    (util::start_server(config, factory), handles_rx, lost)
}

/// Writes [`PAUSE`] and then more until the paused server's buffers are
/// full and the writes block; returns how much was written.
fn fill_while_paused(client: &mut std::net::TcpStream) -> usize {
    client.write_all(PAUSE).unwrap();
    client.set_nonblocking(true).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = PAUSE.len();
    loop {
        assert!(sent < MOST_UNREAD, "{sent} bytes written and never blocked");
        match client.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

/// The peer of a paused connection resets it: the engine reads nothing,
/// yet the connection is lost (Twisted's paused transport still gets
/// `connectionLost`), promptly, as a broken connection.
fn a_paused_connection_whose_peer_resets_is_lost(model: Model, handles: bool) {
    let (server, handles_rx, lost) = pauser_server(model, handles);
    let mut client = connect_addr(server.tcp_addr());
    if handles {
        handles_rx.recv_timeout(DEADLINE).expect("connected");
    }
    fill_while_paused(&mut client);
    assert!(lost.try_recv().is_err(), "{model}: lost while only paused");
    socket2::SockRef::from(&client)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(client);
    let (got, reason) = lost
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{model}: a reset while paused was never noticed"));
    assert!(
        matches!(reason, spindle::Reason::Lost(_)),
        "{model}: ended with {reason:?}"
    );
    assert!(got >= PAUSE.len(), "{model}: {got} bytes");
    server.stop().unwrap();
}

fn a_paused_connection_whose_peer_resets_is_lost_inbox_mode(model: Model) {
    a_paused_connection_whose_peer_resets_is_lost(model, true);
}

fn a_paused_connection_whose_peer_resets_is_lost_direct_mode(model: Model) {
    a_paused_connection_whose_peer_resets_is_lost(model, false);
}

/// A FIN is not a reset: a paused connection whose peer finished sending
/// stays open, and once resumed gets all the input before the EOF, then
/// ends cleanly.
fn a_paused_connection_keeps_a_fin_for_its_place(model: Model) {
    let (server, handles_rx, lost) = pauser_server(model, true);
    let mut client = connect_addr(server.tcp_addr());
    let handle = handles_rx.recv_timeout(DEADLINE).expect("connected");
    let sent = fill_while_paused(&mut client);
    client.shutdown(std::net::Shutdown::Write).unwrap();
    // Whatever the engine does with the FIN, it must not end the
    // connection while paused: a resume is still owed the input. The
    // handle's resume is taken by an open connection only.
    assert!(
        lost.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "{model}: a paused connection ended on its peer's FIN"
    );
    handle.resume_producing().unwrap();
    let (got, reason) = lost
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{model}: never ended after the resume"));
    assert_eq!(got, sent, "{model}: input lost");
    assert_eq!(reason, spindle::Reason::Done, "{model}");
    drop(client);
    server.stop().unwrap();
}
