//! Handing a core's latency histograms to readers without copying them on
//! the core.
//!
//! A [`LatencySet`] is about 1 MB (five HdrHistograms of 1 ns to 10 s at 3
//! significant digits). Copying it on the lcore once a second (allocate,
//! copy, free) held the loop for over 100 us every time, idle or not. So
//! the core records into a set that holds only what it saw since its last
//! hand-over, and hands it over by swapping it for the slot's spare, an
//! empty set of the same shape: three words moved, nothing allocated,
//! nothing copied. Readers fold what was handed over into the total (the
//! O(size) add and reset run on the reader's thread, under the slot's lock),
//! which frees the spare for the next hand-over.
//!
//! The core only ever `try_lock`s the slot and skips a hand-over when a
//! reader holds it or has not yet folded the last one: what it recorded
//! stays in its own set and goes with the next hand-over, so nothing is
//! lost, only seen later. Readers see the histograms since start as of the
//! last hand-over.

use super::latency::LatencySet;
use std::sync::Mutex;

/// One core's latency histograms, as readers see them.
#[derive(Debug, Default)]
pub struct LatencySlot {
    inner: Mutex<Exchange>,
}

#[derive(Debug, Default)]
struct Exchange {
    /// Everything folded so far.
    total: LatencySet,
    /// The last hand-over when `pending`, else an empty spare.
    handed: LatencySet,
    pending: bool,
}

impl Exchange {
    fn fold(&mut self) {
        if self.pending {
            self.total.merge(&self.handed);
            self.handed.reset();
            self.pending = false;
        }
    }
}

impl LatencySlot {
    /// On the core: give the slot what `recent` holds and leave `recent`
    /// empty, if the slot is free and its spare is empty; otherwise leave
    /// `recent` as it is. Never waits, allocates or copies a histogram.
    /// Returns whether it handed over.
    pub fn hand_over(&self, recent: &mut LatencySet) -> bool {
        if recent.is_empty() {
            return false;
        }
        let Ok(mut x) = self.inner.try_lock() else {
            return false;
        };
        if x.pending {
            return false;
        }
        std::mem::swap(&mut x.handed, recent);
        x.pending = true;
        true
    }

    /// On the core's way out: fold in what it still holds (may wait).
    pub fn hand_over_last(&self, recent: &LatencySet) {
        if let Ok(mut x) = self.inner.lock() {
            x.fold();
            x.total.merge(recent);
        }
    }

    /// Readers: `f` of the histograms since start, as of the last
    /// hand-over. `None` if a reader panicked holding the slot.
    pub fn read<R>(&self, f: impl FnOnce(&LatencySet) -> R) -> Option<R> {
        let mut x = self.inner.lock().ok()?;
        x.fold();
        Some(f(&x.total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::latency::TrafficKind;

    fn count(s: &LatencySlot, k: TrafficKind) -> u64 {
        s.read(|l| l.histogram(k).len()).unwrap()
    }

    #[test]
    fn hand_over_empties_the_core_set_and_readers_see_the_sum() {
        let slot = LatencySlot::default();
        let mut recent = LatencySet::default();
        recent.record(TrafficKind::Udp, 1000, 10);
        assert!(slot.hand_over(&mut recent));
        assert!(recent.is_empty());
        recent.record(TrafficKind::Udp, 2000, 5);
        // The reader has not folded the first one yet: the core keeps its
        // counts for later.
        assert!(!slot.hand_over(&mut recent));
        assert_eq!(recent.histogram(TrafficKind::Udp).len(), 5);
        assert_eq!(count(&slot, TrafficKind::Udp), 10);
        assert!(slot.hand_over(&mut recent));
        recent.record(TrafficKind::Tcp, 3000, 1);
        slot.hand_over_last(&recent);
        assert_eq!(count(&slot, TrafficKind::Udp), 15);
        assert_eq!(count(&slot, TrafficKind::Tcp), 1);
        // Read twice, counted once.
        assert_eq!(count(&slot, TrafficKind::Udp), 15);
    }

    #[test]
    fn a_held_slot_is_skipped_not_waited_for() {
        let slot = LatencySlot::default();
        let mut recent = LatencySet::default();
        recent.record(TrafficKind::Icmp, 500, 1);
        let guard = slot.inner.lock().unwrap();
        assert!(!slot.hand_over(&mut recent));
        drop(guard);
        assert_eq!(recent.histogram(TrafficKind::Icmp).len(), 1);
        // Nothing recorded: nothing to hand over.
        let mut empty = LatencySet::default();
        assert!(!slot.hand_over(&mut empty));
        assert!(slot.hand_over(&mut recent));
        assert_eq!(count(&slot, TrafficKind::Icmp), 1);
    }

    #[test]
    fn the_spare_comes_back_empty() {
        let slot = LatencySlot::default();
        let mut recent = LatencySet::default();
        for round in 1..=3u64 {
            recent.record(TrafficKind::Udp, 1000 * round, round);
            assert!(slot.hand_over(&mut recent));
            assert!(recent.is_empty(), "round {round}");
            assert_eq!(
                count(&slot, TrafficKind::Udp),
                (1..=round).sum::<u64>(),
                "round {round}"
            );
        }
        let max = slot.read(|l| l.histogram(TrafficKind::Udp).max()).unwrap();
        assert!((2990..=3010).contains(&max), "{max}");
    }
}
