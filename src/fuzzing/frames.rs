//! Structured, stateful fuzzing of one whole core (tests/fuzz target
//! `tcp_frames`). An [`Input`] is a core configuration and a sequence of
//! [`Step`]s: frames described by their fields (Ethernet, ARP, IPv4 with
//! options, fragments and faulty lengths, ICMP, UDP, TCP) and "advance the
//! clock" steps. The [`Harness`] plays the peers: it encodes each frame with
//! correct checksums (unless a step asks for a bad one) and learns from the
//! segments the core sends (its ISS, what it has sent, what it ACKs, its
//! timestamps), so a TCP step says "at the core's rcv_nxt + 3" or "ACK all it
//! sent" rather than raw numbers a mutation would have to guess. A handshake
//! is then three steps, and every state (RFC 9293 3.3.2) is a few more.
//!
//! After every step the [`oracle`](super::oracle) checks run: every pool
//! buffer accounted for, every frame the core sent well formed, the tables
//! within their limits and their gauges consistent, and each connection's
//! sequence space monotonic. A violation panics with what was seen.
//!
//! With the `fuzzing` feature (and in tests) the input types derive
//! `arbitrary::Arbitrary`, which is how libFuzzer's bytes become an input.

use super::oracle::{check_core, check_emitted_frame, CounterOracle, Emitted, SeqOracle};
use super::FuzzCore;
use crate::shard::CoreLimits;
use crate::tcp::{Keepalive, SynCookieMode, TcpConfig};
use crate::time::Duration;
use crate::wire::{checksum, EthernetAddress, IpProtocol, TcpFlags};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Our address, MAC and MTU (as [`FuzzCore::new`]).
pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const OUR_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
pub const MTU: usize = 1500;
/// The peers, on our subnet; the tcp-client app connects to the second.
pub const PEERS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 18, 0, 2),
    Ipv4Addr::new(198, 18, 0, 3),
    Ipv4Addr::new(198, 18, 0, 4),
];
/// The port the tcp-client app connects to, on `PEERS[1]`.
pub const CLIENT_PEER_PORT: u16 = 5001;
/// The applications the core runs.
pub const APPS: [&str; 5] = [
    "udp-echo:7",
    "udp-sink:9",
    "tcp-echo:7",
    "http:80:3000",
    "tcp-client:198.18.0.3:5001:3000:2",
];
/// Connections the core's table holds (small, so that it fills).
pub const MAX_CONNECTIONS: usize = 8;
/// Half-open connections the SYN cache holds (small, so cookies are sent).
pub const SYN_CACHE: usize = 4;
/// Peer ports a passive connection may come from.
const PEER_PORTS: [u16; 3] = [40000, 40001, 50000];
/// Payloads are cut to this (a full-sized segment with options).
const MAX_PAYLOAD: usize = 1460;
/// Steps run from one input (libFuzzer's -max_len bounds them anyway).
const MAX_STEPS: usize = 256;

fn peer_mac(i: usize) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 1, i as u8 + 2])
}

macro_rules! fuzz_type {
    ($($item:item)*) => {$(
        #[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
        #[derive(Clone, Debug, PartialEq, Eq)]
        $item
    )*};
}

