//! The embedded backend's session logs: the Redis log's behaviour in memory.
//!
//! One record per session: its metadata, its [`AttemptGate`], its entries.
//! Every operation runs under one lock and publishes through the bus's
//! [`Router`] while holding it, so the order of the log and the order of
//! live delivery are the same — the property the Redis log gets from running
//! XADD and PUBLISH in one server-side function. Logs are bounded by
//! [`LogLimits::max_bytes`] (their head folded by [`crate::log::fold`]'s
//! rule) and expire [`LogLimits::ttl`] after their last write, like their
//! Redis counterparts. Aliases are claimed by their first owner and expire
//! the log's TTL after their last claim, as the Redis function
//! `sse_bridge_v4_claim` keeps them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::time::Instant;

use crate::bus::Router;
use crate::log::fold::{self, Folder};
use crate::log::{
    Admission, Appended, AttemptGate, Claim, Ending, FoldedEntry, LogEntry, LogId, LogLimits,
    LogPage, PageLimit, Refusal, SessionMeta,
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
    aliases: HashMap<String, Alias>,
    next_sweep: Instant,
}

/// Who holds an alias, and the session it names until it expires.
struct Alias {
    owner: String,
    session: SessionId,
    expires: Instant,
}

struct Record {
    meta: SessionMeta,
    gate: AttemptGate,
    /// The head of the log, folded (see `crate::log::fold`).
    folded: VecDeque<FoldedEntry>,
    folded_bytes: usize,
    /// The last entry dropped from the folded head, if any was.
    dropped: Option<LogId>,
    /// The entries as they were appended, after the folded head.
    entries: VecDeque<LogEntry>,
    entries_bytes: usize,
    last_id: LogId,
    expires: Instant,
}

impl Record {
    /// Folds the oldest entries while the appended ones are over their share
    /// (down to three quarters of it, at most a batch at a time, as
    /// `functions.lua` does), then drops the oldest folded ones while those
    /// are over theirs.
    fn bound(&mut self, limits: &LogLimits) {
        if self.entries_bytes > limits.tail_bytes() {
            let target = fold::fold_target(limits.tail_bytes());
            let mut folder = Folder::new(self.folded.back());
            let mut batch = 0;
            while self.entries_bytes > target
                && batch < fold::FOLD_BATCH
                && let Some(entry) = self.entries.pop_front()
            {
                self.entries_bytes -= entry.event.len();
                folder.push(&entry);
                batch += 1;
            }
            let folded = folder.finish();
            if folded.replaces_last
                && let Some(replaced) = self.folded.pop_back()
            {
                self.folded_bytes -= replaced.event.len();
            }
            for entry in folded.entries {
                self.folded_bytes += entry.event.len();
                self.folded.push_back(entry);
            }
        }
        while self.folded_bytes > limits.folded_bytes()
            && let Some(dropped) = self.folded.pop_front()
        {
            self.folded_bytes -= dropped.event.len();
            self.dropped = Some(dropped.last);
        }
    }
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
            aliases.retain(|_, alias| alias.expires > now);
            state.next_sweep = now + SWEEP_EVERY;
        }
        state.sessions.insert(
            id,
            Record {
                meta: meta.clone(),
                gate: AttemptGate::new(self.limits.live),
                folded: VecDeque::new(),
                folded_bytes: 0,
                dropped: None,
                entries: VecDeque::new(),
                entries_bytes: 0,
                last_id: LogId::ZERO,
                expires: now + self.limits.ttl,
            },
        );
    }

    pub(super) fn meta(&self, id: SessionId) -> Option<SessionMeta> {
        self.with_record(id, |record| record.meta.clone())
    }

    pub(super) fn read(&self, id: SessionId, after: Option<LogId>, limit: PageLimit) -> LogPage {
        self.with_record(id, |record| {
            let unread = |entry_id: LogId| after.is_none_or(|a| entry_id > a);
            let folded = record.folded.iter().skip_while(|e| !unread(e.last));
            let lost = fold::history_gap(after, record.dropped, folded.clone().next());
            if lost.is_some() {
                return LogPage {
                    known: true,
                    lost,
                    ..LogPage::default()
                };
            }
            let mut unread_entries = folded
                .map(FoldedEntry::to_log_entry)
                .chain(record.entries.iter().filter(|e| unread(e.id)).cloned());
            let mut entries = Vec::new();
            let mut bytes = 0;
            let more = loop {
                if entries.len() >= limit.entries.max(1)
                    || (bytes >= limit.bytes && !entries.is_empty())
                {
                    break true;
                }
                match unread_entries.next() {
                    Some(entry) => {
                        bytes += entry.event.len();
                        entries.push(entry);
                    }
                    None => break false,
                }
            };
            LogPage {
                known: true,
                entries,
                more,
                lost: None,
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

    pub(super) fn claim_alias(&self, alias: &str, owner: &str, session: SessionId) -> Claim {
        let now = Instant::now();
        let mut state = self.lock();
        let held_by_another = state
            .aliases
            .get(alias)
            .is_some_and(|held| held.expires > now && held.owner != owner);
        if held_by_another {
            return Claim::Taken;
        }
        let claimed = Alias {
            owner: owner.to_owned(),
            session,
            expires: now + self.limits.ttl,
        };
        state.aliases.insert(alias.to_owned(), claimed);
        Claim::Bound
    }

    pub(super) fn resolve_alias(&self, alias: &str) -> Option<SessionId> {
        let state = self.lock();
        let alias = state.aliases.get(alias)?;
        (alias.expires > Instant::now()).then_some(alias.session)
    }

    /// Appends `event`, trims, publishes it with its `log_id`, and marks the
    /// session ended when it is terminal.
    fn push(&self, record: &mut Record, channel: &str, event: &Event) -> Appended {
        let id = next_id(record.last_id, unix_ms());
        record.last_id = id;
        // Stored as the Redis log stores it (with the sender's `attempt`,
        // which readers drop), so both bound the same bytes.
        let stored = Bytes::from(event.to_wire());
        record.entries_bytes += stored.len();
        record.entries.push_back(LogEntry { id, event: stored });
        record.bound(&self.limits);
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
            max_bytes: 1000,
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

    #[tokio::test(start_paused = true)]
    async fn an_alias_is_free_again_its_ttl_after_its_last_claim() {
        let limits = LogLimits {
            ttl: Duration::from_secs(60),
            ..LogLimits::default()
        };
        let logs = Logs::new(
            Router::new(crate::bus::SubscriptionBound::messages(8), |_| {}),
            limits,
        );
        let (alices, bobs) = (SessionId::new(), SessionId::new());
        assert_eq!(
            logs.claim_alias("chat:c", "key:alice", alices),
            Claim::Bound
        );
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(logs.claim_alias("chat:c", "key:bob", bobs), Claim::Taken);
        assert_eq!(logs.resolve_alias("chat:c"), Some(alices));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(logs.resolve_alias("chat:c"), None);
        assert_eq!(logs.claim_alias("chat:c", "key:bob", bobs), Claim::Bound);
        assert_eq!(logs.resolve_alias("chat:c"), Some(bobs));
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
