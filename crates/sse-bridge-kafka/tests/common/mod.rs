//! Test support: a private in-process Kafka per test (librdkafka's mock
//! cluster), jobs, and a look at a group's committed offsets.

#![allow(dead_code)] // each test binary uses a different part

use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sse_bridge_core::{Job, SessionId, SessionRequest};
use sse_bridge_kafka::KafkaConfig;
#[allow(unused_imports)] // not every test binary starts a broker
pub use sse_bridge_kafka::mock::MockKafka;

pub fn job(query: &str) -> Job {
    let request = SessionRequest::parse(format!(r#"{{"user_query":"{query}"}}"#).as_bytes())
        .expect("valid request");
    Job::new(SessionId::new(), request)
}

/// The offset `config.group` committed for partition 0 of `config.topic`.
pub async fn committed(config: &KafkaConfig) -> Offset {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            .create()
            .expect("consumer");
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(&config.topic, 0);
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(5))
            .expect("committed offsets");
        committed.elements()[0].offset()
    })
    .await
    .expect("committed offsets task")
}

/// Waits until `config.group` committed something other than `previous`.
pub async fn committed_change(config: &KafkaConfig, previous: Offset) -> Offset {
    within(Duration::from_secs(10), async {
        loop {
            let offset = committed(config).await;
            if offset != previous {
                return offset;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// `future`'s output, or a panic naming the bound.
pub async fn within<T>(bound: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(bound, future)
        .await
        .unwrap_or_else(|_| panic!("not done within {bound:?}"))
}
