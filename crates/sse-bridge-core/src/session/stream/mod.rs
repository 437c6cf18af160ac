//! Drives a [`SessionMachine`] over a live subscription and the session's
//! log, in a task of its own, and feeds the response body chunk by chunk
//! through an outbox (`super::outbox`).
//!
//! A stream reads from two sources in one order: the log first when it has
//! something to catch up on (a follower's replay, or the entries published
//! while the broker link was down), then the live subscription, which was
//! confirmed *before* the log was read, so nothing falls between the two;
//! the machine drops live copies of entries it already took from the log.
//!
//! Each chunk holds every frame that was ready at once (up to
//! [`MAX_CHUNK_BYTES`]), so a burst of events costs one socket write. The
//! driver never waits for the client: timers fire and the session ends on
//! time whatever the client does. When hyper drops the body (client gone)
//! the driver notices at once and drops the [`LiveSession`], whose `Drop`
//! hands the departure to [`super::cancel`]; the subscription is dropped
//! with it, unsubscribing at once.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Instrument;

mod catch_up;

use super::cancel::Departure;
use super::machine::{Failure, Outcome, Progress, SessionMachine};
use super::outbox::Outbox;
use super::{SessionContext, Slot};
use crate::bus::{Delivery, Subscription};
use crate::format::Format;
use crate::log::{EventLog, LogId, PageLimit, SessionMeta};
use crate::metrics as m;
use crate::protocol::{ErrorCode, OnDisconnect, SessionId, unix_ms};
use crate::sse::{self, Framing};
use crate::thread::ThreadId;

/// A chunk grows no larger than this before it is handed to the socket.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;
/// What one round trip to the log reads at most when replaying or catching
/// up; the next page is read only once the client left room for it.
pub const LOG_PAGE: PageLimit = PageLimit {
    entries: 500,
    bytes: 64 * 1024,
};
/// The `retry:` hint sent to `EventSource` followers.
pub const RETRY_HINT: Duration = Duration::from_secs(1);

/// Whom a stream serves, which decides what its own ends mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The `POST` that created the session: every end it decides ends the
    /// session for everyone (logged, and the worker is cancelled).
    Creator,
    /// A `GET …/events` reader: an end that concerns only its connection
    /// (slow client, shutdown, lost link or history) ends only its stream.
    Follower,
}

/// A stream of one session: subscribed, ready to replay and stream.
pub struct LiveSession {
    id: SessionId,
    role: Role,
    format: Format,
    subscription: Subscription,
    link: watch::Receiver<bool>,
    link_open: bool,
    /// The broker link is down: live messages wait in the subscription.
    link_down: bool,
    /// Live messages received after a link change this stream has not
    /// handled yet: they may follow a gap, so they wait for the catch-up.
    held_back: Vec<Bytes>,
    /// The log holds entries this stream has not read yet.
    catching_up: bool,
    /// A follower fell behind the live channel: it subscribes again and
    /// reads what it missed from the log.
    resubscribing: bool,
    machine: SessionMachine,
    /// Written before the first frame (the follow endpoint's `retry:`).
    preamble: BytesMut,
    log: Arc<dyn EventLog>,
    log_timeout: Duration,
    /// Resolves when the gateway shuts down: one future for the stream's
    /// life, registered once, instead of one registered and dropped again
    /// on every wake-up (a lock of the token's each time).
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    span: tracing::Span,
    on_disconnect: OnDisconnect,
    outcome: Option<Outcome>,
    /// Forwarded events already counted in the metrics.
    counted: u64,
    /// The counter they are counted in (looked up once, not per chunk).
    forwarded_counter: metrics::Counter,
    /// Where chunks wait for the client (see `outbox`).
    outbox: Outbox,
    /// The client went away (the body was dropped).
    client_gone: bool,
    /// The creator's thread: the run's end is recorded there (PROTOCOL §8).
    thread: Option<ThreadId>,
    /// This stream's share of the gateway's [`super::SessionLimit`].
    _slot: Slot,
}

