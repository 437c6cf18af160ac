//! [`KafkaDispatcher`]: the gateway's side of the Kafka job queue.
//!
//! One idempotent producer per process. A job is keyed by its session id, so
//! librdkafka's partitioner spreads sessions over the partitions, and
//! `dispatch` returns only once the partition leader acknowledged the write
//! (with `acks` as configured; librdkafka's default is `all`). A job the broker
//! does not acknowledge within `delivery_timeout` fails the dispatch; the
//! gateway answers 503. Should the broker still store it afterwards, the worker
//! that takes it finds nobody listening to the session and skips it.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sse_bridge_core::{BrokerError, Job, JobDispatcher};

use crate::config::KafkaConfig;
use crate::error::broker_error;
use crate::logging::TracingContext;

/// How long `check_ready` waits for topic metadata.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Produces jobs to the job topic.
#[derive(Clone)]
pub struct KafkaDispatcher {
    producer: FutureProducer<TracingContext>,
    topic: String,
    delivery_timeout: Duration,
}

impl KafkaDispatcher {
    /// Creates the producer; it connects in the background, so this does not
    /// fail when the brokers are down (see [`JobDispatcher::check_ready`]).
    ///
    /// Fails with [`BrokerError::Rejected`] on an invalid librdkafka property.
    pub fn new(config: &KafkaConfig) -> Result<Self, BrokerError> {
        let producer = config
            .producer()
            .create_with_context(TracingContext)
            .map_err(|e| broker_error(&e, None))?;
        Ok(KafkaDispatcher {
            producer,
            topic: config.topic.clone(),
            delivery_timeout: config.delivery_timeout,
        })
    }
}

#[async_trait]
impl JobDispatcher for KafkaDispatcher {
    async fn dispatch(&self, job: &Job) -> Result<(), BrokerError> {
        let key = job.session_id.to_string();
        let payload = job.to_json();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        // `send_result` refuses at once when librdkafka's local queue is full,
        // rather than waiting for room while the client waits for its answer.
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| broker_error(&e, Some(self.delivery_timeout)))?;
        // `message.timeout.ms` normally ends the wait; this bound holds even
        // if the properties raised it.
        match tokio::time::timeout(self.delivery_timeout, delivery).await {
            Err(_) => Err(BrokerError::Timeout(self.delivery_timeout)),
            Ok(Err(_canceled)) => Err(BrokerError::Closed),
            Ok(Ok(Err((e, _message)))) => Err(broker_error(&e, Some(self.delivery_timeout))),
            Ok(Ok(Ok(_delivery))) => Ok(()),
        }
    }

    async fn check_ready(&self) -> Result<(), BrokerError> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        // A blocking librdkafka call: keep it off the async workers.
        tokio::task::spawn_blocking(move || topic_ready(&producer, &topic))
            .await
            .map_err(|_| BrokerError::Closed)?
    }
}

/// `Ok` when a broker answered and knows `topic` with at least one partition.
fn topic_ready(producer: &FutureProducer<TracingContext>, topic: &str) -> Result<(), BrokerError> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), READY_TIMEOUT)
        // No answer in time almost always means no reachable broker.
        .map_err(|e| broker_error(&e, None))?;
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    match found {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
        Some(t) => Err(match t.error() {
            Some(code) => broker_error(&KafkaError::MetadataFetch(code.into()), None),
            None => BrokerError::Rejected(format!("topic {topic} has no partitions")),
        }),
        None => Err(BrokerError::Rejected(format!(
            "topic {topic} does not exist"
        ))),
    }
}
