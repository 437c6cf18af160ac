//! The session lifecycle as a state machine, free of I/O (PROTOCOL §3.4–3.11).
//!
//! The machine is fed channel messages, broker-link changes and the clock,
//! and appends SSE frames to an output buffer. It never sleeps or reads a
//! socket itself: [`super::stream`] drives it, the unit tests below drive it
//! by hand with made-up instants.
//!
//! ```text
//!  AwaitingAck ──worker_ack──▶ Streaming ──FinalAnswerStreamEnd/error──▶ Finished
//!      │  (holds early events,       │  (forwards, drops duplicate acks,
//!      │   ack_timeout)              │   idle_timeout, worker_lost)
//!      └───────── any deadline, overflow, shutdown ─────────▶ Finished(error)
//! ```

use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use crate::protocol::{ErrorCode, Event, MalformedEvent, event_type};
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
    /// Events held before `worker_ack` at most; more ends the session.
    pub max_held_events: usize,
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
            max_held_events: 10_000,
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `FinalAnswerStreamEnd` was forwarded.
    Completed,
    /// The worker sent an `error` event.
    WorkerError,
    /// The gateway ended it with an `error` event of this code.
    Failed(ErrorCode),
}

impl Outcome {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::WorkerError => "worker_error",
            Outcome::Failed(code) => code.as_str(),
        }
    }
}

/// What the caller should do after feeding the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Continue,
    /// The terminal frame has been written; end the response.
    Finished(Outcome),
}

/// Counters of one session, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub forwarded: u64,
    pub malformed: u64,
    pub duplicate_acks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingAck,
    Streaming,
    Finished(Outcome),
}

/// One session's state.
#[derive(Debug)]
pub struct SessionMachine {
    config: SessionConfig,
    started: Instant,
    phase: Phase,
    held: Vec<Event>,
    last_event: Instant,
    last_write: Instant,
    worker_heartbeats: bool,
    link_lost_at: Option<Instant>,
    stats: SessionStats,
}

