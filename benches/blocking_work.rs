//! Blocking work under each model (NOTES.md, "Blocking work"): the real
//! `spindle serve cmd --model M`, one client hashing a big file over and
//! over (`comhash big`), and other clients sending a command answered at
//! once (`x` → `Command not found.`) and timing each round trip. Three
//! cases per model: nobody hashing (the baseline), hashing through
//! `defer_to_thread` (the server's default), and hashing inline on the
//! connection's owner (`--comhash-inline`).
//!
//! ```sh
//! cargo bench --bench blocking_work
//! SPINDLE_MODELS=pool,reactor SPINDLE_TALKERS=15 SPINDLE_HASH_MIB=256 SPINDLE_BENCH_SECS=4 cargo bench --bench blocking_work
//! ```
//!
//! Prints a Markdown table. The big file is sparse: hashing it costs CPU,
//! not disk.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use support::{Served, env_or};

/// How long any one answer may take before the bench gives up on it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Round trips each talker makes before the measured window.
const WARMUP_ROUND_TRIPS: usize = 100;

struct Line {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Line {
    fn connect(port: u16) -> Line {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clones"));
        Line { stream, reader }
    }

    fn ask(&mut self, command: &[u8], expect: &str) {
        self.stream.write_all(command).expect("writes");
        let mut answer = String::new();
        self.reader.read_line(&mut answer).expect("reads an answer");
        assert!(
            answer.starts_with(expect),
            "asked {command:?}, got {answer:?}"
        );
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Case {
    NoHashing,
    Deferred,
    Inline,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::NoHashing => "nobody hashing",
            Case::Deferred => "defer_to_thread",
            Case::Inline => "inline",
        }
    }
}

struct Outcome {
    round_trips: u64,
    latency_us: Histogram<u64>,
    hashes: u64,
    hash_secs: f64,
}

fn run(model: &str, case: Case, root: &str, talkers: usize, secs: f64) -> Outcome {
    let max_clients = (talkers + 10).to_string();
    let mut args = vec![
        "--model",
        model,
        "--root",
        root,
        "--max-clients",
        &max_clients,
    ];
    if case == Case::Inline {
        args.push("--comhash-inline");
    }
    let server = Served::start("cmd", &args);
    let port = server.port;
    let start = Arc::new(Barrier::new(talkers + 2));
    let window = Duration::from_secs_f64(secs);
    let talking: Vec<_> = (0..talkers)
        .map(|_| {
            let start = start.clone();
            thread::spawn(move || {
                let mut line = Line::connect(port);
                for _ in 0..WARMUP_ROUND_TRIPS {
                    line.ask(b"x\n", "Command not found.");
                }
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                start.wait();
                let end = Instant::now() + window;
                while Instant::now() < end {
                    let t = Instant::now();
                    line.ask(b"x\n", "Command not found.");
                    let _ = h.record(t.elapsed().as_micros() as u64);
                }
                h
            })
        })
        .collect();
    let hashing = {
        let start = start.clone();
        thread::spawn(move || {
            let mut line = Line::connect(port);
            start.wait();
            let (mut hashes, mut busy) = (0, 0.0);
            if case == Case::NoHashing {
                return (hashes, busy);
            }
            let end = Instant::now() + window;
            while Instant::now() < end {
                let t = Instant::now();
                line.ask(b"comhash big\n", "File hash is : ");
                hashes += 1;
                busy += t.elapsed().as_secs_f64();
            }
            (hashes, busy)
        })
    };
    start.wait();
    let began = Instant::now();
    let mut latency_us = Histogram::<u64>::new(3).expect("histogram");
    for t in talking {
        latency_us
            .add(t.join().expect("a talker"))
            .expect("same shape");
    }
    let talked = began.elapsed().as_secs_f64();
    let (hashes, busy) = hashing.join().expect("the hasher");
    drop(server);
    Outcome {
        round_trips: (latency_us.len() as f64 / talked) as u64,
        latency_us,
        hashes,
        hash_secs: if hashes > 0 {
            busy / hashes as f64
        } else {
            0.0
        },
    }
}

fn main() {
    let secs: f64 = env_or("SPINDLE_BENCH_SECS", 4.0);
    let talkers: usize = env_or("SPINDLE_TALKERS", 15);
    let mib: u64 = env_or("SPINDLE_HASH_MIB", 256);
    let models: String = env_or("SPINDLE_MODELS", "pool,thread,reactor".to_string());
    let dir = std::env::temp_dir().join(format!("spindle-blocking-work-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creates the root");
    let big = std::fs::File::create(dir.join("big")).expect("creates the file");
    big.set_len(mib << 20).expect("a sparse file");
    let root = dir.to_str().expect("a UTF-8 temp path").to_string();
    println!(
        "{talkers} clients sending `x` (answered at once) while one client hashes a {mib} MiB file \
         over and over; {secs} s per row.\n"
    );
    println!(
        "| model | comhash | `x` round trips/s | p50 (µs) | p99 (µs) | max (µs) | hashes done | seconds per hash |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for model in models.split(',') {
        for case in [Case::NoHashing, Case::Deferred, Case::Inline] {
            let o = run(model, case, &root, talkers, secs);
            let hashes = if case == Case::NoHashing {
                "-".to_string()
            } else {
                o.hashes.to_string()
            };
            let per_hash = if o.hashes > 0 {
                format!("{:.2}", o.hash_secs)
            } else {
                "-".to_string()
            };
            println!(
                "| {model} | {} | {} | {} | {} | {} | {hashes} | {per_hash} |",
                case.name(),
                o.round_trips,
                o.latency_us.value_at_quantile(0.5),
                o.latency_us.value_at_quantile(0.99),
                o.latency_us.max(),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
