//! The packet buffer abstraction the protocol code works on.
//!
//! In production an [`crate::dpdk::Mbuf`] implements [`PacketBuf`] and a
//! [`crate::dpdk::Mempool`] implements [`BufPool`]; in unit tests [`HeapBuf`]
//! and [`HeapPool`] do, so every protocol path runs in `cargo test` without EAL.
//!
//! A buffer has headroom (for headers prepended on the way out), data, and
//! tailroom. Invariant: `headroom + len + tailroom == capacity`.

/// The most frames one RX or TX burst carries.
pub const BURST: usize = 32;

/// A packet: a contiguous, owned byte buffer with head- and tailroom.
pub trait PacketBuf {
    /// The packet's bytes.
    fn data(&self) -> &[u8];
    /// The packet's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Bytes available before the data.
    fn headroom(&self) -> usize;
    /// Bytes available after the data.
    fn tailroom(&self) -> usize;
    /// Drop `n` bytes from the front (strip a header). False if `n > len`.
    fn trim_front(&mut self, n: usize) -> bool;
    /// Grow the data by `n` bytes at the front. False if headroom is short.
    fn prepend(&mut self, n: usize) -> bool;
    /// Set the data length to `len`, shrinking or growing into the tailroom.
    /// False if `len` does not fit.
    fn set_len(&mut self, len: usize) -> bool;

    /// Ask the NIC to fill the IPv4 header checksum and, if `l4` is
    /// [`L4Checksum::Udp`] or [`L4Checksum::Tcp`], the L4 checksum. Only
    /// called where the port offers the offload; a no-op elsewhere.
    fn request_tx_checksum(&mut self, _l2_len: u16, _l3_len: u16, _l4: L4Checksum) {}

    /// What the NIC found checking this received frame's IPv4 header and
    /// UDP/TCP checksums (unknown for both where it did not check).
    fn rx_checksum(&self) -> RxChecksums {
        RxChecksums::default()
    }

    fn len(&self) -> usize {
        self.data().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which L4 checksum the NIC should fill on transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Checksum {
    None,
    Udp,
    Tcp,
}

/// The NIC's verdict on one checksum of a received frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxChecksum {
    /// Not checked (or not said): the stack verifies it.
    #[default]
    Unknown,
    /// Checked and right: the stack does not compute it again.
    Good,
    /// Checked and wrong: the frame is dropped.
    Bad,
}

/// The NIC's verdicts on a received frame's checksums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxChecksums {
    /// The IPv4 header checksum.
    pub ip: RxChecksum,
    /// The UDP or TCP checksum (never given for a fragment).
    pub l4: RxChecksum,
}

/// A source of empty packet buffers.
pub trait BufPool {
    type Buf: PacketBuf;
    /// An empty buffer (len 0) with the pool's default headroom, or `None`
    /// when the pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
}

/// A heap-backed [`PacketBuf`] for tests and tools.
#[derive(Clone, Debug)]
pub struct HeapBuf {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
    /// What a test says the NIC found (an mbuf's RX checksum flags).
    rx_checksum: RxChecksums,
}

impl HeapBuf {
    pub const DEFAULT_HEADROOM: usize = 128;
    pub const DEFAULT_CAPACITY: usize = 2048 + Self::DEFAULT_HEADROOM;

    /// An empty buffer of `capacity` bytes with `headroom` reserved at the front.
    pub fn new(capacity: usize, headroom: usize) -> Self {
        let headroom = headroom.min(capacity);
        HeapBuf {
            bytes: vec![0; capacity],
            start: headroom,
            end: headroom,
            rx_checksum: RxChecksums::default(),
        }
    }

    /// A buffer holding a copy of `data`, with the default headroom.
    pub fn from_slice(data: &[u8]) -> Self {
        let cap = (Self::DEFAULT_HEADROOM + data.len()).max(Self::DEFAULT_CAPACITY);
        let mut b = HeapBuf::new(cap, Self::DEFAULT_HEADROOM);
        b.set_len(data.len());
        b.data_mut().copy_from_slice(data);
        b
    }

    /// Say what the NIC found checking the frame's checksums (as a NIC with
    /// RX checksum offload sets an mbuf's flags).
    pub fn set_rx_checksum(&mut self, c: RxChecksums) {
        self.rx_checksum = c;
    }
}

impl PacketBuf for HeapBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.end]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.bytes.len() - self.end
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if self.start + len > self.bytes.len() {
            return false;
        }
        self.end = self.start + len;
        true
    }
    #[inline]
    fn rx_checksum(&self) -> RxChecksums {
        self.rx_checksum
    }
}

/// Buffers given back to a [`HeapPool`], reused as they are (not zeroed,
/// like an mbuf from a mempool: code that reads bytes it did not write
/// shows up in tests).
type FreeList = std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>;

/// A bounded pool of [`HeapBuf`]s that counts what is outstanding, so tests
/// can check that nothing leaks, and recycles what is dropped.
#[derive(Debug)]
pub struct HeapPool {
    capacity: usize,
    outstanding: std::rc::Rc<std::cell::Cell<usize>>,
    limit: usize,
    free: FreeList,
}

