//! Server endpoint strings, as Twisted's `serverFromString` reads them, and
//! the listening sockets they bind.
//!
//! | string | meaning |
//! |---|---|
//! | `tcp:1234` | TCP port 1234 on every IPv4 interface |
//! | `tcp:0` | any free port (the bound port is logged) |
//! | `tcp:port=1234:interface=127.0.0.1:backlog=50` | keywords, any order |
//! | `tcp6:1234:interface=::1` | IPv6 |
//! | `unix:/path/to.sock` (`:mode=660`, `:backlog=50`) | a Unix socket |
//!
//! Positional arguments come first; `\:` is a literal colon inside a value.
//! A bare `1234` is refused, as Twisted refuses it: say `tcp:1234`.
//!
//! The listen backlog (`backlog=N`) defaults to [`DEFAULT_TCP_BACKLOG`]
//! (1024) for `tcp:`/`tcp6:` (and so `ssl:`), *not* Twisted's 50: a load
//! generator's ramp of thousands of connects a second overflows 50, and
//! each overflowed client waits out a 1 s SYN retransmit. The kernel caps
//! any backlog at `net.core.somaxconn`. `unix:` keeps Twisted's 50
//! ([`DEFAULT_BACKLOG`]): a full Unix backlog makes a connect wait for room
//! (or fail at once if non-blocking), with no retransmit stall.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use socket2::{Domain, Socket, Type};

use crate::protocol::Addr;

pub(crate) mod fields;
pub(crate) use fields::{Fields, escape};

/// The listen backlog of a `unix:` endpoint that names none (Twisted's
/// default for every endpoint).
pub const DEFAULT_BACKLOG: i32 = 50;

/// The listen backlog of a `tcp:`/`tcp6:` endpoint that names none. Above
/// Twisted's 50 so that connection ramps do not overflow it (see the
/// [module docs](self)); the kernel caps it at `net.core.somaxconn`.
pub const DEFAULT_TCP_BACKLOG: i32 = 1024;

/// The file mode of a Unix socket when an endpoint names none.
pub const DEFAULT_UNIX_MODE: u32 = 0o666;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP port on one interface.
    Tcp {
        /// The port; 0 picks a free one.
        port: u16,
        /// The local address to bind (`0.0.0.0`: every IPv4 interface).
        interface: IpAddr,
        /// The listen backlog.
        backlog: i32,
    },
    /// A Unix domain socket.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The listen backlog.
        backlog: i32,
    },
}

