//! TCP headers (RFC 9293 3.1) and the options dpstack speaks: MSS, window
//! scale and timestamps (RFC 7323), SACK-permitted and SACK blocks (RFC 2018).

use super::ethernet::EthernetAddress;
use super::{be16, checksum, set_be16, Error, IpProtocol, Result};
use std::net::Ipv4Addr;
use std::ops::{BitOr, BitOrAssign};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// The control bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    pub fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    pub fn urg(self) -> bool {
        self.contains(Self::URG)
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0
    }
}

/// The options of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    /// The shift count, at most 14.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (left edge, right edge), at most 3 kept.
    pub sack_blocks: [Option<(u32, u32)>; 3],
}

/// The most option bytes a header holds: a data offset of 15 words.
const MAX_OPTIONS_LEN: usize = 40;

mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

impl TcpOptions {
    /// [`parse`](Self::parse) into options in place, out of line (see
    /// [`TcpRepr::parse_segment`]).
    #[inline(never)]
    fn parse_into(&mut self, b: &[u8]) -> Result<()> {
        *self = TcpOptions::parse(b)?;
        Ok(())
    }

    /// Walk an options area (RFC 9293 3.1, 3.2).
    pub fn parse(mut b: &[u8]) -> Result<TcpOptions> {
        let mut o = TcpOptions::default();
        while let Some(&k) = b.first() {
            match k {
                kind::EOL => break,
                kind::NOP => {
                    b = &b[1..];
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*b.get(1).ok_or(Error::Malformed)?);
            if len < 2 || len > b.len() {
                return Err(Error::Malformed);
            }
            let body = &b[2..len];
            match (k, len) {
                (kind::MSS, 4) => o.mss = Some(be16(body, 0)),
                (kind::WS, 3) => o.window_scale = Some(body[0].min(14)),
                (kind::SACK_PERMITTED, 2) => o.sack_permitted = true,
                (kind::TIMESTAMPS, 10) => {
                    o.timestamps = Some((
                        u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                    ))
                }
                (kind::SACK, _) => {
                    if (len - 2) % 8 != 0 || len == 2 {
                        return Err(Error::Malformed);
                    }
                    for (i, block) in body.chunks_exact(8).take(3).enumerate() {
                        o.sack_blocks[i] = Some((
                            u32::from_be_bytes([block[0], block[1], block[2], block[3]]),
                            u32::from_be_bytes([block[4], block[5], block[6], block[7]]),
                        ));
                    }
                }
                (kind::MSS | kind::WS | kind::SACK_PERMITTED | kind::TIMESTAMPS, _) => {
                    return Err(Error::Malformed)
                }
                _ => {}
            }
            b = &b[len..];
        }
        Ok(o)
    }

    /// Bytes the options take when emitted: whole words, each option
    /// padded with NOPs.
    fn raw_len(&self) -> usize {
        if self.sack_blocks[0].is_none() {
            // No SACK block (nearly every segment): no count to take.
            return self.raw_len_without_sack();
        }
        self.raw_len_without_sack()
            + match self.sack_emitted() {
                0 => 0,
                n => 4 + 8 * n,
            }
    }

    /// How many SACK blocks are set.
    pub fn sack_count(&self) -> usize {
        self.sack_blocks.iter().take_while(|b| b.is_some()).count()
    }

    /// The SACK blocks emitted: those `sack_count` counts, as many as fit
    /// beside the other options in the 40 bytes a header holds (RFC 9293
    /// 3.1: the data offset counts at most 15 words; RFC 2018 3: at most 3
    /// blocks beside timestamps). Segments dpstack sends carry SACK blocks
    /// without the SYN options, so only a header rebuilt from a parsed one
    /// can lose some.
    fn sack_emitted(&self) -> usize {
        let others = self.raw_len_without_sack();
        let mut n = self.sack_count();
        while n > 0 && others + 4 + 8 * n > MAX_OPTIONS_LEN {
            n -= 1;
        }
        n
    }

    fn raw_len_without_sack(&self) -> usize {
        self.mss.map_or(0, |_| 4)
            + self.window_scale.map_or(0, |_| 4)
            + if self.sack_permitted { 4 } else { 0 }
            + self.timestamps.map_or(0, |_| 12)
    }

    fn emit(&self, out: &mut [u8]) {
        let mut i = 0;
        if let Some(mss) = self.mss {
            out[i..i + 2].copy_from_slice(&[kind::MSS, 4]);
            set_be16(out, i + 2, mss);
            i += 4;
        }
        if let Some(ws) = self.window_scale {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::WS, 3, ws]);
            i += 4;
        }
        if self.sack_permitted {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
            i += 4;
        }
        if let Some((val, ecr)) = self.timestamps {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::TIMESTAMPS, 10]);
            out[i + 4..i + 8].copy_from_slice(&val.to_be_bytes());
            out[i + 8..i + 12].copy_from_slice(&ecr.to_be_bytes());
            i += 12;
        }
        let n = self.sack_emitted();
        if n > 0 {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK, (2 + 8 * n) as u8]);
            i += 4;
            // The blocks `n` counted, not any after an empty slot: those
            // would overrun the `raw_len` bytes the header holds.
            for (l, r) in self.sack_blocks.iter().take(n).flatten() {
                out[i..i + 4].copy_from_slice(&l.to_be_bytes());
                out[i + 4..i + 8].copy_from_slice(&r.to_be_bytes());
                i += 8;
            }
        }
        for b in &mut out[i..] {
            *b = kind::EOL;
        }
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const HEADER_LEN: usize = 20;

    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < Self::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    fn be32(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    pub fn seq_number(&self) -> u32 {
        self.be32(field::SEQ)
    }
    pub fn ack_number(&self) -> u32 {
        self.be32(field::ACK)
    }
    /// The data offset, in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFFSET] >> 4) * 4
    }
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..self.header_len()]
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Over the whole buffer (the IP payload).
    pub fn verify_checksum(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        // One fold over the pseudo-header and the segment (make pathcost):
        // the same sum as combining the two folded halves.
        let b = self.buffer.as_ref();
        checksum::data_with_pseudo_header(src, dst, IpProtocol::Tcp, b) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::SRC_PORT, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::DST_PORT, v)
    }
    pub fn set_seq_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ..field::SEQ + 4].copy_from_slice(&v.to_be_bytes())
    }
    pub fn set_ack_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::ACK..field::ACK + 4].copy_from_slice(&v.to_be_bytes())
    }
    /// Data offset in bytes (a multiple of 4); the reserved bits are cleared.
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::OFFSET] = ((len / 4) as u8) << 4;
    }
    pub fn set_flags(&mut self, f: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = f.0;
    }
    pub fn set_window_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::WINDOW, v)
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    pub fn set_urgent_at(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::URGENT, v)
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
    pub fn fill_checksum(&mut self, src: &Ipv4Addr, dst: &Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let c = !checksum::data_with_pseudo_header(src, dst, IpProtocol::Tcp, b);
        self.set_checksum(c)
    }
}

