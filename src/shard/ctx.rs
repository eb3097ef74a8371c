//! The per-core context: everything one core owns, and the protocol
//! dispatch that runs on it. No FFI: it is generic over [`BufPool`], so
//! `cargo test` drives it with heap buffers and the shard with mbufs.
//!
//! Invariants: every frame handed to [`Core::process_frame`] is either
//! answered (its buffer reused or freed), queued for transmit, or dropped and
//! counted under one [`DropReason`]. Nothing here blocks, and nothing
//! allocates per packet once built (the TX vector, pending queue, scratch and
//! reassembly memory are sized up front).

use super::classify::{classify, Tables, Verdict};
use super::steer::Steering;
use crate::app::{
    App, AppFactory, BindError, ConnId, CoreInfo, Datagram, NetCtx, SendError, TcpError, TcpEvent,
};
use crate::arp::{ArpPending, ArpReader, ArpShared, ArpWriter, LearnResult, PendingOutcome};
use crate::buf::{BufPool, L4Checksum, PacketBuf, RxChecksum};
use crate::icmp::{checksum_adjust, RateLimiter};
use crate::ipv4::frag::{FragError, FragKey, Reassembler, ReassemblyConfig};
use crate::ipv4::{IdentGen, NextHop, Routes};
use crate::kni::{KniPolicy, KniShared};
use crate::stats::flows::{FlowId, FlowLog, Transport};
use crate::stats::{Counters, DropReason};
use crate::tcp::isn::IsnGenerator;
use crate::tcp::syncache::{syn_ack, Expired, SynAction, SynCache, SynDefence, SynEntry};
use crate::tcp::syncookie::{PeerSyn, SynCookies};
use crate::tcp::table::FlowKey;
use crate::tcp::{event, tcb, SynCookieMode, Tcb, TcpConfig, TcpTable};
use crate::time::{Duration, Instant};
use crate::udp::UdpTable;
use crate::wire::{
    checksum, icmp, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Cidr, Ipv4Packet,
    Ipv4Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

const ETH_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
const IP_LEN: usize = Ipv4Packet::<&[u8]>::HEADER_LEN;
const UDP_LEN: usize = UdpPacket::<&[u8]>::HEADER_LEN;
/// The largest UDP payload an IPv4 datagram can carry.
pub const MAX_UDP_PAYLOAD: usize = 65535 - IP_LEN - UDP_LEN;
const DEFAULT_TTL: u8 = 64;
/// Frames taken from each other core's handoff queue per poll.
const BURST_HANDOFF: usize = 32;

#[path = "conns.rs"]
pub mod conns;
#[path = "tcp_glue.rs"]
mod tcp_glue;
use tcp_glue::deliver_tcp_events;

/// What a core needs to know about its interface.
#[derive(Clone, Copy, Debug)]
pub struct IfaceConfig {
    pub mac: EthernetAddress,
    pub ip: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU.
    pub mtu: usize,
    /// The NIC fills IPv4 header checksums.
    pub tx_ipv4_cksum: bool,
    /// The NIC fills UDP checksums.
    pub tx_udp_cksum: bool,
    /// The NIC fills TCP checksums.
    pub tx_tcp_cksum: bool,
}

/// Sizes of the per-core tables.
#[derive(Clone, Copy, Debug)]
pub struct CoreLimits {
    /// Frames buffered for transmit between flushes.
    pub tx_queue: usize,
    /// Frames waiting for ARP.
    pub arp_pending: usize,
    pub arp_pending_timeout: Duration,
    pub arp_retry: Duration,
    /// ICMP errors per second and burst.
    pub icmp_rate: u64,
    pub icmp_burst: u64,
    pub reassembly: ReassemblyConfig,
    pub tcp: TcpConfig,
    /// The ISN secret, the same on every core.
    pub isn: IsnGenerator,
    /// The SYN cookie secret, the same on every core (see syncookie.rs).
    pub cookies: SynCookies,
    /// Flows each core keeps a record of (0: no records).
    pub flow_records: usize,
    /// Bytes of TCP send and receive buffer the core may hold
    /// (`--tcp-memory`; `usize::MAX`: no limit).
    pub tcp_memory: usize,
}

impl Default for CoreLimits {
    fn default() -> Self {
        CoreLimits {
            tx_queue: 1024,
            arp_pending: 256,
            arp_pending_timeout: Duration::from_secs(3),
            arp_retry: Duration::from_secs(1),
            icmp_rate: 100,
            icmp_burst: 50,
            reassembly: ReassemblyConfig::default(),
            tcp: TcpConfig::default(),
            isn: IsnGenerator::new(),
            cookies: SynCookies::new(),
            flow_records: 0,
            tcp_memory: usize::MAX,
        }
    }
}

/// The network side of a core: all of its state but the applications and
/// the reassembler, so that an application can be handed `&mut Net` while
/// the stack still holds the datagram it is reading.
pub struct Net<P: BufPool> {
    iface: IfaceConfig,
    routes: Routes,
    info: CoreInfo,
    pool: P,
    now: Instant,
    pub counters: Counters,
    tx: Vec<P::Buf>,
    tx_cap: usize,
    arp: ArpReader,
    pending: ArpPending<P::Buf>,
    udp: UdpTable,
    ident: IdentGen,
    icmp_limit: RateLimiter,
    /// A datagram being built for fragmentation (64 KiB, allocated once).
    scratch: Vec<u8>,
    /// The application calling into `NetCtx` now.
    current_app: usize,
    /// The datagram an application is being handed, when its frame may carry
    /// the reply: (payload address, length, our port, the sender).
    rx_inplace: Option<(usize, usize, u16, SocketAddrV4)>,
    /// An application answered that datagram with its own bytes, to its
    /// sender: the receive buffer becomes the reply, to this MAC, at this
    /// place in the TX buffer (kept for it, so that sends later in the same
    /// callback go after it and cannot take its room).
    reply_inplace: Option<(EthernetAddress, usize)>,
    tcp: TcpTable,
    /// Half-open connections and SYN cookies (SYN flood defence).
    syn: SynDefence,
    /// Events for applications, raised while a segment or timer ran.
    tcp_events: Vec<(usize, TcpEvent)>,
    /// Connections whose timers fired (scratch).
    tcp_expired: Vec<u32>,
    next_tcp_gauges: Instant,
    /// Connections applications wrote to in this callback round.
    tcp_dirty: Vec<u32>,
    /// Which flows this core handled (`--flow-records`), if kept.
    flows: Option<FlowLog>,
    /// The frame being processed was handed over by another core.
    rx_handed: bool,
    /// The NIC found the UDP/TCP checksum of the datagram being processed
    /// right (never for a reassembled one): it is not computed again.
    rx_l4_good: bool,
}

/// One core: its network state, its reassembler, its applications, and on
/// the main core the ARP table's writer.
pub struct Core<P: BufPool> {
    pub net: Net<P>,
    frag: Reassembler,
    apps: Vec<Box<dyn App>>,
    arp_writer: Option<ArpWriter>,
    next_arp_expire: Instant,
    steering: Option<Arc<Steering<P::Buf>>>,
    /// Frames for connections other cores own, to hand over.
    handoff_out: Vec<(usize, P::Buf)>,
    /// The exception path toward the kernel, when there is one.
    kni: Option<Arc<KniShared<P::Buf>>>,
    kni_policy: KniPolicy,
    kni_limit: RateLimiter,
}

impl<P: BufPool> Core<P> {
    /// Build a core's context; call on the core that will run it.
    /// `arp_writer` is true on exactly one core.
    pub fn new(
        iface: IfaceConfig,
        info: CoreInfo,
        pool: P,
        arp: Arc<ArpShared>,
        arp_writer: bool,
        limits: CoreLimits,
        factories: &[AppFactory],
    ) -> Self {
        let apps = factories.iter().map(|f| f(&info)).collect();
        // The buffer pool is this thread's: the core's, as this runs on it.
        crate::tcp::buffer::set_core_budget(limits.tcp_memory);
        let mut tcp = TcpTable::new(limits.tcp, limits.isn, Instant::ZERO);
        tcp.set_port_share(info.index, info.count);
        let frag = Reassembler::new(limits.reassembly);
        let counters = Counters {
            frag_bytes_limit: frag.bytes_capacity() as u64,
            tcp_mem_limit: limits.tcp_memory as u64,
            ..Default::default()
        };
        Core {
            net: Net {
                routes: Routes {
                    local: iface.ip,
                    gateway: iface.gateway,
                },
                iface,
                info,
                pool,
                now: Instant::ZERO,
                counters,
                tx: Vec::with_capacity(limits.tx_queue),
                tx_cap: limits.tx_queue,
                arp: ArpReader::new(arp.clone()),
                pending: ArpPending::new(
                    limits.arp_pending,
                    limits.arp_pending_timeout,
                    limits.arp_retry,
                ),
                udp: UdpTable::new(),
                ident: IdentGen::new(info.index, info.count),
                icmp_limit: RateLimiter::new(limits.icmp_rate, limits.icmp_burst),
                scratch: vec![0; 65536],
                current_app: 0,
                rx_inplace: None,
                reply_inplace: None,
                tcp,
                syn: SynDefence::new(
                    limits.tcp.syn_cache,
                    limits.tcp.syncookies,
                    limits.cookies,
                    limits.tcp.rto_initial,
                    Instant::ZERO,
                ),
                tcp_events: Vec::with_capacity(256),
                tcp_expired: Vec::with_capacity(limits.tcp.max_connections),
                next_tcp_gauges: Instant::ZERO,
                tcp_dirty: Vec::with_capacity(256),
                flows: (limits.flow_records > 0).then(|| FlowLog::new(limits.flow_records)),
                rx_handed: false,
                rx_l4_good: false,
            },
            frag,
            apps,
            arp_writer: arp_writer.then(|| ArpWriter::new(arp)),
            next_arp_expire: Instant::ZERO,
            steering: None,
            handoff_out: Vec::with_capacity(64),
            kni: None,
            kni_policy: KniPolicy::default(),
            kni_limit: RateLimiter::new(0, 0),
        }
    }

    /// Send what this core does not own to the kernel, by `policy`, at most
    /// `rate` frames per second from this core.
    pub fn set_kni(&mut self, shared: Arc<KniShared<P::Buf>>, policy: KniPolicy, rate: u64) {
        self.kni = Some(shared);
        self.kni_policy = policy;
        self.kni_limit = RateLimiter::new(rate, (rate / 10).max(32));
    }

    /// Queue `buf` for the kernel, or drop and count it (rate, link down,
    /// queue full). Never waits.
    fn dispatch_kernel(&mut self, buf: P::Buf) {
        dispatch_kernel(&mut self.net, self.kni.as_deref(), &mut self.kni_limit, buf);
    }

    /// A copy of `frame` for the kernel (ARP: both need to see it).
    fn dispatch_kernel_copy(&mut self, frame: &[u8]) {
        let Some(mut copy) = self.net.pool.alloc() else {
            self.net.counters.drop(DropReason::NoBuffer);
            return;
        };
        if !copy.set_len(frame.len()) {
            self.net.counters.drop(DropReason::NoBuffer);
            return;
        }
        copy.data_mut().copy_from_slice(frame);
        self.dispatch_kernel(copy);
    }

    /// Predict the device's RSS for connections this core opens: their
    /// source port is chosen so that replies reach this core's queue.
    pub fn set_rss(&mut self, p: Arc<rss::QueuePredictor>) {
        let local = self.net.iface.ip.address();
        self.net.tcp.set_rss(p, self.net.info.index as u16, local);
    }

    /// Share TCP flow ownership with the other cores: this core's
    /// connections go into the directory, and segments for connections
    /// another core owns are handed to it.
    pub fn set_steering(&mut self, s: Arc<Steering<P::Buf>>) {
        self.net
            .tcp
            .set_directory(s.directory.clone(), self.net.info.index);
        self.net
            .syn
            .cache
            .set_directory(s.directory.clone(), self.net.info.index);
        self.net
            .udp
            .set_directory(s.udp_directory.clone(), self.net.info.index);
        self.steering = Some(s);
    }

    /// Process the frames other cores handed to this one.
    pub fn poll_handoffs(&mut self) {
        let Some(s) = self.steering.clone() else {
            return;
        };
        let me = self.net.info.index;
        for src in (0..s.cores()).filter(|&c| c != me) {
            for _ in 0..BURST_HANDOFF {
                let Some(buf) = s.pop(src, me) else {
                    break;
                };
                self.net.counters.steer_handoffs_in += 1;
                self.process_frame_inner(buf, true);
            }
        }
    }

    /// Hand over what this core received for other cores' connections.
    pub fn flush_handoffs(&mut self) {
        let Some(s) = self.steering.as_ref() else {
            return;
        };
        let me = self.net.info.index;
        for (dst, buf) in self.handoff_out.drain(..) {
            if let Err(_buf) = s.push(me, dst, buf) {
                self.net.counters.steer_handoff_dropped += 1;
                self.net.counters.drop(DropReason::QueueFull);
            } else {
                self.net.counters.steer_handoffs_out += 1;
            }
        }
        self.net.counters.steer_directory_full = self.net.tcp.directory_full
            + self.net.udp.directory_full
            + self.net.syn.cache.directory_full;
    }

    /// Start the applications (they bind their ports) and, on the ARP
    /// writer's core, announce our address with a gratuitous ARP.
    pub fn start(&mut self, now: Instant) -> Result<(), (String, BindError)> {
        self.net.now = now;
        for (i, app) in self.apps.iter_mut().enumerate() {
            self.net.current_app = i;
            app.start(&mut self.net).map_err(|e| (app.name(), e))?;
        }
        self.net.flush_tcp_dirty();
        if self.arp_writer.is_some() {
            let ip = self.net.iface.ip.address();
            self.net.send_arp(
                ArpOperation::Request,
                EthernetAddress::BROADCAST,
                EthernetAddress([0; 6]),
                ip,
            );
        }
        Ok(())
    }

    /// Start of a burst: take the time and the newest ARP snapshot; release
    /// packets whose next hop just resolved.
    #[inline]
    pub fn begin_burst(&mut self, now: Instant) {
        self.net.now = now;
        if self.net.arp.refresh() {
            self.net.release_pending();
        }
    }

    /// Frames waiting to be transmitted. The shard drains this into the TX
    /// queue.
    #[inline]
    pub fn tx_queue(&mut self) -> &mut Vec<P::Buf> {
        &mut self.net.tx
    }

    /// The TX buffer and the counters, borrowed together for a flush.
    #[inline]
    pub fn split_tx(&mut self) -> (&mut Vec<P::Buf>, &mut Counters) {
        (&mut self.net.tx, &mut self.net.counters)
    }

    /// Timers: ARP writer, ARP pending, reassembly expiry, applications.
    pub fn poll_timers(&mut self, now: Instant) {
        self.net.now = now;
        if let Some(w) = self.arp_writer.as_mut() {
            w.drain();
            if now >= self.next_arp_expire {
                w.expire(now);
                self.next_arp_expire = now.plus(Duration::from_secs(1));
            }
            self.net.counters.arp_table_full = w.stats.table_full;
            self.net.counters.arp_entries = w.len() as u64;
        }
        if self.net.arp.refresh() {
            self.net.release_pending();
        }
        self.net.poll_pending();
        let net = &mut self.net;
        let expired = self.frag.expire(now, |_key, header| {
            net.send_icmp_error(header, Icmpv4Message::TimeExceeded, 1, None);
        });
        self.net.counters.drops[DropReason::FragTimeout as usize] += expired as u64;
        self.net.counters.frag_in_flight = self.frag.in_flight() as u64;
        self.net.poll_tcp_timers();
        deliver_tcp_events(&mut self.net, &mut self.apps);
        for (i, app) in self.apps.iter_mut().enumerate() {
            self.net.current_app = i;
            app.poll(&mut self.net);
        }
        self.net.flush_tcp_dirty();
    }

    /// Applications' names and counters, for printing.
    pub fn app_counters(&self) -> Vec<(String, Vec<(&'static str, u64)>)> {
        self.apps.iter().map(|a| (a.name(), a.counters())).collect()
    }

    /// A frame the kernel sent out of its interface: to the wire, as it is.
    pub fn transmit_from_kernel(&mut self, buf: P::Buf) {
        if self.net.push_tx(buf).is_ok() {
            self.net.counters.kni_from_kernel += 1;
        }
    }

    /// Buffers this core holds: queued for TX or waiting for ARP or
    /// handoff.
    pub fn held(&self) -> usize {
        self.net.tx.len() + self.net.pending.len() + self.handoff_out.len()
    }

    /// Drop everything held (shutdown), so every buffer returns to its pool.
    pub fn clear(&mut self) {
        self.net.tx.clear();
        self.net.pending.clear();
        self.net.tcp.clear();
        self.net.syn.cache.clear();
        self.handoff_out.clear();
        if let Some(s) = self.steering.as_ref() {
            // Frames handed to this core and never processed.
            let me = self.net.info.index;
            for src in 0..s.cores() {
                while s.pop(src, me).is_some() {}
            }
        }
    }

    /// TCP connections in the table (TIME_WAIT included).
    pub fn tcp_connections(&self) -> usize {
        self.net.tcp.len()
    }

    /// Bound UDP ports (connected sockets included) on this core.
    pub fn udp_sockets(&self) -> usize {
        self.net.udp.len()
    }

    /// The SYN cache, read-only (tests, diagnostics).
    pub fn syn_cache(&self) -> &SynCache {
        &self.net.syn.cache
    }

    /// The TCP table, read-only (tests, diagnostics).
    pub fn tcp_table(&self) -> &TcpTable {
        &self.net.tcp
    }

    /// Process one received frame.
    pub fn process_frame(&mut self, buf: P::Buf) {
        let c = &mut self.net.counters;
        c.rx_packets += 1;
        c.rx_bytes += buf.len() as u64;
        self.process_frame_inner(buf, false);
    }

    /// `handed_off`: another core sent it here; it is never handed on.
    fn process_frame_inner(&mut self, buf: P::Buf, handed_off: bool) {
        let data = buf.data();
        let frame = match EthernetFrame::new_checked(data) {
            Ok(f) => f,
            Err(e) => return self.net.drop_frame(e.into()),
        };
        let eth = match EthernetRepr::parse(&frame) {
            Ok(r) => r,
            Err(e) => return self.net.drop_frame(e.into()),
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
            EtherType::Ipv4 => self.process_ipv4(buf, &eth, handed_off),
            _ if self.kni.is_some() && self.kni_policy.other_ethertypes && eth.vlan.is_none() => {
                self.dispatch_kernel(buf)
            }
            _ => self.net.drop_frame(DropReason::Unsupported),
        }
    }

    fn process_ipv4(&mut self, buf: P::Buf, eth: &EthernetRepr, handed_off: bool) {
        self.net.rx_handed = handed_off;
        let l2 = eth.buffer_len();
        let bytes = &buf.data()[l2..];
        let packet = match Ipv4Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => return self.net.drop_frame(e.into()),
        };
        // Longer than the MTU: af_packet's fanout (PACKET_FANOUT_FLAG_DEFRAG)
        // hands over datagrams the kernel reassembled from their fragments.
        // Taken when the frame holds exactly one whole datagram, and answered
        // as a reassembled one would be (never in place: replies are
        // fragmented to the MTU).
        let oversize = bytes.len() > self.net.iface.mtu;
        if oversize && (packet.is_fragment() || usize::from(packet.total_len()) != bytes.len()) {
            return self.net.drop_frame(DropReason::Oversize);
        }
        let csum = buf.rx_checksum();
        let l4_offloaded = !packet.is_fragment()
            && matches!(packet.next_header(), IpProtocol::Udp | IpProtocol::Tcp);
        if csum.ip == RxChecksum::Bad || (l4_offloaded && csum.l4 == RxChecksum::Bad) {
            self.net.counters.rx_csum_offload_bad += 1;
            return self.net.drop_frame(DropReason::BadChecksum);
        }
        self.net.rx_l4_good = l4_offloaded && csum.l4 == RxChecksum::Good;
        self.net.counters.rx_csum_offload_good +=
            u64::from(csum.ip == RxChecksum::Good) + u64::from(self.net.rx_l4_good);
        let ip = match Ipv4Repr::parse(&packet, csum.ip != RxChecksum::Good) {
            Ok(r) => r,
            Err(e) => return self.net.drop_frame(e.into()),
        };
        if !self.net.routes.accepts(ip.dst_addr) {
            return self.net.drop_frame(DropReason::NotForUs);
        }
        if !self.net.routes.valid_source(ip.src_addr) {
            return self.net.drop_frame(DropReason::Malformed);
        }
        let header_len = packet.header_len() as usize;
        if header_len > IP_LEN {
            if let Err(e) = packet.check_options() {
                return self.net.drop_frame(e.into());
            }
        }
        if packet.is_fragment() {
            if packet.dont_frag() {
                // RFC 791: DF and MF/offset together cannot happen.
                return self.net.drop_frame(DropReason::Malformed);
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
                                eth.src_addr,
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
            return;
        }
        let payload = packet.payload();
        let tables = core_tables(
            &self.net,
            self.steering.as_deref(),
            self.kni.is_some().then_some(&self.kni_policy),
        );
        match classify(&tables, &ip, payload, handed_off) {
            Verdict::Local => {}
            Verdict::Owner(owner) => return self.handoff_out.push((owner, buf)),
            Verdict::Kernel if oversize => {
                // The kernel's link takes frames of the MTU.
                let (kni, limit) = (self.kni.as_deref(), &mut self.kni_limit);
                refragment(
                    &mut self.net,
                    &ip,
                    packet.ident(),
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
            return self.net.process_icmp_in_place(buf, l2, &ip);
        }
        let header = &bytes[..header_len];
        // The frame can carry its own UDP reply: no options, to our address.
        let in_place =
            header_len == IP_LEN && ip.dst_addr == self.net.iface.ip.address() && !oversize;
        deliver_datagram(
            &mut self.net,
            &mut self.apps,
            &ip,
            header,
            payload,
            in_place,
        );
        if let Some((mac, slot)) = self.net.reply_inplace.take() {
            self.net.dispatch_udp_in_place(buf, l2, &ip, mac, slot);
        }
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

/// Queue `buf` for the kernel, or drop and count it (no kernel path, rate,
/// link down, queue full). Never waits.
fn dispatch_kernel<P: BufPool>(
    net: &mut Net<P>,
    kni: Option<&KniShared<P::Buf>>,
    limit: &mut RateLimiter,
    buf: P::Buf,
) {
    let Some(k) = kni else {
        return net.drop_frame(DropReason::Unsupported);
    };
    let c = &mut net.counters;
    if !k.link_up() {
        c.kni_link_down += 1;
        return c.drop(DropReason::Kernel);
    }
    if !limit.allow(net.now) {
        c.kni_rate_limited += 1;
        return c.drop(DropReason::Kernel);
    }
    match k.push(net.info.index, buf) {
        Ok(()) => c.kni_to_kernel += 1,
        Err(_buf) => {
            c.kni_queue_full += 1;
            c.drop(DropReason::QueueFull);
        }
    }
}

/// A datagram reassembled here whose flow another core owns goes to that
/// core as fragments again, each of which fits a buffer; it reassembles
/// them (af_packet's fanout keeps a datagram's fragments together, but not
/// on the core that owns the flow). A buffer short drops all of it.
#[cold]
fn hand_over_reassembled<P: BufPool>(
    net: &mut Net<P>,
    out: &mut Vec<(usize, P::Buf)>,
    owner: usize,
    ip: &Ipv4Repr,
    ident: u16,
    payload: &[u8],
) {
    let start = out.len();
    let mac = net.iface.mac;
    if refragment(net, ip, ident, payload, mac, |_, buf| {
        out.push((owner, buf))
    }) {
        net.counters.steer_reassembled_out += 1;
    } else {
        out.truncate(start);
    }
}

/// Cut a reassembled datagram into fragments of the MTU again, each in a
/// frame from `src_mac` to our own MAC (the handoff's and the kernel's
/// interface's), and give each to `emit` in order. False, with the drop
/// counted, when the pool runs short (the fragments already emitted are
/// then of no use: a reassembler drops them on its timeout).
#[cold]
fn refragment<P: BufPool>(
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

fn process_udp<P: BufPool>(
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
    net.record_flow_in(Transport::Udp, udp.dst_port, src, packet.payload().len());
    let dgram = Datagram {
        src: SocketAddrV4::new(ip.src_addr, udp.src_port),
        dst: SocketAddrV4::new(ip.dst_addr, udp.dst_port),
        payload: packet.payload(),
    };
    if let Some(app) = apps.get_mut(binding) {
        net.current_app = binding;
        if in_place {
            let p = dgram.payload;
            net.rx_inplace = Some((p.as_ptr() as usize, p.len(), udp.dst_port, src));
        }
        app.on_datagram(net, &dgram);
        net.rx_inplace = None;
    }
}

impl<P: BufPool> Net<P> {
    /// A segment or datagram of this flow processed here (flow records).
    #[inline]
    fn record_flow_in(
        &mut self,
        transport: Transport,
        local_port: u16,
        remote: SocketAddrV4,
        bytes: usize,
    ) {
        if self.flows.is_some() {
            self.record_flow(transport, local_port, remote, Some(bytes as u64), 0, 0);
        }
    }

    /// Segments or datagrams of this flow sent from here (flow records).
    #[inline]
    fn record_flow_out(
        &mut self,
        transport: Transport,
        local_port: u16,
        remote: SocketAddrV4,
        packets: u64,
        bytes: u64,
    ) {
        if self.flows.is_some() {
            self.record_flow(transport, local_port, remote, None, packets, bytes);
        }
    }

    /// Out of line, so that a core without flow records pays one test on
    /// the packet path: `bytes_in` is a received packet's payload, else
    /// `packets` and `bytes` were sent.
    #[inline(never)]
    fn record_flow(
        &mut self,
        transport: Transport,
        local_port: u16,
        remote: SocketAddrV4,
        bytes_in: Option<u64>,
        packets: u64,
        bytes: u64,
    ) {
        let Some(log) = self.flows.as_mut() else {
            return;
        };
        let id = FlowId {
            transport,
            local_port,
            remote,
        };
        match bytes_in {
            Some(n) => log.record_in(self.now, id, n, self.rx_handed),
            None => log.record_out(self.now, id, packets, bytes),
        }
        self.counters.flow_records_full = log.full;
    }

    /// This core's flow records, when it keeps them.
    pub fn flow_log(&self) -> Option<&FlowLog> {
        self.flows.as_ref()
    }

    #[inline]
    fn drop_frame(&mut self, reason: DropReason) {
        self.counters.drop(reason);
    }

    /// Frames buffered for transmit.
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    pub fn iface(&self) -> &IfaceConfig {
        &self.iface
    }

    /// Frames the TX buffer takes: its size, less the place kept for an
    /// in-place reply the application's callback has sent.
    #[inline]
    fn tx_room(&self) -> usize {
        self.tx_cap - usize::from(self.reply_inplace.is_some())
    }

    /// Queue a finished frame for transmit.
    #[inline]
    fn push_tx(&mut self, buf: P::Buf) -> Result<(), SendError> {
        if self.tx.len() >= self.tx_room() {
            self.counters.tx_backlog_full += 1;
            self.counters.drop(DropReason::QueueFull);
            return Err(SendError::QueueFull);
        }
        self.tx.push(buf);
        Ok(())
    }

    // ---- ARP ------------------------------------------------------------

    fn process_arp(&mut self, mut buf: P::Buf, eth: &EthernetRepr) {
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
    fn send_arp(
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

    fn send_arp_request(&mut self, ip: Ipv4Addr) {
        self.send_arp(
            ArpOperation::Request,
            EthernetAddress::BROADCAST,
            EthernetAddress([0; 6]),
            ip,
        );
    }

    /// Send what waited for a next hop that now resolves.
    fn release_pending(&mut self) {
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

    fn poll_pending(&mut self) {
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

    /// Give a finished frame (destination MAC not yet written) its next hop.
    fn dispatch_frame(&mut self, mut buf: P::Buf, hop: NextHop) -> Result<(), SendError> {
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

    // ---- IPv4 output ----------------------------------------------------

    /// Write Ethernet (destination left zero) and IPv4 headers at the front of
    /// `buf`, whose length must already be set to the whole frame.
    fn emit_headers(
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

    /// Send a complete L4 datagram (`l4`, checksums already filled) to `dst`,
    /// fragmenting it if it does not fit the MTU.
    fn send_ipv4(
        &mut self,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        l4: &[u8],
    ) -> Result<(), SendError> {
        let hop = match self.routes.next_hop(dst) {
            Some(h) => h,
            None => {
                self.counters.drop(DropReason::NoRoute);
                return Err(SendError::NoRoute);
            }
        };
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
            if self.iface.tx_ipv4_cksum {
                buf.request_tx_checksum(ETH_LEN as u16, IP_LEN as u16, L4Checksum::None);
            }
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
            if self.iface.tx_ipv4_cksum {
                buf.request_tx_checksum(ETH_LEN as u16, IP_LEN as u16, L4Checksum::None);
            }
            self.dispatch_frame(buf, hop)?;
            self.counters.ipv4_fragments_sent += 1;
        }
        Ok(())
    }

    fn alloc_frame(&mut self, len: usize) -> Result<P::Buf, SendError> {
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

    // ---- ICMP -----------------------------------------------------------

    /// Is `icmp` a valid echo request we answer? Drops and counts it if not.
    fn accept_echo_request(&mut self, ip: &Ipv4Repr, icmp: &[u8]) -> bool {
        let packet = match Icmpv4Packet::new_checked(icmp) {
            Ok(p) => p,
            Err(e) => {
                self.drop_frame(e.into());
                return false;
            }
        };
        let reason = match Icmpv4Repr::parse(&packet, true) {
            // RFC 1122 3.2.2.6: echo to a broadcast address MAY be ignored.
            Ok(Icmpv4Repr::EchoRequest { .. }) if ip.dst_addr != self.iface.ip.address() => {
                DropReason::NotForUs
            }
            Ok(Icmpv4Repr::EchoRequest { .. }) => return true,
            Ok(_) => DropReason::Unsupported,
            Err(e) => e.into(),
        };
        self.drop_frame(reason);
        false
    }

    /// Echo request in a plain (unfragmented, option-less) datagram: turn
    /// the same buffer into the reply.
    fn process_icmp_in_place(&mut self, mut buf: P::Buf, l2: usize, ip: &Ipv4Repr) {
        let icmp_start = l2 + IP_LEN;
        let total = l2 + IP_LEN + ip.payload_len;
        if !self.accept_echo_request(ip, &buf.data()[icmp_start..total]) {
            return;
        }
        let src_mac = EthernetAddress::from_bytes(&buf.data()[6..12]);
        self.turn_around(&mut buf, l2, ip, src_mac, None);
        echo_request_to_reply(&mut buf.data_mut()[icmp_start..total]);
        if self.push_tx(buf).is_ok() {
            self.counters.icmp_echo_replies += 1;
        }
    }

    /// ICMP in a reassembled datagram or one with IP options: reply from a
    /// copy, through the normal output path (fragmenting as needed).
    fn process_icmp_copy(&mut self, ip: &Ipv4Repr, payload: &[u8]) {
        if !self.accept_echo_request(ip, payload) {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let reply = &mut scratch[..payload.len()];
        reply.copy_from_slice(payload);
        echo_request_to_reply(reply);
        if self.send_ipv4(ip.src_addr, IpProtocol::Icmp, reply).is_ok() {
            self.counters.icmp_echo_replies += 1;
        }
        self.scratch = scratch;
    }

    /// Send an ICMP error about a datagram whose IP header is `header`,
    /// quoting the header and the first 8 bytes of its payload (RFC 792).
    /// `payload` is None when the header's own datagram is not at hand (the
    /// reassembler's timeout hands only the first fragment's header).
    fn send_icmp_error(
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

    // ---- UDP output -----------------------------------------------------

    /// Whether this send is the echo of the datagram being delivered (the
    /// same bytes, back to its sender, from the port it came to) and its
    /// frame can carry it: then the receive buffer is turned around instead
    /// of copied (as the ICMP echo is). Once per datagram, and only with
    /// the next hop resolved and room in the TX buffer, so that it cannot
    /// fail later; anything else takes the ordinary path.
    #[inline]
    fn take_reply_in_place(&mut self, src_port: u16, dst: SocketAddrV4, payload: &[u8]) -> bool {
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

    /// The Ethernet and IPv4 headers of a received frame (no IP options, at
    /// `l2`) turned into its reply's, to `mac`; Ethernet padding is cut off.
    fn turn_around(
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

    /// Turn a received UDP datagram (no IP options, at `l2`) into its own
    /// echo to `mac`, queued at `slot` of the TX buffer: where it was sent,
    /// before what the callback sent after it. The UDP checksum stays valid:
    /// swapping the addresses leaves the pseudo-header's sum as it was, and
    /// swapping the ports leaves the header's.
    fn dispatch_udp_in_place(
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
        let udp = &mut buf.data_mut()[l2 + IP_LEN..total];
        let (sport, dport) = ([udp[0], udp[1]], [udp[2], udp[3]]);
        udp[0..2].copy_from_slice(&dport);
        udp[2..4].copy_from_slice(&sport);
        // Counted as sent by send_udp; its place was kept (the buffer was
        // sized up front, so the insert does not allocate).
        debug_assert!(self.tx.len() < self.tx_cap);
        self.tx.insert(slot.min(self.tx.len()), buf);
    }

    fn dispatch_udp(
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
        if offload {
            buf.request_tx_checksum(ETH_LEN as u16, IP_LEN as u16, L4Checksum::Udp);
        } else if self.iface.tx_ipv4_cksum {
            buf.request_tx_checksum(ETH_LEN as u16, IP_LEN as u16, L4Checksum::None);
        }
        self.dispatch_frame(buf, hop)
    }
}

/// Turn an echo request (checksum valid) into the reply, in place: type 8
/// code 0 becomes type 0 code 0, and the checksum follows (RFC 1624).
fn echo_request_to_reply(icmp: &mut [u8]) {
    let mut packet = Icmpv4Packet::new_unchecked(&mut *icmp);
    let old = packet.checksum();
    packet.set_msg_type(Icmpv4Message::EchoReply);
    let mut c = checksum_adjust(old, 0x0800, 0x0000);
    if c == 0 {
        // Eqn. 3 gives +0 for a reply of all zero words too, whose checksum
        // is 0xffff (the sum of the rest is +0). Recompute the rare zero.
        packet.set_checksum(0);
        c = !crate::wire::checksum::data(icmp);
    }
    Icmpv4Packet::new_unchecked(icmp).set_checksum(c);
}

impl<P: BufPool> NetCtx for Net<P> {
    fn core(&self) -> CoreInfo {
        self.info
    }
    fn now(&self) -> Instant {
        self.now
    }
    fn local_addr(&self) -> Ipv4Addr {
        self.iface.ip.address()
    }
    fn bind_udp(&mut self, port: u16) -> Result<(), BindError> {
        self.udp.bind(port, self.current_app)
    }
    fn unbind_udp(&mut self, port: u16) -> bool {
        match self.udp.lookup(port) {
            Some(b) if b.app == self.current_app => self.udp.unbind(port),
            _ => false,
        }
    }
    fn udp_connect(&mut self, dst: SocketAddrV4) -> Result<u16, BindError> {
        // The same choice as a TCP active open: this core's share of the
        // ephemeral ports, or, with the device's RSS known, a port whose
        // replies hash to this core's queue.
        let udp = &self.udp;
        let port = self
            .tcp
            .pick_port(rss::L4::Udp, dst, |p| !udp.is_bound(p))
            .ok_or(BindError::NoPort)?;
        self.udp.connect(port, dst, self.current_app)?;
        self.counters.udp_connects += 1;
        Ok(port)
    }
    fn send_udp(
        &mut self,
        src_port: u16,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let result = match self.udp.lookup(src_port) {
            // Port 0 cannot be sent to (nor would the datagram parse).
            Some(_) if dst.port() == 0 => Err(SendError::ZeroPort),
            Some(b) if b.app == self.current_app => {
                b.tx += 1;
                if self.take_reply_in_place(src_port, dst, payload) {
                    Ok(())
                } else {
                    self.dispatch_udp(src_port, dst, payload)
                }
            }
            _ => Err(SendError::NotBound),
        };
        match result {
            Ok(()) => {
                self.counters.udp_tx += 1;
                self.record_flow_out(Transport::Udp, src_port, dst, 1, payload.len() as u64);
            }
            Err(_) => self.counters.udp_send_failed += 1,
        }
        result
    }
    fn tcp_listen(&mut self, port: u16) -> Result<(), BindError> {
        self.tcp_listen_impl(port)
    }
    fn tcp_connect(&mut self, dst: SocketAddrV4) -> Result<ConnId, TcpError> {
        self.tcp_connect_impl(dst)
    }
    fn tcp_send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, TcpError> {
        self.tcp_send_impl(conn, data)
    }
    fn tcp_send_space(&self, conn: ConnId) -> Result<usize, TcpError> {
        self.tcp_send_space_impl(conn)
    }
    fn tcp_recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, TcpError> {
        self.tcp_recv_impl(conn, buf)
    }
    fn tcp_recv_len(&self, conn: ConnId) -> Result<usize, TcpError> {
        self.tcp_recv_len_impl(conn)
    }
    fn tcp_info(&self, conn: ConnId) -> Result<crate::app::TcpInfo, TcpError> {
        self.tcp_info_impl(conn)
    }
    fn tcp_shutdown(&mut self, conn: ConnId) -> Result<(), TcpError> {
        self.tcp_shutdown_impl(conn)
    }
    fn tcp_close(&mut self, conn: ConnId) -> Result<(), TcpError> {
        self.tcp_close_impl(conn)
    }
    fn tcp_abort(&mut self, conn: ConnId) -> Result<(), TcpError> {
        self.tcp_abort_impl(conn)
    }
    fn tcp_set_user_timeout(
        &mut self,
        conn: ConnId,
        timeout: Option<Duration>,
    ) -> Result<(), TcpError> {
        self.tcp_set_user_timeout_impl(conn, timeout)
    }
    fn tcp_set_nodelay(&mut self, conn: ConnId, nodelay: bool) -> Result<(), TcpError> {
        self.tcp_set_nodelay_impl(conn, nodelay)
    }
    fn tcp_set_congestion_control(
        &mut self,
        conn: ConnId,
        algorithm: crate::tcp::CcAlgorithm,
    ) -> Result<(), TcpError> {
        self.with_own_conn(conn, |t| t.set_congestion_control(algorithm))
    }
    fn tcp_set_keepalive(
        &mut self,
        conn: ConnId,
        keepalive: Option<crate::tcp::Keepalive>,
    ) -> Result<(), TcpError> {
        self.tcp_set_keepalive_impl(conn, keepalive)
    }
    fn tcp_set_buffer_limits(
        &mut self,
        conn: ConnId,
        send: Option<usize>,
        recv: Option<usize>,
    ) -> Result<(), TcpError> {
        self.tcp_set_buffer_limits_impl(conn, send, recv)
    }
}
