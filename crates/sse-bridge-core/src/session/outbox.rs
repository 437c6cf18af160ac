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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

/// Chunks in the channel itself (each at most `MAX_CHUNK_BYTES`), before
/// the budgeted backlog.
const CHANNEL_CHUNKS: usize = 2;

/// The client went away.
#[derive(Debug)]
pub(super) struct Gone;

pub(super) struct Outbox {
    tx: mpsc::Sender<Bytes>,
    rx: Option<mpsc::Receiver<Bytes>>,
    backlog: VecDeque<Bytes>,
    backlog_bytes: usize,
    budget: usize,
}

impl Outbox {
    /// An outbox whose backlog may hold `budget` bytes.
    pub(super) fn new(budget: usize) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        Outbox {
            tx,
            rx: Some(rx),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            budget,
        }
    }

    /// The response body: every chunk, in order, until the driver is done.
    pub(super) fn body(&mut self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
        let rx = self.rx.take().expect("the body is taken once");
        futures::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok(chunk), rx))
        })
    }

    /// Queues a chunk.
    pub(super) fn push(&mut self, chunk: Bytes) -> Result<(), Gone> {
        self.backlog_bytes += chunk.len();
        self.backlog.push_back(chunk);
        self.move_to_channel()
    }

    /// The client reads slower than the session writes: more than an
    /// eighth of the budget waits for it.
    pub(super) fn client_behind(&self) -> bool {
        self.backlog_bytes > self.budget / 8
    }

    /// The backlog and `unwritten` bytes held elsewhere for the same client
    /// are over the budget.
    pub(super) fn over_budget(&self, unwritten: usize) -> bool {
        self.backlog_bytes + unwritten > self.budget
    }

    /// Waits until the client took a chunk of the backlog (cancel-safe).
    async fn send_next(&mut self) -> Result<(), Gone> {
        let tx = self.tx.clone();
        let permit = tx.reserve().await.map_err(|_| Gone)?;
        if let Some(chunk) = self.backlog.pop_front() {
            self.backlog_bytes -= chunk.len();
            permit.send(chunk);
        }
        // The rest goes as far as the channel has room.
        self.move_to_channel()
    }

    /// Moves the backlog on as the client reads; `Err` once the client went
    /// away (cancel-safe: what the driver waits on beside the bus).
    pub(super) async fn progress(&mut self) -> Result<(), Gone> {
        if self.backlog.is_empty() {
            self.tx.closed().await;
            return Err(Gone);
        }
        self.send_next().await
    }

    /// After the session ended: delivers the backlog, giving up when the
    /// client takes nothing for `write_timeout`.
    pub(super) async fn drain(mut self, write_timeout: Duration) {
        while let Some(chunk) = self.backlog.pop_front() {
            match tokio::time::timeout(write_timeout, self.tx.send(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!(
                        "the client took nothing for {write_timeout:?}; dropping its last frames"
                    );
                    return;
                }
            }
        }
    }

    fn move_to_channel(&mut self) -> Result<(), Gone> {
        while let Some(chunk) = self.backlog.pop_front() {
            let len = chunk.len();
            match self.tx.try_send(chunk) {
                Ok(()) => self.backlog_bytes -= len,
                Err(mpsc::error::TrySendError::Full(chunk)) => {
                    self.backlog.push_front(chunk);
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Gone),
            }
        }
        Ok(())
    }
}
