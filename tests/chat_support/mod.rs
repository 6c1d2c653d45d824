//! Helpers for the chat and answer-bot tests: the real `spindle` binary on
//! a loopback port, its log, and line-reading clients, every wait bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single expectation may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The server's stderr, line by line, as it arrives.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Log {
    /// Waits until a line contains `needle`; returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Lines containing `needle`, now.
    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// `spindle serve PROTOCOL` on an ephemeral loopback port; killed on drop.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Its stderr.
    pub log: Arc<Log>,
}

impl Server {
    /// Starts the binary and waits for `<Factory> starting on <address>:<port>`.
    pub fn start(protocol: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spindle"))
            .args(["serve", protocol, "--listen", "tcp:0:interface=127.0.0.1"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn spindle");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Log::default());
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
        });
        let line = log
            .wait_for(" starting on ", PATIENCE)
            .unwrap_or_else(|| panic!("server did not start: {}", log.text()));
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server { child, port, log }
    }

    /// A raw connection to it.
    pub fn connect(&self) -> Client {
        Client::new(TcpStream::connect(("127.0.0.1", self.port)).expect("connect"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- server log ---\n{}\n---", self.log.text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line-oriented client with deadlines.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn new(stream: TcpStream) -> Client {
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Our address, as the chat names us until we pick a nick.
    pub fn name(&self) -> String {
        self.stream.local_addr().unwrap().to_string()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next line, without its `\r\n` (which it must have), or `None`
    /// at EOF or when `timeout` passes.
    pub fn line_within(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                assert!(
                    line.ends_with(b"\r\n"),
                    "line without CRLF: {:?}",
                    String::from_utf8_lossy(&line)
                );
                return Some(String::from_utf8(line[..line.len() - 2].to_vec()).expect("UTF-8"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// The next `n` bytes, whatever they are (telnet answers); fails the
    /// test if they do not come within PATIENCE.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + PATIENCE;
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "only {:?} of {n} bytes came", self.buf);
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("EOF after {:?}, wanted {n} bytes", self.buf),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read failed: {e}"),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// The next line; fails the test if none comes.
    pub fn line(&mut self) -> String {
        self.line_within(PATIENCE).expect("a line from the server")
    }

    /// Reads lines until one equals `expected`; returns those before it.
    pub fn until(&mut self, expected: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let line = self.line();
            if line == expected {
                return before;
            }
            before.push(line);
            assert!(before.len() < 1_000_000, "never saw {expected:?}");
        }
    }

    /// Reads until `n` chat lines (`<...> ...`) arrived; returns them in
    /// order, skipping notices.
    pub fn chat_lines(&mut self, n: usize) -> Vec<String> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let line = self
                .line_within(PATIENCE)
                .unwrap_or_else(|| panic!("only {} of {n} chat lines arrived", got.len()));
            if line.starts_with('<') {
                got.push(line);
            }
        }
        got
    }

    /// Whether the server closed on us within `timeout` (EOF or reset),
    /// discarding whatever came before.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Connects to the chat and reads the greeting; returns the client and the
/// room size the greeting announced.
pub fn join(server: &Server) -> (Client, usize) {
    let mut c = server.connect();
    let greeting = c.line();
    let expected = format!("* welcome, {}: ", c.name());
    assert!(greeting.starts_with(&expected), "greeting {greeting:?}");
    let here = greeting[expected.len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {greeting:?}"));
    (c, here)
}

/// What a user types in the UTF-8 tests: Cyrillic with `у` (D1 83, which a
/// non-binary telnet sends as IAC IP), CJK with `本` (E6 9C AC: IAC BRK),
/// and an accent.
pub const UTF8_LINE: &str = "добрый утро 日本 é";

/// Runs the real `telnet` under a pty through `steps` (see
/// `telnet_script.py`: `type=TEXT`, `expect=REGEX`, `ctrl-c`), which ends
/// when telnet reports the connection closed; fails the test otherwise.
pub fn telnet_script(port: u16, steps: &[String]) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/chat_support/telnet_script.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .args(steps)
        .output()
        .expect("run python3");
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "telnet session failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
