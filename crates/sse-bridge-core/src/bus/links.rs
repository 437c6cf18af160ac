//! The broker link state of a [`super::Router`]'s subscriptions: one link
//! for every channel, or one per link group, created with the group's first
//! channel and dropped with its last, so an idle group costs nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// The link state the subscriptions watch.
pub(super) struct Links(Kind);

enum Kind {
    /// One link for every channel.
    Shared(watch::Sender<bool>),
    /// One link per group of channels, for the groups that have channels.
    Grouped {
        group_of: fn(&str) -> u16,
        groups: Mutex<HashMap<u16, GroupLink>>,
    },
}

/// The link of one group, and how many channels share it.
struct GroupLink {
    link: watch::Sender<bool>,
    channels: usize,
}

impl Links {
    pub(super) fn shared() -> Links {
        Links(Kind::Shared(watch::Sender::new(true)))
    }

    pub(super) fn grouped(group_of: fn(&str) -> u16) -> Links {
        Links(Kind::Grouped {
            group_of,
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// The link a new subscription to `channel` watches; `new_channel`
    /// when the router had no entry for it yet (it joins its group).
    pub(super) fn watch(&self, channel: &str, new_channel: bool) -> watch::Receiver<bool> {
        match &self.0 {
            Kind::Shared(link) => link.subscribe(),
            Kind::Grouped { group_of, groups } => {
                let mut groups = lock(groups);
                let group = groups
                    .entry(group_of(channel))
                    .or_insert_with(|| GroupLink {
                        link: watch::Sender::new(true),
                        channels: 0,
                    });
                group.channels += usize::from(new_channel);
                group.link.subscribe()
            }
        }
    }

    /// `channel` lost its last subscription: its group's link is dropped
    /// with the group's last channel.
    pub(super) fn forget(&self, channel: &str) {
        if let Kind::Grouped { group_of, groups } = &self.0 {
            let mut groups = lock(groups);
            let group = group_of(channel);
            if let Some(link) = groups.get_mut(&group) {
                link.channels -= 1;
                if link.channels == 0 {
                    groups.remove(&group);
                }
            }
        }
    }

    pub(super) fn set_all(&self, up: bool) {
        match &self.0 {
            Kind::Shared(link) => {
                link.send_replace(up);
            }
            Kind::Grouped { groups, .. } => {
                for group in lock(groups).values() {
                    group.link.send_replace(up);
                }
            }
        }
    }

    pub(super) fn set_groups(&self, groups: impl IntoIterator<Item = u16>, up: bool) {
        match &self.0 {
            Kind::Shared(_) => debug_assert!(false, "this router has no link groups"),
            Kind::Grouped { groups: links, .. } => {
                let links = lock(links);
                for group in groups {
                    if let Some(group) = links.get(&group) {
                        group.link.send_replace(up);
                    }
                }
            }
        }
    }

    pub(super) fn all_up(&self) -> bool {
        match &self.0 {
            Kind::Shared(link) => *link.borrow(),
            Kind::Grouped { groups, .. } => lock(groups).values().all(|g| *g.link.borrow()),
        }
    }

    pub(super) fn up_for(&self, channel: &str) -> bool {
        match &self.0 {
            Kind::Shared(link) => *link.borrow(),
            Kind::Grouped { group_of, groups } => lock(groups)
                .get(&group_of(channel))
                .is_none_or(|g| *g.link.borrow()),
        }
    }
}

/// Locks `mutex`. A panic while holding one of the router's locks cannot
/// leave its map inconsistent (every mutation is a single call), so
/// poisoning is ignored.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use crate::bus::{Router, SubscriptionBound};

    fn first_byte(channel: &str) -> u16 {
        channel
            .as_bytes()
            .first()
            .copied()
            .unwrap_or_default()
            .into()
    }

    #[tokio::test]
    async fn a_group_link_reaches_only_that_groups_subscriptions() {
        let router = Router::with_link_groups(SubscriptionBound::messages(2), first_byte, |_| {});
        let (a1, _) = router.add("a1");
        let (a2, _) = router.add("a2");
        let (b, _) = router.add("b");
        let (mut a1_link, mut b_link) = (a1.link(), b.link());
        router.set_group_links([u16::from(b'a')], false);
        a1_link.changed().await.unwrap();
        assert!(!*a1_link.borrow() && !*a2.link().borrow());
        assert!(!b_link.has_changed().unwrap() && *b_link.borrow());
        assert!(!router.link_up() && !router.link_up_for("a3") && router.link_up_for("b2"));

        router.set_group_links([u16::from(b'a')], true);
        assert!(*a1_link.borrow_and_update() && router.link_up());
        // The whole router's link still reaches every group.
        router.set_link(false);
        b_link.changed().await.unwrap();
        assert!(!*b_link.borrow() && !*a2.link().borrow());
    }

    #[tokio::test]
    async fn a_group_link_lives_as_long_as_the_groups_channels() {
        let router = Router::with_link_groups(SubscriptionBound::messages(2), first_byte, |_| {});
        let (a1, _) = router.add("a1");
        let (a1_again, _) = router.add("a1");
        let (a2, _) = router.add("a2");
        router.set_group_links([u16::from(b'a')], false);
        drop((a1, a1_again));
        assert!(!router.link_up_for("a1"), "a2 still holds the group's link");
        drop(a2);
        assert!(
            router.link_up_for("a1"),
            "a group without channels starts anew"
        );
        let (a3, _) = router.add("a3");
        assert!(*a3.link().borrow());
    }
}
