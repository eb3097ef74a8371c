//! Built-in applications: `udp-echo:PORT`, `udp-sink:PORT`,
//! `tcp-echo:PORT`, `http:PORT[:BODY_BYTES]`, and the clients
//! `tcp-client:IP:PORT:BYTES[:CONNS]`, `udp-client:IP:PORT:COUNT[:FLOWS[:SIZE]]`
//! and the send-only `tcp-send:IP:PORT:BYTES[:CONNS[:REPEAT[:SAMPLE_MS]]]`,
//! which measures flow completion times against a sink (perf/wan_tcp.py)
//! and can print its connections' congestion windows over time.

use super::http::{self, Method, Parse};
use super::{App, AppFactory, BindError, ConnId, CoreInfo, Datagram, NetCtx, TcpEvent};
use crate::hash::FlowMap as HashMap;
use crate::shard::ctx::MAX_UDP_PAYLOAD;
use crate::time::{Duration, Instant};
use hdrhistogram::Histogram;
use std::net::SocketAddrV4;
use std::str::FromStr;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    /// Send each datagram back to where it came from.
    UdpEcho,
    /// Count each datagram and drop it.
    UdpSink,
    /// Send every byte of every connection back.
    TcpEcho,
    /// HTTP/1.1 with keep-alive, one fixed body for every GET.
    Http,
    /// Open connections to a peer, send a pattern, check it comes back.
    TcpClient,
    /// Open connected UDP sockets to an echo peer, send numbered
    /// datagrams one at a time on each, check each comes back.
    UdpClient,
    /// Open connections to a sink, send a pattern and close, timing each
    /// transfer.
    TcpSend,
}

/// The HTTP app's body size when none is given.
pub const DEFAULT_HTTP_BODY: usize = 1024;
/// The largest body the HTTP app serves.
pub const MAX_HTTP_BODY: usize = 1 << 30;

/// A built-in application chosen on the command line, `NAME:PORT`, or
/// `http:PORT:BODY_BYTES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub kind: AppKind,
    pub port: u16,
    /// The HTTP body's size (http), bytes per connection (tcp-client), or
    /// datagrams per flow (udp-client).
    pub body: usize,
    /// The peer (clients only).
    pub peer: Option<SocketAddrV4>,
    /// Connections or flows to open (clients only).
    pub conns: usize,
    /// Bytes in each datagram (udp-client).
    pub size: usize,
    /// Transfers each of the `conns` connections makes, one after the
    /// other on a new connection each time (tcp-send; 1 for the others).
    pub repeat: usize,
    /// Print each connection's congestion window, RTT and RTO this often,
    /// in milliseconds (tcp-send; 0: never).
    pub sample_ms: u64,
}

/// udp-client's datagram size when none is given.
pub const DEFAULT_UDP_CLIENT_SIZE: usize = 64;
/// The smallest udp-client datagram: the flow's port and sequence number.
const MIN_UDP_CLIENT_SIZE: usize = 10;

impl FromStr for AppSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("tcp-client:") {
            return parse_client(AppKind::TcpClient, rest);
        }
        if let Some(rest) = s.strip_prefix("udp-client:") {
            return parse_client(AppKind::UdpClient, rest);
        }
        if let Some(rest) = s.strip_prefix("tcp-send:") {
            return parse_client(AppKind::TcpSend, rest);
        }
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or("");
        let port = parts
            .next()
            .ok_or_else(|| "expected NAME:PORT, e.g. udp-echo:7 or http:80:1024".to_string())?;
        let kind = match name {
            "udp-echo" => AppKind::UdpEcho,
            "udp-sink" => AppKind::UdpSink,
            "tcp-echo" => AppKind::TcpEcho,
            "http" => AppKind::Http,
            other => {
                return Err(format!(
                    "unknown application '{other}' (udp-echo, udp-sink, tcp-echo, http, tcp-client, udp-client, tcp-send)"
                ))
            }
        };
        let port: u16 = port.parse().map_err(|_| format!("bad port '{port}'"))?;
        if port == 0 {
            return Err("port 0 cannot be bound".into());
        }
        let body = match (kind, parts.next()) {
            (AppKind::Http, Some(b)) => {
                let n: usize = b.parse().map_err(|_| format!("bad body size '{b}'"))?;
                if n > MAX_HTTP_BODY {
                    return Err(format!("body size {n} is over {MAX_HTTP_BODY}"));
                }
                n
            }
            (AppKind::Http, None) => DEFAULT_HTTP_BODY,
            (_, None) => 0,
            (_, Some(_)) => return Err(format!("'{s}': only http takes a size")),
        };
        if parts.next().is_some() {
            return Err(format!("'{s}': too many fields"));
        }
        Ok(AppSpec {
            kind,
            port,
            body,
            peer: None,
            conns: 0,
            size: 0,
            repeat: 1,
            sample_ms: 0,
        })
    }
}

