//! The connections view: each core publishes a bounded snapshot of its TCP
//! connections (listeners, open connections, TIME-WAIT records) and UDP
//! sockets, and telemetry (`/dpstack/tcp/conns`, `/dpstack/udp/sockets`)
//! reads it, as it reads the latency histograms.
//!
//! The core owns its tables; no other thread touches them. A
//! [`ConnsPublisher`] on the core walks the table a step at a time (at
//! most [`STEP_SLOTS`] slots per timer tick, every 100 us, so that a walk
//! never stalls the loop), copies at most [`SNAPSHOT_MAX`] records, and
//! swaps the finished snapshot into the core's [`ConnsSlot`] with a
//! `try_lock` (a reader holding the slot makes it try again on the next
//! tick; the core never waits). A walk starts once a second, and at once
//! when a reader asks (a request word the core reads once per tick).
//!
//! Every listing position is a cursor: listeners are cursors 0 to 63 (their
//! place in the listener list), connections 64 + their slot in the table,
//! and half-open connections (SYN-RECEIVED, held in the SYN cache, not in
//! the table) 2^40 + their slot in the SYN cache.
//! A snapshot covers the cursors from where its walk started to where it
//! stopped (`next`: None when it reached the end of the table). A reader
//! asking for a cursor outside the snapshot asks for a walk from there, so
//! a core with a million connections is listed in pages of snapshots of
//! 4096, never copied whole. A listing is not atomic (neither is Linux's
//! /proc/net/tcp): connections opened or closed while it runs may be in it
//! or not, but a slot is never listed twice in one pass, as cursors only
//! grow.

use super::ctx::Core;
use crate::buf::BufPool;
use crate::stats::conns::{fill_page, Entry, Fields, Position, Reply, Value};
use crate::tcp::table::{TableEntry, MAX_LISTENERS};
use crate::tcp::TcpInfo;
use crate::time::{Duration, Instant};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Records (listeners and connections) in one snapshot, at most.
pub const SNAPSHOT_MAX: usize = 4096;
/// Table slots one step (one timer tick of the core) looks at, at most.
pub const STEP_SLOTS: usize = 1024;
/// A snapshot is taken this often unasked.
const PERIOD: Duration = Duration::from_secs(1);
/// The first connection's cursor: listeners come before.
const CONN_CURSOR: u64 = MAX_LISTENERS as u64;
/// The first half-open connection's cursor: past any table slot.
const SYN_CURSOR: u64 = 1 << 40;
/// A request for a fresh snapshot from the same place (UDP readers).
const REQUEST_SAME: u64 = u64::MAX;

/// What a TCP record is.
#[derive(Clone, Copy, Debug)]
pub enum ConnKind {
    Listen,
    Open(TcpInfo),
    /// A TIME-WAIT record keeps only its sequence numbers and its timer
    /// (the connection's counters went with it).
    TimeWait {
        snd_nxt: u32,
        rcv_nxt: u32,
        left: Duration,
    },
    /// A half-open connection in the SYN cache: our SYN-ACK sent, the
    /// handshake's ACK awaited.
    SynRecv {
        iss: u32,
        irs: u32,
        retransmits: u8,
        age: Duration,
        /// Until the SYN-ACK goes again.
        next_retransmit: Duration,
    },
}

/// One listener or connection of a core.
#[derive(Clone, Copy, Debug)]
pub struct TcpRecord {
    pub cursor: u64,
    pub local: SocketAddrV4,
    /// None for a listener.
    pub remote: Option<SocketAddrV4>,
    /// The application's index on the core (None for a TIME-WAIT record).
    pub app: Option<usize>,
    pub kind: ConnKind,
}

/// One bound or connected UDP socket.
#[derive(Clone, Copy, Debug)]
pub struct UdpRecord {
    pub local: SocketAddrV4,
    pub remote: Option<SocketAddrV4>,
    pub app: usize,
    /// Datagrams delivered and sent.
    pub rx: u64,
    pub tx: u64,
}

