//! The IMAP4 client against a real Dovecot on loopback (tests/util/dovecot.rs):
//! a Maildir with four messages — an encoded-word subject among them — over
//! TLS with a generated self-signed certificate. `.ci/run` installs
//! dovecot-imapd.

#[path = "util/dovecot.rs"]
mod dovecot;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use spindle::client::imap::parse::ParseError;
use spindle::client::imap::{ImapError, ImapOptions, ImapSession};
use spindle::client::{ClientConfig, ClientEndpoint, tls};

const WAIT: Duration = Duration::from_secs(20);

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

/// A throw-away Dovecot (tests/util/dovecot.rs) holding [`MESSAGES`], with
/// an rcgen certificate for `localhost` that the client trusts.
struct Dovecot {
    server: dovecot::Dovecot,
    ca_file: PathBuf,
}

impl std::ops::Deref for Dovecot {
    type Target = dovecot::Dovecot;
    fn deref(&self) -> &dovecot::Dovecot {
        &self.server
    }
}

impl Dovecot {
    fn start() -> Dovecot {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("spindle-dovecot-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (ca_file, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&ca_file, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let subjects: Vec<&str> = MESSAGES.iter().map(|(raw, _)| *raw).collect();
        let server = dovecot::Dovecot::start(dir, &ca_file, &key, &subjects);
        Dovecot { server, ca_file }
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
