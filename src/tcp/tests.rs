//! Segment-template tests: drive one connection through every state, send
//! it a segment, expect exactly these segments back (smoltcp's style). And
//! a seeded simulation of two connections over a link that loses,
//! reorders and duplicates.

use super::tcb::{reset_for, State, Tcb};
use super::{event, CcAlgorithm, CloseReason, Keepalive, TcpConfig};
use crate::stats::{Counters, DropReason};
use crate::time::{Duration, Instant};
use crate::wire::{TcpFlags, TcpOptions, TcpRepr};
use std::net::{Ipv4Addr, SocketAddrV4};

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
const ISS: u32 = 1000;
const IRS: u32 = 5000;
const ACK: TcpFlags = TcpFlags::ACK;
const SYN: TcpFlags = TcpFlags::SYN;
const FIN: TcpFlags = TcpFlags::FIN;
const RST: TcpFlags = TcpFlags::RST;
const PSH: TcpFlags = TcpFlags::PSH;

fn cfg() -> TcpConfig {
    TcpConfig {
        rx_buffer: 64 * 1024,
        tx_buffer: 64 * 1024,
        time_wait: Duration::from_secs(2),
        ..Default::default()
    }
}

/// A segment from the peer.
fn seg(flags: TcpFlags, seq: u32, ack: u32) -> TcpRepr {
    TcpRepr {
        src_port: REMOTE.port(),
        dst_port: LOCAL.port(),
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: 65535,
        urgent_at: 0,
        options: TcpOptions::default(),
    }
}

struct T {
    tcb: Tcb,
    now: Instant,
    c: Counters,
    events: u8,
    /// The largest segment the peer takes: its MSS (536 if its SYN had
    /// none, RFC 9293 3.7.1), capped by ours (our MTU).
    mss_limit: usize,
}

/// Options are paid out of the segment (RFC 6691, Linux
/// `tcp_current_mss`): payload plus options never exceed the MSS, so that
/// no segment exceeds the peer's MSS or the MTU.
fn assert_fits(r: &TcpRepr, payload: usize, mss_limit: usize) {
    let options = r.header_len() - 20;
    assert!(
        payload + options <= mss_limit,
        "segment seq {} of {payload} bytes with {options} bytes of options exceeds the MSS {mss_limit}",
        r.seq_number
    );
}

/// The MSS a SYN announces (536 without the option).
fn syn_mss(syn: &TcpRepr) -> usize {
    syn.options.mss.map_or(536, usize::from)
}

/// What we expect back: flags, seq, ack, payload.
type Out = (TcpFlags, u32, u32, Vec<u8>);

impl T {
    fn passive(cfg: TcpConfig, syn: TcpRepr) -> T {
        let now = Instant::from_secs(1);
        T {
            tcb: Tcb::accept(&cfg, now, LOCAL, REMOTE, ISS, 0, &syn),
            now,
            c: Counters::default(),
            events: 0,
            mss_limit: syn_mss(&syn).min(cfg.mss),
        }
    }

    fn active(cfg: TcpConfig) -> T {
        let now = Instant::from_secs(1);
        T {
            tcb: Tcb::connect(&cfg, now, LOCAL, REMOTE, ISS, 0),
            now,
            c: Counters::default(),
            events: 0,
            mss_limit: cfg.mss,
        }
    }

    /// Established by a passive open: SYN, SYN-ACK, ACK.
    fn established(cfg: TcpConfig) -> T {
        let mut t = T::passive(cfg, seg(SYN, IRS, 0));
        t.out_full();
        t.send(seg(ACK, IRS + 1, ISS + 1), b"");
        assert_eq!(t.tcb.state, State::Established);
        t.take_events();
        t
    }

    fn out_full(&mut self) -> Vec<(TcpRepr, Vec<u8>)> {
        let mut v = Vec::new();
        let limit = self.mss_limit;
        self.tcb.dispatch(self.now, &mut |r, a, b| {
            assert_fits(r, a.len() + b.len(), limit);
            v.push((*r, [a, b].concat()));
            true
        });
        // Every test checks the scoreboard after each segment and timer.
        if let Err(e) = self.tcb.check_scoreboard() {
            panic!("scoreboard: {e}");
        }
        if let Err(e) = self.tcb.check_due() {
            panic!("due: {e}");
        }
        v
    }

    /// Dispatch with every send failing (TX full, no buffer, ARP queue
    /// full); returns how many segments were tried.
    fn out_failing(&mut self) -> usize {
        let mut tried = 0;
        self.tcb.dispatch(self.now, &mut |_, _, _| {
            tried += 1;
            false
        });
        tried
    }

    fn out(&mut self) -> Vec<Out> {
        self.out_full()
            .into_iter()
            .map(|(r, p)| (r.flags, r.seq_number, r.ack_number, p))
            .collect()
    }

    fn send(&mut self, s: TcpRepr, payload: &[u8]) -> Vec<Out> {
        if s.flags.syn() {
            self.mss_limit = self.mss_limit.min(syn_mss(&s));
        }
        self.tcb.process(self.now, &s, payload, &mut self.c);
        self.events |= self.tcb.take_events();
        self.out()
    }

    fn advance(&mut self, d: Duration) -> Vec<Out> {
        self.now = self.now.plus(d);
        if self.tcb.next_deadline().is_some_and(|t| t <= self.now) {
            self.tcb.on_timer(self.now, &mut self.c);
        }
        self.events |= self.tcb.take_events();
        self.out()
    }

    fn take_events(&mut self) -> u8 {
        self.events |= self.tcb.take_events();
        std::mem::take(&mut self.events)
    }
}

fn o(flags: TcpFlags, seq: u32, ack: u32, data: &[u8]) -> Out {
    (flags, seq, ack, data.to_vec())
}

#[test]
fn passive_open_answers_syn_with_options() {
    let mut syn = seg(SYN, IRS, 0);
    syn.options = TcpOptions {
        mss: Some(1400),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((777, 0)),
        sack_blocks: [None; 3],
    };
    let mut t = T::passive(cfg(), syn);
    let out = t.out_full();
    assert_eq!(out.len(), 1);
    let (r, p) = &out[0];
    assert_eq!(r.flags, SYN | ACK);
    assert_eq!((r.seq_number, r.ack_number), (ISS, IRS + 1));
    assert!(p.is_empty());
    assert_eq!(r.options.mss, Some(1460));
    // A 64 KiB buffer that autotuning may grow to 6 MiB: shift 7 makes
    // the most fit 16 bits.
    assert_eq!(r.options.window_scale, Some(7));
    assert_eq!(r.options.timestamps.map(|t| t.1), Some(777));
    // Our MSS toward them: theirs, less the timestamp option.
    assert_eq!(t.tcb.mss, 1400 - 12);
    let mut ack = seg(ACK, IRS + 1, ISS + 1);
    ack.options.timestamps = Some((778, 1000));
    assert!(t.send(ack, b"").is_empty());
    assert_eq!(t.tcb.state, State::Established);
    assert_eq!(t.take_events(), event::CONNECTED);
}

#[test]
fn syn_received_retransmits_syn_ack_and_refuses_bad_ack() {
    let mut t = T::passive(cfg(), seg(SYN, IRS, 0));
    t.out();
    // The SYN again: the SYN-ACK again.
    assert_eq!(
        t.send(seg(SYN, IRS, 0), b""),
        vec![o(SYN | ACK, ISS, IRS + 1, b"")]
    );
    // An ACK for something we never sent: RST with its number.
    assert_eq!(
        t.send(seg(ACK, IRS + 1, ISS + 50), b""),
        vec![o(RST, ISS + 50, 0, b"")]
    );
    assert_eq!(t.tcb.state, State::SynReceived);
    // Our SYN-ACK is retransmitted on the RTO (1 s).
    assert_eq!(
        t.advance(Duration::from_secs(1)),
        vec![o(SYN | ACK, ISS, IRS + 1, b"")]
    );
    assert_eq!(t.c.tcp_rto, 1);
    // RST in SYN_RECEIVED from a passive open: gone quietly.
    assert!(t.send(seg(RST, IRS + 1, 0), b"").is_empty());
    assert!(t.tcb.is_closed());
    assert_eq!(t.take_events(), 0);
}

#[test]
fn active_open_and_refusal() {
    let mut t = T::active(cfg());
    let out = t.out_full();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.flags, SYN);
    assert_eq!(out[0].0.seq_number, ISS);
    assert!(out[0].0.options.timestamps.is_some());
    // A SYN-ACK acking the wrong number: RST, stay.
    assert_eq!(
        t.send(seg(SYN | ACK, IRS, ISS + 7), b""),
        vec![o(RST, ISS + 7, 0, b"")]
    );
    // RST without an acceptable ACK: ignored.
    assert!(t.send(seg(RST | ACK, 0, ISS + 7), b"").is_empty());
    assert_eq!(t.tcb.state, State::SynSent);
    // The real SYN-ACK: ACK it, established.
    assert_eq!(
        t.send(seg(SYN | ACK, IRS, ISS + 1), b""),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
    assert_eq!(t.tcb.state, State::Established);
    assert_eq!(t.take_events(), event::CONNECTED);

    let mut r = T::active(cfg());
    r.out();
    assert!(r.send(seg(RST | ACK, 0, ISS + 1), b"").is_empty());
    assert!(r.tcb.is_closed());
    assert_eq!(r.tcb.close_reason, Some(CloseReason::Refused));
    assert_eq!(r.take_events(), event::CLOSED);
}