/// A parsed TCP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: TcpFlags,
    pub window_len: u16,
    pub urgent_at: u16,
    pub options: TcpOptions,
}

impl TcpRepr {
    /// Inlined: the per-segment caller then builds the repr in place
    /// instead of copying a returned one (make pathcost).
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&T>,
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<TcpRepr> {
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        // The fixed header read once, as an array: no check per field.
        let b = packet.buffer.as_ref();
        let h: &[u8; 20] = b.first_chunk().ok_or(Error::Truncated)?;
        let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (src_port, dst_port) = (be16(field::SRC_PORT), be16(field::DST_PORT));
        if src_port == 0 || dst_port == 0 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(h[field::OFFSET] >> 4) * 4;
        let options = b
            .get(Self::HEADER..hl.max(Self::HEADER))
            .ok_or(Error::Truncated)?;
        Ok(TcpRepr {
            src_port,
            dst_port,
            seq_number: be32(field::SEQ),
            ack_number: be32(field::ACK),
            flags: TcpFlags(h[field::FLAGS]),
            window_len: be16(field::WINDOW),
            urgent_at: be16(field::URGENT),
            options: if options.is_empty() {
                TcpOptions::default()
            } else {
                TcpOptions::parse(options)?
            },
        })
    }

    /// A received segment (`b`: the whole IP payload) read in one pass
    /// into `repr`: the checks of [`TcpPacket::new_checked`] and then of
    /// [`parse`](Self::parse), in their order (the same error for every
    /// input), each length tested once. The header's length (where the
    /// payload starts). `repr` is written where the caller holds it, its
    /// options parsed in place (out of line; a segment without options
    /// writes the default ones): no copy of a returned repr, no merge of
    /// parsed and default options held in registers (make pathcost). On
    /// an error `repr` holds whatever was read.
    #[inline(always)]
    pub fn parse_segment(
        b: &[u8],
        src: &Ipv4Addr,
        dst: &Ipv4Addr,
        verify_checksum: bool,
        repr: &mut TcpRepr,
    ) -> Result<usize> {
        let h: &[u8; 20] = b.first_chunk().ok_or(Error::Truncated)?;
        let hl = usize::from(h[field::OFFSET] >> 4) * 4;
        if hl < Self::HEADER {
            return Err(Error::Malformed);
        }
        let options = b.get(Self::HEADER..hl).ok_or(Error::Truncated)?;
        if verify_checksum
            && checksum::data_with_pseudo_header(src, dst, IpProtocol::Tcp, b) != 0xffff
        {
            return Err(Error::BadChecksum);
        }
        let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (src_port, dst_port) = (be16(field::SRC_PORT), be16(field::DST_PORT));
        if src_port == 0 || dst_port == 0 {
            return Err(Error::Malformed);
        }
        repr.src_port = src_port;
        repr.dst_port = dst_port;
        repr.seq_number = be32(field::SEQ);
        repr.ack_number = be32(field::ACK);
        repr.flags = TcpFlags(h[field::FLAGS]);
        repr.window_len = be16(field::WINDOW);
        repr.urgent_at = be16(field::URGENT);
        repr.options = TcpOptions::default();
        if !options.is_empty() {
            repr.options.parse_into(options)?;
        }
        Ok(hl)
    }

