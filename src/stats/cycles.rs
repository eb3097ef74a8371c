//! Where an lcore's cycles go: the TSC cycles of its poll-loop iterations
//! that carried packets and the packets they carried (cycles per packet, as
//! `dpdk-testpmd --record-core-cycles` reports them), a histogram of every
//! iteration's cycles, and the iterations that took longer than a stall
//! (100 us) counted by the side work that took them there: each side work's
//! own cycles are read around it (it runs at most every 100 us), and a
//! stall counts under a side work that took at least half a stall itself.
//!
//! An iteration is the span between two reads of the loop's TSC, the one
//! read it makes anyway for its timers: no TSC read of its own. Its packets
//! are how far the core's received and sent frame counters moved over that
//! span (the larger of the two, so that an echo counts each frame once, as
//! testpmd does, and a sender or a sink counts what it moved). Recording is
//! a subtraction, a leading-zero count and a few additions per iteration.
//!
//! [`LoopCycles`] belongs to the lcore; it copies its [`LoopStats`] into a
//! [`PublishedCycles`] with the counters, and printers, telemetry and the
//! metrics endpoint read that.

use std::sync::atomic::{AtomicU64, Ordering};

/// Side work the loop does besides moving packets. An iteration that took
/// longer than a stall is counted under each kind that took at least half a
/// stall of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum SideWork {
    /// The 100 us timers: ARP writer and pending queue, reassembly expiry,
    /// TCP timers, the applications' `poll`.
    Timers,
    /// Frames moved between the kernel interface and the cores' queues
    /// (designated core of `--kni`).
    Kernel,
    /// The kernel interface's link state read from the device (every 100 ms).
    LinkCheck,
    /// Counters and applications' counters published (every 100 ms).
    Publish,
    /// Latency histograms and flow records copied (every second).
    Snapshot,
}

impl SideWork {
    pub const COUNT: usize = 5;
    pub const ALL: [SideWork; Self::COUNT] = [
        SideWork::Timers,
        SideWork::Kernel,
        SideWork::LinkCheck,
        SideWork::Publish,
        SideWork::Snapshot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SideWork::Timers => "timers",
            SideWork::Kernel => "kernel",
            SideWork::LinkCheck => "link_check",
            SideWork::Publish => "publish",
            SideWork::Snapshot => "snapshot",
        }
    }
}

/// Stall kinds: each [`SideWork`], then `other` (no side work took half a
/// stall: packet work, or the CPU was taken away between side works).
pub const STALL_KINDS: usize = SideWork::COUNT + 1;

/// The name of stall kind `i` (`SideWork` names, then `other`).
pub fn stall_name(i: usize) -> &'static str {
    SideWork::ALL.get(i).map_or("other", |w| w.name())
}

/// The histogram's smallest bound is 2^MIN_LOG2 cycles.
const MIN_LOG2: u32 = 6;
/// Its largest finite bound is 2^MAX_LOG2 cycles (seconds at any TSC rate).
const MAX_LOG2: u32 = 33;
/// Buckets: one per power of two from 2^MIN_LOG2 to 2^MAX_LOG2, and the rest.
pub const BUCKETS: usize = (MAX_LOG2 - MIN_LOG2) as usize + 2;

/// The upper bound of bucket `i` in cycles, inclusive; None for the last
/// (everything longer).
pub fn bucket_bound(i: usize) -> Option<u64> {
    (i + 1 < BUCKETS).then(|| 1u64 << (MIN_LOG2 as usize + i))
}

/// The bucket of an iteration of `cycles`: the first whose bound it does
/// not exceed.
#[inline]
pub fn bucket(cycles: u64) -> usize {
    // ceil(log2(cycles)), 0 for 0 and 1.
    let log2 = u64::BITS - cycles.saturating_sub(1).leading_zeros();
    (log2.clamp(MIN_LOG2, MAX_LOG2 + 1) - MIN_LOG2) as usize
}

