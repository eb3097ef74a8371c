//! Flows, shared by the protocols and the per-core loop: the key that names
//! a connection or a connected UDP socket on a core, the [`FlowDirectory`]
//! where cores publish which of them owns a flow, and the core's
//! [`PortAllocator`] that TCP and UDP take their ephemeral ports from.
//!
//! The directory is a fixed-size, lock-free open-addressing table written
//! when a connection is made or freed (not per packet) and read only when
//! a frame reaches a core that does not own its flow.

mod ports;

pub use ports::PortAllocator;

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};

/// The local address is the interface's, so a local port and the remote
/// end name a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub local_port: u16,
    pub remote: SocketAddrV4,
}

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;
/// Slots probed before giving up.
const PROBES: usize = 64;

pub struct FlowDirectory {
    slots: Box<[AtomicU64]>,
    mask: usize,
}

fn hash(key: &FlowKey) -> u64 {
    // A 64-bit mix (splitmix64 finaliser) of ip, ports.
    let ip = u32::from(*key.remote.ip()) as u64;
    let mut x = (ip << 32) | (u64::from(key.remote.port()) << 16) | u64::from(key.local_port);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

/// The entry for `key` owned by `core`: 48 bits of hash (top bit set so it
/// is never EMPTY or TOMBSTONE) and the core.
fn entry(h: u64, core: usize) -> u64 {
    ((h | (1 << 63)) & !0xffff) | (core as u64 & 0xffff)
}

fn tag_matches(e: u64, h: u64) -> bool {
    e > TOMBSTONE && (e & !0xffff) == ((h | (1 << 63)) & !0xffff)
}

impl FlowDirectory {
    /// Room for about `capacity` flows (the table is twice that, rounded up
    /// to a power of two).
    pub fn new(capacity: usize) -> FlowDirectory {
        let n = (capacity.max(16) * 2).next_power_of_two();
        FlowDirectory {
            slots: (0..n).map(|_| AtomicU64::new(EMPTY)).collect(),
            mask: n - 1,
        }
    }

    /// Record that `core` owns `key`. False if the probe window is full.
    pub fn insert(&self, key: &FlowKey, core: usize) -> bool {
        let h = hash(key);
        let e = entry(h, core);
        for i in 0..PROBES {
            let slot = &self.slots[(h as usize).wrapping_add(i) & self.mask];
            let cur = slot.load(Ordering::Acquire);
            if (cur == EMPTY || cur == TOMBSTONE)
                && slot
                    .compare_exchange(cur, e, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return true;
            }
        }
        false
    }

    /// Forget `key` (owned by `core`).
    pub fn remove(&self, key: &FlowKey, core: usize) {
        let h = hash(key);
        let e = entry(h, core);
        for i in 0..PROBES {
            let slot = &self.slots[(h as usize).wrapping_add(i) & self.mask];
            let cur = slot.load(Ordering::Acquire);
            if cur == EMPTY {
                return;
            }
            if cur == e
                && slot
                    .compare_exchange(cur, TOMBSTONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return;
            }
        }
    }

    /// The core that owns `key`, if any.
    pub fn owner(&self, key: &FlowKey) -> Option<usize> {
        let h = hash(key);
        for i in 0..PROBES {
            let cur = self.slots[(h as usize).wrapping_add(i) & self.mask].load(Ordering::Acquire);
            if cur == EMPTY {
                return None;
            }
            if tag_matches(cur, h) {
                return Some((cur & 0xffff) as usize);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(i: u16) -> FlowKey {
        FlowKey {
            local_port: 80,
            remote: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 1000 + i),
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let d = FlowDirectory::new(1000);
        for i in 0..1000 {
            assert!(d.insert(&key(i), usize::from(i % 4)));
        }
        for i in 0..1000 {
            assert_eq!(d.owner(&key(i)), Some(usize::from(i % 4)));
        }
        for i in 0..500 {
            d.remove(&key(i), usize::from(i % 4));
        }
        for i in 0..500 {
            assert_eq!(d.owner(&key(i)), None);
        }
        assert_eq!(d.owner(&key(700)), Some(0));
        // Tombstones are reused.
        for i in 0..500 {
            assert!(d.insert(&key(i), 3));
        }
        assert_eq!(d.owner(&key(1)), Some(3));
    }
}
