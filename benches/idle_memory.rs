//! Memory and threads per idle connection, per concurrency model.
//!
//! For each model, starts the real `spindle serve echo --model M`, opens
//! N connections, makes each do one 1-byte round trip (so that every one is
//! owned by its thread, process or the event loop, not waiting in a
//! backlog), then reads the server's RSS and thread count from /proc and
//! prints one Markdown row. For the process model the children are summed,
//! as RSS (which counts the shared binary and libraries once per child)
//! and as PSS (which shares them out). Connections that got no echo are
//! counted as refused.
//!
//! ```sh
//! cargo bench --bench idle_memory                  # 10,000 per model, 300 for process
//! SPINDLE_IDLE=2000 SPINDLE_MODELS=reactor,thread cargo bench --bench idle_memory
//! SPINDLE_EXTRA="--workers 256 --queue 256" SPINDLE_MODELS=pool cargo bench --bench idle_memory
//! ```
//!
//! `SPINDLE_IDLE_PROCESS` (default 300) caps the process model: each child
//! is a whole process, and 10,000 of them do not fit a shared machine.
//! Unless `SPINDLE_EXTRA` says otherwise, the pool gets `--workers N` so
//! that it can hold N connections at all.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Served, children, pss_kib, status_field};

/// RSS, PSS (KiB), threads and processes of the server and its children.
fn measure(pid: u32) -> (u64, u64, u64, usize) {
    let mut pids = vec![pid];
    pids.extend(children(pid));
    let rss = pids.iter().map(|&p| status_field(p, "VmRSS:")).sum();
    let pss = pids.iter().map(|&p| pss_kib(p)).sum();
    let threads = pids.iter().map(|&p| status_field(p, "Threads:")).sum();
    (rss, pss, threads, pids.len())
}

fn start(model: &str, n: usize, extra: &[String]) -> Served {
    let max = (n + 100).to_string();
    let workers = n.to_string();
    let mut args = vec!["--model", model, "--grace", "2s", "--max-connections", &max];
    if model == "pool" && extra.is_empty() {
        args.extend(["--workers", &workers]);
    }
    args.extend(extra.iter().map(String::as_str));
    Served::start("echo", &args)
}

fn round_trip(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    s.write_all(b"x").is_ok() && matches!(s.read(&mut b), Ok(1))
}

fn main() {
    let n: usize = std::env::var("SPINDLE_IDLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let n_process: usize = std::env::var("SPINDLE_IDLE_PROCESS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let models = std::env::var("SPINDLE_MODELS").unwrap_or("pool,thread,process,reactor".into());
    let extra: Vec<String> = std::env::var("SPINDLE_EXTRA")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    println!(
        "| model | connections | served | refused | RSS before (KiB) | RSS after (KiB) | RSS per connection (KiB) | PSS per connection (KiB) | threads | processes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for model in models.split(',') {
        let n = if model == "process" {
            n.min(n_process)
        } else {
            n
        };
        let server = start(model, n, &extra);
        let (pid, port) = (server.pid(), server.port);
        // One connection first, so that lazily allocated state is counted
        // in the baseline rather than against the first idle connection.
        let mut warm = TcpStream::connect(("127.0.0.1", port)).expect("connects");
        warm.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        assert!(round_trip(&mut warm));
        drop(warm);
        let settle = Instant::now() + Duration::from_secs(1);
        while !children(pid).is_empty() && Instant::now() < settle {
            std::thread::park_timeout(Duration::from_millis(20));
        }
        let (rss0, pss0, _, _) = measure(pid);
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    conns.push(s);
                }
                Err(e) => {
                    eprintln!(
                        "{model}: connect failed after {} connections: {e}",
                        conns.len()
                    );
                    break;
                }
            }
        }
        let served = conns.iter_mut().map(round_trip).filter(|ok| *ok).count();
        let (rss1, pss1, threads, processes) = measure(pid);
        let per = |a: u64, b: u64| (b as f64 - a as f64) / served.max(1) as f64;
        println!(
            "| {model} | {n} | {served} | {} | {rss0} | {rss1} | {:.1} | {:.1} | {threads} | {processes} |",
            n - served,
            per(rss0, rss1),
            per(pss0, pss1),
        );
        drop(conns);
        drop(server);
    }
}
