//! Ethernet ports: setup with N RX and N TX queues, start, stop, close, and
//! the per-lcore queue handles used by the datapath.

use super::error::{check, DpdkError, Result};
use super::mempool::{Mbuf, Mempool};
use crate::ffi;
use crate::wire::EthernetAddress;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How a port is set up.
#[derive(Clone, Debug)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Use the NIC's IPv4/UDP/TCP checksum offloads when it has them.
    pub checksum_offload: bool,
    pub promiscuous: bool,
    pub mtu: u16,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            checksum_offload: true,
            promiscuous: false,
            mtu: 1500,
        }
    }
}

/// What a started port can do, read back from the device.
#[derive(Clone, Debug, Default)]
pub struct PortCaps {
    pub driver: String,
    pub name: String,
    /// The kernel interface behind the port (net_af_packet, net_tap), else 0.
    pub if_index: u32,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// RSS was enabled (the device advertised RSS offloads).
    pub rss: bool,
    /// The Toeplitz key, as read back from the device (None: it does not tell).
    pub rss_key: Option<Vec<u8>>,
    /// The redirection table, as read back from the device.
    pub reta: Option<Vec<u16>>,
    /// The hash types the device uses (`RTE_ETH_RSS_*`), as read back with
    /// the key (None: it does not tell).
    pub rss_hf: Option<u64>,
    /// The device took our redirection table.
    pub reta_programmed: bool,
    /// The device fills IPv4 header checksums on TX.
    pub tx_ipv4_cksum: bool,
    /// The device fills UDP checksums on TX.
    pub tx_udp_cksum: bool,
    /// The device fills TCP checksums on TX.
    pub tx_tcp_cksum: bool,
    /// The RX checksum offloads enabled (`RTE_ETH_RX_OFFLOAD_*_CKSUM`):
    /// the device checks those checksums of received frames.
    pub rx_cksum: u64,
}

/// A configured and started port. Its queues are handed out once each, as
/// [`RxQueue`] and [`TxQueue`] handles that share the port: it is stopped
/// and closed when the `Port` and every handle are gone, so no handle
/// outlives the device it polls.
pub struct Port {
    inner: Arc<PortInner>,
    mac: EthernetAddress,
    caps: PortCaps,
}

/// What the port and its queue handles share.
struct PortInner {
    id: u16,
    /// Which queues have been handed out (one flag per configured queue).
    rx_taken: Vec<AtomicBool>,
    tx_taken: Vec<AtomicBool>,
    started: AtomicBool,
}

impl PortInner {
    fn stop(&self) {
        if self.started.swap(false, Ordering::AcqRel) {
            // SAFETY: called with no queue handle left (the last reference
            // to this inner, or `Port::stop` having checked), so no lcore
            // polls the queues.
            unsafe { ffi::rte_eth_dev_stop(self.id) };
        }
    }
}

impl Drop for PortInner {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: the port is stopped and nothing refers to its queues: every
        // handle held a reference to this.
        unsafe { ffi::rte_eth_dev_close(self.id) };
    }
}

/// Reads a port's counters from any thread; says None once the port is
/// stopped or gone (rte_eth_stats_get is safe beside the polling lcores).
#[derive(Clone)]
pub struct PortStatsReader {
    inner: std::sync::Weak<PortInner>,
}

