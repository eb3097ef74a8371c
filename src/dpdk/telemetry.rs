//! dpstack's counters in DPDK telemetry, beside ethdev's own:
//! `dpdk-telemetry.py -f PREFIX` then `/dpstack/stats` (all cores summed) or
//! `/dpstack/stats,N` (core N). The callback runs on DPDK's telemetry
//! thread and only reads what the cores published. Commands whose replies
//! hold records (`/dpstack/tcp/conns`, `/dpstack/udp/sockets`) go through
//! [`register_reply`].

use super::error::{check, Result};
use crate::ffi;
use crate::stats::conns::{Entry, Reply, Value};
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::sync::{Arc, Mutex, OnceLock};

/// Maps the command's parameter ("" or a core index) to counters, or None
/// for a bad parameter.
pub type StatsProvider = Box<dyn Fn(&str) -> Option<Vec<(String, u64)>> + Send + Sync>;

static PROVIDER: OnceLock<StatsProvider> = OnceLock::new();

/// A command's parameters, trimmed ("" when none were given).
fn param_string(params: *const c_char) -> String {
    if params.is_null() {
        return String::new();
    }
    // SAFETY: telemetry passes NUL-terminated strings valid for the call.
    unsafe { CStr::from_ptr(params) }
        .to_string_lossy()
        .trim()
        .to_string()
}

extern "C" fn stats_cb(
    _cmd: *const c_char,
    params: *const c_char,
    d: *mut ffi::rte_tel_data,
) -> c_int {
    let Some(provider) = PROVIDER.get() else {
        return -1;
    };
    let params = param_string(params);
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

/// Maps a command's parameters to its reply (a dictionary whose entries
/// may be records), or None for bad parameters.
pub type ReplyProvider = Box<dyn Fn(&str) -> Option<Reply> + Send + Sync>;

/// Commands registered with [`register_reply`], by name. The callbacks of
/// several telemetry clients may run at once: each takes its provider out
/// under the lock and calls it without holding it.
static REPLY_PROVIDERS: Mutex<Vec<(String, Arc<ReplyProvider>)>> = Mutex::new(Vec::new());

fn add_value(d: *mut ffi::rte_tel_data, name: &CStr, v: &Value) {
    match v {
        // SAFETY: a started dictionary and NUL-terminated strings
        // (telemetry copies both).
        Value::U64(x) => unsafe {
            ffi::rte_tel_data_add_dict_u64(d, name.as_ptr(), *x);
        },
        Value::Str(s) => {
            if let Ok(s) = CString::new(s.as_str()) {
                // SAFETY: as above.
                unsafe { ffi::rte_tel_data_add_dict_string(d, name.as_ptr(), s.as_ptr()) };
            }
        }
    }
}

extern "C" fn reply_cb(
    cmd: *const c_char,
    params: *const c_char,
    d: *mut ffi::rte_tel_data,
) -> c_int {
    if cmd.is_null() {
        return -1;
    }
    // SAFETY: telemetry passes NUL-terminated strings valid for the call.
    let cmd = unsafe { CStr::from_ptr(cmd) }.to_string_lossy();
    let params = param_string(params);
    let provider = match REPLY_PROVIDERS.lock() {
        Ok(list) => list.iter().find(|(n, _)| *n == cmd).map(|(_, p)| p.clone()),
        Err(_) => None,
    };
    let Some(reply) = provider.and_then(|p| p(&params)) else {
        return -1;
    };
    // SAFETY: d is the reply container telemetry handed us for this call.
    unsafe { ffi::rte_tel_data_start_dict(d) };
    for (k, e) in reply {
        let Ok(name) = CString::new(k) else { continue };
        match e {
            Entry::Value(v) => add_value(d, &name, &v),
            Entry::Record(fields) => {
                // SAFETY: a fresh container; telemetry frees it with the
                // reply once added (keep = 0), we free it if it was not.
                let c = unsafe { ffi::rte_tel_data_alloc() };
                if c.is_null() {
                    continue;
                }
                // SAFETY: c is ours until added.
                unsafe { ffi::rte_tel_data_start_dict(c) };
                for (fk, fv) in fields {
                    if let Ok(fname) = CString::new(fk) {
                        add_value(c, &fname, &fv);
                    }
                }
                // SAFETY: both containers valid; on failure c is still ours.
                if unsafe { ffi::rte_tel_data_add_dict_container(d, name.as_ptr(), c, 0) } != 0 {
                    unsafe { ffi::rte_tel_data_free(c) };
                }
            }
        }
    }
    0
}

/// Register `name` (e.g. `/dpstack/tcp/conns`) answered by `provider`.
/// A name registered twice keeps its first provider.
pub fn register_reply(name: &str, help: &str, provider: ReplyProvider) -> Result<()> {
    {
        let mut list = REPLY_PROVIDERS.lock().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        list.push((name.to_string(), Arc::new(provider)));
    }
    let (Ok(cname), Ok(chelp)) = (CString::new(name), CString::new(help)) else {
        return check("rte_telemetry_register_cmd", -libc::EINVAL).map(|_| ());
    };
    // Telemetry keeps the pointers: the strings live for the process.
    let (cname, chelp) = (cname.into_raw(), chelp.into_raw());
    // SAFETY: NUL-terminated strings that are never freed, and a callback
    // with the telemetry_cb signature that lives for the process.
    let ret = unsafe { ffi::rte_telemetry_register_cmd(cname, Some(reply_cb), chelp) };
    check("rte_telemetry_register_cmd", ret).map(|_| ())
}