/// `IP:PORT:BYTES[:CONNS]` (tcp-client), `IP:PORT:COUNT[:FLOWS[:SIZE]]`
/// (udp-client), `IP:PORT:BYTES[:CONNS[:REPEAT[:SAMPLE_MS]]]` (tcp-send).
fn parse_client(kind: AppKind, s: &str) -> Result<AppSpec, String> {
    let f: Vec<&str> = s.split(':').collect();
    let most = match kind {
        AppKind::TcpClient => 4,
        AppKind::TcpSend => 6,
        _ => 5,
    };
    if !(3..=most).contains(&f.len()) {
        return Err(match kind {
            AppKind::UdpClient => "expected udp-client:IP:PORT:COUNT[:FLOWS[:SIZE]]".into(),
            AppKind::TcpSend => {
                "expected tcp-send:IP:PORT:BYTES[:CONNS[:REPEAT[:SAMPLE_MS]]]".into()
            }
            _ => "expected tcp-client:IP:PORT:BYTES[:CONNS]".into(),
        });
    }
    let ip = f[0]
        .parse()
        .map_err(|_| format!("bad address '{}'", f[0]))?;
    let port: u16 = f[1].parse().map_err(|_| format!("bad port '{}'", f[1]))?;
    if port == 0 {
        return Err("port 0 cannot be connected to".into());
    }
    let body: usize = f[2].parse().map_err(|_| format!("bad size '{}'", f[2]))?;
    let conns: usize = match f.get(3) {
        Some(c) => c.parse().map_err(|_| format!("bad count '{c}'"))?,
        None => 1,
    };
    if conns == 0 || conns > 65536 {
        return Err("connections must be 1..=65536".into());
    }
    if kind == AppKind::TcpSend {
        let repeat: usize = match f.get(4) {
            Some(r) => r.parse().map_err(|_| format!("bad repeat count '{r}'"))?,
            None => 1,
        };
        if !(1..=MAX_TCP_SEND_REPEAT).contains(&repeat) {
            return Err(format!("repeat count must be 1..={MAX_TCP_SEND_REPEAT}"));
        }
        let sample_ms: u64 = match f.get(5) {
            Some(m) => m
                .parse()
                .map_err(|_| format!("bad sample interval '{m}'"))?,
            None => 0,
        };
        if sample_ms > MAX_TCP_SEND_SAMPLE_MS {
            return Err(format!(
                "sample interval must be 0..={MAX_TCP_SEND_SAMPLE_MS} ms"
            ));
        }
        return Ok(AppSpec {
            kind,
            port,
            body,
            peer: Some(SocketAddrV4::new(ip, port)),
            conns,
            size: 0,
            repeat,
            sample_ms,
        });
    }
    let size: usize = match f.get(4) {
        Some(z) => z.parse().map_err(|_| format!("bad datagram size '{z}'"))?,
        None => DEFAULT_UDP_CLIENT_SIZE,
    };
    if !(MIN_UDP_CLIENT_SIZE..=MAX_UDP_PAYLOAD).contains(&size) {
        return Err(format!(
            "datagram size must be {MIN_UDP_CLIENT_SIZE}..={MAX_UDP_PAYLOAD}"
        ));
    }
    Ok(AppSpec {
        kind,
        port,
        body,
        peer: Some(SocketAddrV4::new(ip, port)),
        conns,
        size,
        repeat: 1,
        sample_ms: 0,
    })
}

impl AppSpec {
    /// A factory making one instance per core.
    pub fn factory(self) -> AppFactory {
        Arc::new(move |core: &CoreInfo| -> Box<dyn App> {
            // Core i opens connections i, i + N, i + 2N, ...
            let mine = (0..self.conns)
                .filter(|j| j % core.count == core.index)
                .count();
            let peer = self
                .peer
                .unwrap_or(SocketAddrV4::new([0; 4].into(), self.port));
            match self.kind {
                AppKind::TcpClient => Box::new(TcpClient::new(peer, self.body, mine)),
                AppKind::TcpSend => Box::new(
                    TcpSender::new(peer, self.body, mine, self.repeat)
                        .sampling(Duration::from_millis(self.sample_ms), core.index),
                ),
                AppKind::UdpClient => Box::new(UdpClient::new(peer, self.body, mine, self.size)),
                AppKind::UdpEcho => Box::new(UdpEcho::new(self.port)),
                AppKind::UdpSink => Box::new(UdpSink::new(self.port)),
                AppKind::TcpEcho => Box::new(TcpEcho::new(self.port)),
                AppKind::Http => Box::new(HttpServer::new(self.port, self.body)),
            }
        })
    }
}

/// Echoes every datagram back to its sender, from the port it arrived on.
#[derive(Debug)]
pub struct UdpEcho {
    port: u16,
    echoed: u64,
    failed: u64,
}

impl UdpEcho {
    pub fn new(port: u16) -> Self {
        UdpEcho {
            port,
            echoed: 0,
            failed: 0,
        }
    }
}

impl App for UdpEcho {
    fn name(&self) -> String {
        format!("udp-echo:{}", self.port)
    }
    fn start(&mut self, net: &mut dyn NetCtx) -> Result<(), BindError> {
        net.bind_udp(self.port)
    }
    fn on_datagram(&mut self, net: &mut dyn NetCtx, d: &Datagram<'_>) {
        self.answer(net, d)
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("echoed", self.echoed), ("failed", self.failed)]
    }
    fn as_udp_echo(&mut self) -> Option<&mut UdpEcho> {
        Some(self)
    }
}

impl UdpEcho {
    /// `on_datagram`, for any context: the stack calls it with its own
    /// (see [`App::as_udp_echo`]), so that it and the send inline.
    #[inline(always)]
    pub fn answer<N: NetCtx + ?Sized>(&mut self, net: &mut N, d: &Datagram<'_>) {
        match net.send_udp(d.dst.port(), d.src, d.payload) {
            Ok(()) => self.echoed += 1,
            Err(_) => self.failed += 1,
        }
    }

    /// A datagram the stack echoed for it, as `answer` would have by a
    /// `send_udp` that succeeded (the stack's in-place echo).
    #[inline(always)]
    pub fn count_echoed(&mut self) {
        self.echoed += 1;
    }
}

/// Counts datagrams and bytes, and drops them.
#[derive(Debug)]
pub struct UdpSink {
    port: u16,
    datagrams: u64,
    bytes: u64,
}

impl UdpSink {
    pub fn new(port: u16) -> Self {
        UdpSink {
            port,
            datagrams: 0,
            bytes: 0,
        }
    }
}

impl App for UdpSink {
    fn name(&self) -> String {
        format!("udp-sink:{}", self.port)
    }
    fn start(&mut self, net: &mut dyn NetCtx) -> Result<(), BindError> {
        net.bind_udp(self.port)
    }
    fn on_datagram(&mut self, _net: &mut dyn NetCtx, d: &Datagram<'_>) {
        self.datagrams += 1;
        self.bytes += d.payload.len() as u64;
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("datagrams", self.datagrams), ("bytes", self.bytes)]
    }
}

/// Scratch for moving bytes between a connection's buffers.
const CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct EchoConn {
    /// Read but not yet taken by the send buffer.
    pending: Vec<u8>,
    peer_closed: bool,
}

/// Per-connection state of an application, found by the connection's
/// table index (and checked against its generation): a look-up is an index
/// and a compare, where a map hashes the id on every event (make pathcost:
/// one look-up per echo). Grows to the highest index seen; the table
/// reuses freed slots, so that stays near the connections open at once.
struct ConnSlab<T> {
    slots: Vec<Option<(u32, T)>>,
    len: usize,
}

impl<T> ConnSlab<T> {
    fn new() -> Self {
        ConnSlab {
            slots: Vec::new(),
            len: 0,
        }
    }

