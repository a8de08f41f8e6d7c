//! The server's diagnostics: a severity and a sink that receives messages.
//! (The data file is the journal; "log" here only ever means diagnostics.)

use std::io;
use std::sync::Arc;

/// Severity of a log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// Where the server's messages go. Called from server threads; must not block
/// for long.
pub type LogSink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// A sink writing `metrics-server: LEVEL: message` lines to stderr.
pub fn stderr_sink() -> LogSink {
    Arc::new(|level, message| {
        use std::io::Write;
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "metrics-server: {}: {message}", level.as_str());
        let _ = err.flush();
    })
}
