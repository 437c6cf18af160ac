//! Translation of redis-rs errors into core's [`BrokerError`].

use redis::{ErrorKind, RedisError};
use sse_bridge_core::BrokerError;

/// Classifies a Redis failure for the gateway: connectivity problems are
/// `Unavailable` (retry later, 503), refusals by the server are `Rejected`.
pub(crate) fn broker_error(err: RedisError) -> BrokerError {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
    {
        return BrokerError::Unavailable(err.to_string());
    }
    match err.kind() {
        ErrorKind::Io | ErrorKind::Client => BrokerError::Unavailable(err.to_string()),
        _ => BrokerError::Rejected(err.to_string()),
    }
}

/// Runs `future` with a deadline; a timeout becomes [`BrokerError::Timeout`].
pub(crate) async fn bounded<T>(
    limit: std::time::Duration,
    future: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result.map_err(broker_error),
        Err(_) => Err(BrokerError::Timeout(limit)),
    }
}
