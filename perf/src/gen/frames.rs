//! Probe frames of dpstack-gen on plain byte buffers: UDP datagrams and
//! ICMP echo requests that carry a magic number, a sequence number and the
//! TSC at which they were sent, and the parsing of whatever comes back
//! (a dpstack or Linux echo, testpmd's macswap or icmpecho), plus the ARP
//! the generator needs to find its peer and to be found.

use std::net::Ipv4Addr;

/// Marks a probe's payload ("dpsg").
pub const MAGIC: u32 = 0x6470_7367;
/// magic u32, sequence u32, TSC u64.
pub const PROBE_LEN: usize = 16;
const ETH: usize = 14;
const IP: usize = 20;
const L4: usize = 8;
/// The smallest frame that holds a probe, CRC included (as `--size` counts).
pub const MIN_FRAME: usize = 64;
/// The largest frame for a 1500-byte MTU, CRC included.
pub const MAX_FRAME: usize = 1518;
/// Bytes a frame's CRC adds on the wire (sizes count it; buffers do not).
pub const CRC: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Icmp,
}

/// Who talks to whom.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    /// UDP: the destination port; flows vary the source port from
    /// `src_port`. ICMP: flows vary the echo identifier from `src_port`.
    pub dst_port: u16,
    pub src_port: u16,
}

/// What a received probe said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub flow: u16,
    pub seq: u32,
    pub tsc: u64,
}

