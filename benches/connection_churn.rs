//! Connection churn: 100,000 connections one after another against the
//! real `spindle serve echo` binary (pool engine), each doing one 4-byte
//! round trip. Prints the server's thread count and RSS every 10,000
//! connections, to show that nothing leaks.
//!
//! `cargo bench --bench connection_churn` (SPINDLE_CHURN sets the count).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Served, status_field};

fn main() {
    let total: usize = std::env::var("SPINDLE_CHURN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let server = Served::start("echo", &[]);
    let (pid, port) = (server.pid(), server.port);
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
    drop(server);
}