impl PortStatsReader {
    pub fn read(&self) -> Option<ffi::rte_eth_stats> {
        let inner = self.inner.upgrade()?;
        if !inner.started.load(Ordering::Acquire) {
            return None;
        }
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: valid out-parameter; the port is configured (the Arc held
        // for the call keeps it from being closed under it).
        (unsafe { ffi::rte_eth_stats_get(inner.id, &mut s) } == 0).then_some(s)
    }
}

/// Take queue `q` out of `taken`, once.
fn take(taken: &[AtomicBool], port: u16, kind: &str, q: u16) -> Result<()> {
    let flag = taken.get(usize::from(q)).ok_or_else(|| {
        DpdkError::Unsupported(format!(
            "port {port} has {} {kind} queues, queue {q} asked for",
            taken.len()
        ))
    })?;
    if flag.swap(true, Ordering::AcqRel) {
        return Err(DpdkError::Unsupported(format!(
            "port {port} {kind} queue {q} is already taken"
        )));
    }
    Ok(())
}

impl Port {
    /// Ports EAL found (vdevs included).
    pub fn count() -> u16 {
        // SAFETY: plain query.
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// Configure port `id` with the queues of `cfg`, each RX queue filled from
    /// `pool`, and start it.
    pub fn start(id: u16, cfg: &PortConfig, pool: Mempool) -> Result<Port> {
        if id >= Self::count() {
            return Err(DpdkError::Unsupported(format!(
                "port {id} does not exist ({} ports found; give a --vdev or a PCI device to EAL)",
                Self::count()
            )));
        }
        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-parameter.
        check("rte_eth_dev_info_get", unsafe {
            ffi::rte_eth_dev_info_get(id, &mut info)
        })?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        let mut caps = PortCaps {
            driver,
            name: port_name(id),
            if_index: info.if_index,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            ..Default::default()
        };
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Unsupported(format!(
                "port {id} ({}) has at most {} RX and {} TX queues, {} and {} wanted \
                 (for net_af_packet give qpairs=N)",
                caps.driver, info.max_rx_queues, info.max_tx_queues, cfg.rx_queues, cfg.tx_queues
            )));
        }

        let mut conf = ffi::rte_eth_conf::default();
        // Addresses and ports for unfragmented UDP and TCP; NICs hash every
        // fragment (the first too) on addresses only, so a datagram's
        // fragments meet on one core.
        let rss_hf = info.flow_type_rss_offloads
            & (ffi::flags::rte_eth_rss_ip()
                | ffi::flags::rte_eth_rss_nonfrag_ipv4_udp()
                | ffi::flags::rte_eth_rss_nonfrag_ipv4_tcp());
        // A known key (the Microsoft default) where the device takes one of
        // that length; what is used is read back after start either way.
        let mut key = rss::ToeplitzKey::MICROSOFT.as_bytes().to_vec();
        if cfg.rx_queues > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = ffi::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if usize::from(info.hash_key_size) == key.len() {
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
            caps.rss = true;
        }
        if cfg.checksum_offload {
            let want = |f: u64| info.tx_offload_capa & f != 0;
            caps.tx_ipv4_cksum = want(ffi::flags::rte_eth_tx_offload_ipv4_cksum());
            caps.tx_udp_cksum =
                caps.tx_ipv4_cksum && want(ffi::flags::rte_eth_tx_offload_udp_cksum());
            caps.tx_tcp_cksum =
                caps.tx_ipv4_cksum && want(ffi::flags::rte_eth_tx_offload_tcp_cksum());
            let mut tx = 0u64;
            if caps.tx_ipv4_cksum {
                tx |= ffi::flags::rte_eth_tx_offload_ipv4_cksum();
            }
            if caps.tx_udp_cksum {
                tx |= ffi::flags::rte_eth_tx_offload_udp_cksum();
            }
            if caps.tx_tcp_cksum {
                tx |= ffi::flags::rte_eth_tx_offload_tcp_cksum();
            }
            conf.txmode.offloads = tx;
            // The NIC checks what it can of received frames; its verdict
            // travels in each mbuf's flags (PacketBuf::rx_checksum).
            let rx_capa = info.rx_offload_capa;
            caps.rx_cksum = rx_capa
                & (ffi::flags::rte_eth_rx_offload_ipv4_cksum()
                    | ffi::flags::rte_eth_rx_offload_udp_cksum()
                    | ffi::flags::rte_eth_rx_offload_tcp_cksum());
            conf.rxmode.offloads |= caps.rx_cksum;
        }

