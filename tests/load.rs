//! `spindle load` against real servers on loopback: Spindle's own echo,
//! http and chat servers, small test-only HTTP and chat servers written
//! below with std::net (whose every byte the tests control), and servers
//! that reset, stall, refuse or turn clients away. Every run is short and
//! bounded by its duration.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use spindle::load::{self, ErrorKind, LoadConfig, Probe, Workload};
use spindle::protocols::echo;
use spindle::{Endpoint, RunningServer, Server, ServerConfig};

fn echo_server() -> RunningServer {
    let mut server = Server::new(ServerConfig::default());
    server
        .listen(
            &Endpoint::parse("tcp:port=0:interface=127.0.0.1:backlog=1024").unwrap(),
            Arc::new(echo::factory()),
        )
        .unwrap();
    server.spawn().unwrap()
}

fn config(
    workload: Workload,
    target: SocketAddr,
    connections: usize,
    duration_ms: u64,
) -> LoadConfig {
    let mut c = LoadConfig::new(workload, target);
    c.connections = connections;
    c.duration = Duration::from_millis(duration_ms);
    c.timeout = Duration::from_secs(2);
    c
}

/// Runs `config` and checks that it ended on time (the drain after the
/// end waits at most `--timeout` for answers due) and that every request
/// due is accounted for.
fn run(config: &LoadConfig) -> load::Report {
    let t0 = Instant::now();
    let report = load::run(config).expect("the run starts");
    let allowed = config.warmup + config.duration + config.timeout + Duration::from_secs(2);
    assert!(t0.elapsed() < allowed, "the run took {:?}", t0.elapsed());
    assert_accounted(&report);
    report
}

/// `scheduled = completed + failed + unsent`, in the text and the JSON too.
fn assert_accounted(r: &load::Report) {
    let a = &r.accounting;
    assert!(a.balanced(), "{a:?}\n{r}");
    assert_eq!(a.completed, r.requests, "{r}");
    assert_eq!(a.unsent, a.unsent_connection_down + a.unsent_run_ended);
    if r.open_loop.is_none() && r.mode != "idle" {
        assert_eq!(a.unsent, 0, "closed loop sends when it can: {r}");
    }
    let line = format!(
        "{} scheduled = {} completed + {} failed + {} unsent",
        a.scheduled, a.completed, a.failed, a.unsent
    );
    assert!(r.to_string().contains(&line), "{line} not in\n{r}");
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    for (field, n) in [
        ("scheduled", a.scheduled),
        ("completed", a.completed),
        ("failed", a.failed),
        ("unsent", a.unsent),
    ] {
        assert_eq!(v["accounting"][field], n, "{field}");
    }
    assert!(
        r.to_string().lines().all(|l| l.chars().count() <= 80),
        "a line over 80 columns:\n{r}"
    );
}

#[test]
fn echo_closed_loop_bytes_match() {
    let server = echo_server();
    let mut c = config(Workload::Echo, server.tcp_addr(), 8, 500);
    c.size = 100;
    let r = run(&c);
    assert!(r.requests > 0, "{r}");
    assert_eq!(r.errors_total, 0, "{r}");
    assert_eq!(r.connections_established, 8);
    assert_eq!(r.connections_open_at_end, 8);
    // Every completed request was a whole echo; what is left is at most
    // one message in flight per connection.
    assert!(r.received_bytes >= r.requests * 100, "{r}");
    assert!(r.sent_bytes >= r.received_bytes, "{r}");
    assert!(r.sent_bytes - r.received_bytes <= 8 * 100, "{r}");
    assert_eq!(r.fairness.connections, 8);
    assert_eq!(r.fairness.connections_without_service, 0, "{r}");
    assert_eq!(r.latency_us.count, r.requests);
    assert!(r.open_loop.is_none());
    assert_eq!(r.connect_latency_us.count, 8);
}

#[test]
fn echo_on_two_threads_with_warmup() {
    let server = echo_server();
    let mut c = config(Workload::Echo, server.tcp_addr(), 6, 400);
    c.threads = 2;
    c.warmup = Duration::from_millis(200);
    let r = run(&c);
    assert!(r.requests > 0 && r.errors_total == 0, "{r}");
    assert_eq!(r.fairness.connections, 6);
    assert_eq!(r.warmup_sec, 0.2);
}

#[test]
fn echo_open_loop_keeps_to_the_rate() {
    let server = echo_server();
    let mut c = config(Workload::Echo, server.tcp_addr(), 4, 500);
    c.rate = Some(400.0);
    let r = run(&c);
    // 400/s for 0.5 s: at most 200 (+1 per connection for rounding).
    assert!(r.requests > 0 && r.requests <= 204, "{r}");
    let o = r.open_loop.as_ref().expect("open-loop section");
    assert_eq!(o.requested_rate_per_sec, 400.0);
    assert_eq!(o.uncorrected_latency_us.count, r.requests);
    assert_eq!(o.corrected_latency_us.count, r.requests);
    // Measured from the intended time, a request can only look slower.
    assert!(
        o.corrected_latency_us.max >= o.uncorrected_latency_us.max * 0.999,
        "{r}"
    );
    assert_eq!(r.mode, "open_loop");
}

