//! The event bus: how worker events reach the session that owns them.
//!
//! A backend ([`crate::embedded::EmbeddedBus`], Redis Pub/Sub in
//! `sse-bridge-redis`) implements [`EventBus`]. Every backend routes incoming
//! messages through one [`Router`]: a map from channel name to the bounded
//! queues of the [`Subscription`]s on it. The router never blocks its caller
//! (the backend's read loop): a subscriber whose queue is full is cut off and
//! told so ([`Delivery::Overflowed`]) instead of stalling every other session.
//! Queues are bounded in messages and in bytes ([`SubscriptionBound`]), and a
//! message larger than any reader would accept is dropped before it is
//! queued, so a flood costs at most the bound per subscription.
//!
//! The map is sharded by channel name, each shard behind its own lock, so
//! sessions subscribing and leaving block only the deliveries of their
//! shard; and a delivery wakes the subscribers it queued for only after it
//! let go of the shard (a woken driver on the other core would otherwise
//! find the lock held and wait for it).
//!
//! Each subscription also watches a broker *link* ([`Subscription::link`]):
//! one for the whole router when one connection carries every channel, or
//! one per link group ([`Router::with_link_groups`]: a Redis Cluster's key
//! slot) when the backend loses and recovers channels a group at a time. A
//! group's link exists while the group has channels, and is shared by them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use smallvec::SmallVec;
use tokio::sync::watch;

use crate::error::BrokerError;
use crate::pipe::{PipeReceiver, PipeSender, Pushed, Wake, pipe};

mod links;

use links::{Links, lock};

/// Publish/subscribe on named channels (`sse_session:{id}`, `sse_control:{id}`).
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Subscribes to `channel`; returns only once the broker confirmed the
    /// subscription, so nothing published afterwards can be missed.
    async fn subscribe(&self, channel: &str) -> Result<Subscription, BrokerError>;

    /// Publishes one message; returns the number of subscribers that got it
    /// where the broker reports it.
    async fn publish(&self, channel: &str, message: Bytes) -> Result<u64, BrokerError>;

    /// `Ok` while the broker is reachable (drives `/readyz`).
    async fn check_ready(&self) -> Result<(), BrokerError>;

    /// Channels with at least one live subscription in this process.
    fn routed_channels(&self) -> usize;
}

/// What a subscriber receives next.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    Message(Bytes),
    /// The subscriber fell behind: its queue filled and it was cut off.
    Overflowed,
    /// The bus dropped this subscription (shut down).
    Closed,
}

/// How much one subscription may hold between the bus's read loop and its
/// reader (a session's driver, which reads whatever its client does: the
/// queue fills only when the process is short of CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionBound {
    /// Messages queued at most.
    pub messages: usize,
    /// Bytes queued at most (the queued messages' lengths).
    pub bytes: usize,
    /// Larger messages are dropped before they are queued (a session would
    /// skip them as oversized anyway), and counted.
    pub message_bytes: usize,
}

impl SubscriptionBound {
    /// Up to `messages` messages of up to 1 MiB, 16 MiB in all.
    pub fn messages(messages: usize) -> Self {
        SubscriptionBound {
            messages,
            bytes: 16 * 1024 * 1024,
            message_bytes: 1024 * 1024,
        }
    }
}

/// A confirmed subscription to one channel; dropping it unsubscribes.
pub struct Subscription {
    messages: PipeReceiver,
    shared: Arc<RouteShared>,
    link: watch::Receiver<bool>,
    _route: RouteGuard,
}

impl Subscription {
    /// Waits for the next message (cancel-safe).
    pub async fn recv(&mut self) -> Delivery {
        match self.messages.recv().await {
            Some(message) => Delivery::Message(message),
            None => self.closed_reason(),
        }
    }

