//! The sender's scoreboard: one record per segment in flight, from SND.UNA
//! to SND.MAX, with when it was last sent, whether it was retransmitted,
//! SACKed or deemed lost. RFC 6675 (SetPipe, IsLost) and RFC 8985 (RACK:
//! the most recently sent segment delivered, the time-based loss rule)
//! read it.
//!
//! Invariants: the records are sorted, disjoint and contiguous, the first
//! starts at SND.UNA and the last ends at SND.MAX (the caller records every
//! segment it sends and trims on every cumulative ACK); `sacked`, `lost`
//! and `retrans` are the byte sums of the flags over the records, kept as
//! the flags change, so that the pipe is O(1). A connection holds a
//! scoreboard only while data is in flight (the `Tcb` boxes it and drops it
//! when the flight drains), so an idle connection pays one pointer; it holds
//! at most one record per segment of the send buffer.

use super::seq::Seq;
use crate::time::{Duration, Instant};
use std::cell::RefCell;
use std::collections::VecDeque;

/// One segment sent: `start..end` (a FIN counts in `end`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Segment {
    pub start: Seq,
    pub end: Seq,
    /// When it was last sent (RFC 8985's Segment.xmit_ts).
    pub sent: Instant,
    /// The number of that transmission on this scoreboard: which of two
    /// segments sent at one `sent` went later (see [`sent_after`]).
    pub order: u32,
    /// Times it was retransmitted.
    pub rexmits: u8,
    /// The peer reported it in a SACK block.
    pub sacked: bool,
    /// Deemed lost (RACK, IsLost or a timeout), and not since resent,
    /// or resent and that copy is in flight (`retrans`).
    pub lost: bool,
    /// A retransmission of it is in flight (counts in the pipe).
    pub retrans: bool,
}

impl Segment {
    fn len(&self) -> usize {
        self.end.since(self.start)
    }
}

/// What an ACK's SACK blocks and cumulative acknowledgment delivered
/// (RFC 8985 6.2, steps 2 and 3).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Delivered {
    /// Some block reported data not SACKed before (RFC 6675 2, DupAck).
    pub new_sack: bool,
    /// A segment never retransmitted arrived below one delivered before
    /// it: the path reorders (RFC 8985 6.2 step 3).
    pub reordering: bool,
    /// The RTT of the most recently sent segment delivered, when it is no
    /// ambiguous retransmission (RFC 8985 6.2 step 2).
    pub rtt: Option<Duration>,
    /// The RTT of the oldest segment the cumulative ACK newly covered
    /// (Linux `seq_rtt_us`, from `first_ackt`): None when the ACK covered a
    /// retransmission (Karn) or only what was SACKed before.
    pub first_rtt: Option<Duration>,
    /// Some segment delivered was never retransmitted (Linux
    /// `FLAG_ORIG_SACK_ACKED`): its original arrived.
    pub original: bool,
}

/// RFC 8985's loss detection result.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Lost {
    /// Segments newly marked lost.
    pub segments: u32,
    /// The earliest some other segment would be deemed lost if nothing
    /// arrives (the RACK reordering timer).
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Scoreboard {
    segs: VecDeque<Segment>,
    sacked: usize,
    lost: usize,
    retrans: usize,
    sacked_segments: usize,
    /// RACK.xmit_ts, and the transmission's number in RACK.end_seq's
    /// place (see [`sent_after`]): the most recently sent segment
    /// delivered (cumulatively ACKed or SACKed).
    rack: Option<(Instant, u32)>,
    /// RACK.rtt: its round trip.
    rack_rtt: Duration,
    /// RACK.fack: the highest sequence number delivered.
    fack: Option<Seq>,
    /// Transmissions recorded so far: the next one's `order`.
    sends: u32,
}

thread_local! {
    /// Drained scoreboards kept for reuse on this core, so that sending
    /// and acknowledging data allocates nothing once warm (perf/tests/
    /// no_alloc.rs) while an idle connection holds none.
    // Boxed: the Tcb holds a Box, and its allocation is what is reused.
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<Scoreboard>>> = const { RefCell::new(Vec::new()) };
}

/// Spare scoreboards a core keeps at most.
const SPARE_MAX: usize = 64;
/// Records a spare keeps room for at most (a large flight's are let go).
const SPARE_SEGMENTS: usize = 1024;

