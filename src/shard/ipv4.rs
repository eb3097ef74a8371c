//! IPv4 on a core: datagrams in (validation, reassembly, the classifier's
//! verdict, delivery to their protocol), datagrams out (headers, ident,
//! fragmentation to the MTU), and the header rewrite of in-place replies.

use super::classify::{classify, local_alone, Tables, Verdict};
use super::ctx::{Core, Net};
use super::ethernet::ETH_LEN;
use super::handoff::hand_over_reassembled;
use super::kernel::dispatch_kernel;
use super::steer::Steering;
use super::tcp::deliver_tcp_events;
use super::udp::process_udp;
use crate::app::{App, SendError};
use crate::buf::{BufPool, L4Checksum, PacketBuf, RxChecksum, RxChecksums};
use crate::ipv4::frag::{FragError, FragKey};
use crate::ipv4::NextHop;
use crate::kni::KniPolicy;
use crate::stats::DropReason;
use crate::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4Packet, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket,
};
use std::net::{Ipv4Addr, SocketAddrV4};

pub(super) const IP_LEN: usize = Ipv4Packet::<&[u8]>::HEADER_LEN;
pub(super) const DEFAULT_TTL: u8 = 64;

impl<P: BufPool> Core<P> {
    /// A datagram the echo fast path did not take (process_frame_inner
    /// offers it there first). Inlined into its one caller (out of line,
    /// a TCP segment paid for the call and a copy of its buffer).
    #[inline(always)]
    pub(super) fn process_ipv4(&mut self, buf: P::Buf, eth: &EthernetRepr, handed_off: bool) {
        self.net.rx_handed = handed_off;
        let l2 = eth.buffer_len();
        let bytes = &buf.data()[l2..];
        let csum = buf.rx_checksum();
        // Nearly every datagram: a plain header (no options, not a
        // fragment, lengths that hold) to our own address, within the MTU,
        // its checksums not found bad. Its header is read once; it passes
        // every check below, which the rest take in their order to find
        // their drop reason.
        let local = self.net.iface.ip.address();
        let plain = if bytes.len() <= self.net.iface.mtu && csum.ip != RxChecksum::Bad {
            Ipv4Packet::parse_plain(bytes, csum.ip != RxChecksum::Good)
        } else {
            None
        };
        // A match, not Option::filter: its closure was left out of line.
        let (ip, header_len, oversize) = match plain {
            Some(ip)
                if ip.dst_addr == local
                    && self.net.routes.valid_source(ip.src_addr)
                    && !(l4_offloaded(ip.next_header) && csum.l4 == RxChecksum::Bad) =>
            {
                let l4_good = l4_offloaded(ip.next_header) && csum.l4 == RxChecksum::Good;
                self.net.rx_l4_good = l4_good;
                self.net.counters.rx_csum_offload_good +=
                    u64::from(csum.ip == RxChecksum::Good) + u64::from(l4_good);
                (ip, IP_LEN, false)
            }
            _ => match self.check_ipv4(bytes, csum, eth.src_addr, handed_off) {
                Some(checked) => checked,
                None => return,
            },
        };
        let payload = &bytes[header_len..header_len + ip.payload_len];
        let alone = self.steering.is_none() && self.kni.is_none();
        let verdict = if alone && local_alone(&ip, payload, local) {
            Verdict::Local
        } else {
            let tables = core_tables(
                &self.net,
                self.steering.as_deref(),
                self.kni.is_some().then_some(&self.kni_policy),
            );
            classify(&tables, &ip, payload, handed_off)
        };
        match verdict {
            Verdict::Local => {}
            Verdict::Owner(owner) => return self.handoff_out.push((owner, buf)),
            Verdict::Kernel if oversize => {
                // The kernel's link takes frames of the MTU.
                let (kni, limit) = (self.kni.as_deref(), &mut self.kni_limit);
                refragment(
                    &mut self.net,
                    &ip,
                    Ipv4Packet::new_unchecked(bytes).ident(),
                    payload,
                    eth.src_addr,
                    |net, buf| dispatch_kernel(net, kni, limit, buf),
                );
                return;
            }
            Verdict::Kernel => return self.dispatch_kernel(buf),
            Verdict::Drop(reason) => return self.net.drop_frame(reason),
        }
        if ip.next_header == IpProtocol::Icmp && header_len == IP_LEN && !oversize {
            // The common echo case: answer in the same buffer.
            return self.net.process_icmp_in_place(buf, l2, &ip, eth.src_addr);
        }
        let header = &bytes[..header_len];
        // The frame can carry its own UDP reply: no options, to our address.
        let in_place = header_len == IP_LEN && ip.dst_addr == local && !oversize;
        deliver_datagram(
            &mut self.net,
            &mut self.apps,
            &ip,
            header,
            payload,
            in_place,
        );
        // Tested before it is taken: a segment or datagram that sent no
        // reply in place (nearly all but the UDP echo's) writes nothing.
        if self.net.reply_inplace.is_some() {
            if let Some((mac, slot)) = self.net.reply_inplace.take() {
                self.net.dispatch_udp_in_place(buf, l2, &ip, mac, slot);
            }
        }
    }

