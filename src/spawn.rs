//! [`spawn_process`]: run a child process for a connection, with its output
//! delivered to a [`ProcessProtocol`] on the connection's owner — Twisted's
//! `spawnProcess`, on threads.
//!
//! ```text
//!  owner: spawn_process(argv) ── fork/exec, no shell
//!     │                            │ stdout, stderr pipes
//!     │  ◀── out_received ──┐      ▼
//!     │  ◀── err_received ──┼── supervisor (a BlockingPool job): poll(2)
//!     │  ◀── process_ended ─┘    on both pipes and a kill switch, read,
//!     │                          deliver through the inbox, reap
//!     └─ kill switch: a timer holding a pipe's write end
//! ```
//!
//! * **No shell.** `argv[0]` is the program (looked up in `PATH`), the rest
//!   are its arguments, passed as they are. The child inherits the
//!   server's environment (Twisted's default is an empty one), gets
//!   `/dev/null` as stdin, and runs in a process group of its own.
//! * **Callbacks on the owner**, in order: any number of `out_received` /
//!   `err_received` (chunked arbitrarily — never assume a chunk is a line
//!   or the whole output), then exactly one `process_ended`, after the
//!   child has exited *and* both pipes are closed (Twisted's
//!   `processEnded`).
//! * **The child never outlives its connection.** The kill switch is the
//!   write end of a pipe, held by a timer on the connection's transport.
//!   When the connection closes, its transport and timers are dropped, the
//!   pipe's read end sees EOF, and the supervisor kills the child's whole
//!   process group (SIGKILL) and reaps it. The same timer enforces the
//!   child's time limit, and [`ProcessHandle::kill`] cancels it early.
//!   Every child is waited for: no zombies.
//! * **Bounded.** The supervisor runs on the [`BlockingPool`]: at most
//!   `--blocking-threads` children are read at once; beyond the pool's
//!   queue, spawning is refused with "server busy" (and the child is killed
//!   and reaped at once).

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, PipeReader, PipeWriter, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::blocking::{BlockingPool, PoolBusy};
use crate::protocol::Protocol;
use crate::transport::{ConnHandle, HandleError, TimerId, Transport};

/// Bytes read from a child's pipe at a time (one delivered chunk at most).
pub const READ_CHUNK: usize = 16 * 1024;
/// The longest pause between two checks while waiting for a child that
/// closed its pipes but has not exited yet.
const REAP_POLL_MAX: Duration = Duration::from_millis(50);

/// How a child process ended, as handed to
/// [`ProcessProtocol::process_ended`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEnd {
    /// It exited with this status (0: success, Twisted's `ProcessDone`).
    Exited(i32),
    /// A signal killed it (also after a kill on disconnect, time limit or
    /// [`ProcessHandle::kill`]).
    Signaled(i32),
    /// Supervising it failed (reading its pipes or waiting for it); it was
    /// killed and reaped.
    Failed(String),
}

impl ProcessEnd {
    /// Exited with status 0.
    pub fn is_success(&self) -> bool {
        *self == ProcessEnd::Exited(0)
    }

    fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => ProcessEnd::Exited(code),
            (None, Some(signal)) => ProcessEnd::Signaled(signal),
            (None, None) => ProcessEnd::Failed(format!("unknown wait status {status}")),
        }
    }
}

impl fmt::Display for ProcessEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessEnd::Exited(code) => write!(f, "exited with status {code}"),
            ProcessEnd::Signaled(signal) => write!(f, "killed by signal {signal}"),
            ProcessEnd::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// What a connection does with its child's output: Twisted's
/// `ProcessProtocol`. Every method runs on the connection's owner with the
/// connection's protocol `P` (the type its factory boxed) and transport.
pub trait ProcessProtocol<P: Protocol>: Send + 'static {
    /// Bytes the child wrote to its stdout, in arbitrary chunks.
    fn out_received(&mut self, data: &[u8], protocol: &mut P, transport: &mut Transport) {
        let _ = (data, protocol, transport);
    }

    /// Bytes the child wrote to its stderr, in arbitrary chunks.
    fn err_received(&mut self, data: &[u8], protocol: &mut P, transport: &mut Transport) {
        let _ = (data, protocol, transport);
    }

    /// The child has exited and both its pipes are closed: called once,
    /// last. Finish the work here.
    fn process_ended(&mut self, end: &ProcessEnd, protocol: &mut P, transport: &mut Transport);
}

