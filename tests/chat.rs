//! `spindle serve chat` end to end: the real binary, real sockets on
//! loopback, clients written like `nc` and `telnet` would talk.

mod chat_support;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use chat_support::{Client, PATIENCE, Server, UTF8_LINE, join, telnet_script};

/// Checks that every client got the same chat lines, each exactly once,
/// and that each sender's lines kept the order it sent them in.
fn assert_one_order(received: &[Vec<String>], senders: &[String], per_sender: usize) {
    let first = &received[0];
    assert_eq!(first.len(), senders.len() * per_sender);
    let unique: HashSet<&String> = first.iter().collect();
    assert_eq!(unique.len(), first.len(), "a line arrived twice");
    for (i, other) in received.iter().enumerate().skip(1) {
        assert_eq!(other, first, "client {i} saw another order");
    }
    for sender in senders {
        let prefix = format!("<{sender}> line ");
        let numbers: Vec<usize> = first
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|k| k.parse().unwrap())
            .collect();
        assert_eq!(
            numbers,
            (0..per_sender).collect::<Vec<_>>(),
            "{sender}'s lines"
        );
    }
}

/// `n` clients join, then each sends `per_sender` lines at once from its
/// own thread while reading everyone's.
fn everyone_talks(n: usize, per_sender: usize) {
    let server = Server::start("chat", &[]);
    let mut clients = Vec::new();
    for i in 0..n {
        let (c, here) = join(&server);
        assert_eq!(here, i + 1);
        clients.push(c);
    }
    let senders: Vec<String> = clients.iter().map(Client::name).collect();
    let start = Arc::new(Barrier::new(n));
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let start = start.clone();
            thread::spawn(move || {
                let mut writer = Client::new(c.stream.try_clone().unwrap());
                start.wait();
                let sending = thread::spawn(move || {
                    for k in 0..per_sender {
                        writer.send(format!("line {k}\r\n").as_bytes());
                    }
                    writer
                });
                let got = c.chat_lines(n * per_sender);
                let _writer = sending.join().unwrap();
                got
            })
        })
        .collect();
    let received: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_one_order(&received, &senders, per_sender);
}

#[test]
fn two_clients_get_every_line_once_in_one_order() {
    everyone_talks(2, 200);
}

#[test]
fn fifty_clients_get_every_line_once_in_one_order() {
    everyone_talks(50, 20);
}

#[test]
fn greeting_notices_and_the_sender_named_in_the_prefix() {
    let server = Server::start("chat", &[]);
    let (mut a, here) = join(&server);
    assert_eq!(here, 1);
    let (mut b, here) = join(&server);
    assert_eq!(here, 2);
    assert_eq!(a.line(), format!("* {} joined (2 here)", b.name()));
    b.send(b"hello\r\n");
    let expected = format!("<{}> hello", b.name());
    assert_eq!(b.line(), expected);
    assert_eq!(a.line(), expected);
    let b_name = b.name();
    b.send(b"/quit\r\n");
    assert_eq!(b.line(), "* bye");
    assert!(b.closed_within(PATIENCE));
    assert_eq!(a.line(), format!("* {b_name} left (1 here)"));
}

#[test]
fn lines_sent_one_byte_at_a_time_arrive_whole() {
    let server = Server::start("chat", &[]);
    let (mut a, _) = join(&server);
    let (mut b, _) = join(&server);
    a.line();
    for byte in b"one byte at a time\r\n" {
        b.send(&[*byte]);
    }
    assert_eq!(a.line(), format!("<{}> one byte at a time", b.name()));
}

#[test]
fn crlf_and_lf_clients_mixed_all_get_crlf() {
    let server = Server::start("chat", &[]);
    let (mut crlf, _) = join(&server);
    let (mut lf, _) = join(&server);
    crlf.line();
    crlf.send(b"from crlf\r\n");
    lf.send(b"from lf\n");
    crlf.send(b"\r\n\n");
    lf.send(b"again lf\n");
    // Client::line insists on CRLF for every line it reads.
    let mut seen = Vec::new();
    for c in [&mut crlf, &mut lf] {
        seen.push(c.chat_lines(3));
    }
    assert_eq!(seen[0], seen[1]);
    let lines: HashSet<String> = seen[0].iter().cloned().collect();
    assert!(lines.contains(&format!("<{}> from crlf", crlf.name())));
    assert!(lines.contains(&format!("<{}> from lf", lf.name())));
    assert!(lines.contains(&format!("<{}> again lf", lf.name())));
}

