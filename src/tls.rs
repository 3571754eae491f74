//! The HTTPS listener's certificate: read at start, read again at every config
//! reload, and handed to each TLS handshake — so a renewed certificate (or a
//! changed `tls.cert` / `tls.key` path) applies without a restart.
//!
//! A certificate that cannot be read or does not match its key stops the start
//! or the reload (the running certificate stays); a handshake never proceeds
//! without one.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::tls::TlsRef;
use pingora::tls::ext;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::x509::X509;

use crate::config::Tls;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{cert}: the certificate does not match the key in {key}")]
    Mismatch { cert: String, key: String },
    #[error("TLS settings: {0}")]
    Settings(String),
}

/// A certificate chain with its key.
struct CertKey {
    leaf: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
}

impl CertKey {
    fn load(tls: &Tls) -> Result<CertKey, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| TlsError::Read {
                path: p.display().to_string(),
                message: e.to_string(),
            })
        };
        let pem = read(&tls.cert)?;
        let mut certs = X509::stack_from_pem(&pem).map_err(|e| TlsError::Read {
            path: tls.cert.display().to_string(),
            message: format!("not a PEM certificate chain: {e}"),
        })?;
        if certs.is_empty() {
            return Err(TlsError::Read {
                path: tls.cert.display().to_string(),
                message: "no certificate in the file".into(),
            });
        }
        let leaf = certs.remove(0);
        let key = PKey::private_key_from_pem(&read(&tls.key)?).map_err(|e| TlsError::Read {
            path: tls.key.display().to_string(),
            message: format!("not a PEM private key: {e}"),
        })?;
        let matches = leaf
            .public_key()
            .map(|pk| pk.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(TlsError::Mismatch {
                cert: tls.cert.display().to_string(),
                key: tls.key.display().to_string(),
            });
        }
        Ok(CertKey {
            leaf,
            chain: certs,
            key,
        })
    }
}

/// A certificate read and checked (or none, without `tls:`).
#[derive(Clone, Default)]
pub struct Certificate(Option<Arc<CertKey>>);

impl Certificate {
    /// Read and check the files a config names.
    pub fn load(tls: Option<&Tls>) -> Result<Certificate, TlsError> {
        Ok(Certificate(
            tls.map(CertKey::load).transpose()?.map(Arc::new),
        ))
    }
}

/// Where each handshake gets the certificate to present: the live snapshot.
pub trait CertificateSource: Send + Sync + 'static {
    fn certificate(&self) -> Certificate;
}

/// Listener settings that ask `source` for the certificate at each handshake.
pub fn settings(source: Arc<dyn CertificateSource>) -> Result<TlsSettings, TlsError> {
    TlsSettings::with_callbacks(Box::new(Handshake(source)))
        .map_err(|e| TlsError::Settings(e.to_string()))
}

struct Handshake(Arc<dyn CertificateSource>);

#[async_trait]
impl TlsAccept for Handshake {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        // Without a certificate the handshake fails, which is what it should do.
        let Certificate(Some(ck)) = self.0.certificate() else {
            return;
        };
        if ext::ssl_use_certificate(ssl, &ck.leaf).is_err()
            || ext::ssl_use_private_key(ssl, &ck.key).is_err()
        {
            tracing::error!("could not hand the certificate to a TLS handshake");
            return;
        }
        for c in &ck.chain {
            if ext::ssl_add_chain_cert(ssl, c).is_err() {
                tracing::warn!("could not add an intermediate certificate to a TLS handshake");
            }
        }
    }
}
