//! A core's TCP connections: a bounded slab of connections, a hash index
//! by 4-tuple (sized once; it never grows past the slab), the listening
//! ports, the timer wheel and the ISN generator.
//!
//! Connections are handed out by index and taken out of the slab while
//! they run (`take`/`put`), so that the caller can hold a connection and
//! the rest of the core's state at once.

use super::isn::IsnGenerator;
use super::tcb::{State, Tcb};
use super::timer::TimerWheel;
use super::TcpConfig;
use crate::app::BindError;
use crate::hash::FlowMap;
use crate::shard::FlowDirectory;
use crate::time::Instant;
use arrayvec::ArrayVec;
use rss::{QueuePredictor, L4};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

/// A connection as an application holds it: a slot and the slot's
/// generation, so a stale id never reaches a reused slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub index: u32,
    pub gen: u32,
}

/// The local address is the interface's, so a local port and the remote
/// end name a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub local_port: u16,
    pub remote: SocketAddrV4,
}

struct Slot {
    gen: u32,
    tcb: Option<Box<Tcb>>,
    key: Option<FlowKey>,
}

/// Ports one core can listen on at once.
pub const MAX_LISTENERS: usize = 64;

pub struct TcpTable {
    pub cfg: TcpConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: FlowMap<FlowKey, u32>,
    listeners: ArrayVec<(u16, usize), MAX_LISTENERS>,
    wheel: TimerWheel,
    pub isn: IsnGenerator,
    next_port: u16,
    fired: Vec<(u32, u64)>,
    /// Where other cores look up who owns a flow (multi-core, unpredictable
    /// RSS), and this core's index.
    directory: Option<(Arc<FlowDirectory>, usize)>,
    /// Flows the directory had no room for.
    pub directory_full: u64,
    /// This core's share of the ephemeral ports: those with
    /// `port % cores == index`, so two cores never pick the same 4-tuple.
    port_share: (u16, u16),
    /// The device's RSS, when it can be predicted: (predictor, this core's
    /// RX queue, our address). Active opens then take a port whose replies
    /// hash to this core's queue.
    rss: Option<(Arc<QueuePredictor>, u16, Ipv4Addr)>,
    /// Ports looked at by active opens (the cost of prediction).
    pub ports_probed: u64,
    /// TIME-WAIT connections ended early to make room (table full).
    pub time_wait_recycled: u64,
    /// Where the search for a TIME-WAIT slot to recycle goes on from.
    recycle_cursor: usize,
}

impl TcpTable {
    pub fn new(cfg: TcpConfig, isn: IsnGenerator, now: Instant) -> TcpTable {
        let n = cfg.max_connections.max(1);
        TcpTable {
            cfg,
            slots: (0..n)
                .map(|_| Slot {
                    gen: 0,
                    tcb: None,
                    key: None,
                })
                .collect(),
            free: (0..n as u32).rev().collect(),
            index: FlowMap::with_capacity_and_hasher(n, Default::default()),
            listeners: ArrayVec::new(),
            wheel: TimerWheel::new(4096, 1000, now),
            isn,
            next_port: cfg.ephemeral.0,
            fired: Vec::with_capacity(n),
            directory: None,
            directory_full: 0,
            time_wait_recycled: 0,
            recycle_cursor: 0,
            port_share: (0, 1),
            rss: None,
            ports_probed: 0,
        }
    }

    /// Predict the device's RSS for active opens: a port whose reply
    /// hashes to our queue is ours alone (the port share stays for
    /// transports the device hashes on addresses only).
    pub fn set_rss(&mut self, p: Arc<QueuePredictor>, queue: u16, local: Ipv4Addr) {
        self.rss = Some((p, queue, local));
    }

    pub fn predicts_rss(&self) -> bool {
        self.rss.is_some()
    }

    /// Take only ports `p` with `p % cores == index` for active opens.
    pub fn set_port_share(&mut self, index: usize, cores: usize) {
        self.port_share = (index as u16, cores.max(1) as u16);
    }

