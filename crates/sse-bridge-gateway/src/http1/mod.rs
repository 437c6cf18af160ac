//! HTTP/1.1 for held streams, without hyper's per-connection buffers.
//!
//! A held event stream is one idle HTTP/1.1 connection, and hyper keeps an
//! 8 KiB read buffer (16 KiB once it has read the request) and an 8 KiB
//! header-write buffer on every connection for its whole life: most of what
//! a held stream cost (BENCHMARKS.md). This fast path reads the request
//! head into a buffer that is freed once the request is read
//! (`head`: parsed with `httparse`), calls the same axum router, and
//! writes the response itself (`response`): the head once, then each body
//! chunk straight from the session's outbox to the socket, in chunked
//! encoding. While a response streams it keeps reading, so a client that
//! goes away is noticed at once (its body is dropped: the session's
//! cancel and grace rules follow, as with hyper), and pipelined requests
//! wait their turn — at most `READ_AHEAD_BYTES` of them in memory, the
//! rest held back by TCP.
//!
//! Only plain requests take this path (see `head`); on the first one that
//! is not, the connection is handed to hyper with the bytes already read
//! (`rewind`), and hyper serves it from there.
//!
//! Timeouts, as nginx has them: a new connection must send its first
//! request's head and body within `head` of being accepted; a kept-alive
//! connection may wait `idle` for its next request, which then has `head`
//! from its first byte (slowloris); a body is read a chunk at a time, so it
//! takes memory as its bytes arrive. Writes are bounded by the connection's
//! write deadline. A connection that closes after a response (a refused
//! head, `Connection: close`, shutdown) lingers as nginx's does: shut for
//! writing, it drains what the client still sends for a moment, so unread
//! bytes do not turn the close into a reset that destroys the response.

pub mod head;
mod response;
mod rewind;

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::http::{Request, Response, Version};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use head::{Head, HeadError, PlainRequest};
use response::{Frame, Framing};
pub(crate) use rewind::Rewind;

/// Bytes read at a time while a head arrives (most heads fit in one).
pub(crate) const READ_CHUNK: usize = 1024;

/// Most bytes of pipelined requests read while a response streams: every
/// held stream may hold them. The rest waits in the socket, and TCP holds
/// the client back.
const READ_AHEAD_BYTES: usize = 512;
/// How long, and how many bytes, a closing connection drains of what the
/// client still sends after its last response (nginx's lingering close).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 64 * 1024;

/// How the fast path's connection ended.
pub(crate) enum Served<IO> {
    /// Closed: by the client, after `Connection: close`, at shutdown, on a
    /// timeout or a refused head.
    Closed,
    /// A request the fast path does not serve: hyper takes the connection
    /// from its first byte.
    HandOff(Rewind<IO>),
}

/// The fast path's timeouts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// From a new connection, or a later request's first byte, to the end
    /// of the request's body.
    pub head: Duration,
    /// Between requests on a kept-alive connection.
    pub idle: Duration,
}

/// Serves `io`, of which `buf` was read already, until it closes or a
/// request needs hyper. The first request must have arrived by
/// `first_request_by`.
///
/// A plain function returning its future (an `async fn` would keep `io`
/// twice in it, as argument and as local): the future is what a held
/// stream's connection costs.
#[allow(clippy::manual_async_fn)]
pub(crate) fn serve<'a, IO>(
    mut io: IO,
    mut buf: Vec<u8>,
    mut first_request_by: Instant,
    app: &'a Router,
    shutdown: &'a CancellationToken,
    timeouts: Timeouts,
) -> impl Future<Output = io::Result<Served<IO>>> + Send + 'a
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'a,
{
    async move {
        // `buf` holds a request while it arrives, and pipelined bytes; it is
        // empty (and unallocated) while a response streams.
        loop {
            // Reading and the handler are boxed: both are short, a response
            // may stream for hours, and the task is sized by its largest state.
            let reading =
                read_request(&mut io, &mut buf, shutdown, first_request_by, timeouts.head);
            let (request, body) = match Box::pin(reading).await? {
                Reading::Request(request, body) => (request, body),
                Reading::NotPlain => return Ok(Served::HandOff(Rewind::new(buf, io))),
                Reading::Closed => return Ok(Served::Closed),
            };
            let client_asked_to_close = request.close;
            let handled = app.clone().oneshot(into_http(request, body));
            let response = match Box::pin(handled).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let close = client_asked_to_close || shutdown.is_cancelled();
            match write_response(&mut io, response, close, &mut buf).await? {
                Written::KeepAlive => {}
                Written::Close => {
                    // Boxed like reading: short, and held streams never get here.
                    Box::pin(linger(&mut io)).await;
                    return Ok(Served::Closed);
                }
                Written::ClientGone => return Ok(Served::Closed),
            }
            first_request_by = Instant::now() + timeouts.idle;
        }
    }
}

