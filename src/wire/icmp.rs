//! ICMPv4 (RFC 792): echo, and the errors the stack sends.

use super::{be16, checksum, set_be16, Error, Ipv4Packet, Ipv4Repr, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4Message {
    EchoReply,
    DstUnreachable,
    Redirect,
    EchoRequest,
    TimeExceeded,
    ParamProblem,
    Timestamp,
    TimestampReply,
    Unknown(u8),
}

impl From<u8> for Icmpv4Message {
    fn from(v: u8) -> Self {
        match v {
            0 => Icmpv4Message::EchoReply,
            3 => Icmpv4Message::DstUnreachable,
            5 => Icmpv4Message::Redirect,
            8 => Icmpv4Message::EchoRequest,
            11 => Icmpv4Message::TimeExceeded,
            12 => Icmpv4Message::ParamProblem,
            13 => Icmpv4Message::Timestamp,
            14 => Icmpv4Message::TimestampReply,
            o => Icmpv4Message::Unknown(o),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    fn from(m: Icmpv4Message) -> u8 {
        match m {
            Icmpv4Message::EchoReply => 0,
            Icmpv4Message::DstUnreachable => 3,
            Icmpv4Message::Redirect => 5,
            Icmpv4Message::EchoRequest => 8,
            Icmpv4Message::TimeExceeded => 11,
            Icmpv4Message::ParamProblem => 12,
            Icmpv4Message::Timestamp => 13,
            Icmpv4Message::TimestampReply => 14,
            Icmpv4Message::Unknown(v) => v,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4DstUnreachable {
    NetUnreachable,
    HostUnreachable,
    ProtoUnreachable,
    PortUnreachable,
    FragRequired,
    Unknown(u8),
}

impl From<u8> for Icmpv4DstUnreachable {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::NetUnreachable,
            1 => Self::HostUnreachable,
            2 => Self::ProtoUnreachable,
            3 => Self::PortUnreachable,
            4 => Self::FragRequired,
            o => Self::Unknown(o),
        }
    }
}

impl From<Icmpv4DstUnreachable> for u8 {
    fn from(v: Icmpv4DstUnreachable) -> u8 {
        match v {
            Icmpv4DstUnreachable::NetUnreachable => 0,
            Icmpv4DstUnreachable::HostUnreachable => 1,
            Icmpv4DstUnreachable::ProtoUnreachable => 2,
            Icmpv4DstUnreachable::PortUnreachable => 3,
            Icmpv4DstUnreachable::FragRequired => 4,
            Icmpv4DstUnreachable::Unknown(o) => o,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4TimeExceeded {
    TtlExpired,
    FragExpired,
    Unknown(u8),
}

impl From<u8> for Icmpv4TimeExceeded {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::TtlExpired,
            1 => Self::FragExpired,
            o => Self::Unknown(o),
        }
    }
}

impl From<Icmpv4TimeExceeded> for u8 {
    fn from(v: Icmpv4TimeExceeded) -> u8 {
        match v {
            Icmpv4TimeExceeded::TtlExpired => 0,
            Icmpv4TimeExceeded::FragExpired => 1,
            Icmpv4TimeExceeded::Unknown(o) => o,
        }
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const DATA: usize = 8;
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    pub const HEADER_LEN: usize = 8;

    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn msg_type(&self) -> Icmpv4Message {
        self.buffer.as_ref()[field::TYPE].into()
    }
    /// Type 8 code 0: what `Icmpv4Repr::parse` makes an `EchoRequest` of
    /// once the checksum verifies, told from two bytes.
    #[inline]
    pub fn is_echo_request(&self) -> bool {
        let b = self.buffer.as_ref();
        b.len() >= Self::HEADER_LEN && b[field::TYPE] == 8 && b[field::CODE] == 0
    }
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ)
    }
    /// The bytes after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl Icmpv4Packet<&[u8]> {
    /// A whole message (`icmp`) that is an echo request whose checksum
    /// verifies: `new_checked`, `is_echo_request` and `verify_checksum`
    /// together, each byte read once.
    #[inline(always)]
    pub fn is_verified_echo_request(icmp: &[u8]) -> bool {
        matches!(icmp.first_chunk::<{ field::DATA }>(), Some(h) if h[field::TYPE] == 8 && h[field::CODE] == 0)
            && checksum::data_inlined(icmp) == 0xffff
    }
}

impl Icmpv4Packet<&mut [u8]> {
    /// Turn an echo request whose checksum verified (`icmp`: the whole
    /// message) into its reply in place: type 8 code 0 becomes type 0 code
    /// 0, the rest stays, and the checksum follows the changed word (RFC
    /// 1624 eqn. 3) instead of a sum over the message. The same bytes as
    /// setting the type and filling the checksum. A message shorter than a
    /// header is left alone.
    #[inline(always)]
    pub fn echo_request_to_reply(icmp: &mut [u8]) {
        let Some(h) = icmp.first_chunk_mut::<{ field::DATA }>() else {
            return;
        };
        let c = field::CHECKSUM;
        let old = u16::from_be_bytes([h[c], h[c + 1]]);
        h[field::TYPE] = Icmpv4Message::EchoReply.into();
        let mut sum = checksum::adjust(old, 0x0800, 0x0000);
        if sum == 0 {
            // Eqn. 3 gives +0 where the reply's words other than the
            // checksum sum to -0 (0xffff); a sum over the message gives
            // 0xffff where they are all zero: the rare zero is summed.
            h[c..c + 2].fill(0);
            sum = !checksum::data(icmp);
        }
        if let Some(h) = icmp.first_chunk_mut::<{ field::DATA }>() {
            h[c..c + 2].copy_from_slice(&sum.to_be_bytes());
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, m: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = m.into()
    }
    pub fn set_msg_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    pub fn set_echo_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::IDENT, v)
    }
    pub fn set_echo_seq_no(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::SEQ, v)
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.buffer.as_ref());
        self.set_checksum(c)
    }
}

/// A parsed ICMPv4 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    DstUnreachable {
        reason: Icmpv4DstUnreachable,
        header: Ipv4Repr,
        data: &'a [u8],
    },
    TimeExceeded {
        reason: Icmpv4TimeExceeded,
        header: Ipv4Repr,
        data: &'a [u8],
    },
}

