//! IPv4 headers (RFC 791).

use super::{be16, checksum, set_be16, Error, Result};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            o => IpProtocol::Unknown(o),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// An address with its prefix length, e.g. 198.18.0.1/24.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    address: Ipv4Addr,
    prefix_len: u8,
    /// The netmask's bits, from `prefix_len`: every received datagram's
    /// addresses are tested against it (route and source checks).
    mask: u32,
}

impl Ipv4Cidr {
    pub fn new(address: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        let mask = match prefix_len {
            0 => 0,
            1..=32 => u32::MAX << (32 - u32::from(prefix_len)),
            _ => return None,
        };
        Some(Ipv4Cidr {
            address,
            prefix_len,
            mask,
        })
    }
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    #[inline]
    fn mask_bits(&self) -> u32 {
        self.mask
    }
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & self.mask_bits())
    }
    #[inline]
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) | !self.mask_bits())
    }
    #[inline]
    pub fn contains_addr(&self, a: &Ipv4Addr) -> bool {
        u32::from(*a) & self.mask_bits() == u32::from(self.address) & self.mask_bits()
    }
}

/// Why a CIDR string did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CidrParseError;

impl fmt::Display for CidrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected ADDR/PREFIX, e.g. 198.18.0.1/24")
    }
}

impl std::error::Error for CidrParseError {}

impl FromStr for Ipv4Cidr {
    type Err = CidrParseError;
    fn from_str(s: &str) -> core::result::Result<Self, CidrParseError> {
        let (a, p) = s.split_once('/').ok_or(CidrParseError)?;
        let address: Ipv4Addr = a.parse().map_err(|_| CidrParseError)?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrParseError);
        }
        let prefix_len: u8 = p.parse().map_err(|_| CidrParseError)?;
        Ipv4Cidr::new(address, prefix_len).ok_or(CidrParseError)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// The ECN field's codepoints (RFC 3168 5), the low two bits of the old
