//! The one place where Rust errors become Python exceptions. The classes
//! themselves are defined in Python (`client/_errors.py`) because they need
//! multiple inheritance from built-in exceptions.

use pyo3::prelude::*;

use crate::client::error::{ClientError, ForeignError};
use crate::protocol::ArgumentErrorKind;

mod classes {
    pyo3::import_exception!(client._errors, ClientError);
    pyo3::import_exception!(client._errors, ClientSocketError);
    pyo3::import_exception!(client._errors, ClientTimeoutError);
    pyo3::import_exception!(client._errors, ClientProtocolError);
    pyo3::import_exception!(client._errors, ClientRejectedError);
    pyo3::import_exception!(client._errors, ClientReplyError);
    pyo3::import_exception!(client._errors, ClientValueError);
    pyo3::import_exception!(client._errors, ClientTypeError);
}

impl From<ClientError> for PyErr {
    fn from(error: ClientError) -> PyErr {
        let message = error.to_string();
        match error {
            ClientError::Argument(argument) => match argument.kind {
                ArgumentErrorKind::Type => classes::ClientTypeError::new_err(message),
                ArgumentErrorKind::Value => classes::ClientValueError::new_err(message),
            },
            ClientError::Connect {
                timed_out: true,
                source,
                ..
            } => with_cause(classes::ClientTimeoutError::new_err(message), source),
            ClientError::Connect { source, .. } | ClientError::Socket(source) => {
                with_cause(classes::ClientSocketError::new_err(message), source)
            }
            ClientError::Timeout { .. } => classes::ClientTimeoutError::new_err(message),
            ClientError::Closed { .. }
            | ClientError::ClosedByUser
            | ClientError::ClosedDuringCall => classes::ClientSocketError::new_err(message),
            ClientError::Server(server_message) => {
                classes::ClientProtocolError::new_err(server_message)
            }
            ClientError::Rejected { rejected, total } => {
                classes::ClientRejectedError::new_err((message, rejected, total))
            }
            ClientError::Malformed(_) | ClientError::TrailingBytes { .. } => {
                classes::ClientReplyError::new_err(message)
            }
            ClientError::Foreign(source) => match source.downcast::<PyErr>() {
                // KeyboardInterrupt, or an exception from a socket-like
                // object that is not an OSError: handed back untouched.
                Ok(original) => *original,
                Err(other) => classes::ClientError::new_err(other.to_string()),
            },
        }
    }
}

/// Wraps a Python exception so it can travel through the Rust core.
pub fn foreign(error: PyErr) -> ClientError {
    ClientError::Foreign(Box::new(error))
}

/// Chains the original Python exception (e.g. ConnectionRefusedError) as
/// `__cause__`, so tracebacks show what the OS said.
fn with_cause(error: PyErr, source: ForeignError) -> PyErr {
    if let Ok(original) = source.downcast::<PyErr>() {
        Python::attach(|py| error.set_cause(py, Some(*original)));
    }
    error
}
