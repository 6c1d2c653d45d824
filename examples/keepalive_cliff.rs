//! The keep-alive cliff, measured per client: N keep-alive HTTP clients
//! (one thread each) hammer a server for D seconds; each counts the
//! responses it got, reconnecting whenever the server closes. wrk reports
//! only the total, which hides clients that were never served; this prints
//! requests per client (min / median / max) and how many got none.
//!
//! ```text
//! spindle serve http --listen tcp:8080 --workers 4 --keepalive-cliff hold &
//! cargo run --release --example keepalive_cliff -- 127.0.0.1:8080 16 5
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// One client's session: requests answered and connections opened.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    answered: u64,
    connections: u64,
}

/// Reads one response; returns whether the server keeps the connection.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut slots);
        if let Ok(httparse::Status::Complete(head)) = response.parse(buf) {
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
            };
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let close = header("connection").is_some_and(|v| v.contains("close"));
            while buf.len() < head + length {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(!close);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn client(addr: SocketAddr, stop: &AtomicBool) -> Tally {
    let request = b"GET / HTTP/1.1\r\nHost: cliff\r\n\r\n";
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            continue;
        };
        tally.connections += 1;
        let _ = stream.set_nodelay(true);
        // Short timeouts so that a starved client notices the end of the run.
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut pending = false;
        while !stop.load(Ordering::Relaxed) {
            if !pending {
                if stream.write_all(request).is_err() {
                    break;
                }
                pending = true;
            }
            match read_response(&mut stream, &mut buf) {
                Ok(keep) => {
                    // Answers that arrive after the run are not counted: the
                    // end of the run frees the workers it measured.
                    if !stop.load(Ordering::Relaxed) {
                        tally.answered += 1;
                    }
                    pending = false;
                    if !keep {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // Still waiting for a worker; a partial response would
                    // be lost here, but the server sends each in one write.
                    buf.clear();
                }
                Err(_) => break,
            }
        }
    }
    tally
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: keepalive_cliff HOST:PORT CLIENTS SECONDS");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("HOST:PORT");
    let clients: usize = args[2].parse().expect("a client count");
    let seconds: f64 = args[3].parse().expect("a duration in seconds");
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || client(addr, &stop))
        })
        .collect();
    let start = Instant::now();
    thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut tallies: Vec<Tally> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    tallies.sort_by_key(|t| t.answered);
    let total: u64 = tallies.iter().map(|t| t.answered).sum();
    let connections: u64 = tallies.iter().map(|t| t.connections).sum();
    let starved = tallies.iter().filter(|t| t.answered == 0).count();
    println!(
        "clients {clients}  requests {total} ({:.0}/s)  per client min {} median {} max {}  starved {starved}  connections {connections}",
        total as f64 / elapsed,
        tallies.first().map_or(0, |t| t.answered),
        tallies.get(tallies.len() / 2).map_or(0, |t| t.answered),
        tallies.last().map_or(0, |t| t.answered),
    );
}
