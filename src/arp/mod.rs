//! The ARP table: one table, many lock-free readers.
//!
//! Every core reads an immutable [`ArpSnapshot`] published through
//! `arc-swap` (RCU): it checks a generation counter once per burst and
//! reloads only when it moved, so the fast path costs one relaxed load.
//! Cores never write the table: what they learn goes as an [`ArpUpdate`]
//! into a bounded MPSC queue, drained by the one [`ArpWriter`] (on the main
//! lcore), which publishes a new snapshot and ages entries out.
//!
//! Per core, [`ArpPending`] holds packets waiting for resolution (bounded;
//! dropped and counted when full or timed out) and rate-limits requests.

mod pending;

pub use pending::{ArpPending, PendingOutcome};

use crate::hash::FlowMap;
use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpEntry {
    pub mac: EthernetAddress,
    /// When it was last learned or confirmed.
    pub updated: Instant,
}

/// An immutable view of the table.
#[derive(Clone, Debug, Default)]
pub struct ArpSnapshot {
    entries: FlowMap<Ipv4Addr, ArpEntry>,
}

impl ArpSnapshot {
    #[inline]
    pub fn lookup(&self, ip: &Ipv4Addr) -> Option<&ArpEntry> {
        self.entries.get(ip)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Ipv4Addr, &ArpEntry)> {
        self.entries.iter()
    }
}

/// What a core learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpUpdate {
    pub ip: Ipv4Addr,
    pub mac: EthernetAddress,
    pub at: Instant,
}

/// Limits of the table.
#[derive(Clone, Copy, Debug)]
pub struct ArpConfig {
    /// Entries the table holds at most.
    pub capacity: usize,
    /// An entry not confirmed for this long is removed.
    pub timeout: Duration,
    /// A core sends an update for a known, unchanged entry only when it is
    /// older than this (keeps the writer's queue quiet under traffic).
    pub refresh: Duration,
    /// Updates in flight from all cores to the writer.
    pub queue_len: usize,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            capacity: 4096,
            timeout: Duration::from_secs(300),
            refresh: Duration::from_secs(30),
            queue_len: 1024,
        }
    }
}

/// The shared part: the published snapshot, its generation, the update queue.
#[derive(Debug)]
pub struct ArpShared {
    snapshot: ArcSwap<ArpSnapshot>,
    generation: AtomicU64,
    updates: ArrayQueue<ArpUpdate>,
    config: ArpConfig,
}

impl ArpShared {
    pub fn new(config: ArpConfig) -> Arc<ArpShared> {
        Arc::new(ArpShared {
            snapshot: ArcSwap::from_pointee(ArpSnapshot::default()),
            generation: AtomicU64::new(0),
            updates: ArrayQueue::new(config.queue_len.max(1)),
            config,
        })
    }
    pub fn config(&self) -> &ArpConfig {
        &self.config
    }
    /// The current snapshot (for diagnostics; cores use [`ArpReader`]).
    pub fn load(&self) -> Arc<ArpSnapshot> {
        self.snapshot.load_full()
    }
}

/// A core's reader: a cached snapshot, reloaded when the generation moves.
#[derive(Debug)]
pub struct ArpReader {
    shared: Arc<ArpShared>,
    cached: Arc<ArpSnapshot>,
    generation: u64,
    /// The last address looked up in this snapshot and its MAC: replies in
    /// a burst mostly go to one neighbour. Cleared with every new snapshot.
    last: std::cell::Cell<Option<(Ipv4Addr, EthernetAddress)>>,
}

/// Why an update was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnResult {
    /// Already known and fresh: nothing sent.
    Known,
    /// Sent to the writer.
    Queued,
    /// The writer's queue was full: dropped.
    QueueFull,
}

impl ArpReader {
    pub fn new(shared: Arc<ArpShared>) -> ArpReader {
        let cached = shared.snapshot.load_full();
        let generation = shared.generation.load(Ordering::Acquire);
        ArpReader {
            shared,
            cached,
            generation,
            last: std::cell::Cell::new(None),
        }
    }

    /// Reload the snapshot if the writer published a new one. Once per burst.
    /// Returns true when it changed.
    #[inline]
    pub fn refresh(&mut self) -> bool {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g == self.generation {
            return false;
        }
        self.cached = self.shared.snapshot.load_full();
        self.generation = g;
        self.last.set(None);
        true
    }

