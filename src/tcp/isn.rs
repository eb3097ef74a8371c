//! Initial sequence numbers (RFC 6528): ISN = M + F(4-tuple, secret), M a
//! clock ticking every 4 microseconds and F a hash (SipHash) of the secret
//! and the 4-tuple. The secret is drawn once per process (from the
//! randomly keyed `RandomState`) and shared by every core.

use crate::time::Instant;
use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddrV4;

#[derive(Clone, Copy, Debug)]
pub struct IsnGenerator {
    secret: [u64; 2],
}

impl Default for IsnGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl IsnGenerator {
    pub fn new() -> IsnGenerator {
        let r = RandomState::new();
        IsnGenerator {
            secret: [r.hash_one(1u8), r.hash_one(2u8)],
        }
    }

    /// A generator with a chosen secret: the same sequence numbers in every
    /// run, for seeded simulations and tests (never in production, where
    /// the secret must be unpredictable).
    pub fn with_secret(secret: [u64; 2]) -> IsnGenerator {
        IsnGenerator { secret }
    }

    pub fn isn(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let mut h = DefaultHasher::new();
        self.secret.hash(&mut h);
        local.hash(&mut h);
        remote.hash(&mut h);
        let f = h.finish() as u32;
        ((now.micros() / 4) as u32).wrapping_add(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn clock_driven_and_tuple_keyed() {
        let g = IsnGenerator::new();
        let l = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
        let r = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
        let r2 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40001);
        let a = g.isn(Instant::from_micros(0), l, r);
        let b = g.isn(Instant::from_micros(400), l, r);
        assert_eq!(b.wrapping_sub(a), 100);
        assert_ne!(g.isn(Instant::ZERO, l, r2), a);
        // Another process (secret) gives another number.
        assert_ne!(IsnGenerator::new().isn(Instant::ZERO, l, r), a);
    }
}
