//! TCP on a core: segments in (checksum, lookup, listeners, resets),
//! segments out (headers, checksum or offload, next hop), timers, and the
//! application calls of [`NetCtx`].

use super::*;

/// Refresh the TCP gauges this often.
const GAUGE_INTERVAL: Duration = Duration::from_millis(100);

impl<P: BufPool> Net<P> {
    pub(super) fn process_tcp(&mut self, ip: &Ipv4Repr, payload: &[u8]) {
        let packet = match TcpPacket::new_checked(payload) {
            Ok(p) => p,
            Err(e) => return self.drop_frame(e.into()),
        };
        let repr = match TcpRepr::parse(&packet, &ip.src_addr, &ip.dst_addr, true) {
            Ok(r) => r,
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
        let data = packet.payload();
        if let Some(index) = self.tcp.lookup(&key) {
            let reuse =
                f.syn() && !f.ack() && self.tcp.get(index).is_some_and(|t| t.reusable_by(&repr));
            if !reuse {
                self.record_flow_in(Transport::Tcp, repr.dst_port, remote, data.len());
                return self.run_tcb(index, |t, now, c| t.process(now, &repr, data, c));
            }
            // RFC 6191: a new incarnation takes over a TIME_WAIT connection.
            self.tcp.take(index);
            self.tcp.free_slot(index);
            self.counters.tcp_time_wait_reused += 1;
        }
        // RFC 9293 3.10.7.1 (CLOSED) and 3.10.7.2 (LISTEN).
        let Some(app) = self.tcp.listener(repr.dst_port) else {
            self.drop_frame(DropReason::TcpNoConnection);
            return self.send_tcp_reset(&repr, data.len(), ip.src_addr);
        };
        if f.rst() {
            return self.drop_frame(DropReason::TcpNoConnection);
        }
        if f.ack() || !f.syn() {
            self.drop_frame(DropReason::TcpNoConnection);
            if f.ack() {
                self.send_tcp_reset(&repr, data.len(), ip.src_addr);
            }
            return;
        }
        if !self.tcp.make_room() {
            self.counters.tcp_syn_refused += 1;
            return self.send_tcp_reset(&repr, data.len(), ip.src_addr);
        }
        let local = SocketAddrV4::new(self.iface.ip.address(), repr.dst_port);
        let iss = self.tcp.isn.isn(self.now, local, remote);
        let tcb = Tcb::accept(&self.tcp.cfg, self.now, local, remote, iss, app, &repr);
        if let Some(id) = self.tcp.insert(self.now, Box::new(tcb)) {
            self.record_flow_in(Transport::Tcp, repr.dst_port, remote, data.len());
            self.run_tcb(id.index, |_, _, _| {});
        }
    }

    /// Take a connection out, run `f` on it, send what it has to send,
    /// collect its events, and put it back (or free it).
    fn run_tcb(&mut self, index: u32, f: impl FnOnce(&mut Tcb, Instant, &mut Counters)) {
        let Some(mut tcb) = self.tcp.take(index) else {
            return;
        };
        f(&mut tcb, self.now, &mut self.counters);
        self.dispatch_tcb(&mut tcb);
        self.collect_events(index, &mut tcb);
        self.tcp.put(self.now, index, tcb);
    }

    fn dispatch_tcb(&mut self, tcb: &mut Tcb) {
        let dst = *tcb.remote.ip();
        let now = self.now;
        tcb.dispatch(now, &mut |repr: &TcpRepr, a: &[u8], b: &[u8]| {
            self.dispatch_tcp(dst, repr, a, b).is_ok()
        });
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
    }

    fn collect_events(&mut self, index: u32, tcb: &mut Tcb) {
        let bits = tcb.take_events();
        if bits == 0 || tcb.app_closed {
            return;
        }
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
            if self.dispatch_tcp(dst, &rst, &[], &[]).is_ok() {
                self.counters.tcp_rst_sent += 1;
                self.counters.tcp_tx_segments += 1;
            }
        }
    }

