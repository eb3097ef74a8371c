//! Congestion control: [`Cc`], an enum with one variant per algorithm,
//! held by value in each connection, so that opening one allocates nothing
//! for it (smoltcp's `AnyController` is the model). Each algorithm is a
//! struct implementing [`CongestionControl`]; `Cc` dispatches with a match.
//! Today there is NewReno (RFC 5681 slow start and congestion avoidance,
//! RFC 6582 fast recovery); CUBIC (RFC 9438) is added as a struct, a `Cc`
//! variant and a [`CcAlgorithm`] value. The connection owns loss detection
//! (duplicate ACKs, RTO, recovery point); the controller owns cwnd and
//! ssthresh.

use super::CcAlgorithm;

/// A congestion controller for one connection. All sizes are bytes.
pub trait CongestionControl {
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

/// The congestion controller a connection holds: one variant per
/// algorithm, each stored inline.
#[derive(Debug, Clone)]
pub enum Cc {
    NewReno(NewReno),
}

impl Cc {
    /// A controller of the configured algorithm for a connection whose
    /// segments carry `mss` bytes.
    pub fn new(algorithm: CcAlgorithm, mss: usize) -> Cc {
        match algorithm {
            CcAlgorithm::NewReno => Cc::NewReno(NewReno::new(mss)),
        }
    }

    fn inner(&self) -> &dyn CongestionControl {
        match self {
            Cc::NewReno(c) => c,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn CongestionControl {
        match self {
            Cc::NewReno(c) => c,
        }
    }

    pub fn name(&self) -> &'static str {
        self.inner().name()
    }
    /// The congestion window.
    pub fn window(&self) -> usize {
        self.inner().window()
    }
    pub fn ssthresh(&self) -> usize {
        self.inner().ssthresh()
    }
    /// New data was acknowledged outside recovery.
    pub fn on_ack(&mut self, acked: usize, mss: usize) {
        self.inner_mut().on_ack(acked, mss)
    }
    /// Third duplicate ACK: entering fast recovery with `flight` bytes
    /// outstanding.
    pub fn on_fast_retransmit(&mut self, flight: usize, mss: usize) {
        self.inner_mut().on_fast_retransmit(flight, mss)
    }
    /// A further duplicate ACK during recovery.
    pub fn on_dup_ack_in_recovery(&mut self, mss: usize) {
        self.inner_mut().on_dup_ack_in_recovery(mss)
    }
    /// A partial ACK during recovery.
    pub fn on_partial_ack(&mut self, acked: usize, mss: usize) {
        self.inner_mut().on_partial_ack(acked, mss)
    }
    /// The recovery point was acknowledged.
    pub fn on_recovery_end(&mut self, flight: usize, mss: usize) {
        self.inner_mut().on_recovery_end(flight, mss)
    }
    /// The retransmission timer expired.
    pub fn on_rto(&mut self, flight: usize, mss: usize) {
        self.inner_mut().on_rto(flight, mss)
    }
    /// After an idle period longer than the RTO.
    pub fn on_idle_restart(&mut self, mss: usize) {
        self.inner_mut().on_idle_restart(mss)
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

    #[test]
    fn enum_dispatches_to_the_configured_algorithm() {
        let mss = 1000;
        let mut cc = Cc::new(CcAlgorithm::NewReno, mss);
        let mut reno = NewReno::new(mss);
        assert_eq!(cc.name(), "newreno");
        // The same events through the enum and on the bare algorithm.
        cc.on_ack(1000, mss);
        reno.on_ack(1000, mss);
        cc.on_fast_retransmit(20000, mss);
        reno.on_fast_retransmit(20000, mss);
        cc.on_dup_ack_in_recovery(mss);
        reno.on_dup_ack_in_recovery(mss);
        cc.on_partial_ack(3000, mss);
        reno.on_partial_ack(3000, mss);
        cc.on_recovery_end(8000, mss);
        reno.on_recovery_end(8000, mss);
        cc.on_rto(6000, mss);
        reno.on_rto(6000, mss);
        cc.on_idle_restart(mss);
        reno.on_idle_restart(mss);
        let Cc::NewReno(inner) = &cc;
        assert_eq!(inner, &reno);
        assert_eq!(cc.window(), reno.window());
        assert_eq!(cc.ssthresh(), 3000);
        // Held inline: the controller is its state, no pointer to a heap
        // object.
        assert_eq!(std::mem::size_of::<Cc>(), std::mem::size_of::<NewReno>());
    }
}
