//! How many streams may be live at once: per gateway (→ 503) and per
//! principal (→ 429). Each stream — a session's creator or a follower —
//! holds a [`Slot`] until it is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StartError;

/// The limits of one gateway process.
#[derive(Clone)]
pub struct SessionLimit {
    total: Arc<Semaphore>,
    per_principal: Option<Arc<PrincipalCounts>>,
}

struct PrincipalCounts {
    max: usize,
    live: Mutex<HashMap<String, usize>>,
}

/// One live stream's share of the limits; released on drop.
pub struct Slot {
    _total: OwnedSemaphorePermit,
    _principal: Option<PrincipalSlot>,
}

struct PrincipalSlot {
    counts: Arc<PrincipalCounts>,
    principal: String,
}

impl Drop for PrincipalSlot {
    fn drop(&mut self) {
        let mut live = self.counts.lock();
        if let Some(count) = live.get_mut(&self.principal) {
            *count -= 1;
            if *count == 0 {
                live.remove(&self.principal);
            }
        }
    }
}

impl PrincipalCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Every update is one statement: a poisoned map is still consistent.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionLimit {
    /// At most `max_sessions` streams in this process.
    pub fn new(max_sessions: usize) -> Self {
        SessionLimit {
            total: Arc::new(Semaphore::new(max_sessions.min(Semaphore::MAX_PERMITS))),
            per_principal: None,
        }
    }

    /// And at most `max` streams per principal.
    pub fn per_principal(mut self, max: usize) -> Self {
        self.per_principal = Some(Arc::new(PrincipalCounts {
            max,
            live: Mutex::new(HashMap::new()),
        }));
        self
    }

    pub(super) fn try_take(&self, principal: &str) -> Result<Slot, StartError> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| StartError::AtCapacity)?;
        let principal = match &self.per_principal {
            None => None,
            Some(counts) => {
                let mut live = counts.lock();
                let count = live.entry(principal.to_owned()).or_default();
                if *count >= counts.max {
                    return Err(StartError::PrincipalAtCapacity);
                }
                *count += 1;
                Some(PrincipalSlot {
                    counts: counts.clone(),
                    principal: principal.to_owned(),
                })
            }
        };
        Ok(Slot {
            _total: total,
            _principal: principal,
        })
    }
}

impl Default for SessionLimit {
    /// No practical limit.
    fn default() -> Self {
        SessionLimit::new(Semaphore::MAX_PERMITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_gets_its_slots_back_as_streams_end() {
        let limit = SessionLimit::new(10).per_principal(2);
        let a1 = limit.try_take("alice").unwrap();
        let _a2 = limit.try_take("alice").unwrap();
        assert!(matches!(
            limit.try_take("alice"),
            Err(StartError::PrincipalAtCapacity)
        ));
        let _b1 = limit.try_take("bob").unwrap();
        drop(a1);
        assert!(limit.try_take("alice").is_ok());
    }

    #[test]
    fn the_gateway_limit_applies_to_everyone() {
        let limit = SessionLimit::new(1);
        let _only = limit.try_take("alice").unwrap();
        assert!(matches!(limit.try_take("bob"), Err(StartError::AtCapacity)));
    }
}