    /// A repr to [`parse_segment`](Self::parse_segment) into.
    pub const EMPTY: TcpRepr = TcpRepr {
        src_port: 0,
        dst_port: 0,
        seq_number: 0,
        ack_number: 0,
        flags: TcpFlags(0),
        window_len: 0,
        urgent_at: 0,
        options: TcpOptions {
            mss: None,
            window_scale: None,
            sack_permitted: false,
            timestamps: None,
            sack_blocks: [None; 3],
        },
    };

    const HEADER: usize = TcpPacket::<&[u8]>::HEADER_LEN;

    /// 20 bytes and the options, padded to a multiple of 4: `emit` pads
    /// each option to whole words with NOPs, so their length is one
    /// already (no rounding per segment: make pathcost).
    pub fn header_len(&self) -> usize {
        let options = self.options.raw_len();
        debug_assert_eq!(options % 4, 0);
        TcpPacket::<&[u8]>::HEADER_LEN + options
    }

    /// Write the header and options; the checksum field is left zero and
    /// the payload untouched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>) {
        self.emit_with_len(packet, self.header_len())
    }

    /// [`TcpRepr::emit`] for a caller that sized the segment by
    /// `header_len()` already (`hl` is that length: make pathcost).
    #[inline]
    pub fn emit_with_len<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        hl: usize,
    ) {
        debug_assert_eq!(hl, self.header_len());
        // The fixed header as one array, written at once (make pathcost:
        // a field at a time was a bounds check each).
        let (sp, dp) = (self.src_port.to_be_bytes(), self.dst_port.to_be_bytes());
        let (seq, ack) = (self.seq_number.to_be_bytes(), self.ack_number.to_be_bytes());
        let (w, u) = (self.window_len.to_be_bytes(), self.urgent_at.to_be_bytes());
        let h: [u8; Self::HEADER] = [
            sp[0],
            sp[1],
            dp[0],
            dp[1],
            seq[0],
            seq[1],
            seq[2],
            seq[3],
            ack[0],
            ack[1],
            ack[2],
            ack[3],
            ((hl / 4) as u8) << 4,
            self.flags.0,
            w[0],
            w[1],
            0,
            0,
            u[0],
            u[1],
        ];
        let b = packet.buffer.as_mut();
        b[..Self::HEADER].copy_from_slice(&h);
        if hl > Self::HEADER {
            self.options.emit(&mut b[Self::HEADER..hl]);
        }
    }
}

/// Where a TCP segment's frame goes, for [`TcpFrameTemplate`]: untagged
/// Ethernet, a 20-byte IPv4 header, not a fragment (DF clear, DSCP zero, as
/// `Ipv4Repr::emit` writes it). The same for every segment to one
/// destination; the ident and the ECN field are each segment's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrameHead {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub hop_limit: u8,
    /// The device fills the IPv4 header checksum: the field is left zero.
    pub ip_cksum_offload: bool,
    /// The device fills the TCP checksum: the field holds the pseudo-header
    /// sum, as DPDK wants.
    pub tcp_cksum_offload: bool,
}

