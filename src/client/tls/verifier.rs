//! rustls's own check of the server's certificate (webpki: chain to a
//! trusted root, validity, host name), telling one more case apart: a
//! self-signed certificate, which webpki reports as "unknown issuer" like
//! any certificate of a CA we do not trust.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore};

use crate::client::error::ClientError;

/// The error inside `CertificateError::Other` for a self-signed server
/// certificate (see `describe`).
#[derive(Debug, thiserror::Error)]
#[error("self-signed certificate")]
pub struct SelfSigned;

#[derive(Debug)]
pub struct NamingSelfSigned(Arc<WebPkiServerVerifier>);

impl NamingSelfSigned {
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, ClientError> {
        WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map(NamingSelfSigned)
            .map_err(|e| ClientError::Tls {
                address: None,
                what: format!("no CA certificate to trust: {e}"),
                source: Box::new(e),
            })
    }
}

/// Whether the certificate names itself as its issuer.
fn is_self_signed(certificate: &CertificateDer<'_>) -> bool {
    webpki::EndEntityCert::try_from(certificate).is_ok_and(|c| c.issuer() == c.subject())
}

impl ServerCertVerifier for NamingSelfSigned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|error| match error {
                Error::InvalidCertificate(CertificateError::UnknownIssuer)
                    if intermediates.is_empty() && is_self_signed(end_entity) =>
                {
                    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                        SelfSigned,
                    ))))
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
