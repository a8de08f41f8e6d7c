//! `client.Retry`: the retry policy a `Client` or `AsyncClient` is given.

use std::time::Duration;

use pyo3::prelude::*;

use super::arguments;
use crate::client::error::ClientError;
use crate::client::retry::{jitter, RetryPolicy};

/// When to send a call again: ``Retry(attempts=3, backoff=0.1, cap=2.0)``.
///
/// A call that fails because its connection failed or it timed out is sent
/// again, up to ``attempts`` attempts in all (the first included), after
/// waiting a random time below ``backoff * 2**(n-1)`` seconds (at most
/// ``cap``) before attempt ``n + 1``. An ``error`` answer of the server, a
/// malformed reply or a bad argument is never retried. A put without a
/// timestamp keeps the timestamp of its first attempt, so every attempt
/// stores the same point.
#[pyclass(module = "client", name = "Retry", frozen)]
pub struct Retry {
    pub policy: RetryPolicy,
}

#[pymethods]
impl Retry {
    #[new]
    #[pyo3(signature = (attempts=None, backoff=None, cap=None))]
    fn new(
        attempts: Option<&Bound<'_, PyAny>>,
        backoff: Option<&Bound<'_, PyAny>>,
        cap: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let attempts = match attempts {
            None => 3,
            Some(a) => arguments::count(a, "attempts").map_err(ClientError::from)?,
        };
        let seconds = |obj: Option<&Bound<'_, PyAny>>, argument, default| match obj {
            None => Ok(Duration::from_secs_f64(default)),
            Some(o) => arguments::seconds(o, argument).map_err(ClientError::from),
        };
        let backoff = seconds(backoff, "backoff", 0.1)?;
        let cap = seconds(cap, "cap", 2.0)?;
        Ok(Retry {
            policy: RetryPolicy {
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                backoff,
                cap,
            },
        })
    }

    /// Attempts in all, the first included.
    #[getter]
    fn attempts(&self) -> u32 {
        self.policy.attempts
    }

    /// Seconds: the bound of the first wait, doubled for each further one.
    #[getter]
    fn backoff(&self) -> f64 {
        self.policy.backoff.as_secs_f64()
    }

    /// Seconds: the longest wait.
    #[getter]
    fn cap(&self) -> f64 {
        self.policy.cap.as_secs_f64()
    }

    /// A wait (seconds) before attempt ``failures + 1``, drawn at random:
    /// what ``AsyncClient`` sleeps between attempts.
    fn delay(&self, failures: u32) -> f64 {
        self.policy.delay(failures.max(1), jitter()).as_secs_f64()
    }

    fn __repr__(&self) -> String {
        format!(
            "Retry(attempts={}, backoff={}, cap={})",
            self.policy.attempts,
            self.policy.backoff.as_secs_f64(),
            self.policy.cap.as_secs_f64()
        )
    }
}

/// `retry=`: a `Retry`, or `None` for one attempt.
pub fn policy(obj: Option<&Bound<'_, PyAny>>) -> PyResult<RetryPolicy> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(RetryPolicy::NEVER),
        Some(obj) => match obj.cast::<Retry>() {
            Ok(retry) => Ok(retry.get().policy),
            Err(_) => Err(ClientError::from(crate::protocol::ArgumentError::type_(
                "retry",
                format!(
                    "must be a client.Retry or None, got {}",
                    arguments::type_name(obj)
                ),
            ))
            .into()),
        },
    }
}
