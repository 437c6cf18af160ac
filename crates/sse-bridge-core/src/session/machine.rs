//! The session lifecycle as a state machine, free of I/O (PROTOCOL §3.4–3.11, §4).
//!
//! The machine is fed channel messages, log entries, broker-link changes and
//! the clock, and appends SSE frames to an output buffer. It never sleeps or
//! reads a socket itself: [`super::stream`] drives it, the unit tests below
//! drive it by hand with made-up instants.
//!
//! ```text
//!  AwaitingAck ──worker_ack──▶ Streaming ──FinalAnswerStreamEnd/error──▶ Finished
//!      │  (holds early events,       │  (forwards, drops duplicate acks,
//!      │   ack_timeout)              │   idle_timeout, worker_lost)
//!      └──── a deadline passed, the session was lost ────▶ Expired(failure)
//! ```
//!
//! When a deadline passes the machine does not write the `error` itself: it
//! reports [`Progress::Expired`], and the driver ends the session through the
//! log ([`crate::log::EventLog::end`]) so every reader sees the same terminal
//! event with the same id; [`SessionMachine::fail`] writes one directly when
//! the end concerns this stream only or the log cannot be reached.
//!
//! While the driver reports the client behind ([`SessionMachine::pace`]),
//! plain text pieces are merged into one event instead of being written
//! (see [`super::coalesce`]).
//!
//! Logged events (those with a `log_id`) are de-duplicated by id: anything
//! at or before the last logged event already handled is dropped, which is
//! what lets a reader take the same event from a log replay and from the
//! live channel. Live-only events (seed-style workers that only PUBLISH) go
//! through the [`AttemptGate`] here; logged ones passed it in the log.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use super::coalesce::TextRun;
use crate::format::Encoder;
use crate::log::{Admission, AttemptGate, LogEntry, LogId};
use crate::protocol::{self, ErrorCode, Event, MalformedEvent, event_type};
use crate::sse;

/// Every duration and bound of a session; defaults are PROTOCOL.md's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Wait this long for `worker_ack` (also: to resubscribe after a broker drop).
    pub ack_timeout: Duration,
    /// Send `: ping` after this long without writing anything.
    pub heartbeat: Duration,
    /// End a session whose worker said nothing for this long.
    pub idle_timeout: Duration,
    /// End any session older than this.
    pub max_duration: Duration,
    /// Interval a heartbeating worker promises; three missed → `worker_lost`.
    pub worker_heartbeat: Duration,
    /// Skip channel messages larger than this.
    pub max_event_bytes: usize,
    /// Events forwarded per session at most; more ends it (`too_many_events`).
    pub max_events: u64,
    /// After its last reader left, a logged session is cancelled only if
    /// nobody resumed it within this time.
    pub cancel_grace: Duration,
    /// Bytes of frames a stream may hold for a client that reads slowly;
    /// more ends it with `slow_consumer`.
    pub buffer_bytes: usize,
    /// A stream that ended gives its client this long to take each of its
    /// last frames.
    pub write_timeout: Duration,
    /// A thread's record expires this long after its last run (PROTOCOL §8).
    pub thread_ttl: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            ack_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(120),
            max_duration: Duration::from_secs(30 * 60),
            worker_heartbeat: Duration::from_secs(5),
            max_event_bytes: 1024 * 1024,
            max_events: 1_000_000,
            cancel_grace: Duration::from_secs(30),
            buffer_bytes: 1024 * 1024,
            write_timeout: Duration::from_secs(30),
            thread_ttl: crate::thread::DEFAULT_THREAD_TTL,
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `FinalAnswerStreamEnd` was forwarded.
    Completed,
    /// An `error` event of this code was forwarded (sent by the worker, or
    /// decided by a gateway and read from the log).
    Failed(ErrorCode),
    /// An `error` event with a code the gateway does not know (a worker's).
    WorkerError,
    /// An `interrupt` was forwarded: the run waits for outside input.
    Interrupted,
}

impl Outcome {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::WorkerError => "worker_error",
            Outcome::Interrupted => "interrupted",
            Outcome::Failed(code) => code.as_str(),
        }
    }
}

/// A gateway-decided end, waiting to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn event(&self) -> Event {
        Event::error(self.code, self.message.clone())
    }
}

