//! Receive-side scaling, computed the way NICs do it: the Toeplitz hash over
//! a flow's addresses and ports with a secret key, looked up in an
//! indirection table (RETA) to pick the RX queue.
//!
//! dpstack uses it to predict which queue (and so which core) a flow lands
//! on: for connections it opens itself it picks a local port whose *reply*
//! hashes back to the opening core (Seastar's approach), with the key and
//! table read back from the device. Devices that do not expose RSS
//! (af_packet, tap) get [`software_queue`] instead, and the stack hands a
//! misplaced packet to its owner.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::RangeInclusive;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RssError {
    /// Keys are 40 bytes (most NICs) or 52 (some, e.g. i40e).
    KeyLength(usize),
    /// An indirection table must not be empty.
    EmptyTable,
    /// At least one queue is needed.
    NoQueues,
}

impl fmt::Display for RssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RssError::KeyLength(n) => write!(f, "RSS key of {n} bytes: 40 or 52 expected"),
            RssError::EmptyTable => f.write_str("empty RSS indirection table"),
            RssError::NoQueues => f.write_str("no RX queues"),
        }
    }
}

impl std::error::Error for RssError {}

/// A Toeplitz key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToeplitzKey {
    bytes: [u8; 52],
    len: usize,
}

impl ToeplitzKey {
    /// The Microsoft/Intel default key, used by most drivers.
    pub const MICROSOFT: ToeplitzKey = ToeplitzKey::from_40([
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ]);

    /// 0x6d5a repeated: hash(a, b) == hash(b, a), so both directions of a
    /// flow land on one queue.
    pub const SYMMETRIC: ToeplitzKey = ToeplitzKey::from_40([
        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
        0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    ]);

    const fn from_40(k: [u8; 40]) -> ToeplitzKey {
        let mut bytes = [0u8; 52];
        let mut i = 0;
        while i < 40 {
            bytes[i] = k[i];
            i += 1;
        }
        ToeplitzKey { bytes, len: 40 }
    }

    pub fn new(key: &[u8]) -> Result<ToeplitzKey, RssError> {
        if key.len() != 40 && key.len() != 52 {
            return Err(RssError::KeyLength(key.len()));
        }
        let mut bytes = [0u8; 52];
        bytes[..key.len()].copy_from_slice(key);
        Ok(ToeplitzKey {
            bytes,
            len: key.len(),
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The 32 key bits starting at bit `bit` (0 = the key's first, MSB).
    fn window(&self, bit: usize) -> u32 {
        let mut w = 0u32;
        for i in 0..32 {
            let b = bit + i;
            let set = b < self.len * 8 && self.bytes[b / 8] & (0x80 >> (b % 8)) != 0;
            w = (w << 1) | u32::from(set);
        }
        w
    }
}

/// The Toeplitz hash, bit by bit, as the Microsoft specification states it:
/// for every set bit of the input, XOR in the 32-bit key window at that bit.
pub fn toeplitz_hash(key: &ToeplitzKey, input: &[u8]) -> u32 {
    let mut h = 0u32;
    for (i, byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                h ^= key.window(i * 8 + bit);
            }
        }
    }
    h
}

/// The Toeplitz hash with per-byte lookup tables: one XOR per input byte.
/// Inputs up to (key length - 4) bytes (36 for a 40-byte key).
#[derive(Clone, Debug)]
pub struct Toeplitz {
    tables: Vec<[u32; 256]>,
}

impl Toeplitz {
    pub fn new(key: &ToeplitzKey) -> Toeplitz {
        let n = key.len - 4;
        let tables = (0..n)
            .map(|pos| {
                let mut t = [0u32; 256];
                for (v, slot) in t.iter_mut().enumerate() {
                    let mut h = 0u32;
                    for bit in 0..8 {
                        if v & (0x80 >> bit) != 0 {
                            h ^= key.window(pos * 8 + bit);
                        }
                    }
                    *slot = h;
                }
                t
            })
            .collect();
        Toeplitz { tables }
    }

    /// Bytes beyond the tables' reach contribute nothing (as on a NIC whose
    /// key is too short for the input).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(&self.tables)
            .fold(0, |h, (b, t)| h ^ t[usize::from(*b)])
    }

    /// The 2-tuple hash of a received packet.
    pub fn hash_ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let mut input = [0u8; 8];
        input[..4].copy_from_slice(&src.octets());
        input[4..].copy_from_slice(&dst.octets());
        self.hash(&input)
    }

    /// The 4-tuple hash of a received TCP or UDP packet: source address,
    /// destination address, source port, destination port.
    pub fn hash_ipv4_l4(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
        let mut input = [0u8; 12];
        input[..4].copy_from_slice(&src.octets());
        input[4..8].copy_from_slice(&dst.octets());
        input[8..10].copy_from_slice(&sport.to_be_bytes());
        input[10..].copy_from_slice(&dport.to_be_bytes());
        self.hash(&input)
    }
}

