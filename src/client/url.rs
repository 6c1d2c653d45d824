//! [`Url`]: the `http://` and `https://` URLs `get_page` fetches, and
//! resolving a redirect's `Location` against them.

use std::fmt;
use std::time::Duration;

use super::endpoint::ClientEndpoint;

/// A parsed `http` or `https` URL. The fragment is dropped (it never
/// goes on the wire); user info is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Whether the scheme is `https`.
    pub https: bool,
    /// The host: a name, an IPv4 address, or an IPv6 address without
    /// brackets.
    pub host: String,
    /// The port (80 or 443 unless given).
    pub port: u16,
    /// The path and query, starting with `/`.
    pub target: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad URL {:?}: {}", self.url, self.problem)
    }
}

impl std::error::Error for UrlError {}

impl Url {
    /// Parses an absolute `http://` or `https://` URL.
    pub fn parse(s: &str) -> Result<Url, UrlError> {
        let err = |problem: &str| UrlError {
            url: s.to_string(),
            problem: problem.to_string(),
        };
        if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(err("contains spaces or control characters"));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| err("not absolute: expected http://host/..."))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(err("only http and https are supported")),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split_at = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split_at);
        if authority.contains('@') {
            return Err(err("user names and passwords in URLs are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| err("unclosed [ in the host"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err("junk after the IPv6 address"))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = match port {
            None | Some("") => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(err("the port is not a number from 1 to 65535")),
            },
        };
        let target = if target.is_empty() {
            "/".to_string()
        } else if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_string()
        };
        Ok(Url {
            https,
            host: host.to_ascii_lowercase(),
            port,
            target,
        })
    }

    /// Resolves a `Location` header against this URL: absolute,
    /// scheme-relative (`//host/x`), absolute-path (`/x`) or relative (`x`).
    pub fn join(&self, location: &str) -> Result<Url, UrlError> {
        if location.contains("://") {
            return Url::parse(location);
        }
        let scheme = if self.https { "https" } else { "http" };
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let target = if location.starts_with('/') {
            location.to_string()
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Url::parse(&format!("{scheme}://{}{target}", self.authority()))
    }

    /// `host[:port]` as the `Host` header carries it (the port only when
    /// not the scheme's default).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The client endpoint to reach this URL's server.
    pub fn endpoint(&self, timeout: Duration) -> ClientEndpoint {
        let (host, port) = (self.host.clone(), self.port);
        if self.https {
            ClientEndpoint::Tls {
                host,
                port,
                timeout,
            }
        } else {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout,
            }
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let u = Url::parse("http://Example.com").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.target.as_str()),
            (false, "example.com", 80, "/")
        );
        let u = Url::parse("https://h:8443/a/b?x=1#frag").unwrap();
        assert_eq!(
            (u.https, u.port, u.target.as_str()),
            (true, 8443, "/a/b?x=1")
        );
        let u = Url::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert_eq!(u.to_string(), "http://[::1]:8080/x");
        assert_eq!(Url::parse("http://h?q").unwrap().target, "/?q");
        assert_eq!(
            Url::parse("https://h:443/").unwrap().to_string(),
            "https://h/"
        );
    }

    #[test]
    fn refuses_with_a_reason() {
        for (bad, needle) in [
            ("ftp://h/", "only http and https"),
            ("h/x", "not absolute"),
            ("http:///x", "no host"),
            ("http://h:0/", "port"),
            ("http://h:99999/", "port"),
            ("http://u:p@h/", "user names"),
            ("http://h/a b", "spaces"),
            ("http://[::1/", "unclosed"),
        ] {
            let e = Url::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn joins_locations() {
        let base = Url::parse("http://h:8080/a/b/c?q=1").unwrap();
        assert_eq!(base.join("/x").unwrap().to_string(), "http://h:8080/x");
        assert_eq!(base.join("d").unwrap().to_string(), "http://h:8080/a/b/d");
        assert_eq!(
            base.join("//other/y").unwrap().to_string(),
            "http://other/y"
        );
        assert_eq!(base.join("https://s/z").unwrap().to_string(), "https://s/z");
        assert_eq!(base.join("?p").unwrap().to_string(), "http://h:8080/a/b/?p");
    }
}
