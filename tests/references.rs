//! The comparison servers in examples/ answer as the Spindle servers they
//! stand beside: the same bytes where a load generator looks. Each example
//! is compiled into this test (its `serve` runs in-process on port 0) and
//! compared with the real `spindle serve` on the same input.

// Each example brings its own copy of examples/support/listen.rs (its
// `main` binds with it); here the three are one crate.
#![allow(clippy::duplicate_mod)]

mod util;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use util::{Spindle, connect, connect_addr, read_n, read_to_end, send};

#[path = "../examples/tokio_echo.rs"]
mod tokio_echo;

#[path = "../examples/hyper_counter.rs"]
mod hyper_counter;

#[path = "../examples/bare_chat.rs"]
mod bare_chat;

/// Binds a loopback listener on a free port and runs `serve` on it in a
/// thread of its own, for the life of the test process.
fn start(serve: fn(TcpListener, Option<usize>) -> std::io::Result<()>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("has an address");
    thread::spawn(move || serve(listener, Some(2)).expect("serves"));
    addr
}

#[test]
fn tokio_echo_echoes_every_chunking() {
    let addr = start(tokio_echo::serve);
    let message: Vec<u8> = (0..=255u8).cycle().take(40_000).collect();
    for chunk in [1, 7, 1500, 40_000] {
        let mut s = connect_addr(addr);
        for piece in message.chunks(chunk) {
            send(&mut s, piece);
        }
        assert_eq!(read_n(&mut s, message.len()), message, "chunk {chunk}");
        s.shutdown(std::net::Shutdown::Write).expect("half-closes");
        assert!(
            read_to_end(&mut s).is_empty(),
            "nothing more after the echo"
        );
    }
}

/// One response as a client sees it: status, headers (names lowercased,
/// `Date` and `Server` values blanked, sorted), body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Splits `bytes`, the answers to requests whose `head_only` flags are
/// given, into responses; fails on anything left over.
fn answers(mut bytes: &[u8], head_only: &[bool]) -> Vec<Answer> {
    let mut out = Vec::new();
    for &head in head_only {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut slots);
        let Ok(httparse::Status::Complete(used)) = response.parse(bytes) else {
            panic!(
                "not a complete response: {:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        let mut headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| {
                let name = h.name.to_ascii_lowercase();
                let value = match name.as_str() {
                    "date" | "server" => "-".to_string(),
                    _ => String::from_utf8_lossy(h.value).into_owned(),
                };
                (name, value)
            })
            .collect();
        headers.sort();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().expect("a length"));
        let body_len = if head { 0 } else { length };
        let body = bytes[used..used + body_len].to_vec();
        out.push(Answer {
            status: response.code.expect("a status"),
            headers,
            body,
        });
        bytes = &bytes[used + body_len..];
    }
    assert!(
        bytes.is_empty(),
        "left over: {:?}",
        String::from_utf8_lossy(bytes)
    );
    out
}

/// What a server answers to one keep-alive connection's requests, ending
/// with `Connection: close`, and to an HTTP/1.0 request without keep-alive.
fn session(port: u16) -> (Vec<Answer>, Vec<Answer>) {
    let requests: &[(&str, bool)] = &[
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
        ("HEAD /a/path HTTP/1.1\r\nHost: x\r\n\r\n", true),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            false,
        ),
    ];
    let mut s = connect(port);
    // One request at a time: each answer is read before the next request,
    // so the test does not depend on how a server treats pipelining.
    let mut all = Vec::new();
    for (i, (request, head)) in requests.iter().enumerate() {
        send(&mut s, request.as_bytes());
        if i + 1 == requests.len() {
            all.extend(answers(&read_to_end(&mut s), &[*head]));
        } else {
            all.push(read_answer(&mut s, *head));
        }
    }
    let mut s = connect(port);
    send(&mut s, b"GET / HTTP/1.0\r\n\r\n");
    let one_oh = answers(&read_to_end(&mut s), &[false]);
    (all, one_oh)
}

