//! Counters and drop reasons.
//!
//! Every lcore owns one [`Counters`]: plain integers, written only by that
//! core. Other threads never read them directly: the core copies them into its
//! [`PublishedCounters`] slot on its stats timer and on exit, and the printer
//! reads that slot.

pub mod conns;
pub mod cycles;
pub mod flow_snapshot;
pub mod flows;
pub mod latency;
pub mod latency_slot;
pub mod metrics;
pub mod ss;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a frame (or datagram) was dropped. Every drop is counted under one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Shorter than its headers or its length fields say.
    Truncated,
    /// A header or payload checksum is wrong.
    BadChecksum,
    /// A field holds an impossible value (IHL < 5, ARP hardware length 7, ...).
    Malformed,
    /// Well formed, but a protocol or option the stack does not handle.
    Unsupported,
    /// Not addressed to this host.
    NotForUs,
    /// The mempool had no buffer.
    NoBuffer,
    /// A datagram to a port no application owns.
    NoSocket,
    /// No route to the destination.
    NoRoute,
    /// ARP resolution failed or its pending queue was full.
    NoArp,
    /// A bounded queue or TX buffer was full.
    QueueFull,
    /// Larger than the MTU allows.
    Oversize,
    /// A fragment overlapped another of the same datagram.
    FragOverlap,
    /// A fragment set larger than a datagram can be.
    FragTooBig,
    /// A datagram whose fragments did not all arrive in time.
    FragTimeout,
    /// The reassembly table or its memory was full.
    FragNoSpace,
    /// TTL reached zero.
    TtlExpired,
    /// A TCP segment outside the receive window, or an old timestamp (PAWS).
    TcpOutOfWindow,
    /// A TCP segment for no connection and no listener (answered with RST).
    TcpNoConnection,
    /// Bound for the kernel, but its interface was down or the rate limit hit.
    Kernel,
    /// Sent from our own MAC address: our own frame looped back, or another
    /// station using our address (never answered, never given to the kernel).
    Looped,
    /// TCP data not stored: the core's buffer memory budget was spent
    /// (`--tcp-memory`; acknowledged, the peer sends it again).
    TcpNoMemory,
}

impl DropReason {
    pub const COUNT: usize = 21;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::BadChecksum,
        DropReason::Malformed,
        DropReason::Unsupported,
        DropReason::NotForUs,
        DropReason::NoBuffer,
        DropReason::NoSocket,
        DropReason::NoRoute,
        DropReason::NoArp,
        DropReason::QueueFull,
        DropReason::Oversize,
        DropReason::FragOverlap,
        DropReason::FragTooBig,
        DropReason::FragTimeout,
        DropReason::FragNoSpace,
        DropReason::TtlExpired,
        DropReason::TcpOutOfWindow,
        DropReason::TcpNoConnection,
        DropReason::Kernel,
        DropReason::Looped,
        DropReason::TcpNoMemory,
    ];

    /// The snake_case name used in printed counters (`drop_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::Malformed => "malformed",
            DropReason::Unsupported => "unsupported",
            DropReason::NotForUs => "not_for_us",
            DropReason::NoBuffer => "no_buffer",
            DropReason::NoSocket => "no_socket",
            DropReason::NoRoute => "no_route",
            DropReason::NoArp => "no_arp",
            DropReason::QueueFull => "queue_full",
            DropReason::Oversize => "oversize",
            DropReason::FragOverlap => "frag_overlap",
            DropReason::FragTooBig => "frag_too_big",
            DropReason::FragTimeout => "frag_timeout",
            DropReason::FragNoSpace => "frag_no_space",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::TcpOutOfWindow => "tcp_out_of_window",
            DropReason::TcpNoConnection => "tcp_no_connection",
            DropReason::Kernel => "kernel",
            DropReason::Looped => "looped",
            DropReason::TcpNoMemory => "tcp_no_memory",
        }
    }
}

/// Wire parse errors are drop reasons (stats knows wire's errors; wire
/// knows no counters).
impl From<crate::wire::Error> for DropReason {
    fn from(e: crate::wire::Error) -> DropReason {
        match e {
            crate::wire::Error::Truncated => DropReason::Truncated,
            crate::wire::Error::Malformed => DropReason::Malformed,
            crate::wire::Error::BadChecksum => DropReason::BadChecksum,
            crate::wire::Error::Unsupported => DropReason::Unsupported,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Per-core event counters (drops are in `drops`).
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: u64,)*
            pub drops: [u64; DropReason::COUNT],
        }

