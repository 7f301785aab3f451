//! TLS on the API's own listener (`[api] tls_cert`, `tls_key`; issue 10): the certificate
//! chain and key read once at start, and the rustls server configuration built from them.
//!
//! rustls with the ring provider (pure Rust and assembly, no C toolchain or cmake as
//! aws-lc-rs needs; reqwest's rustls already uses it), TLS 1.2 and 1.3 only, and ALPN
//! `http/1.1` alone because the server speaks HTTP/1.1 only. The handshake itself runs in
//! [`crate::server`], inside a connection's slot and its header timeout.
//!
//! The files are read once: a renewed certificate takes a restart (there is no reload on
//! SIGHUP yet).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS settings the API serves with: the rustls configuration and where its certificate
/// came from (for logs and `config check`). Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ServerConfig>,
    cert: PathBuf,
    chain_len: usize,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("chain_len", &self.chain_len)
            .finish_non_exhaustive()
    }
}

/// Why the certificate or key cannot be used. Each names the file and the setting, so the
/// operator knows which to fix; all are configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read (missing, no permission).
    #[error("cannot read the {what} {} (api.{key}): {source}", path.display())]
    Unreadable {
        /// `certificate` or `private key`.
        what: &'static str,
        /// `tls_cert` or `tls_key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file holds no PEM block of the expected kind, or a broken one.
    #[error("the {what} {} (api.{key}) is not usable: {reason}", path.display())]
    Invalid {
        /// `certificate` or `private key`.
        what: &'static str,
        /// `tls_cert` or `tls_key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key
    /// type).
    #[error(
        "the certificate {} and the private key {} (api.tls_cert, api.tls_key) cannot be \
         used together: {source}",
        cert.display(),
        key.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
}

impl Tls {
    /// Reads a PEM certificate chain (the server's certificate first, then intermediates) and
    /// its PEM private key (PKCS#8, PKCS#1 or SEC1), and builds the server configuration.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let chain = read_chain(cert)?;
        let private_key = read_key(key)?;
        let chain_len = chain.len();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|source| TlsError::Mismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|source| TlsError::Mismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            cert: cert.to_owned(),
            chain_len,
        })
    }

    /// The certificate file this was loaded from.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// How many certificates the chain holds (the server's and its intermediates).
    pub fn chain_len(&self) -> usize {
        self.chain_len
    }

    /// The acceptor that runs the handshake on a connection.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

fn unreadable(what: &'static str, key: &'static str, path: &Path, source: io::Error) -> TlsError {
    TlsError::Unreadable {
        what,
        key,
        path: path.to_owned(),
        source,
    }
}

fn invalid(what: &'static str, key: &'static str, path: &Path, reason: String) -> TlsError {
    TlsError::Invalid {
        what,
        key,
        path: path.to_owned(),
        reason,
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const WHAT: &str = "certificate";
    let bytes = std::fs::read(path).map_err(|e| unreadable(WHAT, "tls_cert", path, e))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| invalid(WHAT, "tls_cert", path, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(
            WHAT,
            "tls_cert",
            path,
            "no `-----BEGIN CERTIFICATE-----` block in it (expected a PEM certificate chain, \
             the server's certificate first)"
                .to_owned(),
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "private key";
    let bytes = std::fs::read(path).map_err(|e| unreadable(WHAT, "tls_key", path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let reason = match e {
            pem::Error::NoItemsFound => "no private key block in it (expected a PEM \
                                         `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
                .to_owned(),
            other => format!("bad PEM: {other}"),
        };
        invalid(WHAT, "tls_key", path, reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_with_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("missing.pem");
        let err = Tls::load(&cert, &dir.path().join("key.pem")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&cert.display().to_string()), "{text}");
        assert!(text.contains("api.tls_cert"), "{text}");
    }

    #[test]
    fn a_file_without_a_certificate_is_refused_with_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let err = Tls::load(&cert, &dir.path().join("key.pem")).unwrap_err();
        assert!(matches!(err, TlsError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
    }
}
