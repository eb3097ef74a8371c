//! One-shot parse of a whole frame, every check applied: for the fuzzer,
//! the property tests and diagnostics. The datapath parses layer by layer
//! instead, so that it can act on each layer.

use super::{
    ArpPacket, ArpRepr, Error, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Packet, Ipv4Repr, Result, UdpPacket, UdpRepr,
};

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    Arp(ArpRepr),
    Icmp {
        ip: Ipv4Repr,
        icmp: Icmpv4Repr<'a>,
    },
    Udp {
        ip: Ipv4Repr,
        udp: UdpRepr,
        payload: &'a [u8],
    },
    Ipv4Other {
        ip: Ipv4Repr,
    },
    Ipv4Fragment {
        ip: Ipv4Repr,
    },
    Other(EtherType),
}

/// Parse and verify a frame. UDP's length field must equal the IP payload
/// length (longer: truncated, shorter: malformed).
pub fn parse_frame(bytes: &[u8]) -> Result<(EthernetRepr, Parsed<'_>)> {
    let frame = EthernetFrame::new_checked(bytes)?;
    let eth = EthernetRepr::parse(&frame)?;
    let payload = &bytes[eth.buffer_len()..];
    let parsed = match eth.ethertype {
        EtherType::Arp => {
            let p = ArpPacket::new_checked(payload)?;
            Parsed::Arp(ArpRepr::parse(&p)?)
        }
        EtherType::Ipv4 => parse_ipv4(payload)?,
        other => Parsed::Other(other),
    };
    Ok((eth, parsed))
}

fn parse_ipv4(bytes: &[u8]) -> Result<Parsed<'_>> {
    let packet = Ipv4Packet::new_checked(bytes)?;
    let ip = Ipv4Repr::parse(&packet, true)?;
    if packet.is_fragment() {
        return Ok(Parsed::Ipv4Fragment { ip });
    }
    let hl = usize::from(packet.header_len());
    let l4 = &bytes[hl..usize::from(packet.total_len())];
    match ip.next_header {
        IpProtocol::Icmp => {
            let p = Icmpv4Packet::new_checked(l4)?;
            if !p.verify_checksum() {
                return Err(Error::BadChecksum);
            }
            let icmp = Icmpv4Repr::parse(&p, false)?;
            Ok(Parsed::Icmp { ip, icmp })
        }
        IpProtocol::Udp => {
            let p = UdpPacket::new_checked(l4)?;
            let len = usize::from(p.len());
            if len > l4.len() {
                return Err(Error::Truncated);
            }
            if len < l4.len() {
                return Err(Error::Malformed);
            }
            let udp = UdpRepr::parse(&p, &ip.src_addr, &ip.dst_addr, true)?;
            Ok(Parsed::Udp {
                ip,
                udp,
                payload: &l4[8..len],
            })
        }
        _ => Ok(Parsed::Ipv4Other { ip }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EthernetAddress;
    use proptest::prelude::*;

    /// A valid Ethernet + IPv4 + UDP frame.
    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + payload.len()];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = Ipv4Repr {
            src_addr: "198.18.0.2".parse().unwrap(),
            dst_addr: "198.18.0.1".parse().unwrap(),
            next_header: IpProtocol::Udp,
            payload_len: 8 + payload.len(),
            hop_limit: 64,
            ecn: 0,
        };
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]), true);
        UdpRepr {
            src_port: 1234,
            dst_port: 7,
        }
        .emit(
            &mut UdpPacket::new_unchecked(&mut f[34..]),
            &ip.src_addr,
            &ip.dst_addr,
            payload.len(),
            |b| b.copy_from_slice(payload),
            true,
        );
        f
    }

    #[test]
    fn parses_a_udp_frame() {
        let f = udp_frame(b"hello");
        let (eth, p) = parse_frame(&f).unwrap();
        assert_eq!(eth.src_addr, EthernetAddress([2, 0, 0, 0, 0, 2]));
        match p {
            Parsed::Udp { udp, payload, .. } => {
                assert_eq!(udp.dst_port, 7);
                assert_eq!(payload, b"hello");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn udp_length_must_match_ip_payload() {
        let mut long = udp_frame(b"hello");
        long[38..40].copy_from_slice(&14u16.to_be_bytes());
        assert_eq!(parse_frame(&long).err(), Some(Error::Truncated));
        let mut short = udp_frame(b"hello");
        short[38..40].copy_from_slice(&12u16.to_be_bytes());
        // Keep the UDP checksum right for the shorter length so only the
        // length mismatch is wrong.
        short[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(parse_frame(&short).err(), Some(Error::Malformed));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse_frame(&bytes);
        }

        #[test]
        fn mutated_frames_never_panic(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut f = udp_frame(&payload);
            for (at, v) in edits {
                let i = at % f.len();
                f[i] = v;
            }
            let cut = cut % (f.len() + 1);
            let _ = parse_frame(&f[..cut]);
            let _ = parse_frame(&f);
        }
    }
}