/// TOS byte.
pub mod ecn {
    /// Not ECN-Capable Transport.
    pub const NOT_ECT: u8 = 0b00;
    pub const ECT1: u8 = 0b01;
    /// What an ECN-capable TCP sets on its data (RFC 3168 6.1.2).
    pub const ECT0: u8 = 0b10;
    /// Congestion Experienced: set by a router instead of dropping.
    pub const CE: u8 = 0b11;
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const HEADER_LEN: usize = 20;

    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Lengths and version: everything needed before reading any field.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(self.header_len());
        if hl < Self::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(Error::Malformed);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }
    /// Header length in bytes.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.b()[field::VER_IHL] & 0x0f) * 4
    }
    pub fn dscp(&self) -> u8 {
        self.b()[field::DSCP_ECN] >> 2
    }
    pub fn ecn(&self) -> u8 {
        self.b()[field::DSCP_ECN] & 0x03
    }
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.b(), field::LENGTH)
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.b(), field::IDENT)
    }
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.b(), field::FLG_OFF) & 0x4000 != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.b(), field::FLG_OFF) & 0x2000 != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.b(), field::FLG_OFF) & 0x1fff) << 3
    }
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::TTL]
    }
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        self.b()[field::PROTOCOL].into()
    }
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    pub fn options(&self) -> &[u8] {
        &self.b()[Self::HEADER_LEN..usize::from(self.header_len())]
    }
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        let hl = usize::from(self.header_len());
        match self.b().first_chunk::<20>() {
            Some(h) if hl == Self::HEADER_LEN => checksum::header20(h) == 0xffff,
            _ => checksum::data(&self.b()[..hl]) == 0xffff,
        }
    }

    /// The options are well formed (RFC 791 3.1): end of list (0) and no-op
    /// (1) are one byte; every other option has a length byte of at least 2
    /// that stays inside the header. Their meaning is not checked: a host
    /// ignores options it does not know (RFC 1122 3.2.1.8).
    pub fn check_options(&self) -> Result<()> {
        let opts = self.options();
        let mut i = 0;
        while i < opts.len() {
            match opts[i] {
                0 => return Ok(()),
                1 => i += 1,
                _ => {
                    let len = usize::from(*opts.get(i + 1).ok_or(Error::Malformed)?);
                    if len < 2 || i + len > opts.len() {
                        return Err(Error::Malformed);
                    }
                    i += len;
                }
            }
        }
        Ok(())
    }
    /// From the end of the header to `total_len` (Ethernet padding excluded).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.b()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl Ipv4Packet<&[u8]> {
    /// The protocol field of the header at the start of `bytes`, read
    /// alone, before anything is checked: what a fast path for some
    /// protocols tests first.
    #[inline(always)]
    pub fn protocol_byte(bytes: &[u8]) -> Option<u8> {
        bytes.get(field::PROTOCOL).copied()
    }

    /// A datagram as nearly all are: version 4, no options, not a
    /// fragment, a total length of at least its header and within `bytes`,
    /// and (`verify_checksum`) its header checksum right. Its header parsed
    /// as [`Ipv4Repr::parse`] does, read once; None for any other, of which
    /// nothing is said: `new_checked`, `Ipv4Repr::parse` and the flags find
    /// what it is.
    #[inline(always)]
    pub fn parse_plain(bytes: &[u8], verify_checksum: bool) -> Option<Ipv4Repr> {
        let h = bytes.first_chunk::<20>()?;
        let total_len = usize::from(u16::from_be_bytes([h[field::LENGTH], h[field::LENGTH + 1]]));
        let flags = u16::from_be_bytes([h[field::FLG_OFF], h[field::FLG_OFF + 1]]);
        // 0x45: version 4, 5 words of header. MF and the offset clear.
        if h[field::VER_IHL] != 0x45
            || total_len < Self::HEADER_LEN
            || total_len > bytes.len()
            || flags & 0x3fff != 0
        {
            return None;
        }
        if verify_checksum && checksum::header20(h) != 0xffff {
            return None;
        }
        // The addresses as 4-byte arrays: built byte by byte, the compiler
        // took them apart from the words the checksum had loaded and put
        // them together again (make pathcost: 20 instructions).
        let src: [u8; 4] = h[field::SRC..field::SRC + 4].try_into().ok()?;
        let dst: [u8; 4] = h[field::DST..field::DST + 4].try_into().ok()?;
        Some(Ipv4Repr {
            src_addr: Ipv4Addr::from(src),
            dst_addr: Ipv4Addr::from(dst),
            next_header: h[field::PROTOCOL].into(),
            payload_len: total_len - Self::HEADER_LEN,
            hop_limit: h[field::TTL],
            ecn: h[field::DSCP_ECN] & 0x03,
        })
    }
}

