//! The process engine: a fresh `spindle` process for every accepted
//! connection, inetd-style.
//!
//! ```text
//!  parent: acceptor ──spawn──▶ spindle serve-one PROTOCOL ... --session N
//!            │                   stdin = stdout = the accepted socket
//!            │ --max-connections children alive
//!            ▼
//!  refuse: busy message, close, log
//! ```
//!
//! The parent only accepts, spawns and reaps. It never `fork`s itself (a
//! threaded process must not): each child is a new program started with
//! [`std::process::Command`], given the socket as its standard input and
//! output, the way inetd starts a service. The child (see
//! [`serve_inherited`]) builds the protocol's factory from the same
//! command-line options and runs the ordinary owner loop
//! (`connection.rs`) on that one socket, then exits.
//!
//! What the model costs and gives up:
//!
//! * **No shared memory.** Each connection has its own factory, so what a
//!   factory shares between connections (welcome's open-connection count,
//!   QOTD's rotation, a chat room) is *lost*: every child sees a fresh one.
//!   Factories say so with [`Factory::shares_state`]; the engine still
//!   serves them — the loss is the lesson — and logs a warning for each at
//!   start (NOTES.md explains the choice).
//! * **Isolation.** A crash, a leak or a panic costs one process.
//! * **Bounds.** `--max-connections` caps live children. A reaper thread
//!   collects each child as it exits: its `pidfd` becomes readable in a
//!   mio poll, so the count is exact and reaping costs nothing while
//!   children run.
//! * **Stopping.** The parent stops accepting, sends each child SIGTERM
//!   (the child closes gracefully, flushing), waits up to
//!   [`ServerConfig::grace`], then SIGKILLs what is left. Children run in
//!   their own process group, so a Ctrl-C at the terminal reaches only the
//!   parent, which then stops them in order.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::admission::{Admission, Ticket};
use super::connection::{ConnEnv, serve_accepted};
use super::registry::Registry;
use super::service::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper, acceptor};
use crate::log::ContextGuard;
use crate::protocol::{Addr, Factory};

/// How often children are checked for exit where the kernel offers no
/// `pidfd` to wait on (Linux before 5.3); otherwise exits are events.
pub const REAP_INTERVAL: Duration = Duration::from_millis(100);

/// The program and arguments that serve one connection of a service on
/// the socket they inherit as stdin and stdout. The engine appends
/// `--session N`. The CLI uses `spindle serve-one --one PROTOCOL ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCommand {
    /// The executable (the CLI passes its own, `std::env::current_exe()`).
    pub program: PathBuf,
    /// Its arguments, before `--session N`.
    pub args: Vec<String>,
}

pub(crate) fn run(
    services: &[Service],
    config: Arc<ServerConfig>,
    stopper: &Stopper,
) -> io::Result<()> {
    let mut commands = Vec::new();
    for s in services {
        let _ctx = ContextGuard::enter("-");
        let Some(command) = &s.child else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the process model needs a command that serves one {} connection (Server::listen_with_child)",
                    s.factory.name()
                ),
            ));
        };
        if s.factory.shares_state() {
            log::warn!(
                "{} shares state between connections; under --model process every connection runs in \
                 its own process with its own {}, so that sharing is lost (see NOTES.md)",
                s.factory.name(),
                s.factory.name()
            );
        }
        commands.push(command.clone());
    }
    let admission = Admission::new(services, &config)?;
    let (reaper, tx) = Reaper::start(stopper.clone(), config.grace)?;
    let listeners: Vec<_> = services.iter().map(|s| &s.listener).collect();
    let result = acceptor::accept_loop(&listeners, stopper, |service, stream, peer| {
        let Some((stream, admitted)) = admission.admit(service, stream) else {
            return;
        };
        let session = admitted.session;
        match spawn_child(&commands[service], &stream, session) {
            Ok(child) => {
                log::debug!(
                    "connection {session} from {peer} served by process {}",
                    child.id()
                );
                tx.send(child, admitted.ticket);
            }
            Err(e) => {
                drop(admitted);
                let why = format!("cannot start a process for it: {e}");
                admission.refuse_busy(service, stream, &why);
            }
        }
    });
    stopper.stop();
    drop(tx);
    if reaper.join().is_err() {
        log::error!("the reaper thread panicked; connection processes may be left running");
    }
    result
}

