//! The internet checksum (RFC 1071). `data` and `pseudo_header` return the
//! folded one's complement sum, not complemented; a header's checksum field
//! holds `!combine(&[...])`, and a header verifies when the sum over it,
//! checksum field included, is 0xffff.

use super::IpProtocol;
use std::net::Ipv4Addr;

/// Fold a 64-bit accumulator to 16 bits with end-around carry.
#[inline]
fn fold(sum: u64) -> u16 {
    // Two halvings, each adding its carry out back in (an add and an adc):
    // a nonzero sum stays nonzero, so the result is the loop's (0xffff,
    // never 0, for -0).
    let (s, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + u32::from(carry);
    let (s, carry) = (s as u16).overflowing_add((s >> 16) as u16);
    s + u16::from(carry)
}

/// One's complement sum of `bytes` (big-endian 16-bit words; an odd last
/// byte is padded with zero).
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    fold(sum_le(bytes)).swap_bytes()
}

/// [`data`] always inlined, for the receive fast path's one call (make
/// pathcost: as a call, with the caller's registers saved and reloaded
/// around it, it cost an ICMP echo a dozen instructions more).
#[inline(always)]
pub fn data_inlined(bytes: &[u8]) -> u16 {
    fold(sum_le_inlined(bytes)).swap_bytes()
}

/// `acc + v` with the carry out added back in (end-around carry): the one's
/// complement sum modulo 2^64 - 1, a multiple of 0xffff, so folding it
/// gives the 16-bit sum. Never 0 unless both are 0, as the 16-bit sum.
#[inline(always)]
fn add_carry(acc: u64, v: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(v);
    s + u64::from(carry)
}

/// The one's complement sum of `bytes` read as little-endian words, not
/// folded: folded and byte-swapped it is the big-endian sum (RFC 1071
/// 2(B), byte order independence), without a byte swap per word (make
/// pathcost: a short datagram's checksum was mostly its loads' swaps and
/// the adds of split 32-bit halves). Each byte keeps the parity of its
/// offset, which is all the sum sees: the chunks below all start at an
/// even offset, and a last odd byte is the low byte of its word.
#[inline]
fn sum_le(bytes: &[u8]) -> u64 {
    sum_le_inlined(bytes)
}

/// [`sum_le`], always inlined.
#[inline(always)]
fn sum_le_inlined(mut bytes: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    while let Some((c, rest)) = bytes.split_first_chunk::<16>() {
        let (a, b) = c.split_at(8);
        let a = u64::from_le_bytes(a.try_into().unwrap_or_default());
        let b = u64::from_le_bytes(b.try_into().unwrap_or_default());
        acc = add_carry(add_carry(acc, a), b);
        bytes = rest;
    }
    if let Some((c, rest)) = bytes.split_first_chunk::<8>() {
        acc = add_carry(acc, u64::from_le_bytes(*c));
        bytes = rest;
    }
    if let Some((c, rest)) = bytes.split_first_chunk::<4>() {
        acc = add_carry(acc, u64::from(u32::from_le_bytes(*c)));
        bytes = rest;
    }
    if let Some((c, rest)) = bytes.split_first_chunk::<2>() {
        acc = add_carry(acc, u64::from(u16::from_le_bytes(*c)));
        bytes = rest;
    }
    if let [a] = *bytes {
        acc = add_carry(acc, u64::from(a));
    }
    acc
}

/// [`sum_le_inlined`] 32 bytes a turn, counted down by `chunks_exact`,
/// for the send path (make pathcost: the loop over 16-byte chunks split off
/// one at a time spends six instructions a turn on its slice for four on
/// the sum; this one three for eight). Not for the receive path: there the
/// larger loop left other calls out of line.
#[inline(always)]
fn sum_le_wide(bytes: &[u8]) -> u64 {
    let word = |c: &[u8], i: usize| u64::from_le_bytes(c[i..i + 8].try_into().unwrap_or_default());
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(32);
    for c in &mut chunks {
        acc = add_carry(add_carry(acc, word(c, 0)), word(c, 8));
        acc = add_carry(add_carry(acc, word(c, 16)), word(c, 24));
    }
    add_carry(acc, sum_le_inlined(chunks.remainder()))
}

