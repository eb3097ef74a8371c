//! SYN cookies (RFC 4987 section 3.6; the scheme of Linux
//! `net/ipv4/syncookies.c`): a listener answers a SYN without keeping any
//! state, and rebuilds the connection from the ACK that completes the
//! handshake.
//!
//! What the cookie carries:
//! - In our ISS: a coarse clock (`COUNTER_PERIOD`), an index into a table
//!   of common MSS values, and a MAC over both, the 4-tuple, the peer's ISS
//!   and the timestamp bits below. The ACK's `ack - 1` gives the cookie
//!   back, its `seq - 1` the peer's ISS.
//! - When the SYN had timestamps (RFC 7323), in the low [`TS_BITS`] bits of
//!   our TSval: the peer's window scale, SACK-permitted and ECN (an
//!   ECN-setup SYN that ECN was accepted for). The peer echoes
//!   the TSval in its ACK's TSecr. Without timestamps there is nowhere to
//!   put them, and the connection goes without window scaling, SACK and
//!   ECN (as on Linux; its SYN-ACK says so).
//!
//! Layout of the 32 bits before masking: `count:8 | mac:22 | mss:2`. The
//! whole is added to a second keyed hash of the 4-tuple and the peer's ISS,
//! so that our ISS shows neither the clock nor the MSS, and sequence numbers
//! of other connections cannot be predicted from ours (RFC 6528's aim).
//! A forged ACK matches with probability about 2^-22 per try, and only
//! while the listener has recently sent cookies (the caller's gate, as
//! Linux's `tcp_synq_no_recent_overflow`).
//!
//! Unlike Linux, the timestamp bits are under the MAC too, so an ACK cannot
//! turn on options the SYN never offered. The bits depend only on the SYN's
//! options, so a retransmitted SYN-ACK (a new TSval) carries the same ones.
//!
//! The secret: one per process, drawn at start from the randomly keyed
//! `RandomState` (as the ISN secret, [`super::isn`]), shared by every core.
//! The ACK of a handshake normally reaches the core that answered the SYN
//! (same 4-tuple, same RSS hash); but a segment that lands elsewhere (a
//! handoff, the RSS table changed between SYN and ACK) still validates
//! there, and the connection lives on the core that received its ACK,
//! which is where the rest of its segments land (if that core, too, sent
//! cookies lately: the caller's gate is per core). One secret per core would
//! buy nothing: a core's secret is no better hidden than the process's.

use super::ecn::{self, EcnMode};
use super::TcpConfig;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpOptions, TcpRepr};
use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddrV4;

/// The coarse clock in the cookie ticks this often (seconds).
pub const COUNTER_PERIOD_SECS: u64 = 64;
/// Cookies from this many counter values are accepted (the current one
/// included): a cookie lives between 64 and 128 seconds, more than a SYN-ACK
/// takes to cross any path, as Linux's two minutes.
pub const MAX_AGE: u64 = 2;
/// How long after the last cookie sent an ACK may still carry one.
pub const LIFETIME_SECS: u64 = COUNTER_PERIOD_SECS * MAX_AGE;
/// Low bits of our TSval that carry options: 0-3 window scale (15: none),
/// 4 SACK-permitted, 5 ECN (as Linux's `TS_OPT_ECN`).
pub const TS_BITS: u32 = 6;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
const WSCALE_NONE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
const TS_ECN: u32 = 1 << 5;

/// MSS values a cookie can say (two bits), largest last: a peer's MSS is
/// rounded down to one of them. The usual Ethernet, PPPoE/VPN and tunnel
/// values; 536 is the default every host accepts (RFC 9293 3.7.1), also
/// used for peers announcing less.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

const MAC_BITS: u32 = 22;
const MAC_MASK: u32 = (1 << MAC_BITS) - 1;