/// A core's loop figures, cumulative since it started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopStats {
    /// Every iteration.
    pub iterations: u64,
    /// Their cycles (all the time the loop ran).
    pub cycles: u64,
    /// Iterations that received or sent frames.
    pub busy_iterations: u64,
    /// Their cycles.
    pub busy_cycles: u64,
    /// Their packets: per iteration, the larger of frames received (RX
    /// queue and handoffs) and frames the TX queue took.
    pub busy_packets: u64,
    /// Of the busy cycles and packets, those of iterations longer than a
    /// stall: without them, the cost of the packets when the loop was not
    /// held up (by side work, or by losing its CPU).
    pub stalled_busy_cycles: u64,
    pub stalled_busy_packets: u64,
    /// The longest iteration, in cycles.
    pub max_cycles: u64,
    /// Iterations per cycle bucket ([`bucket_bound`]).
    pub hist: [u64; BUCKETS],
    /// Iterations longer than a stall, per side work run in them
    /// ([`stall_name`]).
    pub stalls: [u64; STALL_KINDS],
    /// The TSC's rate, to read cycles as time.
    pub tsc_hz: u64,
    /// Sleeps of an idle core (`--idle-sleep`) and the cycles they took:
    /// no iteration's (a sleep ends one iteration and the next begins
    /// after it).
    pub sleeps: u64,
    pub sleep_cycles: u64,
}

impl Default for LoopStats {
    fn default() -> Self {
        LoopStats {
            iterations: 0,
            cycles: 0,
            busy_iterations: 0,
            busy_cycles: 0,
            busy_packets: 0,
            stalled_busy_cycles: 0,
            stalled_busy_packets: 0,
            max_cycles: 0,
            hist: [0; BUCKETS],
            stalls: [0; STALL_KINDS],
            sleeps: 0,
            sleep_cycles: 0,
            tsc_hz: 0,
        }
    }
}

impl LoopStats {
    /// Cycles per packet over the busy iterations (0 before any packet).
    pub fn cycles_per_packet(&self) -> f64 {
        if self.busy_packets == 0 {
            0.0
        } else {
            self.busy_cycles as f64 / self.busy_packets as f64
        }
    }

    /// Cycles per packet over the busy iterations that were no stall.
    pub fn cycles_per_packet_unstalled(&self) -> f64 {
        let packets = self.busy_packets - self.stalled_busy_packets;
        if packets == 0 {
            0.0
        } else {
            (self.busy_cycles - self.stalled_busy_cycles) as f64 / packets as f64
        }
    }

