//! The attempt rule (PROTOCOL §4): which delivery of a job owns a session.
//!
//! A job may run more than once (a crashed worker's job reclaimed, a Kafka
//! rebalance, a worker that stopped and handed its partitions over). Each run
//! is an *attempt*; its events carry its id in the reserved `attempt` field
//! (no id at all counts as one attempt). The session belongs to the attempt
//! that acked first. Another attempt's ack is judged by whether the bound
//! attempt is still *live* — it acked, sent output or a heartbeat within the
//! liveness window:
//!
//! * live: the new ack is refused as [`Admission::Busy`]; the job is being
//!   served, and the new attempt waits or steps aside;
//! * stale, before any output: the new attempt takes over;
//! * stale, after output: the bound attempt was given up mid-answer, and
//!   splicing the second answer onto the first would corrupt it, so the
//!   session is lost instead.
//!
//! Activity is recorded at a resolution of 1/32 of the window (the Redis log
//! writes it at most that often: each write costs Redis CPU on the hot
//! path), and the window counts from the last recorded activity plus that
//! resolution, so a live attempt is never judged stale early.
//!
//! [`AttemptGate`] is that rule as a pure state machine, given the time. The
//! embedded log and the gateway's live-only path run it in Rust; the Redis
//! log runs the same rule in its server-side function
//! (`sse-bridge-redis/src/functions.lua`, on Redis's clock), and the log
//! conformance tests hold both to the same outcomes.

use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::event_type;

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// From the attempt the session belongs to (or an ack that binds it).
    Accept,
    /// No attempt has acked yet: the log refuses it, the live path holds it.
    Unbound,
    /// From an attempt the session does not belong to: dropped and counted.
    Foreign,
    /// Another attempt's ack while the bound attempt is live: refused, the
    /// session goes on with the bound attempt.
    Busy,
    /// Another attempt acked after output of a stale bound attempt: the
    /// session ends with `worker_lost`.
    Lost,
}

/// Tracks the attempt a session is bound to, whether it produced output and
/// when it was last active.
#[derive(Debug, Clone)]
pub struct AttemptGate {
    bound: Option<Box<str>>,
    output: bool,
    /// When the bound attempt last acked, sent output or a heartbeat.
    active: Option<Instant>,
    /// How long after its last activity the bound attempt counts as live.
    live: Duration,
}

impl AttemptGate {
    /// A gate whose bound attempt counts as live for `live` after its last
    /// activity; [`Duration::ZERO`]: never (every new ack is judged by output alone).
    pub fn new(live: Duration) -> Self {
        AttemptGate {
            bound: None,
            output: false,
            active: None,
            live,
        }
    }

    /// Classifies one event of `event_type` sent by `attempt` at `now`.
    pub fn admit(&mut self, event_type: &str, attempt: Option<&str>, now: Instant) -> Admission {
        let attempt = attempt.unwrap_or("");
        let is_ack = event_type == event_type::WORKER_ACK;
        match self.bound.as_deref() {
            None if is_ack => self.bind(attempt, now),
            None => Admission::Unbound,
            Some(bound) if bound == attempt => {
                if !is_ack && event_type != event_type::WORKER_HEARTBEAT {
                    self.output = true;
                }
                self.mark_active(now);
                Admission::Accept
            }
            Some(_) if !is_ack => Admission::Foreign,
            Some(_) if self.is_live(now) => Admission::Busy,
            Some(_) if self.output => Admission::Lost,
            Some(_) => self.bind(attempt, now),
        }
    }

    fn bind(&mut self, attempt: &str, now: Instant) -> Admission {
        self.bound = Some(attempt.into());
        self.active = Some(now);
        Admission::Accept
    }

    /// How often activity is recorded at most (1/32 of the window).
    fn resolution(&self) -> Duration {
        self.live / 32
    }

