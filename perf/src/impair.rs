//! The impairments of `dpstack-bridge`, one direction of a link at a time:
//! random loss, Gilbert-Elliott burst loss, duplication, a rate limit with a
//! bounded queue, a fixed delay and reordering.
//!
//! A frame goes through them in the order a real path would apply them:
//!
//! 1. loss: random (Bernoulli) and burst (a two-state Gilbert-Elliott chain);
//! 2. duplication: the copy follows the original through the rest;
//! 3. the rate limit: a token bucket in virtual time (GCRA, ITU-T I.371),
//!    whose backlog is the bottleneck queue; a frame that would take the
//!    backlog past `queue_bytes` is tail-dropped; with `ecn_mark_bytes`, an
//!    ECN-capable frame that finds at least that backlog ahead of it is
//!    marked CE (RFC 3168 5: a step-marking AQM, as DCTCP's K threshold)
//!    and queued;
//! 4. the delay line: the frame is due `delay` after it leaves the bucket,
//!    or `delay + reorder_extra` for the fraction chosen to be reordered.
//!
//! Nothing here reads a clock: every call is given `now` in ticks of a clock
//! whose rate (`hz`) is fixed when the [`Direction`] is built (the bridge
//! passes the TSC; the tests a fake clock). Randomness comes from a seeded
//! [`Rng`], so one seed and one input sequence give the same verdicts.
//!
//! Invariants: each delay line is a FIFO whose due times never decrease
//! (every frame of a line gets the same delay after a departure time that
//! never decreases), so releasing is popping heads; both lines together hold
//! at most `limit` frames, and nothing allocates once a [`Direction`] is
//! built; every frame taken in is counted exactly once as held, dropped
//! (with its reason) or released.

use dpstack::wire::checksum;
use dpstack::wire::ipv4::ecn;
use std::collections::VecDeque;

/// A seeded xoshiro256** generator (Blackman and Vigna), its state filled by
/// splitmix64 from the seed as its authors recommend.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// True with probability `c`; draws nothing for 0 and 1, so turning an
    /// impairment off does not shift the sequence the others see.
    pub fn chance(&mut self, c: Chance) -> bool {
        match c {
            Chance::Never => false,
            Chance::Always => true,
            Chance::Below(t) => self.next_u64() < t,
        }
    }
}

/// A probability, kept as a threshold on a uniform u64 so that drawing needs
/// no floating point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chance {
    Never,
    Always,
    /// True when a uniform u64 is below this.
    Below(u64),
}

impl Chance {
    /// From a percentage (clamped to 0..=100).
    pub fn percent(p: f64) -> Chance {
        Chance::fraction(p / 100.0)
    }

    /// From a fraction (clamped to 0..=1).
    pub fn fraction(f: f64) -> Chance {
        if f.is_nan() || f <= 0.0 {
            Chance::Never
        } else if f >= 1.0 {
            Chance::Always
        } else {
            // f < 1, so the product is below 2^64.
            Chance::Below((f * 18_446_744_073_709_551_616.0) as u64)
        }
    }
}

/// Gilbert-Elliott burst loss: a Good and a Bad state; each frame first
/// moves the chain (Good to Bad with `p`, Bad to Good with `r`), then is lost
/// with `loss_good` or `loss_bad` as the state says. With `loss_good` 0 and
/// `loss_bad` 1 this is Gilbert's model: mean burst 1/r frames, long-run
/// loss p/(p+r).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GilbertElliott {
    pub p: Chance,
    pub r: Chance,
    pub loss_good: Chance,
    pub loss_bad: Chance,
}

impl GilbertElliott {
    /// No burst loss at all.
    pub const OFF: GilbertElliott = GilbertElliott {
        p: Chance::Never,
        r: Chance::Always,
        loss_good: Chance::Never,
        loss_bad: Chance::Never,
    };
}