#[test]
fn simultaneous_open() {
    let mut t = T::active(cfg());
    t.out();
    // Their SYN crosses ours: SYN-ACK with our same ISS.
    assert_eq!(
        t.send(seg(SYN, IRS, 0), b""),
        vec![o(SYN | ACK, ISS, IRS + 1, b"")]
    );
    assert_eq!(t.tcb.state, State::SynReceived);
    // Their SYN-ACK (of our SYN) arrives: we are established, and ACK it
    // (their side completes on this ACK, or on our SYN-ACK).
    assert_eq!(
        t.send(seg(SYN | ACK, IRS, ISS + 1), b""),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
    assert_eq!(t.tcb.state, State::Established);
    assert_ne!(t.take_events() & event::CONNECTED, 0);
    assert_eq!(t.c.tcp_connected, 1);

    // With timestamps, the ACK for its SYN-ACK echoes the SYN-ACK's
    // TSval (RFC 7323 4.3), not its SYN's.
    let mut ts = T::active(cfg());
    ts.out();
    let mut syn = seg(SYN, IRS, 0);
    syn.options.timestamps = Some((100, 0));
    ts.send(syn, b"");
    let mut syn_ack = seg(SYN | ACK, IRS, ISS + 1);
    syn_ack.options.timestamps = Some((150, 1000));
    ts.tcb.process(ts.now, &syn_ack, b"", &mut ts.c);
    let out = ts.out_full();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.options.timestamps.map(|t| t.1), Some(150));

    // If its SYN-ACK is lost, its ACK alone completes the handshake.
    let mut l = T::active(cfg());
    l.out();
    l.send(seg(SYN, IRS, 0), b"");
    assert!(l.send(seg(ACK, IRS + 1, ISS + 1), b"").is_empty());
    assert_eq!(l.tcb.state, State::Established);

    // In SYN-RECEIVED an unacceptable segment draws an ACK (RFC 9293
    // 3.10.7.4, first check), passive opens included.
    let mut p = T::passive(cfg(), seg(SYN, IRS, 0));
    p.out();
    assert_eq!(
        p.send(seg(ACK, IRS + 1_000_000, ISS + 1), b"x"),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
    assert_eq!(p.tcb.state, State::SynReceived);
}

#[test]
fn data_both_ways_with_delayed_ack() {
    let mut t = T::established(cfg());
    // One segment: the ACK is delayed.
    assert!(t
        .send(seg(ACK | PSH, IRS + 1, ISS + 1), b"hello")
        .is_empty());
    assert_eq!(t.take_events(), event::READABLE);
    let mut buf = [0u8; 16];
    assert_eq!(t.tcb.recv(&mut buf), 5);
    assert_eq!(&buf[..5], b"hello");
    // The second segment is acknowledged at once (every other segment).
    assert_eq!(
        t.send(seg(ACK, IRS + 6, ISS + 1), b"world"),
        vec![o(ACK, ISS + 1, IRS + 11, b"")]
    );
    // A third waits for the 40 ms timer.
    assert!(t.send(seg(ACK, IRS + 11, ISS + 1), b"!").is_empty());
    assert!(t.advance(Duration::from_millis(39)).is_empty());
    assert_eq!(
        t.advance(Duration::from_millis(1)),
        vec![o(ACK, ISS + 1, IRS + 12, b"")]
    );
    // Sending: data goes out with the ACK; their ACK frees the buffer.
    assert_eq!(t.tcb.send(b"reply"), 5);
    assert_eq!(t.out(), vec![o(ACK | PSH, ISS + 1, IRS + 12, b"reply")]);
    assert!(t.send(seg(ACK, IRS + 12, ISS + 6), b"").is_empty());
    assert_eq!(t.tcb.unsent_or_unacked(), 0);
    assert_eq!(t.tcb.next_deadline(), None);
}

#[test]
fn nagle_holds_small_segments_while_data_is_unacked() {
    let mut t = T::established(cfg());
    t.tcb.send(b"a");
    assert_eq!(t.out(), vec![o(ACK | PSH, ISS + 1, IRS + 1, b"a")]);
    t.tcb.send(b"b");
    t.tcb.send(b"c");
    assert!(t.out().is_empty());
    assert_eq!(
        t.send(seg(ACK, IRS + 1, ISS + 2), b""),
        vec![o(ACK | PSH, ISS + 2, IRS + 1, b"bc")]
    );
    let mut no_nagle = T::established(TcpConfig {
        nagle: false,
        ..cfg()
    });
    no_nagle.tcb.send(b"a");
    no_nagle.out();
    no_nagle.tcb.send(b"b");
    assert_eq!(no_nagle.out(), vec![o(ACK | PSH, ISS + 2, IRS + 1, b"b")]);
}

#[test]
fn passive_close() {
    let mut t = T::established(cfg());
    assert_eq!(
        t.send(seg(FIN | ACK, IRS + 1, ISS + 1), b""),
        vec![o(ACK, ISS + 1, IRS + 2, b"")]
    );
    assert_eq!(t.tcb.state, State::CloseWait);
    assert_eq!(t.take_events(), event::PEER_CLOSED);
    t.tcb.close(t.now);
    assert_eq!(t.out(), vec![o(FIN | ACK, ISS + 1, IRS + 2, b"")]);
    assert_eq!(t.tcb.state, State::LastAck);
    t.send(seg(ACK, IRS + 2, ISS + 2), b"");
    assert!(t.tcb.is_closed());
}

#[test]
fn active_close_through_time_wait() {
    let mut t = T::established(cfg());
    t.tcb.send(b"bye");
    t.tcb.close(t.now);
    assert_eq!(t.out(), vec![o(FIN | ACK | PSH, ISS + 1, IRS + 1, b"bye")]);
    assert_eq!(t.tcb.state, State::FinWait1);
    t.send(seg(ACK, IRS + 1, ISS + 5), b"");
    assert_eq!(t.tcb.state, State::FinWait2);
    assert_eq!(
        t.send(seg(FIN | ACK, IRS + 1, ISS + 5), b""),
        vec![o(ACK, ISS + 5, IRS + 2, b"")]
    );
    assert_eq!(t.tcb.state, State::TimeWait);
    // TIME-WAIT holds no buffer memory: everything sent was acknowledged.
    assert_eq!(t.tcb.buffer_bytes(), 0);
    // A retransmitted FIN is acknowledged again and restarts 2*MSL.
    t.advance(Duration::from_secs(1));
    assert_eq!(
        t.send(seg(FIN | ACK, IRS + 1, ISS + 5), b""),
        vec![o(ACK, ISS + 5, IRS + 2, b"")]
    );
    t.advance(Duration::from_millis(1500));
    assert_eq!(t.tcb.state, State::TimeWait);
    t.advance(Duration::from_millis(600));
    assert!(t.tcb.is_closed());
    // A new SYN with a higher sequence number could have reused it.
    let mut t2 = T::established(cfg());
    t2.tcb.close(t2.now);
    t2.out();
    t2.send(seg(FIN | ACK, IRS + 1, ISS + 2), b"");
    assert_eq!(t2.tcb.state, State::TimeWait);
    // The table keeps it as a compact record (timewait.rs), which decides.
    let tw = t2.tcb.time_wait_record(t2.now).unwrap();
    assert_eq!((tw.snd_nxt().0, tw.rcv_nxt().0), (ISS + 2, IRS + 2));
    assert_eq!(tw.deadline, t2.now.plus(cfg().time_wait));
    assert!(tw.new_incarnation(&seg(SYN, IRS + 100, 0)));
    assert!(!tw.new_incarnation(&seg(SYN, IRS, 0)));
    assert!(T::established(cfg()).tcb.time_wait_record(t2.now).is_none());
}

#[test]
fn simultaneous_close() {
    let mut t = T::established(cfg());
    t.tcb.close(t.now);
    assert_eq!(t.out(), vec![o(FIN | ACK, ISS + 1, IRS + 1, b"")]);
    // Their FIN crosses ours, not acking it.
    assert_eq!(
        t.send(seg(FIN | ACK, IRS + 1, ISS + 1), b""),
        vec![o(ACK, ISS + 2, IRS + 2, b"")]
    );
    assert_eq!(t.tcb.state, State::Closing);
    t.send(seg(ACK, IRS + 2, ISS + 2), b"");
    assert_eq!(t.tcb.state, State::TimeWait);
}

#[test]
fn half_close_keeps_receiving() {
    let mut t = T::established(cfg());
    t.tcb.shutdown();
    assert_eq!(t.out(), vec![o(FIN | ACK, ISS + 1, IRS + 1, b"")]);
    t.send(seg(ACK, IRS + 1, ISS + 2), b"");
    assert_eq!(t.tcb.state, State::FinWait2);
    assert_eq!(t.tcb.send(b"more"), 0);
    t.send(seg(ACK, IRS + 1, ISS + 2), b"still talking");
    assert_eq!(t.tcb.recv_len(), 13);
    assert_ne!(t.take_events() & event::READABLE, 0);
}

#[test]
fn data_after_close_is_reset() {
    let mut t = T::established(cfg());
    t.tcb.close(t.now);
    t.out();
    t.send(seg(ACK, IRS + 1, ISS + 2), b"");
    assert_eq!(
        t.send(seg(ACK, IRS + 1, ISS + 2), b"late"),
        vec![o(RST | ACK, ISS + 2, IRS + 1, b"")]
    );
    assert!(t.tcb.is_closed());
    assert_eq!(t.c.tcp_rst_sent_data_after_close, 1);
}

#[test]
fn rfc5961_resets_and_syns() {
    let mut t = T::established(cfg());
    // In the window but not exact: a challenge ACK, the connection lives.
    assert_eq!(
        t.send(seg(RST, IRS + 100, 0), b""),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
    assert_eq!(t.tcb.state, State::Established);
    // Outside the window: silently dropped.
    assert!(t.send(seg(RST, IRS + 1_000_000, 0), b"").is_empty());
    assert_eq!(t.c.dropped(DropReason::TcpOutOfWindow), 1);
    // A SYN in a synchronized state: a challenge ACK (once the rate limit,
    // one per 500 ms, allows another).
    t.advance(Duration::from_millis(500));
    assert_eq!(
        t.send(seg(SYN, IRS + 1, 0), b""),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
    assert_eq!(t.tcb.state, State::Established);
    assert_eq!(t.c.tcp_challenge_acks, 2);
    // Exactly RCV.NXT: reset.
    assert!(t.send(seg(RST, IRS + 1, 0), b"").is_empty());
    assert!(t.tcb.is_closed());
    assert_eq!(t.tcb.close_reason, Some(CloseReason::Reset));
    assert_eq!(t.take_events(), event::CLOSED);
}

#[test]
fn out_of_window_data_and_bad_acks() {
    let mut t = T::established(cfg());
    // Data beyond the window: ACK and drop.
    assert_eq!(
        t.send(seg(ACK, IRS + 1 + 200_000, ISS + 1), b"x"),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
    // Old data (already received): ACK and drop.
    t.send(seg(ACK, IRS + 1, ISS + 1), b"abc");
    assert_eq!(
        t.send(seg(ACK, IRS + 1, ISS + 1), b"abc"),
        vec![o(ACK, ISS + 1, IRS + 4, b"")]
    );
    assert_eq!(t.tcb.recv_len(), 3);
    // An ACK of data never sent: challenge ACK, data ignored.
    assert_eq!(
        t.send(seg(ACK, IRS + 4, ISS + 500), b"zzz"),
        vec![o(ACK, ISS + 1, IRS + 4, b"")]
    );
    assert_eq!(t.tcb.recv_len(), 3);
    assert_eq!(t.c.tcp_bad_ack, 1);
    // No ACK bit: dropped.
    assert!(t.send(seg(PSH, IRS + 4, 0), b"q").is_empty());
    assert_eq!(t.tcb.recv_len(), 3);
    assert_eq!(t.tcb.state, State::Established);
}

#[test]
fn paws_drops_old_timestamps() {
    let mut syn = seg(SYN, IRS, 0);
    syn.options.timestamps = Some((100, 0));
    let mut t = T::passive(cfg(), syn);
    t.out();
    let mut ack = seg(ACK, IRS + 1, ISS + 1);
    ack.options.timestamps = Some((101, 1));
    t.send(ack, b"");
    let mut old = seg(ACK, IRS + 1, ISS + 1);
    old.options.timestamps = Some((50, 1));
    let out = t.send(old, b"stale");
    assert_eq!(out.len(), 1);
    assert_eq!(t.tcb.recv_len(), 0);
    assert_eq!(t.c.tcp_paws_rejected, 1);
}

#[test]
fn out_of_order_is_reassembled_with_immediate_acks() {
    let mut t = T::established(cfg());
    assert_eq!(
        t.send(seg(ACK, IRS + 6, ISS + 1), b"world"),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
    assert_eq!(t.tcb.recv_len(), 0);
    assert_eq!(
        t.send(seg(ACK, IRS + 1, ISS + 1), b"hello"),
        vec![o(ACK, ISS + 1, IRS + 11, b"")]
    );
    let mut buf = [0u8; 10];
    assert_eq!(t.tcb.recv(&mut buf), 10);
    assert_eq!(&buf, b"helloworld");
    // A FIN ahead of a hole waits for the hole.
    t.send(seg(FIN | ACK, IRS + 14, ISS + 1), b"!!");
    assert_eq!(t.tcb.state, State::Established);
    t.send(seg(ACK, IRS + 11, ISS + 1), b"abc");
    assert_eq!(t.tcb.state, State::CloseWait);
    assert_eq!(t.tcb.rcv_nxt().0, IRS + 17);
}

/// A passive open whose SYN-ACKs all go unanswered times out without an
/// event: no application was told of it (found by the tcp_pair fuzz
/// target: an application was told `Closed` of a connection it was never
/// given).
#[test]
fn syn_received_times_out_quietly() {
    let mut t = T::passive(
        TcpConfig {
            syn_retries: 2,
            ..cfg()
        },
        seg(SYN, IRS, 0),
    );
    assert_eq!(t.out().len(), 1);
    assert_eq!(t.advance(Duration::from_secs(1)).len(), 1);
    assert_eq!(t.advance(Duration::from_secs(2)).len(), 1);
    assert!(t.advance(Duration::from_secs(4)).is_empty());
    assert!(t.tcb.is_closed());
    assert_eq!(t.c.tcp_timeouts, 1);
    // Timeouts of the handshake, told apart from the data's.
    assert_eq!((t.c.tcp_rto, t.c.tcp_syn_retransmits), (2, 2));
    assert_eq!(t.take_events(), 0);
}

#[test]
fn rto_backs_off_then_gives_up() {
    let mut t = T::established(TcpConfig {
        max_retries: 3,
        ..cfg()
    });
    t.tcb.send(b"data");
    assert_eq!(t.out().len(), 1);
    // The handshake measured an RTT of ~0: the RTO is its 200 ms floor.
    // One segment in flight: the tail loss probe would wait for a delayed
    // ACK (200 ms more) and is cut to the RTO's deadline (RFC 8985 7.2):
    // at 200 ms the probe resends it and the RTO starts again from there;
    // then the RTO fires and doubles: 200 ms, 400 ms, 800 ms.
    assert_eq!(t.tcb.rto(), Duration::from_millis(200));
    assert!(t.advance(Duration::from_millis(199)).is_empty());
    assert_eq!(
        t.advance(Duration::from_millis(1)),
        vec![o(ACK | PSH, ISS + 1, IRS + 1, b"data")]
    );
    assert_eq!((t.c.tcp_tail_loss_probes, t.c.tcp_rto), (1, 0));
    assert!(t.advance(Duration::from_millis(199)).is_empty());
    assert_eq!(t.advance(Duration::from_millis(1)).len(), 1);
    assert!(t.advance(Duration::from_millis(399)).is_empty());
    assert_eq!(t.advance(Duration::from_millis(1)).len(), 1);
    assert_eq!(t.advance(Duration::from_millis(800)).len(), 1);
    assert_eq!((t.c.tcp_rto, t.c.tcp_syn_retransmits), (3, 0));
    assert_eq!(t.c.tcp_tail_loss_probes, 1);
    assert_eq!(t.tcb.cwnd(), t.tcb.mss);
    // The fourth expiry: reset and give up.
    assert_eq!(
        t.advance(Duration::from_millis(1600)),
        vec![o(RST | ACK, ISS + 5, IRS + 1, b"")]
    );
    assert!(t.tcb.is_closed());
    assert_eq!(t.tcb.close_reason, Some(CloseReason::TimedOut));
}

#[test]
fn a_handshake_whose_syn_timed_out_starts_its_data_with_a_three_second_rto() {
    // RFC 6298 5.7, without timestamps (Karn: no sample from the handshake).
    let no_ts = || TcpConfig {
        timestamps: false,
        ..cfg()
    };
    // Active: the SYN goes again after 1 s, the SYN-ACK then answers it.
    let mut t = T::active(no_ts());
    t.out();
    assert_eq!(t.advance(Duration::from_secs(1)).len(), 1);
    assert_eq!(t.tcb.rto(), Duration::from_secs(2));
    t.send(seg(SYN | ACK, IRS, ISS + 1), b"");
    assert_eq!(t.tcb.state, State::Established);
    assert_eq!((t.tcb.srtt(), t.tcb.rto()), (None, Duration::from_secs(3)));
    // The first data segment's timer is that RTO.
    t.tcb.send(b"data");
    assert_eq!(t.out().len(), 1);
    assert!(t.advance(Duration::from_millis(2999)).is_empty());
    assert_eq!(t.advance(Duration::from_millis(1)).len(), 1);

    // Passive: the SYN-ACK timed out, the ACK of the second one arrives.
    let mut p = T::passive(no_ts(), seg(SYN, IRS, 0));
    p.out();
    assert_eq!(p.advance(Duration::from_secs(1)).len(), 1);
    p.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert_eq!(p.tcb.state, State::Established);
    assert_eq!(p.tcb.rto(), Duration::from_secs(3));

    // No timeout: RFC 6298 2.2 from the handshake's sample, as before.
    let mut q = T::active(no_ts());
    q.out();
    q.now = q.now.plus(Duration::from_millis(100));
    q.send(seg(SYN | ACK, IRS, ISS + 1), b"");
    assert_eq!(q.tcb.srtt(), Some(Duration::from_millis(100)));
    assert_eq!(q.tcb.rto(), Duration::from_millis(300));
}

#[test]
fn karn_no_rtt_sample_from_a_retransmitted_segment() {
    // RFC 6298 3: without timestamps an ACK of a retransmitted segment is
    // ambiguous and gives no sample.
    let mut t = T::established(TcpConfig {
        timestamps: false,
        ..cfg()
    });
    let srtt0 = t.tcb.srtt().expect("the handshake was timed");
    t.tcb.send(b"data");
    assert_eq!(t.out().len(), 1);
    // The RTO sends it again 200 ms later.
    assert_eq!(
        t.advance(Duration::from_millis(200)),
        vec![o(ACK | PSH, ISS + 1, IRS + 1, b"data")]
    );
    // Its ACK, 250 ms after the first send: no sample.
    t.now = t.now.plus(Duration::from_millis(50));
    t.send(seg(ACK, IRS + 1, ISS + 5), b"");
    assert_eq!(t.tcb.unsent_or_unacked(), 0);
    assert_eq!(t.tcb.srtt(), Some(srtt0));
    // New data, sent once and acknowledged 80 ms later: a sample
    // (SRTT = 7/8 SRTT + 1/8 R, RFC 6298 2.3).
    t.tcb.send(b"more");
    assert_eq!(t.out().len(), 1);
    t.now = t.now.plus(Duration::from_millis(80));
    t.send(seg(ACK, IRS + 1, ISS + 9), b"");
    let want = (srtt0.micros() * 7 + 80_000) / 8;
    let got = t.tcb.srtt().unwrap().micros();
    assert!(got.abs_diff(want) <= 1, "srtt {got} us, want {want} us");
}

#[test]
fn fast_retransmit_and_newreno_partial_ack() {
    let mut syn = seg(SYN, IRS, 0);
    syn.options.mss = Some(100);
    let mut t = T::passive(cfg(), syn);
    t.out();
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    let data = vec![7u8; 2000];
    t.tcb.send(&data);
    // Initial window (RFC 6928): 10 segments of 100.
    let out = t.out();
    assert_eq!(out.len(), 10);
    // Slow start: an ACK of two grows cwnd by two MSS (RFC 3465, L = 2
    // SMSS): four more go (201..1001 outstanding, 1001..1401 new).
    let sent = t.send(seg(ACK, IRS + 1, ISS + 201), b"");
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0].1, ISS + 1001);
    // Segment at 201 is lost: three duplicate ACKs.
    assert!(t.send(seg(ACK, IRS + 1, ISS + 201), b"").is_empty());
    assert!(t.send(seg(ACK, IRS + 1, ISS + 201), b"").is_empty());
    let fr = t.send(seg(ACK, IRS + 1, ISS + 201), b"");
    assert_eq!(fr[0], o(ACK, ISS + 201, IRS + 1, &[7u8; 100]));
    assert_eq!(t.c.tcp_fast_retransmits, 1);
    // A partial ACK (up to 401, loss at 401 too): retransmit 401 at once.
    let pa = t.send(seg(ACK, IRS + 1, ISS + 401), b"");
    assert_eq!(pa[0], o(ACK, ISS + 401, IRS + 1, &[7u8; 100]));
    // The full ACK (the recovery point, 1401) ends recovery.
    t.send(seg(ACK, IRS + 1, ISS + 1401), b"");
    assert!(t.tcb.cwnd() >= 100);
    assert_eq!(t.c.tcp_rto, 0);
}

/// RFC 6582 3.2 step 5 (RFC 3782 4's "Impatient" variant):
/// without SACK only the first partial ACK of a recovery restarts the
/// retransmission timer; later ones leave it, so that a loss of many
/// segments ends in the timeout's go-back-N rather than one round trip per
/// hole (the bottleneck simulation's overshoot without SACK took 12 s so).
#[test]
fn newreno_restarts_the_timer_on_the_first_partial_ack_only() {
    let mut syn = seg(SYN, IRS, 0);
    syn.options.mss = Some(100);
    let mut t = T::passive(cfg(), syn);
    t.out();
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    t.tcb.send(&[7u8; 2000]);
    assert_eq!(t.out().len(), 10);
    t.send(seg(ACK, IRS + 1, ISS + 201), b"");
    for _ in 0..3 {
        t.send(seg(ACK, IRS + 1, ISS + 201), b"");
    }
    assert_eq!(t.c.tcp_fast_retransmits, 1);
    t.now = t.now.plus(Duration::from_millis(10));
    let first = t.send(seg(ACK, IRS + 1, ISS + 401), b"");
    assert_eq!(first[0], o(ACK, ISS + 401, IRS + 1, &[7u8; 100]));
    let deadline = t.tcb.next_deadline().unwrap();
    assert_eq!(deadline, t.now.plus(t.tcb.rto()));
    t.now = t.now.plus(Duration::from_millis(10));
    let second = t.send(seg(ACK, IRS + 1, ISS + 601), b"");
    assert_eq!(second[0], o(ACK, ISS + 601, IRS + 1, &[7u8; 100]));
    assert_eq!(t.tcb.next_deadline(), Some(deadline), "not restarted");
    // The timeout then resends from SND.UNA (go-back-N).
    t.now = deadline;
    t.tcb.on_timer(t.now, &mut t.c);
    assert_eq!(t.c.tcp_rto, 1);
    assert_eq!(t.out()[0], o(ACK, ISS + 601, IRS + 1, &[7u8; 100]));
}

/// The segment at RCV.NXT is taken even when every out-of-order range is
/// in use and it touches none of them: it needs no range (before, it was
/// dropped as a 17th, and a peer without SACK that had lost a burst
/// resent it on every timeout in vain: the bottleneck simulation stalled).
#[test]
fn segment_at_rcv_nxt_is_taken_with_every_out_of_order_range_in_use() {
    let mut t = T::established(cfg());
    for i in 1..=16u32 {
        t.send(seg(ACK, IRS + 1 + 10 * i, ISS + 1), b"x");
    }
    assert_eq!(t.c.tcp_ooo_dropped, 0);
    // A 17th range is refused.
    t.send(seg(ACK, IRS + 1 + 10 * 17, ISS + 1), b"x");
    assert_eq!(t.c.tcp_ooo_dropped, 1);
    // In order, below every range: taken, and acknowledged at once.
    assert_eq!(
        t.send(seg(ACK, IRS + 1, ISS + 1), b"hello"),
        vec![o(ACK, ISS + 1, IRS + 6, b"")]
    );
    assert_eq!(t.c.tcp_ooo_dropped, 1);
    // The ranges stay where they were: filling the first hole joins it.
    assert_eq!(
        t.send(seg(ACK, IRS + 6, ISS + 1), b"01234"),
        vec![o(ACK, ISS + 1, IRS + 12, b"")]
    );
    let mut buf = [0u8; 16];
    assert_eq!(t.tcb.recv(&mut buf), 11);
    assert_eq!(&buf[..11], b"hello01234x");
}

#[test]
fn zero_window_is_probed() {
    let mut t = T::established(cfg());
    let mut z = seg(ACK, IRS + 1, ISS + 1);
    z.window_len = 0;
    t.send(z, b"");
    t.tcb.send(b"waiting");
    assert!(t.out().is_empty());
    // The persist timer (the RTO, 200 ms) sends a probe: an old
    // sequence number, which the peer must answer.
    assert!(t.advance(Duration::from_millis(199)).is_empty());
    let p = t.advance(Duration::from_millis(1));
    assert_eq!(p, vec![o(ACK, ISS, IRS + 1, b"")]);
    assert_eq!(t.tcb.tx_stats.probes, 1);
    // Still zero: backed off to 400 ms.
    t.send(z, b"");
    assert!(t.advance(Duration::from_millis(399)).is_empty());
    assert_eq!(t.advance(Duration::from_millis(1)).len(), 1);
    // The window opens: the data goes.
    assert_eq!(
        t.send(seg(ACK, IRS + 1, ISS + 1), b""),
        vec![o(ACK | PSH, ISS + 1, IRS + 1, b"waiting")]
    );
}

#[test]
fn receive_window_closes_and_reopens() {
    let mut t = T::established(TcpConfig {
        rx_buffer: 4096,
        window_scaling: false,
        ..cfg()
    });
    let chunk = [1u8; 1024];
    for i in 0..4 {
        t.send(seg(ACK, IRS + 1 + i * 1024, ISS + 1), &chunk);
    }
    assert_eq!(t.tcb.recv_len(), 4096);
    // Beyond a zero window: ACK with window 0, dropped.
    let out = t.out_full();
    assert!(out.is_empty() || out[0].0.window_len == 0);
    let extra = t.send(seg(ACK, IRS + 1 + 4096, ISS + 1), b"x");
    assert_eq!(extra.len(), 1);
    assert_eq!(t.tcb.recv_len(), 4096);
    // Reading makes a window update.
    let mut buf = [0u8; 4096];
    t.tcb.recv(&mut buf);
    let upd = t.out_full();
    assert_eq!(upd.len(), 1);
    assert_eq!(upd[0].0.window_len, 4096);
}

#[test]
fn keepalive_probes_then_times_out() {
    let mut t = T::established(TcpConfig {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            probes: 2,
        }),
        ..cfg()
    });
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert!(t.advance(Duration::from_secs(9)).is_empty());
    assert_eq!(
        t.advance(Duration::from_secs(1)),
        vec![o(ACK, ISS, IRS + 1, b"")]
    );
    // An answer resets the count.
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert!(t.advance(Duration::from_secs(5)).is_empty());
    assert_eq!(t.advance(Duration::from_secs(5)).len(), 1);
    assert_eq!(t.advance(Duration::from_secs(1)).len(), 1);
    assert_eq!(
        t.advance(Duration::from_secs(1)),
        vec![o(RST | ACK, ISS + 1, IRS + 1, b"")]
    );
    assert_eq!(t.tcb.close_reason, Some(CloseReason::TimedOut));
}

#[test]
fn resets_for_closed_ports() {
    // SYN: RST|ACK acking the SYN (RFC 9293 3.10.7.1).
    let r = reset_for(&seg(SYN, IRS, 0), 0).unwrap();
    assert_eq!(
        (r.flags, r.seq_number, r.ack_number),
        (RST | ACK, 0, IRS + 1)
    );
    assert_eq!((r.src_port, r.dst_port), (LOCAL.port(), REMOTE.port()));
    // With an ACK: RST with its number.
    let r = reset_for(&seg(ACK, IRS, 77), 10).unwrap();
    assert_eq!((r.flags, r.seq_number), (RST, 77));
    // Data without ACK: acks the data.
    let r = reset_for(&seg(PSH, IRS, 0), 10).unwrap();
    assert_eq!(r.ack_number, IRS + 10);
    // Never a RST for a RST.
    assert!(reset_for(&seg(RST, IRS, 0), 0).is_none());
}

// ---- simulation -----------------------------------------------------------

/// A deterministic generator (xorshift) for the simulated link.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

struct InFlight {
    at: Instant,
    to_b: bool,
    seg: TcpRepr,
    data: Vec<u8>,
}

/// Two connections over a link that loses `loss`%, duplicates `dup`% and
/// delays segments by 1-`jitter` ms (so reorders them). Each side sends
/// `len` bytes and reads everything; returns what each side received.
fn simulate(
    seed: u64,
    loss: u64,
    dup: u64,
    jitter: u64,
    len: usize,
) -> (Vec<u8>, Vec<u8>, Counters) {
    Sim::new(seed, loss, dup, jitter, len).run()
}

/// A simulation's settings: those of `simulate`, and more.
#[derive(Clone, Copy)]
struct Sim {
    seed: u64,
    loss: u64,
    dup: u64,
    jitter: u64,
    len: usize,
    /// b opens actively too: both SYNs cross (RFC 9293 3.5, figure 8).
    simultaneous: bool,
    /// b's application reads nothing from this time to that (in ms from
    /// the start): its window closes.
    b_deaf_ms: (u64, u64),
    /// Both connections' congestion control.
    cc: CcAlgorithm,
    /// Both connections offer timestamps (RFC 7323) and SACK (RFC 2018).
    timestamps: bool,
    sack: bool,
    /// Both connections act as if the table's wheel held an entry for
    /// them (`timer_tick`), so that a drained flight keeps its emptied
    /// scoreboard until the timer path runs (`Tcb::flight_drained`).
    keep_boards: bool,
}

/// Every segment a simulation sent, in order: (to b, header, payload).
type SimTrace = Vec<(bool, TcpRepr, Vec<u8>)>;

impl Sim {
    fn new(seed: u64, loss: u64, dup: u64, jitter: u64, len: usize) -> Sim {
        Sim {
            seed,
            loss,
            dup,
            jitter,
            len,
            simultaneous: false,
            b_deaf_ms: (0, 0),
            cc: CcAlgorithm::Cubic,
            timestamps: true,
            sack: true,
            keep_boards: false,
        }
    }

    /// Run it: what a received, what b received, and the counters (both
    /// connections' `tx_stats` probes included, as a core counts them).
    fn run(self) -> (Vec<u8>, Vec<u8>, Counters) {
        let (a, b, c, _) = self.run_traced();
        (a, b, c)
    }

    /// [`Sim::run`], and every segment sent.
    fn run_traced(self) -> (Vec<u8>, Vec<u8>, Counters, SimTrace) {
        let Sim {
            seed,
            loss,
            dup,
            jitter,
            len,
            simultaneous,
            b_deaf_ms,
            cc,
            timestamps,
            sack,
            keep_boards,
        } = self;
        let cfg = TcpConfig {
            rx_buffer: 32 * 1024,
            tx_buffer: 32 * 1024,
            mss: 1000,
            cc,
            timestamps,
            sack,
            ..cfg()
        };
        let mut trace = SimTrace::new();
        let mut rng = Rng(seed | 1);
        let start = Instant::from_secs(1);
        let mut now = start;
        let b_deaf = (
            start.plus(Duration::from_millis(b_deaf_ms.0)),
            start.plus(Duration::from_millis(b_deaf_ms.1)),
        );
        let filed = keep_boards.then_some(u64::MAX);
        let mut a = Tcb::connect(&cfg, now, LOCAL, REMOTE, 1_000_000, 0);
        a.timer_tick = filed;
        let mut b_opt: Option<Tcb> = simultaneous.then(|| {
            let mut b = Tcb::connect(&cfg, now, REMOTE, LOCAL, 7_000_000, 0);
            b.timer_tick = filed;
            b
        });
        let mut c = Counters::default();
        let mut link: Vec<InFlight> = Vec::new();
        let data_a: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let data_b: Vec<u8> = (0..len).map(|i| (i * 17 + 3) as u8).collect();
        let (mut sent_a, mut sent_b) = (0, 0);
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 65536];
        let flip = |s: &TcpRepr| TcpRepr {
            src_port: s.src_port,
            dst_port: s.dst_port,
            ..*s
        };
        for _step in 0..2_000_000 {
            // Deliver what is due.
            let mut due = Vec::new();
            let mut i = 0;
            while i < link.len() {
                if link[i].at <= now {
                    due.push(link.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            for f in due {
                if f.to_b {
                    if b_opt.is_none() && f.seg.flags.syn() && !f.seg.flags.ack() {
                        let mut b = Tcb::accept(&cfg, now, REMOTE, LOCAL, 7_000_000, 0, &f.seg);
                        b.timer_tick = filed;
                        b_opt = Some(b);
                    } else if let Some(b) = b_opt.as_mut() {
                        b.process(now, &flip(&f.seg), &f.data, &mut c);
                    }
                } else {
                    a.process(now, &f.seg, &f.data, &mut c);
                }
            }
            // Applications: write what fits, read everything.
            for (t, data, sent, got, is_a) in [(&mut a, &data_a, &mut sent_a, &mut got_a, true)]
                .into_iter()
                .chain(
                    b_opt
                        .as_mut()
                        .map(|b| (b, &data_b, &mut sent_b, &mut got_b, false)),
                )
            {
                if t.state != State::SynSent && t.state != State::SynReceived {
                    if *sent < data.len() {
                        *sent += t.send(&data[*sent..]);
                        if *sent == data.len() {
                            t.shutdown();
                        }
                    }
                    let deaf = !is_a && b_deaf.0 <= now && now < b_deaf.1;
                    loop {
                        let n = if deaf { 0 } else { t.recv(&mut buf) };
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                }
                t.take_events();
                if t.next_deadline().is_some_and(|d| d <= now) {
                    t.on_timer(now, &mut c);
                }
            }
            // Transmit.
            for (t, to_b) in [(&mut a, true)]
                .into_iter()
                .chain(b_opt.as_mut().map(|b| (b, false)))
            {
                // What the core skips (Tcb::nothing_due) must send
                // nothing and set no timer: checked at every step of every
                // simulation, whatever the link did.
                let quiet = t.nothing_due();
                let deadline = t.next_deadline();
                let mut out = Vec::new();
                t.dispatch_always(now, &mut |r, x, y| {
                    // Both sides announce (and cap at) cfg.mss.
                    assert_fits(r, x.len() + y.len(), cfg.mss);
                    out.push((*r, [x, y].concat()));
                    true
                });
                if let Err(e) = t.check_due() {
                    panic!("due: {e} (seed {seed})");
                }
                if quiet {
                    assert!(
                        out.is_empty(),
                        "nothing due, yet sent {out:?} (seed {seed})"
                    );
                    assert_eq!(t.next_deadline(), deadline, "seed {seed}");
                }
                for (seg, data) in out {
                    trace.push((to_b, seg, data.clone()));
                    if rng.percent(loss) {
                        continue;
                    }
                    let copies = if rng.percent(dup) { 2 } else { 1 };
                    for _ in 0..copies {
                        let delay = 1000 + rng.next() % (jitter * 1000).max(1);
                        link.push(InFlight {
                            at: now.plus(Duration::from_micros(delay)),
                            to_b,
                            seg,
                            data: data.clone(),
                        });
                    }
                }
            }
            let b_done = b_opt
                .as_ref()
                .is_some_and(|b| matches!(b.state, State::Closed | State::TimeWait));
            let a_done = matches!(a.state, State::Closed | State::TimeWait);
            if a_done && b_done && got_a.len() == len && got_b.len() == len {
                break;
            }
            now = now.plus(Duration::from_micros(100));
        }
        assert_eq!(got_b, data_a, "a -> b (seed {seed})");
        assert_eq!(got_a, data_b, "b -> a (seed {seed})");
        c.tcp_probes_sent += a.tx_stats.probes + b_opt.map_or(0, |b| b.tx_stats.probes);
        (got_a, got_b, c, trace)
    }
}

/// Header prediction (`Tcb::process_predicted`) against the general path
/// alone: the same simulation, with it and without it, sends the same
/// segments in the same order and counts the same, over lossy,
/// reordering, duplicating links, with and without timestamps and SACK
/// Returns how many segments it took.
fn predicted_matches_general(sim: Sim) -> u64 {
    use super::tcb::{PREDICT, PREDICTED};
    PREDICTED.with(|n| n.set(0));
    let fast = sim.run_traced();
    let taken = PREDICTED.with(std::cell::Cell::get);
    PREDICT.with(|p| p.set(false));
    let slow = sim.run_traced();
    PREDICT.with(|p| p.set(true));
    assert_eq!(
        PREDICTED.with(std::cell::Cell::get),
        taken,
        "forced off, yet taken"
    );
    assert_eq!(
        fast.3.len(),
        slow.3.len(),
        "seed {}: segment counts",
        sim.seed
    );
    for (i, (f, s)) in fast.3.iter().zip(&slow.3).enumerate() {
        assert_eq!(f, s, "seed {}: segment {i}", sim.seed);
    }
    assert_eq!(fast.2, slow.2, "seed {}: counters", sim.seed);
    assert_eq!((fast.0, fast.1), (slow.0, slow.1));
    taken
}

#[test]
fn header_prediction_is_the_general_path() {
    // The lossiest runs go through timeouts, F-RTO and undo.
    let mut total = 0;
    for (seed, loss, dup, jitter, len) in [
        (1, 0, 0, 1, 100_000),
        (3, 5, 3, 4, 100_000),
        (7, 2, 0, 8, 100_000),
        (11, 10, 5, 2, 50_000),
        (13, 25, 0, 1, 30_000),
        (17, 30, 5, 3, 30_000),
    ] {
        for (timestamps, sack) in [(true, true), (false, false), (true, false), (false, true)] {
            let sim = Sim {
                timestamps,
                sack,
                ..Sim::new(seed, loss, dup, jitter, len)
            };
            total += predicted_matches_general(sim);
        }
    }
    // Most segments of these links come out of order or carry SACK
    // blocks; some hundreds do not.
    assert!(total > 200, "predicted {total}");
}

/// A drained flight's scoreboard kept for the next one while the wheel
/// holds an entry (`Tcb::flight_drained`) against one given back to the
/// core's spares at once: the same simulations send the same segments in
/// the same order and count the same.
#[test]
fn a_kept_scoreboard_is_a_fresh_one() {
    use super::tcb::BOARDS_KEPT;
    let mut kept = 0;
    for (seed, loss, dup, jitter, len) in [
        (1, 0, 0, 1, 100_000),
        (3, 5, 3, 4, 100_000),
        (11, 10, 5, 2, 50_000),
        (17, 30, 5, 3, 30_000),
    ] {
        for (timestamps, sack) in [(true, true), (false, false), (true, false)] {
            let sim = |keep_boards| Sim {
                timestamps,
                sack,
                keep_boards,
                ..Sim::new(seed, loss, dup, jitter, len)
            };
            let given = sim(false).run_traced();
            BOARDS_KEPT.with(|n| n.set(0));
            let held = sim(true).run_traced();
            kept += BOARDS_KEPT.with(std::cell::Cell::get);
            assert_eq!(held.3.len(), given.3.len(), "seed {seed}: segment counts");
            for (i, (h, g)) in held.3.iter().zip(&given.3).enumerate() {
                assert_eq!(h, g, "seed {seed}: segment {i}");
            }
            assert_eq!(held.2, given.2, "seed {seed}: counters");
            assert_eq!((held.0, held.1), (given.0, given.1));
        }
    }
    // The flights of a bulk transfer seldom drain: some tens do here.
    assert!(kept > 20, "kept {kept}");
}

/// Without a wheel entry a drained flight's board goes back at once (an
/// idle connection holds none); with one it is kept, emptied, until the
/// timer path runs.
#[test]
fn a_drained_board_is_kept_only_while_the_wheel_holds_an_entry() {
    for filed in [None, Some(7)] {
        let mut t = T::established(cfg());
        t.tcb.timer_tick = filed;
        t.tcb.send(b"hello");
        assert_eq!(t.out(), vec![o(ACK | PSH, ISS + 1, IRS + 1, b"hello")]);
        assert!(t.tcb.holds_scoreboard());
        t.send(seg(ACK, IRS + 1, ISS + 6), b"");
        assert_eq!(t.tcb.holds_scoreboard(), filed.is_some());
        t.tcb.on_timer(t.now, &mut t.c);
        assert!(!t.tcb.holds_scoreboard());
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
    #[test]
    fn header_prediction_is_the_general_path_on_random_links(
        seed in 1u64..1_000_000,
        loss in 0u64..15,
        dup in 0u64..10,
        jitter in 1u64..10,
        timestamps: bool,
        sack: bool,
        newreno: bool,
    ) {
        let sim = Sim {
            timestamps,
            sack,
            cc: if newreno { CcAlgorithm::NewReno } else { CcAlgorithm::Cubic },
            ..Sim::new(seed, loss, dup, jitter, 40_000)
        };
        predicted_matches_general(sim);
    }
}

#[test]
fn simulation_clean_link() {
    let (_, _, c) = simulate(1, 0, 0, 1, 300_000);
    assert_eq!(c.tcp_rto, 0);
}

#[test]
fn simulation_lossy_reordering_duplicating_link() {
    for seed in [3, 5, 7, 11] {
        let (_, _, c) = simulate(seed, 5, 3, 4, 200_000);
        assert!(c.tcp_ooo_segments > 0 || c.tcp_dup_segments > 0);
    }
}

#[test]
fn simulation_with_newreno() {
    for (seed, loss) in [(1, 0), (3, 5), (13, 2)] {
        let sim = Sim {
            cc: CcAlgorithm::NewReno,
            ..Sim::new(seed, loss, 3, 4, 200_000)
        };
        let (_, _, c) = sim.run();
        assert_eq!(c.tcp_timeouts, 0);
    }
}

// ---- B1: a send that fails arms a timer ------------------------------------

// The harness dispatches on every step, as the core would not: each case
// checks the deadline the failure armed, then lets exactly it fire.

#[test]
fn failed_sends_are_retried_by_a_timer() {
    // A SYN that could not be sent (e.g. the ARP queue was full) goes
    // again on the retransmission timer.
    let mut t = T::active(cfg());
    assert_eq!(t.out_failing(), 1);
    assert_eq!(t.tcb.state, State::SynSent);
    assert_eq!(
        t.tcb.next_deadline(),
        Some(t.now.plus(Duration::from_secs(1)))
    );
    let out = t.advance(Duration::from_secs(1));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (SYN, ISS));
    assert_eq!(t.c.tcp_rto, 1);

    // A SYN-ACK likewise.
    let mut p = T::passive(cfg(), seg(SYN, IRS, 0));
    assert_eq!(p.out_failing(), 1);
    assert_eq!(
        p.tcb.next_deadline(),
        Some(p.now.plus(Duration::from_secs(1)))
    );
    assert_eq!(
        p.advance(Duration::from_secs(1)),
        vec![o(SYN | ACK, ISS, IRS + 1, b"")]
    );

    // Data with nothing else in flight: the RTO (200 ms) sends it.
    let mut d = T::established(cfg());
    d.tcb.send(b"data");
    assert!(d.out_failing() >= 1);
    assert_eq!(
        d.tcb.next_deadline(),
        Some(d.now.plus(Duration::from_millis(200)))
    );
    assert_eq!(
        d.advance(Duration::from_millis(200)),
        vec![o(ACK | PSH, ISS + 1, IRS + 1, b"data")]
    );

    // An ACK that could not be sent goes on the delayed-ACK timer.
    let mut a = T::established(cfg());
    a.tcb
        .process(a.now, &seg(ACK, IRS + 6, ISS + 1), b"later", &mut a.c);
    assert_eq!(a.out_failing(), 1);
    assert_eq!(
        a.tcb.next_deadline(),
        Some(a.now.plus(Duration::from_millis(200)))
    );
    assert_eq!(
        a.advance(Duration::from_millis(200)),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
}

// ---- B2: options are paid out of the segment -------------------------------

#[test]
fn sack_blocks_are_paid_out_of_the_segment() {
    let mut syn = seg(SYN, IRS, 0);
    syn.options = TcpOptions {
        mss: Some(1000),
        sack_permitted: true,
        timestamps: Some((100, 0)),
        ..Default::default()
    };
    let mut t = T::passive(cfg(), syn);
    t.out();
    let mut ack = seg(ACK, IRS + 1, ISS + 1);
    ack.options.timestamps = Some((101, 1000));
    t.send(ack, b"");
    assert_eq!(t.tcb.state, State::Established);
    // 1000 less 12 bytes of timestamps.
    assert_eq!(t.tcb.mss, 988);
    // Data after a hole: our segments carry a SACK block (4 + 8 bytes).
    let mut ooo = ack;
    ooo.seq_number = IRS + 101;
    let sack = t.send(ooo, &[1; 100]);
    assert_eq!(sack.len(), 1);
    // A full window of data now: every segment carries the SACK block, so
    // each carries 12 bytes less than the MSS (the harness asserts the
    // limit on every segment it sees).
    t.tcb.send(&[7; 3000]);
    let out = t.out_full();
    assert_eq!(out.len(), 3);
    for (r, p) in &out {
        assert_eq!(r.options.sack_count(), 1);
        assert_eq!(p.len(), 976);
    }
    // With a second hole (two blocks, 20 bytes) the tail loss probe (the
    // last bytes sent) and the retransmission on the RTO shrink too.
    ooo.seq_number = IRS + 301;
    t.send(ooo, &[1; 100]);
    let mut next = || {
        (0..100)
            .map(|_| t.advance(Duration::from_millis(10)))
            .find(|o| !o.is_empty())
            .unwrap()
    };
    let tlp = next();
    assert_eq!(tlp.len(), 1);
    // (Nagle holds the last 72 bytes: three segments are out.)
    assert_eq!((tlp[0].1, tlp[0].3.len()), (ISS + 1 + 3 * 976 - 968, 968));
    let rto = next();
    assert_eq!((rto[0].1, rto[0].3.len()), (ISS + 1, 968));
}

// ---- B4: simultaneous open between two of our connections -----------------

/// Segments one connection sends now.
fn drain(t: &mut Tcb, now: Instant, mss_limit: usize) -> Vec<(TcpRepr, Vec<u8>)> {
    let mut v = Vec::new();
    t.dispatch(now, &mut |r, a, b| {
        assert_fits(r, a.len() + b.len(), mss_limit);
        v.push((*r, [a, b].concat()));
        true
    });
    v
}

/// Exchange segments between `a` and `b` in rounds (each sends, then each
/// receives what the other sent) until neither has anything to send.
/// Returns the segments a sent and the segments b sent, in order.
type Trace = Vec<(TcpRepr, Vec<u8>)>;
fn exchange(a: &mut Tcb, b: &mut Tcb, now: Instant, c: &mut Counters) -> (Trace, Trace) {
    let (mut all_a, mut all_b) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let from_a = drain(a, now, 1460);
        let from_b = drain(b, now, 1460);
        if from_a.is_empty() && from_b.is_empty() {
            return (all_a, all_b);
        }
        for (r, p) in &from_a {
            b.process(now, r, p, c);
        }
        for (r, p) in &from_b {
            a.process(now, r, p, c);
        }
        all_a.extend(from_a);
        all_b.extend(from_b);
    }
    panic!("the exchange never settles");
}

#[test]
fn simultaneous_open_between_two_connects() {
    // Two active opens whose SYNs cross (RFC 9293 3.5, figure 8), no
    // injected segment: each answers the other's SYN with a SYN-ACK of
    // its own SYN, and each SYN-ACK draws the ACK that completes it.
    let cfg = cfg();
    let now = Instant::from_secs(1);
    let mut a = Tcb::connect(&cfg, now, LOCAL, REMOTE, ISS, 0);
    let mut b = Tcb::connect(&cfg, now, REMOTE, LOCAL, IRS, 0);
    let mut c = Counters::default();
    let (sa, sb) = exchange(&mut a, &mut b, now, &mut c);
    assert_eq!(a.state, State::Established, "a sent {sa:?}");
    assert_eq!(b.state, State::Established, "b sent {sb:?}");
    assert_ne!(a.take_events() & event::CONNECTED, 0);
    assert_ne!(b.take_events() & event::CONNECTED, 0);
    // SYN, SYN-ACK, ACK each.
    let flags = |s: &Trace| s.iter().map(|(r, _)| r.flags).collect::<Vec<_>>();
    assert_eq!(flags(&sa), vec![SYN, SYN | ACK, ACK]);
    assert_eq!(flags(&sb), vec![SYN, SYN | ACK, ACK]);
    // Both negotiated what both offered.
    assert_eq!(a.mss, 1460 - 12);
    assert_eq!(b.mss, 1460 - 12);
    // Data both ways.
    assert_eq!(a.send(b"from a"), 6);
    assert_eq!(b.send(b"from b"), 6);
    exchange(&mut a, &mut b, now, &mut c);
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(&mut buf), 6);
    assert_eq!(&buf[..6], b"from a");
    assert_eq!(a.recv(&mut buf), 6);
    assert_eq!(&buf[..6], b"from b");
    assert_eq!(c.tcp_connected, 2);
}

// ---- B7: the window of a SYN-ACK is not scaled ----------------------------

#[test]
fn syn_ack_window_is_not_scaled() {
    let mut t = T::active(cfg());
    t.out();
    let mut syn_ack = seg(SYN | ACK, IRS, ISS + 1);
    syn_ack.options.window_scale = Some(7);
    syn_ack.options.mss = Some(1460);
    syn_ack.window_len = 1000;
    assert_eq!(t.send(syn_ack, b""), vec![o(ACK, ISS + 1, IRS + 1, b"")]);
    assert_eq!(t.tcb.state, State::Established);
    // 1000 bytes of window (RFC 7323 2.2), not 1000 << 7: one segment of
    // 1000 bytes (half the largest window offered, RFC 9293 3.8.6.2.1),
    // where four full ones fit the initial congestion window.
    t.tcb.send(&[5; 5000]);
    assert_eq!(t.out(), vec![o(ACK, ISS + 1, IRS + 1, &[5; 1000])]);
    // MAX.SND.WND is 1000: an ACK 2000 below SND.UNA is too old (RFC 5961
    // 5.2) and draws a challenge ACK.
    let mut ack = seg(ACK, IRS + 1, ISS + 1001);
    ack.window_len = 8; // 1024 bytes, scaled
    t.send(ack, b"");
    assert_eq!(t.c.tcp_bad_ack, 0);
    t.send(seg(ACK, IRS + 1, (ISS + 1001).wrapping_sub(2000)), b"");
    assert_eq!(t.c.tcp_bad_ack, 1);
}

// ---- B8: the tail loss probe waits for a delayed ACK ----------------------

/// Established by a passive open whose handshake measured `rtt`.
fn established_with_rtt(cfg: TcpConfig, rtt: Duration) -> T {
    let mut t = T::passive(cfg, seg(SYN, IRS, 0));
    t.out();
    t.now = t.now.plus(rtt);
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert_eq!(t.tcb.srtt(), Some(rtt));
    t.take_events();
    t
}

#[test]
fn tail_loss_probe_allows_for_a_delayed_ack() {
    let cfg = TcpConfig {
        timestamps: false,
        ..cfg()
    };
    // SRTT 10 ms: RTO 200 ms (its floor). A one-segment response to a
    // peer that holds its ACK 40 ms (RFC 1122 delayed ACK) is sent once:
    // the probe would come at 2 SRTT + WCDelAckT (RFC 8985 7.2), after the
    // RTO, so only the RTO is armed.
    let mut t = established_with_rtt(cfg, Duration::from_millis(10));
    t.tcb.send(b"response");
    assert_eq!(t.out().len(), 1);
    for _ in 0..5 {
        assert!(t.advance(Duration::from_millis(10)).is_empty());
    }
    assert!(t.send(seg(ACK, IRS + 1, ISS + 9), b"").is_empty());
    assert_eq!(t.c.tcp_tail_loss_probes, 0);
    assert_eq!(t.tcb.next_deadline(), None);

    // Two segments in flight (the peer's MSS is 536): the probe comes
    // after 2 SRTT (at least 10 ms), the last segment again.
    let mut two = established_with_rtt(cfg, Duration::from_millis(10));
    two.tcb.send(&[1; 2 * 536]);
    assert_eq!(two.out().len(), 2);
    assert!(two.advance(Duration::from_millis(19)).is_empty());
    let probe = two.advance(Duration::from_millis(1));
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].1, ISS + 1 + 536);
    assert_eq!(two.c.tcp_tail_loss_probes, 1);

    // A long RTT (SRTT 100 ms, RTO 300 ms): one segment's probe, 2 SRTT
    // + 200 ms = 400 ms, would come after the RTO. It is cut to the RTO's
    // deadline and goes in the timeout's place (RFC 8985 7.2, as Linux):
    // at 300 ms a probe, no timeout, the window kept; the RTO is armed
    // again from the probe (7.3) and fires 300 ms later if the probe is
    // not answered either.
    let mut far = established_with_rtt(cfg, Duration::from_millis(100));
    assert_eq!(far.tcb.rto(), Duration::from_millis(300));
    let cwnd = far.tcb.cwnd();
    far.tcb.send(b"x");
    far.out();
    assert!(far.advance(Duration::from_millis(299)).is_empty());
    assert_eq!(far.advance(Duration::from_millis(1)).len(), 1);
    assert_eq!((far.c.tcp_tail_loss_probes, far.c.tcp_rto), (1, 0));
    assert_eq!(far.tcb.cwnd(), cwnd);
    assert!(far.advance(Duration::from_millis(299)).is_empty());
    assert_eq!(far.advance(Duration::from_millis(1)).len(), 1);
    assert_eq!((far.c.tcp_tail_loss_probes, far.c.tcp_rto), (1, 1));

    // A flight that grows from one segment to two restarts the probe's
    // timer with the shorter PTO (7.2: restarted after new data).
    let nodelay = TcpConfig {
        nagle: false,
        ..cfg
    };
    let mut grow = established_with_rtt(nodelay, Duration::from_millis(10));
    grow.tcb.send(&[1; 536]);
    assert_eq!(grow.out().len(), 1);
    grow.advance(Duration::from_millis(5));
    grow.tcb.send(&[2; 536]);
    assert_eq!(grow.out().len(), 1);
    assert!(grow.advance(Duration::from_millis(19)).is_empty());
    assert_eq!(grow.advance(Duration::from_millis(1)).len(), 1);
    assert_eq!(grow.c.tcp_tail_loss_probes, 1);
}

// ---- B11: only acceptable segments restart keepalive ----------------------

#[test]
fn keepalive_is_restarted_only_by_acceptable_segments() {
    let mut t = T::established(TcpConfig {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            probes: 2,
        }),
        ..cfg()
    });
    // The handshake armed it.
    assert_eq!(
        t.tcb.next_deadline(),
        Some(t.now.plus(Duration::from_secs(10)))
    );
    // At 9 s a segment outside the window (a blind attacker, or an old
    // duplicate): answered, but it does not prove the peer alive.
    t.advance(Duration::from_secs(9));
    t.send(seg(ACK, IRS + 1 + 1_000_000, ISS + 1), b"x");
    assert_eq!(
        t.advance(Duration::from_secs(1)),
        vec![o(ACK, ISS, IRS + 1, b"")]
    );
    // Nor do they reset the probe count: two probes, then the end.
    t.send(seg(ACK, IRS + 1 + 1_000_000, ISS + 1), b"x");
    assert_eq!(t.advance(Duration::from_secs(1)).len(), 1);
    t.send(seg(ACK, IRS + 1 + 1_000_000, ISS + 1), b"x");
    assert_eq!(
        t.advance(Duration::from_secs(1)),
        vec![o(RST | ACK, ISS + 1, IRS + 1, b"")]
    );
    assert_eq!(t.tcb.close_reason, Some(CloseReason::TimedOut));

    // An acceptable segment does restart it.
    let mut a = T::established(TcpConfig {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            probes: 2,
        }),
        ..cfg()
    });
    a.advance(Duration::from_secs(9));
    a.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert_eq!(
        a.tcb.next_deadline(),
        Some(a.now.plus(Duration::from_secs(10)))
    );
}

