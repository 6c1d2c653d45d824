//! The owner of one connection on the thread engines: the loop that reads
//! the socket, runs the protocol's callbacks one at a time, and writes what
//! they wrote.
//!
//! Two modes (see DESIGN.md, "The owner of a connection, on threads"):
//!
//! * **Direct**: while nothing outside the connection can reach it, the
//!   owner blocks in `read` itself. One thread, no hop.
//! * **Inbox**: once the protocol takes a [`ConnHandle`](crate::ConnHandle),
//!   a reader thread feeds socket bytes into a channel and the owner waits
//!   on that channel *and* the inbox (writes, closures from other threads),
//!   plus its timers. Still one callback at a time, on the owner.
//!
//! Writes are sent by the owner after each callback, blocking, bounded by
//! the write timeout. In inbox mode an owner woken for a command first
//! yields its CPU once (when fewer than [`GATHER_BELOW`] are queued), so
//! the thread that is queueing a burst can finish it, then runs every
//! command queued (up to [`WRITE_BATCH_BYTES`] of output) before it
//! writes, so a burst of broadcast lines leaves in one `write`, and it
//! writes in slices of at
//! most [`WRITE_SLICE`], so that a connection doomed by
//! [`ConnHandle::close_within`](crate::ConnHandle::close_within) is aborted
//! on time even while its peer does not read.
//!
//! While the protocol's input is paused (promise 7; `Core::wants_input`
//! is false), the owner does not read: in direct mode it waits only for
//! its timers, the stop signal and the socket's hang-up; in inbox mode it
//! stops taking from the reader thread's channel, which holds at most
//! [`READ_AHEAD`] reads, so the reader, with one more read in hand, finds
//! the channel full and reads nothing more. No flag is polled: the
//! bounded channel is what tells the reader, and taking from it again is
//! what resumes it.
//!
//! A paused connection still learns that its peer reset it (Twisted's
//! paused transport still gets `connectionLost`): the reader waits for
//! room in `poll(2)`, on the socket's error and hang-up (not its input)
//! and on a wake-up pipe the owner writes when it takes a read the reader
//! waits to hand over. A hang-up or an error there is a notice the owner
//! hears even while paused, and ends the connection on. A FIN alone is
//! not: like any input, the EOF is read in its place once the protocol
//! resumes, after the data before it.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, select};

use super::ServerConfig;
use super::admission::Admission;
use super::core::{Control, Core, End};
use super::registry::Registry;
use super::stopper::Stopper;
use super::stream::Stream;
use crate::log::{ContextGuard, connection_context};
use crate::protocol::{Addr, Protocol, Reason};
use crate::transport::{Command, ConnInfo, EngineHints, OwnerLink, Transport};

/// Output an owner woken for one inbox command gathers, from the commands
/// queued behind it, before it writes: everything queued when it gets to
/// the write leaves in one `write`, up to this many bytes (a broadcast
/// burst of short lines is one `write`, whatever its count). The bound
/// keeps one batch's output, and the time before it leaves, small.
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// An owner woken for an inbox command while fewer than this many are
/// queued behind it yields its CPU once (`sched_yield`) before it runs
/// them. The thread that woke it is usually still queueing a burst (a
/// broadcast puts a line in every member's inbox, line after line), and
/// on a busy machine the scheduler runs the woken owner at once: without
/// the yield it found one line, wrote it and slept again, once per line
/// (measured on the chat fan-out: 0.8 `sendto` and 1.9 `futex` calls per
/// delivered line, against 0.03 and 0.01 for the bare thread chat; NOTES,
/// "Chat fan-out"). With nothing else to run the yield returns at once.
pub const GATHER_BELOW: usize = 64;

/// Commands one batch runs at most, for closures that write nothing.
pub const COMMANDS_PER_WRITE: usize = 4096;

/// In inbox mode a write to a peer that does not read blocks for at most
/// this long at a time; between slices the owner checks the deadline set
/// by [`ConnHandle::close_within`](crate::ConnHandle::close_within), so
/// that deadline is kept to within this much. The write timeout still
/// counts from the last progress, as before.
pub const WRITE_SLICE: Duration = Duration::from_millis(100);

