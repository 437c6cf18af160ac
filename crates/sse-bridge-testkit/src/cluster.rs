//! A private Redis Cluster for tests: `redis-server` children on free
//! loopback ports, joined with `redis-cli --cluster create`.
//!
//! [`RedisCluster::start`] returns once the cluster is usable: every node
//! answers `cluster_state:ok`, every node reports the same topology
//! (`CLUSTER NODES`: ids, roles, slot owners), the masters cover all 16384
//! slots and every replica's link to its master is up. The nodes run with
//! `--cluster-node-timeout 2000`, so a killed master is failed over within a
//! few seconds ([`RedisCluster::kill_master`], then
//! [`RedisCluster::wait_for_failover`]).
//!
//! Each node also gets its own free port for the cluster bus
//! (`--cluster-port`), since the default `port + 10000` can be taken or out
//! of range. Node configs, logs and the (unused) data directory live in one
//! temporary directory; dropping the [`RedisCluster`] SIGKILLs every node and
//! removes that directory. Every wait is bounded and panics with the reason
//! the cluster was not ready and the tail of every node's log.
//!
//! Topology questions ([`RedisCluster::masters`], [`RedisCluster::node_for_slot`],
//! ...) are answered from the live cluster, so they stay right after a
//! failover. [`key_slot`] is Redis Cluster's key hashing (CRC16-XMODEM of the
//! key or of its `{hash tag}`, mod 16384), for tests that need to know where
//! a key lives without asking Redis.
//!
//! `scripts/redis-cluster.sh` starts the same kind of cluster by hand, for
//! benchmarks and manual runs.

use std::collections::HashMap;
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::FromRedisValue;

/// Slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// How long starting the cluster, or recovering from a failover, may take.
/// Generous: a loaded 2-core machine runs the whole test suite alongside.
const CONVERGENCE_LIMIT: Duration = Duration::from_secs(30);
/// How long one node may take to answer its first `PING`.
const NODE_START_LIMIT: Duration = Duration::from_secs(10);
/// Attempts at starting one node when its free ports were taken meanwhile.
const NODE_START_ATTEMPTS: usize = 3;
/// Per-query limits: a refused or slow node is "not ready yet", not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Lines of each node's log quoted in a failure message.
const LOG_TAIL_LINES: usize = 40;

/// One node as the cluster sees it (`CLUSTER NODES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub port: u16,
    /// The 40-character cluster node id.
    pub id: String,
    /// Slots served, sorted; empty for replicas and for failed-over masters.
    pub slots: Vec<RangeInclusive<u16>>,
    /// For a replica, the id of its master; `None` for a master.
    pub master_id: Option<String>,
}

impl NodeInfo {
    pub fn is_master(&self) -> bool {
        self.master_id.is_none()
    }

    pub fn serves_slot(&self, slot: u16) -> bool {
        self.slots.iter().any(|range| range.contains(&slot))
    }

    fn slot_count(&self) -> usize {
        self.slots.iter().map(|range| range.clone().count()).sum()
    }
}

/// A running Redis Cluster of `redis-server` children; see the module docs.
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<ClusterNode>,
    /// Slots each master killed by [`RedisCluster::kill_master`] served, by port.
    killed_master_slots: HashMap<u16, Vec<RangeInclusive<u16>>>,
}

/// One `redis-server` child; `process` is `None` once killed.
struct ClusterNode {
    port: u16,
    process: Option<Child>,
    log: PathBuf,
}

