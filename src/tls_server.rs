//! TLS for any served protocol: `ssl:PORT:privateKey=key.pem:certKey=cert.pem`
//! (and the `tls:` alias), as Twisted's `serverFromString` reads them.
//!
//! TLS is a protocol wrapper, not an engine feature: [`TlsFactory`] wraps
//! any [`Factory`], and each connection's [`TlsProtocol`] feeds the raw bytes
//! to a `rustls` session and hands the plaintext to the wrapped protocol,
//! which runs with a transport of its own. So every engine serves TLS
//! unchanged. The wrapped protocol keeps the whole contract: its writes are
//! encrypted after each callback; its timers become timers of the outer
//! connection; its [`ConnHandle`]s work, because the
//! inner transport's inbox wakes the outer connection, which drains it on
//! its owner.
//!
//! Differences worth knowing: a refused connection (engine busy) is closed
//! silently — the factory's busy message would be plaintext on a TLS
//! socket; and the wrapped protocol's `connection_made` runs at once,
//! before the handshake, as in Twisted (what it writes is sent when the
//! handshake completes). A close it asks for before then (QOTD writes its
//! quote and closes at once) waits for the handshake, as Twisted's
//! `TLSMemoryBIOProtocol` does, so the quote arrives; a client that never
//! finishes the handshake is cut after [`HANDSHAKE_CLOSE_WAIT`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::client::tls::{PemFileError, load_pem_certs};
use crate::endpoint::{Endpoint, EndpointError, Fields, fields};
use crate::engine::core::{Control, Core, End};
use crate::protocol::{Addr, Factory, Protocol, Reason, Refusal};
use crate::transport::{Closing, ConnHandle, ConnInfo, OwnerLink, TimerId, Transport};

/// Inner commands run per wake-up at most; more are left for the next.
const MAX_PUMP: usize = 1024;

/// How long a connection whose wrapped protocol closed during the handshake
/// waits for the handshake to finish (so what it wrote can be sent) before
/// it is closed anyway.
pub const HANDSHAKE_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A parsed `ssl:`/`tls:` server endpoint: where to listen, and the PEM
/// files of the key and the certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsEndpoint {
    /// The TCP endpoint underneath.
    pub tcp: Endpoint,
    /// The private key (PEM).
    pub private_key: PathBuf,
    /// The certificate chain (PEM); Twisted's default is the key's file.
    pub cert: PathBuf,
}

impl TlsEndpoint {
    /// Whether `s` names a TLS server endpoint (`ssl:` or `tls:`).
    pub fn is_tls(s: &str) -> bool {
        s.starts_with("ssl:") || s.starts_with("tls:")
    }

    /// Parses `ssl:PORT[:interface=..][:backlog=..]:privateKey=F[:certKey=F]`.
    pub fn parse(s: &str) -> Result<TlsEndpoint, EndpointError> {
        let err = |problem: String| EndpointError {
            input: s.to_string(),
            problem,
        };
        let mut fields = fields::split(s).into_iter();
        if !matches!(fields.next().as_deref(), Some("ssl" | "tls")) {
            return Err(err("not an ssl: or tls: endpoint".into()));
        }
        let (mut key, mut cert) = (None, None);
        let mut rest = Vec::new();
        for field in fields {
            match field.split_once('=') {
                Some(("privateKey", v)) => key = Some(PathBuf::from(v)),
                Some(("certKey", v)) => cert = Some(PathBuf::from(v)),
                Some(("sslmethod" | "extraCertChain" | "dhParameters", _)) => {
                    return Err(err(format!("option {field:?} is not supported")));
                }
                _ => rest.push(field),
            }
        }
        let tcp = Fields::new("tcp".into(), rest)
            .and_then(|tcp| Endpoint::from_fields(&tcp))
            .map_err(err)?;
        if !matches!(tcp, Endpoint::Tcp { .. }) {
            return Err(err("TLS needs a TCP port".into()));
        }
        let private_key = key.ok_or_else(|| err("privateKey=FILE.pem is required".into()))?;
        let cert = cert.unwrap_or_else(|| private_key.clone());
        Ok(TlsEndpoint {
            tcp,
            private_key,
            cert,
        })
    }

    /// Loads the key and certificates into a `rustls` server configuration.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
        server_config(&self.private_key, &self.cert)
    }
}