    fn mark_active(&mut self, now: Instant) {
        let due = self
            .active
            .is_none_or(|active| now.saturating_duration_since(active) >= self.resolution());
        if due {
            self.active = Some(now);
        }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.active.is_some_and(|active| {
            now.saturating_duration_since(active) < self.live + self.resolution()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Admission::*;

    const ACK: &str = event_type::WORKER_ACK;
    const PIECE: &str = event_type::ANSWER;
    const BEAT: &str = event_type::WORKER_HEARTBEAT;
    const LIVE: Duration = Duration::from_secs(15);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn first_ack_binds_and_other_attempts_are_foreign() {
        let (mut gate, t) = (AttemptGate::new(LIVE), Instant::now());
        assert_eq!(gate.admit(PIECE, Some("a"), t), Unbound);
        assert_eq!(gate.admit(ACK, Some("a"), t), Accept);
        assert_eq!(gate.admit(PIECE, Some("a"), t), Accept);
        assert_eq!(gate.admit(PIECE, Some("b"), t), Foreign);
        assert_eq!(gate.admit(PIECE, None, t), Foreign);
        assert_eq!(
            gate.admit(ACK, Some("a"), t),
            Accept,
            "a repeated ack is not a new attempt"
        );
    }

    #[test]
    fn a_new_ack_is_busy_while_the_bound_attempt_is_live() {
        let (mut gate, t) = (AttemptGate::new(LIVE), Instant::now());
        gate.admit(ACK, Some("a"), t);
        assert_eq!(
            gate.admit(ACK, Some("b"), t + secs(14)),
            Busy,
            "acked 14 s ago"
        );
        gate.admit(PIECE, Some("a"), t + secs(10));
        assert_eq!(
            gate.admit(ACK, Some("b"), t + secs(24)),
            Busy,
            "output 14 s ago"
        );
        gate.admit(BEAT, Some("a"), t + secs(20));
        assert_eq!(
            gate.admit(ACK, Some("b"), t + secs(34)),
            Busy,
            "heartbeat 14 s ago"
        );
        assert_eq!(
            gate.admit(PIECE, Some("a"), t + secs(34)),
            Accept,
            "a busy refusal changes nothing"
        );
    }

    #[test]
    fn a_stale_attempt_is_taken_over_before_output_and_loses_the_session_after() {
        let (mut gate, t) = (AttemptGate::new(LIVE), Instant::now());
        gate.admit(ACK, Some("a"), t);
        gate.admit(BEAT, Some("a"), t + secs(5));
        assert_eq!(
            gate.admit(ACK, Some("b"), t + secs(21)),
            Accept,
            "heartbeats are not output"
        );
        assert_eq!(gate.admit(PIECE, Some("a"), t + secs(21)), Foreign);
        assert_eq!(gate.admit(PIECE, Some("b"), t + secs(22)), Accept);
        assert_eq!(gate.admit(ACK, Some("c"), t + secs(37)), Busy);
        assert_eq!(gate.admit(ACK, Some("c"), t + secs(38)), Lost);
    }

    #[test]
    fn activity_is_recorded_at_a_resolution_of_a_thirty_second_of_the_window() {
        let (mut gate, t) = (AttemptGate::new(LIVE), Instant::now());
        let resolution = LIVE / 32; // 468.75 ms
        gate.admit(ACK, Some("a"), t);
        gate.admit(PIECE, Some("a"), t + resolution / 2);
        // The piece was not recorded: live for the window plus the
        // resolution after the ack, so not stale before the piece's window.
        let after_ack = t + LIVE + resolution;
        assert_eq!(
            gate.admit(ACK, Some("b"), after_ack - Duration::from_millis(1)),
            Busy
        );
        assert_eq!(gate.admit(ACK, Some("b"), after_ack), Lost);
        let (mut gate, t) = (AttemptGate::new(LIVE), Instant::now());
        gate.admit(ACK, Some("a"), t);
        gate.admit(PIECE, Some("a"), t + resolution);
        let after_piece = t + resolution + LIVE + resolution;
        assert_eq!(
            gate.admit(ACK, Some("b"), after_piece - Duration::from_millis(1)),
            Busy
        );
        assert_eq!(gate.admit(ACK, Some("b"), after_piece), Lost);
    }

    #[test]
    fn without_a_liveness_window_only_output_decides() {
        let (mut gate, t) = (AttemptGate::new(Duration::ZERO), Instant::now());
        gate.admit(ACK, Some("a"), t);
        assert_eq!(gate.admit(ACK, Some("b"), t), Accept);
        gate.admit(PIECE, Some("b"), t);
        assert_eq!(gate.admit(ACK, Some("c"), t), Lost);
    }

    #[test]
    fn workers_without_attempt_ids_are_one_attempt() {
        let (mut gate, t) = (AttemptGate::new(LIVE), Instant::now());
        assert_eq!(gate.admit(ACK, None, t), Accept);
        assert_eq!(gate.admit(PIECE, None, t), Accept);
        assert_eq!(gate.admit(ACK, None, t), Accept);
    }
}