impl RedisCluster {
    /// Starts `masters` masters (at least 3, as `redis-cli` demands) with
    /// `replicas_per_master` replicas each, and waits until the cluster is
    /// ready (see the module docs).
    pub async fn start(masters: usize, replicas_per_master: usize) -> RedisCluster {
        assert!(
            masters >= 3,
            "Redis Cluster needs at least 3 masters, asked for {masters}"
        );
        let dir = std::env::temp_dir().join(format!("sse-bridge-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("creating the cluster's temporary directory");
        let mut cluster = RedisCluster {
            dir,
            nodes: Vec::new(),
            killed_master_slots: HashMap::new(),
        };
        for _ in 0..masters * (1 + replicas_per_master) {
            match ClusterNode::start(&cluster.dir).await {
                Ok(node) => cluster.nodes.push(node),
                Err(failures) => panic!("{failures}\nother nodes:\n{}", cluster.logs()),
            }
        }
        cluster.create(replicas_per_master).await;
        cluster
            .poll_until("the new cluster to be ready", async || {
                cluster.converged_topology().await
            })
            .await;
        cluster
    }

    /// `redis://127.0.0.1:P` for every node, killed ones included.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect()
    }

    /// [`Self::seed_urls`] joined with commas, as `--redis-url` takes them.
    pub fn seeds_arg(&self) -> String {
        self.seed_urls().join(",")
    }

    /// Live masters, sorted by port, as the first live node sees them.
    pub async fn masters(&self) -> Vec<NodeInfo> {
        let mut topology = self.live_topology().await;
        topology.retain(NodeInfo::is_master);
        topology
    }

    /// Live replicas, sorted by port, as the first live node sees them.
    pub async fn replicas(&self) -> Vec<NodeInfo> {
        let mut topology = self.live_topology().await;
        topology.retain(|node| !node.is_master());
        topology
    }

    /// Port of the live master serving `slot`.
    pub async fn node_for_slot(&self, slot: u16) -> u16 {
        assert!(slot < SLOT_COUNT, "slot {slot} out of range");
        let masters = self.masters().await;
        masters
            .iter()
            .find(|master| master.serves_slot(slot))
            .unwrap_or_else(|| panic!("no live master serves slot {slot}; masters: {masters:?}"))
            .port
    }

    /// Port of the live master serving `key` (see [`key_slot`]).
    pub async fn master_for_key(&self, key: &str) -> u16 {
        self.node_for_slot(key_slot(key)).await
    }

    /// SIGKILLs the master on `port`, remembering the slots it served for
    /// [`Self::wait_for_failover`].
    pub async fn kill_master(&mut self, port: u16) {
        let topology = self.live_topology().await;
        let master = topology
            .iter()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("no live node on port {port}; topology: {topology:?}"));
        assert!(
            master.is_master(),
            "node {port} is not a master: {master:?}"
        );
        self.killed_master_slots.insert(port, master.slots.clone());
        self.node_mut(port).kill();
    }

    /// Waits (up to 5 s) until a replica of the master on `port` has
    /// everything that master acknowledged (`WAIT 1`), so a failover right
    /// after loses nothing.
    pub async fn wait_for_replication(&self, port: u16) {
        let acknowledged: i64 = query(port, redis::cmd("WAIT").arg(1).arg(5000))
            .await
            .unwrap_or_else(|error| panic!("WAIT on {port}: {error}"));
        assert!(acknowledged >= 1, "no replica of {port} caught up");
    }

    /// Freezes the node on `port` (SIGSTOP): its sockets stay open and
    /// accept bytes, but nothing is answered — a stalled shard, not a lost
    /// one. [`Self::resume_node`] undoes it; dropping the cluster kills it.
    pub fn pause_node(&mut self, port: u16) {
        self.node_mut(port).signal("-STOP");
    }

    /// Lets a node frozen by [`Self::pause_node`] run again (SIGCONT).
    pub fn resume_node(&mut self, port: u16) {
        self.node_mut(port).signal("-CONT");
    }

    /// Waits until one of the replicas of the master killed on
    /// `old_master_port` has taken over all of its slots and the cluster is
    /// ready again (see the module docs); returns the new master's port.
    pub async fn wait_for_failover(&self, old_master_port: u16) -> u16 {
        let old_slots = self
            .killed_master_slots
            .get(&old_master_port)
            .unwrap_or_else(|| panic!("node {old_master_port} was not killed with kill_master"));
        self.poll_until(
            &format!("a replica to take over from master {old_master_port}"),
            async || {
                let topology = self.converged_topology().await?;
                topology
                    .iter()
                    .find(|node| node.is_master() && &node.slots == old_slots)
                    .map(|node| node.port)
                    .ok_or_else(|| format!("no master serves {old_slots:?} yet: {topology:?}"))
            },
        )
        .await
    }