/// What one core published.
#[derive(Debug, Default)]
pub struct ConnsSnapshot {
    /// Which walk made it (0: none yet).
    pub walk: u64,
    /// When it was finished, by the reader's clock.
    pub published: Option<std::time::Instant>,
    /// The cursor its walk started at, and where it stopped (None: at the
    /// end of the table).
    pub start: u64,
    pub next: Option<u64>,
    /// Listeners and connections the core had.
    pub tcp_total: usize,
    pub tcp: Vec<TcpRecord>,
    pub udp: Vec<UdpRecord>,
    /// The core's applications' names, by index.
    pub apps: Vec<String>,
}

/// A core's published snapshot and the word readers ask for one with.
#[derive(Debug, Default)]
pub struct ConnsSlot {
    snapshot: Mutex<ConnsSnapshot>,
    /// 0: nothing asked; a cursor + 1; or [`REQUEST_SAME`].
    request: AtomicU64,
    /// Walks begun, counted before each walk reads the request.
    begun: AtomicU64,
    /// Snapshots published.
    serial: AtomicU64,
}

/// The core's side: the walk in progress and the snapshot it fills.
#[derive(Debug)]
pub struct ConnsPublisher {
    /// Connections in one snapshot, at most ([`SNAPSHOT_MAX`]).
    max: usize,
    /// The next cursor to look at (a table slot's, then a SYN cache
    /// slot's), while a walk runs.
    walk: Option<u64>,
    /// The walk is over; the snapshot waits for the slot.
    finished: bool,
    building: ConnsSnapshot,
    next_due: Instant,
    /// Where the last walk started (the periodic walk starts there too).
    start: u64,
}

impl Default for ConnsPublisher {
    fn default() -> Self {
        Self::with_max(SNAPSHOT_MAX)
    }
}

impl ConnsPublisher {
    /// A publisher whose snapshots hold at most `max` connections.
    pub fn with_max(max: usize) -> Self {
        ConnsPublisher {
            max: max.max(1),
            walk: None,
            finished: false,
            building: ConnsSnapshot::default(),
            next_due: Instant::ZERO,
            start: 0,
        }
    }

    /// One step (the core calls it on its timer tick): start a walk if one
    /// is due or asked for, go on with the one in progress, publish it
    /// once done.
    pub fn poll<P: BufPool>(&mut self, core: &Core<P>, now: Instant, slot: &ConnsSlot) {
        if self.walk.is_none() && !self.finished {
            if slot.request.load(Ordering::Relaxed) == 0 && now < self.next_due {
                return;
            }
            let req = slot.request.swap(0, Ordering::SeqCst);
            let walk = slot.begun.fetch_add(1, Ordering::SeqCst) + 1;
            if req != 0 && req != REQUEST_SAME {
                self.start = req - 1;
            }
            self.begin(core, walk);
        }
        if !self.finished {
            self.step(core);
        }
        if self.finished {
            self.publish(core, now, slot);
        }
    }

    fn begin<P: BufPool>(&mut self, core: &Core<P>, walk: u64) {
        let b = &mut self.building;
        b.walk = walk;
        b.start = self.start;
        b.next = None;
        b.tcp.clear();
        let net = &core.net;
        let ip = net.iface.ip.address();
        for (i, &(port, app)) in net.tcp.listeners().iter().enumerate() {
            if (i as u64) >= self.start {
                b.tcp.push(TcpRecord {
                    cursor: i as u64,
                    local: SocketAddrV4::new(ip, port),
                    remote: None,
                    app: Some(app),
                    kind: ConnKind::Listen,
                });
            }
        }
        self.walk = Some(self.start.max(CONN_CURSOR));
    }

