//! The [`EventLog`] on Redis: a Stream and a metadata hash per session,
//! written by the server-side functions of `functions.lua`.
//!
//! Every call is one round trip on the bus's command connection: appends
//! and gateway ends are `FCALL`s (log, attempt rule, bound and PUBLISH in
//! one atomic step), reads are `FCALL_RO sse_bridge_v4_read`, metadata is
//! one `HSET` + `PEXPIRE` transaction at creation and one `HGETALL` to look
//! up; an alias is claimed by `FCALL sse_bridge_v4_claim` (one key) and
//! resolved by one `GET`. The function library is (re)loaded on every new
//! command connection, so a Redis restarted without persistence gets it back
//! with the first command; its name carries its version, so loading it
//! replaces only the same version's (see `functions.lua`).

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use sse_bridge_core::log::{
    Appended, Claim, Ending, EventLog, HistoryLost, LogEntry, LogId, LogPage, PageLimit, Refusal,
    SessionMeta,
};
use sse_bridge_core::protocol::OnDisconnect;
use sse_bridge_core::{BrokerError, Event, SessionId};

use crate::RedisBus;
use crate::keyspace::Keyspace;
use crate::presence::followers_field;

/// The function library, loaded with `FUNCTION LOAD REPLACE`.
pub const FUNCTIONS: &str = include_str!("functions.lua");

/// A function of the library, named with its version (`functions.lua`).
macro_rules! versioned {
    ($name:literal) => {
        concat!("sse_bridge_v4_", $name)
    };
}

/// What a version 1 worker caps a session's log at (it reads `max_len` from
/// the metadata): effectively nothing, since this version bounds logs in
/// bytes and a cap by entries would drop what was never folded.
const VERSION_1_MAX_LEN: u64 = 1 << 30;

/// The command that installs [`FUNCTIONS`].
pub(crate) fn load_functions() -> redis::Cmd {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(FUNCTIONS)
        .to_owned()
}

/// The key holding an alias's owner and session (`sse_alias:chat:<id>`, ...).
fn alias_key(alias: &str) -> String {
    format!("sse_alias:{alias}")
}

/// The session of an alias's value, `<owner>\n<session id>` (or a bare
/// session id, as gateways before owners wrote it).
fn aliased_session(value: &str) -> Option<SessionId> {
    let session = value
        .rsplit_once('\n')
        .map_or(value, |(_, session)| session);
    session.parse().ok()
}

/// The library's functions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Append,
    AppendBatch,
    End,
    Read,
    Follow,
    Claim,
    ThreadPut,
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Function::Append => versioned!("append"),
            Function::AppendBatch => versioned!("append_batch"),
            Function::End => versioned!("end"),
            Function::Read => versioned!("read"),
            Function::Follow => versioned!("follow"),
            Function::Claim => versioned!("claim"),
            Function::ThreadPut => versioned!("thread_put"),
        }
    }

    /// `FCALL <function>`, or `FCALL_RO` for the read-only one.
    pub(crate) fn call(self) -> redis::Cmd {
        let command = if self == Function::Read {
            "FCALL_RO"
        } else {
            "FCALL"
        };
        redis::cmd(command).arg(self.name()).to_owned()
    }
}

/// `FCALL <function> 3 <log key> <meta key> <folded key>` with the session's names.
fn fcall(function: Function, keyspace: Keyspace, id: SessionId) -> redis::Cmd {
    function
        .call()
        .arg(3)
        .arg(keyspace.log_key(id))
        .arg(keyspace.meta_key(id))
        .arg(keyspace.folded_key(id))
        .to_owned()
}

