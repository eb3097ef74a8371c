//! The application API: what runs on each core, inline in its loop.
//!
//! An application is instantiated once per lcore by an [`AppFactory`]. On
//! that core it binds UDP ports in [`App::start`], is called for each
//! datagram addressed to them in [`App::on_datagram`], and sends datagrams
//! with [`NetCtx::send_udp`]. Nothing blocks: a send that cannot go out now
//! (no buffer, TX full, ARP pending queue full) fails with a [`SendError`]
//! and is counted. See docs/app-api.md for a complete example.

mod builtin;
pub mod http;

pub use crate::tcp::{CcAlgorithm, CloseReason, ConnId, Keepalive};
pub use crate::udp::BindError;
pub use builtin::{AppKind, AppSpec, HttpServer, TcpEcho, UdpEcho, UdpSink};

use crate::time::{Duration, Instant};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

/// Which core an application instance lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreInfo {
    /// 0..count: also the index of the RX and TX queue this core owns.
    pub index: usize,
    /// How many cores run the stack.
    pub count: usize,
    /// The DPDK lcore id.
    pub lcore: u32,
}

/// A datagram delivered to an application. `payload` is valid only for the
/// duration of the call (it points into the receive buffer).
#[derive(Debug)]
pub struct Datagram<'a> {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: &'a [u8],
}

/// Why a send failed. Every failure is also counted by the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no packet buffer available")]
    NoBuffer,
    #[error("the transmit queue is full")]
    QueueFull,
    #[error("no route to the destination")]
    NoRoute,
    #[error("the ARP pending queue is full")]
    ArpQueueFull,
    #[error("datagram larger than 65507 bytes")]
    TooBig,
    #[error("the source port is not bound by this application")]
    NotBound,
    /// Port 0 is no port: a datagram from source port 0 expects no reply
    /// (RFC 768), and Linux refuses such a send (EINVAL).
    #[error("destination port 0")]
    ZeroPort,
}

/// Something happened on a TCP connection. Events are edge-triggered: an
/// application that leaves data unread gets no new `Readable` until more
/// arrives, and a short `tcp_send` is followed by one `Writable` once the
/// peer's acknowledgments free room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// A listener's connection is established: the application owns it.
    Accepted {
        conn: ConnId,
        remote: SocketAddrV4,
        local_port: u16,
    },
    /// A `tcp_connect` succeeded.
    Connected { conn: ConnId },
    /// New in-order data can be read.
    Readable { conn: ConnId },
    /// Room in the send buffer after a short `tcp_send`.
    Writable { conn: ConnId },
    /// The peer sent FIN: no more data will arrive (after what is readable).
    PeerClosed { conn: ConnId },
    /// The connection is gone (reset, timed out, refused, or both sides
    /// finished). The id is invalid from now on. Not raised for
    /// connections the application closed or aborted itself.
    Closed { conn: ConnId, reason: CloseReason },
}

/// What [`NetCtx::tcp_info`] returns: a connection's state, windows,
/// timers and totals (as Linux's `TCP_INFO`); the connections view of
/// telemetry shows the same.
pub use crate::tcp::TcpInfo;

/// Why a TCP call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    #[error("no such connection")]
    NoConnection,
    #[error("the sending side is shut down")]
    Shutdown,
    #[error("the connection table is full")]
    TableFull,
    #[error("no free local port")]
    NoPort,
    #[error("no route to the destination")]
    NoRoute,
    #[error("invalid argument")]
    InvalidArgument,
}

