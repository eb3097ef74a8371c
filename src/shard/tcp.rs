//! TCP on a core: segments in (checksum, lookup, listeners, resets),
//! segments out (headers, checksum or offload, next hop), timers, and the
//! application calls of [`NetCtx`].

use super::ctx::Net;
use super::ethernet::ETH_LEN;
use super::ipv4::{DEFAULT_TTL, IP_LEN};
use crate::app::{App, BindError, ConnId, SendError, TcpError, TcpEvent};
use crate::buf::{BufPool, L4Checksum, PacketBuf};
use crate::ipv4::NextHop;
use crate::stats::flows::Transport;
use crate::stats::{Counters, DropReason};
use crate::tcp::buffer::BUFFER_SIZES;
use crate::tcp::syncache::{syn_ack, Expired, SynAction, SynEntry};
use crate::tcp::syncookie::{PeerSyn, SynCookies};
use crate::tcp::table::FlowKey;
use crate::tcp::{event, tcb, Keepalive, SynCookieMode, Tcb, TwVerdict};
use crate::time::{Duration, Instant};
use crate::wire::ipv4::ecn::NOT_ECT;
use crate::wire::tcp::{self, TcpFrameHead, TcpFrameTemplate};
use crate::wire::{checksum, IpProtocol, Ipv4Repr, TcpPacket, TcpRepr};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Refresh the TCP gauges this often.
const GAUGE_INTERVAL: Duration = Duration::from_millis(100);

impl<P: BufPool> Net<P> {
    pub(super) fn process_tcp(&mut self, ip: &Ipv4Repr, payload: &[u8]) {
        // One pass over the header (new_checked's and parse's checks in
        // their order, each length once).
        let verify = !self.rx_l4_good;
        let mut repr = TcpRepr::EMPTY;
        let header_len =
            match TcpRepr::parse_segment(payload, &ip.src_addr, &ip.dst_addr, verify, &mut repr) {
                Ok(hl) => hl,
                Err(e) => return self.drop_frame(e.into()),
            };
        if ip.dst_addr != self.iface.ip.address() {
            // TCP is unicast only (RFC 1122 4.2.3.10).
            return self.drop_frame(DropReason::NotForUs);
        }
        let f = repr.flags;
        if f.syn() && (f.rst() || f.fin()) {
            // Impossible combinations: no state machine step applies.
            return self.drop_frame(DropReason::Malformed);
        }
        self.counters.tcp_rx_segments += 1;
        let remote = SocketAddrV4::new(ip.src_addr, repr.src_port);
        let key = FlowKey {
            local_port: repr.dst_port,
            remote,
        };
        let data = payload.get(header_len..).unwrap_or_default();
        // Nearly every segment: its connection, found and taken out in one
        // slot access.
        let found = match self.tcp.take_flow(&key) {
            Ok((index, mut tcb)) => {
                self.record_flow_in(Transport::Tcp, repr.dst_port, remote, data.len());
                tcb.set_rx_wait(self.rx_wait);
                tcb.process_with_ecn(self.now, &repr, ip.ecn, data, &mut self.counters);
                return self.finish_tcb(index, tcb);
            }
            Err(found) => found,
        };
        if let Some(index) = found {
            let verdict =
                self.tcp
                    .process_time_wait(self.now, index, &repr, data.len(), &mut self.counters);
            match verdict {
                None => {
                    // Taken out already (as run_tcb finds it): nothing
                    // to run.
                    self.record_flow_in(Transport::Tcp, repr.dst_port, remote, data.len());
                    return;
                }
                // RFC 6191: a new incarnation took over a TIME_WAIT
                // connection; its SYN goes to the listener.
                Some(TwVerdict::Reopen) => self.counters.tcp_time_wait_reused += 1,
                Some(v) => {
                    self.record_flow_in(Transport::Tcp, repr.dst_port, remote, data.len());
                    if let TwVerdict::Ack(ack) = v {
                        self.send_time_wait_ack(remote, &ack);
                    }
                    return;
                }
            }
        }
        // RFC 9293 3.10.7.1 (CLOSED) and 3.10.7.2 (LISTEN).
        let Some(app) = self.tcp.listener(repr.dst_port) else {
            self.drop_frame(DropReason::TcpNoConnection);
            return self.send_tcp_reset(&repr, data.len(), ip.src_addr);
        };
        if self.syn.cache.get(&key).is_some() {
            return self.process_half_open(&key, app, &repr, ip.ecn, data);
        }
        if f.rst() {
            return self.drop_frame(DropReason::TcpNoConnection);
        }
        if f.ack() {
            // The ACK of a handshake answered with a cookie (RFC 4987 3.6),
            // looked for only while cookies are out.
            if !f.syn() && self.syn.cookies_recent(self.now) {
                let local = SocketAddrV4::new(self.iface.ip.address(), repr.dst_port);
                if let Some(c) = self.syn.cookies.check(self.now, local, remote, &repr) {
                    self.counters.tcp_syncookies_ok += 1;
                    let ts_recent = repr.options.timestamps.map_or(0, |t| t.0);
                    let half = (c.irs, c.iss, c.peer, ts_recent, None);
                    return self.establish(&key, app, half, &repr, ip.ecn, data);
                }
                self.counters.tcp_syncookies_failed += 1;
            }
            self.drop_frame(DropReason::TcpNoConnection);
            return self.send_tcp_reset(&repr, data.len(), ip.src_addr);
        }
        if !f.syn() {
            return self.drop_frame(DropReason::TcpNoConnection);
        }
        self.process_listen_syn(&key, &repr);
    }

