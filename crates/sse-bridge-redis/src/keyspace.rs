//! The Redis names of a session, in single-node or cluster mode.
//!
//! Single node: the names of PROTOCOL §1 (`sse_session:<id>`,
//! `sse_events:<id>`, ...), which seed-style workers already use. Cluster:
//! the same names with the id as a hash tag (`sse_session:{<id>}`), so one
//! session's keys and channels share a slot (PROTOCOL §6). The core speaks
//! the single-node names; the Redis backends translate at their edge.

use std::borrow::Cow;

use sse_bridge_core::SessionId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keyspace {
    cluster: bool,
}

impl Keyspace {
    pub(crate) fn new(cluster: bool) -> Self {
        Keyspace { cluster }
    }

    pub(crate) fn is_cluster(self) -> bool {
        self.cluster
    }

    /// The Redis name of a channel or key the core names `prefix:<id>`.
    pub(crate) fn name(self, name: &str) -> Cow<'_, str> {
        match name.split_once(':') {
            Some((prefix, id)) if self.cluster && !id.starts_with('{') => {
                Cow::Owned(format!("{prefix}:{{{id}}}"))
            }
            _ => Cow::Borrowed(name),
        }
    }

    pub(crate) fn log_key(self, id: SessionId) -> String {
        self.name(&id.log_key()).into_owned()
    }

    pub(crate) fn meta_key(self, id: SessionId) -> String {
        self.name(&id.meta_key()).into_owned()
    }

    pub(crate) fn folded_key(self, id: SessionId) -> String {
        self.name(&id.folded_key()).into_owned()
    }

    pub(crate) fn event_channel(self, id: SessionId) -> String {
        self.name(&id.event_channel()).into_owned()
    }

    /// How a session's events are published: sharded in a cluster, so the
    /// message stays on the session's shard.
    pub(crate) fn publish_command(self) -> &'static str {
        if self.cluster { "SPUBLISH" } else { "PUBLISH" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_carry_the_id_as_a_hash_tag() {
        let cluster = Keyspace::new(true);
        assert_eq!(cluster.name("sse_session:abc"), "sse_session:{abc}");
        assert_eq!(cluster.name("sse_session:{abc}"), "sse_session:{abc}");
        let single = Keyspace::new(false);
        assert_eq!(single.name("sse_session:abc"), "sse_session:abc");
    }
}
