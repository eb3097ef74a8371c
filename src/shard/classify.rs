//! The one decision every complete IPv4 datagram goes through, whether it
//! arrived whole or was reassembled here, and whether it came from the NIC
//! or was handed over by another core: answer it on this core, hand it to
//! the core that owns its flow, give it to the kernel, or drop it (and why).
//!
//! [`classify`] is a pure function of the datagram's headers and the core's
//! tables: it changes nothing, sends nothing and counts nothing, so the
//! caller does what it says on whichever form the datagram has (a received
//! frame, or a reassembled payload). Header validation (lengths, checksums,
//! addresses) happens before it, and each protocol's own checks after it.

use crate::flow::{FlowDirectory, FlowKey};
use crate::kni::KniPolicy;
use crate::stats::DropReason;
use crate::tcp::TcpTable;
use crate::udp::UdpTable;
use crate::wire::{IpProtocol, Ipv4Repr};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Where a datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// This core answers it (an application's, or a reply the stack itself
    /// sends: RST, port unreachable, echo reply).
    Local,
    /// Another core owns its flow.
    Owner(usize),
    /// The kernel's (the exception path).
    Kernel,
    Drop(DropReason),
}

/// What a core knows that decides a datagram's fate.
pub struct Tables<'a> {
    /// This core's index.
    pub me: usize,
    /// The interface's address (not broadcast).
    pub local: Ipv4Addr,
    pub udp: &'a UdpTable,
    pub tcp: &'a TcpTable,
    /// The TCP and the UDP flow directories, with more than one core whose
    /// flows the device cannot be trusted to keep apart.
    pub directories: Option<(&'a FlowDirectory, &'a FlowDirectory)>,
    /// The kernel exception path's policy, when there is one.
    pub kernel: Option<&'a KniPolicy>,
}

/// Decide where `ip`'s datagram goes; `l4` is its whole payload (transport
/// header first). `handed_off`: another core sent it here because this one
/// owns its flow, so it is never handed on.
#[inline]
pub fn classify(t: &Tables<'_>, ip: &Ipv4Repr, l4: &[u8], handed_off: bool) -> Verdict {
    let alone = t.directories.is_none() && t.kernel.is_none();
    if alone && local_alone(ip, l4, t.local) {
        return Verdict::Local;
    }
    match ip.next_header {
        IpProtocol::Udp => classify_udp(t, ip, l4, handed_off),
        IpProtocol::Tcp => classify_tcp(t, ip, l4, handed_off),
        IpProtocol::Icmp => classify_icmp(t, ip, l4),
        _ if t.kernel.is_some_and(|p| p.other_protocols) => Verdict::Kernel,
        _ => Verdict::Drop(DropReason::Unsupported),
    }
}

/// Whether [`classify`] says Local on a core alone (one core and no kernel
/// path) without looking at its tables: every TCP segment and UDP datagram
/// is then this core's to answer (its socket lookup is the protocol's own),
/// and so is an echo request to `local`, our address. False: ask classify.
/// The caller skips building the tables for nearly every datagram.
#[inline(always)]
pub fn local_alone(ip: &Ipv4Repr, l4: &[u8], local: Ipv4Addr) -> bool {
    match ip.next_header {
        IpProtocol::Udp | IpProtocol::Tcp => l4.len() >= 4,
        IpProtocol::Icmp => l4.first() == Some(&ECHO_REQUEST) && ip.dst_addr == local,
        _ => false,
    }
}

/// A received segment's or datagram's flow as this host names it: our port
/// and the sender. `l4` holds at least the two ports.
#[inline]
pub fn flow_key(ip: &Ipv4Repr, l4: &[u8]) -> FlowKey {
    FlowKey {
        local_port: u16::from_be_bytes([l4[2], l4[3]]),
        remote: SocketAddrV4::new(ip.src_addr, u16::from_be_bytes([l4[0], l4[1]])),
    }
}

/// Another core that owns `key` in `dir`: None when no core does, Some(me)
/// when this one does or the datagram was handed here already.
#[inline]
fn directory_owner(
    t: &Tables<'_>,
    dir: Option<&FlowDirectory>,
    key: &FlowKey,
    handed_off: bool,
) -> Option<usize> {
    let owner = dir?.owner(key)?;
    Some(if handed_off { t.me } else { owner })
}