/// What the caller should do after feeding the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Continue,
    /// The terminal frame has been written; end the response.
    Finished(Outcome),
    /// The session must end with this failure; nothing was written for it.
    Expired(Failure),
}

/// When a session reached its milestones, counted from its creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Milestones {
    /// `worker_ack` was handled.
    pub acked: Option<Duration>,
    /// The first thought, tool call or answer piece was forwarded.
    pub first_content: Option<Duration>,
}

/// Counters of one session, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub forwarded: u64,
    pub malformed: u64,
    pub duplicate_acks: u64,
    /// Logged events dropped because they were already handled.
    pub already_seen: u64,
    /// Events of attempts the session does not belong to.
    pub foreign: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingAck,
    Streaming,
    Finished(Outcome),
}

/// A text run is written once it holds this much (`coalesce`).
const TEXT_RUN_MAX_BYTES: usize = 32 * 1024;

/// One session's state.
#[derive(Debug)]
pub struct SessionMachine {
    /// Shared by every stream of the gateway (one copy, not one per stream).
    config: Arc<SessionConfig>,
    /// Turns forwarded events into frames of the stream's format.
    encoder: Box<dyn Encoder>,
    started: Instant,
    phase: Phase,
    held: Vec<Event>,
    /// Bytes of `held`: bounded by the stream's budget.
    held_bytes: usize,
    last_event: Instant,
    last_write: Instant,
    worker_heartbeats: bool,
    link_lost_at: Option<Instant>,
    /// The last logged event handled: the resume point.
    last_log_id: Option<LogId>,
    /// A live-only event was forwarded: a gap in the live channel could not
    /// be repaired from a log.
    live_output: bool,
    gate: AttemptGate,
    stats: SessionStats,
    /// The client is behind: text pieces wait in `text_run`.
    client_behind: bool,
    /// Text pieces forwarded but not yet written.
    text_run: Option<TextRun>,
    milestones: Milestones,
    /// Where the gaps between worker events are recorded, if anywhere.
    event_gaps: Option<metrics::Histogram>,
}

impl SessionMachine {
    /// A machine for a session that started at `started` (earlier than `now`
    /// for a follower joining later), writing frames with `encoder`.
    pub fn new(
        config: impl Into<Arc<SessionConfig>>,
        encoder: Box<dyn Encoder>,
        started: Instant,
        now: Instant,
    ) -> Self {
        let config: Arc<SessionConfig> = config.into();
        // Live-only attempts are judged like logged ones: live until three
        // missed heartbeats.
        let gate = AttemptGate::new(config.worker_heartbeat * 3);
        SessionMachine {
            config,
            encoder,
            started,
            phase: Phase::AwaitingAck,
            held: Vec::new(),
            held_bytes: 0,
            last_event: now,
            last_write: now,
            worker_heartbeats: false,
            link_lost_at: None,
            last_log_id: None,
            live_output: false,
            gate,
            stats: SessionStats::default(),
            client_behind: false,
            text_run: None,
            milestones: Milestones::default(),
            event_gaps: None,
        }
    }

    /// A machine that resumes after the logged event `after`: the ack and
    /// everything up to `after` were delivered before.
    pub fn resuming(mut self, after: LogId) -> Self {
        self.phase = Phase::Streaming;
        self.last_log_id = Some(after);
        self
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Records the time between consecutive worker events (after the ack)
    /// in `histogram`; only the creating stream does, so none counts twice.
    pub fn record_event_gaps(&mut self, histogram: metrics::Histogram) {
        self.event_gaps = Some(histogram);
    }

    pub fn milestones(&self) -> Milestones {
        self.milestones
    }

    /// How long ago the session was created.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// The frames that open the stream in its format (before any event).
    pub fn start(&mut self, out: &mut BytesMut) {
        self.encoder.start(out);
    }

    /// Where a log read must continue from.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.last_log_id
    }

    /// Whether live-only output was forwarded (see the module doc).
    pub fn has_live_output(&self) -> bool {
        self.live_output
    }

    /// Tells the machine whether its client is behind. While it is, plain
    /// text pieces are merged instead of written; once it has caught up,
    /// what was merged is written to `out`.
    pub fn pace(&mut self, client_behind: bool, now: Instant, out: &mut BytesMut) {
        self.client_behind = client_behind;
        if !client_behind {
            self.write_text_run(now, out);
        }
    }

