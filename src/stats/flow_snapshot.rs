//! Publishing a core's flow records a slice at a time.
//!
//! Copying every record at once held the loop for as long as the table is
//! big (about 70 bytes a flow: tens of microseconds per thousand flows,
//! milliseconds at `--flow-records 65536`). So a snapshot, once started,
//! copies at most [`STEP`] records per timer tick (every 100 us) into a
//! buffer of the core's, and when all are copied swaps that buffer with the
//! slot's (`try_lock`: a reader holding the slot delays the swap by a tick,
//! never the loop). The slot's old buffer becomes the next one to fill, so
//! once both have held the whole table nothing is allocated. Each record is
//! copied whole; records copied in different ticks are up to the walk's
//! length apart (a few milliseconds at 65536 flows).

use super::flows::{FlowId, FlowLog, FlowRecord};
use std::sync::Mutex;

/// Records copied per step.
pub const STEP: usize = 1024;

/// A snapshot in progress, or none.
#[derive(Debug, Default)]
pub struct FlowSnapshot {
    staging: Vec<(FlowId, FlowRecord)>,
    /// The next record to copy, while a snapshot is under way.
    next: Option<usize>,
}

impl FlowSnapshot {
    /// Begin a snapshot, unless one is under way.
    pub fn start(&mut self) {
        if self.next.is_none() {
            self.staging.clear();
            self.next = Some(0);
        }
    }

    /// Copy up to [`STEP`] more records, or publish the snapshot once all
    /// are copied. Returns whether it did anything.
    pub fn step(&mut self, log: &FlowLog, slot: &Mutex<Vec<(FlowId, FlowRecord)>>) -> bool {
        let Some(at) = self.next else {
            return false;
        };
        let records = log.records();
        if at < records.len() {
            if self.staging.capacity() < log.capacity() {
                // Once per buffer: both reach the table's size and stay.
                self.staging
                    .reserve_exact(log.capacity() - self.staging.len());
            }
            let end = (at + STEP).min(records.len());
            self.staging.extend_from_slice(&records[at..end]);
            self.next = Some(end);
            return true;
        }
        if let Ok(mut published) = slot.try_lock() {
            std::mem::swap(&mut *published, &mut self.staging);
            self.next = None;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::flows::Transport;
    use crate::time::Instant;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn log_of(n: u16) -> FlowLog {
        let mut log = FlowLog::new(usize::from(n) + 10);
        for p in 0..n {
            let id = FlowId {
                transport: Transport::Udp,
                local_port: 7,
                remote: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), p),
            };
            log.record_in(Instant(1), id, 10, false);
        }
        log
    }

    #[test]
    fn a_step_copies_at_most_step_records_and_the_last_publishes() {
        let log = log_of(2500);
        let slot = Mutex::new(Vec::new());
        let mut snap = FlowSnapshot::default();
        assert!(!snap.step(&log, &slot), "nothing started");
        snap.start();
        let mut steps = 0;
        while snap.next.is_some() {
            let before = snap.staging.len();
            assert!(snap.step(&log, &slot));
            if snap.next.is_some() {
                assert!(snap.staging.len() - before <= STEP);
            }
            steps += 1;
        }
        // 1024 + 1024 + 452, then the swap.
        assert_eq!(steps, 4);
        assert_eq!(slot.lock().unwrap().as_slice(), log.records());
    }

    #[test]
    fn a_held_slot_delays_the_swap_and_buffers_are_reused() {
        let log = log_of(100);
        let slot = Mutex::new(Vec::new());
        let mut snap = FlowSnapshot::default();
        snap.start();
        assert!(snap.step(&log, &slot));
        let guard = slot.lock().unwrap();
        assert!(snap.step(&log, &slot));
        assert!(snap.next.is_some(), "swapped into a held slot");
        drop(guard);
        assert!(snap.step(&log, &slot));
        assert_eq!(slot.lock().unwrap().len(), 100);
        // Second round: the slot's old buffer is filled; both now hold
        // the table's capacity, so neither grows again.
        snap.start();
        while snap.next.is_some() {
            snap.step(&log, &slot);
        }
        snap.start();
        while snap.next.is_some() {
            snap.step(&log, &slot);
        }
        assert!(snap.staging.capacity() >= log.capacity());
        assert!(slot.lock().unwrap().capacity() >= log.capacity());
        assert_eq!(slot.lock().unwrap().as_slice(), log.records());
    }
}