    fn step<P: BufPool>(&mut self, core: &Core<P>) {
        let net = &core.net;
        let table = &net.tcp;
        let ip = net.iface.ip.address();
        let Some(cursor) = self.walk else {
            return;
        };
        if cursor >= SYN_CURSOR {
            return self.step_syn(core, cursor);
        }
        let mut index = cursor.saturating_sub(CONN_CURSOR).min(table.slots() as u64) as u32;
        let end = table.slots().min(index as usize + STEP_SLOTS) as u32;
        let b = &mut self.building;
        while index < end {
            if b.tcp.len() >= self.max {
                b.next = Some(CONN_CURSOR + u64::from(index));
                break;
            }
            if let Some((key, e)) = table.entry(index) {
                let local = SocketAddrV4::new(ip, key.local_port);
                let (app, kind) = match e {
                    TableEntry::Open(t) => (Some(t.app), ConnKind::Open(t.info(net.now))),
                    TableEntry::TimeWait(tw) => {
                        let (snd, rcv) = tw.seqs();
                        let left = tw.deadline.since(net.now);
                        (
                            None,
                            ConnKind::TimeWait {
                                snd_nxt: snd.0,
                                rcv_nxt: rcv.0,
                                left,
                            },
                        )
                    }
                };
                b.tcp.push(TcpRecord {
                    cursor: CONN_CURSOR + u64::from(index),
                    local,
                    remote: Some(key.remote),
                    app,
                    kind,
                });
            }
            index += 1;
        }
        if b.next.is_some() {
            self.walk = None;
            self.finished = true;
        } else if index as usize >= table.slots() {
            // The table is done: the SYN cache next, on the next step.
            self.walk = Some(SYN_CURSOR);
        } else {
            self.walk = Some(CONN_CURSOR + u64::from(index));
        }
    }

    /// One step through the SYN cache's half-open connections.
    fn step_syn<P: BufPool>(&mut self, core: &Core<P>, cursor: u64) {
        let net = &core.net;
        let cache = &net.syn.cache;
        let ip = net.iface.ip.address();
        let slots = cache.capacity() as u64;
        let mut index = (cursor - SYN_CURSOR).min(slots);
        let end = slots.min(index + STEP_SLOTS as u64);
        let b = &mut self.building;
        while index < end {
            if b.tcp.len() >= self.max {
                b.next = Some(SYN_CURSOR + index);
                break;
            }
            if let Some(e) = cache.entry(index as u32) {
                let port = e.key.local_port;
                let app = net
                    .tcp
                    .listeners()
                    .iter()
                    .find(|l| l.0 == port)
                    .map(|l| l.1);
                b.tcp.push(TcpRecord {
                    cursor: SYN_CURSOR + index,
                    local: SocketAddrV4::new(ip, port),
                    remote: Some(e.key.remote),
                    app,
                    kind: ConnKind::SynRecv {
                        iss: e.iss,
                        irs: e.irs,
                        retransmits: e.retransmits,
                        age: net.now.since(e.sent),
                        next_retransmit: e.next_retransmit.since(net.now),
                    },
                });
            }
            index += 1;
        }
        if b.next.is_some() || index >= slots {
            self.walk = None;
            self.finished = true;
        } else {
            self.walk = Some(SYN_CURSOR + index);
        }
    }

    fn publish<P: BufPool>(&mut self, core: &Core<P>, now: Instant, slot: &ConnsSlot) {
        let Ok(mut published) = slot.snapshot.try_lock() else {
            return;
        };
        let net = &core.net;
        let ip = net.iface.ip.address();
        let b = &mut self.building;
        b.tcp_total = net.tcp.listeners().len() + net.tcp.len() + net.syn.cache.len();
        b.udp.clear();
        b.udp.extend(net.udp.iter().map(|(port, s)| UdpRecord {
            local: SocketAddrV4::new(ip, port),
            remote: s.remote,
            app: s.app,
            rx: s.rx,
            tx: s.tx,
        }));
        if b.apps.len() != core.apps.len() {
            b.apps = core.apps.iter().map(|a| a.name()).collect();
        }
        b.published = Some(std::time::Instant::now());
        std::mem::swap(&mut *published, b);
        drop(published);
        slot.serial.fetch_add(1, Ordering::SeqCst);
        self.finished = false;
        self.next_due = now.plus(PERIOD);
    }
}

