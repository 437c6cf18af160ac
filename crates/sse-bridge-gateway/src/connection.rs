//! The connection loop: accept, TLS when configured, one protocol per
//! connection, hyper serving the router, the write deadline, graceful
//! shutdown.
//!
//! The protocol is chosen per connection, so HTTP/1.1 keeps its small
//! footprint (no hyper-util "auto" connection that could be either):
//!
//! * TLS: ALPN decides — `h2` → HTTP/2, anything else → HTTP/1.1.
//! * Plain port: a client that opens with the HTTP/2 preface (prior
//!   knowledge, "h2c", what proxies such as envoy speak upstream) gets
//!   HTTP/2; every other gets HTTP/1.1. The sniffer reads (a read waits
//!   for bytes, where peeking at a partial preface would have to poll) and
//!   hands what it read to the chosen protocol: the fast path takes it as
//!   the start of its request, hyper's HTTP/2 gets it through
//!   [`http1::Rewind`]. A client that stalls mid-preface costs a pending
//!   read until the header read timeout closes it.
//!
//! HTTP/1.1 starts on the fast path of [`crate::http1`], which serves plain
//! requests without hyper's per-connection buffers and hands anything else
//! to hyper's HTTP/1.1 with the bytes it read.
//!
//! HTTP/2 streams are bounded per connection (`MAX_CONCURRENT_STREAMS`),
//! headers in size, and idle connections are pinged. Bodies hyper reads
//! (HTTP/2's, and HTTP/1.1's handed over) have the header read timeout
//! from their head, as hyper bounds heads only. A reset stream drops
//! its response body like a closed HTTP/1.1 connection does, so the
//! session's cancel and grace rules are the same. At shutdown HTTP/1.1
//! connections close after their response and HTTP/2 ones get GOAWAY.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower::util::MapRequest;

use crate::deadline::{BodyDeadline, WriteDeadline};
use crate::http1::{self, Rewind, Served};
use crate::tls::Tls;

/// What an HTTP/2 client sends first when it knows the server speaks it.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A kept-alive HTTP/1.1 connection idle this long between requests is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Streams one HTTP/2 connection may hold at once (a browser's tabs share one).
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Largest HTTP/2 header list accepted.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// An idle HTTP/2 connection is pinged this often, and closed when a ping
/// goes unanswered as long.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// What is known of a connection when its protocol takes it over.
struct Opening {
    protocol: Protocol,
    /// Read while choosing the protocol; the protocol sees these first.
    read: Vec<u8>,
    /// The first request (HTTP/1.1: head and body) must have arrived by then.
    first_request_by: Instant,
}

/// How each connection is served.
#[derive(Clone)]
pub(crate) struct Settings {
    pub tls: Option<Tls>,
    /// A write that makes no progress this long closes the connection.
    pub write_timeout: Duration,
    /// From a request's first byte to its complete head and body
    /// (slowloris; hyper's bodies: from their head); on the plain port,
    /// from accept to the first request, the protocol sniff included.
    pub header_read_timeout: Duration,
}

/// Accepts until `shutdown`, then waits up to `drain` for connections.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, do not spin.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // SSE frames are small writes: without TCP_NODELAY, Nagle's algorithm
        // holds them until the client's delayed ACK (~40 ms).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {error}");
        }
        let connection = Connection {
            peer,
            app: app.clone(),
            settings: settings.clone(),
            shutdown: shutdown.clone(),
        };
        connections.spawn(connection.serve(tcp));
    }
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {drain:?}; closing them");
    }
    Ok(())
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    app: Router,
    settings: Settings,
    shutdown: CancellationToken,
}

// Each step below is a plain function returning an `async move` block
// that borrows the connection: an `async fn` keeps its by-value arguments
// twice in its future (as arguments and as locals), and a held stream pays
// for every byte of its connection's task for as long as it lives.
#[allow(clippy::manual_async_fn)]
impl Connection {
    /// Serves the connection to its end.
    fn serve(self, tcp: TcpStream) -> impl Future<Output = ()> + Send {
        async move {
            let result = match &self.settings.tls {
                // Boxed: a TLS session's state is kilobytes, and held
                // inline it would size every plain connection's task too.
                Some(tls) => Box::pin(self.serve_tls(tcp, tls.clone())).await,
                None => self.serve_plain(tcp).await,
            };
            if let Err(error) = result {
                tracing::debug!(peer = %self.peer, "connection ended with an error: {error}");
            }
        }
    }