/// What one direction does to frames, in human units (converted to ticks
/// once, in [`Direction::new`]).
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// The fixed delay, nanoseconds.
    pub delay_ns: u64,
    /// Random loss.
    pub loss: Chance,
    pub burst: GilbertElliott,
    /// Frames given `reorder_extra_ns` more delay, so that later frames
    /// overtake them.
    pub reorder: Chance,
    pub reorder_extra_ns: u64,
    pub duplicate: Chance,
    /// The rate limit in bits per second (0: none), counted on the frame
    /// as received (no preamble, gap or CRC).
    pub rate_bps: u64,
    /// The bottleneck queue: bytes waiting for the rate limit, beyond which
    /// frames are tail-dropped.
    pub queue_bytes: u64,
    /// Bytes an idle rate limit lets through at once (the bucket's depth).
    pub burst_bytes: u64,
    /// Mark ECT frames CE when at least this backlog is ahead of them (0:
    /// never; needs a rate limit). Frames are still tail-dropped past
    /// `queue_bytes`.
    pub ecn_mark_bytes: u64,
    /// Frames held (both delay lines together).
    pub limit: usize,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            delay_ns: 0,
            loss: Chance::Never,
            burst: GilbertElliott::OFF,
            reorder: Chance::Never,
            reorder_extra_ns: 1_000_000,
            duplicate: Chance::Never,
            rate_bps: 0,
            queue_bytes: 1 << 20,
            burst_bytes: 1514,
            ecn_mark_bytes: 0,
            limit: 8192,
        }
    }
}

/// One direction's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames taken in.
    pub received: u64,
    /// Frames released (duplicates included).
    pub forwarded: u64,
    pub forwarded_bytes: u64,
    /// Frames held now.
    pub delayed: u64,
    pub dropped_loss: u64,
    pub dropped_burst_loss: u64,
    pub dropped_queue_full: u64,
    pub dropped_no_buffer: u64,
    /// Frames chosen to be sent twice; each copy is then counted in
    /// `forwarded` or a drop (`dropped_no_buffer` when no mbuf was free).
    pub duplicated: u64,
    /// Frames given the reordering delay.
    pub reordered: u64,
    /// ECT frames marked CE (`ecn_mark_bytes`).
    pub ecn_marked: u64,
}

impl Counters {
    pub fn dropped(&self) -> u64 {
        self.dropped_loss
            + self.dropped_burst_loss
            + self.dropped_queue_full
            + self.dropped_no_buffer
    }

    /// Field by field difference (for per-interval lines); `delayed` is a
    /// gauge and is kept as it is.
    pub fn minus(&self, o: &Counters) -> Counters {
        Counters {
            received: self.received.wrapping_sub(o.received),
            forwarded: self.forwarded.wrapping_sub(o.forwarded),
            forwarded_bytes: self.forwarded_bytes.wrapping_sub(o.forwarded_bytes),
            delayed: self.delayed,
            dropped_loss: self.dropped_loss.wrapping_sub(o.dropped_loss),
            dropped_burst_loss: self.dropped_burst_loss.wrapping_sub(o.dropped_burst_loss),
            dropped_queue_full: self.dropped_queue_full.wrapping_sub(o.dropped_queue_full),
            dropped_no_buffer: self.dropped_no_buffer.wrapping_sub(o.dropped_no_buffer),
            duplicated: self.duplicated.wrapping_sub(o.duplicated),
            reordered: self.reordered.wrapping_sub(o.reordered),
            ecn_marked: self.ecn_marked.wrapping_sub(o.ecn_marked),
        }
    }

    /// One line, `name=value` pairs.
    pub fn line(&self) -> String {
        format!(
            "received={} forwarded={} bytes={} delayed={} dropped_loss={} dropped_burst_loss={} \
             dropped_queue_full={} dropped_no_buffer={} duplicated={} reordered={} ecn_marked={}",
            self.received,
            self.forwarded,
            self.forwarded_bytes,
            self.delayed,
            self.dropped_loss,
            self.dropped_burst_loss,
            self.dropped_queue_full,
            self.dropped_no_buffer,
            self.duplicated,
            self.reordered,
            self.ecn_marked
        )
    }
}

/// A token bucket kept in virtual time (the GCRA of ITU-T I.371 used as a
/// shaper): `tat` is when the bucket would be full again were nothing more
/// sent. A frame of `len` bytes may leave at `max(now, tat - depth)`, and
/// then `tat` moves on by the frame's transmission time. The backlog (the
/// bytes queued ahead of a new frame) is what `tat - depth` lies beyond now.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    hz: u64,
    bps: u64,
    /// The bucket's depth in ticks.
    depth: u64,
    queue_bytes: u64,
    tat: u64,
}

