//! The subscriber side of a [`crate::RedisBus`] on a Redis Cluster: one
//! [`ShardConnection`] per master that serves a subscribed channel, sharded
//! subscriptions routed by slot, and recovery from topology changes.
//!
//! It takes the same [`Command`]s as the single-node task. A channel is
//! subscribed on the master of its slot (from `CLUSTER SLOTS`); a `MOVED`
//! answer re-routes it at once. The router gives each key slot a link of
//! its own ([`Router::with_link_groups`]), and recovery is per slot: when a
//! shard connection is lost (closed, a write or a health check timed out),
//! the slots that master served go down; when the server drops a
//! subscription on its own (its slot moved: resharding, failover), that
//! slot goes down. Then the slot map is read again, the down slots'
//! channels are subscribed again on their current masters, and each slot
//! comes back up once all of its channels are confirmed. Sessions on those
//! slots ride that out as they ride out a single Redis restart
//! (`ack_timeout` to resubscribe, then a catch-up from their logs); every
//! other slot's sessions never notice.
//!
//! The task's loop never waits on the network: connecting, reading the
//! slot map and writing to a shard run beside it and report back, so a
//! stalled shard delays no other shard's subscriptions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use redis::Value;
use redis::cluster_async::ClusterConnection;
use sse_bridge_core::BrokerError;
use sse_bridge_core::bus::Router;
use tokio::sync::{mpsc, oneshot};

use super::shard::{ConnectionId, ShardConnection, ShardEvent, ShardEvents, ShardLogin};
use super::slots::{SlotMap, slot_of};
use crate::config::RedisConfig;
use crate::conn::Backoff;
use crate::subscriber::Command;

/// Commands applied together.
const COMMANDS_PER_BATCH: usize = 256;

type Waiter = oneshot::Sender<Result<(), BrokerError>>;

/// The link group of a channel: its key slot.
pub(crate) fn link_group(channel: &str) -> u16 {
    slot_of(channel.as_bytes())
}

/// A master's subscriber connection, or the channels waiting for it.
enum Shard {
    Connecting(Vec<String>),
    Open(ShardConnection),
}

/// What the work done beside the task's loop reports back.
enum Progress {
    Connected {
        master: String,
        result: Result<ShardConnection, BrokerError>,
    },
    SlotMap(Result<SlotMap, BrokerError>),
}

