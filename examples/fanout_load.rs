//! The fan-out workload of issue 15, against any chat server on the wire
//! (Spindle's, the bare thread chat, Twisted's tutorial `PubProtocol`):
//! CLIENTS connections in one room, one of them talking, every line it
//! says delivered to all CLIENTS (itself included). The sender keeps at
//! most WINDOW lines ahead of the slowest receiver and otherwise sends as
//! fast as it can; the result is the lines delivered per second, over all
//! receivers, for SECS seconds after a half-second warm-up.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/fanout_load 127.0.0.1:PORT [CLIENTS] [WINDOW] [SECS]
//! ```
//!
//! Defaults: 50 clients, a window of 64 lines, 5 s. It needs no greeting
//! (Twisted's tutorial sends none): the sender says a `sync` line every
//! few milliseconds until every client has heard one, so every client is
//! in the room before the run starts. Each line carries `~fan:SEQ:NANOS~`,
//! its sequence number and send time; a line is `\r\n`-terminated, as
//! Twisted's `LineReceiver` wants. Prints one result line:
//! `lines_per_sec=... p50_us=... p99_us=... disconnects=...`.
//!
//! Every wait is bounded: joining by [`JOIN_TIMEOUT`], a stalled window by
//! [`STALL_TIMEOUT`] (then the run fails, saying so).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How long every client gets to hear its first line.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the window may stay full before the run is given up.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines sent before the measured window starts.
const WARMUP: Duration = Duration::from_millis(500);
/// The sender's longest sleep while the window is full (receivers wake it
/// sooner).
const PARK: Duration = Duration::from_millis(1);
/// Latencies above this (µs) are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What one receiver has heard, shared with the sender.
struct Heard {
    /// One past the highest sequence number received (0: none yet).
    next: AtomicU64,
    /// Marked lines received (sync lines included).
    lines: AtomicU64,
    /// The server closed this connection.
    closed: AtomicBool,
}

/// Shared by every thread of the run.
struct Run {
    base: Instant,
    heard: Vec<Heard>,
    /// Latencies are recorded while set.
    measuring: AtomicBool,
    done: AtomicBool,
    /// Set by the sender before it parks, cleared by whoever wakes it.
    sender_waiting: AtomicBool,
}

/// Reads one client's connection to the end of the run, counting marked
/// lines; returns its latency histogram.
fn receive(
    mut stream: TcpStream,
    me: usize,
    run: Arc<Run>,
    sender: thread::Thread,
) -> Histogram<u64> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds");
    let heard = &run.heard[me];
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    // A read times out so the end of the run is noticed.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    while !run.done.load(Ordering::Relaxed) {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                heard.closed.store(true, Ordering::Relaxed);
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => {
                heard.closed.store(true, Ordering::Relaxed);
                break;
            }
        };
        let now = run.base.elapsed().as_nanos() as u64;
        let measuring = run.measuring.load(Ordering::Relaxed);
        let mut rest = &buf[..n];
        let mut got = 0;
        let mut next = None;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let line: &[u8] = if partial.is_empty() {
                &rest[..nl]
            } else {
                partial.extend_from_slice(&rest[..nl]);
                &partial
            };
            if let Some((seq, sent)) = marker(line) {
                got += 1;
                next = Some(seq + 1);
                if measuring && sent > 0 {
                    let _ = hist.record((now.saturating_sub(sent) / 1000).clamp(1, MAX_LATENCY_US));
                }
            }
            partial.clear();
            rest = &rest[nl + 1..];
        }
        partial.extend_from_slice(rest);
        if got > 0 {
            heard.lines.fetch_add(got, Ordering::Relaxed);
        }
        if let Some(next) = next {
            heard.next.store(next, Ordering::Release);
            if run.sender_waiting.swap(false, Ordering::AcqRel) {
                sender.unpark();
            }
        }
    }
    hist
}

/// `(SEQ, NANOS)` from a line holding `~fan:SEQ:NANOS~`.
fn marker(line: &[u8]) -> Option<(u64, u64)> {
    let at = memchr::memmem::find(line, b"~fan:")?;
    let rest = &line[at + 5..];
    let end = memchr::memchr(b'~', rest)?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    let (seq, nanos) = text.split_once(':')?;
    Some((seq.parse().ok()?, nanos.parse().ok()?))
}

