//! Typed DPDK errors carrying `rte_strerror`'s text.

use crate::ffi;
use std::ffi::CStr;

#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// A DPDK call failed with an errno (negative return or `rte_errno`).
    #[error("{op}: {msg} (errno {code})")]
    Call {
        op: &'static str,
        code: i32,
        msg: String,
    },
    /// A call returned NULL or an impossible value.
    #[error("{op}: {msg}")]
    Failed { op: &'static str, msg: String },
    /// The configuration asks for something the device cannot do.
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, DpdkError>;

/// `rte_strerror(code)` as a String.
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or per-lcore buffer
    // holding a NUL-terminated string; we copy it out at once.
    unsafe {
        let p = ffi::rte_strerror(code);
        if p.is_null() {
            return format!("errno {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a per-lcore (thread-local) integer.
    unsafe { ffi::shim_rte_errno() }
}

/// Turn a DPDK return code (negative errno on failure) into a Result.
pub fn check(op: &'static str, ret: i32) -> Result<i32> {
    if ret < 0 {
        let code = -ret;
        Err(DpdkError::Call {
            op,
            code,
            msg: strerror(code),
        })
    } else {
        Ok(ret)
    }
}

/// An error from `rte_errno`, for calls that return NULL or -1 and set it.
pub fn from_errno(op: &'static str) -> DpdkError {
    let code = rte_errno();
    DpdkError::Call {
        op,
        code,
        msg: strerror(code),
    }
}