/// What reading the next request gave.
#[allow(clippy::large_enum_variant)] // returned once per request and taken apart at once
enum Reading {
    Request(PlainRequest, Bytes),
    NotPlain,
    /// By the client, on a timeout, at shutdown, or after a refused head.
    Closed,
}

/// Reads the next request: its first byte by `first_byte_by`, the rest of
/// its head and body within `head_timeout` of that (and still by
/// `first_byte_by` when its first bytes were there already: pipelined, or
/// read by the protocol sniffer). A head no server should accept is
/// answered here.
async fn read_request<IO>(
    io: &mut IO,
    buf: &mut Vec<u8>,
    shutdown: &CancellationToken,
    first_byte_by: Instant,
    head_timeout: Duration,
) -> io::Result<Reading>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut deadline = if buf.is_empty() {
        first_byte_by
    } else {
        first_byte_by.min(Instant::now() + head_timeout)
    };
    let request = loop {
        match head::parse(buf) {
            Ok(Head::Partial) => {}
            Ok(Head::Plain(request)) => break request,
            Ok(Head::NotPlain) => return Ok(Reading::NotPlain),
            Err(error) => {
                refuse(io, error).await?;
                return Ok(Reading::Closed);
            }
        }
        let waiting_for_first_byte = buf.is_empty();
        // Shutdown closes a connection between requests, never one
        // whose request has begun.
        let shutdown = waiting_for_first_byte.then_some(shutdown);
        if !read_more(io, buf, READ_CHUNK, deadline, shutdown).await? {
            return Ok(Reading::Closed);
        }
        if waiting_for_first_byte {
            deadline = deadline.min(Instant::now() + head_timeout);
        }
    };
    buf.drain(..request.head_len);
    if !read_body(io, buf, request.content_length, deadline).await? {
        return Ok(Reading::Closed);
    }
    // Copied out: `buf`'s allocation may be a large head's, and would
    // live on in the body.
    let body = Bytes::copy_from_slice(&buf[..request.content_length]);
    buf.drain(..request.content_length);
    if buf.is_empty() {
        // Nothing pipelined: the response may stream for hours.
        *buf = Vec::new();
    }
    Ok(Reading::Request(request, body))
}