impl Scoreboard {
    /// Empty the board in place: it is then what [`Scoreboard::take`]
    /// hands out (the records' room kept, up to [`SPARE_SEGMENTS`]).
    pub fn reset(&mut self) {
        let mut segs = std::mem::take(&mut self.segs);
        segs.clear();
        if segs.capacity() > SPARE_SEGMENTS {
            segs.shrink_to(SPARE_SEGMENTS);
        }
        *self = Scoreboard {
            segs,
            ..Scoreboard::default()
        };
    }

    /// An empty scoreboard, one of the core's spares if it has one.
    pub fn take() -> Box<Scoreboard> {
        SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default()
    }

    /// Give a drained scoreboard back to the core's spares (beyond
    /// [`SPARE_MAX`] it is freed).
    pub fn give(mut board: Box<Scoreboard>) {
        board.reset();
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < SPARE_MAX {
                s.push(board);
            }
        });
    }
}

/// RFC 8985 6.2 step 2 (RACK_sent_after): the transmission at t1 numbered
/// o1 went after the one at t2 numbered o2. The RFC breaks a tie of
/// timestamps by sequence number, which holds for new data only: the
/// core's clock is read once per burst, and a retransmission that a
/// later ACK of the burst calls for goes after new data another one let
/// out, at the same time with a lower sequence number. Taken as sent
/// before that data, it was deemed lost again by the SACK of that data,
/// one round trip later, and resent in vain (bench row 2 on af_packet:
/// 14 of 124 retransmissions, each D-SACKed). The transmission's number
/// is the order Linux's nanosecond timestamps give.
fn sent_after(t1: Instant, o1: u32, t2: Instant, o2: u32) -> bool {
    t1 > t2 || (t1 == t2 && (o1.wrapping_sub(o2) as i32) > 0)
}

impl Scoreboard {
    /// Bytes SACKed above SND.UNA.
    pub fn sacked_bytes(&self) -> usize {
        self.sacked
    }
    /// What was retransmitted and is not cumulatively acknowledged yet (in
    /// flight, deemed lost again, or SACKed: a copy may still arrive, or
    /// its D-SACK): its bytes, and the earliest of those records' last
    /// transmissions. A walk of the board: for the start of a recovery
    /// episode only.
    pub fn resent_outstanding(&self) -> (usize, Option<Instant>) {
        self.segs
            .iter()
            .filter(|s| s.rexmits > 0)
            .fold((0, None), |(bytes, first), s| {
                let first = match first {
                    Some(t) if t <= s.sent => Some(t),
                    _ => Some(s.sent),
                };
                (bytes + s.len(), first)
            })
    }
    /// Segments SACKed above SND.UNA.
    pub fn sacked_segments(&self) -> usize {
        self.sacked_segments
    }
    /// RFC 6675 4 SetPipe, as Linux counts it: bytes sent, less those
    /// SACKed and those deemed lost, plus the retransmissions in flight.
    pub fn pipe(&self) -> usize {
        let out = match (self.segs.front(), self.segs.back()) {
            (Some(a), Some(b)) => b.end.since(a.start),
            _ => 0,
        };
        (out + self.retrans).saturating_sub(self.sacked + self.lost)
    }

    /// The index of the record holding `seq`.
    fn find(&self, seq: Seq) -> Option<usize> {
        let i = self.segs.partition_point(|s| s.end <= seq);
        self.segs.get(i).filter(|s| s.start <= seq).map(|_| i)
    }

    /// Split the record at `i` so that one starts at `at` (inside it).
    fn split(&mut self, i: usize, at: Seq) {
        let mut tail = self.segs[i];
        if at <= tail.start || at >= tail.end {
            return;
        }
        tail.start = at;
        self.segs[i].end = at;
        self.segs.insert(i + 1, tail);
        if tail.sacked {
            self.sacked_segments += 1;
        }
    }

    /// Where a retransmission from `seq` must stop: the end of the record
    /// holding it (one record per segment sent keeps the flags exact).
    pub fn record_end(&self, seq: Seq) -> Option<Seq> {
        self.find(seq).map(|i| self.segs[i].end)
    }

    /// Where the record holding `seq` starts.
    pub fn record_start(&self, seq: Seq) -> Option<Seq> {
        self.find(seq).map(|i| self.segs[i].start)
    }