/// One's-complement sum of 16-bit words (odd tail padded with zero).
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Write a probe frame of `frame.len()` bytes (the size minus the CRC).
/// The payload past the probe is zero. False if the buffer is too short.
pub fn build(
    proto: Proto,
    ep: &Endpoints,
    frame: &mut [u8],
    flow: u16,
    seq: u32,
    tsc: u64,
) -> bool {
    let len = frame.len();
    if !(ETH + IP + L4 + PROBE_LEN..=MAX_FRAME - CRC).contains(&len) {
        return false;
    }
    frame[0..6].copy_from_slice(&ep.dst_mac);
    frame[6..12].copy_from_slice(&ep.src_mac);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - ETH) as u16;
    let ip = &mut frame[ETH..ETH + IP];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = 64;
    ip[9] = if proto == Proto::Udp { 17 } else { 1 };
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&ep.src_ip.octets());
    ip[16..20].copy_from_slice(&ep.dst_ip.octets());
    let c = fold(sum16(ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let l4 = &mut frame[ETH + IP..];
    let id = ep.src_port.wrapping_add(flow);
    let probe = &mut l4[L4..L4 + PROBE_LEN];
    probe[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    probe[4..8].copy_from_slice(&seq.to_be_bytes());
    probe[8..16].copy_from_slice(&tsc.to_be_bytes());
    l4[L4 + PROBE_LEN..].fill(0);
    match proto {
        Proto::Udp => {
            l4[0..2].copy_from_slice(&id.to_be_bytes());
            l4[2..4].copy_from_slice(&ep.dst_port.to_be_bytes());
            l4[4..6].copy_from_slice(&(ip_len - IP as u16).to_be_bytes());
            // Zero: no checksum (RFC 768), so a probe costs the same at
            // every size. Receivers accept it.
            l4[6..8].fill(0);
        }
        Proto::Icmp => {
            l4[0] = 8;
            l4[1] = 0;
            l4[2..4].fill(0);
            l4[4..6].copy_from_slice(&id.to_be_bytes());
            l4[6..8].copy_from_slice(&(seq as u16).to_be_bytes());
            // The zero padding adds nothing to the sum.
            let c = fold(sum16(&l4[..L4 + PROBE_LEN], 0));
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
    }
    true
}

/// A probe coming back: UDP from or to `port` (an echo swaps the ports,
/// macswap does not), or an ICMP echo reply (or request, from macswap).
pub fn parse(proto: Proto, ep: &Endpoints, frame: &[u8]) -> Option<Reply> {
    if frame.len() < ETH + IP + L4 + PROBE_LEN || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[ETH..];
    if ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < IP || total > ip.len() || total < ihl + L4 + PROBE_LEN {
        return None;
    }
    let l4 = &ip[ihl..total];
    let flow_of = |id: u16| id.wrapping_sub(ep.src_port);
    let flow = match (proto, ip[9]) {
        (Proto::Udp, 17) => {
            let (sp, dp) = (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            );
            if sp == ep.dst_port {
                flow_of(dp)
            } else if dp == ep.dst_port {
                flow_of(sp)
            } else {
                return None;
            }
        }
        (Proto::Icmp, 1) if l4[0] == 0 || l4[0] == 8 => flow_of(u16::from_be_bytes([l4[4], l4[5]])),
        _ => return None,
    };
    let p = &l4[L4..L4 + PROBE_LEN];
    if u32::from_be_bytes(p[0..4].try_into().ok()?) != MAGIC {
        return None;
    }
    Some(Reply {
        flow,
        seq: u32::from_be_bytes(p[4..8].try_into().ok()?),
        tsc: u64::from_be_bytes(p[8..16].try_into().ok()?),
    })
}

/// An ARP request (op 1) or reply (op 2) frame of 42 bytes.
pub fn arp(
    frame: &mut [u8; 42],
    op: u16,
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_mac: [u8; 6],
    dst_ip: Ipv4Addr,
) {
    let eth_dst = if op == 1 { [0xff; 6] } else { dst_mac };
    frame[0..6].copy_from_slice(&eth_dst);
    frame[6..12].copy_from_slice(&src_mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 0]);
    frame[20..22].copy_from_slice(&op.to_be_bytes());
    frame[22..28].copy_from_slice(&src_mac);
    frame[28..32].copy_from_slice(&src_ip.octets());
    frame[32..38].copy_from_slice(&if op == 1 { [0; 6] } else { dst_mac });
    frame[38..42].copy_from_slice(&dst_ip.octets());
}

/// An ARP frame: (op, sender MAC, sender IP, target IP).
pub fn parse_arp(frame: &[u8]) -> Option<(u16, [u8; 6], Ipv4Addr, Ipv4Addr)> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[14..20] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([frame[20], frame[21]]);
    let mac: [u8; 6] = frame[22..28].try_into().ok()?;
    let sip = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
    let tip = Ipv4Addr::new(frame[38], frame[39], frame[40], frame[41]);
    Some((op, mac, sip, tip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_ip: Ipv4Addr::new(198, 18, 0, 2),
            dst_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_port: 7,
            src_port: 10000,
        }
    }

    /// What an echo server does: swap MACs, addresses and ports (or turn a
    /// request into a reply), fixing the checksums as it goes.
    fn echo(proto: Proto, f: &[u8]) -> Vec<u8> {
        let mut r = f.to_vec();
        r[0..6].copy_from_slice(&f[6..12]);
        r[6..12].copy_from_slice(&f[0..6]);
        r[26..30].copy_from_slice(&f[30..34]);
        r[30..34].copy_from_slice(&f[26..30]);
        match proto {
            Proto::Udp => {
                r[34..36].copy_from_slice(&f[36..38]);
                r[36..38].copy_from_slice(&f[34..36]);
            }
            Proto::Icmp => {
                r[34] = 0;
                r[36..38].fill(0);
                let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
                let c = fold(sum16(&r[34..14 + total], 0));
                r[36..38].copy_from_slice(&c.to_be_bytes());
            }
        }
        r
    }

    #[test]
    fn probes_are_valid_ipv4_and_come_back_through_an_echo() {
        for proto in [Proto::Udp, Proto::Icmp] {
            for size in [MIN_FRAME, 65, 594, MAX_FRAME] {
                let mut f = vec![0xAA; size - CRC];
                assert!(build(proto, &ep(), &mut f, 3, 77, 0xdead_beef_1234));
                // The IP header checksum verifies (sums to zero).
                assert_eq!(fold(sum16(&f[14..34], 0)), 0);
                if proto == Proto::Icmp {
                    assert_eq!(fold(sum16(&f[34..], 0)), 0, "ICMP checksum, size {size}");
                }
                let want = Reply {
                    flow: 3,
                    seq: 77,
                    tsc: 0xdead_beef_1234,
                };
                // Back through an echo, and through macswap (unchanged).
                assert_eq!(parse(proto, &ep(), &echo(proto, &f)), Some(want));
                assert_eq!(parse(proto, &ep(), &f), Some(want));
            }
        }
    }

    #[test]
    fn too_small_or_too_big_is_refused_and_foreign_frames_are_not_probes() {
        let mut f = vec![0; MIN_FRAME - CRC - 3];
        assert!(!build(Proto::Udp, &ep(), &mut f, 0, 0, 0));
        let mut f = vec![0; MAX_FRAME];
        assert!(!build(Proto::Udp, &ep(), &mut f, 0, 0, 0));
        let mut f = vec![0; 60];
        assert!(build(Proto::Udp, &ep(), &mut f, 0, 1, 2));
        // Wrong magic, wrong port, wrong protocol, truncated, lying length.
        let mut g = f.clone();
        g[42] ^= 1;
        assert_eq!(parse(Proto::Udp, &ep(), &g), None);
        let mut g = f.clone();
        g[36..38].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(parse(Proto::Udp, &ep(), &g), None);
        assert_eq!(parse(Proto::Icmp, &ep(), &f), None);
        assert_eq!(parse(Proto::Udp, &ep(), &f[..50]), None);
        let mut g = f.clone();
        g[16..18].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(parse(Proto::Udp, &ep(), &g), None);
    }

    #[test]
    fn arp_round_trip() {
        let mut f = [0u8; 42];
        let e = ep();
        arp(&mut f, 1, e.src_mac, e.src_ip, [0; 6], e.dst_ip);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(parse_arp(&f), Some((1, e.src_mac, e.src_ip, e.dst_ip)));
        arp(&mut f, 2, e.dst_mac, e.dst_ip, e.src_mac, e.src_ip);
        assert_eq!(&f[0..6], &e.src_mac);
        assert_eq!(parse_arp(&f), Some((2, e.dst_mac, e.dst_ip, e.src_ip)));
        assert_eq!(parse_arp(&f[..41]), None);
    }
}
