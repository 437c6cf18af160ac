//! Threads, interrupts and resume (PROTOCOL §8): the human in the loop.
//!
//! A *thread* is a conversation of several runs (sessions). A run may end
//! with an `interrupt` event instead of an answer: it waits for something
//! from outside (an approval, a value, the result of a tool the client
//! runs). The thread's record keeps who owns it, its runs, and the
//! interrupts its newest run left open; a *resume* is a new run whose entries
//! answer every open interrupt exactly once.
//!
//! * This module: the validated names and payloads ([`ThreadId`],
//!   [`Interrupt`], [`ResumeEntry`]) and the [`ThreadStore`] every backend
//!   implements (a record with a revision, written only if unchanged).
//! * [`rule`]: [`ThreadRecord`] and the pure rule deciding every change —
//!   open a run (a resume checked here: 422 / 409 / 410), record how a run
//!   ended — tested with made-up instants.
//! * [`answers`]: what the agent-UI formats send instead of explicit resume
//!   entries (AI SDK approvals, client-tool outputs, AG-UI tool messages),
//!   matched against the open interrupts.
//!
//! The record is changed by read → rule → compare-and-set, retried when
//! another gateway wrote in between: one rule, in Rust, whichever backend
//! stores it (Redis: `sse_bridge_v4_thread_put`, one key, Cluster-safe).

pub mod answers;
pub mod rule;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::BrokerError;

pub use rule::{Opened, Parent, Run, RunStatus, ThreadRecord, ThreadRefusal};

/// How long a thread's record lives after its last change, by default.
pub const DEFAULT_THREAD_TTL: Duration = Duration::from_secs(24 * 3600);

/// A thread id: 1–128 characters of `A-Za-z0-9._:-` (PROTOCOL §8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ThreadId(Box<str>);

/// Why a string is not a [`ThreadId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a thread id is 1 to 128 characters of A-Z a-z 0-9 . _ : -")]
pub struct InvalidThreadId;

impl FromStr for ThreadId {
    type Err = InvalidThreadId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        if s.is_empty() || s.len() > 128 || !s.bytes().all(allowed) {
            return Err(InvalidThreadId);
        }
        Ok(ThreadId(s.into()))
    }
}

impl ThreadId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Redis key of its record (hash-tagged by the caller in cluster mode).
    pub fn key(&self) -> String {
        format!("sse_thread:{}", self.0)
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a resume entry answers its interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResumeStatus {
    Resolved,
    Cancelled,
}

/// One answer of a resume: `{"interrupt_id", "status", "payload"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeEntry {
    pub interrupt_id: String,
    pub status: ResumeStatus,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub payload: Value,
}

/// Most entries one resume (and interrupts one run) may carry.
pub const MAX_INTERRUPTS: usize = 64;

impl ResumeEntry {
    /// The native request's `resume`: a non-empty array of entries with
    /// distinct string `interrupt_id`s.
    pub fn parse_all(value: &Value) -> Result<Vec<ResumeEntry>, String> {
        let Value::Array(items) = value else {
            return Err("resume must be an array".into());
        };
        if items.is_empty() || items.len() > MAX_INTERRUPTS {
            return Err(format!(
                "resume must hold 1 to {MAX_INTERRUPTS} entries, one per open interrupt"
            ));
        }
        let mut entries: Vec<ResumeEntry> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let entry: ResumeEntry = serde_json::from_value(item.clone()).map_err(|_| {
                format!(
                    "resume[{index}] must be {{\"interrupt_id\": string, \"status\": \"resolved\" | \"cancelled\", \"payload\"?: any}}"
                )
            })?;
            if entry.interrupt_id.is_empty() {
                return Err(format!("resume[{index}].interrupt_id must not be empty"));
            }
            if entries.iter().any(|e| e.interrupt_id == entry.interrupt_id) {
                return Err(format!(
                    "resume answers interrupt {:?} twice",
                    entry.interrupt_id
                ));
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}

/// One interrupt of an `interrupt` event, as the worker sent it, with the
/// fields the gateway reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Interrupt(Map<String, Value>);

impl Interrupt {
    pub fn id(&self) -> &str {
        self.str_field("id").unwrap_or_default()
    }

    pub fn reason(&self) -> &str {
        self.str_field("reason").unwrap_or_default()
    }

    pub fn message(&self) -> Option<&str> {
        self.str_field("message")
    }

    pub fn tool_call_id(&self) -> Option<&str> {
        self.str_field("tool_call_id")
    }

    /// A call the client runs (`metadata.executor == "client"`): the
    /// interrupt waits for the client's output, not for an approval.
    pub fn hands_call_to_client(&self) -> bool {
        self.0
            .get("metadata")
            .and_then(|metadata| metadata.get("executor"))
            .and_then(Value::as_str)
            == Some("client")
    }

    pub fn expires_at(&self) -> Option<&str> {
        self.str_field("expires_at")
    }

    /// `expires_at` in Unix milliseconds (`None`: never, or unreadable).
    pub fn expires_at_ms(&self) -> Option<u64> {
        let when = humantime::parse_rfc3339_weak(self.expires_at()?).ok()?;
        let since = when.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(since.as_millis() as u64)
    }

    pub fn as_object(&self) -> &Map<String, Value> {
        &self.0
    }

    fn str_field(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// The interrupts of an `interrupt` event's payload: 1 to
    /// [`MAX_INTERRUPTS`] objects, each with a non-empty string `id`
    /// (distinct) and a non-empty string `reason`.
    pub fn parse_all(payload: &Value) -> Result<Vec<Interrupt>, InvalidInterrupt> {
        let items = payload
            .get("interrupts")
            .and_then(Value::as_array)
            .filter(|items| !items.is_empty())
            .ok_or(InvalidInterrupt::Missing)?;
        if items.len() > MAX_INTERRUPTS {
            return Err(InvalidInterrupt::TooMany);
        }
        let mut interrupts: Vec<Interrupt> = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(fields) = item else {
                return Err(InvalidInterrupt::Malformed);
            };
            let interrupt = Interrupt(fields.clone());
            if interrupt.id().is_empty() || interrupt.reason().is_empty() {
                return Err(InvalidInterrupt::Malformed);
            }
            if interrupts.iter().any(|seen| seen.id() == interrupt.id()) {
                return Err(InvalidInterrupt::Duplicate);
            }
            interrupts.push(interrupt);
        }
        Ok(interrupts)
    }
}

/// Why an `interrupt` event's payload cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInterrupt {
    #[error("an interrupt event needs a non-empty array `interrupts`")]
    Missing,
    #[error("an interrupt event carries at most 64 interrupts")]
    TooMany,
    #[error("each interrupt needs a string `id` and a string `reason`")]
    Malformed,
    #[error("two interrupts of one event have the same id")]
    Duplicate,
}

/// A thread's record as stored, with the revision it was read at (0: the
/// thread does not exist).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub revision: u64,
    pub record: Option<ThreadRecord>,
}

