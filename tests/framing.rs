//! End to end: the framing demo servers (`netstring-echo`, `int32-echo`)
//! through the real binary over loopback, with netcat and raw sockets.

mod util;

use std::io::Read;

use util::{Spindle, connect, read_n, read_to_end, send, sh};

const LOOPBACK_ANY: &str = "tcp:0:interface=127.0.0.1";

fn serve(protocol: &str, extra: &[&str]) -> Spindle {
    let mut args = vec!["serve", protocol, "--listen", LOOPBACK_ANY];
    args.extend_from_slice(extra);
    Spindle::start(&args)
}

fn int32(data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

#[test]
fn netstring_echo_through_netcat() {
    let s = serve("netstring-echo", &[]);
    let port = s.port_of("NetstringEchoFactory");
    let out = sh(&format!(
        "printf '5:hello,0:,12:hello world!,' | nc -N 127.0.0.1 {port}"
    ));
    assert_eq!(out, "5:hello,0:,12:hello world!,");
}

#[test]
fn netstring_echo_waits_for_an_incomplete_frame_and_drops_only_a_malformed_peer() {
    let s = serve("netstring-echo", &[]);
    let port = s.port_of("NetstringEchoFactory");
    let mut good = connect(port);
    // `5:abc,` is four payload bytes of five: not an error, the server waits.
    send(&mut good, b"5:abc,");
    let mut bad = connect(port);
    send(&mut bad, b"3:abc,05:hello,");
    assert_eq!(read_to_end(&mut bad), b"3:abc,");
    let mut no_colon = connect(port);
    // Refused on the digits alone: the close comes without a colon.
    send(&mut no_colon, b"1000000");
    assert_eq!(read_to_end(&mut no_colon), b"");
    send(&mut good, b"x,");
    assert_eq!(read_n(&mut good, 8), b"5:abc,x,");
    // A whole maximum-size frame, written in pieces.
    let big: Vec<u8> = (0..99999u32).map(|i| (i % 251) as u8).collect();
    let mut frame = b"99999:".to_vec();
    frame.extend_from_slice(&big);
    frame.push(b',');
    for piece in frame.chunks(7000) {
        send(&mut good, piece);
    }
    assert_eq!(read_n(&mut good, frame.len()), frame);
    assert!(
        s.wait_for_log("malformed netstring: length with a leading zero"),
        "{}",
        s.log()
    );
    assert!(
        s.wait_for_log("string of 100000 bytes announced, limit 99999"),
        "{}",
        s.log()
    );
}

#[test]
fn int32_echo_through_netcat() {
    let s = serve("int32-echo", &[]);
    let port = s.port_of("Int32EchoFactory");
    let out = sh(&format!(
        "printf '\\0\\0\\0\\005hello\\0\\0\\0\\0' | nc -N 127.0.0.1 {port} | od -An -c | tr -s ' '"
    ));
    assert_eq!(out.trim(), r"\0 \0 \0 005 h e l l o \0 \0 \0 \0");
}

#[test]
fn int32_echo_refuses_an_announced_length_over_the_limit_and_only_that_peer() {
    let s = serve("int32-echo", &["--max-string-length", "10"]);
    let port = s.port_of("Int32EchoFactory");
    let mut good = connect(port);
    send(&mut good, &int32(b"0123456789"));
    assert_eq!(read_n(&mut good, 14), int32(b"0123456789"));
    let mut bad = connect(port);
    let mut input = int32(b"ok");
    // Over the limit: refused on the prefix, before any body is sent.
    input.extend_from_slice(&11u32.to_be_bytes());
    send(&mut bad, &input);
    let mut got = Vec::new();
    bad.read_to_end(&mut got).unwrap();
    assert_eq!(got, int32(b"ok"));
    send(&mut good, &int32(b"still here"));
    assert_eq!(read_n(&mut good, 14), int32(b"still here"));
    assert!(
        s.wait_for_log("string of 11 bytes announced, limit 10"),
        "{}",
        s.log()
    );
}
