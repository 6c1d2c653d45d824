//! The async standard beside `spindle serve http`: the tutorial's web
//! counter on hyper (HTTP/1.1, keep-alive) and the tokio multi-thread
//! runtime. A comparison server for docs/bench/references.sh, not part of
//! Spindle.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/hyper_counter [PORT] [WORKER_THREADS]
//! curl -i http://127.0.0.1:PORT/
//! ```
//!
//! It answers what `spindle serve http` answers (src/protocols/web.rs,
//! src/http/response.rs): every `GET` or `HEAD`, on any path, is
//! `200 OK`, `Content-Type: text/plain`, body `I am request #N\n` (`HEAD`
//! counts and sends no body); any other method gets `405 Method Not
//! Allowed` with `Allow: GET, HEAD` and body `405 Method Not Allowed\n`.
//! Header names are title-cased as Spindle writes them; `Server:` says
//! `hyper` (Spindle's says `spindle/0.1.0`, 8 bytes more) and hyper puts
//! `Date:` last. Keep-alive is HTTP's default, as in Spindle: HTTP/1.1
//! persists unless `Connection: close`, HTTP/1.0 only with
//! `Connection: keep-alive`, echoed back; the last response of a
//! connection says `Connection: close`. One difference hyper does not let
//! a service change: it answers an HTTP/1.0 request with an `HTTP/1.0`
//! status line, where Spindle says `HTTP/1.1`. hyper's one timer,
//! `header_read_timeout`, is set to Spindle's `--header-timeout` (10 s); it
//! also closes an idle persistent connection, after 10 s where Spindle's
//! `--keepalive-timeout` closes it after 5 s.
//!
//! PORT 0 (the default) picks a free port, printed as `HyperCounter
//! starting on PORT` like Spindle's log line. Loopback only.

use std::convert::Infallible;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue, SERVER};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};

/// Spindle's `--header-timeout` default.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long accepting pauses after a failed accept (out of descriptors,
/// say), so a persistent failure is not a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The counter's answer to one request; `count` is shared by every
/// connection, as Spindle's `Counter` is.
fn respond(request: &Request<Incoming>, count: &AtomicU64) -> Response<Full<Bytes>> {
    let (status, body) = match *request.method() {
        // fetch_add hands every request its own number: none twice, none skipped.
        Method::GET | Method::HEAD => {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            (StatusCode::OK, format!("I am request #{n}\n"))
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static("hyper"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    // Spindle says `Connection: close` on the last response of every
    // connection; hyper says it only when it decides to close itself.
    if !keeps_alive(request) {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Whether `request` lets the connection persist: HTTP/1.1 unless it says
/// `Connection: close`, HTTP/1.0 only if it says `Connection: keep-alive`
/// (Spindle's `src/http/request.rs`).
fn keeps_alive(request: &Request<Incoming>) -> bool {
    let says = |token: &str| {
        request.headers().get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    match request.version() {
        Version::HTTP_10 => says("keep-alive") && !says("close"),
        _ => !says("close"),
    }
}

/// Serves the counter on every connection `listener` accepts, on a runtime
/// of `workers` threads (tokio's default when `None`). Runs until the
/// process ends.
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
    let count = Arc::new(AtomicU64::new(0));
    runtime.block_on(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("HyperCounter: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let count = count.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = respond(&request, &count);
                    async move { Ok::<_, Infallible>(response) }
                });
                // A peer that goes away mid-request is its own business.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    // A client that shuts its side down after its last
                    // request still gets the answer, as from Spindle.
                    .half_close(true)
                    .title_case_headers(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
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
        "HyperCounter starting on {port} ({} worker threads)",
        workers.map_or("default".into(), |n| n.to_string())
    );
    if let Err(e) = serve(listener, workers) {
        exit(&format!("cannot start: {e}"));
    }
}

/// Prints why and exits 2, as a usage error.
#[allow(dead_code)]
fn exit(why: &str) -> ! {
    eprintln!("hyper_counter: {why}\nusage: hyper_counter [PORT] [WORKER_THREADS]");
    std::process::exit(2)
}
