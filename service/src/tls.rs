//! TLS with rustls and ring: to the broker (trust the county's CA, and present this client's
//! certificate where the broker asks for one), and for the center's HTTP API (its certificate).
//! Agents and the center build their TLS here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The PEM files of a TLS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the broker's certificate.
    pub ca: PathBuf,
    /// This client's certificate and key (PKCS#8 or SEC1), if the broker requires one.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Why the TLS set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("{path}: {message}")]
    File {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the combination.
    #[error("TLS: {0}")]
    Config(#[from] rustls::Error),
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::File { path: path.to_owned(), message };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// Checks that a server's certificate and key files hold what a TLS listener needs.
pub fn check_server_files(cert: &Path, key: &Path) -> Result<(), TlsError> {
    certs(cert)?;
    PrivateKeyDer::from_pem_file(key).map(drop).map_err(|e| TlsError::File {
        path: key.to_owned(),
        message: format!("no usable private key: {e}"),
    })
}

/// The rustls server configuration of an HTTPS listener with `cert` (chain) and `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        path: key.to_owned(),
        message: format!("no usable private key: {e}"),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs(cert)?, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The rustls client configuration for `files`.
pub fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(&files.ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::File { path: files.ca.clone(), message: e.to_string() })?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match &files.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
                path: key.clone(),
                message: format!("no usable private key: {e}"),
            })?;
            builder.with_client_auth_cert(certs(cert)?, key_der)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let err =
            client_config(&TlsFiles { ca: ca.clone(), client: None }).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: ", ca.display())), "{err}");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let err =
            client_config(&TlsFiles { ca: ca.clone(), client: None }).unwrap_err().to_string();
        assert_eq!(err, format!("{}: no PEM certificate in the file", ca.display()));
    }
}