    /// The generation of the snapshot read: it changes exactly when the
    /// snapshot does (a lookup's answer stands while it stays), and never
    /// returns to a value it had.
    #[inline(always)]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The neighbour's MAC. The last one found is asked first, inline
    /// (the reply to the frame just received, nearly always); the table
    /// out of line.
    #[inline(always)]
    pub fn lookup(&self, ip: &Ipv4Addr) -> Option<EthernetAddress> {
        if let Some((last, mac)) = self.last.get() {
            if last == *ip {
                return Some(mac);
            }
        }
        self.lookup_table(ip)
    }

    #[inline(never)]
    fn lookup_table(&self, ip: &Ipv4Addr) -> Option<EthernetAddress> {
        let mac = self.cached.lookup(ip).map(|e| e.mac)?;
        self.last.set(Some((*ip, mac)));
        Some(mac)
    }

    pub fn snapshot(&self) -> &ArpSnapshot {
        &self.cached
    }

    /// Tell the writer about a neighbour, unless the snapshot already has it
    /// with the same address and fresh enough.
    pub fn learn(&self, ip: Ipv4Addr, mac: EthernetAddress, now: Instant) -> LearnResult {
        if let Some(e) = self.cached.lookup(&ip) {
            if e.mac == mac && now.since(e.updated) < self.shared.config.refresh {
                return LearnResult::Known;
            }
        }
        match self.shared.updates.push(ArpUpdate { ip, mac, at: now }) {
            Ok(()) => LearnResult::Queued,
            Err(_) => LearnResult::QueueFull,
        }
    }
}

/// Counters of the writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArpWriterStats {
    pub published: u64,
    pub inserted: u64,
    pub updated: u64,
    pub expired: u64,
    /// Updates refused because the table was full.
    pub table_full: u64,
}

/// The single writer. Lives on one core (the main lcore).
#[derive(Debug)]
pub struct ArpWriter {
    shared: Arc<ArpShared>,
    master: FlowMap<Ipv4Addr, ArpEntry>,
    pub stats: ArpWriterStats,
}

impl ArpWriter {
    pub fn new(shared: Arc<ArpShared>) -> ArpWriter {
        let cap = shared.config.capacity;
        ArpWriter {
            shared,
            master: FlowMap::with_capacity_and_hasher(cap, Default::default()),
            stats: ArpWriterStats::default(),
        }
    }