    #[inline]
    fn get_mut(&mut self, conn: ConnId) -> Option<&mut T> {
        match self.slots.get_mut(conn.index as usize) {
            Some(Some((gen, t))) if *gen == conn.gen => Some(t),
            _ => None,
        }
    }

    /// Hold `t` for `conn`, in place of whatever an older connection of
    /// the same slot left.
    fn insert(&mut self, conn: ConnId, t: T) {
        let i = conn.index as usize;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace((conn.gen, t)).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, conn: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(conn.index as usize)?;
        if slot.as_ref().is_none_or(|(gen, _)| *gen != conn.gen) {
            return None;
        }
        self.len -= 1;
        slot.take().map(|(_, t)| t)
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Echoes every byte of every connection back. Backpressure flows through:
/// it reads only when everything read before has been taken for sending,
/// so a slow reader on the other end closes our receive window.
pub struct TcpEcho {
    port: u16,
    conns: ConnSlab<EchoConn>,
    buf: Vec<u8>,
    accepted: u64,
    bytes: u64,
    closed: u64,
}

impl TcpEcho {
    pub fn new(port: u16) -> Self {
        TcpEcho {
            port,
            conns: ConnSlab::new(),
            buf: vec![0; CHUNK],
            accepted: 0,
            bytes: 0,
            closed: 0,
        }
    }

    /// Send what is readable (and what was left pending) on `conn`. Most
    /// echoes take the first step alone: nothing pending, the peer still
    /// open, and what arrived moves to the send buffer as it lies
    /// ([`NetCtx::tcp_echo_readable`]); [`TcpEcho::pump_loop`] does the
    /// rest, without setting up its copies for this one call (make
    /// pathcost: one pump per echo).
    #[inline]
    fn pump(&mut self, net: &mut dyn NetCtx, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let tried = if c.pending.is_empty() && !c.peer_closed {
            match net.tcp_echo_readable(conn) {
                Ok(Some(n)) => {
                    self.bytes += n as u64;
                    return;
                }
                // The loop's first turn would call it again: no need.
                _ => true,
            }
        } else {
            false
        };
        self.pump_loop(net, conn, tried);
    }

    /// [`TcpEcho::pump`]'s loop: pending bytes first, then what is readable,
    /// moved or copied; `tried`: the first turn's `tcp_echo_readable` was
    /// called already and moved nothing (it changed nothing either).
    #[inline(never)]
    fn pump_loop(&mut self, net: &mut dyn NetCtx, conn: ConnId, mut tried: bool) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        loop {
            if !c.pending.is_empty() {
                let Ok(n) = net.tcp_send(conn, &c.pending) else {
                    return;
                };
                c.pending.drain(..n);
                self.bytes += n as u64;
                if !c.pending.is_empty() {
                    return;
                }
            }
            // What arrived moves to the send buffer as it lies, nothing
            // left readable (recv and send below otherwise).
            if !std::mem::take(&mut tried) {
                if let Ok(Some(n)) = net.tcp_echo_readable(conn) {
                    self.bytes += n as u64;
                    break;
                }
            }
            let n = match net.tcp_recv(conn, &mut self.buf) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            let sent = net.tcp_send(conn, &self.buf[..n]).unwrap_or(0);
            self.bytes += sent as u64;
            if sent < n {
                c.pending.extend_from_slice(&self.buf[sent..n]);
                return;
            }
            if n < self.buf.len() {
                // A short read left nothing readable: no call to learn it.
                break;
            }
        }
        if c.peer_closed && c.pending.is_empty() {
            let _ = net.tcp_close(conn);
            self.conns.remove(conn);
            self.closed += 1;
        }
    }
}

impl App for TcpEcho {
    fn name(&self) -> String {
        format!("tcp-echo:{}", self.port)
    }
    fn start(&mut self, net: &mut dyn NetCtx) -> Result<(), BindError> {
        net.tcp_listen(self.port)
    }
    fn on_datagram(&mut self, _net: &mut dyn NetCtx, _d: &Datagram<'_>) {}
    fn on_tcp(&mut self, net: &mut dyn NetCtx, event: TcpEvent) {
        match event {
            TcpEvent::Accepted { conn, .. } => {
                self.accepted += 1;
                self.conns.insert(conn, EchoConn::default());
                self.pump(net, conn);
            }
            TcpEvent::Readable { conn } | TcpEvent::Writable { conn } => self.pump(net, conn),
            TcpEvent::PeerClosed { conn } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.peer_closed = true;
                }
                self.pump(net, conn);
            }
            TcpEvent::Closed { conn, .. } => {
                if self.conns.remove(conn).is_some() {
                    self.closed += 1;
                }
            }
            TcpEvent::Connected { .. } => {}
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("accepted", self.accepted),
            ("bytes", self.bytes),
            ("closed", self.closed),
            ("open", self.conns.len() as u64),
        ]
    }
}

/// Bytes a request may carry, head and body, before it is refused.
const MAX_REQUEST: usize = http::MAX_HEAD + 64 * 1024;

#[derive(Default)]
struct HttpConn {
    input: Vec<u8>,
    head: Vec<u8>,
    head_sent: usize,
    body_sent: usize,
    body_len: usize,
    close_after: bool,
    peer_closed: bool,
}

impl HttpConn {
    fn busy(&self) -> bool {
        self.head_sent < self.head.len() || self.body_sent < self.body_len
    }
}

/// A static HTTP/1.1 responder: every GET gets the same body of a fixed
/// size, HEAD its headers; keep-alive and pipelining; a malformed request
/// gets 400 and the connection closes. Output is written as the send buffer
/// takes it, and requests behind a response wait until it is all queued.
pub struct HttpServer {
    port: u16,
    body: usize,
    conns: HashMap<ConnId, HttpConn>,
    buf: Vec<u8>,
    accepted: u64,
    requests: u64,
    bad_requests: u64,
}

impl HttpServer {
    pub fn new(port: u16, body: usize) -> Self {
        HttpServer {
            port,
            body,
            conns: HashMap::default(),
            buf: vec![0; CHUNK],
            accepted: 0,
            requests: 0,
            bad_requests: 0,
        }
    }

    fn respond(&mut self, conn: ConnId, status: u16, method: Method, keep_alive: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let len = if status == 200 { self.body } else { 0 };
        http::write_head(&mut c.head, status, len, keep_alive);
        c.head_sent = 0;
        c.body_sent = 0;
        c.body_len = if method == Method::Head { 0 } else { len };
        c.close_after = !keep_alive;
    }