/// A malformed endpoint string, with the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointError {
    /// The whole string as given.
    pub input: String,
    /// What is wrong with it, naming the bad part.
    pub problem: String,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad endpoint {:?}: {}", self.input, self.problem)
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    /// Parses a server endpoint string. See the [module docs](self).
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        Fields::parse(s)
            .and_then(|fields| Endpoint::from_fields(&fields))
            .map_err(|problem| EndpointError {
                input: s.to_string(),
                problem,
            })
    }

    /// The endpoint that tokenized `fields` name; the error says what is
    /// wrong with them.
    pub(crate) fn from_fields(fields: &Fields) -> Result<Endpoint, String> {
        let Fields {
            kind,
            positional,
            keywords,
        } = fields;
        let kind = kind.as_str();
        let backlog_of = |v: &str| -> Result<i32, String> {
            match v.parse::<i32>() {
                Ok(b) if b > 0 => Ok(b),
                _ => Err(format!("backlog {v:?} is not a positive number")),
            }
        };
        match kind {
            "tcp" | "tcp6" => {
                let v6 = kind == "tcp6";
                let mut port = None;
                let mut interface: IpAddr = if v6 {
                    Ipv6Addr::UNSPECIFIED.into()
                } else {
                    Ipv4Addr::UNSPECIFIED.into()
                };
                let mut backlog = DEFAULT_TCP_BACKLOG;
                let parse_port = |v: &str| {
                    v.parse::<u16>()
                        .map_err(|_| format!("port {v:?} is not a number from 0 to 65535"))
                };
                match positional.as_slice() {
                    [] => {}
                    [p] => port = Some(parse_port(p)?),
                    [_, extra, ..] => {
                        return Err(format!("unexpected argument {extra:?} after the port"));
                    }
                }
                for (k, v) in keywords {
                    match k.as_str() {
                        "port" => port = Some(parse_port(v)?),
                        "interface" if v.is_empty() => {}
                        "interface" => {
                            interface = v
                                .parse()
                                .map_err(|_| format!("interface {v:?} is not an IP address"))?;
                        }
                        "backlog" => backlog = backlog_of(v)?,
                        other => {
                            return Err(format!(
                                "unknown option {other:?} for {kind} (known: port, interface, backlog)"
                            ));
                        }
                    }
                }
                let port = port.ok_or_else(|| format!("{kind} needs a port, e.g. {kind}:1234"))?;
                Ok(Endpoint::Tcp {
                    port,
                    interface,
                    backlog,
                })
            }
            "unix" => {
                let mut path = None;
                let mut mode = DEFAULT_UNIX_MODE;
                let mut backlog = DEFAULT_BACKLOG;
                match positional.as_slice() {
                    [] => {}
                    [p] => path = Some(p.clone()),
                    [_, extra, ..] => {
                        return Err(format!("unexpected argument {extra:?} after the path"));
                    }
                }
                for (k, v) in keywords {
                    match k.as_str() {
                        "address" | "path" => path = Some(v.clone()),
                        "mode" => {
                            mode = u32::from_str_radix(v, 8)
                                .ok()
                                .filter(|m| *m <= 0o777)
                                .ok_or_else(|| format!("mode {v:?} is not octal like 660"))?;
                        }
                        "backlog" => backlog = backlog_of(v)?,
                        "lockfile" => {}
                        other => {
                            return Err(format!(
                                "unknown option {other:?} for unix (known: mode, backlog, lockfile)"
                            ));
                        }
                    }
                }
                let path = path
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| "unix needs a path, e.g. unix:/tmp/spindle.sock".to_string())?;
                Ok(Endpoint::Unix {
                    path: PathBuf::from(path),
                    mode,
                    backlog,
                })
            }
            "" if fields.is_bare() => Err("empty endpoint".to_string()),
            k if k.parse::<u16>().is_ok() && fields.is_bare() => {
                Err(format!("unknown endpoint type: a bare port; write tcp:{k}"))
            }
            other => Err(format!(
                "unknown endpoint type {other:?} (known: tcp, tcp6, unix)"
            )),
        }
    }

    /// A TCP endpoint on 127.0.0.1 and any free port, for tests.
    pub fn loopback_any_port() -> Endpoint {
        Endpoint::Tcp {
            port: 0,
            interface: Ipv4Addr::LOCALHOST.into(),
            backlog: DEFAULT_TCP_BACKLOG,
        }
    }

    /// Binds and listens. A Unix socket file left by a dead server is
    /// replaced; one a live server answers on is an "address in use" error.
    pub fn bind(&self) -> io::Result<Listener> {
        match self {
            Endpoint::Tcp {
                port,
                interface,
                backlog,
            } => {
                let addr = SocketAddr::new(*interface, *port);
                let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
                socket.set_reuse_address(true)?;
                if addr.is_ipv6() {
                    socket.set_only_v6(true)?;
                }
                socket.bind(&addr.into())?;
                socket.listen(*backlog)?;
                Ok(Listener::Tcp(socket.into()))
            }
            Endpoint::Unix {
                path,
                mode,
                backlog,
            } => {
                if let Ok(meta) = std::fs::symlink_metadata(path)
                    && meta.file_type().is_socket()
                {
                    match UnixStream::connect(path) {
                        Ok(_) => {
                            return Err(io::Error::new(
                                io::ErrorKind::AddrInUse,
                                format!("{} is in use by a running server", path.display()),
                            ));
                        }
                        Err(_) => std::fs::remove_file(path)?,
                    }
                }
                let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                socket.bind(&socket2::SockAddr::unix(path)?)?;
                socket.listen(*backlog)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))?;
                Ok(Listener::Unix(
                    UnixListener::from(OwnedSocket(socket)),
                    path.clone(),
                ))
            }
        }
    }
}

/// Converts a socket2 socket into a std Unix listener via its descriptor.
struct OwnedSocket(Socket);

impl From<OwnedSocket> for UnixListener {
    fn from(s: OwnedSocket) -> Self {
        UnixListener::from(std::os::fd::OwnedFd::from(s.0))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp {
                port,
                interface,
                backlog,
            } => {
                let kind = if interface.is_ipv6() { "tcp6" } else { "tcp" };
                write!(f, "{kind}:{port}")?;
                if !interface.is_unspecified() {
                    // Colons in an IPv6 address are escaped, so the text
                    // parses back.
                    write!(f, ":interface={}", escape(&interface.to_string()))?;
                }
                if *backlog != DEFAULT_TCP_BACKLOG {
                    write!(f, ":backlog={backlog}")?;
                }
                Ok(())
            }
            Endpoint::Unix { path, backlog, .. } => {
                // A colon in the path is escaped, so the text parses back.
                write!(f, "unix:{}", escape(&path.display().to_string()))?;
                if *backlog != DEFAULT_BACKLOG {
                    write!(f, ":backlog={backlog}")?;
                }
                Ok(())
            }
        }
    }
}

