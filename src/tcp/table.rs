//! A core's TCP connections: a bounded slab of connections, a hash index
//! by 4-tuple (sized once; it never grows past the slab), the listening
//! ports, the timer wheel and the ISN generator.
//!
//! Connections are handed out by index and taken out of the slab while
//! they run (`take`/`put`), so that the caller can hold a connection and
//! the rest of the core's state at once.
//!
//! A connection that `put` finds in TIME-WAIT becomes a [`TimeWait`]
//! record in its slot: the boxed [`Tcb`] and its buffers go, the slot's
//! generation moves on (the application's id no longer resolves), and the
//! slot joins a FIFO of TIME-WAIT slots, oldest first. The FIFO holds
//! (index, generation) pairs: an entry whose slot has moved on is stale
//! and skipped, so ending a record anywhere is O(1) and so is finding the
//! oldest one, to expire it or to recycle it when the table is full. A
//! record's entries are in order of their deadlines (each is filed at
//! now + 2*MSL); a record whose 2*MSL restarts moves to the back under a
//! new generation.
//!
//! Invariants: every keyed slot is counted under exactly one state in
//! `counts` (the state it was last put in, or TIME-WAIT for a record), so
//! the per-state counts are kept without walking the slab; the FIFO holds
//! at most two entries per slot and never grows.

use super::isn::IsnGenerator;
use super::rtt_cache::{self, RttCache};
use super::tcb::{State, Tcb};
use super::timer::TimerWheel;
use super::timewait::{TimeWait, TwVerdict};
use super::TcpConfig;
use crate::flow::{FlowDirectory, PortAllocator};
use crate::hash::FlowMap;
use crate::stats::Counters;
use crate::time::Instant;
use crate::udp::BindError;
use arrayvec::ArrayVec;
use rss::L4;
use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::Arc;

/// A connection as an application holds it: a slot and the slot's
/// generation, so a stale id never reaches a reused slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub index: u32,
    pub gen: u32,
}

pub use crate::flow::FlowKey;

/// What a slot holds.
enum Conn {
    /// Nothing: free, or its connection taken out to run.
    Empty,
    Open(Box<Tcb>),
    TimeWait(TimeWait),
}

struct Slot {
    gen: u32,
    conn: Conn,
    key: Option<FlowKey>,
    /// The state `counts` holds this connection under (keyed slots only).
    counted: State,
}

impl Slot {
    /// Its connection taken out to run, if it holds one (not a TIME-WAIT
    /// record, not one taken out already).
    #[inline(always)]
    fn take_open(&mut self) -> Option<Box<Tcb>> {
        match std::mem::replace(&mut self.conn, Conn::Empty) {
            Conn::Open(t) => Some(t),
            other => {
                self.conn = other;
                None
            }
        }
    }
}

/// A used slot, read-only ([`TcpTable::entry`]).
pub enum TableEntry<'a> {
    Open(&'a Tcb),
    TimeWait(&'a TimeWait),
}

/// Connection states, for the per-state counts (`State as usize`).
const STATES: usize = State::TimeWait as usize + 1;

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
    fired: Vec<(u32, u64)>,
    /// Where other cores look up who owns a flow (multi-core, unpredictable
    /// RSS), and this core's index.
    directory: Option<(Arc<FlowDirectory>, usize)>,
    /// Flows the directory had no room for.
    pub directory_full: u64,
    /// TIME-WAIT connections ended early to make room (table full).
    pub time_wait_recycled: u64,
    /// TIME-WAIT slots, oldest first, as (index, generation); see the
    /// module's note.
    time_wait_fifo: VecDeque<(u32, u32)>,
    /// Connections per state, kept as they are put back and freed.
    counts: [usize; STATES],
    /// The slot `lookup` found last (checked against the slot's key).
    last_hit: Cell<u32>,
    /// RTT estimates per remote address (RFC 9040 5): left by connections
    /// as they close, taken by active opens.
    pub rtt_cache: RttCache,
}

impl TcpTable {
    /// A table with the default RTT cache ([`TcpTable::with_rtt_cache`]).
    pub fn new(cfg: TcpConfig, isn: IsnGenerator, now: Instant) -> TcpTable {
        Self::with_rtt_cache(cfg, isn, now, rtt_cache::DEFAULT_ENTRIES)
    }

    /// A table with room for `rtt_entries` remote addresses in its RTT
    /// cache (0: off; `--tcp-rtt-cache`, kept out of `TcpConfig`, which
    /// every connection holds a copy of). Built once at its size: the
    /// cache reserves all its room up front.
    pub fn with_rtt_cache(
        cfg: TcpConfig,
        isn: IsnGenerator,
        now: Instant,
        rtt_entries: usize,
    ) -> TcpTable {
        let n = cfg.max_connections.max(1);
        TcpTable {
            cfg,
            slots: (0..n)
                .map(|_| Slot {
                    gen: 0,
                    conn: Conn::Empty,
                    key: None,
                    counted: State::Closed,
                })
                .collect(),
            free: (0..n as u32).rev().collect(),
            index: FlowMap::with_capacity_and_hasher(n, Default::default()),
            listeners: ArrayVec::new(),
            wheel: TimerWheel::new(4096, 1000, now),
            isn,
            fired: Vec::with_capacity(n),
            directory: None,
            directory_full: 0,
            time_wait_recycled: 0,
            time_wait_fifo: VecDeque::with_capacity(2 * n),
            counts: [0; STATES],
            last_hit: Cell::new(u32::MAX),
            rtt_cache: RttCache::new(rtt_entries, rtt_cache::MAX_AGE),
        }
    }

    /// Start a new active open's RTT estimator from what an earlier
    /// connection to the same address measured, if the cache holds it
    /// (before its SYN goes out).
    pub fn start_rtt(&mut self, now: Instant, tcb: &mut Tcb) {
        if let Some(est) = self.rtt_cache.get(now, *tcb.remote.ip()) {
            tcb.start_rtt_from(est);
        }
    }