#[test]
fn telnet_commands_never_reach_the_others() {
    let server = Server::start("chat", &[]);
    let (mut reader, _) = join(&server);
    let (mut telnet, _) = join(&server);
    reader.line();
    // IAC DO SUPPRESS-GO-AHEAD, IAC WILL NAWS, a subnegotiation, IAC NOP
    // split mid-line, then the line end.
    telnet.send(b"\xff\xfd\x03\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0he");
    telnet.send(b"l\xff");
    telnet.send(b"\xf1lo\r\n");
    let line = reader.line();
    assert_eq!(line, format!("<{}> hello", telnet.name()));
}

#[test]
fn a_client_leaving_mid_broadcast_disturbs_no_one() {
    // Room for the whole burst in every inbox: this test is about the
    // leaver, not the slow-consumer bound (with the default 1024, a receiver
    // whose owner is descheduled while 2000 lines arrive is rightly dropped).
    let server = Server::start("chat", &["--outbound-queue", "4096"]);
    let (sender, _) = join(&server);
    let mut others: Vec<Client> = (0..5).map(|_| join(&server).0).collect();
    let (leaver, _) = join(&server);
    let total = 2000;
    let mut writer = Client::new(sender.stream.try_clone().unwrap());
    let sending = thread::spawn(move || {
        for k in 0..total {
            writer.send(format!("line {k}\r\n").as_bytes());
        }
    });
    // Reset the leaver's connection while lines are flowing to it.
    socket2::SockRef::from(&leaver.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(leaver);
    let name = sender.name();
    let expected: Vec<String> = (0..total).map(|k| format!("<{name}> line {k}")).collect();
    others.push(sender);
    let readers: Vec<_> = others
        .into_iter()
        .map(|mut c| thread::spawn(move || c.chat_lines(total)))
        .collect();
    for r in readers {
        assert_eq!(r.join().unwrap(), expected);
    }
    sending.join().unwrap();
}

/// A client whose receive buffer is tiny, so that the server's writes to it
/// block soon after it stops reading.
fn stubborn_client(port: u16) -> Client {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).unwrap();
    Client::new(TcpStream::from(socket))
}

/// One test per model of `never_reader_dropped_while_ten_others_chat`.
/// The process model is left out: each of its children serves one
/// connection with a room of its own, so nobody else's lines can pile up.
mod a_client_that_never_reads_is_dropped_while_ten_others_chat {
    #[test]
    fn pool() {
        super::never_reader_dropped_while_ten_others_chat("pool");
    }
    #[test]
    fn thread() {
        super::never_reader_dropped_while_ten_others_chat("thread");
    }
    #[test]
    fn reactor() {
        super::never_reader_dropped_while_ten_others_chat("reactor");
    }
    #[test]
    fn hybrid() {
        super::never_reader_dropped_while_ten_others_chat("hybrid");
    }
}

