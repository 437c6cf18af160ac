//! Riding out a broker blip while a session starts or a follower joins.
//!
//! A broker link that is reconnecting — a Redis restart, a failover —
//! answers `Unavailable` for a moment. Each step of a start (claim, record,
//! subscribe, dispatch) and of a follow (metadata, subscribe) is tried again
//! after a short pause instead, within one budget (`--start-timeout`), so the
//! blip delays new sessions rather than refusing them. Every step is safe to
//! repeat: metadata and aliases are overwritten, a subscription is only
//! confirmed or absent, and a job dispatched twice runs once (PROTOCOL §4's
//! attempts).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::BrokerError;

/// Pauses between tries of a step while the broker is unavailable.
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const LONGEST_PAUSE: Duration = Duration::from_millis(250);

/// One start's (or follow's) budget, shared by its steps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Patience {
    deadline: Instant,
    timeout: Duration,
}

impl Patience {
    /// A budget of `timeout` from now.
    pub(super) fn new(timeout: Duration) -> Self {
        Patience {
            deadline: Instant::now() + timeout,
            timeout,
        }
    }

    /// Runs `step` until it succeeds, fails for good, or the budget is
    /// spent (`BrokerError::Timeout` then, or the last `Unavailable`).
    pub(super) async fn run<T, F, Fut>(&self, mut step: F) -> Result<T, BrokerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BrokerError>>,
    {
        let mut pause = FIRST_PAUSE;
        loop {
            match tokio::time::timeout_at(self.deadline, step()).await {
                Err(_) => return Err(BrokerError::Timeout(self.timeout)),
                Ok(Err(BrokerError::Unavailable(why))) => {
                    if Instant::now() + pause >= self.deadline {
                        return Err(BrokerError::Unavailable(why));
                    }
                    tracing::debug!("broker unavailable ({why}); trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                Ok(result) => return result,
            }
        }
    }
}
