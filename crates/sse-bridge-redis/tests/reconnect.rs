//! RedisBus on a private redis-server: across a crash (SIGKILL, restart on
//! the same port while a subscription is held), a hung server, and with a
//! password.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, eventually, plain, unique};
use redis::AsyncTypedCommands;
use sse_bridge_core::BrokerError;
use sse_bridge_core::bus::{Delivery, EventBus};
use sse_bridge_redis::{RedisBus, RedisConfig, RedisJobQueue, RedisQueueConfig};

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

#[tokio::test]
async fn password_in_the_url_is_used_and_a_wrong_one_rejected() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}", server.port);
    let bus = RedisBus::connect(RedisConfig::new(&url))
        .await
        .expect("connect");
    let channel = unique("sse_session");
    let mut sub = bus.subscribe(&channel).await.unwrap();
    assert_eq!(
        bus.publish(&channel, Bytes::from_static(b"m"))
            .await
            .unwrap(),
        1
    );
    let delivery = tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("message in time");
    assert_eq!(delivery, Delivery::Message(Bytes::from_static(b"m")));
    RedisJobQueue::connect(RedisQueueConfig::new(&url))
        .await
        .expect("queue connect");

    let wrong = format!("redis://:wrong@127.0.0.1:{}", server.port);
    let err = RedisBus::connect(RedisConfig::new(wrong)).await.err();
    assert!(matches!(err, Some(BrokerError::Rejected(_))), "{err:?}");
}

#[tokio::test]
async fn a_hung_server_is_detected_by_the_health_check() {
    let server = RedisServer::start();
    let mut config = RedisConfig::new(server.url());
    config.health_check_interval = Duration::from_millis(100);
    config.command_timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(300);
    let bus = RedisBus::connect(config).await.expect("connect");
    let channel = unique("sse_session");
    let mut sub = bus.subscribe(&channel).await.unwrap();
    let mut link = sub.link();

    server.pause(true);
    tokio::time::timeout(WAIT, link.wait_for(|up| !*up))
        .await
        .expect("link down in time")
        .unwrap();
    server.pause(false);
    tokio::time::timeout(WAIT, link.wait_for(|up| *up))
        .await
        .expect("link up in time")
        .unwrap();

    let mut conn = plain(&server.url()).await;
    eventually(WAIT, "one live subscriber", || {
        let (mut conn, channel) = (conn.clone(), channel.clone());
        async move { common::numsub(&mut conn, &channel).await == 1 }
    })
    .await;
    assert_eq!(conn.publish(&channel, "after").await.unwrap(), 1);
    let delivery = tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("message in time");
    assert_eq!(delivery, Delivery::Message(Bytes::from_static(b"after")));
}
