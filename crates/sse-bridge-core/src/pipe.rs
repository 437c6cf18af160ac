//! A one-way queue of [`Bytes`] between two tasks that costs almost
//! nothing while it is empty.
//!
//! Every held stream owns two queues: bus → session driver (its
//! subscription) and driver → response body (its outbox). Most of a held
//! stream's life both are empty, so what an empty queue costs is paid per
//! stream: a tokio `mpsc` channel allocates a 32-slot block and a
//! cache-padded channel up front, ~1.5 KB; a pipe is one ~120-byte
//! allocation until something is queued, and gives its buffer back once a
//! burst has been taken. Bounds are the sender's business (the bus bounds a
//! subscription in messages and bytes, the driver bounds its outbox by a
//! byte budget), so the pipe only reports what it holds.
//!
//! Either end may go away: the receiver then sees the end of the queue
//! after what is already in it; the sender is told the receiver is gone.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// A queue whose buffer grew past this many items is freed once emptied,
/// so a burst does not stay allocated for the rest of a long stream.
const KEEP_CAPACITY: usize = 16;

/// Creates a pipe.
pub fn pipe() -> (PipeSender, PipeReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
    });
    (
        PipeSender {
            shared: shared.clone(),
            seen_taken: 0,
        },
        PipeReceiver { shared },
    )
}

struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    items: VecDeque<Bytes>,
    /// Sum of the queued items' lengths.
    bytes: usize,
    /// Items the receiver has taken so far (how the sender sees progress).
    taken: u64,
    sender_gone: bool,
    receiver_gone: bool,
    /// The receiver waits for an item or the sender's end.
    receiver_waker: Option<Waker>,
    /// The sender waits for the receiver to take something or go away.
    sender_waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few field updates that cannot panic
        // half-way, so a poisoned lock still guards a consistent state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The receiver went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverGone;

/// What [`PipeSender::push_within`] did with an item.
#[must_use]
pub enum Pushed {
    Queued(Wake),
    /// Over the bounds: not queued.
    Full,
    ReceiverGone,
}

/// The receiver a push must wake, if it was waiting. Wakes on
/// [`Wake::wake`] or on drop, whichever comes first: a wake-up is never lost.
#[must_use = "dropping it wakes the receiver at once"]
pub struct Wake(Option<Waker>);

impl Wake {
    pub fn wake(mut self) {
        if let Some(waker) = self.0.take() {
            waker.wake();
        }
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        if let Some(waker) = self.0.take() {
            waker.wake();
        }
    }
}

/// The sending end.
pub struct PipeSender {
    shared: Arc<Shared>,
    /// `State::taken` when the sender last looked.
    seen_taken: u64,
}

impl PipeSender {
    /// Queues `item`, whatever the queue holds.
    pub fn push(&self, item: Bytes) -> Result<(), ReceiverGone> {
        match self.push_within(item, usize::MAX, usize::MAX) {
            Pushed::Queued(wake) => {
                wake.wake();
                Ok(())
            }
            Pushed::Full => unreachable!("an unbounded push always fits"),
            Pushed::ReceiverGone => Err(ReceiverGone),
        }
    }

    /// Queues `item` if the queue then holds at most `max_items` items and
    /// `max_bytes` bytes. The receiver is woken only when the returned
    /// [`Wake`] is used or dropped, so a caller that holds a lock of its own
    /// can wake it after letting go.
    pub fn push_within(&self, item: Bytes, max_items: usize, max_bytes: usize) -> Pushed {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Pushed::ReceiverGone;
        }
        if state.items.len() >= max_items || state.bytes + item.len() > max_bytes {
            return Pushed::Full;
        }
        state.bytes += item.len();
        state.items.push_back(item);
        Pushed::Queued(Wake(state.receiver_waker.take()))
    }

    /// Bytes queued and not yet taken.
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().items.is_empty()
    }

    /// Waits until the receiver takes an item it had not taken when this
    /// was last called (or when the sender was made), or goes away
    /// (cancel-safe).
    pub async fn taken(&mut self) -> Result<(), ReceiverGone> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.receiver_gone {
                return Poll::Ready(Err(ReceiverGone));
            }
            if state.taken != self.seen_taken {
                self.seen_taken = state.taken;
                return Poll::Ready(Ok(()));
            }
            register(&mut state.sender_waker, cx);
            Poll::Pending
        })
        .await
    }

    /// Waits until the receiver goes away (cancel-safe).
    pub async fn receiver_gone(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.receiver_gone {
                return Poll::Ready(());
            }
            register(&mut state.sender_waker, cx);
            Poll::Pending
        })
        .await
    }
}