/// Reads until `buf` holds a body of `length` bytes, by `deadline`; `false`
/// when the client closed or the deadline passed first. Read a chunk at a
/// time, so memory follows the bytes that arrive, not the length declared.
async fn read_body<IO>(
    io: &mut IO,
    buf: &mut Vec<u8>,
    length: usize,
    deadline: Instant,
) -> io::Result<bool>
where
    IO: AsyncRead + Unpin,
{
    while buf.len() < length {
        let missing = length - buf.len();
        if !read_more(io, buf, missing.min(READ_CHUNK), deadline, None).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads at most `want` more bytes into `buf`; `false` when the client
/// closed, `deadline` passed or (when given) `shutdown` came first.
async fn read_more<IO>(
    io: &mut IO,
    buf: &mut Vec<u8>,
    want: usize,
    deadline: Instant,
    shutdown: Option<&CancellationToken>,
) -> io::Result<bool>
where
    IO: AsyncRead + Unpin,
{
    // Room is made only once what is there is full: reserving `want` on
    // top of spare room would double `buf` ahead of the bytes that arrive.
    if buf.len() == buf.capacity() {
        buf.reserve(want);
    }
    let mut limited = (&mut *io).take(want as u64);
    let read = tokio::time::timeout_at(deadline, limited.read_buf(buf));
    let read = match shutdown {
        Some(shutdown) => tokio::select! {
            read = read => read,
            () = shutdown.cancelled() => return Ok(false),
        },
        None => read.await,
    };
    match read {
        Ok(Ok(0)) | Err(_) => Ok(false),
        Ok(Ok(_)) => Ok(true),
        // A reset between requests is a close, not an error worth logging.
        Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionReset => Ok(false),
        Ok(Err(error)) => Err(error),
    }
}

fn into_http(request: PlainRequest, body: Bytes) -> Request<Body> {
    let mut http = Request::new(Body::from(body));
    *http.method_mut() = request.method;
    *http.uri_mut() = request.uri;
    *http.version_mut() = Version::HTTP_11;
    *http.headers_mut() = request.headers;
    http
}

/// Answers a head no server should accept, and closes.
async fn refuse<IO>(io: &mut IO, error: HeadError) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let body = serde_json::json!({ "detail": error.to_string() }).to_string();
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = error.status();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let head = response::encode_head(&parts, Framing::Length(body.len() as u64), true);
    io.write_all(&head).await?;
    io.write_all(body.as_bytes()).await?;
    io.flush().await?;
    linger(io).await;
    Ok(())
}

/// Closes after a last response as nginx's lingering close does: a socket
/// closed with unread bytes makes the kernel send a reset, which can
/// destroy the response before the client has read it. So our side is shut
/// for writing (the client sees the end), and what the client still sends
/// is read and dropped until it closes too, for at most `LINGER_TIME` and
/// `LINGER_BYTES`.
async fn linger<IO>(io: &mut IO)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let shut_and_drain = async {
        // Under the time limit too: over TLS, shutting down writes a
        // close_notify to a client that may not be reading.
        io.shutdown().await?;
        let mut unread = (&mut *io).take(LINGER_BYTES);
        tokio::io::copy(&mut unread, &mut tokio::io::sink()).await
    };
    // Drained, timed out or failed: the connection closes either way.
    let _ = tokio::time::timeout(LINGER_TIME, shut_and_drain).await;
}

/// How writing a response ended.
enum Written {
    /// Complete; the connection serves the next request.
    KeepAlive,
    /// Complete, and its head said `connection: close`.
    Close,
    /// The client closed or reset the connection first.
    ClientGone,
}

/// Writes `response`, reading on meanwhile: bytes the client sends are the
/// next pipelined request (kept in `pipelined`), its end is the client
/// leaving. The connection closes after it when `close` (the client's
/// request or shutdown) or the handler's `Connection: close` says so. The
/// head is encoded before the future is made, so all the future holds
/// while a stream lasts is the body and the frame in flight (and the
/// caller never borrows the response, which would keep it in its state).
fn write_response<'a, IO>(
    io: &'a mut IO,
    response: Response<Body>,
    close: bool,
    pipelined: &'a mut Vec<u8>,
) -> impl Future<Output = io::Result<Written>> + Send + 'a
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (parts, mut body) = response.into_parts();
    let close = close || head::asks_to_close(&parts.headers);
    let framing = Framing::of(parts.status, body.size_hint().exact());
    let head = response::encode_head(&parts, framing, close);
    let mut pump = Pump {
        pending: Some(Frame::raw(Bytes::from(head))),
        framing,
        close,
        body_done: false,
        unflushed: false,
        watching: true,
    };
    poll_fn(move |cx| pump.poll(cx, io, &mut body, pipelined))
}

