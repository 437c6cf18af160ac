//! RedisJobQueue against the real Redis on 127.0.0.1:6379, each test on its
//! own stream.

mod common;

use std::time::Duration;

use common::{REDIS_URL, TempKey, plain};
use redis::AsyncTypedCommands;
use sse_bridge_core::queue::{JobDispatcher, JobSource, ReceivedJob};
use sse_bridge_core::{Job, SessionId, SessionRequest};
use sse_bridge_redis::{RedisJobQueue, RedisQueueConfig};

const WAIT: Duration = Duration::from_secs(5);

fn config(stream: &str) -> RedisQueueConfig {
    let mut config = RedisQueueConfig::new(REDIS_URL);
    config.stream = stream.to_owned();
    config.claim_idle = Duration::from_millis(200);
    config.block = Duration::from_millis(100);
    config
}

fn job() -> Job {
    let request = SessionRequest::parse(br#"{"user_query":"q"}"#).unwrap();
    Job::new(SessionId::new(), request)
}

async fn next(queue: &RedisJobQueue) -> ReceivedJob {
    tokio::time::timeout(WAIT, queue.next_job())
        .await
        .expect("job in time")
        .expect("no broker error")
        .expect("source open")
}

/// The job's entry still pending in the group, and its owner.
async fn pending_owner(stream: &str) -> Option<String> {
    let mut conn = plain(REDIS_URL).await;
    let reply: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg("sse_workers")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut conn)
        .await
        .unwrap();
    reply.into_iter().next().map(|(_, owner, _, _)| owner)
}

#[tokio::test]
async fn each_job_goes_to_one_of_two_workers() {
    let stream = TempKey::new("sse_jobs");
    let gateway = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let a = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let b = RedisJobQueue::connect(config(&stream)).await.unwrap();
    assert_ne!(a.consumer(), b.consumer());
    gateway.check_ready().await.unwrap();

    let jobs: Vec<Job> = (0..2).map(|_| job()).collect();
    for job in &jobs {
        gateway.dispatch(job).await.unwrap();
    }
    let (first, second) = tokio::join!(next(&a), next(&b));
    let mut got = vec![first.job.clone(), second.job.clone()];
    got.sort_by_key(|j| j.session_id.to_string());
    let mut sent = jobs.clone();
    sent.sort_by_key(|j| j.session_id.to_string());
    assert_eq!(got, sent, "each job delivered exactly once");

    first.ack.ack().await.unwrap();
    second.ack.ack().await.unwrap();
    assert_eq!(pending_owner(&stream).await, None);
    // Nothing left: a read times out without a job.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), a.next_job())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_crashed_workers_job_is_reclaimed_after_claim_idle() {
    let stream = TempKey::new("sse_jobs");
    let gateway = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let crashing = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let job = job();
    gateway.dispatch(&job).await.unwrap();
    let taken = next(&crashing).await;
    assert_eq!(taken.job, job);
    // The worker dies: no ack, no keepalive.
    drop(taken);
    drop(crashing);

    let survivor = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let reclaimed = next(&survivor).await;
    assert_eq!(reclaimed.job, job);
    assert_eq!(
        pending_owner(&stream).await.as_deref(),
        Some(survivor.consumer())
    );
    reclaimed.ack.ack().await.unwrap();
    assert_eq!(pending_owner(&stream).await, None);
}

#[tokio::test]
async fn a_live_workers_long_job_is_not_reclaimed() {
    let stream = TempKey::new("sse_jobs");
    let gateway = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let busy = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let other = RedisJobQueue::connect(config(&stream)).await.unwrap();
    gateway.dispatch(&job()).await.unwrap();
    let running = next(&busy).await;
    // Five times claim_idle: the keepalive must keep the job with its owner.
    let stolen = tokio::time::timeout(Duration::from_secs(1), other.next_job()).await;
    assert!(stolen.is_err(), "job taken from a live worker");
    assert_eq!(
        pending_owner(&stream).await.as_deref(),
        Some(busy.consumer())
    );
    running.ack.ack().await.unwrap();
}

#[tokio::test]
async fn malformed_entries_are_acknowledged_and_skipped() {
    let stream = TempKey::new("sse_jobs");
    let worker = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let mut conn = plain(REDIS_URL).await;
    let _: String = redis::cmd("XADD")
        .arg(&*stream)
        .arg("*")
        .arg("job")
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&*stream)
        .arg("*")
        .arg("other")
        .arg("field")
        .query_async(&mut conn)
        .await
        .unwrap();
    let good = job();
    worker.dispatch(&good).await.unwrap();

    let received = next(&worker).await;
    assert_eq!(received.job, good);
    received.ack.ack().await.unwrap();
    assert_eq!(
        pending_owner(&stream).await,
        None,
        "malformed entries acknowledged"
    );
}

