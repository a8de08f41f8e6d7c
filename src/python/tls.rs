//! Client TLS through Python's own `ssl` module, the slower path (every
//! record goes through Python): the caller's `ssl.SSLContext` wraps the
//! connected socket, and the `SSLSocket` is then driven as a socket-like object. An
//! `ssl` failure becomes a `ClientError::Tls` saying what failed in words
//! (unknown CA, host name mismatch, expired...), the `ssl` error chained.

use pyo3::exceptions::PyOSError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use super::errors::foreign;
use super::socket_like::is_timeout;
use crate::client::error::ClientError;
use crate::protocol::ArgumentError;

/// The caller's `ssl.SSLContext` (checked to be one) for the Python path;
/// `True`, `False` and `None` are handled before (see `tls_mode`).
pub fn python_context(ssl: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if ssl.is_instance(ssl_class(ssl.py(), "SSLContext")?)? {
        return Ok(ssl.clone().unbind());
    }
    let type_name = ssl.get_type().name()?;
    let reason = format!("must be True, False, None or an ssl.SSLContext, not {type_name}");
    Err(ClientError::Argument(ArgumentError::type_("ssl", reason)).into())
}

/// Wraps a connected `socket` with `context`, doing the handshake now; the
/// certificate is checked against `host` (when the context checks names).
pub fn wrap<'py>(
    context: &Bound<'py, PyAny>,
    socket: Bound<'py, PyAny>,
    host: &str,
    address: &str,
) -> Result<Bound<'py, PyAny>, ClientError> {
    let py = context.py();
    let wrapped = (|| {
        // As for plain connections: each request is one small write
        // answered by the server, Nagle's algorithm would only add latency.
        // socket.IPPROTO_TCP and TCP_NODELAY (6 and 1 on Linux and macOS).
        let _ = socket.call_method1(intern!(py, "setsockopt"), (6, 1, 1));
        let options = PyDict::new(py);
        options.set_item(intern!(py, "server_hostname"), host)?;
        context.call_method(intern!(py, "wrap_socket"), (&socket,), Some(&options))
    })();
    wrapped.map_err(|error| {
        // wrap_socket closes the socket when the handshake fails; when it
        // failed before taking the socket over, the socket is closed here.
        let _ = socket.call_method0(intern!(py, "close"));
        if let Some(tls) = failure(py, &error, Some(address)) {
            return tls;
        }
        if error.is_instance_of::<PyOSError>(py) {
            ClientError::Connect {
                address: address.to_owned(),
                timed_out: is_timeout(py, &error),
                source: Box::new(error),
            }
        } else {
            foreign(error)
        }
    })
}

/// The `ClientError` for an `ssl.SSLError` (`None` for other exceptions):
/// what failed, in words, with the error chained. `address` is the server's
/// when known.
pub fn failure(py: Python<'_>, error: &PyErr, address: Option<&str>) -> Option<ClientError> {
    let ssl_error = ssl_class(py, "SSLError").ok()?;
    if !error.is_instance(py, ssl_error) {
        return None;
    }
    Some(ClientError::Tls {
        address: address.map(str::to_owned),
        what: describe(error.value(py)),
        source: Box::new(error.clone_ref(py)),
    })
}

/// The `ssl` exception standing for a failure of the Rust core's TLS:
/// `ssl.SSLCertVerificationError` when the server's certificate was
/// refused, else `ssl.SSLError`, with `what` as its message.
pub fn native_cause(
    py: Python<'_>,
    what: &str,
    source: &(dyn std::error::Error + Send + Sync + 'static),
) -> PyErr {
    let refused_certificate = matches!(
        source.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::InvalidCertificate(_))
    );
    let name = if refused_certificate {
        "SSLCertVerificationError"
    } else {
        "SSLError"
    };
    let made = py
        .import(intern!(py, "ssl"))
        .and_then(|ssl| ssl.getattr(name))
        .and_then(|class| class.call1((SSL_ERROR_SSL, what)));
    match made {
        Ok(exception) => {
            if refused_certificate {
                let _ = exception.setattr(intern!(py, "verify_message"), what);
            }
            PyErr::from_value(exception)
        }
        Err(error) => error,
    }
}

/// The `errno` of `ssl`'s own errors: a failure in the TLS library.
const SSL_ERROR_SSL: i32 = 1;

fn ssl_class<'py>(py: Python<'py>, name: &str) -> PyResult<&'py Bound<'py, PyType>> {
    static SSL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static SSL_CONTEXT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let cell = if name == "SSLError" {
        &SSL_ERROR
    } else {
        &SSL_CONTEXT
    };
    cell.import(py, "ssl", name)
}

/// What an `ssl` error means for the user, from OpenSSL's verification
/// code (our check of the server's certificate) or its reason (an alert
/// the server sent about ours, or bytes that are not TLS).
fn describe(error: &Bound<'_, pyo3::exceptions::PyBaseException>) -> String {
    let text = |name: &str| -> Option<String> {
        error
            .getattr(name)
            .ok()
            .filter(|v| !v.is_none())
            .and_then(|v| v.extract().ok())
    };
    let verify_code: Option<i64> = error
        .getattr("verify_code")
        .ok()
        .and_then(|v| v.extract().ok());
    let verify_message = text("verify_message").unwrap_or_default();
    // X509_V_ERR_* codes.
    let described = match verify_code {
        Some(2 | 18 | 19 | 20 | 21) => Some(format!(
            "the server's certificate is not signed by a trusted CA (unknown CA: {verify_message})"
        )),
        // Host name, e-mail or IP address mismatch.
        Some(62..=64) => Some(format!(
            "the server's certificate does not match the host name (hostname mismatch: {verify_message})"
        )),
        Some(10) => Some("the server's certificate has expired".to_owned()),
        Some(9) => Some("the server's certificate is not valid yet".to_owned()),
        Some(code) if code != 0 => Some(format!(
            "the server's certificate was refused: {verify_message}"
        )),
        _ => None,
    };
    if let Some(described) = described {
        return described;
    }
    let reason = text("reason").unwrap_or_default();
    let what = match reason.as_str() {
        "TLSV1_ALERT_UNKNOWN_CA" => {
            "the server refused the client certificate: unknown CA".to_owned()
        }
        "SSLV3_ALERT_CERTIFICATE_EXPIRED" => {
            "the server refused the client certificate: expired".to_owned()
        }
        "SSLV3_ALERT_BAD_CERTIFICATE" | "SSLV3_ALERT_CERTIFICATE_UNKNOWN" => {
            "the server refused the client certificate".to_owned()
        }
        "TLSV13_ALERT_CERTIFICATE_REQUIRED" | "PEER_DID_NOT_RETURN_A_CERTIFICATE" => {
            "the server requires a client certificate (pass an ssl.SSLContext with \
             load_cert_chain, or --tls-cert and --tls-key)"
                .to_owned()
        }
        "WRONG_VERSION_NUMBER"
        | "RECORD_LAYER_FAILURE"
        | "PACKET_LENGTH_TOO_LONG"
        | "UNKNOWN_PROTOCOL"
        | "HTTP_REQUEST" => {
            "the server did not answer with TLS (is it a plain-text port?)".to_owned()
        }
        _ => {
            let message = error
                .str()
                .map(|s| s.to_string())
                .unwrap_or_else(|_| reason.clone());
            if reason.is_empty() && message.contains("EOF") {
                "the server closed the connection during the TLS handshake".to_owned()
            } else {
                message
            }
        }
    };
    what
}
