//! UDP on a core: datagrams in (lengths, checksum, the socket, port
//! unreachable), datagrams out (one frame, its checksum offloaded where the
//! NIC can, or built whole and fragmented), and the in-place echo that turns
//! a received frame into its own reply.

use super::ctx::Net;
use super::ethernet::ETH_LEN;
use super::ipv4::{DEFAULT_TTL, IP_LEN};
use crate::app::{App, Datagram, SendError};
use crate::buf::{BufPool, L4Checksum, PacketBuf};
use crate::ipv4::NextHop;
use crate::stats::flows::Transport;
use crate::stats::DropReason;
use crate::wire::{
    checksum, EthernetAddress, Icmpv4Message, IpProtocol, Ipv4Repr, UdpPacket, UdpRepr,
};
use std::net::SocketAddrV4;

const UDP_LEN: usize = UdpPacket::<&[u8]>::HEADER_LEN;
/// The largest UDP payload an IPv4 datagram can carry.
pub const MAX_UDP_PAYLOAD: usize = 65535 - IP_LEN - UDP_LEN;

impl<P: BufPool> Net<P> {
    /// Whether this send is the echo of the datagram being delivered (the
    /// same bytes, back to its sender, from the port it came to) and its
    /// frame can carry it: then the receive buffer is turned around instead
    /// of copied (as the ICMP echo is). Once per datagram, and only with
    /// the next hop resolved and room in the TX buffer, so that it cannot
    /// fail later; anything else takes the ordinary path.
    #[inline]
    pub(super) fn take_reply_in_place(
        &mut self,
        src_port: u16,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> bool {
        let Some((addr, len, port, from)) = self.rx_inplace else {
            return false;
        };
        if addr != payload.as_ptr() as usize
            || len != payload.len()
            || port != src_port
            || from != dst
            || self.tx.len() >= self.tx_room()
        {
            return false;
        }
        let mac = match self.routes.next_hop(*dst.ip()) {
            Some(NextHop::Neighbor(ip)) => self.arp.lookup(&ip),
            _ => None,
        };
        let Some(mac) = mac else {
            return false;
        };
        self.rx_inplace = None;
        self.reply_inplace = Some((mac, self.tx.len()));
        true
    }

    /// The built-in echo's answer (UdpEcho::on_datagram: `send_udp` of the
    /// datagram's own bytes back to `src` from `port`) to a datagram whose
    /// frame can carry it, with send_udp's effects and without its calls
    /// and the checks that hold here (the port is bound to the echo, just
    /// looked up; the bytes and the address are the datagram's own, which
    /// `take_reply_in_place` compares). False, nothing changed, where
    /// send_udp would not answer in place (port 0, no room in the TX
    /// buffer, next hop unresolved): the echo then calls send_udp.
    #[inline(always)]
    pub(super) fn echo_in_place(&mut self, port: u16, src: SocketAddrV4, len: usize) -> bool {
        if src.port() == 0 || self.tx.len() >= self.tx_room() {
            return false;
        }
        let mac = match self.routes.next_hop(*src.ip()) {
            Some(NextHop::Neighbor(ip)) => self.arp.lookup(&ip),
            _ => None,
        };
        let Some(mac) = mac else {
            return false;
        };
        let Some(b) = self.udp.lookup(port) else {
            return false;
        };
        b.tx += 1;
        self.reply_inplace = Some((mac, self.tx.len()));
        self.counters.udp_tx += 1;
        self.record_flow_out(Transport::Udp, port, src, 1, len as u64);
        true
    }

    /// Turn a received UDP datagram (no IP options, at `l2`) into its own
    /// echo to `mac`, queued at `slot` of the TX buffer: where it was sent,
    /// before what the callback sent after it. The UDP checksum stays valid:
    /// swapping the addresses leaves the pseudo-header's sum as it was, and
    /// swapping the ports leaves the header's.
    #[inline]
    pub(super) fn dispatch_udp_in_place(
        &mut self,
        mut buf: P::Buf,
        l2: usize,
        ip: &Ipv4Repr,
        mac: EthernetAddress,
        slot: usize,
    ) {
        let total = l2 + IP_LEN + ip.payload_len;
        // DF clear and a new ident, as on the ordinary path.
        let ident = self.ident.next_ident();
        self.turn_around(&mut buf, l2, ip, mac, Some(ident));
        UdpPacket::new_unchecked(&mut buf.data_mut()[l2 + IP_LEN..total]).swap_ports();
        // Counted as sent by send_udp; its place was kept (the buffer was
        // sized up front, so the insert does not allocate).
        debug_assert!(self.tx.len() < self.tx_cap);
        // Mostly the last: a push, without insert's move of the tail.
        if slot >= self.tx.len() {
            self.tx.push(buf);
        } else {
            self.tx.insert(slot, buf);
        }
    }

    pub(super) fn dispatch_udp(
        &mut self,
        src_port: u16,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if payload.len() > MAX_UDP_PAYLOAD {
            return Err(SendError::TooBig);
        }
        let src_ip = self.iface.ip.address();
        let udp = UdpRepr {
            src_port,
            dst_port: dst.port(),
        };
        let udp_len = UDP_LEN + payload.len();
        if IP_LEN + udp_len > self.iface.mtu {
            // Build the whole datagram (checksum over all of it), then fragment.
            let mut scratch = std::mem::take(&mut self.scratch);
            {
                let mut packet = UdpPacket::new_unchecked(&mut scratch[..udp_len]);
                udp.emit(
                    &mut packet,
                    &src_ip,
                    dst.ip(),
                    payload.len(),
                    |b| b.copy_from_slice(payload),
                    true,
                );
            }
            let r = self.send_ipv4(*dst.ip(), IpProtocol::Udp, &scratch[..udp_len]);
            self.scratch = scratch;
            return r;
        }
        let hop = match self.routes.next_hop(*dst.ip()) {
            Some(h) => h,
            None => {
                self.counters.drop(DropReason::NoRoute);
                return Err(SendError::NoRoute);
            }
        };
        let mut buf = self.alloc_frame(ETH_LEN + IP_LEN + udp_len)?;
        let ip = Ipv4Repr {
            src_addr: src_ip,
            dst_addr: *dst.ip(),
            next_header: IpProtocol::Udp,
            payload_len: udp_len,
            hop_limit: DEFAULT_TTL,
            ecn: 0,
        };
        let offload = self.iface.tx_udp_cksum;
        {
            let data = buf.data_mut();
            let mut packet = UdpPacket::new_unchecked(&mut data[ETH_LEN + IP_LEN..]);
            udp.emit(
                &mut packet,
                &src_ip,
                dst.ip(),
                payload.len(),
                |b| b.copy_from_slice(payload),
                !offload,
            );
            if offload {
                // DPDK wants the pseudo-header sum in the field.
                let ph =
                    checksum::pseudo_header(&src_ip, dst.ip(), IpProtocol::Udp, udp_len as u32);
                packet.set_checksum(ph);
            }
        }
        let ident = self.ident.next_ident();
        self.emit_headers(&mut buf, &ip, ident, None);
        self.request_tx_offload(&mut buf, offload.then_some(L4Checksum::Udp));
        self.dispatch_frame(buf, hop)
    }
}

pub(super) fn process_udp<P: BufPool>(
    net: &mut Net<P>,
    apps: &mut [Box<dyn App>],
    ip: &Ipv4Repr,
    header: &[u8],
    payload: &[u8],
    in_place: bool,
) {
    let packet = match UdpPacket::new_checked(payload) {
        Ok(p) => p,
        Err(e) => return net.drop_frame(e.into()),
    };
    // The UDP length must be the IP payload's exactly.
    let udp_len = packet.len() as usize;
    if udp_len != payload.len() {
        let reason = if udp_len > payload.len() {
            DropReason::Truncated
        } else {
            DropReason::Malformed
        };
        return net.drop_frame(reason);
    }
    let udp = match UdpRepr::parse(&packet, &ip.src_addr, &ip.dst_addr, !net.rx_l4_good) {
        Ok(r) => r,
        Err(e) => return net.drop_frame(e.into()),
    };
    let src = SocketAddrV4::new(ip.src_addr, udp.src_port);
    let binding = match net.udp.lookup(udp.dst_port) {
        Some(b) if b.accepts(src) => {
            b.rx += 1;
            b.app
        }
        _ => {
            net.counters.drop(DropReason::NoSocket);
            if ip.dst_addr == net.iface.ip.address() {
                // RFC 1122 3.2.2.1: port unreachable, never for broadcasts.
                net.send_icmp_error(header, Icmpv4Message::DstUnreachable, 3, Some(payload));
            }
            return;
        }
    };
    net.counters.udp_rx += 1;
    // The length was checked above: the datagram's data is the rest.
    let data = payload.get(UDP_LEN..).unwrap_or_default();
    net.record_flow_in(Transport::Udp, udp.dst_port, src, data.len());
    let dgram = Datagram {
        src,
        dst: SocketAddrV4::new(ip.dst_addr, udp.dst_port),
        payload: data,
    };
    if let Some(app) = apps.get_mut(binding) {
        net.current_app = binding;
        let echo = app.as_udp_echo();
        if let Some(echo) = echo {
            if in_place && net.echo_in_place(udp.dst_port, src, data.len()) {
                echo.count_echoed();
                return;
            }
            // Where the echo does not fit its own frame: as it calls us.
            return echo.answer(net, &dgram);
        }
        if in_place {
            let p = dgram.payload;
            net.rx_inplace = Some((p.as_ptr() as usize, p.len(), udp.dst_port, src));
        }
        app.on_datagram(net, &dgram);
        net.rx_inplace = None;
    }
}
