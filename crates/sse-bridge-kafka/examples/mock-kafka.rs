//! A throwaway Kafka for development and demos, no JVM needed: librdkafka's
//! in-process mock broker, reachable on a fixed loopback port, with the job
//! topic created.
//!
//! ```text
//! cargo run -p sse-bridge-kafka --example mock-kafka -- --port 9092
//! ```
//!
//! then point the gateway and the workers at `127.0.0.1:9092`. Everything
//! lives in memory and is gone on Ctrl-C.
//!
//! The mock broker always listens on a port the kernel picks, so this binds
//! the requested port itself, forwards every connection to the broker, and
//! makes the broker advertise the requested port in its metadata: clients
//! only ever see `127.0.0.1:<port>`.
//!
//! One quirk of the mock: after a consumer leaves its group, the next join
//! waits up to the group's `session.timeout.ms` (45 s by default). Give
//! restarting workers `session.timeout.ms=6000` and
//! `heartbeat.interval.ms=1000` to rejoin quickly.

use std::ffi::CString;

use anyhow::{Context, bail};
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Args {
    /// Loopback port to serve Kafka on.
    #[arg(long, default_value_t = 9092)]
    port: u16,
    /// Topic to create.
    #[arg(long, default_value = sse_bridge_kafka::config::DEFAULT_TOPIC)]
    topic: String,
    /// Partitions of the topic: the most workers that share jobs.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
}

const HOST: &str = "127.0.0.1";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt::init();
    let args = Args::parse();
    let listener = TcpListener::bind((HOST, args.port))
        .await
        .with_context(|| format!("cannot listen on {HOST}:{}", args.port))?;

    // The cluster belongs to the client that creates it; it lives as long as `owner`.
    let owner: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .create()
        .context("cannot start the mock cluster")?;
    let cluster = owner
        .client()
        .mock_cluster()
        .context("the client has no mock cluster")?;
    let broker = cluster.bootstrap_servers();
    cluster
        .create_topic(&args.topic, args.partitions, 1)
        .with_context(|| format!("cannot create topic {}", args.topic))?;
    advertise(&owner, args.port)?;

    println!("bootstrap servers: {HOST}:{}", args.port);
    println!(
        "topic {} with {} partitions; Ctrl-C to stop",
        args.topic, args.partitions
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => { tokio::spawn(forward(client, broker.clone())); }
                Err(error) => tracing::warn!("accept failed: {error}"),
            },
        }
    }
}

/// Makes the mock broker (id 1) tell clients to connect to `HOST:port`.
fn advertise(owner: &BaseProducer, port: u16) -> anyhow::Result<()> {
    let host = CString::new(HOST)?;
    // SAFETY: the cluster pointer is valid while `owner` lives, `host` outlives
    // the call (the mock copies it), and the mock takes its own lock.
    unsafe {
        let cluster = rdsys::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
        if cluster.is_null() {
            bail!("the client has no mock cluster");
        }
        rdsys::rd_kafka_mock_broker_set_host_port(cluster, 1, host.as_ptr(), port.into());
    }
    Ok(())
}

async fn forward(mut client: TcpStream, broker: String) {
    let result = async {
        let mut upstream = TcpStream::connect(&broker).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await
    }
    .await;
    if let Err(error) = result {
        tracing::debug!("connection to the mock broker ended: {error}");
    }
}
