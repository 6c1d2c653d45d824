//! TLS end to end with certificates made by the real `openssl` command
//! line, as users make them (not rcgen): the self-signed `openssl req
//! -x509` certificate (CA:TRUE, a Common Name and no subjectAltName)
//! served by `spindle serve ... --listen ssl:...` to curl, `openssl
//! s_client`, Python's `ssl` and `spindle get`, and by Dovecot to
//! `spindle imap-subject`; then every certificate failure, each a single
//! line on the client and a line naming the peer in the server's log.

#[path = "util/dovecot.rs"]
mod dovecot;
mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use util::Spindle;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Every client command gets this long (`timeout`), so none can hang a test.
const CLIENT_SECONDS: &str = "20";

/// A temp dir of openssl-made keys and certificates, removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `openssl ca`'s settings: a database in the dir and the extension
/// sections the certificates below use.
const CA_CONFIG: &str = "\
[ ca ]
default_ca = test_ca
[ test_ca ]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[ any_name ]
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
subjectAltName = DNS:localhost
[ other_name ]
basicConstraints = critical,CA:FALSE
subjectAltName = DNS:other.test
[ cn_only ]
basicConstraints = critical,CA:FALSE
[ ca_as_server ]
basicConstraints = critical,CA:TRUE
subjectAltName = DNS:localhost
";

impl Pki {
    fn new(tag: &str) -> Pki {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("spindle-openssl-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.cnf"), CA_CONFIG).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl (Debian's openssl; .ci/run installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The README's recipe: `NAME.key` and `NAME.pem` for CN=localhost.
    fn self_signed(&self, name: &str) {
        self.self_signed_as(name, "/CN=localhost");
    }

    /// The same recipe for another subject (an authority's).
    fn self_signed_as(&self, name: &str, subject: &str) {
        let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
        self.openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &cert,
            "-days", "1", "-subj", subject,
        ]);
    }

    /// A key and a request for CN=localhost, `NAME.key` and `NAME.csr`.
    fn request(&self, name: &str) {
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ]);
    }

    /// `NAME.pem` signed by `ca.pem` (or by its own key when `issuer` is
    /// None), with the extensions of `section` and the dates given as
    /// `YYYYMMDDHHMMSSZ`.
    fn issue(&self, name: &str, issuer: Option<&str>, section: &str, dates: (&str, &str)) {
        self.request(name);
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut args = vec![
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-in",
            &csr,
            "-out",
            &cert,
            "-extensions",
            section,
            "-startdate",
            dates.0,
            "-enddate",
            dates.1,
        ];
        let (ca_cert, ca_key);
        match issuer {
            Some(ca) => {
                ca_cert = format!("{ca}.pem");
                ca_key = format!("{ca}.key");
                args.extend(["-cert", &ca_cert, "-keyfile", &ca_key]);
            }
            None => args.extend(["-selfsign", "-keyfile", &key]),
        }
        self.openssl(&args);
    }
}

/// Dates around now that every certificate below but the expired and
/// the future one uses.
const VALID: (&str, &str) = ("20200101000000Z", "20991231000000Z");

/// `spindle serve http` on `ssl:0` with `NAME.key` and `NAME.pem`.
fn serve(pki: &Pki, name: &str) -> (Spindle, u16) {
    let listen = format!(
        "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
        pki.path(&format!("{name}.key")).display(),
        pki.path(&format!("{name}.pem")).display()
    );
    let s = Spindle::start(&["serve", "http", "--listen", &listen]);
    let port = s.port_of("Site");
    (s, port)
}

