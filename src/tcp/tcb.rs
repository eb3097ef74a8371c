//! One TCP connection: the state machine of RFC 9293 section 3.10, with
//! RFC 5961 (blind reset, SYN and data injection), RFC 7323 (window scale,
//! timestamps, PAWS), RFC 6298 (RTO), RFC 5681/6582 (congestion control,
//! NewReno), RFC 6675 and 8985 (SACK loss recovery, RACK-TLP) on a
//! per-segment scoreboard (scoreboard.rs), RFC 6937 (PRR), RFC 3708,
//! 3522 and 5682 (undoing spurious reductions: D-SACK, Eifel, F-RTO), RFC
//! 5482 (user timeout), RFC 3168 (ECN: the rules are in `ecn.rs`) and RFC
//! 1122 (delayed ACK, Nagle, keepalive, zero-window probes).
//!
//! Invariants: a segment we send never carries more than the MSS of
//! payload and options together (options are paid out of the segment); a
//! connection with something due (SYN, data, FIN, ACK) that could not be
//! sent has a timer armed to try again; retransmissions and window probes
//! the peer leaves unanswered end by count or by the user timeout, and a
//! connection its application has closed cannot be held open by a peer
//! that answers but never takes its data (orphan limits); answers to
//! segments that fail the checks are rate-limited.
//!
//! A `Tcb` never touches a packet buffer. Input is a parsed header and a
//! payload slice ([`Tcb::process`]); output goes through an emit closure
//! ([`Tcb::dispatch`]) that receives a header and the payload as two slices
//! of the send buffer. Timers are deadlines the table's wheel reads with
//! [`Tcb::next_deadline`].
//!
//! State is grouped as the RFC names it, as Seastar's `tcp.hh` does: the
//! send sequence space (`SendSeq`, `snd`), the receive sequence space
//! (`RecvSeq`, `rcv`), loss recovery (`Recovery`, `rec`), and one
//! deadline per `Timer` in `Timers`; congestion control is the `Cc`
//! enum, held inline.

use super::autotune::{self, RcvSpace};
use super::buffer::{self, Assembler, RecvBuffer, SendBuffer};
use super::cc::{Ack, Cc};
use super::ecn::{EcnMode, EcnState};
use super::info::{ConnTotals, TcpInfo};
use super::rtt::RttEstimator;
use super::rtt_cache::CachedRtt;
use super::scoreboard::{Delivered, Scoreboard};
use super::seq::Seq;
use super::timewait::TimeWait;
use super::{event, CcAlgorithm, CloseReason, Keepalive, TcpConfig};
use crate::stats::{Counters, DropReason};
use crate::time::{Duration, Instant};
use crate::wire::ipv4::ecn::NOT_ECT;
use crate::wire::{TcpFlags, TcpOptions, TcpRepr};
use arrayvec::ArrayVec;
use std::net::SocketAddrV4;

/// RFC 9293 3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// Every state, in declaration order (`State as usize` indexes it).
    pub const ALL: [State; 10] = [
        State::Closed,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }
    fn synchronized(self) -> bool {
        !matches!(self, State::Closed | State::SynSent | State::SynReceived)
    }
    /// States in which data from the peer is accepted.
    fn receives(self) -> bool {
        matches!(
            self,
            State::SynReceived | State::Established | State::FinWait1 | State::FinWait2
        )
    }
}

/// Emit one segment: header, the IP ECN codepoint it goes with (ECT(0)
/// or Not-ECT, see `ecn.rs`), then payload as two slices. False if it
/// could not be sent (no buffer, TX full): the caller stops sending for
/// now.
///
/// A trait for the closure's type, which the dispatch is generic over:
/// the core's emitter is called directly (and inlined where the compiler
/// sees fit), not through a `dyn` pointer per segment. A `dyn FnMut` of
/// the same shape is one too (`?Sized` bounds).
pub trait Emit: FnMut(&TcpRepr, u8, &[u8], &[u8]) -> bool {}
impl<F: FnMut(&TcpRepr, u8, &[u8], &[u8]) -> bool + ?Sized> Emit for F {}

/// [`Emit`] without the ECN codepoint, for callers that build no IP header.
pub trait EmitSegment: FnMut(&TcpRepr, &[u8], &[u8]) -> bool {}
impl<F: FnMut(&TcpRepr, &[u8], &[u8]) -> bool + ?Sized> EmitSegment for F {}

/// Challenge ACKs per connection per second (RFC 5961 section 7).
const CHALLENGE_ACK_LIMIT: u32 = 100;
/// ACKs for segments that failed the checks (out of window, PAWS, RFC 5961
/// challenges): at most one per connection per this interval (Linux
/// `tcp_invalid_ratelimit`), so two ends that disagree about the window,
/// or a forger, cannot make a connection answer every segment.
const INVALID_ACK_INTERVAL: Duration = Duration::from_millis(500);
/// RFC 8985 7.2, WCDelAckT: the longest a receiver may hold the ACK of a
/// lone segment (RFC 1122 4.2.3.2 allows 500 ms; 200 ms is what stacks
/// use, Linux's TCP_DELACK_MAX among them).
const WC_DEL_ACK_T: Duration = Duration::from_millis(200);
fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Our TSval clock: milliseconds.
pub(crate) fn ts_now(now: Instant) -> u32 {
    now.millis() as u32
}

/// What a dispatch sent, for the core's counters (kept here so that the
/// emit closure can borrow the core while the connection counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    pub segments: u64,
    pub bytes: u64,
    pub retransmits: u64,
    pub resets: u64,
    pub probes: u64,
    /// Segments sent with CWR (RFC 3168).
    pub cwr: u64,
}

impl TxStats {
    /// Nothing counted: no segment and no RST went out (every other count
    /// goes up with a segment: bytes, retransmissions, probes and CWRs are
    /// counted only along with `segments`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        let empty = self.segments == 0 && self.resets == 0;
        debug_assert!(!empty || *self == TxStats::default(), "{self:?}");
        empty
    }
}

/// The send sequence space (RFC 9293 3.3.1). `max` is the highest
/// sequence number sent; `nxt` goes back to `una` on an RTO.
#[derive(Clone, Copy, Debug)]
struct SendSeq {
    iss: Seq,
    una: Seq,
    nxt: Seq,
    max: Seq,
    /// SND.WND, in bytes (scaled).
    wnd: usize,
    /// The largest window the peer offered (RFC 5961 5.2, sender SWS).
    max_wnd: usize,
    /// The segment that last updated the window (SND.WL1, SND.WL2).
    wl1: Seq,
    wl2: Seq,
    /// The peer's window scale (RFC 7323).
    shift: u8,
}

/// The receive sequence space (RFC 9293 3.3.1) and what we last told the
/// peer about it.
#[derive(Clone, Copy, Debug)]
struct RecvSeq {
    irs: Seq,
    nxt: Seq,
    /// Our window scale (RFC 7323).
    shift: u8,
    /// The right edge of the window we last advertised.
    adv: Seq,
    /// TS.Recent (RFC 7323 4.3).
    ts_recent: u32,
    /// RCV.NXT in the last ACK we sent (RFC 7323's Last.ACK.sent).
    last_ack_sent: Seq,
    /// The start of the out-of-order range that grew last (reported first).
    last_ooo: Option<Seq>,
    /// A duplicate segment's range, to report once as the first SACK block
    /// of our next ACK (D-SACK, RFC 2883).
    dsack: Option<(Seq, Seq)>,
}

/// Loss detection and recovery: the scoreboard of what is in flight, fast
/// recovery (RFC 5681, 6582, 6675), RACK and the tail loss probe (RFC
/// 8985).
#[derive(Clone, Debug)]
struct Recovery {
    /// Every segment in flight, while any is (see scoreboard.rs); boxed so
    /// that an idle connection pays a pointer.
    board: Option<Box<Scoreboard>>,
    /// The highest sequence number retransmitted in this recovery.
    high_rxt: Seq,
    dup_acks: u32,
    in_recovery: bool,
    /// RFC 6582's RECOVER: SND.MAX when recovery (or an RTO) began.
    recover: Seq,
    /// NewReno: a partial ACK came in this recovery (RFC 6582 3.2 step 5
    /// restarts the retransmission timer on the first only).
    partial_acked: bool,
    /// A probe went out for this flight (one per flight).
    tlp_fired: bool,
    /// RFC 8985 7.4: TLP.end_seq of a probe that resent data, until its
    /// fate is known (a D-SACK: nothing was lost; an ACK beyond it without
    /// one: the probe repaired a loss).
    tlp_end: Option<Seq>,
    /// RFC 8985 6.2: RACK.min_RTT (None before the first sample).
    min_rtt: Option<Duration>,
    /// RACK.reordering_seen: a segment never retransmitted was delivered
    /// below one delivered before it.
    reordering_seen: bool,
    /// RACK.reo_wnd_mult and RACK.reo_wnd_persist (RFC 8985 6.2 step 4):
    /// D-SACKs widen the reordering window for 16 recoveries.
    reo_wnd_mult: u8,
    reo_wnd_persist: u8,
    /// RACK.dsack_round: SND.MAX when the window last grew on a D-SACK
    /// (once per round trip).
    dsack_round: Option<Seq>,
    /// PRR (RFC 6937) in SACK recovery: bytes delivered to the peer and
    /// bytes sent since recovery began, the flight when it began
    /// (RecoverFS), and what this ACK lets go (sndcnt, less what went).
    prr_delivered: u32,
    prr_out: u32,
    recover_fs: u32,
    prr_quota: u32,
    /// The last reduction, while it may still prove spurious.
    undo: Option<Undo>,
    /// F-RTO's step after a timeout (RFC 5682).
    frto: Frto,
    /// New segments F-RTO's step 2b may still send, whatever cwnd says
    /// (they go instead of retransmissions).
    frto_new: u8,
}

/// F-RTO (RFC 5682: section 3's SACK-enhanced algorithm, section 2's
/// without SACK), after a first timeout outside fast recovery: the ACKs
/// that follow the retransmission of the first segment tell whether the
/// flight was lost or only delayed. Without timestamps it is the only way
/// to tell; with them, Eifel detection (RFC 3522) judges the first ACK
/// after the timeout, before F-RTO's second, and its verdict ends F-RTO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frto {
    Off,
    /// Step 2: waiting for the ACK of the retransmitted segment.
    /// `recovery_point` is SND.MAX at the timeout (RFC 5682's
    /// RecoveryPoint).
    FirstAck {
        recovery_point: Seq,
    },
    /// Step 3: new data went out instead of retransmissions; the next
    /// ACK decides.
    SecondAck {
        recovery_point: Seq,
    },
}

/// A congestion window reduction (fast recovery or a timeout) that may be
/// undone: what the window was, and what would show the reduction was
/// spurious (RFC 3708: every retransmission of the episode D-SACKed; RFC
/// 3522: the first ACK after a retransmission echoes an older TSval).
#[derive(Clone, Copy, Debug)]
struct Undo {
    cwnd: u32,
    ssthresh: u32,
    /// The episode's data: SND.UNA to SND.MAX when it began.
    from: Seq,
    to: Seq,
    /// Its retransmissions not yet reported as duplicates.
    retrans: u32,
    /// The TSval of its first retransmission, until the Eifel check.
    stamp: Option<u32>,
    /// It began with a timeout.
    rto: bool,
}

/// What an ACK's SACK blocks said ([`Tcb::take_sack_blocks`]).
#[derive(Clone, Copy, Debug)]
struct SackInfo {
    /// Some block reported data above SND.UNA not SACKed before.
    new_data: bool,
    /// The first block was a D-SACK (RFC 2883 4): its range.
    dsack: Option<(Seq, Seq)>,
}

/// A connection's timers. Each is a deadline or nothing; the table's wheel
/// files the earliest ([`Tcb::next_deadline`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// RFC 6298 retransmission timer (also the SYN and SYN-ACK's).
    Retransmit,
    /// Tail loss probe (RFC 8985 7): a last segment lost draws no
    /// duplicate ACKs; a probe after two round trips makes the peer report.
    TailLossProbe,
    /// Delayed ACK (RFC 1122 4.2.3.2), and the retry of an ACK that could
    /// not be sent.
    DelayedAck,
    /// RACK's reordering timer (RFC 8985 6.3): a segment sent before one
    /// delivered is deemed lost once the reordering window has passed.
    Reorder,
    /// Zero-window probes and the small-window override (RFC 9293 3.8.6.1).
    Persist,
    /// Keepalive (RFC 1122 4.2.3.6).
    Keepalive,
    /// TIME_WAIT's 2*MSL, or an orphaned FIN_WAIT_2's timeout.
    Close,
}

const TIMERS: usize = Timer::Close as usize + 1;

/// The deadlines in microseconds, u64::MAX for none: the earliest is a
/// plain minimum over the array (`Tcb::next_deadline`).
#[derive(Clone, Copy, Debug)]
struct Timers {
    at: [u64; TIMERS],
    /// The earliest deadline set since the table last filed the
    /// connection ([`Tcb::take_earliest_set`]): when it is no earlier
    /// than the deadline filed, no deadline moved earlier and the table's
    /// put need not take the minimum (make pathcost: three puts per
    /// segment and its echo).
    earliest_set: u64,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            at: [NO_TIMER; TIMERS],
            earliest_set: NO_TIMER,
        }
    }
}

const NO_TIMER: u64 = u64::MAX;

impl Timers {
    /// The earliest deadline of any timer.
    #[inline]
    fn next(&self) -> Option<Instant> {
        let min = self.at.iter().fold(NO_TIMER, |m, &d| m.min(d));
        (min != NO_TIMER).then_some(Instant(min))
    }
    fn clear_all(&mut self) {
        self.at = [NO_TIMER; TIMERS];
    }
    #[inline]
    fn get(&self, t: Timer) -> Option<Instant> {
        let d = self.at[t as usize];
        (d != NO_TIMER).then_some(Instant(d))
    }
    /// A deadline at the end of time is no deadline (none is ever that
    /// far: `Instant::plus` of any timeout here stays far below).
    #[inline]
    fn set(&mut self, t: Timer, d: Option<Instant>) {
        let d = d.map_or(NO_TIMER, |d| d.0);
        self.at[t as usize] = d;
        if d < self.earliest_set {
            self.earliest_set = d;
        }
    }
    /// Set `t` to `d` unless it is set already.
    fn get_or_insert(&mut self, t: Timer, d: Instant) {
        if self.at[t as usize] == NO_TIMER {
            self.set(t, Some(d));
        }
    }
}

/// Header prediction is on ([`Tcb::process_predicted`]); a test turns it
/// off on its thread to compare against the general path.
#[cfg(not(test))]
#[inline(always)]
fn predict_enabled() -> bool {
    true
}

