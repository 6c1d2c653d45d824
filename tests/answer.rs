//! `spindle serve answer` end to end, with the real `nc`, in both of its
//! line-end habits, and with a telnet-style client.

mod chat_support;

use std::io::Write;
use std::process::{Command, Stdio};

use chat_support::{Server, UTF8_LINE, telnet_script};

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

/// UTF-8 typed in the real telnet (under a pty) is a question like any
/// other, twice (before and after the client turned binary), and the
/// connection stays: the known question is still answered; Ctrl-C leaves.
#[test]
fn utf8_typed_in_telnet_is_answered_and_disconnects_no_one() {
    let server = Server::start("answer", &[]);
    let shrug = "expect=I don't know what you mean\r\n".to_string();
    let steps = [
        format!("type={UTF8_LINE}"),
        shrug.clone(),
        format!("type={UTF8_LINE}"),
        shrug,
        "type=How are you?".to_string(),
        "expect=Fine\r\n".to_string(),
        "ctrl-c".to_string(),
    ];
    telnet_script(server.port, &steps);
    assert_eq!(server.log.count("telnet interrupt"), 1);
}
