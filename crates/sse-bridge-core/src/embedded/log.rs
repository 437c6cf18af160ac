//! The embedded backend's session logs: the Redis log's behaviour in memory.
//!
//! One record per session: its metadata, its [`AttemptGate`], its entries.
//! Every operation runs under one lock and publishes through the bus's
//! [`Router`] while holding it, so the order of the log and the order of
//! live delivery are the same — the property the Redis log gets from running
//! XADD and PUBLISH in one server-side function. Logs are capped at
//! [`LogLimits::max_len`] entries and expire [`LogLimits::ttl`] after their
//! last write, like their Redis counterparts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::time::Instant;

use crate::bus::Router;
use crate::log::{
    Admission, Appended, AttemptGate, Ending, LogEntry, LogId, LogLimits, LogPage, Refusal,
    SessionMeta,
};
use crate::protocol::{ErrorCode, Event, SessionId, event_type, unix_ms};

/// Expired records are swept at most this often (and on access).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Every session log of one embedded bus.
pub(super) struct Logs {
    router: Arc<Router>,
    limits: LogLimits,
    state: Mutex<State>,
}

struct State {
    sessions: HashMap<SessionId, Record>,
    /// Aliases of sessions; an alias whose session expired resolves to nothing.
    aliases: HashMap<String, SessionId>,
    next_sweep: Instant,
}

struct Record {
    meta: SessionMeta,
    gate: AttemptGate,
    entries: VecDeque<LogEntry>,
    /// Entries were dropped from the front to respect `max_len`.
    trimmed: bool,
    last_id: LogId,
    expires: Instant,
}

impl Logs {
    pub(super) fn new(router: Arc<Router>, limits: LogLimits) -> Self {
        Logs {
            router,
            limits,
            state: Mutex::new(State {
                sessions: HashMap::new(),
                aliases: HashMap::new(),
                next_sweep: Instant::now(),
            }),
        }
    }

    pub(super) fn create(&self, id: SessionId, meta: &SessionMeta) {
        let mut state = self.lock();
        let now = Instant::now();
        if now >= state.next_sweep {
            let State {
                sessions, aliases, ..
            } = &mut *state;
            sessions.retain(|_, record| record.expires > now);
            aliases.retain(|_, id| sessions.contains_key(id));
            state.next_sweep = now + SWEEP_EVERY;
        }
        state.sessions.insert(
            id,
            Record {
                meta: meta.clone(),
                gate: AttemptGate::new(self.limits.live),
                entries: VecDeque::new(),
                trimmed: false,
                last_id: LogId::ZERO,
                expires: now + self.limits.ttl,
            },
        );
    }

    pub(super) fn meta(&self, id: SessionId) -> Option<SessionMeta> {
        self.with_record(id, |record| record.meta.clone())
    }

    pub(super) fn read(&self, id: SessionId, after: Option<LogId>, limit: usize) -> LogPage {
        self.with_record(id, |record| {
            let first = record.entries.front().map(|e| e.id);
            let history_lost =
                record.trimmed && first.is_some_and(|first| after.is_none_or(|a| a < first));
            let entries = record
                .entries
                .iter()
                .filter(|e| after.is_none_or(|a| e.id > a))
                .take(limit)
                .cloned()
                .collect();
            LogPage {
                known: true,
                entries,
                history_lost,
            }
        })
        .unwrap_or_default()
    }

    pub(super) fn append(&self, id: SessionId, event: &Event) -> Appended {
        let channel = id.event_channel();
        self.with_record(id, |record| {
            if record.meta.ended.is_some() {
                return Appended::Refused(Refusal::Ended);
            }
            match record
                .gate
                .admit(event.event_type(), event.attempt(), Instant::now())
            {
                Admission::Unbound => Appended::Refused(Refusal::NotAcked),
                Admission::Foreign => Appended::Refused(Refusal::Foreign),
                Admission::Busy => Appended::Refused(Refusal::Busy),
                Admission::Lost => {
                    let lost = Event::error(
                        ErrorCode::WorkerLost,
                        "the job was delivered again after its first attempt had started answering",
                    );
                    self.push(record, &channel, &lost);
                    Appended::Refused(Refusal::Lost)
                }
                Admission::Accept if event.event_type() == event_type::WORKER_HEARTBEAT => {
                    let receivers = self.router.deliver(&channel, Bytes::from(event.to_wire()));
                    record.expires = Instant::now() + self.limits.ttl;
                    Appended::Published {
                        receivers: receivers.delivered as u64,
                    }
                }
                Admission::Accept => self.push(record, &channel, event),
            }
        })
        .unwrap_or(Appended::Refused(Refusal::UnknownSession))
    }

