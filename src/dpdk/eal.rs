//! EAL initialisation, lcores and the TSC.

use super::error::{from_errno, DpdkError, Result};
use crate::ffi;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};

/// The initialised Environment Abstraction Layer. Exactly one per process;
/// dropping it calls `rte_eal_cleanup`.
pub struct Eal {
    /// The CPUs the process could run on before EAL pinned its threads.
    allowed: Vec<usize>,
}

impl Eal {
    /// Initialise EAL from the EAL part of the command line (`args[0]` is the
    /// program name). Returns how many arguments EAL consumed.
    pub fn init(args: &[String]) -> Result<(Eal, usize)> {
        let cargs: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| DpdkError::Failed {
                op: "rte_eal_init",
                msg: "argument contains a NUL byte".into(),
            })?;
        // EAL may keep pointers into argv (it permutes it with getopt), so
        // leak the strings and the array: they must live as long as the process.
        let mut argv: Vec<*mut c_char> = cargs.into_iter().map(|c| c.into_raw()).collect();
        argv.push(std::ptr::null_mut());
        let argv = Box::leak(argv.into_boxed_slice());
        // Before EAL pins this thread to the main lcore.
        let allowed = current_thread_cpus();
        // SAFETY: argv is a NULL-terminated array of valid C strings that
        // lives for the rest of the process.
        let ret = unsafe { ffi::rte_eal_init(args.len() as c_int, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(from_errno("rte_eal_init"));
        }
        Ok((Eal { allowed }, ret as usize))
    }

    /// Where threads that are not lcores belong (a printer, a metrics
    /// server): the CPUs the process may use that no lcore runs on, as EAL
    /// places its own control threads; every allowed CPU when the lcores
    /// take them all. A thread spawned from the main lcore inherits its
    /// CPU and takes turns with its polling loop otherwise.
    pub fn control_cpus(&self) -> Vec<usize> {
        let lcores = self.lcores();
        let free: Vec<usize> = self
            .allowed
            .iter()
            .copied()
            .filter(|&cpu| {
                // SAFETY: plain query of EAL's lcore configuration.
                !lcores
                    .iter()
                    .any(|&l| unsafe { ffi::shim_lcore_has_cpu(l, cpu as u32) } != 0)
            })
            .collect();
        if free.is_empty() {
            self.allowed.clone()
        } else {
            free
        }
    }

    /// The lcores EAL runs: the main lcore first, then the workers.
    pub fn lcores(&self) -> Vec<u32> {
        // SAFETY: plain queries of EAL's lcore configuration.
        unsafe {
            let main = ffi::rte_get_main_lcore();
            let mut v = vec![main];
            let mut i = ffi::rte_get_next_lcore(u32::MAX, 1, 0);
            while i < ffi::RTE_MAX_LCORE {
                v.push(i);
                i = ffi::rte_get_next_lcore(i, 1, 0);
            }
            v
        }
    }

    /// Run `f` on worker lcore `lcore`. The closure's return value becomes the
    /// lcore's exit code, collected by [`Eal::wait_all`].
    pub fn launch(&self, lcore: u32, f: Box<dyn FnOnce() -> i32 + Send>) -> Result<()> {
        extern "C" fn trampoline(arg: *mut c_void) -> c_int {
            // SAFETY: arg is the Box<Box<dyn FnOnce>> leaked by launch below;
            // EAL calls the trampoline exactly once.
            let f = unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() -> i32 + Send>) };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(-1)
        }
        let arg = Box::into_raw(Box::new(f)) as *mut c_void;
        // SAFETY: trampoline has the lcore_function_t signature and takes
        // ownership of arg; on failure we take it back.
        let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if ret < 0 {
            // SAFETY: the launch failed, so the trampoline will never run.
            drop(unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() -> i32 + Send>) });
            return super::error::check("rte_eal_remote_launch", ret).map(|_| ());
        }
        Ok(())
    }

    /// Wait for worker `lcore` to return; its exit code.
    pub fn wait_lcore(&self, lcore: u32) -> i32 {
        // SAFETY: blocks until the lcore is back in WAIT state.
        unsafe { ffi::rte_eal_wait_lcore(lcore) }
    }

    /// Wait for every worker lcore to return.
    pub fn wait_all(&self) {
        // SAFETY: blocks until all workers are back in WAIT state.
        unsafe { ffi::rte_eal_mp_wait_lcore() };
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called once, after every lcore has returned and every
        // port has been closed by its owner.
        unsafe { ffi::rte_eal_cleanup() };
    }
}

/// The CPUs the calling thread may run on.
pub fn current_thread_cpus() -> Vec<usize> {
    // SAFETY: set is a valid cpu_set_t of the size given; on failure it
    // stays empty.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Run the calling thread on `cpus` only; false if the kernel refused (or
/// `cpus` is empty), and the thread then stays where it was.
pub fn pin_current_thread(cpus: &[usize]) -> bool {
    if cpus.is_empty() {
        return false;
    }
    // SAFETY: set is a valid cpu_set_t of the size given, every CPU below
    // CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// The id of the calling lcore (u32::MAX for a non-EAL thread).
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local.
    unsafe { ffi::shim_lcore_id() }
}

/// The NUMA socket of the calling lcore.
pub fn socket_id() -> i32 {
    // SAFETY: reads a thread-local.
    unsafe { ffi::shim_socket_id() as i32 }
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads EAL's calibrated value.
    unsafe { ffi::rte_get_tsc_hz() }
}

/// The TSC now.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the time-stamp counter.
    unsafe { ffi::shim_rdtsc() }
}

/// Sets the calling thread's timer slack (how late the kernel may end
/// its sleeps, to group wake-ups; 50 us by default) to `ns`.
pub fn set_timer_slack(ns: u64) {
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer and changes only
    // the calling thread's attribute.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong) };
}

/// DPDK's version string.
pub fn version() -> String {
    // SAFETY: rte_version returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ffi::rte_version()) }
        .to_string_lossy()
        .into_owned()
}
