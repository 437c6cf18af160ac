//! Between a session's driver and its response body.
//!
//! The driver (a task per stream) turns events into chunks and puts them
//! here; the response body takes them when the client reads. Chunks the
//! client has not taken yet wait within a byte budget. So a session's
//! timers, its reading of the bus and its end never depend on the client's
//! pace: a client that stops reading no longer pins its session, and one
//! that reads too slowly is cut off (`slow_consumer`) once its backlog
//! exceeds the budget instead of growing the gateway's memory. Before that,
//! a client whose backlog passed an eighth of the budget counts as behind,
//! and the driver merges its text pieces (`super::coalesce`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::pipe::{PipeReceiver, PipeSender, pipe};

/// The client went away.
#[derive(Debug)]
pub(super) struct Gone;

pub(super) struct Outbox {
    /// Chunks the client has not taken yet: the backlog the budget bounds.
    tx: PipeSender,
    rx: Option<PipeReceiver>,
    budget: usize,
}

impl Outbox {
    /// An outbox whose backlog may hold `budget` bytes.
    pub(super) fn new(budget: usize) -> Self {
        let (tx, rx) = pipe();
        Outbox {
            tx,
            rx: Some(rx),
            budget,
        }
    }

    /// The response body: every chunk, in order, until the driver is done.
    pub(super) fn body(&mut self) -> Body {
        Body(self.rx.take().expect("the body is taken once"))
    }

    /// Queues a chunk.
    pub(super) fn push(&mut self, chunk: Bytes) -> Result<(), Gone> {
        self.tx.push(chunk).map_err(|_| Gone)
    }

    /// The client reads slower than the session writes: more than an
    /// eighth of the budget waits for it.
    pub(super) fn client_behind(&self) -> bool {
        self.tx.queued_bytes() > self.budget / 8
    }

    /// `bytes` more fit in the budget beside the backlog.
    pub(super) fn has_room(&self, bytes: usize) -> bool {
        self.tx.queued_bytes() + bytes <= self.budget
    }

    /// Bytes the client has not taken yet.
    pub(super) fn queued_bytes(&self) -> usize {
        self.tx.queued_bytes()
    }

    pub(super) fn budget(&self) -> usize {
        self.budget
    }

    /// The backlog and `unwritten` bytes held elsewhere for the same client
    /// are over the budget.
    pub(super) fn over_budget(&self, unwritten: usize) -> bool {
        self.tx.queued_bytes() + unwritten > self.budget
    }

    /// Resolves when the client took a chunk of the backlog; `Err` once it
    /// went away (cancel-safe: what the driver waits on beside the bus).
    pub(super) async fn progress(&mut self) -> Result<(), Gone> {
        if self.tx.is_empty() {
            self.tx.receiver_gone().await;
            return Err(Gone);
        }
        self.tx.taken().await.map_err(|_| Gone)
    }

    /// After the session ended: waits while the client takes the backlog,
    /// giving up when it takes nothing for `write_timeout` (what is left
    /// then goes with the connection, which the write deadline closes).
    pub(super) async fn drain(mut self, write_timeout: Duration) {
        while !self.tx.is_empty() {
            match tokio::time::timeout(write_timeout, self.tx.taken()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!(
                        "the client took nothing for {write_timeout:?}; giving up on it"
                    );
                    return;
                }
            }
        }
    }
}

/// A stream's response body: the chunks of its outbox as the client reads.
pub(super) struct Body(PipeReceiver);

impl Stream for Body {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(Ok))
    }
}