    /// RFC 9293 3.10.7.2, LISTEN, third check (a SYN), by the SYN flood
    /// policy (syncache.rs): a SYN cache entry, a cookie, or no room.
    /// Either way no connection yet: it is built from the ACK.
    fn process_listen_syn(&mut self, key: &FlowKey, syn: &TcpRepr) {
        let port = key.local_port;
        let mode = self.syn.mode;
        let table_full = if mode == SynCookieMode::Never {
            !self.tcp.make_room()
        } else {
            // No TIME-WAIT recycled per SYN of a flood: that waits for the
            // ACK.
            self.tcp.is_full()
        };
        if mode != SynCookieMode::Always && !self.syn.has_room(port) {
            self.counters.tcp_syn_cache_full += 1;
        }
        let peer = PeerSyn::negotiate(&self.tcp.cfg, syn);
        let mut action = self.syn.decide(port, table_full);
        if action == SynAction::Cache {
            let local = SocketAddrV4::new(self.iface.ip.address(), port);
            let entry = SynEntry {
                key: *key,
                irs: syn.seq_number,
                iss: self.tcp.isn.isn(self.now, local, key.remote),
                peer,
                ts_recent: syn.options.timestamps.map_or(0, |t| t.0),
                sent: self.now,
                retransmits: 0,
                next_retransmit: self.now,
            };
            if self.syn.cache.insert(entry) {
                self.counters.tcp_syn_cache_added += 1;
                return self.dispatch_half_open(&entry, false);
            }
            // Only a table of ports full of closed listeners' entries.
            action = if mode == SynCookieMode::Never {
                SynAction::Drop
            } else {
                SynAction::Cookie
            };
        }
        match action {
            SynAction::Cookie => self.dispatch_cookie(key, syn.seq_number, peer, syn),
            SynAction::Refuse => {
                self.counters.tcp_syn_refused += 1;
                self.send_tcp_reset(syn, 0, *key.remote.ip());
            }
            _ => self.drop_frame(DropReason::QueueFull),
        }
    }

    /// Answer a SYN with a cookie: nothing kept (RFC 4987 3.6).
    fn dispatch_cookie(&mut self, key: &FlowKey, irs: u32, peer: PeerSyn, syn: &TcpRepr) {
        let mut p = peer.for_cookie();
        let tsval = if p.timestamps {
            SynCookies::tsval(tcb::ts_now(self.now), &p)
        } else {
            None
        };
        if tsval.is_none() {
            // No timestamp to carry the options in.
            p = PeerSyn {
                timestamps: false,
                ..p
            }
            .for_cookie();
        }
        let local = SocketAddrV4::new(self.iface.ip.address(), key.local_port);
        let iss = self.syn.cookies.iss(self.now, local, key.remote, irs, &p);
        let ecr = syn.options.timestamps.map_or(0, |t| t.0);
        let repr = syn_ack(&self.tcp.cfg, key, iss, irs, &p, (tsval.unwrap_or(0), ecr));
        // Counted when issued, as Linux's SyncookiesSent: a SYN-ACK whose
        // next hop cannot be resolved (a spoofed source behind a silent
        // gateway) is a cookie all the same, and counted again under its
        // drop reason.
        self.counters.tcp_syncookies_sent += 1;
        self.syn.cookie_sent(self.now);
        if self
            .dispatch_tcp(*key.remote.ip(), &repr, NOT_ECT, &[], &[])
            .is_ok()
        {
            self.counters.tcp_tx_segments += 1;
        }
    }

    /// Send a half-open connection's SYN-ACK (again, if `retransmit`).
    fn dispatch_half_open(&mut self, e: &SynEntry, retransmit: bool) {
        let ts = (tcb::ts_now(self.now).max(1), e.ts_recent);
        let repr = syn_ack(&self.tcp.cfg, &e.key, e.iss, e.irs, &e.peer, ts);
        if self
            .dispatch_tcp(*e.key.remote.ip(), &repr, NOT_ECT, &[], &[])
            .is_ok()
        {
            self.counters.tcp_tx_segments += 1;
            self.counters.tcp_retransmits += retransmit as u64;
        }
    }

    /// A segment for a half-open connection in the SYN cache: SYN-RECEIVED
    /// of RFC 9293 3.10.7.4 until the ACK, which builds the connection.
    fn process_half_open(
        &mut self,
        key: &FlowKey,
        app: usize,
        seg: &TcpRepr,
        ip_ecn: u8,
        data: &[u8],
    ) {
        let Some(&e) = self.syn.cache.get(key) else {
            return;
        };
        let f = seg.flags;
        if f.rst() {
            // RFC 5961 3.2: only the exact sequence number resets; then
            // the passive open returns to LISTEN.
            if seg.seq_number == e.irs.wrapping_add(1) {
                self.syn.cache.remove(key);
                self.counters.tcp_rst_received += 1;
            } else {
                self.drop_frame(DropReason::TcpOutOfWindow);
            }
            return;
        }
        // First check (RFC 9293 3.10.7.4), the sequence number, in the
        // window a fresh connection offers: the handshake's ACK is at
        // IRS+1.
        let offset = seg.seq_number.wrapping_sub(e.irs.wrapping_add(1));
        let in_window = (offset as usize) < self.tcp.cfg.rx_buffer;
        if f.syn() {
            if !f.ack() && seg.seq_number == e.irs {
                // The same SYN again: our SYN-ACK was lost.
                let ts_recent = seg.options.timestamps.map_or(e.ts_recent, |t| t.0);
                if let Some(x) = self.syn.cache.get_mut(key) {
                    x.ts_recent = ts_recent;
                }
                return self.dispatch_half_open(&SynEntry { ts_recent, ..e }, true);
            }
            // In the window, then fourth: a SYN in a passive SYN-RECEIVED
            // returns it to LISTEN (as Tcb does); the peer's next SYN
            // starts afresh.
            if in_window {
                self.syn.cache.remove(key);
                return self.drop_frame(DropReason::TcpNoConnection);
            }
            return self.drop_frame(DropReason::TcpOutOfWindow);
        }
        // Outside the window (one below: a keepalive probe from a peer
        // that took our SYN-ACK): dropped, never built into a connection
        // that would find it unacceptable and wait in SYN-RECEIVED.
        if !in_window {
            return self.drop_frame(DropReason::TcpOutOfWindow);
        }
        if !f.ack() {
            // Fifth check: no ACK, no use.
            return self.drop_frame(DropReason::TcpNoConnection);
        }
        if seg.ack_number != e.iss.wrapping_add(1) {
            // An unacceptable ACK in SYN-RECEIVED: <SEQ=SEG.ACK><CTL=RST>.
            self.counters.tcp_bad_ack += 1;
            self.drop_frame(DropReason::TcpNoConnection);
            return self.send_tcp_reset(seg, data.len(), *key.remote.ip());
        }
        if !self.tcp.make_room() {
            // Keep the entry: its next SYN-ACK draws the ACK again.
            self.counters.tcp_accept_table_full += 1;
            return self.drop_frame(DropReason::QueueFull);
        }
        let first_sent = (e.retransmits == 0).then_some(e.sent);
        let half = (e.irs, e.iss, e.peer, e.ts_recent, first_sent);
        self.establish(key, app, half, seg, ip_ecn, data);
        // Now that the connection is in the table (and the directory: no
        // moment where another core finds neither).
        self.syn.cache.remove(key);
    }