        impl Counters {
            /// Names of the event counters, in print order.
            pub const EVENT_NAMES: &'static [&'static str] = &[$(stringify!($name)),*];
            /// Each event counter's doc comment, in the same order (the
            /// help text of exported metrics).
            pub const EVENT_DOCS: &'static [&'static str] = &[$(concat!($($doc, "\n"),*)),*];
            const EVENTS: usize = Self::EVENT_NAMES.len();

            fn to_array(&self) -> Vec<u64> {
                let mut v = vec![$(self.$name),*];
                v.extend_from_slice(&self.drops);
                v
            }

            fn from_array(v: &[u64]) -> Counters {
                let mut c = Counters::default();
                let mut it = v.iter().copied();
                $(c.$name = it.next().unwrap_or(0);)*
                for d in c.drops.iter_mut() {
                    *d = it.next().unwrap_or(0);
                }
                c
            }
        }
    };
}

counters! {
    /// Frames received from the RX queue.
    rx_packets,
    /// Frames handed to the TX queue and taken by it.
    tx_packets,
    /// Bytes received.
    rx_bytes,
    /// Checksums (IPv4 header, UDP or TCP) of received frames the NIC found
    /// right, not computed again.
    rx_csum_offload_good,
    /// Received frames the NIC found a wrong checksum in, dropped (also
    /// `drop_bad_checksum`).
    rx_csum_offload_bad,
    /// Bytes transmitted.
    tx_bytes,
    /// Frames the NIC's TX queue refused after retries, freed (also
    /// `drop_queue_full`).
    tx_refused,
    /// Frames not buffered for TX because the core's TX buffer was full
    /// (the NIC is behind; also `drop_queue_full`).
    tx_backlog_full,
    /// ARP requests for our address answered.
    arp_replies_sent,
    /// ARP requests we sent to resolve a neighbour.
    arp_requests_sent,
    /// Neighbour updates sent to the ARP table's writer.
    arp_learned,
    /// Packets that waited in the ARP pending queue and were sent.
    arp_pending_sent,
    /// ARP packets from another station claiming our address.
    arp_conflicts,
    /// ICMP echo requests answered.
    icmp_echo_replies,
    /// ICMP errors sent (port unreachable, time exceeded).
    icmp_errors_sent,
    /// ICMP errors not sent because of the rate limit.
    icmp_rate_limited,
    /// IPv4 datagrams delivered to a protocol.
    ipv4_delivered,
    /// Datagrams reassembled from fragments.
    ipv4_reassembled,
    /// Fragments sent for datagrams larger than the MTU.
    ipv4_fragments_sent,
    /// UDP datagrams delivered to an application.
    udp_rx,
    /// UDP datagrams sent by applications.
    udp_tx,
    /// UDP sends that failed (no buffer, queue full, no ARP slot).
    udp_send_failed,
    /// Connected UDP sockets opened (`udp_connect`).
    udp_connects,
    /// Learned neighbours the ARP table refused because it was full (writer core).
    arp_table_full,
    /// Entries in the ARP table (gauge, writer core).
    arp_entries,
    /// Most reassembly memory ever in use, in bytes (high-water mark).
    frag_bytes_peak,
    /// The reassembly memory bound, in bytes.
    frag_bytes_limit,
    /// Datagrams being reassembled now (gauge).
    frag_in_flight,
    /// TCP segments received with a valid checksum.
    tcp_rx_segments,
    /// TCP segments sent.
    tcp_tx_segments,
    /// TCP payload bytes delivered in order to applications' buffers.
    tcp_rx_bytes,
    /// TCP payload bytes sent (retransmissions included).
    tcp_tx_bytes,
    /// Connections established by a listener (passive opens).
    tcp_accepted,
    /// Connections established by connect (active opens).
    tcp_connected,
    /// SYNs refused with RST because the connection table was full
    /// (`--tcp-syncookies never` only: otherwise a cookie answers).
    tcp_syn_refused,
    /// Segments retransmitted (RTO, fast retransmit, partial ACK).
    tcp_retransmits,
    /// Fast retransmits (third duplicate ACK).
    tcp_fast_retransmits,
    /// Retransmission timer expirations.
    tcp_rto,
    /// Of those, in SYN-SENT or SYN-RECEIVED: a SYN or SYN-ACK resent.
    tcp_syn_retransmits,
    /// Tail loss probes sent (RFC 8985).
    tcp_tail_loss_probes,
    /// Segments RACK deemed lost (RFC 8985 6.2): sent before a segment
    /// that was delivered, and outstanding longer than an RTT plus the
    /// reordering window.
    tcp_rack_lost,
    /// RACK reordering timer expirations (RFC 8985 6.3).
    tcp_rack_timer,
    /// Losses a tail loss probe repaired (RFC 8985 7.4): the window is
    /// reduced as fast recovery would have.
    tcp_tlp_recoveries,
    /// Congestion window reductions undone as spurious: every
    /// retransmission D-SACKed (RFC 3708) or Eifel detection (RFC 3522).
    tcp_undo,
    /// Of those, by D-SACKs: every retransmission of the episode (and
    /// every earlier one still in flight when it began) reported as a
    /// duplicate (RFC 3708).
    tcp_undo_dsack,
    /// Of those, by Eifel detection (RFC 3522): the first ACK after the
    /// episode's first retransmission echoed an older TSval.
    tcp_undo_eifel,
    /// Of those, after a retransmission timeout (RFC 4015).
    tcp_spurious_rto,
    /// Of those, found by F-RTO (RFC 5682): the second ACK after the
    /// timeout acknowledged data sent before it and never resent.
    tcp_frto_spurious,
    /// Duplicate ACKs received.
    tcp_dup_acks,
    /// Segments kept out of order.
    tcp_ooo_segments,
    /// Out-of-order segments dropped: too many holes.
    tcp_ooo_dropped,
    /// Segments whose data we already had.
    tcp_dup_segments,
    /// Receive buffers grown by autotuning (a connection's application
    /// read faster than its window allowed).
    tcp_rcvbuf_grown,
    /// Send buffers grown by autotuning (to two congestion windows).
    tcp_sndbuf_grown,
    /// Buffer growths refused because the core's `--tcp-memory` budget
    /// could not have filled them.
    tcp_buffer_growth_denied,
    /// ACKs sent whose first SACK block reports a duplicate segment
    /// (D-SACK, RFC 2883).
    tcp_dsack_sent,
    /// D-SACKs received (RFC 2883): taken as no loss signal.
    tcp_dsack_received,
    /// Connections established with ECN negotiated (RFC 3168).
    tcp_ecn_negotiated,
    /// Segments of ECN connections that arrived marked CE.
    tcp_ce_received,
    /// ACKs with ECE received on ECN connections (the peer saw CE).
    tcp_ece_received,
    /// Congestion window reductions for an ECE (one per window of data).
    tcp_ecn_cwnd_reductions,
    /// Segments sent with CWR (we reduced for an ECE).
    tcp_cwr_sent,
    /// Challenge ACKs sent (RFC 5961).
    tcp_challenge_acks,
    /// ACKs not sent for segments that failed the checks (out of window,
    /// PAWS, challenges): one per connection per 500 ms, as Linux.
    tcp_invalid_acks_limited,
    /// ACKs for data never sent, or too old.
    tcp_bad_ack,
    /// Segments refused by PAWS (RFC 7323).
    tcp_paws_rejected,
    /// Resets received that ended a connection.
    tcp_rst_received,
    /// Resets sent.
    tcp_rst_sent,
    /// Resets sent because data arrived for a closed application.
    tcp_rst_sent_data_after_close,
    /// Delayed ACKs sent by their timer.
    tcp_delayed_acks,
    /// Zero-window probes and keepalives sent.
    tcp_probes_sent,
    /// Connections dropped: retransmissions or keepalives unanswered (all
    /// timeouts, those below included).
    tcp_timeouts,
    /// Of those: zero-window probes unanswered `max_retries` times.
    tcp_persist_timeouts,
    /// Of those: the RFC 5482 user timeout expired.
    tcp_user_timeouts,
    /// Of those: closed by the application, out of `orphan_retries`.
    tcp_orphan_timeouts,
    /// TIME_WAIT connections replaced by a new SYN (RFC 6191).
    tcp_time_wait_reused,
    /// TIME-WAIT connections ended early because the table was full.
    tcp_time_wait_recycled,
    /// Remote addresses whose RTT the core remembers (gauge, RFC 9040 5).
    tcp_rtt_cache_entries,
    /// Active opens whose RTO started from a remembered RTT.
    tcp_rtt_cache_hits,
    /// Remembered RTTs replaced to make room for another address.
    tcp_rtt_cache_replaced,
    /// TIME_WAIT 4-tuples taken over by an active open (as Linux's
    /// `tcp_tw_reuse`: timestamps on, the record a second old).
    tcp_time_wait_reused_connect,
    /// ACKs a TIME_WAIT connection did not send to segments that could be
    /// an ACK loop (at most one per 500 ms).
    tcp_time_wait_acks_limited,
    /// Connections in the table now, TIME_WAIT included (gauge).
    tcp_connections,
    /// Connections in TIME_WAIT now (gauge).
    tcp_time_wait,
    /// Connections in SYN_SENT now (gauge).
    tcp_syn_sent,
    /// Connections in SYN_RECEIVED now (gauge).
    tcp_syn_received,
    /// Connections in ESTABLISHED now (gauge).
    tcp_established,
    /// Connections in FIN_WAIT_1 now (gauge).
    tcp_fin_wait1,
    /// Connections in FIN_WAIT_2 now (gauge).
    tcp_fin_wait2,
    /// Connections in CLOSE_WAIT now (gauge).
    tcp_close_wait,
    /// Connections in CLOSING now (gauge).
    tcp_closing,
    /// Connections in LAST_ACK now (gauge).
    tcp_last_ack,
    /// SYNs answered with a SYN cookie (no state kept; RFC 4987 3.6),
    /// counted when issued: one whose SYN-ACK could not go out is also
    /// counted under its drop reason (e.g. `drop_no_arp`).
    tcp_syncookies_sent,
    /// ACKs carrying a valid cookie (each builds a connection, table room
    /// permitting: else `tcp_accept_table_full`).
    tcp_syncookies_ok,
    /// ACKs at a listener, while cookies were being sent, that matched no
    /// connection, no half-open one and no cookie (answered with RST).
    tcp_syncookies_failed,
    /// SYNs that took a SYN cache entry (a half-open connection).
    tcp_syn_cache_added,
    /// SYNs the SYN cache had no room for (cache full, or the listener at
    /// its share): answered with a cookie, or dropped with cookies off.
    tcp_syn_cache_full,
    /// Half-open connections forgotten after their last SYN-ACK went
    /// unanswered.
    tcp_syn_cache_timeouts,
    /// Handshakes completed (cache or cookie) whose connection found the
    /// table full: the ACK is dropped, the peer's retransmission retries.
    tcp_accept_table_full,
    /// Half-open connections in the SYN cache now (gauge).
    tcp_half_open,
    /// Bytes of TCP buffer memory held now (gauge; chunks and their tables).
    tcp_mem_bytes,
    /// Most TCP buffer memory ever held, in bytes (high-water mark).
    tcp_mem_peak,
    /// The core's TCP buffer memory budget, in bytes (`--tcp-memory`).
    tcp_mem_limit,
    /// Buffer chunks refused at the budget: short sends, and received data
    /// not stored (`drop_tcp_no_memory`).
    tcp_mem_refused,
    /// TCP segments this core received for a connection another core owns,
    /// and handed to it (devices whose RSS cannot be predicted).
    steer_handoffs_out,
    /// Segments other cores handed to this one.
    steer_handoffs_in,
    /// Datagrams reassembled here for a flow another core owns, handed to
    /// it as fragments (each fragment is one of `steer_handoffs_out`).
    steer_reassembled_out,
    /// Handoffs dropped: the queue to the owner was full.
    steer_handoff_dropped,
    /// Connections the flow directory had no room for.
    steer_directory_full,
    /// Flows in this core's flow records (gauge; `--flow-records`).
    flow_records,
    /// New flows not recorded: the core's flow records were full.
    flow_records_full,
    /// Frames this core queued for the kernel.
    kni_to_kernel,
    /// Frames for the kernel dropped: the core's queue was full.
    kni_queue_full,
    /// Frames for the kernel dropped by the rate limit.
    kni_rate_limited,
    /// Frames for the kernel dropped: its interface was down.
    kni_link_down,
    /// Frames the designated core wrote to the kernel interface.
    kni_kernel_rx,
    /// Frames the kernel interface refused (designated core).
    kni_kernel_rx_dropped,
    /// Frames the kernel sent out of its interface, sent on the wire.
    kni_from_kernel,
}

