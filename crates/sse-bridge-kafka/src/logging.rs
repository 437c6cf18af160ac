//! librdkafka's log lines and client errors, routed to `tracing`.
//!
//! rdkafka's default context logs through the `log` crate and reports every
//! transient transport error at ERROR level; here librdkafka's own severity
//! is kept and client errors, which librdkafka retries by itself, are warnings.

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel as Level;
use rdkafka::error::KafkaError;

/// The producer's context; the consumer's context delegates to these functions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: Level, facility: &str, message: &str) {
        log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

pub(crate) fn log(level: Level, facility: &str, message: &str) {
    match level {
        Level::Emerg | Level::Alert | Level::Critical | Level::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}")
        }
        Level::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        Level::Notice | Level::Info => tracing::info!(target: "librdkafka", facility, "{message}"),
        Level::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

pub(crate) fn client_error(error: &KafkaError, reason: &str) {
    tracing::warn!(target: "librdkafka", "{error}: {reason}");
}
