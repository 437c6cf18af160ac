//! RedisBus across a Redis crash: a private redis-server is SIGKILLed and
//! restarted on the same port while a subscription is held.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, eventually, plain, unique};
use redis::AsyncTypedCommands;
use sse_bridge_core::bus::{Delivery, EventBus};
use sse_bridge_redis::{RedisBus, RedisConfig};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn subscriber_survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let mut config = RedisConfig::new(server.url());
    config.connect_timeout = Duration::from_millis(500);
    config.command_timeout = Duration::from_millis(500);
    let bus = RedisBus::connect(config).await.expect("connect");
    let channel = unique("sse_session");
    let mut sub = bus.subscribe(&channel).await.unwrap();
    let mut link = sub.link();
    assert!(*link.borrow());

    server.kill();
    tokio::time::timeout(WAIT, link.wait_for(|up| !*up))
        .await
        .expect("link down in time")
        .unwrap();
    assert!(bus.check_ready().await.is_err());
    assert!(bus.subscribe(&unique("sse_session")).await.is_err());

    server.restart();
    tokio::time::timeout(WAIT, link.wait_for(|up| *up))
        .await
        .expect("link up in time")
        .unwrap();
    eventually(WAIT, "ready again", || async {
        bus.check_ready().await.is_ok()
    })
    .await;

    // Resubscribed: a publisher on the fresh server reaches the old subscription.
    let mut conn = plain(&server.url()).await;
    assert_eq!(conn.publish(&channel, "after").await.unwrap(), 1);
    let delivery = tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("message in time");
    assert_eq!(delivery, Delivery::Message(Bytes::from_static(b"after")));
    // Our own publish connection healed too.
    assert_eq!(
        bus.publish(&channel, Bytes::from_static(b"own"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(bus.routed_channels(), 1);
}