    /// The two echoes a core alone answers most, each in one pass over its
    /// frame (untagged, not handed over, IPv4 at `ETH_LEN`): a UDP datagram
    /// to the built-in echo's port, and an ICMP echo request, in plain IPv4
    /// to our address. Each field is read once from its fixed offset, each
    /// checksum summed once; the frame is turned into its reply in place
    /// and true returned, with every counter and table the general path
    /// changes changed alike: the caller queues it (room was checked).
    /// False, nothing changed (but ARP's lookup cache), for any frame that
    /// fails a test here, valid or not: the general path then takes it from
    /// the start and finds its verdict or its drop reason
    /// (`echo_fast_is_the_general_path` in shard/tests.rs compares them).
    #[inline(always)]
    pub(super) fn echo_fast(&mut self, buf: &mut P::Buf, src_mac: EthernetAddress) -> bool {
        let data = buf.data();
        let bytes = data.get(ETH_LEN..).unwrap_or_default();
        // The protocol byte first: TCP pays for no more than this test.
        let protocol = Ipv4Packet::protocol_byte(bytes);
        let udp = protocol == Some(u8::from(IpProtocol::Udp));
        if !(udp || protocol == Some(u8::from(IpProtocol::Icmp)))
            || self.steering.is_some()
            || self.kni.is_some()
            || !fast_path_enabled()
        {
            return false;
        }
        // process_ipv4's tests of a plain header, in one pass (a verdict of
        // the NIC's on the L4 checksum, which only UDP's heeds there, sends
        // ICMP to the general path too).
        let csum = buf.rx_checksum();
        let net = &mut self.net;
        if csum.ip == RxChecksum::Bad || csum.l4 == RxChecksum::Bad || net.tx.len() >= net.tx_room()
        {
            return false;
        }
        if bytes.len() > net.iface.mtu {
            return false;
        }
        let ip_good = csum.ip == RxChecksum::Good;
        let Some(ip) = Ipv4Packet::parse_plain(bytes, !ip_good) else {
            return false;
        };
        if ip.dst_addr != net.iface.ip.address() || !net.routes.valid_source(ip.src_addr) {
            return false;
        }
        let Some(l4) = bytes.get(IP_LEN..IP_LEN + ip.payload_len) else {
            return false;
        };
        if !udp {
            if !Icmpv4Packet::is_verified_echo_request(l4) {
                return false;
            }
            // As process_ipv4 on a plain header, and process_icmp_in_place:
            // to the frame's sender.
            net.rx_handed = false;
            net.rx_l4_good = false;
            net.counters.rx_csum_offload_good += u64::from(ip_good);
            if let Some(icmp) = net.reply_in_place(buf, &ip, src_mac, None) {
                Icmpv4Packet::echo_request_to_reply(icmp);
            }
            net.counters.icmp_echo_replies += 1;
            fast_path_taken();
            return true;
        }
        let l4_good = csum.l4 == RxChecksum::Good;
        let Some((src_port, dst_port)) =
            UdpPacket::parse_whole(l4, &ip.src_addr, &ip.dst_addr, !l4_good)
        else {
            return false;
        };
        // What echo_in_place asks, but the flow records (kept elsewhere).
        if src_port == 0 || net.flows.is_some() {
            return false;
        }
        let Some(binding) = net.udp.lookup(dst_port) else {
            return false;
        };
        if !binding.accepts(SocketAddrV4::new(ip.src_addr, src_port)) {
            return false;
        }
        let app = binding.app;
        let Some(echo) = self.apps.get_mut(app).and_then(|a| a.as_udp_echo()) else {
            return false;
        };
        // The reply goes where the route says (Net::echo_in_place).
        let hop = net.routes.neighbor_of_source(ip.src_addr);
        let Some(mac) = hop.and_then(|hop| net.arp.lookup(&hop)) else {
            return false;
        };
        // As process_ipv4 on a plain header, deliver_datagram, process_udp,
        // echo_in_place and dispatch_udp_in_place.
        net.rx_handed = false;
        net.rx_l4_good = l4_good;
        net.counters.rx_csum_offload_good += u64::from(ip_good) + u64::from(l4_good);
        net.counters.ipv4_delivered += 1;
        binding.rx += 1;
        binding.tx += 1;
        net.counters.udp_rx += 1;
        net.current_app = app;
        net.counters.udp_tx += 1;
        echo.count_echoed();
        let ident = net.ident.next_ident();
        if let Some(udp) = net.reply_in_place(buf, &ip, mac, Some(ident)) {
            UdpPacket::new_unchecked(udp).swap_ports();
        }
        fast_path_taken();
        true
    }