    /// The handshake of `key` completed (`ack` acknowledged our SYN-ACK):
    /// build the connection as `Tcb::accept` would have from the SYN, mark
    /// its SYN-ACK sent, and let it take the ACK and its data. `half`:
    /// (IRS, ISS, the SYN's options, the peer's latest TSval, when the only
    /// SYN-ACK left). `ip_ecn`: the ACK's IP ECN field.
    fn establish(
        &mut self,
        key: &FlowKey,
        app: usize,
        half: (u32, u32, PeerSyn, u32, Option<Instant>),
        ack: &TcpRepr,
        ip_ecn: u8,
        data: &[u8],
    ) {
        let (irs, iss, peer, ts_recent, first_sent) = half;
        let local = SocketAddrV4::new(self.iface.ip.address(), key.local_port);
        let syn = peer.syn_repr(
            key.local_port,
            key.remote.port(),
            irs,
            ts_recent,
            ack.window_len,
        );
        let mut tcb = Tcb::accept(&self.tcp.cfg, self.now, local, key.remote, iss, app, &syn);
        tcb.syn_ack_sent(self.now, first_sent);
        let Some(id) = self.tcp.insert(self.now, Box::new(tcb)) else {
            self.counters.tcp_accept_table_full += 1;
            return self.drop_frame(DropReason::QueueFull);
        };
        self.record_flow_in(Transport::Tcp, key.local_port, key.remote, data.len());
        self.run_tcb(id.index, |t, now, c| {
            t.process_with_ecn(now, ack, ip_ecn, data, c)
        });
    }

    /// Take a connection out, run `f` on it, send what it has to send,
    /// collect its events, and put it back (or free it).
    fn run_tcb(&mut self, index: u32, f: impl FnOnce(&mut Tcb, Instant, &mut Counters)) {
        let Some(mut tcb) = self.tcp.take(index) else {
            return;
        };
        f(&mut tcb, self.now, &mut self.counters);
        self.finish_tcb(index, tcb);
    }

    /// The end of [`run_tcb`](Self::run_tcb), for a connection taken out
    /// and run: send, collect its events, put it back.
    #[inline(always)]
    fn finish_tcb(&mut self, index: u32, mut tcb: Box<Tcb>) {
        self.dispatch_tcb(&mut tcb);
        self.collect_events(index, &mut tcb);
        self.put_tcb(index, tcb);
    }

    /// Put a connection back. One that becomes a TIME-WAIT record while its
    /// application holds it is gone for the application: it is told CLOSED.
    /// Inlined: a segment puts its connection back once or twice (after
    /// its processing, and after the application's send), each a call and
    /// its register saves out of line (make pathcost).
    #[inline(always)]
    fn put_tcb(&mut self, index: u32, tcb: Box<Tcb>) {
        // Its id before `put`: a TIME-WAIT record takes a new generation.
        let conn = self.tcp.id_of(index);
        if let Some(app) = self.tcp.put(self.now, index, tcb) {
            let reason = crate::tcp::CloseReason::Normal;
            self.tcp_events
                .push((app, TcpEvent::Closed { conn, reason }));
        }
    }

    /// A TIME-WAIT record's ACK.
    fn send_time_wait_ack(&mut self, remote: SocketAddrV4, ack: &TcpRepr) {
        if self
            .dispatch_tcp(*remote.ip(), ack, NOT_ECT, &[], &[])
            .is_ok()
        {
            self.counters.tcp_tx_segments += 1;
            self.record_flow_out(Transport::Tcp, ack.src_port, remote, 1, 0);
        }
    }

    #[inline]
    fn dispatch_tcb(&mut self, tcb: &mut Tcb) {
        // After most segments (a delayed ACK, an ACK of everything) there
        // is nothing to send or count, and no flow record to touch.
        let due = !tcb.nothing_due();
        if !due && self.flows.is_none() && tcb.tx_stats.is_empty() {
            return;
        }
        self.dispatch_tcb_now(tcb, due);
    }

    /// `due`: `!tcb.nothing_due()`, as `dispatch_tcb` found it.
    #[inline(never)]
    fn dispatch_tcb_now(&mut self, tcb: &mut Tcb, due: bool) {
        let dst = *tcb.remote.ip();
        let now = self.now;
        if due {
            tcb.dispatch_due_with_ecn(now, &mut |repr: &TcpRepr, ecn: u8, a: &[u8], b: &[u8]| {
                self.dispatch_tcp(dst, repr, ecn, a, b).is_ok()
            });
        }
        let s = std::mem::take(&mut tcb.tx_stats);
        self.record_flow_out(
            Transport::Tcp,
            tcb.local.port(),
            tcb.remote,
            s.segments,
            s.bytes,
        );
        let c = &mut self.counters;
        c.tcp_tx_segments += s.segments;
        c.tcp_tx_bytes += s.bytes;
        c.tcp_retransmits += s.retransmits;
        c.tcp_rst_sent += s.resets;
        c.tcp_probes_sent += s.probes;
        c.tcp_cwr_sent += s.cwr;
    }

    #[inline]
    fn collect_events(&mut self, index: u32, tcb: &mut Tcb) {
        let bits = tcb.take_events();
        if bits != 0 && !tcb.app_closed {
            if bits == event::READABLE {
                // Data arrived (most events): what push_events does for it.
                let conn = self.tcp.id_of(index);
                self.tcp_events.push((tcb.app, TcpEvent::Readable { conn }));
                return;
            }
            self.push_events(index, tcb, bits);
        }
    }

