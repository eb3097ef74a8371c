//! Explicit Congestion Notification for TCP (RFC 3168 section 6.1): the
//! mode (`--tcp-ecn`, Linux's net.ipv4.tcp_ecn), the handshake's rules, and
//! what a connection keeps once ECN is negotiated. The `Tcb` asks here at a
//! few points and does what it is told; every ECN decision is in this file.
//!
//! - Handshake (6.1.1): an ECN-setup SYN carries ECE and CWR, an ECN-setup
//!   SYN-ACK ECE alone. A SYN-ACK with both, or without ECE, leaves the
//!   connection without ECN. A retransmitted SYN goes without them (Linux's
//!   fallback for paths that drop ECN-setup SYNs), and then a SYN-ACK that
//!   says yes is not believed.
//! - Data receiver (6.1.3): a segment that arrives with CE makes every ACK
//!   we send carry ECE until a segment with CWR arrives (the first CE of an
//!   episode is acknowledged at once, as Linux does: the sender's window
//!   may be small).
//! - Data sender (6.1.2, 6.1.5, 6.1.6): new data goes out ECT(0); SYNs,
//!   pure ACKs, window probes and retransmissions go Not-ECT. An ECE reduces
//!   the congestion window as a loss would (nothing is retransmitted, no
//!   recovery), once per window of data: ECEs that acknowledge no more than
//!   what was in flight at the reduction are the same congestion. The next
//!   new data segment carries CWR.
//!
//! Invariant: nothing ECN-specific is sent, and nothing received is acted
//! on, unless `ok` (negotiated); a connection without ECN sends exactly what
//! it sent before ECN existed.

use super::seq::Seq;
use crate::stats::Counters;
use crate::wire::ipv4::ecn;
use crate::wire::TcpFlags;

/// Whether connections use ECN (`--tcp-ecn`; per connection
/// `Tcb::set_ecn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EcnMode {
    /// Never (Linux tcp_ecn = 0).
    Off,
    /// Asked for on connections we open, accepted on those we accept
    /// (tcp_ecn = 1).
    On,
    /// Accepted when the peer asks, never asked for (tcp_ecn = 2, Linux's
    /// default and ours).
    #[default]
    Server,
}

impl EcnMode {
    pub fn name(self) -> &'static str {
        match self {
            EcnMode::Off => "off",
            EcnMode::On => "on",
            EcnMode::Server => "server",
        }
    }
    fn requests(self) -> bool {
        self == EcnMode::On
    }
    fn accepts(self) -> bool {
        self != EcnMode::Off
    }
}

impl std::str::FromStr for EcnMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(EcnMode::Off),
            "on" => Ok(EcnMode::On),
            "server" => Ok(EcnMode::Server),
            _ => Err(format!("'{s}': expected off, on or server")),
        }
    }
}

const SETUP: TcpFlags = TcpFlags(TcpFlags::ECE.0 | TcpFlags::CWR.0);

/// A SYN (no ACK) that asks for ECN: ECE and CWR (RFC 3168 6.1.1).
pub fn is_setup_syn(flags: TcpFlags) -> bool {
    flags.syn() && !flags.ack() && flags.contains(SETUP)
}

/// A SYN-ACK that agrees to ECN: ECE without CWR (RFC 3168 6.1.1; one with
/// both is the reply of a host that reflects the flags, not an answer).
pub fn is_setup_syn_ack(flags: TcpFlags) -> bool {
    flags.syn() && flags.ack() && flags.contains(TcpFlags::ECE) && !flags.contains(TcpFlags::CWR)
}

/// A passive open's SYN-ACK flags for a SYN the listener accepted ECN
/// for (the SYN cache and cookies build their SYN-ACK without a `Tcb`).
pub fn syn_ack_flags(ecn_ok: bool) -> TcpFlags {
    if ecn_ok {
        TcpFlags::ECE
    } else {
        TcpFlags::default()
    }
}

/// One connection's ECN state.
#[derive(Clone, Copy, Debug)]
pub struct EcnState {
    pub mode: EcnMode,
    /// Negotiated: both ends are ECN-capable.
    pub ok: bool,
    /// Our last SYN asked for ECN.
    requested: bool,
    /// Receiver: a CE arrived and no CWR since; our ACKs carry ECE.
    echo: bool,
    /// Sender: reduced for an ECE; the next new data segment carries CWR.
    cwr_due: bool,
    /// Sender: SND.MAX at the last reduction. An ECE that acknowledges no
    /// more than this is the same window's congestion.
    reduced_at: Option<Seq>,
}

impl EcnState {
    pub fn new(mode: EcnMode) -> EcnState {
        EcnState {
            mode,
            ok: false,
            requested: false,
            echo: false,
            cwr_due: false,
            reduced_at: None,
        }
    }

    /// The ECN flags of a SYN (`ack` false) or SYN-ACK we send; `first`:
    /// not a retransmission.
    pub fn syn_flags(&mut self, ack: bool, first: bool) -> TcpFlags {
        if ack {
            return syn_ack_flags(self.ok);
        }
        self.requested = self.mode.requests() && first;
        if self.requested {
            SETUP
        } else {
            TcpFlags::default()
        }
    }

    /// A passive open: the peer's SYN.
    pub fn accept_syn(&mut self, flags: TcpFlags) {
        self.ok = self.mode.accepts() && is_setup_syn(flags);
    }

    /// In SYN-SENT, the peer's SYN-ACK, or its SYN (simultaneous open: ECN
    /// if both SYNs asked for it, as Linux).
    pub fn syn_sent_reply(&mut self, flags: TcpFlags) {
        self.ok = self.requested
            && if flags.ack() {
                is_setup_syn_ack(flags)
            } else {
                is_setup_syn(flags)
            };
    }

