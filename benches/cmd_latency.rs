//! The command server's answer latency, seen from a client: a command
//! answered on the connection's owner (`x` → `Command not found.`), one
//! that crosses to the blocking pool and back (`comhash` of a 3-byte file:
//! defer_to_thread, then the result through the connection's inbox), and
//! the first kind again while another client hashes a 512 MiB file.
//!
//! `cargo bench --bench cmd_latency` (SPINDLE_BENCH_ROUNDS sets round
//! trips per row, default 2000). Prints a Markdown table for NOTES.md.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle::blocking::BlockingPool;
use spindle::protocols::cmd::{CmdConfig, CmdFactory};
use spindle::{Endpoint, Server, ServerConfig};

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clones"));
        Client { stream, reader }
    }

    fn ask(&mut self, line: &[u8]) -> String {
        self.stream.write_all(line).expect("writes");
        let mut answer = String::new();
        self.reader.read_line(&mut answer).expect("reads an answer");
        answer
    }
}

/// Round-trip times of `rounds` × `line`, in microseconds, sorted.
fn round_trips(addr: SocketAddr, line: &[u8], rounds: usize) -> Vec<f64> {
    let mut c = Client::new(addr);
    for _ in 0..rounds / 10 {
        c.ask(line); // warm-up
    }
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            c.ask(line);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

fn row(what: &str, times: &[f64]) {
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "| {what} | {} | {:.0} | {:.0} | {:.0} |",
        times.len(),
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
}

fn main() {
    let rounds: usize = std::env::var("SPINDLE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("spindle-cmd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("makes a scratch directory");
    std::fs::write(dir.join("small"), "abc").expect("writes");
    let big = std::fs::File::create(dir.join("big")).expect("creates");
    big.set_len(512 << 20).expect("sparse file");

    let pool = Arc::new(BlockingPool::new(10, 100).expect("pool"));
    let config = CmdConfig {
        root: dir.clone(),
        ..CmdConfig::default()
    };
    let factory = CmdFactory::new(config, pool).expect("factory");
    let mut server = Server::new(ServerConfig::default());
    server
        .listen(&Endpoint::loopback_any_port(), Arc::new(factory))
        .expect("binds");
    let running = server.spawn().expect("starts");
    let addr = running.tcp_addr();

    println!("| request | round trips | p50 µs | p99 µs | max µs |");
    println!("|---|---:|---:|---:|---:|");
    row(
        "`x` → `Command not found.` (owner only)",
        &round_trips(addr, b"x\n", rounds),
    );
    row(
        "`comhash small` (pool and back)",
        &round_trips(addr, b"comhash small\n", rounds),
    );

    let mut hasher = Client::new(addr);
    let started = Instant::now();
    hasher.stream.write_all(b"comhash big\n").expect("writes");
    let during = round_trips(addr, b"x\n", rounds.min(500));
    let mut answer = String::new();
    hasher.reader.read_line(&mut answer).expect("the hash");
    let hash_secs = started.elapsed().as_secs_f64();
    row("`x` while another client hashes 512 MiB", &during);
    println!();
    println!(
        "`comhash big` (512 MiB, sparse): {hash_secs:.2} s ({})",
        answer.trim()
    );
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