    /// The events `bits` of a connection its application holds.
    #[inline(never)]
    fn push_events(&mut self, index: u32, tcb: &Tcb, bits: u8) {
        let conn = self.tcp.id_of(index);
        let app = tcb.app;
        if bits & event::CONNECTED != 0 {
            let ev = if tcb.passive {
                TcpEvent::Accepted {
                    conn,
                    remote: tcb.remote,
                    local_port: tcb.local.port(),
                }
            } else {
                TcpEvent::Connected { conn }
            };
            self.tcp_events.push((app, ev));
        }
        if bits & event::READABLE != 0 {
            self.tcp_events.push((app, TcpEvent::Readable { conn }));
        }
        if bits & event::WRITABLE != 0 {
            self.tcp_events.push((app, TcpEvent::Writable { conn }));
        }
        if bits & event::PEER_CLOSED != 0 {
            self.tcp_events.push((app, TcpEvent::PeerClosed { conn }));
        }
        if bits & event::CLOSED != 0 {
            let reason = tcb.close_reason.unwrap_or(crate::tcp::CloseReason::Normal);
            self.tcp_events
                .push((app, TcpEvent::Closed { conn, reason }));
        }
    }

    fn send_tcp_reset(&mut self, seg: &TcpRepr, payload_len: usize, dst: Ipv4Addr) {
        if let Some(rst) = tcb::reset_for(seg, payload_len) {
            if self.dispatch_tcp(dst, &rst, NOT_ECT, &[], &[]).is_ok() {
                self.counters.tcp_rst_sent += 1;
                self.counters.tcp_tx_segments += 1;
            }
        }
    }

    /// Build and queue one segment: Ethernet, IPv4, TCP header, payload.
    /// Inlined: into the Tcb's emit closure it saves a call and the move of
    /// seven arguments per segment (make pathcost); the resets and
    /// TIME-WAIT ACKs take a copy.
    #[inline(always)]
    fn dispatch_tcp(
        &mut self,
        dst: Ipv4Addr,
        repr: &TcpRepr,
        ecn: u8,
        a: &[u8],
        b: &[u8],
    ) -> Result<(), SendError> {
        let hlen = repr.header_len();
        let slot = TcpFrames::slot_of(dst);
        let s = &self.tcp_frames.slots[slot];
        if s.dst != dst || s.arp_generation != self.arp.generation() {
            // The first segment to `dst` since the ARP snapshot changed
            // (or since another destination took the slot).
            if let Some(hop) = self.fill_tcp_frame(slot, dst)? {
                return self.dispatch_tcp_general(dst, hop, repr, hlen, ecn, a, b);
            }
        }
        // Next hop resolved (nearly every segment).
        self.dispatch_tcp_resolved(slot, repr, hlen, ecn, a, b)
    }

    /// Route `dst` and, if its next hop resolves, write its frame head in
    /// `slot` and return None; else the next hop, for the general path.
    #[inline(never)]
    fn fill_tcp_frame(&mut self, slot: usize, dst: Ipv4Addr) -> Result<Option<NextHop>, SendError> {
        let hop = self.route(dst)?;
        let NextHop::Neighbor(next) = hop else {
            return Ok(Some(hop));
        };
        let Some(dst_mac) = self.arp.lookup(&next) else {
            return Ok(Some(hop));
        };
        let head = TcpFrameHead {
            src_mac: self.iface.mac,
            dst_mac,
            src_addr: self.iface.ip.address(),
            dst_addr: dst,
            hop_limit: DEFAULT_TTL,
            ip_cksum_offload: self.iface.tx_ipv4_cksum,
            tcp_cksum_offload: self.iface.tx_tcp_cksum,
        };
        self.tcp_frames.slots[slot] = TcpFrameSlot {
            dst,
            arp_generation: self.arp.generation(),
            template: TcpFrameTemplate::new(&head),
        };
        Ok(None)
    }

    /// [`Net::dispatch_tcp`] to a resolved next hop, whose frame head
    /// `slot` holds: the frame is queued first and written where it lies
    /// (make pathcost: a buffer moved from the pool to a result, to the
    /// frame and to the queue was a quarter of this function). Counts and
    /// errors are those of `alloc_frame` and `push_tx`, in their order.
    #[inline(always)]
    fn dispatch_tcp_resolved(
        &mut self,
        slot: usize,
        repr: &TcpRepr,
        hlen: usize,
        ecn: u8,
        a: &[u8],
        b: &[u8],
    ) -> Result<(), SendError> {
        let len = ETH_LEN + IP_LEN + hlen + a.len() + b.len();
        // alloc_frame's work, written out: called here (inlined or not)
        // the buffer moves once more through its Result (make pathcost
        // tcp-data-ack: 3600 against 3651 with it inlined).
        let Some(mut buf) = self.pool.alloc() else {
            self.counters.drop(DropReason::NoBuffer);
            return Err(SendError::NoBuffer);
        };
        if !buf.set_len(len) {
            self.counters.drop(DropReason::NoBuffer);
            return Err(SendError::NoBuffer);
        }
        let ident = self.ident.next_ident();
        if self.tx.len() >= self.tx_room() {
            // push_tx's refusal (the frame it refused unwritten).
            self.counters.tx_backlog_full += 1;
            self.counters.drop(DropReason::QueueFull);
            return Err(SendError::QueueFull);
        }
        self.tx.push(buf);
        let Some(buf) = self.tx.last_mut() else {
            return Err(SendError::QueueFull);
        };
        let t = &self.tcp_frames.slots[slot].template;
        let frame = buf.data_mut();
        let seg = &mut frame[tcp::FRAME_HEAD_LEN + hlen..];
        seg[..a.len()].copy_from_slice(a);
        if !b.is_empty() {
            // Most segments lie in one chunk: no second copy call.
            seg[a.len()..].copy_from_slice(b);
        }
        t.emit(frame, ident, ecn, repr, hlen);
        let l4 = t.tcp_cksum_offload().then_some(L4Checksum::Tcp);
        super::ipv4::request_offload(buf, t.ip_cksum_offload(), l4);
        Ok(())
    }

