//! The subscriber side of a [`crate::RedisBus`] on a Redis Cluster: one
//! [`ShardConnection`] per master that serves a subscribed channel, sharded
//! subscriptions routed by slot, and recovery from topology changes.
//!
//! It takes the same [`Command`]s as the single-node task. A channel is
//! subscribed on the master of its slot (from `CLUSTER SLOTS`); a `MOVED`
//! answer re-routes it at once. When a shard connection is lost, a health
//! check goes unanswered or the server drops a subscription on its own (its
//! slot moved: resharding, failover), the task *recovers*: the router's link
//! goes down, the slot map is read again, every routed channel is
//! subscribed again on its current master, and the link comes back up once
//! all are confirmed. Sessions ride that out as they ride out a single
//! Redis restart: `ack_timeout` to resubscribe, then a catch-up from their
//! logs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use redis::Value;
use redis::cluster_async::ClusterConnection;
use sse_bridge_core::BrokerError;
use sse_bridge_core::bus::Router;
use tokio::sync::{mpsc, oneshot};

use super::shard::{ShardConnection, ShardEvent, ShardLogin};
use super::slots::{SlotMap, slot_of};
use crate::config::RedisConfig;
use crate::conn::Backoff;
use crate::subscriber::Command;

/// Commands applied together.
const COMMANDS_PER_BATCH: usize = 256;

type Waiter = oneshot::Sender<Result<(), BrokerError>>;

/// Owns the shard connections; see the module doc.
pub(crate) struct ShardedSubscriberTask {
    config: RedisConfig,
    router: Arc<Router>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// For `CLUSTER SLOTS` (routed to any reachable node).
    cluster: ClusterConnection,
    slots: SlotMap,
    shards: HashMap<String, ShardConnection>,
    events: mpsc::UnboundedReceiver<ShardEvent>,
    events_tx: mpsc::UnboundedSender<ShardEvent>,
    /// Subscribe requests waiting for their confirmation.
    waiting: HashMap<String, Vec<Waiter>>,
    /// Channels resubscribed by a recovery and not confirmed yet: the link
    /// stays down until it is empty.
    recovering: HashSet<String>,
}

