//! UDP (RFC 768).

use super::{be16, checksum, set_be16, Error, IpProtocol, Result};
use std::net::Ipv4Addr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < Self::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field (header included).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= Self::HEADER_LEN
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// From the header to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..usize::from(self.len())]
    }
    /// True if the checksum is right, or zero (none sent, RFC 768).
    #[inline(always)]
    pub fn verify_checksum(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = usize::from(self.len());
        checksum::data_with_pseudo_header(src, dst, IpProtocol::Udp, &self.buffer.as_ref()[..len])
            == 0xffff
    }
}

impl UdpPacket<&[u8]> {
    /// A whole datagram (`l4`: the IP payload) as the receive path takes
    /// it, each field read once: a header, a length field of exactly
    /// `l4.len()`, a destination port, and (`verify_checksum`) a checksum
    /// that verifies or is absent. Some((source port, destination port));
    /// None for any other, of which nothing is said: `new_checked`, the
    /// length rule and [`UdpRepr::parse`] find what it is.
    #[inline(always)]
    pub fn parse_whole(
        l4: &[u8],
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
        verify_checksum: bool,
    ) -> Option<(u16, u16)> {
        let h = l4.first_chunk::<8>()?;
        let word = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        let (src_port, dst_port) = (word(field::SRC_PORT), word(field::DST_PORT));
        if usize::from(word(field::LENGTH)) != l4.len() || dst_port == 0 {
            return None;
        }
        if verify_checksum
            && word(field::CHECKSUM) != 0
            && checksum::data_with_pseudo_header_inlined(src, dst, IpProtocol::Udp, l4) != 0xffff
        {
            return None;
        }
        Some((src_port, dst_port))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::SRC_PORT, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::DST_PORT, v)
    }
    /// Swap the source and destination ports, as a reply has them: one
    /// 32-bit word turned by 16 bits. The checksum stays valid (the same
    /// words, summed in another order).
    #[inline]
    pub fn swap_ports(&mut self) {
        let b = self.buffer.as_mut();
        if let Some(ports) = b.get_mut(field::SRC_PORT..field::DST_PORT + 2) {
            let w = u32::from_be_bytes([ports[0], ports[1], ports[2], ports[3]]);
            ports.copy_from_slice(&w.rotate_left(16).to_be_bytes());
        }
    }
    pub fn set_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::LENGTH, v)
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    /// A computed zero is sent as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, src: &Ipv4Addr, dst: &Ipv4Addr) {
        self.set_checksum(0);
        let len = usize::from(self.len());
        let c = !checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Udp, len as u32),
            checksum::data(&self.buffer.as_ref()[..len]),
        ]);
        self.set_checksum(if c == 0 { 0xffff } else { c })
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[Self::HEADER_LEN..len]
    }
}

