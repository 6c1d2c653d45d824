//! Connection churn: 100,000 connections one after another against the
//! real `spindle serve echo` binary (pool engine), each doing one 4-byte
//! round trip. Prints the server's thread count and RSS every 10,000
//! connections, to show that nothing leaks.
//!
//! `cargo bench --bench connection_churn` (SPINDLE_CHURN sets the count).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let total: usize = std::env::var("SPINDLE_CHURN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(["serve", "echo", "--listen", "tcp:0:interface=127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spindle starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let port: u16 = loop {
        let line = lines.next().expect("spindle logs its port").expect("text");
        if let Some(rest) = line.split("EchoFactory starting on ").nth(1) {
            break rest.trim().parse().expect("a port");
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let pid = child.id();
    println!("| connections | server threads | server RSS (KiB) | connections/s |");
    println!("|---:|---:|---:|---:|");
    let mut window = Instant::now();
    for i in 1..=total {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(b"ping").expect("writes");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("echo");
        if i % 10_000 == 0 || i == total {
            let rate = 10_000f64.min(i as f64) / window.elapsed().as_secs_f64();
            println!(
                "| {i} | {} | {} | {rate:.0} |",
                status_field(pid, "Threads:"),
                status_field(pid, "VmRSS:")
            );
            window = Instant::now();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
