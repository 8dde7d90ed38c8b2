//! Turns of the engine's network work within one apply: container starts
//! (each makes an endpoint on the project network) and stops (each deletes
//! one) never overlap. Pure synchronisation, no engine I/O.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Which of the engine's network work a step does: a container start makes
/// its endpoint on the project network, a stop of a running one deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Start = 0,
    Stop = 1,
}

/// Starts and stops take turns: any number of one side at once, never both.
/// Docker 20.10 miscounts a network's endpoints now and then when one is
/// created while another is deleted, and then keeps the network after the
/// last container is gone ("has active endpoints") until dockerd restarts;
/// rolling updates, which stop some containers while they start others,
/// made that happen far more often than `down` alone (BENCHMARKS.md). The
/// turn passes to the other side when it waits: steps that wait join the
/// turn of their side, new ones wait behind a waiting other side, so
/// neither starves.
#[derive(Default)]
pub struct Turns {
    state: Mutex<TurnState>,
    free: Notify,
}

#[derive(Default)]
struct TurnState {
    /// The side whose turn it is, if any.
    side: Option<Side>,
    /// Steps in, of that side.
    count: usize,
    /// Steps waiting, by side (`Side::index`).
    waiting: [usize; 2],
}

impl Side {
    fn index(self) -> usize {
        self as usize
    }

    fn other(self) -> Side {
        match self {
            Side::Start => Side::Stop,
            Side::Stop => Side::Start,
        }
    }
}

/// A step's turn, given back when dropped.
pub struct Turn<'t>(&'t Turns);

/// A step waiting for its side's turn; counted in
/// [`TurnState::waiting`] until it enters or is dropped.
struct Queued<'t> {
    turns: &'t Turns,
    side: Side,
    armed: bool,
}

impl Turns {
    /// Waits for a turn of `side`; it lasts until the [`Turn`] is dropped.
    pub async fn take(&self, side: Side) -> Turn<'_> {
        let mut queued: Option<Queued<'_>> = None;
        loop {
            let free = self.free.notified();
            {
                let mut s = self.lock();
                let mine = s.side.unwrap_or(side) == side;
                if mine && (queued.is_some() || s.waiting[side.other().index()] == 0) {
                    s.side = Some(side);
                    s.count += 1;
                    if let Some(mut q) = queued.take() {
                        s.waiting[side.index()] -= 1;
                        q.armed = false;
                    }
                    return Turn(self);
                }
                if queued.is_none() {
                    s.waiting[side.index()] += 1;
                    queued = Some(Queued {
                        turns: self,
                        side,
                        armed: true,
                    });
                }
            }
            free.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.count -= 1;
        if s.count == 0 {
            // To the other side when it waits, else to whoever comes.
            s.side = s
                .side
                .map(Side::other)
                .filter(|other| s.waiting[other.index()] > 0);
            drop(s);
            self.0.free.notify_waiters();
        }
    }
}

/// A waiting step given up (its apply failed or was interrupted): the turn
/// handed to its side goes back when no one of the side is left to take it.
impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut s = self.turns.lock();
        s.waiting[self.side.index()] -= 1;
        if s.count == 0 && s.side == Some(self.side) && s.waiting[self.side.index()] == 0 {
            s.side = None;
        }
        drop(s);
        self.turns.free.notify_waiters();
    }
}

/// Applies `plan` (computed from `desired`) to `engine`. `then` runs once
/// every step succeeded, while the last settle checks still wait (it is
/// not run after a failure); the apply returns once both are done.
///
/// # Errors
/// The first failure: an engine call, or a container that did not start or
/// become ready (with the tail of its logs).
pub async fn apply(
    engine: &dyn Backend,
    desired: &Desired,
    plan: &Plan,
    options: &Options,
    reporter: &dyn Reporter,
    then: impl Future<Output = ()>,
) -> Result<(), ApplyError> {
    let readiness = Readiness::new(engine, &desired.project);
    let run = Run {
        engine,
        project: &desired.project,
        swarm: desired.swarm,
        layout: plan.layout,
        options,
        reporter,
        readiness: &readiness,
        failed: AtomicBool::new(false),
        busy: watch::channel(plan.services.len()).0,
        turns: Turns::default(),
    };
    let mut busy = run.busy.subscribe();
    let steps = async {
        let result = run.all(plan).await;
        if result.is_err() {
            run.failed.store(true, Ordering::SeqCst);
        }
        run.busy.send_replace(0);
        result
    };
    let then = async {
        let _ = busy.wait_for(|n| *n == 0).await;
        if !run.failed.load(Ordering::SeqCst) {
            then.await;
        }
    };
    readiness
        .around(async { tokio::join!(steps, then).0 })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Steps of both sides at once, each holding its turn a moment: the
    /// two sides are never in together, and every step gets its turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn starts_and_stops_never_overlap_and_every_step_gets_a_turn() {
        let turns = Arc::new(Turns::default());
        let inside = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let most_of_one = Arc::new(AtomicUsize::new(0));
        let mut steps = Vec::new();
        for i in 0..64u64 {
            let side = if i % 3 == 0 { Side::Stop } else { Side::Start };
            let (turns, inside, most) = (turns.clone(), inside.clone(), most_of_one.clone());
            steps.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i % 7)).await;
                let _turn = turns.take(side).await;
                let n = inside[side.index()].fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                assert_eq!(inside[side.other().index()].load(Ordering::SeqCst), 0);
                tokio::time::sleep(Duration::from_millis(3)).await;
                assert_eq!(inside[side.other().index()].load(Ordering::SeqCst), 0);
                inside[side.index()].fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for s in steps {
            tokio::time::timeout(Duration::from_secs(10), s)
                .await
                .expect("a step never got its turn")
                .expect("two sides overlapped");
        }
        // One side's steps do share a turn.
        assert!(most_of_one.load(Ordering::SeqCst) > 1);
    }

    /// A waiting step dropped (its apply failed) does not keep the turn
    /// from the others.
    #[tokio::test]
    async fn a_waiter_given_up_does_not_block_the_others() {
        let turns = Turns::default();
        let start = turns.take(Side::Start).await;
        // A stop waits, and is given up (the timeout drops it).
        let stop = turns.take(Side::Stop);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), stop)
                .await
                .is_err()
        );
        drop(start);
        let again = tokio::time::timeout(Duration::from_secs(1), turns.take(Side::Start)).await;
        assert!(again.is_ok(), "a start waited for a stop that is gone");
        drop(again);
        // A stop given up while the turn was handed to it.
        let start = turns.take(Side::Start).await;
        let mut stop = Box::pin(turns.take(Side::Stop));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), stop.as_mut())
                .await
                .is_err()
        );
        drop(start);
        drop(stop);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), turns.take(Side::Start))
                .await
                .is_ok(),
            "the turn stayed with a side no one waits on"
        );
    }
}
