//! dpstack-gen's TCP load: an application on dpstack's own TCP that sends
//! HTTP/1.1 requests, one outstanding per connection, either on kept-alive
//! connections (requests per second) or one per new connection
//! (connections per second). Each request carries the TSC at which it left
//! in a header; its response, complete by Content-Length, gives the round
//! trip (for new connections: from the SYN to the last byte).

use crate::gen::record::histogram;
use dpstack::app::{App, BindError, ConnId, Datagram, NetCtx, TcpEvent};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Total length of the HTTP response at the start of `buf` (headers and
/// body by Content-Length), once its headers are complete. Err if it is
/// not a response this client can frame.
pub fn response_len(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > 16 * 1024 {
            Err("headers too long")
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "headers not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.") {
        return Err("not an HTTP/1 response");
    }
    let mut len = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = Some(
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| "bad content-length")?,
                );
            } else if k.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked responses are not framed");
            }
        }
    }
    Ok(Some(end + 4 + len.ok_or("no content-length")?))
}

/// What every core's generator adds to.
#[derive(Default)]
pub struct Shared {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub started: AtomicU64,
    /// Connections established: the measurement starts at the first (a
    /// SYN sent before the link came up waits for its retransmission).
    pub connected: AtomicU64,
    pub stop: AtomicBool,
    /// Round trips (ns) since the monitor last took them.
    pub hist: Mutex<Option<Histogram<u64>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Kept-alive connections, one request after another.
    KeepAlive,
    /// A new connection per request.
    NewConnection,
}

#[derive(Default)]
struct Conn {
    /// When the request (or, for new connections, the SYN) left.
    since: u64,
    buf: Vec<u8>,
    want: Option<usize>,
    done: bool,
}

pub struct TcpGen {
    kind: Kind,
    dst: SocketAddrV4,
    path: String,
    conns: usize,
    shared: Arc<Shared>,
    clock: fn() -> u64,
    ns_per_tick: f64,
    live: HashMap<ConnId, Conn>,
    hist: Histogram<u64>,
    flushed: u64,
    sent: u64,
    received: u64,
    errors: u64,
    rx_bytes: u64,
    scratch: Vec<u8>,
}

impl TcpGen {
    /// `conns` connections of this core; `clock` ticks `hz` times a second.
    pub fn new(
        kind: Kind,
        dst: SocketAddrV4,
        path: &str,
        conns: usize,
        shared: Arc<Shared>,
        clock: fn() -> u64,
        hz: u64,
    ) -> Self {
        TcpGen {
            kind,
            dst,
            path: path.to_string(),
            conns,
            shared,
            clock,
            ns_per_tick: 1e9 / hz as f64,
            live: HashMap::new(),
            hist: histogram(),
            flushed: 0,
            sent: 0,
            received: 0,
            errors: 0,
            rx_bytes: 0,
            scratch: vec![0; 64 * 1024],
        }
    }

