//! Half-open connections (the idea of FreeBSD's `tcp_syncache.c`): a SYN
//! at a listener takes a compact entry here, not a connection. The entry
//! remembers what the SYN-ACK said and retransmits it with backoff (RFC 6298
//! 5.5: 1 s, 2 s, 4 s, ..., [`SYN_ACK_RETRIES`] times as Linux's
//! `tcp_synack_retries`), and is forgotten after the last wait. When the
//! handshake's ACK arrives, the caller builds the connection from it (see
//! `shard/tcp.rs`). A half-open connection owns no `Tcb` and no buffer.
//!
//! With several cores and steering, entries are published in the flow
//! directory as connections are, so that the ACK reaches the core holding
//! the entry even when it lands elsewhere (af_packet's fanout rolls flows
//! over when a ring is full, as under a flood).
//!
//! Bounded: `capacity` slots of 64 bytes, a hash index sized once,
//! and its own timer wheel (handles are entry indices; a stale wheel entry,
//! whose tick is not the one its entry last armed, is ignored).
//!
//! [`SynDefence`] adds the policy: the cache while it has room and the
//! listener holds less than half of it, SYN cookies ([`super::syncookie`])
//! past that or when the connection table is full.

use super::ecn;
use super::syncookie::{PeerSyn, SynCookies, LIFETIME_SECS};
use super::table::{FlowKey, MAX_LISTENERS};
use super::tcb::{syn_options, Tcb};
use super::timer::TimerWheel;
use super::TcpConfig;
use crate::flow::FlowDirectory;
use crate::hash::FlowMap;
use crate::time::{Duration, Instant};
use crate::wire::{TcpFlags, TcpRepr};
use arrayvec::ArrayVec;
use std::sync::Arc;

/// SYN-ACK retransmissions before a half-open connection is forgotten
/// (Linux's default; with a 1 s initial RTO, gone after 63 s).
pub const SYN_ACK_RETRIES: u8 = 5;

/// When listeners answer SYNs with cookies (`--tcp-syncookies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SynCookieMode {
    /// When the SYN cache or the connection table has no room for the SYN.
    #[default]
    Auto,
    /// Every SYN (no SYN cache).
    Always,
    /// Never: a SYN that finds no room is dropped (cache) or refused with
    /// a RST (connection table).
    Never,
}

impl std::str::FromStr for SynCookieMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SynCookieMode::Auto),
            "always" => Ok(SynCookieMode::Always),
            "never" => Ok(SynCookieMode::Never),
            _ => Err(format!("'{s}': expected auto, always or never")),
        }
    }
}

/// A half-open connection: what its SYN-ACK says and when it goes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynEntry {
    pub key: FlowKey,
    /// The peer's ISS.
    pub irs: u32,
    pub iss: u32,
    pub peer: PeerSyn,
    /// The peer's latest TSval (RFC 7323 4.3), echoed in our TSecr.
    pub ts_recent: u32,
    /// When the first SYN-ACK left: an RTT sample while it was the only one
    /// (Karn).
    pub sent: Instant,
    pub retransmits: u8,
    pub next_retransmit: Instant,
}

/// The SYN-ACK for a SYN of `peer` on `key`: exactly what `Tcb::dispatch`
/// sends for the connection `Tcb::accept` makes of that SYN (the same
/// [`syn_options`], the window of a fresh receive ring, never scaled in a
/// SYN). `ts`: (TSval, TSecr), when `peer.timestamps`; a cookie's TSval
/// carries options.
pub fn syn_ack(
    cfg: &TcpConfig,
    key: &FlowKey,
    iss: u32,
    irs: u32,
    peer: &PeerSyn,
    ts: (u32, u32),
) -> TcpRepr {
    let snd_shift = peer.window_scale.unwrap_or(0);
    let rcv_shift = if peer.window_scale.is_some() {
        Tcb::wanted_shift(cfg)
    } else {
        0
    };
    let mut options = syn_options(cfg, false, snd_shift, rcv_shift, peer.sack);
    options.timestamps = peer.timestamps.then_some(ts);
    TcpRepr {
        src_port: key.local_port,
        dst_port: key.remote.port(),
        seq_number: iss,
        ack_number: irs.wrapping_add(1),
        flags: TcpFlags::SYN | TcpFlags::ACK | ecn::syn_ack_flags(peer.ecn),
        window_len: cfg.rx_buffer.min(65535) as u16,
        urgent_at: 0,
        options,
    }
}

