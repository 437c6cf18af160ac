//! One stream in memory, pure: what the embedded store keeps per path and
//! the rules of creating, appending, closing, reading and forking it. The
//! clock is passed in; the store adds the map, the locks and the bus.
//!
//! Data is a queue of entries: one per append for byte streams, one per
//! JSON message for JSON streams, each at its position (bytes or messages
//! before it). Each entry remembers where its append ended, which is what
//! a fork's sub-offset counts within. Past `max_stream_bytes` the oldest
//! entries are dropped and reads before them get `410`.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::config::{self, Expiry};
use super::json::{self, JsonBodyError};
use super::producer::{self, ProducerCheck, ProducerState};
use super::{
    AppendOutcome, AppendRequest, ForkRequest, Offset, Page, ReadFrom, StreamInfo, StreamLimits,
};

#[derive(Debug, Clone)]
struct Entry {
    start: u64,
    data: Bytes,
    /// The end position of the append this entry came in.
    batch_end: u64,
}

/// Why a fork cannot be made from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkError {
    BadOffset,
    TypeMismatch,
}

/// A producer's state and when it last wrote (to forget the idlest).
#[derive(Debug, Clone, Copy)]
struct Producer {
    state: ProducerState,
    used_ms: i64,
}

/// One stream.
#[derive(Debug, Clone)]
pub struct StreamState {
    pub generation: u64,
    pub content_type: String,
    json: bool,
    pub expiry: Expiry,
    /// Last read or write (what a TTL counts from).
    pub touched_ms: i64,
    pub closed: bool,
    closed_by: Option<(String, u64, u64)>,
    tail: u64,
    entries: VecDeque<Entry>,
    /// Bytes of data retained.
    bytes: usize,
    producers: HashMap<String, Producer>,
    stream_seq: Option<String>,
    /// The source this stream was forked from.
    pub fork: Option<ForkRequest>,
    /// Forks made from this stream that still exist.
    pub forks: u32,
    /// Deleted while forks existed: `410` for every direct use.
    pub soft_deleted: bool,
}

impl StreamState {
    /// An empty, open stream.
    pub fn new(content_type: String, expiry: Expiry, now_ms: i64, generation: u64) -> Self {
        StreamState {
            generation,
            json: config::is_json(&content_type),
            content_type,
            expiry,
            touched_ms: now_ms,
            closed: false,
            closed_by: None,
            tail: 0,
            entries: VecDeque::new(),
            bytes: 0,
            producers: HashMap::new(),
            stream_seq: None,
            fork: None,
            forks: 0,
            soft_deleted: false,
        }
    }

    /// A fork of `self` (which the caller has resolved as its source).
    /// `expiry` is the request's; without one the fork inherits the source's.
    pub fn fork(
        &self,
        request: &ForkRequest,
        content_type: Option<&str>,
        expiry: Expiry,
        now_ms: i64,
        generation: u64,
    ) -> Result<StreamState, ForkError> {
        if let Some(asked) = content_type
            && config::essence(asked) != config::essence(&self.content_type)
        {
            return Err(ForkError::TypeMismatch);
        }
        let at = request.offset.map_or(self.tail, |o| o.0);
        if at > self.tail || at < self.head() {
            return Err(ForkError::BadOffset);
        }
        let expiry = match expiry {
            Expiry::Never => self.expiry.clone(),
            asked => asked,
        };
        let mut fork = StreamState::new(self.content_type.clone(), expiry, now_ms, generation);
        for entry in &self.entries {
            if entry.start >= at {
                break;
            }
            let end = entry.start + self.len_of(entry);
            let data = if end > at {
                entry.data.slice(..(at - entry.start) as usize)
            } else {
                entry.data.clone()
            };
            fork.push(entry.start, data, entry.batch_end.min(at));
        }
        fork.tail = at;
        if request.sub_offset > 0 {
            let first = self
                .entries
                .iter()
                .find(|e| e.start == at)
                .ok_or(ForkError::BadOffset)?;
            let sub = request.sub_offset;
            if self.json {
                if first.batch_end - at < sub {
                    return Err(ForkError::BadOffset);
                }
                let end = at + sub;
                for entry in self
                    .entries
                    .iter()
                    .filter(|e| e.start >= at && e.start < end)
                {
                    fork.push(entry.start, entry.data.clone(), end);
                }
            } else {
                if first.data.len() < sub as usize {
                    return Err(ForkError::BadOffset);
                }
                fork.push(at, first.data.slice(..sub as usize), at + sub);
            }
            fork.tail = at + sub;
        }
        fork.fork = Some(ForkRequest {
            source: request.source.clone(),
            offset: Some(Offset(at)),
            sub_offset: request.sub_offset,
        });
        Ok(fork)
    }

