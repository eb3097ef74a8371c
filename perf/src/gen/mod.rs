//! dpstack-gen's parts that need no device: probe frames, pacing, round-trip
//! recording, reports and plots. The DPDK loop is in src/bin/gen.rs.

pub mod frames;
pub mod record;
pub mod tcp;