/// A client that never reads holds the talkers back (they are paused at
/// its high water) for `--drop-grace`, is then dropped as a slow
/// consumer, and its connection is aborted once `--drop-grace` is up
/// again: far sooner than the
/// write timeout, which is made too long to be what ends it. The ten
/// others get every line meanwhile.
fn never_reader_dropped_while_ten_others_chat(model: &str) {
    let server = Server::start(
        "chat",
        &[
            "--model",
            model,
            "--outbound-queue",
            "32",
            "--write-timeout",
            "600s",
            "--drop-grace",
            "300ms",
        ],
    );
    let mut stubborn = stubborn_client(server.port);
    let stubborn_name = stubborn.name();
    assert!(stubborn.line().starts_with("* welcome"));
    let talkers: Vec<Client> = (0..10).map(|_| join(&server).0).collect();
    let names: Vec<String> = talkers.iter().map(Client::name).collect();
    // The server's socket buffer towards the stubborn client grows to a
    // few MiB (tcp_wmem) before its writes block, so long lines fill it
    // in a few dozen rounds. The talkers go in rounds: each sends one line,
    // then reads until it has the round's ten, so no talker is more than a
    // round ahead of another and their own queues (32 lines) never fill:
    // only the stubborn client can fall behind. They chat until five
    // rounds after the drop notice, which every talker sees at the same
    // place in the one order, so all stop after the same round.
    const MAX_ROUNDS: usize = 400;
    const ROUNDS_AFTER_DROP: usize = 5;
    let filler = "x".repeat(16_000);
    let started = Instant::now();
    let threads: Vec<_> = talkers
        .into_iter()
        .map(|mut c| {
            let filler = filler.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut last_round = None;
                for round in 0..MAX_ROUNDS {
                    if last_round.is_some_and(|last| round > last) {
                        break;
                    }
                    c.send(format!("line {round} {filler}\r\n").as_bytes());
                    while got.len() < 10 * (round + 1) {
                        let line = c.line();
                        if line.starts_with('<') {
                            got.push(line);
                        } else if line.contains(" was dropped: too slow") {
                            last_round = Some(got.len() / 10 + ROUNDS_AFTER_DROP);
                        }
                    }
                }
                (got, last_round)
            })
        })
        .collect();
    let results: Vec<(Vec<String>, Option<usize>)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    // Every line arrived within the test's patience per line, whatever the
    // stubborn client did.
    let elapsed = started.elapsed();
    let last_round = results[0].1.expect("the talkers were told of the drop");
    assert!(results.iter().all(|(_, last)| *last == Some(last_round)));
    let mut received = Vec::new();
    for (got, _) in &results {
        let stripped: Vec<String> = got
            .iter()
            .map(|l| l.strip_suffix(&format!(" {filler}")).unwrap().to_string())
            .collect();
        received.push(stripped);
    }
    assert_one_order(&received, &names, last_round + 1);
    let logged = server
        .log
        .wait_for("dropped slow consumer", PATIENCE)
        .expect("the drop is logged");
    // Behind (at high water, 16 of 32) and nothing taken for the grace;
    // how far past high water depends on how many talkers said a line
    // before each was paused.
    assert!(
        logged.contains(&format!("dropped slow consumer {stubborn_name}: "))
            && logged.contains("lines queued, none taken for 300ms"),
        "{logged}"
    );
    // The grace, not the write timeout, ends the stubborn connection:
    // the server aborts it while the client still has not read a byte.
    server
        .log
        .wait_for("not closed by the deadline", PATIENCE)
        .expect("the dropped connection is aborted after its grace");
    assert_eq!(server.log.count("not closed by the deadline"), 1);
    assert!(
        stubborn.closed_within(PATIENCE),
        "still open after {elapsed:?}"
    );
}

#[test]
fn a_slow_client_that_reads_again_gets_its_lines_then_the_reason() {
    let server = Server::start("chat", &["--outbound-queue", "8", "--drop-grace", "300ms"]);
    let mut slow = stubborn_client(server.port);
    slow.line();
    let (mut talker, _) = join(&server);
    let filler = "y".repeat(4000);
    let mut sent = 0;
    while server.log.count("dropped slow consumer") == 0 {
        talker.send(format!("line {sent} {filler}\r\n").as_bytes());
        sent += 1;
        talker.line();
        assert!(sent < 10_000, "never dropped");
    }
    let mut owed = 0;
    loop {
        let line = slow.line();
        if line.starts_with('<') {
            owed += 1;
        } else if line.starts_with("* you are being disconnected") {
            // High water is 4 of 8: the talker was paused there until
            // the grace was up.
            assert!(
                line.starts_with("* you are being disconnected: ")
                    && line.ends_with(" lines were waiting for you to read them"),
                "{line}"
            );
            break;
        }
    }
    assert!(owed > 0 && owed < sent, "owed {owed} of {sent}");
    assert!(slow.closed_within(PATIENCE));
}