    /// Some record past `seq` is SACKed.
    pub fn sacked_beyond(&self, seq: Seq) -> bool {
        self.sacked > 0
            && self
                .segs
                .iter()
                .rev()
                .take_while(|s| s.end > seq)
                .any(|s| s.sacked)
    }

    /// The SACKed record holding `seq`, if it is one: its end.
    pub fn sacked_end(&self, seq: Seq) -> Option<Seq> {
        self.find(seq)
            .map(|i| self.segs[i])
            .filter(|s| s.sacked)
            .map(|s| s.end)
    }

    /// A segment was sent: new data at SND.MAX is a new record; below it,
    /// a retransmission of `start..end` (within one record).
    /// Inlined: new data (nearly every send) is a push, without the
    /// register saves of the retransmission's steps, which stay out of
    /// line (make pathcost).
    #[inline]
    pub fn on_send(&mut self, now: Instant, start: Seq, end: Seq) {
        let order = self.sends;
        self.sends = self.sends.wrapping_add(1);
        if self.segs.back().is_none_or(|s| s.end <= start) {
            self.segs.push_back(Segment {
                start,
                end,
                sent: now,
                order,
                rexmits: 0,
                sacked: false,
                lost: false,
                retrans: false,
            });
            return;
        }
        self.on_resend(now, start, end, order);
    }

    /// [`Scoreboard::on_send`] of a retransmission of `start..end`, the
    /// `order`th send.
    #[inline(never)]
    fn on_resend(&mut self, now: Instant, start: Seq, end: Seq, order: u32) {
        let Some(i) = self.find(start) else {
            return;
        };
        self.split(i, start);
        let i = self.find(start).unwrap_or(i);
        self.split(i, end);
        let s = &mut self.segs[i];
        s.sent = now;
        s.order = order;
        s.rexmits = s.rexmits.saturating_add(1);
        if s.sacked {
            return;
        }
        if !s.retrans {
            s.retrans = true;
            self.retrans += s.len();
        }
    }

    /// RFC 8985 6.2 steps 2 and 3 for one segment delivered.
    fn deliver(
        &mut self,
        now: Instant,
        s: Segment,
        ecr_ms: Option<u32>,
        min_rtt: Duration,
    ) -> Delivered {
        let mut d = Delivered {
            original: s.rexmits == 0,
            ..Delivered::default()
        };
        match self.fack {
            Some(f) if s.end < f => d.reordering = s.rexmits == 0,
            _ => self.fack = Some(s.end),
        }
        let rtt = now.since(s.sent);
        if s.rexmits > 0 {
            // Ambiguous: the original may be what arrived. Its echo of an
            // older TSval, or an RTT below the minimum, says so.
            if rtt < min_rtt {
                return d;
            }
            if ecr_ms.is_some_and(|e| (e.wrapping_sub(s.sent.millis() as u32) as i32) < 0) {
                return d;
            }
        }
        if self
            .rack
            .is_none_or(|(t, o)| sent_after(s.sent, s.order, t, o))
        {
            self.rack = Some((s.sent, s.order));
            self.rack_rtt = rtt;
            d.rtt = Some(rtt);
        }
        d
    }

    pub fn merge(into: &mut Delivered, d: Delivered) {
        into.new_sack |= d.new_sack;
        into.reordering |= d.reordering;
        into.original |= d.original;
        if d.rtt.is_some() {
            into.rtt = d.rtt;
        }
        if d.first_rtt.is_some() {
            into.first_rtt = d.first_rtt;
        }
    }

    /// Take off the records SND.UNA has passed (a partial one is trimmed).
    #[inline]
    pub fn ack(
        &mut self,
        now: Instant,
        una: Seq,
        ecr_ms: Option<u32>,
        min_rtt: Duration,
    ) -> Delivered {
        if self.segs.back().is_some_and(|s| s.end <= una) {
            return self.ack_all(now, ecr_ms, min_rtt);
        }
        self.ack_each(now, una, ecr_ms, min_rtt)
    }