/// The redirection table: hash -> queue, indexed by the hash's low bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetaTable {
    entries: Vec<u16>,
}

impl RetaTable {
    /// Round robin over `nb_queues`, as DPDK drivers set it by default.
    pub fn uniform(size: usize, nb_queues: u16) -> Result<RetaTable, RssError> {
        if size == 0 {
            return Err(RssError::EmptyTable);
        }
        if nb_queues == 0 {
            return Err(RssError::NoQueues);
        }
        Ok(RetaTable {
            entries: (0..size)
                .map(|i| (i % usize::from(nb_queues)) as u16)
                .collect(),
        })
    }

    /// A table read back from a device.
    pub fn from_entries(entries: Vec<u16>) -> Result<RetaTable, RssError> {
        if entries.is_empty() {
            return Err(RssError::EmptyTable);
        }
        Ok(RetaTable { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline]
    pub fn queue_for_hash(&self, hash: u32) -> u16 {
        self.entries[hash as usize % self.entries.len()]
    }
}

/// Which queue a packet lands on, as the NIC will decide.
#[derive(Clone, Debug)]
pub struct QueuePredictor {
    toeplitz: Toeplitz,
    reta: RetaTable,
    /// Whether the device hashes TCP and UDP on ports too (the 4-tuple), or
    /// on addresses only.
    tcp_ports: bool,
    udp_ports: bool,
}

/// The transport whose hash is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp,
    Udp,
}

impl QueuePredictor {
    /// A device hashing TCP and UDP on the 4-tuple (the usual setting).
    pub fn new(key: &ToeplitzKey, reta: RetaTable) -> QueuePredictor {
        QueuePredictor {
            toeplitz: Toeplitz::new(key),
            reta,
            tcp_ports: true,
            udp_ports: true,
        }
    }

    /// Say which transports the device hashes with their ports (as its
    /// `RTE_ETH_RSS_NONFRAG_IPV4_TCP` / `_UDP` hash types say).
    pub fn with_ports(mut self, tcp: bool, udp: bool) -> QueuePredictor {
        self.tcp_ports = tcp;
        self.udp_ports = udp;
        self
    }

    /// Whether the port of `l4` takes part in the hash: if not, no choice
    /// of local port changes where a reply lands.
    pub fn hashes_ports(&self, l4: L4) -> bool {
        match l4 {
            L4::Tcp => self.tcp_ports,
            L4::Udp => self.udp_ports,
        }
    }