    /// The next message if one is already queued.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        match self.messages.try_recv() {
            Ok(message) => message.map(Delivery::Message),
            Err(_) => Some(self.closed_reason()),
        }
    }

    /// Its reader holds `bytes` elsewhere for the same client (frames not
    /// taken yet, merged text): the queue's byte bound shrinks by as much,
    /// so a stream's memory stays within one budget, not one per stage.
    pub fn hold(&self, bytes: usize) {
        self.shared.held_elsewhere.store(bytes, Ordering::Relaxed);
    }

    fn closed_reason(&self) -> Delivery {
        if self.shared.overflowed.load(Ordering::Acquire) {
            Delivery::Overflowed
        } else {
            Delivery::Closed
        }
    }

    /// Broker link state: `true` while this subscription is live at the
    /// broker, `false` while the bus is reconnecting (messages may be lost).
    pub fn link(&self) -> watch::Receiver<bool> {
        self.link.clone()
    }
}

/// Routes messages from a backend's read loop to the subscriptions in this process.
pub struct Router {
    /// Channel → its routes, spread over [`SHARDS`] maps by the channel's
    /// hash; the name is shared with each route's guard.
    shards: Box<[Mutex<ChannelRoutes>]>,
    next_id: AtomicU64,
    bound: SubscriptionBound,
    links: Links,
    on_last_unsubscribe: Box<dyn Fn(&str) + Send + Sync>,
}

/// Shards of the router's map: enough that 100,000 channels churning
/// rarely meet on one lock, few enough to cost nothing when idle.
const SHARDS: usize = 64;

/// One shard of the router's map.
type ChannelRoutes = HashMap<Arc<str>, Routes>;

/// The routes of one channel: nearly always one, held inline.
type Routes = SmallVec<[Route; 1]>;

/// A subscription's queue, seen from the router; dropping it ends the
/// subscription's stream of messages.
struct Route {
    id: u64,
    tx: PipeSender,
    shared: Arc<RouteShared>,
}

/// What a subscription and its route both see.
#[derive(Default)]
struct RouteShared {
    /// Set by the router when it cut the subscription off.
    overflowed: AtomicBool,
    /// Bytes the subscription's reader holds for the same client elsewhere
    /// ([`Subscription::hold`]).
    held_elsewhere: AtomicUsize,
}

impl Route {
    /// Queues `message` if the queue, with what its reader holds
    /// elsewhere, stays within `bound`.
    fn offer(&self, message: &Bytes, bound: &SubscriptionBound) -> Pushed {
        let held_elsewhere = self.shared.held_elsewhere.load(Ordering::Relaxed);
        let bytes = bound.bytes.saturating_sub(held_elsewhere);
        self.tx.push_within(message.clone(), bound.messages, bytes)
    }
}

/// Removes its route from the router on drop.
struct RouteGuard {
    router: Arc<Router>,
    channel: Arc<str>,
    id: u64,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.router.remove(&self.channel, self.id);
    }
}

/// What [`Router::deliver`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    pub delivered: usize,
    /// Subscribers cut off because their queue was full.
    pub overflowed: usize,
    /// The message was larger than `message_bytes` and given to nobody.
    pub oversized: bool,
}

impl Router {
    /// A router whose subscriptions each queue up to `bound` and share one
    /// link. `on_last_unsubscribe` runs (under no lock) when a channel loses
    /// its last subscription, so the backend can UNSUBSCRIBE at the broker.
    pub fn new(
        bound: SubscriptionBound,
        on_last_unsubscribe: impl Fn(&str) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::with_links(bound, Links::shared(), on_last_unsubscribe)
    }

    /// Like [`Router::new`], but the subscriptions of each group of
    /// channels (`group_of`) share a link of their own, set with
    /// [`Router::set_group_links`]. A group's link starts up.
    pub fn with_link_groups(
        bound: SubscriptionBound,
        group_of: fn(&str) -> u16,
        on_last_unsubscribe: impl Fn(&str) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::with_links(bound, Links::grouped(group_of), on_last_unsubscribe)
    }