/// Why [`spawn_process`] started nothing.
#[derive(Debug)]
pub enum SpawnError {
    /// `argv` was empty.
    NoProgram,
    /// The program could not be started (not found, not executable, ...).
    Spawn {
        /// `argv[0]`.
        program: String,
        /// What the OS said.
        error: io::Error,
    },
    /// The blocking pool is saturated; the child was killed and reaped.
    Busy(PoolBusy),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NoProgram => write!(f, "no program to run"),
            SpawnError::Spawn { program, error } => write!(f, "cannot run {program}: {error}"),
            SpawnError::Busy(_) => write!(f, "server busy"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::NoProgram => None,
            SpawnError::Spawn { error, .. } => Some(error),
            SpawnError::Busy(busy) => Some(busy),
        }
    }
}

/// A running child, as its connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessHandle {
    pid: u32,
    switch: TimerId,
}

impl ProcessHandle {
    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the child (its process group) now; `process_ended` follows
    /// with [`ProcessEnd::Signaled`]. `false` if it had already ended.
    pub fn kill(&self, transport: &mut Transport) -> bool {
        transport.cancel_timer(self.switch)
    }
}

/// The kill switch's write end: dropping it wakes the supervisor, which
/// kills the child.
struct KillSwitch(#[allow(dead_code)] PipeWriter);

/// Starts `argv` for this connection, delivering its output to `pp` on the
/// connection's owner. The child is killed after `time_limit`, or as soon
/// as the connection closes. See the [module docs](self).
pub fn spawn_process<P, PP, S>(
    pool: &BlockingPool,
    transport: &mut Transport,
    argv: &[S],
    time_limit: Duration,
    pp: PP,
) -> Result<ProcessHandle, SpawnError>
where
    P: Protocol,
    PP: ProcessProtocol<P>,
    S: AsRef<OsStr>,
{
    let (program, args) = argv.split_first().ok_or(SpawnError::NoProgram)?;
    let program_name = program.as_ref().to_string_lossy().into_owned();
    let spawn_error = |error| SpawnError::Spawn {
        program: program_name.clone(),
        error,
    };
    // Both ends are close-on-exec: no child inherits the switch.
    let (control, switch) = io::pipe().map_err(spawn_error)?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;
    let pid = child.id();
    let switch = KillSwitch(switch);
    let timer = transport.call_later(time_limit, move |_: &mut P, _| {
        log::warn!("child process {pid} still running after {time_limit:?}: killing it");
        drop(switch);
    });
    let supervisor = Supervisor {
        child: Some(child),
        control,
        handle: transport.handle(),
        pp: Arc::new(Mutex::new(pp)),
        timer,
        delivery_timeout: pool.delivery_timeout(),
        _protocol: std::marker::PhantomData,
    };
    log::debug!("started {program_name} as process {pid}");
    match pool.try_run(move || supervisor.run()) {
        Ok(()) => Ok(ProcessHandle { pid, switch: timer }),
        Err(busy) => {
            // The refused job was dropped, and the supervisor's Drop killed
            // and reaped the child.
            transport.cancel_timer(timer);
            log::warn!("cannot supervise {program_name}: {busy}");
            Err(SpawnError::Busy(busy))
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Callbacks run one at a time on the owner; a panic in one leaves the
    // protocol as usable as the engine's own catch_unwind does.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads a child's pipes on a pool thread and delivers what it reads.
struct Supervisor<P, PP> {
    child: Option<Child>,
    control: PipeReader,
    handle: ConnHandle,
    pp: Arc<Mutex<PP>>,
    timer: TimerId,
    delivery_timeout: Duration,
    _protocol: std::marker::PhantomData<fn(&mut P)>,
}

/// Why the supervisor stopped reading early.
enum Stop {
    /// The kill switch fired (connection gone, time limit, `kill`).
    Switch,
    /// The connection is gone (a delivery found it closed).
    Gone,
    /// Something went wrong; the text says what.
    Failed(String),
}

/// Kills a child's whole process group. Only called before the child is
/// reaped, so its pid (= group id) cannot have been reused.
fn kill_group(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a negative pid signals that process group; no
    // memory is involved.
    if unsafe { libc::kill(-pgid, libc::SIGKILL) } != 0 {
        let _ = child.kill();
    }
}

/// `poll(2)` on `fds`; `Ok(false)` on a timeout.
fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<bool> {
    let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as libc::c_int);
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

impl<P: Protocol, PP: ProcessProtocol<P>> Supervisor<P, PP> {
    fn run(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        let stopped = self.pump(&mut child);
        drop(child.stdout.take());
        drop(child.stderr.take());
        let end = match stopped {
            Ok(()) => self.reap(&mut child),
            Err(stop) => {
                kill_group(&mut child);
                let waited = child.wait();
                match stop {
                    Stop::Gone => {
                        log::debug!("connection gone: killed and reaped process {pid}");
                        return;
                    }
                    Stop::Switch => match waited {
                        Ok(status) => ProcessEnd::from_status(status),
                        Err(e) => ProcessEnd::Failed(format!("cannot wait for process {pid}: {e}")),
                    },
                    Stop::Failed(why) => ProcessEnd::Failed(why),
                }
            }
        };
        let pp = self.pp.clone();
        let timer = self.timer;
        let sent = self
            .handle
            .call_timeout::<P, _>(self.delivery_timeout, move |p, t| {
                // Disarm the kill switch (the child is gone already).
                t.cancel_timer(timer);
                lock(&pp).process_ended(&end, p, t);
            });
        if sent == Err(HandleError::Full) {
            log::warn!(
                "the end of process {pid} was not delivered: the connection's inbox stayed full"
            );
        }
    }

    /// Reads both pipes until both close, the switch fires or delivery fails.
    fn pump(&self, child: &mut Child) -> Result<(), Stop> {
        let mut pipes: [Option<Box<dyn ReadFd>>; 2] = [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn ReadFd>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn ReadFd>),
        ];
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let open: Vec<usize> = (0..2).filter(|i| pipes[*i].is_some()).collect();
            if open.is_empty() {
                return Ok(());
            }
            let mut fds = vec![pollfd(self.control.as_raw_fd())];
            fds.extend(
                open.iter()
                    .filter_map(|i| pipes[*i].as_ref().map(|p| pollfd(p.fd()))),
            );
            if let Err(e) = poll(&mut fds, None) {
                return Err(Stop::Failed(format!("cannot poll the child's pipes: {e}")));
            }
            if fds[0].revents != 0 {
                return Err(Stop::Switch);
            }
            for (slot, fd) in open.iter().zip(&fds[1..]) {
                if fd.revents == 0 {
                    continue;
                }
                let Some(pipe) = pipes[*slot].as_mut() else {
                    continue;
                };
                match pipe.read(&mut buf) {
                    Ok(0) => pipes[*slot] = None,
                    Ok(n) => self.deliver(*slot == 1, buf[..n].to_vec())?,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(Stop::Failed(format!("cannot read the child's output: {e}")));
                    }
                }
            }
        }
    }

    fn deliver(&self, stderr: bool, data: Vec<u8>) -> Result<(), Stop> {
        let pp = self.pp.clone();
        let sent = self
            .handle
            .call_timeout::<P, _>(self.delivery_timeout, move |p, t| {
                let mut pp = lock(&pp);
                if stderr {
                    pp.err_received(&data, p, t);
                } else {
                    pp.out_received(&data, p, t);
                }
            });
        match sent {
            Ok(()) => Ok(()),
            Err(HandleError::Closed) => Err(Stop::Gone),
            Err(HandleError::Full) => Err(Stop::Failed(format!(
                "output dropped: the connection's inbox stayed full for {:?}",
                self.delivery_timeout
            ))),
        }
    }

    /// Waits for a child whose pipes are closed, still obeying the switch.
    fn reap(&self, child: &mut Child) -> ProcessEnd {
        let mut pause = Duration::from_millis(1);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return ProcessEnd::from_status(status),
                Ok(None) => {}
                Err(e) => {
                    kill_group(child);
                    let _ = child.wait();
                    return ProcessEnd::Failed(format!("cannot wait for the child: {e}"));
                }
            }
            let mut fds = [pollfd(self.control.as_raw_fd())];
            match poll(&mut fds, Some(pause)) {
                Ok(false) => pause = (pause * 2).min(REAP_POLL_MAX),
                Ok(true) | Err(_) => {
                    kill_group(child);
                    return match child.wait() {
                        Ok(status) => ProcessEnd::from_status(status),
                        Err(e) => ProcessEnd::Failed(format!("cannot wait for the child: {e}")),
                    };
                }
            }
        }
    }
}

