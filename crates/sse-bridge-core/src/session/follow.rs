//! Following and resuming a session: `GET /v1/react/sessions/{id}/events`
//! (PROTOCOL §4).
//!
//! [`follow`] answers before any byte is streamed: unknown session (404),
//! a resume from the terminal event (204, so an `EventSource` stops), or a
//! [`LiveSession`] in the follower role. That stream subscribes *first*,
//! then replays the log after the cursor, then goes live, dropping live
//! copies of what it replayed: no gap between replay and live, no duplicate.

use super::stream::LiveSession;
use super::{SessionContext, StartError};
use crate::error::BrokerError;
use crate::log::LogId;
use crate::protocol::SessionId;

/// What a follow request gets.
pub enum Followed {
    /// Replay after the cursor, then live, until the terminal event (boxed:
    /// it is large, and moved into the response body anyway).
    Stream(Box<LiveSession>),
    /// The cursor is the session's terminal event: nothing more will come.
    Ended,
}

/// Why a session cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("unknown or expired session")]
    Unknown,
    #[error(transparent)]
    Unavailable(#[from] StartError),
}

/// Starts following session `id` after the logged event `after` (from the
/// start when `None`).
pub async fn follow(
    ctx: &SessionContext,
    id: SessionId,
    after: Option<LogId>,
) -> Result<Followed, FollowError> {
    let slot = ctx.limit.try_take()?;
    let bounded = |e: BrokerError| FollowError::Unavailable(StartError::Subscribe(e));
    let timeout = ctx.start_timeout;
    let meta = tokio::time::timeout(timeout, ctx.bus.meta(id))
        .await
        .map_err(|_| bounded(BrokerError::Timeout(timeout)))?
        .map_err(bounded)?
        .ok_or(FollowError::Unknown)?;
    if let (Some(ended), Some(after)) = (meta.ended, after)
        && after >= ended
    {
        return Ok(Followed::Ended);
    }
    let after = match after {
        Some(after) => {
            let first = tokio::time::timeout(timeout, ctx.bus.read(id, None, 1))
                .await
                .map_err(|_| bounded(BrokerError::Timeout(timeout)))?
                .map_err(bounded)?
                .entries
                .first()
                .map(|entry| entry.id);
            // A cursor before the first entry (`0`, say) has seen nothing:
            // the follower starts from the ack like any new one.
            first.filter(|&first| after >= first).map(|_| after)
        }
        None => None,
    };
    let subscription = tokio::time::timeout(timeout, ctx.bus.subscribe(&id.event_channel()))
        .await
        .map_err(|_| bounded(BrokerError::Timeout(timeout)))?
        .map_err(bounded)?;
    // Counted before replaying, so a pending cancel_grace sees this reader.
    match ctx.bus.add_followers(id, 1).await.map_err(bounded)? {
        Some(_) => {}
        None => return Err(FollowError::Unknown),
    }
    Ok(Followed::Stream(Box::new(LiveSession::follower(
        ctx,
        id,
        &meta,
        after,
        subscription,
        slot,
    ))))
}
