//! One session from request to last frame: record, subscribe, dispatch,
//! stream; follow, resume and cancel it.
//!
//! * [`start`] performs PROTOCOL §3.2 (claim the client's chat or run id,
//!   record the session's metadata, subscribe, wait for the confirmation,
//!   then dispatch the job).
//! * [`follow`] (`follow.rs`) opens a follower's stream: replay the log
//!   after `Last-Event-ID`, then live.
//! * Either becomes the response body through [`LiveSession::into_stream`]
//!   (`stream/`), which drives the [`machine::SessionMachine`] over the
//!   subscription and the log (`stream/catch_up.rs`: the log side).
//! * [`cancel`] (`cancel.rs`): `DELETE`, gateway-decided ends, what happens
//!   when a client leaves (`cancel_grace`) and when its gateway crashed.
//! * `patience.rs`: starts and follows wait out a broker blip.
//! * [`threads`] (`threads.rs`): a run's place on its thread — opened (a
//!   resume answered) before dispatch, settled after its end (PROTOCOL §8).

mod cancel;
mod coalesce;
mod follow;
mod limit;
pub mod machine;
mod outbox;
mod patience;
mod stream;
pub mod threads;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::BrokerError;
use crate::format::Format;
use crate::log::{Claim, EventLog, SessionMeta};
use crate::protocol::{ErrorCode, Event, Job, SessionId, SessionRequest};
use crate::queue::JobDispatcher;
use patience::Patience;
use threads::{Joined, ThreadError, ThreadRun};

pub use cancel::{CancelError, cancel, sweep_orphans};
pub use follow::{FollowError, Followed, follow, follow_chat, follow_run};
pub use limit::{SessionLimit, Slot};
pub use machine::{Failure, Outcome, Progress, SessionConfig, SessionMachine, SessionStats};
pub use stream::{LiveSession, MAX_CHUNK_BYTES, Role};

/// The backends and settings every session of a gateway shares.
#[derive(Clone)]
pub struct SessionContext {
    /// The event bus with its session logs.
    pub bus: Arc<dyn EventLog>,
    pub dispatcher: Arc<dyn JobDispatcher>,
    /// One copy shared by every stream.
    pub config: Arc<SessionConfig>,
    /// Give up on record + subscribe + dispatch after this long (→ 503);
    /// a broker that is reconnecting meanwhile is waited for.
    pub start_timeout: Duration,
    /// Cancelled at shutdown: live sessions end with `server_shutdown`.
    pub shutdown: CancellationToken,
    /// Live sessions allowed at once in this process.
    pub limit: SessionLimit,
}

/// How a new session is served: its format and the ids its client knows
/// it by (recorded in the metadata, and as aliases any gateway can resolve).
#[derive(Debug, Clone)]
pub struct Presentation {
    pub format: Format,
    /// AG-UI `threadId` / `runId`: `RUN_STARTED` and `RUN_FINISHED` carry them.
    pub thread_id: Option<String>,
    pub run_id: Option<String>,
    /// AI SDK chat id: `GET /v1/ai-sdk/chat/{id}/stream` finds the session by it.
    pub chat_id: Option<String>,
    /// The AI SDK assistant message the stream continues (a resume answers
    /// inside the last assistant message, and its output goes on there).
    pub message_id: Option<String>,
    /// The thread the run belongs to, and what its request answers.
    pub thread: Option<ThreadRun>,
}

impl Presentation {
    /// `POST /v1/react/sessions`.
    pub fn native() -> Self {
        Presentation {
            format: Format::Native,
            thread_id: None,
            run_id: None,
            chat_id: None,
            message_id: None,
            thread: None,
        }
    }
}

/// The alias of an AI SDK chat's live session.
pub fn chat_alias(chat_id: &str) -> String {
    format!("chat:{chat_id}")
}

/// The alias of an AG-UI run's session.
pub fn run_alias(run_id: &str) -> String {
    format!("ag-ui-run:{run_id}")
}

/// A client-chosen id another principal already holds (the client gets a 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameTaken {
    #[error("this chat id belongs to another user; start the chat under a new id")]
    ChatId,
    #[error("this run id belongs to another user; start the run under a new runId")]
    RunId,
}

/// Why a session could not start (the client gets a 503, a 429 or a 409).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("this gateway is at its limit of live sessions; retry later")]
    AtCapacity,
    #[error("too many live sessions for this principal; retry when one has ended")]
    PrincipalAtCapacity,
    #[error(transparent)]
    NameTaken(NameTaken),
    #[error(transparent)]
    Thread(ThreadError),
    #[error("could not record the session: {0}")]
    Record(BrokerError),
    #[error("could not subscribe to the session's event channel: {0}")]
    Subscribe(BrokerError),
    #[error("could not dispatch the job to the workers: {0}")]
    Dispatch(BrokerError),
}

impl StartError {
    fn label(&self) -> &'static str {
        match self {
            StartError::AtCapacity => "at_capacity",
            StartError::PrincipalAtCapacity => "principal_at_capacity",
            StartError::NameTaken(NameTaken::ChatId) => "chat_id_taken",
            StartError::NameTaken(NameTaken::RunId) => "run_id_taken",
            StartError::Thread(ThreadError::Refused(refusal)) => refusal.label(),
            StartError::Thread(_) => "thread_unavailable",
            StartError::Record(_) => "record",
            StartError::Subscribe(_) => "subscribe",
            StartError::Dispatch(_) => "dispatch",
        }
    }
}

