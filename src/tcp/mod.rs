//! TCP (RFC 9293), per core: connections ([`tcb::Tcb`]), their table and
//! timer wheel ([`table::TcpTable`]), buffers, RTO, congestion control and
//! initial sequence numbers. No FFI: segments come in as parsed headers and
//! payload slices, and go out through a closure the caller provides.

pub mod autotune;
pub mod buffer;
pub mod cc;
pub mod ecn;
pub mod info;
pub mod isn;
pub mod rtt;
pub mod rtt_cache;
mod scoreboard;
pub mod seq;
pub mod syncache;
pub mod syncookie;
pub mod table;
pub mod tcb;
pub mod timer;
pub mod timewait;

#[cfg(test)]
mod tests;

pub use cc::{Ack, Cc, CongestionControl, Cubic, NewReno};
pub use ecn::EcnMode;
pub use info::{ConnTotals, TcpInfo};
pub use seq::Seq;
pub use syncache::SynCookieMode;
pub use table::{ConnId, TcpTable};
pub use tcb::{State, Tcb};
pub use timewait::{TimeWait, TwVerdict};

use crate::time::Duration;

/// Keepalive (RFC 1122 4.2.3.6): off unless configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub probes: u32,
}

/// Which congestion controller new connections get (`--tcp-cc`), or one
/// connection uses (`Tcb::set_congestion_control`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcAlgorithm {
    /// RFC 5681 and RFC 6582.
    NewReno,
    /// RFC 9438, the default (as in Linux).
    Cubic,
}

impl CcAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            CcAlgorithm::NewReno => "newreno",
            CcAlgorithm::Cubic => "cubic",
        }
    }
}

impl std::str::FromStr for CcAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cubic" => Ok(CcAlgorithm::Cubic),
            "newreno" => Ok(CcAlgorithm::NewReno),
            _ => Err(format!("'{s}': expected cubic or newreno")),
        }
    }
}

/// TCP settings, the same for every core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Connections per core, TIME_WAIT included. A SYN that finds the table
    /// full is refused (RST) and counted.
    pub max_connections: usize,
    /// A new connection's receive and send buffer capacities (the window
    /// it first offers, the most its application may queue).
    pub rx_buffer: usize,
    pub tx_buffer: usize,
    /// What autotuning may grow them to (`autotune`); equal to (or below)
    /// the initial capacity: fixed buffers, no autotuning. The receive
    /// maximum also sets the window scale offered in the SYN.
    pub rx_buffer_max: usize,
    pub tx_buffer_max: usize,
    /// The largest segment we accept, announced in our SYN (MTU - 40).
    pub mss: usize,
    /// 2*MSL.
    pub time_wait: Duration,
    /// None: acknowledge every segment at once.
    pub delayed_ack: Option<Duration>,
    pub nagle: bool,
    pub keepalive: Option<Keepalive>,
    pub rto_initial: Duration,
    pub rto_min: Duration,
    pub rto_max: Duration,
    /// RTO expirations in a row before a connection is dropped; also the
    /// unanswered zero-window probes in a row (Linux tcp_retries2).
    pub max_retries: u32,
    pub syn_retries: u32,
    /// RFC 5482 user timeout: a connection whose data has gone
    /// unacknowledged, or waited behind the peer's zero window, this long
    /// is dropped (in place of the `max_retries` count on the RTO path).
    /// None: off. Per connection: `Tcb::set_user_timeout`.
    pub user_timeout: Option<Duration>,
    /// RTO expirations, and zero-window probes answered or not, before a
    /// connection the application closed is dropped (Linux
    /// tcp_orphan_retries; 8 is its default): nobody waits for it, and a
    /// peer that holds its window at zero must not pin it.
    pub orphan_retries: u32,
    /// How long an orphaned FIN_WAIT_2 connection (closed by the
    /// application, peer silent) is kept.
    pub fin_wait2_timeout: Duration,
    pub window_scaling: bool,
    pub timestamps: bool,
    /// Selective acknowledgments (RFC 2018).
    pub sack: bool,
    /// Local ports for active opens, inclusive.
    pub ephemeral: (u16, u16),
    /// The congestion controller of new connections (CUBIC by default).
    pub cc: CcAlgorithm,
    /// Half-open connections a core keeps in its SYN cache (SYN flood
    /// defence, see `syncache`).
    pub syn_cache: usize,
    /// When listeners answer with SYN cookies.
    pub syncookies: SynCookieMode,
    /// Explicit Congestion Notification (RFC 3168): asked for, accepted,
    /// or neither (`--tcp-ecn`).
    pub ecn: EcnMode,
}

impl TcpConfig {
    /// A congestion controller for a new connection (no allocation).
    pub fn new_cc(&self, mss: usize) -> Cc {
        Cc::new(self.cc, mss)
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_connections: 4096,
            // Linux's tcp_rmem and tcp_wmem defaults (128 KiB, 6 MiB and
            // 4 MiB; Linux starts sending with 16 KiB but grows it to two
            // initial windows at once).
            rx_buffer: 128 * 1024,
            tx_buffer: 128 * 1024,
            rx_buffer_max: 6 << 20,
            tx_buffer_max: 4 << 20,
            mss: 1460,
            time_wait: Duration::from_secs(60),
            delayed_ack: Some(Duration::from_millis(40)),
            nagle: true,
            keepalive: None,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(60),
            max_retries: 15,
            syn_retries: 6,
            user_timeout: None,
            orphan_retries: 8,
            fin_wait2_timeout: Duration::from_secs(60),
            window_scaling: true,
            timestamps: true,
            sack: true,
            ephemeral: (61000, 65535),
            cc: CcAlgorithm::Cubic,
            syn_cache: 1024,
            syncookies: SynCookieMode::Auto,
            ecn: EcnMode::Server,
        }
    }
}

/// Why a connection ended, as its application is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed (or the application aborted).
    Normal,
    /// The peer sent a reset.
    Reset,
    /// The peer refused our SYN (RST in SYN_SENT).
    Refused,
    /// Retransmissions or keepalive probes went unanswered.
    TimedOut,
}

/// Event bits a connection raises for its application.
pub mod event {
    /// Established (active or passive open).
    pub const CONNECTED: u8 = 1;
    pub const READABLE: u8 = 2;
    pub const WRITABLE: u8 = 4;
    /// The peer's FIN arrived (after all its data).
    pub const PEER_CLOSED: u8 = 8;
    /// Gone: reset, timed out, or fully closed.
    pub const CLOSED: u8 = 16;
}
