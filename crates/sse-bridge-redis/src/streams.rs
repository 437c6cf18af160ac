//! Durable Streams on Redis: [`RedisStreams`], a
//! [`StreamStore`] over the functions of `streams.lua` (library
//! `sse_ds_v1`), one `FCALL` per operation, loaded on first use (and again
//! whenever Redis answers that it lacks them, e.g. after a restart without
//! persistence). Notices of changes go out with `PUBLISH` (`SPUBLISH` on a
//! cluster) on `sse_bridge_core::streams::channel`, which every gateway's
//! subscriber connection receives: a write on one gateway wakes long-polls
//! and SSE readers on all of them.
//!
//! Keys carry the stream's escaped key as their hash tag, so one stream
//! lives on one shard. A fork copies its source in the same call, which on
//! a cluster needs both on one slot: a fork across slots is refused
//! ([`CreateOutcome::ForkAcrossShards`], `501`) before Redis is asked.

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use sse_bridge_core::BrokerError;
use sse_bridge_core::streams::{
    AppendOutcome, AppendRequest, CreateOutcome, CreateRequest, ExpiresAt, Expiry, Lookup, Offset,
    Page, ReadFrom, ReadOutcome, StreamInfo, StreamLimits, StreamStore, channel, config, escape,
    json,
};

use crate::RedisBus;
use crate::cluster::slot_of;

/// The function library, loaded with `FUNCTION LOAD REPLACE`.
pub const STREAM_FUNCTIONS: &str = include_str!("streams.lua");

/// Durable Streams in Redis, through a [`RedisBus`]'s command connection.
pub struct RedisStreams {
    bus: RedisBus,
    limits: StreamLimits,
}

