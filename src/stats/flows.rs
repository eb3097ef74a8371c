//! Flow records: which core handled which flow, and how much of it.
//!
//! Opt-in (`--flow-records N`). Each core keeps its own bounded table,
//! keyed by transport, our port and the remote address, written only by
//! that core: a TCP connection's record is written where the connection
//! lives (segments another core received and handed over count as
//! `handed_in` there, never on the receiving core), a UDP flow's where its
//! datagrams reached a socket. So a flow that appears on two cores was
//! handled by two, and one that appears on one was handled start to finish
//! by it, the question RSS and the handoff between cores must answer.
//!
//! The table never grows past its capacity: a new flow arriving at a full
//! table is counted (`flow_records_full`) and not recorded; the flows
//! already in it keep counting. The records sit in a vector in the order
//! they were first seen (nothing is ever removed), found through an index
//! map; both are sized up front, so recording allocates nothing on the
//! packet path, and a snapshot can copy them a slice at a time
//! (src/stats/flow_snapshot.rs).

use crate::hash::FlowHash;
use crate::time::Instant;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddrV4;

/// The transport of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// A flow as this host names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId {
    pub transport: Transport,
    pub local_port: u16,
    pub remote: SocketAddrV4,
}

/// What one core did for one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Segments or datagrams this core processed for the flow.
    pub packets_in: u64,
    /// Their transport payload bytes.
    pub bytes_in: u64,
    /// Of `packets_in`, those another core received and handed over.
    pub handed_in: u64,
    /// Segments or datagrams this core sent for the flow.
    pub packets_out: u64,
    /// Their transport payload bytes.
    pub bytes_out: u64,
    pub first: Instant,
    pub last: Instant,
}

impl FlowRecord {
    fn new(now: Instant) -> FlowRecord {
        FlowRecord {
            packets_in: 0,
            bytes_in: 0,
            handed_in: 0,
            packets_out: 0,
            bytes_out: 0,
            first: now,
            last: now,
        }
    }
}

/// One core's flow records.
pub struct FlowLog {
    index: HashMap<FlowId, u32, FlowHash>,
    records: Vec<(FlowId, FlowRecord)>,
    capacity: usize,
    /// New flows not recorded because the table was full.
    pub full: u64,
}

impl FlowLog {
    /// A table of at most `capacity` flows, allocated now.
    pub fn new(capacity: usize) -> FlowLog {
        // Indices are u32.
        let capacity = capacity.min(u32::MAX as usize);
        FlowLog {
            index: HashMap::with_capacity_and_hasher(capacity, FlowHash::default()),
            records: Vec::with_capacity(capacity),
            capacity,
            full: 0,
        }
    }

    #[inline]
    fn entry(&mut self, now: Instant, id: FlowId) -> Option<&mut FlowRecord> {
        let i = match self.index.get(&id) {
            Some(&i) => i as usize,
            None if self.records.len() >= self.capacity => {
                self.full += 1;
                return None;
            }
            None => {
                self.index.insert(id, self.records.len() as u32);
                self.records.push((id, FlowRecord::new(now)));
                self.records.len() - 1
            }
        };
        let r = &mut self.records[i].1;
        r.last = now;
        Some(r)
    }

    /// One segment or datagram of `id` processed here, `bytes` of payload;
    /// `handed_in`: another core received it.
    #[inline]
    pub fn record_in(&mut self, now: Instant, id: FlowId, bytes: u64, handed_in: bool) {
        if let Some(r) = self.entry(now, id) {
            r.packets_in += 1;
            r.bytes_in += bytes;
            r.handed_in += u64::from(handed_in);
        }
    }