    fn pump(&mut self, net: &mut dyn NetCtx, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            // Finish the response in progress.
            while c.busy() {
                if c.head_sent < c.head.len() {
                    let Ok(n) = net.tcp_send(conn, &c.head[c.head_sent..]) else {
                        return;
                    };
                    c.head_sent += n;
                    if c.head_sent < c.head.len() {
                        return;
                    }
                }
                if c.body_sent < c.body_len {
                    let want = (c.body_len - c.body_sent).min(self.buf.len());
                    let space = net.tcp_send_space(conn).unwrap_or(0).min(want);
                    if space == 0 {
                        // A short send asks for a Writable event.
                        http::fill_body(c.body_sent, &mut self.buf[..1]);
                        let n = net.tcp_send(conn, &self.buf[..1]).unwrap_or(0);
                        c.body_sent += n;
                        if n == 0 {
                            return;
                        }
                        continue;
                    }
                    http::fill_body(c.body_sent, &mut self.buf[..space]);
                    let Ok(n) = net.tcp_send(conn, &self.buf[..space]) else {
                        return;
                    };
                    c.body_sent += n;
                    if n < space {
                        return;
                    }
                }
            }
            if c.close_after {
                let _ = net.tcp_close(conn);
                self.conns.remove(&conn);
                return;
            }
            // The next request, reading more if needed.
            match http::parse_request(&c.input) {
                Parse::Complete(req) => {
                    c.input.drain(..req.consumed);
                    self.requests += 1;
                    let status = match req.method {
                        Method::Get | Method::Head => 200,
                        Method::Other => 405,
                    };
                    self.respond(conn, status, req.method, req.keep_alive);
                }
                p @ (Parse::Bad | Parse::TooLarge) => {
                    self.bad_requests += 1;
                    let status = if p == Parse::TooLarge { 431 } else { 400 };
                    c.input.clear();
                    self.respond(conn, status, Method::Get, false);
                }
                Parse::Partial => {
                    if c.input.len() >= MAX_REQUEST {
                        self.bad_requests += 1;
                        c.input.clear();
                        self.respond(conn, 400, Method::Get, false);
                        continue;
                    }
                    let room = (MAX_REQUEST - c.input.len()).min(self.buf.len());
                    let n = net.tcp_recv(conn, &mut self.buf[..room]).unwrap_or(0);
                    if n == 0 {
                        if c.peer_closed {
                            let _ = net.tcp_close(conn);
                            self.conns.remove(&conn);
                        }
                        return;
                    }
                    c.input.extend_from_slice(&self.buf[..n]);
                }
            }
        }
    }
}

impl App for HttpServer {
    fn name(&self) -> String {
        format!("http:{}", self.port)
    }
    fn start(&mut self, net: &mut dyn NetCtx) -> Result<(), BindError> {
        net.tcp_listen(self.port)
    }
    fn on_datagram(&mut self, _net: &mut dyn NetCtx, _d: &Datagram<'_>) {}
    fn on_tcp(&mut self, net: &mut dyn NetCtx, event: TcpEvent) {
        match event {
            TcpEvent::Accepted { conn, .. } => {
                self.accepted += 1;
                self.conns.insert(conn, HttpConn::default());
                self.pump(net, conn);
            }
            TcpEvent::Readable { conn } | TcpEvent::Writable { conn } => self.pump(net, conn),
            TcpEvent::PeerClosed { conn } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.peer_closed = true;
                }
                self.pump(net, conn);
            }
            TcpEvent::Closed { conn, .. } => {
                self.conns.remove(&conn);
            }
            TcpEvent::Connected { .. } => {}
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("accepted", self.accepted),
            ("requests", self.requests),
            ("bad_requests", self.bad_requests),
            ("open", self.conns.len() as u64),
        ]
    }
}

/// The byte at `offset` of what the client sends.
fn client_byte(offset: usize) -> u8 {
    (offset.wrapping_mul(7).wrapping_add(13) % 251) as u8
}

#[derive(Default)]
struct ClientConn {
    sent: usize,
    verified: usize,
    shut: bool,
}

/// Opens connections to a peer (an echo service), sends `bytes` of a known
/// pattern on each, and checks that exactly those bytes come back.
pub struct TcpClient {
    peer: SocketAddrV4,
    bytes: usize,
    to_open: usize,
    conns: HashMap<ConnId, ClientConn>,
    buf: Vec<u8>,
    connected: u64,
    completed: u64,
    failed: u64,
    mismatches: u64,
    sent: u64,
    verified: u64,
}

impl TcpClient {
    pub fn new(peer: SocketAddrV4, bytes: usize, conns: usize) -> Self {
        TcpClient {
            peer,
            bytes,
            to_open: conns,
            conns: HashMap::default(),
            buf: vec![0; CHUNK],
            connected: 0,
            completed: 0,
            failed: 0,
            mismatches: 0,
            sent: 0,
            verified: 0,
        }
    }

