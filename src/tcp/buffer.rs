//! Fixed-capacity send and receive buffers. Both are rings allocated once
//! when the connection is made; nothing here allocates afterwards.
//!
//! The receive side also keeps out-of-order data: bytes beyond the
//! contiguous part are written where they belong and their ranges tracked
//! by an [`Assembler`] of bounded size.

use arrayvec::ArrayVec;

/// A byte ring.
struct Ring {
    buf: Box<[u8]>,
    head: usize,
}

/// Rings of closed connections, kept for the next ones on this thread (a
/// core): a fresh ring is a page-faulting, zeroing allocation that cost
/// more than the whole handshake (measured: connections per second
/// bounded by `clear_page`). Bounded in bytes; a ring's old contents are
/// never read (only bytes written since are).
const SPARE_BYTES: usize = 64 << 20;

thread_local! {
    static SPARE: std::cell::RefCell<(Vec<Box<[u8]>>, usize)> =
        const { std::cell::RefCell::new((Vec::new(), 0)) };
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        let reused = if capacity == 0 {
            None
        } else {
            SPARE.with(|s| {
                let (list, bytes) = &mut *s.borrow_mut();
                let i = list.iter().rposition(|b| b.len() == capacity)?;
                *bytes -= capacity;
                Some(list.swap_remove(i))
            })
        };
        Ring {
            buf: reused.unwrap_or_else(|| vec![0; capacity].into_boxed_slice()),
            head: 0,
        }
    }
    #[inline]
    fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// The two slices holding `len` bytes from `offset` past the head.
    fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let cap = self.capacity();
        if len == 0 || cap == 0 {
            return (&[], &[]);
        }
        let start = (self.head + offset) % cap;
        let first = len.min(cap - start);
        (&self.buf[start..start + first], &self.buf[..len - first])
    }
    /// Write `data` at `offset` past the head (the caller checked it fits).
    fn write_at(&mut self, offset: usize, data: &[u8]) {
        let cap = self.capacity();
        if data.is_empty() || cap == 0 {
            return;
        }
        let start = (self.head + offset) % cap;
        let first = data.len().min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }
    fn advance(&mut self, n: usize) {
        if self.capacity() > 0 {
            self.head = (self.head + n) % self.capacity();
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let cap = self.buf.len();
        if cap == 0 {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        let _ = SPARE.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                let (list, bytes) = &mut *s;
                if *bytes + cap <= SPARE_BYTES {
                    *bytes += cap;
                    list.push(buf);
                }
            }
        });
    }
}

/// Bytes the application wrote and the peer has not acknowledged yet. The
/// first byte is the one at SND.UNA (or ISS+1 before the SYN is acked).
pub struct SendBuffer {
    ring: Ring,
    len: usize,
}

impl SendBuffer {
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            ring: Ring::new(capacity),
            len: 0,
        }
    }
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }
    /// Append as much of `data` as fits; returns how much was taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.ring.write_at(self.len, &data[..n]);
        self.len += n;
        n
    }
    /// `len` bytes from `offset`, as up to two slices.
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let len = len.min(self.len.saturating_sub(offset));
        self.ring.slices(offset, len)
    }
    /// Drop `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ring.advance(n);
        self.len -= n;
    }
}

/// Out-of-order ranges, as offsets from RCV.NXT, sorted and disjoint.
#[derive(Debug, Default)]
pub struct Assembler {
    ranges: ArrayVec<(usize, usize), { Assembler::MAX_RANGES }>,
}

impl Assembler {
    /// Holes the receiver tracks; a segment that would need more is dropped.
    pub const MAX_RANGES: usize = 16;

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Record `[start, end)`. False if it needs more ranges than we keep.
    pub fn add(&mut self, start: usize, end: usize) -> bool {
        if start >= end {
            return true;
        }
        let mut merged = (start, end);
        let mut out: ArrayVec<(usize, usize), { Assembler::MAX_RANGES }> = ArrayVec::new();
        let mut placed = false;
        for &(s, e) in &self.ranges {
            if e < merged.0 {
                out.push((s, e));
            } else if s > merged.1 {
                if !placed {
                    if out.try_push(merged).is_err() {
                        return false;
                    }
                    placed = true;
                }
                if out.try_push((s, e)).is_err() {
                    return false;
                }
            } else {
                merged = (merged.0.min(s), merged.1.max(e));
            }
        }
        if !placed && out.try_push(merged).is_err() {
            return false;
        }
        self.ranges = out;
        true
    }

    /// If a range starts at 0, remove it and return its length; shift the
    /// rest down by that much.
    pub fn take_front(&mut self) -> usize {
        match self.ranges.first() {
            Some(&(0, end)) => {
                self.ranges.remove(0);
                for r in self.ranges.iter_mut() {
                    r.0 -= end;
                    r.1 -= end;
                }
                end
            }
            _ => 0,
        }
    }

    /// The end of the last range (how far past RCV.NXT data is held).
    pub fn end(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.1)
    }

    /// The ranges, for SACK-like reporting and tests.
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

/// Bytes received: `len` in order, readable by the application, then room
/// for out-of-order data up to the capacity.
pub struct RecvBuffer {
    ring: Ring,
    len: usize,
    ooo: Assembler,
}

/// What [`RecvBuffer::write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes that became readable in order (RCV.NXT advances by this).
    pub in_order: usize,
    /// The segment (or part of it) was kept out of order.
    pub queued: bool,
    /// The segment needed more out-of-order ranges than we keep.
    pub dropped: bool,
}