    fn request(&mut self, net: &mut dyn NetCtx, conn: ConnId) {
        let now = (self.clock)();
        let close = if self.kind == Kind::NewConnection {
            "Connection: close\r\n"
        } else {
            ""
        };
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nX-Gen-Tsc: {now}\r\n{close}\r\n",
            self.path,
            self.dst.ip()
        );
        let Some(c) = self.live.get_mut(&conn) else {
            return;
        };
        if self.kind == Kind::KeepAlive {
            c.since = now;
        }
        c.buf.clear();
        c.want = None;
        match net.tcp_send(conn, req.as_bytes()) {
            Ok(n) if n == req.len() => self.sent += 1,
            _ => self.fail(net, conn),
        }
    }

    fn fail(&mut self, net: &mut dyn NetCtx, conn: ConnId) {
        if self.live.remove(&conn).is_some() {
            self.errors += 1;
            let _ = net.tcp_abort(conn);
        }
    }

    fn readable(&mut self, net: &mut dyn NetCtx, conn: ConnId) {
        loop {
            let n = net.tcp_recv(conn, &mut self.scratch).unwrap_or(0);
            if n == 0 {
                return;
            }
            self.rx_bytes += n as u64;
            let Some(c) = self.live.get_mut(&conn) else {
                return;
            };
            c.buf.extend_from_slice(&self.scratch[..n]);
            if c.want.is_none() {
                match response_len(&c.buf) {
                    Ok(w) => c.want = w,
                    Err(_) => return self.fail(net, conn),
                }
            }
            let Some(want) = c.want else { continue };
            if c.buf.len() > want {
                // One request is outstanding: more bytes than its response.
                return self.fail(net, conn);
            }
            if c.buf.len() == want {
                let ns = ((self.clock)().saturating_sub(c.since)) as f64 * self.ns_per_tick;
                let _ = self.hist.record((ns as u64).max(1));
                self.received += 1;
                match self.kind {
                    Kind::KeepAlive => {
                        if self.shared.stop.load(Ordering::Relaxed) {
                            c.done = true;
                            let _ = net.tcp_close(conn);
                        } else {
                            self.request(net, conn);
                        }
                    }
                    // The server closes; the connection is done on its FIN.
                    Kind::NewConnection => c.done = true,
                }
            }
        }
    }

    fn flush(&mut self) {
        let s = &self.shared;
        s.sent.fetch_add(self.sent, Ordering::Relaxed);
        s.received.fetch_add(self.received, Ordering::Relaxed);
        s.errors.fetch_add(self.errors, Ordering::Relaxed);
        s.rx_bytes.fetch_add(self.rx_bytes, Ordering::Relaxed);
        (self.sent, self.received, self.errors, self.rx_bytes) = (0, 0, 0, 0);
        if !self.hist.is_empty() {
            if let Ok(mut h) = s.hist.lock() {
                let _ = h.get_or_insert_with(histogram).add(&self.hist);
                self.hist.reset();
            }
        }
    }
}

impl App for TcpGen {
    fn name(&self) -> String {
        let k = match self.kind {
            Kind::KeepAlive => "rr",
            Kind::NewConnection => "crr",
        };
        format!("gen-tcp-{k}:{}", self.dst)
    }
    fn start(&mut self, _net: &mut dyn NetCtx) -> Result<(), BindError> {
        self.shared.started.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn on_datagram(&mut self, _net: &mut dyn NetCtx, _d: &Datagram<'_>) {}
    fn poll(&mut self, net: &mut dyn NetCtx) {
        let stop = self.shared.stop.load(Ordering::Relaxed);
        while !stop && self.live.len() < self.conns {
            let since = (self.clock)();
            match net.tcp_connect(self.dst) {
                Ok(id) => {
                    self.live.insert(
                        id,
                        Conn {
                            since,
                            ..Default::default()
                        },
                    );
                }
                Err(_) => {
                    self.errors += 1;
                    break;
                }
            }
        }
        let now = (self.clock)();
        if now.wrapping_sub(self.flushed) as f64 * self.ns_per_tick > 5e6 {
            self.flushed = now;
            self.flush();
        }
    }
    fn on_tcp(&mut self, net: &mut dyn NetCtx, event: TcpEvent) {
        match event {
            TcpEvent::Connected { conn } => {
                self.shared.connected.fetch_add(1, Ordering::Relaxed);
                self.request(net, conn)
            }
            TcpEvent::Readable { conn } => self.readable(net, conn),
            TcpEvent::PeerClosed { conn } => {
                self.readable(net, conn);
                match self.live.remove(&conn) {
                    Some(c) if c.done => {
                        let _ = net.tcp_close(conn);
                    }
                    Some(_) => {
                        self.errors += 1;
                        let _ = net.tcp_close(conn);
                    }
                    None => {}
                }
            }
            TcpEvent::Closed { conn, .. } => {
                if let Some(c) = self.live.remove(&conn) {
                    if !c.done {
                        self.errors += 1;
                    }
                }
            }
            TcpEvent::Writable { .. } | TcpEvent::Accepted { .. } => {}
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("connections", self.live.len() as u64)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_content_length() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
        assert_eq!(response_len(r), Ok(Some(r.len())));
        assert_eq!(response_len(&r[..20]), Ok(None));
        let r = b"HTTP/1.1 200 OK\r\ncontent-length:0\r\n\r\n";
        assert_eq!(response_len(r), Ok(Some(r.len())));
        assert!(response_len(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(response_len(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(response_len(b"SSH-2.0\r\n\r\n").is_err());
        assert!(response_len(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(response_len(&vec![b'a'; 20000]).is_err());
    }
}
