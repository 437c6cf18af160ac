//! The task that keeps a job source's consumer polled, busy or not.
//!
//! librdkafka does group work (rebalances, commit results) only while the
//! application polls. A worker asks for a job only when it has a free slot, so
//! polling only then would leave a busy worker deaf to rebalances: a real
//! broker then holds the whole group's rebalance for up to
//! `max.poll.interval.ms`, and finally evicts the worker, whose running jobs
//! are delivered again. So this task polls all the time and hands jobs over a
//! channel with room for one. When that one has waited a while for a free
//! slot, the owned partitions are paused (polling goes on, fetching stops),
//! and so is any partition assigned meanwhile, until the slot frees.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use sse_bridge_core::{BrokerError, Job, ReceivedJob};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Permit, Sender};

use crate::context::JobSourceContext;
use crate::error::broker_error;
use crate::offsets::Partition;
use crate::source::KafkaAck;

pub(crate) type JobConsumer = StreamConsumer<JobSourceContext>;

/// How long a job may wait for a free slot before fetching pauses. Group
/// work is delayed by as much, far below any group timeout.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// What the source hands to `next_job`.
pub(crate) type Fetched = Result<ReceivedJob, BrokerError>;

/// Feeds `jobs` until its receiver is gone.
pub(crate) async fn run(consumer: Arc<JobConsumer>, jobs: Sender<Fetched>) {
    // Jobs that arrived while the channel was full, in offset order.
    let mut early = VecDeque::new();
    loop {
        let room = match jobs.try_reserve() {
            Ok(room) => room,
            Err(TrySendError::Full(())) => {
                match wait_for_room(&consumer, &jobs, &mut early).await {
                    Some(room) => room,
                    None => return,
                }
            }
            Err(TrySendError::Closed(())) => return,
        };
        let next = match early.pop_front() {
            Some(job) => job,
            None => fetch(&consumer).await,
        };
        room.send(next);
    }
}

/// The next job, skipping what is not one.
async fn fetch(consumer: &Arc<JobConsumer>) -> Fetched {
    loop {
        let message = consumer.recv().await.map_err(|e| broker_error(&e, None))?;
        if let Some(job) = take(consumer, &message) {
            return Ok(job);
        }
    }
}

/// Waits until `jobs` has room; after [`PAUSE_AFTER`], polls with the owned
/// partitions paused.
async fn wait_for_room<'a>(
    consumer: &Arc<JobConsumer>,
    jobs: &'a Sender<Fetched>,
    early: &mut VecDeque<Fetched>,
) -> Option<Permit<'a, Fetched>> {
    // Usually a slot frees soon: no pause then, which would drop the
    // partitions' prefetched messages.
    if let Ok(room) = tokio::time::timeout(PAUSE_AFTER, jobs.reserve()).await {
        return room.ok();
    }
    set_paused(consumer, true);
    let room = loop {
        tokio::select! {
            room = jobs.reserve() => break room.ok(),
            polled = consumer.recv() => match polled {
                // Fetched before the pause took effect: keep it for later.
                Ok(message) => early.extend(take(consumer, &message).map(Ok)),
                Err(error) => tracing::debug!("while every job slot is busy: {error}"),
            },
        }
    };
    set_paused(consumer, false);
    room
}

fn set_paused(consumer: &JobConsumer, paused: bool) {
    // Tells the rebalance callback to pause partitions assigned meanwhile.
    consumer.context().set_paused(paused);
    let result = consumer.assignment().and_then(|owned| match paused {
        true => consumer.pause(&owned),
        false => consumer.resume(&owned),
    });
    if let Err(error) = result {
        tracing::warn!(
            "cannot {} the job partitions: {error}",
            if paused { "pause" } else { "resume" }
        );
    }
}

/// Records `message` as taken; `None` if it is skipped.
fn take(consumer: &Arc<JobConsumer>, message: &BorrowedMessage<'_>) -> Option<ReceivedJob> {
    let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
    let owned = Partition {
        topic: topic.to_owned(),
        partition,
    };
    let Some(taken) = consumer.context().tracker().take(owned, offset) else {
        tracing::warn!(
            topic,
            partition,
            offset,
            "skipping a message of a partition not assigned here"
        );
        return None;
    };
    let ack = KafkaAck::new(Arc::downgrade(consumer), taken);
    let error = match message.payload().map(Job::from_json) {
        Some(Ok(job)) => {
            return Some(ReceivedJob {
                job,
                ack: Box::new(ack),
            });
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
    None
}
