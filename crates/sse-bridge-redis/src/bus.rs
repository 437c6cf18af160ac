//! [`RedisBus`]: the [`EventBus`] on Redis Pub/Sub (and, in `crate::log`,
//! the session log beside it).
//!
//! Two connections per process whatever the number of sessions: one
//! subscriber connection (`sse-bridge:sub`, owned by the task in
//! [`crate::subscriber`]) multiplexes every channel, and one pipelined
//! command connection (`sse-bridge:pub`) carries PUBLISH, PING and the
//! log's function calls. In cluster mode ([`crate::cluster`]): one
//! subscriber connection per master that serves a subscribed channel, the
//! cluster client for commands, `SSUBSCRIBE` / `SPUBLISH` on hash-tagged
//! channel names ([`crate::keyspace`]).

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use sse_bridge_core::BrokerError;
use sse_bridge_core::bus::{EventBus, Router, Subscription};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use sse_bridge_core::log::LogLimits;

use crate::cluster::{ShardedSubscriberTask, link_group};
use crate::config::RedisConfig;
use crate::conn::{Commands, open_client};
use crate::keyspace::Keyspace;
use crate::presence::Presence;
use crate::subscriber::{Command, LATE_REPLY_PERIODS, SubscriberTask};

/// Redis Pub/Sub event bus. Cheap to clone; the connections close when the
/// last clone is dropped.
#[derive(Clone)]
pub struct RedisBus {
    shared: Arc<Shared>,
}

struct Shared {
    router: Arc<Router>,
    commands: mpsc::UnboundedSender<Command>,
    publisher: Commands,
    keyspace: Keyspace,
    config: RedisConfig,
    subscriber: JoinHandle<()>,
    presence: Presence,
    /// Renews `presence` while the bus lives.
    renewal: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.subscriber.abort();
        self.renewal.abort();
        // Subscriptions still held are no longer fed: say so.
        self.router.set_link(false);
    }
}

impl RedisBus {
    /// Connects both connections; fails if Redis is unreachable or refuses
    /// the credentials. Needs a Tokio runtime.
    pub async fn connect(config: RedisConfig) -> Result<RedisBus, BrokerError> {
        let (commands, queue) = mpsc::unbounded_channel();
        let unsubscribe = commands.clone();
        // Runs inside Subscription::drop: must not block, so it only enqueues.
        // The router is keyed by Redis channel names.
        let on_last_unsubscribe = move |channel: &str| {
            let _ = unsubscribe.send(Command::Unsubscribe(channel.to_owned()));
        };
        // A cluster loses and recovers its channels a slot at a time.
        let router = if config.cluster {
            Router::with_link_groups(config.subscription, link_group, on_last_unsubscribe)
        } else {
            Router::new(config.subscription, on_last_unsubscribe)
        };
        let init = Some(crate::log::load_functions());
        let publisher = Commands::connect(&config, "pub", config.command_timeout, init).await?;
        let subscriber = match publisher.cluster_connection() {
            Some(cluster) => {
                let task =
                    ShardedSubscriberTask::connect(config.clone(), router.clone(), queue, cluster)
                        .await?;
                tokio::spawn(task.run())
            }
            None => {
                // RESP3 lets one multiplexed connection carry subscriptions as pushes.
                let sub_client = open_client(&config, true)?;
                let task = SubscriberTask::new(sub_client, config.clone(), router.clone(), queue);
                let live = task.connect().await?;
                tokio::spawn(task.run(live))
            }
        };
        let presence = Presence::new(config.presence_lease);
        presence.renew(&publisher).await?;
        let shared = Arc::new_cyclic(|shared| Shared {
            router,
            commands,
            publisher,
            keyspace: Keyspace::new(config.cluster),
            renewal: tokio::spawn(renew_presence(shared.clone(), presence.renew_every())),
            presence,
            config,
            subscriber,
        });
        Ok(RedisBus { shared })
    }

    /// This process's presence (follower counts that expire with it).
    pub(crate) fn presence(&self) -> &Presence {
        &self.shared.presence
    }

    /// `true` while the subscriber connection is up and resubscribed (in
    /// cluster mode: while no shard's subscriptions are recovering).
    pub fn link_up(&self) -> bool {
        self.shared.router.link_up()
    }

    /// The command connection (PUBLISH, PING, the log's functions).
    pub(crate) fn commands(&self) -> &Commands {
        &self.shared.publisher
    }

    /// How session names are spelled at Redis.
    pub(crate) fn keyspace(&self) -> Keyspace {
        self.shared.keyspace
    }

    pub(crate) fn log_limits(&self) -> LogLimits {
        self.shared.config.log
    }
}

/// Renews the bus's presence until the bus is dropped.
async fn renew_presence(shared: Weak<Shared>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Err(error) = shared.presence.renew(&shared.publisher).await {
            tracing::warn!("could not renew this gateway's presence: {error}");
        }
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn subscribe(&self, channel: &str) -> Result<Subscription, BrokerError> {
        let shared = &self.shared;
        let channel = shared.keyspace.name(channel);
        if !shared.router.link_up_for(&channel) {
            return Err(BrokerError::Unavailable(
                "Redis subscriber connection is reconnecting".into(),
            ));
        }
        let (subscription, _first) = shared.router.add(&channel);
        // Confirmed even when not first: the first subscriber's SUBSCRIBE may
        // still be in flight, and commands are applied in order.
        let (done, confirmed) = oneshot::channel();
        shared
            .commands
            .send(Command::Subscribe {
                channel: channel.into_owned(),
                done,
            })
            .map_err(|_| BrokerError::Closed)?;
        // A single node's subscriber task may take a late reply (see
        // `subscriber::answered`) and answers within this.
        let limit = match shared.keyspace.is_cluster() {
            true => shared.config.command_timeout,
            false => shared.config.command_timeout * (LATE_REPLY_PERIODS + 1),
        };
        match tokio::time::timeout(limit, confirmed).await {
            Ok(Ok(Ok(()))) => Ok(subscription),
            Ok(Ok(Err(err))) => Err(err),
            Ok(Err(_)) => Err(BrokerError::Closed),
            Err(_) => Err(BrokerError::Timeout(limit)),
        }
    }

    async fn publish(&self, channel: &str, message: Bytes) -> Result<u64, BrokerError> {
        let keyspace = self.shared.keyspace;
        let command = if keyspace.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let publish = redis::cmd(command)
            .arg(&*keyspace.name(channel))
            .arg(&message[..])
            .to_owned();
        self.shared.publisher.query(&publish).await
    }

    async fn check_ready(&self) -> Result<(), BrokerError> {
        if !self.shared.router.link_up() {
            return Err(BrokerError::Unavailable(
                "Redis subscriber connection is down".into(),
            ));
        }
        let limit = self.shared.config.command_timeout;
        let ping = redis::cmd("PING");
        tokio::time::timeout(limit, self.shared.publisher.query::<()>(&ping))
            .await
            .map_err(|_| BrokerError::Timeout(limit))?
    }

    fn routed_channels(&self) -> usize {
        self.shared.router.channel_count()
    }
}
