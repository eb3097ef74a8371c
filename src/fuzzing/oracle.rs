//! Oracles: what every frame a core sends must satisfy, whatever it was
//! fed. The fuzz targets and the simulations check each emitted frame with
//! [`check_emitted_frame`]: it fits the MTU, carries our MAC, has no
//! trailing bytes past the IP datagram (short frames aside, which a NIC
//! pads), and parses back layer by layer with every checksum verified.

use crate::wire::{
    frame::{parse_frame, Parsed},
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpPacket, TcpRepr,
};

/// Ethernet's minimum frame without its FCS: shorter frames may be padded.
const MIN_FRAME: usize = 60;

/// An emitted frame, parsed back.
#[derive(Debug)]
pub enum Emitted<'a> {
    /// A TCP segment: its headers and payload.
    Tcp {
        ip: Ipv4Repr,
        tcp: TcpRepr,
        payload: &'a [u8],
    },
    /// Anything else that parsed (ARP, ICMP, UDP, a fragment, ...).
    Other(Parsed<'a>),
}

/// Check one frame a core sent, with `mtu` and the core's `mac`.
pub fn check_emitted_frame(
    f: &[u8],
    mtu: usize,
    mac: EthernetAddress,
) -> Result<Emitted<'_>, String> {
    let frame = EthernetFrame::new_checked(f).map_err(|e| format!("Ethernet: {e}"))?;
    let eth = EthernetRepr::parse(&frame).map_err(|e| format!("Ethernet: {e}"))?;
    let l2 = eth.buffer_len();
    if f.len() > l2 + mtu {
        return Err(format!("a {}-byte frame over the MTU {mtu}", f.len()));
    }
    if eth.src_addr != mac {
        return Err(format!("source MAC {} is not ours", eth.src_addr));
    }
    if eth.ethertype == EtherType::Ipv4 {
        let p = Ipv4Packet::new_checked(&f[l2..]).map_err(|e| format!("IPv4: {e}"))?;
        let total = usize::from(p.total_len());
        if total > mtu {
            return Err(format!("{total} bytes of IP over the MTU {mtu}"));
        }
        if f.len() != l2 + total && f.len() > MIN_FRAME {
            return Err(format!(
                "{} bytes past a {total}-byte datagram",
                f.len() - l2 - total
            ));
        }
        let ip = Ipv4Repr::parse(&p, true).map_err(|e| format!("IPv4 header: {e}"))?;
        if ip.next_header == IpProtocol::Tcp && !p.is_fragment() {
            let t = TcpPacket::new_checked(p.payload()).map_err(|e| format!("TCP: {e}"))?;
            let tcp = TcpRepr::parse(&t, &ip.src_addr, &ip.dst_addr, true)
                .map_err(|e| format!("TCP checksum or options: {e}"))?;
            let at = l2 + usize::from(p.header_len()) + t.header_len();
            return Ok(Emitted::Tcp {
                ip,
                tcp,
                payload: &f[at..l2 + total],
            });
        }
    }
    let f = if eth.ethertype == EtherType::Ipv4 {
        // Without the padding, for the whole-frame parser.
        let total = usize::from(Ipv4Packet::new_unchecked(&f[l2..]).total_len());
        &f[..l2 + total]
    } else {
        f
    };
    let (_, parsed) = parse_frame(f).map_err(|e| format!("{:?}: {e}", eth.ethertype))?;
    Ok(Emitted::Other(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{TcpFlags, TcpOptions};
    use std::net::Ipv4Addr;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    /// A TCP segment as a core would send it.
    fn segment(payload: &[u8]) -> Vec<u8> {
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let repr = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq_number: 1,
            ack_number: 2,
            flags: TcpFlags::ACK,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions::default(),
        };
        let tcp_len = repr.header_len() + payload.len();
        let mut f = vec![0u8; 14 + 20 + tcp_len];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&MAC.0);
        f[12..14].copy_from_slice(&[8, 0]);
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len,
            hop_limit: 64,
        };
        let mut p = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.emit(&mut p, true);
        let seg = &mut f[34..];
        seg[repr.header_len()..].copy_from_slice(payload);
        let mut t = TcpPacket::new_unchecked(seg);
        repr.emit(&mut t);
        t.fill_checksum(&src, &dst);
        f
    }

    #[test]
    fn a_good_segment_passes_and_each_fault_is_named() {
        let f = segment(b"hello");
        match check_emitted_frame(&f, 1500, MAC).unwrap() {
            Emitted::Tcp { payload, tcp, .. } => {
                assert_eq!(payload, b"hello");
                assert_eq!(tcp.src_port, 80);
            }
            other => panic!("{other:?}"),
        }
        // Over the MTU.
        let big = segment(&[0u8; 1461]);
        assert!(check_emitted_frame(&big, 1500, MAC)
            .unwrap_err()
            .contains("over the MTU"));
        // Not our MAC.
        let e = check_emitted_frame(&f, 1500, EthernetAddress([2, 0, 0, 0, 0, 9])).unwrap_err();
        assert!(e.contains("not ours"), "{e}");
        // A bad TCP checksum.
        let mut bad = f.clone();
        *bad.last_mut().unwrap() ^= 1;
        let e = check_emitted_frame(&bad, 1500, MAC).unwrap_err();
        assert!(e.contains("TCP checksum"), "{e}");
        // A bad IP checksum.
        let mut bad = f.clone();
        bad[14 + 8] ^= 1;
        let e = check_emitted_frame(&bad, 1500, MAC).unwrap_err();
        assert!(e.contains("IPv4 header"), "{e}");
        // Trailing bytes past the datagram (in a frame longer than the minimum).
        let mut long = segment(&[0u8; 100]);
        long.extend_from_slice(&[0; 4]);
        let e = check_emitted_frame(&long, 1500, MAC).unwrap_err();
        assert!(e.contains("past a"), "{e}");
    }
}
