//! Outside views of the system under test: a process's resident memory from
//! `/proc`, and Redis's own list of its clients.

use redis::aio::MultiplexedConnection;

/// Resident set size of `pid`, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}

/// Redis clients: (all connections, connections subscribed to something).
pub async fn redis_clients(redis: &mut MultiplexedConnection) -> anyhow::Result<(u64, u64)> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(redis).await?;
    let mut total = 0;
    let mut subscribers = 0;
    for line in list.lines() {
        total += 1;
        let subscribed = line.split(' ').any(|field| {
            ["sub=", "psub=", "ssub="].iter().any(|key| {
                field
                    .strip_prefix(key)
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        });
        subscribers += u64::from(subscribed);
    }
    Ok((total, subscribers))
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
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct CpuSplit {
    pub gateway_s: Option<f64>,
    pub redis_s: Option<f64>,
    pub bench_s: Option<f64>,
}

/// Samples the three processes' CPU time; `since` turns two samples into a span.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pids: [Option<u32>; 3],
    start: [Option<f64>; 3],
}

impl CpuMeter {
    pub fn start(gateway: Option<u32>, redis: Option<u32>) -> Self {
        let pids = [gateway, redis, Some(std::process::id())];
        CpuMeter {
            pids,
            start: pids.map(|pid| pid.and_then(|p| cpu_seconds(p).ok())),
        }
    }

    pub fn stop(&self) -> CpuSplit {
        let spent: Vec<Option<f64>> = self
            .pids
            .iter()
            .zip(self.start)
            .map(|(pid, start)| Some(cpu_seconds((*pid)?).ok()? - start?))
            .collect();
        CpuSplit {
            gateway_s: spent[0],
            redis_s: spent[1],
            bench_s: spent[2],
        }
    }
}