/// Runs `program args` bounded by `timeout`: (exit code, stdout, stderr).
fn run(program: &str, args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .arg(CLIENT_SECONDS)
        .arg(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spindle(args: &[&str]) -> (Option<i32>, String, String) {
    run(env!("CARGO_BIN_EXE_spindle"), args, b"")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_openssl_self_signed_certificate_works_with_every_client() {
    let pki = Pki::new("ok");
    pki.self_signed("server");
    let ca = pki.path("server.pem");
    let (server, port) = serve(&pki, "server");
    let url = format!("https://localhost:{port}/");

    let (code, out, err) = run("curl", &["-sS", "--cacert", s(&ca), &url], b"");
    assert_eq!(code, Some(0), "curl: {err}");
    assert!(out.starts_with("I am request #"), "curl: {out:?}");

    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let connect = format!("127.0.0.1:{port}");
    let (code, out, err) = run(
        "openssl",
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
            "-CAfile",
            s(&ca),
            "-verify_return_error",
            "-quiet",
        ],
        request,
    );
    assert_eq!(code, Some(0), "s_client: {err}");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "s_client: {out:?}");
    assert!(out.contains("\r\n\r\nI am request #"), "s_client: {out:?}");

    let script = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         with socket.create_connection(('127.0.0.1', {port}), timeout=10) as raw:\n\
         \x20   with ctx.wrap_socket(raw, server_hostname='localhost') as s:\n\
         \x20       s.sendall(b'GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n')\n\
         \x20       answer = b''\n\
         \x20       for _ in range(100):\n\
         \x20           chunk = s.recv(4096)\n\
         \x20           if not chunk: break\n\
         \x20           answer += chunk\n\
         \x20       print(answer.split(b'\\r\\n\\r\\n', 1)[1].decode().strip())\n",
        ca = s(&ca)
    );
    let (code, out, err) = run("python3", &["-c", &script], b"");
    assert_eq!(code, Some(0), "python: {err}");
    assert!(out.starts_with("I am request #"), "python: {out:?}");

    let (code, out, err) = spindle(&["get", &url, "--ca-file", s(&ca)]);
    assert_eq!(code, Some(0), "spindle get: {err}");
    assert!(out.starts_with("I am request #"), "spindle get: {out:?}");
    // Pinned with --only-ca-file too: the system's authorities play no part.
    let (code, out, err) = spindle(&["get", &url, "--ca-file", s(&ca), "--only-ca-file"]);
    assert_eq!(code, Some(0), "spindle get --only-ca-file: {err}");
    assert!(out.starts_with("I am request #"), "{out:?}");
    assert!(
        !server.log().contains("failed"),
        "no failure logged:\n{}",
        server.log()
    );
}

#[test]
fn imap_subject_against_dovecot_with_the_openssl_certificate() {
    let pki = Pki::new("imap");
    pki.self_signed("server");
    let dovecot = dovecot::Dovecot::start(
        pki.path("dovecot"),
        &pki.path("server.pem"),
        &pki.path("server.key"),
        &["Grüße über TLS"],
    );
    let endpoint = format!("tls:localhost:{}:timeout=10", dovecot.port);
    let base = [
        "imap-subject",
        "--endpoint",
        &endpoint,
        "--user",
        "alice",
        "--password-file",
        s(&dovecot.password_file),
    ];
    let ca = pki.path("server.pem");
    let (code, out, err) = spindle(&[&base[..], &["--ca-file", s(&ca)]].concat());
    assert_eq!(
        code,
        Some(0),
        "{err} (dovecot: {:?})",
        dovecot.log.lock().unwrap()
    );
    assert_eq!(out, "First message subject: Grüße über TLS\n");

    // Without --ca-file: one line saying what to pass.
    let (code, out, err) = spindle(&base);
    assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
    assert_eq!(
        err,
        "spindle: TLS with localhost failed: the server's certificate is issued by an authority \
         this client does not trust; if it is self-signed, pass that certificate with --ca-file, \
         else the issuing authority's certificate\n"
    );
}

