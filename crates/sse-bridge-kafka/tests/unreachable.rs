//! A dispatcher whose brokers do not answer fails fast instead of hanging.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::job;
use sse_bridge_core::{BrokerError, JobDispatcher};
use sse_bridge_kafka::{KafkaConfig, KafkaDispatcher};

/// Scheduling slack on a busy CI machine.
const MARGIN: Duration = Duration::from_secs(1);

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn dispatch_and_readiness_fail_within_their_bounds() {
    let mut config = KafkaConfig::new(closed_port());
    config.delivery_timeout = Duration::from_secs(1);
    let dispatcher = KafkaDispatcher::new(&config).unwrap();

    let started = Instant::now();
    let error = dispatcher.dispatch(&job("q")).await.unwrap_err();
    assert!(
        started.elapsed() < config.delivery_timeout + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, BrokerError::Timeout(_) | BrokerError::Unavailable(_)),
        "{error:?}"
    );

    let started = Instant::now();
    let error = dispatcher.check_ready().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2) + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, BrokerError::Unavailable(_)), "{error:?}");
}