    /// Several cores' figures together: sums, and the longest iteration.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a LoopStats>) -> LoopStats {
        let mut acc = LoopStats::default();
        for s in all {
            acc.iterations += s.iterations;
            acc.cycles += s.cycles;
            acc.busy_iterations += s.busy_iterations;
            acc.busy_cycles += s.busy_cycles;
            acc.busy_packets += s.busy_packets;
            acc.stalled_busy_cycles += s.stalled_busy_cycles;
            acc.stalled_busy_packets += s.stalled_busy_packets;
            acc.max_cycles = acc.max_cycles.max(s.max_cycles);
            for (a, b) in acc.hist.iter_mut().zip(&s.hist) {
                *a += b;
            }
            for (a, b) in acc.stalls.iter_mut().zip(&s.stalls) {
                *a += b;
            }
            acc.tsc_hz = acc.tsc_hz.max(s.tsc_hz);
            acc.sleeps += s.sleeps;
            acc.sleep_cycles += s.sleep_cycles;
        }
        acc
    }

    /// `cycles_per_packet=.. busy_cycles=.. ... stalls_timers=.. ...`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "cycles_per_packet={:.1} busy_cycles={} busy_packets={} busy_iterations={} \
             cycles_per_packet_unstalled={:.1} stalled_busy_cycles={} stalled_busy_packets={} \
             iterations={} cycles={} max_iteration_cycles={} tsc_mhz={} sleeps={} sleep_cycles={}",
            self.cycles_per_packet(),
            self.busy_cycles,
            self.busy_packets,
            self.busy_iterations,
            self.cycles_per_packet_unstalled(),
            self.stalled_busy_cycles,
            self.stalled_busy_packets,
            self.iterations,
            self.cycles,
            self.max_cycles,
            self.tsc_hz / 1_000_000,
            self.sleeps,
            self.sleep_cycles
        );
        for (i, n) in self.stalls.iter().enumerate() {
            s.push_str(&format!(" stalls_{}={n}", stall_name(i)));
        }
        s
    }

    /// The histogram's non-empty buckets: `le_128=.. le_256=.. ... inf=..`.
    pub fn histogram_line(&self) -> String {
        let words: Vec<String> = self
            .hist
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| match bucket_bound(i) {
                Some(b) => format!("le_{b}={n}"),
                None => format!("inf={n}"),
            })
            .collect();
        words.join(" ")
    }

    /// Telemetry dictionary entries: `cycles_per_packet` (rounded),
    /// `loop_busy_cycles`, ..., `loop_stalls_<kind>`, `loop_cycles_le_<N>`
    /// and `loop_cycles_inf` (every bucket, not cumulative).
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let mut v = vec![
            (
                "cycles_per_packet".to_string(),
                self.cycles_per_packet().round() as u64,
            ),
            ("loop_busy_cycles".to_string(), self.busy_cycles),
            ("loop_busy_packets".to_string(), self.busy_packets),
            ("loop_busy_iterations".to_string(), self.busy_iterations),
            (
                "cycles_per_packet_unstalled".to_string(),
                self.cycles_per_packet_unstalled().round() as u64,
            ),
            (
                "loop_stalled_busy_cycles".to_string(),
                self.stalled_busy_cycles,
            ),
            (
                "loop_stalled_busy_packets".to_string(),
                self.stalled_busy_packets,
            ),
            ("loop_iterations".to_string(), self.iterations),
            ("loop_cycles".to_string(), self.cycles),
            ("loop_max_iteration_cycles".to_string(), self.max_cycles),
            ("tsc_hz".to_string(), self.tsc_hz),
            ("loop_sleeps".to_string(), self.sleeps),
            ("loop_sleep_cycles".to_string(), self.sleep_cycles),
        ];
        for (i, n) in self.stalls.iter().enumerate() {
            v.push((format!("loop_stalls_{}", stall_name(i)), *n));
        }
        for (i, n) in self.hist.iter().enumerate() {
            let name = match bucket_bound(i) {
                Some(b) => format!("loop_cycles_le_{b}"),
                None => "loop_cycles_inf".to_string(),
            };
            v.push((name, *n));
        }
        v
    }

    fn to_array(&self) -> [u64; PUBLISHED] {
        let mut a = [0; PUBLISHED];
        a[..SCALARS].copy_from_slice(&[
            self.iterations,
            self.cycles,
            self.busy_iterations,
            self.busy_cycles,
            self.busy_packets,
            self.stalled_busy_cycles,
            self.stalled_busy_packets,
            self.max_cycles,
            self.tsc_hz,
            self.sleeps,
            self.sleep_cycles,
        ]);
        a[SCALARS..SCALARS + BUCKETS].copy_from_slice(&self.hist);
        a[SCALARS + BUCKETS..].copy_from_slice(&self.stalls);
        a
    }

    fn from_array(a: &[u64; PUBLISHED]) -> LoopStats {
        let mut s = LoopStats {
            iterations: a[0],
            cycles: a[1],
            busy_iterations: a[2],
            busy_cycles: a[3],
            busy_packets: a[4],
            stalled_busy_cycles: a[5],
            stalled_busy_packets: a[6],
            max_cycles: a[7],
            tsc_hz: a[8],
            sleeps: a[9],
            sleep_cycles: a[10],
            ..Default::default()
        };
        s.hist.copy_from_slice(&a[SCALARS..SCALARS + BUCKETS]);
        s.stalls.copy_from_slice(&a[SCALARS + BUCKETS..]);
        s
    }
}

/// The scalar fields of [`LoopStats`], published before the histogram.
const SCALARS: usize = 11;
const PUBLISHED: usize = SCALARS + BUCKETS + STALL_KINDS;

/// The loop's recorder, owned by one lcore.
#[derive(Debug)]
pub struct LoopCycles {
    last_tsc: u64,
    last_in: u64,
    last_out: u64,
    /// Cycles each [`SideWork`] took since the last iteration ended.
    side: [u64; SideWork::COUNT],
    stall_cycles: u64,
    stats: LoopStats,
}

impl LoopCycles {
    /// Start at `tsc`; an iteration over `stall_cycles` is a stall.
    pub fn new(tsc: u64, tsc_hz: u64, stall_cycles: u64) -> LoopCycles {
        LoopCycles {
            last_tsc: tsc,
            last_in: 0,
            last_out: 0,
            side: [0; SideWork::COUNT],
            stall_cycles: stall_cycles.max(1),
            stats: LoopStats {
                tsc_hz,
                ..Default::default()
            },
        }
    }

    /// `work` ran from TSC `start` to `end`, in the iteration that ends at
    /// the next [`end_iteration`](Self::end_iteration).
    #[inline]
    pub fn side_work(&mut self, work: SideWork, start: u64, end: u64) {
        self.side[work as usize] += end.saturating_sub(start);
    }

