//! [`KafkaJobSource`]: the workers' side of the Kafka job queue.
//!
//! Workers of one deployment share a consumer group, so each job partition,
//! and with it each job, goes to one worker at a time. Offsets are committed
//! by hand, and only once a job's session ended: the [`JobAck`] marks the
//! job done in the [`OffsetTracker`](crate::offsets::OffsetTracker), which
//! tells the highest position all jobs below which are done; that position is
//! committed. A worker that dies therefore leaves its unfinished jobs (and
//! possibly finished ones after them) to be delivered again: at-least-once.
//!
//! Redelivered jobs whose session is already over cost little: the worker
//! runner publishes `worker_ack`, sees that no gateway listens any more, and
//! acknowledges the job without running it.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sse_bridge_core::{BrokerError, Job, JobAck, JobSource, ReceivedJob};

use crate::config::KafkaConfig;
use crate::context::JobSourceContext;
use crate::error::broker_error;
use crate::offsets::{Partition, Taken};

type JobConsumer = StreamConsumer<JobSourceContext>;

/// Takes jobs from the job topic as a member of the workers' consumer group.
///
/// Dropping it leaves the group; acknowledgements that come later fail with
/// [`BrokerError::Closed`] and those jobs go to the next owner of their
/// partition. It never returns `Ok(None)`: stop the worker with its shutdown
/// token.
pub struct KafkaJobSource {
    consumer: Arc<JobConsumer>,
    /// One receiver at a time, so the offsets of a partition are tracked in
    /// the order librdkafka returns them.
    receiving: tokio::sync::Mutex<()>,
}

impl KafkaJobSource {
    /// Creates the consumer and subscribes to the job topic; joining the group
    /// happens in the background, while jobs are being awaited.
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
        Ok(KafkaJobSource {
            consumer: Arc::new(consumer),
            receiving: tokio::sync::Mutex::new(()),
        })
    }

    /// The `(topic, partition)`s this worker owns now, sorted. Group
    /// membership advances only while a job is being awaited.
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

#[async_trait]
impl JobSource for KafkaJobSource {
    async fn next_job(&self) -> Result<Option<ReceivedJob>, BrokerError> {
        let _turn = self.receiving.lock().await;
        loop {
            let message = self
                .consumer
                .recv()
                .await
                .map_err(|e| broker_error(&e, None))?;
            let (topic, partition, offset) =
                (message.topic(), message.partition(), message.offset());
            let owned = Partition {
                topic: topic.to_owned(),
                partition,
            };
            let Some(taken) = self.consumer.context().tracker().take(owned, offset) else {
                tracing::warn!(
                    topic,
                    partition,
                    offset,
                    "skipping a message of a partition not assigned here"
                );
                continue;
            };
            let ack = KafkaAck {
                consumer: Arc::downgrade(&self.consumer),
                taken,
            };
            let error = match message.payload().map(Job::from_json) {
                Some(Ok(job)) => {
                    return Ok(Some(ReceivedJob {
                        job,
                        ack: Box::new(ack),
                    }));
                }
                Some(Err(error)) => error.to_string(),
                None => "no payload".to_owned(),
            };
            // Skipped for good: retrying cannot make it parse.
            tracing::warn!(
                topic,
                partition,
                offset,
                "skipping a malformed job: {error}"
            );
            if let Err(error) = ack.commit() {
                tracing::warn!("cannot commit past the malformed job: {error}");
            }
        }
    }
}

/// Acknowledges one job: marks it done and commits what that allows.
struct KafkaAck {
    consumer: Weak<JobConsumer>,
    taken: Taken,
}

impl KafkaAck {
    fn commit(&self) -> Result<(), BrokerError> {
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
}