impl TokenBucket {
    pub fn new(hz: u64, bps: u64, burst_bytes: u64, queue_bytes: u64) -> TokenBucket {
        let mut b = TokenBucket {
            hz,
            bps,
            depth: 0,
            queue_bytes,
            tat: 0,
        };
        b.depth = b.ticks_for(burst_bytes);
        b
    }

    /// Ticks to send `bytes` at the rate (rounded up, so a rate is never
    /// exceeded).
    pub fn ticks_for(&self, bytes: u64) -> u64 {
        if self.bps == 0 {
            return 0;
        }
        let t = (u128::from(bytes) * 8 * u128::from(self.hz)).div_ceil(u128::from(self.bps));
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    /// The backlog at `now`: the link time that must pass before a frame
    /// arriving now may leave, in bytes at the rate (the frames waiting,
    /// and the one the bucket's depth let go early).
    pub fn backlog(&self, now: u64) -> u64 {
        if self.bps == 0 {
            return 0;
        }
        let ahead = self.tat.saturating_sub(self.depth).saturating_sub(now);
        let b = u128::from(ahead) * u128::from(self.bps) / (8 * u128::from(self.hz));
        u64::try_from(b).unwrap_or(u64::MAX)
    }

    /// When a frame of `len` bytes arriving at `now` leaves, or None if it
    /// finds the queue full (then nothing changes).
    pub fn admit(&mut self, now: u64, len: u64) -> Option<u64> {
        if self.bps == 0 {
            return Some(now);
        }
        if self.backlog(now) + len > self.queue_bytes {
            return None;
        }
        let leave = now.max(self.tat.saturating_sub(self.depth));
        self.tat = self.tat.max(now).saturating_add(self.ticks_for(len));
        Some(leave)
    }
}

/// A command-line value for both directions: one number for both, or two,
/// `A_TO_B,B_TO_A`; each finite and not negative.
pub fn per_direction(v: &str) -> Result<[f64; 2], String> {
    let parse = |s: &str| -> Result<f64, String> {
        match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(format!("{s:?} is not a non-negative number")),
        }
    };
    match v.split_once(',') {
        Some((a, b)) => Ok([parse(a)?, parse(b)?]),
        None => parse(v).map(|x| [x, x]),
    }
}

/// A bounded FIFO of frames with the tick each is due at.
#[derive(Debug)]
struct DelayLine<T> {
    q: VecDeque<(u64, T)>,
}

impl<T> DelayLine<T> {
    fn head_due(&self) -> Option<u64> {
        self.q.front().map(|(d, _)| *d)
    }
}

/// One direction of the bridge: frames go in with [`Direction::admit`] and
/// come out, when due, from [`Direction::release`].
#[derive(Debug)]
pub struct Direction<T> {
    cfg: Impairment,
    delay: u64,
    reorder_extra: u64,
    rng: Rng,
    /// Gilbert-Elliott: in the Bad state.
    bad: bool,
    bucket: TokenBucket,
    /// Frames with the plain delay.
    line: DelayLine<T>,
    /// Frames with the reordering delay on top.
    slow: DelayLine<T>,
    pub counters: Counters,
}

fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    u64::try_from(u128::from(ns) * u128::from(hz) / 1_000_000_000).unwrap_or(u64::MAX)
}

impl<T> Direction<T> {
    /// Everything is allocated here: the delay lines hold `cfg.limit` frames.
    pub fn new(cfg: Impairment, hz: u64, seed: u64) -> Direction<T> {
        Direction {
            delay: ns_to_ticks(cfg.delay_ns, hz),
            reorder_extra: ns_to_ticks(cfg.reorder_extra_ns, hz),
            rng: Rng::new(seed),
            bad: false,
            bucket: TokenBucket::new(hz, cfg.rate_bps, cfg.burst_bytes, cfg.queue_bytes),
            line: DelayLine {
                q: VecDeque::with_capacity(cfg.limit),
            },
            slow: DelayLine {
                q: VecDeque::with_capacity(cfg.limit),
            },
            counters: Counters::default(),
            cfg,
        }
    }

    /// Frames held now.
    pub fn held(&self) -> usize {
        self.line.q.len() + self.slow.q.len()
    }

