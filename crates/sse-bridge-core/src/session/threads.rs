//! A run's place on its thread (PROTOCOL §8), around the session's life.
//!
//! * [`open`]: before the job is dispatched, the run is added to its
//!   thread; a resume is checked and its interrupts answered in the same
//!   write (read → `thread::rule` → compare-and-set, re-decided when another
//!   gateway wrote first: of two resumes of one interrupt, one wins).
//! * [`settle`]: after a run's terminal event, its status (and an
//!   interrupted run's interrupts) goes on the record. The creator's stream
//!   does it when it ends; a run nobody watched to its end is settled from
//!   its log when the thread is next read or resumed, so the record never
//!   depends on a client staying connected.
//! * [`view`]: `GET /v1/threads/{id}` — the record, its live runs settled.

use std::time::Duration;

use serde_json::{Map, Value};

use super::SessionContext;
use crate::error::BrokerError;
use crate::log::{EventLog, PageLimit};
use crate::metrics as m;
use crate::protocol::{ErrorCode, Event, SessionId, event_type, unix_ms};
use crate::thread::answers::Answers;
use crate::thread::{
    Interrupt, Parent, ResumeEntry, RunStatus, ThreadId, ThreadRecord, ThreadRefusal,
};

/// Writes re-decided at most this often before giving up (→ 503).
const MAX_WRITE_ATTEMPTS: usize = 16;

/// Why a thread could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    #[error(transparent)]
    Refused(ThreadRefusal),
    #[error("the thread's record is unavailable: {0}")]
    Unavailable(#[from] BrokerError),
    #[error("the thread's record kept changing under this write; retry")]
    Contended,
}

/// How a new run asks to join its thread.
#[derive(Debug, Clone)]
pub struct ThreadRun {
    pub thread: ThreadId,
    pub answers: Answers,
}

/// What [`open`] did: the run is on its thread; a resume also names its
/// parent and the entries it answered with.
#[derive(Debug)]
pub struct Joined {
    pub parent: Option<Parent>,
    pub entries: Option<Vec<ResumeEntry>>,
}

/// Adds run `session` (asked with `request`) of `principal` to its thread.
pub(super) async fn open(
    ctx: &SessionContext,
    run: &ThreadRun,
    principal: &str,
    session: SessionId,
    request: &Map<String, Value>,
) -> Result<Joined, ThreadError> {
    let store = &*ctx.bus;
    let resuming = !run.answers.is_empty();
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let stored = store.load_thread(&run.thread).await?;
        let mut record = stored.record;
        // The run a resume answers may have ended a moment ago, its end
        // not recorded yet: read it from its log first.
        if let Some(record) = record.as_mut() {
            settle_newest(store, record).await?;
        }
        let open_now = record.as_ref().map_or(&[][..], |r| r.open.as_slice());
        let entries = run.answers.resolve(open_now);
        let decided = ThreadRecord::open_run(
            record.as_ref(),
            principal,
            session,
            request,
            entries.as_deref(),
            unix_ms(),
        );
        let opened = match decided {
            Ok(opened) => opened,
            Err(refusal) => {
                if resuming {
                    metrics::counter!(m::RESUMES, "status" => refusal.label()).increment(1);
                }
                return Err(ThreadError::Refused(refusal));
            }
        };
        let ttl = ctx.config.thread_ttl;
        if store
            .store_thread(&run.thread, stored.revision, &opened.record, ttl)
            .await?
        {
            if opened.parent.is_some() {
                metrics::counter!(m::RESUMES, "status" => "accepted").increment(1);
            }
            return Ok(Joined {
                parent: opened.parent,
                entries,
            });
        }
        metrics::counter!(m::THREAD_WRITE_CONFLICTS).increment(1);
    }
    Err(ThreadError::Contended)
}

/// A run that was opened but never dispatched: it failed, and the
/// interrupts it answered are open again, so the client can resume again.
pub(super) async fn undo(
    ctx: &SessionContext,
    thread: &ThreadId,
    session: SessionId,
    joined: &Joined,
) {
    let store = &*ctx.bus;
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let Ok(stored) = store.load_thread(thread).await else {
            return;
        };
        let Some(mut record) = stored.record else {
            return;
        };
        let newest = record.runs.last().map(|run| run.session_id) == Some(session);
        if !record.finish_run(session, RunStatus::Failed, Vec::new()) {
            return;
        }
        if let (true, Some(parent)) = (newest, &joined.parent) {
            record.reopen(parent);
        }
        match store
            .store_thread(thread, stored.revision, &record, ctx.config.thread_ttl)
            .await
        {
            Ok(true) | Err(_) => return,
            Ok(false) => metrics::counter!(m::THREAD_WRITE_CONFLICTS).increment(1),
        }
    }
}

