//! A TLS failure as one sentence that says what is wrong and what to do,
//! for both sides: [`client_failure`] for what a client (`spindle get`,
//! `imap-subject`, `tls:` endpoints) saw of a server, and
//! [`server_failure`] for what the TLS server saw of a client.
//!
//! rustls' own `Display` of an error is terse and, for webpki's errors
//! such as `CaUsedAsEndEntity`, a Debug dump; every case here is
//! rendered in words instead, with the certificate's names and dates
//! where the error carries them.

use rustls::pki_types::UnixTime;
use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible};

/// The `openssl` command that makes a self-signed leaf certificate for
/// `host`, as the advice in the messages gives it.
fn leaf_recipe(host: &str) -> String {
    let san = if host.parse::<std::net::IpAddr>().is_ok() {
        format!("IP:{host}")
    } else {
        format!("DNS:{host}")
    };
    format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 365 \
         -subj /CN={host} -addext subjectAltName={san} -addext basicConstraints=critical,CA:FALSE"
    )
}

/// What went wrong with a TLS session, seen from a client.
pub fn client_failure(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(c) => server_certificate(c),
        Error::AlertReceived(alert) => format!(
            "the server ended the handshake with the alert {}; {}",
            alert_name(*alert),
            match alert {
                AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity =>
                    "it accepts none of the TLS versions and ciphers this client offers (TLS 1.2 and 1.3)",
                AlertDescription::ProtocolVersion =>
                    "it speaks only TLS versions this client does not (it offers TLS 1.2 and 1.3)",
                AlertDescription::UnrecognisedName =>
                    "it has no certificate for the host name asked for; connect by the name its certificate holds",
                AlertDescription::CertificateRequired | AlertDescription::AccessDenied =>
                    "it wants a client certificate, which this client does not send",
                AlertDescription::NoApplicationProtocol =>
                    "it speaks none of the application protocols (ALPN) this client asked for",
                _ => "its log should say why",
            }
        ),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the server does not speak TLS here (a plain-text port?); use its TLS port, or tcp: and http:// for plain text".into()
        }
        Error::InappropriateHandshakeMessage { .. } => {
            "the server sent a handshake message out of order; it is not a TLS server this client can talk to".into()
        }
        Error::PeerMisbehaved(_) => format!(
            "the server broke the TLS protocol ({}); it is not a TLS server this client can talk to",
            words_of(e)
        ),
        Error::PeerIncompatible(p) => format!(
            "the server and this client have no TLS settings in common ({}); this client speaks TLS 1.2 and 1.3 with modern ciphers",
            incompatibility(p)
        ),
        Error::NoCertificatesPresented => {
            "the server sent no certificate; it must be configured with one".into()
        }
        Error::DecryptError => "the handshake did not decrypt (the server's key does not fit its certificate, or the data was corrupted on the way)".into(),
        Error::PeerSentOversizedRecord => {
            "the server sent a TLS record over the size limit; it is not a TLS server this client can talk to".into()
        }
        Error::UnsupportedNameType => {
            "the server name is not a host name or an address TLS can check; connect by a DNS name or an IP address".into()
        }
        _ => this_side(e),
    }
}

/// Failures of this side's own TLS machinery, the same for both sides.
fn this_side(e: &Error) -> String {
    match e {
        Error::FailedToGetCurrentTime => {
            "this machine's clock cannot be read, and certificates' dates need it; check the system time".into()
        }
        Error::FailedToGetRandomBytes => {
            "this machine gave no random bytes (getrandom failed), which TLS needs; check /dev/urandom".into()
        }
        Error::EncryptError => "encrypting failed; the session is unusable, try again".into(),
        Error::HandshakeNotComplete => {
            "data was sent before the TLS handshake completed, which TLS forbids".into()
        }
        Error::BadMaxFragmentSize => {
            "the maximum TLS fragment size is set outside 32..=16389 bytes".into()
        }
        Error::InconsistentKeys(_) => {
            "the private key is not the certificate's; use the key made with that certificate".into()
        }
        Error::General(why) => format!("TLS failed: {why}"),
        Error::Other(other) => format!("TLS failed: {other}"),
        // Any variant added later (and the revocation-list and ECH ones,
        // which Spindle does not configure): the words of its name.
        _ => {
            let outer = words(&format!("{e:?}"));
            match words_of(e) {
                inner if inner != outer => format!("TLS failed ({outer}: {inner})"),
                _ => format!("TLS failed ({outer})"),
            }
        }
    }
}

