//! Redis Cluster mode (PROTOCOL §6): a session's names carry its id as a
//! hash tag, so its channels, log and metadata live on one shard, and its
//! events travel by sharded Pub/Sub (`SPUBLISH` / `SSUBSCRIBE`), whose
//! traffic stays on that shard instead of being broadcast to every node.
//!
//! * `slots` — the key slot of a name and the slot → master map.
//! * `resp` — the few RESP2 frames a subscriber connection needs.
//! * `shard` — one subscriber connection per master.
//! * `subscriber` — the task that routes subscriptions by slot and
//!   recovers from failovers and resharding.
//!
//! Commands (the log's functions, `SPUBLISH`, the job queue) go through
//! redis-rs's cluster client, which follows `MOVED` / `ASK` itself.

mod resp;
mod shard;
mod slots;
pub(crate) use slots::slot_of;
mod subscriber;

pub(crate) use subscriber::{ShardedSubscriberTask, link_group};
