//! pyo3 bindings: type conversion and error mapping only; the behaviour
//! lives in the Rust core.

mod arguments;
mod client;
mod codec;
mod columns;
mod connector;
mod errors;
mod points;
mod python_log;
mod query_args;
mod results;
mod retry;
mod server;
mod socket_like;
mod tls;
mod tls_mode;
mod tls_session;

use pyo3::prelude::*;

// Declared as needing the GIL: nothing here has been tested on a
// free-threaded interpreter, and results.rs builds objects through raw C API
// calls. A free-threaded CPython imports the module with the GIL re-enabled.
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    connector::capture_socket_class(m.py())?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Connection>()?;
    m.add_class::<retry::Retry>()?;
    m.add_class::<codec::Codec>()?;
    m.add_class::<query_args::PyQuery>()?;
    m.add_function(wrap_pyfunction!(codec::error, m)?)?;
    m.add_function(wrap_pyfunction!(codec::cut_short, m)?)?;
    m.add_function(wrap_pyfunction!(codec::options, m)?)?;
    m.add_function(wrap_pyfunction!(codec::window, m)?)?;
    m.add_function(wrap_pyfunction!(tls_session::tls_mode, m)?)?;
    m.add_class::<tls_session::TlsConfig>()?;
    m.add_class::<tls_session::TlsSession>()?;
    m.add_class::<server::Server>()?;
    m.add(
        "DEFAULT_MAX_REPLY_BYTES",
        crate::protocol::DEFAULT_MAX_REPLY_BYTES,
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