// ---- B12: shutdown before the handshake completes -------------------------

#[test]
fn shutdown_in_syn_sent_sends_the_fin_once_established() {
    let mut t = T::active(cfg());
    t.out();
    t.tcb.send(b"hi");
    t.tcb.shutdown();
    // Still connecting; nothing is lost and nothing is sent yet.
    assert_eq!(t.tcb.state, State::SynSent);
    assert!(!t.tcb.can_send());
    assert!(t.out().is_empty());
    assert_eq!(t.take_events(), 0);
    // The SYN-ACK: the data and the FIN go with the handshake's ACK.
    assert_eq!(
        t.send(seg(SYN | ACK, IRS, ISS + 1), b""),
        vec![o(FIN | ACK | PSH, ISS + 1, IRS + 1, b"hi")]
    );
    assert_eq!(t.tcb.state, State::FinWait1);
    assert_eq!(t.take_events(), event::CONNECTED);
    // The half-closed connection still receives.
    t.send(seg(ACK, IRS + 1, ISS + 4), b"reply");
    assert_eq!(t.tcb.state, State::FinWait2);
    assert_eq!(t.tcb.recv_len(), 5);

    // close() in SYN-SENT still deletes the connection (RFC 9293 3.10.4).
    let mut c = T::active(cfg());
    c.out();
    c.tcb.close(c.now);
    assert!(c.tcb.is_closed());
    assert!(c.out().is_empty());
}

