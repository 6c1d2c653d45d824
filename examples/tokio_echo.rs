//! The async standard beside `spindle serve echo`: a tokio echo server on
//! the multi-thread runtime, one task per connection, reading into a
//! buffer of Spindle's default read size and writing back what it read.
//! A comparison server for docs/bench/references.sh, not part of Spindle.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/tokio_echo [PORT] [WORKER_THREADS]
//! nc 127.0.0.1 PORT
//! ```
//!
//! PORT 0 (the default) picks a free port; it is printed as
//! `TokioEcho starting on PORT`, the line Spindle's servers log, so the
//! bench scripts find it the same way. WORKER_THREADS defaults to tokio's
//! own default (one per core). Loopback only.

use std::io;
use std::net::TcpListener;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes read at once: Spindle's `DEFAULT_READ_BUFFER`, so both servers
/// make the same number of system calls for the same load.
const READ_BUFFER: usize = 16 * 1024;

/// How long accepting pauses after a failed accept (out of descriptors,
/// say), so a persistent failure is not a busy loop.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// Echoes every connection `listener` accepts on a runtime of `workers`
/// threads (tokio's default when `None`). Runs until the process ends.
pub fn serve(listener: TcpListener, workers: Option<usize>) -> io::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_io().enable_time();
    if let Some(n) = workers {
        runtime.worker_threads(n);
    }
    let runtime = runtime.build()?;
    listener.set_nonblocking(true)?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    runtime.block_on(async move {
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("TokioEcho: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            // Spindle's servers set TCP_NODELAY too: a small echo must not
            // wait for Nagle.
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; READ_BUFFER];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(())
}

#[path = "support/listen.rs"]
mod listen;

#[allow(dead_code)] // the tests include this file for `serve` alone
fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next().map(|a| a.parse()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(e)) => exit(&format!("PORT: {e}")),
    };
    let workers = match args.next().map(|a| a.parse::<usize>()) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n),
        Some(_) => exit("WORKER_THREADS: a number above 0"),
    };
    let listener = listen::loopback(port).unwrap_or_else(|e| exit(&e.to_string()));
    let port = listener.local_addr().map_or(0, |a| a.port());
    eprintln!(
        "TokioEcho starting on {port} ({} worker threads)",
        workers.map_or("default".into(), |n| n.to_string())
    );
    if let Err(e) = serve(listener, workers) {
        exit(&format!("cannot start: {e}"));
    }
}

/// Prints why and exits 2, as a usage error.
#[allow(dead_code)]
fn exit(why: &str) -> ! {
    eprintln!("tokio_echo: {why}\nusage: tokio_echo [PORT] [WORKER_THREADS]");
    std::process::exit(2)
}
