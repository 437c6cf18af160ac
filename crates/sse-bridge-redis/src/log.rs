//! The [`EventLog`] on Redis: a Stream and a metadata hash per session,
//! written by the server-side functions of `functions.lua`.
//!
//! Every call is one round trip on the bus's command connection: appends
//! and gateway ends are `FCALL`s (log, attempt rule and PUBLISH in one
//! atomic step), reads are `FCALL_RO sse_bridge_read`, metadata is one
//! `HSET` + `PEXPIRE` transaction at creation and one `HGETALL` to look up.
//! The function library is (re)loaded on every new command connection, so a
//! Redis restarted without persistence gets it back with the first command.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use sse_bridge_core::log::{
    Appended, Ending, EventLog, LogEntry, LogId, LogPage, Refusal, SessionMeta,
};
use sse_bridge_core::protocol::OnDisconnect;
use sse_bridge_core::{BrokerError, Event, SessionId};

use crate::RedisBus;
use crate::keyspace::Keyspace;

/// The function library, loaded with `FUNCTION LOAD REPLACE`.
pub const FUNCTIONS: &str = include_str!("functions.lua");

/// The command that installs [`FUNCTIONS`].
pub(crate) fn load_functions() -> redis::Cmd {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(FUNCTIONS)
        .to_owned()
}

/// The key holding the session an alias names (`sse_alias:chat:<id>`, ...).
fn alias_key(alias: &str) -> String {
    format!("sse_alias:{alias}")
}

/// `FCALL function 2 <log key> <meta key>` with the session's names.
fn fcall(function: &str, keyspace: Keyspace, id: SessionId) -> redis::Cmd {
    redis::cmd(if function == "sse_bridge_read" {
        "FCALL_RO"
    } else {
        "FCALL"
    })
    .arg(function)
    .arg(2)
    .arg(keyspace.log_key(id))
    .arg(keyspace.meta_key(id))
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
    /// `FCALL sse_bridge_append`; `again`: a retry that must not duplicate.
    async fn append_call(
        &self,
        id: SessionId,
        event: &Event,
        again: bool,
    ) -> Result<Appended, BrokerError> {
        let append = fcall("sse_bridge_append", self.keyspace(), id)
            .arg(event.to_wire())
            .arg(event.event_type())
            .arg(event.attempt().unwrap_or_default())
            .arg(event.key().unwrap_or_default())
            .arg(if again { "again" } else { "" })
            .to_owned();
        let reply: Value = self.commands().query(&append).await?;
        let Value::Array(parts) = &reply else {
            return Err(unexpected("sse_bridge_append", &reply));
        };
        let receivers = || parts.get(2).and_then(int).unwrap_or_default().max(0) as u64;
        match (parts.first().and_then(int), parts.get(1)) {
            (Some(1), Some(id)) => match log_id(id) {
                Some(id) => Ok(Appended::Logged {
                    id,
                    receivers: receivers(),
                }),
                None => Err(unexpected("sse_bridge_append", &reply)),
            },
            (Some(2), _) => Ok(Appended::Published {
                receivers: receivers(),
            }),
            (Some(0), Some(reason)) => text(reason)
                .and_then(|r| Refusal::from_label(&r))
                .map(Appended::Refused)
                .ok_or_else(|| unexpected("sse_bridge_append", &reply)),
            _ => Err(unexpected("sse_bridge_append", &reply)),
        }
    }
}

