//! Trusting a server's own certificate named in `--ca-file`, the way curl
//! and OpenSSL do, beside ordinary certificate-authority verification.
//!
//! `openssl req -x509` makes a self-signed certificate marked `CA:TRUE`.
//! webpki (rustls' verifier) refuses such a certificate as a server's
//! (`CaUsedAsEndEntity`) even when it is the trusted anchor itself. So a
//! server certificate that is byte for byte one of the certificates in
//! `--ca-file` is *pinned*: the user handed us that exact certificate.
//!
//! For a pinned certificate these are checked:
//! - it is exactly one of the certificates in the file (all its bytes);
//! - its validity period (`notBefore` .. `notAfter`) contains now;
//! - its name: the host must be one of its `subjectAltName` entries, or,
//!   when it has no `subjectAltName` at all, its subject's Common Name
//!   (as curl and OpenSSL still accept);
//! - the handshake signature, made with its key, so the server holds the
//!   private key.
//!
//! Not checked for a pinned certificate: who issued it and its signature
//! (trust comes from the exact match instead), `basicConstraints` (the
//! `CA:TRUE` that brought us here), key usage and extended key usage, and
//! revocation. Any other certificate, including one issued by a pinned CA
//! certificate, goes through rustls' ordinary verification unchanged.
//!
//! One refusal is renamed: a self-signed `CA:TRUE` certificate that is not
//! pinned fails in webpki as `CaUsedAsEndEntity` (it checks the CA flag
//! before looking for the issuer), but what is wrong is that nobody trusts
//! it, so it is reported as an unknown issuer, whose remedy is
//! `--ca-file`. A handshake signature that fails is reported as
//! [`HandshakeSignatureMismatch`](crate::tls_failure::HandshakeSignatureMismatch)
//! rather than rustls' `BadSignature`, which reads as the issuer's.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// What a pinned certificate's checks need, read once when it is loaded.
#[derive(Debug)]
pub(crate) struct Pin {
    der: CertificateDer<'static>,
    /// Seconds since the epoch; `notBefore` may precede 1970.
    not_before: i64,
    not_after: i64,
    has_subject_alt_name: bool,
    common_names: Vec<String>,
}

impl Pin {
    /// Reads the dates and names of `der`; `None` if x509-parser cannot
    /// read it (then it can only be trusted as an authority).
    pub(crate) fn new(der: &CertificateDer<'static>) -> Option<Pin> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let validity = cert.validity();
        Some(Pin {
            der: der.clone(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            has_subject_alt_name: matches!(cert.subject_alternative_name(), Ok(Some(_)) | Err(_)),
            common_names: cert
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string))
                .collect(),
        })
    }

    /// The checks listed in the [module docs](self), but the signature.
    fn check(&self, server_name: &ServerName<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if secs < self.not_before {
            return Err(CertificateError::NotValidYetContext {
                time: now,
                not_before: UnixTime::since_unix_epoch(epoch_secs(self.not_before)),
            }
            .into());
        }
        if secs > self.not_after {
            return Err(CertificateError::ExpiredContext {
                time: now,
                not_after: UnixTime::since_unix_epoch(epoch_secs(self.not_after)),
            }
            .into());
        }
        if self.has_subject_alt_name {
            let parsed = rustls::server::ParsedCertificate::try_from(&self.der)?;
            return rustls::client::verify_server_name(&parsed, server_name);
        }
        let matches = match server_name {
            ServerName::DnsName(host) => {
                let host = host.as_ref().trim_end_matches('.');
                self.common_names
                    .iter()
                    .any(|cn| cn.trim_end_matches('.').eq_ignore_ascii_case(host))
            }
            _ => false, // a Common Name names a host, never an address
        };
        if matches {
            Ok(())
        } else {
            Err(CertificateError::NotValidForNameContext {
                expected: server_name.to_owned(),
                presented: self
                    .common_names
                    .iter()
                    .map(|cn| format!("CN={cn}"))
                    .collect(),
            }
            .into())
        }
    }
}

