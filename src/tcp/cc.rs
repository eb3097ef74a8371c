//! Congestion control: [`Cc`], an enum with one variant per algorithm,
//! held by value in each connection, so that opening one allocates nothing
//! for it (smoltcp's `AnyController` is the model). Each algorithm is a
//! struct implementing [`CongestionControl`]; `Cc` dispatches with a match.
//!
//! Two algorithms, chosen per connection ([`CcAlgorithm`], `--tcp-cc`):
//! - [`Cubic`] (RFC 9438), the default, as in Linux;
//! - [`NewReno`] (RFC 5681 slow start and congestion avoidance, RFC 6582
//!   fast recovery).
//!
//! Both start from the RFC 6928 initial window ([`initial_window`]), count
//! bytes as RFC 3465 does (L = 2 SMSS per ACK in slow start, 1 SMSS in the
//! slow start after a timeout), leave their initial slow start by HyStart++
//! (RFC 9406) when the RTT rises or, as Linux's CUBIC does, when an ACK
//! train shows the window already fills half the path, grow only while
//! the window is what limits the sender (RFC 7661; RFC 9438 5.8), and
//! restart from the initial window after an idle period longer than the
//! RTO (RFC 5681 4.1).
//!
//! The connection owns loss detection (duplicate ACKs, RTO, recovery
//! point); the controller owns cwnd and ssthresh. Every size is in bytes.
//! Invariant: `window() >= mss` once any event has been applied.

use super::CcAlgorithm;
use crate::time::{Duration, Instant};

/// What an acknowledgment of new data tells the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub now: Instant,
    /// Bytes newly acknowledged (how far SND.UNA moved).
    pub acked: usize,
    /// Bytes still in flight after it (SND.MAX - SND.UNA), before anything
    /// new is sent.
    pub flight: usize,
    /// The round-trip sample this ACK gave (timestamps, or the timed
    /// segment under Karn's rule), if any.
    pub rtt: Option<Duration>,
    /// The smoothed round-trip time, once measured.
    pub srtt: Option<Duration>,
    pub mss: usize,
    /// How long the ACK may have waited in this host before it was read:
    /// the time since the receive ring was last seen empty, when the
    /// burst that carried it was taken (zero: read as it came). `rtt`
    /// runs to when it was read, so the ACK's round trip lies between
    /// `rtt - rx_wait` and `rtt`.
    pub rx_wait: Duration,
}

/// A congestion controller for one connection. All sizes are bytes.
pub trait CongestionControl {
    fn name(&self) -> &'static str;
    /// The congestion window.
    fn window(&self) -> usize;
    fn ssthresh(&self) -> usize;
    /// New data was acknowledged outside recovery.
    fn on_ack(&mut self, ack: &Ack);
    /// Third duplicate ACK: entering fast recovery with `flight` bytes
    /// outstanding (RFC 5681 3.2 steps 2 and 3).
    fn on_fast_retransmit(&mut self, flight: usize, mss: usize);
    /// A further duplicate ACK during recovery (step 4: inflate).
    fn on_dup_ack_in_recovery(&mut self, mss: usize);
    /// A partial ACK during recovery (RFC 6582 3.2 step 5: deflate by the
    /// amount acked, add back one MSS).
    fn on_partial_ack(&mut self, acked: usize, mss: usize);
    /// The recovery point was acknowledged (RFC 6582 step 5, full ACK),
    /// leaving `flight` bytes outstanding.
    fn on_recovery_end(&mut self, now: Instant, flight: usize, mss: usize);
    /// The retransmission timer expired (RFC 5681 3.1, equation 4).
    fn on_rto(&mut self, flight: usize, mss: usize);
    /// An ECN-Echo (RFC 3168 6.1.2) with `flight` bytes outstanding: the
    /// reduction of a loss, without fast recovery's inflation (nothing was
    /// lost, no duplicate ACKs follow); once per window, the connection
    /// sees to that.
    fn on_ecn(&mut self, flight: usize, mss: usize);
    /// New data goes out with nothing in flight. The controller knows
    /// since when the flight was empty (the ACK that emptied it): after
    /// longer than `rto` it restarts from the initial window (RFC 5681
    /// 4.1); CUBIC also leaves the idle time out of its curve (RFC 9438
    /// 5.8).
    fn on_send_after_idle(&mut self, now: Instant, rto: Duration, mss: usize);
    /// The last reduction (fast recovery or a timeout) was spurious: no
    /// segment was lost (RFC 3708 D-SACKs, RFC 3522 Eifel). Return to the
    /// `cwnd` and `ssthresh` held before it (RFC 4015 3.2), or keep what
    /// grew since if that is more.
    fn undo(&mut self, cwnd: usize, ssthresh: usize);
}

/// The congestion controller a connection holds: one variant per
/// algorithm, each stored inline.
#[derive(Debug, Clone)]
pub enum Cc {
    NewReno(NewReno),
    Cubic(Cubic),
}

