//! Mbuf pools and the owned [`Mbuf`].

use super::error::{from_errno, Result};
use crate::buf::{BufPool, L4Checksum, PacketBuf, RxChecksum, RxChecksums};
use crate::ffi;
use std::ffi::CString;
use std::ptr::NonNull;

/// The longest frame a `net_af_packet` device among the EAL arguments can
/// hand over, if there is one: its `framesz` (PACKET_MMAP frame size, 2048 by
/// default) less the TPACKET_V2 header in front of the frame. Its RX queue
/// refuses a pool whose buffers are shorter (-ENOMEM), and with `qpairs` > 1
/// the kernel's fanout reassembles fragments (PACKET_FANOUT_FLAG_DEFRAG) into
/// frames longer than the MTU: a larger `framesz` lets them through whole
/// instead of cut to the frame size.
pub fn af_packet_max_frame(eal_args: &[String]) -> Option<usize> {
    /// TPACKET2_HDRLEN less the `sockaddr_ll` in it, as the PMD counts.
    const TPACKET2_OVERHEAD: usize = 32;
    const DEFAULT_FRAMESZ: usize = 2048;
    let mut vdevs = Vec::new();
    let mut args = eal_args.iter();
    while let Some(a) = args.next() {
        if let Some(v) = a.strip_prefix("--vdev=") {
            vdevs.push(v);
        } else if a == "--vdev" {
            vdevs.extend(args.next().map(String::as_str));
        }
    }
    vdevs
        .into_iter()
        .filter(|v| v.starts_with("net_af_packet") || v.starts_with("eth_af_packet"))
        .map(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("framesz="))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(DEFAULT_FRAMESZ)
                .saturating_sub(TPACKET2_OVERHEAD)
        })
        .max()
}

/// A handle to a packet mbuf pool. Pools live as long as the process (ports
/// and in-flight mbufs refer to them), so the handle is `Copy` and the pool is
/// released by `rte_eal_cleanup`.
#[derive(Clone, Copy, Debug)]
pub struct Mempool {
    ptr: NonNull<ffi::rte_mempool>,
}