    /// [`Net::dispatch_tcp`]'s general path: the next hop to resolve, or
    /// broadcast.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn dispatch_tcp_general(
        &mut self,
        dst: Ipv4Addr,
        hop: NextHop,
        repr: &TcpRepr,
        hlen: usize,
        ecn: u8,
        a: &[u8],
        b: &[u8],
    ) -> Result<(), SendError> {
        let src = self.iface.ip.address();
        let tcp_len = hlen + a.len() + b.len();
        let offload = self.iface.tx_tcp_cksum;
        let mut buf = self.alloc_frame(ETH_LEN + IP_LEN + tcp_len)?;
        {
            let seg = &mut buf.data_mut()[ETH_LEN + IP_LEN + hlen..];
            seg[..a.len()].copy_from_slice(a);
            seg[a.len()..].copy_from_slice(b);
        }
        // The general path: the next hop to resolve, or broadcast.
        {
            let seg = &mut buf.data_mut()[ETH_LEN + IP_LEN..];
            let mut packet = TcpPacket::new_unchecked(&mut seg[..tcp_len]);
            repr.emit_with_len(&mut packet, hlen);
            if offload {
                // DPDK wants the pseudo-header sum in the field.
                packet.set_checksum(checksum::pseudo_header(
                    &src,
                    &dst,
                    IpProtocol::Tcp,
                    tcp_len as u32,
                ));
            } else {
                packet.fill_checksum(&src, &dst);
            }
        }
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len,
            hop_limit: DEFAULT_TTL,
            ecn,
        };
        let ident = self.ident.next_ident();
        self.emit_headers(&mut buf, &ip, ident, None);
        self.request_tx_offload(&mut buf, offload.then_some(L4Checksum::Tcp));
        self.dispatch_frame(buf, hop)
    }

    /// Run the TCP timers that are due, and refresh the gauges.
    pub(super) fn poll_tcp_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.tcp_expired);
        expired.clear();
        self.tcp.expired(self.now, &mut expired);
        for &index in &expired {
            self.run_tcb(index, |t, now, c| t.on_timer(now, c));
        }
        self.tcp_expired = expired;
        self.poll_syn_cache();
        if self.now >= self.next_tcp_gauges {
            self.next_tcp_gauges = self.now.plus(GAUGE_INTERVAL);
            use crate::tcp::State;
            let (t, c) = (&self.tcp, &mut self.counters);
            c.tcp_connections = t.len() as u64;
            c.tcp_time_wait = t.count_state(State::TimeWait) as u64;
            c.tcp_syn_sent = t.count_state(State::SynSent) as u64;
            c.tcp_syn_received = t.count_state(State::SynReceived) as u64;
            c.tcp_established = t.count_state(State::Established) as u64;
            c.tcp_fin_wait1 = t.count_state(State::FinWait1) as u64;
            c.tcp_fin_wait2 = t.count_state(State::FinWait2) as u64;
            c.tcp_close_wait = t.count_state(State::CloseWait) as u64;
            c.tcp_closing = t.count_state(State::Closing) as u64;
            c.tcp_last_ack = t.count_state(State::LastAck) as u64;
            c.tcp_time_wait_recycled = t.time_wait_recycled;
            c.tcp_rtt_cache_entries = t.rtt_cache.len() as u64;
            c.tcp_rtt_cache_hits = t.rtt_cache.hits;
            c.tcp_rtt_cache_replaced = t.rtt_cache.replaced;
            c.tcp_half_open = self.syn.cache.len() as u64;
            let mem = crate::tcp::buffer::core_stats();
            c.tcp_mem_bytes = mem.bytes as u64;
            c.tcp_mem_peak = mem.peak as u64;
            c.tcp_mem_limit = mem.limit as u64;
            c.tcp_mem_refused = mem.refused;
            if let Some(log) = self.flows.as_ref() {
                self.counters.flow_records = log.len() as u64;
            }
        }
    }

    /// Retransmit the SYN cache's SYN-ACKs that are due, forget the entries
    /// out of retransmissions (and those whose listener went away).
    fn poll_syn_cache(&mut self) {
        let mut expired = std::mem::take(&mut self.syn.expired);
        expired.clear();
        self.syn.cache.expired(self.now, &mut expired);
        for x in &expired {
            match x {
                Expired::Retransmit(e) if self.tcp.listener(e.key.local_port).is_some() => {
                    self.dispatch_half_open(e, true)
                }
                Expired::Retransmit(e) => {
                    self.syn.cache.remove(&e.key);
                }
                Expired::TimedOut(_) => self.counters.tcp_syn_cache_timeouts += 1,
            }
        }
        self.syn.expired = expired;
    }

    /// Run an application's call on its own connection.
    fn with_conn<R>(
        &mut self,
        conn: ConnId,
        f: impl FnOnce(&mut Tcb, Instant) -> Result<R, TcpError>,
    ) -> Result<R, TcpError> {
        self.with_conn_then(conn, true, f)
    }

    /// [`Net::with_conn`]; `settle` false for a call that changes neither
    /// the connection's state nor its timers (a send or a read: buffers
    /// and flags only), after which the table's filing and state counts
    /// stand as they were (make pathcost: two calls per echo), unless the
    /// connection is in TIME-WAIT (see `TcpTable::put_closing`).
    #[inline(always)]
    fn with_conn_then<R>(
        &mut self,
        conn: ConnId,
        settle: bool,
        f: impl FnOnce(&mut Tcb, Instant) -> Result<R, TcpError>,
    ) -> Result<R, TcpError> {
        let index = self.tcp.resolve(conn).ok_or(TcpError::NoConnection)?;
        let now = self.now;
        let current = self.current_app;
        // Run in its slot: no take and put for the common call.
        let Some(tcb) = self.tcp.get_mut(index) else {
            return Err(TcpError::NoConnection);
        };
        if tcb.app != current || tcb.app_closed {
            return Err(TcpError::NoConnection);
        }
        let r = f(tcb, now);
        if tcb.is_closed() {
            // An abort: its RST goes now, before the slot is freed.
            if let Some(mut tcb) = self.tcp.take(index) {
                self.dispatch_tcb(&mut tcb);
                tcb.take_events();
                self.put_tcb(index, tcb);
            }
            return r;
        }
        if !tcb.dispatch_queued {
            // Sends are coalesced: what the application writes in one
            // callback leaves together once it returns (no write-write
            // Nagle stall between a response's head and body).
            tcb.dispatch_queued = true;
            self.tcp_dirty.push(index);
        }
        // The application caused whatever happened: it is not told (but
        // a connection that turns into a TIME-WAIT record is gone for it).
        tcb.take_events();
        // A TIME-WAIT connection stays in its slot while it holds unread
        // data: the read that empties it turns it into a record.
        if settle || tcb.state == crate::tcp::State::TimeWait {
            self.settle_tcb(index);
        } else {
            // What settling would have done: nothing (every test with a
            // core checks it).
            debug_assert!(self.tcp.settled(self.now, index));
        }
        r
    }

    /// `put_tcb` for a connection an application's call ran on in place.
    fn settle_tcb(&mut self, index: u32) {
        let conn = self.tcp.id_of(index);
        if let Some(app) = self.tcp.settle(self.now, index) {
            let reason = crate::tcp::CloseReason::Normal;
            self.tcp_events
                .push((app, TcpEvent::Closed { conn, reason }));
        }
    }

    /// Send what applications queued during their callbacks.
    pub(super) fn flush_tcp_dirty(&mut self) {
        self.flush_tcp_dirty_inline();
    }

    /// [`Net::flush_tcp_dirty`], inlined into the delivery of events
    /// (after every segment that raised one: a call and its register
    /// saves less per data segment, make pathcost).
    #[inline(always)]
    fn flush_tcp_dirty_inline(&mut self) {
        while let Some(index) = self.tcp_dirty.pop() {
            // Queued once per callback; gone (or put back unqueued) since,
            // nothing to do.
            let Some(mut tcb) = self.tcp.take(index) else {
                continue;
            };
            if !tcb.dispatch_queued {
                self.tcp.restore(index, tcb);
                continue;
            }
            tcb.dispatch_queued = false;
            self.dispatch_tcb(&mut tcb);
            self.collect_events(index, &mut tcb);
            self.put_tcb(index, tcb);
        }
    }

    fn conn_ref(&self, conn: ConnId) -> Result<&Tcb, TcpError> {
        let index = self.tcp.resolve(conn).ok_or(TcpError::NoConnection)?;
        match self.tcp.get(index) {
            Some(t) if t.app == self.current_app && !t.app_closed => Ok(t),
            _ => Err(TcpError::NoConnection),
        }
    }

    pub(super) fn tcp_listen_impl(&mut self, port: u16) -> Result<(), BindError> {
        self.tcp.listen(port, self.current_app)
    }

    pub(super) fn tcp_connect_impl(&mut self, dst: SocketAddrV4) -> Result<ConnId, TcpError> {
        if self.routes.next_hop(*dst.ip()).is_none() || dst.port() == 0 {
            return Err(TcpError::NoRoute);
        }
        if !self.tcp.make_room() {
            return Err(TcpError::TableFull);
        }
        let (port, taken_over) = self
            .tcp
            .pick_tcp_port(&mut self.ports, self.now, dst)
            .ok_or(TcpError::NoPort)?;
        let local = SocketAddrV4::new(self.iface.ip.address(), port);
        let mut iss = self.tcp.isn.isn(self.now, local, dst);
        if let Some(tw) = taken_over {
            // Our own TIME-WAIT record gave its 4-tuple up (tcp_tw_reuse).
            iss = tw.reuse_iss(iss);
            self.counters.tcp_time_wait_reused_connect += 1;
        }
        let mut tcb = Tcb::connect(&self.tcp.cfg, self.now, local, dst, iss, self.current_app);
        self.tcp.start_rtt(self.now, &mut tcb);
        let id = self
            .tcp
            .insert(self.now, Box::new(tcb))
            .ok_or(TcpError::TableFull)?;
        self.run_tcb(id.index, |_, _, _| {});
        Ok(id)
    }

    pub(super) fn tcp_send_impl(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, TcpError> {
        // Tcb::send: the send buffer and `want_writable` only.
        self.with_conn_then(conn, false, |t, _| {
            if !t.can_send() {
                return Err(TcpError::Shutdown);
            }
            Ok(t.send(data))
        })
    }

    pub(super) fn tcp_send_space_impl(&self, conn: ConnId) -> Result<usize, TcpError> {
        Ok(self.conn_ref(conn)?.send_space())
    }

    pub(super) fn tcp_recv_impl(
        &mut self,
        conn: ConnId,
        buf: &mut [u8],
    ) -> Result<usize, TcpError> {
        // Tcb::recv: the receive buffer and `ack_now` only.
        self.with_conn_then(conn, false, |t, _| Ok(t.recv(buf)))
    }

    pub(super) fn tcp_echo_readable_impl(
        &mut self,
        conn: ConnId,
    ) -> Result<Option<usize>, TcpError> {
        // Tcb::echo_readable: recv and send's steps, buffers and flags
        // only.
        self.with_conn_then(conn, false, |t, _| Ok(t.echo_readable()))
    }

    pub(super) fn tcp_recv_len_impl(&self, conn: ConnId) -> Result<usize, TcpError> {
        Ok(self.conn_ref(conn)?.recv_len())
    }

    pub(super) fn tcp_info_impl(&self, conn: ConnId) -> Result<crate::app::TcpInfo, TcpError> {
        Ok(self.conn_ref(conn)?.info(self.now))
    }

    pub(super) fn tcp_shutdown_impl(&mut self, conn: ConnId) -> Result<(), TcpError> {
        self.with_conn(conn, |t, _| {
            t.shutdown();
            Ok(())
        })
    }

    pub(super) fn tcp_close_impl(&mut self, conn: ConnId) -> Result<(), TcpError> {
        self.with_conn(conn, |t, now| {
            t.close(now);
            Ok(())
        })
    }

    pub(super) fn tcp_set_user_timeout_impl(
        &mut self,
        conn: ConnId,
        timeout: Option<Duration>,
    ) -> Result<(), TcpError> {
        // A zero timeout is none, as Linux TCP_USER_TIMEOUT 0 (a zero one
        // would end the connection at its first retransmission timeout).
        let timeout = timeout.filter(|d| d.micros() > 0);
        self.with_conn(conn, |t, _| {
            t.set_user_timeout(timeout);
            Ok(())
        })
    }

    /// Apply a per-connection setting to one of the application's own
    /// connections.
    pub(super) fn with_own_conn(
        &mut self,
        conn: ConnId,
        f: impl FnOnce(&mut Tcb),
    ) -> Result<(), TcpError> {
        self.with_conn(conn, |t, _| {
            f(t);
            Ok(())
        })
    }

    pub(super) fn tcp_set_nodelay_impl(
        &mut self,
        conn: ConnId,
        nodelay: bool,
    ) -> Result<(), TcpError> {
        self.with_conn(conn, |t, _| {
            t.set_nagle(!nodelay);
            Ok(())
        })
    }

    pub(super) fn tcp_set_keepalive_impl(
        &mut self,
        conn: ConnId,
        keepalive: Option<Keepalive>,
    ) -> Result<(), TcpError> {
        // Linux's floors (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT >= 1):
        // a zero interval would probe on every timer tick.
        let second = Duration::from_secs(1);
        if keepalive.is_some_and(|k| k.idle < second || k.interval < second || k.probes == 0) {
            return Err(TcpError::InvalidArgument);
        }
        self.with_conn(conn, |t, now| {
            t.set_keepalive(now, keepalive);
            Ok(())
        })
    }

    pub(super) fn tcp_set_buffer_limits_impl(
        &mut self,
        conn: ConnId,
        send: Option<usize>,
        recv: Option<usize>,
    ) -> Result<(), TcpError> {
        // The range of `--tcp-buffer`.
        if [send, recv]
            .iter()
            .flatten()
            .any(|n| !BUFFER_SIZES.contains(n))
        {
            return Err(TcpError::InvalidArgument);
        }
        self.with_conn(conn, |t, _| {
            t.set_buffer_limits(send, recv);
            Ok(())
        })
    }

    pub(super) fn tcp_abort_impl(&mut self, conn: ConnId) -> Result<(), TcpError> {
        self.with_conn(conn, |t, _| {
            t.abort();
            t.app_closed = true;
            Ok(())
        })
    }
}

