//! Every way a session is cancelled, in one place (PROTOCOL §3.9, §4).
//!
//! * A gateway-decided end (timeouts, shutdown, slow consumer, worker lost):
//!   [`end_session`] appends the `error` to the log — unless the session
//!   already ended — and publishes `cancel` so the worker stops spending.
//! * `DELETE /v1/react/sessions/{id}`: [`cancel`], the same with `cancelled`;
//!   every follower reads the `error` from the log.
//! * A client that goes away: its stream's [`Departure`] stops counting as a
//!   follower. A live-only session is cancelled at once (nothing could be
//!   resumed); a logged one only if nobody follows it `cancel_grace` later,
//!   so a reconnecting browser resumes instead. `"on_disconnect":
//!   "continue"` never cancels on disconnect.
//! * A gateway that crashes: its follower counts lapse with its presence,
//!   and [`sweep_orphans`] on a surviving gateway runs the departures it
//!   never ran.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::SessionContext;
use super::machine::Failure;
use crate::error::BrokerError;
use crate::log::{Ending, EventLog};
use crate::metrics as m;
use crate::protocol::{ErrorCode, OnDisconnect, SessionId, cancel_message};

/// Ends the session with `failure` unless it already ended; when this call
/// ended it, publishes `cancel` (with `reason`) to the worker.
pub async fn end_session(
    log: &dyn EventLog,
    id: SessionId,
    failure: &Failure,
    reason: &str,
) -> Result<Ending, BrokerError> {
    let ending = log.end(id, &failure.event()).await?;
    if let Ending::Appended(_) = ending {
        tracing::info!(code = %failure.code, "session ended by the gateway; cancelling the worker");
        publish_cancel(log, id, reason).await;
    }
    Ok(ending)
}

async fn publish_cancel(log: &dyn EventLog, id: SessionId, reason: &str) {
    let message = Bytes::from(cancel_message(reason));
    match log.publish(&id.control_channel(), message).await {
        Ok(_) => {
            metrics::counter!(m::CANCELS_PUBLISHED, "reason" => reason.to_owned()).increment(1)
        }
        Err(error) => tracing::warn!("could not publish cancel: {error}"),
    }
}

/// Why `DELETE` found nothing to cancel.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("unknown or expired session")]
    Unknown,
    #[error("the session log is unavailable: {0}")]
    Unavailable(#[from] BrokerError),
}

/// `DELETE /v1/react/sessions/{id}` by `principal`: `true` if this call
/// cancelled the session, `false` if it had already ended. Another
/// principal's session is [`CancelError::Unknown`], as if it did not exist.
pub async fn cancel(
    ctx: &SessionContext,
    principal: &str,
    id: SessionId,
) -> Result<bool, CancelError> {
    let timeout = ctx.start_timeout;
    let owned = tokio::time::timeout(timeout, ctx.bus.meta(id))
        .await
        .map_err(|_| BrokerError::Timeout(timeout))??
        .is_some_and(|meta| meta.principal == principal);
    if !owned {
        return Err(CancelError::Unknown);
    }
    let failure = Failure::new(ErrorCode::Cancelled, "the session was cancelled");
    let ending = tokio::time::timeout(
        timeout,
        end_session(
            ctx.bus.as_ref(),
            id,
            &failure,
            ErrorCode::Cancelled.as_str(),
        ),
    )
    .await
    .map_err(|_| BrokerError::Timeout(timeout))??;
    match ending {
        Ending::Appended(_) => Ok(true),
        Ending::AlreadyEnded(_) => Ok(false),
        Ending::Unknown => Err(CancelError::Unknown),
    }
}

/// A stream left its session (see the module doc).
pub(super) struct Departure {
    pub(super) log: Arc<dyn EventLog>,
    pub(super) id: SessionId,
    /// The stream delivered the terminal event.
    pub(super) ended: bool,
    /// The creator of a live-only session that ended: its log holds no
    /// history, which later readers must be told.
    pub(super) marks_unlogged_end: bool,
    pub(super) on_disconnect: OnDisconnect,
    pub(super) live_only: bool,
    pub(super) cancel_grace: Duration,
}

impl Departure {
    pub(super) async fn run(self) {
        let log = self.log.as_ref();
        if let Err(error) = log.add_followers(self.id, -1).await {
            tracing::warn!("cannot update the follower count: {error}");
        }
        if self.ended {
            if self.marks_unlogged_end {
                let unlogged = Failure::new(
                    ErrorCode::HistoryLost,
                    "this session's worker does not log its events: it cannot be replayed",
                );
                let _ = log.end(self.id, &unlogged.event()).await;
            }
            return;
        }
        tracing::info!(on_disconnect = ?self.on_disconnect, "client disconnected before the end");
        if self.on_disconnect == OnDisconnect::Continue {
            return;
        }
        let grace = if self.live_only {
            Duration::ZERO
        } else {
            self.cancel_grace
        };
        cancel_if_abandoned(log, self.id, grace).await;
    }
}

/// After `grace`, cancels the session if it has not ended, cancels on
/// disconnect, and nobody follows it.
async fn cancel_if_abandoned(log: &dyn EventLog, id: SessionId, grace: Duration) {
    tokio::time::sleep(grace).await;
    match log.meta(id).await {
        Ok(Some(meta))
            if meta.ended.is_none()
                && meta.followers <= 0
                && meta.on_disconnect == OnDisconnect::Cancel => {}
        Ok(_) => return,
        Err(error) => {
            return tracing::warn!("cannot check the session before cancelling: {error}");
        }
    }
    let failure = Failure::new(
        ErrorCode::Cancelled,
        "the client disconnected and nobody resumed the session",
    );
    if let Err(error) = end_session(log, id, &failure, "client_disconnected").await {
        tracing::warn!("could not cancel the session: {error}");
    }
}

/// Takes over, every `every`, the sessions of gateways that crashed (see
/// [`EventLog::orphans`]): their clients left with the gateway, and their
/// departures never ran, so each is cancelled as a departure would have
/// cancelled it — `cancel_grace` later, if nobody follows it by then.
pub async fn sweep_orphans(ctx: SessionContext, every: Duration) {
    let grace = ctx.config.cancel_grace;
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let orphans = match ctx.bus.orphans().await {
            Ok(orphans) => orphans,
            Err(error) => {
                tracing::warn!("cannot look for the sessions of crashed gateways: {error}");
                continue;
            }
        };
        for id in orphans {
            let log = ctx.bus.clone();
            tokio::spawn(async move { cancel_if_abandoned(log.as_ref(), id, grace).await });
        }
    }
}
