//! Whom a client trusts and what it presents, built once per client from
//! PEM files: the system's trust store (or the CA file given), and a client
//! certificate for mutual TLS. Connections share the configuration, and
//! with it rustls's session cache, so a reconnect resumes the session.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::verifier::NamingSelfSigned;
use crate::client::error::ClientError;
use crate::pem;
use crate::protocol::ArgumentError;

/// A client's TLS configuration; clones share it.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub(super) config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusting the CA certificates in `ca` (else the system's), presenting
    /// the certificate chain in `cert` with the key in `key` (else in `cert`
    /// too) when given one.
    pub fn new(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let roots = match ca {
            Some(path) => Arc::new(ca_file(path)?),
            None => system_roots()?,
        };
        let provider = Arc::new(provider());
        let verifier = NamingSelfSigned::new(roots, Arc::clone(&provider))?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| setup_error(e.to_string(), e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let config = match (cert, key) {
            (None, None) => builder.with_no_client_auth(),
            (None, Some(_)) => {
                return Err(
                    ArgumentError::value("tls_key", "needs tls_cert, its certificate").into(),
                )
            }
            (Some(cert), key) => {
                let chain = certificates("tls_cert", cert)?;
                let key_path = key.unwrap_or(cert);
                let argument = if key.is_some() { "tls_key" } else { "tls_cert" };
                let private =
                    pem::private_key(key_path).map_err(|e| file_error(argument, key_path, e))?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|e| match e {
                        rustls::Error::InconsistentKeys(_) => file_error(
                            argument,
                            key_path,
                            format!("does not match the certificate in {}", cert.display()),
                        ),
                        other => file_error(argument, key_path, format!("unusable: {other}")),
                    })?
            }
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

/// ring's suites, AES-128-GCM first: as safe as AES-256 here and a third
/// fewer rounds per block, for put_many and large gets. The server follows
/// the client's order (rustls's and OpenSSL's default).
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// The system's trust store, read once per process (it does not change
/// under a running program often enough to read it per client).
fn system_roots() -> Result<Arc<RootCertStore>, ClientError> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(Arc::clone(roots));
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none was found".to_owned(), ToString::to_string);
        let what = format!(
            "the system's trust store holds no usable CA certificate ({why}); \
             pass the CA to trust as tls_ca"
        );
        return Err(setup_error(what.clone(), std::io::Error::other(what)));
    }
    Ok(Arc::clone(ROOTS.get_or_init(|| Arc::new(roots))))
}

fn ca_file(path: &Path) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates("tls_ca", path)? {
        roots
            .add(certificate)
            .map_err(|e| file_error("tls_ca", path, format!("not a CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn certificates(
    argument: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    pem::certificates(path).map_err(|e| file_error(argument, path, e))
}

/// A file the caller named cannot be used: bad input, a `ClientValueError`
/// naming the argument and the file.
fn file_error(argument: &'static str, path: &Path, problem: String) -> ClientError {
    ArgumentError::value(argument, format!("{}: {problem}", path.display())).into()
}

fn setup_error(
    what: String,
    source: impl std::error::Error + Send + Sync + 'static,
) -> ClientError {
    ClientError::Tls {
        address: None,
        what,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_comes_first_and_no_suite_is_lost() {
        let ours = provider();
        let default = rustls::crypto::ring::default_provider();
        assert_eq!(
            ours.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert_eq!(ours.cipher_suites.len(), default.cipher_suites.len());
    }
}