/// What the cache's timer did to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// Its SYN-ACK is due again (the entry as it is now).
    Retransmit(SynEntry),
    /// Out of retransmissions: forgotten.
    TimedOut(SynEntry),
}

struct Slot {
    entry: Option<SynEntry>,
    /// The wheel tick it is filed under.
    tick: u64,
}

pub struct SynCache {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: FlowMap<FlowKey, u32>,
    /// Entries per local port.
    per_port: ArrayVec<(u16, u32), MAX_LISTENERS>,
    wheel: TimerWheel,
    fired: Vec<(u32, u64)>,
    /// The first retransmission's wait; it doubles each time.
    rto: Duration,
    /// The flow directory and this core's index (steering).
    directory: Option<(Arc<FlowDirectory>, usize)>,
    /// Entries the directory had no room for.
    pub directory_full: u64,
}

/// The wheel: 1024 ticks of 50 ms cover 51 s; the last wait (32 s with a 1 s
/// RTO) fits, longer ones are re-filed when they come up.
const WHEEL_SLOTS: usize = 1024;
const WHEEL_TICK_US: u64 = 50_000;

impl SynCache {
    pub fn new(capacity: usize, rto: Duration, now: Instant) -> SynCache {
        SynCache {
            slots: (0..capacity)
                .map(|_| Slot {
                    entry: None,
                    tick: 0,
                })
                .collect(),
            free: (0..capacity as u32).rev().collect(),
            index: FlowMap::with_capacity_and_hasher(capacity, Default::default()),
            per_port: ArrayVec::new(),
            wheel: TimerWheel::new(WHEEL_SLOTS, WHEEL_TICK_US, now),
            fired: Vec::with_capacity(capacity),
            rto,
            directory: None,
            directory_full: 0,
        }
    }

