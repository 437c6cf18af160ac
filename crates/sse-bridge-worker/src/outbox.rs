//! A session's outgoing events, batched opportunistically: while one
//! append is in flight, the events sent meanwhile queue up and go to the
//! log together, in one [`EventLog::append_batch`] call (on Redis one
//! round trip, one function call and one live message for the batch). A
//! lone event goes at once; a burst — an LLM's deltas, a tool's output in
//! pieces — costs Redis one call per batch, not per event.
//!
//! One drain task per burst sends the queue in order and exits when it is
//! empty. The queue is bounded in bytes: a sender waits for room. The
//! first refusal (or a broker failure that outlasted the retries) stops
//! the outbox: what is queued fails with it, and so does every later send.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sse_bridge_core::log::{Appended, Refusal};
use sse_bridge_core::{BrokerError, Event, EventLog, SessionId};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::publish::{PublishError, Published, published};

/// Bytes of events queued at most; a sender waits while the queue is over.
const QUEUED_BYTES: usize = 1 << 20;
/// One call carries at most this many events…
const BATCH_EVENTS: usize = 256;
/// …and this many bytes of them (the log publishes a batch as one message).
const BATCH_BYTES: usize = 256 << 10;

/// What one sent event's sender learns, if it waits.
pub(crate) type Outcome = Result<Published, PublishError>;

struct Pending {
    event: Event,
    done: Option<oneshot::Sender<Outcome>>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    /// JSON bytes of the queued events.
    bytes: usize,
    /// A drain task is running (it owns the events it took).
    draining: bool,
    /// Why the outbox takes no more events.
    stopped: Option<PublishError>,
}

pub(crate) struct Outbox {
    id: SessionId,
    bus: Arc<dyn EventLog>,
    /// How long a batch rides out an unreachable broker.
    retry: Duration,
    /// Cancelled when the log refuses an event (the handler must stop).
    cancel: CancellationToken,
    /// A terminal event of this attempt was logged.
    ended: AtomicBool,
    state: Mutex<State>,
    /// Room was made in the queue, or it drained.
    progress: Notify,
}

impl Outbox {
    pub(crate) fn new(
        id: SessionId,
        bus: Arc<dyn EventLog>,
        retry: Duration,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Outbox {
            id,
            bus,
            retry,
            cancel,
            ended: AtomicBool::new(false),
            state: Mutex::default(),
            progress: Notify::new(),
        })
    }

    /// Queues `event` once there is room; its outcome goes to `done`, if given.
    pub(crate) async fn push(
        self: &Arc<Self>,
        event: Event,
        done: Option<oneshot::Sender<Outcome>>,
    ) -> Result<(), PublishError> {
        let bytes = event.json().len();
        let mut pending = Some(Pending { event, done });
        loop {
            let progress = self.progress.notified();
            {
                let mut state = self.lock();
                if let Some(stopped) = &state.stopped {
                    return Err(stopped.clone());
                }
                // An event larger than the bound goes alone, when the queue is empty.
                if state.bytes == 0 || state.bytes + bytes <= QUEUED_BYTES {
                    state.queue.extend(pending.take());
                    state.bytes += bytes;
                    if !state.draining {
                        state.draining = true;
                        tokio::spawn(self.clone().drain());
                    }
                    return Ok(());
                }
            }
            progress.await;
        }
    }

    /// Waits until everything queued so far was logged; the refusal or
    /// failure that stopped the outbox, if any.
    pub(crate) async fn flush(&self) -> Result<(), PublishError> {
        loop {
            let progress = self.progress.notified();
            {
                let state = self.lock();
                if let Some(stopped) = &state.stopped {
                    return Err(stopped.clone());
                }
                if !state.draining {
                    return Ok(());
                }
            }
            progress.await;
        }
    }

    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    async fn drain(self: Arc<Self>) {
        loop {
            let Batch {
                events,
                waiters,
                bytes,
            } = {
                let mut state = self.lock();
                if state.queue.is_empty() || state.stopped.is_some() {
                    state.draining = false;
                    drop(state);
                    self.progress.notify_waiters();
                    return;
                }
                take_batch(&mut state)
            };
            let outcomes = self.append(&events).await;
            let mut state = self.lock();
            state.bytes -= bytes;
            match outcomes {
                Ok(outcomes) => {
                    for ((event, done), appended) in events.iter().zip(waiters).zip(outcomes) {
                        let outcome = published(appended);
                        match &outcome {
                            Ok(_) if event.is_terminal() => {
                                self.ended.store(true, Ordering::Relaxed)
                            }
                            Ok(_) => {}
                            // An ack refused while another attempt is live:
                            // this attempt has not started, it may ask again.
                            Err(PublishError::Refused(Refusal::Busy)) => {}
                            Err(error) => self.stop(&mut state, error),
                        }
                        if let Some(done) = done {
                            let _ = done.send(outcome);
                        }
                    }
                }
                Err(error) => {
                    let error = PublishError::Broker(error);
                    self.stop(&mut state, &error);
                    for done in waiters.into_iter().flatten() {
                        let _ = done.send(Err(error.clone()));
                    }
                }
            }
            drop(state);
            self.progress.notify_waiters();
        }
    }

    /// Stops the outbox with `error` (the first one counts): what is still
    /// queued fails with it, and the handler is stopped.
    fn stop(&self, state: &mut State, error: &PublishError) {
        if state.stopped.is_some() {
            return;
        }
        state.stopped = Some(error.clone());
        for pending in state.queue.drain(..) {
            if let Some(done) = pending.done {
                let _ = done.send(Err(error.clone()));
            }
        }
        state.bytes = 0;
        self.cancel.cancel();
    }

    /// One batch, riding out a short broker outage: a retry asks the log
    /// not to append what the first try may have appended (the first
    /// event's idempotency key names the batch).
    async fn append(&self, events: &[Event]) -> Result<Vec<Appended>, BrokerError> {
        let give_up = Instant::now() + self.retry;
        let mut pause = Duration::from_millis(50);
        let mut result = self.bus.append_batch(self.id, events, false).await;
        loop {
            match result {
                Err(BrokerError::Unavailable(_) | BrokerError::Timeout(_))
                    if Instant::now() + pause < give_up =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                    result = self.bus.append_batch(self.id, events, true).await;
                }
                other => return other,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Events taken off the queue for one call.
struct Batch {
    events: Vec<Event>,
    waiters: Vec<Option<oneshot::Sender<Outcome>>>,
    /// Their JSON bytes.
    bytes: usize,
}

/// Takes the next batch off the queue.
fn take_batch(state: &mut State) -> Batch {
    let (mut events, mut waiters, mut bytes) = (Vec::new(), Vec::new(), 0);
    while let Some(next) = state.queue.front() {
        let size = next.event.json().len();
        if !events.is_empty() && (events.len() == BATCH_EVENTS || bytes + size > BATCH_BYTES) {
            break;
        }
        let pending = state.queue.pop_front().expect("front exists");
        events.push(pending.event);
        waiters.push(pending.done);
        bytes += size;
    }
    Batch {
        events,
        waiters,
        bytes,
    }
}
