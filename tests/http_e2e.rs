//! `spindle serve http` end to end: the real binary on loopback, driven by
//! curl, Python's http.client, wrk and raw sockets.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::Instant;

use util::{DEADLINE, Spindle, connect, read_to_end, send, sh};

fn serve(extra: &[&str]) -> (Spindle, u16) {
    let mut args = vec!["serve", "http", "--listen", "tcp:0:interface=127.0.0.1"];
    args.extend_from_slice(extra);
    let s = Spindle::start(&args);
    let port = s.port_of("Site");
    (s, port)
}

/// Reads one response with a Content-Length body; returns (head, body).
fn read_response(s: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("reads a response head"),
            1,
            "EOF inside a head"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("reads the body");
    (head, String::from_utf8(body).unwrap())
}

#[test]
fn curl_reuses_the_connection_and_counts() {
    let (_s, port) = serve(&[]);
    let url = format!("http://127.0.0.1:{port}");
    // Two URLs in one curl run share one connection.
    let out = Command::new("curl")
        .args([
            "-sv",
            "--max-time",
            "10",
            &format!("{url}/a"),
            &format!("{url}/b"),
        ])
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "I am request #1\nI am request #2\n");
    assert!(
        stderr.contains("Re-using existing connection")
            || stderr.contains("Reusing existing connection"),
        "{stderr}"
    );
    assert!(stderr.contains("< Server: spindle/"), "{stderr}");
    assert!(stderr.contains("< Content-Length: 16"), "{stderr}");
    // HEAD, HTTP/1.0, POST.
    let head = sh(&format!("curl -sI --max-time 10 {url}/"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 16\r\n"), "{head}");
    let old = sh(&format!("curl -si --http1.0 --max-time 10 {url}/"));
    assert!(
        old.contains("Connection: close\r\n") && old.ends_with("I am request #4\n"),
        "{old}"
    );
    let post = sh(&format!("curl -si --max-time 10 -d hello {url}/"));
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
    // curl sends Expect: 100-continue for bodies over 1 MiB; ours says 413.
    let big = sh(&format!(
        "head -c 2000000 /dev/zero | curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 --data-binary @- {url}/"
    ));
    assert_eq!(big, "413");
    let long_header = sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 -H \"X-Big: $(head -c 20000 /dev/zero | tr '\\0' a)\" {url}/"
    ));
    assert_eq!(long_header, "431");
}

#[test]
fn python_http_client_keeps_one_connection() {
    let (_s, port) = serve(&[]);
    let script = format!(
        r#"
import http.client
c = http.client.HTTPConnection("127.0.0.1", {port}, timeout=10)
out = []
for path in ("/", "/x", "/y"):
    c.request("GET", path)
    r = c.getresponse()
    out.append("%d %s" % (r.status, r.read().decode().strip()))
sock = c.sock
c.request("HEAD", "/")
r = c.getresponse()
out.append("%d %s %r" % (r.status, r.getheader("Content-Length"), r.read()))
c.request("POST", "/form", body=b"a=1&b=2")
r = c.getresponse()
out.append("%d %s" % (r.status, r.getheader("Allow")))
r.read()
c.request("GET", "/")
r = c.getresponse()
out.append("%d %s" % (r.status, r.read().decode().strip()))
out.append("same socket" if c.sock is sock else "reconnected")
print("\n".join(out))
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 I am request #1\n200 I am request #2\n200 I am request #3\n\
         200 16 b''\n405 GET, HEAD\n200 I am request #5\nsame socket\n"
    );
}

#[test]
fn wrk_smoke_run_has_no_errors() {
    let (_s, port) = serve(&[]);
    let out = Command::new("timeout")
        .args([
            "20",
            "wrk",
            "-t1",
            "-c8",
            "-d1s",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .map(|(n, _)| n.parse().unwrap())
        .expect("wrk reports a request count");
    assert!(requests > 0, "{text}");
    assert!(!text.contains("Socket errors"), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
}

#[test]
fn more_keep_alive_clients_than_workers_all_get_answers() {
    let (_s, port) = serve(&["--workers", "4"]);
    let start = Instant::now();
    let clients: Vec<_> = (0..16)
        .map(|_| {
            thread::spawn(move || {
                let mut answered = 0;
                let mut connections = 0;
                // Each client wants 20 answers, reconnecting when told to.
                while answered < 20 && connections < 40 && start.elapsed() < DEADLINE {
                    connections += 1;
                    let mut s = connect(port);
                    loop {
                        if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").is_err() {
                            break;
                        }
                        let (head, body) = read_response(&mut s);
                        assert!(body.starts_with("I am request #"), "{body}");
                        answered += 1;
                        if answered == 20 || head.contains("Connection: close") {
                            break;
                        }
                    }
                }
                answered
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 20, "a client was starved");
    }
}

#[test]
fn a_slowloris_trickling_headers_is_cut_off() {
    let (_s, port) = serve(&[
        "--header-timeout",
        "300ms",
        "--max-header-bytes",
        "100000000",
    ]);
    let mut s = connect(port);
    let mut reader = s.try_clone().unwrap();
    let got = thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    });
    // A head that never ends, one byte per write: input keeps arriving, so
    // only the header timeout can end it (431 would need 100 MB).
    send(&mut s, b"GET / HTTP/1.1\r\nX-Slow: ");
    let start = Instant::now();
    while start.elapsed() < DEADLINE && !got.is_finished() {
        if s.write_all(b"a").is_err() {
            break;
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let out = String::from_utf8_lossy(&got.join().unwrap()).into_owned();
    assert!(
        out.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{out:?}"
    );
    assert!(out.contains("Connection: close\r\n"), "{out}");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let (_s, port) = serve(&["--keepalive-timeout", "200ms"]);
    let mut s = connect(port);
    send(&mut s, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let (_, body) = read_response(&mut s);
    assert_eq!(body, "I am request #1\n");
    // The server closes the idle connection; EOF comes well before our
    // own read timeout.
    assert_eq!(read_to_end(&mut s), b"");
}

#[test]
fn errors_reach_a_raw_client_and_close() {
    let (_s, port) = serve(&[]);
    for (request, status) in [
        (
            &b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            "400",
        ),
        (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", "505"),
        (b"this is not http\r\n\r\n", "400"),
    ] {
        let mut s = connect(port);
        send(&mut s, request);
        let out = String::from_utf8_lossy(&read_to_end(&mut s)).into_owned();
        assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
    }
}

#[test]
fn pipelined_requests_over_a_socket_come_back_in_order() {
    let (_s, port) = serve(&[]);
    let mut s = connect(port);
    let mut batch = "GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(9);
    batch.push_str("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    send(&mut s, batch.as_bytes());
    let out = String::from_utf8_lossy(&read_to_end(&mut s)).into_owned();
    let bodies: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("I am request"))
        .collect();
    let expected: Vec<String> = (1..=10).map(|n| format!("I am request #{n}")).collect();
    assert_eq!(bodies, expected);
}

#[test]
fn bad_limits_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args([
            "serve",
            "http",
            "--listen",
            "tcp:0",
            "--max-headers",
            "1000",
        ])
        .output()
        .expect("spindle runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-headers"));
}
