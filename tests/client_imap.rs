//! The IMAP4 client against a real Dovecot on loopback: a throw-away
//! config (passwd-file users, a Maildir with four messages — an encoded-word
//! subject among them — TLS with a generated self-signed certificate),
//! `dovecot -F` in the foreground as root with its own base_dir, stopped
//! when the test ends. `.ci/run` installs dovecot-imapd.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use spindle::client::imap::parse::ParseError;
use spindle::client::imap::{ImapError, ImapOptions, ImapSession};
use spindle::client::{ClientConfig, ClientEndpoint, tls};

const WAIT: Duration = Duration::from_secs(20);

/// Debian's `nobody`/`nogroup`: Dovecot refuses to serve mail as root.
const MAIL_UID: u32 = 65534;
const MAIL_GID: u32 = 65534;

const MESSAGES: [(&str, &str); 4] = [
    (
        "=?UTF-8?B?R3LDvMOfZSBhdXMgWsO8cmljaA==?=",
        "Grüße aus Zürich",
    ),
    (
        "Re: =?ISO-8859-1?Q?caf=E9?= =?UTF-8?Q?_cr=C3=A8me?= au lait",
        "Re: café crème au lait",
    ),
    (
        "Raw: naïve \"quoted\" \\ back",
        "Raw: naïve \"quoted\" \\ back",
    ),
    ("", ""),
];

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A running Dovecot and everything it was given.
struct Dovecot {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    ca_file: PathBuf,
    password_file: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

fn chown_tree(path: &Path) {
    chown(path, Some(MAIL_UID), Some(MAIL_GID)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path());
        }
    }
}

