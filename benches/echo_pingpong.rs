//! Echo ping-pong: each connection sends 64 bytes and waits for the whole
//! echo before sending again. Spindle's pool engine against a bare
//! std::net thread-per-connection echo server, measured in the same run,
//! at 1, 16 and 128 connections.
//!
//! `cargo bench --bench echo_pingpong` (SPINDLE_BENCH_SECS sets the time per
//! point, default 3). Prints a Markdown table for NOTES.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use spindle::protocols::echo;
use spindle::{Endpoint, Server, ServerConfig};

const MESSAGE: usize = 64;

/// The baseline: a thread per connection, nothing else.
fn bare_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("has an address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut s = stream;
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Round trips per second over `secs`, with `connections` client threads.
fn ping_pong(addr: SocketAddr, connections: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let (stop, counting, total) = (stop.clone(), counting.clone(), total.clone());
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connects");
                s.set_nodelay(true).expect("nodelay");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let msg = [b'x'; MESSAGE];
                let mut buf = [0u8; MESSAGE];
                let mut mine = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    s.write_all(&msg).expect("writes");
                    s.read_exact(&mut buf).expect("reads the echo");
                    if counting.load(Ordering::Relaxed) {
                        mine += 1;
                    }
                }
                total.fetch_add(mine, Ordering::Relaxed);
            })
        })
        .collect();
    // Warm-up (connections made, caches warm), then the measured window.
    let warmup = Instant::now() + Duration::from_millis(500);
    while Instant::now() < warmup {
        thread::park_timeout(warmup - Instant::now());
    }
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        thread::park_timeout(end - Instant::now());
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for c in clients {
        c.join().expect("client finished");
    }
    total.load(Ordering::Relaxed) as f64 / elapsed
}

fn main() {
    let secs: f64 = std::env::var("SPINDLE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let bare = bare_echo_server();
    let mut server = Server::new(ServerConfig::default());
    let pool = match server.listen(&Endpoint::loopback_any_port(), Arc::new(echo::factory())) {
        Ok(spindle::Addr::Tcp(a)) => a,
        other => panic!("cannot listen: {other:?}"),
    };
    let running = server.spawn().expect("server starts");
    println!(
        "| connections | bare thread-per-connection (round trips/s) | spindle pool (round trips/s) | pool / bare |"
    );
    println!("|---:|---:|---:|---:|");
    for connections in [1, 16, 128] {
        let b = ping_pong(bare, connections, secs);
        let p = ping_pong(pool, connections, secs);
        println!("| {connections} | {b:.0} | {p:.0} | {:.2} |", p / b);
    }
    running.stop().expect("server stops");
}
