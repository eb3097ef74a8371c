//! The internet checksum (RFC 1071). `data` and `pseudo_header` return the
//! folded one's complement sum, not complemented; a header's checksum field
//! holds `!combine(&[...])`, and a header verifies when the sum over it,
//! checksum field included, is 0xffff.

use super::IpProtocol;
use std::net::Ipv4Addr;

/// Fold a 64-bit accumulator to 16 bits with end-around carry.
#[inline]
fn fold(sum: u64) -> u16 {
    // Four steps take any u64 below 0x10000 without a loop: under 2^33,
    // then 2^17 + 2^16, then 0x10002, then 0x10000. A nonzero sum stays
    // nonzero, so the result is the loop's (0xffff, never 0, for -0).
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    ((sum & 0xffff) + (sum >> 16)) as u16
}

/// One's complement sum of `bytes` (big-endian 16-bit words; an odd last
/// byte is padded with zero).
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    fold(sum32(bytes))
}

/// The sum of `bytes` as big-endian 32-bit words (a short tail padded with
/// zero), not folded. Summing 32-bit words gives the 16-bit one's complement
/// sum once folded, since 2^16 is 1 modulo 0xffff; a 64-bit accumulator
/// takes 2^31 such words before it could overflow, far more than a datagram.
#[inline]
fn sum32(mut bytes: &[u8]) -> u64 {
    // Fixed-size chunks split off the front: no division for the count,
    // and no bounds check per word (make pathcost: a short datagram's
    // checksum was mostly the loop's setup).
    let mut acc: u64 = 0;
    while let Some((c, rest)) = bytes.split_first_chunk::<16>() {
        let a = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let b = u64::from_be_bytes([c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]]);
        acc += (a >> 32) + (a & 0xffff_ffff) + (b >> 32) + (b & 0xffff_ffff);
        bytes = rest;
    }
    if let Some((c, rest)) = bytes.split_first_chunk::<8>() {
        let w = u64::from_be_bytes(*c);
        acc += (w >> 32) + (w & 0xffff_ffff);
        bytes = rest;
    }
    if let Some((c, rest)) = bytes.split_first_chunk::<4>() {
        acc += u64::from(u32::from_be_bytes(*c));
        bytes = rest;
    }
    match *bytes {
        [a] => acc += u64::from(a) << 24,
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])) << 16,
        [a, b, c] => acc += (u64::from(u16::from_be_bytes([a, b])) << 16) | (u64::from(c) << 8),
        _ => {}
    }
    acc
}

/// The sum of a 20-byte header without options, folded: the IPv4 header
/// of nearly every datagram, summed without the general loop.
#[inline]
pub fn header20(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    fold(w(0) + w(4) + w(8) + w(12) + w(16))
}

/// RFC 1624 incremental update of a one's complement checksum when one
/// 16-bit word changes from `old` to `new`: HC' = ~(~HC + ~m + m') (eqn. 3,
/// which never yields the -0 that eqn. 2 can).
#[inline]
pub fn adjust(checksum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// RFC 1624 eqn. 3 over several changed words at once: `delta` sums, for
/// each word, the complement of its old value and its new value (16- or
/// 32-bit words alike, as in `data`). One fold instead of one per word, and
/// the same result as adjusting word by word: both are the nonzero
/// representative of the same sum modulo 0xffff.
#[inline]
pub fn adjust_by(checksum: u16, delta: u64) -> u16 {
    !fold(u64::from(!checksum) + delta)
}

/// The sum of `bytes` and the IPv4 pseudo-header over their length (TCP
/// and UDP, RFC 768, RFC 9293), folded once: `combine` of `pseudo_header`
/// and `data`, without folding each.
#[inline]
pub fn data_with_pseudo_header(
    src: &Ipv4Addr,
    dst: &Ipv4Addr,
    protocol: IpProtocol,
    bytes: &[u8],
) -> u16 {
    let proto: u8 = protocol.into();
    fold(
        sum32(bytes)
            + u64::from(u32::from(*src))
            + u64::from(u32::from(*dst))
            + u64::from(proto)
            + bytes.len() as u64,
    )
}

/// Combine partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The IPv4 pseudo-header sum for TCP and UDP (RFC 768, RFC 9293).
pub fn pseudo_header(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let proto: u8 = protocol.into();
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(proto),
        (length >> 16) as u16,
        length as u16,
    ];
    combine(&words)
}