/// `spindle get` against a server with `NAME.pem` (trusting `ca_file`):
/// exit 1 and exactly one line of stderr, which is returned, along with
/// the server's log line about the handshake.
fn refused(pki: &Pki, name: &str, host: &str, ca_file: Option<&str>) -> (String, String) {
    let (server, port) = serve(pki, name);
    let url = format!("https://{host}:{port}/");
    let ca = ca_file.map(|f| pki.path(f));
    let mut args = vec!["get", url.as_str()];
    if let Some(ca) = &ca {
        args.extend(["--ca-file", s(ca), "--only-ca-file"]);
    }
    let (code, out, err) = spindle(&args);
    assert_eq!((code, out.as_str()), (Some(1), ""), "{name}: {err}");
    assert_eq!(err.lines().count(), 1, "{name}: {err}");
    assert!(!err.contains("Other(") && !err.contains("Error("), "{err}");
    let err = err
        .strip_prefix(&format!("spindle: TLS with {host} failed: "))
        .unwrap_or_else(|| panic!("{name}: {err}"))
        .trim_end()
        .to_string();
    assert!(
        server.wait_for_log("TLS handshake with 127.0.0.1:"),
        "{name}: {}",
        server.log()
    );
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("TLS handshake with 127.0.0.1:"))
        .unwrap();
    (err, line.to_string())
}

#[test]
fn an_unknown_authority_says_pass_ca_file() {
    let pki = Pki::new("unknown");
    pki.self_signed("server");
    pki.self_signed("stranger");
    for ca_file in [None, Some("stranger.pem")] {
        let (err, log) = refused(&pki, "server", "localhost", ca_file);
        assert_eq!(
            err,
            "the server's certificate is issued by an authority this client does not trust; if it \
             is self-signed, pass that certificate with --ca-file, else the issuing authority's \
             certificate",
            "{ca_file:?}"
        );
        assert!(
            log.contains("failed: the client ended the handshake with the alert unknown_ca: the client does not trust this server's certificate; give the client the certificate (curl --cacert cert.pem"),
            "{log}"
        );
    }
}

#[test]
fn a_name_mismatch_names_what_the_certificate_holds() {
    let pki = Pki::new("name");
    pki.self_signed("server");
    // Pinned, Common Name only: matched on that name.
    let (err, log) = refused(&pki, "server", "127.0.0.1", Some("server.pem"));
    assert!(
        err.starts_with(
            "the server's certificate is for CN=localhost, not for 127.0.0.1; connect by that \
             name, or make a certificate for 127.0.0.1: openssl req -x509 "
        ),
        "{err}"
    );
    assert!(
        err.ends_with(
            "-addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE"
        ),
        "{err}"
    );
    assert!(log.contains("the alert bad_certificate"), "{log}");

    // Issued by an authority, for another name.
    pki.self_signed_as("ca", "/CN=Spindle Test CA");
    pki.issue("other", Some("ca"), "other_name", VALID);
    let (err, _) = refused(&pki, "other", "localhost", Some("ca.pem"));
    assert!(
        err.starts_with("the server's certificate is for other.test, not for localhost; connect by that name, or make a certificate for localhost: openssl req"),
        "{err}"
    );

    // Issued by an authority, a Common Name and no subjectAltName.
    pki.issue("cn_only", Some("ca"), "cn_only", VALID);
    let (err, _) = refused(&pki, "cn_only", "localhost", Some("ca.pem"));
    assert!(
        err.starts_with("the server's certificate names no host (it has no subjectAltName), so it is not valid for localhost; make one that names it: openssl req"),
        "{err}"
    );
}

#[test]
fn an_expired_or_future_certificate_gives_its_dates() {
    let pki = Pki::new("dates");
    // Pinned: its dates are still checked.
    pki.issue(
        "expired",
        None,
        "leaf",
        ("20200101000000Z", "20200102000000Z"),
    );
    let (err, log) = refused(&pki, "expired", "localhost", Some("expired.pem"));
    assert!(
        err.starts_with(
            "the server's certificate expired at 2020-01-02 00:00:00 UTC (it is now 20"
        ),
        "{err}"
    );
    assert!(
        err.ends_with(
            "); the server needs a renewed certificate, or this machine's clock is wrong"
        ),
        "{err}"
    );
    assert!(log.contains("the alert certificate_expired: the client says this server's certificate has expired or is not yet valid"), "{log}");

    pki.self_signed_as("ca", "/CN=Spindle Test CA");
    pki.issue(
        "future",
        Some("ca"),
        "leaf",
        ("20990101000000Z", "20991231000000Z"),
    );
    let (err, _) = refused(&pki, "future", "localhost", Some("ca.pem"));
    assert!(
        err.starts_with(
            "the server's certificate is not valid before 2099-01-01 00:00:00 UTC (it is now 20"
        ),
        "{err}"
    );
}