/// Reads the reader thread may queue ahead of its owner in inbox mode:
/// while the owner is paused, the memory held for unread input is these
/// plus the one the reader holds, each at most `--read-buffer` bytes.
pub const READ_AHEAD: usize = 1;

/// What every connection of one server shares.
pub(crate) struct ConnEnv {
    pub config: Arc<ServerConfig>,
    pub stopper: Stopper,
    pub registry: Arc<Registry>,
    pub hints: Option<Arc<dyn EngineHints>>,
}

/// What woke an inbox-mode owner.
enum Woke {
    Input(Result<ReadEvent, crossbeam_channel::RecvError>),
    Command(Option<Command>),
    /// The reader, waiting to hand over a read, saw the socket hang up or
    /// fail (a reset while paused).
    HungUp,
    Tick,
}

/// The inbox-mode reader thread, as its owner holds it.
struct Reader {
    data: Receiver<ReadEvent>,
    /// Holds a notice once the reader, waiting for room in `data`, saw the
    /// socket hang up or fail; never disconnected (the gate holds its
    /// sender).
    hung_up: Receiver<()>,
    gate: Arc<Gate>,
    handle: thread::JoinHandle<()>,
}

impl Reader {
    /// The owner took a read from `data`: if the reader waits for that
    /// room, wake it.
    fn took(&self) {
        fence(Ordering::SeqCst);
        if self.gate.waiting.swap(false, Ordering::SeqCst) {
            self.gate.wake();
        }
    }
}

/// What the reader thread and its owner share besides the data channel.
struct Gate {
    /// The reader found the channel full and waits in `poll` for room.
    waiting: AtomicBool,
    /// The owner's end of the wake-up pipe (non-blocking).
    wake_tx: UnixStream,
    hung_up: Sender<()>,
}

impl Gate {
    fn wake(&self) {
        // A full pipe already holds a wake-up; nothing else can fail here.
        let _ = (&self.wake_tx).write(&[1]);
    }
}

/// A reader thread's report to the owner in inbox mode.
enum ReadEvent {
    Data(Vec<u8>),
    Eof,
    Failed(io::Error),
}

/// The engine side of a [`ConnHandle`](crate::ConnHandle) on threads: the
/// inbox channel wakes the owner by itself; `kill` shuts the socket down.
struct ThreadLink {
    registry: Arc<Registry>,
    id: u64,
    control: Arc<Control>,
}

impl OwnerLink for ThreadLink {
    fn wake(&self) {}
    fn kill(&self) {
        self.control.kill();
        self.registry.kill(self.id);
    }
    /// The owner keeps it: between write slices, and in its waits.
    fn close_by(&self, deadline: Instant) {
        self.control.close_by(deadline);
    }
}

/// Builds a protocol for a freshly admitted connection through
/// `admission` (a refusal or a panicking `build_protocol` costs only this
/// connection) and serves it to the end on the calling thread.
pub(crate) fn serve_accepted(
    stream: Stream,
    peer: Addr,
    service: usize,
    session: u64,
    admission: &Admission,
    env: &ConnEnv,
) {
    let Some((stream, protocol)) = admission.build(service, stream, &peer) else {
        return;
    };
    let info = ConnInfo {
        peer,
        host: admission.host(service).clone(),
        session,
    };
    serve(stream, protocol, info, env);
}

/// Serves one connection to the end, on the calling thread.
pub(crate) fn serve(stream: Stream, protocol: Box<dyn Protocol>, info: ConnInfo, env: &ConnEnv) {
    let context = connection_context(
        protocol.log_prefix(),
        info.session,
        &info.peer.host_string(),
    );
    serve_with(stream, protocol, info, env, context, |_| {});
}