/// [`data_with_pseudo_header`] by 64-bit words: the same sum, taken on
/// little-endian words with end-around carry and byte-swapped once at the
/// end (RFC 1071 2(B): the sum is byte-order independent; and 2^64 - 1 is
/// a multiple of 0xffff, so the 64-bit one's complement sum folds to the
/// 16-bit one). Half the instructions of the 32-bit walk per word (make
/// pathcost: a TCP segment is summed on the way in and on the way out).
#[inline]
pub fn data_with_pseudo_header_wide(
    src: &Ipv4Addr,
    dst: &Ipv4Addr,
    protocol: IpProtocol,
    bytes: &[u8],
) -> u16 {
    #[inline(always)]
    fn add(acc: u64, w: u64) -> u64 {
        let (s, carry) = acc.overflowing_add(w);
        s + u64::from(carry)
    }
    let proto: u8 = protocol.into();
    let len = bytes.len() as u32;
    // The pseudo-header's words as they sit in memory (network order),
    // read little-endian like the data; far below 2^64, so plain adds.
    let mut acc = u64::from(u32::from_le_bytes(src.octets()))
        + u64::from(u32::from_le_bytes(dst.octets()))
        + (u64::from(proto) << 8)
        + u64::from(((len >> 16) as u16).swap_bytes())
        + u64::from((len as u16).swap_bytes());
    let mut b = bytes;
    while let Some((c, rest)) = b.split_first_chunk::<16>() {
        let (x, y) = c.split_at(8);
        let x = u64::from_le_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
        let y = u64::from_le_bytes([y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7]]);
        acc = add(add(acc, x), y);
        b = rest;
    }
    if let Some((c, rest)) = b.split_first_chunk::<8>() {
        acc = add(acc, u64::from_le_bytes(*c));
        b = rest;
    }
    // Every piece starts at an even offset: its first byte is the high
    // byte of a big-endian word, the low byte of a little-endian one.
    if let Some((c, rest)) = b.split_first_chunk::<4>() {
        acc = add(acc, u64::from(u32::from_le_bytes(*c)));
        b = rest;
    }
    if let Some((c, rest)) = b.split_first_chunk::<2>() {
        acc = add(acc, u64::from(u16::from_le_bytes(*c)));
        b = rest;
    }
    if let [x] = *b {
        acc = add(acc, u64::from(x));
    }
    // The protocol makes the sum nonzero: fold gives 1..=0xffff, and the
    // swap keeps that range (the big-endian sum's representative).
    fold(acc).swap_bytes()
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
        for start in 0..bytes.len() - 20 {
            let h: &[u8; 20] = bytes[start..start + 20].try_into().unwrap();
            assert_eq!(header20(h), naive(h));
        }
    }

    #[test]
    fn fold_matches_the_loop() {
        let looped = |mut s: u64| {
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for edge in [0, 1, 0xffff, 0x10000, 0x1_0000_ffff, u64::MAX, u64::MAX - 1] {
            assert_eq!(fold(edge), looped(edge), "{edge:#x}");
        }
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for s in [x, x >> 20, x >> 40, x >> 48] {
                assert_eq!(fold(s), looped(s), "{s:#x}");
            }
        }
    }

    #[test]
    fn data_with_pseudo_header_is_combine_of_both() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 91 + 7) as u8).collect();
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 200, 1));
        for len in 0..bytes.len() {
            for p in [IpProtocol::Udp, IpProtocol::Tcp] {
                let b = &bytes[..len];
                assert_eq!(
                    data_with_pseudo_header(&s, &d, p, b),
                    combine(&[pseudo_header(&s, &d, p, len as u32), data(b)])
                );
            }
        }
    }

    #[test]
    fn wide_sum_is_data_with_pseudo_header() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 91 + 7) as u8).collect();
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 200, 1));
        for start in 0..9 {
            for end in start..bytes.len() {
                for p in [IpProtocol::Udp, IpProtocol::Tcp] {
                    let b = &bytes[start..end];
                    assert_eq!(
                        data_with_pseudo_header_wide(&s, &d, p, b),
                        data_with_pseudo_header(&s, &d, p, b)
                    );
                }
            }
        }
        // Carries out of every 64-bit add, and a length past 16 bits.
        let ones = vec![0xffu8; 70_000];
        let top = Ipv4Addr::new(255, 255, 255, 255);
        for len in [0, 1, 7, 8, 9, 64, 65_535, 65_536, 70_000] {
            assert_eq!(
                data_with_pseudo_header_wide(&top, &top, IpProtocol::Tcp, &ones[..len]),
                data_with_pseudo_header(&top, &top, IpProtocol::Tcp, &ones[..len]),
                "{len}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn wide_sum_matches_on_random_data(
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            s: u32,
            d: u32,
        ) {
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            proptest::prop_assert_eq!(
                data_with_pseudo_header_wide(&s, &d, IpProtocol::Tcp, &b),
                data_with_pseudo_header(&s, &d, IpProtocol::Tcp, &b)
            );
        }
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
