//! `sse-bridge serve`: wires backends, the gateway and the in-process worker.

use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use sse_bridge_core::embedded::{EmbeddedBus, EmbeddedQueue};
use sse_bridge_core::session::SessionContext;
use sse_bridge_gateway::{AppState, BodyLimit};
use sse_bridge_worker::{DemoAgent, WorkerOptions, run_worker};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = PrometheusBuilder::new().install_recorder().context("installing the metrics recorder")?;
    sse_bridge_core::metrics::describe();

    let bus = EmbeddedBus::new(args.subscriber_buffer);
    let queue = EmbeddedQueue::new(args.embedded_queue_capacity);
    let worker = tokio::spawn(run_worker(
        Arc::new(queue.clone()),
        Arc::new(bus.clone()),
        Arc::new(DemoAgent { piece_delay: args.worker.demo_delay }),
        WorkerOptions { concurrency: args.worker.concurrency, ..WorkerOptions::default() },
        shutdown.clone(),
    ));

    let state = AppState {
        sessions: SessionContext {
            bus: Arc::new(bus),
            dispatcher: Arc::new(queue),
            config: args.session.config(),
            start_timeout: args.start_timeout,
            shutdown: shutdown.clone(),
        },
        body_limit: BodyLimit(args.body_limit),
        metrics: Some(metrics),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(
        "sse-bridge listening on http://{} (embedded broker, in-process demo worker)",
        listener.local_addr()?
    );
    sse_bridge_gateway::serve(listener, state, args.shutdown_drain).await?;
    worker.await.context("the in-process worker panicked")?;
    Ok(())
}