/// A bound, listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix listener and its socket file, removed when the listener is
    /// dropped.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// The address actually bound (the real port for `tcp:0`).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => Ok(Addr::Tcp(l.local_addr()?)),
            Listener::Unix(_, path) => Ok(Addr::Unix(path.clone())),
        }
    }

    /// Twisted's name for the port in log lines: `1234`, or the path.
    pub fn port_label(&self) -> String {
        match self.local_addr() {
            Ok(Addr::Tcp(a)) => a.port().to_string(),
            Ok(Addr::Unix(p)) => p.display().to_string(),
            Err(_) => "?".to_string(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(port: u16, interface: &str, backlog: i32) -> Endpoint {
        Endpoint::Tcp {
            port,
            interface: interface.parse().unwrap(),
            backlog,
        }
    }

    #[test]
    fn tcp_forms() {
        assert_eq!(
            Endpoint::parse("tcp:1234").unwrap(),
            tcp(1234, "0.0.0.0", 1024)
        );
        assert_eq!(Endpoint::parse("tcp:0").unwrap(), tcp(0, "0.0.0.0", 1024));
        assert_eq!(
            Endpoint::parse("tcp:port=1234:interface=127.0.0.1:backlog=7").unwrap(),
            tcp(1234, "127.0.0.1", 7)
        );
        assert_eq!(
            Endpoint::parse("tcp:80:interface=127.0.0.1").unwrap(),
            tcp(80, "127.0.0.1", 1024)
        );
        assert_eq!(
            Endpoint::parse("tcp6:80:interface=\\:\\:1").unwrap(),
            tcp(80, "::1", 1024)
        );
        assert_eq!(
            Endpoint::parse("tcp:80:backlog=50").unwrap(),
            tcp(80, "0.0.0.0", 50),
            "Twisted's default is still one option away"
        );
    }

    #[test]
    fn unix_forms() {
        assert_eq!(
            Endpoint::parse("unix:/tmp/x.sock:mode=660").unwrap(),
            Endpoint::Unix {
                path: "/tmp/x.sock".into(),
                mode: 0o660,
                backlog: 50
            }
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("1234", "write tcp:1234"),
            ("tcp:abc", "port \"abc\""),
            ("tcp:70000", "port \"70000\""),
            ("tcp:1:interface=nowhere", "interface \"nowhere\""),
            ("tcp:1:backlog=-3", "backlog \"-3\""),
            ("tcp:1:colour=red", "unknown option \"colour\""),
            ("tcp:", "port \"\""),
            ("tcp:interface=127.0.0.1", "needs a port"),
            ("udp:53", "unknown endpoint type \"udp\""),
            ("unix:", "needs a path"),
            ("unix:/x:mode=999", "mode \"999\""),
            ("", "empty endpoint"),
        ];
        for (input, needle) in cases {
            let e = Endpoint::parse(input).unwrap_err().to_string();
            assert!(
                e.contains(needle),
                "{input:?} gave {e:?}, wanted {needle:?}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "tcp:1234",
            "tcp:80:interface=127.0.0.1",
            "tcp:80:interface=127.0.0.1:backlog=50",
            "tcp6:80:interface=\\:\\:1:backlog=7",
            "unix:/tmp/a.sock",
            "unix:/tmp/a.sock:backlog=1024",
            "unix:/tmp/a\\:b.sock",
        ] {
            assert_eq!(Endpoint::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            Endpoint::parse("tcp:port=1:backlog=1024")
                .unwrap()
                .to_string(),
            "tcp:1"
        );
    }

    /// The backlog the kernel applied to a listening TCP socket: Linux
    /// reports it in `tcpi_sacked` of `TCP_INFO` on a listener.
    fn kernel_backlog(l: &Listener) -> u32 {
        use std::os::fd::AsRawFd;
        let Listener::Tcp(l) = l else {
            panic!("not TCP")
        };
        // SAFETY: getsockopt fills at most `len` bytes of a zeroed,
        // plain-data struct that lives across the call.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                l.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        info.tcpi_sacked
    }

    #[test]
    fn tcp_listeners_get_the_default_backlog_capped_by_somaxconn_or_the_one_named() {
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .expect("Linux: /proc/sys/net/core/somaxconn")
            .trim()
            .parse()
            .expect("a number");
        let default = Endpoint::parse("tcp:0:interface=127.0.0.1")
            .unwrap()
            .bind()
            .unwrap();
        assert_eq!(
            kernel_backlog(&default),
            (DEFAULT_TCP_BACKLOG as u32).min(somaxconn)
        );
        let named = Endpoint::parse("tcp:0:interface=127.0.0.1:backlog=7")
            .unwrap()
            .bind()
            .unwrap();
        assert_eq!(kernel_backlog(&named), 7);
        let loopback = Endpoint::loopback_any_port().bind().unwrap();
        assert_eq!(kernel_backlog(&loopback), kernel_backlog(&default));
    }

    #[test]
    fn tcp_zero_binds_a_real_port() {
        let l = Endpoint::loopback_any_port().bind().unwrap();
        assert_ne!(l.local_addr().unwrap().port(), Some(0));
    }

    #[test]
    fn unix_socket_file_is_replaced_when_stale_and_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("spindle-ep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let ep = Endpoint::Unix {
            path: path.clone(),
            mode: 0o600,
            backlog: 5,
        };
        let live = ep.bind().unwrap();
        let in_use = ep.bind().unwrap_err();
        assert_eq!(in_use.kind(), io::ErrorKind::AddrInUse);
        drop(live);
        assert!(!path.exists());
        // A stale file (its server gone, nobody listening) is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let again = ep.bind().expect("a stale socket file is replaced");
        assert_eq!(again.local_addr().unwrap(), Addr::Unix(path.clone()));
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
