//! Connections: opening a client from a URL, named connections that
//! reconnect on demand, [`Commands`] (a named connection, or the cluster
//! client in cluster mode), and the reconnect backoff.
//!
//! Every connection is named with `CLIENT SETNAME` (`sse-bridge:sub`,
//! `sse-bridge:pub`, ...; the prefix is [`RedisConfig::client_name`]) so operators can tell them apart in `CLIENT LIST`.
//! redis-rs's `ConnectionManager` cannot re-apply a name after it reconnects,
//! hence [`NamedConnection`], a small lazily-reconnecting wrapper around a
//! multiplexed connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, FromRedisValue, IntoConnectionInfo, ProtocolVersion,
};
use sse_bridge_core::BrokerError;
use tokio::sync::Mutex;

use crate::config::RedisConfig;
use crate::error::{bounded, broker_error};

/// Opens a client for `config.url`, forcing RESP3 when `resp3` (needed for
/// Pub/Sub pushes on a multiplexed connection; Redis >= 6).
pub(crate) fn open_client(config: &RedisConfig, resp3: bool) -> Result<Client, BrokerError> {
    open_client_url(&config.url, config.tls_ca_file.as_deref(), resp3)
}

fn open_client_url(
    url: &str,
    tls_ca_file: Option<&std::path::Path>,
    resp3: bool,
) -> Result<Client, BrokerError> {
    #[cfg(feature = "tls")]
    install_crypto_provider();
    // The URL may hold a password: never echo it in the error.
    let info = url
        .into_connection_info()
        .map_err(|e| BrokerError::Rejected(format!("invalid Redis URL ({:?})", e.kind())))?;
    let info = if resp3 {
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        info.set_redis_settings(settings)
    } else {
        info
    };
    match tls_ca_file {
        None => Client::open(info).map_err(broker_error),
        Some(path) => with_private_ca(info, path),
    }
}

#[cfg(feature = "tls")]
fn with_private_ca(
    info: redis::ConnectionInfo,
    path: &std::path::Path,
) -> Result<Client, BrokerError> {
    let root_cert = std::fs::read(path).map_err(|e| {
        BrokerError::Rejected(format!("cannot read TLS CA file {}: {e}", path.display()))
    })?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    };
    Client::build_with_tls(info, certificates).map_err(broker_error)
}

#[cfg(not(feature = "tls"))]
fn with_private_ca(_: redis::ConnectionInfo, _: &std::path::Path) -> Result<Client, BrokerError> {
    Err(BrokerError::Rejected(
        "built without the `tls` feature".into(),
    ))
}

/// redis-rs builds its rustls config from the process-wide crypto provider;
/// install ring unless the binary already chose one (then this is a no-op).
#[cfg(feature = "tls")]
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Per-connection settings: connect and answer deadlines.
pub(crate) fn connection_config(
    config: &RedisConfig,
    response_timeout: Duration,
) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(response_timeout))
}

/// Connects and names the connection.
pub(crate) async fn connect_named(
    client: &Client,
    settings: &AsyncConnectionConfig,
    name: &str,
    timeout: Duration,
) -> Result<MultiplexedConnection, BrokerError> {
    let mut conn = bounded(
        timeout,
        client.get_multiplexed_async_connection_with_config(settings),
    )
    .await?;
    let setname = redis::cmd("CLIENT").arg("SETNAME").arg(name).to_owned();
    bounded(timeout, setname.exec_async(&mut conn)).await?;
    Ok(conn)
}

/// A named multiplexed connection, re-established by the first command after
/// it broke. Commands are pipelined on it, so it suits many concurrent callers.
pub(crate) struct NamedConnection {
    client: Client,
    settings: AsyncConnectionConfig,
    name: String,
    connect_timeout: Duration,
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    /// Run on every new connection after naming it (loads functions).
    init: Option<Cmd>,
}

impl NamedConnection {
    pub(crate) fn new(
        client: Client,
        settings: AsyncConnectionConfig,
        name: String,
        connect_timeout: Duration,
    ) -> Self {
        NamedConnection {
            client,
            settings,
            name,
            connect_timeout,
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
            init: None,
        }
    }

    /// Runs `init` on every new connection before any other command.
    pub(crate) fn with_init(mut self, init: Cmd) -> Self {
        self.init = Some(init);
        self
    }

