//! Shared by the wire_* targets: headers built from fuzz input with the
//! `arbitrary` crate, and the checks that a second implementation
//! (etherparse) reads dpstack's output with the same field values.
#![allow(dead_code)]

use arbitrary::{Result, Unstructured};
use dpstack::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    VlanTag,
};
use std::net::Ipv4Addr;

pub fn mac(u: &mut Unstructured) -> Result<EthernetAddress> {
    Ok(EthernetAddress(u.arbitrary()?))
}

pub fn ip(u: &mut Unstructured) -> Result<Ipv4Addr> {
    Ok(Ipv4Addr::from(u.arbitrary::<[u8; 4]>()?))
}

/// Any header dpstack's parser gives back: the EtherType a payload's (not
/// a tag's), PCP in 3 bits and VID in 12.
pub fn ethernet_repr(u: &mut Unstructured) -> Result<EthernetRepr> {
    let mut ethertype = EtherType::from(u.arbitrary::<u16>()?);
    if matches!(ethertype, EtherType::Vlan | EtherType::QinQ) {
        ethertype = EtherType::Ipv4;
    }
    let vlan = if u.arbitrary()? {
        Some(VlanTag {
            pcp: u.int_in_range(0..=7)?,
            dei: u.arbitrary()?,
            vid: u.int_in_range(0..=0x0fff)?,
        })
    } else {
        None
    };
    Ok(EthernetRepr {
        src_addr: mac(u)?,
        dst_addr: mac(u)?,
        ethertype,
        vlan,
    })
}

/// An IPv4 header carrying `payload_len` bytes (at most 65515, the largest
/// a 16-bit total length allows after a 20-byte header).
pub fn ipv4_repr(
    u: &mut Unstructured,
    next_header: IpProtocol,
    payload_len: usize,
) -> Result<Ipv4Repr> {
    Ok(Ipv4Repr {
        src_addr: ip(u)?,
        dst_addr: ip(u)?,
        next_header,
        payload_len: payload_len.min(65515),
        hop_limit: u.arbitrary()?,
        ecn: u.arbitrary::<u8>()? & 3,
    })
}

/// etherparse reads the Ethernet header of `frame` as `eth` says.
pub fn check_ethernet(frame: &[u8], eth: &EthernetRepr) {
    let (h, rest) = etherparse::Ethernet2Header::from_slice(frame).expect("etherparse: ethernet");
    assert_eq!(h.source, eth.src_addr.0);
    assert_eq!(h.destination, eth.dst_addr.0);
    match eth.vlan {
        None => assert_eq!(h.ether_type.0, u16::from(eth.ethertype)),
        Some(tag) => {
            assert_eq!(h.ether_type, etherparse::EtherType::VLAN_TAGGED_FRAME);
            let (v, _) = etherparse::SingleVlanHeader::from_slice(rest).expect("etherparse: vlan");
            assert_eq!(v.pcp.value(), tag.pcp);
            assert_eq!(v.drop_eligible_indicator, tag.dei);
            assert_eq!(v.vlan_id.value(), tag.vid);
            assert_eq!(v.ether_type.0, u16::from(eth.ethertype));
        }
    }
}

/// etherparse reads the IPv4 header at the start of `packet` as `ip` says,
/// and finds its checksum right; returns its header for the transport
/// checksums.
pub fn check_ipv4(packet: &[u8], ip: &Ipv4Repr) -> etherparse::Ipv4Header {
    let (h, _) = etherparse::Ipv4Header::from_slice(packet).expect("etherparse: ipv4");
    assert_eq!(h.source, ip.src_addr.octets());
    assert_eq!(h.destination, ip.dst_addr.octets());
    assert_eq!(h.protocol.0, u8::from(ip.next_header));
    assert_eq!(h.time_to_live, ip.hop_limit);
    assert_eq!(usize::from(h.total_len), 20 + ip.payload_len);
    assert_eq!(h.header_len(), 20);
    assert!(!h.more_fragments && h.fragment_offset.value() == 0);
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "ipv4 checksum");
    h
}

/// A whole frame: `eth` (untagged or not), `ip`, then `l4` writes the
/// transport header and payload into its `ip.payload_len` bytes.
pub fn frame(eth: &EthernetRepr, ip: &Ipv4Repr, l4: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut f = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    let mut e = EthernetFrame::new_unchecked(&mut f[..]);
    eth.emit(&mut e);
    let mut p = Ipv4Packet::new_unchecked(e.payload_mut());
    ip.emit(&mut p, true);
    l4(p.payload_mut());
    f
}

/// `n` bytes of payload: what is left of the input, repeated, or zeros.
pub fn payload(u: &mut Unstructured, n: usize) -> Vec<u8> {
    let rest = u.peek_bytes(u.len()).unwrap_or(&[]);
    if rest.is_empty() {
        return vec![0; n];
    }
    rest.iter().copied().cycle().take(n).collect()
}
