//! The worker side of the bench: takes jobs from the Redis Stream with its
//! own consumer group and publishes each session's events on Redis Pub/Sub,
//! exactly as PROTOCOL.md asks of a worker — so any conforming gateway
//! (ours, the Python reference) can be driven.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use redis::AsyncCommands;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::watch;

use crate::clock::now_us;

/// What the worker does with each session.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// `worker_ack`, `events` pieces as fast as possible, `FinalAnswerStreamEnd`.
    Burst { events: usize },
    /// The same, one piece every `interval`.
    Paced { events: usize, interval: Duration },
    /// `worker_ack`, then nothing until released, then `FinalAnswerStreamEnd`.
    Hold,
}

/// A running bench worker; stops when dropped.
pub struct BenchWorker {
    stop: watch::Sender<bool>,
    release: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl BenchWorker {
    pub async fn start(redis_url: &str, stream: &str, plan: Plan) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url).context("redis url")?;
        // Under full load a reply can take longer than redis-rs's default 500 ms.
        let config =
            AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
        let mut reader = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .context("connecting to redis")?;
        let publisher = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let group = format!("sse_bench_{}_{}", std::process::id(), now_us());
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(&group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut reader)
            .await
            .context("creating the bench consumer group")?;
        let (stop, stop_rx) = watch::channel(false);
        let (release, release_rx) = watch::channel(false);
        let task = tokio::spawn(read_jobs(
            reader,
            publisher,
            stream.to_owned(),
            group,
            plan,
            stop_rx,
            release_rx,
        ));
        Ok(BenchWorker {
            stop,
            release,
            task,
        })
    }

    /// Lets every held session finish (`Plan::Hold`).
    pub fn release(&self) {
        self.release.send_replace(true);
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        self.task.await?
    }
}

async fn read_jobs(
    mut reader: MultiplexedConnection,
    publisher: MultiplexedConnection,
    stream: String,
    group: String,
    plan: Plan,
    stop: watch::Receiver<bool>,
    release: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let options = StreamReadOptions::default()
        .group(&group, "bench")
        .count(512)
        .block(100);
    let release = Arc::new(release);
    while !*stop.borrow() {
        let reply: StreamReadReply = reader.xread_options(&[&stream], &[">"], &options).await?;
        let mut ids = Vec::new();
        for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
            let job: Option<String> = entry.get("job");
            ids.push(entry.id);
            let Some(session) = job.as_deref().and_then(session_id_of) else {
                eprintln!("bench worker: skipping an entry without a job");
                continue;
            };
            tokio::spawn(run_session(
                publisher.clone(),
                session,
                plan,
                release.as_ref().clone(),
            ));
        }
        if !ids.is_empty() {
            let _: () = reader.xack(&stream, &group, &ids).await?;
        }
    }
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&stream)
        .arg(&group)
        .query_async(&mut reader)
        .await?;
    Ok(())
}

fn session_id_of(job: &str) -> Option<String> {
    let job: serde_json::Value = serde_json::from_str(job).ok()?;
    Some(job.get("session_id")?.as_str()?.to_owned())
}

async fn run_session(
    mut redis: MultiplexedConnection,
    session: String,
    plan: Plan,
    mut release: watch::Receiver<bool>,
) {
    let channel = format!("sse_session:{session}");
    let mut publish = async |message: String| -> bool {
        let sent: redis::RedisResult<i64> = redis.publish(&channel, message).await;
        sent.is_ok()
    };
    if !publish(r#"{"event_type":"worker_ack","payload":{}}"#.to_owned()).await {
        return;
    }
    let (events, interval) = match plan {
        Plan::Burst { events } => (events, None),
        Plan::Paced { events, interval } => (events, Some(interval)),
        Plan::Hold => {
            let _ = release.wait_for(|released| *released).await;
            (0, None)
        }
    };
    let mut ticker = interval.map(|every| {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    for seq in 0..events {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        let piece = format!(
            r#"{{"event_type":"FinalAnswerStream","payload":{{"char":"x","seq":{seq},"t":{}}}}}"#,
            now_us()
        );
        if !publish(piece).await {
            return;
        }
    }
    publish(r#"{"event_type":"FinalAnswerStreamEnd","payload":{}}"#.to_owned()).await;
}
