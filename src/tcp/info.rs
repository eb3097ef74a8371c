//! What a connection tells about itself, as Linux's `TCP_INFO`: the
//! application API's [`NetCtx::tcp_info`](crate::app::NetCtx::tcp_info)
//! and the connections view of telemetry (`/dpstack/tcp/conns`, `dpstack-ss`)
//! both read it, so that the two never disagree.
//!
//! [`ConnTotals`] are the connection's own running counts (bytes and
//! segments each way, retransmissions), kept by the [`Tcb`](super::Tcb)
//! as it sends and receives; the core's counters sum the same events over
//! every connection.

use super::tcb::State;
use super::CcAlgorithm;
use crate::time::Duration;

/// One connection's running counts since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnTotals {
    /// Segments sent: SYN or SYN-ACK (one, for a connection the SYN
    /// cache answered), data, FIN, pure ACKs, probes, retransmissions
    /// (RSTs are not: they end the connection).
    pub segs_out: u64,
    /// Segments handed to this connection (acceptable or not), the SYN a
    /// passive one was built from included.
    pub segs_in: u64,
    /// Payload bytes sent, retransmissions included (Linux `bytes_sent`).
    pub bytes_sent: u64,
    /// Payload bytes sent again (Linux `bytes_retrans`).
    pub bytes_retrans: u64,
    /// Payload bytes the peer acknowledged (Linux `bytes_acked`).
    pub bytes_acked: u64,
    /// Payload bytes received in order (Linux `bytes_received`).
    pub bytes_received: u64,
    /// Segments sent again, SYN and SYN-ACK included (Linux
    /// `total_retrans`).
    pub retransmits: u64,
}

/// A connection's state, sequence spaces, windows, timers, congestion
/// control, buffers and totals at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// The congestion window, in bytes.
    pub cwnd: usize,
    /// The smoothed round-trip time, once one has been measured.
    pub srtt: Option<Duration>,
    /// The retransmission timeout now (RFC 6298, backoff included).
    pub rto: Duration,
    /// Bytes queued and not yet acknowledged, sent or not (the send queue).
    pub unacked: usize,
    /// The congestion control the connection runs.
    pub congestion_control: CcAlgorithm,
    pub state: State,
    /// SND.UNA, SND.NXT and the highest sequence number sent (RFC 9293
    /// 3.3.1), as 32-bit sequence numbers.
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub snd_max: u32,
    /// SND.WND: the peer's last offered window, in bytes (scaled).
    pub snd_wnd: usize,
    /// The peer's window scale (RFC 7323), 0 without it.
    pub snd_wscale: u8,
    /// RCV.NXT.
    pub rcv_nxt: u32,
    /// The window we offered last, in bytes (scaled): from RCV.NXT to the
    /// right edge we advertised.
    pub rcv_wnd: usize,
    /// Our window scale.
    pub rcv_wscale: u8,
    /// Bytes of data per segment we send.
    pub mss: usize,
    pub ssthresh: usize,
    /// The round-trip time's variation (RFC 6298 RTTVAR).
    pub rttvar: Duration,
    /// The smallest round-trip time seen (RACK's, RFC 8985), if any.
    pub min_rtt: Option<Duration>,
    /// Retransmission timeouts in a row (RFC 6298 5.5's backoff).
    pub backoff: u32,
    /// In fast recovery now.
    pub in_recovery: bool,
    /// Timestamps (RFC 7323), SACK (RFC 2018) and ECN (RFC 3168) in use.
    pub timestamps: bool,
    pub sack: bool,
    pub ecn: bool,
    /// Readable bytes waiting for the application (the receive queue).
    pub recv_queued: usize,
    /// The buffers' sizes now (autotuning moves them).
    pub send_buffer: usize,
    pub recv_buffer: usize,
    /// Opened by a listener.
    pub passive: bool,
    /// Since the connection was created (SYN sent or SYN received).
    pub age: Duration,
    pub totals: ConnTotals,
}