    /// TLS, then the protocol ALPN chose.
    fn serve_tls(
        &self,
        tcp: TcpStream,
        tls: Tls,
    ) -> impl Future<Output = Result<(), ConnectionError>> + Send + '_ {
        async move {
            let peer = self.peer;
            let io = WriteDeadline::new(tcp, self.settings.write_timeout);
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(io));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {error}");
                    return Ok(());
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake did not finish in time");
                    return Ok(());
                }
            };
            let protocol = match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            let opening = Opening {
                protocol,
                read: Vec::new(),
                first_request_by: Instant::now() + self.settings.header_read_timeout,
            };
            self.drive(stream, opening).await
        }
    }

    /// The plain port: h2c for a client that opens with the preface, else HTTP/1.1.
    fn serve_plain(
        &self,
        tcp: TcpStream,
    ) -> impl Future<Output = Result<(), ConnectionError>> + Send + '_ {
        async move {
            let first_request_by = Instant::now() + self.settings.header_read_timeout;
            // The stream goes into the sniff and comes back: a local it
            // borrowed would stay in this task's state while a stream is held.
            let (tcp, protocol, read) =
                match tokio::time::timeout_at(first_request_by, sniff(tcp)).await {
                    Ok(Ok(sniffed)) => sniffed,
                    Ok(Err(_)) | Err(_) => return Ok(()),
                };
            let io = WriteDeadline::new(tcp, self.settings.write_timeout);
            let opening = Opening {
                protocol,
                read,
                first_request_by,
            };
            self.drive(io, opening).await
        }
    }

    /// The router as hyper's service, each request's body bounded by the
    /// header read timeout (hyper bounds heads only; the fast path reads
    /// bodies under the head's deadline itself).
    fn hyper_service(
        &self,
    ) -> TowerToHyperService<
        MapRequest<Router, impl FnMut(Request<Incoming>) -> Request<Body> + Clone + use<>>,
    > {
        let timeout = self.settings.header_read_timeout;
        let bounded = self
            .app
            .clone()
            .map_request(move |request: Request<Incoming>| {
                request.map(|body| Body::new(BodyDeadline::new(body, timeout)))
            });
        TowerToHyperService::new(bounded)
    }

    /// Serves `io` in the protocol of its `opening` until it closes or,
    /// after `shutdown`, until its graceful end.
    fn drive<I>(
        &self,
        io: I,
        opening: Opening,
    ) -> impl Future<Output = Result<(), ConnectionError>> + Send + '_
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        async move {
            let shutdown = &self.shutdown;
            let head_timeout = self.settings.header_read_timeout;
            // Both hyper connection kinds: run, or on shutdown end
            // gracefully and finish. Boxed, so this task is the size of the
            // protocol it speaks, not of the larger of the two.
            macro_rules! until_shutdown {
                ($connection:expr) => {{
                    let mut connection = Box::pin($connection);
                    tokio::select! {
                        result = connection.as_mut() => result,
                        () = shutdown.cancelled() => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    }
                }};
            }
            let Opening {
                protocol,
                read,
                first_request_by,
            } = opening;
            match protocol {
                Protocol::Http1 => {
                    let timeouts = http1::Timeouts {
                        head: head_timeout,
                        idle: IDLE_TIMEOUT,
                    };
                    let served =
                        http1::serve(io, read, first_request_by, &self.app, shutdown, timeouts);
                    let rest = match served.await? {
                        Served::Closed => return Ok(()),
                        Served::HandOff(rest) => rest,
                    };
                    let service = self.hyper_service();
                    until_shutdown!(
                        hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(head_timeout)
                            .serve_connection(TokioIo::new(rest), service)
                    )?;
                }
                Protocol::Http2 => {
                    let service = self.hyper_service();
                    until_shutdown!(
                        http2::Builder::new(TokioExecutor::new())
                            .timer(TokioTimer::new())
                            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                            .max_header_list_size(MAX_HEADER_LIST_BYTES)
                            .keep_alive_interval(H2_KEEP_ALIVE)
                            .keep_alive_timeout(H2_KEEP_ALIVE)
                            .serve_connection(TokioIo::new(Rewind::new(read, io)), service)
                    )?;
                }
            }
            Ok(())
        }
    }
}

/// HTTP/2 once the bytes read hold the whole prior-knowledge preface,
/// HTTP/1.1 as soon as they part from it or the client closes; `tcp` comes
/// back with the protocol and the bytes read. Each read waits for bytes;
/// the caller bounds the whole by its header read timeout.
async fn sniff(mut tcp: TcpStream) -> std::io::Result<(TcpStream, Protocol, Vec<u8>)> {
    let mut read = Vec::with_capacity(http1::READ_CHUNK);
    let protocol = loop {
        let seen = &read[..read.len().min(H2_PREFACE.len())];
        if !H2_PREFACE.starts_with(seen) {
            break Protocol::Http1;
        }
        if seen.len() == H2_PREFACE.len() {
            break Protocol::Http2;
        }
        if tcp.read_buf(&mut read).await? == 0 {
            break Protocol::Http1;
        }
    };
    Ok((tcp, protocol, read))
}