fn keys(key: &str) -> [String; 3] {
    let tag = escape(key);
    [
        format!("sse_ds_meta:{{{tag}}}"),
        format!("sse_ds_data:{{{tag}}}"),
        format!("sse_ds_prod:{{{tag}}}"),
    ]
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        Some(Value::Int(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn number(value: Option<&Value>) -> u64 {
    text(value).parse().unwrap_or(0)
}

fn rejected(what: &str) -> BrokerError {
    BrokerError::Rejected(format!("unexpected reply from sse_ds_v1: {what}"))
}

/// The six info fields at `at` (ct, closed, tail, gen, ttl, exp_text).
fn info(reply: &[Value], at: usize) -> StreamInfo {
    let ttl = text(reply.get(at + 4));
    let expires = text(reply.get(at + 5));
    let expiry = if !ttl.is_empty() {
        Expiry::Ttl(ttl.parse().unwrap_or(0))
    } else if !expires.is_empty() {
        Expiry::At(ExpiresAt {
            unix_ms: config::parse_rfc3339(&expires).unwrap_or(0),
            text: expires,
        })
    } else {
        Expiry::Never
    };
    StreamInfo {
        content_type: text(reply.get(at)),
        expiry,
        closed: text(reply.get(at + 1)) == "1",
        tail: Offset(number(reply.get(at + 2))),
        generation: number(reply.get(at + 3)),
    }
}

impl RedisStreams {
    pub fn new(bus: RedisBus, limits: StreamLimits) -> Self {
        RedisStreams { bus, limits }
    }

    fn publish(&self) -> &'static str {
        self.bus.keyspace().publish_command()
    }

    /// Runs `FCALL`, loading the library first when Redis lacks it.
    async fn call(&self, cmd: redis::Cmd) -> Result<Vec<Value>, BrokerError> {
        let commands = self.bus.commands();
        let reply = match commands.query::<Vec<Value>>(&cmd).await {
            Err(BrokerError::Rejected(message)) if message.contains("Function not found") => {
                let load = redis::cmd("FUNCTION")
                    .arg("LOAD")
                    .arg("REPLACE")
                    .arg(STREAM_FUNCTIONS)
                    .to_owned();
                commands.query::<Value>(&load).await?;
                commands.query::<Vec<Value>>(&cmd).await?
            }
            other => other?,
        };
        if reply.is_empty() {
            return Err(rejected("empty"));
        }
        Ok(reply)
    }

    fn fcall(function: &str, keys: &[String]) -> redis::Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(function).arg(keys.len());
        for key in keys {
            cmd.arg(key);
        }
        cmd
    }
}

/// A body as the pieces the functions store: one per JSON message, or the body.
fn pieces(json: bool, body: &Bytes, create: bool) -> Result<Vec<Bytes>, json::JsonBodyError> {
    match (json, body.is_empty()) {
        (_, true) => Ok(Vec::new()),
        (true, false) => json::messages(body, create),
        (false, false) => Ok(vec![body.clone()]),
    }
}

#[async_trait]
impl StreamStore for RedisStreams {
    async fn create(
        &self,
        key: &str,
        request: CreateRequest,
    ) -> Result<CreateOutcome, BrokerError> {
        let mut names = keys(key).to_vec();
        let mut json_mode = request.content_type.as_deref().is_some_and(config::is_json);
        if let Some(fork) = &request.fork {
            let source = keys(&fork.source);
            if self.bus.keyspace().is_cluster()
                && slot_of(source[0].as_bytes()) != slot_of(names[0].as_bytes())
            {
                return Ok(CreateOutcome::ForkAcrossShards);
            }
            if request.content_type.is_none() {
                let ct: Option<String> = self
                    .bus
                    .commands()
                    .query(redis::cmd("HGET").arg(&source[0]).arg("ct"))
                    .await?;
                json_mode = ct.as_deref().is_some_and(config::is_json);
            }
            names.extend([source[0].clone(), source[1].clone()]);
        }
        let body = match pieces(json_mode, &request.body, true) {
            Ok(body) => body,
            Err(error) => return Ok(CreateOutcome::BadBody(error)),
        };
        let (kind, value, expires_text) = match &request.expiry {
            Expiry::Never => ("", String::new(), String::new()),
            Expiry::Ttl(seconds) => ("ttl", seconds.to_string(), String::new()),
            Expiry::At(at) => ("at", at.unix_ms.to_string(), at.text.clone()),
        };
        let fork = request.fork.as_ref();
        let mut cmd = Self::fcall("sse_ds_v1_create", &names);
        cmd.arg(uuid::Uuid::new_v4().as_u64_pair().0 >> 12)
            .arg(request.content_type.as_deref().unwrap_or(""))
            .arg(kind)
            .arg(value)
            .arg(expires_text)
            .arg(if request.closed { "1" } else { "0" })
            .arg(fork.map_or("", |f| f.source.as_str()))
            .arg(
                fork.and_then(|f| f.offset)
                    .map_or(String::new(), |o| o.0.to_string()),
            )
            .arg(fork.map_or(0, |f| f.sub_offset))
            .arg(self.limits.max_stream_bytes)
            .arg(channel(key))
            .arg(self.publish())
            .arg(body.len());
        for piece in &body {
            cmd.arg(piece.as_ref());
        }
        let reply = self.call(cmd).await?;
        Ok(match text(reply.first()).as_str() {
            "created" => CreateOutcome::Created(info(&reply, 1)),
            "existed" => CreateOutcome::Existed(info(&reply, 1)),
            "conflict" => CreateOutcome::Conflict,
            "source_missing" => CreateOutcome::SourceMissing,
            "source_type" => CreateOutcome::SourceTypeMismatch,
            "bad_fork_offset" => CreateOutcome::BadForkOffset,
            other => return Err(rejected(other)),
        })
    }

    async fn append(
        &self,
        key: &str,
        request: AppendRequest,
    ) -> Result<AppendOutcome, BrokerError> {
        let names = keys(key);
        let json_mode = match &request.content_type {
            Some(ct) if !request.body.is_empty() => config::is_json(ct),
            _ => false,
        };
        let body = match pieces(json_mode, &request.body, false) {
            Ok(body) => body,
            Err(error) => return Ok(AppendOutcome::BadBody(error)),
        };
        let producer = request.producer.as_ref();
        let mut cmd = Self::fcall("sse_ds_v1_append", &names);
        cmd.arg(request.content_type.as_deref().unwrap_or(""))
            .arg(if request.close { "1" } else { "0" })
            .arg(request.stream_seq.as_deref().unwrap_or(""))
            .arg(if request.stream_seq.is_some() {
                "1"
            } else {
                "0"
            })
            .arg(producer.map_or("", |p| p.id.as_str()))
            .arg(producer.map_or(0, |p| p.epoch))
            .arg(producer.map_or(0, |p| p.seq))
            .arg(self.limits.max_stream_bytes)
            .arg(self.limits.max_producers)
            .arg(channel(key))
            .arg(self.publish())
            .arg(body.len());
        for piece in &body {
            cmd.arg(piece.as_ref());
        }
        let reply = self.call(cmd).await?;
        let n = |i: usize| number(reply.get(i));
        Ok(match text(reply.first()).as_str() {
            "appended" => AppendOutcome::Appended {
                tail: Offset(n(1)),
                closed: text(reply.get(2)) == "1",
            },
            "duplicate" => AppendOutcome::Duplicate {
                tail: Offset(n(1)),
                closed: text(reply.get(2)) == "1",
                last_seq: n(3),
            },
            "closed" => AppendOutcome::Closed { tail: Offset(n(1)) },
            "ct_mismatch" => AppendOutcome::ContentTypeMismatch,
            "seq_conflict" => AppendOutcome::SeqConflict,
            "stale_epoch" => AppendOutcome::StaleEpoch { current: n(1) },
            "epoch_not_zero" => AppendOutcome::NewEpochNotAtZero,
            "gap" => AppendOutcome::Gap {
                expected: n(1),
                received: n(2),
            },
            "missing" => AppendOutcome::Missing,
            "gone" => AppendOutcome::Gone,
            other => return Err(rejected(other)),
        })
    }

    async fn read(
        &self,
        key: &str,
        from: ReadFrom,
        max_bytes: usize,
    ) -> Result<ReadOutcome, BrokerError> {
        let from = match from {
            ReadFrom::Start => "start".to_owned(),
            ReadFrom::Tail => "tail".to_owned(),
            ReadFrom::At(offset) => offset.0.to_string(),
        };
        let mut cmd = Self::fcall("sse_ds_v1_read", &keys(key));
        cmd.arg(from).arg(max_bytes);
        let reply = self.call(cmd).await?;
        match text(reply.first()).as_str() {
            "page" => {}
            "missing" => return Ok(ReadOutcome::Missing),
            "gone" => return Ok(ReadOutcome::Gone),
            other => return Err(rejected(other)),
        }
        let info = info(&reply, 1);
        let parts: Vec<&[u8]> = reply[9.min(reply.len())..]
            .iter()
            .map(|v| match v {
                Value::BulkString(bytes) => bytes.as_slice(),
                _ => &[],
            })
            .collect();
        let next = Offset(number(reply.get(8)));
        let body = match config::is_json(&info.content_type) {
            true => Bytes::from(json::array(parts.iter().copied())),
            false => Bytes::from(parts.concat()),
        };
        Ok(ReadOutcome::Page(Page {
            start: Offset(number(reply.get(7))),
            next,
            has_data: !parts.is_empty(),
            up_to_date: next == info.tail,
            body,
            info,
        }))
    }

    async fn head(&self, key: &str) -> Result<Lookup, BrokerError> {
        let reply = self.call(Self::fcall("sse_ds_v1_head", &keys(key))).await?;
        lookup(&reply)
    }

    async fn delete(&self, key: &str) -> Result<Lookup, BrokerError> {
        let mut cmd = Self::fcall("sse_ds_v1_delete", &keys(key));
        cmd.arg(channel(key)).arg(self.publish());
        let reply = self.call(cmd).await?;
        lookup(&reply)
    }
}

fn lookup(reply: &[Value]) -> Result<Lookup, BrokerError> {
    Ok(match text(reply.first()).as_str() {
        "found" => Lookup::Found(info(reply, 1)),
        "missing" => Lookup::Missing,
        "gone" => Lookup::Gone,
        other => return Err(rejected(other)),
    })
}
