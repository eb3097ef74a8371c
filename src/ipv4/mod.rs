//! IPv4: routing decisions for output, acceptance rules for input, and
//! (in `frag`) reassembly and fragmentation.

pub mod frag;

use crate::wire::Ipv4Cidr;
use std::net::Ipv4Addr;

/// Where a datagram goes at layer 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Resolve this address with ARP.
    Neighbor(Ipv4Addr),
    /// Send to the Ethernet broadcast address.
    Broadcast,
}

/// The routing table of a host: the connected network and a default gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routes {
    pub local: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
}

impl Routes {
    /// The next hop for `dst`: on-link destinations directly, others via the
    /// gateway; None when off-link and there is no gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<NextHop> {
        if dst.is_broadcast() || dst == self.local.broadcast() {
            return Some(NextHop::Broadcast);
        }
        if dst.is_unspecified() || dst.is_multicast() || dst.is_loopback() {
            return None;
        }
        if self.local.contains_addr(&dst) {
            Some(NextHop::Neighbor(dst))
        } else {
            self.gateway.map(NextHop::Neighbor)
        }
    }

    /// The neighbour a reply to `src` goes to, for a source that
    /// [`valid_source`](Self::valid_source) accepts: `next_hop(src)`
    /// without its tests for broadcast, multicast and the rest, which such
    /// a source never is. Itself on-link, else the gateway (None without).
    #[inline(always)]
    pub fn neighbor_of_source(&self, src: Ipv4Addr) -> Option<Ipv4Addr> {
        debug_assert!(self.valid_source(src));
        if self.local.contains_addr(&src) {
            Some(src)
        } else {
            self.gateway
        }
    }

    /// Is `dst` an address this host accepts datagrams for?
    /// Ours, the limited broadcast, or our subnet's broadcast (RFC 1122 3.3.6).
    #[inline]
    pub fn accepts(&self, dst: Ipv4Addr) -> bool {
        dst == self.local.address() || dst.is_broadcast() || dst == self.local.broadcast()
    }

    /// RFC 1122 3.2.1.3: a host silently discards a datagram whose source is
    /// a broadcast, multicast, or (except for some ICMP) unspecified address.
    #[inline]
    pub fn valid_source(&self, src: Ipv4Addr) -> bool {
        !(src.is_broadcast()
            || src.is_multicast()
            || src == self.local.broadcast()
            || src.is_unspecified()
            || src.is_loopback())
    }
}

/// Per-core IP identification numbers, disjoint between cores: core `i` of
/// `n` uses i, i+n, i+2n, ... (mod 2^16), so fragments of datagrams sent by
/// different cores never share an ident.
#[derive(Clone, Copy, Debug)]
pub struct IdentGen {
    next: u16,
    step: u16,
}

impl IdentGen {
    pub fn new(core: usize, cores: usize) -> Self {
        IdentGen {
            next: core as u16,
            step: cores.max(1) as u16,
        }
    }
    pub fn next_ident(&mut self) -> u16 {
        let v = self.next;
        self.next = self.next.wrapping_add(self.step);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(gw: Option<Ipv4Addr>) -> Routes {
        Routes {
            local: "198.18.0.1/24".parse().unwrap(),
            gateway: gw,
        }
    }

    #[test]
    fn next_hop_on_link_off_link_and_broadcast() {
        let gw = Ipv4Addr::new(198, 18, 0, 254);
        let r = routes(Some(gw));
        let h = Ipv4Addr::new(198, 18, 0, 2);
        assert_eq!(r.next_hop(h), Some(NextHop::Neighbor(h)));
        assert_eq!(
            r.next_hop(Ipv4Addr::new(198, 19, 1, 1)),
            Some(NextHop::Neighbor(gw))
        );
        assert_eq!(
            r.next_hop(Ipv4Addr::new(198, 18, 0, 255)),
            Some(NextHop::Broadcast)
        );
        assert_eq!(r.next_hop(Ipv4Addr::BROADCAST), Some(NextHop::Broadcast));
        assert_eq!(routes(None).next_hop(Ipv4Addr::new(198, 19, 1, 1)), None);
        assert_eq!(r.next_hop(Ipv4Addr::new(224, 0, 0, 1)), None);
    }

    #[test]
    fn neighbor_of_source_is_next_hop_for_every_valid_source() {
        // Every address of a few /8s around ours and the special ones:
        // where valid_source holds, next_hop says Neighbor(what it says).
        let gw = Ipv4Addr::new(198, 18, 0, 254);
        let mut checked = 0;
        for r in [routes(Some(gw)), routes(None)] {
            for a in [0u32, 10, 127, 198, 224, 255] {
                for i in 0..(1u32 << 16) {
                    let addr = Ipv4Addr::from((a << 24) | (i.wrapping_mul(2_654_435_761) >> 8));
                    let addr = if i < 512 {
                        // The local /24 and its edges whole.
                        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i - 128)
                    } else {
                        addr
                    };
                    if !r.valid_source(addr) {
                        continue;
                    }
                    let expected = match r.next_hop(addr) {
                        Some(NextHop::Neighbor(n)) => Some(n),
                        Some(NextHop::Broadcast) => panic!("{addr} is a valid source"),
                        None => None,
                    };
                    assert_eq!(r.neighbor_of_source(addr), expected, "{addr}");
                    checked += 1;
                }
            }
            assert!(!r.valid_source(Ipv4Addr::new(198, 18, 0, 255)));
        }
        assert!(checked > 500_000, "{checked}");
    }

    #[test]
    fn acceptance_and_source_rules() {
        let r = routes(None);
        assert!(r.accepts(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(r.accepts(Ipv4Addr::new(198, 18, 0, 255)));
        assert!(r.accepts(Ipv4Addr::BROADCAST));
        assert!(!r.accepts(Ipv4Addr::new(198, 18, 0, 2)));
        assert!(r.valid_source(Ipv4Addr::new(198, 18, 0, 2)));
        assert!(!r.valid_source(Ipv4Addr::new(198, 18, 0, 255)));
        assert!(!r.valid_source(Ipv4Addr::new(224, 0, 0, 5)));
        assert!(!r.valid_source(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn idents_are_disjoint_between_cores() {
        let mut a = IdentGen::new(0, 2);
        let mut b = IdentGen::new(1, 2);
        for _ in 0..1000 {
            assert_eq!(a.next_ident() % 2, 0);
            assert_eq!(b.next_ident() % 2, 1);
        }
    }
}
