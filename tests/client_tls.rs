//! The `tls:` client endpoint and `https://` against a loopback TLS server
//! with a freshly generated self-signed certificate: trusted through
//! `--ca-file`, refused without it, refused for the wrong host name.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use spindle::client::{
    ClientConfig, ClientEndpoint, ClientFactory, ConnectError, Connector, PageOptions,
};
use spindle::client::{connect, fetch_page, tls};
use spindle::{Addr, Protocol, Reason, Transport};

const WAIT: Duration = Duration::from_secs(10);

/// A certificate for `localhost`, its key, and the PEM file of the cert.
struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
    pem_file: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cert(tag: &str) -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("spindle-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem_file = dir.join("cert.pem");
    std::fs::write(&pem_file, ck.cert.pem()).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        key: ck.signing_key.serialize_der(),
        pem_file,
        _dir: TempDir(dir),
    }
}

/// Serves `connections` TLS connections: each gets `greeting`, then (for
/// HTTP) an answer after the request head.
fn tls_server(cert: &Cert, connections: usize, http: bool) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
        )
        .unwrap();
    serve_with(Arc::new(config), connections, http)
}

/// Sends `cert` but signs with another key: with_single_cert refuses such
/// a pair, a resolver does not check.
#[derive(Debug)]
struct WrongKey(Arc<rustls::sign::CertifiedKey>);
impl rustls::server::ResolvesServerCert for WrongKey {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn wrong_key_server(cert: &Cert, other: &Cert) -> u16 {
    let key = rustls::crypto::ring::sign::any_supported_type(&PrivateKeyDer::Pkcs8(
        PrivatePkcs8KeyDer::from(other.key.clone()),
    ))
    .unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![cert.der.clone()], key);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(WrongKey(Arc::new(certified))));
    serve_with(Arc::new(config), 1, false)
}

fn serve_with(config: Arc<rustls::ServerConfig>, connections: usize, http: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((sock, _)) = listener.accept() else {
                return;
            };
            let config = config.clone();
            thread::spawn(move || {
                sock.set_read_timeout(Some(WAIT)).unwrap();
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                if http {
                    let mut reader = BufReader::new(&mut tls);
                    for _ in 0..100 {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret");
                } else {
                    let _ = tls.write_all(b"hello over TLS\r\n");
                }
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

#[derive(Debug, PartialEq)]
enum Event {
    Failed(ConnectError),
    Heard(Vec<u8>),
    Lost(Reason),
}

struct Listen(crossbeam_channel::Sender<Event>, Vec<u8>);
impl Protocol for Listen {
    fn data_received(&mut self, data: &[u8], _: &mut Transport) {
        self.1.extend_from_slice(data);
    }
    fn connection_lost(&mut self, reason: &Reason) {
        let _ = self.0.send(Event::Heard(std::mem::take(&mut self.1)));
        let _ = self.0.send(Event::Lost(reason.clone()));
    }
}

struct ListenFactory(crossbeam_channel::Sender<Event>);
impl ClientFactory for ListenFactory {
    fn build_protocol(&self, _: &Addr) -> Box<dyn Protocol> {
        Box::new(Listen(self.0.clone(), Vec::new()))
    }
    fn client_connection_failed(&self, _: &Connector, reason: &ConnectError) {
        let _ = self.0.send(Event::Failed(reason.clone()));
    }
}

fn attempt(endpoint: &str, config: ClientConfig) -> Vec<Event> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let c = connect(
        &ClientEndpoint::parse(endpoint).unwrap(),
        Arc::new(ListenFactory(tx)),
        config,
    );
    assert!(c.wait(WAIT));
    rx.try_iter().collect()
}

fn trusting(cert: &Cert) -> ClientConfig {
    ClientConfig {
        tls: Some(tls::client_config(Some(&cert.pem_file), true).unwrap()),
        ..ClientConfig::default()
    }
}

#[test]
fn a_trusted_certificate_for_the_host_connects() {
    let c = cert("ok");
    let port = tls_server(&c, 1, false);
    let seen = attempt(&format!("tls:localhost:{port}:timeout=5"), trusting(&c));
    assert_eq!(
        seen,
        vec![
            Event::Heard(b"hello over TLS\r\n".to_vec()),
            Event::Lost(Reason::Done)
        ]
    );
}

#[test]
fn an_unknown_authority_is_a_clear_tls_error() {
    let c = cert("unknown");
    let port = tls_server(&c, 1, false);
    // The system's roots only (.ci/run installs ca-certificates).
    let config = ClientConfig {
        tls: Some(tls::client_config(None, false).unwrap()),
        ..ClientConfig::default()
    };
    let seen = attempt(&format!("tls:localhost:{port}:timeout=5"), config);
    match &seen[..] {
        [Event::Failed(e)] => {
            assert!(e.is_tls(), "{e}");
            assert!(
                e.to_string()
                    .contains("issued by an authority this client does not trust; if it is self-signed, pass that certificate with --ca-file"),
                "{e}"
            );
        }
        other => panic!("wanted a TLS failure, got {other:?}"),
    }
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let c = cert("name");
    let port = tls_server(&c, 1, false);
    let seen = attempt(&format!("tls:127.0.0.1:{port}:timeout=5"), trusting(&c));
    match &seen[..] {
        [Event::Failed(e)] => assert!(
            e.to_string()
                .contains("the server's certificate is for localhost, not for 127.0.0.1"),
            "{e}"
        ),
        other => panic!("wanted a TLS failure, got {other:?}"),
    }
}

#[test]
fn a_pinned_certificate_with_another_key_is_refused() {
    // The certificate is pinned, so only the handshake signature can
    // catch a server that holds the certificate but not its key.
    let (c, other) = (cert("pin"), cert("pin-other"));
    let port = wrong_key_server(&c, &other);
    let seen = attempt(&format!("tls:localhost:{port}:timeout=5"), trusting(&c));
    match &seen[..] {
        [Event::Failed(e)] => assert_eq!(
            e.to_string(),
            "TLS with localhost failed: the server's handshake signature does not verify with its \
             certificate's key; the server's key file does not belong to the certificate it sends \
             (or someone in between holds only the certificate)"
        ),
        other => panic!("wanted a TLS failure, got {other:?}"),
    }
}

#[test]
fn a_plain_server_behind_a_tls_endpoint_fails_clearly() {
    // Something that is not TLS at all answers: garbage, then a close.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.write_all(b"* OK plain IMAP, not TLS\r\n");
        }
    });
    let seen = attempt(
        &format!("tls:localhost:{port}:timeout=5"),
        ClientConfig::default(),
    );
    match &seen[..] {
        [Event::Failed(e)] => {
            assert!(e.is_tls(), "{e}");
            assert!(
                e.to_string()
                    .contains("the server does not speak TLS here (a plain-text port?)"),
                "{e}"
            );
        }
        other => panic!("wanted a TLS failure, got {other:?}"),
    }
}

#[test]
fn https_pages_and_spindle_get_with_ca_file() {
    let c = cert("https");
    let port = tls_server(&c, 3, true);
    let options = PageOptions {
        client: trusting(&c),
        ..PageOptions::default()
    };
    let url = format!("https://localhost:{port}/");
    assert_eq!(fetch_page(&url, &options).unwrap(), b"secret");

    let bin = env!("CARGO_BIN_EXE_spindle");
    let ca = c.pem_file.to_str().unwrap();
    let out = Command::new(bin)
        .args(["get", &url, "--ca-file", ca])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"secret");

    let out = Command::new(bin).args(["get", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("does not trust"), "{err}");
}