    /// Bytes every slot costs whether used or not: the slot itself, its
    /// place on the free list, in the fired-timer list and in the TIME-WAIT
    /// FIFO (all allocated once, in `new`). The 4-tuple index is extra.
    pub fn fixed_bytes_per_slot() -> usize {
        use std::mem::size_of;
        size_of::<Slot>() + size_of::<u32>() + size_of::<(u32, u64)>() + 2 * size_of::<(u32, u32)>()
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

    /// The slot of `key`'s connection. The last slot found is tried
    /// first: a slot holds `key` exactly when the index maps `key` to it,
    /// so comparing the slot's key is the whole check (and a segment
    /// usually follows one of the same flow).
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        let last = self.last_hit.get();
        if let Some(slot) = self.slots.get(last as usize) {
            if slot.key.as_ref() == Some(key) {
                return Some(last);
            }
        }
        let found = self.index.get(key).copied();
        if let Some(i) = found {
            self.last_hit.set(i);
        }
        found
    }

    /// [`lookup`](Self::lookup) and [`take`](Self::take) in one, for a
    /// received segment: Ok with `key`'s connection taken out to run (one
    /// slot access, where `lookup`, `process_time_wait`'s test and `take`
    /// made one each), else Err with the slot found, if any (a TIME-WAIT
    /// record, or a connection taken out already).
    #[inline(always)]
    pub fn take_flow(&mut self, key: &FlowKey) -> Result<(u32, Box<Tcb>), Option<u32>> {
        let last = self.last_hit.get();
        if let Some(slot) = self.slots.get_mut(last as usize) {
            if slot.key.as_ref() == Some(key) {
                return slot.take_open().map(|t| (last, t)).ok_or(Some(last));
            }
        }
        let index = *self.index.get(key).ok_or(None)?;
        self.last_hit.set(index);
        let slot = self.slots.get_mut(index as usize).ok_or(Some(index))?;
        slot.take_open().map(|t| (index, t)).ok_or(Some(index))
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

    /// Connections in `state` (TIME-WAIT records included), kept as
    /// connections are put back and freed: no walk.
    pub fn count_state(&self, state: State) -> usize {
        self.counts[state as usize]
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
        slot.counted = tcb.state;
        self.counts[tcb.state as usize] += 1;
        let id = ConnId {
            index,
            gen: slot.gen,
        };
        // A new connection is never in TIME-WAIT: nobody to tell.
        let _ = self.put(now, index, tcb);
        Some(id)
    }

    /// Check an application's id.
    pub fn resolve(&self, id: ConnId) -> Option<u32> {
        let slot = self.slots.get(id.index as usize)?;
        (slot.gen == id.gen && slot.key.is_some()).then_some(id.index)
    }

    /// Whether `settle` would change nothing for slot `index` (debug
    /// builds check that a call the core does not settle needs none).
    pub fn settled(&self, now: Instant, index: u32) -> bool {
        let slot = &self.slots[index as usize];
        let Conn::Open(tcb) = &slot.conn else {
            return true;
        };
        let filed = match tcb.next_deadline() {
            None => true,
            Some(d) => {
                (tcb.timer_tick.is_some() && d >= tcb.timer_filed)
                    || tcb
                        .timer_tick
                        .is_some_and(|t| self.wheel.tick_for(d.max(now)) >= t)
            }
        };
        !matches!(tcb.state, State::Closed | State::TimeWait)
            && slot.key.is_some()
            && slot.counted == tcb.state
            && filed
    }

    pub fn id_of(&self, index: u32) -> ConnId {
        ConnId {
            index,
            gen: self.slots[index as usize].gen,
        }
    }

    /// Take a connection out to run it; `put` it back (or `free_slot` it).
    /// None for a free slot and for a TIME-WAIT record.
    pub fn take(&mut self, index: u32) -> Option<Box<Tcb>> {
        self.slots.get_mut(index as usize)?.take_open()
    }

    /// Put back a connection `take` took and nothing changed (no state,
    /// no timer: nothing for `put` to file or count).
    pub fn restore(&mut self, index: u32, tcb: Box<Tcb>) {
        self.slots[index as usize].conn = Conn::Open(tcb);
    }

    /// Put a connection back, re-arming its timer if its earliest deadline
    /// moved earlier than the one filed, and counting it under its state. A
    /// closed connection is freed; one in TIME-WAIT becomes a record unless
    /// its application still has data to read (it becomes one at the put
    /// after the read). Returns the application to tell CLOSED when the
    /// connection became a record while its application still held it.
    /// Inlined, the closing case and the filing out of line: the common
    /// put is a few compares (make pathcost).
    #[must_use]
    #[inline(always)]
    pub fn put(&mut self, now: Instant, index: u32, mut tcb: Box<Tcb>) -> Option<usize> {
        let state = tcb.state;
        if matches!(state, State::Closed | State::TimeWait)
            || self.slots[index as usize].key.is_none()
        {
            return self.put_closing(now, index, tcb);
        }
        file_deadline(&mut self.wheel, now, index, &mut tcb);
        let slot = &mut self.slots[index as usize];
        if slot.counted != state {
            self.counts[slot.counted as usize] -= 1;
            self.counts[state as usize] += 1;
            slot.counted = state;
        }
        slot.conn = Conn::Open(tcb);
        None
    }

    /// `put` of a closed connection, one in TIME-WAIT, or one whose slot
    /// was freed: off the per-segment path.
    #[cold]
    #[inline(never)]
    fn put_closing(&mut self, now: Instant, index: u32, mut tcb: Box<Tcb>) -> Option<usize> {
        if let Some(est) = tcb.rtt_estimate() {
            self.rtt_cache.update(now, *tcb.remote.ip(), est);
        }
        if tcb.is_closed() || self.slots[index as usize].key.is_none() {
            self.free_slot(index);
            return None;
        }
        if tcb.app_closed || tcb.recv_len() == 0 {
            if let Some(tw) = tcb.time_wait_record(now) {
                self.enter_time_wait(index, tw);
                return (!tcb.app_closed).then_some(tcb.app);
            }
        }
        file_deadline(&mut self.wheel, now, index, &mut tcb);
        self.recount(index, tcb.state);
        self.slots[index as usize].conn = Conn::Open(tcb);
        None
    }

    /// What `put` does after an application's call ran on the connection
    /// in its slot (`get_mut`), without taking it out: the same checks, the
    /// same re-arming and counting.
    #[must_use]
    pub fn settle(&mut self, now: Instant, index: u32) -> Option<usize> {
        let slot = &mut self.slots[index as usize];
        let Conn::Open(tcb) = &mut slot.conn else {
            return None;
        };
        let state = tcb.state;
        if matches!(state, State::Closed | State::TimeWait) || slot.key.is_none() {
            let tcb = self.take(index)?;
            return self.put_closing(now, index, tcb);
        }
        file_deadline(&mut self.wheel, now, index, tcb);
        if slot.counted != state {
            self.counts[slot.counted as usize] -= 1;
            self.counts[state as usize] += 1;
            slot.counted = state;
        }
        None
    }

    /// The connection in slot `index`, left in place (see `settle`).
    pub fn get_mut(&mut self, index: u32) -> Option<&mut Tcb> {
        match &mut self.slots.get_mut(index as usize)?.conn {
            Conn::Open(t) => Some(t),
            _ => None,
        }
    }

    /// Count a keyed slot under `state` from now on.
    fn recount(&mut self, index: u32, state: State) {
        let slot = &mut self.slots[index as usize];
        if slot.counted != state {
            self.counts[slot.counted as usize] -= 1;
            self.counts[state as usize] += 1;
            slot.counted = state;
        }
    }

    /// Replace a slot's connection by its TIME-WAIT record.
    fn enter_time_wait(&mut self, index: u32, tw: TimeWait) {
        self.recount(index, State::TimeWait);
        let slot = &mut self.slots[index as usize];
        slot.gen = slot.gen.wrapping_add(1);
        slot.conn = Conn::TimeWait(tw);
        let gen = slot.gen;
        self.file_time_wait(index, gen);
    }

    /// Add a record to the back of the FIFO. A full FIFO drops its stale
    /// entries first: live ones are at most one per slot, so at least half
    /// of a full FIFO is stale and the compaction is paid for by the
    /// entries that went stale.
    fn file_time_wait(&mut self, index: u32, gen: u32) {
        if self.time_wait_fifo.len() >= 2 * self.slots.len() {
            let slots = &self.slots;
            self.time_wait_fifo
                .retain(|&(i, g)| Self::record_of(slots, i, g).is_some());
        }
        self.time_wait_fifo.push_back((index, gen));
    }

    /// The record a FIFO entry stands for, if it is not stale.
    fn record_of(slots: &[Slot], index: u32, gen: u32) -> Option<&TimeWait> {
        match slots.get(index as usize) {
            Some(Slot {
                gen: g,
                conn: Conn::TimeWait(tw),
                ..
            }) if *g == gen => Some(tw),
            _ => None,
        }
    }

    /// A TIME-WAIT record, read-only.
    pub fn time_wait(&self, index: u32) -> Option<&TimeWait> {
        match &self.slots.get(index as usize)?.conn {
            Conn::TimeWait(tw) => Some(tw),
            _ => None,
        }
    }

    /// A segment for the connection at `index`, if it is a TIME-WAIT record
    /// (None otherwise: run its Tcb). The table restarts, ends or hands over
    /// the record as the verdict says; the caller sends the ACK, and for
    /// `Reopen` passes the SYN to the listener.
    #[inline]
    pub fn process_time_wait(
        &mut self,
        now: Instant,
        index: u32,
        seg: &crate::wire::TcpRepr,
        payload_len: usize,
        c: &mut Counters,
    ) -> Option<TwVerdict> {
        match self.slots.get(index as usize) {
            Some(Slot {
                conn: Conn::TimeWait(_),
                ..
            }) => self.process_time_wait_record(now, index, seg, payload_len, c),
            _ => None,
        }
    }

    /// `process_time_wait` for a slot that holds a record.
    #[inline(never)]
    fn process_time_wait_record(
        &mut self,
        now: Instant,
        index: u32,
        seg: &crate::wire::TcpRepr,
        payload_len: usize,
        c: &mut Counters,
    ) -> Option<TwVerdict> {
        let msl2 = self.cfg.time_wait;
        let slot = self.slots.get_mut(index as usize)?;
        let Conn::TimeWait(tw) = &mut slot.conn else {
            return None;
        };
        let before = tw.deadline;
        let verdict = tw.process(now, seg, payload_len, msl2, c);
        if tw.deadline != before {
            // 2*MSL restarted: to the back, under a new generation.
            slot.gen = slot.gen.wrapping_add(1);
            let gen = slot.gen;
            self.file_time_wait(index, gen);
        }
        if matches!(verdict, TwVerdict::Close | TwVerdict::Reopen) {
            self.free_slot(index);
        }
        Some(verdict)
    }

    /// Room for one more connection, recycling a TIME-WAIT one if need be.
    pub fn make_room(&mut self) -> bool {
        !self.free.is_empty() || self.recycle_time_wait()
    }

    /// Free the oldest TIME-WAIT record. False if there is none.
    fn recycle_time_wait(&mut self) -> bool {
        while let Some((i, g)) = self.time_wait_fifo.pop_front() {
            if Self::record_of(&self.slots, i, g).is_some() {
                self.free_slot(i);
                self.time_wait_recycled += 1;
                return true;
            }
        }
        false
    }

    /// End the TIME-WAIT records whose 2*MSL is over (the oldest first).
    fn expire_time_wait(&mut self, now: Instant) {
        while let Some(&(i, g)) = self.time_wait_fifo.front() {
            match Self::record_of(&self.slots, i, g) {
                Some(tw) if !tw.expired(now) => break,
                Some(_) => {
                    self.time_wait_fifo.pop_front();
                    self.free_slot(i);
                }
                None => {
                    self.time_wait_fifo.pop_front();
                }
            }
        }
    }

    /// Free a slot whose connection was taken (and is done), or a record.
    pub fn free_slot(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.conn = Conn::Empty;
        if let Some(key) = slot.key.take() {
            self.counts[slot.counted as usize] -= 1;
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
    /// TIME-WAIT records whose 2*MSL is over are freed here.
    pub fn expired(&mut self, now: Instant, out: &mut Vec<u32>) {
        self.expire_time_wait(now);
        self.fired.clear();
        self.wheel.advance(now, &mut self.fired);
        for &(index, tick) in &self.fired {
            if let Conn::Open(t) = &mut self.slots[index as usize].conn {
                if t.timer_tick == Some(tick) {
                    t.timer_tick = None;
                    out.push(index);
                }
            }
        }
    }

    /// Whether `port` is taken toward `remote`: a listener's, or one of a
    /// connection (TIME-WAIT included) with that remote end.
    pub fn port_in_use(&self, port: u16, remote: SocketAddrV4) -> bool {
        let key = FlowKey {
            local_port: port,
            remote,
        };
        self.listener(port).is_some() || self.index.contains_key(&key)
    }

    /// A local port from `ports` for an active TCP open to `remote`, not in
    /// use toward it, except that a 4-tuple held only by one of our
    /// TIME-WAIT records is taken over when that is safe
    /// ([`TimeWait::reusable_by_connect`], as Linux's `tcp_tw_reuse`): the
    /// record is freed and returned, and the new connection's ISS must come
    /// from its [`TimeWait::reuse_iss`]. Ports are tried in turn from where
    /// the last search stopped, so the record met is the one left longest
    /// ago.
    pub fn pick_tcp_port(
        &mut self,
        ports: &mut PortAllocator,
        now: Instant,
        remote: SocketAddrV4,
    ) -> Option<(u16, Option<TimeWait>)> {
        let mut taken_over = None;
        let port = ports.pick(L4::Tcp, remote, |port| {
            if self.listener(port).is_some() {
                return false;
            }
            let key = FlowKey {
                local_port: port,
                remote,
            };
            let Some(&i) = self.index.get(&key) else {
                return true;
            };
            match self.time_wait(i) {
                Some(tw) if self.cfg.timestamps && tw.reusable_by_connect(now) => {
                    taken_over = Some((i, *tw));
                    true
                }
                _ => false,
            }
        })?;
        if let Some((i, _)) = taken_over {
            self.free_slot(i);
        }
        Some((port, taken_over.map(|t| t.1)))
    }

    /// Entries in the timer wheel, live or stale (tests, diagnostics).
    pub fn timer_entries(&self) -> usize {
        self.wheel.entries()
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

    /// Slots in the table, used or not (the bound of [`Self::entry`]).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// What slot `index` holds, read-only: its 4-tuple and its connection
    /// or TIME-WAIT record; None for a free slot (and for a connection
    /// taken out to run, which never outlives the caller's step).
    pub fn entry(&self, index: u32) -> Option<(FlowKey, TableEntry<'_>)> {
        let slot = self.slots.get(index as usize)?;
        let key = slot.key?;
        match &slot.conn {
            Conn::Open(t) => Some((key, TableEntry::Open(t))),
            Conn::TimeWait(tw) => Some((key, TableEntry::TimeWait(tw))),
            Conn::Empty => None,
        }
    }

    /// The listening ports and their applications.
    pub fn listeners(&self) -> &[(u16, usize)] {
        &self.listeners
    }

    /// A connection, read-only (None for a TIME-WAIT record).
    pub fn get(&self, index: u32) -> Option<&Tcb> {
        match &self.slots.get(index as usize)?.conn {
            Conn::Open(t) => Some(t),
            _ => None,
        }
    }

    /// Drop every connection (shutdown).
    pub fn clear(&mut self) {
        for i in self.indices() {
            self.free_slot(i);
        }
        self.time_wait_fifo.clear();
    }
}

/// Re-arm a connection's timer if its earliest deadline moved earlier
/// than the one filed.
#[inline]
fn file_deadline(wheel: &mut TimerWheel, now: Instant, index: u32, tcb: &mut Tcb) {
    // No deadline set earlier than the one filed since the last filing:
    // each is what the last filing found, no earlier than the deadline
    // filed, or one that rounded to the tick filed (`tick_for` only
    // grows with `now`, so it still does). Nothing to take the minimum of.
    let earliest_set = tcb.take_earliest_set();
    if tcb.timer_tick.is_some() && earliest_set >= tcb.timer_filed.0 {
        return;
    }
    if let Some(d) = tcb.next_deadline() {
        // No earlier than the deadline filed: `tick_for` grows with the
        // deadline and with the wheel's current tick, so it would round
        // to the tick filed or a later one.
        if tcb.timer_tick.is_some() && d >= tcb.timer_filed {
            return;
        }
        file_earlier(wheel, now, index, tcb, d);
    }
}

/// `file_deadline` for a deadline earlier than the one filed (or the
/// first), out of line.
#[inline(never)]
fn file_earlier(wheel: &mut TimerWheel, now: Instant, index: u32, tcb: &mut Tcb, d: Instant) {
    // Compared as `insert` rounds it: an unchanged deadline is never
    // filed twice.
    let want = wheel.tick_for(d.max(now));
    if tcb.timer_tick.is_none_or(|t| want < t) {
        tcb.timer_tick = Some(wheel.insert(index, d));
        tcb.timer_filed = d;
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
        let mut alloc = PortAllocator::new(cfg.ephemeral);
        alloc.set_share(1, 2);
        let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
        let local = Ipv4Addr::new(198, 18, 0, 1);
        let mut ports = Vec::new();
        for _ in 0..3 {
            let (p, _) = t.pick_tcp_port(&mut alloc, Instant::ZERO, remote).unwrap();
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
        let (p, _) = t.pick_tcp_port(&mut alloc, Instant::ZERO, remote).unwrap();
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
    fn an_unchanged_deadline_is_filed_once() {
        let cfg = TcpConfig::default();
        // Half a tick past a millisecond: every deadline (now + RTO) falls
        // between two ticks.
        let now = Instant::from_micros(1_000_500);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let local = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 5000);
        let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
        let mut tcb = Box::new(Tcb::connect(&cfg, now, local, remote, 1, 0));
        tcb.dispatch(now, &mut |_, _, _| true);
        assert!(tcb.next_deadline().is_some_and(|d| d.micros() % 1000 != 0));
        let id = t.insert(now, tcb).unwrap();
        assert_eq!(t.timer_entries(), 1);
        for _ in 0..10 {
            let tcb = t.take(id.index).unwrap();
            assert_eq!(t.put(now, id.index, tcb), None);
        }
        assert_eq!(t.timer_entries(), 1, "filed again on every put");
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

    use crate::time::Duration;
    use crate::wire::{TcpFlags, TcpOptions, TcpRepr};

    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);

    /// A connection from local `port` to the server, established by a
    /// SYN-ACK (the server's ISS 5000; TSval 100 if `ts`). Application 7.
    #[test]
    fn lookup_never_returns_a_freed_or_reused_slot() {
        let cfg = TcpConfig::default();
        let now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let a = established(&cfg, now, 5000, false);
        let key_a = FlowKey {
            local_port: 5000,
            remote: SERVER,
        };
        let id = t.insert(now, a).unwrap();
        // Twice: the second is answered by the last-hit slot.
        assert_eq!(t.lookup(&key_a), Some(id.index));
        assert_eq!(t.lookup(&key_a), Some(id.index));
        t.free_slot(id.index);
        assert_eq!(t.lookup(&key_a), None);
        // The slot goes to another flow: the old key still finds nothing.
        let b = established(&cfg, now, 5001, false);
        let id_b = t.insert(now, b).unwrap();
        assert_eq!(id_b.index, id.index);
        assert_eq!(t.lookup(&key_a), None);
        let key_b = FlowKey {
            local_port: 5001,
            remote: SERVER,
        };
        assert_eq!(t.lookup(&key_b), Some(id_b.index));
    }

    #[test]
    fn settle_in_place_is_take_and_put() {
        let cfg = TcpConfig::default();
        let now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let mut u = TcpTable::new(cfg, IsnGenerator::new(), now);
        let i = t
            .insert(now, established(&cfg, now, 5000, false))
            .unwrap()
            .index;
        let j = u
            .insert(now, established(&cfg, now, 5000, false))
            .unwrap()
            .index;
        let run = |tcb: &mut Tcb| {
            // Data queued and sent: the retransmission timer is armed, and
            // the state is counted where it was.
            tcb.send(b"hello");
            tcb.dispatch(now, &mut |_, _, _| true);
        };
        run(t.get_mut(i).unwrap());
        assert_eq!(t.settle(now, i), None);
        let mut tcb = u.take(j).unwrap();
        run(&mut tcb);
        assert_eq!(u.put(now, j, tcb), None);
        assert_eq!(t.timer_entries(), u.timer_entries());
        assert_eq!(t.get(i).unwrap().timer_tick, u.get(j).unwrap().timer_tick);
        assert_eq!(t.count_state(State::Established), 1);
        // An abort: settle frees the slot as put does.
        t.get_mut(i).unwrap().abort();
        assert_eq!(t.settle(now, i), None);
        assert!(t.get(i).is_none());
        assert_eq!(t.len(), 0);
        assert_eq!(t.count_state(State::Established), 0);
    }

    #[test]
    fn a_later_deadline_is_not_filed_an_earlier_one_is() {
        let cfg = TcpConfig::default();
        let now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let i = t
            .insert(now, established(&cfg, now, 5000, false))
            .unwrap()
            .index;
        let tcb = t.get_mut(i).unwrap();
        tcb.send(b"x");
        tcb.dispatch(now, &mut |_, _, _| true);
        let _ = t.settle(now, i);
        let filed = t.get(i).unwrap().timer_tick;
        assert!(filed.is_some());
        let entries = t.timer_entries();
        // Later: the same RTO from a later time is not filed again.
        let later = now.plus(crate::time::Duration::from_millis(50));
        let tcb = t.get_mut(i).unwrap();
        tcb.send(b"y");
        tcb.dispatch(later, &mut |_, _, _| true);
        let _ = t.settle(later, i);
        assert_eq!(t.get(i).unwrap().timer_tick, filed);
        assert_eq!(t.timer_entries(), entries);
    }

    /// The put's shortcut (no deadline set earlier than the one filed
    /// since the last filing: no minimum taken) against the full rule
    /// (`settled`: the earliest deadline is filed, or rounds to the tick
    /// filed), over seeded random sends, ACKs, data and timer expiries:
    /// after every put the connection is filed as the full rule says,
    /// and its timers keep firing while it has any.
    #[test]
    fn filing_after_a_put_is_the_full_rule_on_random_events() {
        let cfg = TcpConfig::default();
        for seed in 1..=30u64 {
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut now = Instant::from_secs(1);
            let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
            let i = t
                .insert(now, established(&cfg, now, 5000, seed % 2 == 0))
                .unwrap()
                .index;
            let mut c = Counters::default();
            let (mut peer_seq, mut sent) = (5001u32, 1001u32);
            let mut fired = Vec::new();
            for _ in 0..300 {
                let mut tcb = t.take(i).unwrap();
                match next() % 5 {
                    0 => {
                        tcb.send(&[1; 700]);
                    }
                    1 => {
                        let mut ack = from_server(5000, TcpFlags::ACK, peer_seq);
                        ack.ack_number = sent;
                        tcb.process(now, &ack, &[], &mut c);
                    }
                    2 => {
                        let mut data = from_server(5000, TcpFlags::ACK, peer_seq);
                        data.ack_number = tcb.snd_una().0;
                        tcb.process(now, &data, &[2; 100], &mut c);
                        peer_seq = peer_seq.wrapping_add(100);
                    }
                    _ => {}
                }
                tcb.dispatch(now, &mut |r, a, b| {
                    let end = r.seq_number.wrapping_add((a.len() + b.len()) as u32);
                    if end.wrapping_sub(sent) as i32 > 0 && next() % 4 != 0 {
                        sent = end;
                    }
                    true
                });
                assert_eq!(t.put(now, i, tcb), None);
                assert!(
                    t.settled(now, i),
                    "seed {seed}: not filed as the full rule says"
                );
                // Time passes; what is due fires and is put back.
                now = now.plus(crate::time::Duration::from_millis(next() % 300));
                fired.clear();
                t.expired(now, &mut fired);
                for &f in &fired {
                    let mut tcb = t.take(f).unwrap();
                    tcb.on_timer(now, &mut c);
                    tcb.dispatch(now, &mut |_, _, _| true);
                    if t.put(now, f, tcb).is_some() || t.get(f).is_none() {
                        break;
                    }
                    assert!(t.settled(now, f), "seed {seed}: not filed after its timer");
                }
                if t.get(i).is_none_or(|tcb| tcb.state != State::Established) {
                    break;
                }
                let tcb = t.get(i).unwrap();
                if let Some(d) = tcb.next_deadline() {
                    // Every deadline is in the wheel: none is missed.
                    assert!(tcb.timer_tick.is_some(), "seed {seed}: {d:?} not filed");
                }
            }
        }
    }

    fn established(cfg: &TcpConfig, now: Instant, port: u16, ts: bool) -> Box<Tcb> {
        let local = SocketAddrV4::new(LOCAL, port);
        let mut tcb = Box::new(Tcb::connect(cfg, now, local, SERVER, 1000, 7));
        tcb.dispatch(now, &mut |_, _, _| true);
        let mut synack = from_server(port, TcpFlags::SYN | TcpFlags::ACK, 5000);
        synack.options.timestamps = ts.then_some((100, 1));
        tcb.process(now, &synack, &[], &mut Counters::default());
        assert_eq!(tcb.state, State::Established);
        tcb
    }

    /// A segment from the server to local `port`.
    fn from_server(port: u16, flags: TcpFlags, seq: u32) -> TcpRepr {
        TcpRepr {
            src_port: 80,
            dst_port: port,
            seq_number: seq,
            ack_number: 1001,
            flags,
            window_len: 65535,
            urgent_at: 0,
            options: TcpOptions::default(),
        }
    }

    /// Take a connection out, move it to `state`, put it back; returns
    /// whom `put` says to tell CLOSED.
    fn move_to(t: &mut TcpTable, now: Instant, index: u32, state: State) -> Option<usize> {
        let mut tcb = t.take(index).unwrap();
        tcb.state = state;
        t.put(now, index, tcb)
    }

    impl TcpTable {
        /// Connections per state by a walk of every slot: the oracle for
        /// the counts kept as connections come and go.
        fn walk_counts(&self) -> [usize; STATES] {
            let mut n = [0; STATES];
            for s in &self.slots {
                match &s.conn {
                    Conn::Open(t) => n[t.state as usize] += 1,
                    Conn::TimeWait(_) => n[State::TimeWait as usize] += 1,
                    Conn::Empty => assert!(s.key.is_none(), "a keyed slot left empty"),
                }
            }
            n
        }
    }

    #[test]
    fn take_flow_is_lookup_then_take() {
        // Connections open, taken out, and TIME-WAIT records, looked for
        // in a seeded order (with keys of no connection) so that the last
        // slot found is now the one wanted and now not: take_flow gives
        // what lookup then take give (Ok with the connection, Err with the
        // slot of a record or a connection out, Err(None) for no slot),
        // and leaves the same slot to try first.
        let cfg = TcpConfig::default();
        let now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let mut u = TcpTable::new(cfg, IsnGenerator::new(), now);
        let ports: Vec<u16> = (61000..61012).collect();
        for (i, &p) in ports.iter().enumerate() {
            let a = t.insert(now, established(&cfg, now, p, true)).unwrap();
            let b = u.insert(now, established(&cfg, now, p, true)).unwrap();
            assert_eq!(a, b);
            if i % 3 == 1 {
                let _ = move_to(&mut t, now, a.index, State::TimeWait);
                let _ = move_to(&mut u, now, b.index, State::TimeWait);
            }
        }
        let mut out: Vec<Box<Tcb>> = Vec::new();
        for &p in ports.iter().step_by(4) {
            let key = FlowKey {
                local_port: p,
                remote: SERVER,
            };
            let i = t.lookup(&key).unwrap();
            assert_eq!(u.lookup(&key), Some(i));
            if let Some(tcb) = t.take(i) {
                out.push(tcb);
                u.take(i).unwrap();
            }
        }
        let mut next = crate::wire::xorshift(0x853c_49e6_748f_ea9b);
        let mut seen = [0usize; 3];
        for _ in 0..400 {
            let r = next();
            let port = 60998 + (r % 16) as u16;
            let key = FlowKey {
                local_port: port,
                remote: SERVER,
            };
            let general = match t.lookup(&key) {
                None => Err(None),
                Some(i) => t.take(i).map(|tcb| (i, tcb)).ok_or(Some(i)),
            };
            let one = u.take_flow(&key);
            let kind = match (&general, &one) {
                (Ok((i, a)), Ok((j, b))) => {
                    assert_eq!((i, a.local), (j, b.local));
                    0
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a, b, "{port}");
                    1 + usize::from(a.is_none())
                }
                _ => panic!("{port}: {:?} {:?}", general.is_ok(), one.is_ok()),
            };
            seen[kind] += 1;
            assert_eq!(t.last_hit.get(), u.last_hit.get());
            // Back, or kept out, alike.
            match (general, one) {
                (Ok((i, a)), Ok((j, b))) if r & (7 << 40) != 0 => {
                    t.restore(i, a);
                    u.restore(j, b);
                }
                (Ok((_, a)), Ok((_, b))) => out.extend([a, b]),
                _ => {}
            }
        }
        assert!(seen.iter().all(|&n| n > 20), "{seen:?}");
    }

    #[test]
    fn a_time_wait_connection_costs_a_slot() {
        use std::mem::size_of;
        let (tw, slot, tcb) = (size_of::<TimeWait>(), size_of::<Slot>(), size_of::<Tcb>());
        println!("TimeWait {tw} B, Slot {slot} B, Tcb {tcb} B (boxed, plus its rings)");
        assert!(tw <= 32, "TimeWait grew to {tw} bytes");
        assert!(slot <= 48, "Slot grew to {slot} bytes");
    }

    #[test]
    fn time_wait_becomes_a_record_and_ends_after_2msl() {
        let cfg = TcpConfig::default();
        let now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let id = t.insert(now, established(&cfg, now, 61000, true)).unwrap();
        let key = FlowKey {
            local_port: 61000,
            remote: SERVER,
        };
        // Its application still holds it: it is to be told CLOSED.
        assert_eq!(move_to(&mut t, now, id.index, State::TimeWait), Some(7));
        assert!(t.get(id.index).is_none() && t.take(id.index).is_none());
        let tw = *t.time_wait(id.index).expect("a record");
        assert_eq!((tw.snd_nxt().0, tw.rcv_nxt().0), (1001, 5001));
        assert_eq!(tw.ts_recent(), Some(100));
        assert_eq!(tw.deadline, now.plus(cfg.time_wait));
        assert_eq!(t.resolve(id), None, "the application's id is stale");
        assert_eq!(t.lookup(&key), Some(id.index), "the 4-tuple stays held");
        assert_eq!(t.count_state(State::TimeWait), 1);
        assert_eq!(t.count_state(State::Established), 0);
        let mut out = Vec::new();
        t.expired(Instant(tw.deadline.micros() - 1), &mut out);
        assert_eq!(t.len(), 1);
        t.expired(tw.deadline, &mut out);
        assert!(out.is_empty(), "records are no Tcb to run");
        assert_eq!((t.len(), t.count_state(State::TimeWait)), (0, 0));
        assert_eq!(t.lookup(&key), None);
        // An application that closed is not told; one with data still to
        // read keeps its Tcb until it has read it.
        let id = t.insert(now, established(&cfg, now, 61001, true)).unwrap();
        let mut tcb = t.take(id.index).unwrap();
        tcb.close(now);
        tcb.state = State::TimeWait;
        assert_eq!(t.put(now, id.index, tcb), None);
        assert!(t.time_wait(id.index).is_some());
        let id = t.insert(now, established(&cfg, now, 61002, true)).unwrap();
        let mut tcb = t.take(id.index).unwrap();
        let data = from_server(61002, TcpFlags::ACK, 5001);
        tcb.process(now, &data, b"unread", &mut Counters::default());
        tcb.state = State::TimeWait;
        assert_eq!(t.put(now, id.index, tcb), None);
        assert!(t.get(id.index).is_some(), "still a Tcb");
        let mut tcb = t.take(id.index).unwrap();
        assert_eq!(tcb.recv(&mut [0; 16]), 6);
        assert_eq!(t.put(now, id.index, tcb), Some(7));
        assert!(t.time_wait(id.index).is_some());
        assert_eq!(t.count_state(State::TimeWait), 2);
        assert_eq!(t.counts, t.walk_counts());
    }

    #[test]
    fn time_wait_segments_restart_end_or_reopen_the_record() {
        let cfg = TcpConfig::default();
        let now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let mut c = Counters::default();
        let id = t.insert(now, established(&cfg, now, 61000, false)).unwrap();
        let _ = move_to(&mut t, now, id.index, State::TimeWait);
        // A retransmitted FIN: ACKed, and 2*MSL starts again.
        let later = now.plus(Duration::from_secs(30));
        let fin = from_server(61000, TcpFlags::FIN | TcpFlags::ACK, 5000);
        let v = t.process_time_wait(later, id.index, &fin, 0, &mut c);
        assert!(matches!(v, Some(TwVerdict::Ack(a)) if a.ack_number == 5001));
        let deadline = later.plus(cfg.time_wait);
        assert_eq!(t.time_wait(id.index).unwrap().deadline, deadline);
        let mut out = Vec::new();
        t.expired(now.plus(cfg.time_wait), &mut out);
        assert_eq!(t.len(), 1, "restarted: not ended at the first deadline");
        t.expired(deadline, &mut out);
        assert_eq!(t.len(), 0);
        // An exact RST ends it; a new incarnation's SYN frees it too.
        for (seg, verdict) in [
            (from_server(61000, TcpFlags::RST, 5001), TwVerdict::Close),
            (from_server(61000, TcpFlags::SYN, 9000), TwVerdict::Reopen),
        ] {
            let id = t.insert(now, established(&cfg, now, 61000, false)).unwrap();
            let _ = move_to(&mut t, now, id.index, State::TimeWait);
            assert_eq!(
                t.process_time_wait(now, id.index, &seg, 0, &mut c),
                Some(verdict)
            );
            assert_eq!((t.len(), t.count_state(State::TimeWait)), (0, 0));
        }
        // A live connection is not the record's business.
        let id = t.insert(now, established(&cfg, now, 61000, false)).unwrap();
        let ack = from_server(61000, TcpFlags::ACK, 5001);
        assert_eq!(t.process_time_wait(now, id.index, &ack, 0, &mut c), None);
    }

    #[test]
    fn a_full_table_recycles_the_oldest_time_wait_record_first() {
        let cfg = TcpConfig {
            max_connections: 4,
            ..Default::default()
        };
        let now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let mut c = Counters::default();
        let mut ids = Vec::new();
        for port in 61000..61003 {
            let id = t.insert(now, established(&cfg, now, port, false)).unwrap();
            let _ = move_to(&mut t, now, id.index, State::TimeWait);
            ids.push(id.index);
        }
        let live = t.insert(now, established(&cfg, now, 61003, false)).unwrap();
        assert!(t.is_full());
        // The oldest is restarted by a retransmitted FIN: now the youngest.
        let fin = from_server(61000, TcpFlags::FIN | TcpFlags::ACK, 5000);
        let later = now.plus(Duration::from_secs(1));
        t.process_time_wait(later, ids[0], &fin, 0, &mut c);
        // The second ends by a RST: its entry goes stale.
        let rst = from_server(61001, TcpFlags::RST, 5001);
        t.process_time_wait(later, ids[1], &rst, 0, &mut c);
        assert_eq!(t.len(), 3);
        // A peer that keeps retransmitting its FIN grows no queue.
        for _ in 0..100 {
            t.process_time_wait(later, ids[0], &fin, 0, &mut c);
        }
        assert!(t.time_wait_fifo.len() <= 2 * 4);
        let key = |port| FlowKey {
            local_port: port,
            remote: SERVER,
        };
        assert!(t
            .insert(later, established(&cfg, later, 61004, false))
            .is_some());
        assert!(t.is_full());
        // Full: the next insert recycles the oldest record, the third.
        assert!(t
            .insert(later, established(&cfg, later, 61005, false))
            .is_some());
        assert_eq!(t.lookup(&key(61002)), None, "the oldest went first");
        assert!(t.lookup(&key(61000)).is_some(), "restarted: younger");
        assert!(t
            .insert(later, established(&cfg, later, 61006, false))
            .is_some());
        assert_eq!(t.lookup(&key(61000)), None);
        assert_eq!(t.time_wait_recycled, 2);
        assert_eq!(t.count_state(State::TimeWait), 0);
        // No record left: a live connection is never recycled.
        assert!(!t.make_room());
        assert!(t
            .insert(later, established(&cfg, later, 61007, false))
            .is_none());
        assert!(t.resolve(live).is_some());
        assert_eq!(t.counts, t.walk_counts());
    }

    #[test]
    fn per_state_counts_equal_a_walk_after_random_operations() {
        const ALL: [State; STATES] = State::ALL;
        let cfg = TcpConfig {
            max_connections: 32,
            time_wait: Duration::from_secs(2),
            ..Default::default()
        };
        let mut now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let mut c = Counters::default();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut out = Vec::new();
        for step in 0..20_000 {
            now = now.plus(Duration::from_millis(next(20)));
            let used = t.indices();
            let pick = (!used.is_empty()).then(|| used[next(used.len() as u64) as usize]);
            match (next(8), pick) {
                (0..=2, _) | (_, None) => {
                    let port = 61000 + next(64) as u16;
                    let key = FlowKey {
                        local_port: port,
                        remote: SERVER,
                    };
                    if t.lookup(&key).is_none() {
                        t.insert(now, established(&cfg, now, port, next(2) == 0));
                    }
                }
                (3, Some(i)) if t.get(i).is_some() => {
                    let state = ALL[next(STATES as u64) as usize];
                    let _ = move_to(&mut t, now, i, state);
                }
                (4, Some(i)) => {
                    t.take(i);
                    t.free_slot(i);
                }
                (5, Some(i)) => {
                    let flags = [TcpFlags::RST, TcpFlags::SYN, TcpFlags::ACK][next(3) as usize];
                    let port = t.slots[i as usize].key.unwrap().local_port;
                    let seg = from_server(port, flags, 5000 + next(3) as u32 * 5000);
                    t.process_time_wait(now, i, &seg, 0, &mut c);
                }
                (6, _) => {
                    t.make_room();
                }
                _ => {
                    out.clear();
                    t.expired(now, &mut out);
                    for &i in &out {
                        let tcb = t.take(i).unwrap();
                        let _ = t.put(now, i, tcb);
                    }
                }
            }
            assert_eq!(t.counts, t.walk_counts(), "step {step}");
            assert_eq!(t.counts.iter().sum::<usize>(), t.len());
        }
        assert!(t.time_wait_recycled > 0, "the table filled up");
    }

    #[test]
    fn an_active_open_takes_over_its_own_time_wait_after_a_second() {
        let cfg = TcpConfig {
            ephemeral: (61000, 61001),
            ..Default::default()
        };
        let now = Instant::from_secs(1);
        let mut t = TcpTable::new(cfg, IsnGenerator::new(), now);
        let mut ports = PortAllocator::new(cfg.ephemeral);
        // Both ports to the server in TIME-WAIT: 61000 with timestamps,
        // 61001 without.
        for (port, ts) in [(61000, true), (61001, false)] {
            let id = t.insert(now, established(&cfg, now, port, ts)).unwrap();
            let _ = move_to(&mut t, now, id.index, State::TimeWait);
        }
        assert_eq!(t.pick_tcp_port(&mut ports, now, SERVER), None, "too young");
        let soon = now.plus(Duration::from_millis(999));
        assert_eq!(t.pick_tcp_port(&mut ports, soon, SERVER), None);
        // UDP (and anything but an active TCP open) never takes one over.
        let later = now.plus(Duration::from_secs(1));
        let udp = ports.pick(L4::Udp, SERVER, |p| !t.port_in_use(p, SERVER));
        assert_eq!(udp, None);
        let (port, tw) = t.pick_tcp_port(&mut ports, later, SERVER).unwrap();
        assert_eq!(port, 61000);
        let tw = tw.expect("the record taken over");
        assert_eq!(tw.snd_nxt().0, 1001);
        assert_eq!(t.len(), 1, "the record is gone");
        // The new ISS is above the old connection's.
        assert_eq!(tw.reuse_iss(1002), 1001 + 65537);
        // The one without timestamps is never taken over.
        let key = FlowKey {
            local_port: 61000,
            remote: SERVER,
        };
        let local = SocketAddrV4::new(LOCAL, 61000);
        let tcb = Tcb::connect(&cfg, later, local, SERVER, tw.reuse_iss(1), 7);
        t.insert(later, Box::new(tcb)).unwrap();
        assert!(t.lookup(&key).is_some());
        let much_later = now.plus(Duration::from_secs(50));
        assert_eq!(t.pick_tcp_port(&mut ports, much_later, SERVER), None);
        assert_eq!(t.count_state(State::TimeWait), 1);
        // Another server, or timestamps off here: no taking over either.
        let other = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 3), 80);
        assert!(matches!(
            t.pick_tcp_port(&mut ports, much_later, other),
            Some((_, None))
        ));
        let mut t = TcpTable::new(
            TcpConfig {
                timestamps: false,
                ..cfg
            },
            IsnGenerator::new(),
            now,
        );
        for port in [61000, 61001] {
            let id = t.insert(now, established(&cfg, now, port, true)).unwrap();
            let _ = move_to(&mut t, now, id.index, State::TimeWait);
        }
        assert_eq!(t.pick_tcp_port(&mut ports, much_later, SERVER), None);
    }
}