impl Cc {
    /// A controller of the configured algorithm for a connection whose
    /// segments carry `mss` bytes.
    pub fn new(algorithm: CcAlgorithm, mss: usize) -> Cc {
        match algorithm {
            CcAlgorithm::NewReno => Cc::NewReno(NewReno::new(mss)),
            CcAlgorithm::Cubic => Cc::Cubic(Cubic::new(mss)),
        }
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> CcAlgorithm {
        match self {
            Cc::NewReno(_) => CcAlgorithm::NewReno,
            Cc::Cubic(_) => CcAlgorithm::Cubic,
        }
    }

    /// Change the algorithm of a running connection: the new controller
    /// takes over this one's cwnd and ssthresh (as Linux's
    /// `tcp_set_congestion_control`, which keeps both), so switching
    /// neither bursts nor stalls. Before any data was sent that is the
    /// initial window, as if the connection had started with it.
    pub fn switch_to(&mut self, algorithm: CcAlgorithm, mss: usize) {
        if algorithm == self.algorithm() {
            return;
        }
        let (cwnd, ssthresh) = (self.window(), self.ssthresh());
        *self = match algorithm {
            CcAlgorithm::NewReno => Cc::NewReno(NewReno::resume(cwnd, ssthresh, mss)),
            CcAlgorithm::Cubic => Cc::Cubic(Cubic::resume(cwnd, ssthresh, mss)),
        };
    }

    fn inner(&self) -> &dyn CongestionControl {
        match self {
            Cc::NewReno(c) => c,
            Cc::Cubic(c) => c,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn CongestionControl {
        match self {
            Cc::NewReno(c) => c,
            Cc::Cubic(c) => c,
        }
    }

    pub fn name(&self) -> &'static str {
        self.inner().name()
    }
    /// The congestion window. The per-segment calls (this, `on_ack` and
    /// `on_send_after_idle`) match on the variant instead of calling through
    /// `inner`'s vtable: a direct call, or the getter inlined (make
    /// pathcost).
    #[inline]
    pub fn window(&self) -> usize {
        match self {
            Cc::NewReno(c) => c.window(),
            Cc::Cubic(c) => c.window(),
        }
    }
    pub fn ssthresh(&self) -> usize {
        self.inner().ssthresh()
    }
    /// New data was acknowledged outside recovery.
    #[inline]
    pub fn on_ack(&mut self, ack: &Ack) {
        match self {
            Cc::NewReno(c) => c.on_ack(ack),
            Cc::Cubic(c) => c.on_ack(ack),
        }
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
    pub fn on_recovery_end(&mut self, now: Instant, flight: usize, mss: usize) {
        self.inner_mut().on_recovery_end(now, flight, mss)
    }
    /// The retransmission timer expired.
    pub fn on_rto(&mut self, flight: usize, mss: usize) {
        self.inner_mut().on_rto(flight, mss)
    }
    /// An ECN-Echo: congestion without a loss.
    pub fn on_ecn(&mut self, flight: usize, mss: usize) {
        self.inner_mut().on_ecn(flight, mss)
    }
    /// New data goes out with nothing in flight.
    #[inline]
    pub fn on_send_after_idle(&mut self, now: Instant, rto: Duration, mss: usize) {
        match self {
            Cc::NewReno(c) => c.on_send_after_idle(now, rto, mss),
            Cc::Cubic(c) => c.on_send_after_idle(now, rto, mss),
        }
    }
    /// The last reduction was spurious: back to `cwnd` and `ssthresh`.
    pub fn undo(&mut self, cwnd: usize, ssthresh: usize) {
        self.inner_mut().undo(cwnd, ssthresh)
    }
}

/// RFC 6928 2: the initial window, min(10*MSS, max(2*MSS, 14600)).
pub fn initial_window(mss: usize) -> usize {
    (10 * mss).min((2 * mss).max(14600))
}

/// RFC 3465 2.2: the most one ACK may grow cwnd by in slow start, in MSS.
const ABC_LIMIT: usize = 2;

/// RFC 9406 4.2: while HyStart++ runs, the most one ACK may grow cwnd by,
/// in MSS, for a sender that does not pace (L = 8; a paced one would take
/// no limit). A receiver that reads late acknowledges many segments at
/// once (a Linux sink sharing its CPU with a busy-polling lcore ACKs 10-15
/// full segments at a time): with RFC 3465's L = 2 each round trip then
/// grows the window by a fraction of a doubling where Linux's (no limit)
/// doubles it.
const HYSTART_L: usize = 8;

/// RFC 7661 (and RFC 9438 5.8 for CUBIC): grow the window only while it is
/// what limits the sender: at least half of it was in flight when this
/// ACK came (Linux `tcp_is_cwnd_limited` asks the same in slow start). An
/// application that sends little, or a peer's window that holds the flight
/// down, would otherwise let cwnd grow without ever being tested.
fn cwnd_limited(ack: &Ack, cwnd: usize) -> bool {
    2 * (ack.flight + ack.acked) >= cwnd
}

// ---- HyStart++ (RFC 9406) ---------------------------------------------

/// RFC 9406 4.3 constants (RTTs in microseconds).
const MIN_RTT_THRESH: u32 = 4_000;
const MAX_RTT_THRESH: u32 = 16_000;
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u8 = 8;
const CSS_GROWTH_DIVISOR: usize = 4;
const CSS_ROUNDS: u8 = 5;
/// The ACK-train test (Linux's `bictcp` HyStart, HYSTART_ACK_TRAIN): ACKs
/// at most this far apart (us) are one train...
const ACK_TRAIN_GAP: u32 = 2_000;
/// ...and one that has lasted more than half of (the minimum RTT + this
/// allowance for a delayed ACK, us) since the round began means the window
/// already takes half a round trip to cross the bottleneck: slow start
/// ends there, before the window's next doubling overfills the queue.
const ACK_TRAIN_ACK_DELAY: u32 = 1_000;
/// Below this many segments of window HyStart++ does not watch the round
/// (Linux's hystart_low_window, which gates its delay and train tests
/// alike): a window that small fills no queue worth a test, and an
/// application-limited connection that never leaves it (an echo, a
/// request and its response) skips the work on every ACK.
const HYSTART_LOW_WINDOW: usize = 16;
/// No sample yet this round ("infinity" in RFC 9406).
const NO_RTT: u32 = u32::MAX;
/// An RTT sample read after waiting longer than this (us) in the receive
/// ring (a core that lost its CPU, or fell behind) says too little to
/// count towards a round's delay test: RFC 9406's samples are network
/// round trips, and such a one is ours up to its `rx_wait`.
const MAX_RX_WAIT: u32 = MIN_RTT_THRESH / 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HyPhase {
    /// Standard slow start, watching each round's minimum RTT.
    SlowStart,
    /// Conservative slow start: the RTT rose to `baseline` (us); `rounds`
    /// rounds have ended since.
    Css { baseline: u32, rounds: u8 },
    /// Off: it ended slow start, or a loss did (RFC 9406 4.3: only the
    /// initial slow start uses HyStart++).
    Off,
}

/// HyStart++ state. A round ends when the ACK for the data that was in
/// flight at its start arrives (RFC 9406 windowEnd = SND.NXT); counted
/// here as the bytes still to be acknowledged, which is the same thing
/// without sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HyStart {
    phase: HyPhase,
    /// Bytes to be acknowledged before the current round ends.
    /// (A window is at most 1 GiB, RFC 7323 2.3: u32, to keep the
    /// controller within 128 bytes.)
    round_left: u32,
    /// The least RTT sample of the last round and of this one (us), as
    /// read: upper bounds of the round trips.
    last_round_min: u32,
    current_round_min: u32,
    /// This round's least lower bound (`rtt - rx_wait`, us), over the
    /// samples that waited at most MAX_RX_WAIT in the receive ring: the
    /// RTT rose only if even this is above the last round's minimum by
    /// the threshold (a core that read its ACKs late must not take its
    /// own delay for the path's queue). `samples` counts those samples.
    current_round_floor: u32,
    samples: u8,
    /// The least RTT sample of the connection (us): for the ACK train,
    /// and (kept after slow start) how far ahead CUBIC aims.
    min_rtt: u32,
    /// When the current round began and when the train's last ACK came
    /// (the clock's microseconds, wrapping: only differences are used).
    round_start: u32,
    train_last: u32,
}

impl HyStart {
    fn new() -> HyStart {
        HyStart {
            phase: HyPhase::SlowStart,
            round_left: 0,
            last_round_min: NO_RTT,
            current_round_min: NO_RTT,
            current_round_floor: NO_RTT,
            samples: 0,
            min_rtt: NO_RTT,
            round_start: 0,
            train_last: 0,
        }
    }

    fn in_css(&self) -> bool {
        matches!(self.phase, HyPhase::Css { .. })
    }

    /// The ACK-train test, as Linux's CUBIC runs it beside the delay test.
    /// RFC 9406's delay test alone cannot see a queue until it stands from
    /// one round to the next: ACK-clocked slow start drains it between
    /// rounds, each round's minimum RTT is taken at its start, and by the
    /// round the minimum rises the window has doubled past what a queue of
    /// one BDP holds (src/shard/sim_cc_tests.rs measures it). The train
    /// sees it a round earlier: ACKs that come back-to-back for half a
    /// round trip are the bottleneck's rate, so the window is half the
    /// pipe and the next doubling fills it. Not without an RTT sample
    /// (nor below HYSTART_LOW_WINDOW segments: HyStart::on_ack does not
    /// call it there).
    ///
    /// `wait`: how long this ACK may have waited in the receive ring (us;
    /// the time since the core last drained it). A core that was away
    /// (asleep with `--idle-sleep`, or off its CPU) reads what came
    /// meanwhile in one burst: its absence is no gap in the train, nor
    /// part of its length. So the gap and the length are both taken from
    /// the earliest the ACK can have arrived, `now - wait`: the least the
    /// gap can have been, and the least the train can have lasted.
    fn ack_train_ends_slow_start(&mut self, now: u32, wait: u32) -> bool {
        if self.min_rtt == NO_RTT {
            return false;
        }
        let arrived = now.wrapping_sub(wait);
        // Signed: an ACK read late may have arrived before the last one
        // of the train was read.
        if arrived.wrapping_sub(self.train_last) as i32 > ACK_TRAIN_GAP as i32 {
            // A gap: the train broke; it does not restart this round.
            return false;
        }
        self.train_last = now;
        let threshold = self.min_rtt.saturating_add(ACK_TRAIN_ACK_DELAY) / 2;
        arrived.wrapping_sub(self.round_start) as i32 > threshold as i32
    }

    /// Every RTT sample, in or out of slow start: the connection's least.
    fn note_rtt(&mut self, ack: &Ack) {
        if let Some(rtt) = ack.rtt {
            let us = u32::try_from(rtt.micros()).unwrap_or(NO_RTT - 1);
            self.min_rtt = self.min_rtt.min(us);
        }
    }

    /// One ACK in slow start (RFC 9406 4.2) with `cwnd` bytes of window.
    /// True: slow start is over, set ssthresh to cwnd (CSS_ROUNDS rounds
    /// of CSS have passed, or the ACK train says the window fills the
    /// bottleneck).
    ///
    /// The rounds are counted from the first ACK on, whatever the window
    /// (each begins with the first ACK of a train, where the train test
    /// times it from); the tests watch them only from HYSTART_LOW_WINDOW
    /// segments on. Inline: the round's bookkeeping is a comparison, and
    /// an application-limited connection below that window (an echo at
    /// IW10) goes no further on any ACK.
    #[inline(always)]
    fn on_ack(&mut self, ack: &Ack, cwnd: usize) -> bool {
        if self.phase == HyPhase::Off {
            return false;
        }
        let now = ack.now.micros() as u32;
        // The round ends with the first ACK for data sent after it began
        // (RFC 9406: windowEnd, SND.NXT then, is acknowledged once an ACK
        // covers the byte at windowEnd): so each round begins with the
        // first ACK of a train, where Linux's begins, and the train is
        // timed from there.
        let new_round = ack.acked > self.round_left as usize;
        if new_round {
            self.round_start = now;
            self.round_left = u32::try_from(ack.flight).unwrap_or(u32::MAX);
        } else {
            // acked <= round_left here.
            self.round_left -= ack.acked as u32;
        }
        if cwnd < HYSTART_LOW_WINDOW * ack.mss {
            // Nothing else to keep: the round's samples are taken only
            // from here on, and a window that reached it leaves it only
            // through a loss, which ends HyStart++.
            return false;
        }
        self.watch(ack, now, new_round)
    }

    /// The tests of [`HyStart::on_ack`] on a window worth watching.
    fn watch(&mut self, ack: &Ack, now: u32, new_round: bool) -> bool {
        if new_round {
            self.train_last = now;
            // A new round: the last one's minimum is the reference.
            self.last_round_min = self.current_round_min;
            self.current_round_min = NO_RTT;
            self.current_round_floor = NO_RTT;
            self.samples = 0;
            if let HyPhase::Css { rounds, .. } = &mut self.phase {
                *rounds += 1;
                if *rounds >= CSS_ROUNDS {
                    self.phase = HyPhase::Off;
                    return true;
                }
            }
        } else {
            let wait = u32::try_from(ack.rx_wait.micros()).unwrap_or(u32::MAX / 2);
            if self.ack_train_ends_slow_start(now, wait) {
                self.phase = HyPhase::Off;
                return true;
            }
        }
        if let Some(rtt) = ack.rtt {
            let us = u32::try_from(rtt.micros()).unwrap_or(NO_RTT - 1);
            self.current_round_min = self.current_round_min.min(us);
            let wait = u32::try_from(ack.rx_wait.micros()).unwrap_or(NO_RTT);
            if wait <= MAX_RX_WAIT {
                self.current_round_floor = self.current_round_floor.min(us.saturating_sub(wait));
                self.samples = self.samples.saturating_add(1);
            }
        }
        if self.samples < N_RTT_SAMPLE || self.current_round_floor == NO_RTT {
            return false;
        }
        match self.phase {
            HyPhase::SlowStart if self.last_round_min != NO_RTT => {
                // The delay-increase test: a rise of an eighth of the last
                // round's RTT, between 4 and 16 ms, is a queue building.
                // Round trips as read are upper bounds: the rise is the
                // least this round's can have been over the most the last
                // round's was.
                let thresh =
                    (self.last_round_min / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if self.current_round_floor >= self.last_round_min.saturating_add(thresh) {
                    self.phase = HyPhase::Css {
                        baseline: self.current_round_floor,
                        rounds: 0,
                    };
                }
            }
            HyPhase::Css { baseline, .. } if self.current_round_min < baseline => {
                // The rise was spurious: back to slow start.
                self.phase = HyPhase::SlowStart;
            }
            _ => {}
        }
        false
    }
}

/// Slow start as both algorithms run it: RFC 3465 byte counting, HyStart++,
/// and the bookkeeping of timeouts and idle periods.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlowStart {
    hystart: HyStart,
    /// Timed out, and no new data acknowledged since: a further timeout
    /// keeps ssthresh (RFC 5681 3.1, with equation 4).
    backed_off: bool,
    /// In the slow start that follows a timeout: L = 1 SMSS (RFC 3465; a
    /// cumulative ACK for a retransmission can cover much, and must not
    /// release a burst).
    after_rto: bool,
    /// No loss (fast retransmit or ECN) since the connection began or its
    /// last timeout (Linux resets CUBIC's state on one, `bictcp_reset`):
    /// CUBIC's avoidance then grows at least 1/PROBE_CNT a round trip.
    /// Kept here, where a bool fits beside the others for free.
    no_loss: bool,
    /// Since when nothing has been in flight (the ACK that emptied it);
    /// `Instant::ZERO`: something is, or the idle time was taken (not an
    /// Option, to keep every connection 8 bytes smaller).
    idle_since: Instant,
}

impl SlowStart {
    /// One ACK for either algorithm: note it for HyStart++ and, below
    /// ssthresh, grow `cwnd` (leaving slow start where HyStart++ says so).
    /// False in congestion avoidance: the algorithm's own growth applies.
    #[inline(always)]
    fn step(&mut self, ack: &Ack, grow: bool, cwnd: &mut usize, ssthresh: &mut usize) -> bool {
        self.note_ack(ack.now, ack.flight);
        self.hystart.note_rtt(ack);
        if *cwnd >= *ssthresh {
            return false;
        }
        let (inc, leave) = self.on_ack(ack, grow, *cwnd);
        *cwnd += inc;
        if leave {
            *ssthresh = *cwnd;
        }
        if *cwnd >= *ssthresh {
            self.after_rto = false;
        }
        true
    }

    fn new() -> SlowStart {
        SlowStart {
            hystart: HyStart::new(),
            backed_off: false,
            after_rto: false,
            no_loss: true,
            idle_since: Instant::ZERO,
        }
    }

    /// Taking over a connection's window: HyStart++ only while no loss has
    /// set ssthresh.
    fn resume(ssthresh: usize) -> SlowStart {
        let mut ss = SlowStart::new();
        if ssthresh != usize::MAX {
            ss.hystart.phase = HyPhase::Off;
            ss.no_loss = false;
        }
        ss
    }

    /// Bookkeeping for every ACK of new data or end of recovery.
    fn note_ack(&mut self, now: Instant, flight: usize) {
        self.backed_off = false;
        self.idle_since = if flight == 0 { now } else { Instant::ZERO };
    }

    /// The slow-start increase this ACK earns, and whether HyStart++ ends
    /// slow start with it.
    #[inline(always)]
    fn on_ack(&mut self, ack: &Ack, grow: bool, cwnd: usize) -> (usize, bool) {
        let css = self.hystart.in_css();
        let hystart = self.hystart.phase != HyPhase::Off;
        let leave = self.hystart.on_ack(ack, cwnd);
        if !grow {
            return (0, leave);
        }
        let limit = match (self.after_rto, hystart) {
            (true, _) => 1,
            (false, true) => HYSTART_L,
            (false, false) => ABC_LIMIT,
        };
        let inc = ack.acked.min(limit * ack.mss);
        (if css { inc / CSS_GROWTH_DIVISOR } else { inc }, leave)
    }

    fn on_loss(&mut self) {
        self.hystart.phase = HyPhase::Off;
        self.after_rto = false;
        self.no_loss = false;
    }

    fn on_rto(&mut self) {
        self.hystart.phase = HyPhase::Off;
        self.backed_off = true;
        self.after_rto = true;
        self.no_loss = true;
    }

    /// How long the flight was empty, once.
    fn take_idle(&mut self, now: Instant) -> Option<Duration> {
        let since = std::mem::replace(&mut self.idle_since, Instant::ZERO);
        (since != Instant::ZERO).then(|| now.since(since))
    }
}

// ---- NewReno ------------------------------------------------------------

/// NewReno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReno {
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acked in congestion avoidance, toward the next MSS of growth.
    acked_in_ca: usize,
    ss: SlowStart,
}

impl NewReno {
    pub fn new(mss: usize) -> NewReno {
        NewReno::resume(initial_window(mss), usize::MAX, mss)
    }