#[cfg(test)]
thread_local! {
    pub(super) static PREDICT: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

#[cfg(test)]
thread_local! {
    /// Segments the prediction took on this thread.
    pub(super) static PREDICTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// Drained flights whose board `Tcb::flight_drained` kept, on this thread.
    pub(super) static BOARDS_KEPT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn predict_enabled() -> bool {
    PREDICT.with(std::cell::Cell::get)
}

/// Whether [`Tcb::echo_readable`] moves chunks; a test turns it off on
/// its thread to compare against recv and send.
#[cfg(not(test))]
#[inline(always)]
fn echo_move_enabled() -> bool {
    true
}

#[cfg(test)]
thread_local! {
    pub(crate) static ECHO_MOVE: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

#[cfg(test)]
thread_local! {
    /// Echoes [`Tcb::echo_readable`] moved on this thread.
    pub(crate) static ECHO_MOVED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn echo_move_enabled() -> bool {
    ECHO_MOVE.with(std::cell::Cell::get)
}

/// Send prediction is on ([`Tcb::predicted_send`]); a test turns it off
/// on its thread to compare against the general path.
#[cfg(not(test))]
#[inline(always)]
fn send_predict_enabled() -> bool {
    true
}

#[cfg(test)]
thread_local! {
    pub(crate) static SEND_PREDICT: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

#[cfg(test)]
thread_local! {
    /// Dispatches the send prediction took on this thread.
    pub(crate) static SEND_PREDICTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn send_predict_enabled() -> bool {
    SEND_PREDICT.with(std::cell::Cell::get)
}

/// What the next dispatch owes regardless of the windows: an ACK, a
/// probe, a repair, a FIN, a RST. One bit each in one byte, so that the
/// check after every segment ([`Tcb::nothing_due`]) and the send
/// prediction test them all at once (make pathcost: a test and a branch
/// per flag before).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Due(u8);

impl Due {
    /// Send an ACK now (not delayed).
    const ACK_NOW: u8 = 1 << 0;
    /// Send a window probe or a keepalive probe.
    const PROBE_NOW: u8 = 1 << 1;
    /// The application shut down its sending side: FIN after the data.
    /// It stays set once the FIN is sent.
    const FIN_QUEUED: u8 = 1 << 2;
    /// Send the tail loss probe (RFC 8985 7.3).
    const PROBE_TAIL: u8 = 1 << 3;
    /// Retransmit the next hole (NewReno's partial ACK, an RTO).
    const RETRANSMIT_UNA: u8 = 1 << 4;
    /// `pending_rst` holds a RST.
    const RST: u8 = 1 << 5;

    /// Whether any of `bits` is set.
    #[inline(always)]
    fn has(self, bits: u8) -> bool {
        self.0 & bits != 0
    }
    #[inline(always)]
    fn set(&mut self, bit: u8) {
        self.0 |= bit;
    }
    #[inline(always)]
    fn clear(&mut self, bit: u8) {
        self.0 &= !bit;
    }
    /// Whether `bit` was set; clear it.
    #[inline(always)]
    fn take(&mut self, bit: u8) -> bool {
        let was = self.has(bit);
        self.clear(bit);
        was
    }
}

pub struct Tcb {
    pub state: State,
    /// The core will dispatch it once the application's callback returns.
    pub dispatch_queued: bool,
    pub tx_stats: TxStats,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// The application that owns it (index on the core).
    pub app: usize,
    /// Opened by a listener (SYN_RECEIVED returns to LISTEN: it is dropped).
    pub passive: bool,
    /// The application let go of it (close); it lives on to finish.
    pub app_closed: bool,
    cfg: TcpConfig,

    /// Send sequence space (RFC 9293 3.3.1).
    snd: SendSeq,
    /// Data bytes per segment we send (the peer's MSS, less options).
    pub mss: usize,
    /// Receive sequence space and what we last told the peer.
    rcv: RecvSeq,
    ts_enabled: bool,
    /// SACK negotiated (RFC 2018): we report holes, and use the peer's
    /// reports to retransmit more than one hole per round trip.
    sack_ok: bool,
    /// Loss detection and recovery.
    rec: Recovery,
    /// Explicit Congestion Notification (RFC 3168).
    ecn: EcnState,
    /// Every deadline this connection has, one per [`Timer`].
    timers: Timers,

    tx: SendBuffer,
    rx: RecvBuffer,
    /// Receive-buffer autotuning's measurement (`autotune`).
    rcv_space: RcvSpace,
    /// The sequence number our FIN occupies, once sent.
    fin_seq: Option<Seq>,
    fin_acked: bool,
    /// A FIN that arrived ahead of missing data.
    fin_pending: Option<Seq>,
    fin_received: bool,

    rtt: RttEstimator,
    /// Karn: the segment being timed (without timestamps).
    rtt_timed: Option<(Seq, Instant)>,
    cc: Cc,
    /// How long the segment being processed may have waited in the
    /// receive ring ([`Tcb::set_rx_wait`]), for the controller's RTT test.
    rx_wait: Duration,

    unacked_segments: u32,
    /// Persist timer expirations since the window last opened or data was
    /// last acknowledged (it doubles the interval).
    persist_backoff: u32,
    /// Window probes unanswered in a row (Linux `icsk_probes_out`): any
    /// acceptable ACK resets it.
    persist_probes: u32,
    /// Since when data (or our SYN) has waited for an acknowledgment or a
    /// window without progress: the RFC 5482 user timeout runs from here.
    stalled_since: Option<Instant>,
    keepalive_sent: u32,
    /// The RST to send on the next dispatch ([`Due::RST`] says whether
    /// there is one).
    pending_rst: Option<TcpRepr>,
    /// What the next dispatch owes whatever the windows say, one bit each
    /// ([`Due`]).
    due: Due,
    challenge_second: u64,
    challenge_count: u32,
    /// When we last answered a segment that failed the checks.
    last_invalid_ack: Option<Instant>,
    want_writable: bool,
    events: u8,
    pub close_reason: Option<CloseReason>,
    /// The wheel tick this connection is filed under (see timer.rs).
    pub timer_tick: Option<u64>,
    /// The deadline `timer_tick` was filed for: a later one needs no
    /// look at the wheel (it rounds to that tick or a later one).
    pub timer_filed: Instant,
    /// When the connection was created, for its age.
    created: Instant,
    /// Its own running counts (bytes and segments each way).
    totals: ConnTotals,
}

impl Tcb {
    fn blank(
        cfg: &TcpConfig,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        app: usize,
    ) -> Tcb {
        let iss = Seq(iss);
        let mss = cfg.mss.min(536);
        Tcb {
            state: State::Closed,
            dispatch_queued: false,
            tx_stats: TxStats::default(),
            local,
            remote,
            app,
            passive: false,
            app_closed: false,
            cfg: *cfg,
            snd: SendSeq {
                iss,
                una: iss,
                nxt: iss,
                max: iss,
                wnd: 0,
                max_wnd: 0,
                wl1: Seq(0),
                wl2: iss,
                shift: 0,
            },
            mss,
            rcv: RecvSeq {
                irs: Seq(0),
                nxt: Seq(0),
                shift: 0,
                adv: Seq(0),
                ts_recent: 0,
                last_ack_sent: Seq(0),
                last_ooo: None,
                dsack: None,
            },
            ts_enabled: false,
            sack_ok: false,
            rec: Recovery {
                board: None,
                high_rxt: iss,
                dup_acks: 0,
                in_recovery: false,
                partial_acked: false,
                recover: iss,
                tlp_fired: false,
                tlp_end: None,
                min_rtt: None,
                reordering_seen: false,
                reo_wnd_mult: 1,
                reo_wnd_persist: 0,
                dsack_round: None,
                prr_delivered: 0,
                prr_out: 0,
                recover_fs: 0,
                prr_quota: 0,
                undo: None,
                frto: Frto::Off,
                frto_new: 0,
            },
            ecn: EcnState::new(cfg.ecn),
            timers: Timers::default(),
            tx: SendBuffer::new(cfg.tx_buffer),
            rx: RecvBuffer::new(cfg.rx_buffer),
            rcv_space: RcvSpace::default(),
            fin_seq: None,
            fin_acked: false,
            fin_pending: None,
            fin_received: false,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_timed: None,
            cc: cfg.new_cc(mss),
            rx_wait: Duration::from_micros(0),
            unacked_segments: 0,
            persist_backoff: 0,
            persist_probes: 0,
            stalled_since: None,
            keepalive_sent: 0,
            pending_rst: None,
            due: Due::default(),
            challenge_second: 0,
            challenge_count: 0,
            last_invalid_ack: None,
            want_writable: false,
            events: 0,
            close_reason: None,
            timer_tick: None,
            timer_filed: Instant::ZERO,
            created: now,
            totals: ConnTotals::default(),
        }
    }

    /// Our receive window's scale: the smallest shift that lets the buffer
    /// be advertised (RFC 7323 2.2) at the most autotuning may grow it to
    /// (the scale is fixed in the SYN).
    pub(crate) fn wanted_shift(cfg: &TcpConfig) -> u8 {
        let most = cfg.rx_buffer.max(cfg.rx_buffer_max);
        let mut shift = 0;
        while shift < 14 && (most >> shift) > 65535 {
            shift += 1;
        }
        shift
    }

    /// Active open (RFC 9293 3.10.1): SYN_SENT; the SYN goes out on the
    /// next dispatch.
    pub fn connect(
        cfg: &TcpConfig,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        app: usize,
    ) -> Tcb {
        let mut t = Tcb::blank(cfg, now, local, remote, iss, app);
        t.state = State::SynSent;
        t.rcv.shift = if cfg.window_scaling {
            Self::wanted_shift(cfg)
        } else {
            0
        };
        t
    }

    /// Passive open: a SYN arrived at a listener (RFC 9293 3.10.7.2, LISTEN,
    /// third check). The SYN-ACK goes out on the next dispatch.
    pub fn accept(
        cfg: &TcpConfig,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        app: usize,
        syn: &TcpRepr,
    ) -> Tcb {
        let mut t = Tcb::blank(cfg, now, local, remote, iss, app);
        t.state = State::SynReceived;
        t.passive = true;
        // The SYN it is built from.
        t.totals.segs_in = 1;
        t.take_syn_options(syn);
        t.ecn.accept_syn(syn.flags);
        t.rcv.irs = Seq(syn.seq_number);
        t.rcv.nxt = t.rcv.irs + 1;
        t.rcv.adv = t.rcv.nxt;
        t.snd.wnd = usize::from(syn.window_len); // never scaled in a SYN
        t.snd.max_wnd = t.snd.wnd;
        t.snd.wl1 = t.rcv.irs;
        t.rcv.last_ack_sent = t.rcv.nxt;
        if let (true, Some((val, _))) = (t.ts_enabled, syn.options.timestamps) {
            t.rcv.ts_recent = val;
        }
        t
    }

    /// Options of the peer's SYN: MSS (RFC 9293 3.7.1, 536 if absent),
    /// window scale and timestamps only if both sides offer them.
    fn take_syn_options(&mut self, syn: &TcpRepr) {
        let peer_mss = syn.options.mss.map_or(536, usize::from).max(64);
        match (self.cfg.window_scaling, syn.options.window_scale) {
            (true, Some(shift)) => {
                self.snd.shift = shift.min(14);
                self.rcv.shift = Self::wanted_shift(&self.cfg);
            }
            _ => {
                self.snd.shift = 0;
                self.rcv.shift = 0;
            }
        }
        self.ts_enabled = self.cfg.timestamps && syn.options.timestamps.is_some();
        self.sack_ok = self.cfg.sack && syn.options.sack_permitted;
        let opt = if self.ts_enabled { 12 } else { 0 };
        self.mss = peer_mss.min(self.cfg.mss) - opt;
        // The algorithm chosen for this connection, sized for its MSS.
        self.cc = Cc::new(self.cc.algorithm(), self.mss);
    }

    // ---- the application's side ----------------------------------------

    /// Queue `data` for sending; returns how much was taken (backpressure:
    /// less than all when the send buffer is full).
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> usize {
        if self.due.has(Due::FIN_QUEUED)
            || !matches!(
                self.state,
                State::Established | State::CloseWait | State::SynSent | State::SynReceived
            )
        {
            return 0;
        }
        let n = self.tx.write(data);
        if n < data.len() {
            self.want_writable = true;
        }
        n
    }

    /// The sending side is open (not shut down, not closed).
    pub fn can_send(&self) -> bool {
        !self.due.has(Due::FIN_QUEUED)
            && matches!(
                self.state,
                State::Established | State::CloseWait | State::SynSent | State::SynReceived
            )
    }

    /// Free room in the send buffer.
    pub fn send_space(&self) -> usize {
        if self.due.has(Due::FIN_QUEUED) {
            0
        } else {
            self.tx.free()
        }
    }

    /// Read in-order data. Opening the window may warrant an update.
    #[inline]
    pub fn recv(&mut self, out: &mut [u8]) -> usize {
        let before = self.rx.window();
        let n = self.rx.read(out);
        if n > 0 {
            self.window_opened(before);
        }
        n
    }

    /// Send what is readable, as [`Tcb::recv`] of all of it and
    /// [`Tcb::send`] of what was read would, when that can be done without
    /// a copy: the bytes lie in one chunk of the receive buffer and the
    /// send buffer is empty and the same size, so the chunk moves from one
    /// to the other ([`RecvBuffer::move_into`]). Returns the bytes moved,
    /// or None having changed nothing (then recv and send do it). Same
    /// state and the same segments after either way: a test compares them
    /// over seeded echo runs.
    #[inline]
    pub fn echo_readable(&mut self) -> Option<usize> {
        if !self.can_send() || !self.rx.movable_into(&self.tx) || !echo_move_enabled() {
            return None;
        }
        #[cfg(test)]
        ECHO_MOVED.with(|n| n.set(n.get() + 1));
        let before = self.rx.window();
        let n = self.rx.move_into(&mut self.tx);
        // `recv`'s step; `send` took everything (the buffer had room), so
        // it would not have set `want_writable`.
        self.window_opened(before);
        Some(n)
    }

    /// Readable bytes.
    pub fn recv_len(&self) -> usize {
        self.rx.len()
    }

    /// Receiver-side silly window avoidance (RFC 9293 3.8.6.2.2): announce
    /// a reopened window once it has grown by min(buffer/2, MSS) past what
    /// the peer knows, and only if the peer may be stalled for it (it knows
    /// of less than two segments' room); otherwise the ACKs its next
    /// segments draw carry the new window anyway.
    #[inline]
    fn window_opened(&mut self, before: usize) {
        let now_edge = self.rcv.nxt + self.rx.window();
        let known = if self.rcv.adv > self.rcv.nxt {
            self.rcv.adv.since(self.rcv.nxt).min(before)
        } else {
            0
        };
        let grown = now_edge.since(self.rcv.nxt).saturating_sub(known);
        if known < 2 * self.cfg.mss
            && grown >= (self.rx.capacity() / 2).min(self.cfg.mss)
            && self.state.receives()
        {
            self.due.set(Due::ACK_NOW);
        }
    }

    /// Shut down the sending side: a FIN follows the queued data. Before
    /// the handshake completes the FIN waits for it (as Linux: a half close
    /// is not an abort, and the application still reads what comes).
    pub fn shutdown(&mut self) {
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {
                self.due.set(Due::FIN_QUEUED)
            }
            _ => {}
        }
    }

    /// The application lets go: shutdown, and from now on data from the
    /// peer is answered with RST (RFC 9293 3.10.4; RFC 2525 2.17).
    pub fn close(&mut self, now: Instant) {
        self.app_closed = true;
        if !self.rx.is_empty() {
            // Unread data: reset rather than pretend it was delivered.
            return self.abort();
        }
        if self.state == State::SynSent {
            // RFC 9293 3.10.4: CLOSE in SYN-SENT deletes the TCB.
            return self.finish(CloseReason::Normal);
        }
        self.shutdown();
        if self.state == State::FinWait2 {
            self.timers
                .set(Timer::Close, Some(now.plus(self.cfg.fin_wait2_timeout)));
        }
    }

    /// Reset the connection (RFC 9293 3.10.5, ABORT).
    pub fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            self.queue_rst(self.header(self.pure_ack_seq(), TcpFlags::RST | TcpFlags::ACK));
        }
        self.finish(CloseReason::Normal);
    }

    /// Events raised since the last call.
    pub fn take_events(&mut self) -> u8 {
        std::mem::take(&mut self.events)
    }

    /// Nothing left to do: the table may free it (after a last dispatch
    /// for a pending RST).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub fn snd_una(&self) -> Seq {
        self.snd.una
    }
    pub fn rcv_nxt(&self) -> Seq {
        self.rcv.nxt
    }
    pub fn unsent_or_unacked(&self) -> usize {
        self.tx.len()
    }
    /// Whether the connection holds a scoreboard (empty or not).
    #[cfg(test)]
    pub(super) fn holds_scoreboard(&self) -> bool {
        self.rec.board.is_some()
    }
    /// The scoreboard's invariants against SND.UNA and SND.MAX (the
    /// fuzzing oracle's `check_core`).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn check_scoreboard(&self) -> Result<(), String> {
        match self.rec.board.as_deref() {
            Some(board) => board.check(self.snd.una, self.snd.max),
            None => Ok(()),
        }
    }
    /// [`Due`]'s one bit kept beside its data: [`Due::RST`] set exactly
    /// when a RST is queued.
    #[cfg(test)]
    pub fn check_due(&self) -> Result<(), String> {
        if self.due.has(Due::RST) != self.pending_rst.is_some() {
            return Err(format!(
                "due {:#04x} but pending_rst {:?}",
                self.due.0, self.pending_rst
            ));
        }
        Ok(())
    }
    pub fn ssthresh(&self) -> usize {
        self.cc.ssthresh()
    }
    pub fn cwnd(&self) -> usize {
        self.cc.window()
    }
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }
    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }
    /// SRTT and RTTVAR, once measured: what a closing connection leaves in
    /// its core's `RttCache`.
    pub fn rtt_estimate(&self) -> Option<CachedRtt> {
        Some(CachedRtt {
            srtt: self.rtt.srtt()?,
            rttvar: self.rtt.rttvar(),
        })
    }
    /// Time the handshake from an estimate measured to the same peer
    /// before (RFC 9040 5): called before the SYN goes out.
    pub fn start_rtt_from(&mut self, est: CachedRtt) {
        self.rtt.start_from(est.srtt, est.rttvar);
    }

    fn finish(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.close_reason.get_or_insert(reason);
            self.events |= event::CLOSED;
        }
        self.timers.clear_all();
    }

    /// Bytes of buffer memory this connection holds now: none unless data
    /// waits to be acknowledged or read (the buffers give chunks back to
    /// the core's pool as they drain).
    pub fn buffer_bytes(&self) -> usize {
        self.tx.memory() + self.rx.memory()
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timers.set(Timer::Retransmit, None);
        self.timers.set(Timer::Persist, None);
        self.timers.set(Timer::Keepalive, None);
        self.timers
            .set(Timer::Close, Some(now.plus(self.cfg.time_wait)));
    }

    /// The compact record that stands for this connection once it is in
    /// TIME-WAIT (see timewait.rs); None in any other state.
    pub fn time_wait_record(&self, now: Instant) -> Option<TimeWait> {
        (self.state == State::TimeWait).then(|| {
            TimeWait::new(
                self.snd.nxt,
                self.rcv.nxt,
                self.ts_enabled.then_some(self.rcv.ts_recent),
                self.timers
                    .get(Timer::Close)
                    .unwrap_or(now.plus(self.cfg.time_wait)),
                now,
            )
        })
    }

    // ---- input ---------------------------------------------------------

    /// The segments processed next may have waited up to `wait` in the
    /// receive ring before they were read at `now` (the core's time since
    /// it last saw the ring empty): their RTT samples are that uncertain.
    pub fn set_rx_wait(&mut self, wait: Duration) {
        self.rx_wait = wait;
    }

    /// Process a segment for this connection (RFC 9293 3.10.7.3 and
    /// 3.10.7.4). `payload` is the segment's data.
    pub fn process(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8], c: &mut Counters) {
        self.process_with_ecn(now, seg, NOT_ECT, payload, c)
    }

    /// [`Tcb::process`] for a segment whose IP header's ECN field was
    /// `ip_ecn` (a CE mark is echoed, RFC 3168 6.1.3).
    pub fn process_with_ecn(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        ip_ecn: u8,
        payload: &[u8],
        c: &mut Counters,
    ) {
        self.totals.segs_in += 1;
        // The application found the send buffer full (the ACK may
        // announce room and clear this).
        let send_blocked = self.want_writable;
        if !self.process_predicted(now, seg, ip_ecn, payload, c) {
            match self.state {
                State::Closed => {}
                State::SynSent => self.process_syn_sent(now, seg, payload, c),
                _ => self.process_synchronized(now, seg, ip_ecn, payload, c),
            }
        }
        if self.state.synchronized() {
            self.tune_rx_buffer(now, seg, payload.len(), c);
            if send_blocked {
                self.tune_tx_buffer(c);
            }
        }
    }

    /// Header prediction (Van Jacobson's, Linux `tcp_rcv_established`'s
    /// fast path): in ESTABLISHED, a segment with ACK (and maybe PSH) and
    /// no other flag, at RCV.NXT, whose data fits the window, that
    /// acknowledges nothing before SND.UNA or past SND.MAX, is no possible
    /// duplicate ACK, carries no SACK block or CE mark, and passes PAWS:
    /// every check of [`Tcb::process_synchronized`] passes and nothing is
    /// trimmed, so its steps are done without them (the same functions, in
    /// the same order). Anything else returns false having changed
    /// nothing, for the general path. A test runs seeded simulations with
    /// and without it and compares every segment.
    #[inline]
    fn process_predicted(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        ip_ecn: u8,
        payload: &[u8],
        c: &mut Counters,
    ) -> bool {
        let (seq, ack) = (Seq(seg.seq_number), Seq(seg.ack_number));
        let ts = if self.ts_enabled {
            // PAWS (RFC 7323 5.3) passes; no timestamp: the general path.
            match seg.options.timestamps {
                Some((val, _)) if (val.wrapping_sub(self.rcv.ts_recent) as i32) >= 0 => Some(val),
                _ => return false,
            }
        } else {
            None
        };
        if self.state != State::Established
            || seg.flags.0 & !TcpFlags::PSH.0 != TcpFlags::ACK.0
            || seq != self.rcv.nxt
            || ack < self.snd.una
            || ack > self.snd.max
            // A possible duplicate ACK (RFC 5681 2, RFC 6675 2).
            || (ack == self.snd.una && payload.is_empty() && self.snd.max != self.snd.una)
            || (self.sack_ok && seg.options.sack_blocks[0].is_some())
            // RFC 3168 6.1.3: a CE mark changes what we echo.
            || (self.ecn.ok && ip_ecn == crate::wire::ipv4::ecn::CE)
            || (self.app_closed && !payload.is_empty())
            || payload.len() > self.rcv_window()
            || !predict_enabled()
        {
            return false;
        }
        #[cfg(test)]
        PREDICTED.with(|n| n.set(n.get() + 1));
        // Acceptable (3.10.7.4, first check): at RCV.NXT, inside the window.
        self.peer_alive(now);
        // Fifth, the ACK field (process_ack without SACK blocks, recovery
        // or duplicates).
        let window = usize::from(seg.window_len) << self.snd.shift;
        self.persist_probes = 0;
        let una_before = self.snd.una;
        let sacked_before = self.sacked_bytes();
        let mut delivered = Delivered::default();
        if ack > self.snd.una {
            self.ack_advanced(now, seg, ack, &mut delivered, c);
        }
        self.detect_loss_after_ack(now, delivered, una_before, sacked_before, c);
        self.update_window(seq, ack, window, una_before);
        if self.rec.frto != Frto::Off {
            self.frto_on_ack(ack > una_before, false, false, delivered.original, c);
        }
        // RFC 7323 4.3: the newest timestamp at the left edge.
        if let Some(val) = ts {
            if seq <= self.rcv.last_ack_sent {
                self.rcv.ts_recent = val;
            }
        }
        // Seventh, the segment text.
        if !payload.is_empty() {
            self.process_text(now, seq, payload, false, c);
        }
        true
    }

    /// The peer is alive: an acceptable segment arrived (it passed the
    /// sequence check, RFC 9293 3.10.7.4, and PAWS), or the handshake
    /// completed. Restart the keepalive idle time and its probe count
    /// (RFC 1122 4.2.3.6). A segment that fails the checks proves nothing
    /// (anyone can send one) and restarts nothing.
    fn peer_alive(&mut self, now: Instant) {
        self.keepalive_sent = 0;
        let keepalive = match self.cfg.keepalive {
            Some(ka) if self.state.synchronized() && self.state != State::TimeWait => {
                Some(now.plus(ka.idle))
            }
            _ => None,
        };
        self.timers.set(Timer::Keepalive, keepalive);
    }

    fn process_syn_sent(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8], c: &mut Counters) {
        let flags = seg.flags;
        let ack = Seq(seg.ack_number);
        // First, check the ACK bit.
        if flags.ack() && (ack <= self.snd.iss || ack > self.snd.max) {
            if !flags.rst() {
                self.queue_rst(self.bare_rst(ack));
                c.tcp_bad_ack += 1;
            }
            return;
        }
        // Second, the RST bit: only with an acceptable ACK.
        if flags.rst() {
            if flags.ack() {
                c.tcp_rst_received += 1;
                self.finish(CloseReason::Refused);
            }
            return;
        }
        // Fourth, the SYN bit.
        if !flags.syn() {
            return;
        }
        self.take_syn_options(seg);
        self.ecn.syn_sent_reply(flags);
        self.rcv.irs = Seq(seg.seq_number);
        self.rcv.nxt = self.rcv.irs + 1;
        self.rcv.adv = self.rcv.nxt;
        self.rcv.last_ack_sent = self.rcv.nxt;
        if let (true, Some((val, _))) = (self.ts_enabled, seg.options.timestamps) {
            self.rcv.ts_recent = val;
        }
        if flags.ack() {
            self.snd.una = ack;
            self.snd.nxt = self.snd.nxt.max(ack);
            self.timers.set(Timer::Retransmit, None);
            self.sample_rtt(now, seg, ack, &Delivered::default());
            self.rtt.handshake_done();
        }
        if self.snd.una > self.snd.iss {
            self.state = State::Established;
            // RFC 7323 2.2: the window of a SYN (SYN-ACK too) is never
            // scaled.
            self.snd.wnd = usize::from(seg.window_len);
            self.snd.max_wnd = self.snd.wnd;
            self.snd.wl1 = self.rcv.irs;
            self.snd.wl2 = ack;
            self.events |= event::CONNECTED;
            self.due.set(Due::ACK_NOW);
            c.tcp_connected += 1;
            c.tcp_ecn_negotiated += u64::from(self.ecn.ok);
            self.stalled_since = None;
            self.peer_alive(now);
            // Data or FIN on the SYN-ACK.
            if !payload.is_empty() || seg.flags.fin() {
                self.process_text(now, Seq(seg.seq_number) + 1, payload, seg.flags.fin(), c);
            }
        } else {
            // Simultaneous open: SYN_RECEIVED, our SYN goes out again with
            // an ACK.
            self.state = State::SynReceived;
            self.snd.wnd = usize::from(seg.window_len);
            self.snd.wl1 = self.rcv.irs;
            self.snd.nxt = self.snd.iss;
        }
    }

    fn process_synchronized(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        ip_ecn: u8,
        payload: &[u8],
        c: &mut Counters,
    ) {
        let flags = seg.flags;
        let mut seq = Seq(seg.seq_number);
        let seg_len = payload.len() + flags.syn() as usize + flags.fin() as usize;

        // A retransmitted SYN in SYN_RECEIVED: send the SYN-ACK again.
        if self.state == State::SynReceived
            && flags.syn()
            && !flags.ack()
            && !flags.rst()
            && seq == self.rcv.irs
        {
            self.snd.nxt = self.snd.iss;
            return;
        }

        // Simultaneous open (RFC 9293 3.5, figure 8): after its SYN, the
        // peer's SYN-ACK of our SYN. By the letter of 3.10.7.4 it is old
        // (its SYN is below RCV.NXT) and only draws an ACK; as Linux
        // (`tcp_validate_incoming`), take its ACK now and answer it, so
        // that each side completes on the other's SYN-ACK.
        if self.state == State::SynReceived
            && !self.passive
            && flags.syn()
            && flags.ack()
            && !flags.rst()
            && seq == self.rcv.irs
        {
            let ack = Seq(seg.ack_number);
            if self.snd.una < ack && ack <= self.snd.max {
                // RFC 7323 4.3: its SEG.SEQ is at the left edge; our ACK
                // echoes its TSval.
                if let (true, Some((val, _))) = (self.ts_enabled, seg.options.timestamps) {
                    if (val.wrapping_sub(self.rcv.ts_recent) as i32) >= 0 {
                        self.rcv.ts_recent = val;
                    }
                }
                self.establish(now, seg, seq, ack, c);
                self.due.set(Due::ACK_NOW);
                if !payload.is_empty() || flags.fin() {
                    self.process_text(now, seq + 1, payload, flags.fin(), c);
                }
            } else {
                self.queue_rst(self.bare_rst(ack));
                c.tcp_bad_ack += 1;
            }
            return;
        }

        // RFC 7323 5.3: PAWS.
        if self.ts_enabled && !flags.rst() {
            if let Some((val, _)) = seg.options.timestamps {
                if (val.wrapping_sub(self.rcv.ts_recent) as i32) < 0 {
                    c.drop(DropReason::TcpOutOfWindow);
                    c.tcp_paws_rejected += 1;
                    self.ack_invalid(now, seg_len, flags.syn(), c);
                    return;
                }
            }
        }

        // First, check the sequence number (3.10.7.4, the table).
        let wnd = self.rcv_window();
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv.nxt,
            (0, _) => self.in_window(seq, wnd),
            (_, 0) => seq == self.rcv.nxt, // only its ACK and RST count
            (_, _) => self.in_window(seq, wnd) || self.in_window(seq + (seg_len - 1), wnd),
        };
        // Not acceptable, its text and FIN are not taken, but its ACK may
        // be ("special allowance should be made to accept valid ACKs"):
        // as Linux (`tcp_sequence`, then `tcp_ack` before the data is
        // dropped), if it starts no later than the window's right edge and
        // ends no earlier than the RCV.NXT our last ACK announced. A peer
        // that filled our window sends its ACKs from there: its pure ACKs
        // carry its SND.NXT, our right edge (Linux `tcp_acceptable_seq`),
        // and a retransmission (a tail loss probe) repeats data we hold.
        // Were they dropped whole, our data would wait for a timeout while
        // theirs waits for our application to read, which waits on a send
        // buffer only their ACKs free. RST and SYN keep RFC 5961's checks.
        let ack_only = !acceptable
            && flags.ack()
            && !flags.rst()
            && !flags.syn()
            && seq <= self.rcv.nxt + wnd
            && seq + seg_len >= self.rcv.last_ack_sent;
        if !acceptable {
            c.drop(DropReason::TcpOutOfWindow);
            if !flags.rst() && !payload.is_empty() && seq + payload.len() <= self.rcv.nxt {
                // A retransmission of data we hold (RFC 2883 4.1.1).
                self.note_dsack(seq, seq + payload.len(), c);
            }
            // Data or a FIN is answered with the duplicate ACK it calls
            // for; an ACK taken is not (it is no retransmission, and ACKs
            // answered with ACKs could loop).
            let ack_taken_alone = ack_only && seg_len == 0;
            if !flags.rst() && !ack_taken_alone {
                self.ack_invalid(now, seg_len, flags.syn(), c);
                if self.state == State::TimeWait && flags.fin() {
                    // A retransmitted FIN: our last ACK was lost.
                    self.timers
                        .set(Timer::Close, Some(now.plus(self.cfg.time_wait)));
                }
            }
            if !ack_only {
                return;
            }
        }
        self.peer_alive(now);
        // RFC 3168 6.1.3: the CWR and CE of an acceptable segment.
        if self.ecn.receive(flags, ip_ecn, c) {
            self.due.set(Due::ACK_NOW);
        }

        // Second, the RST bit (RFC 5961 3.2).
        if flags.rst() {
            if seq != self.rcv.nxt {
                self.challenge_ack(now, seg_len, flags.syn(), c);
                return;
            }
            c.tcp_rst_received += 1;
            if self.state == State::SynReceived && self.passive {
                // Back to LISTEN: the embryonic connection just goes.
                self.state = State::Closed;
                return;
            }
            let reason = match self.state {
                State::Closing | State::LastAck | State::TimeWait => CloseReason::Normal,
                _ => CloseReason::Reset,
            };
            self.finish(reason);
            return;
        }

        // Fourth, the SYN bit (RFC 5961 4.2): a challenge ACK, always.
        if flags.syn() {
            if self.state == State::SynReceived && self.passive {
                self.state = State::Closed;
                return;
            }
            self.challenge_ack(now, seg_len, flags.syn(), c);
            return;
        }

        // Fifth, the ACK field.
        if !flags.ack() {
            c.drop(DropReason::Malformed);
            return;
        }
        let ack = Seq(seg.ack_number);
        if self.state == State::SynReceived {
            if self.snd.una < ack && ack <= self.snd.max {
                self.establish(now, seg, seq, ack, c);
            } else {
                self.queue_rst(self.bare_rst(ack));
                c.tcp_bad_ack += 1;
                return;
            }
        }
        // RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= ACK <= SND.NXT.
        if ack > self.snd.max {
            c.tcp_bad_ack += 1;
            self.challenge_ack(now, seg_len, flags.syn(), c);
            return;
        }
        if ack < self.snd.una - self.snd.max_wnd.max(1) {
            c.tcp_bad_ack += 1;
            self.challenge_ack(now, seg_len, flags.syn(), c);
            return;
        }
        let flight = self.snd.max.since(self.snd.una);
        self.process_ack(now, seg, seq, ack, payload.len(), c);
        if self.state == State::Closed {
            return;
        }
        // RFC 3168 6.1.2: an ECE is a loss without a retransmission.
        if self
            .ecn
            .ece_reduces(flags, ack, self.snd.max, self.rec.in_recovery, c)
        {
            self.cc.on_ecn(flight, self.mss);
        }
        if ack_only {
            // RFC 7323 4.3 as Linux (`tcp_replace_ts_recent`): a segment
            // that begins at or below Last.ACK.sent holds the timestamp to
            // echo, whether or not its data is taken.
            if let (true, Some((val, _))) = (self.ts_enabled, seg.options.timestamps) {
                if seq <= self.rcv.last_ack_sent {
                    self.rcv.ts_recent = val;
                }
            }
            return;
        }
        // Trim what we already have (the front) or cannot hold (the tail).
        let mut data = payload;
        let mut fin = flags.fin();
        if seq < self.rcv.nxt {
            let dup = self.rcv.nxt.since(seq).min(data.len());
            if dup > 0 {
                // Partly old data (RFC 2883 4.1.1): report what we had.
                self.note_dsack(seq, seq + dup, c);
            }
            data = &data[dup..];
            seq = seq + dup;
            if data.is_empty() && !(fin && seq == self.rcv.nxt) {
                if !payload.is_empty() {
                    c.tcp_dup_segments += 1;
                    self.due.set(Due::ACK_NOW);
                }
                fin = false;
            }
        }
        let room = self.rcv_window().saturating_sub(seq.since(self.rcv.nxt));
        if data.len() > room {
            // Past the window's right edge: keep what fits, say where the
            // window is (RFC 9293 3.10.7.4, zero-window allowance).
            data = &data[..room];
            fin = false;
            self.due.set(Due::ACK_NOW);
        }

        // RFC 7323 4.3: remember the newest timestamp at the left edge.
        if let (true, Some((val, _))) = (self.ts_enabled, seg.options.timestamps) {
            if seq <= self.rcv.last_ack_sent {
                self.rcv.ts_recent = val;
            }
        }

        // Seventh, the segment text; eighth, the FIN bit.
        if (!data.is_empty() || fin) && self.state != State::SynReceived {
            if self.app_closed && !data.is_empty() && self.state.receives() {
                // Data for an application that closed: RFC 2525 2.17.
                self.queue_rst(self.header(self.pure_ack_seq(), TcpFlags::RST | TcpFlags::ACK));
                c.tcp_rst_sent_data_after_close += 1;
                self.finish(CloseReason::Normal);
                return;
            }
            self.process_text(now, seq, data, fin, c);
        }
    }

    /// SYN-RECEIVED to ESTABLISHED: `seg` acknowledged our SYN (RFC 9293
    /// 3.10.7.4, fifth check).
    fn establish(&mut self, now: Instant, seg: &TcpRepr, seq: Seq, ack: Seq, c: &mut Counters) {
        self.state = State::Established;
        self.snd.una = self.snd.iss + 1;
        // A repeated SYN may have set SND.NXT back to resend the SYN-ACK
        // (not sent yet, or its send failed): the peer has it.
        self.snd.nxt = self.snd.nxt.max(self.snd.una);
        // RFC 7323 2.2: the window of a SYN is never scaled.
        let shift = if seg.flags.syn() { 0 } else { self.snd.shift };
        self.snd.wnd = usize::from(seg.window_len) << shift;
        self.snd.max_wnd = self.snd.wnd;
        self.snd.wl1 = seq;
        self.snd.wl2 = ack;
        self.events |= event::CONNECTED;
        self.sample_rtt(now, seg, ack, &Delivered::default());
        self.rtt.handshake_done();
        self.timers.set(Timer::Retransmit, None);
        self.stalled_since = None;
        if self.passive {
            c.tcp_accepted += 1;
        } else {
            c.tcp_connected += 1;
        }
        c.tcp_ecn_negotiated += u64::from(self.ecn.ok);
        self.peer_alive(now);
    }

    /// RFC 9293 3.10.7.4, fifth check, from ESTABLISHED on.
    fn process_ack(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        seq: Seq,
        ack: Seq,
        data_len: usize,
        c: &mut Counters,
    ) {
        let window = usize::from(seg.window_len) << self.snd.shift;
        if ack >= self.snd.una {
            // The peer answers (Linux `tcp_ack`): window probes so far
            // were not in vain.
            self.persist_probes = 0;
        }
        let (una_before, sacked_before) = (self.snd.una, self.sacked_bytes());
        let mut delivered = Delivered::default();
        let sack = if self.sack_ok && seg.options.sack_blocks[0].is_some() {
            let sack = self.take_sack_blocks(now, seg, ack, &mut delivered);
            if let Some((l, r)) = sack.dsack {
                c.tcp_dsack_received += 1;
                self.rack_note_dsack();
                self.undo_on_dsack(l, r, c);
                if self.rec.tlp_end.is_some_and(|e| l < e && e <= r) {
                    // RFC 8985 7.4.2: the probe was a duplicate; the
                    // original arrived, nothing was lost.
                    self.rec.tlp_end = None;
                }
            }
            Some(sack)
        } else {
            None
        };
        let mut dup_ack = false;
        if ack > self.snd.una {
            self.ack_advanced(now, seg, ack, &mut delivered, c);
        } else if ack == self.snd.una
            && data_len == 0
            && !seg.flags.fin()
            && self.snd.max > self.snd.una
            && match sack {
                // RFC 6675 2 (DupAck): with SACK blocks, only new SACKed
                // data above SND.UNA makes a duplicate, whatever the window
                // did (receivers that autotune their buffer move it often);
                // a stale block or a D-SACK (RFC 2883 4) is no loss signal.
                Some(sack) => sack.new_data,
                // RFC 5681 2: same ACK, same window.
                None => window == self.snd.wnd,
            }
        {
            dup_ack = true;
            self.rec.dup_acks += 1;
            c.tcp_dup_acks += 1;
            // RFC 5827 early retransmit: with fewer than four segments out
            // and no new data to send, three duplicates may never come;
            // the threshold is one less than the segments outstanding.
            let mss = self.mss.max(1);
            let out_segments = self.snd.max.since(self.snd.una).div_ceil(mss);
            let thresh = if out_segments < 4 && !self.can_send_new_data() {
                out_segments.saturating_sub(1).max(1)
            } else {
                3
            };
            // RFC 6675 4 IsLost(SND.UNA): DupThresh SACKed segments above
            // it, or more than (DupThresh - 1) * SMSS bytes SACKed above it
            // (RFC 5827 3.2 with the ER threshold).
            let (sacked_segments, sacked) = self
                .rec
                .board
                .as_deref()
                .map_or((0, 0), |b| (b.sacked_segments(), b.sacked_bytes()));
            let lost = self.sack_ok && (sacked_segments >= thresh || sacked > (thresh - 1) * mss);
            // After a tail loss probe, a SACK above the hole is the loss
            // signal RACK would act on (RFC 8985 7.4).
            let probed = self.sack_ok && self.rec.tlp_fired && sacked_segments > 0;
            let due = self.rec.dup_acks as usize >= thresh || lost || probed;
            // After a timeout, NewReno waits for RECOVER before it trusts
            // duplicate ACKs again (RFC 6582 4.1); SACK tells real losses
            // from the retransmissions' echoes, so it need not wait; but
            // F-RTO's next ACK decides first.
            if due
                && !self.rec.in_recovery
                && (ack >= self.rec.recover || self.sack_ok)
                && self.rec.frto == Frto::Off
            {
                if let Some(board) = self.rec.board.as_deref_mut() {
                    board.mark_first_lost();
                }
                self.enter_recovery(c);
            } else if self.rec.dup_acks > 3 && self.rec.in_recovery && !self.sack_ok {
                self.cc.on_dup_ack_in_recovery(self.mss);
            }
        }
        self.detect_loss_after_ack(now, delivered, una_before, sacked_before, c);
        self.update_window(seq, ack, window, una_before);
        self.frto_on_ack(
            ack > una_before,
            dup_ack,
            sack.is_some_and(|s| s.new_data),
            delivered.original,
            c,
        );
        match self.state {
            State::FinWait1 if self.fin_acked => {
                self.state = State::FinWait2;
                if self.app_closed {
                    self.timers
                        .set(Timer::Close, Some(now.plus(self.cfg.fin_wait2_timeout)));
                }
            }
            State::Closing if self.fin_acked => self.enter_time_wait(now),
            State::LastAck if self.fin_acked => self.finish(CloseReason::Normal),
            _ => {}
        }
    }

    /// The part of [`Tcb::process_ack`] for an ACK of new data (SND.UNA <
    /// ACK <= SND.MAX): what the scoreboard delivered goes to `delivered`.
    #[inline]
    fn ack_advanced(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        ack: Seq,
        delivered: &mut Delivered,
        c: &mut Counters,
    ) {
        let min_rtt = self.rack_min_rtt();
        if let Some(board) = self.rec.board.as_deref_mut() {
            let ecr = seg
                .options
                .timestamps
                .map(|t| t.1)
                .filter(|_| self.ts_enabled);
            let d = board.ack(now, ack, ecr, min_rtt);
            Scoreboard::merge(delivered, d);
        }
        let acked = ack.since(self.snd.una);
        let data_acked = acked.min(self.tx.len());
        self.tx.consume(data_acked);
        self.totals.bytes_acked += data_acked as u64;
        if acked > data_acked && self.fin_seq.is_some() {
            self.fin_acked = true;
        }
        let flight_before = self.snd.max.since(self.snd.una);
        if self.undo_by_eifel(seg, ack, c) {
            // Eifel judged the timeout first (its first ACK): F-RTO
            // has nothing left to tell.
            self.end_frto();
        }
        if self.rec.tlp_end.is_some_and(|e| ack > e) {
            // RFC 8985 7.4.2: acknowledged beyond the probe with no
            // D-SACK for it: the probe repaired a loss, which calls
            // for the congestion response fast recovery would have
            // made (a TLP recovery episode).
            self.rec.tlp_end = None;
            if !self.rec.in_recovery {
                self.cc.on_fast_retransmit(flight_before, self.mss);
                self.cc
                    .on_recovery_end(now, flight_before - acked.min(flight_before), self.mss);
                c.tcp_tlp_recoveries += 1;
            }
        }
        self.snd.una = ack;
        if self.snd.nxt < ack {
            self.snd.nxt = ack;
        }
        if self.snd.una == self.snd.max {
            self.flight_drained();
        }
        let rtt = self.sample_rtt(now, seg, ack, delivered);
        // RFC 6582 3.2 step 5 (RFC 3782 4's "Impatient"): without SACK,
        // partial ACKs repair one hole per round trip; only the first
        // restarts the timer, so that a loss of many segments is
        // repaired by the timeout's go-back-N (RFC 5681 3.1) instead
        // of one round trip per hole.
        let restart_timer = !(self.rec.in_recovery
            && !self.sack_ok
            && ack < self.rec.recover
            && std::mem::replace(&mut self.rec.partial_acked, true));
        if self.rec.in_recovery {
            if ack >= self.rec.recover {
                self.rec.in_recovery = false;
                self.rack_recovery_ended();
                self.cc
                    .on_recovery_end(now, self.snd.max.since(self.snd.una), self.mss);
            } else {
                // RFC 6582 3.2 step 5: partial ACK, retransmit the next hole.
                self.cc.on_partial_ack(acked, self.mss);
                self.due.set(Due::RETRANSMIT_UNA);
            }
        } else if flight_before > 0 {
            self.cc.on_ack(&Ack {
                now,
                acked,
                flight: self.snd.max.since(self.snd.una),
                rtt,
                srtt: self.rtt.srtt(),
                mss: self.mss,
                rx_wait: self.rx_wait,
            });
        }
        if !self.rec.in_recovery {
            // RFC 6582 3.2 step 5, RFC 6675 5: a partial ACK does not
            // restart the count, so that the duplicates that follow it
            // keep clocking out retransmissions.
            self.rec.dup_acks = 0;
        }
        // Progress: the persist timer (if the window still holds data
        // back) starts again from one RTO.
        self.persist_backoff = 0;
        self.timers.set(Timer::Persist, None);
        self.stalled_since = (self.snd.una != self.snd.max).then_some(now);
        let retransmit = if self.snd.una == self.snd.max {
            None
        } else if restart_timer {
            Some(now.plus(self.rtt.rto()))
        } else {
            self.timers.get(Timer::Retransmit)
        };
        self.timers.set(Timer::Retransmit, retransmit);
        self.rec.tlp_fired = false;
        self.timers.set(Timer::TailLossProbe, None);
        self.arm_tlp(now);
        if self.want_writable && self.tx.free() > 0 {
            self.want_writable = false;
            self.events |= event::WRITABLE;
        }
    }

    /// After an ACK (both paths): RACK's loss detection with what it
    /// delivered and, in recovery, PRR's DeliveredData (RFC 6937: what the
    /// cumulative ACK and the SACK blocks newly said the peer holds).
    /// Without SACK there is nothing to do: that test inline, the steps
    /// out of line (make pathcost: a call and its arguments per ACK).
    #[inline(always)]
    fn detect_loss_after_ack(
        &mut self,
        now: Instant,
        delivered: Delivered,
        una_before: Seq,
        sacked_before: usize,
        c: &mut Counters,
    ) {
        if self.sack_ok {
            self.detect_loss_with_sack(now, delivered, una_before, sacked_before, c);
        }
    }

    /// [`Tcb::detect_loss_after_ack`] of a connection with SACK.
    #[inline(never)]
    fn detect_loss_with_sack(
        &mut self,
        now: Instant,
        delivered: Delivered,
        una_before: Seq,
        sacked_before: usize,
        c: &mut Counters,
    ) {
        self.rack_detect_loss(now, delivered, c);
        if self.rec.in_recovery {
            let data = (self.snd.una.since(una_before) + self.sacked_bytes())
                .saturating_sub(sacked_before);
            self.prr_on_ack(data);
        }
    }

    /// The window update of [`Tcb::process_ack`]: the SND.WL1/WL2 rule,
    /// or (Linux `tcp_may_update_window`) an ACK that acknowledged new
    /// data, which is newer than every segment taken before it, whatever
    /// its sequence number (a retransmission, taken for its ACK only).
    #[inline(always)]
    fn update_window(&mut self, seq: Seq, ack: Seq, window: usize, una_before: Seq) {
        if self.snd.wl1 < seq || (self.snd.wl1 == seq && self.snd.wl2 <= ack) || ack > una_before {
            let reopened = self.snd.wnd == 0 && window > 0;
            self.snd.wnd = window;
            self.snd.max_wnd = self.snd.max_wnd.max(window);
            self.snd.wl1 = self.snd.wl1.max(seq);
            self.snd.wl2 = ack;
            if reopened {
                self.timers.set(Timer::Persist, None);
                self.persist_backoff = 0;
                if self.snd.una == self.snd.max {
                    self.stalled_since = None;
                }
            }
        }
    }

    /// Take the RTT sample this ACK gives, if any, and return the one for
    /// the congestion controller (its HyStart++ watches each one).
    ///
    /// As Linux `tcp_ack_update_rtt`: first the send times of what the ACK
    /// delivered, in microseconds: the oldest segment newly acknowledged
    /// for SRTT (it waited for a delayed ACK, as a timestamp echo would
    /// say), the most recently sent for the controller; then the
    /// timestamps' milliseconds (a retransmission acknowledged); then the
    /// one timed segment. HyStart++ compares rounds' minima against a 4 ms
    /// rise: a timestamp's rounding is a quarter of it.
    #[inline]
    fn sample_rtt(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        ack: Seq,
        delivered: &Delivered,
    ) -> Option<Duration> {
        if let Some(first) = delivered.first_rtt {
            if self.rtt_timed.is_some_and(|(timed, _)| ack > timed) {
                self.rtt_timed = None;
            }
            self.rtt.sample(first);
            return Some(delivered.rtt.unwrap_or(first));
        }
        if self.ts_enabled {
            if let Some((_, ecr)) = seg.options.timestamps {
                if ecr != 0 {
                    let ms = ts_now(now).wrapping_sub(ecr);
                    if ms < 60_000 {
                        let rtt = Duration::from_micros(u64::from(ms) * 1000 + 1);
                        self.rtt.sample(rtt);
                        return Some(rtt);
                    }
                    return None;
                }
            }
        }
        if let Some((timed, sent)) = self.rtt_timed {
            if ack > timed {
                let rtt = now.since(sent);
                self.rtt.sample(rtt);
                self.rtt_timed = None;
                return Some(rtt);
            }
        }
        None
    }

    /// Data (and a FIN) at `seq`, already trimmed to the window.
    #[inline(always)]
    fn process_text(&mut self, now: Instant, seq: Seq, data: &[u8], fin: bool, c: &mut Counters) {
        if !(self.state.receives() || fin && self.fin_received) {
            return;
        }
        let had_ooo = self.rx.has_out_of_order();
        if !data.is_empty() && self.state.receives() {
            let offset = seq.since(self.rcv.nxt);
            let end = offset + data.len();
            if had_ooo
                && self
                    .rx
                    .assembler()
                    .ranges()
                    .any(|(a, b)| a <= offset && end <= b)
            {
                // A copy of an out-of-order block we hold (RFC 2883 4.1.2).
                self.note_dsack(seq, seq + data.len(), c);
                self.due.set(Due::ACK_NOW);
            }
            let w = self.rx.write(offset, data);
            if w.dropped {
                c.drop(DropReason::QueueFull);
                c.tcp_ooo_dropped += 1;
                self.due.set(Due::ACK_NOW);
            }
            if w.no_memory {
                // The core's buffer budget is spent: the peer sends it again.
                c.drop(DropReason::TcpNoMemory);
                self.due.set(Due::ACK_NOW);
            }
            if w.queued {
                self.rcv.last_ooo = Some(seq);
                c.tcp_ooo_segments += 1;
                // RFC 5681 4.2: out of order is acknowledged at once.
                self.due.set(Due::ACK_NOW);
            }
            if w.in_order > 0 {
                self.rcv.nxt = self.rcv.nxt + w.in_order;
                self.events |= event::READABLE;
                c.tcp_rx_bytes += w.in_order as u64;
                self.totals.bytes_received += w.in_order as u64;
                if had_ooo {
                    // Filling a hole is acknowledged at once, too.
                    self.due.set(Due::ACK_NOW);
                }
                self.unacked_segments += 1;
                match self.cfg.delayed_ack {
                    Some(d) if self.unacked_segments < 2 => {
                        if self.timers.get(Timer::DelayedAck).is_none() {
                            self.timers.set(Timer::DelayedAck, Some(now.plus(d)));
                        }
                    }
                    _ => self.due.set(Due::ACK_NOW),
                }
            }
        }
        if fin {
            self.fin_pending = Some(seq + data.len());
        }
        if let Some(fin_seq) = self.fin_pending {
            if fin_seq == self.rcv.nxt && !self.fin_received {
                self.fin_pending = None;
                self.receive_fin(now);
            } else if self.fin_received && fin_seq + 1 == self.rcv.nxt {
                // A retransmitted FIN.
                self.fin_pending = None;
                self.due.set(Due::ACK_NOW);
                if self.state == State::TimeWait {
                    self.timers
                        .set(Timer::Close, Some(now.plus(self.cfg.time_wait)));
                }
            }
        }
    }

    /// A duplicate segment arrived: our next ACK's first SACK block says
    /// so (D-SACK, RFC 2883), if the peer understands SACK. One is pending
    /// at a time, the latest (RFC 2883 4: each is reported once).
    fn note_dsack(&mut self, l: Seq, r: Seq, c: &mut Counters) {
        if !self.sack_ok {
            return;
        }
        if self.rcv.dsack.is_none() {
            c.tcp_dsack_sent += 1;
        }
        self.rcv.dsack = Some((l, r));
    }

    /// RFC 9293 3.10.7.4, eighth: the FIN bit, in order.
    fn receive_fin(&mut self, now: Instant) {
        self.fin_received = true;
        self.rcv.nxt = self.rcv.nxt + 1;
        self.due.set(Due::ACK_NOW);
        self.events |= event::PEER_CLOSED;
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 => {
                if self.fin_acked {
                    self.enter_time_wait(now);
                } else {
                    self.state = State::Closing;
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    /// Answer a segment that failed the checks with an ACK (RFC 9293
    /// 3.10.7.4; RFC 7323 5.3), rate-limited. As Linux
    /// (`tcp_oow_rate_limited`), a segment that carries data or a FIN and
    /// no SYN is always answered: it is no part of an ACK loop, and it may
    /// be a retransmission whose ACK was lost (a FIN in TIME-WAIT).
    fn ack_invalid(&mut self, now: Instant, seg_len: usize, syn: bool, c: &mut Counters) {
        if self.invalid_ack_allowed(now, seg_len, syn, c) {
            self.due.set(Due::ACK_NOW);
        }
    }

    /// The rate limit of [`Tcb::ack_invalid`]: false if the ACK is to be
    /// suppressed (and counts it).
    fn invalid_ack_allowed(
        &mut self,
        now: Instant,
        seg_len: usize,
        syn: bool,
        c: &mut Counters,
    ) -> bool {
        if seg_len > 0 && !syn {
            return true;
        }
        if self
            .last_invalid_ack
            .is_some_and(|t| now.since(t) < INVALID_ACK_INTERVAL)
        {
            c.tcp_invalid_acks_limited += 1;
            return false;
        }
        self.last_invalid_ack = Some(now);
        true
    }

    /// RFC 5961 3.2, 4.2, 5.2: a challenge ACK, limited per connection as
    /// any answer to an invalid segment, and to 100 per second (RFC 5961 7)
    /// for those that always get one.
    fn challenge_ack(&mut self, now: Instant, seg_len: usize, syn: bool, c: &mut Counters) {
        if !self.invalid_ack_allowed(now, seg_len, syn, c) {
            return;
        }
        let second = now.micros() / 1_000_000;
        if second != self.challenge_second {
            self.challenge_second = second;
            self.challenge_count = 0;
        }
        if self.challenge_count < CHALLENGE_ACK_LIMIT {
            self.challenge_count += 1;
            self.due.set(Due::ACK_NOW);
            c.tcp_challenge_acks += 1;
        }
    }

    fn in_window(&self, seq: Seq, wnd: usize) -> bool {
        self.rcv.nxt <= seq && seq < self.rcv.nxt + wnd
    }

    /// RCV.WND: what we advertised, never less (no shrinking).
    fn rcv_window(&self) -> usize {
        let adv = if self.rcv.adv > self.rcv.nxt {
            self.rcv.adv.since(self.rcv.nxt)
        } else {
            0
        };
        adv.max(self.rx.window())
    }

    // ---- output --------------------------------------------------------

    fn header(&self, seq: Seq, flags: TcpFlags) -> TcpRepr {
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: seq.0,
            ack_number: if flags.ack() { self.rcv.nxt.0 } else { 0 },
            flags,
            window_len: 0,
            urgent_at: 0,
            options: TcpOptions::default(),
        }
    }

    fn bare_rst(&self, ack: Seq) -> TcpRepr {
        TcpRepr {
            ack_number: 0,
            ..self.header(ack, TcpFlags::RST)
        }
    }

    /// Fill window, timestamps and the ACK bookkeeping of a segment we send.
    #[inline(always)]
    fn finish_header(&mut self, now: Instant, repr: &mut TcpRepr) {
        let syn = repr.flags.syn();
        let wnd = self.rx.window();
        let shift = if syn { 0 } else { self.rcv.shift };
        let adv = (wnd >> shift).min(65535);
        let edge = self.rcv.nxt + (adv << shift);
        // Rounded down to the scale, the edge offered may sit up to one
        // unit below the one offered before (RFC 7323 2.4 allows it); the
        // edge for acceptance stays at the larger (`rcv.adv`, never moved
        // back), so whatever the peer sent up to it is taken. Linux rounds
        // up (`__tcp_select_window` ALIGNs, and a window that would shrink
        // is offered as the old one rounded up): its window is a fraction
        // of its buffer's memory, and the rounding fits in the rest. Ours
        // is the buffer to the byte: rounded up, each ACK could move the
        // edge up to a unit past the room (the roundings add up while the
        // application does not read), and the peer's segments there would
        // be taken for their ACK only and sent twice. Rounded up with
        // acceptance left at the unrounded edge, the peer's ACKs from the
        // edge it was offered were dropped whole and the lossy echo of
        // tests/tcp.rs stalled; acceptance now takes them
        // (`process_synchronized`), and rounding down costs under a unit
        // of window (128 bytes at the default scale, 7).
        if edge > self.rcv.adv || !self.state.synchronized() {
            self.rcv.adv = edge;
        }
        repr.window_len = adv as u16;
        if syn {
            // RFC 3168 6.1.1: ECN-setup SYN (the first only) or SYN-ACK.
            let first = self.snd.max == self.snd.iss;
            repr.flags |= self.ecn.syn_flags(repr.flags.ack(), first);
            let active = self.state == State::SynSent;
            repr.options = syn_options(
                &self.cfg,
                active,
                self.snd.shift,
                self.rcv.shift,
                self.sack_ok,
            );
        }
        if !syn && repr.flags.ack() {
            // RFC 3168 6.1.3: ECE while a CE awaits its CWR.
            repr.flags |= self.ecn.ack_flags();
        }
        if !syn && repr.flags.ack() && self.sack_blocks_due() > 0 {
            self.fill_sack_blocks(repr);
        }
        let offer_ts = if syn && self.state == State::SynSent {
            self.cfg.timestamps
        } else {
            self.ts_enabled
        };
        if offer_ts {
            let ecr = if repr.flags.ack() {
                self.rcv.ts_recent
            } else {
                0
            };
            repr.options.timestamps = Some((ts_now(now).max(1), ecr));
        }
        if repr.flags.ack() {
            self.rcv.last_ack_sent = self.rcv.nxt;
            self.due.clear(Due::ACK_NOW);
            self.timers.set(Timer::DelayedAck, None);
            self.unacked_segments = 0;
        }
    }

    /// How many SACK blocks (RFC 2018) the next ACK we send carries: one per
    /// out-of-order range, at most three (with timestamps, 12 + 4 + 3 * 8
    /// bytes fill the 40 bytes of option space).
    fn sack_blocks_due(&self) -> usize {
        if !self.sack_ok {
            return 0;
        }
        let ooo = if self.rx.has_out_of_order() {
            self.rx.assembler().ranges().len()
        } else {
            0
        };
        (ooo + usize::from(self.rcv.dsack.is_some())).min(3)
    }

    /// Payload bytes a data segment sent now may carry: the MSS (already
    /// less the timestamps every segment carries) less the SACK blocks this
    /// one will carry. Options are paid out of the segment, never on top of
    /// it (RFC 6691; Linux `tcp_current_mss`), or a full segment with SACK
    /// blocks exceeds the peer's MSS and the path MTU.
    fn send_mss(&self) -> usize {
        let sack = match self.sack_blocks_due() {
            0 => 0,
            n => 4 + 8 * n,
        };
        self.mss.saturating_sub(sack).max(1)
    }

    /// RFC 2018 4: report the out-of-order ranges, the one that changed
    /// last first; a pending D-SACK goes before them all (RFC 2883 4), once.
    fn fill_sack_blocks(&mut self, repr: &mut TcpRepr) {
        let mut slots = repr.options.sack_blocks.iter_mut();
        if let Some((l, r)) = self.rcv.dsack.take() {
            if let Some(slot) = slots.next() {
                *slot = Some((l.0, r.0));
            }
        }
        if !self.rx.has_out_of_order() {
            return;
        }
        let ranges: ArrayVec<(usize, usize), { Assembler::MAX_RANGES }> =
            self.rx.assembler().ranges().collect();
        let base = self.rcv.nxt;
        let recent = self.rcv.last_ooo.and_then(|s| {
            ranges
                .iter()
                .position(|&(a, b)| base + a <= s && s < base + b)
        });
        let order = recent
            .into_iter()
            .chain((0..ranges.len()).filter(|&i| Some(i) != recent));
        for (slot, i) in slots.zip(order) {
            let (a, b) = ranges[i];
            // The block that ends where a FIN held out of order sits
            // covers it too (as Linux's receivers report it: the end of
            // the segment, FIN included): else the sender, whose record of
            // that segment holds the FIN, sees its last sequence number
            // unreported and RACK resends a FIN we have.
            let end = base + b;
            let end = if self.fin_pending == Some(end) {
                end + 1
            } else {
                end
            };
            *slot = Some(((base + a).0, end.0));
        }
    }

    /// Record the peer's SACK blocks (RFC 2018) above SND.UNA on the
    /// scoreboard; `ack` is the segment's acknowledgment number. What they
    /// delivered goes into `delivered` (RACK's input).
    fn take_sack_blocks(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        ack: Seq,
        delivered: &mut Delivered,
    ) -> SackInfo {
        let una = self.snd.una;
        let blocks = &seg.options.sack_blocks;
        // RFC 2883 4: the first block is a D-SACK if it lies below the
        // cumulative ACK, or inside the second block.
        let dsack = blocks[0].is_some_and(|(l, r)| {
            let (l, r) = (Seq(l), Seq(r));
            l < r && (r <= ack || blocks[1].is_some_and(|(l2, r2)| Seq(l2) <= l && r <= Seq(r2)))
        });
        let mut info = SackInfo {
            new_data: false,
            dsack: blocks[0].filter(|_| dsack).map(|(l, r)| (Seq(l), Seq(r))),
        };
        let ecr = seg
            .options
            .timestamps
            .map(|t| t.1)
            .filter(|_| self.ts_enabled);
        let min_rtt = self.rack_min_rtt();
        let Some(board) = self.rec.board.as_deref_mut() else {
            return info;
        };
        let skip = usize::from(dsack);
        for (l, r) in blocks.iter().skip(skip).flatten() {
            let (l, r) = (Seq(*l), Seq(*r));
            if r <= l || r <= una || r > self.snd.max {
                continue;
            }
            let d = board.sack(now, l.max(una), r, ecr, min_rtt);
            info.new_data |= d.new_sack;
            Scoreboard::merge(delivered, d);
        }
        info
    }

    /// New data could go out now: some is queued and unsent, and the
    /// windows take a segment of it (RFC 5827 2: early retransmit applies
    /// only when none can).
    fn can_send_new_data(&self) -> bool {
        let unsent = self
            .tx
            .len()
            .saturating_sub(self.snd.max.since(self.snd.una));
        let flight = self.snd.max.since(self.snd.una);
        let usable = self.snd.wnd.min(self.cc.window()).saturating_sub(flight);
        unsent > 0 && usable >= unsent.min(self.send_mss())
    }

    /// RFC 6582 3.2 step 2, RFC 6675 5 step 4: enter fast recovery.
    fn enter_recovery(&mut self, c: &mut Counters) {
        self.end_frto();
        self.rec.dup_acks = self.rec.dup_acks.max(3);
        self.rec.in_recovery = true;
        self.rec.partial_acked = false;
        self.rec.recover = self.snd.max;
        self.rec.high_rxt = self.snd.una;
        self.start_undo_episode(false);
        self.cc
            .on_fast_retransmit(self.snd.max.since(self.snd.una), self.mss);
        self.due.set(Due::RETRANSMIT_UNA);
        self.rtt_timed = None;
        self.rec.prr_delivered = 0;
        self.rec.prr_out = 0;
        self.rec.prr_quota = 0;
        self.rec.recover_fs = clamp_u32(self.snd.max.since(self.snd.una));
        c.tcp_fast_retransmits += 1;
    }

    /// A reduction begins: remember the window before it. Earlier
    /// retransmissions not yet cumulatively acknowledged (a TLP's, an
    /// earlier recovery's; SACKed or not) count as this episode's, as
    /// Linux's `undo_retrans` starts at `retrans_out` and its
    /// `retrans_stamp` at the first of them (Linux leaves out the SACKed
    /// ones, and a D-SACK for one then undoes a recovery whose own
    /// retransmission was needed): a D-SACK for one of them is no sign
    /// that this episode's were needless, so each must be D-SACKed too
    /// before the reduction is undone; and the ACK one of them draws
    /// echoes a TSval older than this episode's own first retransmission,
    /// which Eifel would take for an original's, so Eifel compares with
    /// the earliest of them.
    fn start_undo_episode(&mut self, rto: bool) {
        let (resent, first) = self
            .rec
            .board
            .as_deref()
            .map_or((0, None), |b| b.resent_outstanding());
        self.rec.undo = Some(Undo {
            cwnd: clamp_u32(self.cc.window()),
            ssthresh: clamp_u32(self.cc.ssthresh()),
            from: self.snd.una,
            to: self.snd.max,
            retrans: clamp_u32(resent.div_ceil(self.mss.max(1))),
            stamp: first.map(|t| ts_now(t).max(1)),
            rto,
        });
    }

    /// RFC 3708 (as Linux `tcp_try_undo_dsack`): a D-SACK for the data of
    /// the last reduction says one of its retransmissions was needless;
    /// once all were, nothing was lost, and the reduction is undone.
    fn undo_on_dsack(&mut self, l: Seq, r: Seq, c: &mut Counters) {
        let Some(u) = self.rec.undo.as_mut() else {
            return;
        };
        if l < u.from || r > u.to || u.retrans == 0 {
            return;
        }
        let segments = clamp_u32(r.since(l).div_ceil(self.mss.max(1)));
        u.retrans = u.retrans.saturating_sub(segments);
        if u.retrans == 0 {
            c.tcp_undo_dsack += 1;
            self.undo_reduction(c);
        }
    }

    /// RFC 3522 (Eifel detection): the first ACK for the retransmitted
    /// data echoes a TSval older than the retransmission's: the original
    /// arrived, the retransmission was spurious.
    /// True if it judged (the ACK echoed a timestamp), spurious or not.
    fn undo_by_eifel(&mut self, seg: &TcpRepr, ack: Seq, c: &mut Counters) -> bool {
        let Some(u) = self.rec.undo.as_mut() else {
            return false;
        };
        let Some(stamp) = u.stamp else {
            return false;
        };
        if ack <= u.from {
            return false;
        }
        u.stamp = None;
        let echo = seg.options.timestamps.map_or(0, |t| t.1);
        let judged = self.ts_enabled && echo != 0;
        if judged && (echo.wrapping_sub(stamp) as i32) < 0 {
            if u.rto {
                // RFC 4015 3.2: the timeout was spurious; go on with new
                // data rather than resend the flight.
                c.tcp_spurious_rto += 1;
                self.snd.nxt = self.snd.max;
            }
            c.tcp_undo_eifel += 1;
            self.undo_reduction(c);
        }
        judged
    }

    /// RFC 5682 steps 2 and 3 for an ACK after a timeout: `advanced`, it
    /// acknowledged new data; `dup`, it is a duplicate ACK; `new_sack`, its
    /// SACK blocks reported data not reported before. Other ACKs (a window
    /// update, data) tell nothing.
    /// `original`: some of what it delivered was never retransmitted.
    fn frto_on_ack(
        &mut self,
        advanced: bool,
        dup: bool,
        new_sack: bool,
        original: bool,
        c: &mut Counters,
    ) {
        let (rp, second) = match self.rec.frto {
            Frto::Off => return,
            Frto::FirstAck { recovery_point } => (recovery_point, false),
            Frto::SecondAck { recovery_point } => (recovery_point, true),
        };
        if self.rec.in_recovery || self.rec.undo.is_none_or(|u| !u.rto) {
            // The timeout's reduction was judged otherwise (D-SACKs, or a
            // fast recovery replaced it).
            return self.end_frto();
        }
        if !second {
            if advanced {
                let unsent = self
                    .tx
                    .len()
                    .saturating_sub(self.snd.max.since(self.snd.una));
                let room = self.snd.una + self.snd.wnd > self.snd.max;
                if self.snd.una >= rp || unsent == 0 || !room {
                    // 2a: the whole flight is acknowledged, nothing to
                    // tell; or 2b finds no new data the peer's window
                    // takes: the timeout's go-back-N goes on.
                    return self.end_frto();
                }
                // 2b: the retransmission was acknowledged, the rest of
                // the flight not yet: send up to two new segments instead
                // of resending it (cwnd, at two segments after the
                // timeout's one, grows to three at most by step 3, as
                // 3a's "no more than 3 * MSS" asks).
                self.snd.nxt = self.snd.max;
                self.rec.frto_new = 2;
                self.rec.frto = Frto::SecondAck { recovery_point: rp };
            } else if dup && !self.sack_ok {
                // Section 2.1 step 2: without SACK, a duplicate ACK says
                // the retransmission filled a hole, and more are lost.
                self.end_frto();
            }
            // With SACK, duplicate ACKs only fill the scoreboard.
            return;
        }
        if !advanced && !dup {
            return;
        }
        let beyond = self.snd.una > rp
            || self
                .rec
                .board
                .as_deref()
                .is_some_and(|b| b.sacked_beyond(rp));
        self.end_frto();
        if beyond || !(advanced || new_sack) || !original {
            // 3a: the new segments arrived ahead of the flight's rest, or
            // nothing sent before the timeout arrived since (only
            // retransmissions were delivered, of this timeout or of an
            // earlier recovery, as Linux's `FLAG_ORIG_SACK_ACKED` asks):
            // the flight was lost; resend it.
            self.snd.nxt = self.snd.una;
            return;
        }
        // 3b: data sent before the timeout and never resent arrived after
        // it: the timeout was spurious. Back to the window before it, and
        // on with new data (RFC 4015 3.2, as Eifel's response).
        c.tcp_frto_spurious += 1;
        c.tcp_spurious_rto += 1;
        self.undo_reduction(c);
    }

    fn end_frto(&mut self) {
        self.rec.frto = Frto::Off;
        self.rec.frto_new = 0;
    }

    /// Return to the window before the last reduction and leave recovery:
    /// nothing was lost (RFC 4015 3.2).
    fn undo_reduction(&mut self, c: &mut Counters) {
        let Some(u) = self.rec.undo.take() else {
            return;
        };
        self.cc.undo(u.cwnd as usize, u.ssthresh as usize);
        self.rec.in_recovery = false;
        self.rec.dup_acks = 0;
        if let Some(board) = self.rec.board.as_deref_mut() {
            board.unmark_lost();
        }
        c.tcp_undo += 1;
    }

    fn sacked_bytes(&self) -> usize {
        self.rec.board.as_deref().map_or(0, |b| b.sacked_bytes())
    }

    /// RFC 6937 3, PRR with the slow-start reduction bound (PRR-SSRB):
    /// while the pipe is above ssthresh, send in proportion to what is
    /// delivered (ssthresh / RecoverFS of it), so that the flight comes
    /// down to ssthresh smoothly over a round trip; once below, grow back
    /// toward ssthresh as slow start would, by at most what was delivered
    /// plus one segment.
    fn prr_on_ack(&mut self, delivered: usize) {
        let rec = &mut self.rec;
        rec.prr_delivered = rec.prr_delivered.saturating_add(clamp_u32(delivered));
        let pipe = rec.board.as_deref().map_or(0, |b| b.pipe());
        let ssthresh = self.cc.ssthresh();
        let (prr_delivered, prr_out) = (rec.prr_delivered as usize, rec.prr_out as usize);
        let sndcnt = if pipe > ssthresh {
            (prr_delivered * ssthresh)
                .div_ceil((rec.recover_fs as usize).max(1))
                .saturating_sub(prr_out)
        } else {
            let limit = prr_delivered.saturating_sub(prr_out).max(delivered) + self.mss;
            (ssthresh - pipe).min(limit)
        };
        rec.prr_quota = clamp_u32(sndcnt);
    }

    /// Something went in SACK recovery: PRR counts it (prr_out) against
    /// what this ACK allowed.
    fn prr_sent(&mut self, len: usize) {
        self.rec.prr_out = self.rec.prr_out.saturating_add(clamp_u32(len));
        self.rec.prr_quota = self.rec.prr_quota.saturating_sub(clamp_u32(len.max(1)));
    }

    /// RFC 8985 6.2 step 4: a D-SACK says a retransmission was spurious,
    /// maybe because the reordering window was too small: widen it, at
    /// most once per round trip, and keep it wide for 16 recoveries.
    fn rack_note_dsack(&mut self) {
        if self.rec.dsack_round.is_some_and(|r| self.snd.una >= r) {
            self.rec.dsack_round = None;
        }
        if self.rec.dsack_round.is_none() {
            self.rec.dsack_round = Some(self.snd.max);
            self.rec.reo_wnd_mult = self.rec.reo_wnd_mult.saturating_add(1);
            self.rec.reo_wnd_persist = 16;
        }
    }

    /// RFC 8985 6.2 step 4: after 16 recoveries without a D-SACK, the
    /// reordering window returns to its base.
    fn rack_recovery_ended(&mut self) {
        if self.rec.reo_wnd_persist > 0 {
            self.rec.reo_wnd_persist -= 1;
            if self.rec.reo_wnd_persist == 0 {
                self.rec.reo_wnd_mult = 1;
            }
        }
    }

    /// RACK.min_RTT for the ambiguity test of RFC 8985 6.2 step 2: before
    /// any sample, unbounded (as Linux's windowed minimum starts), so that
    /// a retransmission delivered before the first sample is taken as the
    /// original's delivery, not as its own (after a timeout of a delayed
    /// flight, its own would deem the whole flight lost).
    fn rack_min_rtt(&self) -> Duration {
        self.rec.min_rtt.unwrap_or(Duration::from_micros(u64::MAX))
    }

    /// RFC 8985 6.2 step 4, RACK.reo_wnd: none while no reordering was
    /// seen and recovery is under way or DupThresh segments are SACKed
    /// (the loss is plain), else a quarter of the minimum RTT (times the
    /// D-SACK multiplier), at most SRTT.
    fn rack_reo_wnd(&self) -> Duration {
        let sacked = self.rec.board.as_deref().map_or(0, |b| b.sacked_segments());
        if !self.rec.reordering_seen && (self.rec.in_recovery || sacked >= 3) {
            return Duration::from_micros(0);
        }
        let min_rtt = self.rec.min_rtt.map_or(0, |d| d.micros());
        let wnd = min_rtt * u64::from(self.rec.reo_wnd_mult) / 4;
        Duration::from_micros(self.rtt.srtt().map_or(wnd, |s| wnd.min(s.micros())))
    }

    /// RFC 8985 6.2 steps 2-5 after an ACK (or the reordering timer):
    /// update min_RTT and the reordering state from what it delivered,
    /// mark the segments RACK deems lost, and arm the reordering timer for
    /// those that may still be reordered. A loss starts fast recovery,
    /// unless a timeout's go-back-N is resending the flight anyway.
    fn rack_detect_loss(&mut self, now: Instant, delivered: Delivered, c: &mut Counters) {
        if let Some(rtt) = delivered.rtt {
            self.rec.min_rtt = Some(self.rec.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        self.rec.reordering_seen |= delivered.reordering;
        let reo_wnd = self.rack_reo_wnd();
        let Some(board) = self.rec.board.as_deref_mut() else {
            self.timers.set(Timer::Reorder, None);
            return;
        };
        let lost = board.detect_loss(now, reo_wnd);
        self.timers
            .set(Timer::Reorder, lost.timeout.map(|t| now.plus(t)));
        c.tcp_rack_lost += u64::from(lost.segments);
        // Segments sent during a recovery and deemed lost in it, not
        // resent when it ended, start the next one (as Linux re-enters
        // recovery while lost_out is not zero).
        if lost.segments == 0 && (self.rec.in_recovery || board.next_lost().is_none()) {
            return;
        }
        if self.rec.frto != Frto::Off {
            // After a timeout, F-RTO's next ACK says whether the flight
            // is lost at all; until then nothing more is resent.
            return;
        }
        if !self.rec.in_recovery && self.snd.nxt >= self.snd.max {
            self.enter_recovery(c);
            self.timers.set(Timer::TailLossProbe, None);
        }
        self.due.set(Due::RETRANSMIT_UNA);
    }

    /// Retransmit the segments deemed lost, lowest first, as far as PRR
    /// lets this ACK send (RFC 6937; RFC 6675 5 step (C) with NextSeg rule
    /// 1, RFC 8985 6: lost segments before new data). The first of a
    /// recovery goes whatever PRR says (RFC 6675 5 step 4.3).
    fn retransmit_lost<E: Emit + ?Sized>(&mut self, now: Instant, emit: &mut E) {
        loop {
            let Some(board) = self.rec.board.as_deref() else {
                return;
            };
            let Some((seq, end)) = board.next_lost() else {
                return;
            };
            let first = self.rec.high_rxt <= self.snd.una;
            if !first && self.rec.prr_quota == 0 {
                return;
            }
            if self.retransmit(now, seq, end.since(seq), emit).is_none() {
                return;
            }
            self.rec.high_rxt = self.rec.high_rxt.max(seq + 1);
            let next = self.rec.board.as_deref().and_then(|b| b.next_lost());
            if next.is_some_and(|(s, _)| s == seq) {
                // Nothing of it could go (the peer's window): wait.
                return;
            }
        }
    }

    /// Retransmit up to `len` bytes from `seq`: never past what was sent
    /// nor past the peer's window (a retransmission of SND.UNA without SACK
    /// would otherwise take up to an MSS of whatever is queued). None if
    /// nothing may go or emit failed.
    fn retransmit<E: Emit + ?Sized>(
        &mut self,
        now: Instant,
        seq: Seq,
        len: usize,
        emit: &mut E,
    ) -> Option<usize> {
        let limit = self.snd.max.min(self.snd.una + self.snd.wnd);
        if limit <= seq {
            return None;
        }
        self.send_segment(now, seq, len.min(limit.since(seq)), emit)
    }

    /// Send what is due: a pending RST, SYN or SYN-ACK, data within the
    /// windows, a FIN, retransmissions, probes, ACKs.
    pub fn dispatch<S: EmitSegment + ?Sized>(&mut self, now: Instant, emit: &mut S) {
        self.dispatch_with_ecn(now, &mut |r, _, a, b| emit(r, a, b))
    }

    /// [`Tcb::dispatch`], telling `emit` each segment's IP ECN codepoint.
    #[inline]
    pub fn dispatch_with_ecn<E: Emit + ?Sized>(&mut self, now: Instant, emit: &mut E) {
        if !self.nothing_due() {
            self.dispatch_counted(now, emit);
        }
    }

    /// [`Tcb::dispatch_with_ecn`] for a caller that found
    /// [`Tcb::nothing_due`] false already (the core's dispatch).
    #[inline]
    pub fn dispatch_due_with_ecn<E: Emit + ?Sized>(&mut self, now: Instant, emit: &mut E) {
        debug_assert!(!self.nothing_due());
        self.dispatch_counted(now, emit);
    }

    /// [`Tcb::dispatch`] without the [`Tcb::nothing_due`] shortcut: what
    /// a test compares the shortcut against.
    #[cfg(test)]
    pub fn dispatch_always<S: EmitSegment + ?Sized>(&mut self, now: Instant, emit: &mut S) {
        self.dispatch_counted(now, &mut |r, _, a, b| emit(r, a, b))
    }

    /// The core takes `tx_stats` after each dispatch; the connection's
    /// own totals are counted with them, where each segment goes out
    /// ([`Tcb::count_sent`]), not as a difference of copies of them.
    #[inline(never)]
    fn dispatch_counted<E: Emit + ?Sized>(&mut self, now: Instant, emit: &mut E) {
        if let Some(len) = self.predicted_send() {
            #[cfg(test)]
            SEND_PREDICTED.with(|n| n.set(n.get() + 1));
            // What dispatch_due does then: send_data's one segment, if
            // any (its loop finds nothing more, or stops where emit
            // failed), then probes, the ACK and the persist timer.
            if len > 0 {
                self.send_predicted(now, len, emit);
            }
            self.dispatch_after_data(now, emit);
            return;
        }
        self.dispatch_due(now, emit);
    }

    /// Send prediction, the output side of header prediction (Van
    /// Jacobson's, as `process_predicted` is the input's): an established
    /// connection with nothing to repair, probe, reset or close, and every
    /// unsent byte (if any) fitting one segment that the windows let go
    /// now, with no sender SWS decision to make. Then dispatch_due would
    /// send that one segment from SND.NXT (none if nothing is unsent, or
    /// Nagle holds it) and go on to the ACK and probe checks
    /// (`dispatch_after_data`): the bytes to send, or None for the general
    /// path. A test compares the two over seeded echo runs.
    #[inline(always)]
    fn predicted_send(&self) -> Option<usize> {
        if self.state != State::Established
            || self
                .due
                .has(Due::RST | Due::RETRANSMIT_UNA | Due::PROBE_TAIL | Due::FIN_QUEUED)
            || self.rec.in_recovery
            || self.rec.frto_new > 0
            || self.snd.nxt != self.snd.max
            || !send_predict_enabled()
        {
            return None;
        }
        let flight = self.snd.nxt.since(self.snd.una);
        let unsent = self.tx.len().saturating_sub(flight);
        if unsent == 0 {
            // An ACK, a probe: send_data has nothing to send.
            return Some(0);
        }
        // send_data's window outside recovery, with SND.NXT at SND.MAX.
        let pipe = match self.rec.board.as_deref() {
            Some(b) if self.sack_ok => b.pipe(),
            _ => flight,
        };
        let usable = self
            .snd
            .wnd
            .saturating_sub(flight)
            .min(self.cc.window().saturating_sub(pipe));
        let mss = self.send_mss();
        // All of it in one segment (no SWS decision to make).
        if unsent > mss || unsent > usable {
            return None;
        }
        if unsent < mss && self.cfg.nagle && flight > 0 {
            // Nagle: the small segment waits for the outstanding ACK.
            return Some(0);
        }
        Some(unsent)
    }

    /// [`Tcb::send_segment`] of what the send prediction found: `len`
    /// bytes (all that is unsent, 0 < len <= MSS) of new data from SND.NXT
    /// = SND.MAX, no FIN queued, outside recovery. The same segment and
    /// the same steps after it, without the cases of a retransmission, a
    /// FIN or recovery, and without a call (send_prediction_is_the_general_path
    /// compares the two).
    #[inline(always)]
    fn send_predicted<E: Emit + ?Sized>(&mut self, now: Instant, len: usize, emit: &mut E) {
        let seq = self.snd.nxt;
        self.stalled_since.get_or_insert(now);
        let mut repr = self.header(seq, TcpFlags::ACK | TcpFlags::PSH);
        self.finish_header(now, &mut repr);
        let (ip_ecn, cwr) = self.ecn.data_segment(true);
        repr.flags |= cwr;
        let (a, b) = self.tx.slices(seq.since(self.snd.una), len);
        if !emit(&repr, ip_ecn, a, b) {
            return self.segment_not_sent(now, cwr);
        }
        let end = seq + len;
        self.rec
            .board
            .get_or_insert_with(Scoreboard::take)
            .on_send(now, seq, end);
        self.count_sent(len, false);
        self.tx_stats.cwr += u64::from(cwr.contains(TcpFlags::CWR));
        if self.rtt_timed.is_none() && !self.ts_enabled {
            self.rtt_timed = Some((seq, now));
        }
        // The RTO once for both uses (a send after idle finds no
        // retransmission timer set: an echo's every response).
        let idle_rto = if self.snd.max == self.snd.una {
            let rto = self.rtt.rto();
            self.cc.on_send_after_idle(now, rto, self.mss);
            Some(rto)
        } else {
            None
        };
        self.snd.nxt = end;
        self.snd.max = end;
        if self.timers.get(Timer::Retransmit).is_none() {
            let rto = idle_rto.unwrap_or_else(|| self.rtt.rto());
            self.timers.set(Timer::Retransmit, Some(now.plus(rto)));
        }
        self.arm_tlp(now);
    }

    /// A segment (data or FIN) could not be sent (no buffer, TX full, ARP
    /// queue full): the data stays due, and the retransmission timer makes
    /// sure it is tried again even if nothing else is in flight to draw an
    /// ACK.
    fn segment_not_sent(&mut self, now: Instant, cwr: TcpFlags) {
        self.ecn.cwr_not_sent(cwr);
        self.ack_not_sent(now);
        self.timers
            .get_or_insert(Timer::Retransmit, now.plus(self.rtt.rto()));
    }

    /// A segment went out: `bytes` of data, a retransmission or not. The
    /// core's share (`tx_stats`) and the connection's own totals.
    #[inline(always)]
    fn count_sent(&mut self, bytes: usize, retransmit: bool) {
        self.tx_stats.segments += 1;
        self.tx_stats.bytes += bytes as u64;
        self.totals.segs_out += 1;
        self.totals.bytes_sent += bytes as u64;
        if retransmit {
            self.tx_stats.retransmits += 1;
            self.totals.retransmits += 1;
        }
    }

    /// Whether `dispatch_due` would send nothing and change nothing: a
    /// synchronized connection with no RST, ACK, probe or repair due, not
    /// in SACK recovery, every byte written sent (SND.NXT at SND.MAX, no
    /// FIN queued), so not window-blocked either. The common case after
    /// a segment that only needs a delayed ACK, or acknowledges all.
    ///
    /// Unsent bytes are tested first: after an application's write (the
    /// core's flush of it) they are the one test that fails, and the rest
    /// need not be read (make pathcost); the tests only read. The flags
    /// are one test of [`Due`]'s byte.
    #[inline]
    pub fn nothing_due(&self) -> bool {
        debug_assert_eq!(self.due.has(Due::RST), self.pending_rst.is_some());
        self.snd.nxt.since(self.snd.una) >= self.tx.len()
            && self.state.synchronized()
            && self.due == Due::default()
            && !(self.sack_ok && self.rec.in_recovery)
            && self.snd.nxt == self.snd.max
    }

    /// Send `rst` on the next dispatch (it replaces one not yet sent).
    fn queue_rst(&mut self, rst: TcpRepr) {
        self.pending_rst = Some(rst);
        self.due.set(Due::RST);
    }

    /// The RST queued, if any, taken for sending.
    fn take_rst(&mut self) -> Option<TcpRepr> {
        if !self.due.take(Due::RST) {
            debug_assert!(self.pending_rst.is_none());
            return None;
        }
        self.pending_rst.take()
    }

    fn dispatch_due<E: Emit + ?Sized>(&mut self, now: Instant, emit: &mut E) {
        if let Some(rst) = self.take_rst() {
            if emit(&rst, NOT_ECT, &[], &[]) {
                self.tx_stats.resets += 1;
            }
            return;
        }
        match self.state {
            State::Closed => return,
            State::SynSent | State::SynReceived => {
                if self.snd.nxt == self.snd.iss {
                    let flags = if self.state == State::SynSent {
                        TcpFlags::SYN
                    } else {
                        TcpFlags::SYN | TcpFlags::ACK
                    };
                    let mut repr = self.header(self.snd.iss, flags);
                    self.finish_header(now, &mut repr);
                    if emit(&repr, NOT_ECT, &[], &[]) {
                        let again = self.snd.max != self.snd.iss;
                        if !again && !self.ts_enabled {
                            self.rtt_timed = Some((self.snd.iss, now));
                        }
                        self.snd.nxt = self.snd.iss + 1;
                        self.snd.max = self.snd.max.max(self.snd.nxt);
                        self.count_sent(0, again);
                    }
                    // Sent or not (no buffer, TX full, ARP queue full), the
                    // SYN is due: the retransmission timer tries it again,
                    // as if it had been lost on the wire.
                    self.timers
                        .get_or_insert(Timer::Retransmit, now.plus(self.rtt.rto()));
                    self.stalled_since.get_or_insert(now);
                } else if self.state == State::SynReceived && self.due.has(Due::ACK_NOW) {
                    // RFC 9293 3.10.7.4, first check: an unacceptable
                    // segment is answered with an ACK, in SYN-RECEIVED too
                    // (in a simultaneous open, an RFC-strict peer's
                    // SYN-ACK is one, and it waits for this ACK).
                    let mut repr = self.header(self.snd.nxt, TcpFlags::ACK);
                    self.finish_header(now, &mut repr);
                    if emit(&repr, NOT_ECT, &[], &[]) {
                        self.count_sent(0, false);
                    } else {
                        self.ack_not_sent(now);
                    }
                }
                return;
            }
            _ => {}
        }
        if self.state.synchronized() && self.state != State::TimeWait {
            let repair = self.due.take(Due::RETRANSMIT_UNA);
            if self.sack_ok && self.rec.in_recovery {
                // What the scoreboard deems lost goes before new data (RFC
                // 8985 6), within the pipe, on every dispatch.
                self.retransmit_lost(now, emit);
            } else if repair {
                // NewReno: SND.UNA's segment, once per (partial) ACK.
                if let Some(sent) = self.retransmit(now, self.snd.una, self.mss, emit) {
                    self.rec.high_rxt = self.rec.high_rxt.max(self.snd.una + sent.max(1));
                }
            }
            let before = self.snd.max;
            self.send_data(now, emit);
            // The bit is cleared whether or not the probe goes.
            if self.due.take(Due::PROBE_TAIL)
                && self.snd.max == before
                && self.snd.max > self.snd.una
            {
                // RFC 8985 7.3: no new data, so the most recently
                // sent segment again: its record, from where it starts
                // (with its FIN), as Linux resends its last skb. The
                // last MSS of the data would end at the same place but
                // start inside the segment before a short last one,
                // and send_segment stops a retransmission at a record's
                // end: the probe resent the tail of a segment the peer
                // may hold and never the last, whose loss then waited
                // for the RTO (64 KB transfers: 45 full segments and
                // 376 bytes with the FIN).
                let data_end = self.snd.una + self.tx.len();
                let end = self.snd.max.min(data_end);
                let tail = end.since(self.snd.una).min(self.send_mss());
                let start = self
                    .rec
                    .board
                    .as_deref()
                    .and_then(|b| b.record_start(self.snd.max - 1))
                    .map_or(end - tail, |s| s.max(end - tail).min(end));
                let len = end.since(start);
                let sent = if len > 0 {
                    self.send_segment(now, start, len, emit)
                } else if self.fin_seq.is_some() {
                    self.send_segment(now, end, 0, emit)
                } else {
                    None
                };
                if sent.is_some() {
                    self.rec.tlp_end = Some(self.snd.max);
                }
            }
        }
        self.dispatch_after_data(now, emit);
    }

    /// dispatch_due's last steps, after data and retransmissions: a window
    /// probe or keepalive, the ACK still due, the persist timer.
    #[inline(always)]
    fn dispatch_after_data<E: Emit + ?Sized>(&mut self, now: Instant, emit: &mut E) {
        if self.due.take(Due::PROBE_NOW) {
            let flight = self.snd.nxt.since(self.snd.una);
            let usable = self.snd.wnd.min(self.cc.window()).saturating_sub(flight);
            if self.window_blocked() && usable > 0 {
                // RFC 9293 3.8.6.2.1, the override timeout: the window
                // stays below what sender SWS avoidance waits for, and no
                // ACK is due to open it: send what fits (as Linux
                // `tcp_write_wakeup`).
                let unsent = self.tx.len().saturating_sub(flight);
                if self
                    .send_segment(now, self.snd.nxt, unsent.min(usable), emit)
                    .is_some()
                {
                    self.tx_stats.probes += 1;
                }
            } else {
                // Zero-window probe and keepalive: an old sequence number
                // makes the peer answer with its ACK and window (RFC 9293
                // 3.8.6.1).
                let mut repr = self.header(self.snd.una - 1, TcpFlags::ACK);
                self.finish_header(now, &mut repr);
                if emit(&repr, NOT_ECT, &[], &[]) {
                    self.count_sent(0, false);
                    self.tx_stats.probes += 1;
                }
            }
        }
        if self.due.has(Due::ACK_NOW) {
            let mut repr = self.header(self.pure_ack_seq(), TcpFlags::ACK);
            self.finish_header(now, &mut repr);
            if emit(&repr, NOT_ECT, &[], &[]) {
                self.count_sent(0, false);
            } else {
                self.ack_not_sent(now);
            }
        }
        if self.window_blocked() {
            self.stalled_since.get_or_insert(now);
            if self.timers.get(Timer::Persist).is_none() {
                let at = self.clamp_to_user_timeout(now.plus(self.persist_interval()));
                self.timers.set(Timer::Persist, Some(at));
            }
        }
    }

    /// Data waits that the peer's window does not let out (zero, or below
    /// what sender SWS avoidance waits for), and nothing is in flight whose
    /// ACK could open it: the persist timer's business (RFC 9293 3.8.6.1,
    /// zero-window probes; 3.8.6.2.1, the override timeout). Checked after
    /// `send_data`, which sends whatever the window allows.
    fn window_blocked(&self) -> bool {
        // Nothing in flight first: after a send (its every call on the
        // send prediction's path) that test fails alone; they only read.
        self.snd.nxt == self.snd.una
            && self.state.synchronized()
            && self.state != State::TimeWait
            && !self.tx.is_empty()
            && self.snd.wnd < self.tx.len().min(self.send_mss())
    }

    /// The sequence number of an ACK or RST without data. Not SND.NXT once a
    /// timeout has set it back to SND.UNA: the peer may have received up to
    /// SND.MAX, and would find such an ACK old, drop it unread and answer
    /// with an ACK we would find just as old (FreeBSD `tcp_output` sends
    /// SND.MAX). Not past the right edge of the peer's window either (Linux
    /// `tcp_acceptable_seq`).
    fn pure_ack_seq(&self) -> Seq {
        let window_end = self.snd.una + self.snd.wnd;
        if self.snd.max <= window_end {
            self.snd.max
        } else {
            window_end.max(self.snd.nxt)
        }
    }

    /// An ACK (alone or on data) could not be sent: keep it due and try
    /// again from the delayed-ACK timer, at most 200 ms on (Linux
    /// `tcp_send_ack` on allocation failure, TCP_DELACK_MAX).
    fn ack_not_sent(&mut self, now: Instant) {
        self.due.set(Due::ACK_NOW);
        let retry = now.plus(Duration::from_millis(200));
        if self.timers.get(Timer::DelayedAck).is_none_or(|d| d > retry) {
            self.timers.set(Timer::DelayedAck, Some(retry));
        }
    }

    fn persist_interval(&self) -> Duration {
        let base = self.rtt.rto().micros().max(self.cfg.rto_min.micros());
        Duration::from_micros((base << self.persist_backoff.min(10)).min(60_000_000))
    }

    /// Send one segment of up to `max` bytes from `seq` (a retransmission
    /// when below SND.MAX). Returns the bytes sent, None if emit failed.
    fn send_segment<E: Emit + ?Sized>(
        &mut self,
        now: Instant,
        seq: Seq,
        max: usize,
        emit: &mut E,
    ) -> Option<usize> {
        let offset = seq.since(self.snd.una);
        let avail = self.tx.len().saturating_sub(offset);
        // A retransmission resends one segment as first sent (or a part
        // of it), never two: the scoreboard keeps one record each.
        let max = match self.rec.board.as_deref() {
            Some(b) if seq < self.snd.max => {
                b.record_end(seq).map_or(max, |end| max.min(end.since(seq)))
            }
            _ => max,
        };
        let len = avail.min(max).min(self.send_mss());
        let fin = self.due.has(Due::FIN_QUEUED)
            && offset + len == self.tx.len()
            && self.fin_seq.is_none_or(|f| seq + len <= f);
        if len == 0 && !fin {
            return Some(0);
        }
        self.stalled_since.get_or_insert(now);
        let mut flags = TcpFlags::ACK;
        if len > 0 && len == avail {
            flags |= TcpFlags::PSH;
        }
        if fin {
            flags |= TcpFlags::FIN;
        }
        let mut repr = self.header(seq, flags);
        self.finish_header(now, &mut repr);
        // RFC 3168 6.1.5: ECT(0) and CWR on new data only.
        let (ip_ecn, cwr) = self.ecn.data_segment(len > 0 && seq >= self.snd.max);
        repr.flags |= cwr;
        let (a, b) = self.tx.slices(offset, len);
        if !emit(&repr, ip_ecn, a, b) {
            self.segment_not_sent(now, cwr);
            return None;
        }
        let end = seq + len + fin as usize;
        self.rec
            .board
            .get_or_insert_with(Scoreboard::take)
            .on_send(now, seq, end);
        if self.sack_ok && self.rec.in_recovery {
            self.prr_sent(len);
        }
        self.count_sent(len, seq < self.snd.max);
        self.tx_stats.cwr += u64::from(cwr.contains(TcpFlags::CWR));
        if seq < self.snd.max {
            self.totals.bytes_retrans += len as u64;
            if let Some(u) = self.rec.undo.as_mut() {
                if u.retrans == 0 && u.stamp.is_none() {
                    u.stamp = Some(ts_now(now).max(1));
                }
                u.retrans = u.retrans.saturating_add(1);
            }
            if let Some((timed, _)) = self.rtt_timed {
                if timed >= seq {
                    // Karn: never time a retransmitted segment.
                    self.rtt_timed = None;
                }
            }
        } else if self.rtt_timed.is_none() && !self.ts_enabled {
            self.rtt_timed = Some((seq, now));
        }
        if fin && self.fin_seq.is_none() {
            self.fin_seq = Some(seq + len);
            match self.state {
                State::Established => self.state = State::FinWait1,
                State::CloseWait => self.state = State::LastAck,
                _ => {}
            }
        }
        if end > self.snd.nxt {
            self.snd.nxt = end;
        }
        let new_data = end > self.snd.max;
        if new_data {
            if self.snd.max == self.snd.una {
                // New data after an empty flight: the controller knows
                // since when it was empty (RFC 5681 4.1, RFC 9438 5.8).
                self.cc.on_send_after_idle(now, self.rtt.rto(), self.mss);
            }
            self.snd.max = end;
        }
        if self.timers.get(Timer::Retransmit).is_none() {
            self.timers
                .set(Timer::Retransmit, Some(now.plus(self.rtt.rto())));
        }
        // RFC 8985 7.2: the PTO restarts after new data is sent (a flight
        // that grew from one segment to two no longer waits for a delayed
        // ACK); arm_tlp keeps a probe already sent from arming another.
        if new_data || self.timers.get(Timer::TailLossProbe).is_none() {
            self.arm_tlp(now);
        }
        Some(len)
    }

    /// RFC 8985 7.2: PTO = 2 SRTT (at least 10 ms here, as Linux), plus the
    /// worst-case delayed-ACK time when one segment is in flight (its ACK
    /// may be held that long); only with a measured RTT, outside recovery,
    /// once per flight. A PTO later than the RTO is cut to the RTO's
    /// deadline (`TLP_calc_PTO`; Linux "if RTO is shorter, just schedule
    /// TLP in its place"): the probe goes out when the timeout would have,
    /// without the timeout's collapse of the window and backoff.
    fn arm_tlp(&mut self, now: Instant) {
        // Not after a timeout either (RFC 8985 7.2): the RTO owns the flight.
        if self.rec.tlp_fired
            || self.rec.in_recovery
            || self.snd.max == self.snd.una
            || self.rtt.backoffs() > 0
        {
            return;
        }
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        let mut pto = (2 * srtt.micros()).max(10_000);
        if self.snd.max.since(self.snd.una) <= self.mss {
            pto += WC_DEL_ACK_T.micros();
        }
        let mut at = now.plus(Duration::from_micros(pto));
        if let Some(rto) = self.timers.get(Timer::Retransmit) {
            at = at.min(rto);
        }
        self.timers.set(Timer::TailLossProbe, Some(at));
    }

    /// Send new (or, after an RTO, resend) data as the windows allow, with
    /// sender silly-window avoidance and Nagle (RFC 9293 3.8.6.2.1).
    fn send_data<E: Emit + ?Sized>(&mut self, now: Instant, emit: &mut E) {
        loop {
            // Going back after a timeout: skip what the peer reported
            // holding.
            if self.snd.nxt < self.snd.max {
                if let Some(end) = self
                    .rec
                    .board
                    .as_deref()
                    .and_then(|b| b.sacked_end(self.snd.nxt))
                {
                    self.snd.nxt = end.min(self.snd.max);
                    continue;
                }
            }
            let offset = self.snd.nxt.since(self.snd.una);
            let unsent = self.tx.len().saturating_sub(offset);
            let fin_due =
                self.due.has(Due::FIN_QUEUED) && self.fin_seq.is_none_or(|f| self.snd.nxt <= f);
            if unsent == 0 && !fin_due {
                return;
            }
            let flight = self.snd.nxt.since(self.snd.una);
            let usable = if self.sack_ok && self.rec.in_recovery {
                // In SACK recovery PRR (RFC 6937) says how much may go,
                // a segment at a time, not cwnd against the flight.
                let prr = if self.rec.prr_quota > 0 {
                    usize::MAX
                } else {
                    0
                };
                self.snd.wnd.saturating_sub(flight).min(prr)
            } else if self.rec.frto_new > 0 {
                // F-RTO step 2b: new segments instead of retransmissions,
                // within the peer's window only.
                self.snd.wnd.saturating_sub(flight)
            } else {
                // With SACK, cwnd limits the pipe (RFC 6675 4), not the
                // sequence space out: each segment a duplicate ACK reports
                // SACKed makes room for one new one before recovery begins
                // (RFC 3042 limited transmit, as Linux counts
                // packets_in_flight in every state). Without, the sender
                // went silent from the first SACK to the loss's detection,
                // and the segments it would have sent then went after the
                // retransmission instead: past the recovery point, so that
                // a loss among them was a second reduction (64 KB
                // transfers at 1% loss, losses in the first two rounds).
                // Not while a timeout's go-back-N resends (SND.NXT below
                // SND.MAX): the scoreboard's pipe is about SND.MAX.
                let pipe = match self.rec.board.as_deref() {
                    Some(b) if self.sack_ok && self.snd.nxt == self.snd.max => b.pipe(),
                    _ => flight,
                };
                self.snd
                    .wnd
                    .saturating_sub(flight)
                    .min(self.cc.window().saturating_sub(pipe))
            };
            let mss = self.send_mss();
            let len = unsent.min(mss).min(usable);
            if len < unsent || (unsent > 0 && len == 0) {
                // Not all of it fits: send only a full segment, or half the
                // largest window the peer offered.
                let ok = len == mss || (len > 0 && len >= self.snd.max_wnd / 2);
                if !ok {
                    return;
                }
            } else if len > 0 && len < mss && self.cfg.nagle && flight > 0 && !fin_due {
                // Nagle: a small segment waits for the outstanding ACK.
                return;
            }
            match self.send_segment(now, self.snd.nxt, len, emit) {
                Some(n) if n > 0 => self.rec.frto_new = self.rec.frto_new.saturating_sub(1),
                _ => return,
            }
        }
    }

    // ---- timers --------------------------------------------------------

    /// The earliest deadline of any timer. Inlined: the table's `put`
    /// reads it for every segment (out of line, a call per put).
    #[inline]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The earliest deadline set since the last call (`u64::MAX`: none),
    /// for the table's filing of the connection in its timer wheel.
    #[inline]
    pub fn take_earliest_set(&mut self) -> u64 {
        std::mem::replace(&mut self.timers.earliest_set, NO_TIMER)
    }

    /// The flight drained (SND.UNA = SND.MAX). While the table's wheel
    /// holds an entry for the connection (`timer_tick`), its timer path
    /// runs again before long (the wheel is lazy: the entry fires even
    /// though the timers it was filed for are cleared) and gives the board
    /// back then if the flight is still empty ([`Tcb::on_timer`]): a busy
    /// connection keeps its emptied board for the next flight instead of
    /// handing it to the core's spares and taking it back. Without an
    /// entry it goes back now, so that an idle connection holds none.
    #[inline]
    fn flight_drained(&mut self) {
        if self.timer_tick.is_some() {
            if let Some(board) = self.rec.board.as_deref_mut() {
                board.reset();
                #[cfg(test)]
                BOARDS_KEPT.with(|n| n.set(n.get() + 1));
            }
        } else if let Some(board) = self.rec.board.take() {
            Scoreboard::give(board);
        }
    }

    /// Run the timers due by `now`.
    pub fn on_timer(&mut self, now: Instant, c: &mut Counters) {
        if self.snd.una == self.snd.max {
            // An emptied board kept by `flight_drained`.
            if let Some(board) = self.rec.board.take() {
                Scoreboard::give(board);
            }
        }
        if self.timers.get(Timer::Close).is_some_and(|d| d <= now) {
            self.timers.set(Timer::Close, None);
            if matches!(self.state, State::TimeWait | State::FinWait2) {
                self.finish(CloseReason::Normal);
                return;
            }
        }
        if self.timers.get(Timer::DelayedAck).is_some_and(|d| d <= now) {
            self.timers.set(Timer::DelayedAck, None);
            self.due.set(Due::ACK_NOW);
            c.tcp_delayed_acks += 1;
        }
        // The probe first: one cut to the RTO's deadline goes out in the
        // timeout's place (RFC 8985 7.2), and the RTO is armed again from
        // the probe (7.3: "re-arm the RTO timer, not the PTO timer").
        if self
            .timers
            .get(Timer::TailLossProbe)
            .is_some_and(|d| d <= now)
        {
            self.timers.set(Timer::TailLossProbe, None);
            if self.snd.max > self.snd.una && !self.rec.in_recovery && self.state.synchronized() {
                self.rec.tlp_fired = true;
                self.due.set(Due::PROBE_TAIL);
                c.tcp_tail_loss_probes += 1;
                self.timers
                    .set(Timer::Retransmit, Some(now.plus(self.rtt.rto())));
            }
        }
        if self.timers.get(Timer::Retransmit).is_some_and(|d| d <= now) {
            self.timers.set(Timer::TailLossProbe, None);
            self.on_rto(now, c);
        }
        if self.timers.get(Timer::Reorder).is_some_and(|d| d <= now) {
            self.timers.set(Timer::Reorder, None);
            if self.state.synchronized() {
                c.tcp_rack_timer += 1;
                self.rack_detect_loss(now, Delivered::default(), c);
            }
        }
        if self.timers.get(Timer::Persist).is_some_and(|d| d <= now) {
            self.timers.set(Timer::Persist, None);
            if self.window_blocked() {
                if self.persist_gives_up(now, c) {
                    return;
                }
                self.probe_window(now);
            }
        }
        if let (Some(d), Some(ka)) = (self.timers.get(Timer::Keepalive), self.cfg.keepalive) {
            if d <= now {
                if self.keepalive_sent >= ka.probes {
                    return self.time_out(c);
                }
                self.keepalive_sent += 1;
                self.due.set(Due::PROBE_NOW);
                self.timers
                    .set(Timer::Keepalive, Some(now.plus(ka.interval)));
            }
        }
    }

    /// RFC 6298 5.4-5.7 and RFC 5681 3.1: the retransmission timer fired.
    fn on_rto(&mut self, now: Instant, c: &mut Counters) {
        self.timers.set(Timer::Retransmit, None);
        if self.state.synchronized() && self.snd.wnd == 0 && !self.tx.is_empty() {
            // The peer shrank its window to zero under data in flight (RFC
            // 9293 3.8.6.1 lets a receiver do so): the data is not lost,
            // the peer cannot take it, and no retransmission would be
            // taken either. Not a retransmission failure: probe the window
            // as the persist timer does (Linux `tcp_retransmit_timer`, a
            // shrunk window), and resend from SND.UNA when it opens.
            self.snd.nxt = self.snd.una;
            self.rec.tlp_fired = false;
            self.due.clear(Due::PROBE_TAIL);
            self.due.clear(Due::RETRANSMIT_UNA);
            self.rtt_timed = None;
            self.end_frto();
            if !self.persist_gives_up(now, c) {
                self.probe_window(now);
            }
            return;
        }
        // With a user timeout (RFC 5482), time decides, not a count (as
        // Linux `retransmits_timed_out`); not for a passive open's SYN-ACK,
        // which no application waits for yet (as Linux, whose request
        // sockets retry by tcp_synack_retries alone).
        let embryonic = self.passive && self.state == State::SynReceived;
        if let Some(timeout) = self.cfg.user_timeout.filter(|_| !embryonic) {
            if self.stalled_since.is_some_and(|t| now.since(t) >= timeout) {
                c.tcp_user_timeouts += 1;
                return self.time_out(c);
            }
        } else if !self.state.synchronized() {
            if self.rtt.backoffs() >= self.cfg.syn_retries {
                return self.time_out(c);
            }
        } else if self.app_closed && self.rtt.backoffs() >= self.cfg.orphan_retries {
            if self.cfg.orphan_retries < self.cfg.max_retries {
                c.tcp_orphan_timeouts += 1;
            }
            return self.time_out(c);
        } else if self.rtt.backoffs() >= self.cfg.max_retries {
            return self.time_out(c);
        }
        c.tcp_rto += 1;
        if !self.state.synchronized() {
            // The SYN (or a SYN-ACK) goes again: told apart from the data
            // phase's timeouts.
            c.tcp_syn_retransmits += 1;
        }
        self.end_frto();
        if self.state.synchronized() && self.snd.max > self.snd.una {
            if self.rtt.backoffs() > 0 {
                // A timeout again: no spurious one to detect.
                self.rec.undo = None;
            } else if self.rec.in_recovery && self.rec.undo.is_some() {
                // Recovery's reduction, deepened: undone as one.
                if let Some(u) = self.rec.undo.as_mut() {
                    u.rto = true;
                }
            } else {
                self.start_undo_episode(true);
                // RFC 5682 step 1: a first timeout, outside fast recovery
                // (as Linux: a timeout there more likely lost a
                // retransmission), and not a repeated one (already in RTO
                // recovery).
                self.rec.frto = Frto::FirstAck {
                    recovery_point: self.snd.max,
                };
            }
            self.cc.on_rto(self.snd.max.since(self.snd.una), self.mss);
        }
        self.rtt.back_off();
        self.rec.in_recovery = false;
        self.rec.recover = self.snd.max;
        self.rec.dup_acks = 0;
        self.rtt_timed = None;
        self.due.clear(Due::RETRANSMIT_UNA);
        // RFC 2018 8: the receiver may renege on what it reported; keep
        // trusting the report for one timeout (go-back-N skips what it
        // holds), not for two in a row.
        if let Some(board) = self.rec.board.as_deref_mut() {
            board.on_timeout(self.rtt.backoffs() > 1);
        }
        self.timers.set(Timer::Reorder, None);
        self.rec.tlp_fired = false;
        self.due.clear(Due::PROBE_TAIL);
        self.rec.tlp_end = None;
        self.rec.high_rxt = self.snd.una;
        self.snd.nxt = self.snd.una;
        if matches!(self.state, State::SynSent | State::SynReceived) {
            self.snd.nxt = self.snd.iss;
        }
        self.timers.set(
            Timer::Retransmit,
            Some(self.clamp_to_user_timeout(now.plus(self.rtt.rto()))),
        );
    }

    /// Give up: retransmissions or probes went unanswered (counted in
    /// `tcp_timeouts`; the caller counts the cause).
    fn time_out(&mut self, c: &mut Counters) {
        c.tcp_timeouts += 1;
        if self.passive && self.state == State::SynReceived {
            // An embryonic passive open, which no application was told
            // of (it is accepted once established): it just goes, as on
            // RST or SYN above (Linux drops a request socket out of
            // SYN-ACK retries without a word).
            self.state = State::Closed;
            self.timers.clear_all();
            return;
        }
        if self.state.synchronized() {
            self.queue_rst(self.header(self.pure_ack_seq(), TcpFlags::RST | TcpFlags::ACK));
        }
        self.finish(CloseReason::TimedOut);
    }

    /// The limits on window probing, checked before each probe (Linux
    /// `tcp_probe_timer`). RFC 1122 4.2.2.17 keeps a connection open for as
    /// long as the peer answers its probes, but not past the user timeout
    /// (RFC 5482), nor past `max_retries` probes unanswered in a row, nor,
    /// once the application has closed it, past `orphan_retries` probes
    /// answered or not: a peer that holds its window at zero must not pin
    /// a connection nobody waits for. True if the connection timed out.
    fn persist_gives_up(&mut self, now: Instant, c: &mut Counters) -> bool {
        let user = self
            .cfg
            .user_timeout
            .zip(self.stalled_since)
            .is_some_and(|(timeout, t)| now.since(t) >= timeout);
        if user {
            c.tcp_user_timeouts += 1;
        } else if self.app_closed && self.persist_backoff >= self.cfg.orphan_retries {
            c.tcp_orphan_timeouts += 1;
        } else if self.persist_probes >= self.cfg.max_retries {
            c.tcp_persist_timeouts += 1;
        } else {
            return false;
        }
        self.time_out(c);
        true
    }

    /// Send a window probe now and arm the next, backed off.
    fn probe_window(&mut self, now: Instant) {
        self.due.set(Due::PROBE_NOW);
        self.persist_backoff += 1;
        self.persist_probes += 1;
        let at = self.clamp_to_user_timeout(now.plus(self.persist_interval()));
        self.timers.set(Timer::Persist, Some(at));
    }

    /// A retransmission or persist deadline no later than the user
    /// timeout's (Linux `tcp_clamp_rto_to_user_timeout`), so that it ends
    /// the connection on time.
    fn clamp_to_user_timeout(&self, at: Instant) -> Instant {
        match self.cfg.user_timeout.zip(self.stalled_since) {
            Some((timeout, t)) => at.min(t.plus(timeout)),
            None => at,
        }
    }

    /// RFC 5482: the user timeout of this connection (None: off), in place
    /// of the configured one.
    pub fn set_user_timeout(&mut self, timeout: Option<Duration>) {
        self.cfg.user_timeout = timeout;
    }

    /// The congestion controller of this connection, in place of the
    /// configured one (Linux `TCP_CONGESTION`). Best before data is sent;
    /// a later switch keeps cwnd and ssthresh ([`Cc::switch_to`]).
    pub fn set_congestion_control(&mut self, algorithm: CcAlgorithm) {
        self.cfg.cc = algorithm;
        self.cc.switch_to(algorithm, self.mss);
    }

    /// This connection's congestion control algorithm.
    pub fn congestion_control(&self) -> CcAlgorithm {
        self.cc.algorithm()
    }

    /// Everything the connection tells about itself at `now` (the
    /// application's `tcp_info` and the connections view).
    pub fn info(&self, now: Instant) -> TcpInfo {
        let rcv_wnd = if self.rcv.adv > self.rcv.nxt {
            self.rcv.adv.since(self.rcv.nxt)
        } else {
            0
        };
        TcpInfo {
            cwnd: self.cc.window(),
            srtt: self.rtt.srtt(),
            rto: self.rtt.rto(),
            unacked: self.tx.len(),
            congestion_control: self.cc.algorithm(),
            state: self.state,
            snd_una: self.snd.una.0,
            snd_nxt: self.snd.nxt.0,
            snd_max: self.snd.max.0,
            snd_wnd: self.snd.wnd,
            snd_wscale: self.snd.shift,
            rcv_nxt: self.rcv.nxt.0,
            rcv_wnd,
            rcv_wscale: self.rcv.shift,
            mss: self.mss,
            ssthresh: self.cc.ssthresh(),
            rttvar: self.rtt.rttvar(),
            min_rtt: self.rec.min_rtt,
            backoff: self.rtt.backoffs(),
            in_recovery: self.rec.in_recovery,
            timestamps: self.ts_enabled,
            sack: self.sack_ok,
            ecn: self.ecn.ok,
            recv_queued: self.rx.len(),
            send_buffer: self.tx.capacity(),
            recv_buffer: self.rx.capacity(),
            passive: self.passive,
            age: now.since(self.created),
            totals: self.totals,
        }
    }

    /// ECN (RFC 3168) for this connection, in place of the configured
    /// mode: what our SYN asks for, and whether a peer's request is
    /// accepted. Only before the handshake (false after: ECN is settled by
    /// the SYNs).
    pub fn set_ecn(&mut self, mode: EcnMode) -> bool {
        let before =
            self.snd.max == self.snd.iss && matches!(self.state, State::SynSent | State::Closed);
        if before {
            self.ecn.mode = mode;
        }
        before
    }

    /// ECN was negotiated for this connection.
    pub fn ecn_negotiated(&self) -> bool {
        self.ecn.ok
    }

    /// Nagle's algorithm (RFC 1122 4.2.3.4) for this connection, in place
    /// of the configured one (off: Linux `TCP_NODELAY`). What it held back
    /// goes at the next dispatch.
    pub fn set_nagle(&mut self, on: bool) {
        self.cfg.nagle = on;
    }

    /// Keepalive (RFC 1122 4.2.3.6) for this connection, in place of the
    /// configured one (Linux `SO_KEEPALIVE` with `TCP_KEEPIDLE`,
    /// `TCP_KEEPINTVL`, `TCP_KEEPCNT`): the idle time runs from `now`, and
    /// probes already sent are forgotten; None stops probing.
    pub fn set_keepalive(&mut self, now: Instant, keepalive: Option<Keepalive>) {
        self.cfg.keepalive = keepalive;
        self.peer_alive(now);
    }
}

// ---- handshakes completed without a Tcb (SYN cache, SYN cookies) ---------

// ---- buffer autotuning ---------------------------------------------------

impl Tcb {
    /// The most the receive buffer may grow to: the connection's maximum,
    /// and no more than the window scale agreed in the SYNs can announce.
    fn rx_limit(&self) -> usize {
        self.cfg
            .rx_buffer_max
            .min(65535 << self.rcv.shift)
            .max(self.rx.capacity())
    }

    /// Receive autotuning (`autotune`, Linux `tcp_rcv_space_adjust`), as
    /// data arrives: once a round trip, grow the receive buffer to what
    /// the application's reading rate needs. Growth only adds room past
    /// the edge already advertised (RFC 9293 3.8.6: the window never
    /// shrinks); the next ACK carries it.
    fn tune_rx_buffer(&mut self, now: Instant, seg: &TcpRepr, len: usize, c: &mut Counters) {
        if !self.state.receives() || self.rx.capacity() >= self.rx_limit() {
            return;
        }
        let read = self.rcv.nxt - self.rx.len();
        if !self.rcv_space.started() {
            let initial = autotune::INITIAL_SEGMENTS * self.cfg.mss;
            self.rcv_space
                .start(read, now.micros(), initial.min(self.rx.capacity()));
        }
        // Full-sized data only: a small segment may have waited for Nagle
        // or the application, and would measure that.
        if let (true, Some((_, ecr))) = (self.ts_enabled, seg.options.timestamps) {
            if len >= self.cfg.mss.min(536) {
                self.rcv_space.sample_ts(ts_now(now), ecr);
            }
        }
        let rtt = match self.rcv_space.rtt_us() {
            0 => self
                .rtt
                .srtt()
                .map_or(0, |d| d.micros().min(u32::MAX as u64) as u32),
            r => r,
        };
        let Some(want) = self.rcv_space.adjust(read, now.micros(), rtt, self.cfg.mss) else {
            return;
        };
        let want = want.min(self.rx_limit());
        let have = self.rx.capacity();
        if want <= have {
            return;
        }
        if buffer::budget_allows(want - have) {
            self.rx.set_capacity(want);
            c.tcp_rcvbuf_grown += 1;
        } else {
            c.tcp_buffer_growth_denied += 1;
        }
    }

    /// Send autotuning (`autotune`, Linux `tcp_sndbuf_expand`), when the
    /// application found the send buffer full: grow it to two congestion
    /// windows; the room is announced as `Writable`.
    fn tune_tx_buffer(&mut self, c: &mut Counters) {
        let have = self.tx.capacity();
        if !self.can_send() || have >= self.cfg.tx_buffer_max {
            return;
        }
        let want = autotune::send_space(self.cc.window(), self.mss).min(self.cfg.tx_buffer_max);
        if want <= have {
            return;
        }
        if buffer::budget_allows(want - have) {
            self.tx.set_capacity(want);
            c.tcp_sndbuf_grown += 1;
            self.want_writable = false;
            self.events |= event::WRITABLE;
        } else {
            c.tcp_buffer_growth_denied += 1;
        }
    }

    /// Fix this connection's buffers (Linux `SO_SNDBUF`, `SO_RCVBUF`):
    /// `send` and `recv` bytes, each direction left as it is when None,
    /// and no autotuning for a direction fixed. Never below what a buffer
    /// holds, nor, receiving, below the window already advertised (RFC
    /// 9293 3.8.6); a receive buffer above what the window scale of the
    /// SYN can announce is announced only as far as it can. Returns the
    /// capacities now.
    pub fn set_buffer_limits(
        &mut self,
        send: Option<usize>,
        recv: Option<usize>,
    ) -> (usize, usize) {
        if let Some(n) = send {
            let n = self.tx.set_capacity(n);
            self.cfg.tx_buffer_max = n;
            if self.want_writable && self.tx.free() > 0 {
                self.want_writable = false;
                self.events |= event::WRITABLE;
            }
        }
        if let Some(n) = recv {
            let advertised = if self.rcv.adv > self.rcv.nxt {
                self.rcv.adv.since(self.rcv.nxt)
            } else {
                0
            };
            let n = self.rx.set_capacity(n.max(self.rx.len() + advertised));
            self.cfg.rx_buffer_max = n;
            if self.state == State::SynSent
                && self.snd.max == self.snd.iss
                && self.cfg.window_scaling
            {
                // Our SYN has not gone out: its window scale can still
                // cover the new size.
                self.rcv.shift = Self::wanted_shift(&self.cfg);
            }
        }
        (self.tx.capacity(), self.rx.capacity())
    }

    /// The capacities of the send and receive buffers now.
    pub fn buffer_capacities(&self) -> (usize, usize) {
        (self.tx.capacity(), self.rx.capacity())
    }
}

/// The options of a SYN (`active`) or SYN-ACK we send, but timestamps: our
/// MSS (RFC 9293 3.7.1); our window scale (RFC 7323 2.2: in a SYN-ACK only
/// when the SYN offered one) and SACK-permitted (RFC 2018: likewise).
/// `Tcb` and the SYN cache both build their SYN-ACKs with it, so that a
/// half-open connection answers exactly as a connection would.
pub fn syn_options(
    cfg: &TcpConfig,
    active: bool,
    snd_shift: u8,
    rcv_shift: u8,
    sack_ok: bool,
) -> TcpOptions {
    let offer_ws = cfg.window_scaling && (active || snd_shift > 0 || rcv_shift > 0);
    TcpOptions {
        mss: Some(cfg.mss.min(65535) as u16),
        window_scale: offer_ws.then_some(rcv_shift),
        sack_permitted: cfg.sack && (active || sack_ok),
        ..TcpOptions::default()
    }
}

impl Tcb {
    /// The SYN-ACK already left: the SYN cache or a cookie answered the SYN,
    /// and this connection, just made by [`Tcb::accept`] from the SYN's
    /// options, is being built from the handshake's ACK, which
    /// [`Tcb::process`] takes next. As if `dispatch` had sent the SYN-ACK:
    /// SND.NXT = SND.MAX = ISS + 1, the window it advertised, an RTO armed
    /// (for an ACK `process` does not take). `first_sent`: when the only
    /// SYN-ACK left, for an RTT sample without timestamps (Karn: None after
    /// a retransmission).
    pub fn syn_ack_sent(&mut self, now: Instant, first_sent: Option<Instant>) {
        self.snd.nxt = self.snd.iss + 1;
        self.snd.max = self.snd.nxt;
        self.rcv.adv = self.rcv.nxt + self.rx.window().min(65535);
        self.timers
            .set(Timer::Retransmit, Some(now.plus(self.rtt.rto())));
        if let (false, Some(sent)) = (self.ts_enabled, first_sent) {
            self.rtt_timed = Some((self.snd.iss, sent));
        }
        // The SYN-ACK the SYN cache (or a cookie) sent for it; its
        // retransmissions are the core's count, not the connection's.
        self.totals.segs_out += 1;
    }
}

/// RFC 9293 3.10.7.1: the reset for a segment that finds no connection
/// (CLOSED) or a listener it cannot be for. None for a RST.
pub fn reset_for(seg: &TcpRepr, payload_len: usize) -> Option<TcpRepr> {
    if seg.flags.rst() {
        return None;
    }
    let (seq, ack, flags) = if seg.flags.ack() {
        (seg.ack_number, 0, TcpFlags::RST)
    } else {
        let len = payload_len + seg.flags.syn() as usize + seg.flags.fin() as usize;
        (
            0,
            seg.seq_number.wrapping_add(len as u32),
            TcpFlags::RST | TcpFlags::ACK,
        )
    };
    Some(TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: 0,
        urgent_at: 0,
        options: TcpOptions::default(),
    })
}

#[cfg(test)]
mod timers_tests {
    use super::*;

    #[test]
    fn timers_hold_deadlines_and_the_earliest() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        assert_eq!(t.get(Timer::Retransmit), None);
        t.set(Timer::Keepalive, Some(Instant::from_secs(7)));
        t.set(Timer::DelayedAck, Some(Instant::from_millis(40)));
        assert_eq!(t.next(), Some(Instant::from_millis(40)));
        assert_eq!(t.get(Timer::Keepalive), Some(Instant::from_secs(7)));
        // get_or_insert keeps a deadline that is set.
        t.get_or_insert(Timer::DelayedAck, Instant::from_millis(1));
        assert_eq!(t.get(Timer::DelayedAck), Some(Instant::from_millis(40)));
        t.get_or_insert(Timer::Retransmit, Instant::from_millis(5));
        assert_eq!(t.next(), Some(Instant::from_millis(5)));
        // Instant zero is a deadline like any other.
        t.set(Timer::Close, Some(Instant::ZERO));
        assert_eq!(t.next(), Some(Instant::ZERO));
        t.set(Timer::Close, None);
        t.set(Timer::Retransmit, None);
        t.set(Timer::DelayedAck, None);
        assert_eq!(t.next(), Some(Instant::from_secs(7)));
        t.clear_all();
        assert_eq!(t.next(), None);
        assert!((0..TIMERS).all(|i| t.at[i] == NO_TIMER));
    }
}

/// [`Tcb::echo_readable`] against recv and send: whole echo runs between
/// two cores (crate::fuzzing::pair), `tcp-client` against `tcp-echo` over
/// seeded lossy, duplicating, reordering links, run with the move and
/// without it, must send the same frames (the link's digest over every
/// byte of every frame, and each segment's fate), count the same and
/// deliver the same; and the move must have been taken.
#[cfg(test)]
mod echo_move_tests {
    use super::{ECHO_MOVE, ECHO_MOVED, SEND_PREDICT, SEND_PREDICTED};
    use crate::app::{AppFactory, AppSpec};
    use crate::fuzzing::pair::{LinkConfig, LinkStats, Pair, Prng, RandomLink, Tapped};
    use crate::tcp::TcpConfig;
    use crate::time::Duration;

    type AppCounters = Vec<(String, Vec<(&'static str, u64)>)>;

    struct Run {
        link: LinkStats,
        tap: Vec<Tapped>,
        counters: [Vec<(String, u64)>; 2],
        apps: [AppCounters; 2],
    }

    fn factories(app: &str) -> Vec<AppFactory> {
        vec![app.parse::<AppSpec>().unwrap().factory()]
    }

    fn run(seed: u64, link: LinkConfig, tcp: TcpConfig, conns: u64, bytes: u64) -> Run {
        let client = factories(&format!("tcp-client:198.18.0.2:7:{bytes}:{conns}"));
        let echo = factories("tcp-echo:7");
        let mut pair = Pair::new(
            format!("seed {seed}"),
            RandomLink::new(seed, link),
            [&client[..], &echo[..]],
            tcp,
        );
        pair.tap = Some(Vec::new());
        let start = pair.now;
        let done = |p: &Pair<RandomLink>| {
            let apps = p.nodes[0].core.app_counters();
            let get = |k: &str| apps[0].1.iter().find(|(n, _)| *n == k).unwrap().1;
            get("completed") + get("failed") == conns && p.quiet()
        };
        while !done(&pair) {
            pair.step_to(pair.now.plus(Duration::from_micros(250)));
            assert!(
                pair.now.since(start) < Duration::from_secs(120),
                "seed {seed}: not done"
            );
        }
        Run {
            link: pair.stats.clone(),
            tap: pair.tap.take().unwrap_or_default(),
            counters: [pair.moved_counters(0), pair.moved_counters(1)],
            apps: [
                pair.nodes[0].core.app_counters(),
                pair.nodes[1].core.app_counters(),
            ],
        }
    }

    /// Seeded echo runs, each twice on threads of its own (a fresh
    /// buffer pool each, its peak a counter): with `set(true)` and with
    /// `set(false)`. The two must send the same frames (the link's digest
    /// over every byte of every frame, and each segment's fate), count the
    /// same and deliver the same. Returns how often `taken` says the fast
    /// path ran (it must not when off).
    fn compare_runs(seed0: u64, set: fn(bool), taken: fn() -> u64) -> u64 {
        let mut rng = Prng(seed0);
        let mut total = 0;
        for seed in 1..=24u64 {
            let link = LinkConfig {
                loss: rng.below(60) as u32,
                duplicate: rng.below(30) as u32,
                corrupt: rng.below(20) as u32,
                latency: Duration::from_micros(200 + rng.below(2000)),
                jitter: Duration::from_micros(rng.below(3000)),
            };
            let tcp = TcpConfig {
                time_wait: Duration::from_secs(1),
                sack: rng.below(4) != 0,
                timestamps: rng.below(4) != 0,
                delayed_ack: if rng.below(3) == 0 {
                    None
                } else {
                    TcpConfig::default().delayed_ack
                },
                ..TcpConfig::default()
            };
            // From one short segment per connection (each echo a move,
            // unless the link reorders it) to bulk transfers that grow the
            // buffers (where the slot counts part).
            let (conns, bytes) = match rng.below(3) {
                0 => (1 + rng.below(30), 1 + rng.below(1400)),
                1 => (1 + rng.below(10), 1 + rng.below(20_000)),
                _ => (1 + rng.below(4), 100_000 + rng.below(200_000)),
            };
            let on_thread = |on: bool| {
                std::thread::spawn(move || {
                    set(on);
                    let r = run(seed, link, tcp, conns, bytes);
                    (r, taken())
                })
                .join()
                .unwrap()
            };
            let (fast, n) = on_thread(true);
            let (slow, none) = on_thread(false);
            assert_eq!(none, 0, "forced off, yet taken");
            let what = format!("seed {seed}, {conns} x {bytes} bytes, {link:?}");
            assert_eq!(fast.tap.len(), slow.tap.len(), "{what}: segment counts");
            for (i, (f, s)) in fast.tap.iter().zip(&slow.tap).enumerate() {
                assert_eq!(f, s, "{what}: segment {i}");
            }
            assert_eq!(fast.link, slow.link, "{what}: frames");
            assert_eq!(fast.counters, slow.counters, "{what}: counters");
            assert_eq!(fast.apps, slow.apps, "{what}: applications");
            total += n;
        }
        total
    }

    #[test]
    fn echo_move_is_recv_and_send() {
        let moved = compare_runs(
            15,
            |on| ECHO_MOVE.with(|m| m.set(on)),
            || ECHO_MOVED.with(std::cell::Cell::get),
        );
        // Most echoes of short transfers move; bulk ones seldom do.
        assert!(moved > 100, "the move was taken {moved} times");
        println!("the move was taken {moved} times");
    }

    /// [`super::Tcb::predicted_send`] against dispatch_due: the same runs
    /// (other seeds), with the prediction and without.
    #[test]
    fn send_prediction_is_the_general_path() {
        let predicted = compare_runs(
            16,
            |on| SEND_PREDICT.with(|m| m.set(on)),
            || SEND_PREDICTED.with(std::cell::Cell::get),
        );
        // Echoes, ACKs, and small segments Nagle holds (a bulk sender's
        // queue of more than a segment is the general path's).
        assert!(
            predicted > 1000,
            "the prediction was taken {predicted} times"
        );
        println!("the prediction was taken {predicted} times");
    }
}

#[cfg(test)]
mod due_tests {
    use super::Due;

    #[test]
    fn due_bits_are_independent() {
        let all = [
            Due::ACK_NOW,
            Due::PROBE_NOW,
            Due::FIN_QUEUED,
            Due::PROBE_TAIL,
            Due::RETRANSMIT_UNA,
            Due::RST,
        ];
        // One bit each, none shared.
        assert_eq!(all.iter().fold(0, |a, b| a | b).count_ones(), 6);
        for &bit in &all {
            let mut d = Due::default();
            d.set(bit);
            assert!(d.has(bit) && d != Due::default());
            for &other in all.iter().filter(|&&o| o != bit) {
                assert!(!d.has(other));
                d.set(other);
                d.clear(other);
            }
            assert!(d.has(bit));
            assert!(d.take(bit));
            assert!(!d.take(bit));
            assert_eq!(d, Due::default());
        }
    }
}
