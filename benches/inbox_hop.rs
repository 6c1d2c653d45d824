//! The cost of the channel hop: echo latency with a protocol that takes a
//! handle (inbox mode on the thread engines: a reader thread feeds the
//! owner through a channel) against plain echo (direct mode: the owner
//! reads the socket itself), on each in-process model, one connection doing
//! 64-byte ping-pong.
//!
//! `cargo bench --bench inbox_hop` (SPINDLE_BENCH_SECS per point, default 2).
//! Prints a Markdown table for NOTES.md.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use spindle::protocols::echo::Echo;
use spindle::{Endpoint, FnFactory, Model, Protocol, Server, ServerConfig, Transport};

/// Echo that takes a handle on connect, so its engine runs it in inbox mode.
struct InboxEcho;

impl Protocol for InboxEcho {
    fn connection_made(&mut self, t: &mut Transport) {
        let _ = t.handle();
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

fn measure(model: Model, inbox: bool, secs: f64) -> (f64, u64, u64) {
    let mut server = Server::new(ServerConfig {
        model,
        stack_size: model.default_stack_size(),
        ..ServerConfig::default()
    });
    let factory = FnFactory::new("Echo", move |_| {
        if inbox {
            Box::new(InboxEcho) as Box<dyn Protocol>
        } else {
            Box::new(Echo) as Box<dyn Protocol>
        }
    });
    server
        .listen(&Endpoint::loopback_any_port(), Arc::new(factory))
        .expect("binds");
    let running = server.spawn().expect("starts");
    let mut s = TcpStream::connect(running.tcp_addr()).expect("connects");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let msg = [b'x'; 64];
    let mut buf = [0u8; 64];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let warm = Instant::now() + Duration::from_millis(500);
    while Instant::now() < warm {
        s.write_all(&msg).expect("writes");
        s.read_exact(&mut buf).expect("echo");
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let t = Instant::now();
        s.write_all(&msg).expect("writes");
        s.read_exact(&mut buf).expect("echo");
        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
    }
    let rate = hist.len() as f64 / start.elapsed().as_secs_f64();
    drop(s);
    let _ = running.stop();
    (
        rate,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
    )
}

fn main() {
    let secs: f64 = std::env::var("SPINDLE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    println!(
        "| model | direct: round trips/s | direct p50 / p99 (µs) | handle taken: round trips/s | handle taken p50 / p99 (µs) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for model in [Model::Pool, Model::Thread, Model::Reactor] {
        let (dr, d50, d99) = measure(model, false, secs);
        let (ir, i50, i99) = measure(model, true, secs);
        println!("| {model} | {dr:.0} | {d50} / {d99} | {ir:.0} | {i50} / {i99} |");
    }
}
