//! Ethernet II frames, with one 802.1Q tag recognised.

use super::{be16, set_be16, Error, Field, Result};
use std::fmt;
use std::str::FromStr;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// From a 6-byte slice. Panics if `b.len() != 6`: only call it on
    /// slices already cut to length by a checked view.
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut a = [0u8; 6];
        a.copy_from_slice(b);
        EthernetAddress(a)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }
    /// Locally administered.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut a = [0u8; 6];
        let mut parts = s.split(':');
        for b in a.iter_mut() {
            let p = parts.next().ok_or(Error::Malformed)?;
            if p.len() != 2 {
                return Err(Error::Malformed);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| Error::Malformed)?;
        }
        if parts.next().is_some() {
            return Err(Error::Malformed);
        }
        Ok(EthernetAddress(a))
    }
}

/// The EtherType field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    /// 802.1Q tag.
    Vlan,
    /// 802.1ad outer tag.
    QinQ,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(v) => v,
        }
    }
}

/// An 802.1Q tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
}

mod field {
    use super::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const TCI: usize = 14;
    pub const INNER_ETHERTYPE: usize = 16;
}

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = 14;
    pub const TAGGED_HEADER_LEN: usize = 18;

    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if be16(b, field::ETHERTYPE) == 0x8100 && b.len() < Self::TAGGED_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    #[inline]
    fn tagged(&self) -> bool {
        be16(self.buffer.as_ref(), field::ETHERTYPE) == 0x8100
    }
    /// 14, or 18 with an 802.1Q tag.
    pub fn header_len(&self) -> usize {
        if self.tagged() {
            Self::TAGGED_HEADER_LEN
        } else {
            Self::HEADER_LEN
        }
    }
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DST])
    }
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SRC])
    }
    /// The EtherType after the 802.1Q tag if there is one.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        if self.tagged() {
            be16(b, field::INNER_ETHERTYPE).into()
        } else {
            be16(b, field::ETHERTYPE).into()
        }
    }
    #[inline]
    pub fn vlan(&self) -> Option<VlanTag> {
        if !self.tagged() {
            return None;
        }
        let tci = be16(self.buffer.as_ref(), field::TCI);
        Some(VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        })
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl EthernetFrame<&mut [u8]> {
    /// Address an untagged frame, whose header is `h`, to `dst` from `src`.
    #[inline(always)]
    pub fn set_addresses(h: &mut [u8; 14], dst: EthernetAddress, src: EthernetAddress) {
        h[field::DST].copy_from_slice(&dst.0);
        h[field::SRC].copy_from_slice(&src.0);
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }
    /// Writes the EtherType at offset 12 (untagged layout).
    pub fn set_ethertype(&mut self, t: EtherType) {
        set_be16(self.buffer.as_mut(), field::ETHERTYPE, t.into());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// A parsed Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src_addr: EthernetAddress,
    pub dst_addr: EthernetAddress,
    pub ethertype: EtherType,
    pub vlan: Option<VlanTag>,
}

impl EthernetRepr {
    /// Stacked tags (QinQ, or a second 802.1Q) are unsupported.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &EthernetFrame<&T>) -> Result<Self> {
        let ethertype = frame.ethertype();
        if matches!(ethertype, EtherType::Vlan | EtherType::QinQ) {
            return Err(Error::Unsupported);
        }
        if be16(frame.buffer.as_ref(), field::ETHERTYPE) == 0x88a8 {
            return Err(Error::Unsupported);
        }
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype,
            vlan: frame.vlan(),
        })
    }
    pub fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            EthernetFrame::<&[u8]>::TAGGED_HEADER_LEN
        } else {
            EthernetFrame::<&[u8]>::HEADER_LEN
        }
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        let b = frame.buffer.as_mut();
        match self.vlan {
            Some(tag) => {
                set_be16(b, field::ETHERTYPE, 0x8100);
                let tci = (u16::from(tag.pcp & 7) << 13)
                    | if tag.dei { 0x1000 } else { 0 }
                    | (tag.vid & 0x0fff);
                set_be16(b, field::TCI, tci);
                set_be16(b, field::INNER_ETHERTYPE, self.ethertype.into());
            }
            None => set_be16(b, field::ETHERTYPE, self.ethertype.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dst ff:ff:ff:ff:ff:ff, src 02:00:00:00:00:02, type ARP, 4 payload bytes.
    const FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x06, // ARP
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    // The same with a VLAN tag: vid 100, pcp 5.
    const TAGGED: [u8; 22] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, //
        0x81, 0x00, 0xa0, 0x64, // 802.1Q, TCI pcp 5 vid 100
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn parse_and_emit_round_trip() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.dst_addr, EthernetAddress::BROADCAST);
        assert_eq!(r.src_addr, EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(r.ethertype, EtherType::Arp);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        let mut out = [0u8; 18];
        r.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        out[14..].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(out, FRAME);
    }

    #[test]
    fn vlan_tag_recognised() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.ethertype, EtherType::Ipv4);
        assert_eq!(
            r.vlan,
            Some(VlanTag {
                pcp: 5,
                dei: false,
                vid: 100
            })
        );
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(r.buffer_len(), 18);
        let mut out = [0u8; 22];
        r.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        assert_eq!(out[..18], TAGGED[..18]);
    }

    #[test]
    fn truncated_and_stacked_tags() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..13]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            EthernetFrame::new_checked(&TAGGED[..17]).err(),
            Some(Error::Truncated)
        );
        let mut qinq = TAGGED;
        qinq[16..18].copy_from_slice(&[0x81, 0x00]);
        let f = EthernetFrame::new_checked(&qinq[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f), Err(Error::Unsupported));
        let mut ad = FRAME;
        ad[12..14].copy_from_slice(&[0x88, 0xa8]);
        let f = EthernetFrame::new_checked(&ad[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f), Err(Error::Unsupported));
    }

    #[test]
    fn address_classes_and_text() {
        let a: EthernetAddress = "02:00:00:00:00:01".parse().unwrap();
        assert!(a.is_unicast() && a.is_local() && !a.is_multicast());
        assert_eq!(a.to_string(), "02:00:00:00:00:01");
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress([0; 6]).is_unicast());
        assert!("02:00:00:00:00".parse::<EthernetAddress>().is_err());
        assert!("02:00:00:00:00:0g".parse::<EthernetAddress>().is_err());
    }
}
