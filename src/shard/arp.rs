//! ARP on a core: requests for our address answered in their own buffer,
//! senders learned through the writer core's table (RFC 826), our own
//! requests and announcements, and the frames that wait for a next hop.

use super::ctx::Net;
use super::ethernet::ETH_LEN;
use crate::arp::LearnResult;
use crate::buf::{BufPool, PacketBuf};
use crate::stats::DropReason;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
};
use std::net::Ipv4Addr;

impl<P: BufPool> Net<P> {
    pub(super) fn process_arp(&mut self, mut buf: P::Buf, eth: &EthernetRepr) {
        let l2 = eth.buffer_len();
        let repr = {
            let packet = match ArpPacket::new_checked(&buf.data()[l2..]) {
                Ok(p) => p,
                Err(e) => return self.drop_frame(e.into()),
            };
            match ArpRepr::parse(&packet) {
                Ok(r) => r,
                Err(e) => return self.drop_frame(e.into()),
            }
        };
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_protocol_addr: tpa,
            ..
        } = repr;
        if !sha.is_unicast() {
            return self.drop_frame(DropReason::Malformed);
        }
        let ours = self.iface.ip.address();
        if spa == ours {
            // Our own ARP looped back, or another station claiming our
            // address (an RFC 5227 conflict): learn nothing, answer nothing.
            // (A sender MAC equal to ours alone proves nothing: net_tap's
            // kernel side shares the port's MAC.)
            if sha != self.iface.mac {
                self.counters.arp_conflicts += 1;
            }
            return self.drop_frame(DropReason::NotForUs);
        }
        let for_us = tpa == ours;
        // RFC 826: update a known sender; add it if we are the target.
        // Probes (sender 0.0.0.0) teach nothing.
        let known = self.arp.lookup(&spa).is_some();
        if (for_us || known)
            && spa != ours
            && self.routes.valid_source(spa)
            && self.iface.ip.contains_addr(&spa)
        {
            match self.arp.learn(spa, sha, self.now) {
                LearnResult::Queued => self.counters.arp_learned += 1,
                LearnResult::Known => {}
                LearnResult::QueueFull => self.counters.drop(DropReason::QueueFull),
            }
        }
        if !for_us {
            return self.drop_frame(DropReason::NotForUs);
        }
        if operation != ArpOperation::Request {
            return;
        }
        // Answer in the same buffer.
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.iface.mac,
            source_protocol_addr: ours,
            target_hardware_addr: sha,
            target_protocol_addr: spa,
        };
        let eth_out = EthernetRepr {
            src_addr: self.iface.mac,
            dst_addr: sha,
            ethertype: EtherType::Arp,
            vlan: None,
        };
        if !buf.set_len(l2 + reply.buffer_len()) {
            return self.drop_frame(DropReason::Truncated);
        }
        if l2 != ETH_LEN {
            buf.trim_front(l2 - ETH_LEN);
        }
        let data = buf.data_mut();
        eth_out.emit(&mut EthernetFrame::new_unchecked(&mut data[..]));
        reply.emit(&mut ArpPacket::new_unchecked(&mut data[ETH_LEN..]));
        if self.push_tx(buf).is_ok() {
            self.counters.arp_replies_sent += 1;
        }
    }

    /// Send an ARP packet (request or gratuitous announcement).
    pub(super) fn send_arp(
        &mut self,
        operation: ArpOperation,
        dst_mac: EthernetAddress,
        target_mac: EthernetAddress,
        target_ip: Ipv4Addr,
    ) {
        let Some(mut buf) = self.pool.alloc() else {
            return self.drop_frame(DropReason::NoBuffer);
        };
        let arp = ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: self.iface.mac,
            source_protocol_addr: self.iface.ip.address(),
            target_hardware_addr: target_mac,
            target_protocol_addr: target_ip,
        };
        let eth = EthernetRepr {
            src_addr: self.iface.mac,
            dst_addr: dst_mac,
            ethertype: EtherType::Arp,
            vlan: None,
        };
        if !buf.set_len(ETH_LEN + arp.buffer_len()) {
            return self.drop_frame(DropReason::NoBuffer);
        }
        let data = buf.data_mut();
        eth.emit(&mut EthernetFrame::new_unchecked(&mut data[..]));
        arp.emit(&mut ArpPacket::new_unchecked(&mut data[ETH_LEN..]));
        if self.push_tx(buf).is_ok() && operation == ArpOperation::Request {
            self.counters.arp_requests_sent += 1;
        }
    }

    pub(super) fn send_arp_request(&mut self, ip: Ipv4Addr) {
        self.send_arp(
            ArpOperation::Request,
            EthernetAddress::BROADCAST,
            EthernetAddress([0; 6]),
            ip,
        );
    }

    /// Send what waited for a next hop that now resolves.
    pub(super) fn release_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let cap = self.tx_room();
        let arp = &self.arp;
        let tx = &mut self.tx;
        let mut full = 0u64;
        let sent = self.pending.release_resolved(
            |ip| arp.lookup(ip),
            |mut buf, mac| {
                buf.data_mut()[0..6].copy_from_slice(mac.as_bytes());
                if tx.len() < cap {
                    tx.push(buf);
                } else {
                    full += 1;
                }
            },
        );
        self.counters.arp_pending_sent += sent as u64 - full;
        self.counters.tx_backlog_full += full;
        self.counters.drops[DropReason::QueueFull as usize] += full;
    }

    pub(super) fn poll_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut dropped = 0u64;
        let mut resend: heapless::Vec<Ipv4Addr, 16> = heapless::Vec::new();
        self.pending
            .poll(self.now, |_buf| dropped += 1, |ip| resend.push(ip).is_ok());
        self.counters.drops[DropReason::NoArp as usize] += dropped;
        for ip in resend {
            self.send_arp_request(ip);
        }
    }
}