/// Bytes before the TCP header in a frame [`TcpFrameTemplate::emit`] writes:
/// an untagged Ethernet header and an IPv4 header without options.
pub const FRAME_HEAD_LEN: usize = super::ethernet::EthernetFrame::<&[u8]>::HEADER_LEN
    + super::ipv4::Ipv4Packet::<&[u8]>::HEADER_LEN;

/// The Ethernet and IPv4 headers of a [`TcpFrameHead`] written once, with
/// the sums that do not change from one segment to the next: a segment's
/// frame is then a copy of these bytes, its own first IPv4 word pair
/// (ECN, length, ident), the IPv4 checksum from a kept partial sum, the TCP
/// header, and the TCP checksum with the pseudo-header's addresses and
/// protocol already summed (make pathcost: the headers built field by field
/// and both sums taken in full were a fifth of the echo's send).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrameTemplate {
    /// Ethernet and IPv4 headers; the IPv4 header's first 8 bytes and its
    /// checksum are zero (each segment writes them).
    head: [u8; FRAME_HEAD_LEN],
    /// The little-endian sum (`checksum`'s unfolded form) of the IPv4
    /// header's bytes 8..20: TTL, protocol, a zero checksum, addresses.
    ip_rest: u64,
    /// [`checksum::pseudo_header_partial`] of the addresses.
    pseudo: u64,
    ip_cksum_offload: bool,
    tcp_cksum_offload: bool,
}

impl TcpFrameTemplate {
    pub fn new(h: &TcpFrameHead) -> TcpFrameTemplate {
        let mut head = [0u8; FRAME_HEAD_LEN];
        head[..6].copy_from_slice(&h.dst_mac.0);
        head[6..12].copy_from_slice(&h.src_mac.0);
        head[12..14].copy_from_slice(&[0x08, 0x00]);
        head[22] = h.hop_limit;
        head[23] = IpProtocol::Tcp.into();
        head[26..30].copy_from_slice(&h.src_addr.octets());
        head[30..34].copy_from_slice(&h.dst_addr.octets());
        TcpFrameTemplate {
            head,
            ip_rest: checksum::sum_le_unfolded(&head[22..34]),
            pseudo: checksum::pseudo_header_partial(&h.src_addr, &h.dst_addr, IpProtocol::Tcp),
            ip_cksum_offload: h.ip_cksum_offload,
            tcp_cksum_offload: h.tcp_cksum_offload,
        }
    }

    pub fn ip_cksum_offload(&self) -> bool {
        self.ip_cksum_offload
    }

    pub fn tcp_cksum_offload(&self) -> bool {
        self.tcp_cksum_offload
    }