/// Slots of [`TcpFrames`], a power of two.
const TCP_FRAME_SLOTS: usize = 64;

/// The frame heads of TCP segments ([`TcpFrameTemplate`]), one per
/// destination address, direct-mapped. A head stands while the ARP snapshot
/// it was built in does: the interface (MACs, address, offloads) and the
/// routes are fixed for the core's life, so the next hop, its MAC and with
/// them the whole head depend on the destination and the snapshot alone.
pub(super) struct TcpFrames {
    slots: Box<[TcpFrameSlot; TCP_FRAME_SLOTS]>,
}

#[derive(Clone, Copy)]
struct TcpFrameSlot {
    dst: Ipv4Addr,
    /// `ArpReader::generation` when the head was built; `u64::MAX`, which
    /// the counter never reaches, in an empty slot.
    arp_generation: u64,
    template: TcpFrameTemplate,
}

impl TcpFrames {
    pub(super) fn new() -> TcpFrames {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let empty = TcpFrameSlot {
            dst: unspecified,
            arp_generation: u64::MAX,
            template: TcpFrameTemplate::new(&TcpFrameHead {
                src_mac: crate::wire::EthernetAddress([0; 6]),
                dst_mac: crate::wire::EthernetAddress([0; 6]),
                src_addr: unspecified,
                dst_addr: unspecified,
                hop_limit: 0,
                ip_cksum_offload: false,
                tcp_cksum_offload: false,
            }),
        };
        TcpFrames {
            slots: Box::new([empty; TCP_FRAME_SLOTS]),
        }
    }