        // SAFETY: conf is a valid configuration for this port.
        check("rte_eth_dev_configure", unsafe {
            ffi::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf)
        })?;
        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid out-parameters.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            ffi::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx)
        })?;
        // SAFETY: plain query.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..cfg.rx_queues {
            let mut rxconf = info.default_rxconf;
            rxconf.offloads = conf.rxmode.offloads;
            // SAFETY: the pool outlives the port (pools live for the process).
            check("rte_eth_rx_queue_setup", unsafe {
                ffi::rte_eth_rx_queue_setup(id, q, nb_rx, socket, &rxconf, pool.as_ptr())
            })?;
        }
        for q in 0..cfg.tx_queues {
            let mut txconf = info.default_txconf;
            txconf.offloads = conf.txmode.offloads;
            // SAFETY: valid configuration.
            check("rte_eth_tx_queue_setup", unsafe {
                ffi::rte_eth_tx_queue_setup(id, q, nb_tx, socket, &txconf)
            })?;
        }
        // Raise the device MTU when ours needs bigger frames, never lower it:
        // on af_packet and tap the device MTU is the kernel interface's, which
        // belongs to whoever set it up. Best effort: virtual devices often
        // refuse. The stack enforces its own MTU on what it receives.
        let mut dev_mtu = 0u16;
        // SAFETY: valid out-parameter.
        let got = unsafe { ffi::rte_eth_dev_get_mtu(id, &mut dev_mtu) };
        if got != 0 || dev_mtu < cfg.mtu {
            // SAFETY: plain setter on a configured port.
            let _ = unsafe { ffi::rte_eth_dev_set_mtu(id, cfg.mtu) };
        }
        // net_memif unmaps a departed peer's memory on EAL's interrupt
        // thread while lcores may be inside a burst on it: its bursts go
        // through the burst gate (src/ffi/burst_gate.c), which holds that
        // munmap until they are out.
        // SAFETY: a plain store into the shim's table.
        unsafe { ffi::shim_burst_gate_port(id, i32::from(needs_burst_gate(&caps.driver))) };
        // SAFETY: the port is configured.
        check("rte_eth_dev_start", unsafe { ffi::rte_eth_dev_start(id) })?;
        if cfg.promiscuous {
            // SAFETY: the port is started.
            let _ = unsafe { ffi::rte_eth_promiscuous_enable(id) };
        }
        let mut addr = ffi::rte_ether_addr::default();
        // SAFETY: valid out-parameter.
        check("rte_eth_macaddr_get", unsafe {
            ffi::rte_eth_macaddr_get(id, &mut addr)
        })?;
        let flags = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect();
        let mut port = Port {
            inner: Arc::new(PortInner {
                id,
                rx_taken: flags(cfg.rx_queues),
                tx_taken: flags(cfg.tx_queues),
                started: AtomicBool::new(true),
            }),
            mac: EthernetAddress(addr.addr_bytes),
            caps,
        };
        if port.caps.rss {
            // Program the redirection table explicitly (round robin over
            // our queues) where the device takes it; then read back what it
            // really uses, whichever it is.
            port.caps.reta_programmed = port.program_reta(info.reta_size, cfg.rx_queues);
            if let Some((key, hf)) = port.rss_conf(info.hash_key_size) {
                port.caps.rss_key = Some(key);
                port.caps.rss_hf = Some(hf);
            }
            port.caps.reta = port.reta(info.reta_size);
        }
        Ok(port)
    }

    fn program_reta(&self, size: u16, queues: u16) -> bool {
        let groups = usize::from(size).div_ceil(64);
        if groups == 0 || queues == 0 {
            return false;
        }
        let mut conf = vec![ffi::rte_eth_rss_reta_entry64::default(); groups];
        for (g, group) in conf.iter_mut().enumerate() {
            group.mask = u64::MAX;
            for (i, e) in group.reta.iter_mut().enumerate() {
                *e = ((g * 64 + i) % usize::from(queues)) as u16;
            }
        }
        // SAFETY: conf holds size.div_ceil(64) groups, as the call requires.
        unsafe { ffi::rte_eth_dev_rss_reta_update(self.inner.id, conf.as_mut_ptr(), size) == 0 }
    }

    pub fn id(&self) -> u16 {
        self.inner.id
    }
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }
    pub fn caps(&self) -> &PortCaps {
        &self.caps
    }

    /// A reader of the device's counters for another thread (the metrics
    /// server) that does not keep the port open.
    pub fn stats_reader(&self) -> PortStatsReader {
        PortStatsReader {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// The device's own counters.
    pub fn stats(&self) -> Result<ffi::rte_eth_stats> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: valid out-parameter.
        check("rte_eth_stats_get", unsafe {
            ffi::rte_eth_stats_get(self.inner.id, &mut s)
        })?;
        Ok(s)
    }

    /// The RSS key and hash types the device uses, if it tells: `len` key
    /// bytes as dev_info says, or the common 40 where it says 0 (net_null
    /// does).
    fn rss_conf(&self, len: u8) -> Option<(Vec<u8>, u64)> {
        let len = if len == 0 { 40 } else { len };
        let mut key = vec![0u8; usize::from(len)];
        let mut conf = ffi::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: len,
            rss_hf: 0,
        };
        // SAFETY: conf points at a buffer of rss_key_len bytes.
        let ret = unsafe { ffi::rte_eth_dev_rss_hash_conf_get(self.inner.id, &mut conf) };
        (ret == 0).then_some((key, conf.rss_hf))
    }

    /// The redirection table of `size` entries, if the device tells.
    fn reta(&self, size: u16) -> Option<Vec<u16>> {
        let groups = usize::from(size).div_ceil(64);
        if groups == 0 {
            return None;
        }
        let mut conf = vec![ffi::rte_eth_rss_reta_entry64::default(); groups];
        for g in conf.iter_mut() {
            g.mask = u64::MAX;
        }
        // SAFETY: conf holds size.div_ceil(64) groups, as the call requires.
        let ret =
            unsafe { ffi::rte_eth_dev_rss_reta_query(self.inner.id, conf.as_mut_ptr(), size) };
        (ret == 0).then(|| {
            conf.iter()
                .flat_map(|g| g.reta.iter().copied())
                .take(usize::from(size))
                .collect()
        })
    }

    /// The handle for RX queue `q`, to be moved to the lcore that polls it.
    /// Each queue is handed out once: an error for a queue already taken or
    /// not configured.
    pub fn rx_queue(&self, q: u16) -> Result<RxQueue> {
        take(&self.inner.rx_taken, self.inner.id, "RX", q)?;
        Ok(RxQueue {
            port: self.inner.id,
            queue: q,
            _port: self.inner.clone(),
        })
    }

    /// The handle for TX queue `q`, to be moved to the lcore that sends on
    /// it. Each queue is handed out once, as [`Port::rx_queue`].
    pub fn tx_queue(&self, q: u16) -> Result<TxQueue> {
        take(&self.inner.tx_taken, self.inner.id, "TX", q)?;
        Ok(TxQueue {
            port: self.inner.id,
            queue: q,
            _port: self.inner.clone(),
        })
    }

    /// Stop the port now if no queue handle is left, and say whether it is
    /// stopped; otherwise it stops (and closes) when the last handle drops.
    pub fn stop(&mut self) -> bool {
        if Arc::strong_count(&self.inner) == 1 {
            self.inner.stop();
        }
        !self.inner.started.load(Ordering::Acquire)
    }
}