impl LiveSession {
    /// The creating `POST`'s stream, in the format it was created in
    /// (native: data-only frames).
    pub(super) fn creator(
        ctx: &SessionContext,
        id: SessionId,
        meta: &SessionMeta,
        model_alias: Option<&str>,
        thread: Option<ThreadId>,
        subscription: Subscription,
        slot: Slot,
    ) -> Self {
        let span =
            tracing::info_span!("session", session_id = %id, model_alias = tracing::field::Empty);
        if let Some(model_alias) = model_alias {
            span.record("model_alias", model_alias);
        }
        metrics::counter!(m::SESSIONS_STARTED).increment(1);
        metrics::gauge!(m::SESSIONS_ACTIVE).increment(1.0);
        span.in_scope(|| tracing::info!("session started"));
        let now = Instant::now();
        let format = Format::from_label(&meta.format).unwrap_or(Format::Native);
        let encoder = format.encoder(id, meta, Framing::DataOnly);
        let mut machine = SessionMachine::new(ctx.config.clone(), encoder, now, now);
        machine.record_event_gaps(metrics::histogram!(m::EVENT_GAP_SECONDS));
        let mut session = Self::new(
            ctx,
            id,
            Role::Creator,
            format,
            machine,
            meta.on_disconnect,
            subscription,
            slot,
            span,
        );
        session.thread = thread;
        session.machine.start(&mut session.preamble);
        session
    }

    /// A follower's stream in `format` (native: frames with ids),
    /// replaying the log after `after` (from the start when `None`) before
    /// it goes live.
    pub(super) fn follower(
        ctx: &SessionContext,
        id: SessionId,
        meta: &SessionMeta,
        format: Format,
        after: Option<LogId>,
        subscription: Subscription,
        slot: Slot,
    ) -> Self {
        let span = tracing::info_span!("follow", session_id = %id, after = tracing::field::Empty);
        if let Some(after) = after {
            span.record("after", tracing::field::display(after));
        }
        let resume = if after.is_some() { "true" } else { "false" };
        metrics::counter!(m::FOLLOWS_STARTED, "resume" => resume).increment(1);
        metrics::gauge!(m::FOLLOWERS_ACTIVE).increment(1.0);
        span.in_scope(|| tracing::info!("follower joined"));
        let now = Instant::now();
        // Deadlines count from the session's creation, as its creator's do.
        let age = Duration::from_millis(unix_ms().saturating_sub(meta.created_at_ms));
        let started = now.checked_sub(age).unwrap_or(now);
        let encoder = format.encoder(id, meta, Framing::WithIds);
        let mut machine = SessionMachine::new(ctx.config.clone(), encoder, started, now);
        if let Some(after) = after {
            machine = machine.resuming(after);
        }
        let mut session = Self::new(
            ctx,
            id,
            Role::Follower,
            format,
            machine,
            meta.on_disconnect,
            subscription,
            slot,
            span,
        );
        if format == Format::Native {
            sse::write_retry(&mut session.preamble, RETRY_HINT);
        }
        session.machine.start(&mut session.preamble);
        session.catching_up = true;
        session
    }

