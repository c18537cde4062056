//! TLS for the public listener: PEM files in, a rustls acceptor offering HTTP/2 and HTTP/1.1 by ALPN out.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use spillway_config::{ConfigError, TlsConfig};
use tokio_rustls::TlsAcceptor;

pub fn acceptor(tls: &TlsConfig, http2: bool) -> Result<TlsAcceptor, ConfigError> {
    let certs = read_certs(&tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| ConfigError::invalid("server.tls.key", format!("{}: {e}", tls.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid("server.tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::invalid("server.tls", format!("certificate and key do not work together: {e}")))?;
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let invalid = |reason: String| ConfigError::invalid("server.tls.cert", format!("{}: {reason}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no certificate found in the file".to_string()));
    }
    Ok(certs)
}
