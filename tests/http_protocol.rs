//! The HTTP channel as a protocol, in memory (spindle::testing): every
//! input fed in every chunking down to one byte at a time, and the
//! timeouts driven by the harness clock.

use std::time::Duration;

use spindle::Closing;
use spindle::http::{KeepAliveCliff, SiteConfig};
use spindle::protocols::web;
use spindle::testing::{Harness, outputs_for_every_chunking};

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resp {
    code: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a byte stream into responses. `head_only[i]` says the i-th
/// final response answers a HEAD (no body despite its Content-Length).
fn parse_responses(mut out: &[u8], head_only: &[bool]) -> Vec<Resp> {
    let mut responses = Vec::new();
    let mut finals = 0;
    while !out.is_empty() {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut slots);
        let used = match r.parse(out).expect("a well-formed response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => {
                panic!("truncated response: {:?}", String::from_utf8_lossy(out))
            }
        };
        let code = r.code.unwrap();
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        out = &out[used..];
        let mut resp = Resp {
            code,
            headers,
            body: String::new(),
        };
        if code >= 200 {
            let skip_body = head_only.get(finals).copied().unwrap_or(false);
            finals += 1;
            if !skip_body && code != 204 && code != 304 {
                let len: usize = resp
                    .header("Content-Length")
                    .expect("Content-Length")
                    .parse()
                    .unwrap();
                resp.body = String::from_utf8_lossy(&out[..len]).into_owned();
                out = &out[len..];
            }
        }
        responses.push(resp);
    }
    responses
}

