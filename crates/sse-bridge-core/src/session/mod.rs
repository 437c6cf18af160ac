//! One session from request to last frame: subscribe, dispatch, stream.
//!
//! [`start`] performs PROTOCOL §3.2 (subscribe, wait for the confirmation,
//! then dispatch the job); the returned [`LiveSession`] becomes the response
//! body through [`LiveSession::into_stream`], which drives the
//! [`machine::SessionMachine`] over the subscription.

pub mod machine;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::error::BrokerError;
use crate::protocol::{Job, SessionId, SessionRequest};
use crate::queue::JobDispatcher;

pub use machine::{Outcome, Progress, SessionConfig, SessionMachine, SessionStats};
pub use stream::LiveSession;

/// The backends and settings every session of a gateway shares.
#[derive(Clone)]
pub struct SessionContext {
    pub bus: Arc<dyn EventBus>,
    pub dispatcher: Arc<dyn JobDispatcher>,
    pub config: SessionConfig,
    /// Give up on subscribe + dispatch after this long (→ 503).
    pub start_timeout: Duration,
    /// Cancelled at shutdown: live sessions end with `server_shutdown`.
    pub shutdown: CancellationToken,
    /// Live sessions allowed at once in this process.
    pub limit: SessionLimit,
}

/// How many sessions may be live at once; each holds one slot until dropped.
#[derive(Clone)]
pub struct SessionLimit(Arc<Semaphore>);

impl SessionLimit {
    pub fn new(max_sessions: usize) -> Self {
        SessionLimit(Arc::new(Semaphore::new(
            max_sessions.min(Semaphore::MAX_PERMITS),
        )))
    }

    fn try_take(&self) -> Result<OwnedSemaphorePermit, StartError> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| StartError::AtCapacity)
    }
}

impl Default for SessionLimit {
    /// No practical limit.
    fn default() -> Self {
        SessionLimit::new(Semaphore::MAX_PERMITS)
    }
}

/// Why a session could not start (the client gets a 503).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("this gateway is at its limit of live sessions; retry later")]
    AtCapacity,
    #[error("could not subscribe to the session's event channel: {0}")]
    Subscribe(BrokerError),
    #[error("could not dispatch the job to the workers: {0}")]
    Dispatch(BrokerError),
}

impl StartError {
    fn label(&self) -> &'static str {
        match self {
            StartError::AtCapacity => "at_capacity",
            StartError::Subscribe(_) => "subscribe",
            StartError::Dispatch(_) => "dispatch",
        }
    }
}

/// Subscribes to a new session's events, then dispatches its job.
///
/// On error nothing is left behind: the subscription is dropped (and so
/// unsubscribed) before this returns.
pub async fn start(
    ctx: &SessionContext,
    request: SessionRequest,
) -> Result<LiveSession, StartError> {
    let id = SessionId::new();
    let result = start_with_id(ctx, id, request).await;
    if let Err(error) = &result {
        metrics::counter!(crate::metrics::SESSIONS_REFUSED, "reason" => error.label()).increment(1);
        tracing::warn!(session_id = %id, "session refused: {error}");
    }
    result
}

async fn start_with_id(
    ctx: &SessionContext,
    id: SessionId,
    request: SessionRequest,
) -> Result<LiveSession, StartError> {
    let slot = ctx.limit.try_take()?;
    let timeout = ctx.start_timeout;
    let subscription = tokio::time::timeout(timeout, ctx.bus.subscribe(&id.event_channel()))
        .await
        .map_err(|_| StartError::Subscribe(BrokerError::Timeout(timeout)))?
        .map_err(StartError::Subscribe)?;
    let job = Job::new(id, request);
    tokio::time::timeout(timeout, ctx.dispatcher.dispatch(&job))
        .await
        .map_err(|_| StartError::Dispatch(BrokerError::Timeout(timeout)))?
        .map_err(StartError::Dispatch)?;
    Ok(LiveSession::new(ctx, job, subscription, slot))
}
