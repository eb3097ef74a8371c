//! Handing a core's buffered frames to its TX queue, in bursts (l3fwd's
//! `send_burst`): what the NIC refuses is retried a few times, then freed and
//! counted. Frames that were never offered stay buffered for the next flush;
//! the buffer is bounded where frames enter it (`CoreLimits::tx_queue`).
//!
//! Generic over the queue so that the policy is unit-tested without a NIC.

use crate::buf::{PacketBuf, BURST};
use crate::stats::{Counters, DropReason};
use arrayvec::ArrayVec;

/// A TX queue: takes what it can of a burst.
pub trait TxBurst<B> {
    /// Send as many of `pkts` as the queue takes, from the front; returns
    /// how many. What is not taken stays in `pkts`, in order.
    fn tx_burst(&mut self, pkts: &mut ArrayVec<B, BURST>) -> usize;
}

/// How many times one flush offers frames the NIC refused before it gives
/// up on them: a full TX ring drains at line rate, so a few tries cover a
/// momentary stall without spinning on a stuck one.
const TRIES: usize = 4;

/// Send what is buffered in `pending`, in order. When the NIC has refused
/// [`TRIES`] times, the frames it refused last are freed and counted
/// (`tx_refused`, `drop_queue_full`); the rest stays in `pending`.
#[inline]
pub fn flush<B: PacketBuf, Q: TxBurst<B>>(
    txq: &mut Q,
    pending: &mut Vec<B>,
    counters: &mut Counters,
) {
    let mut burst: ArrayVec<B, BURST> = ArrayVec::new();
    let mut refusals = 0;
    while !pending.is_empty() {
        let n = pending.len().min(BURST);
        burst.extend(pending.drain(..n));
        let bytes: usize = burst.iter().map(PacketBuf::len).sum();
        let sent = txq.tx_burst(&mut burst);
        counters.tx_packets += sent as u64;
        if burst.is_empty() {
            counters.tx_bytes += bytes as u64;
            continue;
        }
        let left: usize = burst.iter().map(PacketBuf::len).sum();
        counters.tx_bytes += (bytes - left) as u64;
        refusals += 1;
        if refusals >= TRIES {
            // Only what the NIC refused: the frames behind them were never
            // offered and wait for the next flush.
            counters.tx_refused += burst.len() as u64;
            counters.drops[DropReason::QueueFull as usize] += burst.len() as u64;
            burst.clear();
            return;
        }
        // Put the refused ones back at the front, in order. No allocation:
        // `pending` just gave up at least this many slots.
        pending.splice(0..0, burst.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;

    /// A TX ring with `room` free descriptors that nothing drains.
    struct Ring {
        room: usize,
        sent: Vec<HeapBuf>,
        calls: usize,
    }

    impl TxBurst<HeapBuf> for Ring {
        fn tx_burst(&mut self, pkts: &mut ArrayVec<HeapBuf, BURST>) -> usize {
            self.calls += 1;
            let n = pkts.len().min(self.room);
            self.room -= n;
            self.sent.extend(pkts.drain(..n));
            n
        }
    }

    fn frames(n: u8) -> Vec<HeapBuf> {
        (0..n).map(|i| HeapBuf::from_slice(&[i; 60])).collect()
    }

    #[test]
    fn everything_goes_when_the_ring_has_room() {
        let mut ring = Ring {
            room: 1000,
            sent: vec![],
            calls: 0,
        };
        let mut pending = frames(70);
        let mut c = Counters::default();
        flush(&mut ring, &mut pending, &mut c);
        assert!(pending.is_empty());
        assert_eq!((c.tx_packets, c.tx_bytes, c.tx_refused), (70, 70 * 60, 0));
        assert_eq!(ring.calls, 3);
        let order: Vec<u8> = ring.sent.iter().map(|b| b.data()[0]).collect();
        assert_eq!(order, (0..70).collect::<Vec<u8>>());
    }

    #[test]
    fn a_full_ring_costs_only_the_frames_it_refused() {
        // 40 slots: the first burst of 32 goes, the second goes 8 and is
        // refused 24 (then 32, three more times): those 32 are freed, the
        // 28 frames never offered stay, in order, for the next flush.
        let mut ring = Ring {
            room: 40,
            sent: vec![],
            calls: 0,
        };
        let mut pending = frames(100);
        let mut c = Counters::default();
        flush(&mut ring, &mut pending, &mut c);
        assert_eq!(c.tx_packets, 40);
        assert_eq!(c.tx_bytes, 40 * 60);
        assert_eq!(c.tx_refused, 32);
        assert_eq!(c.drops[DropReason::QueueFull as usize], 32);
        assert_eq!(ring.calls, 1 + TRIES);
        let kept: Vec<u8> = pending.iter().map(|b| b.data()[0]).collect();
        assert_eq!(kept, (72..100).collect::<Vec<u8>>());

        // The ring drains: the kept frames go next, nothing lost besides.
        ring.room = 1000;
        flush(&mut ring, &mut pending, &mut c);
        assert!(pending.is_empty());
        assert_eq!(c.tx_packets, 68);
        assert_eq!(c.tx_refused, 32);
        let order: Vec<u8> = ring.sent.iter().map(|b| b.data()[0]).collect();
        let want: Vec<u8> = (0..40).chain(72..100).collect();
        assert_eq!(order, want);
    }
}
