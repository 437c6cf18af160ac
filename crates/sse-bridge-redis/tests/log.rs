//! The Redis session log against the real Redis: the shared `EventLog`
//! behaviour (the same check the embedded log passes), its cap and TTL as
//! Redis reports them, and the wire call a worker in any language makes.

mod common;

use std::time::Duration;

use common::{REDIS_URL, plain, unique};
use redis::AsyncTypedCommands;
use sse_bridge_core::log::{Appended, EventLog, LogLimits, SessionMeta};
use sse_bridge_core::protocol::{Event, OnDisconnect};
use sse_bridge_core::{EventBus, SessionId};
use sse_bridge_redis::{RedisBus, RedisConfig};

async fn bus(limits: LogLimits) -> RedisBus {
    let mut config = RedisConfig::new(REDIS_URL);
    config.client_name = unique("t-log");
    config.log = limits;
    RedisBus::connect(config).await.expect("connect")
}

#[tokio::test]
async fn redis_log_behaves_like_every_event_log() {
    let bus = bus(LogLimits {
        max_len: 10,
        ttl: Duration::from_secs(60),
        live: sse_bridge_testkit::log::LIVE,
    })
    .await;
    // MAXLEN ~ trims whole stream nodes (100 entries by default).
    sse_bridge_testkit::log::check_event_log(&bus, 300).await;
}

#[tokio::test]
async fn log_and_metadata_are_capped_and_expire() {
    let bus = bus(LogLimits {
        max_len: 10,
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
    let len = conn.xlen(id.log_key()).await.unwrap();
    assert!(
        (10..500).contains(&len),
        "XLEN {len}: capped near max_len (MAXLEN ~)"
    );
    let log_ttl: i64 = redis::cmd("TTL")
        .arg(id.log_key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((85..=90).contains(&log_ttl), "log TTL {log_ttl}");
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
        .arg("sse_bridge_append")
        .arg(2)
        .arg(format!("sse_events:{id}"))
        .arg(format!("sse_session_meta:{id}"))
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

/// A retry after an ambiguous failure (the first FCALL may have been
/// applied before the timeout) must not log or publish the event twice.
#[tokio::test]
async fn a_retried_append_is_not_logged_twice() {
    let bus = bus(LogLimits::default()).await;
    let id = sse_bridge_testkit::log::created(&bus).await;
    let mut live = bus.subscribe(&id.event_channel()).await.unwrap();
    let keyed = |kind: &str, key: &str| {
        Event::new(kind, serde_json::json!({"char": "x"}))
            .from_attempt(Some("a"))
            .with_key(key)
    };
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