/// The sum of a 20-byte header without options, folded: the IPv4 header
/// of nearly every datagram, summed without the general loop (inlined: a
/// call and the caller's registers saved around it cost about as much as
/// the sum).
#[inline(always)]
pub fn header20(h: &[u8; 20]) -> u16 {
    let (a, rest) = h.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    let (b, c) = rest.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    let c = c.first_chunk::<4>().copied().unwrap_or_default();
    let acc = add_carry(
        add_carry(u64::from_le_bytes(*a), u64::from_le_bytes(*b)),
        u64::from(u32::from_le_bytes(c)),
    );
    fold(acc).swap_bytes()
}

/// RFC 1624 incremental update of a one's complement checksum when one
/// 16-bit word changes from `old` to `new`: HC' = ~(~HC + ~m + m') (eqn. 3,
/// which never yields the -0 that eqn. 2 can).
#[inline]
pub fn adjust(checksum: u16, old: u16, new: u16) -> u16 {
    // At most 3 * 0xffff: two folds take it under 0x10000.
    let sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    let sum = (sum & 0xffff) + (sum >> 16);
    !((sum & 0xffff) + (sum >> 16)) as u16
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
    data_with_pseudo_header_inlined(src, dst, protocol, bytes)
}

/// [`data_with_pseudo_header`] always inlined, for the receive fast path's
/// one call (as [`data_inlined`]; the protocol is then a constant).
#[inline(always)]
pub fn data_with_pseudo_header_inlined(
    src: &Ipv4Addr,
    dst: &Ipv4Addr,
    protocol: IpProtocol,
    bytes: &[u8],
) -> u16 {
    let proto: u8 = protocol.into();
    // The little-endian sum byte-swapped as a whole is the big-endian one
    // (each byte's offset changes parity), to which the pseudo-header's
    // words add: one fold.
    let pseudo = u64::from(u32::from(*src))
        + u64::from(u32::from(*dst))
        + u64::from(proto)
        + bytes.len() as u64;
    fold(add_carry(sum_le_inlined(bytes).swap_bytes(), pseudo))
}

/// The pseudo-header's addresses and protocol summed (RFC 768, RFC 9293
/// 3.1), the length left out: what a sender to one destination sums once
/// and keeps. Unfolded, for [`data_with_partial`] and
/// [`pseudo_header_with_partial`].
#[inline(always)]
pub fn pseudo_header_partial(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: IpProtocol) -> u64 {
    let proto: u8 = protocol.into();
    // Each address as one 32-bit number: its two words, the high one
    // 2^16 = 1 (mod 0xffff) times over.
    u64::from(u32::from(*src)) + u64::from(u32::from(*dst)) + u64::from(proto)
}

/// [`data_with_pseudo_header`] given [`pseudo_header_partial`]'s sum.
#[inline(always)]
pub fn data_with_partial(partial: u64, bytes: &[u8]) -> u16 {
    // The little-endian sum byte-swapped as a whole is the big-endian one
    // (each byte's offset changes parity), to which the pseudo-header's
    // words add: one fold.
    fold(add_carry(
        sum_le_wide(bytes).swap_bytes(),
        partial + bytes.len() as u64,
    ))
}

/// [`pseudo_header`] given [`pseudo_header_partial`]'s sum.
#[inline(always)]
pub fn pseudo_header_with_partial(partial: u64, length: u32) -> u16 {
    fold(partial + u64::from(length))
}

