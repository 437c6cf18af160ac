//! Redis in tests: the shared Redis on 127.0.0.1:6379, unique names so tests
//! run in parallel, bounded waits, and a private `redis-server` child for
//! tests that kill Redis.

use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// A plain connection, independent of the code under test. Patient (10 s
/// per answer, not redis-rs's 500 ms): load tests keep Redis busy.
pub async fn plain(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("valid URL");
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("test Redis reachable")
}

/// Polls `check` every 20 ms until it holds; panics after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connections whose `CLIENT SETNAME` starts with `prefix`.
pub async fn clients_named(conn: &mut MultiplexedConnection, prefix: &str) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter(|line| {
            line.split(' ').any(|field| {
                field
                    .strip_prefix("name=")
                    .is_some_and(|n| n.starts_with(prefix))
            })
        })
        .count()
}

/// Subscribers of `channel` at Redis.
pub async fn numsub(conn: &mut MultiplexedConnection, channel: &str) -> u64 {
    let reply: (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .expect("PUBSUB NUMSUB");
    reply.1
}

/// A private `redis-server` on a free port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments, e.g. `--requirepass`.
    pub fn start_with(extra_args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut server = RedisServer {
            port,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGSTOP / SIGCONT: the server hangs with its sockets open, like a
    /// peer lost without a FIN.
    pub fn pause(&self, paused: bool) {
        let child = self.child.as_ref().expect("running");
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill on PATH");
        assert!(status.success());
    }

    /// SIGKILL: no goodbye to the clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process cannot act on SIGKILL's cleanup otherwise.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Channels with at least one subscriber at Redis (`PUBSUB CHANNELS`).
pub async fn pubsub_channels(conn: &mut MultiplexedConnection) -> Vec<String> {
    redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .query_async(conn)
        .await
        .expect("PUBSUB CHANNELS")
}

/// A unique key name on the shared test Redis, deleted when dropped, so
/// test runs leave no streams behind.
pub struct TempKey(String);

impl TempKey {
    pub fn new(prefix: &str) -> Self {
        TempKey(unique(prefix))
    }

    /// A key named exactly `name` (derived from another unique key).
    pub fn from_name(name: String) -> Self {
        TempKey(name)
    }
}

impl std::ops::Deref for TempKey {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for TempKey {
    fn drop(&mut self) {
        // Best effort and blocking: Drop cannot await, and a leftover key
        // is harmless.
        let deleted = redis::Client::open(REDIS_URL)
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut conn| redis::cmd("DEL").arg(&self.0).exec(&mut conn));
        if let Err(error) = deleted {
            eprintln!("could not delete test key {}: {error}", self.0);
        }
    }
}

/// `CLIENT KILL TYPE <kind>`: drops every connection of that kind (`pubsub`,
/// `normal`, ...); returns how many.
pub async fn kill_clients(conn: &mut MultiplexedConnection, kind: &str) -> i64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg(kind)
        .query_async(conn)
        .await
        .expect("CLIENT KILL")
}