impl HeapPool {
    pub fn new(limit: usize) -> Self {
        HeapPool {
            capacity: HeapBuf::DEFAULT_CAPACITY,
            outstanding: Default::default(),
            limit,
            free: Default::default(),
        }
    }
    /// Another handle to the same pool (same limit, same count).
    pub fn share(&self) -> HeapPool {
        HeapPool {
            capacity: self.capacity,
            outstanding: self.outstanding.clone(),
            limit: self.limit,
            free: self.free.clone(),
        }
    }
    /// Buffers handed out and not yet dropped.
    pub fn in_use(&self) -> usize {
        self.outstanding.get()
    }
    /// Wrap an existing frame as a buffer counted by this pool.
    pub fn buf_from(&self, data: &[u8]) -> PooledHeapBuf {
        self.outstanding.set(self.outstanding.get() + 1);
        let buf = match self.recycled() {
            Some(mut b) if HeapBuf::DEFAULT_HEADROOM + data.len() <= b.bytes.len() => {
                b.set_len(data.len());
                b.data_mut().copy_from_slice(data);
                b
            }
            _ => HeapBuf::from_slice(data),
        };
        PooledHeapBuf {
            buf,
            outstanding: self.outstanding.clone(),
            free: self.free.clone(),
        }
    }

    /// A dropped buffer of the default size, empty, with the default headroom.
    fn recycled(&self) -> Option<HeapBuf> {
        let bytes = self.free.borrow_mut().pop()?;
        Some(HeapBuf {
            bytes,
            start: HeapBuf::DEFAULT_HEADROOM,
            end: HeapBuf::DEFAULT_HEADROOM,
            rx_checksum: RxChecksums::default(),
        })
    }
}

/// A [`HeapBuf`] that tells its [`HeapPool`] when it is dropped, and goes
/// back to the pool's free list.
#[derive(Debug)]
pub struct PooledHeapBuf {
    buf: HeapBuf,
    outstanding: std::rc::Rc<std::cell::Cell<usize>>,
    free: FreeList,
}

impl Drop for PooledHeapBuf {
    fn drop(&mut self) {
        self.outstanding.set(self.outstanding.get() - 1);
        if self.buf.bytes.len() == HeapBuf::DEFAULT_CAPACITY {
            if let Ok(mut free) = self.free.try_borrow_mut() {
                let mut bytes = std::mem::take(&mut self.buf.bytes);
                // In unit tests a reused buffer is all garbage, so that a
                // header field left unwritten cannot pass for zero.
                if cfg!(test) {
                    bytes.fill(0xa5);
                }
                free.push(bytes);
            }
        }
    }
}

impl PacketBuf for PooledHeapBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        self.buf.data()
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.buf.data_mut()
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.buf.headroom()
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.buf.tailroom()
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        self.buf.trim_front(n)
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        self.buf.prepend(n)
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        self.buf.set_len(len)
    }
    #[inline]
    fn rx_checksum(&self) -> RxChecksums {
        self.buf.rx_checksum()
    }
}

impl PooledHeapBuf {
    /// As [`HeapBuf::set_rx_checksum`].
    pub fn set_rx_checksum(&mut self, c: RxChecksums) {
        self.buf.set_rx_checksum(c);
    }
}

impl BufPool for HeapPool {
    type Buf = PooledHeapBuf;
    fn alloc(&mut self) -> Option<PooledHeapBuf> {
        if self.outstanding.get() >= self.limit {
            return None;
        }
        self.outstanding.set(self.outstanding.get() + 1);
        let buf = match self.capacity == HeapBuf::DEFAULT_CAPACITY {
            true => self.recycled(),
            false => None,
        }
        .unwrap_or_else(|| HeapBuf::new(self.capacity, HeapBuf::DEFAULT_HEADROOM));
        Some(PooledHeapBuf {
            buf,
            outstanding: self.outstanding.clone(),
            free: self.free.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_buf_rooms_add_up() {
        let mut b = HeapBuf::new(256, 64);
        assert_eq!((b.headroom(), b.len(), b.tailroom()), (64, 0, 192));
        assert!(b.set_len(100));
        assert!(b.prepend(14));
        assert_eq!((b.headroom(), b.len(), b.tailroom()), (50, 114, 92));
        assert!(b.trim_front(14));
        assert!(!b.trim_front(101));
        assert!(!b.prepend(65));
        assert!(!b.set_len(193));
        assert!(b.set_len(192));
    }

    #[test]
    fn heap_pool_counts_outstanding_and_bounds() {
        let mut p = HeapPool::new(2);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        assert!(p.alloc().is_none());
        assert_eq!(p.in_use(), 2);
        drop(a);
        drop(b);
        assert_eq!(p.in_use(), 0);
    }

    #[test]
    fn dropped_buffers_are_reused_unzeroed() {
        let mut p = HeapPool::new(4);
        let mut a = p.alloc().unwrap();
        assert!(a.set_len(64));
        a.data_mut().fill(1);
        drop(a);
        assert_eq!(p.free.borrow().len(), 1);
        let mut b = p.alloc().unwrap();
        assert_eq!(p.free.borrow().len(), 0);
        assert_eq!((b.headroom(), b.len()), (HeapBuf::DEFAULT_HEADROOM, 0));
        assert!(b.set_len(64));
        // Like an mbuf: whatever was there (test builds: garbage).
        assert!(b.data().iter().all(|&x| x == 0xa5));
        drop(b);
        let c = p.buf_from(b"frame");
        assert_eq!(c.data(), b"frame");
        assert_eq!(p.in_use(), 1);
    }
}