/// Reads one whole response from a persistent connection.
fn read_answer(s: &mut TcpStream, head: bool) -> Answer {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut slots);
        if let Ok(httparse::Status::Complete(used)) = response.parse(&bytes) {
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap_or(0);
            if head || bytes.len() >= used + length {
                return answers(&bytes, &[head]).pop().expect("one answer");
            }
        }
        let n = s.read(&mut chunk).expect("reads within the deadline");
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn hyper_counter_answers_as_spindle_serve_http_does() {
    let spindle = Spindle::start(&[
        "serve",
        "http",
        "--listen",
        "tcp:port=0:interface=127.0.0.1",
    ]);
    let spindle_port = spindle.port_of("Site");
    let hyper_port = start(hyper_counter::serve).port();
    let (theirs, theirs_10) = session(hyper_port);
    let (ours, ours_10) = session(spindle_port);
    assert_eq!(theirs, ours);
    assert_eq!(theirs_10, ours_10);
    // And what they agree on is the counter: numbers in order, HEAD counted.
    let bodies: Vec<_> = ours
        .iter()
        .map(|a| String::from_utf8_lossy(&a.body))
        .collect();
    assert_eq!(
        bodies,
        [
            "I am request #1\n",
            "",
            "I am request #3\n",
            "405 Method Not Allowed\n",
            "I am request #4\n"
        ]
    );
    assert_eq!(ours_10[0].body, b"I am request #5\n");
    assert!(
        ours_10[0]
            .headers
            .contains(&("connection".into(), "close".into()))
    );
}

/// Reads one `\n`-terminated line (bounded by the stream's read timeout).
fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("a line within the deadline");
    line
}

/// What two members of a chat room on `port` see, as a fan-out load
/// looks at it: each one's greeting (its port written as PORT), and the
/// first line that is not a `* ` notice after A says `hello`, at A and at B.
fn chat_session(port: u16) -> Vec<String> {
    let a = connect(port);
    let a_name = a.local_addr().expect("bound").to_string();
    let mut a_in = BufReader::new(a.try_clone().expect("clones"));
    let greeting_a = line(&mut a_in).replace(&a_name, "ADDR");
    let b = connect(port);
    let b_name = b.local_addr().expect("bound").to_string();
    let mut b_in = BufReader::new(b.try_clone().expect("clones"));
    let greeting_b = line(&mut b_in).replace(&b_name, "ADDR");
    let mut a = a;
    send(&mut a, b"hello, room\r\n");
    let said = |reader: &mut BufReader<TcpStream>| loop {
        let l = line(reader);
        if !l.starts_with("* ") {
            return l.replace(&a_name, "A");
        }
    };
    vec![greeting_a, greeting_b, said(&mut a_in), said(&mut b_in)]
}

#[test]
fn bare_chat_greets_and_fans_out_as_spindle_serve_chat_does() {
    let spindle = Spindle::start(&[
        "serve",
        "chat",
        "--listen",
        "tcp:port=0:interface=127.0.0.1",
    ]);
    let ours = chat_session(spindle.port_of("ChatFactory"));
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = listener.local_addr().expect("has an address").port();
    thread::spawn(move || bare_chat::serve(listener, bare_chat::DEFAULT_QUEUE_LINES));
    let theirs = chat_session(port);
    assert_eq!(theirs, ours);
    assert_eq!(
        ours,
        [
            "* welcome, ADDR: 1 here (you included); /help lists the commands\r\n",
            "* welcome, ADDR: 2 here (you included); /help lists the commands\r\n",
            "<A> hello, room\r\n",
            "<A> hello, room\r\n",
        ]
    );
}

#[test]
fn bare_chat_drops_a_member_that_stops_reading_and_serves_the_rest() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = listener.local_addr().expect("has an address").port();
    // A queue of 4 lines: the member that never reads overflows it at once.
    thread::spawn(move || bare_chat::serve(listener, 4));
    let stuck = connect(port);
    let mut stuck_in = BufReader::new(stuck.try_clone().expect("clones"));
    assert!(line(&mut stuck_in).starts_with("* welcome"));
    let talker = connect(port);
    let mut talker_in = BufReader::new(talker.try_clone().expect("clones"));
    assert!(line(&mut talker_in).starts_with("* welcome"));
    let mut talker = talker;
    // Enough to fill the stuck member's socket buffers and then its queue.
    let big = format!("{}\r\n", "x".repeat(8000));
    let lines = 400;
    for _ in 0..lines {
        send(&mut talker, big.as_bytes());
        let heard = line(&mut talker_in);
        assert_eq!(
            heard.len(),
            big.len() + talker.local_addr().unwrap().to_string().len() + 3
        );
    }
    // The stuck member was cut off: what it can still read ends in EOF
    // (a read timeout here would mean it is still in the room), short of
    // everything that was said.
    let mut rest = Vec::new();
    stuck_in.read_to_end(&mut rest).expect("EOF, not a timeout");
    assert!(rest.len() < lines * big.len(), "it was not sent everything");
}