/// Records a new session, subscribes to its events, then dispatches its job.
///
/// On error nothing is left running: the subscription is dropped (and so
/// unsubscribed) before this returns, and a recorded session that could not
/// be dispatched is ended in its log.
pub async fn start(
    ctx: &SessionContext,
    principal: &str,
    request: SessionRequest,
    presentation: Presentation,
) -> Result<LiveSession, StartError> {
    let id = SessionId::new();
    let result = start_with_id(ctx, id, principal, request, presentation).await;
    if let Err(error) = &result {
        metrics::counter!(crate::metrics::SESSIONS_REFUSED, "reason" => error.label()).increment(1);
        tracing::warn!(session_id = %id, "session refused: {error}");
    }
    result
}

async fn start_with_id(
    ctx: &SessionContext,
    id: SessionId,
    principal: &str,
    mut request: SessionRequest,
    presentation: Presentation,
) -> Result<LiveSession, StartError> {
    let slot = ctx.limit.try_take(principal)?;
    let timeout = ctx.start_timeout;
    let patience = Patience::new(timeout);
    let mut meta = SessionMeta::new(
        principal,
        presentation.format.as_str(),
        request.on_disconnect(),
    );
    let thread = presentation.thread;
    meta.thread_id = presentation
        .thread_id
        .or_else(|| thread.as_ref().map(|run| run.thread.to_string()));
    meta.run_id = presentation.run_id;
    meta.chat_id = presentation.chat_id;
    meta.message_id = presentation.message_id;
    record(ctx, id, &meta, patience).await?;
    let joined = match &thread {
        Some(run) => match threads::open(ctx, run, principal, id, request.as_object()).await {
            Ok(joined) => Some((run, joined)),
            Err(error) => {
                let refused = Event::error(
                    ErrorCode::Cancelled,
                    format!("the run was refused: {error}"),
                );
                let _ = tokio::time::timeout(timeout, ctx.bus.end(id, &refused)).await;
                return Err(StartError::Thread(error));
            }
        },
        None => None,
    };
    let job = job_of(
        id,
        &mut request,
        joined.as_ref().map(|(run, joined)| (*run, joined)),
    );
    let started = subscribe_and_dispatch(ctx, id, &job, patience).await;
    let subscription = match started {
        Ok(subscription) => subscription,
        Err(error) => {
            if let Some((run, joined)) = &joined {
                threads::undo(ctx, &run.thread, id, joined).await;
            }
            return Err(error);
        }
    };
    Ok(LiveSession::creator(
        ctx,
        id,
        &meta,
        request.model_alias(),
        thread.map(|run| run.thread),
        subscription,
        slot,
    ))
}

/// The job of run `id`: on a thread, its request names the thread and, for
/// a resume, the entries it answered with (whatever format the client sent
/// them in) and its parent's query when it asked none of its own.
fn job_of(
    id: SessionId,
    request: &mut SessionRequest,
    thread: Option<(&ThreadRun, &Joined)>,
) -> Job {
    let Some((run, joined)) = thread else {
        return Job::new(id, request.clone());
    };
    request.set("thread_id", run.thread.to_string().into());
    if let Some(entries) = &joined.entries {
        let entries = serde_json::to_value(entries).expect("resume entries serialise");
        request.set("resume", entries);
    }
    let parent = joined.parent.as_ref();
    if request.user_query().is_empty()
        && let Some(query) = parent
            .and_then(|p| p.request.as_ref())
            .and_then(|r| r.get("user_query"))
    {
        request.set("user_query", query.clone());
    }
    let mut job = Job::new(id, request.clone());
    if let Some(parent) = parent {
        job.parent_session_id = Some(parent.session_id);
        job.parent_request = parent.request.clone();
        job.interrupts = Some(
            parent
                .interrupts
                .iter()
                .map(|i| serde_json::Value::Object(i.as_object().clone()))
                .collect(),
        );
    }
    job
}

/// Subscribes to the session's events, then dispatches its job; a job that
/// could not be dispatched ends the session in its log.
async fn subscribe_and_dispatch(
    ctx: &SessionContext,
    id: SessionId,
    job: &Job,
    patience: Patience,
) -> Result<crate::bus::Subscription, StartError> {
    let channel = id.event_channel();
    let subscription = patience
        .run(|| ctx.bus.subscribe(&channel))
        .await
        .map_err(StartError::Subscribe)?;
    let dispatched = patience.run(|| ctx.dispatcher.dispatch(job)).await;
    if let Err(error) = dispatched {
        let never_ran = Event::error(
            ErrorCode::BrokerUnavailable,
            "the job could not be dispatched",
        );
        let _ = tokio::time::timeout(ctx.start_timeout, ctx.bus.end(id, &never_ran)).await;
        return Err(StartError::Dispatch(error));
    }
    Ok(subscription)
}

/// Claims the aliases a new session's client knows it by, then writes its
/// metadata. Claims come first so that a name another principal holds
/// refuses the session before anything of it exists.
async fn record(
    ctx: &SessionContext,
    id: SessionId,
    meta: &SessionMeta,
    patience: Patience,
) -> Result<(), StartError> {
    let chat = meta
        .chat_id
        .as_deref()
        .map(|chat_id| (chat_alias(chat_id), NameTaken::ChatId));
    let run = meta
        .run_id
        .as_deref()
        .map(|run_id| (run_alias(run_id), NameTaken::RunId));
    for (alias, taken) in [chat, run].into_iter().flatten() {
        let claim = patience
            .run(|| ctx.bus.claim_alias(&alias, &meta.principal, id))
            .await;
        match claim.map_err(StartError::Record)? {
            Claim::Bound => {}
            Claim::Taken => return Err(StartError::NameTaken(taken)),
        }
    }
    patience
        .run(|| ctx.bus.create(id, meta))
        .await
        .map_err(StartError::Record)
}
