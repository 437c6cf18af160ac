//! TLS on the gateway's own port: rustls (ring provider, no OpenSSL), the
//! certificate chain and key from PEM files, ALPN `h2` then `http/1.1`, and
//! a reload that swaps the certificate for new handshakes while every live
//! connection keeps the one it started with (the binary calls
//! [`Tls::reload`] on SIGHUP).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {message}")]
    Certificates { path: PathBuf, message: String },
    #[error("cannot read the private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("invalid TLS settings: {0}")]
    Config(#[from] rustls::Error),
}

/// The gateway's TLS settings; cheap to clone (clones share the certificate).
#[derive(Clone)]
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<CurrentCertificate>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the PEM chain (leaf first) and key.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Tls, TlsError> {
        let current = Arc::new(CurrentCertificate(ArcSwap::from_pointee(certified_key(
            cert_path, key_path,
        )?)));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again; new handshakes get the new certificate. On
    /// error the current one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = certified_key(&self.cert_path, &self.key_path)?;
        self.current.0.store(Arc::new(key));
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// The certificate every new handshake gets.
#[derive(Debug)]
struct CurrentCertificate(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

fn certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let certificates = |message: String| TlsError::Certificates {
        path: cert_path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| certificates(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificates(e.to_string()))?;
    if chain.is_empty() {
        return Err(certificates("no certificate in the file".into()));
    }
    let key_error = |message: String| TlsError::Key {
        path: key_path.to_owned(),
        message,
    };
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| key_error(e.to_string()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    // A key that does not belong to the leaf certificate is refused now,
    // not at the first handshake.
    certified
        .keys_match()
        .map_err(|e| key_error(format!("does not match the certificate: {e}")))?;
    Ok(certified)
}
