//! One worker's view of the Kafka job queue: delivery, commits, redelivery.

mod common;

use std::time::Duration;

use common::{MockKafka, committed, committed_change, job, within};
use rdkafka::Offset;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sse_bridge_core::{JobDispatcher, JobSource, ReceivedJob};
use sse_bridge_kafka::{KafkaDispatcher, KafkaJobSource};

/// Group join included.
const TAKE: Duration = Duration::from_secs(15);

async fn take(source: &KafkaJobSource) -> ReceivedJob {
    within(TAKE, source.next_job())
        .await
        .expect("next job")
        .expect("source open")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dispatched_job_is_received_and_its_ack_commits_it() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(1));
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    dispatcher.check_ready().await.expect("ready");

    let first = job("first");
    dispatcher.dispatch(&first).await.expect("dispatched");
    let source = KafkaJobSource::new(&config).unwrap();
    let received = take(&source).await;
    assert_eq!(received.job, first);
    assert_eq!(source.assignment(), vec![(config.topic.clone(), 0)]);

    assert_eq!(
        committed(&config).await,
        Offset::Invalid,
        "not before the ack"
    );
    received.ack.ack().await.expect("acked");
    assert_eq!(
        committed_change(&config, Offset::Invalid).await,
        Offset::Offset(1)
    );

    // A restarted worker of the group starts after the committed job.
    drop(source);
    let second = job("second");
    dispatcher.dispatch(&second).await.expect("dispatched");
    let restarted = KafkaJobSource::new(&config).unwrap();
    assert_eq!(take(&restarted).await.job, second);
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_acks_never_commit_past_an_unfinished_job() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(1));
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    let jobs = [job("0"), job("1"), job("2")];
    for job in &jobs {
        dispatcher.dispatch(job).await.expect("dispatched");
    }
    let source = KafkaJobSource::new(&config).unwrap();
    let mut received = Vec::new();
    for job in &jobs {
        let next = take(&source).await;
        assert_eq!(&next.job, job, "partition order");
        received.push(Some(next.ack));
    }
    let mut ack = |i: usize| received[i].take().expect("acked once").ack();

    ack(2).await.expect("acked");
    // Nothing may be committed while offset 0 runs (no request is even sent).
    assert_eq!(committed(&config).await, Offset::Invalid);
    ack(0).await.expect("acked");
    assert_eq!(
        committed_change(&config, Offset::Invalid).await,
        Offset::Offset(1),
        "0 is done, 1 is not"
    );
    ack(1).await.expect("acked");
    assert_eq!(
        committed_change(&config, Offset::Offset(1)).await,
        Offset::Offset(3)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_never_acked_is_redelivered_to_the_restarted_worker() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(1));
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    let lost = job("lost");
    dispatcher.dispatch(&lost).await.expect("dispatched");

    let source = KafkaJobSource::new(&config).unwrap();
    let taken = take(&source).await;
    assert_eq!(taken.job, lost);
    // The worker dies mid-session: its source goes, the ack never comes.
    drop(source);
    drop(taken);

    let restarted = KafkaJobSource::new(&config).unwrap();
    assert_eq!(take(&restarted).await.job, lost);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_job_is_skipped_and_committed() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(1));
    let raw: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()
        .unwrap();
    for payload in [&b"not json"[..], br#"{"session_id":"x"}"#] {
        raw.send(
            FutureRecord::<(), _>::to(&config.topic).payload(payload),
            TAKE,
        )
        .await
        .expect("produced");
    }
    let valid = job("valid");
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    dispatcher.dispatch(&valid).await.expect("dispatched");

    let source = KafkaJobSource::new(&config).unwrap();
    let received = take(&source).await;
    assert_eq!(received.job, valid, "the malformed ones are skipped");
    // Skipping committed past them already.
    assert_eq!(
        committed_change(&config, Offset::Invalid).await,
        Offset::Offset(2)
    );
    received.ack.ack().await.expect("acked");
    assert_eq!(
        committed_change(&config, Offset::Offset(2)).await,
        Offset::Offset(3)
    );
}

/// A job its worker could not even acknowledge to the gateway (Redis down
/// at `worker_ack`) must not hold its partition's commit position back.
#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_job_does_not_freeze_its_partition() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(1));
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    for name in ["abandoned", "next"] {
        dispatcher.dispatch(&job(name)).await.expect("dispatched");
    }
    let source = KafkaJobSource::new(&config).unwrap();
    let abandoned = take(&source).await;
    let next = take(&source).await;
    next.ack.ack().await.expect("acked");
    // Offset 0 still runs: nothing may be committed yet.
    assert_eq!(committed(&config).await, Offset::Invalid);
    abandoned.ack.abandon().await.expect("abandoned");
    assert_eq!(
        committed_change(&config, Offset::Invalid).await,
        Offset::Offset(2),
        "the commit position moved past both jobs"
    );
}