    pub(super) fn end(&self, id: SessionId, terminal: &Event) -> Ending {
        let channel = id.event_channel();
        self.with_record(id, |record| match record.meta.ended {
            Some(ended) => Ending::AlreadyEnded(ended),
            None => match self.push(record, &channel, terminal) {
                Appended::Logged { id, .. } => Ending::Appended(id),
                other => unreachable!("push always logs, got {other:?}"),
            },
        })
        .unwrap_or(Ending::Unknown)
    }

    pub(super) fn add_followers(&self, id: SessionId, delta: i64) -> Option<i64> {
        self.with_record(id, |record| {
            record.meta.followers += delta;
            record.meta.followers
        })
    }

    pub(super) fn bind_alias(&self, alias: &str, id: SessionId) {
        self.lock().aliases.insert(alias.to_owned(), id);
    }

    pub(super) fn resolve_alias(&self, alias: &str) -> Option<SessionId> {
        let id = *self.lock().aliases.get(alias)?;
        self.with_record(id, |_| id)
    }

    /// Appends `event`, trims, publishes it with its `log_id`, and marks the
    /// session ended when it is terminal.
    fn push(&self, record: &mut Record, channel: &str, event: &Event) -> Appended {
        let id = next_id(record.last_id, unix_ms());
        record.last_id = id;
        record.entries.push_back(LogEntry {
            id,
            event: Bytes::copy_from_slice(event.json()),
        });
        while record.entries.len() > self.limits.max_len.max(1) {
            record.entries.pop_front();
            record.trimmed = true;
        }
        if event.is_terminal() {
            record.meta.ended = Some(id);
        }
        record.expires = Instant::now() + self.limits.ttl;
        let routed = self
            .router
            .deliver(channel, published_message(event.json(), id));
        Appended::Logged {
            id,
            receivers: routed.delivered as u64,
        }
    }

    /// Runs `f` on the session's record unless it is unknown or expired.
    fn with_record<T>(&self, id: SessionId, f: impl FnOnce(&mut Record) -> T) -> Option<T> {
        let mut state = self.lock();
        let now = Instant::now();
        let record = state.sessions.get_mut(&id)?;
        if record.expires <= now {
            state.sessions.remove(&id);
            return None;
        }
        Some(f(record))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is completed before the guard drops; a panic in
        // between cannot leave a record half-written that matters here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The next entry id after `last` at wall-clock `now_ms`, as Redis makes them.
fn next_id(last: LogId, now_ms: u64) -> LogId {
    if now_ms > last.ms {
        LogId::new(now_ms, 0)
    } else {
        LogId::new(last.ms, last.seq + 1)
    }
}

/// The live message of a logged event: its JSON with `"log_id"` added last,
/// as the Redis function builds it.
fn published_message(json: &[u8], id: LogId) -> Bytes {
    let mut message = Vec::with_capacity(json.len() + 40);
    message.extend_from_slice(&json[..json.len() - 1]);
    message.extend_from_slice(format!(",\"log_id\":\"{id}\"}}").as_bytes());
    Bytes::from(message)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::OnDisconnect;

    #[tokio::test(start_paused = true)]
    async fn a_log_expires_its_ttl_after_the_last_write() {
        let limits = LogLimits {
            max_len: 10,
            ttl: Duration::from_secs(60),
            ..LogLimits::default()
        };
        let logs = Logs::new(
            Router::new(crate::bus::SubscriptionBound::messages(8), |_| {}),
            limits,
        );
        let id = SessionId::new();
        logs.create(
            id,
            &SessionMeta::new("anonymous", "native", OnDisconnect::Cancel),
        );
        tokio::time::advance(Duration::from_secs(50)).await;
        let ack = Event::new(event_type::WORKER_ACK, serde_json::json!({}));
        assert!(matches!(logs.append(id, &ack), Appended::Logged { .. }));
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(logs.meta(id).is_some(), "the write refreshed the TTL");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(logs.meta(id).is_none());
        assert_eq!(
            logs.append(id, &ack),
            Appended::Refused(Refusal::UnknownSession)
        );
    }

    #[test]
    fn ids_grow_like_redis_stream_ids() {
        assert_eq!(next_id(LogId::new(5, 3), 9), LogId::new(9, 0));
        assert_eq!(next_id(LogId::new(9, 0), 9), LogId::new(9, 1));
        assert_eq!(
            next_id(LogId::new(9, 1), 8),
            LogId::new(9, 2),
            "the clock went back"
        );
    }
}