    /// Take in a frame of `len` bytes that arrived at `now`. `copy` makes a
    /// duplicate when one is wanted (None: no buffer for it). A frame that is
    /// dropped is dropped here (so an mbuf goes back to its pool).
    pub fn admit(&mut self, now: u64, len: usize, frame: T, copy: impl FnOnce(&T) -> Option<T>) {
        self.admit_marking(now, len, frame, copy, |_| false)
    }

    /// [`Direction::admit`], with `mark` to set CE on a frame the queue
    /// marks (true if it did: the frame was ECN-capable, see [`mark_ce`]).
    pub fn admit_marking(
        &mut self,
        now: u64,
        len: usize,
        frame: T,
        copy: impl FnOnce(&T) -> Option<T>,
        mut mark: impl FnMut(&mut T) -> bool,
    ) {
        self.counters.received += 1;
        // Both loss processes run on every frame, so that the Gilbert-Elliott
        // chain moves once per frame whatever the random loss decides.
        let lost = self.rng.chance(self.cfg.loss);
        let burst_lost = self.burst_loss();
        if lost {
            self.counters.dropped_loss += 1;
            return;
        }
        if burst_lost {
            self.counters.dropped_burst_loss += 1;
            return;
        }
        let dup = if self.rng.chance(self.cfg.duplicate) {
            self.counters.duplicated += 1;
            let d = copy(&frame);
            if d.is_none() {
                self.counters.dropped_no_buffer += 1;
            }
            d
        } else {
            None
        };
        self.enqueue(now, len, frame, &mut mark);
        if let Some(d) = dup {
            self.enqueue(now, len, d, &mut mark);
        }
    }

    /// Move the Gilbert-Elliott chain one frame on; true if that frame is lost.
    fn burst_loss(&mut self) -> bool {
        let ge = self.cfg.burst;
        if ge == GilbertElliott::OFF {
            return false;
        }
        self.bad = if self.bad {
            !self.rng.chance(ge.r)
        } else {
            self.rng.chance(ge.p)
        };
        self.rng
            .chance(if self.bad { ge.loss_bad } else { ge.loss_good })
    }

    fn enqueue(
        &mut self,
        now: u64,
        len: usize,
        mut frame: T,
        mark: &mut impl FnMut(&mut T) -> bool,
    ) {
        if self.held() >= self.cfg.limit {
            self.counters.dropped_no_buffer += 1;
            return;
        }
        let marking = self.cfg.ecn_mark_bytes > 0
            && self.cfg.rate_bps > 0
            && self.bucket.backlog(now) >= self.cfg.ecn_mark_bytes;
        let Some(leave) = self.bucket.admit(now, len as u64) else {
            self.counters.dropped_queue_full += 1;
            return;
        };
        if marking && mark(&mut frame) {
            self.counters.ecn_marked += 1;
        }
        let due = leave.saturating_add(self.delay);
        if self.rng.chance(self.cfg.reorder) {
            self.counters.reordered += 1;
            self.slow
                .q
                .push_back((due.saturating_add(self.reorder_extra), frame));
        } else {
            self.line.q.push_back((due, frame));
        }
        self.counters.delayed = self.held() as u64;
    }

    /// The next frame due at or before `now` (earliest first), with its
    /// length given by `len` for the byte counter.
    pub fn release(&mut self, now: u64, len: impl Fn(&T) -> usize) -> Option<T> {
        let from_slow = match (self.line.head_due(), self.slow.head_due()) {
            (Some(a), Some(b)) => b < a,
            (None, Some(_)) => true,
            _ => false,
        };
        let line = if from_slow {
            &mut self.slow
        } else {
            &mut self.line
        };
        if line.head_due()? > now {
            return None;
        }
        let (_, f) = line.q.pop_front()?;
        self.counters.forwarded += 1;
        self.counters.forwarded_bytes += len(&f) as u64;
        self.counters.delayed = self.held() as u64;
        Some(f)
    }

