//! Following and resuming a session: `GET /v1/react/sessions/{id}/events`
//! (PROTOCOL §4).
//!
//! [`follow`] answers before any byte is streamed: unknown session — or one
//! another principal created, answered the same so existence does not leak (404),
//! a resume from the terminal event (204, so an `EventSource` stops), or a
//! [`LiveSession`] in the follower role. That stream subscribes *first*,
//! then replays the log after the cursor, then goes live, dropping live
//! copies of what it replayed: no gap between replay and live, no duplicate.

use super::patience::Patience;
use super::stream::LiveSession;
use super::{SessionContext, StartError, chat_alias, run_alias};
use crate::error::BrokerError;
use crate::format::Format;
use crate::log::{LogId, PageLimit};
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

/// `principal` starts following session `id` in `format` after the logged event
/// `after` (from the start when `None`). Only the native format resumes
/// after a cursor; AG-UI and the AI SDK replay a run whole, from its start
/// frame, as their clients expect.
pub async fn follow(
    ctx: &SessionContext,
    principal: &str,
    id: SessionId,
    format: Format,
    after: Option<LogId>,
) -> Result<Followed, FollowError> {
    let after = after.filter(|_| format == Format::Native);
    open(ctx, principal, id, format, after, false).await
}

/// `GET /v1/ai-sdk/chat/{chat_id}/stream` (the AI SDK's `reconnectToStream`):
/// the chat's live message replayed from its `start` and tailed; `Ended`
/// when the chat has no live message (none started, or it is complete).
pub async fn follow_chat(
    ctx: &SessionContext,
    principal: &str,
    chat_id: &str,
) -> Result<Followed, FollowError> {
    match resolve(ctx, &chat_alias(chat_id)).await? {
        Some(id) => match open(ctx, principal, id, Format::AiSdk, None, true).await {
            // Another principal's chat of that name: nothing of ours is live.
            Err(FollowError::Unknown) => Ok(Followed::Ended),
            followed => followed,
        },
        None => Ok(Followed::Ended),
    }
}

/// `GET /v1/ag-ui/runs/{run_id}/events`: the whole run again, from
/// `RUN_STARTED`, for a page that reloads.
pub async fn follow_run(
    ctx: &SessionContext,
    principal: &str,
    run_id: &str,
) -> Result<Followed, FollowError> {
    let id = resolve(ctx, &run_alias(run_id))
        .await?
        .ok_or(FollowError::Unknown)?;
    open(ctx, principal, id, Format::AgUi, None, false).await
}

async fn resolve(ctx: &SessionContext, alias: &str) -> Result<Option<SessionId>, FollowError> {
    let timeout = ctx.start_timeout;
    tokio::time::timeout(timeout, ctx.bus.resolve_alias(alias))
        .await
        .map_err(|_| BrokerError::Timeout(timeout))
        .and_then(|resolved| resolved)
        .map_err(|e| FollowError::Unavailable(StartError::Subscribe(e)))
}

/// Opens a follower's stream; `live_only`: an ended session is `Ended`
/// whatever the cursor.
async fn open(
    ctx: &SessionContext,
    principal: &str,
    id: SessionId,
    format: Format,
    after: Option<LogId>,
    live_only: bool,
) -> Result<Followed, FollowError> {
    let slot = ctx.limit.try_take(principal)?;
    let bounded = |e: BrokerError| FollowError::Unavailable(StartError::Subscribe(e));
    let timeout = ctx.start_timeout;
    let patience = Patience::new(timeout);
    let meta = patience
        .run(|| ctx.bus.meta(id))
        .await
        .map_err(bounded)?
        .filter(|meta| meta.principal == principal)
        .ok_or(FollowError::Unknown)?;
    if let Some(ended) = meta.ended
        && (live_only || after.is_some_and(|after| after >= ended))
    {
        return Ok(Followed::Ended);
    }
    let after = match after {
        Some(after) => {
            let one = PageLimit {
                entries: 1,
                bytes: 1,
            };
            let start = tokio::time::timeout(timeout, ctx.bus.read(id, None, one))
                .await
                .map_err(|_| bounded(BrokerError::Timeout(timeout)))?
                .map_err(bounded)?;
            match (start.entries.first(), start.lost) {
                // A cursor before the first entry (`0`, say), or into an
                // empty log, has seen nothing: the follower starts from the
                // ack like any new one.
                (Some(first), _) if after < first.id => None,
                (None, None) => None,
                // Past the start, or the start is gone: the read after the
                // cursor decides.
                _ => Some(after),
            }
        }
        None => None,
    };
    let channel = id.event_channel();
    let subscription = patience
        .run(|| ctx.bus.subscribe(&channel))
        .await
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
        format,
        after,
        subscription,
        slot,
    ))))
}
