//! [`KafkaConfig`]: where the job topic lives and how to talk to it.
//!
//! Every client setting the code does not need to know about (acks,
//! compression, batching, TLS, SASL) goes through [`KafkaConfig::properties`]
//! verbatim to librdkafka, so deployments tune producers and consumers without
//! code changes. The few settings the queue's guarantees depend on are applied
//! after the user's properties and win over them (see [`KafkaConfig::producer`]
//! and [`KafkaConfig::consumer`]).

use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;

/// The topic jobs are dispatched to (PROTOCOL §1).
pub const DEFAULT_TOPIC: &str = "react_sessions";
/// The consumer group workers share.
pub const DEFAULT_GROUP: &str = "sse_workers";
/// How long a dispatch waits for the broker's acknowledgement.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection and queue settings shared by the dispatcher and the job source.
#[derive(Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// Topic holding the jobs; default [`DEFAULT_TOPIC`].
    pub topic: String,
    /// Consumer group of the workers; default [`DEFAULT_GROUP`].
    pub group: String,
    /// Upper bound of one dispatch, broker acknowledgement included; default
    /// [`DEFAULT_DELIVERY_TIMEOUT`]. Also sets `message.timeout.ms`.
    pub delivery_timeout: Duration,
    /// Extra librdkafka properties (`acks`, `compression.type`, `linger.ms`,
    /// `security.protocol`, `sasl.*`, `ssl.*`, ...), applied to both clients.
    /// A producer-only property given to the consumer (or the reverse) is
    /// ignored by librdkafka with a warning.
    pub properties: Vec<(String, String)>,
    /// This worker's stable identity in the group (`group.instance.id`,
    /// static membership): a worker restarted with the same id within
    /// `session.timeout.ms` gets its partitions back without a rebalance.
    /// `None` (the default): a dynamic member.
    pub instance_id: Option<String>,
}

impl KafkaConfig {
    /// Defaults for everything but the brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            topic: DEFAULT_TOPIC.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            properties: Vec::new(),
            instance_id: None,
        }
    }

    /// The producer's librdkafka configuration.
    ///
    /// Defaults the user may override: `enable.idempotence=true` (a retried
    /// send cannot duplicate a job) and `message.timeout.ms` from
    /// [`Self::delivery_timeout`]. Enforced: `bootstrap.servers`.
    pub fn producer(&self) -> ClientConfig {
        let timeout_ms = self.delivery_timeout.as_millis().max(1).to_string();
        self.client_config(
            &[
                ("enable.idempotence", "true"),
                ("message.timeout.ms", &timeout_ms),
            ],
            &[("bootstrap.servers", &self.brokers)],
        )
    }

    /// The consumer's librdkafka configuration.
    ///
    /// Defaults the user may override: `auto.offset.reset=earliest` (a job
    /// dispatched before the group first joined is not lost),
    /// `enable.partition.eof=false`, and
    /// `partition.assignment.strategy=cooperative-sticky`: a worker joining
    /// or leaving moves only the partitions that must move, and every other
    /// worker keeps fetching meanwhile (the eager protocol stops the whole
    /// group and hands every partition out again). Enforced:
    /// `bootstrap.servers`, `group.id`, `group.instance.id` when
    /// [`Self::instance_id`] is set, and `enable.auto.commit=false` with
    /// `enable.auto.offset.store=false` because offsets are committed by hand,
    /// only once a job's session ended.
    pub fn consumer(&self) -> ClientConfig {
        let mut enforced = vec![
            ("bootstrap.servers", self.brokers.as_str()),
            ("group.id", &self.group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ];
        if let Some(id) = &self.instance_id {
            enforced.push(("group.instance.id", id));
        }
        self.client_config(
            &[
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("partition.assignment.strategy", "cooperative-sticky"),
            ],
            &enforced,
        )
    }

    fn client_config(&self, defaults: &[(&str, &str)], enforced: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            if enforced.iter().any(|(k, _)| k == key) {
                tracing::warn!(
                    "Kafka property {key} is set by sse-bridge; ignoring the given value"
                );
                continue;
            }
            config.set(key, value);
        }
        for (key, value) in enforced {
            config.set(*key, *value);
        }
        config
    }
}

impl fmt::Debug for KafkaConfig {
    /// Redacts secret properties (`sasl.password`, `ssl.key.password`, ...).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("properties", &properties)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

fn is_secret(key: &str) -> bool {
    [
        "password",
        "secret",
        "ssl.key.pem",
        "sasl.jaas",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|needle| key.contains(needle))
}

/// A `key=value` argument that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected key=value, got {0:?}")]
pub struct InvalidProperty(String);

/// Parses one `key=value` librdkafka property (for `--kafka-property`).
///
/// Splits at the first `=`, so values may contain `=`; the key is trimmed and
/// must not be empty, the value is kept as given (it may be empty).
pub fn parse_property(arg: &str) -> Result<(String, String), InvalidProperty> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(InvalidProperty(arg.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_value_properties() {
        assert_eq!(
            parse_property("sasl.password=a=b"),
            Ok(("sasl.password".into(), "a=b".into()))
        );
        assert_eq!(
            parse_property(" acks =all"),
            Ok(("acks".into(), "all".into()))
        );
        assert_eq!(parse_property("x="), Ok(("x".into(), String::new())));
        assert!(parse_property("acks").is_err());
        assert!(parse_property("=all").is_err());
    }

    #[test]
    fn user_properties_override_defaults_but_not_enforced_settings() {
        let mut config = KafkaConfig::new("k:9092");
        config.delivery_timeout = Duration::from_millis(1500);
        config.properties = vec![
            ("enable.idempotence".into(), "false".into()),
            ("enable.auto.commit".into(), "true".into()),
            ("group.id".into(), "other".into()),
            ("acks".into(), "all".into()),
        ];
        let producer = config.producer();
        assert_eq!(producer.get("enable.idempotence"), Some("false"));
        assert_eq!(producer.get("message.timeout.ms"), Some("1500"));
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("bootstrap.servers"), Some("k:9092"));
        let consumer = config.consumer();
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some(DEFAULT_GROUP));
        assert_eq!(consumer.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(
            consumer.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(consumer.get("group.instance.id"), None);
    }

    #[test]
    fn an_instance_id_makes_a_static_member() {
        let mut config = KafkaConfig::new("k:9092");
        config.instance_id = Some("worker-3".into());
        config.properties = vec![("group.instance.id".into(), "other".into())];
        assert_eq!(config.consumer().get("group.instance.id"), Some("worker-3"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut config = KafkaConfig::new("k:9092");
        config.properties = vec![
            ("sasl.password".into(), "hunter2".into()),
            ("sasl.username".into(), "svc".into()),
        ];
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("svc"), "{shown}");
    }
}
