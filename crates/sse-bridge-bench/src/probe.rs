//! Outside views of the system under test: a process's resident memory from
//! `/proc`, and Redis's own list of its clients — of the one Redis, or of
//! every node of a Redis Cluster ([`RedisNodes`]), summed.

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, IntoConnectionInfo};

use crate::conn::seeds;

/// The Redis servers behind the gateway, each reached by a plain connection
/// (INFO and CLIENT LIST are per server): the one Redis, or every node a
/// cluster's `CLUSTER NODES` lists (masters and replicas).
pub struct RedisNodes {
    /// `host:port` (cluster) or the URL (single), and its connection.
    nodes: Vec<(String, MultiplexedConnection)>,
    cluster: bool,
}

impl RedisNodes {
    pub async fn connect(redis_url: &str, cluster: bool) -> anyhow::Result<Self> {
        if !cluster {
            let conn = redis::Client::open(redis_url)?
                .get_multiplexed_async_connection()
                .await?;
            return Ok(RedisNodes {
                nodes: vec![(redis_url.to_owned(), conn)],
                cluster,
            });
        }
        let mut last_error = anyhow::anyhow!("no cluster seeds in {redis_url:?}");
        for seed in seeds(redis_url) {
            match Self::from_seed(seed).await {
                Ok(nodes) => return Ok(RedisNodes { nodes, cluster }),
                Err(error) => last_error = error.context(format!("seed {seed}")),
            }
        }
        Err(last_error)
    }

    async fn from_seed(seed: &str) -> anyhow::Result<Vec<(String, MultiplexedConnection)>> {
        let info = seed.into_connection_info()?;
        let seed_host = match info.addr() {
            ConnectionAddr::Tcp(host, _) => host.clone(),
            other => anyhow::bail!("cluster seed {other:?} is not plain TCP"),
        };
        let mut conn = redis::Client::open(info.clone())?
            .get_multiplexed_async_connection()
            .await?;
        let listing: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await?;
        let mut nodes = Vec::new();
        for (host, port) in cluster_node_addrs(&listing) {
            let host = if host.is_empty() {
                seed_host.clone()
            } else {
                host
            };
            let node = info
                .clone()
                .set_addr(ConnectionAddr::Tcp(host.clone(), port));
            let conn = redis::Client::open(node)?
                .get_multiplexed_async_connection()
                .await
                .with_context(|| format!("connecting to cluster node {host}:{port}"))?;
            nodes.push((format!("{host}:{port}"), conn));
        }
        anyhow::ensure!(!nodes.is_empty(), "CLUSTER NODES listed no reachable node");
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(nodes)
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Each server's name and process id (`None`: not on this host, or no answer).
    pub async fn pids(&mut self) -> Vec<(String, Option<u32>)> {
        let mut pids = Vec::new();
        for (name, conn) in &mut self.nodes {
            pids.push((name.clone(), redis_pid(conn).await));
        }
        pids
    }

    /// Clients over all servers: (connections, connections subscribed to something).
    pub async fn clients(&mut self) -> anyhow::Result<(u64, u64)> {
        let (mut total, mut subscribers) = (0, 0);
        for (_, conn) in &mut self.nodes {
            let (t, s) = redis_clients(conn).await?;
            total += t;
            subscribers += s;
        }
        Ok((total, subscribers))
    }

    /// Channels each subscribed connection listens to (`sub` + `ssub` +
    /// `psub` of `CLIENT LIST`), over all servers: one entry per
    /// connection subscribed to something.
    pub async fn subscriptions(&mut self) -> anyhow::Result<Vec<u64>> {
        let mut counts = Vec::new();
        for (_, conn) in &mut self.nodes {
            let list: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await?;
            counts.extend(list.lines().map(subscription_count).filter(|n| *n > 0));
        }
        Ok(counts)
    }

    /// `used_memory` (`INFO memory`) summed over all servers, bytes.
    pub async fn used_memory(&mut self) -> anyhow::Result<u64> {
        let mut sum = 0;
        for (name, conn) in &mut self.nodes {
            let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
            sum += info
                .lines()
                .find_map(|line| {
                    line.strip_prefix("used_memory:")?
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .with_context(|| format!("no used_memory in INFO memory of {name}"))?;
        }
        Ok(sum)
    }
}

/// The `(host, port)` of every node in a `CLUSTER NODES` reply that has an
/// address and is not failed (an empty host: the node does not know its own IP).
fn cluster_node_addrs(listing: &str) -> Vec<(String, u16)> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_id, addr, flags) = (fields.next()?, fields.next()?, fields.next()?);
            if flags
                .split(',')
                .any(|f| matches!(f, "fail" | "noaddr" | "handshake"))
            {
                return None;
            }
            // ip:port@cport[,hostname]
            let host_port = addr.split(['@', ',']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            let port = port.parse().ok().filter(|p| *p != 0)?;
            Some((host.to_owned(), port))
        })
        .collect()
}

