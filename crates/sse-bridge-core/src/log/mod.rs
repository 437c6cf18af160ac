//! The per-session event log (PROTOCOL §4): what makes a session durable.
//!
//! Pub/Sub forgets; the log does not. Every event a worker sends is appended
//! to its session's log *and* published in one atomic step
//! ([`EventLog::append`]), and the published message carries the entry's
//! [`LogId`] in the reserved `log_id` field. A reader that subscribes first
//! and reads the log second therefore sees every event at least once, and
//! drops live messages whose id it already read: no gap, no duplicate. That
//! is how a follower joins or resumes (`GET …/events`, [`crate::session::follow`])
//! and how a session catches up after its broker link dropped.
//!
//! The log also decides, atomically with the append, which attempt owns the
//! session ([`attempts`]), and it refuses writes once the session ended, so
//! a log holds exactly one attempt's events and ends with exactly one
//! terminal event. Events the gateway decides itself (timeouts, cancel,
//! shutdown) are appended through [`EventLog::end`], which appends only if
//! no terminal event is there yet.
//!
//! Backends: Redis (a Stream per session plus a metadata hash, written by
//! server-side functions; `sse-bridge-redis`) and the embedded in-memory log
//! ([`crate::embedded`]), bounded and expiring alike.

pub mod attempts;
pub mod fold;
mod id;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::bus::EventBus;
use crate::error::BrokerError;
use crate::protocol::{Event, OnDisconnect, SessionId};
use crate::thread::ThreadStore;

pub use attempts::{Admission, AttemptGate};
pub use fold::{FoldedEntry, HistoryLost};
pub use id::{InvalidLogId, LogId};

/// How long and how large a session's log may grow, and how long its
/// attempt counts as live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes of event JSON kept per session: half for the entries as they
    /// were appended, half for the folded head ([`fold`]); past both, the
    /// oldest folded entries are dropped.
    pub max_bytes: usize,
    /// A log and its metadata expire this long after their last write.
    pub ttl: Duration,
    /// The attempt serving a session counts as live this long after its last
    /// ack, event or heartbeat: another attempt's ack is refused as
    /// [`Refusal::Busy`] meanwhile ([`attempts`]). Recorded per session at
    /// creation, so the gateway that creates a session decides.
    pub live: Duration,
}

impl LogLimits {
    /// The appended entries' share: past it, the oldest are folded.
    pub fn tail_bytes(&self) -> usize {
        (self.max_bytes / 2).max(1)
    }

    /// The folded head's share: past it, its oldest entries are dropped.
    pub fn folded_bytes(&self) -> usize {
        (self.max_bytes - self.max_bytes / 2).max(1)
    }
}

/// Three missed heartbeats of the default 5 s, as the gateway's `worker_lost` check.
pub const DEFAULT_LIVE: Duration = Duration::from_secs(15);

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            // A 100,000-piece answer (1 MB of text, ~7 MB as pieces) replays
            // whole: its last ~2 MiB as appended, the rest folded.
            max_bytes: 4 << 20,
            ttl: Duration::from_secs(3600),
            live: DEFAULT_LIVE,
        }
    }
}

/// How much one [`EventLog::read`] returns at most (at least one entry when
/// there is one, however large).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    pub entries: usize,
    pub bytes: usize,
}

/// What the gateway records about a session when it creates it, before the
/// job is dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMeta {
    /// Who created the session, namespaced by how it authenticated
    /// (`key:<name>`, `jwt:<iss>:<sub>`; `anonymous` while authentication is off).
    pub principal: String,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    /// Output format of the creating endpoint (`native`, `ag-ui`, `ai-sdk`).
    pub format: String,
    /// AG-UI thread and run ids, AI SDK chat id: what the format's client
    /// knows the session by.
    pub thread_id: Option<String>,
    pub run_id: Option<String>,
    pub chat_id: Option<String>,
    /// The AI SDK assistant message a resumed chat run continues.
    pub message_id: Option<String>,
    pub on_disconnect: OnDisconnect,
    /// The id of the log's terminal event, once the session ended.
    pub ended: Option<LogId>,
    /// Streams following the session now, its creator's included.
    pub followers: i64,
}

impl SessionMeta {
    /// Metadata of a session created now by `principal` in `format`.
    pub fn new(principal: &str, format: &str, on_disconnect: OnDisconnect) -> Self {
        SessionMeta {
            principal: principal.to_owned(),
            created_at_ms: crate::protocol::unix_ms(),
            format: format.to_owned(),
            thread_id: None,
            run_id: None,
            chat_id: None,
            message_id: None,
            on_disconnect,
            ended: None,
            followers: 1,
        }
    }
}

/// One logged event: its id and its JSON (without the envelope's `log_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: LogId,
    pub event: Bytes,
}

/// A slice of a log read by [`EventLog::read`]: the folded head's entries
/// first, then the appended ones, in one order.
#[derive(Debug, Default)]
pub struct LogPage {
    /// The session exists (`false`: unknown, expired, or lost by a broker
    /// restarted without persistence).
    pub known: bool,
    /// Entries after the requested id, oldest first.
    pub entries: Vec<LogEntry>,
    /// The page stopped at its limit: the log may hold more.
    pub more: bool,
    /// The log cannot serve a replay from the requested id without a gap
    /// (then `entries` is empty).
    pub lost: Option<HistoryLost>,
}

