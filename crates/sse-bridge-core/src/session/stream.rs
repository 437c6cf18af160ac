//! Drives a [`SessionMachine`] over a live subscription and yields the
//! response body, chunk by chunk.
//!
//! Each chunk holds every frame that was ready at once (up to
//! [`MAX_CHUNK_BYTES`]), so a burst of events costs one socket write. The
//! stream owns the subscription: when hyper drops the body (client gone),
//! the subscription is dropped with it — unsubscribing at once — and
//! [`LiveSession`]'s `Drop` publishes `cancel` on the control channel.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::SessionContext;
use super::machine::{Outcome, Progress, SessionMachine};
use crate::bus::{Delivery, EventBus, Subscription};
use crate::metrics as m;
use crate::protocol::{ErrorCode, Job, OnDisconnect, SessionId, cancel_message};

/// A chunk grows no larger than this before it is handed to the socket.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// A started session: subscribed, job dispatched, ready to stream.
pub struct LiveSession {
    id: SessionId,
    subscription: Subscription,
    link: watch::Receiver<bool>,
    link_open: bool,
    machine: SessionMachine,
    shutdown: CancellationToken,
    span: tracing::Span,
    cleanup: Cleanup,
    /// This session's slot in the gateway's [`super::SessionLimit`].
    _slot: OwnedSemaphorePermit,
}

/// Runs when the session is dropped, however it ended.
struct Cleanup {
    id: SessionId,
    bus: Arc<dyn EventBus>,
    on_disconnect: OnDisconnect,
    outcome: Option<Outcome>,
    span: tracing::Span,
}

impl LiveSession {
    pub(super) fn new(
        ctx: &SessionContext,
        job: Job,
        subscription: Subscription,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        let id = job.session_id;
        let span =
            tracing::info_span!("session", session_id = %id, model_alias = tracing::field::Empty);
        if let Some(model_alias) = job.request.model_alias() {
            span.record("model_alias", model_alias);
        }
        metrics::counter!(m::SESSIONS_STARTED).increment(1);
        metrics::gauge!(m::SESSIONS_ACTIVE).increment(1.0);
        span.in_scope(|| tracing::info!("session started"));
        let link = subscription.link();
        LiveSession {
            id,
            link,
            link_open: true,
            subscription,
            machine: SessionMachine::new(ctx.config, Instant::now()),
            shutdown: ctx.shutdown.clone(),
            span: span.clone(),
            cleanup: Cleanup {
                id,
                bus: ctx.bus.clone(),
                on_disconnect: job.request.on_disconnect(),
                outcome: None,
                span,
            },
            _slot: slot,
        }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The response body: SSE frames until the terminal event.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        futures::stream::unfold(self, |mut session| async move {
            let span = session.span.clone();
            let chunk = session.next_chunk().instrument(span).await?;
            Some((Ok(chunk), session))
        })
    }

    /// Waits until there is something to write; `None` after the terminal frame.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.cleanup.outcome.is_some() {
            return None;
        }
        let mut out = BytesMut::new();
        loop {
            let progress = self.wait_and_step(&mut out).await;
            let progress = self.drain_ready(progress, &mut out);
            if let Progress::Finished(outcome) = progress {
                self.finish(outcome);
                return Some(out.freeze());
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
        }
    }

    async fn wait_and_step(&mut self, out: &mut BytesMut) -> Progress {
        let deadline = self.machine.deadline();
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => {
                self.machine.fail(ErrorCode::ServerShutdown, "the gateway is shutting down", Instant::now(), out)
            }
            delivery = self.subscription.recv() => self.on_delivery(delivery, out),
            changed = self.link.changed(), if self.link_open => {
                match changed {
                    Ok(()) => {
                        let up = *self.link.borrow_and_update();
                        if !up {
                            tracing::warn!("event broker link lost; waiting for resubscription");
                        }
                        self.machine.on_link(up, Instant::now());
                    }
                    Err(_) => self.link_open = false,
                }
                Progress::Continue
            }
            _ = tokio::time::sleep_until(deadline) => self.machine.on_timer(Instant::now(), out),
        }
    }

    /// Adds every message already queued to the same chunk.
    fn drain_ready(&mut self, mut progress: Progress, out: &mut BytesMut) -> Progress {
        while progress == Progress::Continue && out.len() < MAX_CHUNK_BYTES {
            match self.subscription.try_recv() {
                Some(delivery) => progress = self.on_delivery(delivery, out),
                None => break,
            }
        }
        progress
    }

    fn on_delivery(&mut self, delivery: Delivery, out: &mut BytesMut) -> Progress {
        let now = Instant::now();
        match delivery {
            Delivery::Message(raw) => self.machine.on_message(&raw, now, out),
            Delivery::Overflowed => self.machine.fail(
                ErrorCode::SlowConsumer,
                "the client did not keep up with the event rate",
                now,
                out,
            ),
            Delivery::Closed => self.machine.fail(
                ErrorCode::BrokerUnavailable,
                "the event bus closed the subscription",
                now,
                out,
            ),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.cleanup.outcome = Some(outcome);
        let stats = self.machine.stats();
        metrics::counter!(m::EVENTS_FORWARDED).increment(stats.forwarded);
        tracing::info!(
            outcome = outcome.label(),
            forwarded = stats.forwarded,
            malformed = stats.malformed,
            duplicate_acks = stats.duplicate_acks,
            "session ended"
        );
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        metrics::gauge!(m::SESSIONS_ACTIVE).decrement(1.0);
        let outcome = match self.outcome {
            Some(outcome) => outcome.label(),
            None => "client_disconnected",
        };
        metrics::counter!(m::SESSIONS_ENDED, "outcome" => outcome).increment(1);
        if self.outcome.is_some() {
            return;
        }
        let _entered = self.span.enter();
        tracing::info!(on_disconnect = ?self.on_disconnect, "client disconnected before the end");
        if self.on_disconnect == OnDisconnect::Continue {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime to publish cancel on; the worker runs to its end");
            return;
        };
        let bus = self.bus.clone();
        let channel = self.id.control_channel();
        runtime.spawn(
            async move {
                match bus
                    .publish(&channel, Bytes::from(cancel_message("client_disconnected")))
                    .await
                {
                    Ok(_) => metrics::counter!(m::CANCELS_PUBLISHED).increment(1),
                    Err(e) => tracing::warn!("could not publish cancel: {e}"),
                }
            }
            .instrument(self.span.clone()),
        );
    }
}
