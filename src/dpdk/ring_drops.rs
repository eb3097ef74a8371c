//! Frames the kernel dropped from net_af_packet's RX rings before dpstack
//! read them.
//!
//! DPDK 22.11's af_packet PMD reports no `imissed`: its `stats_get` fills
//! packets, bytes and TX errors only, and it has no xstats of its own. When
//! an lcore falls behind, the kernel finds the socket's ring full and drops
//! the frame, counting it in the socket's `tp_drops`, which only
//! `getsockopt(PACKET_STATISTICS)` on that socket reads. The PMD's sockets
//! are file descriptors of this process: they are found in `/proc/self/fd`
//! as AF_PACKET sockets bound to the port's interface (no other socket of
//! ours is). Reading the statistics resets them in the kernel, so the
//! totals are kept here; nothing else in the process reads them.
//!
//! Read on the printer's thread: `getsockopt` on a socket an lcore receives
//! from through its mapped ring takes the kernel's lock on the socket's
//! statistics only, never the ring.

use std::io;
use std::os::fd::RawFd;

/// The af_packet sockets of one port and what their rings dropped.
#[derive(Debug)]
pub struct RingDrops {
    fds: Vec<RawFd>,
    /// Frames the kernel put in, or tried to put in, the rings.
    pub packets: u64,
    /// Of those, frames dropped because a ring was full.
    pub drops: u64,
}

impl RingDrops {
    /// The AF_PACKET sockets of this process bound to interface `if_index`
    /// (None: there are none, e.g. the port is not net_af_packet).
    pub fn find(if_index: u32) -> io::Result<Option<RingDrops>> {
        let mut fds = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd")? {
            let Some(fd) = entry?
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<RawFd>().ok())
            else {
                continue;
            };
            if bound_packet_ifindex(fd) == Some(if_index) {
                fds.push(fd);
            }
        }
        fds.sort_unstable();
        Ok((!fds.is_empty()).then_some(RingDrops {
            fds,
            packets: 0,
            drops: 0,
        }))
    }

    /// The sockets found.
    pub fn sockets(&self) -> usize {
        self.fds.len()
    }

    /// Add what the kernel counted since the last call.
    pub fn poll(&mut self) {
        for &fd in &self.fds {
            if let Some((packets, drops)) = packet_statistics(fd) {
                self.packets += packets;
                self.drops += drops;
            }
        }
    }
}

/// Whether `driver`'s `imissed` counts frames lost before the application
/// read them, for the virtual devices whose DPDK 22.11 source says so; None
/// for drivers not checked (hardware NICs generally count them).
///
/// - net_af_packet: no; the kernel's ring drops are read here instead.
/// - net_tap: no; what the kernel could not queue to the TAP is in the
///   kernel interface's own TX drops (`ip -s link show IF`).
/// - net_memif: no; a full ring is refused to the peer's `tx_burst`, so the
///   loss, if the peer drops, is counted on its side.
/// - net_null, net_ring: nothing is dropped before the application reads.
pub fn imissed_reported(driver: &str) -> Option<bool> {
    match driver {
        "net_af_packet" | "net_tap" | "net_memif" | "net_null" | "net_ring" => Some(false),
        _ => None,
    }
}

/// The interface an AF_PACKET socket is bound to; None for anything else.
fn bound_packet_ifindex(fd: RawFd) -> Option<u32> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: domain and len are valid out-parameters of the sizes given;
    // on a descriptor that is not a socket the call fails with ENOTSOCK.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || domain != libc::AF_PACKET {
        return None;
    }
    // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: sll is a valid out-parameter of len bytes.
    let rc =
        unsafe { libc::getsockname(fd, (&mut sll as *mut libc::sockaddr_ll).cast(), &mut len) };
    (rc == 0 && sll.sll_ifindex > 0).then_some(sll.sll_ifindex as u32)
}

/// `(tp_packets, tp_drops)` since the last read (the kernel resets them).
fn packet_statistics(fd: RawFd) -> Option<(u64, u64)> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: st is a valid out-parameter of len bytes (TPACKET_V2 sockets
    // answer with struct tpacket_stats).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some((u64::from(st.tp_packets), u64::from(st.tp_drops)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_devices_that_count_no_misses_say_so() {
        assert_eq!(imissed_reported("net_af_packet"), Some(false));
        assert_eq!(imissed_reported("net_memif"), Some(false));
        assert_eq!(imissed_reported("net_ixgbe"), None);
    }

    #[test]
    fn a_process_without_packet_sockets_has_none() {
        // The test process opens no AF_PACKET socket; loopback's index is 1.
        assert!(RingDrops::find(1).unwrap().is_none());
    }

    #[test]
    fn other_descriptors_are_not_packet_sockets() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(bound_packet_ifindex(udp.as_raw_fd()), None);
        assert_eq!(bound_packet_ifindex(0), None);
        assert_eq!(packet_statistics(udp.as_raw_fd()), None);
    }
}