#[test]
fn nicks_who_me_help_and_errors() {
    let server = Server::start("chat", &["--max-nick", "8"]);
    let (mut a, _) = join(&server);
    let (mut b, _) = join(&server);
    let a_addr = a.name();
    let b_addr = b.name();
    a.line();
    a.send(b"/nick alice\r\n");
    let renamed = format!("* {a_addr} is now known as alice");
    assert_eq!(a.line(), renamed);
    assert_eq!(b.line(), renamed);
    for (bad, why) in [
        ("/nick ALICE", "! alice is taken"),
        ("/nick", "! usage: /nick NAME"),
        ("/nick 2pac", "! a nick starts with a letter"),
        (
            "/nick bob smith",
            "! a nick is made of letters, digits, '_' and '-', not ' ' (U+0020)",
        ),
        ("/nick abcdefghi", "! a nick has at most 8 characters"),
        // Eight characters are fine, however many bytes: this one is too
        // long by its ninth.
        ("/nick éééééééé9", "! a nick has at most 8 characters"),
        (
            "/nick \u{430}lice",
            "! a nick is written in one script, not Cyrillic and Latin",
        ),
        (
            "/nick al\u{200b}ce",
            "! a nick is made of letters, digits, '_' and '-', not '\\u{200b}' (U+200B)",
        ),
        (
            "/nick ali\u{202e}ce",
            "! a nick is made of letters, digits, '_' and '-', not '\\u{202e}' (U+202E)",
        ),
        (
            "/frobnicate now",
            "! unknown command /frobnicate; /help lists the commands",
        ),
        ("/me", "! usage: /me ACTION"),
    ] {
        b.send(format!("{bad}\r\n").as_bytes());
        assert_eq!(b.line(), why, "after {bad}");
    }
    b.send(b"/who\r\n");
    assert_eq!(b.line(), format!("* 2 here: alice, {b_addr}"));
    b.send(b"/me waves\r\n");
    assert_eq!(b.line(), format!("* {b_addr} waves"));
    assert_eq!(a.line(), format!("* {b_addr} waves"));
    a.send(b"//slash\r\n   \r\n\r\nhi\r\n");
    assert_eq!(b.line(), "<alice> /slash");
    assert_eq!(b.line(), "<alice> hi", "blank lines are ignored");
    b.send(b"/help\r\n");
    assert_eq!(b.line(), "* commands:");
    let help = b.until(
        "* any other line is said to everyone; start it with // to say a line beginning with /",
    );
    assert!(help.iter().any(|l| l.contains("/nick NAME")), "{help:?}");
    // Unicode letters: émile, in characters, unique in Unicode lowercase.
    b.send("/nick émile\r\n".as_bytes());
    let renamed = format!("* {b_addr} is now known as émile");
    assert_eq!(b.line(), renamed);
    // (a has its own earlier lines to read first.)
    a.until(&renamed);
    a.send("/nick ÉMILE\r\n".as_bytes());
    assert_eq!(a.line(), "! émile is taken");
    b.send("héllo\r\n".as_bytes());
    assert_eq!(a.line(), "<émile> héllo");
}

#[test]
fn a_too_long_line_is_refused_and_reaches_no_one() {
    let server = Server::start("chat", &[]);
    let (mut a, _) = join(&server);
    let (mut b, _) = join(&server);
    a.line();
    let b_name = b.name();
    let mut long = vec![b'z'; 20_000];
    long.extend_from_slice(b"\r\n");
    b.send(&long);
    let refusal = b.line();
    assert!(refusal.starts_with("! line too long"), "{refusal}");
    assert!(b.closed_within(PATIENCE));
    assert_eq!(a.line(), format!("* {b_name} left (1 here)"));
    a.send(b"after\r\n");
    assert_eq!(a.line(), format!("<{}> after", a.name()));
}