/// The server's handshake signature does not verify with the key of the
/// certificate it sent: it holds another key than its certificate's.
/// Raised by Spindle's verifier in place of rustls' `BadSignature`, which
/// also stands for a certificate whose issuer's signature fails.
#[derive(Debug)]
pub struct HandshakeSignatureMismatch;

impl std::fmt::Display for HandshakeSignatureMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the handshake signature does not verify with the certificate's key")
    }
}

impl std::error::Error for HandshakeSignatureMismatch {}

/// The server's words for a client that closed the connection before the
/// handshake finished, without saying why.
pub const SERVER_HANDSHAKE_CUT: &str = "the client closed the connection before the handshake finished (it may have refused this server's certificate); the client's own error says why";

/// What went wrong with a TLS session, seen from the server: usually the
/// client's refusal, sent as an alert.
pub fn server_failure(e: &Error) -> String {
    match e {
        Error::AlertReceived(alert) => {
            let advice = match alert {
                AlertDescription::UnknownCA => {
                    "the client does not trust this server's certificate; give the client the certificate (curl --cacert cert.pem, openssl s_client -CAfile cert.pem, spindle get --ca-file cert.pem) or use one from an authority it trusts"
                }
                AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate => {
                    "the client refused this server's certificate (its name, its CA flag or its usage); the client's own error says which"
                }
                AlertDescription::CertificateExpired => {
                    "the client says this server's certificate has expired or is not yet valid; renew it, or check the clocks"
                }
                AlertDescription::CertificateRevoked => {
                    "the client says this server's certificate is revoked; replace it"
                }
                AlertDescription::DecryptError => {
                    "the client could not verify this server's handshake signature; check that the key fits the certificate"
                }
                AlertDescription::ProtocolVersion
                | AlertDescription::HandshakeFailure
                | AlertDescription::InsufficientSecurity => {
                    "the client accepts none of this server's TLS versions and ciphers (TLS 1.2 and 1.3); it needs a newer TLS library"
                }
                AlertDescription::UserCanceled | AlertDescription::CloseNotify => {
                    "the client gave up the handshake"
                }
                _ => "the client's own error says why",
            };
            format!(
                "the client ended the handshake with the alert {}: {advice}",
                alert_name(*alert)
            )
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the client does not speak TLS (plain text sent to a TLS port?); it should connect with https:// or a TLS client".into()
        }
        Error::PeerIncompatible(p) => format!(
            "the client and this server have no TLS settings in common ({}); the client needs TLS 1.2 or 1.3 with modern ciphers",
            incompatibility(p)
        ),
        Error::InappropriateHandshakeMessage { .. } => {
            "the client sent a handshake message out of order; it is not a TLS client this server can talk to".into()
        }
        Error::PeerMisbehaved(_) => format!(
            "the client broke the TLS protocol ({}); it is not a TLS client this server can talk to",
            words_of(e)
        ),
        Error::PeerSentOversizedRecord => {
            "the client sent a TLS record over the size limit; it is not a TLS client this server can talk to".into()
        }
        Error::NoApplicationProtocol => {
            "the client asked only for application protocols (ALPN) this server does not speak".into()
        }
        Error::DecryptError => {
            "the client's data did not decrypt (corrupted on the way, or not TLS)".into()
        }
        _ => this_side(e),
    }
}

