//! Deadlines for connections: a write deadline — a socket that accepts no
//! bytes for `write_timeout` fails its write, so hyper closes the
//! connection — and [`BodyDeadline`] for the request bodies hyper reads.
//!
//! hyper has read timeouts for request heads but no write timeout, and a
//! client that stops reading an SSE stream leaves the connection waiting on
//! a full socket buffer forever. The session itself no longer waits for the
//! client (its driver runs on its own, see `sse_bridge_core::session`), but
//! the connection, its buffers and its last frames would.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tokio::time::{Instant, Sleep};

/// `io` whose writes fail once they have been stuck for `timeout`.
pub struct WriteDeadline<IO> {
    io: IO,
    timeout: Duration,
    /// Armed while a write or flush is pending.
    stuck_since: Option<Pin<Box<Sleep>>>,
}

impl<IO> WriteDeadline<IO> {
    pub fn new(io: IO, timeout: Duration) -> Self {
        WriteDeadline {
            io,
            timeout,
            stuck_since: None,
        }
    }

    /// Passes a write's result on, tracking how long writes have been stuck.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stuck_since = None;
            return result;
        }
        let timeout = self.timeout;
        let deadline = self
            .stuck_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client accepted no bytes for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body that fails once it has taken longer than `timeout` from
/// its request's start to arrive: hyper bounds the time to a request's
/// head, never its body (slowloris). The timer is made only if the body
/// ever has to wait.
pub struct BodyDeadline<B> {
    body: B,
    timeout: Duration,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

/// A request body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTooSlow(Duration);

impl<B> BodyDeadline<B> {
    pub fn new(body: B, timeout: Duration) -> Self {
        BodyDeadline {
            body,
            timeout,
            deadline: Instant::now() + timeout,
            timer: None,
        }
    }
}

impl<B> HttpBody for BodyDeadline<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTooSlow(self.timeout).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_that_stays_stuck_fails_after_the_timeout() {
        // A pipe nobody reads: writes block once its buffer is full.
        let (client, _server) = tokio::io::duplex(16);
        let mut io = WriteDeadline::new(client, Duration::from_secs(30));
        io.write_all(&[0; 16]).await.unwrap();
        let error = io.write_all(&[0; 16]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_progress_never_time_out() {
        let (client, mut server) = tokio::io::duplex(16);
        let mut io = WriteDeadline::new(client, Duration::from_secs(1));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            let mut buf = [0u8; 8];
            use tokio::io::AsyncReadExt;
            while let Ok(n) = server.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.extend_from_slice(&buf[..n]);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            sink.len()
        });
        io.write_all(&[7; 64]).await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), 64);
    }
}
