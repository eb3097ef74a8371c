//! Ethernet on a core: frames in (length, addresses, VLAN, ethertype to its
//! protocol or the kernel), frames out (the next hop's MAC from ARP, or a
//! wait for it) and the TX buffer they are queued in.

use super::ctx::{Core, Net};
use crate::app::SendError;
use crate::arp::PendingOutcome;
use crate::buf::{BufPool, PacketBuf};
use crate::ipv4::NextHop;
use crate::stats::DropReason;
use crate::wire::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};

pub(super) const ETH_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

impl<P: BufPool> Core<P> {
    /// Process one received frame.
    pub fn process_frame(&mut self, buf: P::Buf) {
        let c = &mut self.net.counters;
        c.rx_packets += 1;
        c.rx_bytes += buf.len() as u64;
        self.process_frame_inner(buf, false);
    }

    /// `handed_off`: another core sent it here; it is never handed on.
    #[inline]
    pub(super) fn process_frame_inner(&mut self, mut buf: P::Buf, handed_off: bool) {
        let data = buf.data();
        let eth = match untagged_ipv4(data) {
            Some(r) => r,
            None => {
                let frame = match EthernetFrame::new_checked(data) {
                    Ok(f) => f,
                    Err(e) => return self.net.drop_frame(e.into()),
                };
                match EthernetRepr::parse(&frame) {
                    Ok(r) => r,
                    Err(e) => return self.net.drop_frame(e.into()),
                }
            }
        };
        if data.len() > self.net.iface.mtu + eth.buffer_len() && eth.ethertype != EtherType::Ipv4 {
            // IPv4 has its own rule (process_ipv4).
            return self.net.drop_frame(DropReason::Oversize);
        }
        if eth.dst_addr != self.net.iface.mac
            && !eth.dst_addr.is_broadcast()
            && !(self.kni.is_some() && eth.dst_addr.is_multicast())
        {
            return self.net.drop_frame(DropReason::NotForUs);
        }
        if eth.src_addr == self.net.iface.mac && !handed_off {
            // Our own frame back, or a station with our MAC: answering it,
            // or giving it to the kernel (whose interface has our MAC too),
            // would make us our own neighbour (IPv6 DAD fails on it).
            return self.net.drop_frame(DropReason::Looped);
        }
        if eth.vlan.is_some() {
            // No VLAN is configured on this interface.
            return self.net.drop_frame(DropReason::Unsupported);
        }
        match eth.ethertype {
            EtherType::Arp => {
                if self.kni.is_some() && self.kni_policy.arp_copy {
                    self.dispatch_kernel_copy(buf.data());
                }
                self.net.process_arp(buf, &eth)
            }
            EtherType::Ipv4 => {
                // Taken here, before the buffer moves on: moved into
                // process_ipv4 and then queued, it was copied twice.
                if !handed_off && self.echo_fast(&mut buf, eth.src_addr) {
                    // Room was checked: push_tx's test holds.
                    self.net.tx.push(buf);
                    return;
                }
                self.process_ipv4(buf, &eth, handed_off)
            }
            _ if self.kni.is_some() && self.kni_policy.other_ethertypes && eth.vlan.is_none() => {
                self.dispatch_kernel(buf)
            }
            _ => self.net.drop_frame(DropReason::Unsupported),
        }
    }
}

/// The header of an untagged IPv4 frame (nearly every frame), read in
/// one pass: `EthernetRepr::parse` of it after `new_checked`, without the
/// tag tests an EtherType of 0x0800 at offset 12 rules out (make pathcost:
/// parse out of line was 33 instructions a frame). None for any other
/// frame, which the general parse takes.
#[inline(always)]
fn untagged_ipv4(data: &[u8]) -> Option<EthernetRepr> {
    let h = data.first_chunk::<ETH_LEN>()?;
    let (dst, rest) = h.split_first_chunk::<6>()?;
    let (src, ethertype) = rest.split_first_chunk::<6>()?;
    (*ethertype == [0x08, 0x00]).then_some(EthernetRepr {
        src_addr: EthernetAddress(*src),
        dst_addr: EthernetAddress(*dst),
        ethertype: EtherType::Ipv4,
        vlan: None,
    })
}

impl<P: BufPool> Net<P> {
    /// Frames buffered for transmit.
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Frames the TX buffer takes: its size, less the place kept for an
    /// in-place reply the application's callback has sent.
    #[inline]
    pub(super) fn tx_room(&self) -> usize {
        self.tx_cap - usize::from(self.reply_inplace.is_some())
    }

    /// Queue a finished frame for transmit.
    #[inline(always)]
    pub(super) fn push_tx(&mut self, buf: P::Buf) -> Result<(), SendError> {
        if self.tx.len() >= self.tx_room() {
            self.counters.tx_backlog_full += 1;
            self.counters.drop(DropReason::QueueFull);
            return Err(SendError::QueueFull);
        }
        self.tx.push(buf);
        Ok(())
    }

    /// Give a finished frame (destination MAC not yet written) its next hop.
    pub(super) fn dispatch_frame(
        &mut self,
        mut buf: P::Buf,
        hop: NextHop,
    ) -> Result<(), SendError> {
        let ip = match hop {
            NextHop::Broadcast => {
                buf.data_mut()[0..6].copy_from_slice(EthernetAddress::BROADCAST.as_bytes());
                return self.push_tx(buf);
            }
            NextHop::Neighbor(ip) => ip,
        };
        if let Some(mac) = self.arp.lookup(&ip) {
            buf.data_mut()[0..6].copy_from_slice(mac.as_bytes());
            return self.push_tx(buf);
        }
        match self.pending.push(ip, buf, self.now) {
            PendingOutcome::QueuedSendRequest => {
                self.send_arp_request(ip);
                Ok(())
            }
            PendingOutcome::Queued => Ok(()),
            PendingOutcome::Full(_buf) => {
                self.counters.drop(DropReason::NoArp);
                Err(SendError::ArpQueueFull)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_ipv4_is_the_general_parse() {
        // Frames of every length up to 30 with random bytes, the EtherType
        // (and the tagged frame's inner one) drawn from IPv4, ARP, the tags
        // and random values: untagged_ipv4 gives exactly what new_checked
        // and parse give for untagged IPv4, and None for every other frame.
        let mut next = crate::wire::xorshift(0x9e37_79b9_7f4a_7c15u64);
        let types: [[u8; 2]; 6] = [
            [0x08, 0x00],
            [0x08, 0x06],
            [0x81, 0x00],
            [0x88, 0xa8],
            [0x91, 0x00],
            [0x00, 0x08],
        ];
        let mut taken = 0;
        for _ in 0..20_000 {
            let mut f = [0u8; 30];
            for chunk in f.chunks_mut(8) {
                let r = next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            let r = next().to_le_bytes();
            if !r[0].is_multiple_of(4) {
                f[12..14].copy_from_slice(&types[usize::from(r[1]) % types.len()]);
            }
            if r[2].is_multiple_of(2) {
                f[16..18].copy_from_slice(&types[usize::from(r[3]) % types.len()]);
            }
            let data = &f[..usize::from(r[4]) % (f.len() + 1)];
            let general = EthernetFrame::new_checked(data)
                .ok()
                .and_then(|frame| EthernetRepr::parse(&frame).ok())
                .filter(|eth| eth.ethertype == EtherType::Ipv4 && eth.vlan.is_none());
            assert_eq!(untagged_ipv4(data), general, "{data:02x?}");
            taken += usize::from(general.is_some());
        }
        assert!(taken > 1000, "{taken}");
    }
}
