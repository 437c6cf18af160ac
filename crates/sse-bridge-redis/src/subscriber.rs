//! The one subscriber connection of a [`crate::RedisBus`] and the task that
//! owns it.
//!
//! # Why a hand-rolled task on a RESP3 multiplexed connection
//!
//! redis-rs's `ConnectionManager` reconnects and resubscribes by itself, but
//! it does not tell when the link is back (only a `Disconnection` push when it
//! is lost), cannot re-apply `CLIENT SETNAME`, and an error from its push
//! sender can silently stop its reconnect task (redis-rs #1610). `aio::PubSub`
//! cannot be named either. So this task owns one RESP3 `MultiplexedConnection`
//! and drives it explicitly:
//!
//! * Incoming messages are handed to the [`Router`] by [`Inbound`], the
//!   connection's push sender, right in the connection's read loop: a
//!   non-blocking `try_send` per subscriber, no intermediate queue.
//! * SUBSCRIBE / UNSUBSCRIBE requests arrive as [`Command`]s on one queue and
//!   are applied in batches, in order. Before unsubscribing, the router is
//!   asked again whether the channel has subscribers: a subscriber that came
//!   back meanwhile is never left deaf.
//! * On a lost connection (`Disconnection` push, failed command, failed
//!   health-check PING) the router's link goes down, the task reconnects with
//!   capped exponential backoff, resubscribes every routed channel, and only
//!   then raises the link again.
//! * A reply is late, not lost, while messages keep arriving ahead of it
//!   ([`answered`]): an overloaded gateway reads its one connection seconds
//!   behind, and taking that for a dead connection would drop the link of
//!   every stream at once — and resubscribe them all, at the worst moment.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{Client, PushInfo, PushKind, Value};
use sse_bridge_core::BrokerError;
use sse_bridge_core::bus::Router;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::config::RedisConfig;
use crate::conn::{Backoff, connect_named, connection_config};
use crate::error::broker_error;

/// Channels per SUBSCRIBE / UNSUBSCRIBE command, to keep each one small.
const CHANNELS_PER_COMMAND: usize = 1000;
/// Commands applied together: one round trip for a burst of new sessions.
const COMMANDS_PER_BATCH: usize = 256;
/// A reply may come this many command timeouts late while messages keep
/// arriving ahead of it; after that the connection counts as lost.
pub(crate) const LATE_REPLY_PERIODS: u32 = 10;

/// A request to the subscriber task.
pub(crate) enum Command {
    /// Make sure `channel` is subscribed at Redis, then answer on `done`.
    Subscribe {
        channel: String,
        done: oneshot::Sender<Result<(), BrokerError>>,
    },
    /// `channel` lost its last local subscriber.
    Unsubscribe(String),
}

/// The push sender of a subscriber connection: routes messages, reports loss.
struct Inbound {
    router: Arc<Router>,
    lost: Arc<Notify>,
    /// Messages read off the connection so far: its sign of life.
    received: Arc<AtomicU64>,
}

impl AsyncPushSender for Inbound {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Message => {
                self.received.fetch_add(1, Ordering::Relaxed);
                let mut data = info.data.into_iter();
                if let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                {
                    match std::str::from_utf8(&channel) {
                        Ok(channel) => {
                            self.router.deliver(channel, Bytes::from(payload));
                        }
                        Err(_) => tracing::debug!("message on a non-UTF-8 channel ignored"),
                    }
                }
            }
            PushKind::Disconnection => self.lost.notify_one(),
            // Subscription confirmations are consumed by the subscribe calls.
            _ => {}
        }
        // Never report an error: redis-rs may stop delivering after one.
        Ok(())
    }
}

/// A connected subscriber connection.
pub(crate) struct Live {
    conn: MultiplexedConnection,
    lost: Arc<Notify>,
    received: Arc<AtomicU64>,
}

/// Owns the subscriber connection; see the module doc.
pub(crate) struct SubscriberTask {
    client: Client,
    config: RedisConfig,
    router: Arc<Router>,
    commands: mpsc::UnboundedReceiver<Command>,
}

impl SubscriberTask {
    pub(crate) fn new(
        client: Client,
        config: RedisConfig,
        router: Arc<Router>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        SubscriberTask {
            client,
            config,
            router,
            commands,
        }
    }