impl Ipv4Packet<&mut [u8]> {
    /// [`rewrite_as_reply`](Ipv4Packet::rewrite_as_reply) of a header without
    /// options (`h`) to its own source from its own destination: the two
    /// addresses swapped (which leaves the checksum's sum as it was), the
    /// TTL set, the ident replaced and DF cleared when `ident` is given,
    /// and the checksum carried over from the verified one (RFC 1624). The
    /// same bytes, from a header of known length.
    #[inline(always)]
    pub fn reply_plain(h: &mut [u8; 20], ttl: u8, ident: Option<u16>) {
        let mut delta = 0u64;
        if let Some(ident) = ident {
            let at = field::IDENT;
            let old = u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            let new = (u32::from(ident) << 16) | (old & 0xffff & !0x4000);
            delta += u64::from(!old) + u64::from(new);
            h[at..at + 4].copy_from_slice(&new.to_be_bytes());
        }
        let old = u16::from_be_bytes([h[field::TTL], h[field::PROTOCOL]]);
        let new = (u16::from(ttl) << 8) | (old & 0xff);
        delta += u64::from(!old) + u64::from(new);
        h[field::TTL] = ttl;
        let (s, d) = (field::SRC, field::DST);
        let src = [h[s], h[s + 1], h[s + 2], h[s + 3]];
        h.copy_within(d..d + 4, s);
        h[d..d + 4].copy_from_slice(&src);
        let c = field::CHECKSUM;
        let sum = checksum::adjust_by(u16::from_be_bytes([h[c], h[c + 1]]), delta);
        h[c..c + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Turn a received header into its reply's in place: addresses and TTL
    /// rewritten, the ident replaced and DF cleared when `ident` is given,
    /// and the checksum carried over from the received one word by word
    /// (RFC 1624) rather than summed again. The received checksum must have
    /// been verified; options, if any, are left as they are.
    #[inline]
    pub fn rewrite_as_reply(&mut self, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, ident: Option<u16>) {
        // Each changed 32-bit word adds its old value's complement and its
        // new value to one sum (checksum::adjust_by); a reply's addresses
        // are the request's swapped, which leaves that sum as it was.
        fn set(h: &mut [u8], at: usize, new: u32, delta: &mut u64) {
            let old = u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            *delta += u64::from(!old) + u64::from(new);
            h[at..at + 4].copy_from_slice(&new.to_be_bytes());
        }
        let h = &mut self.buffer.as_mut()[..field::DST + 4];
        let mut delta = 0;
        if let Some(ident) = ident {
            let flags = be16(h, field::FLG_OFF) & !0x4000;
            set(
                h,
                field::IDENT,
                (u32::from(ident) << 16) | u32::from(flags),
                &mut delta,
            );
        }
        // TTL and protocol are one word; the checksum, in the next, stays out.
        let old = be16(h, field::TTL);
        let new = (u16::from(ttl) << 8) | (old & 0xff);
        delta += u64::from(!old) + u64::from(new);
        h[field::TTL] = ttl;
        let (old_src, old_dst) = (
            &h[field::SRC..field::SRC + 4],
            &h[field::DST..field::DST + 4],
        );
        if old_src == dst.octets() && old_dst == src.octets() {
            // The reply of a datagram to us: its addresses swapped, which
            // leaves their sum, and the checksum, as it was.
            h[field::SRC..field::SRC + 4].copy_from_slice(&src.octets());
            h[field::DST..field::DST + 4].copy_from_slice(&dst.octets());
        } else {
            set(h, field::SRC, u32::from(src), &mut delta);
            set(h, field::DST, u32::from(dst), &mut delta);
        }
        let c = checksum::adjust_by(be16(h, field::CHECKSUM), delta);
        set_be16(h, field::CHECKSUM, c);
    }

    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_version(&mut self, v: u8) {
        let b = self.bm();
        b[field::VER_IHL] = (b[field::VER_IHL] & 0x0f) | (v << 4);
    }
    /// Header length in bytes (a multiple of 4).
    pub fn set_header_len(&mut self, len: u8) {
        let b = self.bm();
        b[field::VER_IHL] = (b[field::VER_IHL] & 0xf0) | ((len / 4) & 0x0f);
    }
    pub fn set_dscp(&mut self, v: u8) {
        let b = self.bm();
        b[field::DSCP_ECN] = (b[field::DSCP_ECN] & 0x03) | (v << 2);
    }
    pub fn set_ecn(&mut self, v: u8) {
        let b = self.bm();
        b[field::DSCP_ECN] = (b[field::DSCP_ECN] & 0xfc) | (v & 0x03);
    }
    pub fn set_total_len(&mut self, v: u16) {
        set_be16(self.bm(), field::LENGTH, v)
    }
    pub fn set_ident(&mut self, v: u16) {
        set_be16(self.bm(), field::IDENT, v)
    }
    pub fn clear_flags(&mut self) {
        let v = be16(self.bm(), field::FLG_OFF) & 0x1fff;
        set_be16(self.bm(), field::FLG_OFF, v)
    }
    pub fn set_dont_frag(&mut self, on: bool) {
        let v = be16(self.bm(), field::FLG_OFF);
        set_be16(
            self.bm(),
            field::FLG_OFF,
            if on { v | 0x4000 } else { v & !0x4000 },
        )
    }
    pub fn set_more_frags(&mut self, on: bool) {
        let v = be16(self.bm(), field::FLG_OFF);
        set_be16(
            self.bm(),
            field::FLG_OFF,
            if on { v | 0x2000 } else { v & !0x2000 },
        )
    }
    /// Fragment offset in bytes (a multiple of 8).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let v = be16(self.bm(), field::FLG_OFF) & 0xe000;
        set_be16(self.bm(), field::FLG_OFF, v | ((bytes >> 3) & 0x1fff))
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.bm()[field::TTL] = v
    }
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.bm()[field::PROTOCOL] = p.into()
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.bm(), field::CHECKSUM, v)
    }
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::SRC..field::SRC + 4].copy_from_slice(&a.octets())
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::DST..field::DST + 4].copy_from_slice(&a.octets())
    }
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = usize::from(self.header_len());
        let c = !checksum::data(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c)
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (
            usize::from(self.header_len()),
            usize::from(self.total_len()),
        );
        &mut self.bm()[hl..tl]
    }
}