/// Resident set size of `pid`, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}

/// Channels and patterns one `CLIENT LIST` line is subscribed to.
fn subscription_count(line: &str) -> u64 {
    line.split(' ')
        .filter_map(|field| {
            ["sub=", "psub=", "ssub="]
                .iter()
                .find_map(|key| field.strip_prefix(key)?.parse::<u64>().ok())
        })
        .sum()
}

/// Redis clients: (all connections, connections subscribed to something).
pub async fn redis_clients(redis: &mut MultiplexedConnection) -> anyhow::Result<(u64, u64)> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(redis).await?;
    let mut total = 0;
    let mut subscribers = 0;
    for line in list.lines() {
        total += 1;
        subscribers += u64::from(subscription_count(line) > 0);
    }
    Ok((total, subscribers))
}

/// The soft `Max open files` limit of `pid` (`/proc/<pid>/limits`);
/// `None` when unreadable or unlimited.
pub fn open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.strip_prefix("Max open files")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time (user + system) `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .into_iter()
        .flatten()
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a process-wide constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / per_second)
}

/// The Redis server's process id (`INFO server`), when it runs on this host.
pub async fn redis_pid(redis: &mut MultiplexedConnection) -> Option<u32> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(redis)
        .await
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok())
}

/// CPU seconds of the gateway, Redis and this load generator over a span.
/// `redis_s` is the sum over a cluster's nodes (unknown if any node's is),
/// and `redis_nodes` each node's share (cluster mode only).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CpuSplit {
    pub gateway_s: Option<f64>,
    pub redis_s: Option<f64>,
    pub bench_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_nodes: Option<Vec<NodeCpu>>,
}

/// One cluster node's CPU seconds over the span.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeCpu {
    pub node: String,
    pub cpu_s: Option<f64>,
}

/// Samples the processes' CPU time; `stop` turns two samples into a span.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    /// Gateway, this load generator, then each Redis server.
    pids: Vec<Option<u32>>,
    start: Vec<Option<f64>>,
    /// The Redis servers' names, when they are a cluster's nodes.
    nodes: Option<Vec<String>>,
}

impl CpuMeter {
    /// `redis`: each Redis server's name and pid ([`RedisNodes::pids`]);
    /// `cluster`: report each one's share too.
    pub fn start(gateway: Option<u32>, redis: Vec<(String, Option<u32>)>, cluster: bool) -> Self {
        let mut pids = vec![gateway, Some(std::process::id())];
        pids.extend(redis.iter().map(|(_, pid)| *pid));
        CpuMeter {
            start: pids
                .iter()
                .map(|pid| pid.and_then(|p| cpu_seconds(p).ok()))
                .collect(),
            pids,
            nodes: cluster.then(|| redis.into_iter().map(|(name, _)| name).collect()),
        }
    }

    pub fn stop(&self) -> CpuSplit {
        let spent: Vec<Option<f64>> = self
            .pids
            .iter()
            .zip(&self.start)
            .map(|(pid, start)| Some(cpu_seconds((*pid)?).ok()? - (*start)?))
            .collect();
        let redis = &spent[2..];
        CpuSplit {
            gateway_s: spent[0],
            redis_s: redis.iter().copied().sum::<Option<f64>>(),
            bench_s: spent[1],
            redis_nodes: self.nodes.as_ref().map(|names| {
                names
                    .iter()
                    .zip(redis)
                    .map(|(node, cpu_s)| NodeCpu {
                        node: node.clone(),
                        cpu_s: *cpu_s,
                    })
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cluster_node_addrs;

    #[test]
    fn subscriptions_add_channels_shards_and_patterns() {
        let line =
            "id=7 addr=127.0.0.1:5000 name= db=0 sub=10000 psub=1 ssub=0 multi=-1 cmd=subscribe";
        assert_eq!(super::subscription_count(line), 10_001);
        assert_eq!(
            super::subscription_count("id=8 sub=0 psub=0 ssub=0 cmd=publish"),
            0
        );
    }

    #[test]
    fn cluster_nodes_lists_every_reachable_node() {
        let listing = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:7203@17203,node-c slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:7202@17202 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:7201@17201 myself,master - 0 0 1 connected 0-5460
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:7204@17204 master,fail - 1426238316232 1426238315231 5 disconnected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 :7210@17210 myself,master - 0 0 0 connected 0-16383
";
        assert_eq!(
            cluster_node_addrs(listing),
            [
                ("127.0.0.1".to_owned(), 7203),
                ("127.0.0.1".to_owned(), 7202),
                ("127.0.0.1".to_owned(), 7201),
                (String::new(), 7210),
            ]
        );
    }
}
