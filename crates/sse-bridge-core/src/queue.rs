//! The job queue: how a session's job reaches exactly one worker.
//!
//! The gateway holds a [`JobDispatcher`]; workers pull from a [`JobSource`].
//! Backends: [`crate::embedded::EmbeddedQueue`] (in-process), Redis Streams
//! and Kafka (in their own crates). A worker acknowledges a job only when the
//! session it drives has ended, so a crashed worker's job can be redelivered.

use async_trait::async_trait;

use crate::error::BrokerError;
use crate::protocol::Job;

/// Gateway side: hands a job to the workers.
#[async_trait]
pub trait JobDispatcher: Send + Sync + 'static {
    /// Returns once the broker has accepted the job.
    async fn dispatch(&self, job: &Job) -> Result<(), BrokerError>;

    /// `Ok` while the broker is reachable (drives `/readyz`).
    async fn check_ready(&self) -> Result<(), BrokerError>;
}

/// Worker side: yields jobs to run.
#[async_trait]
pub trait JobSource: Send + Sync + 'static {
    /// Waits for the next job; `Ok(None)` once the source is closed for good.
    async fn next_job(&self) -> Result<Option<ReceivedJob>, BrokerError>;

    /// The worker is stopping. `true`: a `next_job` in progress should be
    /// awaited — it ends (with `Ok(None)`) once its current read has
    /// answered — because cancelling it mid-read could lose what the read
    /// was handed (a Redis Streams read). `false` (the default): reads are
    /// cancel-safe, cancel at once.
    fn stop_reading(&self) -> bool {
        false
    }

    /// The worker takes no more jobs (it is stopping); the jobs it runs may
    /// still be acknowledged. A queue that assigns work to its members
    /// (Kafka's partitions) hands this worker's share to the others now
    /// rather than when the process exits; jobs fetched but not started go
    /// back. The default does nothing: a Redis Stream's group needs no leave.
    async fn leave(&self) {}
}

/// A job taken from a [`JobSource`], to be acknowledged once its session ended.
pub struct ReceivedJob {
    pub job: Job,
    pub ack: Box<dyn JobAck>,
}

/// Tells the queue a job is done, so it is not delivered again.
#[async_trait]
pub trait JobAck: Send + 'static {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError>;

    /// The worker gives the job up without running it (its `worker_ack`
    /// could not be published; the gateway ends that session on its own with
    /// `ack_timeout`). A queue that redelivers abandoned jobs by itself
    /// (Redis Streams reclaims them) leaves it pending, the default; one that
    /// would stay stuck on it (a Kafka partition's commit position) resolves
    /// it instead.
    async fn abandon(self: Box<Self>) -> Result<(), BrokerError> {
        Ok(())
    }
}

/// For queues with nothing to acknowledge.
pub struct NoAck;

#[async_trait]
impl JobAck for NoAck {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        Ok(())
    }
}
