//! The idempotent-producer rule (PROTOCOL.md §5.2.1), pure: given what a
//! stream knows of a producer and a request's epoch and sequence, what to
//! do. The memory store calls it; `streams.lua` is its Redis twin, and both
//! are checked against the same cases (the conformance suite).
//!
//! A producer's epoch is its incarnation: a higher epoch takes the producer
//! over (and must start at sequence 0), a lower one is a zombie and is
//! fenced (`403`). Within an epoch sequences go up by one per request: a
//! repeat is a duplicate (`204`, nothing appended), a jump is a gap (`409`).

/// What a stream remembers of one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerState {
    pub epoch: u64,
    /// The highest sequence accepted in `epoch`.
    pub last_seq: u64,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerCheck {
    /// Append; afterwards the producer's state is [`ProducerCheck::accepted`].
    Accept,
    /// Already appended: answer success without appending.
    Duplicate { last_seq: u64 },
    /// A zombie: the producer has moved on to `current`.
    StaleEpoch { current: u64 },
    /// A new epoch that does not start at sequence 0.
    NewEpochNotAtZero,
    /// Requests are missing in between.
    Gap { expected: u64, received: u64 },
}

/// Decides a request of `(epoch, seq)` against `state` (`None`: unknown producer).
pub fn check(state: Option<ProducerState>, epoch: u64, seq: u64) -> ProducerCheck {
    let Some(state) = state else {
        return match seq {
            0 => ProducerCheck::Accept,
            _ => ProducerCheck::Gap {
                expected: 0,
                received: seq,
            },
        };
    };
    if epoch < state.epoch {
        return ProducerCheck::StaleEpoch {
            current: state.epoch,
        };
    }
    if epoch > state.epoch {
        return match seq {
            0 => ProducerCheck::Accept,
            _ => ProducerCheck::NewEpochNotAtZero,
        };
    }
    if seq <= state.last_seq {
        ProducerCheck::Duplicate {
            last_seq: state.last_seq,
        }
    } else if seq == state.last_seq + 1 {
        ProducerCheck::Accept
    } else {
        ProducerCheck::Gap {
            expected: state.last_seq + 1,
            received: seq,
        }
    }
}

impl ProducerCheck {
    /// The producer's state once an accepted request was applied.
    pub fn accepted(epoch: u64, seq: u64) -> ProducerState {
        ProducerState {
            epoch,
            last_seq: seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Option<ProducerState> = Some(ProducerState {
        epoch: 2,
        last_seq: 5,
    });

    #[test]
    fn a_new_producer_starts_at_zero_in_any_epoch() {
        assert_eq!(check(None, 0, 0), ProducerCheck::Accept);
        assert_eq!(check(None, 7, 0), ProducerCheck::Accept);
        assert_eq!(
            check(None, 0, 3),
            ProducerCheck::Gap {
                expected: 0,
                received: 3
            }
        );
    }

    #[test]
    fn within_an_epoch_sequences_step_by_one() {
        assert_eq!(check(S, 2, 6), ProducerCheck::Accept);
        assert_eq!(check(S, 2, 5), ProducerCheck::Duplicate { last_seq: 5 });
        assert_eq!(check(S, 2, 0), ProducerCheck::Duplicate { last_seq: 5 });
        assert_eq!(
            check(S, 2, 8),
            ProducerCheck::Gap {
                expected: 6,
                received: 8
            }
        );
    }

    #[test]
    fn epochs_fence_zombies_and_take_over_at_zero() {
        assert_eq!(check(S, 1, 6), ProducerCheck::StaleEpoch { current: 2 });
        assert_eq!(check(S, 3, 0), ProducerCheck::Accept);
        assert_eq!(check(S, 3, 1), ProducerCheck::NewEpochNotAtZero);
    }
}