    /// Publish this core's half-open connections in `dir`.
    pub fn set_directory(&mut self, dir: Arc<FlowDirectory>, core: usize) {
        self.directory = Some((dir, core));
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
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

    /// What slot `index` holds (0 to [`capacity`](Self::capacity)), read-only;
    /// None for a free one.
    pub fn entry(&self, index: u32) -> Option<&SynEntry> {
        self.slots.get(index as usize)?.entry.as_ref()
    }

    /// Half-open connections to local `port`.
    pub fn half_open(&self, port: u16) -> usize {
        self.per_port
            .iter()
            .find(|p| p.0 == port)
            .map_or(0, |p| p.1 as usize)
    }

    pub fn get(&self, key: &FlowKey) -> Option<&SynEntry> {
        let i = *self.index.get(key)?;
        self.slots[i as usize].entry.as_ref()
    }

    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut SynEntry> {
        let i = *self.index.get(key)?;
        self.slots[i as usize].entry.as_mut()
    }

    /// Add an entry whose first SYN-ACK leaves now (`entry.sent`); false
    /// when there is no room (or the tuple is already here).
    pub fn insert(&mut self, mut entry: SynEntry) -> bool {
        if self.index.contains_key(&entry.key) {
            return false;
        }
        let port = entry.key.local_port;
        let counted = match self.per_port.iter_mut().find(|p| p.0 == port) {
            Some(p) => {
                p.1 += 1;
                true
            }
            None => self.per_port.try_push((port, 1)).is_ok(),
        };
        if !counted {
            return false;
        }
        let Some(i) = self.free.pop() else {
            self.uncount(port);
            return false;
        };
        entry.retransmits = 0;
        entry.next_retransmit = entry.sent.plus(self.rto);
        self.index.insert(entry.key, i);
        if let Some((dir, core)) = &self.directory {
            if !dir.insert(&entry.key, *core) {
                self.directory_full += 1;
            }
        }
        let tick = self.wheel.insert(i, entry.next_retransmit);
        self.slots[i as usize] = Slot {
            entry: Some(entry),
            tick,
        };
        true
    }

    fn uncount(&mut self, port: u16) {
        if let Some(at) = self.per_port.iter().position(|p| p.0 == port) {
            self.per_port[at].1 -= 1;
            if self.per_port[at].1 == 0 {
                self.per_port.swap_remove(at);
            }
        }
    }

    pub fn remove(&mut self, key: &FlowKey) -> Option<SynEntry> {
        let i = self.index.remove(key)?;
        let e = self.slots[i as usize].entry.take()?;
        if let Some((dir, core)) = &self.directory {
            dir.remove(key, *core);
        }
        self.uncount(key.local_port);
        self.free.push(i);
        Some(e)
    }

    /// Run the retransmission timers due by `now`: each entry due is either
    /// re-armed with its wait doubled (and reported to be sent again) or,
    /// out of retransmissions, removed.
    pub fn expired(&mut self, now: Instant, out: &mut Vec<Expired>) {
        self.fired.clear();
        self.wheel.advance(now, &mut self.fired);
        for k in 0..self.fired.len() {
            let (i, tick) = self.fired[k];
            let slot = &self.slots[i as usize];
            let Some(mut e) = slot.entry.filter(|_| slot.tick == tick) else {
                continue;
            };
            if e.next_retransmit > now {
                // Parked at the horizon: file it again.
                self.slots[i as usize].tick = self.wheel.insert(i, e.next_retransmit);
                continue;
            }
            if e.retransmits >= SYN_ACK_RETRIES {
                self.remove(&e.key);
                out.push(Expired::TimedOut(e));
                continue;
            }
            e.retransmits += 1;
            let wait = Duration::from_micros(self.rto.micros() << e.retransmits);
            e.next_retransmit = now.plus(wait);
            self.slots[i as usize] = Slot {
                entry: Some(e),
                tick: self.wheel.insert(i, e.next_retransmit),
            };
            out.push(Expired::Retransmit(e));
        }
    }

    /// Forget every entry (shutdown).
    pub fn clear(&mut self) {
        let keys: Vec<FlowKey> = self.index.keys().copied().collect();
        for k in keys {
            self.remove(&k);
        }
    }
}

/// What to do with a SYN at a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynAction {
    /// Keep a cache entry and answer.
    Cache,
    /// Answer with a cookie, keep nothing.
    Cookie,
    /// No room anywhere and cookies off: drop it (the peer retries).
    Drop,
    /// The connection table is full and cookies are off: refuse (RST).
    Refuse,
}

/// A core's defence of its listeners against SYN floods: the SYN cache, the
/// cookie secret, and until when ACKs may carry cookies.
pub struct SynDefence {
    pub cache: SynCache,
    pub cookies: SynCookies,
    pub mode: SynCookieMode,
    /// An ACK at a listener is checked for a cookie only until this long
    /// after the last cookie was sent ([`LIFETIME_SECS`]): no random ACK
    /// gets a 2^-22 chance while no flood is on (Linux's
    /// `tcp_synq_no_recent_overflow`).
    cookies_until: Option<Instant>,
    /// Scratch for the cache's timer.
    pub expired: Vec<Expired>,
}

impl SynDefence {
    pub fn new(
        capacity: usize,
        mode: SynCookieMode,
        cookies: SynCookies,
        rto: Duration,
        now: Instant,
    ) -> SynDefence {
        let capacity = if mode == SynCookieMode::Always {
            0
        } else {
            capacity
        };
        SynDefence {
            cache: SynCache::new(capacity, rto, now),
            cookies,
            mode,
            cookies_until: None,
            expired: Vec::with_capacity(64),
        }
    }

    /// Half-open connections one listener may hold: half the cache, so
    /// that a flood at one port leaves room for the others' handshakes
    /// (its own SYNs then get cookies, which cost nothing).
    pub fn listener_limit(&self) -> usize {
        self.cache.capacity().div_ceil(2)
    }