#[tokio::test]
async fn dispatch_caps_the_stream_length() {
    let stream = TempKey::new("sse_jobs");
    let mut config = config(&stream);
    config.max_len = 10;
    let gateway = RedisJobQueue::connect(config).await.unwrap();
    for _ in 0..1000 {
        gateway.dispatch(&job()).await.unwrap();
    }
    let mut conn = plain(REDIS_URL).await;
    let len = conn.xlen(&*stream).await.unwrap();
    // `MAXLEN ~` trims whole stream nodes (100 entries by default).
    assert!(len <= 10 + 100, "stream length {len}");
}

#[tokio::test]
async fn a_deleted_stream_and_group_are_recreated() {
    let stream = TempKey::new("sse_jobs");
    let worker = RedisJobQueue::connect(config(&stream)).await.unwrap();
    let mut conn = plain(REDIS_URL).await;
    conn.del(&*stream).await.unwrap();
    let good = job();
    let reader = tokio::spawn({
        let worker = worker.clone();
        async move { next(&worker).await.job }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.dispatch(&good).await.unwrap();
    assert_eq!(reader.await.unwrap(), good);
}

#[tokio::test]
async fn partitions_share_the_jobs_and_every_partition_is_read_and_swept() {
    let stream = TempKey::new("sse_jobs");
    // The partitions' keys, deleted at the end like the stream's.
    let _partition_keys: Vec<TempKey> = (0..3)
        .map(|i| TempKey::from_name(format!("{}:{i}", &*stream)))
        .collect();
    let partitioned = || RedisQueueConfig {
        partitions: 3,
        ..config(&stream)
    };
    let gateway = RedisJobQueue::connect(partitioned()).await.unwrap();
    let jobs: Vec<Job> = (0..6).map(|_| job()).collect();
    for job in &jobs {
        gateway.dispatch(job).await.unwrap();
    }
    let mut conn = plain(REDIS_URL).await;
    // A queue that only dispatches (a gateway) never takes a job.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        let key = format!("{}:{i}", &*stream);
        let len: usize = conn.xlen(&key).await.unwrap();
        assert_eq!(len, 2, "partition {i} holds two of six jobs");
        // XPENDING's summary starts with the number of pending entries.
        let summary: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(&key)
            .arg("sse_workers")
            .query_async(&mut conn)
            .await
            .unwrap();
        let pending = summary.first().cloned();
        assert_eq!(
            pending,
            Some(redis::Value::Int(0)),
            "partition {i}: a job was taken by the dispatcher"
        );
    }

    // A worker takes every job, whatever its partition; one crashes with
    // one of them, which a survivor reclaims from its partition.
    let crashing = RedisJobQueue::connect(partitioned()).await.unwrap();
    let lost = next(&crashing).await;
    drop(crashing);
    let survivor = RedisJobQueue::connect(partitioned()).await.unwrap();
    let mut got = vec![lost.job.clone()];
    drop(lost);
    let mut reclaimed = false;
    for _ in 0..6 {
        let received = next(&survivor).await;
        reclaimed |= got.contains(&received.job);
        if !got.contains(&received.job) {
            got.push(received.job.clone());
        }
        received.ack.ack().await.unwrap();
    }
    assert!(reclaimed, "the crashed worker's job was reclaimed");
    got.sort_by_key(|j| j.session_id.to_string());
    let mut sent = jobs;
    sent.sort_by_key(|j| j.session_id.to_string());
    assert_eq!(got, sent);
}

#[tokio::test]
async fn a_stopping_worker_keeps_the_job_its_read_was_handed_and_then_reads_no_more() {
    let stream = TempKey::new("sse_jobs");
    let slow_reads = || RedisQueueConfig {
        block: Duration::from_secs(1),
        claim_idle: Duration::from_secs(60),
        ..config(&stream)
    };
    let gateway = RedisJobQueue::connect(slow_reads()).await.unwrap();
    let worker = std::sync::Arc::new(RedisJobQueue::connect(slow_reads()).await.unwrap());
    let reading = tokio::spawn({
        let worker = worker.clone();
        async move { worker.next_job().await }
    });
    // The read is blocking at Redis when the worker starts stopping, and
    // the job arrives while it still blocks: Redis hands it to this worker,
    // so its next_job must return it rather than strand it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop_reading();
    let job = job();
    gateway.dispatch(&job).await.unwrap();
    let received = tokio::time::timeout(WAIT, reading)
        .await
        .expect("the read answered in time")
        .unwrap()
        .expect("no broker error")
        .expect("the job the read was handed");
    assert_eq!(received.job, job);
    received.ack.ack().await.unwrap();
    // Stopped, with nothing waiting: the next call answers None after one
    // empty read instead of reading on.
    let after = tokio::time::timeout(WAIT, worker.next_job())
        .await
        .expect("next_job returned after one read");
    assert!(after.expect("no broker error").is_none());
}