/// What a passive open takes from the peer's SYN, already negotiated with
/// our configuration (the rules of `Tcb::accept`): the part of a SYN that
/// a half-open connection must remember, or a cookie must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSyn {
    /// The peer's MSS option (536 when absent, RFC 9293 3.7.1).
    pub mss: u16,
    /// The peer's window scale shift, when both sides scale.
    pub window_scale: Option<u8>,
    /// SACK-permitted offered and configured (RFC 2018).
    pub sack: bool,
    /// Timestamps offered and configured (RFC 7323).
    pub timestamps: bool,
    /// An ECN-setup SYN, and ECN accepted (RFC 3168 6.1.1).
    pub ecn: bool,
}

impl PeerSyn {
    /// Negotiate a SYN's options (and its ECN flags) with `cfg`.
    pub fn negotiate(cfg: &TcpConfig, syn: &TcpRepr) -> PeerSyn {
        let opts = &syn.options;
        PeerSyn {
            mss: opts.mss.unwrap_or(536),
            window_scale: opts
                .window_scale
                .filter(|_| cfg.window_scaling)
                .map(|s| s.min(14)),
            sack: cfg.sack && opts.sack_permitted,
            timestamps: cfg.timestamps && opts.timestamps.is_some(),
            ecn: cfg.ecn != EcnMode::Off && ecn::is_setup_syn(syn.flags),
        }
    }

    /// What a cookie can carry of it: the MSS rounded down to the table,
    /// and window scale, SACK and ECN only along with timestamps.
    pub fn for_cookie(self) -> PeerSyn {
        PeerSyn {
            mss: MSS_TABLE[mss_index(self.mss)],
            window_scale: self.window_scale.filter(|_| self.timestamps),
            sack: self.sack && self.timestamps,
            timestamps: self.timestamps,
            ecn: self.ecn && self.timestamps,
        }
    }

    /// The SYN the peer sent, as far as a connection needs it: handed to
    /// `Tcb::accept` when the handshake completes. `tsval` is the peer's
    /// latest TSval (`ts_recent`); `window` stands in for the SYN's window,
    /// which the ACK's replaces at once.
    pub fn syn_repr(
        &self,
        local_port: u16,
        remote_port: u16,
        irs: u32,
        tsval: u32,
        window: u16,
    ) -> TcpRepr {
        TcpRepr {
            src_port: remote_port,
            dst_port: local_port,
            seq_number: irs,
            ack_number: 0,
            flags: if self.ecn {
                TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR
            } else {
                TcpFlags::SYN
            },
            window_len: window,
            urgent_at: 0,
            options: TcpOptions {
                mss: Some(self.mss),
                window_scale: self.window_scale,
                sack_permitted: self.sack,
                timestamps: self.timestamps.then_some((tsval, 0)),
                sack_blocks: [None; 3],
            },
        }
    }

    /// The timestamp bits that say window scale, SACK and ECN.
    fn ts_bits(&self) -> u32 {
        let ws = self.window_scale.map_or(WSCALE_NONE, u32::from);
        ws | if self.sack { TS_SACK } else { 0 } | if self.ecn { TS_ECN } else { 0 }
    }
}

/// The largest table entry not above `mss` (the first for less than 536).
fn mss_index(mss: u16) -> usize {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0)
}

/// What an ACK carrying a valid cookie gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookie {
    /// The peer's ISS.
    pub irs: u32,
    /// Ours (the cookie).
    pub iss: u32,
    pub peer: PeerSyn,
}

/// The cookie secret (see the module's comment).
#[derive(Clone, Copy, Debug)]
pub struct SynCookies {
    secret: [u64; 2],
}

impl Default for SynCookies {
    fn default() -> Self {
        Self::new()
    }
}

impl SynCookies {
    pub fn new() -> SynCookies {
        let r = RandomState::new();
        SynCookies {
            secret: [r.hash_one(3u8), r.hash_one(4u8)],
        }
    }

    fn counter(now: Instant) -> u64 {
        now.micros() / 1_000_000 / COUNTER_PERIOD_SECS
    }