    /// Apply every queued update; publish once if anything changed.
    /// Returns how many updates were applied.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        let mut changed = false;
        while let Some(u) = self.shared.updates.pop() {
            n += 1;
            changed |= self.apply(u);
        }
        if changed {
            self.publish();
        }
        n
    }

    fn apply(&mut self, u: ArpUpdate) -> bool {
        let entry = ArpEntry {
            mac: u.mac,
            updated: u.at,
        };
        let full = self.master.len() >= self.shared.config.capacity;
        match self.master.get_mut(&u.ip) {
            Some(e) => {
                if e.updated > u.at && e.mac == u.mac {
                    return false;
                }
                *e = entry;
                self.stats.updated += 1;
                true
            }
            None if full => {
                self.stats.table_full += 1;
                false
            }
            None => {
                self.master.insert(u.ip, entry);
                self.stats.inserted += 1;
                true
            }
        }
    }

    /// Remove entries not confirmed within the timeout; publish if any went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.shared.config.timeout;
        let before = self.master.len();
        self.master.retain(|_, e| now.since(e.updated) < timeout);
        let gone = before - self.master.len();
        if gone > 0 {
            self.stats.expired += gone as u64;
            self.publish();
        }
        gone
    }

    /// Add or replace an entry directly (static entries, tests).
    pub fn insert(&mut self, ip: Ipv4Addr, mac: EthernetAddress, now: Instant) {
        if self.apply(ArpUpdate { ip, mac, at: now }) {
            self.publish();
        }
    }

    fn publish(&mut self) {
        let snap = ArpSnapshot {
            entries: self.master.clone(),
        };
        self.shared.snapshot.store(Arc::new(snap));
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.stats.published += 1;
    }

    pub fn len(&self) -> usize {
        self.master.len()
    }
    pub fn is_empty(&self) -> bool {
        self.master.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(b: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, b])
    }
    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

    #[test]
    fn learned_on_one_core_is_seen_by_all_after_publish() {
        let shared = ArpShared::new(ArpConfig::default());
        let mut w = ArpWriter::new(shared.clone());
        let mut r0 = ArpReader::new(shared.clone());
        let mut r1 = ArpReader::new(shared.clone());
        assert_eq!(r1.learn(A, mac(1), Instant::ZERO), LearnResult::Queued);
        assert_eq!(r0.lookup(&A), None);
        assert_eq!(w.drain(), 1);
        assert!(r0.refresh());
        assert!(r1.refresh());
        assert!(!r0.refresh());
        assert_eq!(r0.lookup(&A), Some(mac(1)));
        assert_eq!(r1.lookup(&A), Some(mac(1)));
    }

    #[test]
    fn known_fresh_entries_are_not_resent_but_changes_are() {
        let shared = ArpShared::new(ArpConfig::default());
        let mut w = ArpWriter::new(shared.clone());
        let mut r = ArpReader::new(shared.clone());
        r.learn(A, mac(1), Instant::ZERO);
        w.drain();
        r.refresh();
        assert_eq!(
            r.learn(A, mac(1), Instant::from_secs(1)),
            LearnResult::Known
        );
        assert_eq!(
            r.learn(A, mac(2), Instant::from_secs(1)),
            LearnResult::Queued
        );
        assert_eq!(
            r.learn(A, mac(1), Instant::from_secs(31)),
            LearnResult::Queued
        );
    }

    #[test]
    fn the_last_lookup_is_remembered_only_for_its_snapshot() {
        let shared = ArpShared::new(ArpConfig {
            timeout: Duration::from_secs(10),
            ..Default::default()
        });
        let mut w = ArpWriter::new(shared.clone());
        let mut r = ArpReader::new(shared.clone());
        w.insert(A, mac(1), Instant::ZERO);
        r.refresh();
        assert_eq!(r.lookup(&A), Some(mac(1)));
        assert_eq!(r.lookup(&A), Some(mac(1)));
        assert_eq!(r.lookup(&B), None);
        // The neighbour moves; the next snapshot is believed, not the memo.
        w.insert(A, mac(2), Instant::from_secs(1));
        assert!(r.refresh());
        assert_eq!(r.lookup(&A), Some(mac(2)));
        // And it ages out.
        w.insert(B, mac(3), Instant::from_secs(100));
        w.expire(Instant::from_secs(100));
        r.refresh();
        assert_eq!(r.lookup(&A), None);
        assert_eq!(r.lookup(&B), Some(mac(3)));
    }

    #[test]
    fn entries_age_out() {
        let cfg = ArpConfig {
            timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let shared = ArpShared::new(cfg);
        let mut w = ArpWriter::new(shared.clone());
        let mut r = ArpReader::new(shared.clone());
        w.insert(A, mac(1), Instant::from_secs(0));
        w.insert(B, mac(2), Instant::from_secs(5));
        assert_eq!(w.expire(Instant::from_secs(9)), 0);
        assert_eq!(w.expire(Instant::from_secs(12)), 1);
        r.refresh();
        assert_eq!(r.lookup(&A), None);
        assert_eq!(r.lookup(&B), Some(mac(2)));
        assert_eq!(w.stats.expired, 1);
    }

    #[test]
    fn full_table_and_full_queue_are_counted_not_fatal() {
        let cfg = ArpConfig {
            capacity: 1,
            queue_len: 2,
            ..Default::default()
        };
        let shared = ArpShared::new(cfg);
        let mut w = ArpWriter::new(shared.clone());
        let r = ArpReader::new(shared.clone());
        assert_eq!(r.learn(A, mac(1), Instant::ZERO), LearnResult::Queued);
        assert_eq!(r.learn(B, mac(2), Instant::ZERO), LearnResult::Queued);
        assert_eq!(
            r.learn(Ipv4Addr::new(198, 18, 0, 9), mac(3), Instant::ZERO),
            LearnResult::QueueFull
        );
        w.drain();
        assert_eq!(w.len(), 1);
        assert_eq!(w.stats.table_full, 1);
    }

    #[test]
    fn readers_on_other_threads_see_updates() {
        let shared = ArpShared::new(ArpConfig::default());
        let mut w = ArpWriter::new(shared.clone());
        let s2 = shared.clone();
        let t = std::thread::spawn(move || {
            let mut r = ArpReader::new(s2);
            for _ in 0..1_000_000 {
                r.refresh();
                if r.lookup(&A).is_some() {
                    return true;
                }
                std::thread::yield_now();
            }
            false
        });
        w.insert(A, mac(7), Instant::ZERO);
        assert!(t.join().unwrap());
    }
}