impl ConnsSlot {
    /// Run `f` on a snapshot: one that holds `cursor` (any, for `udp`),
    /// and, if `fresh`, one whose walk began after this call. Asks the core
    /// for a walk when need be and waits up to `timeout` for it; then
    /// takes what there is (None if nothing fits).
    pub fn read<R>(
        &self,
        cursor: u64,
        fresh: bool,
        udp: bool,
        timeout: std::time::Duration,
        f: impl FnOnce(&ConnsSnapshot) -> R,
    ) -> Option<R> {
        let covers = |s: &ConnsSnapshot| {
            s.walk > 0 && (udp || (s.start <= cursor && s.next.is_none_or(|n| cursor < n)))
        };
        let deadline = std::time::Instant::now() + timeout;
        let mut after = None;
        loop {
            let serial = self.serial.load(Ordering::SeqCst);
            {
                let s = self.snapshot.lock().ok()?;
                if covers(&s) && after.is_none_or(|b| s.walk > b) && (after.is_some() || !fresh) {
                    return Some(f(&s));
                }
                if std::time::Instant::now() >= deadline {
                    return covers(&s).then(|| f(&s));
                }
            }
            // Ask (again: another reader may have asked for another place).
            let begun = self.begun.load(Ordering::SeqCst);
            after.get_or_insert(begun);
            let req = if udp { REQUEST_SAME } else { cursor + 1 };
            self.request.store(req, Ordering::SeqCst);
            while self.serial.load(Ordering::SeqCst) == serial
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

fn addr(a: SocketAddrV4) -> Value {
    Value::Str(a.to_string())
}

fn ms(d: Duration) -> Value {
    Value::U64(d.micros() / 1000)
}

fn us(d: Duration) -> Value {
    Value::U64(d.micros())
}

fn app_name(apps: &[String], app: Option<usize>) -> Value {
    Value::Str(app.and_then(|a| apps.get(a)).cloned().unwrap_or_default())
}

impl TcpRecord {
    /// The record as telemetry shows it (names as Linux's `ss -ti` and
    /// `TCP_INFO` where they have one).
    pub fn fields(&self, core: usize, apps: &[String]) -> Fields {
        let mut f: Fields = vec![
            ("core", Value::U64(core as u64)),
            ("local", addr(self.local)),
            ("remote", self.remote.map_or(Value::Str("*".into()), addr)),
        ];
        match &self.kind {
            ConnKind::Listen => {
                f.push(("state", Value::Str("LISTEN".into())));
                f.push(("app", app_name(apps, self.app)));
            }
            ConnKind::TimeWait {
                snd_nxt,
                rcv_nxt,
                left,
            } => {
                f.push(("state", Value::Str("TIME-WAIT".into())));
                f.push(("snd_nxt", Value::U64(u64::from(*snd_nxt))));
                f.push(("rcv_nxt", Value::U64(u64::from(*rcv_nxt))));
                f.push(("timewait_ms", ms(*left)));
            }
            ConnKind::SynRecv {
                iss,
                irs,
                retransmits,
                age,
                next_retransmit,
            } => {
                // As a connection's, so that `snd_una`/`rcv_nxt` read
                // alike: our SYN is unacknowledged, theirs received.
                f.extend([
                    ("state", Value::Str("SYN-RECEIVED".into())),
                    ("app", app_name(apps, self.app)),
                    ("snd_una", Value::U64(u64::from(*iss))),
                    ("snd_nxt", Value::U64(u64::from(iss.wrapping_add(1)))),
                    ("rcv_nxt", Value::U64(u64::from(irs.wrapping_add(1)))),
                    ("retrans", Value::U64(u64::from(*retransmits))),
                    ("rto_us", us(*next_retransmit)),
                    ("age_ms", ms(*age)),
                    ("syn_cache", Value::U64(1)),
                ]);
            }
            ConnKind::Open(i) => {
                let t = &i.totals;
                let u = |v: usize| Value::U64(v as u64);
                let b = |v: bool| Value::U64(u64::from(v));
                f.extend([
                    ("state", Value::Str(i.state.name().into())),
                    ("app", app_name(apps, self.app)),
                    ("cc", Value::Str(i.congestion_control.name().into())),
                    ("snd_una", Value::U64(u64::from(i.snd_una))),
                    ("snd_nxt", Value::U64(u64::from(i.snd_nxt))),
                    ("snd_max", Value::U64(u64::from(i.snd_max))),
                    ("snd_wnd", u(i.snd_wnd)),
                    ("snd_wscale", Value::U64(u64::from(i.snd_wscale))),
                    ("rcv_nxt", Value::U64(u64::from(i.rcv_nxt))),
                    ("rcv_wnd", u(i.rcv_wnd)),
                    ("rcv_wscale", Value::U64(u64::from(i.rcv_wscale))),
                    ("mss", u(i.mss)),
                    ("cwnd", u(i.cwnd)),
                    ("ssthresh", u(i.ssthresh)),
                    ("srtt_us", us(i.srtt.unwrap_or_default())),
                    ("rttvar_us", us(i.rttvar)),
                    ("min_rtt_us", us(i.min_rtt.unwrap_or_default())),
                    ("rto_us", us(i.rto)),
                    ("backoff", Value::U64(u64::from(i.backoff))),
                    ("retrans", Value::U64(t.retransmits)),
                    ("bytes_sent", Value::U64(t.bytes_sent)),
                    ("bytes_retrans", Value::U64(t.bytes_retrans)),
                    ("bytes_acked", Value::U64(t.bytes_acked)),
                    ("bytes_received", Value::U64(t.bytes_received)),
                    ("segs_out", Value::U64(t.segs_out)),
                    ("segs_in", Value::U64(t.segs_in)),
                    ("send_queued", u(i.unacked)),
                    ("send_buffer", u(i.send_buffer)),
                    ("recv_queued", u(i.recv_queued)),
                    ("recv_buffer", u(i.recv_buffer)),
                    ("ts", b(i.timestamps)),
                    ("sack", b(i.sack)),
                    ("ecn", b(i.ecn)),
                    ("in_recovery", b(i.in_recovery)),
                    ("passive", b(i.passive)),
                    ("age_ms", ms(i.age)),
                ]);
            }
        }
        f
    }
}

impl UdpRecord {
    pub fn fields(&self, core: usize, apps: &[String]) -> Fields {
        vec![
            ("core", Value::U64(core as u64)),
            ("local", addr(self.local)),
            ("remote", self.remote.map_or(Value::Str("*".into()), addr)),
            (
                "state",
                Value::Str(
                    if self.remote.is_some() {
                        "ESTAB"
                    } else {
                        "UNCONN"
                    }
                    .into(),
                ),
            ),
            ("app", app_name(apps, Some(self.app))),
            ("rx_datagrams", Value::U64(self.rx)),
            ("tx_datagrams", Value::U64(self.tx)),
        ]
    }
}

/// How long a reader waits for a core's snapshot.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// `/dpstack/tcp/conns` (TCP) or `/dpstack/udp/sockets` (`udp`): one page
/// of the listing at the position `params` names (see [`Position`]),
/// with `core`, `cores`, `total`, `shown`, `age_ms`, and `next` (the
/// parameters of the next page; absent at the end). None for bad
/// parameters or a core that has published nothing.
pub fn listing_page(slots: &[&ConnsSlot], params: &str, udp: bool) -> Option<Reply> {
    let pos = Position::parse(params)?;
    let slot = slots.get(pos.core)?;
    let cores = slots.len();
    slot.read(pos.cursor, pos.cursor == 0, udp, READ_TIMEOUT, |s| {
        let total = if udp { s.udp.len() } else { s.tcp_total };
        let age = s.published.map_or(0, |t| t.elapsed().as_millis() as u64);
        let mut reply: Reply = vec![
            ("core".into(), Entry::Value(Value::U64(pos.core as u64))),
            ("cores".into(), Entry::Value(Value::U64(cores as u64))),
            ("total".into(), Entry::Value(Value::U64(total as u64))),
            ("age_ms".into(), Entry::Value(Value::U64(age))),
            ("shown".into(), Entry::Value(Value::U64(0))),
            // Room for the longest `next`, set once the page is known.
            ("next".into(), Entry::Value(Value::Str("*,".repeat(20)))),
        ];
        let (shown, next) = if udp {
            let first = (pos.cursor as usize).min(s.udp.len());
            let recs = s.udp[first..].iter().map(|r| r.fields(pos.core, &s.apps));
            let shown = fill_page(&mut reply, recs);
            let more = first + shown < s.udp.len();
            (shown, more.then(|| (first + shown) as u64))
        } else {
            let first = s.tcp.partition_point(|r| r.cursor < pos.cursor);
            let recs = s.tcp[first..].iter().map(|r| r.fields(pos.core, &s.apps));
            let shown = fill_page(&mut reply, recs);
            let next = match s.tcp.get(first + shown) {
                Some(r) => Some(r.cursor),
                None => s.next,
            };
            (shown, next)
        };
        reply[4].1 = Entry::Value(Value::U64(shown as u64));
        let next = match next {
            Some(cursor) => Some(Position { cursor, ..pos }),
            None if pos.all && pos.core + 1 < cores => Some(Position {
                all: true,
                core: pos.core + 1,
                cursor: 0,
            }),
            None => None,
        };
        match next {
            Some(p) => reply[5].1 = Entry::Value(Value::Str(p.params())),
            None => {
                reply.remove(5);
            }
        }
        reply
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arp::ArpConfig;
    use crate::buf::HeapPool;
    use crate::fuzzing::FuzzCore;
    use crate::shard::ctx::CoreLimits;

    /// A core with a listener, a UDP socket and `clients` connections it
    /// opened itself (SYN-SENT: the host's MAC is never learnt).
    fn core(clients: usize) -> Core<HeapPool> {
        let apps = [
            "http:80".to_string(),
            "udp-echo:7".to_string(),
            format!("tcp-client:198.18.0.2:5001:1000:{clients}"),
        ];
        let apps: Vec<&str> = apps.iter().map(String::as_str).collect();
        let mut c = FuzzCore::with(CoreLimits::default(), ArpConfig::default(), &apps).into_core();
        c.poll_timers(Instant::from_secs(1));
        c
    }

    /// Walk until a snapshot is published.
    fn publish(p: &mut ConnsPublisher, c: &Core<HeapPool>, now: Instant, slot: &ConnsSlot) {
        let serial = slot.serial.load(Ordering::SeqCst);
        for _ in 0..1000 {
            p.poll(c, now, slot);
            if slot.serial.load(Ordering::SeqCst) > serial {
                return;
            }
        }
        panic!("nothing published");
    }

    fn states(r: &Reply) -> Vec<String> {
        r.iter()
            .filter_map(|(_, e)| match e {
                Entry::Record(f) => f.iter().find(|(k, _)| *k == "state").map(|(_, v)| match v {
                    Value::Str(s) => s.clone(),
                    Value::U64(_) => String::new(),
                }),
                Entry::Value(_) => None,
            })
            .collect()
    }

    fn value<'a>(r: &'a Reply, name: &str) -> Option<&'a Value> {
        r.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, e)| match e {
                Entry::Value(v) => Some(v),
                Entry::Record(_) => None,
            })
    }

    /// A snapshot holds at most `max` connections and says where the walk
    /// stopped; a reader asking past it gets a walk from there, and the
    /// pages together list every listener and connection once.
    #[test]
    fn snapshots_are_bounded_and_pages_list_everything_once() {
        let c = core(5);
        let slot = ConnsSlot::default();
        let mut p = ConnsPublisher::with_max(2);
        let now = Instant::from_secs(1);
        publish(&mut p, &c, now, &slot);
        {
            let s = slot.snapshot.lock().unwrap();
            // The listener and one connection: the bound.
            assert_eq!(s.tcp.len(), 2);
            assert_eq!(s.tcp_total, 6);
            assert_eq!(s.tcp[0].cursor, 0);
            assert!(matches!(s.tcp[0].kind, ConnKind::Listen));
            assert!(s.next.is_some());
            assert_eq!(s.udp.len(), 1);
            assert_eq!(s.apps.len(), 3);
        }
        // The core's side of every request runs on this thread: a
        // reader thread asks and waits while the core polls.
        let seen = std::thread::scope(|sc| {
            let reader = sc.spawn(|| {
                let mut params = "0".to_string();
                let mut seen = Vec::new();
                loop {
                    let r = listing_page(&[&slot], &params, false).expect("a page");
                    assert_eq!(value(&r, "total"), Some(&Value::U64(6)));
                    seen.extend(states(&r));
                    match value(&r, "next") {
                        Some(Value::Str(n)) => params = n.clone(),
                        _ => return seen,
                    }
                }
            });
            while !reader.is_finished() {
                p.poll(&c, now, &slot);
                std::thread::yield_now();
            }
            reader.join().unwrap()
        });
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert_eq!(seen[0], "LISTEN");
        assert!(seen[1..].iter().all(|s| s == "SYN-SENT"), "{seen:?}");
        let udp = std::thread::scope(|sc| {
            let reader = sc.spawn(|| listing_page(&[&slot], "", true).expect("a page"));
            while !reader.is_finished() {
                p.poll(&c, now, &slot);
                std::thread::yield_now();
            }
            reader.join().unwrap()
        });
        assert_eq!(states(&udp), vec!["UNCONN"]);
        assert!(value(&udp, "next").is_none());
    }

    /// A walk looks at no more than STEP_SLOTS slots per poll (table slots,
    /// then SYN cache slots), and none starts before its second unless
    /// asked.
    #[test]
    fn walks_are_stepped_and_periodic() {
        let c = core(1);
        let slot = ConnsSlot::default();
        let mut p = ConnsPublisher::default();
        let now = Instant::from_secs(1);
        // The default table: 4096 slots, four steps; then the SYN cache's
        // 1024 slots, one more.
        assert_eq!(c.net.syn.cache.capacity(), 1024);
        let polls = c.net.tcp.slots().div_ceil(STEP_SLOTS) + 1;
        assert_eq!(polls, 5);
        for _ in 0..polls - 1 {
            p.poll(&c, now, &slot);
        }
        assert_eq!(slot.serial.load(Ordering::SeqCst), 0);
        p.poll(&c, now, &slot);
        assert_eq!(slot.serial.load(Ordering::SeqCst), 1);
        // Not due again within the second, unasked.
        for _ in 0..10 * polls {
            p.poll(&c, now.plus(Duration::from_millis(999)), &slot);
        }
        assert_eq!(slot.serial.load(Ordering::SeqCst), 1);
        for _ in 0..polls {
            p.poll(&c, now.plus(PERIOD), &slot);
        }
        assert_eq!(slot.serial.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_unpublished_core_times_out_and_a_bad_core_is_refused() {
        let slot = ConnsSlot::default();
        let t0 = std::time::Instant::now();
        let r = slot.read(0, true, false, std::time::Duration::from_millis(30), |_| ());
        assert!(r.is_none());
        assert!(t0.elapsed() >= std::time::Duration::from_millis(30));
        // The request is left for the core.
        assert_eq!(slot.request.load(Ordering::SeqCst), 1);
        assert!(listing_page(&[&slot], "1", false).is_none());
        assert!(listing_page(&[&slot], "x", false).is_none());
    }
}