/// Owns the shard connections; see the module doc.
pub(crate) struct ShardedSubscriberTask {
    config: RedisConfig,
    login: ShardLogin,
    router: Arc<Router>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// For `CLUSTER SLOTS` (routed to any reachable node).
    cluster: ClusterConnection,
    slots: SlotMap,
    shards: HashMap<String, Shard>,
    shard_events: mpsc::UnboundedReceiver<(ConnectionId, ShardEvent)>,
    shard_events_tx: ShardEvents,
    progress: mpsc::UnboundedReceiver<Progress>,
    progress_tx: mpsc::UnboundedSender<Progress>,
    next_connection: u64,
    /// Subscribe requests waiting for their confirmation.
    waiting: HashMap<String, Vec<Waiter>>,
    /// Down slots waiting for the next slot map.
    stale: HashSet<u16>,
    /// Down slots whose channels were subscribed again, with those not
    /// confirmed yet: a slot is up again when its set is empty.
    resubscribing: HashMap<u16, HashSet<String>>,
    /// A slot map read is under way (or waiting out its backoff).
    refreshing: bool,
    backoff: Backoff,
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
        let seed = config.seeds().next().unwrap_or_default();
        let info = redis::IntoConnectionInfo::into_connection_info(seed)
            .map_err(|e| BrokerError::Rejected(format!("invalid Redis URL ({:?})", e.kind())))?;
        let settings = info.redis_settings();
        let login = ShardLogin {
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            client_name: format!("{}:sub", config.client_name),
            connect_timeout: config.connect_timeout,
            write_timeout: config.command_timeout,
        };
        let (shard_events_tx, shard_events) = mpsc::unbounded_channel();
        let (progress_tx, progress) = mpsc::unbounded_channel();
        let slots = read_slots(cluster.clone(), config.command_timeout).await?;
        Ok(ShardedSubscriberTask {
            backoff: Backoff::new(config.reconnect_min, config.reconnect_max),
            config,
            login,
            router,
            commands,
            cluster,
            slots,
            shards: HashMap::new(),
            shard_events,
            shard_events_tx,
            progress,
            progress_tx,
            next_connection: 0,
            waiting: HashMap::new(),
            stale: HashSet::new(),
            resubscribing: HashMap::new(),
            refreshing: false,
        })
    }

    /// Serves commands, shard events and health checks until the bus is
    /// dropped. Nothing in here awaits the network.
    pub(crate) async fn run(mut self) {
        let period = self.config.health_check_interval;
        let mut health = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut batch = Vec::with_capacity(COMMANDS_PER_BATCH);
        loop {
            tokio::select! {
                received = self.commands.recv_many(&mut batch, COMMANDS_PER_BATCH) => {
                    if received == 0 {
                        return;
                    }
                    self.apply(&mut batch);
                }
                Some((connection, event)) = self.shard_events.recv() => {
                    self.on_shard_event(connection, event);
                }
                Some(progress) = self.progress.recv() => self.on_progress(progress),
                _ = health.tick() => self.health_check(),
            }
        }
    }

    fn apply(&mut self, batch: &mut Vec<Command>) {
        let mut unsubscribe = Vec::new();
        for command in batch.drain(..) {
            match command {
                Command::Subscribe { channel, done } if self.is_down(link_group(&channel)) => {
                    let _ = done.send(Err(BrokerError::Unavailable(
                        "the channel's Redis Cluster shard is recovering".into(),
                    )));
                }
                Command::Subscribe { channel, done } => {
                    self.waiting.entry(channel.clone()).or_default().push(done);
                    self.subscribe(channel);
                }
                Command::Unsubscribe(channel) => unsubscribe.push(channel),
            }
        }
        // The router is the truth: a subscriber may have come back since.
        unsubscribe.retain(|c| !self.router.contains(c));
        for channel in unsubscribe {
            self.confirmed(&channel);
            let Some(master) = self.master_of(&channel) else {
                continue;
            };
            match self.shards.get_mut(&master) {
                Some(Shard::Open(shard)) => shard.unsubscribe(channel),
                Some(Shard::Connecting(queued)) => queued.retain(|c| *c != channel),
                None => {}
            }
        }
    }

    /// Queues `SSUBSCRIBE channel` for the master of its slot, connecting
    /// to it first if needed.
    fn subscribe(&mut self, channel: String) {
        let Some(master) = self.master_of(&channel) else {
            let error = BrokerError::Unavailable("a slot has no master (cluster down?)".into());
            self.lose_channels(vec![channel], &error);
            return;
        };
        match self.shards.get_mut(&master) {
            Some(Shard::Open(shard)) => shard.subscribe([channel]),
            Some(Shard::Connecting(queued)) => queued.push(channel),
            None => self.start_connecting(master, vec![channel]),
        }
    }

    fn start_connecting(&mut self, master: String, channels: Vec<String>) {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        let login = self.login.clone();
        let router = self.router.clone();
        let events = self.shard_events_tx.clone();
        let progress = self.progress_tx.clone();
        let addr = master.clone();
        tokio::spawn(async move {
            let result = ShardConnection::connect(&addr, id, &login, router, events).await;
            let _ = progress.send(Progress::Connected {
                master: addr,
                result,
            });
        });
        self.shards.insert(master, Shard::Connecting(channels));
    }

    fn on_progress(&mut self, progress: Progress) {
        match progress {
            Progress::Connected { master, result } => {
                let Some(Shard::Connecting(queued)) = self.shards.remove(&master) else {
                    return;
                };
                match result {
                    Ok(shard) => {
                        tracing::debug!(shard = %master, "shard subscriber connection open");
                        if self.is_recovering() {
                            metrics::counter!(sse_bridge_core::metrics::REDIS_RECONNECTS)
                                .increment(1);
                        }
                        shard.subscribe(queued);
                        self.shards.insert(master, Shard::Open(shard));
                    }
                    Err(error) => {
                        tracing::warn!(shard = %master, %error, "cannot connect to a shard");
                        self.lose_channels(queued, &error);
                    }
                }
            }
            Progress::SlotMap(Ok(slots)) => {
                self.refreshing = false;
                self.slots = slots;
                self.resubscribe_stale();
            }
            Progress::SlotMap(Err(error)) => {
                tracing::warn!(%error, "cannot read the cluster's slot map; retrying");
                self.refreshing = false;
                self.refresh_slots();
            }
        }
    }

    fn on_shard_event(&mut self, connection: ConnectionId, event: ShardEvent) {
        // A late report from a connection already replaced is moot.
        let Some(master) = self.shards.iter().find_map(|(master, shard)| {
            matches!(shard, Shard::Open(s) if s.id() == connection).then(|| master.clone())
        }) else {
            return;
        };
        match event {
            ShardEvent::Subscribed(channel) => {
                self.confirmed(&channel);
                for done in self.waiting.remove(&channel).unwrap_or_default() {
                    let _ = done.send(Ok(()));
                }
            }
            ShardEvent::Refused { channel, error } => match parse_moved(&error) {
                Some((slot, master)) => {
                    tracing::info!(%channel, slot, %master, "channel's slot moved");
                    self.slots.moved(slot, &master);
                    self.subscribe(channel);
                }
                None => {
                    tracing::warn!(%channel, %error, "SSUBSCRIBE refused");
                    self.confirmed(&channel);
                    for done in self.waiting.remove(&channel).unwrap_or_default() {
                        let _ = done.send(Err(BrokerError::Rejected(error.clone())));
                    }
                }
            },
            ShardEvent::Dropped(channel) if self.router.contains(&channel) => {
                tracing::info!(%channel, "the cluster dropped a subscription (slot moved)");
                self.mark_down([link_group(&channel)]);
            }
            ShardEvent::Dropped(_) => {}
            ShardEvent::Lost => self.lose_shard(&master),
        }
    }

    fn health_check(&mut self) {
        let patience = self.config.command_timeout;
        let silent: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, shard)| matches!(shard, Shard::Open(s) if !s.health_check(patience)))
            .map(|(master, _)| master.clone())
            .collect();
        for master in silent {
            tracing::warn!(shard = %master, "a shard subscriber connection stopped answering");
            self.lose_shard(&master);
        }
    }

    /// Drops the connection to `master`; the slots it served go down.
    fn lose_shard(&mut self, master: &str) {
        self.shards.remove(master);
        let on_master: Vec<String> = self
            .router
            .channels()
            .into_iter()
            .filter(|channel| self.master_of(channel).as_deref() == Some(master))
            .collect();
        let error = BrokerError::Unavailable(format!("the connection to shard {master} was lost"));
        self.lose_channels(on_master, &error);
    }

    /// `channels` are not subscribed anywhere: new subscriptions among them
    /// fail with `error`, and their slots go down until recovered.
    fn lose_channels(&mut self, channels: Vec<String>, error: &BrokerError) {
        let mut slots = HashSet::new();
        for channel in channels {
            for done in self.waiting.remove(&channel).unwrap_or_default() {
                let _ = done.send(Err(error.clone()));
            }
            if self.router.contains(&channel) {
                slots.insert(link_group(&channel));
            }
        }
        self.mark_down(slots);
    }

    /// Takes `slots` down until a fresh slot map and their resubscriptions
    /// bring them back.
    fn mark_down(&mut self, slots: impl IntoIterator<Item = u16>) {
        let slots: Vec<u16> = slots.into_iter().collect();
        if slots.is_empty() {
            return;
        }
        for slot in &slots {
            self.resubscribing.remove(slot);
            self.stale.insert(*slot);
        }
        self.router.set_group_links(slots, false);
        self.refresh_slots();
    }

    /// Reads the slot map beside the loop, after the current backoff delay
    /// (reset once every slot is up again).
    fn refresh_slots(&mut self) {
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        let delay = self.backoff.next_delay();
        let cluster = self.cluster.clone();
        let limit = self.config.command_timeout;
        let progress = self.progress_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = progress.send(Progress::SlotMap(read_slots(cluster, limit).await));
        });
    }

    /// With a fresh slot map: every down slot's channels are subscribed
    /// again on their current masters.
    fn resubscribe_stale(&mut self) {
        let stale: HashSet<u16> = std::mem::take(&mut self.stale);
        if stale.is_empty() {
            return;
        }
        let mut channels_by_slot: HashMap<u16, HashSet<String>> =
            stale.iter().map(|slot| (*slot, HashSet::new())).collect();
        for channel in self.router.channels() {
            if let Some(channels) = channels_by_slot.get_mut(&link_group(&channel)) {
                channels.insert(channel);
            }
        }
        let channels: Vec<String> = channels_by_slot.values().flatten().cloned().collect();
        self.resubscribing.extend(channels_by_slot);
        // Slots left without channels are up at once.
        let empty: Vec<u16> = stale
            .into_iter()
            .filter(|slot| self.resubscribing.get(slot).is_some_and(HashSet::is_empty))
            .collect();
        for slot in &empty {
            self.resubscribing.remove(slot);
        }
        self.router.set_group_links(empty, true);
        for channel in channels {
            self.subscribe(channel);
        }
        self.recovered();
    }

    /// `channel` is subscribed (or no longer needs to be): its slot is up
    /// again once it was the last one its recovery waited for.
    fn confirmed(&mut self, channel: &str) {
        let slot = link_group(channel);
        let Some(waiting) = self.resubscribing.get_mut(&slot) else {
            return;
        };
        waiting.remove(channel);
        if waiting.is_empty() {
            self.resubscribing.remove(&slot);
            self.router.set_group_links([slot], true);
            self.recovered();
        }
    }

    fn recovered(&mut self) {
        if !self.is_recovering() {
            tracing::info!(
                channels = self.router.channel_count(),
                "cluster subscriptions restored"
            );
            self.backoff = Backoff::new(self.config.reconnect_min, self.config.reconnect_max);
        }
    }

    fn is_recovering(&self) -> bool {
        !self.stale.is_empty() || !self.resubscribing.is_empty()
    }

    fn is_down(&self, slot: u16) -> bool {
        self.stale.contains(&slot) || self.resubscribing.contains_key(&slot)
    }

    fn master_of(&self, channel: &str) -> Option<String> {
        self.slots.master_of(link_group(channel)).map(str::to_owned)
    }
}

async fn read_slots(
    mut cluster: ClusterConnection,
    limit: std::time::Duration,
) -> Result<SlotMap, BrokerError> {
    let slots = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
    let reply = tokio::time::timeout(limit, slots.query_async::<Value>(&mut cluster))
        .await
        .map_err(|_| BrokerError::Timeout(limit))?
        .map_err(crate::error::broker_error)?;
    SlotMap::from_cluster_slots(&reply)
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
