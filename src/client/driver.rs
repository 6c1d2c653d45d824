//! The owner of one client connection: the same contract as the server
//! side's owner loop (`engine/connection.rs`), kept by a loop of its own
//! because a client connection may be TLS, which that loop does not know.
//!
//! A reader thread moves raw socket bytes into a channel; the owner waits
//! on that channel, the connection's inbox ([`ConnHandle`] commands) and
//! its timers, and runs one callback at a time. With TLS the owner holds
//! the `rustls` session: raw bytes go in, plaintext comes out to the
//! protocol, and the protocol's writes are encrypted and sent by the owner.
//! Writes are sent after each callback, blocking, bounded by the write
//! timeout.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, never, select};

use super::ClientConfig;
use super::dial::Opened;
use super::factory::ClientFactory;
use crate::engine::Stream;
use crate::log::ContextGuard;
use crate::protocol::{Addr, Protocol, Reason};
use crate::transport::{Closing, ConnHandle, ConnInfo, OwnerLink, Transport};

/// Most plaintext bytes handed to the protocol in one `data_received`.
const PLAINTEXT_CHUNK: usize = 16 * 1024;

enum ReadEvent {
    Data(Vec<u8>),
    Eof,
    Failed(io::Error),
}

/// How a [`ConnHandle`]'s `abort_connection` gets through a full inbox:
/// shut the socket down, which wakes both the reader and a blocked write.
struct ClientLink {
    socket: Stream,
    killed: AtomicBool,
}

impl OwnerLink for ClientLink {
    fn wake(&self) {}
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(Shutdown::Both);
    }
    /// The client driver keeps no deadlines of its own: the stricter
    /// reading of "closed by then at the latest" is now.
    fn close_by(&self, _deadline: std::time::Instant) {
        self.kill();
    }
}

/// Text of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

fn local_addr(stream: &Stream) -> Addr {
    match stream {
        Stream::Tcp(s) => s
            .local_addr()
            .map(Addr::Tcp)
            .unwrap_or_else(|_| Addr::Unix(Default::default())),
        Stream::Unix(_) => Addr::Unix(Default::default()),
    }
}

/// Serves one connected client connection to its end and returns why it
/// ended (after the protocol's `connection_lost`). `on_handle` gets the
/// connection's handle before `connection_made`.
pub(crate) fn run(
    opened: Opened,
    factory: &dyn ClientFactory,
    config: &ClientConfig,
    on_handle: impl FnOnce(ConnHandle),
) -> Reason {
    let Opened { stream, tls } = opened;
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| Addr::Unix(Default::default()));
    let host = local_addr(&stream);
    let protocol = factory.build_protocol(&peer);
    let _context = ContextGuard::enter(format!("{},client", protocol.log_prefix()));
    let clones = stream
        .try_clone()
        .and_then(|a| Ok((a, stream.try_clone()?)));
    let (kill_socket, read_socket) = match clones {
        Ok(pair) => pair,
        Err(e) => {
            let reason = Reason::Lost(format!("cannot clone the socket: {e}"));
            let mut protocol = protocol;
            protocol.connection_lost(&reason);
            return reason;
        }
    };
    let link = Arc::new(ClientLink {
        socket: kill_socket,
        killed: AtomicBool::new(false),
    });
    let info = ConnInfo {
        peer,
        host,
        session: 0,
    };
    let mut transport = Transport::new(info, config.outbound_queue);
    transport.set_link(link.clone());
    on_handle(transport.handle());
    let inbox = transport.take_inbox();
    if let Err(e) = stream.set_write_timeout(config.write_timeout) {
        log::warn!("cannot set the write timeout: {e}");
    }
    let mut owner = Owner {
        stream,
        tls,
        protocol,
        transport,
        link,
        config,
        last_input: Instant::now(),
        reader: None,
    };
    let end = owner.run(read_socket, inbox);
    owner.finish(end)
}

struct End {
    reason: Reason,
    how: Closing,
}

