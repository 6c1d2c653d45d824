//! TLS settings for `tls:` client endpoints and `https://`: which
//! certificates are trusted. The host name is always checked against the
//! certificate.
//!
//! Trusted are the system's certificate authorities and those in
//! `--ca-file`. A server certificate that *is* one of the certificates in
//! `--ca-file` (a self-signed one, as `openssl req -x509` makes) is pinned:
//! trusted as that exact certificate, with its name, its validity period
//! and the handshake signature still checked; see [`pinned`] for what is
//! and is not checked.
//!
//! rustls with the *ring* provider: pure Rust plus a little C and
//! assembly that `cc` builds, so no cmake (aws-lc-rs needs it).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub mod pinned;

/// Why the certificates of a PEM file could not be loaded.
#[derive(Debug)]
pub enum PemFileError {
    /// The file could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the PEM reader found.
        source: rustls::pki_types::pem::Error,
    },
    /// The file holds no `CERTIFICATE` block.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for PemFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemFileError::Unreadable { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            PemFileError::Malformed { path, source } => {
                write!(f, "{}: bad PEM: {source}", path.display())
            }
            PemFileError::NoCertificate { path } => write!(
                f,
                "{}: no certificate found (expected PEM with -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PemFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PemFileError::Unreadable { source, .. } => Some(source),
            PemFileError::Malformed { source, .. } => Some(source),
            PemFileError::NoCertificate { .. } => None,
        }
    }
}

/// Why a TLS client configuration could not be made.
#[derive(Debug)]
pub enum ClientTlsError {
    /// The `--ca-file` could not be loaded.
    CaFile(PemFileError),
    /// A certificate of the `--ca-file` cannot serve as an authority.
    NotACertificate {
        /// The file.
        path: PathBuf,
        /// Which certificate of the file, from 1.
        number: usize,
        /// What rustls found.
        source: rustls::Error,
    },
    /// No authority is trusted at all.
    NoAuthorities,
    /// rustls refused the settings (a build without TLS 1.2 or 1.3).
    Setup(rustls::Error),
    /// The verifier could not be built from the authorities.
    Verifier(rustls::client::VerifierBuilderError),
}

impl fmt::Display for ClientTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientTlsError::CaFile(e) => e.fmt(f),
            // rustls only says it could not parse it (BadEncoding).
            ClientTlsError::NotACertificate { path, number, .. } => write!(
                f,
                "{}: certificate {number} cannot be read as an X.509 certificate (damaged?); remove it or make it again",
                path.display(),
            ),
            ClientTlsError::NoAuthorities => f.write_str(
                "no trusted certificate authorities (none found on the system); pass --ca-file",
            ),
            ClientTlsError::Setup(e) => write!(f, "cannot set up TLS: {e}"),
            ClientTlsError::Verifier(e) => write!(f, "cannot set up certificate checks: {e}"),
        }
    }
}

impl std::error::Error for ClientTlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientTlsError::CaFile(e) => Some(e),
            ClientTlsError::NotACertificate { source, .. } => Some(source),
            ClientTlsError::NoAuthorities => None,
            ClientTlsError::Setup(e) => Some(e),
            ClientTlsError::Verifier(e) => Some(e),
        }
    }
}

impl From<PemFileError> for ClientTlsError {
    fn from(e: PemFileError) -> Self {
        ClientTlsError::CaFile(e)
    }
}

/// A `rustls` client configuration trusting the system's certificate
/// authorities (`rustls-native-certs`: the files under /etc/ssl), plus
/// those in `ca_file` (PEM) if given; with `only_ca_file` just those of
/// `ca_file`. A server certificate identical to one in `ca_file` is
/// trusted as pinned (see the [module docs](self)).
pub fn client_config(
    ca_file: Option<&Path>,
    only_ca_file: bool,
) -> Result<Arc<rustls::ClientConfig>, ClientTlsError> {
    let mut roots = RootCertStore::empty();
    if ca_file.is_none() || !only_ca_file {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            log::debug!("while loading the system's certificates: {e}");
        }
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        log::debug!("trusting {added} certificate authorities of the system");
    }
    let mut pins = Vec::new();
    if let Some(path) = ca_file {
        for (i, cert) in load_pem_certs(path)?.into_iter().enumerate() {
            pins.extend(pinned::Pin::new(&cert));
            roots
                .add(cert)
                .map_err(|source| ClientTlsError::NotACertificate {
                    path: path.to_path_buf(),
                    number: i + 1,
                    source,
                })?;
        }
    }
    if roots.is_empty() {
        return Err(ClientTlsError::NoAuthorities);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let authorities =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(ClientTlsError::Verifier)?;
    let verifier = pinned::PinnedOrCaVerifier::new(pins, authorities, algorithms);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientTlsError::Setup)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; an error if there are none.
pub fn load_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemFileError> {
    let data = std::fs::read(path).map_err(|source| PemFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|source| PemFileError::Malformed {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PemFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A TLS error seen by a client, as one sentence a user can act on
/// (see [`crate::tls_failure`]).
pub fn describe(e: &rustls::Error) -> String {
    crate::tls_failure::client_failure(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let e = client_config(Some(Path::new("/nonexistent/ca.pem")), true).unwrap_err();
        assert!(
            matches!(&e, ClientTlsError::CaFile(PemFileError::Unreadable { path, .. }) if path == Path::new("/nonexistent/ca.pem")),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/ca.pem: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
        let dir = std::env::temp_dir().join(format!("spindle-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty), true).unwrap_err();
        assert!(e.to_string().contains("no certificate found"), "{e}");
        // Valid PEM around bytes that are no certificate.
        let damaged = dir.join("damaged.pem");
        std::fs::write(
            &damaged,
            "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = client_config(Some(&damaged), true).unwrap_err();
        assert!(
            matches!(e, ClientTlsError::NotACertificate { number: 1, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{}: certificate 1 cannot be read as an X.509 certificate (damaged?); remove it or make it again",
                damaged.display()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
