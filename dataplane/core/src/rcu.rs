//! RCU-style publication of immutable snapshots.
//!
//! The control thread builds an immutable snapshot and publishes it with one
//! atomic pointer swap ([`SnapshotCell::publish`]). Workers pick up the new
//! pointer between bursts, never blocking, and report the generation they
//! run ([`SnapshotCell::quiescent`]). Once every worker has reported the new
//! generation no one can still use the old one: the control thread then
//! drops its last reference (so memory is freed off the fast path) and may
//! close ports that the new snapshot no longer has.
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A snapshot knows its generation (strictly increasing per publication).
pub trait Generation {
    fn generation(&self) -> u64;
}

#[repr(align(64))]
#[derive(Default)]
struct WorkerSync {
    seen: AtomicU64,
    active: AtomicBool,
}

/// The published snapshot plus each worker's last seen generation.
pub struct SnapshotCell<T> {
    current: ArcSwap<T>,
    /// Generation of `current`, so workers poll one integer, not the pointer.
    generation: AtomicU64,
    workers: Box<[WorkerSync]>,
}

impl<T: Generation> SnapshotCell<T> {
    pub fn new(initial: T, workers: usize) -> SnapshotCell<T> {
        SnapshotCell {
            generation: AtomicU64::new(initial.generation()),
            current: ArcSwap::from_pointee(initial),
            workers: (0..workers).map(|_| WorkerSync::default()).collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The current snapshot (worker side: a few atomic ops, no lock).
    #[inline(always)]
    pub fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Worker `w` is running generation `gen` and holds nothing older.
    #[inline(always)]
    pub fn quiescent(&self, w: usize, gen: u64) {
        if let Some(s) = self.workers.get(w) {
            if s.seen.load(Ordering::Relaxed) != gen {
                s.seen.store(gen, Ordering::Release);
            }
        }
    }

    /// Marks worker `w` as polling (or gone: a stopped worker does not hold
    /// up grace periods).
    pub fn set_active(&self, w: usize, active: bool) {
        if let Some(s) = self.workers.get(w) {
            s.active.store(active, Ordering::Release);
        }
    }

    /// Publishes `next` (its generation must be higher) and returns the
    /// previous snapshot, which the caller keeps until [`Self::synchronize`].
    pub fn publish(&self, next: T) -> Arc<T> {
        let gen = next.generation();
        let prev = self.current.swap(Arc::new(next));
        self.generation.store(gen, Ordering::Release);
        prev
    }

    /// Generation of the current snapshot.
    #[inline(always)]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Waits until every active worker has moved to generation `gen` or
    /// later: a grace period. False on timeout.
    pub fn synchronize(&self, gen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.workers.iter().all(|s| {
                !s.active.load(Ordering::Acquire) || s.seen.load(Ordering::Acquire) >= gen
            });
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generation and a token whose count shows who holds the snapshot.
    #[derive(Debug)]
    struct Snap(u64, #[allow(dead_code)] Arc<()>);
    impl Generation for Snap {
        fn generation(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn grace_period_waits_for_every_active_worker() {
        let cell = Arc::new(SnapshotCell::new(Snap(1, Arc::new(())), 2));
        // Inactive workers do not hold anything up.
        assert!(cell.synchronize(1, Duration::ZERO));
        cell.set_active(0, true);
        cell.set_active(1, true);
        cell.quiescent(0, 1);
        cell.quiescent(1, 1);
        let token = Arc::new(());
        let old = cell.publish(Snap(2, token.clone()));
        assert_eq!(old.0, 1);
        assert_eq!(cell.generation(), 2);
        // Nobody has moved yet.
        assert!(!cell.synchronize(2, Duration::from_millis(5)));
        let w = {
            let cell = cell.clone();
            std::thread::spawn(move || {
                for i in 0..2 {
                    let s = cell.load_full();
                    cell.quiescent(i, s.generation());
                }
            })
        };
        assert!(cell.synchronize(2, Duration::from_secs(5)));
        w.join().unwrap();
        // The old snapshot is only ours now; the new one is the cell's.
        assert_eq!(Arc::strong_count(&old), 1);
        assert_eq!(Arc::strong_count(&token), 2);
        // A stopped worker is skipped.
        cell.set_active(1, false);
        cell.publish(Snap(3, token.clone()));
        cell.quiescent(0, 3);
        assert!(cell.synchronize(3, Duration::ZERO));
        assert_eq!(
            Arc::strong_count(&token),
            2,
            "snapshot 2 was dropped with publish's return value"
        );
    }
}
