//! TLS settings for `tls:` client endpoints: which certificate authorities
//! are trusted. The host name is always checked against the certificate.
//!
//! rustls with the *ring* provider: pure Rust plus a little C and
//! assembly that `cc` builds, so no cmake (aws-lc-rs needs it).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A `rustls` client configuration trusting the system's certificate
/// authorities (`rustls-native-certs`: the files under /etc/ssl), plus
/// those in `ca_file` (PEM) if given. With a `ca_file` only its
/// authorities are trusted when `only_ca_file` is set.
pub fn client_config(
    ca_file: Option<&Path>,
    only_ca_file: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if ca_file.is_none() || !only_ca_file {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            log::debug!("while loading the system's certificates: {e}");
        }
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        log::debug!("trusting {added} certificate authorities of the system");
    }
    if let Some(path) = ca_file {
        let certs = load_pem_certs(path)?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted certificate authorities (none on the system; pass --ca-file)".into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; an error if there are none.
pub fn load_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate found (expected PEM)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A TLS error in words a user can act on.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "bad certificate: issued by an unknown authority (self-signed? pass --ca-file)".into()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "bad certificate: it does not name this host".into()
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "bad certificate: expired".into()
        }
        Error::InvalidCertificate(CertificateError::BadSignature) => {
            "bad certificate: its signature does not verify (issued by another authority of the same name?)".into()
        }
        Error::InvalidCertificate(other) => format!("bad certificate: {other:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let e = client_config(Some(Path::new("/nonexistent/ca.pem")), true).unwrap_err();
        assert!(e.contains("cannot read /nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("spindle-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty), true).unwrap_err();
        assert!(e.contains("no certificate found"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn describes_unknown_issuer() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(describe(&e).contains("unknown authority"));
    }
}
