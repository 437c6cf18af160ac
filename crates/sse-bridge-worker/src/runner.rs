//! The worker loop: jobs in, one handler run per job, events out.
//!
//! Every job taken is one *attempt* (PROTOCOL §4) with a fresh id that all
//! its events carry, so a job delivered twice (crashed worker, rebalance)
//! can never splice two answers into one session. For every job
//! [`run_worker`] takes, in order: subscribe to the session's control
//! channel (so a `cancel` cannot be missed), publish `worker_ack` (if the
//! session's log refuses it — ended, expired, or owned by an attempt that
//! already answered — the job is skipped; while another attempt is live
//! and serving it, the ack is retried until that attempt ends the session
//! or goes silent), run the [`JobHandler`] while
//! watching for `cancel` and sending `worker_heartbeat` whenever the handler
//! has been silent for a heartbeat interval, stop it as soon as the log
//! refuses one of its events, turn a handler error (or a handler that
//! returned without ending its session) into an `error`/`worker_error`
//! event, and finally acknowledge the job to its queue. A job whose ack
//! could not be published is abandoned: left for redelivery by a queue that
//! reclaims jobs (Redis Streams), resolved by one that would otherwise stay
//! stuck on it (Kafka).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sse_bridge_core::log::Refusal;
use sse_bridge_core::protocol::event_type;
use sse_bridge_core::{
    BrokerError, Delivery, ErrorCode, Event, EventLog, Job, JobSource, ReceivedJob, SessionId,
    Subscription,
};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::outbox::Outbox;
use crate::publish::{PublishError, Published};

/// What a handler may fail with; the message reaches the client in an `error` event.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one session's job. Return `Ok` after publishing a terminal event
/// (`FinalAnswerStreamEnd`, or an `interrupt` through
/// [`SessionHandle::interrupt`]); the runner adds none. An `Err` before the
/// terminal event is published as `error`/`worker_error`, and so is an `Ok`
/// without one (the client would otherwise wait for its idle timeout).
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, session: &SessionHandle) -> Result<(), HandlerError>;
}

/// Tuning of [`run_worker`].
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// Jobs run at once at most.
    pub concurrency: usize,
    /// Send `worker_heartbeat` after this long without publishing; `None`: never.
    pub heartbeat: Option<Duration>,
    /// At shutdown, jobs in flight get this long to finish; the rest are
    /// dropped unacknowledged, so their queue redelivers them.
    pub shutdown_grace: Duration,
    /// Keep retrying a publish that failed because the broker is
    /// unreachable for this long (a Redis restart), then give up.
    pub publish_retry: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 64,
            heartbeat: Some(Duration::from_secs(5)),
            shutdown_grace: Duration::from_secs(30),
            publish_retry: Duration::from_secs(10),
        }
    }
}

/// A handler's view of its session.
pub struct SessionHandle {
    job: Job,
    attempt: String,
    /// Cancelled by a `cancel` control message or by the log refusing an event.
    cancel: CancellationToken,
    /// Every event goes through it, in order, batched while an append is
    /// in flight.
    outbox: Arc<Outbox>,
    born: Instant,
    /// Milliseconds after `born` of the last publish, for the heartbeat.
    last_publish_ms: AtomicU64,
    /// Publishes so far: the idempotency key of the next one.
    published: AtomicU64,
}

impl SessionHandle {
    pub fn job(&self) -> &Job {
        &self.job
    }

    pub fn id(&self) -> SessionId {
        self.job.session_id
    }

    /// This run's attempt id, carried by every event it publishes.
    pub fn attempt(&self) -> &str {
        &self.attempt
    }

    /// Publishes one event of this session and waits until it is logged,
    /// riding out a short broker outage (see
    /// [`WorkerOptions::publish_retry`]). Each event carries an idempotency
    /// key, so a retry after a timeout (when the first try may have reached
    /// Redis) never logs it twice. Events sent before it ([`Self::send`])
    /// are logged first. A refusal by the log also cancels the session: the
    /// runner stops the handler.
    pub async fn publish(
        &self,
        event_type: &str,
        payload: Value,
    ) -> Result<Published, PublishError> {
        let event = self.event(event_type, payload)?;
        let (done, outcome) = oneshot::channel();
        self.outbox.push(event, Some(done)).await?;
        outcome
            .await
            .unwrap_or(Err(PublishError::Broker(BrokerError::Closed)))
    }

    /// Sends one event of this session without waiting for the log: it
    /// goes with the next append, together with every event sent while the
    /// one before was in flight (one call for a burst of LLM deltas). Waits
    /// only while a megabyte of events is queued. A refusal of an earlier
    /// event is returned here (and by [`Self::flush`]), and cancels the
    /// session as [`Self::publish`] does.
    pub async fn send(&self, event_type: &str, payload: Value) -> Result<(), PublishError> {
        let event = self.event(event_type, payload)?;
        self.outbox.push(event, None).await
    }

