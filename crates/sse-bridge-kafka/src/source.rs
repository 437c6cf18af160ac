//! [`KafkaJobSource`]: the workers' side of the Kafka job queue.
//!
//! Workers of one deployment share a consumer group, so each job partition,
//! and with it each job, goes to one worker at a time. Offsets are committed
//! by hand, and only once a job's session ended: the [`JobAck`] marks the
//! job done in the [`OffsetTracker`](crate::offsets::OffsetTracker), which
//! tells the position below which every job is done; that position is
//! committed. A worker that dies therefore leaves its unfinished jobs (and
//! possibly finished ones after them) to be delivered again: at-least-once.
//! The same holds across rebalances: a job of a partition this worker lost
//! may still run here, but its ack commits nothing, and the partition's new
//! owner runs it too.
//!
//! The consumer is polled by the [`poller`](crate::poller::run) task; `next_job`
//! takes the job it prepared.
//! Redelivered jobs whose session is already over cost little: the session's
//! log refuses the worker runner's `worker_ack` and the job is acknowledged
//! without running; one whose session another worker still serves waits for
//! it (the log answers `busy`).
//!
//! A stopping worker [leaves](KafkaJobSource::leave) before it drains: it
//! stops polling, hands back the jobs fetched but not started, and
//! unsubscribes, so the group rebalances at once and its partitions' waiting
//! jobs go to the others instead of waiting out the drain.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sse_bridge_core::{BrokerError, JobAck, JobSource, ReceivedJob};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::config::KafkaConfig;
use crate::context::JobSourceContext;
use crate::error::broker_error;
use crate::offsets::{Partition, Taken};
use crate::poller::{self, Fetched, JobConsumer};

/// Takes jobs from the job topic as a member of the workers' consumer group.
///
/// [`JobSource::leave`] leaves the group and keeps the consumer, so jobs
/// still running may be acknowledged (they commit nothing: their partitions'
/// new owners do). Dropping it closes the consumer, which leaves the group
/// too; acknowledgements that come later fail with [`BrokerError::Closed`].
/// `next_job` returns `Ok(None)` only after `leave`: stop the worker with
/// its shutdown token.
pub struct KafkaJobSource {
    consumer: Arc<JobConsumer>,
    jobs: Mutex<mpsc::Receiver<Fetched>>,
    poller: JoinHandle<()>,
}

impl KafkaJobSource {
    /// Creates the consumer, subscribes to the job topic and starts polling;
    /// joining the group happens in the background.
    ///
    /// Must be called within a Tokio runtime. Fails with
    /// [`BrokerError::Rejected`] on an invalid librdkafka property.
    pub fn new(config: &KafkaConfig) -> Result<Self, BrokerError> {
        let consumer: JobConsumer = config
            .consumer()
            .create_with_context(JobSourceContext::default())
            .map_err(|e| broker_error(&e, None))?;
        consumer
            .subscribe(&[&config.topic])
            .map_err(|e| broker_error(&e, None))?;
        let consumer = Arc::new(consumer);
        // Room for one: jobs wait in Kafka, not in this process.
        let (tx, rx) = mpsc::channel(1);
        let poller = tokio::spawn(poller::run(consumer.clone(), tx));
        Ok(KafkaJobSource {
            consumer,
            jobs: Mutex::new(rx),
            poller,
        })
    }

    /// The `(topic, partition)`s this worker owns now, sorted.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        let tracker = self.consumer.context().tracker();
        let mut owned: Vec<_> = tracker
            .owned()
            .map(|p| (p.topic.clone(), p.partition))
            .collect();
        owned.sort();
        owned
    }
}

impl Drop for KafkaJobSource {
    fn drop(&mut self) {
        // The poller holds the consumer; ending it closes the consumer.
        self.poller.abort();
    }
}

/// How long a leaving worker polls for librdkafka to revoke its partitions.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

#[async_trait]
impl JobSource for KafkaJobSource {
    async fn next_job(&self) -> Result<Option<ReceivedJob>, BrokerError> {
        self.jobs.lock().await.recv().await.transpose()
    }

    /// Stops polling for jobs, hands back those fetched but not started —
    /// the one waiting for a slot, any held while fetching was paused (never
    /// committed: the partitions' next owners fetch them again) — and
    /// unsubscribes: a dynamic member leaves the group at once (LeaveGroup),
    /// so the group rebalances now instead of after `session.timeout.ms`. A
    /// static member (`group.instance.id`) keeps its partitions at the broker
    /// until `session.timeout.ms`, so that a restart with the same id finds
    /// them unmoved.
    async fn leave(&self) {
        self.poller.abort();
        let mut jobs = self.jobs.lock().await;
        jobs.close();
        while jobs.try_recv().is_ok() {}
        self.consumer.unsubscribe();
        // librdkafka revokes the partitions from inside a poll.
        let revoked = tokio::time::timeout(LEAVE_WAIT, async {
            while self.consumer.context().tracker().owned().next().is_some() {
                // Messages still prefetched are not taken: they are handed back too.
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), self.consumer.recv()).await;
            }
        })
        .await;
        match revoked {
            Ok(()) => tracing::info!("left the job consumer group"),
            Err(_) => tracing::warn!(
                "the job partitions were not revoked within {LEAVE_WAIT:?}; leaving when the consumer closes"
            ),
        }
    }
}

/// Acknowledges one job: marks it done and commits what that allows.
pub(crate) struct KafkaAck {
    consumer: Weak<JobConsumer>,
    taken: Taken,
}

impl KafkaAck {
    pub fn new(consumer: Weak<JobConsumer>, taken: Taken) -> Self {
        KafkaAck { consumer, taken }
    }

    pub fn commit(&self) -> Result<(), BrokerError> {
        let consumer = self.consumer.upgrade().ok_or(BrokerError::Closed)?;
        let mut tracker = consumer.context().tracker();
        let Some(position) = tracker.done(&self.taken) else {
            return Ok(());
        };
        let Partition { topic, partition } = &self.taken.partition;
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(topic, *partition, Offset::Offset(position))
            .map_err(|e| broker_error(&e, None))?;
        // Asynchronous: librdkafka only queues the request. Queued under the
        // tracker lock, so a partition's commits leave in increasing order.
        consumer
            .commit(&offsets, CommitMode::Async)
            .map_err(|e| broker_error(&e, None))
    }
}

#[async_trait]
impl JobAck for KafkaAck {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        self.commit()
    }

    /// Committed like a finished job: left pending, it would hold its
    /// partition's commit position back (and every later job with it) until
    /// a rebalance. Its session ends at the gateway with `ack_timeout`.
    async fn abandon(self: Box<Self>) -> Result<(), BrokerError> {
        tracing::warn!(
            partition = self.taken.partition.partition,
            "job abandoned before it ran; committing it so the partition moves on"
        );
        self.commit()
    }
}
