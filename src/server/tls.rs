//! The server's TLS configuration, built once at start from PEM files:
//! TLS 1.2 and 1.3 with rustls's default cipher suites (ring provider), and
//! with a client CA, mutual TLS: only clients presenting a certificate
//! signed by that CA get in. Every problem with a file (missing,
//! unreadable, not PEM, expired, key not matching) stops the start with an
//! error naming the file.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::config::TlsFiles;
use super::error::ServerError;
use super::validity::{format_time, validity};
use crate::pem;

pub(super) type TlsConfig = Arc<ServerConfig>;

/// Builds the configuration every connection's handshake uses.
pub(super) fn server_config(files: &TlsFiles) -> Result<TlsConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates("certificate", &files.cert)?;
    let key = private_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| problem("certificate", &files.cert, e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates("client CA", path)? {
                roots.add(certificate).map_err(|e| {
                    problem("client CA", path, format!("not a CA certificate: {e}"))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| problem("client CA", path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => problem(
            "key",
            &files.key,
            format!("does not match the certificate in {}", files.cert.display()),
        ),
        other => problem("key", &files.key, format!("unusable: {other}")),
    })?;
    Ok(Arc::new(config))
}

fn problem(what: &'static str, path: &Path, problem: String) -> ServerError {
    ServerError::Tls {
        what,
        path: path.to_owned(),
        problem,
    }
}

/// Every certificate of a PEM file, each checked to be valid now.
fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certificates = pem::certificates(path).map_err(|e| problem(what, path, e))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for certificate in &certificates {
        let Some(validity) = validity(certificate) else {
            return Err(problem(
                what,
                path,
                "holds a certificate that is not X.509".into(),
            ));
        };
        if now > validity.not_after {
            return Err(problem(
                what,
                path,
                format!("certificate expired on {}", format_time(validity.not_after)),
            ));
        }
        if now < validity.not_before {
            return Err(problem(
                what,
                path,
                format!(
                    "certificate is not valid before {}",
                    format_time(validity.not_before)
                ),
            ));
        }
    }
    Ok(certificates)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    pem::private_key(path).map_err(|e| problem("key", path, e))
}