fuzz_type! {
    /// One fuzz input: how the core is configured, then what happens.
    pub struct Input {
        pub config: Config,
        pub steps: Vec<Step>,
    }

    /// The core's TCP settings that change which code runs.
    pub struct Config {
        pub timestamps: bool,
        pub sack: bool,
        pub window_scaling: bool,
        pub cookies: Cookies,
        /// 4 KiB buffers (zero windows, short sends) instead of 64 KiB.
        pub small_buffers: bool,
        pub nagle: bool,
        pub delayed_ack: bool,
        /// Keepalive after 10 s idle, every 2 s, 3 probes.
        pub keepalive: bool,
        /// A 16 KiB buffer memory budget for the core.
        pub tight_memory: bool,
    }

    pub enum Cookies {
        Auto,
        Always,
        Never,
    }

    pub enum Step {
        Tcp(Segment),
        /// Advance the clock by this many milliseconds, running the timers.
        AdvanceMs(u16),
        /// Advance the clock by this many seconds (TIME_WAIT, keepalive,
        /// the SYN cache's and RTO's backoff).
        AdvanceSecs(u8),
        Udp(Datagram),
        Icmp(Icmp),
        Arp(Arp),
        /// Any bytes, as one frame.
        Raw(Vec<u8>),
    }

    /// A TCP segment from a peer.
    pub struct Segment {
        pub conn: Conn,
        pub flags: Flags,
        pub seq: Seq,
        pub ack: Ack,
        pub window: Window,
        pub options: Options,
        pub payload: Payload,
        pub urgent: Option<u16>,
        pub wrap: Wrap,
    }

    /// Which 4-tuple.
    pub enum Conn {
        /// From peer `peer % 3`, port `PEER_PORTS[port % 3]`, to a service.
        Passive { peer: u8, port: u8, service: Service },
        /// One the core opened (tcp-client), the `n`th seen, else to
        /// `CLIENT_PEER_PORT` from a port it did not use.
        Active(u8),
    }

    /// A local TCP port.
    pub enum Service {
        Echo,
        Http,
        /// Port 9: UDP only, so TCP is refused.
        Closed,
        Other(u16),
    }

    pub enum Flags {
        Syn,
        SynAck,
        Ack,
        PshAck,
        FinAck,
        Rst,
        RstAck,
        Fin,
        None,
        Raw(u8),
    }

    /// The sequence number, relative to what the peer knows.
    pub enum Seq {
        /// The core's rcv_nxt (its last ACK), or the peer's next if it has
        /// not ACKed yet.
        Next,
        Plus(u16),
        Minus(u16),
        /// The peer's own send pointer (new data past what was ACKed).
        PeerNext,
        /// A new ISS, above every earlier one (a new incarnation).
        NewIsn,
        Raw(u32),
    }

    /// The acknowledgment number, relative to what the core sent.
    pub enum Ack {
        /// All the core sent (its snd_max).
        All,
        /// What the peer last acknowledged (a duplicate ACK).
        Una,
        /// `una + (snd_max - una) * n / 256`: a partial ACK.
        Partial(u8),
        Plus(u16),
        Minus(u16),
        Raw(u32),
    }

    pub enum Window {
        Full,
        Zero,
        Small(u8),
        Raw(u16),
    }

    pub enum Options {
        /// What a Linux peer sends: MSS, SACK-permitted, timestamps and
        /// window scale on a SYN; timestamps on the rest (once negotiated).
        Usual,
        None,
        List(Vec<Opt>),
    }

    pub enum Opt {
        Mss(u16),
        WindowScale(u8),
        SackPermitted,
        Timestamps(Ts),
        /// Blocks as (offset from the peer's last ACK, length).
        Sack(Vec<(u16, u16)>),
        Nop,
        Eol,
        /// Any kind and length byte (malformed lengths), then `len` bytes.
        Raw { kind: u8, len: u8, fill: u8 },
    }

    pub enum Ts {
        /// The peer's clock, echoing the core's last TSval.
        Fresh,
        /// An older TSval (PAWS).
        Old(u16),
        Raw(u32, u32),
    }

    pub enum Payload {
        None,
        Fill { len: u16, byte: u8 },
        Http(HttpRequest),
        Bytes(Vec<u8>),
    }

    pub enum HttpRequest {
        Get,
        GetClose,
        Head,
        Http10,
        Pipelined,
        /// The first half of a request.
        Partial,
    }

    /// The layers around the payload.
    pub enum Wrap {
        Clean,
        Faulty(Box<Faults>),
    }

    pub struct Faults {
        pub eth: EthDst,
        pub ip_dst: IpDst,
        pub ttl: u8,
        /// IP options (cut to 40 bytes, padded to a multiple of 4).
        pub ip_options: Vec<u8>,
        pub frag: Frag,
        pub length: LenFault,
        pub dont_fragment: bool,
        pub bad_ip_checksum: bool,
        pub bad_l4_checksum: bool,
    }

    pub enum EthDst {
        Us,
        Broadcast,
        Other,
    }

    pub enum IpDst {
        Us,
        Broadcast,
        Other,
    }

    pub enum Frag {
        None,
        /// Two fragments, the first `8 * at` bytes of the payload long
        /// (at least 8); optionally sent in reverse order, or the first
        /// twice.
        Split { at: u8, reverse: bool, duplicate: bool },
        /// One fragment as described.
        Raw { offset: u16, more: bool },
    }

    pub enum LenFault {
        None,
        TotalPlus(u8),
        TotalMinus(u8),
        Ihl(u8),
        /// The frame cut by this many bytes.
        Truncate(u8),
        /// This many bytes of trailer after the datagram.
        Trailer(u8),
    }

    pub struct Datagram {
        pub peer: u8,
        pub src_port: u16,
        pub port: UdpPort,
        pub payload: Payload,
        pub zero_checksum: bool,
        pub wrap: Wrap,
    }

    pub enum UdpPort {
        Echo,
        Sink,
        Other(u16),
    }

    pub struct Icmp {
        pub peer: u8,
        pub message: IcmpMessage,
        pub wrap: Wrap,
    }

    pub enum IcmpMessage {
        EchoRequest { ident: u16, seq: u16, payload: Payload },
        EchoReply { ident: u16, seq: u16 },
        /// Destination unreachable (code 4: fragmentation needed, with
        /// `mtu`), quoting a segment the core sent on `conn`.
        Unreachable { code: u8, mtu: u16, conn: Conn, seq: Ack },
        TimeExceeded { conn: Conn },
        Raw { kind: u8, code: u8, body: Vec<u8> },
    }

    pub struct Arp {
        pub peer: u8,
        pub reply: bool,
        /// Asking for (or answering as) us, else for another address.
        pub target_us: bool,
        /// The sender claims our address.
        pub conflict: bool,
        pub broadcast: bool,
    }
}

/// The peer's side of one 4-tuple, and what it learned of the core's.
#[derive(Clone, Debug, Default)]
struct PeerConn {
    /// The peer's ISS (this incarnation) and its send pointer.
    isn: u32,
    snd_nxt: u32,
    /// The core's side, once it sent a SYN (or SYN-ACK) on this tuple.
    core: Option<CoreSide>,
}

#[derive(Clone, Copy, Debug, Default)]
struct CoreSide {
    /// Everything the core sent ends here (its snd_max).
    snd_max: u32,
    /// The core's last ACK (its rcv_nxt), once it sent one.
    rcv_nxt: Option<u32>,
    /// What the peer last acknowledged.
    una: u32,
    /// The core's last TSval.
    tsval: u32,
    /// It sent timestamps in its SYN.
    timestamps: bool,
}

/// (peer address, peer port, our port).
type Tuple = (Ipv4Addr, u16, u16);

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The peers and the core: runs [`Input`]s step by step, checking the
/// oracles after each.
pub struct Harness {
    pub core: FuzzCore,
    peers: HashMap<Tuple, PeerConn>,
    /// Connections the core opened, in the order first seen.
    active: Vec<Tuple>,
    seq_oracle: SeqOracle,
    counter_oracle: CounterOracle,
    ip_ident: u16,
    /// Every frame the core sent (kept only when asked, for tests).
    pub record: Option<Vec<Vec<u8>>>,
    /// The peers' timestamp clock, in ms.
    clock_ms: u32,
    limits: CoreLimits,
}

impl Harness {
    pub fn new(config: &Config) -> Harness {
        let tcp = TcpConfig {
            max_connections: MAX_CONNECTIONS,
            syn_cache: SYN_CACHE,
            timestamps: config.timestamps,
            sack: config.sack,
            window_scaling: config.window_scaling,
            syncookies: match config.cookies {
                Cookies::Auto => SynCookieMode::Auto,
                Cookies::Always => SynCookieMode::Always,
                Cookies::Never => SynCookieMode::Never,
            },
            rx_buffer: if config.small_buffers { 4096 } else { 65536 },
            tx_buffer: if config.small_buffers { 4096 } else { 65536 },
            nagle: config.nagle,
            delayed_ack: config.delayed_ack.then(|| Duration::from_millis(40)),
            keepalive: config.keepalive.then_some(Keepalive {
                idle: Duration::from_secs(10),
                interval: Duration::from_secs(2),
                probes: 3,
            }),
            time_wait: Duration::from_secs(10),
            fin_wait2_timeout: Duration::from_secs(10),
            max_retries: 6,
            syn_retries: 3,
            ..TcpConfig::default()
        };
        let limits = CoreLimits {
            arp_pending: 16,
            tcp,
            tcp_memory: if config.tight_memory {
                16 * 1024
            } else {
                usize::MAX
            },
            isn: crate::tcp::isn::IsnGenerator::with_secret([1, 2]),
            // Few datagrams (eviction is reachable; a core is cheap to make).
            reassembly: crate::ipv4::frag::ReassemblyConfig {
                max_datagrams: 4,
                max_bytes: 64 * 1024,
                timeout: Duration::from_secs(30),
            },
            ..CoreLimits::default()
        };
        // A small ARP table: it is copied whole on every update.
        let arp = crate::arp::ArpConfig {
            capacity: 16,
            timeout: Duration::from_secs(60),
            ..Default::default()
        };
        let core = FuzzCore::with(limits, arp, &APPS);
        let mut h = Harness {
            core,
            peers: HashMap::new(),
            active: Vec::new(),
            seq_oracle: SeqOracle::default(),
            counter_oracle: CounterOracle::default(),
            ip_ident: 1,
            record: None,
            clock_ms: 1000,
            limits,
        };
        // The peers announce themselves (the core must reach them).
        for p in 0..PEERS.len() {
            let f = arp_frame(p, false, true, false, true);
            h.deliver(&f, Duration::from_millis(1));
        }
        h
    }