    /// [`Scoreboard::ack`] record by record: the general case (and the
    /// oracle `ack_all` is tested against).
    #[inline(never)]
    fn ack_each(
        &mut self,
        now: Instant,
        una: Seq,
        ecr_ms: Option<u32>,
        min_rtt: Duration,
    ) -> Delivered {
        let mut out = Delivered::default();
        let mut first: Option<Instant> = None;
        let mut retransmitted = false;
        while let Some(&s) = self.segs.front() {
            if s.start >= una {
                break;
            }
            let acked = if s.end <= una {
                s.len()
            } else {
                una.since(s.start)
            };
            self.uncount(&s, acked);
            if s.end <= una {
                self.segs.pop_front();
                if s.sacked {
                    self.sacked_segments -= 1;
                } else {
                    retransmitted |= s.rexmits > 0;
                    first.get_or_insert(s.sent);
                    let d = self.deliver(now, s, ecr_ms, min_rtt);
                    Self::merge(&mut out, d);
                }
            } else {
                self.segs[0].start = una;
                break;
            }
        }
        if !retransmitted {
            out.first_rtt = first.map(|sent| now.since(sent));
        }
        out
    }

    /// [`Scoreboard::ack`] of an ACK that covers every record (nearly
    /// every ACK of a connection that is not streaming: the flight drains
    /// and the board goes back to the spares). The records are read in
    /// place and dropped at once, and the byte sums, which they alone made
    /// up, are zero: no record popped and uncounted one by one (make
    /// pathcost).
    #[inline]
    fn ack_all(&mut self, now: Instant, ecr_ms: Option<u32>, min_rtt: Duration) -> Delivered {
        if let (1, Some(&s)) = (self.segs.len(), self.segs.front()) {
            // One record (a request or a response in flight): no walk.
            self.segs.clear();
            (self.sacked, self.lost, self.retrans, self.sacked_segments) = (0, 0, 0, 0);
            if s.sacked {
                return Delivered::default();
            }
            let mut out = self.deliver(now, s, ecr_ms, min_rtt);
            if s.rexmits == 0 {
                out.first_rtt = Some(now.since(s.sent));
            }
            return out;
        }
        let mut out = Delivered::default();
        let mut first: Option<Instant> = None;
        let mut retransmitted = false;
        let mut segs = std::mem::take(&mut self.segs);
        for &s in segs.iter().filter(|s| !s.sacked) {
            retransmitted |= s.rexmits > 0;
            first.get_or_insert(s.sent);
            let d = self.deliver(now, s, ecr_ms, min_rtt);
            Self::merge(&mut out, d);
        }
        segs.clear();
        self.segs = segs;
        (self.sacked, self.lost, self.retrans, self.sacked_segments) = (0, 0, 0, 0);
        if !retransmitted {
            out.first_rtt = first.map(|sent| now.since(sent));
        }
        out
    }

    /// Take `bytes` of `s` out of the byte counts.
    fn uncount(&mut self, s: &Segment, bytes: usize) {
        if s.sacked {
            self.sacked -= bytes;
            return;
        }
        if s.lost {
            self.lost -= bytes;
        }
        if s.retrans {
            self.retrans -= bytes;
        }
    }

    /// Mark what a SACK block `l..r` covers (RFC 2018); a record it covers
    /// in part is split at the block's edge.
    pub fn sack(
        &mut self,
        now: Instant,
        l: Seq,
        r: Seq,
        ecr_ms: Option<u32>,
        min_rtt: Duration,
    ) -> Delivered {
        let mut out = Delivered::default();
        let Some(first) = self.segs.front().map(|s| s.start) else {
            return out;
        };
        let l = l.max(first);
        if r <= l {
            return out;
        }
        if let Some(i) = self.find(l) {
            self.split(i, l);
        }
        if let Some(i) = self.find(r) {
            self.split(i, r);
        }
        let mut i = self.segs.partition_point(|s| s.end <= l);
        while let Some(&s) = self.segs.get(i) {
            if s.end > r {
                break;
            }
            if !s.sacked {
                self.uncount(&s, s.len());
                self.sacked += s.len();
                self.sacked_segments += 1;
                let seg = &mut self.segs[i];
                seg.sacked = true;
                seg.lost = false;
                seg.retrans = false;
                out.new_sack = true;
                let d = self.deliver(now, s, ecr_ms, min_rtt);
                Self::merge(&mut out, d);
            }
            i += 1;
        }
        out
    }