    /// Publish this core's flows in `dir`.
    pub fn set_directory(&mut self, dir: Arc<FlowDirectory>, core: usize) {
        self.directory = Some((dir, core));
    }

    pub fn listen(&mut self, port: u16, app: usize) -> Result<(), BindError> {
        if port == 0 {
            return Err(BindError::PortZero);
        }
        if self.listeners.iter().any(|l| l.0 == port) {
            return Err(BindError::InUse(port));
        }
        self.listeners
            .try_push((port, app))
            .map_err(|_| BindError::TableFull)
    }

    pub fn unlisten(&mut self, port: u16, app: usize) -> bool {
        match self.listeners.iter().position(|l| *l == (port, app)) {
            Some(i) => {
                self.listeners.remove(i);
                true
            }
            None => false,
        }
    }

    /// The application listening on `port`.
    pub fn listener(&self, port: u16) -> Option<usize> {
        self.listeners.iter().find(|l| l.0 == port).map(|l| l.1)
    }

    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        self.index.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Connections per state, for counters.
    pub fn count_state(&self, state: State) -> usize {
        self.slots
            .iter()
            .filter(|s| s.tcb.as_ref().is_some_and(|t| t.state == state))
            .count()
    }

    /// Add a connection; None when the table is full.
    /// A full table ends a TIME-WAIT connection to make room (as Linux
    /// does past tcp_max_tw_buckets): it only guards against old
    /// duplicates, a live connection is worth more.
    pub fn insert(&mut self, now: Instant, tcb: Box<Tcb>) -> Option<ConnId> {
        self.make_room();
        let index = self.free.pop()?;
        let key = FlowKey {
            local_port: tcb.local.port(),
            remote: tcb.remote,
        };
        self.index.insert(key, index);
        if let Some((dir, core)) = &self.directory {
            if !dir.insert(&key, *core) {
                self.directory_full += 1;
            }
        }
        let slot = &mut self.slots[index as usize];
        slot.key = Some(key);
        slot.tcb = Some(tcb);
        let id = ConnId {
            index,
            gen: slot.gen,
        };
        if let Some(t) = self.slots[index as usize].tcb.take() {
            self.put(now, index, t);
        }
        Some(id)
    }

    /// Check an application's id.
    pub fn resolve(&self, id: ConnId) -> Option<u32> {
        let slot = self.slots.get(id.index as usize)?;
        (slot.gen == id.gen && slot.key.is_some()).then_some(id.index)
    }

    pub fn id_of(&self, index: u32) -> ConnId {
        ConnId {
            index,
            gen: self.slots[index as usize].gen,
        }
    }

    /// Take a connection out to run it; `put` it back (or `remove` it).
    pub fn take(&mut self, index: u32) -> Option<Box<Tcb>> {
        self.slots.get_mut(index as usize)?.tcb.take()
    }

    /// Put a connection back, re-arming its timer if its earliest deadline
    /// moved earlier than the one filed. A closed connection is freed.
    pub fn put(&mut self, now: Instant, index: u32, mut tcb: Box<Tcb>) {
        if tcb.is_closed() {
            return self.free_slot(index);
        }
        if let Some(d) = tcb.next_deadline() {
            let want = self.wheel.tick_of(d.max(now));
            if tcb.timer_tick.is_none_or(|t| want < t) {
                tcb.timer_tick = Some(self.wheel.insert(index, d));
            }
        }
        self.slots[index as usize].tcb = Some(tcb);
    }

    /// Room for one more connection, recycling a TIME-WAIT one if need be.
    pub fn make_room(&mut self) -> bool {
        !self.free.is_empty() || self.recycle_time_wait()
    }

    /// Free one TIME-WAIT slot, searching on from where the last search
    /// stopped. False if there is none.
    fn recycle_time_wait(&mut self) -> bool {
        let n = self.slots.len();
        for k in 0..n {
            let i = (self.recycle_cursor + k) % n;
            if self.slots[i]
                .tcb
                .as_ref()
                .is_some_and(|t| t.state == State::TimeWait)
            {
                self.recycle_cursor = (i + 1) % n;
                self.free_slot(i as u32);
                self.time_wait_recycled += 1;
                return true;
            }
        }
        false
    }

