//! `sse-bridge worker`: the demo agent as a separate process.

use std::sync::Arc;

use anyhow::{Context, bail};
use sse_bridge_core::SubscriptionBound;
use sse_bridge_core::log::LogLimits;
use sse_bridge_worker::{DemoAgent, WorkerOptions, run_worker};
use tokio_util::sync::CancellationToken;

use crate::backends;
use crate::cli::{QueueKind, WorkerCommandArgs};

pub async fn run(args: WorkerCommandArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if args.broker.redis_url.is_none() {
        bail!("a separate worker needs the gateway's event bus: set --redis-url");
    }
    if args.broker.queue_kind() == QueueKind::Embedded {
        bail!(
            "a separate worker cannot read the gateway's in-process queue: use --queue redis or kafka"
        );
    }
    // Workers append to logs the gateways created: the limits are theirs.
    let bus = backends::event_bus(
        &args.broker,
        "sse-bridge-worker",
        SubscriptionBound::messages(1024),
        LogLimits::default(),
    )
    .await?;
    let queue = backends::job_queue(&args.broker, "sse-bridge-worker", 0, true).await?;
    let source = queue.source.context("the job queue has no consuming end")?;
    tracing::info!(queue = ?args.broker.queue_kind(), "worker started (demo agent)");
    run_worker(
        source,
        bus,
        Arc::new(DemoAgent {
            piece_delay: args.worker.demo_delay,
        }),
        WorkerOptions {
            concurrency: args.worker.concurrency,
            ..WorkerOptions::default()
        },
        shutdown,
    )
    .await;
    Ok(())
}
