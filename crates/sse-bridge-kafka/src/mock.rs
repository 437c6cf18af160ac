//! A private Kafka-protocol broker in this process (librdkafka's mock
//! cluster, a real TCP listener on loopback): for tests and local runs with
//! no Kafka installed.

use rdkafka::ClientConfig;
use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};

use crate::KafkaConfig;

/// One mock broker, alive as long as this value. Test support: its
/// constructors panic when librdkafka cannot create the mock.
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