impl RecvBuffer {
    pub fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            ring: Ring::new(capacity),
            len: 0,
            ooo: Assembler::default(),
        }
    }
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
    /// Readable bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Room past RCV.NXT: the receive window.
    pub fn window(&self) -> usize {
        self.capacity() - self.len
    }
    pub fn has_out_of_order(&self) -> bool {
        !self.ooo.is_empty()
    }
    pub fn assembler(&self) -> &Assembler {
        &self.ooo
    }

    /// Store `data`, which starts `offset` bytes past RCV.NXT. Bytes beyond
    /// the window are cut off (the caller trimmed to the window already).
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Written {
        let window = self.window();
        if offset >= window || data.is_empty() {
            return Written {
                in_order: 0,
                queued: false,
                dropped: offset >= window && !data.is_empty(),
            };
        }
        let n = data.len().min(window - offset);
        if offset > 0 || !self.ooo.is_empty() {
            if !self.ooo.add(offset, offset + n) {
                return Written {
                    in_order: 0,
                    queued: false,
                    dropped: true,
                };
            }
            self.ring.write_at(self.len + offset, &data[..n]);
            let in_order = self.ooo.take_front();
            self.len += in_order;
            return Written {
                in_order,
                queued: offset > 0,
                dropped: false,
            };
        }
        self.ring.write_at(self.len, &data[..n]);
        self.len += n;
        Written {
            in_order: n,
            queued: false,
            dropped: false,
        }
    }

    /// Copy readable bytes into `out`, consuming them.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        let (a, b) = self.ring.slices(0, n);
        out[..a.len()].copy_from_slice(a);
        out[a.len()..n].copy_from_slice(b);
        self.ring.advance(n);
        self.len -= n;
        n
    }

    /// The readable bytes as up to two slices, without consuming them.
    pub fn peek(&self) -> (&[u8], &[u8]) {
        self.ring.slices(0, self.len)
    }

    /// Consume `n` readable bytes.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ring.advance(n);
        self.len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_of_closed_connections_are_reused_on_their_thread() {
        std::thread::spawn(|| {
            let a = SendBuffer::new(12_345);
            let p = a.ring.buf.as_ptr();
            drop(a);
            let b = RecvBuffer::new(12_345);
            assert_eq!(b.ring.buf.as_ptr(), p, "the spare ring is taken");
            let c = SendBuffer::new(12_345);
            assert_ne!(c.ring.buf.as_ptr(), p);
            assert_eq!(c.capacity(), 12_345);
            // Another size is not confused with it.
            drop(b);
            assert_eq!(SendBuffer::new(999).capacity(), 999);
        })
        .join()
        .unwrap();
    }

    use proptest::prelude::*;

    #[test]
    fn send_ring_wraps() {
        let mut s = SendBuffer::new(8);
        assert_eq!(s.write(b"abcdef"), 6);
        s.consume(4);
        assert_eq!(s.write(b"ghijklmn"), 6);
        let (a, b) = s.slices(0, 8);
        assert_eq!([a, b].concat(), b"efghijkl");
        let (a, b) = s.slices(3, 10);
        assert_eq!([a, b].concat(), b"hijkl");
        assert_eq!(s.free(), 0);
    }

    #[test]
    fn assembler_merges() {
        let mut a = Assembler::default();
        assert!(a.add(10, 20));
        assert!(a.add(30, 40));
        assert!(a.add(15, 32));
        assert_eq!(a.ranges(), &[(10, 40)]);
        assert_eq!(a.take_front(), 0);
        assert!(a.add(0, 10));
        assert_eq!(a.take_front(), 40);
        assert!(a.is_empty());
    }

    #[test]
    fn assembler_is_bounded() {
        let mut a = Assembler::default();
        for i in 0..Assembler::MAX_RANGES {
            assert!(a.add(i * 10 + 5, i * 10 + 6));
        }
        assert!(!a.add(1000, 1001));
        // Merging into an existing range needs no new one.
        assert!(a.add(5, 7));
    }

    #[test]
    fn recv_out_of_order() {
        let mut r = RecvBuffer::new(16);
        let w = r.write(4, b"efgh");
        assert_eq!(w.in_order, 0);
        assert!(w.queued);
        assert_eq!(r.len(), 0);
        let w = r.write(0, b"abcd");
        assert_eq!(w.in_order, 8);
        let mut out = [0u8; 16];
        assert_eq!(r.read(&mut out), 8);
        assert_eq!(&out[..8], b"abcdefgh");
        // Beyond the window is cut.
        let w = r.write(0, &[7u8; 20]);
        assert_eq!(w.in_order, 16);
        assert_eq!(r.window(), 0);
    }

    proptest! {
        /// Any arrival order of a stream's segments reassembles it exactly.
        #[test]
        fn reassembles_any_order(
            cuts in proptest::collection::vec(1usize..200, 1..20),
            seed in any::<u64>(),
        ) {
            let total: usize = cuts.iter().sum();
            let data: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
            let mut segs = Vec::new();
            let mut at = 0;
            for c in &cuts {
                segs.push((at, *c));
                at += c;
            }
            // Deterministic shuffle.
            let mut s = seed;
            for i in (1..segs.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                segs.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut r = RecvBuffer::new(total);
            let mut nxt = 0;
            for (start, len) in segs {
                // The caller trims what is below RCV.NXT.
                if start + len <= nxt {
                    continue;
                }
                let skip = nxt.saturating_sub(start);
                let w = r.write(start + skip - nxt, &data[start + skip..start + len]);
                prop_assert!(!w.dropped || Assembler::MAX_RANGES < cuts.len());
                nxt += w.in_order;
            }
            if nxt == total {
                let mut out = vec![0; total];
                prop_assert_eq!(r.read(&mut out), total);
                prop_assert_eq!(out, data);
            }
        }
    }
}