// ---- B13: answers to invalid segments are rate-limited --------------------

#[test]
fn acks_for_invalid_segments_are_rate_limited() {
    let mut t = T::established(cfg());
    let blind = seg(ACK, IRS + 1 + 1_000_000, ISS + 1);
    // A flood of out-of-window ACKs: one answer per 500 ms.
    assert_eq!(t.send(blind, b""), vec![o(ACK, ISS + 1, IRS + 1, b"")]);
    for _ in 0..9 {
        assert!(t.send(blind, b"").is_empty());
    }
    assert_eq!(t.c.tcp_invalid_acks_limited, 9);
    assert_eq!(t.c.dropped(DropReason::TcpOutOfWindow), 10);
    // Challenge ACKs share the limit: an in-window SYN or RST gets none.
    assert!(t.send(seg(SYN, IRS + 1, 0), b"").is_empty());
    assert!(t.send(seg(RST, IRS + 100, 0), b"").is_empty());
    assert_eq!(t.c.tcp_challenge_acks, 0);
    assert_eq!(t.c.tcp_invalid_acks_limited, 11);
    assert_eq!(t.tcb.state, State::Established);
    // Data out of the window is always answered (as Linux: it may be a
    // retransmission whose ACK was lost, and it is no ACK loop).
    assert_eq!(
        t.send(seg(ACK, IRS + 1 + 1_000_000, ISS + 1), b"x"),
        vec![o(ACK, ISS + 1, IRS + 1, b"")]
    );
    // 500 ms on, the next invalid segment is answered again.
    assert!(t.advance(Duration::from_millis(499)).is_empty());
    assert!(t.send(blind, b"").is_empty());
    t.advance(Duration::from_millis(1));
    assert_eq!(t.send(blind, b""), vec![o(ACK, ISS + 1, IRS + 1, b"")]);
    assert_eq!(t.c.tcp_invalid_acks_limited, 12);

    // PAWS: the same limit.
    let mut syn = seg(SYN, IRS, 0);
    syn.options.timestamps = Some((100, 0));
    let mut p = T::passive(cfg(), syn);
    p.out();
    let mut ack = seg(ACK, IRS + 1, ISS + 1);
    ack.options.timestamps = Some((101, 1000));
    p.send(ack, b"");
    let mut old = ack;
    old.options.timestamps = Some((50, 1000));
    assert_eq!(p.send(old, b"").len(), 1);
    assert!(p.send(old, b"").is_empty());
    assert_eq!(p.c.tcp_paws_rejected, 2);
    assert_eq!(p.c.tcp_invalid_acks_limited, 1);
}

// ---- B6: small and shrunk windows -----------------------------------------

/// A segment from the peer with window `wnd` (no scaling: our tests' peers
/// send no window scale option).
fn win(ack: u32, wnd: u16) -> TcpRepr {
    TcpRepr {
        window_len: wnd,
        ..seg(ACK, IRS + 1, ack)
    }
}

#[test]
fn small_window_is_filled_by_the_override_timeout() {
    // The peer offered 65535 at first, now 100 bytes (less than an MSS of
    // 536 and less than half its largest window): sender SWS avoidance
    // holds the data, and with nothing in flight no ACK will come to
    // change that. RFC 9293 3.8.6.2.1: after the override timeout (the
    // persist timer, one RTO: 200 ms) send what fits.
    let mut t = T::established(cfg());
    t.send(win(ISS + 1, 100), b"");
    t.tcb.send(&[3; 1000]);
    assert!(t.out().is_empty());
    assert!(t.advance(Duration::from_millis(199)).is_empty());
    assert_eq!(
        t.advance(Duration::from_millis(1)),
        vec![o(ACK, ISS + 1, IRS + 1, &[3; 100])]
    );
    // Acknowledged, the window still 100: the next 100 after another
    // 200 ms (progress restarts the backoff).
    assert!(t.send(win(ISS + 101, 100), b"").is_empty());
    assert!(t.advance(Duration::from_millis(199)).is_empty());
    assert_eq!(
        t.advance(Duration::from_millis(1)),
        vec![o(ACK, ISS + 101, IRS + 1, &[3; 100])]
    );
    // A window that opens lets full segments go at once (Nagle holds the
    // last 264 bytes for this one's ACK).
    let open = t.send(win(ISS + 201, 65535), b"");
    assert_eq!(open, vec![o(ACK, ISS + 201, IRS + 1, &[3; 536])]);
}

#[test]
fn window_shrunk_to_zero_under_data_in_flight_is_probed_not_timed_out() {
    let mut t = T::established(TcpConfig {
        max_retries: 3,
        ..cfg()
    });
    t.tcb.send(&[4; 1072]);
    assert_eq!(t.out().len(), 2);
    // The peer takes nothing more and closes its window (it may, RFC
    // 9293 3.8.6.1).
    assert!(t.send(win(ISS + 1, 0), b"").is_empty());
    // (First the tail loss probe, 10 ms on: the last segment again.)
    let tlp = t.advance(Duration::from_millis(10));
    assert_eq!((tlp.len(), tlp[0].1), (1, ISS + 1 + 536));
    t.send(win(ISS + 1, 0), b"");
    // The RTO (200 ms) finds the window zero: the data is not lost, a
    // window probe goes (not a retransmission), and more follow, backed
    // off, for as long as the peer answers them: far past max_retries.
    let mut probes = 0;
    for _ in 0..200 {
        let out = t.advance(Duration::from_millis(100));
        for p in &out {
            assert_eq!(*p, o(ACK, ISS, IRS + 1, b""));
            probes += 1;
            t.send(win(ISS + 1, 0), b"");
        }
    }
    assert!(probes > 5, "{probes} probes");
    assert_eq!(t.tcb.state, State::Established);
    assert_eq!(t.c.tcp_timeouts, 0);
    // The window opens: everything from SND.UNA goes again.
    let out = t.send(win(ISS + 1, 65535), b"");
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].1, ISS + 1);
    t.send(win(ISS + 1073, 65535), b"");
    assert_eq!(t.tcb.unsent_or_unacked(), 0);
}

// ---- B5: window probing gives up ------------------------------------------

/// Advance in 100 ms steps for up to `ms`, answering every zero-window
/// probe (an ACK below SND.UNA, no data) with a zero window, as a peer that
/// holds its window shut does. Returns the probes answered and the other
/// segments sent.
fn hold_window_shut(t: &mut T, ms: u64) -> (usize, Vec<Out>) {
    let (mut probes, mut other) = (0, Vec::new());
    for _ in 0..ms / 100 {
        for s in t.advance(Duration::from_millis(100)) {
            if s.0 == ACK && s.3.is_empty() && s.1 == t.tcb.snd_una().0.wrapping_sub(1) {
                probes += 1;
                let una = t.tcb.snd_una().0;
                t.send(win(una, 0), b"");
            } else {
                other.push(s);
            }
        }
        if t.tcb.is_closed() {
            break;
        }
    }
    (probes, other)
}

#[test]
fn zero_window_probing_gives_up_when_unanswered() {
    let mut t = T::established(TcpConfig {
        max_retries: 3,
        ..cfg()
    });
    t.send(win(ISS + 1, 0), b"");
    t.tcb.send(b"stuck");
    assert!(t.out().is_empty());
    // Probes at 200, 600 and 1400 ms (the interval doubles), none
    // answered; at 3000 ms a fourth would be the fourth unanswered in a
    // row: reset and give up (Linux tcp_probe_timer, tcp_retries2).
    let mut at = Vec::new();
    let start = t.now;
    for _ in 0..40 {
        let out = t.advance(Duration::from_millis(100));
        if !out.is_empty() {
            at.push((t.now.since(start).micros() / 1000, out));
        }
    }
    let probe = vec![o(ACK, ISS, IRS + 1, b"")];
    assert_eq!(
        at,
        vec![
            (200, probe.clone()),
            (600, probe.clone()),
            (1400, probe.clone()),
            (3000, vec![o(RST | ACK, ISS + 1, IRS + 1, b"")]),
        ]
    );
    assert_eq!(t.tcb.close_reason, Some(CloseReason::TimedOut));
    assert_eq!((t.c.tcp_persist_timeouts, t.c.tcp_timeouts), (1, 1));

    // Answered probes keep it open (RFC 1122 4.2.2.17), far past
    // max_retries.
    let mut a = T::established(TcpConfig {
        max_retries: 3,
        ..cfg()
    });
    a.send(win(ISS + 1, 0), b"");
    a.tcb.send(b"stuck");
    let (probes, other) = hold_window_shut(&mut a, 300_000);
    assert!(probes >= 10, "{probes}");
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(a.tcb.state, State::Established);
}

#[test]
fn closed_connection_behind_a_zero_window_is_an_orphan_with_a_limit() {
    // The application sent, closed and left; the peer answers every probe
    // but never opens its window. Default orphan_retries (8, Linux's): the
    // ninth expiry gives up instead of probing forever.
    assert_eq!(TcpConfig::default().orphan_retries, 8);
    let mut t = T::established(cfg());
    t.send(win(ISS + 1, 0), b"");
    t.tcb.send(b"response");
    t.tcb.close(t.now);
    let (probes, other) = hold_window_shut(&mut t, 600_000);
    assert_eq!(probes, 8);
    assert_eq!(other, vec![o(RST | ACK, ISS + 1, IRS + 1, b"")]);
    assert_eq!(t.tcb.close_reason, Some(CloseReason::TimedOut));
    assert_eq!((t.c.tcp_orphan_timeouts, t.c.tcp_timeouts), (1, 1));

    // An orphan's retransmissions stop after orphan_retries too (here 2,
    // below max_retries 15): FIN-WAIT-1, the peer silent.
    let mut f = T::established(TcpConfig {
        orphan_retries: 2,
        ..cfg()
    });
    f.tcb.send(b"bye");
    f.tcb.close(f.now);
    assert_eq!(f.out(), vec![o(FIN | ACK | PSH, ISS + 1, IRS + 1, b"bye")]);
    let mut sent = 0;
    for _ in 0..100 {
        sent += f.advance(Duration::from_millis(100)).len();
        if f.tcb.is_closed() {
            break;
        }
    }
    // The tail loss probe (not a retransmission timeout: it does not
    // count), two retransmissions, then the reset.
    assert_eq!(sent, 4);
    assert_eq!((f.c.tcp_tail_loss_probes, f.c.tcp_rto), (1, 2));
    assert_eq!(f.c.tcp_orphan_timeouts, 1);
}

#[test]
fn user_timeout_ends_unacknowledged_and_window_stuck_connections() {
    // RFC 5482, set on the connection: data unacknowledged for 1 s ends
    // it, though max_retries (15) is far off: the tail loss probe at 200
    // ms (cut to the RTO's deadline), RTOs at 400 and 800 ms, and the
    // next, due at 1600 ms, is brought forward to the timeout.
    let mut t = T::established(cfg());
    assert_eq!(TcpConfig::default().user_timeout, None);
    t.tcb.set_user_timeout(Some(Duration::from_secs(1)));
    let start = t.now;
    t.tcb.send(b"data");
    assert_eq!(t.out().len(), 1);
    let mut at = Vec::new();
    for _ in 0..30 {
        for s in t.advance(Duration::from_millis(100)) {
            at.push((t.now.since(start).micros() / 1000, s.0));
        }
    }
    assert_eq!(
        at,
        vec![
            (200, ACK | PSH),
            (400, ACK | PSH),
            (800, ACK | PSH),
            (1000, RST | ACK)
        ]
    );
    assert_eq!((t.c.tcp_user_timeouts, t.c.tcp_timeouts), (1, 1));

    // From the configuration: data stuck behind a zero window for 2 s,
    // though the peer answers every probe.
    let mut z = T::established(TcpConfig {
        user_timeout: Some(Duration::from_secs(2)),
        ..cfg()
    });
    z.send(win(ISS + 1, 0), b"");
    let start = z.now;
    z.tcb.send(b"stuck");
    z.out();
    let (probes, other) = hold_window_shut(&mut z, 10_000);
    assert_eq!(probes, 3);
    assert_eq!(other, vec![o(RST | ACK, ISS + 1, IRS + 1, b"")]);
    assert_eq!(z.now.since(start), Duration::from_secs(2));
    assert_eq!(z.c.tcp_user_timeouts, 1);
    // A passive open's SYN-ACK retries by syn_retries alone (3 here), not
    // for the user timeout (an hour): a half-open connection must not
    // linger.
    let mut h = T::passive(
        TcpConfig {
            user_timeout: Some(Duration::from_secs(3600)),
            syn_retries: 3,
            ..cfg()
        },
        seg(SYN, IRS, 0),
    );
    h.out();
    for _ in 0..20 {
        h.advance(Duration::from_secs(1));
    }
    assert!(h.tcb.is_closed());
    // Progress restarts the clock: a connection whose data keeps being
    // acknowledged lives on.
    let mut p = T::established(cfg());
    p.tcb.set_user_timeout(Some(Duration::from_millis(500)));
    for i in 0..20u32 {
        p.tcb.send(b"tick");
        assert_eq!(p.out().len(), 1);
        p.advance(Duration::from_millis(150));
        p.send(seg(ACK, IRS + 1, ISS + 1 + 4 * (i + 1)), b"");
    }
    assert_eq!(p.tcb.state, State::Established);
}

#[test]
fn simulation_simultaneous_open_over_a_lossy_link() {
    // 10% loss, 5% duplicates, 1-8 ms of jitter: SYNs, SYN-ACKs and ACKs
    // lost, repeated and overtaken (seed 44 once stalled a side whose
    // repeated SYN came with the ACK that completed it).
    for seed in 40..50 {
        let (_, _, c) = Sim {
            simultaneous: true,
            ..Sim::new(seed, 10, 5, 8, 30_000)
        }
        .run();
        assert_eq!(c.tcp_connected, 2, "seed {seed}");
        assert_eq!(c.tcp_accepted, 0);
    }
}

#[test]
fn repeated_syn_then_ack_in_syn_received() {
    // A repeated SYN asks for the SYN-ACK again; before it goes (or when
    // its send fails), the peer's ACK of the first arrives: established,
    // and sending carries on from ISS + 1, not from the SYN-ACK's ISS.
    // (Found by simulation_simultaneous_open_over_a_lossy_link's seeds:
    // a duplicated SYN and a reordered segment in one batch.)
    let mut t = T::passive(cfg(), seg(SYN, IRS, 0));
    t.out();
    t.tcb.process(t.now, &seg(SYN, IRS, 0), b"", &mut t.c);
    assert!(t.send(seg(ACK, IRS + 1, ISS + 1), b"").is_empty());
    assert_eq!(t.tcb.state, State::Established);
    t.tcb.send(b"x");
    assert_eq!(t.out(), vec![o(ACK | PSH, ISS + 1, IRS + 1, b"x")]);
}

#[test]
fn simulation_receiver_stops_reading_then_resumes() {
    // b's application reads nothing for 5 s from 20 ms on (from 100 ms,
    // a sender that undoes its spurious recoveries may be done already):
    // a fills b's window (32 KiB) and probes it, b answers every probe
    // with a zero window; then b reads, its window update (or the answer
    // to a probe) lets a go on.
    for seed in [3, 5, 7] {
        let (_, _, c) = Sim {
            b_deaf_ms: (20, 5_020),
            ..Sim::new(seed, 3, 2, 4, 200_000)
        }
        .run();
        assert!(c.tcp_probes_sent > 0, "seed {seed}");
        assert_eq!(c.tcp_timeouts, 0, "seed {seed}");
    }
}

// ---- pure ACKs after a timeout --------------------------------------------

#[test]
fn pure_acks_carry_snd_max_after_a_timeout() {
    // Two segments out; the RTO sends the first again (SND.NXT back to
    // SND.UNA + 536). The peer, which has both (its ACKs were lost), sends
    // data: our ACK must carry SND.MAX, which its RCV.NXT has reached; with
    // the rewound SND.NXT it would be old, dropped unread, and answered by
    // an ACK old to us: an endless exchange (the shard simulation's seed
    // 106 without SACK).
    let mut t = T::established(TcpConfig {
        delayed_ack: None,
        ..cfg()
    });
    t.tcb.send(&[9; 2 * 536]);
    assert_eq!(t.out().len(), 2);
    let mut rto = Vec::new();
    for _ in 0..10 {
        rto.extend(t.advance(Duration::from_millis(100)));
        if t.c.tcp_rto > 0 {
            break;
        }
    }
    assert_eq!(rto.last().map(|s| (s.1, s.3.len())), Some((ISS + 1, 536)));
    assert_eq!(
        t.send(seg(ACK, IRS + 1, ISS + 1), b"data"),
        vec![o(ACK, ISS + 1 + 2 * 536, IRS + 5, b"")]
    );
    // A reset likewise (RFC 9293 3.10.5; Linux tcp_acceptable_seq): at
    // SND.MAX the peer takes it, at the rewound SND.NXT it would not.
    t.tcb.abort();
    assert_eq!(t.out(), vec![o(RST | ACK, ISS + 1 + 2 * 536, IRS + 5, b"")]);
}

