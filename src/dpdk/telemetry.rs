//! dpstack's counters in DPDK telemetry, beside ethdev's own:
//! `dpdk-telemetry.py -f PREFIX` then `/dpstack/stats` (all cores summed) or
//! `/dpstack/stats,N` (core N). The callback runs on DPDK's telemetry
//! thread and only reads what the cores published.

use super::error::{check, Result};
use crate::ffi;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::sync::OnceLock;

/// Maps the command's parameter ("" or a core index) to counters, or None
/// for a bad parameter.
pub type StatsProvider = Box<dyn Fn(&str) -> Option<Vec<(String, u64)>> + Send + Sync>;

static PROVIDER: OnceLock<StatsProvider> = OnceLock::new();

extern "C" fn stats_cb(
    _cmd: *const c_char,
    params: *const c_char,
    d: *mut ffi::rte_tel_data,
) -> c_int {
    let Some(provider) = PROVIDER.get() else {
        return -1;
    };
    let params = if params.is_null() {
        String::new()
    } else {
        // SAFETY: telemetry passes a NUL-terminated string valid for the call.
        unsafe { CStr::from_ptr(params) }
            .to_string_lossy()
            .trim()
            .to_string()
    };
    let Some(pairs) = provider(&params) else {
        return -1;
    };
    // SAFETY: d is the reply container telemetry handed us for this call.
    unsafe { ffi::rte_tel_data_start_dict(d) };
    for (k, v) in pairs {
        let Ok(name) = CString::new(k) else { continue };
        // SAFETY: valid container and NUL-terminated name (telemetry copies it).
        unsafe { ffi::rte_tel_data_add_dict_u64(d, name.as_ptr(), v) };
    }
    0
}

/// Register `/dpstack/stats`. Once per process.
pub fn register_stats(provider: StatsProvider) -> Result<()> {
    if PROVIDER.set(provider).is_err() {
        return Ok(());
    }
    // SAFETY: static NUL-terminated strings and a callback with the
    // telemetry_cb signature that lives for the process.
    let ret = unsafe {
        ffi::rte_telemetry_register_cmd(
            c"/dpstack/stats".as_ptr(),
            Some(stats_cb),
            c"dpstack counters: all cores summed, or one core. Parameters: int core (optional)"
                .as_ptr(),
        )
    };
    check("rte_telemetry_register_cmd", ret).map(|_| ())
}
