//! What a rustls failure means for the user, in the words the Python `ssl`
//! path uses for the same cases (so a message reads the same whichever path
//! a client took): the server's certificate refused by us, the client's
//! refused by the server, or a peer that does not speak TLS.

use rustls::{AlertDescription, CertificateError, Error};

use super::verifier::SelfSigned;

/// Says what failed; `handshaking` tells bytes that are not TLS at all
/// (a plain-text server) from a TLS stream broken later.
pub fn describe(error: &Error, handshaking: bool) -> String {
    match error {
        Error::InvalidCertificate(certificate) => server_certificate(certificate),
        Error::AlertReceived(alert) => alert_received(*alert),
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
            if handshaking =>
        {
            "the server did not answer with TLS (is it a plain-text port?)".to_owned()
        }
        Error::InvalidMessage(_) | Error::DecryptError => {
            format!("the server sent bytes that are not valid TLS records ({error})")
        }
        Error::PeerIncompatible(_) => {
            format!("the server cannot speak TLS the way this client does: {error}")
        }
        Error::PeerMisbehaved(_) => format!("the server broke the TLS protocol: {error}"),
        other => other.to_string(),
    }
}

fn server_certificate(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => {
            "the server's certificate is not signed by a trusted CA (unknown CA)".to_owned()
        }
        CertificateError::Other(other) if other.0.downcast_ref::<SelfSigned>().is_some() => {
            "the server's certificate is not signed by a trusted CA \
             (unknown CA: self-signed certificate)"
                .to_owned()
        }
        CertificateError::NotValidForName => {
            "the server's certificate does not match the host name (hostname mismatch)".to_owned()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "the server's certificate does not match the host name (hostname mismatch: \
             it is for {}, not {})",
            if presented.is_empty() {
                "no name".to_owned()
            } else {
                presented.join(", ")
            },
            expected.to_str()
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet".to_owned()
        }
        other => format!("the server's certificate was refused: {other}"),
    }
}

fn alert_received(alert: AlertDescription) -> String {
    match alert {
        AlertDescription::UnknownCA => {
            "the server refused the client certificate: unknown CA".to_owned()
        }
        AlertDescription::CertificateExpired => {
            "the server refused the client certificate: expired".to_owned()
        }
        AlertDescription::BadCertificate | AlertDescription::CertificateUnknown => {
            "the server refused the client certificate".to_owned()
        }
        AlertDescription::CertificateRequired => {
            "the server requires a client certificate (pass tls_cert and tls_key, \
             or --tls-cert and --tls-key)"
                .to_owned()
        }
        AlertDescription::HandshakeFailure | AlertDescription::ProtocolVersion => format!(
            "the server refused the handshake ({alert:?}: no TLS version or cipher suite in common)"
        ),
        other => format!("the server ended TLS with the alert {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::OtherError;
    use std::sync::Arc;

    #[test]
    fn each_certificate_refusal_says_which() {
        let cases = [
            (CertificateError::UnknownIssuer, "unknown CA"),
            (
                CertificateError::Other(OtherError(Arc::new(SelfSigned))),
                "self-signed",
            ),
            (CertificateError::Expired, "expired"),
            (CertificateError::NotValidYet, "not valid yet"),
            (CertificateError::NotValidForName, "hostname mismatch"),
        ];
        for (error, words) in cases {
            let text = describe(&Error::InvalidCertificate(error), true);
            assert!(text.contains(words), "{text}");
        }
        let context = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").unwrap(),
            presented: vec!["elsewhere.example".into()],
        };
        let text = describe(&Error::InvalidCertificate(context), true);
        assert!(
            text.contains("hostname mismatch: it is for elsewhere.example, not 127.0.0.1"),
            "{text}"
        );
    }

    #[test]
    fn the_servers_refusals_and_non_tls_bytes_are_named() {
        let alert = |a| describe(&Error::AlertReceived(a), true);
        assert!(
            alert(AlertDescription::CertificateRequired).contains("requires a client certificate")
        );
        assert!(alert(AlertDescription::UnknownCA).contains("unknown CA"));
        assert!(alert(AlertDescription::CertificateExpired).contains("expired"));
        let garbage = Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(describe(&garbage, true).contains("did not answer with TLS"));
        assert!(describe(&garbage, false).contains("not valid TLS records"));
    }
}
