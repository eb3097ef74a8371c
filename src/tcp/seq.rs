//! Sequence numbers: 32-bit, compared modulo 2^32 (RFC 9293 3.4).

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Sub};

/// A TCP sequence number. Ordering is the RFC's "less than" modulo 2^32,
/// meaningful only for numbers less than 2^31 apart.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Seq(pub u32);

impl Seq {
    /// The distance from `other` to `self` (self - other), which must not be
    /// negative.
    #[inline]
    pub fn since(self, other: Seq) -> usize {
        self.0.wrapping_sub(other.0) as usize
    }
    #[inline]
    pub fn max(self, other: Seq) -> Seq {
        if self > other {
            self
        } else {
            other
        }
    }
    #[inline]
    pub fn min(self, other: Seq) -> Seq {
        if self < other {
            self
        } else {
            other
        }
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Add<usize> for Seq {
    type Output = Seq;
    #[inline]
    fn add(self, rhs: usize) -> Seq {
        Seq(self.0.wrapping_add(rhs as u32))
    }
}

impl Sub<usize> for Seq {
    type Output = Seq;
    #[inline]
    fn sub(self, rhs: usize) -> Seq {
        Seq(self.0.wrapping_sub(rhs as u32))
    }
}

impl PartialOrd for Seq {
    #[inline]
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some((self.0.wrapping_sub(other.0) as i32).cmp(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        let a = Seq(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b, Seq(4));
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.since(a), 10);
        assert_eq!(b - 10, a);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }
}