    /// Hides the cookie's structure: a function of the tuple and the peer's
    /// ISS only, so validation can take it off first.
    fn mask(&self, local: SocketAddrV4, remote: SocketAddrV4, irs: u32) -> u32 {
        let mut h = DefaultHasher::new();
        (self.secret[0], local, remote, irs).hash(&mut h);
        h.finish() as u32
    }

    /// `ts`: the timestamp bits, None when the SYN had no timestamps.
    fn mac(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        irs: u32,
        count: u64,
        mss: u32,
        ts: Option<u32>,
    ) -> u32 {
        let mut h = DefaultHasher::new();
        (self.secret[1], local, remote, irs, count, mss, ts).hash(&mut h);
        h.finish() as u32 & MAC_MASK
    }

    /// Our ISS for a SYN answered by cookie. `peer` must be what
    /// [`PeerSyn::for_cookie`] made of the SYN: the SYN-ACK announces that.
    pub fn iss(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        irs: u32,
        peer: &PeerSyn,
    ) -> u32 {
        let count = Self::counter(now);
        let mss = mss_index(peer.mss) as u32;
        let ts = peer.timestamps.then(|| peer.ts_bits());
        let mac = self.mac(local, remote, irs, count, mss, ts);
        let raw = ((count as u32 & 0xff) << 24) | (mac << 2) | mss;
        raw.wrapping_add(self.mask(local, remote, irs))
    }

    /// Our TSval in a cookie SYN-ACK, `ms` being the TSval clock now: the
    /// clock with its low bits replaced by the options, never ahead of the
    /// clock (later segments' TSvals must not go back, RFC 7323 5.4). None
    /// in the clock's first 64 ms (since start, or a wrap), when no such
    /// value exists: the SYN is then answered without timestamps.
    pub fn tsval(ms: u32, peer: &PeerSyn) -> Option<u32> {
        if ms <= TS_MASK {
            return None;
        }
        let t = (ms & !TS_MASK) | peer.ts_bits();
        Some(if t > ms { t - (TS_MASK + 1) } else { t })
    }