fn clean(reason: Reason) -> End {
    End {
        reason,
        how: Closing::Lose,
    }
}

fn abort(reason: Reason) -> End {
    End {
        reason,
        how: Closing::Abort,
    }
}

struct Owner<'a> {
    stream: Stream,
    tls: Option<Box<rustls::ClientConnection>>,
    protocol: Box<dyn Protocol>,
    transport: Transport,
    link: Arc<ClientLink>,
    config: &'a ClientConfig,
    last_input: Instant,
    reader: Option<thread::JoinHandle<()>>,
}

impl Owner<'_> {
    fn callback(&mut self, f: impl FnOnce(&mut dyn Protocol, &mut Transport)) -> Result<(), End> {
        let protocol = &mut *self.protocol;
        let transport = &mut self.transport;
        match catch_unwind(AssertUnwindSafe(|| f(protocol, transport))) {
            Ok(()) => Ok(()),
            Err(payload) => {
                let msg = panic_text(&*payload);
                log::error!("a callback panicked ({msg}); aborting this connection");
                self.transport.abort_connection();
                Err(abort(Reason::Panicked(msg)))
            }
        }
    }

    /// Sends what the protocol wrote (through TLS if any) and whatever TLS
    /// itself has to say.
    fn flush(&mut self) -> io::Result<()> {
        let out = std::mem::take(self.transport.output_mut());
        match &mut self.tls {
            None => {
                if !out.is_empty() {
                    self.stream.write_all(&out)?;
                }
            }
            Some(conn) => {
                if !out.is_empty() {
                    conn.writer().write_all(&out)?;
                }
                while conn.wants_write() {
                    conn.write_tls(&mut self.stream)?;
                }
            }
        }
        Ok(())
    }

    /// After every callback: send what was written, then see whether the
    /// protocol asked to close.
    fn settle(&mut self) -> Result<(), End> {
        if self.link.killed.load(Ordering::SeqCst) {
            return Err(abort(Reason::Aborted));
        }
        if let Err(e) = self.flush() {
            return Err(match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    log::debug!("write timed out; dropping the connection");
                    abort(Reason::TimedOut("write"))
                }
                _ => abort(Reason::Lost(e.to_string())),
            });
        }
        match self.transport.closing() {
            Closing::No => Ok(()),
            Closing::Lose => Err(clean(Reason::Done)),
            Closing::Abort => Err(abort(Reason::Aborted)),
        }
    }

    fn run(
        &mut self,
        read_socket: Stream,
        inbox: Option<Receiver<crate::transport::Command>>,
    ) -> End {
        match self.try_run(read_socket, inbox) {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    fn try_run(
        &mut self,
        read_socket: Stream,
        inbox: Option<Receiver<crate::transport::Command>>,
    ) -> Result<std::convert::Infallible, End> {
        self.callback(|p, t| p.connection_made(t))?;
        self.settle()?;
        // The handshake may have brought application data along.
        if self.tls.is_some() {
            self.deliver_tls(&[])?;
        }
        let data = self.start_reader(read_socket)?;
        let inbox = inbox.unwrap_or_else(never);
        loop {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            select! {
                recv(data) -> event => match event {
                    Ok(ReadEvent::Data(bytes)) => {
                        self.last_input = Instant::now();
                        if self.tls.is_some() {
                            self.deliver_tls(&bytes)?;
                        } else {
                            self.callback(|p, t| p.data_received(&bytes, t))?;
                        }
                    }
                    Ok(ReadEvent::Eof) | Err(_) => return Err(clean(Reason::Done)),
                    Ok(ReadEvent::Failed(e)) => return Err(abort(Reason::Lost(e.to_string()))),
                },
                recv(inbox) -> command => {
                    if let Ok(command) = command
                        && let Some(f) = self.transport.apply(command)
                    {
                        self.callback(f)?;
                    }
                },
                default(timeout) => self.on_tick()?,
            }
            self.settle()?;
        }
    }

    /// Feeds raw bytes to TLS and hands the plaintext to the protocol,
    /// stopping as soon as it asks to close.
    fn deliver_tls(&mut self, mut raw: &[u8]) -> Result<(), End> {
        loop {
            let Some(conn) = self.tls.as_mut() else {
                return Ok(());
            };
            if !raw.is_empty() {
                conn.read_tls(&mut raw)
                    .map_err(|e| abort(Reason::Lost(format!("TLS: {e}"))))?;
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the server why (an alert), then give up.
                let _ = conn.write_tls(&mut self.stream);
                return Err(abort(Reason::Lost(format!(
                    "TLS: {}",
                    super::tls::describe(&e)
                ))));
            }
            let mut plain = vec![0u8; PLAINTEXT_CHUNK];
            loop {
                let Some(conn) = self.tls.as_mut() else {
                    return Ok(());
                };
                match conn.reader().read(&mut plain) {
                    Ok(0) => return Err(clean(Reason::Done)), // close_notify
                    Ok(n) => {
                        let chunk = &plain[..n];
                        self.callback(|p, t| p.data_received(chunk, t))?;
                        self.settle()?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(abort(Reason::Lost(format!("TLS: {e}")))),
                }
            }
            self.settle()?;
            if raw.is_empty() {
                return Ok(());
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout.map(|d| self.last_input + d);
        match (idle, self.transport.next_timer_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_tick(&mut self) -> Result<(), End> {
        let now = Instant::now();
        while let Some(timer) = self.transport.pop_due_timer(now) {
            self.callback(timer)?;
            self.settle()?;
        }
        if let Some(idle) = self.config.idle_timeout
            && now.duration_since(self.last_input) >= idle
        {
            log::debug!("no input for {idle:?}; closing the idle connection");
            return Err(clean(Reason::TimedOut("idle")));
        }
        Ok(())
    }

    fn start_reader(&mut self, mut socket: Stream) -> Result<Receiver<ReadEvent>, End> {
        let _ = socket.set_read_timeout(None);
        let (tx, rx) = crossbeam_channel::bounded(4);
        let size = self.config.read_buffer.max(512);
        let handle = thread::Builder::new()
            .name("spindle-client-reader".into())
            .stack_size(64 * 1024)
            .spawn(move || read_into(&mut socket, &tx, size))
            .map_err(|e| abort(Reason::Lost(format!("cannot start a reader thread: {e}"))))?;
        self.reader = Some(handle);
        Ok(rx)
    }

    /// Closes as `end` says, then tells the protocol. Returns the reason.
    fn finish(mut self, end: End) -> Reason {
        let wake = match end.how {
            Closing::Abort => {
                self.stream.set_abortive_close();
                Shutdown::Read
            }
            _ => {
                if let Some(conn) = self.tls.as_mut() {
                    conn.send_close_notify();
                }
                let _ = self.flush();
                Shutdown::Both
            }
        };
        let _ = self.stream.shutdown(wake);
        if let Some(handle) = self.reader.take() {
            let _ = handle.join();
        }
        log::debug!("connection lost: {}", end.reason);
        let reason = end.reason;
        let protocol = &mut *self.protocol;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| protocol.connection_lost(&reason))) {
            log::error!("connection_lost panicked ({})", panic_text(&*payload));
        }
        reason
    }
}

/// The reader thread: raw socket bytes to the owner, then EOF or the error.
fn read_into(stream: &mut Stream, tx: &Sender<ReadEvent>, size: usize) {
    let mut buf = vec![0u8; size];
    loop {
        let event = match stream.read(&mut buf) {
            Ok(0) => ReadEvent::Eof,
            Ok(n) => ReadEvent::Data(buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => ReadEvent::Failed(e),
        };
        let last = !matches!(event, ReadEvent::Data(_));
        if tx.send(event).is_err() || last {
            return;
        }
    }
}
