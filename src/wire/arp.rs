//! ARP (RFC 826) for Ethernet and IPv4.

use super::{be16, set_be16, Error, EthernetAddress, Result};
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            o => ArpOperation::Unknown(o),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(o: ArpOperation) -> u16 {
        match o {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(v) => v,
        }
    }
}

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
}

/// A view of an ARP packet, of any hardware and protocol lengths.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < 8 {
            return Err(Error::Truncated);
        }
        // Ethernet/IPv4 ARP has exactly these lengths; anything else in them
        // is malformed, whatever the buffer holds.
        if self.hardware_type() == 1
            && self.protocol_type() == 0x0800
            && (b[field::HLEN] != 6 || b[field::PLEN] != 4)
        {
            return Err(Error::Malformed);
        }
        let need = 8 + 2 * usize::from(b[field::HLEN]) + 2 * usize::from(b[field::PLEN]);
        if b.len() < need {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    pub fn operation(&self) -> ArpOperation {
        be16(self.buffer.as_ref(), field::OPER).into()
    }
    fn spa_at(&self) -> usize {
        field::SHA + usize::from(self.hardware_len())
    }
    fn tha_at(&self) -> usize {
        self.spa_at() + usize::from(self.protocol_len())
    }
    fn tpa_at(&self) -> usize {
        self.tha_at() + usize::from(self.hardware_len())
    }
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SHA..self.spa_at()]
    }
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.spa_at()..self.tha_at()]
    }
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tha_at()..self.tpa_at()]
    }
    pub fn target_protocol_addr(&self) -> &[u8] {
        let end = self.tpa_at() + usize::from(self.protocol_len());
        &self.buffer.as_ref()[self.tpa_at()..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_hardware_type(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::HTYPE, v)
    }
    pub fn set_protocol_type(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::PTYPE, v)
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v
    }
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v
    }
    pub fn set_operation(&mut self, o: ArpOperation) {
        set_be16(self.buffer.as_mut(), field::OPER, o.into())
    }
    pub fn set_source_hardware_addr(&mut self, a: &[u8]) {
        let (s, e) = (field::SHA, self.spa_at());
        self.buffer.as_mut()[s..e].copy_from_slice(a)
    }
    pub fn set_source_protocol_addr(&mut self, a: &[u8]) {
        let (s, e) = (self.spa_at(), self.tha_at());
        self.buffer.as_mut()[s..e].copy_from_slice(a)
    }
    pub fn set_target_hardware_addr(&mut self, a: &[u8]) {
        let (s, e) = (self.tha_at(), self.tpa_at());
        self.buffer.as_mut()[s..e].copy_from_slice(a)
    }
    pub fn set_target_protocol_addr(&mut self, a: &[u8]) {
        let s = self.tpa_at();
        let e = s + usize::from(self.protocol_len());
        self.buffer.as_mut()[s..e].copy_from_slice(a)
    }
}

/// A parsed ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpRepr {
    EthernetIpv4 {
        operation: ArpOperation,
        source_hardware_addr: EthernetAddress,
        source_protocol_addr: Ipv4Addr,
        target_hardware_addr: EthernetAddress,
        target_protocol_addr: Ipv4Addr,
    },
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl ArpRepr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<Self> {
        if packet.hardware_type() != 1 || packet.protocol_type() != 0x0800 {
            return Err(Error::Unsupported);
        }
        if packet.hardware_len() != 6 || packet.protocol_len() != 4 {
            return Err(Error::Malformed);
        }
        let operation = packet.operation();
        if let ArpOperation::Unknown(_) = operation {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: EthernetAddress::from_bytes(packet.source_hardware_addr()),
            source_protocol_addr: ip(packet.source_protocol_addr()),
            target_hardware_addr: EthernetAddress::from_bytes(packet.target_hardware_addr()),
            target_protocol_addr: ip(packet.target_protocol_addr()),
        })
    }
    pub fn buffer_len(&self) -> usize {
        28
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_hardware_addr,
            target_protocol_addr,
        } = *self;
        packet.set_hardware_type(1);
        packet.set_protocol_type(0x0800);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(operation);
        packet.set_source_hardware_addr(source_hardware_addr.as_bytes());
        packet.set_source_protocol_addr(&source_protocol_addr.octets());
        packet.set_target_hardware_addr(target_hardware_addr.as_bytes());
        packet.set_target_protocol_addr(&target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 198.18.0.1? Tell 198.18.0.2 (02:00:00:00:00:02).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, // Ethernet
        0x08, 0x00, // IPv4
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // sha
        198, 18, 0, 2, // spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha
        198, 18, 0, 1, // tpa
    ];

    fn repr() -> ArpRepr {
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            source_protocol_addr: Ipv4Addr::new(198, 18, 0, 2),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(198, 18, 0, 1),
        }
    }

    #[test]
    fn parse_emit_round_trip() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p), Ok(repr()));
        let mut out = [0u8; 28];
        repr().emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn truncated_and_impossible_lengths() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).err(),
            Some(Error::Truncated)
        );
        let mut hlen7 = [0u8; 30];
        hlen7[..28].copy_from_slice(&REQUEST);
        hlen7[4] = 7;
        assert_eq!(
            ArpPacket::new_checked(&hlen7[..]).err(),
            Some(Error::Malformed)
        );
        assert_eq!(
            ArpPacket::new_checked(&hlen7[..28]).err(),
            Some(Error::Malformed)
        );
        let mut huge = REQUEST;
        huge[1] = 6;
        huge[4] = 255;
        assert_eq!(
            ArpPacket::new_checked(&huge[..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn other_hardware_or_operation_unsupported() {
        let mut b = REQUEST;
        b[1] = 6;
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()),
            Err(Error::Unsupported)
        );
        let mut b = REQUEST;
        b[7] = 3;
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()),
            Err(Error::Unsupported)
        );
    }
}
