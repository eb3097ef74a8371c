//! The per-core context: everything one core owns, its life cycle (start,
//! bursts, timers, shutdown) and the calls applications make into it
//! ([`NetCtx`]). The protocols' ingress and egress are its siblings, one
//! file each (`ethernet`, `arp`, `ipv4`, `icmp`, `udp`, `tcp`, `kernel`,
//! `handoff`), each an `impl` block on [`Net`] or [`Core`]. No FFI: it is
//! generic over [`BufPool`], so `cargo test` drives it with heap buffers and
//! the shard with mbufs.
//!
//! Invariants: every frame handed to [`Core::process_frame`] is either
//! answered (its buffer reused or freed), queued for transmit, or dropped and
//! counted under one [`DropReason`]. Nothing here blocks, and nothing
//! allocates per packet once built (the TX vector, pending queue, scratch and
//! reassembly memory are sized up front).

use super::steer::Steering;
use super::tcp::deliver_tcp_events;
use crate::app::{
    App, AppFactory, BindError, ConnId, CoreInfo, NetCtx, SendError, TcpError, TcpEvent,
};
use crate::arp::{ArpPending, ArpReader, ArpShared, ArpWriter};
use crate::buf::BufPool;
use crate::flow::PortAllocator;
use crate::icmp::RateLimiter;
use crate::ipv4::frag::{Reassembler, ReassemblyConfig};
use crate::ipv4::{IdentGen, Routes};
use crate::kni::{KniPolicy, KniShared};
use crate::stats::flows::{FlowId, FlowLog, Transport};
use crate::stats::{Counters, DropReason};
use crate::tcp::isn::IsnGenerator;
use crate::tcp::syncache::{SynCache, SynDefence};
use crate::tcp::syncookie::SynCookies;
use crate::tcp::{TcpConfig, TcpTable};
use crate::time::{Duration, Instant};
use crate::udp::UdpTable;
use crate::wire::{ArpOperation, EthernetAddress, Icmpv4Message, Ipv4Cidr};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

pub use super::udp::MAX_UDP_PAYLOAD;

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
    /// Remote addresses whose RTT the core remembers (`--tcp-rtt-cache`;
    /// 0: off).
    pub tcp_rtt_cache: usize,
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
            tcp_rtt_cache: crate::tcp::rtt_cache::DEFAULT_ENTRIES,
        }
    }
}

/// The network side of a core: all of its state but the applications and
/// the reassembler, so that an application can be handed `&mut Net` while
/// the stack still holds the datagram it is reading.
pub struct Net<P: BufPool> {
    pub(super) iface: IfaceConfig,
    pub(super) routes: Routes,
    pub(super) info: CoreInfo,
    pub(super) pool: P,
    pub(super) now: Instant,
    /// How long this burst's frames may have waited in the receive ring
    /// (since it was last seen empty); zero unless the lcore says.
    pub(super) rx_wait: Duration,
    pub counters: Counters,
    pub(super) tx: Vec<P::Buf>,
    pub(super) tx_cap: usize,
    pub(super) arp: ArpReader,
    pub(super) pending: ArpPending<P::Buf>,
    pub(super) udp: UdpTable,
    pub(super) ident: IdentGen,
    pub(super) icmp_limit: RateLimiter,
    /// A datagram being built for fragmentation (64 KiB, allocated once).
    pub(super) scratch: Vec<u8>,
    /// The application calling into `NetCtx` now.
    pub(super) current_app: usize,
    /// The datagram an application is being handed, when its frame may carry
    /// the reply: (payload address, length, our port, the sender).
    pub(super) rx_inplace: Option<(usize, usize, u16, SocketAddrV4)>,
    /// An application answered that datagram with its own bytes, to its
    /// sender: the receive buffer becomes the reply, to this MAC, at this
    /// place in the TX buffer (kept for it, so that sends later in the same
    /// callback go after it and cannot take its room).
    pub(super) reply_inplace: Option<(EthernetAddress, usize)>,
    pub(super) tcp: TcpTable,
    /// The frame heads of TCP segments, per destination (shard/tcp.rs).
    pub(super) tcp_frames: super::tcp::TcpFrames,
    /// Ephemeral ports for TCP active opens and connected UDP sockets.
    pub(super) ports: PortAllocator,
    /// Half-open connections and SYN cookies (SYN flood defence).
    pub(super) syn: SynDefence,
    /// Events for applications, raised while a segment or timer ran.
    pub(super) tcp_events: Vec<(usize, TcpEvent)>,
    /// Connections whose timers fired (scratch).
    pub(super) tcp_expired: Vec<u32>,
    pub(super) next_tcp_gauges: Instant,
    /// Connections applications wrote to in this callback round.
    pub(super) tcp_dirty: Vec<u32>,
    /// Which flows this core handled (`--flow-records`), if kept.
    pub(super) flows: Option<FlowLog>,
    /// The frame being processed was handed over by another core.
    pub(super) rx_handed: bool,
    /// The NIC found the UDP/TCP checksum of the datagram being processed
    /// right (never for a reassembled one): it is not computed again.
    pub(super) rx_l4_good: bool,
}

