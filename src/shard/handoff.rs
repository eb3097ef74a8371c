//! Frames handed to the core that owns their flow: the flow directories
//! shared with the other cores, the frames this core hands over (a
//! reassembled datagram as fragments again) and those it takes from the
//! others' queues.

use super::ctx::{Core, Net};
use super::ipv4::refragment;
use super::steer::Steering;
use crate::buf::BufPool;
use crate::stats::DropReason;
use crate::wire::Ipv4Repr;
use std::sync::Arc;

/// Frames taken from each other core's handoff queue per poll.
const BURST_HANDOFF: usize = 32;

impl<P: BufPool> Core<P> {
    /// Share TCP flow ownership with the other cores: this core's
    /// connections go into the directory, and segments for connections
    /// another core owns are handed to it.
    pub fn set_steering(&mut self, s: Arc<Steering<P::Buf>>) {
        self.net
            .tcp
            .set_directory(s.directory.clone(), self.net.info.index);
        self.net
            .syn
            .cache
            .set_directory(s.directory.clone(), self.net.info.index);
        self.net
            .udp
            .set_directory(s.udp_directory.clone(), self.net.info.index);
        self.steering = Some(s);
    }

    /// Process the frames other cores handed to this one.
    pub fn poll_handoffs(&mut self) {
        let Some(s) = self.steering.clone() else {
            return;
        };
        let me = self.net.info.index;
        for src in (0..s.cores()).filter(|&c| c != me) {
            for _ in 0..BURST_HANDOFF {
                let Some(buf) = s.pop(src, me) else {
                    break;
                };
                self.net.counters.steer_handoffs_in += 1;
                self.process_frame_inner(buf, true);
            }
        }
    }

    /// Hand over what this core received for other cores' connections.
    pub fn flush_handoffs(&mut self) {
        let Some(s) = self.steering.as_ref() else {
            return;
        };
        let me = self.net.info.index;
        for (dst, buf) in self.handoff_out.drain(..) {
            if let Err(_buf) = s.push(me, dst, buf) {
                self.net.counters.steer_handoff_dropped += 1;
                self.net.counters.drop(DropReason::QueueFull);
            } else {
                self.net.counters.steer_handoffs_out += 1;
            }
        }
        self.net.counters.steer_directory_full = self.net.tcp.directory_full
            + self.net.udp.directory_full
            + self.net.syn.cache.directory_full;
    }
}

/// A datagram reassembled here whose flow another core owns goes to that
/// core as fragments again, each of which fits a buffer; it reassembles
/// them (af_packet's fanout keeps a datagram's fragments together, but not
/// on the core that owns the flow). A buffer short drops all of it.
#[cold]
pub(super) fn hand_over_reassembled<P: BufPool>(
    net: &mut Net<P>,
    out: &mut Vec<(usize, P::Buf)>,
    owner: usize,
    ip: &Ipv4Repr,
    ident: u16,
    payload: &[u8],
) {
    let start = out.len();
    let mac = net.iface.mac;
    if refragment(net, ip, ident, payload, mac, |_, buf| {
        out.push((owner, buf))
    }) {
        net.counters.steer_reassembled_out += 1;
    } else {
        out.truncate(start);
    }
}
