//! The client side of the held-load scenario: many SSE streams held open at
//! once, on hyper's connection API so the bench decides what shares a
//! connection. HTTP/2 multiplexes the streams over a few connections (h2c
//! with prior knowledge, which the gateway detects on its plain port);
//! HTTP/1.1 opens one connection per stream, bound in turn to loopback
//! source addresses 127.0.0.2, 127.0.0.3, … so that no single address runs
//! out of ephemeral ports.
//!
//! Each stream posts a session, records its channel once the `worker_ack`
//! arrives ([`Streams::channels`], what the paced publisher spreads its
//! events over), then checks that its pieces arrive in order and records
//! each one's publish → receive latency in the histogram of the phase the
//! piece names. A stream ends well only with `FinalAnswerStreamEnd`
//! followed by the end of the body.

use std::future::poll_fn;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpSocket, TcpStream};

use crate::client::{Frame, find_blank_line};
use crate::clock::now_us;

/// How the streams reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1: one connection per stream.
    H1,
    /// HTTP/2 with prior knowledge (h2c): streams multiplexed over connections.
    H2,
}

/// Streams the gateway lets one HTTP/2 connection hold at once.
pub const H2_STREAMS_PER_CONNECTION: u64 = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PATH: &str = "/v1/react/sessions";
const BODY: &str = r#"{"user_query":"held-load","model_alias":"bench"}"#;
/// Errors kept as samples.
const ERROR_SAMPLES: usize = 5;

/// The gateway's address, from `--url` (plain `http://` only).
#[derive(Debug, Clone)]
pub struct Gateway {
    addr: SocketAddr,
    /// `host:port`, for the `Host` header and `:authority`.
    authority: String,
}

impl Gateway {
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("--url {url:?}"))?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http"),
            "held-load speaks plain HTTP (h2c for HTTP/2): --url must start with http://"
        );
        let authority = uri
            .authority()
            .context("--url has no host")?
            .as_str()
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let host = uri.host().context("--url has no host")?;
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .find(SocketAddr::is_ipv4)
            .with_context(|| format!("{host} has no IPv4 address"))?;
        Ok(Gateway { addr, authority })
    }
}

/// Opens TCP connections to the gateway, each from the next source address.
pub struct Dialer {
    gateway: Gateway,
    /// Empty: the kernel picks (127.0.0.1 on loopback).
    sources: Vec<IpAddr>,
    next: AtomicUsize,
}

impl Dialer {
    /// `sources` loopback addresses from 127.0.0.2 on; only for a gateway on
    /// loopback (a socket bound to 127.0.0.x cannot reach anything else).
    pub fn new(gateway: Gateway, sources: u8) -> anyhow::Result<Self> {
        anyhow::ensure!(
            sources == 0 || gateway.addr.ip().is_loopback(),
            "--source-addresses needs a gateway on loopback, not {}",
            gateway.addr
        );
        let sources = (0..sources)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
            .collect();
        Ok(Dialer {
            gateway,
            sources,
            next: AtomicUsize::new(0),
        })
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        if !self.sources.is_empty() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len();
            socket.bind(SocketAddr::new(self.sources[i], 0))?;
        }
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(self.gateway.addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// One HTTP/2 connection (prior knowledge); its streams share it.
    pub async fn open_h2(&self) -> anyhow::Result<http2::SendRequest<String>> {
        let tcp = self.connect().await.context("connecting to the gateway")?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            // Until the gateway's SETTINGS arrive: its own limit.
            .initial_max_send_streams(H2_STREAMS_PER_CONNECTION as usize)
            .handshake(TokioIo::new(tcp))
            .await
            .context("HTTP/2 handshake")?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("held-load: an HTTP/2 connection ended: {error}");
            }
        });
        Ok(sender)
    }
}

/// What a new stream is sent over.
#[derive(Clone)]
pub enum Link {
    /// A stream of this HTTP/2 connection.
    H2(http2::SendRequest<String>),
    /// A new HTTP/1.1 connection of its own.
    H1(Arc<Dialer>),
}

impl Link {
    async fn post(self, gateway: &Gateway) -> Result<Response<Incoming>, String> {
        match self {
            Link::H2(mut sender) => {
                let uri = format!("http://{}{PATH}", gateway.authority);
                let request = post_request(uri, None)?;
                sender
                    .send_request(request)
                    .await
                    .map_err(|e| format!("HTTP/2 POST failed: {e}"))
            }
            Link::H1(dialer) => {
                let tcp = dialer
                    .connect()
                    .await
                    .map_err(|e| format!("connect failed: {e}"))?;
                let (mut sender, connection) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| format!("HTTP/1.1 handshake failed: {e}"))?;
                // Ends with the response (the sender is dropped with it).
                tokio::spawn(connection);
                let request = post_request(PATH.to_owned(), Some(&gateway.authority))?;
                sender
                    .send_request(request)
                    .await
                    .map_err(|e| format!("HTTP/1.1 POST failed: {e}"))
            }
        }
    }
}

/// The session POST; HTTP/1.1 names the host in a header, HTTP/2 in the URI.
fn post_request(uri: String, host: Option<&str>) -> Result<Request<String>, String> {
    let mut request = Request::post(uri).header("content-type", "application/json");
    if let Some(host) = host {
        request = request.header("host", host);
    }
    request
        .body(BODY.to_owned())
        .map_err(|e| format!("building the POST: {e}"))
}

/// One paced phase as the clients see it.
pub struct PhaseTally {
    latency: Mutex<Histogram<u64>>,
    received: AtomicU64,
}