/// A server certificate that failed the client's checks.
fn server_certificate(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "the server's certificate is issued by an authority this client does not trust; if it is self-signed, pass that certificate with --ca-file, else the issuing authority's certificate".into(),
        CertificateError::NotValidForNameContext { expected, presented } => {
            let host = expected.to_str();
            let names: Vec<String> = presented.iter().map(|n| readable_name(n)).collect();
            if names.is_empty() {
                format!(
                    "the server's certificate names no host (it has no subjectAltName), so it is not valid for {host}; make one that names it: {}",
                    leaf_recipe(&host)
                )
            } else {
                format!(
                    "the server's certificate is for {}, not for {host}; connect by that name, or make a certificate for {host}: {}",
                    names.join(", "),
                    leaf_recipe(&host)
                )
            }
        }
        CertificateError::NotValidForName => "the server's certificate is not for this host name; connect by the name the certificate holds".into(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the server's certificate expired at {} (it is now {}); the server needs a renewed certificate, or this machine's clock is wrong",
            date(*not_after),
            date(*time)
        ),
        CertificateError::Expired => "the server's certificate has expired; the server needs a renewed certificate, or this machine's clock is wrong".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "the server's certificate is not valid before {} (it is now {}); check this machine's clock and that of the machine that made the certificate",
            date(*not_before),
            date(*time)
        ),
        CertificateError::NotValidYet => "the server's certificate is not valid yet; check this machine's clock".into(),
        CertificateError::Revoked => "the server's certificate has been revoked by its authority; the server needs a new one".into(),
        CertificateError::BadSignature => "the server's certificate's signature does not verify against its issuer (another authority of the same name?); pass the right authority with --ca-file".into(),
        CertificateError::BadEncoding => "the server's certificate is not valid DER; the server must send a well-formed X.509 certificate".into(),
        CertificateError::UnhandledCriticalExtension => "the server's certificate has a critical extension this client does not understand; reissue it without that extension".into(),
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => "the server's certificate is signed with an algorithm this client does not accept (SHA-1 or MD5?); reissue it with SHA-256 (openssl -sha256)".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => "the server's certificate is not meant for TLS servers (its extendedKeyUsage lacks serverAuth); reissue it with -addext extendedKeyUsage=serverAuth".into(),
        CertificateError::ApplicationVerificationFailure => "the server's certificate was refused by this client's own checks".into(),
        CertificateError::Other(other) => {
            if let Some(w) = other.0.downcast_ref::<webpki::Error>() {
                webpki_failure(w)
            } else if other.0.is::<HandshakeSignatureMismatch>() {
                "the server's handshake signature does not verify with its certificate's key; the server's key file does not belong to the certificate it sends (or someone in between holds only the certificate)".into()
            } else {
                format!("the server's certificate was refused: {other}")
            }
        }
        // UnknownRevocationStatus, ExpiredRevocationList, InvalidOcspResponse
        // and any later variant: the words of its name.
        other => format!(
            "the server's certificate was refused ({}); this client checks no revocation lists, so its certificate setup is unusual",
            words(&format!("{other:?}"))
        ),
    }
}

/// webpki's refusals that rustls passes on as `CertificateError::Other`.
fn webpki_failure(e: &webpki::Error) -> String {
    use webpki::Error as W;
    match e {
        W::CaUsedAsEndEntity => format!(
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as openssl req -x509 makes by default), not a server one; pin that exact certificate with --ca-file, or give the server a leaf certificate: {}",
            leaf_recipe("HOST")
        ),
        W::EndEntityUsedAsCa => "the server's certificate chain has a leaf certificate where an issuing authority should be; the server must send its own certificate first, then its authority's".into(),
        W::PathLenConstraintViolated | W::NameConstraintViolation => "the server's certificate chain breaks a constraint of its authority (path length or permitted names); the authority may not issue this certificate".into(),
        W::MaximumPathDepthExceeded
        | W::MaximumSignatureChecksExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::MaximumNameConstraintComparisonsExceeded => "the server's certificate chain is too long or too complex to check; the server should send a shorter chain".into(),
        W::UnsupportedCertVersion => "the server's certificate is not an X.509 version 3 certificate; reissue it (openssl req -x509 makes version 3)".into(),
        W::CertDistrusted => "the server's certificate is issued by an authority this client distrusts; the server needs a certificate from another authority".into(),
        other => format!(
            "the server's certificate was refused ({}); check how it was made",
            words(&format!("{other:?}"))
        ),
    }
}

