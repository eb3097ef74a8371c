//! dpstack: a user-space, run-to-completion TCP/IP stack on DPDK, sharded per core.
//!
//! The protocol code (`wire`, `arp`, `icmp`, `ipv4`, `udp`, `app`, the per-core
//! context in `shard` but `shard::lcore`) never calls DPDK: it works on the
//! [`buf::PacketBuf`] abstraction, which an `Mbuf` implements in production
//! and a heap buffer in unit tests. Unsafe code lives only in `ffi` and `dpdk`.
//!
//! `ffi`, `dpdk`, `runtime` and the lcore loop need the `dpdk` feature (the
//! default); everything else builds and is tested without it, on a machine
//! with neither DPDK nor libclang.
#![deny(unsafe_code)]

pub mod app;
pub mod arp;
pub mod buf;
pub mod config;
#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod dpdk;
#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod ffi;
pub mod flow;
pub mod fuzzing;
pub mod hash;
pub mod icmp;
pub mod ipv4;
pub mod kni;
#[cfg(feature = "dpdk")]
pub mod runtime;
pub mod shard;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;