/// Moves a response body to the socket frame by frame.
struct Pump {
    /// Being written.
    pending: Option<Frame>,
    framing: Framing,
    /// The head said `connection: close`.
    close: bool,
    body_done: bool,
    /// Written since the last flush (TLS buffers what it is given).
    unflushed: bool,
    /// Still reading the client (stops once pipelined bytes fill
    /// `READ_AHEAD_BYTES`: the client must wait for this response, and a
    /// departure is then noticed at the next write).
    watching: bool,
}

impl Pump {
    fn poll<IO>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut IO,
        body: &mut Body,
        pipelined: &mut Vec<u8>,
    ) -> Poll<io::Result<Written>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        match self.poll_write(cx, io, body) {
            Poll::Ready(result) => {
                let written = if self.close {
                    Written::Close
                } else {
                    Written::KeepAlive
                };
                return Poll::Ready(result.map(|()| written));
            }
            Poll::Pending => {}
        }
        if self.watching {
            match watch_client(cx, io, pipelined) {
                Poll::Ready(Watch::Gone) => return Poll::Ready(Ok(Written::ClientGone)),
                Poll::Ready(Watch::ReadAheadFull) => self.watching = false,
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    /// Writes until the body is done (`Ready`) or something must wait.
    fn poll_write<IO>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut IO,
        body: &mut Body,
    ) -> Poll<io::Result<()>>
    where
        IO: AsyncWrite + Unpin,
    {
        loop {
            if let Some(frame) = &mut self.pending {
                ready!(write_frame(cx, io, frame))?;
                self.pending = None;
                self.unflushed = true;
                continue;
            }
            if self.body_done {
                ready!(Pin::new(&mut *io).poll_flush(cx))?;
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                        && self.framing != Framing::Empty
                    {
                        self.pending = Some(Frame::new(data, self.framing));
                    }
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(io::Error::other(error))),
                Poll::Ready(None) => {
                    self.body_done = true;
                    let trailer = self.framing.trailer();
                    if !trailer.is_empty() {
                        self.pending = Some(Frame::raw(Bytes::from_static(trailer)));
                    }
                }
                Poll::Pending => {
                    if self.unflushed {
                        ready!(Pin::new(&mut *io).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

fn write_frame<IO>(cx: &mut Context<'_>, io: &mut IO, frame: &mut Frame) -> Poll<io::Result<()>>
where
    IO: AsyncWrite + Unpin,
{
    while !frame.is_done() {
        let written = if io.is_write_vectored() {
            ready!(Pin::new(&mut *io).poll_write_vectored(cx, &frame.remaining()))?
        } else {
            ready!(Pin::new(&mut *io).poll_write(cx, frame.first_remaining()))?
        };
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        frame.advance(written);
    }
    Poll::Ready(Ok(()))
}

enum Watch {
    /// End of stream or an error: the client is gone.
    Gone,
    /// Pipelined bytes filled `READ_AHEAD_BYTES`; stop reading.
    ReadAheadFull,
}

/// Reads what the client sends while its response streams, up to
/// `READ_AHEAD_BYTES` (so `pipelined` never grows past them).
fn watch_client<IO>(cx: &mut Context<'_>, io: &mut IO, pipelined: &mut Vec<u8>) -> Poll<Watch>
where
    IO: AsyncRead + Unpin,
{
    let mut scratch = [0u8; 64];
    loop {
        let room = READ_AHEAD_BYTES.saturating_sub(pipelined.len());
        if room == 0 {
            return Poll::Ready(Watch::ReadAheadFull);
        }
        let mut read = ReadBuf::new(&mut scratch[..room.min(64)]);
        match Pin::new(&mut *io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Watch::Gone),
            Poll::Ready(Ok(())) => pipelined.extend_from_slice(read.filled()),
            Poll::Ready(Err(_)) => return Poll::Ready(Watch::Gone),
            Poll::Pending => return Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
