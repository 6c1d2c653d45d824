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
//! * **Bounds.** `--max-connections` caps live children. Children are
//!   reaped every [`REAP_INTERVAL`], so the count may lag by that much.
//! * **Stopping.** The parent stops accepting, sends each child SIGTERM
//!   (the child closes gracefully, flushing), waits up to
//!   [`ServerConfig::grace`], then SIGKILLs what is left. Children run in
//!   their own process group, so a Ctrl-C at the terminal reaches only the
//!   parent, which then stops them in order.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::connection::{ConnEnv, serve_accepted};
use super::pool::refuse;
use super::registry::Registry;
use super::server::Service;
use super::stream::Stream;
use super::{ServerConfig, Stopper, acceptor};
use crate::log::ContextGuard;
use crate::protocol::{Addr, Factory};

/// How often the parent collects children that exited.
pub const REAP_INTERVAL: Duration = Duration::from_millis(20);

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

/// Live children and their pids.
type Children = Arc<Mutex<Vec<Child>>>;

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
    let children: Children = Arc::new(Mutex::new(Vec::new()));
    let reaper = {
        let children = children.clone();
        let stop = stopper.receiver();
        thread::Builder::new()
            .name("spindle-reaper".into())
            .spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stop.recv_timeout(REAP_INTERVAL)
                {
                    reap(&children);
                }
            })?
    };
    let sessions: Vec<AtomicU64> = services.iter().map(|_| AtomicU64::new(0)).collect();
    let listeners: Vec<_> = services.iter().map(|s| &s.listener).collect();
    let result = acceptor::accept_loop(&listeners, stopper, |service, stream, peer| {
        let factory = &*services[service].factory;
        reap(&children);
        let live = children.lock().map_or(0, |c| c.len());
        if live >= config.max_connections {
            let why = format!(
                "{live} connections open (--max-connections {})",
                config.max_connections
            );
            refuse(stream, factory, &why);
            return;
        }
        let session = sessions[service].fetch_add(1, Ordering::Relaxed);
        match spawn_child(&commands[service], &stream, session) {
            Ok(child) => {
                log::debug!(
                    "connection {session} from {peer} served by process {}",
                    child.id()
                );
                if let Ok(mut c) = children.lock() {
                    c.push(child);
                }
            }
            Err(e) => refuse(
                stream,
                factory,
                &format!("cannot start a process for it: {e}"),
            ),
        }
    });
    stopper.stop();
    let _ = reaper.join();
    shutdown(&children, config.grace);
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

/// Forgets children that exited.
fn reap(children: &Children) {
    if let Ok(mut c) = children.lock() {
        c.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
    }
}

fn signal_all(children: &Children, signal: i32) -> usize {
    let Ok(c) = children.lock() else { return 0 };
    for child in c.iter() {
        // SAFETY: kill(2) touches no memory; the pid is our unreaped child,
        // so it cannot have been reused.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
    }
    c.len()
}

/// Waits until every child exited or `deadline` passed; returns how many
/// are left.
fn wait_children(children: &Children, deadline: Instant) -> usize {
    loop {
        reap(children);
        let left = children.lock().map_or(0, |c| c.len());
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        thread::park_timeout(REAP_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// SIGTERM to every child, the grace period, then SIGKILL.
fn shutdown(children: &Children, grace: Duration) {
    let open = signal_all(children, libc::SIGTERM);
    if open == 0 {
        return;
    }
    log::info!("stopping: {open} connection processes running, giving them {grace:?} to finish");
    if wait_children(children, Instant::now() + grace) > 0 {
        let left = signal_all(children, libc::SIGKILL);
        log::warn!("grace period over: killing {left} connection processes");
        let stuck = wait_children(children, Instant::now() + Duration::from_secs(1));
        if stuck > 0 {
            log::warn!("{stuck} connection processes did not exit");
        }
    }
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
                watcher_registry.shutdown_all(false);
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline {
                    thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
                }
                watcher_registry.shutdown_all(true);
            }
        })?;
    factory.start_factory();
    serve_accepted(stream, peer, session, &*factory, &host, &env);
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