fn spawn_child(command: &ChildCommand, stream: &Stream, session: u64) -> io::Result<Child> {
    let input = OwnedFd::from(stream.try_clone()?);
    let output = OwnedFd::from(stream.try_clone()?);
    Command::new(&command.program)
        .args(&command.args)
        .arg("--session")
        .arg(session.to_string())
        .stdin(Stdio::from(input))
        .stdout(Stdio::from(output))
        .stderr(Stdio::inherit())
        // Its own process group: a terminal's Ctrl-C reaches the parent
        // only, which then stops the children in order.
        .process_group(0)
        .spawn()
}

const REAPER_WAKE: Token = Token(usize::MAX);

/// Hands new children to the reaper thread.
struct ChildSender {
    tx: Sender<(Child, Ticket)>,
    waker: Arc<Waker>,
}

impl ChildSender {
    fn send(&self, child: Child, ticket: Ticket) {
        if self.tx.send((child, ticket)).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// A child and, where the kernel has them, a descriptor that becomes
/// readable when it exits.
struct Watched {
    child: Child,
    pidfd: Option<OwnedFd>,
    /// Counts the child's connection open until it is reaped.
    _ticket: Ticket,
}

/// The thread that collects exited children (each exit an event, through
/// a `pidfd` in a mio poll) and, on stop, terminates the rest.
struct Reaper {
    poll: Poll,
    rx: Receiver<(Child, Ticket)>,
    children: HashMap<u32, Watched>,
}

impl Reaper {
    fn start(
        stopper: Stopper,
        grace: Duration,
    ) -> io::Result<(thread::JoinHandle<()>, ChildSender)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), REAPER_WAKE)?);
        stopper.add_waker(waker.clone());
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut reaper = Reaper {
            poll,
            rx,
            children: HashMap::new(),
        };
        let handle = thread::Builder::new()
            .name("spindle-reaper".into())
            .spawn(move || reaper.run(&stopper, grace))?;
        Ok((handle, ChildSender { tx, waker }))
    }

    fn run(&mut self, stopper: &Stopper, grace: Duration) {
        let mut events = Events::with_capacity(256);
        while !stopper.is_stopped() {
            self.turn(&mut events, None);
        }
        // Children started just before the stop may still be in the channel.
        self.adopt();
        let open = self.signal_all(libc::SIGTERM);
        if open == 0 {
            return;
        }
        log::info!(
            "stopping: {open} connection processes running, giving them {grace:?} to finish"
        );
        if self.wait_all(&mut events, Instant::now() + grace) > 0 {
            let left = self.signal_all(libc::SIGKILL);
            log::warn!("grace period over: killing {left} connection processes");
            let stuck = self.wait_all(&mut events, Instant::now() + Duration::from_secs(1));
            if stuck > 0 {
                log::warn!("{stuck} connection processes did not exit");
            }
        }
    }

    /// Waits for events (at most until `deadline`), adopts new children and
    /// forgets those that exited.
    fn turn(&mut self, events: &mut Events, deadline: Option<Instant>) {
        let polling = self.children.values().any(|w| w.pidfd.is_none());
        let mut timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if polling {
            timeout = Some(timeout.map_or(REAP_INTERVAL, |t| t.min(REAP_INTERVAL)));
        }
        if let Err(e) = self.poll.poll(events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            log::error!("the reaper cannot poll ({e}); checking children every {REAP_INTERVAL:?}");
            thread::park_timeout(REAP_INTERVAL);
        }
        let exited: Vec<u32> = events
            .iter()
            .filter(|e| e.token() != REAPER_WAKE)
            .map(|e| e.token().0 as u32)
            .collect();
        self.adopt();
        for pid in exited {
            self.check(pid);
        }
        if polling {
            let unwatched: Vec<u32> = self
                .children
                .iter()
                .filter(|(_, w)| w.pidfd.is_none())
                .map(|(pid, _)| *pid)
                .collect();
            for pid in unwatched {
                self.check(pid);
            }
        }
    }

    /// Takes in the children the acceptor started.
    fn adopt(&mut self) {
        while let Ok((child, ticket)) = self.rx.try_recv() {
            let pid = child.id();
            let pidfd = pidfd_open(pid).and_then(|fd| {
                self.poll
                    .registry()
                    .register(
                        &mut SourceFd(&fd.as_raw_fd()),
                        Token(pid as usize),
                        Interest::READABLE,
                    )
                    .ok()
                    .map(|()| fd)
            });
            self.children.insert(
                pid,
                Watched {
                    child,
                    pidfd,
                    _ticket: ticket,
                },
            );
            // It may have exited before its pidfd existed: then the pidfd
            // is readable at once, and so is this check.
            self.check(pid);
        }
    }

    /// Forgets `pid` if it exited.
    fn check(&mut self, pid: u32) {
        let exited = match self.children.get_mut(&pid) {
            Some(w) => !matches!(w.child.try_wait(), Ok(None)),
            None => false,
        };
        if exited
            && let Some(w) = self.children.remove(&pid)
            && let Some(fd) = &w.pidfd
        {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
    }

    fn signal_all(&self, signal: i32) -> usize {
        for w in self.children.values() {
            // SAFETY: kill(2) touches no memory; the pid is our unreaped
            // child, so it cannot have been reused.
            unsafe {
                libc::kill(w.child.id() as libc::pid_t, signal);
            }
        }
        self.children.len()
    }

    /// Reaps until no child is left or `deadline` passes; returns how many
    /// are left.
    fn wait_all(&mut self, events: &mut Events, deadline: Instant) -> usize {
        while !self.children.is_empty() && Instant::now() < deadline {
            self.turn(events, Some(deadline));
        }
        self.children.len()
    }
}

