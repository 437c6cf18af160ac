//! The one error type of the broker interfaces.

/// What can go wrong talking to an event bus or a job queue.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached (connection refused, dropped, not ready).
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker did not answer within the configured time.
    #[error("broker did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The broker is reachable but refuses more work (queue full).
    #[error("broker overloaded: {0}")]
    Overloaded(String),
    /// The broker refused the operation (bad credentials, unknown topic, ...).
    #[error("broker rejected the request: {0}")]
    Rejected(String),
    /// The local end was shut down.
    #[error("broker connection closed")]
    Closed,
}