/// Every timer goes when a connection ends: one list of timers, cleared at
/// once (before, `finish` cleared five deadlines of six and left an armed
/// tail loss probe behind).
#[test]
fn an_aborted_connection_keeps_no_timer() {
    let mut t = T::established(cfg());
    // The handshake timed the SYN-ACK: a measured RTT arms the probe.
    assert!(t.tcb.srtt().is_some());
    // Segments in flight: the probe comes before the RTO.
    assert_eq!(t.tcb.send(&[b'x'; 3000]), 3000);
    assert!(t.out().len() > 1);
    let probe = t.tcb.next_deadline().expect("armed");
    assert!(probe < t.now.plus(t.tcb.rto()), "the probe is first");
    t.tcb.abort();
    assert_eq!(t.out()[0].0, RST | ACK);
    assert!(t.tcb.is_closed());
    assert_eq!(t.tcb.next_deadline(), None);
}

// ---- Congestion control at the connection ---------------------------------

#[test]
fn initial_window_is_ten_segments_for_both_algorithms() {
    // RFC 6928: the peer's SYN had no MSS option, so 536-byte segments and
    // an initial window of min(10 * 536, max(2 * 536, 14600)) = 5360.
    for cc in [CcAlgorithm::Cubic, CcAlgorithm::NewReno] {
        let mut t = T::established(TcpConfig { cc, ..cfg() });
        assert_eq!(t.tcb.congestion_control(), cc);
        t.tcb.send(&[1u8; 20_000]);
        let out = t.out();
        assert_eq!(out.len(), 10, "{cc:?}");
        assert!(out.iter().all(|s| s.3.len() == 536));
        assert_eq!(t.tcb.cwnd(), 5360);
    }
    assert_eq!(TcpConfig::default().cc, CcAlgorithm::Cubic);
}

#[test]
fn congestion_control_set_before_the_handshake_survives_it() {
    // The SYN-ACK's MSS sizes the controller anew; the algorithm the
    // application chose stays.
    let mut t = T::active(cfg());
    t.tcb.set_congestion_control(CcAlgorithm::NewReno);
    t.out();
    let mut synack = seg(SYN | ACK, IRS, ISS + 1);
    synack.options.mss = Some(1000);
    t.send(synack, b"");
    assert_eq!(t.tcb.state, State::Established);
    assert_eq!(t.tcb.congestion_control(), CcAlgorithm::NewReno);
    assert_eq!(t.tcb.cwnd(), 10_000);
    // Switching later keeps the window.
    t.tcb.set_congestion_control(CcAlgorithm::Cubic);
    assert_eq!(t.tcb.congestion_control(), CcAlgorithm::Cubic);
    assert_eq!(t.tcb.cwnd(), 10_000);
}

#[test]
fn window_restarts_after_an_idle_period() {
    // RFC 5681 4.1: after more than an RTO with nothing in flight, no more
    // than the initial window goes out at once, however large cwnd grew.
    for cc in [CcAlgorithm::Cubic, CcAlgorithm::NewReno] {
        let mut t = T::established(TcpConfig { cc, ..cfg() });
        let mss = 536;
        t.tcb.send(&[2u8; 30 * 536]);
        let mut out = t.out();
        while !out.is_empty() {
            // The peer acknowledges each segment on its own.
            let mut next = Vec::new();
            for s in &out {
                let end = s.1 + s.3.len() as u32;
                next.extend(t.send(seg(ACK, IRS + 1, end), b""));
            }
            out = next;
        }
        assert_eq!(t.tcb.unsent_or_unacked(), 0);
        assert!(t.tcb.cwnd() > 20 * mss, "{cc:?} {}", t.tcb.cwnd());
        t.advance(Duration::from_secs(1));
        t.tcb.send(&[3u8; 30 * 536]);
        assert_eq!(t.out().len(), 10, "{cc:?}");
        assert_eq!(t.tcb.cwnd(), 10 * mss);
    }
}

/// A bulk sender's window after each round trip, the peer acknowledging
/// every segment `rtt_ms(round)` after it went, echoing its timestamp:
/// the RTT samples HyStart++ sees come from the connection's own
/// timestamp arithmetic.
fn window_per_round(cc: CcAlgorithm, rtt_ms: impl Fn(usize) -> u64, rounds: usize) -> Vec<usize> {
    let cfg = TcpConfig {
        tx_buffer: 4 << 20,
        cc,
        ..cfg()
    };
    let mut syn = seg(SYN, IRS, 0);
    syn.options.mss = Some(1012);
    syn.options.window_scale = Some(7);
    syn.options.timestamps = Some((1, 0));
    let mut t = T::passive(cfg, syn);
    let synack = t.out_full();
    let mut peer_ts = 2;
    let mut a = seg(ACK, IRS + 1, ISS + 1);
    a.options.timestamps = Some((peer_ts, synack[0].0.options.timestamps.unwrap().0));
    t.send(a, b"");
    assert_eq!(t.tcb.state, State::Established);
    let data = vec![5u8; 4 << 20];
    t.tcb.send(&data);
    let mut flight = t.out_full();
    let mut windows = Vec::new();
    for r in 0..rounds {
        t.now = t.now.plus(Duration::from_millis(rtt_ms(r)));
        let mut next = Vec::new();
        for (s, p) in &flight {
            peer_ts += 1;
            let mut a = seg(ACK, IRS + 1, s.seq_number.wrapping_add(p.len() as u32));
            a.options.timestamps = Some((peer_ts, s.options.timestamps.unwrap().0));
            t.tcb.process(t.now, &a, b"", &mut t.c);
            next.extend(t.out_full());
        }
        assert_eq!(t.c.tcp_rto + t.c.tcp_fast_retransmits, 0);
        windows.push(t.tcb.cwnd() / 1000);
        flight = next;
    }
    windows
}

#[test]
fn hystart_leaves_slow_start_when_the_rtt_rises() {
    for cc in [CcAlgorithm::Cubic, CcAlgorithm::NewReno] {
        // A flat 20 ms: slow start doubles the window every round trip.
        let flat = window_per_round(cc, |_| 20, 7);
        assert!(
            flat.windows(2).all(|w| w[1] >= 2 * w[0] - 1),
            "{cc:?} {flat:?}"
        );
        // From the fifth round on 40 ms, with no loss: HyStart++ sees the
        // rise, the window grows by a quarter per round (CSS), then in
        // congestion avoidance (by far less: 5% a round for CUBIC before
        // its first loss, as Linux's).
        // Slow start would have reached 160 << 7 segments by the end.
        let rising = window_per_round(cc, |r| if r < 4 { 20 } else { 40 }, 11);
        assert_eq!(rising[..4], flat[..4]);
        let css: Vec<_> = rising
            .windows(2)
            .filter(|w| (120..=130).contains(&(w[1] * 100 / w[0])))
            .collect();
        assert!((4..=5).contains(&css.len()), "{cc:?} {rising:?}");
        let last = rising.len() - 1;
        assert!(rising[last] < 8 * rising[3], "{cc:?} {rising:?}");
        assert!(
            rising[last] * 100 <= rising[last - 1] * 106,
            "{cc:?} {rising:?}"
        );
    }
}

// ---- issue 14: loss detection and recovery --------------------------------

/// Established by a passive open with a peer MSS of `mss`, SACK permitted
/// if `sack`, no timestamps.
fn established_mss(mss: u16, sack: bool) -> T {
    let mut syn = seg(SYN, IRS, 0);
    syn.options.mss = Some(mss);
    syn.options.sack_permitted = sack;
    let mut t = T::passive(cfg(), syn);
    t.out();
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert_eq!(t.tcb.state, State::Established);
    t.take_events();
    t
}

/// An ACK of `ack` carrying these SACK blocks (all offsets from ISS).
fn sack_ack(ack: u32, blocks: &[(u32, u32)]) -> TcpRepr {
    let mut s = seg(ACK, IRS + 1, ISS + ack);
    for (slot, &(l, r)) in s.options.sack_blocks.iter_mut().zip(blocks) {
        *slot = Some((ISS + l, ISS + r));
    }
    s
}

/// Established with SACK, a peer MSS of 100 and an RTT of 5 ms (the
/// handshake's ACK comes 5 ms after the SYN-ACK), no timestamps.
fn established_sack() -> T {
    let mut syn = seg(SYN, IRS, 0);
    syn.options.mss = Some(100);
    syn.options.sack_permitted = true;
    let mut t = T::passive(cfg(), syn);
    t.out();
    t.now = t.now.plus(Duration::from_millis(5));
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert_eq!(t.tcb.srtt(), Some(Duration::from_millis(5)));
    t.take_events();
    t
}

#[test]
fn partial_ack_keeps_the_duplicate_ack_count() {
    // NewReno (no SACK): ten segments of 100, the first lost.
    let mut t = established_mss(100, false);
    t.tcb.send(&[7; 1000]);
    assert_eq!(t.out().len(), 10);
    for _ in 0..2 {
        assert!(t.send(seg(ACK, IRS + 1, ISS + 1), b"").is_empty());
    }
    let fr = t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert_eq!(fr[0], o(ACK, ISS + 1, IRS + 1, &[7; 100]));
    // A partial ACK (201 lost too): 201 goes at once.
    let pa = t.send(seg(ACK, IRS + 1, ISS + 201), b"");
    assert_eq!(pa[0], o(ACK, ISS + 201, IRS + 1, &[7; 100]));
    // RFC 6582 / 6675: the duplicates that follow still inflate the
    // window (each one says a segment left the network); a count restarted
    // at zero would ignore the first three.
    let cwnd = t.tcb.cwnd();
    t.send(seg(ACK, IRS + 1, ISS + 201), b"");
    assert_eq!(t.tcb.cwnd(), cwnd + 100);
}

#[test]
fn only_new_sack_information_makes_a_duplicate_ack() {
    let mut t = established_sack();
    t.tcb.send(&[7; 1000]);
    assert_eq!(t.out().len(), 10);
    // A round trip later (RACK's reordering window is a quarter of it, so
    // no ACK below at the same instant deems the first segment lost yet),
    // the second segment arrives, the first does not: new SACK data.
    t.advance(Duration::from_millis(5));
    assert!(t.send(sack_ack(1, &[(101, 201)]), b"").is_empty());
    assert_eq!(t.c.tcp_dup_acks, 1);
    // The same block again (a stale report, e.g. a window update or an
    // ACK of our own data): no duplicate, however often it comes.
    for _ in 0..3 {
        assert!(t.send(sack_ack(1, &[(101, 201)]), b"").is_empty());
    }
    assert_eq!(t.c.tcp_dup_acks, 1);
    // A D-SACK inside the second block (RFC 2883 4): counted as such, no
    // duplicate either.
    assert!(t
        .send(sack_ack(1, &[(101, 201), (101, 201)]), b"")
        .is_empty());
    assert_eq!((t.c.tcp_dup_acks, t.c.tcp_dsack_received), (1, 1));
    assert_eq!(t.c.tcp_fast_retransmits, 0);
    // Two more segments reported: three duplicates, fast retransmit.
    assert!(t.send(sack_ack(1, &[(101, 301)]), b"").is_empty());
    let fr = t.send(sack_ack(1, &[(101, 401)]), b"");
    assert_eq!(fr[0], o(ACK, ISS + 1, IRS + 1, &[7; 100]));
    assert_eq!((t.c.tcp_dup_acks, t.c.tcp_fast_retransmits), (3, 1));
    // The retransmission arrives and so does its original: the peer
    // acknowledges all up to 401 and reports the copy below the ACK
    // (a D-SACK, RFC 2883 4.1.1): no duplicate, no new recovery.
    t.send(sack_ack(401, &[]), b"");
    t.send(sack_ack(401, &[(1, 101)]), b"");
    assert_eq!((t.c.tcp_dup_acks, t.c.tcp_dsack_received), (3, 2));
    assert_eq!(t.c.tcp_fast_retransmits, 1);
}

#[test]
fn retransmission_stays_below_snd_max_and_the_window() {
    // Nine segments of 100 out; Nagle holds the last 70 bytes queued.
    let mut t = established_mss(100, false);
    t.tcb.send(&[7; 970]);
    assert_eq!(t.out().len(), 9);
    // All but the last 50 bytes sent are acknowledged (the peer's stack
    // cut segments differently), then three duplicates.
    assert!(t.send(seg(ACK, IRS + 1, ISS + 851), b"").is_empty());
    for _ in 0..2 {
        assert!(t.send(seg(ACK, IRS + 1, ISS + 851), b"").is_empty());
    }
    let fr = t.send(seg(ACK, IRS + 1, ISS + 851), b"");
    // The retransmission ends at SND.MAX (901), never takes unsent bytes.
    assert_eq!(fr[0], o(ACK, ISS + 851, IRS + 1, &[7; 50]));

    // Three segments out, then the peer shrinks its window to 50 bytes:
    // the retransmission of SND.UNA fits in it.
    let mut t = established_mss(100, false);
    t.tcb.send(&[7; 300]);
    assert_eq!(t.out().len(), 3);
    let mut shrunk = seg(ACK, IRS + 1, ISS + 1);
    shrunk.window_len = 50;
    assert!(t.send(shrunk, b"").is_empty());
    let rtx = (0..3)
        .map(|_| t.send(shrunk, b""))
        .find(|o| !o.is_empty())
        .unwrap();
    assert_eq!(rtx[0], o(ACK, ISS + 1, IRS + 1, &[7; 50]));
}

#[test]
fn early_retransmit_waits_for_its_threshold() {
    // Three segments out, nothing more to send: RFC 5827's threshold is
    // two; with SACK, two segments SACKed above SND.UNA (RFC 6675 IsLost).
    let mut t = established_sack();
    t.tcb.send(&[7; 300]);
    assert_eq!(t.out().len(), 3);
    t.advance(Duration::from_millis(5));
    // One SACKed segment (it may just be reordered): not yet.
    assert!(t.send(sack_ack(1, &[(101, 201)]), b"").is_empty());
    assert_eq!(t.c.tcp_fast_retransmits, 0);
    // Both others: the first is lost.
    let fr = t.send(sack_ack(1, &[(101, 301)]), b"");
    assert_eq!(fr[0], o(ACK, ISS + 1, IRS + 1, &[7; 100]));
    assert_eq!(t.c.tcp_fast_retransmits, 1);

    // Without SACK: two duplicates are enough with three segments out.
    let mut t = established_mss(100, false);
    t.tcb.send(&[7; 300]);
    assert_eq!(t.out().len(), 3);
    assert!(t.send(seg(ACK, IRS + 1, ISS + 1), b"").is_empty());
    let fr = t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert_eq!(fr[0], o(ACK, ISS + 1, IRS + 1, &[7; 100]));

    // Four segments out: three duplicates, as ever (two SACKed segments
    // are no evidence yet).
    let mut t = established_sack();
    t.tcb.send(&[7; 400]);
    assert_eq!(t.out().len(), 4);
    t.advance(Duration::from_millis(5));
    assert!(t.send(sack_ack(1, &[(101, 201)]), b"").is_empty());
    assert!(t.send(sack_ack(1, &[(101, 301)]), b"").is_empty());
    assert_eq!(t.c.tcp_fast_retransmits, 0);
    let fr = t.send(sack_ack(1, &[(101, 401)]), b"");
    assert_eq!(fr[0], o(ACK, ISS + 1, IRS + 1, &[7; 100]));
}

/// Deliver a data segment from the peer; our answers with their options.
fn deliver(t: &mut T, seq: u32, data: &[u8]) -> Vec<(TcpRepr, Vec<u8>)> {
    t.tcb
        .process(t.now, &seg(ACK, seq, ISS + 1), data, &mut t.c);
    t.out_full()
}

#[test]
fn duplicate_segments_are_reported_in_a_dsack() {
    let mut t = established_mss(1000, true);
    // In order, then the same again (its ACK was lost): our ACK reports
    // the copy as its first SACK block (RFC 2883 4.1.1), once.
    deliver(&mut t, IRS + 1, &[1; 100]);
    t.advance(Duration::from_millis(500));
    let dup = deliver(&mut t, IRS + 1, &[1; 100]);
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0].0.ack_number, IRS + 101);
    assert_eq!(
        dup[0].0.options.sack_blocks,
        [Some((IRS + 1, IRS + 101)), None, None]
    );
    assert_eq!(t.c.tcp_dsack_sent, 1);
    // Out of order, then the same block again: the D-SACK first, the
    // block it duplicates after it (RFC 2883 4.1.2).
    let ooo = deliver(&mut t, IRS + 201, &[2; 100]);
    assert_eq!(
        ooo[0].0.options.sack_blocks,
        [Some((IRS + 201, IRS + 301)), None, None]
    );
    let again = deliver(&mut t, IRS + 201, &[2; 100]);
    assert_eq!(
        again[0].0.options.sack_blocks,
        [
            Some((IRS + 201, IRS + 301)),
            Some((IRS + 201, IRS + 301)),
            None
        ]
    );
    assert_eq!(t.c.tcp_dsack_sent, 2);
    // Reported once: the next ACK carries the ordinary block only.
    let next = deliver(&mut t, IRS + 401, &[3; 100]);
    assert_eq!(next[0].0.options.sack_count(), 2);
    assert_eq!(t.c.tcp_dsack_sent, 2);

    // Without SACK, nothing of the kind.
    let mut t = established_mss(1000, false);
    deliver(&mut t, IRS + 1, &[1; 100]);
    t.advance(Duration::from_millis(500));
    let dup = deliver(&mut t, IRS + 1, &[1; 100]);
    assert_eq!(dup[0].0.options.sack_count(), 0);
    assert_eq!(t.c.tcp_dsack_sent, 0);
}

#[test]
fn sack_recovery_retransmits_within_the_pipe() {
    // Ten segments of 100 out; a round trip later the peer gets 1, 3 and 5
    // (of 0..9).
    let mut t = established_sack();
    t.tcb.send(&[7; 1000]);
    assert_eq!(t.out().len(), 10);
    t.advance(Duration::from_millis(5));
    assert!(t.send(sack_ack(1, &[(101, 201)]), b"").is_empty());
    assert!(t
        .send(sack_ack(1, &[(301, 401), (101, 201)]), b"")
        .is_empty());
    // Three segments SACKed: DupThresh, 0 is lost (RFC 6675 IsLost); no
    // reordering seen, so RACK's reordering window is zero (RFC 8985 6.2
    // step 4) and 2 and 4, sent before 5, are lost too. The pipe is 1000
    // - 300 SACKed - 300 lost = 400, below ssthresh (CUBIC: 0.7 * 1000):
    // PRR's slow-start bound (RFC 6937) lets go what this ACK delivered
    // (100) plus one segment: 0 (which goes whatever, RFC 6675 5 step 4.3)
    // and 2, lowest first; 4 waits for the next ACK.
    let rtx = t.send(sack_ack(1, &[(501, 601), (301, 401), (101, 201)]), b"");
    let seqs: Vec<u32> = rtx.iter().map(|r| r.1 - ISS).collect();
    assert_eq!(seqs, vec![1, 201]);
    assert_eq!((t.c.tcp_fast_retransmits, t.c.tcp_rack_lost), (1, 2));
    // Segments 7..9 arrive (300 delivered): 6 is lost too, the pipe is
    // 1000 - 600 SACKed - 400 lost + 200 resent = 200, and PRR lets 400
    // go (400 delivered in all less 200 sent, or 300, plus a segment):
    // 4 and 6.
    let rtx = t.send(sack_ack(1, &[(701, 1001), (501, 601), (301, 401)]), b"");
    let seqs: Vec<u32> = rtx.iter().map(|r| r.1 - ISS).collect();
    assert_eq!(seqs, vec![401, 601]);
    // The retransmissions arrive: nothing is left to repair or send.
    assert!(t
        .send(sack_ack(201, &[(701, 1001), (501, 601), (301, 401)]), b"")
        .is_empty());
    // All of it: recovery ends.
    t.send(sack_ack(1001, &[]), b"");
    assert_eq!(t.tcb.unsent_or_unacked(), 0);
    assert_eq!(t.c.tcp_rto, 0);
}

/// Duplicate ACKs that SACK new data make room for new segments before
/// recovery begins (RFC 3042 limited transmit; RFC 6675 4: cwnd limits the
/// pipe, as Linux's packets_in_flight leaves SACKed segments out in every
/// state), and those go before the loss is detected, so the recovery point
/// covers them. Before, the sender went silent until the third SACK, and
/// what it held back went after the retransmission, past the recovery
/// point: a loss among it was a second reduction (bench row 2, 64 KB at 1%
/// loss, losses in the first two rounds: two round trips more).
#[test]
fn sack_dupacks_before_recovery_send_new_data_within_the_pipe() {
    let seqs = |o: Vec<Out>| o.iter().map(|r| r.1 - ISS).collect::<Vec<u32>>();
    let mut t = established_sack();
    t.tcb.send(&[7; 2000]);
    // The initial window: ten segments of 100.
    assert_eq!(t.out().len(), 10);
    t.advance(Duration::from_millis(5));
    // 0 is lost; 1 and 2 arrive: the flight is still ten segments by
    // sequence number, the pipe nine, then eight: one new segment each.
    assert_eq!(seqs(t.send(sack_ack(1, &[(101, 201)]), b"")), vec![1001]);
    assert_eq!(seqs(t.send(sack_ack(1, &[(101, 301)]), b"")), vec![1101]);
    assert_eq!(t.c.tcp_fast_retransmits, 0);
    // The third SACKed segment: 0 is lost (RFC 6675 IsLost), resent first.
    let o = seqs(t.send(sack_ack(1, &[(101, 401)]), b""));
    assert_eq!(o.first(), Some(&1), "{o:?}");
    assert_eq!(t.c.tcp_fast_retransmits, 1);
}

