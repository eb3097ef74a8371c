//! Time as the protocol code sees it: a monotonic count of microseconds since
//! some start, passed in by the caller. The shard derives it from the TSC;
//! tests make it up. No protocol code reads a clock itself.

/// Monotonic microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub fn from_micros(us: u64) -> Self {
        Instant(us)
    }
    pub fn from_millis(ms: u64) -> Self {
        Instant(ms * 1000)
    }
    pub fn from_secs(s: u64) -> Self {
        Instant(s * 1_000_000)
    }
    pub fn micros(self) -> u64 {
        self.0
    }
    pub fn millis(self) -> u64 {
        self.0 / 1000
    }
    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

/// A span of microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    pub const fn from_micros(us: u64) -> Self {
        Duration(us)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms * 1000)
    }
    pub const fn from_secs(s: u64) -> Self {
        Duration(s * 1_000_000)
    }
    pub fn micros(self) -> u64 {
        self.0
    }
}