/// The embedded datagram of an error: its header and up to 8 bytes after it.
fn parse_quoted(data: &[u8]) -> Result<(Ipv4Repr, &[u8])> {
    if data.len() < 20 {
        return Err(Error::Truncated);
    }
    let p = Ipv4Packet::new_unchecked(data);
    let hl = usize::from(p.header_len());
    if p.version() != 4 || hl < 20 {
        return Err(Error::Malformed);
    }
    if hl > data.len() {
        return Err(Error::Truncated);
    }
    let total = usize::from(p.total_len());
    let header = Ipv4Repr {
        src_addr: p.src_addr(),
        dst_addr: p.dst_addr(),
        next_header: p.next_header(),
        payload_len: total.saturating_sub(hl),
        hop_limit: p.hop_limit(),
        ecn: p.ecn(),
    };
    let end = data.len().min(hl + 8);
    Ok((header, &data[hl..end]))
}

impl<'a> Icmpv4Repr<'a> {
    /// Other message types are unsupported.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
        verify_checksum: bool,
    ) -> Result<Icmpv4Repr<'a>> {
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let buf: &'a T = packet.buffer;
        let data = &buf.as_ref()[field::DATA..];
        match (packet.msg_type(), packet.msg_code()) {
            (Icmpv4Message::EchoRequest, 0) => Ok(Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::EchoReply, 0) => Ok(Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::DstUnreachable, code) => {
                let (header, data) = parse_quoted(data)?;
                Ok(Icmpv4Repr::DstUnreachable {
                    reason: code.into(),
                    header,
                    data,
                })
            }
            (Icmpv4Message::TimeExceeded, code) => {
                let (header, data) = parse_quoted(data)?;
                Ok(Icmpv4Repr::TimeExceeded {
                    reason: code.into(),
                    header,
                    data,
                })
            }
            _ => Err(Error::Unsupported),
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                8 + data.len()
            }
            Icmpv4Repr::DstUnreachable { header, data, .. }
            | Icmpv4Repr::TimeExceeded { header, data, .. } => 8 + header.buffer_len() + data.len(),
        }
    }

    /// Always fills the checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                let t = if matches!(self, Icmpv4Repr::EchoRequest { .. }) {
                    Icmpv4Message::EchoRequest
                } else {
                    Icmpv4Message::EchoReply
                };
                packet.set_msg_type(t);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                packet.data_mut()[..data.len()].copy_from_slice(data);
            }
            Icmpv4Repr::DstUnreachable {
                reason,
                header,
                data,
            } => emit_error_header(
                packet,
                Icmpv4Message::DstUnreachable,
                reason.into(),
                &header,
                data,
            ),
            Icmpv4Repr::TimeExceeded {
                reason,
                header,
                data,
            } => emit_error_header(
                packet,
                Icmpv4Message::TimeExceeded,
                reason.into(),
                &header,
                data,
            ),
        }
        packet.fill_checksum();
    }
}

