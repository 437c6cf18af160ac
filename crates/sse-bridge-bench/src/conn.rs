//! The bench's command connection to the gateway's Redis: one multiplexed
//! connection to a single Redis, or redis-rs's cluster client (which routes
//! each command by its key's slot) with `--redis-cluster`, where `--redis-url`
//! is a comma-separated list of seed nodes.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

/// A connection that routes like the gateway's: single node or cluster.
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// Under full load a reply can take longer than redis-rs's default 500 ms.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

impl Conn {
    /// Opens one connection (single node: exactly what the bench always
    /// opened; cluster: a cluster client over the seeds in `redis_url`).
    pub async fn open(redis_url: &str, cluster: bool) -> anyhow::Result<Conn> {
        if cluster {
            let client = ClusterClientBuilder::new(seeds(redis_url).collect::<Vec<_>>())
                .response_timeout(RESPONSE_TIMEOUT)
                .build()
                .context("redis cluster seeds")?;
            let conn = client
                .get_async_connection()
                .await
                .context("connecting to the redis cluster")?;
            return Ok(Conn::Cluster(conn));
        }
        let client = redis::Client::open(redis_url).context("redis url")?;
        let config = AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .context("connecting to redis")?;
        Ok(Conn::Single(conn))
    }
}

/// The seed URLs of a comma-separated `--redis-url`.
pub fn seeds(redis_url: &str) -> impl Iterator<Item = &str> {
    redis_url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}