impl Dovecot {
    fn start() -> Dovecot {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("spindle-dovecot-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let maildir = dir.join("home/alice/Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        for (i, (subject, _)) in MESSAGES.iter().enumerate() {
            let subject_line = if subject.is_empty() {
                String::new()
            } else {
                format!("Subject: {subject}\r\n")
            };
            let message = format!(
                "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n{subject_line}Date: Mon, 1 Jan 2024 10:0{i}:00 +0000\r\nMessage-ID: <{i}@example.com>\r\n\r\nmessage {i}\r\n"
            );
            let name = format!("100000000{i}.M{i}P1.spindle:2,S");
            std::fs::write(maildir.join("cur").join(name), message).unwrap();
        }
        chown_tree(&dir.join("home"));

        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let ca_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&ca_file, ck.cert.pem()).unwrap();
        std::fs::write(&key_file, ck.signing_key.serialize_pem()).unwrap();

        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "alice:{{PLAIN}}secret:{MAIL_UID}:{MAIL_GID}::{home}\nbob:{{PLAIN}}pässwörd:{MAIL_UID}:{MAIL_GID}::{home}\n",
                home = dir.join("home/alice").display()
            ),
        )
        .unwrap();
        let password_file = dir.join("password");
        std::fs::write(&password_file, "secret\n").unwrap();

        // A port that was free a moment ago.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let conf = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = required\n\
             ssl_cert = <{d}/cert.pem\n\
             ssl_key = <{d}/key.pem\n\
             auth_mechanisms = plain\n\
             auth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/passwd\n}}\n\
             mail_location = maildir:~/Maildir\n\
             log_path = /dev/stderr\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = {port}\n    ssl = yes\n  }}\n}}\n"
        );
        let conf_file = dir.join("dovecot.conf");
        std::fs::write(&conf_file, conf).unwrap();

        let mut child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dovecot (Debian's dovecot-imapd; .ci/run installs it)");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("starting up") {
                    let _ = ready_tx.try_send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let dovecot = Dovecot {
            child: Some(child),
            dir,
            port,
            ca_file,
            password_file,
            log,
        };
        // Dovecot listens before it logs "starting up".
        if ready_rx.recv_timeout(WAIT).is_err() {
            panic!("dovecot did not start: {:?}", dovecot.log.lock().unwrap());
        }
        dovecot
    }

    fn endpoint(&self) -> String {
        format!("tls:localhost:{}:timeout=10", self.port)
    }

    fn config(&self) -> ClientConfig {
        ClientConfig {
            tls: Some(tls::client_config(Some(&self.ca_file), true).unwrap()),
            ..ClientConfig::default()
        }
    }

    fn session(&self, options: ImapOptions) -> ImapSession {
        let ep = ClientEndpoint::parse(&self.endpoint()).unwrap();
        ImapSession::connect(&ep, self.config(), options).unwrap()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: Dovecot stops its children and exits.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let (tx, rx) = crossbeam_channel::bounded(1);
            let id = child.id();
            let waiter = thread::spawn(move || {
                let _ = tx.send(child.wait());
            });
            if rx.recv_timeout(WAIT).is_err() {
                unsafe { libc::kill(id as i32, libc::SIGKILL) };
            }
            let _ = waiter.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn options() -> ImapOptions {
    ImapOptions {
        command_timeout: WAIT,
        ..ImapOptions::default()
    }
}

#[test]
fn session_reads_every_subject_and_reports_server_errors() {
    let dovecot = Dovecot::start();
    let mut s = dovecot.session(options());
    assert!(
        s.capabilities().iter().any(|c| c == "IMAP4rev1"),
        "{:?}",
        s.capabilities()
    );

    // A wrong password is a NO with the server's words; the session goes on.
    let e = s.login("alice", b"wrong").unwrap_err();
    assert!(matches!(e, ImapError::No { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "LOGIN failed: [AUTHENTICATIONFAILED] Authentication failed."
    );
    s.login("alice", b"secret").unwrap();

    let e = s.select("No-Such-Box").unwrap_err();
    assert!(matches!(e, ImapError::No { .. }), "{e}");
    let mailbox = s.select("INBOX").unwrap();
    assert_eq!(mailbox.exists, MESSAGES.len() as u32);

    for (i, (_, decoded)) in MESSAGES.iter().enumerate() {
        let env = s.fetch_envelope(i as u32 + 1).unwrap();
        let want = (!decoded.is_empty()).then(|| decoded.to_string());
        assert_eq!(env.subject, want, "message {}", i + 1);
        assert_eq!(env.from[0].to_string(), "Alice <alice@example.com>");
        assert_eq!(env.message_id, Some(format!("<{i}@example.com>")));
    }
    let e = s.fetch_envelope(99).unwrap_err();
    assert!(
        matches!(
            e,
            ImapError::No { .. } | ImapError::Bad { .. } | ImapError::Protocol(_)
        ),
        "{e}"
    );
    s.logout().unwrap();

    // A password that needs a literal (8-bit).
    let mut s = dovecot.session(options());
    s.login("bob", "pässwörd".as_bytes()).unwrap();
    assert_eq!(s.select("INBOX").unwrap().exists, MESSAGES.len() as u32);
    s.logout().unwrap();

    // A literal over the bound is a clear error, and the session is over.
    let mut s = dovecot.session(ImapOptions {
        max_literal: 8,
        ..options()
    });
    s.login("alice", b"secret").unwrap();
    s.select("INBOX").unwrap();
    let e = s.fetch_envelope(3).unwrap_err();
    assert!(
        matches!(
            e,
            ImapError::Parse(ParseError::LiteralTooLarge { max: 8, .. })
        ),
        "{e} (log: {:?})",
        dovecot.log.lock().unwrap()
    );
    let e = s.select("INBOX").unwrap_err();
    assert!(matches!(e, ImapError::Closed(_)), "{e}");
}

fn spindle(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn imap_subject_prints_the_tutorial_line_or_one_error_line() {
    let dovecot = Dovecot::start();
    let ep = dovecot.endpoint();
    let pw = dovecot.password_file.to_str().unwrap();
    let ca = dovecot.ca_file.to_str().unwrap();
    let base = [
        "imap-subject",
        "--endpoint",
        &ep,
        "--user",
        "alice",
        "--password-file",
        pw,
    ];

    let (code, out, err) = spindle(&[&base[..], &["--ca-file", ca]].concat());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "First message subject: Grüße aus Zürich\n");

    let (code, out, _) = spindle(&[&base[..], &["--ca-file", ca, "--message", "3"]].concat());
    assert_eq!(code, Some(0));
    assert_eq!(out, "Message 3 subject: Raw: naïve \"quoted\" \\ back\n");

    let failures: [(&[&str], &str); 3] = [
        (
            &["--ca-file", ca, "--message", "9"],
            "spindle: mailbox INBOX has 4 messages; there is no message 9",
        ),
        (
            &["--ca-file", ca, "--mailbox", "Nope"],
            "spindle: SELECT failed: ",
        ),
        (
            &[],
            "spindle: TLS with localhost failed: the server's certificate is issued by an authority this client does not trust",
        ),
    ];
    for (extra, needle) in &failures {
        let (code, out, err) = spindle(&[&base[..], extra].concat());
        assert_eq!(code, Some(1), "{extra:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(needle), "{extra:?}: {err}");
    }

    let wrong = dovecot.dir.join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let (code, _, err) = spindle(&[
        "imap-subject",
        "--endpoint",
        &ep,
        "--user",
        "alice",
        "--password-file",
        wrong.to_str().unwrap(),
        "--ca-file",
        ca,
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "spindle: LOGIN failed: [AUTHENTICATIONFAILED] Authentication failed.\n"
    );

    // Nobody listens there any more: refused, one line.
    let port = dovecot.port;
    let keep = std::env::temp_dir().join(format!("spindle-imap-pw-{}", std::process::id()));
    std::fs::write(&keep, "secret\n").unwrap();
    drop(dovecot);
    let gone = format!("tls:localhost:{port}");
    let (code, _, err) = spindle(&[
        "imap-subject",
        "--endpoint",
        &gone,
        "--user",
        "alice",
        "--password-file",
        keep.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&keep);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Connection refused"), "{err}");
}