    /// The live connection, connecting first if there is none.
    pub(crate) async fn get(&self) -> Result<(u64, MultiplexedConnection), BrokerError> {
        // Held across the connect so concurrent callers share one attempt.
        let mut current = self.current.lock().await;
        if let Some((generation, conn)) = &*current {
            return Ok((*generation, conn.clone()));
        }
        // Connect plus SETNAME: two round trips.
        let conn = connect_named(
            &self.client,
            &self.settings,
            &self.name,
            self.connect_timeout * 2,
        )
        .await?;
        if let Some(init) = &self.init {
            let mut conn = conn.clone();
            bounded(self.connect_timeout * 2, init.exec_async(&mut conn)).await?;
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *current = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    /// Runs `cmd`; a broken connection is discarded so the next call reconnects.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, BrokerError> {
        let (generation, mut conn) = self.get().await?;
        let result = cmd.query_async(&mut conn).await;
        self.checked(generation, result).await
    }

    /// Runs `pipeline` like [`Self::query`].
    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T, BrokerError> {
        let (generation, mut conn) = self.get().await?;
        let result = pipeline.query_async(&mut conn).await;
        self.checked(generation, result).await
    }

    /// Passes `result` on, discarding the connection if it broke.
    async fn checked<T>(
        &self,
        generation: u64,
        result: redis::RedisResult<T>,
    ) -> Result<T, BrokerError> {
        match result {
            Ok(value) => Ok(value),
            Err(err) => {
                if err.is_unrecoverable_error() || err.is_timeout() || err.is_io_error() {
                    self.discard(generation).await;
                }
                Err(broker_error(err))
            }
        }
    }

    /// Forgets the connection of `generation`, unless it was already replaced.
    async fn discard(&self, generation: u64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }
}

/// Where commands go: one named connection to a single Redis, or redis-rs's
/// cluster client (which routes each command by its key's slot and follows
/// `MOVED` / `ASK`).
pub(crate) enum Commands {
    // Boxed: the cluster variant is small, and these live for the process.
    Single(Box<NamedConnection>),
    Cluster(ClusterCommands),
}

impl Commands {
    /// Connects for `role` (the connection name's suffix), running `init`
    /// (the function library's `FUNCTION LOAD`) first where given.
    pub(crate) async fn connect(
        config: &RedisConfig,
        role: &str,
        response_timeout: Duration,
        init: Option<Cmd>,
    ) -> Result<Commands, BrokerError> {
        if config.cluster {
            return ClusterCommands::connect(config, response_timeout, init)
                .await
                .map(Commands::Cluster);
        }
        let mut named = NamedConnection::new(
            open_client(config, false)?,
            connection_config(config, response_timeout),
            format!("{}:{role}", config.client_name),
            config.connect_timeout,
        );
        if let Some(init) = init {
            named = named.with_init(init);
        }
        named.get().await?;
        Ok(Commands::Single(Box::new(named)))
    }

    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, BrokerError> {
        match self {
            Commands::Single(named) => named.query(cmd).await,
            Commands::Cluster(cluster) => cluster.query(cmd).await,
        }
    }

    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T, BrokerError> {
        match self {
            Commands::Single(named) => named.query_pipeline(pipeline).await,
            Commands::Cluster(cluster) => {
                let mut conn = cluster.conn.clone();
                pipeline.query_async(&mut conn).await.map_err(broker_error)
            }
        }
    }

    /// The cluster client, in cluster mode.
    pub(crate) fn cluster_connection(&self) -> Option<ClusterConnection> {
        match self {
            Commands::Single(_) => None,
            Commands::Cluster(cluster) => Some(cluster.conn.clone()),
        }
    }
}

/// redis-rs's cluster client, with the function library (re)loaded on
/// every master that lacks it (a master added by resharding starts empty).
pub(crate) struct ClusterCommands {
    conn: ClusterConnection,
    init: Option<Cmd>,
}

impl ClusterCommands {
    async fn connect(
        config: &RedisConfig,
        response_timeout: Duration,
        init: Option<Cmd>,
    ) -> Result<ClusterCommands, BrokerError> {
        if config.seeds().any(|seed| seed.starts_with("rediss://")) {
            return Err(BrokerError::Rejected(
                "TLS (rediss://) is not supported in cluster mode yet".into(),
            ));
        }
        let client = ClusterClientBuilder::new(config.seeds().collect::<Vec<_>>())
            .connection_timeout(config.connect_timeout)
            .response_timeout(response_timeout)
            .build()
            .map_err(|e| {
                BrokerError::Rejected(format!("invalid cluster seeds ({:?})", e.kind()))
            })?;
        let conn = bounded(config.connect_timeout * 2, client.get_async_connection()).await?;
        let commands = ClusterCommands { conn, init };
        commands.load().await?;
        Ok(commands)
    }

    /// Runs `init` on every master (FUNCTION LOAD routes to all of them).
    async fn load(&self) -> Result<(), BrokerError> {
        if let Some(init) = &self.init {
            let mut conn = self.conn.clone();
            init.exec_async(&mut conn).await.map_err(broker_error)?;
        }
        Ok(())
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, BrokerError> {
        let mut conn = self.conn.clone();
        match cmd.query_async(&mut conn).await {
            Err(error) if self.init.is_some() && is_missing_function(&error) => {
                self.load().await?;
                cmd.query_async(&mut conn).await.map_err(broker_error)
            }
            result => result.map_err(broker_error),
        }
    }
}

fn is_missing_function(error: &redis::RedisError) -> bool {
    error.to_string().contains("Function not found")
}

/// Exponential reconnect delays with jitter, so a fleet of gateways does not
/// reconnect to a restarted Redis in lockstep.
pub(crate) struct Backoff {
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Backoff { max, next: min }
    }

    /// The next delay: between half and all of the current step.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        step / 2 + step / 2 * jitter / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        let steps = [50, 100, 200, 300, 300, 300];
        for (delay, step) in delays.iter().zip(steps) {
            let step = Duration::from_millis(step);
            assert!(
                *delay >= step / 2 && *delay <= step,
                "{delay:?} for step {step:?}"
            );
        }
    }

    #[test]
    fn tls_url_with_password_opens_a_client() {
        assert!(open_client_url("rediss://user:pw@redis.example:6380/1", None, true).is_ok());
    }

    #[test]
    fn invalid_url_is_rejected_without_echoing_it() {
        let err = open_client_url("http://user:secret@host", None, false).err();
        let Some(BrokerError::Rejected(message)) = err else {
            panic!("expected Rejected, got {err:?}");
        };
        assert!(!message.contains("secret"));
    }
}