// ---- ECN (RFC 3168) ------------------------------------------------------

use super::EcnMode;
use crate::wire::ipv4::ecn::{CE, ECT0, NOT_ECT};

const ECE: TcpFlags = TcpFlags::ECE;
const CWR: TcpFlags = TcpFlags::CWR;

/// A segment as sent, with its IP ECN codepoint: flags, seq, payload
/// length, codepoint.
type EcnOut = (TcpFlags, u32, usize, u8);

impl T {
    fn out_ecn(&mut self) -> Vec<EcnOut> {
        let mut v = Vec::new();
        let limit = self.mss_limit;
        self.tcb.dispatch_with_ecn(self.now, &mut |r, ecn, a, b| {
            assert_fits(r, a.len() + b.len(), limit);
            v.push((r.flags, r.seq_number, a.len() + b.len(), ecn));
            true
        });
        v
    }

    fn send_ecn(&mut self, s: TcpRepr, ip_ecn: u8, payload: &[u8]) -> Vec<EcnOut> {
        if s.flags.syn() {
            self.mss_limit = self.mss_limit.min(syn_mss(&s));
        }
        self.tcb
            .process_with_ecn(self.now, &s, ip_ecn, payload, &mut self.c);
        self.events |= self.tcb.take_events();
        self.out_ecn()
    }

    fn advance_ecn(&mut self, d: Duration) -> Vec<EcnOut> {
        self.now = self.now.plus(d);
        if self.tcb.next_deadline().is_some_and(|t| t <= self.now) {
            self.tcb.on_timer(self.now, &mut self.c);
        }
        self.events |= self.tcb.take_events();
        self.out_ecn()
    }
}

fn ecn_cfg(mode: EcnMode) -> TcpConfig {
    TcpConfig { ecn: mode, ..cfg() }
}

/// Established by a passive open (default configuration) whose SYN asked
/// for ECN, the peer's MSS `mss`.
fn ecn_established(mss: Option<u16>) -> T {
    let mut syn = seg(SYN | ECE | CWR, IRS, 0);
    syn.options.mss = mss;
    let mut t = T::passive(cfg(), syn);
    // RFC 3168 6.1.1: the ECN-setup SYN-ACK has ECE, not CWR, and is
    // Not-ECT.
    assert_eq!(t.out_ecn(), vec![(SYN | ACK | ECE, ISS, 0, NOT_ECT)]);
    assert!(t
        .send_ecn(seg(ACK, IRS + 1, ISS + 1), NOT_ECT, b"")
        .is_empty());
    assert_eq!(t.tcb.state, State::Established);
    assert!(t.tcb.ecn_negotiated());
    t.take_events();
    t
}

#[test]
fn ecn_passive_open_accepts_an_ecn_setup_syn() {
    let t = ecn_established(None);
    assert_eq!(t.c.tcp_ecn_negotiated, 1);
    // Not with --tcp-ecn off, and not for a SYN with ECE alone or CWR
    // alone.
    for (mode, flags) in [
        (EcnMode::Off, SYN | ECE | CWR),
        (EcnMode::Server, SYN | ECE),
        (EcnMode::On, SYN | CWR),
    ] {
        let mut t = T::passive(ecn_cfg(mode), seg(flags, IRS, 0));
        assert_eq!(t.out_ecn(), vec![(SYN | ACK, ISS, 0, NOT_ECT)], "{mode:?}");
        t.send_ecn(seg(ACK, IRS + 1, ISS + 1), NOT_ECT, b"");
        assert_eq!(t.tcb.state, State::Established);
        assert!(!t.tcb.ecn_negotiated());
        assert_eq!(t.c.tcp_ecn_negotiated, 0);
    }
}

#[test]
fn ecn_active_open_asks_only_when_on() {
    // The default (Linux's tcp_ecn = 2) never asks.
    let mut t = T::active(cfg());
    assert_eq!(t.out_ecn(), vec![(SYN, ISS, 0, NOT_ECT)]);
    // --tcp-ecn on asks, and the peer agrees.
    let mut t = T::active(ecn_cfg(EcnMode::On));
    assert_eq!(t.out_ecn(), vec![(SYN | ECE | CWR, ISS, 0, NOT_ECT)]);
    let out = t.send_ecn(seg(SYN | ACK | ECE, IRS, ISS + 1), NOT_ECT, b"");
    assert_eq!(out, vec![(ACK, ISS + 1, 0, NOT_ECT)]);
    assert!(t.tcb.ecn_negotiated());
    assert_eq!(t.c.tcp_ecn_negotiated, 1);
    // Per connection, before the SYN leaves (the application API's
    // tcp_set_ecn); not after.
    let mut t = T::active(cfg());
    assert!(t.tcb.set_ecn(EcnMode::On));
    assert_eq!(t.out_ecn(), vec![(SYN | ECE | CWR, ISS, 0, NOT_ECT)]);
    assert!(!t.tcb.set_ecn(EcnMode::Off));
}

#[test]
fn ecn_refused_by_the_syn_ack() {
    // RFC 3168 6.1.1: a SYN-ACK without ECE, or with ECE and CWR (a host
    // that reflects the flags), leaves the connection without ECN.
    for flags in [SYN | ACK, SYN | ACK | ECE | CWR] {
        let mut t = T::active(ecn_cfg(EcnMode::On));
        t.out_ecn();
        t.send_ecn(seg(flags, IRS, ISS + 1), NOT_ECT, b"");
        assert_eq!(t.tcb.state, State::Established);
        assert!(!t.tcb.ecn_negotiated(), "{flags:?}");
        t.tcb.send(b"data");
        assert_eq!(t.out_ecn(), vec![(ACK | PSH, ISS + 1, 4, NOT_ECT)]);
    }
    // A retransmitted SYN goes without ECN (a path may drop ECN-setup
    // SYNs): a SYN-ACK that agrees anyway is not believed.
    let mut t = T::active(ecn_cfg(EcnMode::On));
    t.out_ecn();
    assert_eq!(
        t.advance_ecn(Duration::from_secs(1)),
        vec![(SYN, ISS, 0, NOT_ECT)]
    );
    t.send_ecn(seg(SYN | ACK | ECE, IRS, ISS + 1), NOT_ECT, b"");
    assert_eq!(t.tcb.state, State::Established);
    assert!(!t.tcb.ecn_negotiated());
}

#[test]
fn ecn_ect_only_on_new_data() {
    // Without ECN: never ECT.
    let mut plain = T::established(cfg());
    plain.tcb.send(b"data");
    assert_eq!(plain.out_ecn(), vec![(ACK | PSH, ISS + 1, 4, NOT_ECT)]);

    let mut t = ecn_established(Some(100));
    t.tcb.send(&[1u8; 300]);
    assert_eq!(
        t.out_ecn(),
        vec![
            (ACK, ISS + 1, 100, ECT0),
            (ACK, ISS + 101, 100, ECT0),
            (ACK | PSH, ISS + 201, 100, ECT0),
        ]
    );
    // Nothing acknowledged: the tail loss probe and the RTO resend, and
    // retransmissions are Not-ECT (RFC 3168 6.1.5).
    let mut resent = Vec::new();
    for _ in 0..30 {
        resent.extend(t.advance_ecn(Duration::from_millis(10)));
    }
    assert!(resent.len() >= 2, "{resent:?}");
    assert!(
        resent.iter().all(|s| s.2 > 0 && s.3 == NOT_ECT),
        "{resent:?}"
    );
    // Pure ACKs are Not-ECT.
    let ack = t.send_ecn(seg(ACK, IRS + 1, ISS + 301), NOT_ECT, b"abc");
    let ack = [ack, t.advance_ecn(Duration::from_millis(200))].concat();
    assert_eq!(ack, vec![(ACK, ISS + 301, 0, NOT_ECT)]);
    // So are zero-window probes (6.1.6); the data the window then lets
    // out is new, ECT(0).
    let mut z = seg(ACK, IRS + 4, ISS + 301);
    z.window_len = 0;
    t.send_ecn(z, NOT_ECT, b"");
    t.tcb.send(b"waiting");
    let mut probes = Vec::new();
    for _ in 0..50 {
        probes.extend(t.advance_ecn(Duration::from_millis(10)));
    }
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|s| s.3 == NOT_ECT), "{probes:?}");
    assert_eq!(
        t.send_ecn(seg(ACK, IRS + 4, ISS + 301), NOT_ECT, b""),
        vec![(ACK | PSH, ISS + 301, 7, ECT0)]
    );
}

#[test]
fn ecn_ce_is_echoed_until_cwr() {
    let mut t = ecn_established(None);
    // A CE mark: acknowledged at once, with ECE (RFC 3168 6.1.3).
    assert_eq!(
        t.send_ecn(seg(ACK, IRS + 1, ISS + 1), CE, b"a"),
        vec![(ACK | ECE, ISS + 1, 0, NOT_ECT)]
    );
    assert_eq!(t.c.tcp_ce_received, 1);
    // Unmarked data: every ACK still carries ECE, our data too.
    assert!(t
        .send_ecn(seg(ACK, IRS + 2, ISS + 1), ECT0, b"b")
        .is_empty());
    assert_eq!(
        t.advance_ecn(Duration::from_millis(200)),
        vec![(ACK | ECE, ISS + 1, 0, NOT_ECT)]
    );
    t.tcb.send(b"x");
    assert_eq!(t.out_ecn(), vec![(ACK | PSH | ECE, ISS + 1, 1, ECT0)]);
    // CWR and CE on one segment: new congestion, the first CE of a new
    // echo, acknowledged at once.
    assert_eq!(
        t.send_ecn(seg(ACK | CWR, IRS + 3, ISS + 2), CE, b"c"),
        vec![(ACK | ECE, ISS + 2, 0, NOT_ECT)]
    );
    // CWR alone: the sender reacted, the echo stops.
    t.send_ecn(seg(ACK | CWR, IRS + 4, ISS + 2), ECT0, b"d");
    assert_eq!(
        t.advance_ecn(Duration::from_millis(200)),
        vec![(ACK, ISS + 2, 0, NOT_ECT)]
    );
    assert_eq!(t.c.tcp_ce_received, 2);
    // A CE on a connection without ECN means nothing.
    let mut plain = T::established(cfg());
    plain.send_ecn(seg(ACK, IRS + 1, ISS + 1), CE, b"a");
    assert_eq!(
        plain.advance_ecn(Duration::from_millis(200)),
        vec![(ACK, ISS + 1, 0, NOT_ECT)]
    );
    assert_eq!(plain.c.tcp_ce_received, 0);
}

#[test]
fn ecn_ece_reduces_once_per_window_then_cwr() {
    let mut t = ecn_established(Some(100));
    t.tcb.send(&[7u8; 5000]);
    // The initial window: 10 segments (RFC 6928), all ECT(0), no CWR.
    let first = t.out_ecn();
    assert_eq!(first.len(), 10);
    assert!(first.iter().all(|s| s.3 == ECT0 && !s.0.contains(CWR)));
    // ECE on the ACK of two: CUBIC's reduction for 1000 bytes in flight,
    // cwnd = ssthresh = 0.7 * 1000 (RFC 9438 4.6), nothing retransmitted,
    // no recovery. 800 bytes are still out: nothing goes.
    let out = t.send_ecn(seg(ACK | ECE, IRS + 1, ISS + 201), NOT_ECT, b"");
    assert_eq!(t.tcb.cwnd(), 700);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!((t.c.tcp_ece_received, t.c.tcp_ecn_cwnd_reductions), (1, 1));
    // More ECEs for the same window (the receiver echoes until our CWR
    // reaches it): no second reduction. The first new segment carries
    // CWR, once.
    let out = t.send_ecn(seg(ACK | ECE, IRS + 1, ISS + 501), NOT_ECT, b"");
    assert_eq!(t.c.tcp_ecn_cwnd_reductions, 1);
    assert!(t.tcb.cwnd() >= 700);
    assert!(out.len() >= 2, "{out:?}");
    assert_eq!(out[0], (ACK | CWR, ISS + 1001, 100, ECT0));
    assert!(out[1..].iter().all(|s| !s.0.contains(CWR) && s.3 == ECT0));
    assert_eq!(t.tcb.tx_stats.cwr, 1);
    // An ECE that acknowledges data sent after the reduction: new
    // congestion, a second reduction.
    let cwnd = t.tcb.cwnd();
    t.send_ecn(seg(ACK | ECE, IRS + 1, ISS + 1101), NOT_ECT, b"");
    assert_eq!(t.c.tcp_ecn_cwnd_reductions, 2);
    assert!(t.tcb.cwnd() < cwnd);
    assert_eq!(
        (t.c.tcp_fast_retransmits, t.tcb.tx_stats.retransmits),
        (0, 0)
    );
}

// ---- buffer autotuning ----------------------------------------------------

/// Established by a passive open with timestamps and the peer's window
/// scale 7 (its window: 65535 << 7, 8 MiB, never the limit here); with
/// our window scale.
fn established_with_timestamps(cfg: TcpConfig) -> (T, u8) {
    let mut syn = seg(SYN, IRS, 0);
    syn.options.mss = Some(1460);
    syn.options.window_scale = Some(7);
    syn.options.timestamps = Some((1, 0));
    let mut t = T::passive(cfg, syn);
    let synack = t.out_full();
    let mut a = seg(ACK, IRS + 1, ISS + 1);
    a.options.timestamps = Some((2, synack[0].0.options.timestamps.unwrap().0));
    t.send(a, b"");
    assert_eq!(t.tcb.state, State::Established);
    t.take_events();
    (t, synack[0].0.options.window_scale.unwrap())
}

/// A bulk transfer to `t` (whose window scale is `shift`) at a 20 ms round trip: each round the peer
/// sends what its window (doubling each round, slow start without end)
/// and ours allow, in 1448-byte segments echoing our last TSval, and the
/// application reads up to `read_per_round` bytes of it. Returns our
/// receive buffer's capacity after each round, and checks on every ACK
/// that the right edge of our window never moves back (RFC 9293 3.8.6),
/// but for less than a unit of the scale (RFC 7323 2.4: the scale's
/// rounding may).
fn receive_rounds(t: &mut T, shift: u8, rounds: usize, read_per_round: usize) -> Vec<usize> {
    let mut seq = IRS + 1;
    let mut edge = seq + 65535; // what the SYN-ACK offered
    let mut peer_ts = 10;
    let mut ecr = 0;
    let mut cwnd = 10 * 1448;
    let mut capacities = Vec::new();
    let take_acks = |out: Vec<(TcpRepr, Vec<u8>)>, edge: &mut u32, ecr: &mut u32| {
        for (r, _) in out {
            let right = r.ack_number.wrapping_add(u32::from(r.window_len) << shift);
            let back = edge.wrapping_sub(right) as i32;
            assert!(back < 1 << shift, "the window shrank by {back}");
            if back < 0 {
                *edge = right;
            }
            *ecr = r.options.timestamps.unwrap().0;
        }
    };
    take_acks(t.out_full(), &mut edge, &mut ecr);
    for _ in 0..rounds {
        let mut sent = 0;
        let mut read = 0;
        while sent + 1448 <= cwnd && edge.wrapping_sub(seq + 1448) as i32 >= 0 {
            peer_ts += 1;
            let mut s = seg(ACK, seq, ISS + 1);
            s.options.timestamps = Some((peer_ts, ecr));
            t.tcb.process(t.now, &s, &[7; 1448], &mut t.c);
            seq += 1448;
            sent += 1448;
            let out = t.out_full();
            take_acks(out, &mut edge, &mut ecr);
            let mut buf = [0; 4096];
            while read < read_per_round {
                let want = (read_per_round - read).min(buf.len());
                match t.tcb.recv(&mut buf[..want]) {
                    0 => break,
                    n => read += n,
                }
            }
        }
        cwnd *= 2;
        t.now = t.now.plus(Duration::from_millis(20));
        if t.tcb.next_deadline().is_some_and(|d| d <= t.now) {
            t.tcb.on_timer(t.now, &mut t.c);
        }
        let out = t.out_full();
        take_acks(out, &mut edge, &mut ecr);
        capacities.push(t.tcb.buffer_capacities().1);
    }
    // No ACK offers more than the buffer has room for (but for rounding
    // up to the scale).
    let room = capacities.last().unwrap() - t.tcb.recv_len();
    assert!(
        edge.wrapping_sub(seq) as usize <= room + (1 << shift),
        "{} {room}",
        edge.wrapping_sub(seq)
    );
    capacities
}

#[test]
fn the_receive_window_grows_as_the_application_reads_at_rate() {
    let cfg = TcpConfig {
        rx_buffer_max: 1 << 20,
        ..cfg()
    };
    let (mut t, shift) = established_with_timestamps(cfg);
    let caps = receive_rounds(&mut t, shift, 12, usize::MAX >> 1);
    // From 64 KiB, growing round after round while the sender speeds up,
    // to the maximum and no further.
    assert_eq!(caps[0], 64 * 1024, "no round trip measured yet");
    assert!(caps.windows(2).all(|w| w[1] >= w[0]), "{caps:?}");
    let grew = caps.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(grew >= 2, "{caps:?}");
    assert_eq!(*caps.last().unwrap(), 1 << 20, "{caps:?}");
    assert_eq!(t.c.tcp_rcvbuf_grown as usize, grew);
    assert_eq!(t.c.tcp_buffer_growth_denied, 0);
}

#[test]
fn a_slow_reader_keeps_its_window() {
    // The application takes 8 KB per round trip: less than the sender's
    // first flight, so the window it needs is what it has.
    let (mut t, shift) = established_with_timestamps(cfg());
    let caps = receive_rounds(&mut t, shift, 8, 8 * 1024);
    assert!(caps.iter().all(|&c| c == 64 * 1024), "{caps:?}");
    assert_eq!(t.c.tcp_rcvbuf_grown, 0);
}

#[test]
fn receive_growth_is_denied_by_the_budget() {
    // A core of its own: the budget is per thread.
    std::thread::spawn(|| {
        // 100 KB for the whole core: what a 64 KiB window holds, not the
        // growth a fast reader asks for.
        super::buffer::set_core_budget(100_000);
        let (mut t, shift) = established_with_timestamps(cfg());
        let caps = receive_rounds(&mut t, shift, 8, usize::MAX >> 1);
        assert!(caps.iter().all(|&c| c == 64 * 1024), "{caps:?}");
        assert_eq!(t.c.tcp_rcvbuf_grown, 0);
        assert!(t.c.tcp_buffer_growth_denied > 0);
    })
    .join()
    .unwrap();
}

/// A bulk sender at a 20 ms round trip whose application keeps its send
/// buffer full (writing again on `Writable`); the peer acknowledges each
/// flight a round trip later. Returns (cwnd, send capacity) per round.
fn send_rounds(t: &mut T, rounds: usize) -> Vec<(usize, usize)> {
    let data = vec![5u8; 1 << 20];
    let mut peer_ts = 10;
    let mut per_round = Vec::new();
    while t.tcb.send(&data) == data.len() {}
    let mut flight = t.out_full();
    for _ in 0..rounds {
        t.now = t.now.plus(Duration::from_millis(20));
        let mut next = Vec::new();
        for (s, p) in &flight {
            peer_ts += 1;
            let mut a = seg(ACK, IRS + 1, s.seq_number.wrapping_add(p.len() as u32));
            a.options.timestamps = Some((peer_ts, s.options.timestamps.unwrap().0));
            t.tcb.process(t.now, &a, b"", &mut t.c);
            if t.tcb.take_events() & event::WRITABLE != 0 {
                while t.tcb.send(&data) == data.len() {}
            }
            next.extend(t.out_full());
        }
        assert_eq!(t.c.tcp_rto + t.c.tcp_fast_retransmits, 0);
        per_round.push((t.tcb.cwnd(), t.tcb.buffer_capacities().0));
        flight = next;
    }
    per_round
}

#[test]
fn the_send_buffer_grows_with_the_congestion_window() {
    let (mut t, _) = established_with_timestamps(cfg());
    let rounds = send_rounds(&mut t, 9);
    let caps: Vec<usize> = rounds.iter().map(|r| r.1).collect();
    assert!(caps.windows(2).all(|w| w[1] >= w[0]), "{rounds:?}");
    // Two windows once the window outgrows half of the first 64 KiB, and
    // never more than the maximum.
    for &(cwnd, cap) in &rounds {
        assert!(cap <= cfg().tx_buffer_max);
        if cwnd > 64 * 1024 {
            let want = cwnd.min(cfg().tx_buffer_max);
            assert!(cap >= want, "cwnd {cwnd}, send buffer {cap}: {rounds:?}");
        }
    }
    // Two windows of 926 720 bytes, then the maximum.
    assert_eq!(rounds[5], (926_720, 1_853_440));
    assert_eq!(rounds.last().unwrap().1, 4 << 20);
    assert!(t.c.tcp_sndbuf_grown > 0);
}

