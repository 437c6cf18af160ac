//! RedisBus against the real Redis on 127.0.0.1:6379: delivery, connection
//! count, unsubscribe races.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{REDIS_URL, clients_named, eventually, numsub, plain, unique};
use redis::AsyncTypedCommands;
use sse_bridge_core::bus::{Delivery, EventBus};
use sse_bridge_redis::{RedisBus, RedisConfig};

const WAIT: Duration = Duration::from_secs(5);

async fn bus(name: &str) -> RedisBus {
    let mut config = RedisConfig::new(REDIS_URL);
    config.client_name = name.to_owned();
    RedisBus::connect(config).await.expect("connect")
}

async fn recv(sub: &mut sse_bridge_core::Subscription) -> Delivery {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("message in time")
}

#[tokio::test]
async fn published_messages_arrive_in_order() {
    let bus = bus(&unique("t-order")).await;
    let channel = unique("sse_session");
    let mut sub = bus.subscribe(&channel).await.unwrap();
    let mut conn = plain(REDIS_URL).await;
    for i in 0..100 {
        let receivers = conn.publish(&channel, i.to_string()).await.unwrap();
        assert_eq!(
            receivers, 1,
            "subscription confirmed before subscribe returned"
        );
    }
    for i in 0..100 {
        assert_eq!(
            recv(&mut sub).await,
            Delivery::Message(Bytes::from(i.to_string()))
        );
    }
    // Our own publish path reaches our own subscriber too.
    assert_eq!(
        bus.publish(&channel, Bytes::from_static(b"x"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        recv(&mut sub).await,
        Delivery::Message(Bytes::from_static(b"x"))
    );
    bus.check_ready().await.unwrap();
}

#[tokio::test]
async fn five_hundred_subscriptions_share_two_connections() {
    let name = unique("t-count");
    let bus = bus(&name).await;
    let channels: Vec<String> = (0..500).map(|_| unique("sse_session")).collect();
    let subscribe_all = channels.iter().map(|c| bus.subscribe(c));
    let mut subs = futures::future::try_join_all(subscribe_all).await.unwrap();
    assert_eq!(bus.routed_channels(), 500);

    let mut conn = plain(REDIS_URL).await;
    let connections = clients_named(&mut conn, &name).await;
    println!("connections for 500 subscriptions: {connections}");
    assert!(connections <= 2, "{connections} connections");

    // Every channel is live: each subscriber gets its own message.
    for channel in &channels {
        conn.publish(channel, channel.as_str()).await.unwrap();
    }
    for (sub, channel) in subs.iter_mut().zip(&channels) {
        assert_eq!(
            recv(sub).await,
            Delivery::Message(Bytes::from(channel.clone()))
        );
    }
    drop(subs);
    assert_eq!(bus.routed_channels(), 0);
    let probe = channels[499].clone();
    eventually(WAIT, "UNSUBSCRIBE at Redis", || {
        let (mut conn, probe) = (conn.clone(), probe.clone());
        async move { numsub(&mut conn, &probe).await == 0 }
    })
    .await;
}

#[tokio::test]
async fn message_for_nobody_is_dropped() {
    let bus = bus(&unique("t-nobody")).await;
    assert_eq!(
        bus.publish(&unique("sse_session"), Bytes::new())
            .await
            .unwrap(),
        0
    );
    assert_eq!(bus.routed_channels(), 0);
}

#[tokio::test]
async fn dropping_subscriptions_with_messages_in_flight_cleans_up() {
    let bus = bus(&unique("t-drop")).await;
    let conn = plain(REDIS_URL).await;
    for _ in 0..20 {
        let channel = unique("sse_session");
        let sub = bus.subscribe(&channel).await.unwrap();
        // A publisher keeps sending while the subscription goes away.
        let publisher = {
            let (mut conn, channel) = (conn.clone(), channel.clone());
            tokio::spawn(async move {
                for i in 0..50 {
                    conn.publish(&channel, i).await.unwrap();
                }
            })
        };
        tokio::task::yield_now().await;
        drop(sub);
        publisher.await.unwrap();
        assert_eq!(bus.routed_channels(), 0);
        eventually(WAIT, "UNSUBSCRIBE at Redis", || {
            let (mut conn, channel) = (conn.clone(), channel.clone());
            async move { numsub(&mut conn, &channel).await == 0 }
        })
        .await;
    }
    bus.check_ready().await.unwrap();
}

#[tokio::test]
async fn resubscribing_while_unsubscribe_is_pending_is_not_deaf() {
    let bus = bus(&unique("t-race")).await;
    let mut conn = plain(REDIS_URL).await;
    for _ in 0..50 {
        let channel = unique("sse_session");
        let first = bus.subscribe(&channel).await.unwrap();
        // The UNSUBSCRIBE this queues must not win over the new subscriber.
        drop(first);
        let mut again = bus.subscribe(&channel).await.unwrap();
        assert_eq!(numsub(&mut conn, &channel).await, 1);
        conn.publish(&channel, "late").await.unwrap();
        assert_eq!(
            recv(&mut again).await,
            Delivery::Message(Bytes::from_static(b"late"))
        );
        drop(again);
        eventually(WAIT, "UNSUBSCRIBE at Redis", || {
            let (mut conn, channel) = (conn.clone(), channel.clone());
            async move { numsub(&mut conn, &channel).await == 0 }
        })
        .await;
    }
    assert_eq!(bus.routed_channels(), 0);
}

#[tokio::test]
async fn two_subscribers_on_one_channel_both_receive() {
    let bus = bus(&unique("t-two")).await;
    let channel = unique("sse_session");
    let mut a = bus.subscribe(&channel).await.unwrap();
    let mut b = bus.subscribe(&channel).await.unwrap();
    assert_eq!(
        bus.publish(&channel, Bytes::from_static(b"m"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        recv(&mut a).await,
        Delivery::Message(Bytes::from_static(b"m"))
    );
    assert_eq!(
        recv(&mut b).await,
        Delivery::Message(Bytes::from_static(b"m"))
    );
    drop(a);
    let mut conn = plain(REDIS_URL).await;
    assert_eq!(numsub(&mut conn, &channel).await, 1, "b still listens");
    assert_eq!(
        bus.publish(&channel, Bytes::from_static(b"n"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        recv(&mut b).await,
        Delivery::Message(Bytes::from_static(b"n"))
    );
}

#[tokio::test]
async fn unreachable_redis_fails_connect() {
    let mut config = RedisConfig::new("redis://127.0.0.1:1");
    config.connect_timeout = Duration::from_millis(500);
    assert!(RedisBus::connect(config).await.is_err());
}