/// A parsed IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub next_header: IpProtocol,
    pub payload_len: usize,
    pub hop_limit: u8,
    /// The ECN field ([`ecn`]); the DSCP is always sent as zero.
    pub ecn: u8,
}

impl Ipv4Repr {
    /// Fragments and options are accepted here: the caller decides.
    // Once per datagram received: as a call, its Result went through
    // memory and the caller's registers were saved (make pathcost).
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Ipv4Packet<&T>,
        verify_checksum: bool,
    ) -> Result<Self> {
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        // The fixed header as one array: its fields read without a bounds
        // check each (new_checked saw the 20 bytes; an unchecked view that
        // lacks them is truncated).
        let h = packet.b().first_chunk::<20>().ok_or(Error::Truncated)?;
        let header_len = usize::from(h[field::VER_IHL] & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes([h[field::LENGTH], h[field::LENGTH + 1]]));
        let (s, d) = (field::SRC, field::DST);
        Ok(Ipv4Repr {
            src_addr: Ipv4Addr::new(h[s], h[s + 1], h[s + 2], h[s + 3]),
            dst_addr: Ipv4Addr::new(h[d], h[d + 1], h[d + 2], h[d + 3]),
            next_header: h[field::PROTOCOL].into(),
            payload_len: total_len.saturating_sub(header_len),
            hop_limit: h[field::TTL],
            ecn: h[field::DSCP_ECN] & 0x03,
        })
    }
    /// 20: no options are emitted.
    pub fn buffer_len(&self) -> usize {
        Ipv4Packet::<&[u8]>::HEADER_LEN
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        fill_checksum: bool,
    ) {
        packet.set_version(4);
        packet.set_header_len(20);
        packet.bm()[field::DSCP_ECN] = self.ecn & 0x03;
        packet.set_total_len((20 + self.payload_len) as u16);
        packet.set_ident(0);
        set_be16(packet.bm(), field::FLG_OFF, 0);
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        if fill_checksum {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_rewritten_in_place_has_the_summed_checksum() {
        // Many headers (ttl, ident, flags, addresses varied): the carried
        // checksum equals one summed from scratch, and verifies.
        let mut next = crate::wire::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..2000 {
            let r = next().to_be_bytes();
            let mut h = [
                0x45,
                0,
                0,
                60,
                r[0],
                r[1],
                r[2] & 0x40,
                0,
                r[3],
                17,
                0,
                0,
                198,
                18,
                r[4],
                r[5],
                198,
                18,
                r[6],
                r[7],
            ];
            let mut p = Ipv4Packet::new_unchecked(&mut h[..]);
            p.fill_checksum();
            let (src, dst) = (
                Ipv4Addr::new(198, 18, 0, 1),
                Ipv4Addr::new(198, 18, r[4], r[5]),
            );
            let ident = (next() & 1 == 0).then_some(next() as u16);
            p.rewrite_as_reply(src, dst, 64, ident);
            let carried = p.checksum();
            assert!(p.verify_checksum(), "{h:02x?}");
            p.fill_checksum();
            assert_eq!(carried, p.checksum());
            assert_eq!((p.src_addr(), p.dst_addr(), p.hop_limit()), (src, dst, 64));
            if let Some(i) = ident {
                assert_eq!((p.ident(), p.dont_frag()), (i, false));
            }
        }
    }

    #[test]
    fn reply_plain_is_rewrite_as_reply_to_the_source() {
        // Random headers, checksums right: the same bytes either way, with
        // an ident and without.
        let mut next = crate::wire::xorshift(0x0123_4567_89ab_cdefu64);
        for i in 0..4000 {
            let (a, b) = (next().to_be_bytes(), next().to_be_bytes());
            let mut h: [u8; 20] = [
                0x45,
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
                a[5],
                a[6],
                a[7],
                b[0],
                0,
                0,
                b[1],
                b[2],
                b[3],
                b[4],
                b[5],
                b[6],
                b[7],
                a[0] ^ b[0],
            ];
            Ipv4Packet::new_unchecked(&mut h[..]).fill_checksum();
            let p = Ipv4Packet::new_unchecked(&h[..]);
            let (src, dst) = (p.src_addr(), p.dst_addr());
            let ident = (i % 2 == 0).then_some(next() as u16);
            let ttl = next() as u8;
            let mut general = h;
            Ipv4Packet::new_unchecked(&mut general[..]).rewrite_as_reply(dst, src, ttl, ident);
            Ipv4Packet::reply_plain(&mut h, ttl, ident);
            assert_eq!(h, general, "{i}");
            assert!(Ipv4Packet::new_unchecked(&h[..]).verify_checksum());
        }
    }

    // 198.18.0.2 -> 198.18.0.1, UDP, TTL 64, ident 0x1c46, DF, 4 payload bytes.
    const PACKET: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, // v4, ihl 5, total 24
        0x1c, 0x46, 0x40, 0x00, // ident, DF
        0x40, 0x11, 0x00, 0x00, // ttl 64, udp, checksum (filled in by the test)
        198, 18, 0, 2, //
        198, 18, 0, 1, //
        0xde, 0xad, 0xbe, 0xef,
    ];

    fn packet() -> [u8; 24] {
        let mut p = PACKET;
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    #[test]
    fn parse_plain_agrees_with_the_general_checks() {
        // Headers with random bytes in every field that decides (version and
        // length, total length, flags and offset, checksum) and buffers of
        // every length around the total: parse_plain takes exactly those that
        // pass new_checked and parse, have no options and are no fragment,
        // and reads them as parse does.
        let mut next = crate::wire::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut taken = 0;
        for _ in 0..20_000 {
            let r = next().to_be_bytes();
            let mut b = [0u8; 40];
            b[..24].copy_from_slice(&packet());
            match r[0] % 4 {
                0 => b[0] = r[1],
                1 => b[2..4].copy_from_slice(&u16::from(r[1] % 48).to_be_bytes()),
                2 => b[6..8].copy_from_slice(&[r[1] & 0xe0 | (r[2] & 1), r[3] & 1]),
                _ => {}
            }
            let fix = r[4] & 1 == 0;
            if fix {
                let hl = usize::from(b[0] & 0x0f) * 4;
                if (20..=40).contains(&hl) {
                    b[10..12].fill(0);
                    let c = !checksum::data(&b[..hl]);
                    b[10..12].copy_from_slice(&c.to_be_bytes());
                }
            }
            let len = usize::from(r[5]) % 41;
            let bytes = &b[..len];
            let verify = r[6] & 1 == 0;
            let general = Ipv4Packet::new_checked(bytes).ok().and_then(|p| {
                let plain = p.header_len() == 20 && !p.is_fragment();
                Ipv4Repr::parse(&p, verify).ok().filter(|_| plain)
            });
            let fast = Ipv4Packet::parse_plain(bytes, verify);
            assert_eq!(fast, general, "{bytes:02x?} verify={verify}");
            taken += usize::from(fast.is_some());
        }
        assert!(taken > 1000, "{taken}");
    }

    #[test]
    fn parse_fields() {
        let b = packet();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        let r = Ipv4Repr::parse(&p, true).unwrap();
        assert_eq!(
            r,
            Ipv4Repr {
                src_addr: Ipv4Addr::new(198, 18, 0, 2),
                dst_addr: Ipv4Addr::new(198, 18, 0, 1),
                next_header: IpProtocol::Udp,
                payload_len: 4,
                hop_limit: 64,
                ecn: 0,
            }
        );
    }

    #[test]
    fn emit_round_trip() {
        let b = packet();
        let r = Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap(), true).unwrap();
        let mut out = [0u8; 24];
        let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
        r.emit(&mut p, true);
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let back = Ipv4Packet::new_checked(&out[..]).unwrap();
        assert!(back.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&back, true).unwrap(), r);
    }

    #[test]
    fn the_ecn_field_is_parsed_and_emitted() {
        // The TOS byte (offset 1): DSCP 46 (EF) with CE; the ECN bits are
        // kept, the DSCP is not (we send zero).
        let mut b = packet();
        b[1] = (46 << 2) | ecn::CE;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let r = Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap(), true).unwrap();
        assert_eq!(r.ecn, ecn::CE);
        for codepoint in [ecn::NOT_ECT, ecn::ECT1, ecn::ECT0, ecn::CE] {
            let mut out = [0u8; 24];
            let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
            Ipv4Repr {
                ecn: codepoint,
                ..r
            }
            .emit(&mut p, true);
            assert_eq!(out[1], codepoint);
            let back = Ipv4Packet::new_checked(&out[..]).unwrap();
            assert!(back.verify_checksum());
            assert_eq!((back.dscp(), back.ecn()), (0, codepoint));
        }
    }

    #[test]
    fn impossible_lengths() {
        let b = packet();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).err(),
            Some(Error::Truncated)
        );
        let mut ihl = b;
        ihl[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl[..]).err(),
            Some(Error::Malformed)
        );
        let mut ver = b;
        ver[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&ver[..]).err(),
            Some(Error::Malformed)
        );
        let mut long_hdr = b;
        long_hdr[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&long_hdr[..]).err(),
            Some(Error::Truncated)
        );
        let mut total = b;
        total[3] = 200;
        assert_eq!(
            Ipv4Packet::new_checked(&total[..]).err(),
            Some(Error::Truncated)
        );
        let mut short_total = b;
        short_total[3] = 10;
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).err(),
            Some(Error::Malformed)
        );
        // Ethernet padding after total_len is not payload.
        let mut padded = [0u8; 40];
        padded[..24].copy_from_slice(&b);
        assert_eq!(
            Ipv4Packet::new_checked(&padded[..])
                .unwrap()
                .payload()
                .len(),
            4
        );
    }

    #[test]
    fn bad_checksum() {
        let mut b = packet();
        b[8] = 63;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, true), Err(Error::BadChecksum));
        assert!(Ipv4Repr::parse(&p, false).is_ok());
    }

    #[test]
    fn options_are_walked() {
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&packet()[..20]);
        b[0] = 0x47;
        b[3] = 28;
        // NOP, a 4-byte option (router alert), NOP, EOL.
        b[20..28].copy_from_slice(&[1, 148, 4, 0, 0, 1, 0, 0]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options().len(), 8);
        assert_eq!(p.check_options(), Ok(()));
        for bad in [
            [1, 148, 9, 0, 0, 0, 0, 0],
            [1, 148, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 1, 1, 7],
        ] {
            b[20..28].copy_from_slice(&bad);
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.check_options(), Err(Error::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn fragment_fields() {
        let mut b = packet();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.clear_flags();
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
    }

    #[test]
    fn cidr() {
        let c: Ipv4Cidr = "198.18.0.1/24".parse().unwrap();
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.network(), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(198, 18, 0, 255));
        assert!(c.contains_addr(&Ipv4Addr::new(198, 18, 0, 200)));
        assert!(!c.contains_addr(&Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!(c.to_string(), "198.18.0.1/24");
        for bad in [
            "198.18.0.1",
            "198.18.0.1/33",
            "198.18.0.1/",
            "198.18.0/24",
            "x/24",
            "1.2.3.4/+4",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains_addr(&Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        let host: Ipv4Cidr = "198.18.0.1/32".parse().unwrap();
        assert_eq!(host.netmask(), Ipv4Addr::BROADCAST);
        assert!(!host.contains_addr(&Ipv4Addr::new(198, 18, 0, 2)));
        let odd = Ipv4Cidr::new(Ipv4Addr::new(198, 18, 0, 1), 15).unwrap();
        assert_eq!(odd.netmask(), Ipv4Addr::new(255, 254, 0, 0));
    }
}