/// The output with `Date:` values blanked (the clock may tick between runs).
fn undated(out: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(out);
    text.split("\r\n")
        .map(|l| {
            if l.starts_with("Date: ") {
                "Date: -"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

/// Feeds `input` to a fresh counter site in every chunking, insists on the
/// same outcome each time, and returns the responses and how it closed.
fn exchange_with(config: &SiteConfig, input: &[u8], head_only: &[bool]) -> (Vec<Resp>, Closing) {
    let outcomes = outputs_for_every_chunking(|| web::site(config.clone()).channel(), input);
    let (_, first) = &outcomes[0];
    for (chunk, outcome) in &outcomes {
        assert_eq!(
            (undated(&outcome.output), outcome.closing),
            (undated(&first.output), first.closing),
            "feeding {:?} in {chunk}-byte chunks changed the outcome",
            String::from_utf8_lossy(input)
        );
    }
    let responses = parse_responses(&first.output, head_only);
    for r in responses.iter().filter(|r| r.code >= 200) {
        assert_eq!(
            r.header("Server"),
            Some(concat!("spindle/", env!("CARGO_PKG_VERSION")))
        );
        let date = r.header("Date").expect("a Date header");
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    }
    (responses, first.closing)
}

fn exchange(input: &[u8]) -> (Vec<Resp>, Closing) {
    exchange_with(&SiteConfig::default(), input, &[])
}

const GET: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn keep_alive_sequence_counts_up_on_one_connection() {
    let site = web::site(SiteConfig::default());
    let mut h = Harness::new(site.channel());
    h.connect();
    for n in 1..=5 {
        h.feed(format!("GET /page{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let r = parse_responses(&h.take_output(), &[]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, 200);
        assert_eq!(r[0].body, format!("I am request #{n}\n"));
        assert_eq!(r[0].header("Content-Type"), Some("text/plain"));
        assert_eq!(r[0].header("Connection"), None);
        assert!(!h.is_closing());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_in_every_chunking() {
    let input = GET.repeat(10);
    let (r, closing) = exchange(input.as_bytes());
    let bodies: Vec<String> = r.iter().map(|r| r.body.clone()).collect();
    let expected: Vec<String> = (1..=10).map(|n| format!("I am request #{n}\n")).collect();
    assert_eq!(bodies, expected);
    assert_eq!(closing, Closing::No);
}

#[test]
fn client_connection_close_is_honoured() {
    let input = format!("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n{GET}");
    let (r, closing) = exchange(input.as_bytes());
    assert_eq!(r.len(), 1, "nothing after the close is answered");
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert_eq!(closing, Closing::Lose);
}

#[test]
fn http10_closes_unless_keep_alive() {
    let (r, closing) = exchange(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].body, "I am request #1\n");
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert_eq!(closing, Closing::Lose);

    let input = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    let (r, closing) = exchange(input);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].body, "I am request #2\n");
    assert!(
        r.iter()
            .all(|r| r.header("Connection") == Some("keep-alive"))
    );
    assert_eq!(closing, Closing::No);
}

#[test]
fn head_has_the_length_but_no_body() {
    let input = format!("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n{GET}");
    let (r, _) = exchange_with(&SiteConfig::default(), input.as_bytes(), &[true, false]);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].code, 200);
    assert_eq!(r[0].header("Content-Length"), Some("16"));
    assert_eq!(r[0].body, "");
    // HEAD renders GET, so it counted (as in Twisted).
    assert_eq!(r[1].body, "I am request #2\n");
}

#[test]
fn post_with_a_body_then_get_stays_in_sync() {
    let input =
        format!("POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello=world{GET}");
    let (r, closing) = exchange(input.as_bytes());
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].code, 405);
    assert_eq!(r[0].header("Allow"), Some("GET, HEAD"));
    assert_eq!(r[0].body, "405 Method Not Allowed\n");
    assert_eq!(r[1].body, "I am request #1\n");
    assert_eq!(closing, Closing::No);
}

#[test]
fn chunked_body_then_get_stays_in_sync() {
    let input = format!(
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n{GET}"
    );
    let (r, _) = exchange(input.as_bytes());
    assert_eq!(r.iter().map(|r| r.code).collect::<Vec<_>>(), [405, 200]);
    assert_eq!(r[1].body, "I am request #1\n");
}

#[test]
fn other_methods_get_405_and_keep_the_connection() {
    let input =
        format!("DELETE /x HTTP/1.1\r\nHost: t\r\n\r\nBREW /pot HTTP/1.1\r\nHost: t\r\n\r\n{GET}");
    let (r, closing) = exchange(input.as_bytes());
    assert_eq!(
        r.iter().map(|r| r.code).collect::<Vec<_>>(),
        [405, 405, 200]
    );
    assert_eq!(closing, Closing::No);
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    let input =
        "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
    let (r, _) = exchange(input.as_bytes());
    assert_eq!(r.iter().map(|r| r.code).collect::<Vec<_>>(), [100, 405]);
    // A body over the limit is refused without inviting it.
    let config = SiteConfig {
        max_body_bytes: 2,
        ..SiteConfig::default()
    };
    let input = "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    let (r, closing) = exchange_with(&config, input.as_bytes(), &[]);
    assert_eq!(r.iter().map(|r| r.code).collect::<Vec<_>>(), [413]);
    assert_eq!(closing, Closing::Lose);
    let (r, _) = exchange(b"GET / HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n");
    assert_eq!(r[0].code, 417);
}

/// Asserts one response with `code`, `Connection: close`, and a close.
fn assert_refused(config: &SiteConfig, input: &[u8], code: u16) {
    let (r, closing) = exchange_with(config, input, &[]);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0].code,
        code,
        "{:?} -> {r:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert!(!r[0].body.is_empty());
    assert_eq!(closing, Closing::Lose);
}

/// A GET whose head is exactly `len` bytes.
fn head_of(len: usize) -> String {
    let base = "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: \r\n\r\n".len();
    format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(len - base)
    )
}

#[test]
fn header_bytes_limit_at_and_past() {
    let config = SiteConfig {
        max_header_bytes: 100,
        ..SiteConfig::default()
    };
    let (r, _) = exchange_with(&config, head_of(100).as_bytes(), &[]);
    assert_eq!(r[0].code, 200);
    assert_refused(&config, head_of(101).as_bytes(), 431);
    // A head that never ends is refused once it passes the limit.
    assert_refused(
        &config,
        format!("GET /{} HTTP/1.1", "a".repeat(200)).as_bytes(),
        431,
    );
}

#[test]
fn header_count_limit_at_and_past() {
    let config = SiteConfig {
        max_headers: 3,
        ..SiteConfig::default()
    };
    let (r, _) = exchange_with(
        &config,
        b"GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\n\r\n",
        &[],
    );
    assert_eq!(r[0].code, 200);
    assert_refused(
        &config,
        b"GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        431,
    );
}

