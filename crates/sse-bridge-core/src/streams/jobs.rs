//! Jobs for HTTP workers: the gateway appends every job it dispatches to
//! one JSON stream, `/v1/stream/jobs`, which callers with the worker role
//! read like any stream (long-poll or SSE from `now`). The stream is the
//! deployment's job queue over HTTP, so it is named by the queue's name
//! (`--redis-stream`): two deployments sharing a Redis, each with its own
//! queue, never see each other's jobs.
//!
//! Every reader sees every job: workers race, and the session's attempt
//! rule settles it — the first attempt whose `worker_ack` the log takes
//! owns the session, the others are refused (`403`) and move on. That
//! costs one refused ack per extra worker and job, and needs no consumer
//! group: the right trade for a few serverless or partner workers, not
//! for hundreds (use the Redis or Kafka queue there). The stream is
//! bounded like any stream (`--stream-max-bytes`: the oldest jobs are
//! dropped) and lives in the stream store, so on Redis every gateway
//! appends to the same one and any gateway serves it.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{AppendOutcome, AppendRequest, CreateOutcome, CreateRequest, Expiry, StreamStore};
use crate::error::BrokerError;
use crate::protocol::Job;
use crate::queue::JobDispatcher;

/// The path of the jobs stream under `/v1/stream/`.
pub const PATH: &str = "jobs";

/// The store key of the jobs stream of job queue `queue`: an owner no
/// principal can be (principals are `key:…`, `jwt:…`, `worker:…` or
/// `anonymous`).
pub fn key(queue: &str) -> String {
    super::key("@gateway", &format!("{PATH}/{queue}"))
}

/// Dispatches jobs by appending them to the jobs stream.
pub struct StreamDispatcher {
    store: Arc<dyn StreamStore>,
    key: String,
}

impl StreamDispatcher {
    /// Appends to the jobs stream of queue `queue` (see [`key`]).
    pub fn new(store: Arc<dyn StreamStore>, queue: &str) -> Self {
        StreamDispatcher {
            store,
            key: key(queue),
        }
    }

    /// Creates the jobs stream if it is not there, so workers can start
    /// reading it (from `now`) before the first job.
    pub async fn open(&self) -> Result<(), BrokerError> {
        let create = CreateRequest {
            content_type: Some("application/json".to_owned()),
            expiry: Expiry::Never,
            closed: false,
            fork: None,
            body: Bytes::new(),
        };
        match self.store.create(&self.key, create).await? {
            CreateOutcome::Created(_) | CreateOutcome::Existed(_) => Ok(()),
            other => Err(BrokerError::Rejected(format!(
                "creating the jobs stream: {other:?}"
            ))),
        }
    }

    async fn append(&self, body: Bytes) -> Result<AppendOutcome, BrokerError> {
        let request = AppendRequest {
            content_type: Some("application/json".to_owned()),
            body,
            close: false,
            stream_seq: None,
            producer: None,
        };
        self.store.append(&self.key, request).await
    }
}

#[async_trait]
impl JobDispatcher for StreamDispatcher {
    async fn dispatch(&self, job: &Job) -> Result<(), BrokerError> {
        let body = Bytes::from(job.to_json());
        let mut outcome = self.append(body.clone()).await?;
        if outcome == AppendOutcome::Missing {
            // Gone since `open` (a Redis restarted without persistence).
            self.open().await?;
            outcome = self.append(body).await?;
        }
        match outcome {
            AppendOutcome::Appended { .. } => Ok(()),
            AppendOutcome::Full => Err(BrokerError::Overloaded("the stream store is full".into())),
            other => Err(BrokerError::Rejected(format!(
                "appending to the jobs stream: {other:?}"
            ))),
        }
    }

    async fn check_ready(&self) -> Result<(), BrokerError> {
        self.store.head(&self.key).await.map(|_| ())
    }
}