/// Records how run `session` of `thread` ended, read from its log.
pub(crate) async fn settle(
    log: &dyn EventLog,
    thread: &ThreadId,
    session: SessionId,
    ttl: Duration,
) {
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let result = async {
            let stored = log.load_thread(thread).await?;
            let Some(mut record) = stored.record else {
                return Ok(true);
            };
            if record
                .run(session)
                .is_none_or(|run| run.status != RunStatus::Live)
            {
                return Ok(true);
            }
            let Some((status, interrupts)) = run_end(log, session).await? else {
                return Ok(true);
            };
            let interrupted = status == RunStatus::Interrupted;
            record.finish_run(session, status, interrupts);
            let written = log
                .store_thread(thread, stored.revision, &record, ttl)
                .await?;
            if written && interrupted {
                metrics::counter!(m::INTERRUPTS_RAISED).increment(1);
            }
            Ok::<_, BrokerError>(written)
        }
        .await;
        match result {
            Ok(true) => return,
            Ok(false) => metrics::counter!(m::THREAD_WRITE_CONFLICTS).increment(1),
            Err(error) => {
                tracing::warn!(%thread, session_id = %session, "run end not recorded on its thread: {error}");
                return;
            }
        }
    }
}

/// The thread's record for its owner, its live runs settled first.
pub async fn view(
    ctx: &SessionContext,
    thread: &ThreadId,
    principal: &str,
) -> Result<ThreadRecord, ThreadError> {
    let store = &*ctx.bus;
    let stored = store.load_thread(thread).await?;
    let record = match stored.record {
        Some(record) if record.owner == principal => record,
        _ => return Err(ThreadError::Refused(ThreadRefusal::NotFound)),
    };
    let live: Vec<SessionId> = record
        .runs
        .iter()
        .filter(|run| run.status == RunStatus::Live)
        .map(|run| run.session_id)
        .collect();
    if live.is_empty() {
        return Ok(record);
    }
    for session in live {
        settle(store, thread, session, ctx.config.thread_ttl).await;
    }
    let stored = store.load_thread(thread).await?;
    stored
        .record
        .filter(|record| record.owner == principal)
        .ok_or(ThreadError::Refused(ThreadRefusal::NotFound))
}

/// Settles the record's newest run in place when its log says it ended.
async fn settle_newest(log: &dyn EventLog, record: &mut ThreadRecord) -> Result<(), BrokerError> {
    let Some(newest) = record
        .runs
        .last()
        .filter(|run| run.status == RunStatus::Live)
    else {
        return Ok(());
    };
    let session = newest.session_id;
    if let Some((status, interrupts)) = run_end(log, session).await? {
        record.finish_run(session, status, interrupts);
        if status == RunStatus::Interrupted {
            metrics::counter!(m::INTERRUPTS_RAISED).increment(1);
        }
    }
    Ok(())
}

/// How run `session` ended, from its log's terminal event; `None` while it
/// is live. A log that is gone (expired, lost) ended the run as failed.
async fn run_end(
    log: &dyn EventLog,
    session: SessionId,
) -> Result<Option<(RunStatus, Vec<Interrupt>)>, BrokerError> {
    let Some(meta) = log.meta(session).await? else {
        return Ok(Some((RunStatus::Failed, Vec::new())));
    };
    let Some(ended) = meta.ended else {
        return Ok(None);
    };
    let page = log
        .read(
            session,
            ended.previous(),
            PageLimit {
                entries: 1,
                bytes: usize::MAX,
            },
        )
        .await?;
    let terminal = page
        .entries
        .first()
        .filter(|entry| entry.id == ended)
        .and_then(|entry| Event::parse(&entry.event, usize::MAX).ok());
    Ok(Some(
        terminal.map_or((RunStatus::Failed, Vec::new()), |event| status_of(&event)),
    ))
}

/// A terminal event's run status (and an interrupt's interrupts).
fn status_of(terminal: &Event) -> (RunStatus, Vec<Interrupt>) {
    match terminal.event_type() {
        event_type::ANSWER_END => (RunStatus::Completed, Vec::new()),
        event_type::INTERRUPT => match Interrupt::parse_all(&terminal.payload()) {
            Ok(interrupts) => (RunStatus::Interrupted, interrupts),
            Err(error) => {
                tracing::warn!(
                    "an interrupt that cannot be resumed ends its run as failed: {error}"
                );
                (RunStatus::Failed, Vec::new())
            }
        },
        event_type::ERROR if terminal.error_code() == Some(ErrorCode::Cancelled) => {
            (RunStatus::Cancelled, Vec::new())
        }
        _ => (RunStatus::Failed, Vec::new()),
    }
}
