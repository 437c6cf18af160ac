//! Builds the event bus and the job queue the command line asked for.

use std::sync::Arc;

use anyhow::{Context, bail};
use sse_bridge_core::embedded::{EmbeddedBus, EmbeddedQueue};
use sse_bridge_core::{EventBus, JobDispatcher, JobSource};
use sse_bridge_redis::{RedisBus, RedisConfig, RedisJobQueue, RedisQueueConfig};

use crate::cli::{BrokerArgs, QueueKind};

/// The event bus: Redis Pub/Sub with `--redis-url`, else in-process.
pub async fn event_bus(
    args: &BrokerArgs,
    role: &str,
    buffer: usize,
) -> anyhow::Result<Arc<dyn EventBus>> {
    Ok(match &args.redis_url {
        Some(url) => {
            let config = RedisConfig {
                client_name: client_name(args, role),
                subscription_capacity: buffer,
                ..RedisConfig::new(url.clone())
            };
            Arc::new(
                RedisBus::connect(config)
                    .await
                    .context("connecting the Redis event bus")?,
            )
        }
        None => Arc::new(EmbeddedBus::new(buffer)),
    })
}

/// Both ends of a job queue; a process uses one or both.
pub struct JobQueue {
    pub dispatcher: Arc<dyn JobDispatcher>,
    pub source: Arc<dyn JobSource>,
}

/// The gateway's end of the queue, plus the worker's end where it is cheap
/// to have (embedded, Redis).
pub async fn job_queue(
    args: &BrokerArgs,
    role: &str,
    embedded_capacity: usize,
) -> anyhow::Result<JobQueue> {
    match args.queue_kind() {
        QueueKind::Embedded => {
            let queue = EmbeddedQueue::new(embedded_capacity);
            Ok(JobQueue {
                dispatcher: Arc::new(queue.clone()),
                source: Arc::new(queue),
            })
        }
        QueueKind::Redis => {
            let queue = Arc::new(redis_queue(args, role).await?);
            Ok(JobQueue {
                dispatcher: queue.clone(),
                source: queue,
            })
        }
        QueueKind::Kafka => kafka::job_queue(args).await,
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
            ..RedisConfig::new(url.clone())
        },
        stream: args.redis_stream.clone(),
        group: args.group.clone(),
        max_len: args.redis_stream_max_len,
        claim_idle: args.redis_claim_idle,
        ..RedisQueueConfig::new(url.clone())
    };
    RedisJobQueue::connect(config)
        .await
        .context("connecting the Redis job queue")
}

#[cfg(not(feature = "kafka"))]
mod kafka {
    use super::*;

    pub async fn job_queue(_: &BrokerArgs) -> anyhow::Result<JobQueue> {
        bail!("this sse-bridge was built without Kafka support; rebuild with `--features kafka`")
    }
}
