//! Test support: a private in-process Kafka per test (librdkafka's mock
//! cluster), jobs, and a look at a group's committed offsets.

#![allow(dead_code)] // each test binary uses a different part

use std::future::Future;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sse_bridge_core::{Job, SessionId, SessionRequest};
use sse_bridge_kafka::KafkaConfig;

/// One mock broker, alive as long as this value.
pub struct MockKafka {
    /// The mock cluster belongs to the client that created it.
    owner: BaseProducer,
}

impl MockKafka {
    pub fn start() -> MockKafka {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .expect("mock cluster");
        // SAFETY: the cluster pointer is valid while `owner` lives; the call
        // only sets a default under the cluster's lock. Groups then form at
        // once instead of after the broker's 3 s initial rebalance delay.
        unsafe {
            let cluster = rdsys::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
            assert!(!cluster.is_null());
            rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        }
        MockKafka { owner }
    }

    /// A new topic with a unique name.
    pub fn topic(&self, partitions: i32) -> String {
        let topic = format!("react_sessions_{}", uuid::Uuid::new_v4().simple());
        self.cluster()
            .create_topic(&topic, partitions, 1)
            .expect("create topic");
        topic
    }

    pub fn brokers(&self) -> String {
        self.cluster().bootstrap_servers()
    }

    /// Client settings for `topic` in a fresh, uniquely named group.
    pub fn config(&self, topic: &str) -> KafkaConfig {
        let mut config = KafkaConfig::new(self.brokers());
        config.topic = topic.to_owned();
        config.group = format!("sse_workers_{}", uuid::Uuid::new_v4().simple());
        // After a member leaves, the mock broker holds the next join for the
        // session timeout (a real broker does not): keep it short.
        config.properties = vec![
            ("session.timeout.ms".into(), "2000".into()),
            ("heartbeat.interval.ms".into(), "500".into()),
        ];
        config
    }

    fn cluster(&self) -> rdkafka::mocking::MockCluster<'_, DefaultProducerContext> {
        self.owner.client().mock_cluster().expect("mock cluster")
    }
}

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