#[test]
fn idle_holds_connections_and_probes_a_few() {
    let server = echo_server();
    let mut c = config(Workload::Idle, server.tcp_addr(), 40, 500);
    c.probe = Some(Probe::Echo);
    c.probes = 2;
    c.probe_interval = Duration::from_millis(100);
    let r = run(&c);
    let idle = r.idle.as_ref().expect("idle section");
    assert_eq!(idle.established, 40, "{r}");
    assert_eq!(idle.held_at_end, 40, "{r}");
    assert_eq!(
        idle.refused + idle.reset + idle.timed_out + idle.closed,
        0,
        "{r}"
    );
    assert_eq!(r.fairness.connections, 2, "only probes send");
    assert_eq!(r.mode, "idle");
    // Two probes every 100 ms for 0.5 s: at most 2 * 6.
    assert!(r.requests > 0 && r.requests <= 12, "{r}");
    assert!(r.succeeded());
}

#[test]
fn idle_against_nothing_counts_refusals() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: connections are refused
    let r = run(&config(Workload::Idle, addr, 5, 200));
    let idle = r.idle.as_ref().unwrap();
    assert_eq!(idle.refused, 5, "{r}");
    assert_eq!(idle.established, 0);
    assert!(!r.succeeded());
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::Refused);
    assert!(e.sample.contains("connect"), "{}", e.sample);
}

