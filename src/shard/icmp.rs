//! ICMP on a core: echo requests answered in their own buffer or from a
//! copy, and the rate-limited errors that quote the datagram they are about
//! (RFC 792, RFC 1122 3.2.2).

use super::ctx::Net;
use super::ipv4::IP_LEN;
use crate::buf::{BufPool, PacketBuf};
use crate::stats::DropReason;
use crate::wire::{
    icmp, EthernetAddress, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet,
    Ipv4Repr,
};

impl<P: BufPool> Net<P> {
    /// Is `icmp` a valid echo request we answer? Drops and counts it if not.
    #[inline(always)]
    fn accept_echo_request(&mut self, ip: &Ipv4Repr, icmp: &[u8]) -> bool {
        let packet = match Icmpv4Packet::new_checked(icmp) {
            Ok(p) => p,
            Err(e) => {
                self.drop_frame(e.into());
                return false;
            }
        };
        let us = ip.dst_addr == self.iface.ip.address();
        if packet.is_echo_request() && packet.verify_checksum() {
            // The common case without building the Repr; the rest below
            // only to find the drop reason.
            if us {
                return true;
            }
            self.drop_frame(DropReason::NotForUs);
            return false;
        }
        let reason = match Icmpv4Repr::parse(&packet, true) {
            // RFC 1122 3.2.2.6: echo to a broadcast address MAY be ignored.
            Ok(Icmpv4Repr::EchoRequest { .. }) if !us => DropReason::NotForUs,
            Ok(Icmpv4Repr::EchoRequest { .. }) => return true,
            Ok(_) => DropReason::Unsupported,
            Err(e) => e.into(),
        };
        self.drop_frame(reason);
        false
    }

    /// Echo request in a plain (unfragmented, option-less) datagram: turn
    /// the same buffer into the reply, to `src_mac` (the frame's sender).
    #[inline(always)]
    pub(super) fn process_icmp_in_place(
        &mut self,
        mut buf: P::Buf,
        l2: usize,
        ip: &Ipv4Repr,
        src_mac: EthernetAddress,
    ) {
        let icmp_start = l2 + IP_LEN;
        let total = l2 + IP_LEN + ip.payload_len;
        if !self.accept_echo_request(ip, &buf.data()[icmp_start..total]) {
            return;
        }
        self.turn_around(&mut buf, l2, ip, src_mac, None);
        Icmpv4Packet::echo_request_to_reply(&mut buf.data_mut()[icmp_start..total]);
        if self.push_tx(buf).is_ok() {
            self.counters.icmp_echo_replies += 1;
        }
    }

    /// ICMP in a reassembled datagram or one with IP options: reply from a
    /// copy, through the normal output path (fragmenting as needed).
    pub(super) fn process_icmp_copy(&mut self, ip: &Ipv4Repr, payload: &[u8]) {
        if !self.accept_echo_request(ip, payload) {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let reply = &mut scratch[..payload.len()];
        reply.copy_from_slice(payload);
        Icmpv4Packet::echo_request_to_reply(reply);
        if self.send_ipv4(ip.src_addr, IpProtocol::Icmp, reply).is_ok() {
            self.counters.icmp_echo_replies += 1;
        }
        self.scratch = scratch;
    }

    /// Send an ICMP error about a datagram whose IP header is `header`,
    /// quoting the header and the first 8 bytes of its payload (RFC 792).
    /// `payload` is None when the header's own datagram is not at hand (the
    /// reassembler's timeout hands only the first fragment's header).
    pub(super) fn send_icmp_error(
        &mut self,
        header: &[u8],
        msg: Icmpv4Message,
        code: u8,
        payload: Option<&[u8]>,
    ) {
        let Ok(orig) = Ipv4Packet::new_checked(header).or_else(|_| {
            // A header alone fails the total-length check: view it unchecked
            // after checking its own length.
            if header.len() >= IP_LEN {
                Ok(Ipv4Packet::new_unchecked(header))
            } else {
                Err(())
            }
        }) else {
            return;
        };
        let dst = orig.src_addr();
        if !self.routes.valid_source(dst) {
            return;
        }
        if !self.icmp_limit.allow(self.now) {
            self.counters.icmp_rate_limited += 1;
            return;
        }
        let mut quote = [0u8; 60 + 8];
        let hl = header.len().min(60);
        quote[..hl].copy_from_slice(&header[..hl]);
        let extra = payload.map_or(0, |p| p.len().min(8));
        if let Some(p) = payload {
            quote[hl..hl + extra].copy_from_slice(&p[..extra]);
        }
        let original = &quote[..hl + extra];
        let len = icmp::error_len(original.len());
        let mut scratch = std::mem::take(&mut self.scratch);
        {
            let mut packet = Icmpv4Packet::new_unchecked(&mut scratch[..len]);
            icmp::emit_error_quoting(&mut packet, msg, code, original);
        }
        if self
            .send_ipv4(dst, IpProtocol::Icmp, &scratch[..len])
            .is_ok()
        {
            self.counters.icmp_errors_sent += 1;
        }
        self.scratch = scratch;
    }
}