    /// Taking over another controller's window.
    pub fn resume(cwnd: usize, ssthresh: usize, mss: usize) -> NewReno {
        NewReno {
            cwnd: cwnd.max(mss),
            ssthresh,
            acked_in_ca: 0,
            ss: SlowStart::resume(ssthresh),
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
    fn on_ack(&mut self, ack: &Ack) {
        let grow = cwnd_limited(ack, self.cwnd);
        // Slow start (RFC 5681 3.1, eq. 2, counting bytes).
        if !self.ss.step(ack, grow, &mut self.cwnd, &mut self.ssthresh) && grow {
            // Congestion avoidance: one MSS per window of bytes acked
            // (RFC 5681 3.1, counting as RFC 3465 does).
            self.acked_in_ca += ack.acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd += ack.mss;
            }
        }
    }
    fn on_fast_retransmit(&mut self, flight: usize, mss: usize) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh + 3 * mss;
        self.acked_in_ca = 0;
        self.ss.on_loss();
    }
    fn on_dup_ack_in_recovery(&mut self, mss: usize) {
        self.cwnd += mss;
    }
    fn on_ecn(&mut self, flight: usize, mss: usize) {
        // RFC 3168 6.1.2: halve as for a loss; cwnd = ssthresh, with no
        // segments to account for as fast recovery's duplicates do.
        self.on_fast_retransmit(flight, mss);
        self.cwnd = self.ssthresh;
    }
    fn on_partial_ack(&mut self, acked: usize, mss: usize) {
        self.cwnd = deflate(self.cwnd, acked, mss);
    }
    fn on_recovery_end(&mut self, now: Instant, flight: usize, mss: usize) {
        // RFC 6582 3.2 step 3, option 1.
        self.cwnd = self.ssthresh.min(flight.max(mss) + mss);
        self.ss.note_ack(now, flight);
    }
    fn on_rto(&mut self, flight: usize, mss: usize) {
        if !self.ss.backed_off {
            self.ssthresh = (flight / 2).max(2 * mss);
        }
        self.cwnd = mss;
        self.acked_in_ca = 0;
        self.ss.on_rto();
    }
    fn on_send_after_idle(&mut self, now: Instant, rto: Duration, mss: usize) {
        if self.ss.take_idle(now).is_some_and(|idle| idle > rto) {
            // RFC 5681 4.1: RW = min(IW, cwnd).
            self.cwnd = self.cwnd.min(initial_window(mss));
        }
    }
    fn undo(&mut self, cwnd: usize, ssthresh: usize) {
        self.cwnd = self.cwnd.max(cwnd);
        self.ssthresh = self.ssthresh.max(ssthresh);
        self.acked_in_ca = 0;
    }
}

/// RFC 6582 3.2 step 5: a partial ACK deflates the window by the amount
/// acknowledged and adds back one MSS if that was at least one.
fn deflate(cwnd: usize, acked: usize, mss: usize) -> usize {
    let mut cwnd = cwnd.saturating_sub(acked);
    if acked >= mss {
        cwnd += mss;
    }
    cwnd.max(mss)
}

// ---- CUBIC (RFC 9438) ---------------------------------------------------

/// RFC 9438 4.6: the multiplicative decrease factor.
const BETA_CUBIC: f64 = 0.7;
/// RFC 9438 4.1.1: the aggressiveness constant, in MSS per second cubed.
const C_CUBIC: f64 = 0.4;
/// RFC 9438 4.3: the Reno-friendly additive increase, 3(1-b)/(1+b) MSS
/// per RTT, so that CUBIC takes the same average rate as Reno's 1 and 0.5.
const ALPHA_CUBIC: f64 = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC);
/// Until the first loss, congestion avoidance grows at least one MSS per
/// PROBE_CNT acked (5% a round trip), as Linux's CUBIC.
const PROBE_CNT: f64 = 20.0;

/// One congestion avoidance stage (RFC 9438 4.2): where the curve starts.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Epoch {
    /// When it began; moved later by idle time (RFC 9438 5.8).
    start: Instant,
    /// K: the seconds the curve takes to reach W_max.
    k: f64,
    /// W_est, the window Reno would have now (RFC 9438 4.3), bytes.
    w_est: f64,
}