fn emit_error_header<T: AsRef<[u8]> + AsMut<[u8]>>(
    packet: &mut Icmpv4Packet<T>,
    msg: Icmpv4Message,
    code: u8,
    header: &Ipv4Repr,
    data: &[u8],
) {
    packet.set_msg_type(msg);
    packet.set_msg_code(code);
    set_be16(packet.buffer.as_mut(), 4, 0);
    set_be16(packet.buffer.as_mut(), 6, 0);
    let body = packet.data_mut();
    header.emit(&mut Ipv4Packet::new_unchecked(&mut body[..]), true);
    body[20..20 + data.len()].copy_from_slice(data);
}

/// The length of an error quoting `original_len` bytes.
pub fn error_len(original_len: usize) -> usize {
    8 + original_len
}

/// Write an error message quoting `original` (the offending datagram's IP
/// header, options included, and the first 8 bytes of its payload) into a
/// packet of exactly [`error_len`] bytes, and fill the checksum.
pub fn emit_error_quoting<T: AsRef<[u8]> + AsMut<[u8]>>(
    packet: &mut Icmpv4Packet<T>,
    msg: Icmpv4Message,
    code: u8,
    original: &[u8],
) {
    packet.set_msg_type(msg);
    packet.set_msg_code(code);
    set_be16(packet.buffer.as_mut(), 4, 0);
    set_be16(packet.buffer.as_mut(), 6, 0);
    packet.data_mut()[..original.len()].copy_from_slice(original);
    packet.fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IpProtocol;
    use std::net::Ipv4Addr;

    // ping: type 8, code 0, checksum, ident 0x1234, seq 1, "abcd".
    const ECHO: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
    ];

    fn echo() -> [u8; 12] {
        let mut b = ECHO;
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn echo_reply_in_place_is_a_full_recompute() {
        // Echo requests of every length from a bare header to 80 bytes (odd
        // ones included), random words, checksums right (either zero of
        // one's complement where the sum allows): the reply made in place
        // is byte for byte the request with type 0 and its checksum summed
        // again. Some have all-zero words after the type (the reply's
        // checksum then 0xffff), some words summing to -0 (then 0).
        let mut next = crate::wire::xorshift(0xd1b5_4a32_d192_ed03u64);
        let (mut zeros, mut minus_zeros) = (0, 0);
        for i in 0..20_000usize {
            let len = 8 + i % 73;
            let mut m = vec![0u8; len];
            match next() % 8 {
                0 => {}
                1 => {
                    // Words after the checksum summing to 0xffff.
                    m[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
                }
                2 => {
                    let a = next() as u16;
                    m[4..6].copy_from_slice(&a.to_be_bytes());
                    m[6..8].copy_from_slice(&(!a).to_be_bytes());
                }
                _ => m.iter_mut().for_each(|b| *b = next() as u8),
            }
            m[0] = 8;
            m[1] = 0;
            Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
            if next().is_multiple_of(4) && Icmpv4Packet::new_unchecked(&m[..]).checksum() == 0 {
                // The other zero verifies too.
                m[2..4].copy_from_slice(&[0xff, 0xff]);
            }
            assert!(Icmpv4Packet::is_verified_echo_request(&m), "{m:02x?}");
            let mut full = m.clone();
            full[0] = 0;
            Icmpv4Packet::new_unchecked(&mut full[..]).fill_checksum();
            Icmpv4Packet::echo_request_to_reply(&mut m);
            assert_eq!(m, full, "{i}");
            assert!(Icmpv4Packet::new_unchecked(&m[..]).verify_checksum());
            let c = Icmpv4Packet::new_unchecked(&m[..]).checksum();
            zeros += usize::from(c == 0xffff && m[4..].iter().all(|&b| b == 0));
            minus_zeros += usize::from(c == 0);
        }
        assert!(zeros > 100 && minus_zeros > 100, "{zeros} {minus_zeros}");
        // Shorter than a header: left alone.
        let mut short = [8u8, 0, 1, 2, 3, 4, 5];
        Icmpv4Packet::echo_request_to_reply(&mut short);
        assert_eq!(short, [8u8, 0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn echo_parse_emit_round_trip() {
        let b = echo();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        let r = Icmpv4Repr::parse(&p, true).unwrap();
        assert_eq!(
            r,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }
        );
        let mut out = [0u8; 12];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn is_echo_request_agrees_with_parse() {
        // Every type and code of a checksummed message: is_echo_request
        // plus the checksum is what parse makes an EchoRequest of.
        for t in 0..=255u8 {
            for code in [0u8, 1, 3, 255] {
                let mut b = echo();
                b[0] = t;
                b[1] = code;
                Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
                let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
                let parsed = matches!(
                    Icmpv4Repr::parse(&p, true),
                    Ok(Icmpv4Repr::EchoRequest { .. })
                );
                assert_eq!(
                    p.is_echo_request() && p.verify_checksum(),
                    parsed,
                    "{t} {code}"
                );
            }
        }
        assert!(!Icmpv4Packet::new_unchecked(&echo()[..7]).is_echo_request());
    }

    #[test]
    fn bad_checksum_and_truncated() {
        let mut b = echo();
        b[9] ^= 1;
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, true), Err(Error::BadChecksum));
        assert_eq!(
            Icmpv4Packet::new_checked(&b[..7]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn port_unreachable_quotes_the_datagram() {
        let header = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 2),
            dst_addr: Ipv4Addr::new(198, 18, 0, 1),
            next_header: IpProtocol::Udp,
            payload_len: 12,
            hop_limit: 64,
            ecn: 0,
        };
        let mut orig = [0u8; 28];
        header.emit(&mut Ipv4Packet::new_unchecked(&mut orig[..20]), true);
        orig[20..28].copy_from_slice(&[0x0f, 0xa0, 0x27, 0x0f, 0, 12, 0, 0]);
        let mut out = vec![0u8; error_len(orig.len())];
        let mut p = Icmpv4Packet::new_unchecked(&mut out[..]);
        emit_error_quoting(&mut p, Icmpv4Message::DstUnreachable, 3, &orig);
        let p = Icmpv4Packet::new_checked(&out[..]).unwrap();
        match Icmpv4Repr::parse(&p, true).unwrap() {
            Icmpv4Repr::DstUnreachable {
                reason,
                header: h,
                data,
            } => {
                assert_eq!(reason, Icmpv4DstUnreachable::PortUnreachable);
                assert_eq!(h, header);
                assert_eq!(data, &orig[20..28]);
            }
            other => panic!("{other:?}"),
        }
        // Emitting the same through the Repr gives the same bytes.
        let r = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::PortUnreachable,
            header,
            data: &orig[20..28],
        };
        let mut again = vec![0u8; r.buffer_len()];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut again[..]));
        assert_eq!(again, out);
    }

    #[test]
    fn quoted_header_too_short() {
        let mut b = [0u8; 8 + 10];
        b[0] = 3;
        b[1] = 3;
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, true), Err(Error::Truncated));
    }

    #[test]
    fn other_types_unsupported() {
        let mut b = echo();
        b[0] = 13;
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, true), Err(Error::Unsupported));
    }
}