    /// Run a whole input on a new core.
    pub fn run(input: &Input) -> Harness {
        let mut h = Harness::new(&input.config);
        for s in input.steps.iter().take(MAX_STEPS) {
            h.step(s);
        }
        h
    }

    /// One step, then the oracles.
    pub fn step(&mut self, step: &Step) {
        match step {
            Step::Tcp(s) => {
                let frames = self.tcp_frames(s);
                for f in &frames {
                    self.deliver(f, Duration::from_millis(1));
                }
            }
            Step::AdvanceMs(ms) => self.advance(Duration::from_millis(u64::from(*ms))),
            Step::AdvanceSecs(s) => self.advance(Duration::from_secs(u64::from(*s))),
            Step::Udp(d) => {
                let peer = usize::from(d.peer) % PEERS.len();
                let port = match d.port {
                    UdpPort::Echo => 7,
                    UdpPort::Sink => 9,
                    UdpPort::Other(p) => p,
                };
                let data = payload_bytes(&d.payload);
                let mut udp = Vec::with_capacity(8 + data.len());
                udp.extend_from_slice(&d.src_port.to_be_bytes());
                udp.extend_from_slice(&port.to_be_bytes());
                udp.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
                udp.extend_from_slice(&[0, 0]);
                udp.extend_from_slice(&data);
                if !d.zero_checksum {
                    let c = l4_checksum(PEERS[peer], OUR_IP, IpProtocol::Udp, &udp);
                    udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
                }
                self.send_ip(peer, IpProtocol::Udp, udp, &d.wrap, 6);
            }
            Step::Icmp(m) => {
                let peer = usize::from(m.peer) % PEERS.len();
                let body = self.icmp_body(&m.message);
                self.send_ip(peer, IpProtocol::Icmp, body, &m.wrap, 2);
            }
            Step::Arp(a) => {
                let p = usize::from(a.peer) % PEERS.len();
                let f = arp_frame(p, a.reply, a.target_us, a.conflict, a.broadcast);
                self.deliver(&f, Duration::from_millis(1));
            }
            Step::Raw(bytes) => {
                let n = bytes.len().min(MTU + 14);
                self.deliver(&bytes[..n], Duration::from_millis(1));
            }
        }
        if let Err(e) = self.counter_oracle.check(self.core.counters()) {
            panic!("oracle: {e}");
        }
    }

    /// Advance the clock by `d` in a few slices, the timers run after each.
    fn advance(&mut self, d: Duration) {
        let total = d.micros();
        let slices = 8u64;
        let mut done = 0;
        for i in 1..=slices {
            let to = total * i / slices;
            if to > done {
                let frames = self.core.run(None, Duration::from_micros(to - done));
                self.clock_ms = self.clock_ms.wrapping_add(((to - done) / 1000) as u32);
                done = to;
                self.observe(frames);
            }
        }
        if total == 0 {
            let frames = self.core.run(None, Duration(0));
            self.observe(frames);
        }
    }

    /// Hand `frame` to the core `dt` after the last event, check the
    /// oracles.
    fn deliver(&mut self, frame: &[u8], dt: Duration) {
        let frames = self.core.run(Some(frame), dt);
        self.clock_ms = self.clock_ms.wrapping_add((dt.micros() / 1000) as u32);
        self.observe(frames);
    }

    /// Check what the core sent, learn from it, check the core.
    fn observe(&mut self, frames: Vec<Vec<u8>>) {
        for f in &frames {
            let e = match check_emitted_frame(f, MTU, OUR_MAC) {
                Ok(e) => e,
                Err(e) => panic!("oracle: an emitted frame is malformed: {e}\nframe: {f:02x?}"),
            };
            if let Emitted::Tcp { ip, tcp, payload } = e {
                if let Err(e) = self.seq_oracle.observe(&ip, &tcp, payload.len()) {
                    panic!("oracle: {e}");
                }
                self.learn(&ip, &tcp, payload.len());
            }
        }
        if let Some(r) = self.record.as_mut() {
            r.extend(frames);
        }
        if let Err(e) = check_core(&self.core, &self.limits) {
            panic!("oracle: {e}");
        }
    }

    /// What a segment the core sent tells the peer.
    fn learn(&mut self, ip: &crate::wire::Ipv4Repr, tcp: &crate::wire::TcpRepr, len: usize) {
        let key = (ip.dst_addr, tcp.dst_port, tcp.src_port);
        let f = tcp.flags;
        if f.contains(TcpFlags::RST) {
            return;
        }
        let end = tcp
            .seq_number
            .wrapping_add(len as u32)
            .wrapping_add(u32::from(f.contains(TcpFlags::SYN)))
            .wrapping_add(u32::from(f.contains(TcpFlags::FIN)));
        let fresh_port = PEER_PORTS.len() as u32 + self.active.len() as u32;
        let p = self.peers.entry(key).or_insert_with(|| {
            let isn = 0x1000_0000u32.wrapping_mul(fresh_port + 1);
            PeerConn {
                isn,
                snd_nxt: isn,
                core: None,
            }
        });
        if f.contains(TcpFlags::SYN) {
            if !f.contains(TcpFlags::ACK) && !self.active.contains(&key) {
                self.active.push(key);
            }
            let o = &tcp.options;
            p.core = Some(CoreSide {
                snd_max: end,
                rcv_nxt: f.contains(TcpFlags::ACK).then_some(tcp.ack_number),
                una: tcp.seq_number,
                tsval: o.timestamps.map_or(0, |t| t.0),
                timestamps: o.timestamps.is_some(),
            });
            return;
        }
        let Some(c) = p.core.as_mut() else {
            return;
        };
        if seq_lt(c.snd_max, end) {
            c.snd_max = end;
        }
        if f.contains(TcpFlags::ACK) {
            c.rcv_nxt = Some(tcp.ack_number);
        }
        if let Some((v, _)) = tcp.options.timestamps {
            c.tsval = v;
        }
    }