fn classify_udp(t: &Tables<'_>, ip: &Ipv4Repr, l4: &[u8], handed_off: bool) -> Verdict {
    if l4.len() < 4 {
        return Verdict::Drop(DropReason::Truncated);
    }
    let key = flow_key(ip, l4);
    // A socket here that takes this sender: a plain binding takes anyone, a
    // connected socket its one remote end only. Another core may have
    // connected the same port to this sender (each core picks its ports for
    // its own connections), so a binding of the port alone is not enough.
    if t.udp
        .get(key.local_port)
        .is_some_and(|b| b.accepts(key.remote))
    {
        return Verdict::Local;
    }
    match directory_owner(t, t.directories.map(|d| d.1), &key, handed_off) {
        Some(o) if o != t.me => Verdict::Owner(o),
        Some(_) => Verdict::Local,
        // No socket anywhere: the kernel's, or port unreachable from here.
        None if t.kernel.is_some_and(|p| p.unowned_ports) => Verdict::Kernel,
        None => Verdict::Local,
    }
}

fn classify_tcp(t: &Tables<'_>, ip: &Ipv4Repr, l4: &[u8], handed_off: bool) -> Verdict {
    if l4.len() < 4 {
        return Verdict::Drop(DropReason::Truncated);
    }
    let key = flow_key(ip, l4);
    if t.tcp.lookup(&key).is_some() {
        return Verdict::Local;
    }
    match directory_owner(t, t.directories.map(|d| d.0), &key, handed_off) {
        Some(o) if o != t.me => Verdict::Owner(o),
        // Ours (a half-open connection in the SYN cache) or handed here.
        Some(_) => Verdict::Local,
        None if t.kernel.is_some_and(|p| p.unowned_ports)
            && ip.dst_addr == t.local
            && t.tcp.listener(key.local_port).is_none() =>
        {
            Verdict::Kernel
        }
        // A listener's SYN or cookie ACK, or RST for no connection.
        None => Verdict::Local,
    }
}

const ECHO_REQUEST: u8 = 8;

