//! Buffer autotuning: how large a connection's buffers should be for the
//! path it runs on, so that one connection can fill a long, fast pipe
//! without every connection being given a pipe's worth up front.
//!
//! Receive side, Linux's dynamic right-sizing (`tcp_rcv_space_adjust`,
//! after Fisk and Feng's DRS): once per round trip, measure what the
//! application consumed in that round trip; if it consumed more than in
//! the last one, the sender is being held by the window, and the receive
//! buffer grows to twice that (one round trip in flight, one for losses),
//! plus headroom for a sender that doubles its rate each round trip in
//! slow start. The round trip is the receiver's own estimate: a data
//! segment's timestamp echo returns our TSval of the ACK that opened the
//! window for it (Linux `tcp_rcv_rtt_measure_ts`), or, without
//! timestamps, the connection's smoothed RTT when it sends data too.
//!
//! Send side, Linux's `tcp_sndbuf_expand`: while the application is held
//! by a full send buffer, the buffer grows to two congestion windows (one
//! in flight, one queued for the next round trip).
//!
//! Both only grow, to the configured maximum and only when the core's
//! buffer budget could fill the growth (`buffer::budget_allows`).
//! Capacity is a limit, not memory: a large buffer costs nothing once
//! drained, so an idle connection that once ran fast holds no more memory
//! than one that never did.

use super::seq::Seq;

/// Segments in a sender's initial window (RFC 6928): the receive space a
/// measurement starts from, and the least a send buffer grows to.
pub const INITIAL_SEGMENTS: usize = 10;

/// Receive-space measurement of one connection (Linux `rcvq_space` and
/// `rcv_rtt_est`). All zero until the connection is established.
#[derive(Clone, Copy, Debug, Default)]
pub struct RcvSpace {
    /// Bytes the application consumed in the last measured round trip
    /// (at least the initial window's worth). 0: not started.
    space: u32,
    /// How far the application had read when this round trip began.
    seq: Seq,
    /// When this round trip began, in microseconds (wrapping).
    since_us: u32,
    /// The receiver's smoothed RTT estimate, in microseconds (0: none).
    rtt_us: u32,
    /// The timestamp echo last sampled: a sender echoes the same value in
    /// every segment of a flight, and only the first measures a round
    /// trip.
    last_tsecr: u32,
}

impl RcvSpace {
    pub fn started(&self) -> bool {
        self.space > 0
    }

    /// Start measuring from `read` (the first byte not yet consumed) with
    /// a space of `space` bytes (Linux `tcp_init_buffer_space`: what the
    /// sender's initial window carries).
    pub fn start(&mut self, read: Seq, now_us: u64, space: usize) {
        self.space = space.clamp(1, u32::MAX as usize) as u32;
        self.seq = read;
        self.since_us = now_us as u32;
    }

    /// A data segment echoed `tsecr` at `now_ms` on our timestamp clock:
    /// one round-trip sample per echoed value, smoothed with gain 1/8 as
    /// RFC 6298. A timestamp clock of milliseconds cannot tell less than
    /// one: such a sample counts as one (Linux did the same with jiffies).
    pub fn sample_ts(&mut self, now_ms: u32, tsecr: u32) {
        if tsecr == 0 || tsecr == self.last_tsecr {
            return;
        }
        self.last_tsecr = tsecr;
        let delta = now_ms.wrapping_sub(tsecr) as i32;
        if delta < 0 {
            return;
        }
        let sample = (delta as u32).max(1).saturating_mul(1000);
        self.rtt_us = if self.rtt_us == 0 {
            sample
        } else {
            let (old, new) = (self.rtt_us as i64, sample as i64);
            (old + (new - old) / 8).max(1) as u32
        };
    }

    /// The receiver's RTT estimate, in microseconds (0: none yet).
    pub fn rtt_us(&self) -> u32 {
        self.rtt_us
    }