    #[allow(clippy::too_many_arguments)] // the two constructors above are the interface
    fn new(
        ctx: &SessionContext,
        id: SessionId,
        role: Role,
        format: Format,
        machine: SessionMachine,
        on_disconnect: OnDisconnect,
        subscription: Subscription,
        slot: Slot,
        span: tracing::Span,
    ) -> Self {
        LiveSession {
            id,
            role,
            format,
            link: subscription.link(),
            link_open: true,
            link_down: false,
            held_back: Vec::new(),
            subscription,
            catching_up: false,
            resubscribing: false,
            machine,
            preamble: BytesMut::new(),
            log: ctx.bus.clone(),
            log_timeout: ctx.start_timeout,
            shutdown: Box::pin(ctx.shutdown.clone().cancelled_owned()),
            span,
            on_disconnect,
            outcome: None,
            counted: 0,
            forwarded_counter: metrics::counter!(m::EVENTS_FORWARDED),
            outbox: Outbox::new(ctx.config.buffer_bytes),
            client_gone: false,
            thread: None,
            _slot: slot,
        }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The response body: SSE frames until the terminal event. The session
    /// is driven by a task of its own, whether or not the client reads.
    pub fn into_stream(mut self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let body = self.outbox.body();
        let span = self.span.clone();
        // The task only borrows the session until it releases it: an async
        // fn taking `self` by value would store the whole session twice in
        // its future (as argument and as local), for every held stream.
        let driver = async move {
            let outbox = self.pump().await;
            let (client_gone, write_timeout) =
                (self.client_gone, self.machine.config().write_timeout);
            // Released (unsubscribe, slot, departure) before the client
            // has taken its last frames.
            drop(self);
            if !client_gone {
                outbox.drain(write_timeout).await;
            }
        };
        tokio::spawn(driver.instrument(span));
        body
    }

    /// Drives the session to its end; returns the outbox, with the frames
    /// the client has not taken yet.
    async fn pump(&mut self) -> Outbox {
        while let Some(chunk) = self.next_chunk().await {
            self.client_gone |= self.outbox.push(chunk).is_err();
        }
        std::mem::replace(&mut self.outbox, Outbox::new(0))
    }

    /// Waits until there is something to write; `None` after the terminal
    /// frame, or once the client went away.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.outcome.is_some() {
            return None;
        }
        let mut out = std::mem::take(&mut self.preamble);
        loop {
            self.machine
                .pace(self.outbox.client_behind(), Instant::now(), &mut out);
            // One budget for the stream: what waits for the client shrinks
            // what the bus may queue for it.
            self.subscription.hold(
                self.outbox.queued_bytes()
                    + self.machine.unwritten_bytes()
                    + self.machine.held_bytes(),
            );
            let progress = if self.client_gone {
                return None;
            } else if self
                .outbox
                .over_budget(self.machine.unwritten_bytes() + out.len())
            {
                Progress::Expired(Failure::new(
                    ErrorCode::SlowConsumer,
                    "the client did not keep up: its backlog exceeded the stream's buffer",
                ))
            } else if self.resubscribing {
                self.resubscribe().await
            } else if self.catching_up && !out.is_empty() {
                // Written before the next page is read, so the page waits
                // for room in the outbox (below).
                Progress::Continue
            } else if self.catching_up && self.outbox.has_room(self.page_bytes()) {
                self.read_log_page(&mut out).await
            } else if self.catching_up {
                // The client paces the replay: the log holds what it has
                // not taken yet, not this stream's memory.
                self.wait_for_room().await
            } else if !self.held_back.is_empty() {
                self.deliver_held_back(&mut out)
            } else {
                let progress = self.wait_and_step(&mut out).await;
                self.drain_ready(progress, &mut out)
            };
            let progress = match progress {
                // Rare, and the largest future here: boxed, so it does not
                // size every held stream's task.
                Progress::Expired(failure) => {
                    Box::pin(self.resolve_failure(failure, &mut out)).await
                }
                progress => progress,
            };
            if let Progress::Finished(outcome) = progress {
                self.finish(outcome);
                return Some(sealed(out));
            }
            if !out.is_empty() {
                self.count_forwarded();
                return Some(sealed(out));
            }
        }
    }

    /// Waits for the next thing to happen. A link change is looked at
    /// before any live message: messages that follow a drop may follow a
    /// gap, and must wait until the log has been read.
    async fn wait_and_step(&mut self, out: &mut BytesMut) -> Progress {
        let deadline = self.machine.deadline();
        tokio::select! {
            biased;
            _ = &mut self.shutdown => {
                Progress::Expired(Failure::new(ErrorCode::ServerShutdown, "the gateway is shutting down"))
            }
            changed = self.link.changed(), if self.link_open => match changed {
                Ok(()) => {
                    let up = *self.link.borrow_and_update();
                    self.machine.on_link(up, Instant::now());
                    self.link_down = !up;
                    if up {
                        self.recover()
                    } else {
                        tracing::warn!("event broker link lost; waiting for resubscription");
                        Progress::Continue
                    }
                }
                Err(_) => {
                    self.link_open = false;
                    Progress::Continue
                }
            },
            moved = self.outbox.progress() => {
                self.client_gone |= moved.is_err();
                Progress::Continue
            }
            delivery = self.subscription.recv(), if !self.link_down => self.on_delivery(delivery, out),
            _ = tokio::time::sleep_until(deadline) => self.machine.on_timer(Instant::now(), out),
        }
    }

    /// Adds every message already queued to the same chunk — unless the
    /// log must be read first (a catch-up is due, or a link change is pending).
    fn drain_ready(&mut self, mut progress: Progress, out: &mut BytesMut) -> Progress {
        while progress == Progress::Continue
            && out.len() < MAX_CHUNK_BYTES
            && !self.catching_up
            && self.held_back.is_empty()
        {
            match self.subscription.try_recv() {
                Some(delivery) => progress = self.on_delivery(delivery, out),
                None => break,
            }
        }
        progress
    }

    fn on_delivery(&mut self, delivery: Delivery, out: &mut BytesMut) -> Progress {
        match delivery {
            // Received after the link changed (the change is not handled
            // yet): it may come after a gap.
            Delivery::Message(raw) if self.link.has_changed().unwrap_or(false) => {
                self.held_back.push(raw);
                Progress::Continue
            }
            Delivery::Message(raw) => self.machine.on_message(&raw, Instant::now(), out),
            // A follower of a logged session reads what it missed from the
            // log, at its client's pace: falling behind the live channel
            // costs it nothing but a catch-up.
            Delivery::Overflowed
                if self.role == Role::Follower && self.machine.last_log_id().is_some() =>
            {
                self.resubscribing = true;
                Progress::Continue
            }
            Delivery::Overflowed => Progress::Expired(Failure::new(
                ErrorCode::SlowConsumer,
                "the client did not keep up with the event rate",
            )),
            Delivery::Closed => Progress::Expired(Failure::new(
                ErrorCode::BrokerUnavailable,
                "the event bus closed the subscription",
            )),
        }
    }

    /// Handles the live messages held back by a link change, now that the
    /// log has been read past the gap (those already read are dropped by id).
    fn deliver_held_back(&mut self, out: &mut BytesMut) -> Progress {
        let now = Instant::now();
        for raw in std::mem::take(&mut self.held_back) {
            let progress = self.machine.on_message(&raw, now, out);
            if progress != Progress::Continue {
                return progress;
            }
        }
        Progress::Continue
    }

    /// Adds the events forwarded since the last chunk to the metric (once
    /// per chunk, not per event: the metric lookup is not free).
    fn count_forwarded(&mut self) {
        let forwarded = self.machine.stats().forwarded;
        self.forwarded_counter.increment(forwarded - self.counted);
        self.counted = forwarded;
    }

    fn finish(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
        self.count_forwarded();
        let stats = self.machine.stats();
        tracing::info!(
            outcome = outcome.label(),
            forwarded = stats.forwarded,
            malformed = stats.malformed,
            duplicate_acks = stats.duplicate_acks,
            already_seen = stats.already_seen,
            foreign_attempts = stats.foreign,
            "stream ended"
        );
    }
}