/// The slowest open receiver's next expected line (None: all closed).
fn slowest(run: &Run) -> Option<u64> {
    run.heard
        .iter()
        .filter(|h| !h.closed.load(Ordering::Relaxed))
        .map(|h| h.next.load(Ordering::Acquire))
        .min()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fanout_load HOST:PORT [CLIENTS] [WINDOW] [SECS]";
    let Some(addr) = args.first().and_then(|a| a.parse::<SocketAddr>().ok()) else {
        fail(usage);
    };
    let number = |i: usize, default: f64| -> f64 {
        args.get(i)
            .map_or(default, |a| a.parse().unwrap_or_else(|_| fail(usage)))
    };
    let clients = number(1, 50.0) as usize;
    let window = number(2, 64.0) as u64;
    let secs = number(3, 5.0);
    if clients == 0 || window == 0 || secs <= 0.0 {
        fail(usage);
    }
    let run = Arc::new(Run {
        base: Instant::now(),
        heard: (0..clients)
            .map(|_| Heard {
                next: AtomicU64::new(0),
                lines: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            })
            .collect(),
        measuring: AtomicBool::new(false),
        done: AtomicBool::new(false),
        sender_waiting: AtomicBool::new(false),
    });
    let mut sender = None;
    let mut receivers = Vec::new();
    for me in 0..clients {
        let stream = TcpStream::connect_timeout(&addr, JOIN_TIMEOUT)
            .unwrap_or_else(|e| fail(&format!("client {me} cannot connect to {addr}: {e}")));
        let _ = stream.set_nodelay(true);
        if me == 0 {
            sender = Some(stream.try_clone().unwrap_or_else(|e| fail(&e.to_string())));
        }
        let (run, me_thread) = (run.clone(), thread::current());
        receivers.push(thread::spawn(move || receive(stream, me, run, me_thread)));
    }
    let mut sender = sender.unwrap_or_else(|| fail("no sender"));
    let mut seq = 0u64;
    let mut line = Vec::with_capacity(64);
    let mut say = |seq: u64, stamp: bool, sender: &mut TcpStream| {
        line.clear();
        let nanos = if stamp {
            run.base.elapsed().as_nanos() as u64
        } else {
            0
        };
        let _ = write!(line, "~fan:{seq}:{nanos}~\r\n");
        sender
            .write_all(&line)
            .unwrap_or_else(|e| fail(&format!("the sender cannot write: {e}")));
    };

    // Join: a sync line at a time until every client has heard one.
    let joined_by = Instant::now() + JOIN_TIMEOUT;
    while run
        .heard
        .iter()
        .any(|h| h.next.load(Ordering::Acquire) == 0)
    {
        if Instant::now() >= joined_by {
            fail("not every client heard a line within the join timeout");
        }
        say(seq, false, &mut sender);
        seq += 1;
        thread::sleep(Duration::from_millis(5)); // pacing the sync lines
    }

    // The run: WINDOW lines ahead of the slowest receiver at most.
    let started = Instant::now();
    let end = started + WARMUP + Duration::from_secs_f64(secs);
    let mut window_opened = None;
    let mut counted_from = 0;
    let mut stalled_since: Option<Instant> = None;
    let total = |run: &Run| {
        run.heard
            .iter()
            .map(|h| h.lines.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if window_opened.is_none() && now >= started + WARMUP {
            run.measuring.store(true, Ordering::Relaxed);
            counted_from = total(&run);
            window_opened = Some(now);
        }
        let Some(low) = slowest(&run) else {
            fail("the server closed every connection");
        };
        if seq - low < window {
            stalled_since = None;
            say(seq, true, &mut sender);
            seq += 1;
            continue;
        }
        let since = *stalled_since.get_or_insert(now);
        if now - since > STALL_TIMEOUT {
            fail(&format!(
                "no line delivered to every client for {STALL_TIMEOUT:?}"
            ));
        }
        run.sender_waiting.store(true, Ordering::Release);
        if slowest(&run).is_some_and(|low| seq - low < window) {
            run.sender_waiting.store(false, Ordering::Release);
            continue;
        }
        thread::park_timeout(PARK);
    }
    let delivered = total(&run) - counted_from;
    let elapsed = window_opened.map_or(0.0, |t| t.elapsed().as_secs_f64());
    run.measuring.store(false, Ordering::Relaxed);
    run.done.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds");
    for r in receivers {
        if let Ok(h) = r.join() {
            let _ = hist.add(h);
        }
    }
    let disconnects = run
        .heard
        .iter()
        .filter(|h| h.closed.load(Ordering::Relaxed))
        .count();
    println!(
        "lines_per_sec={:.0} p50_us={} p99_us={} disconnects={disconnects} clients={clients} window={window} secs={secs}",
        delivered as f64 / elapsed,
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.99),
    );
}

/// Prints why and exits 1.
fn fail(why: &str) -> ! {
    eprintln!("fanout_load: {why}");
    std::process::exit(1)
}