#[async_trait]
impl EventLog for RedisBus {
    async fn create(&self, id: SessionId, meta: &SessionMeta) -> Result<(), BrokerError> {
        let limits = self.log_limits();
        let ttl_ms = limits.ttl.as_millis() as u64;
        let key = self.keyspace().meta_key(id);
        let mut fields = vec![
            ("created_at", meta.created_at_ms.to_string()),
            ("principal", meta.principal.clone()),
            ("format", meta.format.clone()),
            ("on_disconnect", meta.on_disconnect.as_str().to_owned()),
            ("followers", meta.followers.to_string()),
            ("max_len", limits.max_len.max(1).to_string()),
            ("ttl_ms", ttl_ms.to_string()),
            ("live_ms", limits.live.as_millis().to_string()),
        ];
        let labels = [
            ("thread_id", &meta.thread_id),
            ("run_id", &meta.run_id),
            ("chat_id", &meta.chat_id),
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
        self.commands().query_pipeline::<()>(&pipe).await
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
        Ok(Some(SessionMeta {
            principal: field("principal"),
            created_at_ms: created_at.parse().unwrap_or_default(),
            format: field("format"),
            thread_id: fields.get("thread_id").cloned(),
            run_id: fields.get("run_id").cloned(),
            chat_id: fields.get("chat_id").cloned(),
            on_disconnect: OnDisconnect::from_label(&field("on_disconnect")).unwrap_or_default(),
            ended: fields.get("ended").and_then(|id| id.parse().ok()),
            followers: field("followers").parse().unwrap_or_default(),
        }))
    }

    async fn read(
        &self,
        id: SessionId,
        after: Option<LogId>,
        limit: usize,
    ) -> Result<LogPage, BrokerError> {
        let read = fcall("sse_bridge_read", self.keyspace(), id)
            .arg(after.map(|a| a.to_string()).unwrap_or_default())
            .arg(limit.max(1))
            .to_owned();
        let reply: Value = self.commands().query(&read).await?;
        let bad = || unexpected("sse_bridge_read", &reply);
        let Value::Array(parts) = &reply else {
            return Err(bad());
        };
        let (Some(lost), Some(Value::Array(raw_entries))) =
            (parts.first().and_then(int), parts.get(1))
        else {
            return Err(bad());
        };
        let mut entries = Vec::with_capacity(raw_entries.len());
        for entry in raw_entries {
            // [id, ["e", json]]
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
            history_lost: lost == 1,
        })
    }

    async fn append(&self, id: SessionId, event: &Event) -> Result<Appended, BrokerError> {
        self.append_call(id, event, false).await
    }

    async fn append_again(&self, id: SessionId, event: &Event) -> Result<Appended, BrokerError> {
        self.append_call(id, event, true).await
    }

    async fn end(&self, id: SessionId, terminal: &Event) -> Result<Ending, BrokerError> {
        let end = fcall("sse_bridge_end", self.keyspace(), id)
            .arg(terminal.json())
            .to_owned();
        let reply: Value = self.commands().query(&end).await?;
        let Value::Array(parts) = &reply else {
            return Err(unexpected("sse_bridge_end", &reply));
        };
        let ended_id = parts.get(1).and_then(log_id);
        match (parts.first().and_then(int), ended_id) {
            (Some(0), _) => Ok(Ending::Unknown),
            (Some(1), Some(id)) => Ok(Ending::Appended(id)),
            (Some(2), Some(id)) => Ok(Ending::AlreadyEnded(id)),
            _ => Err(unexpected("sse_bridge_end", &reply)),
        }
    }

    async fn bind_alias(&self, alias: &str, id: SessionId) -> Result<(), BrokerError> {
        let ttl_ms = self.log_limits().ttl.as_millis() as u64;
        let set = redis::cmd("SET")
            .arg(alias_key(alias))
            .arg(id.to_string())
            .arg("PX")
            .arg(ttl_ms)
            .to_owned();
        self.commands().query(&set).await
    }

    async fn resolve_alias(&self, alias: &str) -> Result<Option<SessionId>, BrokerError> {
        let get = redis::cmd("GET").arg(alias_key(alias)).to_owned();
        let id: Option<String> = self.commands().query(&get).await?;
        Ok(id.and_then(|id| id.parse().ok()))
    }

    async fn add_followers(&self, id: SessionId, delta: i64) -> Result<Option<i64>, BrokerError> {
        let follow = redis::cmd("FCALL")
            .arg("sse_bridge_follow")
            .arg(1)
            .arg(self.keyspace().meta_key(id))
            .arg(delta)
            .to_owned();
        self.commands().query(&follow).await
    }
}
