//! `spindle imap-subject` against scripted misbehaving IMAP servers on
//! loopback (plain `tcp:` endpoints): every fault is one line and exit 1,
//! within the timeouts.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::Duration;

/// What the server says: the greeting (None: silence), then one answer per
/// command line, built from the command's tag. After the last answer it
/// closes.
struct Script {
    greeting: Option<&'static str>,
    answers: Vec<fn(&str) -> String>,
}

fn serve(script: Script) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let Some(greeting) = script.greeting else {
            // Say nothing; wait (bounded) for the client to give up.
            let mut line = String::new();
            let _ = BufReader::new(conn).read_line(&mut line);
            return;
        };
        conn.write_all(greeting.as_bytes()).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        for answer in script.answers {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let tag = line.split(' ').next().unwrap_or("*").to_string();
            if conn.write_all(answer(&tag).as_bytes()).is_err() {
                return;
            }
        }
    });
    port
}

const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 LITERAL+] scripted\r\n";

fn ok(tag: &str) -> String {
    format!("{tag} OK done\r\n")
}

fn select(tag: &str) -> String {
    format!("* 2 EXISTS\r\n{tag} OK [READ-WRITE] selected\r\n")
}

fn run(port: u16, extra: &[&str]) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!("spindle-imapf-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let endpoint = format!("tcp:127.0.0.1:{port}:timeout=1");
    let mut args = vec![
        "imap-subject",
        "--endpoint",
        &endpoint,
        "--user",
        "alice",
        "--password-file",
        pw.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(&args)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fails_with(script: Script, extra: &[&str], want: &str) {
    let (code, out, err) = run(serve(script), extra);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(want), "wanted {want:?}, got {err:?}");
}

#[test]
fn a_scripted_server_that_behaves_gets_the_subject() {
    let port = serve(Script {
        greeting: Some(GREETING),
        answers: vec![
            ok,
            select,
            |tag| {
                format!(
                    "* 1 FETCH (ENVELOPE (NIL {{26}}\r\n=?utf-8?q?caf=C3=A9?= time NIL NIL NIL NIL NIL NIL NIL NIL))\r\n{tag} OK fetched\r\n"
                )
            },
            |tag| format!("* BYE bye\r\n{tag} OK logged out\r\n"),
        ],
    });
    let (code, out, err) = run(port, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "First message subject: café time\n");
}

#[test]
fn faults_are_one_line_and_exit_1() {
    fails_with(
        Script {
            greeting: Some("HTTP/1.1 200 OK\r\n"),
            answers: vec![],
        },
        &[],
        "spindle: malformed IMAP response: tagged response with status \"200\"",
    );
    fails_with(
        Script {
            greeting: Some("* BYE too busy\r\n"),
            answers: vec![],
        },
        &[],
        "spindle: the server refused the session: too busy",
    );
    fails_with(
        Script {
            greeting: Some(GREETING),
            answers: vec![|tag| format!("{tag} BAD what?\r\n")],
        },
        &[],
        "spindle: LOGIN rejected by the server: what?",
    );
    fails_with(
        Script {
            greeting: Some(GREETING),
            answers: vec![ok, select, |_| {
                "* 1 FETCH (ENVELOPE (NIL {50}\r\nonly a bit".to_string()
            }],
        },
        &[],
        "spindle: the connection closed mid-response to FETCH",
    );
    fails_with(
        Script {
            greeting: Some(GREETING),
            answers: vec![ok, select, |_| {
                "* 1 FETCH (ENVELOPE (NIL {999999999}\r\n".to_string()
            }],
        },
        &["--max-literal", "1000"],
        "spindle: the server announced a literal of 999999999 bytes (the bound is 1000)",
    );
    fails_with(
        Script {
            greeting: Some(GREETING),
            answers: vec![ok],
        },
        &[],
        "spindle: the connection closed before SELECT",
    );
    fails_with(
        Script {
            greeting: None,
            answers: vec![],
        },
        &["--timeout", "500ms"],
        "spindle: no answer to the greeting within 1.5s",
    );
}
