//! Which offset may be committed when jobs finish out of order.
//!
//! A worker runs many jobs of one partition at once and they end in any
//! order, but a Kafka commit is a single position per partition: everything
//! below it counts as done. So per owned partition the tracker keeps the
//! offsets taken and not yet done; the commit position is the lowest of them,
//! or one past the highest offset taken when none is pending. It never passes
//! an unfinished job, so a crash redelivers that job (and possibly some
//! finished ones after it: at-least-once).
//!
//! Ownership changes with rebalances: a revoked partition is forgotten, an
//! assigned one starts empty under a new epoch, and a job taken under an older
//! epoch no longer moves the commit position (its partition's new owner
//! processes it again).

use std::collections::{BTreeSet, HashMap};

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Partition {
    pub topic: String,
    pub partition: i32,
}

/// A message handed out, to be reported [`OffsetTracker::done`].
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub partition: Partition,
    pub offset: i64,
    epoch: u64,
}

#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    owned: HashMap<Partition, Owned>,
    epochs: u64,
}

#[derive(Debug)]
struct Owned {
    epoch: u64,
    pending: BTreeSet<i64>,
    /// One past the highest offset taken.
    next: Option<i64>,
    /// The last position handed out for commit; starts at the first offset taken.
    committed: Option<i64>,
}

impl OffsetTracker {
    /// The partition is ours from now on; anything known about it is dropped.
    pub fn assign(&mut self, partition: Partition) {
        self.epochs += 1;
        let owned = Owned {
            epoch: self.epochs,
            pending: BTreeSet::new(),
            next: None,
            committed: None,
        };
        self.owned.insert(partition, owned);
    }

    /// The partition is no longer ours.
    pub fn revoke(&mut self, partition: &Partition) {
        self.owned.remove(partition);
    }

    /// The partitions owned now, in no particular order.
    pub fn owned(&self) -> impl Iterator<Item = &Partition> {
        self.owned.keys()
    }

    /// Records a message handed out; `None` if its partition is not owned.
    ///
    /// Offsets of one partition must be taken in increasing order.
    pub fn take(&mut self, partition: Partition, offset: i64) -> Option<Taken> {
        let owned = self.owned.get_mut(&partition)?;
        owned.pending.insert(offset);
        owned.next = Some(owned.next.map_or(offset + 1, |next| next.max(offset + 1)));
        // Where consumption started is committed already (or the reset point):
        // committing it again would change nothing.
        owned.committed.get_or_insert(offset);
        Some(Taken {
            partition,
            offset,
            epoch: owned.epoch,
        })
    }

    /// Marks a message done; returns the position to commit if it advanced.
    ///
    /// `None` as well when the partition was revoked since the message was taken.
    pub fn done(&mut self, taken: &Taken) -> Option<i64> {
        let owned = self
            .owned
            .get_mut(&taken.partition)
            .filter(|owned| owned.epoch == taken.epoch)?;
        owned.pending.remove(&taken.offset);
        let position = owned.pending.first().copied().or(owned.next)?;
        if owned
            .committed
            .is_some_and(|committed| committed >= position)
        {
            return None;
        }
        owned.committed = Some(position);
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(partition: i32) -> Partition {
        Partition {
            topic: "t".into(),
            partition,
        }
    }

    #[test]
    fn commits_only_below_the_lowest_unfinished_offset() {
        let mut tracker = OffsetTracker::default();
        tracker.assign(p(0));
        let taken: Vec<Taken> = (0..3).map(|o| tracker.take(p(0), o).unwrap()).collect();
        assert_eq!(tracker.done(&taken[2]), None, "0 and 1 are still running");
        assert_eq!(tracker.done(&taken[0]), Some(1));
        assert_eq!(tracker.done(&taken[1]), Some(3));
    }

    #[test]
    fn gaps_in_offsets_do_not_stall_commits() {
        let mut tracker = OffsetTracker::default();
        tracker.assign(p(0));
        let a = tracker.take(p(0), 10).unwrap();
        let b = tracker.take(p(0), 14).unwrap();
        assert_eq!(tracker.done(&a), Some(14));
        assert_eq!(tracker.done(&b), Some(15));
    }

    #[test]
    fn partitions_are_independent() {
        let mut tracker = OffsetTracker::default();
        tracker.assign(p(0));
        tracker.assign(p(1));
        let a = tracker.take(p(0), 0).unwrap();
        let b = tracker.take(p(1), 0).unwrap();
        assert_eq!(tracker.done(&b), Some(1));
        assert_eq!(tracker.done(&a), Some(1));
    }

    #[test]
    fn unowned_partitions_are_not_tracked() {
        let mut tracker = OffsetTracker::default();
        assert!(tracker.take(p(0), 0).is_none());
    }

    #[test]
    fn acks_from_before_a_rebalance_are_ignored() {
        let mut tracker = OffsetTracker::default();
        tracker.assign(p(0));
        let old = tracker.take(p(0), 0).unwrap();
        tracker.revoke(&p(0));
        assert_eq!(tracker.done(&old), None, "revoked");
        tracker.assign(p(0));
        let new = tracker.take(p(0), 5).unwrap();
        assert_eq!(
            tracker.done(&old),
            None,
            "taken under the previous assignment"
        );
        assert_eq!(tracker.done(&new), Some(6));
    }
}