#[test]
fn buffer_limits_set_per_connection_stick() {
    let (mut t, shift) = established_with_timestamps(cfg());
    assert_eq!(
        t.tcb.set_buffer_limits(Some(48 * 1024), Some(48 * 1024)),
        (48 * 1024, 65535),
        "not below the window already offered (the SYN-ACK's)"
    );
    let caps = receive_rounds(&mut t, shift, 8, usize::MAX >> 1);
    assert!(caps.iter().all(|&c| c == 65535), "{caps:?}");
    let rounds = send_rounds(&mut t, 8);
    assert!(rounds.iter().all(|r| r.1 == 48 * 1024), "{rounds:?}");
    assert_eq!(t.c.tcp_rcvbuf_grown + t.c.tcp_sndbuf_grown, 0);

    // Before our SYN goes out, the window scale follows the size asked.
    let mut a = T::active(cfg());
    a.tcb.set_buffer_limits(None, Some(16 << 20));
    let syn = a.out_full();
    assert_eq!(syn[0].0.options.window_scale, Some(9));
}

/// Ten segments of 100 sent, then slow start doubles the flight: twenty
/// more out (seq 1001..3001), acknowledged one by one at 5 ms RTT.
fn twenty_in_flight() -> T {
    let mut t = established_sack();
    t.tcb.send(&[7; 3000]);
    assert_eq!(t.out().len(), 10);
    t.advance(Duration::from_millis(5));
    let mut sent = 0;
    for i in 1..=10 {
        sent += t.send(sack_ack(100 * i + 1, &[]), b"").len();
    }
    assert_eq!(sent, 20);
    t.advance(Duration::from_millis(5));
    t
}

#[test]
fn every_hole_of_a_tail_drop_burst_is_repaired_in_one_round_trip() {
    // A queue overflowing in slow start drops every other segment: ten
    // holes in twenty. The peer reports the segments that arrive, three
    // blocks per ACK, newest first; the scoreboard keeps every report, so
    // every hole is deemed lost and resent within this round trip, none
    // left to the timer. (With eight SACK ranges kept, as before, the
    // holes above the eighth were neither seen lost nor resent.)
    let mut t = twenty_in_flight();
    let mut blocks: Vec<(u32, u32)> = Vec::new();
    let mut rtx = Vec::new();
    for k in 0..10 {
        let l = 1001 + 100 * (2 * k + 1);
        blocks.insert(0, (l, l + 100));
        blocks.truncate(3);
        for r in t.send(sack_ack(1001, &blocks), b"") {
            rtx.push(r.1 - ISS);
        }
    }
    let holes: Vec<u32> = (0..10).map(|k| 1001 + 200 * k).collect();
    assert_eq!(rtx, holes);
    assert_eq!((t.c.tcp_rto, t.c.tcp_tail_loss_probes), (0, 0));
    assert_eq!(t.c.tcp_fast_retransmits, 1);
    // The peer has it all.
    t.advance(Duration::from_millis(5));
    t.send(sack_ack(3001, &[]), b"");
    assert_eq!(t.tcb.unsent_or_unacked(), 0);
}

#[test]
fn a_lost_retransmission_is_found_without_a_timeout() {
    // Twenty out, the first lost; the peer reports the rest.
    let mut t = twenty_in_flight();
    let fr = t.send(sack_ack(1001, &[(1101, 3001)]), b"");
    assert_eq!(fr[0].1, ISS + 1001);
    // Its retransmission is lost as well. What the application sends next
    // goes out and is SACKed a round trip later: the retransmission, sent
    // before it, is lost too (RFC 8985 6.2), and goes again at once.
    t.advance(Duration::from_millis(1));
    t.tcb.send(&[8; 100]);
    let new = t.out();
    assert_eq!(
        new.iter().map(|r| r.1 - ISS).collect::<Vec<_>>(),
        vec![3001]
    );
    t.advance(Duration::from_millis(5));
    let again = t.send(sack_ack(1001, &[(3001, 3101), (1101, 3001)]), b"");
    assert_eq!(again[0].1, ISS + 1001);
    assert_eq!(t.c.tcp_rto, 0);
    t.send(sack_ack(3101, &[]), b"");
    assert_eq!(t.tcb.unsent_or_unacked(), 0);
}

#[test]
fn the_reordering_timer_repairs_a_loss_duplicate_acks_cannot_show() {
    // Four segments out, the application has no more: one SACKed segment
    // is no evidence for DupThresh (nor RFC 5827's threshold, two, with
    // four out). RACK deems the first lost once the reordering window
    // (min RTT / 4 = 1.25 ms) has passed beyond its RTT, by its timer,
    // long before the tail loss probe (2 SRTT) or the RTO.
    let mut t = established_sack();
    t.tcb.send(&[7; 400]);
    assert_eq!(t.out().len(), 4);
    t.advance(Duration::from_millis(5));
    assert!(t.send(sack_ack(1, &[(101, 201)]), b"").is_empty());
    assert_eq!(t.c.tcp_fast_retransmits, 0);
    assert!(t.advance(Duration::from_micros(1200)).is_empty());
    let rtx = t.advance(Duration::from_micros(50));
    assert_eq!(rtx, vec![o(ACK, ISS + 1, IRS + 1, &[7; 100])]);
    assert_eq!((t.c.tcp_rack_timer, t.c.tcp_rack_lost), (1, 1));
    assert_eq!((t.c.tcp_rto, t.c.tcp_tail_loss_probes), (0, 0));
}

#[test]
fn a_recovery_whose_retransmissions_were_all_needless_is_undone() {
    // Ten out; the first is only late: three SACKs above it start
    // recovery (cwnd and ssthresh down to 0.7 of the flight), and it is
    // resent.
    let mut t = established_sack();
    t.tcb.send(&[7; 1000]);
    assert_eq!(t.out().len(), 10);
    let cwnd = t.tcb.cwnd();
    t.advance(Duration::from_millis(5));
    t.send(sack_ack(1, &[(101, 201)]), b"");
    t.send(sack_ack(1, &[(101, 301)]), b"");
    let fr = t.send(sack_ack(1, &[(101, 401)]), b"");
    assert_eq!(fr[0].1, ISS + 1);
    // The original arrives, then the retransmission: recovery ends, the
    // window down to what is in flight; the peer reports the copy as a
    // duplicate (RFC 2883). The only retransmission was needless: nothing
    // was lost, and the window is back (RFC 3708).
    t.send(sack_ack(1001, &[]), b"");
    assert!(t.tcb.cwnd() < cwnd);
    assert_eq!(t.c.tcp_undo, 0);
    t.send(sack_ack(1001, &[(1, 101)]), b"");
    assert_eq!((t.c.tcp_undo, t.c.tcp_spurious_rto), (1, 0));
    assert!(t.tcb.cwnd() >= cwnd, "{} < {cwnd}", t.tcb.cwnd());

    // The same with two segments resent and only one reported as a
    // duplicate: one was needed, the reduction stands.
    let mut t = established_sack();
    t.tcb.send(&[7; 1000]);
    assert_eq!(t.out().len(), 10);
    t.advance(Duration::from_millis(5));
    t.send(sack_ack(1, &[(201, 301)]), b"");
    t.send(sack_ack(1, &[(201, 401)]), b"");
    let fr = t.send(sack_ack(1, &[(201, 501)]), b"");
    assert_eq!(
        fr.iter().map(|r| r.1 - ISS).collect::<Vec<_>>(),
        vec![1, 101]
    );
    let reduced = t.tcb.cwnd();
    t.send(sack_ack(1001, &[]), b"");
    t.send(sack_ack(1001, &[(1, 101)]), b"");
    assert_eq!(t.c.tcp_undo, 0);
    assert!(t.tcb.cwnd() <= reduced);
}

#[test]
fn a_dsack_for_an_earlier_retransmission_does_not_undo_a_recovery() {
    // Ten out; the tail loss probe resends the last (10 ms). Then SACKs
    // say the first was lost: recovery, and it is resent.
    let mut t = established_sack();
    t.tcb.send(&[7; 1000]);
    assert_eq!(t.out().len(), 10);
    let cwnd = t.tcb.cwnd();
    assert_eq!(seqs(&t.advance(Duration::from_millis(10))), vec![901]);
    let fr = t.send(sack_ack(1, &[(101, 1001)]), b"");
    assert_eq!(fr[0].1, ISS + 1);
    assert_eq!(t.c.tcp_fast_retransmits, 1);
    // The probe's copy of the last segment arrives after its original:
    // a D-SACK for it. It says the probe was needless, not the
    // recovery's retransmission (the first segment was lost): nothing
    // is undone. (Linux's undo_retrans starts from the retransmissions
    // in flight, which leave out the SACKed ones.)
    t.send(sack_ack(1, &[(901, 1001), (101, 1001)]), b"");
    assert_eq!(t.c.tcp_dsack_received, 1);
    assert_eq!((t.c.tcp_undo, t.c.tcp_undo_dsack), (0, 0));
    // The retransmission fills the hole: recovery ends, reduced.
    t.send(sack_ack(1001, &[]), b"");
    assert_eq!(t.c.tcp_undo, 0);
    assert!(t.tcb.cwnd() < cwnd, "{} >= {cwnd}", t.tcb.cwnd());

    // The same with the recovery's retransmission D-SACKed as well:
    // every retransmission was needless, and the window is back.
    let mut t = established_sack();
    t.tcb.send(&[7; 1000]);
    assert_eq!(t.out().len(), 10);
    assert_eq!(seqs(&t.advance(Duration::from_millis(10))), vec![901]);
    t.send(sack_ack(1, &[(101, 1001)]), b"");
    t.send(sack_ack(1, &[(901, 1001), (101, 1001)]), b"");
    assert_eq!(t.c.tcp_undo, 0);
    t.send(sack_ack(1001, &[]), b"");
    t.send(sack_ack(1001, &[(1, 101)]), b"");
    assert_eq!((t.c.tcp_undo, t.c.tcp_undo_dsack), (1, 1));
    assert!(t.tcb.cwnd() >= cwnd, "{} < {cwnd}", t.tcb.cwnd());
}

#[test]
fn a_loss_the_tail_loss_probe_repaired_reduces_the_window() {
    for dsack in [false, true] {
        // Two segments out, the last lost: 2 SRTT (at least 10 ms) later
        // the probe resends it, and the peer acknowledges both.
        let mut t = established_sack();
        t.tcb.send(&[7; 200]);
        assert_eq!(t.out().len(), 2);
        let probe = t.advance(Duration::from_millis(10));
        assert_eq!(probe, vec![o(ACK | PSH, ISS + 101, IRS + 1, &[7; 100])]);
        let cwnd = t.tcb.cwnd();
        let blocks: &[(u32, u32)] = if dsack { &[(101, 201)] } else { &[] };
        t.advance(Duration::from_millis(5));
        t.send(sack_ack(201, blocks), b"");
        // The next ACK goes beyond the probe. With no D-SACK for it, the
        // probe repaired a loss: the window comes down as for fast
        // recovery (RFC 8985 7.4.2); with one, the original had arrived
        // and nothing was lost.
        t.tcb.send(&[8; 100]);
        assert_eq!(t.out().len(), 1);
        t.send(sack_ack(301, &[]), b"");
        assert_eq!(t.c.tcp_tlp_recoveries, u64::from(!dsack), "dsack {dsack}");
        assert_eq!(t.tcb.cwnd() < cwnd, !dsack, "dsack {dsack}");
    }
}

/// The connection's own totals (the connections view, `tcp_info`): every
/// segment each way, payload bytes sent, sent again, acknowledged and
/// received in order, retransmissions; and its age.
#[test]
fn connection_totals_count_both_ways_and_retransmissions() {
    let mut syn = seg(SYN, IRS, 0);
    syn.options.mss = Some(100);
    let mut t = T::passive(cfg(), syn);
    let start = t.now;
    t.out(); // SYN-ACK
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    // 5 bytes in, acknowledged later (delayed ACK).
    t.send(seg(ACK | PSH, IRS + 1, ISS + 1), b"hello");
    // A duplicate of them: counted in, not received again.
    t.send(seg(ACK | PSH, IRS + 1, ISS + 1), b"hello");
    t.tcb.send(&[7u8; 1000]);
    assert_eq!(t.out().len(), 10);
    // Three duplicate ACKs: one segment of 100 sent again.
    for _ in 0..4 {
        t.send(seg(ACK, IRS + 6, ISS + 201), b"");
    }
    t.send(seg(ACK, IRS + 6, ISS + 1001), b"");
    t.now = t.now.plus(Duration::from_millis(250));
    let i = t.tcb.info(t.now);
    let tot = i.totals;
    // The SYN that built it, the handshake's ACK, hello, hello again, an
    // ACK and 3 duplicates, the full ACK.
    assert_eq!(tot.segs_in, 9);
    assert_eq!(tot.bytes_received, 5);
    assert_eq!(tot.bytes_sent, 1100);
    assert_eq!(tot.bytes_retrans, 100);
    assert_eq!(tot.retransmits, 1);
    assert_eq!(tot.bytes_acked, 1000);
    // The SYN-ACK, the duplicate's ACK, 10 data segments, the
    // retransmission, and whatever else the connection sent, as the core
    // counts it (tx_stats).
    assert!(tot.segs_out >= 13, "{tot:?}");
    assert_eq!(i.state, State::Established);
    assert_eq!(i.snd_una, ISS + 1001);
    assert_eq!(i.rcv_nxt, IRS + 6);
    assert_eq!(i.mss, 100);
    assert_eq!(i.age, t.now.since(start));
    assert!(i.passive);
}

// ---- ACKs on segments the window cannot take -------------------------------

/// Buffers fixed at `n` bytes each way, no window scale: the window we
/// offer is the buffer's room, to the byte.
fn fixed_buffers(n: usize) -> TcpConfig {
    TcpConfig {
        rx_buffer: n,
        tx_buffer: n,
        rx_buffer_max: n,
        tx_buffer_max: n,
        window_scaling: false,
        ..cfg()
    }
}

#[test]
fn a_zero_window_still_takes_the_ack_on_data_it_cannot_take() {
    let mut t = T::established(fixed_buffers(1024));
    t.tcb.send(&[7; 500]);
    assert_eq!(t.out(), vec![o(ACK | PSH, ISS + 1, IRS + 1, &[7; 500])]);
    // The peer fills our buffer before our data reaches it.
    t.send(seg(ACK, IRS + 1, ISS + 1), &[1; 512]);
    let full = t.send(seg(ACK, IRS + 513, ISS + 1), &[2; 512]);
    assert_eq!(full, vec![o(ACK, ISS + 501, IRS + 1025, b"")]);
    // Our ACK is lost. The peer resends a segment spanning our left edge
    // (repacketized), now acknowledging half of our data: RCV.WND is zero
    // and none of its bytes is taken (RFC 9293 3.10.7.4), but its ACK is,
    // and it is answered with our ACK.
    let out = t.send(seg(ACK, IRS + 1000, ISS + 251), &[3; 100]);
    assert_eq!(out, vec![o(ACK, ISS + 501, IRS + 1025, b"")]);
    assert_eq!(t.tcb.snd_una().0, ISS + 251);
    // Then its tail loss probe: its last segment again, all of it data we
    // hold, with the ACK of the rest of ours.
    let out = t.send(seg(ACK, IRS + 513, ISS + 501), &[2; 512]);
    assert_eq!(out, vec![o(ACK, ISS + 501, IRS + 1025, b"")]);
    assert_eq!(t.tcb.snd_una().0, ISS + 501);
    assert_eq!(t.tcb.unsent_or_unacked(), 0);
    assert_eq!(t.tcb.recv_len(), 1024);
    // Nothing of ours is left to resend: no timer sends it again.
    for _ in 0..20 {
        assert!(t.advance(Duration::from_millis(100)).is_empty());
    }
    assert_eq!((t.tcb.tx_stats.retransmits, t.c.tcp_rto), (0, 0));
    // A segment wholly older than the RCV.NXT of our last ACK is still
    // dropped unread (Linux `tcp_sequence`): its ACK, not acceptable
    // either, is not taken.
    t.tcb.send(&[8; 10]);
    t.out();
    t.send(seg(ACK, IRS + 1, ISS + 511), &[1; 512]);
    assert_eq!(t.tcb.snd_una().0, ISS + 501);
}

#[test]
fn a_peer_that_filled_our_window_is_heard_from_its_right_edge() {
    // An echo on both ends, each reading only what it can write back, so
    // that neither reads while its send buffer is full.
    let mut t = T::established(TcpConfig {
        nagle: false,
        ..fixed_buffers(2048)
    });
    let mut buf = [0u8; 2048];
    // The peer sends 2048 bytes; we read them and write them back.
    for i in 0..4 {
        t.send(seg(ACK, IRS + 1 + i * 512, ISS + 1), &[1; 512]);
    }
    assert_eq!(t.tcb.recv(&mut buf), 2048);
    assert_eq!(t.tcb.send(&buf), 2048);
    assert_eq!(t.out().len(), 4);
    assert_eq!(t.tcb.send_space(), 0);
    // It sends our whole window again; the first segment of it is lost.
    let edge = IRS + 1 + 4096;
    for i in 5..8 {
        t.send(seg(ACK, IRS + 1 + i * 512, ISS + 1), &[2; 512]);
    }
    assert_eq!(t.tcb.rcv_nxt().0, IRS + 2049);
    t.take_events();
    // Our data reaches it. It cannot send (our window is full), so it
    // acknowledges with a pure ACK whose sequence number is its SND.NXT,
    // our right edge (RCV.NXT + RCV.WND: Linux `tcp_acceptable_seq`). Not
    // in the window by 3.10.7.4's table, yet it is the only word from the
    // peer until the lost segment is resent, and our echo cannot read
    // until it writes: take its ACK (as Linux `tcp_sequence`).
    assert!(t.send(seg(ACK, edge, ISS + 2049), b"").is_empty());
    assert_eq!(t.tcb.snd_una().0, ISS + 2049);
    assert_eq!(t.tcb.send_space(), 2048);
    // The lost segment comes again, with the same ACK: all four are ours
    // to read, and the echo goes on both ways.
    let fill = t.send(seg(ACK, IRS + 2049, ISS + 2049), &[2; 512]);
    assert_eq!(fill, vec![o(ACK, ISS + 2049, edge, b"")]);
    assert_eq!(t.tcb.recv(&mut buf), 2048);
    assert_eq!(t.tcb.send(&buf), 2048);
    let out = t.out();
    assert_eq!(out[0].1, ISS + 2049);
    assert_eq!(out.iter().map(|s| s.3.len()).sum::<usize>(), 2048);
    // Its next data, from the old right edge, is in the window again.
    assert!(t
        .send(seg(ACK, edge, ISS + 4097), &[3; 512])
        .iter()
        .all(|s| s.3.is_empty() || s.1 >= ISS + 4097));
    assert_eq!(t.tcb.snd_una().0, ISS + 4097);
    assert_eq!(t.tcb.rcv_nxt().0, edge + 512);
}

// ---- F-RTO (RFC 5682) -----------------------------------------------------

/// Ten segments of 100 bytes out of 2000 queued, no timestamps, SACK or
/// not; the tail loss probe (10 ms) resends the last, the timer (200 ms
/// after the probe, RFC 8985 7.3) the first. Returns the connection and its cwnd and ssthresh before the
/// timeout.
fn timed_out_flight(sack: bool) -> (T, usize, usize) {
    let mut t = if sack {
        established_sack()
    } else {
        established_mss(100, false)
    };
    t.tcb.send(&[7; 2000]);
    assert_eq!(t.out().len(), 10);
    let before = (t.tcb.cwnd(), t.tcb.ssthresh());
    assert_eq!(t.advance(Duration::from_millis(10)).len(), 1);
    assert!(t.advance(Duration::from_millis(199)).is_empty());
    let rto = t.advance(Duration::from_millis(1));
    assert_eq!(rto, vec![o(ACK, ISS + 1, IRS + 1, &[7; 100])]);
    assert_eq!(t.c.tcp_rto, 1);
    assert!(t.tcb.ssthresh() < before.1 && t.tcb.cwnd() < before.0);
    // What comes next was on its way: it arrives sooner than a round trip
    // (5 ms) after the retransmission, which it cannot be the answer to.
    t.advance(Duration::from_millis(1));
    (t, before.0, before.1)
}

fn seqs(out: &[Out]) -> Vec<u32> {
    out.iter().map(|s| s.1 - ISS).collect()
}

#[test]
fn frto_finds_a_timeout_of_a_delayed_flight_spurious() {
    for sack in [false, true] {
        let (mut t, cwnd, ssthresh) = timed_out_flight(sack);
        // The flight was only delayed: its ACKs come now. The first covers
        // the resent segment and the next: new data goes instead of
        // resending the rest (step 2b).
        let out = t.send(sack_ack(201, &[]), b"");
        assert_eq!(seqs(&out), vec![1001, 1101], "sack {sack}");
        // The second covers data sent before the timeout and never
        // resent: the timeout was spurious (step 3b); the window is back.
        let out = t.send(sack_ack(401, &[]), b"");
        assert_eq!(t.c.tcp_frto_spurious, 1, "sack {sack}");
        assert_eq!((t.c.tcp_spurious_rto, t.c.tcp_undo), (1, 1));
        // (An ssthresh not yet set, "infinite", comes back as 4 GiB.)
        let ssthresh = ssthresh.min(u32::MAX as usize);
        assert_eq!((t.tcb.cwnd(), t.tcb.ssthresh()), (cwnd, ssthresh));
        assert_eq!(seqs(&out), vec![1201, 1301], "sack {sack}");
        // The rest of the flight is acknowledged as it arrives; nothing of
        // it is ever sent again.
        for ack in [601, 801, 1001, 1201, 1401] {
            let out = t.send(sack_ack(ack, &[]), b"");
            assert!(out.iter().all(|s| s.1 >= ISS + 1401), "sack {sack}");
        }
        assert_eq!(t.tcb.tx_stats.retransmits, 2, "the probe and the timeout's");
    }
}

