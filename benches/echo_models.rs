//! Echo throughput and latency per concurrency model: the real
//! `spindle serve echo --model M`, and C client threads in this process,
//! each sending 64 bytes and waiting for the whole echo before sending
//! again (ping-pong), for a fixed window. Prints one Markdown row per
//! (model, connections): round trips per second, p50 and p99 round-trip
//! latency, and how many clients got no service at all (the pool's queue).
//!
//! ```sh
//! cargo bench --bench echo_models
//! SPINDLE_MODELS=pool,reactor SPINDLE_CONNS=16,256 SPINDLE_BENCH_SECS=3 cargo bench --bench echo_models
//! ```
//!
//! Clients and server share the machine's cores, as in every loopback
//! benchmark: compare models within one run, not across machines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod support;

use hdrhistogram::Histogram;
use support::Served;

const MESSAGE: usize = 64;
/// How long a client waits for its first echo before it counts as not
/// served (a pool client queued behind busy workers never gets one).
const FIRST_ECHO: Duration = Duration::from_secs(20);

fn start(model: &str, connections: usize) -> Served {
    let max = (connections + 100).to_string();
    Served::start(
        "echo",
        &["--model", model, "--grace", "1s", "--max-connections", &max],
    )
}

struct Outcome {
    rate: f64,
    p50_us: u64,
    p99_us: u64,
    starved: usize,
}

fn ping_pong(port: u16, connections: usize, secs: f64) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    let merged = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
    ));
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let (stop, counting, ready, merged) = (
                stop.clone(),
                counting.clone(),
                ready.clone(),
                merged.clone(),
            );
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut hist =
                        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                        return false;
                    };
                    let _ = s.set_nodelay(true);
                    // Starting hundreds of processes on a busy machine takes a
                    // while: the first echo may be slow, later ones may not.
                    let _ = s.set_read_timeout(Some(FIRST_ECHO));
                    let msg = [b'x'; MESSAGE];
                    let mut buf = [0u8; MESSAGE];
                    let mut first = true;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        if s.write_all(&msg).is_err() || s.read_exact(&mut buf).is_err() {
                            // No service (a queued pool client) or a refusal.
                            return !first;
                        }
                        if first {
                            ready.fetch_add(1, Ordering::SeqCst);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                            first = false;
                        }
                        if counting.load(Ordering::Relaxed) {
                            let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                        }
                    }
                    if let Ok(mut m) = merged.lock() {
                        let _ = m.add(&hist);
                    }
                    true
                })
                .expect("client thread")
        })
        .collect();
    // Warm up until every client has had one echo (or FIRST_ECHO: the rest
    // are not being served), then half a second more.
    let warm = Instant::now() + FIRST_ECHO;
    while ready.load(Ordering::SeqCst) < connections && Instant::now() < warm {
        thread::park_timeout(Duration::from_millis(10));
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        thread::park_timeout(settle - Instant::now());
    }
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        thread::park_timeout(end - Instant::now());
    }
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let served = clients
        .into_iter()
        .map(|c| c.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    let hist = merged.lock().expect("histogram lock").clone();
    Outcome {
        rate: hist.len() as f64 / elapsed,
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        starved: connections - served,
    }
}

fn main() {
    let secs: f64 = std::env::var("SPINDLE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let models = std::env::var("SPINDLE_MODELS").unwrap_or("pool,thread,process,reactor".into());
    let conns: Vec<usize> = std::env::var("SPINDLE_CONNS")
        .unwrap_or("1,16,256".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    println!("| model | connections | round trips/s | p50 (µs) | p99 (µs) | clients not served |");
    println!("|---|---:|---:|---:|---:|---:|");
    for model in models.split(',') {
        for &c in &conns {
            let server = start(model, c);
            let o = ping_pong(server.port, c, secs);
            println!(
                "| {model} | {c} | {:.0} | {} | {} | {} |",
                o.rate, o.p50_us, o.p99_us, o.starved
            );
            drop(server);
        }
    }
}