    /// An iteration ended at `tsc`; `frames_in` and `frames_out` are the
    /// core's received and sent frame counters now (cumulative). True if
    /// it moved frames.
    #[inline]
    pub fn end_iteration(&mut self, tsc: u64, frames_in: u64, frames_out: u64) -> bool {
        let cycles = tsc.saturating_sub(self.last_tsc);
        let moved_in = frames_in.wrapping_sub(self.last_in);
        let moved_out = frames_out.wrapping_sub(self.last_out);
        self.last_tsc = tsc;
        self.last_in = frames_in;
        self.last_out = frames_out;
        let s = &mut self.stats;
        s.iterations += 1;
        s.cycles += cycles;
        s.hist[bucket(cycles)] += 1;
        s.max_cycles = s.max_cycles.max(cycles);
        let packets = moved_in.max(moved_out);
        if packets != 0 {
            s.busy_iterations += 1;
            s.busy_cycles += cycles;
            s.busy_packets += packets;
        }
        if cycles >= self.stall_cycles {
            self.count_stall(cycles, packets);
        }
        self.side = [0; SideWork::COUNT];
        packets != 0
    }

    /// The loop slept (an idle core's `--idle-sleep`) from where the last
    /// iteration ended to `tsc`: counted as a sleep, in no iteration.
    pub fn slept(&mut self, tsc: u64) {
        self.stats.sleeps += 1;
        self.stats.sleep_cycles += tsc.saturating_sub(self.last_tsc);
        self.last_tsc = tsc;
    }

    #[cold]
    fn count_stall(&mut self, cycles: u64, packets: u64) {
        if packets != 0 {
            self.stats.stalled_busy_cycles += cycles;
            self.stats.stalled_busy_packets += packets;
        }
        // A side work that took half a stall itself is a cause; one that
        // merely ran beside a long burst of packets (or a preemption) is not.
        let cause = self.stall_cycles.div_ceil(2);
        let mut any = false;
        for w in SideWork::ALL {
            if self.side[w as usize] >= cause {
                self.stats.stalls[w as usize] += 1;
                any = true;
            }
        }
        if !any {
            self.stats.stalls[SideWork::COUNT] += 1;
        }
    }

    pub fn stats(&self) -> &LoopStats {
        &self.stats
    }
}

/// A core's loop figures as last published, readable from any thread.
#[derive(Debug)]
pub struct PublishedCycles {
    slots: [AtomicU64; PUBLISHED],
}