/// The real `telnet` client under a pty (python3's `pty` module): see the
/// greeting, type a line, see it come back, leave.
fn telnet_session(how: &str) {
    let server = Server::start("chat", &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/chat_support/telnet_session.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(server.port.to_string())
        .arg(how)
        .output()
        .expect("run python3");
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "telnet session failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The telnet client left the room (before the server closed on it):
    // a newcomer is alone.
    let (_newcomer, here) = join(&server);
    assert_eq!(here, 1);
}

#[test]
fn a_telnet_session_under_a_pty_with_quit() {
    telnet_session("quit");
}

#[test]
fn a_telnet_session_under_a_pty_with_ctrl_c() {
    telnet_session("ctrl-c");
}

/// `Ctrl-\` makes telnet send IAC BRK and IAC DO TIMING-MARK, then hide
/// everything until the answer: the server's WONT TIMING-MARK must come,
/// or the user sees nothing more.
#[test]
fn a_telnet_session_under_a_pty_goes_on_after_ctrl_backslash() {
    telnet_session("ctrl-backslash");
}

/// UTF-8 typed in the real telnet reaches an `nc`-like client byte for
/// byte, and no one is disconnected: the first line (sent before the client
/// turned binary, with `у` as IAC IP and `本` as IAC BRK), the same line
/// again (binary by then), and `そ ѝ`, whose 0x9D only a binary client
/// sends (a non-binary one takes it for its escape key, `^]`). Then Ctrl-C
/// still leaves.
#[test]
fn utf8_typed_in_telnet_reaches_an_nc_client_intact() {
    let server = Server::start("chat", &[]);
    let (mut nc, _) = join(&server);
    let said = |text: &str| format!("expect=<127\\.0\\.0\\.1:\\d+> {text}\r\n");
    let steps = [
        "expect=\\* welcome, ".to_string(),
        format!("type={UTF8_LINE}"),
        said(UTF8_LINE),
        format!("type={UTF8_LINE}"),
        said(UTF8_LINE),
        "type=そ ѝ".to_string(),
        said("そ ѝ"),
        "ctrl-c".to_string(),
    ];
    telnet_script(server.port, &steps);
    // `line` insists on UTF-8 and CRLF; invalid bytes would have become
    // U+FFFD in the room.
    let lines = nc.chat_lines(3);
    let sender = lines[0].split_once("> ").map(|(name, _)| name).unwrap();
    assert!(sender.starts_with("<127.0.0.1:"), "{lines:?}");
    assert_eq!(
        lines,
        [UTF8_LINE, UTF8_LINE, "そ ѝ"].map(|text| format!("{sender}> {text}"))
    );
    let left = nc.line();
    assert_eq!(left, format!("* {} left (1 here)", &sender[1..]));
}

#[test]
fn zero_limits_are_usage_errors() {
    for (flag, protocol) in [
        ("--max-nick", "chat"),
        ("--max-line-length", "chat"),
        ("--max-line-length", "answer"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_spindle"))
            .args([
                "serve",
                protocol,
                "--listen",
                "tcp:0:interface=127.0.0.1",
                flag,
                "0",
            ])
            .output()
            .expect("run spindle");
        assert_eq!(out.status.code(), Some(2), "{flag} 0 for {protocol}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{flag} must be at least 1")), "{err}");
    }
}

#[test]
fn a_bad_drop_grace_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args([
            "serve",
            "chat",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--drop-grace",
            "soon",
        ])
        .output()
        .expect("run spindle");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--drop-grace"), "{err}");
}

/// The real `nc`, with `\n` line ends and with `-C` (`\r\n`), chatting
/// with a socket client: both see the same lines, ending in `\r\n`.
#[test]
fn nc_and_nc_crlf_clients_chat() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let server = Server::start("chat", &[]);
    let (mut watcher, _) = join(&server);
    for flags in [&[][..], &["-C"][..]] {
        let mut nc = Command::new("nc")
            .arg("-N")
            .args(flags)
            .args(["127.0.0.1", &server.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nc");
        let (tx, rx) = mpsc::channel();
        let stdout = nc.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                if tx.send(String::from_utf8(line).unwrap()).is_err() {
                    break;
                }
            }
        });
        let joined = watcher.line();
        let addr = joined
            .strip_prefix("* ")
            .and_then(|l| l.strip_suffix(" joined (2 here)"))
            .unwrap_or_else(|| panic!("{joined:?}"))
            .to_string();
        let greeting = rx.recv_timeout(PATIENCE).unwrap();
        assert!(
            greeting.starts_with(&format!("* welcome, {addr}: 2 here")),
            "{greeting:?}"
        );
        assert!(greeting.ends_with('\r'), "CRLF: {greeting:?}");
        let mut stdin = nc.stdin.take().unwrap();
        stdin.write_all(b"hello from nc\n").unwrap();
        stdin.flush().unwrap();
        let expected = format!("<{addr}> hello from nc");
        assert_eq!(watcher.line(), expected, "nc {flags:?}");
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), format!("{expected}\r"));
        watcher.send(b"hello nc\r\n");
        let reply = format!("<{}> hello nc", watcher.name());
        assert_eq!(watcher.line(), reply);
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), format!("{reply}\r"));
        // EOF on nc's stdin: it half-closes, the server closes, nc exits.
        drop(stdin);
        assert_eq!(watcher.line(), format!("* {addr} left (1 here)"));
        match rx.recv_timeout(PATIENCE) {
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            other => panic!("nc's output should have ended, got {other:?}"),
        }
        assert!(nc.wait().unwrap().success());
    }
}
