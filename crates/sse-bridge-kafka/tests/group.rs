//! Several workers in one consumer group share the jobs.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{MockKafka, committed, committed_change, job, within};
use rdkafka::Offset;
use sse_bridge_core::{JobDispatcher, JobSource};
use sse_bridge_kafka::{KafkaDispatcher, KafkaJobSource};
use tokio::sync::mpsc;

const PARTITIONS: usize = 4;
const JOBS: usize = 100;

/// What is asserted: with group membership stable (both workers own
/// partitions before the first dispatch and nobody joins or leaves after),
/// every job reaches exactly one worker, once. Across a rebalance a job may
/// legitimately arrive twice (at-least-once); that is not exercised here.
#[tokio::test(flavor = "multi_thread")]
async fn each_job_reaches_exactly_one_worker_of_the_group() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(PARTITIONS as i32));
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    let workers: Vec<Arc<KafkaJobSource>> = (0..2)
        .map(|_| Arc::new(KafkaJobSource::new(&config).unwrap()))
        .collect();

    let (received_tx, mut received) = mpsc::unbounded_channel();
    for (worker, source) in workers.iter().enumerate() {
        let (source, received_tx) = (source.clone(), received_tx.clone());
        // Taking jobs is also what drives the group protocol.
        tokio::spawn(async move {
            while let Ok(Some(job)) = source.next_job().await {
                let id = job.job.session_id;
                job.ack.ack().await.expect("acked");
                if received_tx.send((worker, id)).is_err() {
                    break;
                }
            }
        });
    }
    within(Duration::from_secs(20), async {
        loop {
            let owned: Vec<usize> = workers.iter().map(|w| w.assignment().len()).collect();
            if owned.iter().all(|&n| n > 0) && owned.iter().sum::<usize>() == PARTITIONS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let mut dispatched = HashSet::new();
    for i in 0..JOBS {
        let job = job(&format!("query {i}"));
        dispatcher.dispatch(&job).await.expect("dispatched");
        dispatched.insert(job.session_id);
    }

    let mut seen = HashSet::new();
    let mut per_worker = [0usize; 2];
    within(Duration::from_secs(20), async {
        while seen.len() < JOBS {
            let (worker, id) = received.recv().await.expect("workers run");
            assert!(seen.insert(id), "job {id} delivered twice");
            per_worker[worker] += 1;
        }
    })
    .await;
    assert_eq!(seen, dispatched);
    assert!(per_worker.iter().all(|&n| n > 0), "{per_worker:?}");
    // Nothing more trickles in.
    let late = tokio::time::timeout(Duration::from_secs(1), received.recv()).await;
    assert!(late.is_err(), "unexpected delivery {late:?}");
}

/// A worker leaves (scale-in) while one of its jobs runs: the group
/// rebalances at once, the job is delivered again to the partition's new
/// owner, and the leaving worker's late ack commits nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_leaving_worker_hands_its_partitions_over_and_its_late_acks_commit_nothing() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(1));
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    let running = job("running");
    dispatcher.dispatch(&running).await.expect("dispatched");

    let first = KafkaJobSource::new(&config).unwrap();
    let before = within(Duration::from_secs(15), first.next_job())
        .await
        .expect("next job")
        .expect("source open");
    assert_eq!(before.job, running);

    let second = KafkaJobSource::new(&config).unwrap();
    within(Duration::from_secs(10), first.leave()).await;
    assert!(first.assignment().is_empty(), "{:?}", first.assignment());
    assert!(
        within(Duration::from_secs(1), first.next_job())
            .await
            .expect("a source that left")
            .is_none(),
        "a source that left gives no more jobs"
    );
    let after = within(Duration::from_secs(20), second.next_job())
        .await
        .expect("next job")
        .expect("source open");
    assert_eq!(after.job, running, "redelivered after the leave");

    before.ack.ack().await.expect("a stale ack is not an error");
    assert_eq!(
        committed(&config).await,
        Offset::Invalid,
        "stale ack committed"
    );
    after.ack.ack().await.expect("acked");
    assert_eq!(
        committed_change(&config, Offset::Invalid).await,
        Offset::Offset(1)
    );
}

/// Cooperative rebalancing: a worker joining takes only the partitions that
/// move; the others stay with their owner, whose running jobs there are not
/// delivered again and whose acks still commit.
#[tokio::test(flavor = "multi_thread")]
async fn a_joining_worker_moves_only_the_partitions_it_takes() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(2));
    let first = KafkaJobSource::new(&config).unwrap();
    eventually_owns(&first, 2).await;
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    let mut running = Vec::new();
    for i in 0..6 {
        dispatcher
            .dispatch(&job(&format!("query {i}")))
            .await
            .expect("dispatched");
        running.push(
            within(Duration::from_secs(15), first.next_job())
                .await
                .expect("next job")
                .expect("source open"),
        );
    }
    let second = KafkaJobSource::new(&config).unwrap();
    eventually_owns(&second, 1).await;
    eventually_owns(&first, 1).await;
    assert_ne!(first.assignment(), second.assignment());
    // The moved partition's running jobs come again, to the new owner only
    // (an eager rebalance would revoke both partitions and deliver every
    // job again).
    let ran: HashSet<_> = running.iter().map(|r| r.job.session_id).collect();
    while let Ok(Ok(Some(again))) =
        tokio::time::timeout(Duration::from_secs(3), second.next_job()).await
    {
        assert!(ran.contains(&again.job.session_id), "{:?}", again.job);
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), first.next_job())
            .await
            .is_err(),
        "the kept partition's jobs were delivered again"
    );
    for job in running {
        job.ack.ack().await.expect("acked");
    }
}

