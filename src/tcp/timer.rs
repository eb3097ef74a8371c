//! A hashed timer wheel driven by the caller's clock (the TSC, through
//! [`Instant`]). Entries are connection handles; the wheel is lazy: a
//! connection re-arms when its earliest deadline moves earlier, and a stale
//! entry (its tick is not the one the connection last armed) is ignored when
//! it fires. Deadlines past the horizon are parked at the horizon and re-armed
//! when they come up.

use crate::time::Instant;

pub struct TimerWheel {
    slots: Vec<Vec<(u32, u64)>>,
    tick_us: u64,
    /// Every tick up to and including this one has fired.
    current: u64,
}

impl TimerWheel {
    /// `slots` of `tick_us` microseconds each; the horizon is their product.
    pub fn new(slots: usize, tick_us: u64, now: Instant) -> TimerWheel {
        TimerWheel {
            slots: (0..slots.max(2)).map(|_| Vec::new()).collect(),
            tick_us: tick_us.max(1),
            current: now.micros() / tick_us.max(1),
        }
    }

    fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The tick `insert` would file `when` under now: rounded up to a tick,
    /// at least the next tick, at most the horizon. A caller that compares
    /// a deadline with the tick it filed must use this rounding, not
    /// [`TimerWheel::tick_of`]'s: an unchanged deadline between two ticks
    /// then compares equal and is not filed again.
    pub fn tick_for(&self, when: Instant) -> u64 {
        let tick = when.micros().div_ceil(self.tick_us);
        tick.clamp(self.current + 1, self.current + self.len() - 1)
    }

    /// Schedule `handle` at `when` (see [`TimerWheel::tick_for`]). Returns
    /// the tick it is filed under.
    pub fn insert(&mut self, handle: u32, when: Instant) -> u64 {
        let tick = self.tick_for(when);
        let slot = (tick % self.len()) as usize;
        self.slots[slot].push((handle, tick));
        tick
    }

    /// Fire every entry due by `now` into `out`, as (handle, tick).
    pub fn advance(&mut self, now: Instant, out: &mut Vec<(u32, u64)>) {
        let target = now.micros() / self.tick_us;
        if target <= self.current {
            return;
        }
        // After a long gap every slot is visited once.
        let steps = (target - self.current).min(self.len());
        for i in 1..=steps {
            let tick = if steps == self.len() {
                target - self.len() + i
            } else {
                self.current + i
            };
            let n = self.len();
            let slot = &mut self.slots[(tick % n) as usize];
            let mut j = 0;
            while j < slot.len() {
                if slot[j].1 <= target {
                    out.push(slot.swap_remove(j));
                } else {
                    j += 1;
                }
            }
        }
        self.current = target;
    }

    /// The tick `now` falls in.
    pub fn tick_of(&self, now: Instant) -> u64 {
        now.micros() / self.tick_us
    }

    /// Entries filed (live or stale).
    pub fn entries(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_parks_far_deadlines() {
        let mut w = TimerWheel::new(8, 1000, Instant::ZERO);
        let t3 = w.insert(1, Instant::from_micros(2500));
        assert_eq!(t3, 3);
        let far = w.insert(2, Instant::from_secs(100));
        assert_eq!(far, 7);
        let mut out = Vec::new();
        w.advance(Instant::from_millis(2), &mut out);
        assert!(out.is_empty());
        w.advance(Instant::from_millis(3), &mut out);
        assert_eq!(out, vec![(1, 3)]);
        out.clear();
        w.advance(Instant::from_millis(7), &mut out);
        assert_eq!(out, vec![(2, 7)]);
        out.clear();
        // A long jump visits every slot once.
        w.insert(3, Instant::from_millis(9));
        w.advance(Instant::from_secs(50), &mut out);
        assert_eq!(out, vec![(3, 9)]);
        assert_eq!(w.entries(), 0);
        // Past deadlines fire on the next tick.
        let t = w.insert(4, Instant::ZERO);
        assert_eq!(t, 50_001);
    }

    #[test]
    fn tick_for_is_the_tick_insert_files_under() {
        let mut w = TimerWheel::new(8, 1000, Instant::from_micros(1500));
        for us in [0, 1500, 1999, 2000, 2001, 2500, 3000, 7999, 8001, 50_000] {
            let when = Instant::from_micros(us);
            let want = w.tick_for(when);
            assert_eq!(w.insert(9, when), want, "{us} us");
        }
        // Between two ticks, tick_of (the tick a time falls in) is one
        // less than the tick it is filed under.
        let when = Instant::from_micros(2500);
        assert_eq!(w.tick_of(when) + 1, w.tick_for(when));
    }
}
