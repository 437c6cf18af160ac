//! [`MemoryStreams`]: the embedded [`StreamStore`], every stream in one map
//! under one lock (each operation is one short critical section, so the
//! producer rule and closing are atomic), bounded in bytes overall and per
//! stream, streams dropped when their TTL or expiry passes. Changes are
//! announced on the process's event bus, where long-polls and SSE readers
//! wait.
//!
//! Forks copy what they inherit (bounded like any stream), and keep their
//! source's count of forks, so a source deleted while forks exist answers
//! `410` and blocks its path until the last fork goes (PROTOCOL.md §4.2).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use super::model::{ForkError, StreamState};
use super::{
    AppendOutcome, AppendRequest, CreateOutcome, CreateRequest, Lookup, ReadFrom, ReadOutcome,
    StreamLimits, StreamStore, channel, config,
};
use crate::{BrokerError, EventBus};

/// How often expired streams are looked for (at most; on writes).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Durable Streams in this process's memory.
pub struct MemoryStreams {
    inner: Mutex<Inner>,
    bus: Arc<dyn EventBus>,
    limits: StreamLimits,
    generations: AtomicU64,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<String, StreamState>,
    /// Bytes of data held by all streams.
    bytes: usize,
    swept_ms: i64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl MemoryStreams {
    /// Streams announcing their changes on `bus`.
    pub fn new(bus: Arc<dyn EventBus>, limits: StreamLimits) -> Self {
        MemoryStreams {
            inner: Mutex::new(Inner::default()),
            bus,
            limits,
            generations: AtomicU64::new(now_ms() as u64),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock leaves maps that are still consistent
        // between operations; carry on with them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed)
    }

    async fn announce(&self, key: &str) {
        // Readers re-read after any notice; one lost (nobody listening, a
        // full queue) is caught by their wait's timeout.
        let _ = self
            .bus
            .publish(&channel(key), Bytes::from_static(b"1"))
            .await;
    }
}

impl Inner {
    /// The live stream at `key`, dropping it first if it expired.
    fn live(&mut self, key: &str, now: i64) -> Option<&mut StreamState> {
        let expired = self.streams.get(key)?.expired(now);
        if expired {
            self.expire(key);
        }
        self.streams.get_mut(key)
    }

    /// An expired stream goes, or is soft-deleted while forks read it.
    fn expire(&mut self, key: &str) {
        let forked = self.streams.get(key).is_some_and(|s| s.forks > 0);
        match forked {
            true => {
                if let Some(s) = self.streams.get_mut(key) {
                    s.soft_deleted = true;
                }
            }
            false => self.remove(key),
        }
    }

    /// Removes a stream; a soft-deleted source whose last fork this was goes too.
    fn remove(&mut self, key: &str) {
        let mut next = Some(key.to_owned());
        while let Some(key) = next.take() {
            let Some(gone) = self.streams.remove(&key) else {
                break;
            };
            self.bytes -= gone.bytes();
            let Some(source_key) = gone.fork.map(|f| f.source) else {
                break;
            };
            if let Some(source) = self.streams.get_mut(&source_key) {
                source.forks = source.forks.saturating_sub(1);
                if source.forks == 0 && source.soft_deleted {
                    next = Some(source_key);
                }
            }
        }
    }

    fn sweep(&mut self, now: i64) {
        if now - self.swept_ms < SWEEP_EVERY.as_millis() as i64 {
            return;
        }
        self.swept_ms = now;
        let expired: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.soft_deleted && s.expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.expire(&key);
        }
    }

    fn create(
        &mut self,
        key: &str,
        request: &CreateRequest,
        limits: &StreamLimits,
        generation: u64,
        now: i64,
    ) -> CreateOutcome {
        self.sweep(now);
        if let Some(existing) = self.live(key, now) {
            let same = !existing.soft_deleted
                && existing.same_config(
                    request.content_type.as_deref(),
                    &request.expiry,
                    request.closed,
                    request.fork.as_ref(),
                );
            return match same {
                true => CreateOutcome::Existed(existing.info()),
                false => CreateOutcome::Conflict,
            };
        }
        if self.bytes + request.body.len() > limits.max_total_bytes {
            return CreateOutcome::Full;
        }
        let mut stream = match &request.fork {
            None => StreamState::new(
                request
                    .content_type
                    .clone()
                    .unwrap_or_else(|| config::OCTET_STREAM.to_owned()),
                request.expiry.clone(),
                now,
                generation,
            ),
            Some(fork) => {
                let Some(source) = self.live(&fork.source, now) else {
                    return CreateOutcome::SourceMissing;
                };
                if source.soft_deleted {
                    return CreateOutcome::Conflict;
                }
                let made = source.fork(
                    fork,
                    request.content_type.as_deref(),
                    request.expiry.clone(),
                    now,
                    generation,
                );
                match made {
                    Ok(stream) => stream,
                    Err(ForkError::BadOffset) => return CreateOutcome::BadForkOffset,
                    Err(ForkError::TypeMismatch) => return CreateOutcome::SourceTypeMismatch,
                }
            }
        };
        if self.bytes + stream.bytes() + request.body.len() > limits.max_total_bytes {
            return CreateOutcome::Full;
        }
        if let Err(error) = stream.add_data(&request.body, true, limits) {
            return CreateOutcome::BadBody(error);
        }
        stream.closed = request.closed;
        if let Some(fork) = &request.fork
            && let Some(source) = self.streams.get_mut(&fork.source)
        {
            source.forks += 1;
        }
        self.bytes += stream.bytes();
        let info = stream.info();
        self.streams.insert(key.to_owned(), stream);
        CreateOutcome::Created(info)
    }

    fn append(
        &mut self,
        key: &str,
        request: &AppendRequest,
        limits: &StreamLimits,
        now: i64,
    ) -> AppendOutcome {
        self.sweep(now);
        let total = self.bytes;
        let Some(stream) = self.live(key, now) else {
            return AppendOutcome::Missing;
        };
        if stream.soft_deleted {
            return AppendOutcome::Gone;
        }
        if total + request.body.len() > limits.max_total_bytes {
            return AppendOutcome::Full;
        }
        let before = stream.bytes();
        let outcome = stream.append(request, now, limits);
        let after = stream.bytes();
        self.bytes = self.bytes + after - before;
        outcome
    }
}

#[async_trait]
impl StreamStore for MemoryStreams {
    async fn create(
        &self,
        key: &str,
        request: CreateRequest,
    ) -> Result<CreateOutcome, BrokerError> {
        let generation = self.generation();
        let outcome = self
            .lock()
            .create(key, &request, &self.limits, generation, now_ms());
        if matches!(outcome, CreateOutcome::Created(_)) {
            self.announce(key).await;
        }
        Ok(outcome)
    }

