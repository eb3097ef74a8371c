//! Per-core packets waiting for ARP resolution.
//!
//! Bounded: at most `capacity` packets wait; a packet that finds the queue
//! full, or waits longer than `timeout`, is handed back to be dropped and
//! counted. Requests for one next hop go out at most once per `retry`.

use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;
use std::collections::VecDeque;
use std::net::Ipv4Addr;

/// What [`ArpPending::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum PendingOutcome<B> {
    /// Queued; send an ARP request for the next hop now.
    QueuedSendRequest,
    /// Queued; a request for this next hop went out recently.
    Queued,
    /// The queue is full: the packet comes back to be dropped.
    Full(B),
}

#[derive(Debug)]
struct Waiting<B> {
    next_hop: Ipv4Addr,
    buf: B,
    since: Instant,
}

#[derive(Debug)]
pub struct ArpPending<B> {
    queue: VecDeque<Waiting<B>>,
    /// Next hops with a request in flight, and when it was last sent.
    asked: Vec<(Ipv4Addr, Instant)>,
    capacity: usize,
    timeout: Duration,
    retry: Duration,
}

impl<B> ArpPending<B> {
    pub fn new(capacity: usize, timeout: Duration, retry: Duration) -> Self {
        ArpPending {
            queue: VecDeque::with_capacity(capacity),
            asked: Vec::with_capacity(capacity),
            capacity,
            timeout,
            retry,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Hold `buf` (a complete frame whose destination MAC is still unknown)
    /// until `next_hop` resolves.
    pub fn push(&mut self, next_hop: Ipv4Addr, buf: B, now: Instant) -> PendingOutcome<B> {
        if self.queue.len() >= self.capacity {
            return PendingOutcome::Full(buf);
        }
        self.queue.push_back(Waiting {
            next_hop,
            buf,
            since: now,
        });
        match self.asked.iter_mut().find(|(ip, _)| *ip == next_hop) {
            Some((_, last)) if now.since(*last) < self.retry => PendingOutcome::Queued,
            Some((_, last)) => {
                *last = now;
                PendingOutcome::QueuedSendRequest
            }
            None => {
                if self.asked.len() < self.capacity {
                    self.asked.push((next_hop, now));
                }
                PendingOutcome::QueuedSendRequest
            }
        }
    }

    /// Release every packet whose next hop `lookup` now resolves, in order.
    pub fn release_resolved(
        &mut self,
        lookup: impl Fn(&Ipv4Addr) -> Option<EthernetAddress>,
        mut send: impl FnMut(B, EthernetAddress),
    ) -> usize {
        let mut sent = 0;
        let mut i = 0;
        while i < self.queue.len() {
            if let Some(mac) = lookup(&self.queue[i].next_hop) {
                let w = self.queue.remove(i).expect("index checked");
                send(w.buf, mac);
                sent += 1;
            } else {
                i += 1;
            }
        }
        if sent > 0 {
            let queue = &self.queue;
            self.asked
                .retain(|(ip, _)| queue.iter().any(|w| w.next_hop == *ip));
        }
        sent
    }

    /// Drop what waited too long (handed to `dropped`), and name the next
    /// hops whose request should be sent again. `resend` returns false when
    /// it takes no more this time: that next hop and the ones after it are
    /// not marked as asked and stay due for the next poll.
    pub fn poll(
        &mut self,
        now: Instant,
        mut dropped: impl FnMut(B),
        mut resend: impl FnMut(Ipv4Addr) -> bool,
    ) {
        let timeout = self.timeout;
        while let Some(front) = self.queue.front() {
            if now.since(front.since) < timeout {
                break;
            }
            let w = self.queue.pop_front().expect("front exists");
            dropped(w.buf);
        }
        let queue = &self.queue;
        self.asked
            .retain(|(ip, _)| queue.iter().any(|w| w.next_hop == *ip));
        for (ip, last) in self.asked.iter_mut() {
            if now.since(*last) >= self.retry {
                if !resend(*ip) {
                    break;
                }
                *last = now;
            }
        }
    }

    /// Drop everything (shutdown).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.asked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
    const H: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const M: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 9]);

    fn pending() -> ArpPending<u32> {
        ArpPending::new(3, Duration::from_secs(3), Duration::from_secs(1))
    }

    #[test]
    fn one_request_per_retry_interval() {
        let mut p = pending();
        let t0 = Instant::ZERO;
        assert_eq!(p.push(H, 1, t0), PendingOutcome::QueuedSendRequest);
        assert_eq!(p.push(H, 2, t0), PendingOutcome::Queued);
        assert_eq!(p.push(GW, 3, t0), PendingOutcome::QueuedSendRequest);
        assert_eq!(p.push(H, 4, t0), PendingOutcome::Full(4));
        let mut resent = vec![];
        p.poll(
            Instant::from_millis(500),
            |_| {},
            |ip| {
                resent.push(ip);
                true
            },
        );
        assert!(resent.is_empty());
        p.poll(
            Instant::from_millis(1000),
            |_| {},
            |ip| {
                resent.push(ip);
                true
            },
        );
        assert_eq!(resent, vec![H, GW]);
    }

    #[test]
    fn resolved_packets_leave_in_order_and_others_stay() {
        let mut p = pending();
        p.push(H, 1, Instant::ZERO);
        p.push(GW, 2, Instant::ZERO);
        p.push(H, 3, Instant::ZERO);
        let mut out = vec![];
        let n = p.release_resolved(|ip| (*ip == H).then_some(M), |b, m| out.push((b, m)));
        assert_eq!(n, 2);
        assert_eq!(out, vec![(1, M), (3, M)]);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn waiting_too_long_drops() {
        let mut p = pending();
        p.push(H, 1, Instant::ZERO);
        p.push(H, 2, Instant::from_secs(2));
        let mut dropped = vec![];
        p.poll(Instant::from_secs(3), |b| dropped.push(b), |_| true);
        assert_eq!(dropped, vec![1]);
        p.poll(Instant::from_secs(5), |b| dropped.push(b), |_| true);
        assert_eq!(dropped, vec![1, 2]);
        assert!(p.is_empty());
    }

    #[test]
    fn next_hops_not_taken_stay_due() {
        let mut p = ArpPending::new(8, Duration::from_secs(3), Duration::from_secs(1));
        let hops: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();
        for (i, h) in hops.iter().enumerate() {
            p.push(*h, i as u32, Instant::ZERO);
        }
        // Room for two requests this poll: the other three wait for the
        // next one, which must not wait a retry interval.
        let mut resent = vec![];
        p.poll(
            Instant::from_millis(1000),
            |_| {},
            |ip| {
                if resent.len() == 2 {
                    return false;
                }
                resent.push(ip);
                true
            },
        );
        assert_eq!(resent, hops[..2]);
        resent.clear();
        p.poll(
            Instant::from_millis(1001),
            |_| {},
            |ip| {
                resent.push(ip);
                true
            },
        );
        assert_eq!(resent, hops[2..]);
    }
}
