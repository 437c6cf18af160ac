//! A gateway on an ephemeral loopback port — embedded event bus and log, or
//! the real Redis — with the embedded job queue (the tests take the jobs, as
//! a worker would), and a client that reads SSE the way the seed's browser
//! client does.

#![allow(dead_code)] // each test binary uses its own subset

pub use sse_bridge_testkit::sse::*;

/// Runs each scenario (an `async fn(Backend)` of the test file, whose
/// `Backend` names the two) on both backends: `<scenario>::embedded`, `<scenario>::redis`.
#[allow(unused_macros)] // each test binary uses its own subset
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$scenario(super::Backend::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$scenario(super::Backend::Redis).await
            }
        }
    )*};
}

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;
use sse_bridge_core::embedded::{EmbeddedBus, EmbeddedQueue};
use sse_bridge_core::session::{SessionConfig, SessionContext, SessionLimit};
use sse_bridge_core::{EventLog, Job, JobSource};
use sse_bridge_gateway::{AppState, BodyLimit, DEFAULT_BODY_LIMIT, ServeOptions};
use sse_bridge_worker::{DemoAgent, WorkerOptions, run_worker};
use tokio_util::sync::CancellationToken;

pub struct TestGateway {
    pub url: String,
    pub bus: Arc<dyn EventLog>,
    pub queue: EmbeddedQueue,
    pub shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// One recorder per test process (it is global).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| sse_bridge_gateway::install_metrics().expect("install recorder"))
        .clone()
}

impl TestGateway {
    pub async fn start(config: SessionConfig) -> Self {
        Self::start_with(config, |_| {}).await
    }

    /// Like [`Self::start`], with the state adjusted by `adjust` first.
    pub async fn start_with(config: SessionConfig, adjust: impl FnOnce(&mut AppState)) -> Self {
        Self::start_on(Arc::new(EmbeddedBus::new(4096)), config, adjust).await
    }

    /// A gateway whose events and logs go through `bus`.
    pub async fn start_on(
        bus: Arc<dyn EventLog>,
        config: SessionConfig,
        adjust: impl FnOnce(&mut AppState),
    ) -> Self {
        let options = ServeOptions::new(Duration::from_secs(5));
        Self::start_serving(bus, config, adjust, options).await
    }

    /// A gateway on the embedded bus whose port is served with `options`.
    pub async fn start_with_options(config: SessionConfig, options: ServeOptions) -> Self {
        Self::start_serving(Arc::new(EmbeddedBus::new(4096)), config, |_| {}, options).await
    }

    async fn start_serving(
        bus: Arc<dyn EventLog>,
        config: SessionConfig,
        adjust: impl FnOnce(&mut AppState),
        options: ServeOptions,
    ) -> Self {
        let queue = EmbeddedQueue::new(1024);
        let shutdown = CancellationToken::new();
        let mut state = AppState {
            sessions: SessionContext {
                bus: bus.clone(),
                dispatcher: Arc::new(queue.clone()),
                config: config.into(),
                start_timeout: Duration::from_secs(5),
                shutdown: shutdown.clone(),
                limit: SessionLimit::default(),
            },
            body_limit: BodyLimit(DEFAULT_BODY_LIMIT),
            metrics: Some(metrics_handle()),
            cors: None,
            auth: sse_bridge_gateway::Auth::default(),
            streams: sse_bridge_gateway::streams::Streams::in_memory(bus.clone()),
        };
        adjust(&mut state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(sse_bridge_gateway::serve_with(listener, state, options));
        TestGateway {
            url,
            bus,
            queue,
            shutdown,
            server,
        }
    }

    /// Runs the demo agent (no delay) against this gateway's queue.
    pub fn spawn_demo_worker(&self) {
        tokio::spawn(run_worker(
            Arc::new(self.queue.clone()),
            self.bus.clone(),
            Arc::new(DemoAgent {
                piece_delay: Duration::ZERO,
            }),
            WorkerOptions {
                concurrency: 512,
                ..WorkerOptions::default()
            },
            self.shutdown.clone(),
        ));
    }

    /// Starts a session with `body` and takes its job, as a worker would.
    pub async fn open(&self, body: Value) -> (reqwest::Response, Job) {
        let response = post_session(&client(), &self.url, body).await;
        (response, self.take_job().await)
    }

    /// [`Self::open`] from a page on `origin` (a cross-origin `fetch`).
    pub async fn open_from(&self, origin: &str, body: Value) -> (reqwest::Response, Job) {
        let response = client()
            .post(format!("{}/v1/react/sessions", self.url))
            .header("content-type", "application/json")
            .header("origin", origin)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (response, self.take_job().await)
    }

    /// Takes the next dispatched job, as a worker would.
    pub async fn take_job(&self) -> Job {
        let received = tokio::time::timeout(Duration::from_secs(5), self.queue.next_job())
            .await
            .expect("no job dispatched")
            .unwrap()
            .unwrap();
        received.job
    }

    /// Publishes a raw message on a session's event channel.
    pub async fn publish_raw(&self, job: &Job, raw: impl Into<Bytes>) {
        self.bus
            .publish(&job.session_id.event_channel(), raw.into())
            .await
            .unwrap();
    }

    /// Appends one event to the session's log as attempt `a` (the Rust
    /// SDK's call); the session refusing it is an error.
    pub async fn emit(&self, job: &Job, event_type: &str, payload: Value) {
        sse_bridge_worker::publish_event(
            self.bus.as_ref(),
            job.session_id,
            Some("a"),
            event_type,
            payload,
        )
        .await
        .unwrap();
    }

    pub async fn publish(&self, job: &Job, event_type: &str, payload: Value) {
        let raw = serde_json::to_vec(
            &serde_json::json!({ "event_type": event_type, "payload": payload }),
        )
        .unwrap();
        self.publish_raw(job, raw).await;
    }

    /// Waits until no subscription is left on the bus.
    pub async fn wait_for_no_subscriptions(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.bus.routed_channels() != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} subscriptions left",
                self.bus.routed_channels()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// `method path` with `token`, and `body` as JSON when given.
pub async fn send_as(
    gw: &TestGateway,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client()
        .request(method.parse().unwrap(), format!("{}{path}", gw.url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.unwrap()
}

/// The value of one Prometheus sample line, 0 when absent.
pub fn metric(name_and_labels: &str) -> f64 {
    metrics_handle()
        .render()
        .lines()
        .find_map(|line| {
            line.strip_prefix(name_and_labels)?
                .strip_prefix(' ')?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// A TCP connection to the gateway at `url` from a client with a
/// `recv_buffer`-byte receive buffer and an internet-sized segment (MSS
/// 1400 rather than loopback's 64 KiB, which would let the gateway's kernel
/// buffer megabytes per connection): a slow or stalled reader.
pub async fn narrow_connection(url: &str, recv_buffer: usize) -> tokio::net::TcpStream {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(recv_buffer).unwrap();
    socket.set_tcp_mss(1400).unwrap();
    socket.set_nonblocking(true).unwrap();
    let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
    socket.connect(addr).await.unwrap()
}