/// Where thread records live: every gateway of a deployment sees the same.
#[async_trait]
pub trait ThreadStore: Send + Sync {
    /// The thread's record and its revision.
    async fn load_thread(&self, id: &ThreadId) -> Result<Stored, BrokerError>;

    /// Writes `record` (expiring `ttl` from now) if the thread is still at
    /// `revision`; `false` (nothing written) when another write came first.
    async fn store_thread(
        &self,
        id: &ThreadId,
        revision: u64,
        record: &ThreadRecord,
        ttl: Duration,
    ) -> Result<bool, BrokerError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thread_ids_are_short_and_plain() {
        assert!("t-1.a_b:c".parse::<ThreadId>().is_ok());
        assert!("x".repeat(128).parse::<ThreadId>().is_ok());
        for bad in ["", "a b", "a{b}", "é", &"x".repeat(129)] {
            assert_eq!(bad.parse::<ThreadId>(), Err(InvalidThreadId), "{bad:?}");
        }
    }

    #[test]
    fn resume_entries_are_checked_one_by_one() {
        let ok = ResumeEntry::parse_all(&json!([
            {"interrupt_id": "a", "status": "resolved", "payload": {"approved": true}},
            {"interrupt_id": "b", "status": "cancelled"}
        ]))
        .unwrap();
        assert_eq!(ok[1].status, ResumeStatus::Cancelled);
        for (bad, expected) in [
            (json!({}), "must be an array"),
            (json!([]), "1 to 64"),
            (json!([{"interrupt_id": "a"}]), "resume[0] must be"),
            (
                json!([{"interrupt_id": "a", "status": "maybe"}]),
                "resume[0] must be",
            ),
            (
                json!([{"interrupt_id": "", "status": "resolved"}]),
                "must not be empty",
            ),
            (
                json!([{"interrupt_id": "a", "status": "resolved"}, {"interrupt_id": "a", "status": "cancelled"}]),
                "twice",
            ),
        ] {
            let error = ResumeEntry::parse_all(&bad).unwrap_err();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn interrupts_need_ids_and_reasons() {
        let ok = Interrupt::parse_all(&json!({"interrupts": [
            {"id": "i1", "reason": "tool_call", "tool_call_id": "c1", "expires_at": "2026-12-05T10:00:00Z"}
        ]}))
        .unwrap();
        assert_eq!(ok[0].tool_call_id(), Some("c1"));
        assert_eq!(ok[0].expires_at_ms(), Some(1_796_464_800_000));
        for (bad, expected) in [
            (json!({}), InvalidInterrupt::Missing),
            (json!({"interrupts": []}), InvalidInterrupt::Missing),
            (json!({"interrupts": [1]}), InvalidInterrupt::Malformed),
            (
                json!({"interrupts": [{"id": "i"}]}),
                InvalidInterrupt::Malformed,
            ),
            (
                json!({"interrupts": [{"id": "i", "reason": "x"}, {"id": "i", "reason": "y"}]}),
                InvalidInterrupt::Duplicate,
            ),
        ] {
            assert_eq!(Interrupt::parse_all(&bad), Err(expected), "{bad}");
        }
    }
}