fn classify_icmp(t: &Tables<'_>, ip: &Ipv4Repr, l4: &[u8]) -> Verdict {
    let Some(&msg_type) = l4.first() else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let kernel = t.kernel;
    if msg_type == ECHO_REQUEST {
        if kernel.is_some_and(|p| p.icmp_to_kernel) {
            return Verdict::Kernel;
        }
        // RFC 1122 3.2.2.6: echo to a broadcast address MAY be ignored.
        if ip.dst_addr != t.local {
            return Verdict::Drop(DropReason::NotForUs);
        }
        return Verdict::Local;
    }
    // Echo replies and errors: the stack sends no echo requests and reads
    // no errors, so they answer the kernel's own traffic.
    if kernel.is_some() {
        Verdict::Kernel
    } else {
        Verdict::Drop(DropReason::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::isn::IsnGenerator;
    use crate::tcp::TcpConfig;
    use crate::time::Instant;

    const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const OTHER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

    struct World {
        udp: UdpTable,
        tcp: TcpTable,
        tcp_dir: FlowDirectory,
        udp_dir: FlowDirectory,
        policy: KniPolicy,
    }

    impl World {
        fn new() -> World {
            World {
                udp: UdpTable::new(),
                tcp: TcpTable::new(TcpConfig::default(), IsnGenerator::new(), Instant::ZERO),
                tcp_dir: FlowDirectory::new(16),
                udp_dir: FlowDirectory::new(16),
                policy: KniPolicy::default(),
            }
        }
        fn tables(&self, me: usize, steering: bool, kernel: bool) -> Tables<'_> {
            Tables {
                me,
                local: US,
                udp: &self.udp,
                tcp: &self.tcp,
                directories: steering.then_some((&self.tcp_dir, &self.udp_dir)),
                kernel: kernel.then_some(&self.policy),
            }
        }
    }

    fn ip(proto: IpProtocol, src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: proto,
            payload_len: len,
            hop_limit: 64,
            ecn: 0,
        }
    }

    /// The first bytes of a UDP or TCP header: the two ports.
    fn ports(src: u16, dst: u16) -> [u8; 8] {
        let [a, b] = src.to_be_bytes();
        let [c, d] = dst.to_be_bytes();
        [a, b, c, d, 0, 8, 0, 0]
    }

    fn udp(t: &Tables<'_>, from: SocketAddrV4, port: u16, handed: bool) -> Verdict {
        let l4 = ports(from.port(), port);
        classify(t, &ip(IpProtocol::Udp, *from.ip(), US, 8), &l4, handed)
    }

    #[test]
    fn udp_goes_to_the_socket_that_takes_its_sender() {
        let mut w = World::new();
        let a = SocketAddrV4::new(HOST, 7);
        let b = SocketAddrV4::new(OTHER, 7);
        w.udp.bind(53, 0).unwrap();
        // Core 0 connected port 61000 to A; core 1 the same port to B.
        w.udp.connect(61000, a, 0).unwrap();
        assert!(w.udp_dir.insert(
            &FlowKey {
                local_port: 61000,
                remote: a
            },
            0
        ));
        assert!(w.udp_dir.insert(
            &FlowKey {
                local_port: 61000,
                remote: b
            },
            1
        ));
        let t = w.tables(0, true, false);
        assert_eq!(udp(&t, a, 53, false), Verdict::Local);
        assert_eq!(udp(&t, a, 61000, false), Verdict::Local);
        // B's reply is core 1's socket's, though port 61000 is bound here.
        assert_eq!(udp(&t, b, 61000, false), Verdict::Owner(1));
        // Handed here already: never handed on.
        assert_eq!(udp(&t, b, 61000, true), Verdict::Local);
        // Nobody's: port unreachable from here, or the kernel's.
        assert_eq!(udp(&t, b, 9, false), Verdict::Local);
        assert_eq!(udp(&w.tables(0, true, true), b, 9, false), Verdict::Kernel);
        // A sender the connected socket does not take, that no core owns.
        let c = SocketAddrV4::new(OTHER, 8);
        assert_eq!(
            udp(&w.tables(0, true, true), c, 61000, false),
            Verdict::Kernel
        );
        // One core: the directory is not asked.
        assert_eq!(
            udp(&w.tables(0, false, false), b, 61000, false),
            Verdict::Local
        );
        // Core 1's view: its own socket's datagram is its own.
        assert_eq!(
            udp(&w.tables(1, true, true), b, 61000, false),
            Verdict::Local
        );
    }

    #[test]
    fn tcp_goes_to_its_connection_listener_owner_or_the_kernel() {
        let mut w = World::new();
        w.tcp.listen(80, 0).unwrap();
        let from = SocketAddrV4::new(HOST, 40000);
        assert!(w.tcp_dir.insert(
            &FlowKey {
                local_port: 8080,
                remote: from
            },
            1
        ));
        let seg = |t: &Tables<'_>, dst_ip, port, handed| {
            let l4 = ports(from.port(), port);
            classify(t, &ip(IpProtocol::Tcp, HOST, dst_ip, 20), &l4, handed)
        };
        let k = w.tables(0, true, true);
        assert_eq!(seg(&k, US, 80, false), Verdict::Local, "a listener's");
        assert_eq!(seg(&k, US, 8080, false), Verdict::Owner(1));
        assert_eq!(seg(&k, US, 8080, true), Verdict::Local);
        assert_eq!(seg(&k, US, 81, false), Verdict::Kernel);
        // Not to our own address: never the kernel's (RST from here).
        assert_eq!(seg(&k, Ipv4Addr::BROADCAST, 81, false), Verdict::Local);
        assert_eq!(
            seg(&w.tables(0, true, false), US, 81, false),
            Verdict::Local
        );
        // Core 1 owns it.
        assert_eq!(
            seg(&w.tables(1, true, true), US, 8080, false),
            Verdict::Local
        );
        let short = classify(&k, &ip(IpProtocol::Tcp, HOST, US, 3), &[0; 3], false);
        assert_eq!(short, Verdict::Drop(DropReason::Truncated));
    }

    #[test]
    fn icmp_echo_requests_are_ours_the_rest_the_kernels() {
        let mut w = World::new();
        let icmp = |t: &Tables<'_>, dst, msg_type: u8| {
            classify(
                t,
                &ip(IpProtocol::Icmp, HOST, dst, 8),
                &[msg_type, 0, 0, 0],
                false,
            )
        };
        let k = w.tables(0, false, true);
        assert_eq!(icmp(&k, US, 8), Verdict::Local);
        assert_eq!(icmp(&k, US, 0), Verdict::Kernel, "an echo reply");
        assert_eq!(icmp(&k, US, 3), Verdict::Kernel, "an error");
        let bcast = Ipv4Addr::new(198, 18, 0, 255);
        assert_eq!(icmp(&k, bcast, 8), Verdict::Drop(DropReason::NotForUs));
        let alone = w.tables(0, false, false);
        assert_eq!(icmp(&alone, US, 0), Verdict::Drop(DropReason::Unsupported));
        let empty = classify(&alone, &ip(IpProtocol::Icmp, HOST, US, 0), &[], false);
        assert_eq!(empty, Verdict::Drop(DropReason::Truncated));
        w.policy.icmp_to_kernel = true;
        assert_eq!(icmp(&w.tables(0, false, true), US, 8), Verdict::Kernel);
    }

    #[test]
    fn other_protocols_are_the_kernels_or_unsupported() {
        let w = World::new();
        let gre = ip(IpProtocol::Unknown(47), HOST, US, 4);
        assert_eq!(
            classify(&w.tables(0, false, true), &gre, b"gre!", false),
            Verdict::Kernel
        );
        assert_eq!(
            classify(&w.tables(0, false, false), &gre, b"gre!", false),
            Verdict::Drop(DropReason::Unsupported)
        );
    }
}