/// As [`serve`], logging under `context`; `before` sees the transport
/// before `connection_made` (the client hands out its handle there).
/// Returns why the connection ended, after `connection_lost`.
pub(crate) fn serve_with(
    stream: Stream,
    protocol: Box<dyn Protocol>,
    info: ConnInfo,
    env: &ConnEnv,
    context: String,
    before: impl FnOnce(&mut Transport),
) -> Reason {
    let _context = ContextGuard::enter(context);
    let idle = Arc::new(AtomicBool::new(false));
    let id = env.registry.register(stream.as_raw_fd(), idle.clone());
    let control = Arc::new(Control::default());
    let link = Arc::new(ThreadLink {
        registry: env.registry.clone(),
        id,
        control: control.clone(),
    });
    let mut transport = Transport::new(info, env.config.outbound_queue);
    transport.set_link(link);
    if let Some(h) = &env.hints {
        transport.set_hints(h.clone());
    }
    before(&mut transport);
    stream.set_nodelay();
    if let Err(e) = stream.set_write_timeout(env.config.write_timeout) {
        log::warn!("cannot set the write timeout: {e}");
    }
    let core = Core::new(transport, control, env.config.idle_timeout, Instant::now());
    let mut owner = Owner {
        stream,
        protocol,
        core,
        env,
        registry_id: id,
        read_timeout: None,
        reader: None,
        idle,
        sliced_writes: false,
        peer_fin: false,
    };
    let end = owner.run();
    owner.finish(end)
}

/// The blocking driver of one connection's [`Core`]: it reads, writes and
/// waits; the core decides.
struct Owner<'a> {
    stream: Stream,
    protocol: Box<dyn Protocol>,
    core: Core,
    env: &'a ConnEnv,
    registry_id: u64,
    /// The read timeout currently set on the socket, to skip redundant
    /// `setsockopt` calls on the hot path.
    read_timeout: Option<Duration>,
    reader: Option<Reader>,
    /// Raised while the owner waits for input, so that a stopping server
    /// wakes it (see `Registry::wake_idle`).
    idle: Arc<AtomicBool>,
    /// The socket's send timeout is [`WRITE_SLICE`] (inbox mode).
    sliced_writes: bool,
    /// Direct mode, paused: the peer's FIN is in, unread.
    peer_fin: bool,
}

