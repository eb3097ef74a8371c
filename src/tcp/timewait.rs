//! TIME-WAIT as a compact record (RFC 9293 3.10.7.4, TIME-WAIT; RFC 7323;
//! RFC 6191): what a connection that closed first must remember for 2*MSL
//! so that old duplicates of it are not taken for a new incarnation, and
//! nothing more. No buffers, no congestion or RTT state, no timers but one
//! deadline: the table keeps the record in the connection's slot, in place
//! of the boxed [`Tcb`](super::Tcb), and the 4-tuple stays the slot's key.
//!
//! Pure logic: [`TimeWait::process`] says what to do with a segment
//! ([`TwVerdict`]); the caller sends the ACK, frees the slot or hands a SYN
//! to the listener.
//!
//! Choices, each where the RFCs leave one:
//! - RCV.WND is zero: the peer's FIN ended its stream, so the only
//!   acceptable segment is an empty one at RCV.NXT (RFC 9293 3.10.7.4,
//!   first check, zero-window row), and our ACKs offer no window.
//! - An acceptable RST (exactly RCV.NXT, RFC 5961 3.2) ends the record, as
//!   RFC 9293 3.10.7.4 (second check, TIME-WAIT) says and Linux does by
//!   default (`tcp_rfc1337 = 0`), rather than ignoring it as RFC 1337
//!   section 3 suggests: with RFC 5961's exact match an old duplicate RST
//!   would have to hit RCV.NXT exactly (RFC 1337's hazard), while a peer
//!   that restarted and reuses the port answers our ACK to its SYN with a
//!   RST at exactly RCV.NXT and can then connect at once instead of 2*MSL
//!   later.
//! - A SYN that is not a new incarnation draws a (rate-limited) ACK, the
//!   challenge ACK of RFC 5961 4.2, which is what lets that restarted peer
//!   reset the record; RFC 6191 section 2 would drop it silently.
//! - ACKs to segments that occupy no sequence space (and to SYNs) are
//!   limited to one per 500 ms per record, as Linux's
//!   `tcp_oow_rate_limited`: two stacks that disagree must not ACK each
//!   other forever. Data and FINs are always answered.

use super::seq::Seq;
use super::tcb::ts_now;
use crate::stats::{Counters, DropReason};
use crate::time::{Duration, Instant};
use crate::wire::{TcpFlags, TcpOptions, TcpRepr};

/// At most one ACK per this many milliseconds to segments that could be
/// part of an ACK loop (Linux's `tcp_invalid_ratelimit`).
pub const OOW_ACK_INTERVAL_MS: u32 = 500;

/// How old TS.Recent must be before an active open may take the record's
/// 4-tuple over (Linux's `tcp_tw_reuse`: one second).
pub const CONNECT_REUSE_AFTER_MS: u32 = 1000;

/// A connection in TIME-WAIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWait {
    /// SND.NXT: our FIN and everything before it is acknowledged.
    snd_nxt: Seq,
    /// RCV.NXT: just past the peer's FIN.
    rcv_nxt: Seq,
    /// TS.Recent (RFC 7323 4.3), when timestamps were negotiated.
    ts_recent: u32,
    /// When TS.Recent was last set, on our TSval clock (milliseconds).
    ts_recent_ms: u32,
    /// When we last answered a segment that may be part of an ACK loop
    /// (milliseconds; 0: never).
    last_oow_ack_ms: u32,
    ts_enabled: bool,
    /// The end of 2*MSL.
    pub deadline: Instant,
}

/// What to do with a segment that found a TIME-WAIT record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwVerdict {
    /// Nothing to send (dropped and counted, or nothing to answer).
    Ignore,
    /// Send this ACK.
    Ack(TcpRepr),
    /// The record ends (an acceptable RST).
    Close,
    /// A SYN of a new incarnation (RFC 6191): the record ends and the SYN
    /// goes to the listener.
    Reopen,
}

impl TimeWait {
    /// SND.NXT and RCV.NXT as the connection left them.
    pub fn seqs(&self) -> (Seq, Seq) {
        (self.snd_nxt, self.rcv_nxt)
    }

