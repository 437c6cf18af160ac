//! RedisBus behind a slow link: a reply that queues behind the messages
//! before it is late, not lost. The subscriber connection must not be
//! declared dead (and every stream's link dropped) while it is still
//! delivering — what an overloaded gateway's one subscriber connection
//! looks like from inside.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, plain, unique};
use sse_bridge_core::bus::{Delivery, EventBus};
use sse_bridge_redis::{RedisBus, RedisConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(20);

/// A TCP proxy to `upstream` that passes what clients send at once and what
/// the server sends back at `bytes_per_tick` every 10 ms: a slow link.
async fn throttled_proxy(upstream: SocketAddr, bytes_per_tick: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            tokio::spawn(async move {
                let mut buffer = vec![0; bytes_per_tick];
                loop {
                    match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if client_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_reply_behind_a_backlog_of_messages_is_late_not_a_lost_connection() {
    let server = RedisServer::start();
    // 400 KiB/s: the 300 KiB published below take 0.75 s to come through,
    // 2.5 times the command timeout (and a quarter of the latest a reply
    // may come, so a slow box has room).
    let proxy = throttled_proxy(format!("127.0.0.1:{}", server.port).parse().unwrap(), 4096).await;
    let mut config = RedisConfig::new(format!("redis://{proxy}"));
    config.command_timeout = Duration::from_millis(300);
    config.health_check_interval = Duration::from_millis(200);
    let bus = RedisBus::connect(config).await.expect("connect");
    let busy = unique("sse_session");
    let mut busy_sub = bus.subscribe(&busy).await.unwrap();
    let link = busy_sub.link();

    let mut publisher = plain(&server.url()).await;
    let piece = "x".repeat(1024);
    let mut flood = redis::pipe();
    for _ in 0..300 {
        flood.publish(&busy, &piece).ignore();
    }
    flood.exec_async(&mut publisher).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < 300 {
            match tokio::time::timeout(WAIT, busy_sub.recv()).await {
                Ok(Delivery::Message(m)) if m.len() == 1024 => received += 1,
                other => panic!("after {received} messages: {other:?}"),
            }
        }
        busy_sub
    });

    // Its SUBSCRIBE's reply comes after the 300 messages ahead of it.
    let started = tokio::time::Instant::now();
    let quiet = unique("sse_session");
    let mut quiet_sub = tokio::time::timeout(WAIT, bus.subscribe(&quiet))
        .await
        .expect("subscribed in time")
        .expect("a late reply is still a reply");
    assert!(
        started.elapsed() > Duration::from_millis(300),
        "the reply was late: {:?}",
        started.elapsed()
    );
    let _busy_sub = tokio::time::timeout(WAIT, reader)
        .await
        .expect("every message in time")
        .unwrap();
    assert!(*link.borrow(), "the link never went down");
    assert!(!link.has_changed().unwrap(), "not even for a moment");

    let mut publisher = plain(&server.url()).await;
    let receivers: u64 = redis::cmd("PUBLISH")
        .arg(&quiet)
        .arg("after")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let delivery = tokio::time::timeout(WAIT, quiet_sub.recv()).await.unwrap();
    assert_eq!(delivery, Delivery::Message(Bytes::from_static(b"after")));
}
