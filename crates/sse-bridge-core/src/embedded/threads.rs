//! The embedded backend's thread records: `sse_bridge_v4_thread_put`'s
//! compare-and-set in memory, expiring like their Redis counterparts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::thread::{Stored, ThreadId, ThreadRecord};

/// Expired records are swept at most this often (on a write).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Threads {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    records: HashMap<ThreadId, Entry>,
    next_sweep: Option<Instant>,
}

struct Entry {
    revision: u64,
    record: ThreadRecord,
    expires: Instant,
}

impl Threads {
    pub(super) fn load(&self, id: &ThreadId) -> Stored {
        let state = self.state.lock().expect("thread records lock");
        match state.records.get(id) {
            Some(entry) if entry.expires > Instant::now() => Stored {
                revision: entry.revision,
                record: Some(entry.record.clone()),
            },
            _ => Stored {
                revision: 0,
                record: None,
            },
        }
    }

    pub(super) fn store(
        &self,
        id: &ThreadId,
        revision: u64,
        record: &ThreadRecord,
        ttl: Duration,
    ) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock().expect("thread records lock");
        if state.next_sweep.is_none_or(|at| at <= now) {
            state.records.retain(|_, entry| entry.expires > now);
            state.next_sweep = Some(now + SWEEP_EVERY);
        }
        let current = state
            .records
            .get(id)
            .filter(|entry| entry.expires > now)
            .map_or(0, |entry| entry.revision);
        if current != revision {
            return false;
        }
        state.records.insert(
            id.clone(),
            Entry {
                revision: revision + 1,
                record: record.clone(),
                expires: now + ttl,
            },
        );
        true
    }
}