    /// `dst`'s slot: the top bits of the address times 2^32 / phi
    /// (Fibonacci hashing), which every bit of the address moves.
    #[inline(always)]
    fn slot_of(dst: Ipv4Addr) -> usize {
        let bits = TCP_FRAME_SLOTS.trailing_zeros();
        (u32::from(dst).wrapping_mul(0x9e37_79b9) >> (32 - bits)) as usize
    }
}

/// Hand the events raised while segments or timers ran to their
/// applications. Calls the applications make meanwhile raise none.
#[inline]
pub(super) fn deliver_tcp_events<P: BufPool>(net: &mut Net<P>, apps: &mut [Box<dyn App>]) {
    // After most segments without data (an ACK): no event, nothing queued.
    if net.tcp_events.is_empty() && net.tcp_dirty.is_empty() {
        return;
    }
    deliver_tcp_events_now(net, apps);
}

#[inline(never)]
fn deliver_tcp_events_now<P: BufPool>(net: &mut Net<P>, apps: &mut [Box<dyn App>]) {
    if !net.tcp_events.is_empty() {
        let mut events = std::mem::take(&mut net.tcp_events);
        for &(app, ev) in &events {
            if let Some(a) = apps.get_mut(app) {
                net.current_app = app;
                a.on_tcp(net, ev);
            }
        }
        events.clear();
        if net.tcp_events.is_empty() {
            net.tcp_events = events;
        }
    }
    net.flush_tcp_dirty_inline();
}

#[cfg(test)]
mod tests {
    use super::super::ctx::{Core, CoreLimits, IfaceConfig};
    use super::*;
    use crate::app::CoreInfo;
    use crate::arp::{ArpConfig, ArpShared};
    use crate::buf::{HeapPool, PacketBuf};
    use crate::fuzzing::pair::Prng;
    use crate::wire::{EthernetAddress, TcpFlags, TcpOptions};

