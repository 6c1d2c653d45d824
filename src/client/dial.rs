//! Opening a client connection: resolve, connect, TLS handshake — each
//! within what is left of the endpoint's timeout.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use super::endpoint::ClientEndpoint;
use super::factory::ConnectError;
use super::tls;
use crate::engine::Stream;

/// Writes tried to send what TLS still holds (its alert) after a failed
/// handshake.
const MAX_ALERT_WRITES: usize = 8;

/// An open connection, and its TLS session if any.
pub(crate) struct Opened {
    pub stream: Stream,
    pub tls: Option<Box<rustls::ClientConnection>>,
}

/// Opens `endpoint`. `cancel` is checked between steps.
pub(crate) fn open(
    endpoint: &ClientEndpoint,
    tls_config: Option<&Arc<rustls::ClientConfig>>,
    cancel: &AtomicBool,
) -> Result<Opened, ConnectError> {
    let deadline = Instant::now() + endpoint.timeout();
    let cancelled = || {
        if cancel.load(Ordering::SeqCst) {
            Err(ConnectError::Cancelled)
        } else {
            Ok(())
        }
    };
    match endpoint {
        ClientEndpoint::Unix { path, timeout } => {
            let s = connect_unix(path, *timeout)?;
            cancelled()?;
            Ok(Opened {
                stream: Stream::Unix(s),
                tls: None,
            })
        }
        ClientEndpoint::Tcp {
            host,
            port,
            timeout,
        } => {
            let s = connect_tcp(host, *port, *timeout, deadline)?;
            cancelled()?;
            Ok(Opened {
                stream: Stream::Tcp(s),
                tls: None,
            })
        }
        ClientEndpoint::Tls {
            host,
            port,
            timeout,
        } => {
            let tls_err = |reason: String| ConnectError::Tls {
                host: host.clone(),
                reason,
            };
            let config = match tls_config {
                Some(c) => c.clone(),
                None => tls::client_config(None, false).map_err(|e| tls_err(e.to_string()))?,
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|_| tls_err(format!("{host:?} is not a valid server name")))?;
            let s = connect_tcp(host, *port, *timeout, deadline)?;
            cancelled()?;
            let mut stream = Stream::Tcp(s);
            let conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| tls_err(tls::describe(&e)))?;
            let mut conn = Box::new(conn);
            handshake(&mut stream, &mut conn, host, *timeout, deadline)?;
            cancelled()?;
            Ok(Opened {
                stream,
                tls: Some(conn),
            })
        }
    }
}

/// Connects to a Unix socket within `timeout`: a listener whose backlog is
/// full would otherwise block `connect` for as long as it stays full.
fn connect_unix(path: &std::path::Path, timeout: Duration) -> Result<UnixStream, ConnectError> {
    let failed = |e: io::Error| {
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            ConnectError::TimedOut {
                step: "connecting",
                after: timeout,
            }
        } else {
            ConnectError::Connect {
                addr: format!("unix:{}", path.display()),
                reason: e.to_string(),
                kind: e.kind(),
            }
        }
    };
    let socket =
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).map_err(failed)?;
    let addr = socket2::SockAddr::unix(path).map_err(failed)?;
    // Linux bounds a blocking Unix connect by the send timeout (a
    // non-blocking one just fails at once when the backlog is full).
    socket.set_write_timeout(Some(timeout)).map_err(failed)?;
    socket.connect(&addr).map_err(failed)?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}

/// Resolves `host` on a helper thread, so that a stuck resolver costs the
/// caller no more than the timeout.
fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let name = host.to_string();
    thread::Builder::new()
        .name("spindle-resolve".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            let _ = tx.send(result);
        })
        .map_err(|e| ConnectError::Other(format!("cannot start a resolver thread: {e}")))?;
    match rx.recv_deadline(deadline) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(ConnectError::Resolve {
            host: host.to_string(),
            reason: "no addresses".into(),
        }),
        Ok(Err(e)) => Err(ConnectError::Resolve {
            host: host.to_string(),
            reason: e.to_string(),
        }),
        Err(_) => Err(ConnectError::TimedOut {
            step: "resolving",
            after: timeout,
        }),
    }
}

fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
    deadline: Instant,
) -> Result<TcpStream, ConnectError> {
    let addrs = resolve(host, port, timeout, deadline)?;
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = Some(ConnectError::TimedOut {
                    step: "connecting",
                    after: timeout,
                })
            }
            Err(e) => {
                last = Some(ConnectError::Connect {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                    kind: e.kind(),
                })
            }
        }
    }
    Err(last.unwrap_or(ConnectError::TimedOut {
        step: "connecting",
        after: timeout,
    }))
}

/// Runs the TLS handshake to completion, blocking, bounded by `deadline`.
fn handshake(
    stream: &mut Stream,
    conn: &mut rustls::ClientConnection,
    host: &str,
    timeout: Duration,
    deadline: Instant,
) -> Result<(), ConnectError> {
    let timed_out = ConnectError::TimedOut {
        step: "the TLS handshake",
        after: timeout,
    };
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out);
        }
        let set = stream
            .set_read_timeout(Some(left))
            .and_then(|()| stream.set_write_timeout(Some(left)));
        if let Err(e) = set {
            return Err(ConnectError::Other(format!(
                "cannot set socket timeouts: {e}"
            )));
        }
        match conn.complete_io(stream) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err(ConnectError::Tls {
                    host: host.to_string(),
                    reason: "the server closed the connection during the handshake".into(),
                });
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out);
            }
            Err(e) => {
                let reason = match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    Some(tls_error) => {
                        // complete_io writes once, which sends only the first
                        // queued record: send the rest, so the alert saying
                        // why reaches the server (bounded; the socket's write
                        // timeout bounds each write).
                        for _ in 0..MAX_ALERT_WRITES {
                            if !conn.wants_write() || conn.write_tls(stream).is_err() {
                                break;
                            }
                        }
                        tls::describe(tls_error)
                    }
                    None if e.kind() == io::ErrorKind::UnexpectedEof => {
                        "the server closed the connection during the handshake".into()
                    }
                    None => e.to_string(),
                };
                return Err(ConnectError::Tls {
                    host: host.to_string(),
                    reason,
                });
            }
        }
    }
    let _ = stream.set_read_timeout(None);
    Ok(())
}