/// CUBIC (RFC 9438): after a reduction, the window follows
/// W_cubic(t) = C*(t-K)^3 + W_max, concave up to the window before the
/// loss and convex beyond it, never slower than Reno would grow
/// (the Reno-friendly region).
///
/// The curve is computed in f64, on bytes (C is scaled by the MSS): a cube
/// root per stage and two cubes per ACK of congestion avoidance, no
/// allocation, and the range of f64 where fixed point (Linux's
/// `cubic_root` and its shifts) would need care at large windows and long
/// stages. Growth below a byte
/// is carried to the next ACK, so that none is lost to rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct Cubic {
    cwnd: usize,
    ssthresh: usize,
    /// Growth owed below one byte.
    carry: f64,
    /// W_max: the window before the last reduction, lowered by fast
    /// convergence (RFC 9438 4.7); 0 after a timeout, so that the next
    /// stage starts its curve where it is (4.8). Raised to cwnd_epoch when
    /// a stage starts above it; the current stage's from then on.
    w_max: f64,
    /// cwnd_prior: the window before the last reduction, where W_est's
    /// growth switches to Reno's rate (RFC 9438 4.3).
    cwnd_prior: f64,
    /// The current congestion avoidance stage; None until its first ACK.
    epoch: Option<Epoch>,
    ss: SlowStart,
}

impl Cubic {
    pub fn new(mss: usize) -> Cubic {
        Cubic::resume(initial_window(mss), usize::MAX, mss)
    }

    /// Taking over another controller's window.
    pub fn resume(cwnd: usize, ssthresh: usize, mss: usize) -> Cubic {
        Cubic {
            cwnd: cwnd.max(mss),
            ssthresh,
            carry: 0.0,
            w_max: 0.0,
            cwnd_prior: 0.0,
            epoch: None,
            ss: SlowStart::resume(ssthresh),
        }
    }

    /// K of the current stage, in seconds (RFC 9438 4.2, eq. 2).
    pub fn k(&self) -> Option<f64> {
        self.epoch.map(|e| e.k)
    }

    /// W_max (bytes): that of the current stage, or the one the next stage
    /// will aim for.
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// W_est of the current stage (bytes).
    pub fn w_est(&self) -> Option<f64> {
        self.epoch.map(|e| e.w_est)
    }

    /// W_cubic(t) of the current stage, bytes, `t` seconds after it began
    /// (RFC 9438 4.2, eq. 1).
    pub fn w_cubic(&self, t: f64, mss: usize) -> Option<f64> {
        self.epoch.map(|e| w_cubic(&e, self.w_max, t, mss))
    }

    /// In HyStart++'s conservative slow start.
    pub fn in_css(&self) -> bool {
        self.ss.hystart.in_css()
    }

    fn window_f64(&self) -> f64 {
        self.cwnd as f64 + self.carry
    }

    fn set_window(&mut self, w: f64) {
        let w = w.max(0.0);
        self.cwnd = w as usize;
        self.carry = (w - self.cwnd as f64).clamp(0.0, 1.0);
    }

    /// RFC 9438 4.2: the first ACK of a congestion avoidance stage fixes
    /// its curve. K from eq. 2 with cwnd_epoch; when the window is already
    /// at or above W_max (after a timeout, 4.8, or a slow start that ended
    /// without loss) the curve starts here, on its plateau: W_max =
    /// cwnd_epoch, K = 0.
    fn start_epoch(&mut self, now: Instant, mss: usize) -> Epoch {
        let cwnd = self.window_f64();
        let (w_max, k) = if self.w_max > cwnd {
            (
                self.w_max,
                ((self.w_max - cwnd) / (C_CUBIC * mss as f64)).cbrt(),
            )
        } else {
            (cwnd, 0.0)
        };
        self.w_max = w_max;
        Epoch {
            start: now,
            k,
            w_est: cwnd,
        }
    }

    /// RFC 9438 4.3-4.5: one ACK in congestion avoidance.
    fn congestion_avoidance(&mut self, ack: &Ack) {
        let mut e = match self.epoch {
            Some(e) => e,
            None => self.start_epoch(ack.now, ack.mss),
        };
        let cwnd = self.window_f64();
        let mss = ack.mss as f64;
        let acked = ack.acked as f64;
        let t = secs(ack.now.since(e.start));
        // One minimum RTT ahead (the connection's least sample, as
        // Linux's `t + delay_min`); the smoothed RTT only until a sample
        // came. Not the smoothed RTT, which a standing queue inflates:
        // aiming a queued RTT ahead grows a flow the faster the fuller
        // the bottleneck it shares, and faster than Linux's CUBIC beside it.
        let rtt = match self.ss.hystart.min_rtt {
            NO_RTT => ack.srtt.map_or(0.0, secs),
            us => f64::from(us) / 1e6,
        };
        // Reno-friendly region (4.3): W_est grows by alpha per window acked,
        // by 1 once it has reached the window before the last reduction.
        let alpha = if e.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA_CUBIC
        };
        e.w_est += alpha * mss * acked / cwnd;
        let next = if w_cubic(&e, self.w_max, t, ack.mss) < e.w_est {
            e.w_est
        } else {
            // Concave (4.4) and convex (4.5) regions: aim one RTT ahead on
            // the curve, at most 1.5 times the window, and get there over a
            // window of ACKs.
            let target = w_cubic(&e, self.w_max, t + rtt, ack.mss).clamp(cwnd, 1.5 * cwnd);
            cwnd + (target - cwnd) * acked / cwnd
        };
        // Until a loss has shown where the path ends, W_max is only where
        // slow start stopped (HyStart++ ends it on delay, before any loss):
        // the curve's plateau there would hold the window for seconds at
        // a point no loss confirmed. Grow at least 1/PROBE_CNT per window
        // acked meanwhile, as Linux's CUBIC does (`bictcp_update` caps
        // `cnt` at 20 while `last_max_cwnd` is 0), so that a flow that left
        // slow start early goes on filling the pipe beside Linux's flows.
        let next = if self.ss.no_loss {
            next.max(cwnd + acked / PROBE_CNT)
        } else {
            next
        };
        // Never shrink in avoidance: the window may already be past W_est
        // (it aims one RTT ahead).
        self.set_window(next.max(cwnd));
        self.epoch = Some(e);
    }
}

/// RFC 9438 eq. 1, in bytes: C is in MSS per second cubed.
fn w_cubic(e: &Epoch, w_max: f64, t: f64, mss: usize) -> f64 {
    C_CUBIC * mss as f64 * (t - e.k).powi(3) + w_max
}

