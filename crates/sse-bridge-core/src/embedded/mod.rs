//! The embedded backends: event bus, session logs and job queue inside one
//! process.
//!
//! They give `sse-bridge serve` a working default with no Redis and no Kafka,
//! and the session tests a real bus to run against. They honour the same
//! contracts as the networked backends: subscribe is confirmed before it
//! returns, a full subscriber is cut off rather than blocking the publisher,
//! logs are bounded and expire (`log`), a full job queue refuses the job.

mod log;
mod threads;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::bus::{EventBus, Router, Subscription, SubscriptionBound};
use crate::error::BrokerError;
use crate::log::{
    Appended, Claim, Ending, EventLog, LogId, LogLimits, LogPage, PageLimit, SessionMeta,
};
use crate::protocol::{Event, Job, SessionId};
use crate::queue::{JobDispatcher, JobSource, NoAck, ReceivedJob};
use crate::thread::{Stored, ThreadId, ThreadRecord, ThreadStore};

/// In-process Pub/Sub with a log per session.
#[derive(Clone)]
pub struct EmbeddedBus {
    router: Arc<Router>,
    logs: Arc<log::Logs>,
    threads: Arc<threads::Threads>,
}

impl EmbeddedBus {
    /// `capacity`: messages queued per subscription before it is cut off.
    pub fn new(capacity: usize) -> Self {
        Self::with_log_limits(SubscriptionBound::messages(capacity), LogLimits::default())
    }

    /// Subscriptions queue up to `bound`; logs are bounded by `limits`.
    pub fn with_log_limits(bound: SubscriptionBound, limits: LogLimits) -> Self {
        let router = Router::new(bound, |_| {});
        EmbeddedBus {
            logs: Arc::new(log::Logs::new(router.clone(), limits)),
            threads: Arc::default(),
            router,
        }
    }
}

#[async_trait]
impl EventBus for EmbeddedBus {
    async fn subscribe(&self, channel: &str) -> Result<Subscription, BrokerError> {
        Ok(self.router.add(channel).0)
    }

    async fn publish(&self, channel: &str, message: Bytes) -> Result<u64, BrokerError> {
        Ok(self.router.deliver(channel, message).delivered as u64)
    }

    async fn check_ready(&self) -> Result<(), BrokerError> {
        Ok(())
    }

    fn routed_channels(&self) -> usize {
        self.router.channel_count()
    }
}

#[async_trait]
impl ThreadStore for EmbeddedBus {
    async fn load_thread(&self, id: &ThreadId) -> Result<Stored, BrokerError> {
        Ok(self.threads.load(id))
    }

    async fn store_thread(
        &self,
        id: &ThreadId,
        revision: u64,
        record: &ThreadRecord,
        ttl: Duration,
    ) -> Result<bool, BrokerError> {
        Ok(self.threads.store(id, revision, record, ttl))
    }
}

#[async_trait]
impl EventLog for EmbeddedBus {
    async fn create(&self, id: SessionId, meta: &SessionMeta) -> Result<(), BrokerError> {
        self.logs.create(id, meta);
        Ok(())
    }

    async fn meta(&self, id: SessionId) -> Result<Option<SessionMeta>, BrokerError> {
        Ok(self.logs.meta(id))
    }

    async fn read(
        &self,
        id: SessionId,
        after: Option<LogId>,
        limit: PageLimit,
    ) -> Result<LogPage, BrokerError> {
        Ok(self.logs.read(id, after, limit))
    }

    async fn append(&self, id: SessionId, event: &Event) -> Result<Appended, BrokerError> {
        Ok(self.logs.append(id, event))
    }

    async fn end(&self, id: SessionId, terminal: &Event) -> Result<Ending, BrokerError> {
        Ok(self.logs.end(id, terminal))
    }

    async fn add_followers(&self, id: SessionId, delta: i64) -> Result<Option<i64>, BrokerError> {
        Ok(self.logs.add_followers(id, delta))
    }

    async fn claim_alias(
        &self,
        alias: &str,
        owner: &str,
        id: SessionId,
    ) -> Result<Claim, BrokerError> {
        Ok(self.logs.claim_alias(alias, owner, id))
    }

    async fn resolve_alias(&self, alias: &str) -> Result<Option<SessionId>, BrokerError> {
        Ok(self.logs.resolve_alias(alias))
    }
}

/// In-process job queue: many producers, many competing consumers.
#[derive(Clone)]
pub struct EmbeddedQueue {
    tx: async_channel::Sender<Job>,
    rx: async_channel::Receiver<Job>,
}

impl EmbeddedQueue {
    /// `capacity`: jobs waiting for a worker before dispatch is refused.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = async_channel::bounded(capacity.max(1));
        EmbeddedQueue { tx, rx }
    }

    /// Jobs waiting for a worker.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Stops accepting jobs; consumers drain what is queued, then get `None`.
    pub fn close(&self) {
        self.tx.close();
    }
}

#[async_trait]
impl JobDispatcher for EmbeddedQueue {
    async fn dispatch(&self, job: &Job) -> Result<(), BrokerError> {
        self.tx.try_send(job.clone()).map_err(|e| match e {
            async_channel::TrySendError::Full(_) => {
                BrokerError::Overloaded(format!("{} jobs are waiting for a worker", self.tx.len()))
            }
            async_channel::TrySendError::Closed(_) => BrokerError::Closed,
        })
    }

    async fn check_ready(&self) -> Result<(), BrokerError> {
        if self.tx.is_closed() {
            return Err(BrokerError::Closed);
        }
        Ok(())
    }
}

#[async_trait]
impl JobSource for EmbeddedQueue {
    async fn next_job(&self) -> Result<Option<ReceivedJob>, BrokerError> {
        Ok(self.rx.recv().await.ok().map(|job| ReceivedJob {
            job,
            ack: Box::new(NoAck),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Delivery;
    use crate::protocol::{SessionId, SessionRequest};

    #[tokio::test]
    async fn bus_delivers_published_messages_in_order() {
        let bus = EmbeddedBus::new(16);
        let mut sub = bus.subscribe("c").await.unwrap();
        for i in 0..10 {
            assert_eq!(
                bus.publish("c", Bytes::from(i.to_string())).await.unwrap(),
                1
            );
        }
        for i in 0..10 {
            assert_eq!(
                sub.recv().await,
                Delivery::Message(Bytes::from(i.to_string()))
            );
        }
        assert_eq!(bus.routed_channels(), 1);
        drop(sub);
        assert_eq!(bus.routed_channels(), 0);
        assert_eq!(bus.publish("c", Bytes::new()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn queue_refuses_when_full_and_hands_each_job_to_one_consumer() {
        let queue = EmbeddedQueue::new(2);
        let request = SessionRequest::parse(br#"{"user_query":"q"}"#).unwrap();
        let jobs: Vec<Job> = (0..3)
            .map(|_| Job::new(SessionId::new(), request.clone()))
            .collect();
        queue.dispatch(&jobs[0]).await.unwrap();
        queue.dispatch(&jobs[1]).await.unwrap();
        assert!(matches!(
            queue.dispatch(&jobs[2]).await,
            Err(BrokerError::Overloaded(_))
        ));
        let other_consumer = queue.clone();
        assert_eq!(queue.next_job().await.unwrap().unwrap().job, jobs[0]);
        assert_eq!(
            other_consumer.next_job().await.unwrap().unwrap().job,
            jobs[1]
        );
        queue.close();
        assert!(queue.next_job().await.unwrap().is_none());
    }
}