impl SessionMachine {
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        SessionMachine {
            config,
            started: now,
            phase: Phase::AwaitingAck,
            held: Vec::new(),
            last_event: now,
            last_write: now,
            worker_heartbeats: false,
            link_lost_at: None,
            stats: SessionStats::default(),
        }
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Feeds one raw channel message.
    pub fn on_message(&mut self, raw: &[u8], now: Instant, out: &mut BytesMut) -> Progress {
        if let Phase::Finished(outcome) = self.phase {
            return Progress::Finished(outcome);
        }
        let event = match Event::parse(raw, self.config.max_event_bytes) {
            Ok(event) => event,
            Err(reason) => {
                self.count_malformed(reason, raw.len());
                return Progress::Continue;
            }
        };
        self.last_event = now;
        match (self.phase, event.event_type()) {
            (_, event_type::WORKER_HEARTBEAT) => {
                self.worker_heartbeats = true;
                Progress::Continue
            }
            (Phase::AwaitingAck, event_type::WORKER_ACK) => {
                self.phase = Phase::Streaming;
                self.forward(&event, now, out);
                let held = std::mem::take(&mut self.held);
                for event in &held {
                    if let Progress::Finished(outcome) = self.forward(event, now, out) {
                        return Progress::Finished(outcome);
                    }
                }
                Progress::Continue
            }
            // A worker that fails before acking has still failed: say so now
            // rather than after the ack timeout.
            (Phase::AwaitingAck, event_type::ERROR) => {
                for held in std::mem::take(&mut self.held) {
                    self.write(&held, now, out);
                }
                self.forward(&event, now, out)
            }
            (Phase::AwaitingAck, _) => {
                if self.held.len() >= self.config.max_held_events {
                    return self.fail(
                        ErrorCode::SlowConsumer,
                        "too many events before worker_ack",
                        now,
                        out,
                    );
                }
                self.held.push(event);
                Progress::Continue
            }
            (_, event_type::WORKER_ACK) => {
                // A redelivered job can make a second worker ack; the client
                // must see exactly one.
                self.stats.duplicate_acks += 1;
                Progress::Continue
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

    /// Applies every deadline that has passed at `now`.
    pub fn on_timer(&mut self, now: Instant, out: &mut BytesMut) -> Progress {
        if let Phase::Finished(outcome) = self.phase {
            return Progress::Finished(outcome);
        }
        let cfg = self.config;
        if now >= self.started + cfg.max_duration {
            let msg = format!(
                "session exceeded max_duration of {}s",
                cfg.max_duration.as_secs_f64()
            );
            return self.fail(ErrorCode::SessionTimeout, &msg, now, out);
        }
        if self
            .link_lost_at
            .is_some_and(|lost| now >= lost + cfg.ack_timeout)
        {
            return self.fail(
                ErrorCode::BrokerUnavailable,
                "lost the event broker and could not resubscribe",
                now,
                out,
            );
        }
        match self.phase {
            Phase::AwaitingAck if now >= self.started + cfg.ack_timeout => {
                let msg = format!(
                    "no worker acknowledged the job within {}s",
                    cfg.ack_timeout.as_secs_f64()
                );
                return self.fail(ErrorCode::AckTimeout, &msg, now, out);
            }
            Phase::Streaming
                if self.worker_heartbeats && now >= self.last_event + cfg.worker_heartbeat * 3 =>
            {
                return self.fail(
                    ErrorCode::WorkerLost,
                    "the worker stopped sending heartbeats",
                    now,
                    out,
                );
            }
            Phase::Streaming if now >= self.last_event + cfg.idle_timeout => {
                let msg = format!(
                    "no event from the worker for {}s",
                    cfg.idle_timeout.as_secs_f64()
                );
                return self.fail(ErrorCode::IdleTimeout, &msg, now, out);
            }
            _ => {}
        }
        if now >= self.last_write + cfg.heartbeat {
            out.extend_from_slice(sse::PING);
            self.last_write = now;
        }
        Progress::Continue
    }

    /// Ends the session with an `error` event of `code` (overflow, shutdown, lost bus).
    pub fn fail(
        &mut self,
        code: ErrorCode,
        message: &str,
        now: Instant,
        out: &mut BytesMut,
    ) -> Progress {
        if let Phase::Finished(outcome) = self.phase {
            return Progress::Finished(outcome);
        }
        self.write(&Event::error(code, message), now, out);
        self.finish(Outcome::Failed(code))
    }

    fn forward(&mut self, event: &Event, now: Instant, out: &mut BytesMut) -> Progress {
        self.write(event, now, out);
        self.stats.forwarded += 1;
        match event.event_type() {
            event_type::ANSWER_END => self.finish(Outcome::Completed),
            event_type::ERROR => self.finish(Outcome::WorkerError),
            _ => Progress::Continue,
        }
    }

    fn write(&mut self, event: &Event, now: Instant, out: &mut BytesMut) {
        sse::write_event(out, event);
        self.last_write = now;
    }

    fn finish(&mut self, outcome: Outcome) -> Progress {
        self.phase = Phase::Finished(outcome);
        self.held = Vec::new();
        Progress::Finished(outcome)
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

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: &[u8] = br#"{"event_type":"worker_ack","payload":{}}"#;
    const END: &[u8] = br#"{"event_type":"FinalAnswerStreamEnd","payload":{}}"#;

    fn piece(c: &str) -> Vec<u8> {
        format!(r#"{{"event_type":"FinalAnswerStream","payload":{{"char":"{c}"}}}}"#).into_bytes()
    }

    fn frames(out: &BytesMut) -> Vec<String> {
        std::str::from_utf8(out)
            .unwrap()
            .split_terminator("\n\n")
            .map(str::to_owned)
            .collect()
    }

    fn machine() -> (SessionMachine, Instant) {
        let t0 = Instant::now();
        (SessionMachine::new(SessionConfig::default(), t0), t0)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn early_events_are_held_until_the_ack_then_delivered_in_order() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        assert_eq!(m.on_message(&piece("a"), t0, &mut out), Progress::Continue);
        assert_eq!(m.on_message(&piece("b"), t0, &mut out), Progress::Continue);
        assert!(out.is_empty());
        assert_eq!(m.on_message(ACK, t0, &mut out), Progress::Continue);
        let f = frames(&out);
        assert_eq!(f.len(), 3);
        assert!(f[0].contains("worker_ack"));
        assert!(f[1].contains(r#""char":"a""#) && f[2].contains(r#""char":"b""#));
    }

    #[test]
    fn terminal_event_held_before_ack_finishes_right_after_it() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        m.on_message(&piece("a"), t0, &mut out);
        m.on_message(END, t0, &mut out);
        assert_eq!(
            m.on_message(ACK, t0, &mut out),
            Progress::Finished(Outcome::Completed)
        );
        assert_eq!(frames(&out).len(), 3);
        // Nothing is written after the terminal frame.
        let len = out.len();
        m.on_message(&piece("late"), t0, &mut out);
        assert_eq!(out.len(), len);
    }

    #[test]
    fn no_ack_in_time_is_one_ack_timeout_error() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        assert_eq!(m.deadline(), t0 + secs(10));
        assert_eq!(
            m.on_timer(t0 + secs(10), &mut out),
            Progress::Finished(Outcome::Failed(ErrorCode::AckTimeout))
        );
        let f = frames(&out);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].starts_with("data: ") && f[0].contains(r#""code":"ack_timeout""#),
            "{f:?}"
        );
    }

    #[test]
    fn worker_error_before_ack_ends_at_once() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        let err = br#"{"event_type":"error","payload":{"error":"boom","code":"worker_error"}}"#;
        assert_eq!(
            m.on_message(err, t0, &mut out),
            Progress::Finished(Outcome::WorkerError)
        );
    }

    #[test]
    fn duplicate_acks_are_dropped_and_heartbeats_not_forwarded() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        m.on_message(ACK, t0, &mut out);
        m.on_message(ACK, t0, &mut out);
        m.on_message(br#"{"event_type":"worker_heartbeat"}"#, t0, &mut out);
        m.on_message(
            br#"{"event_type":"Custom","payload":1,"x":2}"#,
            t0,
            &mut out,
        );
        let f = frames(&out);
        assert_eq!(f.len(), 2);
        assert_eq!(f[1], r#"data: {"event_type":"Custom","payload":1,"x":2}"#);
        assert_eq!(m.stats().duplicate_acks, 1);
    }

    #[test]
    fn malformed_messages_are_counted_and_skipped() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        m.on_message(ACK, t0, &mut out);
        for bad in [
            &b"not json"[..],
            b"[1,2]",
            br#"{"payload":{}}"#,
            &vec![b' '; 2 * 1024 * 1024],
        ] {
            assert_eq!(m.on_message(bad, t0, &mut out), Progress::Continue);
        }
        assert_eq!(m.stats().malformed, 4);
        assert_eq!(
            m.on_message(END, t0, &mut out),
            Progress::Finished(Outcome::Completed)
        );
        assert_eq!(frames(&out).len(), 2);
    }

    #[test]
    fn idle_timeout_counts_from_the_last_event() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        m.on_message(ACK, t0, &mut out);
        m.on_message(&piece("a"), t0 + secs(100), &mut out);
        assert_eq!(m.on_timer(t0 + secs(200), &mut out), Progress::Continue);
        assert_eq!(
            m.deadline(),
            t0 + secs(215),
            "the next ping comes before the idle deadline"
        );
        out.clear();
        assert_eq!(
            m.on_timer(t0 + secs(220), &mut out),
            Progress::Finished(Outcome::Failed(ErrorCode::IdleTimeout))
        );
        assert!(frames(&out)[0].contains("idle_timeout"));
    }

    #[test]
    fn max_duration_wins_over_a_chatty_worker() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        m.on_message(ACK, t0, &mut out);
        let mut t = t0;
        while t < t0 + secs(30 * 60) {
            t += secs(60);
            m.on_message(&piece("x"), t, &mut out);
        }
        out.clear();
        assert_eq!(
            m.on_timer(t, &mut out),
            Progress::Finished(Outcome::Failed(ErrorCode::SessionTimeout))
        );
    }

    #[test]
    fn heartbeating_worker_that_goes_silent_is_lost() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        m.on_message(ACK, t0, &mut out);
        m.on_message(
            br#"{"event_type":"worker_heartbeat"}"#,
            t0 + secs(1),
            &mut out,
        );
        // The ping at 15 s comes first, then the third missed interval at 16 s.
        assert_eq!(m.on_timer(t0 + secs(15), &mut out), Progress::Continue);
        assert_eq!(m.deadline(), t0 + secs(16));
        assert_eq!(
            m.on_timer(t0 + secs(16), &mut out),
            Progress::Finished(Outcome::Failed(ErrorCode::WorkerLost))
        );
    }