#[test]
fn body_limit_at_and_past() {
    let config = SiteConfig {
        max_body_bytes: 5,
        ..SiteConfig::default()
    };
    let at = format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello{GET}");
    let (r, _) = exchange_with(&config, at.as_bytes(), &[]);
    assert_eq!(r.iter().map(|r| r.code).collect::<Vec<_>>(), [405, 200]);
    assert_refused(
        &config,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nhello!",
        413,
    );
    let chunked = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    assert_refused(&config, chunked, 413);
}

#[test]
fn malformed_requests_get_400() {
    let config = SiteConfig::default();
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n"[..],
        b"GET\x01 / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        assert_refused(&config, bad, 400);
    }
}

#[test]
fn unsupported_versions_get_505() {
    let config = SiteConfig::default();
    assert_refused(&config, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    assert_refused(&config, b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505);
}

#[test]
fn slow_headers_are_cut_off_with_408() {
    let config = SiteConfig {
        header_timeout: Some(Duration::from_secs(2)),
        ..SiteConfig::default()
    };
    let mut h = Harness::new(web::site(config).channel());
    h.connect();
    h.feed(b"GET / HTTP/1.1\r\n");
    h.advance(Duration::from_secs(1));
    h.feed(b"Host: t\r\n");
    assert!(!h.is_closing());
    h.advance(Duration::from_millis(1500));
    let r = parse_responses(&h.take_output(), &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].code, 408);
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert_eq!(h.closing(), Closing::Lose);
}

#[test]
fn a_connection_that_never_speaks_is_closed_silently() {
    let config = SiteConfig {
        header_timeout: Some(Duration::from_secs(2)),
        ..SiteConfig::default()
    };
    let mut h = Harness::new(web::site(config).channel());
    h.connect();
    h.advance(Duration::from_secs(3));
    assert_eq!(h.take_output(), b"");
    assert_eq!(h.closing(), Closing::Lose);
}

#[test]
fn a_stalled_body_is_cut_off_with_408() {
    let config = SiteConfig {
        header_timeout: Some(Duration::from_secs(2)),
        ..SiteConfig::default()
    };
    let mut h = Harness::new(web::site(config).channel());
    h.connect();
    h.feed(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    h.advance(Duration::from_secs(3));
    let r = parse_responses(&h.take_output(), &[]);
    assert_eq!(r.iter().map(|r| r.code).collect::<Vec<_>>(), [408]);
    assert_eq!(h.closing(), Closing::Lose);
}

#[test]
fn idle_keep_alive_connections_close_after_the_timeout() {
    for cliff in [KeepAliveCliff::Release, KeepAliveCliff::Hold] {
        let config = SiteConfig {
            keepalive_timeout: Some(Duration::from_secs(5)),
            keepalive_cliff: cliff,
            ..SiteConfig::default()
        };
        let mut h = Harness::new(web::site(config).channel());
        h.connect();
        h.feed(GET.as_bytes());
        assert_eq!(parse_responses(&h.take_output(), &[]).len(), 1);
        h.advance(Duration::from_secs(4));
        assert!(
            !h.is_closing(),
            "{cliff:?}: closed before the keep-alive timeout"
        );
        h.feed(GET.as_bytes());
        assert_eq!(
            parse_responses(&h.take_output(), &[])[0].body,
            "I am request #2\n"
        );
        h.advance(Duration::from_secs(4));
        assert!(
            !h.is_closing(),
            "{cliff:?}: the request restarted the idle clock"
        );
        h.advance(Duration::from_secs(2));
        assert_eq!(
            h.take_output(),
            b"",
            "{cliff:?}: an idle close says nothing"
        );
        assert_eq!(h.closing(), Closing::Lose, "{cliff:?}");
    }
}

#[test]
fn timeouts_can_be_turned_off() {
    let config = SiteConfig {
        header_timeout: None,
        keepalive_timeout: None,
        ..SiteConfig::default()
    };
    let mut h = Harness::new(web::site(config).channel());
    h.connect();
    h.feed(b"GET / HTTP/1.1\r\n");
    h.advance(Duration::from_secs(3600));
    assert!(!h.is_closing());
    h.feed(b"Host: t\r\n\r\n");
    h.advance(Duration::from_secs(3600));
    assert_eq!(parse_responses(&h.take_output(), &[]).len(), 1);
    assert!(!h.is_closing());
}
