//! A fast keyed hash for the per-core tables on the packet path (the ARP
//! snapshot, the TCP connection index, applications' connection maps).
//!
//! std's SipHash costs about 100 instructions for a 4-tuple; this is a few.
//! Keys that a remote host chooses (its address and port) go through a
//! per-process random seed and the splitmix64 finaliser (a bijection), so
//! which keys share a bucket depends on the seed: colliding keys cannot be
//! computed from outside. Tables are bounded anyway.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        // RandomState is seeded from the OS once per process.
        std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
    })
}

#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Builds [`FlowHasher`]s with the process's seed.
#[derive(Clone, Copy, Debug)]
pub struct FlowHash {
    seed: u64,
}

impl Default for FlowHash {
    fn default() -> Self {
        FlowHash {
            seed: process_seed(),
        }
    }
}

impl BuildHasher for FlowHash {
    type Hasher = FlowHasher;
    #[inline]
    fn build_hasher(&self) -> FlowHasher {
        FlowHasher(self.seed)
    }
}

/// Folds what it is fed into one word, mixed at the end.
#[derive(Clone, Copy, Debug)]
pub struct FlowHasher(u64);

impl FlowHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        self.0 = mix(self.0 ^ v);
    }
}

impl Hasher for FlowHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// A `HashMap` with [`FlowHash`].
pub type FlowMap<K, V> = std::collections::HashMap<K, V, FlowHash>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn distinct_keys_spread_and_equal_keys_agree() {
        let b = FlowHash::default();
        let key = |i: u32| SocketAddrV4::new(Ipv4Addr::from(0xc612_0000 | (i >> 16)), i as u16);
        assert_eq!(b.hash_one(key(7)), b.hash_one(key(7)));
        // 64k keys that differ only in the port: no full collisions, and the
        // low 12 bits (a 4096-bucket table) are all used.
        let hashes: HashSet<u64> = (0..65536).map(|i| b.hash_one(key(i))).collect();
        assert_eq!(hashes.len(), 65536);
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
        assert_eq!(buckets.len(), 4096);
        // Another seed, other buckets.
        let other = FlowHash { seed: b.seed ^ 1 };
        let same = (0..1000)
            .filter(|&i| b.hash_one(key(i)) & 0xfff == other.hash_one(key(i)) & 0xfff)
            .count();
        assert!(
            same < 20,
            "{same} of 1000 keys in the same bucket under another seed"
        );
        let mut m: FlowMap<SocketAddrV4, u32> = FlowMap::default();
        m.insert(key(1), 1);
        assert_eq!(m.get(&key(1)), Some(&1));
    }
}