/// Whether a driver unmaps memory its bursts read when the peer goes
/// away (net_memif's regions, on the peer's disconnect), so that its bursts
/// must go through the burst gate.
pub fn needs_burst_gate(driver: &str) -> bool {
    driver == "net_memif"
}

/// The name EAL gave the port (e.g. "net_af_packet0").
pub fn port_name(id: u16) -> String {
    let mut buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: buf is RTE_ETH_NAME_MAX_LEN (64) bytes.
    let ret = unsafe { ffi::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if ret != 0 {
        return format!("port{id}");
    }
    // SAFETY: the call wrote a NUL-terminated string into buf.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The port id of a device by name (e.g. "net_tap0").
pub fn port_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: valid C string and out-parameter.
    let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (ret == 0).then_some(id)
}

pub use crate::buf::BURST;

/// One RX queue of a port, polled by exactly one lcore (the only handle
/// to that queue; it keeps the port open).
pub struct RxQueue {
    port: u16,
    queue: u16,
    _port: Arc<PortInner>,
}

impl RxQueue {
    /// Receive up to `out.remaining_capacity()` packets into `out`.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut arrayvec::ArrayVec<Mbuf, BURST>) -> usize {
        let mut raw = [std::ptr::null_mut::<ffi::rte_mbuf>(); BURST];
        let room = out.remaining_capacity() as u16;
        // SAFETY: raw has room for BURST pointers; this lcore is the only
        // poller of (port, queue).
        let n = unsafe { ffi::shim_rx_burst(self.port, self.queue, raw.as_mut_ptr(), room) };
        for p in &raw[..n as usize] {
            // SAFETY: rx_burst hands us ownership of n valid mbufs.
            out.push(unsafe { Mbuf::from_raw(NonNull::new_unchecked(*p)) });
        }
        n as usize
    }
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

/// One TX queue of a port, used by exactly one lcore (the only handle to
/// that queue; it keeps the port open).
pub struct TxQueue {
    port: u16,
    queue: u16,
    _port: Arc<PortInner>,
}

impl TxQueue {
    /// Send as many of `pkts` as the NIC takes; returns how many were taken.
    /// What is not taken stays in `pkts` (in order) for the caller to retry or drop.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut arrayvec::ArrayVec<Mbuf, BURST>) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let mut raw = [std::ptr::null_mut::<ffi::rte_mbuf>(); BURST];
        let count = pkts.len();
        for (slot, m) in raw.iter_mut().zip(pkts.drain(..)) {
            *slot = m.into_raw();
        }
        // SAFETY: raw holds `count` owned mbufs; the NIC takes ownership of
        // the first `sent`; this lcore is the only user of (port, queue).
        let sent =
            unsafe { ffi::shim_tx_burst(self.port, self.queue, raw.as_mut_ptr(), count as u16) }
                as usize;
        for p in &raw[sent..count] {
            // SAFETY: not taken by the NIC, so still ours.
            pkts.push(unsafe { Mbuf::from_raw(NonNull::new_unchecked(*p)) });
        }
        sent
    }
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

/// Create a virtual device at run time (`--vdev` after EAL started), e.g.
/// ("net_tap_dpk", "iface=dpk0,mac=02:00:00:00:00:01"). Returns its port id.
pub fn hotplug_vdev(name: &str, args: &str) -> Result<u16> {
    let bus = CString::new("vdev").expect("no NUL");
    let cname = CString::new(name)
        .map_err(|_| DpdkError::Unsupported(format!("bad device name {name:?}")))?;
    let cargs = CString::new(args)
        .map_err(|_| DpdkError::Unsupported(format!("bad device arguments {args:?}")))?;
    // SAFETY: three valid C strings.
    check("rte_eal_hotplug_add", unsafe {
        ffi::rte_eal_hotplug_add(bus.as_ptr(), cname.as_ptr(), cargs.as_ptr())
    })?;
    port_by_name(name)
        .ok_or_else(|| DpdkError::Unsupported(format!("{name} was created but has no ethdev port")))
}

/// Is the port's link up (without waiting)?
pub fn link_up(id: u16) -> bool {
    let mut link = ffi::rte_eth_link::default();
    // SAFETY: link is a valid out-parameter.
    let ret = unsafe { ffi::rte_eth_link_get_nowait(id, &mut link) };
    ret == 0 && link.link_status() != 0
}
