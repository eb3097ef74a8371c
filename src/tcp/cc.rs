//! Congestion control: a trait, so that CUBIC and others can be added, and
//! NewReno (RFC 5681 slow start and congestion avoidance, RFC 6582 fast
//! recovery). The connection owns loss detection (duplicate ACKs, RTO,
//! recovery point); the controller owns cwnd and ssthresh.

/// A congestion controller for one connection. All sizes are bytes.
pub trait CongestionControl: Send {
    fn name(&self) -> &'static str;
    /// The congestion window.
    fn window(&self) -> usize;
    fn ssthresh(&self) -> usize;
    /// New data was acknowledged outside recovery.
    fn on_ack(&mut self, acked: usize, mss: usize);
    /// Third duplicate ACK: entering fast recovery with `flight` bytes
    /// outstanding (RFC 5681 3.2 steps 2 and 3).
    fn on_fast_retransmit(&mut self, flight: usize, mss: usize);
    /// A further duplicate ACK during recovery (step 4: inflate).
    fn on_dup_ack_in_recovery(&mut self, mss: usize);
    /// A partial ACK during recovery (RFC 6582 3.2 step 5: deflate by the
    /// amount acked, add back one MSS).
    fn on_partial_ack(&mut self, acked: usize, mss: usize);
    /// The recovery point was acknowledged (RFC 6582 step 5, full ACK).
    fn on_recovery_end(&mut self, flight: usize, mss: usize);
    /// The retransmission timer expired (RFC 5681 3.1, equation 4).
    fn on_rto(&mut self, flight: usize, mss: usize);
    /// After an idle period longer than the RTO (RFC 5681 4.1).
    fn on_idle_restart(&mut self, mss: usize) {
        let _ = mss;
    }
}

/// RFC 5681 section 3.1: the initial window.
pub fn initial_window(mss: usize) -> usize {
    if mss > 2190 {
        2 * mss
    } else if mss > 1095 {
        3 * mss
    } else {
        4 * mss
    }
}

/// NewReno.
#[derive(Debug, Clone)]
pub struct NewReno {
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acked in congestion avoidance, toward the next MSS of growth.
    acked_in_ca: usize,
}

impl NewReno {
    pub fn new(mss: usize) -> NewReno {
        NewReno {
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            acked_in_ca: 0,
        }
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "newreno"
    }
    fn window(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    fn on_ack(&mut self, acked: usize, mss: usize) {
        if self.cwnd < self.ssthresh {
            // Slow start: at most one MSS per ACK (RFC 5681 3.1, eq. 2).
            self.cwnd += acked.min(mss);
        } else {
            // Congestion avoidance: about one MSS per RTT (RFC 5681 3.1,
            // counting bytes acked as RFC 3465 does).
            self.acked_in_ca += acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd += mss;
            }
        }
    }
    fn on_fast_retransmit(&mut self, flight: usize, mss: usize) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh + 3 * mss;
        self.acked_in_ca = 0;
    }
    fn on_dup_ack_in_recovery(&mut self, mss: usize) {
        self.cwnd += mss;
    }
    fn on_partial_ack(&mut self, acked: usize, mss: usize) {
        self.cwnd = self.cwnd.saturating_sub(acked);
        if acked >= mss {
            self.cwnd += mss;
        }
        self.cwnd = self.cwnd.max(mss);
    }
    fn on_recovery_end(&mut self, flight: usize, mss: usize) {
        // RFC 6582 3.2 step 3, option 1.
        self.cwnd = self.ssthresh.min(flight.max(mss) + mss);
    }
    fn on_rto(&mut self, flight: usize, mss: usize) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.acked_in_ca = 0;
    }
    fn on_idle_restart(&mut self, mss: usize) {
        self.cwnd = self.cwnd.min(initial_window(mss));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance() {
        let mss = 1000;
        let mut cc = NewReno::new(mss);
        assert_eq!(cc.window(), 4000);
        cc.on_ack(1000, mss);
        cc.on_ack(5000, mss);
        assert_eq!(cc.window(), 6000);
        cc.on_rto(20000, mss);
        assert_eq!(cc.window(), 1000);
        assert_eq!(cc.ssthresh(), 10000);
        for _ in 0..9 {
            cc.on_ack(1000, mss);
        }
        assert_eq!(cc.window(), 10000);
        // Avoidance: one MSS after a window's worth of bytes.
        for _ in 0..9 {
            cc.on_ack(1000, mss);
        }
        assert_eq!(cc.window(), 10000);
        cc.on_ack(1000, mss);
        assert_eq!(cc.window(), 11000);
    }

    #[test]
    fn fast_recovery() {
        let mss = 1000;
        let mut cc = NewReno::new(mss);
        cc.on_fast_retransmit(20000, mss);
        assert_eq!(cc.ssthresh(), 10000);
        assert_eq!(cc.window(), 13000);
        cc.on_dup_ack_in_recovery(mss);
        assert_eq!(cc.window(), 14000);
        cc.on_partial_ack(3000, mss);
        assert_eq!(cc.window(), 12000);
        cc.on_recovery_end(8000, mss);
        assert_eq!(cc.window(), 9000);
    }
}