    /// Called as data arrives, with `read` the first byte the application
    /// has not consumed. Once a round trip (`rtt_us`) has passed since the
    /// measurement began, returns the receive window this connection
    /// wants if the application consumed more than in the round trip
    /// before (None otherwise, or within the round trip), and starts the
    /// next measurement. `mss` is the segment size we advertised.
    pub fn adjust(&mut self, read: Seq, now_us: u64, rtt_us: u32, mss: usize) -> Option<usize> {
        if !self.started() || rtt_us == 0 {
            return None;
        }
        if (now_us as u32).wrapping_sub(self.since_us) < rtt_us {
            return None;
        }
        let copied = read.since(self.seq);
        let space = self.space as usize;
        self.seq = read;
        self.since_us = now_us as u32;
        if copied <= space {
            return None;
        }
        self.space = copied.min(u32::MAX as usize) as u32;
        // Linux's arithmetic: twice what was consumed (one round trip in
        // flight, and room to recover a loss), sixteen segments of
        // cushion, and, for a sender still speeding up, twice the window
        // again scaled by how much faster this round trip was than the
        // last (the ACK we send now opens the window for the round trip
        // after next).
        let window = 2 * copied + 16 * mss;
        let faster = (window as u64 * (copied - space) as u64 / space as u64) as usize;
        Some(window.saturating_add(2 * faster))
    }
}

/// The send buffer a congestion window of `cwnd` bytes wants (Linux
/// `tcp_sndbuf_expand`): two windows, one in flight and one queued for the
/// next round trip, and never less than two initial windows.
pub fn send_space(cwnd: usize, mss: usize) -> usize {
    2 * cwnd.max(INITIAL_SEGMENTS * mss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_is_measured_once_per_echoed_timestamp() {
        let mut r = RcvSpace::default();
        r.sample_ts(1000, 980);
        assert_eq!(r.rtt_us(), 20_000);
        // The rest of the flight echoes the same value, later: no sample.
        r.sample_ts(1005, 980);
        assert_eq!(r.rtt_us(), 20_000);
        // A new echo, 28 ms: an eighth of the difference.
        r.sample_ts(1030, 1002);
        assert_eq!(r.rtt_us(), 21_000);
        // Less than the clock's millisecond counts as one; a zero echo
        // (no timestamp sent) and one from the future are no sample.
        let mut lan = RcvSpace::default();
        lan.sample_ts(500, 0);
        lan.sample_ts(500, 501);
        assert_eq!(lan.rtt_us(), 0);
        lan.sample_ts(500, 500);
        assert_eq!(lan.rtt_us(), 1000);
    }

    #[test]
    fn the_window_follows_what_the_application_consumes() {
        let mut r = RcvSpace::default();
        let mss = 1000;
        assert_eq!(r.adjust(Seq(0), 0, 20_000, mss), None, "not started");
        r.start(Seq(0), 0, 10 * mss);
        // Within the round trip: nothing yet.
        assert_eq!(r.adjust(Seq(50_000), 19_999, 20_000, mss), None);
        // 40 KB in a round trip after a space of 10 KB: four times faster.
        // 2 * 40 000 + 16 000 = 96 000, plus 2 * 96 000 * 3 = 576 000.
        assert_eq!(r.adjust(Seq(40_000), 20_000, 20_000, mss), Some(672_000));
        // The same 40 KB in the next round trip: no growth wanted.
        assert_eq!(r.adjust(Seq(80_000), 40_000, 20_000, mss), None);
        // Less: none either, and the space stays at its best.
        assert_eq!(r.adjust(Seq(90_000), 60_000, 20_000, mss), None);
        // A little more than 40 KB: twice that and the cushion, plus a
        // little for the speed-up.
        let w = r.adjust(Seq(134_000), 80_000, 20_000, mss).unwrap();
        assert_eq!(w, 2 * 44_000 + 16_000 + 2 * (104_000 * 4_000 / 40_000));
    }

    #[test]
    fn the_send_space_is_two_windows() {
        assert_eq!(send_space(1_000_000, 1460), 2_000_000);
        assert_eq!(send_space(1460, 1460), 2 * 10 * 1460);
    }
}