    /// The record of a connection that entered TIME-WAIT: our SND.NXT, the
    /// peer's RCV.NXT, TS.Recent if timestamps are on, and the end of 2*MSL.
    pub fn new(
        snd_nxt: Seq,
        rcv_nxt: Seq,
        ts_recent: Option<u32>,
        deadline: Instant,
        now: Instant,
    ) -> TimeWait {
        TimeWait {
            snd_nxt,
            rcv_nxt,
            ts_recent: ts_recent.unwrap_or(0),
            ts_recent_ms: ts_now(now),
            last_oow_ack_ms: 0,
            ts_enabled: ts_recent.is_some(),
            deadline,
        }
    }

    pub fn snd_nxt(&self) -> Seq {
        self.snd_nxt
    }
    pub fn rcv_nxt(&self) -> Seq {
        self.rcv_nxt
    }
    /// TS.Recent, if timestamps were negotiated.
    pub fn ts_recent(&self) -> Option<u32> {
        self.ts_enabled.then_some(self.ts_recent)
    }

    /// 2*MSL is over.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline <= now
    }

    /// A segment from the peer, `payload_len` bytes of data; `msl2` is
    /// 2*MSL. RFC 9293 3.10.7.4's checks in its order, for TIME-WAIT.
    pub fn process(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        payload_len: usize,
        msl2: Duration,
        c: &mut Counters,
    ) -> TwVerdict {
        let f = seg.flags;
        let seq = Seq(seg.seq_number);
        // RFC 6191 section 2: a SYN that can only be a new incarnation
        // opens one (RFC 1122 4.2.2.13).
        if f.syn() && !f.ack() && !f.rst() && self.new_incarnation(seg) {
            return TwVerdict::Reopen;
        }
        // RFC 7323 5.3, R1: PAWS. An older TSval is an old duplicate.
        let tsval = seg
            .options
            .timestamps
            .filter(|_| self.ts_enabled)
            .map(|t| t.0);
        if let (Some(val), false) = (tsval, f.rst()) {
            if (val.wrapping_sub(self.ts_recent) as i32) < 0 {
                c.tcp_paws_rejected += 1;
                c.drop(DropReason::TcpOutOfWindow);
                return self.answer_unacceptable(now, seg, payload_len, c);
            }
        }
        // First, check the sequence number: with RCV.WND zero only an
        // empty segment at RCV.NXT is acceptable.
        let seg_len = payload_len + f.syn() as usize + f.fin() as usize;
        if seq != self.rcv_nxt || seg_len > 0 {
            c.drop(DropReason::TcpOutOfWindow);
            if f.rst() {
                // RFC 5961 3.2: a RST outside the window is dropped silently.
                return TwVerdict::Ignore;
            }
            if f.fin() && !f.syn() && seq + (payload_len + 1) == self.rcv_nxt {
                // Eighth, the FIN bit, TIME-WAIT: a retransmitted FIN (our
                // last ACK was lost). Acknowledge it and restart 2*MSL.
                self.deadline = now.plus(msl2);
                return TwVerdict::Ack(self.ack(now, seg));
            }
            return self.answer_unacceptable(now, seg, payload_len, c);
        }
        // Second, the RST bit: exactly RCV.NXT (RFC 5961 3.2). "Enter the
        // CLOSED state, delete the TCB" (see the module's note on RFC 1337).
        if f.rst() {
            c.tcp_rst_received += 1;
            return TwVerdict::Close;
        }
        // Fifth, the ACK field: without it, drop.
        if !f.ack() {
            c.drop(DropReason::Malformed);
            return TwVerdict::Ignore;
        }
        // An ACK of our FIN again. RFC 7323 4.3: TS.Recent follows the
        // segment at the left edge (SEG.SEQ = Last.ACK.sent = RCV.NXT).
        if let Some(val) = tsval {
            self.ts_recent = val;
            self.ts_recent_ms = ts_now(now);
        }
        TwVerdict::Ignore
    }

    /// RFC 6191 section 2: may a SYN from the same 4-tuple open a new
    /// incarnation? With timestamps on both (we would enable them again),
    /// its TSval must be newer than TS.Recent, or equal with a higher
    /// sequence number; otherwise its sequence number must be above RCV.NXT.
    pub fn new_incarnation(&self, syn: &TcpRepr) -> bool {
        let above = Seq(syn.seq_number) > self.rcv_nxt;
        match (self.ts_enabled, syn.options.timestamps) {
            (true, Some((val, _))) => {
                let d = val.wrapping_sub(self.ts_recent) as i32;
                d > 0 || (d == 0 && above)
            }
            _ => above,
        }
    }

    /// May an active open of ours take this record's 4-tuple over (Linux's
    /// `tcp_tw_reuse`, `tcp_twsk_unique`)? Only with timestamps: the new
    /// connection's TSvals (our millisecond clock) are above any the old
    /// one sent, so the peer's PAWS (RFC 7323 5) rejects our old
    /// duplicates; and only once TS.Recent is a second old, so the peer's
    /// clock (at least one tick a second, RFC 7323 5.4) has moved past its
    /// old segments too. The new ISS comes from [`TimeWait::reuse_iss`].
    pub fn reusable_by_connect(&self, now: Instant) -> bool {
        self.ts_enabled && ts_now(now).wrapping_sub(self.ts_recent_ms) >= CONNECT_REUSE_AFTER_MS
    }

    /// The ISS for an active open that takes the 4-tuple over: `isn` if it
    /// is above SND.NXT plus the largest unscaled window the peer could have
    /// offered (Linux: `tw_snd_nxt + 65535 + 2`), else that bound, so no
    /// segment of the old incarnation falls in the new one's window.
    pub fn reuse_iss(&self, isn: u32) -> u32 {
        let floor = self.snd_nxt + 65537;
        if Seq(isn) > floor {
            isn
        } else {
            floor.0
        }
    }

    /// The ACK that answers `seg`: SND.NXT, RCV.NXT, no window.
    pub fn ack(&self, now: Instant, seg: &TcpRepr) -> TcpRepr {
        TcpRepr {
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq_number: self.snd_nxt.0,
            ack_number: self.rcv_nxt.0,
            flags: TcpFlags::ACK,
            window_len: 0,
            urgent_at: 0,
            options: TcpOptions {
                timestamps: self
                    .ts_enabled
                    .then(|| (ts_now(now).max(1), self.ts_recent)),
                ..TcpOptions::default()
            },
        }
    }

    /// An unacceptable segment (not a RST) is answered with an ACK (RFC
    /// 9293 3.10.7.4, first check); one that occupies no sequence space, or
    /// a SYN, at most once per [`OOW_ACK_INTERVAL_MS`].
    fn answer_unacceptable(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        payload_len: usize,
        c: &mut Counters,
    ) -> TwVerdict {
        let may_loop = seg.flags.syn() || (payload_len == 0 && !seg.flags.fin());
        if may_loop {
            let ms = ts_now(now);
            if self.last_oow_ack_ms != 0
                && ms.wrapping_sub(self.last_oow_ack_ms) < OOW_ACK_INTERVAL_MS
            {
                c.tcp_time_wait_acks_limited += 1;
                return TwVerdict::Ignore;
            }
            self.last_oow_ack_ms = ms.max(1);
        }
        TwVerdict::Ack(self.ack(now, seg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSL2: Duration = Duration::from_secs(60);
    const SND: u32 = 1000;
    const RCV: u32 = 5000;

    fn seg(flags: TcpFlags, seq: u32, ack: u32) -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: seq,
            ack_number: ack,
            flags,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions::default(),
        }
    }

    fn ts(mut s: TcpRepr, val: u32) -> TcpRepr {
        s.options.timestamps = Some((val, 7));
        s
    }

    /// A record made at 10 s, ending at 70 s; TS.Recent 500 if `ts`.
    fn record(ts: bool) -> (TimeWait, Instant, Counters) {
        let now = Instant::from_secs(10);
        let tw = TimeWait::new(Seq(SND), Seq(RCV), ts.then_some(500), now.plus(MSL2), now);
        (tw, now, Counters::default())
    }

    fn acked(v: TwVerdict) -> (u32, u32, TcpFlags) {
        match v {
            TwVerdict::Ack(a) => (a.seq_number, a.ack_number, a.flags),
            other => panic!("expected an ACK, got {other:?}"),
        }
    }

    #[test]
    fn a_retransmitted_fin_is_acked_again_and_restarts_2msl() {
        let (mut tw, now, mut c) = record(true);
        let later = now.plus(Duration::from_secs(30));
        let fin = ts(seg(TcpFlags::FIN | TcpFlags::ACK, RCV - 1, SND), 600);
        let v = tw.process(later, &fin, 0, MSL2, &mut c);
        assert_eq!(acked(v), (SND, RCV, TcpFlags::ACK));
        let TwVerdict::Ack(a) = v else { unreachable!() };
        assert_eq!(a.window_len, 0);
        assert_eq!((a.src_port, a.dst_port), (80, 40000));
        assert_eq!(a.options.timestamps, Some((later.millis() as u32, 500)));
        assert_eq!(tw.deadline, later.plus(MSL2));
        // Never rate-limited: a FIN occupies sequence space.
        for _ in 0..5 {
            assert!(matches!(
                tw.process(later, &fin, 0, MSL2, &mut c),
                TwVerdict::Ack(_)
            ));
        }
        assert_eq!(c.tcp_time_wait_acks_limited, 0);
        // Data with the FIN, retransmitted: the same.
        let mut c = Counters::default();
        let data_fin = seg(TcpFlags::FIN | TcpFlags::ACK, RCV - 4, SND);
        let (mut tw2, _, _) = record(false);
        assert!(matches!(
            tw2.process(later, &data_fin, 3, MSL2, &mut c),
            TwVerdict::Ack(_)
        ));
        assert_eq!(tw2.deadline, later.plus(MSL2));
        assert!(tw2.expired(later.plus(MSL2)));
        assert!(!tw2.expired(later.plus(Duration::from_secs(59))));
    }

    #[test]
    fn an_exact_rst_ends_it_and_any_other_is_dropped() {
        let (mut tw, now, mut c) = record(false);
        assert_eq!(
            tw.process(now, &seg(TcpFlags::RST, RCV + 1, 0), 0, MSL2, &mut c),
            TwVerdict::Ignore
        );
        assert_eq!(
            tw.process(now, &seg(TcpFlags::RST, RCV - 1, 0), 0, MSL2, &mut c),
            TwVerdict::Ignore
        );
        assert_eq!(c.dropped(DropReason::TcpOutOfWindow), 2);
        assert_eq!(c.tcp_rst_received, 0);
        assert_eq!(
            tw.process(now, &seg(TcpFlags::RST, RCV, 0), 0, MSL2, &mut c),
            TwVerdict::Close
        );
        assert_eq!(c.tcp_rst_received, 1);
        // A RST with an old timestamp is not subject to PAWS (RFC 7323 5.3).
        let (mut tw, now, mut c) = record(true);
        assert_eq!(
            tw.process(now, &ts(seg(TcpFlags::RST, RCV, 0), 1), 0, MSL2, &mut c),
            TwVerdict::Close
        );
    }

    #[test]
    fn other_segments_get_a_rate_limited_ack() {
        let (mut tw, now, mut c) = record(false);
        let bare = seg(TcpFlags::ACK, RCV + 100, SND);
        assert_eq!(acked(tw.process(now, &bare, 0, MSL2, &mut c)).1, RCV);
        // Within 500 ms: not answered, counted.
        let soon = now.plus(Duration::from_millis(499));
        assert_eq!(tw.process(soon, &bare, 0, MSL2, &mut c), TwVerdict::Ignore);
        assert_eq!(c.tcp_time_wait_acks_limited, 1);
        // A SYN that is no new incarnation is limited too.
        let old_syn = seg(TcpFlags::SYN, RCV - 10, 0);
        assert_eq!(
            tw.process(soon, &old_syn, 0, MSL2, &mut c),
            TwVerdict::Ignore
        );
        assert_eq!(c.tcp_time_wait_acks_limited, 2);
        // Data is always answered: it is no ACK loop.
        let data = seg(TcpFlags::ACK, RCV, SND);
        assert!(matches!(
            tw.process(soon, &data, 10, MSL2, &mut c),
            TwVerdict::Ack(_)
        ));
        // After the interval, again one.
        let after = now.plus(Duration::from_millis(500));
        assert!(matches!(
            tw.process(after, &old_syn, 0, MSL2, &mut c),
            TwVerdict::Ack(_)
        ));
        // None of this moved 2*MSL.
        assert_eq!(tw.deadline, now.plus(MSL2));
        // An acceptable bare ACK needs no answer; without ACK bit, dropped.
        assert_eq!(
            tw.process(after, &seg(TcpFlags::ACK, RCV, SND), 0, MSL2, &mut c),
            TwVerdict::Ignore
        );
        assert_eq!(
            tw.process(after, &seg(TcpFlags::PSH, RCV, 0), 0, MSL2, &mut c),
            TwVerdict::Ignore
        );
        assert_eq!(c.dropped(DropReason::Malformed), 1);
    }

    #[test]
    fn paws_rejects_old_timestamps_and_ts_recent_follows_the_left_edge() {
        let (mut tw, now, mut c) = record(true);
        let old = ts(seg(TcpFlags::ACK, RCV, SND), 499);
        assert!(matches!(
            tw.process(now, &old, 0, MSL2, &mut c),
            TwVerdict::Ack(_)
        ));
        assert_eq!(c.tcp_paws_rejected, 1);
        let newer = ts(seg(TcpFlags::ACK, RCV, SND), 900);
        assert_eq!(tw.process(now, &newer, 0, MSL2, &mut c), TwVerdict::Ignore);
        assert_eq!(tw.ts_recent(), Some(900));
        // A retransmitted FIN with an old timestamp is an old duplicate:
        // answered, but 2*MSL is not restarted.
        let later = now.plus(Duration::from_secs(1));
        let old_fin = ts(seg(TcpFlags::FIN | TcpFlags::ACK, RCV - 1, SND), 800);
        assert!(matches!(
            tw.process(later, &old_fin, 0, MSL2, &mut c),
            TwVerdict::Ack(_)
        ));
        assert_eq!(tw.deadline, now.plus(MSL2));
        assert_eq!(c.tcp_paws_rejected, 2);
    }

    #[test]
    fn rfc6191_new_incarnations() {
        let syn = |seq, val: Option<u32>| {
            let mut s = seg(TcpFlags::SYN, seq, 0);
            s.options.timestamps = val.map(|v| (v, 0));
            s
        };
        let (mut tw, now, mut c) = record(true);
        // Timestamps on both: a newer TSval opens, whatever the sequence.
        assert!(tw.new_incarnation(&syn(RCV - 100, Some(501))));
        // Equal TSval: the sequence number decides.
        assert!(tw.new_incarnation(&syn(RCV + 1, Some(500))));
        assert!(!tw.new_incarnation(&syn(RCV, Some(500))));
        // Older TSval: never, even above RCV.NXT.
        assert!(!tw.new_incarnation(&syn(RCV + 1000, Some(499))));
        // The new one without timestamps: the sequence number decides.
        assert!(tw.new_incarnation(&syn(RCV + 1, None)));
        assert!(!tw.new_incarnation(&syn(RCV - 1, None)));
        assert_eq!(
            tw.process(now, &syn(RCV + 1, None), 0, MSL2, &mut c),
            TwVerdict::Reopen
        );
        // No timestamps before: only the sequence number counts.
        let (tw, _, _) = record(false);
        assert!(!tw.new_incarnation(&syn(RCV - 1, Some(1_000_000))));
        assert!(tw.new_incarnation(&syn(RCV + 1, Some(1))));
        // A SYN-ACK is never one.
        let (mut tw, now, mut c) = record(false);
        let mut synack = syn(RCV + 1, None);
        synack.flags = TcpFlags::SYN | TcpFlags::ACK;
        assert!(matches!(
            tw.process(now, &synack, 0, MSL2, &mut c),
            TwVerdict::Ack(_)
        ));
    }

    #[test]
    fn an_active_open_may_take_over_after_a_second_with_timestamps() {
        let (tw, now, _) = record(true);
        assert!(!tw.reusable_by_connect(now));
        assert!(!tw.reusable_by_connect(now.plus(Duration::from_millis(999))));
        assert!(tw.reusable_by_connect(now.plus(Duration::from_secs(1))));
        let (plain, _, _) = record(false);
        assert!(!plain.reusable_by_connect(now.plus(Duration::from_secs(30))));
        // The new ISS is past the old SND.NXT and a whole unscaled window.
        assert_eq!(tw.reuse_iss(SND + 10), SND + 65537);
        assert_eq!(tw.reuse_iss(SND - 10), SND + 65537);
        assert_eq!(tw.reuse_iss(SND + 100_000), SND + 100_000);
        let high = TimeWait::new(Seq(u32::MAX - 5), Seq(RCV), Some(1), now, now);
        assert_eq!(high.reuse_iss(3), 65531);
        assert_eq!(high.reuse_iss(70_000), 70_000);
    }
}