    /// Every check of a received datagram's header (`bytes`, from the IPv4
    /// header on), in order, each failure dropped and counted under its
    /// reason; a fragment goes to the reassembler and what it completes on
    /// to its protocol. Some((header, header length, oversize)) for a whole
    /// datagram that passed, to be classified and delivered.
    #[inline(never)]
    fn check_ipv4(
        &mut self,
        bytes: &[u8],
        csum: RxChecksums,
        src_mac: EthernetAddress,
        handed_off: bool,
    ) -> Option<(Ipv4Repr, usize, bool)> {
        let packet = match Ipv4Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.net.drop_frame(e.into());
                return None;
            }
        };
        // Longer than the MTU: af_packet's fanout (PACKET_FANOUT_FLAG_DEFRAG)
        // hands over datagrams the kernel reassembled from their fragments.
        // Taken when the frame holds exactly one whole datagram, and answered
        // as a reassembled one would be (never in place: replies are
        // fragmented to the MTU).
        let oversize = bytes.len() > self.net.iface.mtu;
        let is_fragment = packet.is_fragment();
        if oversize && (is_fragment || usize::from(packet.total_len()) != bytes.len()) {
            self.net.drop_frame(DropReason::Oversize);
            return None;
        }
        let l4_offloaded = !is_fragment && l4_offloaded(packet.next_header());
        if csum.ip == RxChecksum::Bad || (l4_offloaded && csum.l4 == RxChecksum::Bad) {
            self.net.counters.rx_csum_offload_bad += 1;
            self.net.drop_frame(DropReason::BadChecksum);
            return None;
        }
        self.net.rx_l4_good = l4_offloaded && csum.l4 == RxChecksum::Good;
        self.net.counters.rx_csum_offload_good +=
            u64::from(csum.ip == RxChecksum::Good) + u64::from(self.net.rx_l4_good);
        let ip = match Ipv4Repr::parse(&packet, csum.ip != RxChecksum::Good) {
            Ok(r) => r,
            Err(e) => {
                self.net.drop_frame(e.into());
                return None;
            }
        };
        if !self.net.routes.accepts(ip.dst_addr) {
            self.net.drop_frame(DropReason::NotForUs);
            return None;
        }
        if !self.net.routes.valid_source(ip.src_addr) {
            self.net.drop_frame(DropReason::Malformed);
            return None;
        }
        let header_len = packet.header_len() as usize;
        if header_len > IP_LEN {
            if let Err(e) = packet.check_options() {
                self.net.drop_frame(e.into());
                return None;
            }
        }
        if !is_fragment {
            return Some((ip, header_len, oversize));
        }
        if packet.dont_frag() {
            // RFC 791: DF and MF/offset together cannot happen.
            self.net.drop_frame(DropReason::Malformed);
            return None;
        }
        let key = FragKey {
            src: ip.src_addr,
            dst: ip.dst_addr,
            protocol: ip.next_header.into(),
            ident: packet.ident(),
        };
        let header = &bytes[..header_len];
        let result = self.frag.process_fragment(
            self.net.now,
            key,
            header,
            packet.frag_offset() as usize,
            packet.more_frags(),
            packet.payload(),
        );
        match result {
            Ok(None) => {}
            Ok(Some(done)) => {
                self.net.counters.ipv4_reassembled += 1;
                let ip = Ipv4Repr {
                    payload_len: done.payload.len(),
                    ..ip
                };
                let tables = core_tables(
                    &self.net,
                    self.steering.as_deref(),
                    self.kni.is_some().then_some(&self.kni_policy),
                );
                match classify(&tables, &ip, done.payload, handed_off) {
                    Verdict::Local => deliver_datagram(
                        &mut self.net,
                        &mut self.apps,
                        &ip,
                        done.header,
                        done.payload,
                        false,
                    ),
                    Verdict::Owner(owner) => hand_over_reassembled(
                        &mut self.net,
                        &mut self.handoff_out,
                        owner,
                        &ip,
                        done.key.ident,
                        done.payload,
                    ),
                    Verdict::Kernel => {
                        // As fragments again, as they came: a frame of
                        // the MTU fits a buffer and the kernel's link.
                        let (kni, limit) = (self.kni.as_deref(), &mut self.kni_limit);
                        refragment(
                            &mut self.net,
                            &ip,
                            done.key.ident,
                            done.payload,
                            src_mac,
                            |net, buf| dispatch_kernel(net, kni, limit, buf),
                        );
                    }
                    Verdict::Drop(reason) => self.net.drop_frame(reason),
                }
            }
            Err(FragError::Overlap) => self.net.counters.drop(DropReason::FragOverlap),
            Err(FragError::TooBig) => self.net.counters.drop(DropReason::FragTooBig),
            Err(FragError::NoSpace) => self.net.counters.drop(DropReason::FragNoSpace),
        }
        let c = &mut self.net.counters;
        c.drops[DropReason::FragNoSpace as usize] += self.frag.take_evicted();
        c.frag_bytes_peak = c.frag_bytes_peak.max(self.frag.bytes_in_use() as u64);
        c.frag_in_flight = self.frag.in_flight() as u64;
        None
    }
}