impl ShardedSubscriberTask {
    /// Reads the slot map; the shard connections open with the first
    /// subscriptions.
    pub(crate) async fn connect(
        config: RedisConfig,
        router: Arc<Router>,
        commands: mpsc::UnboundedReceiver<Command>,
        cluster: ClusterConnection,
    ) -> Result<Self, BrokerError> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut task = ShardedSubscriberTask {
            config,
            router,
            commands,
            cluster,
            slots: SlotMap::default(),
            shards: HashMap::new(),
            events,
            events_tx,
            waiting: HashMap::new(),
            recovering: HashSet::new(),
        };
        task.slots = task.read_slots().await?;
        Ok(task)
    }

    /// Serves commands and shard events until the bus is dropped.
    pub(crate) async fn run(mut self) {
        self.router.set_link(true);
        let period = self.config.health_check_interval;
        let mut health = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut batch = Vec::with_capacity(COMMANDS_PER_BATCH);
        loop {
            tokio::select! {
                received = self.commands.recv_many(&mut batch, COMMANDS_PER_BATCH) => {
                    if received == 0 {
                        return;
                    }
                    self.apply(&mut batch).await;
                }
                Some(event) = self.events.recv() => self.on_event(event).await,
                _ = health.tick() => self.health_check().await,
            }
        }
    }

    async fn apply(&mut self, batch: &mut Vec<Command>) {
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        for command in batch.drain(..) {
            match command {
                Command::Subscribe { channel, done } => {
                    self.waiting.entry(channel.clone()).or_default().push(done);
                    subscribe.push(channel);
                }
                Command::Unsubscribe(channel) => unsubscribe.push(channel),
            }
        }
        for channel in subscribe {
            self.subscribe(channel).await;
        }
        // The router is the truth: a subscriber may have come back since.
        unsubscribe.retain(|c| !self.router.contains(c));
        for channel in unsubscribe {
            if let Some(shard) = self.owner_connection(&channel)
                && let Err(error) = shard.unsubscribe(std::slice::from_ref(&channel)).await
            {
                tracing::debug!(%error, "SUNSUBSCRIBE failed; the shard connection is being replaced");
            }
        }
    }

    /// Sends `SSUBSCRIBE channel` to the master of its slot.
    async fn subscribe(&mut self, channel: String) {
        let result = match self.shard_for(&channel).await {
            Ok(shard) => shard.subscribe(std::slice::from_ref(&channel)).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "cannot subscribe on its shard; recovering");
            self.recover().await;
        }
    }

    async fn on_event(&mut self, event: ShardEvent) {
        match event {
            ShardEvent::Subscribed(channel) => {
                self.recovering.remove(&channel);
                for done in self.waiting.remove(&channel).unwrap_or_default() {
                    let _ = done.send(Ok(()));
                }
                if self.recovering.is_empty() && !self.router.link_up() {
                    tracing::info!(
                        channels = self.router.channel_count(),
                        "cluster subscriptions restored"
                    );
                    self.router.set_link(true);
                }
            }
            ShardEvent::Refused { channel, error } => match parse_moved(&error) {
                Some((slot, master)) => {
                    tracing::info!(%channel, slot, %master, "channel's slot moved");
                    self.slots.moved(slot, &master);
                    self.subscribe(channel).await;
                }
                None => {
                    tracing::warn!(%channel, %error, "SSUBSCRIBE refused");
                    self.recovering.remove(&channel);
                    for done in self.waiting.remove(&channel).unwrap_or_default() {
                        let _ = done.send(Err(BrokerError::Rejected(error.clone())));
                    }
                }
            },
            ShardEvent::Dropped(channel) if self.router.contains(&channel) => {
                tracing::info!(%channel, "the cluster dropped a subscription (slot moved)");
                self.recover().await;
            }
            ShardEvent::Dropped(_) => {}
            ShardEvent::Lost(addr) => {
                // A late report from a connection already replaced is moot.
                if self.shards.contains_key(&addr) {
                    self.recover().await;
                }
            }
        }
    }

    async fn health_check(&mut self) {
        let patience = self.config.command_timeout;
        let mut healthy = true;
        for shard in self.shards.values_mut() {
            healthy &= shard.health_check(patience).await;
        }
        if !healthy {
            tracing::warn!("a shard subscriber connection stopped answering; recovering");
            self.recover().await;
        }
    }

    /// Brings every routed channel back on its current master; the link is
    /// down until all are confirmed (see [`Self::on_event`]).
    async fn recover(&mut self) {
        self.router.set_link(false);
        self.shards.clear();
        let mut backoff = Backoff::new(self.config.reconnect_min, self.config.reconnect_max);
        loop {
            match self.resubscribe_all().await {
                Ok(()) => {
                    metrics::counter!(sse_bridge_core::metrics::REDIS_RECONNECTS).increment(1);
                    if self.recovering.is_empty() {
                        self.router.set_link(true);
                    }
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "cluster recovery failed; retrying");
                    self.shards.clear();
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    async fn resubscribe_all(&mut self) -> Result<(), BrokerError> {
        self.slots = self.read_slots().await?;
        let mut by_master: HashMap<String, Vec<String>> = HashMap::new();
        for channel in self.router.channels() {
            let master = self.master_of(&channel)?;
            by_master.entry(master).or_default().push(channel);
        }
        self.recovering = by_master.values().flatten().cloned().collect();
        for (master, channels) in by_master {
            self.connection(&master).await?.subscribe(&channels).await?;
        }
        Ok(())
    }

    async fn read_slots(&mut self) -> Result<SlotMap, BrokerError> {
        let limit = self.config.command_timeout;
        let slots = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
        let reply = tokio::time::timeout(limit, slots.query_async::<Value>(&mut self.cluster))
            .await
            .map_err(|_| BrokerError::Timeout(limit))?
            .map_err(crate::error::broker_error)?;
        SlotMap::from_cluster_slots(&reply)
    }

    fn master_of(&self, channel: &str) -> Result<String, BrokerError> {
        self.slots
            .master_of(slot_of(channel.as_bytes()))
            .map(str::to_owned)
            .ok_or_else(|| BrokerError::Unavailable("a slot has no master (cluster down?)".into()))
    }

    /// The connection to the master of `channel`'s slot, opened if needed.
    async fn shard_for(&mut self, channel: &str) -> Result<&mut ShardConnection, BrokerError> {
        let master = self.master_of(channel)?;
        self.connection(&master).await
    }

    /// The open connection to the master of `channel`'s slot, if any.
    fn owner_connection(&mut self, channel: &str) -> Option<&mut ShardConnection> {
        let master = self.master_of(channel).ok()?;
        self.shards.get_mut(&master)
    }

    async fn connection(&mut self, master: &str) -> Result<&mut ShardConnection, BrokerError> {
        if !self.shards.contains_key(master) {
            let seed = self.config.seeds().next().unwrap_or_default().to_owned();
            let info =
                redis::IntoConnectionInfo::into_connection_info(seed.as_str()).map_err(|e| {
                    BrokerError::Rejected(format!("invalid Redis URL ({:?})", e.kind()))
                })?;
            let settings = info.redis_settings();
            let name = format!("{}:sub", self.config.client_name);
            let login = ShardLogin {
                username: settings.username(),
                password: settings.password(),
                client_name: &name,
                timeout: self.config.connect_timeout,
            };
            let shard = ShardConnection::connect(
                master,
                &login,
                self.router.clone(),
                self.events_tx.clone(),
            )
            .await?;
            tracing::debug!(shard = shard.addr(), "shard subscriber connection open");
            self.shards.insert(master.to_owned(), shard);
        }
        Ok(self.shards.get_mut(master).expect("inserted above"))
    }
}

/// `MOVED <slot> <host:port>` → the slot and its new master.
fn parse_moved(error: &str) -> Option<(u16, String)> {
    let mut parts = error.split_whitespace();
    (parts.next()? == "MOVED").then_some(())?;
    let slot = parts.next()?.parse().ok()?;
    Some((slot, parts.next()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_answers_name_the_slot_and_its_master() {
        assert_eq!(
            parse_moved("MOVED 3999 127.0.0.1:6381"),
            Some((3999, "127.0.0.1:6381".into()))
        );
        assert_eq!(parse_moved("ERR unknown command"), None);
        assert_eq!(parse_moved("ASK 3999 127.0.0.1:6381"), None);
    }
}