impl<P, PP> Drop for Supervisor<P, PP> {
    /// A supervisor that never ran (the pool refused it) still reaps.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
            let _ = child.wait();
        }
    }
}

/// A child's pipe: readable, with a descriptor to poll.
trait ReadFd: Read + Send {
    fn fd(&self) -> RawFd;
}

impl<T: Read + AsRawFd + Send> ReadFd for T {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;
    use std::time::Instant;

    const WAIT: Duration = Duration::from_secs(10);

    /// Records every callback its child caused.
    #[derive(Default)]
    struct Parent {
        out: Vec<u8>,
        err: Vec<u8>,
        out_chunks: usize,
        ended: Vec<ProcessEnd>,
    }

    impl Protocol for Parent {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    }

    struct Recorder;

    impl ProcessProtocol<Parent> for Recorder {
        fn out_received(&mut self, data: &[u8], p: &mut Parent, _: &mut Transport) {
            assert!(p.ended.is_empty(), "output after process_ended");
            p.out.extend_from_slice(data);
            p.out_chunks += 1;
        }
        fn err_received(&mut self, data: &[u8], p: &mut Parent, _: &mut Transport) {
            assert!(p.ended.is_empty(), "output after process_ended");
            p.err.extend_from_slice(data);
        }
        fn process_ended(&mut self, end: &ProcessEnd, p: &mut Parent, t: &mut Transport) {
            p.ended.push(end.clone());
            t.write(end.to_string().as_bytes());
        }
    }