    /// Shard channels with subscribers on the node on `port`
    /// (`PUBSUB SHARDCHANNELS`).
    pub async fn pubsub_shardchannels(&self, port: u16) -> Vec<String> {
        let mut channels: Vec<String> = query(port, redis::cmd("PUBSUB").arg("SHARDCHANNELS"))
            .await
            .unwrap_or_else(|error| panic!("PUBSUB SHARDCHANNELS on {port}: {error}"));
        channels.sort();
        channels
    }

    /// Classic channels with subscribers on the node on `port`
    /// (`PUBSUB CHANNELS`).
    pub async fn pubsub_channels(&self, port: u16) -> Vec<String> {
        let mut channels: Vec<String> = query(port, redis::cmd("PUBSUB").arg("CHANNELS"))
            .await
            .unwrap_or_else(|error| panic!("PUBSUB CHANNELS on {port}: {error}"));
        channels.sort();
        channels
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("--- node {} ---\n{}", node.port, node.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `redis-cli --cluster create` over every node.
    async fn create(&self, replicas_per_master: usize) {
        let addresses = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port));
        let mut create = tokio::process::Command::new("redis-cli");
        create
            .arg("--cluster")
            .arg("create")
            .args(addresses)
            .args(["--cluster-replicas", &replicas_per_master.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(CONVERGENCE_LIMIT, create.output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "redis-cli --cluster create took over {CONVERGENCE_LIMIT:?}; nodes:\n{}",
                    self.logs()
                )
            })
            .expect("redis-cli on PATH");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}):\n{}{}\nnodes:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
    }

    /// The topology every live node agrees on, or why the cluster is not
    /// ready: a node not `cluster_state:ok`, nodes disagreeing, slots not
    /// covered by live masters, or a replica not linked to its master.
    async fn converged_topology(&self) -> Result<Vec<NodeInfo>, String> {
        let mut agreed: Option<(u16, Vec<NodeInfo>)> = None;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let info: String = query(node.port, redis::cmd("CLUSTER").arg("INFO"))
                .await
                .map_err(|error| format!("CLUSTER INFO on {}: {error}", node.port))?;
            if info_field(&info, "cluster_state") != Some("ok") {
                return Err(format!("node {} is not ok:\n{info}", node.port));
            }
            let topology = topology_seen_by(node.port).await?;
            match &agreed {
                None => agreed = Some((node.port, topology)),
                Some((first_port, first)) if *first != topology => {
                    return Err(format!(
                        "nodes disagree: {first_port} sees {first:?}, {} sees {topology:?}",
                        node.port
                    ));
                }
                Some(_) => {}
            }
        }
        let (_, topology) = agreed.ok_or("no node is running")?;
        let known_ports: Vec<u16> = topology.iter().map(|node| node.port).collect();
        let mut node_ports: Vec<u16> = self.nodes.iter().map(|node| node.port).collect();
        node_ports.sort();
        if known_ports != node_ports {
            return Err(format!(
                "nodes known: {known_ports:?}, started: {node_ports:?}"
            ));
        }
        let live = |node: &&NodeInfo| self.is_live(node.port);
        let covered: usize = topology
            .iter()
            .filter(live)
            .filter(|node| node.is_master())
            .map(NodeInfo::slot_count)
            .sum();
        if covered != usize::from(SLOT_COUNT) {
            return Err(format!("live masters serve {covered} slots: {topology:?}"));
        }
        for replica in topology
            .iter()
            .filter(live)
            .filter(|node| !node.is_master())
        {
            let replication: String = query(replica.port, redis::cmd("INFO").arg("replication"))
                .await
                .map_err(|error| format!("INFO replication on {}: {error}", replica.port))?;
            if info_field(&replication, "master_link_status") != Some("up") {
                return Err(format!(
                    "replica {} not linked to its master:\n{replication}",
                    replica.port
                ));
            }
        }
        Ok(topology)
    }

    /// The nodes the first live node knows, sorted by port, killed ones left
    /// out.
    async fn live_topology(&self) -> Vec<NodeInfo> {
        let asked = self
            .nodes
            .iter()
            .find(|node| node.is_running())
            .expect("a running node");
        topology_seen_by(asked.port)
            .await
            .unwrap_or_else(|error| panic!("{error}; nodes:\n{}", self.logs()))
            .into_iter()
            .filter(|node| self.is_live(node.port))
            .collect()
    }

    /// Runs `attempt` every [`POLL_INTERVAL`] until it succeeds; panics
    /// after [`CONVERGENCE_LIMIT`] with the last failure and the logs.
    async fn poll_until<T>(
        &self,
        what: &str,
        mut attempt: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + CONVERGENCE_LIMIT;
        loop {
            match attempt().await {
                Ok(value) => return value,
                Err(reason) if tokio::time::Instant::now() > deadline => panic!(
                    "timed out after {CONVERGENCE_LIMIT:?} waiting for {what}; last: {reason}\nnodes:\n{}",
                    self.logs()
                ),
                Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }

    /// Whether `port` is one of this cluster's nodes and not killed.
    fn is_live(&self, port: u16) -> bool {
        self.nodes
            .iter()
            .any(|node| node.port == port && node.is_running())
    }

    fn node_mut(&mut self, port: u16) -> &mut ClusterNode {
        self.nodes
            .iter_mut()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("port {port} is not a node of this cluster"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("could not remove {}: {error}", self.dir.display());
        }
    }
}

impl ClusterNode {
    /// Starts a cluster-enabled `redis-server` on free ports and waits until
    /// it answers `PING`; tries fresh ports if the chosen ones were taken
    /// before the server bound them. The error holds every attempt's failure.
    async fn start(dir: &Path) -> Result<ClusterNode, String> {
        let mut failures = Vec::new();
        for _ in 0..NODE_START_ATTEMPTS {
            let (port, bus_port) = two_free_ports();
            let mut node = ClusterNode::spawn(dir, port, bus_port);
            match node.wait_for_ping().await {
                Ok(()) => return Ok(node),
                Err(reason) => {
                    failures.push(format!("{reason}; log:\n{}", node.log_tail()));
                    node.kill();
                }
            }
        }
        Err(format!(
            "no redis-server started in {NODE_START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        ))
    }

    fn spawn(dir: &Path, port: u16, bus_port: u16) -> ClusterNode {
        let log = dir.join(format!("node-{port}.log"));
        let output = std::fs::File::create(&log).expect("creating the node's log file");
        let process = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(dir.join(format!("nodes-{port}.conf")))
            .args(["--cluster-node-timeout", "2000"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(output.try_clone().expect("cloning the node's log file"))
            .stderr(output)
            .stdin(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        ClusterNode {
            port,
            process: Some(process),
            log,
        }
    }

    async fn wait_for_ping(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + NODE_START_LIMIT;
        loop {
            let exited = self
                .process
                .as_mut()
                .expect("just spawned")
                .try_wait()
                .expect("checking on redis-server");
            if let Some(status) = exited {
                return Err(format!("redis-server on {} exited: {status}", self.port));
            }
            match query::<String>(self.port, &redis::cmd("PING")).await {
                Ok(_) => return Ok(()),
                Err(error) if tokio::time::Instant::now() > deadline => {
                    return Err(format!(
                        "redis-server on {} gave no PONG within {NODE_START_LIMIT:?}: {error}",
                        self.port
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// SIGKILL: a crash, no goodbye to the cluster.
    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    fn signal(&self, signal: &str) {
        let process = self
            .process
            .as_ref()
            .unwrap_or_else(|| panic!("node {} was killed", self.port));
        let status = Command::new("kill")
            .args([signal, &process.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} of node {}", self.port);
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

/// Two distinct free loopback ports (a node's client port and bus port).
fn two_free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port");
    let (first, second) = (bind(), bind());
    let port = |listener: &TcpListener| listener.local_addr().expect("bound address").port();
    (port(&first), port(&second))
}

/// One command on the node on `port`, over a fresh connection.
async fn query<T: FromRedisValue>(port: u16, command: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    command.query_async(&mut connection).await
}

/// `CLUSTER NODES` on `port`, parsed and sorted by port.
async fn topology_seen_by(port: u16) -> Result<Vec<NodeInfo>, String> {
    let nodes: String = query(port, redis::cmd("CLUSTER").arg("NODES"))
        .await
        .map_err(|error| format!("CLUSTER NODES on {port}: {error}"))?;
    let mut topology = nodes
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(parse_cluster_nodes_line)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("CLUSTER NODES on {port}: {error}"))?;
    topology.sort_by_key(|node| node.port);
    Ok(topology)
}

/// One line of `CLUSTER NODES`:
/// `<id> <ip:port@cport[,hostname]> <flags> <master-id|-> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot>...`, where a slot is `N`
/// or `N-M`; `[N->-id]` / `[N-<-id]` (migrating, importing) are skipped.
fn parse_cluster_nodes_line(line: &str) -> Result<NodeInfo, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [
        id,
        address,
        flags,
        master,
        _ping_sent,
        _pong_received,
        _epoch,
        _link,
        slots @ ..,
    ] = fields.as_slice()
    else {
        return Err(format!("too few fields in {line:?}"));
    };
    let port = address
        .split('@')
        .next()
        .and_then(|host_port| host_port.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .ok_or_else(|| format!("no port in {line:?}"))?;
    let is_replica = flags.split(',').any(|flag| flag == "slave");
    let mut slots = slots
        .iter()
        .filter(|slot| !slot.starts_with('['))
        .map(|slot| {
            let (start, end) = slot.split_once('-').unwrap_or((slot, slot));
            let bound = |text: &str| {
                text.parse::<u16>()
                    .map_err(|_| format!("bad slot {slot:?} in {line:?}"))
            };
            Ok(bound(start)?..=bound(end)?)
        })
        .collect::<Result<Vec<_>, String>>()?;
    slots.sort_by_key(|range| *range.start());
    Ok(NodeInfo {
        port,
        id: id.to_string(),
        slots,
        master_id: is_replica.then(|| master.to_string()),
    })
}

/// A `field:value` line of `INFO` or `CLUSTER INFO`.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The slot of `key`: CRC16-XMODEM of its hash tag (the bytes between the
/// first `{` and the next `}`, if not empty) or else of the whole key,
/// mod 16384.
pub fn key_slot(key: &str) -> u16 {
    crc16_xmodem(hash_tag(key.as_bytes())) % SLOT_COUNT
}

fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&byte| byte == b'{')
        && let Some(length) = key[open + 1..].iter().position(|&byte| byte == b'}')
        && length > 0
    {
        &key[open + 1..open + 1 + length]
    } else {
        key
    }
}

/// CRC16 with polynomial 0x1021, initial value 0, no reflection (XMODEM),
/// as Redis Cluster uses.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0, |mut crc: u16, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
        crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_xmodem_check_value() {
        // The standard check input of CRC catalogues and the Redis Cluster spec.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
    }

    #[test]
    fn key_slot_matches_cluster_keyslot() {
        // Answers of `CLUSTER KEYSLOT` from Redis 7.0.
        let vectors = [
            ("", 0),
            ("foo", 12182),
            ("bar", 5061),
            ("123456789", 12739),
            ("{user1000}.following", 3443),
            ("{user1000}.followers", 3443),
            ("foo{}{bar}", 8363),
            ("foo{{bar}}zap", 4015),
            ("foo{bar}{zap}", 5061),
            ("{}", 15257),
            ("a{b}c", 3300),
        ];
        for (key, slot) in vectors {
            assert_eq!(key_slot(key), slot, "slot of {key:?}");
        }
    }

    #[test]
    fn parses_cluster_nodes_lines() {
        let master = parse_cluster_nodes_line(
            "c0af00027f950159fda552312d2b864b6a70b4b8 127.0.0.1:41001@41101 myself,master - 0 0 1 connected 0-5460 5462 [5461->-693622af830a845550d65ad8da9aa17f8795c064]",
        )
        .expect("a master line");
        assert_eq!(master.port, 41001);
        assert_eq!(master.id, "c0af00027f950159fda552312d2b864b6a70b4b8");
        assert_eq!(master.slots, vec![0..=5460, 5462..=5462]);
        assert!(master.is_master());
        assert!(master.serves_slot(5462) && !master.serves_slot(5461));

        let replica = parse_cluster_nodes_line(
            "693622af830a845550d65ad8da9aa17f8795c064 127.0.0.1:41004@41104,host slave c0af00027f950159fda552312d2b864b6a70b4b8 0 1796028727121 1 connected",
        )
        .expect("a replica line");
        assert_eq!(replica.port, 41004);
        assert_eq!(
            replica.master_id.as_deref(),
            Some("c0af00027f950159fda552312d2b864b6a70b4b8")
        );
        assert!(replica.slots.is_empty());
    }
}