/// A server that accepts and resets every connection (SO_LINGER 0), until
/// told to stop.
struct Resetter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Resetter {
    fn start() -> Resetter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                // Wait for the request, so the reset hits a request in flight.
                let mut b = [0u8; 1];
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = conn.read(&mut b);
                let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
            }
        });
        Resetter {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Resetter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_resetting_server_is_counted_as_resets() {
    let server = Resetter::start();
    let r = run(&config(Workload::Echo, server.addr, 2, 400));
    assert_eq!(r.requests, 0, "{r}");
    assert!(r.errors_total > 0, "{r}");
    // An RST seen on read is a reset; one that lands as the peer's close
    // before our read is reported as closed. Nothing else.
    let resets = r
        .errors
        .iter()
        .find(|e| e.kind == ErrorKind::Reset)
        .map_or(0, |e| e.count);
    assert!(resets > 0, "{r}");
    assert!(
        r.errors
            .iter()
            .all(|e| matches!(e.kind, ErrorKind::Reset | ErrorKind::Closed)),
        "{r}"
    );
    assert!(!r.succeeded());
}

#[test]
fn a_stalled_server_is_counted_as_timeouts() {
    // Connections complete in the kernel's backlog; nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(Workload::Echo, listener.local_addr().unwrap(), 2, 600);
    c.timeout = Duration::from_millis(200);
    let r = run(&c);
    assert_eq!(r.requests, 0);
    let timeouts = r
        .errors
        .iter()
        .find(|e| e.kind == ErrorKind::Timeout)
        .expect("timeouts");
    assert!(timeouts.count >= 2, "{r}");
    assert!(
        timeouts.sample.contains("no response within"),
        "{}",
        timeouts.sample
    );
    drop(listener);
}

/// A test-only HTTP/1.1 server: `I am request #N` with Content-Length,
/// keep-alive unless the request says `Connection: close`; optionally a
/// broken response instead. Counts the responses it sent.
struct TinyHttp {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TinyHttp {
    fn start(broken: bool) -> TinyHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, flag) = (served.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let count = count.clone();
                thread::spawn(move || serve_http(conn, &count, broken));
            }
        });
        TinyHttp {
            addr,
            served,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TinyHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection until the client closes (or 10 s of silence).
fn serve_http(conn: TcpStream, count: &AtomicU64, broken: bool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = conn.set_nodelay(true);
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut close = false;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if first {
                assert!(line.starts_with("GET / HTTP/1.1"), "{line}");
                first = false;
            }
            close |= line.eq_ignore_ascii_case("connection: close\r\n");
        }
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        let response = if broken {
            "HTTP/1.1 200 OK\r\nContent-Length: banana\r\n\r\n".to_string()
        } else {
            let body = format!("I am request #{n}\n");
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if writer.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

#[test]
fn http_keepalive_responses_all_count() {
    let server = TinyHttp::start(false);
    let r = run(&config(Workload::Http, server.addr, 4, 500));
    assert!(r.requests > 0 && r.errors_total == 0, "{r}");
    assert_eq!(r.connections_established, 4, "keep-alive: no reconnections");
    let served = server.served.load(Ordering::SeqCst);
    // Everything we counted was served; the server may have answered at
    // most one more per connection as the run ended.
    assert!(
        served >= r.requests && served <= r.requests + 4,
        "served {served}\n{r}"
    );
    assert_eq!(r.fairness.connections_without_service, 0);
}

#[test]
fn http_without_keepalive_reconnects_for_each_request() {
    let server = TinyHttp::start(false);
    let mut c = config(Workload::Http, server.addr, 2, 400);
    c.keepalive = false;
    let r = run(&c);
    assert!(r.requests > 0 && r.errors_total == 0, "{r}");
    // One connection per request (plus the ones still open at the end).
    assert!(r.connections_established >= r.requests, "{r}");
    assert!(r.connections_established <= r.requests + 2 + 2, "{r}");
}

#[test]
fn a_malformed_http_response_is_a_protocol_error() {
    let server = TinyHttp::start(true);
    let r = run(&config(Workload::Http, server.addr, 2, 300));
    assert_eq!(r.requests, 0);
    assert_eq!(r.errors.len(), 1, "{r}");
    assert_eq!(r.errors[0].kind, ErrorKind::Protocol);
    assert!(
        r.errors[0].sample.contains("Content-Length"),
        "{}",
        r.errors[0].sample
    );
}

/// A test-only chat room: a greeting, join notices, and every line
/// broadcast as `<ip:port> line` to everyone. Stops accepting after
/// `clients` connections.
fn tiny_chat(clients: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let room: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
    thread::spawn(move || {
        for conn in listener.incoming().take(clients) {
            let Ok(mut conn) = conn else { continue };
            let peer = conn.peer_addr().unwrap();
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut members = room.lock().unwrap();
            let _ = write!(
                conn,
                "Welcome! {} here, /help for help\r\n",
                members.len() + 1
            );
            for m in members.iter_mut() {
                let _ = write!(m, "* {peer} joined\r\n");
            }
            members.push(conn.try_clone().unwrap());
            drop(members);
            let room = room.clone();
            thread::spawn(move || {
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { return };
                    let msg = format!("<{peer}> {}\r\n", line.trim_end());
                    for m in room.lock().unwrap().iter_mut() {
                        let _ = m.write_all(msg.as_bytes());
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn chat_lines_reach_every_client() {
    let addr = tiny_chat(6);
    let mut c = config(Workload::Chat, addr, 6, 500);
    c.senders = 2;
    c.warmup = Duration::from_millis(100);
    let r = run(&c);
    assert!(r.requests > 0 && r.errors_total == 0, "{r}");
    let chat = r.chat.as_ref().expect("chat section");
    // Each sent line comes back to its sender and goes to 5 others; lines
    // in flight at either edge of the measured window blur this a little.
    assert!(chat.lines_delivered >= r.requests, "{r}");
    assert!(chat.lines_delivered <= (r.requests + 2) * 6, "{r}");
    assert_eq!(chat.delivery_latency_us.count, chat.lines_delivered);
    assert_eq!(r.fairness.connections, 2, "only senders count for fairness");
}

/// `spindle load` through the real binary.
fn spindle_load(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_spindle"))
        .arg("load")
        .args(args)
        .output()
        .expect("spindle runs")
}

#[test]
fn json_report_has_the_documented_fields() {
    let server = util::Spindle::start(&["serve", "echo", "--listen", "tcp:0:interface=127.0.0.1"]);
    let target = format!("127.0.0.1:{}", server.port_of("EchoFactory"));
    let out = spindle_load(&[
        "echo", "--target", &target, "-c", "4", "-d", "300ms", "--warmup", "0s", "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    for field in [
        "workload",
        "target",
        "connections",
        "threads",
        "mode",
        "duration_sec",
        "warmup_sec",
        "requests",
        "requests_per_sec",
        "latency_us",
        "open_loop",
        "connect_latency_us",
        "connections_established",
        "connections_open_at_end",
        "connections_connecting_at_end",
        "sent_bytes",
        "received_bytes",
        "sent_bytes_per_sec",
        "received_bytes_per_sec",
        "fairness",
        "errors_total",
        "errors",
        "chat",
        "idle",
        "warnings",
    ] {
        assert!(v.get(field).is_some(), "no {field} in {v}");
    }
    for p in [
        "count", "min", "mean", "stdev", "p50", "p90", "p99", "p99_9", "p99_99", "max",
    ] {
        assert!(v["latency_us"][p].is_number(), "latency_us.{p} in {v}");
    }
    for f in [
        "connections",
        "requests_per_connection_min",
        "requests_per_connection_median",
        "requests_per_connection_max",
        "connections_without_service",
    ] {
        assert!(v["fairness"][f].is_u64(), "fairness.{f} in {v}");
    }
    assert_eq!(v["workload"], "echo");
    assert!(v["requests"].as_u64().unwrap() > 0);
    // Open loop adds both latency sets.
    let out = spindle_load(&[
        "echo", "-t", &target, "-c", "2", "-d", "300ms", "--warmup", "0s", "--rate", "100",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(
        v["open_loop"]["corrected_latency_us"]["p99"].is_number(),
        "{v}"
    );
    assert!(
        v["open_loop"]["uncorrected_latency_us"]["p99"].is_number(),
        "{v}"
    );
    assert!(v["open_loop"]["requested_rate_per_sec"].is_number(), "{v}");
}

#[test]
fn exit_codes_usage_and_nothing_succeeded() {
    let out = spindle_load(&["echo", "--target", "nowhere", "-d", "100ms"]);
    assert_eq!(out.status.code(), Some(2), "a bad target is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"));
    let out = spindle_load(&["echo", "--target", "127.0.0.1:1", "-c", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let target = addr.to_string();
    let out = spindle_load(&[
        "echo", "--target", &target, "-c", "2", "-d", "200ms", "--warmup", "0s",
    ]);
    assert_eq!(out.status.code(), Some(1), "nothing succeeded");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refused"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no request succeeded"));
}

/// The counter in `I am request #N`, asked of the server once more.
fn next_request_number(addr: SocketAddr) -> u64 {
    let mut s = util::connect_addr(addr);
    util::send(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8(util::read_to_end(&mut s)).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let n = text.rsplit('#').next().unwrap().trim();
    n.parse()
        .unwrap_or_else(|_| panic!("no counter in {text:?}"))
}

#[test]
fn http_against_spindle_serve_http() {
    let server = util::Spindle::start(&["serve", "http", "--listen", "tcp:0:interface=127.0.0.1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port_of("Site")));
    let r = run(&config(Workload::Http, addr, 4, 400));
    assert!(r.requests > 0 && r.errors_total == 0, "{r}");
    assert_eq!(r.fairness.connections_without_service, 0, "{r}");
    // Every response was a 200 from the counter, which counted each once.
    let n = next_request_number(addr);
    assert!(
        n > r.requests && n <= r.requests + 4 + 1,
        "counter {n}\n{r}"
    );
    let mut c = config(Workload::Http, addr, 2, 300);
    c.keepalive = false;
    let r2 = run(&c);
    assert!(r2.requests > 0 && r2.errors_total == 0, "{r2}");
    let m = next_request_number(addr);
    assert!(
        m > n + r2.requests && m <= n + r2.requests + 2 + 1,
        "counter {m}\n{r2}"
    );
    // Idle connections with HTTP probes.
    let mut c = config(Workload::Idle, addr, 10, 300);
    c.probe = Some(Probe::Http);
    c.probes = 2;
    c.probe_interval = Duration::from_millis(100);
    let r3 = run(&c);
    assert!(r3.requests > 0 && r3.errors_total == 0, "{r3}");
    assert_eq!(r3.idle.as_ref().unwrap().held_at_end, 10, "{r3}");
}

#[test]
fn a_busy_message_then_close_is_seen_as_a_close() {
    // The server says why and closes at once: the bytes and the FIN arrive
    // together, and the close must still be noticed.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        for conn in listener.incoming().take(5) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n");
        }
    });
    let r = run(&config(Workload::Idle, addr, 5, 300));
    let idle = r.idle.as_ref().unwrap();
    assert_eq!(idle.established, 5, "{r}");
    assert_eq!(idle.closed, 5, "{r}");
    assert_eq!(idle.held_at_end, 0, "{r}");
    server.join().unwrap();
}

#[test]
fn a_pool_smaller_than_the_clients_shows_starved_connections() {
    // 2 workers, 8 queue places, 4 long-lived echo clients: two are served,
    // two wait in the queue for ever. The report must show it.
    let mut server = Server::new(ServerConfig {
        workers: 2,
        queue: 8,
        ..ServerConfig::default()
    });
    server
        .listen(
            &Endpoint::parse("tcp:port=0:interface=127.0.0.1").unwrap(),
            Arc::new(echo::factory()),
        )
        .unwrap();
    let server = server.spawn().unwrap();
    let mut c = config(Workload::Echo, server.tcp_addr(), 4, 400);
    c.timeout = Duration::from_secs(1); // longer than the run: no timeouts in it
    let r = run(&c);
    assert_eq!(r.fairness.connections, 4);
    assert_eq!(r.fairness.connections_without_service, 2, "{r}");
    assert_eq!(r.fairness.requests_per_connection_min, 0);
    assert!(r.fairness.requests_per_connection_max > 0);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("2 of 4 connections got no service")),
        "{r}"
    );
    assert!(r.to_string().contains("2 of 4 connections got none"), "{r}");
    // The two starved requests are not left without an outcome: the drain
    // after the end waits --timeout for them, and they time out.
    assert_eq!(r.accounting.failed, 2, "{r}");
    assert_eq!(r.errors_total, 2, "{r}");
    assert_eq!(r.errors[0].kind, ErrorKind::Timeout, "{r}");
}

#[test]
fn chat_against_spindle_serve_chat() {
    // The real room greets, announces joins and prefixes every line with
    // its sender: only marked lines count.
    let server = util::Spindle::start(&["serve", "chat", "--listen", "tcp:0:interface=127.0.0.1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port_of("ChatFactory")));
    let mut c = config(Workload::Chat, addr, 10, 500);
    c.senders = 2;
    c.warmup = Duration::from_millis(200);
    let r = run(&c);
    assert!(r.requests > 0 && r.errors_total == 0, "{r}");
    let chat = r.chat.as_ref().unwrap();
    assert!(chat.lines_delivered >= r.requests, "{r}");
    assert!(chat.lines_delivered <= (r.requests + 2) * 10, "{r}");
    assert_eq!(r.connections_open_at_end, 10);
}

/// An echo server (std::net, a thread per connection) that, once it has
/// answered `stall_after` messages, stops answering anyone for `stall`:
/// reads pile up in the kernel, as under SIGSTOP. Then it answers again.
struct StallingEcho {
    addr: SocketAddr,
    answered: Arc<AtomicU64>,
}

impl StallingEcho {
    fn start(stall_after: u64, stall: Duration) -> StallingEcho {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicU64::new(0));
        let stalled_until: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let count = answered.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let count = count.clone();
                let stalled_until = stalled_until.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        // The freeze is the scenario under test (a server
                        // that stops answering), not a synchronisation.
                        let until = {
                            let mut s = stalled_until.lock().unwrap();
                            if s.is_none() && count.load(Ordering::SeqCst) >= stall_after {
                                *s = Some(Instant::now() + stall);
                            }
                            *s
                        };
                        if let Some(t) = until {
                            let now = Instant::now();
                            if now < t {
                                thread::sleep(t - now);
                            }
                        }
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        StallingEcho { addr, answered }
    }
}

#[test]
fn a_stall_longer_than_the_timeout_is_charged_not_skipped() {
    // 400 requests/s on 4 connections for 1.5 s; after 100 answers (about
    // 0.25 s in) the server freezes for 0.6 s, three times --timeout. Each
    // connection's request times out and the connection is replaced; the
    // slots that pass meanwhile are sent once the server answers again,
    // charged from their intended time. None is skipped.
    let server = StallingEcho::start(100, Duration::from_millis(600));
    let mut c = config(Workload::Echo, server.addr, 4, 1500);
    c.rate = Some(400.0);
    c.timeout = Duration::from_millis(200);
    c.size = 16;
    c.interval = Duration::from_millis(250);
    let r = run(&c);
    let a = &r.accounting;
    // 400/s for 1.5 s: 600 slots (the window's edges may round one way).
    assert!((596..=604).contains(&a.scheduled), "{r}");
    assert!(
        a.failed >= 4,
        "every connection timed out at least once: {r}"
    );
    let timeouts = r
        .errors
        .iter()
        .find(|e| e.kind == ErrorKind::Timeout)
        .expect("timeouts");
    assert!(timeouts.count >= a.failed.min(4), "{r}");
    // Nearly all were sent late and answered: only the timed-out ones and
    // (at most) a few at the very end are missing.
    assert!(a.completed + a.failed + 20 >= a.scheduled, "{r}");
    let o = r.open_loop.as_ref().unwrap();
    // The slots of the freeze waited for it: a third of the run's requests
    // were charged up to 0.6 s, so the corrected p90 shows it...
    assert!(o.corrected_latency_us.p90 >= 100_000.0, "{r}");
    assert!(o.corrected_latency_us.max >= 300_000.0, "{r}");
    // ...which the latency from the actual send time hides.
    assert!(
        o.uncorrected_latency_us.p90 * 10.0 < o.corrected_latency_us.p90,
        "{r}"
    );
    // The timeline shows where: quiet intervals during the freeze, then
    // one whose worst latency is the freeze.
    assert_eq!(r.timeline.len(), 6, "{r}");
    assert!(
        r.timeline.iter().any(|i| i.requests == 0),
        "{:?}",
        r.timeline
    );
    assert!(
        r.timeline.iter().any(|i| i.latency_us.max >= 300_000.0),
        "{:?}",
        r.timeline
    );
    let total: u64 = r.timeline.iter().map(|i| i.requests).sum();
    assert_eq!(total, r.requests);
    let failed: u64 = r.timeline.iter().map(|i| i.failed).sum();
    assert_eq!(failed, a.failed);
    assert!(server.answered.load(Ordering::SeqCst) >= r.requests);
}

#[test]
fn a_server_that_refuses_for_a_while_leaves_no_slot_unaccounted() {
    // Nothing listens for the first 0.4 s of a 1 s open-loop run; then an
    // echo server takes the port. Refused connects are errors but not
    // failed requests: the slots wait for the connection and are sent,
    // late, when it comes up.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut c = config(Workload::Echo, addr, 2, 1000);
    c.rate = Some(200.0);
    c.timeout = Duration::from_millis(500);
    let runner = {
        let c = c.clone();
        thread::spawn(move || load::run(&c).expect("the run starts"))
    };
    // The refusing period is the scenario, not a synchronisation.
    thread::sleep(Duration::from_millis(400));
    let listener = TcpListener::bind(addr).expect("the port is free again");
    let server = thread::spawn(move || {
        for conn in listener.incoming().take(16) {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let r = runner.join().unwrap();
    assert_accounted(&r);
    let a = &r.accounting;
    assert!((198..=202).contains(&a.scheduled), "{r}");
    let refused = r
        .errors
        .iter()
        .find(|e| e.kind == ErrorKind::Refused)
        .expect("refusals");
    assert!(refused.count >= 2, "{r}");
    assert!(
        refused.by_errno.iter().any(|e| e.errno == "ECONNREFUSED"),
        "{r}"
    );
    assert!(refused.sample.contains("ECONNREFUSED"), "{r}");
    assert_eq!(a.failed, 0, "no request was sent to a refusing port: {r}");
    assert!(
        a.completed + 4 >= a.scheduled,
        "the missed slots were sent late: {r}"
    );
    let o = r.open_loop.as_ref().unwrap();
    assert!(o.corrected_latency_us.max >= 300_000.0, "{r}");
    drop(server);
}

/// An echo server that never stalls, counting its answers.
fn counting_echo() -> StallingEcho {
    StallingEcho::start(u64::MAX, Duration::ZERO)
}

#[test]
fn ctrl_c_prints_the_report_marked_interrupted_and_exits_130() {
    let server = counting_echo();
    let target = server.addr.to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args([
            "load", "echo", "-t", &target, "-c", "2", "--rate", "500", "-d", "30s", "--warmup",
            "0s", "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spindle runs");
    // Interrupt once it is measuring, well before its 30 s are up.
    assert!(util::wait_until(util::DEADLINE, || server
        .answered
        .load(Ordering::SeqCst)
        >= 50));
    let t0 = Instant::now();
    // SAFETY: kill on the pid of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("spindle exits");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the report");
    assert_eq!(v["interrupted"], true, "{v}");
    let measured = v["duration_sec"].as_f64().unwrap();
    assert!(measured > 0.0 && measured < 10.0, "{v}");
    let a = &v["accounting"];
    let n = |k: &str| a[k].as_u64().unwrap();
    assert_eq!(
        n("scheduled"),
        n("completed") + n("failed") + n("unsent"),
        "{v}"
    );
    assert!(n("completed") >= 40, "{v}");
    // The schedule was cut at the interruption: 500/s over what was measured.
    let due = 500.0 * measured;
    assert!((n("scheduled") as f64 - due).abs() <= 3.0, "{v}");
    // The text report says so on its first line.
    let child = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args([
            "load", "echo", "-t", &target, "-c", "1", "-d", "30s", "--warmup", "0s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spindle runs");
    let before = server.answered.load(Ordering::SeqCst);
    assert!(util::wait_until(util::DEADLINE, || server
        .answered
        .load(Ordering::SeqCst)
        > before + 10));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("spindle exits");
    assert_eq!(out.status.code(), Some(130));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("INTERRUPTED (Ctrl-C)"), "{text}");
    assert!(text.contains(" scheduled = "), "{text}");
}

#[test]
fn the_hlog_decodes_with_python_hdrhistogram_and_agrees() {
    let server = counting_echo();
    let target = server.addr.to_string();
    let dir = std::env::temp_dir().join(format!("spindle-hlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hlog = dir.join("run.hlog");
    let hgrm = dir.join("run.hgrm");
    let out = spindle_load(&[
        "echo",
        "-t",
        &target,
        "-c",
        "4",
        "--rate",
        "2000",
        "-d",
        "1s",
        "--warmup",
        "0s",
        "--interval",
        "200ms",
        "--json",
        "--hlog",
        hlog.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["timeline"].as_array().unwrap().len(), 5, "{v}");
    // Python decodes every interval and adds them up; for each of the
    // report's p50, p99 and max it says how many samples lie at or below
    // the value 1.1% under and over it (the log keeps two significant
    // digits, the report three), so that the check does not hang on which
    // neighbouring sample each library's rank rounding picks.
    let latency = &v["open_loop"]["corrected_latency_us"];
    let ns = |k: &str| format!("{}", latency[k].as_f64().unwrap() * 1000.0);
    let script = r#"
import sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600 * 10**9, 2))
total = HdrHistogram(1, 3600 * 10**9, 2)
intervals = 0
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    intervals += 1
    total.add(h)
values = [(i.value_iterated_to, i.count_at_value_iterated_to)
          for i in total.get_recorded_iterator()]
def at_or_below(v):
    return sum(c for (x, c) in values if x <= v)
out = [intervals, total.get_total_count()]
for v in map(float, sys.argv[2:]):
    out += [at_or_below(v * 0.989), at_or_below(v * 1.011)]
print(*out)
"#;
    let py = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&hlog)
        .args([ns("p50"), ns("p99"), ns("max")])
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let text = String::from_utf8_lossy(&py.stdout);
    let f: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(f[0], 5.0, "{text}");
    let count = latency["count"].as_f64().unwrap();
    assert_eq!(f[1], count, "{text}");
    for (i, (key, q)) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)]
        .into_iter()
        .enumerate()
    {
        let (below, upto) = (f[2 + 2 * i], f[3 + 2 * i]);
        let rank = (q * count).ceil();
        assert!(
            below < rank && upto >= rank,
            "{key} ({q}): {below} samples under it, {upto} to it, rank {rank}: {text}"
        );
    }
    let hgrm = std::fs::read_to_string(&hgrm).unwrap();
    assert!(hgrm.contains("Value     Percentile TotalCount 1/(1-Percentile)"));
    let count = latency["count"].as_u64().unwrap();
    assert!(
        hgrm.contains(&format!("Total count    = {count:>12}]")),
        "{hgrm}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn two_loaders_merged_add_up_to_one_with_both_connection_counts() {
    let server = counting_echo();
    let target = server.addr.to_string();
    let dir = std::env::temp_dir().join(format!("spindle-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let start_at = format!("{:.3}", unix_now() + 1.0);
    let loader = |c: &str, rate: &str, extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spindle"));
        cmd.args([
            "load", "echo", "-t", &target, "-c", c, "--rate", rate, "-d", "1s", "--warmup", "0s",
            "--json",
        ])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        cmd.spawn().expect("spindle runs")
    };
    // Two loaders of 2 connections at 200/s each, started together...
    let a = loader("2", "200", &["--start-at", &start_at]);
    let b = loader("2", "200", &["--start-at", &start_at]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_eq!(
        b.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    std::fs::write(path("a.json"), &a.stdout).unwrap();
    std::fs::write(path("b.json"), &b.stdout).unwrap();
    // ...and one of 4 connections at 400/s.
    let one = loader("4", "400", &[]).wait_with_output().unwrap();
    assert_eq!(one.status.code(), Some(0));
    std::fs::write(path("one.json"), &one.stdout).unwrap();
    let json = |bytes: &[u8]| -> serde_json::Value { serde_json::from_slice(bytes).unwrap() };
    let (va, vb, single) = (json(&a.stdout), json(&b.stdout), json(&one.stdout));
    let starts = [&va, &vb].map(|v| v["measured_from_unix_sec"].as_f64().unwrap());
    assert!(
        (starts[0] - starts[1]).abs() < 0.05,
        "--start-at began them together: {starts:?}"
    );
    let merged = spindle_load(&["merge", &path("a.json"), &path("b.json"), "--json"]);
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let m = json(&merged.stdout);
    let n = |v: &serde_json::Value, k: &str| v["accounting"][k].as_u64().unwrap();
    assert_eq!(m["connections"], 4);
    assert_eq!(
        n(&m, "scheduled"),
        n(&va, "scheduled") + n(&vb, "scheduled"),
        "{m}"
    );
    assert!(
        n(&m, "scheduled").abs_diff(n(&single, "scheduled")) <= 2,
        "{m}\n{single}"
    );
    assert!(
        n(&m, "completed").abs_diff(n(&single, "completed")) <= 4,
        "{m}\n{single}"
    );
    assert_eq!(
        n(&m, "scheduled"),
        n(&m, "completed") + n(&m, "failed") + n(&m, "unsent")
    );
    // The histograms were added: every sample of both is in the merged one.
    let latency = &m["open_loop"]["corrected_latency_us"];
    let count = |v: &serde_json::Value| {
        v["open_loop"]["corrected_latency_us"]["count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count(&m), count(&va) + count(&vb));
    assert_eq!(count(&m), m["requests"].as_u64().unwrap());
    let p50 = |v: &serde_json::Value| {
        v["open_loop"]["corrected_latency_us"]["p50"]
            .as_f64()
            .unwrap()
    };
    let (lo, hi) = (p50(&va).min(p50(&vb)), p50(&va).max(p50(&vb)));
    let mp50 = latency["p50"].as_f64().unwrap();
    assert!(
        mp50 >= lo * 0.999 && mp50 <= hi * 1.001,
        "{lo} <= {mp50} <= {hi}"
    );
    // Rates are summed: the same as the single loader's.
    let rate = |v: &serde_json::Value| v["requests_per_sec"].as_f64().unwrap();
    assert!(
        (rate(&m) - rate(&single)).abs() <= rate(&single) * 0.03,
        "{m}\n{single}"
    );
    assert_eq!(m["open_loop"]["requested_rate_per_sec"], 400.0);
    let timeline_requests: u64 = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(timeline_requests, m["requests"].as_u64().unwrap());
    let warnings = m["warnings"].to_string();
    assert!(!warnings.contains("overlap"), "{warnings}");
    // The text form prints too.
    let text = spindle_load(&["merge", &path("a.json"), &path("b.json")]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("echo load on 127.0.0.1:"), "{text}");
    assert!(text.contains("4 connections"), "{text}");
    // Runs one after the other are not one load: the merge says so.
    let apart = spindle_load(&["merge", &path("a.json"), &path("one.json"), "--json"]);
    let warnings = json(&apart.stdout)["warnings"].to_string();
    assert!(warnings.contains("did not overlap"), "{warnings}");
    // A closed-loop run does not add up with open-loop ones.
    let closed = spindle_load(&[
        "echo", "-t", &target, "-c", "1", "-d", "200ms", "--warmup", "0s", "--json",
    ]);
    std::fs::write(path("closed.json"), &closed.stdout).unwrap();
    let bad = spindle_load(&["merge", &path("a.json"), &path("closed.json")]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("one workload and mode"));
    let bad = spindle_load(&["merge", &path("missing.json")]);
    assert_eq!(bad.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_plans_and_start_times_are_usage_errors() {
    for (args, why) in [
        (&["--start-at", "1000"][..], "in the past"),
        (&["--steps", "3"][..], "--steps needs --rate A..B"),
        (&["--rate", "100..x"][..], "not a number"),
        (
            &["--rate", "100..200", "--steps", "0"][..],
            "--steps must be",
        ),
        (&["--find-max-rate"][..], "--slo"),
        (&["--find-max-rate", "--slo", "p99"][..], "pXX=DURATION"),
        (
            &["--rate", "10..20", "--find-max-rate", "--slo", "p99=1ms"][..],
            "one starting --rate",
        ),
    ] {
        let mut all = vec!["echo", "-t", "127.0.0.1:1"];
        all.extend_from_slice(args);
        let out = spindle_load(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

#[test]
fn a_rate_plan_steps_on_the_same_connections_each_accounted_for() {
    let server = counting_echo();
    let mut c = config(Workload::Echo, server.addr, 4, 900);
    c.rate = Some(200.0);
    c.steps = vec![200.0, 400.0, 800.0];
    c.step_duration = Duration::from_millis(300);
    c.warmup = Duration::from_millis(100);
    let r = run(&c);
    assert_eq!(r.steps.len(), 3, "{r}");
    // No reconnect between steps: the connections of the warmup carry on.
    assert_eq!(r.connections_established, 4, "{r}");
    for (step, rate) in r.steps.iter().zip([200.0, 400.0, 800.0]) {
        let a = &step.accounting;
        assert_eq!(step.requested_rate_per_sec, rate);
        let due = rate * 0.3;
        assert!(
            (a.scheduled as f64 - due).abs() <= 5.0,
            "{rate}/s: {} scheduled\n{r}",
            a.scheduled
        );
        assert_eq!(a.scheduled, a.completed + a.failed + a.unsent, "{r}");
        assert_eq!(step.corrected_latency_us.count, a.completed);
    }
    let sum = |f: &dyn Fn(&load::report::Step) -> u64| r.steps.iter().map(f).sum::<u64>();
    assert_eq!(sum(&|s| s.accounting.scheduled), r.accounting.scheduled);
    assert_eq!(sum(&|s| s.accounting.completed), r.requests);
    assert_eq!(sum(&|s| s.accounting.failed), r.accounting.failed);
    assert!(r.to_string().contains("steps (corrected latency)"), "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 3);
}

/// An echo server that serves one message at a time for everyone, each
/// taking `service`: its capacity is 1 / service requests/s.
fn slow_echo(service: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let one_at_a_time = Arc::new(Mutex::new(()));
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let lock = one_at_a_time.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    let _held = lock.lock().unwrap();
                    // The service time is the server under test, not a
                    // synchronisation.
                    thread::sleep(service);
                    if conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn find_max_rate_brackets_a_server_of_known_capacity() {
    // 5 ms per request, one at a time: at most 200 requests/s.
    let addr = slow_echo(Duration::from_millis(5));
    let mut c = config(Workload::Echo, addr, 4, 400);
    c.rate = Some(50.0);
    c.warmup = Duration::from_millis(100);
    c.timeout = Duration::from_secs(2);
    let slo = load::search::Slo {
        percentile: 99.0,
        target: Duration::from_millis(60),
    };
    let stop = AtomicBool::new(false);
    let s = load::search::find_max_rate(&c, slo, Duration::from_millis(400), 7, &stop).unwrap();
    let text = s.text();
    assert!(!s.probes.is_empty() && s.probes.len() <= 7, "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    // Above the capacity the queue grows through the probe: never met.
    for p in &s.probes {
        assert_eq!(
            p.accounting.scheduled,
            p.accounting.completed + p.accounting.failed + p.accounting.unsent,
            "{text}"
        );
        if p.rate_per_sec >= 300.0 {
            assert!(!p.met, "{text}");
        }
    }
    assert!(
        s.probes.iter().any(|p| !p.met),
        "the search went past the capacity: {text}"
    );
    if let Some(best) = s.max_rate_per_sec {
        assert!(best < 300.0, "{text}");
        // Doubling found a miss above the best, then bisection probed
        // between them.
        let missed_above = s
            .probes
            .iter()
            .filter(|p| !p.met && p.rate_per_sec > best)
            .map(|p| p.rate_per_sec)
            .fold(f64::INFINITY, f64::min);
        assert!(missed_above.is_finite(), "{text}");
        assert!(
            s.probes.len() == 7 || (missed_above - best) / missed_above <= load::search::RESOLUTION,
            "stopped before the bracket closed: {text}"
        );
        assert!(text.contains("highest rate that met p99"), "{text}");
    }
}
