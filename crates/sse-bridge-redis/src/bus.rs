//! [`RedisBus`]: the [`EventBus`] on Redis Pub/Sub (and, in `crate::log`,
//! the session log beside it).
//!
//! Two connections per process whatever the number of sessions: one
//! subscriber connection (`sse-bridge:sub`, owned by the task in
//! [`crate::subscriber`]) multiplexes every channel, and one pipelined
//! command connection (`sse-bridge:pub`) carries PUBLISH, PING and the
//! log's function calls.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sse_bridge_core::BrokerError;
use sse_bridge_core::bus::{EventBus, Router, Subscription};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use sse_bridge_core::log::LogLimits;

use crate::config::RedisConfig;
use crate::conn::{NamedConnection, connection_config, open_client};
use crate::subscriber::{Command, SubscriberTask};

/// Redis Pub/Sub event bus. Cheap to clone; the connections close when the
/// last clone is dropped.
#[derive(Clone)]
pub struct RedisBus {
    shared: Arc<Shared>,
}

struct Shared {
    router: Arc<Router>,
    commands: mpsc::UnboundedSender<Command>,
    publisher: NamedConnection,
    config: RedisConfig,
    subscriber: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.subscriber.abort();
        // Subscriptions still held are no longer fed: say so.
        self.router.set_link(false);
    }
}

impl RedisBus {
    /// Connects both connections; fails if Redis is unreachable or refuses
    /// the credentials. Needs a Tokio runtime.
    pub async fn connect(config: RedisConfig) -> Result<RedisBus, BrokerError> {
        // RESP3 lets one multiplexed connection carry subscriptions as pushes.
        let sub_client = open_client(&config, true)?;
        let pub_client = open_client(&config, false)?;
        let (commands, queue) = mpsc::unbounded_channel();
        let unsubscribe = commands.clone();
        // Runs inside Subscription::drop: must not block, so it only enqueues.
        let router = Router::new(config.subscription, move |channel: &str| {
            let _ = unsubscribe.send(Command::Unsubscribe(channel.to_owned()));
        });
        let publisher = NamedConnection::new(
            pub_client,
            connection_config(&config, config.command_timeout),
            format!("{}:pub", config.client_name),
            config.connect_timeout,
        )
        .with_init(crate::log::load_functions());
        publisher.get().await?;
        let task = SubscriberTask::new(sub_client, config.clone(), router.clone(), queue);
        let live = task.connect().await?;
        let subscriber = tokio::spawn(task.run(live));
        Ok(RedisBus {
            shared: Arc::new(Shared {
                router,
                commands,
                publisher,
                config,
                subscriber,
            }),
        })
    }

    /// `true` while the subscriber connection is up and resubscribed.
    pub fn link_up(&self) -> bool {
        self.shared.router.link_up()
    }

    /// The command connection (PUBLISH, PING, the log's functions).
    pub(crate) fn commands(&self) -> &NamedConnection {
        &self.shared.publisher
    }

    pub(crate) fn log_limits(&self) -> LogLimits {
        self.shared.config.log
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn subscribe(&self, channel: &str) -> Result<Subscription, BrokerError> {
        let shared = &self.shared;
        if !shared.router.link_up() {
            return Err(BrokerError::Unavailable(
                "Redis subscriber connection is reconnecting".into(),
            ));
        }
        let (subscription, _first) = shared.router.add(channel);
        // Confirmed even when not first: the first subscriber's SUBSCRIBE may
        // still be in flight, and commands are applied in order.
        let (done, confirmed) = oneshot::channel();
        shared
            .commands
            .send(Command::Subscribe {
                channel: channel.to_owned(),
                done,
            })
            .map_err(|_| BrokerError::Closed)?;
        let limit = shared.config.command_timeout;
        match tokio::time::timeout(limit, confirmed).await {
            Ok(Ok(Ok(()))) => Ok(subscription),
            Ok(Ok(Err(err))) => Err(err),
            Ok(Err(_)) => Err(BrokerError::Closed),
            Err(_) => Err(BrokerError::Timeout(limit)),
        }
    }

    async fn publish(&self, channel: &str, message: Bytes) -> Result<u64, BrokerError> {
        let publish = redis::cmd("PUBLISH")
            .arg(channel)
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
