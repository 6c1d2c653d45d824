//! Client endpoint strings, as Twisted's `clientFromString` reads them.
//!
//! | string | meaning |
//! |---|---|
//! | `tcp:example.com:80` | TCP to a host name or address and a port |
//! | `tcp:host=example.com:port=80:timeout=10` | keywords, any order |
//! | `unix:/run/app.sock` (`unix:path=/run/app.sock:timeout=5`) | a Unix socket |
//! | `tls:example.com:993` (`tls:host=H:port=P:timeout=S`) | TLS over TCP; the certificate must name the host |
//!
//! `timeout` is the connect timeout in seconds (Twisted's default, 30).
//! Positional arguments come first; `\:` is a literal colon inside a value
//! (`tcp:\:\:1:80` for IPv6). `ssl:` is accepted as an alias of `tls:`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::endpoint::{EndpointError, Fields, escape};

/// The connect timeout when an endpoint names none (Twisted's default).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a client connects.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEndpoint {
    /// Plain TCP.
    Tcp {
        /// A host name or an IP address.
        host: String,
        /// The port.
        port: u16,
        /// How long resolving and connecting may take.
        timeout: Duration,
    },
    /// A Unix domain socket.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// How long connecting may take.
        timeout: Duration,
    },
    /// TLS over TCP, the server's certificate checked against `host`.
    Tls {
        /// A host name or an IP address; the certificate must name it.
        host: String,
        /// The port.
        port: u16,
        /// How long resolving, connecting and the TLS handshake may take.
        timeout: Duration,
    },
}

