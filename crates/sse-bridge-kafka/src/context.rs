//! The job source's consumer context: rebalances and commit results.
//!
//! librdkafka calls it from inside `recv`, on the poller task. Partition
//! ownership is updated before librdkafka applies an assignment or gives one
//! up, so no message of a newly assigned partition is taken untracked and no
//! job of a revoked partition moves a commit position any more. Under the
//! cooperative protocol (our default) each callback names only the
//! partitions added or revoked, and rdkafka applies them incrementally
//! (`incremental_assign` / `incremental_unassign`): the partitions kept
//! through a rebalance keep their tracked jobs and their commit positions.
//! Under an eager one every partition is revoked, then the new set assigned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::logging;
use crate::offsets::{OffsetTracker, Partition};

#[derive(Debug, Default)]
pub(crate) struct JobSourceContext {
    tracker: Mutex<OffsetTracker>,
    /// Every job slot is busy: partitions assigned now start paused.
    paused: AtomicBool,
}

impl JobSourceContext {
    pub fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        // The tracker stays consistent even if a holder panicked.
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }
}

fn partitions(list: &TopicPartitionList) -> impl Iterator<Item = Partition> + '_ {
    list.elements().into_iter().map(|e| Partition {
        topic: e.topic().to_owned(),
        partition: e.partition(),
    })
}

impl ClientContext for JobSourceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        logging::log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        logging::client_error(&error, reason);
    }
}

impl ConsumerContext for JobSourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = list.count(), "job partitions assigned");
                let mut tracker = self.tracker();
                partitions(list).for_each(|p| tracker.assign(p));
            }
            Rebalance::Revoke(list) => {
                // Jobs of these partitions still running will not be committed
                // by us: the new owner runs them again (at-least-once).
                tracing::info!(partitions = list.count(), "job partitions revoked");
                let mut tracker = self.tracker();
                partitions(list).for_each(|p| tracker.revoke(&p));
            }
            Rebalance::Error(error) => tracing::warn!("consumer group rebalance failed: {error}"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance
            && self.paused.load(Ordering::Relaxed)
            && let Err(error) = consumer.pause(list)
        {
            tracing::warn!("cannot pause newly assigned job partitions: {error}");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(error) = result {
            // A later commit of the partition supersedes this one; if none
            // comes, the finished jobs are redelivered (at-least-once).
            tracing::warn!("cannot commit job offsets {offsets:?}: {error}");
        }
    }
}