#[test]
fn a_ca_certificate_as_the_servers_says_how_to_make_a_leaf() {
    let pki = Pki::new("ca-leaf");
    // The authority's name is the server's, as a user's first try often
    // is: only a signature check tells the two apart.
    pki.self_signed("ca");
    pki.issue("server", Some("ca"), "ca_as_server", VALID);
    let (err, log) = refused(&pki, "server", "localhost", Some("ca.pem"));
    assert!(
        err.starts_with("the server's certificate is a CA certificate (basicConstraints CA:TRUE, as openssl req -x509 makes by default), not a server one; pin that exact certificate with --ca-file, or give the server a leaf certificate: openssl req -x509 -newkey rsa:2048 -nodes"),
        "{err}"
    );
    assert!(
        err.ends_with("-addext basicConstraints=critical,CA:FALSE"),
        "{err}"
    );
    assert!(
        log.contains("the alert certificate_unknown: the client refused this server's certificate"),
        "{log}"
    );

    // The same certificate pinned is accepted.
    let (server, port) = serve(&pki, "server");
    let url = format!("https://localhost:{port}/");
    let (code, out, err) = spindle(&["get", &url, "--ca-file", s(&pki.path("server.pem"))]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("I am request #"), "{out:?}");
    drop(server);
}

#[test]
fn plain_text_on_either_side_is_named() {
    let pki = Pki::new("plain");
    pki.self_signed("server");
    let (server, port) = serve(&pki, "server");
    // A plain HTTP client at the TLS port: the server's log says so.
    let (code, _, _) = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{port}/"),
        ],
        b"",
    );
    assert_ne!(code, Some(0));
    assert!(
        server.wait_for_log("TLS handshake with 127.0.0.1:"),
        "{}",
        server.log()
    );
    assert!(
        server.log().contains("failed: the client does not speak TLS (plain text sent to a TLS port?); it should connect with https:// or a TLS client\n"),
        "{}",
        server.log()
    );

    // https:// to a plain HTTP server: the client's one line says so.
    let plain = Spindle::start(&["serve", "http", "--listen", "tcp:0:interface=127.0.0.1"]);
    let port = plain.port_of("Site");
    let (code, _, err) = spindle(&["get", &format!("https://localhost:{port}/")]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "spindle: TLS with localhost failed: the server does not speak TLS here (a plain-text \
         port?); use its TLS port, or tcp: and http:// for plain text\n"
    );
}

#[test]
fn a_client_that_hangs_up_mid_handshake_is_logged() {
    let pki = Pki::new("hangup");
    pki.self_signed("server");
    let (server, port) = serve(&pki, "server");
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    drop(s);
    assert!(
        server
            .wait_for_log("failed: the client closed the connection before the handshake finished"),
        "{}",
        server.log()
    );
    assert!(server.log().contains("TLS handshake with 127.0.0.1:"));
}

#[test]
fn a_leaf_from_a_trusted_authority_is_verified_as_usual() {
    let pki = Pki::new("leaf");
    pki.self_signed_as("ca", "/CN=Spindle Test CA");
    pki.issue("server", Some("ca"), "leaf", VALID);
    let (server, port) = serve(&pki, "server");
    let url = format!("https://localhost:{port}/");
    let ca = pki.path("ca.pem");
    let (code, out, err) = run("curl", &["-sS", "--cacert", s(&ca), &url], b"");
    assert_eq!(code, Some(0), "curl: {err}");
    assert!(out.starts_with("I am request #"), "curl: {out:?}");
    let (code, out, err) = spindle(&["get", &url, "--ca-file", s(&ca), "--only-ca-file"]);
    assert_eq!(code, Some(0), "spindle get: {err}");
    assert!(out.starts_with("I am request #"), "{out:?}");
    assert!(!server.log().contains("failed"), "{}", server.log());
}
