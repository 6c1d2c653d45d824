//! Chat fan-out: 100 clients in one room, one of them talking. Every line
//! it sends is delivered to all 100 (itself included); each carries its
//! send time, so every receiver records the delivery latency.
//!
//! Two runs per model:
//! * **max**: the sender keeps at most `WINDOW` lines ahead of the slowest
//!   receiver (well under the 1024-line outbound queue, so nobody is
//!   dropped as a slow consumer) and otherwise sends as fast as it can:
//!   delivered lines/s is the room's fan-out throughput.
//! * **paced**: 100 lines/s, far below capacity: the latency of a quiet
//!   room.
//!
//! `cargo bench --bench chat_fanout` (SPINDLE_BENCH_SECS sets the time per
//! run, default 3; SPINDLE_MODELS the models, default `pool,thread,reactor`:
//! the server runs in this process, and the process model's children are
//! the `spindle` binary, each with a room of its own). Prints a Markdown
//! table for NOTES.md.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use spindle::engine::Model;
use spindle::protocols::chat::ChatFactory;
use spindle::{Endpoint, Server, ServerConfig};

const CLIENTS: usize = 100;
/// Lines the sender may be ahead of the slowest receiver in the max run.
const WINDOW: u64 = 256;
const PACED_RATE: f64 = 100.0;

struct Result {
    lines_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

/// One receiver: counts chat lines and records their latency.
fn receive(
    stream: TcpStream,
    base: Instant,
    received: Arc<AtomicU64>,
    counting: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> (Histogram<u64>, u64) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut counted = 0u64;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !done.load(Ordering::Relaxed) {
        // A timed-out read may leave part of a line in `line`: keep it.
        match reader.read_line(&mut line) {
            Ok(0) => panic!("the server closed a receiver (dropped as slow?)"),
            Ok(_) if line.ends_with('\n') => {}
            Ok(_) | Err(_) => continue,
        }
        let line = std::mem::take(&mut line);
        // `<127.0.0.1:PORT> t<nanos>\r\n`
        let Some(stamp) = line.split(" t").nth(1) else {
            continue;
        };
        let Ok(sent) = stamp.trim_end().parse::<u64>() else {
            continue;
        };
        received.fetch_add(1, Ordering::Relaxed);
        if counting.load(Ordering::Relaxed) {
            let now = base.elapsed().as_nanos() as u64;
            let _ = hist.record((now.saturating_sub(sent) / 1000).max(1));
            counted += 1;
        }
    }
    (hist, counted)
}

fn run(addr: SocketAddr, secs: f64, paced: bool) -> Result {
    let base = Instant::now();
    let counting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut counters = Vec::new();
    let mut receivers = Vec::new();
    let mut sender = None;
    for i in 0..CLIENTS {
        let stream = TcpStream::connect(addr).expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut greeting = String::new();
        reader.read_line(&mut greeting).expect("greeting");
        assert!(greeting.starts_with("* welcome"), "{greeting}");
        if i == 0 {
            sender = Some(stream.try_clone().expect("clone"));
        }
        let received = Arc::new(AtomicU64::new(0));
        counters.push(received.clone());
        let (counting, done) = (counting.clone(), done.clone());
        receivers.push(thread::spawn(move || {
            receive(stream, base, received, counting, done)
        }));
    }
    let mut sender = sender.expect("a sender");
    let warmup = Duration::from_millis(500);
    let started = Instant::now();
    let mut measure_from = None;
    let end = started + warmup + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    let mut line = Vec::with_capacity(64);
    while Instant::now() < end {
        if measure_from.is_none() && started.elapsed() >= warmup {
            counting.store(true, Ordering::Relaxed);
            measure_from = Some(Instant::now());
        }
        if paced {
            let due = started + Duration::from_secs_f64(sent as f64 / PACED_RATE);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        } else {
            loop {
                let slowest = counters
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(0);
                if sent - slowest < WINDOW || Instant::now() >= end {
                    break;
                }
                thread::yield_now();
            }
        }
        line.clear();
        write!(line, "t{}\r\n", base.elapsed().as_nanos()).expect("format");
        sender.write_all(&line).expect("send");
        sent += 1;
    }
    let elapsed = measure_from.map_or(0.0, |t| t.elapsed().as_secs_f64());
    counting.store(false, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut delivered = 0;
    for r in receivers {
        let (h, n) = r.join().expect("receiver");
        hist.add(h).expect("same bounds");
        delivered += n;
    }
    Result {
        lines_per_sec: delivered as f64 / elapsed,
        p50_us: hist.value_at_quantile(0.50) as f64,
        p99_us: hist.value_at_quantile(0.99) as f64,
        max_us: hist.max() as f64,
    }
}

fn main() {
    let secs: f64 = std::env::var("SPINDLE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    println!(
        "| model | run | delivered lines/s (all {CLIENTS} receivers) | p50 latency | p99 latency | max |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    let models = std::env::var("SPINDLE_MODELS").unwrap_or("pool,thread,reactor".into());
    for name in models.split(',') {
        let model = Model::from_name(name.trim()).expect("SPINDLE_MODELS: pool, thread or reactor");
        for paced in [false, true] {
            let config = ServerConfig {
                model,
                ..ServerConfig::default()
            };
            let mut server = Server::new(config);
            let addr = match server.listen(
                &Endpoint::loopback_any_port(),
                Arc::new(ChatFactory::default()),
            ) {
                Ok(spindle::Addr::Tcp(a)) => a,
                other => panic!("cannot listen: {other:?}"),
            };
            let running = server.spawn().expect("server starts");
            let r = run(addr, secs, paced);
            let label = if paced {
                format!("paced {PACED_RATE:.0} lines/s")
            } else {
                format!("max (window {WINDOW})")
            };
            println!(
                "| {model} | {label} | {:.0} | {:.0} µs | {:.0} µs | {:.0} µs |",
                r.lines_per_sec, r.p50_us, r.p99_us, r.max_us
            );
            running.stop().expect("server stops");
        }
    }
}