    const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);

    fn core(offload: (bool, bool), pool: usize, tx_queue: usize) -> Core<HeapPool> {
        let iface = IfaceConfig {
            mac: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
            ip: "198.18.0.1/24".parse().unwrap(),
            gateway: Some(GATEWAY),
            mtu: 1500,
            tx_ipv4_cksum: offload.0,
            tx_udp_cksum: false,
            tx_tcp_cksum: offload.1,
        };
        let info = CoreInfo {
            index: 0,
            count: 1,
            lcore: 0,
        };
        let limits = CoreLimits {
            tx_queue,
            arp_pending: 8,
            ..CoreLimits::default()
        };
        let arp = ArpShared::new(ArpConfig::default());
        Core::new(iface, info, HeapPool::new(pool), arp, true, limits, &[])
    }

    fn learn(c: &mut Core<HeapPool>, ip: Ipv4Addr, mac: EthernetAddress, now: Instant) {
        if let Some(w) = c.arp_writer.as_mut() {
            w.insert(ip, mac, now);
        }
        c.begin_burst(now);
    }

    fn random_repr(rng: &mut Prng) -> TcpRepr {
        let mut sack_blocks = [None; 3];
        for b in sack_blocks.iter_mut().take(rng.below(4) as usize) {
            let l = rng.next_u64() as u32;
            *b = Some((l, l.wrapping_add(rng.below(1 << 16) as u32)));
        }
        TcpRepr {
            src_port: rng.next_u64() as u16 | 1,
            dst_port: rng.next_u64() as u16 | 1,
            seq_number: rng.next_u64() as u32,
            ack_number: rng.next_u64() as u32,
            flags: TcpFlags(rng.next_u64() as u8),
            window_len: rng.next_u64() as u16,
            urgent_at: 0,
            options: TcpOptions {
                mss: rng.chance(100).then(|| rng.next_u64() as u16),
                window_scale: rng.chance(100).then(|| rng.below(15) as u8),
                sack_permitted: rng.chance(100),
                timestamps: rng
                    .chance(500)
                    .then(|| (rng.next_u64() as u32, rng.next_u64() as u32)),
                sack_blocks,
            },
        }
    }

    fn frames(c: &Core<HeapPool>) -> Vec<Vec<u8>> {
        c.net.tx.iter().map(|b| b.data().to_vec()).collect()
    }

    #[test]
    fn tcp_frame_heads_are_the_general_path() {
        // Each segment goes out of two cores alike, through the kept frame
        // heads on one and the general path (route, ARP, layered writers)
        // on the other: their results, frames, ARP queues and counts must
        // be the same, segment after segment, while neighbours move to new
        // MACs, destinations share slots, and buffers or the queue run out.
        let mut rng = Prng(0x9e37_79b9_7f4a_7c15);
        let mut payload = vec![0u8; 2100];
        for (i, b) in payload.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let (mut hits, mut moved, mut no_buffer, mut queue_full) = (0, 0, 0, 0);
        let configs = [
            ((false, false), 512, 64),
            ((true, false), 512, 64),
            ((false, true), 512, 64),
            ((true, true), 512, 64),
            ((false, false), 40, 64),
        ];
        for (offload, pool, tx_queue) in configs {
            let (mut kept, mut general) =
                (core(offload, pool, tx_queue), core(offload, pool, tx_queue));
            let now = Instant::from_secs(1);
            let mac = |rng: &mut Prng| {
                let v = rng.next_u64().to_le_bytes();
                EthernetAddress([v[0] & 0xfe, v[1], v[2], v[3], v[4], v[5]])
            };
            // Hosts .2 to .41 and the gateway are known; .42 to .49 never
            // answer.
            for host in (2..42)
                .map(|h| Ipv4Addr::new(198, 18, 0, h))
                .chain([GATEWAY])
            {
                let m = mac(&mut rng);
                learn(&mut kept, host, m, now);
                learn(&mut general, host, m, now);
            }
            for i in 0..6_000 {
                if rng.chance(10) {
                    let host = match rng.below(4) {
                        0 => GATEWAY,
                        _ => Ipv4Addr::new(198, 18, 0, 2 + rng.below(40) as u8),
                    };
                    let m = mac(&mut rng);
                    learn(&mut kept, host, m, now);
                    learn(&mut general, host, m, now);
                    moved += 1;
                }
                let dst = match rng.below(16) {
                    0 => Ipv4Addr::new(198, 18, 0, 42 + rng.below(8) as u8),
                    1 => Ipv4Addr::from(rng.next_u64() as u32),
                    2 => [
                        Ipv4Addr::new(198, 18, 0, 255),
                        Ipv4Addr::BROADCAST,
                        Ipv4Addr::UNSPECIFIED,
                        Ipv4Addr::new(224, 0, 0, 1),
                    ][rng.below(4) as usize],
                    3..=5 => Ipv4Addr::new(203, 0, 113, rng.next_u64() as u8),
                    _ => Ipv4Addr::new(198, 18, 0, 2 + rng.below(40) as u8),
                };
                let repr = random_repr(&mut rng);
                let ecn = rng.below(4) as u8;
                let len = match rng.below(16) {
                    0 => 2100,
                    1..=4 => 0,
                    _ => rng.below(1461) as usize,
                };
                let (a, b) = payload[..len].split_at(rng.below(len as u64 + 1) as usize);
                let slot = TcpFrames::slot_of(dst);
                let s = &kept.net.tcp_frames.slots[slot];
                hits += usize::from(s.dst == dst && s.arp_generation == kept.net.arp.generation());
                let got = kept.net.dispatch_tcp(dst, &repr, ecn, a, b);
                let g = &mut general.net;
                let want = g.route(dst).and_then(|hop| {
                    g.dispatch_tcp_general(dst, hop, &repr, repr.header_len(), ecn, a, b)
                });
                assert_eq!(got, want, "segment {i} to {dst}");
                assert_eq!(frames(&kept), frames(&general), "segment {i} to {dst}");
                assert_eq!(kept.net.pending.len(), general.net.pending.len());
                assert_eq!(kept.net.counters, general.net.counters, "segment {i}");
                no_buffer += usize::from(got == Err(SendError::NoBuffer));
                queue_full += usize::from(got == Err(SendError::QueueFull));
                if rng.chance(25) {
                    kept.net.tx.clear();
                    general.net.tx.clear();
                }
            }
            kept.clear();
            general.clear();
        }
        assert!(hits > 8_000 && moved > 200, "{hits} {moved}");
        assert!(
            no_buffer > 500 && queue_full > 500,
            "{no_buffer} {queue_full}"
        );
    }
}