/// Why a TLS server configuration could not be made from its files.
#[derive(Debug)]
pub enum ServerTlsError {
    /// The certificate file could not be loaded.
    Certificates(PemFileError),
    /// The key file holds no usable private key.
    Key {
        /// The key file.
        path: PathBuf,
        /// What the PEM reader found.
        source: rustls::pki_types::pem::Error,
    },
    /// The key does not fit the certificate (or rustls refused either).
    Mismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// What rustls found.
        source: rustls::Error,
    },
    /// rustls refused the settings (a build without TLS 1.2 or 1.3).
    Setup(rustls::Error),
}

impl std::fmt::Display for ServerTlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerTlsError::Certificates(e) => e.fmt(f),
            ServerTlsError::Key { path, source } => match source {
                rustls::pki_types::pem::Error::NoItemsFound => write!(
                    f,
                    "{}: no usable private key (no PEM PRIVATE KEY block, as openssl req -keyout writes)",
                    path.display()
                ),
                other => write!(f, "{}: no usable private key ({other})", path.display()),
            },
            ServerTlsError::Mismatch { key, cert, source } => {
                write!(
                    f,
                    "the key {} does not fit the certificate {}: ",
                    key.display(),
                    cert.display()
                )?;
                match source {
                    rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => f
                        .write_str(
                            "its public key is not the certificate's; use the key made with that certificate",
                        ),
                    other => write!(f, "{other}"),
                }
            }
            ServerTlsError::Setup(e) => write!(f, "cannot set up TLS: {e}"),
        }
    }
}

impl std::error::Error for ServerTlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerTlsError::Certificates(e) => Some(e),
            ServerTlsError::Key { source, .. } => Some(source),
            ServerTlsError::Mismatch { source, .. } | ServerTlsError::Setup(source) => Some(source),
        }
    }
}