    /// Write the Ethernet, IPv4 and TCP headers of `frame`: it is exactly
    /// [`FRAME_HEAD_LEN`] + `hl` + payload bytes, the payload already in
    /// place after the TCP header, and `hl` is `repr.header_len()`. `ecn`:
    /// the ECN field (its two low bits are sent). The bytes are those of
    /// `EthernetRepr::emit`, `Ipv4Repr::emit` with the ident set and its
    /// checksum filled, `TcpRepr::emit_with_len` and
    /// `TcpPacket::fill_checksum` (a test compares them).
    // Inlined: its one caller then keeps the segment's fields in registers
    // (make pathcost).
    #[inline(always)]
    pub fn emit(&self, frame: &mut [u8], ident: u16, ecn: u8, repr: &TcpRepr, hl: usize) {
        let Some((h, seg)) = frame.split_first_chunk_mut::<FRAME_HEAD_LEN>() else {
            return;
        };
        let tcp_len = seg.len();
        // Version and header length, ECN (DSCP zero), total length, ident,
        // no flags and offset: one word as its bytes read little-endian,
        // written and summed at once.
        let total = u64::from(((20 + tcp_len) as u16).swap_bytes());
        let first =
            0x45 | u64::from(ecn & 0x03) << 8 | total << 16 | u64::from(ident.swap_bytes()) << 32;
        *h = self.head;
        h[14..22].copy_from_slice(&first.to_le_bytes());
        if !self.ip_cksum_offload {
            let sum = checksum::fold_le(self.ip_rest, first);
            h[24..26].copy_from_slice(&(!sum).to_le_bytes());
        }
        let mut packet = TcpPacket::new_unchecked(&mut seg[..]);
        repr.emit_with_len(&mut packet, hl);
        let c = if self.tcp_cksum_offload {
            checksum::pseudo_header_with_partial(self.pseudo, tcp_len as u32)
        } else {
            !checksum::data_with_partial(self.pseudo, seg)
        };
        seg[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// The frame of [`TcpFrameTemplate::emit`] written layer by layer, as
    /// the general send path does (`Net::emit_headers` over
    /// `TcpRepr::emit_with_len` and `TcpPacket::fill_checksum` or the
    /// pseudo-header sum).
    fn layered_frame(
        head: &TcpFrameHead,
        ident: u16,
        ecn: u8,
        repr: &TcpRepr,
        payload: &[u8],
    ) -> Vec<u8> {
        use crate::wire::{EtherType, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr};
        let hl = repr.header_len();
        let tcp_len = hl + payload.len();
        let mut f = vec![0xa5u8; FRAME_HEAD_LEN + tcp_len];
        {
            let seg = &mut f[FRAME_HEAD_LEN..];
            seg[hl..].copy_from_slice(payload);
            let mut p = TcpPacket::new_unchecked(&mut seg[..]);
            repr.emit_with_len(&mut p, hl);
            if head.tcp_cksum_offload {
                p.set_checksum(checksum::pseudo_header(
                    &head.src_addr,
                    &head.dst_addr,
                    IpProtocol::Tcp,
                    tcp_len as u32,
                ));
            } else {
                p.fill_checksum(&head.src_addr, &head.dst_addr);
            }
        }
        EthernetRepr {
            src_addr: head.src_mac,
            dst_addr: EthernetAddress([0; 6]),
            ethertype: EtherType::Ipv4,
            vlan: None,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        let ip = Ipv4Repr {
            src_addr: head.src_addr,
            dst_addr: head.dst_addr,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len,
            hop_limit: head.hop_limit,
            ecn,
        };
        let mut packet = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.emit(&mut packet, false);
        packet.set_ident(ident);
        if head.ip_cksum_offload {
            packet.set_checksum(0);
        } else {
            packet.fill_checksum();
        }
        // The next hop's address, as `dispatch_frame` writes it.
        f[..6].copy_from_slice(&head.dst_mac.0);
        f
    }

    /// xorshift64*: seeded, so a failing case is the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self) -> bool {
            self.next() & 1 == 1
        }
    }

    fn random_repr(rng: &mut Rng) -> (TcpRepr, usize) {
        let mut block = || {
            let l = rng.next() as u32;
            Some((l, l.wrapping_add(rng.below(1 << 20) as u32)))
        };
        let blocks = [block(), block(), block()];
        let n_blocks = rng.below(4) as usize;
        let mut sack_blocks = [None; 3];
        sack_blocks[..n_blocks].copy_from_slice(&blocks[..n_blocks]);
        let options = TcpOptions {
            mss: (rng.below(8) == 0).then(|| rng.next() as u16),
            window_scale: (rng.below(8) == 0).then(|| rng.below(15) as u8),
            sack_permitted: rng.below(8) == 0,
            timestamps: rng.chance().then(|| (rng.next() as u32, rng.next() as u32)),
            sack_blocks,
        };
        let repr = TcpRepr {
            src_port: rng.next() as u16 | 1,
            dst_port: rng.next() as u16 | 1,
            seq_number: rng.next() as u32,
            ack_number: rng.next() as u32,
            flags: TcpFlags(rng.next() as u8),
            window_len: rng.next() as u16,
            urgent_at: if rng.below(4) == 0 {
                rng.next() as u16
            } else {
                0
            },
            options,
        };
        (repr, n_blocks)
    }

    fn random_head(rng: &mut Rng) -> TcpFrameHead {
        let mut mac = || {
            let v = rng.next().to_le_bytes();
            EthernetAddress([v[0], v[1], v[2], v[3], v[4], v[5]])
        };
        let (src_mac, dst_mac) = (mac(), mac());
        let mut addr = || match rng.below(4) {
            // Every bit set: carries out of every add.
            0 => Ipv4Addr::new(255, 255, 255, 255),
            1 => Ipv4Addr::from(rng.next() as u32),
            _ => Ipv4Addr::from(0xc612_0000 | (rng.next() as u32 & 0x1_ffff)),
        };
        let (src_addr, dst_addr) = (addr(), addr());
        TcpFrameHead {
            src_mac,
            dst_mac,
            src_addr,
            dst_addr,
            hop_limit: rng.next() as u8,
            ip_cksum_offload: rng.below(4) == 0,
            tcp_cksum_offload: rng.below(4) == 0,
        }
    }

    #[test]
    fn a_template_writes_the_layered_writers_bytes() {
        // Each head's template writes several segments, as a destination's
        // does: nothing of one segment may stay in it for the next.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut payload = vec![0u8; 1460];
        for (i, b) in payload.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let (mut with_options, mut with_sack, mut empty, mut full) = (0, 0, 0, 0);
        let mut offloads = [0; 2];
        for case in 0..4_000 {
            let head = random_head(&mut rng);
            let template = TcpFrameTemplate::new(&head);
            offloads[0] += usize::from(head.ip_cksum_offload);
            offloads[1] += usize::from(head.tcp_cksum_offload);
            for segment in 0..5 {
                let (repr, n_blocks) = random_repr(&mut rng);
                let len = match rng.below(4) {
                    0 => 0,
                    1 => 1460,
                    _ => rng.below(1461) as usize,
                };
                let (ident, ecn) = (rng.next() as u16, rng.next() as u8);
                let data = &payload[..len];
                let want = layered_frame(&head, ident, ecn, &repr, data);
                let hl = repr.header_len();
                let mut got = vec![0x5au8; want.len()];
                got[FRAME_HEAD_LEN + hl..].copy_from_slice(data);
                template.emit(&mut got, ident, ecn, &repr, hl);
                assert_eq!(
                    got, want,
                    "case {case} segment {segment}: {head:?} {ident} {ecn} {repr:?} len {len}"
                );
                with_options += usize::from(hl > 20);
                with_sack += usize::from(n_blocks > 0);
                empty += usize::from(len == 0);
                full += usize::from(len == 1460);
            }
        }
        // The cases covered what they were drawn to.
        assert!(
            with_options > 10_000 && with_sack > 10_000,
            "{with_options} {with_sack}"
        );
        assert!(empty > 4000 && full > 4000, "{empty} {full}");
        assert!(offloads.iter().all(|&n| n > 800), "{offloads:?}");
    }

    #[test]
    fn a_frame_too_short_for_the_heads_is_left_alone() {
        let mut rng = Rng(7);
        let template = TcpFrameTemplate::new(&random_head(&mut rng));
        let (repr, _) = random_repr(&mut rng);
        let mut frame = [0x33u8; FRAME_HEAD_LEN - 1];
        template.emit(&mut frame, 1, 0, &repr, repr.header_len());
        assert_eq!(frame, [0x33u8; FRAME_HEAD_LEN - 1]);
    }

    /// A Linux SYN: MSS 1460, SACK-permitted, timestamps, NOP, WS 7.
    fn linux_syn() -> Vec<u8> {
        let mut b = vec![
            0x9c, 0x40, // src port 40000
            0x00, 0x50, // dst port 80
            0x12, 0x34, 0x56, 0x78, // seq
            0x00, 0x00, 0x00, 0x00, // ack
            0xa0, 0x02, // data offset 10 (40 bytes), SYN
            0xfa, 0xf0, // window 64240
            0x00, 0x00, // checksum
            0x00, 0x00, // urgent
            0x02, 0x04, 0x05, 0xb4, // MSS 1460
            0x04, 0x02, // SACK permitted
            0x08, 0x0a, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, // TS 1000, 0
            0x01, // NOP
            0x03, 0x03, 0x07, // WS 7
        ];
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
        b
    }

    fn parse(b: &[u8]) -> Result<TcpRepr> {
        let p = TcpPacket::new_checked(b)?;
        TcpRepr::parse(&p, &SRC, &DST, true)
    }

    #[test]
    fn parses_a_linux_syn() {
        let r = parse(&linux_syn()).unwrap();
        assert_eq!((r.src_port, r.dst_port), (40000, 80));
        assert_eq!(r.seq_number, 0x12345678);
        assert_eq!(r.flags, TcpFlags::SYN);
        assert_eq!(r.window_len, 64240);
        assert_eq!(
            r.options,
            TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((1000, 0)),
                sack_blocks: [None; 3],
            }
        );
    }