    fn pump(&mut self, net: &mut dyn NetCtx, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        while c.sent < self.bytes {
            let n = (self.bytes - c.sent).min(self.buf.len());
            for (i, b) in self.buf[..n].iter_mut().enumerate() {
                *b = client_byte(c.sent + i);
            }
            let took = net.tcp_send(conn, &self.buf[..n]).unwrap_or(0);
            c.sent += took;
            self.sent += took as u64;
            if took < n {
                break;
            }
        }
        if c.sent == self.bytes && !c.shut {
            c.shut = true;
            let _ = net.tcp_shutdown(conn);
        }
        loop {
            let n = net.tcp_recv(conn, &mut self.buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            let good = self.buf[..n]
                .iter()
                .enumerate()
                .all(|(i, b)| *b == client_byte(c.verified + i));
            if !good || c.verified + n > self.bytes {
                self.mismatches += 1;
                self.failed += 1;
                let _ = net.tcp_abort(conn);
                self.conns.remove(&conn);
                return;
            }
            c.verified += n;
            self.verified += n as u64;
        }
    }
}

impl App for TcpClient {
    fn name(&self) -> String {
        format!("tcp-client:{}", self.peer)
    }
    fn start(&mut self, _net: &mut dyn NetCtx) -> Result<(), BindError> {
        Ok(())
    }
    fn on_datagram(&mut self, _net: &mut dyn NetCtx, _d: &Datagram<'_>) {}
    fn poll(&mut self, net: &mut dyn NetCtx) {
        while self.to_open > 0 {
            match net.tcp_connect(self.peer) {
                Ok(conn) => {
                    self.to_open -= 1;
                    self.conns.insert(conn, ClientConn::default());
                }
                Err(_) => {
                    self.to_open -= 1;
                    self.failed += 1;
                }
            }
        }
    }
    fn on_tcp(&mut self, net: &mut dyn NetCtx, event: TcpEvent) {
        match event {
            TcpEvent::Connected { conn } => {
                self.connected += 1;
                self.pump(net, conn);
            }
            TcpEvent::Readable { conn } | TcpEvent::Writable { conn } => self.pump(net, conn),
            TcpEvent::PeerClosed { conn } => {
                self.pump(net, conn);
                if let Some(c) = self.conns.remove(&conn) {
                    if c.verified == self.bytes && c.sent == self.bytes {
                        self.completed += 1;
                    } else {
                        self.failed += 1;
                    }
                    let _ = net.tcp_close(conn);
                }
            }
            TcpEvent::Closed { conn, .. } => {
                if self.conns.remove(&conn).is_some() {
                    self.failed += 1;
                }
            }
            TcpEvent::Accepted { .. } => {}
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("connected", self.connected),
            ("completed", self.completed),
            ("failed", self.failed),
            ("mismatches", self.mismatches),
            ("sent", self.sent),
            ("verified", self.verified),
        ]
    }
}

/// The largest tcp-send repeat count.
pub const MAX_TCP_SEND_REPEAT: usize = 1 << 20;
/// The longest tcp-send sample interval, in ms (a minute).
const MAX_TCP_SEND_SAMPLE_MS: u64 = 60_000;
/// The client pattern repeats every 251 bytes (7 is invertible mod 251).
const PATTERN_PERIOD: usize = 251;
/// The longest flow completion time the histogram holds: an hour, in us.
const MAX_FCT_US: u64 = 3_600_000_000;

/// One transfer in progress.
struct Transfer {
    /// Which transfer this is, from 1 in the order they were opened.
    number: u64,
    /// When `tcp_connect` was called: the flow completion time starts here.
    opened: Instant,
    sent: usize,
    shut: bool,
}

/// The send-only client (`tcp-send`): `conns` connections at a time to a
/// sink, each sending `bytes` of the tcp-client pattern, then FIN; the sink
/// reads everything, then closes its side. A transfer is complete when the
/// sink's FIN arrives after all our bytes and our FIN were queued: its
/// flow completion time (FCT) runs from `tcp_connect` to that FIN, so it
/// covers the handshake, the data, its loss recovery and the close (the
/// sink sends its FIN once it has read our FIN: at most one RTT after the
/// last byte was acknowledged, plus the sink's scheduling). Each
/// connection is replaced by a new one `repeat` times. FCTs go into a
/// histogram (3 significant digits) allocated up front; its quantiles, the
/// bytes of completed transfers and the goodput over the whole run (first
/// connect to last completion) are the app's counters.
///
/// With a sample interval, every open connection's [`NetCtx::tcp_info`] is
/// printed on stdout that often, one line each (see [`sample_line`]): the
/// congestion window over time, for perf/bench-wan.sh's plots.
pub struct TcpSender {
    peer: SocketAddrV4,
    bytes: usize,
    /// Transfers in progress at once.
    slots: usize,
    /// Transfers not yet started.
    remaining: usize,
    conns: HashMap<ConnId, Transfer>,
    /// The pattern from every phase: `pattern[o % 251..]` is the stream
    /// from offset `o` on, for up to `CHUNK` bytes.
    pattern: Vec<u8>,
    /// Whatever the sink sends (nothing, normally) is read and discarded.
    scratch: Vec<u8>,
    fct_us: Histogram<u64>,
    first_open: Option<Instant>,
    last_done: Option<Instant>,
    opened: u64,
    completed: u64,
    failed: u64,
    sent: u64,
    bytes_completed: u64,
    unexpected_bytes: u64,
    /// How often to print samples (zero: never), and when next.
    sample_every: Duration,
    next_sample: Option<Instant>,
    /// This core's index, in each sample line.
    core: usize,
    samples: u64,
}

/// One tcp-send sample line: the core, the time since the first connect
/// (`t_us`), the transfer's number and its connection's state.
pub fn sample_line(core: usize, t: Duration, number: u64, info: &super::TcpInfo) -> String {
    format!(
        "tcp-send-sample core={core} t_us={} transfer={number} cwnd={} srtt_us={} rto_us={} unacked={}",
        t.micros(),
        info.cwnd,
        info.srtt.map_or(0, |d| d.micros()),
        info.rto.micros(),
        info.unacked
    )
}

impl TcpSender {
    /// `conns` connections at a time, `conns * repeat` transfers in all.
    pub fn new(peer: SocketAddrV4, bytes: usize, conns: usize, repeat: usize) -> Self {
        TcpSender {
            peer,
            bytes,
            slots: conns,
            remaining: conns.saturating_mul(repeat),
            conns: HashMap::default(),
            pattern: (0..CHUNK + PATTERN_PERIOD).map(client_byte).collect(),
            scratch: vec![0; 4096],
            fct_us: Histogram::new_with_bounds(1, MAX_FCT_US, 3).expect("valid bounds"),
            first_open: None,
            last_done: None,
            opened: 0,
            completed: 0,
            failed: 0,
            sent: 0,
            bytes_completed: 0,
            unexpected_bytes: 0,
            sample_every: Duration::from_micros(0),
            next_sample: None,
            core: 0,
            samples: 0,
        }
    }

    /// Print samples every `every` (zero: never), as core `core`.
    pub fn sampling(mut self, every: Duration, core: usize) -> Self {
        self.sample_every = every;
        self.core = core;
        self
    }