    async fn append(
        &self,
        key: &str,
        request: AppendRequest,
    ) -> Result<AppendOutcome, BrokerError> {
        let outcome = self.lock().append(key, &request, &self.limits, now_ms());
        if matches!(outcome, AppendOutcome::Appended { .. }) {
            self.announce(key).await;
        }
        Ok(outcome)
    }

    async fn read(
        &self,
        key: &str,
        from: ReadFrom,
        max_bytes: usize,
    ) -> Result<ReadOutcome, BrokerError> {
        let now = now_ms();
        let mut inner = self.lock();
        let Some(stream) = inner.live(key, now) else {
            return Ok(ReadOutcome::Missing);
        };
        if stream.soft_deleted {
            return Ok(ReadOutcome::Gone);
        }
        stream.touched_ms = now;
        Ok(match stream.read(from, max_bytes) {
            Some(page) => ReadOutcome::Page(page),
            None => ReadOutcome::Gone,
        })
    }

    async fn head(&self, key: &str) -> Result<Lookup, BrokerError> {
        let mut inner = self.lock();
        Ok(match inner.live(key, now_ms()) {
            None => Lookup::Missing,
            Some(s) if s.soft_deleted => Lookup::Gone,
            Some(s) => Lookup::Found(s.info()),
        })
    }

    async fn delete(&self, key: &str) -> Result<Lookup, BrokerError> {
        let outcome = {
            let mut inner = self.lock();
            match inner.live(key, now_ms()) {
                None => Lookup::Missing,
                Some(s) if s.soft_deleted => Lookup::Gone,
                Some(s) => {
                    let info = s.info();
                    if s.forks > 0 {
                        s.soft_deleted = true;
                    } else {
                        inner.remove(key);
                    }
                    Lookup::Found(info)
                }
            }
        };
        if matches!(outcome, Lookup::Found(_)) {
            self.announce(key).await;
        }
        Ok(outcome)
    }
}
