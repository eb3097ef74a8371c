//! The retransmission timeout (RFC 6298): SRTT and RTTVAR from samples,
//! Karn's rule (no samples from retransmitted segments, enforced by the
//! caller), exponential backoff, bounded.

use crate::time::Duration;

#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<u64>,
    rttvar: u64,
    rto: u64,
    backoff: u32,
    /// The RTO came from the core's RTT cache (`start_from`).
    cached: bool,
    min_rto: u64,
    max_rto: u64,
}

/// Clock granularity G, in microseconds.
const GRANULARITY: u64 = 1000;

/// RFC 6298 5.7: the RTO after a handshake whose SYN timed out, in
/// microseconds.
const SYN_TIMEOUT_RTO: u64 = 3_000_000;

impl RttEstimator {
    /// `initial`: the RTO before any sample (RFC 6298 2.1: one second).
    pub fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: 0,
            rto: initial.micros(),
            backoff: 0,
            cached: false,
            min_rto: min.micros(),
            max_rto: max.micros(),
        }
    }

    /// Start from an estimate this host measured to the same peer before
    /// (RFC 9040 5, `rtt_cache`): the RTO is SRTT + max(G, 4 * RTTVAR),
    /// clamped, as RFC 6298 2.3 computes it, in place of 2.1's initial
    /// one, which holds only until a measurement has been made. SRTT stays
    /// unset: the connection's own first sample is taken as RFC 6298 2.2
    /// takes a first one (the cached values may be stale; they only time
    /// the segments sent before it).
    pub fn start_from(&mut self, srtt: Duration, rttvar: Duration) {
        if self.srtt.is_some() {
            return;
        }
        let rto = srtt.micros() + GRANULARITY.max(4 * rttvar.micros());
        self.rto = rto.clamp(self.min_rto, self.max_rto);
        self.cached = true;
    }

    /// A round-trip sample (RFC 6298 2.2 and 2.3). Clears the backoff.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.micros();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // beta = 1/4, alpha = 1/8.
                let delta = srtt.abs_diff(r);
                self.rttvar = (3 * self.rttvar + delta) / 4;
                self.srtt = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto = (srtt + GRANULARITY.max(4 * self.rttvar)).clamp(self.min_rto, self.max_rto);
        self.backoff = 0;
    }

    /// The handshake ended (after its ACK's sample, if any). RFC 6298 5.7:
    /// if the SYN (or SYN-ACK) timed out and the handshake gave no sample
    /// (Karn's rule, without timestamps), data transmission begins with an
    /// RTO of 3 s (Linux's TCP_TIMEOUT_FALLBACK), not the 1 s of 2.1 nor
    /// the backed-off one. Nothing without a timeout, once a sample was
    /// taken (it cleared the backoff), nor after a start from the RTT
    /// cache, which stays backed off (Linux too takes 3 s only when neither
    /// the handshake nor its cache gave a round trip).
    pub fn handshake_done(&mut self) {
        if self.backoff == 0 || self.srtt.is_some() || self.cached {
            return;
        }
        self.rto = SYN_TIMEOUT_RTO.clamp(self.min_rto, self.max_rto);
        self.backoff = 0;
    }

    /// The timer expired: double the RTO (RFC 6298 5.5).
    pub fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(16);
    }

    /// How many times in a row the timer has expired.
    pub fn backoffs(&self) -> u32 {
        self.backoff
    }

    pub fn rto(&self) -> Duration {
        let rto = self.rto.saturating_mul(1 << self.backoff.min(16));
        Duration::from_micros(rto.min(self.max_rto))
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }

    /// RTTVAR (zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6298's initial RTO of 1 s, Linux's 200 ms floor, a 60 s cap.
    fn estimator() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn rfc6298() {
        let mut e = estimator();
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100));
        // SRTT 100 ms, RTTVAR 50 ms: RTO = 100 + 200 = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.back_off();
        e.back_off();
        assert_eq!(e.rto(), Duration::from_millis(1200));
        e.sample(Duration::from_millis(100));
        // RTTVAR = 3/4 * 50 = 37.5 ms; RTO = 100 + 150 = 250 ms.
        assert_eq!(e.rto(), Duration::from_micros(250_000));
        // The floor.
        for _ in 0..50 {
            e.sample(Duration::from_micros(10));
        }
        assert_eq!(e.rto(), Duration::from_millis(200));
        for _ in 0..30 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
    }

    #[test]
    fn a_syn_timeout_without_a_sample_starts_the_data_at_three_seconds() {
        // One timeout (2 s backed off) or three (8 s): 3 s, no backoff.
        for timeouts in [1, 3] {
            let mut e = estimator();
            for _ in 0..timeouts {
                e.back_off();
            }
            e.handshake_done();
            assert_eq!((e.rto(), e.backoffs()), (Duration::from_secs(3), 0));
            // The first sample sets it as RFC 6298 2.2 does.
            e.sample(Duration::from_millis(100));
            assert_eq!(e.rto(), Duration::from_millis(300));
        }
        // A sample from the handshake (timestamps) stands.
        let mut e = estimator();
        e.back_off();
        e.sample(Duration::from_millis(100));
        e.handshake_done();
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn a_cached_start_then_rfc6298() {
        let mut e = estimator();
        // 300 ms + 4 * 50 ms.
        e.start_from(Duration::from_millis(300), Duration::from_millis(50));
        assert_eq!((e.rto(), e.srtt()), (Duration::from_millis(500), None));
        // Backed off from there.
        e.back_off();
        assert_eq!(e.rto(), Duration::from_secs(1));
        // The first sample of its own: RFC 6298 2.2, SRTT = R, RTTVAR = R/2.
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Duration::from_millis(50));
        assert_eq!(e.rto(), Duration::from_millis(300));
        // Then 2.3, as without the cache.
        let mut plain = estimator();
        plain.sample(Duration::from_millis(100));
        for ms in [120, 90, 300] {
            e.sample(Duration::from_millis(ms));
            plain.sample(Duration::from_millis(ms));
            assert_eq!(
                (e.srtt(), e.rttvar(), e.rto()),
                (plain.srtt(), plain.rttvar(), plain.rto())
            );
        }
        // Clamped: a 20 ms path's RTO is the floor, a slow one's the cap.
        let mut e = estimator();
        e.start_from(Duration::from_millis(20), Duration::from_millis(5));
        assert_eq!(e.rto(), Duration::from_millis(200));
        let mut e = estimator();
        e.start_from(Duration::from_secs(50), Duration::from_secs(10));
        assert_eq!(e.rto(), Duration::from_secs(60));
        // A measurement of its own comes first.
        let mut e = estimator();
        e.sample(Duration::from_millis(100));
        e.start_from(Duration::from_millis(20), Duration::from_millis(5));
        assert_eq!(e.rto(), Duration::from_millis(300));
    }
}
