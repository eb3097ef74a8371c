//! The internet checksum (RFC 1071). `data` and `pseudo_header` return the
//! folded one's complement sum, not complemented; a header's checksum field
//! holds `!combine(&[...])`, and a header verifies when the sum over it,
//! checksum field included, is 0xffff.

use super::IpProtocol;
use std::net::Ipv4Addr;

/// Fold a 64-bit accumulator to 16 bits with end-around carry.
#[inline]
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One's complement sum of `bytes` (big-endian 16-bit words; an odd last
/// byte is padded with zero).
///
/// RFC 1071 2(B): the sum does not depend on byte order, and it can be
/// taken over wider words with end-around carry. So native-endian 64-bit
/// words are added with carry, folded to 16 bits, and byte-swapped into
/// network order at the end (a no-op on big-endian machines).
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut add = |w: u64| {
        let (s, carry) = acc.overflowing_add(w);
        acc = s + u64::from(carry);
    };
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        add(u64::from_ne_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Zero padding: an odd last byte is the high half of its word.
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        add(u64::from_ne_bytes(w));
    }
    let mut sum = (acc & 0xffff_ffff) + (acc >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    u16::from_be(fold(sum))
}

/// Combine partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The IPv4 pseudo-header sum for TCP and UDP (RFC 768, RFC 9293): the
/// addresses as 32-bit words (their fold is the sum of their halves).
#[inline]
pub fn pseudo_header(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    let proto: u8 = protocol.into();
    let sum = u64::from(u32::from(*src))
        + u64::from(u32::from(*dst))
        + u64::from(proto)
        + u64::from(length);
    fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(bytes: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for (i, b) in bytes.iter().enumerate() {
            s += if i % 2 == 0 {
                u32::from(*b) << 8
            } else {
                u32::from(*b)
            };
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn fast_sum_matches_naive_for_every_length_and_alignment() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for start in 0..9 {
            for end in start..bytes.len() {
                assert_eq!(data(&bytes[start..end]), naive(&bytes[start..end]));
            }
        }
        assert_eq!(data(&[0xff; 4096]), 0xffff);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn pseudo_header_sum() {
        let s = pseudo_header(
            &Ipv4Addr::new(198, 18, 0, 2),
            &Ipv4Addr::new(198, 18, 0, 1),
            IpProtocol::Udp,
            13,
        );
        // 0xc612 + 0x0002 + 0xc612 + 0x0001 + 0x0011 + 0x000d
        assert_eq!(
            s,
            combine(&[0xc612, 0x0002, 0xc612, 0x0001, 0x0011, 0x000d])
        );
    }
}