/// Which TLS settings the peers lack in common, in words.
fn incompatibility(p: &PeerIncompatible) -> String {
    match p {
        PeerIncompatible::NoCipherSuitesInCommon => "no cipher suite".into(),
        PeerIncompatible::NoKxGroupsInCommon => "no key exchange group".into(),
        PeerIncompatible::NoSignatureSchemesInCommon => "no signature scheme".into(),
        PeerIncompatible::ServerDoesNotSupportTls12Or13
        | PeerIncompatible::Tls12NotOffered
        | PeerIncompatible::Tls12NotOfferedOrEnabled
        | PeerIncompatible::SupportedVersionsExtensionRequired => {
            "no TLS version: one side offers only versions older than TLS 1.2".into()
        }
        other => words(&format!("{other:?}")),
    }
}

/// The RFC name of an alert (`unknown_ca`).
fn alert_name(alert: AlertDescription) -> String {
    match alert {
        AlertDescription::UnknownCA => "unknown_ca".into(),
        AlertDescription::UnknownPSKIdentity => "unknown_psk_identity".into(),
        AlertDescription::Unknown(n) => format!("number {n}"),
        other => words(&format!("{other:?}")).replace(' ', "_"),
    }
}

/// The words of an enum variant's name: `CaUsedAsEndEntity` gives
/// "ca used as end entity". Only the name is read; any fields are not.
fn words(variant: &str) -> String {
    let name: &str = variant
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or(variant);
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let prev_lower =
            i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
        if i > 0 && c.is_ascii_uppercase() && (prev_lower || next_lower) {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The words of the innermost variant of a rustls error
/// (`PeerMisbehaved(SelectedUnofferedCipherSuite)`: "selected unoffered
/// cipher suite").
fn words_of(e: &Error) -> String {
    let debug = format!("{e:?}");
    let innermost = debug
        .split(['(', ')', '{', '}', ' ', ','])
        .filter(|part| part.starts_with(|c: char| c.is_ascii_uppercase()))
        .nth(1)
        .unwrap_or(debug.as_str());
    words(innermost)
}

/// webpki's `DnsName("localhost")` / `IpAddress(127.0.0.1)` as plain
/// names; anything else (our `CN=...`) as it is.
fn readable_name(presented: &str) -> String {
    for prefix in ["DnsName(\"", "UniformResourceIdentifier(\""] {
        if let Some(rest) = presented.strip_prefix(prefix) {
            return rest.trim_end_matches("\")").to_string();
        }
    }
    if let Some(rest) = presented.strip_prefix("IpAddress(") {
        return rest.trim_end_matches(')').to_string();
    }
    presented.to_string()
}

/// A certificate date, in UTC.
fn date(t: UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{} seconds after 1970", t.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn one_sentence(s: &str) {
        assert_eq!(s.lines().count(), 1, "{s}");
        assert!(!s.contains("Other(") && !s.contains("Error("), "{s}");
    }

    #[test]
    fn client_certificate_failures_say_what_to_do() {
        let cases: Vec<(CertificateError, &[&str])> = vec![
            (
                CertificateError::UnknownIssuer,
                &["does not trust", "--ca-file"],
            ),
            (
                CertificateError::NotValidForNameContext {
                    expected: rustls::pki_types::ServerName::try_from("example.org").unwrap(),
                    presented: vec![
                        "DnsName(\"localhost\")".into(),
                        "IpAddress(127.0.0.1)".into(),
                    ],
                },
                &[
                    "is for localhost, 127.0.0.1, not for example.org",
                    "subjectAltName=DNS:example.org",
                ],
            ),
            (
                CertificateError::NotValidForNameContext {
                    expected: rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                    presented: vec![],
                },
                &["names no host", "subjectAltName=IP:127.0.0.1"],
            ),
            (
                CertificateError::ExpiredContext {
                    time: at(1_800_000_000),
                    not_after: at(1_700_000_000),
                },
                &[
                    "expired at 2023-11-14 22:13:20 UTC",
                    "it is now 2027-01-15 08:00:00 UTC",
                    "renewed",
                ],
            ),
            (
                CertificateError::NotValidYetContext {
                    time: at(1_700_000_000),
                    not_before: at(1_800_000_000),
                },
                &["not valid before 2027-01-15 08:00:00 UTC", "clock"],
            ),
            (
                CertificateError::Other(rustls::OtherError(Arc::new(
                    webpki::Error::CaUsedAsEndEntity,
                ))),
                &["is a CA certificate", "CA:FALSE", "--ca-file"],
            ),
            (
                CertificateError::Other(rustls::OtherError(Arc::new(
                    webpki::Error::MalformedDnsIdentifier,
                ))),
                &["refused (malformed dns identifier)"],
            ),
            (CertificateError::BadSignature, &["does not verify"]),
            (CertificateError::InvalidPurpose, &["serverAuth"]),
            (
                CertificateError::UnknownRevocationStatus,
                &["(unknown revocation status)"],
            ),
        ];
        for (error, needles) in cases {
            let text = client_failure(&Error::InvalidCertificate(error));
            one_sentence(&text);
            for needle in needles {
                assert!(text.contains(needle), "{needle:?} in {text}");
            }
        }
    }

    #[test]
    fn protocol_failures_on_both_sides() {
        let plain = Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(client_failure(&plain).contains("does not speak TLS"));
        assert!(server_failure(&plain).contains("does not speak TLS"));
        let alert = Error::AlertReceived(AlertDescription::UnknownCA);
        let s = server_failure(&alert);
        one_sentence(&s);
        assert!(
            s.starts_with("the client ended the handshake with the alert unknown_ca: "),
            "{s}"
        );
        assert!(s.contains("curl --cacert cert.pem"), "{s}");
        let s = server_failure(&Error::AlertReceived(AlertDescription::BadCertificate));
        assert!(s.contains("alert bad_certificate"), "{s}");
        let s = client_failure(&Error::AlertReceived(AlertDescription::HandshakeFailure));
        assert!(s.contains("alert handshake_failure"), "{s}");
        let s = server_failure(&Error::PeerIncompatible(
            PeerIncompatible::NoCipherSuitesInCommon,
        ));
        assert!(s.contains("(no cipher suite)"), "{s}");
        let s = client_failure(&Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SelectedUnofferedCipherSuite,
        ));
        one_sentence(&s);
        assert!(s.contains("(selected unoffered cipher suite)"), "{s}");
        let s = server_failure(&Error::AlertReceived(AlertDescription::Unknown(200)));
        assert!(s.contains("alert number 200"), "{s}");
    }

    #[test]
    fn this_sides_own_failures_and_later_variants_are_words_too() {
        for e in [
            Error::FailedToGetCurrentTime,
            Error::HandshakeNotComplete,
            Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch),
        ] {
            let (c, s) = (client_failure(&e), server_failure(&e));
            assert_eq!(c, s);
            one_sentence(&c);
            assert!(!c.contains("TLS failed ("), "{c}");
        }
        let crl = Error::InvalidCertRevocationList(rustls::CertRevocationListError::BadSignature);
        assert_eq!(
            client_failure(&crl),
            "TLS failed (invalid cert revocation list: bad signature)",
        );
    }

    #[test]
    fn variant_names_become_words() {
        assert_eq!(words("CaUsedAsEndEntity"), "ca used as end entity");
        assert_eq!(words("UnknownCA"), "unknown ca");
        assert_eq!(words("Tls12NotOffered"), "tls12 not offered");
        assert_eq!(words("TrailingData(Foo)"), "trailing data");
    }
}