    fn tuple(&self, conn: &Conn) -> Tuple {
        match conn {
            Conn::Passive {
                peer,
                port,
                service,
            } => {
                let local = match service {
                    Service::Echo => 7,
                    Service::Http => 80,
                    Service::Closed => 9,
                    Service::Other(p) => *p,
                };
                (
                    PEERS[usize::from(*peer) % PEERS.len()],
                    PEER_PORTS[usize::from(*port) % PEER_PORTS.len()],
                    local,
                )
            }
            Conn::Active(n) => match self.active.get(usize::from(*n)) {
                Some(t) => *t,
                None => (
                    PEERS[1],
                    CLIENT_PEER_PORT,
                    61000u16.wrapping_add(u16::from(*n)),
                ),
            },
        }
    }

    /// Encode a TCP step as the frame(s) to deliver.
    fn tcp_frames(&mut self, s: &Segment) -> Vec<Vec<u8>> {
        let key = self.tuple(&s.conn);
        let n = self.peers.len() as u32;
        let p = self.peers.entry(key).or_insert_with(|| {
            let isn = 0x1000_0000u32.wrapping_mul(n + 1).wrapping_add(0x1234);
            PeerConn {
                isn,
                snd_nxt: isn,
                core: None,
            }
        });
        let flags = match s.flags {
            Flags::Syn => TcpFlags::SYN,
            Flags::SynAck => TcpFlags::SYN | TcpFlags::ACK,
            Flags::Ack => TcpFlags::ACK,
            Flags::PshAck => TcpFlags::PSH | TcpFlags::ACK,
            Flags::FinAck => TcpFlags::FIN | TcpFlags::ACK,
            Flags::Rst => TcpFlags::RST,
            Flags::RstAck => TcpFlags::RST | TcpFlags::ACK,
            Flags::Fin => TcpFlags::FIN,
            Flags::None => TcpFlags(0),
            Flags::Raw(b) => TcpFlags(b),
        };
        let syn = flags.contains(TcpFlags::SYN);
        let core = p.core;
        let expected = core.and_then(|c| c.rcv_nxt).unwrap_or(p.snd_nxt);
        let seq = match s.seq {
            Seq::Next => expected,
            Seq::Plus(d) => expected.wrapping_add(u32::from(d)),
            Seq::Minus(d) => expected.wrapping_sub(u32::from(d)),
            Seq::PeerNext => p.snd_nxt,
            Seq::NewIsn => {
                // Far above the old one: acceptable to TIME_WAIT (RFC 6191).
                let isn = p.snd_nxt.wrapping_add(0x0100_0000);
                p.isn = isn;
                p.snd_nxt = isn;
                isn
            }
            Seq::Raw(v) => v,
        };
        let (snd_max, una) = core.map_or((0, 0), |c| (c.snd_max, c.una));
        let ack = match s.ack {
            Ack::All => snd_max,
            Ack::Una => una,
            Ack::Partial(k) => {
                una.wrapping_add((u64::from(snd_max.wrapping_sub(una)) * u64::from(k) / 256) as u32)
            }
            Ack::Plus(d) => snd_max.wrapping_add(u32::from(d)),
            Ack::Minus(d) => snd_max.wrapping_sub(u32::from(d)),
            Ack::Raw(v) => v,
        };
        let mut data = payload_bytes(&s.payload);
        data.truncate(MAX_PAYLOAD);
        let fin = flags.contains(TcpFlags::FIN);
        let end = seq
            .wrapping_add(data.len() as u32)
            .wrapping_add(u32::from(syn) + u32::from(fin));
        // The peer's state moves with what it sends in order.
        if matches!(s.seq, Seq::Next | Seq::PeerNext | Seq::NewIsn)
            && !flags.contains(TcpFlags::RST)
            && seq_lt(p.snd_nxt, end)
        {
            p.snd_nxt = end;
        }
        if let Some(c) = p.core.as_mut() {
            if flags.contains(TcpFlags::ACK) && !seq_lt(ack, c.una) && !seq_lt(c.snd_max, ack) {
                c.una = ack;
            }
        }
        if flags.contains(TcpFlags::RST) && matches!(s.seq, Seq::Next) {
            // The peer forgets the connection.
            p.core = None;
        }
        if syn && !flags.contains(TcpFlags::ACK) && matches!(s.seq, Seq::NewIsn) {
            p.core = None;
        }
        let window = match s.window {
            Window::Full => 65535,
            Window::Zero => 0,
            Window::Small(w) => u16::from(w),
            Window::Raw(w) => w,
        };
        let tsval = self.clock_ms;
        let opts = encode_options(&s.options, syn, core, tsval);
        let hlen = 20 + opts.len();
        let mut seg = Vec::with_capacity(hlen + data.len());
        seg.extend_from_slice(&key.1.to_be_bytes());
        seg.extend_from_slice(&key.2.to_be_bytes());
        seg.extend_from_slice(&seq.to_be_bytes());
        seg.extend_from_slice(&ack.to_be_bytes());
        let urg = s.urgent.is_some();
        seg.push(((hlen / 4) as u8) << 4);
        seg.push(flags.0 | if urg { TcpFlags::URG.0 } else { 0 });
        seg.extend_from_slice(&window.to_be_bytes());
        seg.extend_from_slice(&[0, 0]);
        seg.extend_from_slice(&s.urgent.unwrap_or(0).to_be_bytes());
        seg.extend_from_slice(&opts);
        seg.extend_from_slice(&data);
        let c = l4_checksum(key.0, OUR_IP, IpProtocol::Tcp, &seg);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        let peer = PEERS.iter().position(|a| *a == key.0).unwrap_or(0);
        self.ip_frames(peer, IpProtocol::Tcp, seg, &s.wrap, 16)
    }