    fn harness() -> Harness<Parent> {
        let mut h = Harness::new(Parent::default());
        h.transport().handle();
        h.connect();
        h
    }

    fn spawn(
        h: &mut Harness<Parent>,
        pool: &BlockingPool,
        argv: &[&str],
    ) -> Result<ProcessHandle, SpawnError> {
        spawn_process(pool, h.transport(), argv, Duration::from_secs(60), Recorder)
    }

    /// Runs inbox commands until the child's end was delivered.
    fn run_until_ended(h: &mut Harness<Parent>) {
        let deadline = Instant::now() + WAIT;
        while h.protocol.ended.is_empty() && Instant::now() < deadline {
            h.run_inbox_once(Duration::from_millis(100));
        }
        assert_eq!(h.protocol.ended.len(), 1, "process_ended exactly once");
    }

    fn gone(pid: u32) -> bool {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    fn wait_gone(pid: u32) -> bool {
        let deadline = Instant::now() + WAIT;
        while !gone(pid) && Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(5)); // poll /proc
        }
        gone(pid)
    }

    #[test]
    fn output_arrives_in_chunks_then_one_end() {
        let pool = BlockingPool::new(2, 4).unwrap();
        let mut h = harness();
        // ~489 kB: many pipe reads, so many chunks.
        let p = spawn(&mut h, &pool, &["seq", "1", "80000"]).unwrap();
        run_until_ended(&mut h);
        let expected: String = (1..=80000).map(|i| format!("{i}\n")).collect();
        assert_eq!(
            String::from_utf8(std::mem::take(&mut h.protocol.out)).unwrap(),
            expected
        );
        assert!(
            h.protocol.out_chunks > 1,
            "{} chunk(s)",
            h.protocol.out_chunks
        );
        assert_eq!(h.protocol.ended, [ProcessEnd::Exited(0)]);
        assert!(h.protocol.ended[0].is_success());
        assert_eq!(h.take_text(), "exited with status 0");
        assert!(
            !p.kill(h.transport()),
            "the kill switch was disarmed at the end"
        );
        assert!(gone(p.pid()), "reaped");
    }

    #[test]
    fn stderr_and_a_non_zero_exit() {
        let pool = BlockingPool::new(1, 4).unwrap();
        let mut h = harness();
        spawn(
            &mut h,
            &pool,
            &["sh", "-c", "echo out; echo oops >&2; exit 3"],
        )
        .unwrap();
        run_until_ended(&mut h);
        assert_eq!(h.protocol.out, b"out\n");
        assert_eq!(h.protocol.err, b"oops\n");
        assert_eq!(h.protocol.ended, [ProcessEnd::Exited(3)]);
        assert!(!h.protocol.ended[0].is_success());
    }

    #[test]
    fn no_shell_arguments_are_passed_as_they_are() {
        let pool = BlockingPool::new(1, 4).unwrap();
        let mut h = harness();
        spawn(&mut h, &pool, &["echo", "$HOME; rm -rf /", "*"]).unwrap();
        run_until_ended(&mut h);
        assert_eq!(h.protocol.out, b"$HOME; rm -rf / *\n");
    }

    #[test]
    fn a_missing_program_or_empty_argv_is_an_error() {
        let pool = BlockingPool::new(1, 4).unwrap();
        let mut h = harness();
        let e = spawn(&mut h, &pool, &["/nonexistent/program"]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot run /nonexistent/program: No such file"),
            "{e}"
        );
        let e = spawn(&mut h, &pool, &[]).unwrap_err();
        assert_eq!(e.to_string(), "no program to run");
    }

    #[test]
    fn a_closed_connection_kills_and_reaps_the_child() {
        let pool = BlockingPool::new(1, 4).unwrap();
        let mut h = harness();
        let p = spawn(&mut h, &pool, &["sleep", "30"]).unwrap();
        assert!(!gone(p.pid()));
        drop(h); // the transport and its timers go: the switch fires
        assert!(
            wait_gone(p.pid()),
            "process {} still in /proc (running or a zombie)",
            p.pid()
        );
        // The pool thread is free again.
        let (tx, rx) = crossbeam_channel::bounded(1);
        pool.try_run(move || tx.send(()).unwrap()).unwrap();
        rx.recv_timeout(WAIT).unwrap();
    }

    #[test]
    fn the_time_limit_and_kill_end_the_child_with_a_signal() {
        let pool = BlockingPool::new(2, 4).unwrap();
        let mut h = harness();
        let p = spawn_process(
            &pool,
            h.transport(),
            &["sleep", "30"],
            Duration::from_millis(100),
            Recorder,
        )
        .unwrap();
        h.advance(Duration::from_millis(200)); // the harness clock: the limit passes
        run_until_ended(&mut h);
        assert_eq!(h.protocol.ended, [ProcessEnd::Signaled(libc::SIGKILL)]);
        assert!(wait_gone(p.pid()));

        let mut h = harness();
        let p = spawn(&mut h, &pool, &["sleep", "30"]).unwrap();
        assert!(p.kill(h.transport()));
        run_until_ended(&mut h);
        assert_eq!(h.protocol.ended, [ProcessEnd::Signaled(libc::SIGKILL)]);
        assert_eq!(h.take_text(), "killed by signal 9");
        assert!(wait_gone(p.pid()));
    }

    #[test]
    fn a_busy_pool_refuses_and_reaps() {
        let pool = BlockingPool::new(1, 0).unwrap();
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
        // Retry until the one thread is idle and takes the blocker (a
        // rendezvous queue takes a job only from a waiting thread).
        let deadline = Instant::now() + WAIT;
        let started = std::sync::Arc::new(std::sync::Mutex::new(Some((started_tx, release_rx))));
        loop {
            let cell = started.clone();
            let job = move || {
                if let Some((tx, rx)) = cell.lock().unwrap().take() {
                    tx.send(()).unwrap();
                    let _ = rx.recv_timeout(WAIT);
                }
            };
            if pool.try_run(job).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::park_timeout(Duration::from_millis(1));
        }
        started_rx.recv_timeout(WAIT).unwrap();
        let mut h = harness();
        let e = spawn(&mut h, &pool, &["sleep", "30"]).unwrap_err();
        assert_eq!(e.to_string(), "server busy");
        assert!(matches!(e, SpawnError::Busy(_)));
        release_tx.send(()).unwrap();
    }
}