    /// Print every open connection's state, if a sample is due.
    fn sample(&mut self, net: &mut dyn NetCtx) {
        let (Some(first), false) = (self.first_open, self.sample_every.micros() == 0) else {
            return;
        };
        let now = net.now();
        if self.next_sample.is_some_and(|at| now < at) {
            return;
        }
        // The next one on the interval's grid, however late this one was.
        let every = self.sample_every.micros();
        let t = now.since(first);
        self.next_sample =
            Some(first.plus(Duration::from_micros((t.micros() / every + 1) * every)));
        let mut lines = String::new();
        for (conn, tr) in &self.conns {
            if let Ok(info) = net.tcp_info(*conn) {
                lines.push_str(&sample_line(self.core, t, tr.number, &info));
                lines.push('\n');
                self.samples += 1;
            }
        }
        if !lines.is_empty() {
            use std::io::Write;
            // One write for all the lines, so that the stack's own output
            // does not land between them; a closed stdout is no error here.
            let _ = std::io::stdout().lock().write_all(lines.as_bytes());
        }
    }

    /// Queue as much of the transfer as the send buffer takes; FIN after
    /// the last byte.
    fn pump(&mut self, net: &mut dyn NetCtx, conn: ConnId) {
        let Some(t) = self.conns.get_mut(&conn) else {
            return;
        };
        while t.sent < self.bytes {
            let n = (self.bytes - t.sent).min(CHUNK);
            let from = t.sent % PATTERN_PERIOD;
            let took = net
                .tcp_send(conn, &self.pattern[from..from + n])
                .unwrap_or(0);
            t.sent += took;
            self.sent += took as u64;
            if took < n {
                break;
            }
        }
        if t.sent == self.bytes && !t.shut {
            t.shut = true;
            let _ = net.tcp_shutdown(conn);
        }
        while let Ok(n @ 1..) = net.tcp_recv(conn, &mut self.scratch) {
            self.unexpected_bytes += n as u64;
        }
    }

    /// The sink closed its side: the transfer is complete if all of it and
    /// our FIN were queued (the sink reads to our FIN before closing).
    fn finish(&mut self, net: &mut dyn NetCtx, conn: ConnId) {
        self.pump(net, conn);
        let Some(t) = self.conns.remove(&conn) else {
            return;
        };
        let now = net.now();
        if t.shut && t.sent == self.bytes {
            self.completed += 1;
            self.bytes_completed += self.bytes as u64;
            let us = now.since(t.opened).micros().clamp(1, MAX_FCT_US);
            let _ = self.fct_us.record(us);
            self.last_done = Some(now);
        } else {
            self.failed += 1;
        }
        let _ = net.tcp_close(conn);
    }

    /// From the first connect to the last completed transfer, in us.
    fn elapsed_us(&self) -> u64 {
        match (self.first_open, self.last_done) {
            (Some(a), Some(b)) => b.since(a).micros(),
            _ => 0,
        }
    }
}

impl App for TcpSender {
    fn name(&self) -> String {
        format!("tcp-send:{}", self.peer)
    }
    fn start(&mut self, _net: &mut dyn NetCtx) -> Result<(), BindError> {
        Ok(())
    }
    fn on_datagram(&mut self, _net: &mut dyn NetCtx, _d: &Datagram<'_>) {}
    fn poll(&mut self, net: &mut dyn NetCtx) {
        while self.remaining > 0 && self.conns.len() < self.slots {
            self.remaining -= 1;
            let now = net.now();
            match net.tcp_connect(self.peer) {
                Ok(conn) => {
                    self.opened += 1;
                    self.first_open.get_or_insert(now);
                    self.conns.insert(
                        conn,
                        Transfer {
                            number: self.opened,
                            opened: now,
                            sent: 0,
                            shut: false,
                        },
                    );
                }
                Err(_) => self.failed += 1,
            }
        }
        self.sample(net);
    }
    fn on_tcp(&mut self, net: &mut dyn NetCtx, event: TcpEvent) {
        match event {
            TcpEvent::Connected { conn }
            | TcpEvent::Readable { conn }
            | TcpEvent::Writable { conn } => self.pump(net, conn),
            TcpEvent::PeerClosed { conn } => self.finish(net, conn),
            TcpEvent::Closed { conn, .. } => {
                if self.conns.remove(&conn).is_some() {
                    self.failed += 1;
                }
            }
            TcpEvent::Accepted { .. } => {}
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let elapsed = self.elapsed_us();
        let goodput_kbps = if elapsed == 0 {
            0
        } else {
            (u128::from(self.bytes_completed) * 8 * 1000 / u128::from(elapsed)) as u64
        };
        let h = &self.fct_us;
        let q = |x: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(x)
            }
        };
        // The r-th smallest (1-based): the quantile just below r / n, so
        // that rounding cannot take the next one.
        let n = h.len();
        let rank = |r: u64| q((r as f64 - 0.5) / n.max(1) as f64);
        let p99_ci = quantile_ci_ranks(n, 0.99);
        vec![
            ("opened", self.opened),
            ("completed", self.completed),
            ("failed", self.failed),
            ("pending", (self.remaining + self.conns.len()) as u64),
            ("sent", self.sent),
            ("bytes_completed", self.bytes_completed),
            ("unexpected_bytes", self.unexpected_bytes),
            ("elapsed_us", elapsed),
            ("goodput_kbps", goodput_kbps),
            ("fct_min_us", if h.is_empty() { 0 } else { h.min() }),
            ("fct_p50_us", q(0.5)),
            ("fct_p90_us", q(0.9)),
            ("fct_p99_us", q(0.99)),
            ("fct_p99_lo_us", rank(p99_ci.0)),
            ("fct_p99_hi_us", rank(p99_ci.1)),
            ("fct_max_us", if h.is_empty() { 0 } else { h.max() }),
            ("fct_mean_us", h.mean() as u64),
            ("samples", self.samples),
        ]
    }
}

/// The ranks (1-based, within 1..=n) bounding a distribution-free 95%
/// confidence interval for the q-quantile of n samples: the number of
/// samples below the true quantile is binomial(n, q), taken as normal
/// (Hahn and Meeker, Statistical Intervals, 5.2). For the p99 of 1000
/// transfers: the 983rd to the 998th.
pub fn quantile_ci_ranks(n: u64, q: f64) -> (u64, u64) {
    if n == 0 {
        return (0, 0);
    }
    let nf = n as f64;
    let half = 1.96 * (nf * q * (1.0 - q)).sqrt();
    let lo = ((nf * q - half).floor() as u64).max(1);
    let hi = ((nf * q + half).ceil() as u64 + 1).min(n);
    (lo.min(hi), hi)
}

/// How long a udp-client datagram waits for its echo before it is sent again.
const UDP_CLIENT_RETRY: Duration = Duration::from_millis(200);
/// Sends of one datagram before its flow is given up.
const UDP_CLIENT_TRIES: u32 = 10;

struct UdpFlow {
    port: u16,
    /// The datagram awaiting its echo.
    seq: u64,
    sent_at: Instant,
    tries: u32,
}

/// Opens `flows` connected UDP sockets to an echo service and sends `count`
/// numbered datagrams on each, one at a time: each must come back intact,
/// on the socket (and so the core) that sent it. A lost datagram is sent
/// again after 200 ms, ten times at most.
pub struct UdpClient {
    peer: SocketAddrV4,
    count: u64,
    to_open: usize,
    flows: Vec<UdpFlow>,
    /// The datagram being sent or checked (its size is the flow's).
    buf: Vec<u8>,
    opened: u64,
    completed: u64,
    failed: u64,
    mismatches: u64,
    sent: u64,
    verified: u64,
    retries: u64,
    /// Late echoes of datagrams already verified.
    duplicates: u64,
}

impl UdpClient {
    /// `size`: bytes in each datagram, at least 10.
    pub fn new(peer: SocketAddrV4, count: usize, flows: usize, size: usize) -> Self {
        UdpClient {
            peer,
            count: count as u64,
            to_open: flows,
            flows: Vec::with_capacity(flows),
            buf: vec![0; size.max(MIN_UDP_CLIENT_SIZE)],
            opened: 0,
            completed: 0,
            failed: 0,
            mismatches: 0,
            sent: 0,
            verified: 0,
            retries: 0,
            duplicates: 0,
        }
    }