impl PhaseTally {
    fn new() -> Self {
        PhaseTally {
            latency: Mutex::new(new_histogram()),
            received: AtomicU64::new(0),
        }
    }

    /// Pieces of this phase received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The publish → receive latencies so far, µs.
    pub fn latency(&self) -> Histogram<u64> {
        self.latency.lock().expect("not poisoned").clone()
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// What every held stream shares: counts, the acked sessions' channels,
/// and the phases' tallies.
pub struct Streams {
    gateway: Gateway,
    /// `sse_session:{id}` of every acked session, in ack order.
    channels: Mutex<Vec<String>>,
    acked: AtomicU64,
    failed: AtomicU64,
    ended: AtomicU64,
    setup: Mutex<Histogram<u64>>,
    phases: Vec<PhaseTally>,
    errors: Mutex<Vec<String>>,
}

impl Streams {
    pub fn new(gateway: Gateway, phases: usize) -> Self {
        Streams {
            gateway,
            channels: Mutex::default(),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            setup: Mutex::new(new_histogram()),
            phases: (0..phases).map(|_| PhaseTally::new()).collect(),
            errors: Mutex::default(),
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn ended(&self) -> u64 {
        self.ended.load(Ordering::Relaxed)
    }

    /// The channels of the sessions acked so far, in ack order.
    pub fn channels(&self) -> Vec<String> {
        self.channels.lock().expect("not poisoned").clone()
    }

    pub fn phase(&self, index: usize) -> &PhaseTally {
        &self.phases[index]
    }

    /// Pieces received over all phases.
    pub fn received(&self) -> u64 {
        self.phases.iter().map(PhaseTally::received).sum()
    }

    /// POST → `worker_ack`, µs.
    pub fn setup(&self) -> Histogram<u64> {
        self.setup.lock().expect("not poisoned").clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("not poisoned").clone()
    }

    /// Records a stream that failed, with a sample of why.
    pub fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().expect("not poisoned");
        if errors.len() < ERROR_SAMPLES {
            errors.push(why);
        }
    }

    fn on_ack(&self, channel: String, setup_us: u64) {
        self.setup
            .lock()
            .expect("not poisoned")
            .saturating_record(setup_us);
        self.channels.lock().expect("not poisoned").push(channel);
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    fn on_piece(&self, phase: usize, latency_us: u64) -> Result<(), String> {
        let tally = self
            .phases
            .get(phase)
            .ok_or_else(|| format!("piece of phase {phase}, which does not exist"))?;
        tally
            .latency
            .lock()
            .expect("not poisoned")
            .saturating_record(latency_us);
        tally.received.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Holds one stream until it ends, counting it as ended or failed.
pub async fn hold(streams: Arc<Streams>, link: Link) {
    match read_stream(&streams, link).await {
        Ok(()) => {
            streams.ended.fetch_add(1, Ordering::Relaxed);
        }
        Err(why) => streams.fail(why),
    }
}

async fn read_stream(streams: &Streams, link: Link) -> Result<(), String> {
    let started = now_us();
    let response = link.post(&streams.gateway).await?;
    if response.status() != 200 {
        return Err(format!("POST answered {}", response.status()));
    }
    let session = response
        .headers()
        .get("x-session-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
        .ok_or("the answer has no x-session-id")?;
    let mut verify = Verify {
        channel: Some(format!("sse_session:{session}")),
        started,
        next_seq: 0,
        ended: false,
    };
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| format!("body read failed: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = find_blank_line(&buffer) {
            let frame = buffer.split_to(end);
            buffer.advance(2);
            if let Some(json) = frame.strip_prefix(b"data: ") {
                verify.frame(json, streams)?;
            }
        }
    }
    if !verify.ended {
        return Err(format!(
            "body ended after {} pieces without FinalAnswerStreamEnd",
            verify.next_seq
        ));
    }
    Ok(())
}

/// One stream's checks: the ack first, pieces in order, the end last.
struct Verify {
    /// Until the ack: the session's channel, handed over then.
    channel: Option<String>,
    started: u64,
    next_seq: u64,
    ended: bool,
}

impl Verify {
    fn frame(&mut self, json: &[u8], streams: &Streams) -> Result<(), String> {
        let now = now_us();
        let frame: Frame =
            serde_json::from_slice(json).map_err(|e| format!("bad frame JSON: {e}"))?;
        if self.ended {
            return Err("event after the terminal event".into());
        }
        let acked = self.channel.is_none();
        match (&*frame.event_type, acked) {
            ("worker_ack", false) => {
                if let Some(channel) = self.channel.take() {
                    streams.on_ack(channel, now.saturating_sub(self.started));
                }
            }
            ("FinalAnswerStream", true) => {
                let piece = frame.payload;
                if piece.seq != Some(self.next_seq) {
                    return Err(format!(
                        "piece {:?} where {} was due (lost events)",
                        piece.seq, self.next_seq
                    ));
                }
                self.next_seq += 1;
                let (Some(t), Some(phase)) = (piece.t, piece.phase) else {
                    return Err("a piece without t or phase".into());
                };
                streams.on_piece(phase, now.saturating_sub(t))?;
            }
            ("FinalAnswerStreamEnd", true) => self.ended = true,
            ("error", _) => {
                return Err(format!(
                    "error event ({}) after {} pieces",
                    frame.payload.code.as_deref().unwrap_or("no code"),
                    self.next_seq
                ));
            }
            (other, acked) => {
                return Err(format!(
                    "unexpected {other} (acked: {acked}, pieces so far: {})",
                    self.next_seq
                ));
            }
        }
        Ok(())
    }
}
