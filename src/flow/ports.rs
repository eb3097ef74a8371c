//! The per-core ephemeral port allocator, one for TCP active opens and
//! connected UDP sockets alike.
//!
//! A port is this core's when replies to it come back to this core: with the
//! device's RSS predicted and hashing the transport on ports, a port whose
//! reply hashes to this core's queue (Seastar's `connect` loop, through
//! [`QueuePredictor::pick_local_port`]); otherwise (no prediction, or a
//! device that hashes on addresses only, where no port changes the queue)
//! one of this core's share, `port % cores == index`, so that two cores
//! never pick the same 4-tuple, and a reply landing elsewhere is handed
//! over. Ports are tried in turn from where the last search stopped,
//! wrapping over the range once; the caller says which are in use.

use rss::{QueuePredictor, L4};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

pub struct PortAllocator {
    /// The ephemeral range, both ends included.
    range: (u16, u16),
    /// Where the next search starts.
    next: u16,
    /// This core's share: (index, cores).
    share: (u16, u16),
    /// The device's RSS, when it can be predicted: (predictor, this core's
    /// RX queue, our address).
    rss: Option<(Arc<QueuePredictor>, u16, Ipv4Addr)>,
    /// Ports looked at by searches (the cost of prediction).
    pub probed: u64,
}

impl PortAllocator {
    /// Ports from `range` (both ends included), all of them this core's
    /// until [`set_share`](Self::set_share) or [`set_rss`](Self::set_rss).
    pub fn new(range: (u16, u16)) -> PortAllocator {
        PortAllocator {
            range,
            next: range.0,
            share: (0, 1),
            rss: None,
            probed: 0,
        }
    }

    /// Take only ports `p` with `p % cores == index` where RSS is not
    /// predicted.
    pub fn set_share(&mut self, index: usize, cores: usize) {
        self.share = (index as u16, cores.max(1) as u16);
    }

    /// Predict the device's RSS: a port whose reply hashes to `queue` is
    /// ours alone (the share stays for transports the device hashes on
    /// addresses only).
    pub fn set_rss(&mut self, p: Arc<QueuePredictor>, queue: u16, local: Ipv4Addr) {
        self.rss = Some((p, queue, local));
    }

    pub fn predicts_rss(&self) -> bool {
        self.rss.is_some()
    }

