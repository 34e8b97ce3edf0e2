//! TLS for the gateway: a certificate chain and its key from PEM files,
//! turned into a rustls server configuration (ring provider, HTTP/1.1).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::ring;
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no PEM certificate (-----BEGIN CERTIFICATE-----) in {}", .0.display())]
    NoCertificate(PathBuf),
    #[error("bad PEM certificate in {}: {source}", path.display())]
    BadCertificate { path: PathBuf, source: pem::Error },
    #[error("no PEM private key (PKCS#8, PKCS#1 or SEC1) in {}", .0.display())]
    NoKey(PathBuf),
    #[error("bad PEM private key in {}: {source}", path.display())]
    BadKey { path: PathBuf, source: pem::Error },
    #[error("the certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// What the gateway needs to speak TLS; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tls(pub(crate) Arc<ServerConfig>);

impl Tls {
    /// Reads the certificate chain (leaf first) from `cert` and its private
    /// key from `key`, both PEM, and checks that they belong together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::BadCertificate {
                path: cert.to_owned(),
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert.to_owned()));
        }
        let key_der = match PrivateKeyDer::from_pem_slice(&read(key)?) {
            Ok(k) => k,
            Err(pem::Error::NoItemsFound) => return Err(TlsError::NoKey(key.to_owned())),
            Err(source) => {
                return Err(TlsError::BadKey {
                    path: key.to_owned(),
                    source,
                })
            }
        };
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)?;
        // HTTP/1.1 only: the WebSocket upgrade and the Host check (HTTP/2
        // has no Host header) are HTTP/1.1 things.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(Arc::new(config)))
    }
}

/// How long a new connection has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts TCP connections and serves each over TLS in a task of its own,
/// so that a peer slow to finish its handshake holds up nobody else.
pub(crate) async fn serve(listener: tokio::net::TcpListener, app: Router, tls: Tls) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.0);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!("web gateway: accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                // Plain HTTP to this port ends here too, with nothing served.
                Ok(Err(e)) => {
                    tracing::info!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                    return;
                }
            };
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh self-signed certificate and its key, as PEM.
    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn files(name: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("zerocast-web-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    #[test]
    fn a_matching_certificate_and_key_load() {
        let (cert, key) = self_signed();
        let (c, k) = files("good", &cert, &key);
        let tls = Tls::from_pem_files(&c, &k).unwrap();
        assert_eq!(tls.0.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn each_wrong_file_is_named_in_its_error() {
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let (c, k) = files("missing", &cert, &key);
        let missing = c.with_file_name("absent.pem");
        assert!(matches!(
            Tls::from_pem_files(&missing, &k),
            Err(TlsError::Read { path, .. }) if path == missing
        ));
        // Cert and key given the wrong way round.
        assert!(matches!(
            Tls::from_pem_files(&k, &c),
            Err(TlsError::NoCertificate(path)) if path == k
        ));
        let (c, k) = files("no-key", &cert, &cert);
        assert!(matches!(
            Tls::from_pem_files(&c, &k),
            Err(TlsError::NoKey(path)) if path == k
        ));
        let (c, k) = files(
            "bad-key",
            &cert,
            "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        );
        assert!(matches!(
            Tls::from_pem_files(&c, &k),
            Err(TlsError::BadKey { .. })
        ));
        let (c, k) = files("other-key", &cert, &other_key);
        assert!(matches!(
            Tls::from_pem_files(&c, &k),
            Err(TlsError::Config(_))
        ));
    }
}