    /// Waits until every event sent so far is logged.
    pub async fn flush(&self) -> Result<(), PublishError> {
        self.outbox.flush().await
    }

    /// This attempt's next event, with its idempotency key `<attempt>:<n>`.
    fn event(&self, event_type: &str, payload: Value) -> Result<Event, PublishError> {
        if event_type.is_empty() {
            return Err(PublishError::EmptyEventType);
        }
        self.last_publish_ms
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        let key = format!(
            "{}:{}",
            self.attempt,
            self.published.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Event::new(event_type, payload)
            .from_attempt(Some(&self.attempt))
            .with_key(&key))
    }

    /// True once this attempt published its session's terminal event.
    pub fn has_ended(&self) -> bool {
        self.outbox.has_ended()
    }

    /// True once the gateway asked to stop (client gone) or the session
    /// refused this attempt's events.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the gateway asks to stop. The runner also drops the
    /// handler's future at that moment; this is for work the handler spawned.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_publish_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

/// How long a stopping worker lets the read in progress answer; longer than
/// a Redis queue's blocking read (2 s by default).
const STOP_READ_GRACE: Duration = Duration::from_secs(5);

/// How often a job whose session another live attempt serves asks again:
/// bounds how late it takes over once that attempt went silent.
const BUSY_RECHECK: Duration = Duration::from_secs(1);

/// Takes jobs from `source` until it closes or `shutdown` fires, then leaves
/// the queue ([`JobSource::leave`]) and waits up to `options.shutdown_grace`
/// for the jobs in flight.
pub async fn run_worker(
    source: Arc<dyn JobSource>,
    bus: Arc<dyn EventLog>,
    handler: Arc<dyn JobHandler>,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let tracker = TaskTracker::new();
    let abandon = CancellationToken::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let next = source.next_job();
        tokio::pin!(next);
        let mut stopping = false;
        let received = tokio::select! {
            next = &mut next => next,
            _ = shutdown.cancelled() => {
                // A read cancelled mid-way can lose the job it was handed
                // (Redis: pending until claim_idle, its client's ack times
                // out): where that is so, let it answer and run what it brings.
                if !source.stop_reading() {
                    break;
                }
                stopping = true;
                match tokio::time::timeout(STOP_READ_GRACE, &mut next).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            }
        };
        match received {
            Ok(Some(received)) => {
                let attempt = new_attempt_id();
                let span =
                    tracing::info_span!("job", session_id = %received.job.session_id, %attempt);
                let (bus, handler, abandon) = (bus.clone(), handler.clone(), abandon.clone());
                tracker.spawn(
                    async move {
                        tokio::select! {
                            () = run_job(received, attempt, bus, handler, options) => {}
                            () = abandon.cancelled() => tracing::warn!("job abandoned at shutdown; it will be redelivered"),
                        }
                        drop(permit);
                    }
                    .instrument(span),
                );
                if stopping {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                tracing::warn!("cannot take jobs: {error}; retrying in 1s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    // Before the drain, so that jobs waiting in this worker's share of the
    // queue go to the others at once; the redeliveries of the jobs still
    // running here wait for them (`busy`) rather than run twice.
    source.leave().await;
    tracker.close();
    if tokio::time::timeout(options.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        abandon.cancel();
        tracker.wait().await;
    }
}

/// A fresh attempt id: 16 hex digits, unique enough to tell deliveries apart.
fn new_attempt_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(16);
    id
}

/// How a job's handler run ended.
enum Ended {
    Returned(Result<(), HandlerError>),
    Cancelled,
}

async fn run_job(
    received: ReceivedJob,
    attempt: String,
    bus: Arc<dyn EventLog>,
    handler: Arc<dyn JobHandler>,
    options: WorkerOptions,
) {
    let ReceivedJob { job, ack } = received;
    tracing::info!("job taken");
    let id = job.session_id;
    let control = match bus.subscribe(&id.control_channel()).await {
        Ok(control) => control,
        Err(error) => {
            return tracing::warn!(
                "cannot subscribe to control channel, leaving the job for redelivery: {error}"
            );
        }
    };
    let cancel = CancellationToken::new();
    let session = SessionHandle {
        outbox: Outbox::new(id, bus, options.publish_retry, cancel.clone()),
        job,
        attempt,
        cancel,
        born: Instant::now(),
        last_publish_ms: AtomicU64::new(0),
        published: AtomicU64::new(0),
    };
    match send_worker_ack(&session).await {
        Ok(_) => run_handler(&session, control, handler.as_ref(), options.heartbeat).await,
        Err(PublishError::Refused(refusal)) => {
            tracing::info!("the session does not take this attempt ({refusal}); skipping the job")
        }
        Err(error) => {
            tracing::warn!("cannot publish worker_ack; abandoning the job: {error}");
            if let Err(error) = ack.abandon().await {
                tracing::warn!("cannot abandon the job: {error}");
            }
            return;
        }
    }
    if let Err(error) = ack.ack().await {
        tracing::warn!("cannot acknowledge the job: {error}");
    }
}

/// Publishes `worker_ack`. While another attempt is live and serving the
/// session (a redelivery of a job still running elsewhere: a rebalance, a
/// worker handing its partitions over as it stops), asks again every
/// [`BUSY_RECHECK`]: the session then ends (`ended`: skip the job) or that
/// attempt goes silent (this one takes over, or the log ends the session with
/// `worker_lost` if the silent one had answered).
async fn send_worker_ack(session: &SessionHandle) -> Result<Published, PublishError> {
    let mut waited = false;
    loop {
        match session.publish(event_type::WORKER_ACK, json!({})).await {
            Err(PublishError::Refused(Refusal::Busy)) => {
                if !waited {
                    tracing::info!("another attempt is serving the session; waiting for it");
                    waited = true;
                }
                tokio::time::sleep(BUSY_RECHECK).await;
            }
            other => return other,
        }
    }
}

async fn run_handler(
    session: &SessionHandle,
    control: Subscription,
    handler: &dyn JobHandler,
    heartbeat: Option<Duration>,
) {
    let ended = tokio::select! {
        result = handler.handle(session) => Ended::Returned(result),
        () = wait_for_cancel(control, &session.cancel) => Ended::Cancelled,
        () = send_heartbeats(session, heartbeat) => unreachable!("heartbeats never end"),
    };
    if let Ended::Returned(_) = ended {
        // What the handler sent without waiting is logged before it is judged.
        if let Err(error) = session.flush().await {
            tracing::info!("the session took not all the handler sent: {error}");
        }
    }
    match ended {
        Ended::Returned(Ok(())) if session.has_ended() || session.is_cancelled() => {
            tracing::info!("job done")
        }
        Ended::Returned(Ok(())) => {
            tracing::warn!("the handler returned without a terminal event");
            publish_worker_error(session, "the agent stopped without an answer").await;
        }
        Ended::Cancelled => {
            tracing::info!("job cancelled (by the gateway, or refused by the session)")
        }
        Ended::Returned(Err(error)) if session.is_cancelled() => {
            tracing::info!("job stopped: {error}")
        }
        Ended::Returned(Err(error)) if session.has_ended() => {
            tracing::warn!("handler failed after its session ended: {error}")
        }
        Ended::Returned(Err(error)) => {
            tracing::warn!("handler failed: {error}");
            publish_worker_error(session, &error.to_string()).await;
        }
    }
}

/// Ends the session with `error`/`worker_error` saying `message`.
async fn publish_worker_error(session: &SessionHandle, message: &str) {
    let payload = json!({ "error": message, "code": ErrorCode::WorkerError.as_str() });
    if let Err(error) = session.publish(event_type::ERROR, payload).await {
        tracing::warn!("cannot publish the error event: {error}");
    }
}

/// Resolves when a `cancel` control message arrives or `token` is cancelled
/// (the log refused an event); never otherwise.
async fn wait_for_cancel(mut control: Subscription, token: &CancellationToken) {
    loop {
        let delivery = tokio::select! {
            delivery = control.recv() => delivery,
            () = token.cancelled() => return,
        };
        match delivery {
            Delivery::Message(raw) => match Event::parse(&raw, 64 * 1024) {
                Ok(event) if event.event_type() == event_type::CANCEL => {
                    token.cancel();
                    return;
                }
                _ => tracing::debug!("ignoring a control message that is not cancel"),
            },
            // Without a control channel a cancel can no longer arrive; only
            // a refusal by the log can stop the handler now.
            Delivery::Overflowed | Delivery::Closed => return token.cancelled().await,
        }
    }
}

async fn send_heartbeats(session: &SessionHandle, every: Option<Duration>) {
    let Some(every) = every else {
        return std::future::pending().await;
    };
    loop {
        let silent = session.silent_for();
        if silent >= every {
            if let Err(error) = session
                .publish(event_type::WORKER_HEARTBEAT, json!({}))
                .await
            {
                tracing::warn!("cannot publish worker_heartbeat: {error}");
            }
            tokio::time::sleep(every).await;
        } else {
            tokio::time::sleep(every - silent).await;
        }
    }
}