    fn with_links(
        bound: SubscriptionBound,
        links: Links,
        on_last_unsubscribe: impl Fn(&str) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Router {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            next_id: AtomicU64::new(0),
            bound: SubscriptionBound {
                messages: bound.messages.max(1),
                ..bound
            },
            links,
            on_last_unsubscribe: Box::new(on_last_unsubscribe),
        })
    }

    /// Registers a subscription; returns it and whether it is the channel's
    /// first (the backend must then SUBSCRIBE at the broker before handing it out).
    pub fn add(self: &Arc<Self>, channel: &str) -> (Subscription, bool) {
        let (tx, messages) = pipe();
        let shared = Arc::new(RouteShared::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (channel, first, link) = {
            let mut routes = self.shard(channel);
            let (channel, new_entry) = match routes.get_key_value(channel) {
                Some((name, _)) => (name.clone(), false),
                None => (Arc::from(channel), true),
            };
            let list = routes.entry(channel.clone()).or_default();
            list.push(Route {
                id,
                tx,
                shared: shared.clone(),
            });
            let first = list.len() == 1;
            // Under the shard's lock, so a group never loses its link while
            // one of its channels is being added.
            let link = self.links.watch(&channel, new_entry);
            (channel, first, link)
        };
        let subscription = Subscription {
            messages,
            shared,
            link,
            _route: RouteGuard {
                router: self.clone(),
                channel,
                id,
            },
        };
        (subscription, first)
    }

    /// Hands `message` to every subscription of `channel` without waiting.
    pub fn deliver(&self, channel: &str, message: Bytes) -> Routed {
        let mut routed = Routed {
            delivered: 0,
            overflowed: 0,
            oversized: message.len() > self.bound.message_bytes,
        };
        if routed.oversized {
            let reason = crate::protocol::MalformedEvent::TooLarge.label();
            metrics::counter!(crate::metrics::MALFORMED_EVENTS, "reason" => reason).increment(1);
            tracing::warn!(
                channel,
                bytes = message.len(),
                "dropped an oversized message before queuing it"
            );
            return routed;
        }
        let mut wakes = SmallVec::<[Wake; 1]>::new();
        {
            let mut routes = self.shard(channel);
            let Some(list) = routes.get_mut(channel) else {
                return routed;
            };
            list.retain(|route| match route.offer(&message, &self.bound) {
                Pushed::Queued(wake) => {
                    wakes.push(wake);
                    routed.delivered += 1;
                    true
                }
                Pushed::Full => {
                    route.shared.overflowed.store(true, Ordering::Release);
                    routed.overflowed += 1;
                    false
                }
                // The subscription is being dropped; its guard removes the route.
                Pushed::ReceiverGone => true,
            });
            // An emptied list stays until the cut-off subscriptions are
            // dropped, whose guards then unsubscribe at the broker.
        }
        for wake in wakes {
            wake.wake();
        }
        routed
    }

    /// Channels with at least one subscription.
    pub fn channels(&self) -> Vec<String> {
        let mut channels = Vec::new();
        for shard in &self.shards {
            channels.extend(lock(shard).keys().map(|c| c.to_string()));
        }
        channels
    }

    /// Whether `channel` has at least one subscription.
    pub fn contains(&self, channel: &str) -> bool {
        self.shard(channel).contains_key(channel)
    }

    pub fn channel_count(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Marks the broker link up or down for every subscription.
    pub fn set_link(&self, up: bool) {
        self.links.set_all(up);
    }

    /// Marks the link of each of `groups` (that has channels) up or down;
    /// a router without link groups has only the one link: see [`Router::set_link`].
    pub fn set_group_links(&self, groups: impl IntoIterator<Item = u16>, up: bool) {
        self.links.set_groups(groups, up);
    }

    /// `true` while every subscription's link is up.
    pub fn link_up(&self) -> bool {
        self.links.all_up()
    }

    /// Whether a new subscription to `channel` would start with its link up
    /// (a group without channels yet counts as up: its backend decides).
    pub fn link_up_for(&self, channel: &str) -> bool {
        self.links.up_for(channel)
    }

    fn remove(&self, channel: &str, id: u64) {
        let now_empty = {
            let mut routes = self.shard(channel);
            let Some(list) = routes.get_mut(channel) else {
                return;
            };
            list.retain(|route| route.id != id);
            let empty = list.is_empty();
            if empty {
                routes.remove(channel);
                self.links.forget(channel);
            }
            empty
        };
        if now_empty {
            (self.on_last_unsubscribe)(channel);
        }
    }

    /// The locked shard that holds `channel`'s routes.
    fn shard(&self, channel: &str) -> std::sync::MutexGuard<'_, ChannelRoutes> {
        // A fixed hash suffices: crowding one shard costs only the sharding
        // (each shard's map keeps its own random hasher).
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(channel, &mut hasher);
        let index = std::hash::Hasher::finish(&hasher) as usize % SHARDS;
        lock(&self.shards[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn counting_router(capacity: usize) -> (Arc<Router>, Arc<AtomicUsize>) {
        bounded_router(SubscriptionBound::messages(capacity))
    }

    fn bounded_router(bound: SubscriptionBound) -> (Arc<Router>, Arc<AtomicUsize>) {
        let unsubscribed = Arc::new(AtomicUsize::new(0));
        let counter = unsubscribed.clone();
        let router = Router::new(bound, move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        (router, unsubscribed)
    }

    #[tokio::test]
    async fn delivers_to_every_subscriber_and_unsubscribes_after_the_last() {
        let (router, unsubscribed) = counting_router(8);
        let (mut a, first_a) = router.add("c");
        let (mut b, first_b) = router.add("c");
        assert!(first_a && !first_b);
        assert_eq!(router.deliver("c", Bytes::from_static(b"m")).delivered, 2);
        assert_eq!(a.recv().await, Delivery::Message(Bytes::from_static(b"m")));
        assert_eq!(b.recv().await, Delivery::Message(Bytes::from_static(b"m")));
        drop(a);
        assert_eq!(unsubscribed.load(Ordering::SeqCst), 0);
        drop(b);
        assert_eq!(unsubscribed.load(Ordering::SeqCst), 1);
        assert_eq!(router.channel_count(), 0);
    }

    #[tokio::test]
    async fn message_for_nobody_is_dropped_quietly() {
        let (router, _) = counting_router(8);
        assert_eq!(
            router.deliver("nobody", Bytes::new()),
            Routed {
                delivered: 0,
                overflowed: 0,
                oversized: false,
            }
        );
        assert_eq!(router.channel_count(), 0);
    }

    #[tokio::test]
    async fn full_subscriber_is_cut_off_and_told_after_draining() {
        let (router, unsubscribed) = counting_router(2);
        let (mut slow, _) = router.add("c");
        for _ in 0..2 {
            assert_eq!(router.deliver("c", Bytes::from_static(b"x")).delivered, 1);
        }
        assert_eq!(router.deliver("c", Bytes::from_static(b"x")).overflowed, 1);
        assert_eq!(router.deliver("c", Bytes::from_static(b"x")).delivered, 0);
        assert!(matches!(slow.recv().await, Delivery::Message(_)));
        assert!(matches!(slow.recv().await, Delivery::Message(_)));
        assert_eq!(slow.recv().await, Delivery::Overflowed);
        drop(slow);
        assert_eq!(unsubscribed.load(Ordering::SeqCst), 1);
        assert_eq!(router.channel_count(), 0);
    }

    #[tokio::test]
    async fn queues_are_bounded_in_bytes_and_oversized_messages_never_queued() {
        let (router, _) = bounded_router(SubscriptionBound {
            messages: 100,
            bytes: 10,
            message_bytes: 6,
        });
        let (mut sub, _) = router.add("c");
        let routed = router.deliver("c", Bytes::from_static(b"1234567"));
        assert!(routed.oversized && routed.delivered == 0 && routed.overflowed == 0);
        assert_eq!(
            router.deliver("c", Bytes::from_static(b"123456")).delivered,
            1
        );
        assert_eq!(
            router.deliver("c", Bytes::from_static(b"1234")).delivered,
            1
        );
        // Taking a message frees its bytes.
        assert!(matches!(sub.recv().await, Delivery::Message(m) if m.len() == 6));
        assert_eq!(
            router.deliver("c", Bytes::from_static(b"123456")).delivered,
            1
        );
        // 4 + 6 queued: one more byte is over the bound.
        assert_eq!(router.deliver("c", Bytes::from_static(b"1")).overflowed, 1);
        assert!(matches!(sub.recv().await, Delivery::Message(m) if m.len() == 4));
        assert!(matches!(sub.recv().await, Delivery::Message(m) if m.len() == 6));
        assert_eq!(sub.recv().await, Delivery::Overflowed);
    }

    #[tokio::test]
    async fn what_a_reader_holds_elsewhere_shrinks_its_queue() {
        let (router, _) = bounded_router(SubscriptionBound {
            messages: 100,
            bytes: 10,
            message_bytes: 10,
        });
        let (sub, _) = router.add("c");
        sub.hold(6);
        assert_eq!(
            router.deliver("c", Bytes::from_static(b"1234")).delivered,
            1
        );
        assert_eq!(router.deliver("c", Bytes::from_static(b"1")).overflowed, 1);
        let (other, _) = router.add("d");
        other.hold(6);
        other.hold(0);
        assert_eq!(
            router
                .deliver("d", Bytes::from_static(b"1234567890"))
                .delivered,
            1,
            "what was taken frees its share"
        );
    }

    /// On wake, records whether the shard of channel `c` was locked.
    struct LockProbe {
        router: Arc<Router>,
        woken_under_lock: Mutex<Vec<bool>>,
    }

    impl std::task::Wake for LockProbe {
        fn wake(self: Arc<Self>) {
            let locked = self.router.shards.iter().any(|s| s.try_lock().is_err());
            self.woken_under_lock.lock().unwrap().push(locked);
        }
    }

    #[test]
    fn subscribers_are_woken_after_the_router_let_go_of_its_locks() {
        let (router, _) = counting_router(8);
        let (mut sub, _) = router.add("c");
        let probe = Arc::new(LockProbe {
            router: router.clone(),
            woken_under_lock: Mutex::default(),
        });
        let waker = std::task::Waker::from(probe.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(sub.messages.poll_recv(&mut cx).is_pending());
        assert_eq!(router.deliver("c", Bytes::from_static(b"m")).delivered, 1);
        assert_eq!(*probe.woken_under_lock.lock().unwrap(), [false]);
    }

    #[test]
    fn channels_spread_over_shards_are_all_counted_listed_and_removed() {
        let (router, unsubscribed) = counting_router(8);
        let subs: Vec<_> = (0..500).map(|i| router.add(&format!("c{i}")).0).collect();
        let used = router.shards.iter().filter(|s| !lock(s).is_empty()).count();
        assert!(used > SHARDS / 2, "500 channels use {used} shards");
        assert_eq!(router.channel_count(), 500);
        assert_eq!(router.channels().len(), 500);
        assert!(router.contains("c499") && !router.contains("c500"));
        assert_eq!(
            router.deliver("c250", Bytes::from_static(b"m")).delivered,
            1
        );
        drop(subs);
        assert_eq!(router.channel_count(), 0);
        assert_eq!(unsubscribed.load(Ordering::SeqCst), 500);
    }

    #[tokio::test]
    async fn link_state_reaches_subscriptions() {
        let (router, _) = counting_router(2);
        let (sub, _) = router.add("c");
        let mut link = sub.link();
        router.set_link(false);
        link.changed().await.unwrap();
        assert!(!*link.borrow());
    }
}