/// What [`EventLog::append`] did with a worker's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Logged under `id` and published to `receivers` gateways.
    Logged { id: LogId, receivers: u64 },
    /// Published live only (`worker_heartbeat`s are not logged).
    Published { receivers: u64 },
    /// Not logged, not published: the sender should stop working on it.
    Refused(Refusal),
}

/// Why the log refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the session is unknown or expired")]
    UnknownSession,
    #[error("the session has ended")]
    Ended,
    #[error("no attempt has acknowledged the job yet: send worker_ack first")]
    NotAcked,
    #[error("the session belongs to another attempt")]
    Foreign,
    #[error("another attempt is serving this session")]
    Busy,
    #[error("another attempt had already produced output: the session ended with worker_lost")]
    Lost,
}

impl Refusal {
    /// The machine-readable form, shared with the Redis functions.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownSession => "unknown",
            Refusal::Ended => "ended",
            Refusal::NotAcked => "not_acked",
            Refusal::Foreign => "foreign",
            Refusal::Busy => "busy",
            Refusal::Lost => "lost",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        [
            Refusal::UnknownSession,
            Refusal::Ended,
            Refusal::NotAcked,
            Refusal::Foreign,
            Refusal::Busy,
            Refusal::Lost,
        ]
        .into_iter()
        .find(|r| r.as_str() == label)
    }
}

/// What [`EventLog::claim_alias`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The alias now names the claiming session.
    Bound,
    /// Another principal holds the alias; it still names that one's session.
    Taken,
}

/// What [`EventLog::end`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The terminal event was appended (and published) under this id.
    Appended(LogId),
    /// The session had already ended; its terminal event has this id.
    AlreadyEnded(LogId),
    /// No such session (unknown or expired).
    Unknown,
}

/// The event bus plus a durable log per session (see the module doc), and
/// the thread records the sessions' runs belong to (same storage).
#[async_trait]
pub trait EventLog: EventBus + ThreadStore {
    /// Records a new session's metadata (before its job is dispatched).
    async fn create(&self, id: SessionId, meta: &SessionMeta) -> Result<(), BrokerError>;

    /// The session's metadata; `None` when unknown or expired.
    async fn meta(&self, id: SessionId) -> Result<Option<SessionMeta>, BrokerError>;

    /// The entries after `after` (from the start when `None`), up to `limit`.
    async fn read(
        &self,
        id: SessionId,
        after: Option<LogId>,
        limit: PageLimit,
    ) -> Result<LogPage, BrokerError>;

    /// A worker's event: applies the attempt rule, appends and publishes it
    /// in one atomic step.
    async fn append(&self, id: SessionId, event: &Event) -> Result<Appended, BrokerError>;

    /// The same append again after an ambiguous failure (a timeout: the
    /// first try may have been applied). An event whose [`Event::key`] is
    /// the key of the session's last logged call is not appended twice:
    /// that call's entry is answered instead (a retry comes right after the
    /// call it repeats). The default suits logs whose appends
    /// cannot fail ambiguously (in-process).
    async fn append_again(&self, id: SessionId, event: &Event) -> Result<Appended, BrokerError> {
        self.append(id, event).await
    }

    /// Several events of one session and one attempt, in order, in one
    /// step where the log can (one round trip on Redis, one live message
    /// for the batch): each is admitted as [`EventLog::append`] admits it,
    /// and the first refusal refuses the events after it too (those before
    /// it stand). One outcome per event. `again` retries a batch after an
    /// ambiguous failure: a batch whose first event's [`Event::key`] is
    /// already logged is answered, not appended twice. The default, one
    /// append after the other, suits logs in one process.
    async fn append_batch(
        &self,
        id: SessionId,
        events: &[Event],
        again: bool,
    ) -> Result<Vec<Appended>, BrokerError> {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let outcome = match outcomes.last() {
                Some(Appended::Refused(refusal)) => Appended::Refused(*refusal),
                _ if again => self.append_again(id, event).await?,
                _ => self.append(id, event).await?,
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// The gateway ends the session with `terminal` unless it already ended.
    async fn end(&self, id: SessionId, terminal: &Event) -> Result<Ending, BrokerError>;

    /// Adds `delta` to the number of this process's streams that follow the
    /// session; the new number, or `None` when the session is unknown.
    /// [`SessionMeta::followers`] sums these over the processes still alive.
    async fn add_followers(&self, id: SessionId, delta: i64) -> Result<Option<i64>, BrokerError>;

    /// Claims `alias` (an AI SDK chat, an AG-UI run) for `owner`'s session
    /// `id`, in one atomic step, for the log's TTL from now: bound when the
    /// alias is free (never used, or expired) or already `owner`'s — a later
    /// session of the same owner takes its name over — and [`Claim::Taken`],
    /// changing nothing, when another principal holds it.
    async fn claim_alias(
        &self,
        alias: &str,
        owner: &str,
        id: SessionId,
    ) -> Result<Claim, BrokerError>;

    /// The sessions that gateways which stopped renewing their presence (they
    /// crashed) were following, each handed to one caller once: their
    /// streams' departures never ran. Logs in one process have none.
    async fn orphans(&self) -> Result<Vec<SessionId>, BrokerError> {
        Ok(Vec::new())
    }

    /// The session `alias` names, if any (whoever owns it: the caller checks
    /// the session's principal, as for any session).
    async fn resolve_alias(&self, alias: &str) -> Result<Option<SessionId>, BrokerError>;
}