    /// An ICMP message's bytes (header included, checksummed).
    fn icmp_body(&self, m: &IcmpMessage) -> Vec<u8> {
        let mut b = match m {
            IcmpMessage::EchoRequest {
                ident,
                seq,
                payload,
            } => {
                let mut b = vec![8, 0, 0, 0];
                b.extend_from_slice(&ident.to_be_bytes());
                b.extend_from_slice(&seq.to_be_bytes());
                let mut d = payload_bytes(payload);
                d.truncate(MAX_PAYLOAD);
                b.extend_from_slice(&d);
                b
            }
            IcmpMessage::EchoReply { ident, seq } => {
                let mut b = vec![0, 0, 0, 0];
                b.extend_from_slice(&ident.to_be_bytes());
                b.extend_from_slice(&seq.to_be_bytes());
                b
            }
            IcmpMessage::Unreachable {
                code,
                mtu,
                conn,
                seq,
            } => {
                let mut b = vec![3, code % 16, 0, 0, 0, 0];
                b.extend_from_slice(&mtu.to_be_bytes());
                b.extend_from_slice(&self.quote(conn, seq));
                b
            }
            IcmpMessage::TimeExceeded { conn } => {
                let mut b = vec![11, 0, 0, 0, 0, 0, 0, 0];
                b.extend_from_slice(&self.quote(conn, &Ack::Una));
                b
            }
            IcmpMessage::Raw { kind, code, body } => {
                let mut b = vec![*kind, *code, 0, 0];
                b.extend_from_slice(&body[..body.len().min(MAX_PAYLOAD)]);
                b
            }
        };
        let c = !checksum::data(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        b
    }

    /// The IP header and first 8 bytes of a segment the core sent on
    /// `conn`, with sequence number `seq` (relative as an ACK is).
    fn quote(&self, conn: &Conn, seq: &Ack) -> Vec<u8> {
        let key = self.tuple(conn);
        let c = self
            .peers
            .get(&key)
            .and_then(|p| p.core)
            .unwrap_or_default();
        let s = match seq {
            Ack::All => c.snd_max,
            Ack::Una => c.una,
            Ack::Partial(k) => c.una.wrapping_add(
                (u64::from(c.snd_max.wrapping_sub(c.una)) * u64::from(*k) / 256) as u32,
            ),
            Ack::Plus(d) => c.una.wrapping_add(u32::from(*d)),
            Ack::Minus(d) => c.una.wrapping_sub(u32::from(*d)),
            Ack::Raw(v) => *v,
        };
        let mut tcp = Vec::with_capacity(8);
        tcp.extend_from_slice(&key.2.to_be_bytes());
        tcp.extend_from_slice(&key.1.to_be_bytes());
        tcp.extend_from_slice(&s.to_be_bytes());
        let mut ip = ipv4_header(OUR_IP, key.0, IpProtocol::Tcp, 20 + 1400, 0, 64, &[]);
        ip.extend_from_slice(&tcp);
        ip
    }

    fn send_ip(&mut self, peer: usize, proto: IpProtocol, body: Vec<u8>, wrap: &Wrap, ck: usize) {
        let frames = self.ip_frames(peer, proto, body, wrap, ck);
        for f in &frames {
            self.deliver(f, Duration::from_millis(1));
        }
    }

    /// Wrap an L4 `body` in IPv4 and Ethernet, with the faults asked for;
    /// `ck` is where the L4 checksum is (to spoil it).
    fn ip_frames(
        &mut self,
        peer: usize,
        proto: IpProtocol,
        mut body: Vec<u8>,
        wrap: &Wrap,
        ck: usize,
    ) -> Vec<Vec<u8>> {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let ident = self.ip_ident;
        let src = PEERS[peer];
        let Wrap::Faulty(f) = wrap else {
            let ip = ipv4_header(src, OUR_IP, proto, body.len(), ident, 64, &[]);
            return vec![eth_frame(peer, &OUR_MAC, &ip, &body)];
        };
        if f.bad_l4_checksum && body.len() > ck + 1 {
            body[ck] ^= 0x5a;
        }
        let dst = match f.ip_dst {
            IpDst::Us => OUR_IP,
            IpDst::Broadcast => Ipv4Addr::new(198, 18, 0, 255),
            IpDst::Other => Ipv4Addr::new(198, 18, 0, 99),
        };
        let mac = match f.eth {
            EthDst::Us => OUR_MAC,
            EthDst::Broadcast => EthernetAddress::BROADCAST,
            EthDst::Other => EthernetAddress([2, 0, 0, 0, 9, 9]),
        };
        let mut opts = f.ip_options.clone();
        opts.truncate(40);
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        let df = if f.dont_fragment { 0x4000 } else { 0 };
        let pieces: Vec<(u16, Vec<u8>)> = match f.frag {
            Frag::None => vec![(df, body)],
            Frag::Split {
                at,
                reverse,
                duplicate,
            } => {
                let at = (usize::from(at.max(1)) * 8).min(body.len() & !7);
                if at == 0 || at >= body.len() {
                    vec![(df, body)]
                } else {
                    let first = (0x2000, body[..at].to_vec());
                    let second = ((at / 8) as u16, body[at..].to_vec());
                    let mut v = vec![first.clone(), second];
                    if duplicate {
                        v.insert(1, first);
                    }
                    if reverse {
                        v.reverse();
                    }
                    v
                }
            }
            Frag::Raw { offset, more } => {
                vec![((offset & 0x1fff) | if more { 0x2000 } else { 0 } | df, body)]
            }
        };
        pieces
            .into_iter()
            .map(|(frag, data)| {
                let mut ip = ipv4_header(src, dst, proto, data.len(), ident, f.ttl, &opts);
                ip[6..8].copy_from_slice(&frag.to_be_bytes());
                match f.length {
                    LenFault::TotalPlus(d) => {
                        let t = u16::from_be_bytes([ip[2], ip[3]]).wrapping_add(u16::from(d));
                        ip[2..4].copy_from_slice(&t.to_be_bytes());
                    }
                    LenFault::TotalMinus(d) => {
                        let t = u16::from_be_bytes([ip[2], ip[3]]).wrapping_sub(u16::from(d));
                        ip[2..4].copy_from_slice(&t.to_be_bytes());
                    }
                    LenFault::Ihl(v) => ip[0] = 0x40 | (v & 0xf),
                    _ => {}
                }
                ip[10..12].copy_from_slice(&[0, 0]);
                let mut c = !checksum::data(&ip);
                if f.bad_ip_checksum {
                    c ^= 0x0101;
                }
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                let mut fr = eth_frame(peer, &mac, &ip, &data);
                match f.length {
                    LenFault::Truncate(n) => {
                        let keep = fr.len().saturating_sub(usize::from(n));
                        fr.truncate(keep.max(1));
                    }
                    LenFault::Trailer(n) => fr.resize(fr.len() + usize::from(n), 0xee),
                    _ => {}
                }
                fr
            })
            .collect()
    }

    /// The states of the TCP connections in the table (tests).
    pub fn states(&self) -> Vec<crate::tcp::State> {
        let t = self.core.core().tcp_table();
        t.indices()
            .into_iter()
            .filter_map(|i| t.get(i).map(|c| c.state))
            .collect()
    }

    /// The state of the connection on `conn`, if the core has one.
    pub fn state(&self, conn: &Conn) -> Option<crate::tcp::State> {
        let (addr, port, local) = self.tuple(conn);
        let t = self.core.core().tcp_table();
        let i = t.lookup(&crate::flow::FlowKey {
            local_port: local,
            remote: std::net::SocketAddrV4::new(addr, port),
        })?;
        match (t.get(i), t.time_wait(i)) {
            (Some(c), _) => Some(c.state),
            (None, Some(_)) => Some(crate::tcp::State::TimeWait),
            _ => None,
        }
    }

    /// Connections the core opened, seen so far.
    pub fn active(&self) -> usize {
        self.active.len()
    }
}

/// A payload's bytes.
fn payload_bytes(p: &Payload) -> Vec<u8> {
    match p {
        Payload::None => Vec::new(),
        Payload::Fill { len, byte } => vec![*byte; usize::from(*len).min(MAX_PAYLOAD)],
        Payload::Bytes(b) => b.clone(),
        Payload::Http(r) => match r {
            HttpRequest::Get => b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            HttpRequest::GetClose => b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            HttpRequest::Head => b"HEAD /x HTTP/1.1\r\n\r\n".to_vec(),
            HttpRequest::Http10 => b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            HttpRequest::Pipelined => {
                b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyGET /c HTTP/1.1\r\n\r\n"
                    .to_vec()
            }
            HttpRequest::Partial => b"GET /abc HTTP/1.1\r\nHo".to_vec(),
        },
    }
}

/// TCP options, padded to a multiple of 4 and cut to 40 bytes.
fn encode_options(o: &Options, syn: bool, core: Option<CoreSide>, tsval: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(40);
    let echo = core.map_or(0, |c| c.tsval);
    match o {
        Options::None => {}
        Options::Usual => {
            if syn {
                b.extend_from_slice(&[2, 4, 0x05, 0xb4, 4, 2, 8, 10]);
                b.extend_from_slice(&tsval.to_be_bytes());
                b.extend_from_slice(&echo.to_be_bytes());
                b.extend_from_slice(&[1, 3, 3, 7]);
            } else if !matches!(core, Some(c) if !c.timestamps) {
                b.extend_from_slice(&[1, 1, 8, 10]);
                b.extend_from_slice(&tsval.to_be_bytes());
                b.extend_from_slice(&echo.to_be_bytes());
            }
        }
        Options::List(list) => {
            for opt in list {
                match opt {
                    Opt::Mss(m) => {
                        b.extend_from_slice(&[2, 4]);
                        b.extend_from_slice(&m.to_be_bytes());
                    }
                    Opt::WindowScale(s) => b.extend_from_slice(&[3, 3, *s]),
                    Opt::SackPermitted => b.extend_from_slice(&[4, 2]),
                    Opt::Timestamps(t) => {
                        let (v, e) = match t {
                            Ts::Fresh => (tsval, echo),
                            Ts::Old(d) => (tsval.wrapping_sub(u32::from(*d) << 8), echo),
                            Ts::Raw(v, e) => (*v, *e),
                        };
                        b.extend_from_slice(&[8, 10]);
                        b.extend_from_slice(&v.to_be_bytes());
                        b.extend_from_slice(&e.to_be_bytes());
                    }
                    Opt::Sack(blocks) => {
                        let base = core.map_or(0, |c| c.una);
                        let n = blocks.len().min(4);
                        b.extend_from_slice(&[5, (2 + 8 * n) as u8]);
                        for (off, len) in &blocks[..n] {
                            let l = base.wrapping_add(u32::from(*off));
                            b.extend_from_slice(&l.to_be_bytes());
                            b.extend_from_slice(&l.wrapping_add(u32::from(*len)).to_be_bytes());
                        }
                    }
                    Opt::Nop => b.push(1),
                    Opt::Eol => b.push(0),
                    Opt::Raw { kind, len, fill } => {
                        b.extend_from_slice(&[*kind, *len]);
                        b.resize(b.len() + usize::from(*len % 40), *fill);
                    }
                }
                if b.len() >= 40 {
                    break;
                }
            }
        }
    }
    b.truncate(40);
    while b.len() % 4 != 0 {
        b.push(0);
    }
    b
}

fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, seg: &[u8]) -> u16 {
    !checksum::combine(&[
        checksum::pseudo_header(&src, &dst, proto, seg.len() as u32),
        checksum::data(seg),
    ])
}

