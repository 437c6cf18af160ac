//! The attempt rule (PROTOCOL §4): which delivery of a job owns a session.
//!
//! A job may run more than once (a crashed worker's job reclaimed, a Kafka
//! rebalance). Each run is an *attempt*; its events carry its id in the
//! reserved `attempt` field (no id at all counts as one attempt). The session
//! belongs to the attempt that acked last *before any output*; once output
//! has been forwarded, another attempt's ack means the first one was given
//! up mid-answer, and splicing the second answer onto the first would corrupt
//! it, so the session is lost instead.
//!
//! [`AttemptGate`] is that rule as a pure state machine. The embedded log and
//! the gateway's live-only path run it in Rust; the Redis log runs the same
//! rule in its server-side function (`sse-bridge-redis/src/functions.lua`),
//! and the log conformance tests hold both to the same outcomes.

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
    /// Another attempt acked after output: the session ends with `worker_lost`.
    Lost,
}

/// Tracks the attempt a session is bound to and whether it produced output.
#[derive(Debug, Default, Clone)]
pub struct AttemptGate {
    bound: Option<Box<str>>,
    output: bool,
}

impl AttemptGate {
    /// Classifies one event of `event_type` sent by `attempt`.
    pub fn admit(&mut self, event_type: &str, attempt: Option<&str>) -> Admission {
        let attempt = attempt.unwrap_or("");
        match (self.bound.as_deref(), event_type) {
            (Some(bound), event_type::WORKER_ACK) if bound != attempt && self.output => {
                Admission::Lost
            }
            (_, event_type::WORKER_ACK) => {
                self.bound = Some(attempt.into());
                Admission::Accept
            }
            (None, _) => Admission::Unbound,
            (Some(bound), _) if bound != attempt => Admission::Foreign,
            (Some(_), kind) => {
                if kind != event_type::WORKER_HEARTBEAT {
                    self.output = true;
                }
                Admission::Accept
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Admission::*;

    const ACK: &str = event_type::WORKER_ACK;
    const PIECE: &str = event_type::ANSWER;
    const BEAT: &str = event_type::WORKER_HEARTBEAT;

    #[test]
    fn first_ack_binds_and_other_attempts_are_foreign() {
        let mut gate = AttemptGate::default();
        assert_eq!(gate.admit(PIECE, Some("a")), Unbound);
        assert_eq!(gate.admit(ACK, Some("a")), Accept);
        assert_eq!(gate.admit(PIECE, Some("a")), Accept);
        assert_eq!(gate.admit(PIECE, Some("b")), Foreign);
        assert_eq!(gate.admit(PIECE, None), Foreign);
        assert_eq!(
            gate.admit(ACK, Some("a")),
            Accept,
            "a repeated ack is not a new attempt"
        );
    }

    #[test]
    fn a_new_attempt_takes_over_before_output_and_loses_the_session_after() {
        let mut gate = AttemptGate::default();
        gate.admit(ACK, Some("a"));
        gate.admit(BEAT, Some("a"));
        assert_eq!(
            gate.admit(ACK, Some("b")),
            Accept,
            "heartbeats are not output"
        );
        assert_eq!(gate.admit(PIECE, Some("a")), Foreign);
        assert_eq!(gate.admit(PIECE, Some("b")), Accept);
        assert_eq!(gate.admit(ACK, Some("c")), Lost);
    }

    #[test]
    fn workers_without_attempt_ids_are_one_attempt() {
        let mut gate = AttemptGate::default();
        assert_eq!(gate.admit(ACK, None), Accept);
        assert_eq!(gate.admit(PIECE, None), Accept);
        assert_eq!(gate.admit(ACK, None), Accept);
    }
}
