//! ICMP helpers: the error rate limiter and incremental checksum update.
//! Echo and error generation live in the per-core context (`shard::icmp`),
//! which owns the buffers.

use crate::time::{Duration, Instant};

/// A token bucket limiting ICMP errors per core (RFC 1812 4.3.2.8, RFC 1122
/// 3.2.2: a host should limit the rate of ICMP error messages).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    tokens: u64,
    burst: u64,
    per_token: Duration,
    last: Instant,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: u64, burst: u64) -> Self {
        RateLimiter {
            tokens: burst,
            burst,
            per_token: Duration::from_micros(1_000_000 / rate.max(1)),
            last: Instant::ZERO,
        }
    }

    /// Take one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.since(self.last).micros();
        let earned = elapsed / self.per_token.micros().max(1);
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.burst);
            self.last = now;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

pub use crate::wire::checksum::adjust as checksum_adjust;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_bursts_then_refills() {
        let mut r = RateLimiter::new(10, 3);
        let t = Instant::from_secs(1);
        assert!(r.allow(t) && r.allow(t) && r.allow(t));
        assert!(!r.allow(t));
        assert!(!r.allow(t.plus(Duration::from_millis(50))));
        assert!(r.allow(t.plus(Duration::from_millis(100))));
        assert!(!r.allow(t.plus(Duration::from_millis(100))));
        let later = t.plus(Duration::from_secs(10));
        assert!(r.allow(later) && r.allow(later) && r.allow(later));
        assert!(!r.allow(later));
    }

    #[test]
    fn incremental_checksum_matches_full_recompute() {
        // An ICMP echo request header plus data; turning it into a reply
        // changes the first word from 0x0800 to 0x0000.
        fn full(words: &[u16]) -> u16 {
            let mut s: u32 = words.iter().map(|&w| u32::from(w)).sum();
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        }
        let mut words = [0x0800u16, 0, 0x1234, 0x0001, 0xdead, 0xbeef, 0xffff];
        words[1] = 0;
        let c = full(&words);
        let adjusted = checksum_adjust(c, 0x0800, 0x0000);
        words[0] = 0;
        assert_eq!(adjusted, full(&words));
    }
}