    #[test]
    fn round_trip_with_payload() {
        let r = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq_number: 1,
            ack_number: 2,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions {
                timestamps: Some((5, 6)),
                sack_blocks: [Some((10, 20)), Some((30, 40)), None],
                ..Default::default()
            },
        };
        assert_eq!(r.header_len(), 32 + 20);
        let mut b = [0xeeu8; 52 + 5];
        b[52..].copy_from_slice(b"hello");
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        r.emit(&mut p);
        p.fill_checksum(&DST, &SRC);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), b"hello");
        assert_eq!(TcpRepr::parse(&p, &DST, &SRC, true).unwrap(), r);
    }

    #[test]
    fn bad_lengths_and_checksums() {
        let syn = linux_syn();
        assert_eq!(parse(&syn[..19]).unwrap_err(), Error::Truncated);
        // Data offset beyond the segment.
        assert_eq!(parse(&syn[..39]).unwrap_err(), Error::Truncated);
        let mut b = syn.clone();
        b[12] = 0x40; // data offset 4
        assert_eq!(parse(&b).unwrap_err(), Error::Malformed);
        let mut b = syn.clone();
        b[17] ^= 1;
        assert_eq!(parse(&b).unwrap_err(), Error::BadChecksum);
        let mut b = syn.clone();
        b[0] = 0;
        b[1] = 0;
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
        assert_eq!(parse(&b).unwrap_err(), Error::Malformed);
    }

    fn with_options(opts: &[u8]) -> Result<TcpRepr> {
        let mut b = vec![0u8; 20 + opts.len()];
        b[..20].copy_from_slice(&linux_syn()[..20]);
        b[12] = (((20 + opts.len()) / 4) << 4) as u8;
        b[20..].copy_from_slice(opts);
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
        parse(&b)
    }

    #[test]
    fn option_lengths() {
        assert_eq!(with_options(&[8, 0, 1, 1]).unwrap_err(), Error::Malformed);
        assert_eq!(with_options(&[8, 1, 1, 1]).unwrap_err(), Error::Malformed);
        assert_eq!(with_options(&[1, 1, 5, 9]).unwrap_err(), Error::Malformed);
        assert_eq!(with_options(&[2, 3, 5, 1]).unwrap_err(), Error::Malformed);
        assert_eq!(with_options(&[1, 1, 1, 2]).unwrap_err(), Error::Malformed);
        // Window scale above 14 is taken as 14.
        let r = with_options(&[1, 3, 3, 15]).unwrap();
        assert_eq!(r.options.window_scale, Some(14));
        // Unknown options are skipped; EOL ends the list.
        let r = with_options(&[30, 4, 0, 0, 2, 4, 1, 0]).unwrap();
        assert_eq!(r.options.mss, Some(256));
        let r = with_options(&[0, 2, 4, 1]).unwrap();
        assert_eq!(r.options.mss, None);
        // SACK blocks: length 2 + 8n.
        let r = with_options(&[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9]).unwrap();
        assert_eq!(r.options.sack_blocks, [Some((1, 9)), None, None]);
        assert_eq!(with_options(&[1, 1, 5, 2]).unwrap_err(), Error::Malformed);
        assert_eq!(
            with_options(&[5, 6, 0, 0, 0, 1, 1, 1]).unwrap_err(),
            Error::Malformed
        );
    }

    /// Found by the wire_tcp fuzz target: a block after an empty slot was
    /// written past the options `header_len` counted (a panic, or a block
    /// in the padding). Only the blocks before the first empty slot go out.
    #[test]
    fn sack_blocks_after_an_empty_slot_are_not_emitted() {
        let mut r = repr_with_sack([Some((1, 9)), None, Some((20, 30))]);
        assert_eq!(r.header_len(), 32);
        let b = emit_tcp(&r);
        r.options.sack_blocks[2] = None;
        assert_eq!(parse(&b).unwrap(), r);
    }

    /// Found by the wire_tcp fuzz target: every option and two SACK
    /// blocks (37 bytes as a peer may pack them) took 44 bytes as emitted,
    /// a data offset of 16 words, written as 0. The blocks that do not fit
    /// are left out: 20 + 24 + 12 bytes.
    #[test]
    fn options_that_do_not_fit_lose_sack_blocks_not_the_header() {
        let mut r = repr_with_sack([Some((1, 9)), Some((20, 30)), None]);
        r.options.mss = Some(1460);
        r.options.window_scale = Some(7);
        r.options.sack_permitted = true;
        r.options.timestamps = Some((5, 6));
        assert_eq!(r.header_len(), 56);
        let b = emit_tcp(&r);
        r.options.sack_blocks[1] = None;
        assert_eq!(parse(&b).unwrap(), r);
    }

    fn repr_with_sack(sack_blocks: [Option<(u32, u32)>; 3]) -> TcpRepr {
        TcpRepr {
            src_port: 7,
            dst_port: 40000,
            seq_number: 1,
            ack_number: 2,
            flags: TcpFlags::ACK,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions {
                sack_blocks,
                ..TcpOptions::default()
            },
        }
    }

    fn emit_tcp(r: &TcpRepr) -> Vec<u8> {
        let mut b = vec![0u8; r.header_len()];
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        r.emit(&mut p);
        p.fill_checksum(&SRC, &DST);
        b
    }

    #[test]
    fn parse_segment_is_new_checked_then_parse() {
        // Segments built valid (options of every kind, payloads, a
        // checksum right or not), then cut or bytes changed, with both
        // checksum settings: parse_segment gives exactly what new_checked
        // and parse give (the same repr, payload offset and error).
        let mut next = crate::wire::xorshift(0x2545_f491_4f6c_dd1d);
        let mut kinds = [0usize; 4];
        for _ in 0..40_000 {
            let r = next();
            let opts = TcpOptions {
                mss: (r & 1 != 0).then_some((r >> 8) as u16),
                window_scale: (r & 2 != 0).then_some((r >> 16) as u8 % 15),
                sack_permitted: r & 4 != 0,
                timestamps: (r & 8 != 0).then_some(((r >> 20) as u32, (r >> 3) as u32)),
                sack_blocks: if r & 16 != 0 {
                    [Some((1, 2)), (r & 32 != 0).then_some((3, 4)), None]
                } else {
                    [None; 3]
                },
            };
            let repr = TcpRepr {
                src_port: (r >> 24) as u16 % 3,
                dst_port: (r >> 40) as u16 % 3,
                seq_number: (r >> 7) as u32,
                ack_number: (r >> 11) as u32,
                flags: TcpFlags((r >> 33) as u8),
                window_len: (r >> 41) as u16,
                urgent_at: (r >> 49) as u16,
                options: if r & 64 != 0 {
                    opts
                } else {
                    TcpOptions::default()
                },
            };
            let mut b = emit_tcp(&repr);
            b.extend((0..(r >> 56) % 24).map(|i| i as u8));
            if r & 128 == 0 {
                let s = next();
                let i = (s % b.len() as u64) as usize;
                b[i] = (s >> 32) as u8;
            } else if r & 256 == 0 {
                TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
            }
            let s = next();
            let cut = if s & 1 == 0 {
                b.len()
            } else {
                (s >> 8) as usize % (b.len() + 1)
            };
            let b = &b[..cut];
            for verify in [true, false] {
                let general = TcpPacket::new_checked(b).and_then(|p| {
                    let repr = TcpRepr::parse(&p, &SRC, &DST, verify)?;
                    Ok((repr, b.len() - p.payload().len()))
                });
                let mut repr = TcpRepr::EMPTY;
                let one =
                    TcpRepr::parse_segment(b, &SRC, &DST, verify, &mut repr).map(|hl| (repr, hl));
                assert_eq!(one, general, "{b:02x?}");
                kinds[match general {
                    Ok(_) => 0,
                    Err(Error::Truncated) => 1,
                    Err(Error::BadChecksum) => 2,
                    Err(_) => 3,
                }] += 1;
            }
        }
        assert!(kinds.iter().all(|&n| n > 2000), "{kinds:?}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = TcpPacket::new_checked(&b[..]) {
                let _ = TcpRepr::parse(&p, &SRC, &DST, false);
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src in 1u16.., dst in 1u16.., seq: u32, ack: u32, flags: u8, win: u16,
            mss: Option<u16>, ws in proptest::option::of(0u8..=14), sack: bool,
            ts: Option<(u32, u32)>, payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let r = TcpRepr {
                src_port: src, dst_port: dst, seq_number: seq, ack_number: ack,
                flags: TcpFlags(flags), window_len: win, urgent_at: 0,
                options: TcpOptions { mss, window_scale: ws, sack_permitted: sack, timestamps: ts,
                    sack_blocks: [None; 3] },
            };
            let hl = r.header_len();
            let mut b = vec![0u8; hl + payload.len()];
            b[hl..].copy_from_slice(&payload);
            let mut p = TcpPacket::new_unchecked(&mut b[..]);
            r.emit(&mut p);
            p.fill_checksum(&SRC, &DST);
            let p = TcpPacket::new_checked(&b[..]).unwrap();
            prop_assert_eq!(TcpRepr::parse(&p, &SRC, &DST, true).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