impl Drop for PipeSender {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.sender_gone = true;
            state.receiver_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The receiving end.
pub struct PipeReceiver {
    shared: Arc<Shared>,
}

impl PipeReceiver {
    /// The next item; `Ready(None)` once the sender is gone and the queue empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let (item, waker) = {
            let mut state = self.shared.lock();
            match state.take() {
                Some(item) => (item, state.sender_waker.take()),
                None if state.sender_gone => return Poll::Ready(None),
                None => {
                    register(&mut state.receiver_waker, cx);
                    return Poll::Pending;
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(Some(item))
    }

    /// Waits for the next item (cancel-safe).
    pub async fn recv(&mut self) -> Option<Bytes> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if one is queued: `Ok(None)` when none is, `Err` once
    /// the sender is gone and the queue empty.
    pub fn try_recv(&mut self) -> Result<Option<Bytes>, SenderGone> {
        let (item, waker) = {
            let mut state = self.shared.lock();
            match state.take() {
                Some(item) => (item, state.sender_waker.take()),
                None if state.sender_gone => return Err(SenderGone),
                None => return Ok(None),
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(Some(item))
    }
}

/// The sender went away and everything it queued was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderGone;

impl Drop for PipeReceiver {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            // Nobody will take them: free them now, not with the last handle.
            state.items = VecDeque::new();
            state.bytes = 0;
            state.sender_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl State {
    fn take(&mut self) -> Option<Bytes> {
        let item = self.items.pop_front()?;
        self.bytes -= item.len();
        self.taken += 1;
        if self.items.is_empty() && self.items.capacity() > KEEP_CAPACITY {
            self.items = VecDeque::new();
        }
        Some(item)
    }
}

/// Stores the task to wake, replacing a stale waker only when it differs.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use futures::FutureExt;

    fn item(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[tokio::test]
    async fn items_arrive_in_order_and_the_end_after_the_last() {
        let (tx, mut rx) = pipe();
        tx.push(item("a")).unwrap();
        tx.push(item("bc")).unwrap();
        assert_eq!(tx.queued_bytes(), 3);
        drop(tx);
        assert_eq!(rx.recv().await, Some(item("a")));
        assert_eq!(rx.try_recv(), Ok(Some(item("bc"))));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(SenderGone));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_push_and_by_the_senders_end() {
        let (tx, mut rx) = pipe();
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.push(item("x")).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(tx);
        let (first, end) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the receiver was woken")
            .unwrap();
        assert_eq!((first, end), (Some(item("x")), None));
    }

    #[test]
    fn bounds_refuse_without_queuing() {
        let (tx, mut rx) = pipe();
        assert!(matches!(
            tx.push_within(item("abcd"), 2, 6),
            Pushed::Queued(_)
        ));
        assert!(
            matches!(tx.push_within(item("abc"), 2, 6), Pushed::Full),
            "7 bytes > 6"
        );
        assert!(matches!(
            tx.push_within(item("ab"), 2, 6),
            Pushed::Queued(_)
        ));
        assert!(
            matches!(tx.push_within(item(""), 2, 6), Pushed::Full),
            "3 items > 2"
        );
        assert_eq!(tx.queued_bytes(), 6);
        assert_eq!(rx.try_recv(), Ok(Some(item("abcd"))));
        assert_eq!(tx.queued_bytes(), 2);
        drop(rx);
        assert!(matches!(
            tx.push_within(item("a"), 2, 6),
            Pushed::ReceiverGone
        ));
        assert_eq!(tx.push(item("a")), Err(ReceiverGone));
        assert_eq!(tx.queued_bytes(), 0, "a gone receiver's items are freed");
    }

    #[tokio::test]
    async fn the_sender_sees_each_take_once_and_the_receivers_end() {
        let (mut tx, mut rx) = pipe();
        tx.push(item("a")).unwrap();
        tx.push(item("b")).unwrap();
        assert!(tx.taken().now_or_never().is_none(), "nothing taken yet");
        rx.try_recv().unwrap();
        assert_eq!(tx.taken().now_or_never(), Some(Ok(())));
        assert!(tx.taken().now_or_never().is_none(), "that take was seen");
        let waiting = tokio::spawn(async move { tx.taken().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(rx);
        let seen = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the sender was woken")
            .unwrap();
        assert_eq!(seen, Err(ReceiverGone));
    }

    #[tokio::test]
    async fn receiver_gone_resolves_only_when_it_is() {
        let (tx, rx) = pipe();
        assert!(tx.receiver_gone().now_or_never().is_none());
        drop(rx);
        assert_eq!(tx.receiver_gone().now_or_never(), Some(()));
    }

    /// Counts the times it was woken.
    #[derive(Default)]
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_bounded_push_wakes_the_receiver_when_its_wake_is_used_or_dropped() {
        let (tx, mut rx) = pipe();
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let woken = || counter.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(rx.poll_recv(&mut Context::from_waker(&waker)).is_pending());
        let Pushed::Queued(wake) = tx.push_within(item("a"), 8, 8) else {
            panic!("it fits");
        };
        assert_eq!(woken(), 0, "not before the caller says so");
        wake.wake();
        assert_eq!(woken(), 1);
        rx.try_recv().unwrap();
        assert!(rx.poll_recv(&mut Context::from_waker(&waker)).is_pending());
        drop(tx.push_within(item("b"), 8, 8));
        assert_eq!(woken(), 2, "a dropped wake still wakes");
    }

    #[test]
    fn a_burst_does_not_keep_its_buffer() {
        let (tx, mut rx) = pipe();
        for _ in 0..100 {
            tx.push(item("x")).unwrap();
        }
        while let Ok(Some(_)) = rx.try_recv() {}
        assert_eq!(tx.shared.lock().items.capacity(), 0);
    }
}
