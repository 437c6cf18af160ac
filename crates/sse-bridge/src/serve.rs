//! `sse-bridge serve`: wires backends, the gateway and, where it is the
//! only consumer or was asked for, the in-process demo worker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sse_bridge_core::session::{SessionContext, SessionLimit};
use sse_bridge_core::streams::jobs::StreamDispatcher;
use sse_bridge_gateway::{AppState, BodyLimit, Tls};
use sse_bridge_worker::{DemoAgent, WorkerOptions, run_worker};
use tokio_util::sync::CancellationToken;

use crate::backends;
use crate::cli::{QueueKind, ServeArgs};

/// How often memory freed by bursts goes back to the system (`memory`).
const TRIM_EVERY: Duration = Duration::from_secs(10);

pub async fn run(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics =
        sse_bridge_gateway::install_metrics().context("installing the metrics recorder")?;

    let queue_kind = args.broker.queue_kind();
    if queue_kind != QueueKind::Embedded && args.broker.redis_url.is_none() {
        anyhow::bail!(
            "an external job queue needs an event bus the workers can reach: set --redis-url"
        );
    }
    let (bus, redis) = backends::event_bus_and_redis(
        &args.broker,
        "sse-bridge-gateway",
        args.session.subscription_bound(args.subscriber_buffer),
        args.session.log_limits(),
    )
    .await?;
    // With an external queue the workers live elsewhere; a second consumer
    // here would only compete with them unless explicitly wanted.
    let in_process_worker = queue_kind == QueueKind::Embedded || args.with_worker;
    let queue = backends::job_queue(
        &args.broker,
        "sse-bridge-gateway",
        args.embedded_queue_capacity,
        in_process_worker,
    )
    .await?;
    let worker = queue.source.map(|source| {
        tokio::spawn(run_worker(
            source,
            bus.clone(),
            Arc::new(DemoAgent {
                piece_delay: args.worker.demo_delay,
            }),
            WorkerOptions {
                concurrency: args.worker.concurrency,
                ..WorkerOptions::default()
            },
            shutdown.clone(),
        ))
    });

    let streams = args
        .streams
        .build(bus.clone(), redis, &args.broker.redis_stream);
    let dispatcher: Arc<dyn sse_bridge_core::JobDispatcher> = match args.streams.http_workers {
        true => {
            let jobs = StreamDispatcher::new(streams.store.clone(), &args.broker.redis_stream);
            jobs.open().await.context("creating the jobs stream")?;
            Arc::new(jobs)
        }
        false => queue.dispatcher,
    };
    let state = AppState {
        streams,
        sessions: SessionContext {
            bus,
            dispatcher,
            config: args.session.config().into(),
            start_timeout: args.start_timeout,
            shutdown: shutdown.clone(),
            limit: match args.max_sessions_per_principal {
                Some(max) => SessionLimit::new(args.max_sessions).per_principal(max),
                None => SessionLimit::new(args.max_sessions),
            },
        },
        body_limit: BodyLimit(args.body_limit),
        metrics: Some(metrics),
        cors: sse_bridge_gateway::cors_layer(&args.cors_allow_origins)?,
        auth: args.auth.build().context("authentication settings")?,
    };
    tokio::spawn(sse_bridge_core::session::sweep_orphans(
        state.sessions.clone(),
        args.broker.presence_lease / 3,
    ));
    tokio::spawn(crate::memory::trim_now_and_then(
        TRIM_EVERY,
        shutdown.clone(),
    ));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = Tls::load(cert, key).context("loading the TLS certificate")?;
            tokio::spawn(reload_on_sighup(tls.clone()));
            Some(tls)
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(
        auth = state.auth.is_enabled(),
        queue = ?queue_kind,
        event_bus = if args.broker.redis_url.is_some() { "redis" } else { "embedded" },
        in_process_worker = worker.is_some(),
        "sse-bridge listening on {}://{}",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );
    let options = sse_bridge_gateway::ServeOptions {
        drain: args.shutdown_drain,
        tls,
        header_read_timeout: args.header_read_timeout,
    };
    sse_bridge_gateway::serve_with(listener, state, options).await?;
    if let Some(worker) = worker {
        worker.await.context("the in-process worker panicked")?;
    }
    Ok(())
}

/// Reloads the certificate and key files on every SIGHUP: new handshakes get
/// the new certificate, live connections keep theirs.
async fn reload_on_sighup(tls: Tls) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!("cannot listen for SIGHUP (no certificate reload): {error}");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(error) => {
                tracing::error!("TLS certificate not reloaded, keeping the current one: {error}")
            }
        }
    }
}