    #[test]
    fn pings_when_nothing_was_written_for_a_heartbeat() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        m.on_message(ACK, t0, &mut out);
        out.clear();
        assert_eq!(m.deadline(), t0 + secs(15));
        m.on_timer(t0 + secs(15), &mut out);
        assert_eq!(&out[..], sse::PING);
        assert_eq!(m.deadline(), t0 + secs(30));
    }

    #[test]
    fn broker_loss_ends_the_session_unless_the_link_returns_in_time() {
        let (mut m, t0) = machine();
        let mut out = BytesMut::new();
        m.on_message(ACK, t0, &mut out);
        m.on_link(false, t0 + secs(1));
        m.on_link(true, t0 + secs(5));
        assert_eq!(m.on_timer(t0 + secs(11), &mut out), Progress::Continue);
        m.on_link(false, t0 + secs(20));
        assert_eq!(m.on_timer(t0 + secs(29), &mut out), Progress::Continue);
        assert_eq!(m.deadline(), t0 + secs(30));
        out.clear();
        assert_eq!(
            m.on_timer(t0 + secs(30), &mut out),
            Progress::Finished(Outcome::Failed(ErrorCode::BrokerUnavailable))
        );
        assert!(frames(&out)[0].contains("broker_unavailable"));
    }

    #[test]
    fn too_many_held_events_end_the_session() {
        let t0 = Instant::now();
        let config = SessionConfig {
            max_held_events: 2,
            ..SessionConfig::default()
        };
        let mut m = SessionMachine::new(config, t0);
        let mut out = BytesMut::new();
        m.on_message(&piece("a"), t0, &mut out);
        m.on_message(&piece("b"), t0, &mut out);
        assert_eq!(
            m.on_message(&piece("c"), t0, &mut out),
            Progress::Finished(Outcome::Failed(ErrorCode::SlowConsumer))
        );
    }
}