    /// `packets` segments or datagrams of `id` sent, `bytes` of payload.
    #[inline]
    pub fn record_out(&mut self, now: Instant, id: FlowId, packets: u64, bytes: u64) {
        if packets == 0 {
            return;
        }
        if let Some(r) = self.entry(now, id) {
            r.packets_out += packets;
            r.bytes_out += bytes;
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The most flows it records.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn get(&self, id: &FlowId) -> Option<&FlowRecord> {
        self.index.get(id).map(|&i| &self.records[i as usize].1)
    }

    /// Every record, in the order the flows were first seen.
    pub fn records(&self) -> &[(FlowId, FlowRecord)] {
        &self.records
    }

    /// Copy every record into `out` (cleared first; no allocation once
    /// `out` has held as many).
    pub fn snapshot_into(&self, out: &mut Vec<(FlowId, FlowRecord)>) {
        out.clear();
        out.extend_from_slice(&self.records);
    }
}

/// One record as a line of `key=value` words, after `core=N`.
pub struct FlowLine<'a>(pub &'a FlowId, pub &'a FlowRecord);

impl fmt::Display for FlowLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (id, r) = (self.0, self.1);
        write!(
            f,
            "proto={} local_port={} remote={} in={} bytes_in={} handed_in={} out={} bytes_out={} first_us={} last_us={}",
            id.transport.name(),
            id.local_port,
            id.remote,
            r.packets_in,
            r.bytes_in,
            r.handed_in,
            r.packets_out,
            r.bytes_out,
            r.first.0,
            r.last.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn id(t: Transport, port: u16) -> FlowId {
        FlowId {
            transport: t,
            local_port: 7,
            remote: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), port),
        }
    }

    #[test]
    fn counts_in_and_out_per_flow() {
        let mut log = FlowLog::new(8);
        let a = id(Transport::Udp, 1000);
        log.record_in(Instant(10), a, 32, false);
        log.record_in(Instant(20), a, 32, true);
        log.record_out(Instant(21), a, 2, 64);
        // Same port, other transport: another flow.
        log.record_in(Instant(30), id(Transport::Tcp, 1000), 0, false);
        assert_eq!(log.len(), 2);
        let r = log.get(&a).unwrap();
        assert_eq!(
            (
                r.packets_in,
                r.bytes_in,
                r.handed_in,
                r.packets_out,
                r.bytes_out
            ),
            (2, 64, 1, 2, 64)
        );
        assert_eq!((r.first, r.last), (Instant(10), Instant(21)));
        // Nothing sent: no record made.
        log.record_out(Instant(40), id(Transport::Udp, 2000), 0, 0);
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn full_table_counts_new_flows_and_keeps_the_old() {
        let mut log = FlowLog::new(4);
        let cap = (log.index.capacity(), log.records.capacity());
        for p in 0..4 {
            log.record_in(Instant(1), id(Transport::Udp, p), 1, false);
        }
        for p in 4..10 {
            log.record_in(Instant(2), id(Transport::Udp, p), 1, false);
            log.record_out(Instant(2), id(Transport::Udp, p), 1, 1);
        }
        assert_eq!(log.len(), 4);
        assert_eq!(log.full, 12);
        log.record_in(Instant(3), id(Transport::Udp, 0), 1, false);
        assert_eq!(log.get(&id(Transport::Udp, 0)).unwrap().packets_in, 2);
        assert_eq!(log.full, 12);
        // Never grew.
        assert_eq!((log.index.capacity(), log.records.capacity()), cap);
    }

    #[test]
    fn line_names_every_field() {
        let mut log = FlowLog::new(1);
        let a = id(Transport::Tcp, 40000);
        log.record_in(Instant(5), a, 100, true);
        log.record_out(Instant(6), a, 3, 200);
        let mut v = Vec::new();
        log.snapshot_into(&mut v);
        assert_eq!(
            FlowLine(&v[0].0, &v[0].1).to_string(),
            "proto=tcp local_port=7 remote=198.18.0.2:40000 in=1 bytes_in=100 handed_in=1 \
             out=3 bytes_out=200 first_us=5 last_us=6"
        );
    }
}
