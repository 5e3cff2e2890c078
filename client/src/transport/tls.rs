//! The rustls client configuration: ring as the crypto provider, Mozilla's
//! roots (optional) and the extra PEM roots of the configuration.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::config::ClientConfig;
use crate::error::ClientError;

/// Builds the TLS configuration `config` asks for.
pub(crate) fn client_config(
    config: &ClientConfig,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    // The process-wide provider may already be installed (by the
    // application or a server in the same process); either is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    if config.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for path in &config.root_pems {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ClientError::Config(format!("reading {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in certs {
            let cert =
                cert.map_err(|e| ClientError::Config(format!("parsing {}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| {
                ClientError::Config(format!("certificate in {}: {e}", path.display()))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientError::Config(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
    }
    if roots.is_empty() {
        return Err(ClientError::Config(
            "no trusted roots: enable webpki_roots or add a PEM file".into(),
        ));
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}