    /// RFC 8985 6.2 step 5 (RACK_detect_loss): a segment sent before the
    /// most recently sent one delivered, and outstanding for longer than
    /// RACK.rtt plus the reordering window, is lost.
    pub fn detect_loss(&mut self, now: Instant, reo_wnd: Duration) -> Lost {
        let mut out = Lost::default();
        let Some((rack_ts, rack_order)) = self.rack else {
            return out;
        };
        let deadline = self.rack_rtt.micros() + reo_wnd.micros();
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.rexmits == 0 && !sent_after(rack_ts, rack_order, s.sent, s.order) {
                // Originals go out in sequence order: none after this one
                // was sent before the delivered segment, nor any
                // retransmission of one (sent later still).
                break;
            }
            if s.sacked || (s.lost && !s.retrans) {
                continue;
            }
            if !sent_after(rack_ts, rack_order, s.sent, s.order) {
                continue;
            }
            let waited = now.since(s.sent).micros();
            if waited >= deadline {
                let len = s.len();
                if !s.lost {
                    self.lost += len;
                }
                if s.retrans {
                    self.retrans -= len;
                }
                let seg = &mut self.segs[i];
                seg.lost = true;
                seg.retrans = false;
                out.segments += 1;
            } else {
                let left = Duration::from_micros(deadline - waited);
                out.timeout = Some(out.timeout.map_or(left, |t: Duration| t.min(left)));
            }
        }
        out
    }

    /// Deem the first record lost (RFC 6675 IsLost(SND.UNA), RFC 5681's
    /// third duplicate ACK): true if it was not already.
    pub fn mark_first_lost(&mut self) -> bool {
        let Some(s) = self.segs.front_mut() else {
            return false;
        };
        if s.sacked || (s.lost && !s.retrans) {
            return false;
        }
        let len = s.len();
        let was_lost = s.lost;
        let was_retrans = s.retrans;
        s.lost = true;
        s.retrans = false;
        if !was_lost {
            self.lost += len;
        }
        if was_retrans {
            self.retrans -= len;
        }
        true
    }

    /// RFC 6675 5.1 after a timeout: everything not SACKed is lost and no
    /// retransmission is in flight any more; `renege` forgets the SACKs too
    /// (RFC 2018 8: the receiver may discard what it reported).
    pub fn on_timeout(&mut self, renege: bool) {
        self.lost = 0;
        self.retrans = 0;
        if renege {
            self.sacked = 0;
            self.sacked_segments = 0;
        }
        for s in self.segs.iter_mut() {
            s.retrans = false;
            if renege {
                s.sacked = false;
            }
            s.lost = !s.sacked;
            if s.lost {
                self.lost += s.end.since(s.start);
            }
        }
    }

    /// A reduction was undone as spurious (nothing was lost): no segment
    /// is deemed lost any more; RACK deems again what really is.
    pub fn unmark_lost(&mut self) {
        self.lost = 0;
        for s in self.segs.iter_mut() {
            s.lost = false;
        }
    }

    /// The first segment deemed lost and not resent since (RFC 6675
    /// NextSeg rule 1, RFC 8985's retransmission of lost segments).
    pub fn next_lost(&self) -> Option<(Seq, Seq)> {
        if self.lost == 0 {
            return None;
        }
        self.segs
            .iter()
            .find(|s| s.lost && !s.retrans && !s.sacked)
            .map(|s| (s.start, s.end))
    }

    /// The byte counts recomputed from the records (tests and the fuzzing
    /// oracle check the incremental ones against it).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn recount(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for s in &self.segs {
            if s.sacked {
                c.0 += s.len();
                c.3 += 1;
            } else {
                c.1 += if s.lost { s.len() } else { 0 };
                c.2 += if s.retrans { s.len() } else { 0 };
            }
        }
        c
    }

    #[cfg(any(test, feature = "fuzzing"))]
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (self.sacked, self.lost, self.retrans, self.sacked_segments)
    }

    /// The module's invariants for a flight from `una` to `max` (SND.UNA,
    /// SND.MAX), for the fuzzing oracle: each record is a non-empty range,
    /// the records are sorted and contiguous from `una` to `max`, the
    /// pipe's terms never make it negative (`pipe` saturates, which would
    /// hide it), and the byte counts equal a recount.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn check(&self, una: Seq, max: Seq) -> Result<(), String> {
        let mut at = una;
        for (i, s) in self.segs.iter().enumerate() {
            if s.start != at {
                return Err(format!(
                    "record {i} starts at {} where {} was due (SND.UNA {}, SND.MAX {})",
                    s.start.0, at.0, una.0, max.0
                ));
            }
            if s.end <= s.start || s.end > max {
                return Err(format!(
                    "record {i} is {}..{} (SND.MAX {})",
                    s.start.0, s.end.0, max.0
                ));
            }
            if s.sacked && (s.lost || s.retrans) {
                return Err(format!("record {i} is SACKed and lost or in flight again"));
            }
            at = s.end;
        }
        if !self.segs.is_empty() && at != max {
            return Err(format!("the records end at {}, SND.MAX is {}", at.0, max.0));
        }
        let out = at.since(una);
        if out + self.retrans < self.sacked + self.lost {
            return Err(format!(
                "pipe below zero: {out} out + {} resent < {} SACKed + {} lost",
                self.retrans, self.sacked, self.lost
            ));
        }
        if self.counts() != self.recount() {
            return Err(format!(
                "(sacked, lost, retrans, sacked segments) kept as {:?}, recounted {:?}",
                self.counts(),
                self.recount()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Ten segments of 100 from 0, sent 1 ms apart from t = 0.
    fn ten() -> Scoreboard {
        let mut b = Scoreboard::default();
        for i in 0..10u32 {
            let s = Seq(i * 100);
            b.on_send(Instant(u64::from(i) * 1000), s, s + 100);
        }
        b
    }

    fn check(b: &Scoreboard) {
        assert_eq!(b.counts(), b.recount());
        let mut at = b.segs.front().map(|s| s.start);
        for s in &b.segs {
            assert_eq!(Some(s.start), at, "records not contiguous");
            assert!(s.start < s.end);
            at = Some(s.end);
        }
    }

    #[test]
    fn the_oracle_check_names_each_broken_invariant() {
        let mut b = ten();
        b.sack(Instant(20_000), Seq(300), Seq(500), None, MS);
        b.on_timeout(false);
        assert_eq!(b.check(Seq(0), Seq(1000)), Ok(()));
        let err = |b: &Scoreboard, una: u32, max: u32| b.check(Seq(una), Seq(max)).unwrap_err();
        assert!(err(&b, 100, 1000).contains("record 0 starts at 0"));
        assert!(err(&b, 0, 900).contains("record 9 is 900..1000"));
        assert!(err(&b, 0, 1100).contains("end at 1000"));
        let mut gap = b.clone();
        gap.segs.remove(4);
        assert!(err(&gap, 0, 1000).contains("record 4 starts at 500"));
        let mut miscount = b.clone();
        miscount.lost -= 100;
        assert!(err(&miscount, 0, 1000).contains("recounted"));
        let mut both = b.clone();
        both.segs[3].lost = true;
        assert!(err(&both, 0, 1000).contains("record 3 is SACKed"));
        // (Exact counts never sum past the flight: the pipe goes below
        // zero only with counts gone wrong, and is named first.)
        let mut negative = b;
        negative.lost += 2000;
        assert!(err(&negative, 0, 1000).contains("pipe below zero"));
    }

    #[test]
    fn pipe_counts_what_is_in_the_network() {
        let mut b = ten();
        assert_eq!(b.pipe(), 1000);
        // 1 and 3 SACKed (at 20 ms): gone from the network.
        let now = Instant(20_000);
        b.sack(now, Seq(100), Seq(200), None, MS);
        b.sack(now, Seq(300), Seq(400), None, MS);
        assert_eq!(b.pipe(), 800);
        // No reordering window: 0 and 2, sent before 3, are lost once
        // RACK.rtt (17 ms, 3's) has passed since they went: they have.
        let lost = b.detect_loss(now, Duration::from_micros(0));
        assert_eq!(lost.segments, 2);
        assert_eq!(b.pipe(), 600);
        assert_eq!(b.next_lost(), Some((Seq(0), Seq(100))));
        // 0 resent: it counts again; 2 is next.
        b.on_send(now, Seq(0), Seq(100));
        assert_eq!(b.pipe(), 700);
        assert_eq!(b.next_lost(), Some((Seq(200), Seq(300))));
        check(&b);
        // The cumulative ACK takes 0..2 and half of 2's record.
        b.ack(Instant(30_000), Seq(250), None, MS);
        assert_eq!(b.segs.front().map(|s| s.start), Some(Seq(250)));
        check(&b);
        assert_eq!(b.pipe(), 1000 - 250 - 100 - 50);
    }

    /// One burst, one clock reading: new data 1000..1300, then the
    /// retransmission of 0 that a later ACK of the burst called for. The
    /// SACK of that new data, a round trip on, says nothing of the
    /// retransmission, sent after it: RACK must not deem it lost (by
    /// sequence number it would be "sent before", and was resent in vain:
    /// bench row 2, 14 of 124 retransmissions).
    #[test]
    fn a_retransmission_sent_after_new_data_at_one_time_is_not_sent_before_it() {
        let mut b = ten();
        // 0 deemed lost by the SACK of 1..9 at 25 ms.
        let t = Instant(25_000);
        b.sack(t, Seq(100), Seq(1000), None, MS);
        assert_eq!(b.detect_loss(t, Duration::from_micros(0)).segments, 1);
        for i in 10..13u32 {
            b.on_send(t, Seq(i * 100), Seq(i * 100 + 100));
        }
        b.on_send(t, Seq(0), Seq(100));
        assert_eq!(b.next_lost(), None);
        // 10..12 SACKed a round trip later; the retransmission's ACK
        // (it went last) is on its way.
        let later = Instant(45_000);
        b.sack(later, Seq(1000), Seq(1300), None, MS);
        let lost = b.detect_loss(later, Duration::from_micros(0));
        assert_eq!(lost.segments, 0, "the retransmission is not lost");
        assert_eq!(b.next_lost(), None);
        check(&b);
        // Its own later-sent segment delivered, a retransmission is lost.
        b.on_send(Instant(46_000), Seq(1300), Seq(1400));
        b.sack(Instant(70_000), Seq(1300), Seq(1400), None, MS);
        let lost = b.detect_loss(Instant(70_000), Duration::from_micros(0));
        assert_eq!(lost.segments, 1);
        assert_eq!(b.next_lost(), Some((Seq(0), Seq(100))));
        check(&b);
    }

    #[test]
    fn a_window_of_reordering_defers_the_loss_and_names_the_timeout() {
        let mut b = ten();
        // 5 (sent at 5 ms) SACKed at 25 ms: RACK.rtt 20 ms. With 4 ms of
        // reordering window, what was sent 24 ms ago is lost: 0 and 1;
        // 2 will be in 1 ms, the timer's deadline.
        let now = Instant(25_000);
        b.sack(now, Seq(500), Seq(600), None, MS);
        let lost = b.detect_loss(now, Duration::from_millis(4));
        assert_eq!(lost.segments, 2);
        assert_eq!(lost.timeout, Some(MS));
        let lost = b.detect_loss(Instant(26_000), Duration::from_millis(4));
        assert_eq!((lost.segments, lost.timeout), (1, Some(MS)));
        check(&b);
    }

    #[test]
    fn a_retransmission_acked_too_soon_is_no_rtt_sample() {
        let mut b = ten();
        b.on_send(Instant(50_000), Seq(0), Seq(100));
        // ACKed 1 ms after the retransmission, with a 10 ms minimum RTT:
        // the original arrived (RFC 8985 6.2 step 2).
        let d = b.ack(Instant(51_000), Seq(100), None, Duration::from_millis(10));
        assert_eq!(d.rtt, None);
        // A SACK below one delivered before, never retransmitted: reordering.
        b.sack(Instant(52_000), Seq(300), Seq(400), None, MS);
        let d = b.sack(Instant(52_000), Seq(200), Seq(300), None, MS);
        assert!(d.reordering);
        check(&b);
    }

    #[test]
    fn an_ack_of_everything_is_the_record_by_record_ack() {
        // Random boards (sends, retransmissions, SACKs, losses, timeouts,
        // partial ACKs; one record among them often), each then
        // acknowledged past its last record by ack_all and, on a clone, by
        // ack_each: the same delivery, and the
        // same board after (fields, counts, RACK's state).
        let mut next = crate::wire::xorshift(0x5151_2f0e_94c1_7a03);
        let mut rnd = |n: u32| (next() % u64::from(n)) as u32;
        let (mut compared, mut singles) = (0, 0);
        for _ in 0..500 {
            let mut b = Scoreboard::default();
            let (mut una, mut max) = (Seq(u32::MAX - 3000), Seq(u32::MAX - 3000));
            let mut now = Instant(1_000_000);
            for _ in 0..rnd(40) {
                now = now.plus(Duration::from_micros(u64::from(rnd(500))));
                match rnd(6) {
                    0 | 1 => {
                        let len = 1 + rnd(150) as usize;
                        b.on_send(now, max, max + len);
                        max = max + len;
                    }
                    2 if max > una => {
                        let s = una + rnd(max.since(una) as u32) as usize;
                        if let Some(end) = b.record_end(s) {
                            b.on_send(now, s, s + 1 + rnd(end.since(s) as u32) as usize);
                        }
                    }
                    3 if max > una => {
                        let l = una + rnd(max.since(una) as u32) as usize;
                        let r = l + 1 + rnd(max.since(l) as u32) as usize;
                        b.sack(now, l, r, Some(rnd(3000)), MS);
                    }
                    4 if rnd(4) == 0 => b.on_timeout(rnd(2) == 0),
                    4 => {
                        b.detect_loss(now, Duration::from_micros(u64::from(rnd(2000))));
                    }
                    5 if max > una => {
                        una = una + rnd(max.since(una) as u32) as usize;
                        b.ack(now, una, None, MS);
                    }
                    _ => {}
                }
            }
            now = now.plus(Duration::from_micros(u64::from(rnd(5000))));
            let ack = max + rnd(2) as usize;
            let (ecr, min_rtt) = (Some(rnd(3000)), Duration::from_micros(u64::from(rnd(3000))));
            singles += usize::from(b.segs.len() == 1);
            let mut general = b.clone();
            let slow = general.ack_each(now, ack, ecr, min_rtt);
            let fast = b.ack(now, ack, ecr, min_rtt);
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
            assert_eq!(format!("{b:?}"), format!("{general:?}"));
            assert_eq!(b.counts(), (0, 0, 0, 0));
            compared += usize::from(slow.rtt.is_some() || slow.first_rtt.is_some());
        }
        assert!(compared > 100 && singles > 20, "{compared} {singles}");
    }

    #[test]
    fn counts_stay_exact_under_any_sequence_of_events() {
        // A slow oracle for the incremental counts: random sends, SACKs
        // (any edges, splitting records), losses, timeouts and ACKs.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |n: u32| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(n)) as u32
        };
        for _ in 0..200 {
            let mut b = Scoreboard::default();
            let (mut una, mut max) = (Seq(u32::MAX - 5000), Seq(u32::MAX - 5000));
            let mut now = Instant(0);
            for _ in 0..200 {
                now = now.plus(Duration::from_micros(u64::from(rnd(500))));
                match rnd(7) {
                    0 | 1 => {
                        let len = 1 + rnd(150) as usize;
                        b.on_send(now, max, max + len);
                        max = max + len;
                    }
                    2 if max > una => {
                        let s = una + rnd(max.since(una) as u32) as usize;
                        if let Some(end) = b.record_end(s) {
                            let e = s + 1 + rnd(end.since(s) as u32) as usize;
                            b.on_send(now, s, e);
                        }
                    }
                    3 if max > una => {
                        let l = una + rnd(max.since(una) as u32) as usize;
                        let r = l + 1 + rnd(max.since(l) as u32) as usize;
                        b.sack(now, l, r, None, MS);
                    }
                    4 => {
                        b.detect_loss(now, Duration::from_micros(u64::from(rnd(2000))));
                    }
                    5 if rnd(10) == 0 => b.on_timeout(rnd(2) == 0),
                    6 if max > una => {
                        una = una + rnd(max.since(una) as u32 + 1) as usize;
                        b.ack(now, una, None, MS);
                        if una == max {
                            assert_eq!(b.pipe(), 0);
                        }
                    }
                    _ => {}
                }
                check(&b);
                if max > una {
                    assert_eq!(b.segs.front().map(|s| s.start), Some(una));
                    assert_eq!(b.segs.back().map(|s| s.end), Some(max));
                } else {
                    assert!(b.segs.is_empty());
                }
            }
        }
    }
}
