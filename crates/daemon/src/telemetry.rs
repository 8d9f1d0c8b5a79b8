//! Logging setup: human-readable or JSON lines on stderr, filtered by
//! RUST_LOG when set, else by the config's `log.level`.
//!
//! A log that cannot be written (stderr on a full disk, a closed pipe, a
//! gone journald) never breaks a session: [`LossyStderr`] drops the line and
//! reports success. tracing-subscriber would otherwise report the failure
//! with `eprintln!`, which panics when stderr itself fails, and the panic
//! ends whatever task logged (an IMAP LOGIN answered by a closed connection).

use crate::config::{LogConfig, LogFormat};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log lines dropped because stderr could not take them.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many log lines were dropped because stderr failed (for the admin's
/// status and tests; the log itself cannot say so).
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// stderr, with every write error swallowed (and counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::io::stderr().write_all(buf).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = LossyStderr;

    fn make_writer(&'a self) -> Self::Writer {
        LossyStderr
    }
}

/// Installs the global subscriber. Call once, from the binary only: library
/// code and tests never install globals.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    // Colour codes only for a person at a terminal, never into log files or journald.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LossyStderr)
        // Its report of a failed write goes to stderr with `eprintln!`, which panics.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (e.g. a subscriber already set by an embedding program) is not an error worth dying for.
    let _ = match log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_stderr_is_swallowed() {
        // Whatever stderr is in the test harness, the writer reports success.
        let mut w = LossyStderr.make_writer();
        assert_eq!(w.write(b"").unwrap(), 0);
        w.flush().unwrap();
    }
}