#[test]
fn frto_takes_no_word_from_data_that_was_resent() {
    let (mut t, _, ssthresh) = timed_out_flight(true);
    // The resent first segment arrives: new data goes (step 2b).
    let out = t.send(sack_ack(101, &[]), b"");
    assert_eq!(seqs(&out), vec![1001, 1101]);
    // The next ACK reports only the last segment, which the tail loss
    // probe resent before the timeout: the probe's copy may be what
    // arrived, so it says nothing of the flight sent before the timeout
    // (Linux asks for FLAG_ORIG_SACK_ACKED). Not spurious: the flight is
    // resent (step 3a).
    let out = t.send(sack_ack(101, &[(901, 1001)]), b"");
    assert_eq!((t.c.tcp_frto_spurious, t.c.tcp_undo), (0, 0));
    assert!(t.tcb.ssthresh() < ssthresh);
    assert_eq!(seqs(&out)[0], 101);
    // Data never resent, reported the same way, would have said so.
    let (mut t, _, _) = timed_out_flight(true);
    t.send(sack_ack(101, &[]), b"");
    t.send(sack_ack(101, &[(801, 901)]), b"");
    assert_eq!((t.c.tcp_frto_spurious, t.c.tcp_undo), (1, 1));
}

#[test]
fn frto_leaves_a_timeout_of_a_lost_flight_to_go_back_n() {
    for sack in [false, true] {
        let (mut t, _, ssthresh) = timed_out_flight(sack);
        // Only the resent segment arrived, the rest of the flight was
        // lost: the first ACK covers the retransmission alone, and new
        // data goes (step 2b).
        let out = t.send(sack_ack(101, &[]), b"");
        assert_eq!(seqs(&out), vec![1001, 1101], "sack {sack}");
        // The next is a duplicate: with SACK it reports the new data,
        // beyond the recovery point; without, it has nothing new. The
        // loss was real (step 3a): the flight is resent from SND.UNA.
        let blocks: &[(u32, u32)] = if sack { &[(1001, 1201)] } else { &[] };
        let out = t.send(sack_ack(101, blocks), b"");
        assert_eq!(seqs(&out)[0], 101, "sack {sack}");
        assert!(out.iter().all(|s| s.1 < ISS + 1001), "sack {sack}");
        assert_eq!((t.c.tcp_frto_spurious, t.c.tcp_undo), (0, 0));
        assert!(t.tcb.ssthresh() < ssthresh);
        assert!(t.tcb.cwnd() <= 300, "{}", t.tcb.cwnd());
        // Go-back-N goes on with each ACK, skipping what was SACKed.
        let out = t.send(sack_ack(301, blocks), b"");
        assert_eq!(seqs(&out)[0], 301, "sack {sack}");
        assert_eq!(t.c.tcp_frto_spurious, 0);
    }
}

#[test]
fn with_timestamps_eifel_judges_a_timeout_before_frto() {
    let (mut t, _) = established_with_timestamps(cfg());
    t.tcb.send(&[7; 30_000]);
    let flight = t.out_full();
    assert_eq!(flight.len(), 10);
    let sent_ts = flight[0].0.options.timestamps.unwrap().0;
    let mss = flight[0].1.len() as u32;
    let (cwnd, ssthresh) = (t.tcb.cwnd(), t.tcb.ssthresh());
    assert_eq!(t.advance(Duration::from_millis(10)).len(), 1);
    assert_eq!(t.advance(Duration::from_millis(200)).len(), 1);
    assert_eq!(t.c.tcp_rto, 1);
    t.advance(Duration::from_millis(1));
    // The flight was delayed. Its first ACK echoes the TSval of the
    // originals, older than the retransmission's: Eifel detection finds
    // the timeout spurious on this first ACK, where F-RTO would wait for
    // the second; the window is back and new data goes.
    let ack = |n: u32| {
        let mut a = seg(ACK, IRS + 1, ISS + 1 + n * mss);
        a.options.timestamps = Some((3, sent_ts));
        a
    };
    let out = t.send(ack(2), b"");
    assert_eq!((t.c.tcp_spurious_rto, t.c.tcp_frto_spurious), (1, 0));
    // (Restored before this ACK's own growth.)
    assert!(t.tcb.cwnd() >= cwnd, "{} < {cwnd}", t.tcb.cwnd());
    assert_eq!(t.tcb.ssthresh(), ssthresh.min(u32::MAX as usize));
    assert!(!out.is_empty() && out.iter().all(|s| s.1 >= ISS + 1 + 10 * mss));
    // F-RTO ended with it: the second ACK counts nothing more.
    t.send(ack(4), b"");
    assert_eq!(
        (t.c.tcp_spurious_rto, t.c.tcp_frto_spurious, t.c.tcp_undo),
        (1, 0, 1)
    );
}

#[test]
fn nothing_due_only_when_a_dispatch_sends_nothing() {
    let mut t = T::established(cfg());
    // (what happened, whether something is due)
    let step = |t: &mut T, what: &str, due: bool| {
        assert_eq!(!t.tcb.nothing_due(), due, "{what}");
        let out = t.out();
        assert_eq!(!out.is_empty(), due, "{what}: {out:?}");
    };
    step(&mut t, "established", false);
    let c = &mut t.c;
    t.tcb
        .process(t.now, &seg(ACK | PSH, IRS + 1, ISS + 1), b"hello", c);
    step(&mut t, "one segment: its ACK is delayed", false);
    let c = &mut t.c;
    t.tcb
        .process(t.now, &seg(ACK | PSH, IRS + 6, ISS + 1), b"world", c);
    step(&mut t, "a second segment: ACK now", true);
    t.tcb.send(b"reply");
    step(&mut t, "data written", true);
    let c = &mut t.c;
    t.tcb.process(t.now, &seg(ACK, IRS + 11, ISS + 6), b"", c);
    step(&mut t, "all acknowledged", false);
    t.tcb.close(t.now);
    step(&mut t, "a FIN queued", true);
    // Once a FIN is queued the check no longer answers (the slow path
    // finds nothing to send).
    assert!(!t.tcb.nothing_due());
    assert!(t.out().is_empty());
}

/// [`Tcb::nothing_due`] (one test of a byte of flags) against the
/// dispatch it lets the core skip: over seeded random events (writes,
/// in-order and out-of-order data, ACKs of any part of the flight or
/// none, zero windows, lost segments, the timers: delayed ACK, RTO, tail
/// loss probe, persist, keepalive), whenever it says nothing is due a
/// full dispatch sends nothing and sets no timer.
#[test]
fn nothing_due_agrees_with_a_full_dispatch_on_random_events() {
    let mut quiet_steps = 0;
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let keepalive = (seed % 2 == 0).then_some(Keepalive {
            idle: Duration::from_millis(500),
            interval: Duration::from_millis(100),
            probes: 3,
        });
        let mut t = T::established(TcpConfig {
            keepalive,
            nagle: seed % 3 != 0,
            ..cfg()
        });
        // The peer: its next sequence number, and the highest sequence
        // number of ours it has seen.
        let mut peer_seq = IRS + 1;
        let mut high = ISS + 1;
        let mut acked = ISS + 1;
        for _ in 0..400 {
            match rng.next() % 8 {
                0 => {
                    let n = 1 + (rng.next() % 3000) as usize;
                    t.tcb.send(&vec![7; n]);
                }
                1 | 2 => {
                    let n = 1 + (rng.next() % 700) as usize;
                    let ack = acked.wrapping_add((rng.next() % 2000) as u32);
                    let ack = if ack.wrapping_sub(high) as i32 > 0 {
                        high
                    } else {
                        ack
                    };
                    let window = if rng.percent(10) { 0 } else { 65535 };
                    let s = TcpRepr {
                        window_len: window,
                        ..seg(ACK | PSH, peer_seq, ack)
                    };
                    t.tcb.process(t.now, &s, &vec![1; n], &mut t.c);
                    peer_seq = peer_seq.wrapping_add(n as u32);
                    acked = ack;
                }
                3 => {
                    // A pure ACK: a duplicate, or of part or all of the flight.
                    let ack = match rng.next() % 3 {
                        0 => acked,
                        1 => high,
                        _ => acked.wrapping_add(high.wrapping_sub(acked) / 2),
                    };
                    let window = if rng.percent(15) { 0 } else { 65535 };
                    let s = TcpRepr {
                        window_len: window,
                        ..seg(ACK, peer_seq, ack)
                    };
                    t.tcb.process(t.now, &s, b"", &mut t.c);
                    acked = ack;
                }
                4 => {
                    // Data ahead of a hole: an immediate ACK.
                    let s = seg(ACK, peer_seq.wrapping_add(1000), acked);
                    t.tcb.process(t.now, &s, &[2; 100], &mut t.c);
                }
                5 => {
                    let mut buf = [0u8; 4096];
                    t.tcb.recv(&mut buf);
                }
                _ => {
                    let ms = if rng.percent(50) { 1 } else { rng.next() % 400 };
                    t.now = t.now.plus(Duration::from_millis(ms));
                    if t.tcb.next_deadline().is_some_and(|d| d <= t.now) {
                        t.tcb.on_timer(t.now, &mut t.c);
                    }
                }
            }
            t.tcb.take_events();
            if let Err(e) = t.tcb.check_due() {
                panic!("seed {seed}: {e}");
            }
            let quiet = t.tcb.nothing_due();
            let deadline = t.tcb.next_deadline();
            let mut out = Vec::new();
            t.tcb.dispatch_always(t.now, &mut |r, a, b| {
                out.push((r.flags, r.seq_number, a.len() + b.len()));
                true
            });
            if quiet {
                quiet_steps += 1;
                assert!(out.is_empty(), "seed {seed}: nothing due, yet sent {out:?}");
                assert_eq!(t.tcb.next_deadline(), deadline, "seed {seed}");
            }
            // Some segments are lost on the way: the peer sees the rest.
            for (flags, seq, len) in out {
                if rng.percent(20) {
                    continue;
                }
                let end = seq.wrapping_add(len as u32 + u32::from(flags.fin()));
                if end.wrapping_sub(high) as i32 > 0 {
                    high = end;
                }
            }
            if t.tcb.state == State::Closed {
                break;
            }
        }
    }
    // The check ran, and not only on connections with nothing to do.
    assert!(quiet_steps > 1000, "{quiet_steps}");
}

// ---- RTT samples in microseconds ------------------------------------------

#[test]
fn rtt_samples_come_from_send_times_in_microseconds() {
    // With timestamps, a sample from the echo is whole milliseconds (1.5
    // ms reads as 1 or 2); the send time of the segment the ACK delivered
    // gives 1500 us (Linux `tcp_ack_update_rtt`): SRTT moves by an eighth
    // of the difference from it (RFC 6298 2.3).
    let (mut t, _) = established_with_timestamps(cfg());
    let srtt0 = t.tcb.srtt().expect("the handshake was timed").micros();
    t.tcb.send(&[7; 100]);
    let sent = t.out_full();
    assert_eq!(sent.len(), 1);
    let tsval = sent[0].0.options.timestamps.unwrap().0;
    t.now = t.now.plus(Duration::from_micros(1500));
    let mut a = seg(ACK, IRS + 1, ISS + 101);
    a.options.timestamps = Some((3, tsval));
    t.send(a, b"");
    let want = srtt0 as i64 + (1500 - srtt0 as i64) / 8;
    let got = t.tcb.srtt().unwrap().micros() as i64;
    assert!((got - want).abs() <= 2, "srtt {got} us, want {want} us");

    // An ACK that covers a retransmission: the send time is ambiguous
    // (Karn); the timestamp echo is not (RFC 7323 4), and it gives the
    // sample, in milliseconds.
    t.tcb.send(&[8; 100]);
    let first = t.out_full();
    let tsval = first[0].0.options.timestamps.unwrap().0;
    let resent = t.advance(Duration::from_millis(200));
    assert_eq!(resent.len(), 1, "the probe resends it");
    t.now = t.now.plus(Duration::from_micros(3400));
    let before = t.tcb.srtt().unwrap().micros() as i64;
    let mut a = seg(ACK, IRS + 1, ISS + 201);
    a.options.timestamps = Some((4, tsval));
    t.send(a, b"");
    // The echo is of the original, 203.4 ms ago: a timestamp sample of
    // 203 ms, not 3.4 ms from the retransmission.
    let after = t.tcb.srtt().unwrap().micros() as i64;
    assert!(after > before + 20_000, "{before} -> {after}");
}

/// A FIN that arrives out of order, with the last data, is reported in
/// the SACK block of that data (the block ends past the FIN, as Linux's
/// receivers report it): the sender recorded the FIN in that segment, and
/// a block that stopped at the FIN left it unreported, so that RACK
/// resent a FIN we had (one in 30 short transfers at 1% loss in
/// sim_cc_tests).
#[test]
fn a_fin_held_out_of_order_is_in_its_sack_block() {
    let mut syn = seg(SYN, IRS, 0);
    syn.options = TcpOptions {
        sack_permitted: true,
        ..Default::default()
    };
    let mut t = T::passive(cfg(), syn);
    t.out();
    t.send(seg(ACK, IRS + 1, ISS + 1), b"");
    assert_eq!(t.tcb.state, State::Established);
    // The SACK blocks of the ACK that answers `s`.
    let blocks = |t: &mut T, s: TcpRepr, data: &[u8]| {
        t.tcb.process(t.now, &s, data, &mut t.c);
        let out = t.out_full();
        assert_eq!(out.len(), 1, "an immediate ACK");
        out[0].0.options.sack_blocks
    };
    // Data and FIN after a hole: the block covers both.
    let b = blocks(&mut t, seg(FIN | ACK, IRS + 101, ISS + 1), &[1; 100]);
    assert_eq!(b, [Some((IRS + 101, IRS + 202)), None, None]);
    // More data below it, still after the hole: the merged block still
    // ends past the FIN.
    let b = blocks(&mut t, seg(ACK, IRS + 51, ISS + 1), &[1; 50]);
    assert_eq!(b, [Some((IRS + 51, IRS + 202)), None, None]);
    // The hole filled: FIN and all acknowledged, no block.
    let out = t.send(seg(ACK, IRS + 1, ISS + 1), &[1; 50]);
    assert_eq!(out, vec![o(ACK, ISS + 1, IRS + 202, b"")]);
    assert_eq!(t.tcb.state, State::CloseWait);
}

/// RFC 8985 7.3: the probe resends the most recently sent segment, as it
/// was sent. A response of one full segment and a short last one with the
/// FIN (a 64 KB transfer ends in 376 bytes and its FIN): the probe is
/// that last segment, FIN included. It was the last MSS of the data,
/// which starts inside the full segment and stopped at its end: bytes the
/// peer may have, never the last segment, whose loss then waited for the
/// RTO (sim_cc_tests, seed 3, 200 transfers: the lost tail repaired 260 ms
/// after it went, where the probe repairs it in 2 SRTT).
#[test]
fn tail_loss_probe_resends_the_last_segment_as_sent() {
    let cfg = TcpConfig {
        timestamps: false,
        ..cfg()
    };
    let mut t = established_with_rtt(cfg, Duration::from_millis(10));
    t.tcb.send(&[1; 536 + 100]);
    t.tcb.shutdown();
    let out = t.out();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[1].0, out[1].1, out[1].3.len()),
        (FIN | ACK | PSH, ISS + 1 + 536, 100)
    );
    assert!(t.advance(Duration::from_millis(19)).is_empty());
    let probe = t.advance(Duration::from_millis(1));
    assert_eq!(t.c.tcp_tail_loss_probes, 1);
    assert_eq!(probe.len(), 1);
    assert_eq!(
        (probe[0].0, probe[0].1, probe[0].3.len()),
        (FIN | ACK | PSH, ISS + 1 + 536, 100),
        "the last segment, with its FIN"
    );
    // The probe repairs it: everything and the FIN acknowledged.
    assert!(t.send(seg(ACK, IRS + 1, ISS + 1 + 636 + 1), b"").is_empty());
    assert_eq!(t.tcb.state, State::FinWait2);
    assert_eq!(t.tcb.next_deadline(), None);
}

/// RFC 9040 5 (temporal sharing): a connection that closes leaves its RTT
/// estimate in its core's table; the next active open to the same address
/// retransmits its SYN after SRTT + 4 * RTTVAR of it, not RFC 6298 2.1's
/// 1 s. One to an address the cache does not hold, or with the cache off,
/// waits the 1 s; its first sample of its own is taken as RFC 6298 2.2's.
#[test]
fn syn_rto_from_the_rtt_cache() {
    use super::isn::IsnGenerator;
    use super::table::TcpTable;
    let other = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 9), 40000);
    // A first connection measures 100 ms in its handshake (SRTT 100 ms,
    // RTTVAR 50 ms: RTO 300 ms) and is closed.
    let measured = |cfg: TcpConfig| {
        let mut t = T::active(cfg);
        t.out();
        t.advance(Duration::from_millis(100));
        t.send(seg(SYN | ACK, IRS, ISS + 1), b"");
        assert_eq!(t.tcb.state, State::Established);
        assert_eq!(t.tcb.srtt(), Some(Duration::from_millis(100)));
        (t.tcb, t.now)
    };
    // A new active open through `table` to `remote`: when its SYN goes
    // again (the first expiry within 2 s).
    let syn_again = |table: &mut TcpTable, now: Instant, remote: SocketAddrV4| {
        let local = SocketAddrV4::new(LOCAL.ip().to_owned(), 61000);
        let mut t = T {
            tcb: Tcb::connect(&table.cfg, now, local, remote, ISS, 0),
            now,
            c: Counters::default(),
            events: 0,
            mss_limit: table.cfg.mss,
        };
        table.start_rtt(now, &mut t.tcb);
        assert_eq!(t.out().len(), 1);
        let mut waited = Duration::from_millis(0);
        while waited < Duration::from_secs(2) {
            waited = Duration::from_micros(waited.micros() + 10_000);
            if let [(flags, seq, ..)] = t.advance(Duration::from_millis(10))[..] {
                assert_eq!((flags, seq), (SYN, ISS));
                assert_eq!((t.c.tcp_rto, t.c.tcp_syn_retransmits), (1, 1));
                return (waited, t);
            }
        }
        panic!("no SYN retransmitted");
    };

    let (tcb, now) = measured(cfg());
    let mut table = TcpTable::new(cfg(), IsnGenerator::new(), now);
    let id = table.insert(now, Box::new(tcb)).unwrap();
    assert_eq!(table.rtt_cache.len(), 0);
    let mut tcb = table.take(id.index).unwrap();
    tcb.abort();
    // The close leaves the estimate.
    assert_eq!(table.put(now, id.index, tcb), None);
    assert_eq!(table.rtt_cache.len(), 1);
    let later = now.plus(Duration::from_secs(5));
    let (waited, mut t) = syn_again(&mut table, later, REMOTE);
    assert_eq!(waited, Duration::from_millis(300));
    assert_eq!(table.rtt_cache.hits, 1);
    // The SYN-ACK (no timestamps): Karn's rule, no sample from the resent
    // SYN; the RTO stays backed off from the cached start.
    t.send(seg(SYN | ACK, IRS, ISS + 1), b"");
    assert_eq!(t.tcb.state, State::Established);
    assert_eq!(t.tcb.srtt(), None, "Karn: no sample from a resent SYN");
    assert_eq!(t.tcb.rto(), Duration::from_millis(600));
    // Data, acknowledged 40 ms on: RFC 6298 2.2 (SRTT = R, RTTVAR = R/2,
    // RTO = max(200 ms, 40 + 80)).
    t.tcb.send(&[7; 100]);
    assert_eq!(t.out().len(), 1);
    t.advance(Duration::from_millis(40));
    t.send(seg(ACK, IRS + 1, ISS + 101), b"");
    assert_eq!(t.tcb.srtt(), Some(Duration::from_millis(40)));
    assert_eq!(t.tcb.rto(), Duration::from_millis(200));

    // An address the cache does not hold: 1 s.
    let (waited, _) = syn_again(&mut table, later, other);
    assert_eq!(waited, Duration::from_secs(1));
    // Past 10 minutes unused, the entry is gone: 1 s.
    let stale = later.plus(Duration::from_secs(601));
    let (waited, _) = syn_again(&mut table, stale, REMOTE);
    assert_eq!(waited, Duration::from_secs(1));

    // The cache off (--tcp-rtt-cache 0): nothing kept, 1 s.
    let (tcb, now) = measured(cfg());
    let mut table = TcpTable::with_rtt_cache(cfg(), IsnGenerator::new(), now, 0);
    let id = table.insert(now, Box::new(tcb)).unwrap();
    let mut tcb = table.take(id.index).unwrap();
    tcb.abort();
    assert_eq!(table.put(now, id.index, tcb), None);
    assert_eq!(table.rtt_cache.len(), 0);
    let (waited, _) = syn_again(&mut table, now, REMOTE);
    assert_eq!(waited, Duration::from_secs(1));
}