/// A descriptor that becomes readable when process `pid` exits, where the
/// kernel has `pidfd_open` (Linux 5.3+).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes two integers and returns a new descriptor
    // or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Takes this process's standard input as its connection: what a child of
/// the process engine runs. Returns an error (before anything is served) if
/// standard input is not a connected socket.
///
/// `factory` builds the protocol; `session` is the connection's number on
/// the parent's listening port. The connection is served by the same
/// owner loop as on the thread engines, under `config`'s timeouts, until it
/// ends or `stopper` fires (wire it to SIGTERM); then the factory stops.
pub fn serve_inherited(
    factory: Arc<dyn Factory>,
    config: ServerConfig,
    stopper: Stopper,
    session: u64,
) -> io::Result<()> {
    let stream = take_stdin_socket()?;
    let peer = stream.peer_addr()?;
    let host = local_addr(&stream)?;
    let registry = Arc::new(Registry::default());
    let env = ConnEnv {
        config: Arc::new(config),
        stopper: stopper.clone(),
        registry: registry.clone(),
        hints: None,
    };
    // On stop, wake the owner as the thread engines do: EOF on the read
    // side first, then, after the grace period, both sides.
    let grace = env.config.grace;
    let watcher_registry = registry.clone();
    let stop = stopper.receiver();
    let _watcher = thread::Builder::new()
        .name("spindle-stop".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if stop.recv().is_err() {
                watcher_registry.wake_idle();
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline {
                    thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
                }
                watcher_registry.shutdown_all();
            }
        })?;
    let admission = Admission::for_factories(vec![(factory.clone(), host)], &env.config)?;
    factory.start_factory();
    serve_accepted(stream, peer, 0, session, &admission, &env);
    factory.stop_factory();
    Ok(())
}

/// Standard input as a socket; standard input and output then point at
/// `/dev/null`, so that the returned stream holds the socket's only
/// descriptor (an abortive close resets only when the last one closes).
fn take_stdin_socket() -> io::Result<Stream> {
    // SAFETY: dup(2) of our own fd 0; the result is owned by `fd` below.
    let raw = unsafe { libc::dup(0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let socket = socket2::Socket::from(fd);
    let local = socket.local_addr().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("standard input is not a connected socket ({e}); serve-one is run by --model process"),
        )
    })?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in [0, 1] {
        // SAFETY: dup2 onto our own standard descriptors.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let fd = OwnedFd::from(socket);
    Ok(if local.as_socket().is_some() {
        Stream::Tcp(std::net::TcpStream::from(fd))
    } else {
        Stream::Unix(std::os::unix::net::UnixStream::from(fd))
    })
}

fn local_addr(stream: &Stream) -> io::Result<Addr> {
    Ok(match stream {
        Stream::Tcp(s) => Addr::Tcp(s.local_addr()?),
        Stream::Unix(s) => Addr::Unix(
            s.local_addr()?
                .as_pathname()
                .map(Into::into)
                .unwrap_or_default(),
        ),
    })
}
