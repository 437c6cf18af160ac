//! Durable Streams (the ElectricSQL protocol, `PROTOCOL.md` of the
//! durable-streams repository): append-only streams with opaque offsets,
//! idempotent producers and explicit closing, independent of HTTP.
//!
//! * [`offset`] — positions and their wire form; [`ReadFrom`].
//! * [`producer`] — the producer/epoch rule, pure.
//! * [`json`] — JSON mode: validation and one level of array flattening.
//! * [`config`] — content types, `Stream-TTL` / `Stream-Expires-At`, cursors.
//! * [`model`] — one stream in memory: create, append, close, read, fork.
//! * [`memory`] — [`MemoryStreams`], the embedded [`StreamStore`].
//! * [`jobs`] — the jobs stream HTTP workers read, and its dispatcher.
//! * [`session`] — a session's log read as a JSON-mode stream: offsets from
//!   log ids, pages of its events.
//!
//! The [`StreamStore`] trait is what the gateway's `/v1/stream/*` handlers
//! call; each operation is one atomic step of the store (one lock in
//! memory, one Redis function), so the producer rule and closing never race.
//! Readers wait on the event bus: every change to a stream publishes a
//! short notice on [`channel`]`(path)`, and a long-poll or SSE reader
//! subscribes first, reads, then waits for a notice — so a write on one
//! gateway wakes readers on every other. Streams are namespaced by owner
//! ([`key`]).

pub mod config;
pub mod jobs;
pub mod json;
pub mod memory;
pub mod model;
pub mod offset;
pub mod producer;
pub mod session;

use async_trait::async_trait;
use bytes::Bytes;

pub use config::{ExpiresAt, Expiry};
pub use memory::MemoryStreams;
pub use offset::{Offset, ReadFrom};

use crate::BrokerError;

/// The bus channel announcing changes to the stream `key`. Its hash
/// tag is the stream's, so on Redis Cluster the notice is published on
/// the stream's shard (escaped so a path's braces cannot pick another tag).
pub fn channel(key: &str) -> String {
    format!("sse_ds:{{{}}}", escape(key))
}

/// `path` with `%`, `{` and `}` percent-encoded (for key names).
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

/// What a `PUT` asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// `None`: the default (octet-stream), or the source's for a fork.
    pub content_type: Option<String>,
    pub expiry: Expiry,
    /// `Stream-Closed: true`: created closed, the body its whole content.
    pub closed: bool,
    pub fork: Option<ForkRequest>,
    pub body: Bytes,
}

/// `Stream-Forked-From` and its offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkRequest {
    /// The source stream's key (its owner's, like the fork's).
    pub source: String,
    /// `None`: the source's tail.
    pub offset: Option<Offset>,
    /// Bytes (or JSON messages) of the batch at `offset` to inherit too.
    pub sub_offset: u64,
}

/// A stream's metadata, as `HEAD` and every response show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub content_type: String,
    pub expiry: Expiry,
    pub closed: bool,
    pub tail: Offset,
    /// Differs between two streams that had the same path (ETags use it).
    pub generation: u64,
}

/// The result of a `PUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(StreamInfo),
    /// It existed with the same configuration (`200`).
    Existed(StreamInfo),
    /// It exists with another configuration, or was deleted while forks
    /// still read it (`409`).
    Conflict,
    /// The fork's source does not exist (`404`).
    SourceMissing,
    /// The fork's content type is not its source's (`409`).
    SourceTypeMismatch,
    /// The fork offset is past the source's tail, or the sub-offset past
    /// the batch there (`400`).
    BadForkOffset,
    /// The body is not what the content type needs (`400`).
    BadBody(json::JsonBodyError),
    /// The store holds all it may (`507`).
    Full,
    /// The store cannot copy the source into the fork in one step: on
    /// Redis Cluster they hash to different slots (`501`).
    ForkAcrossShards,
}

/// Producer headers of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerHeaders {
    pub id: String,
    pub epoch: u64,
    pub seq: u64,
}

/// What a `POST` asks for.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// Checked against the stream's when the body is not empty.
    pub content_type: Option<String>,
    /// Empty only with `close` (a close-only request).
    pub body: Bytes,
    pub close: bool,
    /// `Stream-Seq`: must grow (byte-wise) from append to append.
    pub stream_seq: Option<String>,
    pub producer: Option<ProducerHeaders>,
}

/// The result of a `POST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended (or closed): the new tail.
    Appended {
        tail: Offset,
        closed: bool,
    },
    /// A producer's repeat (or a repeated close): nothing changed (`204`).
    Duplicate {
        tail: Offset,
        closed: bool,
        last_seq: u64,
    },
    /// The stream is closed (`409` with `Stream-Closed`).
    Closed {
        tail: Offset,
    },
    ContentTypeMismatch,
    /// `Stream-Seq` did not grow (`409`).
    SeqConflict,
    /// A zombie producer (`403`, the current epoch).
    StaleEpoch {
        current: u64,
    },
    /// A new epoch not at sequence 0 (`400`).
    NewEpochNotAtZero,
    /// Sequences are missing (`409`).
    Gap {
        expected: u64,
        received: u64,
    },
    BadBody(json::JsonBodyError),
    Missing,
    /// Deleted while forks still read it (`410`).
    Gone,
    Full,
}

/// One page of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub info: StreamInfo,
    /// Where the page starts (the resolved `offset`).
    pub start: Offset,
    /// Where the next read starts.
    pub next: Offset,
    /// The bytes, or for JSON streams the messages as one array (`[]` when none).
    pub body: Bytes,
    /// Whether the page has any data.
    pub has_data: bool,
    /// Whether the page reaches the tail.
    pub up_to_date: bool,
}

/// The result of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    Page(Page),
    Missing,
    /// Deleted while forks read it, or the offset is older than what the
    /// stream retains (`410`).
    Gone,
}

/// The result of a `HEAD` or `DELETE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(StreamInfo),
    Missing,
    Gone,
}

/// A stream's key in a store: its owner's namespace and its path, so a
/// stream belongs to the principal that created it — another principal
/// never sees it (its own `PUT` at that path makes a stream of its own).
pub fn key(owner: &str, path: &str) -> String {
    format!("{}:{owner}/{path}", owner.len())
}

/// Where Durable Streams live: memory ([`MemoryStreams`]) or Redis. Each
/// stream is named by its [`key`].
#[async_trait]
pub trait StreamStore: Send + Sync + 'static {
    async fn create(&self, key: &str, request: CreateRequest)
    -> Result<CreateOutcome, BrokerError>;
    async fn append(&self, key: &str, request: AppendRequest)
    -> Result<AppendOutcome, BrokerError>;
    /// Reads about `max_bytes` at most (one entry at least) from `from`,
    /// and restarts a TTL.
    async fn read(
        &self,
        key: &str,
        from: ReadFrom,
        max_bytes: usize,
    ) -> Result<ReadOutcome, BrokerError>;
    /// Metadata, without restarting a TTL.
    async fn head(&self, key: &str) -> Result<Lookup, BrokerError>;
    async fn delete(&self, key: &str) -> Result<Lookup, BrokerError>;
}

/// Bounds of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Bytes one stream retains; older data is dropped (reads of it get `410`).
    pub max_stream_bytes: usize,
    /// Bytes all streams of an in-memory store hold together.
    pub max_total_bytes: usize,
    /// Producers a stream remembers (the least recently active are forgotten).
    pub max_producers: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_stream_bytes: 64 << 20,
            max_total_bytes: 512 << 20,
            max_producers: 1024,
        }
    }
}
