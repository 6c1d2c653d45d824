//! `spindle serve answer` end to end, with the real `nc`, in both of its
//! line-end habits, and with a telnet-style client.

mod chat_support;

use std::io::Write;
use std::process::{Command, Stdio};

use chat_support::Server;

/// Pipes `input` through `nc` (with `extra` flags) to the bot; `-N` sends
/// EOF after the input, `-w` bounds every wait.
fn nc(server: &Server, extra: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("nc")
        .args(["-N", "-w", "10"])
        .args(extra)
        .args(["127.0.0.1", &server.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nc");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn nc_with_lf_line_ends() {
    let server = Server::start("answer", &[]);
    assert_eq!(
        nc(&server, &[], b"How are you?\nWhat is this?\n"),
        "Fine\r\nI don't know what you mean\r\n"
    );
}

#[test]
fn nc_with_crlf_line_ends() {
    let server = Server::start("answer", &[]);
    assert_eq!(
        nc(&server, &["-C"], b"How are you?\nhow are you?\n"),
        "Fine\r\nI don't know what you mean\r\n"
    );
}

#[test]
fn telnet_commands_are_ignored_and_too_long_lines_close() {
    let server = Server::start("answer", &["--max-line-length", "64"]);
    let mut c = server.connect();
    c.send(b"\xff\xfd\x01How are \xff\xf1you?\r\n");
    // The peer speaks telnet: DO BINARY, once; DO ECHO is refused (WONT
    // ECHO), as Twisted's telnet does.
    assert_eq!(c.bytes(6), b"\xff\xfd\x00\xff\xfc\x01");
    assert_eq!(c.line(), "Fine");
    c.send(&[b'a'; 100]);
    assert!(c.closed_within(chat_support::PATIENCE));
    assert!(
        server
            .log
            .wait_for("line too long", chat_support::PATIENCE)
            .is_some()
    );
}
