//! Builds the event bus and the job queue the command line asked for.

use std::sync::Arc;

use anyhow::{Context, bail};
use sse_bridge_core::embedded::{EmbeddedBus, EmbeddedQueue};
use sse_bridge_core::log::LogLimits;
use sse_bridge_core::{EventLog, JobDispatcher, JobSource, SubscriptionBound};
use sse_bridge_redis::{RedisBus, RedisConfig, RedisJobQueue, RedisQueueConfig};

use crate::cli::{BrokerArgs, QueueKind};

/// The event bus and its session logs: Redis with `--redis-url`, else
/// in-process.
pub async fn event_bus(
    args: &BrokerArgs,
    role: &str,
    subscription: SubscriptionBound,
    log: LogLimits,
) -> anyhow::Result<Arc<dyn EventLog>> {
    Ok(event_bus_and_redis(args, role, subscription, log).await?.0)
}

/// [`event_bus`], and the Redis bus itself when it is one (Durable
/// Streams store their data through it).
pub async fn event_bus_and_redis(
    args: &BrokerArgs,
    role: &str,
    subscription: SubscriptionBound,
    log: LogLimits,
) -> anyhow::Result<(Arc<dyn EventLog>, Option<RedisBus>)> {
    Ok(match &args.redis_url {
        Some(url) => {
            let config = RedisConfig {
                client_name: client_name(args, role),
                subscription,
                tls_ca_file: args.redis_tls_ca.clone(),
                cluster: args.redis_cluster,
                log,
                presence_lease: args.presence_lease,
                ..RedisConfig::new(url.clone())
            };
            let bus = RedisBus::connect(config)
                .await
                .context("connecting the Redis event bus")?;
            (Arc::new(bus.clone()), Some(bus))
        }
        None => (
            Arc::new(EmbeddedBus::with_log_limits(subscription, log)),
            None,
        ),
    })
}

/// The job queue: the gateway's end, and the worker's end when asked for.
pub struct JobQueue {
    pub dispatcher: Arc<dyn JobDispatcher>,
    pub source: Option<Arc<dyn JobSource>>,
}

/// Builds the queue `--queue` names; `consume`: this process also takes jobs.
pub async fn job_queue(
    args: &BrokerArgs,
    role: &str,
    embedded_capacity: usize,
    consume: bool,
) -> anyhow::Result<JobQueue> {
    let with_source = |queue: Arc<dyn JobSource>| consume.then_some(queue);
    match args.queue_kind() {
        QueueKind::Embedded => {
            let queue = EmbeddedQueue::new(embedded_capacity);
            Ok(JobQueue {
                dispatcher: Arc::new(queue.clone()),
                source: with_source(Arc::new(queue)),
            })
        }
        QueueKind::Redis => {
            let queue = Arc::new(redis_queue(args, role).await?);
            Ok(JobQueue {
                dispatcher: queue.clone(),
                source: with_source(queue),
            })
        }
        QueueKind::Kafka => kafka::job_queue(args, consume),
    }
}

fn client_name(args: &BrokerArgs, role: &str) -> String {
    args.redis_client_name
        .clone()
        .unwrap_or_else(|| role.to_owned())
}

async fn redis_queue(args: &BrokerArgs, role: &str) -> anyhow::Result<RedisJobQueue> {
    let Some(url) = &args.redis_url else {
        bail!("--queue redis needs --redis-url");
    };
    let config = RedisQueueConfig {
        redis: RedisConfig {
            client_name: client_name(args, role),
            tls_ca_file: args.redis_tls_ca.clone(),
            cluster: args.redis_cluster,
            ..RedisConfig::new(url.clone())
        },
        stream: args.redis_stream.clone(),
        group: args.group.clone(),
        max_len: args.redis_stream_max_len,
        partitions: args.redis_stream_partitions,
        claim_idle: args.redis_claim_idle,
        ..RedisQueueConfig::new(url.clone())
    };
    RedisJobQueue::connect(config)
        .await
        .context("connecting the Redis job queue")
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;
    use sse_bridge_kafka::{KafkaConfig, KafkaDispatcher, KafkaJobSource, parse_property};

    pub fn job_queue(args: &BrokerArgs, consume: bool) -> anyhow::Result<JobQueue> {
        let Some(brokers) = &args.kafka_brokers else {
            bail!("--queue kafka needs --kafka-brokers");
        };
        let properties = args
            .kafka_properties
            .iter()
            .map(|p| parse_property(p))
            .collect::<Result<_, _>>()
            .context("--kafka-property")?;
        let config = KafkaConfig {
            topic: args.kafka_topic.clone(),
            group: args.group.clone(),
            delivery_timeout: args.kafka_delivery_timeout,
            properties,
            instance_id: args.worker_id.clone(),
            ..KafkaConfig::new(brokers.clone())
        };
        let dispatcher =
            Arc::new(KafkaDispatcher::new(&config).context("creating the Kafka producer")?);
        let source = match consume {
            true => Some(Arc::new(
                KafkaJobSource::new(&config).context("creating the Kafka consumer")?,
            ) as Arc<dyn JobSource>),
            false => None,
        };
        Ok(JobQueue { dispatcher, source })
    }
}

#[cfg(not(feature = "kafka"))]
mod kafka {
    use super::*;

    pub fn job_queue(_: &BrokerArgs, _: bool) -> anyhow::Result<JobQueue> {
        bail!("this sse-bridge was built without Kafka support; rebuild with `--features kafka`")
    }
}
