//! Helpers shared by the integration tests: start the real binary, find the
//! port it bound, wait for conditions with deadlines (never sleeps).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Every wait in the tests gives up after this long.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
/// Between polls it yields briefly (a bounded back-off, not a synchronisation
/// sleep: the condition is what the test waits for).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    let mut pause = Duration::from_micros(100);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::park_timeout(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A `spindle` process started by a test, with its stderr collected.
pub struct Spindle {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Spindle {
    /// Starts `spindle ARGS...` with stderr captured. Stdout is discarded.
    #[cfg(feature = "cli")]
    pub fn start(args: &[&str]) -> Spindle {
        Self::start_with(Command::new(env!("CARGO_BIN_EXE_spindle")).args(args))
    }

    /// Starts a prepared command (for extra environment or a shell wrapper).
    pub fn start_with(cmd: &mut Command) -> Spindle {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info")
            .spawn()
            .expect("spindle starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Spindle { child, log }
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        wait_until(DEADLINE, || self.log().contains(needle))
    }

    /// The port of the first `<factory> starting on <address>:<port>` log line.
    pub fn port_of(&self, factory: &str) -> u16 {
        let marker = format!("{factory} starting on ");
        assert!(
            self.wait_for_log(&marker),
            "no {marker:?} in the log:\n{}",
            self.log()
        );
        let log = self.log();
        let rest = &log[log.find(&marker).unwrap() + marker.len()..];
        let address = rest.split_whitespace().next().unwrap();
        address.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    /// Sends a signal (e.g. `libc::SIGINT`).
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit; its exit status code (None: killed).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "spindle did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            thread::park_timeout(Duration::from_millis(10));
        }
    }
}

impl Drop for Spindle {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Connects to 127.0.0.1:port with read/write timeouts set.
pub fn connect(port: u16) -> TcpStream {
    connect_addr(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Connects to `addr` with read/write timeouts set.
pub fn connect_addr(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, DEADLINE).expect("connects");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Reads exactly `n` bytes (or fails on timeout/EOF).
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("reads the expected bytes");
    buf
}

/// Reads until EOF (bounded by the stream's read timeout).
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("reads to EOF");
    out
}

/// Writes all of `data`.
pub fn send(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).expect("writes");
}

/// Runs a shell command line with a timeout and returns its stdout.
pub fn sh(script: &str) -> String {
    let out = Command::new("timeout")
        .args(["20", "bash", "-c", script])
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Threads of a process, from /proc.
pub fn thread_count(pid: u32) -> usize {
    proc_status_field(pid, "Threads:").unwrap_or(0)
}

/// Resident memory of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> usize {
    proc_status_field(pid, "VmRSS:").unwrap_or(0)
}

fn proc_status_field(pid: u32, field: &str) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs an in-process server for `factory` on a free loopback port.
pub fn start_server(
    config: spindle::ServerConfig,
    factory: impl spindle::Factory,
) -> spindle::RunningServer {
    let mut server = spindle::Server::new(config);
    server
        .listen(&spindle::Endpoint::loopback_any_port(), Arc::new(factory))
        .expect("binds");
    server.spawn().expect("starts")
}

/// One `#[test]` per model for each named check of the calling test file,
/// in a module named after the check (`echo::pool`, `echo::reactor`...).
///
/// * `every_model!(a, b)`: each check is a `fn(spindle::Model)`, run under
///   every in-process model (pool, thread, reactor, hybrid).
/// * `every_model!([pool Pool, process Process] |model| a => ARG, ...)`:
///   the models listed (test name, then `spindle::Model` variant), each
///   check called with `ARG`, an expression of `model`, the variant.
#[allow(unused_macros)]
macro_rules! every_model {
    ($($check:ident),* $(,)?) => {
        $crate::util::every_model!(
            [pool Pool, thread Thread, reactor Reactor, hybrid Hybrid] |model| $($check => model),*
        );
    };
    ($models:tt |$model:ident| $($check:ident => $arg:expr),* $(,)?) => {$(
        $crate::util::every_model!(@tests $check $models |$model| $arg);
    )*};
    (@tests $check:ident [$($test:ident $variant:ident),*] |$model:ident| $arg:expr) => {
        mod $check {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $test() {
                    let $model = spindle::Model::$variant;
                    super::$check($arg)
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use every_model;
