//! Every way a client call can fail, in one enum. The pyo3 layer maps each
//! variant to a Python exception class in exactly one place.

use std::error::Error;
use std::time::Duration;

use thiserror::Error;

use crate::protocol::{ArgumentError, DecodeError};

/// An error from the host environment (for Python: an exception raised by a
/// socket-like object, or KeyboardInterrupt). It is handed back unchanged.
pub type ForeignError = Box<dyn Error + Send + Sync>;

/// Variants are named after the Python class they become (see
/// `src/python/errors.rs`): `Argument` is `ClientValueError` or
/// `ClientTypeError`; `Connect`, `Socket`, `Closed`, `ClosedByUser` and
/// `ClosedDuringCall` and `Tls` are `ClientSocketError`; `Timeout` and `Stalled` are
/// `ClientTimeoutError`; `CutShort` is its cause's class; `Protocol` is `ClientProtocolError`; `Rejected` is
/// `ClientRejectedError`; `Reply` and `TrailingBytes` are `ClientReplyError`.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Bad input from the caller; nothing was sent.
    #[error(transparent)]
    Argument(#[from] ArgumentError),

    /// The connection could not be opened.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        timed_out: bool,
        source: ForeignError,
    },

    /// The connection failed while sending or receiving.
    #[error("connection failed: {0}")]
    Socket(ForeignError),

    /// The call did not finish within the client's timeout.
    #[error("{}", timeout_message(*.after))]
    Timeout { after: Option<Duration> },

    /// A pipelined batch stalled: the server answered `answered` of `total`
    /// requests, then nothing more within the timeout. A server that handles
    /// one command per read answers once for several pipelined requests.
    #[error("{}", stalled_message(*.answered, *.total, *.window, *.after))]
    Stalled {
        answered: usize,
        total: usize,
        /// The most requests the batch had in flight at once.
        window: usize,
        after: Option<Duration>,
    },

    /// A pipelined batch failed on its connection (`cause`) after the server
    /// had answered its first `acknowledged` requests, of `total`: those are
    /// stored (or were refused, and would be refused again); the caller may
    /// resend the others.
    #[error("{}", cut_short_message(&cause.to_string(), *.acknowledged, *.total))]
    CutShort {
        acknowledged: usize,
        total: usize,
        cause: Box<ClientError>,
    },

    /// TLS failed: the handshake (a certificate refused on either side, a
    /// peer not speaking TLS) or the encrypted stream. `what` says what in
    /// words; `address` is the server's when known.
    #[error("{}", tls_message(.address.as_deref(), .what))]
    Tls {
        address: Option<String>,
        what: String,
        source: ForeignError,
    },

    /// The server closed the connection.
    #[error("server closed the connection {}", if *.mid_reply { "in the middle of a reply" } else { "without replying" })]
    Closed { mid_reply: bool },

    /// The server answered `error` with this message.
    #[error("server replied with an error: {0}")]
    Protocol(String),

    /// Some points of a pipelined batch were refused: `(index, message)`.
    #[error("{}", rejected_message(.rejected, *.total))]
    Rejected {
        rejected: Vec<(usize, String)>,
        total: usize,
    },

    /// The bytes received are not a reply of this protocol.
    #[error("malformed reply: {0}")]
    Reply(#[from] DecodeError),

    /// The server sent more than was asked for.
    #[error("malformed reply: {extra} unexpected bytes after the reply")]
    TrailingBytes { extra: usize },

    /// `close()` was called; the client cannot be used any more.
    #[error("the client is closed")]
    ClosedByUser,

    /// `close()` was called by another thread while this call was under
    /// way, and aborted it.
    #[error("the client was closed during the call")]
    ClosedDuringCall,

    /// An error from the host environment, passed through unchanged.
    #[error("{0}")]
    Foreign(ForeignError),
}

impl ClientError {
    /// Whether the connection's framing is still known after this error
    /// from a call on it: only a well-formed `error` reply leaves the stream
    /// in step.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, ClientError::Protocol(_))
    }

    /// Whether this is a failure of the connection itself (a Python
    /// `ClientSocketError`): it cannot be opened or was lost, timed out, or
    /// was closed by the user.
    pub fn is_connection_failure(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Socket(_)
            | ClientError::Timeout { .. }
            | ClientError::Stalled { .. }
            | ClientError::Tls { .. }
            | ClientError::Closed { .. }
            | ClientError::ClosedByUser
            | ClientError::ClosedDuringCall => true,
            ClientError::CutShort { cause, .. } => cause.is_connection_failure(),
            _ => false,
        }
    }

    /// Whether sending the same request again may succeed: the connection
    /// failed or the call timed out. Never for an answer of the server, a
    /// malformed reply, bad arguments, a closed client or a stalled batch
    /// (the server would stall on it again).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Socket(_)
            | ClientError::Timeout { .. }
            | ClientError::Closed { .. } => true,
            ClientError::CutShort { cause, .. } => cause.is_retryable(),
            _ => false,
        }
    }

    /// What a call that failed this way reports when `close()` was called
    /// meanwhile: a failure of the connection is then the abort's doing.
    /// Answers the server gave, bad arguments and the host's own exceptions
    /// (KeyboardInterrupt) are reported as they are.
    pub fn after_close(self) -> ClientError {
        match self {
            ClientError::Socket(_)
            | ClientError::Tls { .. }
            | ClientError::Timeout { .. }
            | ClientError::Stalled { .. }
            | ClientError::Closed { .. }
            | ClientError::ClosedByUser => ClientError::ClosedDuringCall,
            ClientError::CutShort {
                acknowledged,
                total,
                cause,
            } => ClientError::CutShort {
                acknowledged,
                total,
                cause: Box::new(cause.after_close()),
            },
            other => other,
        }
    }
}

fn tls_message(address: Option<&str>, what: &str) -> String {
    match address {
        Some(address) => format!("TLS with {address} failed: {what}"),
        None => format!("TLS failed: {what}"),
    }
}

fn timeout_message(after: Option<Duration>) -> String {
    match after {
        Some(after) => format!("timed out after {:.3} s", after.as_secs_f64()),
        None => "timed out".to_string(),
    }
}

fn stalled_message(
    answered: usize,
    total: usize,
    window: usize,
    after: Option<Duration>,
) -> String {
    let mut text = format!(
        "{}: the server answered {answered} of the {total} requests of the batch, then nothing more",
        timeout_message(after)
    );
    if window > 1 {
        text.push_str(&format!(
            " ({window} were sent without waiting for replies); the server may not support \
             pipelining: put_many(points, window=1) sends one request at a time"
        ));
    }
    text
}

/// The message of a batch cut short by the failure `cause` describes
/// (`AsyncClient` builds its own from an exception's text).
pub fn cut_short_message(cause: &str, acknowledged: usize, total: usize) -> String {
    let mut text = format!(
        "{cause}; the server acknowledged {acknowledged} of the {total} points of the batch"
    );
    if acknowledged < total {
        text.push_str(&format!(" (resend from point #{acknowledged})"));
    }
    text
}

fn rejected_message(rejected: &[(usize, String)], total: usize) -> String {
    const SHOWN: usize = 3;
    let mut text = format!(
        "the server rejected {} of {} points:",
        rejected.len(),
        total
    );
    for (index, message) in rejected.iter().take(SHOWN) {
        text.push_str(&format!(" #{index}: {message};"));
    }
    if rejected.len() > SHOWN {
        text.push_str(&format!(" and {} more", rejected.len() - SHOWN));
    } else {
        text.pop();
    }
    text
}
