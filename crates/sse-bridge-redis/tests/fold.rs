//! The folding rule in Lua (`functions.lua`) and in Rust (`log::fold`, run
//! by the embedded log) on the same random sessions: both logs must serve
//! the same events from the start, the same rest after every cursor, and
//! refuse the same cursors for the same reason.

mod common;

use common::REDIS_URL;
use serde_json::{Value, json};
use sse_bridge_core::embedded::EmbeddedBus;
use sse_bridge_core::log::{
    Appended, EventLog, HistoryLost, LogId, LogLimits, PageLimit, SessionMeta,
};
use sse_bridge_core::protocol::{Event, OnDisconnect};
use sse_bridge_core::{SessionId, SubscriptionBound};
use sse_bridge_redis::{RedisBus, RedisConfig};

const LIMITS: LogLimits = LogLimits {
    max_bytes: 6000,
    ttl: std::time::Duration::from_secs(60),
    live: std::time::Duration::from_secs(60),
};

const ALL: PageLimit = PageLimit {
    entries: 100_000,
    bytes: usize::MAX,
};

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// A random worker event after the ack: mostly text pieces of both kinds
/// (some with an extra field, which must not fold), now and then a tool call.
fn random_event(random: &mut Random) -> Event {
    let text: String = (0..1 + random.below(40))
        .map(|i| ['a', 'é', '"', '\n', '✓', 'z'][((i + random.below(6)) % 6) as usize])
        .collect();
    let event = match random.below(10) {
        0..=4 => Event::new("FinalAnswerStream", json!({ "char": text })),
        5..=6 => Event::new("AgentThoughtStream", json!({ "char": text })),
        7 => Event::new("FinalAnswerStream", json!({ "char": text, "index": 1 })),
        _ => Event::new(
            "AgentToolCallStart",
            json!({ "tool_name": "t", "tool_input": text }),
        ),
    };
    event.from_attempt(Some("a"))
}

async fn session(log: &dyn EventLog) -> SessionId {
    let id = SessionId::new();
    let meta = SessionMeta::new("anonymous", "native", OnDisconnect::Cancel);
    log.create(id, &meta).await.unwrap();
    id
}

/// Appends `events` (after an ack); the ids the log gave them, in order.
async fn append_all(log: &dyn EventLog, id: SessionId, events: &[Event]) -> Vec<LogId> {
    let ack = Event::new("worker_ack", json!({})).from_attempt(Some("a"));
    let mut ids = Vec::new();
    for event in std::iter::once(&ack).chain(events) {
        match log.append(id, event).await.unwrap() {
            Appended::Logged { id, .. } => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    ids
}

/// What a read serves, as values, and the appended positions it ends at
/// (an entry is served under the id of the last event it covers).
async fn read(
    log: &dyn EventLog,
    id: SessionId,
    after: Option<LogId>,
    ids: &[LogId],
) -> Result<Vec<(usize, Value)>, HistoryLost> {
    let page = log.read(id, after, ALL).await.unwrap();
    if let Some(lost) = page.lost {
        return Err(lost);
    }
    Ok(page
        .entries
        .iter()
        .map(|entry| {
            let position = ids.iter().position(|&i| i == entry.id).expect("a known id");
            let event = Event::parse(&entry.event, 1 << 20).unwrap();
            (position, serde_json::from_slice(event.json()).unwrap())
        })
        .collect())
}

#[tokio::test]
async fn lua_and_rust_fold_random_sessions_alike() {
    let mut config = RedisConfig::new(REDIS_URL);
    config.client_name = common::unique("t-fold");
    config.log = LIMITS;
    let redis = RedisBus::connect(config).await.expect("Redis");
    let embedded = EmbeddedBus::with_log_limits(SubscriptionBound::messages(64), LIMITS);
    let (mut folded, mut dropped) = (0, 0);
    for seed in 1..=16u64 {
        let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let events: Vec<Event> = (0..40 + random.below(260))
            .map(|_| random_event(&mut random))
            .collect();
        let (a, b) = (session(&redis).await, session(&embedded).await);
        let (ids_a, ids_b) = (
            append_all(&redis, a, &events).await,
            append_all(&embedded, b, &events).await,
        );
        let whole = read(&redis, a, None, &ids_a).await;
        assert_eq!(whole, read(&embedded, b, None, &ids_b).await, "seed {seed}");
        match whole {
            Ok(whole) if whole.len() < events.len() + 1 => folded += 1,
            Ok(_) => {}
            Err(_) => dropped += 1,
        }
        for position in 0..ids_a.len() {
            assert_eq!(
                read(&redis, a, Some(ids_a[position]), &ids_a).await,
                read(&embedded, b, Some(ids_b[position]), &ids_b).await,
                "seed {seed}, after event {position}"
            );
        }
    }
    assert!(
        folded > 0 && dropped > 0,
        "{folded} folded, {dropped} dropped"
    );
}
