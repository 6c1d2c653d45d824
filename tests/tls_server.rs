//! TLS servers: any protocol wrapped by TlsFactory, reached by Spindle's
//! own `tls:` client and by Python's ssl module against the real binary
//! (`--listen ssl:0:...:privateKey=..:certKey=..`).

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use spindle::client::{ClientConfig, ClientEndpoint, ClientFactory, connect, tls};
use spindle::tls_server::{TlsFactory, server_config};
use spindle::{Addr, Endpoint, FnFactory, Protocol, Reason, Server, ServerConfig, Transport};
use util::{DEADLINE, Spindle, read_to_end};

struct Files {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn files(tag: &str) -> Files {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("spindle-tlss-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Files { dir, cert, key }
}

/// Writes `greeting`, collects what comes back until the server closes or
/// `want` bytes arrived, then reports it.
struct Collect {
    greeting: &'static [u8],
    want: usize,
    got: Vec<u8>,
    done: Sender<Vec<u8>>,
}

impl Protocol for Collect {
    fn connection_made(&mut self, t: &mut Transport) {
        t.write(self.greeting);
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.want {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, _: &Reason) {
        let _ = self.done.send(std::mem::take(&mut self.got));
    }
}

struct CollectFactory(&'static [u8], usize, Sender<Vec<u8>>);
impl ClientFactory for CollectFactory {
    fn build_protocol(&self, _: &Addr) -> Box<dyn Protocol> {
        Box::new(Collect {
            greeting: self.0,
            want: self.1,
            got: Vec::new(),
            done: self.2.clone(),
        })
    }
}

fn serve_tls(f: &Files, inner: Arc<dyn spindle::Factory>) -> spindle::RunningServer {
    let config = server_config(&f.key, &f.cert).unwrap();
    let mut server = Server::new(ServerConfig::default());
    server
        .listen(
            &Endpoint::loopback_any_port(),
            Arc::new(TlsFactory::new(inner, config)),
        )
        .unwrap();
    server.spawn().unwrap()
}

fn talk(f: &Files, port: u16, greeting: &'static [u8], want: usize) -> Vec<u8> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let config = ClientConfig {
        tls: Some(tls::client_config(Some(&f.cert), true).unwrap()),
        ..ClientConfig::default()
    };
    let ep = ClientEndpoint::parse(&format!("tls:localhost:{port}:timeout=10")).unwrap();
    let c = connect(&ep, Arc::new(CollectFactory(greeting, want, tx)), config);
    let got = rx.recv_timeout(DEADLINE).expect("the client finished");
    assert!(c.wait(DEADLINE));
    got
}

#[test]
fn echo_over_tls() {
    let f = files("echo");
    let server = serve_tls(&f, Arc::new(spindle::protocols::echo::factory()));
    let got = talk(&f, server.tcp_addr().port(), b"hello over TLS", 14);
    assert_eq!(got, b"hello over TLS");
    server.stop().unwrap();
}

/// QOTD writes its quote and closes in `connection_made`, before the
/// handshake: the close waits for the handshake, so the quote arrives.
#[test]
fn qotd_over_tls_sends_the_quote_before_closing() {
    let f = files("qotd");
    let qotd =
        spindle::protocols::qotd::QotdFactory::new(vec!["An apple a day".to_string()]).unwrap();
    let server = serve_tls(&f, Arc::new(qotd));
    let got = talk(&f, server.tcp_addr().port(), b"", usize::MAX);
    assert_eq!(String::from_utf8(got).unwrap(), "An apple a day\r\n");
    server.stop().unwrap();
}

/// Answers through a timer and through a handle used by another thread:
/// the wrapped protocol's inbox and timers work through TLS.
struct Ticker;
impl Protocol for Ticker {
    fn connection_made(&mut self, t: &mut Transport) {
        t.call_later(Duration::from_millis(20), |_: &mut Ticker, t| {
            t.write(b"tick\n")
        });
    }
    fn data_received(&mut self, _: &[u8], t: &mut Transport) {
        let h = t.handle();
        std::thread::spawn(move || {
            h.call(|_: &mut Ticker, t| t.write(b"from a thread\n"))
                .unwrap();
        });
    }
}

#[test]
fn timers_and_handles_of_the_wrapped_protocol_work() {
    let f = files("ticker");
    let factory = FnFactory::new("TickerFactory", |_| Box::new(Ticker) as Box<dyn Protocol>);
    let server = serve_tls(&f, Arc::new(factory));
    let got = talk(&f, server.tcp_addr().port(), b"go", 19);
    let text = String::from_utf8(got).unwrap();
    assert!(
        text.contains("tick\n") && text.contains("from a thread\n"),
        "{text:?}"
    );
    server.stop().unwrap();
}

#[test]
fn spindle_serve_ssl_endpoint_for_python_and_garbage() {
    let f = files("cli");
    let listen = format!(
        "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
        f.key.display(),
        f.cert.display()
    );
    let s = Spindle::start(&["serve", "welcome", "--listen", &listen]);
    let port = s.port_of("WelcomeFactory");
    let script = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context(cafile={cafile:?})\n\
         with socket.create_connection(('127.0.0.1', {port}), timeout=10) as raw:\n\
         \x20   with ctx.wrap_socket(raw, server_hostname='localhost') as s:\n\
         \x20       print(s.recv(200).decode().strip())\n\
         \x20       s.sendall(b'ping\\r\\n')\n\
         \x20       print(s.recv(200).decode().strip())\n",
        cafile = f.cert.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "welcome! there are currently 1 open connections.\nping\n"
    );

    // A plain-text client gets a TLS alert and a close, not a hang.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(DEADLINE)).unwrap();
    plain.write_all(b"hello in clear\r\n").unwrap();
    let answer = read_to_end(&mut plain);
    assert!(!answer.windows(7).any(|w| w == b"welcome"), "{answer:?}");

    // A missing key file: one line, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args([
            "serve",
            "echo",
            "--listen",
            "ssl:0:privateKey=/nonexistent/k.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/k.pem"));
}

#[test]
fn bad_key_files_are_one_line_naming_the_files() {
    let (a, b) = (files("key-a"), files("key-b"));
    let serve = |key: &std::path::Path, cert: &std::path::Path| {
        let listen = format!(
            "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
            key.display(),
            cert.display()
        );
        let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
            .args(["serve", "echo", "--listen", &listen])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    // Another certificate's key.
    let err = serve(&b.key, &a.cert);
    assert!(
        err.starts_with(&format!(
            "spindle: the key {} does not fit the certificate {}: its public key is not the certificate's; use the key made with that certificate\n",
            b.key.display(),
            a.cert.display()
        )),
        "{err}"
    );
    // A certificate where the key should be.
    let err = serve(&a.cert, &a.cert);
    assert!(
        err.starts_with(&format!(
            "spindle: {}: no usable private key (no PEM PRIVATE KEY block, as openssl req -keyout writes)\n",
            a.cert.display()
        )),
        "{err}"
    );
    // A key where the certificate should be.
    let err = serve(&a.key, &a.key);
    assert!(
        err.starts_with(&format!(
            "spindle: {}: no certificate found",
            a.key.display()
        )),
        "{err}"
    );
}
