//! `sse-bridge publish`: one event into a session (its log and its channel),
//! from a shell.

use anyhow::Context;
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_worker::publish::Published;
use sse_bridge_worker::publish_event;

use crate::cli::PublishArgs;

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let payload: serde_json::Value =
        serde_json::from_str(&args.payload).context("--payload is not valid JSON")?;
    let config = RedisConfig {
        client_name: "sse-bridge-publish".into(),
        tls_ca_file: args.redis_tls_ca,
        cluster: args.redis_cluster,
        ..RedisConfig::new(args.redis_url)
    };
    let bus = RedisBus::connect(config)
        .await
        .context("connecting to Redis")?;
    let published = publish_event(
        &bus,
        args.session,
        args.attempt.as_deref(),
        &args.event_type,
        payload,
    )
    .await?;
    match published {
        Published::Logged { id, receivers } => println!("logged {id}, delivered to {receivers}"),
        Published::Live { receivers } => println!("delivered to {receivers}"),
    }
    Ok(())
}