    /// Free a slot whose connection was taken (and is done).
    pub fn free_slot(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.tcb = None;
        if let Some(key) = slot.key.take() {
            self.index.remove(&key);
            if let Some((dir, core)) = &self.directory {
                dir.remove(&key, *core);
            }
            slot.gen = slot.gen.wrapping_add(1);
            self.free.push(index);
        }
    }

    /// Connections whose timer is due: (index), live entries only. The
    /// caller takes each, runs `on_timer`, dispatches and puts it back.
    pub fn expired(&mut self, now: Instant, out: &mut Vec<u32>) {
        self.fired.clear();
        self.wheel.advance(now, &mut self.fired);
        for &(index, tick) in &self.fired {
            if let Some(t) = self.slots[index as usize].tcb.as_mut() {
                if t.timer_tick == Some(tick) {
                    t.timer_tick = None;
                    out.push(index);
                }
            }
        }
    }

    /// A local port for an `l4` connection to `remote`, from the ephemeral
    /// range, not in use with that remote end; `accept` may refuse a port.
    /// With the device's RSS predicted and hashing `l4` on ports, the port
    /// is one whose replies hash to this core's queue; otherwise (no
    /// prediction, or a device that hashes on addresses only, where no port
    /// changes the queue) one of this core's share, and a reply that lands
    /// elsewhere is handed over.
    pub fn pick_port(
        &mut self,
        l4: L4,
        remote: SocketAddrV4,
        mut accept: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let (lo, hi) = self.cfg.ephemeral;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port >= hi { lo } else { port + 1 };
            let key = FlowKey {
                local_port: port,
                remote,
            };
            self.ports_probed += 1;
            let mine = match &self.rss {
                Some((p, q, local)) if p.hashes_ports(l4) => {
                    p.queue_for_ipv4_l4(*remote.ip(), *local, remote.port(), port) == *q
                }
                _ => port % self.port_share.1 == self.port_share.0,
            };
            if mine
                && self.listener(port).is_none()
                && !self.index.contains_key(&key)
                && accept(port)
            {
                return Some(port);
            }
        }
        None
    }

    /// Indices of every live connection (shutdown, tests).
    pub fn indices(&self) -> Vec<u32> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.key.is_some())
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// A connection, read-only.
    pub fn get(&self, index: u32) -> Option<&Tcb> {
        self.slots.get(index as usize)?.tcb.as_deref()
    }

    /// Drop every connection (shutdown).
    pub fn clear(&mut self) {
        for i in self.indices() {
            self.free_slot(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::tcb::Tcb;
    use std::net::Ipv4Addr;

    #[test]
    fn ports_are_shared_out_between_cores_and_the_table_is_bounded() {
        let cfg = TcpConfig {
            max_connections: 3,
            ephemeral: (61000, 61009),
            ..Default::default()
        };
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), Instant::ZERO);
        t.set_port_share(1, 2);
        let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
        let local = Ipv4Addr::new(198, 18, 0, 1);
        let mut ports = Vec::new();
        for _ in 0..3 {
            let p = t.pick_port(L4::Tcp, remote, |_| true).unwrap();
            assert_eq!(p % 2, 1);
            ports.push(p);
            let tcb = Tcb::connect(
                &cfg,
                Instant::ZERO,
                SocketAddrV4::new(local, p),
                remote,
                1,
                0,
            );
            assert!(t.insert(Instant::ZERO, Box::new(tcb)).is_some());
        }
        assert_eq!(ports, vec![61001, 61003, 61005]);
        assert!(t.is_full());
        let p = t.pick_port(L4::Tcp, remote, |_| true).unwrap();
        let tcb = Tcb::connect(
            &cfg,
            Instant::ZERO,
            SocketAddrV4::new(local, p),
            remote,
            1,
            0,
        );
        assert!(t.insert(Instant::ZERO, Box::new(tcb)).is_none());
        assert_eq!(t.time_wait_recycled, 0);
        // Freed slots come back, and a stale id no longer resolves.
        let id = t.id_of(
            t.lookup(&FlowKey {
                local_port: 61001,
                remote,
            })
            .unwrap(),
        );
        t.take(id.index);
        t.free_slot(id.index);
        assert!(t.resolve(id).is_none());
        assert!(!t.is_full());
    }

    #[test]
    fn predicted_ports_bring_replies_back_to_this_core() {
        let cfg = TcpConfig::default();
        let reta = rss::RetaTable::uniform(128, 4).unwrap();
        let p = Arc::new(QueuePredictor::new(&rss::ToeplitzKey::MICROSOFT, reta));
        let local = Ipv4Addr::new(198, 18, 0, 1);
        for queue in 0..4u16 {
            let mut t = TcpTable::new(cfg, IsnGenerator::new(), Instant::ZERO);
            t.set_rss(p.clone(), queue, local);
            for i in 0..50u16 {
                let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 5000 + i);
                let port = t.pick_port(L4::Tcp, remote, |_| true).unwrap();
                assert_eq!(
                    p.queue_for_ipv4_l4(*remote.ip(), local, remote.port(), port),
                    queue
                );
            }
            // About one port in four fits: a short scan, not 64K.
            assert!(t.ports_probed < 50 * 16, "{}", t.ports_probed);
        }
    }

    #[test]
    fn address_only_hashing_falls_back_to_the_port_share() {
        // The device hashes UDP on addresses only: no port changes where a
        // reply lands, so UDP takes this core's share (p % 2 == 1) and
        // relies on the handoff; TCP is still predicted.
        let cfg = TcpConfig::default();
        let reta = rss::RetaTable::uniform(128, 2).unwrap();
        let p = Arc::new(
            QueuePredictor::new(&rss::ToeplitzKey::MICROSOFT, reta).with_ports(true, false),
        );
        let local = Ipv4Addr::new(198, 18, 0, 1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), Instant::ZERO);
        t.set_port_share(1, 2);
        t.set_rss(p.clone(), 1, local);
        let mut tcp_even = false;
        for i in 0..40u16 {
            let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 5000 + i);
            let u = t.pick_port(L4::Udp, remote, |_| true).unwrap();
            assert_eq!(u % 2, 1, "UDP port {u} is not this core's share");
            let port = t.pick_port(L4::Tcp, remote, |_| true).unwrap();
            assert_eq!(
                p.queue_for_ipv4_l4(*remote.ip(), local, remote.port(), port),
                1
            );
            tcp_even |= port.is_multiple_of(2);
        }
        assert!(tcp_even, "TCP ports follow the hash, not the share");
    }

    #[test]
    fn a_full_table_recycles_time_wait_but_never_a_live_connection() {
        let cfg = TcpConfig {
            max_connections: 3,
            ..Default::default()
        };
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), Instant::ZERO);
        let local = Ipv4Addr::new(198, 18, 0, 1);
        let conn = |t: &mut TcpTable, port: u16, tw: bool| {
            let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), port);
            let mut tcb = Tcb::connect(
                &cfg,
                Instant::ZERO,
                SocketAddrV4::new(local, 5000),
                remote,
                1,
                0,
            );
            if tw {
                tcb.state = State::TimeWait;
            }
            t.insert(Instant::ZERO, Box::new(tcb))
        };
        assert!(conn(&mut t, 1, false).is_some());
        let tw = conn(&mut t, 2, true).unwrap();
        assert!(conn(&mut t, 3, false).is_some());
        assert!(t.is_full());
        // The TIME-WAIT one makes room, once.
        assert!(conn(&mut t, 4, false).is_some());
        assert_eq!(t.time_wait_recycled, 1);
        assert_eq!(t.resolve(tw), None, "its id is stale");
        assert!(t.is_full());
        assert!(!t.make_room());
        assert!(conn(&mut t, 5, false).is_none());
        assert_eq!(t.len(), 3);
    }
}
