//! Wire formats: zero-copy views over bytes (`*Packet`, `*Frame`) and parsed
//! headers (`*Repr`), in the manner of smoltcp. Pure Rust, no DPDK, no
//! allocation; nothing here panics on any input.
//!
//! Receive: `new_checked` (lengths) then `Repr::parse` (meaning, checksums).
//! Send: `new_unchecked` over a buffer of `buffer_len()` bytes, then `emit`.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

/// Seeded random words for the tests (xorshift64): the wire tests cannot
/// reach `fuzzing::pair::Prng`, which sits above them.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr, VlanTag};
pub use icmp::{Icmpv4DstUnreachable, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded};
pub use ipv4::{IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr};
pub use tcp::{TcpFlags, TcpOptions, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

use std::fmt;

/// Why bytes did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header or a length field says.
    Truncated,
    /// A field holds an impossible value.
    Malformed,
    /// A checksum does not verify.
    BadChecksum,
    /// Well formed but not handled.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::BadChecksum => "bad checksum",
            Error::Unsupported => "unsupported",
        })
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// A byte range of a header.
pub(crate) type Field = core::ops::Range<usize>;

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn set_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