/// One core: its network state, its reassembler, its applications, and on
/// the main core the ARP table's writer.
pub struct Core<P: BufPool> {
    pub net: Net<P>,
    pub(super) frag: Reassembler,
    pub(super) apps: Vec<Box<dyn App>>,
    pub(super) arp_writer: Option<ArpWriter>,
    pub(super) next_arp_expire: Instant,
    pub(super) steering: Option<Arc<Steering<P::Buf>>>,
    /// Frames for connections other cores own, to hand over.
    pub(super) handoff_out: Vec<(usize, P::Buf)>,
    /// The exception path toward the kernel, when there is one.
    pub(super) kni: Option<Arc<KniShared<P::Buf>>>,
    pub(super) kni_policy: KniPolicy,
    pub(super) kni_limit: RateLimiter,
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
        let tcp =
            TcpTable::with_rtt_cache(limits.tcp, limits.isn, Instant::ZERO, limits.tcp_rtt_cache);
        let mut ports = PortAllocator::new(limits.tcp.ephemeral);
        ports.set_share(info.index, info.count);
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
                rx_wait: Duration::from_micros(0),
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
                tcp_frames: super::tcp::TcpFrames::new(),
                ports,
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

    /// Predict the device's RSS for connections this core opens: their
    /// source port is chosen so that replies reach this core's queue.
    pub fn set_rss(&mut self, p: Arc<rss::QueuePredictor>) {
        let local = self.net.iface.ip.address();
        self.net.ports.set_rss(p, self.net.info.index as u16, local);
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
        self.net.rx_wait = Duration::from_micros(0);
        if self.net.arp.refresh() {
            self.net.release_pending();
        }
    }

    /// Moves the core's clock to `now` within a burst: the lcore reads the
    /// clock again once the receive burst has returned frames, so that they
    /// are processed at the time they were taken, not at the time the
    /// previous iteration ended (a preemption in between would make every
    /// RTT sample of the burst short by its length). Never backwards.
    #[inline]
    pub fn set_now(&mut self, now: Instant) {
        self.net.now = self.net.now.max(now);
    }

    /// The frames of this burst may have waited up to `wait` in the
    /// receive ring before they were read (the time since the lcore last
    /// saw it empty): TCP's congestion control does not take that for
    /// the path's delay. Until the next [`Core::begin_burst`].
    #[inline]
    pub fn set_rx_wait(&mut self, wait: Duration) {
        self.net.rx_wait = wait;
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
}

impl<P: BufPool> Net<P> {
    /// A segment or datagram of this flow processed here (flow records).
    #[inline]
    pub(super) fn record_flow_in(
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
    pub(super) fn record_flow_out(
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
    pub(super) fn drop_frame(&mut self, reason: DropReason) {
        self.counters.drop(reason);
    }

    pub fn iface(&self) -> &IfaceConfig {
        &self.iface
    }
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
        let tcp = &self.tcp;
        let port = self
            .udp
            .connect_ephemeral(&mut self.ports, dst, self.current_app, |p| {
                !tcp.port_in_use(p, dst)
            })?;
        self.counters.udp_connects += 1;
        Ok(port)
    }
    #[inline(always)]
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
    fn tcp_echo_readable(&mut self, conn: ConnId) -> Result<Option<usize>, TcpError> {
        self.tcp_echo_readable_impl(conn)
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