impl Owner<'_> {
    /// After every event: send what the core says to send (blocking, within
    /// the write timeout), then go on or end as it said.
    fn settle(&mut self, verdict: Result<(), End>) -> Result<(), End> {
        let written = self.write_output();
        match (verdict, written) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(end), Ok(())) => Err(end),
            (_, Err(failed)) => Err(self.core.fail(failed)),
        }
    }

    /// Sends the core's output, all of it or an error.
    fn write_output(&mut self) -> Result<(), End> {
        if self.core.output().is_empty() {
            return Ok(());
        }
        if self.sliced_writes {
            let control = self.core.control().clone();
            let out = self.core.output();
            let result = write_sliced(
                &mut self.stream,
                out,
                &control,
                self.env.config.write_timeout,
            );
            out.clear();
            result
        } else {
            let out = self.core.output();
            let result = self.stream.write_all(out);
            out.clear();
            result.map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    log::info!("write timed out; dropping the connection");
                    End::abort(Reason::TimedOut("write"))
                }
                _ => End::abort(Reason::Lost(e.to_string())),
            })
        }
    }

    fn run(&mut self) -> End {
        match self.try_run() {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    fn try_run(&mut self) -> Result<std::convert::Infallible, End> {
        let made = self.core.made(&mut *self.protocol);
        self.settle(made)?;
        let mut buf = ReadBuffer::new(self.env.config.read_buffer);
        loop {
            if self.core.inbox().is_some() {
                return self.run_inbox();
            }
            if !self.core.wants_input() {
                self.wait_paused()?;
                continue;
            }
            // Raise the idle flag before checking the stop signal: the
            // registry's wake-up cannot then miss this read.
            self.idle.store(true, Ordering::SeqCst);
            if self.env.stopper.is_stopped() {
                return Err(self.core.fail(End::clean(Reason::Shutdown)));
            }
            self.set_read_timeout()?;
            let read = self.stream.read(buf.space());
            self.idle.store(false, Ordering::SeqCst);
            let verdict = match read {
                Ok(0) => return Err(self.eof()),
                Ok(n) => {
                    let data = buf.filled(n);
                    self.core
                        .received(&mut *self.protocol, data, Instant::now())
                }
                Err(e) if is_timeout(&e) => self.core.due(&mut *self.protocol, Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
                Err(e) => return Err(self.core.fail(End::abort(Reason::Lost(e.to_string())))),
            };
            self.settle(verdict)?;
            self.run_overdue_timers()?;
        }
    }

    /// Timers normally run when a wait times out; a peer that keeps
    /// sending (a slowloris trickling a header) would keep that from ever
    /// happening, so overdue timers also run after input.
    fn run_overdue_timers(&mut self) -> Result<(), End> {
        if !self.core.has_timers() {
            return Ok(());
        }
        let now = Instant::now();
        if self.core.timer_due(now) {
            let verdict = self.core.due(&mut *self.protocol, now);
            self.settle(verdict)?;
        }
        Ok(())
    }

    /// Direct mode with input paused: nothing can reach the connection but
    /// its timers (one of which may resume it), the stop signal and the
    /// peer's reset; wait for whichever comes first, reading nothing. The
    /// socket is polled for its read side closing (a shutdown's
    /// `wake_idle` or the peer's FIN) and for errors: a FIN alone is kept
    /// for its place in the input (`peer_fin`), and later waits are for
    /// the timers and the stop signal only.
    fn wait_paused(&mut self) -> Result<(), End> {
        let timeout = self
            .core
            .next_deadline()
            .map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
        if !self.peer_fin {
            self.idle.store(true, Ordering::SeqCst);
            if self.env.stopper.is_stopped() {
                return Err(self.core.fail(End::clean(Reason::Shutdown)));
            }
            let events = libc::POLLRDHUP;
            let polled = poll_fds(&mut [pollfd(self.stream.as_raw_fd(), events)], timeout);
            self.idle.store(false, Ordering::SeqCst);
            let verdict = match polled {
                Ok([0]) => self.core.due(&mut *self.protocol, Instant::now()),
                Ok(_) if self.env.stopper.is_stopped() => {
                    return Err(self.core.fail(End::clean(Reason::Shutdown)));
                }
                Ok([revents]) if revents & (libc::POLLERR | libc::POLLHUP) != 0 => {
                    return Err(self.hung_up());
                }
                Ok(_) => {
                    self.peer_fin = true;
                    Ok(())
                }
                Err(e) => return Err(self.core.fail(End::abort(Reason::Lost(e.to_string())))),
            };
            return self.settle(verdict);
        }
        let stop = self.env.stopper.receiver();
        select! {
            recv(stop) -> _ => Err(self.core.fail(End::clean(Reason::Shutdown))),
            default(timeout) => {
                let verdict = self.core.due(&mut *self.protocol, Instant::now());
                self.settle(verdict)
            }
        }
    }

    /// The socket hung up or failed while input was paused: its pending
    /// error (a reset) ends the connection as a failed read would; without
    /// one (both directions shut down: a kill), as an EOF.
    fn hung_up(&mut self) -> End {
        match self.stream.take_error() {
            Ok(Some(e)) | Err(e) => self.core.fail(End::abort(Reason::Lost(e.to_string()))),
            Ok(None) => self.eof(),
        }
    }

    /// The peer's EOF, or ours from a shutdown.
    fn eof(&mut self) -> End {
        let reason = if self.env.stopper.is_stopped() {
            Reason::Shutdown
        } else {
            Reason::Done
        };
        match self.core.input_ended(reason) {
            Err(end) => end,
            Ok(()) => End::clean(Reason::Done),
        }
    }

    fn set_read_timeout(&mut self) -> Result<(), End> {
        let timers = self.core.has_timers();
        let wanted = if !timers {
            // Only the idle timeout: a constant, so no syscall per read.
            self.env.config.idle_timeout
        } else {
            self.core.next_deadline().map(|d| {
                d.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            })
        };
        // With timers the wanted wait shrinks on every read; re-setting it
        // each time would cost a syscall per read. Overdue timers also run
        // after input, so the timeout only matters when input stops: a
        // current one up to 1/8 longer (late by that much at worst) or down
        // to half as long (an early, harmless wake) is kept.
        let close_enough = match (self.read_timeout, wanted) {
            (Some(current), Some(wanted)) if timers => {
                let slack = (wanted / 8).max(Duration::from_millis(1));
                current >= wanted / 2 && current <= wanted + slack
            }
            (current, wanted) => current == wanted,
        };
        if !close_enough {
            if let Err(e) = self.stream.set_read_timeout(wanted) {
                return Err(self.core.fail(End::abort(Reason::Lost(e.to_string()))));
            }
            self.read_timeout = wanted;
        }
        Ok(())
    }

    /// Inbox mode: a reader thread feeds socket bytes; the owner waits on
    /// them, the inbox and its timers.
    // Kept out of `try_run`: inlined, its frame made every idle thread of the
    // thread model touch one more stack page (measured: 12 -> 16 KiB).
    #[inline(never)]
    fn run_inbox(&mut self) -> Result<std::convert::Infallible, End> {
        let Some(inbox) = self.core.inbox().cloned() else {
            return Err(self.core.fail(End::abort(Reason::Lost("no inbox".into()))));
        };
        let (data, hung_up) = self.start_reader()?;
        let slice = self
            .env
            .config
            .write_timeout
            .map_or(WRITE_SLICE, |t| t.min(WRITE_SLICE));
        if let Err(e) = self.stream.set_write_timeout(Some(slice)) {
            return Err(self.core.fail(End::abort(Reason::Lost(e.to_string()))));
        }
        self.sliced_writes = true;
        // While paused, the owner takes nothing from the reader (see the
        // module docs) and waits for the stop signal instead, which the
        // reader's EOF would otherwise bring.
        let stop = self.env.stopper.receiver();
        let no_input = crossbeam_channel::never();
        let no_stop = crossbeam_channel::never();
        loop {
            let timeout = self
                .core
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            let timeout = timeout.unwrap_or(Duration::from_secs(3600));
            self.idle.store(true, Ordering::SeqCst);
            if self.env.stopper.is_stopped() {
                return Err(self.core.fail(End::clean(Reason::Shutdown)));
            }
            let reading = self.core.wants_input();
            let (input, stopping) = if reading {
                (&data, &no_stop)
            } else {
                (&no_input, &stop)
            };
            let hang_up = if reading { &no_stop } else { &hung_up };
            let woke = select! {
                recv(input) -> event => Woke::Input(event),
                recv(inbox) -> command => Woke::Command(command.ok()),
                recv(stopping) -> _ => continue,
                recv(hang_up) -> _ => Woke::HungUp,
                default(timeout) => Woke::Tick,
            };
            if let (Woke::Input(Ok(_)), Some(reader)) = (&woke, &self.reader) {
                reader.took();
            }
            self.idle.store(false, Ordering::SeqCst);
            let p = &mut *self.protocol;
            let verdict = match woke {
                Woke::Input(Ok(ReadEvent::Data(bytes))) => {
                    self.core.received(p, &bytes, Instant::now())
                }
                Woke::Input(Ok(ReadEvent::Eof) | Err(_)) => return Err(self.eof()),
                Woke::Input(Ok(ReadEvent::Failed(e))) => {
                    return Err(self.core.fail(End::abort(Reason::Lost(e.to_string()))));
                }
                Woke::Command(Some(command)) => {
                    if inbox.len() < GATHER_BELOW {
                        // Let the sender of this burst finish it first.
                        thread::yield_now();
                    }
                    self.core.commands_within(
                        p,
                        Some(command),
                        COMMANDS_PER_WRITE,
                        WRITE_BATCH_BYTES,
                    )
                }
                Woke::Command(None) => Ok(()),
                Woke::HungUp => return Err(self.hung_up()),
                Woke::Tick => self.core.due(p, Instant::now()),
            };
            self.settle(verdict)?;
            self.run_overdue_timers()?;
        }
    }

    /// Starts the reader thread; returns its data channel and its
    /// hang-up notices.
    fn start_reader(&mut self) -> Result<(Receiver<ReadEvent>, Receiver<()>), End> {
        let cloned = self.stream.try_clone().and_then(|s| {
            s.set_read_timeout(None)?;
            Ok(s)
        });
        let mut stream = match cloned {
            Ok(s) => s,
            Err(e) => {
                let why = format!("cannot clone the socket: {e}");
                return Err(self.core.fail(End::abort(Reason::Lost(why))));
            }
        };
        let pipe = UnixStream::pair().and_then(|(tx, rx)| {
            tx.set_nonblocking(true)?;
            rx.set_nonblocking(true)?;
            Ok((tx, rx))
        });
        let (wake_tx, wake_rx) = match pipe {
            Ok(p) => p,
            Err(e) => {
                let why = format!("cannot make the reader's wake-up pipe: {e}");
                return Err(self.core.fail(End::abort(Reason::Lost(why))));
            }
        };
        let (hung_up_tx, hung_up) = crossbeam_channel::bounded(1);
        let gate = Arc::new(Gate {
            waiting: AtomicBool::new(false),
            wake_tx,
            hung_up: hung_up_tx,
        });
        let (tx, rx) = crossbeam_channel::bounded(READ_AHEAD);
        let size = self.env.config.read_buffer.max(512);
        let reader_gate = gate.clone();
        let spawned = thread::Builder::new()
            .name("spindle-reader".into())
            .stack_size(64 * 1024)
            .spawn(move || read_into(&mut stream, &tx, &reader_gate, &wake_rx, size));
        match spawned {
            Ok(handle) => {
                self.reader = Some(Reader {
                    data: rx.clone(),
                    hung_up: hung_up.clone(),
                    gate,
                    handle,
                });
                Ok((rx, hung_up))
            }
            Err(e) => {
                log::error!("cannot start a reader thread ({e}); dropping the connection");
                let why = format!("cannot start a reader thread: {e}");
                Err(self.core.fail(End::abort(Reason::Lost(why))))
            }
        }
    }

    /// Closes the socket as `end` says, then tells the protocol. Returns
    /// the reason it was told.
    fn finish(mut self, end: End) -> Reason {
        // Wake the reader thread, if any. An abort shuts only the read side:
        // a FIN must not go out ahead of the RST that the close sends.
        let wake = if end.abort {
            self.stream.set_abortive_close();
            Shutdown::Read
        } else {
            self.close_gracefully(&end.reason);
            Shutdown::Both
        };
        self.env.registry.unregister(self.registry_id);
        let _ = self.stream.shutdown(wake);
        if let Some(reader) = self.reader.take() {
            // A reader waiting to hand over a read (its channel holds
            // READ_AHEAD) must see the owner gone, not wait for it.
            let Reader {
                data,
                hung_up,
                gate,
                handle,
            } = reader;
            drop((data, hung_up));
            gate.wake();
            let _ = handle.join();
        }
        self.core.lost(&mut *self.protocol, &end.reason);
        end.reason
    }

    /// Sends a FIN, then reads and discards what the peer still sends for up
    /// to `close_linger`, so that unread input does not turn our close into
    /// an RST that could destroy the last reply before the peer reads it.
    fn close_gracefully(&mut self, reason: &Reason) {
        if matches!(
            reason,
            Reason::Done | Reason::Shutdown | Reason::TimedOut(_)
        ) && self.stream.shutdown(Shutdown::Write).is_ok()
        {
            let deadline = Instant::now() + self.env.config.close_linger;
            match &self.reader {
                Some(reader) => drain_events(reader, deadline),
                None => drain_socket(&mut self.stream, deadline),
            }
        }
    }
}

/// A connection's first read buffer, in bytes: small, because most
/// connections idle and each buffer is resident memory.
const INITIAL_READ_BUFFER: usize = 2048;

/// A read buffer that starts at [`INITIAL_READ_BUFFER`] and doubles each
/// time a read fills it, up to `--read-buffer`: an idle connection costs
/// 2 KiB, a busy one reads in large chunks.
struct ReadBuffer {
    buf: Vec<u8>,
    max: usize,
}

impl ReadBuffer {
    fn new(max: usize) -> Self {
        let max = max.max(512);
        ReadBuffer {
            buf: vec![0u8; INITIAL_READ_BUFFER.min(max)],
            max,
        }
    }

    /// Where the next read goes.
    fn space(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The `n` bytes a read just put in; grows the buffer if they filled it.
    fn filled(&mut self, n: usize) -> &[u8] {
        if n == self.buf.len() && self.buf.len() < self.max {
            let grown = (self.buf.len() * 2).min(self.max);
            self.buf.resize(grown, 0);
        }
        &self.buf[..n]
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The reader thread of inbox mode.
fn read_into(
    stream: &mut Stream,
    tx: &Sender<ReadEvent>,
    gate: &Gate,
    wake_rx: &UnixStream,
    size: usize,
) {
    let mut buf = ReadBuffer::new(size);
    loop {
        let event = match stream.read(buf.space()) {
            Ok(0) => ReadEvent::Eof,
            Ok(n) => ReadEvent::Data(buf.filled(n).to_vec()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => ReadEvent::Failed(e),
        };
        let last = !matches!(event, ReadEvent::Data(_));
        if !hand_over(stream.as_raw_fd(), tx, gate, wake_rx, event) || last {
            return;
        }
    }
}

/// Gives `event` to the owner; `false` once the owner is gone. While the
/// channel is full (the owner is paused, or busy), waits in `poll` for
/// the owner's wake-up, watching the socket for a hang-up or an error
/// (not for input): one seen is posted to the owner's hang-up notices,
/// and the read is then handed over by a plain blocking send (a hang-up
/// stays, so polling again would spin).
fn hand_over(
    fd: RawFd,
    tx: &Sender<ReadEvent>,
    gate: &Gate,
    wake_rx: &UnixStream,
    mut event: ReadEvent,
) -> bool {
    loop {
        match tx.try_send(event) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(e)) => event = e,
        }
        // Say we wait before looking again, so the owner's next take,
        // if it comes after that look, wakes us (see `Reader::took`).
        gate.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        match tx.try_send(event) {
            Ok(()) => {
                gate.waiting.store(false, Ordering::SeqCst);
                return true;
            }
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(e)) => event = e,
        }
        let mut fds = [pollfd(fd, 0), pollfd(wake_rx.as_raw_fd(), libc::POLLIN)];
        match poll_fds(&mut fds, Duration::MAX) {
            Ok([sock, _]) if sock & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 => {
                let _ = gate.hung_up.try_send(());
                return tx.send(event).is_ok();
            }
            Ok(_) => drain_wake_ups(wake_rx),
            Err(_) => return tx.send(event).is_ok(),
        }
    }
}

/// Empties the wake-up pipe (non-blocking).
fn drain_wake_ups(mut wake_rx: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!(wake_rx.read(&mut buf), Ok(n) if n > 0) {}
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// `poll(2)` on `fds` for at most `timeout` (`Duration::MAX`: no bound);
/// returns each one's `revents`, all 0 on a timeout.
fn poll_fds<const N: usize>(
    fds: &mut [libc::pollfd; N],
    timeout: Duration,
) -> io::Result<[libc::c_short; N]> {
    let ms = if timeout == Duration::MAX {
        -1
    } else {
        // Rounded up, so a timer is not polled for just before it is due.
        timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
    };
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), N as libc::nfds_t, ms) };
        if n >= 0 {
            return Ok(fds.map(|f| f.revents));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes all of `out` to a socket whose send timeout is a slice: between
/// slices, checks the close deadline, and gives up once `write_timeout`
/// passed without progress (the same bound as one blocking `write_all`).
fn write_sliced(
    stream: &mut Stream,
    out: &[u8],
    control: &Control,
    write_timeout: Option<Duration>,
) -> Result<(), End> {
    let mut sent = 0;
    let mut progress = Instant::now();
    while sent < out.len() {
        match stream.write(&out[sent..]) {
            Ok(0) => {
                return Err(End::abort(Reason::Lost(
                    "the socket accepts no more data".into(),
                )));
            }
            Ok(n) => {
                sent += n;
                progress = Instant::now();
            }
            Err(e) if is_timeout(&e) => {
                control.check(Instant::now())?;
                if write_timeout.is_some_and(|limit| progress.elapsed() >= limit) {
                    log::info!("write timed out; dropping the connection");
                    return Err(End::abort(Reason::TimedOut("write")));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(End::abort(Reason::Lost(e.to_string()))),
        }
    }
    Ok(())
}

/// At most this much is read and discarded while lingering on close.
const MAX_LINGER_BYTES: usize = 1 << 20;

fn drain_socket(stream: &mut Stream, deadline: Instant) {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < MAX_LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

fn drain_events(reader: &Reader, deadline: Instant) {
    let mut total = 0;
    while total < MAX_LINGER_BYTES {
        match reader.data.recv_deadline(deadline) {
            Ok(ReadEvent::Data(bytes)) => {
                reader.took();
                total += bytes.len();
            }
            _ => return,
        }
    }
}