#[cfg(test)]
thread_local! {
    /// Tests turn the echo fast path off to compare it with the general one.
    pub(super) static GENERAL_PATH_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Frames the echo fast path answered, for tests to see it taken.
    pub(super) static FAST_PATH_TAKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[inline(always)]
fn fast_path_taken() {
    #[cfg(test)]
    FAST_PATH_TAKEN.with(|n| n.set(n.get() + 1));
}

#[inline(always)]
fn fast_path_enabled() -> bool {
    #[cfg(test)]
    {
        !GENERAL_PATH_ONLY.with(|g| g.get())
    }
    #[cfg(not(test))]
    {
        true
    }
}

/// UDP and TCP checksums may be checked by the NIC (of a whole datagram).
#[inline(always)]
fn l4_offloaded(protocol: IpProtocol) -> bool {
    matches!(protocol, IpProtocol::Udp | IpProtocol::Tcp)
}

/// [`Net::request_tx_offload`] for a frame borrowed from the core (one
/// already in its TX queue): `ipv4_cksum` is the interface's IPv4 header
/// offload.
#[inline]
pub(super) fn request_offload<B: PacketBuf>(buf: &mut B, ipv4_cksum: bool, l4: Option<L4Checksum>) {
    if let Some(l4) = l4 {
        buf.request_tx_checksum(ETH_LEN as u16, IP_LEN as u16, l4);
    } else if ipv4_cksum {
        buf.request_tx_checksum(ETH_LEN as u16, IP_LEN as u16, L4Checksum::None);
    }
}

impl<P: BufPool> Net<P> {
    /// Ask the device for the checksums it is to fill: the L4 one given
    /// (`l4`: that protocol's checksum is offloaded), else the IPv4 header's
    /// alone where that is offloaded.
    pub(super) fn request_tx_offload(&self, buf: &mut P::Buf, l4: Option<L4Checksum>) {
        request_offload(buf, self.iface.tx_ipv4_cksum, l4);
    }

    /// Write Ethernet (destination left zero) and IPv4 headers at the front of
    /// `buf`, whose length must already be set to the whole frame.
    pub(super) fn emit_headers(
        &mut self,
        buf: &mut P::Buf,
        ip: &Ipv4Repr,
        ident: u16,
        frag: Option<(usize, bool)>,
    ) {
        let data = buf.data_mut();
        let eth = EthernetRepr {
            src_addr: self.iface.mac,
            dst_addr: EthernetAddress([0; 6]),
            ethertype: EtherType::Ipv4,
            vlan: None,
        };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut data[..]));
        let mut packet = Ipv4Packet::new_unchecked(&mut data[ETH_LEN..]);
        ip.emit(&mut packet, false);
        packet.set_ident(ident);
        // DF stays clear (no path MTU discovery for UDP, as Linux by default).
        if let Some((offset, more)) = frag {
            packet.set_frag_offset(offset as u16);
            packet.set_more_frags(more);
        }
        if self.iface.tx_ipv4_cksum {
            packet.set_checksum(0);
        } else {
            packet.fill_checksum();
        }
    }

    /// [`turn_around`](Self::turn_around) of an untagged frame whose plain
    /// header `ip` (to our address) was read and verified: cut to its
    /// datagram, addressed to `mac` from us, its IPv4 header the reply's.
    /// Its payload, to be turned around by its protocol.
    #[inline(always)]
    fn reply_in_place<'b>(
        &self,
        buf: &'b mut P::Buf,
        ip: &Ipv4Repr,
        mac: EthernetAddress,
        ident: Option<u16>,
    ) -> Option<&'b mut [u8]> {
        buf.set_len(ETH_LEN + IP_LEN + ip.payload_len);
        let (eth, rest) = buf.data_mut().split_first_chunk_mut::<ETH_LEN>()?;
        let (header, l4) = rest.split_first_chunk_mut::<IP_LEN>()?;
        EthernetFrame::set_addresses(eth, mac, self.iface.mac);
        Ipv4Packet::reply_plain(header, DEFAULT_TTL, ident);
        Some(l4)
    }

    /// The next hop toward `dst`; none is a drop, counted.
    pub(super) fn route(&mut self, dst: Ipv4Addr) -> Result<NextHop, SendError> {
        self.routes.next_hop(dst).ok_or_else(|| {
            self.counters.drop(DropReason::NoRoute);
            SendError::NoRoute
        })
    }

    /// Send a complete L4 datagram (`l4`, checksums already filled) to `dst`,
    /// fragmenting it if it does not fit the MTU.
    pub(super) fn send_ipv4(
        &mut self,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        l4: &[u8],
    ) -> Result<(), SendError> {
        let hop = self.route(dst)?;
        let repr = Ipv4Repr {
            src_addr: self.iface.ip.address(),
            dst_addr: dst,
            next_header: protocol,
            payload_len: l4.len(),
            hop_limit: DEFAULT_TTL,
            ecn: 0,
        };
        let ident = self.ident.next_ident();
        let mtu = self.iface.mtu;
        if IP_LEN + l4.len() <= mtu {
            let mut buf = self.alloc_frame(ETH_LEN + IP_LEN + l4.len())?;
            buf.data_mut()[ETH_LEN + IP_LEN..].copy_from_slice(l4);
            self.emit_headers(&mut buf, &repr, ident, None);
            self.request_tx_offload(&mut buf, None);
            return self.dispatch_frame(buf, hop);
        }
        for (offset, len, more) in crate::ipv4::frag::fragments(l4.len(), IP_LEN, mtu) {
            let mut buf = self.alloc_frame(ETH_LEN + IP_LEN + len)?;
            buf.data_mut()[ETH_LEN + IP_LEN..].copy_from_slice(&l4[offset..offset + len]);
            let frag_repr = Ipv4Repr {
                payload_len: len,
                ..repr
            };
            self.emit_headers(&mut buf, &frag_repr, ident, Some((offset, more)));
            self.request_tx_offload(&mut buf, None);
            self.dispatch_frame(buf, hop)?;
            self.counters.ipv4_fragments_sent += 1;
        }
        Ok(())
    }

    pub(super) fn alloc_frame(&mut self, len: usize) -> Result<P::Buf, SendError> {
        let Some(mut buf) = self.pool.alloc() else {
            self.counters.drop(DropReason::NoBuffer);
            return Err(SendError::NoBuffer);
        };
        if !buf.set_len(len) {
            self.counters.drop(DropReason::NoBuffer);
            return Err(SendError::NoBuffer);
        }
        Ok(buf)
    }

    /// The Ethernet and IPv4 headers of a received frame (no IP options, at
    /// `l2`) turned into its reply's, to `mac`; Ethernet padding is cut off.
    #[inline]
    pub(super) fn turn_around(
        &self,
        buf: &mut P::Buf,
        l2: usize,
        ip: &Ipv4Repr,
        mac: EthernetAddress,
        ident: Option<u16>,
    ) {
        let total = l2 + IP_LEN + ip.payload_len;
        buf.set_len(total);
        let data = buf.data_mut();
        let mut frame = EthernetFrame::new_unchecked(&mut data[..]);
        frame.set_dst_addr(mac);
        frame.set_src_addr(self.iface.mac);
        Ipv4Packet::new_unchecked(&mut data[l2..total]).rewrite_as_reply(
            self.iface.ip.address(),
            ip.src_addr,
            DEFAULT_TTL,
            ident,
        );
    }
}