    /// An acceptable segment arrived with IP ECN codepoint `ip_ecn` (RFC
    /// 3168 6.1.3). True if it should be acknowledged at once: the first CE
    /// since the last CWR.
    pub fn receive(&mut self, flags: TcpFlags, ip_ecn: u8, c: &mut Counters) -> bool {
        if !self.ok {
            return false;
        }
        // CWR first: a segment with both CWR and CE is new congestion.
        if flags.contains(TcpFlags::CWR) {
            self.echo = false;
        }
        if ip_ecn != ecn::CE {
            return false;
        }
        c.tcp_ce_received += 1;
        let first = !self.echo;
        self.echo = true;
        first
    }

    /// ECE on an ACK we send (not a SYN-ACK): while the echo is on.
    pub fn ack_flags(&self) -> TcpFlags {
        if self.ok && self.echo {
            TcpFlags::ECE
        } else {
            TcpFlags::default()
        }
    }

    /// An acceptable ACK arrived (`ack`, with SND.MAX now `snd_max`). True
    /// if it carries an ECE that calls for a window reduction: not one of
    /// the window already reduced for, and not in loss recovery (the window
    /// is already down; the CWR is still owed, or the receiver would echo
    /// on).
    pub fn ece_reduces(
        &mut self,
        flags: TcpFlags,
        ack: Seq,
        snd_max: Seq,
        in_recovery: bool,
        c: &mut Counters,
    ) -> bool {
        if !self.ok || !flags.contains(TcpFlags::ECE) || flags.syn() {
            return false;
        }
        c.tcp_ece_received += 1;
        if self.reduced_at.is_some_and(|at| ack <= at) {
            return false;
        }
        self.reduced_at = Some(snd_max);
        self.cwr_due = true;
        if in_recovery {
            return false;
        }
        c.tcp_ecn_cwnd_reductions += 1;
        true
    }

    /// The IP codepoint and extra flags of a data segment we send. `new`:
    /// it carries data never sent before (not a retransmission, and not
    /// empty).
    pub fn data_segment(&mut self, new: bool) -> (u8, TcpFlags) {
        if !self.ok || !new {
            return (ecn::NOT_ECT, TcpFlags::default());
        }
        if std::mem::take(&mut self.cwr_due) {
            (ecn::ECT0, TcpFlags::CWR)
        } else {
            (ecn::ECT0, TcpFlags::default())
        }
    }

    /// The segment [`EcnState::data_segment`] gave `flags` for could not
    /// be sent: a CWR is still owed.
    pub fn cwr_not_sent(&mut self, flags: TcpFlags) {
        self.cwr_due |= flags.contains(TcpFlags::CWR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_linux_names_them() {
        for m in [EcnMode::Off, EcnMode::On, EcnMode::Server] {
            assert_eq!(m.name().parse::<EcnMode>(), Ok(m));
        }
        assert!("2".parse::<EcnMode>().is_err());
        assert_eq!(EcnMode::default(), EcnMode::Server);
    }

    #[test]
    fn setup_flags() {
        let syn = TcpFlags::SYN;
        let ack = TcpFlags::ACK;
        let (ece, cwr) = (TcpFlags::ECE, TcpFlags::CWR);
        assert!(is_setup_syn(syn | ece | cwr));
        assert!(!is_setup_syn(syn | ece));
        assert!(!is_setup_syn(syn | cwr));
        assert!(!is_setup_syn(syn | ack | ece | cwr));
        assert!(is_setup_syn_ack(syn | ack | ece));
        // RFC 3168 6.1.1: ECE and CWR both set is not an ECN-setup SYN-ACK.
        assert!(!is_setup_syn_ack(syn | ack | ece | cwr));
        assert!(!is_setup_syn_ack(syn | ack));
    }

    #[test]
    fn a_retransmitted_syn_does_not_ask() {
        let mut e = EcnState::new(EcnMode::On);
        assert_eq!(e.syn_flags(false, true), SETUP);
        assert_eq!(e.syn_flags(false, false), TcpFlags::default());
        e.syn_sent_reply(TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE);
        assert!(!e.ok);
    }

    #[test]
    fn ect_only_on_new_data_and_cwr_once_after_a_reduction() {
        let mut c = Counters::default();
        let mut e = EcnState::new(EcnMode::On);
        e.ok = true;
        assert_eq!(e.data_segment(false), (ecn::NOT_ECT, TcpFlags::default()));
        assert_eq!(e.data_segment(true), (ecn::ECT0, TcpFlags::default()));
        let f = TcpFlags::ACK | TcpFlags::ECE;
        assert!(e.ece_reduces(f, Seq(100), Seq(1000), false, &mut c));
        // The same window's ECEs: no second reduction.
        assert!(!e.ece_reduces(f, Seq(1000), Seq(2000), false, &mut c));
        // A retransmission does not carry the CWR; new data does, once.
        assert_eq!(e.data_segment(false), (ecn::NOT_ECT, TcpFlags::default()));
        assert_eq!(e.data_segment(true), (ecn::ECT0, TcpFlags::CWR));
        assert_eq!(e.data_segment(true), (ecn::ECT0, TcpFlags::default()));
        // Past the reduced window: a new reduction.
        assert!(e.ece_reduces(f, Seq(1001), Seq(3000), false, &mut c));
        assert_eq!((c.tcp_ece_received, c.tcp_ecn_cwnd_reductions), (3, 2));
    }
}