fn secs(d: Duration) -> f64 {
    d.micros() as f64 / 1e6
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }
    fn window(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    fn on_ack(&mut self, ack: &Ack) {
        let grow = cwnd_limited(ack, self.cwnd);
        if !self.ss.step(ack, grow, &mut self.cwnd, &mut self.ssthresh) && grow {
            // RFC 9438 5.8: no growth while the application or the peer's
            // window limits the flight.
            self.congestion_avoidance(ack);
        }
    }
    fn on_fast_retransmit(&mut self, flight: usize, mss: usize) {
        let cwnd = self.window_f64();
        // RFC 9438 4.7, fast convergence: a loss below the last W_max means
        // another flow took bandwidth; give some up by aiming lower.
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA_CUBIC) / 2.0
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd;
        // RFC 9438 4.6: ssthresh = flight_size * beta_cubic, at least 2 MSS.
        // cwnd = ssthresh, inflated by the three segments the duplicate
        // ACKs say have left (RFC 5681 3.2 step 3), as the connection's
        // fast recovery expects.
        self.ssthresh = ((flight as f64 * BETA_CUBIC) as usize).max(2 * mss);
        self.cwnd = self.ssthresh + 3 * mss;
        self.carry = 0.0;
        self.epoch = None;
        self.ss.on_loss();
    }
    fn on_dup_ack_in_recovery(&mut self, mss: usize) {
        self.cwnd += mss;
    }
    fn on_ecn(&mut self, flight: usize, mss: usize) {
        // RFC 3168 6.1.2: halve as for a loss; cwnd = ssthresh, with no
        // segments to account for as fast recovery's duplicates do.
        self.on_fast_retransmit(flight, mss);
        self.cwnd = self.ssthresh;
    }
    fn on_partial_ack(&mut self, acked: usize, mss: usize) {
        self.cwnd = deflate(self.cwnd, acked, mss);
    }
    fn on_recovery_end(&mut self, now: Instant, flight: usize, mss: usize) {
        // RFC 6582 3.2 step 3, option 1: deflate to ssthresh, or less if
        // little is in flight (no burst). The curve starts on the next ACK.
        self.cwnd = self.ssthresh.min(flight.max(mss) + mss);
        self.carry = 0.0;
        self.ss.note_ack(now, flight);
    }
    fn on_rto(&mut self, flight: usize, mss: usize) {
        // RFC 9438 4.8: the loss window of RFC 5681, ssthresh as for a
        // loss (4.6), kept on a repeated timeout (RFC 5681 3.1); the next
        // stage's curve starts where it begins (K = 0, W_max = cwnd_epoch,
        // W_est = cwnd_epoch).
        if !self.ss.backed_off {
            self.cwnd_prior = self.window_f64();
            self.ssthresh = ((flight as f64 * BETA_CUBIC) as usize).max(2 * mss);
        }
        self.w_max = 0.0;
        self.cwnd = mss;
        self.carry = 0.0;
        self.epoch = None;
        self.ss.on_rto();
    }
    fn undo(&mut self, cwnd: usize, ssthresh: usize) {
        // The curve resumes from the window before the reduction, as its
        // plateau (Linux `cubictcp_cwnd_undo` restores the loss window).
        self.cwnd = self.cwnd.max(cwnd);
        self.ssthresh = self.ssthresh.max(ssthresh);
        self.w_max = self.w_max.max(cwnd as f64);
        self.carry = 0.0;
        self.epoch = None;
    }
    #[inline]
    fn on_send_after_idle(&mut self, now: Instant, rto: Duration, mss: usize) {
        let Some(idle) = self.ss.take_idle(now) else {
            return;
        };
        let iw = initial_window(mss);
        if idle > rto && self.cwnd > iw {
            // RFC 5681 4.1: RW = min(IW, cwnd); a new stage follows.
            self.cwnd = iw;
            self.carry = 0.0;
            self.epoch = None;
        } else if let Some(e) = &mut self.epoch {
            // RFC 9438 5.8: t leaves out the time nothing was in flight
            // (as Linux shifts epoch_start on CA_EVENT_TX_START).
            e.start = e.start.plus(idle).min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    fn ack(now: Instant, acked: usize, flight: usize, rtt: Option<Duration>, mss: usize) -> Ack {
        Ack {
            now,
            acked,
            flight,
            rtt,
            srtt: rtt,
            mss,
            rx_wait: Duration::from_micros(0),
        }
    }

    /// One round trip of a sender that keeps its window full: a window of
    /// ACKs of one MSS each, spread evenly over `rtt`, each with `rtt` as
    /// its sample. Returns the time at the end.
    fn round(
        cc: &mut impl CongestionControl,
        mut now: Instant,
        rtt: Duration,
        mss: usize,
    ) -> Instant {
        let n = (cc.window() / mss).max(1);
        let step = rtt.micros() / n as u64;
        for _ in 0..n {
            now = now.plus(Duration::from_micros(step));
            let flight = cc.window().saturating_sub(mss);
            cc.on_ack(&ack(now, mss, flight, Some(rtt), mss));
        }
        now
    }

    /// One round of slow start behind a bottleneck `gap_us` per segment:
    /// the window's ACKs come back `gap_us` apart from `first` on. Returns
    /// when the next round's first ACK comes: the segments the first ACK
    /// released, `rtt` later (or right after this train, if it lasts
    /// longer: the pipe is full).
    fn train_round(
        cc: &mut impl CongestionControl,
        first: Instant,
        rtt: Duration,
        gap_us: u64,
        mss: usize,
    ) -> Instant {
        let n = (cc.window() / mss).max(1);
        let mut t = first;
        for i in 0..n {
            if i > 0 {
                t = t.plus(Duration::from_micros(gap_us));
            }
            // What is in flight after this ACK: the rest of this round's
            // segments, and two for each ACK of it so far.
            let flight = (n - 1 - i + 2 * i) * mss;
            cc.on_ack(&ack(t, mss, flight, Some(rtt), mss));
        }
        Instant::from_micros((first.plus(rtt).micros()).max(t.micros() + gap_us))
    }

    #[test]
    fn initial_window_is_rfc6928() {
        // min(10*MSS, max(2*MSS, 14600)).
        assert_eq!(initial_window(536), 5360);
        assert_eq!(initial_window(1000), 10_000);
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(1448), 14_480);
        assert_eq!(initial_window(4000), 14_600);
        assert_eq!(initial_window(8960), 17_920);
        assert_eq!(NewReno::new(1460).window(), 14_600);
        assert_eq!(Cubic::new(1000).window(), 10_000);
    }

    #[test]
    fn slow_start_then_avoidance() {
        let mss = 1000;
        let t0 = Instant::from_secs(1);
        let mut cc = NewReno::new(mss);
        assert_eq!(cc.window(), 10_000);
        // RFC 3465: an ACK of one MSS grows by one; while HyStart++ runs
        // (RFC 9406 4.2, not paced: L = 8 SMSS) a stretch ACK of five by
        // five, one of twelve by eight.
        cc.on_ack(&ack(t0, 1000, 9000, None, mss));
        assert_eq!(cc.window(), 11_000);
        cc.on_ack(&ack(t0, 5000, 6000, None, mss));
        assert_eq!(cc.window(), 16_000);
        cc.on_ack(&ack(t0, 12_000, 4000, None, mss));
        assert_eq!(cc.window(), 24_000);
        cc.on_rto(20_000, mss);
        assert_eq!(cc.window(), 1000);
        assert_eq!(cc.ssthresh(), 10_000);
        // After a timeout, L = 1 SMSS: the stretch ACK grows by one only.
        cc.on_ack(&ack(t0, 2000, 0, None, mss));
        assert_eq!(cc.window(), 2000);
        for _ in 0..8 {
            cc.on_ack(&ack(t0, 1000, cc.window(), None, mss));
        }
        assert_eq!(cc.window(), 10_000);
        // Avoidance: one MSS after a window's worth of bytes.
        for _ in 0..9 {
            cc.on_ack(&ack(t0, 1000, 9000, None, mss));
        }
        assert_eq!(cc.window(), 10_000);
        cc.on_ack(&ack(t0, 1000, 9000, None, mss));
        assert_eq!(cc.window(), 11_000);
    }

    #[test]
    fn slow_start_limit_per_ack_is_hystarts_l_then_abcs() {
        // RFC 9406 4.2: L = 8 SMSS while HyStart++ runs (a sender that
        // does not pace); RFC 3465 2.2: L = 2 in a slow start without it,
        // 1 after a timeout.
        let mss = 1000;
        let stretch = |ss: &mut SlowStart, acked: usize| {
            ss.on_ack(
                &ack(Instant::from_secs(1), acked, 20_000, None, mss),
                true,
                30_000,
            )
            .0
        };
        let mut ss = SlowStart::new();
        assert_eq!(stretch(&mut ss, 3000), 3000);
        assert_eq!(stretch(&mut ss, 15_000), 8000);
        ss.hystart.phase = HyPhase::Off;
        assert_eq!(stretch(&mut ss, 3000), 2000);
        assert_eq!(stretch(&mut ss, 1000), 1000);
        ss.on_rto();
        assert_eq!(stretch(&mut ss, 3000), 1000);
        // Conservative slow start takes a quarter of the same limit.
        let mut css = SlowStart::new();
        css.hystart.phase = HyPhase::Css {
            baseline: 20_000,
            rounds: 0,
        };
        css.hystart.round_left = u32::MAX;
        assert_eq!(stretch(&mut css, 15_000), 2000);
    }

    #[test]
    fn no_growth_while_application_limited() {
        let mss = 1000;
        let t0 = Instant::from_secs(1);
        for algorithm in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
            let mut cc = Cc::new(algorithm, mss);
            // Two segments out of a window of ten: the window was not
            // tested, it does not grow.
            cc.on_ack(&ack(t0, 1000, 1000, None, mss));
            assert_eq!(cc.window(), 10_000, "{algorithm:?}");
            // Five out: it was.
            cc.on_ack(&ack(t0, 1000, 4000, None, mss));
            assert_eq!(cc.window(), 11_000, "{algorithm:?}");
        }
    }

    #[test]
    fn fast_recovery() {
        let mss = 1000;
        let mut cc = NewReno::new(mss);
        cc.on_fast_retransmit(20_000, mss);
        assert_eq!(cc.ssthresh(), 10_000);
        assert_eq!(cc.window(), 13_000);
        cc.on_dup_ack_in_recovery(mss);
        assert_eq!(cc.window(), 14_000);
        cc.on_partial_ack(3000, mss);
        assert_eq!(cc.window(), 12_000);
        cc.on_recovery_end(Instant::from_secs(1), 8000, mss);
        assert_eq!(cc.window(), 9000);
    }

    #[test]
    fn repeated_timeouts_keep_ssthresh() {
        // RFC 5681 3.1: a segment retransmitted by the timer more than
        // once does not halve ssthresh again.
        let mss = 1000;
        let mut reno = NewReno::new(mss);
        let mut cubic = Cubic::new(mss);
        for cc in [&mut reno as &mut dyn CongestionControl, &mut cubic] {
            cc.on_rto(40_000, mss);
            let first = cc.ssthresh();
            cc.on_rto(40_000, mss);
            assert_eq!(cc.ssthresh(), first, "{}", cc.name());
            assert_eq!(cc.window(), mss);
        }
        assert_eq!((reno.ssthresh(), cubic.ssthresh()), (20_000, 28_000));
    }

    #[test]
    fn restart_after_idle() {
        let mss = 1000;
        let rto = Duration::from_millis(200);
        let t0 = Instant::from_secs(1);
        for algorithm in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
            let mut cc = Cc::new(algorithm, mss);
            for i in 0..20 {
                cc.on_ack(&ack(t0, 1000, 10_000 + i * 1000, None, mss));
            }
            assert_eq!(cc.window(), 30_000);
            // Everything acknowledged at t0; the next send 150 ms later is
            // within the RTO: the window stays.
            cc.on_ack(&ack(t0, 1000, 0, None, mss));
            cc.on_send_after_idle(t0.plus(Duration::from_millis(150)), rto, mss);
            assert_eq!(cc.window(), 30_000, "{algorithm:?}");
            // Idle for longer than the RTO: back to the initial window
            // (RFC 5681 4.1).
            let t1 = t0.plus(Duration::from_millis(300));
            cc.on_ack(&ack(t1, 1000, 0, None, mss));
            cc.on_send_after_idle(t1.plus(Duration::from_millis(201)), rto, mss);
            assert_eq!(cc.window(), 10_000, "{algorithm:?}");
        }
    }

    #[test]
    fn enum_dispatches_to_the_configured_algorithm() {
        let mss = 1000;
        let t0 = Instant::from_secs(1);
        let mut cc = Cc::new(CcAlgorithm::NewReno, mss);
        let mut reno = NewReno::new(mss);
        assert_eq!(cc.name(), "newreno");
        // The same events through the enum and on the bare algorithm.
        cc.on_ack(&ack(t0, 1000, 9000, None, mss));
        reno.on_ack(&ack(t0, 1000, 9000, None, mss));
        cc.on_fast_retransmit(20_000, mss);
        reno.on_fast_retransmit(20_000, mss);
        cc.on_dup_ack_in_recovery(mss);
        reno.on_dup_ack_in_recovery(mss);
        cc.on_partial_ack(3000, mss);
        reno.on_partial_ack(3000, mss);
        cc.on_recovery_end(t0, 8000, mss);
        reno.on_recovery_end(t0, 8000, mss);
        cc.on_rto(6000, mss);
        reno.on_rto(6000, mss);
        cc.on_send_after_idle(t0, Duration::from_secs(1), mss);
        reno.on_send_after_idle(t0, Duration::from_secs(1), mss);
        let Cc::NewReno(inner) = &cc else {
            panic!("not NewReno");
        };
        assert_eq!(inner, &reno);
        assert_eq!(cc.window(), reno.window());
        assert_eq!(cc.ssthresh(), 3000);
        let cubic = Cc::new(CcAlgorithm::Cubic, mss);
        assert_eq!(
            (cubic.name(), cubic.algorithm()),
            ("cubic", CcAlgorithm::Cubic)
        );
        // Held inline: the controller is its state, no pointer to a heap
        // object; and small, as every connection holds one (128: 116, the
        // ACK train's 12 bytes of times, and HyStart++'s RTT floor, 4
        // bytes the round's byte count gave up as a u32).
        assert!(std::mem::size_of::<Cc>() <= std::mem::size_of::<Cubic>() + 8);
        assert!(
            std::mem::size_of::<Cc>() <= 128,
            "{}",
            std::mem::size_of::<Cc>()
        );
    }

    #[test]
    fn switching_keeps_cwnd_and_ssthresh() {
        let mss = 1000;
        let mut cc = Cc::new(CcAlgorithm::Cubic, mss);
        // Before any data: the initial window either way.
        cc.switch_to(CcAlgorithm::NewReno, mss);
        assert_eq!((cc.name(), cc.window()), ("newreno", 10_000));
        cc.on_fast_retransmit(30_000, mss);
        cc.on_recovery_end(Instant::from_secs(1), 15_000, mss);
        let before = (cc.window(), cc.ssthresh());
        assert_eq!(before, (15_000, 15_000));
        cc.switch_to(CcAlgorithm::Cubic, mss);
        assert_eq!(cc.algorithm(), CcAlgorithm::Cubic);
        assert_eq!((cc.window(), cc.ssthresh()), before);
        let Cc::Cubic(c) = &cc else {
            panic!("not CUBIC");
        };
        // A loss set ssthresh: no HyStart++ for what is left.
        assert_eq!(c.ss.hystart.phase, HyPhase::Off);
    }

    /// Loss at a window of 100 segments of 1000 bytes, recovery ended with
    /// 70 in flight: the stage that follows starts at 70 segments.
    fn cubic_after_loss_at_100(mss: usize) -> Cubic {
        let mut cc = Cubic::new(mss);
        cc.cwnd = 100 * mss;
        cc.ssthresh = 50 * mss;
        cc.ss.hystart.phase = HyPhase::Off;
        cc.on_fast_retransmit(100 * mss, mss);
        // RFC 9438 4.6: ssthresh = 0.7 * flight, cwnd = ssthresh (+3 MSS of
        // inflation during recovery); W_max = the window at the loss.
        assert_eq!(cc.ssthresh(), 70 * mss);
        assert_eq!(cc.window(), 73 * mss);
        assert_eq!(cc.w_max(), 100.0 * mss as f64);
        cc.on_recovery_end(Instant::from_secs(10), 70 * mss, mss);
        assert_eq!(cc.window(), 70 * mss);
        cc
    }

    #[test]
    fn cubic_curve_follows_rfc9438() {
        let mss = 1000;
        let mut cc = cubic_after_loss_at_100(mss);
        let t0 = Instant::from_secs(10);
        // The first ACK in avoidance fixes the curve (eq. 2):
        // K = cbrt((W_max - cwnd_epoch) / C) = cbrt((100 - 70) / 0.4)
        // = cbrt(75) = 4.2171633 s.
        cc.on_ack(&ack(
            t0,
            mss,
            69 * mss,
            Some(Duration::from_millis(100)),
            mss,
        ));
        let k = cc.k().unwrap();
        assert!((k - 4.217_163_3).abs() < 1e-6, "K = {k}");
        // W_cubic(t) = 0.4 (t - K)^3 + 100 segments, worked out by hand:
        // t = 0: 0.4 * -75 + 100 = 70; t = 2: 0.4 * (-2.2171633)^3 + 100
        // = 95.640336; t = K: 100 (the plateau); t = 6: 102.266703.
        for (t, want) in [
            (0.0, 70.0),
            (2.0, 95.640_336),
            (k, 100.0),
            (6.0, 102.266_703),
        ] {
            let got = cc.w_cubic(t, mss).unwrap() / mss as f64;
            assert!(
                (got - want).abs() < 1e-5,
                "W_cubic({t}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn cubic_window_tracks_the_curve_at_long_rtt() {
        // At 100 ms the curve outgrows Reno: after 2 s the window is near
        // W_cubic(2 s + RTT), concave below W_max; after 6 s past W_max
        // (convex), and the plateau was slow (within a few segments of
        // W_max around t = K).
        let mss = 1000;
        let rtt = Duration::from_millis(100);
        let mut cc = cubic_after_loss_at_100(mss);
        let t0 = Instant::from_secs(10);
        let mut now = t0;
        while now.since(t0) < Duration::from_secs(2) {
            now = round(&mut cc, now, rtt, mss);
        }
        let seg = |w: usize| w as f64 / mss as f64;
        let t = secs(now.since(t0));
        let want = cc.w_cubic(t + 0.1, mss).unwrap() / mss as f64;
        let got = seg(cc.window());
        assert!(
            (got - want).abs() < 2.0,
            "at {t} s: cwnd {got}, W_cubic {want}"
        );
        assert!(got < 100.0);
        assert!(cc.w_est().unwrap() / (mss as f64) < got, "CUBIC's region");
        while now.since(t0) < Duration::from_micros(4_200_000) {
            now = round(&mut cc, now, rtt, mss);
        }
        assert!(
            (seg(cc.window()) - 100.0).abs() < 3.0,
            "{}",
            seg(cc.window())
        );
        while now.since(t0) < Duration::from_secs(6) {
            now = round(&mut cc, now, rtt, mss);
        }
        let want = cc.w_cubic(secs(now.since(t0)) + 0.1, mss).unwrap() / mss as f64;
        assert!(seg(cc.window()) > 101.0);
        assert!((seg(cc.window()) - want).abs() < 2.0);
    }

    #[test]
    fn cubic_growth_per_rtt_is_bounded() {
        // Far along the convex curve the target is clamped to 1.5 cwnd: a
        // round trip grows the window by at most half.
        let mss = 1000;
        let rtt = Duration::from_millis(100);
        let mut cc = cubic_after_loss_at_100(mss);
        let t0 = Instant::from_secs(10);
        cc.on_ack(&ack(t0, mss, 69 * mss, Some(rtt), mss));
        // 30 s later W_cubic is ~ 9000 segments.
        let mut now = t0.plus(Duration::from_secs(30));
        let before = cc.window();
        now = round(&mut cc, now, rtt, mss);
        let grown = cc.window() as f64 / before as f64;
        assert!(grown > 1.3 && grown <= 1.5, "{grown}");
        round(&mut cc, now, rtt, mss);
    }

    #[test]
    fn cubic_aims_one_minimum_rtt_ahead_not_one_queued_rtt() {
        // The path's RTT is 20 ms, but a standing queue holds the smoothed
        // RTT at 200 ms: each ACK aims at W_cubic(t + 20 ms), as Linux's
        // `t + delay_min`, not 200 ms ahead (which would grow a flow the
        // faster the fuller the queue it shares).
        let mss = 1000;
        let mut cc = cubic_after_loss_at_100(mss);
        let t0 = Instant::from_secs(10);
        let min = Duration::from_millis(20);
        let queued = Duration::from_millis(200);
        cc.on_ack(&Ack {
            now: t0,
            acked: mss,
            flight: 69 * mss,
            rtt: Some(min),
            srtt: Some(queued),
            mss,
            rx_wait: Duration::from_micros(0),
        });
        // One ACK 2 s in (concave region; K = 4.2 s), with the queued
        // sample: growth is (target - cwnd) / cwnd of an MSS per MSS acked.
        let now = t0.plus(Duration::from_secs(2));
        let before = cc.window_f64();
        cc.on_ack(&Ack {
            now,
            acked: mss,
            flight: 69 * mss,
            rtt: Some(queued),
            srtt: Some(queued),
            mss,
            rx_wait: Duration::from_micros(0),
        });
        let target = cc.w_cubic(2.0 + 0.020, mss).unwrap();
        let want = before + (target - before) * mss as f64 / before;
        let got = cc.window_f64();
        assert!((got - want).abs() < 1e-6, "cwnd {got}, want {want}");
        let queued_target = cc.w_cubic(2.0 + 0.200, mss).unwrap();
        let aggressive = before + (queued_target - before) * mss as f64 / before;
        assert!(aggressive - got > 10.0, "{aggressive} vs {got}");
    }

    #[test]
    fn reno_friendly_region_wins_at_short_rtt() {
        // At 1 ms the curve barely moves in 200 round trips (W_cubic(0.2 s)
        // = 74 segments) while Reno's estimate grows by 0.53 MSS per RTT up
        // to the window before the loss (100), then by 1: after 200 RTTs
        // W_est is near 70 + 57 + 143 = 270 segments, and cwnd follows it.
        let mss = 1000;
        let rtt = Duration::from_millis(1);
        let mut cc = cubic_after_loss_at_100(mss);
        let t0 = Instant::from_secs(10);
        let mut now = t0;
        for _ in 0..200 {
            now = round(&mut cc, now, rtt, mss);
        }
        let seg = |w: f64| w / mss as f64;
        let t = secs(now.since(t0));
        let cubic = seg(cc.w_cubic(t, mss).unwrap());
        let est = seg(cc.w_est().unwrap());
        let cwnd = seg(cc.window() as f64);
        assert!(cubic < 80.0, "W_cubic {cubic}");
        assert!(est > 200.0 && est < 300.0, "W_est {est}");
        assert!((cwnd - est).abs() < 1.0, "cwnd {cwnd} W_est {est}");
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mss = 1000;
        let mut cc = cubic_after_loss_at_100(mss);
        // A second loss at 70 segments, below W_max = 100: W_max becomes
        // 70 * (1 + 0.7) / 2 = 59.5 segments, below the window itself.
        cc.on_fast_retransmit(70 * mss, mss);
        assert!((cc.w_max() - 59_500.0).abs() < 1e-6, "{}", cc.w_max());
        assert_eq!(cc.ssthresh(), 49_000);
        // A loss above W_max takes the window as it is.
        let mut cc = cubic_after_loss_at_100(mss);
        cc.cwnd = 120 * mss;
        cc.on_fast_retransmit(120 * mss, mss);
        assert_eq!(cc.w_max(), 120_000.0);
    }

    #[test]
    fn cubic_after_timeout_starts_its_curve_where_it_is() {
        let mss = 1000;
        let rtt = Duration::from_millis(50);
        let mut cc = Cubic::new(mss);
        cc.cwnd = 100 * mss;
        cc.on_rto(100 * mss, mss);
        // RFC 9438 4.8: ssthresh = 0.7 flight, cwnd = 1 MSS.
        assert_eq!((cc.window(), cc.ssthresh()), (mss, 70 * mss));
        let mut now = Instant::from_secs(5);
        while cc.window() < cc.ssthresh() {
            now = now.plus(Duration::from_millis(1));
            cc.on_ack(&ack(now, mss, cc.window() - mss, Some(rtt), mss));
        }
        assert_eq!(cc.k(), None);
        let start = cc.window();
        cc.on_ack(&ack(now, mss, start - mss, Some(rtt), mss));
        // K = 0, W_max = W_est = cwnd_epoch: the convex curve from here.
        assert_eq!(cc.k(), Some(0.0));
        assert_eq!(cc.w_max(), start as f64);
    }

    #[test]
    fn idle_time_is_left_out_of_the_curve() {
        let mss = 1000;
        let rtt = Duration::from_millis(100);
        let mut cc = cubic_after_loss_at_100(mss);
        let t0 = Instant::from_secs(10);
        let now = round(&mut cc, t0, rtt, mss);
        // Everything acknowledged; nothing sent for 150 ms (under the
        // RTO, so no restart): the stage's start moves 150 ms later.
        let start = cc.epoch.unwrap().start;
        cc.on_ack(&ack(now, mss, 0, Some(rtt), mss));
        cc.on_send_after_idle(
            now.plus(Duration::from_millis(150)),
            Duration::from_millis(300),
            mss,
        );
        assert_eq!(
            cc.epoch.unwrap().start,
            start.plus(Duration::from_millis(150))
        );
    }

    /// Slow start from the initial window with the RTT `rtt_at(round)`;
    /// returns the controller and the round in which it left slow start
    /// (ssthresh set), if it did within `rounds`.
    fn slow_start(rtt_at: impl Fn(u32) -> u64, rounds: u32) -> (Cubic, Vec<(u32, bool, usize)>) {
        let mss = 1000;
        let mut cc = Cubic::new(mss);
        let mut now = Instant::from_secs(1);
        let mut log = Vec::new();
        for r in 0..rounds {
            // A bottleneck far faster than the window: no ACK train lasts
            // half a round trip, only the delay test can end slow start.
            now = train_round(&mut cc, now, Duration::from_micros(rtt_at(r)), 1, mss);
            log.push((r, cc.in_css(), cc.window()));
            if cc.ssthresh() != usize::MAX {
                break;
            }
        }
        (cc, log)
    }

    /// Rounds of an application-limited sender (an echo: two segments in
    /// flight whatever the window, which therefore never grows) at
    /// `segments` segments of window, the RTT 20 ms for three rounds and
    /// 40 ms after: whether HyStart++ entered CSS.
    fn app_limited_rounds(segments: usize) -> (bool, Cubic) {
        let mss = 1000;
        let mut cc = Cubic::resume(segments * mss, usize::MAX, mss);
        let mut now = Instant::from_secs(1);
        let mut css = false;
        for r in 0..10u64 {
            let rtt = Duration::from_millis(if r < 3 { 20 } else { 40 });
            for _ in 0..segments {
                now = now.plus(Duration::from_millis(3));
                cc.on_ack(&ack(now, mss, 2 * mss, Some(rtt), mss));
                css |= cc.in_css();
            }
        }
        assert_eq!(cc.window(), segments * mss, "not cwnd-limited: no growth");
        (css, cc)
    }

    #[test]
    fn hystart_does_not_watch_a_window_below_its_low_window() {
        // Linux's hystart_low_window: below 16 segments the rounds are not
        // watched at all (an echo at IW10 skips the work on every ACK)...
        // (the rounds are counted, no RTT sample is taken)...
        let (css, cc) = app_limited_rounds(HYSTART_LOW_WINDOW - 1);
        assert!(!css);
        assert_eq!(cc.ss.hystart.last_round_min, NO_RTT);
        assert_eq!(cc.ss.hystart.current_round_min, NO_RTT);
        // ...though the connection's least RTT is still kept (RACK, and
        // how far ahead CUBIC aims).
        assert_eq!(cc.ss.hystart.min_rtt, 20_000);
        // From 16 on, each round's samples are taken: the last ones read
        // the 40 ms the rounds rose to.
        let (_, cc) = app_limited_rounds(HYSTART_LOW_WINDOW);
        assert_eq!(cc.ss.hystart.last_round_min, 40_000);
    }

    #[test]
    fn hystart_does_not_exit_on_a_flat_rtt() {
        // 20 ms every round, or steps of 3 ms, below the 4 ms floor of the
        // threshold (an eighth of 20 ms would be 2.5): slow start doubles
        // the window each round and never leaves.
        for rtt in [
            Box::new(|_| 20 * MS) as Box<dyn Fn(u32) -> u64>,
            Box::new(|r| if r % 4 < 2 { 20 * MS } else { 23 * MS }),
        ] {
            let (cc, log) = slow_start(rtt, 9);
            assert_eq!(cc.ssthresh(), usize::MAX);
            assert!(log.iter().all(|&(_, css, _)| !css));
            assert!(cc.window() >= 256 * 10_000 / 10, "{}", cc.window());
        }
    }

    #[test]
    fn hystart_exits_on_an_rtt_increase_into_css_then_avoidance() {
        // 20 ms for five rounds, then 30 ms (a queue building): over
        // 20 + max(4, min(20/8, 16)) = 24 ms, HyStart++ enters CSS, grows
        // by a quarter of slow start's rate, and after CSS_ROUNDS rounds
        // sets ssthresh to cwnd.
        let (cc, log) = slow_start(|r| if r < 5 { 20 * MS } else { 30 * MS }, 20);
        let entered = log.iter().position(|&(_, css, _)| css).expect("CSS") as u32;
        assert!((5..=6).contains(&entered), "{log:?}");
        assert!(!cc.in_css());
        // ssthresh is the window when CSS ended (the rest of that round
        // grew it in avoidance, no loss yet: by 1/PROBE_CNT of what it
        // acked at most).
        assert!(
            cc.ssthresh() <= cc.window()
                && cc.window() - cc.ssthresh() <= cc.ssthresh() / 20 + 1000
        );
        // CSS_ROUNDS rounds of CSS at most, and the window grew by far less
        // than doubling in each.
        let css: Vec<_> = log.iter().filter(|l| l.1).collect();
        assert!(css.len() <= CSS_ROUNDS as usize, "{log:?}");
        for w in css.windows(2) {
            let ratio = w[1].2 as f64 / w[0].2 as f64;
            assert!(ratio < 1.4, "{log:?}");
        }
        // Then avoidance: the first ACK fixes the curve, from the window
        // (no loss, so K = 0).
        let mut cc = cc;
        let now = Instant::from_secs(100);
        cc.on_ack(&ack(
            now,
            1000,
            cc.window(),
            Some(Duration::from_millis(30)),
            1000,
        ));
        assert_eq!(cc.k(), Some(0.0));
    }

    /// Window growth over one round of `round` (full window, `rtt`).
    fn round_growth(cc: &mut Cubic, now: Instant, rtt: Duration, mss: usize) -> (f64, Instant) {
        let before = cc.window() as f64;
        let now = round(cc, now, rtt, mss);
        (cc.window() as f64 / before, now)
    }

    #[test]
    fn avoidance_grows_five_percent_a_round_until_the_first_loss() {
        // Slow start left without loss (HyStart++ on delay) at 400
        // segments: the curve starts on its plateau (K = 0), where it
        // would grow by a fraction of a segment a round for seconds; until
        // a loss sets W_max the window grows by 1/20 of each window acked,
        // as Linux's CUBIC (cnt capped at 20 while last_max_cwnd is 0).
        let mss = 1000;
        let rtt = Duration::from_millis(20);
        let mut cc = Cubic::new(mss);
        cc.cwnd = 400 * mss;
        cc.ssthresh = cc.cwnd;
        let mut now = Instant::from_secs(1);
        for _ in 0..5 {
            let (g, t) = round_growth(&mut cc, now, rtt, mss);
            now = t;
            assert!((1.045..1.06).contains(&g), "{g}");
        }
        assert_eq!(cc.k(), Some(0.0));
        // A loss: W_max is known, the curve alone grows the window, far
        // slower than 5% a round near its plateau.
        let flight = cc.window();
        cc.on_fast_retransmit(flight, mss);
        cc.on_recovery_end(now, cc.ssthresh(), mss);
        for _ in 0..3 {
            let (g, t) = round_growth(&mut cc, now, rtt, mss);
            now = t;
            assert!(g < 1.045, "{g}");
        }
        // A timeout starts over (Linux's bictcp_reset): probing again once
        // back in avoidance.
        cc.on_rto(cc.window(), mss);
        cc.cwnd = 300 * mss;
        cc.ssthresh = cc.cwnd;
        let (g, _) = round_growth(&mut cc, now, rtt, mss);
        assert!((1.045..1.06).contains(&g), "{g}");
        // An ECN echo is a congestion event as a loss is.
        let mut cc = Cubic::new(mss);
        cc.cwnd = 400 * mss;
        cc.ssthresh = cc.cwnd;
        cc.on_ecn(cc.window(), mss);
        cc.on_recovery_end(now, cc.ssthresh(), mss);
        let (g, _) = round_growth(&mut cc, now, rtt, mss);
        assert!(g < 1.045, "{g}");
    }

    #[test]
    fn hystart_threshold_is_at_most_16_ms() {
        // At 200 ms an eighth would be 25 ms; the threshold stops at 16:
        // a rise to 217 ms is a queue.
        let (_, log) = slow_start(|r| if r < 4 { 200 * MS } else { 217 * MS }, 7);
        assert!(log.iter().any(|l| l.1), "{log:?}");
        let (_, log) = slow_start(|r| if r < 4 { 200 * MS } else { 215 * MS }, 7);
        assert!(!log.iter().any(|l| l.1), "{log:?}");
    }

    #[test]
    fn hystart_returns_to_slow_start_when_the_rtt_falls() {
        // The rise lasts two rounds: CSS, then slow start again (a spurious
        // exit), never ssthresh.
        let (cc, log) = slow_start(|r| if r == 5 || r == 6 { 30 * MS } else { 20 * MS }, 10);
        assert!(log.iter().any(|l| l.1), "{log:?}");
        assert!(!cc.in_css());
        assert_eq!(cc.ssthresh(), usize::MAX);
        assert!(!log.last().unwrap().1);
    }

    #[test]
    fn hystart_needs_enough_samples() {
        // Without RTT samples (no timestamps, one timed segment per round)
        // the delay test never runs: plain slow start.
        let mss = 1000;
        let mut cc = Cubic::new(mss);
        let mut now = Instant::from_secs(1);
        for r in 0..8u64 {
            let n = cc.window() / mss;
            for i in 0..n {
                // Back to back at a bottleneck far faster than the window
                // (no ACK train half a round trip long).
                now = now.plus(Duration::from_micros(if i == 0 { 20_000 } else { 1 }));
                let rtt = (i == 0).then(|| Duration::from_millis(20 + 10 * r));
                cc.on_ack(&ack(now, mss, cc.window() - mss, rtt, mss));
            }
        }
        assert!(!cc.in_css());
        assert_eq!(cc.ssthresh(), usize::MAX);
    }

    /// Slow start as [`slow_start`] runs it, each ACK `i` of round `r`
    /// read with the sample and receive-ring wait `read(r, i)` (us).
    fn slow_start_read(
        read: impl Fn(u32, usize) -> (u64, u64),
        rounds: u32,
    ) -> (Cubic, Vec<(u32, bool, usize)>) {
        let mss = 1000;
        let mut cc = Cubic::new(mss);
        let mut now = Instant::from_secs(1);
        let mut log = Vec::new();
        for r in 0..rounds {
            let n = cc.window() / mss;
            for i in 0..n {
                // Back to back (1 us apart): no ACK train.
                now = now.plus(Duration::from_micros(if i == 0 { 20_000 } else { 1 }));
                let (rtt, wait) = read(r, i);
                let mut a = ack(
                    now,
                    mss,
                    (n - 1 + i) * mss,
                    Some(Duration::from_micros(rtt)),
                    mss,
                );
                a.rx_wait = Duration::from_micros(wait);
                cc.on_ack(&a);
            }
            log.push((r, cc.in_css(), cc.window()));
            if cc.ssthresh() != usize::MAX {
                break;
            }
        }
        (cc, log)
    }

    #[test]
    fn hystart_does_not_take_a_late_read_for_an_rtt_rise() {
        // The path's RTT stays 20 ms; from round 5 on the core reads every
        // ACK late, having fallen behind (or lost its CPU) for 5 ms: each
        // sample reads 25 ms, 5 ms of it in our receive ring. Taken as
        // read, that is a rise over 20 + 4 ms: CSS, then out of slow start
        // after CSS_ROUNDS rounds. Samples that waited over MAX_RX_WAIT do
        // not count: slow start goes on (until the ACK train, 10 ms long
        // in round 11, would end it).
        let (cc, log) = slow_start_read(
            |r, _| {
                if r < 5 {
                    (20 * MS, 0)
                } else {
                    (25 * MS, 5 * MS)
                }
            },
            11,
        );
        assert!(log.iter().all(|l| !l.1), "{log:?}");
        assert_eq!(cc.ssthresh(), usize::MAX);
        // A shorter wait counts, but as the bound it is: 24.5 ms read
        // after 0.8 ms in the ring is at least 23.7, under 24.
        let (cc, log) = slow_start_read(
            |r, _| {
                if r < 5 {
                    (20 * MS, 0)
                } else {
                    (24 * MS + 500, 800)
                }
            },
            11,
        );
        assert!(log.iter().all(|l| !l.1), "{log:?}");
        assert_eq!(cc.ssthresh(), usize::MAX);
    }

    #[test]
    fn hystart_sees_a_real_rise_through_late_reads() {
        // The RTT rises to 30 ms from round 5 (a queue building). Read
        // within 0.5 ms, or with the first 16 ACKs of each round read 8 ms
        // late: the rise shows, CSS, then ssthresh.
        for late in [false, true] {
            let (cc, log) = slow_start_read(
                |r, i| match (r < 5, late && i < 16) {
                    (true, _) => (20 * MS, 0),
                    (false, true) => (38 * MS, 8 * MS),
                    (false, false) => (30 * MS, 500),
                },
                20,
            );
            let entered = log.iter().position(|l| l.1).expect("CSS") as u32;
            assert!((5..=6).contains(&entered), "{log:?}");
            assert_ne!(cc.ssthresh(), usize::MAX, "{log:?}");
        }
    }

    #[test]
    fn ack_train_ends_slow_start_when_the_window_is_half_the_pipe() {
        // 20 ms RTT, a bottleneck of 100 us per segment: the pipe holds 200
        // segments. The delay test never fires (the RTT is flat); the ACK
        // train does, once a round's ACKs last more than (20 + 1) / 2 ms,
        // at a window of 106 segments or more: 10, 20, 40, 80, 160.
        let mss = 1000;
        let rtt = Duration::from_millis(20);
        let mut cc = Cubic::new(mss);
        let mut now = Instant::from_secs(1);
        let mut windows = Vec::new();
        for _ in 0..10 {
            windows.push(cc.window() / mss);
            now = train_round(&mut cc, now, rtt, 100, mss);
            if cc.ssthresh() != usize::MAX {
                break;
            }
        }
        assert_eq!(windows, [10, 20, 40, 80, 160], "{windows:?}");
        assert!(!cc.in_css());
        // Left in the round whose train outlasted 10.5 ms: 106 ACKs in,
        // ssthresh the window then (the rest of the round grew it in
        // avoidance, by little).
        assert!(
            (160 + 105..=160 + 107).contains(&(cc.ssthresh() / mss)),
            "{}",
            cc.ssthresh()
        );
        assert!(
            cc.window() >= cc.ssthresh() && cc.window() <= cc.ssthresh() + cc.ssthresh() / 20 + mss
        );
        // The same path with gaps over 2 ms between ACKs (a slow path, or
        // ACKs thinned out): no train, slow start goes on.
        let mut cc = Cubic::new(mss);
        let mut now = Instant::from_secs(1);
        for _ in 0..4 {
            now = train_round(&mut cc, now, rtt, 2_500, mss);
        }
        assert_eq!(cc.ssthresh(), usize::MAX);
        // Below 16 segments the train is not watched: a window of 10 whose
        // ACKs span 18 ms does not end slow start.
        let mut cc = Cubic::new(mss);
        train_round(&mut cc, Instant::from_secs(1), rtt, 1_800, mss);
        assert_eq!(cc.ssthresh(), usize::MAX);
    }

    #[test]
    fn loss_ends_hystart() {
        let mss = 1000;
        let mut cc = Cubic::new(mss);
        cc.on_fast_retransmit(40_000, mss);
        assert_eq!(cc.ss.hystart.phase, HyPhase::Off);
        let mut cc = NewReno::new(mss);
        cc.on_rto(40_000, mss);
        assert_eq!(cc.ss.hystart.phase, HyPhase::Off);
    }
}