/// A parsed UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    // Once per datagram received: as a call, its Result went through
    // memory and the caller's registers were saved (make pathcost).
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &UdpPacket<&T>,
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<Self> {
        if packet.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }
    pub fn header_len(&self) -> usize {
        UdpPacket::<&[u8]>::HEADER_LEN
    }
    /// `packet` must hold at least 8 + `payload_len` bytes. Without
    /// `fill_checksum` the field is left zero for the NIC or the caller.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
        payload_len: usize,
        emit_payload: impl FnOnce(&mut [u8]),
        fill_checksum: bool,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((8 + payload_len) as u16);
        packet.set_checksum(0);
        emit_payload(packet.payload_mut());
        if fill_checksum {
            packet.fill_checksum(src, dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    // 4000 -> 7, length 12, checksum (filled by the test), "ping".
    const DGRAM: [u8; 12] = [
        0x0f, 0xa0, 0x00, 0x07, 0x00, 0x0c, 0x00, 0x00, b'p', b'i', b'n', b'g',
    ];

    fn dgram() -> [u8; 12] {
        let mut b = DGRAM;
        UdpPacket::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
        b
    }

    #[test]
    fn parse_emit_round_trip() {
        let b = dgram();
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&SRC, &DST));
        let r = UdpRepr::parse(&p, &SRC, &DST, true).unwrap();
        assert_eq!(
            r,
            UdpRepr {
                src_port: 4000,
                dst_port: 7
            }
        );
        assert_eq!(p.payload(), b"ping");
        let mut out = [0u8; 12];
        r.emit(
            &mut UdpPacket::new_unchecked(&mut out[..]),
            &SRC,
            &DST,
            4,
            |b| b.copy_from_slice(b"ping"),
            true,
        );
        assert_eq!(out, b);
    }

    #[test]
    fn swapped_ports_keep_the_checksum() {
        let mut b = dgram();
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.swap_ports();
        assert_eq!((p.src_port(), p.dst_port()), (7, 4000));
        // Valid for the reply's pseudo-header (the addresses swapped too).
        assert!(UdpPacket::new_checked(&b[..])
            .unwrap()
            .verify_checksum(&DST, &SRC));
        let mut short = [1u8, 2, 3];
        UdpPacket::new_unchecked(&mut short[..]).swap_ports();
        assert_eq!(short, [1, 2, 3]);
    }

    #[test]
    fn swapped_ports_are_a_full_recompute() {
        // The in-place echo swaps ports and addresses and keeps the
        // checksum: the same words, summed in another order (RFC 1624
        // with nothing changed). Random datagrams of 8 to 80 bytes, odd
        // lengths included, between random addresses: the kept checksum
        // is the one fill_checksum computes for the reply; a checksum of 0
        // (none, RFC 768) stays 0.
        let mut next = crate::wire::xorshift(0x9e37_79b9_7f4a_7c15u64);
        let (mut none, mut ffff) = (0, 0);
        for i in 0..20_000usize {
            let len = 8 + i % 73;
            let (src, dst) = (Ipv4Addr::from(next() as u32), Ipv4Addr::from(next() as u32));
            let mut d = vec![0u8; len];
            if !next().is_multiple_of(16) {
                d.iter_mut().for_each(|b| *b = next() as u8);
            }
            d[4..6].copy_from_slice(&(len as u16).to_be_bytes());
            let sent = !next().is_multiple_of(8);
            if sent {
                UdpPacket::new_unchecked(&mut d[..]).fill_checksum(&src, &dst);
            } else {
                d[6..8].fill(0);
            }
            let mut reply = d.clone();
            UdpPacket::new_unchecked(&mut reply[..]).swap_ports();
            let mut full = reply.clone();
            if sent {
                UdpPacket::new_unchecked(&mut full[..]).fill_checksum(&dst, &src);
            }
            assert_eq!(reply, full, "{i}");
            assert_eq!((&reply[0..2], &reply[2..4]), (&d[2..4], &d[0..2]));
            let p = UdpPacket::new_checked(&reply[..]).unwrap();
            assert!(p.verify_checksum(&dst, &src));
            none += usize::from(p.checksum() == 0);
            ffff += usize::from(p.checksum() == 0xffff);
        }
        assert!(none > 1000, "{none} {ffff}");
    }

    #[test]
    fn lengths() {
        let b = dgram();
        assert_eq!(
            UdpPacket::new_checked(&b[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            UdpPacket::new_checked(&b[..11]).err(),
            Some(Error::Truncated)
        );
        let mut short = b;
        short[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&short[..]).err(),
            Some(Error::Malformed)
        );
        let mut shorter = b;
        shorter[5] = 10;
        assert_eq!(
            UdpPacket::new_checked(&shorter[..]).unwrap().payload(),
            b"pi"
        );
    }

    #[test]
    fn checksums() {
        let mut b = dgram();
        b[8] = b'P';
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            UdpRepr::parse(&p, &SRC, &DST, true),
            Err(Error::BadChecksum)
        );
        let mut z = DGRAM;
        z[8] = b'P';
        let p = UdpPacket::new_checked(&z[..]).unwrap();
        assert!(p.verify_checksum(&SRC, &DST), "zero checksum means none");
        let mut port0 = dgram();
        port0[3] = 0;
        let p = UdpPacket::new_checked(&port0[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, &SRC, &DST, false), Err(Error::Malformed));
    }
}