    /// The events held before the ack, releasing their share of the budget.
    fn take_held(&mut self) -> Vec<Event> {
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
    }

    /// Bytes held for this stream's client before the ack.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Bytes of text forwarded but not written yet (merged pieces).
    pub fn unwritten_bytes(&self) -> usize {
        self.text_run.as_ref().map_or(0, TextRun::len)
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished(_))
    }

    /// Feeds one raw channel message: one event, or a batch of them (a JSON
    /// array, as the Redis log publishes the events one call appended),
    /// fed one by one.
    pub fn on_message(&mut self, raw: &[u8], now: Instant, out: &mut BytesMut) -> Progress {
        if let Some(batch) = protocol::batch(raw) {
            for event in batch {
                let progress = self.on_event_message(event.get().as_bytes(), now, out);
                if progress != Progress::Continue {
                    return progress;
                }
            }
            return Progress::Continue;
        }
        self.on_event_message(raw, now, out)
    }

    fn on_event_message(&mut self, raw: &[u8], now: Instant, out: &mut BytesMut) -> Progress {
        if let Phase::Finished(outcome) = self.phase {
            return Progress::Finished(outcome);
        }
        match Event::parse(raw, self.config.max_event_bytes) {
            Ok(event) => self.on_event(event, now, out),
            Err(reason) => {
                self.count_malformed(reason, raw.len());
                Progress::Continue
            }
        }
    }

    /// Feeds one entry read from the session's log.
    pub fn on_entry(&mut self, entry: &LogEntry, now: Instant, out: &mut BytesMut) -> Progress {
        if let Phase::Finished(outcome) = self.phase {
            return Progress::Finished(outcome);
        }
        match Event::parse(&entry.event, self.config.max_event_bytes) {
            Ok(event) => self.on_event(event.logged_as(entry.id), now, out),
            Err(reason) => {
                // Past it all the same, or every read would return it again.
                self.last_log_id = self.last_log_id.max(Some(entry.id));
                self.count_malformed(reason, entry.event.len());
                Progress::Continue
            }
        }
    }

    fn on_event(&mut self, event: Event, now: Instant, out: &mut BytesMut) -> Progress {
        if let Some(id) = event.log_id() {
            if self.last_log_id.is_some_and(|last| id <= last) {
                self.stats.already_seen += 1;
                return Progress::Continue;
            }
            self.last_log_id = Some(id);
        } else if event.event_type() != event_type::WORKER_HEARTBEAT {
            match self.gate.admit(event.event_type(), event.attempt(), now) {
                Admission::Accept | Admission::Unbound => {}
                // A second ack while the first attempt serves: dropped like
                // any other attempt's event.
                Admission::Foreign | Admission::Busy => return self.count_foreign(),
                Admission::Lost => {
                    return Progress::Expired(Failure::new(
                        ErrorCode::WorkerLost,
                        "the job was delivered again after its first attempt had started answering",
                    ));
                }
            }
        }
        if let (Phase::Streaming, Some(gaps)) = (self.phase, &self.event_gaps) {
            gaps.record(now.saturating_duration_since(self.last_event));
        }
        self.last_event = now;
        match (self.phase, event.event_type()) {
            (_, event_type::WORKER_HEARTBEAT) => {
                self.worker_heartbeats = true;
                Progress::Continue
            }
            (Phase::AwaitingAck, event_type::WORKER_ACK) => {
                self.phase = Phase::Streaming;
                self.milestones.acked = Some(self.age(now));
                self.forward(&event, now, out);
                for held in self.take_held() {
                    // Live-only events held before the ack: only the acked attempt's.
                    if self.gate.admit(held.event_type(), held.attempt(), now) != Admission::Accept
                    {
                        self.count_foreign();
                        continue;
                    }
                    if let Progress::Finished(outcome) = self.forward(&held, now, out) {
                        return Progress::Finished(outcome);
                    }
                }
                Progress::Continue
            }
            // A worker that fails before acking has still failed: say so now
            // rather than after the ack timeout — unless a terminal event it
            // sent earlier is held: the first terminal event is the end.
            (Phase::AwaitingAck, event_type::ERROR) => {
                for held in self.take_held() {
                    if let Progress::Finished(outcome) = self.forward(&held, now, out) {
                        return Progress::Finished(outcome);
                    }
                }
                self.forward(&event, now, out)
            }
            (Phase::AwaitingAck, _) => {
                if self.held_bytes + event.heap_bytes() > self.config.buffer_bytes {
                    // The worker's fault, not the client's.
                    return Progress::Expired(Failure::new(
                        ErrorCode::TooManyEvents,
                        "more events before worker_ack than the stream's buffer holds",
                    ));
                }
                self.held_bytes += event.heap_bytes();
                self.held.push(event);
                Progress::Continue
            }
            (_, event_type::WORKER_ACK) => {
                // A redelivered job can make a second worker ack; the client
                // must see exactly one.
                self.stats.duplicate_acks += 1;
                Progress::Continue
            }
            // The terminal event always gets through.
            _ if self.stats.forwarded >= self.config.max_events && !event.is_terminal() => {
                Progress::Expired(Failure::new(
                    ErrorCode::TooManyEvents,
                    format!(
                        "the session exceeded max_events of {}",
                        self.config.max_events
                    ),
                ))
            }
            _ => self.forward(&event, now, out),
        }
    }

    /// The broker link went down (`false`) or came back with this session
    /// resubscribed (`true`).
    pub fn on_link(&mut self, up: bool, now: Instant) {
        if up {
            self.link_lost_at = None;
        } else {
            self.link_lost_at.get_or_insert(now);
        }
    }

    /// The earliest instant at which [`Self::on_timer`] has something to do.
    pub fn deadline(&self) -> Instant {
        let mut deadline =
            (self.started + self.config.max_duration).min(self.last_write + self.config.heartbeat);
        if let Some(lost) = self.link_lost_at {
            deadline = deadline.min(lost + self.config.ack_timeout);
        }
        match self.phase {
            Phase::AwaitingAck => deadline.min(self.started + self.config.ack_timeout),
            Phase::Streaming => {
                let mut d = deadline.min(self.last_event + self.config.idle_timeout);
                if self.worker_heartbeats {
                    d = d.min(self.last_event + self.config.worker_heartbeat * 3);
                }
                d
            }
            Phase::Finished(_) => deadline,
        }
    }

    /// Applies every deadline that has passed at `now`: a ping, or the
    /// failure that ends the session.
    pub fn on_timer(&mut self, now: Instant, out: &mut BytesMut) -> Progress {
        if let Phase::Finished(outcome) = self.phase {
            return Progress::Finished(outcome);
        }
        if let Some(failure) = self.expired(now) {
            return Progress::Expired(failure);
        }
        if now >= self.last_write + self.config.heartbeat {
            out.extend_from_slice(sse::PING);
            self.last_write = now;
        }
        Progress::Continue
    }

    /// The deadline that has passed at `now`, if any, most important first.
    fn expired(&self, now: Instant) -> Option<Failure> {
        let cfg = &self.config;
        if now >= self.started + cfg.max_duration {
            let msg = format!(
                "session exceeded max_duration of {}s",
                cfg.max_duration.as_secs_f64()
            );
            return Some(Failure::new(ErrorCode::SessionTimeout, msg));
        }
        if self
            .link_lost_at
            .is_some_and(|lost| now >= lost + cfg.ack_timeout)
        {
            return Some(Failure::new(
                ErrorCode::BrokerUnavailable,
                "lost the event broker and could not resubscribe",
            ));
        }
        match self.phase {
            Phase::AwaitingAck if now >= self.started + cfg.ack_timeout => {
                let msg = format!(
                    "no worker acknowledged the job within {}s",
                    cfg.ack_timeout.as_secs_f64()
                );
                Some(Failure::new(ErrorCode::AckTimeout, msg))
            }
            Phase::Streaming
                if self.worker_heartbeats && now >= self.last_event + cfg.worker_heartbeat * 3 =>
            {
                Some(Failure::new(
                    ErrorCode::WorkerLost,
                    "the worker stopped sending heartbeats",
                ))
            }
            Phase::Streaming if now >= self.last_event + cfg.idle_timeout => {
                let msg = format!(
                    "no event from the worker for {}s",
                    cfg.idle_timeout.as_secs_f64()
                );
                Some(Failure::new(ErrorCode::IdleTimeout, msg))
            }
            _ => None,
        }
    }

    /// Ends the session at once with an `error` frame of `failure` that is
    /// not in the log (no `id:`).
    pub fn fail(&mut self, failure: &Failure, now: Instant, out: &mut BytesMut) -> Progress {
        if let Phase::Finished(outcome) = self.phase {
            return Progress::Finished(outcome);
        }
        self.write(&failure.event(), now, out);
        self.finish(Outcome::Failed(failure.code))
    }

    /// Ends this stream without a frame: its reader should reconnect (a
    /// follower of a gateway that shuts down resumes on another one).
    pub fn close(&mut self, code: ErrorCode) -> Progress {
        if let Phase::Finished(outcome) = self.phase {
            return Progress::Finished(outcome);
        }
        self.finish(Outcome::Failed(code))
    }

    fn forward(&mut self, event: &Event, now: Instant, out: &mut BytesMut) -> Progress {
        if !self.merge(event, now, out) {
            self.write(event, now, out);
        }
        self.stats.forwarded += 1;
        if self.milestones.first_content.is_none()
            && matches!(
                event.event_type(),
                event_type::THOUGHT | event_type::TOOL_CALL_START | event_type::ANSWER
            )
        {
            self.milestones.first_content = Some(self.age(now));
        }
        if event.log_id().is_none() && event.event_type() != event_type::WORKER_ACK {
            self.live_output = true;
        }
        match event.event_type() {
            event_type::ANSWER_END => self.finish(Outcome::Completed),
            event_type::ERROR => self.finish(error_outcome(event)),
            event_type::INTERRUPT => self.finish(Outcome::Interrupted),
            _ => Progress::Continue,
        }
    }

    /// Adds `event` to the text run if the client is behind and it is a
    /// plain text piece; `false`: it must be written.
    fn merge(&mut self, event: &Event, now: Instant, out: &mut BytesMut) -> bool {
        if !self.client_behind {
            return false;
        }
        if self.text_run.as_mut().is_some_and(|run| run.absorb(event)) {
            // Written once it is a chunk's worth: one large frame would cost
            // its text twice over while it is encoded.
            if self.unwritten_bytes() >= TEXT_RUN_MAX_BYTES {
                self.write_text_run(now, out);
            }
            return true;
        }
        let Some(run) = TextRun::start(event) else {
            return false;
        };
        // A run of the other kind is written first.
        self.write_text_run(now, out);
        self.text_run = Some(run);
        true
    }

    /// Writes `event`, after the text merged before it.
    fn write(&mut self, event: &Event, now: Instant, out: &mut BytesMut) {
        self.write_text_run(now, out);
        self.encoder.event(event, out);
        self.last_write = now;
    }

    fn write_text_run(&mut self, now: Instant, out: &mut BytesMut) {
        if let Some(run) = self.text_run.take() {
            self.encoder.event(&run.into_event(), out);
            self.last_write = now;
        }
    }

    fn finish(&mut self, outcome: Outcome) -> Progress {
        self.phase = Phase::Finished(outcome);
        self.held = Vec::new();
        Progress::Finished(outcome)
    }

    fn count_foreign(&mut self) -> Progress {
        self.stats.foreign += 1;
        metrics::counter!(crate::metrics::FOREIGN_EVENTS).increment(1);
        Progress::Continue
    }

    fn count_malformed(&mut self, reason: MalformedEvent, len: usize) {
        self.stats.malformed += 1;
        metrics::counter!(crate::metrics::MALFORMED_EVENTS, "reason" => reason.label())
            .increment(1);
        tracing::warn!(
            reason = reason.label(),
            bytes = len,
            "skipped a malformed message: {reason}"
        );
    }
}

/// The outcome an `error` event stands for: the gateway's own codes by
/// name (they may come from another gateway through the log), anything else
/// as the worker's error.
fn error_outcome(event: &Event) -> Outcome {
    match event.error_code() {
        Some(ErrorCode::WorkerError) | None => Outcome::WorkerError,
        Some(code) => Outcome::Failed(code),
    }
}

#[cfg(test)]
mod tests;