async fn eventually_owns(source: &KafkaJobSource, partitions: usize) {
    within(Duration::from_secs(20), async {
        while source.assignment().len() != partitions {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// A worker with every job slot busy does not ask for jobs, yet must take
/// part in rebalances: otherwise a real broker makes a joining worker wait for
/// it up to the rebalance timeout (`max.poll.interval.ms`), and the group
/// stalls. (The mock broker gives up on it after the session timeout instead,
/// so what is checked is that the busy worker saw the revocation.) Its paused
/// partitions resume once it asks for jobs again, and every job not taken
/// before the rebalance is delivered after it (the one running is delivered
/// again only if its partition moved).
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_worker_does_not_stall_a_joining_one() {
    let kafka = MockKafka::start();
    let config = kafka.config(&kafka.topic(2));
    let dispatcher = KafkaDispatcher::new(&config).unwrap();
    let mut dispatched = HashSet::new();
    for i in 0..6 {
        let job = job(&format!("query {i}"));
        dispatcher.dispatch(&job).await.expect("dispatched");
        dispatched.insert(job.session_id);
    }

    let busy = Arc::new(KafkaJobSource::new(&config).unwrap());
    let running = within(Duration::from_secs(15), busy.next_job())
        .await
        .expect("next job")
        .expect("source open");
    // No free slot for a while: the next job waits and fetching pauses.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let joining = Arc::new(KafkaJobSource::new(&config).unwrap());
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let take_from = |source: Arc<KafkaJobSource>| {
        let received_tx = received_tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(job)) = source.next_job().await {
                let _ = received_tx.send(job.job.session_id);
            }
        })
    };
    take_from(joining.clone());
    // The busy worker owned both partitions; it must have handed one over.
    within(Duration::from_secs(15), async {
        while joining.assignment().len() != 1 || busy.assignment().len() != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // A slot frees: the busy worker resumes.
    take_from(busy.clone());
    let mut seen = HashSet::from([running.job.session_id]);
    within(Duration::from_secs(15), async {
        while seen != dispatched {
            seen.insert(received.recv().await.expect("workers run"));
        }
    })
    .await;
}