/// An IPv4 header (checksummed) for `payload_len` bytes of `proto`.
fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProtocol,
    payload_len: usize,
    ident: u16,
    ttl: u8,
    options: &[u8],
) -> Vec<u8> {
    let hlen = 20 + options.len();
    let mut h = Vec::with_capacity(hlen);
    h.push(0x40 | (hlen / 4) as u8);
    h.push(0);
    h.extend_from_slice(&((hlen + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&ident.to_be_bytes());
    h.extend_from_slice(&[0, 0, ttl, proto.into(), 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let c = !checksum::data(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn eth_frame(peer: usize, dst: &EthernetAddress, ip: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len() + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&peer_mac(peer).0);
    f.extend_from_slice(&[8, 0]);
    f.extend_from_slice(ip);
    f.extend_from_slice(payload);
    f
}

/// An ARP request or reply from peer `p`.
fn arp_frame(p: usize, reply: bool, target_us: bool, conflict: bool, broadcast: bool) -> Vec<u8> {
    let mac = peer_mac(p);
    let dst = if broadcast {
        EthernetAddress::BROADCAST
    } else {
        OUR_MAC
    };
    let sender = if conflict { OUR_IP } else { PEERS[p] };
    let target = if target_us {
        OUR_IP
    } else {
        Ipv4Addr::new(198, 18, 0, 77)
    };
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, if reply { 2 } else { 1 }]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&if reply { OUR_MAC.0 } else { [0; 6] });
    f.extend_from_slice(&target.octets());
    f
}

/// The fuzz target's entry: the first byte picks a script to run first
/// (none, or one of [`scripts::all`]: a connection already open, or
/// closed, or attacked), the rest is an [`Input`] by `arbitrary`, its
/// configuration replacing the script's. So every state is a few
/// mutations from any seed.
#[cfg(any(test, feature = "fuzzing"))]
pub fn run_bytes(data: &[u8]) {
    use arbitrary::{Arbitrary, Unstructured};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let Ok(mut input) = Input::arbitrary(&mut u) else {
        return;
    };
    let mut scripts = scripts::all();
    let pick = usize::from(pick) % (scripts.len() + 1);
    if pick < scripts.len() {
        let mut steps = scripts.swap_remove(pick).1.steps;
        steps.extend(input.steps);
        input.steps = steps;
    }
    Harness::run(&input);
}

/// Scripted inputs: the seeds of the corpus, and the unit tests' cases.
pub mod scripts {
    use super::*;

    pub fn usual_config() -> Config {
        Config {
            timestamps: true,
            sack: true,
            window_scaling: true,
            cookies: Cookies::Auto,
            small_buffers: false,
            nagle: true,
            delayed_ack: true,
            keepalive: false,
            tight_memory: false,
        }
    }

    pub fn seg(conn: Conn, flags: Flags, seq: Seq, ack: Ack, payload: Payload) -> Step {
        Step::Tcp(Segment {
            conn,
            flags,
            seq,
            ack,
            window: Window::Full,
            options: Options::Usual,
            payload,
            urgent: None,
            wrap: Wrap::Clean,
        })
    }

    pub fn passive(peer: u8, service: Service) -> Conn {
        Conn::Passive {
            peer,
            port: 0,
            service,
        }
    }

    /// The peer acknowledges everything, sends its FIN, and `ms` later
    /// acknowledges the core's FIN.
    pub fn peer_closes(conn: Conn, ms: u16) -> [Step; 4] {
        [
            seg(conn.clone(), Flags::Ack, Seq::Next, Ack::All, Payload::None),
            seg(
                conn.clone(),
                Flags::FinAck,
                Seq::Next,
                Ack::All,
                Payload::None,
            ),
            Step::AdvanceMs(ms),
            seg(conn, Flags::Ack, Seq::Next, Ack::All, Payload::None),
        ]
    }

    /// The three-way handshake to `conn` (a passive open).
    pub fn handshake(conn: &Conn) -> Vec<Step> {
        vec![
            seg(
                conn.clone(),
                Flags::Syn,
                Seq::NewIsn,
                Ack::Raw(0),
                Payload::None,
            ),
            seg(conn.clone(), Flags::Ack, Seq::Next, Ack::All, Payload::None),
        ]
    }

    /// An HTTP request and its response ACKed, then both sides close.
    pub fn http_exchange() -> Input {
        let c = passive(0, Service::Http);
        let mut steps = handshake(&c);
        steps.push(seg(
            c.clone(),
            Flags::PshAck,
            Seq::Next,
            Ack::All,
            Payload::Http(HttpRequest::GetClose),
        ));
        steps.push(Step::AdvanceMs(50));
        steps.push(seg(
            c.clone(),
            Flags::Ack,
            Seq::Next,
            Ack::All,
            Payload::None,
        ));
        steps.push(Step::AdvanceMs(50));
        steps.extend(peer_closes(c, 50));
        Input {
            config: usual_config(),
            steps,
        }
    }

    /// Data through tcp-echo, echoed and ACKed; the peer closes, the core
    /// follows.
    pub fn echo_exchange() -> Input {
        let c = passive(1, Service::Echo);
        let mut steps = handshake(&c);
        for _ in 0..3 {
            steps.push(seg(
                c.clone(),
                Flags::PshAck,
                Seq::Next,
                Ack::All,
                Payload::Fill {
                    len: 1000,
                    byte: b'e',
                },
            ));
            steps.push(Step::AdvanceMs(10));
        }
        steps.extend(peer_closes(c, 10));
        Input {
            config: usual_config(),
            steps,
        }
    }

    /// The tcp-client app's connection answered and served as an echo.
    pub fn active_open() -> Input {
        let c = Conn::Active(0);
        let mut steps = vec![Step::AdvanceMs(5)];
        steps.push(seg(
            c.clone(),
            Flags::SynAck,
            Seq::NewIsn,
            Ack::All,
            Payload::None,
        ));
        for _ in 0..4 {
            steps.push(Step::AdvanceMs(5));
            steps.push(seg(
                c.clone(),
                Flags::Ack,
                Seq::Next,
                Ack::All,
                Payload::None,
            ));
        }
        Input {
            config: usual_config(),
            steps,
        }
    }

    /// Attacks on an established connection: RST and SYN in the window,
    /// old duplicates, overlapping data, a zero window, then time.
    pub fn attacks() -> Input {
        let c = passive(2, Service::Echo);
        let mut steps = handshake(&c);
        let mut s = |flags, seq, ack, payload| steps.push(seg(c.clone(), flags, seq, ack, payload));
        s(
            Flags::PshAck,
            Seq::Plus(100),
            Ack::All,
            Payload::Fill { len: 200, byte: 1 },
        );
        s(
            Flags::PshAck,
            Seq::Next,
            Ack::All,
            Payload::Fill { len: 150, byte: 2 },
        );
        s(
            Flags::Ack,
            Seq::Minus(1000),
            Ack::Una,
            Payload::Fill { len: 10, byte: 3 },
        );
        s(Flags::Syn, Seq::Plus(5), Ack::Raw(0), Payload::None);
        s(Flags::Rst, Seq::Plus(1), Ack::Raw(0), Payload::None);
        let mut steps2 = steps;
        steps2.push(Step::Tcp(Segment {
            conn: c.clone(),
            flags: Flags::Ack,
            seq: Seq::Next,
            ack: Ack::All,
            window: Window::Zero,
            options: Options::Usual,
            payload: Payload::None,
            urgent: None,
            wrap: Wrap::Clean,
        }));
        steps2.push(seg(
            c.clone(),
            Flags::PshAck,
            Seq::Next,
            Ack::Una,
            Payload::Fill { len: 300, byte: 4 },
        ));
        steps2.push(Step::AdvanceSecs(3));
        steps2.push(seg(c, Flags::Ack, Seq::Next, Ack::All, Payload::None));
        steps2.push(Step::AdvanceSecs(70));
        Input {
            config: usual_config(),
            steps: steps2,
        }
    }

    /// Every script, for the corpus and the tests.
    pub fn all() -> Vec<(&'static str, Input)> {
        vec![
            ("http_exchange", http_exchange()),
            ("echo_exchange", echo_exchange()),
            ("active_open", active_open()),
            ("attacks", attacks()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::scripts::*;
    use super::*;
    use crate::tcp::State;
    use proptest::prelude::*;

    fn tcp_payloads(h: &Harness, from_port: u16) -> Vec<u8> {
        let mut out = Vec::new();
        for f in h.record.as_ref().unwrap() {
            if let Ok(Emitted::Tcp { tcp, payload, .. }) = check_emitted_frame(f, MTU, OUR_MAC) {
                if tcp.src_port == from_port {
                    out.extend_from_slice(payload);
                }
            }
        }
        out
    }

    fn run_recorded(input: &Input, upto: usize) -> Harness {
        let mut h = Harness::new(&input.config);
        h.record = Some(Vec::new());
        for s in &input.steps[..upto] {
            h.step(s);
        }
        h
    }

    #[test]
    fn a_scripted_handshake_reaches_established_and_http_answers() {
        let input = http_exchange();
        let c = passive(0, Service::Http);
        let h = run_recorded(&input, 1);
        assert_eq!(h.state(&c), None, "in the SYN cache");
        let h = run_recorded(&input, 2);
        assert_eq!(h.state(&c), Some(State::Established));
        let h = run_recorded(&input, input.steps.len());
        let body = tcp_payloads(&h, 80);
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("HTTP/1.1 200"), "{text:.80}");
        assert!(body.len() > 3000, "{}", body.len());
        // The core closed first (Connection: close): TIME_WAIT.
        assert_eq!(h.state(&c), Some(State::TimeWait));
    }

    #[test]
    fn a_handshake_through_a_syn_cookie_reaches_established() {
        let mut input = http_exchange();
        input.config.cookies = Cookies::Always;
        let c = passive(0, Service::Http);
        let h = run_recorded(&input, 2);
        assert_eq!(h.core.counters().tcp_syncookies_ok, 1);
        assert_eq!(h.state(&c), Some(State::Established));
        let h = run_recorded(&input, input.steps.len());
        assert!(tcp_payloads(&h, 80).starts_with(b"HTTP/1.1 200"));
    }

    #[test]
    fn data_goes_through_tcp_echo_and_both_sides_close() {
        let input = echo_exchange();
        let h = run_recorded(&input, input.steps.len());
        let echoed = tcp_payloads(&h, 7);
        assert_eq!(echoed.len(), 3000);
        assert!(echoed.iter().all(|b| *b == b'e'));
        assert_eq!(h.state(&passive(1, Service::Echo)), None);
    }

    #[test]
    fn the_tcp_client_connection_is_answered_and_carries_data() {
        let input = active_open();
        let h = run_recorded(&input, input.steps.len());
        assert_eq!(h.active(), 2);
        // It sent its 3000 bytes and its FIN, all ACKed.
        assert_eq!(h.state(&Conn::Active(0)), Some(State::FinWait2));
        assert_eq!(h.state(&Conn::Active(1)), Some(State::SynSent));
        assert_eq!(tcp_payloads(&h, h.active[0].2).len(), 3000);
    }

    #[test]
    fn scripted_attacks_hold() {
        let input = attacks();
        Harness::run(&input);
    }

    #[test]
    fn faulty_wrappers_and_other_protocols_hold() {
        let faults = Faults {
            eth: EthDst::Us,
            ip_dst: IpDst::Us,
            ttl: 1,
            ip_options: vec![1, 1, 1, 1],
            frag: Frag::Split {
                at: 2,
                reverse: true,
                duplicate: true,
            },
            length: LenFault::None,
            dont_fragment: false,
            bad_ip_checksum: false,
            bad_l4_checksum: false,
        };
        let mut input = echo_exchange();
        input.steps.insert(
            2,
            Step::Icmp(Icmp {
                peer: 0,
                message: IcmpMessage::EchoRequest {
                    ident: 1,
                    seq: 2,
                    payload: Payload::Fill { len: 100, byte: 9 },
                },
                wrap: Wrap::Faulty(Box::new(faults.clone())),
            }),
        );
        input.steps.insert(
            2,
            Step::Udp(Datagram {
                peer: 1,
                src_port: 999,
                port: UdpPort::Echo,
                payload: Payload::Fill { len: 40, byte: 7 },
                zero_checksum: false,
                wrap: Wrap::Faulty(Box::new(faults)),
            }),
        );
        let h = run_recorded(&input, input.steps.len());
        // The echo reply and the UDP echo came back, reassembled.
        let kinds: Vec<_> = h
            .record
            .as_ref()
            .unwrap()
            .iter()
            .filter(|f| f.len() > 23 && f[12..14] == [8, 0])
            .map(|f| f[23])
            .collect();
        assert!(kinds.contains(&1) && kinds.contains(&17), "{kinds:?}");
    }

    /// The oracle sees sequence numbers go backwards (a core that did so
    /// would be caught).
    #[test]
    #[should_panic(expected = "oracle")]
    fn a_sequence_regression_is_caught() {
        let input = echo_exchange();
        let mut h = run_recorded(&input, 3);
        let last = h
            .record
            .as_ref()
            .unwrap()
            .iter()
            .rev()
            .find(|f| f.len() > 54 && f[23] == 6)
            .cloned()
            .unwrap();
        // The same segment with its ACK number lowered, checksums redone.
        let mut f = last;
        let ack = u32::from_be_bytes([f[42], f[43], f[44], f[45]]).wrapping_sub(10);
        f[42..46].copy_from_slice(&ack.to_be_bytes());
        f[50..52].copy_from_slice(&[0, 0]);
        let (src, dst) = (OUR_IP, Ipv4Addr::new(f[30], f[31], f[32], f[33]));
        let c = l4_checksum(src, dst, IpProtocol::Tcp, &f[34..]);
        f[50..52].copy_from_slice(&c.to_be_bytes());
        h.observe(vec![f]);
    }

    /// Every crash found so far (kept in the corpus as `crash-*`) runs
    /// clean now.
    #[test]
    fn the_kept_crashes_hold() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus/tcp_frames");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("the corpus") {
            let path = e.expect("an entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("crash-") {
                run_bytes(&std::fs::read(&path).expect("readable"));
                n += 1;
            }
        }
        assert!(n >= 2, "{n} crash inputs in {dir}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Random inputs (as libFuzzer's bytes become them) never violate
        /// an oracle; the scripts' steps mixed in reach the deeper states.
        #[test]
        fn random_inputs_hold_the_oracles(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            run_bytes(&bytes);
        }
    }
}
