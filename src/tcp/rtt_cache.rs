//! Temporal sharing of RTT (RFC 9040 section 5): a core's memory of the
//! smoothed RTT and RTTVAR its connections measured to each remote IPv4
//! address, as Linux's tcp_metrics and FreeBSD's hostcache keep them. A
//! connection that closes leaves its estimate here; a new active open to
//! the same address starts its RTT estimator from it, so that its SYN is
//! retransmitted after SRTT + 4 * RTTVAR (RFC 6298 2.3, clamped) instead
//! of the 1 s RFC 6298 2.1 allows only "until an RTT measurement has been
//! made for a segment sent between the sender and receiver".
//!
//! Invariants: at most `capacity` entries, allocated once (the entries and
//! an index with room for over twice as many keys, so neither ever
//! reallocates);
//! `index` maps exactly the addresses of `entries`. A full cache replaces by
//! clock (second chance): the hand skips and clears entries used since it
//! last passed, takes the first expired or unused one. An entry unused for
//! `max_age` is expired: a lookup ignores it and forgets it (RFC 9040 5:
//! cached values are to be kept fresh).

use crate::hash::FlowMap;
use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;

/// Entries per core unless `--tcp-rtt-cache` says otherwise.
pub const DEFAULT_ENTRIES: usize = 1024;

/// How long an entry is kept without being updated or used.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// What one remote address left.
#[derive(Clone, Copy, Debug)]
struct Entry {
    addr: u32,
    srtt_us: u32,
    rttvar_us: u32,
    /// Updated or used last.
    used: Instant,
    /// Used since the clock hand last passed.
    referenced: bool,
}

/// A cached estimate: SRTT and RTTVAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedRtt {
    pub srtt: Duration,
    pub rttvar: Duration,
}

pub struct RttCache {
    entries: Vec<Entry>,
    index: FlowMap<u32, u32>,
    capacity: usize,
    hand: usize,
    max_age: Duration,
    /// Live entries replaced to make room for another address.
    pub replaced: u64,
    /// Active opens whose estimator started from an entry.
    pub hits: u64,
}

impl RttCache {
    /// Room for `capacity` addresses (0: off, nothing is kept).
    pub fn new(capacity: usize, max_age: Duration) -> RttCache {
        RttCache {
            entries: Vec::with_capacity(capacity),
            // Tombstones left by removals make the map rehash, in place
            // while it holds at most half of its room: at most `capacity`
            // keys in room for over twice as many.
            index: FlowMap::with_capacity_and_hasher(
                if capacity == 0 { 0 } else { 2 * capacity + 8 },
                Default::default(),
            ),
            capacity,
            hand: 0,
            max_age,
            replaced: 0,
            hits: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        now.since(e.used) >= self.max_age
    }

    /// `addr`'s estimate, if one is kept and fresh (and counted as a hit:
    /// the caller starts a connection from it).
    pub fn get(&mut self, now: Instant, addr: Ipv4Addr) -> Option<CachedRtt> {
        let key = u32::from(addr);
        let i = *self.index.get(&key)? as usize;
        if self.expired(&self.entries[i], now) {
            self.forget(i);
            return None;
        }
        let e = &mut self.entries[i];
        e.used = now;
        e.referenced = true;
        self.hits += 1;
        Some(CachedRtt {
            srtt: Duration::from_micros(u64::from(e.srtt_us)),
            rttvar: Duration::from_micros(u64::from(e.rttvar_us)),
        })
    }

    /// Keep `addr`'s latest estimate (a connection's smoothed values,
    /// already averaged over its samples, replace the older ones).
    pub fn update(&mut self, now: Instant, addr: Ipv4Addr, est: CachedRtt) {
        if self.capacity == 0 {
            return;
        }
        let key = u32::from(addr);
        let clamp = |d: Duration| d.micros().min(u64::from(u32::MAX)) as u32;
        let entry = Entry {
            addr: key,
            srtt_us: clamp(est.srtt),
            rttvar_us: clamp(est.rttvar),
            used: now,
            referenced: true,
        };
        if let Some(&i) = self.index.get(&key) {
            self.entries[i as usize] = entry;
            return;
        }
        let i = if self.entries.len() < self.capacity {
            self.entries.push(entry);
            self.entries.len() - 1
        } else {
            let i = self.victim(now);
            self.index.remove(&self.entries[i].addr);
            self.entries[i] = entry;
            i
        };
        self.index.insert(key, i as u32);
    }

    /// The clock hand's choice in a full cache: the first entry expired,
    /// or not used since the hand last passed (counted as replaced). Two
    /// turns at most: the first clears every reference bit.
    fn victim(&mut self, now: Instant) -> usize {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.entries.len();
            let e = &mut self.entries[i];
            if now.since(e.used) >= self.max_age {
                return i;
            }
            if !e.referenced {
                self.replaced += 1;
                return i;
            }
            e.referenced = false;
        }
    }

