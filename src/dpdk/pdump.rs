//! Packet capture by DPDK's own tools: with [`Pdump`] alive, `dpdk-dumpcap`
//! (or `dpdk-pdump`), started as a secondary process of ours, captures the
//! port's RX and TX, with a BPF filter if it is given one.
//!
//! `rte_pdump_init` only registers a multi-process handler and a stats
//! zone: the RX and TX callbacks that copy frames are installed on the
//! port when a capture starts and removed when it ends, so a stack that
//! nobody captures runs exactly as it would without this. Capture needs
//! EAL's shared configuration (no `--in-memory`, no `--no-shconf`): without
//! it the handler cannot be registered and `init` fails.

use super::error::{from_errno, Result};
use crate::ffi;

/// The capture server, registered for as long as it lives.
pub struct Pdump {
    _private: (),
}

impl Pdump {
    /// Register the capture server (primary process, after EAL init).
    pub fn init() -> Result<Pdump> {
        // It returns -1 with rte_errno set; without EAL's shared
        // configuration it succeeds, but no capture can reach it.
        // SAFETY: EAL is initialised (the caller holds an `Eal`); the call
        // registers a multi-process action and reserves a memzone.
        if unsafe { ffi::rte_pdump_init() } < 0 {
            return Err(from_errno("rte_pdump_init"));
        }
        Ok(Pdump { _private: () })
    }
}

impl Drop for Pdump {
    fn drop(&mut self) {
        // SAFETY: init succeeded; uninit unregisters what it registered.
        unsafe { ffi::rte_pdump_uninit() };
    }
}
