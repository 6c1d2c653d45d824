//! The paste of issue 15, against any chat server on the wire: a room of
//! READERS members that keep reading, and one more member that sends
//! LINES short lines in one `write` (a paste). It reports, for every
//! reader, the paste lines it received, whether they came in order and
//! complete, whether the server disconnected it, and when its last line
//! came; for the paster, how its write ended and its own echoes; with
//! SERVER_PID, the server's resident memory before and at its peak.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/chat_paste 127.0.0.1:PORT [READERS] [LINES] [SERVER_PID]
//! ```
//!
//! Defaults: 10 readers, 50,000 lines. Like examples/fanout_load.rs it
//! needs no greeting: the paster says a `sync` line every few
//! milliseconds until every member has heard one. The run ends when every
//! member has every line or was disconnected, after [`QUIET_LIMIT`]
//! without a line delivered anywhere, or at [`RUN_LIMIT`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long every member gets to hear its first line.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The run ends after this long without a paste line delivered.
const QUIET_LIMIT: Duration = Duration::from_secs(10);
/// The run ends after this long in any case.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// How often the server's memory is sampled.
const RSS_SAMPLE: Duration = Duration::from_millis(20);

/// What one member has heard.
#[derive(Default)]
struct Heard {
    /// Paste lines received.
    lines: AtomicU64,
    /// Nanoseconds from the paste's start to the last paste line.
    last_nanos: AtomicU64,
    /// Any line, sync lines included, was heard.
    joined: AtomicBool,
    /// A paste line came with a lower number than one before it.
    disordered: AtomicBool,
    /// Paste lines skipped (a number came before the one expected).
    skipped: AtomicU64,
    /// The server closed this connection.
    closed: AtomicBool,
}

