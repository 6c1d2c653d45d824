//! What the benches that drive the real `spindle` binary share: starting
//! a server on a free loopback port and stopping it, and the environment
//! knobs every bench reads.

#![allow(dead_code)] // each bench uses part of it

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server gets to log its port.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server gets to exit after SIGINT before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `spindle serve`, stopped (SIGINT, then SIGKILL) when dropped.
pub struct Served {
    /// The server process.
    pub child: Child,
    /// The port it listens on, from its `... starting on PORT` log line.
    pub port: u16,
}

impl Served {
    /// `spindle serve PROTOCOL --listen tcp:0:interface=127.0.0.1 ARGS...`.
    pub fn start(protocol: &str, args: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spindle"))
            .args(["serve", protocol, "--listen", "tcp:0:interface=127.0.0.1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spindle starts");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log to its end so the server never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = port_in(&line) {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(START_TIMEOUT)
            .expect("spindle logs the port it listens on");
        Served { child, port }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let end = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < end {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::park_timeout(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a `... starting on ADDRESS:PORT` log line.
pub fn port_in(line: &str) -> Option<u16> {
    let rest = &line[line.find(" starting on ")? + " starting on ".len()..];
    let address = rest.split_whitespace().next()?;
    address.rsplit_once(':')?.1.parse().ok()
}

/// A `/proc/PID/status` field's number (`VmRSS:` in KiB, `Threads:`), 0
/// if the process or the field is gone.
pub fn status_field(pid: u32, field: &str) -> u64 {
    number_after(&format!("/proc/{pid}/status"), field)
}

/// Proportional set size, KiB: shared pages divided among their sharers.
pub fn pss_kib(pid: u32) -> u64 {
    number_after(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

fn number_after(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The processes `pid`'s main thread started and that are alive.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// An environment knob, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
