//! The Redis session log against the real Redis: the shared `EventLog`
//! behaviour (the same check the embedded log passes), its cap and TTL as
//! Redis reports them, and the wire call a worker in any language makes.

mod common;

use std::time::Duration;

use common::{REDIS_URL, plain, unique};
use redis::AsyncTypedCommands;
use sse_bridge_core::log::{Appended, Claim, EventLog, LogId, LogLimits, SessionMeta};
use sse_bridge_core::protocol::{Event, OnDisconnect};
use sse_bridge_core::{EventBus, SessionId};
use sse_bridge_redis::{RedisBus, RedisConfig};

/// A page larger than anything these tests log.
const SMALL_PAGE: sse_bridge_core::log::PageLimit = sse_bridge_core::log::PageLimit {
    entries: 10,
    bytes: 1 << 20,
};

async fn bus(limits: LogLimits) -> RedisBus {
    let mut config = RedisConfig::new(REDIS_URL);
    config.client_name = unique("t-log");
    config.log = limits;
    RedisBus::connect(config).await.expect("connect")
}

#[tokio::test]
async fn redis_log_behaves_like_every_event_log() {
    let bus = bus(sse_bridge_testkit::log::CHECK_LIMITS).await;
    sse_bridge_testkit::log::check_event_log(&bus).await;
}