    /// A local port for an `l4` flow to `remote`: the next of this core's
    /// ports that `is_free` takes (the caller's tables say which are in
    /// use), or None after one turn over the range.
    pub fn pick(
        &mut self,
        l4: L4,
        remote: SocketAddrV4,
        mut is_free: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let (lo, hi) = self.range;
        if lo > hi {
            return None;
        }
        let span = u32::from(hi - lo) + 1;
        let start = self.next.clamp(lo, hi);
        let found = match &self.rss {
            Some((p, queue, local)) if p.hashes_ports(l4) => {
                p.pick_local_port(l4, *local, remote, *queue, lo..=hi, start, is_free)
            }
            _ => {
                let (index, cores) = self.share;
                (0..span)
                    .map(|k| lo + ((u32::from(start - lo) + k) % span) as u16)
                    .find(|&port| port % cores == index && is_free(port))
            }
        };
        // Every port from `start` up to the one found (or the whole range)
        // was looked at.
        self.probed += match found {
            Some(port) => (u32::from(port.wrapping_sub(start)) % span + 1).into(),
            None => u64::from(span),
        };
        let last = found.unwrap_or(if start == lo { hi } else { start - 1 });
        self.next = if last >= hi { lo } else { last + 1 };
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rss::{RetaTable, ToeplitzKey};

    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    fn remote(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), port)
    }

    #[test]
    fn ports_come_in_turn_and_wrap_around_the_range() {
        let mut a = PortAllocator::new((61000, 61003));
        let picked: Vec<u16> = (0..6)
            .map(|_| a.pick(L4::Tcp, remote(80), |_| true).unwrap())
            .collect();
        assert_eq!(picked, [61000, 61001, 61002, 61003, 61000, 61001]);
        assert_eq!(a.probed, 6);
    }

    #[test]
    fn ports_in_use_are_skipped_and_a_full_range_gives_none() {
        let mut a = PortAllocator::new((61000, 61009));
        let in_use = [61000, 61001, 61003];
        let free = |p: u16| !in_use.contains(&p);
        assert_eq!(a.pick(L4::Udp, remote(53), free), Some(61002));
        assert_eq!(a.pick(L4::Udp, remote(53), free), Some(61004));
        // From 61005 to the end, then around to the first free one.
        for want in [61005, 61006, 61007, 61008, 61009, 61002] {
            assert_eq!(a.pick(L4::Udp, remote(53), free), Some(want));
        }
        let probed = a.probed;
        assert_eq!(a.pick(L4::Udp, remote(53), |_| false), None);
        assert_eq!(a.probed, probed + 10, "one turn over the range, no more");
        // A failed search leaves the turn where it was.
        assert_eq!(a.pick(L4::Udp, remote(53), free), Some(61004));
    }

    #[test]
    fn a_core_takes_only_its_share_without_prediction() {
        let mut a = PortAllocator::new((61000, 61009));
        a.set_share(1, 2);
        let picked: Vec<u16> = (0..6)
            .map(|_| a.pick(L4::Tcp, remote(80), |_| true).unwrap())
            .collect();
        assert_eq!(picked, [61001, 61003, 61005, 61007, 61009, 61001]);
    }

    #[test]
    fn predicted_ports_land_on_the_cores_queue() {
        let reta = RetaTable::uniform(128, 4).unwrap();
        let p = Arc::new(QueuePredictor::new(&ToeplitzKey::MICROSOFT, reta));
        for queue in 0..4u16 {
            let mut a = PortAllocator::new((61000, 65535));
            // The share would refuse every other port: prediction wins.
            a.set_share(usize::from(queue), 4);
            a.set_rss(p.clone(), queue, LOCAL);
            assert!(a.predicts_rss());
            let mut off_share = false;
            for i in 0..50u16 {
                let r = remote(5000 + i);
                let port = a.pick(L4::Tcp, r, |_| true).unwrap();
                assert_eq!(p.queue_for_ipv4_l4(*r.ip(), LOCAL, r.port(), port), queue);
                off_share |= port % 4 != queue;
            }
            assert!(off_share, "ports follow the hash, not the share");
            // About one port in four fits: a short scan, not 64K.
            assert!(a.probed < 50 * 16, "{}", a.probed);
        }
    }

    #[test]
    fn predicted_ports_in_use_are_skipped() {
        let reta = RetaTable::uniform(128, 4).unwrap();
        let p = Arc::new(QueuePredictor::new(&ToeplitzKey::MICROSOFT, reta));
        let mut a = PortAllocator::new((61000, 65535));
        a.set_rss(p.clone(), 2, LOCAL);
        let first = a.pick(L4::Tcp, remote(80), |_| true).unwrap();
        let mut b = PortAllocator::new((61000, 65535));
        b.set_rss(p.clone(), 2, LOCAL);
        let second = b.pick(L4::Tcp, remote(80), |port| port != first).unwrap();
        assert!(second > first);
        assert_eq!(p.queue_for_ipv4_l4(*remote(80).ip(), LOCAL, 80, second), 2);
    }

    #[test]
    fn address_only_hashing_falls_back_to_the_share() {
        // The device hashes UDP on addresses only: no port changes where a
        // reply lands, so UDP takes this core's share (p % 2 == 1) and
        // relies on the handoff; TCP is still predicted.
        let reta = RetaTable::uniform(128, 2).unwrap();
        let p =
            Arc::new(QueuePredictor::new(&ToeplitzKey::MICROSOFT, reta).with_ports(true, false));
        let mut a = PortAllocator::new((61000, 65535));
        a.set_share(1, 2);
        a.set_rss(p.clone(), 1, LOCAL);
        let mut tcp_even = false;
        for i in 0..40u16 {
            let r = remote(5000 + i);
            let u = a.pick(L4::Udp, r, |_| true).unwrap();
            assert_eq!(u % 2, 1, "UDP port {u} is not this core's share");
            let port = a.pick(L4::Tcp, r, |_| true).unwrap();
            assert_eq!(p.queue_for_ipv4_l4(*r.ip(), LOCAL, r.port(), port), 1);
            tcp_even |= port.is_multiple_of(2);
        }
        assert!(tcp_even, "TCP ports follow the hash, not the share");
    }
}