/// The stack as an application sees it, on its own core.
pub trait NetCtx {
    /// This core.
    fn core(&self) -> CoreInfo;
    /// The time of the current burst.
    fn now(&self) -> Instant;
    /// Our IPv4 address.
    fn local_addr(&self) -> Ipv4Addr;
    /// Take UDP `port` on this core for the calling application.
    fn bind_udp(&mut self, port: u16) -> Result<(), BindError>;
    /// Release a port the calling application bound.
    fn unbind_udp(&mut self, port: u16) -> bool;
    /// A UDP socket connected to `dst`: an ephemeral local port, bound for
    /// the calling application, whose replies come back to this core (RSS
    /// predicted where the device allows, handed over between cores where
    /// not), taking datagrams from `dst` only. Send with
    /// [`send_udp`](Self::send_udp) from the returned port; release it with
    /// [`unbind_udp`](Self::unbind_udp).
    fn udp_connect(&mut self, dst: SocketAddrV4) -> Result<u16, BindError>;
    /// Send `payload` from local `src_port` (bound by the caller) to `dst`:
    /// on-link directly, off-link through the gateway, fragmented if larger
    /// than the MTU. Never blocks.
    fn send_udp(
        &mut self,
        src_port: u16,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> Result<(), SendError>;

    /// Accept TCP connections on `port` on this core; they arrive as
    /// [`TcpEvent::Accepted`].
    fn tcp_listen(&mut self, port: u16) -> Result<(), BindError>;
    /// Open a connection to `dst` (RFC 9293 active open). The SYN goes out
    /// now; [`TcpEvent::Connected`] or [`TcpEvent::Closed`] follows.
    fn tcp_connect(&mut self, dst: SocketAddrV4) -> Result<ConnId, TcpError>;
    /// Queue data; returns how much was taken: less than all when the send
    /// buffer is full (a `Writable` event follows when there is room).
    fn tcp_send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, TcpError>;
    /// Room in the send buffer now.
    fn tcp_send_space(&self, conn: ConnId) -> Result<usize, TcpError>;
    /// Read in-order data into `buf`; 0 when nothing is readable. Reads
    /// as much as is readable, up to `buf.len()`: a shorter read leaves
    /// nothing readable.
    fn tcp_recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, TcpError>;
    /// Readable bytes now.
    fn tcp_recv_len(&self, conn: ConnId) -> Result<usize, TcpError>;
    /// Queue for sending what is readable, as [`NetCtx::tcp_recv`] of all
    /// of it and [`NetCtx::tcp_send`] of what was read would, when that can
    /// be done without copying it (an echo: the bytes change buffers, not
    /// places). `Ok(None)`: not now, nothing changed (recv and send it);
    /// `Ok(Some(n))`: `n` bytes moved, nothing left readable, all queued.
    fn tcp_echo_readable(&mut self, conn: ConnId) -> Result<Option<usize>, TcpError> {
        let _ = conn;
        Ok(None)
    }
    /// The connection's congestion window, round-trip time and
    /// retransmission timeout now: to watch a transfer, not to steer it.
    fn tcp_info(&self, conn: ConnId) -> Result<TcpInfo, TcpError>;
    /// Send FIN after the queued data; reading goes on.
    fn tcp_shutdown(&mut self, conn: ConnId) -> Result<(), TcpError>;
    /// Shut down and let go: the stack finishes the close on its own. Data
    /// that arrives afterwards is answered with RST; unread data makes
    /// this an abort.
    fn tcp_close(&mut self, conn: ConnId) -> Result<(), TcpError>;
    /// Reset the connection now.
    fn tcp_abort(&mut self, conn: ConnId) -> Result<(), TcpError>;
    /// RFC 5482 user timeout of this connection, in place of
    /// `--tcp-user-timeout-ms`: once its data has gone unacknowledged, or
    /// waited behind the peer's zero window, this long, it is reset and
    /// [`TcpEvent::Closed`] with [`CloseReason::TimedOut`] follows
    /// (counted in `tcp_user_timeouts`). `None`, or a zero duration, turns
    /// it off (retransmissions are counted instead, as Linux
    /// `TCP_USER_TIMEOUT` 0). Checked when the retransmission or window
    /// probe timer next fires.
    fn tcp_set_user_timeout(
        &mut self,
        conn: ConnId,
        timeout: Option<Duration>,
    ) -> Result<(), TcpError>;
    /// Nagle's algorithm off (`true`, Linux `TCP_NODELAY`) or on for this
    /// connection, in place of `--tcp-nodelay`. Turned off, what it held
    /// back leaves when the callback returns.
    fn tcp_set_nodelay(&mut self, conn: ConnId, nodelay: bool) -> Result<(), TcpError>;
    /// This connection's congestion control, in place of `--tcp-cc`
    /// (Linux `TCP_CONGESTION`): best right after `tcp_connect` or on
    /// [`TcpEvent::Accepted`]; a later switch keeps the window.
    fn tcp_set_congestion_control(
        &mut self,
        conn: ConnId,
        algorithm: CcAlgorithm,
    ) -> Result<(), TcpError>;
    /// Keepalive (RFC 1122 4.2.3.6) for this connection, in place of
    /// `--tcp-keepalive`: after `idle` without a segment from the peer,
    /// up to `probes` probes `interval` apart, then reset and
    /// [`TcpEvent::Closed`] with [`CloseReason::TimedOut`]. The idle time
    /// runs from now; `None` stops it. Idle and interval of at least a
    /// second and at least one probe, as Linux (`TCP_KEEPIDLE`,
    /// `TCP_KEEPINTVL`, `TCP_KEEPCNT`), or [`TcpError::InvalidArgument`].
    fn tcp_set_keepalive(
        &mut self,
        conn: ConnId,
        keepalive: Option<Keepalive>,
    ) -> Result<(), TcpError>;
    /// Fix this connection's send and receive buffers at `send` and
    /// `recv` bytes (Linux `SO_SNDBUF`, `SO_RCVBUF`), in place of the
    /// autotuned ones of `--tcp-wmem` and `--tcp-rmem`; `None` leaves a
    /// direction as it is. A fixed buffer is not autotuned. Sizes of
    /// 4096 to 67108864 bytes, or [`TcpError::InvalidArgument`]. Neither
    /// shrinks below the bytes it holds, nor the receive buffer below the
    /// window already offered; a receive buffer is announced in full only
    /// if set before the handshake (right after `tcp_connect`), or within
    /// the window scale of `--tcp-rmem`'s maximum.
    fn tcp_set_buffer_limits(
        &mut self,
        conn: ConnId,
        send: Option<usize>,
        recv: Option<usize>,
    ) -> Result<(), TcpError>;
}

/// An application instance on one core.
pub trait App {
    /// A short name for logs and counters, e.g. "udp-echo:7".
    fn name(&self) -> String;
    /// Called once on the core before traffic flows: bind ports here.
    fn start(&mut self, net: &mut dyn NetCtx) -> Result<(), BindError>;
    /// A datagram arrived on a port this application bound.
    fn on_datagram(&mut self, net: &mut dyn NetCtx, dgram: &Datagram<'_>);
    /// Something happened on a TCP connection this application owns.
    fn on_tcp(&mut self, _net: &mut dyn NetCtx, _event: TcpEvent) {}
    /// Called on the core's timer tick (about every 100 microseconds).
    fn poll(&mut self, _net: &mut dyn NetCtx) {}
    /// Counters to print with the stack's, as (name, value).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// The built-in UDP echo, whose `on_datagram` the stack then calls
    /// without dynamic dispatch (the per-datagram path, inlined); None for
    /// every other application.
    fn as_udp_echo(&mut self) -> Option<&mut builtin::UdpEcho> {
        None
    }
}

/// docs/app-api.md, whose example is compiled here as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../docs/app-api.md")]
pub struct AppApiGuide;

/// Builds one instance of an application for a core. Called on that core.
pub type AppFactory = Arc<dyn Fn(&CoreInfo) -> Box<dyn App> + Send + Sync>;
