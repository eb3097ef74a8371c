//! The per-core context and the run-to-completion loop.
//!
//! `ctx` holds the per-core context and what applications call (no FFI,
//! tested on heap buffers); one file per protocol holds its ingress and
//! egress on that context, as smoltcp's `iface/interface/` does: `ethernet`,
//! `arp`, `ipv4`, `icmp`, `udp`, `tcp`, `kernel` (the exception path) and
//! `handoff` (frames for the core that owns their flow). `classify` decides
//! where a datagram goes, `steer` holds the queues between cores, `tx` the
//! transmit backlog. `lcore` runs a context on a DPDK lcore: rx_burst ->
//! dispatch -> buffered tx_burst -> timers on a TSC deadline.

mod arp;
pub mod classify;
pub mod conns;
pub mod ctx;
mod ethernet;
mod handoff;
mod icmp;
mod ipv4;
mod kernel;
#[cfg(feature = "dpdk")]
mod lcore;
#[cfg(test)]
mod sim_cc_tests;
#[cfg(test)]
mod sim_tests;
pub mod steer;
mod tcp;
#[cfg(test)]
mod tests;
pub mod tx;
mod udp;

pub use conns::{listing_page, ConnsPublisher, ConnsSlot};
pub use ctx::{Core, CoreLimits, IfaceConfig, Net};
#[cfg(feature = "dpdk")]
pub use lcore::{run_lcore, KniSetup, LcoreSetup, Published};
pub use steer::{FlowDirectory, Steering};