    /// Connects and subscribes every routed channel.
    pub(crate) async fn connect(&self) -> Result<Live, BrokerError> {
        let lost = Arc::new(Notify::new());
        let received = Arc::new(AtomicU64::new(0));
        // redis-rs's own deadline only backs up `answered`'s.
        let latest = self.config.command_timeout * (LATE_REPLY_PERIODS + 1);
        let settings = connection_config(&self.config, latest).set_push_sender(Inbound {
            router: self.router.clone(),
            lost: lost.clone(),
            received: received.clone(),
        });
        let name = format!("{}:sub", self.config.client_name);
        let mut conn = connect_named(
            &self.client,
            &settings,
            &name,
            self.config.connect_timeout * 2,
        )
        .await?;
        let channels = self.router.channels();
        for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
            let limit = self.config.command_timeout;
            answered(limit, &received, conn.subscribe(chunk)).await?;
        }
        Ok(Live {
            conn,
            lost,
            received,
        })
    }

    /// Serves `live`, then reconnects whenever the connection is lost; runs
    /// until the bus is dropped (which aborts it).
    pub(crate) async fn run(mut self, mut live: Live) {
        loop {
            self.router.set_link(true);
            let Some(reason) = self.serve(&mut live).await else {
                return;
            };
            self.router.set_link(false);
            tracing::warn!(reason, "Redis subscriber connection lost, reconnecting");
            live = self.reconnect().await;
            tracing::info!(
                channels = self.router.channel_count(),
                "Redis subscriber connection restored"
            );
        }
    }

    async fn reconnect(&self) -> Live {
        let mut backoff = Backoff::new(self.config.reconnect_min, self.config.reconnect_max);
        loop {
            tokio::time::sleep(backoff.next_delay()).await;
            match self.connect().await {
                Ok(live) => {
                    metrics::counter!(sse_bridge_core::metrics::REDIS_RECONNECTS).increment(1);
                    return live;
                }
                Err(err) => tracing::debug!(%err, "Redis subscriber reconnect failed"),
            }
        }
    }

    /// Applies commands and health-checks until the connection is lost (and
    /// says why), or until the bus is gone (`None`).
    async fn serve(&mut self, live: &mut Live) -> Option<&'static str> {
        let period = self.config.health_check_interval;
        let mut health = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut batch = Vec::with_capacity(COMMANDS_PER_BATCH);
        loop {
            tokio::select! {
                _ = live.lost.notified() => return Some("disconnected"),
                received = self.commands.recv_many(&mut batch, COMMANDS_PER_BATCH) => {
                    if received == 0 {
                        return None;
                    }
                    if let Err(err) = self.apply(live, &mut batch).await {
                        tracing::warn!(%err, "SUBSCRIBE/UNSUBSCRIBE failed");
                        return Some("command failed");
                    }
                }
                _ = health.tick() => {
                    let ping = redis::cmd("PING").to_owned();
                    let limit = self.config.command_timeout;
                    let pong = answered(limit, &live.received, ping.exec_async(&mut live.conn));
                    if let Err(err) = pong.await {
                        tracing::warn!(%err, "health-check PING failed");
                        return Some("health check failed");
                    }
                }
            }
        }
    }

    /// Brings Redis in line with the router for every channel in `batch`,
    /// then answers the batch's subscribe requests.
    async fn apply(&self, live: &mut Live, batch: &mut Vec<Command>) -> Result<(), BrokerError> {
        let (conn, received) = (&mut live.conn, &live.received);
        let limit = self.config.command_timeout;
        let mut touched: Vec<String> = Vec::with_capacity(batch.len());
        let mut waiters = Vec::new();
        let mut any_unsubscribe = false;
        for command in batch.drain(..) {
            match command {
                Command::Subscribe { channel, done } => {
                    touched.push(channel);
                    waiters.push(done);
                }
                Command::Unsubscribe(channel) => {
                    touched.push(channel);
                    any_unsubscribe = true;
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        // The router is the truth: an Unsubscribe may be stale (a subscriber
        // came back since), and a Subscribe may be obsolete (it left again).
        let (subscribe, unsubscribe): (Vec<String>, Vec<String>) = if any_unsubscribe {
            touched.into_iter().partition(|c| self.router.contains(c))
        } else {
            (touched, Vec::new())
        };
        let mut result = Ok(());
        for chunk in subscribe.chunks(CHANNELS_PER_COMMAND) {
            result = answered(limit, received, conn.subscribe(chunk)).await;
            if result.is_err() {
                break;
            }
        }
        for done in waiters {
            // The subscriber may have given up waiting; nothing to do then.
            let _ = done.send(result.clone());
        }
        result?;
        for chunk in unsubscribe.chunks(CHANNELS_PER_COMMAND) {
            answered(limit, received, conn.unsubscribe(chunk)).await?;
        }
        Ok(())
    }
}

/// Waits for a reply on the subscriber connection: a [`BrokerError::Timeout`]
/// once `limit` passed without a single message read off the connection
/// (the server or the link hangs), or once the reply is
/// [`LATE_REPLY_PERIODS`] × `limit` late. While messages keep coming the
/// reply is only queued behind them (replies come in order).
async fn answered<T>(
    limit: Duration,
    received: &AtomicU64,
    reply: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    let mut reply = std::pin::pin!(reply);
    let mut seen = received.load(Ordering::Relaxed);
    for _ in 0..LATE_REPLY_PERIODS {
        if let Ok(result) = tokio::time::timeout(limit, reply.as_mut()).await {
            return result.map_err(broker_error);
        }
        let now = received.load(Ordering::Relaxed);
        if now == seen {
            break;
        }
        seen = now;
    }
    Err(BrokerError::Timeout(limit))
}