    /// Check the cookie an ACK (no SYN, no RST) to `local` from `remote`
    /// carries; None if it is not one of ours from the last `MAX_AGE`
    /// periods.
    pub fn check(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        ack: &TcpRepr,
    ) -> Option<Cookie> {
        let irs = ack.seq_number.wrapping_sub(1);
        let iss = ack.ack_number.wrapping_sub(1);
        let raw = iss.wrapping_sub(self.mask(local, remote, irs));
        let mss = raw & 3;
        let mac = (raw >> 2) & MAC_MASK;
        let count_low = raw >> 24;
        let ts = ack.options.timestamps.map(|(_, ecr)| ecr & TS_MASK);
        let now_count = Self::counter(now);
        let count = (0..MAX_AGE)
            .map(|age| now_count.wrapping_sub(age))
            .find(|&c| c as u32 & 0xff == count_low)?;
        if self.mac(local, remote, irs, count, mss, ts) != mac {
            return None;
        }
        let peer = match ts {
            Some(bits) => PeerSyn {
                mss: MSS_TABLE[mss as usize],
                window_scale: match bits & 0xf {
                    WSCALE_NONE => None,
                    s => Some((s as u8).min(14)),
                },
                sack: bits & TS_SACK != 0,
                timestamps: true,
                ecn: bits & TS_ECN != 0,
            },
            None => PeerSyn {
                mss: MSS_TABLE[mss as usize],
                window_scale: None,
                sack: false,
                timestamps: false,
                ecn: false,
            },
        };
        Some(Cookie { irs, iss, peer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const L: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);

    fn remote(ip: u32, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    /// The ACK a peer sends for a cookie SYN-ACK.
    fn ack_for(irs: u32, iss: u32, tsecr: Option<u32>) -> TcpRepr {
        TcpRepr {
            src_port: 0,
            dst_port: 80,
            seq_number: irs.wrapping_add(1),
            ack_number: iss.wrapping_add(1),
            flags: TcpFlags::ACK,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions {
                timestamps: tsecr.map(|e| (7, e)),
                ..Default::default()
            },
        }
    }

    fn peer_strategy() -> impl Strategy<Value = PeerSyn> {
        (
            any::<u16>(),
            proptest::option::of(0u8..=14),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(mss, window_scale, sack, timestamps, ecn)| PeerSyn {
                mss,
                window_scale,
                sack,
                timestamps,
                ecn,
            })
    }

    proptest! {
        #[test]
        fn a_cookie_gives_back_what_it_encodes(
            ip in any::<u32>(),
            port in any::<u16>(),
            irs in any::<u32>(),
            peer in peer_strategy(),
            start_ms in 64u64..4_000_000_000,
            delay_ms in 0u64..64_000,
        ) {
            let c = SynCookies::new();
            let r = remote(ip, port);
            let sent = Instant::from_millis(start_ms);
            let p = peer.for_cookie();
            let iss = c.iss(sent, L, r, irs, &p);
            let tsval = SynCookies::tsval(start_ms as u32, &p).filter(|_| p.timestamps);
            if p.timestamps {
                let t = tsval.unwrap();
                // Never ahead of the clock, and at most 64 ms behind it.
                prop_assert!(t <= start_ms as u32 && start_ms as u32 - t < 64);
            }
            let back = c.check(sent.plus(crate::time::Duration::from_millis(delay_ms)), L, r, &ack_for(irs, iss, tsval));
            prop_assert_eq!(back, Some(Cookie { irs, iss, peer: p }));
            // The MSS is rounded down (or is the floor of 536).
            prop_assert!(p.mss <= peer.mss.max(536));
        }

        #[test]
        fn forged_and_misdirected_cookies_are_rejected(
            ip in any::<u32>(),
            port in any::<u16>(),
            irs in any::<u32>(),
            guess in any::<u32>(),
            flip in 0u32..32,
        ) {
            let c = SynCookies::new();
            let r = remote(ip, port);
            let now = Instant::from_secs(1000);
            let p = PeerSyn { mss: 1460, window_scale: Some(7), sack: true, timestamps: false, ecn: false };
            let iss = c.iss(now, L, r, irs, &p);
            // Another tuple, another peer ISS, one bit flipped, or any guess.
            let other = remote(ip, port.wrapping_add(1));
            prop_assert_eq!(c.check(now, L, other, &ack_for(irs, iss, None)), None);
            prop_assert_eq!(c.check(now, L, r, &ack_for(irs.wrapping_add(1), iss, None)), None);
            prop_assert_eq!(c.check(now, L, r, &ack_for(irs, iss ^ (1 << flip), None)), None);
            if guess != iss {
                prop_assert_eq!(c.check(now, L, r, &ack_for(irs, guess, None)), None);
            }
            // Another process's secret.
            prop_assert_eq!(SynCookies::new().check(now, L, r, &ack_for(irs, iss, None)), None);
        }
    }

    #[test]
    fn cookies_expire_after_two_periods() {
        let c = SynCookies::new();
        let r = remote(0xc612_0002, 40000);
        let p = PeerSyn {
            mss: 1460,
            window_scale: None,
            sack: false,
            timestamps: false,
            ecn: false,
        };
        // Issued at the very end of a period: valid through the next one.
        let sent = Instant::from_secs(COUNTER_PERIOD_SECS * 10 - 1);
        let iss = c.iss(sent, L, r, 5, &p);
        let ack = ack_for(5, iss, None);
        assert!(c.check(sent, L, r, &ack).is_some());
        let last = Instant::from_secs(COUNTER_PERIOD_SECS * 11 - 1);
        assert!(c.check(last, L, r, &ack).is_some());
        assert_eq!(
            c.check(Instant::from_secs(COUNTER_PERIOD_SECS * 11), L, r, &ack),
            None
        );
        // Nor is one from the future (a clock 256 periods on does not wrap
        // it back in either).
        assert_eq!(
            c.check(Instant::from_secs(COUNTER_PERIOD_SECS * 9 - 1), L, r, &ack),
            None
        );
        assert_eq!(
            c.check(
                Instant::from_secs(COUNTER_PERIOD_SECS * (10 + 256) - 1),
                L,
                r,
                &ack
            ),
            None
        );
    }

    #[test]
    fn timestamp_bits_are_authenticated_and_required() {
        let c = SynCookies::new();
        let r = remote(0xc612_0002, 40000);
        let now = Instant::from_secs(100);
        let p = PeerSyn {
            mss: 1400,
            window_scale: Some(9),
            sack: true,
            timestamps: true,
            ecn: false,
        };
        let iss = c.iss(now, L, r, 77, &p);
        let ts = SynCookies::tsval(100_000, &p).unwrap();
        assert_eq!(ts & TS_MASK, 9 | TS_SACK);
        let ok = c.check(now, L, r, &ack_for(77, iss, Some(ts))).unwrap();
        assert_eq!(ok.peer, PeerSyn { mss: 1300, ..p });
        // Asking for another scale, dropping SACK, or dropping timestamps.
        assert_eq!(c.check(now, L, r, &ack_for(77, iss, Some(ts ^ 1))), None);
        assert_eq!(
            c.check(now, L, r, &ack_for(77, iss, Some(ts & !TS_SACK))),
            None
        );
        assert_eq!(c.check(now, L, r, &ack_for(77, iss, None)), None);
        // No room for bits in the clock's first 64 ms.
        assert_eq!(SynCookies::tsval(63, &p), None);
        assert_eq!(SynCookies::tsval(64, &p), Some(9 | TS_SACK));
        assert_eq!(SynCookies::tsval(64 + 9 + 16, &p), Some(64 + 9 + 16));
        assert_eq!(SynCookies::tsval(64 + 9 + 15, &p), Some(9 | TS_SACK));
    }

    #[test]
    fn ecn_rides_in_the_timestamp_bits() {
        let c = SynCookies::new();
        let r = remote(0xc612_0002, 40000);
        let now = Instant::from_secs(100);
        let p = PeerSyn {
            mss: 1460,
            window_scale: None,
            sack: false,
            timestamps: true,
            ecn: true,
        };
        let iss = c.iss(now, L, r, 77, &p);
        let ts = SynCookies::tsval(100_000, &p).unwrap();
        assert_eq!(ts & TS_MASK, WSCALE_NONE | TS_ECN);
        let ok = c.check(now, L, r, &ack_for(77, iss, Some(ts))).unwrap();
        assert!(ok.peer.ecn);
        // The bit is under the MAC: an ACK cannot turn ECN off (or on).
        assert_eq!(
            c.check(now, L, r, &ack_for(77, iss, Some(ts ^ TS_ECN))),
            None
        );
        // The SYN the connection is built from asks for ECN again, so that
        // `Tcb::accept` agrees to it.
        let syn = ok.peer.syn_repr(80, 40000, 77, ts, 100);
        assert!(ecn::is_setup_syn(syn.flags));
        // Without timestamps a cookie has nowhere to keep it.
        let no_ts = PeerSyn {
            timestamps: false,
            ..p
        };
        assert!(!no_ts.for_cookie().ecn);
        assert!(!ecn::is_setup_syn(
            no_ts.for_cookie().syn_repr(80, 1, 2, 0, 100).flags
        ));
    }

    #[test]
    fn mss_rounds_down_to_the_table_and_options_need_timestamps() {
        assert_eq!(mss_index(100), 0);
        assert_eq!(mss_index(1299), 0);
        assert_eq!(mss_index(1300), 1);
        assert_eq!(mss_index(9000), 3);
        let p = PeerSyn {
            mss: 1450,
            window_scale: Some(7),
            sack: true,
            timestamps: false,
            ecn: false,
        };
        assert_eq!(
            p.for_cookie(),
            PeerSyn {
                mss: 1440,
                window_scale: None,
                sack: false,
                timestamps: false,
                ecn: false,
            }
        );
    }
}