    /// When the next frame is due, if any is held.
    pub fn next_due(&self) -> Option<u64> {
        match (self.line.head_due(), self.slow.head_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Mark an Ethernet frame carrying IPv4 (no VLAN tag) Congestion
/// Experienced if it is ECN-capable (ECT(0) or ECT(1)), with the header
/// checksum updated (RFC 1624). False, and the frame untouched, for
/// anything else: not IPv4, too short, Not-ECT (a router drops those
/// instead), already CE.
pub fn mark_ce(frame: &mut [u8]) -> bool {
    const TOS: usize = 14 + 1;
    const CHECKSUM: usize = 14 + 10;
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 {
        return false;
    }
    let tos = frame[TOS];
    if !matches!(tos & 3, ecn::ECT0 | ecn::ECT1) {
        return false;
    }
    // The checksum word that holds the TOS byte is version/IHL and TOS.
    let old = u16::from_be_bytes([frame[14], tos]);
    let new = u16::from_be_bytes([frame[14], tos | ecn::CE]);
    let c = u16::from_be_bytes([frame[CHECKSUM], frame[CHECKSUM + 1]]);
    frame[CHECKSUM..CHECKSUM + 2].copy_from_slice(&checksum::adjust(c, old, new).to_be_bytes());
    frame[TOS] = tos | ecn::CE;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fake clock ticks in nanoseconds.
    const HZ: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn no_copy(_: &u32) -> Option<u32> {
        None
    }

    fn drain(d: &mut Direction<u32>, now: u64) -> Vec<u32> {
        std::iter::from_fn(|| d.release(now, |_| 100)).collect()
    }

    #[test]
    fn chance_extremes_and_rate() {
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| !r.chance(Chance::percent(0.0))));
        assert!((0..1000).all(|_| r.chance(Chance::percent(100.0))));
        assert_eq!(Chance::percent(-3.0), Chance::Never);
        assert_eq!(Chance::percent(250.0), Chance::Always);
        let hits = (0..100_000)
            .filter(|_| r.chance(Chance::percent(5.0)))
            .count();
        assert!((4_700..5_300).contains(&hits), "{hits}");
    }

    #[test]
    fn one_value_or_one_per_direction() {
        assert_eq!(per_direction("10"), Ok([10.0, 10.0]));
        assert_eq!(per_direction("0.5,30"), Ok([0.5, 30.0]));
        assert_eq!(per_direction(" 1 , 2 "), Ok([1.0, 2.0]));
        for bad in ["", "x", "-1", "1,", "1,2,3", "inf", "NaN", "1,-2"] {
            assert!(per_direction(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut c = Rng::new(43);
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
    }

    #[test]
    fn fixed_delay_holds_until_due_in_order() {
        let cfg = Impairment {
            delay_ns: 10 * MS,
            ..Default::default()
        };
        let mut d = Direction::new(cfg, HZ, 1);
        d.admit(0, 100, 1, no_copy);
        d.admit(MS, 100, 2, no_copy);
        assert_eq!(d.counters.delayed, 2);
        assert_eq!(d.next_due(), Some(10 * MS));
        assert!(drain(&mut d, 10 * MS - 1).is_empty());
        assert_eq!(drain(&mut d, 10 * MS), vec![1]);
        assert!(drain(&mut d, 11 * MS - 1).is_empty());
        assert_eq!(drain(&mut d, 11 * MS), vec![2]);
        assert_eq!(d.counters.forwarded, 2);
        assert_eq!(d.counters.forwarded_bytes, 200);
        assert_eq!(d.counters.delayed, 0);
    }

    #[test]
    fn delay_is_kept_in_clock_ticks() {
        // A 2.5 GHz TSC: 10 ms is 25M ticks.
        let cfg = Impairment {
            delay_ns: 10 * MS,
            ..Default::default()
        };
        let mut d = Direction::new(cfg, 2_500_000_000, 1);
        d.admit(1000, 100, 7, no_copy);
        assert_eq!(d.next_due(), Some(1000 + 25_000_000));
    }

    #[test]
    fn the_delay_lines_are_bounded() {
        let cfg = Impairment {
            delay_ns: MS,
            limit: 3,
            ..Default::default()
        };
        let mut d = Direction::new(cfg, HZ, 1);
        for i in 0..5 {
            d.admit(0, 100, i, no_copy);
        }
        assert_eq!(d.held(), 3);
        assert_eq!(d.counters.dropped_no_buffer, 2);
        assert_eq!(drain(&mut d, MS), vec![0, 1, 2]);
        let c = d.counters;
        assert_eq!(c.received, c.forwarded + c.dropped() + c.delayed);
    }

    #[test]
    fn random_loss_is_about_the_percentage_and_reproducible() {
        let cfg = Impairment {
            loss: Chance::percent(5.0),
            ..Default::default()
        };
        let run = |seed| {
            let mut d = Direction::new(cfg, HZ, seed);
            let mut out = vec![];
            for i in 0..20_000u32 {
                d.admit(u64::from(i), 100, i, no_copy);
                out.extend(drain(&mut d, u64::from(i)));
            }
            (d.counters, out)
        };
        let (c, out) = run(9);
        assert!((900..1100).contains(&c.dropped_loss), "{c:?}");
        assert_eq!(c.forwarded + c.dropped_loss, 20_000);
        assert_eq!(run(9).1, out);
        assert_ne!(run(10).1, out);
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts() {
        // p = 1%, r = 25%: long-run loss p/(p+r) = 3.8%, mean burst 4.
        let cfg = Impairment {
            burst: GilbertElliott {
                p: Chance::percent(1.0),
                r: Chance::percent(25.0),
                loss_good: Chance::Never,
                loss_bad: Chance::Always,
            },
            ..Default::default()
        };
        let mut d = Direction::new(cfg, HZ, 3);
        let n = 200_000u32;
        let mut lost = vec![];
        for i in 0..n {
            d.admit(0, 100, i, no_copy);
            if drain(&mut d, 0).is_empty() {
                lost.push(i);
            }
        }
        let rate = lost.len() as f64 / f64::from(n);
        assert!((0.032..0.045).contains(&rate), "{rate}");
        assert_eq!(d.counters.dropped_burst_loss, lost.len() as u64);
        let bursts = 1 + lost.windows(2).filter(|w| w[1] != w[0] + 1).count();
        let mean = lost.len() as f64 / bursts as f64;
        assert!((3.5..4.5).contains(&mean), "mean burst {mean}");
    }

    #[test]
    fn reordered_frames_are_overtaken() {
        let cfg = Impairment {
            delay_ns: 10 * MS,
            reorder: Chance::percent(30.0),
            reorder_extra_ns: 5 * MS,
            ..Default::default()
        };
        let mut d = Direction::new(cfg, HZ, 5);
        let mut out = vec![];
        for i in 0..1000u32 {
            let now = u64::from(i) * 100_000;
            d.admit(now, 100, i, no_copy);
            out.extend(drain(&mut d, now));
        }
        out.extend(drain(&mut d, u64::MAX));
        assert_eq!(out.len(), 1000);
        let late = out.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(late > 100, "{late} inversions");
        assert!((250..350).contains(&d.counters.reordered));
        let mut sorted = out.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn duplicates_follow_their_original() {
        let cfg = Impairment {
            duplicate: Chance::Always,
            ..Default::default()
        };
        let mut d = Direction::new(cfg, HZ, 1);
        d.admit(0, 100, 4, |f| Some(*f + 100));
        d.admit(0, 100, 5, |_| None);
        assert_eq!(drain(&mut d, 0), vec![4, 104, 5]);
        assert_eq!(d.counters.duplicated, 2);
        assert_eq!(d.counters.dropped_no_buffer, 1);
        assert_eq!(d.counters.forwarded, 3);
    }

    #[test]
    fn token_bucket_paces_at_the_rate() {
        // 100 Mbit/s, 1500-byte frames: 120 us each.
        let mut b = TokenBucket::new(HZ, 100_000_000, 1500, 1 << 20);
        assert_eq!(b.ticks_for(1500), 120_000);
        let leaves: Vec<u64> = (0..5).map(|_| b.admit(0, 1500).unwrap()).collect();
        // The first goes at once (a full bucket), then one per 120 us.
        assert_eq!(leaves, vec![0, 0, 120_000, 240_000, 360_000]);
        assert_eq!(b.backlog(0), 6000);
        // Once idle long enough the bucket is full again.
        assert_eq!(b.admit(10 * MS, 1500), Some(10 * MS));
    }

    #[test]
    fn rate_limit_tail_drops_past_the_queue() {
        let cfg = Impairment {
            rate_bps: 8_000_000, // 1 byte per us
            burst_bytes: 0,
            queue_bytes: 3000,
            ..Default::default()
        };
        let mut d = Direction::new(cfg, HZ, 1);
        for i in 0..5 {
            d.admit(0, 1000, i, no_copy);
        }
        // 0 leaves at 0, 1 at 1 ms, 2 at 2 ms (3000 bytes queued); 3, 4 dropped.
        assert_eq!(d.counters.dropped_queue_full, 2);
        assert_eq!(drain(&mut d, 0), vec![0]);
        assert_eq!(drain(&mut d, MS), vec![1]);
        assert_eq!(drain(&mut d, 2 * MS), vec![2]);
        // Long run: 1 Mbyte/s whatever is offered.
        let mut d = Direction::new(cfg, HZ, 1);
        let mut bytes = 0u64;
        for t in 0..100_000u64 {
            let now = t * 10_000; // one 1000-byte frame every 10 us, 1 s in all
            d.admit(now, 1000, 0, no_copy);
            while d.release(now, |_| 1000).is_some() {
                bytes += 1000;
            }
        }
        assert!((999_000..=1_001_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn ecn_marks_ect_frames_past_the_threshold_instead_of_dropping() {
        let cfg = Impairment {
            rate_bps: 8_000_000, // 1 byte per us
            burst_bytes: 0,
            queue_bytes: 4000,
            ecn_mark_bytes: 2000,
            ..Default::default()
        };
        // Frames are (id, ECN-capable, marked).
        let mark = |f: &mut (u32, bool, bool)| {
            f.2 = f.1;
            f.1
        };
        let mut d = Direction::new(cfg, HZ, 1);
        for i in 0..6 {
            d.admit_marking(0, 1000, (i, i != 3, false), |_| None, mark);
        }
        // 0 and 1 find under 2000 bytes ahead; 2 and 3 find 2000 and
        // 3000: 2 is marked, 3 is not ECN-capable and only queued; 4 and 5
        // find the queue full and are dropped, marking or not.
        assert_eq!(d.counters.ecn_marked, 1);
        assert_eq!(d.counters.dropped_queue_full, 2);
        let out: Vec<_> = std::iter::from_fn(|| d.release(10 * MS, |_| 1000)).collect();
        assert_eq!(
            out,
            vec![
                (0, true, false),
                (1, true, false),
                (2, true, true),
                (3, false, false)
            ]
        );
        // Off by default: nothing marked, whatever the queue.
        let mut d = Direction::new(
            Impairment {
                ecn_mark_bytes: 0,
                ..cfg
            },
            HZ,
            1,
        );
        for i in 0..4 {
            d.admit_marking(0, 1000, (i, true, false), |_| None, mark);
        }
        assert_eq!(d.counters.ecn_marked, 0);
    }

    #[test]
    fn mark_ce_sets_ce_on_ect_ipv4_and_keeps_the_checksum_right() {
        use dpstack::wire::Ipv4Packet;
        // Ethernet (IPv4) and a 20-byte header, TOS 0xb8 | ECN.
        let frame = |tos: u8| {
            let mut f = vec![0u8; 14 + 20 + 6];
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14..34].copy_from_slice(&[
                0x45, tos, 0, 26, 0x1c, 0x46, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 1, 2,
            ]);
            Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
            f
        };
        for (ecn_bits, marked) in [(0b00, false), (0b01, true), (0b10, true), (0b11, false)] {
            let mut f = frame(0xb8 | ecn_bits);
            let before = f.clone();
            assert_eq!(mark_ce(&mut f), marked, "{ecn_bits:#b}");
            let p = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(p.dscp(), 0xb8 >> 2);
            if marked {
                assert_eq!(p.ecn(), ecn::CE);
            } else {
                assert_eq!(f, before);
            }
        }
        // Not IPv4 (ARP), or too short: untouched.
        let mut arp = frame(0b10);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!mark_ce(&mut arp));
        assert!(!mark_ce(&mut frame(0b10)[..30]));
    }

    #[test]
    fn rate_then_delay() {
        let cfg = Impairment {
            delay_ns: 10 * MS,
            rate_bps: 8_000_000,
            burst_bytes: 0,
            ..Default::default()
        };
        let mut d = Direction::new(cfg, HZ, 1);
        d.admit(0, 1000, 1, no_copy);
        d.admit(0, 1000, 2, no_copy);
        assert_eq!(d.next_due(), Some(10 * MS));
        assert_eq!(drain(&mut d, 10 * MS), vec![1]);
        assert_eq!(d.next_due(), Some(11 * MS));
    }
}