/// webpki checks a certificate's CA flag before it looks for the issuer,
/// so an untrusted self-signed `CA:TRUE` certificate fails as "a CA used
/// as an end entity". What is really wrong is that nobody trusts it (it is
/// not pinned), and the user's remedy is `--ca-file`: say so, which also
/// sends the server the `unknown_ca` alert rather than `bad_certificate`.
fn self_signed_is_unknown(e: rustls::Error, end_entity: &CertificateDer<'_>) -> rustls::Error {
    let ca_as_leaf = matches!(
        &e,
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
    );
    let self_signed = || {
        x509_parser::parse_x509_certificate(end_entity.as_ref()).is_ok_and(|(_, c)| {
            c.issuer().as_raw() == c.subject().as_raw() && c.verify_signature(None).is_ok()
        })
    };
    if ca_as_leaf && self_signed() {
        CertificateError::UnknownIssuer.into()
    } else {
        e
    }
}

/// rustls says `BadSignature` for a handshake signature that fails, as
/// for a certificate's: name which it is.
fn name_signature_mismatch(e: rustls::Error) -> rustls::Error {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
            CertificateError::Other(rustls::OtherError(Arc::new(
                crate::tls_failure::HandshakeSignatureMismatch,
            )))
            .into()
        }
        other => other,
    }
}

fn epoch_secs(t: i64) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0))
}

/// Pinned certificates first, then ordinary verification against the
/// trusted authorities. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct PinnedOrCaVerifier {
    pins: Vec<Pin>,
    authorities: Arc<WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedOrCaVerifier {
    pub(crate) fn new(
        pins: Vec<Pin>,
        authorities: Arc<WebPkiServerVerifier>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        PinnedOrCaVerifier {
            pins,
            authorities,
            algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedOrCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = self
            .pins
            .iter()
            .find(|p| p.der.as_ref() == end_entity.as_ref())
        {
            pin.check(server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.authorities
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| self_signed_is_unknown(e, end_entity))
    }

    // The handshake signatures are checked with the end entity's key
    // whichever way it was trusted; rustls' functions never look at its
    // CA flag.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
            .map_err(name_signature_mismatch)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
            .map_err(name_signature_mismatch)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.authorities.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A self-signed CA:TRUE certificate for CN=localhost and no
    /// subjectAltName, valid from 2020 to 2030, as openssl req -x509 makes.
    fn cn_only() -> Pin {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pin::new(cert.der()).unwrap()
    }

    fn at(year_2020_plus: u64) -> UnixTime {
        // 2020-01-01T00:00:00Z plus whole 365-day years.
        UnixTime::since_unix_epoch(Duration::from_secs(
            1_577_836_800 + year_2020_plus * 365 * 86_400,
        ))
    }

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn a_common_name_only_certificate_matches_its_name_in_any_case() {
        let pin = cn_only();
        assert!(!pin.has_subject_alt_name);
        for host in ["localhost", "LocalHost", "localhost."] {
            pin.check(&name(host), at(1)).unwrap();
        }
        for host in ["other.test", "127.0.0.1", "sub.localhost"] {
            match pin.check(&name(host), at(1)) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForNameContext { presented, .. },
                )) => assert_eq!(presented, vec!["CN=localhost".to_string()]),
                other => panic!("{host}: {other:?}"),
            }
        }
    }

    #[test]
    fn its_validity_period_is_checked() {
        let pin = cn_only();
        let before = UnixTime::since_unix_epoch(Duration::from_secs(1_500_000_000));
        assert!(matches!(
            pin.check(&name("localhost"), before),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYetContext { not_before, .. }
            )) if not_before.as_secs() == 1_577_836_800
        ));
        assert!(matches!(
            pin.check(&name("localhost"), at(11)),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ExpiredContext { .. }
            ))
        ));
    }
}
