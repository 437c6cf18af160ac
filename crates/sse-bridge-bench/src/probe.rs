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
