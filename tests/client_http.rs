//! `fetch_page` and `spindle get` against real loopback servers: a
//! scripted one (to misbehave on purpose) and Python's http.server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use spindle::client::http_response::ResponseError;
use spindle::client::{PageError, PageOptions, fetch_page};

/// What the scripted server does with a request for a path.
enum Action {
    Respond(Vec<u8>),
    /// Says nothing and keeps the connection open until the client goes.
    Silent,
}

/// A loopback server answering each request by its path; stops on drop.
struct Scripted {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Scripted {
    fn start(script: fn(&str, u16) -> Action) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                thread::spawn(move || serve_one(conn, script, port));
            }
        });
        Scripted {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(conn: TcpStream, script: fn(&str, u16) -> Action, port: u16) {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    let mut conn = conn;
    match script(&path, port) {
        Action::Respond(bytes) => {
            let _ = conn.write_all(&bytes);
        }
        Action::Silent => {
            // Wait (bounded by the read timeout) for the client to give up.
            let _ = conn.read(&mut [0u8; 16]);
        }
    }
}

fn script(path: &str, port: u16) -> Action {
    let r = |s: String| Action::Respond(s.into_bytes());
    match path {
        "/hello" => r("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".into()),
        "/chunked" => r(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                .into(),
        ),
        "/eof" => r("HTTP/1.0 200 OK\r\n\r\nuntil the end".into()),
        "/a/relative" => {
            r("HTTP/1.1 302 Found\r\nLocation: next\r\nContent-Length: 0\r\n\r\n".into())
        }
        "/a/next" => r(format!(
            "HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:{port}/hello\r\nContent-Length: 0\r\n\r\n"
        )),
        "/loop" => r("HTTP/1.1 307 Again\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".into()),
        "/nolocation" => r("HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".into()),
        "/cut" => r("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".into()),
        "/garbage" => r("SSH-2.0-OpenSSH_9.2\r\n\r\n".into()),
        "/huge" => r("HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n".into()),
        "/silent" => Action::Silent,
        _ => r("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope".into()),
    }
}

fn quick() -> PageOptions {
    PageOptions {
        request_timeout: Duration::from_secs(10),
        ..PageOptions::default()
    }
}

#[test]
fn bodies_by_length_chunks_and_eof() {
    let s = Scripted::start(script);
    assert_eq!(fetch_page(&s.url("/hello"), &quick()).unwrap(), b"hello");
    assert_eq!(fetch_page(&s.url("/chunked"), &quick()).unwrap(), b"abcde");
    assert_eq!(
        fetch_page(&s.url("/eof"), &quick()).unwrap(),
        b"until the end"
    );
}

#[test]
fn redirects_are_followed_up_to_the_bound() {
    let s = Scripted::start(script);
    assert_eq!(
        fetch_page(&s.url("/a/relative"), &quick()).unwrap(),
        b"hello"
    );
    let e = fetch_page(&s.url("/loop"), &quick()).unwrap_err();
    assert_eq!(e, PageError::TooManyRedirects(5));
    let none = PageOptions {
        max_redirects: 1,
        ..quick()
    };
    let e = fetch_page(&s.url("/a/relative"), &none).unwrap_err();
    assert_eq!(e.to_string(), "more than 1 redirects");
    let e = fetch_page(&s.url("/nolocation"), &quick()).unwrap_err();
    assert_eq!(e, PageError::NoLocation(302));
}

#[test]
fn errors_are_clear_and_carry_the_status() {
    let s = Scripted::start(script);
    let e = fetch_page(&s.url("/missing"), &quick()).unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(
        e.to_string(),
        format!("HTTP 404 Not Found from {}", s.url("/missing"))
    );

    let e = fetch_page(&s.url("/cut"), &quick()).unwrap_err();
    assert!(
        matches!(e, PageError::Response(ResponseError::Truncated(_))),
        "{e}"
    );
    assert!(
        e.to_string().contains("closed the connection mid-response"),
        "{e}"
    );

    let e = fetch_page(&s.url("/garbage"), &quick()).unwrap_err();
    assert!(
        matches!(e, PageError::Response(ResponseError::Malformed(_))),
        "{e}"
    );

    let e = fetch_page(&s.url("/huge"), &quick()).unwrap_err();
    assert!(e.to_string().contains("body exceeds"), "{e}");

    let silent = PageOptions {
        idle_timeout: Duration::from_millis(300),
        ..quick()
    };
    let e = fetch_page(&s.url("/silent"), &silent).unwrap_err();
    assert_eq!(e, PageError::TimedOut(Duration::from_millis(300)));

    let whole = PageOptions {
        request_timeout: Duration::from_millis(300),
        ..quick()
    };
    let e = fetch_page(&s.url("/silent"), &whole).unwrap_err();
    assert_eq!(e, PageError::TimedOut(Duration::from_millis(300)));

    let e = fetch_page("gopher://x/", &quick()).unwrap_err();
    assert!(e.to_string().contains("only http and https"), "{e}");
}

#[test]
fn refused_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = fetch_page(&format!("http://127.0.0.1:{port}/"), &quick()).unwrap_err();
    match e {
        PageError::Connect(c) => assert!(c.is_refused(), "{c}"),
        other => panic!("wanted a connect error, got {other}"),
    }
}

