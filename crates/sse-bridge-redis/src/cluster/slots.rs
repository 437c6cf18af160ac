//! Which shard serves a name: the cluster's key slot of a key or channel
//! (CRC16-XMODEM of its hash tag, or of the whole name, mod 16384), and
//! the slot → master map read from `CLUSTER SLOTS`.

use redis::Value;
use sse_bridge_core::BrokerError;

/// Slots of a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// The slot of `name`: only the part between the first `{` and the next
/// `}` is hashed when it is not empty (a hash tag).
pub(crate) fn slot_of(name: &[u8]) -> u16 {
    let hashed = name
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let tag = &name[open + 1..];
            let close = tag.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &tag[..close])
        })
        .unwrap_or(name);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

/// The master of every slot range, as `host:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SlotMap {
    ranges: Vec<(u16, u16, String)>,
}

impl SlotMap {
    /// Reads a `CLUSTER SLOTS` reply.
    pub(crate) fn from_cluster_slots(reply: &Value) -> Result<SlotMap, BrokerError> {
        let bad = || BrokerError::Rejected("unexpected CLUSTER SLOTS reply".into());
        let Value::Array(ranges) = reply else {
            return Err(bad());
        };
        let mut map = SlotMap::default();
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(bad());
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(bad());
            };
            let host = match master.first() {
                Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
                Some(Value::SimpleString(host)) => host.clone(),
                _ => return Err(bad()),
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return Err(bad());
            };
            let slot = |n: i64| u16::try_from(n).map_err(|_| bad());
            map.ranges
                .push((slot(*start)?, slot(*end)?, format!("{host}:{port}")));
        }
        map.ranges.sort();
        Ok(map)
    }

    /// The master serving `slot`, if the map covers it.
    pub(crate) fn master_of(&self, slot: u16) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, addr)| addr.as_str())
    }

    /// Records that `slot` moved to `master` (a `MOVED` answer), until the
    /// next full refresh.
    pub(crate) fn moved(&mut self, slot: u16, master: &str) {
        self.ranges.retain(|(s, e, _)| !(*s == slot && *e == slot));
        self.ranges.push((slot, slot, master.to_owned()));
        // Single-slot entries first, so they win over the range they split.
        self.ranges.sort_by_key(|(s, e, _)| (e - s, *s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_spec() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(slot_of(b"123456789"), 12739);
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b"sse_session:{abc}"), slot_of(b"sse_events:{abc}"));
    }

    #[test]
    fn the_map_answers_moved_slots_first() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                Value::Array(vec![
                    Value::BulkString(b"127.0.0.1".to_vec()),
                    Value::Int(7000),
                ]),
            ]),
            Value::Array(vec![
                Value::Int(8192),
                Value::Int(16383),
                Value::Array(vec![
                    Value::BulkString(b"127.0.0.1".to_vec()),
                    Value::Int(7001),
                ]),
            ]),
        ]);
        let mut map = SlotMap::from_cluster_slots(&reply).unwrap();
        assert_eq!(map.master_of(100), Some("127.0.0.1:7000"));
        assert_eq!(map.master_of(9000), Some("127.0.0.1:7001"));
        map.moved(100, "127.0.0.1:7002");
        assert_eq!(map.master_of(100), Some("127.0.0.1:7002"));
        assert_eq!(map.master_of(101), Some("127.0.0.1:7000"));
    }
}
