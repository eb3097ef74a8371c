//! The exception path on a core: what the kernel policy gives the kernel
//! (ARP copies, other ethertypes, datagrams no application owns) goes to its
//! queue, rate-limited per core, and what the kernel sends goes to the wire.

use super::ctx::{Core, Net};
use crate::buf::{BufPool, PacketBuf};
use crate::icmp::RateLimiter;
use crate::kni::{KniPolicy, KniShared};
use crate::stats::DropReason;
use std::sync::Arc;

impl<P: BufPool> Core<P> {
    /// Send what this core does not own to the kernel, by `policy`, at most
    /// `rate` frames per second from this core.
    pub fn set_kni(&mut self, shared: Arc<KniShared<P::Buf>>, policy: KniPolicy, rate: u64) {
        self.kni = Some(shared);
        self.kni_policy = policy;
        self.kni_limit = RateLimiter::new(rate, (rate / 10).max(32));
    }

    /// Queue `buf` for the kernel, or drop and count it (rate, link down,
    /// queue full). Never waits.
    pub(super) fn dispatch_kernel(&mut self, buf: P::Buf) {
        dispatch_kernel(&mut self.net, self.kni.as_deref(), &mut self.kni_limit, buf);
    }

    /// A copy of `frame` for the kernel (ARP: both need to see it).
    pub(super) fn dispatch_kernel_copy(&mut self, frame: &[u8]) {
        let Some(mut copy) = self.net.pool.alloc() else {
            self.net.counters.drop(DropReason::NoBuffer);
            return;
        };
        if !copy.set_len(frame.len()) {
            self.net.counters.drop(DropReason::NoBuffer);
            return;
        }
        copy.data_mut().copy_from_slice(frame);
        self.dispatch_kernel(copy);
    }

    /// A frame the kernel sent out of its interface: to the wire, as it is.
    pub fn transmit_from_kernel(&mut self, buf: P::Buf) {
        if self.net.push_tx(buf).is_ok() {
            self.net.counters.kni_from_kernel += 1;
        }
    }
}

/// Queue `buf` for the kernel, or drop and count it (no kernel path, rate,
/// link down, queue full). Never waits.
pub(super) fn dispatch_kernel<P: BufPool>(
    net: &mut Net<P>,
    kni: Option<&KniShared<P::Buf>>,
    limit: &mut RateLimiter,
    buf: P::Buf,
) {
    let Some(k) = kni else {
        return net.drop_frame(DropReason::Unsupported);
    };
    let c = &mut net.counters;
    if !k.link_up() {
        c.kni_link_down += 1;
        return c.drop(DropReason::Kernel);
    }
    if !limit.allow(net.now) {
        c.kni_rate_limited += 1;
        return c.drop(DropReason::Kernel);
    }
    match k.push(net.info.index, buf) {
        Ok(()) => c.kni_to_kernel += 1,
        Err(_buf) => {
            c.kni_queue_full += 1;
            c.drop(DropReason::QueueFull);
        }
    }
}
