//! Oracles: what every frame a core sends must satisfy, whatever it was
//! fed. The fuzz targets and the simulations check each emitted frame with
//! [`check_emitted_frame`]: it fits the MTU, carries our MAC, has no
//! trailing bytes past the IP datagram (short frames aside, which a NIC
//! pads), and parses back layer by layer with every checksum verified.
//! [`SeqOracle`] watches each connection's sequence space across the
//! segments a core sends; [`check_core`] checks its tables and gauges.

use super::FuzzCore;
use crate::shard::CoreLimits;
use crate::tcp::State;
use crate::wire::ipv4::ecn;
use crate::wire::{
    frame::{parse_frame, Parsed},
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpFlags, TcpPacket, TcpRepr,
};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Ethernet's minimum frame without its FCS: shorter frames may be padded.
const MIN_FRAME: usize = 60;

/// An emitted frame, parsed back.
#[derive(Debug)]
pub enum Emitted<'a> {
    /// A TCP segment: its headers and payload.
    Tcp {
        ip: Ipv4Repr,
        tcp: TcpRepr,
        payload: &'a [u8],
    },
    /// Anything else that parsed (ARP, ICMP, UDP, a fragment, ...).
    Other(Parsed<'a>),
}

/// Check one frame a core sent, with `mtu` and the core's `mac`.
pub fn check_emitted_frame(
    f: &[u8],
    mtu: usize,
    mac: EthernetAddress,
) -> Result<Emitted<'_>, String> {
    let frame = EthernetFrame::new_checked(f).map_err(|e| format!("Ethernet: {e}"))?;
    let eth = EthernetRepr::parse(&frame).map_err(|e| format!("Ethernet: {e}"))?;
    let l2 = eth.buffer_len();
    if f.len() > l2 + mtu {
        return Err(format!("a {}-byte frame over the MTU {mtu}", f.len()));
    }
    if eth.src_addr != mac {
        return Err(format!("source MAC {} is not ours", eth.src_addr));
    }
    if eth.ethertype == EtherType::Ipv4 {
        let p = Ipv4Packet::new_checked(&f[l2..]).map_err(|e| format!("IPv4: {e}"))?;
        let total = usize::from(p.total_len());
        if total > mtu {
            return Err(format!("{total} bytes of IP over the MTU {mtu}"));
        }
        if f.len() != l2 + total && f.len() > MIN_FRAME {
            return Err(format!(
                "{} bytes past a {total}-byte datagram",
                f.len() - l2 - total
            ));
        }
        let ip = Ipv4Repr::parse(&p, true).map_err(|e| format!("IPv4 header: {e}"))?;
        if ip.next_header == IpProtocol::Tcp && !p.is_fragment() {
            let t = TcpPacket::new_checked(p.payload()).map_err(|e| format!("TCP: {e}"))?;
            let tcp = TcpRepr::parse(&t, &ip.src_addr, &ip.dst_addr, true)
                .map_err(|e| format!("TCP checksum or options: {e}"))?;
            let at = l2 + usize::from(p.header_len()) + t.header_len();
            return Ok(Emitted::Tcp {
                ip,
                tcp,
                payload: &f[at..l2 + total],
            });
        }
    }
    let f = if eth.ethertype == EtherType::Ipv4 {
        // Without the padding, for the whole-frame parser.
        let total = usize::from(Ipv4Packet::new_unchecked(&f[l2..]).total_len());
        &f[..l2 + total]
    } else {
        f
    };
    let (_, parsed) = parse_frame(f).map_err(|e| format!("{:?}: {e}", eth.ethertype))?;
    Ok(Emitted::Other(parsed))
}

/// One connection's sequence space as the core sent it.
#[derive(Clone, Copy, Debug)]
struct SentSpace {
    /// The highest sequence number sent, plus one (snd_max).
    max_end: u32,
    /// The last acknowledgment number sent.
    last_ack: Option<u32>,
}