/// The counters that are gauges (they may go down, or are limits and
/// high-water marks): every other one counts events and never decreases.
pub const GAUGES: [&str; 20] = [
    "arp_entries",
    "frag_bytes_peak",
    "frag_bytes_limit",
    "frag_in_flight",
    "tcp_connections",
    "tcp_time_wait",
    "tcp_syn_sent",
    "tcp_syn_received",
    "tcp_established",
    "tcp_fin_wait1",
    "tcp_fin_wait2",
    "tcp_close_wait",
    "tcp_closing",
    "tcp_last_ack",
    "tcp_half_open",
    "tcp_rtt_cache_entries",
    "tcp_mem_bytes",
    "tcp_mem_peak",
    "tcp_mem_limit",
    "flow_records",
];

impl Counters {
    /// Whether the counter named `name` is a gauge ([`GAUGES`]).
    pub fn is_gauge(name: &str) -> bool {
        GAUGES.contains(&name)
    }
    /// The event counters as (name, help text, value), in print order.
    pub fn events(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        let v = self.to_array();
        Self::EVENT_NAMES
            .iter()
            .zip(Self::EVENT_DOCS)
            .zip(v)
            .map(|((n, d), x)| (*n, *d, x))
    }
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
    /// `name=value` pairs, events then `drop_<reason>`.
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let v = self.to_array();
        let mut out: Vec<(String, u64)> = Self::EVENT_NAMES
            .iter()
            .map(|n| n.to_string())
            .zip(v.iter().copied())
            .collect();
        for r in DropReason::ALL {
            out.push((format!("drop_{}", r.name()), self.dropped(r)));
        }
        out
    }
    /// Sum of several cores' counters.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>) -> Counters {
        let mut acc = vec![0u64; Self::EVENTS + DropReason::COUNT];
        for c in all {
            for (a, x) in acc.iter_mut().zip(c.to_array()) {
                *a += x;
            }
        }
        Counters::from_array(&acc)
    }
    /// One line: `name=value ...`.
    pub fn format_line(&self) -> String {
        let mut s = String::new();
        for (i, (k, v)) in self.pairs().into_iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&k);
            s.push('=');
            s.push_str(&v.to_string());
        }
        s
    }
}

