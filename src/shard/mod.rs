//! The per-core context and the run-to-completion loop.
//!
//! `ctx` holds the protocol side (no FFI, tested on heap buffers); `lcore`
//! runs it on a DPDK lcore: rx_burst -> dispatch -> buffered tx_burst ->
//! timers on a TSC deadline.

pub mod classify;
pub mod ctx;
#[cfg(feature = "dpdk")]
mod lcore;
#[cfg(test)]
mod sim_cc_tests;
#[cfg(test)]
mod sim_tests;
pub mod steer;
#[cfg(test)]
mod tests;
pub mod tx;

pub use ctx::conns::{listing_page, ConnsPublisher, ConnsSlot};
pub use ctx::{Core, CoreLimits, IfaceConfig, Net};
#[cfg(feature = "dpdk")]
pub use lcore::{run_lcore, KniSetup, LcoreSetup, Published};
pub use steer::{FlowDirectory, Steering};