impl Default for PublishedCycles {
    fn default() -> Self {
        PublishedCycles {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl PublishedCycles {
    pub fn publish(&self, s: &LoopStats) {
        for (slot, v) in self.slots.iter().zip(s.to_array()) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    pub fn read(&self) -> LoopStats {
        LoopStats::from_array(&std::array::from_fn(|i| {
            self.slots[i].load(Ordering::Relaxed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_inclusive() {
        assert_eq!(bucket_bound(0), Some(64));
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(64), 0);
        assert_eq!(bucket(65), 1);
        assert_eq!(bucket(128), 1);
        assert_eq!(bucket(129), 2);
        assert_eq!(bucket_bound(BUCKETS - 2), Some(1 << 33));
        assert_eq!(bucket(1 << 33), BUCKETS - 2);
        assert_eq!(bucket((1 << 33) + 1), BUCKETS - 1);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_bound(BUCKETS - 1), None);
        // Every value lands in the first bucket whose bound holds it.
        for c in [2u64, 3, 63, 100, 1000, 4095, 4096, 4097, 1 << 20, 12345678] {
            let b = bucket(c);
            assert!(bucket_bound(b).is_none_or(|hi| c <= hi), "{c}");
            assert!(
                b == 0 || bucket_bound(b - 1).is_some_and(|lo| c > lo),
                "{c}"
            );
        }
    }

    #[test]
    fn busy_iterations_count_cycles_and_packets() {
        let mut l = LoopCycles::new(1000, 2_000_000_000, 200_000);
        // Idle: no frames moved.
        l.end_iteration(1100, 0, 0);
        // 32 in, 32 out (an echo): 32 packets, not 64.
        l.end_iteration(1100 + 3200, 32, 32);
        // A sender: nothing in, 10 out.
        l.end_iteration(4300 + 1000, 32, 42);
        // A sink: 5 in, nothing out.
        l.end_iteration(5300 + 500, 37, 42);
        let s = l.stats();
        assert_eq!(s.iterations, 4);
        assert_eq!(s.cycles, 5800 - 1000);
        assert_eq!(s.busy_iterations, 3);
        assert_eq!(s.busy_cycles, 3200 + 1000 + 500);
        assert_eq!(s.busy_packets, 32 + 10 + 5);
        assert_eq!(s.cycles_per_packet(), 4700.0 / 47.0);
        assert_eq!(s.cycles_per_packet_unstalled(), s.cycles_per_packet());
        assert_eq!(s.max_cycles, 3200);
        assert_eq!(s.hist.iter().sum::<u64>(), 4);
        assert_eq!(s.hist[bucket(100)], 1);
        assert_eq!(s.hist[bucket(3200)], 1);
        assert_eq!(s.stalls, [0; STALL_KINDS]);
        assert_eq!(LoopStats::default().cycles_per_packet(), 0.0);
    }

    #[test]
    fn stalls_are_counted_by_the_side_work_that_took_them() {
        let mut l = LoopCycles::new(0, 1_000_000_000, 100_000);
        l.side_work(SideWork::Publish, 0, 40_000);
        l.end_iteration(50_000, 0, 0); // side work, but short: no stall
        l.side_work(SideWork::Timers, 60_000, 120_000);
        l.side_work(SideWork::Snapshot, 120_000, 180_000);
        l.end_iteration(200_000, 0, 0); // both took over half a stall
        l.end_iteration(400_000, 1, 1); // a busy stall with no side work
        l.side_work(SideWork::Timers, 400_000, 400_050);
        l.end_iteration(400_100, 1, 1); // side work ends with its iteration
                                        // The timers ran for 30 us in a 200 us iteration (a long burst of
                                        // packets beside them): not theirs.
        l.side_work(SideWork::Timers, 500_000, 530_000);
        l.end_iteration(600_000, 1, 1);
        let s = l.stats();
        let by = |name: &str| s.stalls[(0..STALL_KINDS).find(|&i| stall_name(i) == name).unwrap()];
        assert_eq!(by("timers"), 1);
        assert_eq!(by("snapshot"), 1);
        assert_eq!(by("publish"), 0);
        assert_eq!(by("kernel"), 0);
        assert_eq!(by("other"), 2);
        // Only the busy stall is taken out of the unstalled figure.
        assert_eq!(
            (s.stalled_busy_cycles, s.stalled_busy_packets),
            (200_000, 1)
        );
        assert_eq!(s.busy_packets, 1);
        assert_eq!(s.cycles_per_packet_unstalled(), 0.0);
        assert!(s.line().contains(" stalls_timers=1 "), "{}", s.line());
        assert!(s.line().ends_with(" stalls_other=2"), "{}", s.line());
    }

    #[test]
    fn a_sleep_is_in_no_iteration() {
        let mut l = LoopCycles::new(0, 1_000_000_000, 100_000);
        assert!(!l.end_iteration(1000, 0, 0), "idle");
        // Asleep for 150 us, past a stall: not an iteration, not a stall.
        l.slept(151_000);
        assert!(l.end_iteration(152_000, 1, 1), "busy");
        l.slept(160_000);
        let s = l.stats();
        assert_eq!((s.sleeps, s.sleep_cycles), (2, 150_000 + 8000));
        assert_eq!((s.iterations, s.cycles, s.max_cycles), (2, 2000, 1000));
        assert_eq!((s.busy_cycles, s.busy_packets), (1000, 1));
        assert_eq!(s.stalls, [0; STALL_KINDS]);
        assert!(
            s.line().contains(" sleeps=2 sleep_cycles=158000"),
            "{}",
            s.line()
        );
    }

    #[test]
    fn publish_round_trips_sums_and_prints() {
        let mut l = LoopCycles::new(0, 3_000_000_000, 300_000);
        l.end_iteration(100, 0, 0);
        l.end_iteration(100 + 6400, 32, 32);
        l.slept(10_000);
        let p = PublishedCycles::default();
        p.publish(l.stats());
        let s = p.read();
        assert_eq!(&s, l.stats());
        let t = LoopStats::sum([&s, &s]);
        assert_eq!(
            (t.busy_cycles, t.busy_packets, t.iterations),
            (12800, 64, 4)
        );
        assert_eq!(t.max_cycles, 6400);
        assert_eq!((t.sleeps, t.sleep_cycles), (2, 2 * 3500));
        assert!(
            s.line()
                .starts_with("cycles_per_packet=200.0 busy_cycles=6400 busy_packets=32 "),
            "{}",
            s.line()
        );
        assert!(s.line().contains(" tsc_mhz=3000 "));
        assert_eq!(s.histogram_line(), "le_128=1 le_8192=1");
        let pairs = t.pairs();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).unwrap().1;
        assert_eq!(get("cycles_per_packet"), 200);
        assert_eq!(get("loop_cycles_le_128"), 2);
        assert_eq!(get("loop_cycles_inf"), 0);
        assert_eq!(get("loop_stalls_other"), 0);
        assert_eq!(get("loop_sleeps"), 2);
        assert_eq!(pairs.len(), 13 + STALL_KINDS + BUCKETS);
    }
}
