//! The Redis Cluster harness itself: a started cluster is ready and covers
//! every slot, the harness routes keys as Redis does, its PUB/SUB helpers
//! see subscriptions, and a killed master is failed over to its replica.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sse_bridge_testkit::cluster::{RedisCluster, SLOT_COUNT, key_slot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A plain connection to one node (no cluster routing).
async fn node_connection(port: u16) -> MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("valid URL")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|error| panic!("node {port} reachable: {error}"))
}

async fn cluster_state(port: u16) -> String {
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut node_connection(port).await)
        .await
        .expect("CLUSTER INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("cluster_state:"))
        .expect("cluster_state in CLUSTER INFO")
        .trim()
        .to_string()
}

/// A raw connection subscribed with `command` (`SUBSCRIBE` / `SSUBSCRIBE`)
/// to `channel`, once the node has confirmed it; unsubscribed when dropped.
async fn subscriber(port: u16, command: &str, channel: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("node reachable");
    let request = format!(
        "*2\r\n${}\r\n{command}\r\n${}\r\n{channel}\r\n",
        command.len(),
        channel.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("sending the subscription");
    let confirmation = command.to_ascii_lowercase();
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains(&confirmation) {
        let mut buffer = [0; 256];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("subscription confirmed within 10 s")
            .expect("reading the confirmation");
        assert!(read > 0, "node {port} closed the subscriber: {received:?}");
        received.extend_from_slice(&buffer[..read]);
        assert!(
            !received.starts_with(b"-"),
            "{command} {channel} on {port}: {}",
            String::from_utf8_lossy(&received)
        );
    }
    stream
}

#[tokio::test]
async fn three_masters_serve_every_slot_and_route_keys_like_redis() {
    let cluster = RedisCluster::start(3, 0).await;

    let seeds = cluster.seed_urls();
    assert_eq!(seeds.len(), 3);
    assert_eq!(cluster.seeds_arg(), seeds.join(","));
    let masters = cluster.masters().await;
    assert_eq!(masters.len(), 3, "{masters:?}");
    assert!(cluster.replicas().await.is_empty());
    for master in &masters {
        assert_eq!(cluster_state(master.port).await, "ok");
        assert!(seeds.contains(&format!("redis://127.0.0.1:{}", master.port)));
    }
    let covered: usize = masters
        .iter()
        .flat_map(|master| master.slots.iter().cloned())
        .map(|range| range.count())
        .sum();
    assert_eq!(covered, usize::from(SLOT_COUNT));

    let mut any_node = node_connection(masters[0].port).await;
    for key in [
        "foo",
        "session:42",
        "{user1000}.following",
        "foo{}{bar}",
        "{}",
        "a{b}c",
        "",
    ] {
        let keyslot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut any_node)
            .await
            .expect("CLUSTER KEYSLOT");
        assert_eq!(key_slot(key), keyslot, "slot of {key:?}");
        let master = cluster.master_for_key(key).await;
        assert_eq!(master, cluster.node_for_slot(keyslot).await);
        assert!(
            masters
                .iter()
                .any(|node| node.port == master && node.serves_slot(keyslot)),
            "{key:?} (slot {keyslot}) routed to {master}, masters: {masters:?}"
        );
    }

    let key = "harness:greeting";
    let owner = cluster.master_for_key(key).await;
    let mut on_owner = node_connection(owner).await;
    let () = redis::cmd("SET")
        .arg(key)
        .arg("hello")
        .query_async(&mut on_owner)
        .await
        .expect("SET on the key's master");
    let value: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut on_owner)
        .await
        .expect("GET on the key's master");
    assert_eq!(value, "hello");
    let elsewhere = masters
        .iter()
        .find(|master| master.port != owner)
        .expect("another master");
    let redirected: redis::RedisResult<String> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut node_connection(elsewhere.port).await)
        .await;
    let error = redirected.expect_err("another master redirects");
    let owner_address = format!("127.0.0.1:{owner}");
    assert_eq!(
        error.redirect_node(),
        Some((owner_address.as_str(), key_slot(key))),
        "expected MOVED to the key's master, got {error}"
    );

    let shard_channel = "harness:shard-channel";
    let shard_owner = cluster.master_for_key(shard_channel).await;
    let _shard_subscriber = subscriber(shard_owner, "SSUBSCRIBE", shard_channel).await;
    let classic_subscriber_port = masters[0].port;
    let _classic_subscriber =
        subscriber(classic_subscriber_port, "SUBSCRIBE", "harness:channel").await;
    for master in &masters {
        let expected_shard: Vec<String> = if master.port == shard_owner {
            vec![shard_channel.to_string()]
        } else {
            Vec::new()
        };
        assert_eq!(
            cluster.pubsub_shardchannels(master.port).await,
            expected_shard
        );
        let expected_classic: Vec<String> = if master.port == classic_subscriber_port {
            vec!["harness:channel".to_string()]
        } else {
            Vec::new()
        };
        assert_eq!(cluster.pubsub_channels(master.port).await, expected_classic);
    }
}

#[tokio::test]
async fn a_killed_master_fails_over_to_its_replica() {
    let mut cluster = RedisCluster::start(3, 1).await;
    let masters = cluster.masters().await;
    let replicas = cluster.replicas().await;
    assert_eq!((masters.len(), replicas.len()), (3, 3));
    assert_eq!(cluster.seed_urls().len(), 6);

    let key = "harness:survivor";
    let old_master = cluster.master_for_key(key).await;
    let old_master_id = &masters
        .iter()
        .find(|master| master.port == old_master)
        .expect("the key's master is a master")
        .id;
    let mut on_old_master = node_connection(old_master).await;
    let () = redis::cmd("SET")
        .arg(key)
        .arg("kept")
        .query_async(&mut on_old_master)
        .await
        .expect("SET on the key's master");
    let acknowledged: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query_async(&mut on_old_master)
        .await
        .expect("WAIT");
    assert_eq!(acknowledged, 1, "the replica acknowledged the write");

    cluster.kill_master(old_master).await;
    let new_master = cluster.wait_for_failover(old_master).await;

    assert_ne!(new_master, old_master);
    assert!(
        replicas.iter().any(|replica| replica.port == new_master
            && replica.master_id.as_ref() == Some(old_master_id)),
        "{new_master} was not a replica of {old_master}: {replicas:?}"
    );
    assert_eq!(cluster.master_for_key(key).await, new_master);
    let live_masters = cluster.masters().await;
    assert_eq!(live_masters.len(), 3, "{live_masters:?}");
    for node in live_masters.iter().chain(&cluster.replicas().await) {
        assert_eq!(cluster_state(node.port).await, "ok", "node {}", node.port);
    }
    let value: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut node_connection(new_master).await)
        .await
        .expect("GET on the new master");
    assert_eq!(value, "kept");
}