    /// Drop entry `i` (the last one moves into its place).
    fn forget(&mut self, i: usize) {
        let gone = self.entries.swap_remove(i);
        self.index.remove(&gone.addr);
        if let Some(moved) = self.entries.get(i) {
            self.index.insert(moved.addr, i as u32);
        }
        if self.hand >= self.entries.len() {
            self.hand = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(srtt_ms: u64, rttvar_ms: u64) -> CachedRtt {
        CachedRtt {
            srtt: Duration::from_millis(srtt_ms),
            rttvar: Duration::from_millis(rttvar_ms),
        }
    }

    fn addr(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, n)
    }

    #[test]
    fn keeps_the_latest_estimate_per_address() {
        let mut c = RttCache::new(4, MAX_AGE);
        let t = Instant::from_secs(1);
        assert_eq!(c.get(t, addr(1)), None);
        c.update(t, addr(1), est(20, 5));
        c.update(t, addr(2), est(80, 10));
        c.update(t, addr(1), est(22, 3));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(t, addr(1)), Some(est(22, 3)));
        assert_eq!(c.get(t, addr(2)), Some(est(80, 10)));
        assert_eq!(c.get(t, addr(3)), None);
        assert_eq!((c.hits, c.replaced), (2, 0));
    }

    #[test]
    fn bounded_and_replaces_by_clock() {
        let mut c = RttCache::new(3, MAX_AGE);
        let t = Instant::from_secs(1);
        for n in 1..=3 {
            c.update(t, addr(n), est(u64::from(n), 1));
        }
        // The hand's first turn clears every bit; the second takes the
        // first entry not used since: 1.
        c.update(t, addr(4), est(4, 1));
        assert_eq!((c.len(), c.replaced), (3, 1));
        assert_eq!(c.get(t, addr(1)), None);
        // 2 is used now: the hand passes it and takes 3.
        assert!(c.get(t, addr(2)).is_some());
        c.update(t, addr(5), est(5, 1));
        assert_eq!((c.len(), c.replaced), (3, 2));
        assert_eq!(c.get(t, addr(3)), None);
        for n in [2, 4, 5] {
            assert!(c.get(t, addr(n)).is_some(), "{n}");
        }
        // Many more addresses than room: never more than 3 kept.
        for n in 10..100 {
            c.update(t, addr(n), est(1, 1));
            assert!(c.len() <= 3);
        }
        assert_eq!(c.index.len(), c.len());
        assert_eq!(c.replaced, 92);
    }

    #[test]
    fn entries_age_out() {
        let mut c = RttCache::new(2, MAX_AGE);
        let t = Instant::from_secs(1);
        c.update(t, addr(1), est(20, 5));
        c.update(t, addr(2), est(30, 5));
        // Used 9 minutes on: fresh again for another 10.
        let t9 = t.plus(Duration::from_secs(540));
        assert!(c.get(t9, addr(1)).is_some());
        let t11 = t.plus(Duration::from_secs(660));
        assert_eq!(c.get(t11, addr(2)), None, "not used for 11 minutes");
        assert_eq!(c.len(), 1);
        assert!(c.get(t11, addr(1)).is_some());
        // In a full cache an expired entry goes first, not counted.
        c.update(t11, addr(3), est(40, 5));
        let t30 = t11.plus(Duration::from_secs(600));
        c.update(t30, addr(4), est(50, 5));
        assert_eq!((c.len(), c.replaced), (2, 0));
        assert!(c.get(t30, addr(4)).is_some());
    }

    #[test]
    fn zero_entries_keep_nothing() {
        let mut c = RttCache::new(0, MAX_AGE);
        c.update(Instant::ZERO, addr(1), est(20, 5));
        assert_eq!((c.len(), c.get(Instant::ZERO, addr(1))), (0, None));
    }
}