    /// Where a `l4` packet lands, as the device hashes it.
    pub fn queue_for(&self, l4: L4, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u16 {
        if self.hashes_ports(l4) {
            self.queue_for_ipv4_l4(src, dst, sport, dport)
        } else {
            self.queue_for_ipv4(src, dst)
        }
    }

    pub fn queue_for_ipv4_l4(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u16 {
        self.reta
            .queue_for_hash(self.toeplitz.hash_ipv4_l4(src, dst, sport, dport))
    }

    pub fn queue_for_ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        self.reta.queue_for_hash(self.toeplitz.hash_ipv4(src, dst))
    }

    /// A local `l4` port for a connection to `remote` whose replies
    /// (src = remote, dst = local) land on `wanted_queue`: searched in
    /// `range` from `start`, wrapping, skipping ports `is_free` refuses.
    #[allow(clippy::too_many_arguments)] // one flow's parts, and the search's
    pub fn pick_local_port(
        &self,
        l4: L4,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        wanted_queue: u16,
        range: RangeInclusive<u16>,
        start: u16,
        mut is_free: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let (lo, hi) = (*range.start(), *range.end());
        if lo > hi {
            return None;
        }
        let span = u32::from(hi - lo) + 1;
        let first = u32::from(start.clamp(lo, hi) - lo);
        (0..span)
            .map(|k| lo + ((first + k) % span) as u16)
            .find(|&port| {
                self.queue_for(l4, *remote.ip(), local_ip, remote.port(), port) == wanted_queue
                    && is_free(port)
            })
    }
}

/// The queue for devices without RSS: the stack's own spread of a hash.
pub fn software_queue(hash: u32, nb_queues: u16) -> u16 {
    if nb_queues == 0 {
        0
    } else {
        (hash % u32::from(nb_queues)) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_only_hashing_ignores_ports() {
        let p = QueuePredictor::new(&ToeplitzKey::MICROSOFT, RetaTable::uniform(128, 4).unwrap())
            .with_ports(true, false);
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1));
        assert!(p.hashes_ports(L4::Tcp) && !p.hashes_ports(L4::Udp));
        let udp: std::collections::HashSet<u16> = (1000..1200)
            .map(|port| p.queue_for(L4::Udp, a, b, 7, port))
            .collect();
        assert_eq!(udp.len(), 1, "UDP lands by addresses alone");
        assert_eq!(udp.into_iter().next(), Some(p.queue_for_ipv4(a, b)));
        let tcp: std::collections::HashSet<u16> = (1000..1200)
            .map(|port| p.queue_for(L4::Tcp, a, b, 7, port))
            .collect();
        assert_eq!(tcp.len(), 4, "TCP spreads by ports");
    }
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// "Verifying the RSS Hash Calculation" (Microsoft): destination,
    /// source, IPv4-only hash, IPv4+TCP hash.
    const VECTORS: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "161.142.100.80",
            1766,
            "66.9.149.187",
            2794,
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            "65.69.140.83",
            4739,
            "199.92.111.2",
            14230,
            0xd718262a,
            0xc626b0ea,
        ),
        (
            "12.22.207.184",
            38024,
            "24.19.198.95",
            12898,
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            "209.142.163.6",
            2217,
            "38.27.205.30",
            48228,
            0x82989176,
            0xafc7327f,
        ),
        (
            "202.188.127.2",
            1303,
            "153.39.163.191",
            44251,
            0x5d1809c5,
            0x10e828a2,
        ),
    ];

    #[test]
    fn microsoft_verification_vectors() {
        let t = Toeplitz::new(&ToeplitzKey::MICROSOFT);
        for (dst, dport, src, sport, h2, h4) in VECTORS {
            assert_eq!(t.hash_ipv4(ip(src), ip(dst)), h2, "{src} -> {dst}");
            assert_eq!(
                t.hash_ipv4_l4(ip(src), ip(dst), sport, dport),
                h4,
                "{src}:{sport} -> {dst}:{dport}"
            );
            let mut input = ip(src).octets().to_vec();
            input.extend_from_slice(&ip(dst).octets());
            assert_eq!(toeplitz_hash(&ToeplitzKey::MICROSOFT, &input), h2);
        }
    }

    #[test]
    fn keys_must_be_40_or_52_bytes() {
        assert_eq!(ToeplitzKey::new(&[0; 39]), Err(RssError::KeyLength(39)));
        assert!(ToeplitzKey::new(&[1; 40]).is_ok());
        assert!(ToeplitzKey::new(&[1; 52]).is_ok());
        assert_eq!(ToeplitzKey::MICROSOFT.as_bytes().len(), 40);
    }

    #[test]
    fn reta_round_robin_and_lookup() {
        let r = RetaTable::uniform(128, 3).unwrap();
        assert_eq!(r.len(), 128);
        assert_eq!(
            (0..6).map(|h| r.queue_for_hash(h)).collect::<Vec<_>>(),
            vec![0, 1, 2, 0, 1, 2]
        );
        assert_eq!(r.queue_for_hash(128), 0);
        assert_eq!(RetaTable::uniform(0, 2), Err(RssError::EmptyTable));
        assert_eq!(RetaTable::uniform(8, 0), Err(RssError::NoQueues));
        assert_eq!(software_queue(7, 2), 1);
    }

    #[test]
    fn picked_port_maps_back_and_respects_is_free() {
        let p = QueuePredictor::new(&ToeplitzKey::MICROSOFT, RetaTable::uniform(128, 4).unwrap());
        let (local, remote) = (ip("198.18.0.1"), ip("198.18.0.2"));
        for q in 0..4 {
            let port = p
                .pick_local_port(
                    L4::Tcp,
                    local,
                    SocketAddrV4::new(remote, 80),
                    q,
                    10000..=60000,
                    12345,
                    |port| port % 2 == 0,
                )
                .unwrap();
            assert_eq!(port % 2, 0);
            assert_eq!(p.queue_for_ipv4_l4(remote, local, 80, port), q);
        }
        assert_eq!(
            p.pick_local_port(
                L4::Tcp,
                local,
                SocketAddrV4::new(remote, 80),
                1,
                10000..=60000,
                0,
                |_| false
            ),
            None
        );
        // A one-port range either fits or does not.
        let only = p.pick_local_port(
            L4::Tcp,
            local,
            SocketAddrV4::new(remote, 80),
            0,
            5000..=5000,
            5000,
            |_| true,
        );
        assert_eq!(
            only.is_some(),
            p.queue_for_ipv4_l4(remote, local, 80, 5000) == 0
        );
    }

    proptest! {
        #[test]
        fn tables_equal_the_bitwise_definition(input in proptest::collection::vec(any::<u8>(), 0..36)) {
            let t = Toeplitz::new(&ToeplitzKey::MICROSOFT);
            prop_assert_eq!(t.hash(&input), toeplitz_hash(&ToeplitzKey::MICROSOFT, &input));
        }

        #[test]
        fn symmetric_key_is_symmetric(a in any::<u32>(), b in any::<u32>(), pa in any::<u16>(), pb in any::<u16>()) {
            let t = Toeplitz::new(&ToeplitzKey::SYMMETRIC);
            let (a, b) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
            prop_assert_eq!(t.hash_ipv4_l4(a, b, pa, pb), t.hash_ipv4_l4(b, a, pb, pa));
            prop_assert_eq!(t.hash_ipv4(a, b), t.hash_ipv4(b, a));
        }
    }
}