    fn len_of(&self, entry: &Entry) -> u64 {
        if self.json {
            1
        } else {
            entry.data.len() as u64
        }
    }

    fn push(&mut self, start: u64, data: Bytes, batch_end: u64) {
        self.bytes += data.len();
        self.entries.push_back(Entry {
            start,
            data,
            batch_end,
        });
    }

    /// The first retained position.
    pub fn head(&self) -> u64 {
        self.entries.front().map_or(self.tail, |e| e.start)
    }

    /// Bytes of data retained.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn info(&self) -> StreamInfo {
        StreamInfo {
            content_type: self.content_type.clone(),
            expiry: self.expiry.clone(),
            closed: self.closed,
            tail: Offset(self.tail),
            generation: self.generation,
        }
    }

    /// Whether a `PUT` with this configuration repeats the one that made it.
    pub fn same_config(
        &self,
        content_type: Option<&str>,
        expiry: &Expiry,
        closed: bool,
        fork: Option<&ForkRequest>,
    ) -> bool {
        let asked = content_type.map_or_else(
            || match fork {
                Some(_) => config::essence(&self.content_type),
                None => config::OCTET_STREAM.to_owned(),
            },
            config::essence,
        );
        let fork_matches = match (fork, &self.fork) {
            (None, None) => true,
            (Some(asked), Some(mine)) => {
                asked.source == mine.source
                    && asked.offset.is_none_or(|o| Some(o) == mine.offset)
                    && asked.sub_offset == mine.sub_offset
            }
            _ => false,
        };
        let expiry_matches = match (fork, expiry) {
            (Some(_), Expiry::Never) => true,
            _ => *expiry == self.expiry,
        };
        asked == config::essence(&self.content_type)
            && expiry_matches
            && closed == self.closed
            && fork_matches
    }

    /// Whether the stream has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expiry.expired(self.touched_ms, now_ms)
    }

    /// Appends a body as data (a `PUT`'s initial content or a `POST`'s),
    /// dropping the oldest entries past `limits`.
    pub fn add_data(
        &mut self,
        body: &Bytes,
        create: bool,
        limits: &StreamLimits,
    ) -> Result<(), JsonBodyError> {
        if body.is_empty() {
            return Ok(());
        }
        if self.json {
            let messages = json::messages(body, create)?;
            let end = self.tail + messages.len() as u64;
            for (i, message) in messages.iter().enumerate() {
                self.push(self.tail + i as u64, message.clone(), end);
            }
            self.tail = end;
        } else {
            let end = self.tail + body.len() as u64;
            self.push(self.tail, body.clone(), end);
            self.tail = end;
        }
        while self.bytes > limits.max_stream_bytes && self.entries.len() > 1 {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.data.len();
            }
        }
        Ok(())
    }

    /// A `POST` (append, close, or both), applied or refused as a whole.
    pub fn append(
        &mut self,
        request: &AppendRequest,
        now_ms: i64,
        limits: &StreamLimits,
    ) -> AppendOutcome {
        let tail = Offset(self.tail);
        let producer = request.producer.as_ref();
        if self.closed {
            let same_closer = producer
                .is_some_and(|p| self.closed_by.as_ref() == Some(&(p.id.clone(), p.epoch, p.seq)));
            return match (same_closer, producer) {
                (true, Some(p)) => AppendOutcome::Duplicate {
                    tail,
                    closed: true,
                    last_seq: p.seq,
                },
                _ if request.body.is_empty() && request.close && producer.is_none() => {
                    AppendOutcome::Duplicate {
                        tail,
                        closed: true,
                        last_seq: 0,
                    }
                }
                _ => AppendOutcome::Closed { tail },
            };
        }
        if !request.body.is_empty()
            && let Some(asked) = &request.content_type
            && config::essence(asked) != config::essence(&self.content_type)
        {
            return AppendOutcome::ContentTypeMismatch;
        }
        let accepted = match producer {
            None => None,
            Some(p) => {
                let state = self.producers.get(&p.id).map(|known| known.state);
                match producer::check(state, p.epoch, p.seq) {
                    ProducerCheck::Accept => Some(ProducerCheck::accepted(p.epoch, p.seq)),
                    ProducerCheck::Duplicate { last_seq } => {
                        return AppendOutcome::Duplicate {
                            tail,
                            closed: false,
                            last_seq,
                        };
                    }
                    ProducerCheck::StaleEpoch { current } => {
                        return AppendOutcome::StaleEpoch { current };
                    }
                    ProducerCheck::NewEpochNotAtZero => return AppendOutcome::NewEpochNotAtZero,
                    ProducerCheck::Gap { expected, received } => {
                        return AppendOutcome::Gap { expected, received };
                    }
                }
            }
        };
        if let Some(seq) = &request.stream_seq
            && self.stream_seq.as_ref().is_some_and(|last| seq <= last)
        {
            return AppendOutcome::SeqConflict;
        }
        if !request.body.is_empty()
            && let Err(error) = self.add_data(&request.body, false, limits)
        {
            return AppendOutcome::BadBody(error);
        }
        if let (Some(p), Some(state)) = (producer, accepted) {
            self.remember(p.id.clone(), state, now_ms, limits.max_producers);
        }
        if let Some(seq) = &request.stream_seq {
            self.stream_seq = Some(seq.clone());
        }
        if request.close {
            self.closed = true;
            self.closed_by = producer.map(|p| (p.id.clone(), p.epoch, p.seq));
        }
        self.touched_ms = now_ms;
        AppendOutcome::Appended {
            tail: Offset(self.tail),
            closed: self.closed,
        }
    }

    fn remember(&mut self, id: String, state: ProducerState, now_ms: i64, max: usize) {
        if !self.producers.contains_key(&id) && self.producers.len() >= max.max(1) {
            let idlest = self
                .producers
                .iter()
                .min_by_key(|(_, p)| p.used_ms)
                .map(|(id, _)| id.clone());
            if let Some(idlest) = idlest {
                self.producers.remove(&idlest);
            }
        }
        self.producers.insert(
            id,
            Producer {
                state,
                used_ms: now_ms,
            },
        );
    }

    /// Reads from `from`, about `max_bytes` at most (at least one entry).
    /// `None`: the position is older than what is retained.
    pub fn read(&self, from: ReadFrom, max_bytes: usize) -> Option<Page> {
        let start = match from {
            ReadFrom::Start => self.head(),
            ReadFrom::Tail => self.tail,
            ReadFrom::At(offset) => offset.0.min(self.tail),
        };
        if start < self.head() {
            return None;
        }
        let first = self
            .entries
            .partition_point(|e| e.start + self.len_of(e) <= start);
        let mut next = start;
        let mut taken = 0usize;
        let mut parts: Vec<Bytes> = Vec::new();
        for entry in self.entries.iter().skip(first) {
            if taken > 0 && taken + entry.data.len() > max_bytes {
                break;
            }
            let data = match start > entry.start && !self.json {
                true => entry.data.slice((start - entry.start) as usize..),
                false => entry.data.clone(),
            };
            taken += data.len();
            next = entry.start + self.len_of(entry);
            parts.push(data);
        }
        let has_data = !parts.is_empty();
        let body = if self.json {
            Bytes::from(json::array(parts.iter().map(|p| p.as_ref())))
        } else if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            Bytes::from(parts.concat())
        };
        Some(Page {
            info: self.info(),
            start: Offset(start),
            next: Offset(next),
            body,
            has_data,
            up_to_date: next == self.tail,
        })
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
