//! Who follows a session, counted per gateway process, so that the count of
//! a gateway that crashed expires on its own (issue 18).
//!
//! A stream that joins or leaves a session adds ±1 to the field
//! `followers:<instance>` of the session's metadata (`sse_bridge_v4_follow`)
//! and keeps the session in its gateway's set `sse_gateway_sessions:<instance>`.
//! Every gateway renews a lease — `sse_gateway:<instance>` with a TTL, and its
//! expiry in the sorted set `sse_gateways` — every third of
//! [`RedisConfig::presence_lease`](crate::RedisConfig). A session's follower
//! count is the sum over the gateways whose lease is alive, so the streams of
//! a gateway that died stop counting once its lease lapses, and any other
//! gateway then takes over the dead one's sessions ([`Presence::orphans`]):
//! their departures never ran, so the survivor decides, as the departure
//! would have, whether to cancel them.
//!
//! Every key here is a gateway's, not a session's: in a cluster each is one
//! command on its own slot, never a cross-slot call.

use std::time::Duration;

use sse_bridge_core::{BrokerError, SessionId};

use crate::conn::Commands;

/// The sorted set of gateway instances by the expiry of their lease (ms).
const GATEWAYS: &str = "sse_gateways";

fn lease_key(instance: &str) -> String {
    format!("sse_gateway:{instance}")
}

fn sessions_key(instance: &str) -> String {
    format!("sse_gateway_sessions:{instance}")
}

/// The metadata field counting `instance`'s streams of a session.
pub(crate) fn followers_field(instance: &str) -> String {
    format!("followers:{instance}")
}

/// This process's presence: its instance id and how long its lease lasts.
pub(crate) struct Presence {
    instance: String,
    lease: Duration,
}

impl Presence {
    /// A new instance id; its lease is taken by the first [`Presence::renew`].
    pub(crate) fn new(lease: Duration) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Presence {
            instance: id[..16].to_owned(),
            lease,
        }
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// How often the lease must be renewed to stay alive.
    pub(crate) fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Takes or extends this gateway's lease.
    pub(crate) async fn renew(&self, commands: &Commands) -> Result<(), BrokerError> {
        let lease_ms = self.lease_ms();
        let expires = sse_bridge_core::protocol::unix_ms() + lease_ms;
        let lease = redis::cmd("SET")
            .arg(lease_key(&self.instance))
            .arg(1)
            .arg("PX")
            .arg(lease_ms)
            .to_owned();
        commands.query::<()>(&lease).await?;
        let listed = redis::cmd("ZADD")
            .arg(GATEWAYS)
            .arg(expires)
            .arg(&self.instance)
            .to_owned();
        commands.query::<()>(&listed).await?;
        // The set outlives the lease, so a survivor finds it after a crash.
        let kept = redis::cmd("PEXPIRE")
            .arg(sessions_key(&self.instance))
            .arg(self.lease_ms() * 4)
            .to_owned();
        commands.query::<()>(&kept).await
    }

    /// Records that this gateway follows (or, with `count` 0, no longer
    /// follows) session `id`.
    pub(crate) async fn mark(
        &self,
        commands: &Commands,
        id: SessionId,
        count: i64,
    ) -> Result<(), BrokerError> {
        let key = sessions_key(&self.instance);
        let mut pipe = redis::pipe();
        if count > 0 {
            pipe.cmd("SADD").arg(&key).arg(id.to_string()).ignore();
        } else {
            pipe.cmd("SREM").arg(&key).arg(id.to_string()).ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(self.lease_ms() * 4)
            .ignore();
        commands.query_pipeline::<()>(&pipe).await
    }

    /// The followers a session's metadata counts, from gateways that are
    /// alive: this one, and those whose lease has not lapsed.
    pub(crate) async fn live_followers(
        &self,
        commands: &Commands,
        counts: impl Iterator<Item = (&str, i64)>,
    ) -> Result<i64, BrokerError> {
        let mut total = 0;
        for (instance, count) in counts {
            if count == 0 {
                continue;
            }
            let alive = instance == self.instance
                || commands
                    .query::<bool>(&redis::cmd("EXISTS").arg(lease_key(instance)).to_owned())
                    .await?;
            if alive {
                total += count;
            }
        }
        Ok(total)
    }

    /// The sessions of gateways whose lease lapsed, each handed to exactly
    /// one caller (the one whose `ZREM` took the dead instance).
    pub(crate) async fn orphans(&self, commands: &Commands) -> Result<Vec<SessionId>, BrokerError> {
        let now = sse_bridge_core::protocol::unix_ms();
        let dead: Vec<String> = commands
            .query(
                &redis::cmd("ZRANGEBYSCORE")
                    .arg(GATEWAYS)
                    .arg("-inf")
                    .arg(now)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(16)
                    .to_owned(),
            )
            .await?;
        let mut orphans = Vec::new();
        for instance in dead {
            let taken: i64 = commands
                .query(&redis::cmd("ZREM").arg(GATEWAYS).arg(&instance).to_owned())
                .await?;
            if taken == 0 {
                continue; // Another gateway took it.
            }
            let key = sessions_key(&instance);
            let members: Vec<String> = commands
                .query(&redis::cmd("SMEMBERS").arg(&key).to_owned())
                .await?;
            let _: i64 = commands
                .query(&redis::cmd("DEL").arg(&key).to_owned())
                .await?;
            let ids = members
                .iter()
                .filter_map(|member| member.parse::<SessionId>().ok());
            let before = orphans.len();
            orphans.extend(ids);
            tracing::warn!(
                instance,
                sessions = orphans.len() - before,
                "took over the sessions of a gateway whose presence lapsed"
            );
        }
        Ok(orphans)
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis() as u64
    }
}