/// Per 4-tuple, within one incarnation (from the core's SYN or SYN-ACK,
/// RFC 9293 3.4): a segment never starts past what was sent before (no
/// hole in the sequence space: retransmissions, keepalives and window
/// probes start at or below snd_max), and the acknowledgment numbers the
/// core sends never decrease (rcv_nxt only advances, RFC 9293 3.10.7.4).
/// Resets are not checked: a RST for an unknown connection takes its
/// sequence number from the segment it answers (RFC 9293 3.10.7.1).
#[derive(Debug, Default)]
pub struct SeqOracle {
    /// (peer address, peer port, our port) -> what was sent.
    conns: HashMap<(Ipv4Addr, u16, u16), SentSpace>,
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl SeqOracle {
    /// A segment the core sent, with `len` bytes of payload.
    pub fn observe(&mut self, ip: &Ipv4Repr, tcp: &TcpRepr, len: usize) -> Result<(), String> {
        let key = (ip.dst_addr, tcp.dst_port, tcp.src_port);
        let f = tcp.flags;
        // RFC 3168 6.1.5, 6.1.6: only data goes ECT, and only ECT(0);
        // never CE, never a SYN, RST or pure ACK. CWR goes on new data.
        let ect = match ip.ecn {
            ecn::NOT_ECT => false,
            ecn::ECT0 => true,
            x => return Err(format!("a TCP segment ({f:?}) with ECN codepoint {x}")),
        };
        if ect && (len == 0 || f.contains(TcpFlags::SYN) || f.contains(TcpFlags::RST)) {
            return Err(format!("ECT(0) on a segment ({f:?}) of {len} bytes"));
        }
        if f.contains(TcpFlags::CWR) && !f.contains(TcpFlags::SYN) && !ect {
            return Err(format!("CWR on a segment ({f:?}) that is not ECT new data"));
        }
        if f.contains(TcpFlags::RST) {
            return Ok(());
        }
        let end = tcp
            .seq_number
            .wrapping_add(len as u32)
            .wrapping_add(u32::from(f.contains(TcpFlags::SYN)))
            .wrapping_add(u32::from(f.contains(TcpFlags::FIN)));
        let ack = f.contains(TcpFlags::ACK).then_some(tcp.ack_number);
        if f.contains(TcpFlags::SYN) {
            // A new incarnation (or the same SYN again).
            self.conns.insert(
                key,
                SentSpace {
                    max_end: end,
                    last_ack: ack,
                },
            );
            return Ok(());
        }
        let Some(c) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        let who = format!("{}:{} <- port {}", key.0, key.1, key.2);
        if ect && seq_lt(tcp.seq_number, c.max_end) {
            return Err(format!(
                "{who}: a retransmission at {} (below {}) went ECT(0)",
                tcp.seq_number, c.max_end
            ));
        }
        if seq_lt(c.max_end, tcp.seq_number) {
            return Err(format!(
                "{who}: a segment ({f:?}) starts at {} past the highest sequence sent, {}",
                tcp.seq_number, c.max_end
            ));
        }
        if seq_lt(c.max_end, end) {
            c.max_end = end;
        }
        if let Some(a) = ack {
            if let Some(last) = c.last_ack {
                if seq_lt(a, last) {
                    return Err(format!(
                        "{who}: the ACK number went back from {last} to {a} ({f:?})"
                    ));
                }
            }
            c.last_ack = Some(a);
        }
        Ok(())
    }
}

/// Whether counter `name` may go down: a gauge or a limit
/// ([`crate::stats::GAUGES`]), but not a high-water mark (`_peak`), which
/// only rises.
fn may_go_down(name: &str) -> bool {
    crate::stats::Counters::is_gauge(name) && !name.ends_with("_peak")
}

/// Event counters never go down: each is compared with its value at the
/// last check.
#[derive(Debug, Default)]
pub struct CounterOracle {
    last: Vec<(String, u64)>,
}

impl CounterOracle {
    pub fn check(&mut self, c: &crate::stats::Counters) -> Result<(), String> {
        let now = c.pairs();
        for ((name, was), (_, is)) in self.last.iter().zip(&now) {
            if is < was && !may_go_down(name) {
                return Err(format!("counter {name} went down from {was} to {is}"));
            }
        }
        self.last = now;
        Ok(())
    }
}

/// The connection states, in `State`'s order.
const STATES: [State; 10] = State::ALL;

/// A core's tables and gauges, between two events:
/// - the TCP table holds at most `max_connections`, the SYN cache at most
///   its capacity;
/// - the table's per-state counts (kept incrementally, the gauges' source)
///   equal a walk of the table, and sum to its length;
/// - the gauges, as last refreshed, agree with each other: the per-state
///   ones sum to `tcp_connections`, none exceeds its table's size;
/// - no TCP buffer memory is held when no connection is left, and none
///   past the budget (`--tcp-memory`) but for one chunk per connection;
/// - `tcp_mem_peak` is at least `tcp_mem_bytes`;
/// - every connection's scoreboard holds its flight as scoreboard.rs says:
///   records sorted and contiguous from SND.UNA to SND.MAX, the cached
///   SACKed, lost and resent byte counts equal a recount, the pipe never
///   below zero (with the `fuzzing` feature, or in tests).
pub fn check_core(core: &FuzzCore, limits: &CoreLimits) -> Result<(), String> {
    let c = core.core();
    let t = c.tcp_table();
    let max = limits.tcp.max_connections;
    if t.len() > max {
        return Err(format!("{} connections over the limit {max}", t.len()));
    }
    let cache = c.syn_cache();
    if cache.len() > cache.capacity() {
        return Err(format!(
            "{} half-open connections over the SYN cache's {}",
            cache.len(),
            cache.capacity()
        ));
    }
    let mut walked = [0usize; STATES.len()];
    for i in t.indices() {
        match (t.get(i), t.time_wait(i)) {
            (Some(tcb), _) => walked[tcb.state as usize] += 1,
            (None, Some(_)) => walked[State::TimeWait as usize] += 1,
            (None, None) => return Err(format!("slot {i} is keyed but holds nothing")),
        }
    }
    #[cfg(any(test, feature = "fuzzing"))]
    check_scoreboards(t)?;
    let mut sum = 0;
    for s in STATES {
        let n = t.count_state(s);
        if n != walked[s as usize] {
            return Err(format!(
                "{} {} connections counted, {} in the table",
                n,
                s.name(),
                walked[s as usize]
            ));
        }
        sum += n;
    }
    if sum != t.len() {
        return Err(format!(
            "per-state counts sum to {sum}, the table holds {}",
            t.len()
        ));
    }
    let k = &c.net.counters;
    let states = k.tcp_time_wait
        + k.tcp_syn_sent
        + k.tcp_syn_received
        + k.tcp_established
        + k.tcp_fin_wait1
        + k.tcp_fin_wait2
        + k.tcp_close_wait
        + k.tcp_closing
        + k.tcp_last_ack;
    if states > k.tcp_connections || k.tcp_connections > max as u64 {
        return Err(format!(
            "gauges: {states} by state, tcp_connections {}, max {max}",
            k.tcp_connections
        ));
    }
    if k.tcp_half_open > cache.capacity() as u64 {
        return Err(format!(
            "gauge tcp_half_open {} over the cache",
            k.tcp_half_open
        ));
    }
    let mem = crate::tcp::buffer::core_stats();
    if t.is_empty() && mem.bytes != 0 {
        return Err(format!(
            "{} bytes of TCP buffer memory held with no connection",
            mem.bytes
        ));
    }
    if mem.peak < mem.bytes {
        return Err(format!(
            "TCP memory peak {} below the bytes held {}",
            mem.peak, mem.bytes
        ));
    }
    Ok(())
}

/// Every connection's scoreboard against its SND.UNA and SND.MAX (the
/// invariants of scoreboard.rs); `check_core` calls it, and the two-core
/// pair (`pair.rs`) after each step with the `fuzzing` feature.
#[cfg(any(test, feature = "fuzzing"))]
pub fn check_scoreboards(t: &crate::tcp::TcpTable) -> Result<(), String> {
    for i in t.indices() {
        if let Some(tcb) = t.get(i) {
            tcb.check_scoreboard()
                .map_err(|e| format!("{} {}: scoreboard: {e}", tcb.remote, tcb.state.name()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TcpOptions;
    use std::net::Ipv4Addr;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    /// A TCP segment as a core would send it.
    fn segment(payload: &[u8]) -> Vec<u8> {
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let repr = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq_number: 1,
            ack_number: 2,
            flags: TcpFlags::ACK,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions::default(),
        };
        let tcp_len = repr.header_len() + payload.len();
        let mut f = vec![0u8; 14 + 20 + tcp_len];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&MAC.0);
        f[12..14].copy_from_slice(&[8, 0]);
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len,
            hop_limit: 64,
            ecn: 0,
        };
        let mut p = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.emit(&mut p, true);
        let seg = &mut f[34..];
        seg[repr.header_len()..].copy_from_slice(payload);
        let mut t = TcpPacket::new_unchecked(seg);
        repr.emit(&mut t);
        t.fill_checksum(&src, &dst);
        f
    }

    #[test]
    fn a_good_segment_passes_and_each_fault_is_named() {
        let f = segment(b"hello");
        match check_emitted_frame(&f, 1500, MAC).unwrap() {
            Emitted::Tcp { payload, tcp, .. } => {
                assert_eq!(payload, b"hello");
                assert_eq!(tcp.src_port, 80);
            }
            other => panic!("{other:?}"),
        }
        // Over the MTU.
        let big = segment(&[0u8; 1461]);
        assert!(check_emitted_frame(&big, 1500, MAC)
            .unwrap_err()
            .contains("over the MTU"));
        // Not our MAC.
        let e = check_emitted_frame(&f, 1500, EthernetAddress([2, 0, 0, 0, 0, 9])).unwrap_err();
        assert!(e.contains("not ours"), "{e}");
        // A bad TCP checksum.
        let mut bad = f.clone();
        *bad.last_mut().unwrap() ^= 1;
        let e = check_emitted_frame(&bad, 1500, MAC).unwrap_err();
        assert!(e.contains("TCP checksum"), "{e}");
        // A bad IP checksum.
        let mut bad = f.clone();
        bad[14 + 8] ^= 1;
        let e = check_emitted_frame(&bad, 1500, MAC).unwrap_err();
        assert!(e.contains("IPv4 header"), "{e}");
        // Trailing bytes past the datagram (in a frame longer than the minimum).
        let mut long = segment(&[0u8; 100]);
        long.extend_from_slice(&[0; 4]);
        let e = check_emitted_frame(&long, 1500, MAC).unwrap_err();
        assert!(e.contains("past a"), "{e}");
    }

    #[test]
    fn the_sequence_oracle_sees_holes_and_ack_regressions() {
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 1),
            dst_addr: Ipv4Addr::new(198, 18, 0, 2),
            next_header: IpProtocol::Tcp,
            payload_len: 20,
            hop_limit: 64,
            ecn: 0,
        };
        let seg = |flags, seq, ack| TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq_number: seq,
            ack_number: ack,
            flags,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions::default(),
        };
        let (syn_ack, ack) = (TcpFlags::SYN | TcpFlags::ACK, TcpFlags::ACK);
        let mut o = SeqOracle::default();
        // The SYN-ACK at ISS u32::MAX (wrapping), data, a retransmission,
        // a keepalive below snd_una.
        o.observe(&ip, &seg(syn_ack, u32::MAX, 10), 0).unwrap();
        o.observe(&ip, &seg(ack, 0, 10), 100).unwrap();
        o.observe(&ip, &seg(ack, 0, 12), 100).unwrap();
        o.observe(&ip, &seg(ack, 99, 12), 0).unwrap();
        o.observe(&ip, &seg(ack, 100, 12), 0).unwrap();
        // A hole: starts past snd_max (100).
        let e = o.observe(&ip, &seg(ack, 101, 12), 0).unwrap_err();
        assert!(e.contains("past the highest"), "{e}");
        // The ACK number goes back.
        let e = o.observe(&ip, &seg(ack, 100, 11), 0).unwrap_err();
        assert!(e.contains("went back"), "{e}");
        // A RST is not checked; a new SYN-ACK starts over.
        o.observe(&ip, &seg(TcpFlags::RST, 5000, 0), 0).unwrap();
        o.observe(&ip, &seg(syn_ack, 7, 3), 0).unwrap();
        o.observe(&ip, &seg(ack, 8, 3), 0).unwrap();
    }

    #[test]
    fn the_sequence_oracle_allows_ect_on_new_data_only() {
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 1),
            dst_addr: Ipv4Addr::new(198, 18, 0, 2),
            next_header: IpProtocol::Tcp,
            payload_len: 20,
            hop_limit: 64,
            ecn: ecn::NOT_ECT,
        };
        let ect = Ipv4Repr {
            ecn: ecn::ECT0,
            ..ip
        };
        let seg = |flags, seq| TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq_number: seq,
            ack_number: 10,
            flags,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions::default(),
        };
        let (ece, cwr) = (TcpFlags::ECE, TcpFlags::CWR);
        let (syn_ack, ack) = (TcpFlags::SYN | TcpFlags::ACK, TcpFlags::ACK);
        let mut o = SeqOracle::default();
        o.observe(&ip, &seg(syn_ack | ece, 0), 0).unwrap();
        // New data ECT(0), with CWR; ECE on anything.
        o.observe(&ect, &seg(ack | cwr | ece, 1), 100).unwrap();
        o.observe(&ip, &seg(ack | ece, 101), 0).unwrap();
        // A retransmission, a pure ACK, a SYN: never ECT; never CE.
        let e = o.observe(&ect, &seg(ack, 1), 100).unwrap_err();
        assert!(e.contains("retransmission"), "{e}");
        let e = o.observe(&ect, &seg(ack, 101), 0).unwrap_err();
        assert!(e.contains("ECT(0) on"), "{e}");
        let e = o.observe(&ect, &seg(syn_ack, 0), 0).unwrap_err();
        assert!(e.contains("ECT(0) on"), "{e}");
        let ce = Ipv4Repr { ecn: ecn::CE, ..ip };
        assert!(o.observe(&ce, &seg(ack, 101), 100).is_err());
        // CWR on a Not-ECT retransmission.
        let e = o.observe(&ip, &seg(ack | cwr, 1), 100).unwrap_err();
        assert!(e.contains("CWR"), "{e}");
    }

    #[test]
    fn the_counter_oracle_allows_gauges_down_but_not_events() {
        let mut o = CounterOracle::default();
        let mut c = crate::stats::Counters {
            tcp_connections: 3,
            tcp_rx_segments: 5,
            ..Default::default()
        };
        o.check(&c).unwrap();
        c.tcp_connections = 1;
        c.tcp_rx_segments = 6;
        o.check(&c).unwrap();
        c.tcp_rx_segments = 4;
        let e = o.check(&c).unwrap_err();
        assert!(e.contains("tcp_rx_segments"), "{e}");
    }
}