    /// The cache has room for a SYN to `port` (in all and in its share).
    pub fn has_room(&self, port: u16) -> bool {
        !self.cache.is_full() && self.cache.half_open(port) < self.listener_limit()
    }

    /// RFC 4987 3.6 and 3.7: where a SYN to `port` goes.
    pub fn decide(&self, port: u16, table_full: bool) -> SynAction {
        let room = self.has_room(port);
        match self.mode {
            SynCookieMode::Always => SynAction::Cookie,
            SynCookieMode::Auto if table_full || !room => SynAction::Cookie,
            SynCookieMode::Auto => SynAction::Cache,
            SynCookieMode::Never if table_full => SynAction::Refuse,
            SynCookieMode::Never if !room => SynAction::Drop,
            SynCookieMode::Never => SynAction::Cache,
        }
    }

    /// A cookie leaves now: ACKs may carry cookies for their lifetime.
    pub fn cookie_sent(&mut self, now: Instant) {
        self.cookies_until = Some(now.plus(Duration::from_secs(LIFETIME_SECS)));
    }

    /// Whether an ACK that matches nothing should be checked for a cookie.
    pub fn cookies_recent(&self, now: Instant) -> bool {
        self.mode != SynCookieMode::Never && self.cookies_until.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{TcpFlags, TcpRepr};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn entry(port: u16, n: u16, sent: Instant) -> SynEntry {
        SynEntry {
            key: FlowKey {
                local_port: port,
                remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8), 1000 + n),
            },
            irs: u32::from(n),
            iss: 7,
            peer: PeerSyn {
                mss: 1460,
                window_scale: None,
                sack: false,
                timestamps: false,
                ecn: false,
            },
            ts_recent: 0,
            sent,
            retransmits: 0,
            next_retransmit: sent,
        }
    }

    proptest::proptest! {
        /// The cache's SYN-ACK is the one a Tcb sends for the same SYN,
        /// whatever the SYN offers and whatever we are configured to take.
        #[test]
        fn the_syn_ack_is_what_a_tcb_sends(
            mss in proptest::option::of(0u16..10000),
            ws in proptest::option::of(0u8..20),
            sack in proptest::bool::ANY,
            ts in proptest::option::of(proptest::num::u32::ANY),
            cfg_bits in 0u8..8,
            ecn_bits in 0u8..4,
            ecn_mode in 0usize..3,
            rx_buffer in 4096usize..(4 << 20),
            irs in proptest::num::u32::ANY,
        ) {
            use crate::tcp::EcnMode;
            use crate::wire::TcpOptions;
            let cfg = TcpConfig {
                window_scaling: cfg_bits & 1 != 0,
                sack: cfg_bits & 2 != 0,
                timestamps: cfg_bits & 4 != 0,
                rx_buffer,
                ecn: [EcnMode::Off, EcnMode::On, EcnMode::Server][ecn_mode],
                ..TcpConfig::default()
            };
            let opts = TcpOptions {
                mss,
                window_scale: ws,
                sack_permitted: sack,
                timestamps: ts.map(|v| (v, 0)),
                ..Default::default()
            };
            let local = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
            let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 4000);
            let syn = TcpRepr {
                src_port: 4000,
                dst_port: 80,
                seq_number: irs,
                ack_number: 0,
                // Any of ECE and CWR: only both ask for ECN.
                flags: TcpFlags::SYN | TcpFlags(ecn_bits << 6),
                window_len: 1234,
                urgent_at: 0,
                options: opts,
            };
            let now = Instant::from_millis(123_456);
            let mut tcb = Tcb::accept(&cfg, now, local, remote, 99, 0, &syn);
            let mut sent = Vec::new();
            tcb.dispatch(now, &mut |r: &TcpRepr, _: &[u8], _: &[u8]| {
                sent.push(*r);
                true
            });
            let key = FlowKey { local_port: 80, remote };
            let peer = PeerSyn::negotiate(&cfg, &syn);
            let tsval = super::super::tcb::ts_now(now).max(1);
            let ours = syn_ack(&cfg, &key, 99, irs, &peer, (tsval, ts.unwrap_or(0)));
            proptest::prop_assert_eq!(sent, vec![ours]);
            // And the Tcb built from the ACK negotiates the same again.
            let rebuilt = Tcb::accept(&cfg, now, local, remote, 99, 0, &peer.syn_repr(80, 4000, irs, ts.unwrap_or(0), 1234));
            proptest::prop_assert_eq!(rebuilt.mss, tcb.mss);
            proptest::prop_assert_eq!(rebuilt.ecn_negotiated(), tcb.ecn_negotiated());
            proptest::prop_assert_eq!(
                tcb.ecn_negotiated(),
                ecn_bits == 3 && cfg.ecn != EcnMode::Off
            );
        }
    }

    #[test]
    fn retransmits_with_backoff_then_forgets() {
        let t0 = Instant::from_secs(10);
        let mut c = SynCache::new(4, Duration::from_secs(1), t0);
        assert!(c.insert(entry(80, 1, t0)));
        assert!(!c.insert(entry(80, 1, t0)), "one entry per tuple");
        let mut out = Vec::new();
        let mut at = Vec::new();
        let mut now = t0;
        while now < t0.plus(Duration::from_secs(100)) {
            now = now.plus(Duration::from_millis(10));
            out.clear();
            c.expired(now, &mut out);
            for x in &out {
                at.push((
                    now.since(t0).micros() / 100_000,
                    matches!(x, Expired::TimedOut(_)),
                ));
            }
        }
        // Due at 1, 3, 7, 15, 31 s, gone at 63 s (in tenths, with the
        // wheel's 50 ms ticks).
        let tenths: Vec<u64> = at.iter().map(|a| a.0).collect();
        assert_eq!(tenths, vec![10, 30, 70, 150, 310, 630]);
        assert_eq!(at.iter().filter(|a| a.1).count(), 1);
        assert!(c.is_empty());
        assert_eq!(c.half_open(80), 0);
        assert_eq!(c.wheel.entries(), 0);
    }

    #[test]
    fn waits_past_the_wheels_horizon_are_filed_again() {
        // A 3 s RTO: the last waits (48 s, 96 s) pass the 51 s horizon.
        let t0 = Instant::from_secs(10);
        let mut c = SynCache::new(1, Duration::from_secs(3), t0);
        assert!(c.insert(entry(80, 1, t0)));
        let mut out = Vec::new();
        let mut secs = Vec::new();
        for s in 1..=400 {
            out.clear();
            c.expired(t0.plus(Duration::from_secs(s)), &mut out);
            secs.extend(out.iter().map(|_| s));
        }
        assert_eq!(secs, vec![3, 9, 21, 45, 93, 189]);
        assert!(c.is_empty());
    }

    #[test]
    fn a_connection_built_from_the_ack_takes_it_as_if_it_had_sent_the_syn_ack() {
        use crate::stats::Counters;
        use crate::tcp::State;
        let cfg = TcpConfig::default();
        let local = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
        let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 4000);
        let peer = PeerSyn {
            mss: 1460,
            window_scale: Some(2),
            sack: true,
            timestamps: false,
            ecn: false,
        };
        let syn = peer.syn_repr(80, 4000, 1000, 0, 100);
        let sent = Instant::from_millis(1000);
        let now = Instant::from_millis(1030);
        let ack = TcpRepr {
            src_port: 4000,
            dst_port: 80,
            seq_number: 1001,
            ack_number: 501,
            flags: TcpFlags::ACK,
            window_len: 100,
            urgent_at: 0,
            options: Default::default(),
        };
        let mut c = Counters::default();
        let sent_by = |t: &mut Tcb| {
            let mut out = Vec::new();
            t.dispatch(now, &mut |r: &TcpRepr, _: &[u8], _: &[u8]| {
                out.push(*r);
                true
            });
            out
        };
        let mut t = Tcb::accept(&cfg, sent, local, remote, 500, 0, &syn);
        t.syn_ack_sent(now, Some(sent));
        t.process(now, &ack, b"", &mut c);
        let out = sent_by(&mut t);
        assert_eq!(t.state, State::Established);
        assert_eq!(c.tcp_accepted, 1);
        assert!(out.is_empty(), "no SYN-ACK again: {out:?}");
        assert_eq!(t.next_deadline(), None);
        assert_eq!(
            t.srtt(),
            Some(Duration::from_millis(30)),
            "timed from the first SYN-ACK"
        );
        // Without it, the ACK acknowledges a SYN-ACK never sent: RST.
        let mut t = Tcb::accept(&cfg, sent, local, remote, 500, 0, &syn);
        t.process(now, &ack, b"", &mut c);
        let out = sent_by(&mut t);
        assert_eq!(t.state, State::SynReceived);
        assert!(out[0].flags.rst(), "{out:?}");
    }

    #[test]
    fn entries_are_compact() {
        // Tens of bytes an entry, against a Tcb and two rings.
        assert!(std::mem::size_of::<SynEntry>() <= 48);
        assert!(std::mem::size_of::<Slot>() <= 64);
    }

    #[test]
    fn bounded_and_counted_per_port() {
        let t0 = Instant::from_secs(1);
        let mut c = SynCache::new(3, Duration::from_secs(1), t0);
        assert!(c.insert(entry(80, 1, t0)));
        assert!(c.insert(entry(80, 2, t0)));
        assert!(c.insert(entry(443, 3, t0)));
        assert!(c.is_full());
        assert!(!c.insert(entry(443, 4, t0)));
        assert_eq!((c.half_open(80), c.half_open(443)), (2, 1));
        let k = entry(80, 1, t0).key;
        assert_eq!(c.remove(&k).unwrap().irs, 1);
        assert!(c.remove(&k).is_none());
        assert_eq!(c.half_open(80), 1);
        // The removed entry's timer fires stale: nothing happens to it.
        assert!(c.insert(entry(443, 4, t0.plus(Duration::from_millis(500)))));
        let mut out = Vec::new();
        c.expired(t0.plus(Duration::from_millis(1050)), &mut out);
        let fired: Vec<u32> = out
            .iter()
            .map(|x| match x {
                Expired::Retransmit(e) => e.irs,
                Expired::TimedOut(e) => e.irs,
            })
            .collect();
        assert_eq!(fired.len(), 2);
        assert!(fired.contains(&2) && fired.contains(&3));
        c.clear();
        assert!(c.is_empty() && !c.is_full());
    }

    #[test]
    fn policy_by_mode_and_room() {
        let now = Instant::ZERO;
        let d =
            |mode, cap| SynDefence::new(cap, mode, SynCookies::new(), Duration::from_secs(1), now);
        let mut auto = d(SynCookieMode::Auto, 4);
        assert_eq!(auto.decide(80, false), SynAction::Cache);
        assert_eq!(auto.decide(80, true), SynAction::Cookie);
        // One listener may hold half the cache.
        assert!(auto.cache.insert(entry(80, 1, now)));
        assert!(auto.cache.insert(entry(80, 2, now)));
        assert_eq!(auto.decide(80, false), SynAction::Cookie);
        assert_eq!(auto.decide(443, false), SynAction::Cache);
        let mut never = d(SynCookieMode::Never, 2);
        assert_eq!(never.decide(80, true), SynAction::Refuse);
        assert!(never.cache.insert(entry(80, 1, now)));
        assert_eq!(never.decide(80, false), SynAction::Drop);
        assert!(!never.cookies_recent(now));
        let always = d(SynCookieMode::Always, 1024);
        assert_eq!(always.cache.capacity(), 0);
        assert_eq!(always.decide(80, false), SynAction::Cookie);
        // Cookies are looked for only while some were sent lately.
        assert!(!auto.cookies_recent(now));
        auto.cookie_sent(now);
        assert!(auto.cookies_recent(now.plus(Duration::from_secs(LIFETIME_SECS - 1))));
        assert!(!auto.cookies_recent(now.plus(Duration::from_secs(LIFETIME_SECS))));
        assert_eq!("always".parse(), Ok(SynCookieMode::Always));
        assert!("sometimes".parse::<SynCookieMode>().is_err());
    }
}