/// Reads one member's connection until `done`, counting paste lines.
fn receive(
    mut stream: TcpStream,
    heard: Arc<Heard>,
    start: Arc<Mutex<Option<Instant>>>,
    done: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    let mut expected = 0u64;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    while !done.load(Ordering::Relaxed) {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        let mut rest = &buf[..n];
        let mut got = 0;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let line: &[u8] = if partial.is_empty() {
                &rest[..nl]
            } else {
                partial.extend_from_slice(&rest[..nl]);
                &partial
            };
            if memchr::memmem::find(line, b"~sync~").is_some() {
                heard.joined.store(true, Ordering::Relaxed);
            } else if let Some(seq) = paste_number(line) {
                got += 1;
                if seq < expected {
                    heard.disordered.store(true, Ordering::Relaxed);
                } else {
                    heard.skipped.fetch_add(seq - expected, Ordering::Relaxed);
                    expected = seq + 1;
                }
            }
            partial.clear();
            rest = &rest[nl + 1..];
        }
        partial.extend_from_slice(rest);
        if got > 0 {
            heard.lines.fetch_add(got, Ordering::Relaxed);
            if let Ok(start) = start.lock()
                && let Some(t) = *start
            {
                heard
                    .last_nanos
                    .store(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }
    }
    if !done.load(Ordering::Relaxed) {
        heard.closed.store(true, Ordering::Relaxed);
    }
}

/// SEQ from a line holding `~paste:SEQ~`.
fn paste_number(line: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(line, b"~paste:")?;
    let rest = &line[at + 7..];
    let end = memchr::memchr(b'~', rest)?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The server's resident memory in KiB (0 if unknown).
fn rss_kib(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: chat_paste HOST:PORT [READERS] [LINES] [SERVER_PID]";
    let Some(addr) = args.first().and_then(|a| a.parse::<SocketAddr>().ok()) else {
        fail(usage);
    };
    let number = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map_or(default, |a| a.parse().unwrap_or_else(|_| fail(usage)))
    };
    let readers = number(1, 10) as usize;
    let lines = number(2, 50_000);
    let pid = args
        .get(3)
        .map(|a| a.parse::<u32>().unwrap_or_else(|_| fail(usage)));
    if readers == 0 || lines == 0 {
        fail(usage);
    }
    let start = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    // Member 0 is the paster, 1..=READERS the readers.
    let mut heard = Vec::new();
    let mut threads = Vec::new();
    let mut paster = None;
    for me in 0..=readers {
        let stream = TcpStream::connect_timeout(&addr, JOIN_TIMEOUT)
            .unwrap_or_else(|e| fail(&format!("member {me} cannot connect to {addr}: {e}")));
        let _ = stream.set_nodelay(true);
        if me == 0 {
            paster = Some(stream.try_clone().unwrap_or_else(|e| fail(&e.to_string())));
        }
        let h = Arc::new(Heard::default());
        heard.push(h.clone());
        let (start, done) = (start.clone(), done.clone());
        threads.push(thread::spawn(move || receive(stream, h, start, done)));
    }
    let mut paster = paster.unwrap_or_else(|| fail("no paster"));
    let joined_by = Instant::now() + JOIN_TIMEOUT;
    while heard.iter().any(|h| !h.joined.load(Ordering::Relaxed)) {
        if Instant::now() >= joined_by {
            fail("not every member heard a line within the join timeout");
        }
        paster
            .write_all(b"~sync~\r\n")
            .unwrap_or_else(|e| fail(&format!("the paster cannot write: {e}")));
        thread::sleep(Duration::from_millis(5)); // pacing the sync lines
    }

    let mut paste = Vec::new();
    for seq in 0..lines {
        let _ = write!(paste, "~paste:{seq}~ a pasted line\r\n");
    }
    let rss_before = rss_kib(pid);
    let began = Instant::now();
    if let Ok(mut s) = start.lock() {
        *s = Some(began);
    }
    // The paste goes out from its own thread: a server that pushes back
    // blocks this write, and the samples below go on meanwhile.
    let write_result: Arc<Mutex<Option<(Duration, String)>>> = Arc::default();
    let written = write_result.clone();
    let writer = thread::spawn(move || {
        let outcome = match paster.write_all(&paste) {
            Ok(()) => "complete".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        if let Ok(mut w) = written.lock() {
            *w = Some((began.elapsed(), outcome));
        }
    });
    let mut rss_peak = rss_before;
    let mut last_total = 0;
    let mut last_progress = Instant::now();
    loop {
        let finished = heard
            .iter()
            .all(|h| h.closed.load(Ordering::Relaxed) || h.lines.load(Ordering::Relaxed) >= lines);
        let total: u64 = heard.iter().map(|h| h.lines.load(Ordering::Relaxed)).sum();
        if total != last_total {
            last_total = total;
            last_progress = Instant::now();
        }
        rss_peak = rss_peak.max(rss_kib(pid));
        if finished || last_progress.elapsed() >= QUIET_LIMIT || began.elapsed() >= RUN_LIMIT {
            break;
        }
        thread::sleep(RSS_SAMPLE); // the memory sampling period
    }
    let elapsed = began.elapsed();
    done.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let write = write_result.lock().ok().and_then(|w| w.clone());
    // A write still blocked is left to end with the process.
    if writer.is_finished() {
        let _ = writer.join();
    }
    let report = |who: &str, h: &Heard| {
        println!(
            "{who}: lines={} of {lines}{}{}{} last_line_s={:.2}",
            h.lines.load(Ordering::Relaxed),
            if h.closed.load(Ordering::Relaxed) {
                " DISCONNECTED"
            } else {
                ""
            },
            if h.disordered.load(Ordering::Relaxed) {
                " OUT-OF-ORDER"
            } else {
                ""
            },
            match h.skipped.load(Ordering::Relaxed) {
                0 => String::new(),
                n => format!(" skipped={n}"),
            },
            h.last_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        );
    };
    report("paster echo", &heard[0]);
    for (i, h) in heard.iter().enumerate().skip(1) {
        report(&format!("reader {i}"), h);
    }
    let readers_heard: Vec<&Arc<Heard>> = heard.iter().skip(1).collect();
    let complete = readers_heard
        .iter()
        .filter(|h| {
            h.lines.load(Ordering::Relaxed) == lines
                && !h.disordered.load(Ordering::Relaxed)
                && h.skipped.load(Ordering::Relaxed) == 0
        })
        .count();
    let disconnected = readers_heard
        .iter()
        .filter(|h| h.closed.load(Ordering::Relaxed))
        .count();
    let got: Vec<u64> = readers_heard
        .iter()
        .map(|h| h.lines.load(Ordering::Relaxed))
        .collect();
    let last = readers_heard
        .iter()
        .map(|h| h.last_nanos.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    println!(
        "summary: readers_complete={complete}/{readers} readers_disconnected={disconnected} \
         reader_lines_min={} reader_lines_max={} last_line_s={:.2} run_s={:.2} \
         paster_write={} paster_disconnected={} rss_before_kib={rss_before} rss_peak_kib={rss_peak}",
        got.iter().min().unwrap_or(&0),
        got.iter().max().unwrap_or(&0),
        last as f64 / 1e9,
        elapsed.as_secs_f64(),
        write
            .map_or("still-blocked".to_string(), |(t, o)| format!(
                "{o}@{:.2}s",
                t.as_secs_f64()
            ))
            .replace(' ', "_"),
        heard[0].closed.load(Ordering::Relaxed),
    );
}

/// Prints why and exits 1.
fn fail(why: &str) -> ! {
    eprintln!("chat_paste: {why}");
    std::process::exit(1)
}