/// The one's complement sum of `bytes`, unfolded, in the little-endian
/// form: [`fold_le`] finishes it. For a sender that keeps the sum of the
/// bytes that do not change.
pub fn sum_le_unfolded(bytes: &[u8]) -> u64 {
    sum_le(bytes)
}

/// Fold two sums of [`sum_le_unfolded`]'s form (or 8 bytes read as a
/// little-endian u64) into the 16-bit sum, in little-endian order: its
/// complement's little-endian bytes are the checksum field's.
#[inline(always)]
pub fn fold_le(a: u64, b: u64) -> u16 {
    fold(add_carry(a, b))
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
    fn data_with_pseudo_header_at_every_alignment_and_carry() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 91 + 7) as u8).collect();
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 200, 1));
        for start in 0..9 {
            for end in start..bytes.len() {
                for p in [IpProtocol::Udp, IpProtocol::Tcp] {
                    let b = &bytes[start..end];
                    assert_eq!(
                        data_with_pseudo_header(&s, &d, p, b),
                        combine(&[pseudo_header(&s, &d, p, b.len() as u32), data(b)])
                    );
                }
            }
        }
        // Carries out of every 64-bit add, and a length past 16 bits.
        let ones = vec![0xffu8; 70_000];
        let top = Ipv4Addr::new(255, 255, 255, 255);
        for len in [0, 1, 7, 8, 9, 64, 65_535, 65_536, 70_000] {
            let b = &ones[..len];
            assert_eq!(
                data_with_pseudo_header(&top, &top, IpProtocol::Tcp, b),
                combine(&[
                    pseudo_header(&top, &top, IpProtocol::Tcp, len as u32),
                    data(b)
                ]),
                "{len}"
            );
        }
    }

    #[test]
    fn partial_sums_are_the_full_ones() {
        // The send path's sums (the wide loop, the kept pseudo-header
        // partial, the IPv4 header as a kept sum and a word) against the
        // full ones, at every length and alignment and with carries out of
        // every add.
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 91 + 7) as u8).collect();
        let ones = vec![0xffu8; 70_000];
        let top = Ipv4Addr::new(255, 255, 255, 255);
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 200, 1));
        for (src, dst) in [(s, d), (top, top), (d, top)] {
            for p in [IpProtocol::Udp, IpProtocol::Tcp] {
                let partial = pseudo_header_partial(&src, &dst, p);
                for start in 0..9 {
                    for end in start..bytes.len() {
                        let b = &bytes[start..end];
                        assert_eq!(
                            data_with_partial(partial, b),
                            data_with_pseudo_header(&src, &dst, p, b)
                        );
                    }
                }
                for len in [0, 1, 31, 32, 33, 64, 65_535, 65_536, 70_000] {
                    let b = &ones[..len];
                    assert_eq!(
                        data_with_partial(partial, b),
                        combine(&[pseudo_header(&src, &dst, p, len as u32), data(b)]),
                        "{len}"
                    );
                    assert_eq!(
                        pseudo_header_with_partial(partial, len as u32),
                        pseudo_header(&src, &dst, p, len as u32),
                        "{len}"
                    );
                }
            }
        }
        for start in 0..bytes.len() - 20 {
            let h: &[u8; 20] = bytes[start..start + 20].try_into().unwrap();
            let first = u64::from_le_bytes(h[..8].try_into().unwrap());
            let le = fold_le(sum_le_unfolded(&h[8..]), first);
            assert_eq!(le.swap_bytes(), header20(h));
        }
        assert_eq!(fold_le(sum_le_unfolded(&[0xff; 12]), u64::MAX), 0xffff);
    }

    proptest::proptest! {
        #[test]
        fn data_with_pseudo_header_matches_on_random_data(
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            s: u32,
            d: u32,
        ) {
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            proptest::prop_assert_eq!(
                data_with_pseudo_header(&s, &d, IpProtocol::Tcp, &b),
                combine(&[pseudo_header(&s, &d, IpProtocol::Tcp, b.len() as u32), data(&b)])
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