/// A chunk as it waits in the outbox. A chunk built by growing a buffer
/// may hold up to twice its length in capacity, which the outbox's budget
/// (counted in lengths) would not see: such a chunk is copied to its size.
fn sealed(chunk: BytesMut) -> Bytes {
    if chunk.capacity() - chunk.len() > chunk.len() / 4 + 1024 {
        Bytes::copy_from_slice(&chunk)
    } else {
        chunk.freeze()
    }
}

impl Drop for LiveSession {
    /// In order: metrics; then the departure (follower count, cancel after
    /// the grace) goes to a task, since it talks to the broker; the
    /// subscription, dropped with the fields right after, unsubscribes.
    fn drop(&mut self) {
        let outcome = self.outcome.map_or("client_disconnected", Outcome::label);
        match self.role {
            Role::Creator => {
                metrics::gauge!(m::SESSIONS_ACTIVE).decrement(1.0);
                let format = self.format.as_str();
                metrics::counter!(m::SESSIONS_ENDED, "outcome" => outcome, "format" => format)
                    .increment(1);
                let milestones = self.machine.milestones();
                if let Some(acked) = milestones.acked {
                    metrics::histogram!(m::ACK_SECONDS).record(acked);
                }
                if let Some(first) = milestones.first_content {
                    metrics::histogram!(m::FIRST_CONTENT_SECONDS).record(first);
                }
                let age = self.machine.age(Instant::now());
                metrics::histogram!(m::SESSION_DURATION_SECONDS).record(age);
            }
            Role::Follower => metrics::gauge!(m::FOLLOWERS_ACTIVE).decrement(1.0),
        }
        let departure = Departure {
            log: self.log.clone(),
            id: self.id,
            ended: self.outcome.is_some(),
            marks_unlogged_end: self.role == Role::Creator && self.machine.has_live_output(),
            on_disconnect: self.on_disconnect,
            live_only: self.machine.has_live_output(),
            cancel_grace: self.machine.config().cancel_grace,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.span.in_scope(|| {
                tracing::warn!("no runtime to record the departure on; the worker runs to its end")
            });
            return;
        };
        runtime.spawn(departure.run().instrument(self.span.clone()));
        if let (Some(thread), true) = (self.thread.take(), self.outcome.is_some()) {
            let (log, id, ttl) = (self.log.clone(), self.id, self.machine.config().thread_ttl);
            let settle = async move { super::threads::settle(&*log, &thread, id, ttl).await };
            runtime.spawn(settle.instrument(self.span.clone()));
        }
    }
}