    /// The datagram `seq` of the flow on `port`: both numbers, then a
    /// pattern derived from them.
    fn fill(buf: &mut [u8], port: u16, seq: u64) {
        buf[..2].copy_from_slice(&port.to_be_bytes());
        buf[2..10].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in buf[10..].iter_mut().enumerate() {
            *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8) ^ (port as u8);
        }
    }

    fn send(&mut self, net: &mut dyn NetCtx, i: usize) {
        let (port, seq) = (self.flows[i].port, self.flows[i].seq);
        Self::fill(&mut self.buf, port, seq);
        let f = &mut self.flows[i];
        f.sent_at = net.now();
        f.tries += 1;
        if net.send_udp(port, self.peer, &self.buf).is_ok() {
            self.sent += 1;
        }
    }

    fn finish(&mut self, net: &mut dyn NetCtx, i: usize, ok: bool) {
        let f = self.flows.swap_remove(i);
        net.unbind_udp(f.port);
        if ok {
            self.completed += 1;
        } else {
            self.failed += 1;
        }
    }
}

impl App for UdpClient {
    fn name(&self) -> String {
        format!("udp-client:{}", self.peer)
    }
    fn start(&mut self, _net: &mut dyn NetCtx) -> Result<(), BindError> {
        Ok(())
    }
    fn on_datagram(&mut self, net: &mut dyn NetCtx, d: &Datagram<'_>) {
        let Some(i) = self.flows.iter().position(|f| f.port == d.dst.port()) else {
            return;
        };
        let (port, seq) = (self.flows[i].port, self.flows[i].seq);
        Self::fill(&mut self.buf, port, seq);
        if d.payload != self.buf {
            // A late echo of an earlier datagram of this flow (one sent
            // again, both copies answered) is not a mismatch.
            let old = d
                .payload
                .get(2..10)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            if let Some(old) = old.filter(|&o| o < seq && d.payload.len() == self.buf.len()) {
                Self::fill(&mut self.buf, port, old);
                if d.payload == self.buf {
                    self.duplicates += 1;
                    return;
                }
            }
            self.mismatches += 1;
            return self.finish(net, i, false);
        }
        self.verified += 1;
        let f = &mut self.flows[i];
        f.seq += 1;
        f.tries = 0;
        if f.seq == self.count {
            return self.finish(net, i, true);
        }
        self.send(net, i);
    }
    fn poll(&mut self, net: &mut dyn NetCtx) {
        while self.to_open > 0 {
            self.to_open -= 1;
            match net.udp_connect(self.peer) {
                Ok(port) => {
                    self.opened += 1;
                    self.flows.push(UdpFlow {
                        port,
                        seq: 0,
                        sent_at: net.now(),
                        tries: 0,
                    });
                    let i = self.flows.len() - 1;
                    if self.count == 0 {
                        self.finish(net, i, true);
                    } else {
                        self.send(net, i);
                    }
                }
                Err(_) => self.failed += 1,
            }
        }
        let now = net.now();
        let mut i = 0;
        while i < self.flows.len() {
            if now.since(self.flows[i].sent_at) < UDP_CLIENT_RETRY {
                i += 1;
                continue;
            }
            if self.flows[i].tries >= UDP_CLIENT_TRIES {
                self.finish(net, i, false);
                continue;
            }
            self.retries += 1;
            self.send(net, i);
            i += 1;
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("opened", self.opened),
            ("completed", self.completed),
            ("failed", self.failed),
            ("mismatches", self.mismatches),
            ("sent", self.sent),
            ("verified", self.verified),
            ("retries", self.retries),
            ("duplicates", self.duplicates),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slab against a map of ids: the same answers for any sequence
    /// of inserts, look-ups and removals, stale generations included.
    #[test]
    fn conn_slab_is_a_map_of_ids() {
        let mut rng = crate::fuzzing::pair::Prng(7);
        let mut slab = ConnSlab::new();
        let mut map: HashMap<ConnId, u64> = HashMap::default();
        for step in 0..20_000u64 {
            let conn = ConnId {
                index: rng.below(40) as u32,
                gen: rng.below(3) as u32,
            };
            match rng.below(3) {
                0 => {
                    // As the table hands out ids: a slot's older
                    // connection is gone before a new one takes it.
                    map.retain(|c, _| c.index != conn.index);
                    slab.insert(conn, step);
                    map.insert(conn, step);
                }
                1 => assert_eq!(slab.remove(conn), map.remove(&conn), "{conn:?}"),
                _ => assert_eq!(slab.get_mut(conn).copied(), map.get(&conn).copied()),
            }
            assert_eq!(slab.len(), map.len());
        }
    }

    #[test]
    fn a_sample_line_carries_every_field() {
        let peer = "198.18.0.2:80".parse().unwrap();
        let local = "198.18.0.1:40000".parse().unwrap();
        let cfg = crate::tcp::TcpConfig::default();
        let base = crate::tcp::Tcb::connect(&cfg, Instant::ZERO, local, peer, 1, 0);
        let info = super::super::TcpInfo {
            cwnd: 14600,
            srtt: Some(Duration::from_micros(20_150)),
            rto: Duration::from_millis(220),
            unacked: 3000,
            congestion_control: crate::tcp::CcAlgorithm::Cubic,
            ..base.info(Instant::ZERO)
        };
        assert_eq!(
            sample_line(1, Duration::from_micros(1500), 7, &info),
            "tcp-send-sample core=1 t_us=1500 transfer=7 cwnd=14600 srtt_us=20150 rto_us=220000 unacked=3000"
        );
        let info = super::super::TcpInfo { srtt: None, ..info };
        assert!(sample_line(0, Duration::from_micros(0), 1, &info).contains(" srtt_us=0 "));
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            "udp-echo:7".parse::<AppSpec>(),
            Ok(AppSpec {
                kind: AppKind::UdpEcho,
                port: 7,
                body: 0,
                peer: None,
                conns: 0,
                size: 0,
                repeat: 1,
                sample_ms: 0,
            })
        );
        assert!("udp-sink:9".parse::<AppSpec>().is_ok());
        assert!("udp-echo".parse::<AppSpec>().is_err());
        assert!("udp-echo:0".parse::<AppSpec>().is_err());
        assert!("udp-echo:70000".parse::<AppSpec>().is_err());
        assert!("tcp-echo:7".parse::<AppSpec>().is_ok());
        assert!("tcp-echo:7:5".parse::<AppSpec>().is_err());
        assert!("ftp:21".parse::<AppSpec>().is_err());
        let h = "http:80:5000".parse::<AppSpec>().unwrap();
        assert_eq!((h.kind, h.port, h.body), (AppKind::Http, 80, 5000));
        assert_eq!(
            "http:80".parse::<AppSpec>().unwrap().body,
            DEFAULT_HTTP_BODY
        );
        assert!("http:80:x".parse::<AppSpec>().is_err());
        assert!("http:80:1:2".parse::<AppSpec>().is_err());
        let c = "tcp-client:198.18.0.2:5001:1000:8"
            .parse::<AppSpec>()
            .unwrap();
        assert_eq!(c.kind, AppKind::TcpClient);
        assert_eq!(c.peer, Some("198.18.0.2:5001".parse().unwrap()));
        assert_eq!((c.body, c.conns), (1000, 8));
        assert!("tcp-client:198.18.0.2:5001".parse::<AppSpec>().is_err());
        assert!("tcp-client:nope:5001:1".parse::<AppSpec>().is_err());
        let u = "udp-client:198.18.0.2:7:50:32".parse::<AppSpec>().unwrap();
        assert_eq!(u.kind, AppKind::UdpClient);
        assert_eq!((u.body, u.conns, u.size), (50, 32, DEFAULT_UDP_CLIENT_SIZE));
        assert!("udp-client:198.18.0.2:7".parse::<AppSpec>().is_err());
        let u = "udp-client:198.18.0.2:7:5:2:4000"
            .parse::<AppSpec>()
            .unwrap();
        assert_eq!((u.body, u.conns, u.size), (5, 2, 4000));
        assert!("udp-client:198.18.0.2:7:5:2:9".parse::<AppSpec>().is_err());
        assert!("udp-client:198.18.0.2:7:5:2:65508"
            .parse::<AppSpec>()
            .is_err());
        assert!("tcp-client:198.18.0.2:7:5:2:100"
            .parse::<AppSpec>()
            .is_err());
        let t = "tcp-send:198.18.0.2:5001:65536:2:500"
            .parse::<AppSpec>()
            .unwrap();
        assert_eq!(t.kind, AppKind::TcpSend);
        assert_eq!(t.peer, Some("198.18.0.2:5001".parse().unwrap()));
        assert_eq!((t.body, t.conns, t.repeat), (65536, 2, 500));
        let t = "tcp-send:198.18.0.2:5001:100".parse::<AppSpec>().unwrap();
        assert_eq!((t.body, t.conns, t.repeat, t.sample_ms), (100, 1, 1, 0));
        let t = "tcp-send:198.18.0.2:5001:100:1:1:20"
            .parse::<AppSpec>()
            .unwrap();
        assert_eq!((t.repeat, t.sample_ms), (1, 20));
        assert!("tcp-send:198.18.0.2:5001:1:1:1:x"
            .parse::<AppSpec>()
            .is_err());
        assert!("tcp-send:198.18.0.2:5001:1:1:1:60001"
            .parse::<AppSpec>()
            .is_err());
        assert!("tcp-send:198.18.0.2:5001".parse::<AppSpec>().is_err());
        assert!("tcp-send:198.18.0.2:5001:1:1:0".parse::<AppSpec>().is_err());
        assert!("tcp-send:198.18.0.2:5001:1:1:x".parse::<AppSpec>().is_err());
        assert!("tcp-send:198.18.0.2:5001:1:1:1:1:1"
            .parse::<AppSpec>()
            .is_err());
        assert!("tcp-send:198.18.0.2:0:1".parse::<AppSpec>().is_err());
        assert_eq!(
            "tcp-client:198.18.0.2:7:5"
                .parse::<AppSpec>()
                .unwrap()
                .repeat,
            1
        );
    }

    #[test]
    fn quantile_confidence_ranks() {
        assert_eq!(quantile_ci_ranks(1000, 0.99), (983, 998));
        assert_eq!(quantile_ci_ranks(1000, 0.5), (469, 532));
        // Few samples: clamped to the samples there are.
        assert_eq!(quantile_ci_ranks(10, 0.99), (9, 10));
        assert_eq!(quantile_ci_ranks(1, 0.99), (1, 1));
        assert_eq!(quantile_ci_ranks(0, 0.99), (0, 0));
        // Each bound is a rank the interval's coverage needs: the count
        // below the true p99 of 1000 is binomial(1000, 0.01 below), so the
        // interval is about 2 x 1.96 standard deviations (3.15) wide.
        let (lo, hi) = quantile_ci_ranks(1000, 0.99);
        assert!((12..=16).contains(&(hi - lo)));
    }
}