fn unexpected(what: &str, value: &Value) -> BrokerError {
    BrokerError::Rejected(format!("unexpected reply to {what}: {value:?}"))
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn log_id(value: &Value) -> Option<LogId> {
    text(value)?.parse().ok()
}

impl RedisBus {
    /// `FCALL sse_bridge_v4_append_batch` for events of one attempt: one
    /// outcome per event, the first refusal repeated for the rest.
    async fn append_batch_call(
        &self,
        id: SessionId,
        events: &[Event],
        again: bool,
    ) -> Result<Vec<Appended>, BrokerError> {
        let first = &events[0];
        let mut call = fcall(Function::AppendBatch, self.keyspace(), id);
        call.arg(first.attempt().unwrap_or_default())
            .arg(first.key().unwrap_or_default())
            .arg(if again { "again" } else { "" });
        for event in events {
            call.arg(event.to_wire()).arg(event.event_type());
        }
        let reply: Value = self.commands().query(&call).await?;
        let bad = || unexpected(Function::AppendBatch.name(), &reply);
        let Value::Array(parts) = &reply else {
            return Err(bad());
        };
        let [Value::Array(ids), refusal, receivers] = parts.as_slice() else {
            return Err(bad());
        };
        let receivers = int(receivers).unwrap_or_default().max(0) as u64;
        let refusal = match text(refusal).as_deref() {
            Some("") => None,
            Some(label) => Some(Refusal::from_label(label).ok_or_else(bad)?),
            None => return Err(bad()),
        };
        if ids.len() > events.len() {
            return Err(bad());
        }
        let mut outcomes = Vec::with_capacity(events.len());
        for id in ids {
            outcomes.push(match text(id).as_deref() {
                Some("") => Appended::Published { receivers },
                _ => Appended::Logged {
                    id: log_id(id).ok_or_else(bad)?,
                    receivers,
                },
            });
        }
        // A retried batch found logged may answer fewer ids (the events
        // refused the first time): those were refused as the session ended.
        let rest = refusal.unwrap_or(Refusal::Ended);
        outcomes.resize(events.len(), Appended::Refused(rest));
        Ok(outcomes)
    }

    /// `FCALL sse_bridge_append`; `again`: a retry that must not duplicate.
    async fn append_call(
        &self,
        id: SessionId,
        event: &Event,
        again: bool,
    ) -> Result<Appended, BrokerError> {
        let append = fcall(Function::Append, self.keyspace(), id)
            .arg(event.to_wire())
            .arg(event.event_type())
            .arg(event.attempt().unwrap_or_default())
            .arg(event.key().unwrap_or_default())
            .arg(if again { "again" } else { "" })
            .to_owned();
        let reply: Value = self.commands().query(&append).await?;
        let Value::Array(parts) = &reply else {
            return Err(unexpected(Function::Append.name(), &reply));
        };
        let receivers = || parts.get(2).and_then(int).unwrap_or_default().max(0) as u64;
        match (parts.first().and_then(int), parts.get(1)) {
            (Some(1), Some(id)) => match log_id(id) {
                Some(id) => Ok(Appended::Logged {
                    id,
                    receivers: receivers(),
                }),
                None => Err(unexpected(Function::Append.name(), &reply)),
            },
            (Some(2), _) => Ok(Appended::Published {
                receivers: receivers(),
            }),
            (Some(0), Some(reason)) => text(reason)
                .and_then(|r| Refusal::from_label(&r))
                .map(Appended::Refused)
                .ok_or_else(|| unexpected(Function::Append.name(), &reply)),
            _ => Err(unexpected(Function::Append.name(), &reply)),
        }
    }
}

#[async_trait]
impl EventLog for RedisBus {
    async fn create(&self, id: SessionId, meta: &SessionMeta) -> Result<(), BrokerError> {
        let limits = self.log_limits();
        let ttl_ms = limits.ttl.as_millis() as u64;
        let keyspace = self.keyspace();
        let key = keyspace.meta_key(id);
        let followers = followers_field(self.presence().instance());
        let mut fields = vec![
            ("created_at", meta.created_at_ms.to_string()),
            ("principal", meta.principal.clone()),
            ("format", meta.format.clone()),
            ("on_disconnect", meta.on_disconnect.as_str().to_owned()),
            (followers.as_str(), meta.followers.to_string()),
            ("ttl_ms", ttl_ms.to_string()),
            ("tail_max", limits.tail_bytes().to_string()),
            ("folded_max", limits.folded_bytes().to_string()),
            ("channel", keyspace.event_channel(id)),
            ("publish", keyspace.publish_command().to_owned()),
            ("max_len", VERSION_1_MAX_LEN.to_string()),
            ("live_ms", limits.live.as_millis().to_string()),
            // This gateway reads a JSON array on the channel as a batch of events.
            ("batches", "1".to_owned()),
        ];
        let labels = [
            ("thread_id", &meta.thread_id),
            ("run_id", &meta.run_id),
            ("chat_id", &meta.chat_id),
            ("message_id", &meta.message_id),
        ];
        for (name, value) in labels {
            if let Some(value) = value {
                fields.push((name, value.clone()));
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .pexpire(&key, ttl_ms as i64)
            .ignore();
        self.commands().query_pipeline::<()>(&pipe).await?;
        self.presence()
            .mark(self.commands(), id, meta.followers)
            .await
    }

    async fn meta(&self, id: SessionId) -> Result<Option<SessionMeta>, BrokerError> {
        let hgetall = redis::cmd("HGETALL")
            .arg(self.keyspace().meta_key(id))
            .to_owned();
        let fields: HashMap<String, String> = self.commands().query(&hgetall).await?;
        let Some(created_at) = fields.get("created_at") else {
            return Ok(None);
        };
        let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
        // Per gateway, counted while the gateway is alive; `followers` alone
        // is a version 1 gateway's count.
        let counts = fields.iter().filter_map(|(name, count)| {
            let instance = name.strip_prefix("followers:")?;
            Some((instance, count.parse().unwrap_or_default()))
        });
        let followers = self
            .presence()
            .live_followers(self.commands(), counts)
            .await?
            + field("followers").parse::<i64>().unwrap_or_default();
        Ok(Some(SessionMeta {
            principal: field("principal"),
            created_at_ms: created_at.parse().unwrap_or_default(),
            format: field("format"),
            thread_id: fields.get("thread_id").cloned(),
            run_id: fields.get("run_id").cloned(),
            chat_id: fields.get("chat_id").cloned(),
            message_id: fields.get("message_id").cloned(),
            on_disconnect: OnDisconnect::from_label(&field("on_disconnect")).unwrap_or_default(),
            ended: fields.get("ended").and_then(|id| id.parse().ok()),
            followers,
        }))
    }

    async fn read(
        &self,
        id: SessionId,
        after: Option<LogId>,
        limit: PageLimit,
    ) -> Result<LogPage, BrokerError> {
        let read = fcall(Function::Read, self.keyspace(), id)
            .arg(after.map(|a| a.to_string()).unwrap_or_default())
            .arg(limit.entries.max(1))
            .arg(limit.bytes)
            .to_owned();
        let reply: Value = self.commands().query(&read).await?;
        let bad = || unexpected(Function::Read.name(), &reply);
        let Value::Array(parts) = &reply else {
            return Err(bad());
        };
        let (Some(lost), Some(Value::Array(raw_entries))) =
            (parts.first().and_then(text), parts.get(1))
        else {
            return Err(bad());
        };
        let lost = match lost.as_str() {
            "" => None,
            label => Some(HistoryLost::from_label(label).ok_or_else(bad)?),
        };
        let mut entries = Vec::with_capacity(raw_entries.len());
        for entry in raw_entries {
            // [id, ["e", json, ...]]
            let Value::Array(pair) = entry else {
                return Err(bad());
            };
            let (Some(id), Some(Value::Array(fields))) =
                (pair.first().and_then(log_id), pair.get(1))
            else {
                return Err(bad());
            };
            let Some(Value::BulkString(json)) = fields.get(1) else {
                return Err(bad());
            };
            entries.push(LogEntry {
                id,
                event: Bytes::from(json.clone()),
            });
        }
        Ok(LogPage {
            known: parts.get(2).and_then(int) == Some(1),
            entries,
            more: parts.get(3).and_then(int) == Some(1),
            lost,
        })
    }

    async fn append(&self, id: SessionId, event: &Event) -> Result<Appended, BrokerError> {
        self.append_call(id, event, false).await
    }

    async fn append_again(&self, id: SessionId, event: &Event) -> Result<Appended, BrokerError> {
        self.append_call(id, event, true).await
    }

    async fn append_batch(
        &self,
        id: SessionId,
        events: &[Event],
        again: bool,
    ) -> Result<Vec<Appended>, BrokerError> {
        let mut outcomes = Vec::with_capacity(events.len());
        // One call per run of events of one attempt (a batch is one
        // attempt's, but nothing stops a caller from mixing).
        for run in events.chunk_by(|a, b| a.attempt() == b.attempt()) {
            if let Some(Appended::Refused(refusal)) = outcomes.last().copied() {
                outcomes.resize(events.len(), Appended::Refused(refusal));
                break;
            }
            outcomes.extend(self.append_batch_call(id, run, again).await?);
        }
        Ok(outcomes)
    }

    async fn end(&self, id: SessionId, terminal: &Event) -> Result<Ending, BrokerError> {
        let end = fcall(Function::End, self.keyspace(), id)
            .arg(terminal.json())
            .to_owned();
        let reply: Value = self.commands().query(&end).await?;
        let Value::Array(parts) = &reply else {
            return Err(unexpected(Function::End.name(), &reply));
        };
        let ended_id = parts.get(1).and_then(log_id);
        match (parts.first().and_then(int), ended_id) {
            (Some(0), _) => Ok(Ending::Unknown),
            (Some(1), Some(id)) => Ok(Ending::Appended(id)),
            (Some(2), Some(id)) => Ok(Ending::AlreadyEnded(id)),
            _ => Err(unexpected(Function::End.name(), &reply)),
        }
    }

    async fn claim_alias(
        &self,
        alias: &str,
        owner: &str,
        id: SessionId,
    ) -> Result<Claim, BrokerError> {
        let ttl_ms = self.log_limits().ttl.as_millis() as u64;
        let claim = Function::Claim
            .call()
            .arg(1)
            .arg(alias_key(alias))
            .arg(owner)
            .arg(id.to_string())
            .arg(ttl_ms)
            .to_owned();
        let reply: Value = self.commands().query(&claim).await?;
        match int(&reply) {
            Some(1) => Ok(Claim::Bound),
            Some(0) => Ok(Claim::Taken),
            _ => Err(unexpected(Function::Claim.name(), &reply)),
        }
    }

    async fn resolve_alias(&self, alias: &str) -> Result<Option<SessionId>, BrokerError> {
        let get = redis::cmd("GET").arg(alias_key(alias)).to_owned();
        let value: Option<String> = self.commands().query(&get).await?;
        Ok(value.as_deref().and_then(aliased_session))
    }

    async fn add_followers(&self, id: SessionId, delta: i64) -> Result<Option<i64>, BrokerError> {
        let presence = self.presence();
        let follow = Function::Follow
            .call()
            .arg(1)
            .arg(self.keyspace().meta_key(id))
            .arg(delta)
            .arg(presence.instance())
            .to_owned();
        let count: Option<i64> = self.commands().query(&follow).await?;
        if let Some(count) = count {
            presence.mark(self.commands(), id, count).await?;
        }
        Ok(count)
    }

    async fn orphans(&self) -> Result<Vec<SessionId>, BrokerError> {
        self.presence().orphans(self.commands()).await
    }
}