impl ClientEndpoint {
    /// Parses a client endpoint string. See the [module docs](self).
    pub fn parse(s: &str) -> Result<ClientEndpoint, EndpointError> {
        let err = |problem: String| EndpointError {
            input: s.to_string(),
            problem,
        };
        let fields = Fields::parse(s).map_err(err)?;
        let Fields {
            kind,
            positional,
            keywords,
        } = &fields;
        let kind = kind.as_str();
        let parse_timeout = |v: &str| match v.parse::<f64>() {
            Ok(t) if t.is_finite() && t > 0.0 && t < 1e9 => Ok(Duration::from_secs_f64(t)),
            _ => Err(err(format!(
                "timeout {v:?} is not a positive number of seconds"
            ))),
        };
        match kind {
            "tcp" | "tls" | "ssl" => {
                let parse_port = |v: &str| match v.parse::<u16>() {
                    Ok(p) if p > 0 => Ok(p),
                    _ => Err(err(format!("port {v:?} is not a number from 1 to 65535"))),
                };
                let (mut host, mut port) = (None, None);
                match positional.as_slice() {
                    [] => {}
                    [h] => host = Some(h.clone()),
                    [h, p] => {
                        host = Some(h.clone());
                        port = Some(parse_port(p)?);
                    }
                    [_, _, extra, ..] => {
                        return Err(err(format!("unexpected argument {extra:?} after the port")));
                    }
                }
                let mut timeout = DEFAULT_CONNECT_TIMEOUT;
                for (k, v) in keywords {
                    match k.as_str() {
                        "host" => host = Some(v.clone()),
                        "port" => port = Some(parse_port(v)?),
                        "timeout" => timeout = parse_timeout(v)?,
                        other => {
                            return Err(err(format!(
                                "unknown option {other:?} for {kind} (known: host, port, timeout)"
                            )));
                        }
                    }
                }
                let host = host.filter(|h| !h.is_empty()).ok_or_else(|| {
                    err(format!("{kind} needs a host, e.g. {kind}:example.com:80"))
                })?;
                let port =
                    port.ok_or_else(|| err(format!("{kind} needs a port, e.g. {kind}:{host}:80")))?;
                Ok(if kind == "tcp" {
                    ClientEndpoint::Tcp {
                        host,
                        port,
                        timeout,
                    }
                } else {
                    ClientEndpoint::Tls {
                        host,
                        port,
                        timeout,
                    }
                })
            }
            "unix" => {
                let mut path = None;
                match positional.as_slice() {
                    [] => {}
                    [p] => path = Some(p.clone()),
                    [_, extra, ..] => {
                        return Err(err(format!("unexpected argument {extra:?} after the path")));
                    }
                }
                let mut timeout = DEFAULT_CONNECT_TIMEOUT;
                for (k, v) in keywords {
                    match k.as_str() {
                        "path" | "address" => path = Some(v.clone()),
                        "timeout" => timeout = parse_timeout(v)?,
                        "lockfile" | "checkPID" => {}
                        other => {
                            return Err(err(format!(
                                "unknown option {other:?} for unix (known: path, timeout)"
                            )));
                        }
                    }
                }
                let path = path
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| err("unix needs a path, e.g. unix:/tmp/spindle.sock".into()))?;
                Ok(ClientEndpoint::Unix {
                    path: PathBuf::from(path),
                    timeout,
                })
            }
            "" if fields.is_bare() => Err(err("empty endpoint".into())),
            other => Err(err(format!(
                "unknown client endpoint type {other:?} (known: tcp, tls, unix)"
            ))),
        }
    }

    /// How long connecting (and a TLS handshake) may take.
    pub fn timeout(&self) -> Duration {
        match self {
            ClientEndpoint::Tcp { timeout, .. }
            | ClientEndpoint::Unix { timeout, .. }
            | ClientEndpoint::Tls { timeout, .. } => *timeout,
        }
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, host, port, timeout) = match self {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout,
            } => ("tcp", host, port, timeout),
            ClientEndpoint::Tls {
                host,
                port,
                timeout,
            } => ("tls", host, port, timeout),
            ClientEndpoint::Unix { path, timeout } => {
                write!(f, "unix:{}", escape(&path.display().to_string()))?;
                if *timeout != DEFAULT_CONNECT_TIMEOUT {
                    write!(f, ":timeout={}", timeout.as_secs_f64())?;
                }
                return Ok(());
            }
        };
        write!(f, "{kind}:{}:{port}", escape(host))?;
        if *timeout != DEFAULT_CONNECT_TIMEOUT {
            write!(f, ":timeout={}", timeout.as_secs_f64())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16, secs: u64) -> ClientEndpoint {
        ClientEndpoint::Tcp {
            host: host.into(),
            port,
            timeout: Duration::from_secs(secs),
        }
    }

    #[test]
    fn tcp_forms() {
        assert_eq!(
            ClientEndpoint::parse("tcp:localhost:80").unwrap(),
            tcp("localhost", 80, 30)
        );
        assert_eq!(
            ClientEndpoint::parse("tcp:host=127.0.0.1:port=8080:timeout=5").unwrap(),
            tcp("127.0.0.1", 8080, 5)
        );
        assert_eq!(
            ClientEndpoint::parse("tcp:example.com:port=443").unwrap(),
            tcp("example.com", 443, 30)
        );
        assert_eq!(
            ClientEndpoint::parse("tcp:\\:\\:1:80").unwrap(),
            tcp("::1", 80, 30)
        );
        assert_eq!(
            ClientEndpoint::parse("tcp:h:1:timeout=0.5")
                .unwrap()
                .timeout(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn tls_and_unix_forms() {
        assert_eq!(
            ClientEndpoint::parse("tls:imap.example.com:993").unwrap(),
            ClientEndpoint::Tls {
                host: "imap.example.com".into(),
                port: 993,
                timeout: DEFAULT_CONNECT_TIMEOUT
            }
        );
        assert_eq!(
            ClientEndpoint::parse("ssl:host=h:port=993:timeout=3").unwrap(),
            ClientEndpoint::Tls {
                host: "h".into(),
                port: 993,
                timeout: Duration::from_secs(3)
            }
        );
        assert_eq!(
            ClientEndpoint::parse("unix:/tmp/a.sock").unwrap(),
            ClientEndpoint::Unix {
                path: "/tmp/a.sock".into(),
                timeout: DEFAULT_CONNECT_TIMEOUT
            }
        );
        assert_eq!(
            ClientEndpoint::parse("unix:path=/tmp/b.sock:timeout=2").unwrap(),
            ClientEndpoint::Unix {
                path: "/tmp/b.sock".into(),
                timeout: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("tcp:localhost", "needs a port"),
            ("tcp:80", "needs a port"),
            ("tcp:h:0", "port \"0\""),
            ("tcp:h:http", "port \"http\""),
            ("tcp:h:70000", "port \"70000\""),
            ("tcp::80", "needs a host"),
            ("tcp:h:1:2", "unexpected argument \"2\""),
            ("tcp:h:1:timeout=-1", "timeout \"-1\""),
            ("tcp:h:1:timeout=abc", "timeout \"abc\""),
            ("tcp:h:1:colour=red", "unknown option \"colour\""),
            ("tcp:port=1:h", "positional argument \"h\" after keyword"),
            ("tls:h", "needs a port"),
            ("unix:", "needs a path"),
            ("udp:h:53", "unknown client endpoint type \"udp\""),
            ("localhost:80", "unknown client endpoint type \"localhost\""),
            ("", "empty endpoint"),
        ];
        for (input, needle) in cases {
            let e = ClientEndpoint::parse(input).unwrap_err().to_string();
            assert!(
                e.contains(needle),
                "{input:?} gave {e:?}, wanted {needle:?}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "tcp:localhost:80",
            "tls:example.com:993:timeout=2.5",
            "unix:/tmp/a.sock",
            "tcp:\\:\\:1:80",
        ] {
            let parsed = ClientEndpoint::parse(s).unwrap();
            assert_eq!(parsed.to_string(), s);
            assert_eq!(ClientEndpoint::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }
}