    /// Build and queue one segment: Ethernet, IPv4, TCP header, payload.
    fn dispatch_tcp(
        &mut self,
        dst: Ipv4Addr,
        repr: &TcpRepr,
        a: &[u8],
        b: &[u8],
    ) -> Result<(), SendError> {
        let hop = match self.routes.next_hop(dst) {
            Some(h) => h,
            None => {
                self.counters.drop(DropReason::NoRoute);
                return Err(SendError::NoRoute);
            }
        };
        let src = self.iface.ip.address();
        let hlen = repr.header_len();
        let tcp_len = hlen + a.len() + b.len();
        let mut buf = self.alloc_frame(ETH_LEN + IP_LEN + tcp_len)?;
        let offload = self.iface.tx_tcp_cksum;
        {
            let seg = &mut buf.data_mut()[ETH_LEN + IP_LEN..];
            seg[hlen..hlen + a.len()].copy_from_slice(a);
            seg[hlen + a.len()..tcp_len].copy_from_slice(b);
            let mut packet = TcpPacket::new_unchecked(&mut seg[..tcp_len]);
            repr.emit(&mut packet);
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
        };
        let ident = self.ident.next_ident();
        self.emit_headers(&mut buf, &ip, ident, None);
        if offload {
            buf.request_tx_checksum(ETH_LEN as u16, IP_LEN as u16, L4Checksum::Tcp);
        } else if self.iface.tx_ipv4_cksum {
            buf.request_tx_checksum(ETH_LEN as u16, IP_LEN as u16, L4Checksum::None);
        }
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
        if self.now >= self.next_tcp_gauges {
            self.next_tcp_gauges = self.now.plus(GAUGE_INTERVAL);
            self.counters.tcp_connections = self.tcp.len() as u64;
            self.counters.tcp_time_wait = self.tcp.count_state(crate::tcp::State::TimeWait) as u64;
            self.counters.tcp_time_wait_recycled = self.tcp.time_wait_recycled;
            let mem = crate::tcp::buffer::core_stats();
            self.counters.tcp_mem_bytes = mem.bytes as u64;
            self.counters.tcp_mem_peak = mem.peak as u64;
            self.counters.tcp_mem_limit = mem.limit as u64;
            self.counters.tcp_mem_refused = mem.refused;
            if let Some(log) = self.flows.as_ref() {
                self.counters.flow_records = log.len() as u64;
            }
        }
    }

    /// Run an application's call on its own connection.
    fn with_conn<R>(
        &mut self,
        conn: ConnId,
        f: impl FnOnce(&mut Tcb, Instant) -> Result<R, TcpError>,
    ) -> Result<R, TcpError> {
        let index = self.tcp.resolve(conn).ok_or(TcpError::NoConnection)?;
        let Some(mut tcb) = self.tcp.take(index) else {
            return Err(TcpError::NoConnection);
        };
        if tcb.app != self.current_app || tcb.app_closed {
            self.tcp.put(self.now, index, tcb);
            return Err(TcpError::NoConnection);
        }
        let r = f(&mut tcb, self.now);
        if tcb.is_closed() {
            // An abort: its RST goes now, before the slot is freed.
            self.dispatch_tcb(&mut tcb);
        } else if !tcb.dispatch_queued {
            // Sends are coalesced: what the application writes in one
            // callback leaves together once it returns (no write-write
            // Nagle stall between a response's head and body).
            tcb.dispatch_queued = true;
            self.tcp_dirty.push(index);
        }
        // The application caused whatever happened: it is not told.
        tcb.take_events();
        self.tcp.put(self.now, index, tcb);
        r
    }

    /// Send what applications queued during their callbacks.
    pub(super) fn flush_tcp_dirty(&mut self) {
        while let Some(index) = self.tcp_dirty.pop() {
            if let Some(t) = self.tcp.get(index) {
                if !t.dispatch_queued {
                    continue;
                }
            }
            self.run_tcb(index, |t, _, _| t.dispatch_queued = false);
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
        let port = self
            .tcp
            .pick_port(rss::L4::Tcp, dst, |_| true)
            .ok_or(TcpError::NoPort)?;
        let local = SocketAddrV4::new(self.iface.ip.address(), port);
        let iss = self.tcp.isn.isn(self.now, local, dst);
        let tcb = Tcb::connect(&self.tcp.cfg, self.now, local, dst, iss, self.current_app);
        let id = self
            .tcp
            .insert(self.now, Box::new(tcb))
            .ok_or(TcpError::TableFull)?;
        self.run_tcb(id.index, |_, _, _| {});
        Ok(id)
    }

    pub(super) fn tcp_send_impl(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, TcpError> {
        self.with_conn(conn, |t, _| {
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
        self.with_conn(conn, |t, _| Ok(t.recv(buf)))
    }

    pub(super) fn tcp_recv_len_impl(&self, conn: ConnId) -> Result<usize, TcpError> {
        Ok(self.conn_ref(conn)?.recv_len())
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

    pub(super) fn tcp_abort_impl(&mut self, conn: ConnId) -> Result<(), TcpError> {
        self.with_conn(conn, |t, _| {
            t.abort();
            t.app_closed = true;
            Ok(())
        })
    }
}

/// Hand the events raised while segments or timers ran to their
/// applications. Calls the applications make meanwhile raise none.
pub(super) fn deliver_tcp_events<P: BufPool>(net: &mut Net<P>, apps: &mut [Box<dyn App>]) {
    if net.tcp_events.is_empty() {
        net.flush_tcp_dirty();
        return;
    }
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
    net.flush_tcp_dirty();
}