/// A `rustls` server configuration from PEM files.
pub fn server_config(
    key_file: &Path,
    cert_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
    let certs = load_pem_certs(cert_file).map_err(ServerTlsError::Certificates)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|source| ServerTlsError::Key {
        path: key_file.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ServerTlsError::Setup)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| ServerTlsError::Mismatch {
            key: key_file.to_path_buf(),
            cert: cert_file.to_path_buf(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// Wraps a factory so that its protocols speak through TLS.
pub struct TlsFactory {
    inner: Arc<dyn Factory>,
    config: Arc<rustls::ServerConfig>,
}

impl TlsFactory {
    /// `inner`'s protocols, over TLS with `config`.
    pub fn new(inner: Arc<dyn Factory>, config: Arc<rustls::ServerConfig>) -> Self {
        TlsFactory { inner, config }
    }
}

impl Factory for TlsFactory {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn build_protocol(&self, peer: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        let inner = self.inner.build_protocol(peer).map_err(|mut refusal| {
            refusal.message = None; // plaintext would be garbage to a TLS client
            refusal
        })?;
        let conn = rustls::ServerConnection::new(self.config.clone())
            .map_err(|e| Refusal::silent(format!("cannot start TLS: {e}")))?;
        Ok(Box::new(TlsProtocol::new(inner, conn)))
    }

    fn start_factory(&self) {
        self.inner.start_factory();
    }

    fn stop_factory(&self) {
        self.inner.stop_factory();
    }
}

/// Wakes the outer connection when the inner transport's inbox gets a
/// command, so its owner drains it.
#[derive(Default)]
struct ForwardLink {
    outer: Mutex<Option<ConnHandle>>,
}

impl ForwardLink {
    fn outer(&self) -> Option<ConnHandle> {
        self.outer.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl OwnerLink for ForwardLink {
    fn wake(&self) {
        if let Some(h) = self.outer() {
            let _ = h.call(|p: &mut TlsProtocol, t| p.pump(t));
        }
    }
    fn kill(&self) {
        if let Some(h) = self.outer() {
            h.abort_connection();
        }
    }
    fn close_by(&self, deadline: std::time::Instant) {
        if let Some(h) = self.outer() {
            h.close_within(deadline.saturating_duration_since(std::time::Instant::now()));
        }
    }
}

/// One TLS connection, either side: the `rustls` session and the wrapped
/// protocol with its own connection core. See the [module docs](self).
/// The server side is built by [`TlsFactory`]; the client side by the
/// client's connector, after the handshake (`client/dial.rs`).
///
/// `Send` by its types: the inner core, its transport and its timer
/// closures all are, so no promise about which thread runs it is needed.
pub struct TlsProtocol {
    conn: rustls::Connection,
    inner: Box<dyn Protocol>,
    /// The wrapped protocol's core; made in `connection_made`, from the
    /// outer transport's facts and inbox capacity (`--outbound-queue`).
    core: Option<Core>,
    link: Arc<ForwardLink>,
    /// The outer timer standing for the inner core's next deadline.
    timer: Option<(Instant, TimerId)>,
    /// The inner inbox is wired to wake the outer connection.
    forwarding: bool,
    /// A failed handshake was logged already (so the close is not).
    failure_logged: bool,
    /// The wrapped protocol closed while the handshake was still going on:
    /// close once it is done and its output sent.
    close_after_handshake: bool,
}

impl TlsProtocol {
    fn new(inner: Box<dyn Protocol>, conn: rustls::ServerConnection) -> Self {
        Self::wrap(inner, rustls::Connection::Server(conn))
    }

    /// The client side: `inner` speaks through `conn`, whose handshake is
    /// done. Plaintext that came with the handshake is delivered right
    /// after `connection_made`; a TLS failure ends the connection with
    /// `Reason::Lost("TLS: ...")`, in words a user can act on.
    ///
    /// The wrapped protocol's core is made at once, from `info` and
    /// `capacity` (the client's outbound queue), so that the handle the
    /// client's caller gets ([`TlsProtocol::inner_handle`]) reaches the
    /// wrapped protocol itself before `connection_made`.
    pub(crate) fn client(
        inner: Box<dyn Protocol>,
        conn: rustls::ClientConnection,
        info: ConnInfo,
        capacity: usize,
    ) -> Self {
        let mut wrapper = Self::wrap(inner, rustls::Connection::Client(conn));
        wrapper.make_core(info, capacity);
        wrapper
    }

    /// A handle on the wrapped protocol (its closures run on it, not on
    /// this wrapper), once its core exists.
    pub(crate) fn inner_handle(&mut self) -> Option<ConnHandle> {
        self.core.as_mut().map(|c| c.transport_mut().handle())
    }

    fn make_core(&mut self, info: ConnInfo, capacity: usize) {
        let mut inner_t = Transport::new(info, capacity);
        inner_t.set_link(self.link.clone());
        self.core = Some(Core::new(
            inner_t,
            Arc::new(Control::default()),
            None,
            Instant::now(),
        ));
    }

    fn wrap(inner: Box<dyn Protocol>, conn: rustls::Connection) -> Self {
        TlsProtocol {
            conn,
            inner,
            core: None,
            link: Arc::new(ForwardLink::default()),
            timer: None,
            forwarding: false,
            failure_logged: false,
            close_after_handshake: false,
        }
    }

    /// Says close_notify, sends what is left and closes.
    fn close_tls(&mut self, t: &mut Transport) {
        self.conn.send_close_notify();
        self.flush_tls(t);
        t.lose_connection();
    }

    /// Sends what TLS has to send through the outer transport.
    fn flush_tls(&mut self, t: &mut Transport) {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if !out.is_empty() {
            t.write(&out);
        }
    }

    /// After every event of the inner core: encrypt its output, follow its
    /// verdict, wire up its inbox and timers.
    fn settle(&mut self, verdict: Result<(), End>, t: &mut Transport) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        if !self.forwarding && core.inbox().is_some() {
            self.forwarding = true;
            *self.link.outer.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.handle());
            // Commands queued before the forwarding existed.
            let _ = t.handle().call(|p: &mut TlsProtocol, t| p.pump(t));
        }
        let out = core.output();
        if !out.is_empty() {
            let written = self.conn.writer().write_all(out);
            out.clear();
            if let Err(e) = written {
                log::warn!("TLS cannot take more output ({e}); closing");
                t.abort_connection();
                return;
            }
        }
        match verdict {
            Ok(()) => {}
            Err(End {
                reason: Reason::Panicked(msg),
                ..
            }) => {
                // The wrapped protocol panicked: so did this callback, as
                // far as the outer connection is concerned.
                std::panic::panic_any(msg);
            }
            Err(end) if end.abort => {
                t.abort_connection();
                return;
            }
            Err(_) if self.conn.is_handshaking() => {
                // Its output is buffered until the handshake completes.
                if !self.close_after_handshake {
                    self.close_after_handshake = true;
                    t.call_later(HANDSHAKE_CLOSE_WAIT, |_: &mut TlsProtocol, t| {
                        t.lose_connection()
                    });
                }
                self.flush_tls(t);
                return;
            }
            Err(_) => {
                self.close_tls(t);
                return;
            }
        }
        let next = core.next_deadline();
        self.flush_tls(t);
        if let Some(deadline) = next
            && self.timer.is_none_or(|(at, _)| deadline < at)
        {
            if let Some((_, id)) = self.timer.take() {
                t.cancel_timer(id);
            }
            let delay = deadline.saturating_duration_since(Instant::now());
            let id = t.call_later(delay, |p: &mut TlsProtocol, t| p.fire_timers(t));
            self.timer = Some((deadline, id));
        }
    }

    fn fire_timers(&mut self, t: &mut Transport) {
        self.timer = None;
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let verdict = core.due(&mut *self.inner, Instant::now());
        self.settle(verdict, t);
    }

    /// Runs the wrapped protocol's queued inbox commands on this owner.
    fn pump(&mut self, t: &mut Transport) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        if t.is_disconnecting() {
            return;
        }
        let verdict = core.commands(&mut *self.inner, None, MAX_PUMP);
        let more = core.has_commands();
        self.settle(verdict, t);
        if more && !t.is_disconnecting() {
            // More waiting: come back after the owner's other work.
            let _ = t.handle().call(|p: &mut TlsProtocol, t| p.pump(t));
        }
    }
}

impl Protocol for TlsProtocol {
    fn connection_made(&mut self, t: &mut Transport) {
        if self.core.is_none() {
            self.make_core(t.info().clone(), t.inbox_capacity());
        }
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let verdict = core.made(&mut *self.inner);
        self.settle(verdict, t);
        if self.is_client() && !t.is_disconnecting() {
            // The handshake may have brought application data along.
            self.deliver(t);
        }
    }

    fn data_received(&mut self, mut data: &[u8], t: &mut Transport) {
        while !data.is_empty() && !t.is_disconnecting() {
            if let Err(e) = self.conn.read_tls(&mut data) {
                if self.is_client() {
                    t.abort_connection_because(Reason::Lost(format!("TLS: {e}")));
                    return;
                }
                log::info!("TLS with {} failed: {e}; closing", t.info().peer);
                t.abort_connection();
                return;
            }
            self.deliver(t);
        }
    }

    fn connection_lost(&mut self, reason: &Reason) {
        // A client that refuses the certificate may just hang up (or its
        // alert may not arrive): still one line naming the peer. Not when
        // the wrapped protocol closed first (QOTD closes at once).
        if !self.is_client()
            && self.conn.is_handshaking()
            && !self.failure_logged
            && self
                .core
                .as_mut()
                .is_none_or(|c| c.transport_mut().closing() == Closing::No)
            && matches!(reason, Reason::Done | Reason::Lost(_))
        {
            self.failure_logged = true;
            let peer = self
                .core
                .as_mut()
                .map(|c| c.transport_mut().info().peer.to_string())
                .unwrap_or_else(|| "a client".to_string());
            log::info!(
                "TLS handshake with {peer} failed: {}",
                crate::tls_failure::SERVER_HANDSHAKE_CUT
            );
        }
        if let Some(core) = self.core.as_mut() {
            core.lost(&mut *self.inner, reason);
        }
    }

    fn log_prefix(&self) -> &'static str {
        self.inner.log_prefix()
    }
}

impl TlsProtocol {
    fn is_client(&self) -> bool {
        matches!(self.conn, rustls::Connection::Client(_))
    }

    /// Processes the records read so far and hands their plaintext to the
    /// wrapped protocol, stopping as soon as the connection closes.
    fn deliver(&mut self, t: &mut Transport) {
        if let Err(e) = self.conn.process_new_packets() {
            if self.is_client() {
                self.flush_tls(t); // the alert tells the server why
                let why = format!("TLS: {}", crate::client::tls::describe(&e));
                t.lose_connection_because(Reason::Lost(why));
                return;
            }
            log::info!(
                "TLS {}with {} failed: {}",
                if self.conn.is_handshaking() {
                    "handshake "
                } else {
                    ""
                },
                t.info().peer,
                crate::tls_failure::server_failure(&e)
            );
            self.failure_logged = true;
            self.flush_tls(t); // the alert tells the client why
            t.lose_connection();
            return;
        }
        if self.close_after_handshake {
            if !self.conn.is_handshaking() {
                self.close_tls(t);
            } else {
                self.flush_tls(t);
            }
            return;
        }
        let mut plain = vec![0u8; 16 * 1024];
        loop {
            if t.is_disconnecting() {
                return;
            }
            match std::io::Read::read(&mut self.conn.reader(), &mut plain) {
                Ok(0) => {
                    // close_notify: the client is done.
                    self.conn.send_close_notify();
                    self.flush_tls(t);
                    t.lose_connection();
                    return;
                }
                Ok(n) => {
                    let Some(core) = self.core.as_mut() else {
                        return;
                    };
                    let verdict = core.received(&mut *self.inner, &plain[..n], Instant::now());
                    self.settle(verdict, t);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if self.is_client() => {
                    t.abort_connection_because(Reason::Lost(format!("TLS: {e}")));
                    return;
                }
                Err(e) => {
                    log::info!("TLS: {e}; closing");
                    t.abort_connection();
                    return;
                }
            }
        }
        self.flush_tls(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        let e = TlsEndpoint::parse("ssl:8443:privateKey=k.pem:certKey=c.pem").unwrap();
        assert_eq!(e.tcp, Endpoint::parse("tcp:8443").unwrap());
        assert_eq!(
            (e.private_key.to_str(), e.cert.to_str()),
            (Some("k.pem"), Some("c.pem"))
        );
        let e = TlsEndpoint::parse("tls:port=0:interface=127.0.0.1:privateKey=both.pem").unwrap();
        assert_eq!(e.tcp, Endpoint::parse("tcp:0:interface=127.0.0.1").unwrap());
        assert_eq!(e.cert, PathBuf::from("both.pem"));
        let e = TlsEndpoint::parse("ssl:443:privateKey=C\\:/k.pem").unwrap();
        assert_eq!(e.private_key, PathBuf::from("C:/k.pem"));
        for (bad, needle) in [
            ("ssl:443", "privateKey"),
            ("ssl:abc:privateKey=k", "port \"abc\""),
            ("ssl:1:privateKey=k:dhParameters=d", "not supported"),
            ("tcp:1", "not an ssl"),
        ] {
            let e = TlsEndpoint::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        assert!(
            TlsEndpoint::is_tls("ssl:1")
                && TlsEndpoint::is_tls("tls:1")
                && !TlsEndpoint::is_tls("tcp:1")
        );
    }

    /// TLS connections used the engine's default inbox size, whatever
    /// `--outbound-queue` said; the wrapped protocol's handles now get the
    /// connection's own capacity.
    #[test]
    fn the_wrapped_protocol_gets_the_connections_inbox_capacity() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use crate::transport::ConnInfo;

        struct TakesHandle(Arc<AtomicUsize>);
        impl Protocol for TakesHandle {
            fn connection_made(&mut self, t: &mut Transport) {
                self.0.store(t.handle().capacity(), Ordering::SeqCst);
            }
            fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
        }
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = std::env::temp_dir().join(format!("spindle-tls-queue-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let config = server_config(&key, &cert).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let seen = Arc::new(AtomicUsize::new(0));
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = TlsProtocol::new(Box::new(TakesHandle(seen.clone())), conn);
        let a = Addr::Tcp("127.0.0.1:1".parse().unwrap());
        let info = ConnInfo {
            peer: a.clone(),
            host: a,
            session: 0,
        };
        let mut outer = Transport::new(info, 7);
        tls.connection_made(&mut outer);
        assert_eq!(seen.load(Ordering::SeqCst), 7);
    }

    #[test]
    fn missing_files_are_clear_errors() {
        let e = server_config(
            Path::new("/nonexistent/k.pem"),
            Path::new("/nonexistent/c.pem"),
        )
        .unwrap_err();
        assert!(
            matches!(&e, ServerTlsError::Certificates(PemFileError::Unreadable { path, .. }) if path == Path::new("/nonexistent/c.pem")),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/c.pem: "),
            "{e}"
        );
    }
}