/// Python's http.server on a temp dir, as a user would run it.
struct PyServer {
    child: std::process::Child,
    port: u16,
}

impl PyServer {
    fn start(dir: &std::path::Path) -> PyServer {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 43215 (http://...) ..."
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        PyServer { child, port }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn spindle_get_prints_the_body_or_one_line_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("spindle-get-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/page.txt"), "a page from python\n").unwrap();
    let py = PyServer::start(&dir);
    let bin = env!("CARGO_BIN_EXE_spindle");

    let out = Command::new(bin)
        .args(["get", &format!("http://127.0.0.1:{}/sub/page.txt", py.port)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"a page from python\n");

    // http.server redirects a directory without its slash (301).
    let out = Command::new(bin)
        .args(["get", &format!("http://127.0.0.1:{}/sub", py.port)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("page.txt"));

    let url = format!("http://127.0.0.1:{}/missing", py.port);
    let out = Command::new(bin).args(["get", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert_eq!(last, format!("spindle: HTTP 404 File not found from {url}"));

    drop(py);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(bin)
        .args(["get", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .last()
            .unwrap_or("")
            .contains("Connection refused"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A protocol that fetches a page when told to, as a tutorial server would
/// (`getPage(url).addCallback(...)`), and writes what it got.
#[derive(Default)]
struct Fetcher;

impl spindle::Protocol for Fetcher {
    fn data_received(&mut self, data: &[u8], transport: &mut spindle::Transport) {
        let url = String::from_utf8_lossy(data).trim().to_string();
        spindle::client::get_page::<Fetcher>(transport, &url, quick())
            .add_callback(|_, t, body| {
                t.write(b"got: ");
                t.write(&body);
                Ok(())
            })
            .add_errback(|_, t, failure| {
                t.write(format!("failed: {failure}").as_bytes());
                Ok(())
            });
    }
}

#[test]
fn get_page_fires_a_deferred_on_the_owner() {
    use spindle::testing::Harness;
    let s = Scripted::start(script);
    let mut h = Harness::new(Fetcher);
    h.transport().handle();
    h.connect();
    h.feed(s.url("/chunked").as_bytes());
    assert!(h.run_inbox_once(Duration::from_secs(10)));
    assert_eq!(h.take_text(), "got: abcde");
    h.feed(s.url("/missing").as_bytes());
    assert!(h.run_inbox_once(Duration::from_secs(10)));
    assert_eq!(
        h.take_text(),
        format!("failed: HTTP 404 Not Found from {}", s.url("/missing"))
    );
}