/// What `net`'s tables say to the classifier: with steering, the flow
/// directories; with a kernel path, its policy.
#[inline]
fn core_tables<'a, P: BufPool>(
    net: &'a Net<P>,
    steering: Option<&'a Steering<P::Buf>>,
    kernel: Option<&'a KniPolicy>,
) -> Tables<'a> {
    Tables {
        me: net.info.index,
        local: net.iface.ip.address(),
        udp: &net.udp,
        tcp: &net.tcp,
        directories: steering.map(|s| (&*s.directory, &*s.udp_directory)),
        kernel,
    }
}

/// Cut a reassembled datagram into fragments of the MTU again, each in a
/// frame from `src_mac` to our own MAC (the handoff's and the kernel's
/// interface's), and give each to `emit` in order. False, with the drop
/// counted, when the pool runs short (the fragments already emitted are
/// then of no use: a reassembler drops them on its timeout).
#[cold]
pub(super) fn refragment<P: BufPool>(
    net: &mut Net<P>,
    ip: &Ipv4Repr,
    ident: u16,
    payload: &[u8],
    src_mac: EthernetAddress,
    mut emit: impl FnMut(&mut Net<P>, P::Buf),
) -> bool {
    for (offset, len, more) in crate::ipv4::frag::fragments(payload.len(), IP_LEN, net.iface.mtu) {
        // A buffer holds a frame of the MTU.
        let buf = net
            .pool
            .alloc()
            .and_then(|mut b| b.set_len(ETH_LEN + IP_LEN + len).then_some(b));
        let Some(mut buf) = buf else {
            net.drop_frame(DropReason::NoBuffer);
            return false;
        };
        let data = buf.data_mut();
        let eth = EthernetRepr {
            src_addr: src_mac,
            dst_addr: net.iface.mac,
            ethertype: EtherType::Ipv4,
            vlan: None,
        };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut data[..]));
        let mut packet = Ipv4Packet::new_unchecked(&mut data[ETH_LEN..]);
        Ipv4Repr {
            payload_len: len,
            ..*ip
        }
        .emit(&mut packet, false);
        packet.set_ident(ident);
        packet.set_frag_offset(offset as u16);
        packet.set_more_frags(more);
        packet.fill_checksum();
        data[ETH_LEN + IP_LEN..].copy_from_slice(&payload[offset..offset + len]);
        emit(net, buf);
    }
    true
}

/// Hand a complete (possibly reassembled) datagram to its protocol.
/// `header` is its IP header as received, options included; `in_place`:
/// its received frame can be turned into a UDP reply.
#[inline]
fn deliver_datagram<P: BufPool>(
    net: &mut Net<P>,
    apps: &mut [Box<dyn App>],
    ip: &Ipv4Repr,
    header: &[u8],
    payload: &[u8],
    in_place: bool,
) {
    net.counters.ipv4_delivered += 1;
    match ip.next_header {
        IpProtocol::Udp => process_udp(net, apps, ip, header, payload, in_place),
        IpProtocol::Icmp => net.process_icmp_copy(ip, payload),
        IpProtocol::Tcp => {
            net.process_tcp(ip, payload);
            deliver_tcp_events(net, apps);
        }
        // The rest goes to the kernel exception path once it exists.
        _ => net.drop_frame(DropReason::Unsupported),
    }
}
