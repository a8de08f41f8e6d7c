//! The one place where Rust errors become Python exceptions. The classes
//! themselves are defined in Python (`client/_errors.py`) because they need
//! multiple inheritance from built-in exceptions.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::client::error::{ClientError, ForeignError};
use crate::protocol::{ArgumentError, ArgumentErrorKind};
use crate::server::ServerError;

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

/// A rejected argument, of the client's or the server's:
/// `ClientTypeError` or `ClientValueError` (a `TypeError` or `ValueError`).
impl From<ArgumentError> for PyErr {
    fn from(error: ArgumentError) -> PyErr {
        let message = error.to_string();
        match error.kind {
            ArgumentErrorKind::Type => classes::ClientTypeError::new_err(message),
            ArgumentErrorKind::Value => classes::ClientValueError::new_err(message),
        }
    }
}

impl From<ClientError> for PyErr {
    fn from(error: ClientError) -> PyErr {
        let message = error.to_string();
        exception(error, message)
    }
}

/// The exception for `error`, with `message` (its own, or for `CutShort`,
/// that of the batch it cut short).
fn exception(error: ClientError, message: String) -> PyErr {
    match error {
        ClientError::Argument(argument) => argument.into(),
        ClientError::Connect {
            address,
            timed_out,
            source,
        } => {
            let (errno, strerror) = os_error_details(&source);
            let args = (message, Some(address), errno, strerror);
            let error = if timed_out {
                classes::ClientTimeoutError::new_err(args)
            } else {
                classes::ClientSocketError::new_err(args)
            };
            with_cause(error, source)
        }
        ClientError::Tls {
            address,
            what,
            source,
        } => {
            let args = (message, address, None::<i32>, None::<String>);
            let error = classes::ClientSocketError::new_err(args);
            match source.downcast::<PyErr>() {
                Ok(ssl_error) => with_cause(error, ssl_error),
                // The Rust core's TLS: chained as the `ssl` error the
                // Python path would chain, so callers catch one class.
                Err(native) => {
                    Python::attach(|py| {
                        let cause = super::tls::native_cause(py, &what, &*native);
                        error.set_cause(py, Some(cause));
                    });
                    error
                }
            }
        }
        ClientError::Socket(source) => {
            let (errno, strerror) = os_error_details(&source);
            let args = (message, None::<String>, errno, strerror);
            with_cause(classes::ClientSocketError::new_err(args), source)
        }
        ClientError::Timeout { .. } => classes::ClientTimeoutError::new_err(message),
        ClientError::Stalled { answered, .. } => {
            acknowledged(classes::ClientTimeoutError::new_err(message), answered)
        }
        ClientError::CutShort {
            acknowledged: count,
            cause,
            ..
        } => acknowledged(exception(*cause, message), count),
        ClientError::Closed { .. } | ClientError::ClosedByUser | ClientError::ClosedDuringCall => {
            classes::ClientSocketError::new_err(message)
        }
        ClientError::Protocol(server_message) => {
            classes::ClientProtocolError::new_err(server_message)
        }
        ClientError::Rejected { rejected, total } => {
            classes::ClientRejectedError::new_err((message, rejected, total))
        }
        ClientError::Reply(_) | ClientError::TrailingBytes { .. } => {
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

/// Sets `acknowledged` (declared on `ClientSocketError`): how many points
/// of the batch the server answered before the connection failed.
fn acknowledged(error: PyErr, count: usize) -> PyErr {
    Python::attach(|py| {
        // Setting an attribute on a fresh exception cannot fail.
        let _ = error.value(py).setattr("acknowledged", count);
    });
    error
}

/// Wraps a Python exception so it can travel through the Rust core.
pub fn foreign(error: PyErr) -> ClientError {
    ClientError::Foreign(Box::new(error))
}

/// The `errno` and `strerror` of an `OSError` behind a connection failure,
/// so Python code can look at them instead of parsing the message.
fn os_error_details(source: &ForeignError) -> (Option<i32>, Option<String>) {
    let Some(original) = source.downcast_ref::<PyErr>() else {
        return (None, None);
    };
    Python::attach(|py| {
        let value = original.value(py);
        let errno = value.getattr("errno").ok().and_then(|e| e.extract().ok());
        let strerror = value
            .getattr("strerror")
            .ok()
            .and_then(|e| e.extract().ok());
        (errno, strerror)
    })
}

/// Chains the original Python exception (e.g. ConnectionRefusedError) as
/// `__cause__`, so tracebacks show what the OS said.
fn with_cause(error: PyErr, source: ForeignError) -> PyErr {
    if let Ok(original) = source.downcast::<PyErr>() {
        Python::attach(|py| error.set_cause(py, Some(*original)));
    }
    error
}

/// Why a server could not start or close: an `OSError` built as
/// `OSError(errno, message[, filename])`, so Python picks the subclass
/// (`FileNotFoundError`, `PermissionError`, ...) from the errno. Callers
/// read what failed from attributes, never from the message: `address` is
/// the `host:port` that could not be bound, `data` the data file's path.
impl From<ServerError> for PyErr {
    fn from(error: ServerError) -> PyErr {
        PyErr::from(&error)
    }
}

impl From<&ServerError> for PyErr {
    fn from(error: &ServerError) -> PyErr {
        let message = error.to_string();
        let errno = error.io_error().and_then(std::io::Error::raw_os_error);
        let message = match errno {
            Some(code) => message
                .trim_end_matches(&format!(" (os error {code})"))
                .to_string(),
            None => message,
        };
        let exception = match (errno, error) {
            // A directory keeps the errno opening one for writing gives, so
            // Python raises IsADirectoryError as it would for open().
            (None, ServerError::NotRegular { path, kind }) if kind.contains("directory") => {
                PyOSError::new_err((libc::EISDIR, message, path.clone()))
            }
            (Some(code), ServerError::Data { path, .. }) => {
                PyOSError::new_err((code, message, path.clone()))
            }
            (Some(code), _) => PyOSError::new_err((code, message)),
            (None, _) => PyOSError::new_err(message),
        };
        Python::attach(|py| {
            let value = exception.value(py);
            let address = match error {
                ServerError::Bind { address, .. } => Some(address.as_str()),
                _ => None,
            };
            // Setting an attribute on a fresh OSError cannot fail.
            let _ = value.setattr("address", address);
            let _ = value.setattr("data", error.path());
        });
        exception
    }
}