/// A core's counters as last published, readable from any thread.
/// Written only by the owning core, off the per-packet path.
#[derive(Debug)]
pub struct PublishedCounters {
    slots: Vec<AtomicU64>,
}

impl Default for PublishedCounters {
    fn default() -> Self {
        PublishedCounters {
            slots: (0..Counters::EVENTS + DropReason::COUNT)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl PublishedCounters {
    pub fn publish(&self, c: &Counters) {
        for (slot, v) in self.slots.iter().zip(c.to_array()) {
            slot.store(v, Ordering::Relaxed);
        }
    }
    pub fn read(&self) -> Counters {
        let v: Vec<u64> = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        Counters::from_array(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_are_indexed_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn publish_round_trips_and_sum_adds() {
        let mut c = Counters {
            rx_packets: 5,
            udp_tx: 7,
            ..Default::default()
        };
        c.drop(DropReason::BadChecksum);
        c.drop(DropReason::TtlExpired);
        let p = PublishedCounters::default();
        p.publish(&c);
        assert_eq!(p.read(), c);
        let s = Counters::sum([&c, &c]);
        assert_eq!(s.rx_packets, 10);
        assert_eq!(s.udp_tx, 14);
        assert_eq!(s.dropped(DropReason::TtlExpired), 2);
        assert!(c.format_line().contains("drop_bad_checksum=1"));
        assert!(c.format_line().starts_with("rx_packets=5 "));
    }

    #[test]
    fn every_counter_has_help_and_gauges_say_so() {
        assert_eq!(Counters::EVENT_DOCS.len(), Counters::EVENT_NAMES.len());
        for (name, doc, _) in Counters::default().events() {
            assert!(!doc.trim().is_empty(), "{name} has no doc comment");
            // A doc that calls its counter a gauge, a high-water mark or a
            // bound names a gauge, and every gauge's doc says which.
            let says = doc.contains("(gauge")
                || doc.contains("high-water mark")
                || doc.contains("bound, in bytes")
                || doc.contains("budget, in bytes");
            assert_eq!(says, Counters::is_gauge(name), "{name}: {doc}");
        }
        for g in GAUGES {
            assert!(Counters::EVENT_NAMES.contains(&g), "{g} is no counter");
        }
    }
}