// SAFETY: rte_mempool is designed for concurrent use from all lcores
// (per-lcore caches plus a lock-free ring).
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `rte_pktmbuf_pool_create` with room for frames of `max_frame` bytes
    /// (at least DPDK's default data room) after the standard headroom, so
    /// every frame fits one segment.
    pub fn create(
        name: &str,
        n: u32,
        cache: u32,
        max_frame: usize,
        socket: i32,
    ) -> Result<Mempool> {
        let cname = CString::new(name).expect("pool name has no NUL");
        // SAFETY: plain constants.
        let (default, headroom) = unsafe {
            (
                ffi::shim_mbuf_default_buf_size(),
                ffi::shim_pktmbuf_headroom(),
            )
        };
        let data_room = (max_frame + usize::from(headroom))
            .max(usize::from(default))
            .min(usize::from(u16::MAX)) as u16;
        // SAFETY: valid C string; returns NULL and sets rte_errno on failure.
        let p =
            unsafe { ffi::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        NonNull::new(p)
            .map(|ptr| Mempool { ptr })
            .ok_or_else(|| from_errno("rte_pktmbuf_pool_create"))
    }

    pub fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Mbufs free in the pool, per-lcore caches included.
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is valid for the process lifetime.
        unsafe { ffi::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs handed out and not yet returned.
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: as above.
        unsafe { ffi::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// One empty mbuf, or None when the pool is exhausted.
    #[inline]
    pub fn alloc_mbuf(&self) -> Option<Mbuf> {
        // SAFETY: returns a fresh mbuf we own, or NULL.
        let m = unsafe { ffi::shim_pktmbuf_alloc(self.ptr.as_ptr()) };
        // SAFETY: a non-null result is a valid, exclusively owned mbuf.
        NonNull::new(m).map(|p| unsafe { Mbuf::from_raw(p) })
    }
}

impl BufPool for Mempool {
    type Buf = Mbuf;
    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        self.alloc_mbuf()
    }
}

/// An owned, single-segment mbuf. Freed on drop.
pub struct Mbuf {
    ptr: NonNull<ffi::rte_mbuf>,
}

// SAFETY: an Mbuf is exclusively owned; moving it to another lcore (e.g.
// through a ring) is how DPDK hands packets over.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` must be a valid mbuf that nothing else owns or frees.
    #[inline]
    pub unsafe fn from_raw(p: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf { ptr: p }
    }

    /// Give up ownership (e.g. to `tx_burst`).
    #[inline]
    pub fn into_raw(self) -> *mut ffi::rte_mbuf {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline]
    fn raw(&self) -> &ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively.
        unsafe { self.ptr.as_mut() }
    }

    /// Chained (multi-segment) mbufs are not handled by the stack.
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The NIC's RSS hash of this packet, if it computed one.
    pub fn rss_hash(&self) -> Option<u32> {
        let mut valid = 0;
        // SAFETY: reads fields of an mbuf we own.
        let h = unsafe { ffi::shim_mbuf_rss_hash(self.ptr.as_ptr(), &mut valid) };
        (valid != 0).then_some(h)
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it is freed exactly once.
        unsafe { ffi::shim_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's
        // buffer for a single-segment mbuf, and we own it.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in data(), and we hold &mut self.
        unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }
    #[inline]
    fn tailroom(&self) -> usize {
        let m = self.raw();
        m.buf_len as usize - m.data_off as usize - m.data_len as usize
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > m.data_len as usize {
            return false;
        }
        m.data_off += n as u16;
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > m.data_off as usize {
            return false;
        }
        m.data_off -= n as u16;
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        true
    }
    /// The caller seeds the L4 checksum field with the pseudo-header sum, as
    /// DPDK requires.
    fn request_tx_checksum(&mut self, l2_len: u16, l3_len: u16, l4: L4Checksum) {
        let l4 = match l4 {
            L4Checksum::None => 0,
            L4Checksum::Udp => 1,
            L4Checksum::Tcp => 2,
        };
        // SAFETY: sets offload fields of an mbuf we own.
        unsafe { ffi::shim_mbuf_tx_cksum(self.ptr.as_ptr(), l2_len, l3_len, l4) }
    }
    /// From the mbuf's `RTE_MBUF_F_RX_{IP,L4}_CKSUM_*` flags. NONE (both
    /// bits: the data was checked but the field in the packet may be
    /// wrong) is taken as unknown, so the stack checks the field itself.
    #[inline]
    fn rx_checksum(&self) -> RxChecksums {
        use ffi::flags as f;
        let flags = self.raw().ol_flags;
        let verdict = |mask: u64, good: u64, bad: u64| match flags & mask {
            m if m == good => RxChecksum::Good,
            m if m == bad => RxChecksum::Bad,
            _ => RxChecksum::Unknown,
        };
        RxChecksums {
            ip: verdict(
                f::rte_mbuf_f_rx_ip_cksum_mask(),
                f::rte_mbuf_f_rx_ip_cksum_good(),
                f::rte_mbuf_f_rx_ip_cksum_bad(),
            ),
            l4: verdict(
                f::rte_mbuf_f_rx_l4_cksum_mask(),
                f::rte_mbuf_f_rx_l4_cksum_good(),
                f::rte_mbuf_f_rx_l4_cksum_bad(),
            ),
        }
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        let m = self.raw_mut();
        if m.data_off as usize + len > m.buf_len as usize {
            return false;
        }
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::af_packet_max_frame;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn af_packet_frame_size_is_read_from_the_vdev_arguments() {
        assert_eq!(af_packet_max_frame(&args("-l 0-1 --no-pci")), None);
        assert_eq!(af_packet_max_frame(&args("--vdev=net_tap0,iface=t0")), None);
        assert_eq!(
            af_packet_max_frame(&args("--vdev=net_af_packet0,iface=v0,qpairs=2")),
            Some(2016)
        );
        assert_eq!(
            af_packet_max_frame(&args(
                "--vdev net_af_packet0,iface=v0,qpairs=2,blocksz=16384,framesz=16384"
            )),
            Some(16352)
        );
    }
}
