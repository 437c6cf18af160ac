//! The log side of a stream: replaying and catching up from the session's
//! log at the client's pace (a page is read only when the outbox has room
//! for it), recovering after the broker link or the live queue failed it,
//! and ending a session through its log so every reader sees the same end.

use bytes::BytesMut;
use tokio::time::Instant;

use super::super::cancel;
use super::super::machine::{Failure, Progress};
use super::{LOG_PAGE, LiveSession, Role};
use crate::log::{Ending, PageLimit};
use crate::metrics as m;
use crate::protocol::ErrorCode;

impl LiveSession {
    /// What one page of the log may hold: [`LOG_PAGE`], or a quarter of a
    /// small budget.
    fn page_limit(&self) -> PageLimit {
        PageLimit {
            bytes: LOG_PAGE.bytes.min(self.outbox.budget() / 4).max(1),
            ..LOG_PAGE
        }
    }

    /// The room the next page needs: the page, and what waits to be written.
    pub(super) fn page_bytes(&self) -> usize {
        self.page_limit().bytes + self.machine.unwritten_bytes()
    }

    /// Waits until the client takes some of its backlog (a replay's next
    /// page waits for room). A client that takes nothing is closed by the
    /// connection's write timeout, which drops the body.
    pub(super) async fn wait_for_room(&mut self) -> Progress {
        tokio::select! {
            biased;
            _ = &mut self.shutdown => {
                Progress::Expired(Failure::new(ErrorCode::ServerShutdown, "the gateway is shutting down"))
            }
            moved = self.outbox.progress() => {
                self.client_gone |= moved.is_err();
                Progress::Continue
            }
        }
    }

    /// The link is back and the channel resubscribed: read what was
    /// published meanwhile from the log before going on live (PROTOCOL §3.10).
    pub(super) fn recover(&mut self) -> Progress {
        if self.machine.has_live_output() {
            return Progress::Expired(Failure::new(
                ErrorCode::HistoryLost,
                "the event broker link dropped after output began, and this session's worker \
                 does not log its events: what it published meanwhile is lost",
            ));
        }
        tracing::info!("event broker link restored; catching up from the session log");
        self.catching_up = true;
        Progress::Continue
    }

    /// Subscribes again after the live queue overflowed, then catches up
    /// from the log after the last entry handled (the new subscription is
    /// confirmed first, so nothing falls between the two).
    pub(super) async fn resubscribe(&mut self) -> Progress {
        self.resubscribing = false;
        let channel = self.id.event_channel();
        match tokio::time::timeout(self.log_timeout, self.log.subscribe(&channel)).await {
            Ok(Ok(subscription)) => {
                // The old one is dropped after the new one is confirmed, so
                // the channel stays subscribed at the broker.
                self.subscription = subscription;
                self.held_back.clear();
                self.catching_up = true;
                Progress::Continue
            }
            Ok(Err(_)) | Err(_) => Progress::Expired(Failure::new(
                ErrorCode::BrokerUnavailable,
                "could not subscribe again after falling behind the live events",
            )),
        }
    }

    /// Reads one page of the log after the last entry handled.
    pub(super) async fn read_log_page(&mut self, out: &mut BytesMut) -> Progress {
        let after = self.machine.last_log_id();
        let read = self.log.read(self.id, after, self.page_limit());
        let page = match tokio::time::timeout(self.log_timeout, read).await {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => {
                self.catching_up = false;
                tracing::warn!("cannot read the session log: {error}");
                return Progress::Expired(Failure::new(
                    ErrorCode::BrokerUnavailable,
                    "cannot read the session's log",
                ));
            }
            Err(_) => {
                self.catching_up = false;
                return Progress::Expired(Failure::new(
                    ErrorCode::BrokerUnavailable,
                    "the session's log did not answer in time",
                ));
            }
        };
        self.catching_up = page.more;
        let now = Instant::now();
        if !page.known {
            self.catching_up = false;
            return Progress::Expired(Failure::new(
                ErrorCode::BrokerUnavailable,
                "the event broker no longer knows this session (restarted without persistence?)",
            ));
        }
        if let Some(lost) = page.lost {
            self.catching_up = false;
            // Only this reader is behind: its own stream ends, the session goes on.
            let lost = Failure::new(ErrorCode::HistoryLost, lost.explanation(after.is_none()));
            return self.machine.fail(&lost, now, out);
        }
        metrics::counter!(m::EVENTS_REPLAYED).increment(page.entries.len() as u64);
        for entry in &page.entries {
            let progress = self.machine.on_entry(entry, now, out);
            if progress != Progress::Continue {
                self.catching_up = false;
                return progress;
            }
        }
        Progress::Continue
    }

    /// Turns a failure into the stream's last frame: through the log when
    /// it ends the session (so every reader gets the same terminal event,
    /// after every event logged before it), directly when it concerns this
    /// stream only or the log cannot be reached.
    pub(super) async fn resolve_failure(
        &mut self,
        failure: Failure,
        out: &mut BytesMut,
    ) -> Progress {
        if self.role == Role::Follower && failure.code == ErrorCode::ServerShutdown {
            // Nothing is wrong with the session: the reader resumes elsewhere.
            return self.machine.close(failure.code);
        }
        if !self.ends_session(failure.code) {
            return self.machine.fail(&failure, Instant::now(), out);
        }
        let ending = tokio::time::timeout(
            self.log_timeout,
            cancel::end_session(self.log.as_ref(), self.id, &failure, failure.code.as_str()),
        )
        .await;
        match ending {
            Ok(Ok(Ending::Appended(_) | Ending::AlreadyEnded(_))) => {}
            Ok(Ok(Ending::Unknown)) => {
                tracing::warn!("the session's log expired; ending without it");
                return self.machine.fail(&failure, Instant::now(), out);
            }
            Ok(Err(error)) => {
                tracing::warn!("cannot log the session's end: {error}");
                return self.machine.fail(&failure, Instant::now(), out);
            }
            Err(_) => {
                tracing::warn!("the session's log did not answer in time");
                return self.machine.fail(&failure, Instant::now(), out);
            }
        }
        if failure.code == ErrorCode::SlowConsumer {
            // Its client cannot take what the log holds past its budget (a
            // resume reads it): the frame ends the stream within the budget.
            return self.machine.fail(&failure, Instant::now(), out);
        }
        self.catching_up = true;
        while self.catching_up {
            match self.read_log_page(out).await {
                Progress::Continue => {}
                Progress::Expired(_) => break,
                finished => return finished,
            }
        }
        // The log ended without a terminal event this stream could read.
        self.machine.fail(&failure, Instant::now(), out)
    }

    /// Whether a failure this stream decided ends the whole session.
    fn ends_session(&self, code: ErrorCode) -> bool {
        match self.role {
            Role::Creator => true,
            // A follower judges the worker only once it reads a logged
            // session: it may have joined a live-only one mid-way.
            Role::Follower => {
                self.machine.last_log_id().is_some()
                    && !matches!(
                        code,
                        ErrorCode::SlowConsumer
                            | ErrorCode::ServerShutdown
                            | ErrorCode::BrokerUnavailable
                            | ErrorCode::HistoryLost
                    )
            }
        }
    }
}