#[tokio::test]
async fn log_and_metadata_are_bounded_in_bytes_and_expire() {
    let bus = bus(LogLimits {
        max_bytes: 4000,
        ttl: Duration::from_secs(90),
        ..LogLimits::default()
    })
    .await;
    let id = SessionId::new();
    let meta = SessionMeta::new("anonymous", "native", OnDisconnect::Continue);
    bus.create(id, &meta).await.unwrap();
    let mut conn = plain(REDIS_URL).await;
    let meta_ttl: i64 = redis::cmd("TTL")
        .arg(id.meta_key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((85..=90).contains(&meta_ttl), "metadata TTL {meta_ttl}");
    let ack = Event::new("worker_ack", serde_json::json!({}));
    assert!(matches!(
        bus.append(id, &ack).await.unwrap(),
        Appended::Logged { .. }
    ));
    for _ in 0..500 {
        let piece = Event::new("FinalAnswerStream", serde_json::json!({"char": "x"}));
        bus.append(id, &piece).await.unwrap();
    }
    // ~60 bytes a piece: the appended entries keep within their 2,000
    // bytes, the rest is folded into a few events of merged text.
    let len = conn.xlen(id.log_key()).await.unwrap();
    assert!((20..=34).contains(&len), "XLEN {len}");
    let folded = conn.xlen(id.folded_key()).await.unwrap();
    assert!((2..=3).contains(&folded), "folded XLEN {folded}");
    // The function's hot record starts `tail_bytes|folded_bytes|…`.
    let hot: String = redis::cmd("HGET")
        .arg(id.meta_key())
        .arg("hot")
        .query_async(&mut conn)
        .await
        .unwrap();
    let counted: Vec<Option<i64>> = hot.split('|').take(2).map(|n| n.parse().ok()).collect();
    let ranges = |key: String| {
        let mut conn = conn.clone();
        async move {
            let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap();
            entries
                .iter()
                .map(|(_, fields)| fields[0].1.len() as i64)
                .sum::<i64>()
        }
    };
    assert_eq!(
        counted,
        vec![
            Some(ranges(id.log_key()).await),
            Some(ranges(id.folded_key()).await)
        ],
        "the byte counts are exact"
    );
    for key in [id.log_key(), id.folded_key()] {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((85..=90).contains(&ttl), "{key} TTL {ttl}");
    }
    assert_eq!(
        bus.meta(id).await.unwrap().unwrap().on_disconnect,
        OnDisconnect::Continue
    );
}

/// What the README tells a worker in another language to send.
#[tokio::test]
async fn any_client_appends_with_one_fcall() {
    let bus = bus(LogLimits::default()).await;
    let id = sse_bridge_testkit::log::created(&bus).await;
    let mut sub = bus.subscribe(&id.event_channel()).await.unwrap();
    let mut conn = plain(REDIS_URL).await;
    let reply: (i64, String, i64) = redis::cmd("FCALL")
        .arg("sse_bridge_v4_append")
        .arg(3)
        .arg(format!("sse_events:{id}"))
        .arg(format!("sse_session_meta:{id}"))
        .arg(format!("sse_folded:{id}"))
        .arg(r#"{"event_type":"worker_ack","payload":{},"attempt":"py-1"}"#)
        .arg("worker_ack")
        .arg("py-1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((reply.0, reply.2), (1, 1));
    let sse_bridge_core::Delivery::Message(raw) = sub.recv().await else {
        panic!("no live message")
    };
    let expected = format!(
        r#"{{"event_type":"worker_ack","payload":{{}},"attempt":"py-1","log_id":"{}"}}"#,
        reply.1
    );
    assert_eq!(std::str::from_utf8(&raw).unwrap(), expected);
    let event = Event::parse(&raw, 1024).unwrap();
    assert_eq!(event.json(), br#"{"event_type":"worker_ack","payload":{}}"#);
}

/// An event of attempt `a` with the idempotency key `key`.
fn keyed(kind: &str, key: &str) -> Event {
    Event::new(kind, serde_json::json!({"char": "x"}))
        .from_attempt(Some("a"))
        .with_key(key)
}

/// A retry after an ambiguous failure (the first FCALL may have been
/// applied before the timeout) must not log or publish the event twice.
#[tokio::test]
async fn a_retried_append_is_not_logged_twice() {
    let bus = bus(LogLimits::default()).await;
    let id = sse_bridge_testkit::log::created(&bus).await;
    let mut live = bus.subscribe(&id.event_channel()).await.unwrap();
    let ack = bus.append(id, &keyed("worker_ack", "a:0")).await.unwrap();
    let piece = keyed("FinalAnswerStream", "a:1");
    let first = bus.append(id, &piece).await.unwrap();
    assert_eq!(
        bus.append_again(id, &piece).await.unwrap(),
        match first {
            Appended::Logged { id, .. } => Appended::Logged { id, receivers: 0 },
            other => panic!("{other:?}"),
        }
    );
    let end = keyed("FinalAnswerStreamEnd", "a:2");
    let ended = bus.append(id, &end).await.unwrap();
    let Appended::Logged { id: end_id, .. } = ended else {
        panic!("{ended:?}")
    };
    // Even after the end, the retry of the terminal event is answered, not refused.
    assert_eq!(
        bus.append_again(id, &end).await.unwrap(),
        Appended::Logged {
            id: end_id,
            receivers: 0
        }
    );
    assert!(matches!(ack, Appended::Logged { .. }));
    let mut conn = plain(REDIS_URL).await;
    assert_eq!(conn.xlen(id.log_key()).await.unwrap(), 3);
    for _ in 0..3 {
        assert!(matches!(
            live.recv().await,
            sse_bridge_core::Delivery::Message(_)
        ));
    }
    let extra = tokio::time::timeout(Duration::from_millis(200), live.recv()).await;
    assert!(extra.is_err(), "a duplicate was published: {extra:?}");
}

/// A batch retried after an ambiguous failure is answered with the ids of
/// the entries its first try appended (its first event's key names it),
/// and published once, as one message.
#[tokio::test]
async fn a_retried_batch_is_not_logged_twice() {
    let bus = bus(LogLimits::default()).await;
    let id = sse_bridge_testkit::log::created(&bus).await;
    let mut live = bus.subscribe(&id.event_channel()).await.unwrap();
    let batch = [
        keyed("worker_ack", "a:0"),
        keyed("FinalAnswerStream", "a:1"),
        keyed("worker_heartbeat", "a:2"),
        keyed("FinalAnswerStreamEnd", "a:3"),
    ];
    let first = bus.append_batch(id, &batch, false).await.unwrap();
    let again = bus.append_batch(id, &batch, true).await.unwrap();
    let ids = |outcomes: &[Appended]| -> Vec<Option<LogId>> {
        outcomes
            .iter()
            .map(|outcome| match outcome {
                Appended::Logged { id, .. } => Some(*id),
                Appended::Published { .. } => None,
                Appended::Refused(refusal) => panic!("{refusal}"),
            })
            .collect()
    };
    assert_eq!(ids(&again), ids(&first));
    assert_eq!(ids(&first).iter().flatten().count(), 3);
    let mut conn = plain(REDIS_URL).await;
    assert_eq!(conn.xlen(id.log_key()).await.unwrap(), 3);
    let sse_bridge_core::Delivery::Message(message) = live.recv().await else {
        panic!("no message")
    };
    let events = sse_bridge_core::protocol::batch(&message).expect("one batch message");
    assert_eq!(events.len(), 4);
    let extra = tokio::time::timeout(Duration::from_millis(200), live.recv()).await;
    assert!(extra.is_err(), "a duplicate was published: {extra:?}");
}

/// The function library refuses, with a reason, a call whose arguments and
/// event disagree: readers rely on what the log holds.
#[tokio::test]
async fn appends_that_contradict_their_event_are_refused_with_a_reason() {
    let bus = bus(LogLimits::default()).await;
    let id = sse_bridge_testkit::log::created(&bus).await;
    let mut conn = plain(REDIS_URL).await;
    let append = |event: &str, event_type: &str, attempt: &str| {
        redis::cmd("FCALL")
            .arg("sse_bridge_v4_append")
            .arg(3)
            .arg(id.log_key())
            .arg(id.meta_key())
            .arg(id.folded_key())
            .arg(event)
            .arg(event_type)
            .arg(attempt)
            .to_owned()
    };
    for (event, event_type, attempt, reason) in [
        (
            r#"{"event_type":"worker_ack","payload":{}}"#,
            "error",
            "",
            "event_type argument",
        ),
        (
            r#"{"event_type":"worker_ack"} "#,
            "worker_ack",
            "",
            "JSON object",
        ),
        (
            r#"{"event_type":"worker_ack""#,
            "worker_ack",
            "",
            "JSON object",
        ),
        (
            r#"{"event_type":"worker_ack","payload":{},"log_id":"1-1"}"#,
            "worker_ack",
            "",
            "reserved",
        ),
        (
            r#"{"event_type":"worker_ack","payload":{},"attempt":"a"}"#,
            "worker_ack",
            "b",
            "attempt argument",
        ),
    ] {
        let error = append(event, event_type, attempt)
            .query_async::<redis::Value>(&mut conn)
            .await
            .expect_err(event);
        assert!(error.to_string().contains(reason), "{event}: {error}");
    }
    let page = bus.read(id, None, SMALL_PAGE).await.unwrap();
    assert!(page.entries.is_empty(), "nothing was logged");
}

/// A rolling deploy: a version 1 worker (its library loaded beside this
/// version's, neither replacing the other) appends to a session a version 2
/// gateway created, and the gateway reads it.
#[tokio::test]
async fn version_1_workers_append_beside_version_2_gateways() {
    let mut conn = plain(REDIS_URL).await;
    let () = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(include_str!("fixtures/functions_v1.lua"))
        .query_async::<String>(&mut conn)
        .await
        .map(drop)
        .unwrap();
    let bus = bus(LogLimits::default()).await;
    let id = sse_bridge_testkit::log::created(&bus).await;
    let mut live = bus.subscribe(&id.event_channel()).await.unwrap();
    let libraries: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let listed = format!("{libraries:?}");
    assert!(
        listed.contains("sse_bridge_v4") && listed.contains("\"sse_bridge\""),
        "{listed}"
    );
    let reply: (i64, String, i64) = redis::cmd("FCALL")
        .arg("sse_bridge_append")
        .arg(2)
        .arg(id.log_key())
        .arg(id.meta_key())
        .arg(r#"{"event_type":"worker_ack","payload":{},"attempt":"v1"}"#)
        .arg("worker_ack")
        .arg("v1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((reply.0, reply.2), (1, 1), "logged and published");
    assert!(matches!(
        live.recv().await,
        sse_bridge_core::Delivery::Message(_)
    ));
    let page = bus.read(id, None, SMALL_PAGE).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].id.to_string(), reply.1);
}

#[tokio::test]
async fn an_alias_written_before_owners_counts_as_free_and_a_claim_expires_with_the_log() {
    let bus = bus(LogLimits {
        max_bytes: 4000,
        ttl: Duration::from_secs(90),
        ..LogLimits::default()
    })
    .await;
    let mut conn = plain(REDIS_URL).await;
    let alias = format!("chat:{}", SessionId::new());
    let (old, new) = (SessionId::new(), SessionId::new());
    let key = format!("sse_alias:{alias}");
    conn.set(&key, old.to_string()).await.unwrap();
    assert_eq!(bus.resolve_alias(&alias).await.unwrap(), Some(old));
    assert_eq!(
        bus.claim_alias(&alias, "key:bob", new).await.unwrap(),
        Claim::Bound
    );
    assert_eq!(bus.resolve_alias(&alias).await.unwrap(), Some(new));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((85..=90).contains(&ttl), "alias TTL {ttl}");
}

/// A gateway that crashes never runs its streams' departures: its follower
/// counts lapse with its presence, and one other gateway takes its sessions
/// over to decide what the departures would have.
#[tokio::test]
async fn a_crashed_gateways_followers_lapse_and_its_sessions_are_taken_over_once() {
    let gateway = |name: &str| {
        let mut config = RedisConfig::new(REDIS_URL);
        config.client_name = unique(name);
        config.presence_lease = Duration::from_millis(600);
        RedisBus::connect(config)
    };
    let crashing = gateway("t-presence-a").await.unwrap();
    let survivor = gateway("t-presence-b").await.unwrap();
    let other = gateway("t-presence-c").await.unwrap();
    let id = sse_bridge_testkit::log::created(&crashing).await;
    assert_eq!(crashing.add_followers(id, 1).await.unwrap(), Some(2));
    assert_eq!(survivor.meta(id).await.unwrap().unwrap().followers, 2);
    assert_eq!(survivor.add_followers(id, 1).await.unwrap(), Some(1));
    assert_eq!(survivor.meta(id).await.unwrap().unwrap().followers, 3);
    drop(crashing);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        survivor.meta(id).await.unwrap().unwrap().followers,
        1,
        "only the living gateway's stream counts"
    );
    let mut taken = Vec::new();
    for bus in [&survivor, &other, &survivor] {
        taken.extend(bus.orphans().await.unwrap());
    }
    // (Other tests' gateways that ended may be taken over too.)
    assert_eq!(
        taken.iter().filter(|&&t| t == id).count(),
        1,
        "handed over exactly once"
    );
}
